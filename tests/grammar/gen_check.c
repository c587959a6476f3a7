/* gen_check.c - random constrained generation over a real tokenizer, checking the token masks.
 *
 * For each schema file and seed: start a matcher, and at every step compute the token mask with
 * the caches (g4_token_mask; for every other schema with the eager per-state entries) and compare it bit for bit with the uncached whole-trie walk
 * (g4_token_mask_slow) and, for a random sample of tokens, with feeding the token's bytes to the
 * matcher directly; then pick a random allowed token (sometimes preferring ones that close a
 * string / object / array so that texts finish) until EOS is picked or a step cap is reached.
 * Writes [{schema, seed, text, finished}] to OUT for run_generate.py, which validates every finished
 * text with `jsonschema`. Exit 1 on any mask mismatch or a dead end (no token allowed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "base/file.h"
#include "base/rng.h"
#include "grammar/json_schema.h"
#include "grammar/token_mask.h"

static int token_ok(g4_matcher *m, const g4_token_trie *t, int32_t id) {
    size_t len;
    const uint8_t *b = g4_token_trie_token(t, id, &len);
    if (!b) return 0;
    int32_t n;
    const g4_head *h0 = g4_matcher_heads(m, &n);
    g4_frames *fr = g4_matcher_frames(m);
    const g4_pda *p = g4_matcher_pda(m);
    int32_t mark = fr->n;
    g4_head *a = malloc(sizeof *a * (size_t)n), *b2 = NULL;
    int32_t cap_b = 0;
    memcpy(a, h0, sizeof *a * (size_t)n);
    int ok = 1;
    for (size_t i = 0; i < len && ok; i++) {
        int32_t k = g4_pda_step(p, fr, g4_matcher_scratch(m), a, n, p->byte_class[b[i]], &b2, &cap_b);
        if (k <= 0) {
            ok = 0;
            break;
        }
        free(a);
        a = b2;
        n = k;
        b2 = NULL;
        cap_b = 0;
    }
    free(a);
    free(b2);
    fr->n = mark;
    return ok;
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s TOKENIZER|synthetic OUT N_SEEDS SCHEMA...\n", argv[0]);
        return 2;
    }
    g4_error err = {{0}};
    g4_tokenizer *tk = NULL;
    g4_token_trie *t;
    int32_t eos = 1;
    if (!strcmp(argv[1], "synthetic")) { /* token 1 is a control byte the grammars never allow: EOS */
        if (g4_token_trie_synthetic(262144, 777, &t, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 2;
        }
    } else {
        if (g4_tokenizer_load(argv[1], &tk, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 2;
        }
        if (g4_token_trie_from_tokenizer(tk, &t, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 2;
        }
        eos = g4_tokenizer_specials(tk)->eos;
    }
    int n_seeds = atoi(argv[3]);
    int32_t words = g4_mask_words(t);
    uint32_t *mask = malloc(sizeof *mask * (size_t)words), *slow = malloc(sizeof *slow * (size_t)words);
    int32_t *allowed = malloc(sizeof *allowed * (size_t)t->n_vocab),
            *closing = malloc(sizeof *closing * (size_t)t->n_vocab);
    cJSON *out = cJSON_CreateArray();
    int bad = 0;
    long compared = 0, sampled = 0;
    for (int f = 4; f < argc; f++) {
        char *schema;
        size_t len;
        if (g4_read_file(argv[f], 1 << 20, &schema, &len, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 2;
        }
        g4_grammar *g;
        if (g4_json_schema_compile(schema, len, NULL, NULL, &g, &err)) {
            fprintf(stderr, "%s: refused: %s\n", argv[f], err.msg);
            free(schema);
            bad = 1;
            continue;
        }
        g4_mask_cache *mc = g4_mask_cache_new(g, t);
        /* every other schema: the eager per-state entries (built apart from any matcher) */
        if (!mc || (f % 2 && g4_mask_cache_precompute(mc, 128))) {
            fprintf(stderr, "mask cache failed\n");
            return 2;
        }
        for (int seed = 0; seed < n_seeds; seed++) {
            uint64_t rng = 0x9E3779B97F4A7C15ull * (uint64_t)(seed + 1) + (uint64_t)f;
            g4_matcher *m = g4_matcher_new(g);
            char *text = NULL;
            size_t tlen = 0;
            int finished = 0;
            for (int step = 0; step < 400; step++) {
                if (g4_token_mask(mc, m, &eos, 1, mask)) {
                    fprintf(stderr, "mask failed\n");
                    return 2;
                }
                if (seed < 3 || step % 8 == 0) {
                    g4_token_mask_slow(mc, m, &eos, 1, slow);
                    compared++;
                    if (memcmp(mask, slow, sizeof *mask * (size_t)words)) {
                        int32_t id = 0;
                        while (((mask[id >> 5] ^ slow[id >> 5]) >> (id & 31) & 1) == 0) id++;
                        printf("MASK MISMATCH %s seed %d step %d token %d (cached %d, walk %d) after: %.*s\n", argv[f],
                               seed, step, id, (int)(mask[id >> 5] >> (id & 31) & 1),
                               (int)(slow[id >> 5] >> (id & 31) & 1), (int)tlen, text ? text : "");
                        bad = 1;
                        break;
                    }
                }
                for (int k = 0; k < 32; k++) {
                    int32_t id = (int32_t)(g4_splitmix64(&rng) % (uint64_t)t->n_vocab);
                    if (id == eos) continue;
                    sampled++;
                    if (token_ok(m, t, id) != (int)(mask[id >> 5] >> (id & 31) & 1)) {
                        printf("MASK WRONG %s seed %d step %d token %d\n", argv[f], seed, step, id);
                        bad = 1;
                    }
                }
                int32_t na = 0, nc = 0;
                for (int32_t w = 0; w < words; w++)
                    for (uint32_t bits = mask[w]; bits; bits &= bits - 1) {
                        int32_t id = w * 32 + __builtin_ctz(bits);
                        allowed[na++] = id;
                        size_t l;
                        const uint8_t *b = g4_token_trie_token(t, id, &l);
                        if (b && (b[0] == '"' || b[0] == '}' || b[0] == ']')) closing[nc++] = id;
                    }
                if (!na) {
                    printf("DEAD END %s seed %d step %d: %.*s\n", argv[f], seed, step, (int)tlen, text);
                    bad = 1;
                    break;
                }
                int eos_ok = mask[eos >> 5] >> (eos & 31) & 1;
                if (eos_ok && (g4_splitmix64(&rng) % 4 == 0 || step > 200)) {
                    finished = 1;
                    break;
                }
                uint64_t r = g4_splitmix64(&rng);
                int32_t id = nc && (r % 100) < (uint64_t)(step > 100 ? 60 : 15) ? closing[(r >> 8) % (uint64_t)nc]
                                                                                : allowed[(r >> 8) % (uint64_t)na];
                if (id == eos) {
                    finished = 1;
                    break;
                }
                if (g4_matcher_advance_token(m, t, id)) {
                    printf("ADVANCE FAILED on an allowed token %d\n", id);
                    bad = 1;
                    break;
                }
                size_t l;
                const uint8_t *b = g4_token_trie_token(t, id, &l);
                text = realloc(text, tlen + l + 1);
                memcpy(text + tlen, b, l);
                tlen += l;
                text[tlen] = 0;
            }
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "schema", argv[f]);
            cJSON_AddNumberToObject(o, "seed", seed);
            cJSON_AddStringToObject(o, "text", text ? text : "");
            cJSON_AddBoolToObject(o, "finished", finished);
            cJSON_AddItemToArray(out, o);
            free(text);
            g4_matcher_free(m);
        }
        g4_mask_stats st = g4_mask_cache_stats(mc);
        printf("%-40s masks %lld, context hits %lld, state entries %lld\n", argv[f], (long long)st.calls,
               (long long)st.context_hits, (long long)st.state_entries);
        g4_mask_cache_free(mc);
        g4_grammar_free(g);
        free(schema);
    }
    printf("masks compared with the whole-trie walk: %ld; sampled tokens checked byte by byte: %ld\n", compared,
           sampled);
    char *s = cJSON_PrintUnformatted(out);
    FILE *fo = fopen(argv[2], "w");
    if (!fo || fputs(s, fo) < 0 || fclose(fo)) {
        fprintf(stderr, "cannot write %s\n", argv[2]);
        return 2;
    }
    free(s);
    cJSON_Delete(out);
    free(mask);
    free(slow);
    free(allowed);
    free(closing);
    g4_token_trie_free(t);
    g4_tokenizer_free(tk);
    return bad;
}
