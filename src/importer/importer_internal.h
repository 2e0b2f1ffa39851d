/*
 * Internals shared by the files of src/importer/ and their unit tests: where
 * the bytes come from (fetch.c) and the pieces of a sync (sync.c). Not a
 * public interface: use importer.h.
 */
#ifndef CD_IMPORTER_INTERNAL_H
#define CD_IMPORTER_INTERNAL_H

#include <jansson.h>
#include <stdint.h>
#include <sys/socket.h>

#include "app.h"
#include "core/common.h"
#include "db/db.h"
#include "importer/importer.h"

/* The private bucket users upload import files to (migration 021). */
#define IMPORT_BUCKET "imports"
/* A preview of a URL source downloads at most this much of the file. */
#define IMPORT_HEAD_BYTES (1024 * 1024)
/* Rows a preview shows. */
#define IMPORT_PREVIEW_ROWS 10
/* Row errors kept in sync_logs.metadata.errors. */
#define IMPORT_MAX_ROW_ERRORS 100

/* A data source as the importer needs it (borrowed from a JSON row). */
typedef struct import_source {
    const char *id;
    const char *user_id;
    const char *type;
    const char *name;
    const json_t *config;
    const json_t *column_config;
    const json_t *schedule_config;
} import_source_t;

/* Fills src from a data source row as JSON; false when a field is missing. */
CD_MUSTCHECK bool import__source_from_json(const json_t *row, import_source_t *src);

/* An opened input: a local path the parser can open. */
typedef struct import_input {
    char path[1200];
    int fd;         /* the storage object's descriptor, or -1 */
    bool temp;      /* path is a temporary download to unlink */
    bool retryable; /* the failure was temporary (database, network) */
    uint64_t size;
    /* API connectors (connectors.h): the file is a CSV they wrote (parsed
     * as UTF-8 with commas), and the data source's next last_sync_value,
     * stored in the transaction of the rows (malloc'd, NULL for none). */
    bool spooled_csv;
    char *sync_value;
} import_input_t;

/* Returns true when the run should stop (cancel requested, shutting down). */
typedef bool (*import_cancel_fn)(void *arg);

/* Opens the bytes of src: the uploaded object (csv_upload, excel), or a
 * download of the URL (csv_url, google_sheets) into a temporary file; with
 * head_only only the first IMPORT_HEAD_BYTES are downloaded. cancel (may be
 * NULL) is polled during downloads. On failure err gets a sentence for the
 * user and nothing needs closing; on success call import__input_close. */
CD_MUSTCHECK bool import__input_open(const app_t *app, db_conn_t *c, const import_source_t *src,
                                     bool head_only, import_cancel_fn cancel, void *cancel_arg,
                                     import_input_t *in, char *err, size_t errlen);
void import__input_close(import_input_t *in);

/* Whether a URL fetch may connect to sa: false for loopback, private,
 * link-local, carrier-grade NAT, multicast, reserved and documentation
 * addresses (IPv4, IPv6, and IPv4 mapped into IPv6). */
bool import__address_public(const struct sockaddr *sa);

/* Writes a random UUID (version 4) from 16 random bytes. */
void import__uuid_format(const unsigned char b[16], char out[37]);
/* Writes a time-ordered UUID (version 7, RFC 9562): ms (Unix time in
 * milliseconds, 48 bits), then seq (26 bits, increasing within that
 * millisecond), then 48 random bits from rnd. Ids made with increasing
 * (ms, seq) sort in that order. */
void import__uuid7_format(uint64_t ms, uint32_t seq, const unsigned char rnd[6], char out[37]);

/* Slugifies a data source's name for create_import_table: [a-z0-9_], at
 * most 40 characters, not starting with a digit, "source" when empty. */
void import__slug(const char *name, char *out, size_t outlen);

#endif
