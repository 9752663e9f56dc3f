/* Element-wise add of two float32 tensors with broadcasting (one may be a constant), run by run
 * (mcus_binary_f32_runs). */
#include "mcus_kernels.h"

static float add(float a, float b)
{
    return a + b;
}

void mcus_add_bcast_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                        float *output)
{
    mcus_binary_f32_runs(p, a, b, output, add);
}
