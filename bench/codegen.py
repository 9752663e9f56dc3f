"""The code generators on the study's model, measured the same way (issue 4).

The 2020 study's CNN at full width (30x20x1 -> 4 classes, 66,264 parameters, 9,131,920 MACs) with
random weights (Keras' initialisers; small random biases unless --zero-bias), float32 and int8
(full-integer post-training quantisation, random calibration data), dense and 90 % magnitude-
pruned (the 90 % smallest-magnitude weights of every Conv2D/Dense zeroed before quantisation), on
emulated Cortex-M7 (qemu-m7) and Cortex-M4 (qemu-m4), -O3, for every registered generator:

* ``mcusearch``     - the optimised generator (firmware/kernels/fast), the default converter;
* ``mcusearch-ref`` - the reference kernels (the correctness oracle);
* ``aidge``         - Eclipse Aidge's C++ export (float32 only), when it is registered and installed.

Every run goes through the project's own stages: convert, build (flash and RAM are the image's
minus a baseline image without the model), measure (QEMU -icount, exact instruction counts; the
firmware's outputs are checked against TFLite / Keras, int8 bit-exact). Per-layer counts come
from the markers around every kernel call.

    .venv/bin/python bench/codegen.py                  # everything (a few minutes)
    .venv/bin/python bench/codegen.py --quick          # qemu-m7 only, our two generators
    .venv/bin/python bench/codegen.py --json           # one JSON list of records
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import mcusearch  # noqa: E402,F401  (tf-keras before TensorFlow)
from mcusearch.log import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()      # TensorFlow's C++ start-up lines kept off the terminal
import _common  # noqa: E402  (bench/_common.py: model_result, run_one, flash_split)
from _common import flash_split  # noqa: E402,F401

MACS = 9_131_920
TARGETS = {  # issue 4, emulated Cortex-M7, -O3
    ("int8", 0.0): "<= 1.3 instructions/MAC, model flash <= 67 kB, RAM <= 16 kB",  # see README
    ("float32", 0.0): "<= 1.5 instructions/MAC, RAM <= 40 kB",
    ("int8", 0.9): "flash <= 0.35x and instructions <= 0.4x the dense int8 model",
}


def build_model(seed: int, sparsity: float, zero_bias: bool):
    import tensorflow as tf

    from mcusearch.model.architectures import study_cnn
    tf.keras.utils.set_random_seed(seed)
    m = study_cnn((30, 20, 1), 4, filters=32, dense_units=100)
    rng = np.random.default_rng(seed)
    for layer in m.layers:
        ws = layer.get_weights()
        if len(ws) != 2:
            continue
        k, b = ws
        if sparsity:
            k = k.copy()
            k[np.abs(k) < np.quantile(np.abs(k), sparsity)] = 0.0
        if not zero_bias:
            b = rng.normal(0, 0.05, b.shape).astype(np.float32)
        layer.set_weights([k, b])
    return m


def model_result(model, d: Path, quant: str, probes: np.ndarray, rep: np.ndarray):
    """The study's model as the model stage would hand it over (bench/_common.py)."""
    from mcusearch.convert.frontend import graph_from_keras
    return _common.model_result(model, d, quant, probes, rep, input_shape=(30, 20, 1),
                                class_names=("swipe", "press", "pick", "empty"),
                                macs=graph_from_keras(model).macs)


def run_one(mr, converter: str, board_name: str, d: Path, cache: Path) -> dict:
    """Convert, build and measure the study's model (bench/_common.py)."""
    return _common.run_one(mr, converter, board_name, d, cache, MACS)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON list of records")
    ap.add_argument("--quick", action="store_true", help="qemu-m7 only, mcusearch and mcusearch-ref")
    ap.add_argument("--boards", default="qemu-m7,qemu-m4")
    ap.add_argument("--dtypes", default="int8,float32")
    ap.add_argument("--sparsity", default="0,0.9")
    ap.add_argument("--converters", default=None, help="default: every registered one")
    ap.add_argument("--zero-bias", action="store_true", help="zero biases (Keras' initialiser)")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("reports/bench-codegen"))
    args = ap.parse_args(argv)

    from mcusearch.boards import available_boards
    from mcusearch.convert import available_converters
    convs = available_converters()
    names = args.converters.split(",") if args.converters else [
        c for c in ("mcusearch", "mcusearch-ref", "aidge") if c in convs]
    boards = [b for b in args.boards.split(",") if b in available_boards()]
    if args.quick:
        names = [n for n in names if n.startswith("mcusearch")]
        boards = ["qemu-m7"]
    dtypes = args.dtypes.split(",")
    sparsities = [float(s) for s in args.sparsity.split(",")]
    out = args.out.resolve()
    cache = out / "cache"
    rng = np.random.default_rng(args.seed)
    probes = rng.normal(0, 1, (3, 30, 20, 1)).astype(np.float32)
    rep = rng.normal(0, 1, (100, 30, 20, 1)).astype(np.float32)

    records = []
    for sp in sparsities:
        model = build_model(args.seed, sp, args.zero_bias)
        for dtype in dtypes:
            mdir = out / f"model_s{sp:g}_b{int(not args.zero_bias)}"
            mr = model_result(model, mdir, dtype, probes, rep)
            for conv_name in names:
                if dtype not in convs.get(conv_name, ()):
                    continue
                for board in boards:
                    rec = {"converter": conv_name, "dtype": dtype, "sparsity": sp, "board": board}
                    d = out / f"{conv_name}_{dtype}_s{sp:g}_{board}"
                    try:
                        rec.update(run_one(mr, conv_name, board, d, cache))
                    except Exception as e:  # noqa: BLE001 - one failing setup must not end the bench
                        rec["error"] = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                        if not args.json:
                            traceback.print_exc()
                    records.append(rec)
                    if not args.json:
                        print(_line(rec), flush=True)
    _compare(records)
    if args.json:
        print(json.dumps(records, indent=1))
    else:
        print()
        print(table(records))
    return 0


