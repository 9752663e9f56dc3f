"""The Eclipse Aidge converter ("aidge"): Keras -> ONNX -> Aidge C++ export, float32, against
Keras on the host (gcc) and on the emulated Cortex-M7 (arm-none-eabi-g++, QEMU).

The project installs Aidge (requirements/); if it is missing these tests fail, they do not skip.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mcusearch  # noqa: F401  (tf-keras before TensorFlow)
from mcusearch.convert import CONVERTERS, ConvertResult
from mcusearch.convert import aidge
from mcusearch.convert.aidge import AidgeConverter
from mcusearch.errors import StageError
from mcusearch.model import ModelResult

ROOT = Path(__file__).resolve().parents[1]
N_PROBE = 8
NEEDS = ("Eclipse Aidge and tf2onnx are part of the project's environment (requirements/base.txt; "
         "`make setup` installs them)")


def _require_aidge() -> None:
    missing = aidge.missing_packages()
    assert not missing, f"not installed: {', '.join(missing)}. {NEEDS}"


def _tf():
    import tensorflow as tf

    return tf


def small_study_cnn(shape=(12, 8, 1), filters=4, hidden=16, classes=4, seed=0):
    """The study's topology at a small size: (Conv 3x3 same ReLU x2, MaxPool 2x2) x3, Flatten,
    Dense ReLU, Dropout, Dense softmax; random non-zero biases."""
    tf = _tf()
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(seed)
    layers = [L.InputLayer(shape)]
    for i in range(3):
        layers += [L.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{2 * i + 1}"),
                   L.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{2 * i + 2}"),
                   L.MaxPooling2D(2, name=f"pool{i + 1}")]
    layers += [L.Flatten(name="flatten"), L.Dense(hidden, activation="relu", name="hidden"),
               L.Dropout(0.5, name="dropout"), L.Dense(classes, activation="softmax", name="logits")]
    return _random_biases(tf.keras.Sequential(layers), seed)


def odd_cnn(seed=1):
    """What the study's model does not have: 2 input channels, a leading ReLU, stride 2 with
    asymmetric 'same' padding, ReLU6 (an ONNX Clip with min/max inputs), a 'valid' (3, 2) conv,
    3x3/2 'same' pooling, a dense layer without bias (ONNX MatMul), no softmax."""
    tf = _tf()
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([
        L.InputLayer((14, 9, 2)),
        L.ReLU(name="relu_in"),
        L.Conv2D(5, 5, strides=2, padding="same", name="conv5x5"),
        L.ReLU(max_value=6.0, name="relu6"),
        L.Conv2D(6, (3, 2), strides=(2, 1), padding="valid", activation="relu", name="conv_valid"),
        L.MaxPooling2D(pool_size=3, strides=2, padding="same", name="pool_same"),
        L.Conv2D(3, 1, activation="relu", name="conv1x1"),
        L.Flatten(name="flatten"),
        L.Dense(7, activation="relu", use_bias=False, name="hidden"),
        L.Dense(3, name="out"),
    ])
    return _random_biases(model, seed)


def _random_biases(model, seed):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        w = layer.get_weights()
        if len(w) == 2:
            layer.set_weights([w[0], rng.normal(0, 0.1, w[1].shape).astype(np.float32)])
    return model


def model_result(model, d: Path, n=N_PROBE, seed=5) -> ModelResult:
    d.mkdir(parents=True, exist_ok=True)
    keras_path = d / "model.h5"
    model.save(keras_path)
    shape = tuple(model.input_shape[1:])
    x = np.random.default_rng(seed).normal(0, 1.5, (n,) + shape).astype(np.float32)
    return ModelResult(keras_path=keras_path, tflite_path=None, quantization="float32", accuracy=0.0,
                       params=model.count_params(), macs=0, input_shape=shape,
                       class_names=tuple(f"c{i}" for i in range(model.output_shape[-1])),
                       probe_inputs=x, probe_labels=np.zeros(n, int), cache_key="test")


def check_host(conv: ConvertResult, work: Path) -> np.ndarray:
    from mcusearch.convert.host import host_run

    got = host_run(conv, work)
    assert got.shape == conv.expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, conv.expected, atol=conv.atol, rtol=conv.rtol)
    return got


def run_on_qemu(conv: ConvertResult, work: Path, opt="-O3"):
    from mcusearch.boards import get_board
    from mcusearch.build import build
    from mcusearch.measure import measure

    board = get_board("qemu-m7")
    fw = build(conv, board, opt, work / f"build{opt}", cache_dir=work / "cache")
    m = measure(fw, conv, board, timeout_s=120)
    np.testing.assert_allclose(m.outputs, conv.expected, atol=conv.atol, rtol=conv.rtol)
    assert m.argmax_agreement == 1.0
    # (nearly) no data-dependent work: expf and comparisons may branch differently per input
    assert min(m.counts) > 0 and max(m.counts) - min(m.counts) <= 1e-3 * max(m.counts), m.counts
    assert m.per_inference.unit == "instructions"
    return fw, m


# ---------------------------------------------------------------------------------------------
# fast: registration, laziness, refusals
# ---------------------------------------------------------------------------------------------

def test_registered_float32_only():
    _require_aidge()
    assert CONVERTERS["aidge"] is AidgeConverter
    assert AidgeConverter.name == "aidge" and AidgeConverter.quantizations == {"float32"}


def test_import_is_cheap_and_lazy():
    """Importing the converter (and listing converters) loads neither TensorFlow nor Aidge."""
    code = ("import sys\nimport mcusearch.convert.aidge\nfrom mcusearch.convert import available_converters\n"
            "c = available_converters()\nassert c['aidge'] == {'float32'}, c\n"
            "heavy = [m for m in ('tensorflow', 'tf2onnx', 'onnx', 'aidge_core', 'aidge_onnx') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr


def _dummy_model(tmp_path: Path, quantization="float32") -> ModelResult:
    return ModelResult(keras_path=tmp_path / "absent.h5", tflite_path=None, quantization=quantization,
                       accuracy=0.0, params=0, macs=0, input_shape=(2, 2, 1), class_names=("a", "b"),
                       probe_inputs=np.zeros((1, 2, 2, 1), np.float32), probe_labels=np.zeros(1, int),
                       cache_key="test")


def test_int8_is_refused(tmp_path):
    with pytest.raises(StageError) as e:
        AidgeConverter().convert(_dummy_model(tmp_path, "int8"), tmp_path / "c")
    assert e.value.stage == "convert" and "supported: float32" in e.value.message


def test_missing_aidge_is_a_clear_stage_error(tmp_path, monkeypatch):
    real = aidge.importlib.util.find_spec
    monkeypatch.setattr(aidge.importlib.util, "find_spec",
                        lambda name, *a: None if name == "aidge_onnx" else real(name, *a))
    with pytest.raises(StageError) as e:
        AidgeConverter().convert(_dummy_model(tmp_path), tmp_path / "c")
    assert e.value.stage == "convert"
    assert e.value.message.startswith("Eclipse Aidge is not installed: missing aidge-onnx")


# ---------------------------------------------------------------------------------------------
# slow: real TensorFlow, tf2onnx, Aidge, gcc, arm-none-eabi-g++ and QEMU
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("aidge")


@pytest.fixture(scope="module")
def small(work):
    _require_aidge()
    model = small_study_cnn()
    mr = model_result(model, work / "small")
    cwd = os.getcwd()
    os.chdir(work / "small")            # Aidge writes into the current directory: it must not
    try:
        conv = AidgeConverter().convert(mr, work / "small" / "c")
    finally:
        os.chdir(cwd)
    return model, conv


@pytest.mark.slow
def test_small_study_topology_files_and_contract(work, small):
    _, conv = small
    out = work / "small" / "c"
    assert sorted(p.name for p in (work / "small").iterdir()) == ["c", "model.h5"]  # cwd untouched
    assert conv.converter == "aidge" and conv.input_dtype == conv.output_dtype == "float32"
    assert conv.inputs.shape == (N_PROBE, 96) and conv.inputs.dtype == np.float32
    assert conv.expected.shape == (N_PROBE, 4) and (conv.atol, conv.rtol) == (1e-4, 1e-4)
    np.testing.assert_allclose(conv.expected.sum(axis=1), 1.0, atol=1e-5)
    assert conv.output_meaning == "softmax probabilities"
    assert [s.split(" ")[1] for s in conv.layers] == (
        ["(PadConvAct)", "(PadConvAct)", "(MaxPooling2D)"] * 3 + ["(FCAct)", "(FC)", "(Softmax)"])
    assert conv.sources[0] == out / "model_wrapper.cpp"
    assert all(p.is_absolute() and p.is_file() and p.suffix == ".cpp" for p in conv.sources)
    assert not any(p.name == "main.cpp" for p in conv.sources)
    assert sum("weights" in p.name for p in conv.sources) == 8          # 6 convs + 2 dense
    assert out in conv.include_dirs and any((d / "forward.hpp").is_file() for d in conv.include_dirs)
    h = (out / "model.h").read_text()
    for needle in ("#define MCUS_INPUT_LEN 96", "#define MCUS_OUTPUT_LEN 4", "typedef float mcus_input_t;",
                   "typedef float mcus_output_t;", 'extern "C"',
                   "void mcus_model_run(const mcus_input_t *input, mcus_output_t *output);"):
        assert needle in h
    forward = next(p for p in conv.sources if p.name == "forward.cpp").read_text()
    assert f"alignas(16) static unsigned char mem_0[{conv.arena_bytes}];" in forward
    # Aidge's plan: two 12x8x4 float activations at once, plus the 12x8x1 input's copy
    assert conv.arena_bytes == (2 * 12 * 8 * 4 + 12 * 8) * 4
    assert (out / "aidge" / "export.log").is_file() and (out / "aidge" / "model.onnx").is_file()


@pytest.mark.slow
def test_small_study_topology_host_matches_keras(work, small):
    _, conv = small
    check_host(conv, work / "small" / "host")


@pytest.mark.slow
def test_small_study_topology_on_qemu(work, small):
    from mcusearch.build import elf as elfinfo

    _, conv = small
    fw, m = run_on_qemu(conv, work / "small")
    assert m.max_abs_error <= 1e-6
    # ~26 k MACs at a few instructions each, plus fixed costs
    assert 50_000 < m.counts[0] < 500_000, m.counts
    assert m.layer_counts == []            # Aidge's code has no layer markers: no per-layer figures
    weights = elfinfo.symbol(fw.elf, "_3_PadConvAct_0_weights_output_0")
    assert weights.address < 0x2000_0000 and weights.size == 4 * 3 * 3 * 1 * 4   # in flash
    arena = elfinfo.symbol(fw.elf, "_ZL5mem_0")
    assert arena.address >= 0x2000_0000 and arena.address % 16 == 0 and arena.size == conv.arena_bytes
    assert fw.model_ram_bytes >= conv.arena_bytes
    print(f"\naidge small study topology: {m.counts[0]:.0f} instructions/inference, model flash "
          f"{fw.model_flash_bytes} B, model RAM {fw.model_ram_bytes} B (arena {conv.arena_bytes} B)")


@pytest.mark.slow
def test_odd_layers_and_multichannel_input_match_keras(work):
    """Layout with more than one input channel, Clip bounds, extra max-pool index output."""
    _require_aidge()
    model = odd_cnn()
    conv = AidgeConverter().convert(model_result(model, work / "odd"), work / "odd" / "c")
    assert conv.output_meaning.startswith("float32 outputs of ") and conv.output_meaning.endswith("(FC)")
    kinds = [s.split(" ")[1] for s in conv.layers]
    assert kinds[0] == "(ReLU)" and "(Clip)" in kinds and "(MatMul)" in kinds
    wrapper = (work / "odd" / "c" / "model_wrapper.cpp").read_text()
    assert "int64_t* out1 = nullptr;" in wrapper     # the pooling's index output, unused
    check_host(conv, work / "odd" / "host")


@pytest.mark.slow
def test_full_study_model_on_qemu(work):
    """The study's CNN (30x20x1, 32 filters, 66,264 parameters), random weights. Reference
    (shared/reference/checked-here.md): 45.0 M instructions, ~265 kB weights, 156 kB activations."""
    _require_aidge()
    from mcusearch.model.architectures import study_cnn

    model = _random_biases(study_cnn((30, 20, 1), 4), 0)
    assert model.count_params() == 66_264
    conv = AidgeConverter().convert(model_result(model, work / "full", n=4), work / "full" / "c")
    assert conv.arena_bytes == (2 * 30 * 20 * 32 + 30 * 20) * 4         # 156,000 B
    fw, m = run_on_qemu(conv, work / "full")
    assert m.max_abs_error <= 1e-6
    assert 40e6 < m.counts[0] < 50e6, m.counts
    assert 66_264 * 4 < fw.model_flash_bytes < 66_264 * 4 + 16_384
    assert conv.arena_bytes <= fw.model_ram_bytes < conv.arena_bytes + 4096
    print(f"\naidge study model: {m.counts[0]:.0f} instructions/inference, model flash "
          f"{fw.model_flash_bytes} B, model RAM {fw.model_ram_bytes} B (arena {conv.arena_bytes} B); "
          f"image {fw.flash_bytes} B flash, {fw.ram_bytes} B RAM")


# ---------------------------------------------------------------------------------------------
# what issue 9 found: feature-map outputs, inputs Aidge asserted on, sequence models, refusals
# ---------------------------------------------------------------------------------------------

def _convert(model, d: Path, n=4) -> ConvertResult:
    _require_aidge()
    return AidgeConverter().convert(model_result(model, d, n=n), d / "c")


def _refused(model, d: Path) -> str:
    with pytest.raises(StageError) as e:
        _convert(model, d, n=2)
    assert e.value.stage == "convert" and "\n" not in e.value.message
    return e.value.message


def feature_map_model(seed=2):
    """Conv2D -> UpSampling2D: the output is an 8 x 10 x 3 feature map (H, W, C all distinct)."""
    tf = _tf()
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([L.InputLayer((4, 5, 2)), L.Conv2D(3, 3, padding="same", name="conv"),
                                 L.UpSampling2D(2, name="up")])
    return _random_biases(model, seed)


def ds_cnn_like(seed=3):
    """MLPerf Tiny's DS-CNN at a small width: 49 x 10 x 1 input (which Aidge asserted on), Conv2D
    10 x 4 stride 2, DepthwiseConv2D + 1 x 1 Conv2D, GlobalAveragePooling2D over a non-square
    25 x 5 map, Dense softmax."""
    tf = _tf()
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([
        L.InputLayer((49, 10, 1)),
        L.Conv2D(8, (10, 4), strides=2, padding="same", activation="relu", name="conv1"),
        L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw1"),
        L.Conv2D(8, 1, activation="relu", name="pw1"),
        L.GlobalAveragePooling2D(name="gap"),
        L.Dense(4, activation="softmax", name="logits"),
    ])
    return _random_biases(model, seed)


def conv1d_model(seed=4):
    """A time-series classifier: (20, 3) input, Conv1D, MaxPooling1D, Conv1D 'same' stride 2,
    GlobalAveragePooling1D, Dense."""
    tf = _tf()
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(seed)
    model = tf.keras.Sequential([
        L.InputLayer((20, 3)),
        L.Conv1D(6, 3, activation="relu", name="conv1"),
        L.MaxPooling1D(2, name="pool1"),
        L.Conv1D(5, 3, strides=2, padding="same", activation="relu", name="conv2"),
        L.GlobalAveragePooling1D(name="gap"),
        L.Dense(3, name="out"),
    ])
    return _random_biases(model, seed)


@pytest.mark.slow
def test_feature_map_output_in_keras_order_on_qemu(work):
    """Aidge re-lays the graph out in NHWC but applied tf2onnx's final NCHW->NHWC Transpose as it
    stood: the firmware returned the map as W x C x H. The output must be Keras' H x W x C."""
    conv = _convert(feature_map_model(), work / "fmap")
    assert conv.expected.shape == (4, 8 * 10 * 3)
    scrambled = conv.expected.reshape(-1, 8, 10, 3).transpose(0, 2, 3, 1).reshape(4, -1)
    assert np.abs(scrambled - conv.expected).max() > 0.1        # the old layout would be caught
    assert conv.output_meaning.startswith("float32 outputs of ")
    fw, m = run_on_qemu(conv, work / "fmap")
    assert m.max_abs_error <= 1e-5
    print(f"\naidge feature-map model: {m.counts[0]:.0f} instructions/inference (qemu-m7, -O3), "
          f"max |error| {m.max_abs_error:.1e}, model flash {fw.model_flash_bytes} B, "
          f"model RAM {fw.model_ram_bytes} B")


