/*
 * Where an import's bytes come from. csv_upload / excel sources read the
 * object the user uploaded to the private bucket `imports` (looked up as the
 * source's owner, so storage's row-level security decides); csv_url and
 * google_sheets sources are fetched with libcurl into a temporary file under
 * CAMPAIGND_DATA_DIR/tmp.
 *
 * URL fetches are an SSRF risk: a user could point campaignd at the cloud
 * metadata service or at the embedded PostgreSQL's neighbours. So every
 * connection's address is checked when the socket is opened
 * (CURLOPT_OPENSOCKETFUNCTION sees the address curl actually connects to,
 * after DNS, so a rebinding DNS answer cannot slip past a check made
 * earlier), for the first request and for each of at most 3 redirects;
 * proxies from the environment are ignored (the proxy's address would be
 * the one checked); only http and https are allowed; the transfer stops at
 * IMPORT_MAX_BYTES and after IMPORT_FETCH_TIMEOUT seconds.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "importer/connectors.h"
#include "importer/importer_internal.h"
#include "storage/storage.h"

#define FETCH_MAX_REDIRECTS     3
#define FETCH_CONNECT_TIMEOUT_S 15L
#define FETCH_URL_MAX           4096

/* ------------------------------------------------------------ addresses */

static bool v4_public(uint32_t a)
{
    /* a in host order */
    struct {
        uint32_t net, mask;
    } const blocked[] = {
        {0x00000000, 0xff000000}, /* 0.0.0.0/8 "this network" */
        {0x0a000000, 0xff000000}, /* 10/8 private */
        {0x64400000, 0xffc00000}, /* 100.64/10 carrier-grade NAT */
        {0x7f000000, 0xff000000}, /* 127/8 loopback */
        {0xa9fe0000, 0xffff0000}, /* 169.254/16 link-local (cloud metadata) */
        {0xac100000, 0xfff00000}, /* 172.16/12 private */
        {0xc0000000, 0xffffff00}, /* 192.0.0/24 IETF protocol assignments */
        {0xc0a80000, 0xffff0000}, /* 192.168/16 private */
        {0xc6120000, 0xfffe0000}, /* 198.18/15 benchmarking */
        {0xe0000000, 0xf0000000}, /* 224/4 multicast */
        {0xf0000000, 0xf0000000}, /* 240/4 reserved, broadcast */
    };
    for (size_t i = 0; i < CD_ARRAY_LEN(blocked); i++)
        if ((a & blocked[i].mask) == blocked[i].net)
            return false;
    return true;
}

bool import__address_public(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return v4_public(ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family != AF_INET6)
        return false;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    const unsigned char *b = in6->sin6_addr.s6_addr;
    static const unsigned char zero[12] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0) {
        /* an IPv4 address in IPv6 clothing: judge the IPv4 address */
        uint32_t a = ((uint32_t)b[12] << 24) | ((uint32_t)b[13] << 16) | ((uint32_t)b[14] << 8) |
                     (uint32_t)b[15];
        return v4_public(a);
    }
    if (memcmp(b, zero, 12) == 0)
        return false; /* ::, ::1 and the deprecated IPv4-compatible form */
    if ((b[0] & 0xfe) == 0xfc)
        return false; /* fc00::/7 unique local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
        return false; /* fe80::/10 link-local */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0)
        return false; /* fec0::/10 site-local (deprecated) */
    if (b[0] == 0xff)
        return false; /* multicast */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        return false; /* 2001:db8::/32 documentation */
    return true;
}

/* ------------------------------------------------------------ curl */

typedef struct fetch_state {
    int fd;
    uint64_t written;
    uint64_t max_bytes;  /* IMPORT_MAX_BYTES */
    uint64_t stop_after; /* head-only reads stop here (0: read all) */
    bool allow_private;
    bool refused_address; /* a connection went to a private address */
    bool too_big;
    bool head_done;
    char refused[INET6_ADDRSTRLEN];
    import_cancel_fn cancel;
    void *cancel_arg;
} fetch_state_t;

static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    fetch_state_t *st = arg;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    if (!st->allow_private && !import__address_public(&addr->addr)) {
        st->refused_address = true;
        const void *raw =
            addr->family == AF_INET
                ? (const void *)&((struct sockaddr_in *)(void *)&addr->addr)->sin_addr
                : (const void *)&((struct sockaddr_in6 *)(void *)&addr->addr)->sin6_addr;
        if (!inet_ntop(addr->family, raw, st->refused, sizeof(st->refused)))
            snprintf(st->refused, sizeof(st->refused), "?");
        return CURL_SOCKET_BAD;
    }
    return socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
}

static size_t write_body(char *data, size_t size, size_t nmemb, void *arg)
{
    fetch_state_t *st = arg;
    size_t len = size * nmemb;
    if (st->written + len > st->max_bytes) {
        st->too_big = true;
        return 0;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(st->fd, data + off, len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return 0;
        }
        off += (size_t)n;
    }
    st->written += len;
    if (st->stop_after && st->written >= st->stop_after) {
        st->head_done = true;
        return 0; /* enough for a preview: stop the transfer */
    }
    return len;
}

