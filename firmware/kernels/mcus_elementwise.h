/*
 * mcus_elementwise.h - reference kernels of the element-wise op plug-ins
 * (mcusearch/convert/ops/elementwise.py): unary activations and binary arithmetic with
 * broadcasting. Conventions as in mcus_kernels.h.
 */
#ifndef MCUS_ELEMENTWISE_H
#define MCUS_ELEMENTWISE_H

#include <float.h>
#include <stdint.h>

/* ---- unary, float32: output[i] = f(input[i]) ------------------------------------------------ */

/* One parameter block for every float unary kernel; alpha is the op's own constant (LEAKY_RELU's
 * slope, GELU's approximate flag), unused by the others. */
typedef struct {
    int32_t len;
    float alpha;
} mcus_unary_f32_params_t;

void mcus_logistic_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
void mcus_tanh_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
/* x * relu6(x + 3) / 6 */
void mcus_hard_swish_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
/* x > 0 ? x : alpha * x */
void mcus_leaky_relu_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
/* alpha == 0: x / 2 * (1 + erf(x / sqrt 2)); else the tanh approximation */
void mcus_gelu_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
/* x > 0 ? x : exp(x) - 1 */
void mcus_elu_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
void mcus_exp_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
void mcus_log_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
void mcus_abs_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);
/* 1 / sqrt(x) */
void mcus_rsqrt_f32(const mcus_unary_f32_params_t *p, const float *input, float *output);

/* ---- unary, int8: a look-up table ----------------------------------------------------------- */

/* output[i] = table_i[input[i] + 128], table_i = table for i < split, tail_table for the rest.
 * The generator fills the tables from TFLite's own kernel run on every input value at every
 * position of the tensor (two tables where TFLite's vector loop and scalar tail round
 * differently), so the kernel is exact by construction. */
typedef struct {
    int32_t len;
    int32_t split;
    const int8_t *table;        /* [256] */
    const int8_t *tail_table;   /* [256] */
} mcus_lut_s8_params_t;

void mcus_lut_s8(const mcus_lut_s8_params_t *p, const int8_t *input, int8_t *output);

/* ---- binary with broadcasting --------------------------------------------------------------- */

#define MCUS_BCAST_MAX_DIMS 6
#define MCUS_EW_INLINE static inline __attribute__((always_inline))
/* Built for speed, the binary kernels specialise their loop per run layout and activation range
 * and requantise with SMMULR (mcus_small_mbqm) where exact; built for size (-Os), one loop and the
 * generic requantisation (fewer instructions of code, more per element). */
#if defined(__OPTIMIZE_SIZE__)
#define MCUS_EW_SPECIALISE 0
#else
#define MCUS_EW_SPECIALISE 1
#endif

/* The output's dimensions (outermost first, batch dropped, adjacent dimensions merged where both
 * operands allow) and each operand's element stride along them (0: broadcast). */
typedef struct {
    int32_t len;                               /* output elements */
    int32_t rank;
    int32_t dims[MCUS_BCAST_MAX_DIMS];
    int32_t a_stride[MCUS_BCAST_MAX_DIMS];
    int32_t b_stride[MCUS_BCAST_MAX_DIMS];
} mcus_bcast_t;

/* A broadcast walked as runs: the innermost dimension is a run of n output elements along which
 * each operand steps by 1 (it varies) or 0 (one value for the whole run); the outer dimensions are
 * stepped once per run, so the index arithmetic is paid per run, not per element: two adds and a
 * count, plus an odometer over the outer dimensions when the next one wraps. (The geometry has no
 * size-1 dimension, so an operand's innermost stride is 1 or 0.) */
typedef struct {
    const mcus_bcast_t *g;
    int32_t n;                                 /* elements per run */
    int32_t runs;
    int32_t sa, sb;                            /* each operand's step along a run: 1 or 0 */
    int32_t ia, ib;                            /* each operand's offset at the current run */
    int32_t da, db;                            /* their steps from one run to the next */
    int32_t left;                              /* runs before the next dimension wraps */
    int32_t idx[MCUS_BCAST_MAX_DIMS];          /* the outer coordinate beyond that dimension */
} mcus_bcast_runs_t;

