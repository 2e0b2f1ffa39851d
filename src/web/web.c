/*
 * Serves the dashboard from WEB_DIR (see web.h and docs/architecture.md,
 * "The dashboard"). Only three shapes of path exist: "/", "/config.js" and
 * "/assets/<one segment>"; every other path stays with the API's routes (or
 * 404), so the dashboard cannot shadow an endpoint. The page uses hash
 * routing (#/campaigns), which is why no "any path serves index.html"
 * fallback is needed.
 */
#include "web/web.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "app.h"
#include "core/log.h"

#define WEB_MAX_NAME 128

/* The page's policy: everything from this origin only, no inline script or
 * style element, no plugins, no framing, no <base> games. connect-src also
 * names the WebSocket URLs of this host (CSP2 browsers do not extend 'self'
 * to ws:). img-src allows data: for the charts' exported images and blob:
 * for downloads made in the page. */
#define WEB_CSP_HEAD                                                                               \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "        \
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "                    \
    "frame-ancestors 'none'; connect-src 'self'"

bool web_asset_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > WEB_MAX_NAME || name[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool web_asset_is_hashed(const char *name)
{
    const char *dash = strrchr(name, '-');
    if (!dash)
        return false;
    const char *h = dash + 1;
    size_t len = 0;
    while ((h[len] >= 'A' && h[len] <= 'Z') || (h[len] >= '0' && h[len] <= '9'))
        len++;
    return len >= 8 && h[len] == '.';
}

bool web_host_ok(const char *host)
{
    size_t n = host ? strlen(host) : 0;
    if (n == 0 || n > 255)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = host[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == ':' || c == '[' || c == ']' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".html", "text/html; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < CD_ARRAY_LEN(types); i++)
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

/* Whether the client takes gzip (Accept-Encoding lists it without q=0). */
static bool accepts_gzip(const http_request_t *req)
{
    const char *ae = http_header(req, "Accept-Encoding");
    while (ae && *ae) {
        ae += strspn(ae, " \t,");
        size_t tok = strcspn(ae, " \t,;");
        if (tok == 4 && strncasecmp(ae, "gzip", 4) == 0) {
            const char *rest = ae + tok;
            rest += strspn(rest, " \t");
            if (*rest != ';')
                return true;
            rest++;
            rest += strspn(rest, " \t");
            /* "q=0", "q=0.0", "q=0.000" refuse it; any other weight accepts */
            if (strncasecmp(rest, "q=0", 3) != 0)
                return true;
            rest += 3;
            if (*rest == '.')
                rest += 1 + strspn(rest + 1, "0");
            return !(*rest == '\0' || *rest == ',' || *rest == ' ' || *rest == '\t');
        }
        ae += strcspn(ae, ",");
    }
    return false;
}

/* On every answer of the dashboard: no type sniffing, no Referer to other origins, a
 * browsing context of its own. */
#define WEB_HEADERS (HTTP_HDR_NOSNIFF | HTTP_HDR_NO_REFERRER | HTTP_HDR_COOP_SAME)

static void not_built(http_request_t *req)
{
    http_reply_error(req, 404, "web_not_built", "The dashboard is not built.",
                     "Run `make build` (scripts/build-web.sh) or set WEB_DIR to its output.");
}

/* Opens dir/sub/name for reading: a regular file, no symbolic link followed
 * for the last component. Returns the fd or -1 (errno set). */
static int open_under(const char *dir, const char *sub, const char *name, struct stat *st)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s%s%s", dir, sub, *sub ? "/" : "", name);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        errno = ENOENT;
        return -1;
    }
    return fd;
}

static void handle_index(http_request_t *req)
{
    app_t *app = req->ctx;
    const char *dir = app->cfg.web_dir;
    struct stat st;
    int fd = (dir && *dir) ? open_under(dir, "", "index.html", &st) : -1;
    if (fd < 0) {
        not_built(req);
        return;
    }
    char csp[1024];
    const char *host = http_header(req, "Host");
    if (web_host_ok(host))
        snprintf(csp, sizeof(csp), "%s ws://%s wss://%s", WEB_CSP_HEAD, host, host);
    else
        snprintf(csp, sizeof(csp), "%s", WEB_CSP_HEAD);
    http_add_common_headers(req, WEB_HEADERS);
    http_add_header(req, "Content-Security-Policy", csp);
    http_add_header(req, "Cache-Control", "no-cache");
    http_add_header(req, "X-Frame-Options", "DENY");
    http_reply_fd(req, 200, "text/html; charset=utf-8", fd, 0, (uint64_t)st.st_size);
}

/* The browser's runtime settings: the anon key (a public key by design,
 * limited by RLS) delivered by the server so that no build embeds one. */
static void handle_config(http_request_t *req)
{
    app_t *app = req->ctx;
    json_t *cfg = json_pack("{s:s}", "anonKey", app->anon_key);
    char *js = cfg ? json_dumps(cfg, JSON_COMPACT | JSON_ESCAPE_SLASH) : NULL;
    json_decref(cfg);
    if (!js) {
        http_reply_error(req, 500, "internal_error", "Cannot build the configuration.", NULL);
        return;
    }
    cd_buf_t b;
    cd_buf_init(&b, 8192);
    bool ok = cd_buf_printf(&b, "window.CAMPAIGND = %s;\n", js);
    free(js);
    if (!ok) {
        cd_buf_free(&b);
        http_reply_error(req, 500, "internal_error", "Cannot build the configuration.", NULL);
        return;
    }
    http_add_common_headers(req, WEB_HEADERS);
    http_add_header(req, "Cache-Control", "no-cache");
    http_reply(req, 200, "text/javascript; charset=utf-8", b.data, b.len);
    cd_buf_free(&b);
}

static void handle_asset(http_request_t *req)
{
    app_t *app = req->ctx;
    const char *name = req->nparams > 0 ? req->params[0] : NULL;
    const char *dir = app->cfg.web_dir;
    if (!web_asset_name_ok(name)) {
        http_reply_error(req, 404, "not_found", "No such file.", NULL);
        return;
    }
    if (!dir || !*dir) {
        not_built(req);
        return;
    }
    struct stat st;
    int fd = -1;
    bool gz = false;
    if (accepts_gzip(req) && strlen(name) + 3 < WEB_MAX_NAME + 4) {
        char gzname[WEB_MAX_NAME + 4];
        snprintf(gzname, sizeof(gzname), "%s.gz", name);
        fd = open_under(dir, "assets", gzname, &st);
        gz = fd >= 0;
    }
    if (fd < 0)
        fd = open_under(dir, "assets", name, &st);
    if (fd < 0) {
        http_reply_error(req, 404, "not_found", "No such file.", NULL);
        return;
    }
    http_add_common_headers(req, WEB_HEADERS);
    http_add_header(req, "Cache-Control",
                    web_asset_is_hashed(name) ? "public, max-age=31536000, immutable" : "no-cache");
    http_add_header(req, "Vary", "Accept-Encoding");
    if (gz)
        http_add_header(req, "Content-Encoding", "gzip");
    http_reply_fd(req, 200, content_type(name), fd, 0, (uint64_t)st.st_size);
}

const http_route_t web_routes[] = {
    {"GET", "/", handle_index, false},
    {"GET", "/config.js", handle_config, false},
    {"GET", "/assets/:name", handle_asset, false},
};
const size_t web_routes_len = CD_ARRAY_LEN(web_routes);
