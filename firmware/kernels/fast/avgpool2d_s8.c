/*
 * int8 2-D average pooling, one output row per call: per output pixel the sums over the window's
 * cells inside the input, then the mean rounded half away from zero (mcus_average_s8, TFLite's
 * AVERAGE_POOL_2D: (sum + count/2) / count for sum > 0, (sum - count/2) / count otherwise) and
 * the clamp. The output shares the input's scale and zero point.
 *
 * Portable path (the host, Cortex-M0+/M3; with DSP also: fewer than 4 channels, pools of more
 * than 255 cells or taller than 16): c int32 sums in io->scratch, a contiguous pass over the
 * channels per cell. Inner loop: 6 instructions per input byte (LDR, LDRSB, ADD, STR, CMP, BNE),
 * 24 per cell and 4 channels.
 *
 * DSP path (Cortex-M4/M7/M33, avg_dsp), 4 channels (one word) at a time; for c % 4 != 0 the last
 * group is [c - 4, c), overlapping the one before (outputs written twice, the same values). The
 * pixels whose windows cover the same columns - all interior pixels; each edge pixel alone - are
 * one run, avg_run, one asm block:
 *
 *   for each output pixel:             se = so = 0 (int16 pair sums of channels (0,2), (1,3)): 3
 *     for each valid window row:       row pointer + window offset, index (5 with the loop)
 *       for each valid cell:           LDR, SXTAB16 se, SXTAB16 ROR 8 so, ADDS (index += c,
 *                                      counts up to 0), BNE
 *                                      = 5 instructions per cell and 4 channels (1.25 per byte)
 *     rounding of the 4 sums:          SADD16, SSUB16, SEL per pair (6)
 *     4 x (SXTH or ASR #16, SDIV), BFI x 3, clamp SSUB8/SEL x 2, STR, pointers, loop (22)
 *
 * Counts read off arm-none-eabi-objdump -d (-mcpu=cortex-m7 -mthumb -mfloat-abi=hard
 * -mfpu=fpv5-d16 -O3). A 2 x 2 pool: 61 instructions per pixel and 4 channels (16 input bytes),
 * the portable path ~200. int16 sums are enough: a sum of count int8 values is in
 * [-128 count, 127 count], and sum -/+ count/2 in [-32767, 32767] when count <= 255. Rounding:
 * with h = count/2, SSUB16 sum - h sets GE where sum >= h and SEL takes sum + h there, sum - h
 * elsewhere; mcus_average_s8 takes sum + h for sum > 0. The two differ only for 0 < sum < h, where
 * (sum + h) / count and (sum - h) / count are both 0 (|sum -/+ h| < count). SDIV truncates toward
 * zero like C's division, so each output is exactly mcus_average_s8(sum, count) (also checked
 * exhaustively: every count 1..255, every reachable sum). GCC 12 does not fold ROR #8 into
 * SXTAB16 and spills around the loop: inline assembly (fixed registers, r7 - the Thumb frame
 * pointer - untouched), with a C equivalent for builds without __OPTIMIZE__.
 */
#include "mcus_fast.h"

/* Output row oy, sums in sum (io->scratch). */
static inline __attribute__((always_inline)) void
avg_plain(const mcus_fast_avgpool_s8_t *p, const int8_t *in, int8_t *out, int32_t *sum, int32_t oy)
{
    const int32_t in_w = p->in.w, ch = p->in.c, ow = p->out.w;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const int32_t amin = p->act_min, amax = p->act_max;
    int32_t iy0 = y0 < 0 ? 0 : y0, iy1 = y0 + p->g.kh, ox, c;

    iy1 = iy1 > p->in.h ? p->in.h : iy1;
    for (ox = 0; ox < ow; ++ox) {
        int32_t x0 = ox * p->g.sw - p->g.pl, x1 = x0 + p->g.kw, iy, x, count;
        int8_t *dst = out + ox * ch;
        x0 = x0 < 0 ? 0 : x0;
        x1 = x1 > in_w ? in_w : x1;
        count = (iy1 - iy0) * (x1 - x0);
        for (c = 0; c < ch; ++c) {
            sum[c] = 0;
        }
        for (iy = iy0; iy < iy1; ++iy) {
            const int8_t *row = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, iy, 1);
            for (x = x0; x < x1; ++x) {
                const int8_t *src = row + x * ch;
                for (c = 0; c < ch; ++c) {
                    sum[c] += src[c];
                }
            }
        }
        for (c = 0; c < ch; ++c) {
            int32_t v = count > 0 ? mcus_average_s8(sum[c], count) : 0;
            v = v < amin ? amin : v;
            dst[c] = (int8_t)(v > amax ? amax : v);
        }
    }
}

