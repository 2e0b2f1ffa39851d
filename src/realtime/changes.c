/*
 * The postgres_changes feed. One thread owns an owner connection that
 * LISTENs for the capture trigger's wake-up and reads realtime.changes in
 * windows of finished transactions; a second, authenticator connection (the
 * thread's db_thread_conn) runs the visibility checks as each subscriber.
 * Subscriptions live in a mutex-protected list that the realtime loop edits
 * on join, leave and access_token.
 */
#include "realtime/changes.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/log.h"
#include "db/db.h"

#define FEED_BATCH         1000 /* changes read per query */
#define FEED_IDLE_POLL_MS  500  /* poll even without NOTIFY (lost wake-ups, late xmin) */
#define FEED_PURGE_EVERY_S 60   /* how often old queue rows are removed */
#define FEED_RETENTION     "10 minutes"
#define FEED_MAX_RECORD    (1u << 20) /* larger records are not sent (Supabase: 1 MiB) */
#define FEED_MAX_TABLES    256
#define FEED_MAX_DATA      (4u << 20)
#define FEED_GROUP_BUCKETS 1024

/* ------------------------------------------------------------ filters */

unsigned changes_event_mask(const char *event)
{
    if (!event)
        return 0;
    if (strcmp(event, "*") == 0)
        return CHANGES_EV_ALL;
    if (strcasecmp(event, "INSERT") == 0)
        return CHANGES_EV_INSERT;
    if (strcasecmp(event, "UPDATE") == 0)
        return CHANGES_EV_UPDATE;
    if (strcasecmp(event, "DELETE") == 0)
        return CHANGES_EV_DELETE;
    return 0;
}

void changes_filter_free(changes_filter_t *f)
{
    if (!f)
        return;
    free(f->value);
    for (size_t i = 0; i < f->nvalues; i++)
        free(f->values[i]);
    free(f->values);
    memset(f, 0, sizeof(*f));
}

/* Splits the inside of in.(a,"b c",d) into values; double quotes group. */
static bool parse_in_list(const char *s, size_t n, changes_filter_t *f, const char **why)
{
    f->values = calloc(CHANGES_MAX_IN_VALUES, sizeof(char *));
    if (!f->values) {
        *why = "out of memory";
        return false;
    }
    size_t i = 0;
    while (i <= n) {
        if (f->nvalues == CHANGES_MAX_IN_VALUES) {
            *why = "too many values in in.()";
            return false;
        }
        char tmp[CHANGES_MAX_FILTER + 1];
        size_t tl = 0;
        if (i < n && s[i] == '"') {
            i++;
            while (i < n && s[i] != '"') {
                if (s[i] == '\\' && i + 1 < n)
                    i++;
                tmp[tl++] = s[i++];
            }
            if (i >= n) {
                *why = "unterminated quote in in.()";
                return false;
            }
            i++; /* closing quote */
            if (i < n && s[i] != ',') {
                *why = "expected , after a quoted value";
                return false;
            }
        } else {
            while (i < n && s[i] != ',')
                tmp[tl++] = s[i++];
        }
        tmp[tl] = '\0';
        f->values[f->nvalues] = strdup(tmp);
        if (!f->values[f->nvalues]) {
            *why = "out of memory";
            return false;
        }
        f->nvalues++;
        i++; /* the comma (or past the end) */
    }
    return true;
}

