/* Reference TRANSPOSE_CONV (Conv2DTranspose), float32: output pixel (oy, ox) sums input pixel
 * (iy, ix) times filter tap (ky, kx) wherever oy = iy * stride_h - pad_top + ky and ox = ix *
 * stride_w - pad_left + kx (TFLite's scatter read backwards), plus the bias, clamped. Filter
 * [out_c][kh][kw][in_c]; bias may be 0. */
#include "mcus_kernels.h"

void mcus_transpose_conv_f32(const mcus_conv2d_f32_params_t *p, const float *input,
                             const float *filter, const float *bias, float *output)
{
    const mcus_conv2d_geom_t *g = &p->g;
    int32_t oy, ox, oc, ky, kx, ic;

    for (oy = 0; oy < g->out_h; ++oy) {
        for (ox = 0; ox < g->out_w; ++ox) {
            for (oc = 0; oc < g->out_c; ++oc) {
                float acc = bias ? bias[oc] : 0.0f;
                for (ky = 0; ky < g->kernel_h; ++ky) {
                    const int32_t ty = oy + g->pad_top - ky;
                    if (ty < 0 || ty % g->stride_h || ty / g->stride_h >= g->in_h) {
                        continue;
                    }
                    for (kx = 0; kx < g->kernel_w; ++kx) {
                        const int32_t tx = ox + g->pad_left - kx;
                        const float *in_px, *w;
                        if (tx < 0 || tx % g->stride_w || tx / g->stride_w >= g->in_w) {
                            continue;
                        }
                        in_px = input + ((ty / g->stride_h) * g->in_w + tx / g->stride_w) * g->in_c;
                        w = filter + ((oc * g->kernel_h + ky) * g->kernel_w + kx) * g->in_c;
                        for (ic = 0; ic < g->in_c; ++ic) {
                            acc += in_px[ic] * w[ic];
                        }
                    }
                }
                acc = acc < p->act_min ? p->act_min : acc;
                acc = acc > p->act_max ? p->act_max : acc;
                *output++ = acc;
            }
        }
    }
}
