/* runtime.cc — the emulated CUDA runtime API: devices, memory, streams, events, graphs,
 * launches and their validation (see cuda_runtime.h in cuda/emu/include for the contract).
 *
 * Process-wide state lives here because the CUDA runtime it stands for is process-wide: the
 * table of allocations, the streams, kernel attributes, the count of captures in progress.
 * Each host thread has its own current device and last error, as in CUDA.
 *
 * Fidelity rules (each is what a GPU does, made deterministic):
 *   - work on a stream runs when the host synchronises with that stream (or the device);
 *     the legacy default stream orders with blocking streams, never with non-blocking ones;
 *   - cudaMemcpyAsync from pageable memory reads the source at the call, into pageable memory
 *     completes before returning; with pinned memory it is deferred like a kernel, and a host
 *     write to the pinned source between the call (or the graph launch) and the copy running
 *     is reported and fails the copy (cudaErrorLaunchFailure at the next synchronising call):
 *     a GPU would copy whichever bytes were there when its DMA ran, silently;
 *   - device allocations are 256-byte aligned host memory with a 64-byte red zone behind them
 *     (poisoned under AddressSanitizer, checked for overwrites at cudaFree);
 *   - launch configuration errors are the runtime's (cudaErrorInvalidConfiguration for block and
 *     grid limits, cudaErrorInvalidValue for dynamic shared memory above the kernel's opt-in
 *     attribute or the device), reported by cudaGetLastError, nothing runs;
 *   - while a stream captures in global mode, a host synchronisation, an allocation or a free
 *     anywhere in the process, or an async copy from pageable memory, fails with
 *     cudaErrorStreamCaptureUnsupported and invalidates the capture (cudaStreamEndCapture then
 *     returns cudaErrorStreamCaptureInvalidated). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "emu_internal.h"


struct g4emu_graph_op {
    std::string name;
    g4emu::work w;
    std::function<g4emu::work()> remake; /* empty, or a fresh w per launch (enqueue) */
};
struct g4emu_graph {
    std::vector<g4emu_graph_op> ops;
};
struct g4emu_graph_exec {
    std::vector<g4emu_graph_op> ops;
};
struct g4emu_stream {
    int device;
    unsigned flags;
    std::deque<std::pair<std::string, g4emu::work>> q;
    int capturing; /* 0, or 1 + cudaStreamCaptureMode */
    bool invalidated;
    g4emu_graph *graph;
};
struct g4emu_event {
    g4emu_stream *stream;
    bool recorded, done;
    double t_ms;
};