static int progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                    curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    fetch_state_t *st = arg;
    return st->cancel && st->cancel(st->cancel_arg) ? 1 : 0;
}

static bool make_temp(const app_t *app, char *path, size_t pathlen, int *fd)
{
    char dir[1024];
    int n = snprintf(dir, sizeof(dir), "%s/tmp", app->cfg.data_dir);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return false;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return false;
    n = snprintf(path, pathlen, "%s/import-XXXXXX", dir);
    if (n < 0 || (size_t)n >= pathlen)
        return false;
    *fd = mkstemp(path);
    return *fd >= 0;
}

/* Fetches url into a new temporary file. */
static bool fetch_url(const app_t *app, const char *url, bool head_only, import_cancel_fn cancel,
                      void *cancel_arg, import_input_t *in, char *err, size_t errlen)
{
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "the URL must start with http:// or https://");
        return false;
    }
    int fd = -1;
    if (!make_temp(app, in->path, sizeof(in->path), &fd)) {
        snprintf(err, errlen, "cannot create a temporary file for the download");
        return false;
    }
    in->temp = true;
    fetch_state_t st = {
        .fd = fd,
        .max_bytes = (uint64_t)app->cfg.import_max_bytes,
        .stop_after = head_only ? IMPORT_HEAD_BYTES : 0,
        .allow_private = app->cfg.import_allow_private_networks,
        .cancel = cancel,
        .cancel_arg = cancel_arg,
    };
    CURL *h = curl_easy_init();
    if (!h) {
        close(fd);
        snprintf(err, errlen, "cannot start a download (out of memory)");
        return false;
    }
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)FETCH_MAX_REDIRECTS);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never an environment proxy */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, FETCH_CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, app->cfg.import_fetch_timeout);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)st.max_bytes);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &st);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &st);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "campaignd-import/1");
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* gzip is counted decoded */
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (close(fd) != 0 && rc == CURLE_OK)
        rc = CURLE_WRITE_ERROR;
    if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && st.head_done)) {
        in->size = st.written;
        return true;
    }
    if (st.refused_address)
        snprintf(err, errlen,
                 "the URL leads to a private or local network address (%s), which imports may "
                 "not reach; use a public URL (an administrator can allow private networks "
                 "with IMPORT_ALLOW_PRIVATE_NETWORKS)",
                 st.refused);
    else if (st.too_big || rc == CURLE_FILESIZE_EXCEEDED)
        snprintf(err, errlen, "the file is larger than the import limit of %ld bytes",
                 app->cfg.import_max_bytes);
    else if (rc == CURLE_TOO_MANY_REDIRECTS)
        snprintf(err, errlen, "the URL redirects more than %d times", FETCH_MAX_REDIRECTS);
    else if (rc == CURLE_ABORTED_BY_CALLBACK)
        snprintf(err, errlen, "the download was cancelled");
    else if (rc == CURLE_HTTP_RETURNED_ERROR)
        snprintf(err, errlen,
                 "the server answered HTTP %ld for the file's URL; check that the link is right "
                 "and shared publicly",
                 status);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(err, errlen, "the download took longer than %ld seconds",
                 app->cfg.import_fetch_timeout);
    else
        snprintf(err, errlen, "cannot download the file: %s",
                 *curl_err ? curl_err : curl_easy_strerror(rc));
    return false;
}

/* ------------------------------------------------------------ sources */

/* Builds the CSV export URL of a Google Sheet from config: "url" (a sheet's
 * link, from which the id and gid are taken) or "spreadsheet_id", with
 * "sheet" (a gid number or a sheet name). */
