/* main.c — g4-bench-serve: the serving benchmark client. Builds a dataset (random token ids or
 * ShareGPT), an arrival schedule (request rate with gamma burstiness, max concurrency), runs
 * warm-up requests that are not counted, then the measured load over the OpenAI HTTP API, the
 * native gRPC Generate API (--backend grpc) or straight into the engine (--offline), and prints vLLM's result table, optionally a roofline
 * report, and the result JSON (--result-file). Flag names follow `vllm bench serve`.
 * Not here: the metrics math (metrics.c), transports (driver_*.c), accounting (roofline.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arrival.h"
#include "dataset.h"
#include "driver.h"
#include "report.h"
#include "roofline.h"
#include "server/spec_config_json.h"
#include "server/stack.h"

typedef struct args {
    const char *backend, *base_url, *host, *endpoint, *model, *api_key, *dataset, *dataset_path, *tokenizer;
    const char *goodput, *pcts, *result_file, *model_config, *engine_backend, *spec_config;
    int port, num_prompts, num_warmups, input_len, output_len, prefix_len, id_min, sharegpt_output_len;
    int max_concurrency, offline, roofline, device, max_num_seqs, max_batched, max_model_len, kv_shared;
    long vocab;
    double rate, burstiness, range_ratio, temperature, timeout;
    unsigned long long seed;
} args;

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: g4-bench-serve [flags]     (vLLM `bench serve` flag names; docs/benchmarks.md)\n"
        "Target\n"
        "  --backend openai|openai-chat|grpc  /v1/completions (default), /v1/chat/completions, or the native\n"
        "                              gRPC g4serve.v1.G4Serve/Generate (%s)\n"
        "  --base-url URL | --host H --port P  server (default http://127.0.0.1:8000; grpc: 127.0.0.1:8001,\n"
        "                              --base-url HOST:PORT)\n"
        "  --endpoint PATH             default /v1/completions or /v1/chat/completions\n"
        "  --model NAME                'model' field (HTTP); with --offline the checkpoint directory\n"
        "  --api-key KEY               Authorization: Bearer KEY\n"
        "  --offline                   run the load in-process on the engine (no HTTP); without --model a tiny\n"
        "                              random model is written to a temporary directory\n"
        "  --engine-backend cpu|cuda   offline compute backend (default cpu); --max-num-seqs N (64),\n"
        "                              --max-num-batched-tokens N (512), --max-model-len N (4096),\n"
        "                              --speculative-config JSON (vLLM's form, as g4serve; default off)\n"
        "Dataset\n"
        "  --dataset-name random|sharegpt  (default random)   --dataset-path FILE (ShareGPT JSON)\n"
        "  --num-prompts N (1000)   --seed N (0)   --tokenizer tokenizer.json (ShareGPT, chat + random)\n"
        "  --random-input-len N (1024)  --random-output-len N (128)  --random-range-ratio R (0)\n"
        "  --random-prefix-len N (0)    --random-vocab-size N (262144, or the tokenizer's)  --random-id-min N (256)\n"
        "  --sharegpt-output-len N      fixed output length instead of the reference answer's\n"
        "Load\n"
        "  --request-rate R (inf)  --burstiness B (1 = Poisson)  --max-concurrency N  --num-warmups N (1)\n"
        "  --temperature T (0)  --timeout S (per request, 0 = none)\n"
        "Report\n"
        "  --goodput 'ttft:MS tpot:MS e2el:MS'  --metric-percentiles 90,99  --result-file FILE.json\n"
        "  --roofline                  measure copy bandwidth and cuBLAS BF16 TFLOP/s on --device N (0) and print\n"
        "                              decode / prefill as fractions of their rooflines (needs a GPU and the\n"
        "                              model geometry: --model-config config.json, or the --offline model)\n"
        "  --kv-shared-global          count one stored KV tensor on k_eq_v global layers (docs/model-spec.md §4)\n",
#ifdef G4_BENCH_GRPC
        "built in"
#else
        "not built into this binary"
#endif
    );
}

static int parse(args *a, int argc, char **argv) {
    *a = (args){.backend = "openai",
                .host = "127.0.0.1",
                .dataset = "random",
                .num_prompts = 1000,
                .num_warmups = 1,
                .input_len = 1024,
                .output_len = 128,
                .id_min = 256,
                .burstiness = 1.0,
                .engine_backend = "cpu",
                .max_num_seqs = 64,
                .max_batched = 512,
                .max_model_len = 4096,
                .pcts = "90,99"};
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            exit(0);
        }
        int *flag = !strcmp(f, "--offline")            ? &a->offline
                    : !strcmp(f, "--roofline")         ? &a->roofline
                    : !strcmp(f, "--kv-shared-global") ? &a->kv_shared
                                                       : NULL;
        if (flag) {
            *flag = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "g4-bench-serve: %s needs a value (or is unknown; see --help)\n", f);
            return -1;
        }
        const char *v = argv[++i];
        char *end = NULL;
#define S(name, field) else if (!strcmp(f, name)) a->field = v
#define I(name, field) else if (!strcmp(f, name)) a->field = (int)strtol(v, &end, 10)
#define D(name, field) else if (!strcmp(f, name)) a->field = strtod(v, &end)
        if (0) {
        }
        S("--backend", backend);
        S("--base-url", base_url);
        S("--host", host);
        S("--endpoint", endpoint);
        S("--model", model);
        S("--api-key", api_key);
        S("--dataset-name", dataset);
        S("--dataset-path", dataset_path);
        S("--tokenizer", tokenizer);
        S("--goodput", goodput);
        S("--metric-percentiles", pcts);
        S("--result-file", result_file);
        S("--model-config", model_config);
        S("--engine-backend", engine_backend);
        S("--speculative-config", spec_config);
        I("--port", port);
        I("--num-prompts", num_prompts);
        I("--num-warmups", num_warmups);
        I("--random-input-len", input_len);
        I("--random-output-len", output_len);
        I("--random-prefix-len", prefix_len);
        I("--random-id-min", id_min);
        I("--sharegpt-output-len", sharegpt_output_len);
        I("--max-concurrency", max_concurrency);
        I("--device", device);
        I("--max-num-seqs", max_num_seqs);
        I("--max-num-batched-tokens", max_batched);
        I("--max-model-len", max_model_len);
        D("--burstiness", burstiness);
        D("--random-range-ratio", range_ratio);
        D("--temperature", temperature);
        D("--timeout", timeout);
        else if (!strcmp(f, "--request-rate")) a->rate = !strcmp(v, "inf") ? 0 : strtod(v, &end);
        else if (!strcmp(f, "--seed")) a->seed = strtoull(v, &end, 10);
        else if (!strcmp(f, "--random-vocab-size")) a->vocab = strtol(v, &end, 10); else {
            fprintf(stderr, "g4-bench-serve: unknown flag %s (see --help)\n", f);
            return -1;
        }
        if (end && *end) {
            fprintf(stderr, "g4-bench-serve: %s: '%s' is not a number\n", f, v);
            return -1;
        }
    }
    if (a->num_prompts < 1 || a->num_warmups < 0 || a->max_concurrency < 0 || !(a->burstiness > 0) || a->rate < 0) {
        fprintf(stderr, "g4-bench-serve: need --num-prompts >= 1, --num-warmups >= 0, --max-concurrency >= 0, "
                        "--burstiness > 0, --request-rate >= 0\n");
        return -1;
    }
    return 0;
}

/* Decode and prefill of the measured run as fractions of the rooflines of this GPU. */
static void roofline_report(const args *a, const g4_config *cfg, const g4_bench_metrics *m,
                            const g4_bench_dataset *ds) {
    printf("%s\n", "==================== Roofline ====================");
    g4_hw_peak hw;
    g4_error err = {{0}};
    if (g4_hw_measure(a->device, &hw, &err) < 0) {
        printf("%s\n", err.msg);
        return;
    }
    printf("%-40s %s\n", "Device:", hw.device);
    printf("%-40s %-10.1f\n", "Copy bandwidth, measured (GB/s):", hw.copy_bytes_per_s / 1e9);
    printf("%-40s %-10.1f\n", "BF16 GEMM, measured (TFLOP/s):", hw.bf16_flops_per_s / 1e12);
    if (!cfg) {
        printf("no model geometry (--model-config config.json): decode / prefill fractions not computed\n");
        return;
    }
    double in = 0, out = 0;
    for (int i = 0; i < ds->n; i++) in += ds->items[i].prompt_len, out += ds->items[i].output_len;
    in /= ds->n, out /= ds->n;
    int batch = a->max_concurrency > 0 && a->max_concurrency < a->num_prompts ? a->max_concurrency : a->num_prompts;
    if (m->max_concurrent_requests > 0 && m->max_concurrent_requests < batch) batch = m->max_concurrent_requests;
    long ctx = (long)(in + out / 2);
    double w, kv, bytes = g4_roofline_decode_bytes(cfg, batch, ctx, 2, a->kv_shared, &w, &kv);
    double t_roof = bytes / hw.copy_bytes_per_s;
    printf("Decode step at batch %d, context %ld: %.2f GB weights + %.2f GB KV\n", batch, ctx, w / 1e9, kv / 1e9);
    printf("%-40s %-10.3f\n", "Roofline step time (ms):", t_roof * 1e3);
    printf("%-40s %-10.3f\n", "Measured mean TPOT (ms):", m->tpot.mean);
    if (m->tpot.mean > 0)
        printf("%-40s %-10.1f\n", "Decode fraction of roofline (%):", 100 * t_roof * 1e3 / m->tpot.mean);
    double flops = g4_roofline_prefill_flops(cfg, (long)in, NULL, NULL);
    double t_pre = flops / hw.bf16_flops_per_s;
    printf("Prefill of %.0f tokens: %.3f TFLOP\n", in, flops / 1e12);
    printf("%-40s %-10.3f\n", "Roofline prefill time (ms):", t_pre * 1e3);
    printf("%-40s %-10.3f\n", "Measured median TTFT (ms):", m->ttft.median);
    if (m->ttft.median > 0)
        printf("%-40s %-10.1f\n", "Prefill fraction of roofline (%):", 100 * t_pre * 1e3 / m->ttft.median);
}