bool changes_filter_parse(const char *s, changes_filter_t *out, const char **why)
{
    static const struct {
        const char *name;
        changes_op_t op;
    } ops[] = {{"eq", CHANGES_OP_EQ},   {"neq", CHANGES_OP_NEQ}, {"lt", CHANGES_OP_LT},
               {"lte", CHANGES_OP_LTE}, {"gt", CHANGES_OP_GT},   {"gte", CHANGES_OP_GTE},
               {"in", CHANGES_OP_IN}};
    memset(out, 0, sizeof(*out));
    size_t len = strlen(s);
    if (len == 0 || len > CHANGES_MAX_FILTER) {
        *why = "filter is empty or too long";
        return false;
    }
    const char *eq = strchr(s, '=');
    if (!eq || eq == s || (size_t)(eq - s) >= CHANGES_MAX_NAME) {
        *why = "expected column=operator.value";
        return false;
    }
    memcpy(out->column, s, (size_t)(eq - s));
    out->column[eq - s] = '\0';
    const char *opname = eq + 1;
    const char *dot = strchr(opname, '.');
    if (!dot) {
        *why = "expected column=operator.value";
        return false;
    }
    size_t ol = (size_t)(dot - opname);
    bool found = false;
    for (size_t i = 0; i < CD_ARRAY_LEN(ops); i++) {
        if (strlen(ops[i].name) == ol && strncmp(ops[i].name, opname, ol) == 0) {
            out->op = ops[i].op;
            found = true;
        }
    }
    if (!found) {
        *why = "unsupported operator (eq, neq, lt, lte, gt, gte, in)";
        return false;
    }
    const char *val = dot + 1;
    if (out->op == CHANGES_OP_IN) {
        size_t vl = strlen(val);
        if (vl < 2 || val[0] != '(' || val[vl - 1] != ')') {
            *why = "in needs a list: in.(a,b)";
            goto fail;
        }
        if (!parse_in_list(val + 1, vl - 2, out, why))
            goto fail;
        return true;
    }
    out->value = strdup(val);
    if (!out->value) {
        *why = "out of memory";
        goto fail;
    }
    return true;
fail:
    changes_filter_free(out);
    return false;
}

/* Compares a JSON value with filter text: sets *cmp (<0, 0, >0) and returns
 * true when they are comparable. */
static bool compare_value(const json_t *v, const char *text, int *cmp)
{
    if (json_is_number(v)) {
        char *end;
        errno = 0;
        double t = strtod(text, &end);
        if (errno || end == text || *end != '\0' || isnan(t))
            return false;
        double x = json_number_value(v);
        *cmp = x < t ? -1 : x > t ? 1 : 0;
        return true;
    }
    if (json_is_boolean(v)) {
        int t;
        if (strcmp(text, "true") == 0 || strcmp(text, "t") == 0)
            t = 1;
        else if (strcmp(text, "false") == 0 || strcmp(text, "f") == 0)
            t = 0;
        else
            return false;
        int x = json_is_true(v) ? 1 : 0;
        *cmp = x - t;
        return true;
    }
    if (json_is_string(v)) {
        int c = strcmp(json_string_value(v), text);
        *cmp = c < 0 ? -1 : c > 0 ? 1 : 0;
        return true;
    }
    return false; /* null, objects and arrays never match */
}

bool changes_filter_match(const changes_filter_t *f, const json_t *record)
{
    const json_t *v = json_is_object(record) ? json_object_get(record, f->column) : NULL;
    if (!v || json_is_null(v))
        return false;
    int c;
    if (f->op == CHANGES_OP_IN) {
        for (size_t i = 0; i < f->nvalues; i++)
            if (compare_value(v, f->values[i], &c) && c == 0)
                return true;
        return false;
    }
    if (!compare_value(v, f->value, &c))
        return false;
    switch (f->op) {
    case CHANGES_OP_EQ:
        return c == 0;
    case CHANGES_OP_NEQ:
        return c != 0;
    case CHANGES_OP_LT:
        return c < 0;
    case CHANGES_OP_LTE:
        return c <= 0;
    case CHANGES_OP_GT:
        return c > 0;
    case CHANGES_OP_GTE:
        return c >= 0;
    case CHANGES_OP_IN:
        break;
    }
    return false;
}

/* ------------------------------------------------------- subscriptions */

typedef struct sub {
    uint64_t chan_id;
    char role[16];
    char *claims_json;
    changes_binding_t *binds;
    size_t nbinds;
} sub_t;

static pthread_mutex_t subs_lock = PTHREAD_MUTEX_INITIALIZER;
static sub_t **subs;
static size_t nsubs, subs_cap;

void changes_data_ref(changes_data_t *d)
{
    atomic_fetch_add(&d->refs, 1);
}

void changes_data_unref(changes_data_t *d)
{
    if (d && atomic_fetch_sub(&d->refs, 1) == 1)
        free(d);
}

