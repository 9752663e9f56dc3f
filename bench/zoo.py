"""Every model of the zoo through every converter, measured the same way (issues 9 and 14).

For each model of mcusearch.model.zoo (calibrated random weights), each dtype (float32; int8 by
full-integer post-training quantisation on 100 sample inputs) and each converter (mcusearch,
mcusearch-ref, aidge): convert, build at -O3, run on an emulated Cortex-M7 (qemu-m7) and print

* MACs (zoo.macs: convolutions, dense, LSTM/GRU gates; from the Keras model);
* instructions per inference (QEMU -icount, exact; mean over the probe inputs) and per MAC;
* estimated cycles per inference on the STM32F7's cached memory configuration (the qemu-m7
  board's cycle model: the instruction-class mix the QEMU plugin counts x the documented
  Cortex-M7 timings, mcusearch/boards/CYCLEMODEL.md; an estimate, not a measurement);
* model flash (image minus the same harness without the model, from the ELF) and its split by
  part from the ELF's symbols (weights, biases, requantisation, code, other);
* the generated code's arena and the model's RAM (ELF data + bss minus the baseline's), and
  for the mcusearch generators the arena's peak and the buffers live at it (the planner's
  ``plan.json``);
* the largest input + output pair of one layer (what a ping-pong planner needs; from the Keras
  layer shapes, 4 B per value for float32 and 1 B for int8);
* where the instructions go (the per-layer counts): the layers that do the MACs, with their
  instructions per MAC, and the other layers' share by kind; then per converter and dtype the
  geometric mean of instructions per MAC over the models, whole and MAC layers alone;
* the output check against the host (TFLite interpreter for int8: bit-exact or not; Keras for
  float32: the largest absolute difference), and how much the probe inputs' outputs differ
  from each other (a check over identical outputs would prove little);
* where a stage fails, which stage and why, in one line. Failures are expected while the
  generator grows (issue 9): the bench goes on with the next run.

    .venv/bin/python bench/zoo.py                                  # everything (long)
    .venv/bin/python bench/zoo.py --models mlperf_ds_cnn,se_block --dtypes int8
    .venv/bin/python bench/zoo.py --converters mcusearch --json

Files (models, generated C, ELFs, zoo.md, zoo.json) go under reports/bench-zoo/ (git-ignored).
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import mcusearch  # noqa: E402,F401  (tf-keras before TensorFlow)
from mcusearch.log import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()      # TensorFlow's C++ start-up lines kept off the terminal
from _common import failure, model_result, run_one  # noqa: E402

CONVERTERS = ("mcusearch", "mcusearch-ref", "aidge")
# Also accepted by --converters, not run by default: the row planner with 1-D maps as columns.
EXTRA_CONVERTERS = ("mcusearch-lowmem",)
DTYPES = ("float32", "int8")
VALUE_BYTES = {"float32": 4, "int8": 1}
BOARD = "qemu-m7"
PROBES = 4                # firmware test inputs per model (zoo.sample_inputs, seed --seed)
REPRESENTATIVE = 100      # int8 calibration inputs (zoo.sample_inputs, seed --seed + 1)


def _split_arg(value: str, known, what: str) -> list[str]:
    """Comma-separated names, each one of ``known``; else one line and exit 2."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        print(f"bench/zoo.py: --{what}: unknown {', '.join(unknown) or '(none given)'}; "
              f"choose from {', '.join(known)}", file=sys.stderr)
        raise SystemExit(2)
    return names


def pingpong_bytes(model, dtype: str) -> int:
    """The largest (inputs + output) of one layer, in bytes: the least a planner that keeps
    only one layer's input and output alive needs."""
    best = 0
    for layer in model.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        shapes = layer.input_shape if isinstance(layer.input_shape, list) else [layer.input_shape]
        values = sum(math.prod(s[1:]) for s in shapes) + math.prod(layer.output_shape[1:])
        best = max(best, values)
    return best * VALUE_BYTES[dtype]


