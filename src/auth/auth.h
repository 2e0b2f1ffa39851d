/*
 * Auth: who is calling (API key + Bearer JWT → role and claims), the
 * GoTrue-compatible endpoints under /auth/v1 (and the specification's
 * /auth/sign-in etc.), sign-in throttling, and the user commands of the CLI.
 */
#ifndef CD_AUTH_H
#define CD_AUTH_H

#include <jansson.h>
#include <libpq-fe.h>

#include "app.h"
#include "core/jwt.h"
#include "db/db.h"
#include "http/http.h"

/* The verified identity of a request. */
typedef struct auth_caller {
    char role[16];       /* "anon", "authenticated" or "service_role" */
    json_t *claims;      /* the verified JWT payload (owned) */
    char *claims_json;   /* the same, as compact text (owned) */
    char *headers_json;  /* request.headers for the database (owned) */
    char user_id[37];    /* sub, for signed-in users; "" otherwise */
    char session_id[37]; /* session_id claim, or "" */
    bool has_bearer;     /* the caller sent a user token, not only the API key */
    /* Why the Bearer token failed when auth_identify answers AUTH_ID_BAD_JWT (JWT_OK when
     * it failed for another reason, e.g. out of memory); JWT_OK otherwise. Callers that
     * shape their own error (PostgREST's PGRST301/303) read this, never the message. */
    jwt_status_t jwt_status;
} auth_caller_t;

typedef enum {
    AUTH_ID_OK = 0,
    AUTH_ID_NO_APIKEY,  /* no apikey header or query parameter */
    AUTH_ID_BAD_APIKEY, /* apikey is not one of this server's keys */
    AUTH_ID_BAD_JWT,    /* the Bearer token failed verification: see jwt_status and *why */
} auth_id_status_t;

/* Works out who is calling. With require_apikey, a request without a valid
 * apikey (header or ?apikey=) is refused, as Supabase's gateway does. The
 * Bearer token, if any, decides the role; otherwise the apikey does. On
 * failure *why is a short static message. Always free with auth_caller_free. */
CD_MUSTCHECK auth_id_status_t auth_identify(const app_t *app, http_request_t *req,
                                            bool require_apikey, auth_caller_t *out,
                                            const char **why);
void auth_caller_free(auth_caller_t *c);
/* Fills a db_caller_t for running SQL as this caller. */
void auth_caller_db(const auth_caller_t *c, const http_request_t *req, bool read_only,
                    db_caller_t *out);
/* request.headers as JSON: lower-cased header names, with x-real-ip set to the
 * client address (overriding any client-sent value). Caller frees. */
char *auth_headers_json(http_request_t *req);
/* The same from n header names and values (MHD's, in the order received) and the
 * client address; "{}" when the result would pass its bound. Exposed for tests. */
char *auth_headers_json_of(const char *const *names, const char *const *values, size_t n,
                           const char *client_ip);
/* Answers a failed auth_identify in the gateway's shape (401 with a message). */
void auth_reply_identify_error(http_request_t *req, auth_id_status_t st, const char *why);

/* The /auth/v1 routes and the specification's /auth routes. */
extern const http_route_t auth_routes[];
extern const size_t auth_routes_len;

/* Per-address request budget (fixed 5-minute windows) for sign-up, sign-in
 * and refresh. Thread-safe. */
struct auth_limiter *auth_limiter_new(size_t slots);
void auth_limiter_free(struct auth_limiter *l);
/* Counts a request from addr; returns 0 if allowed, else seconds to wait. */
int auth_limiter_hit(struct auth_limiter *l, const char *addr, long limit);

/* MFA_REQUIRED_FOR_ADMIN=true turns on app_settings.mfa_required_for_admin
 * (migration 035) at start. False, and logged, when the database refuses. */
CD_MUSTCHECK bool auth_mfa_apply_setting(app_t *app);
/* Creates CAMPAIGND_ADMIN_EMAIL as an admin at start if set and no admin exists. */
CD_MUSTCHECK bool auth_bootstrap_admin(app_t *app);
/* The CLI's user commands, over an owner connection; msg gets the outcome. */
CD_MUSTCHECK bool auth_cli_add_user(const app_t *app, PGconn *c, const char *email,
                                    const char *password, const char *role, char *msg,
                                    size_t msglen);
CD_MUSTCHECK bool auth_cli_set_role(PGconn *c, const char *email, const char *role, char *msg,
                                    size_t msglen);
CD_MUSTCHECK bool auth_cli_list_users(PGconn *c, char *msg, size_t msglen);

/* Whether s looks like an e-mail address we accept (exposed for tests). */
bool auth_email_valid(const char *s);

#endif
