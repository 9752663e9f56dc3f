/*
 * Sparse int8 2-D convolution (and Dense), one output row per call: only the non-zero weights.
 *
 * Per output channel the weights are a list of (k distance, weight) byte pairs (see mcus_fast.h).
 * A group of 8 output pixels (4 for the last ones) is computed together: im2col puts their columns
 * side by side as int16 (input + input offset, col[k * G + pixel]), so one entry is one LDRH
 * (distance and weight), UXTB + ADD (move to k), SXTB (the weight), then per 4 pixels one LDRD of
 * their inputs at k and four SMLABB/SMLATB: 13 instructions for 8 multiply-accumulates (8 for 4),
 * the zeros skipped entirely. Requantisation as in conv2d_s8.c.
 */
#include "mcus_fast.h"
#include "mcus_im2col.h"

#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
#define MCUS_SPARSE_S8_DECODE(SHIFT)                                                              \
    "ldrh   %[t], [%[e]], #2\n\t"                                                                 \
    "uxtb   %[x01], %[t]\n\t"                                                                     \
    "add    %[x], %[x], %[x01], lsl #" SHIFT "\n\t"                                               \
    "sxtb   %[t], %[t], ror #8\n\t"
#define MCUS_SPARSE_S8_MAC4(OFF, A0, A1, A2, A3)                                                  \
    "ldrd   %[x01], %[x23], [%[x], #" OFF "]\n\t"                                                 \
    "smlabb %[" A0 "], %[x01], %[t], %[" A0 "]\n\t"                                               \
    "smlatb %[" A1 "], %[x01], %[t], %[" A1 "]\n\t"                                               \
    "smlabb %[" A2 "], %[x23], %[t], %[" A2 "]\n\t"                                               \
    "smlatb %[" A3 "], %[x23], %[t], %[" A3 "]\n\t"
/* n = entries / 2 iterations; an odd count enters the first one at its second half */
#define MCUS_SPARSE_LOOP(ENTRY)                                                                   \
    "lsrs   %[n], %[n], #1\n\t"                                                                   \
    "bcc    1f\n\t"                                                                               \
    "adds   %[n], %[n], #1\n\t"                                                                   \
    "b      2f\n\t"                                                                               \
    "1:\n\t" ENTRY "2:\n\t" ENTRY                                                                 \
    "subs   %[n], %[n], #1\n\t"                                                                   \
    "bne    1b\n\t"
#endif

/* Accumulate one channel's entries over a group of G pixels (a[0..G-1] hold the bias).
 * Not inlined: the 8-pixel loop needs all 14 allocatable registers. */
static __attribute__((noinline)) const uint8_t *
channel_s8(const uint8_t *e, int32_t n, const int16_t *col, int32_t *a, const int32_t G)
{
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    if (n) {
        const int16_t *x = col;
        uint32_t t, x01, x23;
        if (G == 8) {
            int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5], a6 = a[6], a7 = a[7];
            __asm__ volatile(MCUS_SPARSE_LOOP(MCUS_SPARSE_S8_DECODE("4")
                                              MCUS_SPARSE_S8_MAC4("0", "a0", "a1", "a2", "a3")
                                              MCUS_SPARSE_S8_MAC4("8", "a4", "a5", "a6", "a7"))
                             : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
                               [a4] "+r"(a4), [a5] "+r"(a5), [a6] "+r"(a6), [a7] "+r"(a7),
                               [e] "+r"(e), [x] "+r"(x), [n] "+r"(n), [t] "=&r"(t),
                               [x01] "=&r"(x01), [x23] "=&r"(x23)
                             :
                             : "cc", "memory");
            a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3; a[4] = a4; a[5] = a5; a[6] = a6; a[7] = a7;
        } else {
            int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
            __asm__ volatile(MCUS_SPARSE_LOOP(MCUS_SPARSE_S8_DECODE("3")
                                              MCUS_SPARSE_S8_MAC4("0", "a0", "a1", "a2", "a3"))
                             : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3),
                               [e] "+r"(e), [x] "+r"(x), [n] "+r"(n), [t] "=&r"(t),
                               [x01] "=&r"(x01), [x23] "=&r"(x23)
                             :
                             : "cc", "memory");
            a[0] = a0; a[1] = a1; a[2] = a2; a[3] = a3;
        }
    }
