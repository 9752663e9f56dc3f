/* Reference fully connected layer, int8, weights [out][in], per-tensor or per-channel scales. */
#include "mcus_kernels.h"

void mcus_dense_s8(const mcus_dense_s8_params_t *p, const int8_t *input, const int8_t *weights,
                   const int32_t *bias, int8_t *output)
{
    int32_t o, i;

    for (o = 0; o < p->out_features; ++o) {
        const int8_t *w = weights + o * p->in_features;
        const int32_t q = p->per_channel ? o : 0;
        int32_t acc = 0;
        for (i = 0; i < p->in_features; ++i) {
            acc += ((int32_t)input[i] + p->input_offset) * (int32_t)w[i];
        }
        if (bias) {
            acc += bias[o];
        }
        acc = mcus_requantize(acc, p->multiplier[q], p->shift[q]);
        acc += p->output_offset;
        if (acc < p->act_min) {
            acc = p->act_min;
        }
        if (acc > p->act_max) {
            acc = p->act_max;
        }
        output[o] = (int8_t)acc;
    }
}
