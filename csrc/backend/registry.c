/* registry.c — the list of backend kinds this build has (see registry.h), and creation by name.
 * The CUDA kind is listed only in builds with G4_HAVE_CUDA; its definition lives in cuda/, so
 * nothing here includes a CUDA header. */
#include "backend/registry.h"

#include <string.h>

#include "base/invariant.h"

static const g4_backend_kind *const kinds[] = {
    &g4_backend_kind_cpu,
#ifdef G4_HAVE_CUDA
    &g4_backend_kind_cuda,
#endif
};

const g4_backend_kind *g4_backend_kind_find(const char *name, g4_error *err) {
    if (!name) name = "cpu";
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(kinds[i]->name, name)) {
            G4_INVARIANT(kinds[i]->create && kinds[i]->comm_create, "backend kind %s lacks a required slot", name);
            return kinds[i];
        }
    if (!strcmp(name, "cuda"))
        g4_fail(err, "backend \"cuda\": this build has no CUDA backend (configure with -DG4_CUDA=ON)");
    else g4_fail(err, "unknown backend \"%s\" (expected \"cpu\" or \"cuda\")", name);
    return NULL;
}

g4_backend *g4_backend_create(const char *name, const g4_backend_options *o, g4_error *err) {
    const g4_backend_kind *k = g4_backend_kind_find(name, err);
    if (!k) return NULL;
    g4_backend_options d;
    if (!o) g4_backend_options_default(&d), o = &d;
    return k->create(o, err);
}
