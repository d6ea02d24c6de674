// The host executor's scheduler: every CUDA thread of a block is a fiber with its own small
// stack (mmap'd, a PROT_NONE guard page below it), switched by a hand-written x86-64 context
// switch. __syncthreads() switches back here; the scheduler runs every live thread of the block
// to its next barrier or to its end, then opens the barrier. A divergent barrier (some threads
// returned while others wait, or threads waiting at different __syncthreads) is an error that
// names kernel and block (adv_last_error), never an abort. Blocks of a launch run one after
// another; block and thread order: natural, reversed, or shuffled with a seed (adv_set_order).
//
// Compiled WITHOUT -fsanitize (its bookkeeping is not the kernels' memory traffic), with
// ADV_ASAN / ADV_TSAN to announce the fiber switches to the sanitizer runtimes:
//  - ASan: __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber around each switch.
//  - TSan: each CUDA thread is its own TSan fiber (a fresh one per block), switched with
//    no_sync, so the only happens-before edges are CUDA's: host -> block start, barrier
//    arrivals -> departures, block end -> host (at the end of the launch).
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#if defined(ADV_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(ADV_TSAN)
#include <sanitizer/tsan_interface.h>
// The __shared__ arrays (cuda_host.h puts them into this section under TSan).
extern "C" char __start_adv_shared[] __attribute__((weak));
extern "C" char __stop_adv_shared[] __attribute__((weak));
#endif

#include "cuda_host.h"

#ifndef __x86_64__
#error "the host executor's context switch is written for x86-64"
#endif

#ifndef ADV_STACK_SIZE
#if defined(ADV_ASAN) || defined(ADV_TSAN)
#define ADV_STACK_SIZE (256 * 1024)
#else
#define ADV_STACK_SIZE (64 * 1024)
#endif
#endif

extern "C" {
__thread AdvCtx adv_ctx __attribute__((tls_model("initial-exec")));
}

// ---- context switch ---------------------------------------------------------------------------
// adv_switch(save, to): push the callee-saved registers, store rsp in *save, load `to`, pop,
// ret. A new fiber's stack is laid out so that the first switch "returns" into
// adv_fiber_start with r12 = the Fiber* and r13 = the entry function.
extern "C" void adv_switch(void** save, void* to);
extern "C" void adv_fiber_start();
asm(R"(
    .text
    .globl adv_switch
    .hidden adv_switch
    .type adv_switch, @function
adv_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size adv_switch, .-adv_switch

    .globl adv_fiber_start
    .hidden adv_fiber_start
    .type adv_fiber_start, @function
adv_fiber_start:
    movq %r12, %rdi
    xorl %ebp, %ebp
    callq *%r13
    ud2
    .size adv_fiber_start, .-adv_fiber_start
)");

