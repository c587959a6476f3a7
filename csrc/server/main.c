/* main.c - g4serve: the OpenAI-compatible HTTP server (NIM-style) on one model.
 *
 * Reads NIM_* environment variables, then command-line flags (flags win), opens the HTTP and
 * gRPC ports at once (/v1/health/live = 200), builds the model stack (stack.h: model, tokenizer,
 * engine, warm-up) and only then reports ready (/v1/health/ready = 200). Without --model it
 * serves the embedded default model (default_model.h) written to --default-model-dir if missing.
 * Runs until SIGINT / SIGTERM, then drains (drain() below: readiness 503 / NOT_SERVING, new work
 * refused, in-flight streams finish within --drain-timeout, the rest cancelled with a clean end)
 * and exits 0; a second signal during the drain exits at once.
 * Not here: building the model stack (stack.c), request handling (http/, grpc/). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/http/http_server.h"
#include "server/spec_config_json.h"
#include "model/vision.h"
#include "server/stack.h"
#ifdef G4_HAVE_GRPC
#include "server/grpc/grpc_server.h"
#endif

typedef struct opts {
    g4_http_config http;
    const char *model, *default_model_dir, *tokenizer, *backend;
    int max_model_len, max_num_seqs, max_queue, max_batched_tokens, tp;
    int max_running_per_client;  /* -1 = half of max_num_seqs */
    int grpc_port;               /* -1 = no gRPC server */
    int prefix_cache;            /* -1 = engine default */
    double ready_delay_s;        /* testing aid: stay not-ready this long after warm-up */
    double drain_timeout_s;      /* grace period for in-flight work after SIGTERM */
    const char *spec_json;       /* --speculative-config / G4_SPECULATIVE_CONFIG text */
    const char *spec_source;     /* which of the two it came from (for errors) */
    g4_spec_config spec;         /* parsed from spec_json */
    char spec_draft_dir[G4_STACK_PATH_MAX];
    char names_buf[1024];
    bool names_given;            /* --served-model-name or NIM_SERVED_MODEL_NAME was set */
} opts;

