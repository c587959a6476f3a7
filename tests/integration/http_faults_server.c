/* http_faults_server.c — a test server: the HTTP API (g4http) over the engine on the mock model
 * (tests/engine/mock_exec.h) with the real test tokenizer, where the engine thread cannot
 * allocate: this file replaces the engine's event allocation seam (engine/stream.h
 * g4_stream_alloc), so with --fail-event-allocs every copy of a token event and of an event's
 * text fails, while a request's preallocated last event (made at submit) still exists.
 * test_event_oom.py drives it with the openai client. With --vision it serves image parts as a
 * model with a vision tower would be served (the mock model ignores the soft tokens): what
 * test_images.py needs to check image intake before a multimodal checkpoint exists; the media
 * flags are g4serve's. Prints "g4serve: port N" when listening;
 * stops on SIGTERM / SIGINT. Test code only: g4serve never links it. */
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/stream.h"
#include "mock_exec.h"
#include "server/detok_seam.h"
#include "server/http/http_server.h"
#include "text/tokenizer.h"

static atomic_bool fail_event_allocs;

void *g4_stream_alloc(g4_stream_alloc_kind kind, size_t bytes) {
    if (kind != G4_STREAM_ALLOC_LAST && atomic_load(&fail_event_allocs)) return NULL;
    return calloc(1, bytes);
}

/* The mock model's "vision tower": one row of MOCK_HIDDEN values per soft token, from the image's
 * hash, so the engine's encode → cache → step path runs as with a real tower. */
enum { MOCK_HIDDEN = 4 };

static int mock_encode(void *ctx, const g4_mm_item *item, float *out, g4_error *err) {
    (void)ctx, (void)err;
    for (int i = 0; i < item->n_tokens * MOCK_HIDDEN; i++) out[i] = (float)((item->hash[0] >> (i % 64)) & 1);
    return 0;
}

int main(int argc, char **argv) {
    const char *tok_path = NULL;
    g4_http_config hc;
    g4_http_config_default(&hc);
    g4_error err = {{0}};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--fail-event-allocs")) atomic_store(&fail_event_allocs, true);
        else if (!strcmp(a, "--vision")) hc.vision_grid = INT_MAX; /* the mock tower takes any grid */
        else if (!strcmp(a, "--allowed-media-domains") && v && ++i) {
            if (g4_media_policy_add_domains(&hc.media, v, &err) < 0) {
                fprintf(stderr, "http_faults_server: %s\n", err.msg);
                return 2;
            }
        } else if (!strcmp(a, "--allowed-local-media-path") && v && ++i) hc.media.local_dir = v;
        else if (!strcmp(a, "--max-image-bytes") && v && ++i) hc.media.max_bytes = (size_t)atol(v);
        else if (!strcmp(a, "--max-image-pixels") && v && ++i) hc.max_image_pixels = atol(v);
        else if (!strcmp(a, "--media-fetch-timeout") && v && ++i) hc.media.timeout_ms = 1000L * atol(v);
        else tok_path = a;
    }
    if (!tok_path) {
        fprintf(stderr, "usage: %s TOKENIZER_JSON [--fail-event-allocs] [--vision] [media flags]\n", argv[0]);
        return 2;
    }
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* before any thread starts: main waits with sigwait */

    g4_tokenizer *tok = NULL;
    if (g4_tokenizer_load(tok_path, &tok, &err) < 0) {
        fprintf(stderr, "http_faults_server: %s\n", err.msg);
        return 1;
    }
    enum { BS = 16, MAXLEN = 1024 };
    int vocab = (int)g4_tokenizer_n_vocab(tok);
    mock_exec m;
    if (mock_exec_init(&m, vocab, BS, 64, MAXLEN / BS, 256, 256, false)) {
        fprintf(stderr, "http_faults_server: out of memory\n");
        return 1;
    }
    g4_executor ex;
    mock_exec_bind(&m, &ex);
    if (hc.vision_grid) { /* a tower for the engine to call: the mock model ignores the rows */
        ex.encode = mock_encode;
        ex.hidden = MOCK_HIDDEN;
    }
    int32_t eos[1] = {g4_tokenizer_specials(tok)->eos};
    g4_engine_opts eo = {.max_running = 4,
                         .max_waiting = 16,
                         .max_model_len = MAXLEN,
                         .step_token_budget = MAXLEN,
                         .block_size = BS,
                         .n_blocks_sliding = 256,
                         .n_blocks_global = 256,
                         .sliding_window = 64,
                         .prefix_cache = false,
                         .eos_ids = eos,
                         .n_eos = eos[0] >= 0,
                         .seed = 1};
    g4_sampling_default(&eo.defaults);
    g4_detok_iface dt = g4_detok_iface_for(tok);
    g4_engine *eng = g4_engine_create(&eo, &ex, &dt, &err);
    if (!eng) {
        fprintf(stderr, "http_faults_server: %s\n", err.msg);
        return 1;
    }
    hc.host = "127.0.0.1";
    hc.port = 0;
    hc.keepalive_s = 0;
    g4_http_server *srv = g4_http_server_start(&hc, &err);
    if (!srv) {
        fprintf(stderr, "http_faults_server: %s\n", err.msg);
        g4_engine_destroy(eng);
        return 1;
    }
    g4_http_server_attach(srv, eng, tok, &eo);
    g4_http_server_set_ready(srv, true);
    printf("g4serve: port %d\n", g4_http_server_port(srv));
    fflush(stdout);
    int sig = 0;
    sigwait(&sigs, &sig);
    g4_http_server_stop(srv);
    g4_engine_destroy(eng);
    mock_exec_free(&m);
    g4_tokenizer_free(tok);
    return 0;
}
