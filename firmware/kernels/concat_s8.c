/* Reference CONCATENATION / PACK, int8: for each outer index, the inner blocks of the inputs
 * one after the other (TFLite requires equal input and output quantisation: a copy). */
#include "mcus_kernels.h"

void mcus_concat_s8(const mcus_concat_params_t *p, const int8_t *const *inputs, int8_t *output)
{
    int32_t o, k, i;

    for (o = 0; o < p->outer; ++o) {
        for (k = 0; k < p->n; ++k) {
            const int8_t *src = inputs[k] + o * p->inner[k];
            for (i = 0; i < p->inner[k]; ++i) {
                *output++ = src[i];
            }
        }
    }
}
