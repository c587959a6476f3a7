/* generate.c — g4-generate: offline greedy generation from token ids.
 *
 * Builds the model stack g4serve runs (server/stack.h: backend, model, engine; no tokenizer) on
 * a model directory, sends one request — the prompt ids, prefilled in steps of --chunk tokens,
 * then greedy decoding — and prints the generated ids and prefill / decode tokens per second.
 * The first job of the project before the server existed; also a smoke test for a backend.
 * Not here: text in or out (g4serve). */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/testmodel.h"
#include "server/spec_config_json.h"
#include "server/stack.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A one-line progress bar on stderr while weights load. */
static void progress(void *user, int rank, size_t done, size_t total) {
    (void)user;
    static int last = -1;
    int pct = total ? (int)(100.0 * done / total) : 100;
    if (pct == last) return;
    last = pct;
    fprintf(stderr, "\rrank %d: loading weights [%-40.*s] %3d%%", rank, pct * 40 / 100,
            "########################################", pct);
    if (done == total) fputc('\n', stderr);
}

/* The request's tokens and times, filled on the engine thread. */
typedef struct run {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t *ids;                /* generated ids, the stop id that ended them last */
    int n, cap;
    double t_first, t_end;       /* first generated token, last event */
    bool done;
    g4_finish_reason finish;
    int spec_draft, spec_accepted; /* speculative decoding's proposals for the request, accepted */
    char error[256];
} run;

static void keep(run *r, int32_t id, double t) {
    if (r->n == 0) r->t_first = t;
    if (r->n < r->cap) r->ids[r->n++] = id;
}

static void on_event(void *user, const g4_event *ev) {
    run *r = user;
    double t = now_s();
    pthread_mutex_lock(&r->mu);
    if (ev->n_tokens > 0) keep(r, ev->token, t);
    if (ev->finish != G4_FINISH_NONE) {
        if (ev->finish == G4_FINISH_STOP && ev->stop_token >= 0) keep(r, ev->stop_token, t);
        r->t_end = t;
        r->done = true;
        r->finish = ev->finish;
        r->spec_draft = ev->spec_draft_tokens;
        r->spec_accepted = ev->spec_accepted_tokens;
        snprintf(r->error, sizeof r->error, "%s", ev->error ? ev->error : "aborted");
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

static int parse_ids(const char *s, int32_t *ids, int cap) {
    int n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || n == cap) return -1;
        ids[n++] = (int32_t)v;
        s = end;
        if (*s == ',') s++;
        else if (*s) return -1;
    }
    return n;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s --model DIR [--backend cpu|cuda] [--prompt-ids 2,818,5010] [--max-tokens N]\n"
            "          [--chunk N] [--no-stop] [--dummy tiny-dense|tiny-moe|31b|26b-a4b [--seed N]]\n"
            "          [--speculative-config JSON]\n"
            "  Greedy generation from token ids; stops at the model's eos ids unless --no-stop.\n"
            "  --dummy: no checkpoint; a header-only one of that geometry is written to a temporary\n"
            "  directory and every weight is filled with seeded random values on the backend.\n"
            "  --speculative-config: speculative decoding in vLLM's form, as g4serve (docs/operations.md).\n",
            argv0);
}

