/*
 * Logging: one line per event on stderr, with a level and a UTC timestamp.
 * Thread-safe (each line is written with a single write).
 */
#ifndef CD_LOG_H
#define CD_LOG_H

#include "core/common.h"

typedef enum { LOG_LEVEL_DEBUG, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR } log_level_t;

/* Sets the lowest level that is printed (default info). */
void log_set_level(log_level_t level);
/* Parses "debug", "info", "warn" or "error"; returns false for anything else. */
CD_MUSTCHECK bool log_parse_level(const char *s, log_level_t *out);
void log_write(log_level_t level, const char *fmt, ...) CD_PRINTF(2, 3);

#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_write(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_write(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
