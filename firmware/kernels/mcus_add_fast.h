/*
 * mcus_add_fast.h - int8 ADD of two same-shape vectors, bit-exact with mcus_add_s8_one, in about
 * 15 instructions an element on a Cortex-M7 (87 for mcus_add_s8_one's 64-bit arithmetic): the
 * fast row kernel (fast/add_s8.c: residual connections, LSTM gate sums) and the reference
 * broadcasting kernel on same-shape operands (add_bcast_s8.c: an LSTM's bias add) both call
 * mcus_add_s8_fast.
 *
 * For the parameters TFLite's converter produces (left shift 20, positive multipliers, both
 * inputs rescaled to twice the larger input scale): the input whose scale is the larger has a
 * multiplier of exactly 1/2 (2^30, shift 0) and its rescaled value is (v + offset) 2^19, exactly,
 * with no multiply at all; the other is rescaled with mcus_small_mbqm_pos (SMMLAR, the bias and
 * the rounding's sign in its accumulator); the sum the same way with the output zero point in
 * the bias, then SSAT and the activation's clamp. Any other parameters: the caller's generic path.
 *
 * For longer tensors the generator gives b's doubled rescaled values with a's offset as a table,
 * tb[b + 128] = 2 h_b + off_a 2^20 (exact: mcus_add_s8_input / _skip; ADD_TABLE): the sum is then
 * a table read and an add, about 10 instructions an element, and b's multiplier may have either
 * sign (SUB). Without the table (or built for size) the arithmetic above runs.
 */
#ifndef MCUS_ADD_FAST_H
#define MCUS_ADD_FAST_H

#include "mcus_kernels.h"

#define ADD_LEFT_SHIFT 20           /* TFLite's int8 ADD always shifts its inputs left by 20 */

/* The fast path's constants: the rescaling of input b (a's scale is the larger, its multiplier
 * 1/2), a's offset folded into b's bias, and the output rescaling with the zero point. */
typedef struct {
    int32_t off_b21;                /* b's offset << (ADD_LEFT_SHIFT + 1) */
    mcus_small_mbqm_t b, out;       /* b's rescaling (a's offset folded in: ADD_FOLDED), the
                                     * output's (its zero point in the bias) */
    int32_t off_a20;                /* a's offset << ADD_LEFT_SHIFT (ADD_UNFOLDED) */
    int32_t off_ab20;               /* (off_a + off_b) << ADD_LEFT_SHIFT (ADD_HALVES) */
    int mode;
} add_fast_t;

/* The fast loops: b rescaled, a's offset in its bias (right_b <= 3); both inputs of one scale
 * (2 h_a + 2 h_b = (a + b + off_a + off_b) 2^20: no multiply); b rescaled, a's offset added;
 * b's rescaled value with a's offset read from the generator's table. */
enum { ADD_FOLDED, ADD_HALVES, ADD_UNFOLDED, ADD_TABLE };

/* Whether (multiplier, shift) rescales by exactly 1/2: the larger-scale input's. */
static inline int add_half(int32_t multiplier, int32_t shift)
{
    return multiplier == (int32_t)1 << 30 && shift == 0;
}

/*
 * k for an ADD whose input a has the larger scale (rescaled by 1/2: 2 h_a = (a + off_a) 2^20,
 * exactly) and b the smaller or the same (1/2 too, or a right shift of 1 to 22); 0 when the
 * parameters are outside the fast path's bounds. The doubled sum is s2 = 2 h_b + 2 h_a =
 * 2 (h_b + off_a 2^19) + a 2^20; h_b + off_a 2^19 is mcus_small_mbqm_pos with off_a 2^19 added
 * to its result, which is off_a 2^(19 + right) in its bias where that fits in 31 bits
 * (ADD_FOLDED; else off_a 2^20 is added to s2).
 */
static inline int add_fast_prepare(add_fast_t *k, const mcus_add_s8_params_t *q, int32_t mult_b,
                            int32_t shift_b, int32_t off_a, int32_t off_b, const int32_t *tb)
{
    mcus_small_mbqm_t b, o;
    int32_t right_b = 0, bias_b = 0;

    if (q->left_shift != ADD_LEFT_SHIFT || q->output_multiplier <= 0 || q->output_shift > -1 ||
        !mcus_small_mbqm_prepare(&o, q->output_multiplier, q->output_shift, q->output_offset)) {
        return 0;
    }
    k->out = o;
    if (tb != 0) {
        k->mode = ADD_TABLE;
        return 1;
    }
    if (add_half(mult_b, shift_b)) {     /* the same scales: h_b = (b + off_b) 2^19 */
        mult_b = (int32_t)1 << 30;
        shift_b = 0;
    } else if (mult_b > 0 && shift_b <= -1 && mcus_small_mbqm_prepare(&b, mult_b, shift_b, 0)) {
        right_b = b.right;
        bias_b = b.bias;
    } else {
        return 0;
    }
    k->off_a20 = (int32_t)((uint32_t)off_a << ADD_LEFT_SHIFT);
    k->off_ab20 = (int32_t)((uint32_t)(off_a + off_b) << ADD_LEFT_SHIFT);
    k->mode = right_b == 0 ? ADD_HALVES : right_b + 19 + 8 <= 30 ? ADD_FOLDED : ADD_UNFOLDED;
    if (k->mode == ADD_FOLDED) {          /* |off_a| <= 255 < 2^8: off_a 2^(19 + right_b) fits */
        bias_b += off_a * ((int32_t)1 << (19 + right_b));
    }
    k->off_b21 = (int32_t)((uint32_t)off_b << (ADD_LEFT_SHIFT + 1));
    k->b.multiplier = mult_b;
    k->b.right = right_b;
    k->b.bias = bias_b;
    return 1;
}

