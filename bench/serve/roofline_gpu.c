/* roofline_gpu.c — measures the two ceilings of the roofline report on one GPU, in the same run as
 * the benchmark: device-to-device copy bandwidth (1 GiB cudaMemcpy, bytes read + written) and the
 * cuBLAS BF16 GEMM rate (8192³, FP32 accumulate). Best of a few timed repetitions after a warm-up.
 * Built with the CUDA toolkit (G4_BENCH_CUDA); otherwise g4_hw_measure says a GPU is needed.
 * Not here: the byte / FLOP accounting (roofline.c). */
#include "roofline.h"

#include <stdio.h>
#include <string.h>

#ifndef G4_BENCH_CUDA

int g4_hw_measure(int device, g4_hw_peak *hw, g4_error *err) {
    (void)device;
    memset(hw, 0, sizeof *hw);
    return g4_fail(err, "the roofline needs a GPU: this g4-bench-serve was built without CUDA");
}

#else

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#define CU(x)                                                             \
    do {                                                                  \
        cudaError_t e_ = (x);                                             \
        if (e_ != cudaSuccess) {                                          \
            g4_fail(err, "roofline: %s: %s", #x, cudaGetErrorString(e_)); \
            goto out;                                                     \
        }                                                                 \
    } while (0)
#define CB(x)                                                            \
    do {                                                                 \
        cublasStatus_t s_ = (x);                                         \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                               \
            g4_fail(err, "roofline: %s: cuBLAS status %d", #x, (int)s_); \
            goto out;                                                    \
        }                                                                \
    } while (0)

int g4_hw_measure(int device, g4_hw_peak *hw, g4_error *err) {
    memset(hw, 0, sizeof *hw);
    int rc = -1, n_dev = 0;
    void *a = NULL, *b = NULL, *c = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    cublasHandle_t h = NULL;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0)
        return g4_fail(err, "the roofline needs a GPU: no CUDA device found");
    if (device < 0 || device >= n_dev)
        return g4_fail(err, "roofline: device %d does not exist (%d found)", device, n_dev);
    CU(cudaSetDevice(device));
    struct cudaDeviceProp prop;
    CU(cudaGetDeviceProperties(&prop, device));
    snprintf(hw->device, sizeof hw->device, "%s", prop.name);
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));

    /* copy: 1 GiB device → device; each byte is read once and written once */
    size_t bytes = (size_t)1 << 30;
    CU(cudaMalloc(&a, bytes));
    CU(cudaMalloc(&b, bytes));
    CU(cudaMemset(a, 1, bytes));
    CU(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
    float best = 1e30f;
    for (int r = 0; r < 5; r++) {
        float ms;
        CU(cudaEventRecord(e0, 0));
        CU(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));
        CU(cudaEventRecord(e1, 0));
        CU(cudaEventSynchronize(e1));
        CU(cudaEventElapsedTime(&ms, e0, e1));
        best = ms < best ? ms : best;
    }
    hw->copy_bytes_per_s = 2.0 * (double)bytes / (best * 1e-3);
    CU(cudaFree(a));
    CU(cudaFree(b));
    a = b = NULL;

    /* GEMM: C[n,n] = A[n,n] · B[n,n], BF16 in, FP32 accumulate, BF16 out */
    int n = 8192;
    size_t mat = (size_t)n * n * 2;
    CU(cudaMalloc(&a, mat));
    CU(cudaMalloc(&b, mat));
    CU(cudaMalloc(&c, mat));
    CU(cudaMemset(a, 0x3c, mat)); /* bf16 0x3c3c ≈ 0.0115: finite, non-zero */
    CU(cudaMemset(b, 0x3c, mat));
    CB(cublasCreate(&h));
    float alpha = 1.0f, beta = 0.0f;
    best = 1e30f;
    for (int r = 0; r < 6; r++) {
        float ms;
        CU(cudaEventRecord(e0, 0));
        CB(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &alpha, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n, &beta, c,
                        CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        CU(cudaEventRecord(e1, 0));
        CU(cudaEventSynchronize(e1));
        CU(cudaEventElapsedTime(&ms, e0, e1));
        if (r > 0) /* the first call picks the algorithm */
            best = ms < best ? ms : best;
    }
    hw->bf16_flops_per_s = 2.0 * (double)n * n * n / (best * 1e-3);
    hw->measured = true;
    rc = 0;
out:
    if (h) cublasDestroy(h);
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    return rc;
}

#endif
