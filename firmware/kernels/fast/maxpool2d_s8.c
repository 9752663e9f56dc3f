/*
 * int8 2-D max pooling, one output row per call. Padded cells are ignored (as in TF); the output
 * shares the input's scale and zero point. With the DSP extension, 4 channels at a time: SSUB8
 * sets the GE flags per byte and SEL picks the larger bytes (a 4-lane max in 2 instructions).
 */
#include "mcus_fast.h"

#if MCUS_FAST_DSP
static inline uint32_t max4(uint32_t a, uint32_t b)
{
    (void)__ssub8(a, b);
    return __sel(a, b);
}
#endif

void mcus_fast_maxpool2d_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_maxpool_s8_t *p = (const mcus_fast_maxpool_s8_t *)params;
    const int8_t *in = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
    int8_t *out = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 1);
    const int32_t in_w = p->in.w, ch = p->in.c, ow = p->out.w;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const int32_t amin = p->act_min, amax = p->act_max;
    const int8_t *rows[8];
    int32_t nr = 0, ky, ox;
    const int8_t **rp = rows;

    if (p->g.kh > 8) {
        rp = (const int8_t **)io->scratch;
    }
    for (ky = 0; ky < p->g.kh; ++ky) {
        const int32_t iy = y0 + ky;
        if (iy >= 0 && iy < p->in.h) {
            rp[nr++] = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, iy, 1);
        }
    }
    for (ox = 0; ox < ow; ++ox) {
        int32_t x0 = ox * p->g.sw - p->g.pl, x1 = x0 + p->g.kw, c = 0;
        int8_t *dst = out + ox * ch;
        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > in_w ? in_w : x1;
#if MCUS_FAST_DSP
        {
            const uint32_t lo4 = (uint32_t)(uint8_t)amin * 0x01010101u;
            const uint32_t hi4 = (uint32_t)(uint8_t)amax * 0x01010101u;
            for (; c + 4 <= ch; c += 4) {
                uint32_t m = 0x80808080u;
                int32_t r, x;
                for (r = 0; r < nr; ++r) {
                    const int8_t *src = rp[r] + x0 * ch + c;
                    for (x = x0; x < x1; ++x) {
                        m = max4(m, mcus_ld32(src));
                        src += ch;
                    }
                }
                if (amin > -128) {
                    m = max4(m, lo4);
                }
                if (amax < 127) {
                    (void)__ssub8(m, hi4);
                    m = __sel(hi4, m);
                }
                mcus_st32(dst + c, m);
            }
        }
#endif
        for (; c < ch; ++c) {
            int32_t m = -128, r, x;
            for (r = 0; r < nr; ++r) {
                const int8_t *src = rp[r] + x0 * ch + c;
                for (x = x0; x < x1; ++x) {
                    m = *src > m ? *src : m;
                    src += ch;
                }
            }
            m = m < amin ? amin : m;
            dst[c] = (int8_t)(m > amax ? amax : m);
        }
    }
}
