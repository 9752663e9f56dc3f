/*
 * float32 depthwise 3 x 3 convolution (depth multiplier 1, any stride and padding, at least 4
 * channels), one output row per call: bias, then the window's cells in (ky, kx) order as fused
 * multiply-adds, clamp - the reference kernel's order per output (../depthwise_conv2d_f32.c).
 *
 * Groups of 4 channels (NHWC: one pixel's 4 channels are 16 contiguous bytes, one VLDM); the
 * generator re-lays the weights out per group as [ky][kx][4] (mcusearch.convert.layout.
 * f32_dw3x3_weights), so one VLDM loads a window row's 12 weights. For c % 4 != 0 the last group
 * is [c - 4, c), overlapping the previous one (those outputs are written twice, with the same
 * values). io->scratch is not used.
 *
 * FPU path (M4/M7/M33 hard float, optimised builds), stride 1 and 2: tiles of up to 4 output
 * pixels x 4 channels, 16 accumulators in s0-s15, one asm block per tile walking every channel
 * group. Per window row the 12 weights are one VLDM (s16-s27) and the input columns the tile's
 * windows cover are loaded once each (VLDM s28-s31, ADD of the pixel stride) and multiplied into
 * every pixel they belong to - a sliding window in registers: for 4 pixels of stride 1, 7 VLDM,
 * 5 ADD and 48 VFMA per window row (stride 2: 9 columns); about 240 instructions for 144
 * multiply-adds per tile and group with bias, clamp (VMAXNM/VMINNM on FPv5) and stores. The
 * edges are APSR flags set once per group (MSR): a padding column left (N) or right (C) of the
 * input and a window row above (Z) or below (V) it are skipped by a branch. Other strides,
 * padding wider than one column and windows whose middle row is outside take px4: one pixel
 * in C.
 *
 * In place (p->in_place: the planner's in-place depthwise, planner.PlanLayer.overwrite_top): the
 * output row overwrites the input window's first row, which the tiles still read after writing
 * their first pixels (a tile's window starts one column left of its first pixel). The row is
 * therefore computed into io->scratch and copied over that row at the end (copy_row: about half
 * an instruction a value, a few per cent of the layer's).
 */
#include <float.h>

#include "mcus_fast.h"

static const float dw3_zero[36] = {0.0f};

/* n floats from s to d (an in-place row from the scratch area; both word aligned): 8 a step by
 * LDM / STM where the core has them in Thumb-2 (4 instructions for 8 values; newlib's memcpy took
 * about 2 a value), then one at a time. */
static void copy_row(float *d, const float *s, int32_t n)
{
#if defined(__thumb2__) && defined(__OPTIMIZE__)
    int32_t blocks = n >> 3;
    if (blocks) {
        __asm__ volatile("1:\n\t"
                         "ldmia   %[s]!, {r2, r3, r4, r5, r6, r8, r12, lr}\n\t"
                         "stmia   %[d]!, {r2, r3, r4, r5, r6, r8, r12, lr}\n\t"
                         "subs    %[b], %[b], #1\n\t"
                         "bne     1b\n\t"
                         : [s] "+r"(s), [d] "+r"(d), [b] "+r"(blocks)
                         :
                         : "r2", "r3", "r4", "r5", "r6", "r8", "r12", "lr", "cc", "memory");
        n &= 7;
    }
#endif
    for (; n > 0; --n) {
        *d++ = *s++;
    }
}

/* One output pixel (4 channels) at window origin (y0, x0): the valid cells only. */
static void px4(const float *const rows[3], int32_t ky0, int32_t ky1, int32_t x0, int32_t in_w,
                int32_t ch, const float *w, const float *b, float lo, float hi, float *d)
{
    float a0 = b[0], a1 = b[1], a2 = b[2], a3 = b[3];
    const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + 3 > in_w ? in_w - x0 : 3;
    int32_t ky, kx;
    for (ky = ky0; ky < ky1; ++ky) {
        for (kx = kx0; kx < kx1; ++kx) {
            const float *x = rows[ky] + (x0 + kx) * ch;
            const float *v = w + (ky * 3 + kx) * 4;
            a0 = MCUS_FMA(x[0], v[0], a0);
            a1 = MCUS_FMA(x[1], v[1], a1);
            a2 = MCUS_FMA(x[2], v[2], a2);
            a3 = MCUS_FMA(x[3], v[3], a3);
        }
    }
    a0 = a0 < lo ? lo : a0;
    a1 = a1 < lo ? lo : a1;
    a2 = a2 < lo ? lo : a2;
    a3 = a3 < lo ? lo : a3;
    d[0] = a0 > hi ? hi : a0;
    d[1] = a1 > hi ? hi : a1;
    d[2] = a2 > hi ? hi : a2;
    d[3] = a3 > hi ? hi : a3;
}

