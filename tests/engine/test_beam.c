/* test_beam.c — beam search (engine/beam.h) on the CPU backend:
 *   golden       tests/golden/beam.json: vLLM's beam search over transformers' logits of the
 *                dense golden model (made by tests/golden/make_beam_golden.py). Every output's
 *                tokens, finish and end id are equal, its logprobs sum to the golden cumulative
 *                logprob; with the prefix cache on and off; texts are the detokenizer's.
 *   cancel       a long search cancelled at once: every output gets exactly one last event,
 *                ABORT, and no sequence or block is left behind
 *   short queue  max_waiting 2 below the width 4: the search's later steps still run
 *   stop         an engine destroyed mid-search ends every output with ABORT
 *   refusals     widths 0 and 11, logprobs, stop strings, penalties, a prompt too long: refused at
 *                start with the parameter named and no event ever delivered */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_backend.h"
#include "base/file.h"
#include "check.h"
#include "engine/beam.h"
#include "engine/engine.h"
#include "engine_test_util.h"
#include "model/gemma4.h"

#define MAX_W G4_BEAM_MAX_WIDTH

/* REQUIRE for any function: the test cannot go on. */
#define MUST(cond, ...)                      \
    do {                                     \
        int ok_ = !!(cond);                  \
        CHECK(ok_, __VA_ARGS__);             \
        if (!ok_) exit(check_summary() | 1); \
    } while (0)

static g4_model *open_golden(g4_backend *be) {
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_seqs = 8;
    o.max_model_len = 256;
    g4_model *m = NULL;
    g4_error err = {{0}};
    MUST(g4_model_open(&m, "tests/golden/dense", be, &o, &err) == 0, "golden model: %s", err.msg);
    return m;
}

static g4_engine *make_engine(g4_model *m, g4_executor *ex, const g4_detok_iface *dt, bool prefix) {
    g4_engine_opts o;
    g4_engine_opts_from_model(&o, m);
    o.prefix_cache = prefix;
    g4_executor_local(ex, m);
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, ex, dt, &err);
    MUST(e != NULL, "engine: %s", err.msg);
    return e;
}

typedef struct search {
    rec out[MAX_W];
    g4_beam_out outs[MAX_W];
    g4_beam *b;
} search;

static g4_beam *start(g4_engine *e, search *s, const int32_t *prompt, int n, int width, int max_tokens, float lp,
                      const int32_t *stop_ids, int n_stop, int *code, g4_error *err) {
    memset(s->out, 0, sizeof s->out);
    for (int i = 0; i < width; i++) s->outs[i] = (g4_beam_out){rec_on_event, &s->out[i]};
    g4_request_params p = {.prompt = prompt, .n_prompt = n};
    g4_sampling_default(&p.sampling);
    g4_stop_rules_default(&p.stop);
    p.stop.max_tokens = max_tokens;
    p.stop.stop_ids = stop_ids;
    p.stop.n_stop_ids = n_stop;
    s->b = g4_beam_start(e, &p, width, lp, s->outs, code, err);
    return s->b;
}

static int ints(const cJSON *a, int32_t *out, int cap) {
    int n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, a) if (n < cap) out[n++] = (int32_t)v->valuedouble;
    return n;
}

