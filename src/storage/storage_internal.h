/*
 * Storage internals shared by the files of src/storage/ (not a public API):
 * object-path validation, MIME checks, signed-URL tokens, the streaming
 * multipart/form-data parser, the byte-store backend interface, and the
 * request helpers of the handlers. Cross-file symbols use the storage__ prefix.
 */
#ifndef CD_STORAGE_INTERNAL_H
#define CD_STORAGE_INTERNAL_H

#include <jansson.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "app.h"
#include "auth/auth.h"
#include "core/common.h"
#include "db/db.h"
#include "http/http.h"
#include "storage/storage.h"

/* ------------------------------------------------------------ paths */

typedef enum {
    STORAGE_PATH_OK = 0,
    STORAGE_PATH_EMPTY,         /* no name at all */
    STORAGE_PATH_TOO_LONG,      /* longer than STORAGE_MAX_NAME_BYTES */
    STORAGE_PATH_BAD_ESCAPE,    /* a % not followed by two hex digits, or %00 */
    STORAGE_PATH_CONTROL,       /* NUL, C0 control character or DEL */
    STORAGE_PATH_DOT_SEGMENT,   /* a "." or ".." segment, also when percent-encoded */
    STORAGE_PATH_EMPTY_SEGMENT, /* "a//b" or a trailing "/" */
    STORAGE_PATH_ABSOLUTE,      /* starts with "/" */
    STORAGE_PATH_BACKSLASH,     /* contains "\" (a separator on other systems) */
    STORAGE_PATH_BAD_UTF8,      /* not valid UTF-8 */
} storage_path_status_t;

/* Checks a decoded object name (len bytes, may contain NUL, which is refused):
 * 1..STORAGE_MAX_NAME_BYTES bytes of valid UTF-8 without control characters,
 * not absolute, without backslashes, empty, "." or ".." segments. */
storage_path_status_t storage__check_name(const char *name, size_t len);
/* A human-readable reason for a path status (static). */
const char *storage__path_message(storage_path_status_t st);
/* Whether id is a usable bucket id: 1..100 of [A-Za-z0-9_.-], not starting
 * with "." or "-", and not a word the /object routes use (list, sign, ...). */
bool storage__check_bucket(const char *id);
/* Percent-decodes raw[0..len) into out (NUL-terminated, outlen bytes at most
 * including the NUL). '+' stays '+'. Returns STORAGE_PATH_BAD_ESCAPE for a bad
 * escape or %00, STORAGE_PATH_TOO_LONG if out is too small. */
storage_path_status_t storage__percent_decode(const char *raw, size_t len, char *out,
                                              size_t outlen);
/* Splits the raw (still percent-encoded) request target after prefix
 * (e.g. "/storage/v1/object/public/") into a bucket and an object name, each
 * decoded and checked; the query string is ignored. With name NULL, only a
 * bucket must follow. Returns STORAGE_PATH_OK or why not (a bad bucket id is
 * STORAGE_PATH_EMPTY). */
storage_path_status_t storage__split_target(const char *raw_uri, const char *prefix, char *bucket,
                                            size_t bucket_len, char *name, size_t name_len);

/* ------------------------------------------------------------ MIME */

/* Whether mime is a plausible media type: "type/subtype" of token characters,
 * optional parameters of printable ASCII, at most 255 bytes. */
bool storage__mime_valid(const char *mime);
/* Whether mime (parameters ignored, case-insensitive) matches one of the
 * patterns of allowed (a JSON array of strings such as "image/png" or
 * "image/ *" without the space); a NULL or non-array allowed allows everything. */
bool storage__mime_allowed(const char *mime, const json_t *allowed);
/* Whether an object of type mime may be shown inline: an allow-list of passive
 * types (raster images, PDF, plain text). Everything else (HTML, SVG, XML, XSL,
 * scripts, CSV, unknown types) is served as an attachment, so a stored file can
 * never run script on the API's origin. */
bool storage__mime_inline(const char *mime);

/* ------------------------------------------------------------ tokens */

typedef enum {
    STORAGE_TOKEN_OK = 0,
    STORAGE_TOKEN_MALFORMED, /* not header.payload.signature of our shape */
    STORAGE_TOKEN_SIGNATURE, /* HMAC mismatch */
    STORAGE_TOKEN_EXPIRED,   /* exp missing, not an integer, or <= now */
} storage_token_status_t;

