/* cuda_backend.h — the CUDA backend of the op table (plain C header).
 *
 * g4_backend_cuda_create() returns a backend whose ops run on one CUDA stream of `device`:
 * activations and the KV cache are bf16 (act_dtype = kv_dtype = G4_DT_BF16), weights are
 * converted to bf16 on upload, all accumulation and softmax is fp32, logits f32.
 * The registry's "cuda" kind (g4_backend_kind_cuda, backend/registry.h) is defined in
 * cuda_backend.cu; g4_backend_create("cuda", ...) reaches it in builds with G4_HAVE_CUDA.
 * Not here: the dummy-weights helper (dummy_weights.h). */
#ifndef G4_CUDA_CUDA_BACKEND_H
#define G4_CUDA_CUDA_BACKEND_H

#include "backend/backend.h"
#include "base/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A backend on device o->device with o's kernel paths (NULL = defaults: device 0, the default
 * paths). NULL with err set when there is no such device or a CUDA / cuBLASLt call fails. */
g4_backend *g4_backend_cuda_create(const g4_backend_options *o, g4_error *err);

/* Number of CUDA devices (0 when the driver or runtime is unavailable). For tests that skip. */
int g4_cuda_device_count(void);

/* The backend's cudaStream_t (as void *), for benchmarks that time with CUDA events. */
void *g4_cuda_backend_stream(g4_backend *be);

#ifdef __cplusplus
}
#endif

#endif
