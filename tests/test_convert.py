"""The mcusearch C generator and its reference kernels, against real TensorFlow and real gcc.

Float32: generated C (host gcc) vs Keras within the converter's tolerance. int8: generated C vs
the TFLite interpreter's built-in kernels, bit-exact, on the model's output (int8 softmax
probabilities, TFLite's float look-up-table kernel).
"""
from __future__ import annotations

import math
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import mcusearch  # noqa: F401  (tf-keras before TensorFlow)
import tensorflow as tf
from mcusearch.convert import CONVERTERS, ConvertResult, convert
from mcusearch.convert import cgen
from mcusearch.convert.frontend import graph_from_keras, graph_from_tflite
from mcusearch.convert.graph import Dense
from mcusearch.convert.quant import quantize_input, quantize_multiplier
from mcusearch.convert.host import host_run
from mcusearch.errors import StageError
from mcusearch.model import ModelResult
from mcusearch.model.evaluate import count_macs
from mcusearch.model.quantize import tflite_converter

L = tf.keras.layers
KERNELS = cgen.KERNELS_DIR
N_PROBE = 20


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def study_cnn(shape=(12, 8, 1), filters=4, hidden=16, classes=4, seed=0):
    """The study's topology: (Conv 3x3 same relu x2, MaxPool 2x2) x3, Flatten, Dense relu, Dropout,
    Dense softmax - with random (non-zero) biases so every bias path is exercised."""
    tf.keras.utils.set_random_seed(seed)
    layers = [L.InputLayer(shape)]
    for i in range(3):
        layers += [L.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{2 * i + 1}"),
                   L.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{2 * i + 2}"),
                   L.MaxPooling2D(2, name=f"pool{i + 1}")]
    layers += [L.Flatten(name="flatten"), L.Dense(hidden, activation="relu", name="hidden"),
               L.Dropout(0.5, name="dropout"), L.Dense(classes, activation="softmax", name="logits")]
    return _random_biases(tf.keras.Sequential(layers), seed)


def variant_cnn(lead_relu: bool, seed=1):
    """Odd sizes, stride 2 with asymmetric 'same' padding, 5x5, 'valid', pooling 3/2 'same',
    a conv without bias, standalone ReLU/ReLU6 layers, a dense without bias and no softmax."""
    tf.keras.utils.set_random_seed(seed)
    layers = [L.InputLayer((14, 9, 2))]
    if lead_relu:
        layers.append(L.ReLU(name="relu_in"))                    # unfusable: a clamp kernel
    layers += [
        L.Conv2D(5, 5, strides=2, padding="same", name="conv5x5"),  # 14x9 -> 7x5, pad (1, 2)
        L.ReLU(max_value=6.0, name="relu6"),                     # fused into the conv
        L.Conv2D(6, (3, 2), strides=(2, 1), padding="valid", use_bias=False, activation="relu",
                 name="conv_valid"),
        L.MaxPooling2D(pool_size=3, strides=2, padding="same", name="pool_same"),  # 3x4 -> 2x2
        L.Conv2D(3, 1, activation="relu", name="conv1x1"),
        L.Flatten(name="flatten"),
        L.Dense(7, activation="relu", use_bias=False, name="hidden"),
        L.Dense(3, name="out"),
    ]
    return _random_biases(tf.keras.Sequential(layers), seed)


