"""What the fast kernels read besides the tensors, per layer (converter ``"mcusearch"``): which
kernel takes a layer (dense GEMM or the Dense kernel, the depthwise variants), the constants the
generator precomputes for it (depthwise group data, stored requantisation constants, the K order of
small-channel convolutions, the folded Dense bias, the short requantisation's proof) and the scratch
each call needs. :mod:`mcusearch.convert.fast` emits the calls; the kernels are in
firmware/kernels/fast (see firmware/kernels/README.md).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from mcusearch.convert import layout
from mcusearch.convert.graph import Conv2D, Dense, DepthwiseConv2D
from mcusearch.convert.quant import tflite_depthwise_vector_channels


def fc_kernel_applies(op, f32: bool, dense_1x1: bool = False) -> bool:
    """Whether a Conv2D/Dense with dense weights runs fc_s8 (int8 Dense: no column, no scratch;
    see firmware/kernels/README.md) rather than conv2d_s8: an int8 Dense, unless conv1x1_s8
    takes it (``dense_1x1``: conv1x1_applies')."""
    return isinstance(op, Dense) and not f32 and not conv1x1_applies(op, f32, dense_1x1)


def fc_rq_short(op: Dense) -> bool:
    """Whether fc_s8's short requantisation, SMMLAR(2 acc, m, (1 + 2 zp) << (r - 1)) >> r, is
    TFLite's for every accumulator an int8 input can produce (see fc_s8.c): every right shift r in
    [1, 24], |acc| < 2^30 (bias plus 255 times the channel's sum of |w|: |x - zp_in| <= 255), and
    the doubling high multiply plus the bias within 31 bits."""
    rq = op.requant
    w = np.abs(np.asarray(op.weights).astype(np.int64).reshape(op.weights.shape[0], -1))
    oc = w.shape[0]
    bias = np.zeros(oc, np.int64) if op.bias is None else np.abs(np.asarray(op.bias, np.int64))
    acc = bias + 255 * w.sum(axis=1)
    r = -np.broadcast_to(np.asarray(rq.shift, np.int64), (oc,))
    mult = np.broadcast_to(np.asarray(rq.multiplier, np.int64), (oc,))
    if np.any(r < 1) or np.any(r > 24) or np.any(acc >= 2**30):
        return False
    high = (acc * mult + 2**30) // 2**31 + 1
    rounding = np.abs(1 + 2 * int(rq.output_zero_point)) << (r - 1)
    return bool(np.all(high + rounding < 2**31))


def fc_quads_applies(op: Dense, rq_short: bool) -> bool:
    """Whether an int8 Dense runs fc_s8's whole-quads asm loops (mcus_fast_fc_s8_quads; either
    weight layout): the short requantisation, K a multiple of 4 and a quad of outputs at least
    (the generator then writes the bias even when it is all zero: the loops load it)."""
    oc, K = int(op.weights.shape[0]), int(np.asarray(op.weights).size // op.weights.shape[0])
    return rq_short and K % 4 == 0 and K > 0 and oc >= 4


def folded_bias(op: Dense) -> Dense:
    """A copy of an int8 Dense whose bias also holds input_offset * sum(w) per output channel,
    wrapped to int32 as the kernels' int32 sums wrap (fc_s8.c reads x, not x + input_offset)."""
    w = np.asarray(op.weights).astype(np.int64).reshape(op.weights.shape[0], -1)
    b = np.zeros(w.shape[0], np.int64) if op.bias is None else np.asarray(op.bias).astype(np.int64)
    total = b - int(op.requant.input_zero_point) * w.sum(axis=1)
    folded = ((total + 2**31) % 2**32 - 2**31).astype(np.int32)
    return dataclasses.replace(op, bias=folded)


def dw_kernel(op: DepthwiseConv2D, f32: bool) -> str:
    """The row kernel of a depthwise convolution (depth multiplier 1), chosen by shape (measured
    figures in firmware/kernels/README.md): float 3 x 3 windows on 4 or more channels take
    ``dwconv3x3_f32`` (4-channel groups, accumulators in FPU registers, a sliding window over
    pixel pairs); int8 3 x 3 windows of stride 1 or 2, padding at most 1, on 4 or more channels
    whose right shifts are all in [1, 24] take ``dwconv3x3_s8`` (prepared columns, two kernel rows
    per SMLAD, precomputed group data); everything else the generic row kernel ``dwconv2d_*``."""
    three = tuple(op.kernel) == (3, 3) and op.depth_multiplier == 1 and int(op.out_shape[-1]) >= 4
    if f32 and three:
        return "dwconv3x3_f32"
    if not f32 and three and tuple(op.stride) in ((1, 1), (2, 2)) and max(op.pad) <= 1:
        shift = np.asarray(op.requant.shift)
        if np.all((shift <= -1) & (shift >= -24)):
            return "dwconv3x3_s8"
    return "dwconv2d_f32" if f32 else "dwconv2d_s8"


DW3_GROUP_WORDS = 42     # dwconv3x3_s8.c: DW3_GROUP_WORDS


def _wrap32(v: np.ndarray) -> np.ndarray:
    """int64 values wrapped to int32 (two's complement), as the C kernels' 32-bit words hold them."""
    return ((np.asarray(v, np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


def dw3x3_s8_groups(op: DepthwiseConv2D) -> np.ndarray:
    """dwconv3x3_s8's per-group words (int32, [groups][42]; groups as layout.dw_groups): the 4
    initial accumulators bias + input_offset * sum of the 9 weights (channels 0, 2, 1, 3); per
    kernel column kx the 6 weight words in the order of the kernel's prepared column words, as
    int16 halves (low, high): (w[0][kx], w[1][kx]) of channels 0 and 2, (w[2][kx] of channel 0,
    of channel 2), then the same for channels 1 and 3; the 4 channels' mcus_dwrq_t
    {m, hi, s, lo, k} of MCUS_REQUANT_MODE 0 with zp - act_min in place of zp (mcus_dwrq_make in
    mcus_fast.h: C - k = 2^30 + (1 + 2 (zp - act_min)) 2^(30 + r) - k, k = 0 on TFLite's vector
    lanes; the kernel's USAT then leaves clamp(out - act_min, 0, 255))."""
    w = np.asarray(op.weights).astype(np.int64).reshape(3, 3, -1)
    ch = w.shape[2]
    rq = op.requant
    bias = np.zeros(ch, np.int64) if op.bias is None else np.asarray(op.bias).astype(np.int64)
    mult = np.broadcast_to(np.asarray(rq.multiplier, np.int64), (ch,))
    shift = np.broadcast_to(np.asarray(rq.shift, np.int64), (ch,))
    off = -int(rq.input_zero_point)
    zp = int(rq.output_zero_point) - max(-128, int(op.act[0]))
    vector = tflite_depthwise_vector_channels(ch)

    def pair(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        return (lo & 0xFFFF) | (hi & 0xFFFF) << 16

    out = []
    for c in layout.dw_groups(ch):
        g = w[:, :, c:c + 4]                                    # [ky][kx][4]
        words = []
        for kx in range(3):
            for a, b in ((0, 2), (1, 3)):
                words += [pair(g[0, kx, a], g[1, kx, a]), pair(g[0, kx, b], g[1, kx, b]),
                          pair(g[2, kx, a], g[2, kx, b])]
        init = (bias[c:c + 4] + off * g.sum(axis=(0, 1)))[[0, 2, 1, 3]]
        rqw = []
        for j in range(4):
            r = -int(shift[c + j])
            k = 0 if c + j < vector else 2**31
            const = 2**30 + (1 + 2 * zp) * 2**(30 + r) - k
            rqw += [int(mult[c + j]), const >> 32, r - 1, const & 0xFFFFFFFF, k]
        out.append(np.concatenate([init, np.array(words, np.int64), np.array(rqw, np.int64)]))
    groups = _wrap32(np.stack(out))
    assert groups.shape[1] == DW3_GROUP_WORDS
    return groups


RQ_TABLE_MAX = 640      # conv2d_s8: rows of at most this many MACs a channel read stored constants
RQ_TABLE_MIN_ROWS = 8   # ... in layers of at least this many output rows


def conv_s8_rq(op: Conv2D, kpad: int, act: dict) -> np.ndarray | None:
    """conv2d_s8's GEMM-path requantisation constants of every output channel (int32, [oc][5]:
    mcus_rq_t {m, s, lo, hi, z} as its gemm_rq computes them once a row: s = r - 1,
    C = hi:lo = 2^30 + (1 + 2 zp) 2^(30 + r), z = the bias, 0 on an odd last channel), stored
    for layers whose rows are narrow: gemm_rq's ~12 instructions a channel a row are then more
    than ~2 % of the row's MACs (ow * K <= RQ_TABLE_MAX; DS-CNN's 5-pixel rows), at 20 bytes of
    flash a channel, which saves 12 * oh / 20 instructions a byte: only for oh >=
    RQ_TABLE_MIN_ROWS rows (about 5 a byte; MobileNetV2's 3 x 3 maps would pay 25 KiB for 46 k
    instructions). None where the kernel would not take the GEMM path (activation range not
    [-128, 127], K + kpad not a multiple of 4, a shift outside [-24, -1]) or rows are wide or
    few."""
    if not isinstance(op, Conv2D):
        return None
    oc = int(op.out_shape[-1])
    K = int(np.asarray(op.weights).size // oc) + kpad
    if ((act["act_min"], act["act_max"]) != ("-128", "127") or K % 4
            or int(op.out_shape[1]) * K > RQ_TABLE_MAX or int(op.out_shape[0]) < RQ_TABLE_MIN_ROWS):
        return None
    rq = op.requant
    shift = np.broadcast_to(np.asarray(rq.shift, np.int64), (oc,))
    if not np.all((shift <= -1) & (shift >= -24)):
        return None
    s = -1 - shift
    t = ((1 + 2 * int(rq.output_zero_point)) % 2**32 << s) % 2**32
    lo = 0x40000000 | (t << 31) % 2**32
    hi = _wrap32(t) >> 1
    z = np.zeros(oc, np.int64) if op.bias is None else np.asarray(op.bias).astype(np.int64)
    if oc % 2:
        z[-1] = 0
    m = np.broadcast_to(np.asarray(rq.multiplier, np.int64), (oc,))
    return _wrap32(np.stack([m, s, lo, hi, z], 1))


def int16_pairs(w: np.ndarray) -> np.ndarray:
    """(oc, K) integer weights, K a multiple of 4 -> int64 [oc][K / 4][2]: per 4-k chunk the words
    (k0, k2) and (k1, k3) as int16 halves, low half first, what SXTB16 and SXTB16 ROR 8 make of a
    word of 4 int8 weights (conv2d_s8's one-pixel rows and conv1x1_s8 store them so)."""
    q = np.asarray(w, np.int64).reshape(np.shape(w)[0], -1, 4) & 0xFFFF
    return np.stack([q[..., 0] | q[..., 2] << 16, q[..., 1] | q[..., 3] << 16], -1)


def conv_s8_w16(op: Conv2D, w: np.ndarray, rq: np.ndarray | None) -> np.ndarray | None:
    """conv2d_s8's int16 weights for rows of one output pixel (the 1-D maps of converter
    mcusearch-lowmem, every call one pixel): ``w`` the (oc, K + kpad) int8 weights in the
    generator's k order, ``rq`` conv_s8_rq's table. Every 4-k chunk of a channel is two int32
    words, the int16 pairs (k0, k2) and (k1, k3) (low half first): what SXTB16 makes of a weight
    word, so the kernel multiplies the column by them without expanding them per call. Channels in
    groups of 4 (a last group of 2), chunk after chunk, each chunk the group's channels one after
    the other (8 or 4 words: one LDM of 4 per 2 channels). None where the kernel would not take
    that path: rows wider than one pixel, no constants table, an odd channel count."""
    oc = int(w.shape[0])
    if rq is None or oc % 2 or int(op.out_shape[1]) != 1 or w.shape[1] % 4:
        return None
    words = int16_pairs(w)                                                  # [c][j][2]
    groups = [words[c:c + 4].transpose(1, 0, 2).reshape(-1) for c in range(0, oc, 4)]
    return _wrap32(np.concatenate(groups))


def conv1x1_applies(op, f32: bool, dense_1x1: bool = False) -> bool:
    """Whether an int8 Conv2D runs conv1x1_s8 rather than conv2d_s8: a 1 x 1 unpadded kernel on 4, 8
    or 16 input channels (K: the column set-up and per-output bookkeeping of conv2d_s8's GEMM path
    outweigh its K MACs there), activation range [-128, 127] (the kernel's assembly; the portable
    C also clamps) and every right shift in [1, 24] (conv1x1_records' folded constant). A Dense of
    such K runs it too (as a 1 x 1 x K map, rather than fc_s8) where the caller says so
    (``dense_1x1``: fast._Emitter.dense_1x1, which keeps fc_s8 where the weights are shared or
    conv1x1_s8 would be linked for Dense layers alone)."""
    if f32 or not ((isinstance(op, Dense) and dense_1x1) or
                   (isinstance(op, Conv2D) and tuple(op.kernel) == (1, 1) and not any(op.pad))):
        return False
    if int(op.weights.shape[-1]) not in (4, 8, 16) or tuple(op.act) != (-128, 127):
        return False
    shift = np.asarray(op.requant.shift)
    return bool(np.all((shift <= -1) & (shift >= -24)))


def conv1x1_records(op: Conv2D) -> np.ndarray:
    """conv1x1_s8's per-channel records (int32, [oc][K / 2 + 4]): the weights as int16 pairs in
    SXTB16 order, (w0, w2), (w1, w3) per 4-k chunk (low half first), then mcus_rq_t's
    {m, s, lo, hi}: s = r - 1 and hi:lo = C = 2^30 + (1 + 2 zp) 2^(30 + r) + (b + off sum(w)) m,
    off = -input_zero_point (conv1x1_s8.c: acc m + C for the raw inputs' acc is mcus_rq_apply's
    sum of TFLite's accumulator)."""
    w = np.asarray(op.weights).astype(np.int64).reshape(op.weights.shape[0], -1)
    oc = w.shape[0]
    rq = op.requant
    bias = np.zeros(oc, np.int64) if op.bias is None else np.asarray(op.bias).astype(np.int64)
    mult = np.broadcast_to(np.asarray(rq.multiplier, np.int64), (oc,))
    shift = np.broadcast_to(np.asarray(rq.shift, np.int64), (oc,))
    off, zp = -int(rq.input_zero_point), int(rq.output_zero_point)
    out = []
    pairs = int16_pairs(w)
    for c in range(oc):
        words = [int(v) for v in pairs[c].ravel()]
        r, m = -int(shift[c]), int(mult[c])
        const = 2**30 + (1 + 2 * zp) * 2**(30 + r) + (int(bias[c]) + off * int(w[c].sum())) * m
        assert 1 <= r <= 24 and -2**63 <= const < 2**63
        out.append(words + [m, r - 1, const & 0xFFFFFFFF, const >> 32])
    return _wrap32(np.array(out, np.int64))


def op_scratch(op, f32: bool, in_place: bool = False) -> int:
    """Bytes of io->scratch of a depthwise conv / int8 average pool call: one 32-bit accumulator
    per channel (dwconv3x3_f32: none, its accumulators are registers, but ``in_place`` the output
    row staged; dwconv3x3_s8: the (output width - 1) * stride + 3 prepared columns of 24 bytes
    and a row of input zero points for padding rows, or dwconv2d_s8's accumulators where it falls
    back to that kernel, and ``in_place`` the output row staged after them)."""
    if isinstance(op, DepthwiseConv2D):
        kernel = dw_kernel(op, f32)
        if kernel == "dwconv3x3_f32":
            return 4 * int(op.out_shape[1]) * int(op.out_shape[-1]) if in_place else 0
        if kernel == "dwconv3x3_s8":
            ch, ow, in_w = int(op.out_shape[-1]), int(op.out_shape[1]), int(op.in_shape[1])
            wp = (ow - 1) * int(op.stride[1]) + 3
            return max(4 * ch + (ow * ch if in_place else 0), 24 * wp + (in_w * ch + 3) // 4 * 4)
    return 4 * int(op.out_shape[-1])


def k_padding(op) -> int:
    """Zero weights conv2d_s8 appends to each output channel's K values (its kpad): K rounded up
    to a multiple of 4 when the input's channels are not (the column is staged byte by byte
    there anyway), so that such layers (3-channel image stems, 1-D sensor convs) take the GEMM
    path; 0 for Dense and for input channels in multiples of 4 (K is one then)."""
    if not isinstance(op, Conv2D) or int(op.in_shape[-1]) % 4 == 0:
        return 0
    return -int(np.asarray(op.weights)[0].size) % 4


def k_order(op) -> np.ndarray | None:
    """conv2d_s8's K order (indices into TFLite's [ky][kx][c]) of a Conv2D whose kernel rows of
    rowb = kw * in_c bytes are not whole words: every row's first 4 * (rowb // 4) values, row
    after row, then every row's rowb % 4 leftovers (the kpad zeros follow), so that the main part
    of each row is read from the input as words (conv2d_s8.c, im2col_rows_s8 / stage_korder).
    None where the order is TFLite's (input channels a multiple of 4, rowb a multiple of 4 or
    less than 4)."""
    if not isinstance(op, Conv2D) or int(op.in_shape[-1]) % 4 == 0:
        return None
    kh, kw, cin = (int(v) for v in np.asarray(op.weights).shape[1:])
    rowb = kw * cin
    if rowb % 4 == 0 or rowb < 4:
        return None
    idx = np.arange(kh * rowb).reshape(kh, rowb)
    m = rowb // 4 * 4
    return np.concatenate([idx[:, :m].ravel(), idx[:, m:].ravel()])


def gemm_scratch(op, sparse: bool, f32: bool) -> int:
    """Bytes of io->scratch a Conv2D/Dense kernel call uses (see the kernels' sources)."""
    w = np.asarray(op.weights)
    oc = int(w.shape[0])
    K = int(w.size // oc)
    in_c = int(op.in_shape[-1]) if isinstance(op, Conv2D) else K
    if sparse:
        return (4 * in_c + 16 * K) if f32 else (RQ_BYTES * oc + 16 * K + in_c + 16)
    if f32:
        return 4 * in_c + 16 * K                              # zeros + 4 interleaved columns
    # one block's constants + the columns of int16 (3 side by side on the GEMM path, K % 4 == 0;
    # else 2) + the staged bytes of a window when in_c % 4 != 0 (K + kpad, 4-byte reads), twice:
    # the window, then in k_order
    K += k_padding(op)
    cols = 3 if K % 4 == 0 else 2
    return (RQ_BYTES * min(oc, RQ_BLOCK) + cols * (4 * (K // 4) + (K % 4)) * 2
            + (2 * ((K + 7) // 4 * 4) if in_c % 4 else 0))


RQ_BYTES = 20   # sizeof(mcus_rq_t)
RQ_BLOCK = 64   # MCUS_RQ_BLOCK: conv2d_s8 requantises output channels in blocks of this many
