/* Element-wise product of two float32 tensors with broadcasting, run by run
 * (mcus_binary_f32_runs). */
#include "mcus_kernels.h"

static float mul(float a, float b)
{
    return a * b;
}

void mcus_mul_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                  float *output)
{
    mcus_binary_f32_runs(p, a, b, output, mul);
}
