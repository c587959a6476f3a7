/* test_gpu_model.c — the whole forward pass on the CUDA backend vs the CPU backend on the
 * tiny random checkpoints (tiny-dense, tiny-moe: hidden 64, 6 layers, globals at 2 and 5,
 * window 16, vocab 262144) through model/runner.h. Two sequences (prompts of 23 and 7 tokens,
 * prefilled together in one step, longer than the window and crossing blocks of 4), then 16
 * greedy decode steps with both sequences in every step. Each backend feeds back its own
 * argmax: the generated tokens must be identical, and every logit row within 5 % of its
 * max |logit| (bf16 activations through 6 layers vs the f32 oracle; softcap 30). */
#include <unistd.h>

#include "gpu_harness.h"
#include "model/gemma4.h"
#include "model/runner.h"
#include "model/testmodel.h"

#define NGEN 16
#define MODEL_TOL 5e-2f

static void run_model(gh_pair *p, const char *name) {
    g4_error err = {{0}};
    g4_config cfg;
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/g4_test_gpu_model_%s_%d", name, (int)getpid());
    if (g4_testmodel_config(&cfg, name, &err) || g4_testmodel_write(&cfg, 1234, dir, &err)) {
        CHECK(0, "%s: %s", name, err.msg);
        return;
    }
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_step_tokens = 64;
    o.max_seqs = 4;
    o.block_size = 4;
    o.max_model_len = 128;
    g4_backend *be[2] = {p->cpu, p->gpu};
    g4_model *m[2] = {0};
    g4_runner *r[2] = {0};
    int V = cfg.vocab, ok = 1;
    for (int b = 0; b < 2 && ok; b++) {
        ok = !g4_model_open(&m[b], dir, be[b], &o, &err) && (r[b] = g4_runner_create(m[b], &err)) != NULL;
        CHECK(ok, "%s on %s: %s", name, be[b]->ops->name, err.msg);
    }
    int32_t prompt[2][23];
    uint64_t rs = 777;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < 23; i++) prompt[s][i] = 3 + (int)((gh_rand(&rs) * 0.5f + 0.5f) * (V - 4));
    int lens[2] = {23, 7}, seq[2][2];
    float *lg[2] = {malloc((size_t)30 * V * 4), malloc((size_t)30 * V * 4)};
    int32_t gen[2][2][NGEN];
    for (int b = 0; b < 2 && ok; b++) {
        for (int s = 0; s < 2; s++) seq[b][s] = g4_runner_seq_open(r[b], &err);
        g4_runner_chunk ch[2] = {{seq[b][0], lens[0], prompt[0], 1}, {seq[b][1], lens[1], prompt[1], 0}};
        ok = seq[b][0] >= 0 && seq[b][1] >= 0 && !g4_runner_step(r[b], ch, 2, lg[b], &err);
        CHECK(ok, "%s prefill on %s: %s", name, be[b]->ops->name, err.msg);
    }
    if (ok) {
        char what[96];
        snprintf(what, sizeof what, "%s prefill logits (24 rows)", name);
        CHECK(gh_close_enough(what, lg[1], lg[0], (size_t)24 * V, MODEL_TOL), "%s", what);
    }
    /* greedy decode; next tokens from the last row of each chunk of the previous step */
    int32_t next[2][2];
    for (int b = 0; b < 2 && ok; b++) {
        next[b][0] = g4_argmax(lg[b] + (size_t)22 * V, V);
        next[b][1] = g4_argmax(lg[b] + (size_t)23 * V, V);
    }
    double worst = 0;
    for (int step = 0; step < NGEN && ok; step++) {
        for (int b = 0; b < 2 && ok; b++) {
            gen[b][0][step] = next[b][0];
            gen[b][1][step] = next[b][1];
            g4_runner_chunk ch[2] = {{seq[b][0], 1, &gen[b][0][step], 0}, {seq[b][1], 1, &gen[b][1][step], 0}};
            ok = !g4_runner_step(r[b], ch, 2, lg[b], &err);
            CHECK(ok, "%s decode %d on %s: %s", name, step, be[b]->ops->name, err.msg);
            if (ok) {
                next[b][0] = g4_argmax(lg[b], V);
                next[b][1] = g4_argmax(lg[b] + V, V);
            }
        }
        if (!ok) break;
        double mr = 0, me = 0;
        for (size_t i = 0; i < (size_t)2 * V; i++) {
            mr = fmax(mr, fabs(lg[0][i]));
            me = fmax(me, fabs(lg[1][i] - lg[0][i]));
        }
        if (me / mr > worst) worst = me / mr;
        CHECK(me <= MODEL_TOL * mr, "%s decode %d: logits differ by %.3g of max %.3g", name, step, me, mr);
    }
    int same = 1;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < NGEN; i++) same &= gen[0][s][i] == gen[1][s][i];
    printf("%s: %d greedy tokens x 2 sequences %s; worst decode logit error %.3g%% of max\n", name, NGEN,
           same ? "identical" : "DIFFER", 100 * worst);
    if (ok) CHECK(same, "%s: greedy tokens differ between CPU and CUDA", name);
    for (int b = 0; b < 2; b++) {
        if (r[b]) g4_runner_free(r[b]);
        if (m[b]) g4_model_close(m[b]);
        free(lg[b]);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    gh_pair p;
    int rc = gh_open(&p);
    if (rc == CHECK_SKIP_CODE) return check_skip("no CUDA device");
    REQUIRE(rc == 0, "backends");
    run_model(&p, "tiny-dense");
    run_model(&p, "tiny-moe");
    gh_close(&p);
    return check_summary();
}
