/* test_gpu_engine.c — the engine on the CUDA backend samples on the device (the model's
 * forward runs the sample op next to the logits and returns only ids and the asked-for logprob
 * records) with the same results as sampling the downloaded logits on the host:
 *   the same requests (greedy, and seeded temperature / top-k / top-p with and without
 *   logprobs, batched together) through two engines on one tiny-moe model on the CUDA
 *   backend: A with the local executor (device sampling), B with step_sample switched off
 *   (host sampling over downloaded logits). Both see the same logits (same backend, same
 *   steps), so tokens must be identical and logprobs within 1e-3 (the device kernel's expf vs
 *   libm). Exit 77 without a device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cuda_backend.h"
#include "engine/engine.h"
#include "engine_test_util.h"
#include "model/gemma4.h"
#include "model/testmodel.h"

#define N_REQ 8

typedef struct req {
    int32_t prompt[24];
    int n_prompt, max_tokens;
    g4_sampling sp;
    rec r;
} req;

static void run_all(g4_model *m, int on_device, req *reqs) {
    g4_engine_opts o;
    g4_engine_opts_from_model(&o, m);
    o.seed = 7;
    g4_executor ex;
    g4_executor_local(&ex, m);
    CHECK(ex.step_sample != NULL, "the CUDA backend has the sample op");
    if (!on_device) ex.step_sample = NULL;
    g4_error err = {{0}};
    g4_engine *e = g4_engine_create(&o, &ex, NULL, &err);
    REQUIRE_VOID(e != NULL, "engine: %s", err.msg);
    for (int i = 0; i < N_REQ; i++) {
        req *q = &reqs[i];
        memset(&q->r, 0, sizeof q->r);
        g4_request_params p = {.prompt = q->prompt, .n_prompt = q->n_prompt, .sampling = q->sp,
                               .on_event = rec_on_event, .user = &q->r};
        g4_stop_rules_default(&p.stop);
        p.stop.max_tokens = q->max_tokens;
        p.stop.ignore_eos = true;
        int code = 0;
        CHECK(g4_engine_submit(e, &p, &code, &err) != 0, "submit: %s", err.msg);
    }
    g4_engine_wait_idle(e);
    g4_engine_destroy(e);
}

int main(void) {
    if (g4_cuda_device_count() < 1) return check_skip("no CUDA device");
    g4_error err = {{0}};
    g4_backend *gpu = g4_backend_cuda_create(0, &err);
    REQUIRE(gpu, "cuda backend: %s", err.msg);
    char dir[128];
    snprintf(dir, sizeof dir, "/tmp/g4_test_gpu_engine_%d", (int)getpid());
    g4_config cfg;
    REQUIRE(!g4_testmodel_config(&cfg, "tiny-moe", &err) && !g4_testmodel_write(&cfg, 21, dir, &err), "%s", err.msg);
    g4_model_opts mo;
    g4_model_opts_default(&mo);
    mo.max_seqs = N_REQ, mo.max_step_tokens = 256, mo.max_model_len = 64, mo.block_size = 4;
    g4_model *m = NULL;
    REQUIRE(!g4_model_open(&m, dir, gpu, &mo, &err), "open: %s", err.msg);

    static req a[N_REQ], b[N_REQ];
    uint64_t seed = 5;
    for (int i = 0; i < N_REQ; i++) {
        req *q = &a[i];
        q->n_prompt = rng_int(&seed, 3, 20);
        for (int j = 0; j < q->n_prompt; j++) q->prompt[j] = rng_int(&seed, 2, cfg.vocab - 1);
        q->max_tokens = rng_int(&seed, 2, 6);
        g4_sampling_default(&q->sp);
        q->sp.logprobs = i % 3 == 0 ? 3 : -1;
        if (i % 2) { /* seeded sampling; the even ones are greedy */
            q->sp.temperature = 1.0f;
            q->sp.top_k = i % 4 == 1 ? 40 : 0;
            q->sp.top_p = 0.9f;
            q->sp.has_seed = true;
            q->sp.seed = rng_next(&seed);
        }
        b[i] = *q;
    }
    run_all(m, 1, a);
    run_all(m, 0, b);
    int same = 0, tokens = 0;
    double lp_err = 0;
    for (int i = 0; i < N_REQ; i++) {
        rec *x = &a[i].r, *y = &b[i].r;
        int ok = x->n == y->n && x->n == a[i].max_tokens && !memcmp(x->toks, y->toks, (size_t)x->n * sizeof *x->toks);
        same += ok;
        tokens += x->n;
        for (int t = 0; ok && a[i].sp.logprobs >= 0 && t < x->n; t++)
            lp_err = fmax(lp_err, fabs((double)x->logprob[t] - y->logprob[t]));
        if (!ok) fprintf(stderr, "request %d: device %d tokens, host %d tokens, differ\n", i, x->n, y->n);
    }
    printf("device vs host sampling: %d/%d requests identical (%d tokens), max |Δ logprob| %.3g\n", same, N_REQ,
           tokens, lp_err);
    CHECK(same == N_REQ, "%d of %d requests differ between device and host sampling", N_REQ - same, N_REQ);
    CHECK(lp_err <= 1e-3, "logprobs differ by %.3g", lp_err);

    g4_model_close(m);
    g4_backend_destroy(gpu);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
