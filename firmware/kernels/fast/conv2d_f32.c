/*
 * float32 2-D convolution, one output row per call (also Dense: a 1 x 1 convolution of 1 x 1 x N).
 *
 * One output pixel at a time, 8 output channels per register block: 8 accumulators in s0-s7, the
 * pixel's column in s8-s15 (8 k), the weights in s16-s31. The generator lays the weights out per
 * group of 8 output channels as [k][8] (mcusearch.convert.layout.f32_weights; the last group is
 * padded with zero channels), so one VLDM loads 2 k of a group's weights, and 8 k are VLDM of 8
 * inputs, 4 VLDM of 16 weights and 64 VFMA: 71 instructions for 64 multiply-adds with the loop.
 * The bias is one VLDM per group, the clamp one VMAXNM / VMINNM per output (FPv5: Cortex-M7 and
 * M33), the store one VSTM per group - the channels of a pixel are contiguous in NHWC.
 *
 * The column: a 1 x 1 convolution without padding reads the input pixel itself (no copy, no
 * scratch); other convolutions copy the pixel's window into io->scratch (K floats, the runs of
 * kw * in_c contiguous values copied whole, padding 0.0f). Sums are the reference's order per
 * output (bias first, then k in order), fused when the FPU has FMA: the float results differ from
 * Keras' by rounding only.
 */
#include <float.h>

#include "mcus_fast.h"

#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__ARM_FEATURE_FMA) && defined(__OPTIMIZE__) \
    && !defined(MCUS_FAST_NO_ASM)
#define MCUS_F32_ASM 1
#else
#define MCUS_F32_ASM 0
#endif

#define CONV_F32_GROUP 8   /* output channels per register block (layout.f32_weights) */

static const float conv_f32_zero[CONV_F32_GROUP] = {0.0f};

#if MCUS_F32_ASM
/* dst[0, n) = src[0, n) (VLDM/VSTM of 4; GCC would turn a C loop into a memcpy call). */
static inline float *copy_f32(float *dst, const float *src, int32_t n)
{
    for (; n >= 8; n -= 8) {
        __asm__ volatile("vldmia %[s]!, {s0-s7}\n\t"
                         "vstmia %[d]!, {s0-s7}\n\t"
                         : [s] "+r"(src), [d] "+r"(dst)
                         : : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "memory");
    }
    if (n >= 4) {
        n -= 4;
        __asm__ volatile("vldmia %[s]!, {s0-s3}\n\t"
                         "vstmia %[d]!, {s0-s3}\n\t"
                         : [s] "+r"(src), [d] "+r"(dst) : : "s0", "s1", "s2", "s3", "memory");
    }
    for (; n > 0; --n) {
        __asm__ volatile("vldmia %[s]!, {s0}\n\t"
                         "vstmia %[d]!, {s0}\n\t"
                         : [s] "+r"(src), [d] "+r"(dst) : : "s0", "memory");
    }
    return dst;
}

static inline float *zero_f32(float *dst, int32_t n)
{
    for (; n > 0; --n) {
        __asm__ volatile("vstmia %[d]!, {%[z]}\n\t" : [d] "+r"(dst) : [z] "t"(0.0f) : "memory");
    }
    return dst;
}
#else
static float *copy_f32(float *dst, const float *src, int32_t n)
{
    for (; n > 0; --n) {
        *dst++ = *src++;
    }
    return dst;
}

static float *zero_f32(float *dst, int32_t n)
{
    for (; n > 0; --n) {
        *dst++ = 0.0f;
    }
    return dst;
}
#endif

/* Input row y0 + ky, or NULL outside the input. */
static const float *in_row(const mcus_fast_conv_f32_t *p, const float *in, int32_t y0, int32_t ky)
{
    const int32_t iy = y0 + ky;
    return iy >= 0 && iy < p->in.h ? (const float *)mcus_row_ptr(&p->in, (void *)in, iy, 4) : 0;
}

