/*
 * int8 depthwise convolution (depth multiplier 1), one output row per call. Per output pixel the
 * window's valid cells are visited in (ky, kx) order and each adds a contiguous pass over the
 * channels into c int32 accumulators (io->scratch), so the inner loop has no index arithmetic;
 * then per channel bias, TFLite's depthwise requantisation, zero point and clamp - the same
 * integers as the reference kernel (../depthwise_conv2d_s8.c).
 */
#include "mcus_fast.h"

void mcus_fast_dwconv2d_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_dwconv_s8_t *p = (const mcus_fast_dwconv_s8_t *)params;
    const int8_t *in = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
    int8_t *out = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 1);
    int32_t *acc = (int32_t *)io->scratch;
    const int32_t in_w = p->in.w, ch = p->in.c, ow = p->out.w, kw = p->g.kw;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const int32_t off = p->input_offset;
    int32_t ky0 = 0, ky1 = p->g.kh, ox, c;

    ky0 = y0 < 0 ? -y0 : 0;
    ky1 = y0 + ky1 > p->in.h ? p->in.h - y0 : ky1;
    for (ox = 0; ox < ow; ++ox) {
        const int32_t x0 = ox * p->g.sw - p->g.pl;
        const int32_t kx0 = x0 < 0 ? -x0 : 0;
        const int32_t kx1 = x0 + kw > in_w ? in_w - x0 : kw;
        int32_t ky, kx;
        int8_t *dst = out + ox * ch;
        for (c = 0; c < ch; ++c) {
            acc[c] = p->bias ? p->bias[c] : 0;
        }
        for (ky = ky0; ky < ky1; ++ky) {
            const int8_t *row = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, y0 + ky, 1);
            for (kx = kx0; kx < kx1; ++kx) {
                const int8_t *src = row + (x0 + kx) * ch;
                const int8_t *w = p->weights + (ky * kw + kx) * ch;
                for (c = 0; c < ch; ++c) {
                    acc[c] += ((int32_t)src[c] + off) * (int32_t)w[c];
                }
            }
        }
        for (c = 0; c < ch; ++c) {
            int32_t v = mcus_requantize_depthwise(acc[c], p->mult[c], p->shift[c]) + p->output_offset;
            v = v < p->act_min ? p->act_min : v;
            dst[c] = (int8_t)(v > p->act_max ? p->act_max : v);
        }
    }
}
