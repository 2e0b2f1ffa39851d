/*
 * Application set-up shared by `serve` and the CLI commands: settings,
 * generated secrets, the API keys derived from the JWT secret, and bringing
 * the database (embedded or external) up to the current schema.
 */
#include "app.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/jwt.h"
#include "core/log.h"
#include "db/db.h"
#include "db/migrate.h"
#include "providers/smtp.h"

/* API keys are long-lived JWTs with fixed iat/exp, so they stay the same for a
 * given JWT_SECRET across restarts and processes (like Supabase's keys). */
#define APP_KEY_IAT    1735689600LL /* 2025-01-01 */
#define APP_KEY_EXP    2051222400LL /* 2035-01-01 */
#define APP_MIN_SECRET 32

/* Checks the mail settings and decides MAILER_AUTOCONFIRM: unset means
 * "confirm at once" only while no mail can be sent. */
static bool resolve_mail_settings(app_t *app, char *err, size_t errlen)
{
    const config_t *c = &app->cfg;
    if (*c->smtp_url && strncmp(c->smtp_url, "smtp://", 7) != 0 &&
        strncmp(c->smtp_url, "smtps://", 8) != 0) {
        snprintf(err, errlen, "SMTP_URL must start with smtp:// or smtps://");
        return false;
    }
    if (!smtp_address_ok(c->smtp_admin_email)) {
        snprintf(err, errlen, "SMTP_ADMIN_EMAIL is not a usable address");
        return false;
    }
    const char *v = c->mailer_autoconfirm;
    if (!*v)
        app->mailer_autoconfirm = !*c->smtp_url;
    else if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
        app->mailer_autoconfirm = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
        app->mailer_autoconfirm = false;
    else {
        snprintf(err, errlen, "MAILER_AUTOCONFIRM must be true or false (or unset)");
        return false;
    }
    return true;
}

bool app_load_config(app_t *app, char *err, size_t errlen)
{
    memset(app, 0, sizeof(*app));
    app->started = time(NULL);
    if (!config_load(&app->cfg, getenv("CAMPAIGND_ENV_FILE"), err, errlen))
        return false;
    if (*app->cfg.api_external_url)
        snprintf(app->external_url, sizeof(app->external_url), "%s", app->cfg.api_external_url);
    else
        snprintf(app->external_url, sizeof(app->external_url), "http://%s:%ld", app->cfg.bind,
                 app->cfg.port);
    size_t n = strlen(app->external_url);
    if (n && app->external_url[n - 1] == '/')
        app->external_url[n - 1] = '\0';
    if (*app->cfg.jwt_issuer)
        snprintf(app->issuer, sizeof(app->issuer), "%s", app->cfg.jwt_issuer);
    else
        snprintf(app->issuer, sizeof(app->issuer), "%s/auth/v1", app->external_url);
    return resolve_mail_settings(app, err, errlen);
}

/* 48 random bytes as base64url: 64 characters. */
static bool random_secret(char *out, size_t outlen)
{
    unsigned char raw[48];
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (outlen < 65 || RAND_bytes(raw, sizeof(raw)) != 1)
        return false;
    for (size_t i = 0, o = 0; i < sizeof(raw); i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        out[o++] = b64[(v >> 6) & 63];
        out[o++] = b64[v & 63];
    }
    out[64] = '\0';
    return true;
}

/* The value of a secret setting: from the configuration if set, else from
 * data_dir/file, else generated and written there with mode 0600. */
static bool load_secret(app_t *app, const char *configured, const char *name, const char *file,
                        char *out, size_t outlen, bool *generated)
{
    *generated = false;
    if (configured && *configured) {
        snprintf(out, outlen, "%s", configured);
    } else {
        char dir[1100], path[1200];
        snprintf(dir, sizeof(dir), "%s", app->cfg.data_dir);
        if (mkdir(dir, 0711) != 0 && errno != EEXIST) {
            log_error("cannot create the data directory %s: %s", dir, strerror(errno));
            return false;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, file);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(out, (int)outlen, f))
                out[0] = '\0';
            fclose(f);
            out[strcspn(out, "\r\n")] = '\0';
        } else {
            if (!random_secret(out, outlen))
                return false;
            int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0) {
                log_error("cannot write %s: %s", path, strerror(errno));
                return false;
            }
            size_t len = strlen(out);
            bool ok = write(fd, out, len) == (ssize_t)len && write(fd, "\n", 1) == 1;
            close(fd);
            if (!ok)
                return false;
            log_info("generated %s and stored it in %s (mode 0600); keep that file with the data",
                     name, path);
            *generated = true;
        }
    }
    if (strlen(out) < APP_MIN_SECRET) {
        log_error("%s must be at least %d bytes long (it is %zu); set a longer one", name,
                  APP_MIN_SECRET, strlen(out));
        return false;
    }
    return true;
}

static bool make_key(app_t *app, const char *role, char *out, size_t outlen)
{
    json_t *claims = json_pack("{s:s, s:s, s:I, s:I}", "role", role, "iss", "campaignd", "iat",
                               (json_int_t)APP_KEY_IAT, "exp", (json_int_t)APP_KEY_EXP);
    char *tok = claims ? jwt_sign(claims, app->jwt_secret, app->jwt_secret_len) : NULL;
    json_decref(claims);
    if (!tok || strlen(tok) >= outlen) {
        free(tok);
        return false;
    }
    snprintf(out, outlen, "%s", tok);
    free(tok);
    return true;
}

