/*
 * The provider settings at run time (issue 12, "Configuration"): the
 * environment's values, overridden by what an admin stored in the app
 * settings (migration 039: the secrets encrypted in app_secrets, the others
 * in app_settings). The send engine (each campaign run, each test message,
 * the /send check) and the Twilio webhooks read them through this one
 * lookup, so a change by an admin applies to the next run without a restart.
 * It lives in api/ (below sending/ in scripts/check-layers.py) so that both
 * the webhooks and the engine may use it.
 */
#ifndef CD_API_PROVIDER_SETTINGS_H
#define CD_API_PROVIDER_SETTINGS_H

#include "core/config.h"
#include "db/db.h"
#include "providers/provider.h"

/* The settings, in the column order of public.provider_settings(). */
enum {
    PCFG_EMAIL_PROVIDER = 0,
    PCFG_SMTP_URL,
    PCFG_EMAIL_FROM,
    PCFG_SENDGRID_API_KEY,
    PCFG_SENDGRID_API_BASE,
    PCFG_TWILIO_ACCOUNT_SID,
    PCFG_TWILIO_AUTH_TOKEN,
    PCFG_TWILIO_FROM,
    PCFG_TWILIO_API_BASE,
    PCFG_COUNT,
};

typedef struct provider_config {
    provider_settings_t ps;  /* what the providers are opened with */
    const char *email_from;  /* EMAIL_FROM ("" when unset) */
    const char *twilio_from; /* TWILIO_FROM ("" when unset) */
    /* The admin's stored values (NULL: none), owned, wiped by
     * provider_config_free. Set by provider_config_load. */
    char *stored[PCFG_COUNT];
} provider_config_t;

/* Fills s->ps, email_from and twilio_from: a non-empty s->stored[i] wins
 * over cfg's value. Pointers borrow from cfg and s->stored. */
void provider_config_merge(const config_t *cfg, provider_config_t *s);

/* Reads the admin's values as service_role (on conn, or the thread's
 * connection when conn is NULL) and merges them over cfg's. DB_UNAVAILABLE
 * when the database is unreachable (err says why, s holds the environment's
 * values); any other failure (no or a wrong CAMPAIGND_ENCRYPTION_KEY) is
 * logged without values and leaves the environment's values: DB_OK. Free
 * with provider_config_free either way. */
CD_MUSTCHECK db_status_t provider_config_load(db_conn_t *conn, const config_t *cfg,
                                              provider_config_t *s, db_error_t *err);

/* Wipes and frees the stored values. */
void provider_config_free(provider_config_t *s);

#endif
