/* grpc_server.c - the gRPC server: setup on the C core, completion-queue threads, method
 * dispatch, readiness, Health watchers, the request-id registry, and orderly shutdown.
 *
 * Setup follows docs/serving-conventions.md §4: channel args raise the receive limit, one CQ for
 * next() shared by n_threads threads, generic request_call slots re-posted as calls arrive.
 * Shutdown: shutdown_and_notify, end the Watch streams, wait drain_timeout_s for calls to
 * finish, cancel_all_calls, wait until every call is freed (their engine requests have
 * delivered their last event), destroy. Not here: per-call handling (grpc_call.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc_security.h>
#include <grpc/support/log.h>

#include "base/secret.h"
#include "server/grpc/grpc_impl.h"

#define G4_GRPC_SLOTS 16 /* request_call slots kept posted */

double g4_gnow(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void g4_grpc_config_default(g4_grpc_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "0.0.0.0";
    c->port = 8001;
    c->n_threads = 2;
    c->max_recv_bytes = 64u << 20;
    c->drain_timeout_s = 5.0;
    c->served_name = "g4serve";
    c->model_path = "";
    c->default_max_tokens = 16;
    c->stall_timeout_s = 60;
}

static const g4_grpc_method *const all_tables[] = {g4_health_methods, g4_native_methods, g4_kserve_methods,
                                                   g4_reflection_methods};

const g4_grpc_method *g4_grpc_find_method(const char *path, size_t len) {
    for (size_t t = 0; t < sizeof all_tables / sizeof all_tables[0]; t++)
        for (const g4_grpc_method *m = all_tables[t]; m->path; m++)
            if (strlen(m->path) == len && !memcmp(m->path, path, len)) return m;
    return NULL;
}

static void post_slot(g4_grpc_server *s) {
    if (atomic_load(&s->stopping)) return;
    g4_gcall *c = g4_gcall_new(s);
    if (!c) {
        gpr_log(GPR_ERROR, "g4serve grpc: out of memory for a call slot");
        return;
    }
    G4_GTAG_RELEASE(&c->t_new);
    grpc_call_error e = grpc_server_request_call(s->server, &c->call, &c->details, &c->md, s->cq, s->cq, &c->t_new);
    if (e != GRPC_CALL_OK) g4_gcall_unref(c);
}

static g4_gcall **hold_calls(g4_grpc_server *s, int *n_out);

/* Calls whose last send has waited longer than stall_timeout_s: the client stopped reading, so
 * the call would hold its running slots and KV blocks until max_tokens. Cancelled with
 * RESOURCE_EXHAUSTED; the failed send then cancels its generations (on_cancel). At most once a
 * second, by whichever completion-queue thread times out first. */
static void cancel_stalled(g4_grpc_server *s) {
    double now = g4_gnow();
    double last = atomic_load(&s->last_stall_scan);
    if (s->cfg.stall_timeout_s <= 0 || now - last < 1.0 ||
        !atomic_compare_exchange_strong(&s->last_stall_scan, &last, now))
        return;
    int n;
    g4_gcall **held = hold_calls(s, &n);
    for (int i = 0; held && i < n; i++) {
        g4_gcall *c = held[i];
        pthread_mutex_lock(&c->mu);
        if (c->send_busy && !c->stalled && !c->cancelled && now - c->t_send_start > s->cfg.stall_timeout_s) {
            c->stalled = true;
            gpr_log(GPR_INFO, "g4serve grpc: a call's client read nothing for %g s; cancelled", s->cfg.stall_timeout_s);
            fprintf(stderr, "g4serve: grpc: a call's client read nothing for %g s; cancelled\n",
                    s->cfg.stall_timeout_s);
            grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                                         "the client read nothing for too long (stall timeout)", NULL);
        }
        pthread_mutex_unlock(&c->mu);
        g4_gcall_unref(c);
    }
    free(held);
}

