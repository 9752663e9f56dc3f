/*
 * float32 2-D convolution, one output row per call (also Dense: a 1 x 1 convolution of 1 x 1 x N).
 *
 * Register blocking: 4 output pixels x 4 output channels = 16 accumulators in s0-s15. The 4
 * pixels' columns are interleaved by im2col ([k][4], padding 0.0f) and the weights by the
 * generator ([k][4] per group of 4 channels), so one k step is one VLDM of 4 inputs, one VLDM of 4
 * weights and 16 VFMA - no index arithmetic in the loop (two k steps per iteration: 4 VLDM,
 * 32 VFMA, SUBS, BNE = 38 instructions for 32 multiply-adds). Two or three leftover pixels at
 * the end of a row take a 3 x 4 or 2 x 4 tile on the same columns (30 or 22 instructions per 24
 * or 16 multiply-adds, and each weight is still read once per tile, not per pixel: rows 3 and 6
 * wide are common in MobileNets); one leftover pixel takes a 1 x 4 tile (VLDM of 2 inputs and 8
 * weights, 8 VFMA per two k steps); channels beyond a multiple of 4 take plain C. Sums are reassociated per output (bias first, then k in order) and fused when the FPU
 * has FMA: the float results differ from Keras' by rounding only.
 *
 * A dilated layer (mcus_fast_conv2d_dilated_f32) runs the same row on its real taps only, the
 * im2col reading them dh1 + 1 rows and dw1 + 1 columns apart; mcus_fast_conv2d_f32 is the row with
 * the taps adjacent as constants (its instructions as before the dilated entry).
 */
#include <float.h>

#include "mcus_fast.h"
#include "mcus_im2col.h"

#define MCUS_INLINE static inline __attribute__((always_inline))

#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__ARM_FEATURE_FMA) && defined(__OPTIMIZE__) \
    && !defined(MCUS_FAST_NO_ASM)
#define MCUS_F32_ASM 1
#else
#define MCUS_F32_ASM 0
#endif

/* Column of output pixel ox at col[k * np + pix]; the window's taps dh rows, dw columns apart. */
MCUS_INLINE void im2col_f32(const mcus_fast_conv_f32_t *p, const float *in, int32_t oy, int32_t ox,
                            float *col, int32_t np, int32_t pix, int32_t dh, int32_t dw)
{
    const int32_t in_h = p->in.h, in_w = p->in.w, in_c = p->in.c;
    const int32_t kh = p->g.kh, kw = p->g.kw;
    const int32_t y0 = oy * p->g.sh - p->g.pt, x0 = ox * p->g.sw - p->g.pl;
    float *dst = col + pix;
    int32_t ky, kx, c;

    for (ky = 0; ky < kh; ++ky) {
        const int32_t iy = y0 + ky * dh;
        const float *row = (iy >= 0 && iy < in_h) ? (const float *)mcus_row_ptr(&p->in, (void *)in, iy, 4) : 0;
        for (kx = 0; kx < kw; ++kx) {
            const int32_t ix = x0 + kx * dw;
            if (row && ix >= 0 && ix < in_w) {
                const float *src = row + ix * in_c;
                for (c = in_c; c > 0; --c) {
                    *dst = *src++;
                    dst += np;
                }
            } else {
                for (c = in_c; c > 0; --c) {
                    *dst = 0.0f;
                    dst += np;
                }
            }
        }
    }
}

MCUS_INLINE float clampf(float v, float lo, float hi)
{
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
}

/* Clamp np pixels x 4 channels of sums (a[4 * pixel + channel]) and store them: a loop over the
 * pixels, the 4 channels and the clamp's forms (none, lower, upper, both) written out. */