#define CONV_F32_ROWS 16   /* window heights up to this take precomputed row pointers */

/* The column of output pixel ox: col[(ky * kw + kx) * in_c + c], padding 0.0f. rows[ky]: in_row
 * of ky (ky < CONV_F32_ROWS; taller windows compute the others). */
static const float *column(const mcus_fast_conv_f32_t *p, const float *in, int32_t y0,
                           const float *const *rows, int32_t ox, float *col)
{
    const int32_t in_w = p->in.w, in_c = p->in.c, kw = p->g.kw;
    const int32_t x0 = ox * p->g.sw - p->g.pl;
    const int32_t xa = x0 < 0 ? 0 : x0, xb = x0 + kw > in_w ? in_w : x0 + kw;
    float *d = col;
    int32_t ky;

    for (ky = 0; ky < p->g.kh; ++ky) {
        const float *row = ky < CONV_F32_ROWS ? rows[ky] : in_row(p, in, y0, ky);
        if (!row || xb <= xa) {
            d = zero_f32(d, kw * in_c);
            continue;
        }
        if (xa > x0) {
            d = zero_f32(d, (xa - x0) * in_c);
        }
        d = copy_f32(d, row + xa * in_c, (xb - xa) * in_c);
        if (x0 + kw > xb) {
            d = zero_f32(d, (x0 + kw - xb) * in_c);
        }
    }
    return col;
}

/*
 * What pixel_groups reads from memory: the clamp (lo, hi; flags bit 0: lo > -FLT_MAX, bit 1:
 * hi < FLT_MAX), the bias pointer's step per group (32 bytes, or 0: the zero vector), and the
 * column as nrun runs of rlen contiguous inputs at runs[0 .. nrun) (a copied or in-place column:
 * one run of K; a window inside the input: its kh rows of kw * in_c, read in place). Field
 * offsets are read by the assembly.
 */
typedef struct {
    float lo, hi;               /* 0, 4 */
    uint32_t flags;             /* 8 */
    uint32_t bstep;             /* 12 */
    int32_t nrun;               /* 16 */
    int32_t rlen;               /* 20 */
    const float *const *runs;   /* 24 */
} conv_f32_prm_t;

#if MCUS_F32_ASM
#if defined(MCUS_FPV5)
#define CONV_F32_CLAMP(OP, R)                                                                     \
    OP " s0, s0, " R "\n\t" OP " s1, s1, " R "\n\t" OP " s2, s2, " R "\n\t"                       \
    OP " s3, s3, " R "\n\t" OP " s4, s4, " R "\n\t" OP " s5, s5, " R "\n\t"                       \
    OP " s6, s6, " R "\n\t" OP " s7, s7, " R "\n\t"
#define CONV_F32_LO CONV_F32_CLAMP("vmaxnm.f32", "s8")
#define CONV_F32_HI CONV_F32_CLAMP("vminnm.f32", "s9")
#else /* FPv4 (Cortex-M4): compare, then a conditional move */
#define CONV_F32_CMOV1(S, R, CC)                                                                  \
    "vcmp.f32 " S ", " R "\n\tvmrs APSR_nzcv, fpscr\n\tit " CC "\n\tvmov" CC ".f32 " S ", " R "\n\t"
#define CONV_F32_CMOV(R, CC)                                                                      \
    CONV_F32_CMOV1("s0", R, CC) CONV_F32_CMOV1("s1", R, CC) CONV_F32_CMOV1("s2", R, CC)           \
    CONV_F32_CMOV1("s3", R, CC) CONV_F32_CMOV1("s4", R, CC) CONV_F32_CMOV1("s5", R, CC)           \
    CONV_F32_CMOV1("s6", R, CC) CONV_F32_CMOV1("s7", R, CC)
#define CONV_F32_LO CONV_F32_CMOV("s8", "mi")
#define CONV_F32_HI CONV_F32_CMOV("s9", "gt")
#endif

