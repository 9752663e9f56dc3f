"""The float32 fast kernels of issue 14: conv2d_f32 (4 pixels' interleaved columns x groups of 4
output channels) and dwconv3x3_f32 (tiles of up to 4 pixels x 4 channels, a sliding window in
registers, every channel group in one asm block, edges skipped by APSR flags).

Within the converter's tolerance of Keras on the host (the portable C paths) and in QEMU on a
Cortex-M7 and a Cortex-M33 (the FPv5 assembly: VMAXNM/VMINNM clamps) and a Cortex-M4 (FPv4: compare-and-move
clamps): K % 8 of 0, 1, 3 and 4, output channels not in multiples of 4 or 8, padded columns, stride 2, SAME and VALID, ReLU6 and linear
outputs; depthwise rows of 1 to 6 pixels (every tile size), stride 1 and 2, one-row and two-row
inputs (both vertical edges in one call), odd channel counts (the overlapping last group). The
per-layer profile shows the paths ran: DS-CNN's pointwise and depthwise shapes under 1.5 and 2.0
instructions a MAC (1.47 and 4.20 before the depthwise kernel).
"""
from __future__ import annotations

import json

import pytest

import test_convert as tc
from test_fast_kernels import arm
from mcusearch.convert import convert

L = tc.L


def conv_chain(seed: int = 11):
    """Every case of conv2d_f32 (comments: K, output channels, column)."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((9, 11, 3)),
        L.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="stem"),  # 27, 12, padded
        L.Conv2D(13, 1, name="pw13"),                                                # 12, 13, in place
        L.ReLU(max_value=6.0, name="relu6"),
        L.Conv2D(8, 3, padding="valid", name="c3v"),                                 # 117, 8, copied
        L.Conv2D(17, (1, 2), padding="same", activation="relu", name="c12"),         # 16, 17, padded
        L.Conv2D(16, 1, strides=2, activation="relu", name="pw_s2"),                 # 17, 16, in place
        L.Flatten(),
        L.Dense(10, activation="relu", name="fc1"),                                  # 64, 10
        L.Dense(3, name="fc2"),                                                      # 10, 3
    ])
    return tc._random_biases(model, seed)


def conv_tail_chain(seed: int = 15):
    """Rows that end in 3 or 2 pixels after the 4-pixel tiles (the 3 x 4 and 2 x 4 tiles), or
    are only 3 or 2 pixels wide, with channel counts beyond a multiple of 4."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((9, 13, 3)),
        L.Conv2D(12, 3, strides=2, padding="same", activation="relu", name="stem"),  # 7 = 4 + 3
        L.Conv2D(9, 1, name="pw9"),                                                  # 7, 9 channels
        L.Conv2D(8, 3, padding="valid", activation="relu", name="c3v"),              # 5 = 4 + 1
        L.Conv2D(16, 1, strides=2, activation="relu", name="pw_s2"),                 # 3 wide
        L.Conv2D(6, (1, 2), padding="valid", name="c12v"),                           # 2 wide, 6 ch
        L.ReLU(max_value=6.0, name="relu6"),
        L.Flatten(),
        L.Dense(5, name="fc"),
    ])
    return tc._random_biases(model, seed)