def _converters() -> tuple[dict, str | None]:
    """The registered converters and their dtypes, or why the registry cannot be read."""
    try:
        from mcusearch.convert import available_converters
        return available_converters(), None
    except Exception as e:  # noqa: BLE001 - a broken registry is a row's reason, not the end
        e.bench_stage = "convert"
        return {}, failure(e)


def bench_model(name: str, dtypes: list[str], converters: list[str], out: Path, seed: int,
                verbose: bool) -> list[dict]:
    """All runs of one zoo model: one record per (dtype, converter)."""
    from mcusearch.model import zoo
    entry = zoo.get(name)
    base = {"model": name, "board": BOARD}
    try:
        model = zoo.build(name, seed=seed)
    except Exception as e:  # noqa: BLE001
        e.bench_stage = "model"
        return [{**base, "dtype": d, "converter": c, "error": failure(e)}
                for d in dtypes for c in converters]
    macs = zoo.macs(model)
    probes = zoo.sample_inputs(name, PROBES, seed)
    rep = zoo.sample_inputs(name, REPRESENTATIVE, seed + 1)
    classes = tuple(f"class{i}" for i in range(int(model.output_shape[-1]))) \
        if entry.classifier else ()
    spread, tops = zoo.output_spread(model, probes)
    base.update(probe_spread=spread, probe_tops=tops if entry.classifier else None)
    registry, registry_error = _converters()
    records = []
    for dtype in dtypes:
        head = {**base, "dtype": dtype, "macs": macs, "pingpong_bytes": pingpong_bytes(model, dtype)}
        try:
            mr = model_result(model, out / name, dtype, probes, rep, input_shape=entry.input_shape,
                              class_names=classes, macs=macs)
        except Exception as e:  # noqa: BLE001
            e.bench_stage = getattr(e, "bench_stage", "model")
            records += [{**head, "converter": c, "error": failure(e)} for c in converters]
            continue
        for conv in converters:
            rec = {**head, "converter": conv}
            if registry_error:
                rec["error"] = registry_error
            elif conv not in registry:
                rec["error"] = f"convert: {conv} is not registered here (not installed?)"
            elif dtype not in registry[conv]:
                rec["error"] = f"convert: {conv} takes {', '.join(sorted(registry[conv]))} only"
            else:
                try:
                    rec.update(run_one(mr, conv, BOARD, out / name / f"{conv}_{dtype}",
                                       out / "cache", macs, cycles=True))
                except Exception as e:  # noqa: BLE001 - one failing run must not end the bench
                    rec["error"] = failure(e)
                    if verbose:
                        traceback.print_exc()
            records.append(rec)
            print(line(rec), flush=True)
    return records


def _kib(n: float) -> str:
    return f"{n / 1024:.1f}"


def output_check(r: dict) -> str:
    """bit-exact (int8 equal to the interpreter's), or the largest difference from the host."""
    err = r.get("max_abs_error")
    if err is None:
        return ""
    if r["dtype"] == "int8":
        return "bit-exact" if err == 0 else f"max diff {err:.3g}"
    return f"max err {err:.1e}"


# the layers zoo.macs counts
MAC_KINDS = ("Conv2D", "DepthwiseConv2D", "Dense", "TransposeConv2D", "BatchMatMul")


def _kind_counts(r: dict) -> dict[str, float]:
    """Instructions per layer kind (the '(Kind)' at the end of a per-layer name)."""
    kinds: dict[str, float] = {}
    for name, count in r.get("layers") or []:
        kind = name[name.rfind("(") + 1:-1] if name.endswith(")") else name
        kinds[kind] = kinds.get(kind, 0) + count
    return kinds


def mac_layer_instructions(r: dict) -> float | None:
    """The instructions of the layers that do the model's MACs; None without per-layer counts."""
    kinds = _kind_counts(r)
    return sum(v for k, v in kinds.items() if k in MAC_KINDS) if kinds else None


