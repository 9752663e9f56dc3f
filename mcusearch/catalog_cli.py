"""``mcusearch catalog``: the catalog's parts, what is known about each and what is missing.

Entry points: :func:`add_catalog_parser` (registers the sub-command on the CLI's sub-parsers) and
:func:`catalog_text` (the printed text, for tests and other front ends).

The table has one row per part: core, clock, memory, price (with kind and quantity), run current
at the part's clock (how it was obtained: ``primary`` vendor document for this part, ``second-hand``,
``sibling`` part, ``selector`` database), supply voltage, flash wait states and caches, then the
list of what the catalog lacks for it. ``--part NAME`` prints every figure of one part with its
source.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable

from mcusearch.catalog import Part, find_part, load_catalog
from mcusearch.errors import SpecError

FLAG_MARK = {"primary": "", "second-hand": "²", "sibling": "ˢ", "selector": "ᶜ", "user": "ᵘ", None: ""}
LEGEND = ("marks: ² second-hand (third-party text, code, note or BOM), ˢ a sibling part's figure, "
          "ᶜ ST CubeMX selector value (no unit or conditions; read as uA/MHz), ᵘ given in the spec; "
          "no mark: the vendor's document for this part")


def add_catalog_parser(sub) -> None:
    """Register ``catalog`` on ``sub`` (the ``add_subparsers()`` object of the CLI)."""
    s = sub.add_parser("catalog", help="list the MCU catalog: what is known about each part and what is missing")
    s.add_argument("spec", nargs="?", help="a search.yaml: use its catalog (catalog.path, catalog.parts)")
    s.add_argument("--path", help="a catalog file instead of the built-in one")
    s.add_argument("--part", help="print every figure of one part, with its source")
    s.add_argument("--core", help="only parts with this core (e.g. cortex-m4)")
    s.set_defaults(func=cmd_catalog)


def cmd_catalog(args: argparse.Namespace) -> int:
    """Print the catalog (see the module doc). Bad input: a :class:`SpecError` (exit 2)."""
    print(catalog_text(_parts(args), part=args.part, core=args.core))
    return 0


def _parts(args: argparse.Namespace) -> list[Part]:
    if args.spec and args.path:
        raise SpecError("--path", "give a spec or --path, not both (a spec names its own catalog.path)")
    if args.spec:
        from mcusearch.spec import load_spec

        return load_spec(args.spec).parts()
    if args.path:
        path = Path(args.path)
        if not path.is_file():
            raise SpecError("--path", f"catalog file not found: {path}")
        return load_catalog(path=path)
    return load_catalog()


def catalog_text(parts: list[Part], *, part: str | None = None, core: str | None = None) -> str:
    """The table of ``parts`` (only ``core``'s, if given), or one part's details."""
    if part is not None:
        p = find_part(parts, part)
        if p is None:
            raise SpecError("--part", f"no part {part!r} in the catalog; parts: "
                            + ", ".join(q.short_name for q in parts))
        return part_details(p)
    if core is not None:
        from mcusearch.catalog import normalize_core

        c = normalize_core(core)
        parts = [p for p in parts if p.core == c]
        if not parts:
            raise SpecError("--core", f"no part with core {core!r} in the catalog")
    rows = [_row(p) for p in parts]
    head = ("part", "core", "MHz", "flash kB", "RAM kB", "price USD @qty", "run mA", "V", "flash WS", "L1 I/D kB",
            "missing")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    n_price = sum(p.has_price for p in parts)
    n_energy = sum(_energy_ready(p) for p in parts)
    lines += ["", LEGEND,
              f"{len(parts)} parts; {n_price} with a price; {n_energy} with a run current at their clock and a "
              f"supply voltage (an energy estimate is possible); `--part NAME` shows the sources."]
    return "\n".join(lines)


def _energy_ready(p: Part) -> bool:
    return p.run_current_at_clock()[0] is not None and p.supply_v is not None


def _row(p: Part) -> tuple:
    ma, _ = p.run_current_at_clock()
    qty = p.price_qty if isinstance(p.price_qty, int) else "?"
    price = "-" if p.price_usd is None else f"{p.price_usd:g} @{qty}{_kind_mark(p)}"
    caches = ("-" if p.icache_kb is None and p.dcache_kb is None
              else f"{_g(p.icache_kb)}/{_g(p.dcache_kb)}{FLAG_MARK[p.caches_flag]}")
    return (p.short_name, p.core.removeprefix("cortex-"), f"{p.clock_mhz:g}", f"{p.flash_kb:g}", f"{p.ram_kb:g}",
            price, "-" if ma is None else f"{ma:.3g}{FLAG_MARK[p.run_current_flag]}",
            "-" if p.supply_v is None else f"{p.supply_v:g}",
            "-" if p.flash_ws is None else f"{p.flash_ws}{FLAG_MARK[p.flash_ws_flag]}",
            caches, ", ".join(p.known_and_missing()[1]) or "-")


def _kind_mark(p: Part) -> str:
    """² when the price is a third party's (a note or a BOM), as for the other figures."""
    return "²" if (p.price_kind or "").startswith("third_party") else ""


def _g(v: float | None) -> str:
    return "?" if v is None else f"{v:g}"


def part_details(p: Part) -> str:
    """Every figure of one part with its source and flag, and what is missing."""
    ma, how = p.run_current_at_clock()
    known, missing = p.known_and_missing()
    lines = [p.describe(), f"  vendor: {p.vendor or '-'}; DSP extension: {'yes' if p.dsp else 'no'}; origin: {p.origin}",
             f"  price: {p.price_text()}"]
    for b in p.price_breaks:
        lines.append(f"    break: {b['usd']:g} USD qty {b.get('qty', '?')} ({b.get('kind', 'kind not stated')}, "
                     f"{b.get('date', 'date not stated')}; {b.get('flag', 'flag not stated')}): {b['source']}")
    lines.append(f"  run current at {p.clock_mhz:g} MHz: {f'{ma:.4g} mA' if ma is not None else 'none'} - {how}")
    if p.run_current_conditions:
        lines.append(f"    conditions: {p.run_current_conditions}")
    lines.append(f"  supply voltage: {_with_source(p.supply_v, 'V', p.supply_v_source, None, p.supply_v_note)}")
    lines.append(f"  flash wait states at {p.clock_mhz:g} MHz: "
                 f"{_with_source(p.flash_ws, 'WS', p.flash_ws_source, p.flash_ws_flag, p.flash_ws_note)}")
    if p.flash_clock_mhz is not None:
        lines.append(f"  flash clock: {p.flash_clock_mhz:g} MHz ({p.flash_clock_source})")
    lines.append(f"  caches: {p.caches or 'not stated'}"
                 + (f" [{p.caches_flag}] ({p.caches_source})" if p.caches else ""))
    if p.icache_kb is not None or p.dcache_kb is not None:
        lines.append(f"    sizes used by the memory model: I {_g(p.icache_kb)} kB, D {_g(p.dcache_kb)} kB")
    lines.append(f"  memory-system family: {p.memory or 'none (no per-part cycle estimate)'}")
    lines += _listed("sources", p.sources) + _listed("unverified", (*p.unverified, *p.unverified_facts))
    for label, text in (("notes", p.notes), ("facts note", p.facts_note)):
        if text:
            lines.append(f"  {label}: {text}")
    lines.append(f"  known: {', '.join(known) or '-'}; missing: {', '.join(missing) or '-'}")
    return "\n".join(lines)


def _with_source(value, unit: str, source: str | None, flag: str | None, note: str | None) -> str:
    if value is None:
        return "not known" + (f" ({note})" if note else "")
    return f"{value:g} {unit}" + (f" [{flag}]" if flag else "") + (f" ({source})" if source else "")


def _listed(label: str, items: Iterable[str]) -> list[str]:
    items = list(items)
    return [f"  {label}:"] + [f"    - {s}" for s in items] if items else []
