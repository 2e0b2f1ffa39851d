/*
 * The realtime server: the WebSocket upgrade on /realtime/v1/websocket and
 * one event loop (epoll) that owns every upgraded socket and all channel
 * state, so channels, topics and presence need no locks. Other threads talk
 * to the loop through one inbox (new connections from the HTTP workers,
 * postgres_changes deliveries from the feed) and an eventfd.
 *
 * Protocol as realtime-js expects it (see docs/realtime.md): heartbeat on
 * topic "phoenix", phx_join / phx_leave / access_token, broadcast (self, ack),
 * presence (track/untrack, presence_state, presence_diff) and
 * postgres_changes with the bindings echoed in order with ids.
 */
#include "realtime/realtime.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/crypto.h"
#include "core/jwt.h"
#include "core/log.h"
#include "core/text.h"
#include "realtime/changes.h"
#include "realtime/phoenix.h"
#include "realtime/ws.h"

#define RT_BUCKETS        4096
#define RT_IDLE_TIMEOUT_S 60 /* no frame at all (not even a heartbeat) for this long: close */
#define RT_MAX_BINDINGS   100
#define RT_MAX_FRAME_OUT  (8u << 20)
#define RT_JWT_SKEW       30
#define RT_CLOSE_GRACE_S  5 /* a closing connection is freed after this, sent or not */

typedef struct rt_conn rt_conn_t;
typedef struct rt_topic rt_topic_t;

typedef struct rt_chan {
    uint64_t id;
    rt_conn_t *conn;
    rt_topic_t *topic;
    char *join_ref;
    bool bc_self, bc_ack;
    char presence_key[PHX_MAX_FIELD + 1];
    json_t *presence_meta; /* what this channel tracks, or NULL */
    char presence_ref[32];
    char role[16];
    char *claims_json;
    long long exp;
    bool has_changes;
    struct rt_chan *next_in_conn;
    struct rt_chan *next_in_topic;
    struct rt_chan *next_by_id;
} rt_chan_t;

struct rt_topic {
    char name[PHX_MAX_FIELD + 1];
    rt_chan_t *chans;
    size_t npresence; /* channels of the topic that track a presence */
    rt_topic_t *next;
};

struct rt_conn {
    uint64_t id;
    int fd;
    struct MHD_UpgradeResponseHandle *urh;
    ws_conn_t *ws;
    uint8_t *extra;
    size_t extra_len;
    phx_vsn_t vsn;
    char *apikey;
    rt_chan_t *chans;
    size_t nchans;
    size_t npresence; /* channels of the connection that track a presence */
    time_t last_rx;
    time_t close_started; /* when closing began (valid when closing) */
    uint32_t events;      /* epoll interest */
    bool dirty;           /* has queued output */
    bool closing;
    rt_conn_t *next, *prev;
    rt_conn_t *next_dirty;
};

/* Inbox items from other threads. */
typedef struct rt_item {
    enum { RT_ITEM_CONN, RT_ITEM_CHANGES } kind;
    rt_conn_t *conn;
    changes_batch_t *batch; /* RT_ITEM_CHANGES: one batch's deliveries */
    struct rt_item *next;
} rt_item_t;

static struct {
    app_t *app;
    bool started;
    pthread_t thread;
    int epfd;
    int wake_fd;
    atomic_bool stop;
    pthread_mutex_t inbox_lock;
    rt_item_t *inbox_head, *inbox_tail;
    /* loop-thread state */
    rt_conn_t *conns;
    rt_conn_t *dirty;
    rt_topic_t *topics[RT_BUCKETS];
    rt_chan_t *chans_by_id[RT_BUCKETS];
    uint64_t next_conn_id, next_chan_id;
    long next_binding_id;
    uint64_t presence_counter;
} rt = {.inbox_lock = PTHREAD_MUTEX_INITIALIZER};

/* ------------------------------------------------------------ helpers */

static unsigned str_hash(const char *s)
{
    unsigned h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static void mark_dirty(rt_conn_t *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->next_dirty = rt.dirty;
        rt.dirty = c;
    }
}

/* Sends a text message built from parts to one connection. */
static void send_msg(rt_conn_t *c, const char *join_ref, const char *ref, const char *topic,
                     const char *event, const char *payload_json)
{
    size_t len;
    char *f = phx_encode(c->vsn, join_ref, ref, topic, event, payload_json, RT_MAX_FRAME_OUT, &len);
    if (!f) {
        log_warn("realtime: message on %s too large to send", topic);
        return;
    }
    /* On failure the connection is closing (maybe a 1008 queued): flush it. */
    if (!ws_conn_send(c->ws, false, f, len))
        log_debug("realtime: message to closing connection %llu dropped",
                  (unsigned long long)c->id);
    mark_dirty(c);
    free(f);
}

static void send_json(rt_conn_t *c, const char *join_ref, const char *ref, const char *topic,
                      const char *event, json_t *payload /* stolen */)
{
    char *txt = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
    json_decref(payload);
    if (txt)
        send_msg(c, join_ref, ref, topic, event, txt);
    free(txt);
}

static void reply(rt_conn_t *c, const phx_msg_t *m, const char *status, json_t *response)
{
    if (!response)
        response = json_object();
    send_json(c, m->join_ref, m->ref, m->topic, "phx_reply",
              json_pack("{s:s, s:o}", "status", status, "response", response));
}

static void reply_error(rt_conn_t *c, const phx_msg_t *m, const char *reason)
{
    reply(c, m, "error", json_pack("{s:s}", "reason", reason));
}

