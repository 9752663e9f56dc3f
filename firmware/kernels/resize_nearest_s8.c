/* Reference RESIZE_NEAREST_NEIGHBOR, int8 (a copy: TFLite does not requantise), NHWC: each
 * output pixel copies the channels of the input pixel (rows[y], cols[x]) that the generator
 * computed with TFLite's formula. */
#include "mcus_kernels.h"

void mcus_resize_nearest_s8(const mcus_resize_nearest_params_t *p, const int8_t *input,
                            int8_t *output)
{
    int32_t y, x, c;

    for (y = 0; y < p->out_h; ++y) {
        for (x = 0; x < p->out_w; ++x) {
            const int8_t *src = input + ((int32_t)p->rows[y] * p->in_w + p->cols[x]) * p->channels;
            for (c = 0; c < p->channels; ++c) {
                *output++ = src[c];
            }
        }
    }
}