static void usage(FILE *f) {
    fprintf(f,
            "usage: g4serve [flags]\n"
            "OpenAI-compatible HTTP server for Gemma 4 (NIM-style). Flags override NIM_* environment variables.\n"
            "\n"
            "Model\n"
            "  --model DIR                 Hugging Face Gemma 4 checkpoint directory (env NIM_MODEL_PATH, legacy\n"
            "                              NIM_MODEL_NAME; only local directories). Default: the embedded tiny model.\n"
            "  --default-model-dir DIR     where the embedded default model (tiny-dense, seed 1, with its test\n"
            "                              tokenizer.json) is written if missing and served when --model is not\n"
            "                              given (default ./models/tiny-dense)\n"
            "  --tokenizer FILE            tokenizer.json (default: the model directory's tokenizer.json; without\n"
            "                              one g4serve refuses to start)\n"
            "  --backend cpu|cuda          compute backend (default cpu)\n"
            "  --served-model-name N[,A..] name(s) the API answers to; the first is reported (env\n"
            "                              NIM_SERVED_MODEL_NAME; default: g4serve-tiny, or the model directory name)\n"
            "  --max-model-len N           prompt + completion limit in tokens (env NIM_MAX_MODEL_LEN; default 4096\n"
            "                              or the model's limit, whichever is smaller)\n"
            "  --max-num-seqs N            concurrently running sequences (env NIM_MAX_NUM_SEQS; default 64)\n"
            "  --max-num-batched-tokens N  tokens per engine step (env NIM_MAX_NUM_BATCHED_TOKENS; default 512)\n"
            "  --max-queue N               waiting requests beyond which requests get 429 (default 1024)\n"
            "  --max-running-per-client N  fair admission: a client (peer address, or --trust-client-id) with N\n"
            "                              running sequences (a request's n choices count n) gets no more while\n"
            "                              another client below N waits, and gives its newest back to make room\n"
            "                              for it; alone it fills every slot (default half of --max-num-seqs;\n"
            "                              0 = off, first come first served)\n"
            "  --trust-client-id           name clients by the x-g4-client-id header / gRPC metadata (set by a\n"
            "                              gateway in front) instead of the peer address (default off: clients\n"
            "                              could pick their own share)\n"
            "  --enable-prefix-caching / --no-enable-prefix-caching\n"
            "                              reuse KV blocks of shared prompt prefixes (env NIM_ENABLE_KV_CACHE_REUSE;\n"
            "                              default on)\n"
            "  --tensor-parallel-size N    split the model over N ranks: N GPUs with --backend cuda (NCCL), N threads\n"
            "                              with cpu (env NIM_TENSOR_PARALLEL_SIZE; default 1)\n"
            "  --speculative-config JSON   speculative decoding in vLLM's form (env G4_SPECULATIVE_CONFIG; default\n"
            "                              off): {\"method\":\"ngram\",\"num_speculative_tokens\":4,\n"
            "                              \"prompt_lookup_max\":4,\"prompt_lookup_min\":2} or a draft checkpoint\n"
            "                              {\"model\":\"DIR\",\"num_speculative_tokens\":4}; optional\n"
            "                              \"disable_by_batch_size\":N (docs/operations.md)\n"
            "\n"
            "HTTP\n"
            "  --host ADDR                 IPv4 listen address of HTTP and gRPC (default 0.0.0.0; deploy/run-local.sh\n"
            "                              passes 127.0.0.1)\n"
            "  --api-key KEY               require 'Authorization: Bearer KEY' on every API route and gRPC metadata\n"
            "                              'authorization: Bearer KEY' on every gRPC method but health (env\n"
            "                              VLLM_API_KEY, preferred: a flag shows in ps). Default: no key\n"
            "  --protect-metrics           with a key: /metrics and /v1/metrics want it too (default open)\n"
            "  --drain-timeout S           on SIGTERM/SIGINT let in-flight requests finish for up to S seconds, then\n"
            "                              cancel them (env G4_DRAIN_TIMEOUT; default 30, Kubernetes'\n"
            "                              terminationGracePeriodSeconds); a second signal exits at once\n"
            "  --port N                    listen port (env NIM_SERVER_PORT; default 8000; 0 = any free port)\n"
            "  --max-body-bytes N          request body limit, larger bodies get 413 (default 67108864)\n"
            "  --allowed-media-domains L   comma-separated host names image_url http(s) URLs may name\n"
            "                              (default: none; data: URLs are always read)\n"
            "  --allowed-local-media-path D  file: image URLs are read below directory D (default: none)\n"
            "  --max-image-bytes N         an image's encoded size limit (default 20971520)\n"
            "  --max-image-pixels N        an image's decoded width x height limit (default 40000000)\n"
            "  --media-fetch-timeout S     seconds for one http(s) image fetch (default 10)\n"
            "  --connection-timeout S      close idle connections after S seconds (default 60; 0 = never)\n"
            "  --http-threads N            HTTP polling threads; a big request stalls only its own thread's\n"
            "                              connections (default 4)\n"
            "  --max-connections N         open HTTP connections at most (default: the open-file limit less 1024)\n"
            "  --max-connections-per-ip N  open HTTP connections per client address (default 0 = no cap; behind a\n"
            "                              gateway every client shares its address)\n"
            "  --read-timeout S            a request's body must arrive within S seconds of its headers, else the\n"
            "                              connection is closed (default 60; 0 = never)\n"
            "  --stream-stall-timeout S    cancel a stream (HTTP or gRPC) whose client reads nothing for S seconds\n"
            "                              (default 60; 0 = never)\n"
            "  --max-json-values N         JSON values one body may hold (memory of the parsed tree; default\n"
            "                              1048576), more get 413\n"
            "  --body-budget-bytes N       request-body bytes held at once by all connections; beyond it 503\n"
            "                              (default 1073741824)\n"
            "  --keepalive-interval S      SSE keep-alive comment after S seconds without data (default 5)\n"
            "  --request-timeout S         cancel a generation running longer than S seconds (default 0 = never)\n"
            "  --no-reasoning-content      emit only `reasoning`, not the older `reasoning_content` alias\n"
            "  --log-requests              one log line per request (env NIM_DISABLE_LOG_REQUESTS=0)\n"
            "  --debug-ready-delay S       testing aid: report not-ready for S more seconds after warm-up\n"
            "  --help                      this text\n"
            "\n"
            "gRPC (native g4serve.v1, KServe v2 subset, grpc.health.v1; docs/api-grpc.md)\n"
            "  --grpc-port N               listen port (env NIM_GRPC_API_PORT; default 8001; 0 = any free port)\n"
            "  --no-grpc                   do not start the gRPC server\n"
            "\n"
            "Also read (accepted, logged): NIM_LOG_LEVEL, NIM_JSONL_LOGGING, NIM_CACHE_PATH, NIM_MODEL_PROFILE,\n"
            "NIM_GPU_MEMORY_UTILIZATION, NIM_KVCACHE_PERCENT, NIM_PASSTHROUGH_ARGS, NIM_HEALTH_PORT (not\n"
            "supported: health is on the API port). Unknown NIM_* variables are logged and ignored.\n"
            "Endpoints: /v1/chat/completions /v1/completions /v1/models /v1/health/live /v1/health/ready\n"
            "/v1/metrics /metrics /v1/version /tokenize /detokenize (docs/api-http.md).\n");
}