#define STORAGE_TOKEN_MAX_BYTES 4096

/* Signs claims (a JSON object) as an HS256 JWT with secret. Returns a malloc'd
 * token the caller frees, or NULL (not an object, too long, out of memory). */
char *storage__token_sign(const json_t *claims, const unsigned char *secret, size_t secret_len);
/* Verifies a token made by storage__token_sign: exact header, HMAC-SHA256 in
 * constant time, payload a JSON object without duplicate keys, integer exp >
 * now. On STORAGE_TOKEN_OK *claims is a new reference (caller decrefs). */
CD_MUSTCHECK storage_token_status_t storage__token_verify(const char *token,
                                                          const unsigned char *secret,
                                                          size_t secret_len, long long now,
                                                          json_t **claims);
/* A short static message for a token status ("jwt expired", ...). */
const char *storage__token_message(storage_token_status_t st);

/* ------------------------------------------------------------ multipart */

#define STORAGE_MP_MAX_BOUNDARY    70
#define STORAGE_MP_MAX_HEAD_BYTES  8192
#define STORAGE_MP_MAX_PARAM_BYTES 1024
#define STORAGE_MP_MAX_PARTS       64

typedef struct storage_mp_callbacks {
    /* A part starts. name is "" for an empty or missing name; filename is
     * NULL when the part has none; content_type NULL when not given. Return
     * false to stop parsing (an error). */
    bool (*part_begin)(void *arg, const char *name, const char *filename, const char *content_type);
    /* Bytes of the current part's body, in order. */
    bool (*part_data)(void *arg, const char *data, size_t len);
    /* The current part is complete. */
    bool (*part_end)(void *arg);
} storage_mp_callbacks_t;

typedef enum {
    STORAGE_MP_PREAMBLE,
    STORAGE_MP_AFTER_DELIM,
    STORAGE_MP_AFTER_DELIM_DASH,
    STORAGE_MP_AFTER_DELIM_CR,
    STORAGE_MP_HEAD,
    STORAGE_MP_BODY,
    STORAGE_MP_DONE,
    STORAGE_MP_ERROR,
} storage_mp_state_t;

/* A push parser of multipart/form-data (RFC 7578): feed it the body in pieces
 * of any size; it calls back for every part. Memory is fixed (no allocation). */
typedef struct storage_multipart {
    storage_mp_state_t state;
    char delim[STORAGE_MP_MAX_BOUNDARY + 5]; /* "\r\n--" boundary */
    size_t delim_len;
    size_t match; /* bytes of delim matched so far */
    char head[STORAGE_MP_MAX_HEAD_BYTES];
    size_t head_len;
    size_t parts;
    const storage_mp_callbacks_t *cb;
    void *arg;
    const char *error; /* static reason once state is STORAGE_MP_ERROR */
} storage_multipart_t;

/* Extracts the boundary parameter of a multipart/form-data Content-Type into
 * out. Returns false if the type is not multipart/form-data or the boundary is
 * missing, longer than 70 bytes or contains CR, LF or NUL. */
CD_MUSTCHECK bool storage__mp_boundary(const char *content_type, char *out, size_t outlen);
/* Prepares m for a body with this boundary (as returned by storage__mp_boundary). */
void storage__mp_init(storage_multipart_t *m, const char *boundary,
                      const storage_mp_callbacks_t *cb, void *arg);
/* Feeds len bytes. Returns false once the body is malformed or a callback
 * refused (m->error says why); bytes after the closing delimiter are ignored. */
CD_MUSTCHECK bool storage__mp_feed(storage_multipart_t *m, const char *data, size_t len);
/* Whether the closing delimiter has been seen. */
bool storage__mp_done(const storage_multipart_t *m);

/* ------------------------------------------------------------ backend */

/* An open object for reading. */
typedef struct storage_blob {
    int fd; /* owned by the caller once get() succeeds */
    uint64_t size;
    time_t mtime;
} storage_blob_t;

typedef struct storage_put storage_put_t;

/* A byte store. Keys are object versions (UUIDs); the metadata database, not
 * the store, knows names. A put is written to a private temporary place,
 * made durable by put_finish, and becomes readable under its key only with
 * put_commit, which the caller runs after the metadata commit. An
 * S3-compatible store can implement the same operations. */
