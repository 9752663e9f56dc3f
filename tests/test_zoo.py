"""The model zoo: every model builds, the MLPerf Tiny models match their published MACs and
parameters, and calibrated random weights give outputs that differ from input to input."""
from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mcusearch  # noqa: F401  (tf-keras before TensorFlow)
import tensorflow as tf

from mcusearch.model import zoo

SPREAD_INPUTS = 16
MIN_RELATIVE_SPREAD = 1e-3


@functools.lru_cache(maxsize=None)
def built(name: str) -> tf.keras.Model:
    """Each zoo model is built (and calibrated) once per test session."""
    return zoo.build(name)


def test_registry_has_the_issue_9_models():
    names = set(zoo.MODELS)
    assert {"mlperf_ds_cnn", "mlperf_mobilenet_vww", "mlperf_resnet8",
            "mlperf_fc_autoencoder", "keras_mobilenet_025", "keras_mobilenet_v2_035"} <= names
    small = [n for n in names if not n.startswith(("mlperf_", "keras_"))]
    assert len(small) >= 10
    for name, entry in zoo.MODELS.items():
        assert entry.name == name and entry.families
        assert entry.description and "\n" not in entry.description


@pytest.mark.parametrize("name", list(zoo.MODELS))
def test_model_builds_with_outputs_that_differ_across_inputs(name):
    entry = zoo.MODELS[name]
    model = built(name)
    assert tuple(model.input_shape[1:]) == entry.input_shape
    if not name.startswith(("mlperf_", "keras_")):
        assert zoo.macs(model) < 200_000, "small models stay fast to convert"
    x = zoo.sample_inputs(name, SPREAD_INPUTS, seed=0)
    rel, n_top = zoo.output_spread(model, x)
    assert rel > MIN_RELATIVE_SPREAD, f"{name}: an output barely changes across inputs ({rel:.2g})"
    if entry.classifier:
        assert n_top > 1, f"{name}: the same top class for every input"


@pytest.mark.parametrize("name", [n for n, e in zoo.MODELS.items() if e.reference])
def test_mlperf_models_match_published_macs_and_parameters(name):
    ref = zoo.MODELS[name].reference
    model = built(name)
    assert zoo.macs(model) == pytest.approx(ref.macs, rel=0.01)
    assert zoo.folded_params(model) == pytest.approx(ref.params, rel=0.01)
    assert "mltk" in ref.source


def test_resnet8_has_projection_shortcuts():
    model = built("mlperf_resnet8")
    skips = [la for la in model.layers if la.name.endswith("_skip")]
    assert [(la.kernel_size, la.strides) for la in skips] == [((1, 1), (2, 2))] * 2


def test_without_calibration_mobilenet_gives_one_output_for_every_input():
    """What calibrate() is for: Keras' default BatchNorm statistics make every input give the
    same output in a deep net, so an output check would prove nothing."""
    x = zoo.sample_inputs("keras_mobilenet_025", SPREAD_INPUTS)
    rel, n_top = zoo.output_spread(zoo.build("keras_mobilenet_025", calibrated=False), x)
    assert rel < MIN_RELATIVE_SPREAD and n_top == 1
    rel, n_top = zoo.output_spread(built("keras_mobilenet_025"), x)
    assert rel > MIN_RELATIVE_SPREAD and n_top > 1


