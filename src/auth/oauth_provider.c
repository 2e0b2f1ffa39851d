/*
 * OAuth providers (oauth_provider.h): endpoints from the settings, the two
 * HTTP calls of the authorization-code flow over libcurl, and the parsers of
 * what the providers answer. GitHub is plain OAuth 2 (GET /user and
 * /user/emails); Google and the generic provider are read as OpenID Connect
 * userinfo. Provider answers are outside input: bounded, parsed with
 * jansson, and only the listed members are kept (a provider's "role" or any
 * other claim never reaches the user).
 */
#include "auth/oauth_provider.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/oidc_token.h"
#include "core/buf.h"

#define OAUTH_BODY_MAX       (256 * 1024)
#define OAUTH_TIMEOUT_S      15L
#define OAUTH_CONNECT_TIME_S 5L

/* ------------------------------------------------------------ endpoints */

static bool set_url(char out[OAUTH_URL_MAX], const char *base, const char *path)
{
    int n = snprintf(out, OAUTH_URL_MAX, "%s%s", base, path);
    return n > 0 && n < OAUTH_URL_MAX;
}

/* base without its trailing slashes, into out. */
static void trim_base(const char *base, char out[OAUTH_URL_MAX])
{
    snprintf(out, OAUTH_URL_MAX, "%s", base);
    size_t n = strlen(out);
    while (n && out[n - 1] == '/')
        out[--n] = '\0';
}

static bool github(const config_t *cfg, oauth_provider_t *p)
{
    char base[OAUTH_URL_MAX];
    trim_base(*cfg->github_url ? cfg->github_url : "https://github.com", base);
    /* github.com's API lives on its own host; Enterprise's under /api/v3 */
    char api[OAUTH_URL_MAX + 8];
    if (*cfg->github_url)
        snprintf(api, sizeof(api), "%s/api/v3", base);
    else
        snprintf(api, sizeof(api), "https://api.github.com");
    *p = (oauth_provider_t){.name = "github",
                            .kind = OAUTH_KIND_GITHUB,
                            .client_id = cfg->github_client_id,
                            .secret = cfg->github_secret,
                            .scopes = "user:email"};
    return cfg->github_enabled && set_url(p->authorize_url, base, "/login/oauth/authorize") &&
           set_url(p->token_url, base, "/login/oauth/access_token") &&
           set_url(p->user_url, api, "/user") && set_url(p->emails_url, api, "/user/emails");
}

static bool google(const config_t *cfg, oauth_provider_t *p)
{
    *p = (oauth_provider_t){.name = "google",
                            .kind = OAUTH_KIND_OIDC,
                            .client_id = cfg->google_client_id,
                            .secret = cfg->google_secret,
                            .scopes = "openid email profile"};
    if (!cfg->google_enabled)
        return false;
    if (!*cfg->google_url) {
        p->alt_issuer = "accounts.google.com"; /* Google's id_tokens use both forms */
        return set_url(p->authorize_url, "https://accounts.google.com", "/o/oauth2/v2/auth") &&
               set_url(p->token_url, "https://oauth2.googleapis.com", "/token") &&
               set_url(p->user_url, "https://openidconnect.googleapis.com", "/v1/userinfo") &&
               set_url(p->issuer, "https://accounts.google.com", "");
    }
    char base[OAUTH_URL_MAX];
    trim_base(cfg->google_url, base);
    return set_url(p->authorize_url, base, "/o/oauth2/v2/auth") &&
           set_url(p->token_url, base, "/token") && set_url(p->user_url, base, "/v1/userinfo") &&
           set_url(p->issuer, base, "");
}

static bool oidc(const config_t *cfg, oauth_provider_t *p)
{
    *p = (oauth_provider_t){.name = "oidc",
                            .kind = OAUTH_KIND_OIDC,
                            .client_id = cfg->oidc_client_id,
                            .secret = cfg->oidc_secret,
                            .scopes = cfg->oidc_scopes};
    if (cfg->oidc_issuer && *cfg->oidc_issuer)
        trim_base(cfg->oidc_issuer, p->issuer);
    return cfg->oidc_enabled && *cfg->oidc_authorize_url && *cfg->oidc_token_url &&
           *cfg->oidc_userinfo_url && set_url(p->authorize_url, cfg->oidc_authorize_url, "") &&
           set_url(p->token_url, cfg->oidc_token_url, "") &&
           set_url(p->user_url, cfg->oidc_userinfo_url, "");
}

bool oauth_provider_get(const config_t *cfg, const char *name, oauth_provider_t *out)
{
    bool ok = false;
    memset(out, 0, sizeof(*out));
    if (!name)
        return false;
    if (strcmp(name, "github") == 0)
        ok = github(cfg, out);
    else if (strcmp(name, "google") == 0)
        ok = google(cfg, out);
    else if (strcmp(name, "oidc") == 0)
        ok = oidc(cfg, out);
    return ok && out->client_id && *out->client_id && out->secret && *out->secret;
}