/* ------------------------------------------------------------ topics */

static rt_topic_t *topic_get(const char *name, bool create)
{
    unsigned b = str_hash(name) % RT_BUCKETS;
    for (rt_topic_t *t = rt.topics[b]; t; t = t->next)
        if (strcmp(t->name, name) == 0)
            return t;
    if (!create)
        return NULL;
    rt_topic_t *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    snprintf(t->name, sizeof(t->name), "%s", name);
    t->next = rt.topics[b];
    rt.topics[b] = t;
    return t;
}

static void topic_drop_if_empty(rt_topic_t *t)
{
    if (t->chans)
        return;
    unsigned b = str_hash(t->name) % RT_BUCKETS;
    for (rt_topic_t **p = &rt.topics[b]; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            free(t);
            return;
        }
    }
}

static rt_chan_t *chan_by_id(uint64_t id)
{
    for (rt_chan_t *ch = rt.chans_by_id[id % RT_BUCKETS]; ch; ch = ch->next_by_id)
        if (ch->id == id)
            return ch;
    return NULL;
}

static rt_chan_t *conn_chan(rt_conn_t *c, const char *topic)
{
    for (rt_chan_t *ch = c->chans; ch; ch = ch->next_in_conn)
        if (strcmp(ch->topic->name, topic) == 0)
            return ch;
    return NULL;
}

/* ------------------------------------------------------------ presence */

/* One meta of a presence: {"phx_ref":..., ...what the channel tracks}. */
static json_t *presence_entry(const rt_chan_t *ch, const char *unused)
{
    (void)unused;
    json_t *meta = json_deep_copy(ch->presence_meta);
    if (!meta)
        return NULL;
    json_object_set_new(meta, "phx_ref", json_string(ch->presence_ref));
    return meta;
}

static void add_meta(json_t *map, const char *key, json_t *meta /* stolen */)
{
    json_t *e = json_object_get(map, key);
    if (!e) {
        e = json_pack("{s:[]}", "metas");
        json_object_set_new(map, key, e);
    }
    json_array_append_new(json_object_get(e, "metas"), meta);
}

static void presence_broadcast_diff(rt_topic_t *t, json_t *joins, json_t *leaves)
{
    json_t *diff = json_pack("{s:o, s:o}", "joins", joins, "leaves", leaves);
    char *txt = diff ? json_dumps(diff, JSON_COMPACT) : NULL;
    json_decref(diff);
    if (!txt)
        return;
    for (rt_chan_t *o = t->chans; o; o = o->next_in_topic)
        send_msg(o->conn, o->join_ref, NULL, t->name, "presence_diff", txt);
    free(txt);
}

/* Tracks meta for ch, within the presence caps (REALTIME_MAX_PRESENCE_*): a
 * presence is kept in memory and copied into every join's presence_state and
 * every diff, so an over-limit track is refused, not stored. Returns NULL, or
 * why it was refused (into why). */
static const char *presence_track(rt_chan_t *ch, json_t *meta, char *why, size_t whylen)
{
    const config_t *cfg = &rt.app->cfg;
    json_t *copy = json_is_object(meta) ? json_deep_copy(meta) : json_object();
    char *text = copy ? json_dumps(copy, JSON_COMPACT) : NULL;
    size_t size = text ? strlen(text) : SIZE_MAX;
    free(text);
    if (size > (size_t)cfg->realtime_max_presence_bytes) {
        json_decref(copy);
        snprintf(why, whylen,
                 "presence payload is larger than REALTIME_MAX_PRESENCE_BYTES (%ld bytes)",
                 cfg->realtime_max_presence_bytes);
        return why;
    }
    if (!ch->presence_meta && ch->conn->npresence >= (size_t)cfg->realtime_max_presence_per_conn) {
        json_decref(copy);
        snprintf(why, whylen,
                 "too many presences per connection (REALTIME_MAX_PRESENCE_PER_CONNECTION is %ld)",
                 cfg->realtime_max_presence_per_conn);
        return why;
    }
    if (!ch->presence_meta &&
        ch->topic->npresence >= (size_t)cfg->realtime_max_presence_per_topic) {
        json_decref(copy);
        snprintf(why, whylen,
                 "too many presences per topic (REALTIME_MAX_PRESENCE_PER_TOPIC is %ld)",
                 cfg->realtime_max_presence_per_topic);
        return why;
    }
    if (!ch->presence_meta) {
        ch->conn->npresence++;
        ch->topic->npresence++;
    }
    if (ch->presence_meta) {
        /* A re-track is sent as a leave, then a join: realtime-js strips
         * phx_ref from the current metas in its join callback, so a diff that
         * joins and leaves the same key at once would leave the old meta. */
        json_t *none = json_object(), *leaves = json_object();
        add_meta(leaves, ch->presence_key, presence_entry(ch, NULL));
        presence_broadcast_diff(ch->topic, none, leaves);
        json_decref(ch->presence_meta);
    }
    json_t *joins = json_object(), *leaves = json_object();
    ch->presence_meta = copy;
    snprintf(ch->presence_ref, sizeof(ch->presence_ref), "F%llx",
             (unsigned long long)++rt.presence_counter);
    add_meta(joins, ch->presence_key, presence_entry(ch, NULL));
    presence_broadcast_diff(ch->topic, joins, leaves);
    return NULL;
}

/* ch no longer tracks a presence: the caps count one less. */
static void presence_forget(rt_chan_t *ch)
{
    json_decref(ch->presence_meta);
    ch->presence_meta = NULL;
    ch->conn->npresence--;
    ch->topic->npresence--;
}

