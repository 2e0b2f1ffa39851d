/*
 * The postgres_changes feed. One thread owns an owner connection that
 * LISTENs for the capture trigger's wake-up and reads realtime.changes in
 * windows of finished transactions, at most once per REALTIME_FEED_WINDOW_MS
 * (the commits of a window share one read and one check per claims group);
 * REALTIME_CHECK_CONNECTIONS authenticator
 * connections run the visibility checks as each claims group, all groups of a
 * batch in one pipeline per connection.
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

#define FEED_BATCH           1000 /* changes read per query */
#define FEED_IDLE_POLL_MS    500  /* poll even without NOTIFY (lost wake-ups, late xmin) */
#define FEED_PURGE_EVERY_S   60   /* how often old queue rows are removed */
#define FEED_RETENTION       "10 minutes"
#define FEED_MAX_RECORD      (1u << 20) /* larger records are not sent (Supabase: 1 MiB) */
#define FEED_MAX_TABLES      256
#define FEED_MAX_DATA        (4u << 20)
#define FEED_GROUP_BUCKETS   1024
#define FEED_MAX_CHECK_CONNS 8

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
    atomic_int refs; /* the list's, plus one per batch being delivered to it */
    uint64_t chan_id;
    char role[16];
    char *claims_json;
    unsigned hash; /* hash_str(role, claims_json), kept with them: the feed groups
                      every subscription by it on every batch */
    changes_binding_t *binds;
    size_t nbinds;
} sub_t;

static unsigned hash_str(const char *a, const char *b);

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
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
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
    atomic_init(&s->refs, 1);
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
    s->hash = hash_str(s->role, s->claims_json);
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
            subs[i]->hash = hash_str(subs[i]->role, copy);
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
    bool usable;      /* may be matched: key and table known */
    /* what build_data needs, texts of the read's result (valid for the batch):
     * the data is built only for events some subscriber wants — a change nobody
     * listens to (a bulk import's rows) costs no formatting */
    const char *ts, *type, *record, *old_record;
    changes_data_t *data;
} feed_event_t;

/* Subscribers with identical role and claims share one visibility check per
 * table and batch. A group holds its members (referenced, so an unsubscribe
 * during the check cannot free them) and which events any member wants: the
 * memory of a batch is O(groups x events + deliveries), never subscribers x
 * events (1,000 sockets x 1,000 events was 280 MB of candidates per batch). */
typedef struct group {
    char role[16];
    char *claims_json;
    unsigned hash;
    sub_t **members;
    size_t nmembers, cap;
    unsigned char *want; /* [nev]: some member's bindings match the event */
    size_t nwant;
    struct group *next;
} group_t;

/* A transaction above the snapshot's xmin whose changes were delivered before
 * an older transaction finished: its xid and the last change id delivered. */
typedef struct {
    unsigned long long xid;
    long long last_id;
} early_t;

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
    early_t *early; /* transactions delivered ahead of an older, still open one */
    size_t nearly, capearly;
    table_info_t tables[FEED_MAX_TABLES];
    size_t ntables;
    db_conn_t *check[FEED_MAX_CHECK_CONNS]; /* the checking connections */
    size_t ncheck;
    long window_ms; /* REALTIME_FEED_WINDOW_MS */
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
            for (size_t k = 0; k < g->nmembers; k++)
                sub_free(g->members[k]); /* drops the batch's reference */
            free(g->members);
            free(g->want);
            free(g->claims_json);
            free(g);
            g = n;
        }
        buckets[i] = NULL;
    }
}

/* Whether any binding of sb matches e; the binding ids go into ids when given
 * (a JSON array, "[1,2]"). */
static bool sub_matches(const sub_t *sb, feed_event_t *e, char *ids, size_t idslen)
{
    size_t il = 0;
    if (ids)
        ids[il++] = '[';
    bool any = false;
    for (size_t k = 0; k < sb->nbinds; k++) {
        if (!binding_matches(&sb->binds[k], e))
            continue;
        any = true;
        if (!ids)
            return true;
        int w = snprintf(ids + il, idslen - il, "%s%ld", il > 1 ? "," : "", sb->binds[k].id);
        if (w < 0 || (size_t)w >= idslen - il - 1)
            break;
        il += (size_t)w;
    }
    if (ids) {
        ids[il++] = ']';
        ids[il] = '\0';
    }
    return any;
}

