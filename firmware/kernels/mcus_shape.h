/*
 * mcus_shape.h - reference kernels of the data-movement and reduction op plug-ins
 * (mcusearch/convert/ops/shape.py): padding, mean, maximum and minimum reductions, concatenation,
 * slicing, resizing (nearest neighbour and bilinear).
 * Conventions as in mcus_kernels.h.
 *
 * Tensors are viewed as (at most) 4-D row-major arrays; the generator merges and pads dimensions
 * so that every kernel sees 4. int8 data movement copies the stored bytes (TFLite's PAD, SLICE,
 * STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK, PACK, TRANSPOSE, CONCATENATION and
 * RESIZE_NEAREST_NEIGHBOR never requantise, nor do REDUCE_MAX and REDUCE_MIN, which compare the
 * stored values); only MEAN rescales. RESIZE_BILINEAR mixes the stored values without rescaling.
 */
#ifndef MCUS_SHAPE_H
#define MCUS_SHAPE_H

#include <stdint.h>

/* ---- PAD / PADV2 --------------------------------------------------------------------------- */

/* out[o] = in[o - before] inside the input's box, else the padding value. */
typedef struct {
    int32_t in_dims[4];
    int32_t out_dims[4];
    int32_t before[4];           /* elements of padding before the input, per dimension */
} mcus_pad_geom_t;

typedef struct {
    mcus_pad_geom_t g;
    float value;
} mcus_pad_f32_params_t;

typedef struct {
    mcus_pad_geom_t g;
    int32_t value;               /* quantised: the output zero point (PAD) or PADV2's constant */
} mcus_pad_s8_params_t;

void mcus_pad_f32(const mcus_pad_f32_params_t *p, const float *input, float *output);
void mcus_pad_s8(const mcus_pad_s8_params_t *p, const int8_t *input, int8_t *output);

/* ---- MEAN ---------------------------------------------------------------------------------- */

/* The input viewed as [outer][reduce][inner]: out[o][i] = mean over r of in[o][r][i]. */
typedef struct {
    int32_t outer, reduce, inner;
} mcus_mean_f32_params_t;

/*
 * int8 MEAN as TFLite's built-in kernel computes it (see mcusearch/convert/ops/shape.py, Mean):
 * acc = sum_r in + input_offset * reduce; out = clamp(rescale(acc) + output_offset), where the
 * rescaling is SaturatingRoundingDoublingHighMul then a rounding right shift with ties up for
 * inner index i < vector_channels (the 16-lane loop of TFLite's 4-D keep_dims kernel) and ties
 * away from zero otherwise (MultiplyByQuantizedMultiplier): mcus_requantize_depthwise's rule.
 */
typedef struct {
    int32_t outer, reduce, inner;
    int32_t input_offset;
    int32_t output_offset;
    int32_t multiplier;
    int32_t shift;
    int32_t vector_channels;
} mcus_mean_s8_params_t;

void mcus_mean_f32(const mcus_mean_f32_params_t *p, const float *input, float *output);
void mcus_mean_s8(const mcus_mean_s8_params_t *p, const int8_t *input, int8_t *output);

/* ---- REDUCE_MAX / REDUCE_MIN --------------------------------------------------------------- */

/* The input viewed as [outer][reduce][inner] (reduce >= 1): out[o][i] = max (min) over r of
 * in[o][r][i]. int8 compares the stored values: TFLite runs these operators only with the input's
 * quantisation on the output, so nothing is rescaled. */
typedef struct {
    int32_t outer, reduce, inner;
} mcus_reduce_params_t;

void mcus_reduce_max_f32(const mcus_reduce_params_t *p, const float *input, float *output);
void mcus_reduce_max_s8(const mcus_reduce_params_t *p, const int8_t *input, int8_t *output);
void mcus_reduce_min_f32(const mcus_reduce_params_t *p, const float *input, float *output);
void mcus_reduce_min_s8(const mcus_reduce_params_t *p, const int8_t *input, int8_t *output);

/* ---- CONCATENATION / PACK ------------------------------------------------------------------ */

