/*
 * Object endpoints other than uploads: downloads (authenticated, public and
 * signed), info, delete, list, move, copy and signed URLs. Every lookup runs
 * as the caller, so storage.objects' row-level security decides; only public
 * URLs (bucket must be public) and valid signed URLs read as service_role.
 * Downloads are streamed from the file when the HTTP layer can do so.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/log.h"
#include "core/text.h"
#include "storage/storage_internal.h"

#define OBJ_PREFIX           "/storage/v1/object/"
#define OBJ_AUTH_PREFIX      "/storage/v1/object/authenticated/"
#define OBJ_PUBLIC_PREFIX    "/storage/v1/object/public/"
#define OBJ_SIGN_PREFIX      "/storage/v1/object/sign/"
#define OBJ_UPLOAD_PREFIX    "/storage/v1/object/upload/sign/"
#define OBJ_LIST_PREFIX      "/storage/v1/object/list/"
#define OBJ_INFO_PREFIX      "/storage/v1/object/info/"
#define OBJ_MAX_LIST         1000
#define OBJ_MAX_PATHS        1000
#define OBJ_UPLOAD_SIGN_SECS 7200
#define OBJ_KEY_MAX          (STORAGE_MAX_BUCKET_BYTES + STORAGE_MAX_NAME_BYTES + 2)

/* The row a download needs, as JSON text. */
static const char ROW_SQL[] =
    "select json_build_object('id', o.id, 'name', o.name, 'version', o.version, "
    "'metadata', o.metadata, 'updated_at', o.updated_at)::text "
    "from storage.objects o where o.bucket_id = $1 and o.name = $2";
static const char PUBLIC_ROW_SQL[] =
    "select json_build_object('id', o.id, 'name', o.name, 'version', o.version, "
    "'metadata', o.metadata, 'updated_at', o.updated_at)::text "
    "from storage.objects o join storage.buckets b on b.id = o.bucket_id "
    "where o.bucket_id = $1 and o.name = $2 and b.public";

static void reply_not_found(http_request_t *req)
{
    storage__reply_error(req, "404", "NoSuchKey", "not_found", "Object not found");
}

static void reply_path_error(http_request_t *req, storage_path_status_t st)
{
    char msg[320];
    snprintf(msg, sizeof(msg), "Invalid key: %s", storage__path_message(st));
    storage__reply_error(req, "400", "InvalidKey", "InvalidKey", msg);
}

static void reply_internal(http_request_t *req)
{
    storage__reply_error(req, "500", "InternalError", "Internal", "Internal Server Error");
}

/* The bucket and object name after prefix in the raw request target.
 * Returns false after answering 400 InvalidKey. */
static bool object_target(http_request_t *req, const char *prefix,
                          char bucket[STORAGE_MAX_BUCKET_BYTES + 1],
                          char name[STORAGE_MAX_NAME_BYTES + 1])
{
    storage_path_status_t ps =
        storage__split_target(req->raw_uri, prefix, bucket, STORAGE_MAX_BUCKET_BYTES + 1, name,
                              STORAGE_MAX_NAME_BYTES + 1);
    if (ps != STORAGE_PATH_OK)
        reply_path_error(req, ps);
    return ps == STORAGE_PATH_OK;
}

/* The bucket (and nothing after it) after prefix in the raw request target,
 * and the JSON object body. Returns NULL after answering 400. */
static json_t *bucket_target_body(http_request_t *req, const char *prefix,
                                  char bucket[STORAGE_MAX_BUCKET_BYTES + 1])
{
    if (storage__split_target(req->raw_uri, prefix, bucket, STORAGE_MAX_BUCKET_BYTES + 1, NULL,
                              0) != STORAGE_PATH_OK) {
        storage__reply_error(req, "400", "InvalidBucketName", "invalid_bucket_name",
                             "The bucket name is invalid");
        return NULL;
    }
    return storage__json_body(req);
}

/* Whether an object with metadata meta may go into a bucket that takes at most
 * limit bytes of the types allowed (as storage__probe_upload found them): the
 * same rules as an upload, 415 and 413 otherwise (replied here). */
