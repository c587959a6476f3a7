/* comm_nccl.h — the NCCL implementation of g4_comm (base/comm.h) for the CUDA backend.
 *
 * One communicator per GPU, all created together (ncclCommInitAll) for ranks 0..t−1 on devices
 * devices[0..t−1]. Each rank binds the CUDA stream its backend runs on before its first
 * collective; all_reduce_sum is then an in-place ncclAllReduce (BF16 or F32, sum) enqueued on
 * that stream, so it orders with the rank's kernels and can be captured in a CUDA graph.
 * Built only when NCCL is found (G4_HAVE_NCCL). */
#ifndef G4_CUDA_COMM_NCCL_H
#define G4_CUDA_COMM_NCCL_H

#ifdef __cplusplus
extern "C" {
#endif

#include "base/error.h"
#include "base/comm.h"

g4_comm *g4_comm_nccl_create(int size, const int *devices, g4_error *err);
/* The same over devices 0..size−1 (rank r on device r): the "cuda" kind's comm_create. */
g4_comm *g4_comm_nccl_create_group(int size, g4_error *err);
/* stream: the rank's cudaStream_t as void * (g4_cuda_backend_stream). */
int g4_comm_nccl_bind(g4_comm *c, int rank, void *stream, g4_error *err);

#ifdef __cplusplus
}
#endif

#endif
