/*
 * The driver-independent half of the database connectors (dbconn.h): the
 * config, query building and quoting per dialect, type mapping, the host's
 * SSRF check, the credentials, and the CSV stream the file reader reads.
 */
#define _GNU_SOURCE /* fopencookie */
#include "importer/dbconn.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

#define DB_SQL_MAX (1024 * 1024)
#define DB_CSV_MAX (64 * 1024 * 1024)

static const db_caller_t SERVICE = {
    .role = "service_role",
    .claims_json = "{\"role\":\"service_role\"}",
    .method = "JOB",
    .path = "import.db",
    .headers_json = "{}",
    .with_secrets = true, /* get_data_source_credentials() decrypts */
};

bool import__is_database(const char *type)
{
    static const char *const types[] = {"postgres", "redshift", "mysql", "mssql",
                                        "custom_database"};
    for (size_t i = 0; type && i < CD_ARRAY_LEN(types); i++)
        if (strcmp(type, types[i]) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------ quoting */

bool imp_db_quote_ident(imp_db_dialect_t d, const char *name, cd_buf_t *out, char *err,
                        size_t errlen)
{
    size_t n = name ? strlen(name) : 0;
    size_t max = d == IMP_DB_MSSQL ? 128 : d == IMP_DB_MYSQL ? 64 : 63;
    bool ok = n > 0 && n <= max;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)name[i] >= 0x20 && name[i] != 0x7f;
    if (!ok) {
        snprintf(err, errlen,
                 "\"%.64s\" is not a valid identifier (1 to %zu characters, no control "
                 "characters)",
                 name ? name : "", max);
        return false;
    }
    char open = d == IMP_DB_MYSQL ? '`' : d == IMP_DB_MSSQL ? '[' : '"';
    char close = d == IMP_DB_MYSQL ? '`' : d == IMP_DB_MSSQL ? ']' : '"';
    ok = cd_buf_add(out, &open, 1);
    for (size_t i = 0; ok && i < n; i++) {
        ok = cd_buf_add(out, name + i, 1);
        if (ok && name[i] == close)
            ok = cd_buf_add(out, &close, 1);
    }
    ok = ok && cd_buf_add(out, &close, 1);
    if (!ok)
        snprintf(err, errlen, "the query is too long");
    return ok;
}

bool imp_db_quote_literal(imp_db_dialect_t d, const char *s, cd_buf_t *out)
{
    bool ok = cd_buf_add(out, "'", 1);
    for (const char *p = s; ok && *p; p++) {
        if (*p == '\'' || (d == IMP_DB_MYSQL && *p == '\\'))
            ok = cd_buf_add(out, p, 1);
        ok = ok && cd_buf_add(out, p, 1);
    }
    return ok && cd_buf_add(out, "'", 1);
}

/* The query of config.query without a trailing ';' and blanks; NULL when
 * empty or when a ';' is left inside (one statement only). */
static char *one_statement(const char *q)
{
    size_t n = strlen(q);
    while (n && (q[n - 1] == ';' || q[n - 1] == ' ' || q[n - 1] == '\n' || q[n - 1] == '\r' ||
                 q[n - 1] == '\t'))
        n--;
    if (n == 0 || memchr(q, ';', n))
        return NULL;
    return strndup(q, n);
}

static bool add_columns(const imp_db_select_t *sel, cd_buf_t *out, char *err, size_t errlen)
{
    if (!json_is_array(sel->columns) || json_array_size(sel->columns) == 0)
        return cd_buf_adds(out, "*");
    size_t i;
    json_t *v;
    json_array_foreach(sel->columns, i, v)
    {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "config.columns must be an array of column names");
            return false;
        }
        if ((i && !cd_buf_adds(out, ", ")) ||
            !imp_db_quote_ident(sel->dialect, json_string_value(v), out, err, errlen))
            return false;
    }
    return true;
}

