/*
 * int8 depthwise convolution (depth multiplier 1), one output row per call: bias, TFLite's
 * depthwise requantisation (mcus_requantize_depthwise), zero point, clamp - the same integers as
 * the reference kernel (../depthwise_conv2d_s8.c).
 *
 * Portable path (the host, Cortex-M0+/M3; with DSP also: fewer than 4 channels, a single output
 * column, kernels taller than 16): per output pixel the window's valid cells in (ky, kx) order,
 * each a contiguous pass over the channels into c int32 accumulators (io->scratch), then per
 * channel requantisation and clamp. Inner loop: 8 instructions per MAC (LDRSB x 2, LDR, ADD, MLA,
 * STR, CMP, BNE), 32 per cell and 4 channels.
 *
 * DSP path (Cortex-M4/M7/M33, dw_dsp), 4 channels at a time: NHWC keeps them in one word of the
 * input and of the [kh][kw][c] weights. For c % 4 != 0 the last group is [c - 4, c), overlapping
 * the one before (those outputs are written twice, with the same values).
 *
 *   for each group of 4 channels:    requantisation constants; the valid rows' weights
 *                                    sign-extended into a stack buffer (at most 25 cells) and
 *                                    init = bias + input_offset * (sum of those weights)
 *     interior pixels (window inside the input columns): dw_interior, one asm block
 *       for each output pixel:       r0-r3 = init (LDM; 3 instructions)
 *         for each valid row:        row pointer, window offset, index (7 with the loop)
 *           for each of kw cells:    LDR input word, LDRD two weight words, SXTB16,
 *                                    SXTB16 ROR 8 ((x0,x2), (x1,x3)), SMLABB, SMLATT, SMLABB,
 *                                    SMLATT, ADDS (index += c, counts up to 0), BNE
 *                                    = 10 instructions per cell and 4 channels (2.5 per MAC)
 *         4 x requantise (6 each, below), BFI x 3, clamp SSUB8/SEL x 2: 34; STR, pointers: 10
 *     other pixels (window cut by the left/right edge): per valid row DW_CELLS
 *                                    LDR input, LDR weights, SXTAB16 / SXTAB16 ROR 8 (+ offset),
 *                                    SXTB16 / SXTB16 ROR 8, 4 x SMLAxy, ADDS, BNE
 *                                    = 12 instructions per cell and 4 channels (3.0 per MAC)
 *
 * Counts read off arm-none-eabi-objdump -d (-mcpu=cortex-m7 -mthumb -mfloat-abi=hard
 * -mfpu=fpv5-d16 -O3). A 3 x 3 interior pixel: 158 instructions per 4 channels (36 MACs), the
 * portable path ~530. The input offset (-zero_point) is in [-127, 128], so x + offset is in
 * [-255, 255], an int16, which SXTAB16 adds while sign-extending (edge loop); the interior loop
 * uses sum((x + off) w) = sum(x w) + off sum(w), exact in int32. GCC 12 does not fold ROR #8 into
 * SXTB16, spills around such loops and, with an FPU, runs out of core registers for them (it
 * parks integers in VFP registers): hence inline assembly (fixed registers in the two long blocks,
 * r7 - the Thumb frame pointer - untouched), target("general-regs-only") on dw_dsp, and C
 * equivalents for builds without __OPTIMIZE__. Stack (-fstack-usage, -O3): dw_dsp 616 bytes, of
 * which the weight buffer is 200, plus 48 inside dw_interior (the portable kernel: 144).
 *
 * Requantisation, DSP path. mcus_requantize_depthwise is, per channel, TFLite's vector-loop rounding
 * (channels below p->vector_channels: conv's, mcus_requantize, ties up - the form of mcus_rq_apply)
 * or its scalar-loop rounding: SaturatingRoundingDoublingHighMul (SRDHM, ties up) then
 * RoundingDivideByPOT by r = -shift (RDBPOT, ties away from zero). For the latter, with
 * 1 <= r <= 24 (modes 0 and 1; otherwise dw_slow4 calls mcus_requantize_depthwise) it is
 *
 *     floor((acc * m + C - [acc < 0] 2^31) / 2^(31 + r)),   C = 2^30 + (1 + 2 zp) 2^(30 + r),
 *
 * with the zero point zp included. Proof: let a = acc * m (m >= 0: never the saturating case).
 * SRDHM(acc, m) = s1 = floor((a + 2^30) / 2^31) (for a < 0 the truncating division of
 * a + 1 - 2^30 by 2^31 gives the same). RDBPOT(x, r) = floor((x + 2^(r-1) - [x < 0]) / 2^r), as it
 * adds 1 to floor(x / 2^r) iff x mod 2^r > 2^(r-1) - 1 + [x < 0]. Nested floors of divisions by
 * powers of two compose - floor((floor(y / 2^31) + K) / 2^r) = floor((y + K 2^31) / 2^(31+r)) for
 * an integer K - and zp 2^(31+r) inside the floor adds zp outside. [s1 < 0] may be replaced by
 * [acc < 0]: they differ only for a in [-2^30, 0), where s1 = 0 and both choices of K give
 * floor(K / 2^r) = 0. |numerator| < 2^63. The ties-up form is floor((acc * m + C) / 2^(31 + r))
 * (see mcus_rq_make in mcus_fast.h). Both in one: per channel k = 2^31 (ties away) or 0 (ties up)
 * and the 64-bit constant C - k = hi : lo; per output: LDM {m, hi, s = r - 1, lo, k},
 * MVN t = ~(acc >> 31) (-1 if acc >= 0, else 0), SMLAL += acc * m, SMLAL += t * k (+k if
 * acc >= 0), ASR of the high word by r - 1, SSAT: 6 instructions. The ties-away form was tested
 * against mcus_requantize_depthwise on random and tie cases, r = 1..24, every zp; both, against
 * TFLite in QEMU (tests/test_ops_extra.py: 8, 13 and 20 channels).
 */