static int parse_int(const char *flag, const char *v, int lo, int *out) {
    char *end;
    errno = 0;
    long x = strtol(v ? v : "", &end, 10);
    if (!v || !*v || *end || errno || x < lo || x > 1 << 30) {
        fprintf(stderr, "g4serve: %s: expected an integer >= %d, got '%s'\n", flag, lo, v ? v : "");
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_double(const char *flag, const char *v, double *out) {
    char *end;
    double x = strtod(v ? v : "", &end);
    if (!v || !*v || *end || x < 0) {
        fprintf(stderr, "g4serve: %s: expected a number >= 0, got '%s'\n", flag, v ? v : "");
        return -1;
    }
    *out = x;
    return 0;
}

static void set_names(opts *o, const char *list) {
    o->names_given = true;
    snprintf(o->names_buf, sizeof o->names_buf, "%s", list);
    o->http.n_served_names = 0;
    for (char *save = NULL, *t = strtok_r(o->names_buf, ",", &save); t && o->http.n_served_names < G4_HTTP_MAX_NAMES;
         t = strtok_r(NULL, ",", &save))
        if (*t) o->http.served_names[o->http.n_served_names++] = t;
}

static int read_env(opts *o) {
    extern char **environ;
    static const char *const known[] = {"NIM_SERVER_PORT",
                                        "NIM_SERVED_MODEL_NAME",
                                        "NIM_MODEL_PATH",
                                        "NIM_MODEL_NAME",
                                        "NIM_MAX_MODEL_LEN",
                                        "NIM_MAX_NUM_SEQS",
                                        "NIM_MAX_NUM_BATCHED_TOKENS",
                                        "NIM_ENABLE_KV_CACHE_REUSE",
                                        "NIM_TENSOR_PARALLEL_SIZE",
                                        "NIM_GRPC_API_PORT",
                                        "NIM_DISABLE_LOG_REQUESTS",
                                        "NIM_LOG_LEVEL",
                                        "NIM_JSONL_LOGGING",
                                        "NIM_CACHE_PATH",
                                        "NIM_MODEL_PROFILE",
                                        "NIM_GPU_MEMORY_UTILIZATION",
                                        "NIM_KVCACHE_PERCENT",
                                        "NIM_PASSTHROUGH_ARGS",
                                        "NIM_HEALTH_PORT",
                                        "NIM_PIPELINE_PARALLEL_SIZE"};
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "NIM_", 4)) continue;
        size_t n = strcspn(*e, "=");
        bool k = false;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            k |= strlen(known[i]) == n && !strncmp(*e, known[i], n);
        if (!k) fprintf(stderr, "g4serve: ignoring unknown environment variable %.*s\n", (int)n, *e);
    }
    const char *v;
    if ((v = getenv("NIM_SERVER_PORT")) && parse_int("NIM_SERVER_PORT", v, 0, &o->http.port) < 0) return -1;
    if ((v = getenv("NIM_GRPC_API_PORT")) && parse_int("NIM_GRPC_API_PORT", v, 0, &o->grpc_port) < 0) return -1;
    if ((v = getenv("NIM_SERVED_MODEL_NAME")) && *v) set_names(o, v);
    if ((v = getenv("NIM_MODEL_NAME")) && *v) o->model = v;
    if ((v = getenv("NIM_MODEL_PATH")) && *v) o->model = v;
    if (o->model && strstr(o->model, "://")) {
        fprintf(stderr, "g4serve: NIM_MODEL_PATH '%s': only local directories can be loaded (no downloads)\n",
                o->model);
        return -1;
    }
    if ((v = getenv("NIM_MAX_MODEL_LEN")) && parse_int("NIM_MAX_MODEL_LEN", v, 1, &o->max_model_len) < 0) return -1;
    if ((v = getenv("NIM_MAX_NUM_SEQS")) && parse_int("NIM_MAX_NUM_SEQS", v, 1, &o->max_num_seqs) < 0) return -1;
    if ((v = getenv("NIM_MAX_NUM_BATCHED_TOKENS")) &&
        parse_int("NIM_MAX_NUM_BATCHED_TOKENS", v, 1, &o->max_batched_tokens) < 0)
        return -1;
    if ((v = getenv("NIM_TENSOR_PARALLEL_SIZE")) && parse_int("NIM_TENSOR_PARALLEL_SIZE", v, 1, &o->tp) < 0) return -1;
    if ((v = getenv("NIM_ENABLE_KV_CACHE_REUSE"))) o->prefix_cache = strcmp(v, "0") && strcasecmp(v, "false");
    if ((v = getenv("VLLM_API_KEY")) && *v) o->http.api_key = v;
    if ((v = getenv("G4_DRAIN_TIMEOUT")) && parse_double("G4_DRAIN_TIMEOUT", v, &o->drain_timeout_s) < 0) return -1;
    if ((v = getenv("G4_SPECULATIVE_CONFIG"))) o->spec_json = v, o->spec_source = "G4_SPECULATIVE_CONFIG";
    if ((v = getenv("NIM_DISABLE_LOG_REQUESTS"))) o->http.log_requests = !strcmp(v, "0") || !strcasecmp(v, "false");
    static const char *const logged[] = {"NIM_LOG_LEVEL",
                                         "NIM_JSONL_LOGGING",
                                         "NIM_CACHE_PATH",
                                         "NIM_MODEL_PROFILE",
                                         "NIM_GPU_MEMORY_UTILIZATION",
                                         "NIM_KVCACHE_PERCENT",
                                         "NIM_PASSTHROUGH_ARGS",
                                         "NIM_HEALTH_PORT",
                                         "NIM_PIPELINE_PARALLEL_SIZE"};
    for (size_t i = 0; i < sizeof logged / sizeof logged[0]; i++)
        if ((v = getenv(logged[i])))
            fprintf(stderr, "g4serve: %s=%s accepted; it has no effect in this build\n", logged[i], v);
    return 0;
}

