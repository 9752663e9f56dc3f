/* Element-wise product of two int8 tensors with broadcasting, with TFLite MUL's requantisation,
 * run by run (mcus_binary_s8_runs). Within mcus_small_mbqm's bounds (in practice always:
 * 2^-23 <= s_a s_b / s_out < 2^15) the requantisation is mcus_small_mbqm, its left shift applied
 * to the second operand; else mcus_multiply_by_quantized_multiplier. Both are bit-exact with TFLite
 * (tests/test_ops_elementwise.py: all 65,536 input pairs, every run layout). A per-channel operand
 * (mcus_bcast_periodic: a squeeze-and-excite gate) takes one loop over the whole output
 * (mul_periodic; with DSP four channels a block, mul_periodic_simd), same-shape operands with DSP
 * four elements a block (mul_same_simd). */
#include "mcus_kernels.h"

typedef struct {
    int32_t a_offset, b_offset, output_offset;
    mcus_small_mbqm_t rq;                      /* the output offset included */
    int32_t multiplier, shift;
} mul_consts_t;

static int32_t prep_a(const void *q, int32_t a)
{
    return a + ((const mul_consts_t *)q)->a_offset;
}

/* b + b_offset, times 2^(left shift + 1): the product is SMMULR's operand */
static int32_t prep_b_shifted(const void *q, int32_t b)
{
    const mul_consts_t *c = (const mul_consts_t *)q;
    return (int32_t)((uint32_t)(b + c->b_offset) << c->rq.left1);
}

static int32_t combine_small(const void *q, int32_t pa, int32_t pb)
{
    const mul_consts_t *c = (const mul_consts_t *)q;
    return mcus_small_mbqm_pos(&c->rq, pa * pb, 0);      /* TFLite's MUL multiplier is > 0 */
}

static int32_t prep_b(const void *q, int32_t b)
{
    return b + ((const mul_consts_t *)q)->b_offset;
}

static int32_t combine(const void *q, int32_t pa, int32_t pb)
{
    const mul_consts_t *c = (const mul_consts_t *)q;
    return mcus_multiply_by_quantized_multiplier(pa * pb, c->multiplier, c->shift) +
           c->output_offset;
}

/*
 * A per-channel operand y (mcus_bcast_periodic) against a contiguous x: per channel
 * P = (y + y_offset) << left1 and K = x_offset P, so the doubled product is x P + K (one MLA),
 * requantised by mcus_small_mbqm_pos (the multiplier is positive); `right1`: rq->right >= 1,
 * `full`: no clamp beyond int8 (constants after inlining). With DSP, no clamp and right >= 1
 * (in practice always) mul_periodic_simd runs instead.
 */
MCUS_EW_INLINE void mul_periodic_loop(int32_t rows, int32_t n, const int32_t *pk, const int8_t *x,
                                      int8_t *output, const mcus_small_mbqm_t *rq, int right1,
                                      int full, int32_t lo, int32_t hi)
{
    const int32_t *const end = pk + 2 * (n & ~1);
    const mcus_small_mbqm_t c = *rq;
    int32_t r;

    for (r = rows; r > 0; --r) {
        const int32_t *k = pk;
        while (k != end) {                     /* two channels a step */
            const int32_t x0 = (int32_t)x[0] * k[0] + k[1];
            const int32_t x1 = (int32_t)x[1] * k[2] + k[3];
            output[0] = (int8_t)mcus_act_s8(mcus_small_mbqm_pos(&c, x0, right1), full, lo, hi);
            output[1] = (int8_t)mcus_act_s8(mcus_small_mbqm_pos(&c, x1, right1), full, lo, hi);
            x += 2;
            output += 2;
            k += 4;
        }
        if (n & 1) {
            *output++ = (int8_t)mcus_act_s8(mcus_small_mbqm_pos(&c, (int32_t)*x++ * k[0] + k[1], right1),
                                    full, lo, hi);
        }
    }
}