#if MCUS_FAST_DSP

#define AVG_MAX_ROWS 16 /* taller pools take the portable path */

/* A run of output pixels of one 4-channel group whose windows cover the same columns. */
typedef struct {
    const int8_t *const *rows;  /*  0: the valid rows' pointers */
    int32_t step;               /*  4: sw * ch */
    int8_t *dend;               /*  8: the output after the run's last pixel */
    uint32_t lim[2];            /* 12: act_min, act_max in every byte */
    int32_t pad;                /* 20 */
    int32_t ioff;               /* 24: the first pixel's window end within a row (bytes) */
    int32_t i0;                 /* 28: -(valid columns) * ch */
    int32_t ch;                 /* 32 */
    const int8_t *const *re;    /* 36: rows + nr */
    int8_t *dst;                /* 40: the first pixel's output (channel c) */
    int32_t count;              /* 44: cells per window, 1..255 */
    uint32_t h2;                /* 48: count / 2 in both halfwords */
} avg_run_t;

#if defined(__OPTIMIZE__)
/*
 * One asm block with fixed registers (r7, the Thumb frame pointer, is left alone): fields 0..23
 * go to a frame of its own below sp, the others to r6, r8-r12, lr (LDM); r0 = se, r1 = so (the
 * sums of channels (0, 2) and (1, 3) as int16 pairs), r2 input word, r3 input row, r4 index,
 * r5 row-pointer walker. Per pixel: 2 MOV; per valid row 5 (LDR row, ADD, MOV, ..., CMP, BNE);
 * per cell 5 (LDR, SXTAB16, SXTAB16 ROR 8, ADDS, BNE); the rounding of the 4 sums at once, 6
 * (SADD16 sum + count/2, SSUB16 sum - count/2 setting GE where sum >= count/2, SEL, per pair);
 * SXTH/ASR and SDIV per output (8); BFI x 3; the clamp, SSUB8/SEL x 2 (5); STR and the pointer
 * updates (7).
 */
