/* sched.cc — how the emulated CUDA target runs a kernel: blocks one after another on the
 * launching host thread, the threads of a block as fibers (own stacks, a 20-instruction
 * context switch), warps in a seeded random order between barriers, warp collectives performed
 * in lockstep once every lane of their mask has arrived, and the tensor-core / async-copy
 * instructions (mma.sync m16n8k16, ldmatrix, cp.async) implemented from the PTX ISA's
 * fragment layouts. Misuse that a GPU punishes with a hang or garbage is reported here with the
 * kernel, block and thread: a deadlocked barrier or collective, a lane missing from a mask, a
 * shuffle reading a lane outside its mask, an unaligned or non-shared ldmatrix / cp.async
 * address, shared memory over the device limit.
 * Not here: the runtime API (runtime.cc), the race check (racecheck.cc). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "emu_internal.h"

#ifdef G4EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#define G4EMU_STACK (512u << 10)
#else
#define G4EMU_STACK (128u << 10)
#endif

#if !defined(__x86_64__)
#error "the emulated CUDA target's fiber switch is written for x86-64"
#endif

/* g4emu_ctx_switch(save, to): saves the callee-saved registers, MXCSR and the x87 control word
 * on the current stack, stores the stack pointer in *save, and continues on stack `to`.
 * g4emu_ctx_start: a new fiber's first return address: calls r13(r12). */
extern "C" void g4emu_ctx_switch(void **save, void *to);
extern "C" void g4emu_ctx_start(void);
asm(".text\n"
    ".globl g4emu_ctx_switch\n"
    ".type g4emu_ctx_switch,@function\n"
    "g4emu_ctx_switch:\n"
    "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
    "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
    "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
    "  ret\n"
    ".size g4emu_ctx_switch,.-g4emu_ctx_switch\n"
    ".globl g4emu_ctx_start\n"
    ".type g4emu_ctx_start,@function\n"
    "g4emu_ctx_start:\n"
    "  movq %r12, %rdi\n  callq *%r13\n  ud2\n"
    ".size g4emu_ctx_start,.-g4emu_ctx_start\n"
    ".section .note.GNU-stack,\"\",@progbits\n"
    ".text\n");

