/* test_gpu_check.c — the CUDA backend's creation options and its one error check (G4_CHECK,
 * cuda/common.cuh), through the public API.
 *
 * Checks: g4_backend_create("cuda", &o) puts the backend on o.device and refuses a device that
 * does not exist with a message; a failing CUDA call inside
 * an op comes back as an error value naming the statement, its file:line and the device the
 * backend runs on. The failing call is a copy past the end of an allocation, which only the
 * emulated target reports: on a GPU that part is skipped (a real driver need not catch it). */
#include <stdio.h>
#include <string.h>

#include "backend/backend.h"
#include "check.h"
#include "cuda_backend.h"

int main(void) {
    int n = g4_cuda_device_count();
    if (n < 1) return check_skip("no CUDA device");
    g4_error err = {{0}};
    g4_backend_options o = {.device = n}; /* one past the last */
    CHECK(!g4_backend_create("cuda", &o, &err) && strstr(err.msg, "no CUDA device"), "device %d: %s", n, err.msg);

    o = (g4_backend_options){.device = n - 1};
    g4_backend *be = g4_backend_create("cuda", &o, &err);
    REQUIRE(be, "cuda backend on device %d: %s", n - 1, err.msg);
    CHECK(g4_backend_supports(be, G4_OP_GRAPH, G4_DT_F32) && g4_backend_supports(be, G4_OP_LOAD_WEIGHT, G4_DT_F16) &&
              !g4_backend_supports(be, G4_OP_LOAD_WEIGHT, G4_DT_I64),
          "supports");
#ifdef G4_CUDA_EMU
    char host[64] = {0}, want[32];
    void *dev = be->ops->alloc(be->ctx, 16);
    REQUIRE(dev, "alloc");
    err.msg[0] = 0;
    int rc = be->ops->upload(be->ctx, dev, host, sizeof host, &err); /* 64 bytes into 16 */
    snprintf(want, sizeof want, "on device %d", n - 1);
    CHECK(rc == -1 && strstr(err.msg, "cuda_backend.cu:") && strstr(err.msg, "cudaMemcpyAsync(") &&
              strstr(err.msg, "cudaErrorInvalidValue") && strstr(err.msg, want),
          "G4_CHECK message: %s", err.msg);
    be->ops->free(be->ctx, dev);
#endif
    g4_backend_destroy(be);
    return check_summary();
}