static bool fits_destination(http_request_t *req, const json_t *meta, uint64_t limit,
                             const json_t *allowed)
{
    const char *mime = json_string_value(json_object_get(meta, "mimetype"));
    json_t *size = json_object_get(meta, "size");
    if (!storage__mime_allowed(mime ? mime : "application/octet-stream", allowed)) {
        char msg[320];
        snprintf(msg, sizeof(msg), "mime type %s is not supported",
                 mime && storage__mime_valid(mime) ? mime : "application/octet-stream");
        storage__reply_error(req, "415", "InvalidMimeType", "invalid_mime_type", msg);
        return false;
    }
    if (!json_is_integer(size) || json_integer_value(size) < 0 ||
        (uint64_t)json_integer_value(size) > limit) {
        storage__reply_error(req, "413", "EntityTooLarge", "Payload too large",
                             "The object exceeded the maximum allowed size");
        return false;
    }
    return true;
}

/* Whether the caller c may write bucket/name (x-upsert: may replace it),
 * asked of the database before any byte is copied; with meta (a copy), also
 * whether that object fits the bucket's types and size limit. who gets the
 * caller's write context. Returns false after answering. */
static bool may_write(http_request_t *req, const auth_caller_t *c, const char *bucket,
                      const char *name, const json_t *meta, bool *upsert, db_caller_t *who)
{
    const char *ups = http_header(req, "x-upsert");
    *upsert = ups && strcasecmp(ups, "true") == 0;
    auth_caller_db(c, req, false, who);
    storage_err_t e = {0};
    uint64_t limit = storage__max_file_bytes(req->ctx);
    json_t *allowed = NULL;
    if (!storage__probe_upload(who, bucket, name, c->user_id, *upsert, &limit, &allowed, &e)) {
        storage__reply_err(req, &e);
        return false;
    }
    bool ok = !meta || fits_destination(req, meta, limit, allowed);
    json_decref(allowed);
    return ok;
}

/* Checks that the object bucket/name (read as the caller) fits the bucket dest;
 * replies and returns false otherwise (404 when the source is not visible). */
static bool move_fits(http_request_t *req, const auth_caller_t *c, const char *bucket,
                      const char *name, const char *dest)
{
    const char *p[2] = {bucket, name};
    storage_query_t q = {"select o.metadata::text from storage.objects o "
                         "where o.bucket_id = $1 and o.name = $2",
                         2, p, .read_only = true, .if_none = reply_not_found};
    PGresult *res = storage__query(req, c, &q);
    if (!res)
        return false;
    json_t *meta = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    db_caller_t who;
    auth_caller_db(c, req, true, &who);
    storage_err_t e = {0};
    uint64_t limit = storage__max_file_bytes(req->ctx);
    json_t *allowed = NULL;
    bool ok = storage__bucket_limits(&who, dest, &limit, &allowed, &e);
    if (!ok)
        storage__reply_err(req, &e);
    else
        ok = fits_destination(req, meta, limit, allowed);
    json_decref(allowed);
    json_decref(meta);
    return ok;
}

static void add_header(http_request_t *req, const char *name, const char *value)
{
    if (!http_add_header(req, name, value))
        log_warn("storage: dropped response header %s (too many)", name);
}

/* Percent-encodes a file name for Content-Disposition (RFC 5987 attr-char). */
static void encode_filename(const char *s, char *out, size_t outlen)
{
    (void)cd_percent_encode(out, outlen, s, "!#$&+-.^_`|~", NULL);
}

