/*
 * What the HTTP API providers (SendGrid, Twilio) share on top of libcurl:
 * the response body collector and the rule that decides whether a failed
 * request may be retried. Kept apart so both clients answer the same way.
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

#endif
