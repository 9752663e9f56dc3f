/*
 * float32 2-D average pooling, one output row per call: the window's cells inside the input are
 * summed into the output row (contiguous passes over the channels, in the reference kernel's
 * order), then divided by their count and clamped. Padded cells are not counted (as in TF). A
 * window of two cells (AveragePooling1D(2) on a 1-D row) takes one pass, the same operations.
 */
#include "mcus_fast.h"

void mcus_fast_avgpool2d_f32(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_avgpool_f32_t *p = (const mcus_fast_avgpool_f32_t *)params;
    const float *in = p->in.base ? (const float *)p->in.base : (const float *)io->in;
    float *out = (float *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 4);
    const int32_t in_w = p->in.w, ch = p->in.c, ow = p->out.w;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const float lo = p->act_min, hi = p->act_max;
    int32_t iy0 = y0 < 0 ? 0 : y0, iy1 = y0 + p->g.kh, ox, c;

    iy1 = iy1 > p->in.h ? p->in.h : iy1;
    for (ox = 0; ox < ow; ++ox) {
        int32_t x0 = ox * p->g.sw - p->g.pl, x1 = x0 + p->g.kw, iy, x, count;
        float *dst = out + ox * ch;
        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > in_w ? in_w : x1;
        count = (iy1 - iy0) * (x1 - x0);
        if (count == 2) {                 /* two cells (AveragePooling1D(2), 2 x 1): one pass */
            const float *a = (const float *)mcus_row_ptr(&p->in, (void *)in, iy0, 4) + x0 * ch;
            const float *b = iy1 - iy0 == 2 ?
                (const float *)mcus_row_ptr(&p->in, (void *)in, iy0 + 1, 4) + x0 * ch : a + ch;
            for (c = 0; c < ch; ++c) {
                float v = 0.0f;
                v += a[c];
                v += b[c];
                v = v / 2.0f;
                v = v < lo ? lo : v;
                dst[c] = v > hi ? hi : v;
            }
            continue;
        }
        for (c = 0; c < ch; ++c) {
            dst[c] = 0.0f;
        }
        for (iy = iy0; iy < iy1; ++iy) {
            const float *row = (const float *)mcus_row_ptr(&p->in, (void *)in, iy, 4);
            for (x = x0; x < x1; ++x) {
                const float *src = row + x * ch;
                for (c = 0; c < ch; ++c) {
                    dst[c] += src[c];
                }
            }
        }
        for (c = 0; c < ch; ++c) {
            float v = count > 0 ? dst[c] / (float)count : 0.0f;
            v = v < lo ? lo : v;
            dst[c] = v > hi ? hi : v;
        }
    }
}
