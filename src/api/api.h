/*
 * The specification's domain endpoints under /api: campaigns (with status
 * transitions and soft delete), analytics (records and aggregated series) and
 * campaign performance reports (generation and CSV/JSON export). Every
 * endpoint runs under the caller's role and JWT claims through db_run_as, so
 * PostgreSQL's row-level security decides what each caller may see and change.
 * docs/api.md describes every endpoint.
 */
#ifndef CD_API_H
#define CD_API_H

#include "http/http.h"

/* The /api routes, for the server's routing table (src/server_routes.c).
 * Handlers expect req->ctx to be the app_t given to http_server_start. */
extern const http_route_t api_routes[];
extern const size_t api_routes_len;

#endif
