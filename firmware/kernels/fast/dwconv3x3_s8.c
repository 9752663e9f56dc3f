/*
 * int8 depthwise convolution 3 x 3, stride 1 or 2 (both directions), depth multiplier 1, 4 or more
 * channels, every channel's right shift in [1, 24]: one output row per call, bit-exact with
 * dwconv2d_s8 (TFLite's depthwise requantisation, both roundings; proof in dwconv2d_s8.c).
 *
 * Per call the three input rows of the output row are copied into io->scratch with their padding
 * (LDM/STM of 16 bytes, dw3_copy / dw3_fill; a padding cell holds the input zero point, so that with the accumulators
 * starting at bias + input_offset * sum(all 9 weights) it adds exactly 0, and every output pixel
 * runs the same code): 3 rows of Wp = (ow - 1) * stride + 3 cells.
 *
 * Then, per group of 4 channels (layout.dw_groups: the last one overlaps when channels % 4 != 0),
 * one asm block walks the output pixel pairs. Fixed registers: r0-r3 pixel 0's accumulators
 * (channels 0, 2, 1, 3), r4-r6, r8 pixel 1's, r9/r10 an input cell sign-extended (SXTB16: channels
 * (0, 2) and (1, 3)), r11 a weight word, r12 the input walker, lr = channels (bytes between
 * cells), r7 the group's weights (saved and restored: the Thumb frame pointer, never a clobber);
 * the loop state in a frame below sp. Per kernel row (stride 1): 4 cells x (LDR, SXTB16 x 2),
 * 6 (cell, pixel) uses x (LDR weights, SMLABB, SMLATT, LDR, SMLABB, SMLATT), ADD, and 2 to the
 * next row: 51 instructions for 24 MACs; stride 2: 5 cells. Per pixel pair then: the 8 outputs
 * (LDM {m, hi, s, lo, k}, MVN, SMLAL x 2, ASR, SSAT: 6 each, the ties-away form of dwconv2d_s8),
 * BFI x 3 and the clamp (SSUB8/SEL x 2) per pixel, 2 STR and the pointers; a group whose 4
 * channels all round ties up (TFLite's vector lanes) in a layer of activation range [-128, 127]
 * takes a variant with 4 instructions an output and no clamp. An odd width's last
 * pixel takes a single-pixel block (3 cells a row).
 *
 * The generator precomputes per group (mcusearch/convert/fast.py, dw3x3_s8_groups), 42 words:
 * the 9 cells' weights sign-extended ((w0, w2), (w1, w3)), the 4 initial accumulators (channels
 * 0, 2, 1, 3), the 4 channels' mcus_dwrq_t (MCUS_REQUANT_MODE 0, TFLite's). Other builds (the
 * host, cores without DSP, unoptimised, other requantisation modes) call dwconv2d_s8.
 */
#include <string.h>

#include "mcus_fast.h"

#if MCUS_FAST_DSP && defined(__OPTIMIZE__) && MCUS_REQUANT_MODE == MCUS_REQUANT_TFLITE

#define DW3_GROUP_WORDS 42  /* 18 weights, 4 initial values, 4 x 5 requantisation */

/* The asm block's parameters (copied into its frame; offsets are read by the assembly). */
typedef struct {
    const int8_t *row0;   /*  0: the pair's first cell in padded row 0 (+ group offset) */
    int32_t rnext;        /*  4: from the walker after a row's cells to the next row's first */
    int8_t *dst;          /*  8: pixel 0 of the pair, the group's first channel */
    int32_t d1;           /* 12: from pixel 0's output to pixel 1's (ch) */
    int8_t *dend;         /* 16: dst after the last pair */
    const int32_t *q;     /* 20: the group's 4 mcus_dwrq_t */
    const int32_t *init;  /* 24: the group's 4 initial accumulators */
    uint32_t lim[2];      /* 28: act_min, act_max in every byte */
    /* 36: 16 bytes of the frame: pixel 1's accumulators during pixel 0's requantisation */
    const int32_t *w;     /* 36: the group's weights (r7) */
    int32_t ch;           /* 40: lr */
} dw3_t;

#define DW3_S(x) #x
#define DW3_STR(x) DW3_S(x)
/* an input cell at ADDR, sign-extended into r9 (channels 0, 2) and r10 (1, 3) */
#define DW3_CELL(ADDR)                                                                            \
    "ldr     r9, " ADDR "\n\t"                                                                    \
    "sxtb16  r10, r9, ror #8\n\t"                                                                 \
    "sxtb16  r9, r9\n\t"