def _random_biases(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        w = layer.get_weights()
        if len(w) == 2:
            layer.set_weights([w[0], rng.normal(0, 0.1, w[1].shape).astype(np.float32)])
    return model


def probes(shape, n=N_PROBE, seed=5):
    x = np.random.default_rng(seed).normal(0, 1.5, (n,) + tuple(shape)).astype(np.float32)
    x[0].flat[:3] = [9.0, -9.0, 0.0]                              # saturate the int8 input
    return x


def to_int8(model, path: Path, per_channel=True, seed=3) -> Path:
    rep = np.random.default_rng(seed).normal(0, 1, (32,) + model.input_shape[1:]).astype(np.float32)
    c = tflite_converter(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(len(rep)))
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = tf.int8
    c.inference_output_type = tf.int8
    if not per_channel:
        c._experimental_disable_per_channel = True
        c._experimental_disable_per_channel_quantization_for_dense_layers = True
    path.write_bytes(c.convert())
    return path


def model_result(model, d: Path, quant="float32", tflite=None, x=None) -> ModelResult:
    d.mkdir(parents=True, exist_ok=True)
    keras_path = d / "model.h5"
    model.save(keras_path)
    x = probes(model.input_shape[1:]) if x is None else x
    macs = count_macs(model)              # Keras' count: no TFLite conversion for the test's figure
    return ModelResult(keras_path=keras_path, tflite_path=tflite, quantization=quant, accuracy=0.0,
                       params=model.count_params(), macs=macs,
                       input_shape=tuple(model.input_shape[1:]),
                       class_names=tuple(f"c{i}" for i in range(model.output_shape[-1])),
                       probe_inputs=x, probe_labels=np.zeros(len(x), int), cache_key="test")


STRICT = ["-Wall", "-Wextra", "-Werror", "-pedantic"]


def host_exe(d: Path, name: str, source: str, include_dirs=()) -> Path:
    """Compile a small C test program (strict C99, -O2) on the host; returns the executable."""
    (d / f"{name}.c").write_text(source)
    exe = d / name
    subprocess.run(["gcc", "-O2", "-std=c99", *STRICT, *[f"-I{i}" for i in include_dirs],
                    str(d / f"{name}.c"), "-o", str(exe)], check=True)
    return exe


def check(conv: ConvertResult, work: Path) -> np.ndarray:
    """Host-run the generated C (warning-free under strict flags) and compare with the host model;
    also cross-compile it for an FPU-less Cortex-M0+ when the Arm toolchain is installed."""
    got = host_run(conv, work / "host", extra_cflags=STRICT)
    if shutil.which("arm-none-eabi-gcc"):
        for src in conv.sources:
            subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-O2", *STRICT, "-mcpu=cortex-m0plus",
                            "-mthumb", *[f"-I{d}" for d in conv.include_dirs], "-c", str(src),
                            "-o", str(work / f"{src.stem}.m0.o")], check=True)
    assert got.shape == conv.expected.shape
    if conv.output_dtype == "int8":
        assert got.dtype == np.int8 and conv.atol == 0
        np.testing.assert_array_equal(got, conv.expected)
    else:
        np.testing.assert_allclose(got, conv.expected, atol=conv.atol, rtol=conv.rtol)
    return got


def intermediate_bytes(model, elem: int) -> list[int]:
    """Bytes of each emitted op's output, from Keras' own shapes (Flatten/Dropout emit nothing)."""
    out = []
    for layer in model.layers:
        t = type(layer).__name__
        if t in ("Conv2D", "MaxPooling2D", "Dense") or (t == "ReLU" and not out):
            out.append(int(np.prod(layer.output_shape[1:])) * elem)
            if t == "Dense" and layer.get_config()["activation"] == "softmax":
                out.append(out[-1])
    return out


