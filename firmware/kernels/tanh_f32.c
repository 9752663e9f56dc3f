/* Reference hyperbolic tangent, float32. */
#include <math.h>

#include "mcus_kernels.h"

void mcus_tanh_f32(const mcus_unary_f32_params_t *p, const float *input, float *output)
{
    int32_t i;

    for (i = 0; i < p->len; ++i) {
        const float x = input[i];
        output[i] = tanhf(x);
    }
}