static void check_golden(g4_engine *e, const cJSON *cases, const char *mode) {
    int n_cases = 0, n_outputs = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        int32_t prompt[256], stop[16];
        int n = ints(cJSON_GetObjectItem(c, "prompt_ids"), prompt, 256);
        int n_stop = ints(cJSON_GetObjectItem(c, "stop_ids"), stop, 16);
        int width = cJSON_GetObjectItem(c, "width")->valueint;
        int max_tokens = cJSON_GetObjectItem(c, "max_tokens")->valueint;
        float lp = (float)cJSON_GetObjectItem(c, "length_penalty")->valuedouble;
        search s;
        int code = 0;
        g4_error err = {{0}};
        MUST(start(e, &s, prompt, n, width, max_tokens, lp, stop, n_stop, &code, &err), "start: %s", err.msg);
        g4_engine_wait_idle(e);
        const cJSON *outs = cJSON_GetObjectItem(c, "outputs");
        CHECK(cJSON_GetArraySize(outs) == width, "case %d: golden has %d outputs", n_cases, cJSON_GetArraySize(outs));
        for (int i = 0; i < width && i < cJSON_GetArraySize(outs); i++) {
            const cJSON *g = cJSON_GetArrayItem(outs, i);
            const rec *r = &s.out[i];
            int32_t want[256];
            int n_want = ints(cJSON_GetObjectItem(g, "tokens"), want, 256);
            bool stop_fin = !strcmp(cJSON_GetObjectItem(g, "finish")->valuestring, "stop");
            int end = cJSON_GetObjectItem(g, "stop_token")->valueint;
            double cum = cJSON_GetObjectItem(g, "cum_logprob")->valuedouble;
            CHECK(r->n_finish == 1, "%s case %d output %d: %d last events", mode, n_cases, i, r->n_finish);
            CHECK(r->n == n_want && !memcmp(r->toks, want, (size_t)n_want * sizeof *want),
                  "%s case %d output %d: %d tokens, expected %d (first %d vs %d)", mode, n_cases, i, r->n, n_want,
                  r->n ? r->toks[0] : -1, n_want ? want[0] : -1);
            CHECK(r->finish == (stop_fin ? G4_FINISH_STOP : G4_FINISH_LENGTH) && r->stop_token == (stop_fin ? end : -1),
                  "%s case %d output %d: finish %d stop_token %d, expected %s %d", mode, n_cases, i, r->finish,
                  r->stop_token, stop_fin ? "stop" : "length", end);
            /* the generated tokens' logprobs plus the end id's (not an emitted token) */
            double sum = 0;
            for (int k = 0; k < r->n; k++) sum += r->logprob[k];
            if (!stop_fin)
                CHECK(fabs(sum - cum) < 2e-3, "%s case %d output %d: logprobs sum %.5f, golden %.5f", mode, n_cases, i,
                      sum, cum);
            else
                CHECK(sum >= cum - 1e-3, "%s case %d output %d: logprobs sum %.5f below the golden cumulative %.5f",
                      mode, n_cases, i, sum, cum);
            CHECK(r->completion_tokens == n_want && r->prompt_tokens == n, "%s case %d output %d: usage %d + %d", mode,
                  n_cases, i, r->prompt_tokens, r->completion_tokens);
            char text[4096];
            fake_text(want, n_want, text, sizeof text);
            CHECK(!strcmp(r->text, text), "%s case %d output %d: text '%s', expected '%s'", mode, n_cases, i, r->text,
                  text);
            n_outputs++;
        }
        g4_beam_release(s.b);
        n_cases++;
    }
    printf("%s: %d golden cases, %d outputs\n", mode, n_cases, n_outputs);
    CHECK(n_cases >= 4, "only %d golden cases", n_cases);
}

static void check_cancel_and_refusals(g4_engine *e) {
    int32_t prompt[32];
    for (int i = 0; i < 32; i++) prompt[i] = 3 + (i * 37) % 200;
    search s;
    int code = 0;
    g4_error err = {{0}};
    MUST(start(e, &s, prompt, 32, 4, 200, 1.0f, NULL, 0, &code, &err), "start: %s", err.msg);
    g4_beam_cancel(s.b);
    g4_beam_cancel(s.b); /* twice: no effect */
    g4_engine_wait_idle(e);
    for (int i = 0; i < 4; i++)
        CHECK(s.out[i].n_finish == 1 && s.out[i].finish == G4_FINISH_ABORT, "cancel: output %d: %d last events, %d", i,
              s.out[i].n_finish, s.out[i].finish);
    g4_beam_cancel(s.b); /* after the end: no effect */
    g4_beam_release(s.b);
    g4_engine_stats st;
    g4_engine_stats_get(e, &st);
    CHECK(st.running == 0 && st.waiting == 0, "cancel: %d running, %d waiting", st.running, st.waiting);
    CHECK(st.blocks_sliding_used == 0 && st.blocks_global_used == 0,
          "cancel: blocks left in use: %d sliding, %d global", st.blocks_sliding_used, st.blocks_global_used);

    static const struct {
        int width, max_tokens, n_prompt, logprobs, n_stop_strings;
        float rep;
        int code;
        const char *what;
    } bad[] = {
        {0, 4, 8, -1, 0, 1, G4_ERR_INVALID, "width 0"},      {MAX_W + 1, 4, 8, -1, 0, 1, G4_ERR_INVALID, "width 11"},
        {2, 4, 8, 0, 0, 1, G4_ERR_INVALID, "logprobs"},      {2, 4, 8, -1, 1, 1, G4_ERR_INVALID, "stop strings"},
        {2, 4, 8, -1, 0, 1.3f, G4_ERR_INVALID, "penalties"}, {2, 250, 8, -1, 0, 1, G4_ERR_TOO_LONG, "max model length"},
    };
    const char *stops[] = {"x"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        rec out[MAX_W + 1];
        memset(out, 0, sizeof out);
        g4_beam_out outs[MAX_W + 1];
        for (int i = 0; i <= MAX_W; i++) outs[i] = (g4_beam_out){rec_on_event, &out[i]};
        g4_request_params p = {.prompt = prompt, .n_prompt = bad[k].n_prompt};
        g4_sampling_default(&p.sampling);
        p.sampling.logprobs = bad[k].logprobs;
        p.sampling.repetition_penalty = bad[k].rep;
        g4_stop_rules_default(&p.stop);
        p.stop.max_tokens = bad[k].max_tokens;
        p.stop.stop_strings = stops;
        p.stop.n_stop_strings = bad[k].n_stop_strings;
        g4_error err2 = {{0}};
        int c2 = 0;
        g4_beam *b = g4_beam_start(e, &p, bad[k].width, 1.0f, outs, &c2, &err2);
        CHECK(!b && c2 == bad[k].code, "refusal '%s': search %p, code %d", bad[k].what, (void *)b, c2);
        printf("refused (%s): %s\n", bad[k].what, err2.msg);
        g4_engine_wait_idle(e);
        for (int i = 0; i <= MAX_W; i++) CHECK(out[i].n_events == 0, "refusal '%s': an event arrived", bad[k].what);
    }
}