/* Numeric flags with their ranges: one table instead of a branch each. Returns 1 when `a` is
 * one of them (*i advanced past the value; *i = -1 when the value is bad), 0 when it is not. */
static int take_number(opts *o, const char *a, const char *v, int *i) {
    const struct {
        const char *flag;
        int lo, hi;
        int *dst;
    } ints[] = {
        {"--port", 0, 65535, &o->http.port},
        {"--grpc-port", 0, 65535, &o->grpc_port},
        {"--max-model-len", 1, 1 << 30, &o->max_model_len},
        {"--max-num-seqs", 1, 1 << 30, &o->max_num_seqs},
        {"--max-num-batched-tokens", 1, 1 << 30, &o->max_batched_tokens},
        {"--max-queue", 0, 1 << 30, &o->max_queue},
        {"--max-running-per-client", 0, 1 << 30, &o->max_running_per_client},
        {"--tensor-parallel-size", 1, 8, &o->tp},
        {"--connection-timeout", 0, 1 << 30, &o->http.connection_timeout_s},
        {"--http-threads", 1, 64, &o->http.n_threads},
        {"--max-connections", 1, 1 << 20, &o->http.max_connections},
        {"--max-connections-per-ip", 0, 1 << 20, &o->http.max_connections_per_ip},
    };
    const struct {
        const char *flag;
        double *dst;
    } doubles[] = {
        {"--keepalive-interval", &o->http.keepalive_s},    {"--debug-ready-delay", &o->ready_delay_s},
        {"--request-timeout", &o->http.request_timeout_s}, {"--drain-timeout", &o->drain_timeout_s},
        {"--read-timeout", &o->http.read_timeout_s},       {"--stream-stall-timeout", &o->http.stall_timeout_s},
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++)
        if (!strcmp(a, ints[k].flag)) {
            bool ok = parse_int(a, v, ints[k].lo, ints[k].dst) == 0 && *ints[k].dst <= ints[k].hi;
            if (!ok && *ints[k].dst > ints[k].hi) fprintf(stderr, "g4serve: %s: at most %d\n", a, ints[k].hi);
            *i = ok ? *i + 1 : -1;
            return 1;
        }
    for (size_t k = 0; k < sizeof doubles / sizeof doubles[0]; k++)
        if (!strcmp(a, doubles[k].flag)) {
            *i = parse_double(a, v, doubles[k].dst) == 0 ? *i + 1 : -1;
            return 1;
        }
    return 0;
}