@pytest.mark.slow
def test_ds_cnn_49x10x1_on_qemu(work):
    conv = _convert(ds_cnn_like(), work / "dscnn")
    assert conv.inputs.shape == (4, 490) and conv.output_meaning == "softmax probabilities"
    kinds = [s.split(" ")[1] for s in conv.layers]
    assert "(GlobalAveragePooling)" not in kinds          # Aidge's own swaps kernel H and W
    assert conv.expected.std(axis=0).max() > 1e-3          # the probes tell outputs apart
    fw, m = run_on_qemu(conv, work / "dscnn")
    assert m.max_abs_error <= 1e-5
    print(f"\naidge DS-CNN-like 49x10x1: {m.counts[0]:.0f} instructions/inference (qemu-m7, -O3), "
          f"max |error| {m.max_abs_error:.1e}, model flash {fw.model_flash_bytes} B, "
          f"model RAM {fw.model_ram_bytes} B")


@pytest.mark.slow
def test_conv1d_sequence_model_on_qemu(work):
    """A (T, C) input runs as a (1, T, C) image with the 1-D layers as height-1 2-D layers; the
    firmware takes the same T x C buffer and must give Keras' outputs of the original model."""
    conv = _convert(conv1d_model(), work / "conv1d")
    assert conv.inputs.shape == (4, 60) and conv.expected.shape == (4, 3)
    fw, m = run_on_qemu(conv, work / "conv1d")
    assert m.max_abs_error <= 1e-5
    print(f"\naidge Conv1D model: {m.counts[0]:.0f} instructions/inference (qemu-m7, -O3), "
          f"max |error| {m.max_abs_error:.1e}, model flash {fw.model_flash_bytes} B, "
          f"model RAM {fw.model_ram_bytes} B")


