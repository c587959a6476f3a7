/* matcher.c - heads over a graph-structured stack; see matcher.h for the model. */
#include "grammar/matcher.h"

#include <stdlib.h>
#include <string.h>

struct g4_matcher {
    const g4_pda *p;
    g4_frames fr;
    g4_step_scratch sc;
    g4_head *heads;
    int32_t n_heads, cap_heads;
    g4_head *tmp;
    int32_t cap_tmp;
};

void g4_step_scratch_free(g4_step_scratch *sc) {
    free(sc->wl);
    free(sc->keys);
    free(sc->vals);
    free(sc->used);
    memset(sc, 0, sizeof *sc);
}

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

/* Dedup table: key = tag | state | frame; empty slot = 0 (keys always have a tag bit set). */
enum { TAG_HEAD = 1, TAG_FRAME = 2, TAG_OUT = 3 };
static uint64_t key_of(int tag, int32_t a, int32_t b) {
    return ((uint64_t)tag << 62) | ((uint64_t)(uint32_t)a << 31) | (uint64_t)(uint32_t)(b + 1);
}

static void tab_clear(g4_step_scratch *sc) {
    for (int32_t i = 0; i < sc->n_used; i++) sc->keys[sc->used[i]] = 0;
    sc->n_used = 0;
}

/* Finds key; returns its slot (vals[slot] valid when keys[slot] == key) or -1 on OOM. */
static int32_t tab_slot(g4_step_scratch *sc, uint64_t key) {
    if ((sc->n_used + 1) * 2 > sc->cap_tab) {
        int32_t nc = sc->cap_tab ? sc->cap_tab * 2 : 64;
        uint64_t *k = calloc((size_t)nc, sizeof *k);
        int32_t *v = malloc((size_t)nc * sizeof *v);
        int32_t *u = malloc((size_t)nc * sizeof *u);
        if (!k || !v || !u) {
            free(k);
            free(v);
            free(u);
            return -1;
        }
        int32_t nu = 0;
        for (int32_t i = 0; i < sc->n_used; i++) {
            uint64_t kk = sc->keys[sc->used[i]];
            uint64_t h = kk * 0x9E3779B97F4A7C15ull;
            int32_t j = (int32_t)(h >> 40) & (nc - 1);
            while (k[j]) j = (j + 1) & (nc - 1);
            k[j] = kk;
            v[j] = sc->vals[sc->used[i]];
            u[nu++] = j;
        }
        free(sc->keys);
        free(sc->vals);
        free(sc->used);
        sc->keys = k;
        sc->vals = v;
        sc->used = u;
        sc->cap_tab = nc;
        sc->cap_used = nc;
    }
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    int32_t j = (int32_t)(h >> 40) & (sc->cap_tab - 1);
    while (sc->keys[j] && sc->keys[j] != key) j = (j + 1) & (sc->cap_tab - 1);
    return j;
}

/* Inserts key if new. Returns 1 if inserted, 0 if present, -1 on OOM; *slot gets the slot. */
static int tab_insert(g4_step_scratch *sc, uint64_t key, int32_t *slot) {
    int32_t j = tab_slot(sc, key);
    if (j < 0) return -1;
    *slot = j;
    if (sc->keys[j] == key) return 0;
    sc->keys[j] = key;
    sc->used[sc->n_used++] = j;
    return 1;
}

static int push_wl(g4_step_scratch *sc, g4_head h) {
    int32_t slot;
    int r = tab_insert(sc, key_of(TAG_HEAD, h.state, h.frame), &slot);
    if (r <= 0) return r;
    if (grow((void **)&sc->wl, &sc->cap_wl, sc->n_wl + 1, sizeof *sc->wl)) return -1;
    sc->wl[sc->n_wl++] = h;
    return 0;
}

static int32_t frame_get(g4_frames *fr, g4_step_scratch *sc, int32_t ret, int32_t parent) {
    int32_t slot;
    int r = tab_insert(sc, key_of(TAG_FRAME, ret, parent), &slot);
    if (r < 0) return -1;
    if (r == 0) return sc->vals[slot];
    if (fr->n + 1 > fr->cap) { /* the two arrays grow together */
        int32_t cap = fr->cap, cap2 = fr->cap;
        if (grow((void **)&fr->state, &cap, fr->n + 1, sizeof(int32_t)) ||
            grow((void **)&fr->parent, &cap2, fr->n + 1, sizeof(int32_t)))
            return -1;
        fr->cap = cap < cap2 ? cap : cap2;
    }
    fr->state[fr->n] = ret;
    fr->parent[fr->n] = parent;
    sc->vals[slot] = fr->n;
    return fr->n++;
}

/* Closure of in into sc->wl (the table is left holding the closure's keys). Returns 1 when some
 * head can end the whole string, 0 otherwise, -1 on OOM. */
