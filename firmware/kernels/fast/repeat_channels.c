/* Channel repetition, one row per call: every input value written `repeats` times in a row, so
 * output channel k is input channel k / repeats - the input of a depthwise convolution with that
 * depth multiplier, computed by the multiplier-1 row kernels (mcusearch/convert/lowering.py).
 * Any dtype (mcus_moves.h); int8 and float32 have their own loops (a value is one load and
 * `repeats` stores). */
#include "mcus_moves.h"

void mcus_fast_repeat_channels(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_repeat_channels_t *p = (const mcus_fast_repeat_channels_t *)params;
    const uint32_t m = p->repeats, n = (uint32_t)p->in.w * p->in.c;
    const uint8_t *s = mcus_move_src(&p->in, io, row, p->elem);
    uint8_t *d = mcus_move_dst(&p->out, io, row, p->elem);
    uint32_t i, j;

    if (p->elem == 4) {
        const uint32_t *s4 = (const uint32_t *)(const void *)s;
        uint32_t *d4 = (uint32_t *)(void *)d;
        for (i = 0; i < n; ++i) {
            const uint32_t v = s4[i];
            for (j = 0; j < m; ++j) {
                *d4++ = v;
            }
        }
        return;
    }
    if (m == 2) {
        for (i = 0; i < n; ++i, d += 2) {
            const uint32_t v = s[i];
            d[0] = (uint8_t)v;
            d[1] = (uint8_t)v;
        }
        return;
    }
    for (i = 0; i < n; ++i) {
        const uint8_t v = s[i];
        for (j = 0; j < m; ++j) {
            *d++ = v;
        }
    }
}
