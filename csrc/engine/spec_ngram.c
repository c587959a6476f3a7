/* spec_ngram.c — n-gram prompt lookup (see spec_ngram.h). */
#include "engine/spec_ngram.h"

int g4_spec_ngram_propose(const int32_t *tokens, int len, int n_min, int n_max, int k, int32_t *out) {
    if (k <= 0 || n_min < 1 || n_max < n_min || len < n_min + 1) return 0;
    if (n_max > len - 1) n_max = len - 1;
    /* One backward scan over the end positions e of earlier occurrences (e < len − 1, so at least
     * one token follows): the match length is how far tokens before e agree with the suffix. The
     * first (most recent) occurrence of the longest length wins; a full-length match ends it. */
    int best_end = -1, best_n = n_min - 1;
    for (int e = len - 2; e >= 0 && best_n < n_max; e--) {
        int n = 0;
        while (n < n_max && n <= e && tokens[e - n] == tokens[len - 1 - n]) n++;
        if (n > best_n) best_n = n, best_end = e;
    }
    if (best_end < 0) return 0;
    /* the continuation, copied as LZ77 does: past the end of tokens it reads the proposal itself,
     * so a run with period len − 1 − best_end continues periodically */
    for (int m = 0; m < k; m++) {
        int i = best_end + 1 + m;
        out[m] = i < len ? tokens[i] : out[i - len];
    }
    return k;
}
