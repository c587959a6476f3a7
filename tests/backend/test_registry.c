/* test_registry.c — backends by name (backend/registry.h), their options (backend/options.h),
 * the op table's supports query and the assert vocabulary (base/invariant.h).
 *
 * Checks: options_from_env maps G4_ATTN_PATH / G4_MOE_PATH to the enums and refuses a wrong
 * spelling naming the variable; creation by name refuses unknown kinds (and "cuda" in builds
 * without it) with a message; the CPU kind's communicator all-reduces across two threads; the
 * CPU backend answers supports (no graphs, weight dtypes); the model asks supports before
 * loading (a backend that refuses bf16 weights fails the open with a message, not a crash);
 * a broken invariant aborts with file:line, the condition and the message. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/registry.h"
#include "base/invariant.h"
#include "check.h"
#include "model/gemma4.h"
#include "model/testmodel.h"

static void options(void) {
    g4_backend_options o;
    g4_error err = {{0}};
    unsetenv("G4_ATTN_PATH");
    unsetenv("G4_MOE_PATH");
    CHECK(!g4_backend_options_from_env(&o, &err) && o.attn_path == G4_ATTN_AUTO && o.moe_path == G4_MOE_PATH_FAST &&
              o.device == 0,
          "defaults: %s", err.msg);
    setenv("G4_ATTN_PATH", "simple", 1);
    setenv("G4_MOE_PATH", "simple", 1);
    CHECK(!g4_backend_options_from_env(&o, &err) && o.attn_path == G4_ATTN_SIMPLE && o.moe_path == G4_MOE_PATH_SIMPLE,
          "simple paths: %s", err.msg);
    setenv("G4_ATTN_PATH", "decode", 1);
    CHECK(!g4_backend_options_from_env(&o, &err) && o.attn_path == G4_ATTN_DECODE, "decode: %s", err.msg);
    setenv("G4_ATTN_PATH", "fastest", 1);
    CHECK(g4_backend_options_from_env(&o, &err) == -1 && strstr(err.msg, "G4_ATTN_PATH=fastest"), "bad attn: %s",
          err.msg);
    unsetenv("G4_ATTN_PATH");
    setenv("G4_MOE_PATH", "SIMPLE", 1);
    CHECK(g4_backend_options_from_env(&o, &err) == -1 && strstr(err.msg, "G4_MOE_PATH"), "bad moe: %s", err.msg);
    unsetenv("G4_MOE_PATH");
    for (int p = G4_ATTN_AUTO; p <= G4_ATTN_DECODE; p++) { /* names and values round-trip */
        g4_attn_path back;
        CHECK(!g4_attn_path_parse(g4_attn_path_name((g4_attn_path)p), &back) && (int)back == p, "attn path %d", p);
    }
}

static void by_name(void) {
    g4_error err = {{0}};
    CHECK(!g4_backend_create("tpu", NULL, &err) && strstr(err.msg, "unknown backend \"tpu\""), "tpu: %s", err.msg);
#ifndef G4_HAVE_CUDA
    CHECK(!g4_backend_create("cuda", NULL, &err) && strstr(err.msg, "no CUDA backend"), "cuda: %s", err.msg);
#endif
    g4_backend *be = g4_backend_create("cpu", NULL, &err);
    CHECK(be && !strcmp(be->ops->name, "cpu"), "cpu: %s", err.msg);
    if (be) {
        CHECK(be->ops->api_version == G4_BACKEND_API_VERSION, "api version %d", be->ops->api_version);
        CHECK(!g4_backend_supports(be, G4_OP_GRAPH, G4_DT_F32), "the CPU backend has no graphs");
        CHECK(g4_backend_supports(be, G4_OP_MATMUL, G4_DT_F32) && g4_backend_supports(be, G4_OP_SAMPLE, G4_DT_F32),
              "ops");
        CHECK(g4_backend_supports(be, G4_OP_LOAD_WEIGHT, G4_DT_BF16) &&
                  g4_backend_supports(be, G4_OP_LOAD_WEIGHT, G4_DT_F16) &&
                  !g4_backend_supports(be, G4_OP_LOAD_WEIGHT, G4_DT_I32),
              "weight dtypes");
        g4_backend_destroy(be);
    }
}

