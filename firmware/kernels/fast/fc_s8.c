/*
 * int8 fully connected layer (Dense on a vector), the whole output vector in one call, without an
 * im2col column: io->scratch is not used, so the layer needs no RAM beyond its input and output.
 *
 * The input offset is folded into the bias by the generator (mcusearch/convert/fast.py):
 * sum((x + off) w) + b = sum(x w) + (b + off sum(w)), exact in int32 (wrap-around arithmetic, as
 * the reference kernel's). Weights (layout.s8_fc_weights): 4-k chunks with four output channels
 * side by side ([c k0..3][c+1 k0..3][c+2 k0..3][c+3 k0..3]), quad after quad; the oc % 4 last
 * channels' chunks; the K % 4 leftovers [c][t]. Per quad and chunk on DSP cores: LDR of 4 inputs,
 * SXTB16 / SXTB16 ROR 8 into (x0, x2), (x1, x3) - shared by the four channels - then 2 LDRD of
 * weights, 8 SXTB16, 8 SMLAD: 21 instructions (+ SUBS, BNE) for 16 MACs. conv2d_s8 does 10 per 8
 * on a sign-extended column, but the column (2 K int16) and its per-layer requantisation table
 * (20 bytes per output channel) live in io->scratch; here nothing does.
 *
 * Requantisation per output, where the generator found it exact for every channel (rq_short):
 * TFLite's requantize(acc) + zp = floor((SRDHM(acc, m) + (1 + 2 zp) 2^(r-1)) / 2^r) with
 * SRDHM(acc, m) = floor((acc m + 2^30) / 2^31) = SMMULR(2 acc, m) for |acc| < 2^30 (the
 * rounding of gemmlowp's nudged, truncated division is this floor), and the rounding shift's
 * bias (ties up) and the zero point entering through SMMLAR's accumulator: SMMLAR(2 acc, m,
 * (1 + 2 zp) << (r - 1)) >> r, r = -shift in [1, 24], the sum within 31 bits (checked per
 * channel by the generator from the weights and biases). Else mcus_rq_make and mcus_rq_apply
 * (TFLite's, bit-exact in every case). Then SSAT and the activation's clamp.
 *
 * mcus_fast_fc_s8_quads, the entry the generator calls where the short requantisation, K % 4 == 0
 * and a bias array (written even when zero) hold (fastdata.fc_quads_applies): on DSP cores, built
 * optimised, one asm loop over all quads (fc_quads; fc_quads_paired on the paired layout): the
 * biases (2 LDRD), the chunks (21 + 2 each), the four outputs (10 each + 5 for a clamp), 12
 * loads, stores and branches of the pointers it keeps in a struct: 95 instructions a quad at K = 8
 * where the C loop around fc_quad / fc_quad_out took 137 (its sums passed through the stack; the
 * leftover-k test; the pointers reloaded). The oc % 4 last channels then run the C tail (fc_tail).
 * qemu-m7, -O3: an LSTM's 8 -> 64 Dense 2,201 -> 1,661 instructions, 16 -> 64 2,937 -> 2,394; the
 * FC auto-encoder's paired 128 -> 128 23,057 -> 21,548.
 */
#include "mcus_fast.h"

/*
 * a[0..3] = the sums of the first 4 n values of x times the quad's channels, paired layout
 * (layout.s8_fc_weights_paired): per 4-k chunk and channel pair (c, c + 1) one SMLAD of
 * (x0, x2) / (x1, x3) with the raw weight word - halfwords 256 w_{c+1} + w_c - into S, and one
 * with its SXTB16 (w_c) into A: S = 256 sum_{c+1} + sum_c and A = sum_c (mod 2^32), so
 * sum_{c+1} = (S - A) >> 8, exact while |sum_{c+1}| < 2^23 (the generator checks
 * 128 sum |w_{c+1}| < 2^23). 19 instructions for 16 MACs (the quad layout: 23).
 */