static inline __attribute__((always_inline)) void avg_run(const avg_run_t *t)
{
    register const avg_run_t *r0 __asm__("r0") = t;
    __asm__ volatile(
        "sub     sp, sp, #24\n\t"
        "ldm     r0, {r1-r6}\n\t"               /* fields 0..23 */
        "stm     sp, {r1-r6}\n\t"
        "add     r0, r0, #24\n\t"
        "ldm     r0, {r6, r8-r12, lr}\n\t"      /* ioff, i0, ch, re, dst, count, h2 */
        "3:\n\t"                                 /* pixel */
        "mov     r0, #0\n\t"
        "mov     r1, #0\n\t"
        "ldr     r5, [sp]\n\t"                  /* rows */
        "2:\n\t"                                 /* window row */
        "ldr     r3, [r5], #4\n\t"
        "add     r3, r3, r6\n\t"
        "mov     r4, r8\n\t"
        "1:\n\t"                                 /* cell */
        "ldr     r2, [r3, r4]\n\t"
        "sxtab16 r0, r0, r2\n\t"
        "sxtab16 r1, r1, r2, ror #8\n\t"
        "adds    r4, r4, r9\n\t"
        "bne     1b\n\t"
        "cmp     r5, r10\n\t"
        "bne     2b\n\t"
        "sadd16  r2, r0, lr\n\t"                /* round: sum + h or sum - h */
        "ssub16  r3, r0, lr\n\t"
        "sel     r0, r2, r3\n\t"
        "sadd16  r2, r1, lr\n\t"
        "ssub16  r3, r1, lr\n\t"
        "sel     r1, r2, r3\n\t"
        "sxth    r2, r0\n\t"                    /* / count, truncating */
        "sdiv    r2, r2, r12\n\t"
        "sxth    r3, r1\n\t"
        "sdiv    r3, r3, r12\n\t"
        "asr     r0, r0, #16\n\t"
        "sdiv    r0, r0, r12\n\t"
        "asr     r1, r1, #16\n\t"
        "sdiv    r1, r1, r12\n\t"
        "bfi     r2, r3, #8, #8\n\t"
        "bfi     r2, r0, #16, #8\n\t"
        "bfi     r2, r1, #24, #8\n\t"
        "ldrd    r3, r4, [sp, #12]\n\t"         /* clamp: lo4, hi4 */
        "ssub8   r0, r2, r3\n\t"
        "sel     r2, r2, r3\n\t"
        "ssub8   r0, r4, r2\n\t"
        "sel     r2, r2, r4\n\t"
        "str     r2, [r11]\n\t"
        "add     r11, r11, r9\n\t"
        "ldrd    r3, r4, [sp, #4]\n\t"          /* step, dend */
        "add     r6, r6, r3\n\t"
        "cmp     r11, r4\n\t"
        "bne     3b\n\t"
        "add     sp, sp, #24\n\t"
        : "+r"(r0)
        :
        : "r1", "r2", "r3", "r4", "r5", "r6", "r8", "r9", "r10", "r11", "r12", "lr", "cc", "memory");
}
#else
static void avg_run(const avg_run_t *t)
{
    int8_t *dst = t->dst;
    int32_t ioff = t->ioff;
    for (; dst != t->dend; ioff += t->step, dst += t->ch) {
        const int8_t *const *rp = t->rows;
        uint32_t se = 0, so = 0, v;
        do {
            const int8_t *s = *rp++ + ioff;
            int32_t i = t->i0;
            do {
                const uint32_t x = mcus_ld32(s + i);
                se = mcus_sxtab16(se, x);
                so = mcus_sxtab16_ror8(so, x);
                i += t->ch;
            } while (i != 0);
        } while (rp != t->re);
        {
            /* sum + h where sum >= h, else sum - h (for 0 < sum < h both quotients are 0) */
            const uint32_t pe = __sadd16(se, t->h2), ne = __ssub16(se, t->h2);
            se = __sel(pe, ne);
        }
        {
            const uint32_t po = __sadd16(so, t->h2), no = __ssub16(so, t->h2);
            so = __sel(po, no);
        }
        v = (uint32_t)(uint8_t)((int32_t)(int16_t)se / t->count)
            | (uint32_t)(uint8_t)((int32_t)(int16_t)so / t->count) << 8
            | (uint32_t)(uint8_t)(((int32_t)se >> 16) / t->count) << 16
            | (uint32_t)(uint8_t)(((int32_t)so >> 16) / t->count) << 24;
        (void)__ssub8(v, t->lim[0]);
        v = __sel(v, t->lim[0]);
        (void)__ssub8(t->lim[1], v);
        v = __sel(v, t->lim[1]);
        mcus_st32(dst, v);
    }
}
#endif

/*
 * Output row oy, 4 channels at a time (in.c >= 4, pools of at most 255 cells): groups [0, 4),
 * [4, 8), ..., and for in.c % 4 != 0 a last group [in.c - 4, in.c) that overlaps the one before
 * it (those outputs are written twice, with the same values). Per group, the interior pixels
 * (windows inside the input columns) are one avg_run, each other pixel its own.
 */
