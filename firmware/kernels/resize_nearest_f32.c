/* Reference RESIZE_NEAREST_NEIGHBOR, float32, NHWC: each output pixel copies the channels of
 * the input pixel (rows[y], cols[x]) that the generator computed with TFLite's formula. */
#include "mcus_kernels.h"

void mcus_resize_nearest_f32(const mcus_resize_nearest_params_t *p, const float *input,
                             float *output)
{
    int32_t y, x, c;

    for (y = 0; y < p->out_h; ++y) {
        for (x = 0; x < p->out_w; ++x) {
            const float *src = input + ((int32_t)p->rows[y] * p->in_w + p->cols[x]) * p->channels;
            for (c = 0; c < p->channels; ++c) {
                *output++ = src[c];
            }
        }
    }
}
