/* grammar.c - expression builder and the compiler from rules to a pushdown automaton.
 *
 * Each rule body becomes a Thompson NFA (every loop and every alternative gets a fresh entry
 * state, so chaining never merges loops), then a DFA by subset construction over byte classes
 * (the coarsest partition of 0..255 that no byte set of the grammar splits) with rule calls as
 * extra symbols. After all rules: co-reachability (can this state still end its rule, calling only
 * rules that can end) prunes dead edges; nullability gives the left-call graph, whose cycles are
 * left recursion and refused (the matcher's closure would not terminate on them).
 * Not here: matching (matcher.c). */
#include "grammar/grammar.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { GX_BYTES, GX_EMPTY, GX_NEVER, GX_SEQ, GX_ALT, GX_REPEAT, GX_REF };

typedef struct gx_node {
    uint8_t kind;
    int32_t a, b;     /* BYTES: set index; SEQ/ALT: kids offset, count; REPEAT: child; REF: rule */
    int32_t min, max; /* REPEAT */
} gx_node;

typedef struct rule {
    char *name;
    g4_gx body; /* -1 until set */
    int32_t start; /* DFA start state once compiled, -1 before */
} rule;

struct g4_grammar {
    g4_grammar_limits lim;
    gx_node *nodes;
    int32_t n_nodes, cap_nodes;
    int32_t *kids;
    int32_t n_kids, cap_kids;
    uint8_t (*sets)[32];
    int32_t n_sets, cap_sets;
    rule *rules;
    int32_t n_rules, cap_rules;
    char err[512];
    int failed;
    int compiled;
    g4_pda pda;
};

g4_grammar_limits g4_grammar_default_limits(void) {
    g4_grammar_limits l = {1000000, 2000000, 200000, 100000};
    return l;
}

g4_grammar *g4_grammar_new(const g4_grammar_limits *lim) {
    g4_grammar *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->lim = lim ? *lim : g4_grammar_default_limits();
    return g;
}

void g4_grammar_free(g4_grammar *g) {
    if (!g) return;
    for (int32_t i = 0; i < g->n_rules; i++) free(g->rules[i].name);
    free(g->rules);
    free(g->nodes);
    free(g->kids);
    free(g->sets);
    free(g->pda.next);
    free(g->pda.accepting);
    free(g->pda.simple);
    free(g->pda.call_off);
    free(g->pda.calls);
    free(g);
}

int g4_grammar_fail(g4_grammar *g, const char *fmt, ...) {
    if (g->failed) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->err, sizeof g->err, fmt, ap);
    va_end(ap);
    g->failed = 1;
    return -1;
}
int g4_grammar_failed(const g4_grammar *g) { return g->failed; }
const char *g4_grammar_error(const g4_grammar *g) { return g->err; }

/* Grows *p (elements of size sz) to hold need; -1 on OOM. */
static int grow(void **p, int32_t *cap, int32_t need, size_t sz) {
    if (need <= *cap) return 0;
    int64_t nc = *cap ? (int64_t)*cap * 2 : 64;
    while (nc < need) nc *= 2;
    void *q = realloc(*p, (size_t)nc * sz);
    if (!q) return -1;
    *p = q;
    *cap = (int32_t)nc;
    return 0;
}

static g4_gx new_node(g4_grammar *g, uint8_t kind, int32_t a, int32_t b) {
    if (g->failed) return -1;
    if (g->n_nodes >= g->lim.max_expr)
        return g4_grammar_fail(g, "grammar over the compile limit of %d expression nodes", g->lim.max_expr);
    if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes))
        return g4_grammar_fail(g, "out of memory building the grammar");
    gx_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->a = a;
    n->b = b;
    return g->n_nodes++;
}

g4_gx g4_gx_bytes(g4_grammar *g, const uint8_t set[32]) {
    if (g->failed) return -1;
    int empty = 1;
    for (int i = 0; i < 32; i++)
        if (set[i]) empty = 0;
    if (empty) return g4_gx_never(g);
    if (grow((void **)&g->sets, &g->cap_sets, g->n_sets + 1, 32))
        return g4_grammar_fail(g, "out of memory building the grammar");
    memcpy(g->sets[g->n_sets], set, 32);
    return new_node(g, GX_BYTES, g->n_sets++, 0);
}

g4_gx g4_gx_range(g4_grammar *g, int lo, int hi) {
    uint8_t set[32] = {0};
    for (int b = lo; b <= hi && b < 256; b++)
        if (b >= 0) set[b >> 3] |= (uint8_t)(1u << (b & 7));
    return g4_gx_bytes(g, set);
}

g4_gx g4_gx_empty(g4_grammar *g) { return new_node(g, GX_EMPTY, 0, 0); }
g4_gx g4_gx_never(g4_grammar *g) { return new_node(g, GX_NEVER, 0, 0); }

