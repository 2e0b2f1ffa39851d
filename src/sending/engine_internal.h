/*
 * Internals shared by the send engine's files (engine.c, routes.c) and their
 * unit tests. Not a public interface: use sending.h.
 */
#ifndef CD_SENDING_ENGINE_INTERNAL_H
#define CD_SENDING_ENGINE_INTERNAL_H

#include "api/provider_settings.h"
#include "app.h"
#include "db/db.h"
#include "sending/provider.h"
#include "sending/track.h"

/* The columns of a loaded campaign (sending_campaign_t.str). */
enum {
    SC_TYPE = 0,   /* email | sms | social */
    SC_STATUS,     /* campaigns.status */
    SC_SUBJECT,    /* the campaign's subject, else its template's ("" if none) */
    SC_BODY,       /* the template's content, else the campaign's ("" if none) */
    SC_TEXT,       /* the template's text part, NULL: derived from the HTML */
    SC_FROM_NAME,  /* "" when the campaign names none */
    SC_FROM_EMAIL, /* "" when the campaign names none */
    SC_POSTAL,     /* app_settings.postal_address ("" when not set) */
    SC_SMS_SENDER, /* campaigns.sms_sender ("" when not set) */
    SC_COUNT,
};

/* A campaign as the engine sends it; strings owned (sending__campaign_free). */
typedef struct sending_campaign {
    char *str[SC_COUNT];
} sending_campaign_t;

/* One worker's state for one job run. */
/* Where a worker's time goes (logged at info level after its run): in the
 * provider's conversations, waiting for the database (claim, first step and
 * end of a batch: db; the rest of the steps: db_overlapped), and the rest. */
typedef struct sending_clock {
    double provider, db;  /* seconds */
    double db_overlapped; /* waiting for a step sent before a group's hand-over */
    size_t handed;        /* messages handed to the provider */
} sending_clock_t;

typedef struct sending_run {
    const char *campaign_id;
    sending_campaign_t c;
    const char *from;
    const char *from_name;
    char base_url[512];
    unsigned char key[TRACK_KEY_LEN];
    provider_config_t set; /* the provider settings of this run */
    email_provider_t *provider;
    sms_provider_t *sms;
    char status[32];     /* the campaign's status after the last batch */
    const char *channel; /* "email" | "sms" */
    db_conn_t *eng;      /* claims and steps: the engine's own connection */
    sending_clock_t clock;
} sending_run_t;

/* The size of the groups when n messages go in groups of at most g, all of
 * about one size: 50 in groups of at most 16 are 13, 13, 13 and 11, not 16,
 * 16, 16 and 2. As many groups as groups of g would be; the last may be
 * smaller than the others, never larger. g when n or g is 0. */
size_t sending__balanced_group(size_t n, size_t g);

/* How many messages a worker claims at once: batch (SEND_BATCH_SIZE, at
 * least 1), but with a rate limit (per second, 0: none) never more than a
 * second's worth of it. A batch leaves as fast as the provider takes it and
 * the next one waits for the rate, so the claim is the largest burst the
 * provider sees: at most what the rate allows in a second. */
size_t sending__claim_size(long batch, long rate);

/* The tracking key derived from JWT_SECRET. */
void sending__tracking_key(const app_t *app, unsigned char key[TRACK_KEY_LEN]);
/* API_EXTERNAL_URL without trailing slashes ("" when unset). */
void sending__base_url(const app_t *app, char *out, size_t outlen);
/* Loads a campaign as service_role (P0002 when it does not exist). */
CD_MUSTCHECK db_status_t sending__campaign_load(db_conn_t *conn, const char *id,
                                                sending_campaign_t *c, db_error_t *err);
void sending__campaign_free(sending_campaign_t *c);
/* The sender address and display name of a campaign (see EMAIL_FROM); the
 * strings borrow from set and c. */
void sending__sender(const app_t *app, const provider_config_t *set, const sending_campaign_t *c,
                     const char **from, const char **name);

#endif