@pytest.mark.slow
def test_sequence_layers_and_dense_on_feature_maps_match_keras(work):
    """Every 1-D layer the rewrite maps, a Dense on a sequence and on an image feature map (Aidge
    crashed on its broadcast bias), a sequence-shaped output and a residual Add (host gcc)."""
    tf = _tf()
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(6)
    inp = tf.keras.Input((16, 3))
    x = L.ZeroPadding1D((1, 2))(inp)
    x = L.Conv1D(4, 3, activation="relu", name="conv")(x)
    x = L.BatchNormalization(name="bn")(x)
    y = L.DepthwiseConv1D(3, padding="same", name="dw")(x)
    x = L.Add(name="res")([x, y])
    x = L.SeparableConv1D(4, 3, name="sep")(x)
    x = L.AveragePooling1D(2, name="avg")(x)
    x = L.UpSampling1D(2, name="up")(x)
    out = L.Dense(2, name="per_step")(x)
    conv = _convert(_random_biases(tf.keras.Model(inp, out), 6), work / "seq_host")
    assert conv.expected.shape == (4, 14 * 2)
    check_host(conv, work / "seq_host" / "host")
    image = tf.keras.Sequential([L.InputLayer((6, 5, 3)), L.Dense(4, activation="relu", name="d1"),
                                 L.Flatten(), L.Dense(3, name="d2")])
    conv = _convert(_random_biases(image, 7), work / "dense_fmap")
    check_host(conv, work / "dense_fmap" / "host")