static void *cq_loop(void *arg) {
    g4_grpc_server *s = arg;
    for (;;) {
        gpr_timespec tick = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(1000, GPR_TIMESPAN));
        grpc_event ev = grpc_completion_queue_next(s->cq, tick, NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
        if (ev.type == GRPC_QUEUE_TIMEOUT) {
            cancel_stalled(s);
            continue;
        }
        if (ev.type != GRPC_OP_COMPLETE) continue;
        G4_GTAG_ACQUIRE(ev.tag);
        if (ev.tag == (void *)s) { /* the server shutdown tag */
            pthread_mutex_lock(&s->mu);
            s->shutdown_done = true;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        g4_gtag *t = ev.tag;
        if (t->kind == G4_TAG_NEW) {
            g4_gcall *c = t->call;
            if (ev.success && c->call) {
                g4_gcall_accept(c);
                post_slot(s);
                g4_gcall_start(c);
            }
            g4_gcall_unref(c);
            continue;
        }
        g4_gcall_on_tag(t, ev.success != 0);
    }
    return NULL;
}

static char *dupstr(const char *s) { return strdup(s ? s : ""); }

g4_grpc_server *g4_grpc_server_start(const g4_grpc_config *cfg, g4_error *err) {
    if (!cfg->served_name || !cfg->served_name[0]) {
        g4_fail(err, "grpc: served_name is required");
        return NULL;
    }
    if (cfg->port < 0 || cfg->port > 65535) {
        g4_fail(err, "grpc: port %d out of range", cfg->port);
        return NULL;
    }
    g4_grpc_server *s = calloc(1, sizeof *s);
    if (!s) {
        g4_fail(err, "grpc: out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->served_name = dupstr(cfg->served_name);
    s->model_path = dupstr(cfg->model_path);
    s->host = dupstr(cfg->host ? cfg->host : "0.0.0.0");
    s->api_key = cfg->api_key && cfg->api_key[0] ? strdup(cfg->api_key) : NULL;
    s->cfg.api_key = s->api_key;
    s->cfg.served_name = s->served_name;
    s->cfg.model_path = s->model_path;
    s->cfg.host = s->host;
    if (s->cfg.n_threads < 1) s->cfg.n_threads = 1;
    if (s->cfg.n_threads > 16) s->cfg.n_threads = 16;
    if (!s->cfg.max_recv_bytes) s->cfg.max_recv_bytes = 64u << 20;
    if (s->cfg.default_max_tokens < 1) s->cfg.default_max_tokens = 16;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);

    grpc_init();
    grpc_arg args[2];
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = s->cfg.max_recv_bytes > 0x7fffffff ? 0x7fffffff : (int)s->cfg.max_recv_bytes;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = -1;
    grpc_channel_args ch = {.num_args = 2, .args = args};
    s->server = grpc_server_create(&ch, NULL);
    s->cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->cq, NULL);
    char addr[300];
    bool v6 = strchr(s->host, ':') && s->host[0] != '[';
    snprintf(addr, sizeof addr, v6 ? "[%s]:%d" : "%s:%d", s->host, s->cfg.port);
    grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
    s->port = grpc_server_add_http2_port(s->server, addr, creds);
    grpc_server_credentials_release(creds);
    if (s->port == 0) {
        g4_fail(err, "grpc: cannot listen on %s (address in use or invalid)", addr);
        grpc_server_destroy(s->server);
        grpc_completion_queue_shutdown(s->cq);
        while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
               GRPC_QUEUE_SHUTDOWN) {
        }
        grpc_completion_queue_destroy(s->cq);
        grpc_shutdown();
        free(s->served_name), free(s->model_path), free(s->host), free(s->api_key), free(s);
        return NULL;
    }
    grpc_server_start(s->server);
    for (int i = 0; i < G4_GRPC_SLOTS; i++) post_slot(s);
    for (int i = 0; i < s->cfg.n_threads; i++) {
        if (pthread_create(&s->threads[i], NULL, cq_loop, s)) break;
        s->n_threads++;
    }
    if (s->n_threads == 0) {
        g4_fail(err, "grpc: cannot start completion-queue threads");
        /* no thread to drain: fall through to a synchronous stop */
        s->threads[0] = 0;
    }
    return s;
}

