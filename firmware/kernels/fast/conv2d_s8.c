/*
 * int8 2-D convolution, one output row per call (also Dense: a 1 x 1 convolution of 1 x 1 x N).
 *
 * Per pair of output pixels: im2col into a column of int16 (input + input offset, so padding is
 * 0), in chunks of 4 k stored as SXTAB16 leaves them, (k0, k2), (k1, k3). Per pair of output
 * channels: the weights' 4-k chunks are loaded as words and split by SXTB16 / SXTB16 ROR 8 into
 * the same (k0, k2), (k1, k3) halves, and SMLAD does two multiply-accumulates at a time into a
 * 2 x 2 block of accumulators: per chunk 4 column words + 2 weight words + 4 SXTB16 + 8 SMLAD =
 * 16 MACs. The K % 4 leftover values take a scalar loop. Requantisation: mcus_rq_apply (SMLAL and
 * a shift, see mcus_fast.h), with the per-channel constants computed once per row
 * and block of at most MCUS_RQ_BLOCK output channels.
 *
 * Columns: a pointwise layer's from one loop over the pixels' runs (pw_cols); a window whose
 * kernel rows are all inside the input from the rows' words (im2col_rows_s8: per kernel row 5
 * instructions and 6 a word, any input channels); the input's edges by im2col_s8 (channels in
 * multiples of 4: per kernel row one run of words and the padding's zeros, ~12 instructions a
 * row on top of 6 a word and 3 a padding chunk; else staged). On the GEMM path the caller runs
 * the block's channel pairs (gemm_run) with its state set once per block: a 3 x 3 layer of 4 to 8
 * channels (K = 36) costs 1.7 instructions a MAC, a 1 x 1 one of 8 to 8 (K = 8) 2.7.
 *
 * Rows of one pixel (1-D maps as columns, converter mcusearch-lowmem) have an entry of their own,
 * mcus_fast_conv2d_s8_w16 (the generator's int16 weights, p->w16; see conv_w16): ~1.25 to 1.7
 * instructions a MAC with the column, against ~2.2 to 2.9 through the GEMM path's 1-pixel tail.
 */
#include "mcus_fast.h"

#define MCUS_INLINE static inline __attribute__((always_inline))
#define MCUS_ROWS_MAX 16      /* kernel heights up to this take im2col_rows_s8 */

/* n bytes from s to d (word copies, any alignment; a small memcpy is inlined). The word loop is
 * assembly on DSP cores: GCC's unrolled C loops hoisted ~100 instructions of trip-count set-up
 * into every call of im2col_staged. */
static inline void stage_copy(int8_t *d, const int8_t *s, int32_t n)
{
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    if (n >= 4) {
        int32_t w = n >> 2;
        uint32_t t;
        __asm__ volatile("1:\n\t"
                         "ldr     %[t], [%[s]], #4\n\t"
                         "str     %[t], [%[d]], #4\n\t"
                         "subs    %[w], %[w], #1\n\t"
                         "bne     1b\n\t"
                         : [s] "+r"(s), [d] "+r"(d), [w] "+r"(w), [t] "=&r"(t)
                         :
                         : "cc", "memory");
        n &= 3;
    }
#else
    for (; n >= 4; n -= 4, d += 4, s += 4) {
        mcus_st32(d, mcus_ld32(s));
    }
#endif
    if (n & 2) {
        memcpy(d, s, 2);
        d += 2;
        s += 2;
    }
    if (n & 1) {
        *d = *s;
    }
}

/* ceil(n / 4) words of v from d (up to 3 bytes past n: the caller's staging area has room). */
static inline void stage_fill(int8_t *d, uint32_t v, int32_t n)
{
    int32_t w = (n + 3) >> 2;
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    __asm__ volatile("1:\n\t"
                     "str     %[v], [%[d]], #4\n\t"
                     "subs    %[w], %[w], #1\n\t"
                     "bgt     1b\n\t"
                     : [d] "+r"(d), [w] "+r"(w)
                     : [v] "r"(v)
                     : "cc", "memory");
#else
    for (; w > 0; --w, d += 4) {
        mcus_st32(d, v);
    }
#endif
}

/* 4 values a step from src into the columns: LDR, SXTAB16 x 2 (+ offset), STRD */
#define MCUS_S8_COL_LOOP(STEP)                                                                    \
    __asm__ volatile("1:\n\t"                                                                     \
                     "ldr     %[v], [%[s]], #4\n\t"                                               \
                     "sxtab16 %[t0], %[o], %[v]\n\t"                                              \
                     "sxtab16 %[t1], %[o], %[v], ror #8\n\t"                                      \
                     "strd    %[t0], %[t1], [%[d]], #" STEP "\n\t"                                \
                     "subs    %[n], %[n], #1\n\t"                                                 \
                     "bne     1b\n\t"                                                             \
                     : [s] "+r"(src), [d] "+r"(dst), [n] "+r"(n), [v] "=&r"(v),                   \
                       [t0] "=&r"(t0), [t1] "=&r"(t1)                                             \
                     : [o] "r"(off2)                                                              \
                     : "cc", "memory")

/*
 * The generator's K order of a layer whose kernel rows are rowb = kw * in_c bytes, rowb % 4 != 0,
 * rowb > 4 (fast.k_order): every kernel row's first 4 * (rowb / 4) bytes, row after row, then
 * every row's rowb % 4 leftover bytes, then the kpad zero points. So the main part of a row is
 * whole words of the input (im2col_rows_s8). The staged window (kh rows of rowb bytes, in the
 * input's order) rearranged into the bytes after it (the staging area has room: fast._scratch);
 * returns them.
 */
static const int8_t *stage_korder(const int8_t *stage, int32_t kh, int32_t rowb, uint32_t zp4)
{
    const int32_t m = rowb & ~3, lw = rowb & 3;
    int8_t *const out = (int8_t *)stage + ((kh * rowb + 7) & ~3);
    int8_t *d = out, *t = out + kh * m;
    int32_t ky, j;
    for (ky = 0; ky < kh; ++ky, stage += rowb) {
        for (j = 0; j < m; ++j) {
            *d++ = stage[j];
        }
        for (j = m; j < rowb; ++j) {
            *t++ = stage[j];
        }
    }
    (void)lw;
    mcus_st32(t, zp4);
    return out;
}

/*
 * The column of one output pixel whose input channels are not a multiple of 4: the window's bytes
 * in k order into a staging area after the np columns (a kernel row's kw * in_c bytes are
 * contiguous in the input when the window is inside it: word copies; padding cells and the
 * p->kpad values that round K up to a multiple of 4 hold the input zero point, which expands to
 * 0; the generator's weights are zero at those kpad k), then expanded 4 values at a time as
 * im2col_s8 does. A function of its own: inside im2col_s8, GCC's set-up for both paths cost ~250
 * instructions a pixel.
 */
static void im2col_staged(const mcus_fast_conv_s8_t *p, const int8_t *in, int32_t y0, int32_t x0,
                          int16_t *col, int32_t np, int32_t pix)
{
    const int32_t in_c = p->in.c, kw = p->g.kw, rowb = kw * in_c;
    const int32_t K = p->g.kh * rowb + p->kpad, nch = K >> 2, T = K & 3;
    const int32_t off = p->input_offset;
    const uint32_t zp4 = (uint32_t)(uint8_t)(-off) * 0x01010101u;
    const uint32_t off2 = (uint32_t)(uint16_t)off * 0x00010001u;
    const int inside = x0 >= 0 && x0 + kw <= p->in.w;
    int8_t *const stage = (int8_t *)(void *)(col + np * (4 * nch + T));
    int8_t *l = stage;
    const int8_t *src = stage;
    uint32_t *dst = (uint32_t *)(void *)(col + pix * 4);
    int32_t ky, kx, n;

    for (ky = 0; ky < p->g.kh; ++ky, l += rowb) {
        const int32_t iy = y0 + ky;
        const int8_t *row;
        if (iy < 0 || iy >= p->in.h) {
            stage_fill(l, zp4, rowb);            /* up to 3 bytes on: the next row's, or spare */
            continue;
        }
        row = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, iy, 1);
        if (inside) {
            stage_copy(l, row + x0 * in_c, rowb);
            continue;
        }
        for (kx = 0; kx < kw; ++kx) {
            const int32_t ix = x0 + kx;
            if (ix >= 0 && ix < p->in.w) {
                stage_copy(l + kx * in_c, row + ix * in_c, in_c);
            } else {
                stage_fill(l + kx * in_c, zp4, in_c);
            }
        }
    }
    mcus_st32(l, zp4);                           /* the kpad values (kpad <= 3) */
    if ((rowb & 3) && rowb > 4) {               /* else the K order is TFLite's */
        src = stage_korder(stage, p->g.kh, rowb, zp4);
    }
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    if (nch && (np == 2 || np == 3)) {
        uint32_t v, t0, t1;
        n = nch;
        if (np == 2) {
            MCUS_S8_COL_LOOP("16");
        } else {
            MCUS_S8_COL_LOOP("24");
        }
    } else
#endif
    {
        for (n = nch; n > 0; --n) {
            const uint32_t v = mcus_ld32(src);
            src += 4;
            dst[0] = mcus_sxtab16(off2, v);
            dst[1] = mcus_sxtab16_ror8(off2, v);
            dst += np * 2;
        }
    }
    {
        int16_t *tail = col + nch * 4 * np + pix * T;
        for (n = 0; n < T; ++n) {
            tail[n] = (int16_t)(src[n] + off);
        }
    }
}

