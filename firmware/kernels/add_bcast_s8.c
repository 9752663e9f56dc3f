/* Element-wise add (and subtract: the second input's multiplier negated) of two int8 tensors with
 * broadcasting, with TFLite ADD's input and output rescaling, run by run (mcus_binary_s8_runs): an
 * operand broadcast along a run is rescaled once per run. With TFLite's left shift of 20 the three
 * rescalings are mcus_small_mbqm (bit-exact); else mcus_add_s8_one's parts. A per-channel operand
 * (mcus_bcast_periodic) takes one loop over the whole output (add_periodic; the other operand's
 * rescaled values from the generator's table p->tx where it gives one), same-shape operands
 * mcus_add_s8_fast (mcus_add_fast.h). */
#include "mcus_kernels.h"
#include "mcus_add_fast.h"

#define SMALL_MAX_LEFT_SHIFT 20      /* (a + offset) << (left_shift + 1) < 2^30: sums fit SMMULR */

typedef struct {
    mcus_add_s8_params_t p;
    mcus_small_mbqm_t in, skip, out;           /* out includes the output offset */
} add_consts_t;

static int32_t input(const void *q, int32_t a)
{
    return mcus_add_s8_input(&((const add_consts_t *)q)->p, a);
}

static int32_t skip(const void *q, int32_t b)
{
    return mcus_add_s8_skip(&((const add_consts_t *)q)->p, b);
}

static int32_t sum(const void *q, int32_t sa, int32_t sb)
{
    return mcus_add_s8_sum(&((const add_consts_t *)q)->p, sa, sb);
}

static int32_t input_small(const void *q, int32_t a)
{
    const add_consts_t *c = (const add_consts_t *)q;
    return mcus_small_mbqm(&c->in, (int32_t)((uint32_t)(a + c->p.input_offset)
                                             << (c->p.left_shift + 1)));
}

static int32_t skip_small(const void *q, int32_t b)
{
    const add_consts_t *c = (const add_consts_t *)q;
    return mcus_small_mbqm(&c->skip, (int32_t)((uint32_t)(b + c->p.skip_offset)
                                               << (c->p.left_shift + 1)));
}

static int32_t sum_small(const void *q, int32_t sa, int32_t sb)
{
    return mcus_small_mbqm(&((const add_consts_t *)q)->out, (sa + sb) * 2);
}

/*
 * A per-channel operand y (mcus_bcast_periodic) against a contiguous x. Per channel the doubled
 * rescaled y (exact: mcus_add_s8_input / _skip, whichever role y has, so SUB's negated multiplier
 * too) is computed once; per element x's doubled rescaled value is read from the generator's table
 * p->tx (`mode` 2), or x is rescaled by 1/2 exactly ((x + off) 2^left: its offset folded into the
 * channel values: mode 1) or by mcus_small_mbqm_pos (a positive multiplier: mode 0), and the
 * doubled sum by mcus_small_mbqm_pos with the output offset. `full`: no clamp beyond int8.
 */
typedef struct {
    mcus_small_mbqm_t x, out;
    int32_t x_off1;              /* x's offset << (PERIODIC_LEFT_SHIFT + 1) (not half) */
    const int32_t *tx;           /* p->tx + 128: 2 h_x by x (mode 2), or 0 */
} add_periodic_t;

#define PERIODIC_LEFT_SHIFT 20   /* TFLite's (always): a constant makes the shifts immediates */