bool app_load_secrets(app_t *app)
{
    char secret[APP_SECRET_MAX];
    bool generated_key = false;
    if (!load_secret(app, app->cfg.jwt_secret, "JWT_SECRET", "jwt_secret", secret, sizeof(secret),
                     &app->generated_jwt_secret))
        return false;
    app->jwt_secret_len = strlen(secret);
    memcpy(app->jwt_secret, secret, app->jwt_secret_len);
    if (!load_secret(app, app->cfg.encryption_key, "CAMPAIGND_ENCRYPTION_KEY", "encryption_key",
                     app->encryption_key, sizeof(app->encryption_key), &generated_key))
        return false;
    if (!make_key(app, "anon", app->anon_key, sizeof(app->anon_key)) ||
        !make_key(app, "service_role", app->service_key, sizeof(app->service_key))) {
        log_error("cannot sign the API keys");
        return false;
    }
    return true;
}

PGconn *app_owner_connect(const app_t *app)
{
    PGconn *c = PQconnectdb(app->owner_conninfo);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
        msg[strcspn(msg, "\n")] = '\0';
        log_error("cannot connect to the database: %s%s", msg,
                  app->embedded ? "" : " (check DATABASE_URL)");
        PQfinish(c);
        return NULL;
    }
    return c;
}

/* The authenticator's password for an external server: derived from the JWT
 * secret, so every campaignd process sharing the secret computes the same one
 * without storing it anywhere. */
static void authenticator_password(const app_t *app, char out[65])
{
    unsigned char md[32];
    unsigned int len = 0;
    static const char label[] = "campaignd authenticator password v1";
    HMAC(EVP_sha256(), app->jwt_secret, (int)app->jwt_secret_len, (const unsigned char *)label,
         sizeof(label) - 1, md, &len);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Any constant but migrate.c's: the advisory lock that serialises the
 * authenticator's ALTER ROLE across processes starting together. */
#define AUTHENTICATOR_LOCK_KEY "4242002"

static bool prepare_authenticator(app_t *app, PGconn *owner)
{
    char pw[65];
    authenticator_password(app, pw);
    const char *p[1] = {pw};
    /* Processes starting at once on one database would update the role's
     * row together ("tuple concurrently updated"): one at a time, under a
     * transaction-scoped advisory lock (its key beside migrate.c's). */
    PGresult *r = PQexecParams(
        owner,
        "select format('begin; select pg_catalog.pg_advisory_xact_lock(" AUTHENTICATOR_LOCK_KEY
        "); "
        "alter role authenticator with login password %L; commit', $1::text)",
        1, NULL, p, NULL, NULL, 0);
    bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (ok) {
        db_error_t err;
        ok = db_exec(owner, PQgetvalue(r, 0, 0), &err);
        if (!ok) {
            log_error("cannot set the authenticator role's password: %s", err.message);
            db_exec_ignore(owner, "rollback");
        }
    }
    PQclear(r);
    if (!ok)
        return false;
    if (app->embedded) {
        char ci[2048];
        pgembed_conninfo(&app->pg, "authenticator", ci, sizeof(ci));
        snprintf(app->worker_conninfo, sizeof(app->worker_conninfo), "%s", ci);
    } else {
        /* Same server and database as DATABASE_URL, as the authenticator. */
        PQconninfoOption *opts = PQconninfo(owner);
        char buf[1536] = "";
        size_t w = 0;
        for (PQconninfoOption *o = opts; o && o->keyword; o++) {
            if (!o->val || !*o->val || strcmp(o->keyword, "user") == 0 ||
                strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "passfile") == 0)
                continue;
            int n = snprintf(buf + w, sizeof(buf) - w, "%s='", o->keyword);
            w += (size_t)n;
            for (const char *v = o->val; *v && w + 3 < sizeof(buf); v++) {
                if (*v == '\'' || *v == '\\')
                    buf[w++] = '\\';
                buf[w++] = *v;
            }
            if (w + 2 < sizeof(buf)) {
                buf[w++] = '\'';
                buf[w++] = ' ';
                buf[w] = '\0';
            }
        }
        PQconninfoFree(opts);
        int n = snprintf(app->worker_conninfo, sizeof(app->worker_conninfo),
                         "%suser=authenticator password=%s application_name=campaignd", buf, pw);
        if (n < 0 || (size_t)n >= sizeof(app->worker_conninfo)) {
            log_error("DATABASE_URL is too long");
            return false;
        }
    }
    return true;
}

bool app_open_database(app_t *app, bool migrate)
{
    if (*app->cfg.database_url) {
        app->embedded = false;
        snprintf(app->owner_conninfo, sizeof(app->owner_conninfo), "%s", app->cfg.database_url);
    } else {
        app->embedded = true;
        if (!pgembed_start(&app->pg, app->cfg.data_dir))
            return false;
        pgembed_conninfo(&app->pg, PGEMBED_SUPERUSER, app->owner_conninfo,
                         sizeof(app->owner_conninfo));
    }
    PGconn *owner = app_owner_connect(app);
    if (!owner)
        return false;
    bool ok = true;
    if (migrate) {
        int applied = 0;
        ok = migrate_run(owner, migrations_embedded, migrations_embedded_count, &applied);
        if (ok && applied)
            log_info("applied %d migration(s)", applied);
        ok = ok && prepare_authenticator(app, owner);
    }
    PQfinish(owner);
    return ok;
}

void app_close(app_t *app)
{
    if (app->embedded)
        pgembed_stop(&app->pg);
    config_free(&app->cfg);
}