static g4_gx list_node(g4_grammar *g, uint8_t kind, const g4_gx *xs, int n) {
    if (g->failed) return -1;
    for (int i = 0; i < n; i++)
        if (xs[i] < 0) return -1;
    if (n == 0) return kind == GX_SEQ ? g4_gx_empty(g) : g4_gx_never(g);
    if (n == 1) return xs[0];
    if (grow((void **)&g->kids, &g->cap_kids, g->n_kids + n, sizeof *g->kids))
        return g4_grammar_fail(g, "out of memory building the grammar");
    memcpy(g->kids + g->n_kids, xs, (size_t)n * sizeof *xs);
    g4_gx r = new_node(g, kind, g->n_kids, n);
    g->n_kids += n;
    return r;
}
g4_gx g4_gx_seq(g4_grammar *g, const g4_gx *xs, int n) { return list_node(g, GX_SEQ, xs, n); }
g4_gx g4_gx_alt(g4_grammar *g, const g4_gx *xs, int n) { return list_node(g, GX_ALT, xs, n); }
g4_gx g4_gx_seq2(g4_grammar *g, g4_gx a, g4_gx b) {
    g4_gx x[2] = {a, b};
    return g4_gx_seq(g, x, 2);
}
g4_gx g4_gx_seq3(g4_grammar *g, g4_gx a, g4_gx b, g4_gx c) {
    g4_gx x[3] = {a, b, c};
    return g4_gx_seq(g, x, 3);
}
g4_gx g4_gx_alt2(g4_grammar *g, g4_gx a, g4_gx b) {
    g4_gx x[2] = {a, b};
    return g4_gx_alt(g, x, 2);
}

g4_gx g4_gx_lit(g4_grammar *g, const char *s, size_t n) {
    if (n == 0) return g4_gx_empty(g);
    g4_gx acc = -1;
    for (size_t i = 0; i < n; i++) {
        g4_gx b = g4_gx_range(g, (uint8_t)s[i], (uint8_t)s[i]);
        acc = i == 0 ? b : g4_gx_seq2(g, acc, b);
    }
    return acc;
}
g4_gx g4_gx_str(g4_grammar *g, const char *s) { return g4_gx_lit(g, s, strlen(s)); }

g4_gx g4_gx_repeat(g4_grammar *g, g4_gx x, int32_t min, int32_t max) {
    if (x < 0 || g->failed) return -1;
    if (min < 0 || (max >= 0 && max < min)) return g4_grammar_fail(g, "bad repetition {%d,%d}", min, max);
    if (max == 0) return g4_gx_empty(g);
    if (min == 1 && max == 1) return x;
    g4_gx r = new_node(g, GX_REPEAT, x, 0);
    if (r >= 0) {
        g->nodes[r].min = min;
        g->nodes[r].max = max;
    }
    return r;
}
g4_gx g4_gx_opt(g4_grammar *g, g4_gx x) { return g4_gx_repeat(g, x, 0, 1); }
g4_gx g4_gx_star(g4_grammar *g, g4_gx x) { return g4_gx_repeat(g, x, 0, -1); }

g4_gx g4_gx_ref(g4_grammar *g, int32_t r) {
    if (r < 0 || r >= g->n_rules) return g->failed ? -1 : g4_grammar_fail(g, "reference to an unknown rule");
    return new_node(g, GX_REF, r, 0);
}

int32_t g4_grammar_rule_new(g4_grammar *g, const char *name) {
    if (g->failed) return -1;
    if (g->n_rules >= g->lim.max_rules)
        return g4_grammar_fail(g, "grammar over the compile limit of %d rules", g->lim.max_rules);
    if (grow((void **)&g->rules, &g->cap_rules, g->n_rules + 1, sizeof *g->rules))
        return g4_grammar_fail(g, "out of memory building the grammar");
    rule *r = &g->rules[g->n_rules];
    r->name = strdup(name ? name : "");
    if (!r->name) return g4_grammar_fail(g, "out of memory building the grammar");
    r->body = -1;
    r->start = -1;
    return g->n_rules++;
}

int g4_grammar_rule_set(g4_grammar *g, int32_t r, g4_gx body) {
    if (g->failed || body < 0) return -1;
    if (r < 0 || r >= g->n_rules) return g4_grammar_fail(g, "unknown rule");
    g->rules[r].body = body;
    return 0;
}

int32_t g4_grammar_rule_find(const g4_grammar *g, const char *name) {
    for (int32_t i = 0; i < g->n_rules; i++)
        if (strcmp(g->rules[i].name, name) == 0) return i;
    return -1;
}
int32_t g4_grammar_n_rules(const g4_grammar *g) { return g->n_rules; }
const g4_pda *g4_grammar_pda(const g4_grammar *g) { return g->compiled ? &g->pda : NULL; }

/* ---------------------------------------------------------------- NFA (one rule at a time) */

enum { E_EPS, E_BYTES, E_CALL };
typedef struct nfa_edge {
    int32_t kind, arg, to, next;
} nfa_edge;

