/*
 * Shared libcurl glue of the HTTP API providers (webapi.h).
 */
#include <curl/curl.h>

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