static bool add_where_order(const imp_db_select_t *sel, const char *prefix, cd_buf_t *out,
                            char *err, size_t errlen)
{
    if (!sel->inc_column)
        return true;
    cd_buf_t col;
    cd_buf_init(&col, 1024);
    bool ok = cd_buf_adds(&col, prefix) &&
              imp_db_quote_ident(sel->dialect, sel->inc_column, &col, err, errlen);
    if (ok && sel->last_value) {
        char lit[256];
        const char *v = sel->last_value;
        if (sel->dialect == IMP_DB_MYSQL && strlen(v) < sizeof(lit)) {
            imp_db_mysql_last_value(v, lit, sizeof(lit));
            v = lit;
        }
        ok = cd_buf_printf(out, " where %s >= ", cd_buf_str(&col)) &&
             imp_db_quote_literal(sel->dialect, v, out);
    }
    ok = ok && cd_buf_printf(out, " order by %s", cd_buf_str(&col));
    cd_buf_free(&col);
    return ok;
}

bool imp_db_build_select(const imp_db_select_t *sel, cd_buf_t *out, char *err, size_t errlen)
{
    err[0] = '\0';
    bool ok = cd_buf_adds(out, "select ");
    if (ok && sel->dialect == IMP_DB_MSSQL && sel->limit > 0)
        ok = cd_buf_printf(out, "top (%ld) ", sel->limit);
    if (sel->query && *sel->query) {
        char *q = one_statement(sel->query);
        if (!q) {
            snprintf(err, errlen, "config.query must be one SELECT statement (no ';' inside)");
            return false;
        }
        ok = ok && cd_buf_printf(out, "* from (%s) as q", q);
        free(q);
        ok = ok && add_where_order(sel, "q.", out, err, errlen);
    } else if (sel->table && *sel->table) {
        ok = ok && add_columns(sel, out, err, errlen) && cd_buf_adds(out, " from ");
        if (ok && sel->schema && *sel->schema)
            ok = imp_db_quote_ident(sel->dialect, sel->schema, out, err, errlen) &&
                 cd_buf_adds(out, ".");
        ok = ok && imp_db_quote_ident(sel->dialect, sel->table, out, err, errlen) &&
             add_where_order(sel, "", out, err, errlen);
    } else {
        snprintf(err, errlen, "config needs a table (\"schema\", \"table\") or a \"query\"");
        return false;
    }
    if (ok && sel->dialect != IMP_DB_MSSQL && sel->limit > 0)
        ok = cd_buf_printf(out, " limit %ld", sel->limit);
    if (!ok && !err[0])
        snprintf(err, errlen, "the query is too long");
    return ok;
}

/* ------------------------------------------------------------ types */

imp_type_t imp_db_pg_type(unsigned int oid)
{
    switch (oid) {
    case 16: /* bool */
        return IMP_TYPE_BOOLEAN;
    case 21: /* int2 */
    case 23: /* int4 */
        return IMP_TYPE_INTEGER;
    case 20:   /* int8: past INTEGER's range */
    case 700:  /* float4 */
    case 701:  /* float8 */
    case 1700: /* numeric */
        return IMP_TYPE_NUMBER;
    case 1082: /* date */
        return IMP_TYPE_DATE;
    case 1114: /* timestamp */
    case 1184: /* timestamptz */
        return IMP_TYPE_TIMESTAMP;
    default: /* text, varchar, json, jsonb, uuid, money, … */
        return IMP_TYPE_TEXT;
    }
}

/* enum_field_types of mysql_com.h (stable protocol values). */
enum {
    MY_DECIMAL = 0,
    MY_TINY = 1,
    MY_SHORT = 2,
    MY_LONG = 3,
    MY_FLOAT = 4,
    MY_DOUBLE = 5,
    MY_TIMESTAMP = 7,
    MY_LONGLONG = 8,
    MY_INT24 = 9,
    MY_DATE = 10,
    MY_DATETIME = 12,
    MY_YEAR = 13,
    MY_NEWDATE = 14,
    MY_BIT = 16,
    MY_NEWDECIMAL = 246,
    MY_UNSIGNED_FLAG = 32,
};

