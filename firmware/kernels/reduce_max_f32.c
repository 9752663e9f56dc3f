/* Reference REDUCE_MAX, float32: the input viewed as [outer][reduce][inner]; each output is the
 * largest input over the reduced index (TFLite's REDUCE_MAX: GlobalMaxPooling2D / 1D). */
#include "mcus_kernels.h"

void mcus_reduce_max_f32(const mcus_reduce_params_t *p, const float *input, float *output)
{
    int32_t o, r, i;

    for (o = 0; o < p->outer; ++o) {
        const float *base = input + o * p->reduce * p->inner;
        for (i = 0; i < p->inner; ++i) {
            float best = base[i];
            for (r = 1; r < p->reduce; ++r) {
                const float v = base[r * p->inner + i];
                best = v > best ? v : best;
            }
            *output++ = best;
        }
    }
}
