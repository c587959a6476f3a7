/* test_gpu_engine.c — the engine on the CUDA backend samples on the device (the model's
 * forward runs the sample op next to the logits; only ids and the asked-for logprob records
 * come back) with the results of sampling the same logits on the host.
 * One engine on a tiny-moe model on the CUDA backend, with an executor that runs every step
 * twice: step_sample (device sampling) and step (logits downloaded), then samples the downloaded
 * logits with the sample op's CPU implementation and the engine's own parameter block. The
 * second forward rewrites the same K/V for the same tokens, so both see the same logits: every
 * row's token must be identical and its logprobs within 1e-3 (device expf vs libm). Requests:
 * greedy, and seeded temperature / top-k / top-p, with and without logprobs, batched together.
 * Exit 77 without a device. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/cpu/cpu_backend.h"
#include "check.h"
#include "cuda_backend.h"
#include "engine/engine.h"
#include "engine_test_util.h"
#include "model/gemma4.h"
#include "model/testmodel.h"

#define N_REQ 8
#define MAX_ROWS 64

typedef struct both {
    g4_executor inner;
    g4_cpu_sample_scratch *scratch;
    float *logits;              /* [MAX_ROWS, V] */
    int rows, tokens_differ, steps;
    double lp_err;
} both;

static int both_step(void *ctx, const g4_step *st, float *logits, g4_error *err) {
    both *b = ctx;
    return b->inner.step(b->inner.ctx, st, logits, err);
}

static int both_step_sample(void *ctx, const g4_step *st, const g4_sample_params *params, size_t params_bytes,
                            int32_t *tokens, g4_sample_logprobs *lp, int n_lp, g4_error *err) {
    both *b = ctx;
    if (b->inner.step_sample(b->inner.ctx, st, params, params_bytes, tokens, lp, n_lp, err)) return -1;
    if (st->n_rows > MAX_ROWS) return g4_fail(err, "test: %d rows", st->n_rows);
    if (b->inner.step(b->inner.ctx, st, b->logits, err)) return -1;
    int32_t host_tok[MAX_ROWS];
    g4_sample_logprobs host_lp[MAX_ROWS];
    g4_sample_args a = {.logits = b->logits,
                        .ld = b->inner.vocab,
                        .vocab = b->inner.vocab,
                        .max_rows = st->n_rows,
                        .params = params,
                        .tokens = host_tok,
                        .logprobs = n_lp ? host_lp : NULL};
    if (g4_cpu_sample_host(b->scratch, &a, err)) return -1;
    b->steps++;
    for (int r = 0; r < st->n_rows; r++) {
        b->rows++;
        if (host_tok[r] != tokens[r]) {
            b->tokens_differ++;
            fprintf(stderr, "step %d row %d: device token %d, host token %d\n", b->steps, r, tokens[r], host_tok[r]);
        }
    }
    for (int i = 0; i < n_lp; i++) {
        b->lp_err = fmax(b->lp_err, fabs((double)lp[i].logprob - host_lp[i].logprob));
        if (lp[i].n_top != host_lp[i].n_top) b->lp_err = INFINITY;
        for (int k = 0; k < lp[i].n_top && k < host_lp[i].n_top; k++)
            b->lp_err = fmax(b->lp_err, fabs((double)lp[i].top_logprobs[k] - host_lp[i].top_logprobs[k]));
    }
    return 0;
}

int main(void) {
    if (g4_cuda_device_count() < 1) return check_skip("no CUDA device");
    g4_error err = {{0}};
    g4_backend *gpu = g4_backend_cuda_create(NULL, &err);
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

    both b = {0};
    g4_executor_local(&b.inner, m);
    REQUIRE(b.inner.step_sample != NULL, "the CUDA backend has the sample op");
    b.scratch = g4_cpu_sample_scratch_create();
    b.logits = malloc((size_t)MAX_ROWS * cfg.vocab * sizeof(float));
    REQUIRE(b.scratch && b.logits, "out of memory");
    g4_executor ex = b.inner;
    ex.ctx = &b, ex.step = both_step, ex.step_sample = both_step_sample;
    g4_engine_opts o;
    g4_engine_opts_from_model(&o, m);
    o.seed = 7;
    g4_engine *e = g4_engine_create(&o, &ex, NULL, &err);
    REQUIRE(e != NULL, "engine: %s", err.msg);

    static rec recs[N_REQ];
    int32_t prompts[N_REQ][24];
    uint64_t seed = 5;
    int want_tokens = 0;
    for (int i = 0; i < N_REQ; i++) {
        g4_request_params p = {.prompt = prompts[i],
                               .n_prompt = rng_int(&seed, 3, 20),
                               .on_event = rec_on_event,
                               .user = &recs[i]};
        for (int j = 0; j < p.n_prompt; j++) prompts[i][j] = rng_int(&seed, 2, cfg.vocab - 1);
        g4_sampling_default(&p.sampling);
        p.sampling.logprobs = i % 3 == 0 ? 3 : -1;
        if (i % 2) { /* seeded sampling; the even ones are greedy */
            p.sampling.temperature = 1.0f;
            p.sampling.top_k = i % 4 == 1 ? 40 : 0;
            p.sampling.top_p = 0.9f;
            p.sampling.has_seed = true;
            p.sampling.seed = rng_next(&seed);
        }
        g4_stop_rules_default(&p.stop);
        p.stop.max_tokens = rng_int(&seed, 2, 6);
        p.stop.ignore_eos = true;
        want_tokens += p.stop.max_tokens;
        int code = 0;
        CHECK(g4_engine_submit(e, &p, &code, &err) != 0, "submit: %s", err.msg);
    }
    g4_engine_wait_idle(e);
    int got_tokens = 0;
    for (int i = 0; i < N_REQ; i++) got_tokens += recs[i].n;
    printf("device vs host sampling: %d rows in %d steps, %d tokens differ, max |Δ logprob| %.3g; %d of %d tokens "
           "delivered\n",
           b.rows, b.steps, b.tokens_differ, b.lp_err, got_tokens, want_tokens);
    CHECK(b.steps > 0 && b.rows >= want_tokens, "device sampling ran (%d rows)", b.rows);
    CHECK(b.tokens_differ == 0, "%d of %d rows sampled differently on the device", b.tokens_differ, b.rows);
    CHECK(b.lp_err <= 1e-3, "logprobs differ by %.3g", b.lp_err);
    CHECK(got_tokens == want_tokens, "%d of %d tokens delivered", got_tokens, want_tokens);

    g4_engine_destroy(e);
    g4_cpu_sample_scratch_free(b.scratch);
    free(b.logits);
    g4_model_close(m);
    g4_backend_destroy(gpu);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
