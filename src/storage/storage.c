/*
 * Storage's shared machinery: the process's byte store (opened once under
 * CAMPAIGND_DATA_DIR/storage), the Storage error shape (HTTP 400 with the
 * real status as a string in the body, wire reference 4.4), the SQLSTATE to
 * Storage error mapping, running SQL as the caller, signed URLs for other
 * modules, and the route tables.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "storage/storage_internal.h"

static storage_backend_t g_backend;
static bool g_backend_ok;
static pthread_once_t g_backend_once = PTHREAD_ONCE_INIT;
static const app_t *g_backend_app;

static void open_backend(void)
{
    char root[1200];
    int n = snprintf(root, sizeof(root), "%s/storage", g_backend_app->cfg.data_dir);
    if (n < 0 || (size_t)n >= sizeof(root)) {
        log_error("storage: CAMPAIGND_DATA_DIR is too long");
        return;
    }
    g_backend_ok = storage__fs_open(root, &g_backend);
    if (!g_backend_ok)
        log_error("storage: cannot use %s; storage requests will fail", root);
}

const storage_backend_t *storage__backend(const app_t *app)
{
    /* The store is opened once per process (the first caller's app wins; there
     * is one app per process) and immutable afterwards. */
    if (!g_backend_app)
        g_backend_app = app;
    pthread_once(&g_backend_once, open_backend);
    return g_backend_ok ? &g_backend : NULL;
}

bool storage_init(const app_t *app)
{
    return storage__backend(app) != NULL;
}

uint64_t storage__max_file_bytes(const app_t *app)
{
    long v = app->cfg.storage_max_file_bytes;
    return v > 0 ? (uint64_t)v : 50ULL * 1024 * 1024;
}

/* ------------------------------------------------------------ replies */

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
    const char *s = err->sqlstate;
    if (strcmp(s, "42501") == 0) {
        storage__err_set(e, "403", "AccessDenied", "Unauthorized",
                         *err->message ? err->message
                                       : "new row violates row-level security policy");
    } else if (strcmp(s, "23505") == 0) {
        bool bucket = strstr(err->message, "buckets") != NULL;
        storage__err_set(e, "409", bucket ? "BucketAlreadyExists" : "KeyAlreadyExists", "Duplicate",
                         "The resource already exists");
    } else if (strcmp(s, "23503") == 0) {
        if (missing_fk && strcmp(missing_fk, "not_empty") == 0)
            storage__err_set(e, "409", "InvalidRequest", "Bucket not empty",
                             "The bucket you tried to delete is not empty");
        else
            storage__err_set(e, "404", "NoSuchBucket", "Bucket not found", "Bucket not found");
    } else if (strncmp(s, "22", 2) == 0 || strncmp(s, "23", 2) == 0) {
        storage__err_set(e, "400", "InvalidRequest", "invalid_request", err->message);
    } else if (strcmp(s, "57014") == 0) {
        storage__err_set(e, "500", "DatabaseTimeout", "Internal",
                         "The request took too long (statement timeout).");
    } else {
        log_error("storage: database error %s: %s", s, err->message);
        storage__err_set(e, "500", "InternalError", "Internal", "Internal Server Error");
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

void storage__reply_json_text(http_request_t *req, const char *text)
{
    http_reply(req, 200, NULL, text, strlen(text));
}

void storage__reply_message(http_request_t *req, const char *message)
{
    http_reply_json(req, 200, json_pack("{s:s}", "message", message));
}

/* ------------------------------------------------------------ callers */

bool storage__identify(http_request_t *req, auth_caller_t *c)
{
    const app_t *app = req->ctx;
    const char *why = NULL;
    auth_id_status_t st = auth_identify(app, req, false, c, &why);
    if (st == AUTH_ID_OK)
        return true;
    storage__reply_error(req, "403", "AccessDenied", "Unauthorized", why ? why : "invalid token");
    auth_caller_free(c);
    return false;
}

db_status_t storage__run(http_request_t *req, const auth_caller_t *c, bool read_only,
                         const db_stmt_t *stmts, size_t n, PGresult **res, db_error_t *err)
{
    db_conn_t *conn = db_thread_conn();
    if (!conn)
        return DB_UNAVAILABLE;
    db_caller_t who;
    if (c) {
        auth_caller_db(c, req, read_only, &who);
    } else {
        memset(&who, 0, sizeof(who));
        who.role = "service_role";
        who.claims_json = "{\"role\":\"service_role\"}";
        who.method = req->method;
        who.path = req->path;
        who.headers_json = "{}";
        who.read_only = read_only;
    }
    return db_run_as(conn, &who, stmts, n, res, err);
}

json_t *storage__json_body(http_request_t *req)
{
    json_error_t e;
    json_t *j = req->body.len
                    ? json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &e)
                    : json_object();
    if (!json_is_object(j)) {
        json_decref(j);
        storage__reply_error(req, "400", "InvalidRequest", "invalid_request",
                             "The request body must be a JSON object.");
        return NULL;
    }
    return j;
}

