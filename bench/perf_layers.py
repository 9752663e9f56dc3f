"""Per-layer instructions of the optimised generator, from a bench/zoo.py run (issue 14).

bench/zoo.py stores per run the per-layer instruction counts (QEMU -icount, exact; markers' own
cost removed) in zoo.json and the generator's plan.json (kernel, variant, MACs per layer) beside
the generated C. This prints them side by side, one table per (model, dtype):

    .venv/bin/python bench/zoo.py --models mlperf_ds_cnn --converters mcusearch --out /tmp/z
    .venv/bin/python bench/perf_layers.py /tmp/z            # every mcusearch run found there
    .venv/bin/python bench/perf_layers.py /tmp/z --top 8    # the 8 costliest layers of each
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def layer_rows(out: Path, rec: dict) -> list[tuple[str, str, str, int, int]]:
    """(layer, kernel, variant, MACs, instructions) of one zoo.py record, in layer order."""
    plan = json.loads((out / rec["model"] / f"{rec['converter']}_{rec['dtype']}" / "c" /
                       "plan.json").read_text())
    counts = [int(c) for _, c in rec["layers"]]          # the markers' order: layer order
    if len(counts) != len(plan["layers"]):
        raise SystemExit(f"bench/perf_layers.py: {rec['model']} {rec['dtype']}: "
                         f"{len(counts)} layer counts for {len(plan['layers'])} layers")
    return [(la["name"], la["kernel"], la["variant"], int(la["macs"]), c)
            for la, c in zip(plan["layers"], counts)]


def report(out: Path, top: int | None) -> str:
    """The per-layer tables of every finished mcusearch run under ``out``."""
    lines = []
    for rec in json.loads((out / "zoo.json").read_text()):
        if "error" in rec or rec["converter"] != "mcusearch":
            continue
        rows = layer_rows(out, rec)
        lines.append(f"\n{rec['model']} {rec['dtype']}: {rec['instructions']:,.0f} instructions, "
                     f"{rec['instructions_per_mac']:.2f}/MAC, arena {rec['arena_bytes']:,} B")
        lines.append(f"  {'layer':34s} {'kernel':24s} {'variant':8s} {'MACs':>10s} "
                     f"{'instr':>10s} {'/MAC':>6s}")
        shown = sorted(rows, key=lambda r: -r[4])[:top] if top else rows
        for name, kernel, variant, macs, ins in shown:
            per = f"{ins / macs:6.2f}" if macs else "     -"
            lines.append(f"  {name[:34]:34s} {kernel[:24]:24s} {variant:8s} {macs:10,d} "
                         f"{ins:10,d} {per}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="bench/zoo.py --out folder (holds zoo.json)")
    ap.add_argument("--top", type=int, default=None, help="only the N costliest layers")
    args = ap.parse_args(argv)
    if not (args.out / "zoo.json").is_file():
        print(f"bench/perf_layers.py: {args.out / 'zoo.json'}: not found (run bench/zoo.py "
              f"--out {args.out} first)", file=sys.stderr)
        return 2
    print(report(args.out, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
