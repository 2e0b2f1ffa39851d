/*
 * Durable outgoing mail: the `mail.send` kind of the job queue (queue.h).
 * A mail is a row of jobs.mail_outbox (migration 031) queued with its job in
 * one SQL call, jobs.queue_mail, so it commits with whatever asked for it;
 * the job's payload names the row ({"mail_id": n}) and never holds the
 * message. The handler marks the row 'sending' and commits before talking
 * SMTP (at most once: a process that dies mid-send leaves the row 'sending',
 * and the next claim records it as 'unknown' instead of sending it again),
 * retries temporary failures with the queue's back-off (MAIL_RETRY_DELAY,
 * MAIL_MAX_ATTEMPTS), records the final failure on the row, and the row's
 * message is scrubbed once final. docs/auth.md explains the choice.
 */
#ifndef CD_JOBS_MAIL_H
#define CD_JOBS_MAIL_H

#include <stddef.h>

#include "app.h"
#include "core/common.h"
#include "db/db.h"

#define MAIL_JOB_KIND "mail.send"

/* One mail to queue. Strings are UTF-8; html and the attachment may be NULL. */
typedef struct mail_item {
    const char *purpose; /* "auth" or "report" */
    const char *kind;    /* what it is: "signup", "recovery", "report.weekly", ... */
    const char *to;
    const char *subject;
    const char *text;
    const char *html;
    const char *attachment_name; /* file name, UTF-8 */
    const char *attachment_type; /* e.g. "text/csv" */
    const char *attachment;      /* bytes */
    size_t attachment_len;
} mail_item_t;

/* The statement that queues m with app's retry settings, for a caller's own
 * transaction: fills params (11 entries, pointing into m, bufs) and returns
 * the SQL (one row: the outbox id). The attachment goes as bytea hex into
 * *hex_out (malloc'd, caller frees; NULL without attachment). False when out
 * of memory. */
CD_MUSTCHECK bool mail_queue_stmt(const app_t *app, const mail_item_t *m, const char *params[11],
                                  char attempts_buf[16], char delay_buf[24], char **hex_out,
                                  db_stmt_t *out);

/* Queues m in a transaction of its own as service_role, on the calling
 * thread's connection. False (and logged, without the message) on failure. */
CD_MUSTCHECK bool mail_queue(const app_t *app, const mail_item_t *m);

/* Registers the mail.send handler. Call before jobs_start(). */
CD_MUSTCHECK bool mail_register_jobs(void);

#endif
