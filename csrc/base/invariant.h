/* invariant.h — the assert vocabulary: checks of the code's own invariants, never of input.
 *
 * An invariant is something the code guarantees itself (a slot index inside its table, a
 * refcount that is never negative, a required op-table slot that is filled). When one is false
 * memory or state is already wrong, and going on would serve wrong tokens, so the process
 * stops: file:line, the condition and a message on stderr, then abort(). The checks stay on in
 * release builds (they are cheap and off the per-element paths).
 *
 * Input — a request, a checkpoint, a config, an option, anything a user or a file can get
 * wrong — is never checked with these: it is answered with an error value (base/error.h).
 *
 *   G4_INVARIANT(cond, "fmt", ...)   stop when cond is false
 *   G4_UNREACHABLE("fmt", ...)       a branch that cannot be taken
 *   _Static_assert / static_assert   what the compiler can check (layouts, table sizes)
 * Host code only (C and the host side of .cu files). */
#ifndef G4_BASE_INVARIANT_H
#define G4_BASE_INVARIANT_H

#ifdef __cplusplus
extern "C" {
#endif

/* Prints "file:line: invariant `cond` broken: message" to stderr and aborts. */
void g4_invariant_failed(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#ifdef __cplusplus
}
#endif

#define G4_INVARIANT(cond, ...)                                                   \
    do {                                                                          \
        if (!(cond)) g4_invariant_failed(__FILE__, __LINE__, #cond, __VA_ARGS__); \
    } while (0)

#define G4_UNREACHABLE(...) g4_invariant_failed(__FILE__, __LINE__, "unreachable", __VA_ARGS__)

#endif
