/* test_kvcache.c — KV pools and the prefix cache: reference counts, free list vs LRU, eviction
 * order (least recently released first) and key removal on eviction, all-or-nothing reserve,
 * sliding-window release, lookup rules (global prefix + the sliding window's blocks, ≥ 1 token
 * left to compute), a disabled cache, and capacity planning on the tiny geometry. */
#include <string.h>

#include "check.h"
#include "engine/kvcache.h"
#include "engine/prefix_cache.h"
#include "model/testmodel.h"

static int row_empty(g4_kvcache *kv, int pool, int slot) {
    const int32_t *r = g4_kvcache_row(kv, pool, slot);
    for (int b = 0; b < kv->max_blocks; b++)
        if (r[b] >= 0) return 0;
    return 1;
}

/* The hit shrinks to where the sliding window before it is cached: sequence A (8 tokens) caches
 * sliding blocks 0, 1; sequence B (24 tokens, same prefix) lets blocks 0..3 leave its window
 * before registering, so only 4, 5 are cached from it. A 21-token lookup finds global 0..4, but
 * the windows of hits of 5, 4 and 3 blocks need sliding block 2 or 3: it must shrink to 2 blocks,
 * whose window [1, 8) lies in A's blocks 0, 1. A 25-token lookup hits 6 blocks (window in 4, 5). */
static void test_hit_shrinks_to_cached_window(void) {
    g4_error err = {{0}};
    g4_kvcache kv;
    REQUIRE_VOID(g4_kvcache_init(&kv, 8, 16, 4, 8, 3, 16, &err) == 0, "%s", err.msg);
    g4_prefix_cache pc;
    REQUIRE_VOID(g4_prefix_cache_init(&pc, &kv, true, &err) == 0, "%s", err.msg);
    int32_t toks[32];
    for (int i = 0; i < 32; i++) toks[i] = 7 + i * 5;
    uint64_t keys[8], parent = G4_PREFIX_ROOT;
    for (int k = 0; k < 8; k++) keys[k] = parent = g4_prefix_hash(parent, toks + 4 * k, 4);
    CHECK(g4_kvcache_reserve(&kv, 0, 0, 8) == 0, "A reserve");
    for (int k = 0; k < 2; k++) g4_prefix_register(&pc, 0, k, keys[k]);
    for (int from = 0; from < 24; from += 8) { /* B in chunks of 8, its window released as it goes */
        CHECK(g4_kvcache_reserve(&kv, 1, from, from + 8) == 0, "B reserve %d", from);
        g4_kvcache_release_window(&kv, 1, from + 8);
    }
    for (int k = 0; k < 6; k++) g4_prefix_register(&pc, 1, k, keys[k]);
    CHECK(pc.t[G4_POOL_SLIDING].n_present == 4 && pc.t[G4_POOL_GLOBAL].n_present == 6, "cached: %d sliding, %d global",
          pc.t[G4_POOL_SLIDING].n_present, pc.t[G4_POOL_GLOBAL].n_present);
    g4_kvcache_release_slot(&kv, 0);
    g4_kvcache_release_slot(&kv, 1);
    int hit = g4_prefix_lookup(&pc, 2, keys, 21);
    const int32_t *rs = g4_kvcache_row(&kv, G4_POOL_SLIDING, 2), *rg = g4_kvcache_row(&kv, G4_POOL_GLOBAL, 2);
    CHECK(hit == 8, "21 tokens: hit %d, expected 8 (shrunk from 20)", hit);
    CHECK(rg[0] >= 0 && rg[1] >= 0 && rg[2] < 0 && rs[0] >= 0 && rs[1] >= 0 && rs[2] < 0, "hit rows cover blocks 0, 1");
    g4_kvcache_release_slot(&kv, 2);
    hit = g4_prefix_lookup(&pc, 2, keys, 25);
    CHECK(hit == 24 && rs[3] < 0 && rs[4] >= 0 && rs[5] >= 0, "25 tokens: hit %d, window blocks 4, 5", hit);
    g4_kvcache_release_slot(&kv, 2);
    g4_prefix_cache_free(&pc);
    g4_kvcache_free(&kv);
}