@pytest.mark.slow
def test_hard_swish_on_a_flat_tensor_matches_keras(work):
    """x * ReLU6(x + 3) / 6 after a Dense: the scalar constants get the tensor's rank (Aidge had
    no kernel for a rank-2 + rank-0 Add)."""
    tf = _tf()
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(8)
    inp = tf.keras.Input((12,))
    x = L.Dense(8, name="fc")(inp)
    x = L.Multiply(name="hswish")([x, L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)])
    conv = _convert(_random_biases(tf.keras.Model(inp, L.Dense(3, name="out")(x)), 8),
                    work / "hswish")
    check_host(conv, work / "hswish" / "host")


def test_refusals_name_the_layer_and_what_works(work):
    """What Aidge's export would compute wrongly is refused before it runs, in one line."""
    tf = _tf()
    L = tf.keras.layers
    seq = lambda *ls: tf.keras.Sequential([L.InputLayer((16, 3)), *ls])   # noqa: E731
    img = lambda *ls: tf.keras.Sequential([L.InputLayer((9, 7, 3)), *ls])  # noqa: E731
    msg = _refused(seq(L.LSTM(4, name="lstm"), L.Dense(2)), work / "r_lstm")
    assert msg.startswith("layer 'lstm' (LSTM) on a sequence input is not taken by the aidge "
                          "converter") and msg.endswith("use converter mcusearch")
    msg = _refused(seq(L.Conv1D(4, 3, padding="causal", name="causal")), work / "r_causal")
    assert msg == ("layer 'causal' (Conv1D, padding 'causal') is not taken by the aidge converter; "
                   "use converter mcusearch")
    msg = _refused(img(L.Conv2D(2, 3, name="c"), L.Cropping2D(((1, 0), (0, 1)), name="crop")),
                   work / "r_crop")
    assert msg.startswith("layer 'crop' (ONNX Slice) is not taken by the aidge converter: on a "
                          "rank-4 tensor") and msg.endswith("; use converter mcusearch")
    msg = _refused(img(L.AveragePooling2D(3, strides=2, padding="same", name="avg")), work / "r_avg")
    assert msg.startswith("layer 'avg' (ONNX AveragePool)")
    assert msg.endswith("use padding 'valid' or converter mcusearch")
    msg = _refused(img(L.Conv2D(2, 1, name="c"), L.ZeroPadding2D(1, name="pad")), work / "r_pad")
    assert msg.startswith("layer 'pad' (ONNX Pad)")
    msg = _refused(tf.keras.Sequential([L.InputLayer((4, 4, 4, 1)), L.Conv3D(2, 3), L.Flatten()]),
                   work / "r_3d")
    assert "this model's input is (4, 4, 4, 1); use converter mcusearch" in msg


