/* Reference MEAN, int8, as TFLite's built-in kernel: an int32 sum over the reduced index, the
 * input offset times the count, one rescaling (ties up in TFLite's vector lanes, away from zero
 * elsewhere: mcus_requantize_depthwise), the output offset, the int8 clamp (mcus_shape.h). */
#include "mcus_kernels.h"

void mcus_mean_s8(const mcus_mean_s8_params_t *p, const int8_t *input, int8_t *output)
{
    int32_t o, r, i;

    for (o = 0; o < p->outer; ++o) {
        const int8_t *base = input + o * p->reduce * p->inner;
        for (i = 0; i < p->inner; ++i) {
            int32_t acc = p->input_offset * p->reduce, v;
            for (r = 0; r < p->reduce; ++r) {
                acc += base[r * p->inner + i];
            }
            v = mcus_requantize_depthwise(acc, p->multiplier, p->shift,
                                          i < p->vector_channels) + p->output_offset;
            v = v < -128 ? -128 : v;
            *output++ = (int8_t)(v > 127 ? 127 : v);
        }
    }
}
