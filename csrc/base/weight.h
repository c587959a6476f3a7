/* weight.h — one weight tensor as the op table sees it: a host view into the mapped checkpoint
 * plus the backend's own copy or alias of it.
 *
 * A ground-floor type: the model layer fills the host view (model/weights.h maps checkpoint
 * names to slots), a backend makes it usable on its side (backend.h, load_weight) and sets
 * `data`. Not here: which weights a model has (model/weights.h), how they are sliced for
 * tensor parallelism (model/shard.h). */
#ifndef G4_BASE_WEIGHT_H
#define G4_BASE_WEIGHT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/dtype.h"

typedef struct g4_weight {
    const char *name;            /* checkpoint name (points into the safetensors table) */
    g4_dtype dtype;              /* dtype of `host` */
    int ndim;
    int64_t shape[G4_MAX_DIMS];  /* Linear weights are [out, in] */
    const void *host;            /* bytes in the mapping; NULL = slot absent. name and host live
                                    only as long as the g4_safetensors they came from */
    void *data;                  /* backend-side copy or alias, set by the backend */
    int data_dtype;              /* g4_dtype of `data` (backend's choice) */
} g4_weight;

static inline bool g4_weight_present(const g4_weight *w) { return w->host != NULL; }

/* Elements: the product of the shape. */
static inline int64_t g4_weight_numel(const g4_weight *w) {
    int64_t n = 1;
    for (int d = 0; d < w->ndim; d++) n *= w->shape[d];
    return n;
}

#endif