typedef struct nfa {
    int32_t *head;
    int32_t n_states, cap_states; /* first edge of each state, -1 = none */
    nfa_edge *edges;
    int32_t n_edges, cap_edges;
} nfa;

typedef struct ctx {
    g4_grammar *g;
    nfa n;
    int64_t nfa_total;
    uint64_t (*set_classes)[4]; /* per byte set: which classes it contains */
} ctx;

static int32_t nfa_state(ctx *c) {
    if (++c->nfa_total > c->g->lim.max_nfa)
        return g4_grammar_fail(c->g, "grammar over the compile limit of %d automaton states (NFA)", c->g->lim.max_nfa);
    if (grow((void **)&c->n.head, &c->n.cap_states, c->n.n_states + 1, sizeof(int32_t)))
        return g4_grammar_fail(c->g, "out of memory compiling the grammar");
    c->n.head[c->n.n_states] = -1;
    return c->n.n_states++;
}

static int nfa_edge_add(ctx *c, int32_t from, int32_t kind, int32_t arg, int32_t to) {
    if (grow((void **)&c->n.edges, &c->n.cap_edges, c->n.n_edges + 1, sizeof(nfa_edge)))
        return g4_grammar_fail(c->g, "out of memory compiling the grammar");
    nfa_edge *e = &c->n.edges[c->n.n_edges];
    e->kind = kind;
    e->arg = arg;
    e->to = to;
    e->next = c->n.head[from];
    c->n.head[from] = c->n.n_edges++;
    return 0;
}

/* Builds x starting at state from; returns its end state (-1 on failure). */
static int32_t build(ctx *c, g4_gx x, int32_t from, int depth) {
    g4_grammar *g = c->g;
    if (depth > 10000) return g4_grammar_fail(g, "grammar expressions nested too deeply");
    const gx_node nd = g->nodes[x];
    switch (nd.kind) {
    case GX_EMPTY: return from;
    case GX_NEVER: return nfa_state(c);
    case GX_BYTES: {
        int32_t t = nfa_state(c);
        if (t < 0 || nfa_edge_add(c, from, E_BYTES, nd.a, t)) return -1;
        return t;
    }
    case GX_REF: {
        if (g->rules[nd.a].body < 0)
            return g4_grammar_fail(g, "rule '%s' is used but never defined", g->rules[nd.a].name);
        int32_t t = nfa_state(c);
        if (t < 0 || nfa_edge_add(c, from, E_CALL, nd.a, t)) return -1;
        return t;
    }
    case GX_SEQ: {
        int32_t cur = from;
        for (int32_t i = 0; i < nd.b && cur >= 0; i++) cur = build(c, g->kids[nd.a + i], cur, depth + 1);
        return cur;
    }
    case GX_ALT: {
        int32_t end = nfa_state(c);
        if (end < 0) return -1;
        for (int32_t i = 0; i < nd.b; i++) {
            int32_t s = nfa_state(c);
            if (s < 0 || nfa_edge_add(c, from, E_EPS, 0, s)) return -1;
            int32_t e = build(c, g->kids[nd.a + i], s, depth + 1);
            if (e < 0 || nfa_edge_add(c, e, E_EPS, 0, end)) return -1;
        }
        return end;
    }
    case GX_REPEAT: {
        int32_t cur = from;
        for (int32_t i = 0; i < nd.min && cur >= 0; i++) {
            int32_t s = nfa_state(c); /* fresh entry: a loop inside x never reaches back into cur */
            if (s < 0 || nfa_edge_add(c, cur, E_EPS, 0, s)) return -1;
            cur = build(c, nd.a, s, depth + 1);
        }
        if (cur < 0) return -1;
        if (nd.max < 0) {
            int32_t s = nfa_state(c), out = nfa_state(c);
            if (s < 0 || out < 0 || nfa_edge_add(c, cur, E_EPS, 0, s) || nfa_edge_add(c, s, E_EPS, 0, out)) return -1;
            int32_t in = nfa_state(c);
            if (in < 0 || nfa_edge_add(c, s, E_EPS, 0, in)) return -1;
            int32_t e = build(c, nd.a, in, depth + 1);
            if (e < 0 || nfa_edge_add(c, e, E_EPS, 0, s)) return -1;
            return out;
        }
        int32_t end = nfa_state(c);
        if (end < 0 || nfa_edge_add(c, cur, E_EPS, 0, end)) return -1;
        for (int32_t i = nd.min; i < nd.max; i++) {
            int32_t s = nfa_state(c);
            if (s < 0 || nfa_edge_add(c, cur, E_EPS, 0, s)) return -1;
            cur = build(c, nd.a, s, depth + 1);
            if (cur < 0 || nfa_edge_add(c, cur, E_EPS, 0, end)) return -1;
        }
        return end;
    }
    }
    return g4_grammar_fail(g, "corrupt expression");
}