/* Parses a single "bytes=" range against size. Returns 1 for a range in
 * [*from, *to], 0 for none or one we ignore (several ranges), -1 when not
 * satisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *from, uint64_t *to)
{
    if (!h || strncasecmp(h, "bytes=", 6) != 0 || strchr(h, ','))
        return 0;
    const char *p = h + 6;
    char *end;
    errno = 0;
    if (*p == '-') {
        unsigned long long n = strtoull(p + 1, &end, 10);
        if (end == p + 1 || *end || errno)
            return 0;
        if (n == 0 || size == 0)
            return -1;
        *from = n >= size ? 0 : size - n;
        *to = size - 1;
        return 1;
    }
    if (*p < '0' || *p > '9')
        return 0;
    unsigned long long a = strtoull(p, &end, 10);
    if (*end != '-' || errno)
        return 0;
    p = end + 1;
    unsigned long long b = size ? size - 1 : 0;
    if (*p) {
        if (*p < '0' || *p > '9')
            return 0;
        b = strtoull(p, &end, 10);
        if (*end || errno || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    if (b >= size)
        b = size - 1;
    *from = a;
    *to = b;
    return 1;
}

/* Sends len bytes of fd from off on, then closes fd. */
static void reply_file(http_request_t *req, int status, const char *ctype, int fd, uint64_t off,
                       uint64_t len)
{
    if (len == 0) {
        close(fd);
        http_reply(req, status, ctype, NULL, 0);
        return;
    }
#ifdef HTTP_HAVE_REPLY_FD
    http_reply_fd(req, status, ctype, fd, off, len);
#else
    /* Without a file response in the HTTP layer the bytes are read into
     * memory, bounded by the object size limit. */
    if (req->head_only) {
        close(fd);
        http_reply(req, status, ctype, NULL, 0);
        return;
    }
    const app_t *app = req->ctx;
    if (len > storage__max_file_bytes(app) || len > (uint64_t)SIZE_MAX) {
        close(fd);
        log_error("storage: object of %llu bytes is too large to serve from memory",
                  (unsigned long long)len);
        reply_internal(req);
        return;
    }
    char *buf = malloc((size_t)len);
    size_t got = 0;
    while (buf && got < len) {
        ssize_t r = pread(fd, buf + got, (size_t)(len - got), (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf || got != len) {
        free(buf);
        reply_internal(req);
        return;
    }
    http_reply_take(req, status, ctype, buf, (size_t)len);
#endif
}

void storage__serve_object(http_request_t *req, const char *row_json)
{
    const app_t *app = req->ctx;
    const storage_backend_t *be = storage__backend(app);
    json_t *row = json_loads(row_json, 0, NULL);
    const char *version = json_string_value(json_object_get(row, "version"));
    const char *name = json_string_value(json_object_get(row, "name"));
    json_t *meta = json_object_get(row, "metadata");
    const char *mime = json_string_value(json_object_get(meta, "mimetype"));
    const char *cache = json_string_value(json_object_get(meta, "cacheControl"));
    const char *etag = json_string_value(json_object_get(meta, "eTag"));
    storage_blob_t blob = {.fd = -1};
    if (!be || !version || !be->ops->get(be->self, version, &blob)) {
        if (version)
            log_warn("storage: object %s has no bytes (version %s)", name ? name : "?", version);
        json_decref(row);
        reply_not_found(req);
        return;
    }
    char mime_buf[256];
    snprintf(mime_buf, sizeof(mime_buf), "%s",
             mime && storage__mime_valid(mime) ? mime : "application/octet-stream");
    mime = mime_buf;
    char last_mod[64];
    struct tm tm;
    gmtime_r(&blob.mtime, &tm);
    strftime(last_mod, sizeof(last_mod), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (etag)
        add_header(req, "ETag", etag);
    add_header(req, "Last-Modified", last_mod);
    add_header(req, "Cache-Control", cache ? cache : "no-cache");
    add_header(req, "Accept-Ranges", "bytes");
    /* nosniff and CSP sandbox are on every response (src/http/server.c) */

    const char *download = http_query_arg(req, "download");
    if (download || !storage__mime_inline(mime)) {
        const char *fname = download && *download ? download : NULL;
        if (!fname && name) {
            const char *slash = strrchr(name, '/');
            fname = slash ? slash + 1 : name;
        }
        char enc[512], cd[1200];
        encode_filename(fname ? fname : "download", enc, sizeof(enc));
        snprintf(cd, sizeof(cd), "attachment; filename=\"%s\"; filename*=UTF-8''%s", enc, enc);
        add_header(req, "Content-Disposition", cd);
    }

    const char *inm = http_header(req, "If-None-Match");
    if (etag && inm && strcmp(inm, etag) == 0) {
        close(blob.fd);
        json_decref(row);
        http_reply(req, 304, mime, NULL, 0);
        return;
    }
    uint64_t from = 0, to = blob.size ? blob.size - 1 : 0;
    int r = parse_range(http_header(req, "Range"), blob.size, &from, &to);
    char cr[96];
    if (r < 0) {
        snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)blob.size);
        add_header(req, "Content-Range", cr);
        close(blob.fd);
        json_decref(row);
        json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "statusCode", "416", "code", "InvalidRange",
                              "error", "invalid_range", "message", "The range is not satisfiable");
        http_reply_json(req, 416, j);
        return;
    }
    if (r > 0) {
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)from,
                 (unsigned long long)to, (unsigned long long)blob.size);
        add_header(req, "Content-Range", cr);
        reply_file(req, 206, mime, blob.fd, from, to - from + 1);
    } else {
        reply_file(req, 200, mime, blob.fd, 0, blob.size);
    }
    json_decref(row);
}

