/* arrival.h — when each benchmark request is sent, as vLLM's `bench serve` schedules them, and the
 * seeded random numbers the datasets use (no global state: the generator is a value).
 *
 * rate = inf: every request at t = 0. Finite rate r, burstiness b: gaps drawn from a gamma
 * distribution with shape b and scale 1/(r·b) (b = 1 is a Poisson process), accumulated, then
 * rescaled so the last request goes out at exactly N/r seconds. Concurrency is capped separately
 * by the driver (--max-concurrency). */
#ifndef G4_BENCH_ARRIVAL_H
#define G4_BENCH_ARRIVAL_H

#include <stdint.h>

typedef struct g4_rng {
    uint64_t s[4]; /* xoshiro256** state */
} g4_rng;

void g4_rng_seed(g4_rng *r, uint64_t seed);
uint64_t g4_rng_next(g4_rng *r);
double g4_rng_uniform(g4_rng *r);                 /* [0, 1) */
long g4_rng_range(g4_rng *r, long lo, long hi);   /* integer in [lo, hi] */
double g4_rng_normal(g4_rng *r);                  /* standard normal */
double g4_rng_gamma(g4_rng *r, double shape, double scale);

/* Fills t[0..n) with send offsets in seconds from the benchmark start. rate ≤ 0 or infinite:
 * all zero. burstiness must be > 0. */
void g4_arrival_schedule(double *t, int n, double rate, double burstiness, g4_rng *rng);

#endif
