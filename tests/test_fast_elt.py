"""The fast int8 element-wise and fully connected kernels (issue 14: int8 never slower than float).

``add_s8`` (firmware/kernels/fast/add_s8.c, a residual connection or an LSTM gate sum): every one of
the 65,536 (a, b) input pairs in one inference, through the optimised generator, against the
reference generator's ``mcus_add_s8_one`` (itself bit-exact with TFLite's ADD on all pairs:
tests/test_add_ties.py), on the host (the portable C) and in QEMU on a Cortex-M7 (SMMLAR, SSAT).
Quantisations: equal input scales with an output of twice the scale (every odd sum an exact tie),
a larger first or second input (the operands swapped), a fused ReLU (the lower clamp), a ReLU6-like
clamp on both sides, and an output scale so small that the fast path's bounds fail (the generic
arithmetic). The per-layer profile shows the instructions per element.

``fc_s8``'s short requantisation (SMMLAR(2 acc, m, (1 + 2 zp) << (r - 1)) >> r, taken where
``fastdata.fc_rq_short`` proves it exact) and its paired weights (two channels' sums from one SMLAD,
where ``layout.s8_fc_paired_ok`` holds; a layer of saturated weights over 661 inputs where not): Dense layers of odd sizes whose channels have multipliers of
exactly 1/2 (every odd accumulator a tie of the doubling high multiply) and random ones, right shifts
from 1 to 24, no clamp, a ReLU and both bounds, against the reference generator on the host and in
QEMU, on random inputs and the extremes; and layers where the proof fails (a right shift of 0,
accumulators that may reach 2^30) keep the generic requantisation.

Per-channel operands (``mcus_bcast_periodic``: a (1, 1, C) vector against an (H, W, C) map, as in
squeeze-and-excite and broadcast BatchNorm): int8 MUL, ADD and SUB of an input and a constant, the
constant first or second, every (a, b) pair (four models of 64 channels, 256 rows of all 256 input
values), against the TFLite interpreter itself, on the host and in QEMU.
"""
from __future__ import annotations

import numpy as np
import pytest

import test_convert as tc
from test_codegen_fast import as_result, check_fast_host, run_on
from test_fast_kernels import arm
from mcusearch.convert import fast, fastdata
from mcusearch.convert.graph import Add, Conv2D, Dense, Graph, Requant
from mcusearch.convert.quant import add_quant, quantize_multiplier

# (scale a, zp a, scale b, zp b, scale out, zp out, activation)
ADD_CASES = {
    "ties": (1 / 64, 0, 1 / 64, 0, 1 / 32, 0, "none"),
    "a_larger": (0.0323, 5, 0.0117, -7, 0.0402, 3, "none"),
    "b_larger": (0.0117, -7, 0.0323, 5, 0.0402, -9, "none"),
    "relu": (0.05, -20, 0.021, 11, 0.06, -128 + 37, "relu"),
    "relu6": (0.05, 17, 0.05, -3, 0.04, -100, "relu6"),
    "scales_far_apart": (0.2, 9, 0.003, -30, 0.25, 4, "none"),   # b's right shift 6: unfolded
    "generic": (0.05, 17, 0.03, -3, 0.06, 1, "none"),   # output shift forced to 0 (below)
}
# instructions per element on qemu-m7 -O3 (measured 11.4, 10.4, 10.4, 13.4, 17.4, 10.4: ties and
# relu6 have inputs of one scale, no table; the others the generator's table for b; 87 before the
# fast path), and without the table (shorter tensors: measured 15.5, 18.5)
MAX_ADD_PER_ELEMENT = {"ties": 12, "a_larger": 11, "b_larger": 11, "relu": 14,
                       "relu6": 18, "scales_far_apart": 11}
MAX_ADD_PER_ELEMENT_UNTABLED = {"a_larger": 16, "scales_far_apart": 19}


