/* bench_model.c — g4-bench-model: whole-model decode and prefill throughput of a full-size
 * Gemma 4 (31B or 26B-A4B) on the CUDA backend with dummy weights (no files), each as a fraction
 * of its roofline measured in the same run (issue 7 item 5).
 *
 *   decode:  B sequences at context ctx, `steps` timed steps of B tokens;
 *            tokens/s = B·steps / t;  roofline t = bytes(step) / copy bandwidth, bytes from
 *            bench/serve/roofline.h (weights read once + every sequence's KV, one stored tensor
 *            on global layers)
 *   prefill: one prompt of n tokens in chunks of `chunk`; tokens/s = n / t;
 *            roofline t = FLOPs(n) / cuBLAS BF16 rate
 * Prints one JSON object. Needs a GPU (exits 77 without one); not a ctest test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "cuda_backend.h"
#include "model/runner.h"
#include "model/testmodel.h"
#include "../serve/roofline.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_list(const char *s, int *out, int cap) {
    int n = 0;
    for (char *end; *s && n < cap; s = *end ? end + 1 : end) {
        out[n++] = (int)strtol(s, &end, 10);
        if (end == s) return -1;
    }
    return n;
}

typedef struct {
    g4_backend *be;
    g4_model *m;
    g4_runner *r;
} session;

static int open_session(session *ss, const char *dir, int max_seqs, int step_tokens, int max_len, g4_error *err) {
    memset(ss, 0, sizeof *ss);
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_seqs = max_seqs, o.max_step_tokens = step_tokens, o.max_model_len = max_len, o.dummy_seed = 1;
    g4_backend_options bo;
    if (g4_backend_options_from_env(&bo, err) || !(ss->be = g4_backend_create("cuda", &bo, err))) return -1;
    if (g4_model_open(&ss->m, dir, ss->be, &o, err) || !(ss->r = g4_runner_create(ss->m, err))) return -1;
    return 0;
}

static void close_session(session *ss) {
    g4_runner_free(ss->r);
    g4_model_close(ss->m);
    g4_backend_destroy(ss->be);
}

/* Prefills n tokens of seq in chunks; returns seconds (logits of the last row into lg). */
static double prefill(session *ss, int seq, int n, int chunk, float *lg, g4_error *err) {
    int32_t *ids = malloc(sizeof(int32_t) * chunk);
    double t0 = now_s();
    for (int done = 0; done < n;) {
        int c = n - done < chunk ? n - done : chunk;
        for (int i = 0; i < c; i++) ids[i] = 3 + (done + i) * 7919 % 200000;
        g4_runner_chunk ch = {seq, c, ids, 0};
        if (g4_runner_step(ss->r, &ch, 1, lg, err)) {
            free(ids);
            return -1;
        }
        done += c;
    }
    free(ids);
    return now_s() - t0;
}

