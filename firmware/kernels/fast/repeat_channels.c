/* Channel repetition, one row per call: every input value written `repeats` times in a row, so
 * output channel k is input channel k / repeats - the input of a depthwise convolution with that
 * depth multiplier, computed by the multiplier-1 row kernels (mcusearch/convert/lowering.py).
 * Any dtype (mcus_moves.h). Depth multiplier 2, the common one, has its own loops: float32 one
 * load and two stores a value; int8 a word of 4 values in, two words out (each byte doubled by
 * shifts and masks), then the leftover bytes. */
#include "mcus_moves.h"

/* The 2 low bytes b0, b1 of x as the word b0 b0 b1 b1 (little-endian byte order). */
static inline uint32_t rep_pair(uint32_t x)
{
    uint32_t t = x & 0xFFFFu;
    t = (t | t << 8) & 0x00FF00FFu;
    return t | t << 8;
}

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
        if (m == 2) {
            for (i = 0; i < n; ++i, d4 += 2) {
                const uint32_t v = s4[i];
                d4[0] = v;
                d4[1] = v;
            }
            return;
        }
        for (i = 0; i < n; ++i) {
            const uint32_t v = s4[i];
            for (j = 0; j < m; ++j) {
                *d4++ = v;
            }
        }
        return;
    }
    if (m == 2) {
        for (i = n >> 2; i; --i, s += 4, d += 8) {
            const uint32_t x = mcus_ld32(s);
            mcus_st32(d, rep_pair(x));
            mcus_st32(d + 4, rep_pair(x >> 16));
        }
        for (i = n & 3; i; --i, d += 2) {
            const uint8_t v = *s++;
            d[0] = v;
            d[1] = v;
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