/* 0 ok, 1 exit 0 (help), -1 error. */
static int parse_args(opts *o, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (!strcmp(a, name) && (i++, 1))
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "--enable-prefix-caching")) {
            o->prefix_cache = 1;
        } else if (!strcmp(a, "--no-enable-prefix-caching")) {
            o->prefix_cache = 0;
        } else if (!strcmp(a, "--no-reasoning-content")) {
            o->http.reasoning_content = false;
        } else if (!strcmp(a, "--trust-client-id")) {
            o->http.trust_client_id = true;
        } else if (!strcmp(a, "--protect-metrics")) {
            o->http.protect_metrics = true;
        } else if (!strcmp(a, "--log-requests")) {
            o->http.log_requests = true;
        } else if (!strcmp(a, "--no-grpc")) {
            o->grpc_port = -1;
        } else if (!v) {
            fprintf(stderr, "g4serve: unknown flag or missing value: %s (see --help)\n", a);
            return -1;
        } else if (ARG("--model")) {
            o->model = v;
        } else if (ARG("--default-model-dir")) {
            o->default_model_dir = v;
        } else if (ARG("--tokenizer")) {
            o->tokenizer = v;
        } else if (ARG("--backend")) {
            o->backend = v;
        } else if (ARG("--speculative-config")) {
            o->spec_json = v;
            o->spec_source = "--speculative-config";
        } else if (ARG("--served-model-name")) {
            set_names(o, v);
        } else if (ARG("--host")) {
            o->http.host = v;
        } else if (ARG("--api-key")) {
            o->http.api_key = v;
        } else if (ARG("--allowed-media-domains")) {
            g4_error derr = {{0}};
            if (g4_media_policy_add_domains(&o->http.media, v, &derr) < 0) {
                fprintf(stderr, "g4serve: %s\n", derr.msg);
                return -1;
            }
        } else if (ARG("--allowed-local-media-path")) {
            o->http.media.local_dir = v;
        } else if (ARG("--max-image-bytes")) {
            int n;
            if (parse_int(a, v, 1024, &n) < 0) return -1;
            o->http.media.max_bytes = (size_t)n;
        } else if (ARG("--max-image-pixels")) {
            int n;
            if (parse_int(a, v, 1, &n) < 0) return -1;
            o->http.max_image_pixels = n;
        } else if (ARG("--media-fetch-timeout")) {
            int n;
            if (parse_int(a, v, 1, &n) < 0) return -1;
            o->http.media.timeout_ms = 1000L * n;
        } else if (ARG("--max-body-bytes")) {
            int n;
            if (parse_int(a, v, 1024, &n) < 0) return -1;
            o->http.max_body_bytes = (size_t)n;
        } else if (ARG("--max-json-values")) {
            int n;
            if (parse_int(a, v, 16, &n) < 0) return -1;
            o->http.max_json_values = (size_t)n;
        } else if (ARG("--body-budget-bytes")) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(v, &end, 10);
            if (errno || end == v || *end || n < 1024 || v[0] == '-') {
                fprintf(stderr, "g4serve: --body-budget-bytes: expected a byte count >= 1024, got '%s'\n", v);
                return -1;
            }
            o->http.body_budget_bytes = (size_t)n;
        } else if (take_number(o, a, v, &i)) {
            if (i < 0) return -1;
        } else {
            fprintf(stderr, "g4serve: unknown flag: %s (see --help)\n", a);
            return -1;
        }
