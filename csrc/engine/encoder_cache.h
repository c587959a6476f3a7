/* encoder_cache.h — the vision tower's outputs (soft tokens) by image content hash: a bounded LRU,
 * so that an image seen again — the same request recomputed after preemption, the same image in
 * another request — is not encoded again. The bound counts the bytes of every entry; entries the
 * step being built uses are pinned and never evicted, so pins can hold the cache above its bound
 * until the step ends (g4_enc_cache_unpin_all), when the least recently used go first.
 * Engine thread only. Not here: when to encode (mm.c), the tower itself (model/vision.h). */
#ifndef G4_ENGINE_ENCODER_CACHE_H
#define G4_ENGINE_ENCODER_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct g4_enc_entry {
    uint64_t hash[2];        /* the image's content hash (g4_mm_item.hash) */
    int n_tokens, hidden;
    float *rows;             /* [n_tokens, hidden] soft tokens, owned */
    int pinned;
    uint64_t last_use;       /* cache clock at the last get / put */
} g4_enc_entry;

typedef struct g4_enc_cache {
    size_t cap_bytes;        /* the bound (rows' bytes) */
    size_t bytes;            /* rows' bytes held */
    g4_enc_entry **e;        /* [n] (pointers: entries do not move when the array grows) */
    int n, cap;
    uint64_t clock;
} g4_enc_cache;

void g4_enc_cache_init(g4_enc_cache *c, size_t cap_bytes);
void g4_enc_cache_free(g4_enc_cache *c);
/* The entry of (hash, n_tokens), pinned; NULL when absent. */
g4_enc_entry *g4_enc_cache_get(g4_enc_cache *c, const uint64_t hash[2], int n_tokens);
/* A new pinned entry whose rows the caller fills; unpinned least recently used entries are evicted
 * while the cache would exceed its bound. NULL when out of memory. */
g4_enc_entry *g4_enc_cache_put(g4_enc_cache *c, const uint64_t hash[2], int n_tokens, int hidden);
/* Removes an entry (one whose rows could not be made). */
void g4_enc_cache_drop(g4_enc_cache *c, g4_enc_entry *e);
/* Ends a step: every entry unpinned, then evictions down to the bound. */
void g4_enc_cache_unpin_all(g4_enc_cache *c);

#endif
