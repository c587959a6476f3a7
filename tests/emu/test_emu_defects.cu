/* test_emu_defects.cu — the emulated CUDA target catches the defects it exists for. Each
 * defect is planted here, in the test, never in the product, and each check has a control
 * (the same kernel without the defect passes):
 *   1. an off-by-one in a tiled loop writes past a device allocation → the process dies with a
 *      report (AddressSanitizer in the ASan build, the red-zone check at cudaFree otherwise);
 *   2. a missing __syncthreads → the race check reports the hazard (kernel, offset, both
 *      threads) and the launch fails (builds with the instrumented compiler); in every build the
 *      seeded warp order makes the result wrong for some seed;
 *   3. launches over the shared-memory limit, without the opt-in attribute, or over the block
 *      and grid limits → the runtime's error codes, nothing runs;
 *   4. a host synchronisation or an allocation during graph capture → the capture fails;
 *      a clean capture replays;
 *   5. a shuffle whose mask leaves out a lane that has exited → the launch fails naming the
 *      lanes, instead of hanging;
 *   6. the host writes a pinned buffer while an async copy from it is still queued (directly, and
 *      after a graph launch that holds such a copy) → the copy fails with a report; writing it
 *      after the sync, or before the graph launch, passes.
 * (A wrong ldmatrix / mma fragment is planted in tests/gpu/test_gpu_ptx.cu.) Emulator only. */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common.cuh"

/* --- 1. off-by-one --------------------------------------------------------------------------- */
/* y[i] = 2·x[i] over tiles of 64; `extra` = 1 plants the off-by-one (i ≤ n). */
static __global__ void tiled_double(float *y, const float *x, int n, int extra) {
    int i0 = blockIdx.x * 64;
    for (int i = i0 + (int)threadIdx.x; i < i0 + 64 && i < n + extra; i += blockDim.x) y[i] = 2.0f * x[i < n ? i : 0];
}

static int run_tiled(int extra) {
    int n = 1000;
    float *x, *y;
    if (cudaMalloc((void **)&x, n * 4) || cudaMalloc((void **)&y, n * 4)) return 2;
    cudaMemset(x, 0, n * 4);
    G4_LAUNCH((n + 63) / 64 + extra, 32, 0, (cudaStream_t)0, tiled_double)(y, x, n, extra);
    cudaDeviceSynchronize();
    cudaFree(x);
    cudaFree(y); /* checks the red zone behind y */
    return 0;
}

/* Runs fn(arg) in a child; returns 1 when it died or failed with `needle` in its stderr. */
static int dies_with(int (*fn)(int), int arg, const char *needle1, const char *needle2) {
    char path[] = "/tmp/g4emu-defect-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        _exit(fn(arg));
    }
    int st = 0;
    waitpid(pid, &st, 0);
    char buf[8192] = {0};
    lseek(fd, 0, SEEK_SET);
    ssize_t r = read(fd, buf, sizeof buf - 1);
    close(fd);
    unlink(path);
    int died = !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    int named = r > 0 && (strstr(buf, needle1) || (needle2 && strstr(buf, needle2)));
    if (died) printf("  child died as expected; its report: %.300s\n", buf);
    return died && named;
}

/* --- 2. missing barrier -------------------------------------------------------------------- */
/* out[t] = value written by thread (t + 32) % n: needs a barrier between write and read. */
static __global__ void neighbour(int *out, int barrier) {
    G4_SHARED(int, s, [128]);
    int t = threadIdx.x;
    s[t] = 1000 + t;
    if (barrier) __syncthreads();
    out[t] = s[(t + 32) % 128];
}

static int neighbour_ok(int barrier, long *races, cudaError_t *err) {
    int *d, h[128];
    long r0 = g4emu_race_reports();
    if (cudaMalloc((void **)&d, sizeof h)) return 0;
    G4_LAUNCH(1, 128, 0, (cudaStream_t)0, neighbour)(d, barrier);
    *err = cudaDeviceSynchronize();
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    cudaFree(d);
    *races = g4emu_race_reports() - r0;
    for (int t = 0; t < 128; t++)
        if (h[t] != 1000 + (t + 32) % 128) return 0;
    return 1;
}

