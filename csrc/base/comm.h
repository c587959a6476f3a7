/* comm.h — the collective interface tensor parallelism needs inside a step (docs/architecture.md, "Tensor parallelism").
 *
 * One g4_comm serves all t ranks of a tensor-parallel group; every rank calls each collective
 * with the same arguments, in the same order, from its own worker thread. Buffers are backend
 * memory of that rank (host memory for the CPU backend, device memory for CUDA). Each backend
 * kind brings its implementation (backend/registry.h): an in-process thread all-reduce for the
 * CPU backend (backend/cpu/cpu_comm.c) and NCCL for the CUDA backend (cuda/comm_nccl.cu).
 * Results are identical on every rank (fixed reduction order). A ground-floor interface: the
 * forward pass (model/) calls it, backends implement it. */
#ifndef G4_BASE_COMM_H
#define G4_BASE_COMM_H

#include <stddef.h>

#include "base/dtype.h"
#include "base/error.h"

typedef struct g4_comm {
    int size; /* t */
    void *ctx;
    /* buf[i] = Σ_ranks buf[i] for i < n, in place; dt is the element type (F32 or BF16). */
    int (*all_reduce_sum)(struct g4_comm *c, int rank, void *buf, size_t n, g4_dtype dt, g4_error *err);
    void (*destroy)(struct g4_comm *c);
} g4_comm;

static inline void g4_comm_destroy(g4_comm *c) {
    if (c && c->destroy) c->destroy(c);
}

#endif