#include "mcus_fast.h"

/* Output row oy, accumulators in acc (io->scratch). */
static inline __attribute__((always_inline)) void
dw_plain(const mcus_fast_dwconv_s8_t *p, const int8_t *in, int8_t *out, int32_t *acc, int32_t oy)
{
    const int32_t in_w = p->in.w, ch = p->in.c, ow = p->out.w, kw = p->g.kw;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const int32_t off = p->input_offset;
    int32_t ky0 = 0, ky1 = p->g.kh, ox, c;

    ky0 = y0 < 0 ? -y0 : 0;
    ky1 = y0 + ky1 > p->in.h ? p->in.h - y0 : ky1;
    for (ox = 0; ox < ow; ++ox) {
        const int32_t x0 = ox * p->g.sw - p->g.pl;
        const int32_t kx0 = x0 < 0 ? -x0 : 0;
        const int32_t kx1 = x0 + kw > in_w ? in_w - x0 : kw;
        int32_t ky, kx;
        int8_t *dst = out + ox * ch;
        for (c = 0; c < ch; ++c) {
            acc[c] = p->bias ? p->bias[c] : 0;
        }
        for (ky = ky0; ky < ky1; ++ky) {
            const int8_t *row = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, y0 + ky, 1);
            for (kx = kx0; kx < kx1; ++kx) {
                const int8_t *src = row + (x0 + kx) * ch;
                const int8_t *w = p->weights + (ky * kw + kx) * ch;
                for (c = 0; c < ch; ++c) {
                    acc[c] += ((int32_t)src[c] + off) * (int32_t)w[c];
                }
            }
        }
        for (c = 0; c < ch; ++c) {
            int32_t v = mcus_requantize_depthwise(acc[c], p->mult[c], p->shift[c], c < p->vector_channels)
                        + p->output_offset;
            v = v < p->act_min ? p->act_min : v;
            dst[c] = (int8_t)(v > p->act_max ? p->act_max : v);
        }
    }
}

#if MCUS_FAST_DSP

#define DW_MAX_ROWS 16  /* taller kernels take the portable path */
#define DW_MAX_CELLS 25 /* interior loop: sign-extended weights on the stack, 8 bytes per cell */

