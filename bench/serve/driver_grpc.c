/* driver_grpc.c — sends the benchmark load over g4serve's native gRPC API
 * (g4serve.v1.G4Serve/Generate, server streaming; proto/g4serve.proto) with the gRPC C core:
 * one channel (one HTTP/2 connection), one completion queue, every request a call in flight on
 * it, all driven from this one thread. Per request it records, like driver_http.c:
 *   - send: just before the call's first batch is started;
 *   - a chunk: every GenerateResponse that carries new token_ids (TTFT = first − send);
 *   - end: the last GenerateResponse of the stream (the one with finish_reason and usage);
 *   - output tokens: the token_ids received, summed over the messages; the final
 *     usage.completion_tokens must agree (a mismatch fails the request).
 * Prompts go as token_ids (random dataset) or text (ShareGPT); max_tokens and ignore_eos go in
 * StopRules, the temperature in SamplingParams. A status other than OK fails the request with
 * the status and its message. Not here: the metrics (metrics.c) or the schedule (arrival.c). */
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "driver.h"
#include "g4serve.pb-c.h"

#define GENERATE_METHOD "/g4serve.v1.G4Serve/Generate"

typedef struct rpc rpc;
typedef struct tag {  /* what a completion-queue event is about */
    rpc *c;
    int kind;         /* TAG_STATUS: the first batch (sends + status); TAG_MSG: one RECV_MESSAGE */
} tag;
enum { TAG_STATUS, TAG_MSG };

struct rpc {
    grpc_call *call;
    grpc_byte_buffer *req, *resp;
    grpc_metadata_array md_init, md_trail;
    grpc_status_code status;
    grpc_slice details;
    const char *error_string;
    tag t_status, t_msg;
    int pending;            /* batches started and not yet back */
    int cap_chunks;
    long tokens;            /* token_ids received */
    int usage_tokens;       /* −1 until the final message */
    double t0;
    g4_bench_record *rec;
    char **error;
};

static const char *status_name(grpc_status_code s) {
    static const char *names[] = {
        "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
        "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
        "DATA_LOSS", "UNAUTHENTICATED"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : "?";
}

static void set_error(rpc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(rpc *c, const char *fmt, ...) {
    if (*c->error) return;
    char buf[640];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    size_t n = len < 0 ? 0 : (size_t)len < sizeof buf ? (size_t)len : sizeof buf - 1;
    if ((*c->error = malloc(n + 1))) memcpy(*c->error, buf, n), (*c->error)[n] = 0;
}

static int add_chunk(rpc *c, double t) {
    g4_bench_record *r = c->rec;
    if (r->n_chunks == c->cap_chunks) {
        int cap = c->cap_chunks ? 2 * c->cap_chunks : 64;
        double *p = realloc(r->chunk_t, sizeof *p * (size_t)cap);
        if (!p) return -1;
        r->chunk_t = p;
        c->cap_chunks = cap;
    }
    r->chunk_t[r->n_chunks++] = t;
    return 0;
}

/* The packed GenerateRequest for one dataset item, as a byte buffer ready for SEND_MESSAGE. */
static grpc_byte_buffer *request_buffer(const char *model, const g4_bench_item *it, double temperature, g4_error *err) {
    G4serve__V1__GenerateRequest rq = G4SERVE__V1__GENERATE_REQUEST__INIT;
    G4serve__V1__TokenIds ids = G4SERVE__V1__TOKEN_IDS__INIT;
    G4serve__V1__SamplingParams sp = G4SERVE__V1__SAMPLING_PARAMS__INIT;
    G4serve__V1__StopRules stop = G4SERVE__V1__STOP_RULES__INIT;
    rq.model = (char *)(model ? model : "");
    if (it->text) {
        rq.input_case = G4SERVE__V1__GENERATE_REQUEST__INPUT_TEXT;
        rq.text = it->text;
    } else {
        ids.n_ids = (size_t)it->n_ids;
        ids.ids = it->ids;
        rq.input_case = G4SERVE__V1__GENERATE_REQUEST__INPUT_TOKEN_IDS;
        rq.token_ids = &ids;
    }
    sp.temperature_opt_case = G4SERVE__V1__SAMPLING_PARAMS__TEMPERATURE_OPT_TEMPERATURE;
    sp.temperature = (float)temperature;
    rq.sampling = &sp;
    stop.max_tokens = it->output_len;
    stop.ignore_eos = 1;
    rq.stop = &stop;
    size_t n = g4serve__v1__generate_request__get_packed_size(&rq);
    grpc_slice s = grpc_slice_malloc(n);
    if (g4serve__v1__generate_request__pack(&rq, GRPC_SLICE_START_PTR(s)) != n) {
        grpc_slice_unref(s);
        g4_fail(err, "grpc driver: GenerateRequest packed to an unexpected size");
        return NULL;
    }
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    if (!bb) g4_fail(err, "grpc driver: cannot create a byte buffer for a %zu-byte request", n);
    return bb;
}

static int post_recv(rpc *c) {
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
    op.data.recv_message.recv_message = &c->resp;
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_msg, NULL) != GRPC_CALL_OK) return -1;
    c->pending++;
    return 0;
}

