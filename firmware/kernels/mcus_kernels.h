/*
 * mcus_kernels.h - the reference kernels of the mcusearch C generator.
 *
 * Conventions (every kernel):
 *   - activations are NHWC with batch 1 (so H x W x C, channels fastest); a flat vector is 1 x 1 x N;
 *   - conv filters are OHWI (TFLite's layout), dense weights are [out][in] (row = output neuron);
 *   - int8 tensors use TFLite's affine quantisation: real = scale * (q - zero_point); weights are
 *     symmetric (zero point 0); biases are int32 with scale input_scale * weight_scale;
 *   - the fused activation is a clamp [act_min, act_max] (float units, or quantised units that
 *     already include the output zero point for int8);
 *   - padding: pad_top/pad_left are the rows/columns of padding before the input (TF puts any
 *     extra one at the bottom/right, so nothing else is needed); padded pixels contribute nothing;
 *   - no allocation, no globals, no state: the caller owns every buffer; input and output must
 *     not overlap.
 *
 * These are the correctness oracle: plain loops in the most readable order. Fast kernels must keep
 * the same signatures and produce bit-identical int8 results.
 *
 * Requantisation (int32 accumulator -> int8): acc * multiplier * 2^(shift - 31), rounded in one of
 * three ways, chosen at compile time with MCUS_REQUANT_MODE. They differ by 1 LSB on rare ties only:
 *   0 (default) MCUS_REQUANT_TFLITE: SaturatingRoundingDoublingHighMul, then a rounding right shift
 *       with ties rounded up (toward +inf). This is what TFLite's built-in optimised kernels (ruy)
 *       compute for int8 CONV_2D and FULLY_CONNECTED: checked bit-exact against
 *       tf.lite.Interpreter(..., experimental_op_resolver_type=BUILTIN_WITHOUT_DEFAULT_DELEGATES)
 *       in TF 2.21, and the generator reads its expected values there.
 *   1 MCUS_REQUANT_GEMMLOWP: SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT (ties away
 *       from zero): TFLite's reference MultiplyByQuantizedMultiplier, TFLite Micro, CMSIS-NN.
 *   2 MCUS_REQUANT_SINGLE: one 64-bit multiply, round half up (TFLITE_SINGLE_ROUNDING,
 *       CMSIS_NN_USE_SINGLE_ROUNDING).
 * Measured in TF 2.21 (x86-64, AVX2): the interpreter's default resolver hands int8 CONV_2D and
 * FULLY_CONNECTED to XNNPACK, which requantises in float32 (round half to even) - none of the three;
 * its reference kernels (BUILTIN_REF) matched mode 1 for CONV_2D but mode 2 for FULLY_CONNECTED.
 */
#ifndef MCUS_KERNELS_H
#define MCUS_KERNELS_H

#include <stdint.h>

#define MCUS_REQUANT_TFLITE 0
#define MCUS_REQUANT_GEMMLOWP 1
#define MCUS_REQUANT_SINGLE 2
#ifndef MCUS_REQUANT_MODE
#define MCUS_REQUANT_MODE MCUS_REQUANT_TFLITE
#endif

/* ---- requantisation ------------------------------------------------------------------------ */

/* gemmlowp SaturatingRoundingDoublingHighMul: (a * b + 2^30) >> 31 without overflow, ties up. */
static inline int32_t mcus_sat_round_doubling_high_mul(int32_t a, int32_t b)
{
    int64_t ab, nudged;
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudged = ab + (ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30)));
    /* division by 2^31 truncating toward zero, as in C */
    return (int32_t)(nudged >= 0 ? (nudged >> 31) : -((-nudged) >> 31));
}

/* gemmlowp RoundingDivideByPOT: round(x / 2^exponent), ties away from zero. Right shifts of
 * negative numbers are arithmetic (GCC and Clang guarantee it). */
static inline int32_t mcus_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* round(x / 2^exponent), ties up (ARM SRSHL / ruy). */
static inline int32_t mcus_rounding_shift_right(int32_t x, int32_t exponent)
{
    if (exponent <= 0) {
        return x;
    }
    return (int32_t)(((int64_t)x + ((int64_t)1 << (exponent - 1))) >> exponent);
}

/*
 * acc * multiplier * 2^(shift - 31), rounded as selected by MCUS_REQUANT_MODE. `multiplier` is in
 * [2^30, 2^31) (or 0) and `shift` follows TFLite's sign convention: > 0 shifts left, < 0 right.
 */
