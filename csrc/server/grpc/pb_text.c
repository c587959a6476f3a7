/* pb_text.c — NUL characters in a request's string fields (see pb_text.h). */
#include "server/grpc/pb_text.h"

#include <stdio.h>
#include <string.h>

#include "server/grpc/pb_wire.h"

#define G4_PB_MAX_DEPTH 32
#define G4_PB_MAX_FIELDS 64 /* repeated-field indexes are kept for this many fields per message */

static int walk(const ProtobufCMessageDescriptor *d, g4_pb_bytes b, char *path, size_t cap, size_t at, int depth) {
    if (depth > G4_PB_MAX_DEPTH) return -1;
    unsigned seen[G4_PB_MAX_FIELDS] = {0};
    g4_pb_field f;
    int r;
    while ((r = g4_pb_next_field(&b, &f)) == 1) {
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, f.num);
        if (!fd || f.wt != G4_PB_WT_LEN) continue; /* unknown fields and scalars hold no text */
        if (fd->type != PROTOBUF_C_TYPE_STRING && fd->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        size_t k = (size_t)(fd - d->fields);
        unsigned idx = k < G4_PB_MAX_FIELDS ? seen[k]++ : 0;
        int w = fd->label == PROTOBUF_C_LABEL_REPEATED
                    ? snprintf(path + at, cap - at, "%s%s[%u]", at ? "." : "", fd->name, idx)
                    : snprintf(path + at, cap - at, "%s%s", at ? "." : "", fd->name);
        size_t next = w < 0 || (size_t)w >= cap - at ? cap - 1 : at + (size_t)w;
        if (fd->type == PROTOBUF_C_TYPE_STRING) {
            if (memchr(f.val.p, 0, f.val.n)) return 1;
        } else {
            int v = walk(fd->descriptor, f.val, path, cap, next, depth + 1);
            if (v) return v;
        }
        path[at] = 0;
    }
    return r;
}

int g4_pb_find_nul(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t n, char *path, size_t cap) {
    if (!cap) return -1;
    path[0] = 0;
    return walk(d, (g4_pb_bytes){data, n}, path, cap, 0, 0);
}