MCUS_INLINE void store_tile(const float *a, int32_t np, float *dst, int32_t ostride, float lo,
                            float hi)
{
    int32_t i;
    if (lo > -FLT_MAX && hi < FLT_MAX) {
        for (i = 0; i < np; ++i, a += 4, dst += ostride) {
            dst[0] = clampf(a[0], lo, hi);
            dst[1] = clampf(a[1], lo, hi);
            dst[2] = clampf(a[2], lo, hi);
            dst[3] = clampf(a[3], lo, hi);
        }
    } else if (lo > -FLT_MAX) {
        for (i = 0; i < np; ++i, a += 4, dst += ostride) {
            dst[0] = a[0] < lo ? lo : a[0];
            dst[1] = a[1] < lo ? lo : a[1];
            dst[2] = a[2] < lo ? lo : a[2];
            dst[3] = a[3] < lo ? lo : a[3];
        }
    } else if (hi < FLT_MAX) {
        for (i = 0; i < np; ++i, a += 4, dst += ostride) {
            dst[0] = a[0] > hi ? hi : a[0];
            dst[1] = a[1] > hi ? hi : a[1];
            dst[2] = a[2] > hi ? hi : a[2];
            dst[3] = a[3] > hi ? hi : a[3];
        }
    } else {
        for (i = 0; i < np; ++i, a += 4, dst += ostride) {
            dst[0] = a[0];
            dst[1] = a[1];
            dst[2] = a[2];
            dst[3] = a[3];
        }
    }
}