def test_calibrate_sets_batchnorm_statistics_and_normalises_layers():
    model = zoo.build("residual_bn", seed=3)
    x = zoo.sample_inputs("residual_bn", zoo.CALIBRATION_SAMPLES,
                          3 + zoo.CALIBRATION_SEED_OFFSET)
    conv_a = tf.keras.Model(model.input, model.get_layer("conv_a").output)(x).numpy()
    bn = model.get_layer("bn_a")
    np.testing.assert_allclose(bn.moving_mean.numpy(), conv_a.mean(axis=(0, 1, 2)), atol=1e-4)
    np.testing.assert_allclose(bn.moving_variance.numpy(), conv_a.var(axis=(0, 1, 2)),
                               rtol=1e-3)
    assert not np.allclose(bn.gamma.numpy(), 1.0)     # folding BN must not be the identity
    logits_layer = model.get_layer("fc")                # softmax head: logits centred, unit spread
    pre = tf.keras.Model(model.input, logits_layer.input)(x).numpy() @ logits_layer.kernel.numpy()
    pre += logits_layer.bias.numpy()
    np.testing.assert_allclose(pre.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(pre.std(axis=0), 1.0, rtol=1e-3)


def test_build_is_deterministic_per_seed():
    x = zoo.sample_inputs("se_block", 4)
    a, b, c = (zoo.build("se_block", seed=s)(x).numpy() for s in (1, 1, 2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_sample_inputs_shape_dtype_and_determinism():
    x = zoo.sample_inputs("imu_conv1d", 5, seed=9)
    assert x.shape == (5, 128, 6) and x.dtype == np.float32
    np.testing.assert_array_equal(x, zoo.sample_inputs("imu_conv1d", 5, seed=9))
    assert not np.array_equal(x, zoo.sample_inputs("imu_conv1d", 5, seed=10))


def test_recurrent_macs_count_every_gate_and_step():
    # LSTM: 24 steps x 4 gates x 16 units x (8 inputs + 16 units); Dense 16 -> 4
    assert zoo.macs(built("lstm_small")) == 24 * 4 * 16 * 24 + 16 * 4
    assert zoo.macs(built("gru_small")) == 24 * 3 * 16 * 24 + 16 * 4


def test_folded_params_adds_a_bias_where_the_conv_had_none():
    # conv_a, conv_b: 3x3x8x8 without bias, +8 each once BN is folded; Dense 200 -> 4
    assert zoo.folded_params(built("residual_bn")) == 2 * (9 * 8 * 8 + 8) + 200 * 4 + 4


def test_unknown_name_lists_the_known_models():
    with pytest.raises(KeyError, match="mlperf_ds_cnn"):
        zoo.build("no_such_model")


def test_calibrate_works_on_a_users_sequential_model_and_refuses_subclassed_ones():
    model = tf.keras.Sequential([tf.keras.Input((6,)), tf.keras.layers.Dense(3)])
    x = np.random.default_rng(0).normal(5.0, 3.0, (32, 6)).astype(np.float32)
    y = zoo.calibrate(model, x)(x).numpy()
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(y.std(axis=0), 1.0, rtol=1e-3)

    class Sub(tf.keras.Model):
        def call(self, inputs):
            return inputs

    with pytest.raises(TypeError, match="functional or Sequential"):
        zoo.calibrate(Sub(), x)


# ---------------------------------------------------------------------------------------------
# bench/zoo.py
# ---------------------------------------------------------------------------------------------

BENCH = Path(__file__).resolve().parents[1] / "bench" / "zoo.py"


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True,
                          timeout=900)


def test_bench_rejects_an_unknown_model_with_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "bench"
    r = _bench("--models", "mlperf_ds_cnn,no_such_model", "--out", str(out))
    assert r.returncode == 2
    assert "--models: unknown no_such_model" in r.stderr
    assert not out.exists()


@pytest.mark.slow
def test_bench_measures_what_converts_and_names_the_stage_of_what_does_not(tmp_path):
    out = tmp_path / "bench"
    r = _bench("--models", "residual_bn", "--dtypes", "int8", "--converters", "mcusearch,aidge",
               "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    ours, aidge = json.loads((out / "zoo.json").read_text())
    assert ours["converter"] == "mcusearch" and "error" not in ours
    assert ours["max_abs_error"] == 0 and ours["instructions"] > ours["macs"] > 0
    assert ours["flash_split"]["weights"] >= 2 * 9 * 8 * 8        # int8: a byte per weight
    assert ours["instructions"] * 0.8 < ours["est_cycles"] < ours["instructions"] * 3
    assert 0 < ours["peak_bytes"] <= ours["arena_bytes"]
    live = dict(b.rsplit(": ", 1) for b in ours["peak_buffers"])       # tensor name: bytes
    assert sum(map(int, live.values())) == ours["peak_bytes"] and "conv_b" in live
    assert aidge["error"] == "convert: aidge takes float32 only"
    assert "bit-exact" in (out / "zoo.md").read_text()


def test_bench_splits_instructions_by_layer_kind_and_averages_geometrically():
    """bench/zoo.py's summary lines: the MAC layers' instructions per MAC, the other layers' share
    by kind, and geometric means over the runs that finished (failed ones left out)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "bench" / "zoo.py"
    spec = importlib.util.spec_from_file_location("bench_zoo", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    a = {"model": "a", "dtype": "int8", "converter": "mcusearch", "macs": 1000,
         "instructions_per_mac": 2.0,
         "layers": [["c (Conv2D)", 1200], ["d (Dense)", 300], ["m (Mul)", 400], ["s (Softmax)", 100]]}
    b = {"model": "b", "dtype": "int8", "converter": "mcusearch", "macs": 200_000,
         "instructions_per_mac": 8.0, "layers": [["c (Conv2D)", 1_600_000]]}
    failed = {"model": "c", "dtype": "int8", "converter": "mcusearch", "error": "convert: no"}
    assert bench.layer_split(a) == "MAC layers 1.50 instr/MAC; other layers 25% (Mul 20%, Softmax 5%)"
    assert bench.layer_split(failed) == ""
    (line,) = [ln for ln in bench.geomeans([a, b, failed]) if "int8" in ln]
    assert "over 2 models 4.00" in line                 # sqrt(2 x 8)
    assert "of their MAC layers alone 3.46" in line     # sqrt(1.5 x 8)
    assert "over the 1 of 100 k MACs or more 8.00" in line