static inline void mcus_bcast_runs_begin(mcus_bcast_runs_t *r, const mcus_bcast_t *g)
{
    const int32_t last = g->rank - 1;
    int32_t d;

    r->g = g;
    r->n = g->dims[last];
    r->runs = g->len / r->n;
    r->sa = g->a_stride[last];
    r->sb = g->b_stride[last];
    r->ia = r->ib = 0;
    r->da = last > 0 ? g->a_stride[last - 1] : 0;
    r->db = last > 0 ? g->b_stride[last - 1] : 0;
    r->left = last > 0 ? g->dims[last - 1] : 1;
    for (d = 0; d < MCUS_BCAST_MAX_DIMS; ++d) {
        r->idx[d] = 0;
    }
}

/* Step to the next run. Not inlined: the specialised loops would each carry a copy. */
static __attribute__((noinline, unused)) void mcus_bcast_runs_next(mcus_bcast_runs_t *r)
{
    const mcus_bcast_t *g;
    int32_t d;

    r->ia += r->da;
    r->ib += r->db;
    if (--r->left > 0) {
        return;
    }
    g = r->g;                                  /* dimension rank - 2 wraps: carry outwards */
    d = g->rank - 2;
    r->left = g->dims[d];
    r->ia -= r->da * r->left;
    r->ib -= r->db * r->left;
    for (--d; d >= 0; --d) {
        r->ia += g->a_stride[d];
        r->ib += g->b_stride[d];
        if (++r->idx[d] < g->dims[d]) {
            return;
        }
        r->ia -= g->a_stride[d] * g->dims[d];
        r->ib -= g->b_stride[d] * g->dims[d];
        r->idx[d] = 0;
    }
}

typedef struct {
    mcus_bcast_t g;
    float act_min, act_max;
} mcus_binary_f32_params_t;

/* The float32 binary kernels share one loop (mcus_binary_f32_runs) and differ by the function of
 * one pair of elements, which the loop inlines (GCC at -O1 and above: the function is a constant
 * after inlining). */
typedef float (*mcus_binary_f32_fn)(float a, float b);

MCUS_EW_INLINE void mcus_binary_f32_run(const float *a, int32_t sa, const float *b, int32_t sb,
                                        float *out, int32_t n, mcus_binary_f32_fn f, int clamp,
                                        float lo, float hi)
{
    int32_t i;

    if (sb == 0) {                             /* b broadcast along the run (or both) */
        const float y = *b;
        for (i = 0; i < n; ++i) {
            float v = f(a[i], y);
            if (clamp) {
                v = v < lo ? lo : v;
                v = v > hi ? hi : v;
            }
            out[i] = v;
        }
    } else if (sa == 0) {                      /* a broadcast along the run */
        const float x = *a;
        for (i = 0; i < n; ++i) {
            float v = f(x, b[i]);
            if (clamp) {
                v = v < lo ? lo : v;
                v = v > hi ? hi : v;
            }
            out[i] = v;
        }
    } else {
        for (i = 0; i < n; ++i) {
            float v = f(a[i], b[i]);
            if (clamp) {
                v = v < lo ? lo : v;
                v = v > hi ? hi : v;
            }
            out[i] = v;
        }
    }
}

/* output = clamp(f(a, b)) over the broadcast, run by run; no clamp at all when the activation
 * range is unbounded (act_min = -FLT_MAX, act_max = FLT_MAX). */
MCUS_EW_INLINE void mcus_binary_f32_runs(const mcus_binary_f32_params_t *p, const float *a,
                                         const float *b, float *output, mcus_binary_f32_fn f)
{
    const float lo = p->act_min, hi = p->act_max;
    const int clamp = lo > -FLT_MAX || hi < FLT_MAX;
    mcus_bcast_runs_t r;
    int32_t k;

    mcus_bcast_runs_begin(&r, &p->g);
    for (k = 0; k < r.runs; ++k) {
        if (!MCUS_EW_SPECIALISE) {
            int32_t i;
            for (i = 0; i < r.n; ++i) {
                const float v = f(a[r.ia + i * r.sa], b[r.ib + i * r.sb]);
                output[i] = v < lo ? lo : v > hi ? hi : v;
            }
        } else if (clamp) {
            mcus_binary_f32_run(a + r.ia, r.sa, b + r.ib, r.sb, output, r.n, f, 1, lo, hi);
        } else {
            mcus_binary_f32_run(a + r.ia, r.sa, b + r.ib, r.sb, output, r.n, f, 0, lo, hi);
        }
        output += r.n;
        mcus_bcast_runs_next(&r);
    }
}

