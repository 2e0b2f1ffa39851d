/*
 * The embedded PostgreSQL: a cluster under $CAMPAIGND_DATA_DIR/pg that
 * campaignd creates (initdb), starts listening only on a Unix socket in
 * $CAMPAIGND_DATA_DIR/run, reuses across runs and stops on shutdown.
 */
#ifndef CD_PGEMBED_H
#define CD_PGEMBED_H

#include <sys/types.h>

#include "core/common.h"

#define PGEMBED_SUPERUSER "campaignd"
#define PGEMBED_DBNAME    "campaignd"
#define PGEMBED_PORT      5432

typedef struct pgembed {
    char data_dir[1024]; /* absolute campaignd data dir */
    char pgdata[1100];   /* data_dir/pg */
    char sockdir[1100];  /* data_dir/run */
    char bindir[512];    /* where initdb and postgres live */
    pid_t pid;           /* the postmaster's pid */
    bool owned;          /* true: pgembed_stop stops it (we started it, or adopted it to own) */
    int users_fd;        /* data_dir/campaignd.lock, held shared while this process uses it */
    int sup_fd;          /* data_dir/supervisor.lock, held exclusive by the supervising process */
} pgembed_t;

/* Makes sure the cluster exists and a postmaster is running on it: adopts one
 * that is already running (another campaignd, a CLI command), otherwise starts
 * one. Returns false after logging what went wrong and what to do. */
CD_MUSTCHECK bool pgembed_start(pgembed_t *pg, const char *data_dir);
/* The owner's libpq connection string (superuser, over the socket). */
void pgembed_conninfo(const pgembed_t *pg, const char *user, char *out, size_t outlen);
/* A postgresql:// URL psql accepts, for `campaignd db-url`. */
void pgembed_url(const pgembed_t *pg, char *out, size_t outlen);
/* Supervises the postmaster of an owned cluster (campaignd serve): a thread
 * checks twice a second that it runs and, when it has died (kill -9, OOM
 * killer, a crash), starts it again with back-off (0.5 s doubling to 10 s) and
 * a log line. A clean shutdown (pg_ctl stop) is left alone until someone starts
 * the cluster again, which is then adopted. PostgreSQL's crash recovery replays the WAL, so no
 * committed transaction is lost. Worker connections reconnect by themselves, and requests get 503
 * with Retry-After meanwhile. Does nothing for a cluster not owned. pgembed_stop stops the
 * supervisor first. */
CD_MUSTCHECK bool pgembed_supervise(pgembed_t *pg);
/* Stops the supervisor, then the postmaster if owned (fast shutdown) and no
 * other campaignd process uses the cluster, and waits for it to exit. Every
 * process that opened the cluster holds a shared lock on
 * data_dir/campaignd.lock; the last one to stop is the one that may stop it.
 * Of several `serve` processes on one data directory, one supervises at a
 * time (an exclusive lock on data_dir/supervisor.lock); when it stops,
 * another takes over within a second. */
void pgembed_stop(pgembed_t *pg);

#endif