static void presence_untrack(rt_chan_t *ch)
{
    if (!ch->presence_meta)
        return;
    json_t *joins = json_object(), *leaves = json_object();
    add_meta(leaves, ch->presence_key, presence_entry(ch, NULL));
    presence_forget(ch);
    presence_broadcast_diff(ch->topic, joins, leaves);
}

static void presence_send_state(rt_chan_t *ch)
{
    json_t *state = json_object();
    for (rt_chan_t *o = ch->topic->chans; o; o = o->next_in_topic)
        if (o->presence_meta)
            add_meta(state, o->presence_key, presence_entry(o, NULL));
    send_json(ch->conn, ch->join_ref, NULL, ch->topic->name, "presence_state", state);
}

/* ------------------------------------------------------------ channels */

/* Removes a channel; with notify, sends phx_close to its client first. */
static void chan_remove(rt_chan_t *ch, bool notify)
{
    rt_conn_t *c = ch->conn;
    rt_topic_t *t = ch->topic;
    if (ch->has_changes)
        changes_unsubscribe(ch->id);
    if (notify)
        send_msg(c, ch->join_ref, ch->join_ref, t->name, "phx_close", "{}");
    /* unlink first so the leave diff goes to the others only */
    for (rt_chan_t **p = &t->chans; *p; p = &(*p)->next_in_topic)
        if (*p == ch) {
            *p = ch->next_in_topic;
            break;
        }
    if (ch->presence_meta) {
        json_t *joins = json_object(), *leaves = json_object();
        add_meta(leaves, ch->presence_key, presence_entry(ch, NULL));
        presence_broadcast_diff(t, joins, leaves);
        presence_forget(ch);
    }
    for (rt_chan_t **p = &c->chans; *p; p = &(*p)->next_in_conn)
        if (*p == ch) {
            *p = ch->next_in_conn;
            CD_ASSERT(c->nchans > 0);
            c->nchans--;
            break;
        }
    for (rt_chan_t **p = &rt.chans_by_id[ch->id % RT_BUCKETS]; *p; p = &(*p)->next_by_id)
        if (*p == ch) {
            *p = ch->next_by_id;
            break;
        }
    topic_drop_if_empty(t);
    free(ch->join_ref);
    free(ch->claims_json);
    free(ch);
}

/* Sends a system error on the channel, then closes it (expired or bad token). */
static void chan_fail(rt_chan_t *ch, const char *message)
{
    char name[PHX_MAX_FIELD + 1];
    snprintf(name, sizeof(name), "%s", ch->topic->name);
    send_json(ch->conn, ch->join_ref, NULL, name, "system",
              json_pack("{s:s, s:s, s:s, s:s}", "extension", "system", "status", "error", "message",
                        message, "channel", name + strlen("realtime:")));
    chan_remove(ch, true);
}

typedef struct verified {
    char role[16];
    char *claims_json;
    long long exp;
} verified_t;

/* Verifies a token for a channel; on failure *why says why (static text). */
static bool verify_token(const char *token, verified_t *out, const char **why)
{
    json_t *claims = NULL;
    memset(out, 0, sizeof(*out));
    jwt_status_t st = jwt_verify(token, rt.app->jwt_secret, rt.app->jwt_secret_len,
                                 (long long)time(NULL), RT_JWT_SKEW, &claims);
    switch (st) {
    case JWT_OK:
        break;
    case JWT_ERR_EXPIRED:
        *why = "Token has expired 0 seconds ago";
        return false;
    case JWT_ERR_ROLE:
        *why = "Fields `role` and `exp` are required in JWT";
        return false;
    default:
        *why = "The token provided is not a valid JWT";
        return false;
    }
    snprintf(out->role, sizeof(out->role), "%s",
             json_string_value(json_object_get(claims, "role")));
    out->exp = json_integer_value(json_object_get(claims, "exp"));
    out->claims_json = json_dumps(claims, JSON_COMPACT);
    json_decref(claims);
    if (!out->claims_json) {
        *why = "out of memory";
        return false;
    }
    return true;
}

/* The token a push carries, or the socket's apikey. sb_ keys are ignored as
 * Supabase does. */
static const char *pick_token(rt_conn_t *c, const json_t *payload)
{
    const char *t = json_string_value(json_object_get(payload, "access_token"));
    if (t && *t && strncmp(t, "sb_", 3) != 0)
        return t;
    return c->apikey;
}

static void free_bindings(changes_binding_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        changes_filter_free(&b[i].filter);
    free(b);
}

