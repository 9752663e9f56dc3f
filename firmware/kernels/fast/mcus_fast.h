/*
 * mcus_fast.h - the optimised kernels of the mcusearch C generator (converter "mcusearch").
 *
 * The reference kernels in ../mcus_kernels.h are the oracle; these compute the same numbers
 * (int8: bit-exact, MCUS_REQUANT_MODE semantics included; float32: the same sums, reassociated and
 * fused into multiply-adds) with another memory layout and another calling convention. See
 * ../README.md for the layouts, loop structures and measured costs.
 *
 * Calling convention: row kernels. The generated mcus_model_run walks a static schedule; every step
 * calls one kernel for one output row of one layer:
 *
 *     kernel(const void *params, const mcus_io_t *io, int32_t row)
 *
 * A tensor lives in a ring of whole rows (mcus_buf_t): row y of an H x W x C tensor is stored at
 * base + (y % rows) * W * C elements. rows == H is an ordinary, fully materialised tensor; fewer
 * rows is a line buffer between two layers that are computed a few rows at a time (the generator's
 * planner sizes every ring from the schedule so that no row is overwritten while still needed).
 * Where a model has an in-place depthwise layer, its output shares its input's ring one slot
 * behind: row y at slot (y + lag) % rows. The generator then writes mcus_plan.h (next to
 * model.h) with MCUS_RING_LAG 1; other models do not pay for the addition.
 * A NULL base means the model's input (an input buffer) or output (an output buffer): io->in/out.
 * io->scratch is a per-call work area shared by all layers (im2col columns, expanded inputs).
 *
 * Cores: the int8 kernels use the DSP extension (SMLAD, SXTB16, SXTAB16, SSAT, SEL, ...) when the
 * compiler defines __ARM_FEATURE_DSP (Cortex-M4/M7/M33), and equivalent plain C otherwise
 * (Cortex-M0+/M3, and the host, where the tests run them). The float kernels use fused
 * multiply-add when __ARM_FEATURE_FMA is defined.
 */
#ifndef MCUS_FAST_H
#define MCUS_FAST_H

#include <stdint.h>
#include <string.h>

#include "mcus_kernels.h" /* the reference requantisation (mcus_requantize) and MCUS_REQUANT_MODE */

#if defined(__has_include)
#if __has_include("mcus_plan.h")
#include "mcus_plan.h"         /* the generated model's MCUS_RING_LAG */
#endif
#endif
#ifndef MCUS_RING_LAG
#define MCUS_RING_LAG 0
#endif

#include "mcus_simd.h"          /* SXTB16 / SXTAB16 / SMLAD, mcus_ld32 */
#define MCUS_FAST_DSP MCUS_SIMD_DSP

#if defined(__ARM_FEATURE_FMA) && __ARM_FEATURE_FMA
#define MCUS_FMA(a, b, c) __builtin_fmaf((a), (b), (c)) /* c + a * b, one rounding */
#else
#define MCUS_FMA(a, b, c) ((c) + (a) * (b))
#endif

/* ---- calling convention ---------------------------------------------------------------------- */

typedef struct {
    const void *in;  /* the model's input */
    void *out;       /* the model's output */
    void *scratch;   /* per-call work area (word aligned), sized by the generator */
} mcus_io_t;

typedef void (*mcus_row_fn)(const void *params, const mcus_io_t *io, int32_t row);

typedef struct {
    void *base;               /* NULL: io->in (as an input) or io->out (as an output) */
    uint16_t h, w, c;         /* the tensor's shape (a vector is 1 x 1 x N) */
    uint16_t rows;            /* ring slots: 1 <= rows <= h */
#if MCUS_RING_LAG
    uint16_t lag;             /* row y in slot (y + lag) % rows: an in-place depthwise's output
                               * sits one slot behind its input's rows (0 elsewhere) */
#endif
} mcus_buf_t;

#if MCUS_RING_LAG
#define MCUS_LAG(b) ((uint32_t)(b)->lag)
#else
#define MCUS_LAG(b) 0u
#endif

/* One step of a schedule: which layer, through which kernel. */
typedef struct {
    mcus_row_fn fn;
    const void *params;
} mcus_layer_t;

static inline void *mcus_row_ptr(const mcus_buf_t *b, void *base, int32_t y, int32_t elem)
{
    return (char *)base + (uint32_t)(((uint32_t)y + MCUS_LAG(b)) % b->rows) * (uint32_t)(b->w * b->c * elem);
}

/* ---- parameters -------------------------------------------------------------------------------- */