namespace g4emu {

thread_local thread_ctx *t_cur;
thread_local block_ctx *b_cur;

namespace {

enum { ST_RUN, ST_BAR, ST_WARP, ST_DONE, ST_FAULT };
enum { C_SHFL, C_VOTE, C_SYNCWARP, C_MMA, C_LDSM };
const char *const kind_name[] = {"__shfl_*_sync", "__ballot_sync/__any_sync/__all_sync", "__syncwarp", "mma.sync",
                                 "ldmatrix"};
const char *const state_name[] = {"running", "at __syncthreads", "in a warp collective", "exited", "faulted"};

struct cp_req {
    void *dst;
    const void *src;
    int bytes, src_bytes;
};

struct fiber {
    void *sp;
    char *stack;
    size_t size;
    thread_ctx tc;
    int state;
    int c_kind;
    unsigned c_mask;
    void *c_rec;
    std::vector<cp_req> cp_open;
    std::vector<std::vector<cp_req>> cp_groups; /* committed, oldest first */
    void *asan_fake;
};

struct shfl_rec {
    uint64_t v, out;
    int kind, arg, width;
};
struct vote_rec {
    int pred;
    unsigned out;
};
struct mma_rec {
    const uint32_t *a, *b;
    const float *c;
    float *d;
    int bf16;
};
struct ldsm_rec {
    uint32_t *r;
    int n, trans;
    const unsigned char *addr;
};

struct host_sched {
    void *sched_sp = nullptr;
    const void *sched_bottom = nullptr;
    size_t sched_size = 0;
    void *sched_fake = nullptr;
    std::vector<fiber *> fibers;
    fiber *cur = nullptr;
    const launch_rec *L = nullptr;
    block_ctx blk;
    unsigned char *arena = nullptr;
    size_t arena_cap = 0;
    size_t dyn = 0, static_top = 0;
    std::vector<std::pair<const void *, size_t>> statics;
    int n_threads = 0;
    bool failed = false;
    std::string why;
    uint32_t fp_csr[2];
};
thread_local host_sched *hs;

/* Frees this host thread's scheduler (fiber stacks, arena) when the thread exits. */
struct host_sched_owner {
    int armed;
    ~host_sched_owner() {
        if (!hs) return;
        for (fiber *f : hs->fibers) {
            munmap(f->stack - 4096, f->size + 4096);
            delete f;
        }
        free(hs->arena);
        delete hs;
        hs = nullptr;
    }
};
thread_local host_sched_owner hs_owner;

void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fail(const char *fmt, ...) {
    if (hs->failed) return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    hs->failed = true;
    hs->why = buf;
}

void fiber_entry(fiber *f);

void fiber_reset(fiber *f) {
#ifdef G4EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(f->stack, f->size);
#endif
    uint64_t *p = (uint64_t *)(((uintptr_t)(f->stack + f->size)) & ~(uintptr_t)15);
    p[-1] = (uint64_t)(uintptr_t)&g4emu_ctx_start;
    p[-2] = 0;                                 /* rbp */
    p[-3] = 0;                                 /* rbx */
    p[-4] = (uint64_t)(uintptr_t)f;            /* r12: the argument */
    p[-5] = (uint64_t)(uintptr_t)&fiber_entry; /* r13: the entry */
    p[-6] = 0;                                 /* r14 */
    p[-7] = 0;                                 /* r15 */
    memcpy(&p[-8], hs->fp_csr, 8);
    f->sp = &p[-8];
    f->asan_fake = nullptr;
    f->cp_open.clear();
    f->cp_groups.clear();
}

fiber *fiber_new() {
    size_t page = 4096, total = G4EMU_STACK + page;
    void *m = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    mprotect(m, page, PROT_NONE); /* guard: a kernel that overflows its stack faults */
    fiber *f = new fiber();
    f->stack = (char *)m + page;
    f->size = G4EMU_STACK;
    return f;
}

/* scheduler → fiber f, until f yields */
void resume(fiber *f) {
    hs->cur = f;
    t_cur = &f->tc;
#ifdef G4EMU_ASAN
    __sanitizer_start_switch_fiber(&hs->sched_fake, f->stack, f->size);
#endif
    g4emu_ctx_switch(&hs->sched_sp, f->sp);
#ifdef G4EMU_ASAN
    __sanitizer_finish_switch_fiber(hs->sched_fake, nullptr, nullptr);
#endif
    t_cur = nullptr;
    hs->cur = nullptr;
}

/* fiber f → scheduler */
void to_sched(fiber *f) {
#ifdef G4EMU_ASAN
    __sanitizer_start_switch_fiber(&f->asan_fake, hs->sched_bottom, hs->sched_size);
#endif
    g4emu_ctx_switch(&f->sp, hs->sched_sp);
#ifdef G4EMU_ASAN
    __sanitizer_finish_switch_fiber(f->asan_fake, nullptr, nullptr);
#endif
}

void fiber_entry(fiber *f) {
#ifdef G4EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &hs->sched_bottom, &hs->sched_size);
#endif
    hs->L->body();
    f->state = ST_DONE;
    to_sched(f);
    abort(); /* a finished fiber is reset before it runs again */
}

/* Stops the calling thread for good: the block is abandoned, the launch fails. */
[[noreturn]] void fault_here() {
    fiber *f = hs->cur;
    f->state = ST_FAULT;
    to_sched(f);
    abort();
}

fiber *me() {
    if (!hs || !hs->cur) {
        report("a device function was called outside a kernel");
        abort();
    }
    return hs->cur;
}

void collective(int kind, unsigned mask, void *rec) {
    fiber *f = me();
    if (!((mask >> f->tc.lane) & 1u)) {
        fail("%s with mask 0x%08x does not include the calling lane %d", kind_name[kind], mask, f->tc.lane);
        fault_here();
    }
    f->state = ST_WARP;
    f->c_kind = kind;
    f->c_mask = mask;
    f->c_rec = rec;
    to_sched(f);
    if (hs->failed) fault_here();
}

std::string thread_name(const fiber *f) {
    char b[96];
    snprintf(b, sizeof b, "thread (%u,%u,%u) [warp %d lane %d]", f->tc.idx.x, f->tc.idx.y, f->tc.idx.z, f->tc.warp,
             f->tc.lane);
    return b;
}

int lane_bf16(uint32_t w, int hi) { return (int)((w >> (hi ? 16 : 0)) & 0xffffu); }
float b16_to_f(int bits, int bf16) {
    return bf16 ? __bfloat162float(__ushort_as_bfloat16((unsigned short)bits))
                : __half2float(__ushort_as_half((unsigned short)bits));
}

bool in_shared(const void *p, size_t n) {
    const unsigned char *c = (const unsigned char *)p;
    return c >= hs->arena && c + n <= hs->arena + hs->arena_cap;
}

/* --- the collectives, performed by the scheduler over the lanes of mask m ------------------- */

void do_shfl(fiber **w, unsigned m) {
    for (int l = 0; l < 32; l++) {
        if (!((m >> l) & 1u)) continue;
        shfl_rec *r = (shfl_rec *)w[l]->c_rec;
        int width = r->width, base = l & ~(width - 1), src = l;
        if (width < 1 || width > 32 || (width & (width - 1))) {
            fail("__shfl width %d is not a power of two in [1, 32] (%s)", width, thread_name(w[l]).c_str());
            return;
        }
        if (r->kind == SHFL_IDX) src = base + (r->arg & (width - 1));
        else if (r->kind == SHFL_UP) src = l - r->arg >= base ? l - r->arg : l;
        else if (r->kind == SHFL_DOWN) src = l + r->arg < base + width ? l + r->arg : l;
        else src = (l ^ r->arg) < base + width && (l ^ r->arg) >= base ? l ^ r->arg : l;
        if (!((m >> src) & 1u)) {
            fail("__shfl_sync by %s reads lane %d, which is not in the mask 0x%08x", thread_name(w[l]).c_str(), src, m);
            return;
        }
        r->out = ((shfl_rec *)w[src]->c_rec)->v;
    }
}

void do_vote(fiber **w, unsigned m) {
    unsigned b = 0;
    for (int l = 0; l < 32; l++)
        if (((m >> l) & 1u) && ((vote_rec *)w[l]->c_rec)->pred) b |= 1u << l;
    for (int l = 0; l < 32; l++)
        if ((m >> l) & 1u) ((vote_rec *)w[l]->c_rec)->out = b;
}

/* mma.sync.aligned.m16n8k16.row.col.f32.{f16,bf16}.{f16,bf16}.f32, lane l: g = l/4, t = l%4
 *   A 16×16: a0 = A[g][2t..2t+1]  a1 = A[g+8][2t..2t+1]  a2 = A[g][2t+8..]  a3 = A[g+8][2t+8..]
 *   B 16×8:  b0 = B[2t..2t+1][g]  b1 = B[2t+8..2t+9][g]
 *   C,D 16×8: c0,c1 = C[g][2t..2t+1]  c2,c3 = C[g+8][2t..2t+1]      (lower half = lower index) */
void do_mma(fiber **w, unsigned m) {
    if (m != 0xffffffffu) {
        fail("mma.sync needs all 32 lanes (mask 0x%08x)", m);
        return;
    }
    float A[16][16], B[16][8], C[16][8];
    int bf16 = ((mma_rec *)w[0]->c_rec)->bf16;
    for (int l = 0; l < 32; l++) {
        mma_rec *r = (mma_rec *)w[l]->c_rec;
        if (r->bf16 != bf16) {
            fail("mma.sync lanes disagree on the operand type");
            return;
        }
        int g = l >> 2, t = l & 3;
        for (int h = 0; h < 2; h++) {
            A[g][2 * t + h] = b16_to_f(lane_bf16(r->a[0], h), bf16);
            A[g + 8][2 * t + h] = b16_to_f(lane_bf16(r->a[1], h), bf16);
            A[g][2 * t + 8 + h] = b16_to_f(lane_bf16(r->a[2], h), bf16);
            A[g + 8][2 * t + 8 + h] = b16_to_f(lane_bf16(r->a[3], h), bf16);
            B[2 * t + h][g] = b16_to_f(lane_bf16(r->b[0], h), bf16);
            B[2 * t + 8 + h][g] = b16_to_f(lane_bf16(r->b[1], h), bf16);
            C[g][2 * t + h] = r->c[h];
            C[g + 8][2 * t + h] = r->c[2 + h];
        }
    }
    float D[16][8];
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            float s = C[i][j];
            for (int k = 0; k < 16; k++) s += A[i][k] * B[k][j]; /* products exact in f32 */
            D[i][j] = s;
        }
    for (int l = 0; l < 32; l++) {
        mma_rec *r = (mma_rec *)w[l]->c_rec;
        int g = l >> 2, t = l & 3;
        r->d[0] = D[g][2 * t];
        r->d[1] = D[g][2 * t + 1];
        r->d[2] = D[g + 8][2 * t];
        r->d[3] = D[g + 8][2 * t + 1];
    }
}

/* ldmatrix.sync.aligned.m8n8.x{1,2,4}[.trans].shared.b16: row r of matrix i comes from the
 * address of lane 8i + r (16 bytes, 16-byte aligned, shared). Lane l receives in register i:
 * M_i[l/4][2(l%4)], M_i[l/4][2(l%4)+1]   (.trans: M_i[2(l%4)][l/4], M_i[2(l%4)+1][l/4]). */
void do_ldsm(fiber **w, unsigned m) {
    if (m != 0xffffffffu) {
        fail("ldmatrix needs all 32 lanes (mask 0x%08x)", m);
        return;
    }
    ldsm_rec *r0 = (ldsm_rec *)w[0]->c_rec;
    int n = r0->n, trans = r0->trans;
    uint16_t M[4][8][8];
    for (int i = 0; i < n; i++)
        for (int row = 0; row < 8; row++) {
            fiber *src = w[8 * i + row];
            ldsm_rec *r = (ldsm_rec *)src->c_rec;
            if (r->n != n || r->trans != trans) {
                fail("ldmatrix lanes disagree on .x%d / .trans", n);
                return;
            }
            if (!in_shared(r->addr, 16) || ((uintptr_t)(r->addr - hs->arena) & 15)) {
                fail("ldmatrix row address of %s is not a 16-byte aligned shared-memory address (offset %td)",
                     thread_name(src).c_str(), (ptrdiff_t)(r->addr - hs->arena));
                return;
            }
            if (r->addr + 16 > hs->arena + std::max(hs->static_top, hs->dyn)) {
                fail("ldmatrix row address of %s reads past the block's shared memory (offset %td of %zu bytes)",
                     thread_name(src).c_str(), (ptrdiff_t)(r->addr - hs->arena), std::max(hs->static_top, hs->dyn));
                return;
            }
            race_access(r->addr, 16, 0, src->tc.linear);
            memcpy(M[i][row], r->addr, 16);
        }
    for (int l = 0; l < 32; l++) {
        ldsm_rec *r = (ldsm_rec *)w[l]->c_rec;
        int a = l >> 2, b = 2 * (l & 3);
        for (int i = 0; i < n; i++) {
            uint16_t lo = trans ? M[i][b][a] : M[i][a][b], hi = trans ? M[i][b + 1][a] : M[i][a][b + 1];
            r->r[i] = (uint32_t)lo | ((uint32_t)hi << 16);
        }
    }
}

/* Tries to complete one collective of warp w; 1 when one was performed. */
int resolve_one(fiber **w, int n_lanes) {
    for (int l = 0; l < n_lanes; l++) {
        fiber *f = w[l];
        if (f->state != ST_WARP) continue;
        unsigned m = f->c_mask;
        bool ready = true;
        for (int k = 0; k < 32 && ready; k++) {
            if (!((m >> k) & 1u)) continue;
            if (k >= n_lanes) {
                fail("%s by %s names lane %d, which does not exist (block of %d threads)", kind_name[f->c_kind],
                     thread_name(f).c_str(), k, hs->n_threads);
                return 0;
            }
            fiber *o = w[k];
            if (o->state != ST_WARP || o->c_kind != f->c_kind || o->c_mask != m) ready = false;
        }
        if (!ready) continue;
        switch (f->c_kind) {
        case C_SHFL: {
            shfl_rec *r = (shfl_rec *)f->c_rec;
            for (int k = 0; k < 32; k++)
                if (((m >> k) & 1u) &&
                    (((shfl_rec *)w[k]->c_rec)->kind != r->kind || ((shfl_rec *)w[k]->c_rec)->width != r->width)) {
                    fail("lanes of one __shfl_*_sync disagree on its kind or width");
                    return 0;
                }
            do_shfl(w, m);
            break;
        }
        case C_VOTE: do_vote(w, m); break;
        case C_SYNCWARP: break;
        case C_MMA: do_mma(w, m); break;
        case C_LDSM: do_ldsm(w, m); break;
        }
        if (hs->failed) return 0;
        for (int k = 0; k < 32; k++)
            if ((m >> k) & 1u) w[k]->state = ST_RUN;
        return 1;
    }
    return 0;
}

bool run_warp(int warp) {
    int first = warp * 32, n_lanes = std::min(32, hs->n_threads - first);
    fiber **w = &hs->fibers[first];
    for (;;) {
        for (int l = 0; l < n_lanes; l++)
            while (w[l]->state == ST_RUN) {
                resume(w[l]);
                if (hs->failed) return false;
            }
        if (!resolve_one(w, n_lanes)) return !hs->failed;
    }
}

uint64_t mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

std::string deadlock_message() {
    for (int i = 0; i < hs->n_threads; i++) {
        fiber *f = hs->fibers[i];
        if (f->state != ST_WARP) continue;
        fiber **w = &hs->fibers[f->tc.warp * 32];
        int n_lanes = std::min(32, hs->n_threads - f->tc.warp * 32);
        for (int k = 0; k < n_lanes; k++) {
            if (!((f->c_mask >> k) & 1u)) continue;
            fiber *o = w[k];
            if (o->state != ST_WARP || o->c_kind != f->c_kind || o->c_mask != f->c_mask)
                return "deadlock: " + thread_name(f) + " waits in " + kind_name[f->c_kind] + " for " + thread_name(o) +
                       ", which is " +
                       (o->state == ST_WARP ? std::string("in another collective: ") + kind_name[o->c_kind]
                                            : std::string(state_name[o->state]));
        }
    }
    return "deadlock";
}

bool run_block(uint64_t seed) {
    int n = hs->n_threads, n_warps = (n + 31) / 32;
    for (int i = 0; i < n; i++) {
        fiber *f = hs->fibers[i];
        const dim3 &d = hs->L->block;
        f->tc.idx.x = (unsigned)i % d.x;
        f->tc.idx.y = ((unsigned)i / d.x) % d.y;
        f->tc.idx.z = (unsigned)i / (d.x * d.y);
        f->tc.linear = i;
        f->tc.lane = i & 31;
        f->tc.warp = i >> 5;
        f->state = ST_RUN;
        fiber_reset(f);
    }
    std::vector<int> order((size_t)n_warps);
    for (int i = 0; i < n_warps; i++) order[(size_t)i] = i;
    uint64_t rs = seed;
    for (;;) {
        for (int i = n_warps - 1; i > 0; i--) { /* this barrier interval's warp order */
            rs = mix(rs);
            std::swap(order[(size_t)i], order[(size_t)(rs % (uint64_t)(i + 1))]);
        }
        for (int w : order)
            if (!run_warp(w)) return false;
        int n_done = 0, n_bar = 0;
        for (int i = 0; i < n; i++) {
            n_done += hs->fibers[i]->state == ST_DONE;
            n_bar += hs->fibers[i]->state == ST_BAR;
        }
        if (n_done == n) return true;
        if (n_done + n_bar == n) { /* every live thread is at the barrier */
            for (int i = 0; i < n; i++)
                if (hs->fibers[i]->state == ST_BAR) hs->fibers[i]->state = ST_RUN;
            race_barrier();
            continue;
        }
        fail("%s", deadlock_message().c_str());
        return false;
    }
}

void arena_fill_garbage(size_t from, size_t to) {
    if (to > from) memset(hs->arena + from, 0xff, to - from); /* NaN in f32, bf16 and f16 */
}

} /* namespace */