/* Sorts the subscriptions into groups and marks, per group, the events some
 * member wants. Runs under subs_lock. Returns false when out of memory. */
static bool match_batch(feed_event_t *ev, size_t nev, group_t **buckets)
{
    for (size_t s = 0; s < nsubs; s++) {
        sub_t *sb = subs[s];
        unsigned h = sb->hash;
        group_t *g;
        for (g = buckets[h % FEED_GROUP_BUCKETS]; g; g = g->next)
            if (g->hash == h && strcmp(g->role, sb->role) == 0 &&
                strcmp(g->claims_json, sb->claims_json) == 0)
                break;
        if (!g) {
            g = calloc(1, sizeof(*g));
            if (!g)
                return false;
            g->claims_json = strdup(sb->claims_json);
            g->want = calloc(nev ? nev : 1, 1);
            if (!g->claims_json || !g->want) {
                free(g->claims_json);
                free(g->want);
                free(g);
                return false;
            }
            snprintf(g->role, sizeof(g->role), "%s", sb->role);
            g->hash = h;
            g->next = buckets[h % FEED_GROUP_BUCKETS];
            buckets[h % FEED_GROUP_BUCKETS] = g;
        }
        bool wants = false;
        for (size_t e = 0; e < nev; e++) {
            if (!ev[e].usable)
                continue;
            if (g->want[e]) {
                wants = true; /* another member already asks; this one is matched later */
                continue;
            }
            if (sub_matches(sb, &ev[e], NULL, 0)) {
                g->want[e] = 1;
                g->nwant++;
                wants = true;
            }
        }
        if (!wants)
            continue;
        if (g->nmembers == g->cap) {
            size_t cap = g->cap ? g->cap * 2 : 16;
            sub_t **n = realloc(g->members, cap * sizeof(*n));
            if (!n)
                return false;
            g->members = n;
            g->cap = cap;
        }
        atomic_fetch_add(&sb->refs, 1);
        g->members[g->nmembers++] = sb;
    }
    return true;
}

/* ------------------------------------------------ visibility checks */

/* One query of a group's check: the rows of one table the group may see
 * (visible_sql over a JSON array of keys), or, for DELETEs, whether the
 * group's role may read the table at all. */
typedef struct check_q {
    const table_info_t *ti;
    bool privilege;
    char rel[16];
    cd_buf_t keys;
    const char *param;
    size_t *pos; /* event index of each key (1-based row numbers answer) */
    size_t npos;
} check_q_t;

/* A group's check: its queries, as one transaction of the batch. */
typedef struct check {
    group_t *g;
    check_q_t *q;
    size_t nq;
    db_stmt_t *stmts;
    PGresult **results;
    db_caller_t who;
    unsigned char *visible; /* [nev] */
} check_t;

static void check_free(check_t *k)
{
    for (size_t i = 0; i < k->nq; i++) {
        cd_buf_free(&k->q[i].keys);
        free(k->q[i].pos);
        PQclear(k->results ? k->results[i] : NULL);
    }
    free(k->q);
    free(k->stmts);
    free(k->results);
    free(k->visible);
}

static check_q_t *check_query_for(check_t *k, const feed_event_t *e, size_t nev)
{
    bool privilege = e->mask == CHANGES_EV_DELETE;
    for (size_t i = 0; i < k->nq; i++)
        if (k->q[i].ti == e->ti && k->q[i].privilege == privilege)
            return &k->q[i];
    check_q_t *n = realloc(k->q, (k->nq + 1) * sizeof(*n));
    if (!n)
        return NULL;
    k->q = n;
    check_q_t *q = &k->q[k->nq];
    memset(q, 0, sizeof(*q));
    q->pos = malloc(nev * sizeof(size_t));
    if (!q->pos)
        return NULL;
    k->nq++;
    q->ti = e->ti;
    q->privilege = privilege;
    snprintf(q->rel, sizeof(q->rel), "%u", e->ti->relid);
    cd_buf_init(&q->keys, 64u << 20);
    return q;
}