#undef ARG
    }
    if (o->tp != 1 && o->tp != 2 && o->tp != 4 && o->tp != 8) {
        fprintf(stderr, "g4serve: --tensor-parallel-size %d: expected 1, 2, 4 or 8\n", o->tp);
        return -1;
    }
    g4_error err = {{0}};
    if (g4_spec_config_from_json(o->spec_json, &o->spec, o->spec_draft_dir, sizeof o->spec_draft_dir, &err) < 0 ||
        g4_spec_config_check_draft(&o->spec, &err) < 0) {
        fprintf(stderr, "g4serve: %s: %s\n", o->spec_source, err.msg);
        return -1;
    }
    return 0;
}

/* --- the gRPC server, when this build has it (G4_HAVE_GRPC); a no-op otherwise ------------- */

static int start_grpc(const opts *o, const char *dir, void **out, g4_error *err) {
    *out = NULL;
    if (o->grpc_port < 0) return 0;
#ifdef G4_HAVE_GRPC
    g4_grpc_config gc;
    g4_grpc_config_default(&gc);
    gc.host = o->http.host;
    gc.port = o->grpc_port;
    gc.served_name = o->http.served_names[0];
    gc.stall_timeout_s = o->http.stall_timeout_s;
    gc.model_path = dir;
    gc.api_key = o->http.api_key;
    gc.trust_client_id = o->http.trust_client_id;
    g4_grpc_server *gs = g4_grpc_server_start(&gc, err);
    if (!gs) return g4_fail_prefix(err, "gRPC server");
    fprintf(stderr, "g4serve: gRPC on %s:%d\n", gc.host, g4_grpc_server_port(gs));
    printf("g4serve: grpc port %d\n", g4_grpc_server_port(gs));
    fflush(stdout);
    *out = gs;
#else
    (void)dir, (void)err;
    if (o->grpc_port != 8001)
        fprintf(stderr, "g4serve: this build has no gRPC server (libgrpc-dev, protobuf-c missing at build time)\n");
#endif
    return 0;
}

/* The largest patch-grid side the model's vision tower takes; 0 without a tower. */
static int model_vision_grid(g4_model *m) { return g4_model_vision(m) ? m->full_cfg.vision.pos_size : 0; }

