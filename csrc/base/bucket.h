/* bucket.h — the batch bucket: the one rounding of a row count (a step's T, a GEMM's M) that
 * both the model's padded decode steps and the CUDA kernels' shape choices use.
 *
 * A pure-decode step of T tokens runs padded to Tp = min(g4_bucket(T), cap) tokens (gemma4.c,
 * cap ≥ T) and is compared bit for bit with the same step unpadded. A backend keeps a real row's
 * result identical between the two by choosing everything that shapes a row's arithmetic (a
 * GEMM's algorithm, the decode attention's split count) from g4_bucket of its row count, never
 * from the count itself — which works because the rounding is idempotent under the cap:
 *   g4_bucket(min(g4_bucket(T), cap)) == g4_bucket(T)   for every T ≤ cap
 * (if g4_bucket(T) > cap then g4_bucket(T)/2 < T ≤ cap < g4_bucket(T)).
 * Not here: what a bucket costs (gemm.cu, attention_decode.cu say so where they use it). */
#ifndef G4_BASE_BUCKET_H
#define G4_BASE_BUCKET_H

/* The smallest power of two ≥ n (1 for n ≤ 1), up to 2^30. */
static inline int g4_bucket(int n) {
    int b = 1;
    while (b < n && b < (1 << 30)) b *= 2;
    return b;
}

#endif
