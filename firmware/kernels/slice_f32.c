/* Reference strided copy, float32: SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK and TRANSPOSE
 * (one call per output), out[i0][i1][i2][i3] = in[base + sum_k i_k * strides[k]]. */
#include "mcus_kernels.h"

void mcus_slice_f32(const mcus_slice_params_t *p, const float *input, float *output)
{
    int32_t i0, i1, i2, i3;

    for (i0 = 0; i0 < p->dims[0]; ++i0) {
        for (i1 = 0; i1 < p->dims[1]; ++i1) {
            for (i2 = 0; i2 < p->dims[2]; ++i2) {
                const float *src = input + p->base + i0 * p->strides[0] + i1 * p->strides[1] +
                                  i2 * p->strides[2];
                for (i3 = 0; i3 < p->dims[3]; ++i3) {
                    *output++ = src[i3 * p->strides[3]];
                }
            }
        }
    }
}
