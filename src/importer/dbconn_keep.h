/*
 * Idle source connections kept between database syncs (issue 11, speed: an
 * incremental re-sync that follows soon reuses the source session instead of
 * a new one — a backend fork and a SCRAM exchange on the source, ~10 ms of
 * CPU on both ends on an idle machine, far more under load).
 *
 * A kept connection belongs to one data source and one connection target:
 * the key is a SHA-256 of host, checked address, port, database, user,
 * password, sslmode and timeouts (the password itself is not kept here).
 * Taking it for another key (the configuration or the credentials changed)
 * closes it; so does taking it after keep_s seconds. Slots are few
 * (IMP_DB_KEEP_SLOTS); a full table closes its oldest entry. Thread-safe.
 * The connections are opaque here; the driver hands in its close function.
 */
#ifndef CD_IMPORTER_DBCONN_KEEP_H
#define CD_IMPORTER_DBCONN_KEEP_H

#include <stdbool.h>

#include "core/crypto.h"
#include "importer/dbconn.h"

#define IMP_DB_KEEP_SLOTS 8

typedef char imp_db_keep_key_t[CD_SHA256_HEX_LEN + 1];

/* The key of a connection target (every field that selects the server, the
 * identity or the session's limits). */
void imp_db_keep_key(const import_db_target_t *t, imp_db_keep_key_t out);

/* The connection kept for source_id under key, kept at most keep_s seconds
 * before now_ms, or NULL. Entries of that source with another key, and every
 * expired entry, are closed with close_fn. */
void *imp_db_keep_take(const char *source_id, const imp_db_keep_key_t key, long keep_s,
                       long long now_ms, void (*close_fn)(void *));

/* Keeps conn (idle, no transaction) for source_id; an entry it replaces, or
 * the oldest when every slot is used, is closed with close_fn. */
void imp_db_keep_put(const char *source_id, const imp_db_keep_key_t key, void *conn,
                     long long now_ms, void (*close_fn)(void *));

/* Closes every kept connection (shutdown, tests); returns how many. */
int imp_db_keep_clear(void (*close_fn)(void *));

#endif
