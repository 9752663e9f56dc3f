/* Reference hard-swish, float32: x * relu6(x + 3) / 6. */
#include "mcus_kernels.h"

void mcus_hard_swish_f32(const mcus_unary_f32_params_t *p, const float *input, float *output)
{
    int32_t i;

    for (i = 0; i < p->len; ++i) {
        const float x = input[i];
        float r = x + 3.0f;
        r = r < 0.0f ? 0.0f : r;
        r = r > 6.0f ? 6.0f : r;
        output[i] = x * r / 6.0f;
    }
}
