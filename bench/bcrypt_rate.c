/*
 * bcrypt_rate: how many bcrypt hashes per second this machine computes at a
 * given cost, on one thread and on several threads at once. It is the reference
 * of the password sign-in benchmark in bench/run.sh: a sign-in verifies one
 * bcrypt hash, so the machine's bcrypt rate is the ceiling of sign-ins per
 * second, whatever the server does around it.
 *
 * Usage: bcrypt_rate [cost [seconds [threads]]]   (defaults: 10, 3, online CPUs)
 * Prints one line per run:
 *   BCRYPT cost=10 threads=1 hashes=123 seconds=3.00 rate=41.0
 * Build: cc -std=c11 -O2 -Isrc bench/bcrypt_rate.c -o bcrypt_rate -lcrypt -lpthread
 */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/common.h"

#define BCRYPT_RATE_MAX_THREADS 256
#define BCRYPT_RATE_MAX_SECONDS 600

static const char bcrypt_rate_password[] = "correct horse battery staple";

typedef struct bcrypt_worker {
    pthread_t thread;
    const char *setting;  /* the $2b$ salt string, shared read-only */
    double deadline;      /* CLOCK_MONOTONIC seconds at which to stop */
    unsigned long hashes; /* hashes completed */
    bool failed;          /* crypt_r returned no $2b$ hash */
} bcrypt_worker_t;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Hashes the password with the worker's setting until its deadline. */
static void *bcrypt_worker_run(void *arg)
{
    bcrypt_worker_t *w = arg;
    /* struct crypt_data is about 32 KiB: keep it off the thread stack. */
    struct crypt_data *data = calloc(1, sizeof(*data));
    if (!data) {
        w->failed = true;
        return NULL;
    }
    while (now_seconds() < w->deadline) {
        const char *h = crypt_r(bcrypt_rate_password, w->setting, data);
        if (!h || strncmp(h, "$2b$", 4) != 0) {
            w->failed = true;
            break;
        }
        w->hashes++;
    }
    free(data);
    return NULL;
}

/* Parses a decimal integer in [min, max] from s into *out. */
CD_MUSTCHECK static bool parse_long(const char *s, long min, long max, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Runs `threads` workers for `seconds` and prints their combined rate.
 * Returns false if a thread could not start or a hash failed. */
CD_MUSTCHECK static bool measure(const char *setting, long cost, long seconds, long threads)
{
    bcrypt_worker_t *w = calloc((size_t)threads, sizeof(*w));
    if (!w)
        return false;
    bool ok = true;
    long started = 0;
    double t0 = now_seconds();
    for (long i = 0; i < threads; i++) {
        w[i].setting = setting;
        w[i].deadline = t0 + (double)seconds;
        if (pthread_create(&w[i].thread, NULL, bcrypt_worker_run, &w[i]) != 0) {
            ok = false;
            break;
        }
        started++;
    }
    unsigned long total = 0;
    for (long i = 0; i < started; i++) {
        pthread_join(w[i].thread, NULL);
        total += w[i].hashes;
        if (w[i].failed)
            ok = false;
    }
    double elapsed = now_seconds() - t0;
    if (ok && elapsed > 0)
        printf("BCRYPT cost=%ld threads=%ld hashes=%lu seconds=%.2f rate=%.1f\n", cost, threads,
               total, elapsed, (double)total / elapsed);
    free(w);
    return ok;
}

int main(int argc, char **argv)
{
    long cost = 10;
    long seconds = 3;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    long threads = ncpu > 0 ? ncpu : 1;
    if (threads > BCRYPT_RATE_MAX_THREADS)
        threads = BCRYPT_RATE_MAX_THREADS;
    if ((argc > 1 && !parse_long(argv[1], 4, 31, &cost)) ||
        (argc > 2 && !parse_long(argv[2], 1, BCRYPT_RATE_MAX_SECONDS, &seconds)) ||
        (argc > 3 && !parse_long(argv[3], 1, BCRYPT_RATE_MAX_THREADS, &threads)) || argc > 4) {
        fprintf(stderr, "usage: bcrypt_rate [cost 4-31 [seconds 1-%d [threads 1-%d]]]\n",
                BCRYPT_RATE_MAX_SECONDS, BCRYPT_RATE_MAX_THREADS);
        return 2;
    }

    char setting[CRYPT_GENSALT_OUTPUT_SIZE];
    if (!crypt_gensalt_rn("$2b$", (unsigned long)cost, NULL, 0, setting, (int)sizeof(setting))) {
        fprintf(stderr, "bcrypt_rate: crypt_gensalt_rn: %s\n", strerror(errno));
        return 1;
    }
    if (!measure(setting, cost, seconds, 1) ||
        (threads > 1 && !measure(setting, cost, seconds, threads))) {
        fprintf(stderr, "bcrypt_rate: hashing failed (no $2b$ support in libcrypt?)\n");
        return 1;
    }
    return 0;
}
