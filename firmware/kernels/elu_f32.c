/* Reference ELU, float32: x > 0 ? x : exp(x) - 1. */
#include <math.h>

#include "mcus_kernels.h"

void mcus_elu_f32(const mcus_unary_f32_params_t *p, const float *input, float *output)
{
    int32_t i;

    for (i = 0; i < p->len; ++i) {
        const float x = input[i];
        output[i] = x > 0.0f ? x : expm1f(x);
    }
}
