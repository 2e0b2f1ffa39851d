/*
 * campaignd's settings. One table (config.c) declares every setting with its
 * type, default, limits and description; parsing, `campaignd --help`,
 * `campaignd config` and docs/configuration.md all come from it.
 */
#ifndef CD_CONFIG_H
#define CD_CONFIG_H

#include <stdio.h>

#include "core/common.h"

#define CONFIG_MAX_VALUE 4096

typedef struct config {
    /* server */
    long port;
    char *bind;
    char *api_external_url;
    char *site_url;
    char *cors_origins;
    long http_threads;
    long max_connections;
    long max_connections_per_ip;
    long max_body_bytes;
    long max_header_bytes;
    long max_header_count;
    long client_timeout;
    long shutdown_timeout;
    char *trusted_proxies;
    char *log_level;
    /* database */
    char *data_dir;
    char *database_url;
    long db_statement_timeout_ms;
    long db_max_rows;
    /* auth */
    char *jwt_secret;
    long jwt_exp;
    char *jwt_issuer;
    long refresh_token_reuse_interval;
    long password_min_length;
    long bcrypt_cost;
    bool disable_signup;
    char *mailer_autoconfirm; /* "", or a boolean: resolved by app_load_config */
    long mailer_otp_exp;
    long mailer_otp_max_attempts;
    char *additional_redirect_urls;
    /* MFA (issue 14) */
    bool mfa_required_for_admin;
    long mfa_max_verify_attempts;
    long mfa_lockout_seconds;
    char *default_user_role;
    long login_max_failures_per_email;
    long login_max_failures_per_email_global;
    long login_max_failures_per_ip;
    long login_window_seconds;
    long auth_rate_limit;
    char *admin_email;
    char *admin_password;
    /* mail */
    char *smtp_url;
    char *smtp_admin_email;
    char *smtp_sender_name;
    long smtp_max_frequency;
    long rate_limit_email_sent;
    /* secrets */
    char *encryption_key;
    /* realtime */
    char *realtime_tables;
    long realtime_max_channels;
    long realtime_max_message_bytes;
    long realtime_max_broadcast_bytes;
    long realtime_max_presence_bytes;
    long realtime_check_connections;
    long realtime_feed_window_ms;
    long realtime_max_presence_per_topic;
    long realtime_max_presence_per_conn;
    /* storage */
    long storage_max_file_bytes;
    /* jobs */
    long retention_interval;
    bool jobs_enabled;
    long job_workers;
    long job_lease_seconds;
    long job_poll_interval;
    long job_keep_days;
    /* durable mail (mailjobs) */
    long mail_max_attempts;
    long mail_retry_delay;
    /* web */
    char *web_dir;
    /* imports */
    long import_max_bytes;
    bool import_allow_private_networks;
    long import_max_rows_per_second;
    long import_fetch_timeout;
    long import_db_connect_timeout;
    long import_db_statement_timeout;
    long import_db_keep_seconds;
    char *google_sheets_base_url;
    /* OAuth providers (issue 14) */
    bool github_enabled;
    char *github_client_id;
    char *github_secret;
    char *github_url;
    bool google_enabled;
    char *google_client_id;
    char *google_secret;
    char *google_url;
    bool oidc_enabled;
    char *oidc_client_id;
    char *oidc_secret;
    char *oidc_authorize_url;
    char *oidc_token_url;
    char *oidc_userinfo_url;
    char *oidc_issuer;
    char *oidc_scopes;
    /* the send engine (issue 12) */
    char *email_provider;
    char *email_from;
    long email_rate_per_second;
    long sms_rate_per_second;
    long send_workers;
    long send_batch_size;
    long send_in_flight;
    long send_lease_seconds;
    long send_max_attempts;
    long send_retry_seconds;
    long send_scheduler_interval;
    long send_rollup_interval;
    /* providers (issue 12) */
    char *sendgrid_api_key;
    char *sendgrid_api_base;
    char *sendgrid_webhook_public_key;
    char *twilio_account_sid;
    char *twilio_auth_token;
    char *twilio_from;
    char *twilio_api_base;
    char *sms_help_text;
    long sms_price_retry_seconds; /* SMS_PRICE_RETRY_SECONDS */
    long webhook_rate_limit;      /* WEBHOOK_RATE_LIMIT */
} config_t;

typedef enum { CONFIG_STR, CONFIG_INT, CONFIG_BOOL } config_type_t;

typedef struct config_entry {
    const char *name; /* environment variable */
    config_type_t type;
    size_t offset;   /* into config_t */
    const char *def; /* default as text ("" = unset) */
    long min, max;   /* limits for CONFIG_INT */
    bool secret;     /* masked in `campaignd config`, never logged */
    const char *group;
    const char *help;
} config_entry_t;

/* The table itself, and its length. */
extern const config_entry_t config_table[];
extern const size_t config_table_len;

/* Fills cfg with defaults, then values from the .env file at env_path (if it
 * exists; NULL = "./.env"), then the process environment (which wins). On a bad
 * value writes a message naming the setting into err and returns false. The
 * strings in cfg are owned by cfg; free them with config_free (on failure
 * nothing is left to free). */
CD_MUSTCHECK bool config_load(config_t *cfg, const char *env_path, char *err, size_t errlen);
/* Sets one setting by name from text, validating it like config_load does. */
CD_MUSTCHECK bool config_set(config_t *cfg, const char *name, const char *value, char *err,
                             size_t errlen);
/* Finds a table entry by environment name, or NULL. */
const config_entry_t *config_find(const char *name);
/* Formats the current value of an entry into out (secrets masked if mask). */
void config_format_value(const config_t *cfg, const config_entry_t *e, bool mask, char *out,
                         size_t outlen);
void config_free(config_t *cfg);
/* Prints the settings table: as text for --help, or as the Markdown of docs/configuration.md. */
void config_print_help(FILE *f, bool markdown);

/* How long an OAuth sign-in may take from /authorize to /callback, and how
 * long an issued PKCE auth code waits for its exchange (seconds). */
#define AUTH_OAUTH_STATE_TTL 600
#define AUTH_OAUTH_CODE_TTL  300
/* The longest a PKCE flow row (auth.flow_state) can still be completed: its
 * callback or mailed link (MAILER_OTP_EXP), then the code's exchange. The
 * retention job purges older rows (auth.purge_flow_states, migration 040). */
static inline long config_flow_lifetime_seconds(const config_t *cfg)
{
    long wait =
        cfg->mailer_otp_exp > AUTH_OAUTH_STATE_TTL ? cfg->mailer_otp_exp : AUTH_OAUTH_STATE_TTL;
    return wait + AUTH_OAUTH_CODE_TTL;
}

#endif
