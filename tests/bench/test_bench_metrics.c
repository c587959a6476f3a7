/* test_bench_metrics.c — bench/serve/metrics.c against (1) a hand-computed run of four requests and
 * (2) tests/bench/data/metrics_ref.json: random recorded timestamps and the numbers a numpy
 * re-implementation of vLLM's calculate_metrics gives for them (tests/bench/make_metrics_ref.py).
 * Also the --goodput and --metric-percentiles parsers. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "metrics.h"

#define REF "tests/bench/data/metrics_ref.json"

static int close_to(double a, double b) { return fabs(a - b) <= 1e-9 + 1e-9 * fabs(b); }

static void hand_made(void) {
    double c0[] = {0.1, 0.15, 0.25}, c1[] = {0.8}, c3[] = {1.2, 1.3, 2.3};
    g4_bench_record r[4] = {
        {.ok = true, .prompt_len = 10, .output_tokens = 3, .t_send = 0.0, .t_end = 0.25, .n_chunks = 3, .chunk_t = c0},
        {.ok = true, .prompt_len = 20, .output_tokens = 1, .t_send = 0.5, .t_end = 0.8, .n_chunks = 1, .chunk_t = c1},
        {.ok = false, .prompt_len = 5},
        /* the last chunk carries two tokens: 3 chunks, 4 tokens */
        {.ok = true, .prompt_len = 30, .output_tokens = 4, .t_send = 1.0, .t_end = 2.3, .n_chunks = 3, .chunk_t = c3},
    };
    double pcts[] = {90, 99};
    g4_bench_slo slo = {.has_ttft = true, .ttft_ms = 250, .has_tpot = true, .tpot_ms = 100};
    g4_bench_metrics m;
    g4_error err = {{0}};
    CHECK(g4_bench_metrics_compute(r, 4, 2.5, &slo, pcts, 2, &m, &err) == 0, "%s", err.msg);
    CHECK(m.completed == 3 && m.failed == 1, "completed %d failed %d", m.completed, m.failed);
    CHECK(m.total_input == 60 && m.total_output == 8, "in %ld out %ld", m.total_input, m.total_output);
    CHECK(close_to(m.request_throughput, 1.2), "%g", m.request_throughput);
    CHECK(close_to(m.output_throughput, 3.2), "%g", m.output_throughput);
    CHECK(close_to(m.total_token_throughput, 27.2), "%g", m.total_token_throughput);
    /* TTFT 100, 300, 200 ms */
    CHECK(close_to(m.ttft.mean, 200) && close_to(m.ttft.median, 200), "%g %g", m.ttft.mean, m.ttft.median);
    CHECK(close_to(m.ttft.std, sqrt(20000.0 / 3)), "%g", m.ttft.std);
    CHECK(close_to(m.ttft.pct[0], 280) && close_to(m.ttft.pct[1], 298), "%g %g", m.ttft.pct[0], m.ttft.pct[1]);
    /* TPOT 75 and (1300 − 200) / 3 ms; the 1-token request is left out */
    CHECK(m.tpot.n == 2 && close_to(m.tpot.mean, (75 + 1100.0 / 3) / 2), "n %d mean %g", m.tpot.n, m.tpot.mean);
    CHECK(close_to(m.tpot.pct[0], 75 + 0.9 * (1100.0 / 3 - 75)), "%g", m.tpot.pct[0]);
    /* ITL pooled: 50, 100, 100, 1000 ms */
    CHECK(m.itl.n == 4 && close_to(m.itl.mean, 312.5) && close_to(m.itl.median, 100), "%d %g %g", m.itl.n, m.itl.mean,
          m.itl.median);
    CHECK(close_to(m.itl.pct[0], 730) && close_to(m.itl.pct[1], 973), "%g %g", m.itl.pct[0], m.itl.pct[1]);
    /* E2EL 250, 300, 1300 ms */
    CHECK(close_to(m.e2el.mean, 1850.0 / 3) && close_to(m.e2el.median, 300), "%g %g", m.e2el.mean, m.e2el.median);
    /* goodput: only request 0 meets TTFT ≤ 250 and TPOT ≤ 100 */
    CHECK(m.has_goodput && m.good_completed == 1 && close_to(m.request_goodput, 0.4), "%d", m.good_completed);
    /* 1-s buckets from t=0: 4 chunks in [0,1), 2 in [1,2), 1 in [2,3); two requests active in second 0 */
    CHECK(m.max_output_tokens_per_s == 4 && m.max_concurrent_requests == 2, "%g %d", m.max_output_tokens_per_s,
          m.max_concurrent_requests);
    /* E2EL SLO is inclusive (vLLM: slo >= value), and a 1-token request has TPOT 0 for goodput */
    slo = (g4_bench_slo){.has_e2el = true, .e2el_ms = 250}; /* request 0: E2EL exactly 0.25 s */
    CHECK(g4_bench_metrics_compute(r, 4, 2.5, &slo, pcts, 2, &m, &err) == 0 && m.good_completed == 1, "%d",
          m.good_completed);
    slo = (g4_bench_slo){.has_tpot = true, .tpot_ms = 0.001};
    CHECK(g4_bench_metrics_compute(r, 4, 2.5, &slo, pcts, 2, &m, &err) == 0 && m.good_completed == 1, "%d",
          m.good_completed);
    /* no successful request: zeros, as np.mean([0]) */
    CHECK(g4_bench_metrics_compute(&r[2], 1, 1.0, NULL, pcts, 2, &m, &err) == 0 && m.completed == 0 &&
              m.ttft.mean == 0 && m.max_output_tokens_per_s == 0 && !m.has_goodput,
          "empty run");
    CHECK(g4_bench_metrics_compute(r, 4, 0.0, NULL, pcts, 2, &m, &err) == -1 && strstr(err.msg, "duration"), "%s",
          err.msg);
}