static inline __attribute__((always_inline)) void fc_quad_paired(const int8_t *x, const int8_t *w,
                                                                 int32_t n, int32_t a[4])
{
    int32_t s0 = 0, a0 = 0, s1 = 0, a1 = 0;
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    if (n) {
        uint32_t x1, x2, w1, w2, w3, w4;
        __asm__ volatile(
            "1:\n\t"
            "ldr    %[x2], [%[x]], #4\n\t"
            "ldrd   %[w1], %[w2], [%[w]], #8\n\t"
            "ldrd   %[w3], %[w4], [%[w]], #8\n\t"
            "sxtb16 %[x1], %[x2]\n\t"
            "sxtb16 %[x2], %[x2], ror #8\n\t"
            "smlad  %[s0], %[x1], %[w1], %[s0]\n\t"
            "sxtb16 %[w1], %[w1]\n\t"
            "smlad  %[a0], %[x1], %[w1], %[a0]\n\t"
            "smlad  %[s0], %[x2], %[w2], %[s0]\n\t"
            "sxtb16 %[w2], %[w2]\n\t"
            "smlad  %[a0], %[x2], %[w2], %[a0]\n\t"
            "smlad  %[s1], %[x1], %[w3], %[s1]\n\t"
            "sxtb16 %[w3], %[w3]\n\t"
            "smlad  %[a1], %[x1], %[w3], %[a1]\n\t"
            "smlad  %[s1], %[x2], %[w4], %[s1]\n\t"
            "sxtb16 %[w4], %[w4]\n\t"
            "smlad  %[a1], %[x2], %[w4], %[a1]\n\t"
            "subs   %[n], %[n], #1\n\t"
            "bne    1b\n\t"
            : [s0] "+r"(s0), [a0] "+r"(a0), [s1] "+r"(s1), [a1] "+r"(a1), [x] "+r"(x), [w] "+r"(w),
              [n] "+r"(n), [x1] "=&r"(x1), [x2] "=&r"(x2), [w1] "=&r"(w1), [w2] "=&r"(w2),
              [w3] "=&r"(w3), [w4] "=&r"(w4)
            :
            : "cc", "memory");
    }
#else
    for (; n > 0; --n) {
        const uint32_t v = mcus_ld32(x);
        const uint32_t xe = mcus_sxtb16(v), xo = mcus_sxtb16_ror8(v);
        const uint32_t w1 = mcus_ld32(w), w2 = mcus_ld32(w + 4), w3 = mcus_ld32(w + 8), w4 = mcus_ld32(w + 12);
        s0 = mcus_smlad(xo, w2, mcus_smlad(xe, w1, s0));
        a0 = mcus_smlad(xo, mcus_sxtb16(w2), mcus_smlad(xe, mcus_sxtb16(w1), a0));
        s1 = mcus_smlad(xo, w4, mcus_smlad(xe, w3, s1));
        a1 = mcus_smlad(xo, mcus_sxtb16(w4), mcus_smlad(xe, mcus_sxtb16(w3), a1));
        x += 4;
        w += 16;
    }
#endif
    a[0] += a0;
    a[1] += (int32_t)((uint32_t)s0 - (uint32_t)a0) >> 8;
    a[2] += a1;
    a[3] += (int32_t)((uint32_t)s1 - (uint32_t)a1) >> 8;
}

/* What the requantisation of every output reads, in locals (the int8 output stores could alias
 * the parameter block as far as the compiler knows). */
typedef struct {
    const int32_t *mult;
    const int8_t *shift;
    int32_t zp, zp1;          /* output zero point; 1 + 2 zp */
    int32_t lo, hi;           /* activation range */
} fc_rq_t;

/* requantize(acc) + zero point of channel c, clamped; `clamp` (a constant after inlining): 0 none
 * beyond int8, 1 the lower bound (a fused ReLU), 2 both. */
MCUS_EW_INLINE int8_t fc_out(const fc_rq_t *q, int32_t c, int32_t acc, int rq_short, int clamp)
{
    int32_t v;
#if MCUS_REQUANT_MODE == MCUS_REQUANT_TFLITE
    if (rq_short) {
        const int32_t r = -(int32_t)q->shift[c];
        v = mcus_smmlar(acc * 2, q->mult[c], (int32_t)((uint32_t)q->zp1 << (r - 1))) >> r;
    } else
#else
    (void)rq_short;
#endif
    {
        const mcus_rq_t rq = mcus_rq_make(q->mult[c], q->shift[c], q->zp);
        v = mcus_rq_apply(&rq, acc);
    }
#if MCUS_FAST_DSP
    v = __ssat(v, 8);
#else
    v = v < -128 ? -128 : v > 127 ? 127 : v;
#endif
    if (clamp >= 1) {
        v = v < q->lo ? q->lo : v;
    }
    if (clamp == 2) {
        v = v > q->hi ? q->hi : v;
    }
    return (int8_t)v;
}