/* Builds a group's transaction: one query per table (and one per table with
 * DELETEs) over the events the group wants. False when out of memory. */
static bool check_build(check_t *k, group_t *g, const feed_event_t *ev, size_t nev)
{
    memset(k, 0, sizeof(*k));
    k->g = g;
    k->visible = calloc(nev ? nev : 1, 1);
    if (!k->visible)
        return false;
    for (size_t e = 0; e < nev; e++) {
        if (!g->want[e])
            continue;
        check_q_t *q = check_query_for(k, &ev[e], nev);
        if (!q)
            return false;
        if (!q->privilege &&
            !((q->npos ? cd_buf_adds(&q->keys, ",") : cd_buf_adds(&q->keys, "[")) &&
              cd_buf_adds(&q->keys, ev[e].key)))
            return false;
        q->pos[q->npos++] = e;
    }
    k->stmts = calloc(k->nq ? k->nq : 1, sizeof(*k->stmts));
    k->results = calloc(k->nq ? k->nq : 1, sizeof(*k->results));
    if (!k->stmts || !k->results)
        return false;
    for (size_t i = 0; i < k->nq; i++) {
        check_q_t *q = &k->q[i];
        /* The row is gone: RLS cannot be asked. As Supabase does, a DELETE
         * (primary key only when RLS is on) goes to subscribers whose role
         * may read the table. */
        if (q->privilege) {
            q->param = q->rel;
            k->stmts[i] = (db_stmt_t){"select pg_catalog.has_table_privilege($1::oid, 'SELECT')", 1,
                                      &q->param};
        } else {
            if (!cd_buf_adds(&q->keys, "]"))
                return false;
            q->param = cd_buf_str(&q->keys);
            k->stmts[i] = (db_stmt_t){q->ti->visible_sql, 1, &q->param};
        }
    }
    k->who = (db_caller_t){.role = g->role, .claims_json = g->claims_json, .read_only = true};
    return true;
}

/* Reads a finished check's results into visible[]. */
static void check_read(check_t *k, const db_txn_t *t)
{
    if (t->status != DB_OK) {
        /* 42501: the role may not read the table at all */
        if (t->status == DB_SQL_ERROR && strcmp(t->err.sqlstate, "42501") != 0)
            log_warn("realtime: visibility check failed (%s): %s", t->err.sqlstate, t->err.message);
        else if (t->status == DB_UNAVAILABLE)
            log_warn("realtime: database unavailable; changes for %zu subscriptions dropped",
                     k->g->nmembers);
        return;
    }
    for (size_t i = 0; i < k->nq; i++) {
        const check_q_t *q = &k->q[i];
        PGresult *r = k->results[i];
        if (q->privilege) {
            bool may = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
            for (size_t j = 0; j < q->npos; j++)
                k->visible[q->pos[j]] = may;
            continue;
        }
        for (int row = 0; row < PQntuples(r); row++) {
            long n = strtol(PQgetvalue(r, row, 0), NULL, 10);
            if (n >= 1 && (size_t)n <= q->npos)
                k->visible[q->pos[n - 1]] = 1;
        }
    }
}

static bool batch_add(changes_batch_t *b, uint64_t chan_id, const char *ids, size_t ev)
{
    size_t il = strlen(ids);
    /* consecutive deliveries usually share their ids: stored once */
    bool same = b->n && strcmp(b->ids + b->d[b->n - 1].ids_off, ids) == 0;
    if (!same && b->ids_len + il + 1 > b->ids_cap) {
        size_t cap = b->ids_cap ? b->ids_cap * 2 : 4096;
        while (cap < b->ids_len + il + 1)
            cap *= 2;
        char *n = realloc(b->ids, cap);
        if (!n)
            return false;
        b->ids = n;
        b->ids_cap = cap;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        changes_delivery_t *n = realloc(b->d, cap * sizeof(*n));
        if (!n)
            return false;
        b->d = n;
        b->cap = cap;
    }
    uint32_t off = same ? b->d[b->n - 1].ids_off : (uint32_t)b->ids_len;
    if (!same) {
        memcpy(b->ids + b->ids_len, ids, il + 1);
        b->ids_len += il + 1;
    }
    b->d[b->n++] = (changes_delivery_t){chan_id, off, (uint32_t)ev};
    return true;
}