/* The fast depthwise requantisation (mcus_dwrq_t in mcus_fast.h; proof at the top). */
typedef mcus_dwrq_t dw_rq_t;
#define dw_rq_make mcus_dwrq_make

/* requantize_depthwise(acc) + zp, saturated to int8 (the C form of DW_RQ1 below). */
static inline int32_t dw_rq_apply(const dw_rq_t *q, int32_t acc)
{
    return __ssat(mcus_dwrq_apply(q, acc), 8);
}

/*
 * n = -i / ch valid cells of one window row, 4 channels: s and w point just after the row's last
 * valid cell (input and weights), i = -n * ch < 0 counts up to 0.
 */
#if defined(__OPTIMIZE__)
#define DW_CELLS(S, W, I, CH, OFF2, A0, A1, A2, A3)                                               \
    do {                                                                                          \
        uint32_t x_, v_, xe_, ve_;                                                                \
        int32_t i_ = (I);                                                                         \
        __asm__ volatile("1:\n\t"                                                                 \
                         "ldr     %[x], [%[s], %[i]]\n\t"                                         \
                         "ldr     %[v], [%[w], %[i]]\n\t"                                         \
                         "sxtab16 %[xe], %[o], %[x]\n\t"                                          \
                         "sxtab16 %[x], %[o], %[x], ror #8\n\t"                                   \
                         "sxtb16  %[ve], %[v]\n\t"                                                \
                         "sxtb16  %[v], %[v], ror #8\n\t"                                         \
                         "smlabb  %[a0], %[xe], %[ve], %[a0]\n\t"                                 \
                         "smlatt  %[a2], %[xe], %[ve], %[a2]\n\t"                                 \
                         "smlabb  %[a1], %[x], %[v], %[a1]\n\t"                                   \
                         "smlatt  %[a3], %[x], %[v], %[a3]\n\t"                                   \
                         "adds    %[i], %[i], %[c]\n\t"                                           \
                         "bne     1b\n\t"                                                         \
                         : [a0] "+r"(A0), [a1] "+r"(A1), [a2] "+r"(A2), [a3] "+r"(A3),            \
                           [i] "+r"(i_), [x] "=&r"(x_), [v] "=&r"(v_), [xe] "=&r"(xe_),           \
                           [ve] "=&r"(ve_)                                                        \
                         : [s] "r"(S), [w] "r"(W), [c] "r"(CH), [o] "r"(OFF2)                     \
                         : "cc", "memory");                                                       \
    } while (0)
#else
#define DW_CELLS(S, W, I, CH, OFF2, A0, A1, A2, A3)                                               \
    do {                                                                                          \
        int32_t i_ = (I);                                                                         \
        do {                                                                                      \
            const uint32_t x_ = mcus_ld32((S) + i_), v_ = mcus_ld32((W) + i_);                    \
            const uint32_t xe_ = mcus_sxtab16((OFF2), x_), xo_ = mcus_sxtab16_ror8((OFF2), x_);   \
            const uint32_t ve_ = mcus_sxtb16(v_), vo_ = mcus_sxtb16_ror8(v_);                     \
            A0 = __smlabb((int32_t)xe_, (int32_t)ve_, A0);                                        \
            A2 = __smlatt((int32_t)xe_, (int32_t)ve_, A2);                                        \
            A1 = __smlabb((int32_t)xo_, (int32_t)vo_, A1);                                        \
            A3 = __smlatt((int32_t)xo_, (int32_t)vo_, A3);                                        \
            i_ += (CH);                                                                           \
        } while (i_ != 0);                                                                        \
    } while (0)
#endif


#if defined(__OPTIMIZE__)
/*
 * The output stage in assembly: accumulators in r0-r3, r4 = the 4 dw_rq_t (advanced), r5 = the
 * clamp words {lo4, hi4}; leaves the 4 int8 outputs packed in r0; uses r6, r8-r12. Per output
 * 6 instructions: LDM {m, hi, s, lo}, MVN ASR #31 (-1 if acc >= 0, else 0), SMLAL acc * m,
 * SMLAL that * 0x80000000 (+2^31 if acc >= 0), ASR, SSAT (see the proof at the top); then BFI x 3
 * and the clamp of the 4 bytes at once, SSUB8/SEL x 2 (as maxpool2d_s8.c).
 */
