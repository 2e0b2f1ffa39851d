/*
 * Bucket endpoints of /storage/v1: list, get, create, update, empty and
 * delete, as storage-js's StorageBucketApi calls them. Everything runs as the
 * caller, so storage.buckets' policies decide (admins manage buckets,
 * service_role bypasses RLS); the database builds the JSON.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "storage/storage_internal.h"

#define BUCKET_COLUMNS                                                                             \
    "json_build_object('id', b.id, 'name', b.name, 'owner', coalesce(b.owner::text, ''), "         \
    "'owner_id', b.owner_id, 'public', b.public, 'type', b.type, "                                 \
    "'file_size_limit', b.file_size_limit, 'allowed_mime_types', b.allowed_mime_types, "           \
    "'created_at', b.created_at, 'updated_at', b.updated_at)"
#define BUCKET_MAX_MIME_TYPES 100

static void reply_bucket_not_found(http_request_t *req)
{
    storage__reply_error(req, "404", "NoSuchBucket", "Bucket not found", "Bucket not found");
}

/* The :id of the route, checked; NULL after replying 400. */
static const char *bucket_param(http_request_t *req)
{
    const char *id = req->nparams ? req->params[0] : NULL;
    if (!id || !storage__check_bucket(id)) {
        storage__reply_error(req, "400", "InvalidBucketName", "invalid_bucket_name",
                             "The bucket name is invalid");
        return NULL;
    }
    return id;
}

void storage__bucket_list(http_request_t *req)
{
    const char *limit = http_query_arg(req, "limit");
    const char *offset = http_query_arg(req, "offset");
    const char *search = http_query_arg(req, "search");
    const char *col = http_query_arg(req, "sortColumn");
    const char *order = http_query_arg(req, "sortOrder");
    char lim[24] = "1000", off[24] = "0";
    if (limit) {
        char *end;
        long v = strtol(limit, &end, 10);
        if (*end || v < 1 || v > 1000) {
            storage__reply_error(req, "400", "InvalidRequest", "invalid_request",
                                 "limit must be between 1 and 1000");
            return;
        }
        snprintf(lim, sizeof(lim), "%ld", v);
    }
    if (offset) {
        char *end;
        long v = strtol(offset, &end, 10);
        if (*end || v < 0) {
            storage__reply_error(req, "400", "InvalidRequest", "invalid_request",
                                 "offset must be a non-negative integer");
            return;
        }
        snprintf(off, sizeof(off), "%ld", v);
    }
    /* the sort column is one of a fixed set, never user text in SQL */
    static const char *const COLS[] = {"id", "name", "created_at", "updated_at"};
    const char *sort_col = "name";
    for (size_t i = 0; col && i < CD_ARRAY_LEN(COLS); i++)
        if (strcmp(col, COLS[i]) == 0)
            sort_col = COLS[i];
    bool desc = order && strcmp(order, "desc") == 0;
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "select coalesce(json_agg(" BUCKET_COLUMNS " order by b.%s %s), '[]')::text from ("
             "select * from storage.buckets b where $1::text is null or "
             "b.name ilike '%%' || storage.like_escape($1) || '%%' order by b.%s %s "
             "limit $2::int offset $3::int) b",
             sort_col, desc ? "desc" : "asc", sort_col, desc ? "desc" : "asc");
    const char *p[3] = {search && *search ? search : NULL, lim, off};
    PGresult *res = storage__query_caller(req, &(storage_query_t){sql, 3, p, .read_only = true});
    if (!res)
        return;
    storage__reply_json_text(req, PQgetvalue(res, 0, 0));
    PQclear(res);
}

void storage__bucket_get(http_request_t *req)
{
    const char *id = bucket_param(req);
    if (!id)
        return;
    const char *p[1] = {id};
    storage_query_t q = {"select " BUCKET_COLUMNS "::text from storage.buckets b where b.id = $1",
                         1, p, .read_only = true, .if_none = reply_bucket_not_found};
    PGresult *res = storage__query_caller(req, &q);
    if (res)
        storage__reply_json_text(req, PQgetvalue(res, 0, 0));
    PQclear(res);
}

