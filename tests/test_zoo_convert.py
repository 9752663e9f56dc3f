"""Issue 9's target: every zoo model (MLPerf Tiny, keras.applications MobileNets, one small model
per op family) converts with the `mcusearch` generator and runs on qemu-m7, float32 and int8, with
outputs matching the host model (int8 bit-exact with the TFLite interpreter's built-in kernels,
float32 within atol 1e-5 / rtol 1e-4 of Keras); the reference generator (`mcusearch-ref`) matches
too, on the host. The probe inputs give clearly different outputs (no probe note), so a match
proves something."""
from __future__ import annotations

import shutil

import pytest

import test_convert as tc
from mcusearch.convert import convert
from mcusearch.model import zoo
from mcusearch.model.quantize import to_int8_tflite
from test_codegen_fast import run_on

HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
N_PROBE = 4
# The reference generator (the oracle) is checked on the host for models up to this many MACs;
# the large ones' reference kernels are the same code, and the suite has a time budget.
REF_MACS = 1_000_000


# The reference models (MLPerf Tiny, keras.applications) run in test_zoo_convert_reference.py, so
# that the two files' long runs go to different pytest-xdist workers.
REFERENCE = [n for n in zoo.MODELS if n.startswith(("mlperf_", "keras_"))]
SMALL = [n for n in zoo.MODELS if n not in REFERENCE]


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("name", SMALL)
def test_zoo_model_float32_and_int8_on_qemu_m7(name, tmp_path):
    check_zoo_model(name, tmp_path)


def check_zoo_model(name, tmp_path):
    """Model ``name`` in float32 and int8: `mcusearch` on qemu-m7, `mcusearch-ref` on the host."""
    model = zoo.build(name)
    x = zoo.sample_inputs(name, N_PROBE, seed=5)
    tfl = to_int8_tflite(model, zoo.sample_inputs(name, 16, seed=9), tmp_path / "m.tflite")
    for quant in ("float32", "int8"):
        d = tmp_path / quant
        mr = tc.model_result(model, d, quant, tfl if quant == "int8" else None, x=x)
        conv = convert(mr, "mcusearch", d / "fast")
        assert conv.probe_note == ""
        run_on("qemu-m7", conv, d)                # raises unless the outputs match
        if mr.macs <= REF_MACS:
            tc.check(convert(mr, "mcusearch-ref", d / "ref"), d / "ref_host")