/* Creates the call and starts [send metadata, message, close; receive metadata, status], then the
 * first RECV_MESSAGE. */
static int start_rpc(rpc *c, grpc_channel *ch, grpc_completion_queue *cq, double timeout_s, g4_error *err) {
    gpr_timespec deadline = timeout_s > 0 ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                                         gpr_time_from_millis((int64_t)(timeout_s * 1e3), GPR_TIMESPAN))
                                          : gpr_inf_future(GPR_CLOCK_MONOTONIC);
    c->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                       grpc_slice_from_static_string(GENERATE_METHOD), NULL, deadline, NULL);
    if (!c->call) return g4_fail(err, "grpc driver: grpc_channel_create_call failed");
    grpc_metadata_array_init(&c->md_init);
    grpc_metadata_array_init(&c->md_trail);
    c->t_status = (tag){c, TAG_STATUS};
    c->t_msg = (tag){c, TAG_MSG};
    grpc_op ops[5];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = c->req;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->md_init;
    ops[4].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[4].data.recv_status_on_client.trailing_metadata = &c->md_trail;
    ops[4].data.recv_status_on_client.status = &c->status;
    ops[4].data.recv_status_on_client.status_details = &c->details;
    ops[4].data.recv_status_on_client.error_string = &c->error_string;
    c->rec->t_send = g4_bench_now() - c->t0;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, 5, &c->t_status, NULL);
    if (e != GRPC_CALL_OK)
        return g4_fail(err, "grpc driver: starting a Generate call failed (grpc_call_error %d)", (int)e);
    c->pending++;
    if (post_recv(c) < 0) {
        grpc_call_cancel(c->call, NULL);
        return g4_fail(err, "grpc driver: starting RECV_MESSAGE failed");
    }
    return 0;
}

/* A RECV_MESSAGE came back at t: a GenerateResponse, or (resp NULL) the end of the stream. */
static void on_message(rpc *c, int success, double t) {
    if (!success || !c->resp) return; /* stream over; the status says how */
    grpc_byte_buffer_reader rd;
    G4serve__V1__GenerateResponse *m = NULL;
    if (grpc_byte_buffer_reader_init(&rd, c->resp)) {
        grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
        m = g4serve__v1__generate_response__unpack(NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
        grpc_slice_unref(s);
        grpc_byte_buffer_reader_destroy(&rd);
    }
    grpc_byte_buffer_destroy(c->resp);
    c->resp = NULL;
    const char *problem = m ? NULL : "GenerateResponse does not parse";
    if (m) {
        c->rec->t_end = t;
        if (m->n_token_ids > 0) {
            c->tokens += (long)m->n_token_ids;
            if (add_chunk(c, t) < 0) problem = "out of memory for chunk times";
        }
        if (m->usage) c->usage_tokens = m->usage->completion_tokens;
        g4serve__v1__generate_response__free_unpacked(m, NULL);
    }
    if (!problem && post_recv(c) < 0) problem = "starting RECV_MESSAGE failed";
    if (problem) {
        set_error(c, "%s", problem);
        if (grpc_call_cancel(c->call, NULL) != GRPC_CALL_OK) set_error(c, "%s", "grpc_call_cancel failed");
    }
}

/* Both batches are back: fill the record and release the call. */
static void finish_rpc(rpc *c) {
    g4_bench_record *r = c->rec;
    if (c->status != GRPC_STATUS_OK) {
        char *d = grpc_slice_to_c_string(c->details);
        set_error(c, "gRPC status %s (%d): %.500s", status_name(c->status), (int)c->status, d ? d : "");
        gpr_free(d);
    } else if (r->n_chunks == 0) set_error(c, "%s", "never received a GenerateResponse with token_ids");
    else if (c->usage_tokens < 0) set_error(c, "%s", "the last GenerateResponse has no usage");
    else if (c->usage_tokens != c->tokens)
        set_error(c, "usage.completion_tokens %d != %ld token_ids received", c->usage_tokens, c->tokens);
    r->ok = !*c->error;
    r->output_tokens = r->ok ? (int)c->tokens : 0;
    grpc_slice_unref(c->details);
    gpr_free((void *)c->error_string);
    grpc_metadata_array_destroy(&c->md_init);
    grpc_metadata_array_destroy(&c->md_trail);
    grpc_byte_buffer_destroy(c->req);
    c->req = NULL;
    if (c->resp) grpc_byte_buffer_destroy(c->resp);
    c->resp = NULL;
    grpc_call_unref(c->call);
    c->call = NULL;
}

/* Connects before the clock starts, so the first requests do not pay for the TCP + HTTP/2 setup
 * (the HTTP driver's connections are made inside the run; here one connection serves them all).
 * Gives up quietly after 10 s or on a failure: the calls then fail with UNAVAILABLE. */
static void connect_channel(grpc_channel *ch, grpc_completion_queue *cq) {
    gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(10, GPR_TIMESPAN));
    grpc_connectivity_state s = grpc_channel_check_connectivity_state(ch, 1);
    while (s == GRPC_CHANNEL_IDLE || s == GRPC_CHANNEL_CONNECTING) {
        int watch_tag;
        grpc_channel_watch_connectivity_state(ch, s, deadline, cq, &watch_tag);
        grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
        if (ev.type != GRPC_OP_COMPLETE || ev.tag != &watch_tag || !ev.success) return;
        s = grpc_channel_check_connectivity_state(ch, 1);
    }
}

