/*
 * int8 pointwise convolution of few input channels (1 x 1, unpadded, in_c = K = 4, 8 or 16), one
 * output row per call, without a column: pixel p's K inputs are the word(s) at row + p * sw * K.
 * Chosen by the generator (mcusearch/convert/fastdata.py, conv1x1_applies) for such layers whose
 * right shifts are all in [1, 24]; conv2d_s8 spent most of their time on per-pixel column set-up
 * and per-output requantisation bookkeeping (unet_head's one-channel mask, K = 8: 16.9
 * instructions a MAC; inception's K = 4 branches 4.5-6.0; a K = 8 -> 8 layer 2.7; K = 16 1.5-1.7).
 *
 * Per output channel the generator stores one record of K / 2 + 4 words (fastdata.conv1x1_records):
 * the weights as int16 pairs in SXTB16's order, (w0, w2), (w1, w3) per 4-k chunk, then
 * mcus_rq_t's {m, s, lo, hi} of the fast requantisation (mcus_fast.h, mcus_rq_make: s = r - 1,
 * C = hi:lo) with the bias, the input offset and the output zero point folded into C:
 *
 *     C = 2^30 + (1 + 2 zp) 2^(30 + r) + (b + off sum(w)) m
 *
 * so that for acc = sum(x w) (raw inputs) acc m + C = (b + sum((x + off) w)) m + 2^30 +
 * (1 + 2 zp) 2^(30 + r): mcus_rq_apply's sum with z = 0 for TFLite's accumulator, bit-exact (the
 * 64-bit sum stays below 2^63: |C| < 2^62 + 2^62, the accumulator's product < 2^62).
 *
 * DSP cores, activation range [-128, 127] (the assembly, one block per row; K = 4 and 8: sw = 1):
 *   one output channel, K = 4 or 8: weights, m and s in registers, two pixels a loop iteration;
 *   per pixel LDR and SXTB16 x 2 a word, SMUAD/SMLAD x 2 a word, LDRD lo/hi, SMLAL, ASR, SSAT,
 *   STRB, and CMP, BNE every second pixel: 16 instructions for K = 8 (2.0 a MAC), 11 for K = 4;
 *   more channels: per pixel LDR and SXTB16 x 2 a word and ~5 of loop; per output (two a loop
 *   iteration) LDRD x K / 4 of weights, SMUAD, SMLAD x (K / 2 - 1), LDRD x 2 of {m, s, lo, hi},
 *   SMLAL, ASR, SSAT, STRB, and CMP, BNE every second one: 13 for K = 8 (1.6 a MAC), 10 for
 *   K = 4 (2.5). K = 16 (any stride; r7 saved around the block: 8 registers of inputs): per pixel
 *   ~20 (its step from a frame), per output 4 LDRD, 8 SMUAD/SMLAD, LDRD lo/hi, LDR m, SMLAL,
 *   LDR s, ASR, SSAT, STRB, and LDR, CMP, BNE every second one: ~20.5 (1.3 a MAC).
 *   LDRD rather than LDM: the same loads in fewer cycles on the M7 (the cycle model's 1 + N for an
 *   LDM of N registers against 1 a pair). An LDM per record half saves 2 instructions an output
 *   but costs ~5 % more est. cycles on MobileNetV2's 8 -> 48 expansions.
 * Measured (qemu-m7, -O3, a layer's count with its call; conv2d_s8 before): unet_head's mask
 * 16 x 16 x 8 -> 1 34,528 -> 5,328 instructions (2.6 a MAC, ~75 a row of call and set-up);
 * inception's 8 x 8 x 4 -> 4 6,136 -> 3,648 and -> 8 9,224 -> 6,224; a 16 x 16 x 8 -> 8 43,776 ->
 * 30,448; VWW's 24 x 24 x 16 -> 32 433,368 -> 390,552; MobileNetV2-0.35's 48 x 48 x 16 -> 8
 * 505,440 -> 425,136; ResNet-8's 1 x 1 stride 2 16 -> 32 skip 213,136 -> 173,968.
 * Else (K = 4, 8 with a stride, clamps, cores without DSP, the host) the same arithmetic in
 * portable C (mcus_smlad, mcus_rq_apply, mcus_clamp_s8).
 */
#include "mcus_fast.h"

#if MCUS_REQUANT_MODE != MCUS_REQUANT_TFLITE
#error "conv1x1_s8: the generator's records hold MCUS_REQUANT_MODE 0 (TFLite) constants"
#endif

#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
/* the row's state, read by the assembly (offsets) */
typedef struct {
    const int32_t *rec;   /*  0: the first channel's record */
    const int32_t *rend;  /*  4: after the last record */
    int8_t *dst;          /*  8: the output row */
    int8_t *dend;         /* 12: its end */
    const int8_t *src;    /* 16: the input row */
    int32_t step;         /* 20: bytes from a pixel's inputs to the next one's (K = 16) */
} pw1_t;