/* Each member of a checked group gets, in commit order, the visible events its
 * own bindings match (members are referenced: their bindings stay). */
static bool check_deliver(const check_t *k, feed_event_t *ev, size_t nev, changes_batch_t *b)
{
    for (size_t m = 0; m < k->g->nmembers; m++) {
        const sub_t *sb = k->g->members[m];
        for (size_t e = 0; e < nev; e++) {
            char ids[256];
            if (k->visible[e] && sub_matches(sb, &ev[e], ids, sizeof(ids)) &&
                !batch_add(b, sb->chan_id, ids, e))
                return false;
        }
    }
    return true;
}

void changes_batch_free(changes_batch_t *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->ndata; i++)
        changes_data_unref(b->data[i]);
    free(b->data);
    free(b->ids);
    free(b->d);
    free(b);
}

static changes_batch_t *batch_new(feed_event_t *ev, size_t nev)
{
    changes_batch_t *b = calloc(1, sizeof(*b));
    if (b)
        b->data = calloc(nev ? nev : 1, sizeof(*b->data));
    if (!b || !b->data) {
        free(b);
        return NULL;
    }
    b->ndata = nev;
    for (size_t e = 0; e < nev; e++) {
        if (ev[e].data)
            changes_data_ref(ev[e].data);
        b->data[e] = ev[e].data;
    }
    return b;
}

/* Sends the checks of every group, spread over the checking connections, as
 * one pipeline per connection; then, connection by connection as their
 * answers arrive, reads them and collects the deliveries in b. A group whose
 * check fails (or whose connection is down) gets nothing; the others are not
 * held by it. */
static void run_checks(check_t *ks, size_t nk, feed_event_t *ev, size_t nev, changes_batch_t *b)
{
    size_t nconn = feed.ncheck;
    db_txn_t *txns = calloc(nk ? nk : 1, sizeof(*txns));
    if (!txns)
        return;
    db_batch_t *sent[FEED_MAX_CHECK_CONNS] = {0};
    size_t from[FEED_MAX_CHECK_CONNS + 1];
    for (size_t j = 0; j <= nconn; j++)
        from[j] = nk * j / nconn; /* connection j checks groups from[j] .. from[j+1] */
    for (size_t i = 0; i < nk; i++)
        txns[i] = (db_txn_t){.who = &ks[i].who,
                             .stmts = ks[i].stmts,
                             .nstmts = ks[i].nq,
                             .results = ks[i].results,
                             .status = DB_UNAVAILABLE};
    for (size_t j = 0; j < nconn; j++) {
        if (from[j] == from[j + 1])
            continue;
        if (db_conn_ready(feed.check[j]))
            sent[j] = db_batch_send(feed.check[j], txns + from[j], from[j + 1] - from[j]);
    }
    size_t left = 0;
    for (size_t j = 0; j < nconn; j++)
        left += sent[j] != NULL;
    while (left) {
        /* the first connection with an answer is read first; a result libpq
         * already holds would not make its socket readable */
        struct pollfd p[FEED_MAX_CHECK_CONNS];
        size_t np = 0;
        for (size_t j = 0; j < nconn; j++) {
            if (!sent[j])
                continue;
            PGconn *pg = db_pg(feed.check[j]);
            if (!PQconsumeInput(pg) || !PQisBusy(pg)) {
                (void)db_batch_finish(sent[j]); /* per-transaction outcome in txns */
                sent[j] = NULL;
                left--;
                continue;
            }
            p[np++] = (struct pollfd){.fd = PQsocket(pg), .events = POLLIN};
        }
        if (np && poll(p, np, 1000) < 0 && errno != EINTR)
            break;
    }
    for (size_t j = 0; j < nconn; j++)
        if (sent[j])
            (void)db_batch_finish(sent[j]);
    for (size_t i = 0; i < nk; i++) {
        check_read(&ks[i], &txns[i]);
        if (!check_deliver(&ks[i], ev, nev, b))
            log_error("realtime: out of memory collecting deliveries");
    }
    free(txns);
}