/* Window geometry shared by convolutions and pools (input and output shapes are in the buffers). */
typedef struct {
    uint8_t kh, kw;           /* kernel / pool size (a dilated convolution's taps) */
    uint8_t sh, sw;           /* strides */
    uint8_t pt, pl;           /* padding before (top, left) */
} mcus_win_t;

/*
 * int8 convolution (a Dense layer is a 1 x 1 convolution of a 1 x 1 x N input).
 * Weights: K = kh*kw*in_c values per output channel, re-laid out by the generator
 * (mcusearch.convert.layout.s8_weights): chunks of 4 consecutive k, two channels interleaved
 * ([c k0..3][c+1 k0..3] per chunk, 8 bytes), then a lone last channel (4 bytes a chunk), then the
 * K % 4 leftover values of every channel ([c][t]). Total K * out_c bytes, word aligned.
 * Requantisation: mult[c] and shift[c] as TFLite computes them, one per output channel.
 */
typedef struct {
    mcus_buf_t in, out;
    mcus_win_t g;
    int16_t input_offset;     /* -input_zero_point */
    int8_t output_offset;     /* output_zero_point */
    int8_t act_min, act_max;
    const int8_t *weights;
    const int32_t *bias;      /* NULL: no bias */
    const int32_t *mult;
    const int8_t *shift;
    uint8_t kpad;             /* conv2d_s8: zero weights appended to each channel's K values
                               * (K + kpad a multiple of 4, for the GEMM path; 0: none) */
    uint8_t dh1, dw1;         /* conv2d_s8: dilation - 1 (input channels a multiple of 4; g's
                               * kh, kw its taps, read d apart) */
    const struct mcus_rq *rq; /* conv2d_s8: NULL, or the GEMM path's constants of every output
                               * channel (what its gemm_rq computes per row; the generator's
                               * fast.conv_s8_rq, for narrow rows) */
    const int32_t *w16;       /* conv2d_s8: NULL, or for rows of one pixel (1-D maps as columns)
                               * with rq set and an even channel count: the weights as int16,
                               * a 4-k chunk as 2 words (k0, k2), (k1, k3) (the halves SXTB16
                               * leaves); channels in groups of 4 (a last 2), per chunk the
                               * group's channels in turn (fastdata.conv_s8_w16) */
    const struct mcus_conv_dil *dil; /* conv2d_s8: a dilated layer's (dh1 | dw1) column and row
                               * functions, &mcus_conv2d_s8_dilated; NULL otherwise, so that a
                               * model without one links none of them (--gc-sections) */
} mcus_fast_conv_s8_t;

extern const struct mcus_conv_dil mcus_conv2d_s8_dilated;

/*
 * int8 pointwise convolution of 4, 8 or 16 input channels (conv1x1_s8.c; 1 x 1, unpadded): per
 * output channel a record of in_c / 2 + 4 words, the weights as int16 pairs and the fast
 * requantisation's {m, s, lo, hi} with bias, input offset and zero point folded into C
 * (mcusearch/convert/fastdata.py, conv1x1_records). No scratch.
 */
typedef struct {
    mcus_buf_t in, out;
    mcus_win_t g;
    int8_t act_min, act_max;
    const int32_t *recs;
} mcus_fast_conv1x1_s8_t;

/*
 * Sparse int8 convolution: per output channel, the non-zero weights in k order with the distance
 * to the previous one (first: from k = 0) in one byte: entries are (delta, weight) byte pairs, a
 * distance above 255 is bridged by (255, 0) entries. counts[c] = entries of channel c.
 */
typedef struct {
    mcus_buf_t in, out;
    mcus_win_t g;
    int16_t input_offset;
    int8_t output_offset;
    int8_t act_min, act_max;
    const uint8_t *entries;   /* (delta, weight) pairs, channel after channel */
    const uint16_t *counts;   /* [out_c] */
    const int32_t *bias;
    const int32_t *mult;
    const int8_t *shift;
} mcus_fast_conv_sparse_s8_t;

/*
 * float32 convolution (and Dense, as a 1 x 1 convolution). Weights re-laid out by the generator
 * (mcusearch.convert.layout.f32_weights): groups of 4 output channels as [k][4], then every
 * remaining channel as [k].
 */
typedef struct {
    mcus_buf_t in, out;
    mcus_win_t g;
    float act_min, act_max;
    const float *weights;
    const float *bias;        /* NULL: no bias */
    uint8_t dh1, dw1;         /* mcus_fast_conv2d_dilated_f32: dilation - 1 (g's kh, kw its taps,
                               * read d apart); 0 for mcus_fast_conv2d_f32 */
} mcus_fast_conv_f32_t;

/* Sparse float32 convolution: per channel, counts[c] non-zero values and their k distances
 * (as the int8 one; a bridging entry has value 0.0f). */