namespace g4emu {
namespace {

const size_t RED_ZONE = 64;
const unsigned char RED_BYTE = 0xcd;

struct alloc_info {
    size_t size;
    int device;
    bool pinned;
};

struct runtime {
    std::recursive_mutex mu;
    std::map<uintptr_t, alloc_info> allocs;
    std::map<const void *, int> func_dyn_smem;
    std::vector<g4emu_stream *> streams;
    std::vector<g4emu_stream *> legacy; /* per device */
    size_t used[16] = {0};
    int global_captures = 0;
    uint64_t base_seed = 1;
};
runtime &rt() {
    static runtime *r = [] {
        runtime *x = new runtime();
        const char *s = getenv("G4_EMU_SEED");
        if (s && *s) x->base_seed = strtoull(s, nullptr, 0);
        return x;
    }();
    return *r;
}

thread_local int cur_device = 0;
thread_local cudaError_t last_error = cudaSuccess;
thread_local uint64_t launch_seq = 0;
thread_local uint64_t thread_seed = 0;
thread_local bool thread_seed_set = false;

int n_devices() {
    const char *s = getenv("G4_EMU_DEVICES");
    int n = s && *s ? atoi(s) : 1;
    return n < 0 ? 0 : (n > 16 ? 16 : n);
}

double now_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* The allocation holding [p, p+n), or nullptr. */
const alloc_info *find_alloc(const void *p, size_t n, uintptr_t *start) {
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    auto &m = rt().allocs;
    auto it = m.upper_bound((uintptr_t)p);
    if (it == m.begin()) return nullptr;
    --it;
    if ((uintptr_t)p + n > it->first + it->second.size) return nullptr;
    if (start) *start = it->first;
    return &it->second;
}

g4emu_stream *legacy_stream(int dev) {
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    auto &l = rt().legacy;
    while ((int)l.size() <= dev) l.push_back(new g4emu_stream{(int)l.size(), 0, {}, 0, false, nullptr});
    return l[(size_t)dev];
}

bool stream_known(g4emu_stream *s) {
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    for (auto *x : rt().streams)
        if (x == s) return true;
    for (auto *x : rt().legacy)
        if (x == s) return true;
    return false;
}

/* An error raised while running queued work (a kernel fault, a failed collective) is reported
 * by the next synchronising call on that device, as a GPU's asynchronous errors are. */
cudaError_t pending_error[16];

void note_async_error(int dev, cudaError_t e) {
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    if (pending_error[dev] == cudaSuccess) pending_error[dev] = e;
}

cudaError_t take_async_error(int dev) {
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    cudaError_t e = pending_error[dev];
    pending_error[dev] = cudaSuccess;
    return e;
}

/* Runs s's queue; returns (and clears) the device's pending asynchronous error. */
cudaError_t drain(g4emu_stream *s) {
    while (!s->q.empty()) {
        auto item = std::move(s->q.front());
        s->q.pop_front();
        cudaError_t e = item.second();
        if (e != cudaSuccess) note_async_error(s->device, e);
    }
    return take_async_error(s->device);
}

cudaError_t drain_device(int dev, bool blocking_only) {
    std::vector<g4emu_stream *> list;
    {
        std::lock_guard<std::recursive_mutex> g(rt().mu);
        for (auto *x : rt().streams)
            if (x->device == dev && !(blocking_only && (x->flags & cudaStreamNonBlocking))) list.push_back(x);
    }
    cudaError_t first = drain(legacy_stream(dev));
    for (auto *x : list) {
        cudaError_t e = drain(x);
        if (e != cudaSuccess && first == cudaSuccess) first = e;
    }
    return first;
}

cudaError_t fail(cudaError_t e) {
    last_error = e;
    return e;
}

void check_red_zone(uintptr_t start, const alloc_info &a) {
    const unsigned char *z = (const unsigned char *)start + a.size;
#ifdef G4EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(z, RED_ZONE);
#endif
    for (size_t i = 0; i < RED_ZONE; i++)
        if (z[i] != RED_BYTE) {
            report("device memory written out of bounds: byte %zu past the end of the %zu-byte allocation %p", i,
                   a.size, (void *)start);
            abort();
        }
}

} /* namespace */

void report(const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "g4emu: %s\n", buf);
}

cudaError_t set_last_error(cudaError_t e) { return fail(e); }

const target &tgt() {
    static const target h100 = {
        "NVIDIA H100 80GB HBM3 (g4emu)", 132, 9, 0, 48 * 1024, 227 * 1024, 228 * 1024, (size_t)80 << 30};
    static const target ada = {
        "NVIDIA GeForce RTX 4090 (g4emu)", 128, 8, 9, 48 * 1024, 99 * 1024, 100 * 1024, (size_t)24 << 30};
    static const target *t = [] {
        const char *s = getenv("G4_EMU_TARGET");
        return s && !strcmp(s, "rtx4090") ? &ada : &h100;
    }();
    return *t;
}

int func_max_dynamic_smem(const void *fn) {
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    auto it = rt().func_dyn_smem.find(fn);
    return it == rt().func_dyn_smem.end() ? tgt().smem_default : it->second;
}

int is_pinned(const void *p) {
    const alloc_info *a = find_alloc(p, 1, nullptr);
    return a && a->pinned;
}

cudaError_t capture_forbids(const char *what) {
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    if (!rt().global_captures) return cudaSuccess;
    for (auto *x : rt().streams)
        if (x->capturing && !x->invalidated) {
            x->invalidated = true;
            report("%s while a stream is being captured: not permitted (the capture is invalidated)", what);
        }
    return fail(cudaErrorStreamCaptureUnsupported);
}