static __attribute__((noinline)) void avg_dsp(const mcus_fast_avgpool_s8_t *p, const int8_t *in,
                                              int8_t *out, int32_t oy)
{
    const int32_t in_w = p->in.w, ch = p->in.c, ow = p->out.w;
    const int32_t kw = p->g.kw, sw = p->g.sw, pl = p->g.pl;
    const int32_t y0 = oy * p->g.sh - p->g.pt;
    const int32_t iy0 = y0 < 0 ? 0 : y0;
    const int32_t iy1 = y0 + p->g.kh > p->in.h ? p->in.h : y0 + p->g.kh;
    const int32_t nr = iy1 > iy0 ? iy1 - iy0 : 0;
    /* interior pixels [oxa, oxb): ox * sw - pl >= 0 and ox * sw - pl + kw <= in_w */
    const int32_t oxa0 = (pl + sw - 1) / sw, oxa = oxa0 < ow ? oxa0 : ow;
    const int32_t oxb0 = in_w - kw + pl >= 0 ? (in_w - kw + pl) / sw + 1 : 0;
    const int32_t oxb = oxb0 > ow ? ow : oxb0 < oxa ? oxa : oxb0;
    const int8_t *rows[AVG_MAX_ROWS];
    avg_run_t t;
    int32_t c, r, ox;

#pragma GCC unroll 1
    for (r = 0; r < nr; ++r) {
        rows[r] = (const int8_t *)mcus_row_ptr(&p->in, (void *)in, iy0 + r, 1);
    }
    t.rows = rows;
    t.step = sw * ch;
    t.lim[0] = (uint32_t)(uint8_t)p->act_min * 0x01010101u;
    t.lim[1] = (uint32_t)(uint8_t)p->act_max * 0x01010101u;
    t.pad = 0;
    t.ch = ch;
    t.re = rows + nr;
    for (c = 0;; c += 4) {
        if (c + 4 > ch) {
            c = ch - 4; /* the last, overlapping group */
        }
        for (ox = 0; ox < ow; ++ox) {
            const int32_t x0 = ox * sw - pl;
            const int32_t xa = x0 < 0 ? 0 : x0;
            const int32_t xb = x0 + kw > in_w ? in_w : x0 + kw;
            const int32_t count = nr * (xb - xa);
            int8_t *dst = out + ox * ch + c;
            if (count <= 0) {
                /* no cell inside the input: 0, clamped */
                int32_t v = 0 < p->act_min ? p->act_min : 0 > p->act_max ? p->act_max : 0;
                dst[0] = dst[1] = dst[2] = dst[3] = (int8_t)v;
                continue;
            }
            t.ioff = xb * ch + c;
            t.i0 = (xa - xb) * ch;
            t.dst = dst;
            t.count = count;
            t.h2 = (uint32_t)(count >> 1) * 0x00010001u;
            if (ox == oxa && oxa < oxb) {
                ox = oxb - 1; /* the interior pixels: one run */
            }
            t.dend = out + (ox + 1) * ch + c;
            avg_run(&t);
        }
        if (c + 4 >= ch) {
            break;
        }
    }
}
#endif /* MCUS_FAST_DSP */

void mcus_fast_avgpool2d_s8(const void *params, const mcus_io_t *io, int32_t oy)
{
    const mcus_fast_avgpool_s8_t *p = (const mcus_fast_avgpool_s8_t *)params;
    const int8_t *in = p->in.base ? (const int8_t *)p->in.base : (const int8_t *)io->in;
    int8_t *out = (int8_t *)mcus_row_ptr(&p->out, p->out.base ? p->out.base : io->out, oy, 1);

#if MCUS_FAST_DSP
    if (p->in.c >= 4 && p->g.kh <= AVG_MAX_ROWS && p->g.kh * p->g.kw <= 255) {
        avg_dsp(p, in, out, oy);
        return;
    }
#endif
    avg_plain(p, in, out, (int32_t *)io->scratch, oy);
}