#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
/* im2col_rows_s8's parameters (offsets are read by its assembly) */
typedef struct {
    int32_t unused;             /*  0 */
    int32_t xb;                 /*  4: the window's first byte in each row */
    int32_t kh;                 /*  8 */
    int32_t m4;                 /* 12: whole words of a kernel row (>= 1) */
    int32_t lw;                 /* 16: leftover bytes of a kernel row (0: none) */
    int8_t *stage;              /* 20: where the leftovers are gathered */
    uint32_t zp4;               /* 24: the input zero point in every byte (the kpad values) */
    int32_t nt;                 /* 28: chunks of leftovers and kpad */
    const int8_t *rows[MCUS_ROWS_MAX];  /* 32: the kernel rows' input rows (a 1-D dilated
                                         * window: its taps, d pixels apart in one row) */
    int32_t span;               /* input columns a window covers: kw, or (kw - 1) d + 1 */
} rows_t;

/* the column words of n (register) 4-byte chunks from [s] (advanced), STEP bytes apart */
#define ROWS_CHUNKS(STEP)                                                                         \
    "1:\n\t"                                                                                      \
    "ldr     r5, [r4], #4\n\t"                                                                    \
    "sxtab16 r6, r2, r5\n\t"                                                                      \
    "sxtab16 r8, r2, r5, ror #8\n\t"                                                              \
    "strd    r6, r8, [r1], #" STEP "\n\t"                                                         \
    "subs    r9, r9, #1\n\t"                                                                      \
    "bne     1b\n\t"
/* a kernel row's leftover bytes from [r4] to the gathering area [r11] (advanced) */
#define ROWS_LEFT                                                                                 \
    "ldr     r9, [r0, #16]\n\t"                                                                   \
    "3:\n\t"                                                                                      \
    "ldrb    r5, [r4], #1\n\t"                                                                    \
    "strb    r5, [r11], #1\n\t"                                                                   \
    "subs    r9, r9, #1\n\t"                                                                      \
    "bne     3b\n\t"
/* the gathered leftovers and the kpad zero points into the column */
#define ROWS_TAIL(STEP)                                                                           \
    "ldr     r5, [r0, #24]\n\t"                                                                   \
    "str     r5, [r11]\n\t"                                                                       \
    "ldr     r4, [r0, #20]\n\t"                                                                   \
    "ldr     r9, [r0, #28]\n\t"                                                                   \
    ROWS_CHUNKS(STEP)
/* r0: rows_t, r1: the column (advanced), r2: the input offset in both halves */
#define ROWS_ASM(STEP, LEFT, TAIL)                                                                \
    "add     r3, r0, #32\n\t"                                                                     \
    "ldr     r10, [r0, #8]\n\t"                                                                   \
    "ldr     r11, [r0, #20]\n\t"                                                                  \
    "2:\n\t"                                                                                      \
    "ldr     r4, [r3], #4\n\t"                                                                    \
    "ldr     r5, [r0, #4]\n\t"                                                                    \
    "add     r4, r4, r5\n\t"                                                                      \
    "ldr     r9, [r0, #12]\n\t"                                                                   \
    ROWS_CHUNKS(STEP)                                                                             \
    LEFT                                                                                          \
    "subs    r10, r10, #1\n\t"                                                                    \
    "bne     2b\n\t"                                                                              \
    TAIL

/*
 * The column of one output pixel of a layer whose input channels are not a multiple of 4 and
 * kernel rows of rowb >= 4 bytes, when its window is inside the input (t->xb: the
 * window's first byte in each of the t->kh rows t->rows). Per kernel row its rowb / 4 words
 * straight from the input (LDR, SXTAB16 x 2, STRD: no staging) and its rowb % 4 leftover bytes
 * gathered (LDRB/STRB), then the leftovers and the kpad zero points expanded: the generator's K
 * order (stage_korder). About 6 instructions a word, 4 a leftover byte, 5 a kernel row. np: 2
 * or 3 (the GEMM path's columns side by side).
 */
#define ROWS_RUN(CODE)                                                                            \
    __asm__ volatile(CODE : "+r"(r1) : "r"(r0), "r"(r2)                                           \
                     : "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "cc", "memory")

static void im2col_rows_s8(const rows_t *t, uint32_t off2, int16_t *col, int32_t np, int32_t pix)
{
    register const rows_t *r0 __asm__("r0") = t;
    register int16_t *r1 __asm__("r1") = col + pix * 4;
    register uint32_t r2 __asm__("r2") = off2;
    if (t->lw == 0) {                    /* whole-word kernel rows: no leftovers */
        if (np == 2) {
            ROWS_RUN(ROWS_ASM("16", "", ""));
        } else {
            ROWS_RUN(ROWS_ASM("24", "", ""));
        }
    } else if (np == 2) {
        ROWS_RUN(ROWS_ASM("16", ROWS_LEFT, ROWS_TAIL("16")));
    } else {
        ROWS_RUN(ROWS_ASM("24", ROWS_LEFT, ROWS_TAIL("24")));
    }
}
#endif

/* n (>= 0) 4-value chunks from src into the column at dst (np columns side by side: np * 8 bytes
 * a chunk; np 2 or 3 on DSP cores, the GEMM path's layouts): LDR, SXTAB16 x 2 (+ offset), STRD */
static inline uint32_t *col_copy(uint32_t *dst, const int8_t *src, int32_t n, int32_t np,
                                 uint32_t off2)
{
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    if (n > 0) {
        uint32_t v, t0, t1;
        if (np == 2) {
            MCUS_S8_COL_LOOP("16");
        } else {
            MCUS_S8_COL_LOOP("24");
        }
    }
#else
    for (; n > 0; --n) {
        const uint32_t v = mcus_ld32(src);
        src += 4;
        dst[0] = mcus_sxtab16(off2, v);
        dst[1] = mcus_sxtab16_ror8(off2, v);
        dst += np * 2;
    }
#endif
    return dst;
}

/* n (>= 0) chunks of zeros (padding) into the column at dst, as col_copy */
static inline uint32_t *col_zero(uint32_t *dst, int32_t n, int32_t np)
{
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    if (n > 0) {
        const uint32_t z = 0;
        if (np == 2) {
            __asm__ volatile("1:\n\t"
                             "strd    %[z], %[z], [%[d]], #16\n\t"
                             "subs    %[n], %[n], #1\n\t"
                             "bne     1b\n\t"
                             : [d] "+r"(dst), [n] "+r"(n) : [z] "r"(z) : "cc", "memory");
        } else {
            __asm__ volatile("1:\n\t"
                             "strd    %[z], %[z], [%[d]], #24\n\t"
                             "subs    %[n], %[n], #1\n\t"
                             "bne     1b\n\t"
                             : [d] "+r"(dst), [n] "+r"(n) : [z] "r"(z) : "cc", "memory");
        }
    }
#else
    for (; n > 0; --n) {
        dst[0] = 0;
        dst[1] = 0;
        dst += np * 2;
    }
#endif
    return dst;
}

/* The columns of np pixels from ox of a dilated layer (input channels a multiple of 4), laid out
 * as im2col_s8's: tap after tap, the taps dh1 + 1 rows and dw1 + 1 columns apart, each in_c / 4
 * words or zeros (padding). Out of line, called once for the np pixels: inlined, or a test in
 * im2col_s8, it cost the undilated layers' pixels instructions. */
static __attribute__((noinline)) void im2col_dilated_s8(const mcus_fast_conv_s8_t *p,
                                                        const int8_t *in, int32_t oy, int32_t ox,
                                                        int16_t *col, int32_t np, int32_t lnp)
{
    const uint32_t off2 = (uint32_t)(uint16_t)p->input_offset * 0x00010001u;
    const int32_t in_c = p->in.c, words = in_c >> 2, dh = p->dh1 + 1, dw = p->dw1 + 1;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    int32_t pix, ky, kx;

    const int32_t inside_y = y0 >= 0 && y0 + (p->g.kh - 1) * dh < p->in.h;
    for (pix = 0; pix < np; ++pix) {
        const int32_t x0 = (ox + pix) * p->g.sw - p->g.pl;
        uint32_t *dst = (uint32_t *)(void *)(col + pix * 4);
        if (inside_y && x0 >= 0 && x0 + (p->g.kw - 1) * dw < p->in.w) {
            /* the whole window inside: tap after tap, no tests */
            const int32_t step = dw * in_c;
            for (ky = 0; ky < p->g.kh; ++ky) {
                const int8_t *src = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, y0 + ky * dh,
                                                                 1) + x0 * in_c;
                for (kx = p->g.kw; kx > 0; --kx, src += step) {
                    dst = col_copy(dst, src, words, lnp, off2);
                }
            }
            continue;
        }
        for (ky = 0; ky < p->g.kh; ++ky) {
            const int32_t y = y0 + ky * dh;
            const int8_t *row = y >= 0 && y < p->in.h
                                ? (const int8_t *)mcus_row_ptr(&p->in, (void *)in, y, 1) : 0;
            for (kx = 0; kx < p->g.kw; ++kx) {
                const int32_t x = x0 + kx * dw;
                dst = row && x >= 0 && x < p->in.w
                      ? col_copy(dst, row + x * in_c, words, lnp, off2)
                      : col_zero(dst, words, lnp);
            }
        }
    }
}

/* One output pixel's column: chunk j at col + j * 4 * np + pix * 4, leftovers at
 * col + nch * 4 * np + pix * T. Input channels a multiple of 4: per kernel row, the window's
 * columns inside the input are one run of whole words of the input row (col_copy), the padding
 * columns before and after it zeros (col_zero); a padding row all zeros. About 30 instructions
 * a pixel and 12 a kernel row on top of the words' (the pixels at the input's edges: the others
 * take im2col_rows_s8). */
