/* TRANSPOSE_CONV (Conv2DTranspose), int8: TFLite's scatter read backwards, one stride phase at a
 * time. Output pixel (oy, ox) sums input pixel (iy, ix) times filter tap (ky, kx) wherever
 * oy = iy * stride_h - pad_top + ky and ox = ix * stride_w - pad_left + kx. The output pixels of
 * one phase (oy % stride_h, ox % stride_w) = (py, px) read the same taps, tap t from input pixel
 * (oy / stride_h + dy[t], ox / stride_w + dx[t]): a plain correlation, without a position test
 * per tap. The generator (mcusearch/convert/ops/transpose_conv.py) lists the phases' taps and
 * lays their weights out as the loops read them. The sums are requantised per output channel as
 * TFLite's TRANSPOSE_CONV does (MultiplyByQuantizedMultiplier: ties away from zero, not as
 * CONV_2D's ruy path). */
#include "mcus_kernels.h"
#include "mcus_simd.h"       /* SXTAB16, SMLAD, mcus_ld32 */

/* One input chunk of 4 channels into the column as two words of offset-added int16 pairs
 * (c0, c2), (c1, c3). */
static inline uint32_t *tconv_chunk(uint32_t *col, uint32_t xv, uint32_t off2)
{
    col[0] = mcus_sxtab16(off2, xv);
    col[1] = mcus_sxtab16_ror8(off2, xv);
    return col + 2;
}

/* The last n < 4 input channels of a pixel as a word (the chunk's missing channels meet zero
 * weights). */
static inline uint32_t tconv_tail(const int8_t *x, int32_t n)
{
    uint32_t v = 0;
    while (n-- > 0) {
        v |= (uint32_t)(uint8_t)x[n] << (8 * n);
    }
    return v;
}

typedef struct {
    const mcus_transpose_conv_s8_params_t *p;
    const int8_t *input;
    const int32_t *taps;         /* this phase's (dy, dx, offset) triples */
    int32_t n_taps;
    int32_t full, rest;          /* in_c / 4, in_c % 4 */
    uint32_t off2;               /* the input offset in both halves */
} tconv_phase_t;

/* The column of output pixel (qy, qx) of the phase, whose own input pixel is px: every tap's
 * input channels as offset-added int16 pairs, 4 channels to 2 words; `checked` (a border pixel):
 * zeros for the taps outside the input. Returns its end. */
static inline __attribute__((always_inline)) uint32_t *
tconv_gather(const tconv_phase_t *f, const int8_t *px, int32_t qy, int32_t qx, uint32_t *col,
             int checked)
{
    const int32_t full = f->full, rest = f->rest, in_h = f->p->g.in_h, in_w = f->p->g.in_w;
    const uint32_t off2 = f->off2;
    const int32_t *tap = f->taps, *end = tap + 3 * f->n_taps;
    int32_t k;
    for (; tap < end; tap += 3) {
        const int8_t *x = px + tap[2];
        if (checked && ((uint32_t)(qy + tap[0]) >= (uint32_t)in_h ||
                        (uint32_t)(qx + tap[1]) >= (uint32_t)in_w)) {
            for (k = 2 * (full + (rest != 0)); k > 0; --k) {
                *col++ = 0;
            }
            continue;
        }
        for (k = full; k > 0; --k, x += 4) {
            col = tconv_chunk(col, mcus_ld32(x), off2);
        }
        if (rest) {
            col = tconv_chunk(col, tconv_tail(x, rest), off2);
        }
    }
    return col;
}

/* The requantised output of channel c where p->rq is NULL: MultiplyByQuantizedMultiplier. */
static __attribute__((noinline)) int8_t tconv_mbqm(const mcus_transpose_conv_s8_params_t *p,
                                                  int32_t acc, int32_t c)
{
    int32_t v = mcus_multiply_by_quantized_multiplier(acc, p->multiplier[c], p->shift[c]) +
                p->output_offset;
    v = v < p->act_min ? p->act_min : v;
    return (int8_t)(v > p->act_max ? p->act_max : v);
}

/* The requantised output by channel c's mcus_small_mbqm_t q: MultiplyByQuantizedMultiplier for
 * right >= 1 (the generator checked |acc| < 2^30 and shift <= -1), clamped to [lo, hi]. */
static inline int8_t tconv_rq(const mcus_small_mbqm_t *q, int32_t acc, int32_t lo, int32_t hi)
{
    const int32_t v = mcus_small_mbqm_pos(q, 2 * acc, 1);
    return (int8_t)(v < lo ? lo : v > hi ? hi : v);
}

/* The requantisation of a layer: p->rq and the clamp, held in registers across byte stores. */
typedef struct {
    const mcus_transpose_conv_s8_params_t *p;
    const mcus_small_mbqm_t *rq;
    int32_t lo, hi;
} tconv_out_t;

