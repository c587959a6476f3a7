/* encoder_cache.c — the bounded LRU of encoder outputs (see encoder_cache.h). A linear scan: the
 * cache holds tens to hundreds of images (each is n_tokens × H floats, megabytes at real sizes),
 * so a lookup costs far less than the step it serves. Engine thread only. */
#include "engine/encoder_cache.h"

#include <stdlib.h>
#include <string.h>

static size_t entry_bytes(const g4_enc_entry *e) { return (size_t)e->n_tokens * (size_t)e->hidden * sizeof(float); }

void g4_enc_cache_init(g4_enc_cache *c, size_t cap_bytes) {
    memset(c, 0, sizeof *c);
    c->cap_bytes = cap_bytes;
}

static void remove_at(g4_enc_cache *c, int i) {
    c->bytes -= entry_bytes(c->e[i]);
    free(c->e[i]->rows);
    free(c->e[i]);
    c->e[i] = c->e[--c->n];
}

void g4_enc_cache_free(g4_enc_cache *c) {
    while (c->n) remove_at(c, c->n - 1);
    free(c->e);
    memset(c, 0, sizeof *c);
}

g4_enc_entry *g4_enc_cache_get(g4_enc_cache *c, const uint64_t hash[2], int n_tokens) {
    for (int i = 0; i < c->n; i++) {
        g4_enc_entry *e = c->e[i];
        if (e->hash[0] == hash[0] && e->hash[1] == hash[1] && e->n_tokens == n_tokens) {
            e->pinned = 1;
            e->last_use = ++c->clock;
            return e;
        }
    }
    return NULL;
}

/* Evicts unpinned entries, least recently used first, until `extra` more bytes fit the bound. */
static void evict(g4_enc_cache *c, size_t extra) {
    while (c->bytes + extra > c->cap_bytes) {
        int victim = -1;
        for (int i = 0; i < c->n; i++)
            if (!c->e[i]->pinned && (victim < 0 || c->e[i]->last_use < c->e[victim]->last_use)) victim = i;
        if (victim < 0) return; /* everything is pinned by the step being built */
        remove_at(c, victim);
    }
}

g4_enc_entry *g4_enc_cache_put(g4_enc_cache *c, const uint64_t hash[2], int n_tokens, int hidden) {
    if (c->n == c->cap) {
        int cap = c->cap ? 2 * c->cap : 16;
        g4_enc_entry **a = realloc(c->e, (size_t)cap * sizeof *a);
        if (!a) return NULL;
        c->e = a;
        c->cap = cap;
    }
    g4_enc_entry *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    *e = (g4_enc_entry){.hash = {hash[0], hash[1]}, .n_tokens = n_tokens, .hidden = hidden, .pinned = 1};
    evict(c, entry_bytes(e));
    e->rows = malloc(entry_bytes(e));
    if (!e->rows) {
        free(e);
        return NULL;
    }
    e->last_use = ++c->clock;
    c->e[c->n++] = e;
    c->bytes += entry_bytes(e);
    return e;
}

void g4_enc_cache_drop(g4_enc_cache *c, g4_enc_entry *e) {
    for (int i = 0; i < c->n; i++)
        if (c->e[i] == e) {
            remove_at(c, i);
            return;
        }
}

void g4_enc_cache_unpin_all(g4_enc_cache *c) {
    for (int i = 0; i < c->n; i++) c->e[i]->pinned = 0;
    evict(c, 0);
}