def _select(name: str, channel: int, zp: int) -> Conv2D:
    """A 1 x 1 convolution copying input channel ``channel`` of a 256 x 256 x 2 map exactly
    (weight 1, requantisation by exactly 1: multiplier 2^30 with a left shift of 1)."""
    w = np.zeros((1, 1, 1, 2), np.int8)
    w[0, 0, 0, channel] = 1
    rq = Requant(input_zero_point=zp, output_zero_point=zp, output_scale=1.0,
                 multiplier=np.array([1 << 30], np.int32), shift=np.array([1], np.int32))
    return Conv2D(name, (256, 256, 2), (256, 256, 1), weights=w, requant=rq, act=(-128, 127))


def add_pairs_graph(case: str) -> Graph:
    """input (256, 256, 2) int8 -> a = channel 0, b = channel 1 -> Add(a, b) with the case's
    quantisation: one inference holds all 65,536 pairs."""
    sa, za, sb, zb, so, zo, act = ADD_CASES[case]
    q = add_quant(sa, za, sb, zb, so, zo)
    if case == "generic":       # beyond what TFLite derives: the fast path's bounds fail
        q.output_multiplier, q.output_shift = 1 << 30, 0
    lo, hi = {"none": (-128, 127), "relu": (max(-128, zo), 127),
              "relu6": (max(-128, zo), min(127, zo + round(6 / so)))}[act]
    g = Graph(dtype="int8", input_shape=(256, 256, 2), source=f"add pairs {case}")
    g.input_scale, g.input_zero_point = 1.0, 0
    g.ops = [_select("a", 0, 0), _select("b", 1, 0),
             Add("add", (256, 256, 1), (256, 256, 1), act=(lo, hi), quant=q)]
    g.link_chain()
    g.ops[1].inputs = (0,)
    g.ops[2].inputs = (1, 2)
    g.output_scale, g.output_zero_point = so, zo
    return g.finish()


def pair_inputs() -> np.ndarray:
    """One input holding every (a, b) pair: channel 0 = a, channel 1 = b."""
    v = np.arange(-128, 128, dtype=np.int8)
    return np.stack([np.repeat(v, 256), np.tile(v, 256)], axis=1).reshape(1, -1)


def test_add_pairs_graph_is_what_it_claims():
    """The cases take the paths they are named for (TFLite's parameters: a multiplier of exactly
    1/2 for the larger input, none in the generic case's output), and the selectors copy."""
    halves = {}
    for case in ADD_CASES:
        q = add_pairs_graph(case).ops[2].quant
        assert q.left_shift == 20
        halves[case] = (q.prev_multiplier == 1 << 30 and q.prev_shift == 0,
                        q.skip_multiplier == 1 << 30 and q.skip_shift == 0)
    assert halves["ties"] == (True, True) and halves["relu6"] == (True, True)
    assert halves["a_larger"] == (True, False) and halves["b_larger"] == (False, True)
    assert add_pairs_graph("generic").ops[2].quant.output_shift > -1
    assert add_pairs_graph("scales_far_apart").ops[2].quant.skip_shift < -3


@pytest.mark.parametrize("case", list(ADD_CASES))
def test_fast_add_all_pairs_host(tmp_path, case):
    """Fast vs reference generator on the host, all 65,536 pairs, bit for bit."""
    check_fast_host(add_pairs_graph(case), pair_inputs(), tmp_path)


def test_same_shape_table_only_where_read():
    """The generator gives b's table where one input is rescaled by 1/2 and the other not, from
    SAME_TB_MIN elements on; its entries are b's doubled rescaled value plus a's offset 2^20."""
    from mcusearch.convert.ops.elementwise import SAME_TB_MIN, same_shape_tb
    from mcusearch.convert.quant import add_rescaled
    q = add_pairs_graph("b_larger").ops[2].quant       # the skip input has the larger scale
    tb = same_shape_tb(q, SAME_TB_MIN)
    v = np.arange(-128, 128)
    assert np.array_equal(tb, 2 * add_rescaled(q, "prev", v) + (q.skip_offset << 20))
    assert same_shape_tb(q, SAME_TB_MIN - 1) is None
    for case in ("ties", "relu6", "generic"):
        assert same_shape_tb(add_pairs_graph(case).ops[2].quant, 1 << 16) is None, case


