/* nccl.h (emulated) — the NCCL subset g4serve calls, over ranks that live in one process
 * (cuda/emu/nccl.cc): ncclCommInitAll makes one clique; ncclAllReduce is queued on the rank's
 * stream and, when the stream runs it, meets the other ranks' calls of the same sequence number
 * (each rank's host thread runs its own stream) and sums in rank order (F32 accumulation for
 * BF16). A rank that waits longer than 60 s reports ncclSystemError instead of hanging. */
#ifndef G4EMU_NCCL_H
#define G4EMU_NCCL_H

#include <stddef.h>

#include "cuda_runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ncclResult_t {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5
} ncclResult_t;
typedef enum ncclDataType_t { ncclInt32 = 2, ncclFloat16 = 6, ncclFloat32 = 7, ncclBfloat16 = 9 } ncclDataType_t;
typedef enum ncclRedOp_t { ncclSum = 0 } ncclRedOp_t;
typedef struct g4emu_nccl_comm *ncclComm_t;

ncclResult_t ncclCommInitAll(ncclComm_t *comms, int n, const int *devices);
ncclResult_t ncclCommDestroy(ncclComm_t c);
ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t c, cudaStream_t s);
const char *ncclGetErrorString(ncclResult_t r);

#ifdef __cplusplus
}
#endif

#endif
