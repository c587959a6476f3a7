/* test_debug_sync.c — G4_DEBUG_SYNC, the fault-localising switch of the forward pass (gemma4.c).
 *
 * A test double of a queueing backend: the CPU backend's op table with `attention` or
 * `moe_experts` wrapped so that, at a chosen layer, the op "faults" either at once (returns -1,
 * like a bad launch) or asynchronously (returns 0 and leaves a pending fault that the next
 * `sync` reports, like a CUDA kernel's illegal address). Checks:
 *   - a failing op's message names the op, its layer and its shapes (switch off or on);
 *   - an asynchronous fault without the switch surfaces only at the step's closing sync, without
 *     the layer (why the switch exists);
 *   - with G4_DEBUG_SYNC=1 when the model is opened (and unset afterwards: it is read once) the
 *     same fault is pinned on the op and layer that caused it, with its shapes;
 *   - the switch syncs after every op (counted) and changes no logits; G4_DEBUG_SYNC=0 is off.
 * CPU only: the CPU backend's sync is a no-op, the double adds the fault. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "check.h"
#include "model/gemma4.h"
#include "model/runner.h"
#include "model/testmodel.h"

#define NPROMPT 7

enum { FAULT_NONE, FAULT_NOW, FAULT_ASYNC };

/* The double's state (one backend at a time in this test). */
static struct {
    const g4_backend_ops *cpu; /* the wrapped table */
    int mode, layer;           /* which fault, at which layer */
    int pending;               /* an asynchronous fault waits for the next sync */
    int moe_layer;             /* layer of the current moe_experts call (counted) */
    int n_layers;
    long syncs;
} dbl;

static int dbl_sync(void *ctx, g4_error *err) {
    dbl.syncs++;
    if (dbl.pending) {
        dbl.pending = 0;
        return g4_fail(err, "injected device fault (illegal address)");
    }
    return dbl.cpu->sync(ctx, err);
}

/* Fires the configured fault when `layer` is the chosen one; 1 = the op must fail now. */
static int dbl_fault(int layer, g4_error *err) {
    if (dbl.mode == FAULT_NONE || layer != dbl.layer) return 0;
    if (dbl.mode == FAULT_ASYNC) {
        dbl.pending = 1;
        return 0;
    }
    g4_fail(err, "injected launch failure");
    return 1;
}

static int dbl_attention(void *ctx, void *out, const void *q, const g4_weight *k_norm, const g4_attn_geom *g,
                         const g4_kv_layer *kv, const g4_step_dev *s, g4_error *err) {
    if (dbl.cpu->attention(ctx, out, q, k_norm, g, kv, s, err)) return -1;
    return dbl_fault(g->layer, err) ? -1 : 0;
}

static int dbl_moe_experts(void *ctx, void *y, const void *x, const int32_t *ids, const float *weights,
                           const g4_weight *gate_up, const g4_weight *down, int T, int top_k, g4_error *err) {
    int layer = dbl.moe_layer++ % dbl.n_layers; /* called once per layer, in order */
    if (dbl.cpu->moe_experts(ctx, y, x, ids, weights, gate_up, down, T, top_k, err)) return -1;
    return dbl_fault(layer + 100, err) ? -1 : 0; /* layers of moe faults are offset by 100 */
}

typedef struct {
    g4_backend *be;
    g4_backend_ops ops;
    g4_model *m;
    g4_runner *r;
    int seq;
} session;

/* Opens the model in dir on the double, with G4_DEBUG_SYNC set to env (NULL: unset) during the
 * open only. */
static int open_session(session *ss, const char *dir, const char *env) {
    g4_error err = {{0}};
    memset(ss, 0, sizeof *ss);
    ss->be = g4_backend_cpu_create(&err);
    if (!ss->be) return fprintf(stderr, "cpu backend: %s\n", err.msg), -1;
    dbl.cpu = ss->be->ops;
    ss->ops = *ss->be->ops;
    ss->ops.sync = dbl_sync;
    ss->ops.attention = dbl_attention;
    ss->ops.moe_experts = dbl_moe_experts;
    ss->be->ops = &ss->ops; /* destroy() still frees the CPU backend's ctx */
    if (env) setenv("G4_DEBUG_SYNC", env, 1);
    else unsetenv("G4_DEBUG_SYNC");
    g4_model_opts o;
    g4_model_opts_default(&o);
    o.max_seqs = 2, o.max_step_tokens = 32, o.max_model_len = 64;
    int rc = g4_model_open(&ss->m, dir, ss->be, &o, &err);
    unsetenv("G4_DEBUG_SYNC"); /* read once at open: the forward must not look again */
    if (rc || !(ss->r = g4_runner_create(ss->m, &err)) || (ss->seq = g4_runner_seq_open(ss->r, &err)) < 0)
        return fprintf(stderr, "open %s: %s\n", dir, err.msg), -1;
    dbl.n_layers = ss->m->cfg.n_layers;
    return 0;
}

static void close_session(session *ss) {
    g4_runner_free(ss->r);
    g4_model_close(ss->m);
    if (ss->be) g4_backend_destroy(ss->be);
}

/* One prefill step of NPROMPT tokens with fault (mode, layer); returns its rc, message in err. */
static int step(session *ss, int mode, int layer, float *logits, g4_error *err) {
    static const int32_t prompt[NPROMPT] = {2, 818, 3010, 17, 99, 1234, 7};
    dbl.mode = mode, dbl.layer = layer, dbl.pending = 0, dbl.moe_layer = 0, dbl.syncs = 0;
    memset(err, 0, sizeof *err);
    g4_runner_seq_close(ss->r, ss->seq);
    ss->seq = g4_runner_seq_open(ss->r, err);
    g4_runner_chunk c = {ss->seq, NPROMPT, prompt, 0};
    return g4_runner_step(ss->r, &c, 1, logits, err);
}

