/* Reference MEAN, float32: the input viewed as [outer][reduce][inner]; each output is the sum
 * over the reduced index, in order, divided by the count (TFLite's MEAN). */
#include "mcus_kernels.h"

void mcus_mean_f32(const mcus_mean_f32_params_t *p, const float *input, float *output)
{
    const float count = (float)p->reduce;
    int32_t o, r, i;

    for (o = 0; o < p->outer; ++o) {
        const float *base = input + o * p->reduce * p->inner;
        for (i = 0; i < p->inner; ++i) {
            float sum = 0.0f;
            for (r = 0; r < p->reduce; ++r) {
                sum += base[r * p->inner + i];
            }
            *output++ = sum / count;
        }
    }
}
