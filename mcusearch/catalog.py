"""The MCU catalog: the microcontrollers a trial's firmware is matched against, with sources.

Entry point: :func:`load_catalog` (-> ``list[Part]``). The built-in catalog is
``mcusearch/data/mcu-catalog.yaml`` (35 Arm Cortex-M parts; every number carries its source, and
a part has a price only where a source gave one). The facts of ``catalog-facts.yaml`` (2026-12) are
merged into it: every price break (kind, quantity, date, source), run-mode current with its
conditions, supply voltage, flash wait states at the part's clock and caches, each with its source
and a flag (:data:`FIGURE_FLAGS`: ``primary``, ``second-hand``, ``sibling``, ``selector``). The
primary price is the smallest-quantity break a source gave for the part itself (a sibling part's
price is kept, flagged, never used). A search spec can add parts or override fields of a built-in
part (e.g. a price or a run current the user knows, with its own source string).

Two rules link a trial, measured on one *board*, to the catalog's *parts*:

* **Compatibility** (:func:`compatible`). A trial informs a part only when the part has the same
  core as the board the trial ran on (``cortex-m7`` → ``cortex-m7`` parts): the firmware was
  compiled with that core's ``-mcpu`` and its instruction count is that core's. No cross-core
  guess (e.g. M4 counts for an M33) is made. And a float32 model compiled hard-float for a board
  with an FPU (:func:`needs_fpu`) runs only on a part whose ``fpu`` is ``single`` or ``double``;
  ``fpu: none`` parts are excluded for it. An int8 model's kernels are integer code: it is
  compatible with a same-core part without an FPU, on the understanding that the firmware is
  rebuilt soft-float for that part (the measured count is that of the hard-float build).
* **Latency at the part's clock** (:func:`est_latency_ms`). The trial gives a count per inference
  — instructions for an emulated board, cycles for a real one — and a cycles-per-instruction
  assumption ``cpi`` (1 for measured cycles). ``est_ms = count × cpi / (clock_mhz × 1e3)``.
  This is an **estimate**: it ignores flash wait states, caches, TCM vs. SRAM placement and bus
  contention, which differ between parts with the same core.
"""
from __future__ import annotations

import dataclasses
import datetime
import math
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

from mcusearch.errors import SpecError

BUILTIN_NAME = "mcu-catalog.yaml"
FPUS = ("none", "single", "double")
PRICE_KINDS = ("vendor_announcement", "distributor_list", "third_party_note", "third_party_bom", "user")
CORES = ("cortex-m0", "cortex-m0plus", "cortex-m1", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m23",
         "cortex-m33", "cortex-m35p", "cortex-m52", "cortex-m55", "cortex-m85")
REQUIRED = ("part", "core", "fpu", "clock_mhz", "flash_kb", "ram_kb")  # for a part new to the catalog
PRICE_FIELDS = ("price_usd", "price_qty", "price_date", "price_kind", "price_source")
#: How a merged figure was obtained: ``primary`` the vendor's own document for this part (or a
#: verbatim copy of it); ``second-hand`` a third party's statement or code (a README, a BOM, code
#: derived from a reference manual); ``sibling`` the vendor's figure for a sibling part;
#: ``selector`` the ST CubeMX database's ``<Current Run=...>`` (no unit or conditions in the
#: source, read as uA/MHz); ``user`` given in the search spec.
FIGURE_FLAGS = ("primary", "second-hand", "sibling", "selector", "user")
#: A figure and the text fields that must come with it when it is set.
NEEDS_SOURCE = {"run_current_ma": "run_current_source", "run_current_ua_per_mhz": "run_current_source",
                "supply_v": "supply_v_source", "flash_ws": "flash_ws_source",
                "flash_clock_mhz": "flash_clock_source"}
PRICE_BREAK_KEYS = ("usd", "qty", "kind", "date", "flag", "source")