/* After the engine exists and is warm: hand it over and report ready. */
static void grpc_ready(void *gs, const g4_stack *st, g4_metrics *metrics, const g4_http_config *hc) {
#ifdef G4_HAVE_GRPC
    if (!gs) return;
    g4_grpc_model gm = {.engine = st->engine,
                        .tok = st->tok,
                        .cfg = st->model->full_cfg,
                        .eo = st->eo,
                        .tp_size = st->tp_size,
                        .metrics = metrics,
                        .vision = hc->vision_grid > 0,
                        .image_limits = {.max_bytes = hc->media.max_bytes, .max_pixels = hc->max_image_pixels}};
    g4_grpc_server_attach(gs, &gm);
    g4_grpc_server_set_ready(gs, true);
#else
    (void)gs, (void)st, (void)metrics, (void)hc;
#endif
}

static void drain_grpc(void *gs) {
#ifdef G4_HAVE_GRPC
    if (gs) g4_grpc_server_drain(gs);
#else
    (void)gs;
#endif
}

static int grpc_in_flight(void *gs) {
#ifdef G4_HAVE_GRPC
    return gs ? g4_grpc_server_in_flight(gs) : 0;
#else
    (void)gs;
    return 0;
#endif
}

static void cancel_grpc(void *gs) {
#ifdef G4_HAVE_GRPC
    if (gs) g4_grpc_server_cancel_all(gs);
#else
    (void)gs;
#endif
}

static void stop_grpc(void *gs) {
#ifdef G4_HAVE_GRPC
    if (gs) g4_grpc_server_stop(gs);
#else
    (void)gs;
#endif
}

/* Waits until nothing is in flight on either protocol or `seconds` pass. A stop signal meanwhile
 * (the second one) ends the process at once: 128 + its number, as a shell reports it. */
static bool wait_in_flight(g4_http_server *srv, void *grpc, const sigset_t *sigs, double seconds) {
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (g4_http_server_in_flight(srv) + grpc_in_flight(grpc) == 0) return true;
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) * 1e-9 >= seconds) return false;
        struct timespec tick = {0, 50 * 1000000L};
        int sig = sigtimedwait(sigs, NULL, &tick);
        if (sig > 0) {
            fprintf(stderr, "g4serve: second signal %d during the drain, exiting now\n", sig);
            _exit(128 + sig);
        }
    }
}

/* The drain (docs/operations.md): refuse new work on both protocols while readiness reports 503 /
 * NOT_SERVING, let in-flight requests finish for up to drain_s, then cancel the rest: each stream
 * still ends cleanly (finish_reason "abort" and [DONE] / last message and status OK). */
static void drain(g4_http_server *srv, void *grpc, const sigset_t *sigs, double drain_s) {
    g4_http_server_drain(srv);
    drain_grpc(grpc);
    int n = g4_http_server_in_flight(srv) + grpc_in_flight(grpc);
    fprintf(stderr, "g4serve: draining %d request(s) for up to %.0f s\n", n, drain_s);
    if (wait_in_flight(srv, grpc, sigs, drain_s)) return;
    fprintf(stderr, "g4serve: drain timeout: cancelling %d request(s)\n",
            g4_http_server_in_flight(srv) + grpc_in_flight(grpc));
    g4_http_server_cancel_all(srv);
    cancel_grpc(grpc);
    if (!wait_in_flight(srv, grpc, sigs, 10.0))
        fprintf(stderr, "g4serve: requests still open 10 s after cancelling; closing their connections\n");
}