/* Parses file_size_limit: a positive integer, or a string such as "5MB"
 * (B, KB, MB, GB: powers of 1000, as Supabase). 0 = absent or null. Returns
 * false for anything else. */
static bool parse_size_limit(const json_t *v, long long *out)
{
    *out = 0;
    if (!v || json_is_null(v))
        return true;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return *out > 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d < 1 || d > 9.0e15)
            return false;
        *out = (long long)d;
        return true;
    }
    const char *s = json_string_value(v);
    if (!s)
        return false;
    char *end;
    long long n = strtoll(s, &end, 10);
    if (end == s || n <= 0)
        return false;
    while (*end == ' ')
        end++;
    long long mul = 0;
    if (*end == '\0' || strcasecmp(end, "b") == 0)
        mul = 1;
    else if (strcasecmp(end, "kb") == 0)
        mul = 1000;
    else if (strcasecmp(end, "mb") == 0)
        mul = 1000 * 1000;
    else if (strcasecmp(end, "gb") == 0)
        mul = 1000LL * 1000 * 1000;
    if (!mul || n > (9000000000000000LL / mul))
        return false;
    *out = n * mul;
    return true;
}

/* Validates allowed_mime_types (null, or an array of media types or
 * wildcards) and returns it as JSON text for the database (NULL for none);
 * *ok false after replying 400. */
static char *mime_types_json(http_request_t *req, const json_t *v, bool *ok)
{
    *ok = true;
    if (!v || json_is_null(v))
        return NULL;
    bool valid = json_is_array(v) && json_array_size(v) <= BUCKET_MAX_MIME_TYPES;
    size_t i;
    const json_t *t;
    json_array_foreach(v, i, t)
    {
        const char *s = json_string_value(t);
        char probe[300];
        if (!s) {
            valid = false;
            break;
        }
        /* a wildcard such as image/(star) is checked as image/x */
        size_t n = strlen(s);
        if (n >= 2 && n < sizeof(probe) && strcmp(s + n - 2, "/*") == 0) {
            snprintf(probe, sizeof(probe), "%.*s/x", (int)(n - 2), s);
            s = probe;
        }
        if (!storage__mime_valid(s) && strcmp(json_string_value(t), "*/*") != 0)
            valid = false;
    }
    if (!valid) {
        storage__reply_error(req, "400", "InvalidRequest", "invalid_request",
                             "allowed_mime_types must be an array of media types like "
                             "\"image/png\" or \"image/*\"");
        *ok = false;
        return NULL;
    }
    char *s = json_dumps(v, JSON_COMPACT);
    if (!s) {
        *ok = false;
        storage__reply_error(req, "500", "InternalError", "Internal", "Internal Server Error");
    }
    return s;
}

/* The bucket settings of a create/update body. Returns false after replying. */
static bool bucket_settings(http_request_t *req, json_t *body, char *size_text, size_t size_len,
                            char **mimes, const char **pub)
{
    long long limit;
    if (!parse_size_limit(json_object_get(body, "file_size_limit"), &limit)) {
        storage__reply_error(req, "400", "InvalidRequest", "invalid_request",
                             "file_size_limit must be a positive number of bytes or a size like "
                             "\"5MB\"");
        return false;
    }
    const app_t *app = req->ctx;
    if ((uint64_t)limit > storage__max_file_bytes(app)) {
        storage__reply_error(req, "413", "EntityTooLarge", "Payload too large",
                             "file_size_limit exceeds the server's STORAGE_MAX_FILE_BYTES");
        return false;
    }
    if (limit > 0)
        snprintf(size_text, size_len, "%lld", limit);
    else
        size_text[0] = '\0';
    bool ok;
    *mimes = mime_types_json(req, json_object_get(body, "allowed_mime_types"), &ok);
    if (!ok)
        return false;
    json_t *jp = json_object_get(body, "public");
    if (jp && !json_is_boolean(jp)) {
        free(*mimes);
        *mimes = NULL;
        storage__reply_error(req, "400", "InvalidRequest", "invalid_request",
                             "public must be true or false");
        return false;
    }
    *pub = json_is_true(jp) ? "true" : "false";
    return true;
}

