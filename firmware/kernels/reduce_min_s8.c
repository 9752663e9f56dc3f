/* Reference REDUCE_MIN, int8: the input viewed as [outer][reduce][inner]; each output is the
 * smallest input over the reduced index (TFLite's REDUCE_MIN: tf.reduce_min).
 * Compares the stored values: input and output share one quantisation (mcus_shape.h). */
#include "mcus_kernels.h"

void mcus_reduce_min_s8(const mcus_reduce_params_t *p, const int8_t *input, int8_t *output)
{
    int32_t o, r, i;

    for (o = 0; o < p->outer; ++o) {
        const int8_t *base = input + o * p->reduce * p->inner;
        for (i = 0; i < p->inner; ++i) {
            int8_t best = base[i];
            for (r = 1; r < p->reduce; ++r) {
                const int8_t v = base[r * p->inner + i];
                best = v < best ? v : best;
            }
            *output++ = best;
        }
    }
}
