/* prefix_cache.h — reuse of computed KV blocks across requests, keyed by a hash chain of token ids.
 *
 * Block k of a sequence (tokens [kB, (k+1)B)) has key h_k = H(h_{k−1}, tokens of block k), h_{−1}
 * a constant, so a key names the whole prefix up to the block's end. Once a block is full and
 * computed its key is registered for both pools (the sliding block too: its keys and values stay
 * valid after it leaves the window of the sequence that wrote it). Registered blocks are shared
 * by reference count; at ref 0 they sit in the pool's LRU (kvcache.h) and are forgotten only when
 * the pool evicts them.
 *
 * A hit of k blocks (k·B tokens) needs global blocks 0..k−1 and the sliding blocks covering
 * [k·B − W + 1, k·B); it must leave at least one token to compute (so k·B ≤ n − 1).
 * Keys are 64 bits; a false match needs a 64-bit collision (about n²/2⁶⁵ for n cached blocks).
 * Not here: block allocation (kvcache.c), when to look up (scheduler.c). Engine thread only. */
#ifndef G4_ENGINE_PREFIX_CACHE_H
#define G4_ENGINE_PREFIX_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "engine/kvcache.h"

#define G4_PREFIX_ROOT 0x6734736572766531ULL /* h_{−1} */

typedef struct g4_prefix_table {
    int n_buckets;           /* power of two */
    int32_t *bucket;         /* [n_buckets] first block, −1 = empty */
    int32_t *next;           /* [n_blocks] chain */
    uint64_t *key;           /* [n_blocks] */
    uint8_t *present;        /* [n_blocks] 1: in the table */
    int n_present;
} g4_prefix_table;

typedef struct g4_prefix_cache {
    bool enabled;
    g4_kvcache *kv;
    g4_prefix_table t[G4_N_POOLS];
    uint64_t hit_tokens, query_tokens;
} g4_prefix_cache;

/* Key of a block of B tokens following the block keyed `parent`. */
uint64_t g4_prefix_hash(uint64_t parent, const int32_t *tokens, int B);

/* Hooks into kv's pools (eviction forgets keys). enabled = false makes lookups miss and
 * registration a no-op. */
int g4_prefix_cache_init(g4_prefix_cache *pc, g4_kvcache *kv, bool enabled, g4_error *err);
void g4_prefix_cache_free(g4_prefix_cache *pc);

/* For a slot with empty tables about to compute n tokens whose full-block keys are
 * keys[0..n/B): finds the longest usable hit, takes a reference on its blocks, writes them into
 * the slot's tables and returns the number of tokens it covers (a multiple of B, ≤ n − 1).
 * Adds n to the queried and the result to the hit counters. */
int g4_prefix_lookup(g4_prefix_cache *pc, int slot, const uint64_t *keys, int n);

/* Registers block k of the slot (full and computed) under key in every pool where the slot still
 * holds it and the key is not taken yet. */
void g4_prefix_register(g4_prefix_cache *pc, int slot, int k, uint64_t key);

#endif
