/* emu_internal.h — what the emulated CUDA target's parts share (runtime.cc, sched.cc,
 * racecheck.cc, cublaslt.cc, nccl.cc). Not part of the emulated API.
 *
 * Work queued on a stream is a closure returning a cudaError_t; the runtime runs a stream's
 * queue when the host synchronises with it (so host code that reads results without a
 * synchronisation sees stale data, as it may on a GPU), and records it instead while the
 * stream is being captured into a graph. */
#ifndef G4EMU_INTERNAL_H
#define G4EMU_INTERNAL_H

#include <functional>
#include <string>

#include "cuda_runtime.h"

/* G4EMU_ASAN: built with AddressSanitizer (gcc or clang); its interface is then included. */
#if defined(__SANITIZE_ADDRESS__)
#define G4EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define G4EMU_ASAN 1
#endif
#endif
#ifdef G4EMU_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace g4emu {

using work = std::function<cudaError_t()>;

/* Queues w on s (0: the legacy default stream, which first drains every blocking stream of
 * the device and runs at once). While s is capturing, w is recorded into the graph instead.
 * what names the operation in messages. remake (may be empty): makes a fresh w for every later
 * launch of a graph that recorded it (work whose check state is taken when it is queued, as a
 * pinned copy's snapshot of its source). Returns the error to report at the call. */
cudaError_t enqueue(cudaStream_t s, const char *what, work w, std::function<work()> remake = nullptr);
/* The call `what` is illegal while any stream of the device is capturing in global mode (a
 * host synchronisation, an allocation): invalidates the capture and returns the error. */
cudaError_t capture_forbids(const char *what);
/* 1 when p lies in a pinned host allocation (cudaMallocHost / cudaHostAlloc). */
int is_pinned(const void *p);
/* Runtime-wide last error (cudaGetLastError). */
cudaError_t set_last_error(cudaError_t e);

/* The emulated device (G4_EMU_TARGET=h100|rtx4090, default h100). */
struct target {
    const char *name;
    int sms, cc_major, cc_minor;
    int smem_default, smem_optin, smem_per_sm;
    size_t memory;
};
const target &tgt();
int func_max_dynamic_smem(const void *fn); /* the kernel's MaxDynamicSharedMemorySize (default 48 KB) */

/* One kernel launch, run by sched.cc on the calling host thread. Returns cudaSuccess or
 * cudaErrorLaunchFailure with the reason printed to stderr (prefix "g4emu:"). */
struct launch_rec {
    std::string name;
    const void *fn;
    dim3 grid, block;
    size_t smem;
    std::function<void()> body;
    uint64_t seed;
};
cudaError_t run_kernel(const launch_rec &L);

/* Printed to stderr with the prefix "g4emu: ". */
void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Race check of shared memory (racecheck.cc): armed per block with the arena, advanced per
 * barrier; accesses from instrumented kernel code arrive through the sanitizer-coverage hooks,
 * those of ldmatrix / cp.async from sched.cc. */
struct race_scope {
    const char *kernel;
    uint3 block;
    unsigned char *base;
    size_t size;
};
void race_begin_block(const race_scope &s);
void race_barrier();
void race_end_block();
void race_access(const void *p, size_t n, int is_write, int thread);
long race_count();
int race_instrumented();

} /* namespace g4emu */

#endif