void storage__remove_versions(const app_t *app, const char *json_array)
{
    const storage_backend_t *be = storage__backend(app);
    json_t *a = json_loads(json_array ? json_array : "[]", 0, NULL);
    size_t i;
    json_t *v;
    if (be && json_is_array(a)) {
        json_array_foreach(a, i, v)
        {
            const char *key = json_string_value(v);
            if (key && !be->ops->remove(be->self, key))
                log_warn("storage: could not remove the bytes of version %s", key);
        }
    }
    json_decref(a);
}

/* ------------------------------------------------------------ signed URLs */

/* Appends s percent-encoded for a URL path (keeping '/' and unreserved bytes). */
static bool encode_path(const char *s, char *out, size_t outlen, size_t *w)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool keep = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                    (*p >= '0' && *p <= '9') || strchr("-._~/", *p);
        if (*w + (keep ? 1 : 3) >= outlen)
            return false;
        if (keep) {
            out[(*w)++] = (char)*p;
        } else {
            out[(*w)++] = '%';
            out[(*w)++] = hex[*p >> 4];
            out[(*w)++] = hex[*p & 15];
        }
    }
    out[*w] = '\0';
    return true;
}

bool storage_signed_url(const app_t *app, const char *bucket, const char *name, long expires_in,
                        bool absolute, char *out, size_t outlen)
{
    if (!storage__check_bucket(bucket) || !name ||
        storage__check_name(name, strlen(name)) != STORAGE_PATH_OK || expires_in < 1 ||
        expires_in > STORAGE_MAX_SIGN_SECONDS || outlen == 0)
        return false;
    char url[STORAGE_MAX_BUCKET_BYTES + STORAGE_MAX_NAME_BYTES + 2];
    snprintf(url, sizeof(url), "%s/%s", bucket, name);
    long long now = (long long)time(NULL);
    json_t *claims = json_pack("{s:s, s:s, s:I, s:I}", "url", url, "scope", "download", "iat",
                               (json_int_t)now, "exp", (json_int_t)(now + expires_in));
    char *tok = claims ? storage__token_sign(claims, app->jwt_secret, app->jwt_secret_len) : NULL;
    json_decref(claims);
    if (!tok)
        return false;
    size_t w = 0;
    bool ok;
    if (absolute) {
        int n = snprintf(out, outlen, "%s/storage/v1/object/sign/", app->external_url);
        ok = n > 0 && (size_t)n < outlen;
        w = ok ? (size_t)n : 0;
        ok = ok && encode_path(url, out, outlen, &w);
    } else {
        int n = snprintf(out, outlen, "/object/sign/%s", url);
        ok = n > 0 && (size_t)n < outlen;
        w = ok ? (size_t)n : 0;
    }
    if (ok) {
        int n = snprintf(out + w, outlen - w, "?token=%s", tok);
        ok = n > 0 && (size_t)n < outlen - w;
    }
    free(tok);
    if (!ok)
        out[0] = '\0';
    return ok;
}

