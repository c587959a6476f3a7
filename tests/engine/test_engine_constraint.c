/* test_engine_constraint.c — structured-output constraints (server/structured.h) in the engine
 * on the tiny random checkpoint with the test tokenizer (CPU backend, greedy):
 *   in the language    every output, read as the tokens' bytes, is a whole string of its
 *                      constraint: a regex checked with POSIX regexec (an independent reference),
 *                      a JSON schema checked with a fresh matcher; finish STOP, never LENGTH
 *   starved memory     pools far too small for all requests at once: preemption by recompute
 *                      happens and every request gives exactly the tokens it gives alone
 *   thought channel    a constraint made inside the thought channel allows everything until
 *                      <channel|>, then only its language; with thinking on, the first token may
 *                      open the channel
 *   cache              the same spec twice is one compile; a refused schema names the keyword
 *   speculation        with n-gram speculation the constrained requests give the same tokens */
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "check.h"
#include "engine/engine.h"
#include "engine_test_util.h"
#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_trie.h"
#include "model/gemma4.h"
#include "model/testmodel.h"
#include "tiny_model.h"
#include "server/structured/structured.h"
#include "text/tokenizer.h"

#define TOKENIZER "tests/text/data/tokenizer.json"

static const char *REGEX = "[a-c]{6}-[0-9]{2,3}(,[a-c]{1,4}){3}";
static const char *REGEX_POSIX = "^[a-c]{6}-[0-9]{2,3}(,[a-c]{1,4}){3}$";
static const char *SCHEMA = "{\"type\":\"object\",\"properties\":{\"n\":{\"type\":\"integer\",\"minimum\":0,"
                            "\"maximum\":999},\"s\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":6},"
                            "\"e\":{\"enum\":[\"x\",\"yy\",null]}},\"required\":[\"n\",\"s\",\"e\"],"
                            "\"additionalProperties\":false}";

typedef struct req {
    int32_t prompt[48];
    int n_prompt;
    g4_so_grammar *gr;
    rec r;
} req;

static g4_model *open_model(const char *dir, g4_backend *be, int n_s, int n_g) {
    tiny_model_opts t = {"tiny-dense", 11, 0, 16, 128, n_s, n_g};
    g4_error err = {{0}};
    g4_model *m = tiny_model_open(&t, dir, be, &err);
    CHECK(m, "open: %s", err.msg);
    return m;
}

static void submit_req(g4_engine *e, req *q) {
    memset(&q->r, 0, sizeof q->r);
    g4_request_params p = {.prompt = q->prompt, .n_prompt = q->n_prompt, .on_event = rec_on_event, .user = &q->r};
    g4_sampling_default(&p.sampling); /* greedy */
    g4_stop_rules_default(&p.stop);
    p.stop.max_tokens = 64;
    p.constraint = g4_so_constraint_new(q->gr, NULL);
    p.constraint_fn = &g4_so_constraint_fn;
    int code = 0;
    g4_error err = {{0}};
    CHECK(p.constraint != NULL, "constraint");
    CHECK(g4_engine_submit(e, &p, &code, &err) != 0, "submit: %s", err.msg);
}

/* The output's bytes (the tokens' text as the grammar sees it). */
static size_t output_bytes(const g4_token_trie *t, const rec *r, char *out, size_t cap) {
    size_t n = 0;
    for (int i = 0; i < r->n; i++) {
        size_t len = 0;
        const uint8_t *b = g4_token_trie_token(t, r->toks[i], &len);
        if (n + len + 1 > cap) break;
        memcpy(out + n, b, len);
        n += len;
    }
    out[n] = 0;
    return n;
}