/* the frame of the many-channel rows: [sp] the first record, [sp, #4] the output row's end */
#define PW1_FRAME                                                                                 \
    "sub     sp, sp, #8\n\t"                                                                      \
    "ldr     r2, [r0, #4]\n\t"                                                                    \
    "ldr     r1, [r0, #8]\n\t"                                                                    \
    "ldr     r3, [r0, #12]\n\t"                                                                   \
    "ldr     lr, [r0, #16]\n\t"                                                                   \
    "ldr     r0, [r0]\n\t"                                                                        \
    "strd    r0, r3, [sp]\n\t"
/* the channels of a pixel, two a loop iteration (an odd count enters at the second: ODD) */
#define PW1_CHANNELS(BODY, ODD)                                                                   \
    "ldr     r0, [sp]\n\t"                                                                        \
    ODD                                                                                           \
    "1:\n\t" BODY                                                                                 \
    "2:\n\t" BODY                                                                                 \
    "cmp     r0, r2\n\t"                                                                          \
    "bne     1b\n\t"                                                                              \
    "ldr     r3, [sp, #4]\n\t"                                                                    \
    "cmp     r1, r3\n\t"                                                                          \
    "bne     4b\n\t"                                                                              \
    "add     sp, sp, #8\n\t"
/* requantise r3 with m r9, s r10, C r11:r12 and store it */
#define PW1_RQ                                                                                    \
    "smlal   r11, r12, r3, r9\n\t"                                                                \
    "asr     r12, r12, r10\n\t"                                                                   \
    "ssat    r12, #8, r12\n\t"                                                                    \
    "strb    r12, [r1], #1\n\t"

/* K = 8, per pixel its inputs expanded into r4, r5 (x0, x2), (x1, x3) and r6, r8 (x4, x6),
 * (x5, x7); per channel its record in two LDM */
#define PW1_BODY_K8                                                                               \
    "ldrd    r9, r10, [r0], #8\n\t"                                                              \
    "ldrd    r11, r12, [r0], #8\n\t"                                                             \
    "smuad   r3, r4, r9\n\t"                                                                      \
    "smlad   r3, r5, r10, r3\n\t"                                                                 \
    "smlad   r3, r6, r11, r3\n\t"                                                                 \
    "smlad   r3, r8, r12, r3\n\t"                                                                 \
    "ldrd    r9, r10, [r0], #8\n\t"                                                              \
    "ldrd    r11, r12, [r0], #8\n\t" PW1_RQ
#define PW1_MANY_K8(ODD)                                                                          \
    PW1_FRAME                                                                                     \
    "4:\n\t"                                                                                      \
    "ldr     r5, [lr], #4\n\t"                                                                    \
    "ldr     r9, [lr], #4\n\t"                                                                    \
    "sxtb16  r4, r5\n\t"                                                                          \
    "sxtb16  r5, r5, ror #8\n\t"                                                                  \
    "sxtb16  r6, r9\n\t"                                                                          \
    "sxtb16  r8, r9, ror #8\n\t"                                                                  \
    PW1_CHANNELS(PW1_BODY_K8, ODD)

/* K = 4: r4, r5 the pixel's inputs; a record is one LDM */
#define PW1_BODY_K4                                                                               \
    "ldrd    r6, r8, [r0], #8\n\t"                                                               \
    "ldrd    r9, r10, [r0], #8\n\t"                                                              \
    "ldrd    r11, r12, [r0], #8\n\t"                                                             \
    "smuad   r3, r4, r6\n\t"                                                                      \
    "smlad   r3, r5, r8, r3\n\t" PW1_RQ
#define PW1_MANY_K4(ODD)                                                                          \
    PW1_FRAME                                                                                     \
    "4:\n\t"                                                                                      \
    "ldr     r5, [lr], #4\n\t"                                                                    \
    "sxtb16  r4, r5\n\t"                                                                          \
    "sxtb16  r5, r5, ror #8\n\t"                                                                  \
    PW1_CHANNELS(PW1_BODY_K4, ODD)

/* one output channel: weights, m r9 and s r10 loaded once, r0 at the record's lo, hi; two
 * pixels a loop iteration (an odd width enters at the second: ODD) */
#define PW1_ONE(LOADW, PIXEL, ODD)                                                                \
    "ldr     r1, [r0, #8]\n\t"                                                                    \
    "ldr     r2, [r0, #12]\n\t"                                                                   \
    "ldr     lr, [r0, #16]\n\t"                                                                   \
    "ldr     r0, [r0]\n\t"                                                                        \
    LOADW                                                                                         \
    ODD                                                                                           \
    "1:\n\t" PIXEL                                                                                \
    "2:\n\t" PIXEL                                                                                \
    "cmp     r1, r2\n\t"                                                                          \
    "bne     1b\n\t"