static void im2col_s8(const mcus_fast_conv_s8_t *p, const int8_t *in, int32_t oy, int32_t ox,
                      int16_t *col, int32_t np, int32_t pix)
{
    const int32_t in_c = p->in.c, kh = p->g.kh, kw = p->g.kw;
    const int32_t y0 = oy * p->g.sh - p->g.pt, x0 = ox * p->g.sw - p->g.pl;

    if ((in_c & 3) == 0) {
        const uint32_t off2 = (uint32_t)(uint16_t)p->input_offset * 0x00010001u;
        const int32_t in_h = p->in.h, in_w = p->in.w, words = in_c >> 2;
        const int32_t a = x0 < 0 ? (-x0 < kw ? -x0 : kw) : 0;          /* first kx inside */
        const int32_t b = x0 + kw > in_w ? in_w - x0 : kw;              /* kx end inside */
        const int32_t lead = a * words, mid = b > a ? (b - a) * words : 0;
        const int32_t trail = kw * words - lead - mid;
        const int32_t xoff = (x0 + a) * in_c;
        uint32_t *dst = (uint32_t *)(void *)(col + pix * 4);
        int32_t iy;
        for (iy = y0; iy < y0 + kh; ++iy) {
            if (iy < 0 || iy >= in_h) {
                dst = col_zero(dst, kw * words, np);
                continue;
            }
            dst = col_zero(dst, lead, np);
            dst = col_copy(dst, (const int8_t *)mcus_row_ptr(&p->in, (void *)in, iy, 1) + xoff,
                           mid, np, off2);
            dst = col_zero(dst, trail, np);
        }
        return;
    }
    im2col_staged(p, in, y0, x0, col, np, pix);
}

#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
/* rt for output row oy of a layer whose input channels are not a multiple of 4: 1, or 0 where
 * im2col_rows_s8 does not apply (some kernel row outside the input, rows under 4 bytes). A
 * window dilated along its one row (a TCN's Conv1D; input channels a multiple of 4) takes it
 * too, its taps as the "rows": each tap's in_c bytes, d pixels apart. */
static __attribute__((noinline, optimize("Os"))) int32_t rows_setup(const mcus_fast_conv_s8_t *p,
                                                                    const int8_t *in, int32_t oy,
                                                                    rows_t *rt)
{
    const int32_t rowb = p->g.kw * p->in.c, y0 = oy * p->g.sh - p->g.pt;
    int32_t ky;
    if (rowb < 4 || p->g.kh > MCUS_ROWS_MAX || y0 < 0 || y0 + p->g.kh > p->in.h || p->dh1) {
        return 0;                             /* dilated rows: im2col_dilated_s8 */
    }
    if (p->dw1) {
        const int8_t *row = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, y0, 1);
        if (p->g.kh != 1 || p->g.kw > MCUS_ROWS_MAX) {
            return 0;
        }
        for (ky = 0; ky < p->g.kw; ++ky) {
            rt->rows[ky] = row + ky * (p->dw1 + 1) * p->in.c;
        }
        rt->kh = p->g.kw;
        rt->m4 = p->in.c >> 2;
        rt->lw = 0;
        rt->span = (p->g.kw - 1) * (p->dw1 + 1) + 1;
    } else {
        for (ky = 0; ky < p->g.kh; ++ky) {
            rt->rows[ky] = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, y0 + ky, 1);
        }
        rt->kh = p->g.kh;
        rt->m4 = rowb >> 2;
        rt->lw = rowb & 3;
        rt->span = p->g.kw;
    }
    rt->zp4 = (uint32_t)(uint8_t)(-p->input_offset) * 0x01010101u;
    rt->nt = (rt->kh * rt->lw + p->kpad) >> 2;
    return 1;
}

/* The columns of np pixels from ox of such a row (rows_setup gave 1): im2col_rows_s8 where the
 * window is inside the input, im2col_s8 at the edges. */
static __attribute__((noinline)) void cols_rows(const mcus_fast_conv_s8_t *p, const int8_t *in,
                                                rows_t *rt, int32_t oy, int32_t ox, int16_t *col,
                                                int32_t np)
{
    const int32_t lnp = np == 3 ? 3 : 2, K = p->g.kh * p->g.kw * p->in.c + p->kpad;
    const uint32_t off2 = (uint32_t)(uint16_t)p->input_offset * 0x00010001u;
    int32_t c;
    rt->stage = (int8_t *)(void *)(col + lnp * K);
    for (c = 0; c < np; ++c) {
        const int32_t x0 = (ox + c) * p->g.sw - p->g.pl;
        if (x0 >= 0 && x0 + p->g.kw <= p->in.w) {
            rt->xb = x0 * p->in.c;
            im2col_rows_s8(rt, off2, col, lnp, c);
        } else {
            im2col_s8(p, in, oy, ox + c, col, lnp, c);
        }
    }
}

/* cols_rows of a window dilated along its row (its taps as rt's rows): im2col_dilated_s8 at the
 * edges. Its own function: the test in cols_rows cost the undilated rows ~1 %; flatten: its
 * im2col_rows_s8 inlined as in cols_rows. */
static __attribute__((noinline, flatten)) void cols_dilated(const mcus_fast_conv_s8_t *p,
                                                            const int8_t *in, rows_t *rt,
                                                            int32_t oy, int32_t ox, int16_t *col,
                                                            int32_t np)
{
    const int32_t lnp = np == 3 ? 3 : 2;
    const uint32_t off2 = (uint32_t)(uint16_t)p->input_offset * 0x00010001u;
    int32_t c;
    for (c = 0; c < np; ++c) {
        const int32_t x0 = (ox + c) * p->g.sw - p->g.pl;
        if (x0 >= 0 && x0 + rt->span <= p->in.w) {
            rt->xb = x0 * p->in.c;
            im2col_rows_s8(rt, off2, col, lnp, c);
        } else {
            im2col_dilated_s8(p, in, oy, ox + c, col + 4 * c, 1, lnp);
        }
    }
}

/*
 * The columns of np = 2 or 3 consecutive pixels of a 1 x 1, stride 1, unpadded convolution whose
 * input channels are a multiple of 4 (a pointwise layer): their inputs are np consecutive runs of
 * in_c bytes of one input row, so one loop builds all np columns (per 4 values and pixel: LDR,
 * SXTAB16 x 2, STRD), without im2col_s8's per-pixel set-up (~100 instructions, which dominated
 * layers of 8 or 16 input channels).
 */
static void pw_cols(const int8_t *src, int32_t in_c, int16_t *col, int32_t np, uint32_t off2)
{
    int32_t n = in_c >> 2;
    uint32_t v, t0, t1;
    uint32_t *dst = (uint32_t *)(void *)col;
    if (np == 3) {
        const int32_t ic2 = 2 * in_c;
        __asm__ volatile("1:\n\t"
                         "ldr     %[v], [%[s]]\n\t"
                         "sxtab16 %[t0], %[o], %[v]\n\t"
                         "sxtab16 %[t1], %[o], %[v], ror #8\n\t"
                         "strd    %[t0], %[t1], [%[d]], #8\n\t"
                         "ldr     %[v], [%[s], %[ic]]\n\t"
                         "sxtab16 %[t0], %[o], %[v]\n\t"
                         "sxtab16 %[t1], %[o], %[v], ror #8\n\t"
                         "strd    %[t0], %[t1], [%[d]], #8\n\t"
                         "ldr     %[v], [%[s], %[ic2]]\n\t"
                         "sxtab16 %[t0], %[o], %[v]\n\t"
                         "sxtab16 %[t1], %[o], %[v], ror #8\n\t"
                         "strd    %[t0], %[t1], [%[d]], #8\n\t"
                         "adds    %[s], %[s], #4\n\t"
                         "subs    %[n], %[n], #1\n\t"
                         "bne     1b\n\t"
                         : [s] "+r"(src), [d] "+r"(dst), [n] "+r"(n), [v] "=&r"(v),
                           [t0] "=&r"(t0), [t1] "=&r"(t1)
                         : [o] "r"(off2), [ic] "r"(in_c), [ic2] "r"(ic2)
                         : "cc", "memory");
    } else {
        __asm__ volatile("1:\n\t"
                         "ldr     %[v], [%[s]]\n\t"
                         "sxtab16 %[t0], %[o], %[v]\n\t"
                         "sxtab16 %[t1], %[o], %[v], ror #8\n\t"
                         "strd    %[t0], %[t1], [%[d]], #8\n\t"
                         "ldr     %[v], [%[s], %[ic]]\n\t"
                         "sxtab16 %[t0], %[o], %[v]\n\t"
                         "sxtab16 %[t1], %[o], %[v], ror #8\n\t"
                         "strd    %[t0], %[t1], [%[d]], #8\n\t"
                         "adds    %[s], %[s], #4\n\t"
                         "subs    %[n], %[n], #1\n\t"
                         "bne     1b\n\t"
                         : [s] "+r"(src), [d] "+r"(dst), [n] "+r"(n), [v] "=&r"(v),
                           [t0] "=&r"(t0), [t1] "=&r"(t1)
                         : [o] "r"(off2), [ic] "r"(in_c)
                         : "cc", "memory");
    }
}
#define MCUS_PW_COLS 1
#else
#define MCUS_PW_COLS 0
#endif

#if MCUS_FAST_DSP
/*
 * All channel pairs of a pixel pair: the hot path (DSP, fast requantisation, activation range
 * [-128, 127]). col: the pair's columns; w: the weights; wt: the leftovers; dst: pixel 0 of the
 * output; ostride: bytes between the two pixels.
 */
