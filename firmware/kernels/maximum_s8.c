/* Reference element-wise maximum of two int8 tensors with broadcasting; inputs and output share
 * one quantisation. */
#include "mcus_kernels.h"

void mcus_maximum_s8(const mcus_minmax_s8_params_t *p, const int8_t *a, const int8_t *b,
                     int8_t *output)
{
    int32_t idx[MCUS_BCAST_MAX_DIMS] = {0};
    int32_t i, ia = 0, ib = 0;

    for (i = 0; i < p->g.len; ++i) {
        output[i] = a[ia] > b[ib] ? a[ia] : b[ib];
        mcus_bcast_next(&p->g, idx, &ia, &ib);
    }
}
