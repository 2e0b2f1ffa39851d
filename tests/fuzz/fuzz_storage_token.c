/* libFuzzer target for the signed-URL token verifier (src/storage/storage_sign.c). The input,
 * as a NUL-terminated string, is verified with a fixed secret and clock: an OK verdict must
 * come with claims holding an integer exp in the future, and any other verdict without. The
 * input (up to a NUL) is also signed as the "url" claim when it is UTF-8, and must verify
 * back to itself: the strict base64url decoder accepts exactly what the signer writes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "storage/storage_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Same secret and clock as the seed corpus, so the fuzzer starts from valid tokens. */
static const unsigned char fuzz_secret[] = "campaignd-fuzz-secret-0123456789abcdef";
#define FUZZ_NOW 1700000000LL

static void verify(const char *token)
{
    json_t *claims = NULL;
    storage_token_status_t st =
        storage__token_verify(token, fuzz_secret, sizeof(fuzz_secret) - 1, FUZZ_NOW, &claims);
    (void)storage__token_message(st);
    if ((st == STORAGE_TOKEN_OK) != (claims != NULL))
        abort();
    if (claims) {
        json_t *exp = json_object_get(claims, "exp");
        if (!json_is_integer(exp) || json_integer_value(exp) <= FUZZ_NOW)
            abort();
    }
    json_decref(claims);
}

static void round_trip(const char *url, size_t n)
{
    json_t *claims = json_pack("{s:s%, s:I}", "url", url, n, "exp", (json_int_t)FUZZ_NOW + 60);
    if (!claims)
        return;
    char *tok = storage__token_sign(claims, fuzz_secret, sizeof(fuzz_secret) - 1);
    json_decref(claims);
    if (!tok)
        return; /* too long for a token */
    json_t *back = NULL;
    if (storage__token_verify(tok, fuzz_secret, sizeof(fuzz_secret) - 1, FUZZ_NOW, &back) !=
        STORAGE_TOKEN_OK)
        abort();
    json_t *u = json_object_get(back, "url");
    if (!json_is_string(u) || json_string_length(u) != n || memcmp(json_string_value(u), url, n))
        abort();
    json_decref(back);
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = size < STORAGE_TOKEN_MAX_BYTES + 16 ? size : STORAGE_TOKEN_MAX_BYTES + 16;
    char *token = malloc(n + 1);
    if (token == NULL)
        return 0;
    memcpy(token, data, n);
    token[n] = '\0';
    verify(token);
    /* a NUL ends the claim: "\u0000" is refused in token payloads */
    size_t len = strlen(token);
    if (cd_utf8_valid((const unsigned char *)token, len))
        round_trip(token, len);
    free(token);
    return 0;
}
