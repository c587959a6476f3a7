/* dummy_weights.h — seeded random bf16 weights made directly on the GPU (no files), for the
 * GPU tests and for benchmarks of full-size models. Not a checkpoint loader. */
#ifndef G4_CUDA_DUMMY_WEIGHTS_H
#define G4_CUDA_DUMMY_WEIGHTS_H

#include <stdint.h>

#include "backend/backend.h"
#include "base/error.h"
#include "base/weight.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Allocates w->data on the CUDA backend `be` (numel = Π w->shape[0..ndim)) and fills it with
 * bf16(mean + amp·u), u uniform in [-1, 1) from a counter-based hash of (seed, element index):
 * same seed and shape → same bytes, on any GPU. Sets w->data_dtype = G4_DT_BF16; w->host is
 * not touched. Release with be->ops->unload_weight. Returns 0 or -1 with err. */
int g4_cuda_dummy_weight(g4_backend *be, g4_weight *w, uint64_t seed, float mean, float amp, g4_error *err);

/* The same values on the host, element i (for tests that need the reference's copy). */
float g4_dummy_value(uint64_t seed, uint64_t i, float mean, float amp);

#ifdef __cplusplus
}
#endif

#endif
