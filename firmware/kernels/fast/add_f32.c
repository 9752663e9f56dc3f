/* float32 element-wise add (a residual connection), one row per call: out = clamp(in + skip). */
#include "mcus_fast.h"

void mcus_fast_add_f32(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_add_f32_t *p = (const mcus_fast_add_f32_t *)params;
    const float *a = (const float *)mcus_row_ptr(&p->in, p->in.base ? p->in.base : (void *)io->in, row, 4);
    const float *b = (const float *)mcus_row_ptr(&p->skip, p->skip.base ? p->skip.base : (void *)io->in,
                                                 row, 4);
    float *dst = (float *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, row, 4);
    const float lo = p->act_min, hi = p->act_max;
    int32_t n;

    for (n = p->out.w * p->out.c; n > 0; --n) {
        float v = *a++ + *b++;
        v = v < lo ? lo : v;
        *dst++ = v > hi ? hi : v;
    }
}
