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
    nch, T = K // 4, K % 4
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


def f32_weights(w: np.ndarray, group: int = 8) -> np.ndarray:
    """float conv/dense weights for mcus_fast_conv2d_f32: groups of ``group`` output channels as
    [k][group], the last group padded with zero channels (ceil(oc / group) * group * K values)."""
    W = _rows(w).astype(np.float32)
    oc, K = W.shape
    ng = -(-oc // group)
    W = np.pad(W, ((0, ng * group - oc), (0, 0)))
    return W.reshape(ng, group, K).transpose(0, 2, 1).reshape(-1).astype(np.float32)


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