static void test_starved_and_language(const g4_tokenizer *tok, g4_so_cache *cache, const char *dir) {
    g4_error err = {{0}};
    g4_token_trie *trie = NULL;
    REQUIRE_VOID(g4_token_trie_from_tokenizer(tok, &trie, &err) == 0, "trie: %s", err.msg);
    g4_so_grammar *re_gr = NULL, *js_gr = NULL;
    g4_so_spec re_spec = {G4_SO_REGEX, REGEX, strlen(REGEX)}, js_spec = {G4_SO_JSON_SCHEMA, SCHEMA, strlen(SCHEMA)};
    REQUIRE_VOID(g4_so_cache_get(cache, &re_spec, &re_gr, &err) == 0, "regex: %s", err.msg);
    REQUIRE_VOID(g4_so_cache_get(cache, &js_spec, &js_gr, &err) == 0, "schema: %s", err.msg);
    g4_grammar *js_ref = NULL; /* a second compile: the reference matcher shares nothing with the engine's */
    g4_so_grammar *again = NULL;
    g4_so_cache_stats c0 = g4_so_cache_stats_get(cache);
    REQUIRE_VOID(g4_so_cache_get(cache, &js_spec, &again, &err) == 0, "schema again: %s", err.msg);
    g4_so_cache_stats cs = g4_so_cache_stats_get(cache);
    CHECK(again == js_gr && cs.compiles == c0.compiles && cs.hits == c0.hits + 1,
          "cache: the same schema twice is "
          "one compile (%lld -> %lld compiles, %lld -> %lld hits)",
          c0.compiles, cs.compiles, c0.hits, cs.hits);
    g4_so_grammar_unref(again);
    REQUIRE_VOID(g4_json_schema_compile(SCHEMA, strlen(SCHEMA), NULL, NULL, &js_ref, &err) == 0, "ref: %s", err.msg);
    regex_t posix;
    REQUIRE_VOID(regcomp(&posix, REGEX_POSIX, REG_EXTENDED | REG_NOSUB) == 0, "regcomp");

    g4_backend *be = g4_backend_cpu_create(&err);
    REQUIRE_VOID(be != NULL, "backend: %s", err.msg);
    /* 12 requests of 48 prompt tokens + up to 64 output: 4+ global blocks of 16 each, 16 in the
     * pool, so decoding together must preempt (recompute); no prefix cache to soften it */
    g4_model *m = open_model(dir, be, 12, 16);
    if (!m) return;
    g4_executor ex;
    g4_engine_opts o;
    g4_engine_opts_from_model(&o, m);
    o.prefix_cache = false;
    o.seed = 7;
    g4_executor_local(&ex, m);
    g4_engine *e = g4_engine_create(&o, &ex, NULL, &err);
    REQUIRE_VOID(e != NULL, "engine: %s", err.msg);

    enum { N = 12 };
    req *reqs = calloc(N, sizeof *reqs);
    rec *alone = calloc(N, sizeof *alone);
    uint64_t seed = 5;
    for (int i = 0; i < N; i++) {
        reqs[i].n_prompt = 48;
        for (int j = 0; j < 48; j++) reqs[i].prompt[j] = rng_int(&seed, 2, 262143);
        reqs[i].gr = i % 2 ? js_gr : re_gr;
    }
    for (int i = 0; i < N; i++) {
        submit_req(e, &reqs[i]);
        g4_engine_wait_idle(e);
        alone[i] = reqs[i].r;
    }
    g4_engine_stats st0;
    g4_engine_stats_get(e, &st0);
    for (int i = 0; i < N; i++) submit_req(e, &reqs[i]);
    g4_engine_wait_idle(e);
    g4_engine_stats st;
    g4_engine_stats_get(e, &st);

    int same = 0, in_lang = 0;
    char text[2048];
    for (int i = 0; i < N; i++) {
        rec *a = &alone[i], *b = &reqs[i].r;
        same += a->n == b->n && a->finish == b->finish && !memcmp(a->toks, b->toks, (size_t)a->n * sizeof *a->toks);
        output_bytes(trie, b, text, sizeof text);
        int ok = b->finish == G4_FINISH_STOP;
        if (i % 2 == 0) {
            ok = ok && regexec(&posix, text, 0, NULL, 0) == 0;
        } else {
            g4_matcher *ref = g4_matcher_new(js_ref);
            ok = ok && ref && g4_matcher_advance(ref, text, strlen(text)) == 0 && g4_matcher_accepting(ref);
            g4_matcher_free(ref);
        }
        in_lang += ok;
        if (!ok || i < 2)
            printf("request %d (%s): finish %d, %d tokens: %s\n", i, i % 2 ? "schema" : "regex", b->finish, b->n, text);
    }
    printf("constrained: %d/%d identical alone and batched, %d/%d in their language, %llu preemptions\n", same, N,
           in_lang, N, (unsigned long long)(st.preemptions - st0.preemptions));
    CHECK(same == N, "%d of %d requests differ alone vs batched", N - same, N);
    CHECK(in_lang == N, "%d of %d outputs outside their language", N - in_lang, N);
    CHECK(st.preemptions > st0.preemptions, "no preemption with a starved pool");
    CHECK(st.blocks_sliding_used == 0 && st.blocks_global_used == 0, "blocks left");

    g4_engine_destroy(e);

    /* speculative decoding (n-gram): a constrained request's rows are sampled one at a time after
     * the tokens before them advanced its matcher, so the outputs are the same */
    o.spec = (g4_spec_config){.method = G4_SPEC_NGRAM,
                              .num_speculative_tokens = 4,
                              .prompt_lookup_min = 1,
                              .prompt_lookup_max = 3,
                              .disable_by_batch_size = 1000};
    e = g4_engine_create(&o, &ex, NULL, &err);
    REQUIRE_VOID(e != NULL, "engine: %s", err.msg);
    for (int i = 0; i < N; i++) submit_req(e, &reqs[i]);
    g4_engine_wait_idle(e);
    g4_engine_stats_get(e, &st);
    same = 0;
    for (int i = 0; i < N; i++)
        same += alone[i].n == reqs[i].r.n && alone[i].finish == reqs[i].r.finish &&
                !memcmp(alone[i].toks, reqs[i].r.toks, (size_t)alone[i].n * sizeof *alone[i].toks);
    printf("constrained with speculation: %d/%d identical, %llu of %llu proposed tokens accepted\n", same, N,
           (unsigned long long)st.spec_accepted_tokens, (unsigned long long)st.spec_draft_tokens);
    CHECK(same == N, "speculation: %d of %d constrained requests differ", N - same, N);
    CHECK(st.spec_accepted_tokens > 0, "speculation: nothing accepted");
    CHECK(st.blocks_sliding_used == 0 && st.blocks_global_used == 0, "speculation: blocks left");
    g4_engine_destroy(e);
    g4_model_close(m);
    g4_backend_destroy(be);
    free(reqs);
    free(alone);
    regfree(&posix);
    g4_grammar_free(js_ref);
    g4_so_grammar_unref(re_gr);
    g4_so_grammar_unref(js_gr);
    g4_token_trie_free(trie);
}

