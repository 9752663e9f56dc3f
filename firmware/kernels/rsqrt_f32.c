/* Reference reciprocal square root, float32: 1 / sqrt(x), as TFLite's RSQRT computes it. */
#include <math.h>

#include "mcus_kernels.h"

void mcus_rsqrt_f32(const mcus_unary_f32_params_t *p, const float *input, float *output)
{
    int32_t i;

    for (i = 0; i < p->len; ++i) {
        const float x = input[i];
        output[i] = 1.0f / sqrtf(x);
    }
}
