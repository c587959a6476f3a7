/* grpc_call.c - one server call's state machine on the gRPC C core: references, batches, the
 * single outstanding send, status, wake-ups from other threads, and tag handling.
 *
 * Life of a call: NEW (request_call completed) -> batch [SEND_INITIAL_METADATA, RECV_MESSAGE]
 * and, separately, [RECV_CLOSE_ON_SERVER] so cancellation is seen at any time -> the method's
 * on_message -> sends, one at a time (pump after each) -> SEND_STATUS -> CLOSE. Unknown
 * methods get UNIMPLEMENTED. Not here: the CQ threads and server start/stop (grpc_server.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/log.h>

#include "base/secret.h"
#include "server/grpc/grpc_impl.h"
#include "server/grpc/pb_text.h"

g4_gcall *g4_gcall_new(g4_grpc_server *s) {
    g4_gcall *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->srv = s;
    g4_gtag *tags[] = {&c->t_new, &c->t_recv, &c->t_send, &c->t_status, &c->t_close, &c->t_wake};
    g4_tag_kind kinds[] = {G4_TAG_NEW, G4_TAG_RECV, G4_TAG_SEND, G4_TAG_STATUS, G4_TAG_CLOSE, G4_TAG_WAKE};
    for (int i = 0; i < 6; i++) {
        tags[i]->call = c;
        tags[i]->kind = kinds[i];
    }
    atomic_init(&c->refs, 1); /* the pending request_call */
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->batch_mu, NULL);
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    return c;
}

void g4_gcall_ref(g4_gcall *c) { atomic_fetch_add(&c->refs, 1); }

bool g4_gcall_ref_if_alive(g4_gcall *c) {
    int n = atomic_load(&c->refs);
    while (n > 0)
        if (atomic_compare_exchange_weak(&c->refs, &n, n + 1)) return true;
    return false;
}

void g4_gcall_accept(g4_gcall *c) {
    g4_grpc_server *s = c->srv;
    pthread_mutex_lock(&s->mu);
    s->n_calls++;
    c->accepted = true;
    c->anext = s->calls;
    if (s->calls) s->calls->aprev = c;
    s->calls = c;
    pthread_mutex_unlock(&s->mu);
}

void g4_gcall_unref(g4_gcall *c) {
    if (atomic_fetch_sub(&c->refs, 1) != 1) return;
    g4_grpc_server *s = c->srv;
    if (c->accepted) { /* off the list before anything is freed (g4_gcall_ref_if_alive) */
        pthread_mutex_lock(&s->mu);
        if (c->aprev) c->aprev->anext = c->anext;
        else s->calls = c->anext;
        if (c->anext) c->anext->aprev = c->aprev;
        pthread_mutex_unlock(&s->mu);
    }
    if (c->m && c->m->on_free) c->m->on_free(c);
    if (c->recv_bb) grpc_byte_buffer_destroy(c->recv_bb);
    if (c->call) grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->batch_mu);
    g4_stream_free(c->events);
    bool accepted = c->accepted;
    free(c);
    if (accepted) {
        pthread_mutex_lock(&s->mu);
        s->n_calls--;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

int g4_gcall_batch(g4_gcall *c, const grpc_op *ops, size_t n, g4_gtag *tag) {
    pthread_mutex_lock(&c->batch_mu);
    g4_gcall_ref(c);
    G4_GTAG_RELEASE(tag);
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, tag, NULL);
    pthread_mutex_unlock(&c->batch_mu);
    if (e != GRPC_CALL_OK) {
        gpr_log(GPR_ERROR, "g4serve grpc: start_batch (tag %d) failed: %d", (int)tag->kind, (int)e);
        atomic_fetch_sub(&c->refs, 1); /* never the last: the caller holds one */
        return -1;
    }
    return 0;
}

void g4_gcall_wake(g4_gcall *c) {
    pthread_mutex_lock(&c->batch_mu);
    if (!c->wake_pending) {
        g4_gcall_ref(c);
        G4_GTAG_RELEASE(&c->t_wake);
        if (grpc_call_start_batch(c->call, NULL, 0, &c->t_wake, NULL) == GRPC_CALL_OK) c->wake_pending = true;
        else atomic_fetch_sub(&c->refs, 1);
    }
    pthread_mutex_unlock(&c->batch_mu);
}

bool g4_gcall_over(const g4_gcall *c) { return c->status_queued || c->cancelled || c->closed; }

static grpc_byte_buffer *pack(const ProtobufCMessage *msg) {
    size_t n = protobuf_c_message_get_packed_size(msg);
    grpc_slice s = grpc_slice_malloc(n);
    protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(s));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
    grpc_slice_unref(s);
    return bb;
}

