/*
 * campaignd's entry point: the command line. `serve` (the default) runs the
 * server; the other commands manage the same data directory and database,
 * whether or not a server is running on it.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "api/webhooks.h"
#include "app.h"
#include "auth/auth.h"
#include "core/log.h"
#include "db/db.h"
#include "db/migrate.h"
#include "http/http.h"
#include "jobs/jobs.h"
#include "jobs/mail.h"
#include "importer/importer.h"
#include "jobs/queue.h"
#include "realtime/realtime.h"
#include "rest/rest.h"
#include "sending/sending.h"
#include "server_routes.h"
#include "storage/storage.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "campaignd %s: a Supabase-compatible back end for marketing dashboards\n"
        "\n"
        "Usage: campaignd [command] [options]\n"
        "\n"
        "Commands:\n"
        "  serve                      Run the server (the default). Starts the embedded\n"
        "                             PostgreSQL unless DATABASE_URL is set, applies\n"
        "                             migrations, serves http://BIND:PORT.\n"
        "  migrate [--status]         Apply pending migrations (or list their state).\n"
        "  user add --email E --password P [--role admin|user|viewer]\n"
        "                             Create a user (role defaults to user). Use\n"
        "                             --password-stdin to read the password from stdin.\n"
        "  user set-role --email E --role admin|user|viewer\n"
        "                             Change a user's role (takes effect at their next token).\n"
        "  user list                  List users with their roles.\n"
        "  keys                       Print ANON_KEY and SERVICE_ROLE_KEY for clients.\n"
        "  db-url                     Print a connection string psql can use as the\n"
        "                             database owner.\n"
        "  config [--markdown]        Print the settings in effect (secrets masked), or the\n"
        "                             settings reference as Markdown.\n"
        "  help, --help               This text.  version, --version: the version.\n"
        "\n",
        CAMPAIGND_VERSION);
    config_print_help(f, false);
    fprintf(f, "\nDocumentation: README.md and docs/ in the source tree.\n");
}

/* ------------------------------------------------------------------ serve */