def layer_split(r: dict) -> str:
    """'MAC layers 1.23/MAC; other layers 41% (Add 20%, Logistic 11%, ...)' of a finished run."""
    kinds = _kind_counts(r)
    total = sum(kinds.values())
    if not kinds or not total or not r.get("macs"):
        return ""
    mac = sum(v for k, v in kinds.items() if k in MAC_KINDS)
    other = sorted(((v, k) for k, v in kinds.items() if k not in MAC_KINDS), reverse=True)
    parts = ", ".join(f"{k} {v / total:.0%}" for v, k in other[:4] if v / total >= 0.005)
    return (f"MAC layers {mac / r['macs']:.2f} instr/MAC; other layers {1 - mac / total:.0%}"
            + (f" ({parts})" if parts else ""))


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def geomeans(records: list[dict]) -> list[str]:
    """Per converter and dtype: the geometric mean of instructions per MAC over the runs that
    finished, whole models and MAC layers only, and over the models of 100 k MACs or more."""
    lines = []
    for conv in dict.fromkeys(r["converter"] for r in records):
        for dtype in DTYPES:
            runs = [r for r in records if r["converter"] == conv and r["dtype"] == dtype
                    and "error" not in r and r.get("macs")]
            if not runs:
                continue
            whole = _geomean([r["instructions_per_mac"] for r in runs])
            big = [r["instructions_per_mac"] for r in runs if r["macs"] >= 100_000]
            mac = [mac_layer_instructions(r) for r in runs]
            text = (f"  {conv} {dtype}: geometric mean of instr/MAC over {len(runs)} models "
                    f"{whole:.2f}")
            if all(mac):
                text += f"; of their MAC layers alone {_geomean([m / r['macs'] for m, r in zip(mac, runs)]):.2f}"
            if big:
                text += f"; over the {len(big)} of 100 k MACs or more {_geomean(big):.2f}"
            lines.append(text)
    return ["", "Geometric means:"] + lines if lines else []


def line(r: dict) -> str:
    """One progress line."""
    head = f"{r['model']:24s} {r['dtype']:8s} {r['converter']:14s}"
    if "error" in r:
        return f"{head} FAILED {r['error']}"
    return (f"{head} {r['instructions']:>13,.0f} instr {r['instructions_per_mac']:6.2f}/MAC  "
            f"flash {_kib(r['flash_bytes'])} KiB  arena {_kib(r['arena_bytes'])} KiB  "
            f"{output_check(r)}  ({r['seconds']} s)")