MCUS_EW_INLINE void add_periodic_loop(int32_t rows, int32_t n, const int32_t *py, const int8_t *x,
                                      int8_t *output, const add_periodic_t *kp, int mode,
                                      int full, int32_t lo, int32_t hi)
{
    const add_periodic_t k = *kp;
    int32_t r, i;

    for (r = rows; r > 0; --r) {
        i = 0;
#if defined(__ARM_FEATURE_DSP) && defined(__OPTIMIZE__)
        if (mode == 2 && full && n >= 2) {
            /* x's rescaled values from the generator's table: two elements a block, two blocks a
             * loop step (an odd count of blocks enters at the second), 9 instructions an element:
             * LDRSB, the table's LDR, ADD, the output's (ADD sign, SMMLAR, ASR, SSAT), STRB, and
             * LDRD of two channels' y */
            const int32_t *y = py, *const end = py + (n & ~1);
            int32_t t0, t1 = n & 2, y0, y1;            /* t1: an odd count of blocks */
#define ADD_TABLE_ONE(t, yv)                                                                      \
            "ldr    %[" t "], [%[tx], %[" t "], lsl #2]\n\t"                                      \
            "add    %[" t "], %[" t "], %[" yv "]\n\t"                                            \
            "add    %[" yv "], %[ob], %[" t "], asr #31\n\t"                                      \
            "smmlar %[" t "], %[" t "], %[om], %[" yv "]\n\t"                                     \
            "asr    %[" t "], %[" t "], %[or]\n\t"                                                \
            "ssat   %[" t "], #8, %[" t "]\n\t"                                                   \
            "strb   %[" t "], [%[o]], #1\n\t"
#define ADD_TABLE_BLOCK                                                                           \
            "ldrsb  %[t0], [%[x]], #1\n\t"                                                          \
            "ldrsb  %[t1], [%[x]], #1\n\t"                                                          \
            "ldrd   %[y0], %[y1], [%[y]], #8\n\t"                                                   \
            ADD_TABLE_ONE("t0", "y0") ADD_TABLE_ONE("t1", "y1")
            __asm__ volatile("cmp    %[t1], #0\n\t"
                             "bne    2f\n\t"
                             "1:\n\t" ADD_TABLE_BLOCK
                             "2:\n\t" ADD_TABLE_BLOCK
                             "cmp    %[y], %[end]\n\t"
                             "bne    1b\n\t"
                             : [x] "+r"(x), [y] "+r"(y), [o] "+r"(output), [t0] "=&r"(t0),
                               [t1] "+r"(t1), [y0] "=&r"(y0), [y1] "=&r"(y1)
                             : [end] "r"(end), [tx] "r"(k.tx), [ob] "r"(k.out.bias),
                               [om] "r"(k.out.multiplier), [or] "r"(k.out.right)
                             : "cc", "memory");
#undef ADD_TABLE_BLOCK
#undef ADD_TABLE_ONE
            i = n & ~1;
        }
        if (mode == 0 && full && n >= 2) {
            /* x rescaled, no clamp beyond int8: two elements a step, 13 instructions an element
             * (14 in GCC's loop): per element LDRSB, LDR y, the rescaling of x (ADD, ADD sign,
             * SMMLAR, ASR), ADD, the output's (ADD sign, SMMLAR, ASR, SSAT), STRB */
            const int32_t *y = py, *const end = py + (n & ~1);
            int32_t t0, t1, t2;
#define ADD_PERIODIC_ONE                                                                          \
            "ldrsb  %[t0], [%[x]], #1\n\t"                                                          \
            "ldr    %[t1], [%[y]], #4\n\t"                                                          \
            "add    %[t0], %[xo], %[t0], lsl #21\n\t"                                               \
            "add    %[t2], %[xb], %[t0], asr #31\n\t"                                               \
            "smmlar %[t0], %[t0], %[xm], %[t2]\n\t"                                                 \
            "asr    %[t0], %[t0], %[xr]\n\t"                                                        \
            "add    %[t0], %[t1], %[t0], lsl #1\n\t"                                                \
            "add    %[t1], %[ob], %[t0], asr #31\n\t"                                               \
            "smmlar %[t0], %[t0], %[om], %[t1]\n\t"                                                 \
            "asr    %[t0], %[t0], %[or]\n\t"                                                        \
            "ssat   %[t0], #8, %[t0]\n\t"                                                           \
            "strb   %[t0], [%[o]], #1\n\t"
            __asm__ volatile("1:\n\t" ADD_PERIODIC_ONE ADD_PERIODIC_ONE
                             "cmp    %[y], %[end]\n\t"
                             "bne    1b\n\t"
                             : [x] "+r"(x), [y] "+r"(y), [o] "+r"(output), [t0] "=&r"(t0),
                               [t1] "=&r"(t1), [t2] "=&r"(t2)
                             : [end] "r"(end), [xo] "r"(k.x_off1), [xb] "r"(k.x.bias),
                               [xm] "r"(k.x.multiplier), [xr] "r"(k.x.right),
                               [ob] "r"(k.out.bias), [om] "r"(k.out.multiplier),
                               [or] "r"(k.out.right)
                             : "cc", "memory");
#undef ADD_PERIODIC_ONE
            i = n & ~1;
        }
#endif
        for (; i < n; ++i) {
            int32_t s2;
            if (mode == 2) {
                s2 = py[i] + k.tx[*x++];
            } else if (mode == 1) {
                s2 = py[i] + (int32_t)((uint32_t)(int32_t)*x++ << PERIODIC_LEFT_SHIFT);
            } else {
                const int32_t x2 = k.x_off1 + (int32_t)((uint32_t)(int32_t)*x++
                                                        << (PERIODIC_LEFT_SHIFT + 1));
                s2 = py[i] + 2 * mcus_small_mbqm_pos(&k.x, x2, 1);
            }
            *output++ = (int8_t)mcus_act_s8(mcus_small_mbqm_pos(&k.out, s2, 1), full, lo, hi);
        }
    }
}

/* 1 when the periodic path ran: x of multiplier (mx, sx) and offset ox, y the per-channel
 * operand, `y_is_input`: y is ADD's first input (else its second). */
