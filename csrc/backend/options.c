/* options.c — backend options: defaults, names, and the environment mapping (see options.h). */
#include "backend/options.h"

#include <stdlib.h>
#include <string.h>

static const char *const attn_names[] = {
    [G4_ATTN_AUTO] = "auto", [G4_ATTN_SIMPLE] = "simple", [G4_ATTN_FAST] = "fast", [G4_ATTN_DECODE] = "decode"};
static const char *const moe_names[] = {[G4_MOE_PATH_FAST] = "fast", [G4_MOE_PATH_SIMPLE] = "simple"};

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int parse(const char *name, const char *const *names, int n) {
    if (!name || !*name) return 0; /* value 0 is each enum's default */
    for (int i = 0; i < n; i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

int g4_attn_path_parse(const char *name, g4_attn_path *out) {
    int i = parse(name, attn_names, N_OF(attn_names));
    if (i < 0) return -1;
    *out = (g4_attn_path)i;
    return 0;
}

int g4_moe_path_parse(const char *name, g4_moe_path *out) {
    int i = parse(name, moe_names, N_OF(moe_names));
    if (i < 0) return -1;
    *out = (g4_moe_path)i;
    return 0;
}

const char *g4_attn_path_name(g4_attn_path p) { return (unsigned)p < (unsigned)N_OF(attn_names) ? attn_names[p] : "?"; }
const char *g4_moe_path_name(g4_moe_path p) { return (unsigned)p < (unsigned)N_OF(moe_names) ? moe_names[p] : "?"; }

int g4_backend_options_from_env(g4_backend_options *o, g4_error *err) {
    g4_backend_options_default(o);
    const char *v = getenv("G4_ATTN_PATH");
    if (g4_attn_path_parse(v, &o->attn_path))
        return g4_fail(err, "G4_ATTN_PATH=%s: expected auto, decode, fast or simple", v);
    v = getenv("G4_MOE_PATH");
    if (g4_moe_path_parse(v, &o->moe_path)) return g4_fail(err, "G4_MOE_PATH=%s: expected fast or simple", v);
    return 0;
}