static int cmd_serve(app_t *app)
{
    jobs_t *jobs = NULL;
    int rc = 1;
    /* Handle SIGINT/SIGTERM from the start, so that a signal during start-up
     * still stops the embedded PostgreSQL in order. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (!app_load_secrets(app) || !app_open_database(app, true)) {
        app_close(app);
        return 1;
    }
    /* serve owns the embedded cluster even if a CLI command started it. */
    if (app->embedded) {
        app->pg.owned = true;
        if (!pgembed_supervise(&app->pg))
            goto fail;
    }
    db_configure(app->worker_conninfo, app->cfg.db_statement_timeout_ms, app->encryption_key);
    if (!storage_init(app))
        goto fail;
    if (!rest_schema_start(app))
        goto fail;
    if (!auth_bootstrap_admin(app))
        goto fail;
    if (!auth_mfa_apply_setting(app))
        goto fail;
    app->limiter = auth_limiter_new(4096);
    app->webhook_limiter = auth_limiter_new(4096);
    /* libcurl's global state, before any thread uses it (the mail job) */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        goto fail;
    if (!app->cfg.smtp_url[0])
        log_warn("SMTP_URL is not set: no mail is sent%s",
                 app->mailer_autoconfirm ? "; sign-ups are confirmed at once (MAILER_AUTOCONFIRM)"
                                         : ", and sign-ups cannot be confirmed");

    http_server_opts_t opts = {
        .bind = app->cfg.bind,
        .port = (int)app->cfg.port,
        .threads = (int)app->cfg.http_threads,
        .max_connections = (int)app->cfg.max_connections,
        .max_connections_per_ip = (int)app->cfg.max_connections_per_ip,
        .max_body_bytes = (size_t)app->cfg.max_body_bytes,
        .max_header_bytes = (size_t)app->cfg.max_header_bytes,
        .max_header_count = (size_t)app->cfg.max_header_count,
        .client_timeout = (int)app->cfg.client_timeout,
        .cors_origins = app->cfg.cors_origins,
        .trusted_proxies = app->cfg.trusted_proxies,
    };
    if (!realtime_start(app))
        goto fail;
    size_t nroutes = 0;
    const http_route_t *routes = server_routes(&nroutes);
    size_t nstream = 0;
    const http_stream_route_t *stream_routes = server_stream_routes(&nstream);
    if (!jobs_retention_register(app) || !importer_register_jobs() || !mail_register_jobs() ||
        !api_report_schedules_register() || !sending_register_jobs(app) ||
        !webhooks_register_jobs() || !jobs_start(app, &jobs))
        goto fail;
    app->http = http_server_start(&opts, routes, nroutes, stream_routes, nstream, app);
    if (!app->http)
        goto fail;
    log_info("campaignd %s listening on http://%s:%d (data dir %s, %s database)", CAMPAIGND_VERSION,
             app->cfg.bind, http_server_port(app->http), app->cfg.data_dir,
             app->embedded ? "embedded" : "external");
    /* The keys are never written to the log (logs are collected and kept where
     * a service key must not be); the operator asks for them. */
    if (app->generated_jwt_secret)
        log_info("first start: new API keys were made; `campaignd keys` prints ANON_KEY and "
                 "SERVICE_ROLE_KEY (keep the service key secret)");
    else
        log_info("API keys for clients: run `campaignd keys`");
    while (!stop_requested)
        pause();
    log_info("shutting down: finishing requests in flight");
    rc = 0;
fail: /* and the normal way out: one stop sequence for both */
    /* Upgraded (WebSocket) sockets must be closed before MHD can stop. */
    realtime_stop();
    if (app->http) {
        http_server_stop(app->http, (int)app->cfg.shutdown_timeout);
        app->http = NULL;
    }
    jobs_stop(jobs);
    /* no job thread uses them any more: the servers see the sessions end */
    int kept = importer_close_kept();
    if (kept > 0)
        log_info("closed %d kept connection(s) (source sessions, import data)", kept);
    rest_schema_stop();
    curl_global_cleanup();
    auth_limiter_free(app->limiter);
    auth_limiter_free(app->webhook_limiter);
    app_close(app);
    return rc;
}

/* ------------------------------------------------------------- commands */

static int cmd_migrate(app_t *app, int argc, char **argv)
{
    bool status = argc > 0 && strcmp(argv[0], "--status") == 0;
    if (!app_load_secrets(app) || !app_open_database(app, !status)) {
        app_close(app);
        return 1;
    }
    int rc = 0;
    if (status) {
        PGconn *c = app_owner_connect(app);
        rc = c && migrate_status(c, migrations_embedded, migrations_embedded_count) ? 0 : 1;
        PQfinish(c);
    } else {
        printf("database is up to date (%zu migrations)\n", migrations_embedded_count);
    }
    app_close(app);
    return rc;
}

static int cmd_keys(app_t *app)
{
    if (!app_load_secrets(app))
        return 1;
    printf("ANON_KEY=%s\nSERVICE_ROLE_KEY=%s\n", app->anon_key, app->service_key);
    return 0;
}

static int cmd_db_url(app_t *app)
{
    if (*app->cfg.database_url) {
        printf("%s\n", app->cfg.database_url);
        return 0;
    }
    /* Starts (or adopts) the embedded cluster so the URL works right away; a
     * cluster this command starts keeps running for psql, like `pg_ctl start`. */
    if (!app_open_database(app, false))
        return 1;
    char url[4096];
    pgembed_url(&app->pg, url, sizeof(url));
    printf("%s\n", url);
    return 0;
}

static int cmd_config(app_t *app, int argc, char **argv)
{
    if (argc > 0 && strcmp(argv[0], "--markdown") == 0) {
        config_print_help(stdout, true);
        return 0;
    }
    for (size_t i = 0; i < config_table_len; i++) {
        char v[CONFIG_MAX_VALUE + 64];
        config_format_value(&app->cfg, &config_table[i], true, v, sizeof(v));
        printf("%s=%s\n", config_table[i].name, v);
    }
    return 0;
}

