"""Issue 14's targets from two bench/zoo.py runs (before and after a generator change).

    .venv/bin/python bench/zoo.py --converters mcusearch --out /tmp/before   # on the old commit
    .venv/bin/python bench/zoo.py --converters mcusearch --out /tmp/after
    .venv/bin/python bench/perf_compare.py /tmp/before /tmp/after

Prints per zoo model and dtype the instructions per MAC and the arena before -> after (QEMU
-icount exact counts on qemu-m7 at -O3; arena = the generated code's whole activation RAM), the
largest input + output pair of one layer (what a ping-pong planner needs), then the targets:
int8 <= 1.4 instructions/MAC on DS-CNN and MobileNetV1-VWW, <= 1.5 geometric mean over the zoo
(models that ran in both), float32 <= 1.6 on the two, no model whose int8 needs more instructions
than its float32, int8 arena <= 0.5 x the largest pair on every model of more than 20 k MACs.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

KEY_MODELS = ("mlperf_ds_cnn", "mlperf_mobilenet_vww")


def load(out: Path) -> dict[tuple[str, str], dict]:
    """(model, dtype) -> the mcusearch record of a bench/zoo.py run that finished."""
    recs = json.loads((out / "zoo.json").read_text())
    return {(r["model"], r["dtype"]): r for r in recs
            if r.get("converter") == "mcusearch" and "error" not in r}


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def report(before: dict, after: dict) -> str:
    """The markdown table and the targets' lines."""
    rows = ["| model | dtype | MACs | instr/MAC before | after | arena before | after | "
            "in+out pair | arena / pair |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key in sorted(after):
        a, b = after[key], before.get(key)
        ratio = a["arena_bytes"] / a["pingpong_bytes"] if a["pingpong_bytes"] else float("nan")
        rows.append(f"| {key[0]} | {key[1]} | {a['macs']:,} | "
                    f"{b['instructions_per_mac']:.2f} | " if b else f"| {key[0]} | {key[1]} | {a['macs']:,} | - | ")
        rows[-1] += (f"{a['instructions_per_mac']:.2f} | {b['arena_bytes']:,} | " if b else
                     f"{a['instructions_per_mac']:.2f} | - | ")
        rows[-1] += f"{a['arena_bytes']:,} | {a['pingpong_bytes']:,} | {ratio:.2f} |"
    lines = ["\n".join(rows), ""]
    for name, run in (("before", before), ("after", after)):
        common = [k for k in run if k[1] == "int8" and k in before and k in after]
        gm = _geomean([run[k]["instructions_per_mac"] for k in common])
        key = ", ".join(f"{m} int8 {run[(m, 'int8')]['instructions_per_mac']:.2f} float32 "
                        f"{run[(m, 'float32')]['instructions_per_mac']:.2f}"
                        for m in KEY_MODELS if (m, "int8") in run and (m, "float32") in run)
        slower = [m for (m, d) in run if d == "int8" and (m, "float32") in run
                  and run[(m, d)]["instructions"] > run[(m, "float32")]["instructions"]]
        over = [m for (m, d) in run if d == "int8" and run[(m, d)]["macs"] > 20_000
                and run[(m, d)]["arena_bytes"] > 0.5 * run[(m, d)]["pingpong_bytes"]]
        lines += [f"{name}: {key}; int8 geometric mean over {len(common)} models {gm:.2f}; "
                  f"int8 slower than float32: {', '.join(sorted(slower)) or 'none'}; "
                  f"int8 arena > 0.5 x pair (> 20 k MACs): {', '.join(sorted(over)) or 'none'}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("before", type=Path, help="bench/zoo.py --out folder of the old generator")
    ap.add_argument("after", type=Path, help="bench/zoo.py --out folder of the new one")
    args = ap.parse_args(argv)
    for d in (args.before, args.after):
        if not (d / "zoo.json").is_file():
            print(f"bench/perf_compare.py: {d / 'zoo.json'}: not found (run bench/zoo.py --out {d})",
                  file=sys.stderr)
            return 2
    print(report(load(args.before), load(args.after)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