cudaError_t enqueue(cudaStream_t s, const char *what, work w, std::function<work()> remake) {
    g4emu_stream *st = s ? s : legacy_stream(cur_device);
    if (s && !stream_known(s)) return fail(cudaErrorInvalidResourceHandle);
    if (st->capturing) {
        if (st->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
        st->graph->ops.push_back(g4emu_graph_op{what, std::move(w), std::move(remake)});
        return cudaSuccess;
    }
    if (!s) { /* legacy stream: after the device's blocking streams, then at once */
        std::lock_guard<std::recursive_mutex> g(rt().mu);
        for (auto *x : rt().streams)
            if (x->device == st->device && !(x->flags & cudaStreamNonBlocking) && x->capturing)
                return fail(cudaErrorStreamCaptureImplicit);
    }
    if (!(st->flags & cudaStreamNonBlocking) && s) drain(legacy_stream(st->device));
    st->q.emplace_back(what, std::move(w));
    if (!s) { /* runs now; an error in it is reported by the next synchronising call */
        cudaError_t e = drain_device(st->device, true);
        if (e != cudaSuccess) note_async_error(st->device, e);
    }
    return cudaSuccess;
}

cudaError_t launch(const char *name, const void *fn, dim3 grid, dim3 block, size_t smem, cudaStream_t s,
                   std::function<void()> body) {
    unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (!block.x || !block.y || !block.z || block.x > 1024 || block.y > 1024 || block.z > 64 || threads > 1024 ||
        !grid.x || !grid.y || !grid.z || grid.x > 0x7fffffffu || grid.y > 65535 || grid.z > 65535) {
        report("launch of %s: invalid configuration grid (%u,%u,%u) block (%u,%u,%u)", name, grid.x, grid.y, grid.z,
               block.x, block.y, block.z);
        return fail(cudaErrorInvalidConfiguration);
    }
    int max_dyn = func_max_dynamic_smem(fn);
    if (smem > (size_t)max_dyn || smem > (size_t)tgt().smem_optin) {
        report("launch of %s: %zu bytes of dynamic shared memory, above the kernel's limit of %d bytes%s", name, smem,
               smem > (size_t)tgt().smem_optin ? tgt().smem_optin : max_dyn,
               smem > (size_t)tgt().smem_optin ? " (the device's opt-in maximum)"
                                               : " (cudaFuncAttributeMaxDynamicSharedMemorySize)");
        return fail(cudaErrorInvalidValue);
    }
    uint64_t seed = (thread_seed_set ? thread_seed : rt().base_seed) * 0x9e3779b97f4a7c15ull + ++launch_seq;
    auto rec = std::make_shared<launch_rec>(launch_rec{name, fn, grid, block, smem, std::move(body), seed});
    return enqueue(s, name, [rec]() { return run_kernel(*rec); });
}

} /* namespace g4emu */

using namespace g4emu;

extern "C" {

const char *cudaGetErrorName(cudaError_t e) {
    switch (e) {
#define G4EMU_NAME(x) \
    case x: return #x;
        G4EMU_NAME(cudaSuccess)
        G4EMU_NAME(cudaErrorInvalidValue)
        G4EMU_NAME(cudaErrorMemoryAllocation)
        G4EMU_NAME(cudaErrorInitializationError)
        G4EMU_NAME(cudaErrorInvalidConfiguration)
        G4EMU_NAME(cudaErrorInvalidDevicePointer)
        G4EMU_NAME(cudaErrorInvalidMemcpyDirection)
        G4EMU_NAME(cudaErrorInvalidResourceHandle)
        G4EMU_NAME(cudaErrorNotReady)
        G4EMU_NAME(cudaErrorIllegalAddress)
        G4EMU_NAME(cudaErrorLaunchOutOfResources)
        G4EMU_NAME(cudaErrorLaunchFailure)
        G4EMU_NAME(cudaErrorStreamCaptureUnsupported)
        G4EMU_NAME(cudaErrorStreamCaptureInvalidated)
        G4EMU_NAME(cudaErrorStreamCaptureUnmatched)
        G4EMU_NAME(cudaErrorStreamCaptureImplicit)
        G4EMU_NAME(cudaErrorNoDevice)
        G4EMU_NAME(cudaErrorInvalidDevice)
        G4EMU_NAME(cudaErrorUnknown)
#undef G4EMU_NAME
    }
    return "cudaErrorUnknown";
}

const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorLaunchFailure: return "unspecified launch failure (see the g4emu: lines above)";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureImplicit:
        return "operation would make the legacy stream depend on a capturing blocking stream";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    default: return cudaGetErrorName(e);
    }
}

cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }

cudaError_t cudaGetDeviceCount(int *n) {
    *n = n_devices();
    return *n ? cudaSuccess : fail(cudaErrorNoDevice);
}
cudaError_t cudaSetDevice(int d) {
    if (d < 0 || d >= n_devices()) return fail(cudaErrorInvalidDevice);
    cur_device = d;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *d) {
    *d = cur_device;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int *v) {
    *v = CUDART_VERSION;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int *v) {
    *v = CUDART_VERSION;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, cudaDeviceAttr a, int d) {
    if (d < 0 || d >= n_devices()) return fail(cudaErrorInvalidDevice);
    const target &t = tgt();
    switch (a) {
    case cudaDevAttrMaxThreadsPerBlock: *v = 1024; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *v = t.smem_default; break;
    case cudaDevAttrWarpSize: *v = 32; break;
    case cudaDevAttrMultiProcessorCount: *v = t.sms; break;
    case cudaDevAttrComputeCapabilityMajor: *v = t.cc_major; break;
    case cudaDevAttrComputeCapabilityMinor: *v = t.cc_minor; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: *v = t.smem_per_sm; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *v = t.smem_optin; break;
    default: return fail(cudaErrorInvalidValue);
    }
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d < 0 || d >= n_devices()) return fail(cudaErrorInvalidDevice);
    const target &t = tgt();
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", t.name);
    p->totalGlobalMem = t.memory;
    p->sharedMemPerBlock = (size_t)t.smem_default;
    p->sharedMemPerBlockOptin = (size_t)t.smem_optin;
    p->sharedMemPerMultiprocessor = (size_t)t.smem_per_sm;
    p->warpSize = 32;
    p->maxThreadsPerBlock = 1024;
    p->maxThreadsDim[0] = p->maxThreadsDim[1] = 1024;
    p->maxThreadsDim[2] = 64;
    p->maxGridSize[0] = 0x7fffffff;
    p->maxGridSize[1] = p->maxGridSize[2] = 65535;
    p->multiProcessorCount = t.sms;
    p->major = t.cc_major;
    p->minor = t.cc_minor;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) {
    cudaError_t e = capture_forbids("cudaDeviceSynchronize");
    if (e != cudaSuccess) return e;
    e = drain_device(cur_device, false);
    return e == cudaSuccess ? e : fail(e);
}
cudaError_t cudaDeviceReset(void) { return cudaDeviceSynchronize(); }

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total) {
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    *total = tgt().memory;
    size_t u = rt().used[cur_device];
    *free_bytes = u < *total ? *total - u : 0;
    return cudaSuccess;
}

static cudaError_t emu_alloc(void **p, size_t bytes, bool pinned, const char *what) {
    cudaError_t e = capture_forbids(what);
    if (e != cudaSuccess) return e;
    if (!p) return fail(cudaErrorInvalidValue);
    *p = nullptr;
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    if (!pinned && rt().used[cur_device] + bytes > tgt().memory) return fail(cudaErrorMemoryAllocation);
    size_t total = (bytes + RED_ZONE + 255) & ~(size_t)255;
    void *m = aligned_alloc(256, total);
    if (!m) return fail(cudaErrorMemoryAllocation);
    if (!pinned) memset(m, 0xff, bytes); /* NaN in f32/bf16/f16: a kernel reading memory nobody wrote shows */
    memset((char *)m + bytes, RED_BYTE, RED_ZONE);
#ifdef G4EMU_ASAN
    ASAN_POISON_MEMORY_REGION((char *)m + bytes, total - bytes);
#endif
    rt().allocs[(uintptr_t)m] = alloc_info{bytes, cur_device, pinned};
    if (!pinned) rt().used[cur_device] += bytes;
    *p = m;
    return cudaSuccess;
}