typedef struct {
    g4_comm *c;
    int rank, rc;
    float buf[3];
} rank_arg;

static void *rank_main(void *p) {
    rank_arg *a = p;
    g4_error err = {{0}};
    a->rc = a->c->all_reduce_sum(a->c, a->rank, a->buf, 3, G4_DT_F32, &err);
    return NULL;
}

static void cpu_comm(void) {
    g4_error err = {{0}};
    const g4_backend_kind *k = g4_backend_kind_find("cpu", &err);
    CHECK(k && !k->comm_join, "cpu kind: %s", err.msg);
    g4_comm *c = k ? k->comm_create(2, &err) : NULL;
    CHECK(c && c->size == 2, "comm: %s", err.msg);
    if (!c) return;
    rank_arg a[2] = {{c, 0, 0, {1, 2, 3}}, {c, 1, 0, {10, 20, 30.5f}}};
    pthread_t t[2];
    for (int r = 0; r < 2; r++) pthread_create(&t[r], NULL, rank_main, &a[r]);
    for (int r = 0; r < 2; r++) pthread_join(t[r], NULL);
    for (int r = 0; r < 2; r++)
        CHECK(!a[r].rc && a[r].buf[0] == 11 && a[r].buf[1] == 22 && a[r].buf[2] == 33.5f, "rank %d sum", r);
    CHECK(c->all_reduce_sum(c, 0, a[0].buf, 3, G4_DT_BF16, &err) == -1 && strstr(err.msg, "f32"), "bf16: %s", err.msg);
    g4_comm_destroy(c);
}

/* A CPU backend whose supports query refuses bf16 weights: the model's open must fail cleanly. */
static int no_bf16(void *ctx, g4_op op, g4_dtype dt) {
    (void)ctx;
    return !(op == G4_OP_LOAD_WEIGHT && dt == G4_DT_BF16);
}

static void model_asks(void) {
    g4_error err = {{0}};
    char dir[] = "/tmp/g4-test-registry-XXXXXX";
    g4_config cfg;
    if (!mkdtemp(dir) || g4_testmodel_config(&cfg, "tiny-dense", &err) || g4_testmodel_write(&cfg, 1, dir, &err)) {
        CHECK(0, "tiny model: %s", err.msg);
        return;
    }
    g4_backend *be = g4_backend_create("cpu", NULL, &err);
    CHECK(be != NULL, "cpu: %s", err.msg);
    if (!be) return;
    g4_backend_ops ops = *be->ops;
    ops.supports = no_bf16;
    be->ops = &ops;
    g4_model_opts o;
    g4_model_opts_default(&o);
    g4_model *m = NULL;
    CHECK(g4_model_open(&m, dir, be, &o, &err) == -1 && strstr(err.msg, "cannot load a BF16 weight"),
          "open on a backend without bf16 weights: %s", err.msg);
    g4_model_close(m);
    g4_backend_destroy(be);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0, "rm");
}

/* Runs G4_INVARIANT(false) in a child; returns what it printed on stderr and how it ended. */
static void invariant(void) {
    int fd[2];
    if (pipe(fd)) {
        CHECK(0, "pipe");
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        int slot = 9;
        G4_INVARIANT(slot < 4, "slot %d of 4", slot);
        _exit(0); /* not reached when the invariant aborts */
    }
    close(fd[1]);
    char out[512] = {0};
    size_t n = 0;
    ssize_t r;
    while (n < sizeof out - 1 && (r = read(fd[0], out + n, sizeof out - 1 - n)) > 0) n += (size_t)r;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT, "child ended with status %d, expected SIGABRT", st);
    CHECK(strstr(out, "test_registry.c:") && strstr(out, "invariant `slot < 4` broken: slot 9 of 4"), "stderr: %s",
          out);
}

int main(void) {
    options();
    by_name();
    cpu_comm();
    model_asks();
    invariant();
    return check_summary();
}
