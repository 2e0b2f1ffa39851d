/*
 * Internals of the /rest/v1 module shared by its .c files (schema.c, sql.c, handlers.c,
 * openapi.c) and by the unit tests: the schema cache, the SQL builder and the error shape.
 * Nothing outside src/rest/ and tests/ includes this header; the module's public face is
 * rest.h.
 */
#ifndef CD_REST_INTERNAL_H
#define CD_REST_INTERNAL_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/common.h"
#include "rest/rest_parse.h"

/* Hard limits of the builder and the cache. */
#define REST_SCHEMA_ARENA_MAX (256u * 1024u * 1024u) /* one schema cache, everything included */
#define REST_SCHEMA_JSON_MAX  (128u * 1024u * 1024u) /* the catalog document */
#define REST_SQL_MAX_BYTES    (4u * 1024u * 1024u)   /* one generated statement */
#define REST_SQL_MAX_PARAMS   8192u                  /* $n parameters in one statement */
#define REST_ERR_HINT_MAX     512u
#define REST_ERR_DETAILS_MAX  2048u
#define REST_MAX_RELS_FOUND   16u /* candidate relationships reported for one embed */

/* ------------------------------------------------------------------------------------------
 * Errors, in PostgREST's shape. details_json: details holds raw JSON (PGRST201's array)
 * instead of a string. An empty details or hint is JSON null.
 */
typedef struct rest__err {
    int status;
    char code[16];
    char message[REST_ERROR_MESSAGE_MAX];
    char details[REST_ERR_DETAILS_MAX];
    char hint[REST_ERR_HINT_MAX];
    bool details_json;
} rest__err_t;

/* Fills err (every field; details and hint may be NULL). Returns false, so that callers can
 * write `return rest__fail(...)`. */
bool rest__fail(rest__err_t *err, int status, const char *code, const char *message,
                const char *details, const char *hint);

/* ------------------------------------------------------------------------------------------
 * The schema cache: what /rest/v1 may touch in the `public` schema. Built from the catalog in
 * one query, immutable afterwards, shared by reference count; everything lives in `arena`.
 */
typedef struct rest_col {
    const char *name;
    const char *type;         /* format_type(): "character varying(255)", "text[]", ... */
    const char *base_type;    /* the type name without modifiers, domains resolved: "varchar" */
    const char *default_expr; /* pg_get_expr() of the default (identity: nextval), or NULL */
    const char *description;  /* or NULL */
    const char **enum_values; /* labels of an enum column */
    size_t n_enum;
    int max_len;   /* character(n)/varchar(n) length, 0 when none */
    char category; /* pg_type.typcategory of the base type ('S', 'N', 'A', 'U', ...) */
    bool nullable;
    bool is_pk;
    bool is_json;     /* json or jsonb */
    bool is_tsvector; /* tsvector: fts filters use it directly */
    bool generated;   /* GENERATED ALWAYS (identity or stored): never written */
} rest_col_t;

typedef struct rest_colset {
    size_t *cols; /* indexes into the table's columns */
    size_t n;
} rest_colset_t;

typedef struct rest_table {
    const char *name;
    const char *description;
    char kind; /* pg_class.relkind: 'r', 'p', 'v', 'm', 'f' */
    bool is_view;
    bool insertable, updatable, deletable;
    rest_col_t *cols;
    size_t n_cols;
    rest_colset_t pk;       /* empty when the table has no primary key */
    rest_colset_t *uniques; /* primary key and unique constraints */
    size_t n_uniques;
} rest_table_t;

typedef struct rest_fk {
    const char *name;
    size_t from; /* table index (the referencing table) */
    size_t to;   /* table index (the referenced table) */
    size_t *from_cols, *to_cols;
    size_t n_cols;
} rest_fk_t;

typedef struct rest_arg {
    const char *name; /* "" for an unnamed parameter */
    const char *type; /* format_type() */
    bool has_default;
    bool variadic;
    bool is_json; /* json or jsonb */
} rest_arg_t;

enum rest_ret_kind { REST_RET_VOID = 1, REST_RET_SCALAR, REST_RET_COMPOSITE };

