/* structured.c - compiled constraints cached by their text, and the per-request constraint
 * (see structured.h). */
#include "server/structured/structured.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "grammar/gbnf.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"
#include "grammar/token_trie.h"

/* Per-state mask entries of states reading at least this many byte values are built at compile
 * time (string contents: the expensive first walks), as in bench/grammar. */
#define SO_PRECOMPUTE_MIN_BYTES 128

struct g4_so_grammar {
    atomic_int refs;
    g4_so_cache *cache;       /* a reference: the trie lives as long as the grammar */
    g4_grammar *g;
    const g4_token_trie *trie; /* the cache's: plain, or with the tool-call markers */
    g4_mask_cache *mc;        /* engine thread only once published */
};

typedef struct so_entry {
    uint64_t hash;
    g4_so_kind kind;
    char *text;
    size_t len;
    uint64_t used;            /* tick of the last use (LRU) */
    g4_so_grammar *gr;        /* the cache's reference */
} so_entry;

struct g4_so_cache {
    atomic_int refs;          /* the owner's and one per live grammar */
    const g4_tokenizer *tok;
    pthread_mutex_t mu;       /* guards everything below */
    g4_token_trie *trie;      /* built on the first compile */
    g4_token_trie *trie_calls; /* with <|tool_call>, <tool_call|>, <|"|>: on the first tool call */
    so_entry *e;
    int n, cap;
    uint64_t tick;
    long long hits, compiles;
};

static uint64_t spec_hash(const g4_so_spec *s) {
    uint64_t h = 1469598103934665603ull ^ (uint64_t)s->kind;
    for (size_t i = 0; i < s->len; i++) h = (h ^ (uint8_t)s->text[i]) * 1099511628211ull;
    return h;
}

static void cache_unref(g4_so_cache *c) {
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    g4_token_trie_free(c->trie);
    g4_token_trie_free(c->trie_calls);
    pthread_mutex_destroy(&c->mu);
    free(c->e);
    free(c);
}

g4_so_cache *g4_so_cache_new(const g4_tokenizer *tok, int capacity) {
    g4_so_cache *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->cap = capacity > 0 ? capacity : 1;
    c->e = calloc((size_t)c->cap, sizeof *c->e);
    if (!c->e || pthread_mutex_init(&c->mu, NULL)) {
        free(c->e);
        free(c);
        return NULL;
    }
    c->tok = tok;
    atomic_init(&c->refs, 1);
    return c;
}

void g4_so_cache_free(g4_so_cache *c) {
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    int n = c->n;
    c->n = 0;
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < n; i++) {
        free(c->e[i].text);
        g4_so_grammar_unref(c->e[i].gr);
    }
    cache_unref(c);
}

void g4_so_grammar_unref(g4_so_grammar *g) {
    if (!g || atomic_fetch_sub(&g->refs, 1) != 1) return;
    g4_mask_cache_free(g->mc);
    g4_grammar_free(g->g);
    g4_so_cache *c = g->cache;
    free(g);
    cache_unref(c);
}

g4_so_cache_stats g4_so_cache_stats_get(g4_so_cache *c) {
    pthread_mutex_lock(&c->mu);
    g4_so_cache_stats s = {.entries = c->n, .hits = c->hits, .compiles = c->compiles};
    pthread_mutex_unlock(&c->mu);
    return s;
}

/* Choices arrive as a JSON array of strings. */
static int compile_choice(const g4_so_spec *s, g4_grammar **out, g4_error *err) {
    cJSON *a = cJSON_ParseWithLength(s->text, s->len);
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0, rc = -1;
    const char **v = n > 0 ? calloc((size_t)n, sizeof *v) : NULL;
    if (!v) {
        g4_fail(err, n > 0 ? "out of memory" : "choice: a non-empty array of strings is needed");
        goto done;
    }
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next) {
        if (!cJSON_IsString(x)) {
            g4_fail(err, "choice: every choice must be a string");
            goto done;
        }
        v[i++] = x->valuestring;
    }
    rc = g4_choice_compile(v, n, NULL, out, err);
