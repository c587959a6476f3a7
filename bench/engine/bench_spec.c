/* bench_spec.c — g4-bench-spec: what speculative decoding buys, measured in one run. The same
 * requests go through the engine twice, once without speculation and once with the given
 * --speculative-config (one model stack at a time, so a GPU holds one copy of the weights), on
 * two workloads:
 *   repetitive  prompts that repeat one block of ids with one id changed per copy (code editing,
 *               summarising or rewriting the prompt: text the output can copy from);
 *   random      uniform random ids (nothing to look up).
 * Each request runs closed-loop at --concurrency C (the next request starts when one ends). Per
 * mode and workload: output tokens/s (wall clock, and per second of the process's CPU time, which
 * other load on a shared machine disturbs less), per-request latency (end-to-end, TTFT, TPOT:
 * mean, median, p90), engine steps per output token (target forward passes: what speculation
 * saves, the same on any machine), the engine's speculation counters (proposals, proposed and accepted tokens: acceptance
 * rate, mean accepted length 1 + accepted / proposals), and per workload the speedup ratios
 * (throughput on / off, mean end-to-end latency off / on) and, for greedy requests, whether the
 * tokens are the same with and without speculation. One unmeasured request warms each engine
 * first. Text table on stdout; --result-file writes it all as JSON.
 *
 *   g4-bench-spec [--model DIR | --tiny dense|moe] [--backend cpu|cuda] [--tp N]
 *                 [--speculative-config JSON] [-n 8] [--input 256] [--output 64] [--block 24]
 *                 [--concurrency 1] [--temperature 0] [--seed 1] [--result-file FILE]
 * Not a serving benchmark (no HTTP): the engine is driven in-process, ids in and out. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/rng.h"
#include "engine/engine.h"
#include "engine/stream.h"
#include "server/spec_config_json.h"
#include "server/stack.h"

#define MAX_CONCURRENCY 256

typedef struct args {
    const char *model_dir, *tiny, *backend, *spec_json, *result_file;
    int n, in_len, out_len, block, concurrency, tp;
    double temperature;
    uint64_t seed;
} args;

typedef struct req_result {
    double t_submit, t_first, t_end; /* seconds from the start of the run */
    int tokens, draft, accepted;
    int32_t *ids; /* [out_len] */
} req_result;

typedef struct run_result {
    double wall_s, cpu_s; /* wall clock, and the process's CPU time (less sensitive to other load) */
    long tokens;
    g4_engine_stats before, after;
    req_result *req; /* [n] */
} run_result;