def documented_arena(sizes: list[int]) -> int:
    inter = [(s + 3) // 4 * 4 for s in sizes[:-1]]
    return max([a + b for a, b in zip(inter, inter[1:])] + inter + [0])


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("convert")


@pytest.fixture(scope="module")
def small(work):
    m = study_cnn()
    return m, to_int8(m, work / "small.tflite")


# ---------------------------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------------------------

def _doubling_high_mul(acc: int, mult: int, shift: int) -> tuple[int, int]:
    """gemmlowp SaturatingRoundingDoublingHighMul of (acc << left shift), and the right shift."""
    left, right = max(shift, 0), max(-shift, 0)
    a = (acc << left) & 0xFFFFFFFF
    a = a - (1 << 32) if a >= 1 << 31 else a
    v = a * mult + ((1 << 30) if a * mult >= 0 else 1 - (1 << 30))
    return (v >> 31 if v >= 0 else -((-v) >> 31)), right     # C division: toward zero


def _requant_tflite(acc: int, mult: int, shift: int) -> int:
    """Mode 0: then round half up (TFLite's built-in kernels, ruy)."""
    hi, right = _doubling_high_mul(acc, mult, shift)
    return (hi + (1 << (right - 1))) >> right if right else hi


def _requant_gemmlowp(acc: int, mult: int, shift: int) -> int:
    """Mode 1: then RoundingDivideByPOT, ties away from zero (TFLite reference, TFLM, CMSIS-NN)."""
    hi, right = _doubling_high_mul(acc, mult, shift)
    mask = (1 << right) - 1
    return (hi >> right) + (1 if (hi & mask) > (mask >> 1) + (1 if hi < 0 else 0) else 0)


def _requant_single(acc: int, mult: int, shift: int) -> int:
    """Mode 2: TFLITE_SINGLE_ROUNDING."""
    total = 31 - shift
    return (acc * mult + (1 << (total - 1))) >> total


def test_requantize_helper_matches_tflite_arithmetic(work):
    rnd = random.Random(7)
    cases = [(0, 1 << 30, 0), (-1, 1 << 30, -1), (1, 1 << 30, -1), (3, 1 << 30, -1), (-3, 1 << 30, -1),
             (2**31 - 1, 2**31 - 1, 0), (-2**31, 2**31 - 1, 0), (-2**31, 1 << 30, -31), (1000, 0, 0),
             (12345, 1518500250, 2), (-12345, 1518500250, 2), (-102497, 1292634328, -9)]
    for _ in range(3000):
        m, _ = quantize_multiplier(math.exp(rnd.uniform(math.log(1e-6), math.log(1.9))))
        acc = rnd.choice([rnd.randint(-2**16, 2**16), rnd.randint(-2**24, 2**24)])
        shift = quantize_multiplier(math.exp(rnd.uniform(math.log(1e-6), math.log(0.99))))[1]
        cases.append((acc, m, shift))
        # exact ties at the final right shift, where the three modes disagree
        cases.append(((2 * rnd.randint(-500, 500) + 1) << 5, 1 << 30, -5))
    src = work / "requant_test.c"
    src.write_text('#include <stdio.h>\n#include "mcus_kernels.h"\n'
                   'int main(void)\n{\n    long a, m, s;\n'
                   '    while (scanf("%ld %ld %ld", &a, &m, &s) == 3) {\n'
                   '        printf("%ld\\n", (long)mcus_requantize((int32_t)a, (int32_t)m, (int32_t)s));\n'
                   '    }\n    return 0;\n}\n')
    stdin = "".join(f"{a} {m} {s}\n" for a, m, s in cases)
    results = {}
    for mode, ref in ((None, _requant_tflite), (0, _requant_tflite), (1, _requant_gemmlowp),
                      (2, _requant_single)):
        exe = work / f"requant_{mode}"
        flags = [] if mode is None else [f"-DMCUS_REQUANT_MODE={mode}"]
        subprocess.run(["gcc", "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", *flags,
                        f"-I{KERNELS}", str(src), "-o", str(exe)], check=True)
        out = subprocess.run([str(exe)], input=stdin, capture_output=True, text=True, check=True)
        got = [int(v) for v in out.stdout.split()]
        want = [ref(a, m, s) for a, m, s in cases]
        bad = [(c, g, w) for c, g, w in zip(cases, got, want) if g != w]
        assert not bad, f"MCUS_REQUANT_MODE={mode}: {bad[:5]}"
        results[mode] = got
    # the modes really differ (on ties), and the case seen in a real model rounds to -120 in mode 0
    assert results[0] != results[1] and results[0] != results[2] and results[1] != results[2]
    assert _requant_tflite(-102497, 1292634328, -9) == -120 != _requant_gemmlowp(-102497, 1292634328, -9)


@pytest.mark.parametrize("cc,flags", [
    ("gcc", []),
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m0plus", "-mthumb"]),
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"]),
])
def test_kernels_are_strict_c99_one_op_per_file(work, cc, flags):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed")
    files = sorted(p.name for p in KERNELS.glob("*.c"))
    assert {"conv2d_f32.c", "conv2d_s8.c", "maxpool2d_f32.c", "maxpool2d_s8.c", "dense_f32.c",
            "dense_s8.c", "softmax_f32.c"} <= set(files)
    for f in files:
        stem = f[:-2]
        text = (KERNELS / f).read_text()
        assert f"mcus_{stem}(" in text and "malloc" not in text
        includes = {ln.split()[1] for ln in text.splitlines() if ln.startswith("#include")}
        shared = {f'"{h.name}"' for h in KERNELS.glob("mcus_*.h")}   # the kernels' own headers
        assert '"mcus_kernels.h"' in includes and includes <= shared | {"<math.h>"}, f
        subprocess.run([cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic",
                        "-Wconversion" if cc == "gcc" else "-Wshadow", *flags, f"-I{KERNELS}",
                        "-c", str(KERNELS / f), "-o", str(work / f"{stem}.{cc}.o")], check=True)


# ---------------------------------------------------------------------------------------------
# float32: generated C vs Keras
# ---------------------------------------------------------------------------------------------

def test_float_study_topology_matches_keras(work, small):
    model, _ = small
    mr = model_result(model, work / "f_small")
    conv = convert(mr, "mcusearch-ref", work / "f_small" / "c")
    assert isinstance(CONVERTERS["mcusearch-ref"](), cgen.McusearchConverter)
    assert CONVERTERS["mcusearch-ref"].quantizations == {"float32", "int8"}
    got = check(conv, work / "f_small")
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-5)
    assert conv.output_meaning == "softmax probabilities" and conv.input_dtype == "float32"
    assert conv.inputs.shape == (N_PROBE, 96) and conv.inputs.dtype == np.float32
    assert conv.layers == ["conv1 (Conv2D)", "conv2 (Conv2D)", "pool1 (MaxPool2D)",
                           "conv3 (Conv2D)", "conv4 (Conv2D)", "pool2 (MaxPool2D)",
                           "conv5 (Conv2D)", "conv6 (Conv2D)", "pool3 (MaxPool2D)",
                           "hidden (Dense)", "logits (Dense)", "logits/softmax (Softmax)"]
    out = work / "f_small" / "c"
    assert conv.sources[0] == out / "model.c" and conv.include_dirs == [out, KERNELS]
    assert sorted(p.name for p in conv.sources[1:]) == [
        "conv2d_f32.c", "dense_f32.c", "maxpool2d_f32.c", "softmax_f32.c"]
    assert all(p.is_absolute() and p.exists() for p in conv.sources)
    h = (out / "model.h").read_text()
    for needle in ("#define MCUS_INPUT_LEN 96", "#define MCUS_OUTPUT_LEN 4", "typedef float mcus_input_t;",
                   "typedef float mcus_output_t;",
                   "void mcus_model_run(const mcus_input_t *input, mcus_output_t *output);"):
        assert needle in h
    c = (out / "model.c").read_text()
    assert c.count("static const float l") >= 16 and "mcus_model_run" in c
    assert sum(ln.strip().startswith("mcus_") for ln in c.splitlines()) == len(conv.layers)
    # arena: the two largest consecutive activations (each 12x8x4 floats)
    assert conv.arena_bytes == documented_arena(intermediate_bytes(model, 4)) == 2 * 12 * 8 * 4 * 4
    assert f"static float mcus_arena[{conv.arena_bytes // 4}];" in c


