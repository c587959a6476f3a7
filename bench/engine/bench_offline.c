/* bench_offline.c — g4-bench-offline: offline throughput of the engine. Runs N synthetic
 * requests (random prompt ids of a given length, ignore_eos, a fixed number of output tokens)
 * through the engine on a model directory, or on a freshly written tiny random model (in a
 * temporary directory), and prints requests/s, output tokens/s and the engine's CPU time per step
 * excluding the model. The model and engine come from the stack g4serve runs (server/stack.h).
 *
 *   g4-bench-offline [--model DIR | --tiny dense|moe] [-n 64] [--input 128] [--output 32]
 *                    [--max-running 64] [--budget 512] [--max-len 1024] [--no-prefix]
 * Not a serving benchmark (no HTTP, no arrival process): all requests are submitted at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/stream.h"
#include "server/stack.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int usage(void) {
    fprintf(stderr, "usage: g4-bench-offline [--model DIR | --tiny dense|moe] [-n N] [--input L] [--output L]\n"
                    "                        [--max-running N] [--budget T] [--max-len L] [--no-prefix]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *tiny = "dense";
    int n = 64, in_len = 128, out_len = 32, max_running = 64, budget = 512, max_len = 1024, prefix = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--no-prefix")) {
            prefix = 0;
            continue;
        }
        if (!v) return usage();
        i++;
        if (!strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "--tiny")) tiny = v;
        else if (!strcmp(a, "-n")) n = atoi(v);
        else if (!strcmp(a, "--input")) in_len = atoi(v);
        else if (!strcmp(a, "--output")) out_len = atoi(v);
        else if (!strcmp(a, "--max-running")) max_running = atoi(v);
        else if (!strcmp(a, "--budget")) budget = atoi(v);
        else if (!strcmp(a, "--max-len")) max_len = atoi(v);
        else return usage();
    }
    if (n < 1 || in_len < 1 || out_len < 1 || max_running < 1 || budget < 1 || in_len + out_len > max_len)
        return usage();
    g4_error err = {{0}};
    g4_stack_opts so;
    g4_stack_opts_default(&so);
    so.model_dir = model_dir;
    so.default_model = !strcmp(tiny, "moe") ? "tiny-moe" : "tiny-dense";
    so.no_tokenizer = true;
    so.model.max_seqs = max_running;
    so.model.max_step_tokens = budget;
    so.model.max_model_len = max_len;
    so.max_waiting = n;
    so.prefix_cache = prefix;
    g4_stack *st = NULL;
    g4_stream *stream = NULL;
    if (g4_stack_open(&st, &so, &err) < 0 || !(stream = g4_stream_create())) {
        fprintf(stderr, "g4-bench-offline: %s\n", err.msg[0] ? err.msg : "out of memory");
        g4_stack_close(st);
        return 1;
    }
    g4_engine *e = st->engine;
    const g4_model *m = st->model;
    int32_t *prompt = malloc((size_t)in_len * sizeof *prompt);
    if (!prompt) {
        fprintf(stderr, "g4-bench-offline: out of memory\n");
        return 1;
    }
    uint64_t seed = 12345;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < in_len; j++) {
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            prompt[j] = 2 + (int32_t)((seed >> 33) % (uint64_t)(m->cfg.vocab - 2));
        }
        g4_request_params p = {.prompt = prompt, .n_prompt = in_len, .on_event = g4_stream_on_event, .user = stream};
        g4_sampling_default(&p.sampling);
        g4_stop_rules_default(&p.stop);
        p.stop.max_tokens = out_len;
        p.stop.ignore_eos = true;
        int code;
        if (!g4_engine_submit(e, &p, &code, &err)) {
            fprintf(stderr, "g4-bench-offline: submit %d: %s\n", i, err.msg);
            return 1;
        }
    }
    long tokens = 0, done = 0;
    g4_stream_event ev;
    while (done < n && g4_stream_pop(stream, &ev, -1)) {
        tokens += ev.ev.n_tokens;
        done += ev.ev.finish != G4_FINISH_NONE;
        g4_stream_event_clear(&ev);
    }
    double wall = now_s() - t0;
    g4_engine_stats s;
    g4_engine_stats_get(e, &s);
    printf("g4-bench-offline: %d requests × (%d in, %d out), max_running %d, budget %d, model %s\n", n, in_len, out_len,
           max_running, budget, model_dir ? model_dir : so.default_model);
    printf("  %.2f requests/s, %.1f output tokens/s, %.2f s wall\n", n / wall, tokens / wall, wall);
    printf("  %llu steps, %.1f tokens/step; model %.3f s; engine CPU %.1f µs/step excluding the model "
           "(sampling %.1f µs/step); %llu preemptions; prefix hit %llu / %llu tokens\n",
           (unsigned long long)s.steps, s.steps ? (double)s.step_tokens / s.steps : 0.0, s.model_seconds,
           s.steps ? s.sched_seconds / s.steps * 1e6 : 0.0, s.steps ? s.sample_seconds / s.steps * 1e6 : 0.0,
           (unsigned long long)s.preemptions, (unsigned long long)s.prefix_hit_tokens,
           (unsigned long long)s.prefix_query_tokens);
    g4_stack_close(st); /* the engine first: nothing calls into the stream after it */
    g4_stream_free(stream);
    free(prompt);
    return 0;
}