typedef struct rest_func {
    const char *name;
    const char *description;
    rest_arg_t *args; /* input parameters (IN, INOUT, VARIADIC), in order */
    size_t n_args;
    size_t n_required;
    bool returns_set;
    char volatility; /* 'v', 's' or 'i' */
    enum rest_ret_kind ret_kind;
    const char *ret_type; /* format_type() of the return type */
    rest_col_t *ret_cols; /* REST_RET_COMPOSITE: the row's columns */
    size_t n_ret_cols;
    ptrdiff_t ret_table; /* index of the public table whose row type is returned, or -1 */
} rest_func_t;

typedef struct rest_schema {
    atomic_int refs;
    cd_arena_t arena;
    uint64_t generation;  /* increases with every load */
    rest_table_t *tables; /* sorted by name */
    size_t n_tables;
    rest_fk_t *fks;
    size_t n_fks;
    rest_func_t *funcs; /* sorted by name; overloads are adjacent */
    size_t n_funcs;
    const char **types; /* type names accepted in casts, sorted */
    size_t n_types;
} rest_schema_t;

/* Builds a schema from the catalog document that rest__schema_catalog_sql() returns. On
 * failure returns NULL and writes a message into why. The result has one reference. */
rest_schema_t *rest__schema_from_json(const char *json, size_t len, char *why, size_t whylen);
/* The catalog query (one row, one text column: the document). */
const char *rest__schema_catalog_sql(void);
/* Reads the catalog over pg and builds a schema (NULL on failure, after logging why). */
rest_schema_t *rest__schema_load(PGconn *pg);
/* Takes / drops a reference. rest__schema_release(NULL) does nothing. */
rest_schema_t *rest__schema_acquire(void);
void rest__schema_release(rest_schema_t *s);
/* Installs s as the current cache (taking over its reference); the old one is released. */
void rest__schema_install(rest_schema_t *s);
/* On a cache miss for `name` (a table when is_function is false, else a function): asks
 * PostgreSQL over pg whether the object now exists and, if so, reloads the cache at once.
 * Returns a new reference to the (possibly new) cache, or NULL when nothing changed. */
rest_schema_t *rest__schema_refresh_for(PGconn *pg, const rest_schema_t *seen, const char *name,
                                        bool is_function);

/* The cache is stale (PostgreSQL says an object it lists is gone): reloads it over pg now
 * (unless someone already did since `seen`). Returns a new reference, or NULL. */
rest_schema_t *rest__schema_reload_now(PGconn *pg, const rest_schema_t *seen);
/* Lookups (NULL / 0 when absent). */
const rest_table_t *rest__schema_table(const rest_schema_t *s, const char *name);
const rest_col_t *rest__table_col(const rest_table_t *t, const char *name);
ptrdiff_t rest__table_col_index(const rest_table_t *t, const char *name);
/* The overloads of a function: returns the first and stores their number in *n. */
const rest_func_t *rest__schema_funcs(const rest_schema_t *s, const char *name, size_t *n);
bool rest__schema_has_type(const rest_schema_t *s, const char *name);
/* A hint "Perhaps you meant the table 'public.x'" for an unknown table, or "" . */
void rest__table_hint(const rest_schema_t *s, const char *name, char *out, size_t outlen);
/* Similarity of two names in [0, 1] (1 - edit distance / longer length). */
double rest__similarity(const char *a, const char *b);

/* ------------------------------------------------------------------------------------------
 * Relationships between tables, seen from an origin table, as PostgREST derives them from
 * foreign keys: many-to-one, one-to-many, one-to-one and many-to-many (junction tables).
 */
enum rest_card { REST_M2O = 1, REST_O2M, REST_O2O, REST_M2M };

typedef struct rest_rel {
    enum rest_card card;
    size_t origin, target; /* table indexes */
    const rest_fk_t *fk;   /* M2O/O2M/O2O: the foreign key */
    bool fk_from_origin;   /* the foreign key is on the origin table */
    const rest_fk_t *fk2;  /* M2M: fk = junction->origin, fk2 = junction->target */
    size_t junction;       /* M2M */
} rest_rel_t;

/* True when the relationship yields one object (M2O, O2O), false for an array. */
bool rest__rel_to_one(const rest_rel_t *r);
/* Resolves `target[!hint]` embedded from origin (PostgREST's findRel). Returns false with
 * PGRST200 (none) or PGRST201 (ambiguous) in err. */
CD_MUSTCHECK bool rest__find_rel(const rest_schema_t *s, size_t origin, const char *target,
                                 const char *hint, rest_rel_t *out, rest__err_t *err);

