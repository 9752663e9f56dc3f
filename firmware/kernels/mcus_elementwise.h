/*
 * mcus_elementwise.h - reference kernels of the element-wise op plug-ins
 * (mcusearch/convert/ops/elementwise.py): unary activations and binary arithmetic with
 * broadcasting. Conventions as in mcus_kernels.h.
 */
#ifndef MCUS_ELEMENTWISE_H
#define MCUS_ELEMENTWISE_H

#include <stdint.h>

/* ---- unary, float32: output[i] = f(input[i]) ------------------------------------------------ */

/* One parameter block for every float unary kernel; alpha is the op's own constant (LEAKY_RELU's
 * slope, GELU's approximate flag), unused by the others. */
typedef struct {
    int32_t len;
    float alpha;
} mcus_unary_f32_params_t;

void mcus_logistic_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
void mcus_tanh_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
/* x * relu6(x + 3) / 6 */
void mcus_hard_swish_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
/* x > 0 ? x : alpha * x */
void mcus_leaky_relu_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
/* alpha == 0: x / 2 * (1 + erf(x / sqrt 2)); else the tanh approximation */
void mcus_gelu_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
/* x > 0 ? x : exp(x) - 1 */
void mcus_elu_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
void mcus_exp_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
void mcus_log_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
void mcus_abs_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);

/* ---- unary, int8: a look-up table ----------------------------------------------------------- */

/* output[i] = table_i[input[i] + 128], table_i = table for i < split, tail_table for the rest.
 * The generator fills the tables from TFLite's own kernel run on every input value at every
 * position of the tensor (two tables where TFLite's vector loop and scalar tail round
 * differently), so the kernel is exact by construction. */
typedef struct {
    int32_t len;
    int32_t split;
    const int8_t *table;        /* [256] */
    const int8_t *tail_table;   /* [256] */
} mcus_lut_s8_params_t;

void mcus_lut_s8(const mcus_lut_s8_params_t *p, const int8_t *input, int8_t *output);

/* ---- binary with broadcasting --------------------------------------------------------------- */

#define MCUS_BCAST_MAX_DIMS 6

/* The output's dimensions (outermost first, batch dropped, adjacent dimensions merged where both
 * operands allow) and each operand's element stride along them (0: broadcast). */
typedef struct {
    int32_t len;                               /* output elements */
    int32_t rank;
    int32_t dims[MCUS_BCAST_MAX_DIMS];
    int32_t a_stride[MCUS_BCAST_MAX_DIMS];
    int32_t b_stride[MCUS_BCAST_MAX_DIMS];
} mcus_bcast_t;

/* Step the output coordinate `idx` (zeroed before the first element) to the next element and the
 * operands' offsets *ia, *ib with it. */
static inline void mcus_bcast_next(const mcus_bcast_t *g, int32_t *idx, int32_t *ia, int32_t *ib)
{
    int32_t d;

    for (d = g->rank - 1; d >= 0; --d) {
        *ia += g->a_stride[d];
        *ib += g->b_stride[d];
        if (++idx[d] < g->dims[d]) {
            return;
        }
        *ia -= g->a_stride[d] * g->dims[d];
        *ib -= g->b_stride[d] * g->dims[d];
        idx[d] = 0;
    }
}

typedef struct {
    mcus_bcast_t g;
    float act_min, act_max;
} mcus_binary_f32_params_t;

/* output = clamp(a OP b) over the broadcast shape; a or b may be a constant array. */
void mcus_add_bcast_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                        float *output);
void mcus_sub_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b, float *output);
void mcus_mul_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b, float *output);
void mcus_div_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b, float *output);
/* PRELU: a >= 0 ? a : a * b (b: alpha) */
void mcus_prelu_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                    float *output);
void mcus_maximum_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                      float *output);
void mcus_minimum_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                      float *output);

/* int8 ADD and SUB with broadcasting: mcus_add_s8_one (mcus_kernels.h) per element. SUB is ADD
 * with the second input's multiplier negated, as TFLite computes it. */
typedef struct {
    mcus_bcast_t g;
    mcus_add_s8_params_t q;                     /* q.len unused */
} mcus_add_bcast_s8_params_t;

void mcus_add_bcast_s8(const mcus_add_bcast_s8_params_t *p, const int8_t *a, const int8_t *b,
                       int8_t *output);

/* int8 MUL (TFLite): clamp(MultiplyByQuantizedMultiplier((a + a_off) * (b + b_off),
 * multiplier, shift) + output_offset), multiplier = s_a s_b / s_out. */
typedef struct {
    mcus_bcast_t g;
    int32_t a_offset, b_offset;                 /* -zero points */
    int32_t output_offset;
    int32_t multiplier, shift;                  /* TFLite convention: shift > 0 is a left shift */
    int32_t act_min, act_max;
} mcus_mul_s8_params_t;

/* TFLite's MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31) with
 * SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT (ties away from zero): what the
 * interpreter's int8 MUL (every path) and PRELU compute. */
static inline int32_t mcus_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                                            int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return mcus_rounding_divide_by_pot(
        mcus_sat_round_doubling_high_mul((int32_t)((uint32_t)x << left), multiplier), right);
}

static inline int32_t mcus_mul_s8_one(const mcus_mul_s8_params_t *p, int32_t a, int32_t b)
{
    int32_t v = mcus_multiply_by_quantized_multiplier((a + p->a_offset) * (b + p->b_offset),
                                                      p->multiplier, p->shift);
    v += p->output_offset;
    v = v < p->act_min ? p->act_min : v;
    return v > p->act_max ? p->act_max : v;
}

void mcus_mul_s8(const mcus_mul_s8_params_t *p, const int8_t *a, const int8_t *b, int8_t *output);

/* int8 PRELU (TFLite): x = input + input_offset; x >= 0: requantised by s_in / s_out, else
 * x * (alpha + alpha_offset) requantised by s_in s_alpha / s_out; plus output_offset, clamped. */
typedef struct {
    mcus_bcast_t g;                             /* a: the input, b: alpha */
    int32_t input_offset, alpha_offset;         /* -zero points */
    int32_t output_offset;
    int32_t multiplier_pos, shift_pos;
    int32_t multiplier_neg, shift_neg;
    int32_t act_min, act_max;
} mcus_prelu_s8_params_t;

void mcus_prelu_s8(const mcus_prelu_s8_params_t *p, const int8_t *input, const int8_t *alpha,
                   int8_t *output);

/* int8 MAXIMUM / MINIMUM: inputs and output share one quantisation (TFLite's converter ties
 * them), so the result is the larger / smaller int8 value. */
typedef struct {
    mcus_bcast_t g;
} mcus_minmax_s8_params_t;

void mcus_maximum_s8(const mcus_minmax_s8_params_t *p, const int8_t *a, const int8_t *b,
                     int8_t *output);
void mcus_minimum_s8(const mcus_minmax_s8_params_t *p, const int8_t *a, const int8_t *b,
                     int8_t *output);

#endif /* MCUS_ELEMENTWISE_H */
