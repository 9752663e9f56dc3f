"""Weight layouts of the optimised kernels (firmware/kernels/fast) and the sparse encodings.

Every function takes weights as the graph holds them - conv OHWI, dense [out][in], i.e. one row
of K values per output channel - and returns the flat array the kernel reads. The dense layouts
are permutations (same size); the sparse ones keep only the non-zero weights.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_DELTA = 255


def _rows(w: np.ndarray) -> np.ndarray:
    return np.asarray(w).reshape(np.asarray(w).shape[0], -1)


def s8_weights(w: np.ndarray) -> np.ndarray:
    """int8 conv/dense weights for mcus_fast_conv2d_s8: chunks of 4 k, channel pairs interleaved
    ([c k0..3][c+1 k0..3] per chunk), a lone last channel's chunks, then every channel's K % 4
    leftovers ([c][t])."""
    W = _rows(w).astype(np.int8)
    oc, K = W.shape
    nch = K // 4
    main = W[:, :nch * 4].reshape(oc, nch, 4)
    npairs = oc // 2
    parts = [main[:2 * npairs].reshape(npairs, 2, nch, 4).transpose(0, 2, 1, 3).reshape(-1)]
    if oc % 2:
        parts.append(main[-1].reshape(-1))
    parts.append(W[:, nch * 4:].reshape(-1))
    out = np.concatenate(parts).astype(np.int8)
    assert out.size == W.size
    return out


def s8_fc_weights(w: np.ndarray) -> np.ndarray:
    """int8 dense weights for mcus_fast_fc_s8: chunks of 4 k, output channels in quads
    ([c k0..3][c+1 k0..3][c+2 k0..3][c+3 k0..3] per chunk, quad after quad), the oc % 4 last
    channels' chunks one channel after the other, then every channel's K % 4 leftovers ([c][t])."""
    W = _rows(w).astype(np.int8)
    oc, K = W.shape
    nch = K // 4
    main = W[:, :nch * 4].reshape(oc, nch, 4)
    nq = oc // 4
    parts = [main[:4 * nq].reshape(nq, 4, nch, 4).transpose(0, 2, 1, 3).reshape(-1),
             main[4 * nq:].reshape(-1), W[:, nch * 4:].reshape(-1)]
    out = np.concatenate(parts).astype(np.int8)
    assert out.size == W.size
    return out


# Paired quads save 4 instructions a 4-k chunk but cost about 6 a quad after the loop: from 8
# chunks (K >= 32) on (qemu-m7: an LSTM's 8 -> 64 Dense went from 2,334 to 2,528 instructions).
FC_PAIRED_MIN_CHUNKS = 8


def s8_fc_paired_ok(w: np.ndarray) -> bool:
    """Whether :func:`s8_fc_weights_paired` applies to dense weights ``w`` (K >= 32); in every quad the
    second channel of each pair has 128 sum |w| < 2^23 (its sum of raw int8 inputs times weights,
    recovered from a 24-bit field, is exact) and can take the carry fix-up (no -128 where the
    first channel's weight is negative)."""
    W = _rows(w).astype(np.int64)
    oc, K = W.shape
    nq, nch = oc // 4, K // 4
    if nq == 0 or nch < FC_PAIRED_MIN_CHUNKS:
        return False
    main = W[:4 * nq, :4 * nch]
    second = main[1::2]
    first = main[0::2]
    return bool(np.all(128 * np.abs(second).sum(axis=1) < 2**23)
                and not np.any((first < 0) & (second == -128)))


def s8_fc_weights_paired(w: np.ndarray) -> np.ndarray:
    """int8 dense weights for mcus_fast_fc_s8's paired quads (fc_s8.c): per quad and 4-k chunk four
    words, channel pairs (c, c + 1) and (c + 2, c + 3), each pair as [w_c[k0], v[k0], w_c[k2],
    v[k2]] then the same for k1, k3, where v = w_{c+1} - (w_c < 0): a halfword (w_c, v) read as
    int16 is 256 w_{c+1} + w_c. The oc % 4 last channels and the K % 4 leftovers as
    :func:`s8_fc_weights`."""
    W = _rows(w).astype(np.int64)
    oc, K = W.shape
    nch, nq = K // 4, oc // 4
    main = W[:4 * nq, :4 * nch].reshape(nq, 2, 2, nch, 4)       # quad, pair, member, chunk, k
    first, second = main[:, :, 0], main[:, :, 1]
    second = second - (first < 0)
    words = np.stack([first, second], axis=-1)                 # quad, pair, chunk, k, member
    words = words[:, :, :, [0, 2, 1, 3], :].reshape(nq, 2, nch, 2, 4)   # (k0, k2), (k1, k3)
    quads = words.transpose(0, 2, 1, 3, 4).reshape(-1)         # quad, chunk, pair, word
    rest = s8_fc_weights(w)[nq * nch * 16:]
    out = np.concatenate([quads.astype(np.int8), rest]).astype(np.int8)
    assert out.size == W.size
    return out


def f32_weights(w: np.ndarray) -> np.ndarray:
    """float conv/dense weights for mcus_fast_conv2d_f32: groups of 4 channels as [k][4], then
    every remaining channel as [k]."""
    W = _rows(w).astype(np.float32)
    oc, K = W.shape
    ng = oc // 4
    parts = [W[:4 * ng].reshape(ng, 4, K).transpose(0, 2, 1).reshape(-1), W[4 * ng:].reshape(-1)]
    return np.concatenate(parts).astype(np.float32)


def dw_groups(channels: int) -> list[int]:
    """First channel of each 4-channel group of the 4-wide depthwise kernels (channels >= 4): the
    last group is [channels - 4, channels), overlapping the previous one when channels % 4 != 0."""
    starts = list(range(0, channels - 3, 4))
    if channels % 4:
        starts.append(channels - 4)
    return starts


def f32_dw3x3_weights(w: np.ndarray) -> np.ndarray:
    """float depthwise 3 x 3 weights for mcus_fast_dwconv3x3_f32: TFLite's [1][3][3][C] as, per
    group of 4 channels (dw_groups), [ky][kx][4] (36 values a group)."""
    W = np.asarray(w, np.float32).reshape(3, 3, -1)
    return np.concatenate([W[:, :, c:c + 4].reshape(-1) for c in dw_groups(W.shape[2])])


@dataclass
class Sparse:
    """Per-output-channel lists of non-zero weights with 8-bit k distances."""

    counts: np.ndarray        # uint16 [out_c]: entries per channel (bridges included)
    deltas: np.ndarray        # uint8 [entries]: k distance from the previous entry (first: from 0)
    values: np.ndarray        # [entries]: the weights (0 for a bridging entry)
    nonzeros: int             # real non-zero weights
    total: int                # all weights

    @property
    def entries(self) -> int:
        return int(self.deltas.size)

    @property
    def density(self) -> float:
        return self.nonzeros / max(self.total, 1)


def sparse_encode(w: np.ndarray) -> Sparse:
    W = _rows(w)
    counts, deltas, values = [], [], []
    for row in W:
        prev, n = 0, 0
        for k in np.flatnonzero(row):
            d = int(k) - prev
            while d > MAX_DELTA:
                deltas.append(MAX_DELTA)
                values.append(0)
                d -= MAX_DELTA
                n += 1
            deltas.append(d)
            values.append(row[k])
            prev = int(k)
            n += 1
        if n > 0xFFFF:
            raise ValueError("more than 65535 entries in one channel")
        counts.append(n)
    return Sparse(counts=np.array(counts, np.uint16), deltas=np.array(deltas, np.uint8),
                  values=np.array(values, W.dtype), nonzeros=int(np.count_nonzero(W)),
                  total=int(W.size))


def sparse_decode(s: Sparse, shape: tuple[int, ...]) -> np.ndarray:
    """The dense weights back (for tests)."""
    oc = int(shape[0])
    K = int(np.prod(shape[1:]))
    W = np.zeros((oc, K), dtype=s.values.dtype)
    e = 0
    for c in range(oc):
        k = 0
        for _ in range(int(s.counts[c])):
            k += int(s.deltas[e])
            W[c, k] += s.values[e]
            e += 1
    return W.reshape(shape)


def s8_sparse_entries(s: Sparse) -> np.ndarray:
    """int8 sparse stream: (delta, weight) byte pairs, as uint8."""
    out = np.empty(2 * s.entries, np.uint8)
    out[0::2] = s.deltas
    out[1::2] = s.values.astype(np.int8).view(np.uint8)
    return out
