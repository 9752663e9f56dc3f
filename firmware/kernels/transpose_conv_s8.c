/* Reference TRANSPOSE_CONV (Conv2DTranspose), int8: TFLite's scatter read backwards - output pixel
 * (oy, ox) sums input pixel (iy, ix) times filter tap (ky, kx) wherever oy = iy * stride_h -
 * pad_top + ky and ox = ix * stride_w - pad_left + kx - then the bias and the per-output-channel
 * requantisation (MultiplyByQuantizedMultiplier: TFLite's TRANSPOSE_CONV rounds ties away from
 * zero, not as CONV_2D's ruy path). Filter [out_c][kh][kw][in_c]; bias may be 0. Output channels
 * go in blocks of TCONV_BLOCK sums, so that each tap's position test serves a block. */
#include "mcus_kernels.h"

#define TCONV_BLOCK 16

/* sum over n channels of (x + off) w: on DSP cores four at a time (SXTAB16 adds the offset to
 * two sign-extended inputs, SMLAD multiplies two pairs), then one at a time. */
static inline int32_t tconv_dot(const int8_t *x, const int8_t *w, int32_t n, int32_t off)
{
    int32_t sum = 0, i = 0;
#if defined(__ARM_FEATURE_DSP) && defined(__OPTIMIZE__)
    const uint32_t off2 = (uint32_t)(uint16_t)off | ((uint32_t)(uint16_t)off << 16);
    for (; i + 4 <= n; i += 4) {
        uint32_t xv, wv, x02, x13, w02, w13;
        __builtin_memcpy(&xv, x + i, 4);
        __builtin_memcpy(&wv, w + i, 4);
        __asm__("sxtab16 %[x02], %[o], %[xv]\n\t"
                "sxtab16 %[x13], %[o], %[xv], ror #8\n\t"
                "sxtb16  %[w02], %[wv]\n\t"
                "sxtb16  %[w13], %[wv], ror #8\n\t"
                "smlad   %[s], %[x02], %[w02], %[s]\n\t"
                "smlad   %[s], %[x13], %[w13], %[s]\n\t"
                : [s] "+r"(sum), [x02] "=&r"(x02), [x13] "=&r"(x13), [w02] "=&r"(w02),
                  [w13] "=&r"(w13)
                : [o] "r"(off2), [xv] "r"(xv), [wv] "r"(wv));
    }
#endif
    for (; i < n; ++i) {
        sum += ((int32_t)x[i] + off) * (int32_t)w[i];
    }
    return sum;
}

void mcus_transpose_conv_s8(const mcus_conv2d_s8_params_t *p, const int8_t *input,
                            const int8_t *filter, const int32_t *bias, int8_t *output)
{
    const mcus_conv2d_geom_t *g = &p->g;
    const int32_t in_c = g->in_c, off = p->input_offset;
    const int32_t w_step = g->kernel_h * g->kernel_w * in_c;     /* one output channel's filter */
    int32_t oy, ox, c0, ky, kx, j;

    for (oy = 0; oy < g->out_h; ++oy) {
        /* the taps that reach row oy: ky = ky0, ky0 + stride, ... (input row (oy + pad - ky) /
         * stride, falling as ky grows) */
        const int32_t ky0 = (oy + g->pad_top) % g->stride_h;
        for (ox = 0; ox < g->out_w; ++ox) {
            const int32_t kx0 = (ox + g->pad_left) % g->stride_w;
            for (c0 = 0; c0 < g->out_c; c0 += TCONV_BLOCK) {
                const int32_t nb = g->out_c - c0 < TCONV_BLOCK ? g->out_c - c0 : TCONV_BLOCK;
                int32_t acc[TCONV_BLOCK];
                for (j = 0; j < nb; ++j) {
                    acc[j] = bias ? bias[c0 + j] : 0;
                }
                for (ky = ky0; ky < g->kernel_h; ky += g->stride_h) {
                    const int32_t iy = (oy + g->pad_top - ky) / g->stride_h;
                    if (iy >= g->in_h) {
                        continue;
                    }
                    if (iy < 0) {
                        break;
                    }
                    for (kx = kx0; kx < g->kernel_w; kx += g->stride_w) {
                        const int32_t ix = (ox + g->pad_left - kx) / g->stride_w;
                        const int8_t *in_px, *w;
                        if (ix >= g->in_w) {
                            continue;
                        }
                        if (ix < 0) {
                            break;
                        }
                        in_px = input + (iy * g->in_w + ix) * in_c;
                        w = filter + c0 * w_step + (ky * g->kernel_w + kx) * in_c;
                        for (j = 0; j < nb; ++j, w += w_step) {
                            acc[j] += tconv_dot(in_px, w, in_c, off);
                        }
                    }
                }
                for (j = 0; j < nb; ++j) {
                    int32_t v = mcus_multiply_by_quantized_multiplier(acc[j], p->multiplier[c0 + j],
                                                                      p->shift[c0 + j]);
                    v += p->output_offset;
                    v = v < p->act_min ? p->act_min : v;
                    v = v > p->act_max ? p->act_max : v;
                    output[(oy * g->out_w + ox) * g->out_c + c0 + j] = (int8_t)v;
                }
            }
        }
    }
}
