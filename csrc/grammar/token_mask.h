/* token_mask.h - which tokens of the vocabulary a matcher may read next.
 *
 * A mask is one bit per token id (n_vocab bits, 32 per uint32_t word, bit id & 31 of word id >> 5).
 * A token is allowed when the matcher accepts all of its bytes; end tokens (EOS, stop tokens) are
 * allowed exactly when the matcher is in an accepting state.
 *
 * How it is fast (measured in bench/grammar/): the trie walk from one head (state s, frame f)
 * splits into what happens inside s's rule and the rules it calls (the same for every f: cached
 * once per state as a bitset, plus the trie nodes where the rule may return) and what happens after
 * the return (walked for real, only below those nodes). Whole masks are also cached by the exact
 * context (the heads' states and their return stacks), which is what a string being generated hits.
 * Not here: the trie (token_trie.h), the matcher (matcher.h).
 * Threading: a g4_mask_cache belongs to one grammar and one trie and is used by one thread. */
#ifndef G4_GRAMMAR_TOKEN_MASK_H
#define G4_GRAMMAR_TOKEN_MASK_H

#include <stdint.h>

#include "grammar/matcher.h"
#include "grammar/token_trie.h"

typedef struct g4_mask_cache g4_mask_cache;

/* A cache for masks of grammar g over trie t (both outlive it). NULL on OOM. */
g4_mask_cache *g4_mask_cache_new(const g4_grammar *g, const g4_token_trie *t);
void g4_mask_cache_free(g4_mask_cache *c);

/* Builds now the per-state entries of every state that reads at least min_bytes of the 256 byte
 * values (string contents: the entries whose whole-trie walk is expensive), so that the first
 * masks inside strings do not pay for them. Part of preparing a grammar for a tokenizer (the
 * benchmark reports it with the compile time). 0, or -1 on OOM. */
int g4_mask_cache_precompute(g4_mask_cache *c, int min_bytes);

/* Number of uint32 words of a mask over t. */
int32_t g4_mask_words(const g4_token_trie *t);

/* Fills mask with the tokens m may read next; end_ids[0..n_end) are allowed when m is accepting.
 * 0, or -1 on OOM. m must use the grammar the cache was made for. */
int g4_token_mask(g4_mask_cache *c, g4_matcher *m, const int32_t *end_ids, int n_end, uint32_t *mask);

/* The same mask by walking the whole trie from m's heads (no caches): the reference the tests
 * compare with. */
int g4_token_mask_slow(g4_mask_cache *c, g4_matcher *m, const int32_t *end_ids, int n_end, uint32_t *mask);

/* Reads token id's bytes into m (g4_matcher_advance). -1 when not allowed or excluded. */
int g4_matcher_advance_token(g4_matcher *m, const g4_token_trie *t, int32_t id);

/* Cache statistics (benchmarks). */
typedef struct g4_mask_stats {
    int64_t calls, context_hits, state_entries, walked_nodes;
} g4_mask_stats;
g4_mask_stats g4_mask_cache_stats(const g4_mask_cache *c);

#endif
