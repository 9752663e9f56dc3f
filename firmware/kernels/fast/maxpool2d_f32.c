/* float32 2-D max pooling, one output row per call. Padded cells are ignored (as in TF).
 * Channels innermost: the first window cell is copied, every further cell max-ed in, each a
 * contiguous pass over the channels (no per-element index arithmetic); a window of two cells
 * (MaxPooling1D(2) on a 1-D row) in one pass with the clamp. */
#include <float.h>

#include "mcus_fast.h"

void mcus_fast_maxpool2d_f32(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_maxpool_f32_t *p = (const mcus_fast_maxpool_f32_t *)params;
    const float *in = p->in.base ? (const float *)p->in.base : (const float *)io->in;
    float *out = (float *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 4);
    const int32_t in_w = p->in.w, ch = p->in.c, ow = p->out.w;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const float lo = p->act_min, hi = p->act_max;
    const int clamp = lo > -FLT_MAX || hi < FLT_MAX;
    const float *rows[8];
    const float **rp = rows;
    int32_t nr = 0, ky, ox, c;

    if (p->g.kh > 8) {
        rp = (const float **)io->scratch;
    }
    for (ky = 0; ky < p->g.kh; ++ky) {
        const int32_t iy = y0 + ky;
        if (iy >= 0 && iy < p->in.h) {
            rp[nr++] = (const float *)mcus_row_ptr(&p->in, (void *)in, iy, 4);
        }
    }
    for (ox = 0; ox < ow; ++ox) {
        int32_t x0 = ox * p->g.sw - p->g.pl, x1 = x0 + p->g.kw, r, x;
        float *dst = out + ox * ch;
        int first = 1;
        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > in_w ? in_w : x1;
        if (nr * (x1 - x0) == 2) {        /* two cells (MaxPooling1D(2), 2 x 1): one pass */
            const float *a = rp[0] + x0 * ch;
            const float *b = nr == 2 ? rp[1] + x0 * ch : a + ch;
            if (clamp) {
                for (c = 0; c < ch; ++c) {
                    float v = b[c] > a[c] ? b[c] : a[c];
                    v = v < lo ? lo : v;
                    dst[c] = v > hi ? hi : v;
                }
            } else {
                for (c = 0; c < ch; ++c) {
                    dst[c] = b[c] > a[c] ? b[c] : a[c];
                }
            }
            continue;
        }
        for (r = 0; r < nr; ++r) {
            for (x = x0; x < x1; ++x) {
                const float *src = rp[r] + x * ch;
                if (first) {
                    for (c = 0; c < ch; ++c) {
                        dst[c] = src[c];
                    }
                    first = 0;
                } else {
                    for (c = 0; c < ch; ++c) {
                        const float v = src[c];
                        dst[c] = v > dst[c] ? v : dst[c];
                    }
                }
            }
        }
        if (first) {                      /* an all-padding window: 0, as the reference kernel */
            for (c = 0; c < ch; ++c) {
                dst[c] = 0.0f;
            }
        }
        if (clamp) {
            for (c = 0; c < ch; ++c) {
                float v = dst[c];
                v = v < lo ? lo : v;
                dst[c] = v > hi ? hi : v;
            }
        }
    }
}
