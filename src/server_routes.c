/*
 * Assembles the routing table from the modules (auth, and later rest,
 * storage, realtime, api) and serves /health and /ready.
 */
#include "server_routes.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/webhooks.h"
#include "app.h"
#include "auth/auth.h"
#include "db/db.h"
#include "realtime/realtime.h"
#include "rest/rest.h"
#include "sending/sending.h"
#include "storage/storage.h"
#include "web/web.h"

#define SERVER_MAX_ROUTES 256

static void handle_health(http_request_t *req)
{
    app_t *app = req->ctx;
    http_reply_json(req, 200,
                    json_pack("{s:s, s:s, s:I}", "status", "ok", "version", CAMPAIGND_VERSION,
                              "uptime_seconds", (json_int_t)(time(NULL) - app->started)));
}

/* Ready means this worker can reach the database right now. */
static void handle_ready(http_request_t *req)
{
    PGresult *r = NULL;
    db_error_t err;
    db_caller_t who = {.role = "anon", .read_only = true};
    db_stmt_t one = {"select 1", 0, NULL};
    db_status_t st = db_run(&who, &one, 1, &r, &err);
    PQclear(r);
    if (st == DB_OK)
        http_reply_json(req, 200, json_pack("{s:s, s:s}", "status", "ready", "database", "ok"));
    else
        http_reply_unavailable(req, db_retry_after());
}

static const http_route_t process_routes[] = {
    {"GET", "/health", handle_health, false},
    {"GET", "/ready", handle_ready, false},
};

static http_route_t table[SERVER_MAX_ROUTES];
static size_t table_len;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void append(const http_route_t *r, size_t n)
{
    for (size_t i = 0; i < n && table_len < SERVER_MAX_ROUTES; i++)
        table[table_len++] = r[i];
}

static void build_table(void)
{
    append(process_routes, CD_ARRAY_LEN(process_routes));
    append(auth_routes, auth_routes_len);
    append(realtime_routes, realtime_routes_len);
    append(api_routes, api_routes_len);
    append(sending_routes, sending_routes_len); /* the send engine (issue 12) */
    append(webhook_routes, webhook_routes_len); /* issue 12: provider callbacks */
    append(rest_routes, rest_routes_len);
    append(storage_routes, storage_routes_len);
    append(web_routes, web_routes_len);
}

/* Streaming (upload) routes: storage's uploads and the POST /object/...
 * endpoints sharing their path space. */
const http_stream_route_t *server_stream_routes(size_t *n)
{
    *n = storage_stream_routes_len;
    return storage_stream_routes;
}

const http_route_t *server_routes(size_t *n)
{
    pthread_once(&table_once, build_table);
    *n = table_len;
    return table;
}
