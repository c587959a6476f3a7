/* dummy.h — the seeded values of "dummy weights": full-size models filled with random numbers
 * on the backend, without reading checkpoint bytes (benchmarks and tests at real scale).
 *
 * Element i of a tensor is mean + amp·u(seed', i), u a counter-based splitmix64 hash in [-1, 1),
 * seed' = seed mixed with the tensor's name, so every tensor differs and any backend (the CUDA
 * kernel includes this header too) produces the same bf16 values. mean / amp follow the
 * tensor's kind so activations stay O(1) through the layers. Plain C; host and device. */
#ifndef G4_BASE_DUMMY_H
#define G4_BASE_DUMMY_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/rng.h"

/* splitmix64 of (seed, i) → 24 random bits → u ∈ [-1, 1) */
G4_HD static inline float g4_dummy_u(uint64_t seed, uint64_t i) {
    uint64_t z = g4_mix64(seed + G4_SPLITMIX_GAMMA * (i + 1));
    return (float)(z >> 40) * (2.0f / 16777216.0f) - 1.0f;
}

/* The per-tensor seed: FNV-1a of the name, mixed into the model seed. */
static inline uint64_t g4_dummy_tensor_seed(uint64_t seed, const char *name) {
    uint64_t h = 1469598103934665603ull;
    for (const char *p = name ? name : ""; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return seed ^ h;
}

static inline int g4_dummy_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !memcmp(s + n - m, suffix, m);
}

/* mean and amplitude for a tensor of this name and shape (Linear weights: [.., out, in]). */
static inline void g4_dummy_init(const char *name, int ndim, const int64_t *shape, float *mean, float *amp) {
    const char *n = name ? name : "";
    if (g4_dummy_ends_with(n, "layer_scalar")) {
        *mean = 0.75f, *amp = 0.2f;
    } else if (g4_dummy_ends_with(n, "per_expert_scale")) {
        *mean = 1.0f, *amp = 0.3f;
    } else if (ndim == 1) { /* norms, router.scale */
        *mean = 1.0f, *amp = 0.2f;
    } else if (g4_dummy_ends_with(n, "embed_tokens.weight")) {
        *mean = 0.0f, *amp = 0.5f;
    } else { /* Linear: unit-variance outputs for unit-variance inputs */
        *mean = 0.0f, *amp = sqrtf(3.0f / (float)shape[ndim - 1]);
    }
}

#endif