static cudaError_t emu_free(void *p, bool pinned, const char *what) {
    if (!p) return cudaSuccess;
    cudaError_t e = capture_forbids(what);
    if (e != cudaSuccess) return e;
    alloc_info a;
    {
        std::lock_guard<std::recursive_mutex> g(rt().mu);
        auto it = rt().allocs.find((uintptr_t)p);
        if (it == rt().allocs.end() || it->second.pinned != pinned) {
            report("%s(%p): not the start of a %s allocation", what, p, pinned ? "pinned host" : "device");
            return fail(cudaErrorInvalidValue);
        }
        a = it->second;
    }
    e = drain_device(a.device, false); /* cudaFree synchronises the device */
    check_red_zone((uintptr_t)p, a);
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    rt().allocs.erase((uintptr_t)p);
    if (!pinned) rt().used[a.device] -= a.size;
    free(p);
    return e == cudaSuccess ? e : fail(e);
}

cudaError_t cudaMalloc(void **p, size_t bytes) { return emu_alloc(p, bytes, false, "cudaMalloc"); }
cudaError_t cudaFree(void *p) { return emu_free(p, false, "cudaFree"); }
cudaError_t cudaMallocHost(void **p, size_t bytes) { return emu_alloc(p, bytes, true, "cudaMallocHost"); }
cudaError_t cudaHostAlloc(void **p, size_t bytes, unsigned flags) {
    (void)flags;
    return emu_alloc(p, bytes, true, "cudaHostAlloc");
}
cudaError_t cudaFreeHost(void *p) { return emu_free(p, true, "cudaFreeHost"); }

