/* graph.cu — CUDA graphs of the backend's stream: record the ops queued between graph_begin and
 * graph_end (cudaStreamBeginCapture in global mode, so a host synchronisation or an allocation
 * anywhere in the process fails the recording instead of corrupting it), replay them with one
 * cudaGraphLaunch. A recorded graph holds the scratch pointers of its time: when a scratch
 * buffer has moved since (g4_cuda_ctx.scratch_generation), graph_launch reports it stale.
 * Not here: which steps are worth recording (the model's forward, csrc/model/gemma4.c).
 * Twin: none (the CPU backend runs steps directly). Test: tests/gpu/test_gpu_graph.c. */
#include <stdlib.h>

#include "ctx.cuh"

typedef struct g4_cuda_graph {
    cudaGraphExec_t exec;
    uint64_t generation; /* c->scratch_generation when recorded */
} g4_cuda_graph;

int g4_cuda_graph_begin(void *ctx, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    G4_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeGlobal));
    return 0;
}

int g4_cuda_graph_end(void *ctx, void **graph, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    *graph = NULL;
    cudaGraph_t g = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &g);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* the invalidated capture's error is this call's, not sticky */
        if (g) cudaGraphDestroy(g);
        return g4_fail(err, "graph: recording failed: %s (an op synchronised or allocated)", cudaGetErrorString(e));
    }
    g4_cuda_graph *cg = (g4_cuda_graph *)calloc(1, sizeof *cg);
    if (!cg) {
        cudaGraphDestroy(g);
        return g4_fail(err, "graph: out of memory");
    }
    e = cudaGraphInstantiate(&cg->exec, g, 0);
    cudaGraphDestroy(g);
    if (e != cudaSuccess) {
        free(cg);
        return g4_fail(err, "graph: instantiate: %s", cudaGetErrorString(e));
    }
    cg->generation = c->scratch_generation;
    *graph = cg;
    return 0;
}

int g4_cuda_graph_launch(void *ctx, void *graph, g4_error *err) {
    g4_cuda_ctx *c = (g4_cuda_ctx *)ctx;
    g4_cuda_graph *cg = (g4_cuda_graph *)graph;
    if (cg->generation != c->scratch_generation) return 1;
    G4_CHECK(cudaGraphLaunch(cg->exec, c->stream));
    return 0;
}

void g4_cuda_graph_free(void *ctx, void *graph) {
    (void)ctx;
    g4_cuda_graph *cg = (g4_cuda_graph *)graph;
    if (!cg) return;
    cudaGraphExecDestroy(cg->exec);
    free(cg);
}
