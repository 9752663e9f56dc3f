/* BATCH_MATMUL, int8: TFLite's arithmetic (batch_matmul.cc with its reference kernel): per output
 * batch, every (m, n) of the output sums (lhs(m, k) + lhs_offset) (rhs(k, n) + rhs_offset) over k
 * in int32 (the generator refuses depths that could overflow), requantises the sum by
 * MultiplyByQuantizedMultiplier (ties away from zero), adds the output offset and clamps to int8
 * (geometry: mcus_bmm_geom_t in mcus_kernels.h). Where the sum shifted left by the multiplier's
 * left shift + 1 fits 31 bits (depth x 255^2 < 2^(30 - left)), the requantisation is
 * mcus_small_mbqm (SMMULR; the same result in a few instructions, not 64-bit arithmetic). */
#include "mcus_kernels.h"

void mcus_batch_matmul_s8(const mcus_batch_matmul_s8_params_t *p, const int8_t *lhs,
                          const int8_t *rhs, int8_t *output)
{
    const mcus_bmm_geom_t *g = &p->g;
    const int32_t batches = mcus_bmm_batches(g);
    const int32_t lhs_offset = p->lhs_offset, rhs_offset = p->rhs_offset;
    mcus_small_mbqm_t rq;
    const int small = mcus_small_mbqm_prepare(&rq, p->multiplier, p->shift, p->output_offset) &&
                      (int64_t)g->depth * 255 * 255 < ((int64_t)1 << (31 - rq.left1));
    int32_t b, m, n, k, lo, ro;
    for (b = 0; b < batches; ++b) {
        mcus_bmm_batch(g, b, &lo, &ro);
        for (m = 0; m < g->rows; ++m) {
            const int8_t *row = lhs + lo + m * g->lhs_row;
            for (n = 0; n < g->cols; ++n) {
                const int8_t *x = row, *y = rhs + ro + n * g->rhs_col;
                int32_t acc = 0, v;
                for (k = g->depth; k > 0; --k, x += g->lhs_depth, y += g->rhs_depth) {
                    acc += (*x + lhs_offset) * (*y + rhs_offset);
                }
                v = small ? mcus_small_mbqm(&rq, (int32_t)((uint32_t)acc << rq.left1)) :
                    mcus_multiply_by_quantized_multiplier(acc, p->multiplier, p->shift) +
                    p->output_offset;
                *output++ = (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
            }
        }
    }
}
