/* Element-wise product of two int8 tensors with broadcasting, with TFLite MUL's requantisation,
 * run by run (mcus_binary_s8_runs). Within mcus_small_mbqm's bounds (in practice always:
 * 2^-23 <= s_a s_b / s_out < 2^15) the requantisation is mcus_small_mbqm, its left shift applied
 * to the second operand; else mcus_multiply_by_quantized_multiplier. Both are bit-exact with TFLite
 * (tests/test_ops_elementwise.py: all 65,536 input pairs, every run layout). */
#include "mcus_kernels.h"

typedef struct {
    int32_t a_offset, b_offset, output_offset;
    mcus_small_mbqm_t rq;                      /* the output offset included */
    int32_t multiplier, shift;
} mul_consts_t;

static int32_t prep_a(const void *q, int32_t a)
{
    return a + ((const mul_consts_t *)q)->a_offset;
}

/* b + b_offset, times 2^(left shift + 1): the product is SMMULR's operand */
static int32_t prep_b_shifted(const void *q, int32_t b)
{
    const mul_consts_t *c = (const mul_consts_t *)q;
    return (int32_t)((uint32_t)(b + c->b_offset) << c->rq.left1);
}

static int32_t combine_small(const void *q, int32_t pa, int32_t pb)
{
    const mul_consts_t *c = (const mul_consts_t *)q;
    return mcus_small_mbqm(&c->rq, pa * pb);
}

static int32_t prep_b(const void *q, int32_t b)
{
    return b + ((const mul_consts_t *)q)->b_offset;
}

static int32_t combine(const void *q, int32_t pa, int32_t pb)
{
    const mul_consts_t *c = (const mul_consts_t *)q;
    return mcus_multiply_by_quantized_multiplier(pa * pb, c->multiplier, c->shift) +
           c->output_offset;
}

void mcus_mul_s8(const mcus_mul_s8_params_t *p, const int8_t *a, const int8_t *b, int8_t *output)
{
    mul_consts_t c;

    c.a_offset = p->a_offset;
    c.b_offset = p->b_offset;
    c.output_offset = p->output_offset;
    c.multiplier = p->multiplier;
    c.shift = p->shift;
    if (mcus_small_mbqm_prepare(&c.rq, p->multiplier, p->shift, p->output_offset)) {
        mcus_binary_s8_runs(&p->g, &c, a, b, output, p->act_min, p->act_max, prep_a,
                            prep_b_shifted, combine_small, 1);
    } else {
        mcus_binary_s8_runs(&p->g, &c, a, b, output, p->act_min, p->act_max, prep_a, prep_b,
                            combine, 0);
    }
}