cudaError_t run_kernel(const launch_rec &L) {
    if (!hs) {
        hs_owner.armed = 1; /* first use constructs it in this thread: it frees hs at thread exit */
        hs = new host_sched();
        hs->arena_cap = 256u << 10;
        hs->arena = (unsigned char *)aligned_alloc(128, hs->arena_cap);
        if (!hs->arena) return cudaErrorMemoryAllocation;
        __asm__ volatile("stmxcsr %0" : "=m"(hs->fp_csr[0]));
        uint16_t cw;
        __asm__ volatile("fnstcw %0" : "=m"(cw));
        hs->fp_csr[1] = cw;
    }
    if (hs->cur) {
        report("kernel %s launched from inside a kernel", L.name.c_str());
        return cudaErrorLaunchFailure;
    }
    int n = (int)(L.block.x * L.block.y * L.block.z);
    while ((int)hs->fibers.size() < n) {
        fiber *f = fiber_new();
        if (!f) return cudaErrorMemoryAllocation;
        hs->fibers.push_back(f);
    }
    hs->L = &L;
    hs->n_threads = n;
    hs->dyn = L.smem;
    hs->static_top = (L.smem + 15) & ~(size_t)15;
    hs->statics.clear();
    hs->failed = false;
    hs->why.clear();
    long races0 = race_count();
    block_ctx blk;
    blk.dim = L.block;
    blk.grid = L.grid;
    b_cur = &blk;
    bool ok = true;
    for (unsigned z = 0; ok && z < L.grid.z; z++)
        for (unsigned y = 0; ok && y < L.grid.y; y++)
            for (unsigned x = 0; ok && x < L.grid.x; x++) {
                blk.idx.x = x;
                blk.idx.y = y;
                blk.idx.z = z;
                hs->blk = blk;
#ifdef G4EMU_ASAN
                ASAN_POISON_MEMORY_REGION(hs->arena, hs->arena_cap);
                ASAN_UNPOISON_MEMORY_REGION(hs->arena, hs->static_top);
#endif
                arena_fill_garbage(0, hs->static_top);
                race_begin_block(race_scope{L.name.c_str(), blk.idx, hs->arena, hs->arena_cap});
                ok = run_block(mix(L.seed ^ mix(((uint64_t)z << 42) ^ ((uint64_t)y << 21) ^ x)));
                race_end_block();
            }
    b_cur = nullptr;
#ifdef G4EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(hs->arena, hs->arena_cap);
#endif
    if (!ok) {
        report("kernel %s, block (%u,%u,%u): %s", L.name.c_str(), blk.idx.x, blk.idx.y, blk.idx.z, hs->why.c_str());
        return cudaErrorLaunchFailure;
    }
    if (race_count() > races0) return cudaErrorLaunchFailure;
    return cudaSuccess;
}