/* output = clamp(a OP b) over the broadcast shape; a or b may be a constant array. */
void mcus_add_bcast_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                        float *output);
void mcus_sub_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b, float *output);
void mcus_mul_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b, float *output);
void mcus_div_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b, float *output);
/* PRELU: a >= 0 ? a : a * b (b: alpha) */
void mcus_prelu_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                    float *output);
void mcus_maximum_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                      float *output);
void mcus_minimum_f32(const mcus_binary_f32_params_t *p, const float *a, const float *b,
                      float *output);
/* SQUARED_DIFFERENCE: (a - b) * (a - b) */
void mcus_squared_difference_f32(const mcus_binary_f32_params_t *p, const float *a,
                                 const float *b, float *output);

/* The int8 binary kernels share one loop (mcus_binary_s8_runs): an element is
 * combine(q, prep_a(q, a), prep_b(q, b)), clamped; q holds the kernel's constants. What depends on
 * one operand only (its offset, its rescaling) is in its prep function, so along a run where that
 * operand is broadcast it is computed once per run. */
typedef int32_t (*mcus_s8_prep_fn)(const void *q, int32_t v);
typedef int32_t (*mcus_s8_combine_fn)(const void *q, int32_t pa, int32_t pb);

/* clamp(v, lo, hi), an int8 value; `full` (a constant after inlining): lo = -128 and hi = 127.
 * Where the core has SSAT: one SSAT, then lo and hi where they are narrower. */
MCUS_EW_INLINE int32_t mcus_act_s8(int32_t v, int full, int32_t lo, int32_t hi)
{
#if defined(__ARM_FEATURE_SAT) && defined(__OPTIMIZE__)
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    if (full) {
        return r;
    }
    r = r < lo ? lo : r;
    return r > hi ? hi : r;
#else
    if (full) {
        lo = -128;
        hi = 127;
    }
    v = v < lo ? lo : v;
    return v > hi ? hi : v;
#endif
}

/* One run; `full`: the activation range is all of int8 (one saturation, no bounds in registers). */
MCUS_EW_INLINE void mcus_binary_s8_run(const void *q, const int8_t *x, int32_t sa, const int8_t *y,
                                       int32_t sb, int8_t *output, int32_t n, int full,
                                       int32_t lo, int32_t hi, mcus_s8_prep_fn prep_a,
                                       mcus_s8_prep_fn prep_b, mcus_s8_combine_fn combine)
{
    int32_t i;

    if (sb == 0) {                             /* b broadcast along the run (or both) */
        const int32_t pb = prep_b(q, *y);
        for (i = 0; i < n; ++i) {
            output[i] = (int8_t)mcus_act_s8(combine(q, prep_a(q, x[i]), pb), full, lo, hi);
        }
    } else if (sa == 0) {                      /* a broadcast along the run */
        const int32_t pa = prep_a(q, *x);
        for (i = 0; i < n; ++i) {
            output[i] = (int8_t)mcus_act_s8(combine(q, pa, prep_b(q, y[i])), full, lo, hi);
        }
    } else {
        for (i = 0; i < n; ++i) {
            output[i] = (int8_t)mcus_act_s8(combine(q, prep_a(q, x[i]), prep_b(q, y[i])), full, lo,
                                    hi);
        }
    }
}

/* `specialise` (a constant): loops specialised per run layout and activation range (when built
 * for speed); 0 for a kernel's rarely taken generic path, which then costs one loop of code. */
MCUS_EW_INLINE void mcus_binary_s8_runs(const mcus_bcast_t *g, const void *q, const int8_t *a,
                                        const int8_t *b, int8_t *output, int32_t lo, int32_t hi,
                                        mcus_s8_prep_fn prep_a, mcus_s8_prep_fn prep_b,
                                        mcus_s8_combine_fn combine, int specialise)
{
    const int full = lo <= -128 && hi >= 127;
    mcus_bcast_runs_t r;
    int32_t k;

    mcus_bcast_runs_begin(&r, g);
    for (k = 0; k < r.runs; ++k) {
        if (!MCUS_EW_SPECIALISE || !specialise) {
            int32_t i;
            for (i = 0; i < r.n; ++i) {
                output[i] = (int8_t)mcus_act_s8(combine(q, prep_a(q, a[r.ia + i * r.sa]),
                                                prep_b(q, b[r.ib + i * r.sb])), 0, lo, hi);
            }
        } else if (full) {
            mcus_binary_s8_run(q, a + r.ia, r.sa, b + r.ib, r.sb, output, r.n, 1, lo, hi, prep_a,
                               prep_b, combine);
        } else {
            mcus_binary_s8_run(q, a + r.ia, r.sa, b + r.ib, r.sb, output, r.n, 0, lo, hi, prep_a,
                               prep_b, combine);
        }
        output += r.n;
        mcus_bcast_runs_next(&r);
    }
}