static inline int32_t mcus_requantize(int32_t acc, int32_t multiplier, int32_t shift)
{
#if MCUS_REQUANT_MODE == MCUS_REQUANT_SINGLE
    const int32_t total_shift = 31 - shift;
    const int64_t round = (int64_t)1 << (total_shift - 1);
    return (int32_t)(((int64_t)acc * (int64_t)multiplier + round) >> total_shift);
#else
    const int32_t left_shift = shift > 0 ? shift : 0;
    const int32_t right_shift = shift > 0 ? 0 : -shift;
    const int32_t high = mcus_sat_round_doubling_high_mul((int32_t)((uint32_t)acc << left_shift),
                                                          multiplier);
#if MCUS_REQUANT_MODE == MCUS_REQUANT_GEMMLOWP
    return mcus_rounding_divide_by_pot(high, right_shift);
#else
    return mcus_rounding_shift_right(high, right_shift);
#endif
#endif
}

/*
 * The requantisation of int8 DEPTHWISE_CONV_2D, per channel. TFLite's built-in depthwise kernel
 * (optimized_integer_ops::DepthwiseConvPerChannel, DepthwiseConvGeneral) requantises the channels
 * [0, 8 floor(C / 8)) in its 8-lane vector loop - SaturatingRoundingDoublingHighMul, then a
 * rounding shift with ties up: mcus_requantize - and the last C % 8 channels in its scalar loop,
 * MultiplyByQuantizedMultiplier: gemmlowp rounding, ties away from zero. `vector_lane` says which
 * (the generators pass c < vector_channels, the bound computed in
 * mcusearch.convert.graph.tflite_depthwise_vector_channels). Checked bit-exact against the
 * interpreter in TF 2.21 (x86-64) for 1 to 20 channels. In modes 1 and 2 it is mcus_requantize.
 */
static inline int32_t mcus_requantize_depthwise(int32_t acc, int32_t multiplier, int32_t shift,
                                                int32_t vector_lane)
{
#if MCUS_REQUANT_MODE == MCUS_REQUANT_TFLITE
    if (!vector_lane) {
        const int32_t left_shift = shift > 0 ? shift : 0;
        const int32_t right_shift = shift > 0 ? 0 : -shift;
        return mcus_rounding_divide_by_pot(
            mcus_sat_round_doubling_high_mul((int32_t)((uint32_t)acc << left_shift), multiplier),
            right_shift);
    }
#else
    (void)vector_lane;
#endif
    return mcus_requantize(acc, multiplier, shift);
}

/* gemmlowp MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0), as TFLite's int8 ADD
 * rescales its inputs and output: SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT. */
static inline int32_t mcus_rescale_add(int32_t x, int32_t multiplier, int32_t shift)
{
    return mcus_rounding_divide_by_pot(mcus_sat_round_doubling_high_mul(x, multiplier), -shift);
}

/* int8 average: round(sum / count), ties away from zero (TFLite's AVERAGE_POOL_2D), count > 0. */
static inline int32_t mcus_average_s8(int32_t sum, int32_t count)
{
    return sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
}

/* ---- parameters ---------------------------------------------------------------------------- */

typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t kernel_h, kernel_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
} mcus_conv2d_geom_t;

typedef struct {
    mcus_conv2d_geom_t g;
    float act_min, act_max;
} mcus_conv2d_f32_params_t;

typedef struct {
    mcus_conv2d_geom_t g;
    int32_t input_offset;        /* -input_zero_point */
    int32_t output_offset;       /* output_zero_point */
    int32_t act_min, act_max;    /* quantised, within [-128, 127] */
    const int32_t *multiplier;   /* [out_c] */
    const int32_t *shift;        /* [out_c] */
} mcus_conv2d_s8_params_t;

/* Depthwise convolution: out_c = in_c * depth_multiplier, output channel c reads input channel
 * c / depth_multiplier (0 counts as 1); the filter is [1][kernel_h][kernel_w][out_c] (TFLite's
 * layout). */
typedef struct {
    mcus_conv2d_geom_t g;
    float act_min, act_max;
    int32_t depth_multiplier;
} mcus_depthwise_conv2d_f32_params_t;

typedef struct {
    mcus_conv2d_geom_t g;
    int32_t input_offset;        /* -input_zero_point */
    int32_t output_offset;       /* output_zero_point */
    int32_t act_min, act_max;
    const int32_t *multiplier;   /* [channels] */
    const int32_t *shift;        /* [channels] */
    int32_t vector_channels;     /* channels [0, vector_channels) round as TFLite's vector loop
                                  * (see mcus_requantize_depthwise) */
    int32_t depth_multiplier;
} mcus_depthwise_conv2d_s8_params_t;