#if defined(__ARM_FEATURE_DSP) && defined(__OPTIMIZE__)
#define MUL_SIMD 1
#else
#define MUL_SIMD 0
#endif

#if MUL_SIMD
/*
 * mul_periodic_loop's common case (right >= 1, no clamp beyond int8) four channels a block, from
 * P in halfwords (|P| <= 255 << 6 fits): one LDR brings four x, two SXTAB16 add x's offset to
 * two of them each ((x + x_offset) fits a halfword), SMULxy forms the doubled product
 * (x + x_offset) P, requantised as in mul_periodic_loop; two blocks a loop step (an odd count of
 * blocks enters at the second): 7.25 instructions an element.
 */
static void mul_periodic_simd(int32_t rows, int32_t n, const int16_t *ph, const int8_t *x,
                              int8_t *output, const mcus_small_mbqm_t *rq, int32_t x_offset)
{
    const int16_t *const end = ph + (n & ~3);
    const int32_t ox2 = (int32_t)(((uint32_t)x_offset & 0xFFFFu) * 0x10001u);
    const mcus_small_mbqm_t c = *rq;
    int32_t r, i;

    for (r = rows; r > 0; --r) {
        const int16_t *k = ph;
        if (k != end) {
            int32_t w, t, p0, p1, s, v = n & 4;        /* v: an odd count of blocks */
#define MUL_SIMD_ONE(mul, src, p)                                                                  \
            mul "  %[v], %[" src "], %[" p "]\n\t"                                                  \
            "add    %[s], %[bias], %[v], asr #31\n\t"                                               \
            "smmlar %[v], %[v], %[m], %[s]\n\t"                                                     \
            "asr    %[v], %[v], %[r]\n\t"                                                           \
            "ssat   %[v], #8, %[v]\n\t"                                                             \
            "strb   %[v], [%[o]], #1\n\t"
#define MUL_SIMD_BLOCK                                                                             \
            "ldr    %[w], [%[x]], #4\n\t"                                                           \
            "ldrd   %[p0], %[p1], [%[k]], #8\n\t"                                                   \
            "sxtab16 %[t], %[ox2], %[w]\n\t"                                                        \
            "sxtab16 %[w], %[ox2], %[w], ror #8\n\t"                                                \
            MUL_SIMD_ONE("smulbb", "t", "p0") MUL_SIMD_ONE("smulbt", "w", "p0")                     \
            MUL_SIMD_ONE("smultb", "t", "p1") MUL_SIMD_ONE("smultt", "w", "p1")
            __asm__ volatile(
                "cmp    %[v], #0\n\t"
                "bne    2f\n\t"
                "1:\n\t" MUL_SIMD_BLOCK
                "2:\n\t" MUL_SIMD_BLOCK
                "cmp    %[k], %[end]\n\t"
                "bne    1b\n\t"
                : [x] "+r"(x), [k] "+r"(k), [o] "+r"(output), [v] "+r"(v), [w] "=&r"(w),
                  [t] "=&r"(t), [p0] "=&r"(p0), [p1] "=&r"(p1), [s] "=&r"(s)
                : [end] "r"(end), [ox2] "r"(ox2), [bias] "r"(c.bias), [m] "r"(c.multiplier),
                  [r] "r"(c.right)
                : "cc", "memory");
#undef MUL_SIMD_BLOCK
#undef MUL_SIMD_ONE
        }
        for (i = n & ~3; i < n; ++i) {
            const int32_t v = ((int32_t)*x++ + x_offset) * ph[i];
            *output++ = (int8_t)mcus_act_s8(mcus_small_mbqm_pos(&c, v, 1), 1, -128, 127);
        }
    }
}
#endif

#if MUL_SIMD
/*
 * Same-shape operands (an LSTM's or GRU's gate products) in the common case (right >= 1, no clamp
 * beyond int8, TFLite's left shift of 0: left1 = 1) four elements a block: one LDR brings four
 * of each operand, SXTAB16 adds the offsets (two halfwords each), SADD16 doubles y's (the
 * left1 = 1 shift: |2 (y + y_offset)| <= 510 fits a halfword), SMULxy forms the doubled products,
 * requantised as in mul_periodic_simd: 8.5 instructions an element (15 in the run loop).
 */
