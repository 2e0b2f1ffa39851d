/*
 * Storage's shared machinery: the process's byte store (opened once under
 * CAMPAIGND_DATA_DIR/storage), running SQL as the caller (storage__query:
 * the one "run a statement and answer its failure" of the module), signed
 * URLs for other modules, and the route tables. Error answers are in
 * storage_error.c.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "core/text.h"
#include "http/body.h"
#include "storage/storage_internal.h"

static storage_backend_t g_backend;
static bool g_backend_ok;
static pthread_once_t g_backend_once = PTHREAD_ONCE_INIT;
/* The app whose data directory the store is opened under: a process
 * singleton, see docs/architecture.md ("Process singletons"). */
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

/* The service_role context of requests without a user (public downloads,
 * signed URLs). */
static void service_who(http_request_t *req, bool read_only, db_caller_t *who)
{
    memset(who, 0, sizeof(*who));
    who->role = "service_role";
    who->claims_json = "{\"role\":\"service_role\"}";
    who->method = req->method;
    who->path = req->path;
    who->headers_json = "{}";
    who->read_only = read_only;
}

PGresult *storage__query(http_request_t *req, const auth_caller_t *c, const storage_query_t *q)
{
    db_caller_t who;
    if (c)
        auth_caller_db(c, req, q->read_only, &who);
    else
        service_who(req, q->read_only, &who);
    db_stmt_t stmt = {q->sql, q->nparams, q->params};
    PGresult *res = NULL;
    db_error_t err;
    db_status_t st = db_run(&who, &stmt, 1, &res, &err);
    if (st != DB_OK) {
        storage__reply_db_error(req, st, &err, q->missing_fk);
        return NULL;
    }
    if (q->if_none && PQntuples(res) == 0) {
        PQclear(res);
        q->if_none(req);
        return NULL;
    }
    return res;
}

PGresult *storage__query_caller(http_request_t *req, const storage_query_t *q)
{
    auth_caller_t c;
    if (!storage__identify(req, &c))
        return NULL;
    PGresult *res = storage__query(req, &c, q);
    auth_caller_free(&c);
    return res;
}

json_t *storage__json_body(http_request_t *req)
{
    json_t *j = NULL;
    char why[160];
    /* The shared reader's limits (depth, duplicates); Storage's own error shape. */
    if (!body_parse_json(req->body.data, req->body.len, BODY_JSON_OBJECT | BODY_JSON_EMPTY, &j, why,
                         sizeof(why))) {
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
    bool complete = false;
    *w += cd_percent_encode(out + *w, outlen - *w, s, "-._~/", &complete);
    return complete;
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
    {"POST", "/storage/v1/object/list/*", storage__object_list, true},
    {"POST", "/storage/v1/object/move", storage__object_move, true},
    {"POST", "/storage/v1/object/copy", storage__object_copy, true},
    {"POST", "/storage/v1/object/upload/sign/*", storage__object_sign_upload, true},
    {"POST", "/storage/v1/object/sign/*", storage__object_sign, true},
    {"DELETE", "/storage/v1/object/:bucket", storage__object_delete_many, true},
    {"DELETE", "/storage/v1/object/*", storage__object_delete, true},
    {"GET", "/storage/v1/object/*", storage__object_get, false},
};
const size_t storage_routes_len = CD_ARRAY_LEN(storage_routes);
