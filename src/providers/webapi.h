/*
 * What the HTTP API providers (SendGrid, Twilio) share on top of libcurl:
 * the client (one kept-alive handle), the account every provider value
 * holds (API base, secret, timeout, client), one request performed with the
 * same options and the same failure rule, the response body collector and
 * the rule that decides whether a failed request may be retried. Kept apart
 * so both clients answer the same way.
 */
#ifndef CD_PROVIDERS_WEBAPI_H
#define CD_PROVIDERS_WEBAPI_H

#include <stddef.h>

#include "core/buf.h"
#include "core/common.h"

/* A client of one HTTP API: one libcurl handle, so its connections are kept
 * and reused from one request to the next (one client per sending worker). */
struct webapi_client {
    void *curl; /* CURL * */
};
struct webapi_client *webapi_client_new(void);
void webapi_client_free(struct webapi_client *c);

/* A libcurl CURLOPT_WRITEFUNCTION that appends to the cd_buf_t given as
 * userp; a full buffer stops the transfer (CURLE_WRITE_ERROR). */
size_t webapi_write_buf(char *p, size_t size, size_t nmemb, void *userp);

/* Whether a libcurl error code (CURLcode) means the request never reached
 * the server (name resolution, connection refused, TLS handshake), so it is
 * safe to send it again. Every other failure may have happened after the
 * server got the request: retrying could deliver a message twice. */
bool webapi_connect_failure(int curl_code);

/* One request. Everything is borrowed for the call. */
typedef struct webapi_request {
    const char *url;
    const char *user;     /* HTTP basic auth user, or NULL */
    const char *password; /* with user */
    void *headers;        /* struct curl_slist * of extra headers, or NULL */
    const char *body;     /* POST this body; NULL: GET */
    size_t body_len;
    /* a CURLOPT_HEADERFUNCTION and its data, or NULL */
    size_t (*header_cb)(char *p, size_t size, size_t nmemb, void *userp);
    void *header_data;
    long timeout_seconds;
} webapi_request_t;

/* What became of a request. */
typedef enum webapi_status {
    WEBAPI_ANSWERED = 0, /* an HTTP answer came (any status) */
    WEBAPI_NOT_SENT,     /* it never reached the server: safe to retry */
    WEBAPI_LOST,         /* it may have reached the server, no answer came */
} webapi_status_t;

/* Performs r on c (http and https only), the answer's body into answer and
 * its status into *http_status (0 without an answer). Otherwise err gets
 * libcurl's reason (never a credential). */
webapi_status_t webapi_perform(struct webapi_client *c, const webapi_request_t *r, cd_buf_t *answer,
                               long *http_status, char *err, size_t errlen);

/* The state of a provider value of an HTTP API, opened from the settings. */
#define WEBAPI_FIELD_MAX 512
typedef struct webapi_account {
    char api_base[WEBAPI_FIELD_MAX];
    char secret[WEBAPI_FIELD_MAX]; /* API key or auth token: cleansed on close */
    long timeout_seconds;
    struct webapi_client *client; /* one connection for the whole job */
} webapi_account_t;

/* Fills a: base (default_base when ""), which must be an http(s) URL,
 * secret (not empty), both shorter than WEBAPI_FIELD_MAX; timeout_seconds
 * (30 when <= 0) and a new client. False with err set, naming base_name and
 * secret_name, when a value is refused or memory is out (nothing to close). */
CD_MUSTCHECK bool webapi_account_open(webapi_account_t *a, const char *base,
                                      const char *default_base, const char *base_name,
                                      const char *secret, const char *secret_name,
                                      long timeout_seconds, char *err, size_t errlen);
/* Frees the client and cleanses the secret. */
void webapi_account_close(webapi_account_t *a);

#endif
