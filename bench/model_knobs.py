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
    .venv/bin/python bench/model_knobs.py --criteria      # pruning criteria on a BatchNorm model
Models are cached in search.yaml's cache folder (shared with `make demo`).

``--criteria`` measures instead which channel-pruning criterion (l1, l2, random, bn) keeps the
most accuracy on a trained model with BatchNorm: a small DS-CNN-like network (conv + BN + ReLU,
three depthwise-separable blocks, global pooling, Dense) trained on the spec's data (the watch
frames: training subjects 1-8, test subjects 9-10), with 25 % and 50 % of every conv's filters
removed: right after the surgery, with the BatchNorm statistics re-estimated (no training), and
after re-training (Adam at half the base rate). random is the mean over three seeds (min-max in
brackets). About 5 minutes on 2 idle cores.
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


def ds_cnn_like(input_shape, n_classes: int, width: int = 32, blocks: int = 3):
    """Conv 3x3 + BatchNorm + ReLU, ``blocks`` x (depthwise 3x3 + BN + ReLU, pointwise conv +
    BN + ReLU), global average pooling, Dense softmax: the shape of MLPerf Tiny's DS-CNN."""
    import tensorflow as tf
    L = tf.keras.layers

    def cbr(x, layer, name):
        x = L.BatchNormalization(name=f"{name}_bn")(layer(x))
        return L.ReLU(name=f"{name}_relu")(x)

    inp = tf.keras.Input(shape=tuple(input_shape), name="input")
    x = cbr(inp, L.Conv2D(width, 3, padding="same", use_bias=False, name="conv1"), "conv1")
    for b in range(1, blocks + 1):
        x = cbr(x, L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{b}"), f"dw{b}")
        x = cbr(x, L.Conv2D(width, 1, use_bias=False, name=f"pw{b}"), f"pw{b}")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return tf.keras.Model(inp, L.Dense(n_classes, activation="softmax", name="fc")(x),
                          name="ds_cnn_like")


RECALIBRATE = 1024   # training frames the BatchNorm statistics are re-estimated on


def criteria(cfg, retrain: int, seeds: int = 3) -> None:
    """Print the table of ``--criteria`` (see the module docstring)."""
    import dataclasses as dc
    import numpy as np
    from mcusearch.model import CRITERIA, normalise_knobs
    from mcusearch.model.architectures import channel_layout
    from mcusearch.model.datasets import load_dataset
    from mcusearch.model.evaluate import keras_accuracy
    from mcusearch.model.prune import prune_channels
    from mcusearch.model.train import set_seeds, train_model

    t_all = time.perf_counter()
    ds = load_dataset(cfg.dataset)
    set_seeds(cfg.train.seed)
    model = ds_cnn_like(ds.input_shape, ds.n_classes)
    base = train_model(model, ds, cfg.train, label="base").test_accuracy
    layout = channel_layout(model)
    print(f"[{time.perf_counter() - t_all:6.0f} s] base: {model.count_params():,} params, "
          f"accuracy {base:.4f}", file=sys.stderr)
    rows = []
    for removed in (0.25, 0.5):
        for crit in CRITERIA:
            runs = []
            for seed in range(seeds if crit == "random" else 1):
                tcfg = dc.replace(cfg.train, seed=cfg.train.seed + seed)
                keep = dict(normalise_knobs(ModelKnobs(keep_ratio=1 - removed, criterion=crit),
                                            layout)[0]["keep"])
                pruned = prune_channels(model, keep, criterion=crit, train_cfg=tcfg)
                before = keras_accuracy(pruned, ds.x_test, ds.y_test)
                pruned = prune_channels(model, keep, ds, criterion=crit, train_cfg=tcfg,
                                        recalibrate=RECALIBRATE)
                recal = keras_accuracy(pruned, ds.x_test, ds.y_test)
                report: dict = {}
                after = prune_channels(model, keep, ds, retrain, criterion=crit, train_cfg=tcfg,
                                       report=report)
                runs.append((before, recal, report["retrain"].test_accuracy,
                             after.count_params()))
            cell = lambda v: (f"{v.mean():.4f}" if len(v) == 1  # noqa: E731
                              else f"{v.mean():.4f} ({v.min():.4f}-{v.max():.4f})")
            cells = [cell(np.array([r[i] for r in runs])) for i in range(3)]
            rows.append([f"{removed:.0%}", crit, f"{runs[0][3]:,}", *cells])
            print(f"[{time.perf_counter() - t_all:6.0f} s] {removed:.0%} {crit}: "
                  f"{' / '.join(cells)}", file=sys.stderr)
    header = ["removed", "criterion", "params", "no re-training", "BN re-estimated",
              f"{retrain} re-training epochs"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "| " + " | ".join(  # noqa: E731
        c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))) + " |"
    print(f"Channel-pruning criteria on a trained DS-CNN-like model with BatchNorm "
          f"({model.count_params():,} params, {len(layout['convs'])} convs) on {ds.name} "
          f"({len(ds.y_train)} training, {len(ds.y_test)} test frames; base {cfg.train.epochs} "
          f"epochs, accuracy {base:.4f}; seed {cfg.train.seed}):\n")
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print(line(row))
    print("\nremoved: the share of every conv's filters removed (the depthwise convs and the "
          "BatchNorms follow). Accuracy: Keras on the held-out test set (H), right after the "
          f"surgery; with the BatchNorm statistics re-estimated on {RECALIBRATE} training "
          f"frames (no training); after {retrain} re-training epochs (without re-estimation, "
          f"as the model stage does). random: mean of {seeds} seeds (min-max). bn: |gamma| of "
          "the BatchNorm after each conv.")
    print(f"{time.perf_counter() - t_all:.0f} s")


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
    ap.add_argument("--criteria", action="store_true",
                    help="measure the channel-pruning criteria on a BatchNorm model instead")
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
    if args.criteria:
        criteria(cfg, args.retrain_epochs)
        return 0

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
