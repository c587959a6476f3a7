/* cuda_fp16.h (emulated) — __half for the emulated CUDA target: IEEE binary16 storage,
 * conversions round to nearest even (the host compiler's _Float16). C++ only. */
#ifndef G4EMU_CUDA_FP16_H
#define G4EMU_CUDA_FP16_H

#include <stdint.h>
#include <string.h>

struct __half {
    unsigned short __x;
};
struct __half2 {
    __half x, y;
};

static inline __half __float2half_rn(float f) {
    _Float16 h = (_Float16)f;
    __half r;
    memcpy(&r.__x, &h, 2);
    return r;
}
static inline __half __float2half(float f) { return __float2half_rn(f); }
static inline float __half2float(__half h) {
    _Float16 v;
    memcpy(&v, &h.__x, 2);
    return (float)v;
}
static inline unsigned short __half_as_ushort(__half h) { return h.__x; }
static inline __half __ushort_as_half(unsigned short u) {
    __half h;
    h.__x = u;
    return h;
}

#endif
