/*
 * Shared libcurl glue of the HTTP API providers (webapi.h).
 */
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/webapi.h"

size_t webapi_write_buf(char *p, size_t size, size_t nmemb, void *userp)
{
    cd_buf_t *b = userp;
    return cd_buf_add(b, p, size * nmemb) ? size * nmemb : 0;
}

bool webapi_connect_failure(int curl_code)
{
    switch ((CURLcode)curl_code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return true;
    default:
        return false;
    }
}

struct webapi_client *webapi_client_new(void)
{
    struct webapi_client *c = calloc(1, sizeof(*c));
    if (c && !(c->curl = curl_easy_init())) {
        free(c);
        return NULL;
    }
    return c;
}

void webapi_client_free(struct webapi_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->curl);
    free(c);
}

webapi_status_t webapi_perform(struct webapi_client *c, const webapi_request_t *r, cd_buf_t *answer,
                               long *http_status, char *err, size_t errlen)
{
    CURL *h = c->curl;
    char curl_err[CURL_ERROR_SIZE] = "";
    *http_status = 0;
    curl_easy_reset(h);
    curl_easy_setopt(h, CURLOPT_URL, r->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (r->user) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, r->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, r->password ? r->password : "");
    }
    if (r->headers)
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, (struct curl_slist *)r->headers);
    if (r->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)r->body_len);
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, webapi_write_buf);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, answer);
    if (r->header_cb) {
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, r->header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, r->header_data);
    }
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, r->timeout_seconds);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) {
        snprintf(err, errlen, "%s", *curl_err ? curl_err : curl_easy_strerror(rc));
        return webapi_connect_failure((int)rc) ? WEBAPI_NOT_SENT : WEBAPI_LOST;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http_status);
    return WEBAPI_ANSWERED;
}

bool webapi_account_open(webapi_account_t *a, const char *base, const char *default_base,
                         const char *base_name, const char *secret, const char *secret_name,
                         long timeout_seconds, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    if (!base || !*base)
        base = default_base;
    if (!secret || !*secret) {
        snprintf(err, errlen, "%s is not set", secret_name);
        return false;
    }
    if (strlen(base) >= sizeof(a->api_base) || strlen(secret) >= sizeof(a->secret) ||
        (strncmp(base, "https://", 8) != 0 && strncmp(base, "http://", 7) != 0)) {
        snprintf(err, errlen, "%s must be an http(s) URL and the %s < %d bytes", base_name,
                 secret_name, WEBAPI_FIELD_MAX);
        return false;
    }
    if (!(a->client = webapi_client_new())) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    snprintf(a->api_base, sizeof(a->api_base), "%s", base);
    snprintf(a->secret, sizeof(a->secret), "%s", secret);
    a->timeout_seconds = timeout_seconds > 0 ? timeout_seconds : 30;
    return true;
}

void webapi_account_close(webapi_account_t *a)
{
    webapi_client_free(a->client);
    a->client = NULL;
    OPENSSL_cleanse(a->secret, sizeof(a->secret));
}
