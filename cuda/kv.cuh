/* kv.cuh — device-side twin of backend/kv_layout.h: where (block, slot, head) lives in a pool.
 * Must stay equal to g4_kv_offset(); tests/gpu/test_gpu_attention.c compares the CUDA cache
 * with the CPU backend's, laid out by the host function, so a drift between the two fails there. */
#ifndef G4_CUDA_KV_CUH
#define G4_CUDA_KV_CUH

#include <stddef.h>

/* Plain-value copy of g4_kv_layer for kernel arguments. */
typedef struct g4_kv_dev {
    int n_blocks, block_size, n_kv_heads, head_dim, single;
} g4_kv_dev;

/* Elements of one block: (single ? 1 : 2) · B · n_kv · d. */
__device__ __forceinline__ size_t g4_kv_dev_block_elems(g4_kv_dev l) {
    return (size_t)(l.single ? 1 : 2) * (size_t)l.block_size * (size_t)l.n_kv_heads * (size_t)l.head_dim;
}

/* Element offset of K (which=0) or V (which=1; same as K for single-tensor layers). */
__device__ __forceinline__ size_t g4_kv_dev_offset(g4_kv_dev l, int block, int slot, int head, int which) {
    size_t per_tensor = (size_t)l.block_size * (size_t)l.n_kv_heads * (size_t)l.head_dim;
    size_t off = (size_t)block * g4_kv_dev_block_elems(l);
    if (!l.single && which) off += per_tensor;
    return off + ((size_t)slot * (size_t)l.n_kv_heads + (size_t)head) * (size_t)l.head_dim;
}

/* The block-table row of sequence sq, or NULL for a sequence index outside [0, n_seqs). */
__device__ __forceinline__ const int32_t *g4_kv_dev_row(const int32_t *table, int sq, int n_seqs, int max_blocks) {
    return (sq >= 0 && sq < n_seqs) ? table + (size_t)sq * max_blocks : NULL;
}

/* Physical block of position p in a sequence's block table row, or -1 when the table has no
 * valid block there (no row, out of columns, unassigned, or out of the pool). */
__device__ __forceinline__ int g4_kv_dev_block(g4_kv_dev l, const int32_t *table_row, int max_blocks, int p) {
    if (!table_row || p < 0) return -1;
    int bi = p / l.block_size;
    if (bi >= max_blocks) return -1;
    int blk = table_row[bi];
    return (blk >= 0 && blk < l.n_blocks) ? blk : -1;
}

#endif
