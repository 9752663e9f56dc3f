"""The optimised generator (converter "mcusearch") against the reference kernels ("mcusearch-ref")
and TFLite/Keras: layouts, the row planner, the fast requantisation, random graphs on the host
(portable C) and in QEMU (DSP / FMA paths on Cortex-M7 and M4, plain C on M3), sparse weights and
the per-layer markers.

Random graphs need no TensorFlow: the reference generator's host output is the oracle (it is
itself bit-exact with TFLite, tests/test_convert.py), so int8 must match it bit for bit and float32
within the converter's tolerance.
"""
from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mcusearch.convert import CONVERTERS, ConvertResult, _load_plugins
from mcusearch.convert import cgen, fast, layout
from mcusearch.convert.graph import Conv2D, Dense, Graph, MaxPool2D, Requant, Reshape, Softmax
from mcusearch.convert.quant import quantize_multiplier, same_padding, valid_size
from mcusearch.convert.host import host_run
from test_convert import STRICT, host_exe
from mcusearch.convert.planner import PlanLayer, PlanTensor, check_plan, plan

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

HAVE_ARM = bool(shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm"))
FAST = fast.FAST_DIR
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                       HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------
# random graphs
# ---------------------------------------------------------------------------------------------

def _requant(rng, zp_in: int, oc: int, real_lo=2e-4, real_hi=0.9) -> Requant:
    reals = np.exp(rng.uniform(math.log(real_lo), math.log(real_hi), oc))
    mults = [quantize_multiplier(float(r)) for r in reals]
    zp_out = int(rng.integers(-128, 100))
    return Requant(input_zero_point=zp_in, output_zero_point=zp_out, output_scale=0.1,
                   multiplier=np.array([m for m, _ in mults], np.int32),
                   shift=np.array([s for _, s in mults], np.int32))


def random_graph(seed: int, dtype: str, sparsity: float = 0.0, max_hw: int = 11) -> Graph:
    """A chain: 1-3 convolutions (any kernel, stride, padding, channel count) and pools, then a
    Flatten and 1-2 dense layers; random weights (a fraction ``sparsity`` zeroed), biases,
    requantisation and clamps."""
    rng = np.random.default_rng(seed)
    f32 = dtype == "float32"
    h, w, c = int(rng.integers(3, max_hw)), int(rng.integers(3, max_hw)), int(rng.integers(1, 7))
    g = Graph(dtype=dtype, input_shape=(h, w, c), source=f"random seed {seed}")
    if not f32:
        g.input_scale, g.input_zero_point = 0.05, int(rng.integers(-128, 127))
    zp = g.input_zero_point or 0
    shape = (h, w, c)

    def weights(oc, k):
        wt = (rng.normal(0, 0.4, (oc,) + k).astype(np.float32) if f32
              else rng.integers(-127, 128, (oc,) + k).astype(np.int8))
        if sparsity:
            wt[rng.random(wt.shape) < sparsity] = 0
        return wt

    def act(zp_out):
        if f32:
            return [(-math.inf, math.inf), (0.0, math.inf), (0.0, 0.6)][int(rng.integers(0, 3))]
        kind = int(rng.integers(0, 3))
        return [(-128, 127), (max(-128, zp_out), 127), (max(-128, zp_out), min(127, zp_out + 60))][kind]

    n_conv = int(rng.integers(1, 4))
    for i in range(n_conv):
        ih, iw, ic = shape
        kh, kw = int(rng.integers(1, min(ih, 4) + 1)), int(rng.integers(1, min(iw, 4) + 1))
        sh, sw = int(rng.integers(1, 3)), int(rng.integers(1, 3))
        mode = "same" if rng.random() < 0.6 else "valid"
        if mode == "same":
            (oh, pt), (ow, pl) = same_padding(ih, kh, sh), same_padding(iw, kw, sw)
        else:
            oh, ow, pt, pl = valid_size(ih, kh, sh), valid_size(iw, kw, sw), 0, 0
        oc = int(rng.integers(1, 10))
        wt = weights(oc, (kh, kw, ic))
        bias = (rng.normal(0, 0.3, oc).astype(np.float32) if f32
                else rng.integers(-3000, 3000, oc).astype(np.int32)) if rng.random() < 0.8 else None
        rq = None if f32 else _requant(rng, zp, oc, real_hi=1.8 if rng.random() < 0.2 else 0.9)
        op = Conv2D(f"conv{i}", shape, (oh, ow, oc), weights=wt, bias=bias, stride=(sh, sw),
                    padding=mode, pad=(pt, pl), requant=rq,
                    act=act(rq.output_zero_point if rq else 0))
        g.ops.append(op)
        shape = op.out_shape
        if not f32:
            zp = rq.output_zero_point
        if rng.random() < 0.5 and min(shape[:2]) >= 2:
            ph, pw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
            ph, pw = min(ph, shape[0]), min(pw, shape[1])
            st_ = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
            pmode = "same" if rng.random() < 0.5 else "valid"
            if pmode == "same":
                (oh, pt), (ow, pl) = same_padding(shape[0], ph, st_[0]), same_padding(shape[1], pw, st_[1])
            else:
                oh, ow, pt, pl = valid_size(shape[0], ph, st_[0]), valid_size(shape[1], pw, st_[1]), 0, 0
            pa = act(zp) if not f32 else (-math.inf, math.inf)
            g.ops.append(MaxPool2D(f"pool{i}", shape, (oh, ow, shape[2]), pool=(ph, pw), stride=st_,
                                   padding=pmode, pad=(pt, pl), act=pa))
            shape = g.ops[-1].out_shape
    n = int(np.prod(shape))
    g.ops.append(Reshape("flatten", shape, (n,)))
    for i in range(int(rng.integers(1, 3))):
        oc = int(rng.integers(1, 12))
        rq = None if f32 else _requant(rng, zp, oc)
        if rq is not None and rng.random() < 0.3:       # per-tensor
            rq = Requant(rq.input_zero_point, rq.output_zero_point, 0.1, rq.multiplier[:1], rq.shift[:1])
        bias = (rng.normal(0, 0.3, oc).astype(np.float32) if f32
                else rng.integers(-3000, 3000, oc).astype(np.int32))
        g.ops.append(Dense(f"dense{i}", (n,), (oc,), weights=weights(oc, (n,)), bias=bias,
                           act=act(rq.output_zero_point if rq else 0), requant=rq))
        n = oc
        if not f32:
            zp = rq.output_zero_point
    if f32 and rng.random() < 0.5:
        g.ops.append(Softmax("softmax", (n,), (n,)))
    if not f32:
        g.output_scale, g.output_zero_point = 0.1, zp
    return g.link_chain()


def graph_inputs(g: Graph, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    if g.dtype == "float32":
        return rng.normal(0, 1.0, (n, g.input_len)).astype(np.float32)
    x = rng.integers(-128, 128, (n, g.input_len)).astype(np.int8)
    x[0, :3] = [-128, 127, g.input_zero_point]
    return x


def as_result(name: str, em, g: Graph, x: np.ndarray, expected: np.ndarray) -> ConvertResult:
    f32 = g.dtype == "float32"
    return ConvertResult(converter=name, sources=em.sources, include_dirs=em.include_dirs,
                         input_dtype=g.dtype, output_dtype=g.dtype, inputs=x, expected=expected,
                         atol=cgen.FLOAT_ATOL if f32 else 0.0, rtol=cgen.FLOAT_RTOL if f32 else 0.0,
                         arena_bytes=em.arena_bytes, output_meaning="test", layers=em.layers)


def reference(g: Graph, x: np.ndarray, d: Path) -> np.ndarray:
    """The reference generator's outputs for x, on the host."""
    em = cgen.emit_c(g, d / "ref")
    conv = as_result("mcusearch-ref", em, g, x, np.zeros((len(x), g.output_len), x.dtype))
    return host_run(conv, d / "ref_host")


def check_fast_host(g: Graph, x: np.ndarray, d: Path, sparse: str = "auto") -> ConvertResult:
    want = reference(g, x, d)
    em = fast.emit_fast(g, d / "fast", sparse=sparse)
    conv = as_result("mcusearch", em, g, x, want)
    got = host_run(conv, d / "fast_host", extra_cflags=STRICT)
    if g.dtype == "int8":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, atol=cgen.FLOAT_ATOL, rtol=cgen.FLOAT_RTOL)
    return conv


# ---------------------------------------------------------------------------------------------
# layouts and sparse encodings
# ---------------------------------------------------------------------------------------------

@settings(max_examples=60, **SETTINGS)
@given(oc=st.integers(1, 9), k=st.integers(1, 40), seed=st.integers(0, 10**6))
def test_weight_layouts_are_permutations(oc, k, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (oc, k)).astype(np.int8)
    s8 = layout.s8_weights(w)
    assert s8.size == w.size and sorted(s8.tolist()) == sorted(w.reshape(-1).tolist())
    nch, T = k // 4, k % 4
    for c in range(oc):                       # where mcus_fast_conv2d_s8 reads channel c
        pair, lone = divmod(c, 2)
        for j in range(nch):
            if c < oc - oc % 2:
                base = (pair * nch + j) * 8 + 4 * lone
            else:
                base = (oc // 2) * nch * 8 + j * 4
            assert s8[base:base + 4].tolist() == w[c, 4 * j:4 * j + 4].tolist()
        assert s8[nch * 4 * oc + c * T: nch * 4 * oc + (c + 1) * T].tolist() == w[c, 4 * nch:].tolist()
    f = rng.normal(size=(oc, k)).astype(np.float32)
    f32 = layout.f32_weights(f)
    g = oc // 4
    for c in range(oc):
        for kk in range(k):
            idx = (c // 4) * k * 4 + kk * 4 + c % 4 if c < 4 * g else 4 * g * k + (c - 4 * g) * k + kk
            assert f32[idx] == f[c, kk]


@settings(max_examples=60, **SETTINGS)
@given(oc=st.integers(1, 6), k=st.integers(1, 700), density=st.floats(0.0, 1.0),
       seed=st.integers(0, 10**6))
def test_sparse_encoding_roundtrip(oc, k, density, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (oc, k)).astype(np.int8)
    w[rng.random(w.shape) >= density] = 0
    sp = layout.sparse_encode(w)
    np.testing.assert_array_equal(layout.sparse_decode(sp, w.shape), w)
    assert sp.nonzeros == np.count_nonzero(w) and sp.entries >= sp.nonzeros
    assert sp.entries - sp.nonzeros <= oc * (k // 255)            # bridges only over long gaps
    e = layout.s8_sparse_entries(sp)
    assert e.size == 2 * sp.entries and (e[0::2] == sp.deltas).all()


def test_int8_zeros_survive_quantisation(tmp_path):
    """Magnitude-pruned float weights stay exactly zero after TFLite's symmetric int8 PTQ."""
    tf = pytest.importorskip("tensorflow")
    L = tf.keras.layers
    tf.keras.utils.set_random_seed(0)
    m = tf.keras.Sequential([L.InputLayer((8, 6, 2)), L.Conv2D(8, 3, padding="same", activation="relu"),
                             L.Flatten(), L.Dense(5)])
    for layer in m.layers:
        ws = layer.get_weights()
        if ws:
            k = ws[0].copy()
            k[np.abs(k) < np.quantile(np.abs(k), 0.9)] = 0
            layer.set_weights([k] + ws[1:])
    rep = np.random.default_rng(0).normal(size=(16, 8, 6, 2)).astype(np.float32)
    c = tf.lite.TFLiteConverter.from_keras_model(m)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = lambda: ([rep[i:i + 1]] for i in range(16))
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    c.inference_input_type = c.inference_output_type = tf.int8
    p = tmp_path / "m.tflite"
    p.write_bytes(c.convert())
    from mcusearch.convert.frontend import graph_from_tflite
    g = graph_from_tflite(p)
    for op, layer in zip([o for o in g.ops if isinstance(o, (Conv2D, Dense))],
                         [la for la in m.layers if la.get_weights()]):
        k = layer.get_weights()[0]
        q = np.asarray(op.weights)
        kz = np.transpose(k, (3, 0, 1, 2)) if k.ndim == 4 else k.T
        assert np.array_equal(q == 0, kz == 0)                    # exactly the pruned positions


# ---------------------------------------------------------------------------------------------
# the row planner
# ---------------------------------------------------------------------------------------------

@st.composite
def chains(draw):
    h = draw(st.integers(1, 30))
    layers, tensors = [], [PlanTensor(h, draw(st.integers(1, 64)))]
    for _ in range(draw(st.integers(1, 7))):
        kind = draw(st.sampled_from(["conv", "pool", "clamp", "dense"]))
        hin = tensors[-1].rows
        if kind == "dense":
            layers.append(PlanLayer("d", 1, [lambda r, h=hin: (0, h - 1)], [len(layers)]))
            tensors.append(PlanTensor(1, draw(st.integers(1, 64))))
            continue
        if kind == "clamp":
            layers.append(PlanLayer("c", hin, [lambda r: (r, r)], [len(layers)], elementwise=True))
            tensors.append(PlanTensor(hin, tensors[-1].row_bytes))
            continue
        k = draw(st.integers(1, min(hin, 5)))
        s = draw(st.integers(1, 3))
        if draw(st.booleans()):
            oh, pt = same_padding(hin, k, s)
        else:
            oh, pt = valid_size(hin, k, s), 0

        def need(r, k=k, s=s, pt=pt, h=hin):
            lo = r * s - pt
            return max(lo, 0), min(lo + k - 1, h - 1)
        layers.append(PlanLayer(kind, oh, [need], [len(layers)]))
        tensors.append(PlanTensor(oh, draw(st.integers(1, 64))))
    return layers, tensors


@settings(max_examples=200, **SETTINGS)
@given(chains(), st.integers(0, 300))
def test_planner_schedule_rings_and_arena(chain, scratch):
    layers, tensors = chain
    p = plan(layers, tensors, scratch)
    check_plan(layers, tensors, p)            # every read finds its row; live buffers disjoint
    assert p.schedule.count(len(layers) - 1) == layers[-1].out_rows
    for t in range(1, len(tensors) - 1):      # rings never exceed the tensor
        assert 1 <= p.ring_rows[t] <= tensors[t].rows
    total = sum(tensors[t].rows * tensors[t].row_bytes for t in range(1, len(tensors) - 1))
    assert p.arena_bytes <= total + 8 * len(tensors) + scratch + 8
    # a ring one row smaller is wrong somewhere (the sizes are minimal for this schedule)
    for t in range(1, len(tensors) - 1):
        aliased = p.buffer_of.count(p.buffer_of[t]) > 1
        if p.ring_rows[t] > 1 and p.offsets[t] is not None and not aliased:
            smaller = list(p.ring_rows)
            smaller[t] -= 1
            bad = type(p)(**{**p.__dict__, "ring_rows": smaller})
            with pytest.raises(AssertionError):
                check_plan(layers, tensors, bad)


def test_planner_study_model_line_buffers():
    """Conv 3x3 same, conv, pool 2: the conv outputs need 3 and 2 rows, not the full height."""
    def conv(h, t):
        return PlanLayer("conv", h, [lambda r, h=h: (max(r - 1, 0), min(r + 1, h - 1))], [t])
    layers = [conv(30, 0), conv(30, 1), PlanLayer("pool", 15, [lambda r: (2 * r, 2 * r + 1)], [2]),
              PlanLayer("dense", 1, [lambda r: (0, 14)], [3])]
    tensors = [PlanTensor(30, 20), PlanTensor(30, 640), PlanTensor(30, 640), PlanTensor(15, 320),
               PlanTensor(1, 100)]
    p = plan(layers, tensors, 0)
    check_plan(layers, tensors, p)
    assert p.ring_rows[1:4] == [3, 2, 15]
    assert p.arena_bytes == 3 * 640 + 2 * 640 + 15 * 320


# ---------------------------------------------------------------------------------------------
# fast requantisation == the reference (mode 0), bit for bit
# ---------------------------------------------------------------------------------------------

_RQ_MAIN = r"""
#include <stdio.h>
#include "mcus_fast.h"
int main(void)
{
    long a, m, s, z;
    while (scanf("%ld %ld %ld %ld", &a, &m, &s, &z) == 4) {
        mcus_rq_t q = mcus_rq_make((int32_t)m, (int32_t)s, (int32_t)z);
        printf("%ld %ld %d\n", (long)mcus_rq_apply(&q, (int32_t)a),
               (long)(mcus_requantize((int32_t)a, (int32_t)m, (int32_t)s) + (int32_t)z), q.s >= 0);
    }
    return 0;
}
"""


@pytest.fixture(scope="module")
def rq_exe(tmp_path_factory):
    return host_exe(tmp_path_factory.mktemp("rq"), "rq", _RQ_MAIN, [FAST, cgen.KERNELS_DIR])


@settings(max_examples=30, **SETTINGS)
@given(st.lists(st.tuples(st.integers(-2**31, 2**31 - 1), st.floats(1e-9, 1.99),
                          st.integers(-128, 127)), min_size=50, max_size=200))
def test_fast_requantisation_is_bit_exact(rq_exe, cases):
    lines = []
    for acc, real, zp in cases:
        m, s = quantize_multiplier(real)
        lines.append(f"{acc} {m} {s} {zp}")
        lines.append(f"{(2 * (acc % 1000) + 1) << 5} {1 << 30} -5 {zp}")   # exact ties
    out = subprocess.run([str(rq_exe)], input="\n".join(lines) + "\n", capture_output=True,
                         text=True, check=True).stdout.split("\n")
    fast_used = 0
    for line in filter(None, out):
        got, want, used = map(int, line.split())
        assert got == want
        fast_used += used
    assert fast_used > 0


# ---------------------------------------------------------------------------------------------
# random graphs on the host: fast (portable C) == reference
# ---------------------------------------------------------------------------------------------

@settings(max_examples=25, **SETTINGS)
@given(seed=st.integers(0, 10**6), sparsity=st.sampled_from([0.0, 0.0, 0.6, 0.95]),
       mode=st.sampled_from(["auto", "never", "always"]))
def test_random_int8_graphs_host_bit_exact(tmp_path_factory, seed, sparsity, mode):
    g = random_graph(seed, "int8", sparsity)
    check_fast_host(g, graph_inputs(g, 4, seed), tmp_path_factory.mktemp("i8"), sparse=mode)


@settings(max_examples=15, **SETTINGS)
@given(seed=st.integers(0, 10**6), sparsity=st.sampled_from([0.0, 0.8]),
       mode=st.sampled_from(["never", "always"]))
def test_random_float_graphs_host(tmp_path_factory, seed, sparsity, mode):
    g = random_graph(seed, "float32", sparsity)
    check_fast_host(g, graph_inputs(g, 3, seed), tmp_path_factory.mktemp("f32"), sparse=mode)


def test_emitted_code_and_plan(tmp_path):
    g = random_graph(7, "int8", 0.0)
    conv = check_fast_host(g, graph_inputs(g, 2, 7), tmp_path)
    c = (tmp_path / "fast" / "model.c").read_text()
    assert "MCUS_LAYER_BEGIN(j);" in c and "mcus_schedule" in c and "mcus_arena" in c
    assert all(p.exists() for p in conv.sources) and conv.include_dirs[0] == tmp_path / "fast"
    assert "#define MCUS_N_LAYERS" in (tmp_path / "fast" / "model.h").read_text()
    # the M0+ (no DSP, no FPU) build of the same code compiles warning-free
    if shutil.which("arm-none-eabi-gcc"):
        for src in conv.sources:
            subprocess.run(["arm-none-eabi-gcc", "-std=c99", "-O2", *STRICT, "-mcpu=cortex-m0plus",
                            "-mthumb", *[f"-I{d}" for d in conv.include_dirs], "-c", str(src),
                            "-o", str(tmp_path / f"{src.stem}.o")], check=True)


def test_converters_registered():
    _load_plugins()
    assert CONVERTERS["mcusearch"] is fast.FastConverter
    assert CONVERTERS["mcusearch-ref"] is cgen.McusearchConverter
    assert CONVERTERS["mcusearch"].quantizations == {"float32", "int8"}


# ---------------------------------------------------------------------------------------------
# in QEMU: the DSP / FMA kernels (M7, M4) and plain C on target (M3)
# ---------------------------------------------------------------------------------------------

arm = pytest.mark.skipif(not HAVE_ARM, reason="needs arm-none-eabi-gcc and qemu-system-arm")


def _board(name):
    from mcusearch.boards import available_boards, get_board
    if name not in available_boards():
        pytest.skip(f"board {name} not registered")
    return get_board(name)


def run_on(board_name: str, conv: ConvertResult, d: Path, opt="-O3", extra=()):
    from mcusearch.build import build
    from mcusearch.measure import measure
    board = _board(board_name)
    b = build(conv, board, opt, d / f"b_{board_name}{opt}", list(extra), cache_dir=d.parent / "cache")
    return b, measure(b, conv, board, timeout_s=60)      # raises unless outputs match conv.expected


@arm
@pytest.mark.parametrize("board", ["qemu-m7", "qemu-m4", "qemu-m3"])
def test_random_graphs_in_qemu(tmp_path, board):
    """Several random graphs per core: int8 dense and sparse bit-exact, float32 within tolerance."""
    seeds = {"qemu-m7": [11, 12, 13, 14], "qemu-m4": [21, 22], "qemu-m3": [31]}[board]
    for seed in seeds:
        for dtype, sparsity, mode in (("int8", 0.0, "never"), ("int8", 0.9, "always"),
                                      ("float32", 0.0, "never"), ("float32", 0.9, "always")):
            if board == "qemu-m3" and dtype == "float32" and mode == "always":
                continue
            g = random_graph(seed, dtype, sparsity, max_hw=14)
            d = tmp_path / f"{seed}_{dtype}_{mode}"
            x = graph_inputs(g, 3, seed)
            want = reference(g, x, d)
            em = fast.emit_fast(g, d / "fast", sparse=mode)
            run_on(board, as_result("mcusearch", em, g, x, want), d)


def maxpool_graph(seed: int) -> Graph:
    """int8 max pools with the windows maxpool2d_s8 has own loops for (2 x 2, 3 x 3, 1 x 2,
    2 x 1), clipped at SAME edges, with and without clamps, on 12 channels (3 groups of 4), then
    7 (a group of 4 and 3 single channels)."""
    rng = np.random.default_rng(seed)
    shape = (9, 10, 12)
    g = Graph(dtype="int8", input_shape=shape, source=f"max pools seed {seed}")
    g.input_scale, g.input_zero_point = 0.05, -3
    zp = -3
    pools = (((2, 2), (2, 2), "valid", None), ((3, 3), (1, 1), "same", (0, 50)),
             ((1, 2), (1, 2), "same", (0, 127)), ((2, 1), (2, 1), "same", (-128, 40)))
    for i, (pool, st_, pmode, act) in enumerate(pools):
        if pmode == "same":
            (oh, pt), (ow, pl) = (same_padding(shape[0], pool[0], st_[0]),
                                  same_padding(shape[1], pool[1], st_[1]))
        else:
            oh, ow, pt, pl = valid_size(shape[0], pool[0], st_[0]), valid_size(shape[1], pool[1], st_[1]), 0, 0
        lo, hi = act or (-128, 127)
        g.ops.append(MaxPool2D(f"pool{i}", shape, (oh, ow, shape[2]), pool=pool, stride=st_,
                               padding=pmode, pad=(pt, pl), act=(max(-128, zp + lo), min(127, zp + hi))))
        shape = g.ops[-1].out_shape
        if i == 0:       # 12 -> 7 channels: one group of 4, then 3 channels one by one
            rq = _requant(rng, zp, 7, real_lo=2e-3, real_hi=4e-3)
            g.ops.append(Conv2D("mix", shape, shape[:2] + (7,),
                                weights=rng.integers(-127, 128, (7, 1, 1, 12)).astype(np.int8),
                                bias=None, stride=(1, 1), padding="valid", pad=(0, 0),
                                requant=rq, act=(-128, 127)))
            shape = g.ops[-1].out_shape
            zp = rq.output_zero_point
    g.ops.append(Reshape("flatten", shape, (int(np.prod(shape)),)))
    g.output_scale, g.output_zero_point = 0.05, zp
    return g.link_chain()


@arm
def test_maxpool_windows_in_qemu_m7(tmp_path):
    """maxpool2d_s8's loops per window shape, bit-exact with the reference kernels."""
    g = maxpool_graph(3)
    x = graph_inputs(g, 3, 3)
    want = reference(g, x, tmp_path)
    assert len(np.unique(want)) > 20          # the pools pass varied values, not just the clamps
    em = fast.emit_fast(g, tmp_path / "fast")
    run_on("qemu-m7", as_result("mcusearch", em, g, x, want), tmp_path)


@arm
@pytest.mark.parametrize("opt", ["-O0", "-Og", "-Os", "-O2"])
def test_other_opt_levels_in_qemu(tmp_path, opt):
    g = random_graph(5, "int8", 0.9)
    x = graph_inputs(g, 2, 5)
    want = reference(g, x, tmp_path)
    for mode in ("never", "always"):
        em = fast.emit_fast(g, tmp_path / mode, sparse=mode)
        run_on("qemu-m7", as_result("mcusearch", em, g, x, want), tmp_path / mode, opt=opt)


@arm
def test_markers_profile_and_exact_total(tmp_path):
    """Per-layer counts cover the inference; the marker-corrected total is the marker-free count
    to within a few instructions per layer call; the arena is the model's whole RAM."""
    g = random_graph(3, "int8", 0.0, max_hw=14)
    x = graph_inputs(g, 3, 3)
    want = reference(g, x, tmp_path)
    em = fast.emit_fast(g, tmp_path / "fast")
    conv = as_result("mcusearch", em, g, x, want)
    b, m = run_on("qemu-m7", conv, tmp_path)
    _, plain = run_on("qemu-m7", conv, tmp_path / "plain", extra=["-DMCUS_NO_LAYER_MARKERS"])
    assert [n for n, _ in m.layer_counts] == conv.layers and not plain.layer_counts
    assert all(c > 0 for _, c in m.layer_counts)
    steps = len(em.plan.schedule)
    assert m.marker_overhead > 0 and plain.marker_overhead == 0
    diff = m.per_inference.value - plain.per_inference.value
    assert abs(diff) <= 6 * steps, diff                    # e.g. register moves around the calls
    assert abs(diff) / plain.per_inference.value < 0.01
    covered = sum(c for _, c in m.layer_counts)
    assert 0.9 * plain.per_inference.value < covered <= plain.per_inference.value + 6 * steps
    assert b.model_ram_bytes == conv.arena_bytes           # the planned peak is what the ELF holds


# ---------------------------------------------------------------------------------------------
# TFLite / Keras end to end (the study's topology, small)
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def study_small(tmp_path_factory):
    tc = pytest.importorskip("test_convert")
    d = tmp_path_factory.mktemp("study")
    m = tc.study_cnn()
    return tc, m, tc.to_int8(m, d / "m.tflite"), d


def _pruned(tc, seed=0):
    m = tc.study_cnn(seed=seed)
    for layer in m.layers:
        ws = layer.get_weights()
        if ws and ws[0].ndim >= 2:
            k = ws[0].copy()
            k[np.abs(k) < np.quantile(np.abs(k), 0.9)] = 0
            layer.set_weights([k] + ws[1:])
    return m


def test_study_topology_vs_tflite_and_keras(study_small):
    tc, m, tfl, d = study_small
    from mcusearch.convert import convert
    for q in ("int8", "float32"):
        mr = tc.model_result(m, d / q, q, tfl if q == "int8" else None)
        conv = convert(mr, "mcusearch", d / q / "c")
        tc.check(conv, d / q)                  # host: bit-exact with TFLite / close to Keras
        assert conv.converter == "mcusearch" and conv.layers[0] == "conv1 (Conv2D)"
        if HAVE_ARM:
            run_on("qemu-m7", conv, d / q)


def test_pruned_study_topology_sparse_vs_tflite(study_small, tmp_path):
    tc, _, _, _ = study_small
    from mcusearch.convert import convert
    import json
    m = _pruned(tc)
    tfl = tc.to_int8(m, tmp_path / "p.tflite")
    mr = tc.model_result(m, tmp_path / "q", "int8", tfl)
    conv = convert(mr, "mcusearch", tmp_path / "c")
    tc.check(conv, tmp_path)
    info = json.loads((tmp_path / "c" / "plan.json").read_text())
    variants = [la["variant"] for la in info["layers"] if la["kind"] in ("Conv2D", "Dense")]
    assert "sparse" in variants
    if HAVE_ARM:
        run_on("qemu-m7", conv, tmp_path)