#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
/* One k chunk of two channels A and B: their 4 int8 weights each (one LDRD, sign-extended in
 * odd and even halves) times the input chunk's halves xe, xo, by SMLAD: 9 instructions, 8 MACs. */
#define MCUS_FC_2CH(A, B)                                                                         \
    "ldrd   %[wa], %[wb], [%[w]], #8\n\t"                                                     \
    "sxtb16 %[t], %[wa], ror #8\n\t"                                                          \
    "sxtb16 %[wa], %[wa]\n\t"                                                                 \
    "smlad  " A ", %[xe], %[wa], " A "\n\t"                                                   \
    "smlad  " A ", %[xo], %[t], " A "\n\t"                                                    \
    "sxtb16 %[t], %[wb], ror #8\n\t"                                                          \
    "sxtb16 %[wb], %[wb]\n\t"                                                                 \
    "smlad  " B ", %[xe], %[wb], " B "\n\t"                                                   \
    "smlad  " B ", %[xo], %[t], " B "\n\t"
#endif

/* a[0..3] += the first 4 n values of x times the quad's channels (chunks of 16 bytes at w). */
static inline __attribute__((always_inline)) void fc_quad(const int8_t *x, const int8_t *w, int32_t n,
                                                          int32_t a[4])
{
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    if (n) {
        uint32_t xe, xo, wa, wb, t;
        __asm__ volatile(
            "1:\n\t"
            "ldr    %[xe], [%[x]], #4\n\t"
            "sxtb16 %[xo], %[xe], ror #8\n\t"
            "sxtb16 %[xe], %[xe]\n\t"
            MCUS_FC_2CH("%[a0]", "%[a1]")
            MCUS_FC_2CH("%[a2]", "%[a3]")
            "subs   %[n], %[n], #1\n\t"
            "bne    1b\n\t"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [w] "+r"(w),
              [n] "+r"(n), [xe] "=&r"(xe), [xo] "=&r"(xo), [wa] "=&r"(wa), [wb] "=&r"(wb),
              [t] "=&r"(t)
            :
            : "cc", "memory");
    }
#else
    for (; n > 0; --n) {
        const uint32_t v = mcus_ld32(x);
        const uint32_t ve = mcus_sxtb16(v), vo = mcus_sxtb16_ror8(v);
        const uint32_t w0 = mcus_ld32(w), w1 = mcus_ld32(w + 4), w2 = mcus_ld32(w + 8), w3 = mcus_ld32(w + 12);
        a0 = mcus_smlad(vo, mcus_sxtb16_ror8(w0), mcus_smlad(ve, mcus_sxtb16(w0), a0));
        a1 = mcus_smlad(vo, mcus_sxtb16_ror8(w1), mcus_smlad(ve, mcus_sxtb16(w1), a1));
        a2 = mcus_smlad(vo, mcus_sxtb16_ror8(w2), mcus_smlad(ve, mcus_sxtb16(w2), a2));
        a3 = mcus_smlad(vo, mcus_sxtb16_ror8(w3), mcus_smlad(ve, mcus_sxtb16(w3), a3));
        x += 4;
        w += 16;
    }
#endif
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
}

#if MCUS_FAST_DSP && defined(__OPTIMIZE__) && MCUS_REQUANT_MODE == MCUS_REQUANT_TFLITE
/* One output of fc_quad_out: the short requantisation (fc_out) as ((SMMULR(2 acc, m) >> (r - 1))
 * + 1 + 2 zp) >> 1 - the same floor((h + (1 + 2 zp) 2^(r-1)) / 2^r), nested floors of divisions
 * by powers of two composing - which needs two scratch registers, not three; SSAT, the clamp when
 * given (a fused activation), the byte stored. */
