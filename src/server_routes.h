/*
 * The server's whole routing table, assembled from every module's routes,
 * plus the process-level endpoints /health and /ready.
 */
#ifndef CD_SERVER_ROUTES_H
#define CD_SERVER_ROUTES_H

#include "http/http.h"

/* The routing table (built once, on first call; immutable afterwards). */
const http_route_t *server_routes(size_t *n);
/* The streaming (upload) routes. */
const http_stream_route_t *server_stream_routes(size_t *n);

#endif
