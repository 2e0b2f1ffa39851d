/*
 * "Who is this caller": the API key and the Bearer token of a request become
 * a role and a set of verified claims, which the database layer turns into
 * SET LOCAL ROLE and request.jwt.claims. Nothing here decides what a caller
 * may see; PostgreSQL's row-level security does.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "auth/auth.h"
#include "core/jwt.h"
#include "core/buf.h"
#include "core/text.h"

/* Clock skew tolerated on exp/nbf/iat. */
#define AUTH_JWT_SKEW 30
/* request.headers is bounded like the request head itself. */
#define AUTH_HEADERS_JSON_MAX (256 * 1024)

static jwt_status_t verify(const app_t *app, const char *token, json_t **claims)
{
    return jwt_verify(token, app->jwt_secret, app->jwt_secret_len, (long long)time(NULL),
                      AUTH_JWT_SKEW, claims);
}

/* The API key is the same on almost every request (the anon or the service
 * key): each HTTP thread remembers the last one it verified, so a request that
 * also carries a Bearer token checks its key with one string comparison
 * instead of a second JWT verification (two JSON parses and an HMAC). The
 * claims themselves are not kept (the Bearer token's are used); a key without
 * a Bearer token is verified as before. Valid until the key's exp. */
#define KEY_CACHE_MAX 1024
static _Thread_local struct {
    const app_t *app;
    long long exp;
    char token[KEY_CACHE_MAX];
} key_cache;

static bool key_cached(const app_t *app, const char *apikey)
{
    /* constant time: the cache may hold the service key */
    size_t n = strlen(apikey);
    return key_cache.app == app && (long long)time(NULL) < key_cache.exp &&
           n == strlen(key_cache.token) && CRYPTO_memcmp(key_cache.token, apikey, n) == 0;
}

static void key_remember(const app_t *app, const char *apikey, const json_t *claims)
{
    json_t *exp = json_object_get(claims, "exp");
    size_t n = strlen(apikey);
    if (!json_is_integer(exp) || n >= KEY_CACHE_MAX)
        return;
    memcpy(key_cache.token, apikey, n + 1);
    key_cache.exp = (long long)json_integer_value(exp);
    key_cache.app = app;
}

/* The Bearer token likewise: a signed-in dashboard sends the same access token
 * on every request until it refreshes it, so each HTTP thread keeps the last
 * token it verified, its claims and the claims' JSON text. The same token
 * (compared in constant time) is accepted again without the HMAC and the two
 * JSON parses of jwt_verify while it stays inside the window the full check
 * accepted: not before the time it was verified (nbf and iat only get more
 * true), and strictly before its exp, without the skew (at the edge, and
 * after, the full check decides and answers its own error). The request gets
 * the cached claims object itself (a reference: callers only read claims) and
 * a copy of the text, so a cached request neither parses nor serialises JSON
 * for its caller (json_loads + json_dumps were ~15 % of the server's CPU on
 * the list bench). Nothing else is cached: the role the request runs as still
 * comes from the database on every request (auth.db_role_for_claims in the
 * prelude). */
#define BEARER_CACHE_MAX  2048
#define BEARER_CLAIMS_MAX 4096
static _Thread_local struct {
    const app_t *app;
    long long verified_at, exp;
    json_t *claims; /* owned by the cache; NULL when empty */
    char token[BEARER_CACHE_MAX];
    char claims_text[BEARER_CLAIMS_MAX];
} bearer_cache;

/* When an HTTP thread ends, its cached claims go with it. */
static pthread_key_t bearer_key;
static pthread_once_t bearer_key_once = PTHREAD_ONCE_INIT;

static void bearer_forget(void *unused)
{
    (void)unused;
    json_decref(bearer_cache.claims);
    bearer_cache.claims = NULL;
    bearer_cache.app = NULL;
}

static void bearer_key_init(void)
{
    pthread_key_create(&bearer_key, bearer_forget);
}

/* The claims of a token this thread verified before (a new reference), or NULL. */
static json_t *bearer_cached(const app_t *app, const char *token)
{
    long long now = (long long)time(NULL);
    size_t n = strlen(token);
    if (bearer_cache.app != app || !bearer_cache.claims || now < bearer_cache.verified_at ||
        now >= bearer_cache.exp || n != strlen(bearer_cache.token) ||
        CRYPTO_memcmp(bearer_cache.token, token, n) != 0)
        return NULL;
    return json_incref(bearer_cache.claims);
}

