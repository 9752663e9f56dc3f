/*
 * Global average pooling (a window that is the whole H x W input, one 1 x 1 x C output), streamed:
 * one call per INPUT row, so the layer before it never keeps more than a few rows (the planner
 * gives this layer H calls, each reading input row r only; mcusearch/convert/fast.py). The per-
 * channel sums live in the output tensor's own buffer, sized 4 bytes a channel by the generator
 * and live from the first call to the last read: row 0 starts them, every call adds its row's W
 * pixels, the last call writes the C results over the sums in place (result c lands on bytes that
 * sum c has been read from, or earlier ones), then the int8 mean of TFLite's AVERAGE_POOL_2D (mcus_average_s8: half away from zero), clamp.
 * A row's sums of 4 channels at a time take SXTAB16 (pool_row4): 1.1 instructions an input value.
 * The output's ring has one slot: every call's row pointer is the buffer's base. Never the model
 * output (the caller's buffer has no room for the sums). io->scratch is not used.
 */
#include "mcus_fast.h"

/* One row's w pixels added to the sums of channels [0, 4 * (ch / 4)), returned (DSP cores, w <=
 * 256): per pixel and 4 channels LDR and SXTAB16 x 2 into two 16-bit sums per word (exact: |sum|
 * <= 128 w <= 32768 fits, and 16-bit wrap-around cannot change a sum that fits), then per 4
 * channels 4 instructions into the int32 sums; two pixels a step (LDR x 2, ADD, SXTAB16 x 4, SUBS,
 * BNE: 4.5 instructions a pixel and 4 channels). Elsewhere 0: the caller's scalar loop does all. */
static int32_t pool_row4(int32_t *acc, const int8_t *x, int32_t w, int32_t ch)
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

void mcus_fast_avgpool_global_s8(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_avgpool_s8_t *p = (const mcus_fast_avgpool_s8_t *)params;
    const int8_t *in = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
    const int8_t *x = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, row, sizeof(int8_t));
    int32_t *acc = (int32_t *)p->out.base;
    const int32_t ch = p->in.c, n = p->in.w * ch;
    int32_t c, i;

    (void)io;
    if (row == 0) {
        for (c = 0; c < ch; ++c) {
            acc[c] = 0;
        }
    }
    c = pool_row4(acc, x, p->in.w, ch);
    for (i = 0; i < n; i += ch) {
        int32_t k;
        for (k = c; k < ch; ++k) {
            acc[k] += x[i + k];
        }
    }
    if (row == p->in.h - 1) {
        int8_t *o = (int8_t *)p->out.base;
        const int32_t count = p->in.h * p->in.w;
        for (c = 0; c < ch; ++c) {
            int32_t v;
            v = mcus_average_s8(acc[c], count);
            v = v < p->act_min ? p->act_min : v;
            o[c] = (int8_t)(v > p->act_max ? p->act_max : v);
        }
    }
}
