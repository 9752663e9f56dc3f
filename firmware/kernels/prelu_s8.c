/* Parametric ReLU of an int8 tensor, alpha broadcast against it, with TFLite PRELU's two
 * requantisations (mcus_prelu_s8_params_t), run by run (mcus_binary_s8_runs); mcus_small_mbqm
 * within its bounds, else mcus_multiply_by_quantized_multiplier. */
#include "mcus_kernels.h"

typedef struct {
    mcus_prelu_s8_params_t p;
    mcus_small_mbqm_t pos, neg;                /* the output offset included */
} prelu_consts_t;

static int32_t prep_input(const void *q, int32_t v)
{
    return v + ((const prelu_consts_t *)q)->p.input_offset;
}

static int32_t prep_alpha(const void *q, int32_t v)
{
    return v + ((const prelu_consts_t *)q)->p.alpha_offset;
}

static int32_t prelu_small(const void *q, int32_t x, int32_t al)
{
    const prelu_consts_t *c = (const prelu_consts_t *)q;
    return x >= 0 ? mcus_small_mbqm(&c->pos, (int32_t)((uint32_t)x << c->pos.left1))
                  : mcus_small_mbqm(&c->neg, (int32_t)((uint32_t)(x * al) << c->neg.left1));
}

static int32_t prelu(const void *q, int32_t x, int32_t al)
{
    const mcus_prelu_s8_params_t *p = &((const prelu_consts_t *)q)->p;
    const int32_t v = x >= 0
        ? mcus_multiply_by_quantized_multiplier(x, p->multiplier_pos, p->shift_pos)
        : mcus_multiply_by_quantized_multiplier(x * al, p->multiplier_neg, p->shift_neg);
    return v + p->output_offset;
}

void mcus_prelu_s8(const mcus_prelu_s8_params_t *p, const int8_t *input, const int8_t *alpha,
                   int8_t *output)
{
    prelu_consts_t c;

    c.p = *p;                                  /* a local copy: output stores cannot alias it */
    if (mcus_small_mbqm_prepare(&c.pos, p->multiplier_pos, p->shift_pos, p->output_offset) &&
        mcus_small_mbqm_prepare(&c.neg, p->multiplier_neg, p->shift_neg, p->output_offset)) {
        mcus_binary_s8_runs(&p->g, &c, input, alpha, output, p->act_min, p->act_max, prep_input,
                            prep_alpha, prelu_small, 1);
    } else {
        mcus_binary_s8_runs(&p->g, &c, input, alpha, output, p->act_min, p->act_max, prep_input,
                            prep_alpha, prelu, 0);
    }
}