#if defined(__ARM_FP) && defined(__ARM_FEATURE_FMA) && defined(__OPTIMIZE__) \
    && !defined(MCUS_FAST_NO_ASM)
#define DW3_FPU 1

/* What a tile's assembly reads from memory: the clamp (lo, hi; act bit 0: lo > -FLT_MAX, bit 1:
 * hi < FLT_MAX), the edges as APSR flags (N: no left column, Z: no window row 0, C: no right
 * column, V: no window row 2) and the bias pointer's step per group (16 bytes, or 0: zeros). */
typedef struct {
    float lo, hi;
    uint32_t act;
    uint32_t edges;
    uint32_t bstep;
} dw3_prm_t;

#define DW3_N (1u << 31)
#define DW3_Z (1u << 30)
#define DW3_C (1u << 29)
#define DW3_V (1u << 28)

/* Pixel p's accumulators += column (s28-s31) * weight cell kx (s16 + 4 kx ...). */
#define DW3_FMA(A, C, W) "vfma.f32 s" #A ", s" #C ", s" #W "\n\t"
#define DW3_F(A0, A1, A2, A3, W0, W1, W2, W3)                                                     \
    DW3_FMA(A0, 28, W0) DW3_FMA(A1, 29, W1) DW3_FMA(A2, 30, W2) DW3_FMA(A3, 31, W3)
#define F00 DW3_F(0, 1, 2, 3, 16, 17, 18, 19)
#define F01 DW3_F(0, 1, 2, 3, 20, 21, 22, 23)
#define F02 DW3_F(0, 1, 2, 3, 24, 25, 26, 27)
#define F10 DW3_F(4, 5, 6, 7, 16, 17, 18, 19)
#define F11 DW3_F(4, 5, 6, 7, 20, 21, 22, 23)
#define F12 DW3_F(4, 5, 6, 7, 24, 25, 26, 27)
#define F20 DW3_F(8, 9, 10, 11, 16, 17, 18, 19)
#define F21 DW3_F(8, 9, 10, 11, 20, 21, 22, 23)
#define F22 DW3_F(8, 9, 10, 11, 24, 25, 26, 27)
#define F30 DW3_F(12, 13, 14, 15, 16, 17, 18, 19)
#define F31 DW3_F(12, 13, 14, 15, 20, 21, 22, 23)
#define F32 DW3_F(12, 13, 14, 15, 24, 25, 26, 27)

/* A column of the window row at t, then t += the pixel stride (the last column: no ADD). */
#define DW3_COL "vldmia  %[t], {s28-s31}\n\t" "add     %[t], %[t], %[cs]\n\t"
#define DW3_LAST "vldmia  %[t], {s28-s31}\n\t"
/* One window row from X: its 12 weights, the first column (skipped if N), the middle columns,
 * the last column (skipped if C). */
#define DW3_ROW(X, FIRST, MIDDLE, LAST)                                                           \
    "mov     %[t], " X "\n\t"                                                                     \
    "vldmia  %[w]!, {s16-s27}\n\t"                                                                \
    "bmi     1f\n\t" DW3_COL FIRST "1:\n\t" MIDDLE                                                \
    "bcs     2f\n\t" DW3_LAST LAST "2:\n\t"
/* The three window rows; row 0 skipped if Z, row 2 if V (their weights stepped over). */
#define DW3_ROWS(M)                                                                               \
    "itt     eq\n\t" "addeq   %[w], %[w], #48\n\t" "beq     5f\n\t" M("%[x0]") "5:\n\t"           \
    M("%[x1]")                                                                                    \
    "itt     vs\n\t" "addvs   %[w], %[w], #48\n\t" "bvs     6f\n\t" M("%[x2]") "6:\n\t"

