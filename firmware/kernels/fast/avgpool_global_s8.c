/*
 * Global average pooling (a window that is the whole H x W input, one 1 x 1 x C output), streamed:
 * one call per INPUT row, so the layer before it never keeps more than a few rows (the planner
 * gives this layer H calls, each reading input row r only; mcusearch/convert/fast.py). The per-
 * channel sums live in the output tensor's own buffer, sized 4 bytes a channel by the generator
 * and live from the first call to the last read: row 0 starts them, every call adds its row's W
 * pixels, the last call writes the C results over the sums in place (result c lands on bytes that
 * sum c has been read from, or earlier ones), then the int8 mean of TFLite's AVERAGE_POOL_2D (mcus_average_s8: half away from zero), clamp.
 * A row's sums of 4 channels at a time take SXTAB16 (mcus_gap.h): 1.1 instructions an input value.
 * The output's ring has one slot: every call's row pointer is the buffer's base. Never the model
 * output (the caller's buffer has no room for the sums). io->scratch is not used.
 */
#include "mcus_gap.h"

void mcus_fast_avgpool_global_s8(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_avgpool_s8_t *p = (const mcus_fast_avgpool_s8_t *)params;
    const int32_t *acc = mcus_gap_add_row(&p->in, &p->out, io, row);
    const int32_t ch = p->in.c;
    int32_t c;

    if (row == p->in.h - 1) {
        int8_t *o = (int8_t *)p->out.base;
        const int32_t count = p->in.h * p->in.w;
        for (c = 0; c < ch; ++c) {
            int32_t v;
            v = mcus_average_s8(acc[c], count);
            v = v < p->act_min ? p->act_min : v;
            o[c] = (int8_t)(v > p->act_max ? p->act_max : v);
        }
    }
}
