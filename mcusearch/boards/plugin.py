"""The instruction-class counting QEMU plugin: build it, put it on a QEMU command line, read its counts.

The plugin (firmware/tools/qemu-plugin/insn_classes.c, with our own minimal qemu-plugin.h for QEMU
7.2's plugin API version 1) counts the Thumb/Thumb-2 instructions a Cortex-M guest executes, by
timing class (:data:`CLASSES`), plus overlay facts (:data:`EXTRAS`) and per address region the
instruction fetches and data accesses (:data:`REGION_FIELDS`), optionally through a simulated
cache, and the flash lines each straight-line run fetches without a cache (``fetch_lines_W``,
``jump_lines_W`` for W in :data:`LINE_WIDTHS`). With ``steps`` every start/stop window is also
counted into its layer (:func:`read_layer_counts`). The counts are exact (emulated); cycles are
estimated from them by :mod:`mcusearch.boards.cyclemodel`. :func:`board_regions` gives each QEMU
machine's "flash" and "ram".

Typical use::

    so = build_plugin()
    regions = [Region("flash", 0x0, 0x400000), Region("ram", 0x20000000, 0x20400000)]
    cmd = ["qemu-system-arm", "-M", "mps2-an500", "-nographic", "-kernel", str(elf),
           "-semihosting-config", "enable=on,target=native", "-icount", "shift=7",
           *qemu_plugin_args(so, out, regions, start=symbol_address(elf, "kernel"),
                             stop=symbol_address(elf, "kernel_done"))]
    profile = read_counts(out)
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from mcusearch.errors import StageError
from mcusearch.figures import Figure, Provenance

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "firmware" / "tools" / "qemu-plugin"
PLUGIN_SOURCES = ("insn_classes.c", "qemu-plugin.h")
CFLAGS = ("-shared", "-fPIC", "-O2", "-std=gnu11", "-Wall", "-Wextra")
FORMAT = "mcusearch-insn-classes/1"

#: Every executed instruction falls in exactly one class (names as in insn_classes.c).
CLASSES = (
    "alu", "it", "mul", "mla", "mull", "mlal", "dsp_mul", "dsp", "div",
    "load", "store", "load_pair", "store_pair", "ldm", "stm",
    "branch", "branch_cond", "table_branch",
    "vfp_alu", "vfp_mac", "vfp_div", "vfp_load", "vfp_store", "vfp_ldm", "vfp_stm",
    "vfp_mov", "vfp_misc",
    "nop", "barrier", "system", "other",
)
#: Overlay counts: facts about some of the instructions above (they do not add up to anything).
EXTRAS = (
    "insn16", "insn32",
    "ldm_regs", "stm_regs", "vfp_ldm_words", "vfp_stm_words", "vfp_ldst64",
    "branch_cond_taken", "load_pc", "ldm_pc", "load_literal",
    "store_imm", "ldst_pipelined", "agu_stall",
)
#: Per region (and "other" for addresses outside every region).
REGION_FIELDS = (
    "fetch_insns", "fetch_bytes", "reads", "writes", "read_bytes", "write_bytes",
    "read_misses", "write_misses", "iline_refs", "iline_misses",
    "fetch_lines_4", "fetch_lines_8", "fetch_lines_16", "fetch_lines_32",
    "jump_lines_4", "jump_lines_8", "jump_lines_16", "jump_lines_32",
)
#: Fetch-line widths (bytes) the plugin counts uncached instruction fetches in.
LINE_WIDTHS = (4, 8, 16, 32)
MAX_REGIONS = 8


@dataclass(frozen=True)
class Region:
    """An address range [start, end) of the emulated board, counted under ``name``."""

    name: str
    start: int
    end: int
    cacheable: bool = False   # accesses go through the simulated dcache/icache, if any

    def arg(self) -> str:
        return f"region={self.name}:{self.start:#x}:{self.end:#x}" + (":c" if self.cacheable else "")


@dataclass(frozen=True)
class CacheGeometry:
    """An LRU cache the plugin simulates: total bytes, line bytes, ways."""

    size: int
    line: int
    ways: int

    def arg(self) -> str:
        return f"{self.size}:{self.line}:{self.ways}"


#: The emulated mps2 boards (an385/an386/an500): "flash" (SSRAM1) at 0, RAM at 0x20000000.
MPS2_REGIONS = (Region("flash", 0x0, 0x400000), Region("ram", 0x20000000, 0x20400000))

#: Where each emulated machine's firmware keeps code and constants ("flash") and data and stack
#: ("ram"): the link scripts under firmware/boards/ (mps2-an500, mps2-an505, mps3-an547).
BOARD_REGIONS: dict[str, tuple[Region, Region]] = {
    "mps2-an385": MPS2_REGIONS,
    "mps2-an386": MPS2_REGIONS,
    "mps2-an500": MPS2_REGIONS,
    # SSE-200: SSRAM1 through its secure alias (code), SSRAM2+3 through theirs (data), 4 MB each
    "mps2-an505": (Region("flash", 0x10000000, 0x10400000), Region("ram", 0x38000000, 0x38400000)),
    # SSE-300: ITCM and DTCM through their secure aliases, 512 KB each
    "mps3-an547": (Region("flash", 0x10000000, 0x10080000), Region("ram", 0x30000000, 0x30080000)),
}


def board_regions(machine: str) -> tuple[Region, Region]:
    """The ("flash", "ram") regions of a QEMU ``machine`` the boards use. Raises KeyError if unknown."""
    try:
        return BOARD_REGIONS[machine]
    except KeyError:
        raise KeyError(f"no address map for QEMU machine {machine!r}; known: {', '.join(BOARD_REGIONS)}") from None


@dataclass
class RegionCounts:
    fetch_insns: int = 0
    fetch_bytes: int = 0
    reads: int = 0
    writes: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    read_misses: int = 0
    write_misses: int = 0
    iline_refs: int = 0
    iline_misses: int = 0
    # uncached instruction fetch, per line width W: lines each executed straight-line run spans
    # (a run falling through from the previous one does not count their shared line again) ...
    fetch_lines_4: int = 0
    fetch_lines_8: int = 0
    fetch_lines_16: int = 0
    fetch_lines_32: int = 0
    # ... and runs entered by a jump into a line other than the one the previous run ended in
    jump_lines_4: int = 0
    jump_lines_8: int = 0
    jump_lines_16: int = 0
    jump_lines_32: int = 0

    def fetch_lines(self, width: int) -> int:
        """Distinct ``width``-byte lines fetched per straight-line run, summed (no cache)."""
        return getattr(self, f"fetch_lines_{_width(width)}")

    def jump_lines(self, width: int) -> int:
        """Of :meth:`fetch_lines`, the first lines of runs entered by a jump (a new line)."""
        return getattr(self, f"jump_lines_{_width(width)}")


def _width(width: int) -> int:
    if width not in LINE_WIDTHS:
        raise ValueError(f"fetch lines are counted for widths {LINE_WIDTHS} bytes, not {width}")
    return width


@dataclass
class InsnProfile:
    """What the plugin counted, over the whole run or over the start/stop window."""

    insns: int
    classes: dict[str, int]
    extras: dict[str, int]
    regions: dict[str, RegionCounts]
    scope: str                                   # "total" or "window"
    intervals: int | None = None                 # windows counted (scope "window")
    region_defs: list[Region] = field(default_factory=list)
    dcache: CacheGeometry | None = None
    icache: CacheGeometry | None = None
    source: str = ""                             # the JSON file read

    def cls(self, name: str) -> int:
        return self.classes[name]

    def extra(self, name: str) -> int:
        return self.extras[name]

    def region(self, name: str) -> RegionCounts:
        return self.regions[name]

    def figure(self) -> Figure:
        """The executed-instruction count, with its provenance (exact, emulated)."""
        where = (f"window between the start and stop markers, {self.intervals} interval(s)"
                 if self.scope == "window" else "whole run")
        return Figure(float(self.insns), "instructions", Provenance.EMULATED,
                      f"QEMU TCG plugin insn_classes (executed Thumb instructions), {where}")


def default_cache_dir() -> Path:
    env = os.environ.get("MCUSEARCH_CACHE")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "mcusearch"


def _source_hash(cc: str) -> str:
    h = hashlib.sha256()
    for name in PLUGIN_SOURCES:
        h.update(name.encode() + b"\0" + (PLUGIN_DIR / name).read_bytes() + b"\0")
    h.update(" ".join((cc, *CFLAGS)).encode())
    return h.hexdigest()[:16]


def build_plugin(cache_dir: Path | str | None = None, cc: str = "gcc") -> Path:
    """Compile the plugin with the host compiler, once per source hash; return the .so path.

    Raises StageError("measure", ...) if the compiler is missing or fails.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    so = cache / "qemu-plugin" / f"insn_classes-{_source_hash(cc)}.so"
    if so.is_file():
        return so
    if shutil.which(cc) is None:
        raise StageError("measure", f"host C compiler {cc!r} not found: it builds the QEMU instruction-class plugin")
    so.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".insn_classes-", suffix=".so", dir=so.parent)
    os.close(fd)
    try:
        proc = subprocess.run([cc, *CFLAGS, "-o", tmp, str(PLUGIN_DIR / "insn_classes.c")],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise StageError("measure", f"building the QEMU plugin failed ({cc} exit {proc.returncode})",
                             log=proc.stdout + proc.stderr)
        os.replace(tmp, so)   # atomic: concurrent builders produce the same bytes
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return so


def _opt(value: str) -> str:
    """QEMU's option syntax: a comma inside a value is written twice."""
    return value.replace(",", ",,")


def qemu_plugin_args(so: Path | str, out_json: Path | str, regions: Iterable[Region] = MPS2_REGIONS,
                     start: int | None = None, stop: int | None = None,
                     dcache: CacheGeometry | None = None, icache: CacheGeometry | None = None,
                     dump: Path | str | None = None, steps_file: Path | str | None = None,
                     skip: int = 0) -> list[str]:
    """Arguments to append to a qemu-system-arm command line to load the plugin.

    ``start``/``stop``: addresses (e.g. from :func:`symbol_address`) delimiting a counting window:
    from each execution of the instruction at ``start`` (included) to the next execution of the
    one at ``stop`` (excluded). Regions with ``cacheable=True`` go through the simulated caches.
    ``steps_file``: the layer of each window (see :func:`run_profile`'s ``steps``), ``skip`` windows
    first left out of it.
    """
    regions = list(regions)
    if len(regions) > MAX_REGIONS:
        raise ValueError(f"at most {MAX_REGIONS} regions")
    if len({r.name for r in regions}) != len(regions) or any(r.name == "other" for r in regions):
        raise ValueError("region names must be unique and not 'other'")
    if (start is None) != (stop is None):
        raise ValueError("give both start and stop, or neither")
    parts = [_opt(str(so)), "out=" + _opt(str(out_json))]
    parts += [r.arg() for r in regions]
    if start is not None:
        parts += [f"start={start & ~1:#x}", f"stop={stop & ~1:#x}"]
    if dcache is not None:
        parts.append("dcache=" + dcache.arg())
    if icache is not None:
        parts.append("icache=" + icache.arg())
    if dump is not None:
        parts.append("dump=" + _opt(str(dump)))
    if steps_file is not None:
        if start is None:
            raise ValueError("steps need a start/stop window")
        parts += ["steps=" + _opt(str(steps_file)), f"skip={int(skip)}"]
    return ["-plugin", ",".join(parts), "-d", "plugin"]


def symbol_address(elf: Path | str, name: str) -> int:
    """Address of an ELF symbol (a function's Thumb bit cleared). Raises KeyError if absent."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(elf, "rb") as f:
        ef = ELFFile(f)
        for sec in ef.iter_sections():
            if isinstance(sec, SymbolTableSection):
                for sym in sec.get_symbol_by_name(name) or ():
                    if sym["st_shndx"] != "SHN_UNDEF":
                        return int(sym["st_value"]) & ~1
    raise KeyError(f"{name}: no such symbol in {elf}")


def _geometry(d: dict | None) -> CacheGeometry | None:
    return CacheGeometry(int(d["size"]), int(d["line"]), int(d["ways"])) if d else None


def read_counts(path: Path | str, scope: str = "auto") -> InsnProfile:
    """Read the plugin's JSON. ``scope``: "window", "total", or "auto" (the window if markers were set).

    Raises StageError("measure", ...) if the file is missing or malformed, or if a window was asked
    for and the start marker never executed.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise StageError("measure", f"cannot read the plugin's counts {path}: {e}") from e
    if data.get("format") != FORMAT:
        raise StageError("measure", f"{path}: unknown format {data.get('format')!r} (expected {FORMAT})")
    window = data.get("window")
    if scope == "auto":
        scope = "window" if window else "total"
    if scope == "window":
        if not window:
            raise StageError("measure", f"{path}: no window (the plugin ran without start/stop markers)")
        if window["intervals"] == 0 and not window["open_at_exit"]:
            raise StageError("measure", f"{path}: the start marker {window['start']:#x} never executed")
        counts, intervals = window["counts"], window["intervals"] + (1 if window["open_at_exit"] else 0)
    elif scope == "total":
        counts, intervals = data["total"], None
    else:
        raise ValueError(f"scope must be 'auto', 'window' or 'total', not {scope!r}")
    return _profile(data, counts, scope, intervals, path)


def read_layer_counts(path: Path | str) -> list[InsnProfile]:
    """The per-layer counts of a run with ``steps`` (:func:`run_profile`): one profile per layer, in
    layer order (scope "layer"). Raises StageError("measure", ...) if the file has none."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise StageError("measure", f"cannot read the plugin's counts {path}: {e}") from e
    layers = data.get("layers")
    if data.get("format") != FORMAT or not layers:
        raise StageError("measure", f"{path}: no per-layer counts (the plugin ran without steps=)")
    return [_profile(data, counts, "layer", None, path) for counts in layers["counts"]]


def _profile(data: dict, counts: dict, scope: str, intervals: int | None, path: Path) -> InsnProfile:
    if set(counts["classes"]) != set(CLASSES) or set(counts["extras"]) != set(EXTRAS):
        raise StageError("measure", f"{path}: class names differ from this mcusearch's (rebuild the plugin)")
    return InsnProfile(
        insns=int(counts["insns"]),
        classes={k: int(v) for k, v in counts["classes"].items()},
        extras={k: int(v) for k, v in counts["extras"].items()},
        regions={name: RegionCounts(**{k: int(v) for k, v in rc.items()})
                 for name, rc in counts["regions"].items()},
        scope=scope,
        intervals=intervals,
        region_defs=[Region(r["name"], int(r["start"]), int(r["end"]), bool(r["cacheable"]))
                     for r in data.get("regions", [])],
        dcache=_geometry(data.get("dcache")),
        icache=_geometry(data.get("icache")),
        source=str(path),
    )


def run_profile(elf: Path | str, machine: str, out_json: Path | str, *,
                regions: Sequence[Region] = MPS2_REGIONS, start: int | None = None, stop: int | None = None,
                dcache: CacheGeometry | None = None, icache: CacheGeometry | None = None,
                so: Path | str | None = None, timeout_s: float = 120, icount_shift: int | None = 7,
                qemu: str = "qemu-system-arm", extra_args: Sequence[str] = (),
                scope: str = "auto", steps: Sequence[int] | None = None, skip: int = 0) -> InsnProfile:
    """Run a semihosting ELF (one that ends with SYS_EXIT) under QEMU with the plugin; return its counts.

    ``steps``: the layer of each start/stop window, for a schedule that repeats (a model's layer
    calls per inference), after ``skip`` windows; :func:`read_layer_counts` then reads one profile
    per layer from ``out_json``. Raises StageError("measure", ...) on a timeout or a non-zero QEMU exit.
    """
    so = so if so is not None else build_plugin()
    out_json = Path(out_json)
    if out_json.exists():
        out_json.unlink()
    steps_file = None
    if steps is not None:
        steps_file = out_json.with_suffix(".steps")
        steps_file.write_text(" ".join(str(int(j)) for j in steps) + "\n")
    cmd = [qemu, "-M", machine, "-nographic", "-kernel", str(elf),
           "-semihosting-config", "enable=on,target=native"]
    if icount_shift is not None:
        cmd += ["-icount", f"shift={icount_shift}"]
    cmd += [*extra_args, *qemu_plugin_args(so, out_json, regions, start, stop, dcache, icache,
                                           steps_file=steps_file, skip=skip)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise StageError("measure", f"QEMU did not finish within {timeout_s:g} s: {' '.join(cmd)}") from e
    if proc.returncode != 0:
        raise StageError("measure", f"QEMU exited with status {proc.returncode}: {' '.join(cmd)}",
                         log=proc.stdout + proc.stderr)
    return read_counts(out_json, scope=scope)