/* Device-side ranges of a copy must lie inside one allocation. */
static cudaError_t check_copy(void *dst, const void *src, size_t n, cudaMemcpyKind kind, const char *what) {
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if (kind == cudaMemcpyDefault) {
        dst_dev = find_alloc(dst, 1, nullptr) && !is_pinned(dst);
        src_dev = find_alloc(src, 1, nullptr) && !is_pinned(src);
    }
    if (n && dst_dev) {
        const alloc_info *a = find_alloc(dst, n, nullptr);
        if (!a || a->pinned) {
            report("%s: destination %p + %zu bytes is not inside one device allocation", what, dst, n);
            return fail(cudaErrorInvalidValue);
        }
    }
    if (n && src_dev) {
        const alloc_info *a = find_alloc(src, n, nullptr);
        if (!a || a->pinned) {
            report("%s: source %p + %zu bytes is not inside one device allocation", what, src, n);
            return fail(cudaErrorInvalidValue);
        }
    }
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, cudaMemcpyKind kind, cudaStream_t s) {
    cudaError_t e = check_copy(dst, src, n, kind, "cudaMemcpyAsync");
    if (e != cudaSuccess || !n) return e;
    g4emu_stream *st = s ? s : legacy_stream(cur_device);
    bool host_src = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyHostToHost;
    bool host_dst = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyHostToHost;
    bool pageable = (host_src && !is_pinned(src)) || (host_dst && !is_pinned(dst));
    if (pageable && st->capturing) {
        capture_forbids("cudaMemcpyAsync with pageable host memory");
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    if (host_src && !is_pinned(src)) { /* staged at the call */
        auto copy =
            std::make_shared<std::vector<unsigned char>>((const unsigned char *)src, (const unsigned char *)src + n);
        return enqueue(s, "cudaMemcpyAsync", [dst, copy]() {
            memcpy(dst, copy->data(), copy->size());
            return cudaSuccess;
        });
    }
    if (host_src) { /* pinned: read when the copy runs; the host must not write it before */
        std::function<work()> make = [dst, src, n]() -> work {
            auto at_queue = std::make_shared<std::vector<unsigned char>>((const unsigned char *)src,
                                                                         (const unsigned char *)src + n);
            return [dst, src, n, at_queue]() {
                cudaError_t r = cudaSuccess;
                if (memcmp(at_queue->data(), src, n) != 0) {
                    size_t i = 0;
                    while (((const unsigned char *)src)[i] == (*at_queue)[i]) i++;
                    report("cudaMemcpyAsync: the host wrote pinned memory %p (byte %zu of %zu) while a copy from it "
                           "was still queued: the copy reads it only when it runs",
                           src, i, n);
                    r = cudaErrorLaunchFailure;
                }
                memmove(dst, src, n); /* what a GPU copies: the bytes there when the copy runs */
                return r;
            };
        };
        return enqueue(s, "cudaMemcpyAsync", make(), make);
    }
    e = enqueue(s, "cudaMemcpyAsync", [dst, src, n]() {
        memmove(dst, src, n);
        return cudaSuccess;
    });
    if (e == cudaSuccess && host_dst && !is_pinned(dst)) e = drain(st); /* into pageable: completes first */
    return e == cudaSuccess ? e : fail(e);
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t n, cudaMemcpyKind kind) {
    cudaError_t e = capture_forbids("cudaMemcpy");
    if (e != cudaSuccess) return e;
    e = cudaMemcpyAsync(dst, src, n, kind, nullptr);
    if (e == cudaSuccess) e = drain(legacy_stream(cur_device));
    return e == cudaSuccess ? e : fail(e);
}

cudaError_t cudaMemsetAsync(void *dst, int v, size_t n, cudaStream_t s) {
    if (n && !find_alloc(dst, n, nullptr)) {
        report("cudaMemsetAsync: %p + %zu bytes is not inside one device allocation", dst, n);
        return fail(cudaErrorInvalidValue);
    }
    return enqueue(s, "cudaMemsetAsync", [dst, v, n]() {
        memset(dst, v, n);
        return cudaSuccess;
    });
}

cudaError_t cudaMemset(void *dst, int v, size_t n) {
    cudaError_t e = capture_forbids("cudaMemset");
    if (e == cudaSuccess) e = cudaMemsetAsync(dst, v, n, nullptr);
    return e;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    g4emu_stream *x = new g4emu_stream{cur_device, flags, {}, 0, false, nullptr};
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    rt().streams.push_back(x);
    *s = x;
    return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t *s) { return cudaStreamCreateWithFlags(s, cudaStreamDefault); }

cudaError_t cudaStreamDestroy(cudaStream_t s) {
    if (!s || !stream_known(s)) return fail(cudaErrorInvalidResourceHandle);
    cudaError_t e = drain(s);
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    auto &v = rt().streams;
    for (size_t i = 0; i < v.size(); i++)
        if (v[i] == s) v.erase(v.begin() + (long)i);
    if (s->capturing) {
        rt().global_captures -= s->capturing == 1 + cudaStreamCaptureModeGlobal;
        delete s->graph;
    }
    delete s;
    return e == cudaSuccess ? e : fail(e);
}

cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    g4emu_stream *st = s ? s : legacy_stream(cur_device);
    if (s && !stream_known(s)) return fail(cudaErrorInvalidResourceHandle);
    cudaError_t e = capture_forbids("cudaStreamSynchronize");
    if (e != cudaSuccess) return e;
    e = s ? drain(st) : drain_device(cur_device, true);
    return e == cudaSuccess ? e : fail(e);
}

