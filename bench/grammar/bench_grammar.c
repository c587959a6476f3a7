/* bench_grammar.c - schema compile time and token-mask time per token, one thread, printed as JSON.
 *
 * Vocabulary: --tokenizer PATH (a tokenizer.json) or, by default, the synthetic 262,144-token
 * vocabulary of g4_token_trie_synthetic (the repository has no real Gemma 4 tokenizer).
 * Per schema: compile time (median of 5), then G generations (random allowed tokens, sometimes
 * preferring ones that close a string / object / array, up to 300 tokens) with one mask cache per
 * schema (the server keeps one per compiled schema); every g4_token_mask call is timed.
 * Reported: p50 / p90 / p99 / max over all mask calls, also for the first generation of each
 * schema alone (cold caches). Times are the thread's CPU time. Not a test: bench/results/ keeps dated outputs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/file.h"
#include "base/rng.h"
#include "grammar/json_schema.h"
#include "grammar/token_mask.h"

/* Thread CPU time: the benchmark machines are shared, and wall-clock tails there are mostly
 * preemption by other jobs (seen as 4-10 ms "masks" that walked almost nothing). */
static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double pct(double *v, size_t n, double p) {
    if (!n) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv) {
    const char *tokenizer = NULL;
    int gens = 8, a = 1, precompute = 1;
    if (a < argc && !strcmp(argv[a], "--lazy")) {
        precompute = 0;
        a++;
    }
    if (a + 1 < argc && !strcmp(argv[a], "--tokenizer")) {
        tokenizer = argv[a + 1];
        a += 2;
    }
    if (a + 1 < argc && !strcmp(argv[a], "--gens")) {
        gens = atoi(argv[a + 1]);
        a += 2;
    }
    if (a >= argc) {
        fprintf(stderr, "usage: %s [--lazy] [--tokenizer PATH] [--gens N] SCHEMA...\n", argv[0]);
        return 2;
    }
    g4_error err = {{0}};
    g4_token_trie *t;
    double t0 = now_us();
    int32_t eos = 1;
    if (tokenizer) {
        g4_tokenizer *tk;
        if (g4_tokenizer_load(tokenizer, &tk, &err) || g4_token_trie_from_tokenizer(tk, &t, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 2;
        }
        eos = g4_tokenizer_specials(tk)->eos;
        g4_tokenizer_free(tk);
    } else if (g4_token_trie_synthetic(262144, 12345, &t, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 2;
    }
    double trie_ms = (now_us() - t0) / 1e3;
    int32_t words = g4_mask_words(t);
    uint32_t *mask = malloc(sizeof *mask * (size_t)words);
    int32_t *allowed = malloc(sizeof *allowed * (size_t)t->n_vocab),
            *closing = malloc(sizeof *closing * (size_t)t->n_vocab);
    size_t cap = 1 << 16, n_all = 0, n_cold = 0;
    double *all = malloc(sizeof *all * cap), *cold = malloc(sizeof *cold * cap);
    printf(
        "{\n  \"vocab\": \"%s\", \"n_vocab\": %d, \"trie_nodes\": %d, \"trie_build_ms\": %.1f, \"threads\": 1,\n  \"precompute\": %s,\n  \"schemas\": [\n",
        tokenizer ? tokenizer : "synthetic", t->n_vocab, t->n_nodes, trie_ms,
        precompute ? "\"states reading >= 128 byte values\"" : "\"none (lazy)\"");
    int first = 1;
    for (int f = a; f < argc; f++) {
        char *schema;
        size_t len;
        if (g4_read_file(argv[f], 1 << 20, &schema, &len, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 2;
        }
        double ct[5];
        g4_grammar *g = NULL;
        for (int r = 0; r < 5; r++) {
            g4_grammar_free(g);
            double s0 = now_us();
            if (g4_json_schema_compile(schema, len, NULL, NULL, &g, &err)) {
                fprintf(stderr, "%s: %s\n", argv[f], err.msg);
                return 2;
            }
            ct[r] = now_us() - s0;
        }
        qsort(ct, 5, sizeof *ct, cmp_d);
        double p0 = now_us();
        g4_mask_cache *mc = g4_mask_cache_new(g, t);
        if (!mc || (precompute && g4_mask_cache_precompute(mc, 128))) {
            fprintf(stderr, "mask cache failed\n");
            return 2;
        }
        double prep_us = now_us() - p0;
        size_t start = n_all;
        int tokens = 0;
        for (int seed = 0; seed < gens; seed++) {
            uint64_t rng = 0xABCDEFull * (uint64_t)(seed + 1) + (uint64_t)(f - a);
            g4_matcher *m = g4_matcher_new(g);
            for (int step = 0; step < 300; step++) {
                double s0 = now_us();
                if (g4_token_mask(mc, m, &eos, 1, mask)) {
                    fprintf(stderr, "mask failed\n");
                    return 2;
                }
                double dt = now_us() - s0;
                if (n_all == cap) {
                    cap *= 2;
                    all = realloc(all, sizeof *all * cap);
                    cold = realloc(cold, sizeof *cold * cap);
                }
                all[n_all++] = dt;
                if (seed == 0) cold[n_cold++] = dt;
                int32_t na = 0, nc = 0;
                for (int32_t w = 0; w < words; w++)
                    for (uint32_t bits = mask[w]; bits; bits &= bits - 1) {
                        int32_t id = w * 32 + __builtin_ctz(bits);
                        allowed[na++] = id;
                        size_t l;
                        const uint8_t *b = g4_token_trie_token(t, id, &l);
                        if (b && (b[0] == '"' || b[0] == '}' || b[0] == ']')) closing[nc++] = id;
                    }
                if (!na) break;
                if ((mask[eos >> 5] >> (eos & 31) & 1) && g4_splitmix64(&rng) % 4 == 0) break;
                uint64_t r = g4_splitmix64(&rng);
                int32_t id = nc && (r % 100) < (uint64_t)(step > 100 ? 60 : 15) ? closing[(r >> 8) % (uint64_t)nc]
                                                                                : allowed[(r >> 8) % (uint64_t)na];
                if (id == eos) break;
                if (g4_matcher_advance_token(m, t, id)) {
                    fprintf(stderr, "advance failed\n");
                    return 2;
                }
                tokens++;
            }
            g4_matcher_free(m);
        }
        size_t ns = n_all - start;
        double *v = malloc(sizeof *v * (ns ? ns : 1));
        memcpy(v, all + start, sizeof *v * ns);
        qsort(v, ns, sizeof *v, cmp_d);
        g4_mask_stats st = g4_mask_cache_stats(mc);
        const char *base = strrchr(argv[f], '/') ? strrchr(argv[f], '/') + 1 : argv[f];
        printf(
            "%s    {\"schema\": \"%s\", \"compile_us\": %.0f, \"mask_prepare_us\": %.0f, \"states\": %d, \"masks\": %zu, \"tokens\": %d, "
            "\"mask_us_p50\": %.1f, \"mask_us_p99\": %.1f, \"mask_us_max\": %.0f, \"context_hits\": %lld, \"state_entries\": %lld}",
            first ? "" : ",\n", base, ct[2], prep_us, g4_grammar_pda(g)->n_states, ns, tokens, pct(v, ns, 0.5),
            pct(v, ns, 0.99), ns ? v[ns - 1] : 0.0, (long long)st.context_hits, (long long)st.state_entries);
        first = 0;
        free(v);
        g4_mask_cache_free(mc);
        g4_grammar_free(g);
        free(schema);
    }
    qsort(all, n_all, sizeof *all, cmp_d);
    qsort(cold, n_cold, sizeof *cold, cmp_d);
    printf("\n  ],\n  \"mask_us\": {\"n\": %zu, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"max\": %.0f},\n", n_all,
           pct(all, n_all, 0.5), pct(all, n_all, 0.9), pct(all, n_all, 0.99), n_all ? all[n_all - 1] : 0.0);
    printf(
        "  \"mask_us_first_generation\": {\"n\": %zu, \"p50\": %.1f, \"p90\": %.1f, \"p99\": %.1f, \"max\": %.0f}\n}\n",
        n_cold, pct(cold, n_cold, 0.5), pct(cold, n_cold, 0.9), pct(cold, n_cold, 0.99),
        n_cold ? cold[n_cold - 1] : 0.0);
    free(all);
    free(cold);
    free(mask);
    free(allowed);
    free(closing);
    g4_token_trie_free(t);
    return 0;
}
