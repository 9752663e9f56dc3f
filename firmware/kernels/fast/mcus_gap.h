/*
 * mcus_gap.h - the per-channel sums of a streamed global pool, one input row per call: shared by
 * global average pooling (avgpool_global_s8.c: TFLite AVERAGE_POOL_2D's rounding) and global MEAN
 * (mean_global_s8.c: TFLite MEAN's rescaling). The sums are exact int32 in both, so the kernels
 * differ only in the last call's rescaling.
 */
#ifndef MCUS_GAP_H
#define MCUS_GAP_H

#include "mcus_fast.h"

/* One row's w pixels added to the sums of channels [0, 4 * (ch / 4)), returned (DSP cores, w <=
 * 256): per pixel and 4 channels LDR and SXTAB16 x 2 into two 16-bit sums per word (exact: |sum|
 * <= 128 w <= 32768 fits, and 16-bit wrap-around cannot change a sum that fits), then per 4
 * channels 4 instructions into the int32 sums; two pixels a step (LDR x 2, ADD, SXTAB16 x 4, SUBS,
 * BNE: 4.5 instructions a pixel and 4 channels). Elsewhere 0: the caller's scalar loop does all. */
static inline int32_t mcus_gap_row4(int32_t *acc, const int8_t *x, int32_t w, int32_t ch)
{
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    int32_t c;
    if (w > 256) {
        return 0;
    }
    for (c = 0; c + 4 <= ch; c += 4) {
        const int8_t *q = x + c;
        uint32_t s02 = 0, s13 = 0, v, u;
        int32_t i = w >> 1;
        if (w & 1) {                      /* an odd pixel first */
            v = mcus_ld32(q);
            q += ch;
            s02 = mcus_sxtab16(0, v);
            s13 = mcus_sxtab16_ror8(0, v);
        }
        if (i) {                          /* two pixels a step: 4.5 instructions a pixel */
            __asm__ volatile("1:\n\t"
                             "ldr     %[v], [%[q]]\n\t"
                             "ldr     %[u], [%[q], %[ch]]\n\t"
                             "add     %[q], %[q], %[ch], lsl #1\n\t"
                             "sxtab16 %[a], %[a], %[v]\n\t"
                             "sxtab16 %[b], %[b], %[v], ror #8\n\t"
                             "sxtab16 %[a], %[a], %[u]\n\t"
                             "sxtab16 %[b], %[b], %[u], ror #8\n\t"
                             "subs    %[i], %[i], #1\n\t"
                             "bne     1b\n\t"
                             : [q] "+r"(q), [a] "+r"(s02), [b] "+r"(s13), [i] "+r"(i),
                               [v] "=&r"(v), [u] "=&r"(u)
                             : [ch] "r"(ch)
                             : "cc", "memory");
        }
        acc[c] += (int16_t)s02;
        acc[c + 1] += (int16_t)s13;
        acc[c + 2] += (int32_t)s02 >> 16;
        acc[c + 3] += (int32_t)s13 >> 16;
    }
    return c;
#else
    (void)acc, (void)x, (void)w, (void)ch;
    return 0;
#endif
}

/* Input row `row` of a global pool's input added to the per-channel sums in its output buffer
 * (row 0 starts them at 0): 4 channels at a time by mcus_gap_row4, the rest one by one. -> the
 * sums. */
static inline int32_t *mcus_gap_add_row(const mcus_buf_t *in, const mcus_buf_t *out,
                                        const mcus_io_t *io, int32_t row)
{
    const int8_t *base = in->base ? (const int8_t *)in->base : (const int8_t *)io->in;
    const int8_t *x = (const int8_t *)mcus_row_ptr(in, (void *)base, row, 1);
    int32_t *acc = (int32_t *)out->base;
    const int32_t ch = in->c, n = in->w * ch;
    int32_t c, i;

    if (row == 0) {
        for (c = 0; c < ch; ++c) {
            acc[c] = 0;
        }
    }
    c = mcus_gap_row4(acc, x, in->w, ch);
    for (i = 0; i < n; i += ch) {
        int32_t k;
        for (k = c; k < ch; ++k) {
            acc[k] += x[i + k];
        }
    }
    return acc;
}

#endif /* MCUS_GAP_H */
