/* tokenizer_load.c - builds a g4_tokenizer from an HF tokenizer.json (Gemma 4 form).
 *
 * Reads the JSON with cJSON, copies every token string into one arena, and builds three
 * tables: vocab (string -> id), merges ((left, right) -> (rank, merged id)) and a byte trie
 * over the added tokens. Validates the pipeline (normalizer, pre-tokenizer, decoder) and
 * refuses anything that is not the Gemma form, naming the field.
 * Not here: encoding and decoding (tokenizer.c). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "text/tokenizer_impl.h"
#include "text/utf8.h"

static const char SP_UTF8[] = "\xE2\x96\x81"; /* U+2581 LOWER ONE EIGHTH BLOCK */

int32_t g4_tok_vocab_find(const g4_tokenizer *tok, const char *s, size_t n) {
    uint32_t i = g4_tok_hash(s, n) & tok->vocab_mask;
    for (;;) {
        int32_t id = tok->vocab_slots[i];
        if (id < 0) return -1;
        if (tok->tok_len[id] == n && memcmp(tok->arena + tok->tok_off[id], s, n) == 0) return id;
        i = (i + 1) & tok->vocab_mask;
    }
}

static uint64_t pow2_at_least(uint64_t n) {
    uint64_t p = 16;
    while (p < n) p <<= 1;
    return p;
}

/* ---- added-token trie ------------------------------------------------------------------- */

static int trie_init(g4_trie *t) {
    t->cap = 64;
    t->nodes = malloc(sizeof *t->nodes * (size_t)t->cap);
    if (!t->nodes) return -1;
    t->n = 1;
    t->nodes[0] = (g4_trie_node){-1, -1, -1, 0};
    return 0;
}

static int trie_insert(g4_trie *t, const char *s, size_t n, int32_t added) {
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        int32_t ch = t->nodes[cur].first_child;
        while (ch >= 0 && t->nodes[ch].byte != c) ch = t->nodes[ch].next_sibling;
        if (ch < 0) {
            if (t->n == t->cap) {
                g4_trie_node *p = realloc(t->nodes, sizeof *p * (size_t)t->cap * 2);
                if (!p) return -1;
                t->nodes = p;
                t->cap *= 2;
            }
            ch = t->n++;
            t->nodes[ch] = (g4_trie_node){-1, t->nodes[cur].first_child, -1, c};
            t->nodes[cur].first_child = ch;
        }
        cur = ch;
    }
    if (t->nodes[cur].added < 0) t->nodes[cur].added = added; /* first duplicate wins */
    return 0;
}

/* ---- JSON helpers ----------------------------------------------------------------------- */

static const char *jstr(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int jtrue(const cJSON *o, const char *key) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key)); }

/* A {"String": s} pattern object: returns s, or NULL for regex patterns / anything else. */
static const char *pattern_string(const cJSON *o) {
    return jstr(cJSON_GetObjectItemCaseSensitive(o, "pattern"), "String");
}

static int is_space_to_sp_replace(const cJSON *n) {
    const char *type = jstr(n, "type"), *pat = pattern_string(n), *content = jstr(n, "content");
    return type && !strcmp(type, "Replace") && pat && !strcmp(pat, " ") && content && !strcmp(content, SP_UTF8);
}

static int check_normalizer(g4_tokenizer *tok, const cJSON *n, g4_error *err) {
    if (!n || cJSON_IsNull(n)) return 0;
    const char *type = jstr(n, "type");
    if (is_space_to_sp_replace(n)) {
        tok->normalize_space = 1;
        return 0;
    }
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(n, "normalizers")) {
            if (!is_space_to_sp_replace(e))
                return g4_fail(err,
                               "tokenizer.json: normalizer step \"%s\" is not supported "
                               "(only Replace(\" \", \"\\u2581\"))",
                               jstr(e, "type") ? jstr(e, "type") : "?");
            tok->normalize_space = 1;
        }
        return 0;
    }
    return g4_fail(err,
                   "tokenizer.json: normalizer \"%s\" is not supported (Gemma form: "
                   "Replace(\" \", \"\\u2581\"))",
                   type ? type : "?");
}