#define MCUS_FC_OUT_R(A, CLAMP, S, M, SP, MP, OP, ZP1)                                            \
    "ldrsb  " S ", [" SP "], #1\n\t"                                                            \
    "ldr    " M ", [" MP "], #4\n\t"                                                            \
    "mvn    " S ", " S "\n\t"                                                                   \
    "lsl    " A ", " A ", #1\n\t"                                                               \
    "smmulr " A ", " A ", " M "\n\t"                                                            \
    "asr    " A ", " A ", " S "\n\t"                                                            \
    "add    " A ", " A ", " ZP1 "\n\t"                                                          \
    "asr    " A ", " A ", #1\n\t"                                                               \
    "ssat   " A ", #8, " A "\n\t"                                                               \
    CLAMP                                                                                         \
    "strb   " A ", [" OP "], #1\n\t"
#define MCUS_FC_OUT(A, CLAMP) MCUS_FC_OUT_R(A, CLAMP, "%[s]", "%[m]", "%[sp]", "%[mp]", "%[op]", "%[zp1]")
/* max(A, lo) and min(A, hi) in byte lane 0 (SSUB8 sets GE per lane, SEL picks per lane; the
 * byte stored is lane 0): %[lh] holds lo in lane 0 and hi in lane 1. */
#define MCUS_FC_CLAMP_R(A, S, M, LH)                                                              \
    "ssub8  " S ", " A ", " LH "\n\t"                                                           \
    "sel    " A ", " A ", " LH "\n\t"                                                           \
    "ror    " S ", " LH ", #8\n\t"                                                              \
    "ssub8  " M ", " S ", " A "\n\t"                                                            \
    "sel    " A ", " A ", " S "\n\t"
#define MCUS_FC_CLAMP(A) MCUS_FC_CLAMP_R(A, "%[s]", "%[m]", "%[lh]")

/* out[c..c+3] from a quad's accumulators with the short requantisation, in one block (in C the
 * quad's live values leave too few registers: about 22 instructions an output, here 11 + 5 for a
 * clamp). `clamp`: 0 or 2 as fc_out. */
static inline __attribute__((always_inline)) void fc_quad_out(const fc_rq_t *q, int32_t c,
                                                              int8_t *out, const int32_t a[4],
                                                              int clamp)
{
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], s, m;
    const int8_t *sp = q->shift + c;
    const int32_t *mp = q->mult + c;
    int8_t *op = out + c;
    const uint32_t lh = ((uint32_t)q->lo & 0xFFu) | ((uint32_t)q->hi & 0xFFu) << 8;

    if (clamp) {
        __asm__ volatile(MCUS_FC_OUT("%[a0]", MCUS_FC_CLAMP("%[a0]")) MCUS_FC_OUT("%[a1]", MCUS_FC_CLAMP("%[a1]"))
                         MCUS_FC_OUT("%[a2]", MCUS_FC_CLAMP("%[a2]")) MCUS_FC_OUT("%[a3]", MCUS_FC_CLAMP("%[a3]"))
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [sp] "+r"(sp),
                           [mp] "+r"(mp), [op] "+r"(op), [s] "=&r"(s), [m] "=&r"(m)
                         : [zp1] "r"(q->zp1), [lh] "r"(lh)
                         : "cc", "memory");
    } else {
        __asm__ volatile(MCUS_FC_OUT("%[a0]", "") MCUS_FC_OUT("%[a1]", "")
                         MCUS_FC_OUT("%[a2]", "") MCUS_FC_OUT("%[a3]", "")
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [sp] "+r"(sp),
                           [mp] "+r"(mp), [op] "+r"(op), [s] "=&r"(s), [m] "=&r"(m)
                         : [zp1] "r"(q->zp1)
                         : "cc", "memory");
    }
}
#define MCUS_FC_QUAD_ASM 1

/* What fc_quads reads and advances between quads, in memory: the asm's registers hold the quad's
 * four sums and the multiply-accumulate loop's operands. Offsets used in the asm. */
