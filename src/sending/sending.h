/*
 * The send engine (issue 12): campaigns that actually go out. A campaign's
 * recipients are materialised once into email_messages / sms_messages
 * (consent and suppression applied, migrations/027_sending.sql), then worker
 * jobs on the job queue (src/jobs/queue.h) claim them in batches, render
 * them (template.h, compose.h) and hand them to the provider (provider.h)
 * at EMAIL_RATE_PER_SECOND / SMS_RATE_PER_SECOND. A message is marked
 * `sending` in a committed transaction before the provider sees it and `sent`
 * after, so a worker killed in between leaves it `sending`: once its lease
 * expires it becomes `unknown`, never resent. docs/sending.md is the user's
 * view; docs/architecture.md records the decisions.
 */
#ifndef CD_SENDING_H
#define CD_SENDING_H

#include "app.h"
#include "core/common.h"
#include "http/http.h"

/* Job kinds. */
#define SENDING_WORKER_KIND    "send.worker"
#define SENDING_SCHEDULER_KIND "send.scheduler"
#define SENDING_TEST_KIND      "send.test"
/* The roll-up into analytics_data: once when a campaign finishes, and
 * recurring every SEND_ROLLUP_INTERVAL seconds. */
#define SENDING_ROLLUP_KIND           "send.rollup"
#define SENDING_ROLLUP_RECURRING_KIND "send.rollup.recurring"

/* Registers the engine's job kinds with the queue (call before jobs_start). */
CD_MUSTCHECK bool sending_register_jobs(const app_t *app);

/* The engine's routes: /api/campaigns/:id/{send,pause,resume,cancel,test},
 * /api/templates/:id/preview (signed in), and the tracking and unsubscribe
 * routes /t/o/:token, /t/c/:token and /u/:token (no login: the signed token
 * is the authority). req->ctx is the app_t. */
extern const http_route_t sending_routes[];
extern const size_t sending_routes_len;

#endif
