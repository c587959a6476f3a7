/* main_grpc.c - g4serve-grpc: a model served over gRPC only (tests, demos, gRPC-only deploys).
 *
 * Opens a model directory (by default writes the tiny-dense random test checkpoint there when
 * it has no config.json), loads a tokenizer.json, creates the engine on the CPU backend (or
 * --backend cuda) and serves g4serve.v1, KServe v2 and Health until SIGINT/SIGTERM, then stops
 * cleanly. --port-file writes the bound port (use --port 0 for an ephemeral one). The full
 * server with HTTP is g4serve (csrc/server/main.c), which starts this same gRPC server. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/backend.h"
#include "engine/engine.h"
#include "engine/sampling.h"
#include "model/gemma4.h"
#include "model/testmodel.h"
#include "server/detok_seam.h"
#include "server/grpc/grpc_server.h"
#include "text/detokenizer.h"
#include "text/tokenizer.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig, g_stop = 1; }

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [--model DIR] [--tokenizer FILE] [--host ADDR] [--port N] [--port-file FILE]\n"
            "          [--served-name NAME] [--backend cpu|cuda] [--threads N] [--max-running N]\n"
            "          [--max-waiting N] [--max-model-len N]\n"
            "  --model DIR       checkpoint dir; the tiny-dense test model is written there if it has\n"
            "                    no config.json (default /tmp/g4serve-tiny-dense)\n"
            "  --port N          default $NIM_GRPC_API_PORT or 8001; 0 = any free port\n"
            "  --served-name     default $NIM_SERVED_MODEL_NAME or g4-tiny\n",
            argv0);
}

int main(int argc, char **argv) {
    const char *dir = "/tmp/g4serve-tiny-dense", *tokpath = "tests/text/data/tokenizer.json";
    const char *port_file = NULL, *backend = "cpu";
    g4_grpc_config gc;
    g4_grpc_config_default(&gc);
    gc.served_name = getenv("NIM_SERVED_MODEL_NAME") ? getenv("NIM_SERVED_MODEL_NAME") : "g4-tiny";
    if (getenv("NIM_GRPC_API_PORT")) gc.port = atoi(getenv("NIM_GRPC_API_PORT"));
    int max_running = 32, max_waiting = 1024, max_model_len = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            usage(argv[0]);
            return 2;
        }
        if (!strcmp(a, "--model")) dir = v;
        else if (!strcmp(a, "--tokenizer")) tokpath = v;
        else if (!strcmp(a, "--host")) gc.host = v;
        else if (!strcmp(a, "--port")) gc.port = atoi(v);
        else if (!strcmp(a, "--port-file")) port_file = v;
        else if (!strcmp(a, "--served-name")) gc.served_name = v;
        else if (!strcmp(a, "--backend")) backend = v;
        else if (!strcmp(a, "--threads")) gc.n_threads = atoi(v);
        else if (!strcmp(a, "--max-running")) max_running = atoi(v);
        else if (!strcmp(a, "--max-waiting")) max_waiting = atoi(v);
        else if (!strcmp(a, "--max-model-len")) max_model_len = atoi(v);
        else {
            usage(argv[0]);
            return 2;
        }
        i++;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);

    g4_error err = {{0}};
    g4_backend *be = NULL;
    g4_model *m = NULL;
    g4_tokenizer *tok = NULL;
    g4_engine *eng = NULL;
    g4_grpc_server *srv = NULL;
    int rc = 1;
    gc.model_path = dir;
    if (!(srv = g4_grpc_server_start(&gc, &err))) goto out;
    fprintf(stderr, "g4serve-grpc: listening on %s:%d\n", gc.host, g4_grpc_server_port(srv));

    char cfgpath[4096];
    snprintf(cfgpath, sizeof cfgpath, "%s/config.json", dir);
    struct stat sb;
    if (stat(cfgpath, &sb) != 0) {
        g4_config cfg;
        if (g4_testmodel_config(&cfg, "tiny-dense", &err) || g4_testmodel_write(&cfg, 1, dir, &err)) goto out;
        fprintf(stderr, "g4serve-grpc: wrote the tiny-dense test model to %s\n", dir);
    }
    g4_backend_options bo;
    if (g4_backend_options_from_env(&bo, &err) || !(be = g4_backend_create(backend, &bo, &err))) goto out;
    g4_model_opts mo;
    g4_model_opts_default(&mo);
    mo.max_seqs = max_running;
    if (max_model_len > 0) mo.max_model_len = max_model_len;
    if (g4_model_open(&m, dir, be, &mo, &err)) goto out;
    if (g4_tokenizer_load(tokpath, &tok, &err)) goto out;
    g4_engine_opts eo;
    g4_engine_opts_from_model(&eo, m);
    if (g4_sampling_load_defaults(&eo.defaults, dir, &err)) goto out;
    eo.max_running = max_running;
    eo.max_waiting = max_waiting;
    g4_executor ex;
    g4_executor_local(&ex, m);
    g4_detok_iface dt = g4_detok_iface_for(tok);
    if (!(eng = g4_engine_create(&eo, &ex, &dt, &err))) goto out;
    g4_grpc_model gm = {.engine = eng, .tok = tok, .cfg = m->full_cfg, .eo = eo, .tp_size = 1};
    g4_grpc_server_attach(srv, &gm);
    g4_grpc_server_set_ready(srv, true);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d\n", g4_grpc_server_port(srv)) < 0 || fclose(f) || rename(tmp, port_file)) {
            g4_fail(&err, "cannot write --port-file %s", port_file);
            goto out;
        }
    }
    fprintf(stderr, "g4serve-grpc: ready: model %s as \"%s\", max_model_len %d, max_running %d\n", dir,
            gc.served_name, eo.max_model_len, eo.max_running);
    while (!g_stop) usleep(50 * 1000);
    fprintf(stderr, "g4serve-grpc: stopping\n");
    rc = 0;
out:
    if (rc) fprintf(stderr, "g4serve-grpc: %s\n", err.msg);
    g4_grpc_server_stop(srv); /* before the engine: in-flight calls are cancelled through it */
    if (eng) g4_engine_destroy(eng);
    if (tok) g4_tokenizer_free(tok);
    g4_model_close(m);
    if (be) g4_backend_destroy(be);
    return rc;
}