static int check_pre_tokenizer(const g4_tokenizer *tok, const cJSON *p, g4_error *err) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *type = jstr(p, "type"), *pat = pattern_string(p);
    /* Split on " " after a normalizer that removed every " " never splits anything. */
    if (type && !strcmp(type, "Split") && pat && !strcmp(pat, " ") && tok->normalize_space) return 0;
    return g4_fail(err,
                   "tokenizer.json: pre_tokenizer \"%s\" is not supported (Gemma form: "
                   "Split(\" \") after the space normalizer)",
                   type ? type : "?");
}

static int check_decoder(const cJSON *d, g4_error *err) {
    if (!d || cJSON_IsNull(d)) return 0;
    const char *type = jstr(d, "type");
    if (!type || strcmp(type, "Sequence"))
        return g4_fail(err,
                       "tokenizer.json: decoder \"%s\" is not supported (Gemma form: "
                       "Sequence[Replace, ByteFallback, Fuse])",
                       type ? type : "?");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(d, "decoders")) {
        const char *t = jstr(e, "type");
        const char *pat = pattern_string(e), *content = jstr(e, "content");
        if (t && (!strcmp(t, "ByteFallback") || !strcmp(t, "Fuse"))) continue;
        if (t && !strcmp(t, "Replace") && pat && !strcmp(pat, SP_UTF8) && content && !strcmp(content, " ")) continue;
        return g4_fail(err, "tokenizer.json: decoder step \"%s\" is not supported", t ? t : "?");
    }
    return 0;
}

static void check_post_processor(g4_tokenizer *tok, const cJSON *p) {
    const char *type = jstr(p, "type");
    if (!type || strcmp(type, "TemplateProcessing")) return;
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(p, "single"), 0);
    const char *id = jstr(cJSON_GetObjectItemCaseSensitive(first, "SpecialToken"), "id");
    tok->wants_bos = id && !strcmp(id, "<bos>");
}

/* ---- building --------------------------------------------------------------------------- */

static int build_vocab_slots(g4_tokenizer *tok, int32_t n_model, g4_error *err) {
    uint64_t size = pow2_at_least((uint64_t)n_model * 2);
    tok->vocab_slots = malloc(sizeof(int32_t) * size);
    if (!tok->vocab_slots) return g4_fail(err, "tokenizer: out of memory (vocab table)");
    memset(tok->vocab_slots, 0xff, sizeof(int32_t) * size);
    tok->vocab_mask = (uint32_t)(size - 1);
    return 0;
}

static void vocab_insert(g4_tokenizer *tok, int32_t id) {
    uint32_t i = g4_tok_hash(tok->arena + tok->tok_off[id], tok->tok_len[id]) & tok->vocab_mask;
    while (tok->vocab_slots[i] >= 0) i = (i + 1) & tok->vocab_mask;
    tok->vocab_slots[i] = id;
}

/* Inserts or replaces (HF builds its merge map with later duplicates overwriting earlier). */
static void merge_insert(g4_tokenizer *tok, int32_t a, int32_t b, int32_t rank, int32_t new_id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    uint64_t i = g4_merge_hash(key) & tok->merge_mask;
    while (tok->merges[i].key != G4_MERGE_EMPTY && tok->merges[i].key != key) i = (i + 1) & tok->merge_mask;
    tok->merges[i] = (g4_merge_slot){key, rank, new_id};
}

