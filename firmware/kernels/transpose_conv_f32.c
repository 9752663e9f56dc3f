/* TRANSPOSE_CONV (Conv2DTranspose), float32: TFLite's scatter read backwards, one stride phase at
 * a time (see transpose_conv_s8.c and mcus_kernels.h): the output pixels of phase (py, px) sum
 * tap t of the phase from input pixel (oy / stride_h + dy[t], ox / stride_w + dx[t]), plus the
 * bias, clamped. Four output channels share each input value. */
#include "mcus_kernels.h"

#if defined(__ARM_FEATURE_FMA) && __ARM_FEATURE_FMA
#define TCONV_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define TCONV_FMA(a, b, c) ((c) + (a) * (b))
#endif

typedef struct {
    const mcus_transpose_conv_f32_params_t *p;
    const float *input;
    const int32_t *taps;         /* this phase's (dy, dx, offset) triples */
    const float *bias;
    int32_t n_taps;
} tconv_phase_t;

/* Whether tap `tap` of output pixel (qy, qx) of the phase lies inside the input. */
static inline int tconv_inside(const tconv_phase_t *f, const int32_t *tap, int32_t qy, int32_t qx)
{
    return (uint32_t)(qy + tap[0]) < (uint32_t)f->p->g.in_h &&
           (uint32_t)(qx + tap[1]) < (uint32_t)f->p->g.in_w;
}

static inline float tconv_clamp(const mcus_transpose_conv_f32_params_t *p, float v)
{
    v = v < p->act_min ? p->act_min : v;
    return v > p->act_max ? p->act_max : v;
}

/* Output channels [c, c + 4) of one pixel; w: the block's weights, [tap][in_c][4]. Returns the
 * next block's weights. */
static inline __attribute__((always_inline)) const float *
tconv_block4(const tconv_phase_t *f, const float *px, int32_t qy, int32_t qx, const float *w,
             int32_t c, float *out, int checked)
{
    const int32_t in_c = f->p->g.in_c;
    const int32_t *tap = f->taps;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    int32_t t, k;
    if (f->bias) {
        a0 = f->bias[c], a1 = f->bias[c + 1], a2 = f->bias[c + 2], a3 = f->bias[c + 3];
    }
    for (t = 0; t < f->n_taps; ++t, w += 4 * in_c, tap += 3) {
        const float *x = px + tap[2];
        const float *wk = w;
        if (checked && !tconv_inside(f, tap, qy, qx)) {
            continue;
        }
        for (k = 0; k < in_c; ++k, wk += 4) {
            const float v = x[k];
            a0 = TCONV_FMA(v, wk[0], a0);
            a1 = TCONV_FMA(v, wk[1], a1);
            a2 = TCONV_FMA(v, wk[2], a2);
            a3 = TCONV_FMA(v, wk[3], a3);
        }
    }
    out[c] = tconv_clamp(f->p, a0);
    out[c + 1] = tconv_clamp(f->p, a1);
    out[c + 2] = tconv_clamp(f->p, a2);
    out[c + 3] = tconv_clamp(f->p, a3);
    return w;
}

/* Output channel c of one pixel (the out_c % 4 last ones); w: [tap][in_c]. */
static inline __attribute__((always_inline)) const float *
tconv_block1(const tconv_phase_t *f, const float *px, int32_t qy, int32_t qx, const float *w,
             int32_t c, float *out, int checked)
{
    const int32_t in_c = f->p->g.in_c;
    const int32_t *tap = f->taps;
    float acc = f->bias ? f->bias[c] : 0.0f;
    int32_t t, k;
    for (t = 0; t < f->n_taps; ++t, w += in_c, tap += 3) {
        const float *x = px + tap[2];
        if (checked && !tconv_inside(f, tap, qy, qx)) {
            continue;
        }
        for (k = 0; k < in_c; ++k) {
            acc = TCONV_FMA(x[k], w[k], acc);
        }
    }
    out[c] = tconv_clamp(f->p, acc);
    return w;
}

/* Output pixels [qx0, qx1) of row qy of the phase (output row oy, columns px + stride_w qx). */
static inline __attribute__((always_inline)) void
tconv_pixels(const tconv_phase_t *f, const float *filter, int32_t qy, int32_t oy, int32_t px,
             int32_t qx0, int32_t qx1, float *output, int checked)
{
    const mcus_conv2d_geom_t *g = &f->p->g;
    const int32_t out_c = g->out_c, in_c = g->in_c, out_step = g->stride_w * out_c;
    const float *x = f->input + (qy * g->in_w + qx0) * in_c;
    float *out = output + (oy * g->out_w + px + qx0 * g->stride_w) * out_c;
    int32_t qx, c;
    for (qx = qx0; qx < qx1; ++qx, x += in_c, out += out_step) {
        const float *w = filter;
        for (c = 0; c + 4 <= out_c; c += 4) {
            w = tconv_block4(f, x, qy, qx, w, c, out, checked);
        }
        for (; c < out_c; ++c) {
            w = tconv_block1(f, x, qy, qx, w, c, out, checked);
        }
    }
}

static __attribute__((noinline)) void tconv_border(const tconv_phase_t *f, const float *filter,
                                                   int32_t qy, int32_t oy, int32_t px, int32_t qx0,
                                                   int32_t qx1, float *output)
{
    tconv_pixels(f, filter, qy, oy, px, qx0, qx1, output, 1);
}

static __attribute__((noinline)) void tconv_inner(const tconv_phase_t *f, const float *filter,
                                                  int32_t qy, int32_t oy, int32_t px, int32_t qx0,
                                                  int32_t qx1, float *output)
{
    tconv_pixels(f, filter, qy, oy, px, qx0, qx1, output, 0);
}

void mcus_transpose_conv_f32(const mcus_transpose_conv_f32_params_t *p, const float *input,
                             const float *filter, const float *bias, float *output)
{
    const mcus_conv2d_geom_t *g = &p->g;
    const int32_t *phase = p->taps;
    tconv_phase_t f;
    int32_t py, px, oy, qy;

    f.p = p;
    f.input = input;
    f.bias = bias;
    for (py = 0; py < g->stride_h; ++py) {
        for (px = 0; px < g->stride_w; ++px) {
            /* n, the rows [y0, y1) and columns [x0, x1) whose taps all lie inside, the taps */
            const int32_t y0 = phase[1], y1 = phase[2], x0 = phase[3], x1 = phase[4];
            const int32_t cols = (g->out_w - px + g->stride_w - 1) / g->stride_w;
            f.n_taps = phase[0];
            f.taps = phase + 5;
            for (oy = py, qy = 0; oy < g->out_h; oy += g->stride_h, ++qy) {
                if (qy < y0 || qy >= y1) {
                    tconv_border(&f, filter, qy, oy, px, 0, cols, output);
                    continue;
                }
                tconv_border(&f, filter, qy, oy, px, 0, x0, output);
                tconv_inner(&f, filter, qy, oy, px, x0, x1, output);
                tconv_border(&f, filter, qy, oy, px, x1, cols, output);
            }
            filter += g->in_c * f.n_taps * g->out_c;
            phase = f.taps + 3 * f.n_taps;
        }
    }
}
