/*
 * The provider settings at run time (issue 12, "Configuration"): the
 * environment's values, overridden by what an admin stored in the app
 * settings (migration 038: the secrets encrypted in app_secrets, the others
 * in app_settings). The send engine (each campaign run, each test message,
 * the /send check) and the Twilio webhooks read them through this one
 * lookup, so a change by an admin applies to the next run without a restart.
 */
#ifndef CD_SENDING_SETTINGS_H
#define CD_SENDING_SETTINGS_H

#include "core/config.h"
#include "db/db.h"
#include "providers/provider.h"

/* The settings, in the column order of public.provider_settings(). */
enum {
    PSET_EMAIL_PROVIDER = 0,
    PSET_SMTP_URL,
    PSET_EMAIL_FROM,
    PSET_SENDGRID_API_KEY,
    PSET_SENDGRID_API_BASE,
    PSET_TWILIO_ACCOUNT_SID,
    PSET_TWILIO_AUTH_TOKEN,
    PSET_TWILIO_FROM,
    PSET_TWILIO_API_BASE,
    PSET_COUNT,
};

typedef struct sending_settings {
    provider_settings_t ps;  /* what the providers are opened with */
    const char *email_from;  /* EMAIL_FROM ("" when unset) */
    const char *twilio_from; /* TWILIO_FROM ("" when unset) */
    /* The admin's stored values (NULL: none), owned, wiped by
     * sending_settings_free. Set by sending_settings_load. */
    char *stored[PSET_COUNT];
} sending_settings_t;

/* Fills s->ps, email_from and twilio_from: a non-empty s->stored[i] wins
 * over cfg's value. Pointers borrow from cfg and s->stored. */
void sending_settings_merge(const config_t *cfg, sending_settings_t *s);

/* Reads the admin's values as service_role (on conn, or the thread's
 * connection when conn is NULL) and merges them over cfg's. DB_UNAVAILABLE
 * when the database is unreachable (err says why, s holds the environment's
 * values); any other failure (no or a wrong CAMPAIGND_ENCRYPTION_KEY) is
 * logged without values and leaves the environment's values: DB_OK. Free
 * with sending_settings_free either way. */
CD_MUSTCHECK db_status_t sending_settings_load(db_conn_t *conn, const config_t *cfg,
                                               sending_settings_t *s, db_error_t *err);

/* Wipes and frees the stored values. */
void sending_settings_free(sending_settings_t *s);

#endif