const char *storage_status_message(storage_status_t st)
{
    switch (st) {
    case STORAGE_OK:
        return "ok";
    case STORAGE_ERR_INVALID:
        return "invalid bucket, object name or content type";
    case STORAGE_ERR_NO_BUCKET:
        return "bucket not found";
    case STORAGE_ERR_DENIED:
        return "row-level security refused the write";
    case STORAGE_ERR_EXISTS:
        return "the object already exists";
    case STORAGE_ERR_TOO_LARGE:
        return "the object exceeds the maximum allowed size";
    case STORAGE_ERR_MIME:
        return "the bucket does not allow this content type";
    case STORAGE_ERR_UNAVAILABLE:
        return "the database cannot be reached";
    case STORAGE_ERR_INTERNAL:
        return "internal error";
    }
    return "unknown";
}

/* ------------------------------------------------------------ routes */

/* The most specific patterns first: the router takes the first match. */
const http_route_t storage_routes[] = {
    {"GET", "/storage/v1/bucket", storage__bucket_list, false},
    {"POST", "/storage/v1/bucket", storage__bucket_create, true},
    {"POST", "/storage/v1/bucket/:id/empty", storage__bucket_empty, true},
    {"GET", "/storage/v1/bucket/:id", storage__bucket_get, false},
    {"PUT", "/storage/v1/bucket/:id", storage__bucket_update, true},
    {"DELETE", "/storage/v1/bucket/:id", storage__bucket_delete, true},
    {"GET", "/storage/v1/object/public/*", storage__object_get_public, false},
    {"GET", "/storage/v1/object/sign/*", storage__object_get_signed, false},
    {"GET", "/storage/v1/object/authenticated/*", storage__object_get, false},
    {"GET", "/storage/v1/object/info/*", storage__object_info, false},
    {"DELETE", "/storage/v1/object/:bucket", storage__object_delete_many, true},
    {"DELETE", "/storage/v1/object/*", storage__object_delete, true},
    {"GET", "/storage/v1/object/*", storage__object_get, false},
};
const size_t storage_routes_len = CD_ARRAY_LEN(storage_routes);

/* ------------------------------------------------------------ reading */

storage_status_t storage_open_object(const app_t *app, db_conn_t *c, const db_caller_t *who,
                                     const char *bucket, const char *name, int *fd, uint64_t *size)
{
    *fd = -1;
    *size = 0;
    if (!bucket || !name || !storage__check_bucket(bucket) ||
        storage__check_name(name, strlen(name)) != STORAGE_PATH_OK)
        return STORAGE_ERR_INVALID;
    const storage_backend_t *be = storage__backend(app);
    if (!be)
        return STORAGE_ERR_INTERNAL;
    const char *params[2] = {bucket, name};
    PGresult *res = NULL;
    db_error_t err;
    db_status_t st = db_run1(c, who,
                             "select version from storage.objects "
                             "where bucket_id = $1 and name = $2",
                             2, params, &res, &err);
    if (st == DB_UNAVAILABLE)
        return STORAGE_ERR_UNAVAILABLE;
    if (st != DB_OK) {
        log_warn("storage: cannot look up %s/%s: %s", bucket, name, err.message);
        return STORAGE_ERR_INTERNAL;
    }
    if (PQntuples(res) != 1) {
        PQclear(res);
        return STORAGE_ERR_NO_BUCKET;
    }
    storage_blob_t blob;
    bool ok = be->ops->get(be->self, PQgetvalue(res, 0, 0), &blob);
    PQclear(res);
    if (!ok)
        return STORAGE_ERR_NO_BUCKET;
    *fd = blob.fd;
    *size = blob.size;
    return STORAGE_OK;
}