/* Builds the data of the events some group wants (outside the subscription
 * lock); an event whose data cannot be built (too large, out of memory) is
 * wanted by nobody. */
static void build_wanted(feed_event_t *ev, size_t nev, group_t **buckets)
{
    for (size_t i = 0; i < FEED_GROUP_BUCKETS; i++)
        for (group_t *g = buckets[i]; g; g = g->next)
            for (size_t e = 0; g->nmembers && e < nev; e++) {
                if (!g->want[e])
                    continue;
                feed_event_t *x = &ev[e];
                if (!x->data && x->usable) {
                    x->data = build_data(x->schema, x->table, x->ts, x->type, x->ti->columns_json,
                                         x->record, x->old_record);
                    x->usable = x->data != NULL;
                }
                if (!x->data) {
                    g->want[e] = 0;
                    g->nwant--;
                }
            }
}

/* Matches a batch against the subscriptions (under the lock), checks every
 * group's events in one pipeline per checking connection, and hands the
 * deliveries to the loop at once. */
static void process_batch(feed_event_t *ev, size_t nev)
{
    group_t *buckets[FEED_GROUP_BUCKETS] = {0};
    pthread_mutex_lock(&subs_lock);
    bool ok = match_batch(ev, nev, buckets);
    pthread_mutex_unlock(&subs_lock);
    if (!ok)
        log_error("realtime: out of memory matching changes");
    build_wanted(ev, nev, buckets);
    size_t ng = 0;
    for (size_t i = 0; i < FEED_GROUP_BUCKETS; i++)
        for (group_t *g = buckets[i]; g; g = g->next)
            ng += g->nwant && g->nmembers;
    check_t *ks = calloc(ng ? ng : 1, sizeof(*ks));
    changes_batch_t *b = ng ? batch_new(ev, nev) : NULL;
    size_t nk = 0;
    for (size_t i = 0; ks && b && i < FEED_GROUP_BUCKETS; i++)
        for (group_t *g = buckets[i]; g; g = g->next) {
            if (!g->nwant || !g->nmembers)
                continue;
            if (check_build(&ks[nk], g, ev, nev))
                nk++;
            else {
                check_free(&ks[nk]);
                log_error("realtime: out of memory checking changes");
            }
        }
    if (nk)
        run_checks(ks, nk, ev, nev, b);
    for (size_t i = 0; i < nk; i++)
        check_free(&ks[i]);
    free(ks);
    if (b && b->n)
        feed.deliver(feed.arg, b);
    else
        changes_batch_free(b);
    groups_free(buckets);
}

/* The changes of transactions delivered early (feed.early) are skipped by both
 * reads: "delivered" is (xid, id <= last_id). */
#define FEED_NOT_EARLY(xids, ids)                                                                  \
    "not exists (select 1 from rows from (pg_catalog.unnest(" xids "::xid8[]), "                   \
    "pg_catalog.unnest(" ids "::bigint[])) u(x, i) where u.x = c.xid and c.id <= u.i)"

#define FEED_COLUMNS                                                                               \
    "c.xid::text, c.id, c.relid, c.schema_name, c.table_name, c.type, "                            \
    "pg_catalog.to_char(c.commit_timestamp at time zone 'utc', "                                   \
    "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), c.record::text, c.old_record::text"

/* Every change below the oldest running transaction (xmin), in (xid, id) order. */
/* The last column is the statement's snapshot: the early read that follows uses
 * it, so a poll costs one round trip, not two (and both reads see one snapshot). */
