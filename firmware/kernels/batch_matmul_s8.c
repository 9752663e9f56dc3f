/* BATCH_MATMUL, int8: TFLite's arithmetic (batch_matmul.cc with its reference kernel): per output
 * batch, every (m, n) of the output sums (lhs(m, k) + lhs_offset) (rhs(k, n) + rhs_offset) over k
 * in int32 (the generator refuses depths that could overflow), requantises the sum by
 * MultiplyByQuantizedMultiplier (ties away from zero), adds the output offset and clamps to int8
 * (geometry: mcus_bmm_geom_t in mcus_kernels.h). Where the sum shifted left by the multiplier's
 * left shift + 1 fits 31 bits (depth x 255^2 < 2^(30 - left)), the requantisation is
 * mcus_small_mbqm (SMMULR; the same result in a few instructions, not 64-bit arithmetic). */
#include "mcus_kernels.h"

/* The output's int8 value for the sum acc (see the top of the file). */
static inline int8_t bmm_out(const mcus_batch_matmul_s8_params_t *p, const mcus_small_mbqm_t *rq,
                             int small, int32_t acc)
{
    const int32_t v = small ? mcus_small_mbqm(rq, (int32_t)((uint32_t)acc << rq->left1)) :
                      mcus_multiply_by_quantized_multiplier(acc, p->multiplier, p->shift) +
                      p->output_offset;
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}

/*
 * Four adjacent outputs (m, n0 .. n0 + 3) where rhs's columns are adjacent (rhs_col = 1: the
 * queries x keys and scores x values of an attention layer): per k one lhs value with its offset
 * and four rhs values, four multiply-accumulates, the sums (lhs + lhs_offset) rhs; the rhs offset
 * enters once per output as rhs_offset x sum_k (lhs + lhs_offset) (sx). Integer sums: the same
 * result in any order. About 3 instructions a MAC on a Cortex-M7, 7 for the loop below.
 */
static void bmm_quad(const mcus_bmm_geom_t *g, const int8_t *x, const int8_t *y, int32_t lhs_offset,
                     int32_t sx_ro, int32_t acc[4])
{
    /* unsigned: a partial sum may leave int32 where the total does not (wrap-around is exact) */
    uint32_t a0 = (uint32_t)sx_ro, a1 = a0, a2 = a0, a3 = a0;
    int32_t k;
    for (k = g->depth; k > 0; --k, x += g->lhs_depth, y += g->rhs_depth) {
        const int32_t v = *x + lhs_offset;
        a0 += (uint32_t)(v * y[0]);
        a1 += (uint32_t)(v * y[1]);
        a2 += (uint32_t)(v * y[2]);
        a3 += (uint32_t)(v * y[3]);
    }
    acc[0] = (int32_t)a0;
    acc[1] = (int32_t)a1;
    acc[2] = (int32_t)a2;
    acc[3] = (int32_t)a3;
}

void mcus_batch_matmul_s8(const mcus_batch_matmul_s8_params_t *p, const int8_t *lhs,
                          const int8_t *rhs, int8_t *output)
{
    const mcus_bmm_geom_t *g = &p->g;
    const int32_t batches = mcus_bmm_batches(g);
    const int32_t lhs_offset = p->lhs_offset, rhs_offset = p->rhs_offset;
    const int32_t quads = g->rhs_col == 1 ? g->cols / 4 : 0;
    mcus_small_mbqm_t rq;
    const int small = mcus_small_mbqm_prepare(&rq, p->multiplier, p->shift, p->output_offset) &&
                      (int64_t)g->depth * 255 * 255 < ((int64_t)1 << (31 - rq.left1));
    int32_t b, m, n, k, lo, ro;
    for (b = 0; b < batches; ++b) {
        mcus_bmm_batch(g, b, &lo, &ro);
        for (m = 0; m < g->rows; ++m) {
            const int8_t *row = lhs + lo + m * g->lhs_row;
            int32_t sx = 0, acc[4], i;
            if (quads) {
                const int8_t *x = row;
                for (k = g->depth; k > 0; --k, x += g->lhs_depth) {
                    sx += *x + lhs_offset;
                }
            }
            for (n = 0; n < 4 * quads; n += 4) {
                bmm_quad(g, row, rhs + ro + n, lhs_offset, sx * rhs_offset, acc);
                for (i = 0; i < 4; ++i) {
                    *output++ = bmm_out(p, &rq, small, acc[i]);
                }
            }
            for (; n < g->cols; ++n) {
                const int8_t *x = row, *y = rhs + ro + n * g->rhs_col;
                int32_t sum = 0;
                for (k = g->depth; k > 0; --k, x += g->lhs_depth, y += g->rhs_depth) {
                    sum += (*x + lhs_offset) * (*y + rhs_offset);
                }
                *output++ = bmm_out(p, &rq, small, sum);
            }
        }
    }
}