void storage__bucket_create(http_request_t *req)
{
    json_t *body = storage__json_body(req);
    if (!body)
        return;
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *id = json_string_value(json_object_get(body, "id"));
    if (!name)
        name = id;
    if (!id)
        id = name;
    char size[32];
    char *mimes = NULL;
    const char *pub;
    if (!name || !storage__check_bucket(name) || strcmp(id, name) != 0) {
        storage__reply_error(req, "400", "InvalidBucketName", "invalid_bucket_name",
                             "The bucket name is invalid: use 1 to 100 letters, digits, '_', '-' "
                             "or '.', and the same id and name");
        goto done;
    }
    if (!bucket_settings(req, body, size, sizeof(size), &mimes, &pub))
        goto done;
    json_t *type = json_object_get(body, "type");
    if (type && !json_is_null(type) &&
        (!json_is_string(type) || strcmp(json_string_value(type), "STANDARD") != 0)) {
        storage__reply_error(req, "400", "InvalidRequest", "invalid_request",
                             "only STANDARD buckets are supported");
        goto done;
    }
    const char *p[4] = {id, pub, *size ? size : NULL, mimes};
    storage_query_t q = {
        "insert into storage.buckets (id, name, owner, owner_id, public, file_size_limit, "
        "allowed_mime_types) values ($1, $1, auth.uid(), auth.uid()::text, $2::boolean, "
        "$3::bigint, (select array_agg(x) from jsonb_array_elements_text($4::jsonb) x)) "
        "returning name",
        4, p, .read_only = false};
    PGresult *res = storage__query_caller(req, &q);
    if (res) {
        http_reply_json(req, 200, json_pack("{s:s}", "name", PQgetvalue(res, 0, 0)));
        PQclear(res);
    }
done:
    free(mimes);
    json_decref(body);
}

void storage__bucket_update(http_request_t *req)
{
    const char *id = bucket_param(req);
    if (!id)
        return;
    json_t *body = storage__json_body(req);
    if (!body)
        return;
    char size[32];
    char *mimes = NULL;
    const char *pub;
    if (bucket_settings(req, body, size, sizeof(size), &mimes, &pub)) {
        /* storage-js always sends all three settings: absent means null */
        const char *p[4] = {id, pub, *size ? size : NULL, mimes};
        storage_query_t q = {
            "update storage.buckets set public = $2::boolean, file_size_limit = $3::bigint, "
            "allowed_mime_types = (select array_agg(x) from jsonb_array_elements_text($4::jsonb) "
            "x) where id = $1 returning id",
            4, p, .if_none = reply_bucket_not_found};
        PGresult *res = storage__query_caller(req, &q);
        if (res)
            storage__reply_message(req, "Successfully updated");
        PQclear(res);
    }
    free(mimes);
    json_decref(body);
}

void storage__bucket_empty(http_request_t *req)
{
    const char *id = bucket_param(req);
    if (!id)
        return;
    const char *p[1] = {id};
    /* The bucket must be visible; the objects deleted are those RLS lets the
     * caller delete. */
    storage_query_t q = {
        "with b as (select id from storage.buckets where id = $1), "
        "d as (delete from storage.objects o using b where o.bucket_id = b.id returning o.version) "
        "select (select count(*) from b), coalesce((select json_agg(version) from d), '[]')::text",
        1, p, .read_only = false};
    PGresult *res = storage__query_caller(req, &q);
    if (!res)
        return;
    if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        reply_bucket_not_found(req);
    } else {
        storage__remove_versions(req->ctx, PQgetvalue(res, 0, 1));
        storage__reply_message(req, "Successfully emptied");
    }
    PQclear(res);
}

void storage__bucket_delete(http_request_t *req)
{
    const char *id = bucket_param(req);
    if (!id)
        return;
    const char *p[1] = {id};
    storage_query_t q = {"delete from storage.buckets where id = $1 returning id", 1, p,
                         .missing_fk = "not_empty", .if_none = reply_bucket_not_found};
    PGresult *res = storage__query_caller(req, &q);
    if (res)
        storage__reply_message(req, "Successfully deleted");
    PQclear(res);
}