static void sub_free(sub_t *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nbinds; i++)
        changes_filter_free(&s->binds[i].filter);
    free(s->binds);
    free(s->claims_json);
    free(s);
}

bool changes_subscribe(uint64_t chan_id, const char *role, const char *claims_json,
                       changes_binding_t *binds, size_t nbinds)
{
    sub_t *s = calloc(1, sizeof(*s));
    if (!s)
        return false;
    s->chan_id = chan_id;
    snprintf(s->role, sizeof(s->role), "%s", role);
    s->claims_json = strdup(claims_json);
    s->binds = calloc(nbinds ? nbinds : 1, sizeof(*binds));
    if (!s->claims_json || !s->binds) {
        sub_free(s);
        return false;
    }
    for (size_t i = 0; i < nbinds; i++) {
        s->binds[i] = binds[i];
        memset(&binds[i].filter, 0, sizeof(binds[i].filter)); /* moved */
        binds[i].has_filter = false;
    }
    s->nbinds = nbinds;
    pthread_mutex_lock(&subs_lock);
    if (nsubs == subs_cap) {
        size_t cap = subs_cap ? subs_cap * 2 : 64;
        sub_t **n = realloc(subs, cap * sizeof(*n));
        if (!n) {
            pthread_mutex_unlock(&subs_lock);
            sub_free(s);
            return false;
        }
        subs = n;
        subs_cap = cap;
    }
    subs[nsubs++] = s;
    pthread_mutex_unlock(&subs_lock);
    return true;
}

void changes_set_claims(uint64_t chan_id, const char *role, const char *claims_json)
{
    char *copy = strdup(claims_json);
    if (!copy)
        return;
    pthread_mutex_lock(&subs_lock);
    for (size_t i = 0; i < nsubs; i++) {
        if (subs[i]->chan_id == chan_id) {
            snprintf(subs[i]->role, sizeof(subs[i]->role), "%s", role);
            free(subs[i]->claims_json);
            subs[i]->claims_json = copy;
            copy = NULL;
            break;
        }
    }
    pthread_mutex_unlock(&subs_lock);
    free(copy);
}

void changes_unsubscribe(uint64_t chan_id)
{
    sub_t *gone = NULL;
    pthread_mutex_lock(&subs_lock);
    for (size_t i = 0; i < nsubs; i++) {
        if (subs[i]->chan_id == chan_id) {
            gone = subs[i];
            subs[i] = subs[--nsubs];
            break;
        }
    }
    pthread_mutex_unlock(&subs_lock);
    sub_free(gone);
}

/* ----------------------------------------------------------- the feed */

typedef struct table_info {
    unsigned relid;
    char *columns_json;
    char *visible_sql;
    time_t fetched;
} table_info_t;

typedef struct feed_event {
    unsigned mask; /* CHANGES_EV_* */
    char schema[CHANGES_MAX_NAME];
    char table[CHANGES_MAX_NAME];
    json_t *row;      /* record (or old_record for DELETE), parsed lazily for filters */
    const char *key;  /* the JSON text used for the visibility lookup: the whole
                       * record (must still equal the row visible now, see
                       * realtime.table_info), or the old key for DELETE */
    table_info_t *ti; /* NULL: table without a primary key (never delivered) */
    changes_data_t *data;
} feed_event_t;

/* A candidate delivery: channel, event and the matching binding ids. */
typedef struct cand {
    uint64_t chan_id;
    size_t ev;
    char ids[256];
} cand_t;

/* Subscribers with identical role and claims share one visibility check. */
typedef struct group {
    char role[16];
    char *claims_json;
    unsigned hash;
    cand_t *cands;
    size_t ncands, cap;
    struct group *next;
} group_t;

static struct {
    app_t *app;
    changes_deliver_fn deliver;
    void *arg;
    pthread_t thread;
    bool running;
    int stop_fd;
    PGconn *owner;
    char cur_xid[32];
    long long cur_id;
    table_info_t tables[FEED_MAX_TABLES];
    size_t ntables;
} feed;

static void table_info_clear(table_info_t *t)
{
    free(t->columns_json);
    free(t->visible_sql);
    memset(t, 0, sizeof(*t));
}

