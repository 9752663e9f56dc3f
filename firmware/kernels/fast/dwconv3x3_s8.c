/*
 * int8 depthwise convolution 3 x 3, stride 1 or 2 (both directions), depth multiplier 1, 4 or more
 * channels, every channel's right shift in [1, 24]: one output row per call, bit-exact with
 * dwconv2d_s8 (TFLite's depthwise requantisation, both roundings; proof in dwconv2d_s8.c).
 *
 * The multiplies pair two kernel rows per SMLAD. One asm block (dw3_row) runs a row's groups of 4
 * channels (layout.dw_groups: the last one overlaps when channels % 4 != 0; one call for the
 * groups that round ties up, one for the others, one for an overlapping last group). Per group
 * it first prepares the interior ones of the Wp = (ow - 1) * stride + 3 columns of its three
 * input rows a, b, c in io->scratch (the padding columns, the same for every group, are written
 * once a row), 6 words a column:
 *   (a0, b0) (a2, b2) (c0, c2) (a1, b1) (a3, b3) (c1, c3)      (int16 halves, channels 0-3)
 * from one LDR per row, PKHBT/PKHTB and 6 SXTB16: 15 instructions a column. A padding cell holds
 * the input zero point (a padding row reads a row of it in scratch), so that with the
 * accumulators starting at bias + input_offset * sum(all 9 weights) it adds exactly 0.
 *
 * Then it walks the output pixels of the group. Per pixel and kernel
 * column kx, per half (channels 0, 2 and 1, 3): LDM the column's 3 words, LDM the 3 weight words
 * ((w0, w1) of each channel for SMLAD, (w2, w2') for SMLABB / SMLATT), SMLAD x 2, SMLABB, SMLATT:
 * 36 instructions for the pixel's 36 MACs, the 4 initial accumulators by one LDM. Requantisation
 * per output: LDM {m, hi, s, lo, k}, MVN, SMLAL x 2, ASR, USAT (the ties-away form of
 * dwconv2d_s8; 4 instructions without MVN and the second SMLAL when the group's 4 channels all
 * round ties up: TFLite's vector lanes). The constant carries zp - act_min, so USAT leaves
 * clamp(v - act_min, 0, 255); after 3 BFI the 4 bytes take UQADD8 (act_min + 128), USUB8/SEL
 * (act_max + 128, only when act_max < 127) and EOR 0x80: the clamp to [act_min, act_max].
 * Stride 1: about 65 instructions a pixel of 4 channels (1.8/MAC) plus 15 for its new column and
 * about 25 a group and row (DS-CNN's 25 x 5 x 64: 2.46/MAC; 3.76 with the previous kernel).
 *
 * The generator precomputes per group (mcusearch/convert/fast.py, dw3x3_s8_groups), 42 words:
 * the 4 initial accumulators (channels 0, 2, 1, 3), per kx the 6 weight words in the order of
 * the column words, the 4 channels' mcus_dwrq_t (MCUS_REQUANT_MODE 0, TFLite's) with zp - act_min
 * in place of zp. Other builds (the host, cores without DSP, unoptimised, other requantisation
 * modes) call dwconv2d_s8.
 *
 * In place (TinyEngine's trick, on rows): a group's outputs are written after its columns of all
 * three input rows are prepared, and the groups are disjoint when channels % 4 == 0, so output
 * row oy may overwrite input row oy - 1 (the window's first, which no later output row reads).
 * The planner (planner.PlanLayer.overwrite_top) then keeps the output in the input's ring, one
 * slot behind (mcus_buf_t.lag), instead of a ring of its own.
 */
#include <string.h>

#include "mcus_fast.h"

#if MCUS_FAST_DSP && defined(__OPTIMIZE__) && MCUS_REQUANT_MODE == MCUS_REQUANT_TFLITE

#define DW3_GROUP_WORDS 42  /* 4 initial values, 18 weights, 4 x 5 requantisation */
#define DW3_COL_WORDS 6     /* words of one prepared column */

/* The row block's parameters (offsets are read by the assembly): a run of groups whose data
 * follow each other and whose channels are 4 apart. */