/* ---------------------------------------------------------------- subset construction */

typedef struct iset {
    int32_t *v;
    int32_t n, cap;
} iset;

static int iset_push(iset *s, int32_t x) {
    if (s->n == s->cap && grow((void **)&s->v, &s->cap, s->n + 1, sizeof(int32_t))) return -1;
    s->v[s->n++] = x;
    return 0;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

typedef struct dfa_build {
    /* interned NFA sets of the current rule */
    int32_t *pool;
    int32_t n_pool, cap_pool;
    int32_t *set_off, *set_len, *set_state;
    int32_t n_sets, cap_sets, cap_sets2, cap_sets3;
    int32_t *table;
    int32_t table_cap; /* hash -> set index, -1 empty */
    /* scratch */
    uint8_t *mark;
    int32_t cap_mark;
    iset stack, tmp;
    iset *bucket;          /* per class: the NFA states it leads to */
    uint64_t *bucket_hash; /* per class: hash_set of its sorted bucket */
} dfa_build;

/* Global DFA arrays under construction. */
typedef struct dfa_out {
    int32_t n, cap_next, cap_acc, cap_co;
    int32_t *next;
    uint8_t *acc;
    int32_t *call_off;
    int32_t cap_call_off;
    g4_pda_call *calls;
    int32_t n_calls, cap_calls; /* callee holds a rule id until fixed up */
} dfa_out;

static uint64_t hash_set(const int32_t *v, int32_t n) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t i = 0; i < n; i++) {
        h ^= (uint32_t)v[i];
        h *= 1099511628211ull;
    }
    return h ^ (uint64_t)n;
}

/* eps-closes s in place (sorted, unique). */
static int closure(ctx *c, dfa_build *b, iset *s) {
    if (c->n.n_states > b->cap_mark) {
        int32_t old = b->cap_mark;
        if (grow((void **)&b->mark, &b->cap_mark, c->n.n_states, 1)) return -1;
        memset(b->mark + old, 0, (size_t)(b->cap_mark - old));
    }
    b->stack.n = 0;
    for (int32_t i = 0; i < s->n; i++) {
        if (b->mark[s->v[i]]) continue;
        b->mark[s->v[i]] = 1;
        if (iset_push(&b->stack, s->v[i])) return -1;
    }
    s->n = 0;
    while (b->stack.n) {
        int32_t x = b->stack.v[--b->stack.n];
        if (iset_push(s, x)) return -1;
        for (int32_t e = c->n.head[x]; e >= 0; e = c->n.edges[e].next) {
            const nfa_edge *ed = &c->n.edges[e];
            if (ed->kind == E_EPS && !b->mark[ed->to]) {
                b->mark[ed->to] = 1;
                if (iset_push(&b->stack, ed->to)) return -1;
            }
        }
    }
    for (int32_t i = 0; i < s->n; i++) b->mark[s->v[i]] = 0;
    if (s->n > 1) qsort(s->v, (size_t)s->n, sizeof(int32_t), cmp_i32);
    return 0;
}

static int table_insert(dfa_build *b, int32_t idx) {
    uint64_t h = hash_set(b->pool + b->set_off[idx], b->set_len[idx]);
    int32_t m = b->table_cap - 1;
    for (int32_t i = (int32_t)(h & (uint64_t)m);; i = (i + 1) & m)
        if (b->table[i] < 0) {
            b->table[i] = idx;
            return 0;
        }
}

static int new_dfa_state(ctx *c, dfa_out *o) {
    int32_t nc = c->g->pda.n_classes;
    if (o->n >= c->g->lim.max_states)
        return g4_grammar_fail(c->g, "grammar over the compile limit of %d automaton states", c->g->lim.max_states);
    if (grow((void **)&o->next, &o->cap_next, (o->n + 1) * nc, sizeof(int32_t)) ||
        grow((void **)&o->acc, &o->cap_acc, o->n + 1, 1) ||
        grow((void **)&o->call_off, &o->cap_call_off, o->n + 2, sizeof(int32_t)))
        return g4_grammar_fail(c->g, "out of memory compiling the grammar");
    for (int32_t k = 0; k < nc; k++) o->next[o->n * nc + k] = -1;
    o->acc[o->n] = 0;
    return o->n++;
}