@dataclass(frozen=True)
class Part:
    """One microcontroller. Sizes in KiB of on-chip memory; ``flash_kb == 0``: no on-chip flash."""

    part: str
    core: str                      # normalised: "cortex-m4", "cortex-m0plus", ...
    fpu: str                       # none | single | double
    clock_mhz: float
    flash_kb: float
    ram_kb: float
    vendor: str = ""
    dsp: bool = False
    price_usd: float | None = None
    price_qty: int | str | None = None
    price_date: str | None = None
    price_kind: str | None = None  # vendor_announcement | distributor_list | third_party_* | user
    price_source: str | None = None
    ram_regions: dict | None = None
    pyocd_target: str | None = None
    pyocd_note: str | None = None
    qemu_machine: tuple[str, ...] = ()
    qemu_core_proxy: str | None = None
    boards: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    unverified: tuple[str, ...] = ()
    notes: str | None = None
    mlperf_tiny: str | None = None
    # ---- sourced facts merged from catalog-facts.yaml (each with its source and a FIGURE_FLAGS flag)
    price_breaks: tuple[dict, ...] = ()   # every price a source gave: usd, qty, kind, date, flag, source
    run_current_ma: float | None = None   # run-mode supply current at run_current_mhz, mA
    run_current_mhz: float | None = None
    run_current_ua_per_mhz: float | None = None
    run_current_conditions: str | None = None
    run_current_source: str | None = None
    run_current_flag: str | None = None
    supply_v: float | None = None          # the supply voltage the run current is given at
    supply_v_source: str | None = None
    supply_v_note: str | None = None
    flash_ws: int | None = None            # flash wait states at clock_mhz
    flash_ws_source: str | None = None
    flash_ws_flag: str | None = None
    flash_ws_note: str | None = None
    flash_clock_mhz: float | None = None   # the flash's clock when it is not the core's (STM32H7: AXI)
    flash_clock_source: str | None = None
    caches: str | None = None              # accelerators and caches, in the source's words
    caches_source: str | None = None
    caches_flag: str | None = None
    icache_kb: float | None = None
    dcache_kb: float | None = None
    memory: str | None = None              # memory-system family (mcusearch/parts/memory.yaml)
    unverified_facts: tuple[str, ...] = ()
    facts_note: str | None = None
    origin: str = "built-in"       # built-in | spec | "built-in; spec set price_usd, price_source"

    @property
    def has_price(self) -> bool:
        return self.price_usd is not None

    @property
    def has_fpu(self) -> bool:
        return self.fpu != "none"

    @property
    def short_name(self) -> str:
        """The name before any parenthesised alias: ``nRF52840 (nRF52840-QIAA)`` -> ``nRF52840``."""
        return self.part.split(" (", 1)[0].strip()

    @property
    def size_key(self) -> tuple[float, float, float]:
        """The order used when no price is known: smallest flash, then RAM, then clock."""
        return (self.flash_kb, self.ram_kb, self.clock_mhz)

    def describe(self) -> str:
        return (f"{self.part} ({self.core}, FPU {self.fpu}, {self.clock_mhz:g} MHz, "
                f"{self.flash_kb:g} kB flash, {self.ram_kb:g} kB RAM)")

    def price_text(self) -> str:
        """The price with its kind, quantity, date and source, or ``no price known``."""
        if self.price_usd is None:
            return "no price known"
        extra = [self.price_kind or "kind not stated"]
        if self.price_qty not in (None, ""):
            extra.append(f"qty {self.price_qty}")
        if self.price_date:
            extra.append(str(self.price_date))
        src = " ".join(str(self.price_source).split())
        return f"{self.price_usd:g} USD ({', '.join(extra)}; source: {src})"

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("qemu_machine", "boards", "sources", "unverified", "unverified_facts"):
            d[k] = list(d[k])
        d["price_breaks"] = [dict(b) for b in self.price_breaks]
        return d

    def run_current_at_clock(self) -> tuple[float | None, str]:
        """(run current in mA at ``clock_mhz``, how it was obtained) or (None, why there is none).

        A figure in mA counts only when it was given at the part's own clock; a figure in uA/MHz
        is multiplied by the clock. No scaling of an mA figure to another clock is guessed.
        """
        flag = f"; {self.run_current_flag}" if self.run_current_flag else ""
        if self.run_current_ma is not None:
            if self.run_current_mhz is not None and float(self.run_current_mhz) == float(self.clock_mhz):
                return float(self.run_current_ma), (f"{self.run_current_ma:g} mA at {self.clock_mhz:g} MHz "
                                                    f"({self.run_current_source}{flag})")
            if self.run_current_ua_per_mhz is None:
                at = f"{self.run_current_mhz:g} MHz" if self.run_current_mhz is not None else "an unstated clock"
                return None, (f"the run current {self.run_current_ma:g} mA was given at {at}, "
                              f"not at the part's {self.clock_mhz:g} MHz")
        if self.run_current_ua_per_mhz is not None:
            ma = self.run_current_ua_per_mhz * self.clock_mhz / 1000.0
            return ma, (f"{self.run_current_ua_per_mhz:g} uA/MHz x {self.clock_mhz:g} MHz = {ma:.4g} mA "
                        f"({self.run_current_source}{flag})")
        return None, "no run current in a source" + (f" ({self.run_current_source})" if self.run_current_source else "")

    def known_and_missing(self) -> tuple[list[str], list[str]]:
        """What the catalog knows about the part, and what it lacks, as short labels."""
        from mcusearch.parts.memory import load_families  # the families module imports this one

        family = load_families().get(self.memory) if self.memory else None
        sized = (self.icache_kb is not None and self.dcache_kb is not None) or (
            family is not None and family.cache in ("sized", "none"))
        checks = (("price", self.price_usd is not None), ("run current", self.run_current_ma is not None
                  or self.run_current_ua_per_mhz is not None), ("supply voltage", self.supply_v is not None),
                  ("flash wait states", self.flash_ws is not None), ("cache geometry", sized),
                  ("memory model", family is not None))
        return [k for k, ok in checks if ok], [k for k, ok in checks if not ok]


