/* Reference RESIZE_BILINEAR, float32, NHWC: output pixel (y, x) mixes the four input pixels
 * (rows[2y] or rows[2y + 1], cols[2x] or cols[2x + 1]) with the weights of the fractions fy, fx
 * that the generator computed with TFLite's formula (ComputeInterpolationValues). */
#include "mcus_kernels.h"

void mcus_resize_bilinear_f32(const mcus_resize_bilinear_f32_params_t *p, const float *input,
                              float *output)
{
    const mcus_resize_bilinear_geom_t *g = &p->g;
    const int32_t row_len = g->in_w * g->channels;
    int32_t y, x, c;

    for (y = 0; y < g->out_h; ++y) {
        const float *up = input + (int32_t)g->rows[2 * y] * row_len;
        const float *down = input + (int32_t)g->rows[2 * y + 1] * row_len;
        const float fy = p->row_frac[y];
        for (x = 0; x < g->out_w; ++x) {
            const int32_t left = (int32_t)g->cols[2 * x] * g->channels;
            const int32_t right = (int32_t)g->cols[2 * x + 1] * g->channels;
            const float fx = p->col_frac[x];
            const float w_ul = (1.0f - fy) * (1.0f - fx), w_dl = fy * (1.0f - fx);
            const float w_ur = (1.0f - fy) * fx, w_dr = fy * fx;
            for (c = 0; c < g->channels; ++c) {
                *output++ = up[left + c] * w_ul + down[left + c] * w_dl +
                            up[right + c] * w_ur + down[right + c] * w_dr;
            }
        }
    }
}