/* Returns the DFA state of the (closed, sorted) NFA set s, creating it if new; -2 on failure. */
static int32_t intern(ctx *c, dfa_build *b, dfa_out *o, const iset *s, iset *queue) {
    if (s->n == 0) return -1;
    uint64_t h = hash_set(s->v, s->n);
    if (b->table_cap) {
        int32_t m = b->table_cap - 1;
        for (int32_t i = (int32_t)(h & (uint64_t)m); b->table[i] >= 0; i = (i + 1) & m) {
            int32_t k = b->table[i];
            if (b->set_len[k] == s->n && !memcmp(b->pool + b->set_off[k], s->v, (size_t)s->n * sizeof(int32_t)))
                return b->set_state[k];
        }
    }
    if ((b->n_sets + 1) * 2 > b->table_cap) {
        int32_t nc = b->table_cap ? b->table_cap * 2 : 1024;
        int32_t *t = malloc((size_t)nc * sizeof *t);
        if (!t) {
            g4_grammar_fail(c->g, "out of memory compiling the grammar");
            return -2;
        }
        free(b->table);
        b->table = t;
        b->table_cap = nc;
        for (int32_t i = 0; i < nc; i++) t[i] = -1;
        for (int32_t k = 0; k < b->n_sets; k++) table_insert(b, k);
    }
    if (grow((void **)&b->pool, &b->cap_pool, b->n_pool + s->n, sizeof(int32_t)) ||
        grow((void **)&b->set_off, &b->cap_sets, b->n_sets + 1, sizeof(int32_t)) ||
        grow((void **)&b->set_len, &b->cap_sets2, b->n_sets + 1, sizeof(int32_t)) ||
        grow((void **)&b->set_state, &b->cap_sets3, b->n_sets + 1, sizeof(int32_t))) {
        g4_grammar_fail(c->g, "out of memory compiling the grammar");
        return -2;
    }
    int32_t st = new_dfa_state(c, o);
    if (st < 0) return -2;
    memcpy(b->pool + b->n_pool, s->v, (size_t)s->n * sizeof(int32_t));
    b->set_off[b->n_sets] = b->n_pool;
    b->set_len[b->n_sets] = s->n;
    b->set_state[b->n_sets] = st;
    b->n_pool += s->n;
    table_insert(b, b->n_sets++);
    if (iset_push(queue, b->n_sets - 1)) {
        g4_grammar_fail(c->g, "out of memory compiling the grammar");
        return -2;
    }
    return st;
}

/* Determinizes the current NFA (start 0, accept acc) into o; returns the DFA start state. */
static int32_t determinize(ctx *c, dfa_build *b, dfa_out *o, int32_t acc) {
    int32_t nc = c->g->pda.n_classes;
    b->n_pool = 0;
    b->n_sets = 0;
    if (b->table)
        for (int32_t i = 0; i < b->table_cap; i++) b->table[i] = -1;
    iset queue = {0}, s = {0};
    int32_t ret = -2;
    if (iset_push(&s, 0) || closure(c, b, &s)) goto oom;
    int32_t start = intern(c, b, o, &s, &queue);
    if (start < 0) {
        if (!c->g->failed) g4_grammar_fail(c->g, "internal error: empty start state");
        goto out;
    }
    for (int32_t qi = 0; qi < queue.n; qi++) {
        int32_t k = queue.v[qi];
        int32_t st = b->set_state[k];
        for (int32_t cl = 0; cl < nc; cl++) b->bucket[cl].n = 0;
        /* calls: (rule, target) pairs, grouped by rule below */
        b->tmp.n = 0;
        for (int32_t i = 0; i < b->set_len[k]; i++) {
            int32_t x = b->pool[b->set_off[k] + i];
            if (x == acc) o->acc[st] = 1;
            for (int32_t e = c->n.head[x]; e >= 0; e = c->n.edges[e].next) {
                const nfa_edge *ed = &c->n.edges[e];
                if (ed->kind == E_BYTES) {
                    const uint64_t *cm = c->set_classes[ed->arg];
                    for (int32_t w = 0; w < 4; w++)
                        for (uint64_t bits = cm[w]; bits; bits &= bits - 1) {
                            int32_t cl = w * 64 + __builtin_ctzll(bits);
                            if (iset_push(&b->bucket[cl], ed->to)) goto oom;
                        }
                } else if (ed->kind == E_CALL) {
                    if (iset_push(&b->tmp, ed->arg) || iset_push(&b->tmp, ed->to)) goto oom;
                }
            }
        }
        for (int32_t cl = 0; cl < nc; cl++) {
            if (!b->bucket[cl].n) continue;
            /* classes with the same targets as an earlier class share its DFA state (hashes compared
             * first: a memcmp against every earlier class cost O(classes^2) calls per state) */
            if (b->bucket[cl].n > 1) qsort(b->bucket[cl].v, (size_t)b->bucket[cl].n, sizeof(int32_t), cmp_i32);
            b->bucket_hash[cl] = hash_set(b->bucket[cl].v, b->bucket[cl].n);
            int32_t same = -1;
            for (int32_t c2 = 0; c2 < cl && same < 0; c2++)
                if (b->bucket_hash[c2] == b->bucket_hash[cl] && b->bucket[c2].n == b->bucket[cl].n &&
                    !memcmp(b->bucket[c2].v, b->bucket[cl].v, (size_t)b->bucket[cl].n * sizeof(int32_t)))
                    same = c2;
            if (same >= 0) {
                o->next[st * nc + cl] = o->next[st * nc + same];
                continue;
            }
            s.n = 0;
            for (int32_t i = 0; i < b->bucket[cl].n; i++)
                if (iset_push(&s, b->bucket[cl].v[i])) goto oom;
            if (closure(c, b, &s)) goto oom;
            int32_t t = intern(c, b, o, &s, &queue);
            if (t == -2) goto out;
            o->next[st * nc + cl] = t;
        }
        /* calls grouped by rule: one edge per rule to the union of its targets */
        o->call_off[st] = o->n_calls;
        for (int32_t i = 0; i < b->tmp.n; i += 2) {
            int32_t r = b->tmp.v[i];
            if (r < 0) continue;
            s.n = 0;
            for (int32_t j = i; j < b->tmp.n; j += 2)
                if (b->tmp.v[j] == r) {
                    if (iset_push(&s, b->tmp.v[j + 1])) goto oom;
                    if (j > i) b->tmp.v[j] = -1;
                }
            if (closure(c, b, &s)) goto oom;
            int32_t t = intern(c, b, o, &s, &queue);
            if (t == -2) goto out;
            if (grow((void **)&o->calls, &o->cap_calls, o->n_calls + 1, sizeof *o->calls)) goto oom;
            o->calls[o->n_calls].callee = r;
            o->calls[o->n_calls].ret = t;
            o->n_calls++;
        }
        o->call_off[st + 1] = o->n_calls; /* provisional: states are finished in creation order */
    }
    ret = start;
    goto out;
oom:
    g4_grammar_fail(c->g, "out of memory compiling the grammar");
out:
    free(queue.v);
    free(s.v);
    return ret;
}