/* K = 8: weights r4-r6, r8 */
#define PW1_PIXEL_K8                                                                              \
    "ldr     r11, [lr], #4\n\t"                                                                   \
    "sxtb16  r12, r11\n\t"                                                                        \
    "smuad   r3, r12, r4\n\t"                                                                     \
    "sxtb16  r11, r11, ror #8\n\t"                                                                \
    "smlad   r3, r11, r5, r3\n\t"                                                                 \
    "ldr     r11, [lr], #4\n\t"                                                                   \
    "sxtb16  r12, r11\n\t"                                                                        \
    "smlad   r3, r12, r6, r3\n\t"                                                                 \
    "sxtb16  r11, r11, ror #8\n\t"                                                                \
    "smlad   r3, r11, r8, r3\n\t"                                                                 \
    "ldrd    r11, r12, [r0]\n\t" PW1_RQ
#define PW1_ONE_K8(ODD) PW1_ONE("ldm     r0!, {r4, r5, r6, r8, r9, r10}\n\t", PW1_PIXEL_K8, ODD)
/* K = 4: weights r4, r5 */
#define PW1_PIXEL_K4                                                                              \
    "ldr     r11, [lr], #4\n\t"                                                                   \
    "sxtb16  r12, r11\n\t"                                                                        \
    "smuad   r3, r12, r4\n\t"                                                                     \
    "sxtb16  r11, r11, ror #8\n\t"                                                                \
    "smlad   r3, r11, r5, r3\n\t"                                                                 \
    "ldrd    r11, r12, [r0]\n\t" PW1_RQ
#define PW1_ONE_K4(ODD) PW1_ONE("ldm     r0!, {r4, r5, r9, r10}\n\t", PW1_PIXEL_K4, ODD)

/*
 * K = 16: the pixel's 16 inputs in r4-r11 (r7, the Thumb frame pointer, saved around the block),
 * the record's weights through r2, r12; its constants in r12, lr (lo, hi), r2 (m, then s). The
 * frame: [sp] the first record, [sp, #4] the records' end, [sp, #8] the next pixel's inputs,
 * [sp, #12] the step (sw K: any stride), [sp, #16] the output row's end.
 */
#define PW1_BODY_K16                                                                              \
    "ldrd    r2, r12, [r0], #8\n\t"                                                              \
    "smuad   r3, r4, r2\n\t"                                                                      \
    "smlad   r3, r5, r12, r3\n\t"                                                                 \
    "ldrd    r2, r12, [r0], #8\n\t"                                                              \
    "smlad   r3, r6, r2, r3\n\t"                                                                  \
    "smlad   r3, r7, r12, r3\n\t"                                                                 \
    "ldrd    r2, r12, [r0], #8\n\t"                                                              \
    "smlad   r3, r8, r2, r3\n\t"                                                                  \
    "smlad   r3, r9, r12, r3\n\t"                                                                 \
    "ldrd    r2, r12, [r0], #8\n\t"                                                              \
    "smlad   r3, r10, r2, r3\n\t"                                                                 \
    "smlad   r3, r11, r12, r3\n\t"                                                                \
    "ldrd    r12, lr, [r0, #8]\n\t"                                                               \
    "ldr     r2, [r0], #16\n\t"                                                                  \
    "smlal   r12, lr, r3, r2\n\t"                                                                 \
    "ldr     r2, [r0, #-12]\n\t"                                                                  \
    "asr     lr, lr, r2\n\t"                                                                      \
    "ssat    lr, #8, lr\n\t"                                                                      \
    "strb    lr, [r1], #1\n\t"
#define PW1_WORD16(LO, HI, OFF)                                                                   \
    "ldr     " HI ", [lr" OFF "]\n\t"                                                              \
    "sxtb16  " LO ", " HI "\n\t"                                                                   \
    "sxtb16  " HI ", " HI ", ror #8\n\t"