static double clock_s(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

static int usage(void) {
    fprintf(stderr, "usage: g4-bench-spec [--model DIR | --tiny dense|moe] [--backend cpu|cuda] [--tp N]\n"
                    "                     [--speculative-config JSON] [-n N] [--input L] [--output L] [--block B]\n"
                    "                     [--concurrency C] [--temperature T] [--seed S] [--result-file FILE]\n");
    return 2;
}

/* --- workloads ------------------------------------------------------------------------------ */

static int32_t random_id(uint64_t *rng, int vocab) { return 2 + (int32_t)(g4_splitmix64(rng) % (uint64_t)(vocab - 2)); }

/* Prompt i of a workload; the same in both modes. */
static void make_prompt(const args *a, int repetitive, int i, int vocab, int32_t *out) {
    uint64_t rng = g4_mix64(a->seed * 1000003u + (uint64_t)i * 2 + (uint64_t)repetitive);
    if (!repetitive) {
        for (int j = 0; j < a->in_len; j++) out[j] = random_id(&rng, vocab);
        return;
    }
    int32_t block[512];
    int b = a->block < 512 ? a->block : 512;
    for (int j = 0; j < b; j++) block[j] = random_id(&rng, vocab);
    for (int j = 0; j < a->in_len; j++) out[j] = block[j % b];
    for (int c = b; c < a->in_len; c += b) { /* one edit per copy after the first */
        int at = c + (int)(g4_splitmix64(&rng) % (uint64_t)b);
        if (at < a->in_len) out[at] = random_id(&rng, vocab);
    }
}

/* --- one run: every request of a workload through one engine -------------------------------- */

static int submit(g4_engine *e, const args *a, g4_stream *stream, const int32_t *prompt, int i, uint64_t *id,
                  g4_error *err) {
    g4_request_params p = {.prompt = prompt, .n_prompt = a->in_len, .on_event = g4_stream_on_event, .user = stream};
    g4_sampling_default(&p.sampling);
    p.sampling.temperature = (float)a->temperature;
    p.sampling.has_seed = true;
    p.sampling.seed = a->seed + (uint64_t)i;
    g4_stop_rules_default(&p.stop);
    p.stop.max_tokens = a->out_len;
    p.stop.ignore_eos = true;
    int code = 0;
    *id = g4_engine_submit(e, &p, &code, err);
    return *id ? 0 : -1;
}

static int run(g4_stack *st, const args *a, int repetitive, run_result *r, g4_error *err) {
    g4_stream *stream = g4_stream_create();
    int32_t *prompts = malloc(sizeof *prompts * (size_t)a->in_len * (size_t)a->n);
    if (!stream || !prompts) {
        g4_stream_free(stream);
        free(prompts);
        return g4_fail(err, "out of memory");
    }
    for (int i = 0; i < a->n; i++) make_prompt(a, repetitive, i, (int)st->model->cfg.vocab, prompts + i * a->in_len);
    uint64_t ids[MAX_CONCURRENCY];
    int slot_req[MAX_CONCURRENCY], next = 0, done = 0, rc = 0;
    g4_engine_stats_get(st->engine, &r->before);
    double t0 = now_s(), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (int s = 0; s < a->concurrency && next < a->n; s++, next++) {
        r->req[next].t_submit = 0;
        slot_req[s] = next;
        if (submit(st->engine, a, stream, prompts + next * a->in_len, next, &ids[s], err) < 0) rc = -1;
    }
    int active = next;
    g4_stream_event ev;
    while (rc == 0 && done < a->n && g4_stream_pop(stream, &ev, -1)) {
        int s = 0;
        while (s < active && ids[s] != ev.ev.id) s++;
        if (s == active) {
            g4_stream_event_clear(&ev);
            continue;
        }
        req_result *q = &r->req[slot_req[s]];
        double t = now_s() - t0;
        for (int k = 0; k < ev.ev.n_tokens && q->tokens < a->out_len; k++) {
            if (q->tokens == 0) q->t_first = t;
            q->ids[q->tokens++] = ev.ev.token;
        }
        if (ev.ev.finish != G4_FINISH_NONE) {
            q->t_end = t;
            q->draft = ev.ev.spec_draft_tokens;
            q->accepted = ev.ev.spec_accepted_tokens;
            if (ev.ev.finish == G4_FINISH_ERROR || ev.ev.finish == G4_FINISH_ABORT)
                rc = g4_fail(err, "request %d ended early: %s", slot_req[s], ev.ev.error ? ev.ev.error : "aborted");
            done++;
            if (next < a->n) {
                slot_req[s] = next;
                r->req[next].t_submit = t;
                if (submit(st->engine, a, stream, prompts + next * a->in_len, next, &ids[s], err) < 0) rc = -1;
                next++;
            } else {
                ids[s] = 0;
            }
        }
        g4_stream_event_clear(&ev);
    }
    r->wall_s = now_s() - t0;
    r->cpu_s = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    g4_engine_stats_get(st->engine, &r->after);
    r->tokens = 0;
    for (int i = 0; i < a->n; i++) r->tokens += r->req[i].tokens;
    /* the engine is idle again: nothing will call into the stream */
    g4_stream_free(stream);
    free(prompts);
    return rc;
}

/* --- statistics and output -------------------------------------------------------------------- */

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* mean, median, p90 (linear interpolation, as numpy) of v[n] in ms; v is sorted. */
static cJSON *summary_ms(double *v, int n) {
    cJSON *o = cJSON_CreateObject();
    double mean = 0;
    for (int i = 0; i < n; i++) mean += v[i];
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    double q[2] = {0.5, 0.9}, at[2] = {0, 0};
    for (int k = 0; k < 2 && n > 0; k++) {
        double pos = q[k] * (n - 1);
        int lo = (int)pos;
        at[k] = lo + 1 < n ? v[lo] + (pos - lo) * (v[lo + 1] - v[lo]) : v[lo];
    }
    cJSON_AddNumberToObject(o, "mean", n ? 1e3 * mean / n : 0);
    cJSON_AddNumberToObject(o, "median", 1e3 * at[0]);
    cJSON_AddNumberToObject(o, "p90", 1e3 * at[1]);
    return o;
}

static cJSON *mode_json(const args *a, const run_result *r) {
    cJSON *o = cJSON_CreateObject();
    double *e2e = malloc(sizeof(double) * (size_t)a->n), *ttft = malloc(sizeof(double) * (size_t)a->n),
           *tpot = malloc(sizeof(double) * (size_t)a->n);
    int n_tpot = 0;
    long draft = 0, accepted = 0;
    for (int i = 0; i < a->n && e2e && ttft && tpot; i++) {
        const req_result *q = &r->req[i];
        e2e[i] = q->t_end - q->t_submit;
        ttft[i] = q->t_first - q->t_submit;
        if (q->tokens > 1) tpot[n_tpot++] = (q->t_end - q->t_first) / (q->tokens - 1);
        draft += q->draft;
        accepted += q->accepted;
    }
    uint64_t drafts = r->after.spec_drafts - r->before.spec_drafts;
    uint64_t dtok = r->after.spec_draft_tokens - r->before.spec_draft_tokens;
    uint64_t acc = r->after.spec_accepted_tokens - r->before.spec_accepted_tokens;
    cJSON_AddNumberToObject(o, "wall_s", r->wall_s);
    cJSON_AddNumberToObject(o, "output_tokens", (double)r->tokens);
    cJSON_AddNumberToObject(o, "output_tok_s", r->tokens / r->wall_s);
    cJSON_AddNumberToObject(o, "request_throughput", a->n / r->wall_s);
    cJSON_AddNumberToObject(o, "cpu_s", r->cpu_s);
    cJSON_AddNumberToObject(o, "output_tok_per_cpu_s", r->tokens / r->cpu_s);
    /* target forward passes per output token: what speculation saves, independent of the machine */
    double steps = (double)(r->after.steps - r->before.steps);
    cJSON_AddNumberToObject(o, "steps", steps);
    cJSON_AddNumberToObject(o, "steps_per_output_token", r->tokens ? steps / (double)r->tokens : 0);
    if (e2e && ttft && tpot) {
        cJSON_AddItemToObject(o, "e2e_ms", summary_ms(e2e, a->n));
        cJSON_AddItemToObject(o, "ttft_ms", summary_ms(ttft, a->n));
        cJSON_AddItemToObject(o, "tpot_ms", summary_ms(tpot, n_tpot));
    }
    cJSON_AddNumberToObject(o, "spec_drafts", (double)drafts);
    cJSON_AddNumberToObject(o, "spec_draft_tokens", (double)dtok);
    cJSON_AddNumberToObject(o, "spec_accepted_tokens", (double)acc);
    cJSON_AddNumberToObject(o, "acceptance_rate", dtok ? (double)acc / (double)dtok : 0);
    cJSON_AddNumberToObject(o, "mean_accepted_length", drafts ? 1.0 + (double)acc / (double)drafts : 1.0);
    /* per request (the final events) must add up to the engine's counters */
    cJSON_AddBoolToObject(o, "per_request_counts_match", (uint64_t)draft == dtok && (uint64_t)accepted == acc);
    free(e2e);
    free(ttft);
    free(tpot);
    return o;
}

static double num(const cJSON *o, const char *a, const char *b) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    return cJSON_IsNumber(x) ? x->valuedouble : 0;
}