typedef struct {
    int32_t ch;            /*  0: bytes between output pixels */
    const uint32_t *cols;  /*  4: the prepared columns (the first pixel's first column) */
    const int32_t *g;      /*  8: the group's 42 words (advanced) */
    int8_t *dst;           /* 12: the first output pixel, the group's first channel (advanced) */
    int8_t *dend;          /* 16: dst + ow * ch (advanced) */
    int32_t rew;           /* 20: bytes the column walker steps back after a pixel: 72 - 24 s */
    uint32_t lim[2];       /* 24: act_min + 128, act_max + 128 in every byte (unsigned) */
    const int8_t *a;       /* 32: the group's first interior cell in row a (advanced) */
    int32_t db, dc;        /* 36: rows b and c from row a */
    uint32_t *cfirst;      /* 44: the first interior column */
    uint32_t *cend;        /* 48: after the last interior column (> cfirst) */
    const int32_t *gend;   /* 52: g after the run's last group */
} dw3_t;

/* the 3 column words of one half and its 3 weight words: 2 channels, 3 kernel rows */
#define DW3_HALF(A, B)                                                                            \
    "ldm     r11!, {r4, r5, r6}\n\t"                                                              \
    "ldm     r12!, {r8, r9, r10}\n\t"                                                             \
    "smlad   " A ", r4, r8, " A "\n\t"                                                            \
    "smlad   " B ", r5, r9, " B "\n\t"                                                            \
    "smlabb  " A ", r6, r10, " A "\n\t"                                                           \
    "smlatt  " B ", r6, r10, " B "\n\t"
#define DW3_KX DW3_HALF("r0", "r1") DW3_HALF("r2", "r3")
/* requantise accumulator A with the constants at r12 (advanced): ties away (k) or up */
#define DW3_RQ(A)                                                                                 \
    "ldm     r12!, {r4, r5, r6, r8, r9}\n\t"                                                      \
    "mvn     r10, " A ", asr #31\n\t"                                                             \
    "smlal   r8, r5, " A ", r4\n\t"                                                               \
    "smlal   r8, r5, r10, r9\n\t"                                                                 \
    "asr     r5, r5, r6\n\t"                                                                      \
    "usat    " A ", #8, r5\n\t"
#define DW3_RQ_UP(A)                                                                              \
    "ldm     r12!, {r4, r5, r6, r8, r9}\n\t"                                                      \
    "smlal   r8, r5, " A ", r4\n\t"                                                               \
    "asr     r5, r5, r6\n\t"                                                                      \
    "usat    " A ", #8, r5\n\t"
/* the upper clamp of the packed bytes in r0 (unsigned, + 128) at act_max + 128 (r5) */
#define DW3_HI                                                                                    \
    "usub8   r6, r0, r5\n\t"                                                                      \
    "sel     r0, r5, r0\n\t"
#define DW3_NOHI ""

#define DW3_S(x) #x
#define DW3_STR(x) DW3_S(x)

/*
 * Per group of the run: the interior columns (per column LDR x 3 at a, a + db, a + dc; PKHBT,
 * PKHTB, SXTB16 x 6, STM of 6 words), then the pixels (r7 ch, r11 the column walker, r12 the
 * group's words, lr the output; the stack: [sp] the dw3_t, [sp, #4] dend, rew, the limits).
 */