#define PW1_MANY_K16(ODD)                                                                         \
    "push    {r7}\n\t"                                                                            \
    "sub     sp, sp, #20\n\t"                                                                     \
    "ldrd    r2, r3, [r0]\n\t"                                                                    \
    "ldrd    r12, lr, [r0, #16]\n\t"                                                              \
    "strd    r2, r3, [sp]\n\t"                                                                    \
    "strd    r12, lr, [sp, #8]\n\t"                                                               \
    "ldrd    r1, r2, [r0, #8]\n\t"                                                                \
    "str     r2, [sp, #16]\n\t"                                                                   \
    "4:\n\t"                                                                                      \
    "ldrd    lr, r2, [sp, #8]\n\t"                                                                \
    "add     r2, lr, r2\n\t"                                                                      \
    "str     r2, [sp, #8]\n\t"                                                                    \
    PW1_WORD16("r4", "r5", "") PW1_WORD16("r6", "r7", ", #4")                                     \
    PW1_WORD16("r8", "r9", ", #8") PW1_WORD16("r10", "r11", ", #12")                              \
    "ldr     r0, [sp]\n\t"                                                                        \
    ODD                                                                                           \
    "1:\n\t" PW1_BODY_K16                                                                         \
    "2:\n\t" PW1_BODY_K16                                                                         \
    "ldr     r3, [sp, #4]\n\t"                                                                    \
    "cmp     r0, r3\n\t"                                                                          \
    "bne     1b\n\t"                                                                              \
    "ldr     r3, [sp, #16]\n\t"                                                                   \
    "cmp     r1, r3\n\t"                                                                          \
    "bne     4b\n\t"                                                                              \
    "add     sp, sp, #20\n\t"                                                                     \
    "pop     {r7}\n\t"


#define PW1_ODD "b       2f\n\t"

/* the assembly's row: t filled by the caller */
static __attribute__((noinline)) void pw1_row(const pw1_t *t, int32_t K, int32_t oc, int32_t ow)
{
    if (K == 8) {
        if (oc == 1) {
            if (ow & 1) {
                MCUS_ASM_R0(PW1_ONE_K8(PW1_ODD), t);
            } else {
                MCUS_ASM_R0(PW1_ONE_K8(""), t);
            }
        } else if (oc & 1) {
            MCUS_ASM_R0(PW1_MANY_K8(PW1_ODD), t);
        } else {
            MCUS_ASM_R0(PW1_MANY_K8(""), t);
        }
    } else if (K == 4) {
        if (oc == 1) {
            if (ow & 1) {
                MCUS_ASM_R0(PW1_ONE_K4(PW1_ODD), t);
            } else {
                MCUS_ASM_R0(PW1_ONE_K4(""), t);
            }
        } else if (oc & 1) {
            MCUS_ASM_R0(PW1_MANY_K4(PW1_ODD), t);
        } else {
            MCUS_ASM_R0(PW1_MANY_K4(""), t);
        }
    } else if (oc & 1) {                  /* K = 16, any channel count and stride */
        MCUS_ASM_R0(PW1_MANY_K16(PW1_ODD), t);
    } else {
        MCUS_ASM_R0(PW1_MANY_K16(""), t);
    }
}
#endif

/* the portable row (any stride, clamps; cores without DSP and the host) */
static __attribute__((noinline)) void pw1_row_c(const mcus_fast_conv1x1_s8_t *p, const int8_t *row,
                                                int8_t *out)
{
    const int32_t K = p->in.c, ow = p->out.w, oc = p->out.c, hk = K >> 1, rw = hk + 4;
    const int32_t step = p->g.sw * K;
    int32_t x, c, j;
    for (x = 0; x < ow; ++x, row += step, out += oc) {
        uint32_t xv[8];                           /* K <= 16: (x0, x2), (x1, x3) per word */
        const int32_t *r = p->recs;
        for (j = 0; j < (K >> 2); ++j) {
            const uint32_t v = mcus_ld32(row + 4 * j);
            xv[2 * j] = mcus_sxtb16(v);
            xv[2 * j + 1] = mcus_sxtb16_ror8(v);
        }
        for (c = 0; c < oc; ++c, r += rw) {
            mcus_rq_t q;
            int32_t acc = 0;
            for (j = 0; j < hk; ++j) {
                acc = mcus_smlad(xv[j], (uint32_t)r[j], acc);
            }
            q.m = r[hk];
            q.s = r[hk + 1];
            q.lo = (uint32_t)r[hk + 2];
            q.hi = r[hk + 3];
            q.z = 0;
            out[c] = (int8_t)mcus_clamp_s8(mcus_rq_apply(&q, acc), p->act_min, p->act_max);
        }
    }
}

void mcus_fast_conv1x1_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_conv1x1_s8_t *p = (const mcus_fast_conv1x1_s8_t *)params;
    const int8_t *in = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
    const int8_t *row = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, oy * p->g.sh, 1);
    int8_t *out = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 1);
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    const int32_t K = p->in.c, oc = p->out.c, ow = p->out.w;
    if (p->act_min == -128 && p->act_max == 127 && (K == 16 || (p->g.sw == 1 && (K == 4 || K == 8)))) {
        pw1_t t;
        t.rec = p->recs;
        t.rend = p->recs + oc * ((K >> 1) + 4);
        t.dst = out;
        t.dend = out + ow * oc;
        t.src = row;
        t.step = p->g.sw * K;
        pw1_row(&t, K, oc, ow);
        return;
    }
#endif
    pw1_row_c(p, row, out);
}