static table_info_t *table_lookup(unsigned relid)
{
    time_t now = time(NULL);
    table_info_t *slot = NULL;
    for (size_t i = 0; i < feed.ntables; i++) {
        if (feed.tables[i].relid == relid) {
            if (now - feed.tables[i].fetched < 60)
                return &feed.tables[i];
            slot = &feed.tables[i]; /* refresh: the table may have changed */
            break;
        }
    }
    if (!slot) {
        if (feed.ntables == FEED_MAX_TABLES)
            table_info_clear(&feed.tables[--feed.ntables]);
        slot = &feed.tables[feed.ntables++];
    }
    table_info_clear(slot);
    char rel[16];
    snprintf(rel, sizeof(rel), "%u", relid);
    const char *params[1] = {rel};
    PGresult *r = PQexecParams(feed.owner,
                               "select columns_json, visible_sql from realtime.table_info($1::oid)",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 || PQgetisnull(r, 0, 1)) {
        log_warn("realtime: no primary key or no access for table oid %u; its changes are not "
                 "sent",
                 relid);
        PQclear(r);
        feed.ntables--;
        return NULL;
    }
    slot->relid = relid;
    slot->columns_json = strdup(PQgetvalue(r, 0, 0));
    slot->visible_sql = strdup(PQgetvalue(r, 0, 1));
    slot->fetched = now;
    PQclear(r);
    if (!slot->columns_json || !slot->visible_sql) {
        table_info_clear(slot);
        feed.ntables--;
        return NULL;
    }
    return slot;
}

static bool add_json_string(cd_buf_t *b, const char *s)
{
    json_t *j = json_string(s);
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    bool ok = t && cd_buf_adds(b, t);
    free(t);
    return ok;
}

/* Builds the "data" object Supabase sends, from the queue row's JSON texts. */
static changes_data_t *build_data(const char *schema, const char *table, const char *ts,
                                  const char *type, const char *columns, const char *record,
                                  const char *old_record)
{
    cd_buf_t b;
    cd_buf_init(&b, FEED_MAX_DATA);
    bool ok = cd_buf_adds(&b, "{\"schema\":") && add_json_string(&b, schema) &&
              cd_buf_adds(&b, ",\"table\":") && add_json_string(&b, table) &&
              cd_buf_adds(&b, ",\"commit_timestamp\":") && add_json_string(&b, ts) &&
              cd_buf_adds(&b, ",\"type\":") && add_json_string(&b, type) &&
              cd_buf_printf(&b, ",\"columns\":%s", columns);
    if (ok && record)
        ok = cd_buf_printf(&b, ",\"record\":%s", record);
    if (ok && old_record)
        ok = cd_buf_printf(&b, ",\"old_record\":%s", old_record);
    ok = ok && cd_buf_adds(&b, ",\"errors\":null}");
    if (!ok) {
        cd_buf_free(&b);
        return NULL;
    }
    changes_data_t *d = malloc(sizeof(*d) + b.len + 1);
    if (d) {
        atomic_init(&d->refs, 1);
        d->len = b.len;
        memcpy(d->text, b.data, b.len + 1);
    }
    cd_buf_free(&b);
    return d;
}

static bool binding_matches(const changes_binding_t *bd, feed_event_t *e)
{
    if (!(bd->events & e->mask))
        return false;
    if (strcmp(bd->schema, "*") != 0 && strcmp(bd->schema, e->schema) != 0)
        return false;
    if (strcmp(bd->table, "*") != 0 && strcmp(bd->table, e->table) != 0)
        return false;
    if (bd->has_filter) {
        if (!e->row) {
            json_error_t jerr;
            e->row = json_loads(e->key, 0, &jerr);
            if (!e->row)
                return false;
        }
        if (!changes_filter_match(&bd->filter, e->row))
            return false;
    }
    return true;
}

static unsigned hash_str(const char *a, const char *b)
{
    unsigned h = 2166136261u;
    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * 16777619u;
    h = (h ^ 0xffu) * 16777619u;
    for (; *b; b++)
        h = (h ^ (unsigned char)*b) * 16777619u;
    return h;
}