/* --- 3. launch limits ------------------------------------------------------------------------ */
static __global__ void touch_smem(int *out) {
    G4_SHARED_DYN(int, s);
    s[threadIdx.x] = (int)threadIdx.x;
    __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = s[blockDim.x - 1];
}

/* --- 4. capture ------------------------------------------------------------------------------ */
static __global__ void add_one(int *x) {
    if (threadIdx.x == 0) x[0] += 1;
}

/* --- 5. shuffle with an exited lane ----------------------------------------------------------- */
static __global__ void shuffle_after_exit(int *out) {
    if (threadIdx.x == 5) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
}

int main(void) {
    /* 1 */
    CHECK(run_tiled(0) == 0, "control: the tiled loop without the defect");
    CHECK(dies_with(run_tiled, 1, "AddressSanitizer", "out of bounds"),
          "planted off-by-one was not reported (ASan or the red zone)");
    printf("1. off-by-one write past a device allocation: reported\n");

    /* 2 */
    long races = 0;
    cudaError_t e = cudaSuccess;
    CHECK(neighbour_ok(1, &races, &e) && races == 0 && e == cudaSuccess, "control: with the barrier (races %ld)",
          races);
    int wrong = 0, reported = 0;
    for (uint64_t seed = 1; seed <= 8; seed++) {
        g4emu_set_seed(seed);
        if (!neighbour_ok(0, &races, &e)) wrong++;
        if (races > 0 && e == cudaErrorLaunchFailure) reported++;
    }
    g4emu_set_seed(1);
    CHECK(wrong > 0, "missing __syncthreads gave the right result under all 8 warp orders");
    if (g4emu_race_instrumented()) CHECK(reported == 8, "race check reported %d of 8 launches", reported);
    printf("2. missing __syncthreads: wrong result under %d of 8 warp orders; race check %s (%d of 8 launches)\n",
           wrong, g4emu_race_instrumented() ? "on" : "off in this build", reported);

    /* 3 */
    int *out;
    REQUIRE(cudaMalloc((void **)&out, 64 * 4) == cudaSuccess, "malloc");
    G4_LAUNCH(1, 256, 64 * 1024, (cudaStream_t)0, touch_smem)(out);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue, "64 KB dynamic shared memory without the opt-in");
    CHECK(cudaFuncSetAttribute(touch_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, 64 * 1024) == cudaSuccess,
          "opt-in to 64 KB");
    G4_LAUNCH(1, 256, 64 * 1024, (cudaStream_t)0, touch_smem)(out);
    CHECK(cudaGetLastError() == cudaSuccess && cudaDeviceSynchronize() == cudaSuccess, "64 KB after the opt-in");
    CHECK(cudaFuncSetAttribute(touch_smem, cudaFuncAttributeMaxDynamicSharedMemorySize, 240 * 1024) ==
              cudaErrorInvalidValue,
          "opt-in above the device's 227 KB");
    (void)cudaGetLastError();
    G4_LAUNCH(1, 256, 240 * 1024, (cudaStream_t)0, touch_smem)(out);
    CHECK(cudaGetLastError() == cudaErrorInvalidValue, "240 KB launch");
    G4_LAUNCH(1, 1025, 0, (cudaStream_t)0, touch_smem)(out);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "1025 threads per block");
    G4_LAUNCH(dim3(1, 65536), 32, 0, (cudaStream_t)0, touch_smem)(out);
    CHECK(cudaGetLastError() == cudaErrorInvalidConfiguration, "grid.y 65536");
    printf("3. launch limits: shared memory without opt-in / above the device, block and grid limits refused\n");

    /* 4 */
    cudaStream_t st;
    REQUIRE(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) == cudaSuccess, "stream");
    int *x, hx = 0;
    REQUIRE(cudaMalloc((void **)&x, 4) == cudaSuccess, "malloc");
    cudaMemset(x, 0, 4);
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal) == cudaSuccess, "begin capture");
    G4_LAUNCH(1, 32, 0, st, add_one)(x);
    CHECK(cudaStreamSynchronize(st) == cudaErrorStreamCaptureUnsupported, "host sync during capture");
    CHECK(cudaStreamEndCapture(st, &g) == cudaErrorStreamCaptureInvalidated && !g, "capture invalidated");
    (void)cudaGetLastError();
    void *tmp = NULL;
    CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal) == cudaSuccess, "begin capture 2");
    CHECK(cudaMalloc(&tmp, 16) == cudaErrorStreamCaptureUnsupported, "cudaMalloc during capture");
    CHECK(cudaStreamEndCapture(st, &g) == cudaErrorStreamCaptureInvalidated, "capture 2 invalidated");
    (void)cudaGetLastError();
    CHECK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal) == cudaSuccess, "begin capture 3");
    G4_LAUNCH(1, 32, 0, st, add_one)(x);
    G4_LAUNCH(1, 32, 0, st, add_one)(x);
    CHECK(cudaStreamEndCapture(st, &g) == cudaSuccess && g, "clean capture");
    CHECK(cudaGraphInstantiate(&ge, g, 0) == cudaSuccess, "instantiate");
    CHECK(cudaStreamSynchronize(st) == cudaSuccess, "sync");
    cudaMemcpy(&hx, x, 4, cudaMemcpyDeviceToHost);
    CHECK(hx == 0, "captured launches ran during capture (x = %d)", hx);
    for (int i = 0; i < 3; i++) cudaGraphLaunch(ge, st);
    CHECK(cudaStreamSynchronize(st) == cudaSuccess, "replay");
    cudaMemcpy(&hx, x, 4, cudaMemcpyDeviceToHost);
    CHECK(hx == 6, "three replays of two launches: x = %d, want 6", hx);
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    printf("4. graph capture: host sync and allocation during capture refused; clean capture replays (x = %d)\n", hx);

    /* 5 */
    G4_LAUNCH(1, 32, 0, st, shuffle_after_exit)(out);
    CHECK(cudaStreamSynchronize(st) == cudaErrorLaunchFailure, "shuffle waiting for an exited lane must fail");
    printf("5. shuffle with an exited lane in its mask: launch failure instead of a hang\n");
    /* 6 */
    int *pin = NULL, *dev = NULL, back[4] = {0};
    REQUIRE(cudaHostAlloc((void **)&pin, 16, cudaHostAllocDefault) == cudaSuccess &&
                cudaMalloc((void **)&dev, 16) == cudaSuccess,
            "pinned and device buffers");
    for (int i = 0; i < 4; i++) pin[i] = 10 + i;
    CHECK(cudaMemcpyAsync(dev, pin, 16, cudaMemcpyHostToDevice, st) == cudaSuccess, "queue the copy");
    CHECK(cudaStreamSynchronize(st) == cudaSuccess, "control: nothing written while queued");
    pin[2] = 99; /* after the sync: legal */
    CHECK(cudaMemcpyAsync(dev, pin, 16, cudaMemcpyHostToDevice, st) == cudaSuccess, "queue the copy 2");
    pin[1] = 77; /* the planted defect: the copy has not run yet */
    CHECK(cudaStreamSynchronize(st) == cudaErrorLaunchFailure, "host write to a queued pinned source not reported");
    cudaMemcpy(back, dev, 16, cudaMemcpyDeviceToHost);
    CHECK(back[1] == 77 && back[2] == 99, "the copy still moves the bytes there when it runs (%d %d)", back[1],
          back[2]);
    REQUIRE(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal) == cudaSuccess, "begin capture 4");
    CHECK(cudaMemcpyAsync(dev, pin, 16, cudaMemcpyHostToDevice, st) == cudaSuccess, "capture a pinned copy");
    CHECK(cudaStreamEndCapture(st, &g) == cudaSuccess && g && cudaGraphInstantiate(&ge, g, 0) == cudaSuccess,
          "capture 4");
    pin[0] = 5; /* before the launch: the replayed copy takes it */
    CHECK(cudaGraphLaunch(ge, st) == cudaSuccess && cudaStreamSynchronize(st) == cudaSuccess,
          "control: write before the graph launch");
    CHECK(cudaGraphLaunch(ge, st) == cudaSuccess, "graph launch 2");
    pin[0] = 6; /* planted: after the launch, before its copy ran */
    CHECK(cudaStreamSynchronize(st) == cudaErrorLaunchFailure, "host write after a graph launch not reported");
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
    cudaFreeHost(pin);
    cudaFree(dev);
    printf("6. host write to a pinned buffer with a copy from it still queued: reported (direct and graph)\n");

    cudaFree(x);
    cudaFree(out);
    cudaStreamDestroy(st);
    return check_summary();
}
