/* safetensors_write.h — writes a safetensors file (tiny test models, golden data, loader tests).
 *
 * Tensors are added with their bytes (copied) or with data == NULL, in which case the file
 * gets the header and a hole of the right length (ftruncate; a sparse file, nothing written),
 * which is how the loader tests build header-only checkpoints of the real 31B / 26B size.
 * Header: 8-byte little-endian length, JSON with tensors in insertion order (offsets packed in
 * that order), padded with spaces to a multiple of 8. Optional __metadata__ {"format":"pt"}. */
#ifndef G4_MODEL_SAFETENSORS_WRITE_H
#define G4_MODEL_SAFETENSORS_WRITE_H

#include <stdint.h>

#include "base/error.h"
#include "model/safetensors.h"

typedef struct g4_st_writer g4_st_writer; /* opaque */

g4_st_writer *g4_stw_create(void);
void g4_stw_free(g4_st_writer *w);

/* Adds a tensor. data == NULL: no bytes (sparse). Copies name and data. */
int g4_stw_add(g4_st_writer *w, const char *name, g4_dtype dt, int ndim, const int64_t *shape, const void *data,
               g4_error *err);

/* Writes the file. Returns 0 or -1 with err (errno text included). */
int g4_stw_write(const g4_st_writer *w, const char *path, g4_error *err);

#endif
