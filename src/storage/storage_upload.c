/*
 * Uploads: POST/PUT /storage/v1/object/{bucket}/{name} (raw body or
 * multipart/form-data as storage-js sends it), PUT /object/upload/sign/...
 * with a signed upload token, and storage_put_bytes for other modules.
 *
 * Order of an upload, so that nothing half-done is ever visible:
 *   1. before the body: RLS is asked whether the caller may write the object
 *      (the INSERT is tried and rolled back) and the bucket's limits are read;
 *   2. the body streams into a temporary file (never buffered whole), with
 *      the size limit and the MIME check applied as it arrives;
 *   3. the file is fsynced, then the row is inserted/upserted as the caller
 *      and committed, and only then is the file renamed into place.
 * The POST endpoints that share /object/ (list, move, copy, sign, upload/sign)
 * are buffered routes of storage_object.c, listed ahead of the catch-all in
 * storage_stream_routes; this file never sees them.
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/crypto.h"
#include "core/log.h"
#include "http/body.h"
#include "storage/storage_internal.h"

#define UPLOAD_MAX_FIELD_BYTES  (16 * 1024) /* cacheControl, metadata */
#define UPLOAD_MAX_USER_META    (8 * 1024)
#define UPLOAD_MAX_CACHE_BYTES  128
#define UPLOAD_DEFAULT_RAW_TYPE "application/octet-stream"
#define UPLOAD_OBJECT_PREFIX    "/storage/v1/object/"
#define UPLOAD_SIGNED_PREFIX    "/storage/v1/object/upload/sign/"

typedef struct upload {
    const app_t *app;
    const storage_backend_t *be;
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1];
    char name[STORAGE_MAX_NAME_BYTES + 1];
    char owner[STORAGE_UUID_LEN + 1];
    bool upsert;
    auth_caller_t caller;
    bool have_caller;
    db_caller_t who;
    uint64_t limit;
    json_t *allowed;
    /* the body */
    bool multipart;
    storage_multipart_t mp;
    bool in_file, file_seen, file_done;
    char field_name[32]; /* the field being collected, "" to skip */
    cd_buf_t field;
    char content_type[256];
    char cache_control[UPLOAD_MAX_CACHE_BYTES];
    json_t *user_metadata;
    uint64_t size;
    EVP_MD_CTX *md5;
    char version[STORAGE_UUID_LEN + 1];
    storage_put_t *put;
    storage_err_t err;
} upload_t;

/* ------------------------------------------------------------ shared core */

json_t *storage__object_metadata(const char *etag_hex, uint64_t size, const char *mimetype,
                                 const char *cache_control)
{
    char etag[40];
    snprintf(etag, sizeof(etag), "\"%s\"", etag_hex);
    char when[40];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + n, sizeof(when) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return json_pack("{s:s, s:I, s:s, s:s, s:s, s:I, s:i}", "eTag", etag, "size", (json_int_t)size,
                     "mimetype", mimetype, "cacheControl", cache_control, "lastModified", when,
                     "contentLength", (json_int_t)size, "httpStatusCode", 200);
}

static void err_set(storage_err_t *e, const char *sc, const char *code, const char *error,
                    const char *msg)
{
    if (!e->status_code)
        storage__err_set(e, sc, code, error, msg);
}

bool storage__probe_upload(const db_caller_t *who, const char *bucket, const char *name,
                           const char *owner, bool upsert, uint64_t *limit, json_t **allowed,
                           storage_err_t *e)
{
    *allowed = NULL;
    const char *p[4] = {bucket, name, *owner ? owner : NULL, upsert ? "true" : "false"};
    db_stmt_t stmts[2] = {
        {"select json_build_object('file_size_limit', l.file_size_limit, 'allowed_mime_types', "
         "l.allowed_mime_types)::text from storage.bucket_limits($1) l",
         1, p},
        {"select storage.can_insert_object($1, $2, $3::uuid, $4::boolean)", 4, p},
    };
    PGresult *res[2] = {NULL, NULL};
    db_error_t err;
    db_status_t st = db_run(who, stmts, 2, res, &err);
    if (st != DB_OK) {
        storage__err_from_db(e, st, &err, "bucket");
        return false;
    }
    bool ok = false;
    if (PQntuples(res[0]) != 1) {
        storage__err_set(e, "404", "NoSuchBucket", "Bucket not found", "Bucket not found");
        goto done;
    }
    json_t *row = json_loads(PQgetvalue(res[0], 0, 0), 0, NULL);
    json_t *fsl = json_object_get(row, "file_size_limit");
    if (json_is_integer(fsl) && json_integer_value(fsl) > 0 &&
        (uint64_t)json_integer_value(fsl) < *limit)
        *limit = (uint64_t)json_integer_value(fsl);
    json_t *amt = json_object_get(row, "allowed_mime_types");
    if (json_is_array(amt))
        *allowed = json_incref(amt);
    json_decref(row);
    ok = true;
done:
    PQclear(res[0]);
    PQclear(res[1]);
    return ok;
}

