/* Reference softmax over a vector, float32 (the maximum is subtracted first, as TF does). */
#include <math.h>

#include "mcus_kernels.h"

void mcus_softmax_f32(const mcus_softmax_f32_params_t *p, const float *input, float *output)
{
    int32_t i;
    float max_v, sum = 0.0f;

    if (p->len <= 0) {
        return;
    }
    max_v = input[0];
    for (i = 1; i < p->len; ++i) {
        if (input[i] > max_v) {
            max_v = input[i];
        }
    }
    for (i = 0; i < p->len; ++i) {
        output[i] = expf(input[i] - max_v);
        sum += output[i];
    }
    for (i = 0; i < p->len; ++i) {
        output[i] /= sum;
    }
}