@arm
@pytest.mark.parametrize("case,opt,table", [(c, "-O3", True) for c in ADD_CASES] +
                         [("relu", "-Os", True), ("a_larger", "-O3", False),
                          ("scales_far_apart", "-O3", False)])
def test_fast_add_all_pairs_in_qemu_m7(tmp_path, monkeypatch, case, opt, table):
    """The same in QEMU (Cortex-M7, -O3; -Os: the generic arithmetic; `table` False: the
    arithmetic of tensors shorter than SAME_TB_MIN): measure() raises unless every output equals
    the reference's; the Add layer's instructions per element stay under the case's bound."""
    from test_codegen_fast import reference
    from mcusearch.convert.ops import elementwise
    if not table:
        monkeypatch.setattr(elementwise, "SAME_TB_MIN", 1 << 30)
    g = add_pairs_graph(case)
    x = pair_inputs()
    want = reference(g, x, tmp_path)
    em = fast.emit_fast(g, tmp_path / "fast")
    _, meas = run_on("qemu-m7", as_result("mcusearch", em, g, x, want), tmp_path, opt)
    assert meas.max_abs_error == 0
    count = dict(meas.layer_counts)["add (Add)"]
    per = count / 65536
    print(f"add {case} {opt} table={table}: {per:.2f} instructions/element")
    if case != "generic" and opt == "-O3":
        assert per < (MAX_ADD_PER_ELEMENT if table else MAX_ADD_PER_ELEMENT_UNTABLED)[case], per


# ---- fc_s8: the short requantisation ---------------------------------------------------------

FC_ACTS = {"none": (-128, 127), "relu": (-20, 127), "both": (-20, 90)}


def fc_graph(act: str, k: int = 37, oc: int = 13, generic: str = "", seed: int = 3) -> Graph:
    """input (k,) int8 -> Dense k -> oc: half the channels with a multiplier of exactly 1/2
    (ties), the others random, right shifts 1..24 spread over the channels (scaled so that
    outputs stay mostly within int8). ``generic``: "shift0" gives one channel a right shift of 0,
    "big" a bias near 2^30 (either makes fc_rq_short false)."""
    rng = np.random.default_rng(seed)
    w = rng.integers(-127, 128, (oc, k)).astype(np.int8)
    if generic == "wide":        # 128 sum |w| >= 2^23 in every channel: quads not paired
        w = np.where(w < 0, -127, 127).astype(np.int8)
    bias = rng.integers(-20000, 20000, oc).astype(np.int32)
    mults, shifts = [], []
    for c in range(oc):
        amax = 255 * int(np.abs(w[c].astype(np.int64)).sum()) + abs(int(bias[c]))
        r = int(np.clip(np.ceil(np.log2(amax / 128)), 1, 24)) if c % 3 else 1 + c % 24
        m = 1 << 30 if c % 2 else quantize_multiplier(float(rng.uniform(0.5, 1.0)))[0]
        mults.append(m)
        shifts.append(-r)
    if generic == "shift0":
        shifts[0] = 0
    if generic == "big":
        bias[1] = 2**30 - 5
    if generic == "k20z":        # no bias, input zero point 0: the folded bias is all zero
        bias[:] = 0
    rq = Requant(input_zero_point=int(rng.integers(-128, 128)), output_zero_point=-7,
                 output_scale=0.1, multiplier=np.array(mults, np.int32),
                 shift=np.array(shifts, np.int32))
    g = Graph(dtype="int8", input_shape=(k,), source=f"fc {act} {generic}")
    if generic == "k20z":
        rq.input_zero_point = 0
    g.input_scale, g.input_zero_point = 0.05, rq.input_zero_point
    g.ops = [Dense("fc", (k,), (oc,), weights=w, bias=bias, requant=rq, act=FC_ACTS[act])]
    g.output_scale, g.output_zero_point = 0.1, -7
    return g.link_chain()