static void pairs22(const int16_t *col, const int8_t *w, const int8_t *wt, const int32_t *bias,
                    const mcus_rq_t *rq, int8_t *dst, int32_t ostride, int32_t npairs,
                    int32_t nch, int32_t T)
{
    for (; npairs > 0; --npairs) {
        const uint32_t *x = (const uint32_t *)(const void *)col;
        int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0; /* [pixel][channel] */
        int32_t n = nch;
        if (bias) {
            a00 = a10 = bias[0];
            a01 = a11 = bias[1];
            bias += 2;
        }
#if defined(__OPTIMIZE__)
        if (n) {
            /* Two chunks (32 MACs) per iteration: 6 LDRD, 8 SXTB16, 16 SMLAD, SUBS, BNE.
             * n = nch / 2 iterations; an odd nch enters the first one at its second half. */
            uint32_t x0, x1, x2, x3, wa, wb, t;
#define MCUS_S8_CHUNK22                                                                           \
            "ldrd   %[x0], %[x1], [%[x]], #8\n\t"                                                 \
            "ldrd   %[x2], %[x3], [%[x]], #8\n\t"                                                 \
            "ldrd   %[wa], %[wb], [%[w]], #8\n\t"                                                 \
            "sxtb16 %[t], %[wa], ror #8\n\t"                                                      \
            "sxtb16 %[wa], %[wa]\n\t"                                                             \
            "smlad  %[a00], %[x0], %[wa], %[a00]\n\t"                                             \
            "smlad  %[a10], %[x2], %[wa], %[a10]\n\t"                                             \
            "smlad  %[a00], %[x1], %[t], %[a00]\n\t"                                              \
            "smlad  %[a10], %[x3], %[t], %[a10]\n\t"                                              \
            "sxtb16 %[t], %[wb], ror #8\n\t"                                                      \
            "sxtb16 %[wb], %[wb]\n\t"                                                             \
            "smlad  %[a01], %[x0], %[wb], %[a01]\n\t"                                             \
            "smlad  %[a11], %[x2], %[wb], %[a11]\n\t"                                             \
            "smlad  %[a01], %[x1], %[t], %[a01]\n\t"                                              \
            "smlad  %[a11], %[x3], %[t], %[a11]\n\t"
            __asm__ volatile(
                "lsrs   %[n], %[n], #1\n\t"
                "bcc    1f\n\t"
                "adds   %[n], %[n], #1\n\t"
                "b      2f\n\t"
                "1:\n\t" MCUS_S8_CHUNK22
                "2:\n\t" MCUS_S8_CHUNK22
                "subs   %[n], %[n], #1\n\t"
                "bne    1b\n\t"
                : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11),
                  [x] "+r"(x), [w] "+r"(w), [n] "+r"(n), [x0] "=&r"(x0), [x1] "=&r"(x1),
                  [x2] "=&r"(x2), [x3] "=&r"(x3), [wa] "=&r"(wa), [wb] "=&r"(wb), [t] "=&r"(t)
                :
                : "cc", "memory");
        }
#else
        for (; n > 0; --n) {
            const uint32_t *wp = (const uint32_t *)(const void *)w;
            const uint32_t wa0 = mcus_sxtb16(wp[0]), wa1 = mcus_sxtb16_ror8(wp[0]);
            const uint32_t wb0 = mcus_sxtb16(wp[1]), wb1 = mcus_sxtb16_ror8(wp[1]);
            a00 = mcus_smlad(x[1], wa1, mcus_smlad(x[0], wa0, a00));
            a10 = mcus_smlad(x[3], wa1, mcus_smlad(x[2], wa0, a10));
            a01 = mcus_smlad(x[1], wb1, mcus_smlad(x[0], wb0, a01));
            a11 = mcus_smlad(x[3], wb1, mcus_smlad(x[2], wb0, a11));
            x += 4;
            w += 8;
        }
#endif
        if (T) {
            const int16_t *xt = (const int16_t *)(const void *)x;
            int32_t t;
            for (t = 0; t < T; ++t) {
                const int32_t w0 = wt[t], w1 = wt[T + t];
                a00 += xt[t] * w0;
                a10 += xt[T + t] * w0;
                a01 += xt[t] * w1;
                a11 += xt[T + t] * w1;
            }
            wt += 2 * T;
        }
        {
            const mcus_rq_t *q0 = rq, *q1 = rq + 1;
            MCUS_RQ_OUT(dst[0], a00, q0);
            MCUS_RQ_OUT(dst[ostride], a10, q0);
            MCUS_RQ_OUT(dst[1], a01, q1);
            MCUS_RQ_OUT(dst[ostride + 1], a11, q1);
        }
        rq += 2;
        dst += 2;
    }
}

/* All channel pairs of one pixel (column layout of 2 pixels, pixel 0): odd pixels and Dense. */
static void pairs12(const int16_t *col, const int8_t *w, const int8_t *wt, const int32_t *bias,
                    const mcus_rq_t *rq, int8_t *dst, int32_t npairs, int32_t nch, int32_t T)
{
    for (; npairs > 0; --npairs) {
        const uint32_t *x = (const uint32_t *)(const void *)col;
        int32_t a0 = 0, a1 = 0;
        int32_t n = nch;
        if (bias) {
            a0 = bias[0];
            a1 = bias[1];
            bias += 2;
        }
#if defined(__OPTIMIZE__)
        if (n) {
            /* per chunk (8 MACs): 2 LDRD, 4 SXTB16, 4 SMLAD; the column stride is 2 pixels */
            uint32_t x0, x1, wa, wb, t;
#define MCUS_S8_CHUNK12                                                                           \
            "ldrd   %[x0], %[x1], [%[x]], #16\n\t"                                                \
            "ldrd   %[wa], %[wb], [%[w]], #8\n\t"                                                 \
            "sxtb16 %[t], %[wa], ror #8\n\t"                                                      \
            "sxtb16 %[wa], %[wa]\n\t"                                                             \
            "smlad  %[a0], %[x0], %[wa], %[a0]\n\t"                                               \
            "smlad  %[a0], %[x1], %[t], %[a0]\n\t"                                                \
            "sxtb16 %[t], %[wb], ror #8\n\t"                                                      \
            "sxtb16 %[wb], %[wb]\n\t"                                                             \
            "smlad  %[a1], %[x0], %[wb], %[a1]\n\t"                                               \
            "smlad  %[a1], %[x1], %[t], %[a1]\n\t"
            __asm__ volatile(
                "lsrs   %[n], %[n], #1\n\t"
                "bcc    1f\n\t"
                "adds   %[n], %[n], #1\n\t"
                "b      2f\n\t"
                "1:\n\t" MCUS_S8_CHUNK12
                "2:\n\t" MCUS_S8_CHUNK12
                "subs   %[n], %[n], #1\n\t"
                "bne    1b\n\t"
                : [a0] "+r"(a0), [a1] "+r"(a1), [x] "+r"(x), [w] "+r"(w), [n] "+r"(n),
                  [x0] "=&r"(x0), [x1] "=&r"(x1), [wa] "=&r"(wa), [wb] "=&r"(wb), [t] "=&r"(t)
                :
                : "cc", "memory");
        }
#else
        for (; n > 0; --n) {
            const uint32_t *wp = (const uint32_t *)(const void *)w;
            a0 = mcus_smlad(x[1], mcus_sxtb16_ror8(wp[0]), mcus_smlad(x[0], mcus_sxtb16(wp[0]), a0));
            a1 = mcus_smlad(x[1], mcus_sxtb16_ror8(wp[1]), mcus_smlad(x[0], mcus_sxtb16(wp[1]), a1));
            x += 4;
            w += 8;
        }
#endif
        if (T) {
            const int16_t *xt = (const int16_t *)(const void *)x;
            int32_t t;
            for (t = 0; t < T; ++t) {
                a0 += xt[t] * wt[t];
                a1 += xt[t] * wt[T + t];
            }
            wt += 2 * T;
        }
        {
            const mcus_rq_t *q0 = rq, *q1 = rq + 1;
            MCUS_RQ_OUT(dst[0], a0, q0);
            MCUS_RQ_OUT(dst[1], a1, q1);
        }
        rq += 2;
        dst += 2;
    }
}
#endif

#if MCUS_FAST_DSP && defined(__OPTIMIZE__) && MCUS_REQUANT_MODE == MCUS_REQUANT_TFLITE
/*
 * The GEMM hot path (K % 4 == 0, every channel of the block on the fast requantisation with the
 * zero point folded into its constant, z == 0; activation range [-128, 127]): one asm block per
 * pixel pair runs every channel pair of the block, with fixed registers and its loop state in a
 * frame of its own below sp (r7, the Thumb frame pointer, untouched):
 *
 *   r0-r3 accumulators [p0 c0, p1 c0, p0 c1, p1 c1]; r4 column walker; r5 weights (the block's
 *   channel pairs are consecutive in the layout, so r5 just runs on); r6 the block's constants
 *   (mcus_rq_t {m, s, lo, hi, z} with z replaced by the channel's bias, see gemm_rq); r8-r12, lr
 *   temporaries.
 *
 *   per channel pair:  bias into the 4 accumulators (LDR x 2, MOV x 2), column reset (LDR)
 *   per 2 chunks:      LDRD x 2 column (2 pixels), LDR w, SXTB16 x 2, SMLAD x 4, LDR w,
 *                      SXTB16 x 2, SMLAD x 4 (16 instructions for 16 MACs, twice), then
 *                      LDR end, CMP, BNE: 35 instructions for 32 MACs
 *   per output:        LDM {m, s, lo, hi, b} (or LDRD lo, hi for the second pixel), SMLAL, ASR,
 *                      SSAT: 4 instructions (mcus_rq_make's form, see mcus_fast.h)
 *   per channel pair:  BFI x 2 and STRH x 2 (the two channels of a pixel are adjacent), dst
 *                      update, end test: 9
 *
 * An odd chunk count enters the first iteration at its second chunk. The single-pixel variant
 * (odd widths, the last pixel) does 10 instructions per 8 MACs and 2 outputs per channel pair.
 */
