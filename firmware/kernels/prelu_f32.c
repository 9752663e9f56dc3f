/* Parametric ReLU of a float32 tensor, alpha broadcast against it: a >= 0 ? a : a * alpha, run
 * by run (mcus_binary_f32_runs). */
#include "mcus_kernels.h"

static float prelu(float a, float alpha)
{
    return a >= 0.0f ? a : a * alpha;
}

void mcus_prelu_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                    float *output)
{
    mcus_binary_f32_runs(p, a, b, output, prelu);
}
