/* token_mask.c - token masks by walking the preorder trie against matcher heads, with the two
 * caches described in token_mask.h (per-state "inside the rule" results, per-context masks). */
#include "grammar/token_mask.h"

#include <stdlib.h>
#include <string.h>

#include "base/rng.h"

typedef struct state_entry {
    uint32_t *bits;  /* tokens accepted without returning below the state's own frame */
    int32_t *pops;   /* trie nodes where the rule may return (continue there in context) */
    int32_t n_pops, cap_pops;
} state_entry;

enum { N_CTX = 64 };
typedef struct ctx_entry {
    uint64_t hash;
    int32_t *key;
    int32_t key_len, key_cap;
    uint32_t *mask;
    int64_t last_use; /* 0 = empty */
} ctx_entry;

struct g4_mask_cache {
    const g4_pda *p;
    const g4_token_trie *t;
    int32_t words;
    state_entry *st;        /* [n_states] */
    int32_t *share;         /* [n_states] the state whose entry this state uses (same signature) */
    int32_t *fast_st;       /* per trie depth: the state of a single simple head (fast walk) */
    g4_head **lv;           /* per trie depth: the heads after the path to the current node */
    int32_t *lv_n, *lv_cap;
    ctx_entry ctx[N_CTX];
    int32_t *key;
    int32_t key_cap;
    int64_t tick;
    g4_mask_stats stats;
};

static int grow(void **p, int32_t *cap, int32_t need, size_t sz) {
    if (need <= *cap) return 0;
    int64_t nc = *cap ? (int64_t)*cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * sz);
    if (!q) return -1;
    *p = q;
    *cap = (int32_t)nc;
    return 0;
}

int32_t g4_mask_words(const g4_token_trie *t) { return (t->n_vocab + 31) / 32; }

/* Two states whose behaviour agrees for the next max_depth bytes (a token is never longer) have
 * the same per-state entry. Signature after k rounds = (signature after k-1, accepting, each
 * class's target's signature after k-1); states with calls keep their own id (a nullable callee
 * would need the return state at the same depth). Two independent 64-bit hashes make a false
 * match negligible; states that share are then compared by the pair. This is what lets the
 * positions of a length-bounded string (one DFA state per character) share one entry. */
static int share_states(g4_mask_cache *c) {
    const g4_pda *p = c->p;
    int32_t n = p->n_states, nc = p->n_classes;
    uint64_t *h = malloc(sizeof(uint64_t) * 2 * (size_t)n), *h2 = malloc(sizeof(uint64_t) * 2 * (size_t)n);
    if (!h || !h2) {
        free(h);
        free(h2);
        return -1;
    }
    for (int32_t s = 0; s < n; s++) {
        int calls = p->call_off[s] != p->call_off[s + 1];
        h[2 * s] = calls ? g4_mix64((uint64_t)s + 1000003) : g4_mix64(p->accepting[s] + 7);
        h[2 * s + 1] = calls ? g4_mix64((uint64_t)s * 31 + 17) : g4_mix64(p->accepting[s] + 99);
    }
    for (int32_t k = 0; k < c->t->max_depth; k++) {
        for (int32_t s = 0; s < n; s++) {
            if (p->call_off[s] != p->call_off[s + 1]) {
                h2[2 * s] = h[2 * s];
                h2[2 * s + 1] = h[2 * s + 1];
                continue;
            }
            uint64_t a = h[2 * s] ^ 0x1234567ull, b = h[2 * s + 1] ^ 0x7654321ull;
            for (int32_t cl = 0; cl < nc; cl++) {
                int32_t t = p->next[s * nc + cl];
                uint64_t ta = t < 0 ? 0x51ull : h[2 * t], tb = t < 0 ? 0x93ull : h[2 * t + 1];
                a = g4_mix64(a ^ (ta + (uint64_t)cl * 0x9E3779B97F4A7C15ull));
                b = g4_mix64(b + (tb ^ ((uint64_t)cl << 32)) * 0xD6E8FEB86659FD93ull);
            }
            h2[2 * s] = a;
            h2[2 * s + 1] = b;
        }
        uint64_t *tmp = h;
        h = h2;
        h2 = tmp;
    }
    /* the first state with each signature is the representative */
    int32_t cap = 1;
    while (cap < 2 * n) cap *= 2;
    int32_t *tab = malloc(sizeof(int32_t) * (size_t)cap);
    if (!tab) {
        free(h);
        free(h2);
        return -1;
    }
    for (int32_t i = 0; i < cap; i++) tab[i] = -1;
    for (int32_t s = 0; s < n; s++) {
        int32_t i = (int32_t)(h[2 * s] & (uint64_t)(cap - 1));
        while (tab[i] >= 0 && !(h[2 * tab[i]] == h[2 * s] && h[2 * tab[i] + 1] == h[2 * s + 1]))
            i = (i + 1) & (cap - 1);
        if (tab[i] < 0) tab[i] = s;
        c->share[s] = tab[i];
    }
    free(tab);
    free(h);
    free(h2);
    return 0;
}