/* --- device functions (called by kernel code inside a fiber) --------------------------------- */

void syncthreads() {
    fiber *f = me();
    f->state = ST_BAR;
    to_sched(f);
    if (hs->failed) fault_here();
}

void syncwarp(unsigned mask) { collective(C_SYNCWARP, mask, nullptr); }

uint64_t shfl(unsigned mask, uint64_t v, int kind, int arg, int width) {
    shfl_rec r = {v, 0, kind, arg, width};
    collective(C_SHFL, mask, &r);
    return r.out;
}

unsigned vote_ballot(unsigned mask, int pred) {
    vote_rec r = {pred, 0};
    collective(C_VOTE, mask, &r);
    return r.out;
}

unsigned activemask() {
    fiber *f = me();
    unsigned m = 0;
    int first = f->tc.warp * 32, n_lanes = std::min(32, hs->n_threads - first);
    for (int l = 0; l < n_lanes; l++)
        if (hs->fibers[(size_t)(first + l)]->state != ST_DONE) m |= 1u << l;
    return m;
}

void mma_m16n8k16(float d[4], const uint32_t a[4], const uint32_t b[2], const float c[4], int bf16) {
    float out[4];
    mma_rec r = {a, b, c, out, bf16};
    collective(C_MMA, 0xffffffffu, &r);
    memcpy(d, out, sizeof out);
}