typedef struct {
    const int16_t *col;   /*  0: the pixel pair's columns */
    const int16_t *xend;  /*  4: the columns' end: col + chunks * 4 * (np == 3 ? 3 : 2) */
    const mcus_rq_t *qend;/*  8: the constants after the last channel pair */
    int8_t *dst;          /* 12: pixel 0, first channel of the block */
    int32_t ostride;      /* 16: bytes from pixel 0 to pixel 1 of the output */
    int32_t unused;       /* 20 */
    const int8_t *w;      /* 24: the block's first channel pair */
    const mcus_rq_t *q;   /* 28: the block's constants */
} gemm_t;

#define GEMM_FRAME                                                                                \
    "sub     sp, sp, #24\n\t"                                                                     \
    "ldm     r0, {r1, r2, r3, r4, r8, r9}\n\t"                                                    \
    "stm     sp, {r1, r2, r3, r4, r8, r9}\n\t"                                                    \
    "ldrd    r5, r6, [r0, #24]\n\t"
#define GEMM_BIAS4                                                                                \
    "ldr     r0, [r6, #16]\n\t"                                                                   \
    "ldr     r2, [r6, #36]\n\t"                                                                   \
    "mov     r1, r0\n\t"                                                                          \
    "mov     r3, r2\n\t"                                                                          \
    "ldr     r4, [sp]\n\t"
#define GEMM_BIAS2                                                                                \
    "ldr     r0, [r6, #16]\n\t"                                                                   \
    "ldr     r2, [r6, #36]\n\t"                                                                   \
    "ldr     r4, [sp]\n\t"
/* one 4-k chunk of 2 pixels x 2 channels */
#define GEMM_CHUNK22                                                                              \
    "ldrd    r8, r9, [r4], #8\n\t"                                                                \
    "ldrd    r10, r11, [r4], #8\n\t"                                                              \
    "ldr     r12, [r5], #4\n\t"                                                                   \
    "sxtb16  lr, r12, ror #8\n\t"                                                                 \
    "sxtb16  r12, r12\n\t"                                                                        \
    "smlad   r0, r8, r12, r0\n\t"                                                                 \
    "smlad   r1, r10, r12, r1\n\t"                                                                \
    "smlad   r0, r9, lr, r0\n\t"                                                                  \
    "smlad   r1, r11, lr, r1\n\t"                                                                 \
    "ldr     r12, [r5], #4\n\t"                                                                   \
    "sxtb16  lr, r12, ror #8\n\t"                                                                 \
    "sxtb16  r12, r12\n\t"                                                                        \
    "smlad   r2, r8, r12, r2\n\t"                                                                 \
    "smlad   r3, r10, r12, r3\n\t"                                                                \
    "smlad   r2, r9, lr, r2\n\t"                                                                  \
    "smlad   r3, r11, lr, r3\n\t"
/* one 4-k chunk of 1 pixel (column stride: 2 pixels) x 2 channels */
#define GEMM_CHUNK12                                                                              \
    "ldrd    r8, r9, [r4], #16\n\t"                                                               \
    "ldrd    r10, r11, [r5], #8\n\t"                                                              \
    "sxtb16  r12, r10, ror #8\n\t"                                                                \
    "sxtb16  r10, r10\n\t"                                                                        \
    "smlad   r0, r8, r10, r0\n\t"                                                                 \
    "smlad   r0, r9, r12, r0\n\t"                                                                 \
    "sxtb16  r12, r11, ror #8\n\t"                                                                \
    "sxtb16  r11, r11\n\t"                                                                        \
    "smlad   r2, r8, r11, r2\n\t"                                                                 \
    "smlad   r2, r9, r12, r2\n\t"
#define GEMM_LOOP(CHUNK, ODD)                                                                     \
    ODD                                                                                           \
    "1:\n\t" CHUNK                                                                                \
    "2:\n\t" CHUNK                                                                                \
    "ldr     r8, [sp, #4]\n\t"                                                                    \
    "cmp     r4, r8\n\t"                                                                          \
    "bne     1b\n\t"
/* requantise A (first pixel: LDM of the channel's constants, r6 advanced) or B (the same
 * channel's second pixel: LDRD lo, hi again) */
#define GEMM_RQ_FIRST(A)                                                                          \
    "ldm     r6!, {r8, r9, r10, r11, r12}\n\t"                                                    \
    "smlal   r10, r11, " A ", r8\n\t"                                                             \
    "asr     r11, r11, r9\n\t"                                                                    \
    "ssat    " A ", #8, r11\n\t"
#define GEMM_RQ_AGAIN(B)                                                                          \
    "ldrd    r10, r11, [r6, #-12]\n\t"                                                            \
    "smlal   r10, r11, " B ", r8\n\t"                                                             \
    "asr     r11, r11, r9\n\t"                                                                    \
    "ssat    " B ", #8, r11\n\t"
#define GEMM_NEXT_PAIR                                                                            \
    "ldr     r8, [sp, #8]\n\t"                                                                    \
    "cmp     r6, r8\n\t"                                                                          \
    "bne     3b\n\t"                                                                              \
    "add     sp, sp, #24\n\t"


#define GEMM22(ODD)                                                                               \
    GEMM_FRAME "3:\n\t" GEMM_BIAS4 GEMM_LOOP(GEMM_CHUNK22, ODD)                                   \
    GEMM_RQ_FIRST("r0") GEMM_RQ_AGAIN("r1") GEMM_RQ_FIRST("r2") GEMM_RQ_AGAIN("r3")               \
    "bfi     r0, r2, #8, #8\n\t"                                                                  \
    "bfi     r1, r3, #8, #8\n\t"                                                                  \
    "ldrd    r8, r9, [sp, #12]\n\t"                                                               \
    "strh    r1, [r8, r9]\n\t"                                                                    \
    "strh    r0, [r8], #2\n\t"                                                                    \
    "str     r8, [sp, #12]\n\t" GEMM_NEXT_PAIR
#define GEMM12(ODD)                                                                               \
    GEMM_FRAME "3:\n\t" GEMM_BIAS2 GEMM_LOOP(GEMM_CHUNK12, ODD)                                   \
    GEMM_RQ_FIRST("r0") GEMM_RQ_FIRST("r2")                                                       \
    "bfi     r0, r2, #8, #8\n\t"                                                                  \
    "ldr     r8, [sp, #12]\n\t"                                                                   \
    "strh    r0, [r8], #2\n\t"                                                                    \
    "str     r8, [sp, #12]\n\t" GEMM_NEXT_PAIR

/*
 * 3 pixels x 2 channels: r0-r2 channel 0 and r3-r5 channel 1 of pixels 0-2, r6 the column walker,
 * r7 the weights (saved and restored around the block: the frame pointer of unoptimised Thumb
 * code, so never named as a clobber), r8-r9 a pixel's column words, r10-r12 and lr the two
 * channels' expanded weights, the constants' walker in the frame. Per chunk: LDRD weights,
 * SXTB16 x 4, LDRD x 3 columns, SMLAD x 12 = 20 instructions for 24 MACs.
 */
#define GEMM_CHUNK32                                                                              \
    "ldrd    r10, r12, [r7], #8\n\t"                                                              \
    "sxtb16  r11, r10, ror #8\n\t"                                                                \
    "sxtb16  r10, r10\n\t"                                                                        \
    "sxtb16  lr, r12, ror #8\n\t"                                                                 \
    "sxtb16  r12, r12\n\t"                                                                        \
    "ldrd    r8, r9, [r6], #8\n\t"                                                                \
    "smlad   r0, r8, r10, r0\n\t"                                                                 \
    "smlad   r3, r8, r12, r3\n\t"                                                                 \
    "smlad   r0, r9, r11, r0\n\t"                                                                 \
    "smlad   r3, r9, lr, r3\n\t"                                                                  \
    "ldrd    r8, r9, [r6], #8\n\t"                                                                \
    "smlad   r1, r8, r10, r1\n\t"                                                                 \
    "smlad   r4, r8, r12, r4\n\t"                                                                 \
    "smlad   r1, r9, r11, r1\n\t"                                                                 \
    "smlad   r4, r9, lr, r4\n\t"                                                                  \
    "ldrd    r8, r9, [r6], #8\n\t"                                                                \
    "smlad   r2, r8, r10, r2\n\t"                                                                 \
    "smlad   r5, r8, r12, r5\n\t"                                                                 \
    "smlad   r2, r9, r11, r2\n\t"                                                                 \
    "smlad   r5, r9, lr, r5\n\t"
#define GEMM_RQ3(A, B, C)                                                                         \
    "ldm     r6!, {r8, r9, r10, r11, r12}\n\t"                                                    \
    "smlal   r10, r11, " A ", r8\n\t"                                                             \
    "asr     r11, r11, r9\n\t"                                                                    \
    "ssat    " A ", #8, r11\n\t"                                                                  \
    "ldrd    r10, r11, [r6, #-12]\n\t"                                                            \
    "smlal   r10, r11, " B ", r8\n\t"                                                             \
    "asr     r11, r11, r9\n\t"                                                                    \
    "ssat    " B ", #8, r11\n\t"                                                                  \
    "ldrd    r10, r11, [r6, #-12]\n\t"                                                            \
    "smlal   r10, r11, " C ", r8\n\t"                                                             \
    "asr     r11, r11, r9\n\t"                                                                    \
    "ssat    " C ", #8, r11\n\t"