typedef struct storage_backend_ops {
    CD_MUSTCHECK bool (*put_begin)(void *self, const char *key, storage_put_t **out);
    CD_MUSTCHECK bool (*put_write)(storage_put_t *p, const void *data, size_t len);
    /* Flushes and fsyncs; the bytes are durable but not yet visible. */
    CD_MUSTCHECK bool (*put_finish)(storage_put_t *p);
    /* Makes the bytes readable under the key; frees p whatever the result. */
    CD_MUSTCHECK bool (*put_commit)(storage_put_t *p);
    /* Forgets the bytes and frees p. */
    void (*put_abort)(storage_put_t *p);
    CD_MUSTCHECK bool (*get)(void *self, const char *key, storage_blob_t *out);
    /* Removes a key; a missing key is not an error. */
    CD_MUSTCHECK bool (*remove)(void *self, const char *key);
    /* Copies the bytes of src_key into a pending put. */
    CD_MUSTCHECK bool (*copy)(void *self, const char *src_key, storage_put_t *dst);
    /* Renames src_key to dst_key (durably). */
    CD_MUSTCHECK bool (*move)(void *self, const char *src_key, const char *dst_key);
} storage_backend_ops_t;

typedef struct storage_backend {
    const storage_backend_ops_t *ops;
    void *self;
} storage_backend_t;

/* Opens (creating) a file-system store under root: objects in root/objects,
 * uploads in progress in root/tmp/<instance>/. Removes the temporary files
 * that processes which are gone left behind (a crash mid-upload). */
CD_MUSTCHECK bool storage__fs_open(const char *root, storage_backend_t *out);
/* Releases the store (its temporary directory is removed). */
void storage__fs_close(storage_backend_t *b);

/* ------------------------------------------------------------ handlers */

/* The process's backend, opened on first use under CAMPAIGND_DATA_DIR/storage;
 * NULL (after logging) when it cannot be opened. */
const storage_backend_t *storage__backend(const app_t *app);

/* Answers in Storage's error shape: HTTP 400 (500 for "500", 503 for "503")
 * with {"statusCode":status_code,"code":code,"error":error,"message":message}. */
void storage__reply_error(http_request_t *req, const char *status_code, const char *code,
                          const char *error, const char *message);
/* A Storage error on its way to a reply (or to a storage_status_t). */
typedef struct storage_err {
    const char *status_code; /* "404", ...; NULL while there is no error */
    const char *code;
    const char *error;
    char message[320];
} storage_err_t;

void storage__err_set(storage_err_t *e, const char *status_code, const char *code,
                      const char *error, const char *message);
/* The Storage error for a failed database call. missing_fk: what a
 * foreign-key violation (23503) means here ("not_empty" for a bucket delete,
 * else a missing bucket). */
void storage__err_from_db(storage_err_t *e, db_status_t st, const db_error_t *err,
                          const char *missing_fk);
void storage__reply_err(http_request_t *req, const storage_err_t *e);
/* The storage_status_t of an error (STORAGE_OK when none). */
storage_status_t storage__err_status(const storage_err_t *e);
/* Answers a failed database call. missing_fk: what a foreign-key violation
 * (23503) means here (e.g. "bucket" for an insert, "not_empty" for a bucket
 * delete). */
void storage__reply_db_error(http_request_t *req, db_status_t st, const db_error_t *err,
                             const char *missing_fk);
/* The caller of a request (no apikey needed). Returns false after replying
 * 400/403 AccessDenied for a bad token. Free c with auth_caller_free. */
CD_MUSTCHECK bool storage__identify(http_request_t *req, auth_caller_t *c);
/* One statement a handler runs, and how its failure is answered. */
typedef struct storage_query {
    const char *sql;
    int nparams;
    const char *const *params;
    bool read_only;
    const char *missing_fk;               /* see storage__err_from_db */
    void (*if_none)(http_request_t *req); /* set: a result without rows is answered by it */
} storage_query_t;
/* Runs q's statement as the caller c, or (c NULL) as service_role, and
 * returns its result (the caller PQclear()s it). Returns NULL after answering
 * a failure: the database's in Storage's shape, or q->if_none for no rows.
 * Every storage handler's SQL goes through here (or storage__query_caller). */