/* ---------------------------------------------------------------- byte classes */

/* The index of the first set equal to set k, by a hash table over the sets (first[k] = k when
 * k is the first): grammars repeat the same few sets (quotes, digits, separators) many times,
 * and each distinct one need refine the classes only once. */
static int32_t *first_equal_sets(const g4_grammar *g) {
    size_t n_sets = g->n_sets > 0 ? (size_t)g->n_sets : 1, cap = 64;
    while (cap < 2 * n_sets) cap *= 2;
    int32_t *first = malloc(sizeof(int32_t) * n_sets), *t = malloc(sizeof(int32_t) * cap);
    if (!first || !t) {
        free(first);
        free(t);
        return NULL;
    }
    for (size_t i = 0; i < cap; i++) t[i] = -1;
    for (int32_t k = 0; k < g->n_sets; k++) {
        uint64_t w[4], h = 1469598103934665603ull;
        memcpy(w, g->sets[k], 32);
        for (int i = 0; i < 4; i++) h = (h ^ w[i]) * 1099511628211ull;
        size_t i = (size_t)((h ^ (h >> 29)) & (cap - 1));
        for (;; i = (i + 1) & (cap - 1)) {
            if (t[i] < 0) {
                t[i] = first[k] = k;
                break;
            }
            uint64_t v[4];
            memcpy(v, g->sets[t[i]], 32);
            if (v[0] == w[0] && v[1] == w[1] && v[2] == w[2] && v[3] == w[3]) {
                first[k] = t[i];
                break;
            }
        }
    }
    free(t);
    return first;
}

static int byte_classes(g4_grammar *g, ctx *c) {
    uint8_t *cls = g->pda.byte_class;
    memset(cls, 0, 256);
    int32_t n = 1;
    int32_t *first = first_equal_sets(g);
    if (!first) return g4_grammar_fail(g, "out of memory compiling the grammar");
    for (int32_t k = 0; k < g->n_sets; k++) {
        if (first[k] != k) continue; /* an equal set refined the classes already */
        int16_t map[256][2];
        for (int i = 0; i < n; i++) map[i][0] = map[i][1] = -1; /* classes so far: 0 .. n-1 */
        int32_t nn = 0;
        uint8_t out[256];
        for (int b = 0; b < 256; b++) {
            int in = (g->sets[k][b >> 3] >> (b & 7)) & 1;
            if (map[cls[b]][in] < 0) map[cls[b]][in] = (int16_t)nn++;
            out[b] = (uint8_t)map[cls[b]][in];
        }
        memcpy(cls, out, 256);
        n = nn;
    }
    g->pda.n_classes = n;
    c->set_classes = calloc(g->n_sets > 0 ? (size_t)g->n_sets : 1, sizeof *c->set_classes);
    if (!c->set_classes) {
        free(first);
        return g4_grammar_fail(g, "out of memory compiling the grammar");
    }
    for (int32_t k = 0; k < g->n_sets; k++) {
        if (first[k] != k) {
            memcpy(c->set_classes[k], c->set_classes[first[k]], sizeof c->set_classes[k]);
            continue;
        }
        for (int b = 0; b < 256; b++)
            if ((g->sets[k][b >> 3] >> (b & 7)) & 1) c->set_classes[k][cls[b] >> 6] |= 1ull << (cls[b] & 63);
    }
    free(first);
    return 0;
}

