/* Reference 2-D average pooling, float32, NHWC: the mean of the window's cells inside the input
 * (padded cells are not counted, as in TF). */
#include "mcus_kernels.h"

void mcus_avgpool2d_f32(const mcus_avgpool2d_f32_params_t *p, const float *input, float *output)
{
    const mcus_pool2d_geom_t *g = &p->g;
    int32_t oy, ox, c, py, px;

    for (oy = 0; oy < g->out_h; ++oy) {
        const int32_t in_y0 = oy * g->stride_h - g->pad_top;
        for (ox = 0; ox < g->out_w; ++ox) {
            const int32_t in_x0 = ox * g->stride_w - g->pad_left;
            for (c = 0; c < g->channels; ++c) {
                float sum = 0.0f, v;
                int32_t count = 0;
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
                v = count > 0 ? sum / (float)count : 0.0f;
                if (v < p->act_min) {
                    v = p->act_min;
                }
                if (v > p->act_max) {
                    v = p->act_max;
                }
                output[(oy * g->out_w + ox) * g->channels + c] = v;
            }
        }
    }
}