def table(records: list[dict]) -> str:
    """The markdown table of every run, then the flash split of the runs that finished."""
    rows = ["| model | dtype | converter | MACs | instructions | instr/MAC | est. cycles F7 | "
            "flash KiB | arena KiB | RAM KiB | in+out max KiB | output check | failure |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in records:
        macs = f"{r['macs']:,}" if "macs" in r else ""
        pp = _kib(r["pingpong_bytes"]) if "pingpong_bytes" in r else ""
        if "error" in r:
            rows.append(f"| {r['model']} | {r['dtype']} | {r['converter']} | {macs} | | | | | | | "
                        f"{pp} | | {r['error'][:200].replace('|', '/')} |")
            continue
        cyc = f"{r['est_cycles']:,.0f}" if "est_cycles" in r else ""
        rows.append(f"| {r['model']} | {r['dtype']} | {r['converter']} | {macs} | "
                    f"{r['instructions']:,.0f} | {r['instructions_per_mac']:.2f} | {cyc} | "
                    f"{_kib(r['flash_bytes'])} | {_kib(r['arena_bytes'])} | {_kib(r['ram_bytes'])} | "
                    f"{pp} | {output_check(r)} | |")
    lines = ["\n".join(rows), "", "Model flash by part (bytes, from the ELF's symbols):"]
    for r in records:
        if r.get("flash_split"):
            split = ", ".join(f"{k} {v:,}" for k, v in r["flash_split"].items())
            lines.append(f"  {r['model']} {r['dtype']} {r['converter']}: {split}")
    lines += ["", "The arena (the model's activation RAM) against half the largest in+out pair (issue "
              "14's target for models over 20 k MACs), and what is live at its peak (the planner's "
              "plan.json; bytes):"]
    for r in records:
        if r.get("peak_buffers"):
            half = r["pingpong_bytes"] / 2
            mark = "over" if r["arena_bytes"] > half else "within"
            lines.append(f"  {r['model']} {r['dtype']} {r['converter']}: arena {r['arena_bytes']:,} "
                         f"({mark} {half:,.0f}), {r['peak_bytes']:,} live at the peak: "
                         f"{', '.join(r['peak_buffers'])}")
    lines += ["", "Where the instructions go (the per-layer counts): the layers that do the MACs "
              "(convolutions, Dense; an unrolled LSTM's or GRU's gate projections) with their "
              "instructions per MAC, and the share of the other layers (element-wise, look-up "
              "tables, pools, softmax, data movement), their largest kinds first:"]
    lines += [f"  {r['model']} {r['dtype']} {r['converter']}: {split}"
              for r in records for split in [layer_split(r)] if split]
    lines += geomeans(records)
    lines += ["", "What the output check can prove: over the probe inputs (Keras, float32), the "
              "smallest relative spread of an output (std / mean magnitude) and how many "
              "different top classes they give:"]
    seen = set()
    for r in records:
        if "probe_spread" in r and r["model"] not in seen:
            seen.add(r["model"])
            tops = "" if r["probe_tops"] is None else f", {r['probe_tops']} top classes"
            lines.append(f"  {r['model']}: spread {r['probe_spread']:.2g}{tops}")
    ok = sum("error" not in r for r in records)
    lines += ["", f"{ok} of {len(records)} runs finished on {BOARD} at -O3. Instructions: QEMU "
              "-icount (exact), mean over the probe inputs; est. cycles F7: the qemu-m7 cycle model (STM32F722, "
              "ART and L1 caches on), an estimate; flash and RAM: the ELF minus the same "
              "harness without the model; MACs and in+out from the Keras model."]
    return "\n".join(lines)


def main(argv=None) -> int:
    from mcusearch.model import zoo
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(zoo.MODELS), help="default: every zoo model")
    ap.add_argument("--dtypes", default=",".join(DTYPES))
    ap.add_argument("--converters", default=",".join(CONVERTERS))
    ap.add_argument("--seed", type=int, default=0, help="weights and inputs")
    ap.add_argument("--json", action="store_true", help="print one JSON list of records at the end")
    ap.add_argument("--verbose", action="store_true", help="print the traceback of each failure")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench-zoo")
    args = ap.parse_args(argv)
    models = _split_arg(args.models, tuple(zoo.MODELS), "models")
    dtypes = _split_arg(args.dtypes, DTYPES, "dtypes")
    converters = _split_arg(args.converters, CONVERTERS + EXTRA_CONVERTERS, "converters")
    out = args.out.resolve()
    for noisy in ("tensorflow", "absl", "h5py"):   # tf-keras' notes on loading uncompiled models
        logging.getLogger(noisy).setLevel(logging.ERROR)

    records = []
    for name in models:
        records += bench_model(name, dtypes, converters, out, args.seed, args.verbose)
    text = table(records)
    out.mkdir(parents=True, exist_ok=True)
    (out / "zoo.md").write_text(text + "\n")
    (out / "zoo.json").write_text(json.dumps(records, indent=1))
    print()
    print(json.dumps(records, indent=1) if args.json else text)
    print(f"\nwritten: {out / 'zoo.md'}, {out / 'zoo.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