static void mul_same_simd(int32_t n, const int8_t *x, int32_t x_offset, const int8_t *y,
                          int32_t y_offset, int8_t *output, const mcus_small_mbqm_t *rq)
{
    const int8_t *const end = x + (n & ~3);
    const int32_t ox2 = (int32_t)(((uint32_t)x_offset & 0xFFFFu) * 0x10001u);
    const int32_t oy2 = (int32_t)(((uint32_t)y_offset & 0xFFFFu) * 0x10001u);
    const mcus_small_mbqm_t c = *rq;
    int32_t i;

    if (x != end) {
        int32_t w, u, t, p, v;
#define MUL_SAME_REQ(v)                                                                            \
        "add    %[u], %[bias], %[" v "], asr #31\n\t"                                               \
        "smmlar %[" v "], %[" v "], %[m], %[u]\n\t"                                                \
        "asr    %[" v "], %[" v "], %[r]\n\t"                                                      \
        "ssat   %[" v "], #8, %[" v "]\n\t"                                                        \
        "strb   %[" v "], [%[o]], #1\n\t"
        __asm__ volatile(
            "1:\n\t"
            "ldr    %[w], [%[x]], #4\n\t"
            "ldr    %[u], [%[y]], #4\n\t"
            "sxtab16 %[t], %[ox2], %[w]\n\t"                  /* x0, x2 (+ offset) */
            "sxtab16 %[w], %[ox2], %[w], ror #8\n\t"          /* x1, x3 */
            "sxtab16 %[p], %[oy2], %[u]\n\t"                  /* y0, y2 */
            "sxtab16 %[u], %[oy2], %[u], ror #8\n\t"          /* y1, y3 */
            "sadd16 %[p], %[p], %[p]\n\t"
            "sadd16 %[u], %[u], %[u]\n\t"
            "smulbb %[v], %[t], %[p]\n\t"                     /* element 0 */
            "smultt %[t], %[t], %[p]\n\t"                     /* element 2 */
            "smulbb %[p], %[w], %[u]\n\t"                     /* element 1 */
            "smultt %[w], %[w], %[u]\n\t"                     /* element 3 */
            MUL_SAME_REQ("v") MUL_SAME_REQ("p") MUL_SAME_REQ("t") MUL_SAME_REQ("w")
            "cmp    %[x], %[end]\n\t"
            "bne    1b\n\t"
            : [x] "+r"(x), [y] "+r"(y), [o] "+r"(output), [w] "=&r"(w), [u] "=&r"(u),
              [t] "=&r"(t), [p] "=&r"(p), [v] "=&r"(v)
            : [end] "r"(end), [ox2] "r"(ox2), [oy2] "r"(oy2), [bias] "r"(c.bias),
              [m] "r"(c.multiplier), [r] "r"(c.right)
            : "cc", "memory");
#undef MUL_SAME_REQ
    }
    for (i = n & ~3; i < n; ++i) {
        const int32_t v = ((int32_t)*x++ + x_offset) * (((int32_t)*y++ + y_offset) * 2);
        *output++ = (int8_t)mcus_act_s8(mcus_small_mbqm_pos(&c, v, 1), 1, -128, 127);
    }
}
#endif

