"""Magnitude pruning: zero the smallest weights with tensorflow-model-optimization.

``prune_low_magnitude`` wraps every layer with a kernel (Conv, Dense, depthwise and separable
convs; biases and BatchNormalization stay dense) and fine-tunes the model while a
``PolynomialDecay`` schedule raises the fraction of zeroed weights from ``initial_sparsity`` to
the final sparsity (the 2020 study: 15 epochs, initial 0, begin step 0, frequency 50). The mask
is updated on the steps ``begin + k * frequency``, so the schedule must *end* on such a step or
the final sparsity is never reached (measured: frequency 100, end step 126 gives 0.892 for a 0.9
target); :func:`polynomial_schedule` picks that end step. ``strip_pruning`` then gives a plain
Keras model whose pruned weights are exact zeros: every converter takes it as it is.
"""
from __future__ import annotations

import logging
import math
import time

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow is imported)
import numpy as np
import tensorflow as tf

from mcusearch.errors import SpecError, StageError
from mcusearch.model import Dataset, MagnitudeSchedule, TrainConfig

log = logging.getLogger("mcusearch.model")

# Layer classes whose kernels are pruned (tfmot's registry prunes these weights).
PRUNED_KINDS = ("Conv1D", "Conv2D", "Conv3D", "Conv2DTranspose", "Conv3DTranspose", "Dense",
                "DepthwiseConv2D", "SeparableConv1D", "SeparableConv2D")


def polynomial_schedule(total_steps: int, frequency: int, begin_step: int = 0) -> dict:
    """The schedule's steps for ``total_steps`` training steps (batches).

    tfmot counts the steps 1..total_steps and updates the mask at ``begin + k * frequency``. The
    end step is the last such step that training reaches, so the final sparsity is reached. When
    there are too few steps for the asked frequency (small data, few epochs) the frequency is
    reduced to give 4 updates, and ``note`` says so.
    """
    if total_steps < 1:
        raise StageError("model", "magnitude pruning needs at least one training step")
    notes = []
    begin = int(begin_step)
    if begin >= total_steps:
        notes.append(f"begin_step {begin} is beyond the {total_steps} training steps: begins at 0")
        begin = 0
    span = total_steps - begin
    freq = int(frequency)
    if freq > span:
        freq = max(1, span // 4)
        notes.append(f"frequency {frequency} exceeds the {span} pruning steps: {freq}")
    end = begin + freq * (span // freq)
    return {"begin_step": begin, "end_step": end, "frequency": freq, "total_steps": total_steps,
            "note": "; ".join(notes)}


def _tfmot():
    import tensorflow_model_optimization as tfmot
    return tfmot


def kernel_names(layer) -> list[str]:
    """The weight variables of ``layer`` that magnitude pruning zeroes (its kernels)."""
    if type(layer).__name__ not in PRUNED_KINDS:
        return []
    return [w.name for w in layer.weights if "kernel" in w.name.split("/")[-1]]


def weight_sparsity(model: tf.keras.Model) -> dict:
    """Exact zeros of the pruned weights (kernels), per layer and in total, and the model's
    non-zero parameters (all weights, biases included)."""
    layers = {}
    zeros = size = 0
    for layer in model.layers:
        names = kernel_names(layer)
        if not names:
            continue
        z = n = 0
        for w in layer.weights:
            if w.name in names:
                v = w.numpy()
                z += int(np.count_nonzero(v == 0))
                n += int(v.size)
        layers[layer.name] = {"zeros": z, "size": n, "sparsity": z / n if n else 0.0}
        zeros, size = zeros + z, size + n
    nonzero = int(sum(np.count_nonzero(w) for w in model.get_weights()))
    return {"layers": layers, "kernel_zeros": zeros, "kernel_size": size,
            "sparsity": zeros / size if size else 0.0, "nonzero_params": nonzero,
            "params": int(model.count_params())}


def magnitude_prune(model: tf.keras.Model, data: Dataset, sparsity: float, epochs: int,
                    train_cfg: TrainConfig, schedule: MagnitudeSchedule = MagnitudeSchedule(),
                    lr_factor: float = 0.5, report: dict | None = None) -> tf.keras.Model:
    """Fine-tune a copy of ``model`` for ``epochs`` while pruning its kernels to ``sparsity``;
    return the stripped model (plain layers, exact zeros). ``model`` is left unchanged.

    ``report`` receives the effective schedule, the fine-tuning result and the real sparsity
    per layer of the stripped model.
    """
    if not 0.0 < float(sparsity) < 1.0:
        raise SpecError("knobs.magnitude.sparsity", f"must be in (0, 1), got {sparsity!r}")
    if int(epochs) < 1:
        raise SpecError("knobs.magnitude.epochs", f"must be >= 1, got {epochs!r}")
    if not 0.0 <= schedule.initial_sparsity < sparsity:
        raise SpecError("model.magnitude_schedule.initial_sparsity",
                        f"must be >= 0 and below the final sparsity {sparsity}, got "
                        f"{schedule.initial_sparsity}")
    tfmot = _tfmot()
    from mcusearch.model.train import outputs_logits, set_seeds, train_model

    t0 = time.perf_counter()
    steps = int(epochs) * math.ceil(len(data.y_train) / train_cfg.batch_size)
    sched = polynomial_schedule(steps, schedule.frequency, schedule.begin_step)
    if sched["note"]:
        log.info("magnitude pruning schedule: %s", sched["note"])
    poly = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=float(schedule.initial_sparsity), final_sparsity=float(sparsity),
        begin_step=sched["begin_step"], end_step=sched["end_step"],
        frequency=sched["frequency"])

    set_seeds(train_cfg.seed)
    src = tf.keras.models.clone_model(model)      # a private copy: the wrappers share its weights
    src.set_weights(model.get_weights())
    logits = outputs_logits(src)

    def wrap(layer):
        if type(layer).__name__ in PRUNED_KINDS:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=poly)
        return layer

    try:
        # the wrappers and the layers returned as they are keep src's weights
        wrapped = tf.keras.models.clone_model(src, clone_function=wrap)
    except Exception as e:  # noqa: BLE001
        raise StageError("model", f"magnitude pruning could not wrap the model: "
                         f"{type(e).__name__}: {str(e)[:300]}") from e
    result = train_model(wrapped, data, train_cfg, epochs=int(epochs),
                         learning_rate=train_cfg.learning_rate * lr_factor,
                         label=f"magnitude {sparsity:g}", from_logits=logits,
                         callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    stripped = tfmot.sparsity.keras.strip_pruning(wrapped)
    real = weight_sparsity(stripped)
    log.info("magnitude pruning to %.3g: real kernel sparsity %.4f (%d non-zero of %d params) "
             "in %.1f s", sparsity, real["sparsity"], real["nonzero_params"], real["params"],
             time.perf_counter() - t0)
    if report is not None:
        report.update(schedule=sched, train=result, real=real)
    return stripped
