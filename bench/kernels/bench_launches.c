/* bench_launches.c — g4-bench-launches: device work items (kernel launches and cuBLAS GEMMs)
 * per decode token of the whole model, counted by the CUDA backend (launch_count, backend.h)
 * over eager decode steps (graphs off: a replay is one launch of everything counted here), and
 * host-to-device uploads per step (upload_count; 1: the step's one staged copy).
 *
 * A count, not a timing: it depends on the layer structure (layers, their types, heads, head
 * dims, experts, top-k) and the kernel paths, not on the widths, so on the emulated CUDA target
 * (docs/gpu-emulation.md) it runs the real 31B / 26B-A4B layer structure with the hidden, MLP
 * and vocabulary widths cut (--reduced, the default there) and gives the same count a GPU gives.
 * Dummy weights, header-only checkpoint (model/testmodel.h). Per model and batch B:
 *     launches_per_step  = Δlaunch_count over `steps` decode steps of B tokens / steps
 *     launches_per_token = launches_per_step / B
 *     uploads_per_step   = Δupload_count over the same steps / steps
 * Prints one JSON object. Exits 77 without a CUDA device (real or emulated). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "cuda_backend.h"
#include "model/runner.h"
#include "model/testmodel.h"

/* Emulated kernels run on the CPU: the cut widths keep a 60-layer step to seconds there. */
static void reduce_widths(g4_config *c) {
    c->hidden = 256;
    c->intermediate = c->moe ? 256 : 512;
    if (c->moe) c->moe_intermediate = 64;
    c->vocab = 4096;
}

/* Launches per decode step of B sequences at context ctx (and *uploads, uploads per step); -1 on error. */
static double count_model(const char *name, int reduced, int B, int ctx, int steps, double *uploads, g4_error *err) {
    g4_config cfg;
    char dir[] = "/tmp/g4-bench-launches-XXXXXX";
    if (!mkdtemp(dir)) return g4_fail(err, "mkdtemp failed");
    double out = -1;
    g4_backend *be = NULL;
    g4_model *m = NULL;
    g4_runner *r = NULL;
    float *lg = NULL;
    if (g4_testmodel_config(&cfg, name, err)) goto done;
    if (reduced) reduce_widths(&cfg);
    if (g4_testmodel_write_sparse(&cfg, dir, err)) goto done;
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_seqs = B, o.max_step_tokens = ctx > B ? ctx : B, o.max_model_len = ctx + steps + 16;
    o.dummy_seed = 1, o.no_graphs = 1;
    g4_backend_options bo;
    if (g4_backend_options_from_env(&bo, err) || !(be = g4_backend_create("cuda", &bo, err))) goto done;
    if (!g4_backend_supports(be, G4_OP_LAUNCH_COUNT, G4_DT_F32)) {
        g4_fail(err, "backend %s does not count launches", be->ops->name);
        goto done;
    }
    if (g4_model_open(&m, dir, be, &o, err) || !(r = g4_runner_create(m, err))) goto done;
    lg = malloc(sizeof(float) * (size_t)cfg.vocab * (size_t)(ctx > B ? ctx : B));
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)ctx);
    int seqs[256];
    for (int s = 0; s < B; s++) {
        seqs[s] = g4_runner_seq_open(r, err);
        for (int i = 0; i < ctx - 1; i++) ids[i] = 3 + (i * 7919 + s) % (cfg.vocab - 3);
        g4_runner_chunk ch = {seqs[s], ctx - 1, ids, 0};
        if (seqs[s] < 0 || g4_runner_step(r, &ch, 1, lg, err)) {
            free(ids);
            goto done;
        }
    }
    free(ids);
    uint64_t before = 0, up_before = 0;
    for (int k = 0; k <= steps; k++) { /* step 0 warms plans and scratch */
        if (k == 1) before = be->ops->launch_count(be->ctx), up_before = be->ops->upload_count(be->ctx);
        g4_runner_chunk ch[256];
        int32_t next[256];
        for (int s = 0; s < B; s++) {
            next[s] = 3 + (k * 31 + s) % (cfg.vocab - 3);
            ch[s] = (g4_runner_chunk){seqs[s], 1, &next[s], 0};
        }
        if (g4_runner_step(r, ch, B, lg, err)) goto done;
    }
    out = (double)(be->ops->launch_count(be->ctx) - before) / steps;
    *uploads = (double)(be->ops->upload_count(be->ctx) - up_before) / steps;
done:
    free(lg);
    g4_runner_free(r);
    g4_model_close(m);
    g4_backend_destroy(be);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "g4-bench-launches: could not remove %s\n", dir);
    return out;
}

int main(int argc, char **argv) {
#ifdef G4_CUDA_EMU
    int reduced = 1;
#else
    int reduced = 0;
#endif
    int batches[8] = {1, 8}, nb = 2, ctx = 32, steps = 2;
    const char *models[2] = {"31b", "26b-a4b"};
    int nm = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) models[0] = argv[++i], nm = 1;
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batches[0] = atoi(argv[++i]), nb = 1;
        else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) ctx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reduced")) reduced = 1;
        else if (!strcmp(argv[i], "--full")) reduced = 0;
        else {
            fprintf(stderr, "usage: %s [--model 31b|26b-a4b] [--batch B] [--ctx 32] [--steps 2] [--reduced|--full]\n",
                    argv[0]);
            return 2;
        }
    }
    if (batches[0] < 1 || batches[0] > 256 || ctx < 2 || steps < 1) {
        fprintf(stderr, "g4-bench-launches: bad arguments\n");
        return 2;
    }
    if (g4_cuda_device_count() < 1) {
        printf("{\"skipped\": \"no CUDA device\"}\n");
        return 77;
    }
#ifdef G4_CUDA_EMU
    const char *target = "emulated CUDA target (a count, not a timing)";
#else
    const char *target = "CUDA device";
#endif
    printf("{\"target\": \"%s\", \"widths\": \"%s\", \"ctx\": %d, \"steps\": %d, \"graphs\": false,\n \"counts\": [",
           target, reduced ? "reduced (hidden 256, MLP 256/512, experts' MLP 64, vocab 4096)" : "full", ctx, steps);
    g4_error err = {{0}};
    int rc = 0, first = 1;
    for (int mi = 0; mi < nm && !rc; mi++)
        for (int bi = 0; bi < nb && !rc; bi++) {
            int B = batches[bi];
            double up = 0, n = count_model(models[mi], reduced, B, ctx, steps, &up, &err);
            if (n < 0) {
                rc = 1;
                break;
            }
            printf("%s\n  {\"model\": \"%s\", \"batch\": %d, \"launches_per_step\": %.1f, \"launches_per_token\": %.2f, "
                   "\"uploads_per_step\": %.1f}",
                   first ? "" : ",", models[mi], B, n, n / B, up);
            first = 0;
        }
    printf("],\n \"error\": \"%s\"}\n", rc ? err.msg : "");
    return rc;
}