g4_mask_cache *g4_mask_cache_new(const g4_grammar *g, const g4_token_trie *t) {
    const g4_pda *p = g4_grammar_pda(g);
    if (!p) return NULL;
    g4_mask_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->p = p;
    c->t = t;
    c->words = g4_mask_words(t);
    c->st = calloc((size_t)p->n_states, sizeof *c->st);
    int32_t nl = t->max_depth + 2;
    c->lv = calloc((size_t)nl, sizeof *c->lv);
    c->lv_n = calloc((size_t)nl, sizeof *c->lv_n);
    c->lv_cap = calloc((size_t)nl, sizeof *c->lv_cap);
    c->share = malloc(sizeof(int32_t) * (size_t)p->n_states);
    c->fast_st = malloc(sizeof(int32_t) * (size_t)nl);
    if (!c->st || !c->lv || !c->lv_n || !c->lv_cap || !c->share || !c->fast_st || share_states(c)) {
        g4_mask_cache_free(c);
        return NULL;
    }
    return c;
}

void g4_mask_cache_free(g4_mask_cache *c) {
    if (!c) return;
    if (c->st)
        for (int32_t s = 0; s < c->p->n_states; s++) {
            free(c->st[s].bits);
            free(c->st[s].pops);
        }
    if (c->lv)
        for (int32_t d = 0; d < c->t->max_depth + 2; d++) free(c->lv[d]);
    for (int i = 0; i < N_CTX; i++) {
        free(c->ctx[i].key);
        free(c->ctx[i].mask);
    }
    free(c->st);
    free(c->lv);
    free(c->lv_n);
    free(c->lv_cap);
    free(c->key);
    free(c->share);
    free(c->fast_st);
    free(c);
}

g4_mask_stats g4_mask_cache_stats(const g4_mask_cache *c) { return c->stats; }

static inline void set_tokens(const g4_token_trie *t, int32_t u, uint32_t *mask) {
    for (int32_t k = t->tok_off[u]; k < t->tok_off[u + 1]; k++) {
        int32_t id = t->tok_ids[k];
        mask[id >> 5] |= 1u << (id & 31);
    }
}

static int walk(g4_mask_cache *c, g4_frames *fr, g4_step_scratch *sc, int32_t u, const g4_head *h, int32_t n,
                uint32_t *mask, state_entry *e);

static int record_pop(state_entry *e, int32_t u) {
    if (grow((void **)&e->pops, &e->cap_pops, e->n_pops + 1, sizeof(int32_t))) return -1;
    e->pops[e->n_pops++] = u;
    return 0;
}

/* The walk below u from one head in a simple state (not accepting, no calls): one table lookup
 * per trie node while the states stay simple; a subtree that reaches another state is handed to
 * the general walk. */
static int walk_simple(g4_mask_cache *c, g4_frames *fr, g4_step_scratch *sc, int32_t u, int32_t state, int32_t frame,
                       uint32_t *mask, state_entry *e) {
    const g4_token_trie *t = c->t;
    const g4_pda *p = c->p;
    const int32_t nc = p->n_classes, end = t->end[u];
    const uint8_t *cls = p->byte_class, *simple = p->simple;
    const int32_t *next = p->next;
    int32_t *st = c->fast_st;
    st[t->depth[u]] = state;
    int64_t walked = 0;
    for (int32_t i = u + 1; i < end;) {
        int32_t d = t->depth[i];
        int32_t s2 = next[st[d - 1] * nc + cls[t->byte[i]]];
        walked++;
        if (s2 < 0) {
            i = t->end[i];
            continue;
        }
        set_tokens(t, i, mask);
        if (!simple[s2]) {
            g4_head h = {s2, frame};
            if (walk(c, fr, sc, i, &h, 1, mask, e)) return -1;
            i = t->end[i];
            continue;
        }
        st[d] = s2;
        i++;
    }
    c->stats.walked_nodes += walked;
    return 0;
}