static void groups_free(group_t **buckets)
{
    for (size_t i = 0; i < FEED_GROUP_BUCKETS; i++) {
        group_t *g = buckets[i];
        while (g) {
            group_t *n = g->next;
            free(g->claims_json);
            free(g->cands);
            free(g);
            g = n;
        }
        buckets[i] = NULL;
    }
}

/* Matches the batch against every subscription; fills groups. Runs under
 * subs_lock. Returns false when out of memory. */
static bool match_batch(feed_event_t *ev, size_t nev, group_t **buckets)
{
    for (size_t s = 0; s < nsubs; s++) {
        sub_t *sb = subs[s];
        group_t *g = NULL;
        for (size_t e = 0; e < nev; e++) {
            if (!ev[e].ti || !ev[e].data)
                continue;
            char ids[256];
            size_t il = 0;
            ids[il++] = '[';
            for (size_t k = 0; k < sb->nbinds; k++) {
                if (!binding_matches(&sb->binds[k], &ev[e]))
                    continue;
                int w = snprintf(ids + il, sizeof(ids) - il, "%s%ld", il > 1 ? "," : "",
                                 sb->binds[k].id);
                if (w < 0 || (size_t)w >= sizeof(ids) - il - 1)
                    break;
                il += (size_t)w;
            }
            if (il == 1)
                continue;
            ids[il++] = ']';
            ids[il] = '\0';
            if (!g) {
                unsigned h = hash_str(sb->role, sb->claims_json);
                for (g = buckets[h % FEED_GROUP_BUCKETS]; g; g = g->next)
                    if (g->hash == h && strcmp(g->role, sb->role) == 0 &&
                        strcmp(g->claims_json, sb->claims_json) == 0)
                        break;
                if (!g) {
                    g = calloc(1, sizeof(*g));
                    if (!g)
                        return false;
                    g->claims_json = strdup(sb->claims_json);
                    if (!g->claims_json) {
                        free(g);
                        return false;
                    }
                    snprintf(g->role, sizeof(g->role), "%s", sb->role);
                    g->hash = h;
                    g->next = buckets[h % FEED_GROUP_BUCKETS];
                    buckets[h % FEED_GROUP_BUCKETS] = g;
                }
            }
            if (g->ncands == g->cap) {
                size_t cap = g->cap ? g->cap * 2 : 16;
                cand_t *n = realloc(g->cands, cap * sizeof(*n));
                if (!n)
                    return false;
                g->cands = n;
                g->cap = cap;
            }
            cand_t *c = &g->cands[g->ncands++];
            c->chan_id = sb->chan_id;
            c->ev = e;
            memcpy(c->ids, ids, il + 1);
        }
    }
    return true;
}

