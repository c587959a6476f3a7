/* descriptor_walk.c — a FileDescriptorSet read from the wire format (see descriptor_walk.h).
 *
 * Field numbers used (google/protobuf/descriptor.proto):
 *   FileDescriptorSet        file = 1
 *   FileDescriptorProto      name = 1, package = 2, message_type = 4, enum_type = 5, service = 6
 *   DescriptorProto          name = 1, nested_type = 3, enum_type = 4
 *   EnumDescriptorProto      name = 1
 *   ServiceDescriptorProto   name = 1, method = 2
 *   MethodDescriptorProto    name = 1
 * Every other field is skipped by its wire type (pb_wire.h). */
#include "server/grpc/descriptor_walk.h"

#include "server/grpc/pb_wire.h"

#include <stdio.h>
#include <string.h>

#define G4_DESC_NAME_MAX 512

/* The string field `num` (the first one) of a message into out; 0, or −1. */
static int string_field(g4_pb_bytes msg, uint32_t num, char *out, size_t cap) {
    g4_pb_field f;
    int r;
    while ((r = g4_pb_next_field(&msg, &f)) == 1) {
        if (f.num != num || f.wt != G4_PB_WT_LEN) continue;
        if (f.val.n >= cap) return -1;
        memcpy(out, f.val.p, f.val.n);
        out[f.val.n] = 0;
        return 0;
    }
    return -1;
}

int g4_descset_each_file(g4_pb_bytes set, int (*fn)(void *ctx, g4_pb_bytes file), void *ctx) {
    g4_pb_field f;
    int r;
    while ((r = g4_pb_next_field(&set, &f)) == 1) {
        if (f.num != 1 || f.wt != G4_PB_WT_LEN) continue;
        int v = fn(ctx, f.val);
        if (v) return v;
    }
    return r;
}

int g4_descfile_name(g4_pb_bytes file, char *out, size_t cap) { return string_field(file, 1, out, cap); }

/* scope + "." + name (or name when scope is empty) into out; 0, or −1 when too long. */
static int qualify(const char *scope, g4_pb_bytes msg, char *out) {
    char name[G4_DESC_NAME_MAX];
    if (string_field(msg, 1, name, sizeof name)) return -1;
    int n =
        scope[0] ? snprintf(out, G4_DESC_NAME_MAX, "%s.%s", scope, name) : snprintf(out, G4_DESC_NAME_MAX, "%s", name);
    return n < 0 || n >= G4_DESC_NAME_MAX ? -1 : 0;
}

static int file_package(g4_pb_bytes file, char *pkg) {
    if (string_field(file, 2, pkg, G4_DESC_NAME_MAX)) pkg[0] = 0; /* no package: the empty scope */
    return 0;
}

int g4_descfile_each_service(g4_pb_bytes file, int (*fn)(void *ctx, const char *name), void *ctx) {
    char pkg[G4_DESC_NAME_MAX], full[G4_DESC_NAME_MAX];
    file_package(file, pkg);
    g4_pb_field f;
    int r;
    while ((r = g4_pb_next_field(&file, &f)) == 1) {
        if (f.num != 6 || f.wt != G4_PB_WT_LEN) continue;
        if (qualify(pkg, f.val, full)) return -1;
        int v = fn(ctx, full);
        if (v) return v;
    }
    return r;
}

/* Searches a message (and its nested messages and enums) for symbol. */
static int message_defines(const char *scope, g4_pb_bytes msg, const char *symbol, int depth) {
    char full[G4_DESC_NAME_MAX];
    if (depth > 32 || qualify(scope, msg, full)) return -1;
    if (!strcmp(full, symbol)) return 1;
    size_t n = strlen(full);
    if (strncmp(full, symbol, n) || symbol[n] != '.') return 0; /* not inside this message */
    g4_pb_field f;
    int r;
    while ((r = g4_pb_next_field(&msg, &f)) == 1) {
        if (f.wt != G4_PB_WT_LEN) continue;
        int v = 0;
        if (f.num == 3) v = message_defines(full, f.val, symbol, depth + 1);
        else if (f.num == 4) {
            char e[G4_DESC_NAME_MAX];
            if (qualify(full, f.val, e)) return -1;
            v = !strcmp(e, symbol);
        }
        if (v) return v;
    }
    return r;
}

int g4_descfile_defines(g4_pb_bytes file, const char *symbol) {
    char pkg[G4_DESC_NAME_MAX], full[G4_DESC_NAME_MAX];
    file_package(file, pkg);
    g4_pb_field f;
    int r;
    while ((r = g4_pb_next_field(&file, &f)) == 1) {
        if (f.wt != G4_PB_WT_LEN) continue;
        int v = 0;
        if (f.num == 4) v = message_defines(pkg, f.val, symbol, 0);
        else if (f.num == 5) {
            if (qualify(pkg, f.val, full)) return -1;
            v = !strcmp(full, symbol);
        } else if (f.num == 6) { /* a service or one of its methods */
            if (qualify(pkg, f.val, full)) return -1;
            if (!strcmp(full, symbol)) return 1;
            size_t n = strlen(full);
            if (strncmp(full, symbol, n) || symbol[n] != '.') continue;
            g4_pb_bytes svc = f.val;
            g4_pb_field m;
            int rm;
            while ((rm = g4_pb_next_field(&svc, &m)) == 1) {
                char meth[G4_DESC_NAME_MAX];
                if (m.num != 2 || m.wt != G4_PB_WT_LEN) continue;
                if (qualify(full, m.val, meth)) return -1;
                if (!strcmp(meth, symbol)) return 1;
            }
            if (rm < 0) return -1;
        }
        if (v) return v;
    }
    return r;
}