imp_type_t imp_db_mysql_type(int type, unsigned long length, unsigned int flags)
{
    switch (type) {
    case MY_TINY:
        return length == 1 ? IMP_TYPE_BOOLEAN : IMP_TYPE_INTEGER; /* BOOLEAN is TINYINT(1) */
    case MY_BIT:
        return length == 1 ? IMP_TYPE_BOOLEAN : IMP_TYPE_TEXT;
    case MY_SHORT:
    case MY_INT24:
    case MY_YEAR:
        return IMP_TYPE_INTEGER;
    case MY_LONG:
        return flags & MY_UNSIGNED_FLAG ? IMP_TYPE_NUMBER : IMP_TYPE_INTEGER;
    case MY_LONGLONG:
    case MY_DECIMAL:
    case MY_NEWDECIMAL:
    case MY_FLOAT:
    case MY_DOUBLE:
        return IMP_TYPE_NUMBER;
    case MY_DATE:
    case MY_NEWDATE:
        return IMP_TYPE_DATE;
    case MY_TIMESTAMP:
    case MY_DATETIME:
        return IMP_TYPE_TIMESTAMP;
    default:
        return IMP_TYPE_TEXT;
    }
}

/* TDS type tokens (sybdb.h's SYB* values). */
enum {
    TDS_BIT = 50,
    TDS_INT1 = 48,
    TDS_INT2 = 52,
    TDS_INT4 = 56,
    TDS_INT8 = 127,
    TDS_FLT4 = 59,
    TDS_FLT8 = 62,
    TDS_MONEY = 60,
    TDS_MONEY4 = 122,
    TDS_DECIMAL = 106,
    TDS_NUMERIC = 108,
    TDS_DATETIME = 61,
    TDS_DATETIME4 = 58,
    TDS_MSDATE = 40,
    TDS_MSDATETIME2 = 42,
    TDS_MSDATETIMEOFFSET = 43,
};

imp_type_t imp_db_mssql_type(int type)
{
    switch (type) {
    case TDS_BIT:
        return IMP_TYPE_BOOLEAN;
    case TDS_INT1:
    case TDS_INT2:
    case TDS_INT4:
        return IMP_TYPE_INTEGER;
    case TDS_INT8:
    case TDS_FLT4:
    case TDS_FLT8:
    case TDS_MONEY:
    case TDS_MONEY4:
    case TDS_DECIMAL:
    case TDS_NUMERIC:
        return IMP_TYPE_NUMBER;
    case TDS_MSDATE:
        return IMP_TYPE_DATE;
    case TDS_DATETIME:
    case TDS_DATETIME4:
    case TDS_MSDATETIME2:
    case TDS_MSDATETIMEOFFSET:
        return IMP_TYPE_TIMESTAMP;
    default:
        return IMP_TYPE_TEXT;
    }
}

void imp_db_mysql_last_value(const char *v, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s", v);
    size_t n = strlen(out);
    /* "YYYY-MM-DD HH:MM:SS[.ffffff]+00" */
    if (n >= 22 && strcmp(out + n - 3, "+00") == 0 && out[4] == '-' && out[10] == ' ' &&
        out[13] == ':')
        out[n - 3] = '\0';
}

bool imp_db_csv_field(cd_buf_t *out, const char *v, size_t len, bool last)
{
    bool ok = cd_buf_add(out, "\"", 1);
    const char *p = v, *end = v + len;
    while (ok && p < end) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        size_t seg = q ? (size_t)(q - p) + 1 : (size_t)(end - p);
        ok = cd_buf_add(out, p, seg) && (!q || cd_buf_add(out, "\"", 1));
        p += seg;
    }
    return ok && cd_buf_adds(out, last ? "\"\r\n" : "\",");
}

/* ------------------------------------------------------------ errors, state */