done:
    free(v);
    cJSON_Delete(a);
    return rc;
}

static int compile(const g4_so_spec *s, g4_grammar **out, g4_error *err) {
    switch (s->kind) {
    case G4_SO_JSON_SCHEMA: return g4_json_schema_compile(s->text, s->len, NULL, NULL, out, err);
    case G4_SO_REGEX: return g4_regex_compile(s->text, s->len, NULL, out, err);
    case G4_SO_CHOICE: return compile_choice(s, out, err);
    case G4_SO_GRAMMAR: return g4_gbnf_compile(s->text, s->len, NULL, out, err);
    case G4_SO_TOOL_CALL: return g4_gemma_tool_call_compile(s->text, s->len, NULL, NULL, out, err);
    }
    return g4_fail(err, "structured output: unknown constraint kind %d", (int)s->kind);
}

static g4_so_grammar *lookup(g4_so_cache *c, uint64_t h, const g4_so_spec *s) {
    for (int i = 0; i < c->n; i++) {
        so_entry *x = &c->e[i];
        if (x->hash == h && x->kind == s->kind && x->len == s->len && !memcmp(x->text, s->text, s->len)) {
            x->used = ++c->tick;
            atomic_fetch_add(&x->gr->refs, 1);
            return x->gr;
        }
    }
    return NULL;
}

/* Inserts gr (the cache takes a new reference), evicting the least recently used entry when full. */
static void insert(g4_so_cache *c, uint64_t h, const g4_so_spec *s, g4_so_grammar *gr) {
    char *text = malloc(s->len + 1);
    if (!text) return; /* not cached: still usable */
    memcpy(text, s->text, s->len);
    text[s->len] = 0;
    int at = c->n;
    if (c->n == c->cap) {
        at = 0;
        for (int i = 1; i < c->n; i++)
            if (c->e[i].used < c->e[at].used) at = i;
        free(c->e[at].text);
        g4_so_grammar_unref(c->e[at].gr); /* not the last reference while gr holds the cache */
    } else {
        c->n++;
    }
    atomic_fetch_add(&gr->refs, 1);
    c->e[at] = (so_entry){.hash = h, .kind = s->kind, .text = text, .len = s->len, .used = ++c->tick, .gr = gr};
}

int g4_so_cache_get(g4_so_cache *c, const g4_so_spec *s, g4_so_grammar **out, g4_error *err) {
    *out = NULL;
    uint64_t h = spec_hash(s);
    pthread_mutex_lock(&c->mu);
    g4_so_grammar *gr = lookup(c, h, s);
    if (gr) c->hits++;
    int rc = 0;
    bool calls = s->kind == G4_SO_TOOL_CALL;
    if (!gr && !calls && !c->trie) rc = g4_token_trie_from_tokenizer(c->tok, &c->trie, err);
    if (!gr && calls && !c->trie_calls) {
        const g4_special_ids *sp = g4_tokenizer_specials(c->tok);
        int32_t ids[3] = {sp->tool_call_start, sp->tool_call_end, g4_tokenizer_token_id(c->tok, "<|\"|>", 5)};
        rc = g4_token_trie_with_specials(c->tok, ids, 3, &c->trie_calls, err);
    }
    const g4_token_trie *trie = calls ? c->trie_calls : c->trie;
    pthread_mutex_unlock(&c->mu);
    if (gr) return *out = gr, 0;
    if (rc) return -1;

    /* compiled outside the lock: other requests' hits do not wait for it */
    gr = calloc(1, sizeof *gr);
    if (!gr) return g4_fail(err, "out of memory");
    if (compile(s, &gr->g, err)) {
        free(gr);
        return -1;
    }
    gr->trie = trie;
    gr->mc = g4_mask_cache_new(gr->g, trie);
    if (!gr->mc || g4_mask_cache_precompute(gr->mc, SO_PRECOMPUTE_MIN_BYTES)) {
        g4_mask_cache_free(gr->mc);
        g4_grammar_free(gr->g);
        free(gr);
        return g4_fail(err, "out of memory preparing the token masks");
    }
    atomic_init(&gr->refs, 1);
    atomic_fetch_add(&c->refs, 1);
    gr->cache = c;

    pthread_mutex_lock(&c->mu);
    c->compiles++;
    g4_so_grammar *had = lookup(c, h, s); /* compiled meanwhile by another request */
    if (!had) insert(c, h, s, gr);
    pthread_mutex_unlock(&c->mu);
    if (had) {
        g4_so_grammar_unref(gr);
        gr = had;
    }
    *out = gr;
    return 0;
}

