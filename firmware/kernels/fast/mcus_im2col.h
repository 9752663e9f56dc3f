/*
 * mcus_im2col.h - shared column builders of the optimised kernels (internal).
 *
 * Four consecutive output pixels (ox .. ox + 3) side by side, k by k: col[k * 4 + pixel], so that
 * one load brings the same k of all four pixels. Pixels at or beyond np, and padding, read zeros.
 */
#ifndef MCUS_IM2COL_H
#define MCUS_IM2COL_H

#include "mcus_fast.h"

#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__OPTIMIZE__) && !defined(MCUS_FAST_NO_ASM)
#define MCUS_IM2COL_F32_ASM 1
#else
#define MCUS_IM2COL_F32_ASM 0
#endif

/* float32: col[k * 4 + m] = input value; `zeros` holds in_c zero floats. The window's taps dh
 * rows and dw columns apart (a dilated convolution's; 1, 1: adjacent). */
static inline void mcus_im2col4d_f32(const mcus_buf_t *b, const mcus_win_t *g, int32_t dh,
                                     int32_t dw, const float *in, int32_t oy, int32_t ox,
                                     int32_t np, float *col, const float *zeros)
{
    const int32_t in_h = b->h, in_w = b->w, in_c = b->c;
    const int32_t y0 = oy * g->sh - g->pt, x0 = ox * g->sw - g->pl;
    int32_t ky, kx, m;

    for (ky = 0; ky < g->kh; ++ky) {
        const int32_t iy = y0 + ky * dh;
        const float *row = (iy >= 0 && iy < in_h) ? (const float *)mcus_row_ptr(b, (void *)in, iy, 4) : 0;
        for (kx = 0; kx < g->kw; ++kx) {
            const float *src[4];
            int32_t n = in_c;
            for (m = 0; m < 4; ++m) {
                const int32_t ix = x0 + m * g->sw + kx * dw;
                src[m] = (row && m < np && ix >= 0 && ix < in_w) ? row + ix * in_c : zeros;
            }
#if MCUS_IM2COL_F32_ASM
            {
                const float *s0 = src[0], *s1 = src[1], *s2 = src[2], *s3 = src[3];
                __asm__ volatile("1:\n\t"
                                 "vldmia %[s0]!, {s16}\n\t"
                                 "vldmia %[s1]!, {s17}\n\t"
                                 "vldmia %[s2]!, {s18}\n\t"
                                 "vldmia %[s3]!, {s19}\n\t"
                                 "vstmia %[d]!, {s16-s19}\n\t"
                                 "subs %[n], %[n], #1\n\t"
                                 "bne 1b\n\t"
                                 : [s0] "+r"(s0), [s1] "+r"(s1), [s2] "+r"(s2), [s3] "+r"(s3),
                                   [d] "+r"(col), [n] "+r"(n)
                                 :
                                 : "s16", "s17", "s18", "s19", "cc", "memory");
            }
#else
            for (; n > 0; --n) {
                col[0] = *src[0]++;
                col[1] = *src[1]++;
                col[2] = *src[2]++;
                col[3] = *src[3]++;
                col += 4;
            }
#endif
        }
    }
}

/* The undilated window's (taps adjacent). */
static inline void mcus_im2col4_f32(const mcus_buf_t *b, const mcus_win_t *g, const float *in,
                                    int32_t oy, int32_t ox, int32_t np, float *col,
                                    const float *zeros)
{
    mcus_im2col4d_f32(b, g, 1, 1, in, oy, ox, np, col, zeros);
}

/* int8: col[k * W + m] = input value + input offset (int16), W = 4 or 8 pixels side by side;
 * padding and pixels at or beyond np are 0: they read `zp`, in_c bytes of the input zero point
 * (= -off), so that every pair of pixels takes the SIMD path. */
