/* int8 element-wise add (a residual connection) with TFLite ADD's input and output rescaling,
 * one row per call: the reference arithmetic (mcus_add_s8_one), bit-exact. */
#include "mcus_fast.h"

void mcus_fast_add_s8(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_add_s8_t *p = (const mcus_fast_add_s8_t *)params;
    const int8_t *a = (const int8_t *)mcus_row_ptr(&p->in, p->in.base ? p->in.base : (void *)io->in, row, 1);
    const int8_t *b = (const int8_t *)mcus_row_ptr(&p->skip, p->skip.base ? p->skip.base : (void *)io->in,
                                                   row, 1);
    int8_t *dst = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, row, 1);
    int32_t n;

    for (n = p->out.w * p->out.c; n > 0; --n) {
        *dst++ = (int8_t)mcus_add_s8_one(&p->q, *a++, *b++);
    }
}