bool storage__commit_object(const app_t *app, const db_caller_t *who, const char *bucket,
                            const char *name, const char *owner, const char *version,
                            const json_t *metadata, const json_t *user_metadata, bool upsert,
                            storage_put_t *put, char id_out[STORAGE_UUID_LEN + 1], storage_err_t *e)
{
    const storage_backend_t *be = storage__backend(app);
    char *meta = json_dumps(metadata, JSON_COMPACT);
    char *umeta = user_metadata ? json_dumps(user_metadata, JSON_COMPACT) : NULL;
    PGresult *res = NULL;
    bool ok = false;
    if (!be || !meta) {
        storage__err_set(e, "500", "InternalError", "Internal", "Internal Server Error");
        goto fail;
    }
    const char *p[6] = {bucket, name, *owner ? owner : NULL, meta, umeta, version};
    /* For an upsert, the replaced version is read and locked first, in the
     * same transaction, so its bytes can be removed after the commit. */
    static const char LOCK_OLD[] = "select o.version from storage.objects o "
                                   "where o.bucket_id = $1 and o.name = $2 for update";
    static const char UPSERT[] =
        "insert into storage.objects as o (bucket_id, name, owner, owner_id, metadata, "
        "  user_metadata, version) values ($1, $2, $3::uuid, $3, $4::jsonb, $5::jsonb, $6) "
        "on conflict (bucket_id, name) do update set owner = excluded.owner, "
        "  owner_id = excluded.owner_id, metadata = excluded.metadata, "
        "  user_metadata = excluded.user_metadata, version = excluded.version, "
        "  last_accessed_at = now() "
        "returning o.id::text";
    static const char INSERT[] =
        "insert into storage.objects (bucket_id, name, owner, owner_id, metadata, "
        "  user_metadata, version) values ($1, $2, $3::uuid, $3, $4::jsonb, $5::jsonb, $6) "
        "returning id::text";
    db_stmt_t stmts[2] = {{LOCK_OLD, 2, p}, {UPSERT, 6, p}};
    db_stmt_t insert = {INSERT, 6, p};
    PGresult *r2[2] = {NULL, NULL};
    db_error_t err;
    db_status_t st =
        upsert ? db_run(who, stmts, 2, r2, &err) : db_run(who, &insert, 1, &r2[1], &err);
    res = r2[1];
    char old[STORAGE_UUID_LEN + 1] = "";
    if (st == DB_OK && r2[0] && PQntuples(r2[0]) == 1)
        snprintf(old, sizeof(old), "%s", PQgetvalue(r2[0], 0, 0));
    PQclear(r2[0]);
    if (st != DB_OK) {
        storage__err_from_db(e, st, &err, "bucket");
        goto fail;
    }
    if (PQntuples(res) != 1) {
        storage__err_set(e, "500", "InternalError", "Internal", "Internal Server Error");
        goto fail;
    }
    snprintf(id_out, STORAGE_UUID_LEN + 1, "%s", PQgetvalue(res, 0, 0));
    /* The row is committed: now the bytes become visible. */
    bool committed = be->ops->put_commit(put);
    put = NULL;
    if (!committed) {
        log_error("storage: %s/%s is recorded but its bytes could not be put in place", bucket,
                  name);
        storage__err_set(e, "500", "InternalError", "Internal", "Internal Server Error");
        goto done;
    }
    if (*old && strcmp(old, version) != 0 && !be->ops->remove(be->self, old))
        log_warn("storage: could not remove the replaced version %s", old);
    ok = true;
    goto done;
fail:
    if (put && be)
        be->ops->put_abort(put);
done:
    PQclear(res);
    free(meta);
    free(umeta);
    return ok;
}

/* ------------------------------------------------------------ the body */

