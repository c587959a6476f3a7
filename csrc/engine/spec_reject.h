/* spec_reject.h — the speculative rejection sampler: which of k proposed tokens a sampled
 * request keeps, and the one token the target adds after them, such that the tokens produced
 * are distributed exactly as if the target had sampled them one by one.
 *
 * For proposed tokens d_0..d_{k-1}, target rows p_0..p_k (p_i: the target's distribution for
 * the position after the prefix and d_0..d_{i-1}) and draft rows q_0..q_{k-1} (q_i: the
 * distribution d_i was drawn from), all over V ids and already processed as the request
 * samples (penalties, temperature, top-k/top-p/min-p, renormalised):
 *   for i = 0..k-1: draw u ∈ [0,1); accept d_i when u < min(1, p_i(d_i) / q_i(d_i));
 *                   at the first rejection, sample from normalise(max(0, p_i − q_i)) and stop;
 *   all k accepted: sample the bonus token from p_k.
 * A point-mass draft (n-gram prompt lookup: q_i = δ(d_i)) is q = NULL: d_i is accepted with
 * probability p_i(d_i), and a rejection samples from p_i without d_i. A draft token with
 * q_i(d_i) = 0 is accepted when p_i(d_i) > 0. When the residual has no mass (p_i ≤ q_i
 * everywhere, reachable only through rounding), the token comes from p_i.
 * Sampling a row takes the first id, in id order, whose cumulative mass exceeds u · mass.
 * Deterministic: the uniforms come from a splitmix64 state (base/rng.h) the caller keeps.
 * Not here: greedy verification (longest matching prefix, the engine), proposing, turning
 * logits into the rows (sampling.c), KV rollback. Host C; no allocation. */
#ifndef G4_ENGINE_SPEC_REJECT_H
#define G4_ENGINE_SPEC_REJECT_H

#include <stdint.h>

typedef struct g4_spec_rows {
    int vocab;             /* V */
    int k;                 /* proposed tokens, ≥ 0 */
    const int32_t *draft;  /* [k] proposed ids, each in [0, V) */
    const float *p;        /* [(k + 1) × V] target rows, each summing to 1 */
    const float *q;        /* [k × V] draft rows, each summing to 1; NULL = point masses on draft */
} g4_spec_rows;

typedef struct g4_spec_verdict {
    int n_accepted;        /* leading proposed tokens kept, 0..k */
    int32_t token;         /* the token after them: the residual sample or the bonus */
} g4_spec_verdict;

/* Runs the rule above; advances *rng by n_accepted + 1 (or + 2 after a rejection) draws. */
g4_spec_verdict g4_spec_reject(const g4_spec_rows *r, uint64_t *rng);

/* u ∈ [0, 1) with 53 random bits, advancing *rng: the draws g4_spec_reject makes. */
double g4_spec_uniform(uint64_t *rng);

/* The id that u ∈ [0, 1) picks from one row (not necessarily normalised): the first id whose
 * cumulative mass exceeds u · Σ row; the last id with mass when rounding leaves none. −1 when the
 * row has no mass. */
int32_t g4_spec_pick(const float *row, int vocab, double u);

#endif