/* One k of a group: input S (s8-s15) times the 8 weights W0..W7. */
#define CONV_F32_K(S, W0, W1, W2, W3, W4, W5, W6, W7)                                              \
    "vfma.f32 s0, " S ", " W0 "\n\tvfma.f32 s1, " S ", " W1 "\n\t"                                 \
    "vfma.f32 s2, " S ", " W2 "\n\tvfma.f32 s3, " S ", " W3 "\n\t"                                 \
    "vfma.f32 s4, " S ", " W4 "\n\tvfma.f32 s5, " S ", " W5 "\n\t"                                 \
    "vfma.f32 s6, " S ", " W6 "\n\tvfma.f32 s7, " S ", " W7 "\n\t"
#define CONV_F32_KLO(S) CONV_F32_K(S, "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23")
#define CONV_F32_KHI(S) CONV_F32_K(S, "s24", "s25", "s26", "s27", "s28", "s29", "s30", "s31")
#define CONV_F32_K2(SA, SB) "vldmia %[w]!, {s16-s31}\n\t" CONV_F32_KLO(SA) CONV_F32_KHI(SB)

/* The k loops of a group over one run at xp: n single k (after 3:), then n blocks of 8 k (after
 * 5:); LOAD1 / LOAD8 set n and the flags (Z: none). */
#define CONV_F32_RUN(LOAD1, LOAD8)                                                                \
    LOAD1 "beq     4f\n\t"                                                                        \
    "3:\n\t"                                                                                      \
    "vldmia  %[xp]!, {s8}\n\t"                                                                    \
    "vldmia  %[w]!, {s16-s23}\n\t"                                                                \
    CONV_F32_KLO("s8")                                                                            \
    "subs    %[n], %[n], #1\n\t"                                                                  \
    "bne     3b\n\t"                                                                              \
    "4:\n\t" LOAD8 "beq     6f\n\t"                                                               \
    "5:\n\t"                                                                                      \
    "vldmia  %[xp]!, {s8-s15}\n\t"                                                                \
    CONV_F32_K2("s8", "s9") CONV_F32_K2("s10", "s11")                                             \
    CONV_F32_K2("s12", "s13") CONV_F32_K2("s14", "s15")                                           \
    "subs    %[n], %[n], #1\n\t"                                                                  \
    "bne     5b\n\t"                                                                              \
    "6:\n\t"

/* The clamp of s0-s7 as q's flags say, the store of the group, the next group. */
#define CONV_F32_END                                                                              \
    "ldr     %[n], [%[a], #8]\n\t"                                                                \
    "tst     %[n], #1\n\t"                                                                        \
    "beq     7f\n\t"                                                                              \
    "vldr.32 s8, [%[a]]\n\t"                                                                      \
    CONV_F32_LO                                                                                   \
    "7:\n\t"                                                                                      \
    "tst     %[n], #2\n\t"                                                                        \
    "beq     8f\n\t"                                                                              \
    "vldr.32 s9, [%[a], #4]\n\t"                                                                  \
    CONV_F32_HI                                                                                   \
    "8:\n\t"                                                                                      \
    "vstmia  %[d]!, {s0-s7}\n\t"                                                                  \
    "subs    %[g], %[g], #1\n\t"                                                                  \
    "bne     1b\n\t"

#define CONV_F32_CLOBBER                                                                          \
    "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13",       \
    "s14", "s15", "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26",    \
    "s27", "s28", "s29", "s30", "s31", "cc", "memory"

/*
 * One pixel, `groups` groups of 8 output channels: dst[8 g + j] = clamp(bias[8 g + j] +
 * sum_k x[k] w[g][k][j]), the bias pointer stepping bs bytes a group. Per group: K % 8 single k
 * (VLDM 1 input, VLDM 8 weights, 8 VFMA, loop), then K / 8 blocks of 8 k (71 instructions for
 * 64 MACs). pixel_col: x a contiguous column of K; pixel_runs: the q->nrun runs of q->rlen
 * (bs = q->bstep).
 */