static int load_merges(g4_tokenizer *tok, const cJSON *merges, g4_error *err) {
    int32_t n = cJSON_GetArraySize(merges);
    uint64_t size = pow2_at_least((uint64_t)(n > 0 ? n : 1) * 2);
    tok->merges = malloc(sizeof *tok->merges * size);
    if (!tok->merges) return g4_fail(err, "tokenizer: out of memory (merge table)");
    for (uint64_t i = 0; i < size; i++) tok->merges[i].key = G4_MERGE_EMPTY;
    tok->merge_mask = size - 1;
    tok->n_merges = n;
    char *cat = NULL;
    size_t cat_cap = 0;
    int32_t rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(m)) { /* legacy "left right" form */
            const char *s = m->valuestring, *spc = strchr(s, ' ');
            if (!spc || strchr(spc + 1, ' ')) {
                free(cat);
                return g4_fail(err, "tokenizer.json: model.merges[%d] \"%s\" is not \"a b\"", rank, s);
            }
            a = s, la = (size_t)(spc - s), b = spc + 1, lb = strlen(b);
        } else if (cJSON_IsArray(m) && m->child && m->child->next && !m->child->next->next &&
                   cJSON_IsString(m->child) && cJSON_IsString(m->child->next)) {
            a = m->child->valuestring, la = strlen(a);
            b = m->child->next->valuestring, lb = strlen(b);
        } else {
            free(cat);
            return g4_fail(err, "tokenizer.json: model.merges[%d] is neither \"a b\" nor [a, b]", rank);
        }
        int32_t ia = g4_tok_vocab_find(tok, a, la), ib = g4_tok_vocab_find(tok, b, lb);
        if (ia < 0 || ib < 0) {
            free(cat);
            return g4_fail(err, "tokenizer.json: model.merges[%d]: token \"%.*s\" not in vocab", rank,
                           (int)(ia < 0 ? la : lb), ia < 0 ? a : b);
        }
        if (la + lb > cat_cap) {
            cat_cap = (la + lb) * 2 + 64;
            char *p = realloc(cat, cat_cap);
            if (!p) {
                free(cat);
                return g4_fail(err, "tokenizer: out of memory");
            }
            cat = p;
        }
        memcpy(cat, a, la);
        memcpy(cat + la, b, lb);
        int32_t inew = g4_tok_vocab_find(tok, cat, la + lb);
        if (inew < 0) {
            free(cat);
            return g4_fail(err,
                           "tokenizer.json: model.merges[%d]: merged token \"%.*s%.*s\" not "
                           "in vocab",
                           rank, (int)la, a, (int)lb, b);
        }
        merge_insert(tok, ia, ib, rank, inew);
        rank++;
    }
    free(cat);
    return 0;
}

/* The decoder's byte rule (HF ByteFallback): a 6-byte "<0xHH>" token string is that byte.
 * Rust's u8::from_str_radix also takes a leading '+', so "<0x+A>" counts too. */
static int decoder_byte_value(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0 && !(i == 3 && c == '+')) return -1;
        v = v * 16 + (d < 0 ? 0 : d);
    }
    return v;
}

static int build_decoded(g4_tokenizer *tok, g4_error *err) {
    size_t n = (size_t)tok->n_vocab;
    tok->dec = malloc(tok->arena_len + 1);
    tok->dec_off = malloc(sizeof(uint32_t) * n);
    tok->dec_len = malloc(sizeof(uint32_t) * n);
    tok->byte_val = malloc(sizeof(int16_t) * n);
    if (!tok->dec || !tok->dec_off || !tok->dec_len || !tok->byte_val)
        return g4_fail(err, "tokenizer: out of memory (decode tables)");
    size_t w = 0;
    for (size_t id = 0; id < n; id++) {
        const char *s = tok->arena + tok->tok_off[id];
        size_t len = tok->tok_len[id];
        tok->byte_val[id] = (int16_t)decoder_byte_value(s, len);
        tok->dec_off[id] = (uint32_t)w;
        for (size_t i = 0; i < len;) { /* "\u2581" (3 bytes) -> " " (1 byte): never grows */
            if (i + 3 <= len && !memcmp(s + i, SP_UTF8, 3)) {
                tok->dec[w++] = ' ';
                i += 3;
            } else {
                tok->dec[w++] = s[i++];
            }
        }
        tok->dec_len[id] = (uint32_t)(w - tok->dec_off[id]);
    }
    return 0;
}

/* ---- chunk-safety pairs (see tokenizer_impl.h) ------------------------------------------ */

static int pair_set_add(g4_tokenizer *tok, uint64_t key, uint64_t *count) {
    if ((*count + 1) * 2 > tok->chunk_mask + 1) { /* grow at load factor 1/2 */
        uint64_t old_size = tok->chunk_mask + 1, size = old_size * 2;
        uint64_t *old = tok->chunk_pairs, *t = malloc(size * sizeof *t);
        if (!t) return -1;
        memset(t, 0xff, size * sizeof *t);
        tok->chunk_pairs = t;
        tok->chunk_mask = size - 1;
        for (uint64_t i = 0; i < old_size; i++) {
            if (old[i] == G4_MERGE_EMPTY) continue;
            uint64_t j = g4_merge_hash(old[i]) & tok->chunk_mask;
            while (t[j] != G4_MERGE_EMPTY) j = (j + 1) & tok->chunk_mask;
            t[j] = old[i];
        }
        free(old);
    }
    uint64_t j = g4_merge_hash(key) & tok->chunk_mask;
    while (tok->chunk_pairs[j] != G4_MERGE_EMPTY) {
        if (tok->chunk_pairs[j] == key) return 0;
        j = (j + 1) & tok->chunk_mask;
    }
    tok->chunk_pairs[j] = key;
    (*count)++;
    return 0;
}

