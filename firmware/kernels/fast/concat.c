/* CONCATENATION on channels, one output row per call: per output pixel, each input's pixel in
 * turn (its c values), so the row is n interleaved copies. An input read through a folded
 * nearest-neighbour resize (rows/cols tables) gives pixel (rows[row], cols[x]). Any dtype
 * (mcus_moves.h). */
#include "mcus_moves.h"

void mcus_fast_concat(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_concat_t *p = (const mcus_fast_concat_t *)params;
    const uint32_t e = p->elem, pix_out = p->out.c * e, w = p->out.w;
    uint8_t *const d = mcus_move_dst(&p->out, io, row, (int32_t)e);
    uint32_t k, at = 0;

    for (k = 0; k < p->n; ++k) {
        const mcus_concat_in_t *in = &p->in[k];
        const uint32_t n = in->buf.c * e;
        const uint8_t *s = mcus_move_src(&in->buf, io, in->cols ? in->rows[row] : row, (int32_t)e);
        mcus_move_pixels(d + at, pix_out, s, in->cols, n, w);
        at += n;
    }
}