static inline __attribute__((always_inline)) const float *
pixel_col(const float *w, int32_t groups, const float *b, uint32_t bs, float *d, const float *x,
          int32_t K, const conv_f32_prm_t *q)
{
    const float *xp;
    int32_t n;
    __asm__ volatile("1:\n\t"
                     "vldmia  %[b], {s0-s7}\n\t"
                     "add     %[b], %[b], %[bs]\n\t"
                     "mov     %[xp], %[x]\n\t"
                     CONV_F32_RUN("ands    %[n], %[k], #7\n\t", "lsrs    %[n], %[k], #3\n\t")
                     CONV_F32_END
                     : [w] "+r"(w), [b] "+r"(b), [d] "+r"(d), [g] "+r"(groups), [xp] "=&r"(xp),
                       [n] "=&r"(n)
                     : [x] "r"(x), [k] "r"(K), [bs] "r"(bs), [a] "r"(q)
                     : CONV_F32_CLOBBER);
    return w;
}

static inline __attribute__((always_inline)) const float *
pixel_runs(const float *w, int32_t groups, const float *b, float *d, const conv_f32_prm_t *q)
{
    const float *xp;
    const float *const *r;
    int32_t n, m;
    __asm__ volatile("1:\n\t"
                     "vldmia  %[b], {s0-s7}\n\t"
                     "ldr     %[n], [%[a], #12]\n\t"
                     "add     %[b], %[b], %[n]\n\t"
                     "ldr     %[r], [%[a], #24]\n\t"
                     "ldr     %[m], [%[a], #16]\n\t"
                     "2:\n\t"
                     "ldr     %[xp], [%[r]], #4\n\t"
                     CONV_F32_RUN("ldr     %[n], [%[a], #20]\n\tands    %[n], %[n], #7\n\t",
                                  "ldr     %[n], [%[a], #20]\n\tlsrs    %[n], %[n], #3\n\t")
                     "subs    %[m], %[m], #1\n\t"
                     "bne     2b\n\t"
                     CONV_F32_END
                     : [w] "+r"(w), [b] "+r"(b), [d] "+r"(d), [g] "+r"(groups), [xp] "=&r"(xp),
                       [n] "=&r"(n), [m] "=&r"(m), [r] "=&r"(r)
                     : [a] "r"(q)
                     : CONV_F32_CLOBBER);
    return w;
}
#else
static const float *pixel_runs(const float *w, int32_t groups, const float *b, float *d,
                               const conv_f32_prm_t *q)
{
    for (; groups > 0; --groups) {
        float a[CONV_F32_GROUP];
        int32_t i, j, k;
        for (j = 0; j < CONV_F32_GROUP; ++j) {
            a[j] = b[j];
        }
        b = (const float *)(const void *)((const char *)b + q->bstep);
        for (i = 0; i < q->nrun; ++i) {
            const float *x = q->runs[i];
            for (k = 0; k < q->rlen; ++k, w += CONV_F32_GROUP) {
                for (j = 0; j < CONV_F32_GROUP; ++j) {
                    a[j] = MCUS_FMA(x[k], w[j], a[j]);
                }
            }
        }
        for (j = 0; j < CONV_F32_GROUP; ++j) {
            float v = a[j];
            v = (q->flags & 1u) && v < q->lo ? q->lo : v;
            *d++ = (q->flags & 2u) && v > q->hi ? q->hi : v;
        }
    }
    return w;
}

static const float *pixel_col(const float *w, int32_t groups, const float *b, uint32_t bs,
                              float *d, const float *x, int32_t K, const conv_f32_prm_t *q)
{
    conv_f32_prm_t one = *q;
    one.bstep = bs;
    one.nrun = 1;
    one.rlen = K;
    one.runs = &x;
    return pixel_runs(w, groups, b, d, &one);
}
#endif

