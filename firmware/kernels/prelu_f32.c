/* Reference parametric ReLU of a float32 tensor, alpha broadcast against it:
 * a >= 0 ? a : a * alpha. */
#include "mcus_kernels.h"

void mcus_prelu_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                    float *output)
{
    int32_t idx[MCUS_BCAST_MAX_DIMS] = {0};
    int32_t i, ia = 0, ib = 0;

    for (i = 0; i < p->g.len; ++i) {
        float v = a[ia] >= 0.0f ? a[ia] : a[ia] * b[ib];
        v = v < p->act_min ? p->act_min : v;
        output[i] = v > p->act_max ? p->act_max : v;
        mcus_bcast_next(&p->g, idx, &ia, &ib);
    }
}