#else
    const int16_t *x = col;
    int32_t i;
    for (; n > 0; --n) {
        const int32_t wv = (int8_t)e[1];
        x += G * e[0];
        e += 2;
        for (i = 0; i < G; ++i) {
            a[i] += x[i] * wv;
        }
    }
#endif
    return e;
}

/* One group: G pixels side by side (np of them real), all output channels. */
static inline __attribute__((always_inline)) void
group_s8(const mcus_fast_conv_sparse_s8_t *p, const mcus_rq_t *rq, int32_t fast,
         const int16_t *col, int32_t np, int8_t *dst, const int32_t G)
{
    const int32_t oc = p->out.c;
    const int32_t amin = p->act_min, amax = p->act_max;
    const uint8_t *e = p->entries;
    int32_t c, i;

    for (c = 0; c < oc; ++c, ++dst) {
        int32_t a[8];
        const int32_t b = p->bias ? p->bias[c] : 0;
        const int32_t n = p->counts[c];
        if (n == 0) {
            /* no non-zero weight: every pixel gets the requantised bias */
            const int8_t v = (int8_t)mcus_clamp_s8(mcus_rq_apply(&rq[c], b), amin, amax);
            for (i = 0; i < np; ++i) {
                dst[i * oc] = v;
            }
            continue;
        }
        for (i = 0; i < G; ++i) {
            a[i] = b;
        }
        e = channel_s8(e, n, col, a, G);
#if MCUS_FAST_DSP
        if (fast && np == G) {
            const mcus_rq_t *q = rq + c;
            for (i = 0; i < G; ++i) {
                MCUS_RQ_OUT(dst[i * oc], a[i], q);
            }
            continue;
        }
#else
        (void)fast;
#endif
        for (i = 0; i < np; ++i) {
            dst[i * oc] = (int8_t)mcus_clamp_s8(mcus_rq_apply(&rq[c], a[i]), amin, amax);
        }
    }
}

void mcus_fast_conv2d_sparse_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_conv_sparse_s8_t *p = (const mcus_fast_conv_sparse_s8_t *)params;
    const int8_t *in = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
    int8_t *out = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 1);
    const int32_t ow = p->out.w, oc = p->out.c;
    mcus_rq_t *rq = (mcus_rq_t *)io->scratch;
    int16_t *col = (int16_t *)(void *)(rq + oc);
    int8_t *zp = (int8_t *)(col + 8 * p->g.kh * p->g.kw * p->in.c);
    int32_t c, ox, fast = MCUS_FAST_DSP && p->act_min == -128 && p->act_max == 127;

    for (c = 0; c < p->in.c; ++c) {
        zp[c] = (int8_t)-p->input_offset;
    }
    for (c = 0; c < oc; ++c) {
        rq[c] = mcus_rq_make(p->mult[c], p->shift[c], p->output_offset);
        fast &= rq[c].s >= 0;
    }
    for (ox = 0; ox < ow;) {
        const int32_t left = ow - ox;
        if (left > 4) {
            const int32_t np = left >= 8 ? 8 : left;
            mcus_im2col_s8(&p->in, &p->g, in, p->input_offset, oy, ox, np, col, zp, 8);
            group_s8(p, rq, fast, col, np, out + ox * oc, 8);
            ox += np;
        } else {
            mcus_im2col_s8(&p->in, &p->g, in, p->input_offset, oy, ox, left, col, zp, 4);
            group_s8(p, rq, fast, col, left, out + ox * oc, 4);
            ox += left;
        }
    }
}
