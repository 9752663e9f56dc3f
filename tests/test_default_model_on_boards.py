"""The default model (the study's CNN at full width, 66,264 parameters) on every emulated board:
generated C, cross-compiled for the board's core, run in QEMU, outputs checked against the host."""
from __future__ import annotations

import numpy as np
import pytest

import mcusearch  # noqa: F401  (selects tf-keras before TensorFlow loads)
from mcusearch.boards import available_boards, get_board
from mcusearch.build import build
from mcusearch.convert import convert
from mcusearch.figures import Provenance
from mcusearch.measure import measure
from mcusearch.model import ModelResult

pytestmark = pytest.mark.slow
EMULATED = sorted(n for n, c in available_boards().items() if c.kind == "emulated")
# Cores that run the float model through libgcc's soft float, ~100+ instructions per MAC: the M0+
# runs the int8 model instead (what such a part would run; the float one exceeds a second of
# emulation per input).
INT8_ONLY = {"qemu-m0plus"}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    from mcusearch.model.architectures import study_cnn
    from mcusearch.model.evaluate import count_macs, count_params

    d = tmp_path_factory.mktemp("default-model")
    keras_model = study_cnn((30, 20, 1), 4)
    assert count_params(keras_model) == 66_264
    keras_model.save(d / "model.h5")
    x = np.random.default_rng(0).normal(size=(2, 30, 20, 1)).astype(np.float32)
    model = ModelResult(keras_path=d / "model.h5", tflite_path=None, quantization="float32",
                        accuracy=float("nan"), params=66_264, macs=count_macs(keras_model),
                        input_shape=(30, 20, 1), class_names=("a", "b", "c", "d"), probe_inputs=x,
                        probe_labels=np.zeros(2, np.int64), cache_key="")
    return model, convert(model, "mcusearch", d / "c"), d


@pytest.fixture(scope="module")
def converted_int8(converted, tmp_path_factory):
    import dataclasses

    import tensorflow as tf

    from mcusearch.model.quantize import to_int8_tflite

    model, _, d = converted
    keras_model = tf.keras.models.load_model(model.keras_path, compile=False)
    rep = np.random.default_rng(1).normal(size=(16, 30, 20, 1)).astype(np.float32)
    tfl = to_int8_tflite(keras_model, rep, d / "model.tflite")
    m8 = dataclasses.replace(model, tflite_path=tfl, quantization="int8")
    return m8, convert(m8, "mcusearch", d / "c8"), d


def test_every_emulated_board_is_covered():
    assert {"qemu-m7", "qemu-m4", "qemu-m3", "qemu-m33", "qemu-m0plus", "qemu-m55"} <= set(EMULATED)


@pytest.mark.parametrize("name", EMULATED)
def test_default_model_runs_on(name, request):
    model, conv, d = request.getfixturevalue("converted_int8" if name in INT8_ONLY else "converted")
    board = get_board(name)
    fw = build(conv, board, "-O2", d / f"build-{name}")
    meas = measure(fw, conv, board, timeout_s=300)
    assert meas.argmax_agreement == 1.0 and meas.max_abs_error <= 1e-4
    assert meas.per_inference.provenance is Provenance.EMULATED
    # Hard-float cores run the float model at roughly one to two instructions per MAC; the M3 has
    # no FPU and calls libgcc's soft-float routines for every multiply-add.
    per_mac = meas.per_inference.value / model.macs
    if name in INT8_ONLY:      # no DSP: the plain C int8 path; 66,264 int8 weights are 65 kB
        assert 1 < per_mac < 40, per_mac
        assert 64 < fw.model_flash_bytes / 1024 < 90
        from mcusearch.estimate import estimate_cycles
        est = estimate_cycles(fw.elf, board, meas.per_inference.value, d / f"profile-{name}", timeout_s=300)
        # the M0+ model: 1-cycle ALU, 2-cycle loads/stores and taken branches: more cycles than instructions
        assert est.cycles.provenance is Provenance.ESTIMATED and "cortex-m0plus" in est.cycles.method.lower()
        assert meas.per_inference.value < est.cycles.value < 3 * meas.per_inference.value
        return
    assert (per_mac > 5) if board.fpu == "none" else (0.8 < per_mac < 3), per_mac
    assert 250 < fw.model_flash_bytes / 1024 < 300  # 66,264 float weights are 259 kB