static void print_row(const char *workload, const char *mode, const cJSON *m) {
    printf("%-11s %-4s %10.1f %10.1f %10.1f %10.1f %10.2f %9.3f %9.1f%% %8.2f\n", workload, mode,
           num(m, "output_tok_s", NULL), num(m, "output_tok_per_cpu_s", NULL), num(m, "e2e_ms", "mean"),
           num(m, "ttft_ms", "median"), num(m, "tpot_ms", "median"), num(m, "steps_per_output_token", NULL),
           100 * num(m, "acceptance_rate", NULL), num(m, "mean_accepted_length", NULL));
}

/* --- main ------------------------------------------------------------------------------------- */

static int parse_args(args *a, int argc, char **argv) {
    *a = (args){.tiny = "dense",
                .backend = "cpu",
                .spec_json = "{\"method\":\"ngram\",\"num_speculative_tokens\":4,\"prompt_lookup_max\":4,"
                             "\"prompt_lookup_min\":2}",
                .n = 8,
                .in_len = 256,
                .out_len = 64,
                .block = 24,
                .concurrency = 1,
                .tp = 1,
                .seed = 1};
    for (int i = 1; i < argc; i++) {
        const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return -1;
        i++;
        if (!strcmp(k, "--model")) a->model_dir = v;
        else if (!strcmp(k, "--tiny")) a->tiny = v;
        else if (!strcmp(k, "--backend")) a->backend = v;
        else if (!strcmp(k, "--tp")) a->tp = atoi(v);
        else if (!strcmp(k, "--speculative-config")) a->spec_json = v;
        else if (!strcmp(k, "-n")) a->n = atoi(v);
        else if (!strcmp(k, "--input")) a->in_len = atoi(v);
        else if (!strcmp(k, "--output")) a->out_len = atoi(v);
        else if (!strcmp(k, "--block")) a->block = atoi(v);
        else if (!strcmp(k, "--concurrency")) a->concurrency = atoi(v);
        else if (!strcmp(k, "--temperature")) a->temperature = atof(v);
        else if (!strcmp(k, "--seed")) a->seed = strtoull(v, NULL, 10);
        else if (!strcmp(k, "--result-file")) a->result_file = v;
        else return -1;
    }
    if (a->n < 1 || a->in_len < 2 || a->out_len < 1 || a->block < 2 || a->block > 512 || a->concurrency < 1 ||
        a->concurrency > MAX_CONCURRENCY || a->tp < 1 || a->temperature < 0)
        return -1;
    return 0;
}