/* Where pixel ox's window reads the input in place (its kh rows of kw * in_c values, inside the
 * input, rows[] all valid): runs[ky]; 0 if it needs a copied column. Taken for runs of at least
 * 8 values when a pixel has at most 4 groups (more groups amortise one copy better). */
static int32_t window_runs(const mcus_fast_conv_f32_t *p, const float *const *rows, int32_t ox,
                           const float **runs)
{
    const int32_t kh = p->g.kh, kw = p->g.kw, in_c = p->in.c;
    const int32_t x0 = ox * p->g.sw - p->g.pl;
    int32_t ky;
    if (kh > CONV_F32_ROWS || kw * in_c < 8 || p->out.c > 4 * CONV_F32_GROUP || x0 < 0
        || x0 + kw > p->in.w) {
        return 0;
    }
    for (ky = 0; ky < kh; ++ky) {
        if (!rows[ky]) {
            return 0;
        }
        runs[ky] = rows[ky] + x0 * in_c;
    }
    return kh;
}

void mcus_fast_conv2d_f32(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_conv_f32_t *p = (const mcus_fast_conv_f32_t *)params;
    const float *in = p->in.base ? (const float *)p->in.base : (const float *)io->in;
    float *out = (float *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 4);
    const int32_t ow = p->out.w, oc = p->out.c, in_c = p->in.c, kh = p->g.kh;
    const int32_t K = kh * p->g.kw * in_c;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const int32_t full = oc / CONV_F32_GROUP, tail = oc % CONV_F32_GROUP;
    const float *bias = p->bias ? p->bias : conv_f32_zero;
    const uint32_t bstep = p->bias ? CONV_F32_GROUP * 4u : 0u;
    /* a 1 x 1 window without padding: pixel ox's column is input pixel ox * sw itself */
    const int32_t in_place = kh == 1 && p->g.kw == 1 && p->g.pl == 0 && y0 >= 0 && y0 < p->in.h;
    const float *rows[CONV_F32_ROWS], *runs[CONV_F32_ROWS];
    const float *x = 0;
    float tbias[CONV_F32_GROUP], tout[CONV_F32_GROUP];
    conv_f32_prm_t q;
    int32_t ox, j;

    q.lo = p->act_min;
    q.hi = p->act_max;
    q.flags = (q.lo > -FLT_MAX ? 1u : 0u) | (q.hi < FLT_MAX ? 2u : 0u);
    q.runs = runs;
    q.rlen = K / kh;
    for (j = 0; j < CONV_F32_GROUP; ++j) {         /* the last group's bias, padded with zeros */
        tbias[j] = p->bias && j < tail ? p->bias[full * CONV_F32_GROUP + j] : 0.0f;
    }
    if (in_place) {
        x = (const float *)mcus_row_ptr(&p->in, (void *)in, y0, 4);
    } else {
        for (j = 0; j < kh && j < CONV_F32_ROWS; ++j) {
            rows[j] = in_row(p, in, y0, j);
        }
    }
    for (ox = 0; ox < ow; ++ox) {
        float *dst = out + ox * oc;
        const float *w = p->weights;
        const float *col = 0;
        if (in_place) {
            col = x + ox * p->g.sw * in_c;
        } else if ((q.nrun = window_runs(p, rows, ox, runs)) == 0) {
            col = column(p, in, y0, rows, ox, (float *)io->scratch);
        }
        if (full) {
            q.bstep = bstep;
            w = col ? pixel_col(w, full, bias, bstep, dst, col, K, &q) : pixel_runs(w, full, bias, dst, &q);
        }
        if (tail) {
            q.bstep = 0;
            if (col) {
                pixel_col(w, 1, tbias, 0, tout, col, K, &q);
            } else {
                pixel_runs(w, 1, tbias, tout, &q);
            }
            for (j = 0; j < tail; ++j) {
                dst[full * CONV_F32_GROUP + j] = tout[j];
            }
        }
    }
}
