"""Element-wise op plug-ins: unary activations and binary arithmetic with broadcasting.

Unary (:class:`Unary`): LOGISTIC, TANH, HARD_SWISH, LEAKY_RELU, GELU, ELU, EXP, LOG, ABS, RSQRT
(Keras LayerNormalization's 1 / sqrt(variance + epsilon)), and in int8 also stand-alone RELU /
RELU6 / RELU_N1_TO_1 / RELU_0_TO_1 (which may requantise) and QUANTIZE int8 -> int8 (a
requantisation the converter inserts). float32: one plain C kernel per function (libm), within
the converter's tolerance of Keras. int8: one look-up-table kernel
(``lut_s8``) whose 256-entry table is TFLite's own kernel's answer: the generator writes a
one-operator ``.tflite`` (the same operator, options and input/output quantisation) and runs every
int8 value through the interpreter's built-in kernels (``cgen.TFLITE_RESOLVER``) at every position
of a tensor of the op's length. An int8 -> int8 element-wise function is a function of 256 values,
so the firmware is bit-exact by construction. Some built-in kernels round ties differently in
their vector loop and their scalar tail (QUANTIZE: the elements past the last multiple of 16);
those get a second table for the tail.

Binary (:class:`Binary`): ADD (the built-in Add takes same-shape computed inputs; this rule takes
broadcasting and constant operands, such as an un-folded BatchNormalization's MUL + ADD), SUB,
MUL, MAXIMUM, MINIMUM, PRELU (alpha is the second operand), SQUARED_DIFFERENCE ((a - b)^2: Keras
LayerNormalization's variance), and DIV in float32. Shapes broadcast as numpy does
(right-aligned); a constant operand becomes a flash array. int8 follows TFLite's
arithmetic: ADD and SUB rescale both inputs to twice the larger input scale
(:func:`~mcusearch.convert.quant.add_quant`; SUB negates the second input's multiplier, as TFLite
does), MUL requantises ``(a - za) * (b - zb)`` by ``s_a * s_b / s_out`` with
MultiplyByQuantizedMultiplier (ties away from zero, on every path of the interpreter's kernel),
PRELU requantises x >= 0 by ``s_in / s_out`` and ``x * alpha`` by ``s_in * s_alpha / s_out`` the
same way, MAXIMUM / MINIMUM need one shared quantisation, SQUARED_DIFFERENCE shifts both offset
inputs left by 7, rescales each to twice the larger input scale, squares their difference and
requantises it by (2 s_max)^2 / (2^14 s_out) (squared_difference.cc; :class:`SqDiffQuant`).
ADD / SUB of a map and a per-channel operand (a squeeze-and-excite style (1, 1, C) vector) take
the map's rescaled values from a 256-entry table made here (:meth:`Binary.periodic_tx`).
tests/test_ops_elementwise.py checks MUL, SUB and ADD on all 65,536 input pairs and PRELU on every
input against 255 slopes, tests/test_ops_layernorm.py SQUARED_DIFFERENCE on all pairs, against the
interpreter.
"""
from __future__ import annotations

import copy
import hashlib
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mcusearch.convert.ctext import c_array
from mcusearch.convert.graph import Op
from mcusearch.convert.ops import RefContext, tflite_rule
from mcusearch.convert.quant import (AddQuant, add_quant, add_rescaled, add_s8,
                                     multiply_by_quantized_multiplier, quantize_multiplier,
                                     quantize_multiplier_smaller_than_one)
from mcusearch.errors import StageError

if TYPE_CHECKING:
    from mcusearch.convert.frontend import Reader, TfliteOp

# TFLite unary builtins with a float32 kernel here (kernel file <name>_f32.c).
FLOAT_UNARY = ("LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "GELU", "ELU", "EXP", "LOG", "ABS",
               "RSQRT")
