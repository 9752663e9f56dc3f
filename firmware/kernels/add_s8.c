/* Reference element-wise add of two int8 tensors of the same shape, with TFLite ADD's input and
 * output rescaling (mcus_add_s8_one in mcus_kernels.h). */
#include "mcus_kernels.h"

void mcus_add_s8(const mcus_add_s8_params_t *p, const int8_t *input, const int8_t *skip,
                 int8_t *output)
{
    int32_t i;

    for (i = 0; i < p->len; ++i) {
        output[i] = (int8_t)mcus_add_s8_one(p, input[i], skip[i]);
    }
}
