/* Reference fully connected layer, float32, weights [out][in]. */
#include "mcus_kernels.h"

void mcus_dense_f32(const mcus_dense_f32_params_t *p, const float *input, const float *weights,
                    const float *bias, float *output)
{
    int32_t o, i;

    for (o = 0; o < p->out_features; ++o) {
        const float *w = weights + o * p->in_features;
        float acc = bias ? bias[o] : 0.0f;
        for (i = 0; i < p->in_features; ++i) {
            acc += input[i] * w[i];
        }
        if (acc < p->act_min) {
            acc = p->act_min;
        }
        if (acc > p->act_max) {
            acc = p->act_max;
        }
        output[o] = acc;
    }
}