#define GEMM32(ODD)                                                                               \
    "push    {r7}\n\t"                                                                            \
    "sub     sp, sp, #32\n\t"                                                                     \
    "ldm     r0, {r1, r2, r3, r4, r5, r6, r8, r9}\n\t"                                            \
    "stm     sp, {r1, r2, r3, r4, r5, r6, r8, r9}\n\t"                                            \
    "mov     r7, r8\n\t"                                                                          \
    "3:\n\t"                                                                                      \
    "ldr     r8, [sp, #28]\n\t"                                                                   \
    "ldr     r0, [r8, #16]\n\t"                                                                   \
    "ldr     r3, [r8, #36]\n\t"                                                                   \
    "mov     r1, r0\n\t"                                                                          \
    "mov     r2, r0\n\t"                                                                          \
    "mov     r4, r3\n\t"                                                                          \
    "mov     r5, r3\n\t"                                                                          \
    "ldr     r6, [sp]\n\t"                                                                        \
    ODD                                                                                           \
    "1:\n\t" GEMM_CHUNK32                                                                         \
    "2:\n\t" GEMM_CHUNK32                                                                         \
    "ldr     r8, [sp, #4]\n\t"                                                                    \
    "cmp     r6, r8\n\t"                                                                          \
    "bne     1b\n\t"                                                                              \
    "ldr     r6, [sp, #28]\n\t"                                                                   \
    GEMM_RQ3("r0", "r1", "r2") GEMM_RQ3("r3", "r4", "r5")                                         \
    "str     r6, [sp, #28]\n\t"                                                                   \
    "bfi     r0, r3, #8, #8\n\t"                                                                  \
    "bfi     r1, r4, #8, #8\n\t"                                                                  \
    "bfi     r2, r5, #8, #8\n\t"                                                                  \
    "ldrd    r8, r9, [sp, #12]\n\t"                                                               \
    "strh    r0, [r8]\n\t"                                                                        \
    "add     r10, r8, r9\n\t"                                                                     \
    "strh    r1, [r10]\n\t"                                                                       \
    "strh    r2, [r10, r9]\n\t"                                                                   \
    "add     r8, r8, #2\n\t"                                                                      \
    "str     r8, [sp, #12]\n\t"                                                                   \
    "ldr     r8, [sp, #8]\n\t"                                                                    \
    "cmp     r6, r8\n\t"                                                                          \
    "bne     3b\n\t"                                                                              \
    "add     sp, sp, #32\n\t"                                                                     \
    "pop     {r7}\n\t"

/*
 * The GEMM path's constants of channels [c0, c0 + cb): mcus_rq_make's fast form with the zero
 * point folded (1 <= r = -shift <= 24, so z = 0), and z replaced by the channel's bias, except for
 * an odd last channel (tile_any reads its bias from p->bias and adds z). 0 (rq left partly
 * written) when some channel needs another form. About 12 instructions a channel, once a row.
 */
static int32_t gemm_rq(const mcus_fast_conv_s8_t *p, mcus_rq_t *rq, int32_t c0, int32_t cb)
{
    const uint32_t k = (uint32_t)(1 + 2 * p->output_offset);
    const int32_t *m = p->mult + c0, *b = p->bias ? p->bias + c0 : 0;
    const int8_t *sh = p->shift + c0;
    int32_t c;
    for (c = 0; c < cb; ++c) {
        const uint32_t s = (uint32_t)(-1 - sh[c]);          /* r - 1 */
        uint32_t t;
        if (s > 23u) {
            return 0;
        }
        t = k << s;
        rq[c].m = m[c];
        rq[c].s = (int32_t)s;
        rq[c].lo = 0x40000000u | (t << 31);
        rq[c].hi = (int32_t)t >> 1;
        rq[c].z = b ? b[c] : 0;
    }
    if (cb & 1) {
        rq[cb - 1].z = 0;
    }
    return 1;
}

/* The GEMM asm for np (1, 2 or 3) pixels whose columns are in t->col (np columns side by side for
 * np = 3, two for np = 1 and 2) and nch 4-k chunks; t is left as it was. */
static __attribute__((noinline)) void gemm_run(const gemm_t *t, int32_t np, int32_t nch)
{
    if (np == 3) {
        if (nch & 1) {
            MCUS_ASM_R0(GEMM32("b 2f\n\t"), t);
        } else {
            MCUS_ASM_R0(GEMM32(""), t);
        }
    } else if (np == 2) {
        if (nch & 1) {
            MCUS_ASM_R0(GEMM22("b 2f\n\t"), t);
        } else {
            MCUS_ASM_R0(GEMM22(""), t);
        }
    } else if (nch & 1) {
        MCUS_ASM_R0(GEMM12("b 2f\n\t"), t);
    } else {
        MCUS_ASM_R0(GEMM12(""), t);
    }
}

/* t for the channel pairs [0, 2 npairs) of a block: weights w, constants rq, columns col (xend and
 * dst: per call) */
static void gemm_init(gemm_t *t, const int16_t *col, const int8_t *w, const mcus_rq_t *rq,
                      int32_t ostride, int32_t npairs)
{
    t->col = col;
    t->xend = col;
    t->qend = rq + 2 * npairs;
    t->dst = 0;
    t->ostride = ostride;
    t->unused = 0;
    t->w = w;
    t->q = rq;
}

/*
 * A row whose kernel rows are all inside the input (rows_setup gave 1) on the GEMM path (the
 * block's state t, an even channel count): per 3 pixels (a last 2 or 1) cols_rows then gemm_run,
 * in a loop of its own, as pw_gemm_row.
 */
static __attribute__((noinline)) void rows_gemm_row(gemm_t *t, const mcus_fast_conv_s8_t *p,
                                                    const int8_t *in, rows_t *rt, int32_t oy,
                                                    int8_t *dst)
{
    const int32_t ow = p->out.w, oc = p->out.c;
    const int32_t nch = (p->g.kh * p->g.kw * p->in.c + p->kpad) >> 2;
    int16_t *const col = (int16_t *)t->col;
    int32_t ox = 0;
    while (ox < ow) {
        const int32_t np = ow - ox >= 3 ? 3 : ow - ox >= 2 ? 2 : 1;
        cols_rows(p, in, rt, oy, ox, col, np);
        t->xend = col + nch * (np == 3 ? 12 : 8);
        t->dst = dst;
        gemm_run(t, np, nch);
        dst += np * oc;
        ox += np;
    }
}

/* A dilated layer's row on the GEMM path (the block's state t, an even channel count): per 3
 * pixels (a last 2 or 1) its columns, then gemm_run, in a loop of its own, as rows_gemm_row.
 * rt: a window dilated along its row whose rows_setup gave 1 (cols_dilated), else NULL
 * (im2col_dilated_s8). */
static __attribute__((noinline)) void dilated_gemm_row(gemm_t *t, const mcus_fast_conv_s8_t *p,
                                                       const int8_t *in, rows_t *rt, int32_t oy,
                                                       int8_t *dst)
{
    const int32_t ow = p->out.w, oc = p->out.c;
    const int32_t nch = (p->g.kh * p->g.kw * p->in.c + p->kpad) >> 2;
    int16_t *const col = (int16_t *)t->col;
    int32_t ox = 0;
    while (ox < ow) {
        const int32_t np = ow - ox >= 3 ? 3 : ow - ox >= 2 ? 2 : 1;
        if (rt) {
            cols_dilated(p, in, rt, oy, ox, col, np);
        } else {
            im2col_dilated_s8(p, in, oy, ox, col, np, np == 3 ? 3 : 2);
        }
        t->xend = col + nch * (np == 3 ? 12 : 8);
        t->dst = dst;
        gemm_run(t, np, nch);
        dst += np * oc;
        ox += np;
    }
}

#if MCUS_PW_COLS
/*
 * A pointwise row on the GEMM path (the block's state t, an even channel count): per 3 pixels
 * (2 for the last pair) pw_cols then gemm_run, in a loop of its own (~25 instructions a call
 * beside them; inside mcus_fast_conv2d_s8, whose state GCC keeps on the stack, ~75). Returns the
 * pixels done: all but a last single one.
 */
static __attribute__((noinline)) int32_t pw_gemm_row(gemm_t *t, const int8_t *src, int32_t in_c,
                                                     int32_t ow, int32_t oc, int8_t *dst,
                                                     uint32_t off2)
{
    const int32_t nch = in_c >> 2;
    int16_t *const col = (int16_t *)t->col;
    int32_t ox = 0;
    while (ow - ox >= 2) {
        const int32_t np = ow - ox >= 3 ? 3 : 2;
        pw_cols(src, in_c, col, np, off2);
        t->xend = col + nch * (np == 3 ? 12 : 8);
        t->dst = dst;
        gemm_run(t, np, nch);
        src += np * in_c;
        dst += np * oc;
        ox += np;
    }
    return ox;
}
#endif
#define MCUS_CONV_GEMM 1
#else
#define MCUS_CONV_GEMM 0
#endif

/*
 * Any block: np pixels (of lnp in the column buffer) x nc channels (1 or 2; chunk stride 4 * nc
 * bytes), any requantisation. Compact C: remainders, slow requantisation, cores without DSP.
 */
static void tile_any(const int16_t *col, int32_t lnp, int32_t np, const int8_t *w, int32_t nc,
                     const int8_t *wt, int32_t nch, int32_t T, const int32_t *bias,
                     const mcus_rq_t *rq, int8_t *dst, int32_t ostride, int32_t amin, int32_t amax)
{
    int32_t i, pix, j, t;
    for (i = 0; i < nc; ++i) {
        for (pix = 0; pix < np; ++pix) {
            const uint32_t *x = (const uint32_t *)(const void *)(col + 4 * pix);
            const int8_t *wp = w + 4 * i;
            const int16_t *xt = col + nch * 4 * lnp + pix * T;
            int32_t acc = bias ? bias[i] : 0;
            for (j = nch; j > 0; --j) {
                const uint32_t wv = mcus_ld32(wp);
                acc = mcus_smlad(x[0], mcus_sxtb16(wv), acc);
                acc = mcus_smlad(x[1], mcus_sxtb16_ror8(wv), acc);
                x += 2 * lnp;
                wp += 4 * nc;
            }
            for (t = 0; t < T; ++t) {
                acc += xt[t] * wt[i * T + t];
            }
            dst[pix * ostride + i] = (int8_t)mcus_clamp_s8(mcus_rq_apply(&rq[i], acc), amin, amax);
        }
    }
}

