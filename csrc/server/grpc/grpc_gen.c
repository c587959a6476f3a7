/* grpc_gen.c - the bridge between a gRPC call and its engine requests.
 *
 * The engine calls on_event on its own thread; that must not block, so the event is copied
 * into the call's queue (engine/stream.h) and the call is woken with an empty batch, which puts a WAKE
 * tag on the completion queue. A CQ thread then collects the queued events into each g4_gen's
 * "not yet sent" accumulators; the method's pump turns those into messages, one send at a
 * time, so tokens that arrive while a write is in flight are coalesced into the next message.
 * Every running engine request holds a reference on its call until its final event has been
 * collected, so a cancelled call stays alive until the engine has let go of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/grpc/grpc_impl.h"
#include "text/utf8.h"

const char *g4_finish_name(g4_finish_reason f) {
    switch (f) {
    case G4_FINISH_STOP: return "stop";
    case G4_FINISH_LENGTH: return "length";
    case G4_FINISH_ABORT: return "abort";
    case G4_FINISH_ERROR: return "error";
    default: return "";
    }
}


g4_gen *g4_gen_new(g4_gcall *c, unsigned detok_flags) {
    if (!c->events && !(c->events = g4_stream_create())) return NULL;
    g4_gen *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->call = c;
    g->stop_token = -1;
    g->detok_flags = detok_flags;
    g->t_arrival = g4_gnow();
    if (g4_stream_sink_init(&g->sink, c->events, g)) {
        free(g);
        return NULL;
    }
    return g;
}

/* Engine thread: queue the event (the last one always arrives) and wake the call. */
static void on_event(void *user, const g4_event *ev) {
    g4_gen *g = user;
    g4_gcall *c = g->call;
    double now = g4_gnow();
    if (ev->n_tokens > 0 && g->t_first == 0) g->t_first = now;
    if (ev->finish != G4_FINISH_NONE) {
        g4_request_record rec = {
            .finish = ev->finish,
            .prompt_tokens = ev->prompt_tokens,
            .generation_tokens = ev->completion_tokens,
            .cached_tokens = ev->cached_tokens,
            .queue_s = g->t_first > 0 ? g->t_first - g->t_submit : -1,
            .ttft_s = g->t_first > 0 ? g->t_first - g->t_arrival : -1,
            .e2e_s = now - g->t_arrival,
            .sched_wait_s = ev->queue_s,
        };
        /* as HTTP records them (http/generate.c): a gRPC request is one prompt with n = 1 */
        g4_metrics_request_done(c->srv->model.metrics, &rec);
        g4_metrics_request_params(c->srv->model.metrics, 1, g->max_tokens, ev->completion_tokens);
    }
    /* Once the last event is queued a CQ thread may collect it and drop the engine's reference:
     * hold one of our own until the wake-up is posted. */
    g4_gcall_ref(c);
    g4_stream_sink_push(&g->sink, ev); /* g is not read after this */
    g4_gcall_wake(c);
    g4_gcall_unref(c);
}

grpc_status_code g4_grpc_status_for(int code) {
    switch (code) {
    case G4_ERR_QUEUE_FULL: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case G4_ERR_STOPPED: return GRPC_STATUS_UNAVAILABLE;
    case G4_ERR_INVALID:
    case G4_ERR_TOO_LONG: return GRPC_STATUS_INVALID_ARGUMENT;
    default: return GRPC_STATUS_INTERNAL;
    }
}

void g4_grpc_count_refusal(g4_grpc_server *s, grpc_status_code code) {
    if (code == GRPC_STATUS_OK || !atomic_load(&s->attached)) return;
    int http = code == GRPC_STATUS_RESOURCE_EXHAUSTED                            ? 429
               : code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_INTERNAL ? 503
               : code == GRPC_STATUS_CANCELLED                                   ? 499
                                                                                 : 400;
    g4_metrics_request_rejected(s->model.metrics, http);
}

int g4_gen_submit(g4_gen *g, g4_request_params *p, grpc_status_code *code, g4_error *err) {
    g4_gcall *c = g->call;
    g->t_submit = g4_gnow();
    g->max_tokens = p->stop.max_tokens;
    p->on_event = on_event;
    p->user = g;
    p->detok_flags = g->detok_flags;
    p->client = g4_gcall_client(c);
    g4_gcall_ref(c); /* the engine's: dropped when the final event is collected */
    int ecode = 0;
    uint64_t id = g4_engine_submit(c->srv->model.engine, p, &ecode, err);
    if (!id) {
        *code = g4_grpc_status_for(ecode);
        atomic_fetch_sub(&c->refs, 1); /* the caller still holds one */
        return -1;
    }
    g->eid = id;
    g->running = true;
    g->want_logprobs = p->sampling.logprobs >= 0;
    return 0;
}

static int push_id(g4_gen *g, int32_t id) {
    if (g->n_ids == g->cap_ids) {
        int cap = g->cap_ids ? 2 * g->cap_ids : 16;
        int32_t *p = realloc(g->ids, (size_t)cap * sizeof *p);
        if (!p) return -1;
        g->ids = p, g->cap_ids = cap;
    }
    g->ids[g->n_ids++] = id;
    return 0;
}

