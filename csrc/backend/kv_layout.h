/* kv_layout.h — where a token's keys and values live in the paged KV pools.
 *
 * Two pools (docs/architecture.md, "KV cache"), both of fixed-size blocks of B tokens:
 *   sliding pool   per sliding layer, block b:  [2][B][n_kv][d]   (K then V)
 *   global pool    per global layer, block b:  [B][n_kv][d]      (one tensor U: k_eq_v)
 * A global layer without k_eq_v (not used by 31B/26B, kept for generality) uses the sliding
 * layout. A block id means the same token range in every layer of its pool, so one block
 * table per pool per sequence serves all layers. Element type is the backend's kv_dtype.
 * Plain C, no allocation: the caller owns the memory. */
#ifndef G4_BACKEND_KV_LAYOUT_H
#define G4_BACKEND_KV_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct g4_kv_layer {
    void *base;           /* this layer's pool: n_blocks × block_elems elements */
    int n_blocks;
    int block_size;       /* B tokens */
    int n_kv_heads;
    int head_dim;
    int single;           /* 1: one tensor per token (U), 0: K and V */
} g4_kv_layer;

/* Elements per block. */
static inline size_t g4_kv_block_elems(const g4_kv_layer *l) {
    return (size_t)(l->single ? 1 : 2) * (size_t)l->block_size * (size_t)l->n_kv_heads * (size_t)l->head_dim;
}

/* Element offset of K (which=0) or V (which=1; equals K for single-tensor layers) of
 * (block, slot in block, kv head), pointing at head_dim contiguous elements. */
static inline size_t g4_kv_offset(const g4_kv_layer *l, int block, int slot, int head, int which) {
    size_t per_tensor = (size_t)l->block_size * (size_t)l->n_kv_heads * (size_t)l->head_dim;
    size_t off = (size_t)block * g4_kv_block_elems(l);
    if (!l->single && which) off += per_tensor;
    return off + ((size_t)slot * (size_t)l->n_kv_heads + (size_t)head) * (size_t)l->head_dim;
}

#endif