int g4_grpc_server_port(const g4_grpc_server *s) { return s->port; }

void g4_grpc_server_attach(g4_grpc_server *s, const g4_grpc_model *m) {
    s->model = *m;
    if (m->tok) s->so_cache = g4_so_cache_new(m->tok, 64); /* NULL: structured requests are refused */
    atomic_store(&s->attached, true);
}

static void wake_watchers(g4_grpc_server *s) {
    pthread_mutex_lock(&s->mu);
    for (g4_gcall *c = s->watchers; c; c = c->wnext) g4_gcall_wake(c);
    pthread_mutex_unlock(&s->mu);
}

void g4_grpc_server_set_ready(g4_grpc_server *s, bool ready) {
    atomic_store(&s->ready, ready);
    wake_watchers(s);
}

bool g4_grpc_ready(g4_grpc_server *s) {
    return atomic_load(&s->attached) && atomic_load(&s->ready) && !atomic_load(&s->draining) &&
           !atomic_load(&s->stopping);
}

/* Every accepted call still alive, each with a reference the caller drops (g4_gcall_unref, with
 * no server lock held). Taken under srv->mu; c->mu must not be, as it comes before srv->mu.
 * NULL when out of memory. */
static g4_gcall **hold_calls(g4_grpc_server *s, int *n_out) {
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (g4_gcall *c = s->calls; c; c = c->anext) n++;
    g4_gcall **held = calloc((size_t)n + 1, sizeof *held);
    int k = 0;
    for (g4_gcall *c = s->calls; c && held; c = c->anext)
        if (g4_gcall_ref_if_alive(c)) held[k++] = c;
    pthread_mutex_unlock(&s->mu);
    *n_out = k;
    return held;
}

void g4_grpc_server_drain(g4_grpc_server *s) {
    atomic_store(&s->draining, true);
    /* Every call's pump sees the drain: Watch streams send NOT_SERVING, an idle ModelStreamInfer
     * stream ends with UNAVAILABLE. */
    int n;
    g4_gcall **held = hold_calls(s, &n);
    if (!held) {
        wake_watchers(s);
        return;
    }
    for (int i = 0; i < n; i++) {
        g4_gcall_wake(held[i]);
        g4_gcall_unref(held[i]);
    }
    free(held);
}

bool g4_grpc_draining(g4_grpc_server *s) { return atomic_load(&s->draining); }