/* The doubled sum s2 requantised (out: the output offset in its bias) and clamped; `clamp` as
 * add_row's. */
MCUS_EW_INLINE int8_t add_out(const mcus_small_mbqm_t *out, int32_t s2, int clamp, int32_t lo,
                              int32_t hi)
{
    int32_t o = mcus_act_s8(mcus_small_mbqm_pos(out, s2, 1), 1, -128, 127);
    if (clamp >= 1) {
        o = o < lo ? lo : o;
    }
    if (clamp == 2) {
        o = o > hi ? hi : o;
    }
    return (int8_t)o;
}

/* One row: a of the larger scale; `mode` as k->mode (not ADD_TABLE); `clamp`: 0 none beyond
 * int8, 1 the lower bound only (a fused ReLU), 2 both (constants after inlining). */
MCUS_EW_INLINE void add_row(const add_fast_t *kp, const int8_t *a, const int8_t *b, int8_t *dst,
                            int32_t n, int mode, int clamp, int32_t lo, int32_t hi)
{
    const add_fast_t k = *kp;
    int8_t *const end = dst + n;

    while (dst != end) {
        int32_t s2;
        if (mode == ADD_HALVES) {
            const int32_t ab = (int32_t)*a++ + (int32_t)*b++;
            s2 = k.off_ab20 + (int32_t)((uint32_t)ab << ADD_LEFT_SHIFT);
        } else {
            const int32_t x2 = k.off_b21 + (int32_t)((uint32_t)(int32_t)*b++ << (ADD_LEFT_SHIFT + 1));
            const int32_t hb = mcus_small_mbqm_pos(&k.b, x2, 1);
            s2 = hb * 2 + (int32_t)((uint32_t)(int32_t)*a++ << ADD_LEFT_SHIFT) +
                 (mode == ADD_UNFOLDED ? k.off_a20 : 0);
        }
        *dst++ = add_out(&k.out, s2, clamp, lo, hi);
    }
}

/* add_row for ADD_TABLE: b's rescaled value and a's offset read from tb (the generator's table
 * + 128), two elements a loop step (one instruction of loop an element fewer; the other modes'
 * loops are not unrolled: their code is inlined in two kernels, for three clamps). */
MCUS_EW_INLINE void add_row_table(const add_fast_t *kp, const int32_t *tb, const int8_t *a,
                                  const int8_t *b, int8_t *dst, int32_t n, int clamp, int32_t lo,
                                  int32_t hi)
{
    const mcus_small_mbqm_t out = kp->out;
    int8_t *const end = dst + n;

#pragma GCC unroll 2
    while (dst != end) {
        const int32_t s2 = tb[*b++] + (int32_t)((uint32_t)(int32_t)*a++ << ADD_LEFT_SHIFT);
        *dst++ = add_out(&out, s2, clamp, lo, hi);
    }
}

/* add_row for one mode, its clamp chosen from the activation range. */
MCUS_EW_INLINE void add_rows(const add_fast_t *k, const int32_t *tb, const int8_t *a,
                             const int8_t *b, int8_t *dst, int32_t n, int mode, int32_t lo,
                             int32_t hi)
{
    if (mode == ADD_TABLE && hi < 127) {
        add_row_table(k, tb, a, b, dst, n, 2, lo, hi);
    } else if (mode == ADD_TABLE && lo > -128) {
        add_row_table(k, tb, a, b, dst, n, 1, lo, 127);
    } else if (mode == ADD_TABLE) {
        add_row_table(k, tb, a, b, dst, n, 0, -128, 127);
    } else if (hi < 127) {
        add_row(k, a, b, dst, n, mode, 2, lo, hi);
    } else if (lo > -128) {
        add_row(k, a, b, dst, n, mode, 1, lo, 127);
    } else {
        add_row(k, a, b, dst, n, mode, 0, -128, 127);
    }
}

/* out[0..n) = ADD(a, b) (q: TFLite's parameters; tb: the generator's table for the input that is
 * not rescaled by 1/2, or 0), 1 when done here; 0 (nothing written) when the parameters are
 * outside the fast path's bounds or the build is for size. */
static inline int mcus_add_s8_fast(const mcus_add_s8_params_t *q, const int8_t *a, const int8_t *b,
                                   int8_t *dst, int32_t n, const int32_t *tb)
{
    add_fast_t k;
    int fast = 0;

    if (MCUS_EW_SPECIALISE) {             /* a: the input of the larger scale (1/2) */
        if (add_half(q->input_multiplier, q->input_shift)) {
            fast = add_fast_prepare(&k, q, q->skip_multiplier, q->skip_shift, q->input_offset,
                                    q->skip_offset, tb);
        } else if (add_half(q->skip_multiplier, q->skip_shift)) {
            const int8_t *t = a;
            a = b;
            b = t;
            fast = add_fast_prepare(&k, q, q->input_multiplier, q->input_shift, q->skip_offset,
                                    q->input_offset, tb);
        }
    }
    if (!fast) {
        return 0;
    }
    {
        if (k.mode == ADD_TABLE) {
            add_rows(&k, tb + 128, a, b, dst, n, ADD_TABLE, q->act_min, q->act_max);
        } else if (k.mode == ADD_FOLDED) {
            add_rows(&k, 0, a, b, dst, n, ADD_FOLDED, q->act_min, q->act_max);
        } else if (k.mode == ADD_HALVES) {
            add_rows(&k, 0, a, b, dst, n, ADD_HALVES, q->act_min, q->act_max);
        } else {
            add_rows(&k, 0, a, b, dst, n, ADD_UNFOLDED, q->act_min, q->act_max);
        }
    }
    return 1;
}

#endif /* MCUS_ADD_FAST_H */