static void check_stat(const char *name, const char *what, const g4_bench_stat *s, const cJSON *e, int n_pcts) {
    CHECK(s->n == cJSON_GetObjectItem(e, "n")->valueint, "%s %s n %d", name, what, s->n);
    CHECK(close_to(s->mean, cJSON_GetObjectItem(e, "mean")->valuedouble), "%s %s mean %.12g vs %.12g", name, what,
          s->mean, cJSON_GetObjectItem(e, "mean")->valuedouble);
    CHECK(close_to(s->median, cJSON_GetObjectItem(e, "median")->valuedouble), "%s %s median", name, what);
    CHECK(fabs(s->std - cJSON_GetObjectItem(e, "std")->valuedouble) < 1e-7, "%s %s std %.12g vs %.12g", name, what,
          s->std, cJSON_GetObjectItem(e, "std")->valuedouble);
    const cJSON *p = cJSON_GetObjectItem(e, "pct");
    for (int i = 0; i < n_pcts; i++)
        CHECK(close_to(s->pct[i], cJSON_GetArrayItem(p, i)->valuedouble), "%s %s pct[%d] %.12g vs %.12g", name, what, i,
              s->pct[i], cJSON_GetArrayItem(p, i)->valuedouble);
}

static int reference_cases(void) {
    FILE *f = fopen(REF, "rb");
    if (!f) {
        CHECK(0, "cannot open %s (run from the repository root)", REF);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    size_t got = fread(text, 1, (size_t)len, f);
    fclose(f);
    text[got] = 0;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root) {
        CHECK(0, "%s is not JSON", REF);
        return -1;
    }
    int n_cases = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const cJSON *recs = cJSON_GetObjectItem(c, "records"), *e = cJSON_GetObjectItem(c, "expected");
        int n = cJSON_GetArraySize(recs);
        g4_bench_record *r = calloc((size_t)n, sizeof *r);
        int i = 0;
        const cJSON *q;
        cJSON_ArrayForEach(q, recs) {
            r[i].ok = cJSON_IsTrue(cJSON_GetObjectItem(q, "ok"));
            r[i].prompt_len = cJSON_GetObjectItem(q, "prompt_len")->valueint;
            r[i].output_tokens = cJSON_GetObjectItem(q, "output_tokens")->valueint;
            r[i].t_send = cJSON_GetObjectItem(q, "t_send")->valuedouble;
            r[i].t_end = cJSON_GetObjectItem(q, "t_end")->valuedouble;
            const cJSON *ch = cJSON_GetObjectItem(q, "chunks"), *t;
            r[i].n_chunks = cJSON_GetArraySize(ch);
            r[i].chunk_t = malloc(sizeof(double) * (size_t)(r[i].n_chunks + 1));
            int k = 0;
            cJSON_ArrayForEach(t, ch) r[i].chunk_t[k++] = t->valuedouble;
            i++;
        }
        double pcts[G4_BENCH_MAX_PCT];
        int n_pcts = 0;
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItem(c, "pcts")) pcts[n_pcts++] = p->valuedouble;
        g4_bench_slo slo = {0};
        const cJSON *js = cJSON_GetObjectItem(c, "slo"), *v;
        if ((v = cJSON_GetObjectItem(js, "ttft"))) slo.has_ttft = true, slo.ttft_ms = v->valuedouble;
        if ((v = cJSON_GetObjectItem(js, "tpot"))) slo.has_tpot = true, slo.tpot_ms = v->valuedouble;
        if ((v = cJSON_GetObjectItem(js, "e2el"))) slo.has_e2el = true, slo.e2el_ms = v->valuedouble;
        g4_bench_metrics m;
        g4_error err = {{0}};
        CHECK(g4_bench_metrics_compute(r, n, cJSON_GetObjectItem(c, "duration")->valuedouble, &slo, pcts, n_pcts, &m,
                                       &err) == 0,
              "%s: %s", name, err.msg);