/* Looks up bucket/name with sql (as c, or service_role when c is NULL) and
 * serves it. */
static void lookup_and_serve(http_request_t *req, const auth_caller_t *c, const char *sql,
                             const char *bucket, const char *name)
{
    const char *p[2] = {bucket, name};
    storage_query_t q = {sql, 2, p, .read_only = true, .if_none = reply_not_found};
    PGresult *res = storage__query(req, c, &q);
    if (res)
        storage__serve_object(req, PQgetvalue(res, 0, 0));
    PQclear(res);
}

void storage__object_get(http_request_t *req)
{
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1], name[STORAGE_MAX_NAME_BYTES + 1];
    const char *prefix = strncmp(req->raw_uri, OBJ_AUTH_PREFIX, sizeof(OBJ_AUTH_PREFIX) - 1) == 0
                             ? OBJ_AUTH_PREFIX
                             : OBJ_PREFIX;
    if (!object_target(req, prefix, bucket, name))
        return;
    auth_caller_t c;
    if (!storage__identify(req, &c))
        return;
    lookup_and_serve(req, &c, ROW_SQL, bucket, name);
    auth_caller_free(&c);
}

void storage__object_get_public(http_request_t *req)
{
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1], name[STORAGE_MAX_NAME_BYTES + 1];
    if (!object_target(req, OBJ_PUBLIC_PREFIX, bucket, name))
        return;
    lookup_and_serve(req, NULL, PUBLIC_ROW_SQL, bucket, name);
}

void storage__object_get_signed(http_request_t *req)
{
    const app_t *app = req->ctx;
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1], name[STORAGE_MAX_NAME_BYTES + 1];
    if (!object_target(req, OBJ_SIGN_PREFIX, bucket, name))
        return;
    const char *tok = http_query_arg(req, "token");
    if (!tok) {
        storage__reply_error(req, "400", "InvalidJWT", "InvalidJWT", "Missing token");
        return;
    }
    json_t *claims = NULL;
    storage_token_status_t ts = storage__token_verify(tok, app->jwt_secret, app->jwt_secret_len,
                                                      (long long)time(NULL), &claims);
    if (ts != STORAGE_TOKEN_OK) {
        storage__reply_error(req, "400", "InvalidJWT", "InvalidJWT", storage__token_message(ts));
        return;
    }
    char url[OBJ_KEY_MAX];
    snprintf(url, sizeof(url), "%s/%s", bucket, name);
    const char *curl = json_string_value(json_object_get(claims, "url"));
    const char *scope = json_string_value(json_object_get(claims, "scope"));
    bool ok = curl && strcmp(curl, url) == 0 && scope && strcmp(scope, "download") == 0;
    json_decref(claims);
    if (!ok) {
        storage__reply_error(req, "400", "InvalidSignature", "InvalidSignature",
                             "The url do not match the signature");
        return;
    }
    lookup_and_serve(req, NULL, ROW_SQL, bucket, name);
}

void storage__object_info(http_request_t *req)
{
    static const char *const PREFIXES[] = {"/storage/v1/object/info/authenticated/",
                                           "/storage/v1/object/info/public/", OBJ_INFO_PREFIX};
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1], name[STORAGE_MAX_NAME_BYTES + 1];
    storage_path_status_t ps = STORAGE_PATH_EMPTY;
    for (size_t i = 0; i < CD_ARRAY_LEN(PREFIXES) && ps != STORAGE_PATH_OK; i++)
        if (strncmp(req->raw_uri, PREFIXES[i], strlen(PREFIXES[i])) == 0)
            ps = storage__split_target(req->raw_uri, PREFIXES[i], bucket, sizeof(bucket), name,
                                       sizeof(name));
    if (ps != STORAGE_PATH_OK) {
        reply_path_error(req, ps);
        return;
    }
    const char *p[2] = {bucket, name};
    storage_query_t q = {
        "select json_build_object('id', o.id, 'name', o.name, 'version', o.version, "
        "'bucket_id', o.bucket_id, 'size', (o.metadata->>'size')::bigint, "
        "'content_type', o.metadata->>'mimetype', 'cache_control', o.metadata->>'cacheControl', "
        "'etag', o.metadata->>'eTag', 'last_modified', o.metadata->>'lastModified', "
        "'metadata', o.user_metadata, 'created_at', o.created_at, 'updated_at', o.updated_at, "
        "'last_accessed_at', o.last_accessed_at)::text "
        "from storage.objects o where o.bucket_id = $1 and o.name = $2",
        2, p, .read_only = true, .if_none = reply_not_found};
    PGresult *res = storage__query_caller(req, &q);
    if (res)
        storage__reply_json_text(req, PQgetvalue(res, 0, 0));
    PQclear(res);
}

