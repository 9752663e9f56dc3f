/* RESIZE_NEAREST_NEIGHBOR (UpSampling2D), one output row per call: output row y is input row
 * rows[y] with pixel x taken from column cols[x] (the generator computes both tables as TFLite
 * does). Any dtype (mcus_moves.h). */
#include "mcus_moves.h"

void mcus_fast_resize_nearest(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_resize_nearest_t *p = (const mcus_fast_resize_nearest_t *)params;
    const uint32_t e = p->elem, pix = p->out.c * e, w = p->out.w;
    const uint8_t *s = mcus_move_src(&p->in, io, p->rows[row], (int32_t)e);
    uint8_t *d = mcus_move_dst(&p->out, io, row, (int32_t)e);

    mcus_move_pixels(d, pix, s, p->cols, pix, w);
}