void ldmatrix(uint32_t *r, int n_mat, int trans, const void *row_addr) {
    if (n_mat != 1 && n_mat != 2 && n_mat != 4) {
        fail("ldmatrix .x%d", n_mat);
        fault_here();
    }
    uint32_t out[4];
    ldsm_rec rec = {out, n_mat, trans, (const unsigned char *)row_addr};
    collective(C_LDSM, 0xffffffffu, &rec);
    memcpy(r, out, sizeof(uint32_t) * (size_t)n_mat);
}

void cp_async(void *dst, const void *src, int bytes, int src_bytes) {
    fiber *f = me();
    if (bytes != 4 && bytes != 8 && bytes != 16) fail("cp.async of %d bytes (4, 8 or 16)", bytes);
    else if (src_bytes < 0 || src_bytes > bytes) fail("cp.async src-size %d of %d bytes", src_bytes, bytes);
    else if (!in_shared(dst, (size_t)bytes) || ((uintptr_t)((unsigned char *)dst - hs->arena) % (uintptr_t)bytes))
        fail("cp.async destination of %s is not a %d-byte aligned shared-memory address", thread_name(f).c_str(),
             bytes);
    else if ((uintptr_t)src % (uintptr_t)bytes)
        fail("cp.async source %p of %s is not %d-byte aligned", src, thread_name(f).c_str(), bytes);
    if (hs->failed) fault_here();
    f->cp_open.push_back(cp_req{dst, src, bytes, src_bytes});
}

