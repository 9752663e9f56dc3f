/* Element-wise minimum of two float32 tensors with broadcasting, run by run
 * (mcus_binary_f32_runs). */
#include "mcus_kernels.h"

static float minimum(float a, float b)
{
    return a < b ? a : b;
}

void mcus_minimum_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                      float *output)
{
    mcus_binary_f32_runs(p, a, b, output, minimum);
}