/* the current cell times the weights at r7 + O (O4 = O + 4) into pixel 0 (P0) or 1 (P1) */
#define DW3_USE(A0, A2, A1, A3, O, O4)                                                            \
    "ldr     r11, [r7, #" DW3_STR(O) "]\n\t"                                                      \
    "smlabb  " A0 ", r9, r11, " A0 "\n\t"                                                         \
    "smlatt  " A2 ", r9, r11, " A2 "\n\t"                                                         \
    "ldr     r11, [r7, #" DW3_STR(O4) "]\n\t"                                                     \
    "smlabb  " A1 ", r10, r11, " A1 "\n\t"                                                        \
    "smlatt  " A3 ", r10, r11, " A3 "\n\t"
#define DW3_P0(O, O4) DW3_USE("r0", "r1", "r2", "r3", O, O4)
#define DW3_P1(O, O4) DW3_USE("r4", "r5", "r6", "r8", O, O4)
#define DW3_NEXT_ROW                                                                              \
    "ldr     r11, [sp, #4]\n\t"                                                                   \
    "add     r12, r12, r11\n\t"
/* one kernel row, weights of cell kx at r7 + (3 ky + kx) 8 */
#define DW3_ROW_S1(a, a4, b, b4, c, c4)                                                           \
    DW3_CELL("[r12]") DW3_P0(a, a4)                                                               \
    DW3_CELL("[r12, lr]") DW3_P0(b, b4) DW3_P1(a, a4)                                             \
    "add     r12, r12, lr, lsl #1\n\t"                                                            \
    DW3_CELL("[r12]") DW3_P0(c, c4) DW3_P1(b, b4)                                                 \
    DW3_CELL("[r12, lr]") DW3_P1(c, c4)
#define DW3_ROW_S2(a, a4, b, b4, c, c4)                                                           \
    DW3_CELL("[r12]") DW3_P0(a, a4)                                                               \
    DW3_CELL("[r12, lr]") DW3_P0(b, b4)                                                           \
    "add     r12, r12, lr, lsl #1\n\t"                                                            \
    DW3_CELL("[r12]") DW3_P0(c, c4) DW3_P1(a, a4)                                                 \
    DW3_CELL("[r12, lr]") DW3_P1(b, b4)                                                           \
    "add     r12, r12, lr, lsl #1\n\t"                                                            \
    DW3_CELL("[r12]") DW3_P1(c, c4)
/* requantise accumulator A with the constants at r11 (advanced): r4-r6, r8-r10 temporaries */
#define DW3_RQ(A)                                                                                 \
    "ldm     r11!, {r4, r5, r6, r8, r9}\n\t"                                                      \
    "mvn     r10, " A ", asr #31\n\t"                                                             \
    "smlal   r8, r5, " A ", r4\n\t"                                                               \
    "smlal   r8, r5, r10, r9\n\t"                                                                 \
    "asr     r5, r5, r6\n\t"                                                                      \
    "ssat    " A ", #8, r5\n\t"
/* the same for a ties-up channel (k = 0: TFLite's vector lanes): the k term dropped */
#define DW3_RQ_UP(A)                                                                              \
    "ldm     r11!, {r4, r5, r6, r8, r9}\n\t"                                                      \
    "smlal   r8, r5, " A ", r4\n\t"                                                               \
    "asr     r5, r5, r6\n\t"                                                                      \
    "ssat    " A ", #8, r5\n\t"
/* pack channels (C0, C1, C2, C3) into C0, no clamp (activation range [-128, 127]: SSAT did it) */
#define DW3_PACK_FULL(C0, C1, C2, C3)                                                             \
    "bfi     " C0 ", " C1 ", #8, #8\n\t"                                                          \
    "bfi     " C0 ", " C2 ", #16, #8\n\t"                                                         \
    "bfi     " C0 ", " C3 ", #24, #8\n\t"