int main(int argc, char **argv) {
    opts o;
    memset(&o, 0, sizeof o);
    g4_http_config_default(&o.http);
    o.default_model_dir = "./models/tiny-dense";
    o.backend = "cpu";
    o.max_num_seqs = 64;
    o.max_queue = 1024;
    o.max_running_per_client = -1;
    o.tp = 1;
    o.grpc_port = 8001;
    o.prefix_cache = -1;
    o.drain_timeout_s = 30;
    if (read_env(&o) < 0) return 2;
    int pr = parse_args(&o, argc, argv);
    if (pr) return pr > 0 ? 0 : 2;

    /* Block the stop signals in every thread; main waits for them with sigwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    g4_error err = {{0}};
    const char *dir = o.model ? o.model : o.default_model_dir;
    if (o.model && !o.names_given) {
        const char *base = strrchr(dir, '/');
        base = base && base[1] ? base + 1 : dir;
        set_names(&o, base);
    }
    /* One set of metrics for both protocols, rendered by the HTTP server's /metrics. */
    g4_metrics *metrics = g4_metrics_create(o.http.served_names[0], 4096);
    if (!metrics) {
        fprintf(stderr, "g4serve: out of memory\n");
        return 1;
    }
    o.http.metrics = metrics;
    g4_http_server *srv = g4_http_server_start(&o.http, &err);
    if (!srv) {
        fprintf(stderr, "g4serve: %s\n", err.msg);
        g4_metrics_free(metrics);
        return 1;
    }
    fprintf(stderr, "g4serve: listening on http://%s:%d (live; loading %s)\n", o.http.host, g4_http_server_port(srv),
            dir);
    printf("g4serve: port %d\n", g4_http_server_port(srv));
    fflush(stdout);
    void *grpc = NULL; /* g4_grpc_server *, when built and enabled */
    if (start_grpc(&o, dir, &grpc, &err) < 0) {
        fprintf(stderr, "g4serve: %s\n", err.msg);
        g4_http_server_stop(srv);
        g4_metrics_free(metrics);
        return 1;
    }

    g4_stack_opts so;
    g4_stack_opts_default(&so);
    so.model_dir = o.model;
    so.default_model_dir = o.default_model_dir;
    so.tokenizer = o.tokenizer;
    so.backend = o.backend;
    so.tp = o.tp;
    int rc = 1;
    g4_stack *st = NULL;
    if (g4_backend_options_from_env(&so.backend_opts, &err) < 0) /* G4_ATTN_PATH, G4_MOE_PATH */
        goto out;
    so.model.max_seqs = o.max_num_seqs;
    if (o.max_model_len) so.model.max_model_len = o.max_model_len;
    if (o.max_batched_tokens) so.model.max_step_tokens = o.max_batched_tokens;
    so.max_waiting = o.max_queue;
    so.max_running_per_client = o.max_running_per_client;
    so.prefix_cache = o.prefix_cache;
    so.warm_up = true;
    so.spec = o.spec;
    char spec_line[G4_STACK_PATH_MAX + 256];
    fprintf(stderr, "g4serve: speculative config: %s\n", g4_spec_config_describe(&o.spec, spec_line, sizeof spec_line));
    if (g4_stack_open(&st, &so, &err) < 0) goto out;
    o.http.vision_grid = model_vision_grid(st->model);
    g4_http_server_set_vision(srv, o.http.vision_grid);
    g4_http_server_attach(srv, st->engine, st->tok, &st->eo);
    if (o.ready_delay_s > 0) usleep((useconds_t)(o.ready_delay_s * 1e6));
    g4_http_server_set_ready(srv, true);
    grpc_ready(grpc, st, metrics, &o.http);
    fprintf(stderr,
            "g4serve: ready: model %s (%d layers, vocab %d), tokenizer %s, max_model_len %d, "
            "max_num_seqs %d, backend %s\n",
            st->dir, st->model->cfg.n_layers, (int)st->model->cfg.vocab, st->tokenizer_path, st->eo.max_model_len,
            st->eo.max_running, o.backend);

    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "g4serve: signal %d, shutting down\n", sig);
    drain(srv, grpc, &sigs, o.drain_timeout_s);
    rc = 0;
out:
    if (rc) fprintf(stderr, "g4serve: %s\n", err.msg);
    stop_grpc(grpc); /* the front-ends first: they cancel what is left through the engine */
    g4_http_server_stop(srv);
    g4_stack_close(st); /* the engine first: nothing feeds the metrics after it */
    g4_metrics_free(metrics);
    return rc;
}