static int mask_has(const uint32_t *m, int32_t id) { return (m[id / 32] >> (id % 32)) & 1; }

static void test_thought_channel(const g4_tokenizer *tok, g4_so_cache *cache) {
    g4_error err = {{0}};
    const g4_special_ids *sp = g4_tokenizer_specials(tok);
    REQUIRE_VOID(sp->channel_start >= 0 && sp->channel_end >= 0, "the test tokenizer has the channel markers");
    g4_so_spec spec = {G4_SO_CHOICE, "[\"yes\",\"no\"]", strlen("[\"yes\",\"no\"]")}; /* y, e, s / no */
    g4_so_grammar *gr = NULL;
    REQUIRE_VOID(g4_so_cache_get(cache, &spec, &gr, &err) == 0, "choice: %s", err.msg);
    int32_t yes = g4_tokenizer_token_id(tok, "y", 1), no = g4_tokenizer_token_id(tok, "no", 2),
            other = g4_tokenizer_token_id(tok, "e", 1);
    REQUIRE_VOID(yes >= 0 && no >= 0 && other >= 0, "tokens y / no / e");
    int W = (g4_tokenizer_n_vocab(tok) + 31) / 32;
    uint32_t *mask = calloc((size_t)W, sizeof *mask);
    const g4_constraint_iface *fn = &g4_so_constraint_fn;

    g4_so_thought in = {.enabled = true, .started = true};
    void *k = g4_so_constraint_new(gr, &in);
    CHECK(fn->mask(k, NULL, 0, mask, &err) == 0, "inside the thought channel: no mask");
    CHECK(fn->advance(k, other, &err) == 0, "any token inside the thought channel");
    CHECK(fn->advance(k, sp->channel_end, &err) == 0, "<channel|>");
    CHECK(fn->mask(k, NULL, 0, mask, &err) == 1 && mask_has(mask, yes) && !mask_has(mask, other) &&
              !mask_has(mask, sp->channel_start),
          "after the channel: the choice only");
    CHECK(fn->advance(k, other, &err) < 0, "a forbidden token is an error");
    fn->free(k);

    g4_so_thought on = {.enabled = true, .started = false};
    k = g4_so_constraint_new(gr, &on);
    CHECK(fn->mask(k, NULL, 0, mask, &err) == 1 && mask_has(mask, yes) && mask_has(mask, sp->channel_start),
          "thinking on: the first token may open the channel");
    CHECK(fn->advance(k, sp->channel_start, &err) == 0 && fn->mask(k, NULL, 0, mask, &err) == 0, "opened");
    fn->free(k);
    k = g4_so_constraint_new(gr, NULL);
    int32_t end = sp->turn_end;
    CHECK(fn->mask(k, &end, 1, mask, &err) == 1 && !mask_has(mask, sp->channel_start) && !mask_has(mask, end),
          "thinking off: no channel, no end before the output is complete");
    CHECK(fn->advance(k, no, &err) == 0 && fn->mask(k, &end, 1, mask, &err) == 1 && mask_has(mask, end) &&
              !mask_has(mask, yes),
          "complete: the end id only");
    fn->free(k);

    g4_so_spec bad = {G4_SO_JSON_SCHEMA, "{\"not\":{}}", strlen("{\"not\":{}}")};
    g4_so_grammar *none = NULL;
    CHECK(g4_so_cache_get(cache, &bad, &none, &err) < 0 && strstr(err.msg, "not") && !none, "refused: %s", err.msg);
    free(mask);
    g4_so_grammar_unref(gr);
}

int main(void) {
    g4_error err = {{0}};
    g4_tokenizer *tok = NULL;
    REQUIRE(g4_tokenizer_load(TOKENIZER, &tok, &err) == 0, "tokenizer: %s", err.msg);
    g4_so_cache *cache = g4_so_cache_new(tok, 8);
    REQUIRE(cache != NULL, "cache");
    char dir[] = "/tmp/g4-test-constraint-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL, "mkdtemp");
    test_thought_channel(tok, cache);
    test_starved_and_language(tok, cache, dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    g4_so_cache_free(cache);
    g4_tokenizer_free(tok);
    return check_summary();
}
