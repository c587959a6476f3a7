/* pb_wire.h — reading the protobuf wire format field by field (varint keys, the four wire types),
 * for the few places that look at request bytes without unpacking them: the reflection
 * service's descriptor set (descriptor_walk.c) and the NUL check on request text (pb_text.c).
 * Not here: unpacking messages (protobuf-c). */
#ifndef G4_SERVER_GRPC_PB_WIRE_H
#define G4_SERVER_GRPC_PB_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "server/grpc/descriptor_walk.h"

enum { G4_PB_WT_VARINT = 0, G4_PB_WT_I64 = 1, G4_PB_WT_LEN = 2, G4_PB_WT_I32 = 5 };

/* One field: its number, wire type, and payload (LEN only; the reader moves past it). */
typedef struct g4_pb_field {
    uint32_t num;
    int wt;
    g4_pb_bytes val;
} g4_pb_field;

static inline int g4_pb_read_varint(g4_pb_bytes *b, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (!b->n) return -1;
        uint8_t c = *b->p++;
        b->n--;
        x |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

/* 1 with the next field in f, 0 at the end, −1 if malformed. */
static inline int g4_pb_next_field(g4_pb_bytes *b, g4_pb_field *f) {
    if (!b->n) return 0;
    uint64_t key, len;
    if (g4_pb_read_varint(b, &key) || (key >> 3) == 0 || (key >> 3) > UINT32_MAX) return -1;
    f->num = (uint32_t)(key >> 3);
    f->wt = (int)(key & 7);
    f->val.p = b->p;
    f->val.n = 0;
    switch (f->wt) {
    case G4_PB_WT_VARINT: return g4_pb_read_varint(b, &len) ? -1 : 1;
    case G4_PB_WT_I64: len = 8; break;
    case G4_PB_WT_I32: len = 4; break;
    case G4_PB_WT_LEN:
        if (g4_pb_read_varint(b, &len)) return -1;
        f->val.p = b->p;
        f->val.n = (size_t)len;
        break;
    default: return -1;
    }
    if (len > b->n) return -1;
    b->p += len;
    b->n -= (size_t)len;
    return 1;
}

#endif