namespace {

enum State { NEW, READY, BARRIER, DONE };
enum Order { NATURAL = 0, REVERSED = 1, SHUFFLED = 2 };
enum Rc { OK = 0, E_CONFIG = 1, E_DIVERGENT = 2, E_NESTED = 3, E_NOMEM = 4 };

struct Stack {
    char* map;    // the mapping, guard page first
    char* lo;     // the lowest usable byte
    size_t size;  // usable bytes
};

struct Fiber {
    void* sp;
    Stack* stack;
    uint3 tid;
    State state;
    const char* file;
    int line;
    void* tsan;
    void* asan_fake;
};

std::mutex g_mu;
std::vector<Stack*> g_free;      // stacks not in use (reused across threads, blocks, launches)
std::vector<Fiber> g_fibers;     // the threads of the running block
std::vector<unsigned> g_perm;    // the order they run in
void* g_sched_sp;                // the scheduler's saved stack pointer while a fiber runs
Fiber* g_cur;                    // the running fiber (null: the scheduler)
const AdvKernel* g_kernel;
void** g_args;
unsigned g_gen;                  // barrier generation of the running block
int g_order = NATURAL;
uint64_t g_rng = 0;
thread_local std::string g_err;

#if defined(ADV_ASAN)
const void* g_main_bottom;
size_t g_main_size;
void* g_sched_fake;
#endif
#if defined(ADV_TSAN)
void* g_host_fiber;
char g_launch_sync, g_end_sync, g_bar[2];
// TSan fibers are costly to create (~0.5 ms each) and never freed: a pool, reused. Block b's
// thread i is pool[(b % 2) * blockDim + i]: a reused fiber carries happens-before from its
// earlier blocks, so races between blocks of the same parity can hide; any race between two
// consecutive blocks shows.
// Each pool fiber has its own stack too: a stack reused by another TSan fiber would show its
// locals as racing with the previous user's.
std::vector<void*> g_tsan_pool;
std::vector<Stack*> g_tsan_stacks;
uint64_t g_block_seq;
#endif

uint64_t splitmix() {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void order(std::vector<unsigned>& v, size_t n) {
    v.resize(n);
    for (size_t i = 0; i < n; ++i) v[i] = (unsigned)(g_order == REVERSED ? n - 1 - i : i);
    if (g_order == SHUFFLED)
        for (size_t i = n; i > 1; --i) std::swap(v[i - 1], v[splitmix() % i]);
}

Stack* get_stack() {
    if (!g_free.empty()) {
        Stack* s = g_free.back();
        g_free.pop_back();
        return s;
    }
    long page = sysconf(_SC_PAGESIZE);
    size_t total = ADV_STACK_SIZE + (size_t)page;
    void* m = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    if (m == MAP_FAILED) return nullptr;
    if (mprotect(m, (size_t)page, PROT_NONE) != 0) {
        munmap(m, total);
        return nullptr;
    }
    Stack* s = new Stack{(char*)m, (char*)m + page, ADV_STACK_SIZE};
    return s;
}

void put_stack(Fiber* f) {
#if !defined(ADV_TSAN)
    if (f->stack) g_free.push_back(f->stack);
#endif
    f->stack = nullptr;
}

// Switch from fiber f back to the scheduler (final: f has ended and never resumes).
inline void to_scheduler(Fiber* f, bool final) {
#if defined(ADV_ASAN)
    __sanitizer_start_switch_fiber(final ? nullptr : &f->asan_fake, g_main_bottom, g_main_size);
#endif
#if defined(ADV_TSAN)
    __tsan_switch_to_fiber(g_host_fiber, __tsan_switch_to_fiber_no_sync);
#endif
    (void)final;
    adv_switch(&f->sp, g_sched_sp);
#if defined(ADV_ASAN)
    __sanitizer_finish_switch_fiber(f->asan_fake, &g_main_bottom, &g_main_size);
#endif
}

#if defined(ADV_TSAN)
// A block's shared memory is fresh: map the pages of the adv_shared section anew (TSan's mmap
// interceptor resets their shadow: no race with the previous block's threads, which used the
// same static storage). Other data sharing the section's first or last page is saved and put
// back; only locals are used here, since the scheduler's own globals may lie in those pages.
void fresh_shared() {
    char* s = __start_adv_shared;
    char* e = __stop_adv_shared;
    if (!s || e <= s) return;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    char* lo = (char*)((uintptr_t)s & ~(page - 1));
    char* hi = (char*)(((uintptr_t)e + page - 1) & ~(page - 1));
    const size_t nhead = (size_t)(s - lo), ntail = (size_t)(hi - e);
    char* saved = (char*)std::malloc(nhead + ntail + 1);
    if (!saved) return;
    std::memcpy(saved, lo, nhead);
    std::memcpy(saved + nhead, e, ntail);
    void* m = mmap(lo, (size_t)(hi - lo), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                   -1, 0);
    if (m == MAP_FAILED) std::abort();  // the library's data is gone: nothing sane to do
    std::memcpy(lo, saved, nhead);
    std::memcpy(e, saved + nhead, ntail);
    std::free(saved);
}
#endif

extern "C" void adv_fiber_main(Fiber* f) {
#if defined(ADV_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &g_main_bottom, &g_main_size);
#endif
#if defined(ADV_TSAN)
    __tsan_acquire(&g_launch_sync);  // host -> block start
#endif
    g_kernel->thunk(g_args);
#if defined(ADV_TSAN)
    __tsan_release(&g_end_sync);     // block end -> host (acquired at the end of the launch)
#endif
    f->state = DONE;
    to_scheduler(f, true);
    __builtin_unreachable();
}

// Run fiber f until it reaches a barrier or its end.
bool resume(Fiber* f) {
    if (f->state == NEW) {
#if defined(ADV_TSAN)
        const size_t n = g_fibers.size(), i = (size_t)(f - g_fibers.data());
        const size_t slot = (size_t)(g_block_seq & 1) * n + i;
        if (g_tsan_pool.size() < 2 * n) {
            g_tsan_pool.resize(2 * n, nullptr);
            g_tsan_stacks.resize(2 * n, nullptr);
        }
        if (!g_tsan_stacks[slot]) g_tsan_stacks[slot] = get_stack();
        f->stack = g_tsan_stacks[slot];
#else
        f->stack = get_stack();
#endif
        if (!f->stack) return false;
#if defined(ADV_ASAN)
        __asan_unpoison_memory_region(f->stack->lo, f->stack->size);  // an abandoned fiber's frames
#endif
        uintptr_t top = ((uintptr_t)(f->stack->lo + f->stack->size)) & ~(uintptr_t)15;
        void** sp = (void**)top;
        *--sp = (void*)&adv_fiber_start;  // ret target
        *--sp = nullptr;                  // rbp
        *--sp = nullptr;                  // rbx
        *--sp = (void*)f;                 // r12
        *--sp = (void*)&adv_fiber_main;   // r13
        *--sp = nullptr;                  // r14
        *--sp = nullptr;                  // r15
        f->sp = sp;
#if defined(ADV_TSAN)
        if (!g_tsan_pool[slot]) g_tsan_pool[slot] = __tsan_create_fiber(0);
        f->tsan = g_tsan_pool[slot];
#endif
    }
    f->state = READY;
    adv_ctx.thread_idx = f->tid;
    g_cur = f;
#if defined(ADV_ASAN)
    __sanitizer_start_switch_fiber(&g_sched_fake, f->stack->lo, f->stack->size);
#endif
#if defined(ADV_TSAN)
    __tsan_switch_to_fiber(f->tsan, __tsan_switch_to_fiber_no_sync);
#endif
    adv_switch(&g_sched_sp, f->sp);
#if defined(ADV_ASAN)
    __sanitizer_finish_switch_fiber(g_sched_fake, nullptr, nullptr);
#endif
    g_cur = nullptr;
    if (f->state == DONE) {
        put_stack(f);
    }
    return true;
}

void abandon(std::vector<Fiber>& fibers) {
    for (Fiber& f : fibers) {
        put_stack(&f);
    }
}

std::string where(const AdvKernel* k) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "kernel %s, block (%u,%u,%u)", k->name, adv_ctx.block_idx.x,
                  adv_ctx.block_idx.y, adv_ctx.block_idx.z);
    return buf;
}

