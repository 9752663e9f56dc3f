/* Reference leaky ReLU, float32: x > 0 ? x : alpha * x. */
#include "mcus_kernels.h"

void mcus_leaky_relu_f32(const mcus_unary_f32_params_t *p, const float *input, float *output)
{
    int32_t i;

    for (i = 0; i < p->len; ++i) {
        const float x = input[i];
        output[i] = x > 0.0f ? x : p->alpha * x;
    }
}