/* Stores the requantised outputs of channel c of two pixels (o1 may be o0: a lone pixel). */
static inline void tconv_store(const tconv_out_t *r, int32_t a0, int32_t a1, int32_t c, int8_t *o0,
                               int8_t *o1)
{
    if (r->rq) {
        const mcus_small_mbqm_t *q = r->rq + c;
        o0[c] = tconv_rq(q, a0, r->lo, r->hi);
        o1[c] = tconv_rq(q, a1, r->lo, r->hi);
    } else {
        o0[c] = tconv_mbqm(r->p, a0, c);
        o1[c] = tconv_mbqm(r->p, a1, c);
    }
}

/* Two output pixels from their columns x0, x1 (n chunks each; x1 == x0 and o1 == o0 for a lone
 * pixel): the output channels two at a time ([chunk][2][2 words] of weights, each word of a
 * pixel's chunk meeting two channels' words), then the last odd one ([chunk][2 words]). */
static __attribute__((noinline)) void tconv_pair(const mcus_transpose_conv_s8_params_t *p,
                                                 const uint32_t *x0, const uint32_t *x1,
                                                 int32_t n, const uint32_t *w, const int32_t *bias,
                                                 int8_t *o0, int8_t *o1)
{
    const tconv_out_t r = { p, (const mcus_small_mbqm_t *)(const void *)p->rq, p->act_min, p->act_max };
    const int32_t out_c = p->g.out_c;
    int32_t c, k;
    for (c = 0; c + 2 <= out_c; c += 2) {
        const uint32_t *c0 = x0, *c1 = x1;
        int32_t a00 = bias ? bias[c] : 0, a01 = bias ? bias[c + 1] : 0, a10 = a00, a11 = a01;
        for (k = n; k > 0; --k, c0 += 2, c1 += 2, w += 4) {
            const uint32_t u0 = c0[0], u1 = c0[1], v0 = c1[0], v1 = c1[1];
            a00 = mcus_smlad(u1, w[1], mcus_smlad(u0, w[0], a00));
            a10 = mcus_smlad(v1, w[1], mcus_smlad(v0, w[0], a10));
            a01 = mcus_smlad(u1, w[3], mcus_smlad(u0, w[2], a01));
            a11 = mcus_smlad(v1, w[3], mcus_smlad(v0, w[2], a11));
        }
        tconv_store(&r, a00, a10, c, o0, o1);
        tconv_store(&r, a01, a11, c + 1, o0, o1);
    }
    if (c < out_c) {
        const uint32_t *c0 = x0, *c1 = x1;
        int32_t a0 = bias ? bias[c] : 0, a1 = a0;
        for (k = n; k > 0; --k, c0 += 2, c1 += 2, w += 2) {
            a0 = mcus_smlad(c0[1], w[1], mcus_smlad(c0[0], w[0], a0));
            a1 = mcus_smlad(c1[1], w[1], mcus_smlad(c1[0], w[0], a1));
        }
        tconv_store(&r, a0, a1, c, o0, o1);
    }
}

/* One output channel: two pixels (qx, qx + 1) whose taps all lie inside the input straight from
 * it, without a column (with one channel nothing shares the column's expansion): per tap and
 * chunk both pixels' words, SXTAB16 x 4, the chunk's two weight words ([tap][chunk][2 words]),
 * SMLAD x 4. x: pixel qx0's own input pixel; a last lone pixel through the column. */
static __attribute__((noinline)) void tconv_one_channel(const tconv_phase_t *f, const int8_t *x,
                                                        int32_t qx0, int32_t qx1,
                                                        const uint32_t *w, const int32_t *bias,
                                                        int8_t *out, int32_t out_step)
{
    const mcus_transpose_conv_s8_params_t *p = f->p;
    const tconv_out_t r = { p, (const mcus_small_mbqm_t *)(const void *)p->rq, p->act_min, p->act_max };
    const int32_t in_c = p->g.in_c, full = f->full, rest = f->rest, b = bias ? bias[0] : 0;
    const int32_t *const end = f->taps + 3 * f->n_taps;
    const uint32_t off2 = f->off2;
    int32_t qx, k;
    for (qx = qx0; qx + 1 < qx1; qx += 2, x += 2 * in_c, out += 2 * out_step) {
        const int32_t *tap;
        const uint32_t *wk = w;
        int32_t a0 = b, a1 = b;
        for (tap = f->taps; tap < end; tap += 3) {
            const int8_t *s = x + tap[2];
            for (k = full; k > 0; --k, s += 4, wk += 2) {
                const uint32_t v0 = mcus_ld32(s), v1 = mcus_ld32(s + in_c);
                a0 = mcus_smlad(mcus_sxtab16_ror8(off2, v0), wk[1],
                                mcus_smlad(mcus_sxtab16(off2, v0), wk[0], a0));
                a1 = mcus_smlad(mcus_sxtab16_ror8(off2, v1), wk[1],
                                mcus_smlad(mcus_sxtab16(off2, v1), wk[0], a1));
            }
            if (rest) {
                const uint32_t v0 = tconv_tail(s, rest), v1 = tconv_tail(s + in_c, rest);
                a0 = mcus_smlad(mcus_sxtab16_ror8(off2, v0), wk[1],
                                mcus_smlad(mcus_sxtab16(off2, v0), wk[0], a0));
                a1 = mcus_smlad(mcus_sxtab16_ror8(off2, v1), wk[1],
                                mcus_smlad(mcus_sxtab16(off2, v1), wk[0], a1));
                wk += 2;
            }
        }
        tconv_store(&r, a0, a1, 0, out, out + out_step);
    }
    if (qx < qx1) {
        tconv_gather(f, x, 0, qx, p->col, 0);
        tconv_pair(p, p->col, p->col, f->n_taps * (full + (rest != 0)), w, bias, out, out);
    }
}

