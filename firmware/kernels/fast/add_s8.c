/* int8 element-wise add (a residual connection, an LSTM gate sum) with TFLite ADD's input and
 * output rescaling, one row per call, bit-exact with mcus_add_s8_one: mcus_add_s8_fast
 * (../mcus_add_fast.h) where its bounds hold, else mcus_add_s8_one.
 * mcus_add_s8_fast: about 15 instructions an element on a Cortex-M7 (10 with the generator's table
 * p->tb), 87 for mcus_add_s8_one. */
#include "mcus_fast.h"
#include "mcus_add_fast.h"

void mcus_fast_add_s8(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_add_s8_t *p = (const mcus_fast_add_s8_t *)params;
    const mcus_add_s8_params_t *q = &p->q;
    const int8_t *a = (const int8_t *)mcus_row_ptr(&p->in, p->in.base ? p->in.base : (void *)io->in, row, 1);
    const int8_t *b = (const int8_t *)mcus_row_ptr(&p->skip, p->skip.base ? p->skip.base : (void *)io->in,
                                                   row, 1);
    int8_t *dst = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, row, 1);
    int32_t n = p->out.w * p->out.c;

    if (mcus_add_s8_fast(q, a, b, dst, n, p->tb)) {
        return;
    }
    for (; n > 0; --n) {
        *dst++ = (int8_t)mcus_add_s8_one(q, *a++, *b++);
    }
}