static void apply(g4_gen *g, const g4_stream_event *se) {
    const g4_event *e = &se->ev;
    if (e->text) g4_strbuf_puts(&g->text, e->text);
    if (e->n_tokens > 0) {
        push_id(g, e->token);
        if (g->want_logprobs) {
            if (g->n_lp == g->cap_lp) {
                int cap = g->cap_lp ? 2 * g->cap_lp : 16;
                g4_lp_entry *p = realloc(g->lp, (size_t)cap * sizeof *p);
                if (p) g->lp = p, g->cap_lp = cap;
            }
            if (g->n_lp < g->cap_lp) {
                g4_lp_entry *l = &g->lp[g->n_lp++];
                l->token = e->token;
                l->logprob = e->logprob;
                /* gRPC asks for no logprob ids: its lists are the top alternatives (≤ 20) */
                l->n_top = e->n_top < G4_MAX_TOP_LOGPROBS ? e->n_top : G4_MAX_TOP_LOGPROBS;
                if (l->n_top > 0) {
                    memcpy(l->top_ids, e->top_ids, (size_t)l->n_top * sizeof *l->top_ids);
                    memcpy(l->top_logprobs, e->top_logprobs, (size_t)l->n_top * sizeof *l->top_logprobs);
                }
            }
        }
    }
    if (e->finish != G4_FINISH_NONE) {
        g->finish = e->finish;
        g->prompt_tokens = e->prompt_tokens;
        g->completion_tokens = e->completion_tokens;
        g->cached_tokens = e->cached_tokens;
        g->spec_draft_tokens = e->spec_draft_tokens;
        g->spec_accepted_tokens = e->spec_accepted_tokens;
        g->stop_token = e->stop_token;
        g->stop_string = e->stop_string ? strdup(e->stop_string) : NULL;
        g->error = e->error ? strdup(e->error) : NULL;
        if (e->error && !g->error) g->error = strdup("out of memory");
        g->finished = true;
        g->running = false;
    }
}

void g4_gen_collect(g4_gcall *c) {
    if (!c->events) return;
    for (g4_stream_event *e = g4_stream_take(c->events), *next; e; e = next) {
        next = e->next;
        g4_gen *g = e->tag;
        apply(g, e);
        bool last = e->ev.finish != G4_FINISH_NONE;
        g4_stream_event_free(e);
        if (last) atomic_fetch_sub(&c->refs, 1); /* the engine's reference; the wake tag holds one */
    }
}

void g4_gen_cancel(g4_gen *g) {
    if (g->running) g4_engine_cancel(g->call->srv->model.engine, g->eid);
}

void g4_gen_clear_output(g4_gen *g) {
    g->n_ids = 0;
    g->n_lp = 0;
    g4_strbuf_clear(&g->text);
}

void g4_gen_free(g4_gen *g) {
    if (!g) return;
    free(g->ids);
    free(g->lp);
    g4_strbuf_free(&g->text);
    free(g->stop_string);
    free(g->error);
    g4_stream_sink_release(&g->sink);
    if (g->svc_free) g->svc_free(g->svc);
    free(g);
}

int g4_grpc_check_lengths(g4_grpc_server *s, g4_request_params *p, g4_error *err) {
    int max_len = s->model.eo.max_model_len;
    if (p->n_prompt < 1) return g4_fail(err, "the prompt is empty");
    if (max_len > 0 && p->n_prompt >= max_len)
        return g4_fail(err, "the prompt has %d tokens; the model's limit is %d (prompt + max_tokens)", p->n_prompt,
                       max_len);
    if (p->stop.max_tokens <= 0) {
        p->stop.max_tokens = s->cfg.default_max_tokens;
        if (max_len > 0 && p->stop.max_tokens > max_len - p->n_prompt) p->stop.max_tokens = max_len - p->n_prompt;
    } else if (max_len > 0 && p->stop.max_tokens > max_len - p->n_prompt) { /* no int overflow */
        return g4_fail(err, "prompt (%d tokens) + max_tokens (%d) exceeds the model length %d", p->n_prompt,
                       p->stop.max_tokens, max_len);
    }
    return 0;
}

/* Walks every string field of m (submessages, repeated fields and set oneof members included):
 * protobuf-c does not check that proto3 strings are UTF-8, and one echoed back would make the
 * client's parser fail on our reply. */
static int utf8_walk(const ProtobufCMessage *m, const char *path, int depth, g4_error *err) {
    const ProtobufCMessageDescriptor *d = m->descriptor;
    if (depth > 32) return g4_fail(err, "%s: messages nested too deeply", path);
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *base = (const char *)m;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) && *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue;
        size_t n = 1;
        void *const *vals = (void *const *)(base + f->offset);
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)(base + f->quantifier_offset);
            vals = *(void *const *const *)(base + f->offset);
        }
        char sub[256]; /* the field's path, for the message; a deeper one is cut and marked "..." */
        if (snprintf(sub, sizeof sub, "%s%s%s", path, path[0] ? "." : "", f->name) >= (int)sizeof sub)
            memcpy(sub + sizeof sub - 4, "...", 4);
        for (size_t k = 0; k < n && vals; k++) {
            if (!vals[k]) continue;
            if (f->type == PROTOBUF_C_TYPE_STRING) {
                if (!g4_utf8_valid(vals[k], strlen(vals[k])))
                    return g4_fail(err, "%s is not valid UTF-8 (proto3 strings must be)", sub);
            } else if (utf8_walk(vals[k], sub, depth + 1, err)) {
                return -1;
            }
        }
    }
    return 0;
}

int g4_grpc_check_utf8(const ProtobufCMessage *m, g4_error *err) { return utf8_walk(m, "", 0, err); }
