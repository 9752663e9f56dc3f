/* Element-wise maximum of two int8 tensors with broadcasting, run by run (mcus_binary_s8_runs);
 * inputs and output share one quantisation. */
#include "mcus_kernels.h"

static int32_t same(const void *q, int32_t v)
{
    (void)q;
    return v;
}

static int32_t maximum(const void *q, int32_t a, int32_t b)
{
    (void)q;
    return a > b ? a : b;
}

void mcus_maximum_s8(const mcus_minmax_s8_params_t *p, const int8_t *a, const int8_t *b,
                     int8_t *output)
{
    mcus_binary_s8_runs(&p->g, 0, a, b, output, -128, 127, same, same, maximum, 1);
}
