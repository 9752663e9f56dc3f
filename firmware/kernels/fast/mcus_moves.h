/*
 * mcus_moves.h - data-movement row kernels of the mcusearch C generator (converter "mcusearch"):
 * zero padding (pad.c), channel concatenation (concat.c), nearest-neighbour resizing
 * (resize_nearest.c) and channel repetition (repeat_channels.c, the input of a depthwise
 * convolution with depth multiplier > 1). They copy values bit for bit, so one kernel serves
 * every dtype: elem is the bytes per value (1: int8, 4: float32), and int8 tensors keep their
 * quantisation (the generator only uses them where TFLite's operator copies too).
 *
 * Calling convention and buffers as in mcus_fast.h: one output row per call, tensors in rings of
 * rows (mcus_buf_t), a NULL base is the model's input (io->in) or output (io->out).
 */
#ifndef MCUS_MOVES_H
#define MCUS_MOVES_H

#include "mcus_fast.h"

/* PAD of the height, width and channels with one value: output row r is input row r - top
 * (or all value); each pixel is front values, the input pixel's c values, then value again. */
typedef struct {
    mcus_buf_t in, out;
    uint8_t elem;
    uint16_t top, left, front;
    uint32_t value;           /* the padding value's bits: int8 in every byte, or a float's */
} mcus_fast_pad_t;

/* One input of a concatenation: a tensor of the output's height and width (rows == cols ==
 * NULL), or one read through a nearest-neighbour resize: output pixel (y, x) takes its channels
 * from pixel (rows[y], cols[x]) (a RESIZE_NEAREST_NEIGHBOR folded into the concatenation). */
typedef struct {
    mcus_buf_t buf;
    const uint16_t *rows, *cols;
} mcus_concat_in_t;

/* CONCATENATION on channels of n tensors: each output pixel is input 0's pixel, then input 1's,
 * ... */
typedef struct {
    mcus_buf_t out;
    const mcus_concat_in_t *in;   /* [n] */
    uint8_t n, elem;
} mcus_fast_concat_t;

/* RESIZE_NEAREST_NEIGHBOR: output pixel (y, x) is input pixel (rows[y], cols[x]). */
typedef struct {
    mcus_buf_t in, out;
    uint8_t elem;
    const uint16_t *rows, *cols;
} mcus_fast_resize_nearest_t;

/* Every input channel `repeats` times in a row: output channel k is input channel k / repeats. */
typedef struct {
    mcus_buf_t in, out;
    uint8_t elem, repeats;
} mcus_fast_repeat_channels_t;

void mcus_fast_pad(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_concat(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_resize_nearest(const void *params, const mcus_io_t *io, int32_t row);
void mcus_fast_repeat_channels(const void *params, const mcus_io_t *io, int32_t row);

/* Row y of buffer b (an input: a NULL base is io->in). */
static inline const uint8_t *mcus_move_src(const mcus_buf_t *b, const mcus_io_t *io, int32_t y,
                                           int32_t elem)
{
    return (const uint8_t *)mcus_row_ptr(b, b->base ? b->base : (void *)io->in, y, elem);
}

/* Row y of buffer b (an output: a NULL base is io->out). */
static inline uint8_t *mcus_move_dst(const mcus_buf_t *b, const mcus_io_t *io, int32_t y,
                                     int32_t elem)
{
    return (uint8_t *)mcus_row_ptr(b, b->base ? b->base : io->out, y, elem);
}

/* From this many bytes on, mcus_move_bytes calls memcpy (newlib's, unrolled word copies). */
#ifndef MCUS_MOVE_LIBRARY
#define MCUS_MOVE_LIBRARY 32u
#endif

/* n bytes from s to d (no overlap): four words per step while 16 or more are left (LDR/STR
 * take any address on v7-M; GCC keeps them single, not LDRD/LDM, as mcus_ld32 says nothing
 * about alignment), then words, then bytes. Not memcpy: a library call costs more than the
 * short runs (a pixel's channels) moved here. */
static inline void mcus_move_bytes(uint8_t *d, const uint8_t *s, uint32_t n)
{
    uint32_t i;
    if (n >= MCUS_MOVE_LIBRARY) {
        memcpy(d, s, n);
        return;
    }
#pragma GCC unroll 1
    for (i = n >> 4; i; --i, s += 16, d += 16) {
        const uint32_t a = mcus_ld32(s), b = mcus_ld32(s + 4), c = mcus_ld32(s + 8),
                       e = mcus_ld32(s + 12);
        mcus_st32(d, a);
        mcus_st32(d + 4, b);
        mcus_st32(d + 8, c);
        mcus_st32(d + 12, e);
    }
#pragma GCC unroll 1
    for (i = (n >> 2) & 3; i; --i, s += 4, d += 4) {
        mcus_st32(d, mcus_ld32(s));
    }
#pragma GCC unroll 1
    for (i = n & 3; i; --i) {
        *d++ = *s++;
    }
}

/* The copy loops of mcus_move_pixels for n = N bytes a pixel, N a multiple of 4 (a constant):
 * N / 4 word loads and stores, two pointer steps and the count (about 3 + N / 2 instructions a
 * pixel, against ~20 to 30 through mcus_move_bytes' general loops). cols: pixel x from
 * s + cols[x] * N, else from s + x * N. */
#define MCUS_MOVE_PIXELS(N)                                                                       \
    do {                                                                                          \
        uint32_t x_, k_;                                                                          \
        for (x_ = 0; x_ < w; ++x_, d += ds) {                                                     \
            const uint8_t *q_ = cols ? s + cols[x_] * (uint32_t)(N) : s + x_ * (uint32_t)(N);     \
            for (k_ = 0; k_ < (uint32_t)(N); k_ += 4) {                                           \
                mcus_st32(d + k_, mcus_ld32(q_ + k_));                                            \
            }                                                                                     \
        }                                                                                         \
    } while (0)

/* w pixels of n bytes: pixel x from s + x * n (cols NULL) or s + cols[x] * n, to d + x * ds.
 * The pixel sizes of 4, 8, 12 and 16 bytes (int8 maps of that many channels, float maps of 1 to
 * 4: a concatenation's or a resize's small inputs) take loops of their own. */
static inline void mcus_move_pixels(uint8_t *d, uint32_t ds, const uint8_t *s,
                                    const uint16_t *cols, uint32_t n, uint32_t w)
{
    uint32_t x;
    switch (n) {
    case 4:
        MCUS_MOVE_PIXELS(4);
        return;
    case 8:
        MCUS_MOVE_PIXELS(8);
        return;
    case 12:
        MCUS_MOVE_PIXELS(12);
        return;
    case 16:
        MCUS_MOVE_PIXELS(16);
        return;
    default:
        break;
    }
    if (cols) {
        for (x = 0; x < w; ++x, d += ds) {
            mcus_move_bytes(d, s + cols[x] * n, n);
        }
    } else {
        for (x = 0; x < w; ++x, d += ds, s += n) {
            mcus_move_bytes(d, s, n);
        }
    }
}

/* n bytes of the 4-byte pattern v (n a multiple of elem; int8 patterns repeat one byte). */
static inline void mcus_fill_bytes(uint8_t *d, uint32_t v, uint32_t n)
{
#pragma GCC unroll 1
    for (; n >= 4; n -= 4, d += 4) {
        mcus_st32(d, v);
    }
#pragma GCC unroll 1
    for (; n; --n) {
        *d++ = (uint8_t)v;
    }
}

#endif /* MCUS_MOVES_H */
