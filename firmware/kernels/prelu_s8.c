/* Reference parametric ReLU of an int8 tensor, alpha broadcast against it, with TFLite PRELU's
 * two requantisations (mcus_prelu_s8_params_t). */
#include "mcus_kernels.h"

void mcus_prelu_s8(const mcus_prelu_s8_params_t *p, const int8_t *input, const int8_t *alpha,
                   int8_t *output)
{
    int32_t idx[MCUS_BCAST_MAX_DIMS] = {0};
    int32_t i, ia = 0, ib = 0;

    for (i = 0; i < p->g.len; ++i) {
        const int32_t x = input[ia] + p->input_offset;
        int32_t v = x >= 0
            ? mcus_multiply_by_quantized_multiplier(x, p->multiplier_pos, p->shift_pos)
            : mcus_multiply_by_quantized_multiplier(x * (alpha[ib] + p->alpha_offset),
                                                    p->multiplier_neg, p->shift_neg);
        v += p->output_offset;
        v = v < p->act_min ? p->act_min : v;
        output[i] = (int8_t)(v > p->act_max ? p->act_max : v);
        mcus_bcast_next(&p->g, idx, &ia, &ib);
    }
}