typedef struct {
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t pool_h, pool_w;
    int32_t stride_h, stride_w;
    int32_t pad_top, pad_left;
} mcus_pool2d_geom_t;

typedef struct {
    mcus_pool2d_geom_t g;
    float act_min, act_max;
} mcus_maxpool2d_f32_params_t;

typedef struct {
    mcus_pool2d_geom_t g;
    int32_t act_min, act_max;    /* quantised; input and output share scale and zero point */
} mcus_maxpool2d_s8_params_t;

typedef struct {
    mcus_pool2d_geom_t g;
    float act_min, act_max;
} mcus_avgpool2d_f32_params_t;

typedef struct {
    mcus_pool2d_geom_t g;
    int32_t act_min, act_max;    /* quantised; input and output share scale and zero point */
} mcus_avgpool2d_s8_params_t;

typedef struct {
    int32_t in_features, out_features;
    float act_min, act_max;
} mcus_dense_f32_params_t;

typedef struct {
    int32_t in_features, out_features;
    int32_t input_offset;        /* -input_zero_point */
    int32_t output_offset;       /* output_zero_point */
    int32_t act_min, act_max;
    int32_t per_channel;         /* 0: multiplier[0]/shift[0] for every output; 1: one per output */
    const int32_t *multiplier;
    const int32_t *shift;
} mcus_dense_s8_params_t;

typedef struct {
    int32_t len;
    float act_min, act_max;
} mcus_add_f32_params_t;

/* int8 ADD (TFLite): out = clamp(rescale(rescale((a + a_off) << left_shift, a_mult, a_shift)
 *                                        + rescale((b + b_off) << left_shift, b_mult, b_shift),
 *                                        out_mult, out_shift) + output_offset) */
typedef struct {
    int32_t len;
    int32_t input_offset, skip_offset;   /* -zero points */
    int32_t output_offset;
    int32_t left_shift;
    int32_t input_multiplier, input_shift;
    int32_t skip_multiplier, skip_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} mcus_add_s8_params_t;

/* int8 ADD in three parts (the broadcasting kernel computes a broadcast operand's part once):
 * each input rescaled to the common scale, then their sum to the output's. */
static inline int32_t mcus_add_s8_input(const mcus_add_s8_params_t *p, int32_t a)
{
    return mcus_rescale_add((int32_t)((uint32_t)(a + p->input_offset) << p->left_shift),
                            p->input_multiplier, p->input_shift);
}

static inline int32_t mcus_add_s8_skip(const mcus_add_s8_params_t *p, int32_t b)
{
    return mcus_rescale_add((int32_t)((uint32_t)(b + p->skip_offset) << p->left_shift),
                            p->skip_multiplier, p->skip_shift);
}

static inline int32_t mcus_add_s8_sum(const mcus_add_s8_params_t *p, int32_t sa, int32_t sb)
{
    return mcus_rescale_add(sa + sb, p->output_multiplier, p->output_shift) + p->output_offset;
}

/* One element of int8 ADD (shared by the reference and the fast kernels). */
static inline int32_t mcus_add_s8_one(const mcus_add_s8_params_t *p, int32_t a, int32_t b)
{
    int32_t v = mcus_add_s8_sum(p, mcus_add_s8_input(p, a), mcus_add_s8_skip(p, b));
    v = v < p->act_min ? p->act_min : v;
    return v > p->act_max ? p->act_max : v;
}

typedef struct {
    int32_t len;
} mcus_softmax_f32_params_t;

/* int8 SOFTMAX (TFLite's optimized_ops::Softmax, float look-up table): table[255 - v] =
 * expf(-input_scale * beta * v), computed by the generator with the C library's expf as TFLite
 * does; output_scale and zero_point are the output's (1/256 and -128 for TFLite's converter). */
typedef struct {
    int32_t len;
    const float *table;          /* [256] */
    float output_scale;
    int32_t zero_point;
} mcus_softmax_s8_params_t;

/* One vector of int8 softmax (shared by the reference and the fast kernels; may run in place):
 * the float sum of table entries in index order, 1 / (sum * output_scale), each probability
 * rounded half away from zero (std::round; p >= 0 and p - trunc(p) is exact in float), the zero
 * point, the int8 clamp - the interpreter's operations in its order, so the same floats. */
