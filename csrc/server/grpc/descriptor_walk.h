/* descriptor_walk.h — reading a serialized google.protobuf.FileDescriptorSet (what
 * `protoc --descriptor_set_out` writes) straight from the protobuf wire format: its files, a
 * file's name, the services it declares and whether it defines a fully qualified symbol. What
 * gRPC server reflection needs, without a protobuf runtime for descriptor.proto.
 * Not here: the reflection protocol itself (svc_reflection.c). */
#ifndef G4_SERVER_GRPC_DESCRIPTOR_WALK_H
#define G4_SERVER_GRPC_DESCRIPTOR_WALK_H

#include <stddef.h>
#include <stdint.h>

typedef struct g4_pb_bytes {
    const uint8_t *p;
    size_t n;
} g4_pb_bytes;

/* The set's files (serialized FileDescriptorProto, field 1 of the set), in order: calls fn for
 * each until it returns non-zero; returns that value, 0 after the last file, −1 if the set is
 * malformed. */
int g4_descset_each_file(g4_pb_bytes set, int (*fn)(void *ctx, g4_pb_bytes file), void *ctx);
/* The file's name ("g4serve.proto") as a NUL-terminated string in out; 0, or −1 (missing,
 * malformed or longer than cap − 1). */
int g4_descfile_name(g4_pb_bytes file, char *out, size_t cap);
/* Calls fn with the fully qualified name ("pkg.Service") of every service the file declares;
 * stops and returns fn's non-zero value; 0 after the last, −1 if malformed. */
int g4_descfile_each_service(g4_pb_bytes file, int (*fn)(void *ctx, const char *name), void *ctx);
/* 1 when the file defines `symbol` (fully qualified, no leading dot): a message or enum at any
 * nesting depth, a service or a service's method ("pkg.Service.Method"); 0 when not; −1 if
 * malformed. */
int g4_descfile_defines(g4_pb_bytes file, const char *symbol);

#endif