static int add_periodic(const mcus_add_bcast_s8_params_t *p, const int8_t *x, int32_t mx,
                        int32_t sx, int32_t ox, const int8_t *y, int y_is_input, int8_t *output)
{
    const mcus_add_s8_params_t *q = &p->q;
    const int half = mx == (int32_t)1 << 30 && sx == 0;
    const int full = q->act_min <= -128 && q->act_max >= 127;
    int32_t py[MCUS_PERIODIC_MAX];
    const int32_t n = mcus_bcast_period(&p->g), reps = mcus_periodic_reps(p->g.dims[0], n);
    const int32_t rows = p->g.dims[0] / reps, len = n * reps;
    add_periodic_t k;
    int32_t i;

    k.x.multiplier = k.x.left1 = k.x.right = k.x.bias = k.x.neg = 0;
    k.tx = p->tx == 0 || half ? 0 : p->tx + 128;
    if (q->left_shift != PERIODIC_LEFT_SHIFT || q->output_multiplier <= 0 ||
        q->output_shift > -1 ||
        !mcus_small_mbqm_prepare(&k.out, q->output_multiplier, q->output_shift, q->output_offset) ||
        (!half && k.tx == 0 &&
         (mx <= 0 || sx > -1 || !mcus_small_mbqm_prepare(&k.x, mx, sx, 0)))) {
        return 0;
    }
    k.x_off1 = (int32_t)((uint32_t)ox << (PERIODIC_LEFT_SHIFT + 1));
    for (i = 0; i < n; ++i) {
        const int32_t hy = y_is_input ? mcus_add_s8_input(q, y[i]) : mcus_add_s8_skip(q, y[i]);
        py[i] = 2 * hy + (half ? (int32_t)((uint32_t)ox << PERIODIC_LEFT_SHIFT) : 0);
    }
    for (; i < len; ++i) {
        py[i] = py[i - n];
    }
    if (k.tx != 0 && full) {
        add_periodic_loop(rows, len, py, x, output, &k, 2, 1, -128, 127);
    } else if (k.tx != 0) {
        add_periodic_loop(rows, len, py, x, output, &k, 2, 0, q->act_min, q->act_max);
    } else if (half && full) {
        add_periodic_loop(rows, len, py, x, output, &k, 1, 1, -128, 127);
    } else if (full) {
        add_periodic_loop(rows, len, py, x, output, &k, 0, 1, -128, 127);
    } else if (half) {
        add_periodic_loop(rows, len, py, x, output, &k, 1, 0, q->act_min, q->act_max);
    } else {
        add_periodic_loop(rows, len, py, x, output, &k, 0, 0, q->act_min, q->act_max);
    }
    return 1;
}

/* Same-shape operands: mcus_add_s8_fast, in a function of its own (inlined here, its loops
 * would change how the compiler allocates the broadcasting loops' registers). */
static __attribute__((noinline)) int add_same(const mcus_add_bcast_s8_params_t *p,
                                              const int8_t *a, const int8_t *b, int8_t *output)
{
    return mcus_add_s8_fast(&p->q, a, b, output, p->g.len, p->tb);
}

void mcus_add_bcast_s8(const mcus_add_bcast_s8_params_t *p, const int8_t *a, const int8_t *b,
                       int8_t *output)
{
    const mcus_add_s8_params_t *q = &p->q;
    const int periodic = mcus_bcast_periodic(&p->g);
    add_consts_t c;

    if (p->g.rank == 1 && p->g.a_stride[0] == 1 && p->g.b_stride[0] == 1 && MCUS_EW_SPECIALISE &&
        add_same(p, a, b, output)) {
        return;                              /* same shape (a constant bias, an LSTM's) */
    }
    if ((periodic == 1 && add_periodic(p, a, q->input_multiplier, q->input_shift, q->input_offset,
                                       b, 0, output)) ||
        (periodic == 2 && add_periodic(p, b, q->skip_multiplier, q->skip_shift, q->skip_offset,
                                       a, 1, output))) {
        return;
    }

    c.p = *q;                                  /* a local copy: output stores cannot alias it */
    if (q->left_shift >= 0 && q->left_shift <= SMALL_MAX_LEFT_SHIFT &&
        q->input_shift <= 0 && q->skip_shift <= 0 && q->output_shift <= 0 &&
        mcus_small_mbqm_prepare(&c.in, q->input_multiplier, q->input_shift, 0) &&
        mcus_small_mbqm_prepare(&c.skip, q->skip_multiplier, q->skip_shift, 0) &&
        mcus_small_mbqm_prepare(&c.out, q->output_multiplier, q->output_shift, q->output_offset)) {
        mcus_binary_s8_runs(&p->g, &c, a, b, output, q->act_min, q->act_max, input_small,
                            skip_small, sum_small, 1);
    } else {
        mcus_binary_s8_runs(&p->g, &c, a, b, output, q->act_min, q->act_max, input, skip, sum, 0);
    }
}
