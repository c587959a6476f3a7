/* pb_text.h — finds a NUL character inside any string field of a serialized request, before
 * protobuf-c unpacks it into C strings that would silently end there (HTTP refuses the same,
 * issue 20). Walks the wire bytes with the message's protobuf-c descriptor, nested messages
 * included. Not here: the rest of request validation (the services). */
#ifndef G4_SERVER_GRPC_PB_TEXT_H
#define G4_SERVER_GRPC_PB_TEXT_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

/* 1 when a string field of data (a serialized message of type d) holds a NUL byte, with its path
 * in path ("chat.messages[1].content"); 0 when none does; −1 when the bytes do not parse (the
 * unpack that follows reports that). */
int g4_pb_find_nul(const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t n, char *path, size_t cap);

#endif