/* Runs the visibility checks of one group and delivers what it may see. */
static void check_group(group_t *g, feed_event_t *ev, size_t nev, unsigned char *visible)
{
    memset(visible, 0, nev);
    db_conn_t *c = db_thread_conn();
    if (!c) {
        log_warn("realtime: database unavailable; changes for %zu subscriptions dropped",
                 g->ncands);
        return;
    }
    db_caller_t who = {.role = g->role, .claims_json = g->claims_json, .read_only = true};
    /* One query per table present in this group's candidates. */
    unsigned char *asked = calloc(nev, 1);
    size_t *pos = calloc(nev, sizeof(size_t));
    if (!asked || !pos)
        goto done;
    for (size_t i = 0; i < g->ncands; i++) {
        size_t e0 = g->cands[i].ev;
        if (asked[e0])
            continue;
        table_info_t *ti = ev[e0].ti;
        if (ev[e0].mask == CHANGES_EV_DELETE) {
            /* The row is gone: RLS cannot be asked. As Supabase does, a
             * DELETE (primary key only when RLS is on) goes to subscribers
             * whose role may read the table. */
            asked[e0] = 1;
            char rel[16];
            snprintf(rel, sizeof(rel), "%u", ti->relid);
            const char *p1[1] = {rel};
            PGresult *r = NULL;
            db_error_t err;
            if (db_run1(c, &who, "select pg_catalog.has_table_privilege($1::oid, 'SELECT')", 1, p1,
                        &r, &err) == DB_OK &&
                PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0)
                for (size_t j = 0; j < nev; j++)
                    if (ev[j].ti == ti && ev[j].mask == CHANGES_EV_DELETE)
                        visible[j] = 1;
            PQclear(r);
            for (size_t j = 0; j < nev; j++)
                if (ev[j].ti == ti && ev[j].mask == CHANGES_EV_DELETE)
                    asked[j] = 1;
            continue;
        }
        cd_buf_t keys;
        cd_buf_init(&keys, 64u << 20);
        bool ok = cd_buf_adds(&keys, "[");
        size_t n = 0;
        for (size_t j = i; j < g->ncands && ok; j++) {
            size_t e = g->cands[j].ev;
            if (asked[e] || ev[e].ti != ti || ev[e].mask == CHANGES_EV_DELETE)
                continue;
            asked[e] = 1;
            pos[n++] = e;
            ok = (n > 1 ? cd_buf_adds(&keys, ",") : true) && cd_buf_adds(&keys, ev[e].key);
        }
        ok = ok && cd_buf_adds(&keys, "]");
        if (!ok) {
            cd_buf_free(&keys);
            continue;
        }
        const char *params[1] = {cd_buf_str(&keys)};
        PGresult *r = NULL;
        db_error_t err;
        db_status_t st = db_run1(c, &who, ti->visible_sql, 1, params, &r, &err);
        cd_buf_free(&keys);
        if (st != DB_OK) {
            if (st == DB_SQL_ERROR && strcmp(err.sqlstate, "42501") != 0)
                log_warn("realtime: visibility check failed (%s): %s", err.sqlstate, err.message);
            PQclear(r);
            continue; /* 42501: the role may not read the table at all */
        }
        for (int row = 0; row < PQntuples(r); row++) {
            long k = strtol(PQgetvalue(r, row, 0), NULL, 10);
            if (k >= 1 && (size_t)k <= n)
                visible[pos[k - 1]] = 1;
        }
        PQclear(r);
    }
done:
    free(asked);
    free(pos);
}

/* DELETE events carry only the primary key when RLS is on; they are checked
 * for table privilege (as Supabase: the row is gone, RLS cannot be asked). */
static void process_batch(feed_event_t *ev, size_t nev)
{
    group_t *buckets[FEED_GROUP_BUCKETS] = {0};
    pthread_mutex_lock(&subs_lock);
    bool ok = match_batch(ev, nev, buckets);
    pthread_mutex_unlock(&subs_lock);
    if (!ok)
        log_error("realtime: out of memory matching changes");
    unsigned char *visible = malloc(nev ? nev : 1);
    if (!visible) {
        groups_free(buckets);
        return;
    }
    for (size_t b = 0; b < FEED_GROUP_BUCKETS; b++) {
        for (group_t *g = buckets[b]; g; g = g->next) {
            check_group(g, ev, nev, visible);
            for (size_t i = 0; i < g->ncands; i++)
                if (visible[g->cands[i].ev])
                    feed.deliver(feed.arg, g->cands[i].chan_id, g->cands[i].ids,
                                 ev[g->cands[i].ev].data);
        }
    }
    free(visible);
    groups_free(buckets);
}

static const char *poll_sql =
    "with hi as (select pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot()) as x) "
    "select hi.x::text, c.xid::text, c.id, c.relid, c.schema_name, c.table_name, c.type, "
    "pg_catalog.to_char(c.commit_timestamp at time zone 'utc', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), c.record::text, c.old_record::text "
    "from hi left join lateral (select * from realtime.changes c "
    "where (c.xid, c.id) > ($1::xid8, $2::bigint) and c.xid < hi.x "
    "order by c.xid, c.id limit 1000) c on true";

/* Reads and delivers every finished change past the cursor. Returns false
 * when the owner connection failed. */