typedef struct {
    const int8_t *x;          /*  0: the input vector */
    int32_t nch;              /*  4: K / 4 */
    const int32_t *bias;      /*  8: the next quad's biases */
    const int32_t *mult;      /* 12 */
    const int8_t *shift;      /* 16 */
    int8_t *out;              /* 20 */
    int32_t zp1;              /* 24: 1 + 2 zp */
    uint32_t lh;              /* 28: lo in byte lane 0, hi in lane 1 (the clamp) */
    int32_t quads;            /* 32: quads left */
} fc_quads_t;

/* After a quad's sums (SUMS: a0..a3 = channels c..c+3; the shift, multiplier and output pointers
 * in n, x, xe; 1 + 2 zp in xo): the four outputs (MCUS_FC_OUT_R with s, m in wa, wb; with the
 * clamp's bounds in t when `clamp`), the pointers back to st and the next quad. One asm block
 * for fc_quads and fc_quads_paired, whose sums differ. */
#define MCUS_FC_QOUT(A, CLAMP) MCUS_FC_OUT_R(A, CLAMP, "%[wa]", "%[wb]", "%[n]", "%[x]", "%[xe]", "%[xo]")
#define MCUS_FC_QCLAMP(A) MCUS_FC_CLAMP_R(A, "%[wa]", "%[wb]", "%[t]")
#define MCUS_FC_QUAD_NEXT                                                                         \
    "strd   %[x], %[n], [%[st], #12]\n\t"                                                     \
    "str    %[xe], [%[st], #20]\n\t"                                                          \
    "ldr    %[t], [%[st], #32]\n\t"                                                           \
    "subs   %[t], %[t], #1\n\t"                                                               \
    "str    %[t], [%[st], #32]\n\t"                                                           \
    "bne    1b\n\t"
#define MCUS_FC_QUAD_OPERANDS                                                                     \
    : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [x] "=&r"(x),             \
      [n] "=&r"(n), [xe] "=&r"(xe), [xo] "=&r"(xo), [wa] "=&r"(wa), [wb] "=&r"(wb),              \
      [t] "=&r"(t), [w] "+&r"(w)                                                                \
    : [st] "r"(st)                                                                              \
    : "cc", "memory"
#define MCUS_FC_QUADS_ASM(SUMS)                                                                   \
    do {                                                                                          \
        if (clamp) {                                                                              \
            __asm__ volatile(SUMS "ldr    %[t], [%[st], #28]\n\t"                                 \
                             MCUS_FC_QOUT("%[a0]", MCUS_FC_QCLAMP("%[a0]"))                       \
                             MCUS_FC_QOUT("%[a1]", MCUS_FC_QCLAMP("%[a1]"))                       \
                             MCUS_FC_QOUT("%[a2]", MCUS_FC_QCLAMP("%[a2]"))                       \
                             MCUS_FC_QOUT("%[a3]", MCUS_FC_QCLAMP("%[a3]"))                       \
                             MCUS_FC_QUAD_NEXT MCUS_FC_QUAD_OPERANDS);                            \
        } else {                                                                                  \
            __asm__ volatile(SUMS MCUS_FC_QOUT("%[a0]", "") MCUS_FC_QOUT("%[a1]", "")             \
                             MCUS_FC_QOUT("%[a2]", "") MCUS_FC_QOUT("%[a3]", "")                  \
                             MCUS_FC_QUAD_NEXT MCUS_FC_QUAD_OPERANDS);                            \
        }                                                                                         \
    } while (0)

/* Every whole quad of an unpaired layer with K % 4 == 0, a bias and the short requantisation, in one asm
 * loop: per quad 2 LDRD of the biases, the fc_quad chunks (21 instructions each), the four
 * outputs (MCUS_FC_OUT, 10 each + 5 for a clamp), and 12 loads, stores and branches of the
 * pointers above - 95 for K = 8 where the C loop around fc_quad / fc_quad_out took 137 (the
 * sums went through the stack, a leftover-k test, the pointers reloaded). `clamp`: 0 or 2.
 * Returns w past the last quad's weights. */