void cp_async_commit() {
    fiber *f = me();
    f->cp_groups.push_back(std::move(f->cp_open));
    f->cp_open.clear();
}

/* The copies land when a wait retires their group (not before): a reader that skipped the wait
 * or the barrier after it sees the old contents. */
void cp_async_wait(int n_pending) {
    fiber *f = me();
    while ((int)f->cp_groups.size() > n_pending) {
        for (const cp_req &c : f->cp_groups.front()) {
            memcpy(c.dst, c.src, (size_t)c.src_bytes);
            memset((char *)c.dst + c.src_bytes, 0, (size_t)(c.bytes - c.src_bytes));
            race_access(c.dst, (size_t)c.bytes, 1, f->tc.linear);
        }
        f->cp_groups.erase(f->cp_groups.begin());
    }
}

void *shared_dynamic() {
    me();
    return hs->arena;
}

void *shared_static(const void *key, size_t bytes, size_t align) {
    me();
    for (const auto &e : hs->statics)
        if (e.first == key) return hs->arena + e.second;
    size_t off = (hs->static_top + align - 1) & ~(align - 1), stat = off + bytes - ((hs->dyn + 15) & ~(size_t)15);
    if (stat > 48u * 1024u || off + bytes > (size_t)tgt().smem_optin) {
        fail("shared memory of %s: %zu static + %zu dynamic bytes exceed the device's limits (48 KB static, %d "
             "per block)",
             hs->L->name.c_str(), stat, hs->dyn, tgt().smem_optin);
        fault_here();
    }
    hs->statics.push_back({key, off});
#ifdef G4EMU_ASAN
    ASAN_UNPOISON_MEMORY_REGION(hs->arena + off, bytes);
#endif
    arena_fill_garbage(off, off + bytes);
    hs->static_top = off + bytes;
    return hs->arena + off;
}