# ---- rules ------------------------------------------------------------------------------------
def normalize_core(core: str) -> str:
    """``Cortex-M0+`` / ``cortex_m0plus`` / ``m4`` -> ``cortex-m0plus`` / ``cortex-m4``."""
    c = str(core).strip().lower().replace("_", "-").replace(" ", "-").replace("+", "plus")
    if re.fullmatch(r"m\d+\w*", c):
        c = "cortex-" + c
    return c


def needs_fpu(quantization: str, board_has_fpu: bool = True) -> bool:
    """Does this trial's firmware need an FPU on the part?

    A float32 model compiled hard-float for a board with an FPU does; an int8 model does not (its
    kernels are integer code; rebuilt soft-float it runs on a same-core part without an FPU).
    A float32 model built soft-float for a board without an FPU does not (its count includes the
    software floating point). When the board's FPU is unknown, assume it has one: that can only
    exclude parts, never admit a part the firmware cannot run on.
    """
    return quantization == "float32" and board_has_fpu


def compatible(part: Part, board_core: str, needs_fpu: bool) -> bool:
    """A trial measured on a ``board_core`` board informs ``part``: same core, and an FPU if needed."""
    return part.core == normalize_core(board_core) and (part.has_fpu or not needs_fpu)


def incompatibility(part: Part, board_core: str, needs_fpu: bool) -> str | None:
    """Why :func:`compatible` is False, in words, or None when it is True."""
    core = normalize_core(board_core)
    if part.core != core:
        return f"core {part.core} ≠ {core} (the trial was measured on a {core} board)"
    if needs_fpu and not part.has_fpu:
        return "no FPU (fpu: none), and the float32 firmware is built hard-float"
    return None