/* Reads config.postgres_changes; fills binds and the echo array (with ids). */
static bool parse_bindings(const json_t *arr, changes_binding_t **out, size_t *nout, json_t **echo,
                           const char **why)
{
    *out = NULL;
    *nout = 0;
    *echo = json_array();
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (arr && !json_is_null(arr) && !json_is_array(arr)) {
        *why = "postgres_changes must be an array";
        return false;
    }
    if (n > RT_MAX_BINDINGS) {
        *why = "too many postgres_changes bindings";
        return false;
    }
    changes_binding_t *b = calloc(n ? n : 1, sizeof(*b));
    if (!b || !*echo) {
        free(b);
        *why = "out of memory";
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        const char *ev, *schema, *table, *filter;
        cd_json_strings(o, "event", &ev, "schema", &schema, "table", &table, "filter", &filter,
                        NULL);
        if (!json_is_object(o) || !(b[i].events = changes_event_mask(ev))) {
            *why = "Error parsing postgres_changes: event must be *, INSERT, UPDATE or DELETE";
            goto fail;
        }
        if ((schema && strlen(schema) >= CHANGES_MAX_NAME) ||
            (table && strlen(table) >= CHANGES_MAX_NAME)) {
            *why = "Error parsing postgres_changes: schema or table name too long";
            goto fail;
        }
        snprintf(b[i].schema, sizeof(b[i].schema), "%s", schema && *schema ? schema : "public");
        snprintf(b[i].table, sizeof(b[i].table), "%s", table && *table ? table : "*");
        if (filter && *filter) {
            if (!changes_filter_parse(filter, &b[i].filter, why)) {
                static char msg[160];
                snprintf(msg, sizeof(msg), "Error parsing `filter` params: %s", *why);
                *why = msg; /* loop thread only */
                goto fail;
            }
            b[i].has_filter = true;
        }
        b[i].id = ++rt.next_binding_id;
        json_t *e = json_deep_copy(o);
        json_object_set_new(e, "id", json_integer(b[i].id));
        json_array_append_new(*echo, e);
        *nout = i + 1;
    }
    *out = b;
    *nout = n;
    return true;
fail:
    free_bindings(b, n);
    *nout = 0;
    json_decref(*echo);
    *echo = NULL;
    return false;
}

/* Applies a join's config to a new channel: broadcast self/ack and the presence key (the
 * client's, or a random UUID as Realtime picks). Returns whether presence is enabled. */
static bool chan_configure(rt_chan_t *ch, const json_t *config)
{
    json_t *bc = json_object_get(config, "broadcast");
    ch->bc_self = json_is_true(json_object_get(bc, "self"));
    ch->bc_ack = json_is_true(json_object_get(bc, "ack"));
    json_t *pr = json_object_get(config, "presence");
    const char *pkey = json_string_value(json_object_get(pr, "key"));
    char uuid[CD_UUID_LEN + 1];
    if (pkey && *pkey && strlen(pkey) <= PHX_MAX_FIELD)
        snprintf(ch->presence_key, sizeof(ch->presence_key), "%s", pkey);
    else if (cd_random_uuid(uuid))
        snprintf(ch->presence_key, sizeof(ch->presence_key), "%s", uuid);
    else /* no randomness (RAND_bytes failed): a fixed version-4 UUID, as before */
        snprintf(ch->presence_key, sizeof(ch->presence_key), "%s",
                 "00000000-0000-4000-8000-000000000000");
    return json_is_true(json_object_get(pr, "enabled"));
}

/* Links a joined channel into its connection, its topic and the id index. */
static void chan_link(rt_conn_t *c, rt_chan_t *ch, rt_topic_t *t)
{
    ch->next_in_conn = c->chans;
    c->chans = ch;
    c->nchans++;
    CD_ASSERT(c->nchans <= (size_t)rt.app->cfg.realtime_max_channels);
    ch->next_in_topic = t->chans;
    t->chans = ch;
    ch->next_by_id = rt.chans_by_id[ch->id % RT_BUCKETS];
    rt.chans_by_id[ch->id % RT_BUCKETS] = ch;
}

static void handle_join(rt_conn_t *c, phx_msg_t *m)
{
    if (strncmp(m->topic, "realtime:", 9) != 0 || m->topic[9] == '\0') {
        reply_error(c, m, "You must provide a topic name");
        return;
    }
    rt_chan_t *old = conn_chan(c, m->topic);
    if (old)
        chan_remove(old, true); /* a rejoin replaces the previous join */
    if (c->nchans >= (size_t)rt.app->cfg.realtime_max_channels) {
        reply_error(c, m, "ChannelRateLimitReached: Too many channels");
        return;
    }
    json_t *config = json_object_get(m->payload, "config");
    if (json_is_true(json_object_get(config, "private"))) {
        reply_error(c, m, "Unauthorized: private channels are not supported by this server");
        return;
    }
    const char *why = NULL;
    verified_t v;
    if (!verify_token(pick_token(c, m->payload), &v, &why)) {
        reply_error(c, m, why);
        return;
    }
    changes_binding_t *binds = NULL;
    size_t nbinds = 0;
    json_t *echo = NULL;
    if (!parse_bindings(json_object_get(config, "postgres_changes"), &binds, &nbinds, &echo,
                        &why)) {
        free(v.claims_json);
        reply_error(c, m, why);
        return;
    }
    rt_chan_t *ch = calloc(1, sizeof(*ch));
    rt_topic_t *t = topic_get(m->topic, true);
    if (!ch || !t || !(ch->join_ref = strdup(m->join_ref ? m->join_ref : (m->ref ? m->ref : "")))) {
        free(ch);
        free(v.claims_json);
        free_bindings(binds, nbinds);
        json_decref(echo);
        reply_error(c, m, "out of memory");
        return;
    }
    ch->id = ++rt.next_chan_id;
    ch->conn = c;
    ch->topic = t;
    bool presence_enabled = chan_configure(ch, config);
    snprintf(ch->role, sizeof(ch->role), "%s", v.role);
    ch->claims_json = v.claims_json;
    ch->exp = v.exp;
    if (nbinds) {
        if (!changes_subscribe(ch->id, ch->role, ch->claims_json, binds, nbinds)) {
            free_bindings(binds, nbinds);
            json_decref(echo);
            free(ch->join_ref);
            free(ch->claims_json);
            free(ch);
            topic_drop_if_empty(t);
            reply_error(c, m, "out of memory");
            return;
        }
        ch->has_changes = true;
    }
    free_bindings(binds, nbinds);
    chan_link(c, ch, t);

    json_t *resp = json_object();
    if (json_array_size(echo))
        json_object_set(resp, "postgres_changes", echo);
    reply(c, m, "ok", resp);
    if (json_array_size(echo))
        send_json(c, ch->join_ref, NULL, m->topic, "system",
                  json_pack("{s:s, s:s, s:s, s:s}", "extension", "postgres_changes", "status", "ok",
                            "message", "Subscribed to PostgreSQL", "channel", m->topic + 9));
    json_decref(echo);
    if (presence_enabled)
        presence_send_state(ch);
}

