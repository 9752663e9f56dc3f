/*
 * int8 2-D average pooling, one output row per call: per output pixel, c int32 sums in io->scratch
 * over the window's cells inside the input (contiguous passes over the channels), then the mean
 * rounded half away from zero (mcus_average_s8, TFLite's AVERAGE_POOL_2D) and the clamp. The
 * output shares the input's scale and zero point.
 */
#include "mcus_fast.h"

void mcus_fast_avgpool2d_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_avgpool_s8_t *p = (const mcus_fast_avgpool_s8_t *)params;
    const int8_t *in = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
    int8_t *out = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 1);
    int32_t *sum = (int32_t *)io->scratch;
    const int32_t in_w = p->in.w, ch = p->in.c, ow = p->out.w;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const int32_t amin = p->act_min, amax = p->act_max;
    int32_t iy0 = y0 < 0 ? 0 : y0, iy1 = y0 + p->g.kh, ox, c;

    iy1 = iy1 > p->in.h ? p->in.h : iy1;
    for (ox = 0; ox < ow; ++ox) {
        int32_t x0 = ox * p->g.sw - p->g.pl, x1 = x0 + p->g.kw, iy, x, count;
        int8_t *dst = out + ox * ch;
        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > in_w ? in_w : x1;
        count = (iy1 - iy0) * (x1 - x0);
        for (c = 0; c < ch; ++c) {
            sum[c] = 0;
        }
        for (iy = iy0; iy < iy1; ++iy) {
            const int8_t *row = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, iy, 1);
            for (x = x0; x < x1; ++x) {
                const int8_t *src = row + x * ch;
                for (c = 0; c < ch; ++c) {
                    sum[c] += src[c];
                }
            }
        }
        for (c = 0; c < ch; ++c) {
            int32_t v = count > 0 ? mcus_average_s8(sum[c], count) : 0;
            v = v < amin ? amin : v;
            dst[c] = (int8_t)(v > amax ? amax : v);
        }
    }
}
