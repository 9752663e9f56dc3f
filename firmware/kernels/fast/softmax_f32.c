/* float32 softmax over a vector (the maximum is subtracted first, as TF does); row 0 only.
 * May run in place. */
#include "mcus_fast.h"

/* e^x for x <= 0 (the arguments softmax needs), without libm: no errno, so no C library state in
 * RAM. x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two for an exact product), e^r by a
 * degree-6 Taylor polynomial (error < 2e-8 relative), times 2^n through the exponent bits. */
static float exp_nonpositive(float x)
{
    union {
        float f;
        uint32_t u;
    } s;
    float n, r, p;
    if (x < -87.0f) {
        return 0.0f;
    }
    n = (float)(int32_t)(x * 1.44269504f - 0.5f);
    r = (x - n * 0.693145752f) - n * 1.42860677e-06f;
    p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f + r * (0.00833333377f + r * 0.00138888892f)))));
    s.u = (uint32_t)((int32_t)n + 127) << 23;
    return p * s.f;
}

void mcus_fast_softmax_f32(const void *params, const mcus_io_t *io, int32_t row)
{
    const mcus_fast_softmax_f32_t *p = (const mcus_fast_softmax_f32_t *)params;
    const float *in = p->in.base ? (const float *)p->in.base : (const float *)io->in;
    float *out = p->out.base ? (float *)p->out.base : (float *)io->out;
    const int32_t len = p->in.h * p->in.w * p->in.c;
    float max_v, sum = 0.0f;
    int32_t i;

    (void)row;
    if (len <= 0) {
        return;
    }
    max_v = in[0];
    for (i = 1; i < len; ++i) {
        max_v = in[i] > max_v ? in[i] : max_v;
    }
    for (i = 0; i < len; ++i) {
        out[i] = exp_nonpositive(in[i] - max_v);
        sum += out[i];
    }
    for (i = 0; i < len; ++i) {
        out[i] /= sum;
    }
}