def est_latency_ms(part: Part, count_per_inference: float, cpi: float = 1.0) -> float:
    """Estimated milliseconds per inference at the part's clock: ``count × cpi / (MHz × 1e3)``.

    ``count_per_inference`` is instructions (emulated board) or cycles (real board, ``cpi=1``).
    An estimate: memory wait states, caches and buses of the actual part are not modelled.
    """
    return float(count_per_inference) * float(cpi) / (float(part.clock_mhz) * 1e3)


# ---- loading ----------------------------------------------------------------------------------
_FIELDS = {f.name: f for f in dataclasses.fields(Part)}
_USER_FIELDS = set(_FIELDS) - {"origin"}


def _num(v: Any, where: str, *, minimum: float, strict: bool, source: str | None) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise SpecError(where, f"expected a number, got {v!r}", source)
    if v < minimum or (strict and v == minimum):
        raise SpecError(where, f"must be {'>' if strict else '>='} {minimum:g}, got {v!r}", source)
    return float(v)


def _text(v: Any, where: str, source: str | None, *, optional: bool = True) -> str | None:
    if v is None and optional:
        return None
    if isinstance(v, (int, float, datetime.date)) and not isinstance(v, bool):  # e.g. YAML read a date
        v = v.isoformat() if isinstance(v, datetime.date) else str(v)
    if not isinstance(v, str) or not v.strip():
        raise SpecError(where, f"expected a non-empty string, got {v!r}", source)
    return " ".join(v.split()) if "\n" in v else v.strip()


def _texts(v: Any, where: str, source: str | None) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list):
        raise SpecError(where, f"expected a list of strings, got {v!r}", source)
    return tuple(_text(x, f"{where}[{j}]", source, optional=False) for j, x in enumerate(v))