/* Opens a stack with (on) or without speculation and runs both workloads through it. */
static int run_mode(const args *a, const g4_spec_config *spec, run_result out[2], g4_error *err) {
    g4_stack_opts so;
    g4_stack_opts_default(&so);
    so.model_dir = a->model_dir;
    so.default_model = !strcmp(a->tiny, "moe") ? "tiny-moe" : "tiny-dense";
    so.backend = a->backend;
    so.tp = a->tp;
    so.no_tokenizer = true;
    so.model.max_seqs = a->concurrency;
    so.model.max_model_len = a->in_len + a->out_len + 2 * G4_SPEC_MAX_TOKENS;
    so.max_waiting = a->concurrency;
    so.prefix_cache = 0; /* every prompt once: nothing to share, and the two modes alike */
    so.spec = *spec;
    if (g4_backend_options_from_env(&so.backend_opts, err) < 0) return -1;
    g4_stack *st = NULL;
    if (g4_stack_open(&st, &so, err) < 0) return -1;
    /* one unmeasured request first (threads, caches, lazily built graphs) */
    args warm = *a;
    warm.n = 1;
    warm.seed = a->seed + 7777;
    int32_t *warm_buf = malloc(sizeof(int32_t) * (size_t)a->out_len);
    req_result warm_req = {.ids = warm_buf};
    run_result warm_res = {.req = &warm_req};
    int rc = warm_buf ? run(st, &warm, 1, &warm_res, err) : g4_fail(err, "out of memory");
    free(warm_buf);
    for (int w = 0; w < 2 && rc == 0; w++) rc = run(st, a, w == 0, &out[w], err);
    g4_stack_close(st);
    return rc;
}