/* ---------------------------------------------------------------- analysis */

/* co[s] = 1 when s can still reach the end of its rule, calling only rules that can end. */
static void coreach(const g4_pda *p, uint8_t *co) {
    int32_t nc = p->n_classes;
    for (int32_t s = 0; s < p->n_states; s++) co[s] = p->accepting[s];
    for (int changed = 1; changed;) {
        changed = 0;
        for (int32_t s = p->n_states - 1; s >= 0; s--) {
            if (co[s]) continue;
            int ok = 0;
            for (int32_t k = 0; k < nc && !ok; k++) {
                int32_t t = p->next[s * nc + k];
                if (t >= 0 && co[t]) ok = 1;
            }
            for (int32_t i = p->call_off[s]; i < p->call_off[s + 1] && !ok; i++)
                if (co[p->calls[i].callee] && co[p->calls[i].ret]) ok = 1;
            if (ok) {
                co[s] = 1;
                changed = 1;
            }
        }
    }
}

/* nul[s] = 1 when s can reach the end of its rule without reading a byte. */
static void nullable(const g4_pda *p, uint8_t *nul) {
    for (int32_t s = 0; s < p->n_states; s++) nul[s] = p->accepting[s];
    for (int changed = 1; changed;) {
        changed = 0;
        for (int32_t s = p->n_states - 1; s >= 0; s--) {
            if (nul[s]) continue;
            for (int32_t i = p->call_off[s]; i < p->call_off[s + 1]; i++)
                if (nul[p->calls[i].callee] && nul[p->calls[i].ret]) {
                    nul[s] = 1;
                    changed = 1;
                    break;
                }
        }
    }
}

/* Left recursion: a rule that can call itself again before reading a byte. The left-call graph
 * has an edge R -> C when C is called from a state reachable from R's start through calls of
 * rules that can end without reading a byte; a cycle in it is refused. */
static int check_left_recursion(g4_grammar *g, const int32_t *rule_of_start) {
    const g4_pda *p = &g->pda;
    int32_t n = p->n_states;
    uint8_t *nul = malloc((size_t)n), *seen = calloc((size_t)n, 1), *color = calloc((size_t)n, 1);
    int32_t *vis = malloc(sizeof(int32_t) * (size_t)(n + 1));
    int32_t *off = calloc((size_t)n + 1, sizeof(int32_t));
    iset edges = {0}, stack = {0}, it = {0};
    int rc = 0;
    if (!nul || !seen || !color || !vis || !off) goto oom;
    nullable(p, nul);
    for (int32_t s0 = 0; s0 < n; s0++) {
        off[s0] = edges.n;
        if (rule_of_start[s0] < 0) continue;
        int32_t nv = 0;
        vis[nv++] = s0;
        seen[s0] = 1;
        for (int32_t q = 0; q < nv; q++) {
            int32_t s = vis[q];
            for (int32_t i = p->call_off[s]; i < p->call_off[s + 1]; i++) {
                if (iset_push(&edges, p->calls[i].callee)) goto oom;
                if (nul[p->calls[i].callee] && !seen[p->calls[i].ret]) {
                    seen[p->calls[i].ret] = 1;
                    vis[nv++] = p->calls[i].ret;
                }
            }
        }
        for (int32_t q = 0; q < nv; q++) seen[vis[q]] = 0;
    }
    off[n] = edges.n;
    for (int32_t root = 0; root < n; root++) {
        if (rule_of_start[root] < 0 || color[root]) continue;
        stack.n = it.n = 0;
        if (iset_push(&stack, root) || iset_push(&it, off[root])) goto oom;
        color[root] = 1;
        while (stack.n) {
            int32_t s = stack.v[stack.n - 1];
            if (it.v[it.n - 1] >= off[s + 1]) {
                color[s] = 2;
                stack.n--;
                it.n--;
                continue;
            }
            int32_t t = edges.v[it.v[it.n - 1]++];
            if (color[t] == 1) {
                rc = g4_grammar_fail(
                    g, "left recursion through rule '%s' (a rule that can call itself before reading any text)",
                    g->rules[rule_of_start[t]].name);
                goto out;
            }
            if (color[t] == 0) {
                color[t] = 1;
                if (iset_push(&stack, t) || iset_push(&it, off[t])) goto oom;
            }
        }
    }
    goto out;
oom:
    rc = g4_grammar_fail(g, "out of memory compiling the grammar");
out:
    free(nul);
    free(seen);
    free(color);
    free(vis);
    free(off);
    free(edges.v);
    free(stack.v);
    free(it.v);
    return rc;
}

