/* Reference depthwise 2-D convolution (any depth multiplier: output channel c reads input channel c / multiplier), float32, NHWC input,
 * [1][KH][KW][C] filter. See mcus_kernels.h. */
#include "mcus_kernels.h"

void mcus_depthwise_conv2d_f32(const mcus_depthwise_conv2d_f32_params_t *p, const float *input,
                               const float *filter, const float *bias, float *output)
{
    const mcus_conv2d_geom_t *g = &p->g;
    const int32_t mult = p->depth_multiplier > 1 ? p->depth_multiplier : 1;
    int32_t oy, ox, c, ky, kx;

    for (oy = 0; oy < g->out_h; ++oy) {
        const int32_t in_y0 = oy * g->stride_h - g->pad_top;
        for (ox = 0; ox < g->out_w; ++ox) {
            const int32_t in_x0 = ox * g->stride_w - g->pad_left;
            for (c = 0; c < g->out_c; ++c) {
                float acc = bias ? bias[c] : 0.0f;
                for (ky = 0; ky < g->kernel_h; ++ky) {
                    const int32_t iy = in_y0 + ky;
                    if (iy < 0 || iy >= g->in_h) {
                        continue; /* padding row */
                    }
                    for (kx = 0; kx < g->kernel_w; ++kx) {
                        const int32_t ix = in_x0 + kx;
                        if (ix < 0 || ix >= g->in_w) {
                            continue; /* padding column */
                        }
                        acc += input[(iy * g->in_w + ix) * g->in_c + c / mult]
                               * filter[(ky * g->kernel_w + kx) * g->out_c + c];
                    }
                }
                if (acc < p->act_min) {
                    acc = p->act_min;
                }
                if (acc > p->act_max) {
                    acc = p->act_max;
                }
                output[(oy * g->out_w + ox) * g->out_c + c] = acc;
            }
        }
    }
}
