/* tokenizer.c - encode and decode with a loaded g4_tokenizer (see tokenizer.h).
 *
 * Encode = added-token split (byte trie, leftmost-longest) -> space normalizer -> BPE.
 * The BPE loop mirrors `tokenizers` (word.rs merge_all) on purpose, including its quirks:
 * a min-heap of (rank, position), entries validated lazily by the merged id only. When several
 * merges produce the same token (the real Gemma file has ~515k merges for 262k tokens), that
 * validation rule decides ties, so copying it is what makes the ids match exactly.
 * Not here: loading (tokenizer_load.c), streaming decode (detokenizer.c). */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_impl.h"
#include "text/utf8.h"

static const char SP_UTF8[] = "\xE2\x96\x81";

int g4_tokens_push(g4_tokens *t, int32_t id) {
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        int32_t *p = realloc(t->ids, cap * sizeof *p);
        if (!p) return -1;
        t->ids = p;
        t->cap = cap;
    }
    t->ids[t->n++] = id;
    return 0;
}

void g4_tokens_free(g4_tokens *t) {
    free(t->ids);
    t->ids = NULL;
    t->n = t->cap = 0;
}

int32_t g4_tokenizer_n_vocab(const g4_tokenizer *tok) { return tok->n_vocab; }

const g4_special_ids *g4_tokenizer_specials(const g4_tokenizer *tok) { return &tok->sp; }

int g4_tokenizer_wants_bos(const g4_tokenizer *tok) { return tok->wants_bos; }

int32_t g4_tokenizer_token_id(const g4_tokenizer *tok, const char *str, size_t len) {
    for (int32_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].len == len && !memcmp(tok->arena + tok->added[i].off, str, len)) return tok->added[i].id;
    return g4_tok_vocab_find(tok, str, len);
}

const char *g4_tokenizer_token_text(const g4_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_vocab) return NULL;
    *len = tok->tok_len[id];
    return tok->arena + tok->tok_off[id];
}

int g4_tokenizer_is_special(const g4_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_vocab && tok->is_special[id];
}

/* ---- BPE -------------------------------------------------------------------------------- */

typedef struct heap_item {
    int32_t rank, pos, new_id;
} heap_item;

/* Per-call scratch, sized for the longest piece seen so far in this call. */
typedef struct bpe_scratch {
    int32_t *id, *prev, *next;
    uint8_t *alive;
    heap_item *heap;
    size_t cap, heap_cap;
    char *norm;          /* normalized segment */
    size_t norm_cap;
    unsigned char *norm_user; /* the user-text flags of norm (masked encode only) */
    size_t norm_user_cap;
} bpe_scratch;

static void scratch_free(bpe_scratch *s) {
    free(s->id);
    free(s->prev);
    free(s->next);
    free(s->alive);
    free(s->heap);
    free(s->norm);
    free(s->norm_user);
}

static int scratch_reserve(bpe_scratch *s, size_t n) {
    if (n <= s->cap) return 0;
    size_t cap = n < 64 ? 64 : n;
    int32_t *a = realloc(s->id, cap * 4);
    if (a) s->id = a;
    int32_t *b = realloc(s->prev, cap * 4);
    if (b) s->prev = b;
    int32_t *c = realloc(s->next, cap * 4);
    if (c) s->next = c;
    uint8_t *d = realloc(s->alive, cap);
    if (d) s->alive = d;
    if (!a || !b || !c || !d) return -1;
    s->cap = cap;
    return 0;
}

static int heap_less(const heap_item *a, const heap_item *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(bpe_scratch *s, size_t *n, heap_item it) {
    if (*n == s->heap_cap) {
        size_t cap = s->heap_cap ? s->heap_cap * 2 : 64;
        heap_item *p = realloc(s->heap, cap * sizeof *p);
        if (!p) return -1;
        s->heap = p;
        s->heap_cap = cap;
    }
    heap_item *h = s->heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_less(&it, &h[parent])) break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = it;
    return 0;
}

