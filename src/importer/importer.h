/*
 * File imports (issue 10): csv_upload, excel, csv_url and google_sheets data
 * sources are read (from the `imports` storage bucket or over HTTP), mapped
 * and cleaned by src/importer/clean.h, and loaded with COPY into the source's
 * dedicated import table or into the owner's contacts. A sync runs as the
 * job `import.sync` on the queue of src/jobs/; a test-connection preview
 * runs in the request. docs/import.md describes it for users.
 */
#ifndef CD_IMPORTER_H
#define CD_IMPORTER_H

#include <jansson.h>

#include "app.h"
#include "core/common.h"
#include "db/db.h"

/* The job kind of a sync. Payload: {"data_source_id": uuid, "sync_log_id":
 * uuid (absent when the scheduler enqueues), "trigger": "manual"|"schedule"}. */
#define IMPORT_JOB_KIND "import.sync"

/* Registers the import.sync handler with the job queue (before jobs_start). */
CD_MUSTCHECK bool importer_register_jobs(void);

/* The sync request's own database connection (POST /api/data-sources/:id/sync),
 * kept warm: the request's PL/pgSQL (request_data_source_sync, its audit and
 * realtime triggers, jobs.enqueue) compiled and its relations cached in one
 * backend. On an HTTP thread's connection that had not run them yet, the
 * request took 50-300 ms instead of 10-50 (session 8's trace): with 8 threads,
 * the slow re-syncs of the bench. NULL when another request holds it or the
 * database cannot be reached: the caller then uses its own connection (never
 * waits). Run as the caller (db_run_as); give it back with
 * importer_request_conn_put (NULL is a no-op). */
db_conn_t *importer_request_conn_take(void);
void importer_request_conn_put(db_conn_t *c);

/* Closes the source sessions kept for the next sync (IMPORT_DB_KEEP_SECONDS),
 * the kept data connections to the database and the sync request's
 * connection (after the HTTP server stopped), each with a Terminate
 * message, so the servers end those backends at once; call after the job
 * threads stopped (shutdown). Returns how many. */
int importer_close_kept(void);

/* The outcome of a preview. */
typedef enum import_preview_status {
    IMPORT_PREVIEW_OK = 0,
    IMPORT_PREVIEW_BAD_SOURCE,  /* the source cannot be read: *message says why (400) */
    IMPORT_PREVIEW_UNAVAILABLE, /* the database is down (503) */
    IMPORT_PREVIEW_INTERNAL,    /* out of memory, disk (500) */
} import_preview_status_t;

/* Reads the head of a data source and builds the test-connection answer
 * {columns:[{source_name,target_name,type,sample}], rows:[first 10, cleaned],
 * warnings:[…]}. source is the data source row as JSON (id, user_id, type,
 * config, column_config). c is used to find an uploaded file as the source's
 * owner. On IMPORT_PREVIEW_OK *out is a new reference. message gets a
 * sentence a marketer can act on otherwise. */
CD_MUSTCHECK import_preview_status_t importer_preview(const app_t *app, db_conn_t *c,
                                                      const json_t *source, json_t **out,
                                                      char *message, size_t msglen);

#endif