int g4_gcall_send(g4_gcall *c, const ProtobufCMessage *msg) {
    if (g4_gcall_over(c) || c->send_busy) return -1;
    grpc_byte_buffer *bb = pack(msg);
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = bb;
    int rc = g4_gcall_batch(c, &op, 1, &c->t_send);
    grpc_byte_buffer_destroy(bb); /* the batch holds its own reference to the slices */
    if (rc == 0) {
        c->send_busy = true;
        c->t_send_start = g4_gnow();
    }
    return rc;
}

static void start_status(g4_gcall *c, grpc_byte_buffer *last) {
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t n = 0;
    if (last) {
        ops[n].op = GRPC_OP_SEND_MESSAGE;
        ops[n].data.send_message.send_message = last;
        n++;
    }
    grpc_slice details = grpc_slice_from_copied_string(c->status_msg);
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = c->status;
    ops[n].data.send_status_from_server.status_details = c->status_msg[0] ? &details : NULL;
    n++;
    c->status_started = true;
    if (g4_gcall_batch(c, ops, n, &c->t_status)) grpc_call_cancel(c->call, NULL);
    grpc_slice_unref(details);
}

void g4_gcall_reply(g4_gcall *c, const ProtobufCMessage *msg) {
    if (g4_gcall_over(c) || c->send_busy) return;
    c->status_queued = true;
    c->status = GRPC_STATUS_OK;
    c->status_msg[0] = 0;
    grpc_byte_buffer *bb = pack(msg);
    start_status(c, bb);
    grpc_byte_buffer_destroy(bb);
}

void g4_gcall_finish(g4_gcall *c, grpc_status_code code, const char *fmt, ...) {
    if (c->status_queued) return;
    c->status_queued = true;
    c->status = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->status_msg, sizeof c->status_msg, fmt, ap);
    va_end(ap);
    if (c->cancelled || c->closed) return; /* nobody to tell */
    if (!c->send_busy) start_status(c, NULL);
}

void g4_gcall_recv_next(g4_gcall *c) {
    if (c->half_closed || c->cancelled || c->closed) return;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_bb;
    g4_gcall_batch(c, &op, 1, &c->t_recv);
}

static void cancel_once(g4_gcall *c) {
    c->cancelled = true;
    if (c->cancel_handled) return;
    c->cancel_handled = true;
    if (c->m && c->m->on_cancel) c->m->on_cancel(c);
}

/* True when the call may run its method: no key configured, an open method (health), or
 * metadata "authorization: Bearer <key>" (compared in constant time, base/secret.h). */
static bool authorized(const g4_gcall *c) {
    const char *key = c->srv->cfg.api_key;
    if (!key || !key[0] || (c->m && c->m->open)) return true;
    for (size_t i = 0; i < c->md.count; i++) {
        grpc_slice k = c->md.metadata[i].key, v = c->md.metadata[i].value;
        if (GRPC_SLICE_LENGTH(k) != 13 || memcmp(GRPC_SLICE_START_PTR(k), "authorization", 13)) continue;
        char buf[1024];
        size_t n = GRPC_SLICE_LENGTH(v);
        if (n >= sizeof buf) return false;
        memcpy(buf, GRPC_SLICE_START_PTR(v), n);
        buf[n] = 0;
        return g4_bearer_matches(buf, key);
    }
    return false;
}

uint64_t g4_gcall_client(const g4_gcall *c) {
    for (size_t i = 0; c->srv->cfg.trust_client_id && i < c->md.count; i++) {
        grpc_slice k = c->md.metadata[i].key, v = c->md.metadata[i].value;
        if (GRPC_SLICE_LENGTH(v) && GRPC_SLICE_LENGTH(k) == strlen(G4_CLIENT_ID_HEADER) &&
            !memcmp(GRPC_SLICE_START_PTR(k), G4_CLIENT_ID_HEADER, strlen(G4_CLIENT_ID_HEADER)))
            return g4_client_key((const char *)GRPC_SLICE_START_PTR(v), GRPC_SLICE_LENGTH(v), NULL, 0);
    }
    /* "ipv4:10.0.0.1:5000", "ipv6:[::1]:5000" (or %5B..%5D): the host between scheme and port */
    char *peer = grpc_call_get_peer(c->call);
    const char *h = peer ? strchr(peer, ':') : NULL, *end = h ? strrchr(h + 1, ':') : NULL;
    size_t n = 0;
    if (h && end) {
        h++;
        h += *h == '[' ? 1 : !strncmp(h, "%5B", 3) ? 3 : 0;
        end -= end[-1] == ']' ? 1 : end - h >= 3 && !strncmp(end - 3, "%5D", 3) ? 3 : 0;
        n = end > h ? (size_t)(end - h) : 0;
    }
    uint64_t key = g4_client_key(NULL, 0, h, n);
    gpr_free(peer);
    return key;
}

