/* prefix_cache.c — hash-chain keys → cached KV blocks, per pool (see prefix_cache.h).
 * Chained hash tables whose links live in per-block arrays, so no allocation after init.
 * Not here: the LRU and eviction order (kvcache.c). Engine thread only. */
#include "base/rng.h"
#include "engine/prefix_cache.h"

#include <stdlib.h>
#include <string.h>


uint64_t g4_prefix_hash(uint64_t parent, const int32_t *tokens, int B) {
    uint64_t h = g4_mix64(parent ^ 0x9e3779b97f4a7c15ULL);
    for (int i = 0; i < B; i++)
        h = g4_mix64(h ^ ((uint64_t)(uint32_t)tokens[i] + 0x632be59bd9b4e019ULL * (uint64_t)(i + 1)));
    return h;
}

static int table_init(g4_prefix_table *t, int n_blocks) {
    int nb = 1;
    while (nb < 2 * n_blocks) nb <<= 1;
    t->n_buckets = nb;
    t->bucket = malloc((size_t)nb * sizeof *t->bucket);
    t->next = malloc((size_t)n_blocks * sizeof *t->next);
    t->key = calloc((size_t)n_blocks, sizeof *t->key);
    t->present = calloc((size_t)n_blocks, 1);
    if (!t->bucket || !t->next || !t->key || !t->present) return -1;
    for (int i = 0; i < nb; i++) t->bucket[i] = -1;
    return 0;
}

static void table_free(g4_prefix_table *t) {
    free(t->bucket);
    free(t->next);
    free(t->key);
    free(t->present);
    memset(t, 0, sizeof *t);
}

static int32_t table_find(const g4_prefix_table *t, uint64_t key) {
    for (int32_t b = t->bucket[key & (uint64_t)(t->n_buckets - 1)]; b >= 0; b = t->next[b])
        if (t->key[b] == key) return b;
    return -1;
}

static void table_insert(g4_prefix_table *t, int32_t b, uint64_t key) {
    int32_t *head = &t->bucket[key & (uint64_t)(t->n_buckets - 1)];
    t->key[b] = key;
    t->next[b] = *head;
    *head = b;
    t->present[b] = 1;
    t->n_present++;
}

static void table_remove(g4_prefix_table *t, int32_t b) {
    if (!t->present[b]) return;
    int32_t *link = &t->bucket[t->key[b] & (uint64_t)(t->n_buckets - 1)];
    while (*link != b) link = &t->next[*link];
    *link = t->next[b];
    t->present[b] = 0;
    t->n_present--;
}

static void on_evict(void *ctx, int pool, int32_t block) {
    g4_prefix_cache *pc = ctx;
    table_remove(&pc->t[pool], block);
}

int g4_prefix_cache_init(g4_prefix_cache *pc, g4_kvcache *kv, bool enabled, g4_error *err) {
    memset(pc, 0, sizeof *pc);
    pc->enabled = enabled;
    pc->kv = kv;
    for (int p = 0; p < G4_N_POOLS; p++) {
        if (table_init(&pc->t[p], kv->pool[p].n_blocks)) {
            g4_prefix_cache_free(pc);
            return g4_fail(err, "prefix cache: out of memory for %d blocks", kv->pool[p].n_blocks);
        }
        kv->pool[p].on_evict = on_evict;
        kv->pool[p].evict_ctx = pc;
    }
    return 0;
}

void g4_prefix_cache_free(g4_prefix_cache *pc) {
    for (int p = 0; p < G4_N_POOLS; p++) {
        table_free(&pc->t[p]);
        if (pc->kv) pc->kv->pool[p].on_evict = NULL;
    }
}

int g4_prefix_lookup(g4_prefix_cache *pc, int slot, const uint64_t *keys, int n) {
    g4_kvcache *kv = pc->kv;
    int B = kv->block_size;
    pc->query_tokens += (uint64_t)n;
    if (!pc->enabled || n < 2) return 0;
    /* longest run of global hits, capped so one token is left to compute */
    int kmax = (n - 1) / B, k = 0;
    while (k < kmax && table_find(&pc->t[G4_POOL_GLOBAL], keys[k]) >= 0) k++;
    /* shrink until the sliding blocks of the window before k·B are cached too */
    for (; k > 0; k--) {
        int lo = g4_kvcache_window_start(kv, k * B) / B, ok = 1;
        for (int b = lo; b < k && ok; b++) ok = table_find(&pc->t[G4_POOL_SLIDING], keys[b]) >= 0;
        if (ok) break;
    }
    if (!k) return 0;
    int lo = g4_kvcache_window_start(kv, k * B) / B;
    int32_t *rg = g4_kvcache_row(kv, G4_POOL_GLOBAL, slot), *rs = g4_kvcache_row(kv, G4_POOL_SLIDING, slot);
    for (int b = 0; b < k; b++) {
        rg[b] = table_find(&pc->t[G4_POOL_GLOBAL], keys[b]);
        g4_kv_pool_ref(&kv->pool[G4_POOL_GLOBAL], rg[b]);
    }
    for (int b = lo; b < k; b++) {
        rs[b] = table_find(&pc->t[G4_POOL_SLIDING], keys[b]);
        g4_kv_pool_ref(&kv->pool[G4_POOL_SLIDING], rs[b]);
    }
    pc->hit_tokens += (uint64_t)k * B;
    return k * B;
}

void g4_prefix_register(g4_prefix_cache *pc, int slot, int k, uint64_t key) {
    if (!pc->enabled) return;
    for (int p = 0; p < G4_N_POOLS; p++) {
        int32_t b = g4_kvcache_row(pc->kv, p, slot)[k];
        g4_prefix_table *t = &pc->t[p];
        if (b < 0 || t->present[b] || table_find(t, key) >= 0) continue;
        table_insert(t, b, key);
        g4_kv_pool_set_cached(&pc->kv->pool[p], b, 1);
    }
}