static inline void mcus_im2col_s8(const mcus_buf_t *b, const mcus_win_t *g, const int8_t *in,
                                  int32_t off, int32_t oy, int32_t ox, int32_t np, int16_t *col,
                                  const int8_t *zp, const int32_t W)
{
    const int32_t in_h = b->h, in_w = b->w, in_c = b->c;
    const int32_t y0 = oy * g->sh - g->pt, x0 = ox * g->sw - g->pl;
    int32_t ky, kx, m;

    for (ky = 0; ky < g->kh; ++ky) {
        const int32_t iy = y0 + ky;
        const int8_t *row = (iy >= 0 && iy < in_h) ? (const int8_t *)mcus_row_ptr(b, (void *)in, iy, 1) : 0;
        for (kx = 0; kx < g->kw; ++kx) {
            int16_t *dst = col;
            for (m = 0; m < W; m += 2) {
                const int32_t ia = x0 + m * g->sw + kx, ib = ia + g->sw;
                const int8_t *sa = (row && m < np && ia >= 0 && ia < in_w) ? row + ia * in_c : zp;
                const int8_t *sb = (row && m + 1 < np && ib >= 0 && ib < in_w) ? row + ib * in_c : zp;
                int32_t c = 0;
                dst = col + m;
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
                if (in_c >= 4) {
                    /* two pixels, four k at a time: SXTAB16 adds the offset, PKH pairs them up */
                    const uint32_t off2 = (uint32_t)(uint16_t)off | ((uint32_t)(uint16_t)off << 16);
                    int32_t n = in_c >> 2;
                    const int8_t *pa = sa, *pb = sb;
                    uint32_t va, vb, a02, a13, t;
#define MCUS_IM2COL_S8_PAIR(S1, S2, S3, S4)                                                       \
                    __asm__ volatile("1:\n\t"                                                       \
                                     "ldr     %[va], [%[pa]], #4\n\t"                               \
                                     "ldr     %[vb], [%[pb]], #4\n\t"                               \
                                     "sxtab16 %[a02], %[o], %[va]\n\t"                              \
                                     "sxtab16 %[a13], %[o], %[va], ror #8\n\t"                      \
                                     "sxtab16 %[va], %[o], %[vb]\n\t"                               \
                                     "sxtab16 %[vb], %[o], %[vb], ror #8\n\t"                       \
                                     "pkhbt   %[t], %[a13], %[vb], lsl #16\n\t"                     \
                                     "str     %[t], [%[d], #" S1 "]\n\t"                            \
                                     "pkhtb   %[t], %[va], %[a02], asr #16\n\t"                     \
                                     "str     %[t], [%[d], #" S2 "]\n\t"                            \
                                     "pkhtb   %[t], %[vb], %[a13], asr #16\n\t"                     \
                                     "str     %[t], [%[d], #" S3 "]\n\t"                            \
                                     "pkhbt   %[t], %[a02], %[va], lsl #16\n\t"                     \
                                     "str     %[t], [%[d]], #" S4 "\n\t"                            \
                                     "subs    %[n], %[n], #1\n\t"                                   \
                                     "bne     1b\n\t"                                               \
                                     : [pa] "+r"(pa), [pb] "+r"(pb), [d] "+r"(dst), [n] "+r"(n),  \
                                       [va] "=&r"(va), [vb] "=&r"(vb), [a02] "=&r"(a02),          \
                                       [a13] "=&r"(a13), [t] "=&r"(t)                             \
                                     : [o] "r"(off2)                                              \
                                     : "cc", "memory")
                    if (W == 4) {
                        MCUS_IM2COL_S8_PAIR("8", "16", "24", "32");
                    } else {
                        MCUS_IM2COL_S8_PAIR("16", "32", "48", "64");
                    }
                    c = in_c & ~3;
                }
#endif
                for (; c < in_c; ++c) {
                    dst[0] = (int16_t)(sa[c] + off);
                    dst[1] = (int16_t)(sb[c] + off);
                    dst += W;
                }
            }
            col = dst - (W - 2);
        }
    }
}

#endif /* MCUS_IM2COL_H */