typedef struct {
    mcus_buf_t in, out;
    mcus_win_t g;
    float act_min, act_max;
    const float *values;
    const uint8_t *deltas;
    const uint16_t *counts;
    const float *bias;
} mcus_fast_conv_sparse_f32_t;

typedef struct {
    mcus_buf_t in, out;
    mcus_win_t g;
    int8_t act_min, act_max;
} mcus_fast_maxpool_s8_t;

typedef struct {
    mcus_buf_t in, out;
    mcus_win_t g;
    float act_min, act_max;
} mcus_fast_maxpool_f32_t;

/*
 * Depthwise convolution, depth multiplier 1 (channel c of the output from channel c of the input).
 * Weights as TFLite holds them: [kh][kw][c]. io->scratch: c int32 (or float) accumulators.
 * int8 requantisation: mcus_requantize_depthwise (TFLite's per-channel depthwise rounding, see
 * ../mcus_kernels.h), one multiplier and shift per channel.
 */
typedef struct {
    mcus_buf_t in, out;
    mcus_win_t g;
    int16_t input_offset;     /* -input_zero_point */
    int8_t output_offset;     /* output_zero_point */
    int8_t act_min, act_max;
    const int8_t *weights;
    const int32_t *bias;      /* NULL: no bias */
    const int32_t *mult;
    const int8_t *shift;
    uint16_t vector_channels; /* channels [0, vector_channels) round ties up, the others away
                               * (TFLite's vector and scalar loops: mcus_requantize_depthwise) */
} mcus_fast_dwconv_s8_t;

/*
 * int8 depthwise 3 x 3, stride 1 or 2 (dwconv3x3_s8.c): the generic parameters (what
 * dwconv2d_s8 reads where the assembly path is not built) and, per group of 4 channels
 * (layout.dw_groups), 42 precomputed words (mcusearch/convert/fast.py, dw3x3_s8_groups).
 * io->scratch: the 3 padded input rows (and dwconv2d_s8's accumulators).
 */
typedef struct {
    mcus_fast_dwconv_s8_t d;
    const int32_t *groups;
    int32_t in_place;         /* 1: the output row overwrites the input window's first row (the
                               * planner's in-place depthwise; see dwconv3x3_s8.c) */
} mcus_fast_dw3x3_s8_t;

typedef struct {
    mcus_buf_t in, out;
    mcus_win_t g;
    float act_min, act_max;
    const float *weights;     /* dwconv2d_f32: [kh][kw][c]; dwconv3x3_f32: per group of 4
                               * channels [ky][kx][4] (layout.f32_dw3x3_weights) */
    const float *bias;        /* NULL: no bias */
    int32_t in_place;         /* dwconv3x3_f32: 1 when the output row overwrites the input
                               * window's first row (staged in io->scratch, then copied) */
} mcus_fast_dwconv_f32_t;

/* Average pooling (padded cells not counted). int8: io->scratch holds c int32 sums. */
typedef struct {
    mcus_buf_t in, out;
    mcus_win_t g;
    int8_t act_min, act_max;
} mcus_fast_avgpool_s8_t;

typedef struct {
    mcus_buf_t in, out;
    mcus_win_t g;
    float act_min, act_max;
} mcus_fast_avgpool_f32_t;

/* Global int8 MEAN (mean_global_s8.c; the float one is avgpool_global_f32 without a clamp): TFLite
 * MEAN's rescaling as ../mean_s8.c, input_bias = input_offset * H * W. */
typedef struct {
    mcus_buf_t in, out;
    int32_t input_bias, output_offset;
    int32_t multiplier, shift;
    int32_t vector_channels;       /* channels below it round ties up */
} mcus_fast_mean_s8_t;

/* int8 Dense (fc_s8.c): the convolution parameters (a 1 x 1 x K input; the input offset folded
 * into the bias), whether every channel takes the short requantisation (fc_s8.c: right shifts
 * of 1 to 24 and accumulators within 2^30, checked by the generator: mcusearch/convert/fast.py,
 * fc_rq_short), and whether the quads' weights are paired (layout.s8_fc_weights_paired). */
typedef struct {
    mcus_fast_conv_s8_t c;
    uint8_t rq_short;
    uint8_t paired;
} mcus_fast_fc_s8_t;

/* Element-wise add of the previous layer's output (in) and an earlier tensor (skip), one row per
 * call. int8: TFLite ADD's rescaling (mcus_add_s8_one in ../mcus_kernels.h, on q). */
typedef struct {
    mcus_buf_t in, skip, out;
    float act_min, act_max;
} mcus_fast_add_f32_t;