def test_float_variant_strides_padding_kernels_and_clamps(work):
    model = variant_cnn(lead_relu=True)
    mr = model_result(model, work / "f_var")
    conv = convert(mr, "mcusearch-ref", work / "f_var" / "c")
    check(conv, work / "f_var")
    g = graph_from_keras(model)
    conv0 = g.ops[1]
    assert (conv0.kind, conv0.kernel, conv0.stride, conv0.pad, conv0.act) == (
        "Conv2D", (5, 5), (2, 2), (1, 2), (0.0, 6.0))
    assert g.ops[2].out_shape == (3, 4, 6) and g.ops[2].bias is None
    assert (g.ops[3].kind, g.ops[3].pad, g.ops[3].out_shape) == ("MaxPool2D", (1, 0), (2, 2, 6))
    assert conv.layers == ["relu_in (Clamp)", "conv5x5 (Conv2D)", "conv_valid (Conv2D)",
                           "pool_same (MaxPool2D)", "conv1x1 (Conv2D)", "hidden (Dense)", "out (Dense)"]
    assert conv.output_meaning == "float32 outputs of out (Dense)"
    assert "clamp_f32.c" in [p.name for p in conv.sources]
    assert conv.arena_bytes == documented_arena(intermediate_bytes(model, 4))


# ---------------------------------------------------------------------------------------------
# int8: generated C vs the TFLite interpreter, bit-exact
# ---------------------------------------------------------------------------------------------