/* A per-channel operand: the broadcast is (rows, n) with one operand contiguous and the other
 * repeating every n elements (strides (0, 1): a (1, 1, C) vector against an (H, W, C) map, as in
 * squeeze-and-excite gates and un-folded BatchNorm scales). The int8 kernels then prepare that
 * operand's n values once (at most MCUS_PERIODIC_MAX, in a stack array) and walk the output as one
 * loop over rows and channels, without the runs' per-run set-up. A one-value operand against a
 * contiguous one (rank 1, strides 1 and 0: LayerNormalization's mean or variance) is the period
 * n = 1 (its value repeated along a row: a length that 8 divides, so rows of 8 or more values).
 * Returns 1 when b repeats, 2 when a does, 0 otherwise. */
#define MCUS_PERIODIC_MAX 64

static inline int mcus_bcast_periodic(const mcus_bcast_t *g)
{
    const int32_t n = g->dims[1];
    if (g->rank == 1 && g->len % 8 == 0 && MCUS_EW_SPECIALISE) {   /* one value: period 1 */
        return g->a_stride[0] == 1 && g->b_stride[0] == 0 ? 1 :
               g->b_stride[0] == 1 && g->a_stride[0] == 0 ? 2 : 0;
    }
    if (g->rank != 2 || n > MCUS_PERIODIC_MAX || !MCUS_EW_SPECIALISE) {
        return 0;
    }
    if (g->a_stride[0] == n && g->a_stride[1] == 1 && g->b_stride[0] == 0 && g->b_stride[1] == 1) {
        return 1;
    }
    if (g->b_stride[0] == n && g->b_stride[1] == 1 && g->a_stride[0] == 0 && g->a_stride[1] == 1) {
        return 2;
    }
    return 0;
}

/* How many rows of a periodic broadcast (rows, n) the kernels treat as one (their prepared table
 * repeated that many times): the largest divisor of rows whose rows n stay within
 * MCUS_PERIODIC_MAX, so that short rows (a few channels) do not pay the loop set-up each. */
/* A periodic broadcast's period n and rows (mcus_bcast_periodic: rank 2, or rank 1 with n = 1). */
static inline int32_t mcus_bcast_period(const mcus_bcast_t *g)
{
    return g->rank == 1 ? 1 : g->dims[1];
}

static inline int32_t mcus_periodic_reps(int32_t rows, int32_t n)
{
    int32_t m = MCUS_PERIODIC_MAX / n;
    while (m > 1 && rows % m != 0) {
        --m;
    }
    return m < 1 ? 1 : m;
}

/* int8 ADD and SUB with broadcasting: TFLite ADD's rescaling (mcus_add_s8_one, split into the
 * input, skip and sum parts). SUB is ADD with the second input's multiplier negated, as TFLite
 * computes it. For a per-channel operand (mcus_bcast_periodic) the generator may give the other
 * operand x's doubled rescaled values, tx[x + 128] = 2 h_x (exact: mcus_add_s8_input / _skip,
 * whichever role x has): an element then costs a table read, the sum's requantisation and the
 * clamp (used where x is not rescaled by exactly 1/2, and TFLite's left shift is 20). */
typedef struct {
    mcus_bcast_t g;
    mcus_add_s8_params_t q;                     /* q.len unused */
    const int32_t *tx;                          /* [256] or 0 */
    const int32_t *tb;                          /* same shape: mcus_add_s8_fast's [256] or 0 */
} mcus_add_bcast_s8_params_t;

void mcus_add_bcast_s8(const mcus_add_bcast_s8_params_t *p, const int8_t *a, const int8_t *b,
                       int8_t *output);

/* int8 MUL (TFLite): clamp(MultiplyByQuantizedMultiplier((a + a_off) * (b + b_off),
 * multiplier, shift) + output_offset), multiplier = s_a s_b / s_out. */
typedef struct {
    mcus_bcast_t g;
    int32_t a_offset, b_offset;                 /* -zero points */
    int32_t output_offset;
    int32_t multiplier, shift;                  /* TFLite convention: shift > 0 is a left shift */
    int32_t act_min, act_max;
} mcus_mul_s8_params_t;

