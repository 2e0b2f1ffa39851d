/*
 * The provider settings at run time (provider_settings.h): one query of
 * public.provider_settings() (migration 039) per campaign run or webhook,
 * merged over the environment's values. Values are never logged.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "core/log.h"
#include "api/provider_settings.h"

static const db_caller_t SETTINGS_CALLER = {
    .role = "service_role",
    .claims_json = "{\"role\":\"service_role\"}",
    .method = "JOB",
    .path = "provider_settings",
    .read_only = true,
    .with_secrets = true,
};

static const char *pick(const char *stored, const char *env)
{
    if (stored && *stored)
        return stored;
    return env ? env : "";
}

void provider_config_merge(const config_t *cfg, provider_config_t *s)
{
    char *const *v = s->stored;
    memset(&s->ps, 0, sizeof(s->ps));
    s->ps.email_provider = pick(v[PCFG_EMAIL_PROVIDER], cfg->email_provider);
    s->ps.smtp_url = pick(v[PCFG_SMTP_URL], cfg->smtp_url);
    s->ps.sendgrid_api_key = pick(v[PCFG_SENDGRID_API_KEY], cfg->sendgrid_api_key);
    s->ps.sendgrid_api_base = pick(v[PCFG_SENDGRID_API_BASE], cfg->sendgrid_api_base);
    s->ps.twilio_account_sid = pick(v[PCFG_TWILIO_ACCOUNT_SID], cfg->twilio_account_sid);
    s->ps.twilio_auth_token = pick(v[PCFG_TWILIO_AUTH_TOKEN], cfg->twilio_auth_token);
    s->ps.twilio_api_base = pick(v[PCFG_TWILIO_API_BASE], cfg->twilio_api_base);
    s->ps.timeout_seconds = 30;
    s->email_from = pick(v[PCFG_EMAIL_FROM], cfg->email_from);
    s->twilio_from = pick(v[PCFG_TWILIO_FROM], cfg->twilio_from);
}

/* Copies the row's non-null values into s->stored; false when out of memory. */
static bool keep_row(const PGresult *res, provider_config_t *s)
{
    if (PQntuples(res) < 1 || PQnfields(res) != PCFG_COUNT)
        return true; /* no settings row: the environment */
    for (int i = 0; i < PCFG_COUNT; i++) {
        if (PQgetisnull(res, 0, i))
            continue;
        s->stored[i] = strdup(PQgetvalue(res, 0, i));
        if (!s->stored[i])
            return false;
    }
    return true;
}

db_status_t provider_config_load(db_conn_t *conn, const config_t *cfg, provider_config_t *s,
                                 db_error_t *err)
{
    memset(s, 0, sizeof(*s));
    db_stmt_t st = {"select * from public.provider_settings()", 0, NULL};
    PGresult *res = NULL;
    db_status_t rc = conn ? db_run_as(conn, &SETTINGS_CALLER, &st, 1, &res, err)
                          : db_run(&SETTINGS_CALLER, &st, 1, &res, err);
    if (rc == DB_OK && !keep_row(res, s)) {
        provider_config_free(s);
        log_warn("provider settings: out of memory; using the environment's values");
    } else if (rc == DB_SQL_ERROR) {
        log_warn("provider settings: cannot read the admin's values (%s %s); using the "
                 "environment's values",
                 err->sqlstate, err->message);
        rc = DB_OK;
    }
    PQclear(res);
    provider_config_merge(cfg, s);
    return rc == DB_UNAVAILABLE ? DB_UNAVAILABLE : DB_OK;
}

void provider_config_free(provider_config_t *s)
{
    for (int i = 0; i < PCFG_COUNT; i++) {
        if (s->stored[i]) {
            OPENSSL_cleanse(s->stored[i], strlen(s->stored[i]));
            free(s->stored[i]);
            s->stored[i] = NULL;
        }
    }
}
