/* bf16.h — scalar conversions between float and bfloat16 / IEEE half, round-to-nearest-even.
 *
 * Host-side helpers for the CPU backend, the checkpoint writer and tests. Plain C, readable by
 * nvcc too. NaN stays NaN; no other special handling is needed by the callers. */
#ifndef G4_BASE_BF16_H
#define G4_BASE_BF16_H

#include <stdint.h>
#include <string.h>

static inline float g4_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t g4_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Rounds a float to the nearest bf16 value and back (used for √H, which the reference
 * rounds to bf16 before multiplying). */
static inline float g4_round_bf16(float f) { return g4_bf16_to_f32(g4_f32_to_bf16(f)); }

static inline float g4_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: renormalise */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                exp--;
            }
            u = sign | (exp << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

#endif
