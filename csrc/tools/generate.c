/* generate.c — g4-generate: offline greedy generation from token ids.
 *
 * Loads a model directory on a backend, prefills the prompt ids (in chunks of --chunk), then
 * decodes greedily, printing the generated ids and prefill / decode tokens per second. The
 * first job of the project before the server exists; also a smoke test for a backend. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/backend.h"
#include "model/gemma4.h"
#include "model/runner.h"
#include "model/testmodel.h"

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
            "  Greedy generation from token ids; stops at the model's eos ids unless --no-stop.\n"
            "  --dummy: no checkpoint; a header-only one of that geometry is written to a temporary\n"
            "  directory and every weight is filled with seeded random values on the backend.\n",
            argv0);
}

int main(int argc, char **argv) {
    const char *dir = NULL, *backend = "cpu", *prompt = "2,818,5010,1045,563,496";
    const char *dummy = NULL;
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
        else {
            usage(argv[0]);
            return 2;
        }
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
    g4_backend_options bo;
    g4_backend *be = g4_backend_options_from_env(&bo, &err) ? NULL : g4_backend_create(backend, &bo, &err);
    if (!be) {
        fprintf(stderr, "g4-generate: %s\n", err.msg);
        return 1;
    }
    g4_model_opts opts;
    g4_model_opts_default(&opts);
    opts.max_seqs = 1;
    opts.max_step_tokens = chunk;
    opts.progress = progress;
    opts.dummy_seed = dummy ? dummy_seed : 0;
    g4_model *m = NULL;
    g4_runner *r = NULL;
    float *logits = NULL;
    int rc = 1;
    double t0 = now_s();
    if (g4_model_open(&m, dir, be, &opts, &err)) goto out;
    double t_load = now_s() - t0;
    if (n + max_tokens > m->opts.max_model_len) {
        fprintf(stderr, "g4-generate: prompt (%d) + max tokens (%d) exceeds the model length %d\n", n, max_tokens,
                m->opts.max_model_len);
        goto out;
    }
    r = g4_runner_create(m, &err);
    logits = malloc((size_t)m->cfg.vocab * sizeof *logits);
    if (!r || !logits) goto out;
    int seq = g4_runner_seq_open(r, &err);
    if (seq < 0) goto out;
    printf("model %s: %d layers, hidden %d, vocab %d, backend %s\n", dir, m->cfg.n_layers, m->cfg.hidden,
           m->cfg.vocab, be->ops->name);
    printf("loaded %.2f GB of weights in %.2f s (%.2f GB/s)\n", m->weight_bytes / 1e9, t_load,
           t_load > 0 ? m->weight_bytes / 1e9 / t_load : 0.0);
    t0 = now_s();
    for (int done = 0; done < n;) {
        int c = n - done < chunk ? n - done : chunk;
        g4_runner_chunk ch = {.seq = seq, .n = c, .ids = ids + done, .all_logits = 0};
        if (g4_runner_step(r, &ch, 1, logits, &err)) goto out;
        done += c;
    }
    double t_prefill = now_s() - t0;
    printf("generated:");
    int produced = 0;
    t0 = now_s();
    for (; produced < max_tokens; produced++) {
        int32_t next = g4_argmax(logits, m->cfg.vocab);
        printf(" %d", next);
        fflush(stdout);
        int is_eos = 0;
        for (int e = 0; e < m->cfg.n_eos; e++) is_eos |= next == m->cfg.eos_ids[e];
        if ((stop && is_eos) || produced + 1 == max_tokens) {
            produced++;
            break;
        }
        g4_runner_chunk ch = {.seq = seq, .n = 1, .ids = &next, .all_logits = 0};
        if (g4_runner_step(r, &ch, 1, logits, &err)) goto out;
    }
    double t_decode = now_s() - t0;
    printf("\nprefill: %d tokens in %.3f s (%.1f tokens/s)\n", n, t_prefill, n / t_prefill);
    printf("decode:  %d tokens in %.3f s (%.1f tokens/s)\n", produced, t_decode,
           produced > 1 ? (produced - 1) / t_decode : 0.0);
    rc = 0;
out:
    if (rc) fprintf(stderr, "g4-generate: %s\n", err.msg);
    free(logits);
    g4_runner_free(r);
    g4_model_close(m);
    g4_backend_destroy(be);
    if (dummy) {
        char cmd[64];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "g4-generate: could not remove %s\n", tmpdir);
    }
    return rc;
}
