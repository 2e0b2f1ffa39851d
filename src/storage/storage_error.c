/*
 * Storage's error answers: the Storage error shape (HTTP 400 with the real
 * status as a string in the body, wire reference 4.4), and how a failed
 * database call becomes one. The meaning of a SQLSTATE comes from db/'s one
 * table (db_error_http); this file only chooses Storage's words for it.
 */
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "storage/storage_internal.h"

void storage__reply_error(http_request_t *req, const char *status_code, const char *code,
                          const char *error, const char *message)
{
    int http = 400;
    if (strcmp(status_code, "500") == 0)
        http = 500;
    else if (strcmp(status_code, "503") == 0)
        http = 503;
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "statusCode", status_code, "code", code, "error",
                          error, "message", message);
    http_reply_json(req, http, j);
}

void storage__err_set(storage_err_t *e, const char *status_code, const char *code,
                      const char *error, const char *message)
{
    e->status_code = status_code;
    e->code = code;
    e->error = error;
    snprintf(e->message, sizeof(e->message), "%s", message);
}

void storage__err_from_db(storage_err_t *e, db_status_t st, const db_error_t *err,
                          const char *missing_fk)
{
    if (st == DB_UNAVAILABLE || !err) {
        storage__err_set(e, "503", "DatabaseUnavailable", "Service Unavailable",
                         "The database cannot be reached right now; try again shortly.");
        return;
    }
    /* Storage's SQL is fixed, so only the kinds a client can cause get a 4xx:
     * a bad query, a raised exception or a missing table is a server fault. */
    switch (db_error_http(err->sqlstate, false).kind) {
    case DB_ERR_PRIVILEGE:
        storage__err_set(e, "403", "AccessDenied", "Unauthorized",
                         *err->message ? err->message
                                       : "new row violates row-level security policy");
        return;
    case DB_ERR_UNIQUE: {
        bool bucket = strstr(err->message, "buckets") != NULL;
        storage__err_set(e, "409", bucket ? "BucketAlreadyExists" : "KeyAlreadyExists", "Duplicate",
                         "The resource already exists");
        return;
    }
    case DB_ERR_FOREIGN_KEY:
        if (missing_fk && strcmp(missing_fk, "not_empty") == 0)
            storage__err_set(e, "409", "InvalidRequest", "Bucket not empty",
                             "The bucket you tried to delete is not empty");
        else
            storage__err_set(e, "404", "NoSuchBucket", "Bucket not found", "Bucket not found");
        return;
    case DB_ERR_INVALID_DATA:
        storage__err_set(e, "400", "InvalidRequest", "invalid_request", err->message);
        return;
    case DB_ERR_TIMEOUT:
        storage__err_set(e, "500", "DatabaseTimeout", "Internal",
                         "The request took too long (statement timeout).");
        return;
    default:
        log_error("storage: database error %s: %s", err->sqlstate, err->message);
        storage__err_set(e, "500", "InternalError", "Internal", "Internal Server Error");
        return;
    }
}

void storage__reply_err(http_request_t *req, const storage_err_t *e)
{
    if (strcmp(e->status_code, "503") == 0) {
        char v[16];
        snprintf(v, sizeof(v), "%d", db_retry_after());
        if (!http_add_header(req, "Retry-After", v))
            log_warn("storage: too many response headers");
    }
    storage__reply_error(req, e->status_code, e->code, e->error, e->message);
}

storage_status_t storage__err_status(const storage_err_t *e)
{
    if (!e->status_code)
        return STORAGE_OK;
    if (strcmp(e->code, "NoSuchBucket") == 0)
        return STORAGE_ERR_NO_BUCKET;
    if (strcmp(e->status_code, "403") == 0)
        return STORAGE_ERR_DENIED;
    if (strcmp(e->status_code, "409") == 0)
        return STORAGE_ERR_EXISTS;
    if (strcmp(e->status_code, "413") == 0)
        return STORAGE_ERR_TOO_LARGE;
    if (strcmp(e->status_code, "415") == 0)
        return STORAGE_ERR_MIME;
    if (strcmp(e->status_code, "503") == 0)
        return STORAGE_ERR_UNAVAILABLE;
    if (strcmp(e->status_code, "400") == 0)
        return STORAGE_ERR_INVALID;
    return STORAGE_ERR_INTERNAL;
}

void storage__reply_db_error(http_request_t *req, db_status_t st, const db_error_t *err,
                             const char *missing_fk)
{
    storage_err_t e;
    storage__err_from_db(&e, st, err, missing_fk);
    storage__reply_err(req, &e);
}