static void upload_free(upload_t *u)
{
    if (!u)
        return;
    if (u->put && u->be)
        u->be->ops->put_abort(u->put);
    if (u->have_caller)
        auth_caller_free(&u->caller);
    json_decref(u->allowed);
    json_decref(u->user_metadata);
    cd_buf_free(&u->field);
    EVP_MD_CTX_free(u->md5);
    free(u);
}

static upload_t *upload_new(const app_t *app)
{
    upload_t *u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->app = app;
    u->be = storage__backend(app);
    u->limit = storage__max_file_bytes(app);
    u->md5 = EVP_MD_CTX_new();
    cd_buf_init(&u->field, UPLOAD_MAX_FIELD_BYTES);
    snprintf(u->cache_control, sizeof(u->cache_control), "no-cache");
    if (!u->md5 || !EVP_DigestInit_ex(u->md5, EVP_md5(), NULL) || !u->be) {
        upload_free(u);
        return NULL;
    }
    return u;
}

/* Starts the temporary file once the checks passed. */
static bool upload_open(upload_t *u)
{
    if (!cd_random_uuid(u->version) || !u->be->ops->put_begin(u->be->self, u->version, &u->put)) {
        err_set(&u->err, "500", "InternalError", "Internal", "Internal Server Error");
        return false;
    }
    return true;
}

static bool upload_write(upload_t *u, const void *data, size_t len)
{
    if (u->size + len > u->limit) {
        err_set(&u->err, "413", "EntityTooLarge", "Payload too large",
                "The object exceeded the maximum allowed size");
        return false;
    }
    u->size += len;
    if (!EVP_DigestUpdate(u->md5, data, len) || !u->be->ops->put_write(u->put, data, len)) {
        err_set(&u->err, "500", "InternalError", "Internal", "Internal Server Error");
        return false;
    }
    return true;
}

/* Sets and checks the object's content type. */
static bool upload_set_type(upload_t *u, const char *ct)
{
    if (!ct || !*ct)
        ct = UPLOAD_DEFAULT_RAW_TYPE;
    if (!storage__mime_valid(ct)) {
        err_set(&u->err, "400", "InvalidMimeType", "invalid_mime_type",
                "The content type is not a valid media type");
        return false;
    }
    snprintf(u->content_type, sizeof(u->content_type), "%s", ct);
    if (!storage__mime_allowed(ct, u->allowed)) {
        char msg[320];
        snprintf(msg, sizeof(msg), "mime type %s is not supported", ct);
        err_set(&u->err, "415", "InvalidMimeType", "invalid_mime_type", msg);
        return false;
    }
    return true;
}

/* "3600" becomes "max-age=3600"; other values are kept if they are plain
 * printable ASCII, else replaced by no-cache. */
static void upload_set_cache(upload_t *u, const char *v, size_t len)
{
    if (len == 0 || len >= sizeof(u->cache_control) - 8)
        return;
    bool digits = true, printable = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        digits = digits && c >= '0' && c <= '9';
        printable = printable && c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
    }
    if (digits)
        snprintf(u->cache_control, sizeof(u->cache_control), "max-age=%.*s", (int)len, v);
    else if (printable)
        snprintf(u->cache_control, sizeof(u->cache_control), "%.*s", (int)len, v);
}

/* User metadata must be a JSON object of bounded size. */
static bool upload_set_user_metadata(upload_t *u, const char *text, size_t len)
{
    if (len > UPLOAD_MAX_USER_META) {
        err_set(&u->err, "400", "InvalidRequest", "invalid_request", "metadata is too large");
        return false;
    }
    json_t *j = NULL;
    char why[160];
    if (!body_parse_json(text, len, BODY_JSON_OBJECT, &j, why, sizeof(why))) {
        err_set(&u->err, "400", "InvalidRequest", "invalid_request",
                "metadata must be a JSON object");
        return false;
    }
    json_decref(u->user_metadata);
    u->user_metadata = j;
    return true;
}

static bool mp_part_begin(void *arg, const char *name, const char *filename,
                          const char *content_type)
{
    upload_t *u = arg;
    u->field_name[0] = '\0';
    cd_buf_reset(&u->field);
    if ((filename || !*name) && !u->file_seen) {
        u->file_seen = true;
        u->in_file = true;
        return upload_set_type(u, content_type);
    }
    if (strcmp(name, "cacheControl") == 0 || strcmp(name, "metadata") == 0)
        snprintf(u->field_name, sizeof(u->field_name), "%s", name);
    return true;
}

