/*
 * float32 depthwise convolution (depth multiplier 1), one output row per call. Per output pixel:
 * c accumulators in io->scratch start at the bias, then every valid window cell in (ky, kx) order
 * adds a contiguous multiply-add pass over the channels (the reference kernel's order per output).
 */
#include <float.h>

#include "mcus_fast.h"

void mcus_fast_dwconv2d_f32(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_dwconv_f32_t *p = (const mcus_fast_dwconv_f32_t *)params;
    const float *in = p->in.base ? (const float *)p->in.base : (const float *)io->in;
    float *out = (float *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 4);
    float *acc = (float *)io->scratch;
    const int32_t in_w = p->in.w, ch = p->in.c, ow = p->out.w, kw = p->g.kw;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const float lo = p->act_min, hi = p->act_max;
    int32_t ky0, ky1 = p->g.kh, ox, c;

    ky0 = y0 < 0 ? -y0 : 0;
    ky1 = y0 + ky1 > p->in.h ? p->in.h - y0 : ky1;
    for (ox = 0; ox < ow; ++ox) {
        const int32_t x0 = ox * p->g.sw - p->g.pl;
        const int32_t kx0 = x0 < 0 ? -x0 : 0;
        const int32_t kx1 = x0 + kw > in_w ? in_w - x0 : kw;
        int32_t ky, kx;
        float *dst = out + ox * ch;
        for (c = 0; c < ch; ++c) {
            acc[c] = p->bias ? p->bias[c] : 0.0f;
        }
        for (ky = ky0; ky < ky1; ++ky) {
            const float *row = (const float *)mcus_row_ptr(&p->in, (void *)in, y0 + ky, 4);
            for (kx = kx0; kx < kx1; ++kx) {
                const float *src = row + (x0 + kx) * ch;
                const float *w = p->weights + (ky * kw + kx) * ch;
                for (c = 0; c < ch; ++c) {
                    acc[c] = MCUS_FMA(src[c], w[c], acc[c]);
                }
            }
        }
        for (c = 0; c < ch; ++c) {
            float v = acc[c];
            v = v < lo ? lo : v;
            dst[c] = v > hi ? hi : v;
        }
    }
}