/* ------------------------------------------------------------- parsers */

void oauth_user_free(oauth_user_t *u)
{
    json_decref(u->data);
    u->data = NULL;
}

static json_t *load_object(const char *body, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(err, errlen, "the provider's answer is not a JSON object");
        return NULL;
    }
    return j;
}

/* A string member without NUL bytes, of at most max bytes, or NULL. */
static const char *str_member(json_t *obj, const char *key, size_t max)
{
    json_t *v = json_object_get(obj, key);
    const char *s = json_string_value(v);
    if (!s || strlen(s) != json_string_length(v) || json_string_length(v) > max)
        return NULL;
    return s;
}

bool oauth_parse_token(const char *body, size_t len, char **access, char **refresh, char **id_token,
                       char *err, size_t errlen)
{
    *access = *refresh = *id_token = NULL;
    json_t *j = load_object(body, len, err, errlen);
    if (!j)
        return false;
    const char *a = str_member(j, "access_token", 4096);
    const char *r = str_member(j, "refresh_token", 4096);
    if (!a || !*a) {
        const char *e = str_member(j, "error", 200);
        snprintf(err, errlen, "the provider refused the code: %s", e ? e : "no access_token");
        json_decref(j);
        return false;
    }
    const char *id = str_member(j, "id_token", OIDC_TOKEN_MAX);
    *access = strdup(a);
    *refresh = r && *r ? strdup(r) : NULL;
    *id_token = id && *id ? strdup(id) : NULL;
    json_decref(j);
    if (!*access) {
        free(*refresh);
        free(*id_token);
        *refresh = *id_token = NULL;
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return true;
}

/* Copies the string members keys[] of src (when short and clean) into a new
 * identity data object. */
static json_t *pick(json_t *src, const char *const *keys, size_t n)
{
    json_t *d = json_object();
    for (size_t i = 0; d && i < n; i++) {
        const char *s = str_member(src, keys[i], 2048);
        if (s)
            json_object_set_new(d, keys[i], json_string(s));
    }
    return d;
}

bool oauth_parse_github_user(const char *body, size_t len, oauth_user_t *u, char *err,
                             size_t errlen)
{
    memset(u, 0, sizeof(*u));
    json_t *j = load_object(body, len, err, errlen);
    if (!j)
        return false;
    json_t *id = json_object_get(j, "id");
    if (!json_is_integer(id) || json_integer_value(id) <= 0) {
        snprintf(err, errlen, "the provider's user has no id");
        json_decref(j);
        return false;
    }
    snprintf(u->id, sizeof(u->id), "%lld", (long long)json_integer_value(id));
    static const char *const keys[] = {"name", "avatar_url"};
    u->data = pick(j, keys, CD_ARRAY_LEN(keys));
    const char *login = str_member(j, "login", 256);
    if (u->data && login) {
        json_object_set_new(u->data, "user_name", json_string(login));
        json_object_set_new(u->data, "preferred_username", json_string(login));
    }
    /* GitHub's public e-mail says nothing of verification: /user/emails decides */
    json_decref(j);
    if (!u->data) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return true;
}

bool oauth_parse_github_emails(const char *body, size_t len, oauth_user_t *u, char *err,
                               size_t errlen)
{
    json_error_t je;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_array(j)) {
        json_decref(j);
        snprintf(err, errlen, "the provider's e-mail list is not a JSON array");
        return false;
    }
    /* The primary address decides, verified or not (a verified secondary
     * must not stand in for an unverified primary); without a primary, the
     * first verified one. */
    int best = -1; /* 2 primary, 1 verified */
    size_t i;
    json_t *e;
    json_array_foreach(j, i, e)
    {
        const char *addr = str_member(e, "email", 254);
        if (!addr || !*addr)
            continue;
        bool primary = json_is_true(json_object_get(e, "primary"));
        bool verified = json_is_true(json_object_get(e, "verified"));
        int rank = primary ? 2 : verified ? 1 : 0;
        if (rank > best) {
            best = rank;
            snprintf(u->email, sizeof(u->email), "%s", addr);
            u->email_verified = verified;
        }
    }
    json_decref(j);
    if (best < 1) {
        u->email[0] = '\0';
        u->email_verified = false;
    }
    return true;
}