def test_two_outputs_are_refused(tmp_path):
    tf = _tf()
    L = tf.keras.layers
    inp = tf.keras.Input((4,))
    model = tf.keras.Model(inp, [L.Dense(2)(inp), L.Dense(3)(inp)])
    model.save(tmp_path / "two.h5")
    mr = ModelResult(keras_path=tmp_path / "two.h5", tflite_path=None, quantization="float32",
                     accuracy=0.0, params=0, macs=0, input_shape=(4,), class_names=("a", "b"),
                     probe_inputs=np.zeros((1, 4), np.float32), probe_labels=np.zeros(1, int),
                     cache_key="test")
    with pytest.raises(StageError) as e:
        AidgeConverter().convert(mr, tmp_path / "c")
    assert e.value.message == ("the aidge converter takes a model with one input and one output; "
                               "this one has 1 and 2; use converter mcusearch")


@pytest.mark.slow
def test_aidge_own_failure_is_one_clear_error(work):
    """An assertion inside Aidge (here: depth_multiplier 2) becomes one line naming Aidge's op."""
    tf = _tf()
    L = tf.keras.layers
    model = tf.keras.Sequential([L.InputLayer((8, 6, 3)), L.DepthwiseConv2D(3, depth_multiplier=2),
                                 L.Flatten()])
    msg = _refused(model, work / "dwm2")
    assert msg.startswith("the Aidge export failed: Wrong input size")
    assert "ConvDepthWise operator" in msg and "; use converter mcusearch (log: " in msg