static bool feed_poll(void)
{
    for (;;) {
        char idbuf[24];
        snprintf(idbuf, sizeof(idbuf), "%lld", feed.cur_id);
        const char *params[2] = {feed.cur_xid, idbuf};
        PGresult *r = PQexecParams(feed.owner, poll_sql, 2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            log_warn("realtime: reading changes failed: %s", PQerrorMessage(feed.owner));
            PQclear(r);
            return PQstatus(feed.owner) == CONNECTION_OK;
        }
        int n = PQntuples(r);
        if (n == 0 || PQgetisnull(r, 0, 1)) {
            /* Nothing finished past the cursor: every xid below hi is done. */
            if (n > 0 && strlen(PQgetvalue(r, 0, 0)) < sizeof(feed.cur_xid)) {
                const char *hi = PQgetvalue(r, 0, 0);
                unsigned long long h = strtoull(hi, NULL, 10);
                unsigned long long cur = strtoull(feed.cur_xid, NULL, 10);
                if (h > cur) {
                    snprintf(feed.cur_xid, sizeof(feed.cur_xid), "%s", hi);
                    feed.cur_id = 0;
                }
            }
            PQclear(r);
            return true;
        }
        feed_event_t *ev = calloc((size_t)n, sizeof(*ev));
        if (!ev) {
            PQclear(r);
            return true;
        }
        for (int i = 0; i < n; i++) {
            const char *type = PQgetvalue(r, i, 6);
            const char *rec = PQgetisnull(r, i, 8) ? NULL : PQgetvalue(r, i, 8);
            const char *old = PQgetisnull(r, i, 9) ? NULL : PQgetvalue(r, i, 9);
            feed_event_t *e = &ev[i];
            e->mask = changes_event_mask(type);
            snprintf(e->schema, sizeof(e->schema), "%s", PQgetvalue(r, i, 4));
            snprintf(e->table, sizeof(e->table), "%s", PQgetvalue(r, i, 5));
            e->key = e->mask == CHANGES_EV_DELETE ? old : rec;
            if (!e->key || strlen(e->key) > FEED_MAX_RECORD)
                continue;
            e->ti = table_lookup((unsigned)strtoul(PQgetvalue(r, i, 3), NULL, 10));
            if (!e->ti)
                continue;
            e->data = build_data(e->schema, e->table, PQgetvalue(r, i, 7), type,
                                 e->ti->columns_json, e->mask == CHANGES_EV_DELETE ? NULL : rec,
                                 e->mask == CHANGES_EV_INSERT ? NULL : old);
        }
        process_batch(ev, (size_t)n);
        for (int i = 0; i < n; i++) {
            json_decref(ev[i].row);
            changes_data_unref(ev[i].data);
        }
        free(ev);
        snprintf(feed.cur_xid, sizeof(feed.cur_xid), "%s", PQgetvalue(r, n - 1, 1));
        feed.cur_id = strtoll(PQgetvalue(r, n - 1, 2), NULL, 10);
        PQclear(r);
        if (n < FEED_BATCH)
            return true; /* next call moves the cursor up to hi */
    }
}

/* Connects the owner connection, LISTENs, applies REALTIME_TABLES. */
static bool feed_connect(bool first)
{
    PQfinish(feed.owner);
    feed.owner = app_owner_connect(feed.app);
    if (!feed.owner)
        return false;
    db_error_t err;
    if (!db_exec(feed.owner, "listen campaignd_realtime", &err)) {
        log_warn("realtime: LISTEN failed: %s", err.message);
        goto fail;
    }
    if (first) {
        const char *list = feed.app->cfg.realtime_tables ? feed.app->cfg.realtime_tables : "";
        cd_buf_t arr;
        cd_buf_init(&arr, 8192);
        json_t *names = json_array();
        const char *p = list;
        while (names && *p) {
            size_t n = strcspn(p, ",");
            char name[256];
            if (n < sizeof(name)) {
                memcpy(name, p, n);
                name[n] = '\0';
                json_array_append_new(names, json_string(name));
            }
            p += n;
            if (*p == ',')
                p++;
        }
        char *txt = names ? json_dumps(names, JSON_COMPACT) : NULL;
        json_decref(names);
        cd_buf_free(&arr);
        const char *params[1] = {txt ? txt : "[]"};
        PGresult *r = PQexecParams(feed.owner,
                                   "select pg_catalog.array_to_string(realtime.set_tables("
                                   "array(select pg_catalog.jsonb_array_elements_text($1::jsonb))"
                                   "), ', ')",
                                   1, NULL, params, NULL, NULL, 0);
        free(txt);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            log_error("realtime: cannot enable change capture (REALTIME_TABLES=%s): %s", list,
                      PQresultErrorMessage(r));
            PQclear(r);
            goto fail;
        }
        if (*PQgetvalue(r, 0, 0))
            log_warn("realtime: REALTIME_TABLES names tables that do not exist: %s",
                     PQgetvalue(r, 0, 0));
        PQclear(r);
        r = PQexec(feed.owner,
                   "select pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text");
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            PQclear(r);
            goto fail;
        }
        snprintf(feed.cur_xid, sizeof(feed.cur_xid), "%s", PQgetvalue(r, 0, 0));
        feed.cur_id = 0;
        PQclear(r);
    }
    return true;