/* The columns of P pixels: stride 1 (columns 0 .. P + 1) and stride 2 (0 .. 2 P). */
#define DW3_S1P4(X) DW3_ROW(X, F00, DW3_COL F01 F10 DW3_COL F02 F11 F20                           \
                            DW3_COL F12 F21 F30 DW3_COL F22 F31, F32)
#define DW3_S1P3(X) DW3_ROW(X, F00, DW3_COL F01 F10 DW3_COL F02 F11 F20 DW3_COL F12 F21, F22)
#define DW3_S1P2(X) DW3_ROW(X, F00, DW3_COL F01 F10 DW3_COL F02 F11, F12)
#define DW3_S1P1(X) DW3_ROW(X, F00, DW3_COL F01, F02)
#define DW3_S2P4(X) DW3_ROW(X, F00, DW3_COL F01 DW3_COL F02 F10 DW3_COL F11 DW3_COL F12 F20       \
                            DW3_COL F21 DW3_COL F22 F30 DW3_COL F31, F32)
#define DW3_S2P3(X) DW3_ROW(X, F00, DW3_COL F01 DW3_COL F02 F10 DW3_COL F11 DW3_COL F12 F20       \
                            DW3_COL F21, F22)
#define DW3_S2P2(X) DW3_ROW(X, F00, DW3_COL F01 DW3_COL F02 F10 DW3_COL F11, F12)

#if defined(MCUS_FPV5)
#define DW3_CL(OP, A, R) OP " s" #A ", s" #A ", " R "\n\t"
#define DW3_CL4(OP, A0, A1, A2, A3, R) DW3_CL(OP, A0, R) DW3_CL(OP, A1, R) DW3_CL(OP, A2, R) DW3_CL(OP, A3, R)
#define DW3_LO4(A0, A1, A2, A3) DW3_CL4("vmaxnm.f32", A0, A1, A2, A3, "s16")
#define DW3_HI4(A0, A1, A2, A3) DW3_CL4("vminnm.f32", A0, A1, A2, A3, "s17")
#else /* FPv4 (Cortex-M4): compare, then a conditional move */
#define DW3_CM(A, R, CC) "vcmp.f32 s" #A ", " R "\n\tvmrs APSR_nzcv, fpscr\n\tit " CC "\n\tvmov" CC ".f32 s" #A ", " R "\n\t"
#define DW3_LO4(A0, A1, A2, A3) DW3_CM(A0, "s16", "mi") DW3_CM(A1, "s16", "mi") DW3_CM(A2, "s16", "mi") DW3_CM(A3, "s16", "mi")
#define DW3_HI4(A0, A1, A2, A3) DW3_CM(A0, "s17", "gt") DW3_CM(A1, "s17", "gt") DW3_CM(A2, "s17", "gt") DW3_CM(A3, "s17", "gt")
#endif
#define DW3_BIAS(R) "vldmia  %[b], {" R "}\n\t"
#define DW3_ST(R) "vstmia  %[t], {" R "}\n\t" "add     %[t], %[t], %[cs]\n\t"

/*
 * A tile of P pixels for `groups` consecutive 4-channel groups: per group the bias, the edges
 * into APSR, the three window rows (ROWS), the clamp (LO, HI), the stores (ST); then the input,
 * output and bias pointers step to the next group (the weights are contiguous per group).
 */
#define DW3_TILE(NAME, BIAS, ROWS, LO, HI, ST)                                                    \
    static inline __attribute__((always_inline)) void                                             \
    NAME(const float *x0, const float *x1, const float *x2, uint32_t cs, const float *w,         \
         const float *b, float *d, int32_t groups, const dw3_prm_t *prm)                         \
    {                                                                                             \
        const float *t;                                                                           \
        __asm__ volatile("0:\n\t"                                                                 \
                         "ldr     %[t], [%[a], #12]\n\t"                                          \
                         "msr     APSR_nzcvq, %[t]\n\t" BIAS ROWS                                 \
                         "ldr     %[t], [%[a], #8]\n\t"                                           \
                         "tst     %[t], #1\n\t"                                                   \
                         "beq     3f\n\t"                                                         \
                         "vldr.32 s16, [%[a]]\n\t" LO                                             \
                         "3:\n\t"                                                                 \
                         "tst     %[t], #2\n\t"                                                   \
                         "beq     4f\n\t"                                                         \
                         "vldr.32 s17, [%[a], #4]\n\t" HI                                         \
                         "4:\n\t"                                                                 \
                         "mov     %[t], %[d]\n\t" ST                                              \
                         "add     %[x0], %[x0], #16\n\t"                                          \
                         "add     %[x1], %[x1], #16\n\t"                                          \
                         "add     %[x2], %[x2], #16\n\t"                                          \
                         "add     %[d], %[d], #16\n\t"                                            \
                         "ldr     %[t], [%[a], #16]\n\t"                                          \
                         "add     %[b], %[b], %[t]\n\t"                                           \
                         "subs    %[g], %[g], #1\n\t"                                             \
                         "bne     0b\n\t"                                                         \
                         : [x0] "+r"(x0), [x1] "+r"(x1), [x2] "+r"(x2), [w] "+r"(w), [b] "+r"(b), \
                           [d] "+r"(d), [g] "+r"(groups), [t] "=&r"(t)                            \
                         : [cs] "r"(cs), [a] "r"(prm)                                             \
                         : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10",    \
                           "s11", "s12", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20", \
                           "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29", "s30", \
                           "s31", "cc", "memory");                                                \
    }