#define DW_RQ1(A)                                                                                 \
    "ldm     r4!, {r8-r12}\n\t"                                                                   \
    "mvn     r6, " A ", asr #31\n\t"                                                              \
    "smlal   r11, r9, " A ", r8\n\t"                                                              \
    "smlal   r11, r9, r6, r12\n\t"                                                                \
    "asr     r9, r9, r10\n\t"                                                                     \
    "ssat    " A ", #8, r9\n\t"
#define DW_OUT4                                                                                   \
    DW_RQ1("r0") DW_RQ1("r1") DW_RQ1("r2") DW_RQ1("r3")                                           \
    "bfi     r0, r1, #8, #8\n\t"                                                                  \
    "bfi     r0, r2, #16, #8\n\t"                                                                 \
    "bfi     r0, r3, #24, #8\n\t"                                                                 \
    "ldrd    r8, r9, [r5]\n\t"                                                                    \
    "ssub8   r10, r0, r8\n\t"                                                                     \
    "sel     r0, r0, r8\n\t"                                                                      \
    "ssub8   r10, r9, r0\n\t"                                                                     \
    "sel     r0, r0, r9\n\t"

/* The 4 outputs of one pixel (fast requantisation, clamp) to dst; lim = {lo4, hi4}. */
static inline __attribute__((always_inline)) void
dw_out4_fast(int32_t a0, int32_t a1, int32_t a2, int32_t a3, const dw_rq_t *q, const uint32_t *lim,
             int8_t *dst)
{
    register int32_t r0 __asm__("r0") = a0;
    register int32_t r1 __asm__("r1") = a1;
    register int32_t r2 __asm__("r2") = a2;
    register int32_t r3 __asm__("r3") = a3;
    register const dw_rq_t *r4 __asm__("r4") = q;
    register const uint32_t *r5 __asm__("r5") = lim;
    __asm__ volatile(DW_OUT4 "str     r0, [%[d]]\n\t"
                     : "+r"(r0), "+r"(r1), "+r"(r2), "+r"(r3), "+r"(r4)
                     : "r"(r5), [d] "r"(dst)
                     : "r6", "r8", "r9", "r10", "r11", "r12", "cc", "memory");
}
#else
static inline void dw_out4_fast(int32_t a0, int32_t a1, int32_t a2, int32_t a3, const dw_rq_t *q,
                                const uint32_t *lim, int8_t *dst)
{
    uint32_t v = (uint32_t)(uint8_t)dw_rq_apply(&q[0], a0) | (uint32_t)(uint8_t)dw_rq_apply(&q[1], a1) << 8
                 | (uint32_t)(uint8_t)dw_rq_apply(&q[2], a2) << 16
                 | (uint32_t)(uint8_t)dw_rq_apply(&q[3], a3) << 24;
    (void)__ssub8(v, lim[0]);
    v = __sel(v, lim[0]);
    (void)__ssub8(lim[1], v);
    v = __sel(v, lim[1]);
    mcus_st32(dst, v);
}
#endif

/*
 * The interior pixels of one 4-channel group: windows inside the input columns, all kw columns
 * of every valid row. The weights come sign-extended (wext: (w0,w2), (w1,w3) per cell, row after
 * row) and the accumulators start at bias + input_offset * sum(w), so the loop adds no offset.
 */
typedef struct {
    const int8_t *const *rows;  /*  0: the valid rows' pointers */
    const uint32_t *wext;       /*  4 */
    int32_t ioff;               /*  8: the first pixel's window end within a row (bytes) */
    int32_t step;               /* 12: sw * ch */
    int8_t *dst;                /* 16: the first pixel's output (channel c) */
    const int8_t *const *re;    /* 20: rows + nr */
    int32_t i0;                 /* 24: -kw * ch */
    const int32_t *init;        /* 28: 4 initial accumulator values */
    const dw_rq_t *q;           /* 32: 4 x {m, hi, s, -} */
    int8_t *dend;               /* 36: the output after the last pixel (>= 1 pixel) */
    uint32_t lim[2];            /* 40: act_min, act_max in every byte */
    int32_t ch;                 /* 48 */
} dw_int_t;

