/* float32 element-wise clamp (a ReLU / ReLU6 that could not be fused), one row per call;
 * may run in place (input and output buffers the same). */
#include "mcus_fast.h"

void mcus_fast_clamp_f32(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_clamp_f32_t *p = (const mcus_fast_clamp_f32_t *)params;
    const float *src = (const float *)mcus_row_ptr(&p->in, p->in.base ? p->in.base : (void *)io->in, row, 4);
    float *dst = (float *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, row, 4);
    const float lo = p->act_min, hi = p->act_max;
    int32_t n;

    for (n = p->in.w * p->in.c; n > 0; --n) {
        float v = *src++;
        v = v < lo ? lo : v;
        *dst++ = v > hi ? hi : v;
    }
}