static const char *arg_value(int argc, char **argv, const char *name)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

static bool arg_flag(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return true;
    return false;
}

static int cmd_user(app_t *app, int argc, char **argv)
{
    if (argc < 1) {
        fprintf(stderr, "campaignd user: say add, set-role or list (see campaignd --help)\n");
        return 2;
    }
    const char *sub = argv[0];
    const char *email = arg_value(argc, argv, "--email");
    const char *role = arg_value(argc, argv, "--role");
    const char *password = arg_value(argc, argv, "--password");
    char pwbuf[256];
    if (strcmp(sub, "add") == 0 && !password && arg_flag(argc, argv, "--password-stdin")) {
        if (!fgets(pwbuf, sizeof(pwbuf), stdin)) {
            fprintf(stderr, "campaignd user add: no password on stdin\n");
            return 2;
        }
        pwbuf[strcspn(pwbuf, "\r\n")] = '\0';
        password = pwbuf;
    }
    if ((strcmp(sub, "add") == 0 && (!email || !password)) ||
        (strcmp(sub, "set-role") == 0 && (!email || !role))) {
        fprintf(stderr, "campaignd user %s: missing --email%s (see campaignd --help)\n", sub,
                strcmp(sub, "add") == 0 ? " or --password" : " or --role");
        return 2;
    }
    if (strcmp(sub, "add") && strcmp(sub, "set-role") && strcmp(sub, "list")) {
        fprintf(stderr, "campaignd user: unknown subcommand '%s' (add, set-role, list)\n", sub);
        return 2;
    }
    if (!app_load_secrets(app) || !app_open_database(app, true)) {
        app_close(app);
        return 1;
    }
    PGconn *c = app_owner_connect(app);
    int rc = 1;
    if (c) {
        char msg[512];
        bool ok;
        if (strcmp(sub, "add") == 0)
            ok = auth_cli_add_user(app, c, email, password, role ? role : "user", msg, sizeof(msg));
        else if (strcmp(sub, "set-role") == 0)
            ok = auth_cli_set_role(c, email, role, msg, sizeof(msg));
        else
            ok = auth_cli_list_users(c, msg, sizeof(msg));
        if (ok) {
            if (*msg)
                printf("%s\n", msg);
            rc = 0;
        } else {
            fprintf(stderr, "campaignd user %s: %s\n", sub, msg);
        }
        PQfinish(c);
    }
    app_close(app);
    return rc;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("campaignd %s\n", CAMPAIGND_VERSION);
        return 0;
    }
    app_t *app = calloc(1, sizeof(*app));
    if (!app)
        return 1;
    char err[1024];
    if (!app_load_config(app, err, sizeof(err))) {
        fprintf(stderr, "campaignd: configuration error: %s\n", err);
        free(app);
        return 2;
    }
    log_level_t lvl;
    if (log_parse_level(app->cfg.log_level, &lvl))
        log_set_level(lvl);
    int sub_argc = argc > 2 ? argc - 2 : 0;
    char **sub_argv = argv + 2;
    int rc;
    if (strcmp(cmd, "serve") == 0)
        rc = cmd_serve(app);
    else if (strcmp(cmd, "migrate") == 0)
        rc = cmd_migrate(app, sub_argc, sub_argv);
    else if (strcmp(cmd, "keys") == 0)
        rc = cmd_keys(app);
    else if (strcmp(cmd, "db-url") == 0)
        rc = cmd_db_url(app);
    else if (strcmp(cmd, "config") == 0)
        rc = cmd_config(app, sub_argc, sub_argv);
    else if (strcmp(cmd, "user") == 0)
        rc = cmd_user(app, sub_argc, sub_argv);
    else {
        fprintf(stderr, "campaignd: unknown command '%s'; see campaignd --help\n", cmd);
        rc = 2;
    }
    config_free(&app->cfg); /* idempotent: app_close may have freed it already */
    free(app);
    return rc;
}
