/*
 * The application context: settings, secrets, the database in use and the
 * running server. One struct app is created by main() and passed explicitly
 * to everything that needs it (no global "server" struct).
 */
#ifndef CD_APP_H
#define CD_APP_H

#include <libpq-fe.h>
#include <time.h>

#include "core/config.h"
#include "db/pgembed.h"

#define APP_SECRET_MAX 512
#define APP_KEY_MAX    1024

struct http_server;
struct auth_limiter;

typedef struct app {
    config_t cfg;
    bool embedded; /* we manage PostgreSQL ourselves */
    pgembed_t pg;
    char owner_conninfo[2048];  /* migrations, CLI (database owner) */
    char worker_conninfo[2048]; /* request handling (authenticator) */
    unsigned char jwt_secret[APP_SECRET_MAX];
    size_t jwt_secret_len;
    char encryption_key[APP_SECRET_MAX];
    char anon_key[APP_KEY_MAX];
    char service_key[APP_KEY_MAX];
    char issuer[1100];
    char external_url[1024];
    bool generated_jwt_secret; /* this start created JWT_SECRET (first run) */
    struct http_server *http;
    struct auth_limiter *limiter;
    struct auth_limiter *webhook_limiter; /* WEBHOOK_RATE_LIMIT per address */
    bool mailer_autoconfirm;              /* MAILER_AUTOCONFIRM, resolved */
    time_t started;
} app_t;

/* Loads settings (err gets a message on failure). */
CD_MUSTCHECK bool app_load_config(app_t *app, char *err, size_t errlen);
/* Loads or generates the JWT secret and encryption key, and derives the API keys. */
CD_MUSTCHECK bool app_load_secrets(app_t *app);
/* Brings up the database: starts/adopts the embedded cluster, or checks
 * DATABASE_URL. With migrate, applies pending migrations and prepares the
 * authenticator role. */
CD_MUSTCHECK bool app_open_database(app_t *app, bool migrate);
/* An owner connection (caller PQfinish()es it), or NULL after logging why. */
PGconn *app_owner_connect(const app_t *app);
/* Stops what app_open_database started. */
void app_close(app_t *app);

#endif
