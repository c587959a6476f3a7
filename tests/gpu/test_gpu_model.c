/* test_gpu_model.c — the whole forward pass on the CUDA backend vs the CPU backend in bf16 mode
 * (backend/cpu/cpu_backend.h: the same bf16 rounding points, f32 arithmetic in between) on the
 * tiny random checkpoints (tiny-dense, tiny-moe: hidden 64, 6 layers, globals at 2 and 5,
 * window 16, vocab 262144, seed 1234) through model/runner.h, teacher-forced (tf_compare.h):
 * two sequences, prompts of 23 and 7 tokens prefilled together in one step (longer than the
 * window, crossing blocks of 4), then 8 decode steps feeding both the same fixed continuation.
 * Every logit row of every position is compared; the GPU's MoE routing is recorded and replayed
 * into the reference, where each differing choice must be a near-tie.
 *
 * Conditioning: the checkpoint's q_norm / k_norm weights are scaled by TF_QK_SCALE = 0.5 (scores
 * × 0.25), so that bf16 rounding is not amplified by near one-hot softmaxes (tf_compare.h).
 * Rule: every row's rms(Δlogits)/rms(logits) ≤ TF_TOL = 5 %, twice the largest difference that
 * f32 summation order alone makes between two bf16-mode CPU runs, half the weakest planted bug
 * (tests/backend/test_bf16_oracle.c measures both in CI, on these very setups).
 * Power check: the same GPU logits against the reference with a planted bug (one head zeroed,
 * window one key short, p-RoPE on all pairs) must be rejected — a test that cannot fail proves
 * nothing. Also printed, not judged: the GPU against the fp32 oracle.
 * Under the emulated CUDA target (G4_CUDA_EMU) the prompts are 18 and 5 tokens, 4 decode steps. */
#include <unistd.h>

#include <stdlib.h>

#include "../backend/tf_compare.h"
#include "backend/cpu/cpu_backend.h"
#include "check.h"
#include "cuda_backend.h"
#include "model/gemma4.h"
#include "model/testmodel.h"

#ifdef G4_CUDA_EMU
#define N0 18
#define N1 5
#define NDEC 4
#else
#define N0 23
#define N1 7
#define NDEC 8
#endif

/* Runs the stream on backend be (wrapped for routing / planted bugs), returns 0 or -1. */
static int run_on(g4_backend *be, const char *dir, const tf_stream *st, tf_route_mode route, tf_bug bug, float *lg) {
    g4_error err = {{0}};
    tf_wrap w;
    g4_backend *wb = tf_wrap_backend(&w, be);
    tf_cfg.bug = bug, tf_cfg.layer = 3, tf_cfg.head = 1;
    if (bug == TF_BUG_PROPE) tf_cfg.layer = -1;
    tf_route_begin(route);
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_step_tokens = 64, o.max_seqs = 4, o.block_size = 4, o.max_model_len = 128;
    g4_model *m = NULL;
    int rc = g4_model_open(&m, dir, wb, &o, &err) || tf_run(m, NULL, NULL, st, lg, &err);
    CHECK(!rc, "%s: %s", be->ops->name, err.msg);
    if (m) g4_model_close(m);
    tf_cfg.bug = TF_BUG_NONE;
    tf_unwrap(&w);
    return rc ? -1 : 0;
}

static g4_backend *cpu_backend(int bf16) {
    g4_error err = {{0}};
    g4_cpu_opts co;
    g4_cpu_opts_default(&co);
    co.round_bf16 = bf16;
    g4_backend *b = g4_backend_cpu_create_opts(&co, &err);
    CHECK(b != NULL, "cpu backend: %s", err.msg);
    return b;
}

static void run_model(g4_backend *gpu, const char *name) {
    g4_error err = {{0}};
    g4_config cfg;
    char dir[256], what[128];
    snprintf(dir, sizeof dir, "/tmp/g4_test_gpu_model_%s_%d", name, (int)getpid());
    REQUIRE_VOID(!g4_testmodel_config(&cfg, name, &err) && !g4_testmodel_write(&cfg, 1234, dir, &err) &&
                     !tf_condition_dir(dir, TF_QK_SCALE, &err),
                 "%s: %s", name, err.msg);
    tf_stream st;
    tf_stream_make(&st, cfg.vocab, 777, 2, N0, N1, NDEC);
    int R = tf_rows(&st), V = cfg.vocab;
    float *got = malloc((size_t)R * V * 4), *ref = malloc((size_t)R * V * 4);
    REQUIRE_VOID(got && ref, "out of memory");
    g4_backend *b16 = cpu_backend(1), *b32 = cpu_backend(0);
    tf_route_mode replay = cfg.moe ? TF_ROUTE_REPLAY : TF_ROUTE_OFF;
    if (b16 && b32 && !run_on(gpu, dir, &st, TF_ROUTE_RECORD, TF_BUG_NONE, got)) {
        if (!run_on(b16, dir, &st, replay, TF_BUG_NONE, ref)) {
            snprintf(what, sizeof what, "%s: CUDA vs CPU bf16 mode", name);
            int ok = tf_compare(what, got, ref, R, V, TF_TOL);
            ok &= tf_route_ok(what);
            CHECK(ok, "%s: CUDA logits differ from the bf16 reference beyond TF_TOL", name);
        }
        tf_bug bugs[3] = {TF_BUG_HEAD_ZERO, TF_BUG_WINDOW, TF_BUG_PROPE};
        for (int i = 0; i < 3; i++) {
            if (run_on(b16, dir, &st, replay, bugs[i], ref)) continue;
            snprintf(what, sizeof what, "%s: vs reference with planted bug (%s)", name, tf_bug_name(bugs[i]));
            int accepted = tf_compare(what, got, ref, R, V, TF_TOL) && tf_route_ok(what);
            CHECK(!accepted, "%s: the comparison accepted a planted bug (%s)", name, tf_bug_name(bugs[i]));
        }
        if (!run_on(b32, dir, &st, TF_ROUTE_OFF, TF_BUG_NONE, ref)) {
            snprintf(what, sizeof what, "%s: CUDA vs CPU fp32 (info, not judged)", name);
            tf_compare(what, got, ref, R, V, TF_TOL);
        }
    }
    tf_route_reset();
    g4_backend_destroy(b16);
    g4_backend_destroy(b32);
    free(got);
    free(ref);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    if (g4_cuda_device_count() < 1) return check_skip("no CUDA device");
    /* Whole-model comparisons pin the MoE path the bf16 reference models (tf_backend_opts). */
    g4_error err = {{0}};
    g4_backend *gpu = g4_backend_cuda_create(&tf_backend_opts, &err);
    REQUIRE(gpu != NULL, "cuda backend: %s", err.msg);
    run_model(gpu, "tiny-dense");
    run_model(gpu, "tiny-moe");
    g4_backend_destroy(gpu);
    return check_summary();
}