def test_int8_study_topology_bit_exact_with_tflite(work, small):
    model, tfl = small
    mr = model_result(model, work / "q_small", "int8", tfl)
    conv = convert(mr, "mcusearch-ref", work / "q_small" / "c")
    got = check(conv, work / "q_small")
    assert conv.output_meaning == "int8 softmax probabilities"
    assert conv.input_dtype == conv.output_dtype == "int8" and conv.inputs.dtype == np.int8
    assert conv.layers == ["conv1 (Conv2D)", "conv2 (Conv2D)", "pool1 (MaxPool2D)",
                           "conv3 (Conv2D)", "conv4 (Conv2D)", "pool2 (MaxPool2D)",
                           "conv5 (Conv2D)", "conv6 (Conv2D)", "pool3 (MaxPool2D)",
                           "hidden (Dense)", "logits (Dense)", "logits/softmax (Softmax)"]
    # the firmware's output is the interpreter's model output itself, probabilities that sum to ~1
    it = cgen.tflite_interpreter(tfl)
    d, o = it.get_input_details()[0], it.get_output_details()[0]
    s_p, z_p = o["quantization"]
    for row, probs in zip(conv.inputs, got):
        it.set_tensor(d["index"], row.reshape(d["shape"]))
        it.invoke()
        np.testing.assert_array_equal(probs, it.get_tensor(o["index"]).reshape(-1))
        assert abs(((probs.astype(float) - z_p) * s_p).sum() - 1.0) <= len(probs) * s_p
    # the input quantisation is the interpreter's
    np.testing.assert_array_equal(conv.inputs, quantize_input(mr.probe_inputs.reshape(N_PROBE, -1),
                                                              d["quantization"][0], d["quantization"][1]))
    assert conv.inputs.min() == -128 and conv.inputs.max() == 127
    assert conv.arena_bytes == documented_arena(intermediate_bytes(model, 1)) == 2 * 12 * 8 * 4
    c = (work / "q_small" / "c" / "model.c").read_text()
    assert f"int8_t b[{conv.arena_bytes}];" in c and "static const int8_t l00_conv1_w[36]" in c


@pytest.mark.parametrize("per_channel", [True, False], ids=["per-channel", "per-tensor"])
def test_int8_variant_bit_exact_with_tflite(work, per_channel):
    model = variant_cnn(lead_relu=False)
    d = work / f"q_var_{per_channel}"
    d.mkdir()
    tfl = to_int8(model, d / "m.tflite", per_channel=per_channel)
    conv = convert(model_result(model, d, "int8", tfl), "mcusearch-ref", d / "c")
    check(conv, d)
    dense = [op for op in graph_from_tflite(tfl).ops if isinstance(op, Dense)]
    assert [op.requant.per_channel for op in dense] == [per_channel, per_channel]
    assert dense[0].bias is None and conv.output_meaning == "int8 outputs of out (Dense)"
    assert conv.layers == ["conv5x5 (Conv2D)", "conv_valid (Conv2D)", "pool_same (MaxPool2D)",
                           "conv1x1 (Conv2D)", "hidden (Dense)", "out (Dense)"]
    assert conv.arena_bytes == documented_arena(intermediate_bytes(model, 1))


def test_int8_input_quantisation_is_the_quantize_ops(work):
    """quantize_input == the QUANTIZE op TFLite puts in front of a float-input model (ties too)."""
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential([L.InputLayer((64,)), L.Dense(2)])
    rep = np.random.default_rng(0).normal(0, 1, (32, 64)).astype(np.float32)
    c = tflite_converter(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(32))
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path = work / "float_in.tflite"
    path.write_bytes(c.convert())
    it = cgen.tflite_interpreter(path)
    q = next(t for t in it.get_tensor_details() if t["dtype"] == np.int8 and list(t["shape"]) == [1, 64])
    scale, zp = q["quantization"]
    k = np.random.default_rng(1).integers(-140, 140, (8, 64))
    x = np.concatenate([(k + 0.5).astype(np.float32) * np.float32(scale),
                        np.random.default_rng(2).normal(0, 2, (8, 64)).astype(np.float32)])
    for row in x:
        it.set_tensor(it.get_input_details()[0]["index"], row[None])
        it.invoke()
        np.testing.assert_array_equal(it.get_tensor(q["index"])[0], quantize_input(row, scale, zp))


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------