/* Output pixels [qx0, qx1) of row qy of the phase (output row oy, columns px + stride_w qx), two
 * at a time. */
static inline __attribute__((always_inline)) void
tconv_pixels(const tconv_phase_t *f, const uint32_t *filter, const int32_t *bias, int32_t qy,
             int32_t oy, int32_t px, int32_t qx0, int32_t qx1, int8_t *output, int checked)
{
    const mcus_transpose_conv_s8_params_t *p = f->p;
    const mcus_conv2d_geom_t *g = &p->g;
    const int32_t out_c = g->out_c, in_c = g->in_c, out_step = g->stride_w * out_c;
    const int32_t n = f->n_taps * (f->full + (f->rest != 0));
    const int8_t *x = f->input + (qy * g->in_w + qx0) * in_c;
    int8_t *out = output + (oy * g->out_w + px + qx0 * g->stride_w) * out_c;
    uint32_t *col0 = p->col, *col1 = p->col + 2 * n;
    int32_t qx;
    if (!checked && out_c == 1) {
        tconv_one_channel(f, x, qx0, qx1, filter, bias, out, out_step);
        return;
    }
    for (qx = qx0; qx + 1 < qx1; qx += 2, x += 2 * in_c, out += 2 * out_step) {
        tconv_gather(f, x, qy, qx, col0, checked);
        tconv_gather(f, x + in_c, qy, qx + 1, col1, checked);
        tconv_pair(p, col0, col1, n, filter, bias, out, out + out_step);
    }
    if (qx < qx1) {
        tconv_gather(f, x, qy, qx, col0, checked);
        tconv_pair(p, col0, col0, n, filter, bias, out, out);
    }
}

static __attribute__((noinline)) void tconv_border(const tconv_phase_t *f, const uint32_t *filter,
                                                   const int32_t *bias, int32_t qy, int32_t oy,
                                                   int32_t px, int32_t qx0, int32_t qx1,
                                                   int8_t *output)
{
    tconv_pixels(f, filter, bias, qy, oy, px, qx0, qx1, output, 1);
}

static __attribute__((noinline)) void tconv_inner(const tconv_phase_t *f, const uint32_t *filter,
                                                  const int32_t *bias, int32_t qy, int32_t oy,
                                                  int32_t px, int32_t qx0, int32_t qx1,
                                                  int8_t *output)
{
    tconv_pixels(f, filter, bias, qy, oy, px, qx0, qx1, output, 0);
}

void mcus_transpose_conv_s8(const mcus_transpose_conv_s8_params_t *p, const int8_t *input,
                            const int32_t *filter, const int32_t *bias, int8_t *output)
{
    const mcus_conv2d_geom_t *g = &p->g;
    const int32_t *phase = p->taps;
    const uint32_t *w = (const uint32_t *)(const void *)filter;   /* int16 pairs */
    tconv_phase_t f;
    int32_t py, px, oy, qy;

    f.p = p;
    f.input = input;
    f.full = g->in_c / 4;
    f.rest = g->in_c % 4;
    f.off2 = (uint32_t)(uint16_t)p->input_offset * 0x10001u;
    for (py = 0; py < g->stride_h; ++py) {
        for (px = 0; px < g->stride_w; ++px) {
            /* n, the rows [y0, y1) and columns [x0, x1) whose taps all lie inside, the taps */
            const int32_t y0 = phase[1], y1 = phase[2], x0 = phase[3], x1 = phase[4];
            const int32_t cols = (g->out_w - px + g->stride_w - 1) / g->stride_w;
            f.n_taps = phase[0];
            f.taps = phase + 5;
            for (oy = py, qy = 0; oy < g->out_h; oy += g->stride_h, ++qy) {
                if (qy < y0 || qy >= y1) {
                    tconv_border(&f, w, bias, qy, oy, px, 0, cols, output);
                    continue;
                }
                tconv_border(&f, w, bias, qy, oy, px, 0, x0, output);
                tconv_inner(&f, w, bias, qy, oy, px, x0, x1, output);
                tconv_border(&f, w, bias, qy, oy, px, x1, cols, output);
            }
            w += 2 * (f.full + (f.rest != 0)) * f.n_taps * g->out_c;
            phase = f.taps + 3 * f.n_taps;
        }
    }
}