static const char *poll_sql =
    "with s as (select pg_catalog.pg_current_snapshot() as snap), "
    "hi as (select pg_catalog.pg_snapshot_xmin(s.snap) as x, s.snap::text as snap from s) "
    "select hi.x::text, " FEED_COLUMNS ", hi.snap "
    "from hi left join lateral (select * from realtime.changes c "
    "where (c.xid, c.id) > ($1::xid8, $2::bigint) and c.xid < hi.x and " FEED_NOT_EARLY(
        "$3", "$4") " "
                    "order by c.xid, c.id limit 1000) c on true";

/* The changes of transactions that committed while an older one is still open
 * (at or above xmin, visible in the snapshot $1). Without this read, one long
 * transaction — a big import's load, say — would hold back every realtime event
 * of the instance until it ends. */
static const char *early_sql =
    "select pg_catalog.pg_snapshot_xmin($1::pg_snapshot)::text, " FEED_COLUMNS " "
    "from realtime.changes c "
    "where c.xid >= pg_catalog.pg_snapshot_xmin($1::pg_snapshot) "
    "and pg_catalog.pg_visible_in_snapshot(c.xid, $1::pg_snapshot) and " FEED_NOT_EARLY(
        "$2", "$3") " "
                    "order by c.xid, c.id limit 1000";

#define FEED_MAX_EARLY 1024 /* early transactions remembered; beyond, wait for xmin */

/* feed.early as the two array parameters ($3 xids, $4 last ids); malloc'd. */
static bool early_params(char **xids, char **ids)
{
    cd_buf_t x, i;
    cd_buf_init(&x, 64 + feed.nearly * 22);
    cd_buf_init(&i, 64 + feed.nearly * 22);
    bool ok = cd_buf_adds(&x, "{") && cd_buf_adds(&i, "{");
    for (size_t k = 0; ok && k < feed.nearly; k++)
        ok = cd_buf_printf(&x, "%s%llu", k ? "," : "", feed.early[k].xid) &&
             cd_buf_printf(&i, "%s%lld", k ? "," : "", feed.early[k].last_id);
    ok = ok && cd_buf_adds(&x, "}") && cd_buf_adds(&i, "}");
    *xids = ok ? cd_buf_take(&x) : NULL;
    *ids = ok ? cd_buf_take(&i) : NULL;
    cd_buf_free(&x);
    cd_buf_free(&i);
    if (*xids && *ids)
        return true;
    free(*xids);
    free(*ids);
    return false;
}

static int early_cmp(const void *a, const void *b)
{
    unsigned long long x = ((const early_t *)a)->xid, y = ((const early_t *)b)->xid;
    return x < y ? -1 : x > y;
}

/* Records that the rows of r (an early read) were delivered. Room for them was
 * reserved before (early_reserve), so this cannot fail. feed.early is kept
 * sorted by xid: a known transaction is found by binary search; the rows come
 * in (xid, id) order, so a new transaction's later rows update the entry just
 * appended, and the appended entries are sorted in at the end. */
static void early_record(PGresult *r, int n)
{
    size_t known = feed.nearly;
    for (int k = 0; k < n; k++) {
        early_t key = {.xid = strtoull(PQgetvalue(r, k, 1), NULL, 10),
                       .last_id = strtoll(PQgetvalue(r, k, 2), NULL, 10)};
        early_t *e = bsearch(&key, feed.early, known, sizeof(*e), early_cmp);
        if (!e && feed.nearly > known && feed.early[feed.nearly - 1].xid == key.xid)
            e = &feed.early[feed.nearly - 1];
        if (!e)
            feed.early[feed.nearly++] = key;
        else if (key.last_id > e->last_id)
            e->last_id = key.last_id;
    }
    if (feed.nearly > known)
        qsort(feed.early, feed.nearly, sizeof(*feed.early), early_cmp);
}

static bool early_reserve(size_t more)
{
    if (feed.nearly + more <= feed.capearly)
        return true;
    size_t cap = feed.nearly + more;
    early_t *e = realloc(feed.early, cap * sizeof(*e));
    if (!e)
        return false;
    feed.early = e;
    feed.capearly = cap;
    return true;
}

