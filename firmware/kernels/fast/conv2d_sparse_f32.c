/*
 * Sparse float32 2-D convolution (and Dense), one output row per call: only the non-zero weights.
 *
 * Per output channel: counts[c] values with their k distances (one byte each, see mcus_fast.h).
 * Four output pixels at a time, their columns side by side (col[k * 4 + pixel]): one entry is
 * LDRB (distance), ADD (move to k), VLDM of the 4 pixels' inputs at k, VLDM of the value and
 * 4 VFMA - 8 instructions for 4 multiply-adds, the zeros skipped.
 */
#include <float.h>

#include "mcus_fast.h"
#include "mcus_im2col.h"

#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__ARM_FEATURE_FMA) && defined(__OPTIMIZE__) \
    && !defined(MCUS_FAST_NO_ASM)
#define MCUS_SPF32_ASM 1
#else
#define MCUS_SPF32_ASM 0
#endif

void mcus_fast_conv2d_sparse_f32(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_conv_sparse_f32_t *p = (const mcus_fast_conv_sparse_f32_t *)params;
    const float *in = p->in.base ? (const float *)p->in.base : (const float *)io->in;
    float *out = (float *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 4);
    const int32_t ow = p->out.w, oc = p->out.c;
    const float lo = p->act_min, hi = p->act_max;
    float *zeros = (float *)io->scratch;
    float *col = zeros + p->in.c;
    int32_t c, ox, i;

    for (c = 0; c < p->in.c; ++c) {
        zeros[c] = 0.0f;
    }
    for (ox = 0; ox < ow; ox += 4) {
        const int32_t np = ow - ox >= 4 ? 4 : ow - ox;
        const float *v = p->values;
        const uint8_t *d = p->deltas;
        float *dst = out + ox * oc;
        mcus_im2col4_f32(&p->in, &p->g, in, oy, ox, np, col, zeros);
        for (c = 0; c < oc; ++c, ++dst) {
            float a[4];
            const float b = p->bias ? p->bias[c] : 0.0f;
            int32_t n = p->counts[c];
#if MCUS_SPF32_ASM
            const float *x = col;
            uint32_t t;
            a[0] = b;
#define MCUS_SPARSE_F32_ENTRY                                                                     \
            "ldrb   %[t], [%[d]], #1\n\t"                                                         \
            "add    %[x], %[x], %[t], lsl #4\n\t"                                                 \
            "vldmia %[x], {s16-s19}\n\t"                                                          \
            "vldmia %[v]!, {s20}\n\t"                                                             \
            "vfma.f32 s0, s16, s20\n\t"                                                           \
            "vfma.f32 s1, s17, s20\n\t"                                                           \
            "vfma.f32 s2, s18, s20\n\t"                                                           \
            "vfma.f32 s3, s19, s20\n\t"
            __asm__ volatile("vldr.32 s0, [%[a]]\n\t"
                             "vmov.f32 s1, s0\n\t"
                             "vmov.f32 s2, s0\n\t"
                             "vmov.f32 s3, s0\n\t"
                             "cmp    %[n], #0\n\t"
                             "beq    3f\n\t"
                             "lsrs   %[n], %[n], #1\n\t"
                             "bcc    1f\n\t"
                             "adds   %[n], %[n], #1\n\t"
                             "b      2f\n\t"
                             "1:\n\t" MCUS_SPARSE_F32_ENTRY
                             "2:\n\t" MCUS_SPARSE_F32_ENTRY
                             "subs   %[n], %[n], #1\n\t"
                             "bne    1b\n\t"
                             "3:\n\t"
                             "vstmia %[a], {s0-s3}\n\t"
                             : [d] "+r"(d), [v] "+r"(v), [x] "+r"(x), [n] "+r"(n), [t] "=&r"(t)
                             : [a] "r"(a)
                             : "s0", "s1", "s2", "s3", "s16", "s17", "s18", "s19", "s20", "cc",
                               "memory");
#else
            const float *x = col;
            a[0] = a[1] = a[2] = a[3] = b;
            for (; n > 0; --n) {
                const float wv = *v++;
                x += 4 * *d++;
                a[0] = MCUS_FMA(x[0], wv, a[0]);
                a[1] = MCUS_FMA(x[1], wv, a[1]);
                a[2] = MCUS_FMA(x[2], wv, a[2]);
                a[3] = MCUS_FMA(x[3], wv, a[3]);
            }
#endif
            for (i = 0; i < np; ++i) {
                float r = a[i];
                r = r < lo ? lo : r;
                dst[i * oc] = r > hi ? hi : r;
            }
        }
    }
}
