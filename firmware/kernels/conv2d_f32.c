/* Reference 2-D convolution, float32, NHWC input, OHWI filter. See mcus_kernels.h. */
#include "mcus_kernels.h"

void mcus_conv2d_f32(const mcus_conv2d_f32_params_t *p, const float *input, const float *filter,
                     const float *bias, float *output)
{
    const mcus_conv2d_geom_t *g = &p->g;
    int32_t oy, ox, oc, ky, kx, ic;

    for (oy = 0; oy < g->out_h; ++oy) {
        const int32_t in_y0 = oy * g->stride_h - g->pad_top;
        for (ox = 0; ox < g->out_w; ++ox) {
            const int32_t in_x0 = ox * g->stride_w - g->pad_left;
            for (oc = 0; oc < g->out_c; ++oc) {
                float acc = bias ? bias[oc] : 0.0f;
                for (ky = 0; ky < g->kernel_h; ++ky) {
                    const int32_t iy = in_y0 + ky;
                    if (iy < 0 || iy >= g->in_h) {
                        continue; /* padding row */
                    }
                    for (kx = 0; kx < g->kernel_w; ++kx) {
                        const int32_t ix = in_x0 + kx;
                        const float *in_px;
                        const float *w;
                        if (ix < 0 || ix >= g->in_w) {
                            continue; /* padding column */
                        }
                        in_px = input + (iy * g->in_w + ix) * g->in_c;
                        w = filter + ((oc * g->kernel_h + ky) * g->kernel_w + kx) * g->in_c;
                        for (ic = 0; ic < g->in_c; ++ic) {
                            acc += in_px[ic] * w[ic];
                        }
                    }
                }
                if (acc < p->act_min) {
                    acc = p->act_min;
                }
                if (acc > p->act_max) {
                    acc = p->act_max;
                }
                output[(oy * g->out_w + ox) * g->out_c + oc] = acc;
            }
        }
    }
}