static inline void mcus_softmax_s8_row(const mcus_softmax_s8_params_t *p, const int8_t *in,
                                       int8_t *out)
{
    const float *t;
    float sum = 0.0f, inv;
    int32_t j, max_v = -128;

    for (j = 0; j < p->len; ++j) {
        max_v = in[j] > max_v ? in[j] : max_v;
    }
    t = p->table + 255 - max_v;          /* t[x] = exp(input_scale * beta * (x - max)), x <= max */
    for (j = 0; j < p->len; ++j) {
        sum += t[in[j]];
    }
    inv = 1.0f / (sum * p->output_scale);
    for (j = 0; j < p->len; ++j) {
        const float prob = t[in[j]] * inv;
        int32_t q = (int32_t)prob;
        q += (prob - (float)q) >= 0.5f;
        q += p->zero_point;
        out[j] = (int8_t)(q < -128 ? -128 : q > 127 ? 127 : q);
    }
}

typedef struct {
    int32_t len;
    float act_min, act_max;
} mcus_clamp_f32_params_t;

/* ---- kernels ------------------------------------------------------------------------------- */

/* bias may be NULL (no bias). */
void mcus_conv2d_f32(const mcus_conv2d_f32_params_t *p, const float *input, const float *filter,
                     const float *bias, float *output);
void mcus_conv2d_s8(const mcus_conv2d_s8_params_t *p, const int8_t *input, const int8_t *filter,
                    const int32_t *bias, int8_t *output);
/*
 * TRANSPOSE_CONV (transpose_conv_*.c), by stride phase: the output pixels (py + stride_h qy,
 * px + stride_w qx) of phase (py, px) read the phase's taps, tap t from input pixel (qy + dy,
 * qx + dx). `taps`, per phase (py then px ascending): the tap count n; the rows [y0, y1) and the
 * columns [x0, x1) of the phase whose taps all lie inside the input; then n triples (dy, dx,
 * offset), offset = (dy in_w + dx) in_c. The filter: per phase, the output channels in blocks,
 * float32 of 4 as [tap][in_c][4], int8 of 2 as [tap][chunk][2][2 words] (a chunk of 4 input
 * channels as the int16 pairs (c0, c2), (c1, c3), zeros past in_c), then each channel past the
 * last block as [tap][in_c] or [tap][chunk][2 words] (mcusearch/convert/ops/transpose_conv.py
 * lays them out). The geometry's padding is TFLite's (computed on the output size); its kernel size is
 * not used. bias may be NULL.
 */
typedef struct {
    mcus_conv2d_geom_t g;
    float act_min, act_max;
    const int32_t *taps;
} mcus_transpose_conv_f32_params_t;

typedef struct {
    mcus_conv2d_geom_t g;
    int32_t input_offset;        /* -input_zero_point */
    int32_t output_offset;       /* output_zero_point */
    int32_t act_min, act_max;
    const int32_t *multiplier;   /* [out_c] */
    const int32_t *shift;        /* [out_c] */
    const int32_t *taps;
    const int32_t *rq;           /* NULL, or per output channel a mcus_small_mbqm_t (5 words,
                                  * mcus_elementwise.h; the output offset in its bias), where every
                                  * sum is below 2^30 in magnitude and every shift <= -1 */
    uint32_t *col;               /* RAM for two pixels' columns: each the most taps of a phase
                                  * x ceil(in_c / 4) x 2 words */
} mcus_transpose_conv_s8_params_t;

void mcus_transpose_conv_f32(const mcus_transpose_conv_f32_params_t *p, const float *input,
                             const float *filter, const float *bias, float *output);
void mcus_transpose_conv_s8(const mcus_transpose_conv_s8_params_t *p, const int8_t *input,
                            const int32_t *filter, const int32_t *bias, int8_t *output);

/*
 * BATCH_MATMUL (batch_matmul_*.c; Keras MultiHeadAttention, tf.linalg.matmul): for every batch
 * index of the output, out[m][n] = sum over k < depth of lhs(m, k) rhs(k, n), m < rows,
 * n < cols, the output [batch...][rows][cols] row-major. lhs(m, k) is element
 * m * lhs_row + k * lhs_depth of the batch's lhs matrix, rhs(k, n) element
 * k * rhs_depth + n * rhs_col of its rhs matrix: the steps say how each is stored (adj_x: lhs as
 * [depth][rows], adj_y: rhs as [cols][depth]). The batch dimensions, outermost first and 1 where
 * the output has fewer, step each operand's matrix by lhs_batch / rhs_batch elements, 0 where that
 * operand broadcasts (has size 1 there). No fused activation. int8 is TFLite's arithmetic:
 * (lhs + lhs_offset) (rhs + rhs_offset) summed in int32, MultiplyByQuantizedMultiplier (ties
 * away from zero), + output_offset, clamped to [-128, 127]
 * (mcusearch/convert/ops/batch_matmul.py).
 */
