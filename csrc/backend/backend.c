/* backend.c — picks a backend by name. */
#include <string.h>

#include "backend/backend.h"
#ifdef G4_HAVE_CUDA
#include "cuda_backend.h"
#endif

g4_backend *g4_backend_create(const char *name, g4_error *err) { return g4_backend_create_on(name, 0, err); }

g4_backend *g4_backend_create_on(const char *name, int device, g4_error *err) {
    if (!name || !strcmp(name, "cpu")) return g4_backend_cpu_create(err);
    if (!strcmp(name, "cuda")) {
#ifdef G4_HAVE_CUDA
        return g4_backend_cuda_create(device, err);
#else
        (void)device;
        g4_fail(err, "backend \"cuda\": this build has no CUDA backend (configure with -DG4_CUDA=ON)");
        return NULL;
#endif
    }
    g4_fail(err, "unknown backend \"%s\" (expected \"cpu\" or \"cuda\")", name);
    return NULL;
}

void g4_backend_destroy(g4_backend *b) {
    if (b && b->destroy) b->destroy(b);
}
