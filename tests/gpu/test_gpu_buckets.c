/* test_gpu_buckets.c — decode steps replayed from one graph per batch bucket (padded to 1, 2, 4,
 * 8 or the capacity) equal the plain eager steps bit for bit (logits, sampled tokens, logprobs),
 * the pads write no engine-visible KV block, every step is one upload, and batch sizes 1..9
 * record at most one graph per bucket (decode_buckets.h, on the CUDA backend). On the emulated
 * target this also proves the bucketed step legal to capture and that the host never rewrote the
 * pinned staging buffer while its copy was queued (the emulator fails such a copy). Exit 77
 * without a device. */
#include "cuda_backend.h"
#include "decode_buckets.h"

int main(void) {
    if (g4_cuda_device_count() < 1) return check_skip("no CUDA device");
    g4_error err = {{0}};
    g4_backend *gpu = g4_backend_cuda_create(NULL, &err);
    REQUIRE(gpu, "cuda backend: %s", err.msg);
#ifndef G4_CUDA_EMU /* emulated: the MoE model only (its steps hold every op of the dense one) */
    db_run(gpu, "tiny-dense");
#endif
    db_run(gpu, "tiny-moe");
    g4_backend_destroy(gpu);
    return check_summary();
}