def _compare(records: list[dict]) -> None:
    """Sparse vs dense of the same converter, dtype and board: what the zeros saved."""
    dense = {(r["converter"], r["dtype"], r["board"]): r for r in records
             if r["sparsity"] == 0 and "error" not in r}
    for r in records:
        base = dense.get((r["converter"], r["dtype"], r["board"]))
        if r["sparsity"] and base and "error" not in r:
            r["vs_dense_instructions"] = r["instructions"] / base["instructions"]
            r["vs_dense_flash"] = r["flash_bytes"] / base["flash_bytes"]
            r["instructions_saved"] = base["instructions"] - r["instructions"]
            r["flash_saved_bytes"] = base["flash_bytes"] - r["flash_bytes"]


def _line(r: dict) -> str:
    head = f"{r['converter']:14s} {r['dtype']:8s} sparsity {r['sparsity']:<4g} {r['board']:8s}"
    if "error" in r:
        return f"{head} FAILED: {r['error']}"
    return (f"{head} {r['instructions']:>13,.0f} instr  {r['instructions_per_mac']:6.3f}/MAC  "
            f"flash {r['flash_bytes'] / 1024:7.2f} KiB  RAM {r['ram_bytes'] / 1024:6.2f} KiB  ({r['seconds']} s)")


def table(records: list[dict]) -> str:
    rows = ["| converter | dtype | sparsity | board | instructions | instr/MAC | flash KiB | RAM KiB | vs dense |",
            "|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in records:
        if "error" in r:
            rows.append(f"| {r['converter']} | {r['dtype']} | {r['sparsity']:g} | {r['board']} | "
                        f"failed: {r['error'][:80]} | | | | |")
            continue
        vs = ""
        if "vs_dense_instructions" in r:
            vs = f"instr {r['vs_dense_instructions']:.3f}x, flash {r['vs_dense_flash']:.3f}x"
        rows.append(f"| {r['converter']} | {r['dtype']} | {r['sparsity']:g} | {r['board']} | "
                    f"{r['instructions']:,.0f} | {r['instructions_per_mac']:.3f} | "
                    f"{r['flash_bytes'] / 1024:.2f} | {r['ram_bytes'] / 1024:.2f} | {vs} |")
    lines = ["\n".join(rows), "", "Per-layer instructions (markers; per inference):"]
    for r in records:
        if r.get("layers"):
            split = ", ".join(f"{n.split(' ')[0]} {c / 1e6:.3f}M" for n, c in r["layers"])
            var = ""
            if r.get("variants") and any(v == "sparse" for v in r["variants"].values()):
                var = "  [sparse: " + ",".join(k for k, v in r["variants"].items() if v == "sparse") + "]"
            lines.append(f"  {r['converter']} {r['dtype']} s{r['sparsity']:g} {r['board']}: {split}{var}")
    lines += ["", "Model flash by part (bytes, from the ELF's symbols):"]
    for r in records:
        if r.get("flash_split"):
            split = ", ".join(f"{k} {v:,}" for k, v in r["flash_split"].items())
            params = r["flash_split"]["weights"] + r["flash_split"]["biases"]
            lines.append(f"  {r['converter']} {r['dtype']} s{r['sparsity']:g} {r['board']}: {split}"
                         f"  (weights + biases {params / 1000:.2f} kB of 1000 B)")
    lines += ["  The study's X-CUBE-AI flash figures are weights + biases only, in kB of 1000 B "
              "(int8: 65,968 + 1,184 B = 67.15 kB;", "  float32: 66,264 x 4 B = 265.06 kB); "
              "'flash' above is everything the model adds to the image, in KiB."]
    lines += ["", "Targets (issue 4, qemu-m7): " + "; ".join(f"{d} s{s:g}: {t}" for (d, s), t in TARGETS.items())]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
