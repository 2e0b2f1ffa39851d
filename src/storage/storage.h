/*
 * Storage: the Supabase-compatible /storage/v1 API (buckets, objects, public
 * and signed URLs) over storage.buckets / storage.objects, whose row-level
 * security decides who may do what, and a byte store on disk under
 * CAMPAIGND_DATA_DIR/storage. Other modules save files (e.g. report exports)
 * with storage_put_bytes and hand out storage_signed_url links.
 */
#ifndef CD_STORAGE_H
#define CD_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "app.h"
#include "core/common.h"
#include "db/db.h"
#include "http/http.h"

#define STORAGE_MAX_NAME_BYTES   1024 /* an object name, after percent-decoding */
#define STORAGE_MAX_BUCKET_BYTES 100  /* a bucket id */
#define STORAGE_UUID_LEN         36

/* The buffered /storage/v1 routes (buckets, downloads, deletes). */
extern const http_route_t storage_routes[];
extern const size_t storage_routes_len;
/* The streaming routes: uploads (POST/PUT /object/..., PUT /object/upload/sign/...)
 * and the other POST /object/... endpoints, which share their path space. */
extern const http_stream_route_t storage_stream_routes[];
extern const size_t storage_stream_routes_len;

/* Prepares the byte store under CAMPAIGND_DATA_DIR/storage and removes the
 * temporary files of uploads that a crashed process left behind. Runs by
 * itself on the first storage request; calling it at start-up is cheaper.
 * Returns false (after logging) if the directory cannot be used. */
CD_MUSTCHECK bool storage_init(const app_t *app);

typedef enum {
    STORAGE_OK = 0,
    STORAGE_ERR_INVALID,     /* bad bucket, name or content type */
    STORAGE_ERR_NO_BUCKET,   /* the bucket does not exist */
    STORAGE_ERR_DENIED,      /* row-level security refused the write */
    STORAGE_ERR_EXISTS,      /* the object exists and upsert is false */
    STORAGE_ERR_TOO_LARGE,   /* over the bucket's or the global size limit */
    STORAGE_ERR_MIME,        /* the bucket does not allow this content type */
    STORAGE_ERR_UNAVAILABLE, /* the database cannot be reached */
    STORAGE_ERR_INTERNAL,    /* disk or other failure (logged) */
} storage_status_t;

/* Saves len bytes as object `name` of `bucket`, as `who` (so RLS applies; use
 * role "service_role" for server-side jobs), owned by owner_id (a user UUID,
 * or NULL/"" for none). content_type NULL means application/octet-stream.
 * With upsert an existing object is replaced. The bytes are fsynced before the
 * metadata commits and become visible only after it. On STORAGE_OK,
 * object_id (if not NULL) receives the object's UUID. Call from a thread that
 * may use the database (db_thread_conn). */
CD_MUSTCHECK storage_status_t storage_put_bytes(const app_t *app, const db_caller_t *who,
                                                const char *owner_id, const char *bucket,
                                                const char *name, const char *content_type,
                                                const void *data, size_t len, bool upsert,
                                                char object_id[STORAGE_UUID_LEN + 1]);

/* Writes into out a signed download URL for bucket/name valid for expires_in
 * seconds (1..STORAGE_MAX_SIGN_SECONDS): with absolute, the full URL
 * (API_EXTERNAL_URL/storage/v1/object/sign/...?token=..., the name
 * percent-encoded); otherwise the path relative to /storage/v1 that Storage
 * returns as "signedURL". Does not check that the object exists. Returns
 * false if the name is invalid or out is too small. */
#define STORAGE_MAX_SIGN_SECONDS (10L * 365 * 24 * 3600)
CD_MUSTCHECK bool storage_signed_url(const app_t *app, const char *bucket, const char *name,
                                     long expires_in, bool absolute, char *out, size_t outlen);

/* Opens the bytes of object `name` of `bucket` for reading, as `who` on
 * connection c (row-level security decides whether who may read it). On
 * STORAGE_OK *fd is a read-only descriptor the caller closes and *size the
 * object's length. STORAGE_ERR_NO_BUCKET when the object does not exist or
 * is not visible to who; STORAGE_ERR_INVALID for a bad bucket or name. */
CD_MUSTCHECK storage_status_t storage_open_object(const app_t *app, db_conn_t *c,
                                                  const db_caller_t *who, const char *bucket,
                                                  const char *name, int *fd, uint64_t *size);

/* A short message for a storage_status_t (static). */
const char *storage_status_message(storage_status_t st);

#endif