void import__db_fail(import_db_t *db, bool retryable, const char *fmt, ...)
{
    if (db->failed)
        return;
    db->failed = true;
    db->retryable = retryable;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(db->err, sizeof(db->err), fmt, ap);
    va_end(ap);
}

bool import__db_set_columns(import_db_t *db, size_t n)
{
    free(db->types);
    db->types = calloc(n ? n : 1, sizeof(*db->types));
    db->ncols = db->types ? n : 0;
    if (!db->types)
        import__db_fail(db, false, "out of memory");
    return db->types != NULL;
}

const char *import__db_inc_column(const import_source_t *src)
{
    const char *c =
        src->schedule_config
            ? json_string_value(json_object_get(src->schedule_config, "incremental_column"))
            : NULL;
    return c && *c ? c : NULL;
}

void import__db_close(import_db_t *db)
{
    if (!db)
        return;
    if (db->close)
        db->close(db);
    cd_buf_free(&db->out);
    free(db->types);
    free(db->inc_column);
    free(db->max_value);
    explicit_bzero(db->target.password, sizeof(db->target.password));
    free(db);
}

/* ------------------------------------------------------------ the stream */

static ssize_t cookie_read(void *cookie, char *buf, size_t size)
{
    import_db_t *db = cookie;
    while (db->out_pos == db->out.len && !db->eof) {
        cd_buf_reset(&db->out);
        db->out_pos = 0;
        if (db->failed || !db->more(db, &db->eof)) {
            if (!db->failed)
                import__db_fail(db, true, "the source database stopped answering");
            return -1;
        }
    }
    size_t n = db->out.len - db->out_pos;
    if (n > size)
        n = size;
    memcpy(buf, db->out.data + db->out_pos, n);
    db->out_pos += n;
    return (ssize_t)n;
}

static int cookie_close(void *cookie)
{
    (void)cookie; /* the db is closed by import__db_close */
    return 0;
}

imp_reader_t *import__db_reader(import_db_t *db, imp_error_t *err)
{
    cookie_io_functions_t io = {.read = cookie_read, .close = cookie_close};
    FILE *f = fopencookie(db, "r", io);
    if (!f) {
        snprintf(err->message, sizeof(err->message), "out of memory");
        return NULL;
    }
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    o.encoding = IMP_ENC_UTF8;
    o.delimiter = ',';
    imp_reader_t *r = imp_reader_open_stream(f, &o, err);
    if (!r)
        return NULL;
    db->inc_index = -1;
    size_t n = 0;
    const imp_cell_t *h = imp_reader_header(r, &n);
    for (size_t i = 0; db->inc_column && i < n; i++)
        if (strcmp(h[i].data, db->inc_column) == 0)
            db->inc_index = (long)i;
    if (db->inc_column && db->inc_index < 0) {
        snprintf(err->message, sizeof(err->message),
                 "schedule_config.incremental_column \"%.60s\" is not a column of the result",
                 db->inc_column);
        imp_reader_close(r);
        return NULL;
    }
    return r;
}

void import__db_note_row(import_db_t *db, const imp_row_t *row)
{
    if (db->inc_index < 0 || (size_t)db->inc_index >= row->ncells)
        return;
    const imp_cell_t *c = &row->cells[db->inc_index];
    if (c->len == 0)
        return;
    if (db->max_value && strlen(db->max_value) >= c->len) {
        memcpy(db->max_value, c->data, c->len);
        db->max_value[c->len] = '\0';
        return;
    }
    char *v = strndup(c->data, c->len);
    if (v) {
        free(db->max_value);
        db->max_value = v;
    }
}

void import__db_type_proposal(const import_db_t *db, json_t *proposed)
{
    json_t *cols = json_object_get(proposed, "columns");
    size_t i;
    json_t *c;
    json_array_foreach(cols, i, c)
    {
        if (i < db->ncols)
            json_object_set_new(c, "type", json_string(imp_type_name(db->types[i])));
    }
}

