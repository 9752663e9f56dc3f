/* Reference 2-D average pooling, int8, NHWC. Output shares the input's scale and zero point; the
 * mean of the cells inside the input is rounded half away from zero (TFLite AVERAGE_POOL_2D). */
#include "mcus_kernels.h"

void mcus_avgpool2d_s8(const mcus_avgpool2d_s8_params_t *p, const int8_t *input, int8_t *output)
{
    const mcus_pool2d_geom_t *g = &p->g;
    int32_t oy, ox, c, py, px;

    for (oy = 0; oy < g->out_h; ++oy) {
        const int32_t in_y0 = oy * g->stride_h - g->pad_top;
        for (ox = 0; ox < g->out_w; ++ox) {
            const int32_t in_x0 = ox * g->stride_w - g->pad_left;
            for (c = 0; c < g->channels; ++c) {
                int32_t sum = 0, count = 0, v;
                for (py = 0; py < g->pool_h; ++py) {
                    const int32_t iy = in_y0 + py;
                    if (iy < 0 || iy >= g->in_h) {
                        continue;
                    }
                    for (px = 0; px < g->pool_w; ++px) {
                        const int32_t ix = in_x0 + px;
                        if (ix < 0 || ix >= g->in_w) {
                            continue;
                        }
                        sum += input[(iy * g->in_w + ix) * g->channels + c];
                        ++count;
                    }
                }
                v = count > 0 ? mcus_average_s8(sum, count) : 0;
                if (v < p->act_min) {
                    v = p->act_min;
                }
                if (v > p->act_max) {
                    v = p->act_max;
                }
                output[(oy * g->out_w + ox) * g->channels + c] = (int8_t)v;
            }
        }
    }
}