size_t cvta_shared(const void *p) {
    me();
    if (!in_shared(p, 1)) {
        fail("__cvta_generic_to_shared(%p) by %s: not a shared-memory address", p, thread_name(hs->cur).c_str());
        fault_here();
    }
    return (size_t)((const unsigned char *)p - hs->arena);
}

/* Atomics: one host thread runs a device's kernels and blocks run one at a time, so plain
 * read-modify-writes are atomic here; __atomic keeps them so across host threads too. */
float atomic_add_f32(float *p, float v) {
    float old = *p;
    *p = old + v;
    return old;
}
int atomic_add_i32(int *p, int v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
unsigned atomic_add_u32(unsigned *p, unsigned v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
unsigned long long atomic_add_u64(unsigned long long *p, unsigned long long v) {
    return __atomic_fetch_add(p, v, __ATOMIC_RELAXED);
}
int atomic_max_i32(int *p, int v) {
    int old = *p;
    if (v > old) *p = v;
    return old;
}
int atomic_min_i32(int *p, int v) {
    int old = *p;
    if (v < old) *p = v;
    return old;
}
unsigned atomic_max_u32(unsigned *p, unsigned v) {
    unsigned old = *p;
    if (v > old) *p = v;
    return old;
}
int atomic_cas_i32(int *p, int cmp, int v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}
unsigned atomic_cas_u32(unsigned *p, unsigned cmp, unsigned v) {
    __atomic_compare_exchange_n(p, &cmp, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    return cmp;
}
int atomic_exch_i32(int *p, int v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
unsigned atomic_or_u32(unsigned *p, unsigned v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }
float atomic_max_f32(float *p, float v) {
    float old = *p;
    if (v > old) *p = v;
    return old;
}

} /* namespace g4emu */