/* ------------------------------------------------------------ opening */

static const char *cfg_str(const json_t *o, const char *key)
{
    const char *s = o ? json_string_value(json_object_get(o, key)) : NULL;
    return s && *s ? s : NULL;
}

static bool copy_str(char *dst, size_t n, const char *v, const char *what, char *err, size_t errlen)
{
    if (v && strlen(v) >= n) {
        snprintf(err, errlen, "%s is too long", what);
        return false;
    }
    snprintf(dst, n, "%s", v ? v : "");
    return true;
}

/* A port number's text; 0 (refused later) when it is not one. */
static int port_of(const char *s)
{
    char *end = NULL;
    long v = s ? strtol(s, &end, 10) : 0;
    return s && end != s && *end == '\0' && v > 0 && v <= 65535 ? (int)v : 0;
}

/* config.url / credentials.url of custom_database (postgres://, mysql://):
 * parsed with libcurl's URL parser. */
static bool parse_url(const char *url, import_db_t *db, char *err, size_t errlen)
{
    CURLU *u = curl_url();
    bool ok = false;
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *pw = NULL, *path = NULL,
         *query = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        snprintf(err, errlen,
                 "the connection URL is not valid (postgres://user@host:5432/db or "
                 "mysql://user@host:3306/db)");
        goto done;
    }
    if (strcasecmp(scheme, "postgres") == 0 || strcasecmp(scheme, "postgresql") == 0)
        db->dialect = IMP_DB_POSTGRES;
    else if (strcasecmp(scheme, "mysql") == 0 || strcasecmp(scheme, "mariadb") == 0)
        db->dialect = IMP_DB_MYSQL;
    else {
        snprintf(err, errlen, "the connection URL must start with postgres:// or mysql://");
        goto done;
    }
    (void)curl_url_get(u, CURLUPART_PORT, &port, 0);
    (void)curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE);
    (void)curl_url_get(u, CURLUPART_PASSWORD, &pw, CURLU_URLDECODE);
    (void)curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE);
    (void)curl_url_get(u, CURLUPART_QUERY, &query, 0);
    const char *h = host;
    char hb[256];
    if (h[0] == '[') { /* IPv6 literal */
        snprintf(hb, sizeof(hb), "%.*s", (int)strlen(h) - 2, h + 1);
        h = hb;
    }
    ok = copy_str(db->target.host, sizeof(db->target.host), h, "the host", err, errlen) &&
         copy_str(db->target.database, sizeof(db->target.database),
                  path && path[0] == '/' ? path + 1 : path, "the database name", err, errlen);
    if (ok && user)
        ok = copy_str(db->target.user, sizeof(db->target.user), user, "the user", err, errlen);
    if (ok && pw)
        ok = copy_str(db->target.password, sizeof(db->target.password), pw, "the password", err,
                      errlen);
    if (port)
        db->target.port = port_of(port);
    if (ok && query) {
        const char *s = strstr(query, "sslmode=");
        if (s)
            snprintf(db->target.sslmode, sizeof(db->target.sslmode), "%.*s",
                     (int)strcspn(s + 8, "&"), s + 8);
    }
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    if (pw) {
        explicit_bzero(pw, strlen(pw));
        curl_free(pw);
    }
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(u);
    return ok;
}