/* ------------------------------------------------------------------------------------------
 * The SQL builder: a checked request becomes one parameterised statement whose single row is
 *   total_result_set bigint | page_total bigint | body text | response_headers text |
 *   response_status text | location text
 * (REST_COL_* below). Every identifier comes from the schema cache and is quoted; every value
 * from the request is a $n parameter.
 */
enum rest_action {
    REST_ACT_READ = 1, /* GET/HEAD on a table or view */
    REST_ACT_INSERT,   /* POST */
    REST_ACT_UPDATE,   /* PATCH */
    REST_ACT_DELETE,   /* DELETE */
    REST_ACT_CALL      /* /rpc/fn */
};

enum rest_media {
    REST_MEDIA_JSON = 1, /* array */
    REST_MEDIA_SINGULAR, /* application/vnd.pgrst.object+json */
    REST_MEDIA_CSV
};

enum {
    REST_COL_TOTAL = 0,
    REST_COL_PAGE_TOTAL,
    REST_COL_BODY,
    REST_COL_RESP_HEADERS,
    REST_COL_RESP_STATUS,
    REST_COL_LOCATION,
};

typedef struct rest_request {
    enum rest_action action;
    const rest_schema_t *schema;
    const rest_table_t *table; /* READ and mutations */
    const rest_func_t *func;   /* CALL */
    const struct rest_query *query;
    const struct rest_prefer *prefer;
    enum rest_media media;
    bool strip_nulls; /* ...;nulls=stripped */
    bool head;        /* no body wanted (HEAD, or a mutation without return=representation) */
    /* the top-level window: offset >= 0; limit < 0 means none */
    int64_t offset;
    int64_t limit;
    /* mutations: the parsed body (borrowed) and its text, sent as $1 */
    const void *body_json; /* json_t * */
    const char *body_text;
    /* CALL: the arguments as a JSON object text (sent as a parameter), or the whole body for
     * a single json parameter; NULL for no arguments */
    const char *args_text;
    bool args_whole_body; /* pass args_text as the one unnamed json/jsonb argument */
    bool count_exact;     /* compute total_result_set exactly (count=exact/estimated) */
    int64_t count_cap;    /* > 0: count at most this many rows (count=estimated) */
} rest_request_t;

typedef struct rest_stmt {
    cd_buf_t sql;
    const char **params; /* arena-allocated; values point into the arena or the request */
    size_t n_params;
    size_t cap_params;
} rest_stmt_t;

/* Builds the main statement of req into out (which it initialises; SQL is in out->sql, the
 * caller frees it with cd_buf_free). Allocations other than the SQL text come from arena.
 * Returns false with err filled (400-class errors naming the problem). */
CD_MUSTCHECK bool rest__build(cd_arena_t *arena, const rest_request_t *req, rest_stmt_t *out,
                              rest__err_t *err);
/* Builds `EXPLAIN (FORMAT JSON) SELECT 1 FROM ... WHERE ...` for Prefer: count=planned. */
CD_MUSTCHECK bool rest__build_explain(cd_arena_t *arena, const rest_request_t *req,
                                      rest_stmt_t *out, rest__err_t *err);
/* Appends "name" with embedded quotes doubled. */
CD_MUSTCHECK bool rest__quote_ident(cd_buf_t *b, const char *name);

/* ------------------------------------------------------------------------------------------
 * OpenAPI 2.0 description of what the schema cache exposes. Returns malloc'd JSON text
 * (caller frees) or NULL when out of memory.
 */
char *rest__openapi(const rest_schema_t *s, const char *external_url);

/* Accept negotiation (handlers.c): what the answer of an endpoint will be. */
enum rest__accept {
    REST__ACCEPT_NONE, /* nothing in Accept can be produced: 406 */
    REST__ACCEPT_JSON,
    REST__ACCEPT_SINGULAR, /* application/vnd.pgrst.object+json */
    REST__ACCEPT_CSV,
    REST__ACCEPT_OPENAPI, /* the root's description */
};

/* Picks the first media type of the Accept header h (NULL or empty: JSON) that the endpoint
 * can produce: at the root (root) JSON types mean the OpenAPI description and object/CSV are
 * refused; elsewhere openapi+json is refused. *strip_nulls is set from a `nulls=stripped`
 * parameter of the chosen type. Parameters such as q= are ignored: order decides. */
enum rest__accept rest__parse_accept(const char *h, bool root, bool *strip_nulls);

#endif