#define HAS(msg, s) (strstr((msg), (s)) != NULL)

static void run_dense(const char *dir) {
    session plain, dbg;
    REQUIRE_VOID(open_session(&plain, dir, NULL) == 0, "open without G4_DEBUG_SYNC");
    REQUIRE_VOID(open_session(&dbg, dir, "1") == 0, "open with G4_DEBUG_SYNC=1");
    CHECK(!plain.m->debug_sync && dbg.m->debug_sync, "debug_sync flags %d %d", plain.m->debug_sync, dbg.m->debug_sync);
    const g4_config *c = &plain.m->cfg;
    int V = c->vocab, L = 2, nq = c->n_heads;
    float *a = malloc(sizeof(float) * V), *b = malloc(sizeof(float) * V);
    g4_error err;
    char want[96];

    /* no fault: identical logits; one sync per step without the switch, one per op with it */
    CHECK(step(&plain, FAULT_NONE, 0, a, &err) == 0, "%s", err.msg);
    long plain_syncs = dbl.syncs;
    CHECK(step(&dbg, FAULT_NONE, 0, b, &err) == 0, "%s", err.msg);
    CHECK(memcmp(a, b, sizeof(float) * V) == 0, "G4_DEBUG_SYNC changed the logits");
    CHECK(plain_syncs == 1, "%ld syncs in a step without the switch", plain_syncs);
    CHECK(dbl.syncs >= 10L * c->n_layers, "%ld syncs in a step of %d layers with the switch", dbl.syncs, c->n_layers);

    /* an op that fails at once is named, with its layer and shapes, switch or not */
    snprintf(want, sizeof want, "layer %d attention [q[%d,%d,", L, NPROMPT, nq);
    CHECK(step(&plain, FAULT_NOW, L, a, &err) != 0, "injected failure not reported");
    CHECK(HAS(err.msg, want) && HAS(err.msg, "injected launch failure"), "message: %s (want %s)", err.msg, want);
    printf("failing op:                      %s\n", err.msg);

    /* an asynchronous fault without the switch: seen only at the closing sync */
    CHECK(step(&plain, FAULT_ASYNC, L, a, &err) != 0, "async fault not reported");
    CHECK(HAS(err.msg, "sync [") && HAS(err.msg, "injected device fault") && !HAS(err.msg, "attention"), "message: %s",
          err.msg);
    printf("async fault, G4_DEBUG_SYNC unset: %s\n", err.msg);

    /* the same fault with the switch: pinned on the op, layer and shapes that caused it */
    CHECK(step(&dbg, FAULT_ASYNC, L, a, &err) != 0, "async fault not reported with the switch");
    CHECK(HAS(err.msg, want) && HAS(err.msg, "G4_DEBUG_SYNC") && HAS(err.msg, "injected device fault"),
          "message: %s (want %s)", err.msg, want);
    CHECK(dbl.pending == 0, "fault left pending");
    printf("async fault, G4_DEBUG_SYNC=1:     %s\n", err.msg);

    /* after a reported fault the model still runs (the double's fault is not sticky) */
    CHECK(step(&dbg, FAULT_NONE, 0, b, &err) == 0, "%s", err.msg);
    free(a), free(b);
    close_session(&plain);
    close_session(&dbg);

    /* G4_DEBUG_SYNC=0 and empty mean off */
    session off;
    REQUIRE_VOID(open_session(&off, dir, "0") == 0, "open with G4_DEBUG_SYNC=0");
    CHECK(!off.m->debug_sync, "G4_DEBUG_SYNC=0 turned the switch on");
    close_session(&off);
    REQUIRE_VOID(open_session(&off, dir, "") == 0, "open with G4_DEBUG_SYNC empty");
    CHECK(!off.m->debug_sync, "empty G4_DEBUG_SYNC turned the switch on");
    close_session(&off);
}

static void run_moe(const char *dir) {
    session dbg;
    REQUIRE_VOID(open_session(&dbg, dir, "1") == 0, "open MoE with G4_DEBUG_SYNC=1");
    const g4_config *c = &dbg.m->cfg;
    int L = c->n_layers - 1;
    float *a = malloc(sizeof(float) * c->vocab);
    g4_error err;
    char want[96];
    snprintf(want, sizeof want, "layer %d moe_experts [x[%d,%d] gate_up[%d,", L, NPROMPT, c->hidden, c->n_experts);
    CHECK(step(&dbg, FAULT_ASYNC, L + 100, a, &err) != 0, "MoE async fault not reported");
    CHECK(HAS(err.msg, want) && HAS(err.msg, "top_k="), "message: %s (want %s)", err.msg, want);
    printf("MoE async fault, G4_DEBUG_SYNC=1: %s\n", err.msg);
    free(a);
    close_session(&dbg);
}

static int write_model(const char *kind, char *dir, size_t cap) {
    g4_error err = {{0}};
    g4_config cfg;
    snprintf(dir, cap, "/tmp/g4_test_debug_sync_%s_%d", kind, (int)getpid());
    if (g4_testmodel_config(&cfg, kind, &err) || (cfg.vocab = 4096, 0) || g4_testmodel_write(&cfg, 5, dir, &err)) {
        fprintf(stderr, "write %s: %s\n", kind, err.msg);
        return -1;
    }
    return 0;
}

static void remove_dir(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(void) {
    char dense[256], moe[256];
    REQUIRE(write_model("tiny-dense", dense, sizeof dense) == 0, "tiny-dense");
    REQUIRE(write_model("tiny-moe", moe, sizeof moe) == 0, "tiny-moe");
    run_dense(dense);
    run_moe(moe);
    remove_dir(dense);
    remove_dir(moe);
    return check_summary();
}
