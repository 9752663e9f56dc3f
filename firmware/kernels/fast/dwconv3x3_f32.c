/*
 * float32 depthwise 3 x 3 convolution (depth multiplier 1, any stride and padding, at least 4
 * channels), one output row per call: bias, then the window's cells in (ky, kx) order as fused
 * multiply-adds, clamp - the reference kernel's order per output (../depthwise_conv2d_f32.c).
 *
 * Groups of 4 channels (NHWC: one pixel's 4 channels are 16 contiguous bytes, one VLDM); the
 * generator re-lays the weights out per group as [ky][kx][4] (mcusearch.convert.layout.
 * f32_dw3x3_weights), so one VLDM with write-back loads a cell's 4 weights. For c % 4 != 0 the
 * last group is [c - 4, c), overlapping the previous one (those outputs are written twice, with
 * the same values). The accumulators live in FPU registers; io->scratch is not used.
 *
 * FPU path (M4/M7/M33 hard float, optimised builds): stride 1, all three window rows inside the
 * input, two horizontally adjacent output pixels whose windows are inside the input columns: the
 * 4 input columns of a window row (VLDM each) serve both pixels (in-register sliding window), the
 * row's 3 weight cells are loaded once - per window row 4 + 3 VLDM, 3 ADD, 1 ADD and 24 VFMA for
 * 24 multiply-adds; 8 accumulators in s8-s15, inputs in s16-s31, weights in s0-s3. Other pixels
 * whose window is inside the input (stride 2, an odd one) take one4 (the same for one pixel: per
 * window row 6 VLDM, 3 ADD, 12 VFMA); pixels at the edges and the first and last rows take px4:
 * one pixel of 4 channels in C, cells outside the input skipped (as the reference kernel does).
 */
#include <float.h>

#include "mcus_fast.h"

static const float dw3_zero[4] = {0.0f, 0.0f, 0.0f, 0.0f};

/* One output pixel (4 channels) at window origin (y0, x0): the valid cells only. */
static void px4(const float *const rows[3], int32_t ky0, int32_t ky1, int32_t x0, int32_t in_w,
                int32_t ch, const float *w, const float *b, float lo, float hi, float *d)
{
    float a0 = b[0], a1 = b[1], a2 = b[2], a3 = b[3];
    const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + 3 > in_w ? in_w - x0 : 3;
    int32_t ky, kx;
    for (ky = ky0; ky < ky1; ++ky) {
        for (kx = kx0; kx < kx1; ++kx) {
            const float *x = rows[ky] + (x0 + kx) * ch;
            const float *v = w + (ky * 3 + kx) * 4;
            a0 = MCUS_FMA(x[0], v[0], a0);
            a1 = MCUS_FMA(x[1], v[1], a1);
            a2 = MCUS_FMA(x[2], v[2], a2);
            a3 = MCUS_FMA(x[3], v[3], a3);
        }
    }
    a0 = a0 < lo ? lo : a0;
    a1 = a1 < lo ? lo : a1;
    a2 = a2 < lo ? lo : a2;
    a3 = a3 < lo ? lo : a3;
    d[0] = a0 > hi ? hi : a0;
    d[1] = a1 > hi ? hi : a1;
    d[2] = a2 > hi ? hi : a2;
    d[3] = a3 > hi ? hi : a3;
}

#if defined(__ARM_FP) && defined(__ARM_FEATURE_FMA) && defined(__OPTIMIZE__)
#define DW3_FPU 1
/* One window row for the pixel pair: columns at X, X + CS, X + 2 CS, X + 3 CS; weights at W. */
#define DW3_ROW                                                                                   \
    "vldmia  %[x], {s16-s19}\n\t"                                                                 \
    "add     %[x], %[x], %[cs]\n\t"                                                               \
    "vldmia  %[x], {s20-s23}\n\t"                                                                 \
    "add     %[x], %[x], %[cs]\n\t"                                                               \
    "vldmia  %[x], {s24-s27}\n\t"                                                                 \
    "add     %[x], %[x], %[cs]\n\t"                                                               \
    "vldmia  %[x], {s28-s31}\n\t"                                                                 \
    "vldmia  %[w]!, {s0-s3}\n\t"                                                                  \
    "vfma.f32 s8, s16, s0\n\tvfma.f32 s9, s17, s1\n\tvfma.f32 s10, s18, s2\n\tvfma.f32 s11, s19, s3\n\t" \
    "vfma.f32 s12, s20, s0\n\tvfma.f32 s13, s21, s1\n\tvfma.f32 s14, s22, s2\n\tvfma.f32 s15, s23, s3\n\t" \
    "vldmia  %[w]!, {s0-s3}\n\t"                                                                  \
    "vfma.f32 s8, s20, s0\n\tvfma.f32 s9, s21, s1\n\tvfma.f32 s10, s22, s2\n\tvfma.f32 s11, s23, s3\n\t" \
    "vfma.f32 s12, s24, s0\n\tvfma.f32 s13, s25, s1\n\tvfma.f32 s14, s26, s2\n\tvfma.f32 s15, s27, s3\n\t" \
    "vldmia  %[w]!, {s0-s3}\n\t"                                                                  \
    "vfma.f32 s8, s24, s0\n\tvfma.f32 s9, s25, s1\n\tvfma.f32 s10, s26, s2\n\tvfma.f32 s11, s27, s3\n\t" \
    "vfma.f32 s12, s28, s0\n\tvfma.f32 s13, s29, s1\n\tvfma.f32 s14, s30, s2\n\tvfma.f32 s15, s31, s3\n\t"