def fc_inputs(k: int = 37, n: int = 3000) -> np.ndarray:
    x = np.random.default_rng(11).integers(-128, 128, (n, k)).astype(np.int8)
    x[0], x[1] = -128, 127
    x[2, ::2], x[2, 1::2] = -128, 127
    return x


def test_fc_paired_weights_layout():
    """Per quad and 4-k chunk: pairs (c, c+1), (c+2, c+3), each as words (k0, k2) then (k1, k3)
    whose halfwords read as int16 are 256 w_{c+1} + w_c; the rest as s8_fc_weights; and when the
    layout applies."""
    from mcusearch.convert import layout
    rng = np.random.default_rng(0)
    for oc, K in ((8, 32), (6, 45), (9, 40), (4, 128)):
        W = rng.integers(-127, 128, (oc, K)).astype(np.int8)
        got = layout.s8_fc_weights_paired(W).astype(np.int64)
        nq, nch = oc // 4, K // 4
        off = 0
        for q in range(nq):
            for j in range(nch):
                for pair in range(2):
                    c0, c1 = 4 * q + 2 * pair, 4 * q + 2 * pair + 1
                    for ks in ((0, 2), (1, 3)):
                        for h, k in enumerate(ks):
                            lo, hi = got[off + 2 * h], got[off + 2 * h + 1]
                            assert lo == W[c0, 4 * j + k]
                            assert (lo & 0xFF) + 256 * hi == 256 * int(W[c1, 4 * j + k]) + int(lo)
                        off += 4
        assert got[off:].tolist() == layout.s8_fc_weights(W)[off:].tolist()
        assert layout.s8_fc_paired_ok(W)
    assert not layout.s8_fc_paired_ok(np.ones((8, 28), np.int8))          # 7 chunks
    assert not layout.s8_fc_paired_ok(np.full((8, 600), 127, np.int8))    # 128 * 76,200 >= 2^23
    w = np.ones((4, 32), np.int8)
    w[0, 0], w[1, 0] = -1, -128                                           # no room for the carry
    assert not layout.s8_fc_paired_ok(w)


FC_CASES = [("none", ""), ("relu", ""), ("both", ""), ("none", "shift0"), ("none", "big"),
            ("relu", "wide"), ("none", "k20"), ("both", "k20"), ("none", "k20z"), ("none", "p64"),
            ("both", "p64")]
# K % 4 == 0: the whole-quads asm loops (fc_s8_quads), unpaired (k20) and paired (p64); K of 4, 8
# or 16 without a clamp runs conv1x1_s8 instead (test_fast_conv1x1.py)
FC_K = {"wide": 661, "k20": 20, "k20z": 20, "p64": 64}


def fc_case(act: str, generic: str) -> Graph:
    return fc_graph(act, k=FC_K.get(generic, 37), generic=generic)


@pytest.mark.parametrize("act,generic", FC_CASES)
def test_fc_short_requant_host(tmp_path, act, generic):
    """Fast vs reference generator, bit for bit; plan.json says which requantisation ran."""
    g = fc_case(act, generic)
    short = generic in ("", "wide", "k20", "k20z", "p64")
    assert fastdata.fc_rq_short(g.ops[0]) == short
    k = g.ops[0].in_shape[0]
    check_fast_host(g, fc_inputs(k), tmp_path)
    import json
    (layer,) = json.loads((tmp_path / "fast" / "plan.json").read_text())["layers"]
    assert layer["kernel"] == "fc_s8" and layer["extra"]["rq_short"] == short
    assert layer["extra"]["paired"] == (generic not in ("wide", "k20", "k20z"))
    assert layer["extra"]["quads"] == (generic in ("k20", "k20z", "p64"))


@arm
@pytest.mark.parametrize("act,generic,opt", [c + ("-O3",) for c in FC_CASES] +
                         [("relu", "", "-Os"), ("none", "shift0", "-Os"), ("both", "k20", "-Os"),
                          ("both", "p64", "-Os")])
