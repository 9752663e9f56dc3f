"""Per-part memory configurations: a catalog part + its family's memory system -> a cycle-model config.

Entry points: :func:`load_families` (``mcusearch/parts/memory.yaml``: one entry per part family,
every number with its document) and :func:`part_memory` (a part -> :class:`PartMemory`: the
:class:`~mcusearch.boards.cyclemodel.MemoryConfig` the cycle model re-weights a profile with, or
the reason there is none).

The rules, each stated in the configuration's assumptions:

* Flash wait states are the part's own at its clock (catalog ``flash_ws``, with its source). When
  the flash runs on a slower clock than the core (catalog ``flash_clock_mhz``, STM32H7's AXI), one
  flash cycle is ``r = clock_mhz / flash_clock_mhz`` core cycles.
* One flash read takes ``(ws + 1) × r`` core cycles; the stall beyond the core's own access cycle
  is ``(ws + 1) × r − 1``. Uncached: every data read from flash stalls that much, and so does every
  ``width``-byte flash line the code fetches (the cycle model's per-line fetch rule:
  mcusearch/boards/CYCLEMODEL.md, "Fetch stalls").
* A simulated cache (``l1`` with the part's sizes, or a ``sized`` accelerator): a missed line is
  ``n = line / width`` flash reads. Its stall is a range: low, one read's stall (critical word
  first, the rest overlapped with execution), high ``n × (ws + 1) × r − 1`` (nothing overlapped);
  the point is the middle of the range.
* A cache whose geometry no source gives (``unsized``, or ``l1`` without the part's sizes): every
  flash access's stall is the range from 0 (always hits) to the uncached stall (never hits).
* RAM (activations, stack) at zero wait states, where the family says.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import yaml

from mcusearch.boards.cyclemodel import MemoryConfig, MemoryTiming, Timing
from mcusearch.boards.plugin import MPS2_REGIONS, CacheGeometry, Region
from mcusearch.catalog import Part

FAMILIES_FILE = "memory.yaml"
CACHE_KINDS = ("l1", "sized", "unsized", "none")
_FLASH, _RAM = MPS2_REGIONS  # the emulated boards' "flash" at 0x0 and RAM at 0x20000000


@dataclass(frozen=True)
class Family:
    """One family's memory system (see ``memory.yaml``)."""

    family: str
    description: str
    cores: tuple[str, ...]
    flash_width_bytes: int
    flash_width_source: str
    cache: str
    cache_source: str
    ram: str
    ram_source: str
    icache: dict | None = None
    dcache: dict | None = None


@dataclass(frozen=True)
class PartMemory:
    """The memory configuration of one part, or why there is none (``config`` None)."""

    part: str
    config: MemoryConfig | None
    reason: str = ""

    @property
    def simulated(self) -> bool:
        """Does the configuration need a profile collected with its own cache simulation?"""
        return self.config is not None and any(m.cached for m in self.config.regions)

    @property
    def cache_key(self) -> tuple[CacheGeometry | None, CacheGeometry | None]:
        """(dcache, icache) the profile must have simulated; (None, None) for any profile."""
        if not self.simulated:
            return (None, None)
        return (self.config.dcache, self.config.icache)


@lru_cache(maxsize=1)
def load_families() -> dict[str, Family]:
    """The families of ``mcusearch/parts/memory.yaml`` by name. Raises ValueError on a bad entry."""
    text = resources.files("mcusearch.parts").joinpath(FAMILIES_FILE).read_text(encoding="utf-8")
    out: dict[str, Family] = {}
    for raw in yaml.safe_load(text):
        fam = Family(**{**raw, "cores": tuple(raw["cores"])})
        if fam.cache not in CACHE_KINDS:
            raise ValueError(f"{FAMILIES_FILE}: {fam.family}: cache {fam.cache!r} not one of {CACHE_KINDS}")
        if fam.cache in ("l1", "sized") and not (fam.icache or fam.dcache):
            raise ValueError(f"{FAMILIES_FILE}: {fam.family}: cache {fam.cache} needs icache/dcache geometry")
        out[fam.family] = fam
    return out