/* 4 pixels x 4 channels. col: [K][4]; w: [K][4]; dst: pixel 0, channel c; ostride in floats. */
static void tile44(const float *col, const float *w, int32_t K, const float *bias, float *dst,
                   int32_t ostride, float lo, float hi)
{
    float a[16];
    int32_t i;
#if MCUS_F32_ASM
    /* a[4 * pixel + channel] lives in s0-s15 during the loop. */
    static const float nobias[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    const float *b = bias ? bias : nobias;
#define MCUS_F32_STEP44                                                                          \
    "vldmia %[x]!, {s16-s19}\n\t"                                                                \
    "vldmia %[w]!, {s20-s23}\n\t"                                                                \
    "vfma.f32 s0, s16, s20\n\t" "vfma.f32 s1, s16, s21\n\t"                                      \
    "vfma.f32 s2, s16, s22\n\t" "vfma.f32 s3, s16, s23\n\t"                                      \
    "vfma.f32 s4, s17, s20\n\t" "vfma.f32 s5, s17, s21\n\t"                                      \
    "vfma.f32 s6, s17, s22\n\t" "vfma.f32 s7, s17, s23\n\t"                                      \
    "vfma.f32 s8, s18, s20\n\t" "vfma.f32 s9, s18, s21\n\t"                                      \
    "vfma.f32 s10, s18, s22\n\t" "vfma.f32 s11, s18, s23\n\t"                                    \
    "vfma.f32 s12, s19, s20\n\t" "vfma.f32 s13, s19, s21\n\t"                                    \
    "vfma.f32 s14, s19, s22\n\t" "vfma.f32 s15, s19, s23\n\t"
    {
        int32_t n;
        __asm__ volatile("vldmia %[b], {s0-s3}\n\t"
                         "vmov.f32 s4, s0\n\t" "vmov.f32 s5, s1\n\t" "vmov.f32 s6, s2\n\t"
                         "vmov.f32 s7, s3\n\t" "vmov.f32 s8, s0\n\t" "vmov.f32 s9, s1\n\t"
                         "vmov.f32 s10, s2\n\t" "vmov.f32 s11, s3\n\t" "vmov.f32 s12, s0\n\t"
                         "vmov.f32 s13, s1\n\t" "vmov.f32 s14, s2\n\t" "vmov.f32 s15, s3\n\t"
                         "tst %[k], #1\n\t"
                         "beq 2f\n\t"
                         MCUS_F32_STEP44
                         "2:\n\t"
                         "lsrs %[n], %[k], #1\n\t"
                         "beq 3f\n\t"
                         "1:\n\t"
                         MCUS_F32_STEP44 MCUS_F32_STEP44
                         "subs %[n], %[n], #1\n\t"
                         "bne 1b\n\t"
                         "3:\n\t"
                         "vstmia %[a], {s0-s15}\n\t"
                         : [x] "+r"(col), [w] "+r"(w), [n] "=&r"(n)
                         : [a] "r"(a), [b] "r"(b), [k] "r"(K)
                         : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
                           "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21",
                           "s22", "s23", "cc", "memory");
    }
#else
    int32_t k;
    for (i = 0; i < 16; ++i) {
        a[i] = bias ? bias[i & 3] : 0.0f;
    }
    for (k = K; k > 0; --k) {
        const float x0 = col[0], x1 = col[1], x2 = col[2], x3 = col[3];
        const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        col += 4;
        w += 4;
        a[0] = MCUS_FMA(x0, w0, a[0]); a[1] = MCUS_FMA(x0, w1, a[1]);
        a[2] = MCUS_FMA(x0, w2, a[2]); a[3] = MCUS_FMA(x0, w3, a[3]);
        a[4] = MCUS_FMA(x1, w0, a[4]); a[5] = MCUS_FMA(x1, w1, a[5]);
        a[6] = MCUS_FMA(x1, w2, a[6]); a[7] = MCUS_FMA(x1, w3, a[7]);
        a[8] = MCUS_FMA(x2, w0, a[8]); a[9] = MCUS_FMA(x2, w1, a[9]);
        a[10] = MCUS_FMA(x2, w2, a[10]); a[11] = MCUS_FMA(x2, w3, a[11]);
        a[12] = MCUS_FMA(x3, w0, a[12]); a[13] = MCUS_FMA(x3, w1, a[13]);
        a[14] = MCUS_FMA(x3, w2, a[14]); a[15] = MCUS_FMA(x3, w3, a[15]);
    }
#endif
    store_tile(a, 4, dst, ostride, lo, hi);
}

/* 3 or 2 pixels (np) x 4 channels on the 4-wide columns of the 4-pixel tile (the unused column
 * is zeros, loaded and ignored). col: [K][4]; w: [K][4]. */
static void tile_p4(const float *col, const float *w, int32_t K, int32_t np, const float *bias,
                    float *dst, int32_t ostride, float lo, float hi)
{
    float a[12];
#if MCUS_F32_ASM
    static const float nobias[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    const float *b = bias ? bias : nobias;
/* One k step: columns in registers X0..X2, the 4 weights in W0..W3. */
#define MCUS_F32_FMA4(ACC0, ACC1, ACC2, ACC3, X, W0, W1, W2, W3)                                \
    "vfma.f32 " ACC0 ", " X ", " W0 "\n\t" "vfma.f32 " ACC1 ", " X ", " W1 "\n\t"                 \
    "vfma.f32 " ACC2 ", " X ", " W2 "\n\t" "vfma.f32 " ACC3 ", " X ", " W3 "\n\t"
#define MCUS_F32_STEP24(X0, X1, X2, W0, W1, W2, W3)                                              \
    MCUS_F32_FMA4("s0", "s1", "s2", "s3", X0, W0, W1, W2, W3)                                    \
    MCUS_F32_FMA4("s4", "s5", "s6", "s7", X1, W0, W1, W2, W3)
#define MCUS_F32_STEP34(X0, X1, X2, W0, W1, W2, W3)                                              \
    MCUS_F32_STEP24(X0, X1, X2, W0, W1, W2, W3)                                                  \
    MCUS_F32_FMA4("s8", "s9", "s10", "s11", X2, W0, W1, W2, W3)
    /* Two k steps: columns in s16-s19 and s20-s23, weights in s24-s27 and s28-s31. */
#define MCUS_F32_TILE_P4(STEP)                                                                   \
    __asm__ volatile("vldmia %[b], {s0-s3}\n\t"                                                  \
                     "vmov.f32 s4, s0\n\t" "vmov.f32 s5, s1\n\t" "vmov.f32 s6, s2\n\t"           \
                     "vmov.f32 s7, s3\n\t" "vmov.f32 s8, s0\n\t" "vmov.f32 s9, s1\n\t"           \
                     "vmov.f32 s10, s2\n\t" "vmov.f32 s11, s3\n\t"                              \
                     "tst %[k], #1\n\t"                                                          \
                     "beq 2f\n\t"                                                                \
                     "vldmia %[x]!, {s16-s19}\n\t"                                               \
                     "vldmia %[w]!, {s24-s27}\n\t"                                               \
                     STEP("s16", "s17", "s18", "s24", "s25", "s26", "s27")                       \
                     "2:\n\t"                                                                    \
                     "lsrs %[n], %[k], #1\n\t"                                                   \
                     "beq 3f\n\t"                                                                \
                     "1:\n\t"                                                                    \
                     "vldmia %[x]!, {s16-s23}\n\t"                                               \
                     "vldmia %[w]!, {s24-s31}\n\t"                                               \
                     STEP("s16", "s17", "s18", "s24", "s25", "s26", "s27")                       \
                     STEP("s20", "s21", "s22", "s28", "s29", "s30", "s31")                       \
                     "subs %[n], %[n], #1\n\t"                                                   \
                     "bne 1b\n\t"                                                                \
                     "3:\n\t"                                                                    \
                     "vstmia %[a], {s0-s11}\n\t"                                                 \
                     : [x] "+r"(col), [w] "+r"(w), [n] "=&r"(n)                                  \
                     : [a] "r"(a), [b] "r"(b), [k] "r"(K)                                        \
                     : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", \
                       "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25",     \
                       "s26", "s27", "s28", "s29", "s30", "s31", "cc", "memory")
    {
        int32_t n;
        if (np == 3) {
            MCUS_F32_TILE_P4(MCUS_F32_STEP34);
        } else {
            MCUS_F32_TILE_P4(MCUS_F32_STEP24);
        }
    }
#else
    int32_t i, k;
    for (i = 0; i < 4 * np; ++i) {
        a[i] = bias ? bias[i & 3] : 0.0f;
    }
    for (k = K; k > 0; --k) {
        for (i = 0; i < np; ++i) {
            const float x = col[i];
            a[4 * i + 0] = MCUS_FMA(x, w[0], a[4 * i + 0]);
            a[4 * i + 1] = MCUS_FMA(x, w[1], a[4 * i + 1]);
            a[4 * i + 2] = MCUS_FMA(x, w[2], a[4 * i + 2]);
            a[4 * i + 3] = MCUS_FMA(x, w[3], a[4 * i + 3]);
        }
        col += 4;
        w += 4;
    }
#endif
    store_tile(a, np, dst, ostride, lo, hi);
}

/* 1 pixel x 4 channels. col: [K]; w: [K][4]. */
static void tile14(const float *col, const float *w, int32_t K, const float *bias, float *dst,
                   float lo, float hi)
{
    float a[4];
#if MCUS_F32_ASM
    a[0] = bias ? bias[0] : 0.0f;
    a[1] = bias ? bias[1] : 0.0f;
    a[2] = bias ? bias[2] : 0.0f;
    a[3] = bias ? bias[3] : 0.0f;
    {
        int32_t n;
        __asm__ volatile("vldmia %[a], {s0-s3}\n\t"
                         "tst %[k], #1\n\t"
                         "beq 2f\n\t"
                         "vldmia %[x]!, {s16}\n\t"
                         "vldmia %[w]!, {s20-s23}\n\t"
                         "vfma.f32 s0, s16, s20\n\t" "vfma.f32 s1, s16, s21\n\t"
                         "vfma.f32 s2, s16, s22\n\t" "vfma.f32 s3, s16, s23\n\t"
                         "2:\n\t"
                         "lsrs %[n], %[k], #1\n\t"
                         "beq 3f\n\t"
                         "1:\n\t"
                         "vldmia %[x]!, {s16-s17}\n\t"
                         "vldmia %[w]!, {s20-s27}\n\t"
                         "vfma.f32 s0, s16, s20\n\t" "vfma.f32 s1, s16, s21\n\t"
                         "vfma.f32 s2, s16, s22\n\t" "vfma.f32 s3, s16, s23\n\t"
                         "vfma.f32 s0, s17, s24\n\t" "vfma.f32 s1, s17, s25\n\t"
                         "vfma.f32 s2, s17, s26\n\t" "vfma.f32 s3, s17, s27\n\t"
                         "subs %[n], %[n], #1\n\t"
                         "bne 1b\n\t"
                         "3:\n\t"
                         "vstmia %[a], {s0-s3}\n\t"
                         : [x] "+r"(col), [w] "+r"(w), [n] "=&r"(n)
                         : [a] "r"(a), [k] "r"(K)
                         : "s0", "s1", "s2", "s3", "s16", "s17", "s20", "s21", "s22", "s23",
                           "s24", "s25", "s26", "s27", "cc", "memory");
    }
#else
    int32_t k;
    a[0] = bias ? bias[0] : 0.0f;
    a[1] = bias ? bias[1] : 0.0f;
    a[2] = bias ? bias[2] : 0.0f;
    a[3] = bias ? bias[3] : 0.0f;
    for (k = K; k > 0; --k) {
        const float x = *col++;
        a[0] = MCUS_FMA(x, w[0], a[0]);
        a[1] = MCUS_FMA(x, w[1], a[1]);
        a[2] = MCUS_FMA(x, w[2], a[2]);
        a[3] = MCUS_FMA(x, w[3], a[3]);
        w += 4;
    }
#endif
    dst[0] = clampf(a[0], lo, hi);
    dst[1] = clampf(a[1], lo, hi);
    dst[2] = clampf(a[2], lo, hi);
    dst[3] = clampf(a[3], lo, hi);
}

/* np pixels x 1 channel (the channels beyond a multiple of 4). col: [K][cs]; w: [K]. */
static void tile_n1(const float *col, const float *w, int32_t K, int32_t cs, int32_t np, float b,
                    float *dst, int32_t ostride, float lo, float hi)
{
    int32_t i, k;
    for (i = 0; i < np; ++i) {
        const float *x = col + i;
        float acc = b;
        for (k = 0; k < K; ++k) {
            acc = MCUS_FMA(x[k * cs], w[k], acc);
        }
        dst[i * ostride] = clampf(acc, lo, hi);
    }
}

/* One output row, the window's taps dh rows and dw columns apart (1, 1: undilated). */
MCUS_INLINE void conv2d_row(const mcus_fast_conv_f32_t *p, const mcus_io_t *io, int32_t oy,
                            int32_t dh, int32_t dw)
{
    const float *in = p->in.base ? (const float *)p->in.base : (const float *)io->in;
    float *out = (float *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 4);
    const int32_t ow = p->out.w, oc = p->out.c;
    const int32_t K = p->g.kh * p->g.kw * p->in.c;
    const int32_t groups = oc >> 2;
    const float lo = p->act_min, hi = p->act_max;
    float *zeros = (float *)io->scratch;
    float *col = zeros + p->in.c;
    int32_t ox, g, c;

    if (ow >= 4) { /* the padding columns of the 4-wide tiles */
        for (c = 0; c < p->in.c; ++c) {
            zeros[c] = 0.0f;
        }
    }
    for (ox = 0; ox + 4 <= ow; ox += 4) {
        const float *w = p->weights;
        float *dst = out + ox * oc;
        mcus_im2col4d_f32(&p->in, &p->g, dh, dw, in, oy, ox, 4, col, zeros);
        for (g = 0; g < groups; ++g) {
            tile44(col, w, K, p->bias ? p->bias + 4 * g : 0, dst + 4 * g, oc, lo, hi);
            w += 4 * K;
        }
        for (c = 4 * groups; c < oc; ++c) {
            tile_n1(col, w, K, 4, 4, p->bias ? p->bias[c] : 0.0f, dst + c, oc, lo, hi);
            w += K;
        }
    }
    if (ow - ox >= 2) {
        const int32_t np = ow - ox;
        const float *w = p->weights;
        float *dst = out + ox * oc;
        if (ow < 4) {
            for (c = 0; c < p->in.c; ++c) {
                zeros[c] = 0.0f;
            }
        }
        mcus_im2col4d_f32(&p->in, &p->g, dh, dw, in, oy, ox, np, col, zeros);
        for (g = 0; g < groups; ++g) {
            tile_p4(col, w, K, np, p->bias ? p->bias + 4 * g : 0, dst + 4 * g, oc, lo, hi);
            w += 4 * K;
        }
        for (c = 4 * groups; c < oc; ++c) {
            tile_n1(col, w, K, 4, np, p->bias ? p->bias[c] : 0.0f, dst + c, oc, lo, hi);
            w += K;
        }
        ox = ow;
    }
    for (; ox < ow; ++ox) {
        const float *w = p->weights;
        float *dst = out + ox * oc;
        im2col_f32(p, in, oy, ox, col, 1, 0, dh, dw);
        for (g = 0; g < groups; ++g) {
            tile14(col, w, K, p->bias ? p->bias + 4 * g : 0, dst + 4 * g, lo, hi);
            w += 4 * K;
        }
        for (c = 4 * groups; c < oc; ++c) {
            tile_n1(col, w, K, 1, 1, p->bias ? p->bias[c] : 0.0f, dst + c, oc, lo, hi);
            w += K;
        }
    }
}

/* flatten: the tiles inlined as when this was their only caller. */
__attribute__((flatten)) void mcus_fast_conv2d_f32(const void *params, const mcus_io_t *io,
                                                    int32_t oy)
{
    conv2d_row((const mcus_fast_conv_f32_t *)params, io, oy, 1, 1);
}

/* A dilated layer on its real taps (the generator's weights hold those only), read d apart: the
 * same row kernel, its own copy so that the undilated one keeps constant taps. */
void mcus_fast_conv2d_dilated_f32(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_conv_f32_t *p = (const mcus_fast_conv_f32_t *)params;
    conv2d_row(p, io, oy, p->dh1 + 1, p->dw1 + 1);
}