/* A new call: pick the method, post the first receive and the close watcher. */
static void start_call(g4_gcall *c) {
    grpc_slice m = c->details.method;
    c->m = g4_grpc_find_method((const char *)GRPC_SLICE_START_PTR(m), GRPC_SLICE_LENGTH(m));
    bool allowed = authorized(c);
    if (!allowed) c->m = NULL; /* refused: no method state, no callbacks */
    pthread_mutex_lock(&c->mu);
    grpc_op close;
    memset(&close, 0, sizeof close);
    close.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    close.data.recv_close_on_server.cancelled = &c->close_cancelled;
    g4_gcall_batch(c, &close, 1, &c->t_close);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    if (!c->m || !allowed) {
        c->status_queued = true;
        c->status = !allowed ? GRPC_STATUS_UNAUTHENTICATED : GRPC_STATUS_UNIMPLEMENTED;
        if (!allowed)
            snprintf(c->status_msg, sizeof c->status_msg,
                     "missing or wrong API key (send metadata 'authorization: Bearer <key>')");
        else
            snprintf(c->status_msg, sizeof c->status_msg, "method %.*s is not implemented by g4serve",
                     (int)GRPC_SLICE_LENGTH(m), (const char *)GRPC_SLICE_START_PTR(m));
        grpc_slice details = grpc_slice_from_copied_string(c->status_msg);
        ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[1].data.send_status_from_server.status = c->status;
        ops[1].data.send_status_from_server.status_details = &details;
        c->status_started = true;
        g4_gcall_batch(c, ops, 2, &c->t_status);
        grpc_slice_unref(details);
    } else {
        ops[1].op = GRPC_OP_RECV_MESSAGE;
        ops[1].data.recv_message.recv_message = &c->recv_bb;
        g4_gcall_batch(c, ops, 2, &c->t_recv);
    }
    pthread_mutex_unlock(&c->mu);
}

static void on_recv(g4_gcall *c, bool ok) {
    if (!ok) {
        cancel_once(c);
        return;
    }
    if (!c->recv_bb) { /* the client closed its side */
        c->half_closed = true;
        if (c->m->kind == G4_RPC_BIDI) {
            if (c->m->on_half_close) c->m->on_half_close(c);
        } else {
            g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "no request message");
        }
        return;
    }
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, c->recv_bb)) {
        g4_gcall_finish(c, GRPC_STATUS_INTERNAL, "cannot read the request message");
    } else {
        grpc_slice s = grpc_byte_buffer_reader_readall(&r);
        grpc_byte_buffer_reader_destroy(&r);
        grpc_byte_buffer_destroy(c->recv_bb);
        c->recv_bb = NULL;
        char field[256];
        if (c->m->request &&
            g4_pb_find_nul(c->m->request, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s), field, sizeof field) == 1)
            g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT,
                            "field %s contains a NUL character (U+0000); text fields may not hold one", field);
        else c->m->on_message(c, GRPC_SLICE_START_PTR(s), GRPC_SLICE_LENGTH(s));
        grpc_slice_unref(s);
    }
    if (c->recv_bb) {
        grpc_byte_buffer_destroy(c->recv_bb);
        c->recv_bb = NULL;
    }
    if (c->m->kind == G4_RPC_BIDI && !c->status_queued) g4_gcall_recv_next(c);
}

void g4_gcall_on_tag(g4_gtag *t, bool ok) {
    g4_gcall *c = t->call;
    switch (t->kind) {
    case G4_TAG_NEW: /* handled by the server loop */ break;
    case G4_TAG_RECV:
        pthread_mutex_lock(&c->mu);
        on_recv(c, ok);
        pthread_mutex_unlock(&c->mu);
        break;
    case G4_TAG_SEND:
        pthread_mutex_lock(&c->mu);
        c->send_busy = false;
        if (!ok) cancel_once(c); /* writes fail once the client is gone */
        else if (c->status_queued && !c->status_started) start_status(c, NULL);
        else if (c->m->pump) c->m->pump(c);
        pthread_mutex_unlock(&c->mu);
        break;
    case G4_TAG_STATUS: break;
    case G4_TAG_CLOSE:
        pthread_mutex_lock(&c->mu);
        c->closed = true;
        if (c->close_cancelled) cancel_once(c);
        if (c->watching) g4_grpc_watch_remove(c->srv, c);
        if (c->m && c->m->pump) c->m->pump(c); /* let the method release what it holds */
        pthread_mutex_unlock(&c->mu);
        break;
    case G4_TAG_WAKE:
        pthread_mutex_lock(&c->batch_mu);
        c->wake_pending = false;
        pthread_mutex_unlock(&c->batch_mu);
        pthread_mutex_lock(&c->mu);
        if (c->m && c->m->pump) c->m->pump(c);
        pthread_mutex_unlock(&c->mu);
        break;
    }
    g4_gcall_unref(c);
}

void g4_gcall_start(g4_gcall *c) { start_call(c); }