std::string tid_str(const uint3& t) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "(%u,%u,%u)", t.x, t.y, t.z);
    return buf;
}

std::string site_str(const Fiber& f) {
    const char* base = std::strrchr(f.file, '/');
    char buf[512];
    std::snprintf(buf, sizeof buf, "%s:%d", base ? base + 1 : f.file, f.line);
    return buf;
}

int run_block(const AdvKernel* k) {
    const uint3 bd = adv_ctx.block_dim;
    const size_t n = (size_t)bd.x * bd.y * bd.z;
    g_fibers.resize(n);
    for (size_t i = 0; i < n; ++i) {
        Fiber& f = g_fibers[i];
        f = Fiber{};
        f.tid = uint3{(unsigned)(i % bd.x), (unsigned)((i / bd.x) % bd.y), (unsigned)(i / ((size_t)bd.x * bd.y))};
        f.state = NEW;
    }
    g_gen = 0;
    order(g_perm, n);
    for (;;) {
        for (unsigned idx : g_perm) {
            Fiber* f = &g_fibers[idx];
            if (f->state == NEW || f->state == READY) {
                if (!resume(f)) {
                    abandon(g_fibers);
                    g_err = where(k) + ": out of memory for a fiber stack";
                    return E_NOMEM;
                }
            }
        }
        size_t waiting = 0, done = 0;
        const Fiber* first_wait = nullptr;
        const Fiber* first_done = nullptr;
        const Fiber* other_site = nullptr;
        for (const Fiber& f : g_fibers) {
            if (f.state == DONE) {
                ++done;
                if (!first_done) first_done = &f;
            } else {
                ++waiting;
                if (!first_wait) first_wait = &f;
                else if (!other_site && (f.line != first_wait->line || std::strcmp(f.file, first_wait->file) != 0))
                    other_site = &f;
            }
        }
        if (waiting == 0) return OK;
        if (done > 0 || other_site) {
            std::string msg = where(k) + ": divergent __syncthreads: ";
            if (done > 0) {
                msg += std::to_string(done) + " thread(s) returned (e.g. thread " + tid_str(first_done->tid) +
                       ") while " + std::to_string(waiting) + " wait at " + site_str(*first_wait) +
                       " (e.g. thread " + tid_str(first_wait->tid) + ")";
            } else {
                msg += "threads wait at different barriers: thread " + tid_str(first_wait->tid) + " at " +
                       site_str(*first_wait) + ", thread " + tid_str(other_site->tid) + " at " +
                       site_str(*other_site);
            }
            msg += " (barrier " + std::to_string(g_gen) + ")";
            g_err = msg;
            abandon(g_fibers);
            return E_DIVERGENT;
        }
        ++g_gen;  // open the barrier
        for (Fiber& f : g_fibers) f.state = READY;
        if (g_order == SHUFFLED) order(g_perm, n);
    }
}

}  // namespace

