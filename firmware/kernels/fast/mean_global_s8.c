/*
 * int8 MEAN over the whole H x W of an H x W x C map (GlobalAveragePooling2D, and 1-D sequences
 * viewed as columns), streamed as the global average pool is (avgpool_global_s8.c): one call per
 * INPUT row, the per-channel int32 sums in the output tensor's own buffer (4 bytes a channel,
 * sized by the generator), the last call writing the C results over them. The sums are exact,
 * and the rescaling is the reference kernel's (../mean_s8.c: TFLite MEAN's, ties up in the
 * keep_dims kernel's 16-channel vector blocks, away from zero elsewhere), so the layer is
 * bit-exact with it; only the summation is faster (SXTAB16, mcus_gap.h: about 1.1 instructions
 * an input value on DSP cores, against 6 for the reference loop) and the map before it no longer
 * needs to exist whole. Never the model output (the caller's buffer has no room for the sums).
 */
#include "mcus_gap.h"

void mcus_fast_mean_global_s8(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_mean_s8_t *p = (const mcus_fast_mean_s8_t *)params;
    const int32_t *acc = mcus_gap_add_row(&p->in, &p->out, io, row);
    const int32_t ch = p->in.c;
    int32_t c;

    if (row == p->in.h - 1) {
        int8_t *o = (int8_t *)p->out.base;
        for (c = 0; c < ch; ++c) {          /* o[c] overwrites bytes of sums already read */
            int32_t v = mcus_requantize_depthwise(acc[c] + p->input_bias, p->multiplier, p->shift,
                                                  c < p->vector_channels) + p->output_offset;
            v = v < -128 ? -128 : v;
            o[c] = (int8_t)(v > 127 ? 127 : v);
        }
    }
}