/* pack channels (C0, C1, C2, C3) into C0 and clamp it (SSUB8/SEL with the limits at sp + 28) */
#define DW3_PACK(C0, C1, C2, C3)                                                                  \
    "bfi     " C0 ", " C1 ", #8, #8\n\t"                                                          \
    "bfi     " C0 ", " C2 ", #16, #8\n\t"                                                         \
    "bfi     " C0 ", " C3 ", #24, #8\n\t"                                                         \
    "ldrd    r4, r5, [sp, #28]\n\t"                                                               \
    "ssub8   r6, " C0 ", r4\n\t"                                                                  \
    "sel     " C0 ", " C0 ", r4\n\t"                                                              \
    "ssub8   r6, r5, " C0 "\n\t"                                                                  \
    "sel     " C0 ", " C0 ", r5\n\t"

#define DW3_BLOCK(ROWS, PAIR_SHIFT, RQ, PACK)                                                     \
    "push    {r7}\n\t"                                                                            \
    "sub     sp, sp, #52\n\t"                                                                     \
    "ldm     r0, {r1, r2, r3, r4, r5, r6, r8, r9, r10}\n\t"                                       \
    "stm     sp, {r1, r2, r3, r4, r5, r6, r8, r9, r10}\n\t"                                       \
    "ldr     r7, [r0, #36]\n\t"                                                                   \
    "ldr     lr, [r0, #40]\n\t"                                                                   \
    "3:\n\t"                                                                                      \
    "ldr     r12, [sp]\n\t"                                                                       \
    "ldr     r11, [sp, #24]\n\t"                                                                  \
    "ldm     r11, {r0, r1, r2, r3}\n\t"                                                           \
    "mov     r4, r0\n\t"                                                                          \
    "mov     r5, r1\n\t"                                                                          \
    "mov     r6, r2\n\t"                                                                          \
    "mov     r8, r3\n\t"                                                                          \
    ROWS                                                                                          \
    "strd    r4, r5, [sp, #36]\n\t"                                                               \
    "strd    r6, r8, [sp, #44]\n\t"                                                               \
    "ldr     r11, [sp, #20]\n\t"                                                                  \
    RQ("r0") RQ("r2") RQ("r1") RQ("r3")                                                           \
    PACK("r0", "r2", "r1", "r3")                                                                  \
    "ldrd    r1, r2, [sp, #36]\n\t"                                                               \
    "ldrd    r3, r12, [sp, #44]\n\t"                                                              \
    "ldr     r11, [sp, #20]\n\t"                                                                  \
    RQ("r1") RQ("r3") RQ("r2") RQ("r12")                                                          \
    PACK("r1", "r3", "r2", "r12")                                                                 \
    "ldrd    r4, r5, [sp, #8]\n\t"                                                                \
    "str     r0, [r4]\n\t"                                                                        \
    "str     r1, [r4, r5]\n\t"                                                                    \
    "add     r4, r4, lr, lsl #1\n\t"                                                              \
    "str     r4, [sp, #8]\n\t"                                                                    \
    "ldr     r6, [sp]\n\t"                                                                        \
    "add     r6, r6, lr, lsl #" PAIR_SHIFT "\n\t"                                                 \
    "str     r6, [sp]\n\t"                                                                        \
    "ldr     r5, [sp, #16]\n\t"                                                                   \
    "cmp     r4, r5\n\t"                                                                          \
    "bne     3b\n\t"                                                                              \
    "add     sp, sp, #52\n\t"                                                                     \
    "pop     {r7}\n\t"

/* one pixel: 3 cells a row whatever the stride (the walker ends 2 cells on: rnext = row - 2 ch) */
#define DW3_ROW_1(a, a4, b, b4, c, c4)                                                            \
    DW3_CELL("[r12]") DW3_P0(a, a4)                                                               \
    DW3_CELL("[r12, lr]") DW3_P0(b, b4)                                                           \
    "add     r12, r12, lr, lsl #1\n\t"                                                            \
    DW3_CELL("[r12]") DW3_P0(c, c4)