/* Offline: the model stack g4serve runs (stack.h) on a given checkpoint or the tiny random one in a
 * temporary directory; token ids in, ids out (no tokenizer). */
static int offline_open(g4_stack **st, const args *a, g4_error *err) {
    g4_stack_opts so;
    g4_stack_opts_default(&so);
    so.model_dir = a->model;
    so.no_tokenizer = true;
    so.backend = a->engine_backend;
    so.model.max_seqs = a->max_num_seqs;
    so.model.max_step_tokens = a->max_batched;
    so.model.max_model_len = a->max_model_len;
    so.max_waiting = a->num_prompts + a->num_warmups + 16;
    so.prefix_cache = 0; /* unique random prompts; keep warm-ups from seeding the cache */
    static char draft_dir[4096];
    if (g4_spec_config_from_json(a->spec_config, &so.spec, draft_dir, sizeof draft_dir, err) < 0 ||
        g4_spec_config_check_draft(&so.spec, err) < 0)
        return g4_fail_prefix(err, "--speculative-config");
    return g4_stack_open(st, &so, err) < 0 ? g4_fail_prefix(err, "offline") : 0;
}

static int run_load(const args *a, const g4_http_target *t, const g4_grpc_target *gt, g4_stack *off, g4_bench_load *l,
                    g4_error *err) {
    if (a->offline) return g4_drive_engine(off->engine, l, err);
#ifdef G4_BENCH_GRPC
    if (gt->target) return g4_drive_grpc(gt, l, err);
#else
    (void)gt;
#endif
    return g4_drive_http(t, l, err);
}

