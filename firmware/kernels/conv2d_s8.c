/* Reference 2-D convolution, int8 with per-output-channel requantisation (TFLite semantics). */
#include "mcus_kernels.h"

void mcus_conv2d_s8(const mcus_conv2d_s8_params_t *p, const int8_t *input, const int8_t *filter,
                    const int32_t *bias, int8_t *output)
{
    const mcus_conv2d_geom_t *g = &p->g;
    int32_t oy, ox, oc, ky, kx, ic;

    for (oy = 0; oy < g->out_h; ++oy) {
        const int32_t in_y0 = oy * g->stride_h - g->pad_top;
        for (ox = 0; ox < g->out_w; ++ox) {
            const int32_t in_x0 = ox * g->stride_w - g->pad_left;
            for (oc = 0; oc < g->out_c; ++oc) {
                int32_t acc = 0;
                for (ky = 0; ky < g->kernel_h; ++ky) {
                    const int32_t iy = in_y0 + ky;
                    if (iy < 0 || iy >= g->in_h) {
                        continue; /* padding: (zero_point + input_offset) * w = 0 */
                    }
                    for (kx = 0; kx < g->kernel_w; ++kx) {
                        const int32_t ix = in_x0 + kx;
                        const int8_t *in_px;
                        const int8_t *w;
                        if (ix < 0 || ix >= g->in_w) {
                            continue;
                        }
                        in_px = input + (iy * g->in_w + ix) * g->in_c;
                        w = filter + ((oc * g->kernel_h + ky) * g->kernel_w + kx) * g->in_c;
                        for (ic = 0; ic < g->in_c; ++ic) {
                            acc += ((int32_t)in_px[ic] + p->input_offset) * (int32_t)w[ic];
                        }
                    }
                }
                if (bias) {
                    acc += bias[oc];
                }
                acc = mcus_requantize(acc, p->multiplier[oc], p->shift[oc]);
                acc += p->output_offset;
                if (acc < p->act_min) {
                    acc = p->act_min;
                }
                if (acc > p->act_max) {
                    acc = p->act_max;
                }
                output[(oy * g->out_w + ox) * g->out_c + oc] = (int8_t)acc;
            }
        }
    }
}
