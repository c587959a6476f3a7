/* safetensors.h — read-only, mmapped access to Hugging Face safetensors checkpoints.
 *
 * Opens one file or a sharded checkpoint (model.safetensors.index.json + shards), validates
 * every header (JSON well-formed, dtype known, shape × dtype size == byte length, offsets in
 * range of the file, no two tensors overlapping, every name exactly once across shards) and
 * exposes each tensor as a pointer into the mapping. Tensor data is never copied here.
 * Files written with only headers (sparse, data never touched) are fine: nothing reads data
 * until a caller dereferences it. Writing is in safetensors_write.h (tests, tiny models). */
#ifndef G4_MODEL_SAFETENSORS_H
#define G4_MODEL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/dtype.h"
#include "base/error.h"

typedef struct g4_st_tensor {
    char *name;                 /* full checkpoint name, owned */
    g4_dtype dtype;
    int ndim;
    int64_t shape[G4_MAX_DIMS];
    const void *data;           /* into the file mapping */
    size_t nbytes;
    int shard;                  /* index of the file it lives in */
} g4_st_tensor;

typedef struct g4_safetensors g4_safetensors; /* opaque */

/* path: a .safetensors file, a model.safetensors.index.json, or a directory holding either
 * (index preferred). Returns NULL with err set on any validation failure. */
g4_safetensors *g4_st_open(const char *path, g4_error *err);
void g4_st_close(g4_safetensors *st);

int g4_st_count(const g4_safetensors *st);
const g4_st_tensor *g4_st_at(const g4_safetensors *st, int i);
/* NULL when absent. O(log n). */
const g4_st_tensor *g4_st_find(const g4_safetensors *st, const char *name);

int64_t g4_st_numel(const g4_st_tensor *t);

#endif
