/* Reference element-wise add of two float32 tensors of the same shape (a residual connection). */
#include "mcus_kernels.h"

void mcus_add_f32(const mcus_add_f32_params_t *p, const float *input, const float *skip,
                  float *output)
{
    int32_t i;

    for (i = 0; i < p->len; ++i) {
        float v = input[i] + skip[i];
        if (v < p->act_min) {
            v = p->act_min;
        }
        if (v > p->act_max) {
            v = p->act_max;
        }
        output[i] = v;
    }
}
