/* rng.h — splitmix64, the one hash / generator g4serve uses wherever it needs deterministic
 * pseudo-random numbers (tiny models, dummy weights, seeded sampling, prefix-cache keys, tests).
 * Not cryptographic. Plain C; host and device (nvcc sees __host__ __device__). */
#ifndef G4_BASE_RNG_H
#define G4_BASE_RNG_H

#include <stdint.h>

#ifdef __CUDACC__
#define G4_HD __host__ __device__
#else
#define G4_HD
#endif

#define G4_SPLITMIX_GAMMA 0x9e3779b97f4a7c15ull

/* The splitmix64 finaliser: a bijective 64-bit mix. */
G4_HD static inline uint64_t g4_mix64(uint64_t x) {
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The splitmix64 generator: advances *state and returns the next value. */
G4_HD static inline uint64_t g4_splitmix64(uint64_t *state) { return g4_mix64(*state += G4_SPLITMIX_GAMMA); }

#endif
