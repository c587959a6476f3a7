/* stream_alloc.c — the default of stream.h's allocation seam: calloc. Alone in its object so a
 * test executable can replace it (stream.h). */
#include <stdlib.h>

#include "engine/stream.h"

void *g4_stream_alloc(g4_stream_alloc_kind kind, size_t bytes) {
    (void)kind;
    return calloc(1, bytes);
}