int g4_drive_grpc(const g4_grpc_target *t, g4_bench_load *l, g4_error *err) {
    int n = l->n, rc = 0;
    rpc *cs = calloc((size_t)n, sizeof *cs);
    l->rec = calloc((size_t)n, sizeof *l->rec);
    l->errors = calloc((size_t)n, sizeof *l->errors);
    if (!cs || !l->rec || !l->errors) {
        free(cs);
        return g4_fail(err, "grpc driver: out of memory for %d requests", n);
    }
    /* requests packed first, so encoding them does not disturb the timing */
    for (int i = 0; i < n; i++) {
        l->rec[i].prompt_len = l->ds->items[l->first + i].prompt_len;
        if (!(cs[i].req = request_buffer(t->model, &l->ds->items[l->first + i], l->temperature, err))) {
            for (int k = 0; k < i; k++) grpc_byte_buffer_destroy(cs[k].req);
            free(cs);
            return -1;
        }
    }
    grpc_init();
    grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    grpc_channel *ch = creds ? grpc_channel_create(t->target, creds, NULL) : NULL;
    if (creds) grpc_channel_credentials_release(creds);
    if (!cq || !ch) {
        rc = g4_fail(err, "grpc driver: cannot create a channel to %s", t->target);
        goto out;
    }
    connect_channel(ch, cq);
    /* stopping: a driver error; no new calls, the ones in flight are cancelled and drained */
    int next = 0, running = 0, done = 0;
    bool stopping = false;
    double t0 = g4_bench_now(), last_end = 0;
    while (stopping ? running > 0 : done < n) {
        double now = g4_bench_now() - t0;
        while (!stopping && next < n && l->send_at[next] <= now &&
               (!l->max_concurrency || running < l->max_concurrency)) {
            rpc *c = &cs[next];
            c->rec = &l->rec[next];
            c->error = &l->errors[next];
            c->t0 = t0;
            c->usage_tokens = -1;
            next++;
            if (start_rpc(c, ch, cq, t->timeout_s, err) < 0) {
                rc = -1;
                stopping = true;
                for (int k = 0; k < next; k++)
                    if (cs[k].call) grpc_call_cancel(cs[k].call, NULL);
            }
            if (c->pending) running++;
            else if (c->call) /* its first batch never started: nothing to wait for */ finish_rpc(c);
        }
        /* wait for an event, or until the next send is due (at most 100 ms, then look again) */
        double wait = 0.1;
        if (!stopping && next < n && (!l->max_concurrency || running < l->max_concurrency)) {
            double dt = l->send_at[next] - (g4_bench_now() - t0);
            wait = dt < 0 ? 0 : dt < wait ? dt : wait;
        }
        gpr_timespec dl =
            gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_micros((int64_t)(wait * 1e6), GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(cq, dl, NULL);
        if (ev.type == GRPC_QUEUE_TIMEOUT) continue;
        if (ev.type != GRPC_OP_COMPLETE) {
            rc = g4_fail(err, "grpc driver: the completion queue shut down unexpectedly");
            break;
        }
        tag *tg = ev.tag;
        rpc *c = tg->c;
        c->pending--;
        if (tg->kind == TAG_MSG) on_message(c, ev.success, g4_bench_now() - t0);
        else if (!ev.success) set_error(c, "%s", "the Generate call's batch failed");
        if (c->pending == 0) {
            finish_rpc(c);
            running--;
            done++;
            last_end = g4_bench_now() - t0;
        }
    }
    l->duration = last_end > 0 ? last_end : g4_bench_now() - t0;
out:
    /* only after a driver error are calls left: cancel them and let the queue drain */
    for (int i = 0; i < n; i++)
        if (cs[i].call) grpc_call_cancel(cs[i].call, NULL);
    if (cq) {
        grpc_completion_queue_shutdown(cq);
        while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
        }
    }
    for (int i = 0; i < n; i++) {
        if (cs[i].call) finish_rpc(&cs[i]);
        if (cs[i].req) grpc_byte_buffer_destroy(cs[i].req);
    }
    if (ch) grpc_channel_destroy(ch);
    if (cq) grpc_completion_queue_destroy(cq);
    grpc_shutdown_blocking(); /* no gRPC thread outlives the driver */
    free(cs);
    return rc;
}
