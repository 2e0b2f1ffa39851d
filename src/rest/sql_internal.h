/*
 * The SQL builder's plan, shared by its two halves: sql_plan.c builds the tree of nodes
 * (PostgREST's Plan), sql.c walks it and writes the statement (PostgREST's Query).
 * Internal to rest/. Everything is allocated in the request's arena.
 */
#ifndef CD_REST_SQL_INTERNAL_H
#define CD_REST_SQL_INTERNAL_H

#include "rest/rest_internal.h"

/* An `rel=is.null` / `rel=not.is.null` test on an embedded child. */
struct rest__null_filter {
    struct rest__node *child;
    bool is_null;
};

struct rest__node {
    int id;                    /* aliases pgrst_t<id>, pgrst_l<id>, pgrst_s<id> */
    const rest_table_t *table; /* NULL for a function result without a table row type */
    const rest_col_t *cols;
    size_t n_cols;
    const char *label; /* table or function name, for messages */
    /* how it is embedded (children only) */
    const char *relation; /* the name used in select */
    const char *alias;    /* alias:relation, or NULL */
    rest_rel_t rel;
    bool to_one, inner, spread, empty;
    /* the select list at this node; all_columns: no select= (or a bare `*`) */
    const struct rest_select_item *items;
    size_t n_items;
    bool all_columns;
    /* what applies at this node */
    const struct rest_filter **filters;
    size_t n_filters, cap_filters;
    const struct rest_logic **logic;
    size_t n_logic, cap_logic;
    const struct rest_order **orders;
    size_t n_orders, cap_orders;
    const struct rest_range *range;
    struct rest__null_filter *nulls;
    size_t n_nulls, cap_nulls;
    struct rest__node **children;
    size_t n_children;
};

struct rest__sql {
    cd_arena_t *arena;
    const rest_request_t *req;
    const rest_schema_t *s;
    rest_stmt_t *st;
    cd_buf_t *b;
    rest__err_t *err;
    bool failed;   /* an error is in err */
    bool overflow; /* the statement grew past its limits */
    int next_id;
};

/* n bytes from the request's arena; on exhaustion records PGRST100 and returns NULL. */
void *rest__sql_alloc(struct rest__sql *c, size_t n);
/* Records the first error of the build (later ones are dropped); always returns false. */
bool rest__sql_fail(struct rest__sql *c, int status, const char *code, const char *message,
                    const char *details, const char *hint);
/* Appends item to an arena vector of pointers *vec (n used, cap allocated; grows by
 * doubling); false when the arena is full. */
bool rest__sql_push_ptr(struct rest__sql *c, void *vec, size_t *n, size_t *cap, const void *item);

/* A new, empty node with the next alias number; NULL when the arena is full. */
struct rest__node *rest__plan_new_node(struct rest__sql *c);
/* Points n at table t and its columns. */
void rest__plan_set_table(struct rest__node *n, const rest_table_t *t);
/* Plans the select items at node n: columns are checked, embeds become child nodes. */
bool rest__plan_items(struct rest__sql *c, struct rest__node *n,
                      const struct rest_select_item *items, size_t n_items);
/* The child of n embedded under name (its alias or relation name), or NULL. */
struct rest__node *rest__plan_find_child(const struct rest__node *n, const char *name);
/* Attaches every filter, logic tree, order and range of the request to its node (the root's
 * own ones only with with_root). */
bool rest__plan_attach_all(struct rest__sql *c, struct rest__node *root, bool with_root);
/* Plans the root's select list (every column when the request has no select=). */
bool rest__plan_root(struct rest__sql *c, struct rest__node *root);

/* ------------------------------------------------------------------------------------------
 * Emission (sql.c), used by the write statements of sql_write.c. Every append is checked;
 * the first failure sticks in c->overflow.
 */

enum rest__read_mode {
    REST__READ_FULL,  /* the select list */
    REST__READ_COUNT, /* SELECT 1, only the joins the WHERE needs, no ORDER/LIMIT */
};

struct rest__window {
    int64_t offset; /* 0: none */
    int64_t limit;  /* < 0: none */
};

/* Appends s to the statement. */
void rest__sql_out(struct rest__sql *c, const char *s);
/* Appends name as a quoted identifier. */
void rest__sql_ident(struct rest__sql *c, const char *name);
/* A SQL string literal of a name from the schema cache (never of request data). */
void rest__sql_literal_name(struct rest__sql *c, const char *name);
/* "public"."name" */
void rest__sql_qualified(struct rest__sql *c, const char *name);
/* Appends $n for value (kept by reference: it must outlive the statement). */
void rest__sql_param(struct rest__sql *c, const char *value);
/* Writes the node's own conditions (filters, logic, null tests on embeds, !inner), each
 * preceded by " AND " unless it is the first (*first tracks that). */
void rest__sql_conditions(struct rest__sql *c, const struct rest__node *n, const char *alias,
                          bool *first);
/* ORDER BY of the node's orders (nothing when it has none). */
void rest__sql_order(struct rest__sql *c, const struct rest__node *n, const char *alias);
/* LIMIT / OFFSET of w. */
void rest__sql_window(struct rest__sql *c, struct rest__window w);
/* SELECT <list> FROM <source> AS pgrst_t<id> [junction] [laterals] WHERE <join> AND <own
 * conditions> [ORDER BY] [LIMIT/OFFSET]. parent_alias: NULL at the root. */
void rest__sql_node_select(struct rest__sql *c, const struct rest__node *n, const char *source,
                           const char *parent_alias, enum rest__read_mode mode,
                           struct rest__window w);
/* Whether the request asked for return=representation. */
bool rest__sql_wants_representation(const rest_request_t *req);
/* The start and the shared columns of the outer SELECT of every statement. */
void rest__sql_outer_head(struct rest__sql *c);
void rest__sql_outer_tail(struct rest__sql *c, bool scalar, bool single_row, bool location);
/* The request's own offset and limit. */
struct rest__window rest__sql_top_window(const rest_request_t *req);

/* The write statements (sql_write.c). */
void rest__sql_build_mutation(struct rest__sql *c);
void rest__sql_build_call(struct rest__sql *c);

#endif
