/* test_decode_buckets.c — bucketed (padded) decode steps equal the plain steps bit for bit, the
 * pads write no engine-visible KV block, and a step is one upload: decode_buckets.h on the CPU
 * backend (no graphs: opts.pad_decode pads the steps). The same checks run on CUDA and the
 * emulated CUDA target in tests/gpu/test_gpu_buckets.c, with graphs. */
#include "decode_buckets.h"

int main(void) {
    g4_error err = {{0}};
    g4_backend *be = g4_backend_cpu_create(&err);
    REQUIRE(be, "cpu backend: %s", err.msg);
    db_run(be, "tiny-dense");
    db_run(be, "tiny-moe");
    g4_backend_destroy(be);
    return check_summary();
}
