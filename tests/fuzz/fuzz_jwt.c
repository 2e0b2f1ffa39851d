/*
 * libFuzzer target for the JWT verifier (src/core/jwt.c): arbitrary bytes, as a NUL-terminated
 * string, go to jwt_verify with a fixed secret and clock. Any crash, sanitizer report or leak is
 * a bug; so is an OK verdict without claims.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/jwt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Same secret as the seed corpus, so the fuzzer starts from correctly signed tokens. */
static const unsigned char fuzz_secret[] = "campaignd-fuzz-secret-0123456789abcdef";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Bounded copy: longer inputs are cut just past the limit, which still exercises it. */
    size_t n = size < JWT_MAX_TOKEN_BYTES + 16 ? size : JWT_MAX_TOKEN_BYTES + 16;
    char *token = malloc(n + 1);
    json_t *claims = NULL;
    jwt_status_t st;

    if (token == NULL)
        return 0;
    memcpy(token, data, n);
    token[n] = '\0';
    st = jwt_verify(token, fuzz_secret, sizeof(fuzz_secret) - 1, 1700000000LL, 30, &claims);
    if ((st == JWT_OK) != (claims != NULL))
        abort();
    (void)jwt_status_message(st);
    json_decref(claims);
    free(token);
    return 0;
}
