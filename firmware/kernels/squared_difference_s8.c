/* Element-wise squared difference of two int8 tensors with broadcasting, with TFLite
 * SQUARED_DIFFERENCE's arithmetic (squared_difference.cc), run by run (mcus_binary_s8_runs): an
 * operand broadcast along a run (LayerNormalization's mean) is rescaled once per run.
 *
 * Each input: h = MultiplyByQuantizedMultiplierSmallerThanOneExp((v + offset) << 7, m, shift),
 * |h| <= 255 * 2^7 / 2 = 16,320 (its multiplier is at most 1/2); then d = h_a - h_b, |d| <= 32,640,
 * d^2 < 2^30, requantised the same way by the output multiplier, plus the output offset, clamped.
 * All three rescalings have positive multipliers and shifts <= 0, and their doubled operands
 * ((v + offset) << 8, 2 d^2 < 2^31) fit 32 bits, so where mcus_small_mbqm_prepare accepts them
 * (built for speed, right shifts <= 22) they are mcus_small_mbqm_pos (SMMLAR), else
 * mcus_multiply_by_quantized_multiplier. Both bit-exact with the interpreter on all 65,536 input
 * pairs (tests/test_ops_layernorm.py). */
#include "mcus_kernels.h"

#define SQDIFF_MAX_LEFT_SHIFT 7      /* TFLite's (always): keeps d^2 below 2^30 */

typedef struct {
    mcus_squared_difference_s8_params_t p;
    mcus_small_mbqm_t a, b, out;               /* out includes the output offset */
} sqdiff_consts_t;

static int32_t prep_a(const void *q, int32_t a)
{
    const mcus_squared_difference_s8_params_t *p = &((const sqdiff_consts_t *)q)->p;
    return mcus_multiply_by_quantized_multiplier(
        (int32_t)((uint32_t)(a + p->a_offset) << p->left_shift), p->a_multiplier, p->a_shift);
}

static int32_t prep_b(const void *q, int32_t b)
{
    const mcus_squared_difference_s8_params_t *p = &((const sqdiff_consts_t *)q)->p;
    return mcus_multiply_by_quantized_multiplier(
        (int32_t)((uint32_t)(b + p->b_offset) << p->left_shift), p->b_multiplier, p->b_shift);
}

static int32_t combine(const void *q, int32_t ha, int32_t hb)
{
    const mcus_squared_difference_s8_params_t *p = &((const sqdiff_consts_t *)q)->p;
    const int32_t d = ha - hb;
    return mcus_multiply_by_quantized_multiplier(d * d, p->output_multiplier, p->output_shift) +
           p->output_offset;
}

static int32_t prep_a_small(const void *q, int32_t a)
{
    const sqdiff_consts_t *c = (const sqdiff_consts_t *)q;
    return mcus_small_mbqm_pos(&c->a, (int32_t)((uint32_t)(a + c->p.a_offset)
                                                << (c->p.left_shift + 1)), 0);
}

static int32_t prep_b_small(const void *q, int32_t b)
{
    const sqdiff_consts_t *c = (const sqdiff_consts_t *)q;
    return mcus_small_mbqm_pos(&c->b, (int32_t)((uint32_t)(b + c->p.b_offset)
                                                << (c->p.left_shift + 1)), 0);
}

static int32_t combine_small(const void *q, int32_t ha, int32_t hb)
{
    const int32_t d = ha - hb;
    return mcus_small_mbqm_pos(&((const sqdiff_consts_t *)q)->out,
                               (int32_t)((uint32_t)(d * d) << 1), 0);
}

void mcus_squared_difference_s8(const mcus_squared_difference_s8_params_t *p, const int8_t *a,
                                const int8_t *b, int8_t *output)
{
    sqdiff_consts_t c;

    c.p = *p;                                  /* a local copy: output stores cannot alias it */
    if (p->left_shift >= 0 && p->left_shift <= SQDIFF_MAX_LEFT_SHIFT &&
        p->a_multiplier > 0 && p->b_multiplier > 0 && p->output_multiplier > 0 &&
        p->a_shift <= 0 && p->b_shift <= 0 && p->output_shift <= 0 &&
        mcus_small_mbqm_prepare(&c.a, p->a_multiplier, p->a_shift, 0) &&
        mcus_small_mbqm_prepare(&c.b, p->b_multiplier, p->b_shift, 0) &&
        mcus_small_mbqm_prepare(&c.out, p->output_multiplier, p->output_shift,
                                p->output_offset)) {
        mcus_binary_s8_runs(&p->g, &c, a, b, output, p->act_min, p->act_max, prep_a_small,
                            prep_b_small, combine_small, 1);
    } else {
        mcus_binary_s8_runs(&p->g, &c, a, b, output, p->act_min, p->act_max, prep_a, prep_b,
                            combine, 0);
    }
}
