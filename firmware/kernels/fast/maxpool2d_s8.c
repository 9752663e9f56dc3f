/*
 * int8 2-D max pooling, one output row per call. Padded cells are ignored (as in TF); the output
 * shares the input's scale and zero point. With the DSP extension, 4 channels at a time: SSUB8
 * sets the GE flags per byte and SEL picks the larger bytes (a 4-lane max in 2 instructions).
 * The output pixels whose windows lie whole inside the row take one call over all of them; the
 * common windows have their own loops over the channel groups (2 x 2, 1 x 2 and 2 x 1 as in
 * MaxPooling2D(2) and MaxPooling1D(2), and 3 wide). A 2 x 2 window costs 19 instructions per 4
 * channels at -O3 on an M7 (4 loads, 4 maxima with the lower bound, a store, loop and spills)
 * and a call about 200 (its set-up). Before: about 46 per 4 channels with the window loops and
 * a set-up per pixel; se_block's 2 x 2 pool went from 6,624 to 3,312 instructions.
 */
#include "mcus_fast.h"

#if MCUS_FAST_DSP
static inline uint32_t max4(uint32_t a, uint32_t b)
{
    (void)__ssub8(a, b);
    return __sel(a, b);
}

#define MCUS_CLIP_HI(m)                                                                          \
    do {                                                                                         \
        if (clip_hi) {                                                                           \
            (void)__ssub8((m), hi4);                                                             \
            (m) = __sel(hi4, (m));                                                               \
        }                                                                                        \
    } while (0)

/* The first n4 (a multiple of 4) channels of npix output pixels whose windows are nr rows (rp,
 * from byte off) x w columns, the next pixel's window step bytes further. */
static void maxpool_groups(const int8_t *const *rp, int32_t nr, int32_t off, int32_t w,
                           int32_t step, int32_t npix, int32_t ch, int32_t n4, int8_t *dst,
                           int32_t amin, int32_t amax)
{
    const uint32_t lo4 = (uint32_t)(uint8_t)amin * 0x01010101u;
    const uint32_t hi4 = (uint32_t)(uint8_t)amax * 0x01010101u;
    const int clip_hi = amax < 127;
    int32_t c;

    if (w == 2 && nr == 2) {
        const int8_t *a = rp[0] + off, *b = rp[1] + off;
        for (; npix > 0; --npix, a += step, b += step, dst += ch) {
            for (c = 0; c < n4; c += 4) {
                uint32_t m = max4(max4(mcus_ld32(a + c), mcus_ld32(a + c + ch)),
                                  max4(mcus_ld32(b + c), mcus_ld32(b + c + ch)));
                m = max4(m, lo4);
                MCUS_CLIP_HI(m);
                mcus_st32(dst + c, m);
            }
        }
        return;
    }
    if (w * nr == 2) { /* 1 x 2 or 2 x 1: the second cell is `second` bytes after the first */
        const int8_t *a = rp[0] + off;
        const int32_t second = w == 2 ? ch : (int32_t)(rp[1] - rp[0]);
        for (; npix > 0; --npix, a += step, dst += ch) {
            for (c = 0; c < n4; c += 4) {
                uint32_t m = max4(max4(mcus_ld32(a + c), mcus_ld32(a + c + second)), lo4);
                MCUS_CLIP_HI(m);
                mcus_st32(dst + c, m);
            }
        }
        return;
    }
    for (; npix > 0; --npix, off += step, dst += ch) {
        for (c = 0; c < n4; c += 4) {
            uint32_t m = lo4;
            int32_t r, x;
            for (r = 0; r < nr; ++r) {
                const int8_t *src = rp[r] + off + c;
                if (w == 3) {
                    m = max4(max4(m, mcus_ld32(src)),
                             max4(mcus_ld32(src + ch), mcus_ld32(src + 2 * ch)));
                    continue;
                }
                for (x = 0; x < w; ++x) {
                    m = max4(m, mcus_ld32(src));
                    src += ch;
                }
            }
            MCUS_CLIP_HI(m);
            mcus_st32(dst + c, m);
        }
    }
}
#undef MCUS_CLIP_HI
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
    int32_t nr = 0, ky, ox, c0 = 0;
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
#if MCUS_FAST_DSP
    if (ch >= 4) {
        /* Output pixels [full_lo, full_hi) have whole windows: one call for all of them. */
        const int32_t sw = p->g.sw, kw = p->g.kw, pl = p->g.pl;
        const int32_t span = in_w - kw + pl;   /* the last whole window starts at most here */
        int32_t full_lo = (pl + sw - 1) / sw, full_hi = span < 0 ? 0 : span / sw + 1;
        full_hi = full_hi > ow ? ow : full_hi;
        full_lo = full_lo > full_hi ? full_hi : full_lo;
        if (full_hi > full_lo) {
            maxpool_groups(rp, nr, (full_lo * sw - pl) * ch, kw, sw * ch, full_hi - full_lo, ch,
                           ch & ~3, out + full_lo * ch, amin, amax);
        }
        for (ox = 0; ox < ow; ++ox) {
            int32_t x0 = ox * sw - pl, x1 = x0 + kw;
            if (ox == full_lo && full_hi > full_lo) {
                ox = full_hi - 1;
                continue;
            }
            x0 = x0 < 0 ? 0 : x0;
            x1 = x1 > in_w ? in_w : x1;
            maxpool_groups(rp, nr, x0 * ch, x1 - x0, 0, 1, ch, ch & ~3, out + ox * ch, amin, amax);
        }
    }
    c0 = ch & ~3;
#endif
    if (c0 < ch) {
        for (ox = 0; ox < ow; ++ox) {
            int32_t x0 = ox * p->g.sw - p->g.pl, x1 = x0 + p->g.kw, c;
            int8_t *dst = out + ox * ch;
            x0 = x0 < 0 ? 0 : x0;
            x1 = x1 > in_w ? in_w : x1;
            for (c = c0; c < ch; ++c) {
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
}
