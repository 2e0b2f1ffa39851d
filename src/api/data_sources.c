/*
 * The data-import endpoints under /api (issue 10): test a data source (a
 * preview of its file's head), start a sync (a job), cancel a running sync,
 * and store a source's credentials (encrypted, never returned). Everything
 * runs as the caller: RLS and the SECURITY DEFINER functions of migration
 * 021 decide who may do what; the caller never writes sync_logs or the job
 * queue directly. docs/import.md describes the endpoints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_internal.h"
#include "core/crypto.h"
#include "core/log.h"
#include "importer/importer.h"

/* A credentials object: at most this many keys, each value at most this long. */
#define API_MAX_CREDENTIAL_KEYS  32
#define API_MAX_CREDENTIAL_CHARS 8192

static bool path_uuid(http_request_t *req, const char *what)
{
    if (req->nparams >= 1 && cd_is_uuid(req->params[0]))
        return true;
    api__reply_invalid(req, "invalid_parameter", "id", "the %s id in the path must be a UUID",
                       what);
    return false;
}

/* The source as the caller sees it, after checking that the caller may run
 * imports of it (404 / 403 otherwise, from public.import_check_caller). */
static const char SOURCE_SQL[] = "select to_jsonb(ds) from public.data_sources ds "
                                 "where ds.id = $1::uuid and ds.deleted_at is null "
                                 "and public.import_check_caller(ds.id) is not null";

void api__data_sources_test(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, false, &ctx))
        return;
    json_t *source = NULL, *preview = NULL;
    char *txt = NULL;
    if (!path_uuid(req, "data source"))
        goto done;
    const char *p[1] = {req->params[0]};
    db_stmt_t st = {SOURCE_SQL, 1, p};
    PGresult *res = NULL;
    if (!api__run(req, &ctx, &st, 1, &res))
        goto done;
    if (PQntuples(res) != 1) {
        PQclear(res);
        api__reply_not_found(req, "data source");
        goto done;
    }
    source = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    char message[512];
    db_conn_t *c = db_thread_conn();
    import_preview_status_t ps =
        c ? importer_preview(req->ctx, c, source, &preview, message, sizeof(message))
          : IMPORT_PREVIEW_UNAVAILABLE;
    if (ps == IMPORT_PREVIEW_UNAVAILABLE) {
        http_reply_unavailable(req, db_retry_after());
        goto done;
    }
    if (ps == IMPORT_PREVIEW_BAD_SOURCE) {
        api__reply_error(req, 400, "source_unreadable", message, NULL,
                         "Fix the data source's config (or the file) and test again.");
        goto done;
    }
    if (ps != IMPORT_PREVIEW_OK) {
        api__reply_error(req, 500, "internal", "the preview could not be built", NULL, NULL);
        goto done;
    }
    txt = json_dumps(preview, JSON_COMPACT);
    const char *p2[2] = {req->params[0], txt ? txt : "{}"};
    db_stmt_t rec = {"select public.record_data_source_preview($1::uuid, $2::jsonb)", 2, p2};
    if (!api__run(req, &ctx, &rec, 1, &res))
        goto done;
    json_object_set_new(preview, "sync_log_id", json_string(PQgetvalue(res, 0, 0)));
    PQclear(res);
    http_reply_json(req, 200, json_incref(preview));
done:
    free(txt);
    json_decref(source);
    json_decref(preview);
    api__end(&ctx);
}

void api__data_sources_sync(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, false, &ctx))
        return;
    if (!path_uuid(req, "data source"))
        goto done;
    const char *p[1] = {req->params[0]};
    db_stmt_t st = {"select public.request_data_source_sync($1::uuid)", 1, p};
    PGresult *res = NULL;
    db_conn_t *warm = importer_request_conn_take(); /* NULL: the thread's own */
    bool ok = api__run_on(req, &ctx, warm, &st, 1, &res);
    importer_request_conn_put(warm);
    if (!ok)
        goto done;
    json_t *j = json_pack("{s:s, s:s}", "sync_log_id", PQgetvalue(res, 0, 0), "status", "running");
    PQclear(res);
    char loc[96];
    snprintf(loc, sizeof(loc), "/rest/v1/sync_logs?id=eq.%s",
             json_string_value(json_object_get(j, "sync_log_id")));
    http_add_header(req, "Location", loc);
    http_reply_json(req, 202, j);
done:
    api__end(&ctx);
}

void api__sync_logs_cancel(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, false, &ctx))
        return;
    if (!path_uuid(req, "sync log"))
        goto done;
    const char *p[1] = {req->params[0]};
    db_stmt_t st = {"select public.cancel_data_source_sync($1::uuid)", 1, p};
    PGresult *res = NULL;
    if (!api__run(req, &ctx, &st, 1, &res))
        goto done;
    api__reply_cell(req, 202, res, 0, 0);
    PQclear(res);
done:
    api__end(&ctx);
}

void api__data_sources_credentials(http_request_t *req)
{
    api_ctx_t ctx;
    if (!api__begin(req, false, &ctx))
        return;
    json_t *body = NULL;
    char *txt = NULL;
    if (!path_uuid(req, "data source"))
        goto done;
    body = api__read_body(req);
    if (!body)
        goto done;
    if (json_object_size(body) == 0 || json_object_size(body) > API_MAX_CREDENTIAL_KEYS) {
        api__reply_invalid(req, "invalid_body", "credentials",
                           "the credentials object must have 1 to %d keys",
                           API_MAX_CREDENTIAL_KEYS);
        goto done;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        bool present;
        const char *s;
        if (json_is_null(v))
            continue;
        if (!json_is_string(v)) {
            api__reply_invalid(req, "invalid_body", "credentials",
                               "each credential must be a string (or null)");
            goto done;
        }
        if (!api__body_text(req, body, key, API_MAX_CREDENTIAL_CHARS, 0, &s, &present))
            goto done;
    }
    txt = json_dumps(body, JSON_COMPACT);
    const char *p[2] = {req->params[0], txt ? txt : "{}"};
    db_stmt_t st = {"select public.set_data_source_credentials($1::uuid, $2::jsonb)", 2, p};
    PGresult *res = NULL;
    if (!api__run(req, &ctx, &st, 1, &res))
        goto done;
    json_t *masked = json_loads(PQgetvalue(res, 0, 0), JSON_DECODE_ANY, NULL);
    PQclear(res);
    http_reply_json(req, 200,
                    json_pack("{s:s, s:o}", "data_source_id", req->params[0], "credentials",
                              masked ? masked : json_null()));
done:
    free(txt);
    json_decref(body);
    api__end(&ctx);
}