/* --- the per-request constraint ------------------------------------------------------------ */

enum { PHASE_MAY_THINK, PHASE_THOUGHT, PHASE_OUTPUT };

typedef struct so_constraint {
    g4_so_grammar *gr;
    g4_matcher *m;
    int phase;
    int32_t open_id, close_id; /* <|channel>, <channel|>; -1 when the vocabulary has none */
} so_constraint;

void *g4_so_constraint_new(g4_so_grammar *gr, const g4_so_thought *th) {
    so_constraint *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->m = g4_matcher_new(gr->g);
    if (!k->m) {
        free(k);
        return NULL;
    }
    atomic_fetch_add(&gr->refs, 1);
    k->gr = gr;
    const g4_special_ids *sp = g4_tokenizer_specials(gr->cache->tok);
    k->open_id = sp->channel_start;
    k->close_id = sp->channel_end;
    k->phase = PHASE_OUTPUT;
    if (th && th->started && k->close_id >= 0) k->phase = PHASE_THOUGHT;
    else if (th && th->enabled && k->open_id >= 0 && k->close_id >= 0) k->phase = PHASE_MAY_THINK;
    return k;
}

static int so_mask(void *p, const int32_t *end_ids, int n_end, uint32_t *mask, g4_error *err) {
    so_constraint *k = p;
    if (k->phase == PHASE_THOUGHT) return 0;
    if (g4_token_mask(k->gr->mc, k->m, end_ids, n_end, mask))
        return g4_fail(err, "structured output: out of memory, or the grammar is ambiguous past %d parse heads",
                       G4_MATCHER_MAX_HEADS);
    if (k->phase == PHASE_MAY_THINK) mask[k->open_id / 32] |= 1u << (k->open_id % 32);
    return 1;
}

static int so_advance(void *p, int32_t token, g4_error *err) {
    so_constraint *k = p;
    if (k->phase == PHASE_THOUGHT) {
        if (token == k->close_id) k->phase = PHASE_OUTPUT;
        return 0;
    }
    if (k->phase == PHASE_MAY_THINK && token == k->open_id) {
        k->phase = PHASE_THOUGHT;
        return 0;
    }
    k->phase = PHASE_OUTPUT;
    size_t n = 0;
    g4_token_trie_token(k->gr->trie, token, &n);
    if (n == 0) return 0; /* a stop id (the mask allowed it: the request ends on it) */
    if (g4_matcher_advance_token(k->m, k->gr->trie, token))
        return g4_fail(err,
                       "structured output: token %d is not allowed by the constraint (or the grammar is ambiguous "
                       "past %d parse heads)",
                       token, G4_MATCHER_MAX_HEADS);
    return 0;
}

static void so_free(void *p) {
    so_constraint *k = p;
    if (!k) return;
    g4_matcher_free(k->m);
    g4_so_grammar_unref(k->gr);
    free(k);
}

const g4_constraint_iface g4_so_constraint_fn = {.mask = so_mask, .advance = so_advance, .free = so_free};