/* Reads the target from config and the decrypted credentials. */
static bool read_target(const import_source_t *src, const json_t *cred, import_db_t *db, char *err,
                        size_t errlen)
{
    const json_t *cfg = src->config;
    const char *t = src->type;
    db->dialect = strcmp(t, "mysql") == 0   ? IMP_DB_MYSQL
                  : strcmp(t, "mssql") == 0 ? IMP_DB_MSSQL
                                            : IMP_DB_POSTGRES;
    db->redshift = strcmp(t, "redshift") == 0;
    if (strcmp(t, "custom_database") == 0) {
        const char *url = cfg_str(cred, "url");
        if (!url)
            url = cfg_str(cred, "connection_string");
        if (!url)
            url = cfg_str(cfg, "url");
        if (!url) {
            snprintf(err, errlen,
                     "a custom_database source needs config.url (or the credential "
                     "\"url\"): postgres://… or mysql://…");
            return false;
        }
        if (!parse_url(url, db, err, errlen))
            return false;
    } else {
        json_t *port = cfg ? json_object_get(cfg, "port") : NULL;
        json_int_t pv = json_is_integer(port)  ? json_integer_value(port)
                        : json_is_string(port) ? port_of(json_string_value(port))
                                               : 0;
        if (port && !json_is_null(port) && (pv < 1 || pv > 65535)) {
            snprintf(err, errlen, "config.port must be a number between 1 and 65535");
            return false;
        }
        db->target.port = (int)pv;
        if (!copy_str(db->target.host, sizeof(db->target.host), cfg_str(cfg, "host"), "config.host",
                      err, errlen) ||
            !copy_str(db->target.database, sizeof(db->target.database), cfg_str(cfg, "database"),
                      "config.database", err, errlen) ||
            !copy_str(db->target.sslmode, sizeof(db->target.sslmode), cfg_str(cfg, "sslmode"),
                      "config.sslmode", err, errlen))
            return false;
    }
    const char *user = cfg_str(cred, "user") ? cfg_str(cred, "user") : cfg_str(cred, "username");
    if (!user && !db->target.user[0])
        user = cfg_str(cfg, "user");
    const char *pw = cfg_str(cred, "password");
    if ((user &&
         !copy_str(db->target.user, sizeof(db->target.user), user, "the user", err, errlen)) ||
        (pw && !copy_str(db->target.password, sizeof(db->target.password), pw, "the password", err,
                         errlen)))
        return false;
    if (!db->target.port)
        db->target.port = db->dialect == IMP_DB_MYSQL   ? 3306
                          : db->dialect == IMP_DB_MSSQL ? 1433
                          : db->redshift                ? 5439
                                                        : 5432;
    if (db->target.port < 1 || db->target.port > 65535) {
        snprintf(err, errlen, "the port must be between 1 and 65535");
        return false;
    }
    if (!db->target.host[0] || db->target.host[0] == '/' || strpbrk(db->target.host, ", \t")) {
        snprintf(err, errlen, "config.host must be one host name or IP address");
        return false;
    }
    return true;
}

/* Resolves the host and keeps its first address, refusing private and
 * local ones (as URL sources do) unless IMPORT_ALLOW_PRIVATE_NETWORKS. The
 * drivers connect to that address, so a DNS answer that changes later
 * cannot lead elsewhere. */
static bool check_host(const app_t *app, import_db_t *db, char *err, size_t errlen, bool *retryable)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(db->target.host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "the database host \"%.100s\" cannot be resolved", db->target.host);
        *retryable = rc == EAI_AGAIN;
        return false;
    }
    bool ok = true;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        char ip[INET6_ADDRSTRLEN] = "?";
        const void *raw =
            a->ai_family == AF_INET
                ? (const void *)&((struct sockaddr_in *)(void *)a->ai_addr)->sin_addr
                : (const void *)&((struct sockaddr_in6 *)(void *)a->ai_addr)->sin6_addr;
        if (!inet_ntop(a->ai_family, raw, ip, sizeof(ip)))
            continue;
        if (!app->cfg.import_allow_private_networks && !import__address_public(a->ai_addr)) {
            snprintf(err, errlen,
                     "the database host leads to a private or local network address (%s); only an "
                     "administrator can allow private networks (IMPORT_ALLOW_PRIVATE_NETWORKS)",
                     ip);
            ok = false;
            break;
        }
        if (!db->target.address[0])
            snprintf(db->target.address, sizeof(db->target.address), "%s", ip);
    }
    freeaddrinfo(res);
    return ok && db->target.address[0];
}