def part_memory(part: Part) -> PartMemory:
    """The memory configuration a per-part estimate of ``part`` uses (see the module doc)."""
    if part.memory is None:
        return PartMemory(part.part, None, "the catalog names no memory-system family for this part")
    fam = load_families().get(part.memory)
    if fam is None:
        return PartMemory(part.part, None, f"memory-system family {part.memory!r} is not in {FAMILIES_FILE}")
    if part.core not in fam.cores:
        return PartMemory(part.part, None, f"family {fam.family} describes {', '.join(fam.cores)}, not {part.core}")
    if part.flash_ws is None:
        return PartMemory(part.part, None, "no flash wait states at the part's clock in a source")
    ratio, ratio_text = _clock_ratio(part)
    read = (part.flash_ws + 1) * ratio - 1   # stall of one flash read beyond the core's access cycle
    ws_src = f"{part.flash_ws} WS at {part.clock_mhz:g} MHz ({part.flash_ws_flag or 'flag not stated'}: " \
             f"{part.flash_ws_source}){ratio_text}"
    geometry = _geometry(part, fam)
    if geometry is not None:
        flash, dcache, icache, how = _cached_flash(fam, read, ws_src, geometry)
    elif fam.cache == "none":
        flash, dcache, icache, how = _uncached_flash(fam, read, ws_src), None, None, "no cache"
    else:
        flash, dcache, icache, how = _unsized_flash(fam, read, ws_src), None, None, "cache geometry not sourced"
    name = f"{part.short_name}:{fam.family}:{part.flash_ws}ws" + (":" + _size_text(geometry) if geometry else "")
    cfg = MemoryConfig(
        name=name,
        description=f"{part.short_name} at {part.clock_mhz:g} MHz, {fam.family}: flash {part.flash_ws} WS, {how}; "
                    f"{fam.ram}",
        clock_hz=int(round(part.clock_mhz * 1e6)),
        regions=(flash, MemoryTiming(_RAM, "tcm" if "TCM" in fam.ram else "sram")),
        dcache=dcache, icache=icache,
        assumptions=(f"memory: {fam.description}", f"flash wait states: {ws_src}",
                     f"flash read width {fam.flash_width_bytes} B: {fam.flash_width_source}",
                     f"caches: {how}; {fam.cache_source}", f"RAM: {fam.ram} ({fam.ram_source})",
                     "writes absorbed by the write buffer (no stall)"),
        cores=fam.cores)
    return PartMemory(part.part, cfg)


def _clock_ratio(part: Part) -> tuple[float, str]:
    if part.flash_clock_mhz is None or part.flash_clock_mhz == part.clock_mhz:
        return 1.0, ""
    r = part.clock_mhz / part.flash_clock_mhz
    return r, (f"; flash at {part.flash_clock_mhz:g} MHz, one flash cycle = {r:g} core cycles "
               f"({part.flash_clock_source})")


def _geometry(part: Part, fam: Family) -> tuple[CacheGeometry | None, CacheGeometry | None] | None:
    """(dcache, icache) to simulate, or None when the family's cache cannot be simulated for ``part``."""
    if fam.cache == "sized":
        return tuple(CacheGeometry(int(g["size_bytes"]), int(g["line_bytes"]), int(g["ways"])) if g else None
                     for g in (fam.dcache, fam.icache))
    if fam.cache == "l1" and part.icache_kb is not None and part.dcache_kb is not None:
        return (CacheGeometry(int(part.dcache_kb * 1024), int(fam.dcache["line_bytes"]), int(fam.dcache["ways"])),
                CacheGeometry(int(part.icache_kb * 1024), int(fam.icache["line_bytes"]), int(fam.icache["ways"])))
    return None


def _size_text(geometry: tuple) -> str:
    d, i = geometry
    return f"D{d.size // 1024 if d and d.size >= 1024 else (d.size if d else 0)}" \
           f"{'k' if d and d.size >= 1024 else 'B'}-I{i.size // 1024 if i and i.size >= 1024 else (i.size if i else 0)}" \
           f"{'k' if i and i.size >= 1024 else 'B'}"


def _cached_flash(fam: Family, read: float, ws_src: str, geometry: tuple) -> tuple:
    dcache, icache = geometry
    line = max(g.line for g in geometry if g is not None)
    n = max(1, line // fam.flash_width_bytes)
    fill = Timing(((read) + (n * (read + 1) - 1)) / 2, read, n * (read + 1) - 1, ws_src,
                  f"a {line}-byte line = {n} flash read(s); low: one read's stall (critical word first, the rest "
                  f"overlapped), high: all {n} reads waited for; point: the middle")
    flash = MemoryTiming(Region(_FLASH.name, _FLASH.start, _FLASH.end, cacheable=True), "flash",
                         width=fam.flash_width_bytes, read_stall=Timing.fixed(read, ws_src),
                         fetch_stall=Timing.fixed(read, ws_src), cached=True, line_fill=fill)
    how = (f"simulated caches D {dcache.size if dcache else 0} B / I {icache.size if icache else 0} B, "
           f"{line}-byte lines, a missed line stalls {fill.low:g} to {fill.high:g} cycles")
    return flash, dcache, icache, how


def _uncached_flash(fam: Family, read: float, ws_src: str) -> MemoryTiming:
    return MemoryTiming(_FLASH, "flash", width=fam.flash_width_bytes, read_stall=Timing.fixed(read, ws_src),
                        fetch_stall=Timing.fixed(read, ws_src, f"per {fam.flash_width_bytes}-byte flash line fetched"))


def _unsized_flash(fam: Family, read: float, ws_src: str) -> MemoryTiming:
    note = "0 if the cache always hits (its geometry is not sourced) to the uncached stall; point: the middle"
    return MemoryTiming(_FLASH, "flash", width=fam.flash_width_bytes,
                        read_stall=Timing.range(0, read, ws_src, note),
                        fetch_stall=Timing.range(0, read, ws_src, f"per {fam.flash_width_bytes}-byte flash line fetched; {note}"))
