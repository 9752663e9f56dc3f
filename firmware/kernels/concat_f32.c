/* Reference CONCATENATION / PACK, float32: for each outer index, the inner blocks of the
 * inputs one after the other. */
#include "mcus_kernels.h"

void mcus_concat_f32(const mcus_concat_params_t *p, const float *const *inputs, float *output)
{
    int32_t o, k, i;

    for (o = 0; o < p->outer; ++o) {
        for (k = 0; k < p->n; ++k) {
            const float *src = inputs[k] + o * p->inner[k];
            for (i = 0; i < p->inner[k]; ++i) {
                *output++ = src[i];
            }
        }
    }
}