/* TFLite's MultiplyByQuantizedMultiplier: x * multiplier * 2^(shift - 31) with
 * SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT (ties away from zero): what the
 * interpreter's int8 MUL (every path) and PRELU compute. */
static inline int32_t mcus_multiply_by_quantized_multiplier(int32_t x, int32_t multiplier,
                                                            int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return mcus_rounding_divide_by_pot(
        mcus_sat_round_doubling_high_mul((int32_t)((uint32_t)x << left), multiplier), right);
}

/*
 * MultiplyByQuantizedMultiplier(x, m, shift) plus an output offset, bit-exact in fewer
 * instructions, where x << (left + 1) fits in 32 bits (left = max(shift, 0)); the caller passes
 * that x2. Used for products of two offset int8 values (|x| <= 255 * 255, left <= 14) and ADD's
 * rescalings (|x| < 2^28, left = 0):
 *   - SaturatingRoundingDoublingHighMul(x << left, m) = (x * 2^left * m + 2^30) >> 31 (its
 *     truncating division of the nudged product equals this floor: the nudge differs by one
 *     exactly where truncation and floor differ), which is SMMULR(x2, m) =
 *     (x2 * m + 2^31) >> 32. It never saturates: x2 != INT32_MIN (and m != INT32_MIN);
 *   - RoundingDivideByPOT(h, e) + offset = (h + 2^(e-1) + offset * 2^e - (h < 0)) >> e for
 *     e >= 1 (ties away from zero; adding a multiple of 2^e commutes with the floor), h + offset
 *     for e = 0. No overflow: |h| <= 2^29 and |bias| < 2^30 for e <= MCUS_SMALL_MBQM_MAX_RIGHT.
 * mcus_small_mbqm_prepare returns 0 outside these bounds, and when built for size (then use the
 * generic functions).
 */
#define MCUS_SMALL_MBQM_MAX_LEFT 14
#define MCUS_SMALL_MBQM_MAX_RIGHT 22

typedef struct {
    int32_t multiplier;
    int32_t left1;                              /* left shift + 1: applied to x by the caller */
    int32_t right;
    int32_t bias;                               /* 2^(right-1) (0 if right = 0) + offset 2^right */
    int32_t neg;                                /* -1 when right >= 1 (h < 0 rounds down), else 0 */
} mcus_small_mbqm_t;

static inline int mcus_small_mbqm_prepare(mcus_small_mbqm_t *c, int32_t multiplier, int32_t shift,
                                          int32_t offset)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    if (!MCUS_EW_SPECIALISE || left > MCUS_SMALL_MBQM_MAX_LEFT || right > MCUS_SMALL_MBQM_MAX_RIGHT ||
        offset < -255 || offset > 255) {
        return 0;
    }
    c->multiplier = multiplier;
    c->left1 = left + 1;
    c->right = right;
    c->bias = (right > 0 ? (int32_t)1 << (right - 1) : 0) + offset * ((int32_t)1 << right);
    c->neg = right > 0 ? -1 : 0;
    return 1;
}

/* round(a * b / 2^32), ties up: SMMULR. */
static inline int32_t mcus_smmulr(int32_t a, int32_t b)
{
#if defined(__ARM_FEATURE_DSP) && defined(__OPTIMIZE__)
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 31)) >> 32);
#endif
}

/* acc + round(a * b / 2^32), ties up: SMMLAR ((acc 2^32 + a b + 2^31) >> 32, the same sum). */
static inline int32_t mcus_smmlar(int32_t a, int32_t b, int32_t acc)
{
#if defined(__ARM_FEATURE_DSP) && defined(__OPTIMIZE__)
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
#else
    return acc + mcus_smmulr(a, b);
#endif
}

/* MultiplyByQuantizedMultiplier(x, multiplier, shift) + offset, from x2 = x << c->left1. */
MCUS_EW_INLINE int32_t mcus_small_mbqm(const mcus_small_mbqm_t *c, int32_t x2)
{
    const int32_t h = mcus_smmulr(x2, c->multiplier);
    return (h + c->bias + ((h >> 31) & c->neg)) >> c->right;
}

/*
 * mcus_small_mbqm for a positive multiplier, in one instruction fewer: the rounding's sign test
 * reads x2 instead of h = SMMULR(x2, m), and the bias enters through SMMLAR's accumulator. With
 * m > 0, x2 >= 0 gives h >= 0 and x2 < 0 gives h <= 0; they differ only at h = 0 with x2 < 0,
 * where for right >= 1 the -1 changes nothing ((2^(r-1) - 1 + offset 2^r) >> r = offset, no tie).
 * `right1` (a constant after inlining): c->right >= 1 (c->neg = -1), so the mask is dropped.
 */