static void bearer_remember(const app_t *app, const char *token, json_t *claims)
{
    json_t *exp = json_object_get(claims, "exp");
    size_t n = strlen(token);
    bearer_cache.app = NULL; /* forget the previous token whatever happens next */
    json_decref(bearer_cache.claims);
    bearer_cache.claims = NULL;
    size_t len = json_is_integer(exp) && n < BEARER_CACHE_MAX
                     ? json_dumpb(claims, bearer_cache.claims_text, BEARER_CLAIMS_MAX, JSON_COMPACT)
                     : 0;
    if (len == 0 || len >= BEARER_CLAIMS_MAX) /* too big: json_dumpb says how big, writes less */
        return;
    bearer_cache.claims_text[len] = '\0';
    memcpy(bearer_cache.token, token, n + 1);
    bearer_cache.verified_at = (long long)time(NULL);
    bearer_cache.exp = (long long)json_integer_value(exp);
    bearer_cache.claims = json_incref(claims);
    bearer_cache.app = app;
    pthread_once(&bearer_key_once, bearer_key_init);
    pthread_setspecific(bearer_key, &bearer_cache); /* any non-NULL value: runs bearer_forget */
}

static const char *bearer_token(http_request_t *req)
{
    const char *h = http_header(req, "Authorization");
    if (!h)
        return NULL;
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    return *h ? h : NULL;
}

static void set_string(char *dst, size_t n, json_t *claims, const char *key)
{
    const char *v = json_string_value(json_object_get(claims, key));
    snprintf(dst, n, "%s", v ? v : "");
}

auth_id_status_t auth_identify(const app_t *app, http_request_t *req, bool require_apikey,
                               auth_caller_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    *why = NULL;
    const char *apikey = http_header(req, "apikey");
    if (!apikey)
        apikey = http_query_arg(req, "apikey");
    json_t *key_claims = NULL;
    const char *bearer = bearer_token(req);
    bool with_bearer = bearer && (!apikey || strcmp(bearer, apikey) != 0);
    /* a key verified before on this thread: its claims are not needed */
    bool key_known = apikey && with_bearer && key_cached(app, apikey);
    if (apikey && !key_known) {
        if (verify(app, apikey, &key_claims) != JWT_OK) {
            *why = "Invalid authentication credentials";
            return AUTH_ID_BAD_APIKEY;
        }
        const char *r = json_string_value(json_object_get(key_claims, "role"));
        if (!r || strcmp(r, "authenticated") == 0) {
            /* A user's access token is not an API key. */
            json_decref(key_claims);
            *why = "Invalid authentication credentials";
            return AUTH_ID_BAD_APIKEY;
        }
        key_remember(app, apikey, key_claims);
    } else if (!apikey && require_apikey) {
        *why = "No API key found in request";
        return AUTH_ID_NO_APIKEY;
    }

    json_t *claims = NULL;
    if (with_bearer && (claims = bearer_cached(app, bearer)) != NULL) {
        out->has_bearer = true;
    } else if (with_bearer) {
        jwt_status_t st = verify(app, bearer, &claims);
        if (st != JWT_OK) {
            json_decref(key_claims);
            out->jwt_status = st;
            *why = jwt_status_message(st);
            return AUTH_ID_BAD_JWT;
        }
        bearer_remember(app, bearer, claims);
        out->has_bearer = true;
    } else if (key_claims) {
        claims = json_incref(key_claims);
    } else {
        claims = json_pack("{s:s}", "role", "anon");
    }
    json_decref(key_claims);
    if (!claims) {
        *why = "out of memory";
        return AUTH_ID_BAD_JWT;
    }
    out->claims = claims;
    set_string(out->role, sizeof(out->role), claims, "role");
    if (strcmp(out->role, "authenticated") == 0) {
        set_string(out->user_id, sizeof(out->user_id), claims, "sub");
        set_string(out->session_id, sizeof(out->session_id), claims, "session_id");
    }
    /* the cache holds the text of these very claims when they came from it
     * or were just remembered: the same bytes json_dumps would write */
    out->claims_json = out->has_bearer && bearer_cache.claims == claims
                           ? strdup(bearer_cache.claims_text)
                           : json_dumps(claims, JSON_COMPACT);
    out->headers_json = auth_headers_json(req);
    if (!out->claims_json || !out->headers_json) {
        *why = "out of memory";
        return AUTH_ID_BAD_JWT;
    }
    return AUTH_ID_OK;
}

void auth_caller_free(auth_caller_t *c)
{
    json_decref(c->claims);
    free(c->claims_json);
    free(c->headers_json);
    memset(c, 0, sizeof(*c));
}

void auth_caller_db(const auth_caller_t *c, const http_request_t *req, bool read_only,
                    db_caller_t *out)
{
    memset(out, 0, sizeof(*out));
    out->role = c->role;
    out->claims_json = c->claims_json;
    out->headers_json = c->headers_json;
    out->method = req->method;
    out->path = req->path;
    out->read_only = read_only;
    /* Writes may store credentials (set_app_secret, data source credentials):
     * those functions encrypt with the key this makes available, and decide
     * themselves who may call them. Reads get it only for the service role
     * (get_app_secret, for the server's own providers). */
    out->with_secrets = !read_only || strcmp(c->role, "service_role") == 0;
}

