/* Reference int8 look-up-table kernel: every int8 -> int8 element-wise op (LOGISTIC, TANH,
 * HARD_SWISH, LEAKY_RELU, GELU, requantising RELU/RELU6, QUANTIZE int8 -> int8, ...), with tables
 * the generator takes from TFLite's own kernel.
 *
 * One loop per table (elements 0 .. split - 1, then split .. len - 1) through a pointer to the
 * table's middle, t[v] = table[v + 128], four elements an iteration: LDRSB, LDRB of the entry and
 * STRB per element, the loop's add, compare and branch a quad (about 3.8 instructions an element
 * on a Cortex-M7 at -O3; the loop choosing the table per element took 13, an LSTM gate's 16
 * elements 213 instructions a call -> ~90). */
#include "mcus_kernels.h"

/* out[i] = t[in[i]] for i < n */
static void lut_run(const int8_t *t, const int8_t *in, int8_t *out, int32_t n)
{
    int32_t i;

    for (i = 0; i + 4 <= n; i += 4) {
        out[i] = t[in[i]];
        out[i + 1] = t[in[i + 1]];
        out[i + 2] = t[in[i + 2]];
        out[i + 3] = t[in[i + 3]];
    }
    for (; i < n; ++i) {
        out[i] = t[in[i]];
    }
}

void mcus_lut_s8(const mcus_lut_s8_params_t *p, const int8_t *input, int8_t *output)
{
    const int32_t split = p->split < p->len ? p->split : p->len;

    lut_run(p->table + 128, input, output, split);
    lut_run(p->tail_table + 128, input + split, output + split, p->len - split);
}
