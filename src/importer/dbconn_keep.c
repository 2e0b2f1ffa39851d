/*
 * Idle source connections kept between database syncs: see dbconn_keep.h.
 * A plain table under one mutex: a handful of entries, looked at once per
 * sync.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "importer/dbconn_keep.h"

typedef struct keep_slot {
    void *conn; /* NULL: free */
    char source_id[40];
    imp_db_keep_key_t key;
    long long kept_ms;
} keep_slot_t;

static pthread_mutex_t keep_mu = PTHREAD_MUTEX_INITIALIZER;
static keep_slot_t keep_slots[IMP_DB_KEEP_SLOTS];

/* Appends "<length>:<value>;" so that no two targets give the same text. */
static size_t key_field(char *buf, size_t cap, size_t at, const char *v)
{
    if (at >= cap)
        return at;
    int n = snprintf(buf + at, cap - at, "%zu:%s;", strlen(v), v);
    return n < 0 ? cap : at + (size_t)n;
}

void imp_db_keep_key(const import_db_target_t *t, imp_db_keep_key_t out)
{
    char num[64];
    char buf[2048];
    size_t at = 0;
    at = key_field(buf, sizeof(buf), at, t->host);
    at = key_field(buf, sizeof(buf), at, t->address);
    at = key_field(buf, sizeof(buf), at, t->database);
    at = key_field(buf, sizeof(buf), at, t->user);
    at = key_field(buf, sizeof(buf), at, t->password);
    at = key_field(buf, sizeof(buf), at, t->sslmode);
    snprintf(num, sizeof(num), "%d/%ld/%ld", t->port, t->connect_timeout_s, t->statement_timeout_s);
    at = key_field(buf, sizeof(buf), at, num);
    cd_sha256_hex(buf, at < sizeof(buf) ? at : sizeof(buf) - 1, out);
    explicit_bzero(buf, sizeof(buf)); /* it held the password */
}

static void slot_close(keep_slot_t *s, void (*close_fn)(void *))
{
    if (s->conn && close_fn)
        close_fn(s->conn);
    memset(s, 0, sizeof(*s));
}

void *imp_db_keep_take(const char *source_id, const imp_db_keep_key_t key, long keep_s,
                       long long now_ms, void (*close_fn)(void *))
{
    void *found = NULL;
    pthread_mutex_lock(&keep_mu);
    for (size_t i = 0; i < IMP_DB_KEEP_SLOTS; i++) {
        keep_slot_t *s = &keep_slots[i];
        if (!s->conn)
            continue;
        bool expired = now_ms - s->kept_ms > keep_s * 1000 || now_ms < s->kept_ms;
        bool mine = strcmp(s->source_id, source_id) == 0;
        if (mine && !expired && !found && strcmp(s->key, key) == 0) {
            found = s->conn;
            s->conn = NULL;
            slot_close(s, NULL);
        } else if (expired || mine) {
            slot_close(s, close_fn); /* stale, or the source's target changed */
        }
    }
    pthread_mutex_unlock(&keep_mu);
    return found;
}

void imp_db_keep_put(const char *source_id, const imp_db_keep_key_t key, void *conn,
                     long long now_ms, void (*close_fn)(void *))
{
    pthread_mutex_lock(&keep_mu);
    keep_slot_t *use = NULL;
    for (size_t i = 0; i < IMP_DB_KEEP_SLOTS; i++) {
        keep_slot_t *s = &keep_slots[i];
        if (s->conn && strcmp(s->source_id, source_id) == 0)
            slot_close(s, close_fn); /* one kept connection per source */
        if (!s->conn && !use)
            use = s;
    }
    if (!use) { /* every slot taken: the oldest goes */
        use = &keep_slots[0];
        for (size_t i = 1; i < IMP_DB_KEEP_SLOTS; i++)
            if (keep_slots[i].kept_ms < use->kept_ms)
                use = &keep_slots[i];
        slot_close(use, close_fn);
    }
    use->conn = conn;
    snprintf(use->source_id, sizeof(use->source_id), "%s", source_id);
    memcpy(use->key, key, sizeof(use->key));
    use->kept_ms = now_ms;
    pthread_mutex_unlock(&keep_mu);
}

int imp_db_keep_clear(void (*close_fn)(void *))
{
    int n = 0;
    pthread_mutex_lock(&keep_mu);
    for (size_t i = 0; i < IMP_DB_KEEP_SLOTS; i++)
        if (keep_slots[i].conn) {
            slot_close(&keep_slots[i], close_fn);
            n++;
        }
    pthread_mutex_unlock(&keep_mu);
    return n;
}
