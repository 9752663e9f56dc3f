"""Global MEAN as a streamed row kernel (issue 14): Keras' GlobalAveragePooling2D becomes TFLite
MEAN, which the optimised generator used to run with its reference kernel on the whole map (about
6 instructions an input value, and the map before it had to exist whole). Now it is computed one
input row per call like the global average pool: int8 by ``mean_global_s8`` (SXTAB16 sums, then
the reference kernel's rescaling: TFLite's 16-channel vector blocks round ties up, the tail away
from zero), float32 by ``avgpool_global_f32`` (the same sum in the same order over the count).

A 1-D sensor model's GlobalAveragePooling1D is a MEAN over the time axis of a (T, C) sequence:
the same kernel, one call over its 1 x T row; TensorFlow lowers its MaxPooling1D and
AveragePooling1D on T x 1 columns, which the default layout turns into 1 x T rows
(rows1d.to_rows), so that they too run once instead of T times.

int8 bit-exact with the TFLite interpreter, float32 within the converter's tolerance: on the host
(the portable C loop), qemu-m7 -O3 (the SXTAB16 loop) and qemu-m3 (no DSP extension).
"""
from __future__ import annotations

import json
import shutil

import pytest

import test_convert as tc
from mcusearch.convert import convert

L = tc.L
HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))


def gap_model():
    """Two global means of a conv's 7 x 5 x 20 map: keepdims (TFLite's 4-D kernel: channels
    0-15 in its vector loop, 16-19 in the tail) and without (TFLite's reference kernel), on 20 and
    on 7 channels (no whole group of 4 for the last 3), joined by a Dense."""
    inp = tc.tf.keras.Input((7, 5, 3))
    x = L.Conv2D(20, 3, padding="same", activation="relu", name="conv")(inp)
    a = L.Flatten()(L.GlobalAveragePooling2D(keepdims=True, name="gap_keep")(x))
    y = L.Conv2D(7, 1, name="narrow")(x)
    b = L.GlobalAveragePooling2D(name="gap")(y)
    return tc.tf.keras.Model(inp, L.Dense(4, name="fc")(L.Concatenate()([a, b])))


def sensor_model():
    """Conv1D, MaxPooling1D, Conv1D, AveragePooling1D, GlobalAveragePooling1D, Dense: 40 steps of
    6 axes, 12 channels (the tail of 4-channel groups empty) then 10 (a tail of 2)."""
    inp = tc.tf.keras.Input((40, 6))
    x = L.Conv1D(12, 5, activation="relu", name="c1")(inp)
    x = L.MaxPooling1D(2, name="mp")(x)
    x = L.Conv1D(10, 3, activation="relu", name="c2")(x)
    x = L.AveragePooling1D(2, name="ap")(x)
    x = L.GlobalAveragePooling1D(name="gap")(x)
    return tc.tf.keras.Model(inp, L.Dense(3, name="fc")(x))


MODELS = {"gap": gap_model, "sensor": sensor_model}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    d = tmp_path_factory.mktemp("mean")
    out = {}
    for name, build in MODELS.items():
        tc.tf.keras.utils.set_random_seed(5)
        m = tc._random_biases(build(), 5)
        out[name] = (m, tc.to_int8(m, d / f"{name}.tflite"), d / name)
    return out


@pytest.fixture(scope="module")
def case(cases):
    return cases["gap"]


def _convert(case, quant):
    m, tfl, d = case
    d.mkdir(exist_ok=True)
    w = d / quant
    x = tc.probes(m.input_shape[1:], n=tc.N_PROBE, seed=4)
    mr = tc.model_result(m, w, quant, tfl if quant == "int8" else None, x=x)
    conv = convert(mr, "mcusearch", w / "c")
    return conv, w, json.loads((w / "c" / "plan.json").read_text())


@pytest.mark.parametrize("quant", ["int8", "float32"])
def test_global_mean_streams_on_the_host(case, quant):
    conv, w, plan = _convert(case, quant)
    layers = {la["name"]: la for la in plan["layers"]}
    means = [la for la in plan["layers"] if la["kind"] == "Mean"]
    assert len(means) == 2
    kernel = "mean_global_s8" if quant == "int8" else "avgpool_global_f32"
    assert {la["kernel"] for la in means} == {kernel}
    assert all(la["extra"]["calls"] == 7 for la in means)          # one call per input row
    # the conv's 7-row map is no longer kept whole for the means: a few rows of a ring
    assert layers["conv"]["extra"]["ring_rows"] < 7
    tc.check(conv, w)                      # int8 bit-exact with TFLite, float32 within tolerance


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
@pytest.mark.parametrize("quant", ["int8", "float32"])
def test_global_mean_in_qemu(case, quant):
    from test_codegen_fast import run_on
    conv, w, _ = _convert(case, quant)
    boards = ["qemu-m7", "qemu-m3"] if quant == "int8" else ["qemu-m7"]
    for board in boards:
        run_on(board, conv, w / board)      # raises unless the outputs match the host's


@pytest.mark.parametrize("quant", ["int8", "float32"])
def test_sensor_model_pools_and_mean_run_once(cases, quant):
    conv, w, plan = _convert(cases["sensor"], quant)
    layers = {la["name"]: la for la in plan["layers"]}
    assert layers["mp"]["extra"]["calls"] == layers["ap"]["extra"]["calls"] == 1
    gap = next(la for la in plan["layers"] if la["kind"] == "Mean")
    assert gap["kernel"] == ("mean_global_s8" if quant == "int8" else "avgpool_global_f32")
    assert gap["extra"]["calls"] == 1
    tc.check(conv, w)


@pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")
def test_sensor_model_in_qemu(cases):
    from test_codegen_fast import run_on
    for quant in ("int8", "float32"):
        conv, w, _ = _convert(cases["sensor"], quant)
        run_on("qemu-m7", conv, w / "qemu-m7")