#define B1 DW3_BIAS("s0-s3")
#define B2 B1 DW3_BIAS("s4-s7")
#define B3 B2 DW3_BIAS("s8-s11")
#define B4 B3 DW3_BIAS("s12-s15")
#define LO1 DW3_LO4(0, 1, 2, 3)
#define LO2 LO1 DW3_LO4(4, 5, 6, 7)
#define LO3 LO2 DW3_LO4(8, 9, 10, 11)
#define LO4 LO3 DW3_LO4(12, 13, 14, 15)
#define HI1 DW3_HI4(0, 1, 2, 3)
#define HI2 HI1 DW3_HI4(4, 5, 6, 7)
#define HI3 HI2 DW3_HI4(8, 9, 10, 11)
#define HI4 HI3 DW3_HI4(12, 13, 14, 15)
#define ST1 DW3_ST("s0-s3")
#define ST2 ST1 DW3_ST("s4-s7")
#define ST3 ST2 DW3_ST("s8-s11")
#define ST4 ST3 DW3_ST("s12-s15")

DW3_TILE(tile_s1p4, B4, DW3_ROWS(DW3_S1P4), LO4, HI4, ST4)
DW3_TILE(tile_s1p3, B3, DW3_ROWS(DW3_S1P3), LO3, HI3, ST3)
DW3_TILE(tile_s1p2, B2, DW3_ROWS(DW3_S1P2), LO2, HI2, ST2)
DW3_TILE(tile_p1, B1, DW3_ROWS(DW3_S1P1), LO1, HI1, ST1)
DW3_TILE(tile_s2p4, B4, DW3_ROWS(DW3_S2P4), LO4, HI4, ST4)
DW3_TILE(tile_s2p3, B3, DW3_ROWS(DW3_S2P3), LO3, HI3, ST3)
DW3_TILE(tile_s2p2, B2, DW3_ROWS(DW3_S2P2), LO2, HI2, ST2)

/* A tile of np (1-4) pixels of stride sw (1 or 2) for `groups` groups from channel 0 of x[]. */
static void tile(int32_t np, int32_t sw, const float *const x[3], uint32_t cs, const float *w,
                 const float *b, float *d, int32_t groups, const dw3_prm_t *prm)
{
    if (np == 1) {
        tile_p1(x[0], x[1], x[2], cs, w, b, d, groups, prm);
    } else if (sw == 1) {
        if (np == 4) {
            tile_s1p4(x[0], x[1], x[2], cs, w, b, d, groups, prm);
        } else if (np == 3) {
            tile_s1p3(x[0], x[1], x[2], cs, w, b, d, groups, prm);
        } else {
            tile_s1p2(x[0], x[1], x[2], cs, w, b, d, groups, prm);
        }
    } else if (np == 4) {
        tile_s2p4(x[0], x[1], x[2], cs, w, b, d, groups, prm);
    } else if (np == 3) {
        tile_s2p3(x[0], x[1], x[2], cs, w, b, d, groups, prm);
    } else {
        tile_s2p2(x[0], x[1], x[2], cs, w, b, d, groups, prm);
    }
}

/* The fast path for one output row: tiles of 4 pixels (the last may be shorter), every group of
 * a tile in one call (the overlapping last group, if any, in a second). Returns the first output
 * pixel it did not compute (ow, unless padding is wider than one column). */