fail:
    PQfinish(feed.owner);
    feed.owner = NULL;
    return false;
}

static void *feed_main(void *arg)
{
    (void)arg;
    time_t last_purge = time(NULL);
    int backoff_ms = 100;
    bool need_poll = true;
    while (feed.running) {
        if (!feed.owner || PQstatus(feed.owner) != CONNECTION_OK) {
            if (!feed_connect(false)) {
                struct pollfd p = {.fd = feed.stop_fd, .events = POLLIN};
                if (poll(&p, 1, backoff_ms) > 0)
                    break;
                backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
                continue;
            }
            backoff_ms = 100;
            need_poll = true;
        }
        if (need_poll) {
            need_poll = false;
            if (!feed_poll())
                continue;
        }
        struct pollfd p[2] = {{.fd = PQsocket(feed.owner), .events = POLLIN},
                              {.fd = feed.stop_fd, .events = POLLIN}};
        int r = poll(p, 2, FEED_IDLE_POLL_MS);
        if (r < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (r == 0)
            need_poll = true;
        if (p[0].revents) {
            if (!PQconsumeInput(feed.owner))
                continue;
            PGnotify *n;
            while ((n = PQnotifies(feed.owner))) {
                need_poll = true;
                PQfreemem(n);
            }
        }
        time_t now = time(NULL);
        if (now - last_purge >= FEED_PURGE_EVERY_S) {
            last_purge = now;
            db_exec_ignore(feed.owner, "select realtime.purge('" FEED_RETENTION "')");
        }
    }
    db_thread_close();
    return NULL;
}

bool changes_start(app_t *app, changes_deliver_fn fn, void *arg)
{
    CD_ASSERT(!feed.running); /* one change feed per process */
    feed.app = app;
    feed.deliver = fn;
    feed.arg = arg;
    feed.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (feed.stop_fd < 0)
        return false;
    if (!feed_connect(true)) {
        close(feed.stop_fd);
        feed.stop_fd = -1;
        return false;
    }
    feed.running = true;
    if (pthread_create(&feed.thread, NULL, feed_main, NULL) != 0) {
        feed.running = false;
        PQfinish(feed.owner);
        feed.owner = NULL;
        close(feed.stop_fd);
        return false;
    }
    return true;
}

void changes_stop(void)
{
    if (feed.running) {
        feed.running = false;
        uint64_t one = 1;
        if (write(feed.stop_fd, &one, sizeof(one)) < 0)
            log_warn("realtime: cannot wake the change feed: %s", strerror(errno));
        pthread_join(feed.thread, NULL);
        close(feed.stop_fd);
        feed.stop_fd = -1;
    }
    PQfinish(feed.owner);
    feed.owner = NULL;
    for (size_t i = 0; i < feed.ntables; i++)
        table_info_clear(&feed.tables[i]);
    feed.ntables = 0;
    pthread_mutex_lock(&subs_lock);
    for (size_t i = 0; i < nsubs; i++)
        sub_free(subs[i]);
    free(subs);
    subs = NULL;
    nsubs = subs_cap = 0;
    pthread_mutex_unlock(&subs_lock);
}
