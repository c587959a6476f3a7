/* token_trie.h - the vocabulary as bytes, in a trie laid out in depth-first order.
 *
 * Built once per tokenizer: each token's text as the bytes it decodes to (U+2581 -> ' ',
 * <0xXX> -> that byte); special added tokens (<eos>, <|turn>, ...) are left out, so a grammar can
 * never produce them (end-of-sequence is allowed separately, token_mask.h). Nodes are numbered in
 * preorder, so a subtree is the range [u, end[u]) and a walk can skip it in one step.
 * Not here: walking it against a grammar (token_mask.c). Immutable after build; shareable. */
#ifndef G4_GRAMMAR_TOKEN_TRIE_H
#define G4_GRAMMAR_TOKEN_TRIE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "text/tokenizer.h"

typedef struct g4_token_trie {
    int32_t n_vocab;   /* id space */
    int32_t n_nodes;   /* node 0 is the root (no byte) */
    uint8_t *byte;     /* [n_nodes] the byte on the edge into the node */
    uint16_t *depth;   /* [n_nodes] root = 0 */
    int32_t *end;      /* [n_nodes] one past the node's subtree */
    int32_t *tok_off;  /* [n_nodes + 1] tokens ending at node u: tok_ids[tok_off[u] .. tok_off[u+1]) */
    int32_t *tok_ids;
    int32_t max_depth;
    /* each token's bytes: bytes + bytes_off[id], length bytes_off[id+1] - bytes_off[id] (0 = excluded) */
    uint8_t *bytes;
    int64_t *bytes_off; /* [n_vocab + 1] */
} g4_token_trie;

/* From explicit byte strings (tok[i], len[i]; len 0 or NULL tok = excluded). NULL on OOM / error. */
int g4_token_trie_build(const char *const *tok, const uint32_t *len, int32_t n_vocab, g4_token_trie **out,
                        g4_error *err);
/* From a loaded tokenizer (special tokens excluded). */
int g4_token_trie_from_tokenizer(const g4_tokenizer *t, g4_token_trie **out, g4_error *err);
/* The same with the special tokens ids[0..n) included as their text (a forced tool call writes
 * <|tool_call>, <tool_call|> and <|"|>; json_schema.h's g4_gemma_tool_call_compile). */
int g4_token_trie_with_specials(const g4_tokenizer *t, const int32_t *ids, int n, g4_token_trie **out, g4_error *err);
void g4_token_trie_free(g4_token_trie *t);

/* A synthetic vocabulary of n tokens shaped like a real BPE one, for benchmarks and tests: 256
 * single bytes, numbers, words from common syllables with and without a leading space, punctuation
 * / code / JSON fragments ("}, ":, ...), whitespace runs, CJK, accented and Cyrillic words, emoji.
 * Deterministic in seed. */
int g4_token_trie_synthetic(int32_t n, uint64_t seed, g4_token_trie **out, g4_error *err);

/* The bytes of token id (NULL, *len 0 for an excluded or unknown id). */
const uint8_t *g4_token_trie_token(const g4_token_trie *t, int32_t id, size_t *len);

#endif
