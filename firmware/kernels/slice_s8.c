/* Reference strided copy, int8: SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK and TRANSPOSE
 * (one call per output), out[i0][i1][i2][i3] = in[base + sum_k i_k * strides[k]]. */
#include "mcus_kernels.h"

void mcus_slice_s8(const mcus_slice_params_t *p, const int8_t *input, int8_t *output)
{
    int32_t i0, i1, i2, i3;

    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const int8_t *src = input + p->base + i0 * p->strides[0] + i1 * p->strides[1] +
                                   i2 * p->strides[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    *output++ = src[i3 * p->strides[3]];
                }
            }
        }
    }
}
