/*
 * The dashboard's static files (docs/dashboard.md): index.html at /, the
 * runtime configuration at /config.js (the anon key, never compiled into the
 * bundle) and the content-hashed bundle under /assets/, all read from
 * WEB_DIR. The security headers (CSP, no-cache for the page, immutable for
 * hashed assets) are set here.
 */
#ifndef CD_WEB_H
#define CD_WEB_H

#include "http/http.h"

/* The dashboard's routes, for the server's routing table (src/server_routes.c).
 * Handlers expect req->ctx to be the app_t given to http_server_start. */
extern const http_route_t web_routes[];
extern const size_t web_routes_len;

/* Whether name may be served from WEB_DIR/assets: 1–128 characters of
 * [A-Za-z0-9._-], not starting with a dot (so no "..", no hidden files, no
 * path separators). Exposed for tests. */
bool web_asset_name_ok(const char *name);
/* Whether an asset name carries a content hash ("name-HASH.ext" with HASH
 * 8 or more of [A-Z0-9]), and may therefore be cached for a year. */
bool web_asset_is_hashed(const char *name);
/* Whether host (a Host header) is safe to put into a CSP source expression:
 * 1–255 characters of [A-Za-z0-9.:[]-]. Exposed for tests. */
bool web_host_ok(const char *host);

#endif
