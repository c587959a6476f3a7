/* kvcache.c — KV block pools (ref counts, free list, LRU of cached blocks), per-slot block
 * tables and capacity planning (see kvcache.h). Engine thread only.
 * Not here: prefix hashing (prefix_cache.c), preemption policy (scheduler.c). */
#include "engine/kvcache.h"

#include <limits.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

/* --- one pool ---------------------------------------------------------------------------- */

int g4_kv_pool_init(g4_kv_pool *p, int id, int n_blocks, g4_error *err) {
    memset(p, 0, sizeof *p);
    if (n_blocks < 1) return g4_fail(err, "kvcache: pool %d has %d blocks, need ≥ 1", id, n_blocks);
    p->id = id;
    p->n_blocks = n_blocks;
    size_t n = (size_t)n_blocks;
    p->ref = calloc(n, sizeof *p->ref);
    p->cached = calloc(n, 1);
    p->free_ids = malloc(n * sizeof *p->free_ids);
    p->lru_prev = malloc(n * sizeof *p->lru_prev);
    p->lru_next = malloc(n * sizeof *p->lru_next);
    if (!p->ref || !p->cached || !p->free_ids || !p->lru_prev || !p->lru_next) {
        g4_kv_pool_free(p);
        return g4_fail(err, "kvcache: out of memory for a pool of %d blocks", n_blocks);
    }
    for (int i = 0; i < n_blocks; i++) {
        p->free_ids[i] = n_blocks - 1 - i; /* pop gives 0, 1, 2, ... */
        p->lru_prev[i] = p->lru_next[i] = -1;
    }
    p->n_free = n_blocks;
    p->lru_head = p->lru_tail = -1;
    return 0;
}

void g4_kv_pool_free(g4_kv_pool *p) {
    free(p->ref);
    free(p->cached);
    free(p->free_ids);
    free(p->lru_prev);
    free(p->lru_next);
    memset(p, 0, sizeof *p);
}

static void lru_remove(g4_kv_pool *p, int32_t b) {
    int32_t pr = p->lru_prev[b], nx = p->lru_next[b];
    if (pr >= 0) p->lru_next[pr] = nx;
    else p->lru_head = nx;
    if (nx >= 0) p->lru_prev[nx] = pr;
    else p->lru_tail = pr;
    p->lru_prev[b] = p->lru_next[b] = -1;
    p->n_lru--;
}

static void lru_push_tail(g4_kv_pool *p, int32_t b) {
    p->lru_prev[b] = p->lru_tail;
    p->lru_next[b] = -1;
    if (p->lru_tail >= 0) p->lru_next[p->lru_tail] = b;
    else p->lru_head = b;
    p->lru_tail = b;
    p->n_lru++;
}

int32_t g4_kv_pool_alloc(g4_kv_pool *p) {
    int32_t b;
    if (p->n_free) {
        b = p->free_ids[--p->n_free];
    } else if (p->lru_head >= 0) {
        b = p->lru_head;
        lru_remove(p, b);
        p->cached[b] = 0;
        if (p->on_evict) p->on_evict(p->evict_ctx, p->id, b);
    } else {
        return -1;
    }
    p->ref[b] = 1;
    return b;
}

void g4_kv_pool_ref(g4_kv_pool *p, int32_t b) {
    if (p->ref[b]++ == 0) lru_remove(p, b); /* only cached blocks are referenced from ref 0 */
}

void g4_kv_pool_unref(g4_kv_pool *p, int32_t b) {
    if (--p->ref[b] > 0) return;
    if (p->cached[b]) lru_push_tail(p, b);
    else p->free_ids[p->n_free++] = b;
}

void g4_kv_pool_set_cached(g4_kv_pool *p, int32_t b, int cached) { p->cached[b] = cached ? 1 : 0; }

/* --- two pools and the tables -------------------------------------------------------------- */