typedef struct {
    mcus_buf_t in, skip, out;
    mcus_add_s8_params_t q;   /* q.len unused (the row length comes from the buffers) */
    const int32_t *tb;        /* mcus_add_s8_fast's table (../mcus_add_fast.h) or 0 */
} mcus_fast_add_s8_t;

typedef struct {
    mcus_buf_t in, out;
    float act_min, act_max;
} mcus_fast_clamp_f32_t;

typedef struct {
    mcus_buf_t in, out;
} mcus_fast_softmax_f32_t;

typedef struct {
    mcus_buf_t in, out;
    mcus_softmax_s8_params_t q;   /* q.len: the vector's length */
} mcus_fast_softmax_s8_t;

/* ---- kernels (one output row per call) ---------------------------------------------------------- */

void mcus_fast_conv2d_s8(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_conv2d_s8_w16(const void *params, const mcus_io_t *io, int32_t row); /* p->w16 */
void mcus_fast_conv2d_sparse_s8(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_conv1x1_s8(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_conv2d_f32(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_conv2d_dilated_f32(const void *params, const mcus_io_t *io, int32_t row); /* dh1 */
void mcus_fast_conv2d_sparse_f32(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_maxpool2d_s8(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_maxpool2d_f32(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_dwconv2d_s8(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_dwconv2d_f32(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_dwconv3x3_f32(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_dwconv3x3_s8(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_fc_s8(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_fc_s8_quads(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_avgpool_global_s8(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_avgpool_global_f32(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_mean_global_s8(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_avgpool2d_s8(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_avgpool2d_f32(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_add_s8(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_add_f32(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_clamp_f32(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_softmax_f32(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_softmax_s8(const void *params, const mcus_io_t *io, int32_t row);

/* ---- int8 helpers -------------------------------------------------------------------------------- */

static inline void mcus_st32(void *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

/*
 * Fast requantisation, exactly MCUS_REQUANT_TFLITE (mode 0) when the right shift r = -shift is in
 * [1, 31]: SaturatingRoundingDoublingHighMul (ties up) followed by a rounding right shift by r (ties
 * up) is floor((acc * m + 2^30 + 2^(30 + r)) / 2^(31 + r)) - nested floors of divisions by powers
 * of two compose. So one 32 x 32 + 64 multiply-accumulate (SMLAL) with the constant
 * C = 2^30 + 2^(30 + r), the high word and an arithmetic shift by r - 1 give requantize(acc).
 * For r <= 24 the output zero point zp is folded into C as well (adding zp 2^(31 + r) inside the
 * floor adds zp outside: C = 2^30 + (1 + 2 zp) 2^(30 + r)) and z = 0; otherwise z = zp is added
 * after the shift. |acc * m| < 2^62 and |C| < 2^62, so nothing overflows. Other shifts (r <= 0,
 * multipliers of 0.5 and more) take the reference path (s = -1).
 */
/* conv2d_s8 requantises output channels in blocks of at most this many (its io->scratch holds
 * one block's mcus_rq_t; mcusearch/convert/fast.py:RQ_BLOCK is the same number). */
#define MCUS_RQ_BLOCK 64

typedef struct mcus_rq {
    int32_t m;        /* multiplier */
    int32_t s;        /* r - 1, or -1: use the reference mcus_requantize */
    uint32_t lo;      /* C, low word (reference path: the TFLite shift) */
    int32_t hi;       /* C, high word */
    int32_t z;        /* added after the shift (the zero point, when not folded into C) */
} mcus_rq_t;

static inline mcus_rq_t mcus_rq_make(int32_t mult, int32_t shift, int32_t zp)
{
    mcus_rq_t q;
    q.m = mult;
    q.z = 0;
#if MCUS_REQUANT_MODE == MCUS_REQUANT_TFLITE
    if (shift <= -1 && shift >= -31) {
        const int32_t r = -shift;
        uint32_t t;
        if (r > 24) {
            q.z = zp;
            zp = 0;
        }
        t = (uint32_t)(1 + 2 * zp) << (r - 1);
        q.s = r - 1;
        q.hi = (int32_t)t >> 1;
        q.lo = 0x40000000u | (t << 31);
        return q;
    }
#endif
    q.s = -1;
    q.z = zp;
    q.hi = 0;
    q.lo = (uint32_t)shift;
    return q;
}

/* requantize(acc) + zero point (the zero point was given to mcus_rq_make). */
static inline int32_t mcus_rq_apply(const mcus_rq_t *q, int32_t acc)
{
    if (q->s >= 0) {
        const int64_t c = (int64_t)(((uint64_t)(uint32_t)q->hi << 32) | q->lo);
        const int64_t v = (int64_t)acc * q->m + c;
        return ((int32_t)(v >> 32) >> q->s) + q->z;
    }
    return mcus_requantize(acc, q->m, (int32_t)q->lo) + q->z;
}

/*
 * The fast depthwise requantisation of one channel: mcus_requantize_depthwise(acc) + zp, both of
 * TFLite's roundings (k = 0: its vector loop, ties up; k = 2^31: its scalar loop, ties away), as
 * floor((acc * m + C - k + [acc >= 0] k) / 2^(31 + r)), C = 2^30 + (1 + 2 zp) 2^(30 + r), for
 * 1 <= r = -shift <= 24 (proof in dwconv2d_s8.c). Field order is read by dwconv2d_s8.c's assembly.
 */
typedef struct {
    int32_t m;        /* multiplier */
    int32_t hi;       /* hi : lo = C - k */
    int32_t s;        /* r - 1 */
    uint32_t lo;
    uint32_t k;       /* 2^31: ties away (TFLite's scalar loop); 0: ties up (its vector loop) */
} mcus_dwrq_t;

/* 1 if the fast form applies (else the caller uses mcus_requantize_depthwise). */
static inline int mcus_dwrq_make(mcus_dwrq_t *q, int32_t mult, int32_t shift, int32_t zp, int32_t vector_lane)
{
    q->m = mult;
    q->s = 0;
    q->hi = 0;
    q->lo = 0;
    q->k = 0;
#if MCUS_REQUANT_MODE != MCUS_REQUANT_SINGLE /* modes 0 and 1: SRDHM, then RDBPOT */
    if (shift <= -1 && shift >= -24) {
        const int32_t r = -shift;
#if MCUS_REQUANT_MODE == MCUS_REQUANT_TFLITE
        const uint32_t k = vector_lane ? 0u : 0x80000000u;
#else
        const uint32_t k = 0x80000000u;   /* RDBPOT on every channel */
        (void)vector_lane;
#endif
        /* |(1 + 2 zp) 2^(30 + r)| < 2^63 for r <= 24 */
        const int64_t c = ((int64_t)1 << 30) + (int64_t)(1 + 2 * zp) * ((int64_t)1 << (30 + r)) - (int64_t)k;
        q->s = r - 1;
        q->hi = (int32_t)(c >> 32);
        q->lo = (uint32_t)c;
        q->k = k;
        return 1;
    }
#else
    (void)shift, (void)zp, (void)vector_lane;
#endif
    return 0;
}

/* requantize_depthwise(acc) + zp (not saturated), for a q that mcus_dwrq_make accepted. */
static inline int32_t mcus_dwrq_apply(const mcus_dwrq_t *q, int32_t acc)
{
    const int64_t c = (int64_t)(((uint64_t)(uint32_t)q->hi << 32) | q->lo);
    const int64_t v = c + (int64_t)acc * q->m + (acc >= 0 ? (int64_t)q->k : 0);
    return (int32_t)(v >> 32) >> q->s;
}

static inline int32_t mcus_clamp_s8(int32_t v, int32_t lo, int32_t hi)
{
#if MCUS_FAST_DSP
    v = __ssat(v, 8);
#endif
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

#if MCUS_FAST_DSP

/* The fast requantisation of one accumulator (see mcus_rq_make), saturated to int8. */
#define MCUS_RQ_OUT(dst, acc, q)                                                                  \
    do {                                                                                          \
        uint32_t l_ = (q)->lo;                                                                    \
        int32_t h_ = (q)->hi;                                                                     \
        __asm__("smlal %0, %1, %2, %3" : "+r"(l_), "+r"(h_) : "r"(acc), "r"((q)->m));             \
        (dst) = (int8_t)__ssat((h_ >> (q)->s) + (q)->z, 8);                                       \
    } while (0)
#endif

/* Run the asm block CODE with the pointer T (the block's state in memory) in r0. The block may
 * use r1-r6, r8-r12 and lr, and saves r7 itself where it needs it (r7 can be the frame pointer).
 * The kernels' large asm loops (conv2d_s8's GEMM and one-pixel rows, conv1x1_s8) run this way. */
#define MCUS_ASM_R0(CODE, T)                                                                      \
    do {                                                                                          \
        register const void *r0_ __asm__("r0") = (T);                                             \
        __asm__ volatile(CODE : "+r"(r0_) : : "r1", "r2", "r3", "r4", "r5", "r6", "r8", "r9",     \
                         "r10", "r11", "r12", "lr", "cc", "memory");                              \
    } while (0)

#endif /* MCUS_FAST_H */
