/* PAD (ZeroPadding2D and any constant pad of height, width and channels), one output row per
 * call: a row above or below the input is all padding; otherwise left padding pixels, the input
 * row's pixels each between front and back channel padding, right padding pixels. Where no
 * channel is padded the input row is one contiguous copy. Any dtype (mcus_moves.h). */
#include "mcus_moves.h"

void mcus_fast_pad(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_pad_t *p = (const mcus_fast_pad_t *)params;
    const uint32_t e = p->elem, pix_in = p->in.c * e, pix_out = p->out.c * e;
    const uint32_t row_out = p->out.w * pix_out;
    const int32_t y = row - (int32_t)p->top;
    uint8_t *d = mcus_move_dst(&p->out, io, row, (int32_t)e);
    const uint8_t *s;
    uint32_t x, left, mid, front;

    if (y < 0 || y >= (int32_t)p->in.h) {
        mcus_fill_bytes(d, p->value, row_out);
        return;
    }
    s = mcus_move_src(&p->in, io, y, (int32_t)e);
    left = p->left * pix_out;
    mid = p->in.w * pix_out;
    mcus_fill_bytes(d, p->value, left);
    d += left;
    if (pix_in == pix_out) {
        mcus_move_bytes(d, s, mid);
    } else {
        front = p->front * e;
        for (x = 0; x < p->in.w; ++x, d += pix_out, s += pix_in) {
            mcus_fill_bytes(d, p->value, front);
            mcus_move_bytes(d + front, s, pix_in);
            mcus_fill_bytes(d + front + pix_in, p->value, pix_out - front - pix_in);
        }
        d -= mid;
    }
    mcus_fill_bytes(d + mid, p->value, row_out - left - mid);
}