#define MCUS_BMM_MAX_BATCH 3
typedef struct {
    int32_t batch[MCUS_BMM_MAX_BATCH];       /* the output's batch dimensions */
    int32_t lhs_batch[MCUS_BMM_MAX_BATCH];   /* lhs elements per step of each (0: broadcast) */
    int32_t rhs_batch[MCUS_BMM_MAX_BATCH];
    int32_t rows, cols, depth;
    int32_t lhs_row, lhs_depth;              /* lhs element steps along m and k */
    int32_t rhs_depth, rhs_col;              /* rhs element steps along k and n */
} mcus_bmm_geom_t;

typedef struct {
    mcus_bmm_geom_t g;
} mcus_batch_matmul_f32_params_t;

typedef struct {
    mcus_bmm_geom_t g;
    int32_t lhs_offset, rhs_offset;          /* -zero points */
    int32_t output_offset;                   /* output zero point */
    int32_t multiplier, shift;               /* of s_lhs s_rhs / s_out, TFLite's convention */
} mcus_batch_matmul_s8_params_t;

/* The number of output batches (matrices) of g. */
static inline int32_t mcus_bmm_batches(const mcus_bmm_geom_t *g)
{
    int32_t d, n = 1;
    for (d = 0; d < MCUS_BMM_MAX_BATCH; ++d) {
        n *= g->batch[d];
    }
    return n;
}

/* The element offsets of output batch b's lhs and rhs matrices. */
static inline void mcus_bmm_batch(const mcus_bmm_geom_t *g, int32_t b, int32_t *lhs, int32_t *rhs)
{
    int32_t d;
    *lhs = 0;
    *rhs = 0;
    for (d = MCUS_BMM_MAX_BATCH - 1; d >= 0; --d) {
        const int32_t i = b % g->batch[d];
        b /= g->batch[d];
        *lhs += i * g->lhs_batch[d];
        *rhs += i * g->rhs_batch[d];
    }
}

void mcus_batch_matmul_f32(const mcus_batch_matmul_f32_params_t *p, const float *lhs,
                           const float *rhs, float *output);
void mcus_batch_matmul_s8(const mcus_batch_matmul_s8_params_t *p, const int8_t *lhs,
                          const int8_t *rhs, int8_t *output);

/* Depthwise convolution (any depth multiplier); bias may be NULL. */
void mcus_depthwise_conv2d_f32(const mcus_depthwise_conv2d_f32_params_t *p, const float *input,
                               const float *filter, const float *bias, float *output);
void mcus_depthwise_conv2d_s8(const mcus_depthwise_conv2d_s8_params_t *p, const int8_t *input,
                              const int8_t *filter, const int32_t *bias, int8_t *output);

/* Average pooling over the window's cells inside the input (padding is not counted). */
void mcus_avgpool2d_f32(const mcus_avgpool2d_f32_params_t *p, const float *input, float *output);
void mcus_avgpool2d_s8(const mcus_avgpool2d_s8_params_t *p, const int8_t *input, int8_t *output);

void mcus_maxpool2d_f32(const mcus_maxpool2d_f32_params_t *p, const float *input, float *output);
void mcus_maxpool2d_s8(const mcus_maxpool2d_s8_params_t *p, const int8_t *input, int8_t *output);

void mcus_dense_f32(const mcus_dense_f32_params_t *p, const float *input, const float *weights,
                    const float *bias, float *output);
void mcus_dense_s8(const mcus_dense_s8_params_t *p, const int8_t *input, const int8_t *weights,
                   const int32_t *bias, int8_t *output);

/* output[i] = clamp(input[i] + skip[i]): a residual connection (int8: TFLite ADD rescaling). */
void mcus_add_f32(const mcus_add_f32_params_t *p, const float *input, const float *skip,
                  float *output);
void mcus_add_s8(const mcus_add_s8_params_t *p, const int8_t *input, const int8_t *skip,
                 int8_t *output);

/* output[i] = exp(input[i] - max) / sum_j exp(input[j] - max) */
void mcus_softmax_f32(const mcus_softmax_f32_params_t *p, const float *input, float *output);
void mcus_softmax_s8(const mcus_softmax_s8_params_t *p, const int8_t *input, int8_t *output);

/* output[i] = min(max(input[i], act_min), act_max): a ReLU that could not be fused. */
void mcus_clamp_f32(const mcus_clamp_f32_params_t *p, const float *input, float *output);

/* The kernels of op plug-ins (mcusearch/convert/ops), one header per op family. */
#include "mcus_elementwise.h"
#include "mcus_shape.h"

#endif /* MCUS_KERNELS_H */