static json_t *read_credentials(db_conn_t *c, const char *id, char *err, size_t errlen,
                                bool *retryable)
{
    const char *p[1] = {id};
    PGresult *res = NULL;
    db_error_t e;
    db_status_t st =
        db_run1(c, &SERVICE, "select public.get_data_source_credentials($1)::text", 1, p, &res, &e);
    json_t *cred = NULL;
    if (st != DB_OK) {
        snprintf(err, errlen, "the credentials cannot be read: %s",
                 st == DB_UNAVAILABLE ? "the database is unavailable" : e.message);
        *retryable = st == DB_UNAVAILABLE;
    } else if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
        char *txt = PQgetvalue(res, 0, 0);
        cred = json_loads(txt, 0, NULL);
        explicit_bzero(txt, strlen(txt));
        if (!json_is_object(cred)) {
            json_decref(cred);
            cred = NULL;
            snprintf(err, errlen, "the stored credentials are not an object");
        }
    } else {
        cred = json_object();
    }
    PQclear(res);
    return cred;
}

static bool build_sql(const import_source_t *src, import_db_t *db, const char *last_value,
                      bool head_only, cd_buf_t *sql, char *err, size_t errlen)
{
    const json_t *cfg = src->config;
    imp_db_select_t sel = {
        .dialect = db->dialect,
        .schema = cfg_str(cfg, "schema"),
        .table = cfg_str(cfg, "table"),
        .columns = cfg ? json_object_get(cfg, "columns") : NULL,
        .query = cfg_str(cfg, "query"),
        .inc_column = import__db_inc_column(src),
        .last_value = head_only ? NULL : last_value,
        .limit = head_only ? IMPORT_DB_PREVIEW_ROWS : 0,
    };
    if (sel.inc_column && !(db->inc_column = strdup(sel.inc_column))) {
        snprintf(err, errlen, "out of memory");
        return false;
    }
    return imp_db_build_select(&sel, sql, err, errlen);
}

import_db_t *import__db_open(const app_t *app, db_conn_t *c, const import_source_t *src,
                             const char *last_value, bool head_only, char *err, size_t errlen,
                             bool *retryable)
{
    *retryable = false;
    err[0] = '\0';
    import_db_t *db = calloc(1, sizeof(*db));
    if (!db) {
        snprintf(err, errlen, "out of memory");
        *retryable = true;
        return NULL;
    }
    cd_buf_init(&db->out, DB_CSV_MAX);
    db->inc_index = -1;
    db->target.connect_timeout_s = app->cfg.import_db_connect_timeout;
    db->target.statement_timeout_s = app->cfg.import_db_statement_timeout;
    db->target.keep_s = app->cfg.import_db_keep_seconds;
    snprintf(db->target.source_id, sizeof(db->target.source_id), "%s", src->id ? src->id : "");
    cd_buf_t sql;
    cd_buf_init(&sql, DB_SQL_MAX);
    json_t *cred = read_credentials(c, src->id, err, errlen, retryable);
    bool ok = cred && read_target(src, cred, db, err, errlen) &&
              build_sql(src, db, last_value, head_only, &sql, err, errlen) &&
              check_host(app, db, err, errlen, retryable);
    json_decref(cred); /* jansson does not wipe; the clear text lived in PQ's buffer too */
    if (ok) {
        bool started = db->dialect == IMP_DB_MYSQL   ? import__db_mysql_start(db, cd_buf_str(&sql))
                       : db->dialect == IMP_DB_MSSQL ? import__db_mssql_start(db, cd_buf_str(&sql))
                                                     : import__db_pg_start(db, cd_buf_str(&sql));
        if (!started) {
            snprintf(err, errlen, "%s", db->err[0] ? db->err : "the source database refused");
            *retryable = db->retryable;
            ok = false;
        }
    }
    cd_buf_free(&sql);
    if (!ok) {
        import__db_close(db);
        return NULL;
    }
    return db;
}
