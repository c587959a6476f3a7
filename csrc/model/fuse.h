/* fuse.h — projections that read the same input, concatenated into one weight at load so the
 * forward runs one GEMM for them (issue 15 item 4):
 *     qkv      rows q_proj | k_proj | v_proj   (no v_proj on k_eq_v global layers, spec §2.4.1)
 *     gate_up  rows gate_proj | up_proj
 * y = x · [A; B]ᵀ is [x·Aᵀ | x·Bᵀ] row by row, every element the same dot product as the
 * separate GEMMs', so the outputs are read at column offsets with the row stride of the fused
 * width. Built after tensor-parallel slicing (shard.h) from this rank's slices: a rank's fused
 * GEMM yields exactly its own heads and MLP columns.
 *
 * g4_fuse_take moves the parts out of g4_weights (they become absent there; their views live
 * in the fused weight), so nothing loads them twice. The concatenated host bytes exist only
 * between g4_fuse_fill and g4_fuse_drop_bytes, one layer at a time (a 31B gate_up is 462 MB):
 * a backend that copied them (CUDA) lets them go at once; one that aliases its host view (the
 * CPU backend on bf16 weights) keeps them until g4_fuse_free.
 * The vision tower fuses its MLP's gate/up the same way (vision.c).
 * Not here: loading (gemma4.c), slicing (shard.c). */
#ifndef G4_MODEL_FUSE_H
#define G4_MODEL_FUSE_H

#include "base/error.h"
#include "base/weight.h"
#include "model/config.h"
#include "model/weights.h"

#define G4_FUSE_MAX_PARTS 3

typedef struct g4_fused_weight {
    g4_weight w;                          /* [Σ rows of the parts, K]; w.name = name */
    g4_weight parts[G4_FUSE_MAX_PARTS];   /* the views it is made of, in row order */
    int n_parts;
    int64_t offset[G4_FUSE_MAX_PARTS];    /* first row (= output column) of each part */
    char name[96];
    void *bytes;                          /* the host concatenation while held */
} g4_fused_weight;

typedef struct g4_fused_layer {
    g4_fused_weight qkv;                  /* parts q, k (, v) */
    g4_fused_weight gate_up;              /* parts gate, up */
} g4_fused_layer;

/* Moves the present weights of in[0..n) (2-D, one dtype and width) into f, in order, named
 * "layers.<l>.<what> (fused)"; they become absent. Fails with fewer than 2 present. */
int g4_fuse_parts(g4_fused_weight *f, g4_weight *const *in, int n, int l, const char *what, g4_error *err);

/* Moves layer l's q/k/v and gate/up views out of lw into f (names, shapes, offsets; w.host =
 * the first part's view until filled). Fails when the parts' dtypes or widths differ. */
int g4_fuse_take(g4_fused_layer *f, g4_layer_weights *lw, int l, g4_error *err);

/* Makes the concatenated host bytes of f and points f->w.host at them. */
int g4_fuse_fill(g4_fused_weight *f, g4_error *err);

/* After the backend loaded f->w: frees the host bytes unless the backend aliases them
 * (w.data == w.host); w.host falls back to the first part's view (never read again). */
void g4_fuse_drop_bytes(g4_fused_weight *f);

/* Frees what g4_fuse_fill made (the backend's copy is the caller's to unload first). */
void g4_fuse_free(g4_fused_weight *f);

#endif