static heap_item heap_pop(heap_item *h, size_t *n) {
    heap_item top = h[0], last = h[--*n];
    size_t i = 0, m = *n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        const heap_item *bi = &last;
        if (l < m && heap_less(&h[l], bi)) best = l, bi = &h[l];
        if (r < m && heap_less(&h[r], bi)) best = r;
        if (best == i) break;
        h[i] = h[best];
        i = best;
    }
    if (m) h[i] = last;
    return top;
}

static int push_pair(const g4_tokenizer *tok, bpe_scratch *s, size_t *hn, int32_t pos) {
    int32_t nx = s->next[pos], rank, new_id;
    if (nx < 0 || !g4_tok_merge_find(tok, s->id[pos], s->id[nx], &rank, &new_id)) return 0;
    return heap_push(s, hn, (heap_item){rank, pos, new_id});
}

/* Runs the merge loop over symbols [start, end) and appends the result to out. */
static int merge_range(const g4_tokenizer *tok, bpe_scratch *s, size_t start, size_t end, g4_tokens *out) {
    for (size_t i = start; i < end; i++) {
        s->prev[i] = i > start ? (int32_t)i - 1 : -1;
        s->next[i] = i + 1 < end ? (int32_t)i + 1 : -1;
        s->alive[i] = 1;
    }
    size_t hn = 0;
    for (size_t i = start; i + 1 < end; i++)
        if (push_pair(tok, s, &hn, (int32_t)i)) return -1;
    while (hn) {
        heap_item top = heap_pop(s->heap, &hn);
        int32_t pos = top.pos;
        if (!s->alive[pos] || s->next[pos] < 0) continue;
        int32_t nx = s->next[pos], rank, new_id;
        /* Stale-entry check exactly as `tokenizers`: the pair must still merge to new_id. */
        if (!g4_tok_merge_find(tok, s->id[pos], s->id[nx], &rank, &new_id) || new_id != top.new_id) continue;
        s->id[pos] = top.new_id;
        s->alive[nx] = 0;
        s->next[pos] = s->next[nx];
        if (s->next[nx] >= 0) s->prev[s->next[nx]] = pos;
        if (s->prev[pos] >= 0 && push_pair(tok, s, &hn, s->prev[pos])) return -1;
        if (push_pair(tok, s, &hn, pos)) return -1;
    }
    for (int32_t i = (int32_t)start; i >= 0; i = s->next[i])
        if (g4_tokens_push(out, s->id[i])) return -1;
    return 0;
}

/* Adds one initial symbol; fuses consecutive unknowns when the model asks for it. */
static void add_symbol(const g4_tokenizer *tok, bpe_scratch *s, size_t *n, int32_t id) {
    if (id == tok->unk_id && tok->fuse_unk && *n && s->id[*n - 1] == tok->unk_id) return;
    s->id[*n] = id;
    (*n)++;
}

/* BPE over one normalized piece p[0..m), appending ids to out. */
static int bpe_piece(const g4_tokenizer *tok, bpe_scratch *s, const char *p, size_t m, g4_tokens *out) {
    if (!m) return 0;
    if (tok->ignore_merges) {
        int32_t whole = g4_tok_vocab_find(tok, p, m);
        if (whole >= 0) return g4_tokens_push(out, whole);
    }
    if (scratch_reserve(s, m)) return -1; /* at most one symbol per byte */
    size_t n = 0;
    for (size_t i = 0; i < m;) {
        uint32_t cp;
        int l = g4_utf8_next(p + i, m - i, &cp);
        int32_t id = -1;
        if (l == 1) id = tok->ascii_id[cp];
        else if (l > 1) id = g4_tok_vocab_find(tok, p + i, (size_t)l);
        if (l == 0) l = 1; /* invalid byte: it can only be a byte token */
        if (id >= 0) {
            add_symbol(tok, s, &n, id);
        } else {
            int all = tok->byte_fallback;
            for (int k = 0; k < l && all; k++) all = tok->byte_id[(uint8_t)p[i + k]] >= 0;
            if (all) {
                for (int k = 0; k < l; k++) add_symbol(tok, s, &n, tok->byte_id[(uint8_t)p[i + k]]);
            } else if (tok->unk_id >= 0) {
                add_symbol(tok, s, &n, tok->unk_id);
            } /* else: no unk and no byte token; `tokenizers` drops the character too */
        }
        i += (size_t)l;
    }
    /* Long pieces are cut where no merge can ever reach across (see tokenizer_impl.h,
     * chunk_pairs): each chunk then merges in its own small, cache-resident heap. */
    size_t start = 0;
    while (start < n) {
        size_t end = n;
        if (tok->chunk_ok && n - start > 2 * G4_BPE_CHUNK) {
            end = start + G4_BPE_CHUNK;
            while (end < n && !g4_tok_chunk_safe(tok, s->id[end - 1], s->id[end])) end++;
        }
        if (merge_range(tok, s, start, end, out)) return -1;
        start = end;
    }
    return 0;
}

