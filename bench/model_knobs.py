"""The model knobs of the 2020 study, one at a time and combined, on the default model.

Prints a Markdown table in the study's layout (setup | ... | accuracy) for the default spec's
model and data (search.yaml: the study's CNN on the smartwatch frames): channel pruning with and
without re-training and with three criteria, magnitude pruning, int8 / int16x8 post-training
quantisation, int8 quantisation-aware training, and their combinations. Every row is evaluated
on the same held-out test set (Keras for float32, the TFLite interpreter for the quantised
models); the study's own accuracy is shown where it measured the same setup (on its radar data:
compare trends, not values).

The sizes are the model's own, from its shapes (not a firmware image): ``weights kB`` is the
dense storage of all parameters in the model's format (what the current generators store),
``non-zero kB`` the non-zero parameters only (what a sparse format could reach), ``act. kB`` the
largest activation tensor (a lower bound of the RAM).

    .venv/bin/python bench/model_knobs.py                 # the default budget (a few minutes)
    .venv/bin/python bench/model_knobs.py --quick         # 2,000 / 800 frames, 3 + 1 epochs
Models are cached in search.yaml's cache folder (shared with `make demo`).
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcusearch.model import ModelKnobs, WEIGHT_BYTES, build_model  # noqa: E402
from mcusearch.spec import load_spec  # noqa: E402


def rows(retrain: int, mag_epochs: int) -> list[tuple[str, ModelKnobs, float | None]]:
    """(setup, knobs, the study's accuracy for that setup or None)."""
    def removed(n: int, **kw) -> ModelKnobs:   # n of 32 filters removed from every conv
        return ModelKnobs(channels=(32 - n,) * 3, **kw)

    mag = dict(sparsity_epochs=mag_epochs)
    return [
        ("float32, unpruned", ModelKnobs(), 1.000),
        ("int8 (PTQ), unpruned", ModelKnobs(quantization="int8"), 1.000),
        ("int16x8 (PTQ), unpruned", ModelKnobs(quantization="int16x8"), None),
        ("int8 (QAT), unpruned", ModelKnobs(quantization="int8-qat"), None),
        ("float32, 8 channels removed, no re-training", removed(8, retrain_epochs=0), 0.9916),
        ("float32, 13 channels removed, no re-training", removed(13, retrain_epochs=0), 0.4862),
        ("float32, 20 channels removed + re-training (L1)", removed(20, retrain_epochs=retrain),
         0.9976),
        ("float32, 20 channels removed + re-training (L2)",
         removed(20, retrain_epochs=retrain, criterion="l2"), None),
        ("float32, 20 channels removed + re-training (random)",
         removed(20, retrain_epochs=retrain, criterion="random"), None),
        ("int8, 20 channels removed + re-training",
         removed(20, retrain_epochs=retrain, quantization="int8"), 0.9976),
        ("float32, 30 channels removed + re-training", removed(30, retrain_epochs=retrain),
         0.9579),
        ("int8, 30 channels removed + re-training",
         removed(30, retrain_epochs=retrain, quantization="int8"), 0.9567),
        ("float32, 82 % magnitude-pruned", ModelKnobs(sparsity=0.82, **mag), 0.9927),
        ("float32, 90 % magnitude-pruned", ModelKnobs(sparsity=0.9, **mag), 0.9855),
        ("float32, 94 % magnitude-pruned", ModelKnobs(sparsity=0.94, **mag), 0.7063),
        ("int8 + 90 % magnitude pruning", ModelKnobs(sparsity=0.9, quantization="int8", **mag),
         0.9795),
        ("int8 (QAT, sparsity kept) + 90 % magnitude pruning",
         ModelKnobs(sparsity=0.9, quantization="int8-qat", **mag), None),
        ("float32, 20 channels removed + re-training + 90 % magnitude",
         removed(20, retrain_epochs=retrain, sparsity=0.9, **mag), None),
        ("int8, 20 channels removed + re-training + 90 % magnitude",
         removed(20, retrain_epochs=retrain, sparsity=0.9, quantization="int8", **mag), None),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", default=str(ROOT / "search.yaml"))
    ap.add_argument("--quick", action="store_true",
                    help="2,000 training / 800 test frames, 3 base epochs, 1 fine-tuning epoch")
    ap.add_argument("--max-train", type=int)
    ap.add_argument("--max-test", type=int)
    ap.add_argument("--epochs", type=int, help="base training epochs (default: the spec's)")
    ap.add_argument("--retrain-epochs", type=int, default=3,
                    help="re-training after channel removal (the study: 3)")
    ap.add_argument("--magnitude-epochs", type=int, default=4,
                    help="fine-tuning under magnitude pruning (the study: 15)")
    ap.add_argument("--qat-epochs", type=int, default=2)
    ap.add_argument("--cache", help="model cache folder (default: the spec's)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.max_train = args.max_train or 2000
        args.max_test = args.max_test or 800
        args.epochs = args.epochs or 3
        args.retrain_epochs = args.magnitude_epochs = args.qat_epochs = 1
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("tensorflow", "absl", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    spec = load_spec(args.spec)
    cfg = spec.base_model_config()
    cfg = dataclasses.replace(
        cfg, qat_epochs=args.qat_epochs,
        dataset=dataclasses.replace(cfg.dataset, max_train=args.max_train or cfg.dataset.max_train,
                                    max_test=args.max_test or cfg.dataset.max_test),
        train=dataclasses.replace(cfg.train, epochs=args.epochs or cfg.train.epochs))
    cache = Path(args.cache) if args.cache else spec.cache_dir

    header = ["setup", "params", "non-zero", "weights kB", "non-zero kB", "act. kB", "zeros",
              "accuracy", "balanced", "study"]
    table = []
    t_all = time.perf_counter()
    first = None
    for setup, knobs, study in rows(args.retrain_epochs, args.magnitude_epochs):
        t0 = time.perf_counter()
        r = build_model(cfg, knobs, cache)
        first = first or r
        fp, ws = r.extra["footprint"], r.extra["weight_sparsity"]
        tw = r.extra.get("tflite_weights")
        wb = WEIGHT_BYTES[r.quantization]
        nonzero = fp["nonzero_params"]          # of the float model; quantised: fewer if weights
        if tw:                                  # rounded to zero
            nonzero -= tw["zeros"] - ws["kernel_zeros"]
        zeros = tw["zero_fraction"] if tw else ws["sparsity"]
        table.append([setup, f"{r.params:,}", f"{nonzero:,}",
                      f"{r.params * wb / 1024:.2f}", f"{nonzero * wb / 1024:.2f}",
                      f"{fp['activation_bytes'] / 1024:.2f}", f"{zeros:.3f}",
                      f"{r.accuracy:.4f}", f"{r.balanced_accuracy:.4f}",
                      "–" if study is None else f"{study:.4f}"])
        print(f"[{time.perf_counter() - t_all:6.0f} s] {setup}: accuracy {r.accuracy:.4f} "
              f"({r.extra['cache']}, {time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    print(f"Model knobs on {first.extra.get('dataset')} ({first.extra.get('n_train')} training, "
          f"{first.extra.get('n_test')} test frames; base {cfg.train.epochs} epochs, re-training "
          f"{args.retrain_epochs}, magnitude fine-tuning {args.magnitude_epochs}, QAT "
          f"{args.qat_epochs}; seed {cfg.train.seed}):\n")
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in table:
        print(line(row))
    print("\nweights kB: all parameters at the format's width (dense storage); non-zero kB: the "
          "non-zero ones only (a sparse format's floor); act. kB: the largest activation tensor."
          "\nzeros: exact zeros among the conv/dense weights (of the quantised tensors in int8 / "
          "int16x8 rows). study: the 2020 study's accuracy for the same setup (on radar data).")
    print(f"{time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