static void handle_access_token(rt_conn_t *c, rt_chan_t *ch, phx_msg_t *m)
{
    const char *t = json_string_value(json_object_get(m->payload, "access_token"));
    if (!t || strncmp(t, "sb_", 3) == 0)
        return; /* nothing to change */
    const char *why = NULL;
    verified_t v;
    if (!verify_token(t, &v, &why)) {
        chan_fail(ch, why);
        return;
    }
    (void)c;
    snprintf(ch->role, sizeof(ch->role), "%s", v.role);
    free(ch->claims_json);
    ch->claims_json = v.claims_json;
    ch->exp = v.exp;
    if (ch->has_changes)
        changes_set_claims(ch->id, ch->role, ch->claims_json);
}

static void handle_broadcast(rt_conn_t *c, rt_chan_t *ch, phx_msg_t *m)
{
    const char *event = json_string_value(json_object_get(m->payload, "event"));
    if (!event || strlen(event) > PHX_MAX_FIELD) {
        if (ch->bc_ack && m->ref)
            reply_error(c, m, "broadcast needs an event name");
        return;
    }
    char *text = json_dumps(m->payload, JSON_COMPACT);
    /* Each subscriber's queue gets its own copy: the size is capped per message,
     * and an over-limit broadcast is answered with an error and sent to nobody. */
    size_t size = text ? strlen(text) : 0;
    if (m->binary && m->raw_len > size)
        size = m->raw_len;
    long max = rt.app->cfg.realtime_max_broadcast_bytes;
    if (size > (size_t)max) {
        free(text);
        if (m->ref) {
            char why[128];
            snprintf(why, sizeof(why),
                     "broadcast payload is larger than REALTIME_MAX_BROADCAST_BYTES (%ld bytes)",
                     max);
            reply_error(c, m, why);
        }
        return;
    }
    uint8_t *bin = NULL;
    size_t binlen = 0;
    if (m->binary)
        bin = phx_encode_user_broadcast(ch->topic->name, event, m->raw_is_json, m->raw, m->raw_len,
                                        &binlen);
    for (rt_chan_t *o = ch->topic->chans; o; o = o->next_in_topic) {
        if (o == ch && !ch->bc_self)
            continue;
        if (o->conn->vsn == PHX_VSN_2 && bin) {
            if (!ws_conn_send(o->conn->ws, true, bin, binlen))
                log_debug("realtime: broadcast to closing connection dropped");
            mark_dirty(o->conn);
        } else if (text && !(m->binary && !m->raw_is_json)) {
            send_msg(o->conn, NULL, NULL, ch->topic->name, "broadcast", text);
        }
    }
    free(text);
    free(bin);
    if (ch->bc_ack && m->ref)
        reply(c, m, "ok", NULL);
}

static void handle_presence(rt_conn_t *c, rt_chan_t *ch, phx_msg_t *m)
{
    const char *ev = json_string_value(json_object_get(m->payload, "event"));
    if (ev && strcmp(ev, "track") == 0) {
        char why[160];
        const char *refused =
            presence_track(ch, json_object_get(m->payload, "payload"), why, sizeof(why));
        if (refused)
            reply_error(c, m, refused);
        else
            reply(c, m, "ok", NULL);
    } else if (ev && strcmp(ev, "untrack") == 0) {
        presence_untrack(ch);
        reply(c, m, "ok", NULL);
    } else {
        reply_error(c, m, "presence event must be track or untrack");
    }
}

static void conn_begin_close(rt_conn_t *c, uint16_t code, const char *reason)
{
    if (!c->closing) {
        c->closing = true;
        c->close_started = time(NULL);
        ws_conn_close(c->ws, code, reason);
        mark_dirty(c);
    }
}

static void on_message(void *arg, bool binary, const uint8_t *data, size_t len)
{
    rt_conn_t *c = arg;
    c->last_rx = time(NULL);
    phx_msg_t m;
    const char *why = "bad message";
    bool ok = binary ? (c->vsn == PHX_VSN_2 && phx_decode_binary(data, len, &m, &why))
                     : phx_decode_text(c->vsn, (const char *)data, len, &m, &why);
    if (!ok) {
        log_info("realtime: closing connection %llu: %s", (unsigned long long)c->id, why);
        conn_begin_close(c, binary ? WS_CLOSE_PROTOCOL : WS_CLOSE_BAD_DATA, why);
        return;
    }
    if (strcmp(m.topic, "phoenix") == 0) {
        if (strcmp(m.event, "heartbeat") == 0)
            reply(c, &m, "ok", NULL);
        goto done;
    }
    if (strcmp(m.event, "phx_join") == 0) {
        handle_join(c, &m);
        goto done;
    }
    rt_chan_t *ch = conn_chan(c, m.topic);
    if (!ch) {
        if (m.ref && strcmp(m.event, "phx_leave") != 0)
            reply_error(c, &m, "unmatched topic");
        else if (m.ref)
            reply(c, &m, "ok", NULL);
        goto done;
    }
    if (strcmp(m.event, "phx_leave") == 0) {
        reply(c, &m, "ok", NULL);
        chan_remove(ch, true);
    } else if (strcmp(m.event, "access_token") == 0) {
        handle_access_token(c, ch, &m);
    } else if (strcmp(m.event, "broadcast") == 0) {
        handle_broadcast(c, ch, &m);
    } else if (strcmp(m.event, "presence") == 0) {
        handle_presence(c, ch, &m);
    }
    /* Unknown events are ignored, as Supabase does. */
done:
    phx_msg_free(&m);
}