void storage__object_delete(http_request_t *req)
{
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1], name[STORAGE_MAX_NAME_BYTES + 1];
    if (!object_target(req, OBJ_PREFIX, bucket, name))
        return;
    const char *p[2] = {bucket, name};
    storage_query_t q = {"select coalesce(json_agg(d.version), '[]')::text, count(*) from ("
                         "delete from storage.objects where bucket_id = $1 and name = $2 "
                         "returning version) d",
                         2, p, .read_only = false};
    PGresult *res = storage__query_caller(req, &q);
    if (!res)
        return;
    if (strcmp(PQgetvalue(res, 0, 1), "0") == 0) {
        reply_not_found(req);
    } else {
        storage__remove_versions(req->ctx, PQgetvalue(res, 0, 0));
        storage__reply_message(req, "Successfully deleted");
    }
    PQclear(res);
}

/* Validates a JSON array of object names; returns it as compact JSON text
 * (malloc'd) or NULL after replying 400. */
static char *names_array(http_request_t *req, json_t *arr, const char *field)
{
    char msg[160];
    if (!json_is_array(arr) || json_array_size(arr) > OBJ_MAX_PATHS) {
        snprintf(msg, sizeof(msg), "%s must be an array of at most %d object names", field,
                 OBJ_MAX_PATHS);
        storage__reply_error(req, "400", "InvalidRequest", "invalid_request", msg);
        return NULL;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        storage_path_status_t ps =
            s ? storage__check_name(s, json_string_length(v)) : STORAGE_PATH_EMPTY;
        if (ps != STORAGE_PATH_OK) {
            reply_path_error(req, ps);
            return NULL;
        }
    }
    char *text = json_dumps(arr, JSON_COMPACT);
    if (!text)
        reply_internal(req);
    return text;
}