bool oauth_parse_userinfo(const char *body, size_t len, oauth_user_t *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    json_t *j = load_object(body, len, err, errlen);
    if (!j)
        return false;
    const char *sub = str_member(j, "sub", 255);
    if (!sub || !*sub) {
        snprintf(err, errlen, "the provider's user has no sub");
        json_decref(j);
        return false;
    }
    snprintf(u->id, sizeof(u->id), "%s", sub);
    const char *email = str_member(j, "email", 254);
    if (email)
        snprintf(u->email, sizeof(u->email), "%s", email);
    /* some providers send "true" as a string */
    json_t *ev = json_object_get(j, "email_verified");
    u->email_verified =
        json_is_true(ev) || (json_is_string(ev) && strcmp(json_string_value(ev), "true") == 0);
    static const char *const keys[] = {"name", "picture", "preferred_username"};
    u->data = pick(j, keys, CD_ARRAY_LEN(keys));
    const char *pic = str_member(j, "picture", 2048);
    if (u->data && pic)
        json_object_set_new(u->data, "avatar_url", json_string(pic));
    json_decref(j);
    if (!u->data) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return true;
}

/* --------------------------------------------------------------- HTTP */

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    cd_buf_t *b = arg;
    size_t len = size * n;
    return cd_buf_add(b, data, len) ? len : 0; /* past the cap: the transfer fails */
}

/* One request: POST form when form is set, else GET with the bearer token.
 * The answer must be 2xx; its body lands in b (cap OAUTH_BODY_MAX). */
static bool call(const char *url, const char *form, const char *bearer, cd_buf_t *b, char *err,
                 size_t errlen)
{
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    char auth[4200];
    struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/json");
    if (bearer) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
        struct curl_slist *t = hdr ? curl_slist_append(hdr, auth) : NULL;
        hdr = t ? t : hdr;
    }
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, OAUTH_CONNECT_TIME_S);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, OAUTH_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "campaignd-auth/1"); /* GitHub's API requires one */
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    if (form)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, form);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "cannot reach the provider: %s",
                 *curl_err ? curl_err : curl_easy_strerror(rc));
        return false;
    }
    if (status < 200 || status > 299) {
        snprintf(err, errlen, "the provider answered HTTP %ld", status);
        return false;
    }
    return true;
}

/* "&name=value" with value percent-encoded, appended to b. */
static bool form_add(cd_buf_t *b, const char *name, const char *value)
{
    char *enc = curl_easy_escape(NULL, value, 0);
    bool ok = enc && cd_buf_printf(b, "%s%s=%s", b->len ? "&" : "", name, enc);
    curl_free(enc);
    return ok;
}

bool oauth_exchange_code(const oauth_provider_t *p, const char *code, const char *redirect_uri,
                         char **access, char **refresh, char **id_token, char *err, size_t errlen)
{
    *access = *refresh = *id_token = NULL;
    cd_buf_t form, body;
    cd_buf_init(&form, 16384);
    cd_buf_init(&body, OAUTH_BODY_MAX);
    bool ok = form_add(&form, "grant_type", "authorization_code") &&
              form_add(&form, "code", code) && form_add(&form, "redirect_uri", redirect_uri) &&
              form_add(&form, "client_id", p->client_id) &&
              form_add(&form, "client_secret", p->secret);
    if (!ok)
        snprintf(err, errlen, "the code is too long");
    else
        ok = call(p->token_url, cd_buf_str(&form), NULL, &body, err, errlen) &&
             oauth_parse_token(cd_buf_str(&body), body.len, access, refresh, id_token, err, errlen);
    cd_buf_free(&form);
    cd_buf_free(&body);
    return ok;
}

bool oauth_fetch_user(const oauth_provider_t *p, const char *access, oauth_user_t *u, char *err,
                      size_t errlen)
{
    memset(u, 0, sizeof(*u));
    cd_buf_t body;
    cd_buf_init(&body, OAUTH_BODY_MAX);
    bool ok = call(p->user_url, NULL, access, &body, err, errlen);
    if (ok && p->kind == OAUTH_KIND_OIDC)
        ok = oauth_parse_userinfo(cd_buf_str(&body), body.len, u, err, errlen);
    else if (ok)
        ok = oauth_parse_github_user(cd_buf_str(&body), body.len, u, err, errlen);
    if (ok && p->kind == OAUTH_KIND_GITHUB) {
        cd_buf_free(&body);
        cd_buf_init(&body, OAUTH_BODY_MAX);
        ok = call(p->emails_url, NULL, access, &body, err, errlen) &&
             oauth_parse_github_emails(cd_buf_str(&body), body.len, u, err, errlen);
    }
    cd_buf_free(&body);
    if (!ok)
        oauth_user_free(u);
    return ok;
}

/* ----------------------------------------------------------------- JWKS */

/* The providers' key sets, by issuer: fetched through the discovery
 * document, kept OAUTH_JWKS_CACHE_S seconds. A handful of providers at most. */