/* ------------------------------------------------------------ connections */

static void conn_free(rt_conn_t *c)
{
    while (c->chans)
        chan_remove(c->chans, false);
    epoll_ctl(rt.epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (c->prev)
        c->prev->next = c->next;
    else
        rt.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    /* drop from the dirty list */
    for (rt_conn_t **p = &rt.dirty; *p; p = &(*p)->next_dirty)
        if (*p == c) {
            *p = c->next_dirty;
            break;
        }
    ws_conn_free(c->ws);
    http_upgrade_close(c->urh);
    free(c->extra);
    free(c->apikey);
    free(c);
}

/* The ws layer stopped reading (a close was sent or received, a protocol
 * error, a flood): the connection is closing from now on. */
static void conn_note_closing(rt_conn_t *c)
{
    if (!c->closing) {
        c->closing = true;
        c->close_started = time(NULL);
    }
}

static void conn_update_events(rt_conn_t *c)
{
    /* Once reads are shut down, EPOLLIN is dropped: with level-triggered
     * epoll an unread byte would wake the loop forever while nothing reads
     * it. RDHUP (and the always-reported HUP/ERR) still say the peer left. */
    uint32_t want = (ws_conn_want_read(c->ws) ? EPOLLIN : 0) | EPOLLRDHUP |
                    (ws_conn_want_write(c->ws) ? EPOLLOUT : 0);
    if (want != c->events) {
        struct epoll_event ev = {.events = want, .data.ptr = c};
        if (epoll_ctl(rt.epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
            c->events = want;
    }
}

/* Flushes a connection; frees it when finished. Returns false if freed. */
static bool conn_flush(rt_conn_t *c)
{
    c->dirty = false;
    if (!ws_conn_flush(c->ws)) {
        conn_free(c);
        return false;
    }
    conn_update_events(c);
    return true;
}

static void flush_dirty(void)
{
    while (rt.dirty) {
        rt_conn_t *c = rt.dirty;
        rt.dirty = c->next_dirty;
        c->next_dirty = NULL;
        c->dirty = false;
        (void)conn_flush(c);
    }
}

static void conn_add(rt_conn_t *c)
{
    c->id = ++rt.next_conn_id;
    c->last_rx = time(NULL);
    c->ws = ws_conn_new(c->fd, (size_t)rt.app->cfg.realtime_max_message_bytes, c->extra,
                        c->extra_len, on_message, c);
    int fl = fcntl(c->fd, F_GETFL);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
    if (!c->ws || fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        epoll_ctl(rt.epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
        log_warn("realtime: cannot take over connection: %s", strerror(errno));
        ws_conn_free(c->ws);
        http_upgrade_close(c->urh);
        free(c->extra);
        free(c->apikey);
        free(c);
        return;
    }
    c->events = ev.events;
    c->next = rt.conns;
    if (rt.conns)
        rt.conns->prev = c;
    rt.conns = c;
    /* Bytes that came with the HTTP head are processed now. */
    if (c->extra_len && !ws_conn_read(c->ws)) {
        conn_note_closing(c);
        mark_dirty(c);
    }
    if (ws_conn_want_write(c->ws))
        mark_dirty(c);
}

static void deliver_change(uint64_t chan_id, const char *ids, changes_data_t *data)
{
    rt_chan_t *ch = chan_by_id(chan_id);
    if (!ch)
        return;
    cd_buf_t p;
    cd_buf_init(&p, RT_MAX_FRAME_OUT);
    if (cd_buf_printf(&p, "{\"ids\":%s,\"data\":", ids) && cd_buf_add(&p, data->text, data->len) &&
        cd_buf_adds(&p, "}"))
        send_msg(ch->conn, NULL, NULL, ch->topic->name, "postgres_changes", cd_buf_str(&p));
    cd_buf_free(&p);
}

static void drain_inbox(void)
{
    uint64_t v;
    if (read(rt.wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("realtime: wake fd: %s", strerror(errno));
    pthread_mutex_lock(&rt.inbox_lock);
    rt_item_t *it = rt.inbox_head;
    rt.inbox_head = rt.inbox_tail = NULL;
    pthread_mutex_unlock(&rt.inbox_lock);
    while (it) {
        rt_item_t *next = it->next;
        if (it->kind == RT_ITEM_CONN) {
            conn_add(it->conn);
        } else {
            changes_batch_t *b = it->batch;
            for (size_t i = 0; i < b->n; i++) {
                const changes_delivery_t *d = &b->d[i];
                if (b->data[d->ev])
                    deliver_change(d->chan_id, b->ids + d->ids_off, b->data[d->ev]);
            }
            changes_batch_free(b);
        }
        free(it);
        it = next;
    }
}

static void push_item(rt_item_t *it)
{
    pthread_mutex_lock(&rt.inbox_lock);
    bool was_empty = rt.inbox_head == NULL;
    if (rt.inbox_tail)
        rt.inbox_tail->next = it;
    else
        rt.inbox_head = it;
    rt.inbox_tail = it;
    pthread_mutex_unlock(&rt.inbox_lock);
    if (was_empty) {
        uint64_t one = 1;
        if (write(rt.wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_warn("realtime: wake fd: %s", strerror(errno));
    }
}

/* Feed thread: queue one batch's deliveries for the loop (one hand-off per
 * batch, not per delivery). */
static void on_changes(void *arg, changes_batch_t *b)
{
    (void)arg;
    rt_item_t *it = calloc(1, sizeof(*it));
    if (!it) {
        log_error("realtime: out of memory; %zu deliveries dropped", b->n);
        changes_batch_free(b);
        return;
    }
    it->kind = RT_ITEM_CHANGES;
    it->batch = b;
    push_item(it);
}

/* Once a second: idle connections, expired tokens, and closing connections
 * whose peer neither reads the close frame nor goes away (freed after
 * RT_CLOSE_GRACE_S, so they cannot pin fds, queues and upgrade slots). Only
 * data messages count as activity: pings do not refresh last_rx (ws.c bounds
 * what they can cost). */
static void tick(void)
{
    time_t now = time(NULL);
    rt_conn_t *cnext;
    for (rt_conn_t *c = rt.conns; c; c = cnext) {
        cnext = c->next;
        if (c->closing) {
            if (now - c->close_started >= RT_CLOSE_GRACE_S) {
                log_info("realtime: connection %llu did not finish closing in %d s: dropped",
                         (unsigned long long)c->id, RT_CLOSE_GRACE_S);
                conn_free(c);
            }
            continue;
        }
        if (now - c->last_rx > RT_IDLE_TIMEOUT_S) {
            conn_begin_close(c, WS_CLOSE_NORMAL, "heartbeat timeout");
            continue;
        }
        rt_chan_t *ch = c->chans;
        while (ch) {
            rt_chan_t *next = ch->next_in_conn;
            if (ch->exp && (long long)now >= ch->exp)
                chan_fail(ch, "Token has expired 0 seconds ago");
            ch = next;
        }
    }
}

static void *loop_main(void *arg)
{
    (void)arg;
    /* A name operators (and the tests) can find in /proc/<pid>/task. */
    if (prctl(PR_SET_NAME, "cd-realtime", 0, 0, 0) != 0)
        log_debug("realtime: cannot name the loop thread");
    struct epoll_event evs[256];
    time_t last_tick = time(NULL);
    while (!atomic_load(&rt.stop)) {
        int n = epoll_wait(rt.epfd, evs, (int)CD_ARRAY_LEN(evs), 1000);
        if (n < 0 && errno != EINTR) {
            log_error("realtime: epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                drain_inbox();
                continue;
            }
            rt_conn_t *c = evs[i].data.ptr;
            /* c may have been freed by an earlier event of this batch only
             * through conn_free, which happens below for c itself. */
            if (c->closing && (evs[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                /* The peer left (or half-closed) while we close: nothing
                 * more can be said, and RDHUP would stay readable forever. */
                conn_free(c);
                continue;
            }
            if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                if (!ws_conn_read(c->ws)) {
                    conn_note_closing(c);
                    mark_dirty(c);
                }
            }
            if (evs[i].events & EPOLLOUT)
                mark_dirty(c);
            if (c->dirty) {
                /* unlink and flush now so a freed c is never touched again */
                for (rt_conn_t **p = &rt.dirty; *p; p = &(*p)->next_dirty)
                    if (*p == c) {
                        *p = c->next_dirty;
                        break;
                    }
                c->next_dirty = NULL;
                (void)conn_flush(c);
            }
        }
        flush_dirty();
        time_t now = time(NULL);
        if (now != last_tick) {
            last_tick = now;
            tick();
            flush_dirty();
        }
    }
    /* Shutting down: say goodbye, give the kernel the close frames, free. */
    for (rt_conn_t *c = rt.conns; c; c = c->next)
        conn_begin_close(c, WS_CLOSE_GOING_AWAY, "server shutting down");
    while (rt.dirty) {
        rt_conn_t *c = rt.dirty;
        rt.dirty = c->next_dirty;
        c->dirty = false;
        /* best effort: whatever the socket takes now; conn_free follows */
        if (ws_conn_want_write(c->ws) && !ws_conn_flush(c->ws))
            log_debug("realtime: connection %llu gone during shutdown", (unsigned long long)c->id);
    }
    while (rt.conns)
        conn_free(rt.conns);
    drain_inbox();
    while (rt.conns)
        conn_free(rt.conns);
    return NULL;
}

/* ------------------------------------------------------------ the route */

typedef struct rt_pending {
    phx_vsn_t vsn;
    char *apikey;
} rt_pending_t;

/* MHD worker thread, after the 101: hand the socket to the loop. */
static void on_upgraded(void *cls, int sock, const char *extra, size_t extra_len,
                        struct MHD_UpgradeResponseHandle *urh)
{
    rt_pending_t *p = cls;
    rt_conn_t *c = calloc(1, sizeof(*c));
    rt_item_t *it = calloc(1, sizeof(*it));
    if (!c || !it || (extra_len && !(c->extra = malloc(extra_len))) || atomic_load(&rt.stop)) {
        free(c ? c->extra : NULL);
        free(c);
        free(it);
        free(p->apikey);
        free(p);
        http_upgrade_close(urh);
        return;
    }
    if (extra_len)
        memcpy(c->extra, extra, extra_len);
    c->extra_len = extra_len;
    c->fd = sock;
    c->urh = urh;
    c->vsn = p->vsn;
    c->apikey = p->apikey;
    free(p);
    it->kind = RT_ITEM_CONN;
    it->conn = c;
    push_item(it);
}

static bool header_has_token(const char *v, const char *token)
{
    size_t tl = strlen(token);
    while (v && *v) {
        while (*v == ' ' || *v == ',' || *v == '\t')
            v++;
        size_t n = strcspn(v, ", \t");
        if (n == tl && strncasecmp(v, token, tl) == 0)
            return true;
        v += n;
    }
    return false;
}

static void reply_gateway_error(http_request_t *req, int status, const char *msg)
{
    http_reply_json(req, status, json_pack("{s:s}", "error", msg));
}

static void handle_websocket(http_request_t *req)
{
    if (!rt.started) {
        reply_gateway_error(req, 503, "Realtime is not running");
        return;
    }
    const char *up = http_header(req, "Upgrade");
    const char *key = http_header(req, "Sec-WebSocket-Key");
    const char *ver = http_header(req, "Sec-WebSocket-Version");
    char accept[WS_ACCEPT_LEN + 1];
    if (!up || strcasecmp(up, "websocket") != 0 ||
        !header_has_token(http_header(req, "Connection"), "upgrade")) {
        http_add_header(req, "Upgrade", "websocket");
        reply_gateway_error(req, 426, "This endpoint speaks WebSocket only");
        return;
    }
    if (!ver || strcmp(ver, "13") != 0) {
        http_add_header(req, "Sec-WebSocket-Version", "13");
        reply_gateway_error(req, 426, "Unsupported WebSocket version (13 required)");
        return;
    }
    if (!ws_accept_key(key, accept)) {
        reply_gateway_error(req, 400, "Bad Sec-WebSocket-Key");
        return;
    }
    const char *vsn_s = http_query_arg(req, "vsn");
    phx_vsn_t vsn;
    if (!vsn_s || strcmp(vsn_s, "1.0.0") == 0)
        vsn = PHX_VSN_1;
    else if (strcmp(vsn_s, "2.0.0") == 0)
        vsn = PHX_VSN_2;
    else {
        reply_gateway_error(req, 400, "Unsupported vsn (1.0.0 or 2.0.0)");
        return;
    }
    const char *apikey = http_query_arg(req, "apikey");
    if (!apikey)
        apikey = http_header(req, "x-api-key");
    if (!apikey)
        apikey = http_header(req, "apikey");
    if (!apikey || !*apikey) {
        reply_gateway_error(req, 401, "API key is missing");
        return;
    }
    verified_t v;
    const char *why = NULL;
    if (!verify_token(apikey, &v, &why)) {
        reply_gateway_error(req, 401, why);
        return;
    }
    free(v.claims_json);
    rt_pending_t *p = calloc(1, sizeof(*p));
    if (!p || !(p->apikey = strdup(apikey))) {
        free(p);
        reply_gateway_error(req, 500, "out of memory");
        return;
    }
    p->vsn = vsn;
    http_add_header(req, "Upgrade", "websocket");
    http_add_header(req, "Sec-WebSocket-Accept", accept);
    http_reply_upgrade(req, on_upgraded, p);
}

const http_route_t realtime_routes[] = {
    {"GET", "/realtime/v1/websocket", handle_websocket, false},
};
const size_t realtime_routes_len = CD_ARRAY_LEN(realtime_routes);

/* ------------------------------------------------------------ start/stop */

bool realtime_start(app_t *app)
{
    CD_ASSERT(!rt.started); /* a process singleton: started once, stopped once */
    rt.app = app;
    atomic_store(&rt.stop, false);
    rt.epfd = epoll_create1(EPOLL_CLOEXEC);
    rt.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (rt.epfd < 0 || rt.wake_fd < 0) {
        log_error("realtime: cannot create epoll/eventfd: %s", strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(rt.epfd, EPOLL_CTL_ADD, rt.wake_fd, &ev) != 0)
        goto fail;
    if (!changes_start(app, on_changes, NULL)) {
        log_error("realtime: the change feed could not start");
        goto fail;
    }
    if (pthread_create(&rt.thread, NULL, loop_main, NULL) != 0) {
        changes_stop();
        goto fail;
    }
    rt.started = true;
    return true;
fail:
    if (rt.epfd >= 0)
        close(rt.epfd);
    if (rt.wake_fd >= 0)
        close(rt.wake_fd);
    rt.epfd = rt.wake_fd = -1;
    return false;
}

void realtime_stop(void)
{
    if (!rt.started)
        return;
    changes_stop(); /* no deliveries after this */
    atomic_store(&rt.stop, true);
    uint64_t one = 1;
    if (write(rt.wake_fd, &one, sizeof(one)) < 0)
        log_warn("realtime: cannot wake the loop: %s", strerror(errno));
    pthread_join(rt.thread, NULL);
    rt.started = false;
    close(rt.epfd);
    close(rt.wake_fd);
    rt.epfd = rt.wake_fd = -1;
    for (size_t i = 0; i < RT_BUCKETS; i++) {
        while (rt.topics[i]) {
            rt_topic_t *t = rt.topics[i];
            rt.topics[i] = t->next;
            free(t);
        }
    }
}