/* ---- added-token split ------------------------------------------------------------------ */

static int is_word_byte(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

/* Finds the leftmost-longest added-token match in s[from..n) using trie t. Returns the added
 * index (and the match bounds, widened by lstrip/rstrip) or -1. plain: ignore special tokens.
 * user (NULL or one flag per byte of s): a special token never matches over a flagged byte. */
static int32_t find_added(const g4_tokenizer *tok, const g4_trie *t, const char *s, size_t from, size_t n, int plain,
                          const unsigned char *user, size_t *mb, size_t *me) {
    if (t->nodes[0].first_child < 0) return -1;
    for (size_t i = from; i < n; i++) {
        int32_t cur = 0, best = -1;
        size_t best_end = 0;
        int in_user = 0;
        for (size_t j = i; j < n; j++) {
            int32_t ch = t->nodes[cur].first_child;
            while (ch >= 0 && t->nodes[ch].byte != (uint8_t)s[j]) ch = t->nodes[ch].next_sibling;
            if (ch < 0) break;
            cur = ch;
            if (user) in_user |= user[j];
            int32_t a = t->nodes[cur].added;
            if (a >= 0 && !((plain || in_user) && tok->added[a].special)) best = a, best_end = j + 1;
        }
        if (best < 0) continue;
        const g4_added_token *at = &tok->added[best];
        if (at->single_word && ((i > 0 && is_word_byte((unsigned char)s[i - 1])) ||
                                (best_end < n && is_word_byte((unsigned char)s[best_end]))))
            continue;
        size_t b = i, e = best_end;
        if (at->lstrip)
            while (b > from && (s[b - 1] == ' ' || s[b - 1] == '\t' || s[b - 1] == '\n' || s[b - 1] == '\r')) b--;
        if (at->rstrip)
            while (e < n && (s[e] == ' ' || s[e] == '\t' || s[e] == '\n' || s[e] == '\r')) e++;
        *mb = b, *me = e;
        return best;
    }
    return -1;
}

/* Normalizes s[0..n) (" " -> U+2581), splits normalized added tokens, runs BPE on the rest. */
static int encode_segment(const g4_tokenizer *tok, bpe_scratch *sc, const char *s, size_t n, int plain,
                          const unsigned char *user, g4_tokens *out) {
    if (!n) return 0;
    const char *p = s;
    const unsigned char *pu = user;
    size_t m = n;
    if (tok->normalize_space) {
        if (n * 3 > sc->norm_cap) {
            char *q = realloc(sc->norm, n * 3);
            if (!q) return -1;
            sc->norm = q;
            sc->norm_cap = n * 3;
        }
        if (user && n * 3 > sc->norm_user_cap) {
            unsigned char *q = realloc(sc->norm_user, n * 3);
            if (!q) return -1;
            sc->norm_user = q;
            sc->norm_user_cap = n * 3;
        }
        m = 0;
        for (size_t i = 0; i < n; i++) {
            size_t k = s[i] == ' ' ? 3 : 1;
            if (s[i] == ' ') memcpy(sc->norm + m, SP_UTF8, 3);
            else sc->norm[m] = s[i];
            if (user) memset(sc->norm_user + m, user[i], k);
            m += k;
        }
        p = sc->norm;
        pu = user ? sc->norm_user : NULL;
    }
    size_t pos = 0, mb, me;
    int32_t a;
    while ((a = find_added(tok, &tok->trie_norm, p, pos, m, plain, pu, &mb, &me)) >= 0) {
        if (bpe_piece(tok, sc, p + pos, mb - pos, out) || g4_tokens_push(out, tok->added[a].id)) return -1;
        pos = me;
    }
    return bpe_piece(tok, sc, p + pos, m - pos, out);
}

int g4_tokenizer_encode(const g4_tokenizer *tok, const char *text, size_t len, unsigned flags, g4_tokens *out,
                        g4_error *err) {
    return g4_tokenizer_encode_masked(tok, text, len, flags, NULL, out, err);
}

int g4_tokenizer_encode_masked(const g4_tokenizer *tok, const char *text, size_t len, unsigned flags,
                               const unsigned char *user, g4_tokens *out, g4_error *err) {
    bpe_scratch sc = {0};
    int plain = !(flags & G4_ENCODE_SPLIT_SPECIAL);
    size_t first = out->n;
    int rc = 0;
    if ((flags & G4_ENCODE_ADD_BOS) && tok->sp.bos >= 0) rc = g4_tokens_push(out, tok->sp.bos);
    size_t pos = 0, mb, me;
    int32_t a;
    while (!rc && (a = find_added(tok, &tok->trie_raw, text, pos, len, plain, user, &mb, &me)) >= 0) {
        rc = encode_segment(tok, &sc, text + pos, mb - pos, plain, user ? user + pos : NULL, out);
        if (!rc) rc = g4_tokens_push(out, tok->added[a].id);
        pos = me;
    }
    if (!rc) rc = encode_segment(tok, &sc, text + pos, len - pos, plain, user ? user + pos : NULL, out);
    scratch_free(&sc);
    if (rc) return g4_fail(err, "tokenizer: out of memory encoding %zu bytes", len);
    /* One BOS only: drop the one we added when the text itself began with <bos>. */
    if ((flags & G4_ENCODE_ADD_BOS) && tok->sp.bos >= 0 && out->n >= first + 2 && out->ids[first + 1] == tok->sp.bos) {
        memmove(out->ids + first, out->ids + first + 1, (out->n - first - 1) * sizeof(int32_t));
        out->n--;
    }
    return 0;
}

/* ---- decode ----------------------------------------------------------------------------- */

/* Closes a byte run that occupies out->data[run_start..]: kept if valid UTF-8, otherwise
 * replaced by one U+FFFD per byte (the `tokenizers` ByteFallback rule). */
int g4_tok_close_byte_run(g4_strbuf *out, size_t run_start) {
    size_t n = out->len - run_start;
    if (!n || g4_utf8_valid(out->data + run_start, n)) return 0;
    out->len = run_start;
    for (size_t i = 0; i < n; i++)
        if (g4_strbuf_append(out, "\xEF\xBF\xBD", 3)) return -1;
    return 0;
}

int g4_tokenizer_decode(const g4_tokenizer *tok, const int32_t *ids, size_t n, unsigned flags, g4_strbuf *out,
                        g4_error *err) {
    size_t run_start = SIZE_MAX;
    int skip = flags & G4_DECODE_SKIP_SPECIAL;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->n_vocab || (skip && tok->is_special[id])) continue;
        int bv = tok->byte_val[id];
        if (bv >= 0) {
            if (run_start == SIZE_MAX) run_start = out->len;
            char c = (char)bv;
            if (g4_strbuf_append(out, &c, 1)) goto oom;
            continue;
        }
        if (run_start != SIZE_MAX) {
            if (g4_tok_close_byte_run(out, run_start)) goto oom;
            run_start = SIZE_MAX;
        }
        if (g4_strbuf_append(out, tok->dec + tok->dec_off[id], tok->dec_len[id])) goto oom;
    }
    if (run_start != SIZE_MAX && g4_tok_close_byte_run(out, run_start)) goto oom;
    if (g4_strbuf_reserve(out, 0)) goto oom; /* NUL-terminated even when nothing was added */
    if (out->data) out->data[out->len] = 0;
    return 0;
oom:
    return g4_fail(err, "tokenizer: out of memory decoding %zu ids", n);
}