static int char_id(const g4_tokenizer *tok, const char *s, size_t n) {
    return n == 1 && (unsigned char)s[0] < 128 ? tok->ascii_id[(unsigned char)s[0]] : g4_tok_vocab_find(tok, s, n);
}

static int build_chunk_pairs(g4_tokenizer *tok, g4_error *err) {
    tok->chunk_mask = 1023;
    tok->chunk_pairs = malloc((tok->chunk_mask + 1) * sizeof(uint64_t));
    uint8_t *done = calloc((size_t)tok->n_vocab, 1);
    if (!tok->chunk_pairs || !done) {
        free(done);
        return g4_fail(err, "tokenizer: out of memory (chunk pairs)");
    }
    memset(tok->chunk_pairs, 0xff, (tok->chunk_mask + 1) * sizeof(uint64_t));
    tok->chunk_ok = 1;
    uint64_t count = 0;
    for (uint64_t i = 0; i <= tok->merge_mask && tok->chunk_ok; i++) {
        const g4_merge_slot *m = &tok->merges[i];
        if (m->key == G4_MERGE_EMPTY) continue;
        int32_t a = (int32_t)(m->key >> 32), b = (int32_t)(uint32_t)m->key;
        if (tok->byte_val[a] >= 0 || tok->byte_val[b] >= 0 || a == tok->unk_id || b == tok->unk_id) {
            tok->chunk_ok = 0; /* merges over non-character symbols: never cut */
            break;
        }
        if (done[m->new_id]) continue;
        done[m->new_id] = 1;
        const char *t = tok->arena + tok->tok_off[m->new_id];
        size_t n = tok->tok_len[m->new_id], pos = 0;
        int32_t prev = -1;
        while (pos < n) {
            uint32_t cp;
            int l = g4_utf8_next(t + pos, n - pos, &cp);
            if (l <= 0) l = 1;
            int32_t id = char_id(tok, t + pos, (size_t)l);
            if (id < 0) { /* a character with no token: only byte merges could build this */
                prev = -1;
            } else {
                if (prev >= 0 && pair_set_add(tok, ((uint64_t)(uint32_t)prev << 32) | (uint32_t)id, &count)) {
                    free(done);
                    return g4_fail(err, "tokenizer: out of memory (chunk pairs)");
                }
                prev = id;
            }
            pos += (size_t)l;
        }
    }
    free(done);
    return 0;
}