static bool mp_part_data(void *arg, const char *data, size_t len)
{
    upload_t *u = arg;
    if (u->in_file)
        return upload_write(u, data, len);
    if (!u->field_name[0])
        return true;
    if (!cd_buf_add(&u->field, data, len)) {
        err_set(&u->err, "400", "InvalidRequest", "invalid_request", "a form field is too large");
        return false;
    }
    return true;
}

static bool mp_part_end(void *arg)
{
    upload_t *u = arg;
    if (u->in_file) {
        u->in_file = false;
        u->file_done = true;
        return true;
    }
    if (strcmp(u->field_name, "cacheControl") == 0)
        upload_set_cache(u, u->field.data ? u->field.data : "", u->field.len);
    else if (strcmp(u->field_name, "metadata") == 0 && u->field.len)
        return upload_set_user_metadata(u, u->field.data, u->field.len);
    return true;
}

static const storage_mp_callbacks_t MP_CALLBACKS = {mp_part_begin, mp_part_data, mp_part_end};

/* Fsyncs, records and publishes the object. */
static bool upload_finish(upload_t *u, char id[STORAGE_UUID_LEN + 1])
{
    if (u->multipart && (!storage__mp_done(&u->mp) || !u->file_done)) {
        err_set(&u->err, "400", "InvalidRequest", "invalid_request",
                u->file_seen ? "The multipart body is incomplete"
                             : "The multipart body has no file part");
        return false;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    if (!EVP_DigestFinal_ex(u->md5, md, &mdlen) || !u->be->ops->put_finish(u->put)) {
        err_set(&u->err, "500", "InternalError", "Internal", "Internal Server Error");
        return false;
    }
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    hex[2 * mdlen] = '\0';
    json_t *meta = storage__object_metadata(hex, u->size, u->content_type, u->cache_control);
    if (!meta) {
        err_set(&u->err, "500", "InternalError", "Internal", "Internal Server Error");
        return false;
    }
    storage_put_t *put = u->put;
    u->put = NULL; /* consumed by commit */
    bool ok = storage__commit_object(u->app, &u->who, u->bucket, u->name, u->owner, u->version,
                                     meta, u->user_metadata, u->upsert, put, id, &u->err);
    json_decref(meta);
    return ok;
}

/* ------------------------------------------------------------ HTTP */

static void reply_path_error(http_request_t *req, storage_path_status_t st)
{
    char msg[320];
    snprintf(msg, sizeof(msg), "Invalid key: %s", storage__path_message(st));
    storage__reply_error(req, "400", "InvalidKey", "InvalidKey", msg);
}

/* The signed-upload token of a PUT /object/upload/sign/... request. */
static bool check_upload_token(http_request_t *req, upload_t *u)
{
    const char *tok = http_query_arg(req, "token");
    json_t *claims = NULL;
    storage_token_status_t ts =
        tok ? storage__token_verify(tok, u->app->jwt_secret, u->app->jwt_secret_len,
                                    (long long)time(NULL), &claims)
            : STORAGE_TOKEN_MALFORMED;
    if (ts != STORAGE_TOKEN_OK) {
        storage__reply_error(req, "400", "InvalidJWT", "InvalidJWT",
                             tok ? storage__token_message(ts) : "Missing token");
        return false;
    }
    char url[STORAGE_MAX_BUCKET_BYTES + STORAGE_MAX_NAME_BYTES + 2];
    snprintf(url, sizeof(url), "%s/%s", u->bucket, u->name);
    const char *curl = json_string_value(json_object_get(claims, "url"));
    const char *scope = json_string_value(json_object_get(claims, "scope"));
    const char *owner = json_string_value(json_object_get(claims, "owner"));
    bool ok = curl && strcmp(curl, url) == 0 && scope && strcmp(scope, "upload") == 0;
    if (ok) {
        u->upsert = json_is_true(json_object_get(claims, "upsert"));
        if (owner && cd_is_uuid(owner))
            snprintf(u->owner, sizeof(u->owner), "%s", owner);
    }
    json_decref(claims);
    if (!ok)
        storage__reply_error(req, "400", "InvalidSignature", "InvalidSignature",
                             "The url do not match the signature");
    return ok;
}

/* Past this many declared body bytes a refused upload is answered at once
 * and the connection closed; below it the body is read and dropped first, so
 * the client reads the answer instead of a reset connection. */
#define UPLOAD_MAX_DRAIN (64ULL * 1024 * 1024)

static bool begin_upload(http_request_t *req);

/* The stream's begin: on refusal, drain (return true) unless the body is
 * declared too large to be worth reading. */
static bool up_begin(http_request_t *req)
{
    if (begin_upload(req))
        return true;
    const char *cl = http_header(req, "Content-Length");
    char *end = NULL;
    unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
    return cl && end && *end == '\0' && n <= UPLOAD_MAX_DRAIN;
}

static bool begin_upload(http_request_t *req)
{
    const app_t *app = req->ctx;
    upload_t *u = upload_new(app);
    if (!u) {
        storage__reply_error(req, "500", "InternalError", "Internal", "Internal Server Error");
        return false;
    }
    req->stream_ctx = u;
    bool is_signed =
        strncmp(req->path, UPLOAD_SIGNED_PREFIX, sizeof(UPLOAD_SIGNED_PREFIX) - 1) == 0;
    storage_path_status_t ps =
        storage__split_target(req->raw_uri, is_signed ? UPLOAD_SIGNED_PREFIX : UPLOAD_OBJECT_PREFIX,
                              u->bucket, sizeof(u->bucket), u->name, sizeof(u->name));
    if (ps != STORAGE_PATH_OK) {
        reply_path_error(req, ps);
        return false;
    }
    if (is_signed) {
        if (!check_upload_token(req, u))
            return false;
        memset(&u->who, 0, sizeof(u->who));
        u->who.role = "service_role";
        u->who.claims_json = "{\"role\":\"service_role\"}";
        u->who.method = req->method;
        u->who.path = req->path;
        u->who.headers_json = "{}";
    } else {
        if (!storage__identify(req, &u->caller))
            return false;
        u->have_caller = true;
        auth_caller_db(&u->caller, req, false, &u->who);
        snprintf(u->owner, sizeof(u->owner), "%s", u->caller.user_id);
        const char *ups = http_header(req, "x-upsert");
        /* PUT is storage-js's update(): it replaces the object */
        u->upsert = strcmp(req->method, "PUT") == 0 || (ups && strcasecmp(ups, "true") == 0);
    }
    if (!storage__probe_upload(&u->who, u->bucket, u->name, u->owner, u->upsert, &u->limit,
                               &u->allowed, &u->err)) {
        storage__reply_err(req, &u->err);
        return false;
    }
    const char *ct = http_header(req, "Content-Type");
    char boundary[STORAGE_MP_MAX_BOUNDARY + 1];
    if (ct && strncasecmp(ct, "multipart/form-data", 19) == 0) {
        if (!storage__mp_boundary(ct, boundary, sizeof(boundary))) {
            storage__reply_error(req, "400", "InvalidRequest", "invalid_request",
                                 "multipart/form-data without a usable boundary");
            return false;
        }
        u->multipart = true;
        storage__mp_init(&u->mp, boundary, &MP_CALLBACKS, u);
    } else {
        /* A raw body's length is the object's: refuse a too large one now. */
        const char *cl = http_header(req, "Content-Length");
        char *end = NULL;
        unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
        if (cl && end && *end == '\0' && n > u->limit) {
            storage__reply_error(req, "413", "EntityTooLarge", "Payload too large",
                                 "The object exceeded the maximum allowed size");
            return false;
        }
        if (!upload_set_type(u, ct)) {
            storage__reply_err(req, &u->err);
            return false;
        }
        const char *cc = http_header(req, "Cache-Control");
        if (cc)
            upload_set_cache(u, cc, strlen(cc));
        const char *xm = http_header(req, "x-metadata");
        if (xm) {
            size_t xl = strlen(xm);
            unsigned char *dec = xl <= 4 * UPLOAD_MAX_USER_META / 3 + 4 ? malloc(xl + 4) : NULL;
            int dl = dec ? EVP_DecodeBlock(dec, (const unsigned char *)xm, (int)xl) : -1;
            /* EVP_DecodeBlock counts padding as zero bytes: drop them */
            while (dl > 0 && xl > 0 && xm[xl - 1] == '=') {
                dl--;
                xl--;
            }
            bool ok = dl >= 0 && upload_set_user_metadata(u, (const char *)dec, (size_t)dl);
            free(dec);
            if (!ok) {
                err_set(&u->err, "400", "InvalidRequest", "invalid_request",
                        "x-metadata must be base64 of a JSON object");
                storage__reply_err(req, &u->err);
                return false;
            }
        }
    }
    if (!upload_open(u)) {
        storage__reply_err(req, &u->err);
        return false;
    }
    return true;
}

static bool up_data(http_request_t *req, const char *buf, size_t len)
{
    upload_t *u = req->stream_ctx;
    bool ok = u->multipart ? storage__mp_feed(&u->mp, buf, len) : upload_write(u, buf, len);
    if (ok)
        return true;
    if (!u->err.status_code)
        err_set(&u->err, "400", "InvalidRequest", "invalid_request",
                u->mp.error ? u->mp.error : "bad request body");
    storage__reply_err(req, &u->err);
    /* the rest of the body is read and dropped by the HTTP layer (the stream
     * has replied); the temporary file goes now */
    if (u->put) {
        u->be->ops->put_abort(u->put);
        u->put = NULL;
    }
    return true;
}

static void up_end(http_request_t *req)
{
    upload_t *u = req->stream_ctx;
    req->stream_ctx = NULL;
    char id[STORAGE_UUID_LEN + 1] = "";
    if (!upload_finish(u, id)) {
        storage__reply_err(req, &u->err);
    } else {
        char key[STORAGE_MAX_BUCKET_BYTES + STORAGE_MAX_NAME_BYTES + 2];
        snprintf(key, sizeof(key), "%s/%s", u->bucket, u->name);
        http_reply_json(req, 200, json_pack("{s:s, s:s}", "Id", id, "Key", key));
    }
    upload_free(u);
}

static void up_cleanup(http_request_t *req)
{
    upload_free(req->stream_ctx);
    req->stream_ctx = NULL;
}

static const http_stream_ops_t UPLOAD_OPS = {up_begin, up_data, up_end, up_cleanup};

/* The first match decides. The buffered POST endpoints that share the
 * uploads' path space come first with no ops: the server buffers them and
 * routes them by storage_routes (storage.c), where their handlers are. */
const http_stream_route_t storage_stream_routes[] = {
    {"POST", "/storage/v1/object/list/*", NULL},
    {"POST", "/storage/v1/object/move", NULL},
    {"POST", "/storage/v1/object/copy", NULL},
    {"POST", "/storage/v1/object/upload/sign/*", NULL},
    {"POST", "/storage/v1/object/sign/*", NULL},
    {"PUT", "/storage/v1/object/upload/sign/*", &UPLOAD_OPS},
    {"POST", "/storage/v1/object/*", &UPLOAD_OPS},
    {"PUT", "/storage/v1/object/*", &UPLOAD_OPS},
};
const size_t storage_stream_routes_len = CD_ARRAY_LEN(storage_stream_routes);

/* ------------------------------------------------------------ C API */

storage_status_t storage_put_bytes(const app_t *app, const db_caller_t *who, const char *owner_id,
                                   const char *bucket, const char *name, const char *content_type,
                                   const void *data, size_t len, bool upsert,
                                   char object_id[STORAGE_UUID_LEN + 1])
{
    if (!bucket || !name || !storage__check_bucket(bucket) ||
        storage__check_name(name, strlen(name)) != STORAGE_PATH_OK ||
        (owner_id && *owner_id && !cd_is_uuid(owner_id)))
        return STORAGE_ERR_INVALID;
    upload_t *u = upload_new(app);
    if (!u)
        return STORAGE_ERR_INTERNAL;
    storage_status_t ret = STORAGE_ERR_INTERNAL;
    snprintf(u->bucket, sizeof(u->bucket), "%s", bucket);
    snprintf(u->name, sizeof(u->name), "%s", name);
    snprintf(u->owner, sizeof(u->owner), "%s", owner_id ? owner_id : "");
    u->upsert = upsert;
    u->who = *who;
    char id[STORAGE_UUID_LEN + 1] = "";
    if (!storage__probe_upload(&u->who, u->bucket, u->name, u->owner, u->upsert, &u->limit,
                               &u->allowed, &u->err) ||
        !upload_set_type(u, content_type ? content_type : UPLOAD_DEFAULT_RAW_TYPE) ||
        !upload_open(u) || !upload_write(u, data, len) || !upload_finish(u, id)) {
        ret = storage__err_status(&u->err);
        if (ret == STORAGE_OK)
            ret = STORAGE_ERR_INTERNAL;
        goto done;
    }
    if (object_id)
        snprintf(object_id, STORAGE_UUID_LEN + 1, "%s", id);
    ret = STORAGE_OK;
done:
    upload_free(u);
    return ret;
}
