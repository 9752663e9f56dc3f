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


def test_every_emulated_board_is_covered():
    assert {"qemu-m7", "qemu-m4", "qemu-m3", "qemu-m33"} <= set(EMULATED)


@pytest.mark.parametrize("name", EMULATED)
def test_default_model_runs_on(name, converted):
    model, conv, d = converted
    board = get_board(name)
    fw = build(conv, board, "-O2", d / f"build-{name}")
    meas = measure(fw, conv, board, timeout_s=300)
    assert meas.argmax_agreement == 1.0 and meas.max_abs_error <= 1e-4
    assert meas.per_inference.provenance is Provenance.EMULATED
    # Hard-float cores run the float model at roughly one to two instructions per MAC; the M3 has
    # no FPU and calls libgcc's soft-float routines for every multiply-add.
    per_mac = meas.per_inference.value / model.macs
    assert (per_mac > 5) if name == "qemu-m3" else (0.8 < per_mac < 3), per_mac
    assert 250 < fw.model_flash_bytes / 1024 < 300  # 66,264 float weights are 259 kB
