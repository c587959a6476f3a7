/* svc_health.c - grpc.health.v1.Health: Check (unary) and Watch (server streaming).
 *
 * Known services: "" (the server), "inference.GRPCInferenceService", "g4serve.v1.G4Serve";
 * all SERVING once the model is attached and ready, NOT_SERVING before, while draining and
 * while stopping. Open without an API key (probes carry none).
 * Check on an unknown name -> NOT_FOUND; Watch on one streams SERVICE_UNKNOWN (as
 * grpc/grpc doc/health-checking.md says). Watch sends the current status at once and again on
 * every change; the server wakes watchers from set_ready and stop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.pb-c.h"
#include "server/grpc/grpc_impl.h"

typedef Grpc__Health__V1__HealthCheckResponse__ServingStatus g4_health_status;

typedef struct watch_state {
    int last_sent;               /* -1 = nothing sent yet */
    char service[256];
} watch_state;

static bool known(const char *svc) {
    return !svc[0] || !strcmp(svc, "inference.GRPCInferenceService") || !strcmp(svc, "g4serve.v1.G4Serve");
}

static g4_health_status status_of(g4_grpc_server *s, const char *svc) {
    if (!known(svc)) return GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVICE_UNKNOWN;
    return g4_grpc_ready(s) ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                            : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
}

static void check_message(g4_gcall *c, const uint8_t *data, size_t len) {
    Grpc__Health__V1__HealthCheckRequest *rq = grpc__health__v1__health_check_request__unpack(NULL, len, data);
    if (!rq) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "HealthCheckRequest does not parse");
        return;
    }
    if (!known(rq->service)) {
        g4_gcall_finish(c, GRPC_STATUS_NOT_FOUND, "unknown service \"%s\"", rq->service);
    } else {
        Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        r.status = status_of(c->srv, rq->service);
        g4_gcall_reply(c, &r.base);
    }
    grpc__health__v1__health_check_request__free_unpacked(rq, NULL);
}

static void watch_pump(g4_gcall *c) {
    watch_state *w = c->svc;
    if (!w || g4_gcall_over(c) || c->send_busy) return;
    if (atomic_load(&c->srv->stopping)) {
        g4_grpc_watch_remove(c->srv, c);
        g4_gcall_finish(c, GRPC_STATUS_UNAVAILABLE, "the server is shutting down");
        return;
    }
    g4_health_status st = status_of(c->srv, w->service);
    if ((int)st == w->last_sent) return;
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = st;
    if (g4_gcall_send(c, &r.base) == 0) w->last_sent = (int)st;
}

static void watch_message(g4_gcall *c, const uint8_t *data, size_t len) {
    Grpc__Health__V1__HealthCheckRequest *rq = grpc__health__v1__health_check_request__unpack(NULL, len, data);
    if (!rq) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "HealthCheckRequest does not parse");
        return;
    }
    watch_state *w = calloc(1, sizeof *w);
    if (!w) {
        grpc__health__v1__health_check_request__free_unpacked(rq, NULL);
        g4_gcall_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    w->last_sent = -1;
    snprintf(w->service, sizeof w->service, "%s", rq->service);
    grpc__health__v1__health_check_request__free_unpacked(rq, NULL);
    c->svc = w;
    if (!c->closed) g4_grpc_watch_add(c->srv, c);
    watch_pump(c);
}

static void watch_free(g4_gcall *c) { free(c->svc); }

const g4_grpc_method g4_health_methods[] = {
    {.path = "/grpc.health.v1.Health/Check",
     .request = &grpc__health__v1__health_check_request__descriptor,
     .kind = G4_RPC_UNARY,
     .open = true,
     .on_message = check_message},
    {.path = "/grpc.health.v1.Health/Watch",
     .request = &grpc__health__v1__health_check_request__descriptor,
     .kind = G4_RPC_SERVER_STREAM,
     .open = true,
     .on_message = watch_message,
     .pump = watch_pump,
     .on_free = watch_free},
    {0},
};