static inline __attribute__((always_inline)) const int8_t *fc_quads(fc_quads_t *st, const int8_t *w,
                                                                    int clamp)
{
    int32_t a0, a1, a2, a3;
    uint32_t x, n, xe, xo, wa, wb, t;
/* the biases into a0..a3, then K / 4 chunks of fc_quad */
#define MCUS_FC_QUAD_SUMS                                                                         \
    "1:\n\t"                                                                                  \
    "ldr    %[n], [%[st], #8]\n\t"                                                            \
    "ldrd   %[a0], %[a1], [%[n]], #8\n\t"                                                     \
    "ldrd   %[a2], %[a3], [%[n]], #8\n\t"                                                     \
    "str    %[n], [%[st], #8]\n\t"                                                            \
    "ldrd   %[x], %[n], [%[st]]\n\t"                                                          \
    "2:\n\t"                                                                                  \
    "ldr    %[xe], [%[x]], #4\n\t"                                                            \
    "sxtb16 %[xo], %[xe], ror #8\n\t"                                                         \
    "sxtb16 %[xe], %[xe]\n\t"                                                                 \
    MCUS_FC_2CH("%[a0]", "%[a1]")                                                                 \
    MCUS_FC_2CH("%[a2]", "%[a3]")                                                                 \
    "subs   %[n], %[n], #1\n\t"                                                               \
    "bne    2b\n\t"                                                                           \
    "ldrd   %[x], %[n], [%[st], #12]\n\t"                                                     \
    "ldrd   %[xe], %[xo], [%[st], #20]\n\t"
    MCUS_FC_QUADS_ASM(MCUS_FC_QUAD_SUMS);
#undef MCUS_FC_QUAD_SUMS
    return w;
}

/* fc_quads on the paired layout (fc_quad_paired, K >= 32): per quad the biases of channels c and
 * c + 2 start both sums of their pair (S - A cancels them), the chunks as fc_quad_paired's (19
 * instructions, two LDRD into two registers), then the odd channels' bias plus (S - A) >> 8, the
 * four outputs and the pointers as fc_quads: 7 + 7 more a quad than the unpaired loop, 2 fewer
 * a chunk (the C loop around fc_quad_paired took ~110 a quad beyond its chunks, this ~62). */
static inline __attribute__((always_inline)) const int8_t *fc_quads_paired(fc_quads_t *st,
                                                                           const int8_t *w, int clamp)
{
    int32_t a0, a1, a2, a3;   /* channels c, c + 1, c + 2, c + 3 */
    uint32_t x, n, xe, xo, wa, wb, t;
/* the biases, K / 4 paired chunks, the odd channels' sums */
#define MCUS_FC_PQUAD_SUMS                                                                        \
    "1:\n\t"                                                                                  \
    "ldr    %[n], [%[st], #8]\n\t"                                                            \
    "ldr    %[a0], [%[n]]\n\t"                                                                \
    "ldr    %[a2], [%[n], #8]\n\t"                                                            \
    "add    %[n], %[n], #16\n\t"                                                              \
    "str    %[n], [%[st], #8]\n\t"                                                            \
    "mov    %[a1], %[a0]\n\t"                                                                 \
    "mov    %[a3], %[a2]\n\t"                                                                 \
    "ldrd   %[x], %[n], [%[st]]\n\t"                                                          \
    "2:\n\t"                                                                                  \
    "ldr    %[xo], [%[x]], #4\n\t"                                                            \
    "ldrd   %[wa], %[wb], [%[w]], #8\n\t"                                                     \
    "sxtb16 %[xe], %[xo]\n\t"                                                                 \
    "sxtb16 %[xo], %[xo], ror #8\n\t"                                                         \
    "smlad  %[a1], %[xe], %[wa], %[a1]\n\t"                                                   \
    "sxtb16 %[wa], %[wa]\n\t"                                                                 \
    "smlad  %[a0], %[xe], %[wa], %[a0]\n\t"                                                   \
    "smlad  %[a1], %[xo], %[wb], %[a1]\n\t"                                                   \
    "sxtb16 %[wb], %[wb]\n\t"                                                                 \
    "smlad  %[a0], %[xo], %[wb], %[a0]\n\t"                                                   \
    "ldrd   %[wa], %[wb], [%[w]], #8\n\t"                                                     \
    "smlad  %[a3], %[xe], %[wa], %[a3]\n\t"                                                   \
    "sxtb16 %[wa], %[wa]\n\t"                                                                 \
    "smlad  %[a2], %[xe], %[wa], %[a2]\n\t"                                                   \
    "smlad  %[a3], %[xo], %[wb], %[a3]\n\t"                                                   \
    "sxtb16 %[wb], %[wb]\n\t"                                                                 \
    "smlad  %[a2], %[xo], %[wb], %[a2]\n\t"                                                   \
    "subs   %[n], %[n], #1\n\t"                                                               \
    "bne    2b\n\t"                                                                           \
    "ldr    %[n], [%[st], #8]\n\t"                                                            \
    "ldr    %[xe], [%[n], #-12]\n\t"                                                          \
    "ldr    %[xo], [%[n], #-4]\n\t"                                                           \
    "sub    %[a1], %[a1], %[a0]\n\t"                                                          \
    "add    %[a1], %[xe], %[a1], asr #8\n\t"                                                  \
    "sub    %[a3], %[a3], %[a2]\n\t"                                                          \
    "add    %[a3], %[xo], %[a3], asr #8\n\t"                                                  \
    "ldrd   %[x], %[n], [%[st], #12]\n\t"                                                     \
    "ldrd   %[xe], %[xo], [%[st], #20]\n\t"
    MCUS_FC_QUADS_ASM(MCUS_FC_PQUAD_SUMS);
#undef MCUS_FC_PQUAD_SUMS
    return w;
}
#undef MCUS_FC_QUADS_ASM
#undef MCUS_FC_QUAD_OPERANDS
#undef MCUS_FC_QUAD_NEXT
#undef MCUS_FC_QCLAMP
#undef MCUS_FC_QOUT
#else
#define MCUS_FC_QUAD_ASM 0
#endif

