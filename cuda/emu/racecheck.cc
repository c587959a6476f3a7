/* racecheck.cc — the emulated target's shared-memory race check, in the spirit of
 * compute-sanitizer racecheck: two accesses to the same byte of a block's shared memory by
 * threads of different warps, at least one a write, with no __syncthreads between them, are a
 * hazard (RAW, WAR or WAW). Each is printed with the kernel, block, shared-memory offset and
 * both threads, and fails the launch.
 *
 * Plain loads and stores of kernel code arrive through clang's sanitizer-coverage hooks
 * (-fsanitize-coverage=func,trace-loads,trace-stores, applied to the emulated kernels when the
 * compiler supports it: race_instrumented()); ldmatrix reads and cp.async writes are recorded
 * by sched.cc. Atomics are out of line and not instrumented (they are not races). Accesses of
 * lanes of one warp are not compared (lockstep within the warp is the kernels' assumption,
 * checked by __syncwarp where they rely on it). Shadow: one entry per byte of the arena. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>


#include "emu_internal.h"

namespace g4emu {
namespace {

struct shadow {
    uint32_t epoch;
    int16_t writer;   /* thread of the last write in this epoch, −1 none */
    int16_t reader;   /* thread of the first read in this epoch, −1 none */
    uint8_t multi;    /* reads by more than one warp in this epoch */
};

/* Plain data (constant-initialised thread_local: no guard on the hooks' path). The shadow is
 * allocated once per host thread and kept. */
struct race_state {
    bool active;
    race_scope scope;
    uint32_t epoch;
    shadow *sh;
    size_t sh_n;
    long printed_in_launch;
};
thread_local race_state rs;

/* Frees this host thread's shadow when the thread exits. */
struct race_state_owner {
    int armed;
    ~race_state_owner() {
        free(rs.sh);
        rs.sh = nullptr;
        rs.sh_n = 0;
    }
};
thread_local race_state_owner rs_owner;
long n_races; /* all host threads (reported only) */
/* The hooks' fast path: the armed arena of this host thread (trivial TLS, no init guard). */
thread_local uintptr_t arena_lo, arena_size;

const char *kind(int is_write, int other_write) {
    return is_write ? (other_write ? "write-after-write" : "write-after-read") : "read-after-write";
}

void hazard(size_t off, int is_write, int thread, int other, int other_write) {
    __atomic_add_fetch(&n_races, 1, __ATOMIC_RELAXED);
    if (rs.printed_in_launch++ >= 8) return;
    const dim3 &b = b_cur ? b_cur->dim : dim3();
    auto tid = [&](int t, char *buf, size_t n) {
        snprintf(buf, n, "(%d,%d,%d) [warp %d]", t % (int)b.x, (t / (int)b.x) % (int)b.y, t / (int)(b.x * b.y), t / 32);
    };
    char a[64], o[64];
    tid(thread, a, sizeof a);
    tid(other, o, sizeof o);
    report("race check: %s hazard in kernel %s, block (%u,%u,%u), shared offset %zu: thread %s %s, thread %s %s "
           "with no __syncthreads between",
           kind(is_write, other_write), rs.scope.kernel, rs.scope.block.x, rs.scope.block.y, rs.scope.block.z, off, a,
           is_write ? "writes" : "reads", o, other_write ? "wrote" : "read");
}

inline void access(const void *p, size_t n, int is_write) {
    if ((uintptr_t)p - arena_lo >= arena_size || !t_cur) return;
    race_access(p, n, is_write, t_cur->linear);
}

} /* namespace */

void race_begin_block(const race_scope &s) {
    if (rs.sh_n < s.size) {
        rs_owner.armed = 1; /* first use constructs it in this thread: it frees the shadow at exit */
        free(rs.sh);
        rs.sh = (shadow *)calloc(s.size, sizeof(shadow)); /* epoch 0 never matches: reset on use */
        rs.sh_n = rs.sh ? s.size : 0;
    }
    if (!rs.sh) return;
    rs.scope = s;
    rs.epoch++;
    arena_lo = (uintptr_t)s.base;
    arena_size = s.size;
    if (s.block.x == 0 && s.block.y == 0 && s.block.z == 0) rs.printed_in_launch = 0;
    rs.active = true;
}
void race_barrier() { rs.epoch++; }
void race_end_block() {
    rs.active = false;
    arena_size = 0;
}
long race_count() { return __atomic_load_n(&n_races, __ATOMIC_RELAXED); }

void race_access(const void *p, size_t n, int is_write, int thread) {
    if (!rs.active) return;
    size_t off = (size_t)((const unsigned char *)p - rs.scope.base);
    int warp = thread >> 5;
    bool reported = false;
    shadow *sh = rs.sh;
    if (off + n > rs.scope.size) n = rs.scope.size - off;
    for (size_t i = 0; i < n; i++) {
        shadow &s = sh[off + i];
        if (s.epoch != rs.epoch) s = shadow{rs.epoch, -1, -1, 0};
        if (is_write) {
            if (!reported && s.writer >= 0 && (s.writer >> 5) != warp) {
                hazard(off + i, 1, thread, s.writer, 1);
                reported = true;
            } else if (!reported && s.reader >= 0 && (s.multi || (s.reader >> 5) != warp)) {
                hazard(off + i, 1, thread, s.reader, 0);
                reported = true;
            }
            s.writer = (int16_t)thread;
        } else {
            if (!reported && s.writer >= 0 && (s.writer >> 5) != warp) {
                hazard(off + i, 0, thread, s.writer, 1);
                reported = true;
            }
            if (s.reader < 0) s.reader = (int16_t)thread;
            else if ((s.reader >> 5) != warp) s.multi = 1;
        }
    }
}

int race_instrumented() {
#ifdef G4EMU_RACECHECK_HOOKS
    return 1;
#else
    return 0;
#endif
}

} /* namespace g4emu */

extern "C" long g4emu_race_reports(void) { return g4emu::race_count(); }
extern "C" int g4emu_race_instrumented(void) { return g4emu::race_instrumented(); }

/* sanitizer-coverage hooks (called by the instrumented kernels) */
extern "C" {
void __sanitizer_cov_load1(uint8_t *a) { g4emu::access(a, 1, 0); }
void __sanitizer_cov_load2(uint16_t *a) { g4emu::access(a, 2, 0); }
void __sanitizer_cov_load4(uint32_t *a) { g4emu::access(a, 4, 0); }
void __sanitizer_cov_load8(uint64_t *a) { g4emu::access(a, 8, 0); }
void __sanitizer_cov_load16(__int128 *a) { g4emu::access(a, 16, 0); }
void __sanitizer_cov_store1(uint8_t *a) { g4emu::access(a, 1, 1); }
void __sanitizer_cov_store2(uint16_t *a) { g4emu::access(a, 2, 1); }
void __sanitizer_cov_store4(uint32_t *a) { g4emu::access(a, 4, 1); }
void __sanitizer_cov_store8(uint64_t *a) { g4emu::access(a, 8, 1); }
void __sanitizer_cov_store16(__int128 *a) { g4emu::access(a, 16, 1); }
}
