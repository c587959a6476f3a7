/* test_tp_engine.c — tensor parallelism through the whole engine on the CPU backend: the tiny
 * dense and MoE models served by an engine whose executor is a t = 2 or t = 4 group give the
 * same greedy tokens as t = 1 for 12 concurrent requests of mixed lengths (continuous batching,
 * chunked prefill, the prefix cache and block management all above the executor seam), and the
 * chosen tokens' logprobs agree within fp32 reduction-order tolerance. With speculative decoding
 * (n-gram proposals, verified in the same packed steps) t = 2 gives the tokens of t = 1 — and of
 * speculation off — with proposals made and accepted. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "check.h"
#include "engine/engine.h"
#include "engine/stream.h"
#include "model/testmodel.h"
#include "parallel/tp.h"

#define NREQ 12
#define NOUT 10

typedef struct {
    int32_t tok[NOUT];
    float lp[NOUT];
    int n;
} result;

/* Submits the same NREQ requests to an engine over ex and collects their tokens in id order. */
static void serve(const g4_executor *ex, const g4_model *m, int32_t **prompts, const int *plen, result *out, bool spec,
                  g4_engine_stats *stats) {
    g4_error err = {{0}};
    g4_engine_opts eo;
    g4_engine_opts_from_model(&eo, m);
    eo.step_token_budget = 48; /* forces chunked prefill and mixed steps */
    if (spec)
        eo.spec = (g4_spec_config){.method = G4_SPEC_NGRAM,
                                   .num_speculative_tokens = 3,
                                   .prompt_lookup_min = 1,
                                   .prompt_lookup_max = 3};
    g4_engine *e = g4_engine_create(&eo, ex, NULL, &err);
    CHECK(e != NULL, "%s", err.msg);
    if (!e) return;
    g4_stream *st = g4_stream_create();
    uint64_t ids[NREQ];
    for (int i = 0; i < NREQ; i++) {
        g4_request_params p = {.prompt = prompts[i], .n_prompt = plen[i], .on_event = g4_stream_on_event, .user = st};
        g4_sampling_default(&p.sampling);
        p.sampling.logprobs = 0;
        g4_stop_rules_default(&p.stop);
        p.stop.max_tokens = NOUT;
        p.stop.ignore_eos = true;
        int code = 0;
        ids[i] = g4_engine_submit(e, &p, &code, &err);
        CHECK(ids[i] > 0, "submit %d: %s", i, err.msg);
        out[i].n = 0;
    }
    for (int done = 0; done < NREQ;) {
        g4_stream_event ev;
        if (!g4_stream_pop(st, &ev, 60000)) {
            CHECK(0, "timed out waiting for events");
            break;
        }
        int i = 0;
        while (i < NREQ && ids[i] != ev.ev.id) i++;
        if (i < NREQ && ev.ev.n_tokens && out[i].n < NOUT) {
            out[i].tok[out[i].n] = ev.ev.token;
            out[i].lp[out[i].n++] = ev.ev.logprob;
        }
        if (ev.ev.finish != G4_FINISH_NONE) {
            CHECK(ev.ev.finish == G4_FINISH_LENGTH, "request %d finished with %d", i, ev.ev.finish);
            done++;
        }
        g4_stream_event_clear(&ev);
    }
    g4_engine_wait_idle(e); /* the last event may arrive before its blocks are returned */
    g4_engine_stats s;
    g4_engine_stats_get(e, &s);
    if (stats) *stats = s;
    CHECK(s.blocks_sliding_used == 0 && s.blocks_global_used == 0, "blocks still used: %d/%d", s.blocks_sliding_used,
          s.blocks_global_used);
    g4_engine_destroy(e);
    g4_stream_free(st);
}