/* Forgets the early transactions the main cursor has passed. */
static void early_trim(void)
{
    unsigned long long cur = strtoull(feed.cur_xid, NULL, 10);
    size_t w = 0;
    for (size_t k = 0; k < feed.nearly; k++)
        if (feed.early[k].xid >= cur)
            feed.early[w++] = feed.early[k];
    feed.nearly = w;
}

/* Turns the rows of a read (the columns of FEED_COLUMNS after the first) into
 * events and delivers them. */
static void deliver_rows(PGresult *r, int n)
{
    feed_event_t *ev = calloc((size_t)n, sizeof(*ev));
    if (!ev)
        return;
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
        e->usable = true;
        e->ts = PQgetvalue(r, i, 7);
        e->type = type;
        e->record = e->mask == CHANGES_EV_DELETE ? NULL : rec;
        e->old_record = e->mask == CHANGES_EV_INSERT ? NULL : old;
    }
    process_batch(ev, (size_t)n);
    for (int i = 0; i < n; i++) {
        json_decref(ev[i].row);
        changes_data_unref(ev[i].data);
    }
    free(ev);
}

/* Runs one read with the early set as its last two parameters: poll_sql
 * (cursor xid, cursor id, $3, $4) or early_sql (p2 NULL: snapshot, $2, $3). */