int main(int argc, char **argv) {
    args a;
    if (parse_args(&a, argc, argv) < 0) return usage();
    g4_error err = {{0}};
    g4_spec_config spec, off = {0};
    char draft_dir[4096], line[4400];
    if (g4_spec_config_from_json(a.spec_json, &spec, draft_dir, sizeof draft_dir, &err) < 0 ||
        g4_spec_config_check_draft(&spec, &err) < 0) {
        fprintf(stderr, "g4-bench-spec: --speculative-config: %s\n", err.msg);
        return 2;
    }
    if (spec.method == G4_SPEC_OFF) {
        fprintf(stderr, "g4-bench-spec: --speculative-config: empty (nothing to compare)\n");
        return 2;
    }
    run_result res[2][2]; /* [mode: off, on][workload: repetitive, random] */
    memset(res, 0, sizeof res);
    int32_t *ids = calloc((size_t)4 * (size_t)a.n * (size_t)a.out_len, sizeof *ids);
    req_result *reqs = calloc((size_t)4 * (size_t)a.n, sizeof *reqs);
    if (!ids || !reqs) {
        fprintf(stderr, "g4-bench-spec: out of memory\n");
        return 1;
    }
    for (int m = 0; m < 2; m++)
        for (int w = 0; w < 2; w++) {
            res[m][w].req = reqs + (m * 2 + w) * a.n;
            for (int i = 0; i < a.n; i++) res[m][w].req[i].ids = ids + ((size_t)(m * 2 + w) * a.n + i) * a.out_len;
        }
    g4_spec_config_describe(&spec, line, sizeof line);
    fprintf(stderr, "g4-bench-spec: speculative config: %s\n", line);
    if (run_mode(&a, &off, res[0], &err) < 0 || run_mode(&a, &spec, res[1], &err) < 0) {
        fprintf(stderr, "g4-bench-spec: %s\n", err.msg);
        return 1;
    }

    cJSON *root = cJSON_CreateObject();
    char date[32];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    cJSON_AddStringToObject(root, "tool", "g4-bench-spec");
    cJSON_AddStringToObject(root, "date", date);
    cJSON_AddStringToObject(root, "model",
                            a.model_dir              ? a.model_dir
                            : !strcmp(a.tiny, "moe") ? "tiny-moe"
                                                     : "tiny-dense");
    cJSON_AddStringToObject(root, "backend", a.backend);
    cJSON_AddNumberToObject(root, "tp", a.tp);
    cJSON_AddItemToObject(root, "speculative_config", cJSON_Parse(line));
    cJSON *p = cJSON_AddObjectToObject(root, "load");
    cJSON_AddNumberToObject(p, "requests_per_workload", a.n);
    cJSON_AddNumberToObject(p, "input_len", a.in_len);
    cJSON_AddNumberToObject(p, "output_len", a.out_len);
    cJSON_AddNumberToObject(p, "repetitive_block", a.block);
    cJSON_AddNumberToObject(p, "concurrency", a.concurrency);
    cJSON_AddNumberToObject(p, "temperature", a.temperature);
    cJSON_AddNumberToObject(p, "seed", (double)a.seed);
    cJSON *cmd = cJSON_AddArrayToObject(root, "command");
    for (int i = 0; i < argc; i++) cJSON_AddItemToArray(cmd, cJSON_CreateString(argv[i]));
    cJSON *ws = cJSON_AddObjectToObject(root, "workloads");
    bool speculated = false;
    printf("%-11s %-4s %10s %10s %10s %10s %10s %8s\n", "workload", "spec", "out tok/s", "e2e ms", "ttft ms", "tpot ms",
           "accepted", "mean len");
    for (int w = 0; w < 2; w++) {
        const char *name = w == 0 ? "repetitive" : "random";
        cJSON *wj = cJSON_AddObjectToObject(ws, name);
        cJSON *moff = mode_json(&a, &res[0][w]), *mon = mode_json(&a, &res[1][w]);
        cJSON_AddItemToObject(wj, "off", moff);
        cJSON_AddItemToObject(wj, "on", mon);
        double s_tp =
            num(moff, "output_tok_s", NULL) > 0 ? num(mon, "output_tok_s", NULL) / num(moff, "output_tok_s", NULL) : 0;
        double s_lat = num(mon, "e2e_ms", "mean") > 0 ? num(moff, "e2e_ms", "mean") / num(mon, "e2e_ms", "mean") : 0;
        double s_cpu = num(moff, "output_tok_per_cpu_s", NULL) > 0
                           ? num(mon, "output_tok_per_cpu_s", NULL) / num(moff, "output_tok_per_cpu_s", NULL)
                           : 0;
        double s_steps = num(mon, "steps", NULL) > 0 ? num(moff, "steps", NULL) / num(mon, "steps", NULL) : 0;
        cJSON_AddNumberToObject(wj, "speedup_throughput", s_tp);
        cJSON_AddNumberToObject(wj, "speedup_latency", s_lat);
        cJSON_AddNumberToObject(wj, "speedup_cpu_time", s_cpu);
        cJSON_AddNumberToObject(wj, "step_reduction", s_steps);
        if (a.temperature == 0) {
            bool same = true;
            for (int i = 0; i < a.n; i++)
                same &= res[0][w].req[i].tokens == res[1][w].req[i].tokens &&
                        !memcmp(res[0][w].req[i].ids, res[1][w].req[i].ids,
                                sizeof(int32_t) * (size_t)res[0][w].req[i].tokens);
            cJSON_AddBoolToObject(wj, "greedy_tokens_identical", same);
        }
        speculated |= num(mon, "spec_drafts", NULL) > 0;
        print_row(name, "off", moff);
        print_row(name, "on", mon);
        printf("%-11s speedup: throughput %.2fx, mean latency %.2fx, CPU time %.2fx; %.2fx fewer steps\n", name, s_tp,
               s_lat, s_cpu, s_steps);
    }
    cJSON_AddBoolToObject(root, "engine_speculated", speculated);
    if (!speculated)
        printf("note: the engine made no proposal (nothing matched, or an engine without speculation): the 'on' "
               "rows ran as 'off' did\n");
    int rc = 0;
    if (a.result_file) {
        char *text = cJSON_Print(root);
        FILE *f = text ? fopen(a.result_file, "w") : NULL;
        bool ok = f && fputs(text, f) >= 0 && fputc('\n', f) >= 0;
        if (f && fclose(f) != 0) ok = false;
        if (ok) printf("wrote %s\n", a.result_file);
        else fprintf(stderr, "g4-bench-spec: cannot write %s\n", a.result_file);
        rc = ok ? 0 : 1;
        cJSON_free(text);
    }
    cJSON_Delete(root);
    free(ids);
    free(reqs);
    return rc;
}