static int32_t row_fpu(const mcus_fast_dwconv_f32_t *p, const float *const rows[3], int32_t edges_y,
                       float *out, dw3_prm_t *prm)
{
    const int32_t ch = p->in.c, in_w = p->in.w, ow = p->out.w, sw = p->g.sw, pl = p->g.pl;
    const int32_t full = ch >> 2, last = ch - 4;
    const uint32_t cs = (uint32_t)ch * 4u;
    const float *bias = p->bias ? p->bias : dw3_zero;
    int32_t ox;

    prm->bstep = p->bias ? 16u : 0u;
    for (ox = 0; ox < ow; ox += 4) {
        const int32_t np = ow - ox < 4 ? ow - ox : 4;
        const int32_t xa = ox * sw - pl, xb = xa + (np - 1) * sw + 3;     /* columns [xa, xb) */
        const int32_t xs = xa < 0 ? 0 : xa;
        const float *x[3];
        float *d = out + ox * ch;
        int32_t ky;
        if (xb > in_w + 1) {
            break;
        }
        prm->edges = (uint32_t)edges_y | (xa < 0 ? DW3_N : 0u) | (xb > in_w ? DW3_C : 0u);
        for (ky = 0; ky < 3; ++ky) {
            x[ky] = rows[ky] + xs * ch;
        }
        tile(np, sw, x, cs, p->weights, bias, d, full, prm);
        if (ch & 3) {
            const float *xl[3] = {x[0] + last, x[1] + last, x[2] + last};
            tile(np, sw, xl, cs, p->weights + full * 36, p->bias ? bias + last : bias, d + last, 1,
                 prm);
        }
    }
    return ox;
}
#else
#define DW3_FPU 0
#endif

/* Output row oy into out. */
static void dw3_row(const mcus_fast_dwconv_f32_t *p, const mcus_io_t *io, int32_t oy, float *out)
{
    const float *in = p->in.base ? (const float *)p->in.base : (const float *)io->in;
    const int32_t in_h = p->in.h, in_w = p->in.w, ch = p->in.c, ow = p->out.w;
    const int32_t sw = p->g.sw, pl = p->g.pl;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const float lo = p->act_min, hi = p->act_max;
    const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = y0 + 3 > in_h ? in_h - y0 : 3;
    const float *rows[3];
    int32_t ky, c0, ox0 = 0;

    for (ky = 0; ky < 3; ++ky) {
        const int32_t iy = y0 + ky;
        rows[ky] = (iy >= 0 && iy < in_h) ? (const float *)mcus_row_ptr(&p->in, (void *)in, iy, 4) : in;
    }
#if DW3_FPU
    if ((sw == 1 || sw == 2) && pl <= 1 && ky0 <= 1 && ky1 >= 2) {   /* window row 1 inside */
        dw3_prm_t prm;
        prm.lo = lo;
        prm.hi = hi;
        prm.act = (lo > -FLT_MAX ? 1u : 0u) | (hi < FLT_MAX ? 2u : 0u);
        ox0 = row_fpu(p, rows, (ky0 ? (int32_t)DW3_Z : 0) | (ky1 < 3 ? (int32_t)DW3_V : 0), out, &prm);
    }
#endif
    for (c0 = 0; c0 < ch; c0 += 4) {
        const int32_t c = c0 + 4 <= ch ? c0 : ch - 4;       /* the last group may overlap */
        const float *const r[3] = {rows[0] + c, rows[1] + c, rows[2] + c};
        const float *w = p->weights + (c0 >> 2) * 36;
        const float *b = p->bias ? p->bias + c : dw3_zero;
        int32_t ox;
        for (ox = ox0; ox < ow; ++ox) {
            px4(r, ky0, ky1, ox * sw - pl, in_w, ch, w, b, lo, hi, out + c + ox * ch);
        }
    }
}

void mcus_fast_dwconv3x3_f32(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_dwconv_f32_t *p = (const mcus_fast_dwconv_f32_t *)params;
    float *out = (float *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 4);

    if (!p->in_place) {
        dw3_row(p, io, oy, out);
        return;
    }
    dw3_row(p, io, oy, (float *)io->scratch);
    copy_row(out, (const float *)io->scratch, p->out.w * p->out.c);
}