/* A waiting queue shorter than the width: only the search's first step is admission, its later
 * steps (W requests each) are continuations the queue bound does not refuse. */
static void check_short_queue(g4_model *m) {
    g4_engine_opts o;
    g4_engine_opts_from_model(&o, m);
    o.max_waiting = 2;
    g4_executor ex;
    g4_executor_local(&ex, m);
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, &ex, NULL, &err);
    MUST(e, "engine: %s", err.msg);
    int32_t prompt[12];
    for (int i = 0; i < 12; i++) prompt[i] = 7 + 3 * i;
    search s;
    int code = 0;
    start(e, &s, prompt, 12, 4, 5, 1.0f, NULL, 0, &code, &err);
    MUST(s.b, "start: %s", err.msg);
    g4_engine_wait_idle(e);
    for (int i = 0; i < 4; i++)
        CHECK(s.out[i].n_finish == 1 && s.out[i].finish != G4_FINISH_ERROR && s.out[i].finish != G4_FINISH_ABORT,
              "short queue: output %d: %d last events, finish %d (%s)", i, s.out[i].n_finish, s.out[i].finish,
              s.out[i].error);
    g4_beam_release(s.b);
    g4_engine_destroy(e);
}

static void check_stop(g4_model *m) {
    g4_executor ex;
    g4_engine *e = make_engine(m, &ex, NULL, true);
    int32_t prompt[16];
    for (int i = 0; i < 16; i++) prompt[i] = 5 + i;
    search s;
    int code = 0;
    g4_error err = {{0}};
    MUST(start(e, &s, prompt, 16, 3, 200, 1.0f, NULL, 0, &code, &err), "start: %s", err.msg);
    g4_engine_destroy(e);
    for (int i = 0; i < 3; i++)
        CHECK(s.out[i].n_finish == 1 && s.out[i].finish == G4_FINISH_ABORT, "stop: output %d: %d last events, %d", i,
              s.out[i].n_finish, s.out[i].finish);
    g4_beam_release(s.b);
}

int main(void) {
    g4_error err = {{0}};
    size_t len = 0;
    char *json = NULL;
    MUST(g4_read_file("tests/golden/beam.json", 1 << 20, &json, &len, &err) == 0, "%s", err.msg);
    cJSON *root = cJSON_Parse(json);
    MUST(root, "beam.json: not JSON");
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    g4_backend *be = g4_backend_cpu_create(&err);
    MUST(be, "%s", err.msg);
    g4_model *m = open_golden(be);
    g4_detok_iface dt = fake_detok();
    for (int prefix = 1; prefix >= 0; prefix--) {
        g4_executor ex;
        g4_engine *e = make_engine(m, &ex, &dt, prefix);
        check_golden(e, cases, prefix ? "prefix cache" : "no prefix cache");
        if (prefix) check_cancel_and_refusals(e);
        g4_engine_destroy(e);
    }
    check_short_queue(m);
    check_stop(m);
    g4_model_close(m);
    g4_backend_destroy(be);
    cJSON_Delete(root);
    free(json);
    return check_summary();
}
