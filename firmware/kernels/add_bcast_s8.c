/* Element-wise add (and subtract: the second input's multiplier negated) of two int8 tensors with
 * broadcasting, with TFLite ADD's input and output rescaling, run by run (mcus_binary_s8_runs): an
 * operand broadcast along a run is rescaled once per run. With TFLite's left shift of 20 the three
 * rescalings are mcus_small_mbqm (bit-exact); else mcus_add_s8_one's parts. */
#include "mcus_kernels.h"

#define SMALL_MAX_LEFT_SHIFT 20      /* (a + offset) << (left_shift + 1) < 2^30: sums fit SMMULR */

typedef struct {
    mcus_add_s8_params_t p;
    mcus_small_mbqm_t in, skip, out;           /* out includes the output offset */
} add_consts_t;

static int32_t input(const void *q, int32_t a)
{
    return mcus_add_s8_input(&((const add_consts_t *)q)->p, a);
}

static int32_t skip(const void *q, int32_t b)
{
    return mcus_add_s8_skip(&((const add_consts_t *)q)->p, b);
}

static int32_t sum(const void *q, int32_t sa, int32_t sb)
{
    return mcus_add_s8_sum(&((const add_consts_t *)q)->p, sa, sb);
}

static int32_t input_small(const void *q, int32_t a)
{
    const add_consts_t *c = (const add_consts_t *)q;
    return mcus_small_mbqm(&c->in, (int32_t)((uint32_t)(a + c->p.input_offset)
                                             << (c->p.left_shift + 1)));
}

static int32_t skip_small(const void *q, int32_t b)
{
    const add_consts_t *c = (const add_consts_t *)q;
    return mcus_small_mbqm(&c->skip, (int32_t)((uint32_t)(b + c->p.skip_offset)
                                               << (c->p.left_shift + 1)));
}

static int32_t sum_small(const void *q, int32_t sa, int32_t sb)
{
    return mcus_small_mbqm(&((const add_consts_t *)q)->out, (sa + sb) * 2);
}

void mcus_add_bcast_s8(const mcus_add_bcast_s8_params_t *p, const int8_t *a, const int8_t *b,
                       int8_t *output)
{
    const mcus_add_s8_params_t *q = &p->q;
    add_consts_t c;

    c.p = *q;                                  /* a local copy: output stores cannot alias it */
    if (q->left_shift >= 0 && q->left_shift <= SMALL_MAX_LEFT_SHIFT &&
        q->input_shift <= 0 && q->skip_shift <= 0 && q->output_shift <= 0 &&
        mcus_small_mbqm_prepare(&c.in, q->input_multiplier, q->input_shift, 0) &&
        mcus_small_mbqm_prepare(&c.skip, q->skip_multiplier, q->skip_shift, 0) &&
        mcus_small_mbqm_prepare(&c.out, q->output_multiplier, q->output_shift, q->output_offset)) {
        mcus_binary_s8_runs(&p->g, &c, a, b, output, q->act_min, q->act_max, input_small,
                            skip_small, sum_small, 1);
    } else {
        mcus_binary_s8_runs(&p->g, &c, a, b, output, q->act_min, q->act_max, input, skip, sum, 0);
    }
}
