/*
 * Realtime: the Supabase-compatible WebSocket endpoint /realtime/v1/websocket
 * (Phoenix channels, vsn 1.0.0 and 2.0.0), with broadcast, presence and
 * postgres_changes checked against each subscriber's RLS. One event-loop
 * thread owns every upgraded socket and all channel state; the change feed
 * (changes.h) runs on its own thread.
 */
#ifndef CD_REALTIME_H
#define CD_REALTIME_H

#include "app.h"
#include "http/http.h"

/* The route(s): GET /realtime/v1/websocket. */
extern const http_route_t realtime_routes[];
extern const size_t realtime_routes_len;

/* Starts the event loop and the change feed (enables capture on
 * REALTIME_TABLES). Call after the database is migrated and db_configure ran,
 * before the HTTP server accepts upgrades. Returns false and logs why. */
CD_MUSTCHECK bool realtime_start(app_t *app);
/* Closes every WebSocket (1001, "server shutting down"), stops the loop and
 * the feed. Must run before http_server_stop: MHD cannot stop while upgraded
 * sockets are open. Safe to call when not started. */
void realtime_stop(void);

#endif
