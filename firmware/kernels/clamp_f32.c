/* Reference element-wise clamp, float32: a ReLU (or ReLU6) that could not be fused. */
#include "mcus_kernels.h"

void mcus_clamp_f32(const mcus_clamp_f32_params_t *p, const float *input, float *output)
{
    int32_t i;

    for (i = 0; i < p->len; ++i) {
        float v = input[i];
        if (v < p->act_min) {
            v = p->act_min;
        }
        if (v > p->act_max) {
            v = p->act_max;
        }
        output[i] = v;
    }
}