/* out[c] for the last oc % 4 channels c from c0 on (weights w: 4-byte chunks; wt: the K % 4
 * leftovers, at channel c0's). */
MCUS_EW_INLINE void fc_tail(const fc_rq_t *q, const int32_t *bias, const int8_t *x, const int8_t *w,
                            const int8_t *wt, int32_t c0, int32_t oc, int32_t nch, int32_t T,
                            int8_t *out, int rq_short, int clamp)
{
    const int8_t *xt = x + nch * 4;
    int32_t c, t;

    for (c = c0; c < oc; ++c) {
        int32_t acc = bias ? bias[c] : 0;
        int32_t j;
        for (j = 0; j < nch; ++j) {
            const uint32_t v = mcus_ld32(x + 4 * j), wv = mcus_ld32(w + 4 * j);
            acc = mcus_smlad(mcus_sxtb16(v), mcus_sxtb16(wv), acc);
            acc = mcus_smlad(mcus_sxtb16_ror8(v), mcus_sxtb16_ror8(wv), acc);
        }
        w += nch * 4;
        for (t = 0; t < T; ++t) {
            acc += xt[t] * wt[t];
        }
        wt += T;
        out[c] = fc_out(q, c, acc, rq_short, clamp);
    }
}

#if MCUS_FC_QUAD_ASM
/* The whole layer by fc_quads / fc_quads_paired, then the oc % 4 last channels (fc_tail; clamp 2:
 * one copy, exact without an activation too). */
MCUS_EW_INLINE void fc_layer_quads(const mcus_fast_conv_s8_t *p, const int8_t *x, int8_t *out,
                                   int paired)
{
    const int32_t oc = p->out.c, nch = p->in.c >> 2;
    const int clamp = p->act_max < 127 || p->act_min > -128;
    fc_quads_t st = {x, nch, p->bias, p->mult, p->shift, out, 1 + 2 * (int32_t)p->output_offset,
                     ((uint32_t)p->act_min & 0xFFu) | ((uint32_t)p->act_max & 0xFFu) << 8, oc >> 2};
    const int8_t *w;

    if (paired) {
        w = clamp ? fc_quads_paired(&st, p->weights, 2) : fc_quads_paired(&st, p->weights, 0);
    } else {
        w = clamp ? fc_quads(&st, p->weights, 2) : fc_quads(&st, p->weights, 0);
    }
    if (oc & 3) {
        const fc_rq_t q = {p->mult, p->shift, p->output_offset, 1 + 2 * (int32_t)p->output_offset,
                           p->act_min, p->act_max};
        fc_tail(&q, p->bias, x, w, w, oc & ~3, oc, nch, 0, out, 1, 2);
    }
}
#endif