def test_limits_are_listed_in_the_module_docstring():
    doc = " ".join(aidge.__doc__.split())
    assert len(aidge.LIMITS) >= 6
    for item in aidge.LIMITS:
        assert f"- {item}" in doc, item


def test_failure_reason_reads_aidge_logs():
    """The child's log, as Aidge writes it (wrapped lines), turned into one reason."""
    crash = ("[NOTICE] - Using adapt_graph_legacy\n"
             "[WARNING] - GraphView::setBackends(): not any backend available for node\n"
             "[WARNING]   seq_ln_FusedBatchNormV3 (of type BatchNorm2D)\n")
    assert aidge._failure_reason(crash, -8) == ("Aidge has no kernel for node seq_ln_FusedBatchNormV3 "
                                                "(op BatchNorm2D)")
    assert aidge._failure_reason("[NOTICE] - done\n", -8) == "it crashed (SIGFPE)"
    wrapped = ("[ERROR] - Wrong input size ([1, 3, 8, 6]) for ConvDepthWise operator. Expected dims are [x, 6, x,\n"
               "[ERROR]   x].\nTraceback (most recent call last):\n  File \"x.py\", line 1\n"
               "RuntimeError: boom\n")
    assert aidge._failure_reason(wrapped, 1) == ("Wrong input size ([1, 3, 8, 6]) for ConvDepthWise "
                                                 "operator. Expected dims are [x, 6, x, x]")
    assert aidge._failure_reason("Traceback (most recent call last):\nValueError: bad\n", 1) == \
        "ValueError: bad"
    assert aidge._failure_reason("[NOTICE] - ok\n", 0) is None
    assert aidge._failure_reason("", 3) == "exit status 3"
