/* test_gpu_tp.c — tensor parallelism through the NCCL path on the GPUs present: the tiny dense
 * and MoE models on t = 1 (and t = 2 when two GPUs exist) CUDA ranks give the same greedy tokens
 * as the CPU backend. Skipped without a GPU or without NCCL in the build. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "check.h"
#include "cuda_backend.h"
#include "model/runner.h"
#include "model/testmodel.h"
#include "parallel/tp.h"

#define NGEN 12

static int greedy(g4_model *m, g4_step_fn fn, void *ctx, const int32_t *prompt, int n, int32_t *out) {
    g4_error err = {{0}};
    g4_runner *r = g4_runner_create(m, &err);
    if (!r) return -1;
    if (fn) g4_runner_set_step_fn(r, fn, ctx);
    int V = m->full_cfg.vocab, seq = g4_runner_seq_open(r, &err), rc = 0;
    float *lg = malloc(sizeof(float) * V);
    g4_runner_chunk c = {seq, n, prompt, 0};
    for (int i = 0; i < NGEN && rc == 0; i++) {
        rc = g4_runner_step(r, &c, 1, lg, &err);
        out[i] = g4_argmax(lg, V);
        c = (g4_runner_chunk){seq, 1, &out[i], 0};
    }
    CHECK(rc == 0, "%s", err.msg);
    free(lg);
    g4_runner_free(r);
    return rc;
}

int main(void) {
#ifndef G4_HAVE_NCCL
    return check_skip("this build has no NCCL");
#else
    int ngpu = g4_cuda_device_count();
    if (ngpu < 1) return check_skip("no CUDA device");
    const char *kinds[2] = {"tiny-dense", "tiny-moe"};
    for (int k = 0; k < 2; k++) {
        char dir[256];
        snprintf(dir, sizeof dir, "/tmp/g4_test_gpu_tp_%s_%d", kinds[k], (int)getpid());
        g4_config cfg;
        g4_error err = {{0}};
        REQUIRE(!g4_testmodel_config(&cfg, kinds[k], &err) && !g4_testmodel_write(&cfg, 99, dir, &err), "%s", err.msg);
        g4_model_opts o;
        g4_model_opts_default(&o);
        o.max_seqs = 2, o.max_step_tokens = 64, o.max_model_len = 128;
        int32_t prompt[20], ref[NGEN], got[NGEN];
        for (int i = 0; i < 20; i++) prompt[i] = 1000 + 7919 * i % 200000;
        g4_backend *cpu = g4_backend_cpu_create(&err);
        g4_model *m = NULL;
        REQUIRE(!g4_model_open(&m, dir, cpu, &o, &err), "%s", err.msg);
        greedy(m, NULL, NULL, prompt, 20, ref);
        g4_model_close(m);
        g4_backend_destroy(cpu);
        for (int t = 1; t <= 2 && t <= ngpu; t++) {
            g4_tp *tp = g4_tp_open(dir, "cuda", t, &o, &err);
            CHECK(tp != NULL, "%s t=%d: %s", kinds[k], t, err.msg);
            if (!tp) continue;
            greedy(g4_tp_model(tp, 0), g4_tp_step, tp, prompt, 20, got);
            CHECK(!memcmp(ref, got, sizeof ref), "%s t=%d: greedy tokens differ from the CPU backend", kinds[k], t);
            printf("%s: t=%d over NCCL matches the CPU backend's %d greedy tokens\n", kinds[k], t, NGEN);
            g4_tp_close(tp);
        }
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        CHECK(system(cmd) == 0, "cleanup");
    }
    return check_summary();
#endif
}