static void find_specials(g4_tokenizer *tok) {
    static const struct {
        size_t off;
        const char *s;
    } names[] = {
#define S(field, str) {offsetof(g4_special_ids, field), str}
        S(pad, "<pad>"),
        S(eos, "<eos>"),
        S(bos, "<bos>"),
        S(unk, "<unk>"),
        S(mask, "<mask>"),
        S(turn_start, "<|turn>"),
        S(turn_end, "<turn|>"),
        S(channel_start, "<|channel>"),
        S(channel_end, "<channel|>"),
        S(tool_start, "<|tool>"),
        S(tool_end, "<tool|>"),
        S(tool_call_start, "<|tool_call>"),
        S(tool_call_end, "<tool_call|>"),
        S(tool_response_start, "<|tool_response>"),
        S(tool_response_end, "<tool_response|>"),
        S(string_delim, "<|\"|>"),
        S(think, "<|think|>"),
        S(image_start, "<|image>"),
        S(image, "<|image|>"),
        S(image_end, "<image|>"),
        S(audio_start, "<|audio>"),
        S(audio, "<|audio|>"),
        S(audio_end, "<audio|>"),
        S(video, "<|video|>"),
        S(newline, "\n"),
#undef S
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        *(int32_t *)((char *)&tok->sp + names[i].off) = g4_tokenizer_token_id(tok, names[i].s, strlen(names[i].s));
}

static int load_tree(g4_tokenizer *tok, const cJSON *root, g4_error *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *mtype = jstr(model, "type");
    if (!model || (mtype && strcmp(mtype, "BPE")))
        return g4_fail(err, "tokenizer.json: model.type is \"%s\", expected \"BPE\"", mtype ? mtype : "(missing)");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!cJSON_IsObject(vocab)) return g4_fail(err, "tokenizer.json: model.vocab missing");
    if (!cJSON_IsArray(merges)) return g4_fail(err, "tokenizer.json: model.merges missing");
    if (jstr(model, "continuing_subword_prefix") || jstr(model, "end_of_word_suffix"))
        return g4_fail(err, "tokenizer.json: model.continuing_subword_prefix / end_of_word_suffix "
                            "are not supported (Gemma form has none)");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return g4_fail(err, "tokenizer.json: model.dropout must be null for inference");
    tok->byte_fallback = jtrue(model, "byte_fallback");
    tok->fuse_unk = jtrue(model, "fuse_unk");
    tok->ignore_merges = jtrue(model, "ignore_merges");

    /* Pass 1: id space and arena size. */
    int64_t max_id = -1;
    size_t arena = 0;
    int32_t n_model = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= 1 << 30 ||
            e->valuedouble != (double)(int32_t)e->valuedouble)
            return g4_fail(err, "tokenizer.json: model.vocab[\"%s\"] is not a valid id", e->string);
        if (e->valueint > max_id) max_id = e->valueint;
        arena += strlen(e->string);
        n_model++;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        if (!cJSON_IsNumber(id) || id->valueint < 0 || id->valueint >= 1 << 30 || !jstr(e, "content"))
            return g4_fail(err, "tokenizer.json: added_tokens entry without valid id/content");
        if (id->valueint > max_id) max_id = id->valueint;
        arena += strlen(jstr(e, "content"));
        tok->n_added++;
    }
    if (max_id < 0) return g4_fail(err, "tokenizer.json: empty vocabulary");
    /* A contiguous id space (checked in full below) has no more ids than strings. Checked here
     * too, before the id tables are sized: a lone id of 2^30 - 1 would cost gigabytes. */
    if (max_id >= (int64_t)n_model + tok->n_added)
        return g4_fail(err,
                       "tokenizer.json: id %lld but only %d tokens are listed; the id space must be "
                       "contiguous",
                       (long long)max_id, n_model + tok->n_added);
    tok->n_vocab = (int32_t)(max_id + 1);
    size_t n = (size_t)tok->n_vocab;
    tok->arena = malloc(arena + 1);
    tok->tok_off = malloc(sizeof(uint32_t) * n);
    tok->tok_len = malloc(sizeof(uint32_t) * n);
    tok->is_special = calloc(n, 1);
    tok->added = calloc((size_t)tok->n_added + 1, sizeof *tok->added);
    if (!tok->arena || !tok->tok_off || !tok->tok_len || !tok->is_special || !tok->added)
        return g4_fail(err, "tokenizer: out of memory (%zu ids)", n);
    memset(tok->tok_len, 0xff, sizeof(uint32_t) * n); /* UINT32_MAX = no string yet */
    if (build_vocab_slots(tok, n_model, err)) return -1;

    /* Pass 2: strings, vocab table. */
    size_t w = 0;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id = e->valueint;
        size_t len = strlen(e->string);
        if (tok->tok_len[id] != UINT32_MAX)
            return g4_fail(err, "tokenizer.json: model.vocab: id %d used twice (\"%s\")", id, e->string);
        memcpy(tok->arena + w, e->string, len);
        tok->tok_off[id] = (uint32_t)w;
        tok->tok_len[id] = (uint32_t)len;
        w += len;
        vocab_insert(tok, id);
    }
    if (trie_init(&tok->trie_raw) || trie_init(&tok->trie_norm)) return g4_fail(err, "tokenizer: out of memory (trie)");
    int32_t k = 0;
    cJSON_ArrayForEach(e, added) {
        const char *content = jstr(e, "content");
        size_t len = strlen(content);
        g4_added_token *a = &tok->added[k];
        a->id = cJSON_GetObjectItemCaseSensitive(e, "id")->valueint;
        memcpy(tok->arena + w, content, len);
        a->off = (uint32_t)w, a->len = (uint32_t)len;
        w += len;
        a->special = (uint8_t)jtrue(e, "special");
        a->normalized = (uint8_t)jtrue(e, "normalized");
        a->lstrip = (uint8_t)jtrue(e, "lstrip");
        a->rstrip = (uint8_t)jtrue(e, "rstrip");
        a->single_word = (uint8_t)jtrue(e, "single_word");
        if (tok->tok_len[a->id] == UINT32_MAX) {
            tok->tok_off[a->id] = a->off;
            tok->tok_len[a->id] = a->len;
        } else if (tok->tok_len[a->id] != len || memcmp(tok->arena + tok->tok_off[a->id], content, len)) {
            return g4_fail(err,
                           "tokenizer.json: added token \"%s\" has id %d, which the vocab "
                           "gives to another string",
                           content, a->id);
        }
        tok->is_special[a->id] = a->special;
        if (len && trie_insert(a->normalized ? &tok->trie_norm : &tok->trie_raw, content, len, k))
            return g4_fail(err, "tokenizer: out of memory (trie)");
        k++;
    }
    tok->arena_len = w;
    for (size_t id = 0; id < n; id++)
        if (tok->tok_len[id] == UINT32_MAX)
            return g4_fail(err,
                           "tokenizer.json: id %zu (below the largest id %lld) has no token; "
                           "the id space must be contiguous",
                           id, (long long)max_id);

    if (load_merges(tok, merges, err)) return -1;
    const char *unk = jstr(model, "unk_token");
    tok->unk_id = unk ? g4_tok_vocab_find(tok, unk, strlen(unk)) : -1;
    if (unk && tok->unk_id < 0) return g4_fail(err, "tokenizer.json: model.unk_token \"%s\" not in vocab", unk);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        tok->byte_id[b] = g4_tok_vocab_find(tok, name, 6);
    }
    for (int c = 0; c < 128; c++) {
        char ch = (char)c;
        tok->ascii_id[c] = g4_tok_vocab_find(tok, &ch, 1);
    }
    if (check_normalizer(tok, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err) ||
        check_pre_tokenizer(tok, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err) ||
        check_decoder(cJSON_GetObjectItemCaseSensitive(root, "decoder"), err))
        return -1;
    check_post_processor(tok, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    if (build_decoded(tok, err) || build_chunk_pairs(tok, err)) return -1;
    find_specials(tok);
    return 0;
}

