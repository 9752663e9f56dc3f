/*
 * mcus_simd.h - the int8 SIMD primitives (SXTB16, SXTAB16, SMLAD) and unaligned word loads that the
 * fast kernels (fast/mcus_fast.h) and the reference kernels pairing int16 values
 * (transpose_conv_s8.c) share: ACLE intrinsics on cores with the DSP extension, plain C with the
 * same results elsewhere (Cortex-M0+/M3, the host).
 */
#ifndef MCUS_SIMD_H
#define MCUS_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(MCUS_FAST_NO_DSP)
#include <arm_acle.h>
#define MCUS_SIMD_DSP 1
#else
#define MCUS_SIMD_DSP 0
#endif

static inline uint32_t mcus_ld32(const void *p) /* any alignment (LDR on v7-M) */
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

#if MCUS_SIMD_DSP
#define mcus_sxtb16(x) __sxtb16(x)
#define mcus_sxtab16(a, x) __sxtab16((a), (x))
static inline int32_t mcus_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    __asm__("smlad %0, %1, %2, %0" : "+r"(acc) : "r"(x), "r"(y));
    return acc;
}
/* The rotated forms as one instruction: GCC does not fold a rotation into the intrinsics. */
static inline uint32_t mcus_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline uint32_t mcus_sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
#else
/* Plain-C equivalents (Cortex-M0+/M3 and the host). */
static inline uint32_t mcus_sxtb16(uint32_t x)
{
    return (uint32_t)(uint16_t)(int16_t)(int8_t)(x & 0xFFu) | ((uint32_t)(uint16_t)(int16_t)(int8_t)((x >> 16) & 0xFFu) << 16);
}
static inline uint32_t mcus_sxtb16_ror8(uint32_t x)
{
    return mcus_sxtb16((x >> 8) | (x << 24));
}
static inline uint32_t mcus_add16(uint32_t a, uint32_t b)
{
    return (uint32_t)(uint16_t)(a + b) | ((((a >> 16) + (b >> 16)) & 0xFFFFu) << 16);
}
static inline uint32_t mcus_sxtab16(uint32_t a, uint32_t x)
{
    return mcus_add16(a, mcus_sxtb16(x));
}
static inline uint32_t mcus_sxtab16_ror8(uint32_t a, uint32_t x)
{
    return mcus_add16(a, mcus_sxtb16_ror8(x));
}
static inline int32_t mcus_smlad(uint32_t x, uint32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int32_t)(int16_t)(x & 0xFFFFu) * (int32_t)(int16_t)(y & 0xFFFFu))
                     + (uint32_t)((int32_t)(int16_t)(x >> 16) * (int32_t)(int16_t)(y >> 16)));
}
#endif

#endif /* MCUS_SIMD_H */