/* Walks the subtree below trie node u from heads h (the state after u's path), setting the bits of
 * every token that ends below u and is accepted. With e != NULL (a per-state walk from the root
 * frame) it also records in e the nodes where a head can end at the root (= return in context). */
static int walk(g4_mask_cache *c, g4_frames *fr, g4_step_scratch *sc, int32_t u, const g4_head *h, int32_t n,
                uint32_t *mask, state_entry *e) {
    const g4_token_trie *t = c->t;
    const g4_pda *p = c->p;
    if (n == 1 && p->simple[h[0].state]) return walk_simple(c, fr, sc, u, h[0].state, h[0].frame, mask, e);
    int32_t d0 = t->depth[u];
    if (grow((void **)&c->lv[d0], &c->lv_cap[d0], n, sizeof(g4_head))) return -1;
    memcpy(c->lv[d0], h, (size_t)n * sizeof *h);
    c->lv_n[d0] = n;
    if (e) {
        int r = g4_pda_can_end(p, fr, sc, h, n);
        if (r < 0) return -1;
        if (r && record_pop(e, u)) return -1;
    }
    int64_t walked = 0;
    const int32_t end = t->end[u];
    for (int32_t i = u + 1; i < end;) {
        int32_t d = t->depth[i];
        const g4_head *in = c->lv[d - 1];
        int32_t nin = c->lv_n[d - 1];
        int32_t cls = p->byte_class[t->byte[i]];
        int32_t k;
        walked++;
        k = g4_pda_step(p, fr, sc, in, nin, cls, &c->lv[d], &c->lv_cap[d]);
        if (k < 0) return -1;
        if (k == 0) {
            i = t->end[i];
            continue;
        }
        c->lv_n[d] = k;
        set_tokens(t, i, mask);
        if (k == 1 && p->simple[c->lv[d][0].state]) { /* back to the fast walk for this subtree */
            if (walk_simple(c, fr, sc, i, c->lv[d][0].state, c->lv[d][0].frame, mask, e)) return -1;
            i = t->end[i];
            continue;
        }
        if (e) {
            int r = g4_pda_can_end(p, fr, sc, c->lv[d], k);
            if (r < 0) return -1;
            if (r && record_pop(e, i)) return -1;
        }
        i++;
    }
    c->stats.walked_nodes += walked;
    return 0;
}

static int state_entry_build(g4_mask_cache *c, g4_frames *fr, g4_step_scratch *sc, int32_t s) {
    state_entry *e = &c->st[s];
    e->bits = calloc((size_t)c->words, sizeof(uint32_t));
    if (!e->bits) return -1;
    g4_head h = {s, -1};
    int32_t mark = fr->n;
    int rc = walk(c, fr, sc, 0, &h, 1, e->bits, e);
    fr->n = mark;
    c->stats.state_entries++;
    if (rc) {
        free(e->bits);
        e->bits = NULL;
        e->n_pops = 0;
    }
    return rc;
}

static void allow_end(g4_mask_cache *c, g4_matcher *m, const int32_t *end_ids, int n_end, uint32_t *mask, int *err) {
    int32_t n;
    const g4_head *h = g4_matcher_heads(m, &n);
    g4_frames *fr = g4_matcher_frames(m);
    int32_t mark = fr->n;
    int r = g4_pda_can_end(c->p, fr, g4_matcher_scratch(m), h, n);
    fr->n = mark;
    if (r < 0) {
        *err = -1;
        return;
    }
    if (r)
        for (int i = 0; i < n_end; i++)
            if (end_ids[i] >= 0 && end_ids[i] < c->t->n_vocab) mask[end_ids[i] >> 5] |= 1u << (end_ids[i] & 31);
}

int g4_token_mask_slow(g4_mask_cache *c, g4_matcher *m, const int32_t *end_ids, int n_end, uint32_t *mask) {
    memset(mask, 0, (size_t)c->words * sizeof *mask);
    int32_t n;
    const g4_head *h = g4_matcher_heads(m, &n);
    g4_frames *fr = g4_matcher_frames(m);
    int32_t mark = fr->n;
    int rc = walk(c, fr, g4_matcher_scratch(m), 0, h, n, mask, NULL);
    fr->n = mark;
    allow_end(c, m, end_ids, n_end, mask, &rc);
    return rc;
}