int main(int argc, char **argv) {
    const char *name = "31b";
    int batches[8] = {1, 8, 32}, nb = 3, prefills[8] = {4096, 32768}, np = 2, ctx = 1024, steps = 32, chunk = 8192;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) nb = parse_list(argv[++i], batches, 8);
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc) np = parse_list(argv[++i], prefills, 8);
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = atoi(argv[++i]);
        else {
            fprintf(stderr,
                    "usage: %s [--model 31b|26b-a4b] [--batches 1,8,32] [--ctx 1024] [--steps 32]\n"
                    "          [--prefill 4096,32768] [--chunk 8192]\n",
                    argv[0]);
            return 2;
        }
    }
    if (nb < 1 || np < 0 || ctx < 1 || steps < 1 || chunk < 1) {
        fprintf(stderr, "g4-bench-model: bad arguments\n");
        return 2;
    }
    if (g4_cuda_device_count() < 1) {
        printf("{\"skipped\": \"no CUDA device\"}\n");
        return 77;
    }
    g4_error err = {{0}};
    g4_hw_peak hw = {0};
    if (g4_hw_measure(0, &hw, &err)) {
        fprintf(stderr, "g4-bench-model: %s\n", err.msg);
        return 1;
    }
    g4_config cfg;
    char dir[] = "/tmp/g4-bench-model-XXXXXX";
    if (!mkdtemp(dir) || g4_testmodel_config(&cfg, name, &err) || g4_testmodel_write_sparse(&cfg, dir, &err)) {
        fprintf(stderr, "g4-bench-model: %s\n", err.msg);
        return 1;
    }
    printf("{\"model\": \"%s\", \"device\": \"%s\", \"copy_GBps\": %.1f, \"bf16_TFLOPs\": %.1f,\n", name, hw.device,
           hw.copy_bytes_per_s / 1e9, hw.bf16_flops_per_s / 1e12);
    int rc = 0, maxb = 1;
    for (int i = 0; i < nb; i++) maxb = batches[i] > maxb ? batches[i] : maxb;
    float *lg = malloc(sizeof(float) * (size_t)cfg.vocab * maxb);
    session ss;
    /* decode */
    printf(" \"decode\": [");
    if (open_session(&ss, dir, maxb, chunk, ctx + steps + 16, &err) == 0) {
        for (int bi = 0; bi < nb && rc == 0; bi++) {
            int B = batches[bi], seqs[256];
            for (int s = 0; s < B; s++) {
                seqs[s] = g4_runner_seq_open(ss.r, &err);
                if (seqs[s] < 0 || prefill(&ss, seqs[s], ctx - 1, chunk, lg, &err) < 0) rc = -1;
            }
            g4_runner_chunk ch[256];
            int32_t next[256];
            double t0 = 0;
            for (int k = 0; k <= steps && rc == 0; k++) { /* step 0 warms up (and its graph caches) */
                if (k == 1) t0 = now_s();
                for (int s = 0; s < B; s++) {
                    next[s] = 3 + (k * 31 + s) % 200000;
                    ch[s] = (g4_runner_chunk){seqs[s], 1, &next[s], 0};
                }
                rc = g4_runner_step(ss.r, ch, B, lg, &err);
            }
            double t = now_s() - t0, tps = B * steps / t, weights, kv;
            double bytes = g4_roofline_decode_bytes(&cfg, B, ctx + steps / 2, 2, true, &weights, &kv);
            double roof = hw.copy_bytes_per_s / bytes * B; /* tokens/s at the bandwidth limit */
            if (rc == 0)
                printf("%s\n  {\"batch\": %d, \"ctx\": %d, \"tokens_per_s\": %.1f, \"ms_per_step\": %.3f, "
                       "\"roofline_tokens_per_s\": %.1f, \"fraction\": %.3f}",
                       bi ? "," : "", B, ctx, tps, t / steps * 1e3, roof, tps / roof);
            for (int s = 0; s < B; s++) g4_runner_seq_close(ss.r, seqs[s]);
        }
    } else {
        rc = -1;
    }
    close_session(&ss);
    printf("],\n \"prefill\": [");
    for (int pi = 0; pi < np && rc == 0; pi++) {
        int n = prefills[pi];
        if (open_session(&ss, dir, 1, chunk, n + 16, &err)) {
            rc = -1;
            close_session(&ss);
            break;
        }
        int seq = g4_runner_seq_open(ss.r, &err);
        double t = seq < 0 ? -1 : prefill(&ss, seq, n, chunk, lg, &err);
        double flops = g4_roofline_prefill_flops(&cfg, n, NULL, NULL), roof = hw.bf16_flops_per_s / flops * n;
        if (t > 0)
            printf("%s\n  {\"tokens\": %d, \"chunk\": %d, \"tokens_per_s\": %.1f, \"roofline_tokens_per_s\": %.1f, "
                   "\"fraction\": %.3f}",
                   pi ? "," : "", n, chunk, n / t, roof, n / t / roof);
        else rc = -1;
        close_session(&ss);
    }
    printf("],\n \"error\": \"%s\"}\n", rc ? err.msg : "");
    free(lg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "g4-bench-model: could not remove %s\n", dir);
    return rc ? 1 : 0;
}
