/* test_gpu_model_mm.c — the whole tiny dense model on the CUDA backend with an image in the
 * prompt, against the CPU backend in bf16 oracle mode (tests/backend/tf_compare.h: the rule, the
 * conditioning of the tiny model). One sequence: 24 prompt tokens whose positions 4..19 are an
 * image run (random soft-token rows, window 16: the run's first token sees 15 later keys), every
 * prefill row's logits, then 4 teacher-forced decode steps. This takes the model's image plumbing
 * (the rows uploaded into backend memory, embed_row / key_end in the step) through the CUDA embed
 * and attention kernels. Sensitivity: the bf16 reference without the image mask (the same rows as
 * runs of one token) must be rejected by the same rule. */
#include <stdlib.h>
#include <unistd.h>

#include "../backend/tf_compare.h"
#include "backend/cpu/cpu_backend.h"
#include "check.h"
#include "cuda_backend.h"
#include "model/gemma4.h"
#include "model/runner.h"
#include "model/testmodel.h"

#define NP 24
#define RUN0 4
#define RUN_N 16
#define NDEC 4

/* Prefill (all rows) then NDEC decode steps of the given continuation; logits [NP + NDEC, V].
 * split = 1: every soft token its own run (no image mask). */
static int run_on(g4_backend *be, const char *dir, const int32_t *ids, const int32_t *cont, const float *rows,
                  int split, float *lg) {
    g4_error err = {{0}};
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_step_tokens = 64, o.max_seqs = 2, o.block_size = 4, o.max_model_len = 64;
    g4_model *m = NULL;
    g4_runner *r = NULL;
    int rc = g4_model_open(&m, dir, be, &o, &err) || !(r = g4_runner_create(m, &err));
    int H = rc ? 0 : m->cfg.hidden, V = rc ? 0 : m->cfg.vocab, seq = rc ? -1 : g4_runner_seq_open(r, &err);
    g4_step_image im[RUN_N];
    int n_im = 0;
    for (int k = 0; k < RUN_N; k += split ? 1 : RUN_N)
        im[n_im++] = (g4_step_image){.first = RUN0 + k, .n = split ? 1 : RUN_N, .embed = rows + (size_t)k * H};
    if (!rc && seq >= 0) {
        g4_runner_chunk c = {.seq = seq, .n = NP, .ids = ids, .all_logits = 1};
        rc = g4_runner_step_images(r, &c, 1, im, n_im, lg, &err);
        for (int k = 0; k < NDEC && !rc; k++) {
            c = (g4_runner_chunk){.seq = seq, .n = 1, .ids = &cont[k], .all_logits = 0};
            rc = g4_runner_step(r, &c, 1, lg + (size_t)(NP + k) * V, &err);
        }
    }
    CHECK(!rc, "%s: %s", be->ops->name, err.msg);
    if (r) g4_runner_free(r);
    if (m) g4_model_close(m);
    return rc ? -1 : 0;
}

int main(void) {
    if (g4_cuda_device_count() < 1) return check_skip("no CUDA device");
    g4_error err = {{0}};
    g4_backend *gpu = g4_backend_cuda_create(&tf_backend_opts, &err);
    REQUIRE(gpu != NULL, "cuda backend: %s", err.msg);
    g4_cpu_opts co;
    g4_cpu_opts_default(&co);
    co.round_bf16 = 1;
    g4_backend *b16 = g4_backend_cpu_create_opts(&co, &err);
    REQUIRE(b16 != NULL, "cpu backend: %s", err.msg);
    g4_config cfg;
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/g4_test_gpu_model_mm_%d", (int)getpid());
    REQUIRE(!g4_testmodel_config(&cfg, "tiny-dense", &err) && !g4_testmodel_write(&cfg, 4321, dir, &err) &&
                !tf_condition_dir(dir, TF_QK_SCALE, &err),
            "%s", err.msg);
    int V = cfg.vocab, H = cfg.hidden, R = NP + NDEC;
    int32_t ids[NP], cont[NDEC];
    uint64_t s = 99;
    for (int i = 0; i < NP; i++) ids[i] = 3 + (int32_t)(g4_splitmix64(&s) % 5000);
    for (int i = 0; i < NDEC; i++) cont[i] = 3 + (int32_t)(g4_splitmix64(&s) % 5000);
    float *rows = malloc((size_t)RUN_N * H * sizeof *rows), *got = malloc((size_t)R * V * 4),
          *ref = malloc((size_t)R * V * 4);
    REQUIRE(rows && got && ref, "out of memory");
    for (int i = 0; i < RUN_N * H; i++)
        rows[i] = g4_round_bf16((float)((double)(g4_splitmix64(&s) >> 11) / 9007199254740992.0 * 2.0 - 1.0));
    if (!run_on(gpu, dir, ids, cont, rows, 0, got) && !run_on(b16, dir, ids, cont, rows, 0, ref)) {
        CHECK(tf_compare("tiny-dense with an image: CUDA vs CPU bf16 mode", got, ref, R, V, TF_TOL),
              "CUDA logits differ from the bf16 reference beyond TF_TOL");
        if (!run_on(b16, dir, ids, cont, rows, 1, ref))
            CHECK(!tf_compare("vs the reference without the image mask (must fail)", got, ref, R, V, TF_TOL),
                  "the comparison cannot tell a missing image mask");
    }
    free(rows), free(got), free(ref);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    g4_backend_destroy(b16);
    g4_backend_destroy(gpu);
    return check_summary();
}
