/* test_gpu_graph.c — decode steps replayed from recorded CUDA graphs give exactly the logits of
 * running them op by op:
 *   tiny-dense and tiny-moe on the CUDA backend, a prompt per sequence then decode steps (one
 *   token per sequence: the steps the model records), once with graphs (the default) and once
 *   with opts.no_graphs; logits must be bitwise equal (same kernels, same arguments), and the
 *   graph run must have recorded at least one graph and replayed it;
 *   with the simple MoE path, which synchronises with the host inside the step, recording must
 *   fail cleanly and the step run eagerly with the same logits.
 * On the emulated target this also proves the decode step is legal to capture (no host sync,
 * no allocation inside). Exit 77 without a device. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "cuda_backend.h"
#include "model/gemma4.h"
#include "model/testmodel.h"
#include "tf_compare.h"

#define N_DEC 6

static int run(g4_backend *be, const char *dir, const tf_stream *st, int no_graphs, float *logits,
               g4_model_graph_stats *gs) {
    g4_error err = {{0}};
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_step_tokens = 64, o.max_seqs = 4, o.block_size = 4, o.max_model_len = 128, o.no_graphs = no_graphs;
    g4_model *m = NULL;
    int rc = g4_model_open(&m, dir, be, &o, &err) || tf_run(m, NULL, NULL, st, logits, &err);
    CHECK(!rc, "run (no_graphs=%d): %s", no_graphs, err.msg);
    if (m) {
        g4_model_graph_stats_get(m, gs);
        g4_model_close(m);
    }
    return rc;
}

static void one(g4_backend *be, const char *kind, int simple_moe) {
    g4_error err = {{0}};
    g4_config cfg;
    char dir[256];
    snprintf(dir, sizeof dir, "/tmp/g4_test_gpu_graph_%s_%d", kind, (int)getpid());
    REQUIRE_VOID(!g4_testmodel_config(&cfg, kind, &err) && !g4_testmodel_write(&cfg, 4321, dir, &err), "%s", err.msg);
    tf_stream st;
    tf_stream_make(&st, cfg.vocab, 99, 2, 11, 6, N_DEC);
    int R = tf_rows(&st);
    float *a = malloc((size_t)R * cfg.vocab * 4), *b = malloc((size_t)R * cfg.vocab * 4);
    REQUIRE_VOID(a && b, "out of memory");
    g4_model_graph_stats ga = {0}, gb = {0};
    if (!run(be, dir, &st, 0, a, &ga) && !run(be, dir, &st, 1, b, &gb)) {
        int same = !memcmp(a, b, (size_t)R * cfg.vocab * 4);
        printf("%s%s: graphs recorded %ld, replays %ld, not recordable %ld; logits %s op by op\n", kind,
               simple_moe ? " (simple MoE path)" : "", ga.recorded, ga.replays, ga.record_failures,
               same ? "bitwise equal to" : "DIFFERENT from");
        CHECK(same, "%s: replayed logits differ from op by op", kind);
        CHECK(gb.recorded == 0 && gb.replays == 0, "no_graphs still recorded");
        if (simple_moe && cfg.moe) {
            CHECK(ga.record_failures >= 1 && ga.replays == 0, "the host-synchronising MoE path was recorded");
        } else {
            CHECK(ga.recorded >= 1 && ga.replays >= N_DEC - 2 && ga.record_failures == 0,
                  "%s: %ld recorded, %ld replays, %ld failures", kind, ga.recorded, ga.replays, ga.record_failures);
        }
    }
    free(a);
    free(b);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    if (g4_cuda_device_count() < 1) return check_skip("no CUDA device");
    g4_error err = {{0}};
    g4_backend *gpu = g4_backend_cuda_create(NULL, &err);
    REQUIRE(gpu, "cuda backend: %s", err.msg);
    one(gpu, "tiny-dense", 0);
    one(gpu, "tiny-moe", 0);
    g4_backend_destroy(gpu);
    gpu = g4_backend_cuda_create(&tf_backend_opts, &err); /* the simple MoE path */
    REQUIRE(gpu, "cuda backend: %s", err.msg);
    one(gpu, "tiny-moe", 1);
    g4_backend_destroy(gpu);
    return check_summary();
}