#define DW3_ROW(RQ, HI)                                                                           \
    "push    {r7}\n\t"                                                                            \
    "sub     sp, sp, #24\n\t"                                                                     \
    "str     r0, [sp]\n\t"                                                                        \
    "ldrd    r4, r5, [r0, #24]\n\t"                                                               \
    "strd    r4, r5, [sp, #12]\n\t"                                                               \
    "4:\n\t"                                                                                      \
    "ldr     r3, [r0]\n\t"                                                                        \
    "ldrd    r1, r2, [r0, #36]\n\t"                                                               \
    "ldrd    r12, lr, [r0, #44]\n\t"                                                              \
    "ldr     r0, [r0, #32]\n\t"                                                                   \
    "2:\n\t"                                                                                      \
    "ldr     r4, [r0]\n\t"                                                                        \
    "ldr     r5, [r0, r1]\n\t"                                                                    \
    "ldr     r11, [r0, r2]\n\t"                                                                   \
    "add     r0, r0, r3\n\t"                                                                      \
    "pkhbt   r6, r4, r5, lsl #16\n\t"    /* a0 a1 b0 b1 */                                        \
    "pkhtb   r8, r5, r4, asr #16\n\t"    /* a2 a3 b2 b3 */                                        \
    "sxtb16  r4, r6\n\t"                 /* (a0, b0) */                                           \
    "sxtb16  r5, r8\n\t"                 /* (a2, b2) */                                           \
    "sxtb16  r9, r6, ror #8\n\t"         /* (a1, b1) */                                           \
    "sxtb16  r10, r8, ror #8\n\t"        /* (a3, b3) */                                           \
    "sxtb16  r6, r11\n\t"                /* (c0, c2) */                                           \
    "sxtb16  r11, r11, ror #8\n\t"       /* (c1, c3) */                                           \
    "stm     r12!, {r4, r5, r6, r9, r10, r11}\n\t"                                                \
    "cmp     r12, lr\n\t"                                                                         \
    "bne     2b\n\t"                                                                              \
    "ldr     r0, [sp]\n\t"                                                                        \
    "ldrd    r4, r5, [r0, #16]\n\t"                                                               \
    "strd    r4, r5, [sp, #4]\n\t"                                                                \
    "ldm     r0, {r7, r11, r12, lr}\n\t"                                                          \
    "1:\n\t"                                                                                      \
    "ldm     r12!, {r0, r1, r2, r3}\n\t"                                                          \
    DW3_KX DW3_KX DW3_KX                                                                          \
    RQ("r0") RQ("r2") RQ("r1") RQ("r3")                                                           \
    "bfi     r0, r2, #8, #8\n\t"                                                                  \
    "bfi     r0, r1, #16, #8\n\t"                                                                 \
    "bfi     r0, r3, #24, #8\n\t"                                                                 \
    "ldrd    r4, r5, [sp, #12]\n\t"                                                               \
    "uqadd8  r0, r0, r4\n\t"                                                                      \
    HI                                                                                            \
    "eor     r0, r0, #0x80808080\n\t"                                                             \
    "str     r0, [lr]\n\t"                                                                        \
    "add     lr, lr, r7\n\t"                                                                      \
    "sub     r12, r12, #" DW3_STR(DW3_GROUP_WORDS * 4) "\n\t"                                     \
    "ldrd    r4, r5, [sp, #4]\n\t"                                                                \
    "sub     r11, r11, r5\n\t"                                                                    \
    "cmp     lr, r4\n\t"                                                                          \
    "bne     1b\n\t"                                                                              \
    "ldr     r0, [sp]\n\t"          /* the next group: g, dst, dend, a */                         \
    "add     r12, r12, #" DW3_STR(DW3_GROUP_WORDS * 4) "\n\t"                                     \
    "ldrd    r4, r5, [r0, #12]\n\t"                                                               \
    "adds    r4, r4, #4\n\t"                                                                      \
    "adds    r5, r5, #4\n\t"                                                                      \
    "strd    r4, r5, [r0, #12]\n\t"                                                               \
    "ldr     r6, [r0, #32]\n\t"                                                                   \
    "adds    r6, r6, #4\n\t"                                                                      \
    "str     r6, [r0, #32]\n\t"                                                                   \
    "str     r12, [r0, #8]\n\t"                                                                   \
    "ldr     r4, [r0, #52]\n\t"                                                                   \
    "cmp     r12, r4\n\t"                                                                         \
    "bne     4b\n\t"                                                                              \
    "add     sp, sp, #24\n\t"                                                                     \
    "pop     {r7}\n\t"

#define DW3_ASM(CODE)                                                                             \
    __asm__ volatile(CODE : "+r"(r0) : : "r1", "r2", "r3", "r4", "r5", "r6", "r8", "r9", "r10",   \
                     "r11", "r12", "lr", "cc", "memory")

/* The groups [t->g, t->gend) of one output row (t advanced). up: their channels all round ties up
 * (k = 0); hi: act_max < 127 (an upper clamp). */
static void dw3_row(dw3_t *t, int up, int hi)
{
    register dw3_t *r0 __asm__("r0") = t;
    if (up) {
        if (hi) {
            DW3_ASM(DW3_ROW(DW3_RQ_UP, DW3_HI));
        } else {
            DW3_ASM(DW3_ROW(DW3_RQ_UP, DW3_NOHI));
        }
    } else if (hi) {
        DW3_ASM(DW3_ROW(DW3_RQ, DW3_HI));
    } else {
        DW3_ASM(DW3_ROW(DW3_RQ, DW3_NOHI));
    }
}

