/* options.h — what a backend is told at creation: its device and its kernel paths.
 *
 * All fields zero (`g4_backend_options o = {0};`) is the default of every backend. Backends read
 * their options once, at creation, and never the environment: the one place that maps the
 * server's environment to options is g4_backend_options_from_env (options.c), which the
 * composition root calls. Tests pin a kernel path by setting a field, not a variable.
 * Not here: creating a backend (backend.h, g4_backend_create), the CPU backend's bf16 mode
 * (backend/cpu/cpu_backend.h). */
#ifndef G4_BACKEND_OPTIONS_H
#define G4_BACKEND_OPTIONS_H

#include <string.h>

#include "base/error.h"

/* Attention kernel of the CUDA backend: AUTO runs the flash kernel on prefill-like steps of
 * supported shapes and the decode kernel (attention_decode.cu) on steps with T ≤ n_seqs; DECODE
 * the decode kernel on those steps and the simple kernel elsewhere; FAST the flash kernel on
 * every supported step; SIMPLE always the oracle kernel (attention.cu). The vision encoder's
 * attention (vision.cu) runs its tensor-core kernel on every path but SIMPLE, which pins its
 * CUDA-core kernels (the oracle). */
typedef enum { G4_ATTN_AUTO = 0, G4_ATTN_SIMPLE, G4_ATTN_FAST, G4_ATTN_DECODE } g4_attn_path;

/* MoE expert path of the CUDA backend: FAST runs moe_decode.cu for 1 ≤ T ≤ 64 (graph-capturable,
 * no host sync) and the simple grouped path above that; SIMPLE always the simple path (the
 * oracle; it syncs the stream once). */
typedef enum { G4_MOE_PATH_FAST = 0, G4_MOE_PATH_SIMPLE } g4_moe_path;

typedef struct g4_backend_options {
    int device;               /* CUDA device ordinal; the CPU backend ignores it */
    g4_attn_path attn_path;   /* CUDA attention kernel (CPU: ignored) */
    g4_moe_path moe_path;     /* CUDA MoE expert path (CPU: ignored) */
} g4_backend_options;

/* The defaults: all fields zero. */
static inline void g4_backend_options_default(g4_backend_options *o) { memset(o, 0, sizeof *o); }

/* The defaults, overridden by the environment the server documents (docs/operations.md):
 *   G4_ATTN_PATH = auto | decode | fast | simple     (unset or empty: auto)
 *   G4_MOE_PATH  = fast | simple                     (unset or empty: fast)
 * 0, or -1 with err naming the variable and its allowed values. The only getenv of backend
 * settings in the code base. */
int g4_backend_options_from_env(g4_backend_options *o, g4_error *err);

/* Spelling ↔ value ("auto", "decode", "fast", "simple"; "fast", "simple"). parse: 0, or -1 when
 * the name is not one of them (NULL or "" give the default). */
int g4_attn_path_parse(const char *name, g4_attn_path *out);
int g4_moe_path_parse(const char *name, g4_moe_path *out);
const char *g4_attn_path_name(g4_attn_path p);
const char *g4_moe_path_name(g4_moe_path p);

#endif
