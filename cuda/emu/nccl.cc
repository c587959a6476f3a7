/* nccl.cc — the emulated NCCL subset (contract in include/nccl.h): one clique per
 * ncclCommInitAll; the i-th all-reduce of every rank meets the i-th of the others. The last
 * rank to arrive sums all buffers in rank order (F32 accumulation, rounded once to the buffer
 * type) into every rank's receive buffer. */
#include <string.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "emu_internal.h"
#include "nccl.h"

namespace {

struct clique {
    int n;
    std::mutex mu;
    std::condition_variable cv;
    uint64_t round = 0; /* completed all-reduces */
    int arrived = 0;
    std::vector<const void *> send;
    std::vector<void *> recv;
    size_t count = 0;
    ncclDataType_t type = ncclFloat32;
    bool mismatch = false;
};

/* Element i of a buffer of type t as float, and back (the emulated cuda_bf16.h / cuda_fp16.h
 * conversions). */
float ld(const void *p, ncclDataType_t t, size_t i) {
    if (t == ncclFloat32) return ((const float *)p)[i];
    if (t == ncclInt32) return (float)((const int32_t *)p)[i];
    if (t == ncclBfloat16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return __half2float(((const __half *)p)[i]);
}

void st(void *p, ncclDataType_t t, size_t i, float v) {
    if (t == ncclFloat32) ((float *)p)[i] = v;
    else if (t == ncclInt32) ((int32_t *)p)[i] = (int32_t)v;
    else if (t == ncclBfloat16) ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else ((__half *)p)[i] = __float2half_rn(v);
}

} /* namespace */

struct g4emu_nccl_comm {
    std::shared_ptr<clique> c;
    int rank;
};

extern "C" {

ncclResult_t ncclCommInitAll(ncclComm_t *comms, int n, const int *devices) {
    if (n < 1 || !comms) return ncclInvalidArgument;
    int n_dev = 0;
    cudaGetDeviceCount(&n_dev);
    for (int r = 0; r < n; r++)
        if (devices && (devices[r] < 0 || devices[r] >= n_dev)) return ncclInvalidArgument;
    auto c = std::make_shared<clique>();
    c->n = n;
    c->send.assign((size_t)n, nullptr);
    c->recv.assign((size_t)n, nullptr);
    for (int r = 0; r < n; r++) comms[r] = new g4emu_nccl_comm{c, r};
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t c) {
    delete c;
    return ncclSuccess;
}

const char *ncclGetErrorString(ncclResult_t r) {
    switch (r) {
    case ncclSuccess: return "no error";
    case ncclInvalidArgument: return "invalid argument";
    case ncclInvalidUsage: return "invalid usage";
    case ncclSystemError: return "system error (g4emu: a rank waited 60 s for the others)";
    default: return "internal error";
    }
}

ncclResult_t ncclAllReduce(const void *send, void *recv, size_t count, ncclDataType_t type, ncclRedOp_t op,
                           ncclComm_t comm, cudaStream_t s) {
    if (!comm || op != ncclSum) return ncclInvalidArgument;
    std::shared_ptr<clique> c = comm->c;
    int rank = comm->rank;
    cudaError_t e = g4emu::enqueue(s, "ncclAllReduce", [c, rank, send, recv, count, type]() -> cudaError_t {
        std::unique_lock<std::mutex> lk(c->mu);
        uint64_t my_round = c->round;
        if (c->arrived == 0) {
            c->count = count;
            c->type = type;
            c->mismatch = false;
        } else if (c->count != count || c->type != type) {
            c->mismatch = true;
        }
        c->send[(size_t)rank] = send;
        c->recv[(size_t)rank] = recv;
        if (++c->arrived == c->n) {
            if (!c->mismatch) {
                std::vector<float> sum(count, 0.0f);
                for (int r = 0; r < c->n; r++)
                    for (size_t i = 0; i < count; i++) sum[i] += ld(c->send[(size_t)r], type, i);
                for (int r = 0; r < c->n; r++)
                    for (size_t i = 0; i < count; i++) st(c->recv[(size_t)r], type, i, sum[i]);
            } else {
                g4emu::report("ncclAllReduce: ranks disagree on count or type");
            }
            c->arrived = 0;
            c->round++;
            c->cv.notify_all();
        } else if (!c->cv.wait_for(lk, std::chrono::seconds(60), [&] { return c->round != my_round; })) {
            g4emu::report("ncclAllReduce: rank %d waited 60 s for the other ranks", rank);
            return cudaErrorLaunchFailure;
        }
        return c->mismatch ? cudaErrorLaunchFailure : cudaSuccess;
    });
    return e == cudaSuccess ? ncclSuccess : ncclUnhandledCudaError;
}

} /* extern "C" */