PGresult *storage__query(http_request_t *req, const auth_caller_t *c, const storage_query_t *q);
/* storage__identify, then storage__query as that caller: NULL after replying. */
PGresult *storage__query_caller(http_request_t *req, const storage_query_t *q);
/* The JSON object body of a buffered request, or NULL after replying 400. */
json_t *storage__json_body(http_request_t *req);
/* Replies 200 with a JSON text value the database built (copied). */
void storage__reply_json_text(http_request_t *req, const char *text);
/* Replies 200 {"message": message}. */
void storage__reply_message(http_request_t *req, const char *message);
/* Removes the bytes of the versions listed in a JSON array text (best effort,
 * logged): used after the rows are deleted. */
void storage__remove_versions(const app_t *app, const char *json_array);
/* The effective global object size limit in bytes. */
uint64_t storage__max_file_bytes(const app_t *app);
/* Serves an object's bytes with its metadata (a row from storage.objects as
 * JSON text: {"version","metadata","updated_at"}): Content-Type, ETag,
 * Cache-Control, Last-Modified, Range, If-None-Match, ?download. */
void storage__serve_object(http_request_t *req, const char *row_json);
/* The limits of bucket (404 in *e when it does not exist): lowers *limit to its
 * file_size_limit and sets *allowed to its allowed_mime_types (a new reference,
 * or NULL for any type). */
CD_MUSTCHECK bool storage__bucket_limits(const db_caller_t *who, const char *bucket,
                                         uint64_t *limit, json_t **allowed, storage_err_t *e);

/* Checks, before any byte is read, that who may write bucket/name (RLS
 * INSERT, or the upsert's INSERT/UPDATE, tried and rolled back) and reads the
 * bucket's limits: *limit is lowered to its file_size_limit, *allowed gets
 * its allowed_mime_types (a new reference or NULL). Returns false with e set. */
CD_MUSTCHECK bool storage__probe_upload(const db_caller_t *who, const char *bucket,
                                        const char *name, const char *owner, bool upsert,
                                        uint64_t *limit, json_t **allowed, storage_err_t *e);
/* Records an object whose bytes are in put (already put_finish'ed) under
 * version: inserts or upserts its row as who and commits, then makes the
 * bytes visible and removes the bytes of the version it replaced. Consumes
 * put in every case. owner may be "" (none). On success id_out gets the
 * object's id. */
CD_MUSTCHECK bool storage__commit_object(const app_t *app, const db_caller_t *who,
                                         const char *bucket, const char *name, const char *owner,
                                         const char *version, const json_t *metadata,
                                         const json_t *user_metadata, bool upsert,
                                         storage_put_t *put, char id_out[STORAGE_UUID_LEN + 1],
                                         storage_err_t *e);
/* Object metadata as Storage stores it (eTag, size, mimetype, cacheControl,
 * lastModified, contentLength, httpStatusCode). New reference. */
json_t *storage__object_metadata(const char *etag_hex, uint64_t size, const char *mimetype,
                                 const char *cache_control);

/* Bucket endpoints (storage_bucket.c). */
void storage__bucket_list(http_request_t *req);
void storage__bucket_get(http_request_t *req);
void storage__bucket_create(http_request_t *req);
void storage__bucket_update(http_request_t *req);
void storage__bucket_empty(http_request_t *req);
void storage__bucket_delete(http_request_t *req);
/* Object endpoints on buffered routes (storage_object.c). */
void storage__object_get(http_request_t *req);
void storage__object_get_public(http_request_t *req);
void storage__object_get_signed(http_request_t *req);
void storage__object_info(http_request_t *req);
void storage__object_delete(http_request_t *req);
void storage__object_delete_many(http_request_t *req);
/* The POST /object/... endpoints with a JSON body (list, move, copy, sign,
 * upload/sign): buffered routes, listed ahead of the streaming upload
 * catch-all (storage_stream_routes). */
void storage__object_list(http_request_t *req);
void storage__object_move(http_request_t *req);
void storage__object_copy(http_request_t *req);
void storage__object_sign(http_request_t *req);
void storage__object_sign_upload(http_request_t *req);

#endif
