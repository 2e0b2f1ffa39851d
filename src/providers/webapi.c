/*
 * Shared libcurl glue of the HTTP API providers (webapi.h).
 */
#include <curl/curl.h>
#include <stdlib.h>

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