/* request.headers, written by hand rather than through a jansson object:
 * building one (a hash table, a string object per header, UTF-8 checks) and
 * serialising it was ~6 % of the server's CPU per request on the list bench.
 * What PostgreSQL gets means the same: lower-cased names (ASCII), a header
 * whose name or value is not valid UTF-8 (or whose name is 256 bytes or more)
 * left out, the last of repeated names winning, a client's x-real-ip replaced
 * by the server's own, and control characters, quotes and backslashes
 * escaped. */
/* Whether s is valid UTF-8, ASCII skipped a byte at a time without a call:
 * header values are ASCII but for the odd one (tokens are most of the bytes). */
static bool utf8_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t len = cd_utf8_char_len(p + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

static bool header_usable(const char *name, const char *value)
{
    return strlen(name) < 256 && utf8_ok(name) && utf8_ok(value);
}

/* Appends s as a JSON string; lower-cases ASCII letters when lower. Runs of
 * bytes that need nothing done are copied at once. */
static bool add_json_string(cd_buf_t *b, const char *s, bool lower)
{
    static const char hex[] = "0123456789abcdef";
    bool ok = cd_buf_add(b, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    while (ok && *p) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p != '"' && *p != '\\' && !(lower && *p >= 'A' && *p <= 'Z'))
            p++;
        if (p > run)
            ok = cd_buf_add(b, run, (size_t)(p - run));
        if (!ok || !*p)
            break;
        char esc[6];
        size_t w = 0;
        if (*p == '"' || *p == '\\') {
            esc[w++] = '\\';
            esc[w++] = (char)*p;
        } else if (*p < 0x20) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 15];
            w = 6;
        } else {
            esc[w++] = (char)(*p + ('a' - 'A')); /* an upper-case letter of a name */
        }
        ok = cd_buf_add(b, esc, w);
        p++;
    }
    return ok && cd_buf_add(b, "\"", 1);
}

char *auth_headers_json_of(const char *const *names, const char *const *values, size_t n,
                           const char *client_ip)
{
    cd_buf_t b;
    cd_buf_init(&b, AUTH_HEADERS_JSON_MAX);
    bool ok = cd_buf_add(&b, "{", 1);
    for (size_t i = 0; ok && i < n; i++) {
        if (strcasecmp(names[i], "x-real-ip") == 0 || !header_usable(names[i], values[i]))
            continue; /* only the server says where a request came from */
        bool later = false;
        for (size_t j = i + 1; !later && j < n; j++)
            later = strcasecmp(names[i], names[j]) == 0 && header_usable(names[j], values[j]);
        if (later)
            continue;
        ok = add_json_string(&b, names[i], true) && cd_buf_add(&b, ":", 1) &&
             add_json_string(&b, values[i], false) && cd_buf_add(&b, ",", 1);
    }
    ok = ok && cd_buf_adds(&b, "\"x-real-ip\":") && add_json_string(&b, client_ip, false) &&
         cd_buf_add(&b, "}", 1);
    if (!ok) {
        /* past AUTH_HEADERS_JSON_MAX (or out of memory): no headers at all */
        cd_buf_free(&b);
        return strdup("{}");
    }
    return cd_buf_take(&b);
}

struct headers_ctx {
    const char **names, **values;
    size_t n, cap;
    bool failed;
};

static void collect_header(void *arg, const char *name, const char *value)
{
    struct headers_ctx *h = arg;
    if (h->failed)
        return;
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 32;
        const char **nn = realloc(h->names, cap * sizeof(*nn));
        if (nn)
            h->names = nn;
        const char **vv = nn ? realloc(h->values, cap * sizeof(*vv)) : NULL;
        if (vv)
            h->values = vv;
        if (!nn || !vv) {
            h->failed = true;
            return;
        }
        h->cap = cap;
    }
    h->names[h->n] = name;
    h->values[h->n++] = value;
}

char *auth_headers_json(http_request_t *req)
{
    struct headers_ctx h = {NULL, NULL, 0, 0, false};
    http_each_header(req, collect_header, &h);
    char *s = h.failed ? NULL : auth_headers_json_of(h.names, h.values, h.n, req->client_ip);
    free(h.names);
    free(h.values);
    return s;
}

void auth_reply_identify_error(http_request_t *req, auth_id_status_t st, const char *why)
{
    const char *code = st == AUTH_ID_NO_APIKEY    ? "no_api_key"
                       : st == AUTH_ID_BAD_APIKEY ? "invalid_api_key"
                                                  : "bad_jwt";
    json_t *j = json_pack(
        "{s:s, s:s, s:s}", "message", why ? why : "unauthorized", "code", code, "hint",
        st == AUTH_ID_BAD_JWT ? "Sign in again to get a fresh access token."
                              : "Send the anon or service key from `campaignd keys` in the "
                                "apikey header.");
    /* auth-js reads a string error code only when this header is present */
    http_add_header(req, "X-Supabase-Api-Version", "2024-01-01");
    http_reply_json(req, 401, j);
}