int g4_kvcache_init(g4_kvcache *kv, int n_blocks_sliding, int n_blocks_global, int block_size, int window, int n_slots,
                    int max_blocks, g4_error *err) {
    memset(kv, 0, sizeof *kv);
    if (block_size < 1 || window < 1 || n_slots < 1 || max_blocks < 1)
        return g4_fail(err, "kvcache: block_size %d, window %d, slots %d, max_blocks %d must all be ≥ 1", block_size,
                       window, n_slots, max_blocks);
    kv->block_size = block_size;
    kv->window = window;
    kv->n_slots = n_slots;
    kv->max_blocks = max_blocks;
    if (g4_kv_pool_init(&kv->pool[G4_POOL_SLIDING], G4_POOL_SLIDING, n_blocks_sliding, err) ||
        g4_kv_pool_init(&kv->pool[G4_POOL_GLOBAL], G4_POOL_GLOBAL, n_blocks_global, err)) {
        g4_kvcache_free(kv);
        return -1;
    }
    size_t n = (size_t)n_slots * max_blocks;
    for (int p = 0; p < G4_N_POOLS; p++) {
        kv->table[p] = malloc(n * sizeof(int32_t));
        if (!kv->table[p]) {
            g4_kvcache_free(kv);
            return g4_fail(err, "kvcache: out of memory for %d × %d block tables", n_slots, max_blocks);
        }
        for (size_t i = 0; i < n; i++) kv->table[p][i] = -1;
    }
    return 0;
}

void g4_kvcache_free(g4_kvcache *kv) {
    for (int p = 0; p < G4_N_POOLS; p++) {
        g4_kv_pool_free(&kv->pool[p]);
        free(kv->table[p]);
        kv->table[p] = NULL;
    }
}

void g4_kvcache_need(const g4_kvcache *kv, int slot, int from, int to, int need[G4_N_POOLS]) {
    int B = kv->block_size;
    for (int p = 0; p < G4_N_POOLS; p++) {
        const int32_t *row = kv->table[p] + (size_t)slot * kv->max_blocks;
        need[p] = 0;
        for (int b = from / B; b <= (to - 1) / B; b++) need[p] += row[b] < 0;
    }
}

int g4_kvcache_reserve(g4_kvcache *kv, int slot, int from, int to) {
    int need[G4_N_POOLS];
    g4_kvcache_need(kv, slot, from, to, need);
    for (int p = 0; p < G4_N_POOLS; p++)
        if (need[p] > g4_kv_pool_available(&kv->pool[p])) return -1;
    int B = kv->block_size;
    for (int p = 0; p < G4_N_POOLS; p++) {
        int32_t *row = g4_kvcache_row(kv, p, slot);
        for (int b = from / B; b <= (to - 1) / B; b++)
            if (row[b] < 0) row[b] = g4_kv_pool_alloc(&kv->pool[p]);
    }
    return 0;
}

void g4_kvcache_release_window(g4_kvcache *kv, int slot, int len) {
    int B = kv->block_size, first_needed = len - kv->window + 1;
    int32_t *row = g4_kvcache_row(kv, G4_POOL_SLIDING, slot);
    for (int b = first_needed / B - 1; b >= 0 && (b + 1) * B <= first_needed; b--) {
        if (row[b] < 0) break; /* everything below was released earlier */
        g4_kv_pool_unref(&kv->pool[G4_POOL_SLIDING], row[b]);
        row[b] = -1;
    }
}

void g4_kvcache_release_slot(g4_kvcache *kv, int slot) {
    for (int p = 0; p < G4_N_POOLS; p++) {
        int32_t *row = g4_kvcache_row(kv, p, slot);
        for (int b = 0; b < kv->max_blocks; b++) {
            if (row[b] < 0) continue;
            g4_kv_pool_unref(&kv->pool[p], row[b]);
            row[b] = -1;
        }
    }
}

