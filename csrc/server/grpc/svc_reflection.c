/* svc_reflection.c — gRPC server reflection (grpc.reflection.v1alpha and v1
 * ServerReflection/ServerReflectionInfo, bidi streaming): what grpcurl, Postman and grpcio's
 * reflection client ask to discover g4serve's services without its .proto files.
 *
 * The answers come from proto/'s descriptor set, serialized by protoc at build time and embedded
 * (g4_grpc_descriptor_set, csrc/server/grpc/CMakeLists.txt): list_services names every service in
 * it; file_by_filename and file_containing_symbol return the file (g4serve's protos import
 * nothing, so no dependency follows); all_extension_numbers_of_type answers an empty list for a
 * known message; extensions do not exist here (NOT_FOUND). One answer per request, in order.
 * Needs the API key like the inference services. Not here: the wire walk (descriptor_walk.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reflection.pb-c.h"
#include "server/grpc/descriptor_walk.h"
#include "server/grpc/grpc_impl.h"

extern const unsigned char g4_grpc_descriptor_set[];
extern const size_t g4_grpc_descriptor_set_len;

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest refl_req;

/* Requests answered in arrival order (one send in flight at a time). */
typedef struct refl_state {
    refl_req **q;
    int head, n, cap;
} refl_state;

enum { PB_NOT_FOUND = 5, PB_INVALID_ARGUMENT = 3 }; /* grpc status codes in ErrorResponse */

static g4_pb_bytes descriptor_set(void) { return (g4_pb_bytes){g4_grpc_descriptor_set, g4_grpc_descriptor_set_len}; }

/* --- lookups over the descriptor set -------------------------------------------------------- */

typedef struct find_ctx {
    const char *key;
    g4_pb_bytes found;
} find_ctx;

static int match_name(void *ctx, g4_pb_bytes file) {
    find_ctx *f = ctx;
    char name[512];
    if (g4_descfile_name(file, name, sizeof name)) return -1;
    if (strcmp(name, f->key)) return 0;
    f->found = file;
    return 1;
}

static int match_symbol(void *ctx, g4_pb_bytes file) {
    find_ctx *f = ctx;
    int r = g4_descfile_defines(file, f->key);
    if (r == 1) f->found = file;
    return r;
}

typedef struct list_ctx {
    Grpc__Reflection__V1alpha__ServiceResponse *svc;
    Grpc__Reflection__V1alpha__ServiceResponse **ptrs;
    char (*names)[256];
    size_t n, cap;
} list_ctx;

static int add_service(void *ctx, const char *name) {
    list_ctx *l = ctx;
    if (l->n == l->cap || strlen(name) >= sizeof l->names[0]) return -1;
    strcpy(l->names[l->n], name);
    grpc__reflection__v1alpha__service_response__init(&l->svc[l->n]);
    l->svc[l->n].name = l->names[l->n];
    l->ptrs[l->n] = &l->svc[l->n];
    l->n++;
    return 0;
}

static int each_file_services(void *ctx, g4_pb_bytes file) { return g4_descfile_each_service(file, add_service, ctx); }

/* --- one answer ---------------------------------------------------------------------------- */

#define G4_REFL_MAX_SERVICES 16