#define EI(field) cJSON_GetObjectItem(e, #field)->valueint
#define ED(field) cJSON_GetObjectItem(e, #field)->valuedouble
        CHECK(m.completed == EI(completed) && m.failed == EI(failed), "%s: completed %d failed %d", name, m.completed,
              m.failed);
        CHECK(m.total_input == EI(total_input) && m.total_output == EI(total_output), "%s: tokens", name);
        CHECK(m.good_completed == EI(good_completed), "%s: good %d vs %d", name, m.good_completed, EI(good_completed));
        CHECK(close_to(m.request_throughput, ED(request_throughput)), "%s: req/s", name);
        CHECK(close_to(m.request_goodput, ED(request_goodput)), "%s: goodput", name);
        CHECK(close_to(m.output_throughput, ED(output_throughput)), "%s: out tok/s", name);
        CHECK(close_to(m.total_token_throughput, ED(total_token_throughput)), "%s: total tok/s", name);
        CHECK(m.max_output_tokens_per_s == ED(max_output_tokens_per_s), "%s: peak %g vs %g", name,
              m.max_output_tokens_per_s, ED(max_output_tokens_per_s));
        CHECK(m.max_concurrent_requests == EI(max_concurrent_requests), "%s: peak concurrency %d vs %d", name,
              m.max_concurrent_requests, EI(max_concurrent_requests));
        check_stat(name, "ttft", &m.ttft, cJSON_GetObjectItem(e, "ttft"), n_pcts);
        check_stat(name, "tpot", &m.tpot, cJSON_GetObjectItem(e, "tpot"), n_pcts);
        check_stat(name, "itl", &m.itl, cJSON_GetObjectItem(e, "itl"), n_pcts);
        check_stat(name, "e2el", &m.e2el, cJSON_GetObjectItem(e, "e2el"), n_pcts);
        for (int k = 0; k < n; k++) free(r[k].chunk_t);
        free(r);
        n_cases++;
    }
    cJSON_Delete(root);
    CHECK(n_cases >= 5, "only %d reference cases", n_cases);
    return 0;
}

static void parsers(void) {
    g4_bench_slo s;
    g4_error err = {{0}};
    CHECK(g4_bench_slo_parse("ttft:500 tpot:50,e2el:2500.5", &s, &err) == 0 && s.has_ttft && s.ttft_ms == 500 &&
              s.has_tpot && s.tpot_ms == 50 && s.has_e2el && s.e2el_ms == 2500.5,
          "%s", err.msg);
    CHECK(g4_bench_slo_parse("tpot:20", &s, &err) == 0 && !s.has_ttft && s.has_tpot && !s.has_e2el, "%s", err.msg);
    CHECK(g4_bench_slo_parse("itl:20", &s, &err) == -1 && strstr(err.msg, "itl"), "%s", err.msg);
    CHECK(g4_bench_slo_parse("ttft:abc", &s, &err) == -1 && strstr(err.msg, "ttft"), "%s", err.msg);
    CHECK(g4_bench_slo_parse("", &s, &err) == -1, "empty");
    double p[G4_BENCH_MAX_PCT];
    CHECK(g4_bench_pcts_parse("90,99,99.9", p, G4_BENCH_MAX_PCT, &err) == 3 && p[2] == 99.9, "%s", err.msg);
    CHECK(g4_bench_pcts_parse("0,50", p, G4_BENCH_MAX_PCT, &err) == -1, "0 is not a percentile");
    CHECK(g4_bench_pcts_parse("50;90", p, G4_BENCH_MAX_PCT, &err) == -1, "bad separator");
    double sorted[] = {1, 2, 3, 4, 10};
    CHECK(close_to(g4_bench_percentile(sorted, 5, 75), 4) && close_to(g4_bench_percentile(sorted, 5, 90), 7.6) &&
              g4_bench_percentile(sorted, 5, 100) == 10 && g4_bench_percentile(sorted, 0, 50) == 0,
          "percentile");
}

int main(void) {
    hand_made();
    parsers();
    reference_cases();
    return check_summary();
}
