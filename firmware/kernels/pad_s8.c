/* Reference PAD / PADV2, int8: the output is the input placed at `before` inside a box of the
 * padding value, already quantised (no rescaling; 4-D views, mcus_shape.h). */
#include "mcus_kernels.h"

void mcus_pad_s8(const mcus_pad_s8_params_t *p, const int8_t *input, int8_t *output)
{
    const mcus_pad_geom_t *g = &p->g;
    const int8_t value = (int8_t)p->value;
    int32_t o0, o1, o2, o3;

    for (o0 = 0; o0 < g->out_dims[0]; ++o0) {
        const int32_t i0 = o0 - g->before[0];
        for (o1 = 0; o1 < g->out_dims[1]; ++o1) {
            const int32_t i1 = o1 - g->before[1];
            for (o2 = 0; o2 < g->out_dims[2]; ++o2) {
                const int32_t i2 = o2 - g->before[2];
                for (o3 = 0; o3 < g->out_dims[3]; ++o3) {
                    const int32_t i3 = o3 - g->before[3];
                    const int inside = i0 >= 0 && i0 < g->in_dims[0] && i1 >= 0 &&
                                       i1 < g->in_dims[1] && i2 >= 0 && i2 < g->in_dims[2] &&
                                       i3 >= 0 && i3 < g->in_dims[3];
                    *output++ = inside ? input[((i0 * g->in_dims[1] + i1) * g->in_dims[2] + i2) *
                                               g->in_dims[3] + i3]
                                       : value;
                }
            }
        }
    }
}