def dw_chain(channels: int, width: int, height: int, seed: int = 12):
    """1 x 1 conv -> dw 3 x 3 same relu6 -> dw 3 x 3 stride 2 same relu -> dw 3 x 3 same."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((height, width, 2)),
        L.Conv2D(channels, 1, activation="relu", name="pw"),
        L.DepthwiseConv2D(3, padding="same", name="dw1"),
        L.ReLU(max_value=6.0, name="relu6"),
        L.DepthwiseConv2D(3, strides=2, padding="same", activation="relu", name="dw2"),
        L.DepthwiseConv2D(3, padding="same", name="dw3"),
    ])
    return tc._random_biases(model, seed)


def dw_valid_chain(channels: int, width: int, seed: int = 14):
    """1 x 1 conv -> dw 3 x 3 valid relu -> dw 3 x 3 stride 2 valid: tiles whose last column is
    inside the input (SAME's last tile pads it on the right)."""
    tc.tf.keras.utils.set_random_seed(seed)
    model = tc.tf.keras.Sequential([
        L.InputLayer((9, width, 2)),
        L.Conv2D(channels, 1, activation="relu", name="pw"),
        L.DepthwiseConv2D(3, padding="valid", activation="relu", name="dw1"),
        L.DepthwiseConv2D(3, strides=2, padding="valid", name="dw2"),
    ])
    return tc._random_biases(model, seed)


# (channels, width, height): every tile size 1-4 at stride 1 and 2, left/right/top/bottom edges
DW_SHAPES = [(13, 6, 5), (4, 1, 1), (8, 2, 2), (6, 3, 7), (12, 5, 4), (16, 7, 3)]
# (channels, width): valid widths 3 / 1, 6 / 2, 7 / 3, 11 / 5, 13 / 6
DW_VALID = [(6, 5), (13, 8), (4, 9), (8, 13), (7, 15)]


def _float(model, d, n=tc.N_PROBE):
    return convert(tc.model_result(model, d, "float32", x=tc.probes(model.input_shape[1:], n=n)),
                   "mcusearch", d / "c")


def _kernels(d) -> dict[str, str]:
    plan = json.loads((d / "c" / "plan.json").read_text())
    return {la["name"]: la["kernel"] for la in plan["layers"]}


def test_conv_chain_host(tmp_path):
    conv = _float(conv_chain(), tmp_path, n=50)
    tc.check(conv, tmp_path)                        # raises unless within tolerance of Keras
    assert set(_kernels(tmp_path).values()) == {"conv2d_f32"}


def test_conv_tail_chain_host(tmp_path):
    conv = _float(conv_tail_chain(), tmp_path, n=50)
    tc.check(conv, tmp_path)
    assert set(_kernels(tmp_path).values()) == {"conv2d_f32"}


@pytest.mark.parametrize("channels,width,height", DW_SHAPES)
def test_dw_chain_host(tmp_path, channels, width, height):
    conv = _float(dw_chain(channels, width, height), tmp_path, n=30)
    tc.check(conv, tmp_path)
    assert [k for n, k in _kernels(tmp_path).items() if n.startswith("dw")] == ["dwconv3x3_f32"] * 3


@pytest.mark.parametrize("channels,width", DW_VALID)
def test_dw_valid_chain_host(tmp_path, channels, width):
    conv = _float(dw_valid_chain(channels, width), tmp_path, n=30)
    tc.check(conv, tmp_path)
    assert [k for n, k in _kernels(tmp_path).items() if n.startswith("dw")] == ["dwconv3x3_f32"] * 2


@arm
@pytest.mark.parametrize("board", ["qemu-m7", "qemu-m4", "qemu-m33"])
def test_f32_chains_in_qemu(tmp_path, board):
    from test_codegen_fast import run_on
    cases = ([("conv", conv_chain()), ("tail", conv_tail_chain())] + [(f"dw{c}x{w}x{h}", dw_chain(c, w, h)) for c, w, h in DW_SHAPES]
             + [(f"dwv{c}x{w}", dw_valid_chain(c, w)) for c, w in DW_VALID])
    for name, model in cases:
        d = tmp_path / name
        d.mkdir()
        run_on(board, _float(model, d), d)          # raises unless the outputs match


def _layer_cost(model, d, layer: str, macs: int) -> float:
    from test_codegen_fast import run_on
    _, m = run_on("qemu-m7", _float(model, d), d)
    (_, count), = [lc for lc in m.layer_counts if lc[0].startswith(layer)]
    return count / macs


@arm
def test_ds_cnn_shapes_cost_in_qemu_m7(tmp_path):
    """DS-CNN's pointwise (25 x 5 x 64 -> 64) and depthwise (3 x 3 same on 25 x 5 x 64) layers."""
    tc.tf.keras.utils.set_random_seed(13)
    pw = tc._random_biases(tc.tf.keras.Sequential([
        L.InputLayer((25, 5, 64)), L.Conv2D(64, 1, activation="relu", name="pw")]), 13)
    dw = tc._random_biases(tc.tf.keras.Sequential([
        L.InputLayer((25, 5, 64)), L.DepthwiseConv2D(3, padding="same", activation="relu", name="dw")]), 13)
    (tmp_path / "pw").mkdir()
    (tmp_path / "dw").mkdir()
    per_mac_pw = _layer_cost(pw, tmp_path / "pw", "pw", 25 * 5 * 64 * 64)
    per_mac_dw = _layer_cost(dw, tmp_path / "dw", "dw", 25 * 5 * 64 * 9)
    print(f"pointwise {per_mac_pw:.3f}, depthwise {per_mac_dw:.3f} instructions/MAC")
    assert per_mac_pw < 1.5 and per_mac_dw < 2.0, (per_mac_pw, per_mac_dw)


@arm
def test_narrow_rows_cost_in_qemu_m7(tmp_path):
    """MobileNet's late pointwise layers: rows 6 wide (a 4-pixel tile + a 2-pixel tile) and 3
    wide (one 3-pixel tile). With a 1-pixel tile per leftover pixel: 1.28 and 1.84 instructions
    a MAC; with the 2- and 3-pixel tiles 1.19 and 1.39."""
    tc.tf.keras.utils.set_random_seed(16)
    model = tc._random_biases(tc.tf.keras.Sequential([
        L.InputLayer((6, 6, 64)), L.Conv2D(64, 1, activation="relu", name="pw6"),
        L.Conv2D(64, 1, strides=2, activation="relu", name="pw3")]), 16)
    from test_codegen_fast import run_on
    _, m = run_on("qemu-m7", _float(model, tmp_path), tmp_path)
    pw6, pw3 = (next(c for n, c in m.layer_counts if n.startswith(name)) / macs
                for name, macs in (("pw6", 36 * 64 * 64), ("pw3", 9 * 64 * 64)))
    print(f"6 wide {pw6:.3f}, 3 wide {pw3:.3f} instructions/MAC")
    assert pw6 < 1.25 and pw3 < 1.5, (pw6, pw3)