#define DW3_SINGLE                                                                                \
    "push    {r7}\n\t"                                                                            \
    "sub     sp, sp, #52\n\t"                                                                     \
    "ldm     r0, {r1, r2, r3, r4, r5, r6, r8, r9, r10}\n\t"                                       \
    "stm     sp, {r1, r2, r3, r4, r5, r6, r8, r9, r10}\n\t"                                       \
    "ldr     r7, [r0, #36]\n\t"                                                                   \
    "ldr     lr, [r0, #40]\n\t"                                                                   \
    "ldr     r12, [sp]\n\t"                                                                       \
    "ldr     r11, [sp, #24]\n\t"                                                                  \
    "ldm     r11, {r0, r1, r2, r3}\n\t"                                                           \
    DW3_ROW_1(0, 4, 8, 12, 16, 20) DW3_NEXT_ROW                                                   \
    DW3_ROW_1(24, 28, 32, 36, 40, 44) DW3_NEXT_ROW                                                \
    DW3_ROW_1(48, 52, 56, 60, 64, 68)                                                             \
    "ldr     r11, [sp, #20]\n\t"                                                                  \
    DW3_RQ("r0") DW3_RQ("r2") DW3_RQ("r1") DW3_RQ("r3")                                           \
    DW3_PACK("r0", "r2", "r1", "r3")                                                              \
    "ldr     r4, [sp, #8]\n\t"                                                                    \
    "str     r0, [r4]\n\t"                                                                        \
    "add     sp, sp, #52\n\t"                                                                     \
    "pop     {r7}\n\t"

#define DW3_ROWS_S1                                                                               \
    DW3_ROW_S1(0, 4, 8, 12, 16, 20) DW3_NEXT_ROW                                                  \
    DW3_ROW_S1(24, 28, 32, 36, 40, 44) DW3_NEXT_ROW                                               \
    DW3_ROW_S1(48, 52, 56, 60, 64, 68)
#define DW3_ROWS_S2                                                                               \
    DW3_ROW_S2(0, 4, 8, 12, 16, 20) DW3_NEXT_ROW                                                  \
    DW3_ROW_S2(24, 28, 32, 36, 40, 44) DW3_NEXT_ROW                                               \
    DW3_ROW_S2(48, 52, 56, 60, 64, 68)

#define DW3_ASM(CODE)                                                                             \
    __asm__ volatile(CODE : "+r"(r0) : : "r1", "r2", "r3", "r4", "r5", "r6", "r8", "r9", "r10",   \
                     "r11", "r12", "lr", "cc", "memory")

/* The pixel pairs [dst, dend) of one group (at least one pair; stride 1 or 2), or (stride 0)
 * the single pixel at dst. up: every channel of the group rounds ties up (k = 0) and the
 * activation range is [-128, 127]: 4 instructions an output instead of 6, no clamp. */
static void dw3_pairs(const dw3_t *t, int32_t stride, int up)
{
    register const dw3_t *r0 __asm__("r0") = t;
    if (stride == 0) {
        DW3_ASM(DW3_SINGLE);
    } else if (stride == 1) {
        if (up) {
            DW3_ASM(DW3_BLOCK(DW3_ROWS_S1, "1", DW3_RQ_UP, DW3_PACK_FULL));
        } else {
            DW3_ASM(DW3_BLOCK(DW3_ROWS_S1, "1", DW3_RQ, DW3_PACK));
        }
    } else if (up) {
        DW3_ASM(DW3_BLOCK(DW3_ROWS_S2, "2", DW3_RQ_UP, DW3_PACK_FULL));
    } else {
        DW3_ASM(DW3_BLOCK(DW3_ROWS_S2, "2", DW3_RQ, DW3_PACK));
    }
}

/* n bytes from s to d (LDM/STM of 16 bytes when both are word aligned; newlib's memcpy costs
 * several times more on rows of a few hundred bytes). */
static void dw3_copy(int8_t *d, const int8_t *s, int32_t n)
{
    if (((uintptr_t)d | (uintptr_t)s) & 3u) {
        memcpy(d, s, (size_t)n);
        return;
    }
    if (n >= 16) {
        int32_t blocks = n >> 4;
        __asm__ volatile("1:\n\t"
                         "ldm     %[s]!, {r4, r5, r6, r8}\n\t"
                         "stm     %[d]!, {r4, r5, r6, r8}\n\t"
                         "subs    %[n], %[n], #1\n\t"
                         "bne     1b\n\t"
                         : [s] "+r"(s), [d] "+r"(d), [n] "+r"(blocks)
                         :
                         : "r4", "r5", "r6", "r8", "cc", "memory");
        n &= 15;
    }
    for (; n >= 4; n -= 4, d += 4, s += 4) {
        mcus_st32(d, mcus_ld32(s));
    }
    for (; n > 0; --n) {
        *d++ = *s++;
    }
}

