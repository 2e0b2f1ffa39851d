/*
 * Small definitions every module of campaignd shares: result annotations,
 * array sizes and the project's version string.
 */
#ifndef CD_COMMON_H
#define CD_COMMON_H

#include <stdbool.h>
#include <stddef.h>

/* Marks a fallible function whose result must be looked at (PgBouncer's _MUSTCHECK). */
#define CD_MUSTCHECK __attribute__((warn_unused_result))
/* printf-style format checking for our own variadic functions. */
#define CD_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

#define CD_ARRAY_LEN(a)      (sizeof(a) / sizeof((a)[0]))

#define CAMPAIGND_VERSION    "0.1.0"

#endif
