/* output.c — from a row of logits to a request's events: sample, append, detokenize, apply stop
 * rules, deliver. Also the last event of requests that end any other way. Engine thread only.
 * Not here: the sampler itself (sampling.c), stop matching (stop.c), the loop (engine.c). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/engine_impl.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void usage(const g4_seq *q, g4_event *ev) {
    ev->prompt_tokens = q->n_prompt;
    ev->completion_tokens = g4_seq_n_output(q);
    ev->cached_tokens = q->cached_tokens;
}

/* Takes q out everywhere and frees it; its last event has been delivered. */
static void retire(g4_engine *e, g4_seq *q, g4_finish_reason why) {
    g4_sched_remove(&e->sched, q);
    if (q->detok && e->detok.close) e->detok.close(q->detok);
    e->st.finished[why]++;
    g4_seq_free(q);
}

void g4_engine_finish(g4_engine *e, g4_seq *q, g4_finish_reason why, const char *error) {
    g4_event ev = {.id = q->id, .finish = why, .stop_token = -1, .error = error, .text = e->has_detok ? "" : NULL};
    usage(q, &ev);
    q->on_event(q->user, &ev);
    retire(e, q, why);
}

/* Detokenizer push (or finish) into e->text; returns its length, or −1. A push cannot be
 * repeated, so e->text is sized generously (64 KiB) up front. */
static int detok_call(g4_engine *e, g4_seq *q, int32_t token, bool finish) {
    e->text[0] = 0;
    if (finish) return e->detok.finish ? e->detok.finish(q->detok, e->text, e->text_cap) : 0;
    return e->detok.push(q->detok, token, e->text, e->text_cap);
}

void g4_engine_emit_row(g4_engine *e, g4_seq *q, const float *logits) {
    double t0 = now_s();
    g4_sample_history h = {q->tokens, q->n_prompt, q->tokens + q->n_prompt, g4_seq_n_output(q)};
    g4_sample_result r;
    g4_sample_row(&e->sampler, logits, &q->sampling, q->seed, &h, &r);
    e->st.sample_seconds += now_s() - t0;
    g4_seq_append(q, r.token, e->o.block_size);
    e->st.output_tokens++;
    int n_out = g4_seq_n_output(q);

    g4_error err = {{0}};
    int n_text = 0;
    if (e->has_detok && (n_text = detok_call(e, q, r.token, false)) < 0) {
        g4_engine_finish(e, q, G4_FINISH_ERROR, "detokenizer failed");
        return;
    }
    g4_stop_result res;
    if (g4_stop_token(&q->stop, r.token, n_out, e->has_detok ? e->text : NULL, (size_t)n_text, &res, &err)) {
        g4_engine_finish(e, q, G4_FINISH_ERROR, err.msg);
        return;
    }
    g4_finish_reason why = res.finish;
    if (why == G4_FINISH_LENGTH || (why == G4_FINISH_STOP && res.stop_string < 0)) {
        /* ends without a stop string so far: show what was held, plus the detokenizer's tail */
        int n_tail = e->has_detok ? detok_call(e, q, -1, true) : 0;
        if (n_tail < 0) n_tail = 0;
        int stop_token = res.stop_token;
        bool deliver = res.deliver;
        if (g4_stop_finish(&q->stop, n_out, e->text, (size_t)n_tail, &res, &err)) {
            g4_engine_finish(e, q, G4_FINISH_ERROR, err.msg);
            return;
        }
        if (res.stop_string >= 0) why = G4_FINISH_STOP;
        res.stop_token = stop_token;
        res.deliver = deliver;
    }
    g4_event ev = {.id = q->id, .finish = why, .stop_token = res.stop_token};
    if (res.deliver) {
        ev.n_tokens = 1;
        ev.token = r.token;
        if (q->sampling.logprobs >= 0) {
            ev.logprob = r.logprob;
            ev.n_top = r.n_top;
            ev.top_ids = r.top_ids;
            ev.top_logprobs = r.top_logprobs;
        }
    }
    if (e->has_detok) ev.text = res.text;
    if (res.stop_string >= 0) ev.stop_string = q->stop.strings[res.stop_string];
    if (why != G4_FINISH_NONE) usage(q, &ev);
    q->on_event(q->user, &ev);
    if (why != G4_FINISH_NONE) retire(e, q, why);
}
