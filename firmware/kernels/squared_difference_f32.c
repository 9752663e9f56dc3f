/* Element-wise squared difference (a - b)^2 of two float32 tensors with broadcasting, run by run
 * (mcus_binary_f32_runs): Keras LayerNormalization's variance. */
#include "mcus_kernels.h"

static float squared_difference(float a, float b)
{
    const float d = a - b;
    return d * d;
}

void mcus_squared_difference_f32(const mcus_binary_f32_params_t *p, const float *a,
                                 const float *b, float *output)
{
    mcus_binary_f32_runs(p, a, b, output, squared_difference);
}
