/* Element-wise add (and subtract: the second input's multiplier negated) of two int8 tensors with
 * broadcasting, with TFLite ADD's input and output rescaling, run by run (mcus_binary_s8_runs): an
 * operand broadcast along a run is rescaled once per run. */
#include "mcus_kernels.h"

static int32_t input(const void *q, int32_t a)
{
    return mcus_add_s8_input((const mcus_add_s8_params_t *)q, a);
}

static int32_t skip(const void *q, int32_t b)
{
    return mcus_add_s8_skip((const mcus_add_s8_params_t *)q, b);
}

static int32_t sum(const void *q, int32_t sa, int32_t sb)
{
    return mcus_add_s8_sum((const mcus_add_s8_params_t *)q, sa, sb);
}

void mcus_add_bcast_s8(const mcus_add_bcast_s8_params_t *p, const int8_t *a, const int8_t *b,
                       int8_t *output)
{
    const mcus_add_s8_params_t q = p->q;   /* a local copy: output stores cannot alias it */
    mcus_binary_s8_runs(&p->g, &q, a, b, output, q.act_min, q.act_max, input, skip, sum);
}