def test_fc_short_requant_in_qemu_m7(tmp_path, act, generic, opt):
    """The same with SMMLAR and SSAT on an emulated Cortex-M7; built for size too (one copy of
    the layer loop, the flags read at run time)."""
    from test_codegen_fast import reference
    g = fc_case(act, generic)
    x = fc_inputs(g.ops[0].in_shape[0], n=400)
    want = reference(g, x, tmp_path)
    em = fast.emit_fast(g, tmp_path / "fast")
    _, meas = run_on("qemu-m7", as_result("mcusearch", em, g, x, want), tmp_path, opt)
    assert meas.max_abs_error == 0


# ---- per-channel (periodic) broadcasts: MUL, ADD, SUB --------------------------------------------

# (scale, zero point) of input, constant, output; the activation
PERIODIC_QUANT = {"ties": ((1 / 64, 0), (1 / 64, 0), (1 / 32, 0), "NONE"),
                  "arbitrary": ((0.0117, 3), (0.0137, -7), (0.0323, 5), "NONE"),
                  "input_larger_relu": ((0.0417, -9), (0.0137, 12), (0.0223, -40), "RELU")}
# op, which operand is the constant, quantisation
PERIODIC_CASES = [("MUL", 1, "ties"), ("MUL", 0, "arbitrary"), ("MUL", 1, "input_larger_relu"),
                  ("ADD", 1, "ties"), ("ADD", 1, "arbitrary"), ("ADD", 0, "arbitrary"),
                  ("ADD", 0, "input_larger_relu"), ("SUB", 1, "arbitrary"),
                  ("SUB", 0, "input_larger_relu")]


def periodic_models(op: str, const_index: int, quant: str, d):
    """Four one-operator .tflite files (64 channels each: constant values -128..-65, ..., 64..127)
    and the input that pairs every input value with every constant value: x[r, c] = r - 128."""
    from test_ops_shape import one_op, schema
    qx, qc, qo, act = PERIODIC_QUANT[quant]
    s = schema()
    options = {"MUL": s.MulOptionsT, "ADD": s.AddOptionsT, "SUB": s.SubOptionsT}[op]()
    options.fusedActivationFunction = getattr(s.ActivationFunctionType, act)
    x = np.repeat(np.arange(-128, 128, dtype=np.int8), 64).reshape(1, -1)
    paths = []
    for j in range(4):
        consts = np.arange(-128 + 64 * j, -64 + 64 * j, dtype=np.int8).reshape(1, 1, 64)
        tensors = [dict(shape=(1, 256, 64), type="int8", q=qx),
                   dict(shape=(1, 1, 64), type="int8", q=qc, data=consts)]
        if const_index == 0:
            tensors = tensors[::-1]
        path = d / f"{op}{const_index}{quant}{j}.tflite"
        path.write_bytes(one_op(op, tensors, [dict(shape=(1, 256, 64), type="int8", q=qo)],
                                options))
        paths.append(path)
    return paths, x


def _periodic_runs(op, const_index, quant, d, board=None):
    from mcusearch.convert import cgen
    from mcusearch.convert.frontend import graph_from_tflite
    from mcusearch.convert.ops.elementwise import Binary
    from test_convert import host_run
    from test_ops_shape import conv_result
    paths, x = periodic_models(op, const_index, quant, d)
    for k, path in enumerate(paths):
        g = graph_from_tflite(path)
        (b,) = g.compute_ops
        assert isinstance(b, Binary) and b.function == op and b.const_index == const_index
        assert b.geometry.dims == (256, 64)
        want = cgen.tflite_tensor(path, x, g.output_id).astype(np.int8)
        assert len(np.unique(want)) > 20                     # not one saturated value
        em = fast.emit_fast(g, d / f"c{k}")
        conv = conv_result("mcusearch", em, g, x, want)
        if board is None:
            np.testing.assert_array_equal(host_run(conv, d / f"h{k}"), want)
        else:
            _, meas = run_on(board, conv, d / f"q{k}")
            assert meas.max_abs_error == 0
            yield dict(meas.layer_counts)[f"{g.compute_ops[0].name} ({op.capitalize()})"] / x.size


