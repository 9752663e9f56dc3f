/* Reference int8 look-up-table kernel: every int8 -> int8 element-wise op (LOGISTIC, TANH,
 * HARD_SWISH, LEAKY_RELU, GELU, requantising RELU/RELU6, QUANTIZE int8 -> int8, ...), with tables
 * the generator takes from TFLite's own kernel. */
#include "mcus_kernels.h"

void mcus_lut_s8(const mcus_lut_s8_params_t *p, const int8_t *input, int8_t *output)
{
    int32_t i;

    for (i = 0; i < p->len; ++i) {
        const int8_t *t = i < p->split ? p->table : p->tail_table;
        output[i] = t[input[i] + 128];
    }
}