def _check_field(key: str, v: Any, where: str, source: str | None) -> Any:
    """Validate and convert one field of a catalog entry."""
    w = f"{where}.{key}"
    if key == "part":
        return _text(v, w, source, optional=False)
    if key == "core":
        if not isinstance(v, str):
            raise SpecError(w, f"expected a core name such as cortex-m4, got {v!r}", source)
        c = normalize_core(v)
        if c not in CORES:
            raise SpecError(w, f"unknown core {v!r}; one of: {', '.join(CORES)}", source)
        return c
    if key == "fpu":
        if v is False:
            v = "none"  # YAML reads a bare `no`/`false` as False
        if v not in FPUS:
            raise SpecError(w, f"expected one of {', '.join(FPUS)}, got {v!r}", source)
        return v
    if key == "dsp":
        if not isinstance(v, bool):
            raise SpecError(w, f"expected true or false, got {v!r}", source)
        return v
    if key == "clock_mhz":
        return _num(v, w, minimum=0, strict=True, source=source)
    if key == "flash_kb":
        return _num(v, w, minimum=0, strict=False, source=source)
    if key == "ram_kb":
        return _num(v, w, minimum=0, strict=True, source=source)
    if key == "price_usd":
        return None if v is None else _num(v, w, minimum=0, strict=False, source=source)
    if key == "price_qty":
        if v is None or (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            return v
        return _text(v, w, source)
    if key == "price_kind":
        if v is not None and v not in PRICE_KINDS:
            raise SpecError(w, f"expected one of {', '.join(PRICE_KINDS)}, got {v!r}", source)
        return v
    if key == "ram_regions":
        if v is not None and not isinstance(v, dict):
            raise SpecError(w, f"expected a mapping region -> kB, got {v!r}", source)
        return v
    if key in ("qemu_machine", "boards", "sources", "unverified", "unverified_facts"):
        return _texts(v, w, source)
    if key in ("run_current_ma", "run_current_mhz", "run_current_ua_per_mhz", "supply_v", "flash_clock_mhz",
               "icache_kb", "dcache_kb"):
        return None if v is None else _num(v, w, minimum=0, strict=True, source=source)
    if key == "flash_ws":
        if v is None or (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 64):
            return v
        raise SpecError(w, f"expected a whole number of wait states 0..64, got {v!r}", source)
    if key.endswith("_flag"):
        if v is not None and v not in FIGURE_FLAGS:
            raise SpecError(w, f"expected one of {', '.join(FIGURE_FLAGS)}, got {v!r}", source)
        return v
    if key == "price_breaks":
        return _price_breaks(v, w, source)
    return _text(v, w, source)  # price_date, price_source, vendor, pyocd_*, qemu_core_proxy, notes, ...


def _price_breaks(v: Any, where: str, source: str | None) -> tuple[dict, ...]:
    if v is None:
        return ()
    if not isinstance(v, list):
        raise SpecError(where, f"expected a list of price breaks, got {v!r}", source)
    out = []
    for j, b in enumerate(v):
        w = f"{where}[{j}]"
        if not isinstance(b, dict) or set(b) - set(PRICE_BREAK_KEYS) or "usd" not in b or "source" not in b:
            raise SpecError(w, f"expected a mapping with usd and source (keys: {', '.join(PRICE_BREAK_KEYS)})",
                            source)
        d = {"usd": _num(b["usd"], f"{w}.usd", minimum=0, strict=False, source=source),
             "source": _text(b["source"], f"{w}.source", source, optional=False)}
        for k in ("qty", "kind", "date", "flag"):
            if b.get(k) is not None:
                d[k] = _check_field({"qty": "price_qty", "kind": "price_kind", "date": "price_date",
                                     "flag": "caches_flag"}[k], b[k], w, source)
        out.append(d)
    return tuple(out)


def _entry(raw: Any, where: str, source: str | None) -> dict:
    if not isinstance(raw, dict):
        raise SpecError(where, f"expected a mapping with at least `part`, got {type(raw).__name__}", source)
    out = {}
    for key, v in raw.items():
        if key not in _USER_FIELDS:
            raise SpecError(f"{where}.{key}", "unknown key; known: " + ", ".join(sorted(_USER_FIELDS)), source)
        out[key] = _check_field(key, v, where, source)
    if "part" not in out:
        raise SpecError(f"{where}.part", "required key is missing (the part's name)", source)
    return out


def _check_price(d: dict, where: str, source: str | None) -> None:
    """A price, a run current, a voltage or a wait-state count is never accepted without its source."""
    if d.get("price_usd") is not None and not d.get("price_source"):
        raise SpecError(f"{where}.price_source",
                        f"price_usd {d['price_usd']:g} needs a price_source saying where it comes from", source)
    for key, src in NEEDS_SOURCE.items():
        if d.get(key) is not None and not d.get(src):
            raise SpecError(f"{where}.{src}", f"{key} {d[key]:g} needs a {src} saying where it comes from", source)
    if d.get("run_current_ma") is not None and d.get("run_current_mhz") is None:
        raise SpecError(f"{where}.run_current_mhz", f"run_current_ma {d['run_current_ma']:g} needs the clock "
                        "(MHz) it was measured at", source)


def _read_yaml(text: str, source: str) -> list:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SpecError("", f"not valid YAML: {e}", source) from None
    if not isinstance(data, list):
        raise SpecError("", f"a catalog is a list of parts, got {type(data).__name__}", source)
    return data


def builtin_catalog_text() -> str:
    return resources.files("mcusearch").joinpath("data", BUILTIN_NAME).read_text(encoding="utf-8")


def find_part(parts: Iterable[Part], name: str) -> Part | None:
    """The part named ``name``: its full name or the name before its alias, case-insensitively."""
    n = str(name).strip().lower()
    for p in parts:
        if p.part.lower() == n or p.short_name.lower() == n:
            return p
    return None


def load_catalog(extra: list[dict] | None = None, path: str | Path | None = None, *,
                 where: str = "catalog.parts", source: str | None = None) -> list[Part]:
    """The catalog: the built-in file (or ``path``), then ``extra`` entries from a spec.

    An ``extra`` entry whose ``part`` names a catalog part (full name, or the name before its
    parenthesised alias, case-insensitively) overrides the fields it gives; setting ``price_usd``
    then also replaces the price's kind/quantity/date/source (kind ``user`` unless given), and a
    non-null ``price_usd`` must come with a ``price_source``. Any other entry adds a part and must
    give ``part, core, fpu, clock_mhz, flash_kb, ram_kb``. Errors are
    :class:`~mcusearch.errors.SpecError` naming ``{where}[i].{field}``.
    """
    if path is None:
        file_source, text = f"mcusearch/data/{BUILTIN_NAME}", builtin_catalog_text()
    else:
        p = Path(path)
        if not p.is_file():
            raise SpecError("catalog.path", f"catalog file not found: {p}", source)
        file_source, text = str(p), p.read_text(encoding="utf-8")
    parts: list[Part] = []
    for i, raw in enumerate(_read_yaml(text, file_source)):
        d = _entry(raw, f"[{i}]", file_source)
        _require(d, f"[{i}]", file_source)
        _check_price(d, f"[{i}]", file_source)
        if find_part(parts, d["part"]) is not None:
            raise SpecError(f"[{i}].part", f"part {d['part']!r} is listed twice", file_source)
        parts.append(Part(**d, origin="built-in" if path is None else f"catalog file {p.name}"))

    if extra is None:
        return parts
    if not isinstance(extra, list):
        raise SpecError(where, f"expected a list of parts, got {type(extra).__name__}", source)
    seen: set[str] = set()
    for i, raw in enumerate(extra):
        w = f"{where}[{i}]"
        d = _entry(raw, w, source)
        key = d["part"].lower()
        if key in seen:
            raise SpecError(f"{w}.part", f"part {d['part']!r} is listed twice", source)
        seen.add(key)
        _check_price(d, w, source)
        old = find_part(parts, d["part"])
        if old is None:
            _require(d, w, source)
            d.setdefault("sources", ("given in the search spec",))
            if d.get("price_usd") is not None:
                d.setdefault("price_kind", "user")
            parts.append(Part(**d, origin="spec"))
            continue
        changes = {k: v for k, v in d.items() if k != "part"}
        if "price_usd" in changes:  # a new price brings its own kind/qty/date/source
            for k in PRICE_FIELDS:
                changes.setdefault(k, None)
            if changes["price_usd"] is not None and changes["price_kind"] is None:
                changes["price_kind"] = "user"
        _replace_groups(changes)
        set_ = ", ".join(sorted(changes)) or "nothing"
        parts[parts.index(old)] = dataclasses.replace(old, **changes, origin=f"{old.origin}; spec set {set_}")
    return parts


RUN_CURRENT_FIELDS = ("run_current_ma", "run_current_mhz", "run_current_ua_per_mhz", "run_current_conditions",
                      "run_current_source", "run_current_flag")


def _replace_groups(changes: dict) -> None:
    """A spec's new run current or wait-state count replaces the whole built-in group (figure,
    conditions, source), flagged ``user`` unless the spec gives a flag."""
    if {"run_current_ma", "run_current_ua_per_mhz"} & set(changes):
        for k in RUN_CURRENT_FIELDS:
            changes.setdefault(k, None)
        changes["run_current_flag"] = changes["run_current_flag"] or "user"
    if "flash_ws" in changes:
        changes.setdefault("flash_ws_flag", None)
        changes["flash_ws_flag"] = changes["flash_ws_flag"] or "user"


def _require(d: dict, where: str, source: str | None) -> None:
    for k in REQUIRED:
        if k not in d:
            raise SpecError(f"{where}.{k}", f"required for a part not in the catalog ({d.get('part')!r})", source)