@pytest.mark.parametrize("op,const_index,quant", PERIODIC_CASES)
def test_periodic_binary_every_pair_host(tmp_path, op, const_index, quant):
    """Every (input, constant) pair, bit-exact with the interpreter (host build of the kernels)."""
    for _ in _periodic_runs(op, const_index, quant, tmp_path):
        pass


def _small_periodic(op: str, const_index: int, rows: int, n: int, d):
    """A one-operator model on an input (1, rows, n) and a random (1, 1, n) constant, random
    inputs: the prepared table repeated over several rows (mcus_periodic_reps), odd n."""
    from test_ops_shape import one_op, schema
    from mcusearch.convert import cgen
    from mcusearch.convert.frontend import graph_from_tflite
    from test_ops_shape import conv_result
    qx, qc, qo, _ = PERIODIC_QUANT["arbitrary"]
    rng = np.random.default_rng(rows * n)
    options = {"MUL": schema().MulOptionsT, "ADD": schema().AddOptionsT}[op]()
    tensors = [dict(shape=(1, rows, n), type="int8", q=qx),
               dict(shape=(1, 1, n), type="int8", q=qc,
                    data=rng.integers(-128, 128, (1, 1, n)).astype(np.int8))]
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{op}{const_index}_{rows}x{n}.tflite"
    path.write_bytes(one_op(op, tensors[::-1] if const_index == 0 else tensors,
                            [dict(shape=(1, rows, n), type="int8", q=qo)], options))
    g = graph_from_tflite(path)
    x = rng.integers(-128, 128, (6, rows * n)).astype(np.int8)
    want = cgen.tflite_tensor(path, x, g.output_id).astype(np.int8)
    return conv_result("mcusearch", fast.emit_fast(g, d / "c"), g, x, want)


SMALL_PERIODIC = [(40, 6), (13, 7), (9, 8), (4, 64)]


@pytest.mark.parametrize("op", ["MUL", "ADD"])
@pytest.mark.parametrize("rows,n", SMALL_PERIODIC)
def test_small_periodic_host(tmp_path, op, rows, n):
    from test_convert import host_run
    for const_index in (0, 1):
        d = tmp_path / str(const_index)
        conv = _small_periodic(op, const_index, rows, n, d)
        np.testing.assert_array_equal(host_run(conv, d / "h"), conv.expected)


@arm
@pytest.mark.parametrize("op", ["MUL", "ADD"])
def test_small_periodic_in_qemu_m7(tmp_path, op):
    for rows, n in SMALL_PERIODIC:
        for const_index in (0, 1):
            d = tmp_path / f"{rows}x{n}_{const_index}"
            _, meas = run_on("qemu-m7", _small_periodic(op, const_index, rows, n, d), d)
            assert meas.max_abs_error == 0


# instructions per element on qemu-m7 -O3 (the runs' loop before: MUL 21.5, ADD 43)
# (measured: MUL 9.3, 9.3, ADD 10.3 with equal scales, else 13.4 (14.4 before its assembly
# loop), with a ReLU MUL 16.8, ADD 16.3);
# SUB of a constant minuend keeps the runs' loop (its input's multiplier is negative)
MAX_PERIODIC_PER_ELEMENT = {"MUL": 11.5, "ADD": 14.0, "SUB": 14.0, "RELU": 17.0}


@arm
@pytest.mark.parametrize("op,const_index,quant", PERIODIC_CASES)
def test_periodic_binary_every_pair_in_qemu_m7(tmp_path, op, const_index, quant):
    """The same in QEMU (Cortex-M7, -O3), and the cost per element."""
    per = list(_periodic_runs(op, const_index, quant, tmp_path, board="qemu-m7"))
    print(f"{op} const {const_index} {quant}: {max(per):.2f} instructions/element")
    if (op, const_index) != ("SUB", 0):
        bound = "RELU" if PERIODIC_QUANT[quant][-1] == "RELU" else op
        assert max(per) < MAX_PERIODIC_PER_ELEMENT[bound], per


tc  # noqa: B018 (test_convert sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