/* Two adjacent output pixels (4 channels each, stride 1, every cell inside the input): the
 * input at window row k, first column, is r[k] + xo (bytes); outputs at d and d + cs bytes. */
static inline __attribute__((always_inline)) void
pair4(const float *r0, const float *r1, const float *r2, uint32_t xo, uint32_t cs, const float *w,
      const float *b, float lo, float hi, float *d)
{
    register float a0 __asm__("s8"), a1 __asm__("s9"), a2 __asm__("s10"), a3 __asm__("s11");
    register float c0 __asm__("s12"), c1 __asm__("s13"), c2 __asm__("s14"), c3 __asm__("s15");
    const char *x;
    __asm__("vldmia  %[b], {s8-s11}\n\t"
            "vldmia  %[b], {s12-s15}\n\t"
            "add     %[x], %[r0], %[xo]\n\t" DW3_ROW
            "add     %[x], %[r1], %[xo]\n\t" DW3_ROW
            "add     %[x], %[r2], %[xo]\n\t" DW3_ROW
            : "=t"(a0), "=t"(a1), "=t"(a2), "=t"(a3), "=t"(c0), "=t"(c1), "=t"(c2), "=t"(c3),
              [x] "=&r"(x), [w] "+r"(w)
            : [b] "r"(b), [r0] "r"(r0), [r1] "r"(r1), [r2] "r"(r2), [xo] "r"(xo), [cs] "r"(cs)
            : "s0", "s1", "s2", "s3", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24",
              "s25", "s26", "s27", "s28", "s29", "s30", "s31", "memory");
    {
        float *e = (float *)(void *)((char *)d + cs);
        a0 = a0 < lo ? lo : a0;
        a1 = a1 < lo ? lo : a1;
        a2 = a2 < lo ? lo : a2;
        a3 = a3 < lo ? lo : a3;
        c0 = c0 < lo ? lo : c0;
        c1 = c1 < lo ? lo : c1;
        c2 = c2 < lo ? lo : c2;
        c3 = c3 < lo ? lo : c3;
        if (hi < FLT_MAX) {
            a0 = a0 > hi ? hi : a0;
            a1 = a1 > hi ? hi : a1;
            a2 = a2 > hi ? hi : a2;
            a3 = a3 > hi ? hi : a3;
            c0 = c0 > hi ? hi : c0;
            c1 = c1 > hi ? hi : c1;
            c2 = c2 > hi ? hi : c2;
            c3 = c3 > hi ? hi : c3;
        }
        d[0] = a0, d[1] = a1, d[2] = a2, d[3] = a3;
        e[0] = c0, e[1] = c1, e[2] = c2, e[3] = c3;
    }
}

/* One window row for one pixel: columns at X, X + CS, X + 2 CS; weights at W. */
#define DW3_ROW1                                                                                  \
    "vldmia  %[x], {s16-s19}\n\t"                                                                 \
    "add     %[x], %[x], %[cs]\n\t"                                                               \
    "vldmia  %[x], {s20-s23}\n\t"                                                                 \
    "add     %[x], %[x], %[cs]\n\t"                                                               \
    "vldmia  %[x], {s24-s27}\n\t"                                                                 \
    "vldmia  %[w]!, {s0-s3}\n\t"                                                                  \
    "vfma.f32 s8, s16, s0\n\tvfma.f32 s9, s17, s1\n\tvfma.f32 s10, s18, s2\n\tvfma.f32 s11, s19, s3\n\t" \
    "vldmia  %[w]!, {s0-s3}\n\t"                                                                  \
    "vfma.f32 s8, s20, s0\n\tvfma.f32 s9, s21, s1\n\tvfma.f32 s10, s22, s2\n\tvfma.f32 s11, s23, s3\n\t" \
    "vldmia  %[w]!, {s0-s3}\n\t"                                                                  \
    "vfma.f32 s8, s24, s0\n\tvfma.f32 s9, s25, s1\n\tvfma.f32 s10, s26, s2\n\tvfma.f32 s11, s27, s3\n\t"