static PGresult *feed_read(const char *sql, const char *p1, const char *p2)
{
    char *xids = NULL, *ids = NULL;
    if (!early_params(&xids, &ids))
        return NULL;
    const char *params[4] = {p1, p2, xids, ids};
    if (!p2) {
        params[1] = xids;
        params[2] = ids;
    }
    PGresult *r = PQexecParams(feed.owner, sql, p2 ? 4 : 3, NULL, params, NULL, NULL, 0);
    free(xids);
    free(ids);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        log_warn("realtime: reading changes failed: %s", PQerrorMessage(feed.owner));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Delivers the changes of transactions that finished after an older one that
 * is still open. Returns false when the owner connection failed. */
static bool feed_poll_early(const char *sv)
{
    if (feed.nearly >= FEED_MAX_EARLY)
        return true; /* too many: the main read delivers them once xmin moves */
    /* "xmin:xmax:" — nothing running: the main read has it all */
    char *snap = *sv && sv[strlen(sv) - 1] != ':' ? strdup(sv) : NULL;
    if (!snap)
        return true;
    bool ok = true;
    while (early_reserve(FEED_BATCH)) {
        PGresult *r = feed_read(early_sql, snap, NULL);
        if (!r) {
            ok = PQstatus(feed.owner) == CONNECTION_OK;
            break;
        }
        int n = PQntuples(r);
        if (n > 0) {
            deliver_rows(r, n);
            early_record(r, n);
        }
        PQclear(r);
        if (n < FEED_BATCH || feed.nearly >= FEED_MAX_EARLY)
            break;
    }
    free(snap);
    return ok;
}

/* Reads and delivers every finished change past the cursor. Returns false
 * when the owner connection failed. */
static bool feed_poll(void)
{
    for (;;) {
        char idbuf[24];
        snprintf(idbuf, sizeof(idbuf), "%lld", feed.cur_id);
        PGresult *r = feed_read(poll_sql, feed.cur_xid, idbuf);
        if (!r)
            return PQstatus(feed.owner) == CONNECTION_OK;
        int n = PQntuples(r);
        if (n == 0) { /* cannot happen: hi always gives a row */
            PQclear(r);
            return true;
        }
        bool ok = true;
        if (PQgetisnull(r, 0, 1)) {
            /* Nothing finished past the cursor: every xid below hi is done. */
            if (strlen(PQgetvalue(r, 0, 0)) < sizeof(feed.cur_xid)) {
                const char *hi = PQgetvalue(r, 0, 0);
                unsigned long long h = strtoull(hi, NULL, 10);
                unsigned long long cur = strtoull(feed.cur_xid, NULL, 10);
                if (h > cur) {
                    snprintf(feed.cur_xid, sizeof(feed.cur_xid), "%s", hi);
                    feed.cur_id = 0;
                    early_trim();
                }
            }
            ok = feed_poll_early(PQgetvalue(r, 0, 10));
            PQclear(r);
            return ok;
        }
        deliver_rows(r, n);
        snprintf(feed.cur_xid, sizeof(feed.cur_xid), "%s", PQgetvalue(r, n - 1, 1));
        feed.cur_id = strtoll(PQgetvalue(r, n - 1, 2), NULL, 10);
        early_trim();
        if (n < FEED_BATCH)
            ok = feed_poll_early(PQgetvalue(r, 0, 10)); /* next call moves the cursor up to hi */
        PQclear(r);
        if (n < FEED_BATCH)
            return ok;
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

static long long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds to wait before the next read: the reads start at most once per
 * REALTIME_FEED_WINDOW_MS, so that when commits wake the feed faster than that,
 * one read (and one visibility check per claims group) serves all of them. A
 * wake-up after a quiet spell reads at once. */
static int feed_wait_ms(long long last_read)
{
    long long left = last_read + feed.window_ms - mono_ms();
    return left > 0 ? (int)left : 0;
}

static void *feed_main(void *arg)
{
    (void)arg;
    time_t last_purge = time(NULL);
    int backoff_ms = 100;
    bool need_poll = true;
    long long last_read = 0;
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
        if (need_poll && feed_wait_ms(last_read) == 0) {
            need_poll = false;
            last_read = mono_ms();
            if (!feed_poll())
                continue;
            /* A NOTIFY that arrived while feed_poll read its results is already
             * in libpq's queue, not on the socket: poll() would not wake for it,
             * and its rows would wait for the idle poll. */
            PGnotify *q;
            while ((q = PQnotifies(feed.owner))) {
                need_poll = true;
                PQfreemem(q);
            }
            if (need_poll)
                continue;
        }
        /* Waited for: the window's end when a read is due, else the idle
         * poll (computed after the read: a read just made is not due again). */
        int wait_ms = need_poll ? feed_wait_ms(last_read) : FEED_IDLE_POLL_MS;
        struct pollfd p[2] = {{.fd = PQsocket(feed.owner), .events = POLLIN},
                              {.fd = feed.stop_fd, .events = POLLIN}};
        int r = poll(p, 2, wait_ms);
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

static void checks_free(void)
{
    for (size_t j = 0; j < FEED_MAX_CHECK_CONNS; j++) {
        db_conn_free(feed.check[j]);
        feed.check[j] = NULL;
    }
    feed.ncheck = 0;
}

bool changes_start(app_t *app, changes_deliver_fn fn, void *arg)
{
    CD_ASSERT(!feed.running); /* one change feed per process */
    feed.app = app;
    feed.deliver = fn;
    feed.arg = arg;
    feed.window_ms = app->cfg.realtime_feed_window_ms;
    feed.ncheck = (size_t)app->cfg.realtime_check_connections;
    if (feed.ncheck < 1 || feed.ncheck > FEED_MAX_CHECK_CONNS)
        feed.ncheck = 1;
    for (size_t j = 0; j < feed.ncheck; j++)
        if (!(feed.check[j] = db_conn_new())) {
            checks_free();
            return false;
        }
    feed.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (feed.stop_fd < 0) {
        checks_free();
        return false;
    }
    if (!feed_connect(true)) {
        checks_free();
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
        checks_free();
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
    checks_free();
    for (size_t i = 0; i < feed.ntables; i++)
        table_info_clear(&feed.tables[i]);
    feed.ntables = 0;
    free(feed.early);
    feed.early = NULL;
    feed.nearly = feed.capearly = 0;
    pthread_mutex_lock(&subs_lock);
    for (size_t i = 0; i < nsubs; i++)
        sub_free(subs[i]);
    free(subs);
    subs = NULL;
    nsubs = subs_cap = 0;
    pthread_mutex_unlock(&subs_lock);
}