MCUS_EW_INLINE int32_t mcus_small_mbqm_pos(const mcus_small_mbqm_t *c, int32_t x2, int right1)
{
    const int32_t fix = right1 ? (x2 >> 31) : ((x2 >> 31) & c->neg);
    return mcus_smmlar(x2, c->multiplier, c->bias + fix) >> c->right;
}

/* int8 ADD / SUB of a tensor x and a constant c repeating every n elements of the output (an
 * LSTM's gate bias, a per-channel shift; add_const_s8.c). The generator rescales both inputs,
 * exactly (mcus_add_s8_input / _skip): py[j] = 2 h_c[j], tx[x + 128] = 2 h_x; tx is 0 when x is
 * the input of the larger scale, rescaled by 1/2: 2 h_x = (x + offset) << 20, its offset in py.
 * Per element the doubled sum is requantised (out: positive multiplier, right >= 1, the output
 * offset in its bias) and clamped. */
typedef struct {
    const int32_t *py;                          /* [n] */
    const int32_t *tx;                          /* [256] or 0 */
    int32_t n, len;                             /* len: a multiple of n */
    mcus_small_mbqm_t out;
    int32_t act_min, act_max;
} mcus_add_const_s8_params_t;

void mcus_add_const_s8(const mcus_add_const_s8_params_t *p, const int8_t *x, int8_t *output);

static inline int32_t mcus_mul_s8_one(const mcus_mul_s8_params_t *p, int32_t a, int32_t b)
{
    int32_t v = mcus_multiply_by_quantized_multiplier((a + p->a_offset) * (b + p->b_offset),
                                                      p->multiplier, p->shift);
    v += p->output_offset;
    v = v < p->act_min ? p->act_min : v;
    return v > p->act_max ? p->act_max : v;
}

void mcus_mul_s8(const mcus_mul_s8_params_t *p, const int8_t *a, const int8_t *b, int8_t *output);

/* int8 PRELU (TFLite): x = input + input_offset; x >= 0: requantised by s_in / s_out, else
 * x * (alpha + alpha_offset) requantised by s_in s_alpha / s_out; plus output_offset, clamped. */
typedef struct {
    mcus_bcast_t g;                             /* a: the input, b: alpha */
    int32_t input_offset, alpha_offset;         /* -zero points */
    int32_t output_offset;
    int32_t multiplier_pos, shift_pos;
    int32_t multiplier_neg, shift_neg;
    int32_t act_min, act_max;
} mcus_prelu_s8_params_t;

void mcus_prelu_s8(const mcus_prelu_s8_params_t *p, const int8_t *input, const int8_t *alpha,
                   int8_t *output);

/* int8 MAXIMUM / MINIMUM: inputs and output share one quantisation (TFLite's converter ties
 * them), so the result is the larger / smaller int8 value. */
typedef struct {
    mcus_bcast_t g;
} mcus_minmax_s8_params_t;

void mcus_maximum_s8(const mcus_minmax_s8_params_t *p, const int8_t *a, const int8_t *b,
                     int8_t *output);
void mcus_minimum_s8(const mcus_minmax_s8_params_t *p, const int8_t *a, const int8_t *b,
                     int8_t *output);

/* int8 SQUARED_DIFFERENCE (TFLite): each input offset, shifted left by left_shift (7) and
 * rescaled to twice the larger input scale (MultiplyByQuantizedMultiplierSmallerThanOneExp); the
 * square of their difference (< 2^30) requantised by output_multiplier / output_shift, plus
 * output_offset, clamped. Multipliers < 1, shifts <= 0. */
typedef struct {
    mcus_bcast_t g;
    int32_t a_offset, b_offset;                 /* -zero points */
    int32_t output_offset;
    int32_t left_shift;
    int32_t a_multiplier, a_shift;
    int32_t b_multiplier, b_shift;
    int32_t output_multiplier, output_shift;
    int32_t act_min, act_max;
} mcus_squared_difference_s8_params_t;

void mcus_squared_difference_s8(const mcus_squared_difference_s8_params_t *p, const int8_t *a,
                                const int8_t *b, int8_t *output);

#endif /* MCUS_ELEMENTWISE_H */