/* n bytes of the value zp4 (a byte repeated) at d (STM of 16 bytes when d is word aligned). */
static void dw3_fill(int8_t *d, uint32_t zp4, int32_t n)
{
    if (((uintptr_t)d & 3u) == 0 && n >= 16) {
        int32_t blocks = n >> 4;
        register uint32_t r4 __asm__("r4") = zp4;
        __asm__ volatile("mov     r5, r4\n\t"
                         "mov     r6, r4\n\t"
                         "mov     r8, r4\n\t"
                         "1:\n\t"
                         "stm     %[d]!, {r4, r5, r6, r8}\n\t"
                         "subs    %[n], %[n], #1\n\t"
                         "bne     1b\n\t"
                         : [d] "+r"(d), [n] "+r"(blocks)
                         : "r"(r4)
                         : "r5", "r6", "r8", "cc", "memory");
        n &= 15;
    }
    for (; n > 0; --n) {
        *d++ = (int8_t)zp4;
    }
}

/* One padded input row (Wp cells of ch bytes) from input row iy (or all zero point). */
static void dw3_pad_row(const mcus_fast_dwconv_s8_t *d, const int8_t *in, int32_t iy, int8_t *dst,
                        int32_t wp)
{
    const int32_t ch = d->in.c, pl = d->g.pl, in_w = d->in.w;
    const uint32_t zp4 = (uint32_t)(uint8_t)(-d->input_offset) * 0x01010101u;
    int32_t j0 = pl < wp ? pl : wp, j1 = pl + in_w < wp ? pl + in_w : wp;
    if (iy < 0 || iy >= d->in.h) {
        dw3_fill(dst, zp4, wp * ch);
        return;
    }
    if (j0 > 0) {
        dw3_fill(dst, zp4, j0 * ch);
    }
    if (j1 > j0) {
        const int8_t *row = (const int8_t *)mcus_row_ptr(&d->in, (void *)in, iy, 1);
        dw3_copy(dst + j0 * ch, row + (j0 - pl) * ch, (j1 - j0) * ch);
    } else {
        j1 = j0;
    }
    if (wp > j1) {
        dw3_fill(dst + j1 * ch, zp4, (wp - j1) * ch);
    }
}

void mcus_fast_dwconv3x3_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_dw3x3_s8_t *p = (const mcus_fast_dw3x3_s8_t *)params;
    const mcus_fast_dwconv_s8_t *d = &p->d;
    const int8_t *in = d->in.base ? (const int8_t *)d->in.base : (const int8_t *)io->in;
    int8_t *out = (int8_t *)mcus_row_ptr(&d->out, d->out.base ? d->out.base : io->out, oy, 1);
    const int32_t ch = d->in.c, ow = d->out.w, s = d->g.sw;
    const int32_t wp = (ow - 1) * s + 3, rowb = wp * ch;
    int8_t *buf = (int8_t *)io->scratch;
    const int32_t *gd = p->groups;
    const int full = d->act_min == -128 && d->act_max == 127;
    dw3_t t;
    int32_t r, c;

    for (r = 0; r < 3; ++r) {
        dw3_pad_row(d, in, oy * d->g.sh - d->g.pt + r, buf + r * rowb, wp);
    }
    t.rnext = rowb - 2 * s * ch;
    t.d1 = ch;
    t.lim[0] = (uint32_t)(uint8_t)d->act_min * 0x01010101u;
    t.lim[1] = (uint32_t)(uint8_t)d->act_max * 0x01010101u;
    t.ch = ch;
    for (c = 0;; c += 4, gd += DW3_GROUP_WORDS) {
        if (c + 4 > ch) {
            c = ch - 4; /* the last, overlapping group (its data follows the previous one's) */
        }
        t.w = gd;
        t.init = gd + 18;
        t.q = gd + 22;
        t.row0 = buf + c;
        t.dst = out + c;
        t.dend = out + c + 2 * (ow >> 1) * ch;
        if (ow >> 1) {
            dw3_pairs(&t, s, full && (gd[26] | gd[31] | gd[36] | gd[41]) == 0);   /* the 4 k */
        }
        if (ow & 1) {                 /* the last pixel alone */
            t.row0 = buf + c + (ow - 1) * s * ch;
            t.dst = out + c + (ow - 1) * ch;
            t.rnext = rowb - 2 * ch;
            dw3_pairs(&t, 0, 0);
            t.rnext = rowb - 2 * s * ch;
        }
        if (c + 4 >= ch) {
            break;
        }
    }
}

#else

void mcus_fast_dwconv3x3_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    mcus_fast_dwconv2d_s8(&((const mcus_fast_dw3x3_s8_t *)params)->d, io, oy);
}

#endif
