/* BATCH_MATMUL, float32: per output batch, every (m, n) of the output the sum over k of
 * lhs(m, k) rhs(k, n), k ascending (geometry: mcus_bmm_geom_t in mcus_kernels.h). */
#include "mcus_kernels.h"

void mcus_batch_matmul_f32(const mcus_batch_matmul_f32_params_t *p, const float *lhs,
                           const float *rhs, float *output)
{
    const mcus_bmm_geom_t *g = &p->g;
    const int32_t batches = mcus_bmm_batches(g);
    int32_t b, m, n, k, lo, ro;
    for (b = 0; b < batches; ++b) {
        mcus_bmm_batch(g, b, &lo, &ro);
        for (m = 0; m < g->rows; ++m) {
            const float *row = lhs + lo + m * g->lhs_row;
            for (n = 0; n < g->cols; ++n) {
                const float *x = row, *y = rhs + ro + n * g->rhs_col;
                float acc = 0.0f;
                for (k = g->depth; k > 0; --k, x += g->lhs_depth, y += g->rhs_depth) {
                    acc += *x * *y;
                }
                *output++ = acc;
            }
        }
    }
}
