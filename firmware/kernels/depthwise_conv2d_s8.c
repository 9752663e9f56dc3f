/* Reference depthwise 2-D convolution (any depth multiplier: output channel c reads input channel c / multiplier), int8 with per-channel
 * requantisation (TFLite semantics, see mcus_requantize_depthwise in mcus_kernels.h). */
#include "mcus_kernels.h"

void mcus_depthwise_conv2d_s8(const mcus_depthwise_conv2d_s8_params_t *p, const int8_t *input,
                              const int8_t *filter, const int32_t *bias, int8_t *output)
{
    const mcus_conv2d_geom_t *g = &p->g;
    const int32_t mult = p->depth_multiplier > 1 ? p->depth_multiplier : 1;
    int32_t oy, ox, c, ky, kx;

    for (oy = 0; oy < g->out_h; ++oy) {
        const int32_t in_y0 = oy * g->stride_h - g->pad_top;
        for (ox = 0; ox < g->out_w; ++ox) {
            const int32_t in_x0 = ox * g->stride_w - g->pad_left;
            for (c = 0; c < g->out_c; ++c) {
                int32_t acc = 0;
                for (ky = 0; ky < g->kernel_h; ++ky) {
                    const int32_t iy = in_y0 + ky;
                    if (iy < 0 || iy >= g->in_h) {
                        continue; /* padding: (zero_point + input_offset) * w = 0 */
                    }
                    for (kx = 0; kx < g->kernel_w; ++kx) {
                        const int32_t ix = in_x0 + kx;
                        if (ix < 0 || ix >= g->in_w) {
                            continue;
                        }
                        acc += ((int32_t)input[(iy * g->in_w + ix) * g->in_c + c / mult] + p->input_offset)
                               * (int32_t)filter[(ky * g->kernel_w + kx) * g->out_c + c];
                    }
                }
                if (bias) {
                    acc += bias[c];
                }
                acc = mcus_requantize_depthwise(acc, p->multiplier[c], p->shift[c], c < p->vector_channels);
                acc += p->output_offset;
                if (acc < p->act_min) {
                    acc = p->act_min;
                }
                if (acc > p->act_max) {
                    acc = p->act_max;
                }
                output[(oy * g->out_w + ox) * g->out_c + c] = (int8_t)acc;
            }
        }
    }
}
