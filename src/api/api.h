/*
 * The specification's domain endpoints under /api: campaigns (with status
 * transitions and soft delete), analytics (records and aggregated series) and
 * campaign performance reports (generation and CSV/JSON export). Every
 * endpoint runs under the caller's role and JWT claims through db_run_as, so
 * PostgreSQL's row-level security decides what each caller may see and change.
 * docs/api.md describes every endpoint.
 */
#ifndef CD_API_H
#define CD_API_H

#include "app.h"
#include "core/buf.h"
#include "db/db.h"
#include "http/http.h"

/* The /api routes, for the server's routing table (src/server_routes.c).
 * Handlers expect req->ctx to be the app_t given to http_server_start. */
extern const http_route_t api_routes[];
extern const size_t api_routes_len;

/* ------------------------------------------- reports beyond one campaign */

/* Outcome of generating or exporting a report outside a request. */
typedef enum api_report_status {
    API_REPORT_OK = 0,
    API_REPORT_BAD_TYPE,    /* not period_summary, channel_comparison or audience */
    API_REPORT_DENIED,      /* the caller is neither an admin nor a user (role) */
    API_REPORT_NOT_FOUND,   /* no such report for this caller, or not a flat report */
    API_REPORT_TOO_LARGE,   /* the CSV does not fit the buffer */
    API_REPORT_UNAVAILABLE, /* the database is down */
    API_REPORT_DB_ERROR,    /* err says why */
} api_report_status_t;

/* The display title of a report type beyond campaign_performance
 * ("Period summary", ...), or NULL when type is not one. */
const char *api_report_type_title(const char *type);

/* Computes report `type` over the dates [from, to] (YYYY-MM-DD, days of the
 * application's time zone) as `who` (row-level security decides what
 * counts), stores it for who's user and returns the stored row as JSON
 * (*row_json) and its id (*report_id, may be NULL), both malloc'd. name NULL:
 * "<Title> <from> to <to>". Inputs must be validated by the caller. */
CD_MUSTCHECK api_report_status_t api_report_generate(const db_caller_t *who, const char *type,
                                                     const char *name, const char *from,
                                                     const char *to, char **row_json,
                                                     char **report_id, db_error_t *err);

/* Writes the CSV export of flat report report_id (as who) into out. */
CD_MUSTCHECK api_report_status_t api_report_csv(const db_caller_t *who, const char *report_id,
                                                cd_buf_t *out, db_error_t *err);

/* Registers the scheduled-report job kind report.scheduled (the queue's
 * scheduler pass enqueues due runs). Call before jobs_start().
 * report_schedules.c. */
CD_MUSTCHECK bool api_report_schedules_register(void);

#endif