/* Builds the answer to rq and sends it. */
static void answer(g4_gcall *c, refl_req *rq) {
    Grpc__Reflection__V1alpha__ServerReflectionResponse r = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__FileDescriptorResponse fd = GRPC__REFLECTION__V1ALPHA__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ListServiceResponse ls = GRPC__REFLECTION__V1ALPHA__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ExtensionNumberResponse en = GRPC__REFLECTION__V1ALPHA__EXTENSION_NUMBER_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ErrorResponse er = GRPC__REFLECTION__V1ALPHA__ERROR_RESPONSE__INIT;
    Grpc__Reflection__V1alpha__ServiceResponse svc[G4_REFL_MAX_SERVICES], *ptrs[G4_REFL_MAX_SERVICES];
    char names[G4_REFL_MAX_SERVICES][256];
    ProtobufCBinaryData file_bytes;
    char msg[640];
    r.valid_host = rq->host ? rq->host : "";
    r.original_request = rq;
    find_ctx f = {0};
    int found = 0; /* 1: f.found holds the file; −1: the descriptor set does not parse */
    switch (rq->message_request_case) {
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES: {
        list_ctx l = {svc, ptrs, names, 0, G4_REFL_MAX_SERVICES};
        if (g4_descset_each_file(descriptor_set(), each_file_services, &l) == 0) {
            ls.n_service = l.n;
            ls.service = ptrs;
            r.message_response_case =
                GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
            r.list_services_response = &ls;
        } else {
            snprintf(msg, sizeof msg, "the embedded descriptor set does not parse");
            er.error_code = 13; /* INTERNAL */
        }
        break;
    }
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        f.key = rq->file_by_filename;
        found = g4_descset_each_file(descriptor_set(), match_name, &f);
        if (found != 1) snprintf(msg, sizeof msg, "no file named \"%.500s\"", f.key);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        f.key = rq->message_request_case ==
                        GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL
                    ? rq->file_containing_symbol
                    : rq->all_extension_numbers_of_type;
        if (f.key[0] == '.') f.key++;
        found = g4_descset_each_file(descriptor_set(), match_symbol, &f);
        if (found != 1) snprintf(msg, sizeof msg, "no symbol \"%.500s\"", f.key);
        break;
    case GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION:
        snprintf(msg, sizeof msg, "no extensions are defined (asked: %.400s, %d)",
                 rq->file_containing_extension && rq->file_containing_extension->containing_type
                     ? rq->file_containing_extension->containing_type
                     : "",
                 rq->file_containing_extension ? rq->file_containing_extension->extension_number : 0);
        break;
    default:
        snprintf(msg, sizeof msg, "the request names no question (list_services, file_by_filename, ...)");
        er.error_code = PB_INVALID_ARGUMENT;
        break;
    }
    if (found == 1 &&
        rq->message_request_case ==
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE) {
        en.base_type_name = (char *)f.key;
        r.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
        r.all_extension_numbers_response = &en;
    } else if (found == 1) {
        file_bytes.data = (uint8_t *)f.found.p;
        file_bytes.len = f.found.n;
        fd.n_file_descriptor_proto = 1;
        fd.file_descriptor_proto = &file_bytes;
        r.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        r.file_descriptor_response = &fd;
    } else if (r.message_response_case ==
               GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE__NOT_SET) {
        if (!er.error_code) er.error_code = found < 0 ? 13 : PB_NOT_FOUND;
        er.error_message = msg;
        r.message_response_case =
            GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
        r.error_response = &er;
    }
    g4_gcall_send(c, &r.base);
}

/* --- the stream ---------------------------------------------------------------------------- */

static void refl_pump(g4_gcall *c) {
    refl_state *s = c->svc;
    int pending = s ? s->n : 0;
    if (pending && !g4_gcall_over(c) && !c->send_busy) {
        refl_req *rq = s->q[s->head];
        s->head = (s->head + 1) % s->cap;
        s->n--;
        answer(c, rq);
        grpc__reflection__v1alpha__server_reflection_request__free_unpacked(rq, NULL);
        pending = s->n;
    }
    if (!pending && !c->send_busy && (c->half_closed || g4_grpc_draining(c->srv)))
        g4_gcall_finish(c, c->half_closed ? GRPC_STATUS_OK : GRPC_STATUS_UNAVAILABLE, "%s",
                        c->half_closed ? "" : "the server is shutting down");
}

/* Grows the ring to hold one more; 0, or −1. */
static int ring_reserve(refl_state *s) {
    if (s->n < s->cap) return 0;
    int cap = s->cap ? 2 * s->cap : 8;
    refl_req **q = malloc((size_t)cap * sizeof *q);
    if (!q) return -1;
    for (int i = 0; i < s->n; i++) q[i] = s->q[(s->head + i) % s->cap];
    free(s->q);
    s->q = q;
    s->head = 0;
    s->cap = cap;
    return 0;
}

#define G4_REFL_MAX_PENDING 64 /* unanswered requests one stream may queue */

static void refl_message(g4_gcall *c, const uint8_t *d, size_t n) {
    refl_state *s = c->svc;
    if (!s && !(s = c->svc = calloc(1, sizeof *s))) {
        g4_gcall_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    refl_req *rq = grpc__reflection__v1alpha__server_reflection_request__unpack(NULL, n, d);
    if (!rq) {
        g4_gcall_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "ServerReflectionRequest does not parse");
        return;
    }
    if (s->n >= G4_REFL_MAX_PENDING || ring_reserve(s)) {
        grpc__reflection__v1alpha__server_reflection_request__free_unpacked(rq, NULL);
        g4_gcall_finish(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "more than %d unanswered reflection requests",
                        G4_REFL_MAX_PENDING);
        return;
    }
    s->q[(s->head + s->n) % s->cap] = rq;
    s->n++;
    refl_pump(c);
}

static void refl_half_close(g4_gcall *c) { refl_pump(c); }

static void refl_free(g4_gcall *c) {
    refl_state *s = c->svc;
    if (!s) return;
    for (int i = 0; i < s->n; i++)
        grpc__reflection__v1alpha__server_reflection_request__free_unpacked(s->q[(s->head + i) % s->cap], NULL);
    free(s->q);
    free(s);
}

const g4_grpc_method g4_reflection_methods[] = {
    {.path = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
     .kind = G4_RPC_BIDI,
     .on_message = refl_message,
     .on_half_close = refl_half_close,
     .pump = refl_pump,
     .on_free = refl_free},
    {.path = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
     .kind = G4_RPC_BIDI,
     .on_message = refl_message,
     .on_half_close = refl_half_close,
     .pump = refl_pump,
     .on_free = refl_free},
    {0},
};
