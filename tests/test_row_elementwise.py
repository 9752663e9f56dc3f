"""Element-wise reference layers a row a call, and in place (issue 14: memory beyond tensor
lifetimes).

MobileNetV3's hard-swish and hard sigmoid (TFLite HARD_SWISH, MUL, ADD of a constant) have no row
kernel of their own: their reference kernels used to run once on whole feature maps, so every map
they touched existed whole. The optimised generator now runs them one output row per call where
that gives the smaller arena and its extra calls' set-up fits a stated budget
(``fast.ROW_STREAM_SHARE`` instructions per MAC), and the planner lets an element-wise layer
overwrite an input that no later layer reads. Checked here on the zoo's MobileNetV3 bottleneck
(``mobilenet_v3_block``) on the host (bit-exact int8, float within tolerance; qemu-m7 runs it in
tests/test_zoo_convert.py), and that a model whose streamed layers would cost more than the budget
(squeeze-and-excite on a 12-row map) keeps them whole.
"""
from __future__ import annotations

import json

import pytest

import test_convert as tc
from mcusearch.convert import convert, fast
from mcusearch.model import zoo
from mcusearch.model.quantize import to_int8_tflite


def _convert(name: str, quant: str, d, share: float | None = None):
    model = zoo.build(name)
    x = zoo.sample_inputs(name, 3, seed=5)
    tfl = (to_int8_tflite(model, zoo.sample_inputs(name, 16, seed=9), d / "m.tflite")
           if quant == "int8" else None)
    mr = tc.model_result(model, d, quant, tfl, x=x)
    old = fast.ROW_STREAM_SHARE
    if share is not None:
        fast.ROW_STREAM_SHARE = share
    try:
        conv = convert(mr, "mcusearch", d / "c")
    finally:
        fast.ROW_STREAM_SHARE = old
    plan = json.loads((d / "c" / "plan.json").read_text())
    return conv, plan


@pytest.mark.parametrize("quant", ["int8", "float32"])
def test_hard_swish_streams_and_shrinks_the_arena(tmp_path, quant):
    conv, plan = _convert("mobilenet_v3_block", quant, tmp_path / "rows")
    tc.check(conv, tmp_path / "rows")                     # bit-exact int8 / float tolerance
    streamed = [la["name"] for la in plan["layers"] if "a row a call" in la["kernel"]]
    assert {"stem_hswish", "expand_hswish", "dw_hswish"} <= set(streamed)
    assert plan["notes"][0].startswith(f"{len(streamed)} element-wise layers a row a call")
    whole_conv, whole = _convert("mobilenet_v3_block", quant, tmp_path / "whole", share=0.0)
    assert not any("a row a call" in la["kernel"] for la in whole["layers"])
    # the expand conv's output was whole (its hard-swish read it whole); now a line buffer
    assert plan["arena_bytes"] < 0.7 * whole["arena_bytes"]
    assert conv.arena_bytes == plan["arena_bytes"]
    tc.check(whole_conv, tmp_path / "whole")


def test_over_budget_layers_stay_whole(tmp_path):
    """se_block's excite Mul on a 12 x 12 x 8 map: 11 more calls of a broadcasting Mul
    (186 + 13 x 8 instructions each) exceed 0.02 instructions per MAC of a 42,688-MAC model."""
    conv, plan = _convert("se_block", "int8", tmp_path)
    assert not any("a row a call" in la["kernel"] for la in plan["layers"])
    excite = next(la for la in plan["layers"] if la["name"] == "excite")
    assert excite["kernel"] == "mul_s8 (reference)"
    # in place: the excite Mul overwrites the conv's map its global pool read before, so the
    # peak is that map and the conv's scratch, not two maps
    assert plan["peak"]["buffers"] == ["conv: 1152", "scratch: 376"]
    tc.check(conv, tmp_path)
