/* int8 ADD / SUB of a tensor and a constant repeating every n elements (mcus_elementwise.h:
 * mcus_add_const_s8_params_t): both inputs' rescaled values come from the generator, so an
 * element costs a table read or a shift, the requantisation of the sum and the clamp; bit-exact
 * with TFLite's ADD / SUB (mcus_add_s8_one). */
#include "mcus_kernels.h"

/* `table`: x's rescaled values from p->tx (else x << 20); `clamp`: 0 none beyond int8, 1 the
 * lower bound only (a fused ReLU), 2 both. */
MCUS_EW_INLINE void add_const_loop(const mcus_add_const_s8_params_t *p, const int8_t *x,
                                   int8_t *output, int table, int clamp)
{
    const mcus_small_mbqm_t ko = p->out;
    const int32_t lo = p->act_min, hi = p->act_max;
    const int32_t *const py = p->py, *const py_end = py + p->n;
    const int32_t *const tx = p->tx + 128;
    int8_t *const end = output + p->len;

    while (output != end) {
        const int32_t *y = py;
        while (y != py_end) {
            const int32_t v = *x++;
            const int32_t s2 = *y++ + (table ? tx[v] : (int32_t)((uint32_t)v << 20));
            int32_t o = mcus_act_s8(mcus_small_mbqm_pos(&ko, s2, 1), 1, -128, 127);
            if (clamp >= 1) {
                o = o < lo ? lo : o;
            }
            if (clamp == 2) {
                o = o > hi ? hi : o;
            }
            *output++ = (int8_t)o;
        }
    }
}

void mcus_add_const_s8(const mcus_add_const_s8_params_t *p, const int8_t *x, int8_t *output)
{
    const int clamp = p->act_max < 127 ? 2 : p->act_min > -128 ? 1 : 0;

    if (p->tx == 0) {
        if (clamp == 0) {
            add_const_loop(p, x, output, 0, 0);
        } else if (clamp == 1) {
            add_const_loop(p, x, output, 0, 1);
        } else {
            add_const_loop(p, x, output, 0, 2);
        }
    } else if (clamp == 0) {
        add_const_loop(p, x, output, 1, 0);
    } else if (clamp == 1) {
        add_const_loop(p, x, output, 1, 1);
    } else {
        add_const_loop(p, x, output, 1, 2);
    }
}
