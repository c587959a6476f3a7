/* comm_nccl.cu — g4_comm over NCCL (see comm_nccl.h).
 * Twin: the CPU ranks' communicator (csrc/backend/cpu/cpu_comm.c). Test: tests/gpu/test_gpu_tp.c. */
#include <nccl.h>

#include <cstdlib>

#include "comm_nccl.h"
#include "common.cuh"

/* NCCL statuses for G4_CHECK (common.cuh). */
static inline bool g4_status_ok(ncclResult_t r) { return r == ncclSuccess; }
static inline const char *g4_status_msg(ncclResult_t r) { return ncclGetErrorString(r); }
static inline const char *g4_status_name(ncclResult_t r) { return r == ncclSuccess ? "NCCL ok" : "NCCL error"; }

struct nccl_comm {
    g4_comm pub;
    ncclComm_t *comms;     /* [size] */
    cudaStream_t *streams; /* [size], bound by each rank */
};

static int nccl_all_reduce(g4_comm *c, int rank, void *buf, size_t n, g4_dtype dt, g4_error *err) {
    nccl_comm *nc = (nccl_comm *)c->ctx;
    if (rank < 0 || rank >= c->size) return g4_fail(err, "nccl all-reduce: rank %d of %d", rank, c->size);
    if (!nc->streams[rank]) return g4_fail(err, "nccl all-reduce: rank %d has not bound a stream", rank);
    ncclDataType_t t;
    if (dt == G4_DT_BF16) t = ncclBfloat16;
    else if (dt == G4_DT_F32) t = ncclFloat32;
    else return g4_fail(err, "nccl all-reduce: unsupported dtype %s", g4_dtype_name(dt));
    G4_CHECK(ncclAllReduce(buf, buf, n, t, ncclSum, nc->comms[rank], nc->streams[rank]));
    return 0;
}

static void nccl_destroy(g4_comm *c) {
    nccl_comm *nc = (nccl_comm *)c->ctx;
    for (int r = 0; r < c->size; r++)
        if (nc->comms[r]) ncclCommDestroy(nc->comms[r]);
    free(nc->comms);
    free(nc->streams);
    free(nc);
}

extern "C" g4_comm *g4_comm_nccl_create(int size, const int *devices, g4_error *err) {
    nccl_comm *nc = (nccl_comm *)calloc(1, sizeof *nc);
    if (!nc || !(nc->comms = (ncclComm_t *)calloc((size_t)size, sizeof(ncclComm_t))) ||
        !(nc->streams = (cudaStream_t *)calloc((size_t)size, sizeof(cudaStream_t)))) {
        if (nc) free(nc->comms);
        free(nc);
        g4_fail(err, "nccl: out of memory");
        return NULL;
    }
    ncclResult_t r = ncclCommInitAll(nc->comms, size, devices);
    if (r != ncclSuccess) {
        g4_fail(err, "nccl: ncclCommInitAll over %d devices: %s", size, ncclGetErrorString(r));
        free(nc->comms);
        free(nc->streams);
        free(nc);
        return NULL;
    }
    nc->pub.size = size;
    nc->pub.ctx = nc;
    nc->pub.all_reduce_sum = nccl_all_reduce;
    nc->pub.destroy = nccl_destroy;
    return &nc->pub;
}

extern "C" g4_comm *g4_comm_nccl_create_group(int size, g4_error *err) {
    int devices[8];
    if (size < 1 || size > 8) {
        g4_fail(err, "nccl: group of %d ranks (expected 1..8)", size);
        return NULL;
    }
    for (int r = 0; r < size; r++) devices[r] = r;
    return g4_comm_nccl_create(size, devices, err);
}

extern "C" int g4_comm_nccl_bind(g4_comm *c, int rank, void *stream, g4_error *err) {
    nccl_comm *nc = (nccl_comm *)c->ctx;
    if (rank < 0 || rank >= c->size) return g4_fail(err, "nccl bind: rank %d of %d", rank, c->size);
    nc->streams[rank] = (cudaStream_t)stream;
    return 0;
}