#define JWKS_SLOTS 4
static struct {
    char issuer[OAUTH_URL_MAX];
    json_t *jwks;
    time_t expires;
} jwks_cache[JWKS_SLOTS];
static pthread_mutex_t jwks_lock = PTHREAD_MUTEX_INITIALIZER;

/* GET url; its JSON object answer, or NULL (err says why). */
static json_t *get_object(const char *url, char *err, size_t errlen)
{
    cd_buf_t body;
    cd_buf_init(&body, OAUTH_BODY_MAX);
    json_t *j = call(url, NULL, NULL, &body, err, errlen)
                    ? load_object(cd_buf_str(&body), body.len, err, errlen)
                    : NULL;
    cd_buf_free(&body);
    return j;
}

/* The issuer's key set from the network: discovery document (whose issuer
 * must be the one configured), then its jwks_uri. */
static json_t *fetch_jwks(const char *issuer, char *err, size_t errlen)
{
    char url[OAUTH_URL_MAX];
    if (!set_url(url, issuer, "/.well-known/openid-configuration")) {
        snprintf(err, errlen, "the issuer URL is too long");
        return NULL;
    }
    json_t *disc = get_object(url, err, errlen);
    if (!disc)
        return NULL;
    const char *iss = str_member(disc, "issuer", OAUTH_URL_MAX - 1);
    const char *uri = str_member(disc, "jwks_uri", OAUTH_URL_MAX - 1);
    json_t *jwks = NULL;
    if (!iss || strcmp(iss, issuer) != 0)
        snprintf(err, errlen, "the discovery document names another issuer");
    else if (!uri || (strncmp(uri, "https://", 8) != 0 && strncmp(uri, "http://", 7) != 0))
        snprintf(err, errlen, "the discovery document has no jwks_uri");
    else if ((jwks = get_object(uri, err, errlen)) &&
             !json_is_array(json_object_get(jwks, "keys"))) {
        snprintf(err, errlen, "the JWKS has no keys array");
        json_decref(jwks);
        jwks = NULL;
    }
    json_decref(disc);
    return jwks;
}

/* The issuer's key set (new reference): from the cache unless refresh or
 * expired, else fetched and cached. */
static json_t *jwks_get(const char *issuer, bool refresh, char *err, size_t errlen)
{
    time_t now = time(NULL);
    json_t *j = NULL;
    pthread_mutex_lock(&jwks_lock);
    for (int i = 0; !refresh && i < JWKS_SLOTS; i++)
        if (jwks_cache[i].jwks && strcmp(jwks_cache[i].issuer, issuer) == 0 &&
            jwks_cache[i].expires > now)
            j = json_incref(jwks_cache[i].jwks);
    pthread_mutex_unlock(&jwks_lock);
    if (j)
        return j;
    j = fetch_jwks(issuer, err, errlen); /* outside the lock: a slow provider blocks no one */
    if (!j)
        return NULL;
    pthread_mutex_lock(&jwks_lock);
    int slot = 0; /* the issuer's own slot, else an empty one, else the oldest */
    for (int i = 0; i < JWKS_SLOTS; i++) {
        if (strcmp(jwks_cache[i].issuer, issuer) == 0) {
            slot = i;
            break;
        }
        if (!jwks_cache[i].jwks || jwks_cache[i].expires < jwks_cache[slot].expires)
            slot = i;
    }
    json_decref(jwks_cache[slot].jwks);
    snprintf(jwks_cache[slot].issuer, OAUTH_URL_MAX, "%s", issuer);
    jwks_cache[slot].jwks = json_incref(j);
    jwks_cache[slot].expires = now + OAUTH_JWKS_CACHE_S;
    pthread_mutex_unlock(&jwks_lock);
    return j;
}

bool oauth_verify_id_token(const oauth_provider_t *p, const char *id_token, const char *nonce,
                           oauth_user_t *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    oidc_expect_t want = {.issuer = p->issuer,
                          .alt_issuer = p->alt_issuer,
                          .client_id = p->client_id,
                          .nonce = nonce,
                          .now = (long long)time(NULL)};
    json_t *claims = NULL;
    oidc_status_t st = OIDC_UNKNOWN_KID;
    for (int attempt = 0; attempt < 2 && st == OIDC_UNKNOWN_KID; attempt++) {
        json_t *jwks = jwks_get(p->issuer, attempt > 0, err, errlen);
        if (!jwks)
            return false;
        st = oidc_verify_id_token(id_token, jwks, &want, &claims);
        json_decref(jwks);
    }
    if (st != OIDC_OK) {
        snprintf(err, errlen, "%s", oidc_status_text(st));
        return false;
    }
    char *text = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    bool ok = text && oauth_parse_userinfo(text, strlen(text), u, err, errlen);
    if (!text)
        snprintf(err, errlen, "out of memory");
    free(text);
    return ok;
}