def test_batchnorm_and_branches_convert(work):
    """What the chain-only IR refused: BatchNormalization (folded by TFLite's converter) and a
    projection branch (a DAG), in both generators, float32 and int8."""
    tf.keras.utils.set_random_seed(0)
    bn = tf.keras.Sequential([L.InputLayer((6, 4, 1)), L.Conv2D(2, 3), L.BatchNormalization(),
                              L.Flatten(), L.Dense(2)])
    inp = tf.keras.Input((6, 4, 1))
    a = L.Conv2D(3, 3, padding="same")(inp)
    b = L.Conv2D(3, 1)(inp)                  # a projection on the residual path: two branches
    branch = tf.keras.Model(inp, L.Flatten()(L.Add()([a, b])))
    for name, m in (("bn", bn), ("branch", branch)):
        tfl = to_int8(m, work / f"{name}.tflite")
        for quant in ("float32", "int8"):
            for conv_name in ("mcusearch-ref", "mcusearch"):
                d = work / f"{name}_{quant}_{conv_name}"
                mr = model_result(m, d, quant, tfl if quant == "int8" else None)
                check(convert(mr, conv_name, d / "c"), d)
    assert not any(op.kind == "BatchNormalization" for op in graph_from_keras(bn).ops)


def test_unsupported_layers_give_a_clear_stage_error(work):
    tf.keras.utils.set_random_seed(0)
    # sub-pixel upsampling: TFLite's DEPTH_TO_SPACE (float32 and int8), which no generator takes
    d2s = tf.keras.Sequential([L.InputLayer((6, 4, 1)), L.Conv2D(4, 3, name="conv"),
                               L.Lambda(lambda t: tf.nn.depth_to_space(t, 2), name="d2s"),
                               L.Flatten(), L.Dense(2)])
    for quant in ("float32", "int8"):
        tfl = to_int8(d2s, work / "d2s.tflite") if quant == "int8" else None
        with pytest.raises(StageError) as e:
            convert(model_result(d2s, work / f"bad_{quant}", quant, tfl), "mcusearch-ref",
                    work / f"bad_{quant}" / "c")
        assert e.value.stage == "convert"
        msg = e.value.message
        assert msg.startswith("layer d2s: TFLite op DEPTH_TO_SPACE is not supported by the "
                              f"mcusearch generator for {quant}; ")
        assert "aidge" in msg                          # what would work instead

    mr = model_result(d2s, work / "bad_q")
    mr.quantization = "float16"
    with pytest.raises(StageError, match="float16"):
        convert(mr, "mcusearch-ref", work / "bad_q" / "c")


def test_host_run_reports_compiler_errors(work):
    d = work / "broken"
    d.mkdir()
    (d / "model.h").write_text("#define MCUS_INPUT_LEN 1\n#define MCUS_OUTPUT_LEN 1\n"
                               "typedef float mcus_input_t;\ntypedef float mcus_output_t;\n"
                               "void mcus_model_run(const mcus_input_t *i, mcus_output_t *o);\n")
    (d / "model.c").write_text('#include "model.h"\nvoid mcus_model_run(const mcus_input_t *i, '
                               'mcus_output_t *o) { *o = *i + ; }\n')
    conv = ConvertResult("hand", [d / "model.c"], [d], "float32", "float32",
                         np.zeros((1, 1), np.float32), np.zeros((1, 1), np.float32), 0, 0, 0, "x")
    with pytest.raises(StageError) as e:
        host_run(conv, d / "host")
    assert e.value.stage == "convert" and "model.c" in e.value.message and "error" in e.value.message
    assert "expected expression" in e.value.log


# ---------------------------------------------------------------------------------------------
# the study's full-size model
# ---------------------------------------------------------------------------------------------

def test_study_full_size_model_float_and_int8(work):
    model = study_cnn(shape=(30, 20, 1), filters=32, hidden=100, seed=4)
    assert model.count_params() == 66_264
    g = graph_from_keras(model)
    assert g.params == 66_264 and g.macs == 9_131_920
    x = probes((30, 20, 1))
    mf = model_result(model, work / "full_f", x=x)
    conv = convert(mf, "mcusearch-ref", work / "full_f" / "c")
    check(conv, work / "full_f")
    assert conv.arena_bytes == 2 * 30 * 20 * 32 * 4 == 153_600

    tfl = to_int8(model, work / "full.tflite")
    mq = model_result(model, work / "full_q", "int8", tfl, x=x)
    conv = convert(mq, "mcusearch-ref", work / "full_q" / "c")
    got = check(conv, work / "full_q")
    assert conv.arena_bytes == 2 * 30 * 20 * 32 == 38_400
    assert len(np.unique(got)) > 4                       # not a degenerate (saturated) output
