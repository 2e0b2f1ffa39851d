/*
 * postgres_changes: the change feed and its per-subscriber visibility check.
 * Captured tables append their changes to realtime.changes (migration
 * 000_platform_realtime.sql); a feed thread wakes on NOTIFY, reads finished
 * transactions in xid order, matches them against the channels' bindings and
 * filters, checks each candidate row under the subscriber's own role and JWT
 * claims (one query per distinct claims and table per batch, the queries of
 * all claims groups of a batch in one pipeline per checking connection:
 * REALTIME_CHECK_CONNECTIONS), and hands each batch's deliveries to the
 * realtime loop at once.
 */
#ifndef CD_REALTIME_CHANGES_H
#define CD_REALTIME_CHANGES_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "app.h"
#include "core/common.h"

#define CHANGES_EV_INSERT 1u
#define CHANGES_EV_UPDATE 2u
#define CHANGES_EV_DELETE 4u
#define CHANGES_EV_ALL    7u

/* Most values in an in.(...) filter, and the longest filter string. */
#define CHANGES_MAX_IN_VALUES 100
#define CHANGES_MAX_FILTER    1024
#define CHANGES_MAX_NAME      64

typedef enum {
    CHANGES_OP_EQ,
    CHANGES_OP_NEQ,
    CHANGES_OP_LT,
    CHANGES_OP_LTE,
    CHANGES_OP_GT,
    CHANGES_OP_GTE,
    CHANGES_OP_IN,
} changes_op_t;

/* One `column=op.value` filter as supabase-js sends it. */
typedef struct changes_filter {
    char column[CHANGES_MAX_NAME];
    changes_op_t op;
    char *value;   /* owned; NULL for in */
    char **values; /* owned; the in list */
    size_t nvalues;
} changes_filter_t;

/* One postgres_changes binding of a channel. */
typedef struct changes_binding {
    long id;                       /* echoed in the join reply and in ids */
    char schema[CHANGES_MAX_NAME]; /* "*" = any */
    char table[CHANGES_MAX_NAME];  /* "*" = any */
    unsigned events;               /* CHANGES_EV_* */
    bool has_filter;
    changes_filter_t filter;
} changes_binding_t;

/* A change ready to send: the payload's "data" object as JSON text, shared by
 * every delivery of the same event (reference counted). */
typedef struct changes_data {
    atomic_int refs;
    size_t len;
    char text[]; /* NUL-terminated */
} changes_data_t;

void changes_data_ref(changes_data_t *d);
void changes_data_unref(changes_data_t *d);

/* One delivery of a batch: event ev (an index into the batch's data) goes to
 * channel chan_id with the binding ids at ids_off in the batch's ids text. */
typedef struct changes_delivery {
    uint64_t chan_id;
    uint32_t ids_off;
    uint32_t ev;
} changes_delivery_t;

/* What one batch of changes delivers, handed to the realtime loop at once (one
 * allocation and one hand-off per batch, not per delivery). Deliveries to the
 * same channel are in commit order. */
typedef struct changes_batch {
    changes_data_t **data; /* [ndata], one reference each (NULL: not sent) */
    size_t ndata;
    char *ids; /* NUL-terminated JSON arrays of binding ids, e.g. "[1,2]" */
    size_t ids_len, ids_cap;
    changes_delivery_t *d;
    size_t n, cap;
} changes_batch_t;

/* Frees a batch and drops its references to the events' data. */
void changes_batch_free(changes_batch_t *b);

/* Called on the feed thread once per batch with something to deliver; the
 * callee owns b (changes_batch_free when done). */
typedef void (*changes_deliver_fn)(void *arg, changes_batch_t *b);

/* Parses a filter ("col=op.value"; ops eq neq lt lte gt gte in). On failure
 * returns false with a static reason in *why; out holds nothing to free. */
CD_MUSTCHECK bool changes_filter_parse(const char *s, changes_filter_t *out, const char **why);
void changes_filter_free(changes_filter_t *f);
/* Whether a record (JSON object of column values) passes the filter. A
 * missing column or a null value never matches; numbers compare numerically,
 * other values as text. */
bool changes_filter_match(const changes_filter_t *f, const json_t *record);
/* Parses an event name (*, INSERT, UPDATE, DELETE; case-insensitive) into
 * CHANGES_EV_* bits; 0 when unknown. */
unsigned changes_event_mask(const char *event);

/* Starts the feed thread: applies REALTIME_TABLES, listens, and delivers
 * through fn(arg, ...). Returns false (and logs why) if the database cannot
 * be set up. */
CD_MUSTCHECK bool changes_start(app_t *app, changes_deliver_fn fn, void *arg);
/* Stops the feed thread and drops every subscription. */
void changes_stop(void);

/* Registers a channel's bindings (copied; filters are moved out of binds,
 * which are left without filters) with the subscriber's role and claims.
 * Returns false when out of memory. */
CD_MUSTCHECK bool changes_subscribe(uint64_t chan_id, const char *role, const char *claims_json,
                                    changes_binding_t *binds, size_t nbinds);
/* Replaces the role and claims of a subscribed channel (access_token). */
void changes_set_claims(uint64_t chan_id, const char *role, const char *claims_json);
/* Forgets a channel's bindings (no-op if it had none). */
void changes_unsubscribe(uint64_t chan_id);

#endif
