"""Read what the build stage and the boards need from a linked ELF: sizes and symbols.

Sizes follow arm-none-eabi-size's Berkeley convention, from section flags:
allocated NOBITS sections are bss, allocated writable ones data, other allocated ones text;
flash = text + data (data's initial values are stored in flash), RAM = data + bss.
The stack is not a section (it grows down from the top of RAM) and is not counted.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection


@dataclass(frozen=True)
class Sizes:
    text: int
    data: int
    bss: int

    @property
    def flash(self) -> int:
        return self.text + self.data

    @property
    def ram(self) -> int:
        return self.data + self.bss


@dataclass(frozen=True)
class Symbol:
    name: str
    address: int   # for Thumb functions with bit 0 cleared (the instruction address)
    size: int
    kind: str      # "STT_FUNC", "STT_OBJECT", ...


def sizes(elf: Path) -> Sizes:
    text = data = bss = 0
    with open(elf, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            flags = sec["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC:
                continue
            size = sec["sh_size"]
            if sec["sh_type"] == "SHT_NOBITS":
                bss += size
            elif flags & SH_FLAGS.SHF_WRITE:
                data += size
            else:
                text += size
    return Sizes(text, data, bss)


def symbols(elf: Path, names: set[str] | None = None) -> dict[str, Symbol]:
    """Global and local symbols of ``elf`` by name (only ``names`` if given)."""
    out: dict[str, Symbol] = {}
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            return out
        for sym in symtab.iter_symbols():
            name = sym.name
            if not name or (names is not None and name not in names):
                continue
            kind = sym["st_info"]["type"]
            addr = sym["st_value"]
            if kind == "STT_FUNC":
                addr &= ~1
            # Prefer a global definition over a local one of the same name.
            if name in out and sym["st_info"]["bind"] != "STB_GLOBAL":
                continue
            out[name] = Symbol(name, addr, sym["st_size"], kind)
    return out


def symbol(elf: Path, name: str) -> Symbol:
    """One symbol; KeyError naming the symbol and the ELF if it is missing."""
    found = symbols(elf, {name})
    if name not in found:
        raise KeyError(f"symbol {name!r} not found in {elf}")
    return found[name]


def function_at(elf: Path, address: int) -> str | None:
    """The name of the function whose [start, start + size) holds ``address``, if any."""
    best: tuple[int, str] | None = None
    for sym in symbols(elf).values():
        if sym.kind == "STT_FUNC" and sym.address <= address < sym.address + max(sym.size, 1):
            if best is None or sym.address > best[0]:
                best = (sym.address, sym.name)
    return best[1] if best else None