/* Input k viewed as [outer][inner[k]]; the output is [outer][sum_k inner[k]]. */
typedef struct {
    int32_t n;                   /* number of inputs */
    int32_t outer;
    const int32_t *inner;        /* [n] */
} mcus_concat_params_t;

void mcus_concat_f32(const mcus_concat_params_t *p, const float *const *inputs, float *output);
void mcus_concat_s8(const mcus_concat_params_t *p, const int8_t *const *inputs, int8_t *output);

/* ---- strided copy: SLICE, STRIDED_SLICE, SPLIT, SPLIT_V, UNPACK, TRANSPOSE ------------------ */

/* out is a dense dims[0] x dims[1] x dims[2] x dims[3] array;
 * out[i0][i1][i2][i3] = in[base + i0 * strides[0] + i1 * strides[1] + i2 * strides[2] +
 *                          i3 * strides[3]] (strides in elements, may be negative). */
typedef struct {
    int32_t base;
    int32_t dims[4];
    int32_t strides[4];
} mcus_slice_params_t;

void mcus_slice_f32(const mcus_slice_params_t *p, const float *input, float *output);
void mcus_slice_s8(const mcus_slice_params_t *p, const int8_t *input, int8_t *output);

/* ---- RESIZE_NEAREST_NEIGHBOR --------------------------------------------------------------- */

/* out[y][x][c] = in[rows[y]][cols[x]][c]; the generator computes the source rows and columns
 * with TFLite's formula (align_corners, half_pixel_centers). */
typedef struct {
    int32_t in_w, channels;
    int32_t out_h, out_w;
    const uint16_t *rows;        /* [out_h] */
    const uint16_t *cols;        /* [out_w] */
} mcus_resize_nearest_params_t;

void mcus_resize_nearest_f32(const mcus_resize_nearest_params_t *p, const float *input,
                             float *output);
void mcus_resize_nearest_s8(const mcus_resize_nearest_params_t *p, const int8_t *input,
                            int8_t *output);

/* ---- RESIZE_BILINEAR ----------------------------------------------------------------------- */

/* Output row y mixes input rows rows[2y] (weight 1 - fy) and rows[2y + 1] (weight fy), output
 * column x columns cols[2x] and cols[2x + 1] likewise (fx); the generator computes the tables
 * with TFLite's formulas (align_corners, half_pixel_centers). A fraction may be negative (before
 * the first half-pixel centre, where both indices are 0). */
typedef struct {
    int32_t in_w, channels;
    int32_t out_h, out_w;
    const uint16_t *rows;        /* [2 * out_h] */
    const uint16_t *cols;        /* [2 * out_w] */
} mcus_resize_bilinear_geom_t;

/* float32: out = a (1 - fy)(1 - fx) + c fy (1 - fx) + b (1 - fy) fx + d fy fx, a/b the upper
 * row's two columns, c/d the lower row's (TFLite's ComputeInterpolationValues fractions). */
typedef struct {
    mcus_resize_bilinear_geom_t g;
    const float *row_frac;       /* [out_h] fy */
    const float *col_frac;       /* [out_w] fx */
} mcus_resize_bilinear_f32_params_t;

/*
 * int8 as TFLite's ResizeBilinearInteger (its built-in int8 kernel): the fractions are 10-bit
 * fixed point (-512 .. 1023); acc = a (1024 - fy)(1024 - fx) + c fy (1024 - fx) + b (1024 - fy) fx
 * + d fy fx on the stored values (|acc| < 2^29: int32), out = acc / 2^20 rounded half away from
 * zero. No requantisation (TFLite's kernel mixes the stored values).
 */
typedef struct {
    mcus_resize_bilinear_geom_t g;
    const int16_t *row_frac;     /* [out_h] fy, 10-bit */
    const int16_t *col_frac;     /* [out_w] fx, 10-bit */
} mcus_resize_bilinear_s8_params_t;

void mcus_resize_bilinear_f32(const mcus_resize_bilinear_f32_params_t *p, const float *input,
                              float *output);
void mcus_resize_bilinear_s8(const mcus_resize_bilinear_s8_params_t *p, const int8_t *input,
                             int8_t *output);

#endif /* MCUS_SHAPE_H */
