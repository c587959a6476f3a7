/* file.h — reading a whole (small) file into memory: config.json, tokenizer.json,
 * generation_config.json, test data. Not for checkpoints (those are mmapped: safetensors.c). */
#ifndef G4_BASE_FILE_H
#define G4_BASE_FILE_H

#include <stddef.h>

#include "base/error.h"

/* *out = the file's bytes plus a terminating NUL (free() it), *len = the byte count (may be NULL).
 * Files over max_bytes are refused. Returns 0, or -1 with err naming the path and the reason. */
int g4_read_file(const char *path, size_t max_bytes, char **out, size_t *len, g4_error *err);

#endif