cudaError_t cudaStreamQuery(cudaStream_t s) {
    cudaError_t e = capture_forbids("cudaStreamQuery");
    if (e != cudaSuccess) return e;
    g4emu_stream *st = s ? s : legacy_stream(cur_device);
    return st->q.empty() ? cudaSuccess : cudaErrorNotReady;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    (void)flags;
    *e = new g4emu_event{nullptr, false, false, 0.0};
    return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t *e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t ev, cudaStream_t s) {
    if (!ev) return fail(cudaErrorInvalidResourceHandle);
    ev->stream = s ? s : legacy_stream(cur_device);
    ev->recorded = true;
    ev->done = false;
    return enqueue(s, "cudaEventRecord", [ev]() {
        ev->done = true;
        ev->t_ms = now_ms();
        return cudaSuccess;
    });
}
cudaError_t cudaEventSynchronize(cudaEvent_t ev) {
    cudaError_t e = capture_forbids("cudaEventSynchronize");
    if (e != cudaSuccess) return e;
    if (!ev || !ev->recorded) return cudaSuccess;
    while (!ev->done && !ev->stream->q.empty()) {
        auto item = std::move(ev->stream->q.front());
        ev->stream->q.pop_front();
        cudaError_t r = item.second();
        if (r != cudaSuccess) note_async_error(ev->stream->device, r);
    }
    e = take_async_error(ev->stream->device);
    return e == cudaSuccess ? e : fail(e);
}
cudaError_t cudaEventQuery(cudaEvent_t ev) {
    cudaError_t e = capture_forbids("cudaEventQuery");
    if (e != cudaSuccess) return e;
    return !ev->recorded || ev->done ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a->done || !b->done) return fail(cudaErrorNotReady);
    *ms = (float)(b->t_ms - a->t_ms);
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t ev, unsigned flags) {
    (void)flags;
    if (!ev || !ev->recorded) return cudaSuccess;
    g4emu_stream *other = ev->stream;
    return enqueue(s, "cudaStreamWaitEvent", [ev, other]() {
        while (!ev->done && !other->q.empty()) {
            auto item = std::move(other->q.front());
            other->q.pop_front();
            cudaError_t r = item.second();
            if (r != cudaSuccess) return r;
        }
        return cudaSuccess;
    });
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
    if (!s || !stream_known(s)) {
        report("cudaStreamBeginCapture on the legacy default stream is not permitted");
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    if (s->capturing) return fail(cudaErrorInvalidValue);
    drain(s); /* work queued before the capture is not part of it */
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    s->capturing = 1 + (int)mode;
    s->invalidated = false;
    s->graph = new g4emu_graph();
    if (mode == cudaStreamCaptureModeGlobal) rt().global_captures++;
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t *graph) {
    if (!s || !s->capturing) return fail(cudaErrorStreamCaptureUnmatched);
    std::lock_guard<std::recursive_mutex> g(rt().mu);
    if (s->capturing == 1 + cudaStreamCaptureModeGlobal) rt().global_captures--;
    s->capturing = 0;
    g4emu_graph *gr = s->graph;
    s->graph = nullptr;
    if (s->invalidated) {
        s->invalidated = false;
        delete gr;
        *graph = nullptr;
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    *graph = gr;
    return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus *st) {
    g4emu_stream *x = s ? s : legacy_stream(cur_device);
    *st = !x->capturing ? cudaStreamCaptureStatusNone
                        : (x->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive);
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t g, unsigned long long flags) {
    (void)flags;
    if (!g) return fail(cudaErrorInvalidValue);
    *exec = new g4emu_graph_exec{g->ops};
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t s) {
    if (!exec) return fail(cudaErrorInvalidValue);
    for (auto &op : exec->ops) {
        cudaError_t e = enqueue(s, op.name.c_str(), op.remake ? op.remake() : op.w, op.remake);
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
    delete exec;
    return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}

cudaError_t g4emu_func_set_attribute(const void *fn, cudaFuncAttribute attr, int value) {
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value < 0 || value > tgt().smem_optin) {
            report("cudaFuncSetAttribute: MaxDynamicSharedMemorySize %d above the device's %d", value,
                   tgt().smem_optin);
            return fail(cudaErrorInvalidValue);
        }
        std::lock_guard<std::recursive_mutex> g(rt().mu);
        rt().func_dyn_smem[fn] = value;
        return cudaSuccess;
    }
    if (attr == cudaFuncAttributePreferredSharedMemoryCarveout) return cudaSuccess;
    return fail(cudaErrorInvalidValue);
}

void g4emu_set_seed(uint64_t seed) {
    thread_seed = seed;
    thread_seed_set = true;
}

} /* extern "C" */