static bool sheets_url(const app_t *app, const json_t *config, char *out, size_t outlen, char *err,
                       size_t errlen)
{
    const char *id = json_string_value(json_object_get(config, "spreadsheet_id"));
    const char *url = json_string_value(json_object_get(config, "url"));
    const char *sheet = json_string_value(json_object_get(config, "sheet"));
    char idbuf[128] = "", gid[32] = "";
    if (!id && url) {
        const char *p = strstr(url, "/spreadsheets/d/");
        if (p) {
            p += strlen("/spreadsheets/d/");
            size_t n =
                strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
            if (n > 0 && n < sizeof(idbuf)) {
                memcpy(idbuf, p, n);
                idbuf[n] = '\0';
                id = idbuf;
            }
        }
        const char *g = strstr(url, "gid=");
        if (g) {
            size_t n = strspn(g + 4, "0123456789");
            if (n > 0 && n < sizeof(gid)) {
                memcpy(gid, g + 4, n);
                gid[n] = '\0';
            }
        }
    }
    if (!id || !*id || strlen(id) > 100 ||
        strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
            strlen(id)) {
        snprintf(err, errlen,
                 "config.url must be the sheet's link (https://docs.google.com/spreadsheets/d/…) "
                 "or config.spreadsheet_id its id");
        return false;
    }
    const char *base = app->cfg.google_sheets_base_url;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    int n;
    if (sheet && *sheet && strspn(sheet, "0123456789") == strlen(sheet) && strlen(sheet) < 20) {
        n = snprintf(out, outlen, "%.*s/spreadsheets/d/%s/export?format=csv&gid=%s", (int)bl, base,
                     id, sheet);
    } else if (sheet && *sheet) {
        char *esc = curl_easy_escape(NULL, sheet, 0);
        if (!esc) {
            snprintf(err, errlen, "out of memory");
            return false;
        }
        n = snprintf(out, outlen, "%.*s/spreadsheets/d/%s/gviz/tq?tqx=out:csv&sheet=%s", (int)bl,
                     base, id, esc);
        curl_free(esc);
    } else if (*gid) {
        n = snprintf(out, outlen, "%.*s/spreadsheets/d/%s/export?format=csv&gid=%s", (int)bl, base,
                     id, gid);
    } else {
        n = snprintf(out, outlen, "%.*s/spreadsheets/d/%s/export?format=csv", (int)bl, base, id);
    }
    if (n < 0 || (size_t)n >= outlen) {
        snprintf(err, errlen, "the sheet's URL is too long");
        return false;
    }
    return true;
}

bool import__input_open(const app_t *app, db_conn_t *c, const import_source_t *src, bool head_only,
                        import_cancel_fn cancel, void *cancel_arg, import_input_t *in, char *err,
                        size_t errlen)
{
    memset(in, 0, sizeof(*in));
    in->fd = -1;
    if (strcmp(src->type, "csv_upload") == 0 || strcmp(src->type, "excel") == 0) {
        const char *path = json_string_value(json_object_get(src->config, "storage_path"));
        if (!path || !*path) {
            snprintf(err, errlen,
                     "config.storage_path is missing: upload the file to the \"imports\" bucket "
                     "under your user id and set storage_path to its path");
            return false;
        }
        /* As the owner, so that storage's row-level security decides. */
        char claims[160];
        snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"role\":\"authenticated\"}",
                 src->user_id);
        db_caller_t who = {.role = "authenticated",
                           .claims_json = claims,
                           .method = "JOB",
                           .path = "import.sync",
                           .headers_json = "{}",
                           .read_only = true};
        uint64_t size = 0;
        storage_status_t st =
            storage_open_object(app, c, &who, IMPORT_BUCKET, path, &in->fd, &size);
        if (st == STORAGE_ERR_NO_BUCKET || st == STORAGE_ERR_INVALID) {
            snprintf(err, errlen,
                     "the file \"%.200s\" is not in the \"imports\" bucket (or not yours): "
                     "upload it again or fix config.storage_path",
                     path);
            return false;
        }
        if (st != STORAGE_OK) {
            snprintf(err, errlen, "cannot read the uploaded file: %s", storage_status_message(st));
            in->retryable = st == STORAGE_ERR_UNAVAILABLE;
            return false;
        }
        if (size > (uint64_t)app->cfg.import_max_bytes) {
            close(in->fd);
            in->fd = -1;
            snprintf(err, errlen, "the file is larger than the import limit of %ld bytes",
                     app->cfg.import_max_bytes);
            return false;
        }
        in->size = size;
        /* The parser opens files by path; the object's descriptor is the file. */
        snprintf(in->path, sizeof(in->path), "/proc/self/fd/%d", in->fd);
        return true;
    }
    if (strcmp(src->type, "rest_api") == 0) /* HTTP API connectors (connectors.h) */
        return conn_rest_open(app, c, src, head_only, cancel, cancel_arg, in, err, errlen);
    char url[FETCH_URL_MAX];
    if (strcmp(src->type, "google_sheets") == 0) {
        if (!sheets_url(app, src->config, url, sizeof(url), err, errlen))
            return false;
    } else if (strcmp(src->type, "csv_url") == 0) {
        const char *u = json_string_value(json_object_get(src->config, "url"));
        if (!u || !*u || strlen(u) >= sizeof(url)) {
            snprintf(err, errlen, "config.url is missing or too long: set it to the file's link");
            return false;
        }
        snprintf(url, sizeof(url), "%s", u);
    } else {
        snprintf(err, errlen, "sources of type %s cannot be imported by campaignd yet", src->type);
        return false;
    }
    bool ok = fetch_url(app, url, head_only, cancel, cancel_arg, in, err, errlen);
    if (!ok)
        import__input_close(in);
    return ok;
}

void import__input_close(import_input_t *in)
{
    if (in->fd >= 0)
        close(in->fd);
    in->fd = -1;
    if (in->temp && *in->path)
        unlink(in->path);
    in->temp = false;
    in->path[0] = '\0';
    free(in->sync_value);
    in->sync_value = NULL;
}
