/* registry.h — the backend kinds of this build, by name: how to create a backend, and how a
 * tensor-parallel group of that kind makes and joins its communicator.
 *
 * Each kind is defined by its own implementation (g4_backend_kind_cpu in backend/cpu/,
 * g4_backend_kind_cuda in cuda/ when the build has it) and listed in registry.c, so the code
 * above (the executor, tensor parallelism, the server) creates backends and communicators by
 * name and never includes a CUDA or NCCL header or compares backend names.
 * Not here: the op table (backend.h), the options (options.h). */
#ifndef G4_BACKEND_REGISTRY_H
#define G4_BACKEND_REGISTRY_H

#include "backend/backend.h"
#include "base/comm.h"
#include "base/error.h"

typedef struct g4_backend_kind {
    const char *name;  /* "cpu", "cuda" */
    /* A backend with options o (never NULL here). NULL with err set on failure. */
    g4_backend *(*create)(const g4_backend_options *o, g4_error *err);
    /* The communicator of a group of `size` ranks, rank r on device r. NULL with err set (also
     * when this build cannot run a group of this kind). */
    g4_comm *(*comm_create)(int size, g4_error *err);
    /* Rank `rank` joins c with its backend be, before its first collective (NCCL: binds the
     * backend's stream). NULL when there is nothing to do. 0, or -1 with err set. */
    int (*comm_join)(g4_comm *c, int rank, g4_backend *be, g4_error *err);
} g4_backend_kind;

extern const g4_backend_kind g4_backend_kind_cpu;  /* backend/cpu/cpu_backend.c */
extern const g4_backend_kind g4_backend_kind_cuda; /* cuda/cuda_backend.cu; only with G4_HAVE_CUDA */

/* The kind called `name` (NULL = "cpu"). NULL with err naming the kinds this build has. */
const g4_backend_kind *g4_backend_kind_find(const char *name, g4_error *err);

#endif