void storage__object_delete_many(http_request_t *req)
{
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1];
    json_t *body = bucket_target_body(req, OBJ_PREFIX, bucket);
    if (!body)
        return;
    char *names = names_array(req, json_object_get(body, "prefixes"), "prefixes");
    json_decref(body);
    if (!names)
        return;
    const char *p[2] = {bucket, names};
    storage_query_t q = {
        "with d as (delete from storage.objects where bucket_id = $1 "
        "  and name in (select jsonb_array_elements_text($2::jsonb)) returning *) "
        "select coalesce(json_agg(json_build_object('bucket_id', d.bucket_id, 'name', d.name, "
        "  'id', d.id, 'owner', d.owner, 'updated_at', d.updated_at, 'created_at', d.created_at, "
        "  'last_accessed_at', d.last_accessed_at, 'metadata', d.metadata) order by d.name), "
        "  '[]')::text, coalesce(json_agg(d.version), '[]')::text from d",
        2, p, .read_only = false};
    PGresult *res = storage__query_caller(req, &q);
    free(names);
    if (!res)
        return;
    storage__remove_versions(req->ctx, PQgetvalue(res, 0, 1));
    storage__reply_json_text(req, PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* ------------------------------------------------------------ POST endpoints */

void storage__object_list(http_request_t *req)
{
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1];
    json_t *body = bucket_target_body(req, OBJ_LIST_PREFIX, bucket);
    if (!body)
        return;
    const char *prefix = json_string_value(json_object_get(body, "prefix"));
    const char *search = json_string_value(json_object_get(body, "search"));
    json_t *sort = json_object_get(body, "sortBy");
    const char *col = json_string_value(json_object_get(sort, "column"));
    const char *order = json_string_value(json_object_get(sort, "order"));
    json_t *jl = json_object_get(body, "limit"), *jo = json_object_get(body, "offset");
    long long limit = json_is_integer(jl) ? json_integer_value(jl) : 100;
    long long offset = json_is_integer(jo) ? json_integer_value(jo) : 0;
    if (limit < 1)
        limit = 1;
    if (limit > OBJ_MAX_LIST)
        limit = OBJ_MAX_LIST;
    if (offset < 0)
        offset = 0;
    char pfx[STORAGE_MAX_NAME_BYTES + 2] = "";
    size_t plen = prefix ? strlen(prefix) : 0;
    if (plen > STORAGE_MAX_NAME_BYTES || (search && strlen(search) > STORAGE_MAX_NAME_BYTES)) {
        json_decref(body);
        storage__reply_error(req, "400", "InvalidRequest", "invalid_request",
                             "prefix or search is too long");
        return;
    }
    if (plen) {
        snprintf(pfx, sizeof(pfx), "%s%s", prefix, prefix[plen - 1] == '/' ? "" : "/");
        /* the prefix must itself be a valid folder path */
        if (storage__check_name(pfx, strlen(pfx) - 1) != STORAGE_PATH_OK) {
            json_decref(body);
            reply_path_error(req, storage__check_name(pfx, strlen(pfx) - 1));
            return;
        }
    }
    int levels = 1;
    for (const char *s = pfx; *s; s++)
        levels += *s == '/';
    char lim[24], off[24], lev[16];
    snprintf(lim, sizeof(lim), "%lld", limit);
    snprintf(off, sizeof(off), "%lld", offset);
    snprintf(lev, sizeof(lev), "%d", levels);
    const char *p[8] = {pfx,
                        bucket,
                        lim,
                        lev,
                        off,
                        search ? search : "",
                        col ? col : "name",
                        order ? order : "asc"};
    storage_query_t q = {"select coalesce(json_agg(s), '[]')::text from storage.search($1, $2, "
                         "$3::int, $4::int, $5::int, $6, $7, $8) s",
                         8, p, .read_only = true};
    PGresult *res = storage__query_caller(req, &q);
    json_decref(body);
    if (res)
        storage__reply_json_text(req, PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* Reads {bucketId, sourceKey, destinationKey, destinationBucket} of move/copy. */
static bool move_args(http_request_t *req, json_t *body, const char **sb, const char **sk,
                      const char **db, const char **dk)
{
    *sb = json_string_value(json_object_get(body, "bucketId"));
    *sk = json_string_value(json_object_get(body, "sourceKey"));
    *dk = json_string_value(json_object_get(body, "destinationKey"));
    *db = json_string_value(json_object_get(body, "destinationBucket"));
    if (!*db)
        *db = *sb;
    if (!*sb || !*sk || !*dk) {
        storage__reply_error(req, "400", "InvalidRequest", "invalid_request",
                             "bucketId, sourceKey and destinationKey are required");
        return false;
    }
    if (!storage__check_bucket(*sb) || !storage__check_bucket(*db)) {
        storage__reply_error(req, "400", "InvalidBucketName", "invalid_bucket_name",
                             "The bucket name is invalid");
        return false;
    }
    storage_path_status_t ps = storage__check_name(*sk, strlen(*sk));
    if (ps == STORAGE_PATH_OK)
        ps = storage__check_name(*dk, strlen(*dk));
    if (ps != STORAGE_PATH_OK) {
        reply_path_error(req, ps);
        return false;
    }
    return true;
}

/* The body of a move or copy request with its checked source and
 * destination, and the caller; NULL when the reply is already sent. */
static json_t *move_request(http_request_t *req, const char **sb, const char **sk, const char **db,
                            const char **dk, auth_caller_t *c)
{
    json_t *body = storage__json_body(req);
    if (!body || !move_args(req, body, sb, sk, db, dk) || !storage__identify(req, c)) {
        json_decref(body);
        return NULL;
    }
    return body;
}

void storage__object_move(http_request_t *req)
{
    const char *sb, *sk, *db, *dk;
    auth_caller_t c;
    json_t *body = move_request(req, &sb, &sk, &db, &dk, &c);
    if (!body)
        return;
    /* into another bucket: the destination's types and size limit, as an upload */
    if (strcmp(sb, db) != 0 && !move_fits(req, &c, sb, sk, db)) {
        auth_caller_free(&c);
        json_decref(body);
        return;
    }
    /* The bytes are keyed by version, so a move is a metadata change only. */
    const char *p[4] = {sb, sk, db, dk};
    storage_query_t q = {"update storage.objects set bucket_id = $3, name = $4, "
                         "last_accessed_at = now() where bucket_id = $1 and name = $2 "
                         "returning id::text",
                         4, p, .if_none = reply_not_found};
    PGresult *res = storage__query(req, &c, &q);
    if (res)
        http_reply_json(req, 200,
                        json_pack("{s:s, s:s, s:s}", "message", "Successfully moved", "Id",
                                  PQgetvalue(res, 0, 0), "Key", dk));
    PQclear(res);
    auth_caller_free(&c);
    json_decref(body);
}

void storage__object_copy(http_request_t *req)
{
    const app_t *app = req->ctx;
    const storage_backend_t *be = storage__backend(app);
    const char *sb, *sk, *db, *dk;
    auth_caller_t c;
    json_t *body = move_request(req, &sb, &sk, &db, &dk, &c);
    if (!body)
        return;
    PGresult *res = NULL;
    storage_put_t *put = NULL;
    json_t *meta = NULL, *umeta = NULL;
    const char *p[2] = {sb, sk};
    storage_query_t q = {"select o.version, o.metadata::text, o.user_metadata::text "
                         "from storage.objects o where o.bucket_id = $1 and o.name = $2",
                         2, p, .read_only = true, .if_none = reply_not_found};
    res = storage__query(req, &c, &q);
    if (!res)
        goto done;
    meta = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
    if (!PQgetisnull(res, 0, 2))
        umeta = json_loads(PQgetvalue(res, 0, 2), 0, NULL);
    bool upsert;
    db_caller_t who;
    if (!may_write(req, &c, db, dk, meta, &upsert, &who))
        goto done;
    char version[STORAGE_UUID_LEN + 1], id[STORAGE_UUID_LEN + 1];
    if (!be || !json_is_object(meta) || !cd_random_uuid(version) ||
        !be->ops->put_begin(be->self, version, &put)) {
        reply_internal(req);
        goto done;
    }
    if (!be->ops->copy(be->self, PQgetvalue(res, 0, 0), put) || !be->ops->put_finish(put)) {
        be->ops->put_abort(put);
        put = NULL;
        reply_internal(req);
        goto done;
    }
    storage_put_t *owned = put;
    put = NULL;
    storage_err_t e = {0};
    if (!storage__commit_object(app, &who, db, dk, c.user_id, version, meta, umeta, upsert, owned,
                                id, &e)) {
        storage__reply_err(req, &e);
        goto done;
    }
    char key[OBJ_KEY_MAX];
    snprintf(key, sizeof(key), "%s/%s", db, dk);
    http_reply_json(req, 200, json_pack("{s:s, s:s}", "Id", id, "Key", key));
done:
    if (put)
        be->ops->put_abort(put);
    json_decref(meta);
    json_decref(umeta);
    PQclear(res);
    auth_caller_free(&c);
    json_decref(body);
}

/* The expiresIn of a sign request, or -1 after replying 400. */
static long expires_in(http_request_t *req, json_t *body)
{
    json_t *v = json_object_get(body, "expiresIn");
    double d = json_is_number(v) ? json_number_value(v) : -1;
    if (d < 1 || d > (double)STORAGE_MAX_SIGN_SECONDS) {
        storage__reply_error(req, "400", "InvalidRequest", "invalid_request",
                             "expiresIn must be a number of seconds, at least 1");
        return -1;
    }
    return (long)d;
}

static void object_sign_one(http_request_t *req)
{
    const app_t *app = req->ctx;
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1], name[STORAGE_MAX_NAME_BYTES + 1];
    if (!object_target(req, OBJ_SIGN_PREFIX, bucket, name))
        return;
    json_t *body = storage__json_body(req);
    if (!body)
        return;
    long exp = expires_in(req, body);
    json_decref(body);
    if (exp < 0)
        return;
    const char *p[2] = {bucket, name};
    storage_query_t q = {"select 1 from storage.objects where bucket_id = $1 and name = $2", 2, p,
                         .read_only = true, .if_none = reply_not_found};
    PGresult *res = storage__query_caller(req, &q);
    char url[OBJ_KEY_MAX * 3 + STORAGE_TOKEN_MAX_BYTES];
    if (!res)
        return;
    if (!storage_signed_url(app, bucket, name, exp, false, url, sizeof(url)))
        reply_internal(req);
    else
        http_reply_json(req, 200, json_pack("{s:s}", "signedURL", url));
    PQclear(res);
}

static void object_sign_many(http_request_t *req)
{
    const app_t *app = req->ctx;
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1];
    json_t *body = bucket_target_body(req, OBJ_SIGN_PREFIX, bucket);
    if (!body)
        return;
    long exp = expires_in(req, body);
    json_t *paths = json_object_get(body, "paths");
    char *names = exp < 0 ? NULL : names_array(req, paths, "paths");
    const char *p[2] = {bucket, names};
    storage_query_t q = {"select coalesce(json_agg(o.name), '[]')::text from storage.objects o "
                         "where o.bucket_id = $1 and o.name in "
                         "(select jsonb_array_elements_text($2::jsonb))",
                         2, p, .read_only = true};
    PGresult *res = names ? storage__query_caller(req, &q) : NULL;
    free(names);
    if (!res) {
        json_decref(body);
        return;
    }
    json_t *visible = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    json_t *out = json_array();
    size_t i, j;
    json_t *v, *w;
    char url[OBJ_KEY_MAX * 3 + STORAGE_TOKEN_MAX_BYTES];
    json_array_foreach(paths, i, v)
    {
        bool seen = false;
        json_array_foreach(visible, j, w) if (json_equal(v, w)) seen = true;
        json_t *item;
        if (seen &&
            storage_signed_url(app, bucket, json_string_value(v), exp, false, url, sizeof(url)))
            item = json_pack("{s:n, s:O, s:s}", "error", "path", v, "signedURL", url);
        else
            item = json_pack("{s:s, s:O, s:n}", "error",
                             "Either the object does not exist or you do not have access to it",
                             "path", v, "signedURL");
        json_array_append_new(out, item);
    }
    json_decref(visible);
    json_decref(body);
    http_reply_json(req, 200, out);
}