/* Output channels [c0, c0 + cb) of np pixels whose columns are in col; rq: the block's constants;
 * fast: 0 compact C (tile_any), 1 pairs22/pairs12, 2 tile_any too (the GEMM path's channel pairs
 * are the caller's, gemm_run: here only a block's odd last channel). */
static void pixels_s8(const mcus_fast_conv_s8_t *p, const mcus_rq_t *rq, int32_t fast,
                      const int16_t *col, int32_t np, int8_t *dst, int32_t c0, int32_t cb)
{
    const int32_t oc = p->out.c;
    const int32_t K = p->g.kh * p->g.kw * p->in.c + p->kpad;
    const int32_t nch = K >> 2, T = K & 3;
    const int8_t *w = p->weights + c0 * nch * 4;
    const int8_t *wt = p->weights + nch * 4 * oc + c0 * T;
    const int32_t *bias = p->bias ? p->bias + c0 : 0;
    const int32_t amin = p->act_min, amax = p->act_max;
    const int32_t lnp = np == 3 ? 3 : 2;      /* columns side by side in col */
    int32_t c = 0;

    dst += c0;
#if MCUS_FAST_DSP
    if (fast == 1) {
        c = cb & ~1;
        if (np == 2) {
            pairs22(col, w, wt, bias, rq, dst, oc, cb >> 1, nch, T);
        } else {
            pairs12(col, w, wt, bias, rq, dst, cb >> 1, nch, T);
        }
        w += c * nch * 4;
        wt += c * T;
    }
#else
    (void)fast;
#endif
    for (; c + 1 < cb; c += 2) {
        tile_any(col, lnp, np, w, 2, wt, nch, T, bias ? bias + c : 0, rq + c, dst + c, oc, amin, amax);
        w += nch * 8;
        wt += 2 * T;
    }
    if (c < cb) {
        tile_any(col, lnp, np, w, 1, wt, nch, T, bias ? bias + c : 0, rq + c, dst + c, oc, amin, amax);
    }
}

/*
 * A row of one output pixel with int16 weights (p->w16; the generator's constants p->rq, an even
 * channel count): the rows of 1-D maps laid out as columns (converter mcusearch-lowmem), where
 * every call is one pixel. The column is built once (col_w16, or im2col_s8 at the padding), then
 * per group of 4 output channels (a last 2) and 4-k chunk: LDRD of the column's 2 words, LDM of
 * 2 channels' weight words (x 2) and 8 SMLAD: 11 instructions for 16 MACs, no SXTB16 (the
 * generator expanded the weights, at twice their flash), 2 chunks a loop pass (CMP, BNE). Per
 * channel the GEMM path's requantisation (SMLAL, ASR, SSAT) from p->rq, whose z is the bias.
 * Through mcus_fast_conv2d_s8 (GEMM12: 10 instructions on 8 MACs, rows_setup, the per-block
 * set-up) imu_conv1d's layers cost 1,409 and 1,714 instructions a row (480 and 768 MACs); here
 * 817 and 957 (qemu-m7), with the layout of 1-D maps as rows at 714 and 956 a pixel.
 */
static inline int8_t w16_out(const mcus_rq_t *q, int32_t acc)
{
    const int64_t c = (int64_t)(((uint64_t)(uint32_t)q->hi << 32) | q->lo);
    const int32_t v = (int32_t)(((int64_t)acc * q->m + c) >> 32) >> q->s;
#if MCUS_FAST_DSP
    return (int8_t)__ssat(v, 8);
#else
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
#endif
}

#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
/*
 * The groups of 4 channels in one asm block, its state in a frame below sp (as the GEMM path;
 * r7 untouched): r0-r3 accumulators, r4 column walker (16 bytes a chunk), r5 weights (the groups
 * are consecutive: r5 just runs on), r6 the column's end, then the constants' walker; r8-r9 a
 * chunk's column words, r10-r12 and lr 2 channels' weight words. Per group: the 4 biases (z),
 * the chunk loop, per channel LDM {m, s, lo, hi, z}, SMLAL, ASR, SSAT, then BFI x 3 and one STR
 * of the 4 outputs: ~33 instructions beside the chunks'.
 */
typedef struct {
    const uint32_t *col;  /*  0 */
    const uint32_t *xend; /*  4: col + 4 * chunks */
    const mcus_rq_t *q;   /*  8: the group's constants */
    int8_t *dst;          /* 12: the group's first output */
    const mcus_rq_t *qend;/* 16: the constants after the last group of 4 */
    const uint32_t *w;    /* 20: the weights */
} w16_t;

#define W16_CHUNK4                                                                                \
    "ldrd    r8, r9, [r4], #16\n\t"                                                               \
    "ldm     r5!, {r10, r11, r12, lr}\n\t"                                                        \
    "smlad   r0, r8, r10, r0\n\t"                                                                 \
    "smlad   r1, r8, r12, r1\n\t"                                                                 \
    "smlad   r0, r9, r11, r0\n\t"                                                                 \
    "smlad   r1, r9, lr, r1\n\t"                                                                  \
    "ldm     r5!, {r10, r11, r12, lr}\n\t"                                                        \
    "smlad   r2, r8, r10, r2\n\t"                                                                 \
    "smlad   r3, r8, r12, r3\n\t"                                                                 \
    "smlad   r2, r9, r11, r2\n\t"                                                                 \
    "smlad   r3, r9, lr, r3\n\t"
#define W16_RQ(A)                                                                                 \
    "ldm     r6!, {r8, r9, r10, r11, r12}\n\t"                                                    \
    "smlal   r10, r11, " A ", r8\n\t"                                                             \
    "asr     r11, r11, r9\n\t"                                                                    \
    "ssat    " A ", #8, r11\n\t"
#define W16_GROUPS(ODD)                                                                           \
    "sub     sp, sp, #24\n\t"                                                                     \
    "ldm     r0, {r1, r2, r3, r4, r5}\n\t"                                                        \
    "stm     sp, {r1, r2, r3, r4, r5}\n\t"                                                        \
    "ldr     r5, [r0, #20]\n\t"                                                                   \
    "3:\n\t"                                                                                      \
    "ldr     r6, [sp, #8]\n\t"                                                                    \
    "ldr     r0, [r6, #16]\n\t"                                                                   \
    "ldr     r1, [r6, #36]\n\t"                                                                   \
    "ldr     r2, [r6, #56]\n\t"                                                                   \
    "ldr     r3, [r6, #76]\n\t"                                                                   \
    "ldrd    r4, r6, [sp]\n\t"                                                                    \
    ODD                                                                                           \
    "1:\n\t" W16_CHUNK4 "2:\n\t" W16_CHUNK4                                                       \
    "cmp     r4, r6\n\t"                                                                          \
    "bne     1b\n\t"                                                                              \
    "ldr     r6, [sp, #8]\n\t"                                                                    \
    W16_RQ("r0") W16_RQ("r1") W16_RQ("r2") W16_RQ("r3")                                           \
    "str     r6, [sp, #8]\n\t"                                                                    \
    "bfi     r0, r1, #8, #8\n\t"                                                                  \
    "bfi     r0, r2, #16, #8\n\t"                                                                 \
    "bfi     r0, r3, #24, #8\n\t"                                                                 \
    "ldr     r8, [sp, #12]\n\t"                                                                   \
    "str     r0, [r8], #4\n\t"                                                                    \
    "str     r8, [sp, #12]\n\t"                                                                   \
    "ldr     r8, [sp, #16]\n\t"                                                                   \
    "cmp     r6, r8\n\t"                                                                          \
    "bne     3b\n\t"                                                                              \
    "add     sp, sp, #24\n\t"
#endif

/*
 * conv_w16's column when the window lies inside the input (else 0: im2col_s8): per kernel row its
 * rowb / 4 words (LDR, SXTAB16 x 2, STRD), its rowb % 4 leftover bytes gathered, then the
 * leftovers and the kpad zero points expanded as words: the generator's K order (k_order). The
 * ring's row walks on without a division a row (rows_setup's ~90 instructions a call).
 */
static int32_t col_w16(const mcus_fast_conv_s8_t *p, const int8_t *in, int32_t oy, int16_t *col)
{
    const int32_t in_c = p->in.c, kh = p->g.kh, rowb = p->g.kw * in_c, m4 = rowb >> 2;
    const int32_t lw = rowb & 3, y0 = oy * p->g.sh - p->g.pt, x0 = -p->g.pl;
    const int32_t rows = p->in.rows, stride = p->in.w * in_c;
    const uint32_t off2 = (uint32_t)(uint16_t)p->input_offset * 0x00010001u;
    uint32_t *d = (uint32_t *)(void *)col;
    uint32_t left[(MCUS_ROWS_MAX * 3 + 3 + 3) / 4 + 1];  /* + 1: kpad writes 3 bytes */
    int8_t *lb = (int8_t *)left;
    int32_t ky, r;
    const int8_t *row;
    if (y0 < 0 || y0 + kh > p->in.h || x0 < 0 || x0 + p->g.kw > p->in.w || kh > MCUS_ROWS_MAX) {
        return 0;
    }
    r = (int32_t)(((uint32_t)y0 + MCUS_LAG(&p->in)) % (uint32_t)rows);
    row = in + r * stride + x0 * in_c;
#pragma GCC unroll 1 /* kh <= MCUS_ROWS_MAX: GCC would peel all 16 (~6 KiB) */
    for (ky = 0; ky < kh; ++ky) {
        const int8_t *src = row + 4 * m4;
        d = col_copy(d, row, m4, 2, off2);
        if (lw) {               /* 1 to 3 bytes (not a loop: GCC would call memcpy) */
            lb[0] = src[0];
            if (lw > 1) {
                lb[1] = src[1];
                if (lw > 2) {
                    lb[2] = src[2];
                }
            }
            lb += lw;
        }
        if (++r == rows) {
            r = 0;
            row = in + x0 * in_c;
        } else {
            row += stride;
        }
    }
    if (lw | p->kpad) {
        const int8_t zp = (int8_t)-p->input_offset;
        if (p->kpad) {          /* 1 to 3 zero points */
            lb[0] = zp;
            lb[1] = zp;
            lb[2] = zp;
        }
        (void)col_copy(d, (const int8_t *)left, (kh * lw + p->kpad) >> 2, 2, off2);
    }
    return 1;
}

