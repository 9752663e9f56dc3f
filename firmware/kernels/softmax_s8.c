/* Reference int8 softmax over a vector: TFLite's float look-up-table kernel (see
 * mcus_softmax_s8_row in mcus_kernels.h). */
#include "mcus_kernels.h"

void mcus_softmax_s8(const mcus_softmax_s8_params_t *p, const int8_t *input, int8_t *output)
{
    mcus_softmax_s8_row(p, input, output);
}