int main(void) {
    g4_error err = {{0}};
    g4_kvcache kv;
    /* B = 4, W = 8, 2 slots, 16 columns; 6 sliding and 8 global blocks */
    REQUIRE(g4_kvcache_init(&kv, 6, 8, 4, 8, 2, 16, &err) == 0, "%s", err.msg);
    g4_prefix_cache pc;
    REQUIRE(g4_prefix_cache_init(&pc, &kv, true, &err) == 0, "%s", err.msg);
    g4_kv_pool *G = &kv.pool[G4_POOL_GLOBAL], *S = &kv.pool[G4_POOL_SLIDING];
    int32_t toks[32];
    for (int i = 0; i < 32; i++) toks[i] = 100 + i * 3;
    uint64_t keys[8], parent = G4_PREFIX_ROOT;
    for (int k = 0; k < 8; k++) keys[k] = parent = g4_prefix_hash(parent, toks + 4 * k, 4);
    CHECK(keys[1] != g4_prefix_hash(G4_PREFIX_ROOT, toks + 4, 4), "key must depend on the parent");

    /* slot 0: 8 then 9 more tokens */
    CHECK(g4_kvcache_reserve(&kv, 0, 0, 8) == 0 && g4_kv_pool_used(G) == 2 && g4_kv_pool_used(S) == 2, "reserve 8");
    CHECK(g4_kvcache_reserve(&kv, 0, 8, 17) == 0 && g4_kv_pool_used(G) == 5 && g4_kv_pool_used(S) == 5, "reserve 17");
    for (int k = 0; k < 4; k++) g4_prefix_register(&pc, 0, k, keys[k]);
    CHECK(pc.t[G4_POOL_GLOBAL].n_present == 4 && pc.t[G4_POOL_SLIDING].n_present == 4, "registered 4 + 4");
    g4_kvcache_release_window(&kv, 0, 17); /* next query at 17 needs keys 10..17: blocks 0, 1 go */
    int32_t *rs0 = g4_kvcache_row(&kv, G4_POOL_SLIDING, 0);
    CHECK(rs0[0] < 0 && rs0[1] < 0 && rs0[2] >= 0 && g4_kv_pool_used(S) == 3, "window release");
    CHECK(S->n_lru == 2 && S->n_free == 1, "released cached sliding blocks go to the LRU: lru %d free %d", S->n_lru,
          S->n_free);

    /* all or nothing: slot 1 wants 4 sliding blocks, only 3 are available */
    CHECK(g4_kvcache_reserve(&kv, 1, 0, 16) != 0, "reserve beyond the pool must fail");
    CHECK(row_empty(&kv, G4_POOL_GLOBAL, 1) && row_empty(&kv, G4_POOL_SLIDING, 1) && g4_kv_pool_used(G) == 5,
          "a failed reserve changed something");

    g4_kvcache_release_slot(&kv, 0);
    CHECK(G->n_lru == 4 && G->n_free == 4 && S->n_lru == 4 && S->n_free == 2,
          "after release: G lru %d free %d, S lru %d free %d", G->n_lru, G->n_free, S->n_lru, S->n_free);

    /* lookup of 16 tokens: at most 15 may be skipped → 3 blocks (12), needs sliding blocks 1..2 */
    int hit = g4_prefix_lookup(&pc, 1, keys, 16);
    int32_t *rg1 = g4_kvcache_row(&kv, G4_POOL_GLOBAL, 1), *rs1 = g4_kvcache_row(&kv, G4_POOL_SLIDING, 1);
    CHECK(hit == 12 && rg1[0] >= 0 && rg1[2] >= 0 && rg1[3] < 0, "hit %d", hit);
    CHECK(rs1[0] < 0 && rs1[1] >= 0 && rs1[2] >= 0 && rs1[3] < 0, "sliding hit covers [5, 12) only");
    CHECK(G->ref[rg1[0]] == 1 && G->n_lru == 1 && S->n_lru == 2, "hit takes references: G lru %d S lru %d", G->n_lru,
          S->n_lru);
    g4_kvcache_release_slot(&kv, 1);
    hit = g4_prefix_lookup(&pc, 1, keys, 17);
    CHECK(hit == 16, "hit of 17 tokens: %d", hit);
    CHECK(pc.hit_tokens == 28 && pc.query_tokens == 33, "counters %llu / %llu", (unsigned long long)pc.hit_tokens,
          (unsigned long long)pc.query_tokens);
    g4_kvcache_release_slot(&kv, 1);

    /* sliding block missing from the window → the hit shrinks to where the window is cached */
    int32_t key2_block = -1;
    for (int b = 0; b < S->n_blocks; b++)
        if (pc.t[G4_POOL_SLIDING].present[b] && pc.t[G4_POOL_SLIDING].key[b] == keys[3]) key2_block = b;
    CHECK(key2_block >= 0, "sliding block 3 is cached");

    /* eviction: LRU order of release was global blocks 0, 1, 2, 3 (slot 1 released in order) */
    CHECK(g4_kvcache_reserve(&kv, 0, 0, 20) == 0, "reserve 5 blocks evicting one");
    CHECK(G->n_lru == 3 && pc.t[G4_POOL_GLOBAL].n_present == 3, "one global block evicted: lru %d present %d", G->n_lru,
          pc.t[G4_POOL_GLOBAL].n_present);
    hit = g4_prefix_lookup(&pc, 1, keys, 17);
    CHECK(hit == 0, "block 0 was the least recently released and must be gone: hit %d", hit);
    g4_kvcache_release_slot(&kv, 0);
    g4_kvcache_release_slot(&kv, 1);
    CHECK(g4_kv_pool_used(G) == 0 && g4_kv_pool_used(S) == 0, "all blocks back");
    CHECK(G->n_free + G->n_lru == G->n_blocks && S->n_free + S->n_lru == S->n_blocks, "pool accounting");

    /* disabled cache: never hits, never registers */
    g4_prefix_cache_free(&pc);
    g4_kvcache_free(&kv);
    REQUIRE(g4_kvcache_init(&kv, 6, 8, 4, 8, 2, 16, &err) == 0, "%s", err.msg);
    REQUIRE(g4_prefix_cache_init(&pc, &kv, false, &err) == 0, "%s", err.msg);
    g4_kvcache_reserve(&kv, 0, 0, 8);
    g4_prefix_register(&pc, 0, 0, keys[0]);
    g4_kvcache_release_slot(&kv, 0);
    CHECK(g4_prefix_lookup(&pc, 1, keys, 9) == 0 && kv.pool[G4_POOL_GLOBAL].n_free == 8, "disabled cache");

    /* window release at the exact boundary (B = 4, W = 8): block 1 holds keys 4..7; the query at
     * position L needs keys L−7..L, so block 1 is live at L = 14 and dead at L = 15. */
    REQUIRE(g4_kvcache_reserve(&kv, 0, 0, 16) == 0, "reserve 16");
    int32_t *rw = g4_kvcache_row(&kv, G4_POOL_SLIDING, 0);
    g4_kvcache_release_window(&kv, 0, 14);
    CHECK(rw[0] < 0 && rw[1] >= 0 && g4_kv_pool_used(&kv.pool[G4_POOL_SLIDING]) == 3, "L = 14 keeps block 1");
    g4_kvcache_release_window(&kv, 0, 15);
    CHECK(rw[1] < 0 && rw[2] >= 0 && g4_kv_pool_used(&kv.pool[G4_POOL_SLIDING]) == 2, "L = 15 drops block 1");
    g4_kvcache_release_slot(&kv, 0);
    g4_prefix_cache_free(&pc);
    g4_kvcache_free(&kv);

    /* capacity planning on tiny-dense (6 layers, 2 global), bf16, B = 16, 128-token sequences */
    g4_config cfg;
    REQUIRE(g4_testmodel_config(&cfg, "tiny-dense", &err) == 0, "%s", err.msg);
    size_t s_tok = 0, g_tok = 0;
    for (int l = 0; l < cfg.n_layers; l++) {
        if (g4_layer_is_global(&cfg, l))
            g_tok += (size_t)cfg.n_global_kv_heads * cfg.global_head_dim * 2 * (cfg.k_eq_v ? 1 : 2);
        else s_tok += (size_t)cfg.n_kv_heads * cfg.head_dim * 2 * 2;
    }
    int nb_g = 128 / 16, nb_s = (cfg.sliding_window - 1 + 64 + 15) / 16 + 1;
    if (nb_s > nb_g) nb_s = nb_g;
    size_t per_seq = (size_t)nb_g * 16 * g_tok + (size_t)nb_s * 16 * s_tok;
    size_t pad = 16 * g_tok + 16 * s_tok; /* the model's pad block of each pool comes out of the budget */
    g4_kv_plan plan;
    CHECK(g4_kv_plan_budget(&plan, &cfg, 10 * per_seq + 16 * g_tok * 3 + pad, 2, 16, 128, 64, &err) == 0, "%s",
          err.msg);
    printf("plan: %d sliding + %d global blocks, %lld tokens, %d full-length sequences, %zu bytes\n",
           plan.n_blocks_sliding, plan.n_blocks_global, plan.tokens, plan.full_len_seqs, plan.bytes_used);
    CHECK(plan.full_len_seqs == 10 && plan.n_blocks_global == 10 * nb_g + 3 && plan.n_blocks_sliding == 10 * nb_s,
          "plan %d seqs, %d global, %d sliding", plan.full_len_seqs, plan.n_blocks_global, plan.n_blocks_sliding);
    CHECK(plan.tokens == (long long)plan.n_blocks_global * 16 && plan.bytes_used == 10 * per_seq + 16 * g_tok * 3,
          "tokens / bytes");
    CHECK(g4_kv_plan_budget(&plan, &cfg, 10 * per_seq + 16 * g_tok * 3 + pad - 1, 2, 16, 128, 64, &err) == 0 &&
              plan.n_blocks_global == 10 * nb_g + 2,
          "a byte short of the pad: one global block fewer (%d)", plan.n_blocks_global);
    CHECK(g4_kv_plan_budget(&plan, &cfg, per_seq + pad - 1, 2, 16, 128, 64, &err) != 0 &&
              strstr(err.msg, "no sequence"),
          "too small a budget: %s", err.msg);
    test_hit_shrinks_to_cached_window();
    return check_summary();
}