/* One output pixel (4 channels) whose 9 cells are inside the input: per window row 3 + 3 VLDM,
 * 3 ADD and 12 VFMA (any stride; the pixels pair4 does not take). */
static inline __attribute__((always_inline)) void
one4(const float *r0, const float *r1, const float *r2, uint32_t xo, uint32_t cs, const float *w,
     const float *b, float lo, float hi, float *d)
{
    register float a0 __asm__("s8"), a1 __asm__("s9"), a2 __asm__("s10"), a3 __asm__("s11");
    const char *x;
    __asm__("vldmia  %[b], {s8-s11}\n\t"
            "add     %[x], %[r0], %[xo]\n\t" DW3_ROW1
            "add     %[x], %[r1], %[xo]\n\t" DW3_ROW1
            "add     %[x], %[r2], %[xo]\n\t" DW3_ROW1
            : "=t"(a0), "=t"(a1), "=t"(a2), "=t"(a3), [x] "=&r"(x), [w] "+r"(w)
            : [b] "r"(b), [r0] "r"(r0), [r1] "r"(r1), [r2] "r"(r2), [xo] "r"(xo), [cs] "r"(cs)
            : "s0", "s1", "s2", "s3", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24",
              "s25", "s26", "s27", "memory");
    a0 = a0 < lo ? lo : a0;
    a1 = a1 < lo ? lo : a1;
    a2 = a2 < lo ? lo : a2;
    a3 = a3 < lo ? lo : a3;
    if (hi < FLT_MAX) {
        a0 = a0 > hi ? hi : a0;
        a1 = a1 > hi ? hi : a1;
        a2 = a2 > hi ? hi : a2;
        a3 = a3 > hi ? hi : a3;
    }
    d[0] = a0, d[1] = a1, d[2] = a2, d[3] = a3;
}
#else
#define DW3_FPU 0
#endif

void mcus_fast_dwconv3x3_f32(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_dwconv_f32_t *p = (const mcus_fast_dwconv_f32_t *)params;
    const float *in = p->in.base ? (const float *)p->in.base : (const float *)io->in;
    float *out = (float *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 4);
    const int32_t in_h = p->in.h, in_w = p->in.w, ch = p->in.c, ow = p->out.w;
    const int32_t sw = p->g.sw, pl = p->g.pl;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const float lo = p->act_min, hi = p->act_max;
    const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = y0 + 3 > in_h ? in_h - y0 : 3;
    /* outputs [oxa, oxb) have their whole window inside the input columns */
    const int32_t oxa = (pl + sw - 1) / sw;
    (void)oxa;                                   /* used by the FPU path only */
    int32_t oxb = in_w + pl - 3 < 0 ? 0 : (in_w + pl - 3) / sw + 1;
    const float *rows[3];
    int32_t ky, c0;

    oxb = oxb > ow ? ow : oxb;
    for (ky = 0; ky < 3; ++ky) {
        const int32_t iy = y0 + ky;
        rows[ky] = (iy >= 0 && iy < in_h) ? (const float *)mcus_row_ptr(&p->in, (void *)in, iy, 4) : in;
    }
    for (c0 = 0; c0 < ch; c0 += 4) {
        const int32_t c = c0 + 4 <= ch ? c0 : ch - 4;       /* the last group may overlap */
        const float *const r[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
        const float *w = p->weights + (c0 >> 2) * 36;
        const float *b = p->bias ? p->bias + c : dw3_zero;
        float *d = out + c;
        int32_t ox = 0;
#if DW3_FPU
        if (ky0 == 0 && ky1 == 3) {
            const uint32_t cs = (uint32_t)ch * 4u;
            for (; ox < oxa && ox < ow; ++ox) {
                px4(r, ky0, ky1, ox * sw - pl, in_w, ch, w, b, lo, hi, d + ox * ch);
            }
            for (; sw == 1 && ox + 1 < oxb; ox += 2) {
                pair4(r[0], r[1], r[2], (uint32_t)(ox - pl) * cs, cs, w, b, lo, hi, d + ox * ch);
            }
            for (; ox < oxb; ++ox) {
                one4(r[0], r[1], r[2], (uint32_t)(ox * sw - pl) * cs, cs, w, b, lo, hi, d + ox * ch);
            }
        }
#endif
        for (; ox < ow; ++ox) {
            px4(r, ky0, ky1, ox * sw - pl, in_w, ch, w, b, lo, hi, d + ox * ch);
        }
    }
}
