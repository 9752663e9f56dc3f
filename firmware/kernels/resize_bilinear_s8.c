/* Reference RESIZE_BILINEAR, int8, NHWC, as TFLite's integer kernel (ResizeBilinearInteger):
 * output pixel (y, x) mixes the stored values of the four input pixels (rows[2y] or
 * rows[2y + 1], cols[2x] or cols[2x + 1]) with weights of the 10-bit fractions fy, fx; the sum
 * has 20 fractional bits and is rounded half away from zero. No requantisation. */
#include "mcus_kernels.h"

void mcus_resize_bilinear_s8(const mcus_resize_bilinear_s8_params_t *p, const int8_t *input,
                             int8_t *output)
{
    const mcus_resize_bilinear_geom_t *g = &p->g;
    const int32_t channels = g->channels, out_w = g->out_w;
    const int32_t row_len = g->in_w * channels;
    int32_t y, x, c;

    for (y = 0; y < g->out_h; ++y) {
        const int8_t *up = input + (int32_t)g->rows[2 * y] * row_len;
        const int8_t *down = input + (int32_t)g->rows[2 * y + 1] * row_len;
        const int32_t fy = p->row_frac[y];
        for (x = 0; x < out_w; ++x) {
            const int32_t left = (int32_t)g->cols[2 * x] * channels;
            const int32_t right = (int32_t)g->cols[2 * x + 1] * channels;
            const int8_t *ul = up + left, *ur = up + right, *dl = down + left, *dr = down + right;
            const int32_t fx = p->col_frac[x];
            /* |weight| <= 1536 * 1536 and the four |weights| sum to <= 2048 * 2048 = 2^22:
             * |acc| <= 128 * 2^22 = 2^29 */
            const int32_t w_ul = (1024 - fy) * (1024 - fx), w_dl = fy * (1024 - fx);
            const int32_t w_ur = (1024 - fy) * fx, w_dr = fy * fx;
            for (c = 0; c < channels; ++c) {
                const int32_t acc = ul[c] * w_ul + dl[c] * w_dl + ur[c] * w_ur + dr[c] * w_dr;
                /* acc / 2^20 rounded half away from zero: floor((acc + 2^19) / 2^20) above
                 * zero, floor((acc + 2^19 - 1) / 2^20) at or below (an arithmetic shift) */
                output[c] = (int8_t)((acc + (1 << 19) - (acc <= 0)) >> 20);
            }
            output += channels;
        }
    }
}