extern "C" void adv_syncthreads(const char* file, int line) {
    Fiber* f = g_cur;
    if (!f) return;  // not inside a launch: nothing to wait for
    f->file = file;
    f->line = line;
    f->state = BARRIER;
#if defined(ADV_TSAN)
    // Two sync objects by generation parity: a thread released into generation g+1 while a
    // slower one has yet to acquire generation g must not be ordered before it.
    void* sync = &g_bar[g_gen & 1];
    __tsan_release(sync);  // arrival
#endif
    to_scheduler(f, false);
#if defined(ADV_TSAN)
    __tsan_acquire(sync);  // departure: after every arrival of this generation
#endif
}

extern "C" int adv_run(const AdvKernel* k, const unsigned* g3, const unsigned* b3, void** args) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_cur || g_kernel) {
        g_err = std::string("kernel ") + k->name + ": launched from inside a running kernel";
        return E_NESTED;
    }
    const uint64_t nthreads = (uint64_t)b3[0] * b3[1] * b3[2];
    if (!g3[0] || !g3[1] || !g3[2] || !b3[0] || !b3[1] || !b3[2] || nthreads > 1024 || b3[2] > 64 ||
        g3[1] > 65535 || g3[2] > 65535 || g3[0] > 0x7fffffffu) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "kernel %s: invalid launch configuration grid (%u,%u,%u) block (%u,%u,%u)",
                      k->name, g3[0], g3[1], g3[2], b3[0], b3[1], b3[2]);
        g_err = buf;
        return E_CONFIG;
    }
    adv_ctx.grid_dim = uint3{g3[0], g3[1], g3[2]};
    adv_ctx.block_dim = uint3{b3[0], b3[1], b3[2]};
    g_kernel = k;
    g_args = args;
#if defined(ADV_TSAN)
    g_host_fiber = __tsan_get_current_fiber();
    __tsan_release(&g_launch_sync);
#endif
    const uint64_t nblocks = (uint64_t)g3[0] * g3[1] * g3[2];
    static std::vector<unsigned> blocks;
    int rc = OK;
    if (nblocks > 0xffffffffull) {
        g_err = std::string("kernel ") + k->name + ": too many blocks for the host executor";
        rc = E_CONFIG;
    } else {
        order(blocks, (size_t)nblocks);
        for (size_t bi = 0; bi < blocks.size() && rc == OK; ++bi) {
            uint64_t b = blocks[bi];
            adv_ctx.block_idx = uint3{(unsigned)(b % g3[0]), (unsigned)((b / g3[0]) % g3[1]),
                                      (unsigned)(b / ((uint64_t)g3[0] * g3[1]))};
#if defined(ADV_TSAN)
            fresh_shared();
            __tsan_release(&g_launch_sync);  // host (and the fresh mapping) -> this block
#endif
            rc = run_block(k);
#if defined(ADV_TSAN)
            ++g_block_seq;
#endif
        }
    }
#if defined(ADV_TSAN)
    __tsan_acquire(&g_end_sync);
#endif
    g_kernel = nullptr;
    g_args = nullptr;
    return rc;
}

extern "C" __attribute__((visibility("default"))) const char* adv_last_error(void) {
    return g_err.c_str();
}

// order: 0 natural, 1 reversed, 2 shuffled (with seed).
extern "C" __attribute__((visibility("default"))) void adv_set_order(int ord, unsigned long long seed) {
    std::lock_guard<std::mutex> lock(g_mu);
    g_order = ord;
    g_rng = seed;
}

// 0 plain, 1 ASan, 2 TSan: what this library was built for.
extern "C" __attribute__((visibility("default"))) int adv_sanitizer(void) {
#if defined(ADV_ASAN)
    return 1;
#elif defined(ADV_TSAN)
    return 2;
#else
    return 0;
#endif
}

extern "C" __attribute__((visibility("default"))) int adv_stack_size(void) { return ADV_STACK_SIZE; }
