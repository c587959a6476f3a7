/* kvcache.h — paged KV block accounting for the engine: two pools (sliding-window layers and
 * global layers), reference counts, a free list and an LRU of reusable cached blocks per pool,
 * the per-slot block tables handed to the model, and capacity planning from a memory budget.
 *
 * A block is in exactly one of three states:
 *   used     ref > 0 (owned by one or more sequences)
 *   cached   ref == 0 but its contents are registered in the prefix cache: kept in LRU order and
 *            taken (evicted) only when the free list is empty
 *   free     ref == 0, on the free list
 * Eviction calls on_evict so the prefix cache can forget the block's key.
 * Not here: hashing and lookup (prefix_cache.c), who gets preempted (scheduler.c), the KV bytes
 * themselves (the model owns them). Engine thread only; no locking. */
#ifndef G4_ENGINE_KVCACHE_H
#define G4_ENGINE_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "model/config.h"

enum { G4_POOL_SLIDING = 0, G4_POOL_GLOBAL = 1, G4_N_POOLS = 2 };

typedef void (*g4_kv_evict_fn)(void *ctx, int pool, int32_t block);

typedef struct g4_kv_pool {
    int id;                  /* G4_POOL_* */
    int n_blocks;
    int32_t *ref;            /* [n_blocks] reference counts */
    uint8_t *cached;         /* [n_blocks] 1: registered in the prefix cache */
    int32_t *free_ids;       /* stack of free block ids */
    int n_free;
    int32_t *lru_prev, *lru_next; /* [n_blocks] doubly linked LRU of cached ref-0 blocks, -1 ends */
    int32_t lru_head, lru_tail;   /* head = least recently released = first evicted */
    int n_lru;
    g4_kv_evict_fn on_evict;
    void *evict_ctx;
} g4_kv_pool;

int g4_kv_pool_init(g4_kv_pool *p, int id, int n_blocks, g4_error *err);
void g4_kv_pool_free(g4_kv_pool *p);
/* Blocks that an allocation can still get: free + cached-evictable. */
static inline int g4_kv_pool_available(const g4_kv_pool *p) { return p->n_free + p->n_lru; }
/* Blocks with ref > 0. */
static inline int g4_kv_pool_used(const g4_kv_pool *p) { return p->n_blocks - p->n_free - p->n_lru; }
/* A block with ref 1: from the free list, else the LRU head (evicted: on_evict is called and
 * the block stops being cached). -1 when neither has one. */
int32_t g4_kv_pool_alloc(g4_kv_pool *p);
/* ref += 1; a cached ref-0 block leaves the LRU. */
void g4_kv_pool_ref(g4_kv_pool *p, int32_t b);
/* ref −= 1; at 0 a cached block goes to the LRU tail (most recent), any other to the free list. */
void g4_kv_pool_unref(g4_kv_pool *p, int32_t b);
/* Marks a block (ref > 0) as registered in the prefix cache, or no longer so. */
void g4_kv_pool_set_cached(g4_kv_pool *p, int32_t b, int cached);

/* The engine's KV view: two pools plus one block-table row per sequence slot and pool. */
typedef struct g4_kvcache {
    g4_kv_pool pool[G4_N_POOLS];
    int block_size;          /* B tokens */
    int window;              /* sliding window W (keys pos−W+1..pos) */
    int n_slots;             /* sequence slots (rows of the tables) */
    int max_blocks;          /* table columns: logical block = pos / B */
    int32_t *table[G4_N_POOLS]; /* [n_slots, max_blocks], −1 = none; what the model reads */
} g4_kvcache;

int g4_kvcache_init(g4_kvcache *kv, int n_blocks_sliding, int n_blocks_global, int block_size, int window, int n_slots,
                    int max_blocks, g4_error *err);
void g4_kvcache_free(g4_kvcache *kv);

static inline int32_t *g4_kvcache_row(g4_kvcache *kv, int pool, int slot) {
    return kv->table[pool] + (size_t)slot * kv->max_blocks;
}
/* First position whose sliding keys a query at position `next` still needs. */
static inline int g4_kvcache_window_start(const g4_kvcache *kv, int next) {
    int s = next - kv->window + 1;
    return s < 0 ? 0 : s;
}
/* Blocks each pool must newly allocate so slot can hold positions [from, to). */
void g4_kvcache_need(const g4_kvcache *kv, int slot, int from, int to, int need[G4_N_POOLS]);
/* Allocates the missing blocks for positions [from, to) in both pools (sliding blocks only from
 * the window start of `from`). All or nothing: returns −1, changing nothing, when a pool is short. */
int g4_kvcache_reserve(g4_kvcache *kv, int slot, int from, int to);
/* Releases sliding blocks lying wholly below the window of the next query (position `len`). */
void g4_kvcache_release_window(g4_kvcache *kv, int slot, int len);
/* Releases every block of the slot and clears its rows. */
void g4_kvcache_release_slot(g4_kvcache *kv, int slot);
/* Blocks a sequence can hold at once at length L when prefilled in chunks of ≤ C tokens. */
int g4_kvcache_seq_blocks(const g4_kvcache *kv, int pool, int L, int C);

/* --- capacity planning ------------------------------------------------------------------ */

typedef struct g4_kv_plan {
    int n_blocks_sliding, n_blocks_global;
    size_t bytes_per_block_sliding;  /* all sliding layers together */
    size_t bytes_per_block_global;   /* all global layers together */
    size_t bytes_used;
    long long tokens;                /* tokens the global pool holds (every token needs global KV) */
    int full_len_seqs;               /* sequences of max_model_len that fit at once */
} g4_kv_plan;

/* Splits bytes_budget between the pools so that whole max_model_len sequences fit (a sliding
 * pool needs only its window + chunk per sequence), remainder given to the global pool.
 * kv_elem_bytes: 2 for bf16, 4 for f32. Fails when not even one full-length sequence fits. */
int g4_kv_plan_budget(g4_kv_plan *plan, const g4_config *cfg, size_t bytes_budget, int kv_elem_bytes, int block_size,
                      int max_model_len, int chunk, g4_error *err);

#endif