void storage__object_sign_upload(http_request_t *req)
{
    const app_t *app = req->ctx;
    char bucket[STORAGE_MAX_BUCKET_BYTES + 1], name[STORAGE_MAX_NAME_BYTES + 1];
    if (!object_target(req, OBJ_UPLOAD_PREFIX, bucket, name))
        return;
    auth_caller_t c;
    if (!storage__identify(req, &c))
        return;
    bool upsert;
    db_caller_t who;
    if (!may_write(req, &c, bucket, name, NULL, &upsert, &who)) {
        auth_caller_free(&c);
        return;
    }
    char url[OBJ_KEY_MAX];
    snprintf(url, sizeof(url), "%s/%s", bucket, name);
    long long now = (long long)time(NULL);
    json_t *claims =
        json_pack("{s:s, s:s, s:b, s:I, s:I}", "url", url, "scope", "upload", "upsert", upsert,
                  "iat", (json_int_t)now, "exp", (json_int_t)(now + OBJ_UPLOAD_SIGN_SECS));
    if (claims && *c.user_id)
        json_object_set_new(claims, "owner", json_string(c.user_id));
    auth_caller_free(&c);
    char *tok = claims ? storage__token_sign(claims, app->jwt_secret, app->jwt_secret_len) : NULL;
    json_decref(claims);
    if (!tok) {
        reply_internal(req);
        return;
    }
    char path[OBJ_KEY_MAX + STORAGE_TOKEN_MAX_BYTES + 64];
    snprintf(path, sizeof(path), "/object/upload/sign/%s?token=%s", url, tok);
    http_reply_json(req, 200, json_pack("{s:s, s:s}", "url", path, "token", tok));
    free(tok);
}

void storage__object_sign(http_request_t *req)
{
    /* sign/<bucket>/<name> signs one object, sign/<bucket> a list of them */
    if (strchr(req->path + sizeof(OBJ_SIGN_PREFIX) - 1, '/'))
        object_sign_one(req);
    else
        object_sign_many(req);
}