int g4_grpc_server_in_flight(g4_grpc_server *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->n_calls - s->n_watchers;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void g4_grpc_server_cancel_all(g4_grpc_server *s) {
    int n;
    g4_gcall **held = hold_calls(s, &n);
    if (!held) { /* out of memory: the blunt way, the clients see CANCELLED */
        grpc_server_cancel_all_calls(s->server);
        return;
    }
    for (int i = 0; i < n; i++) {
        g4_gcall *c = held[i];
        pthread_mutex_lock(&c->mu);
        if (c->m && c->m->on_cancel && !c->cancel_handled) c->m->on_cancel(c);
        pthread_mutex_unlock(&c->mu);
        g4_gcall_unref(c);
    }
    free(held);
}

int g4_grpc_new_rid(char *out, size_t cap) {
    unsigned char r[16];
    if (cap < 3 + 2 * sizeof r + 1 || g4_random_bytes(r, sizeof r)) return -1;
    memcpy(out, "g4-", 3);
    for (size_t i = 0; i < sizeof r; i++) snprintf(out + 3 + 2 * i, 3, "%02x", r[i]);
    return 0;
}

bool g4_grpc_model_matches(g4_grpc_server *s, const char *name) {
    return !name || !name[0] || !strcmp(name, s->served_name);
}

void g4_grpc_watch_add(g4_grpc_server *s, g4_gcall *c) {
    pthread_mutex_lock(&s->mu);
    c->wnext = s->watchers;
    s->watchers = c;
    c->watching = true;
    s->n_watchers++;
    pthread_mutex_unlock(&s->mu);
}

void g4_grpc_watch_remove(g4_grpc_server *s, g4_gcall *c) {
    pthread_mutex_lock(&s->mu);
    for (g4_gcall **p = &s->watchers; *p; p = &(*p)->wnext)
        if (*p == c) {
            *p = c->wnext;
            s->n_watchers--;
            break;
        }
    c->watching = false;
    pthread_mutex_unlock(&s->mu);
}

int g4_grpc_rid_add(g4_grpc_server *s, const char *rid) {
    g4_rid *e = calloc(1, sizeof *e);
    if (!e || !(e->rid = strdup(rid))) {
        free(e);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    for (g4_rid *r = s->rids; r; r = r->next)
        if (!strcmp(r->rid, rid)) {
            pthread_mutex_unlock(&s->mu);
            free(e->rid), free(e);
            return -1;
        }
    e->next = s->rids;
    s->rids = e;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

bool g4_grpc_rid_bind(g4_grpc_server *s, const char *rid, uint64_t eid) {
    bool abort = false;
    pthread_mutex_lock(&s->mu);
    for (g4_rid *r = s->rids; r; r = r->next)
        if (!strcmp(r->rid, rid)) {
            r->eid = eid;
            abort = r->abort_requested;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    return abort;
}

void g4_grpc_rid_remove(g4_grpc_server *s, const char *rid) {
    pthread_mutex_lock(&s->mu);
    for (g4_rid **p = &s->rids; *p; p = &(*p)->next)
        if (!strcmp((*p)->rid, rid)) {
            g4_rid *r = *p;
            *p = r->next;
            free(r->rid), free(r);
            break;
        }
    pthread_mutex_unlock(&s->mu);
}

bool g4_grpc_rid_abort(g4_grpc_server *s, const char *rid) {
    uint64_t eid = 0;
    bool found = false;
    pthread_mutex_lock(&s->mu);
    for (g4_rid *r = s->rids; r; r = r->next)
        if (!strcmp(r->rid, rid)) {
            found = true;
            eid = r->eid;
            if (!eid) r->abort_requested = true;
            break;
        }
    pthread_mutex_unlock(&s->mu);
    if (eid) g4_engine_cancel(s->model.engine, eid);
    return found;
}

static struct timespec deadline_in(double seconds) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ns = ts.tv_nsec + (long long)(seconds * 1e9);
    ts.tv_sec += ns / 1000000000LL;
    ts.tv_nsec = ns % 1000000000LL;
    return ts;
}

void g4_grpc_server_stop(g4_grpc_server *s) {
    if (!s) return;
    atomic_store(&s->stopping, true);
    G4_GTAG_RELEASE(s);
    grpc_server_shutdown_and_notify(s->server, s->cq, s);
    wake_watchers(s); /* Watch streams end with UNAVAILABLE */
    pthread_mutex_lock(&s->mu);
    struct timespec until = deadline_in(s->cfg.drain_timeout_s);
    while (s->n_calls > 0 && pthread_cond_timedwait(&s->cv, &s->mu, &until) == 0) {
    }
    bool left = s->n_calls > 0;
    pthread_mutex_unlock(&s->mu);
    if (left) {
        gpr_log(GPR_INFO, "g4serve grpc: cancelling calls still running after %.1f s", s->cfg.drain_timeout_s);
        grpc_server_cancel_all_calls(s->server);
    }
    pthread_mutex_lock(&s->mu);
    while (s->n_calls > 0 || !s->shutdown_done) pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    grpc_server_destroy(s->server);
    grpc_completion_queue_shutdown(s->cq);
    for (int i = 0; i < s->n_threads; i++) pthread_join(s->threads[i], NULL);
    grpc_completion_queue_destroy(s->cq);
    grpc_shutdown();
    while (s->rids) {
        g4_rid *r = s->rids;
        s->rids = r->next;
        free(r->rid), free(r);
    }
    g4_so_cache_free(s->so_cache);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->served_name), free(s->model_path), free(s->host), free(s->api_key);
    free(s);
}