static void mul_periodic(const mcus_mul_s8_params_t *p, const int8_t *x, int32_t x_offset,
                         const int8_t *y, int32_t y_offset, int8_t *output,
                         const mcus_small_mbqm_t *rq)
{
    int32_t pk[2 * MCUS_PERIODIC_MAX];
    const int full = p->act_min <= -128 && p->act_max >= 127;
    const int32_t n = p->g.dims[1], reps = mcus_periodic_reps(p->g.dims[0], n);
    const int32_t rows = p->g.dims[0] / reps, len = n * reps;
    int32_t i;

#if MUL_SIMD
    if (full && rq->right >= 1 && rq->left1 <= 7) {
        union {
            int16_t h[MCUS_PERIODIC_MAX];
            uint32_t w[MCUS_PERIODIC_MAX / 2];      /* an even n's table repeated a word a step */
        } ph;
        for (i = 0; i < n; ++i) {
            ph.h[i] = (int16_t)((y[i] + y_offset) * ((int32_t)1 << rq->left1));
        }
        if (n % 2 == 0) {
            for (i = n / 2; i < len / 2; ++i) {
                ph.w[i] = ph.w[i - n / 2];
            }
        } else {
            for (; i < len; ++i) {
                ph.h[i] = ph.h[i - n];
            }
        }
        mul_periodic_simd(rows, len, ph.h, x, output, rq, x_offset);
        return;
    }
#endif
    for (i = 0; i < n; ++i) {
        pk[2 * i] = (int32_t)((uint32_t)(y[i] + y_offset) << rq->left1);
        pk[2 * i + 1] = x_offset * pk[2 * i];
    }
    for (i = 2 * n; i < 2 * len; ++i) {
        pk[i] = pk[i - 2 * n];
    }
    if (rq->right >= 1 && full && !MUL_SIMD) {           /* with SIMD the rare left1 > 7: below */
        mul_periodic_loop(rows, len, pk, x, output, rq, 1, 1, -128, 127);
    } else if (rq->right >= 1) {
        mul_periodic_loop(rows, len, pk, x, output, rq, 1, 0, p->act_min, p->act_max);
    } else {
        mul_periodic_loop(rows, len, pk, x, output, rq, 0, 0, p->act_min, p->act_max);
    }
}

void mcus_mul_s8(const mcus_mul_s8_params_t *p, const int8_t *a, const int8_t *b, int8_t *output)
{
    mul_consts_t c;

    c.a_offset = p->a_offset;
    c.b_offset = p->b_offset;
    c.output_offset = p->output_offset;
    c.multiplier = p->multiplier;
    c.shift = p->shift;
    if (mcus_small_mbqm_prepare(&c.rq, p->multiplier, p->shift, p->output_offset)) {
        /* rank 2 only: a one-value operand's period-1 table would cost more to fill than its
         * loop saves on a LayerNormalization's 16 to 64 values (qemu-m7: 892 -> 928) */
        const int periodic = p->g.rank == 2 ? mcus_bcast_periodic(&p->g) : 0;
        if (periodic == 1) {
            mul_periodic(p, a, p->a_offset, b, p->b_offset, output, &c.rq);
            return;
        }
        if (periodic == 2) {
            mul_periodic(p, b, p->b_offset, a, p->a_offset, output, &c.rq);
            return;
        }
        if (p->g.rank == 1 && p->g.a_stride[0] == 1 && p->g.b_stride[0] == 1 &&
            MCUS_EW_SPECIALISE) {             /* same shape (an LSTM's gates): one run */
#if MUL_SIMD
            if (p->act_min <= -128 && p->act_max >= 127 && c.rq.right >= 1 && c.rq.left1 == 1) {
                mul_same_simd(p->g.len, a, p->a_offset, b, p->b_offset, output, &c.rq);
                return;
            }
#endif
            if (p->act_min <= -128 && p->act_max >= 127) {
                mcus_binary_s8_run(&c, a, 1, b, 1, output, p->g.len, 1, -128, 127, prep_a,
                                   prep_b_shifted, combine_small);
            } else {
                mcus_binary_s8_run(&c, a, 1, b, 1, output, p->g.len, 0, p->act_min, p->act_max,
                                   prep_a, prep_b_shifted, combine_small);
            }
            return;
        }
        mcus_binary_s8_runs(&p->g, &c, a, b, output, p->act_min, p->act_max, prep_a,
                            prep_b_shifted, combine_small, 1);
    } else {
        mcus_binary_s8_runs(&p->g, &c, a, b, output, p->act_min, p->act_max, prep_a, prep_b,
                            combine, 0);
    }
}