static void test_model(const char *kind, const char *dir) {
    g4_error err = {{0}};
    g4_config cfg;
    if (g4_testmodel_config(&cfg, kind, &err) || (cfg.vocab = 4096, 0) || g4_testmodel_write(&cfg, 21, dir, &err)) {
        CHECK(0, "%s", err.msg);
        return;
    }
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_seqs = 8, o.max_step_tokens = 64, o.max_model_len = 128;
    int32_t *prompts[NREQ];
    int plen[NREQ];
    unsigned seed = 17;
    for (int i = 0; i < NREQ; i++) {
        plen[i] = 3 + (i * 7) % 40;
        prompts[i] = malloc(sizeof(int32_t) * plen[i]);
        for (int j = 0; j < plen[i]; j++) prompts[i][j] = 3 + (int32_t)((seed = seed * 1103515245u + 12345u) % 4000u);
        for (int j = 4; j < plen[i] && i % 2; j++) prompts[i][j] = prompts[i][j % 4]; /* a repeated phrase */
    }
    if (NREQ > 3)
        memcpy(prompts[3], prompts[2], sizeof(int32_t) * (plen[2] < plen[3] ? plen[2] : plen[3])); /* shared prefix */
    result ref[NREQ], got[NREQ], spec_ref[NREQ];
    g4_engine_stats spec_st;
    g4_backend *be = g4_backend_cpu_create(&err);
    g4_model *m = NULL;
    if (g4_model_open(&m, dir, be, &o, &err)) {
        CHECK(0, "open: %s", err.msg);
        return;
    }
    g4_executor ex;
    g4_executor_local(&ex, m);
    serve(&ex, m, prompts, plen, ref, false, NULL);
    serve(&ex, m, prompts, plen, spec_ref, true, &spec_st);
    int spec_same = 1;
    for (int i = 0; i < NREQ; i++)
        spec_same &= spec_ref[i].n == ref[i].n && !memcmp(spec_ref[i].tok, ref[i].tok, sizeof(int32_t) * ref[i].n);
    printf("%s t=1 speculation: tokens %s, %llu of %llu proposed tokens accepted\n", kind,
           spec_same ? "identical" : "DIFFER", (unsigned long long)spec_st.spec_accepted_tokens,
           (unsigned long long)spec_st.spec_draft_tokens);
    CHECK(spec_same, "%s t=1: speculation changes greedy tokens", kind);
    g4_model_close(m);
    g4_backend_destroy(be);
    for (int t = 2; t <= 4; t *= 2) {
        g4_tp *tp = g4_tp_open(dir, "cpu", NULL, t, &o, &err);
        CHECK(tp != NULL, "t=%d: %s", t, err.msg);
        if (!tp) continue;
        g4_executor_tp(&ex, tp);
        CHECK(ex.n_workers == t, "executor workers");
        serve(&ex, g4_tp_model(tp, 0), prompts, plen, got, false, NULL);
        double worst = 0;
        int same = 1;
        for (int i = 0; i < NREQ; i++) {
            same &= got[i].n == ref[i].n && !memcmp(got[i].tok, ref[i].tok, sizeof(int32_t) * ref[i].n);
            for (int j = 0; j < ref[i].n && j < got[i].n; j++)
                if (fabs(got[i].lp[j] - ref[i].lp[j]) > worst) worst = fabs(got[i].lp[j] - ref[i].lp[j]);
        }
        printf("%s t=%d through the engine: tokens %s, worst |Δ logprob| %.3g\n", kind, t,
               same ? "identical" : "DIFFER", worst);
        CHECK(same, "%s t=%d: greedy tokens differ from t=1", kind, t);
        CHECK(worst < 1e-3, "%s t=%d: logprob diff %g", kind, t, worst);
        if (t == 2) { /* speculation on a group: host logits, rows sampled one by one */
            g4_engine_stats st;
            serve(&ex, g4_tp_model(tp, 0), prompts, plen, got, true, &st);
            same = 1;
            for (int i = 0; i < NREQ; i++)
                same &= got[i].n == spec_ref[i].n && !memcmp(got[i].tok, spec_ref[i].tok, sizeof(int32_t) * got[i].n);
            printf("%s t=2 speculation: tokens %s, %llu of %llu proposed tokens accepted\n", kind,
                   same ? "identical" : "DIFFER", (unsigned long long)st.spec_accepted_tokens,
                   (unsigned long long)st.spec_draft_tokens);
            CHECK(same, "%s t=2 with speculation: tokens differ from t=1", kind);
            CHECK(st.spec_accepted_tokens > 0, "%s t=2: no proposal accepted", kind);
        }
        g4_tp_close(tp);
    }
    for (int i = 0; i < NREQ; i++) free(prompts[i]);
}

int main(void) {
    char dir[] = "/tmp/g4-test-tp-engine-XXXXXX", sub[512];
    REQUIRE(mkdtemp(dir) != NULL, "mkdtemp");
    snprintf(sub, sizeof sub, "%s/dense", dir);
    test_model("tiny-dense", sub);
    snprintf(sub, sizeof sub, "%s/moe", dir);
    test_model("tiny-moe", sub);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK(system(cmd) == 0, "cleanup");
    return check_summary();
}
