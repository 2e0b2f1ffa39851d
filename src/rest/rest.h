/*
 * The PostgREST-compatible data API under /rest/v1: tables and views of the `public` schema
 * (GET, HEAD, POST, PATCH, DELETE), functions under /rest/v1/rpc/<fn> (GET, HEAD, POST) and
 * the OpenAPI description at /rest/v1/. Requests run as the caller's role in one transaction,
 * so PostgreSQL's row-level security decides what each caller sees. See docs/rest.md.
 */
#ifndef CD_REST_H
#define CD_REST_H

#include "app.h"
#include "http/http.h"

/* The /rest/v1 routes, for the server's routing table. */
extern const http_route_t rest_routes[];
extern const size_t rest_routes_len;

/* Loads the schema cache from the database and starts the background thread that reloads
 * it on `NOTIFY pgrst, 'reload schema'` (sent by the DDL event trigger of
 * 000_platform_rest.sql). Call after db_configure() and before serving. Returns false after
 * logging why when the thread cannot be started; a database that cannot be read yet is not
 * an error (requests get 503 PGRST002 until the cache loads). */
CD_MUSTCHECK bool rest_schema_start(app_t *app);
/* Stops the reload thread and frees the cache. Requests must have finished. */
void rest_schema_stop(void);

#endif