# int8 -> int8 element-wise builtins run through the look-up table (lut_s8.c).
INT8_UNARY = FLOAT_UNARY + ("RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "QUANTIZE")
# Binary builtins -> kernel base name per dtype (None: no kernel for that dtype).
BINARY = {
    "ADD": ("add_bcast", "add_bcast"), "SUB": ("sub", "add_bcast"), "MUL": ("mul", "mul"),
    "DIV": ("div", None), "MAXIMUM": ("maximum", "maximum"), "MINIMUM": ("minimum", "minimum"),
    "PRELU": ("prelu", "prelu"),
    "SQUARED_DIFFERENCE": ("squared_difference", "squared_difference"),
}
MAX_DIMS = 6              # MCUS_BCAST_MAX_DIMS in firmware/kernels/mcus_elementwise.h
PERIODIC_MAX = 64         # MCUS_PERIODIC_MAX: a per-channel operand's channels in one table
# int8 with a one-value constant: a look-up table
_TABLE_FUNCTIONS = ("ADD", "SUB", "MUL", "SQUARED_DIFFERENCE")
CONST_ADD_MAX = 1024      # add_const_s8: the constant's rescaled values, 4 B each in flash
CONST_ADD_ROW = 32        # a shorter period is repeated up to this many values
SAME_TB_MIN = 256         # a same-shape ADD of this many elements or more gets its 1 kB table


def _kind(builtin: str) -> str:
    """'HARD_SWISH' -> 'HardSwish'."""
    return "".join(w.capitalize() for w in builtin.split("_"))


def shared_array(ctx: RefContext, ctype: str, values: np.ndarray, per_line: int) -> str:
    """A ``static const`` array defined once per generated file for each distinct content: the
    name is a hash of the type and values, an include guard drops repeats. Look-up tables and
    constants repeat across ops (the unrolled steps of an LSTM share most of them)."""
    flat = np.ascontiguousarray(values).reshape(-1)
    digest = hashlib.sha1(f"{ctype}:{flat.dtype.str}:".encode() + flat.tobytes()).hexdigest()[:16]
    name, guard = f"mcus_shared_{digest}", f"MCUS_SHARED_{digest.upper()}"
    ctx.data.append(f"#ifndef {guard}\n#define {guard}\n{c_array(ctype, name, flat, per_line)}"
                    "#endif\n")
    return name


def emit_lut(ctx: RefContext, length: int, table: np.ndarray, tail_table: np.ndarray | None = None,
             split: int = 0) -> str:
    """The lut_s8 call of an int8 -> int8 element-wise op: ``table`` (256 outputs, by input
    + 128) for the elements before ``split``, ``tail_table`` (default ``table``) from there."""
    ctx.kernel("lut_s8")
    name = shared_array(ctx, "int8_t", table, 16)
    tail = name if tail_table is None else shared_array(ctx, "int8_t", tail_table, 16)
    p = ctx.params("mcus_lut_s8_params_t", {"len": length, "split": split, "table": name,
                                            "tail_table": tail})
    return f"mcus_lut_s8(&{p}, {ctx.inputs[0]}, {ctx.output});"


# ---- ops -----------------------------------------------------------------------------------------

@dataclass
class Unary(Op):
    """An element-wise function of one tensor. float32: ``alpha`` is LEAKY_RELU's slope or GELU's
    approximate flag. int8: ``table`` (and ``tail_table`` from element ``split`` on) are TFLite's
    outputs for the inputs -128..127 (see the module docstring)."""

    function: str = ""
    alpha: float = 0.0
    table: np.ndarray | None = None
    tail_table: np.ndarray | None = None
    split: int = 0

    @property
    def kind(self) -> str:  # type: ignore[override]
        return _kind(self.function)

    def emit_ref(self, ctx: RefContext) -> str:
        src, dst = ctx.inputs[0], ctx.output
        if ctx.f32:
            name = f"{self.function.lower()}_f32"
            ctx.kernel(name)
            p = ctx.params("mcus_unary_f32_params_t",
                           {"len": self.out_len, "alpha": ctx.c_float(self.alpha)})
            return f"mcus_{name}(&{p}, {src}, {dst});"
        return emit_lut(ctx, self.out_len, self.table, self.tail_table, self.split)


@dataclass
class Geometry:
    """A broadcast: the output's dimensions (size-1 dimensions dropped, neighbours merged where
    both operands allow) and each operand's element strides along them (0: broadcast)."""

    dims: tuple[int, ...]
    a_stride: tuple[int, ...]
    b_stride: tuple[int, ...]

    @property
    def length(self) -> int:
        return int(np.prod(self.dims))

    def fields(self) -> dict:
        """mcus_bcast_t's initializer."""
        def arr(v) -> str:
            return "{ " + ", ".join(str(int(x)) for x in v) + " }"
        return {"len": self.length, "rank": len(self.dims), "dims": arr(self.dims),
                "a_stride": arr(self.a_stride), "b_stride": arr(self.b_stride)}


def broadcast_geometry(shape_a, shape_b, shape_out) -> Geometry | None:
    """The :class:`Geometry` of ``a OP b -> out`` under numpy's broadcasting rules, or None when
    the shapes do not broadcast to ``shape_out``."""
    rank = max(len(shape_a), len(shape_b), len(shape_out), 1)

    def pad(s) -> tuple[int, ...]:
        return (1,) * (rank - len(s)) + tuple(int(d) for d in s)

    sa, sb, so = pad(shape_a), pad(shape_b), pad(shape_out)
    try:
        if tuple(np.broadcast_shapes(sa, sb)) != so:
            return None
    except ValueError:
        return None

    def strides(s) -> list[int]:
        out, step = [0] * rank, 1
        for d in reversed(range(rank)):
            out[d] = step if s[d] > 1 else 0
            step *= s[d]
        return out

    st_a, st_b = strides(sa), strides(sb)
    dims: list[int] = []
    a_st: list[int] = []
    b_st: list[int] = []
    for d in range(rank):
        if so[d] == 1:
            continue
        if dims and a_st[-1] == st_a[d] * so[d] and b_st[-1] == st_b[d] * so[d]:
            dims[-1] *= so[d]                       # merge with the outer neighbour
            a_st[-1], b_st[-1] = st_a[d], st_b[d]
            continue
        dims.append(so[d])
        a_st.append(st_a[d])
        b_st.append(st_b[d])
    if not dims:
        dims, a_st, b_st = [1], [0], [0]
    return Geometry(tuple(dims), tuple(a_st), tuple(b_st))


@dataclass
class MulQuant:
    """int8 MUL (TFLite): offsets and the multiplier of s_a * s_b / s_out."""

    a_offset: int
    b_offset: int
    output_offset: int
    multiplier: int
    shift: int


@dataclass
class PreluQuant:
    """int8 PRELU (TFLite): offsets; x >= 0 is requantised by s_in / s_out, x < 0 (times alpha)
    by s_in * s_alpha / s_out."""

    input_offset: int
    alpha_offset: int
    output_offset: int
    multiplier_pos: int
    shift_pos: int
    multiplier_neg: int
    shift_neg: int


@dataclass
class SqDiffQuant:
    """int8 SQUARED_DIFFERENCE (TFLite): each input offset, shifted left by ``left_shift`` (7) and
    rescaled to twice the larger input scale; the squared difference requantised by
    (2 s_max)^2 / (2^(2 left_shift) s_out). Multipliers < 1, shifts <= 0."""

    a_offset: int
    b_offset: int
    output_offset: int
    left_shift: int
    a_multiplier: int
    a_shift: int
    b_multiplier: int
    b_shift: int
    output_multiplier: int
    output_shift: int


@dataclass
class Binary(Op):
    """``a OP b`` with broadcasting. ``inputs`` are the computed operands in order; a constant
    operand sits at position ``const_index`` (0: a, 1: b) with its values in ``const``."""

    function: str = ""       # TFLite builtin: ADD, SUB, MUL, DIV, MAXIMUM, MINIMUM, PRELU, ...
    geometry: Geometry = None
    const: np.ndarray | None = None
    const_index: int = -1
    act: tuple = (-np.inf, np.inf)
    quant: AddQuant | MulQuant | PreluQuant | SqDiffQuant | None = None

    @property
    def kind(self) -> str:  # type: ignore[override]
        return _kind(self.function)

    @property
    def macs(self) -> int:
        return self.out_len if self.function in ("MUL", "SQUARED_DIFFERENCE") else 0

    @property
    def params(self) -> int:
        return 0 if self.const is None else int(self.const.size)

    def _x_whole(self) -> bool:
        """int8, one constant operand, and the computed one the output's own shape."""
        return (self.const is not None and self.quant is not None
                and int(np.prod(self.in_shape)) == self.out_len)

    def scalar_table(self) -> np.ndarray | None:
        """int8 ADD, SUB, MUL or SQUARED_DIFFERENCE of a tensor and a one-value constant: a
        function of one int8 value, so its 256 outputs (TFLite's arithmetic, :func:`binary_s8`)
        make a look-up table (lut_s8: a GRU's ``1 - z``, ``x * 0.5``, ``x + 3``). None
        otherwise."""
        if not self._x_whole() or self.const.size != 1 or self.function not in _TABLE_FUNCTIONS:
            return None
        x = np.arange(-128, 128, dtype=np.int64)
        c = np.full(256, int(self.const.reshape(-1)[0]), np.int64)
        a, b = (c, x) if self.const_index == 0 else (x, c)
        lo, hi = self.act
        return binary_s8(self.function, self.quant, a, b, int(lo), int(hi)).astype(np.int8)

    def const_add(self) -> dict | None:
        """int8 ADD or SUB of a tensor x and a constant c that repeats every n elements of the
        output (a bias, a per-channel shift, an LSTM's gate bias; 2 <= n <= CONST_ADD_MAX): the
        fields of add_const_s8's parameters. Both inputs' rescaled values are computed here, once,
        exactly (mcus_add_s8_input / _skip): ``py`` holds 2 h_c per constant element, ``tx`` 2 h_x
        per value of x (x + 128), or is None when x is the input of the larger scale, whose
        rescaling by 1/2 is a shift ((x + offset) << 20, the offset then in ``py``). Per element
        only the sum is requantised. None outside the kernel's bounds (the broadcasting kernel
        then runs)."""
        if not self._x_whole() or self.function not in ("ADD", "SUB") or self.const.size < 2:
            return None
        n, q = int(self.const.size), self.quant
        core = tuple(int(d) for d in self.const.shape)
        while core and core[0] == 1:
            core = core[1:]
        out = tuple(int(d) for d in self.out_shape)
        if (n > CONST_ADD_MAX or len(core) > len(out) or out[len(out) - len(core):] != core
                or q.left_shift != 20 or q.output_multiplier <= 0
                or not 1 <= -q.output_shift <= 22):
            return None
        c_role, x_role = ("prev", "skip") if self.const_index == 0 else ("skip", "prev")
        x_mult, x_shift, x_off = ((q.prev_multiplier, q.prev_shift, q.prev_offset)
                                  if x_role == "prev" else
                                  (q.skip_multiplier, q.skip_shift, q.skip_offset))
        half = x_mult == 1 << 30 and x_shift == 0
        py = 2 * add_rescaled(q, c_role, self.const.reshape(-1))
        if half:
            py = py + (x_off << 20)
        reps = max((r for r in range(1, max(CONST_ADD_ROW // n, 1) + 1)
                    if (self.out_len // n) % r == 0), default=1)
        lo, hi = self.act
        return dict(py=np.tile(py, reps).astype(np.int32),    # a short period repeated: fewer
                    n=n * reps, len=self.out_len,            # loop set-ups
                    tx=None if half else (2 * add_rescaled(q, x_role, np.arange(-128, 128))
                                          ).astype(np.int32),
                    out=small_mbqm_fields(q.output_multiplier, q.output_shift, q.output_offset),
                    act_min=int(lo), act_max=int(hi))

    def periodic_tx(self) -> np.ndarray | None:
        """int8 ADD or SUB of an (H, W, C) map x and a per-channel operand (a (1, 1, C) vector,
        C <= PERIODIC_MAX: mcus_bcast_periodic): x's doubled rescaled values by x + 128 (256
        int32, computed here exactly: mcus_add_s8_input / _skip), which add_bcast_s8 reads
        instead of rescaling each element. None where the kernel would not read them: another
        broadcast, TFLite's left shift not 20, an output rescaling outside mcus_small_mbqm_pos's
        bounds, or x rescaled by exactly 1/2 (a shift, cheaper than the table)."""
        g, q = self.geometry, self.quant
        if not isinstance(q, AddQuant) or g is None or len(g.dims) != 2:
            return None
        n = g.dims[1]
        if n > PERIODIC_MAX or {g.a_stride, g.b_stride} != {(n, 1), (0, 1)}:
            return None
        role = "prev" if g.a_stride == (n, 1) else "skip"
        mult, shift = ((q.prev_multiplier, q.prev_shift) if role == "prev" else
                       (q.skip_multiplier, q.skip_shift))
        if (q.left_shift != 20 or q.output_multiplier <= 0 or not 1 <= -q.output_shift <= 22
                or (mult == 1 << 30 and shift == 0)):
            return None
        return (2 * add_rescaled(q, role, np.arange(-128, 128))).astype(np.int32)

    def emit_ref(self, ctx: RefContext) -> str:
        if not ctx.f32 and (table := self.scalar_table()) is not None:
            return emit_lut(ctx, self.out_len, table)
        if not ctx.f32 and (k := self.const_add()) is not None:
            ctx.kernel("add_const_s8")
            k["py"] = shared_array(ctx, "int32_t", k["py"], 8)
            k["tx"] = "0" if k["tx"] is None else shared_array(ctx, "int32_t", k["tx"], 8)
            p = ctx.params("mcus_add_const_s8_params_t", k)
            return f"mcus_add_const_s8(&{p}, {ctx.inputs[0]}, {ctx.output});"
        base = BINARY[self.function][0 if ctx.f32 else 1]
        name = f"{base}_{ctx.sfx}"
        ctx.kernel(name)
        srcs = list(ctx.inputs)
        if self.const is not None:
            srcs.insert(self.const_index, shared_array(ctx, ctx.ctype, self.const,
                                                       12 if ctx.f32 else 24))
        fields: dict[str, object] = {"g": self.geometry.fields()}
        lo, hi = self.act
        if ctx.f32:
            ptype = "mcus_binary_f32_params_t"
            fields.update(act_min=ctx.c_float(float(lo)), act_max=ctx.c_float(float(hi)))
        elif isinstance(self.quant, AddQuant):
            ptype = "mcus_add_bcast_s8_params_t"
            fields["q"] = dict(len=self.out_len, **self.quant.c_fields(), act_min=int(lo),
                               act_max=int(hi))
            tx = self.periodic_tx()
            fields["tx"] = "0" if tx is None else shared_array(ctx, "int32_t", tx, 8)
            g = self.geometry
            tb = (same_shape_tb(self.quant, self.out_len)
                  if (g.dims, g.a_stride, g.b_stride) == ((self.out_len,), (1,), (1,)) else None)
            fields["tb"] = "0" if tb is None else shared_array(ctx, "int32_t", tb, 8)
        elif isinstance(self.quant, (PreluQuant, SqDiffQuant)):
            ptype = ("mcus_prelu_s8_params_t" if isinstance(self.quant, PreluQuant)
                     else "mcus_squared_difference_s8_params_t")
            fields.update(vars(self.quant), act_min=int(lo), act_max=int(hi))
        elif isinstance(self.quant, MulQuant):
            ptype = "mcus_mul_s8_params_t"
            q = self.quant
            fields.update(a_offset=q.a_offset, b_offset=q.b_offset, output_offset=q.output_offset,
                          multiplier=q.multiplier, shift=q.shift, act_min=int(lo), act_max=int(hi))
        else:
            ptype = "mcus_minmax_s8_params_t"
        p = ctx.params(ptype, fields)
        return f"mcus_{name}(&{p}, {srcs[0]}, {srcs[1]}, {ctx.output});"


def same_shape_tb(q, n: int) -> np.ndarray | None:
    """int8 ADD or SUB of two same-shape tensors of ``n`` elements, one of them (a) rescaled by
    exactly 1/2 (the input of the larger scale, as TFLite's converter sets it) and the other (b)
    not: b's doubled rescaled values with a's offset by b + 128, 2 h_b + off_a 2^20 (256 int32,
    exact: mcus_add_s8_input / _skip), which mcus_add_s8_fast (mcus_add_fast.h) reads instead of
    rescaling b, about 5 instructions an element fewer for 1 kB of flash. None below SAME_TB_MIN
    elements, where mcus_add_s8_fast would not read it (TFLite's left shift not 20, an output
    rescaling outside mcus_small_mbqm_pos's bounds), or where neither or both inputs are
    rescaled by 1/2 (then a shift is cheaper than the table)."""
    if (not isinstance(q, AddQuant) or n < SAME_TB_MIN or q.left_shift != 20
            or q.output_multiplier <= 0 or not 1 <= -q.output_shift <= 22):
        return None
    half_prev = q.prev_multiplier == 1 << 30 and q.prev_shift == 0
    half_skip = q.skip_multiplier == 1 << 30 and q.skip_shift == 0
    if half_prev == half_skip:
        return None
    b, off_a = ("skip", q.prev_offset) if half_prev else ("prev", q.skip_offset)
    return (2 * add_rescaled(q, b, np.arange(-128, 128)) + (off_a << 20)).astype(np.int32)


# ---- int8 look-up tables from the interpreter ----------------------------------------------------

def unary_tflite(code, options_type: int, options, q_in, q_out, length: int) -> bytes:
    """A ``.tflite`` of one int8 -> int8 operator (``code``: an OperatorCodeT, ``options``: its
    builtin options object or None, ``q_in``/``q_out``: QuantizationParametersT) on a vector of
    ``length`` elements."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as s

    model = s.ModelT()
    model.version = 3
    model.operatorCodes = [code]
    model.buffers = [s.BufferT() for _ in range(3)]
    tensors = []
    for k, q in enumerate((q_in, q_out)):
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = [1, length], s.TensorType.INT8, k + 1, f"t{k}".encode()
        t.quantization = q
        tensors.append(t)
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0], [1]
    op.builtinOptionsType, op.builtinOptions = options_type, options
    sg = s.SubGraphT()
    sg.tensors, sg.inputs, sg.outputs, sg.operators = tensors, [0], [1], [op]
    model.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def one_op_tflite(r: "Reader", top: "TfliteOp", length: int) -> bytes:
    """:func:`unary_tflite` of ``top``: the same operator code, options and input/output
    quantisation, on ``length`` elements."""
    orig = r.sg.operators[top.index]
    return unary_tflite(copy.deepcopy(r.model.operatorCodes[orig.opcodeIndex]),
                        orig.builtinOptionsType, copy.deepcopy(orig.builtinOptions),
                        copy.deepcopy(r.sg.tensors[top.inputs[0]].quantization),
                        copy.deepcopy(r.sg.tensors[top.outputs[0]].quantization), length)


def interpreter_outputs(r: "Reader", top: "TfliteOp", length: int) -> np.ndarray:
    """(256, length) int8: row v + 128 is TFLite's output for a tensor of ``length`` elements all
    equal to v (element-wise: every position's output for input v)."""
    import tensorflow as tf

    from mcusearch.convert.cgen import TFLITE_RESOLVER

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        it = tf.lite.Interpreter(
            model_content=one_op_tflite(r, top, length),
            experimental_op_resolver_type=getattr(tf.lite.experimental.OpResolverType,
                                                  TFLITE_RESOLVER))
    it.allocate_tensors()
    i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
    rows = []
    for v in range(-128, 128):
        it.set_tensor(i, np.full((1, length), v, np.int8))
        it.invoke()
        rows.append(np.array(it.get_tensor(o)).reshape(-1))
    return np.stack(rows).astype(np.int8)


def lut_tables(r: "Reader", top: "TfliteOp", length: int):
    """(table, tail_table or None, split) for ``top`` on ``length`` elements: one table when every
    position gives the same outputs, else the table of the leading positions and that of the
    positions from ``split`` on (a vector loop and its scalar tail)."""
    out = interpreter_outputs(r, top, length)
    same = np.all(out == out[:, :1], axis=0)
    if same.all():
        return out[:, 0].copy(), None, length
    split = int(np.argmin(same))
    if not (same[:split].all() and np.all(out[:, split:] == out[:, split:split + 1])):
        raise r.unsupported(top, "TFLite's kernel gives position-dependent results that two "
                                 "tables cannot hold")
    return out[:, 0].copy(), out[:, split].copy(), split


# ---- front-end rules -----------------------------------------------------------------------------

@tflite_rule(*INT8_UNARY)
def _unary(r: "Reader", top: "TfliteOp") -> None:
    src, out = top.inputs[0], top.outputs[0]
    dtype = r.graph.dtype
    if len([i for i in top.inputs if i >= 0]) != 1:
        raise r.unsupported(top, "more than one input")
    if r.type_of(src) != dtype:
        raise r.unsupported(top, f"{r.type_of(src)} input in a {dtype} model")
    shape = r.shape(src)
    if r.shape(out) != shape:
        raise r.unsupported(top, f"output shape {r.shape(out)} differs from input shape {shape}")
    op = Unary(top.name, shape, shape, inputs=(src,), function=top.opname)
    if dtype == "float32":
        if top.opname not in FLOAT_UNARY:
            raise r.unsupported(top)
        if top.opname == "LEAKY_RELU":
            op.alpha = float(top.opts.alpha)
        elif top.opname == "GELU":
            op.alpha = 1.0 if top.opts is not None and top.opts.approximate else 0.0
    else:
        r.q(src), r.q(out)                      # per-tensor quantisation, or a clear error
        op.table, op.tail_table, op.split = lut_tables(r, top, int(np.prod(shape)))
    r.add(op, top)



def squared_difference_s8(q: SqDiffQuant, a, b, act_min: int = -128,
                          act_max: int = 127) -> np.ndarray:
    """TFLite's int8 SQUARED_DIFFERENCE of int8 arrays, bit for bit (squared_difference_s8.c;
    tests/test_ops_layernorm.py checks it on all 65,536 pairs against the interpreter). The
    rescaled inputs stay within +-255 * 2^7 / 2, so the square of their difference is < 2^30."""
    ha = multiply_by_quantized_multiplier((np.asarray(a, np.int64) + q.a_offset) << q.left_shift,
                                          q.a_multiplier, q.a_shift)
    hb = multiply_by_quantized_multiplier((np.asarray(b, np.int64) + q.b_offset) << q.left_shift,
                                          q.b_multiplier, q.b_shift)
    d = ha - hb
    v = multiply_by_quantized_multiplier(d * d, q.output_multiplier, q.output_shift)
    return np.clip(v + q.output_offset, act_min, act_max)


def binary_s8(function: str, q: "AddQuant | MulQuant | SqDiffQuant", a, b, act_min: int,
              act_max: int) -> np.ndarray:
    """TFLite's int8 ADD, SUB (``q`` from :func:`binary_quant`), MUL or SQUARED_DIFFERENCE of int8
    arrays, bit for bit (the reference kernels' arithmetic; tests/test_ops_elementwise.py and
    tests/test_ops_layernorm.py check it on all 65,536 pairs against the interpreter)."""
    if function in ("ADD", "SUB"):
        return add_s8(q, a, b, act_min, act_max)
    if function == "SQUARED_DIFFERENCE":
        return squared_difference_s8(q, a, b, act_min, act_max)
    prod = (np.asarray(a, np.int64) + q.a_offset) * (np.asarray(b, np.int64) + q.b_offset)
    v = multiply_by_quantized_multiplier(prod, q.multiplier, q.shift) + q.output_offset
    return np.clip(v, act_min, act_max)


def small_mbqm_fields(multiplier: int, shift: int, offset: int) -> dict:
    """mcus_small_mbqm_t's fields (mcus_small_mbqm_prepare, for shift <= 0)."""
    right = -shift
    return dict(multiplier=multiplier, left1=1, right=right,
                bias=(1 << (right - 1) if right else 0) + offset * (1 << right),
                neg=-1 if right else 0)


def squared_difference_quant(qa: tuple[float, int], qb: tuple[float, int],
                             qo: tuple[float, int]) -> SqDiffQuant:
    """TFLite's int8 SQUARED_DIFFERENCE parameters (squared_difference.cc, Prepare): left shift 7,
    both inputs rescaled to twice the larger input scale, the squared difference by
    (2 s_max)^2 / (2^14 s_out); scales as float32, arithmetic in double."""
    left = 7
    (sa, za), (sb, zb), (so, zo) = qa, qb, qo
    sa, sb, so = (np.float64(np.float32(v)) for v in (sa, sb, so))
    twice_max = 2 * max(sa, sb)
    ma = quantize_multiplier_smaller_than_one(float(sa / twice_max))
    mb = quantize_multiplier_smaller_than_one(float(sb / twice_max))
    mo = quantize_multiplier_smaller_than_one(float(twice_max * twice_max
                                                    / ((1 << (2 * left)) * so)))
    return SqDiffQuant(a_offset=-za, b_offset=-zb, output_offset=zo, left_shift=left,
                       a_multiplier=ma[0], a_shift=ma[1], b_multiplier=mb[0], b_shift=mb[1],
                       output_multiplier=mo[0], output_shift=mo[1])


def binary_quant(builtin: str, qa: tuple[float, int], qb: tuple[float, int],
                 qo: tuple[float, int]) -> AddQuant | MulQuant | PreluQuant | SqDiffQuant | None:
    """TFLite's int8 parameters of the binary ``builtin`` from the (scale, zero point) of a, b
    and the output (see the module docstring); None for MAXIMUM / MINIMUM, which need one shared
    quantisation (a ValueError otherwise)."""
    (sa, za), (sb, zb), (so, zo) = qa, qb, qo
    if builtin in ("ADD", "SUB"):
        q = add_quant(sa, za, sb, zb, so, zo)
        if builtin == "SUB":
            q.skip_multiplier = -q.skip_multiplier
        return q
    if builtin == "MUL":
        real = np.float64(np.float32(sa)) * np.float64(np.float32(sb)) / np.float64(np.float32(so))
        m, s = quantize_multiplier(float(real))
        return MulQuant(a_offset=-za, b_offset=-zb, output_offset=zo, multiplier=m, shift=s)
    if builtin == "SQUARED_DIFFERENCE":
        return squared_difference_quant(qa, qb, qo)
    if builtin == "PRELU":
        f64 = [np.float64(np.float32(v)) for v in (sa, sb, so)]
        mp, sp = quantize_multiplier(float(f64[0] / f64[2]))
        mn, sn = quantize_multiplier(float(f64[0] * f64[1] / f64[2]))
        return PreluQuant(input_offset=-za, alpha_offset=-zb, output_offset=zo, multiplier_pos=mp,
                          shift_pos=sp, multiplier_neg=mn, shift_neg=sn)
    if not (sa == sb == so and za == zb == zo):
        raise ValueError("inputs and output quantised differently")
    return None


def _int8_quant(r: "Reader", top: "TfliteOp", a: int,
                b: int) -> AddQuant | MulQuant | PreluQuant | SqDiffQuant | None:
    for i in (a, b):
        if r.type_of(i) != "int8":
            raise r.unsupported(top, f"a {r.type_of(i)} operand in an int8 model")
    qa, qb, qo = r.q(a), r.q(b), r.q(top.outputs[0])
    try:
        return binary_quant(top.opname, qa, qb, qo)
    except ValueError as e:
        raise r.unsupported(top, str(e)) from e
    except StageError as e:                   # a multiplier beyond TFLite's range
        raise r.unsupported(top, e.message) from e


@tflite_rule(*BINARY)
def _binary(r: "Reader", top: "TfliteOp") -> None:
    a, b = top.inputs[:2]
    out = top.outputs[0]
    dtype = r.graph.dtype
    if BINARY[top.opname][0 if dtype == "float32" else 1] is None:
        raise r.unsupported(top, f"no {dtype} kernel")
    consts = [r.is_const(a), r.is_const(b)]
    if all(consts):
        raise r.unsupported(top, "both operands are constant")
    geom = broadcast_geometry(r.full_shape(a), r.full_shape(b), r.full_shape(out))
    if geom is None:
        raise r.unsupported(top, f"shapes {r.full_shape(a)} and {r.full_shape(b)} do not "
                                 f"broadcast to {r.full_shape(out)}")
    if len(geom.dims) > MAX_DIMS:
        raise r.unsupported(top, f"a broadcast over {len(geom.dims)} dimensions (at most "
                                 f"{MAX_DIMS})")
    quant = _int8_quant(r, top, a, b) if dtype == "int8" else None
    if dtype == "float32" and any(r.type_of(i) != "float32" for i in (a, b)):
        raise r.unsupported(top, "an operand that is not float32")
    const_index = consts.index(True) if any(consts) else -1
    const = None
    if const_index >= 0:
        const = r.const((a, b)[const_index], np.float32 if dtype == "float32" else np.int8)
    live = tuple(i for i, c in zip((a, b), consts) if not c)
    r.add(Binary(top.name, r.shape(live[0]), r.shape(out), inputs=live, function=top.opname,
                 geometry=geom, const=const, const_index=const_index, act=r.act(top),
                 quant=quant), top)