MCUS_INLINE void conv_w16(const mcus_fast_conv_s8_t *p, const int8_t *in, int32_t oy, int16_t *col,
                          int8_t *dst)
{
    const int32_t oc = p->out.c, nch = (p->g.kh * p->g.kw * p->in.c + p->kpad) >> 2;
    const uint32_t *x = (const uint32_t *)(const void *)col;  /* chunk j: x[4 j], x[4 j + 1] */
    const uint32_t *w = (const uint32_t *)(const void *)p->w16;
    const mcus_rq_t *q = p->rq;
    int32_t c = 0, g;
    if (!col_w16(p, in, oy, col)) {
        im2col_s8(p, in, oy, 0, col, 2, 0);      /* a window reaching into the padding */
    }
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    c = oc & ~3;
    if (c) {
        const w16_t t = {x, x + 4 * nch, q, dst, q + c, w};
        if (nch & 1) {
            MCUS_ASM_R0(W16_GROUPS("b       2f\n\t"), &t);
        } else {
            MCUS_ASM_R0(W16_GROUPS(""), &t);
        }
        w += 2 * nch * c;
        q += c;
        dst += c;
    }
#endif
    for (; c < oc; c += g, q += g, dst += g) {  /* portable C; on DSP cores a last 2 channels */
        int32_t a[4], i, j;
        g = oc - c >= 4 ? 4 : 2;
        for (i = 0; i < g; ++i) {
            a[i] = q[i].z;
        }
        for (j = 0; j < nch; ++j) {
            for (i = 0; i < g; ++i, w += 2) {
                a[i] = mcus_smlad(x[4 * j], w[0], a[i]);
                a[i] = mcus_smlad(x[4 * j + 1], w[1], a[i]);
            }
        }
        for (i = 0; i < g; ++i) {
            dst[i] = w16_out(&q[i], a[i]);
        }
    }
}
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
#undef W16_CHUNK4
#undef W16_RQ
#undef W16_GROUPS
#endif

/* A dilated layer's functions, reached through p->dil only (see mcus_fast.h). */
struct mcus_conv_dil {
    void (*im2col)(const mcus_fast_conv_s8_t *p, const int8_t *in, int32_t oy, int32_t ox,
                   int16_t *col, int32_t np, int32_t lnp);
#if MCUS_CONV_GEMM
    void (*gemm_row)(gemm_t *t, const mcus_fast_conv_s8_t *p, const int8_t *in, rows_t *rt,
                     int32_t oy, int8_t *dst);
#endif
};

const struct mcus_conv_dil mcus_conv2d_s8_dilated = {
    im2col_dilated_s8,
#if MCUS_CONV_GEMM
    dilated_gemm_row,
#endif
};

/*
 * Output channels in blocks of at most MCUS_RQ_BLOCK: the block's requantisation constants are
 * computed once per row into io->scratch (20 bytes a channel; or read from p->rq, which the
 * generator stores for layers of narrow rows), then every pixel pair's column is
 * built and multiplied by the block's weights. A layer with more channels rebuilds the columns
 * per block (K / 4 x 6 instructions a pixel, against 2 K MACs a channel pair) instead of keeping
 * 20 bytes of constants for every output channel.
 */
void mcus_fast_conv2d_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_conv_s8_t *p = (const mcus_fast_conv_s8_t *)params;
    const int8_t *in = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
    int8_t *out = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 1);
    const int32_t ow = p->out.w, oc = p->out.c;
    const int32_t block = oc > MCUS_RQ_BLOCK ? MCUS_RQ_BLOCK : oc;
    const int32_t dilated = p->dil != 0;        /* p->dil's gemm_row, im2col */
    const int32_t K = p->g.kh * p->g.kw * p->in.c + p->kpad;
    mcus_rq_t *rq = (mcus_rq_t *)io->scratch;
    int16_t *col = (int16_t *)(void *)(rq + block);
    int32_t c0;
#if MCUS_PW_COLS
    /* a pointwise layer (1 x 1, stride 1, unpadded, in_c % 4 == 0): pw_cols builds the columns */
    const int pw = p->g.kh == 1 && p->g.kw == 1 && p->g.sw == 1 && p->g.pl == 0 && p->g.pt == 0
                   && (p->in.c & 3) == 0 && p->kpad == 0 && p->in.w == ow;
    const int8_t *pw_row = pw ? (const int8_t *)mcus_row_ptr(&p->in, (void *)in, oy * p->g.sh, 1) : 0;
    const uint32_t pw_off2 = (uint32_t)(uint16_t)p->input_offset * 0x00010001u;
#endif

#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
    /* every kernel row inside the input (not a pointwise layer: pw_cols): the rows' pointers
     * once a row, for im2col_rows_s8 */
    rows_t rt;
    const int32_t rows_ok = (MCUS_PW_COLS && pw) || dilated ? 0 : rows_setup(p, in, oy, &rt);
    const int32_t rows_dil = dilated ? rows_setup(p, in, oy, &rt) : 0;   /* cols_dilated */
#endif

    for (c0 = 0; c0 < oc; c0 += block) {
        const int32_t cb = oc - c0 < block ? oc - c0 : block;
        /* the hot path needs the fast requantisation for every channel and no clamp beyond int8 */
        int32_t c, ox, np, fast = MCUS_FAST_DSP && p->act_min == -128 && p->act_max == 127;
        const mcus_rq_t *q = rq;
#if MCUS_CONV_GEMM
        if (fast && (K & 3) == 0 && K >= 4 && p->rq) {
            fast = 2;                 /* the generator's constants: none computed per row */
            q = p->rq + c0;
        } else if (fast && (K & 3) == 0 && K >= 4 && gemm_rq(p, rq, c0, cb)) {
            fast = 2;
        } else
#else
        (void)K;
#endif
        {
            for (c = 0; c < cb; ++c) {
                rq[c] = mcus_rq_make(p->mult[c0 + c], p->shift[c0 + c], p->output_offset);
                fast &= rq[c].s >= 0;
            }
        }
#if MCUS_CONV_GEMM
        /* the GEMM path's channel pairs straight from here (pixels_s8's set-up, ~90 instructions,
         * was a third of a 4 x 2 channel-pair call at K = 8): its state once per block */
        gemm_t gt;
        const int32_t gemm = fast == 2 && cb >= 2;
        if (gemm) {
            gemm_init(&gt, col, p->weights + c0 * K, q, oc, cb >> 1);
        }
#endif
        ox = 0;
#if MCUS_CONV_GEMM && MCUS_PW_COLS
        if (gemm && pw && (cb & 1) == 0) {
            ox = pw_gemm_row(&gt, pw_row, p->in.c, ow, oc, out + c0, pw_off2);
        }
#endif
#if MCUS_CONV_GEMM
        if (gemm && rows_ok && (cb & 1) == 0) {
            rows_gemm_row(&gt, p, in, &rt, oy, out + c0);
            continue;
        }
        if (gemm && dilated && (cb & 1) == 0) {
            p->dil->gemm_row(&gt, p, in, rows_dil ? &rt : 0, oy, out + c0);
            continue;
        }
#endif
        for (; ox < ow; ox += np) {
            /* pixel triples on the GEMM path, else pairs; a last pair or single pixel */
            np = fast == 2 && ow - ox >= 3 ? 3 : ow - ox >= 2 ? 2 : 1;
#if MCUS_PW_COLS
            if (pw && np > 1) {
                pw_cols(pw_row + ox * p->in.c, p->in.c, col, np, pw_off2);
            } else
#endif
#if MCUS_FAST_DSP && defined(__OPTIMIZE__)
            if (rows_ok) {
                cols_rows(p, in, &rt, oy, ox, col, np);
            } else
#endif
            if (dilated) {
                p->dil->im2col(p, in, oy, ox, col, np, np == 3 ? 3 : 2);
            } else {
                for (c = 0; c < np; ++c) {
                    im2col_s8(p, in, oy, ox + c, col, np == 3 ? 3 : 2, c);
                }
            }
#if MCUS_CONV_GEMM
            if (gemm) {
                gt.xend = col + (K >> 2) * (np == 3 ? 12 : 8);
                gt.dst = out + ox * oc + c0;
                gemm_run(&gt, np, K >> 2);
                if (cb & 1) {            /* the block's odd last channel */
                    pixels_s8(p, q + cb - 1, fast, col, np, out + ox * oc, c0 + cb - 1, 1);
                }
                continue;
            }
#endif
            pixels_s8(p, q, fast, col, np, out + ox * oc, c0, cb);
        }
    }
}

/* The generator's entry for rows of one pixel with int16 weights (p->w16 set; conv_w16): the
 * set-up above, ~80 instructions a call with the GEMM path's, is not paid. */
void mcus_fast_conv2d_s8_w16(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_conv_s8_t *p = (const mcus_fast_conv_s8_t *)params;
#if MCUS_REQUANT_MODE == MCUS_REQUANT_TFLITE
    conv_w16(p, p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in, oy,
             (int16_t *)io->scratch,
             (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 1));
#else
    (void)p;
    (void)conv_w16;
    mcus_fast_conv2d_s8(params, io, oy);   /* p->rq's constants assume TFLite's rounding */
#endif
}
