/*
 * The OAuth/OIDC providers campaignd signs users in with (GitHub, Google, a
 * generic OIDC provider): their endpoints from the settings, the
 * authorization-code exchange and the user lookup over libcurl, and the
 * parsers of the providers' answers (pure, unit-tested and fuzzed).
 */
#ifndef CD_AUTH_OAUTH_PROVIDER_H
#define CD_AUTH_OAUTH_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "core/common.h"
#include "core/config.h"

#define OAUTH_URL_MAX 1024

typedef enum { OAUTH_KIND_GITHUB, OAUTH_KIND_OIDC } oauth_kind_t;

typedef struct oauth_provider {
    const char *name; /* "github", "google", "oidc": auth.identities.provider */
    oauth_kind_t kind;
    const char *client_id;
    const char *secret;
    const char *scopes; /* always requested */
    char authorize_url[OAUTH_URL_MAX];
    char token_url[OAUTH_URL_MAX];
    char user_url[OAUTH_URL_MAX];
    char emails_url[OAUTH_URL_MAX]; /* GitHub only */
    /* OIDC: the issuer an id_token must name, whose discovery document
     * (<issuer>/.well-known/openid-configuration) gives the JWKS; "" when the
     * provider's id_token cannot be verified (the user comes from userinfo) */
    char issuer[OAUTH_URL_MAX];
    const char *alt_issuer; /* another accepted iss (Google's bare host), or NULL */
} oauth_provider_t;

/* The provider called name, when it is enabled and has a client id and
 * secret; false otherwise. out borrows strings from cfg. */
CD_MUSTCHECK bool oauth_provider_get(const config_t *cfg, const char *name, oauth_provider_t *out);

/* Who the provider says the user is. */
typedef struct oauth_user {
    char id[256]; /* the provider's user id (sub) */
    char email[320];
    bool email_verified;
    json_t *data; /* identity data: name, avatar_url, ... (never a role); owned */
} oauth_user_t;

void oauth_user_free(oauth_user_t *u);

/* Parsers of provider answers (body of len bytes). False when the answer is
 * not what the provider should send; err names why. */
/* A token endpoint's JSON: access_token (required), refresh_token and
 * id_token (optional) as malloc'd strings, or the provider's error. */
CD_MUSTCHECK bool oauth_parse_token(const char *body, size_t len, char **access, char **refresh,
                                    char **id_token, char *err, size_t errlen);
/* GitHub's GET /user: id, login, name, avatar_url, email. */
CD_MUSTCHECK bool oauth_parse_github_user(const char *body, size_t len, oauth_user_t *u, char *err,
                                          size_t errlen);
/* GitHub's GET /user/emails: the primary address (with its verified flag),
 * else the first verified one, replaces u->email. */
CD_MUSTCHECK bool oauth_parse_github_emails(const char *body, size_t len, oauth_user_t *u,
                                            char *err, size_t errlen);
/* An OIDC userinfo answer (Google's too): sub, email, email_verified, name,
 * picture, preferred_username. */
CD_MUSTCHECK bool oauth_parse_userinfo(const char *body, size_t len, oauth_user_t *u, char *err,
                                       size_t errlen);

/* Exchanges an authorization code at the token endpoint (client id and
 * secret in the form, as GitHub and Google accept). */
CD_MUSTCHECK bool oauth_exchange_code(const oauth_provider_t *p, const char *code,
                                      const char *redirect_uri, char **access, char **refresh,
                                      char **id_token, char *err, size_t errlen);
/* Verifies an OIDC provider's id_token (oidc_token.h) against its JWKS,
 * fetched through the discovery document and cached for
 * OAUTH_JWKS_CACHE_S seconds; an unknown kid refetches the set once (key
 * rotation). nonce: the one sent at /authorize. On true u holds the user the
 * token describes (as oauth_parse_userinfo reads it). */
#define OAUTH_JWKS_CACHE_S 3600
CD_MUSTCHECK bool oauth_verify_id_token(const oauth_provider_t *p, const char *id_token,
                                        const char *nonce, oauth_user_t *u, char *err,
                                        size_t errlen);
/* Looks the user up with the provider's access token. */
CD_MUSTCHECK bool oauth_fetch_user(const oauth_provider_t *p, const char *access, oauth_user_t *u,
                                   char *err, size_t errlen);

#endif
