/*
 * Small definitions every module of campaignd shares: result annotations,
 * array sizes and the project's version string.
 */
#ifndef CD_COMMON_H
#define CD_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/* Marks a fallible function whose result must be looked at (PgBouncer's _MUSTCHECK). */
#define CD_MUSTCHECK __attribute__((warn_unused_result))
/* printf-style format checking for our own variadic functions. */
#define CD_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

#define CD_ARRAY_LEN(a)      (sizeof(a) / sizeof((a)[0]))

/* CD_ASSERT(cond): an invariant of campaignd's own code (a slot count, a state
 * transition, a bound another function already enforced), never a check of
 * peer input: input gets a 4xx, not an abort. A broken invariant means memory
 * or state is already wrong, so the process logs where and aborts, in every
 * build: the checks are cheap, and continuing would turn a bug into a
 * security hole (PgBouncer's Assert, SQLite's ALWAYS/NEVER in debug builds).
 * cond is evaluated exactly once and must have no side effects. */
#define CD_ASSERT(cond) ((cond) ? (void)0 : cd_assert_fail(#cond, __FILE__, __LINE__, __func__))
/* Logs "assertion failed: expr at file:line (func)" and aborts. In core/log.c. */
_Noreturn void cd_assert_fail(const char *expr, const char *file, int line, const char *func);

/* Milliseconds on the monotonic clock: for deadlines and intervals, never
 * for dates. */
static inline long long cd_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define CAMPAIGND_VERSION "0.1.0"

#endif