#if defined(__OPTIMIZE__)
/*
 * One asm block with fixed registers (r7, the Thumb frame pointer, is left alone): fields 0..47
 * are copied to a frame of its own below sp (LDM/STM); r0-r3 accumulators, r4 row-pointer walker,
 * r5 weight walker, r6 input row, r8 index, lr = ch. Per pixel: LDM of the initial values; per
 * valid row 7 instructions (LDR row, LDR ioff, ADD, LDR i0, ..., LDR end, CMP, BNE); per cell 10
 * (LDR input word, LDRD weights, SXTB16, SXTB16 ROR 8, SMLABB, SMLATT, SMLABB, SMLATT, ADDS,
 * BNE); the output stage (DW_OUT4 and its set-up, 34); STR and the pointer updates.
 */
static inline __attribute__((always_inline)) void dw_interior(const dw_int_t *t)
{
    register const dw_int_t *r0 __asm__("r0") = t;
    __asm__ volatile(
        "sub     sp, sp, #48\n\t"
        "ldr     lr, [r0, #48]\n\t"             /* ch */
        "ldm     r0, {r1-r6, r8-r12}\n\t"       /* fields 0..43 */
        "stm     sp, {r1-r6, r8-r12}\n\t"
        "ldr     r1, [r0, #44]\n\t"
        "str     r1, [sp, #44]\n\t"
        "3:\n\t"                                 /* pixel */
        "ldr     r4, [sp, #28]\n\t"
        "ldm     r4, {r0-r3}\n\t"
        "ldrd    r4, r5, [sp]\n\t"              /* rows, wext */
        "2:\n\t"                                 /* window row */
        "ldr     r6, [r4], #4\n\t"
        "ldr     r8, [sp, #8]\n\t"
        "add     r6, r6, r8\n\t"
        "ldr     r8, [sp, #24]\n\t"
        "1:\n\t"                                 /* cell */
        "ldr     r9, [r6, r8]\n\t"
        "ldrd    r11, r12, [r5], #8\n\t"
        "sxtb16  r10, r9\n\t"
        "sxtb16  r9, r9, ror #8\n\t"
        "smlabb  r0, r10, r11, r0\n\t"
        "smlatt  r2, r10, r11, r2\n\t"
        "smlabb  r1, r9, r12, r1\n\t"
        "smlatt  r3, r9, r12, r3\n\t"
        "adds    r8, r8, lr\n\t"
        "bne     1b\n\t"
        "ldr     r9, [sp, #20]\n\t"
        "cmp     r4, r9\n\t"
        "bne     2b\n\t"
        "ldr     r4, [sp, #32]\n\t"             /* q */
        "add     r5, sp, #40\n\t"               /* lim */
        DW_OUT4
        "ldrd    r8, r9, [sp, #8]\n\t"          /* ioff += step */
        "add     r8, r8, r9\n\t"
        "str     r8, [sp, #8]\n\t"
        "ldr     r5, [sp, #16]\n\t"             /* dst */
        "str     r0, [r5]\n\t"
        "add     r5, r5, lr\n\t"
        "str     r5, [sp, #16]\n\t"
        "ldr     r8, [sp, #36]\n\t"             /* dend */
        "cmp     r5, r8\n\t"
        "bne     3b\n\t"
        "add     sp, sp, #48\n\t"
        : "+r"(r0)
        :
        : "r1", "r2", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
}
#else
static void dw_interior(const dw_int_t *t)
{
    int8_t *dst = t->dst;
    int32_t ioff = t->ioff;
    for (; dst != t->dend; ioff += t->step, dst += t->ch) {
        const int8_t *const *rp = t->rows;
        const uint32_t *wb = t->wext;
        int32_t a0 = t->init[0], a1 = t->init[1], a2 = t->init[2], a3 = t->init[3];
        do {
            const int8_t *s = *rp++ + ioff;
            int32_t i = t->i0;
            do {
                const uint32_t x = mcus_ld32(s + i);
                const uint32_t xe = mcus_sxtb16(x), xo = mcus_sxtb16_ror8(x);
                a0 = __smlabb((int32_t)xe, (int32_t)wb[0], a0);
                a2 = __smlatt((int32_t)xe, (int32_t)wb[0], a2);
                a1 = __smlabb((int32_t)xo, (int32_t)wb[1], a1);
                a3 = __smlatt((int32_t)xo, (int32_t)wb[1], a3);
                wb += 2;
                i += t->ch;
            } while (i != 0);
        } while (rp != t->re);
        dw_out4_fast(a0, a1, a2, a3, t->q, t->lim, dst);
    }
}
#endif

/* Requantisation of 4 accumulators by mcus_requantize_depthwise itself (shifts outside
 * [-24, -2]), clamp, store. */
static __attribute__((noinline)) void dw_slow4(const mcus_fast_dwconv_s8_t *p, int32_t c,
                                               const int32_t *a, int8_t *dst)
{
    int32_t j;
    for (j = 0; j < 4; ++j) {
        int32_t v = mcus_requantize_depthwise(a[j], p->mult[c + j], p->shift[c + j],
                                              c + j < p->vector_channels) + p->output_offset;
        v = v < p->act_min ? p->act_min : v;
        dst[j] = (int8_t)(v > p->act_max ? p->act_max : v);
    }
}

/* GCC 12 with an FPU runs out of core registers for the 13-operand DW_CELLS (it keeps spilled
 * integers in VFP registers): this function uses the core registers only. */
#if defined(__GNUC__) && !defined(__clang__)
#define DW_CORE_REGS __attribute__((noinline, target("general-regs-only")))
#else
#define DW_CORE_REGS __attribute__((noinline))
#endif

/*
 * Output row oy, 4 channels at a time (in.c >= 4): groups [0, 4), [4, 8), ..., and for
 * in.c % 4 != 0 a last group [in.c - 4, in.c) that overlaps the one before it (those outputs are
 * written twice, with the same values). Interior pixels, [oxa, oxb), take dw_interior when the
 * window has at most DW_MAX_CELLS valid cells and the 4 channels the fast requantisation; the
 * other pixels DW_CELLS and dw_out4_fast (or dw_slow4).
 */
static DW_CORE_REGS void dw_dsp(const mcus_fast_dwconv_s8_t *p, const int8_t *in, int8_t *out,
                                int32_t oy)
{
    const int32_t in_w = p->in.w, ch = p->in.c, ow = p->out.w;
    const int32_t kw = p->g.kw, sw = p->g.sw, pl = p->g.pl, wrow = kw * ch;
    const int32_t off = p->input_offset, zp = p->output_offset;
    const uint32_t off2 = (uint32_t)(uint16_t)off * 0x00010001u;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const int32_t ky0 = y0 < 0 ? -y0 : 0;
    const int32_t ky1 = y0 + p->g.kh > p->in.h ? p->in.h - y0 : p->g.kh;
    const int32_t nr = ky1 > ky0 ? ky1 - ky0 : 0;
    /* interior pixels [oxa, oxb): ox * sw - pl >= 0 and ox * sw - pl + kw <= in_w */
    const int32_t oxa0 = (pl + sw - 1) / sw, oxa = oxa0 < ow ? oxa0 : ow;
    const int32_t oxb0 = in_w - kw + pl >= 0 ? (in_w - kw + pl) / sw + 1 : 0;
    const int32_t oxb = oxb0 > ow ? ow : oxb0 < oxa ? oxa : oxb0;
    const int interior = oxa < oxb && nr > 0 && nr * kw <= DW_MAX_CELLS;
    const int8_t *rows[DW_MAX_ROWS];
    uint32_t wext[2 * DW_MAX_CELLS], lim[2];
    dw_rq_t q[4];
    dw_int_t t;
    int32_t init[4], c, j, r;

#pragma GCC unroll 1
    for (r = 0; r < nr; ++r) {
        rows[r] = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, y0 + ky0 + r, 1);
    }
    lim[0] = (uint32_t)(uint8_t)p->act_min * 0x01010101u;
    lim[1] = (uint32_t)(uint8_t)p->act_max * 0x01010101u;
    t.rows = rows;
    t.wext = wext;
    t.step = sw * ch;
    t.re = rows + nr;
    t.i0 = -wrow;
    t.init = init;
    t.q = q;
    t.lim[0] = lim[0];
    t.lim[1] = lim[1];
    t.ch = ch;
    for (c = 0;; c += 4) {
        const int8_t *wc;
        int32_t b[4], ox, ox0 = ow, ox1 = ow, fast = 1;
        if (c + 4 > ch) {
            c = ch - 4; /* the last, overlapping group */
        }
        wc = p->weights + ky0 * wrow + c;
        for (j = 0; j < 4; ++j) {
            fast &= dw_rq_make(&q[j], p->mult[c + j], p->shift[c + j], zp, c + j < p->vector_channels);
            b[j] = p->bias ? p->bias[c + j] : 0;
        }
        if (interior && fast) {
            /* sign-extended weights of the valid rows; sum((x + off) w) = sum(x w) + off sum(w) */
            uint32_t se = 0, so = 0, *e = wext;
            int32_t kx;
#pragma GCC unroll 1
            for (r = 0; r < nr; ++r) {
                const int8_t *w = wc + r * wrow;
#pragma GCC unroll 1
                for (kx = 0; kx < kw; ++kx, w += ch, e += 2) {
                    const uint32_t v = mcus_ld32(w);
                    e[0] = mcus_sxtb16(v);
                    e[1] = mcus_sxtb16_ror8(v);
                    se = __sadd16(se, e[0]); /* |sum| <= 127 * DW_MAX_CELLS: int16 */
                    so = __sadd16(so, e[1]);
                }
            }
            init[0] = b[0] + off * (int16_t)se;
            init[2] = b[2] + off * ((int32_t)se >> 16);
            init[1] = b[1] + off * (int16_t)so;
            init[3] = b[3] + off * ((int32_t)so >> 16);
            t.ioff = ((oxa * sw - pl) + kw) * ch + c;
            t.dst = out + oxa * ch + c;
            t.dend = out + oxb * ch + c;
            dw_interior(&t);
            ox0 = oxa;
            ox1 = oxb;
        }
        for (ox = 0; ox < ow; ++ox) {
            int32_t x0, kx0, kx1, a0 = b[0], a1 = b[1], a2 = b[2], a3 = b[3];
            int8_t *dst;
            if (ox == ox0) {
                ox = ox1;
                if (ox >= ow) {
                    break;
                }
            }
            x0 = ox * sw - pl;
            kx0 = x0 < 0 ? -x0 : 0;
            kx1 = x0 + kw > in_w ? in_w - x0 : kw;
            dst = out + ox * ch + c;
            if (kx1 > kx0) {
                const int32_t ioff = (x0 + kx1) * ch + c, i0 = (kx0 - kx1) * ch;
                const int8_t *w = wc + kx1 * ch;
#pragma GCC unroll 1
                for (r = 0; r < nr; ++r, w += wrow) {
                    DW_CELLS(rows[r] + ioff, w, i0, ch, off2, a0, a1, a2, a3);
                }
            }
            if (fast) {
                dw_out4_fast(a0, a1, a2, a3, q, lim, dst);
            } else {
                int32_t a[4];
                a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
                dw_slow4(p, c, a, dst);
            }
        }
        if (c + 4 >= ch) {
            break;
        }
    }
}
#endif /* MCUS_FAST_DSP */

void mcus_fast_dwconv2d_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_dwconv_s8_t *p = (const mcus_fast_dwconv_s8_t *)params;
    const int8_t *in = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
    int8_t *out = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 1);

#if MCUS_FAST_DSP
    /* a single output column does not pay for the per-group set-up (measured: 1 x 1 outputs) */
    if (p->in.c >= 4 && p->g.kh <= DW_MAX_ROWS && p->out.w > 1) {
        dw_dsp(p, in, out, oy);
        return;
    }
#endif
    dw_plain(p, in, out, (int32_t *)io->scratch, oy);
}