int g4_kvcache_seq_blocks(const g4_kvcache *kv, int pool, int L, int C) {
    /* 64-bit sums: window + chunk can pass INT_MAX even though the block counts cannot */
    int64_t B = kv->block_size, all = ((int64_t)L + B - 1) / B;
    if (pool == G4_POOL_GLOBAL) return (int)all;
    /* window W−1 keys before the chunk, the chunk itself, one partial block at each end */
    int64_t win = ((int64_t)kv->window - 1 + C + B - 1) / B + 1;
    return (int)(win < all ? win : all);
}

/* --- capacity planning --------------------------------------------------------------------- */

int g4_kv_plan_budget(g4_kv_plan *plan, const g4_config *cfg, size_t bytes_budget, int kv_elem_bytes, int block_size,
                      int max_model_len, int chunk, g4_error *err) {
    memset(plan, 0, sizeof *plan);
    if (block_size < 1 || max_model_len < 1 || chunk < 1 || kv_elem_bytes < 1)
        return g4_fail(err, "kv plan: block_size %d, max_model_len %d, chunk %d, elem bytes %d must be ≥ 1", block_size,
                       max_model_len, chunk, kv_elem_bytes);
    size_t s = 0, g = 0;
    for (int l = 0; l < cfg->n_layers; l++) {
        size_t per_tok = (size_t)g4_layer_kv_heads(cfg, l) * g4_layer_head_dim(cfg, l) * kv_elem_bytes;
        if (g4_layer_is_global(cfg, l)) g += per_tok * (g4_layer_k_eq_v(cfg, l) ? 1 : 2);
        else s += per_tok * 2;
    }
    plan->bytes_per_block_sliding = s * block_size;
    plan->bytes_per_block_global = g * block_size;
    g4_kvcache geo = {.block_size = block_size, .window = cfg->sliding_window};
    int nb_s = g4_kvcache_seq_blocks(&geo, G4_POOL_SLIDING, max_model_len, chunk);
    int nb_g = g4_kvcache_seq_blocks(&geo, G4_POOL_GLOBAL, max_model_len, chunk);
    size_t per_seq = (size_t)nb_s * plan->bytes_per_block_sliding + (size_t)nb_g * plan->bytes_per_block_global;
    /* the model adds one pad block to each pool (batch-bucket padding, model/gemma4.c plan_kv),
     * ids n_blocks_*: its bytes come out of the budget and its id must fit an int */
    size_t pad = plan->bytes_per_block_sliding + plan->bytes_per_block_global;
    bytes_budget = bytes_budget > pad ? bytes_budget - pad : 0;
    size_t n_seqs = per_seq ? bytes_budget / per_seq : 0;
    if (n_seqs < 1)
        return g4_fail(err, "kv plan: %zu bytes hold no sequence of %d tokens (one needs %zu bytes)", bytes_budget,
                       max_model_len, per_seq);
    if (n_seqs > (size_t)1 << 20) n_seqs = (size_t)1 << 20;
    if (n_seqs > (size_t)(INT_MAX / 2) / (size_t)nb_g) n_seqs = (size_t)(INT_MAX / 2) / (size_t)nb_g; /* ids are int */
    size_t rest = bytes_budget - n_seqs * per_seq;
    plan->n_blocks_sliding = (int)(n_seqs * nb_s);
    plan->n_blocks_global = (int)(n_seqs * nb_g);
    if (plan->bytes_per_block_global) {
        size_t extra = rest / plan->bytes_per_block_global, room = (size_t)(INT_MAX - 1 - plan->n_blocks_global);
        plan->n_blocks_global += (int)(extra < room ? extra : room);
    }
    plan->bytes_used = (size_t)plan->n_blocks_sliding * plan->bytes_per_block_sliding +
                       (size_t)plan->n_blocks_global * plan->bytes_per_block_global;
    plan->tokens = (long long)plan->n_blocks_global * block_size;
    plan->full_len_seqs = (int)(plan->n_blocks_global / nb_g);
    if (nb_s && plan->n_blocks_sliding / nb_s < plan->full_len_seqs)
        plan->full_len_seqs = plan->n_blocks_sliding / nb_s;
    return 0;
}