/* n prepared columns of padding: every half the input zero point z (sign-extended). */
static void dw3_zcols(uint32_t *dst, uint32_t z, int32_t n)
{
    for (n *= DW3_COL_WORDS; n > 0; --n) {
        *dst++ = z;
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

void mcus_fast_dwconv3x3_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_dw3x3_s8_t *p = (const mcus_fast_dw3x3_s8_t *)params;
    const mcus_fast_dwconv_s8_t *d = &p->d;
    const int8_t *in = d->in.base ? (const int8_t *)d->in.base : (const int8_t *)io->in;
    int8_t *out = (int8_t *)mcus_row_ptr(&d->out, d->out.base ? d->out.base : io->out, oy, 1);
    const int32_t ch = d->in.c, ow = d->out.w, s = d->g.sw, in_w = d->in.w, pl = d->g.pl;
    const int32_t wp = (ow - 1) * s + 3;
    const int32_t x0 = pl < wp ? pl : wp, x1 = pl + in_w < wp ? pl + in_w : wp;
    uint32_t *cols = (uint32_t *)io->scratch;
    int8_t *zrow = (int8_t *)(cols + wp * DW3_COL_WORDS);  /* a row of zero points if needed */
    const int8_t zp = (int8_t)(-d->input_offset);
    const uint32_t z = (uint32_t)(uint16_t)(int16_t)zp * 0x00010001u;
    const int hi = d->act_max < 127;
    const int8_t *rows[3];
    dw3_t t;
    int32_t r, padded = 0;

    /* x1 > x0 (dw3_row's column loop runs at least once): 3 x 3 SAME or VALID pads at most 1 */
    for (r = 0; r < 3; ++r) {
        const int32_t iy = oy * d->g.sh - d->g.pt + r;
        if (iy < 0 || iy >= d->in.h) {
            if (!padded) {
                dw3_fill(zrow, (uint32_t)(uint8_t)zp * 0x01010101u, in_w * ch);
                padded = 1;
            }
            rows[r] = zrow;
        } else {
            rows[r] = (const int8_t *)mcus_row_ptr(&d->in, (void *)in, iy, 1);
        }
    }
    /* the padding columns hold the same words for every group: written once */
    dw3_zcols(cols, z, x0);
    dw3_zcols(cols + x1 * DW3_COL_WORDS, z, wp - x1);
    t.ch = ch;
    t.cols = cols;
    t.g = p->groups;
    t.dst = out;
    t.dend = out + ow * ch;
    t.rew = 72 - 24 * s;
    t.lim[0] = (uint32_t)(uint8_t)(d->act_min + 128) * 0x01010101u;
    t.lim[1] = (uint32_t)(uint8_t)(d->act_max + 128) * 0x01010101u;
    t.a = rows[0] + (x0 - pl) * ch;
    t.db = (int32_t)((uintptr_t)rows[1] - (uintptr_t)rows[0]);
    t.dc = (int32_t)((uintptr_t)rows[2] - (uintptr_t)rows[0]);
    t.cfirst = cols + x0 * DW3_COL_WORDS;
    t.cend = cols + x1 * DW3_COL_WORDS;
    {
        /* runs of groups 4 channels apart: those rounding ties up (TFLite's vector lanes, k = 0),
         * the others, then an overlapping last group when ch % 4 != 0 (its data follows) */
        const int32_t full = ch >> 2, vector = d->vector_channels >> 2;
        const int32_t runs[3] = {vector < full ? vector : full, full, full + ((ch & 3) != 0)};
        int32_t r0g = 0, k;
        for (k = 0; k < 3; ++k) {
            const int32_t n = runs[k] - r0g;
            if (n <= 0) {
                continue;
            }
            if (k == 2) {                   /* the overlapping group: ch - 4, not 4 on */
                const int32_t back = 4 - (ch & 3);
                t.dst -= back;
                t.dend -= back;
                t.a -= back;
            }
            t.gend = t.g + n * DW3_GROUP_WORDS;
            dw3_row(&t, k == 0 || (k == 2 && ch <= d->vector_channels), hi);
            r0g = runs[k];
        }
    }
}

#else

/*
 * Elsewhere dwconv2d_s8 runs the layer, a pixel at a time: pixel x + 1 still reads input column
 * x of the window's first row after pixel x is done. In place (p->in_place) the row is therefore
 * computed into io->scratch after dwconv2d_s8's accumulators (fastdata.op_scratch counts it)
 * and then copied over that first row.
 */
void mcus_fast_dwconv3x3_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_dw3x3_s8_t *p = (const mcus_fast_dw3x3_s8_t *)params;
    mcus_fast_dwconv_s8_t staged;
    int8_t *stage;

    if (!p->in_place) {
        mcus_fast_dwconv2d_s8(&p->d, io, oy);
        return;
    }
    staged = p->d;
    stage = (int8_t *)io->scratch + 4 * staged.in.c;
    staged.out.base = stage;
    staged.out.rows = 1;
#if MCUS_RING_LAG
    staged.out.lag = 0;
#endif
    mcus_fast_dwconv2d_s8(&staged, io, oy);
    memcpy(mcus_row_ptr(&p->d.out, p->d.out.base ? p->d.out.base : io->out, oy, 1), stage,
           (size_t)p->d.out.w * (size_t)p->d.out.c);
}

#endif