int main(int argc, char **argv) {
    const char *dir = NULL, *backend = "cpu", *prompt = "2,818,5010,1045,563,496";
    const char *dummy = NULL, *spec_json = NULL;
    unsigned long long dummy_seed = 1;
    int max_tokens = 32, chunk = 256, stop = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--prompt-ids") && i + 1 < argc) prompt = argv[++i];
        else if (!strcmp(argv[i], "--max-tokens") && i + 1 < argc) max_tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-stop")) stop = 0;
        else if (!strcmp(argv[i], "--dummy") && i + 1 < argc) dummy = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) dummy_seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--speculative-config") && i + 1 < argc) spec_json = argv[++i];
        else {
            usage(argv[0]);
            return 2;
        }
    }
    g4_spec_config spec;
    static char draft_dir[4096];
    g4_error serr = {{0}};
    if (g4_spec_config_from_json(spec_json, &spec, draft_dir, sizeof draft_dir, &serr) < 0 ||
        g4_spec_config_check_draft(&spec, &serr) < 0) {
        fprintf(stderr, "g4-generate: --speculative-config: %s\n", serr.msg);
        return 2;
    }
    char tmpdir[] = "/tmp/g4-dummy-XXXXXX";
    if (dummy) { /* a header-only checkpoint of that geometry, removed at exit */
        g4_config cfg;
        g4_error e = {{0}};
        if (!mkdtemp(tmpdir) || g4_testmodel_config(&cfg, dummy, &e) || g4_testmodel_write_sparse(&cfg, tmpdir, &e)) {
            fprintf(stderr, "g4-generate: --dummy %s: %s\n", dummy, e.msg[0] ? e.msg : "cannot create a directory");
            return 2;
        }
        dir = tmpdir;
    }
    if (!dir || max_tokens < 1 || chunk < 1) {
        usage(argv[0]);
        return 2;
    }
    static int32_t ids[8192];
    int n = parse_ids(prompt, ids, 4096);
    if (n < 1) {
        fprintf(stderr, "g4-generate: --prompt-ids must be a comma-separated list of 1..4096 integers\n");
        return 2;
    }
    g4_error err = {{0}};
    g4_stack_opts so;
    g4_stack_opts_default(&so);
    so.model_dir = dir;
    so.no_tokenizer = true;
    so.backend = backend;
    so.model.max_seqs = 1;
    so.model.max_step_tokens = chunk;
    so.model.progress = progress;
    so.model.dummy_seed = dummy ? dummy_seed : 0;
    so.spec = spec;
    g4_stack *st = NULL;
    run r = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .cap = max_tokens + 1};
    int rc = 1;
    double t0 = now_s();
    if (!(r.ids = malloc((size_t)r.cap * sizeof *r.ids))) {
        g4_fail(&err, "out of memory");
        goto out;
    }
    if (g4_stack_open(&st, &so, &err) < 0) goto out;
    double t_load = now_s() - t0;
    const g4_model *m = st->model;
    if (n + max_tokens > st->eo.max_model_len) {
        g4_fail(&err, "prompt (%d) + max tokens (%d) exceeds the model length %d", n, max_tokens, st->eo.max_model_len);
        goto out;
    }
    printf("model %s: %d layers, hidden %d, vocab %d, backend %s\n", st->dir, m->cfg.n_layers, m->cfg.hidden,
           m->cfg.vocab, backend);
    printf("loaded %.2f GB of weights in %.2f s (%.2f GB/s)\n", m->weight_bytes / 1e9, t_load,
           t_load > 0 ? m->weight_bytes / 1e9 / t_load : 0.0);
    g4_request_params p = {.prompt = ids, .n_prompt = n, .on_event = on_event, .user = &r};
    g4_sampling_default(&p.sampling); /* greedy: argmax, lowest id on ties */
    g4_stop_rules_default(&p.stop);
    p.stop.max_tokens = max_tokens;
    p.stop.ignore_eos = !stop;
    int code = 0;
    t0 = now_s();
    if (!g4_engine_submit(st->engine, &p, &code, &err)) goto out;
    pthread_mutex_lock(&r.mu);
    while (!r.done) pthread_cond_wait(&r.cv, &r.mu);
    pthread_mutex_unlock(&r.mu);
    if (r.finish != G4_FINISH_STOP && r.finish != G4_FINISH_LENGTH) {
        g4_fail(&err, "generation failed: %s", r.error);
        goto out;
    }
    printf("generated:");
    for (int i = 0; i < r.n; i++) printf(" %d", r.ids[i]);
    double t_prefill = r.t_first - t0, t_decode = r.t_end - r.t_first;
    printf("\nprefill: %d tokens in %.3f s (%.1f tokens/s)\n", n, t_prefill, n / t_prefill);
    printf("decode:  %d tokens in %.3f s (%.1f tokens/s)\n", r.n, t_decode,
           r.n > 1 && t_decode > 0 ? (r.n - 1) / t_decode : 0.0);
    if (so.spec.method != G4_SPEC_OFF)
        printf("speculative decoding: %d tokens proposed, %d accepted\n", r.spec_draft, r.spec_accepted);
    rc = 0;
out:
    if (rc) fprintf(stderr, "g4-generate: %s\n", err.msg);
    g4_stack_close(st);
    free(r.ids);
    if (dummy) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "g4-generate: could not remove %s\n", tmpdir);
    }
    return rc;
}