int g4_grammar_compile(g4_grammar *g, int32_t start, g4_error *err) {
    if (g->compiled) return g4_fail(err, "grammar already compiled");
    if (!g->failed && (start < 0 || start >= g->n_rules)) g4_grammar_fail(g, "no start rule");
    if (g->failed) return g4_fail(err, "%s", g->err);
    ctx c = {.g = g};
    dfa_build b = {0};
    dfa_out o = {0};
    int32_t *order = NULL, *rule_of_start = NULL;
    uint8_t *co = NULL;
    if (byte_classes(g, &c)) goto fail;
    b.bucket = calloc((size_t)g->pda.n_classes, sizeof *b.bucket);
    b.bucket_hash = calloc((size_t)g->pda.n_classes, sizeof *b.bucket_hash);
    order = malloc(sizeof(int32_t) * (size_t)g->n_rules);
    if (!b.bucket || !b.bucket_hash || !order) {
        g4_grammar_fail(g, "out of memory compiling the grammar");
        goto fail;
    }
    /* compile the rules reachable from start, discovering callees as they appear */
    for (int32_t i = 0; i < g->n_rules; i++) g->rules[i].start = -1;
    int32_t n_order = 0;
    order[n_order++] = start;
    g->rules[start].start = -2; /* queued */
    for (int32_t qi = 0; qi < n_order; qi++) {
        int32_t r = order[qi];
        if (g->rules[r].body < 0) {
            g4_grammar_fail(g, "rule '%s' is used but never defined", g->rules[r].name);
            goto fail;
        }
        c.n.n_states = 0;
        c.n.n_edges = 0;
        if (nfa_state(&c) < 0) goto fail;
        int32_t acc = build(&c, g->rules[r].body, 0, 0);
        if (acc < 0) goto fail;
        int32_t first_call = o.n_calls;
        int32_t st = determinize(&c, &b, &o, acc);
        if (st < 0) goto fail;
        g->rules[r].start = st;
        for (int32_t i = first_call; i < o.n_calls; i++) {
            int32_t callee = o.calls[i].callee;
            if (g->rules[callee].start == -1) {
                g->rules[callee].start = -2;
                order[n_order++] = callee;
            }
        }
    }
    /* fix up: callee rule id -> start state */
    for (int32_t i = 0; i < o.n_calls; i++) o.calls[i].callee = g->rules[o.calls[i].callee].start;
    g4_pda *p = &g->pda;
    p->n_states = o.n;
    p->next = o.next;
    p->accepting = o.acc;
    p->call_off = o.call_off;
    p->calls = o.calls;
    p->start = g->rules[start].start;
    o.next = NULL;
    o.acc = NULL;
    o.call_off = NULL;
    o.calls = NULL;
    /* prune edges that cannot lead to the end of their rule */
    co = malloc((size_t)p->n_states);
    rule_of_start = malloc(sizeof(int32_t) * (size_t)p->n_states);
    p->simple = malloc((size_t)p->n_states);
    if (!co || !rule_of_start || !p->simple) {
        g4_grammar_fail(g, "out of memory compiling the grammar");
        goto fail;
    }
    coreach(p, co);
    if (!co[p->start]) {
        g4_grammar_fail(g, "the grammar admits no finite string");
        goto fail;
    }
    int32_t nc = p->n_classes, w = 0;
    for (int32_t s = 0; s < p->n_states; s++) {
        for (int32_t k = 0; k < nc; k++) {
            int32_t t = p->next[s * nc + k];
            if (t >= 0 && !co[t]) p->next[s * nc + k] = -1;
        }
        int32_t lo = p->call_off[s], hi = p->call_off[s + 1];
        p->call_off[s] = w;
        for (int32_t i = lo; i < hi; i++)
            if (co[p->calls[i].callee] && co[p->calls[i].ret]) p->calls[w++] = p->calls[i];
    }
    p->call_off[p->n_states] = w;
    for (int32_t s = 0; s < p->n_states; s++) {
        rule_of_start[s] = -1;
        p->simple[s] = !p->accepting[s] && p->call_off[s] == p->call_off[s + 1];
    }
    for (int32_t i = 0; i < n_order; i++) rule_of_start[g->rules[order[i]].start] = order[i];
    if (check_left_recursion(g, rule_of_start)) goto fail;
    g->compiled = 1;
    free(order);
    free(rule_of_start);
    free(co);
    goto cleanup;
fail:
    free(order);
    free(rule_of_start);
    free(co);
    free(o.next);
    free(o.acc);
    free(o.call_off);
    free(o.calls);
    g4_fail(err, "%s", g->err[0] ? g->err : "grammar compile failed");
cleanup:
    free(c.n.head);
    free(c.n.edges);
    free(c.set_classes);
    free(b.pool);
    free(b.set_off);
    free(b.set_len);
    free(b.set_state);
    free(b.table);
    free(b.mark);
    free(b.stack.v);
    free(b.tmp.v);
    if (b.bucket)
        for (int32_t i = 0; i < g->pda.n_classes; i++) free(b.bucket[i].v);
    free(b.bucket);
    free(b.bucket_hash);
    return g->compiled ? 0 : -1;
}
