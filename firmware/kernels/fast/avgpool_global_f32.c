/*
 * Global average pooling (a window that is the whole H x W input, one 1 x 1 x C output), streamed:
 * one call per INPUT row, so the layer before it never keeps more than a few rows (the planner
 * gives this layer H calls, each reading input row r only; mcusearch/convert/fast.py). The per-
 * channel sums live in the output tensor's own buffer, sized 4 bytes a channel by the generator
 * and live from the first call to the last read: row 0 starts them, every call adds its row's W
 * pixels, the last call writes the C results over the sums in place (result c lands on bytes that
 * sum c has been read from, or earlier ones), then the sum divided by the count (the reference kernel's order: rows, then columns), clamp.
 * The output's ring has one slot: every call's row pointer is the buffer's base. Never the model
 * output (the caller's buffer has no room for the sums). io->scratch is not used.
 *
 * FPU path (optimised builds): 8 channels' sums in s0-s7 while a row's pixels are added (VLDM of
 * 8 inputs, ADD of the pixel stride, 8 VADD: 10 instructions for 8 values) - per channel the same
 * additions in the same order as the C loop.
 */
#include "mcus_fast.h"

#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__OPTIMIZE__) && !defined(MCUS_FAST_NO_ASM)
#define GAP_F32_ASM 1

/* acc[0, 8) += the 8 channels at x of w pixels, cs bytes apart. */
static inline void add8(float *acc, const float *x, int32_t w, uint32_t cs)
{
    __asm__ volatile("vldmia  %[a], {s0-s7}\n\t"
                     "1:\n\t"
                     "vldmia  %[x], {s8-s15}\n\t"
                     "add     %[x], %[x], %[cs]\n\t"
                     "vadd.f32 s0, s0, s8\n\tvadd.f32 s1, s1, s9\n\t"
                     "vadd.f32 s2, s2, s10\n\tvadd.f32 s3, s3, s11\n\t"
                     "vadd.f32 s4, s4, s12\n\tvadd.f32 s5, s5, s13\n\t"
                     "vadd.f32 s6, s6, s14\n\tvadd.f32 s7, s7, s15\n\t"
                     "subs    %[w], %[w], #1\n\t"
                     "bne     1b\n\t"
                     "vstmia  %[a], {s0-s7}\n\t"
                     : [x] "+r"(x), [w] "+r"(w)
                     : [a] "r"(acc), [cs] "r"(cs)
                     : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
                       "s12", "s13", "s14", "s15", "cc", "memory");
}
#else
#define GAP_F32_ASM 0
#endif

void mcus_fast_avgpool_global_f32(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_avgpool_f32_t *p = (const mcus_fast_avgpool_f32_t *)params;
    const float *in = p->in.base ? (const float *)p->in.base : (const float *)io->in;
    const float *x = (const float *)mcus_row_ptr(&p->in, (void *)in, row, sizeof(float));
    float *acc = (float *)p->out.base;
    const int32_t ch = p->in.c, n = p->in.w * ch;
    int32_t c, i;

    (void)io;
    if (row == 0) {
        for (c = 0; c < ch; ++c) {
            acc[c] = 0;
        }
    }
    c = 0;
#if GAP_F32_ASM
    for (; c + 8 <= ch && p->in.w > 0; c += 8) {
        add8(acc + c, x + c, p->in.w, (uint32_t)ch * 4u);
    }
#endif
    for (i = 0; i < n; i += ch) {
        int32_t k;
        for (k = c; k < ch; ++k) {
            acc[k] += x[i + k];
        }
    }
    if (row == p->in.h - 1) {
        float *o = (float *)p->out.base;
        const int32_t count = p->in.h * p->in.w;
        for (c = 0; c < ch; ++c) {
            float v;
            v = acc[c] / (float)count;
            v = v < p->act_min ? p->act_min : v;
            o[c] = v > p->act_max ? p->act_max : v;
        }
    }
}
