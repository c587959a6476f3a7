/* spec_ngram.h — the n-gram (prompt lookup) proposer of speculative decoding: the last n tokens
 * of a request's prompt + output are looked up earlier in the same tokens, and the tokens that
 * followed that earlier occurrence are proposed as the next ones. No model, no state.
 * Not here: how many tokens to ask for or when (spec.c), verifying them (engine.c, output.c). */
#ifndef G4_ENGINE_SPEC_NGRAM_H
#define G4_ENGINE_SPEC_NGRAM_H

#include <stdint.h>

/* Looks up the suffix tokens[len − n, len) for n from n_max down to n_min (longest match wins;
 * among equally long ones the most recent occurrence) and writes the k tokens following that
 * occurrence to out; where they would run past tokens[len − 1] the match's period continues
 * (the suffix itself repeats with period len − 1 − e for an occurrence ending at e). Returns k,
 * or 0 when no suffix of length ≥ n_min occurs earlier (or k ≤ 0). Cost O(len · n_max) at worst. */
int g4_spec_ngram_propose(const int32_t *tokens, int len, int n_min, int n_max, int k, int32_t *out);

#endif