/* The context key: every head's state and the states of its return stack. */
static int context_key(g4_mask_cache *c, g4_matcher *m, int32_t *len, uint64_t *hash) {
    int32_t n, k = 0;
    const g4_head *h = g4_matcher_heads(m, &n);
    const g4_frames *fr = g4_matcher_frames(m);
    uint64_t x = 1469598103934665603ull;
    for (int32_t i = 0; i < n; i++) {
        for (int32_t f = -2; f != -1; f = f == -2 ? h[i].frame : fr->parent[f]) {
            int32_t v = f == -2 ? h[i].state : fr->state[f];
            if (k >= 4096) return 1; /* too deep to be worth a key */
            if (grow((void **)&c->key, &c->key_cap, k + 2, sizeof(int32_t))) return -1;
            c->key[k++] = v;
            x = (x ^ (uint32_t)v) * 1099511628211ull;
        }
        c->key[k++] = -1;
        x = (x ^ 0xFFFFFFFFu) * 1099511628211ull;
    }
    *len = k;
    *hash = x;
    return 0;
}

int g4_token_mask(g4_mask_cache *c, g4_matcher *m, const int32_t *end_ids, int n_end, uint32_t *mask) {
    c->stats.calls++;
    c->tick++;
    int32_t klen = 0;
    uint64_t hash = 0;
    int kr = context_key(c, m, &klen, &hash);
    if (kr < 0) return -1;
    if (kr == 0) {
        for (int i = 0; i < N_CTX; i++) {
            ctx_entry *e = &c->ctx[i];
            if (e->last_use && e->hash == hash && e->key_len == klen &&
                !memcmp(e->key, c->key, (size_t)klen * sizeof(int32_t))) {
                memcpy(mask, e->mask, (size_t)c->words * sizeof *mask);
                e->last_use = c->tick;
                c->stats.context_hits++;
                return 0;
            }
        }
    }
    memset(mask, 0, (size_t)c->words * sizeof *mask);
    int32_t n;
    const g4_head *h = g4_matcher_heads(m, &n);
    g4_frames *fr = g4_matcher_frames(m);
    g4_step_scratch *sc = g4_matcher_scratch(m);
    int32_t mark = fr->n;
    int rc = 0;
    for (int32_t i = 0; i < n && !rc; i++) {
        int32_t rep = c->share[h[i].state];
        state_entry *e = &c->st[rep];
        if (!e->bits && state_entry_build(c, fr, sc, rep)) return -1;
        for (int32_t w = 0; w < c->words; w++) mask[w] |= e->bits[w];
        if (h[i].frame < 0) continue; /* a return at the root is the end of the text */
        g4_head cont = {fr->state[h[i].frame], fr->parent[h[i].frame]};
        for (int32_t k = 0; k < e->n_pops && !rc; k++) {
            rc = walk(c, fr, sc, e->pops[k], &cont, 1, mask, NULL);
            fr->n = mark;
        }
    }
    if (rc) return -1;
    allow_end(c, m, end_ids, n_end, mask, &rc);
    if (rc) return -1;
    if (kr == 0) { /* remember it in the least recently used slot */
        int victim = 0;
        for (int i = 1; i < N_CTX; i++)
            if (c->ctx[i].last_use < c->ctx[victim].last_use) victim = i;
        ctx_entry *e = &c->ctx[victim];
        if (!e->mask && !(e->mask = malloc((size_t)c->words * sizeof *mask))) return 0;
        if (grow((void **)&e->key, &e->key_cap, klen, sizeof(int32_t))) {
            e->last_use = 0;
            return 0;
        }
        memcpy(e->key, c->key, (size_t)klen * sizeof(int32_t));
        memcpy(e->mask, mask, (size_t)c->words * sizeof *mask);
        e->key_len = klen;
        e->hash = hash;
        e->last_use = c->tick;
    }
    return 0;
}

int g4_mask_cache_precompute(g4_mask_cache *c, int min_bytes) {
    const g4_pda *p = c->p;
    g4_frames fr = {0};
    g4_step_scratch sc = {0};
    int rc = 0;
    for (int32_t s = 0; s < p->n_states && !rc; s++) {
        if (c->share[s] != s || c->st[s].bits) continue;
        int wide = 0;
        for (int b = 0; b < 256; b++) wide += p->next[s * p->n_classes + p->byte_class[b]] >= 0;
        if (wide >= min_bytes) rc = state_entry_build(c, &fr, &sc, s);
    }
    free(fr.state);
    free(fr.parent);
    g4_step_scratch_free(&sc);
    return rc;
}

int g4_matcher_advance_token(g4_matcher *m, const g4_token_trie *t, int32_t id) {
    size_t len;
    const uint8_t *b = g4_token_trie_token(t, id, &len);
    if (!b) return -1;
    return g4_matcher_advance(m, b, len);
}