/* The whole layer for one requantisation and clamp (constants after inlining). */
MCUS_EW_INLINE void fc_layer(const mcus_fast_conv_s8_t *p, const int8_t *x, int8_t *out,
                             int rq_short, int clamp, int paired)
{
    const fc_rq_t q = {p->mult, p->shift, p->output_offset, 1 + 2 * (int32_t)p->output_offset,
                       p->act_min, p->act_max};
    const int32_t *const bias = p->bias;
    const int32_t K = p->in.c, oc = p->out.c;
    const int32_t nch = K >> 2, T = K & 3;
    const int8_t *w = p->weights;
    const int8_t *wt = w + nch * 4 * oc;
    const int8_t *xt = x + nch * 4;
    int32_t c = 0, i, t;

    for (; c + 3 < oc; c += 4) {
        int32_t a[4];
        for (i = 0; i < 4; ++i) {
            a[i] = bias ? bias[c + i] : 0;
        }
        if (paired) {
            fc_quad_paired(x, w, nch, a);
        } else {
            fc_quad(x, w, nch, a);
        }
        w += nch * 16;
#if MCUS_FC_QUAD_ASM
        if (rq_short) {
            for (i = 0; i < 4; ++i) {
                for (t = 0; t < T; ++t) {
                    a[i] += xt[t] * wt[t];
                }
                wt += T;
            }
            fc_quad_out(&q, c, out, a, clamp);
            continue;
        }
#endif
        for (i = 0; i < 4; ++i) {
            for (t = 0; t < T; ++t) {
                a[i] += xt[t] * wt[t];
            }
            wt += T;
            out[c + i] = fc_out(&q, c + i, a[i], rq_short, clamp);
        }
    }
    fc_tail(&q, bias, x, w, wt, c, oc, nch, T, out, rq_short, clamp);   /* 4-byte chunks */
}


void mcus_fast_fc_s8(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_fc_s8_t *f = (const mcus_fast_fc_s8_t *)params;
    const mcus_fast_conv_s8_t *p = &f->c;
    const int8_t *x = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
    int8_t *out = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, row, 1);
    const int clamp = p->act_max < 127 ? 2 : p->act_min > -128 ? 1 : 0;

#if defined(__OPTIMIZE_SIZE__)                  /* built for size: one copy of the layer */
    (void)clamp;
    fc_layer(p, x, out, f->rq_short, 2, f->paired);
#else
    if (f->rq_short && clamp == 0) {         /* constants: a runtime flag costs registers */
        if (f->paired) {
            fc_layer(p, x, out, 1, 0, 1);
        } else {
            fc_layer(p, x, out, 1, 0, 0);
        }
    } else if (f->rq_short) {
        if (f->paired) {
            fc_layer(p, x, out, 1, 2, 1);
        } else {
            fc_layer(p, x, out, 1, 2, 0);
        }
    } else {
        fc_layer(p, x, out, 0, 2, f->paired);
    }
#endif
}

/* The generator's entry for the layers fc_quads applies to (fastdata.fc_quads_applies: the short
 * requantisation, the unpaired layout, K % 4 == 0, a bias array, a quad at least); checked again
 * here, and mcus_fast_fc_s8 where it does not hold or without the asm (a separate entry: the
 * other layers' calls pay nothing for it). */
void mcus_fast_fc_s8_quads(const void *params, const mcus_io_t *io, int32_t row)
{
#if MCUS_FC_QUAD_ASM
    const mcus_fast_fc_s8_t *f = (const mcus_fast_fc_s8_t *)params;
    const mcus_fast_conv_s8_t *p = &f->c;

    if (p->out.c >= 4 && f->rq_short && (p->in.c & 3) == 0 && p->in.c && p->bias) {
        const int8_t *x = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
        int8_t *out = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, row, 1);
        fc_layer_quads(p, x, out, f->paired);
        return;
    }
#endif
    mcus_fast_fc_s8(params, io, row);
}

#undef MCUS_FC_2CH
