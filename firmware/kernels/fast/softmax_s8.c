/* int8 softmax over a vector, row 0 only: the reference arithmetic (mcus_softmax_s8_row,
 * TFLite's float look-up-table kernel), bit-exact; a handful of outputs, not worth a DSP path.
 * May run in place. */
#include "mcus_fast.h"

void mcus_fast_softmax_s8(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_softmax_s8_t *p = (const mcus_fast_softmax_s8_t *)params;
    const int8_t *in = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
    int8_t *out = p->out.base ? (int8_t *)p->out.base : (int8_t *)io->out;

    (void)row;
    mcus_softmax_s8_row(&p->q, in, out);
}
