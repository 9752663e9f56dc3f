/* Reference GELU, float32: x / 2 * (1 + erf(x / sqrt 2)), or with alpha != 0 (TFLite's
 * `approximate`) x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3))). */
#include <math.h>

#include "mcus_kernels.h"

void mcus_gelu_f32(const mcus_unary_f32_params_t *p, const float *input, float *output)
{
    int32_t i;

    for (i = 0; i < p->len; ++i) {
        const float x = input[i];
        if (p->alpha != 0.0f) {
            output[i] = 0.5f * x * (1.0f + tanhf(0.7978845608f * (x + 0.044715f * x * x * x)));
        } else {
            output[i] = 0.5f * x * (1.0f + erff(x * 0.7071067812f));
        }
    }
}