static int closure(const g4_pda *p, g4_frames *fr, g4_step_scratch *sc, const g4_head *in, int32_t n_in) {
    tab_clear(sc);
    sc->n_wl = 0;
    int can_end = 0;
    for (int32_t i = 0; i < n_in; i++)
        if (push_wl(sc, in[i])) return -1;
    for (int32_t i = 0; i < sc->n_wl; i++) {
        if (sc->n_wl > 16 * G4_MATCHER_MAX_HEADS) return -1; /* too ambiguous (matcher.h) */
        g4_head h = sc->wl[i];
        for (int32_t k = p->call_off[h.state]; k < p->call_off[h.state + 1]; k++) {
            int32_t f = frame_get(fr, sc, p->calls[k].ret, h.frame);
            if (f < 0) return -1;
            g4_head c = {p->calls[k].callee, f};
            if (push_wl(sc, c)) return -1;
        }
        if (p->accepting[h.state]) {
            if (h.frame < 0) can_end = 1;
            else {
                g4_head up = {fr->state[h.frame], fr->parent[h.frame]};
                if (push_wl(sc, up)) return -1;
            }
        }
    }
    return can_end;
}

int32_t g4_pda_step(const g4_pda *p, g4_frames *fr, g4_step_scratch *sc, const g4_head *in, int32_t n_in, int32_t cls,
                    g4_head **out, int32_t *cap_out) {
    const int32_t nc = p->n_classes;
    if (n_in == 1 && p->simple[in[0].state]) { /* fast path: one head inside a rule */
        int32_t t = p->next[in[0].state * nc + cls];
        if (t < 0) return 0;
        if (grow((void **)out, cap_out, 1, sizeof(g4_head))) return -1;
        (*out)[0].state = t;
        (*out)[0].frame = in[0].frame;
        return 1;
    }
    if (closure(p, fr, sc, in, n_in) < 0) return -1;
    int32_t n = 0;
    for (int32_t i = 0; i < sc->n_wl; i++) {
        int32_t t = p->next[sc->wl[i].state * nc + cls];
        if (t < 0) continue;
        int32_t slot;
        int r = tab_insert(sc, key_of(TAG_OUT, t, sc->wl[i].frame), &slot);
        if (r < 0) return -1;
        if (r == 0) continue;
        if (n == G4_MATCHER_MAX_HEADS) return -1; /* too ambiguous (matcher.h) */
        if (grow((void **)out, cap_out, n + 1, sizeof(g4_head))) return -1;
        (*out)[n].state = t;
        (*out)[n].frame = sc->wl[i].frame;
        n++;
    }
    return n;
}

int g4_pda_can_end(const g4_pda *p, g4_frames *fr, g4_step_scratch *sc, const g4_head *in, int32_t n_in) {
    return closure(p, fr, sc, in, n_in);
}

g4_matcher *g4_matcher_new(const g4_grammar *g) {
    const g4_pda *p = g4_grammar_pda(g);
    if (!p) return NULL;
    g4_matcher *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    m->p = p;
    if (grow((void **)&m->heads, &m->cap_heads, 1, sizeof(g4_head))) {
        free(m);
        return NULL;
    }
    m->heads[0].state = p->start;
    m->heads[0].frame = -1;
    m->n_heads = 1;
    return m;
}

void g4_matcher_free(g4_matcher *m) {
    if (!m) return;
    free(m->fr.state);
    free(m->fr.parent);
    g4_step_scratch_free(&m->sc);
    free(m->heads);
    free(m->tmp);
    free(m);
}

int g4_matcher_advance(g4_matcher *m, const void *bytes, size_t n) {
    const uint8_t *b = bytes;
    g4_head *save = NULL;
    int32_t n_save = m->n_heads;
    if (n > 1) {
        save = malloc((size_t)m->n_heads * sizeof *save);
        if (!save) return -1;
        memcpy(save, m->heads, (size_t)m->n_heads * sizeof *save);
    }
    for (size_t i = 0; i < n; i++) {
        int32_t k =
            g4_pda_step(m->p, &m->fr, &m->sc, m->heads, m->n_heads, m->p->byte_class[b[i]], &m->tmp, &m->cap_tmp);
        if (k <= 0) {
            if (save) {
                if (grow((void **)&m->heads, &m->cap_heads, n_save, sizeof *save)) {
                    free(save);
                    return -1;
                }
                memcpy(m->heads, save, (size_t)n_save * sizeof *save);
                m->n_heads = n_save;
            }
            free(save);
            return -1;
        }
        g4_head *t = m->heads;
        m->heads = m->tmp;
        m->tmp = t;
        int32_t c = m->cap_heads;
        m->cap_heads = m->cap_tmp;
        m->cap_tmp = c;
        m->n_heads = k;
    }
    free(save);
    return 0;
}

int g4_matcher_accepting(g4_matcher *m) { return g4_pda_can_end(m->p, &m->fr, &m->sc, m->heads, m->n_heads) == 1; }

int g4_matcher_n_heads(const g4_matcher *m) { return m->n_heads; }
const g4_head *g4_matcher_heads(const g4_matcher *m, int32_t *n) {
    *n = m->n_heads;
    return m->heads;
}
g4_frames *g4_matcher_frames(g4_matcher *m) { return &m->fr; }
g4_step_scratch *g4_matcher_scratch(g4_matcher *m) { return &m->sc; }
const g4_pda *g4_matcher_pda(const g4_matcher *m) { return m->p; }