int main(int argc, char **argv) {
    args a;
    if (parse(&a, argc, argv) < 0) return 2;
    g4_error err = {{0}};
    bool chat = !strcmp(a.backend, "openai-chat"), grpc = !strcmp(a.backend, "grpc");
#ifndef G4_BENCH_GRPC
    if (grpc && !a.offline) {
        fprintf(stderr, "g4-bench-serve: --backend grpc: not built into this binary (needs libgrpc-dev, "
                        "libprotobuf-c-dev and protoc-c at build time; use --backend openai or openai-chat)\n");
        return 2;
    }
#endif
    if (!chat && !grpc && strcmp(a.backend, "openai")) {
        fprintf(stderr, "g4-bench-serve: --backend '%s': expected openai, openai-chat or grpc\n", a.backend);
        return 2;
    }
    double pcts[G4_BENCH_MAX_PCT];
    int n_pcts = g4_bench_pcts_parse(a.pcts, pcts, G4_BENCH_MAX_PCT, &err);
    g4_bench_slo slo = {0};
    if (n_pcts < 0 || (a.goodput && g4_bench_slo_parse(a.goodput, &slo, &err) < 0)) {
        fprintf(stderr, "g4-bench-serve: %s\n", err.msg);
        return 2;
    }
    g4_tokenizer *tok = NULL;
    if (a.tokenizer && g4_tokenizer_load(a.tokenizer, &tok, &err) < 0) {
        fprintf(stderr, "g4-bench-serve: --tokenizer: %s\n", err.msg);
        return 1;
    }
    /* warm-up requests come first in the dataset and are never measured */
    int total = a.num_prompts + a.num_warmups, rc = 1;
    g4_bench_dataset ds = {0};
    if (!strcmp(a.dataset, "random")) {
        g4_random_opts ro = {.input_len = a.input_len,
                             .output_len = a.output_len,
                             .range_ratio = a.range_ratio,
                             .prefix_len = a.prefix_len,
                             .id_min = a.id_min,
                             .seed = a.seed,
                             .vocab = a.vocab ? a.vocab
                                      : tok   ? g4_tokenizer_n_vocab(tok)
                                              : 262144};
        if (g4_dataset_random(&ds, total, &ro, &err) < 0) goto fail;
    } else if (!strcmp(a.dataset, "sharegpt")) {
        if (!a.dataset_path) {
            g4_fail(&err, "--dataset-name sharegpt needs --dataset-path FILE");
            goto fail;
        }
        if (g4_dataset_sharegpt(&ds, a.dataset_path, total, a.sharegpt_output_len, tok, a.seed, &err) < 0) goto fail;
    } else {
        g4_fail(&err, "--dataset-name '%s': expected random or sharegpt", a.dataset);
        goto fail;
    }
    /* HTTP: a base URL; gRPC: a HOST:PORT target (a URL's scheme and trailing slash are dropped) */
    char base[512];
    const char *url = a.base_url;
    if (grpc && url && strstr(url, "://")) url = strstr(url, "://") + 3;
    if (url) snprintf(base, sizeof base, "%s", url);
    else snprintf(base, sizeof base, grpc ? "%s:%d" : "http://%s:%d", a.host, a.port ? a.port : grpc ? 8001 : 8000);
    size_t bl = strlen(base);
    if (bl && base[bl - 1] == '/') base[bl - 1] = 0;
    g4_http_target t = {.base_url = base,
                        .endpoint = a.endpoint ? a.endpoint
                                    : chat     ? "/v1/chat/completions"
                                               : "/v1/completions",
                        .chat = chat,
                        .model = a.offline ? NULL : a.model,
                        .api_key = a.api_key,
                        .timeout_s = a.timeout,
                        .tok = tok};
    g4_grpc_target gt = {.target = grpc ? base : NULL, .model = a.model, .timeout_s = a.timeout};
    if (grpc) t.endpoint = "/g4serve.v1.G4Serve/Generate";
    g4_stack *off = NULL;
    if (a.offline && offline_open(&off, &a, &err) < 0) goto fail;
    double *send_at = calloc((size_t)total, sizeof *send_at);
    g4_bench_load warm = {.ds = &ds,
                          .n = a.num_warmups,
                          .first = 0,
                          .send_at = send_at,
                          .max_concurrency = a.max_concurrency,
                          .temperature = a.temperature};
    if (a.num_warmups > 0) {
        fprintf(stderr, "g4-bench-serve: %d warm-up request(s)\n", a.num_warmups);
        if (run_load(&a, &t, &gt, off, &warm, &err) < 0) goto done;
        for (int i = 0; i < warm.n; i++)
            if (!warm.rec[i].ok) {
                g4_fail(&err, "warm-up request failed: %s", warm.errors[i] ? warm.errors[i] : "?");
                goto done;
            }
    }
    g4_rng rng;
    g4_rng_seed(&rng, a.seed ^ 0x5eedULL);
    g4_arrival_schedule(send_at, a.num_prompts, a.rate, a.burstiness, &rng);
    g4_bench_load load = {.ds = &ds,
                          .n = a.num_prompts,
                          .first = a.num_warmups,
                          .send_at = send_at,
                          .max_concurrency = a.max_concurrency,
                          .temperature = a.temperature};
    fprintf(stderr, "g4-bench-serve: %d requests, rate %s, burstiness %g, max concurrency %d, %s\n", a.num_prompts,
            a.rate > 0 ? "finite" : "inf", a.burstiness, a.max_concurrency,
            a.offline ? "offline (in-process engine)" : base);
    if (run_load(&a, &t, &gt, off, &load, &err) < 0) goto done_load;
    g4_bench_metrics m;
    if (g4_bench_metrics_compute(load.rec, load.n, load.duration, a.goodput ? &slo : NULL, pcts, n_pcts, &m, &err) < 0)
        goto done_load;
    g4_bench_run_info ri = {.backend = a.offline ? "offline" : a.backend,
                            .base_url = a.offline ? NULL : base,
                            .endpoint = a.offline ? NULL : t.endpoint,
                            .model = a.model,
                            .dataset = a.dataset,
                            .request_rate = a.rate,
                            .burstiness = a.burstiness,
                            .max_concurrency = a.max_concurrency,
                            .num_prompts = a.num_prompts,
                            .num_warmups = a.num_warmups,
                            .seed = a.seed};
    g4_bench_print_table(stdout, &m, &ri);
    for (int i = 0, shown = 0; i < load.n && shown < 3; i++)
        if (load.errors[i]) fprintf(stderr, "g4-bench-serve: request %d failed: %s\n", i, load.errors[i]), shown++;
    if (a.roofline) {
        g4_config cfg, *pc = NULL;
        char path[G4_STACK_PATH_MAX + 16];
        const char *cp = a.model_config;
        if (!cp && a.offline) {
            snprintf(path, sizeof path, "%s/config.json", off->dir);
            cp = path;
        }
        if (cp && g4_config_load(&cfg, cp, &err) == 0) pc = &cfg;
        else if (cp) fprintf(stderr, "g4-bench-serve: --model-config: %s\n", err.msg);
        roofline_report(&a, pc, &m, &ds);
    }
    if (a.result_file) {
        cJSON *o = g4_bench_result_json(&m, &ri, load.rec, load.n, load.errors);
        if (!o || g4_bench_write_json(a.result_file, o, &err) < 0) {
            cJSON_Delete(o);
            goto done_load;
        }
        cJSON_Delete(o);
    }
    rc = m.completed > 0 ? 0 : 1;
    if (!m.completed) g4_fail(&err, "no request completed");
done_load:
    g4_bench_records_free(&load);
    free(load.rec);
    free(load.errors);
done:
    g4_bench_records_free(&warm);
    free(warm.rec);
    free(warm.errors);
    free(send_at);
    g4_stack_close(off);
fail:
    if (rc) fprintf(stderr, "g4-bench-serve: %s\n", err.msg);
    g4_dataset_free(&ds);
    g4_tokenizer_free(tok);
    return rc;
}