int g4_tokenizer_load_json(const char *json, size_t len, g4_tokenizer **out, g4_error *err) {
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        return g4_fail(err, "tokenizer.json: JSON syntax error at byte %lld", at ? (long long)(at - json) : -1LL);
    }
    g4_tokenizer *tok = calloc(1, sizeof *tok);
    if (!tok) {
        cJSON_Delete(root);
        return g4_fail(err, "tokenizer: out of memory");
    }
    int rc = load_tree(tok, root, err);
    cJSON_Delete(root);
    if (rc) {
        g4_tokenizer_free(tok);
        return -1;
    }
    *out = tok;
    return 0;
}

int g4_tokenizer_load(const char *path, g4_tokenizer **out, g4_error *err) {
    *out = NULL;
    char *buf;
    size_t size;
    if (g4_read_file(path, (size_t)1 << 31, &buf, &size, err)) return g4_fail_prefix(err, "tokenizer");
    int rc = g4_tokenizer_load_json(buf, size, out, err);
    free(buf);
    if (rc) return g4_fail_prefix(err, "%s", path);
    return 0;
}

void g4_tokenizer_free(g4_tokenizer *tok) {
    if (!tok) return;
    free(tok->arena);
    free(tok->tok_off);
    free(tok->tok_len);
    free(tok->dec);
    free(tok->dec_off);
    free(tok->dec_len);
    free(tok->byte_val);
    free(tok->is_special);
    free(tok->vocab_slots);
    free(tok->merges);
    free(tok->chunk_pairs);
    free(tok->added);
    free(tok->trie_raw.nodes);
    free(tok->trie_norm.nodes);
    free(tok);
}
