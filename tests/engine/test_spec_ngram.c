/* test_spec_ngram.c — the n-gram (prompt lookup) proposer against a direct reference: for n from
 * prompt_lookup_max down to prompt_lookup_min, the latest earlier occurrence of the last n tokens,
 * and the tokens after it continued with the match's period. Hand-made cases (a repeated phrase,
 * a periodic run, no match, the longest n winning over a more recent shorter one, k and length
 * limits) and 20,000 random sequences over small alphabets (so matches of every length occur). */
#include <string.h>

#include "check.h"
#include "engine/spec_ngram.h"
#include "engine_test_util.h"

/* The reference, written from the definition: each n separately, every candidate end position. */
static int reference(const int32_t *t, int len, int n_min, int n_max, int k, int32_t *out) {
    if (k <= 0) return 0;
    for (int n = n_max; n >= n_min; n--) {
        if (n > len - 1) continue;
        for (int e = len - 2; e >= n - 1; e--) {
            if (memcmp(t + e - n + 1, t + len - n, (size_t)n * sizeof *t)) continue;
            int32_t ext[64 + 16];
            memcpy(ext, t, (size_t)len * sizeof *t);
            for (int m = 0; m < k; m++) ext[len + m] = ext[e + 1 + m]; /* the run continues */
            memcpy(out, ext + len, (size_t)k * sizeof *out);
            return k;
        }
    }
    return 0;
}

static void expect(const int32_t *t, int len, int n_min, int n_max, int k, const int32_t *want, int n_want,
                   const char *what) {
    int32_t got[16];
    int n = g4_spec_ngram_propose(t, len, n_min, n_max, k, got);
    CHECK(n == n_want && (n == 0 || !memcmp(got, want, (size_t)n * sizeof *got)), "%s: %d tokens proposed, want %d",
          what, n, n_want);
}

int main(void) {
    /* "the cat sat on the mat . the cat" → " sat on the mat" */
    int32_t a[] = {1, 2, 3, 4, 1, 5, 6, 1, 2};
    expect(a, 9, 1, 3, 3, (int32_t[]){3, 4, 1}, 3, "phrase");
    /* a periodic run continues past the end: 7 8 9 7 8 → 9 7 8 9 */
    int32_t b[] = {7, 8, 9, 7, 8};
    expect(b, 5, 2, 2, 4, (int32_t[]){9, 7, 8, 9}, 4, "period 3");
    int32_t c[] = {5, 5, 5};
    expect(c, 3, 1, 4, 5, (int32_t[]){5, 5, 5, 5, 5}, 5, "constant run");
    int32_t d[] = {1, 2, 3, 4, 5};
    expect(d, 5, 1, 3, 4, NULL, 0, "no match");
    /* longest wins: suffix "2 3" occurs at 0..1 (then 9), "3" alone more recently (then 8) */
    int32_t f[] = {2, 3, 9, 3, 8, 2, 3};
    expect(f, 7, 1, 2, 1, (int32_t[]){9}, 1, "longest n first");
    expect(f, 7, 1, 1, 1, (int32_t[]){8}, 1, "most recent among equals");
    expect(f, 7, 3, 4, 2, NULL, 0, "below prompt_lookup_min");
    expect(a, 9, 1, 3, 0, NULL, 0, "k = 0");
    expect(a, 1, 1, 3, 2, NULL, 0, "one token");

    uint64_t seed = 1;
    int n_cases = 20000, proposed = 0, wrong = 0;
    for (int i = 0; i < n_cases; i++) {
        int32_t t[64];
        int len = rng_int(&seed, 1, 64), alpha = rng_int(&seed, 2, 6);
        for (int j = 0; j < len; j++) t[j] = rng_int(&seed, 0, alpha - 1);
        int n_min = rng_int(&seed, 1, 4), n_max = rng_int(&seed, n_min, 6), k = rng_int(&seed, 0, 8);
        int32_t want[16], got[16];
        int nw = reference(t, len, n_min, n_max, k, want);
        int ng = g4_spec_ngram_propose(t, len, n_min, n_max, k, got);
        proposed += ng > 0;
        if (nw != ng || memcmp(want, got, (size_t)nw * sizeof *got)) {
            if (!wrong++)
                fprintf(stderr, "case %d: len %d n %d..%d k %d: %d vs %d tokens\n", i, len, n_min, n_max, k, ng, nw);
        }
    }
    printf("ngram: %d random cases, %d with a proposal, %d differ from the reference\n", n_cases, proposed, wrong);
    CHECK(wrong == 0, "%d cases differ", wrong);
    CHECK(proposed > n_cases / 2 && proposed < n_cases, "proposal rate %d of %d", proposed, n_cases);
    return check_summary();
}
