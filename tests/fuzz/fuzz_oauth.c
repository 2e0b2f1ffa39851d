/*
 * libFuzzer target for what campaignd reads from outside during an OAuth
 * sign-in: the state that comes back through the browser (oauth_state_verify)
 * and the provider's answers (oauth_parse_token, oauth_parse_github_user,
 * oauth_parse_github_emails, oauth_parse_userinfo) and its id_token
 * (oidc_verify_id_token, against a fixed P-256 key: RFC 7515 A.3's). The
 * first byte picks the parser (mod 6), the rest is its input. Any crash, sanitizer report or leak
 * is a bug; so is an OK state verdict without claims.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/oauth_provider.h"
#include "auth/oauth_state.h"
#include "auth/oidc_token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char fuzz_key[] = "campaignd-fuzz-oauth-state-key-0123456789";

static void state(const char *s)
{
    json_t *claims = NULL;
    oauth_state_status_t st =
        oauth_state_verify(s, fuzz_key, sizeof(fuzz_key) - 1, 1700000000LL, &claims);
    if ((st == OAUTH_STATE_OK) != (claims != NULL))
        abort();
    json_decref(claims);
    (void)oauth_pkce_matches("s256", s, s);
}

static void id_token(const char *s)
{
    static const char jwks_text[] =
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k1\","
        "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
        "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
        "{\"kty\":\"RSA\",\"kid\":\"k2\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}";
    json_error_t je;
    json_t *jwks = json_loads(jwks_text, 0, &je);
    oidc_expect_t want = {"https://idp.test", NULL, "client", "nonce", 1700000000LL};
    json_t *claims = NULL;
    oidc_status_t st = oidc_verify_id_token(s, jwks, &want, &claims);
    if ((st == OIDC_OK) != (claims != NULL))
        abort();
    json_decref(claims);
    json_decref(jwks);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t n = size - 1 < 300000 ? size - 1 : 300000;
    char *in = malloc(n + 1);
    if (!in)
        return 0;
    memcpy(in, data + 1, n);
    in[n] = '\0';
    char err[256], *a = NULL, *r = NULL, *id = NULL;
    oauth_user_t u;
    memset(&u, 0, sizeof(u));
    switch (data[0] % 6) {
    case 0:
        state(in);
        break;
    case 1:
        if (oauth_parse_token(in, n, &a, &r, &id, err, sizeof(err)) && !a)
            abort();
        free(a);
        free(r);
        free(id);
        break;
    case 5:
        id_token(in);
        break;
    case 2:
        (void)oauth_parse_github_user(in, n, &u, err, sizeof(err));
        break;
    case 3:
        (void)oauth_parse_github_emails(in, n, &u, err, sizeof(err));
        break;
    default:
        (void)oauth_parse_userinfo(in, n, &u, err, sizeof(err));
        break;
    }
    oauth_user_free(&u);
    free(in);
    return 0;
}
