/*
 * The PostgREST request grammar of /rest/v1, parsed into a typed syntax tree.
 *
 * Pure parsing: the raw query string, the Prefer headers and the Range header go in, an AST
 * comes out. There is no database here and no SQL: a later step checks every identifier
 * against the schema cache and turns the tree into parameterised SQL. Identifiers are only
 * checked for shape (not empty, at most 63 bytes); values are kept as strings, exactly as
 * received, to be sent later as query parameters.
 *
 * The grammar follows PostgREST's QueryParams.hs (v12/v13) and what postgrest-js sends.
 * Deliberate differences, all stricter or safer:
 *   - input that PostgREST silently ignores after a complete parse (`select=id)x`,
 *     `id=is.nullx`, `or=(a.eq.1)x`) is an error here;
 *   - an invalid %-escape, a %00, or bytes that are not UTF-8 are an error (PostgREST keeps
 *     the escape as it is); only `&` separates parameters (PostgREST also splits on `;`,
 *     which URLSearchParams always encodes);
 *   - `limit`/`offset` that are not integers are an error (PostgREST ignores them);
 *   - `!left`/`!inner` are join types only when the whole word matches (`!leftover` is a hint);
 *   - a syntax error is reported at the farthest position any alternative reached (Parsec
 *     sometimes reports an earlier one), with the same message shape.
 *
 * Memory: everything in the tree is allocated from the caller's arena and stays valid until
 * cd_arena_free(). Strings in the tree are NUL-terminated, valid UTF-8, without NUL bytes.
 */
#ifndef CD_REST_PARSE_H
#define CD_REST_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/arena.h"
#include "core/common.h"

/* Hard limits. Going past any of them is a clean 400 error. */
#define REST_MAX_QUERY_BYTES  16384u          /* raw query string */
#define REST_MAX_PARAMS       1024u           /* key=value pairs in one query string */
#define REST_MAX_FILTERS      256u            /* column filters, counting those inside or/and */
#define REST_MAX_DEPTH        16u             /* embed nesting, logic nesting, embed paths */
#define REST_MAX_SELECT_ITEMS 512u            /* select items, all levels together */
#define REST_MAX_ORDER_TERMS  256u            /* order terms, all order parameters together */
#define REST_MAX_COLUMNS      1600u           /* columns= / on_conflict= names (PostgreSQL's max) */
#define REST_MAX_NAME_BYTES   63u             /* NAMEDATALEN - 1 */
#define REST_MAX_JSON_STEPS   64u             /* arrows in one json path */
#define REST_MAX_PREFER_BYTES 8192u           /* all Prefer header values together */
#define REST_MAX_PREFER_ITEMS 64u             /* comma-separated preferences */
#define REST_ARENA_MAX_BYTES  (1024u * 1024u) /* default arena maximum per request */

/* ------------------------------------------------------------------------------------------
 * Errors, shaped like PostgREST's: {"code", "message", "details", "hint": null} (the hint is
 * always null for these errors). message and details are valid UTF-8, cut to fit.
 */
#define REST_ERROR_MESSAGE_MAX 640u
#define REST_ERROR_DETAILS_MAX 512u

struct rest_error {
    int http_status;                      /* 400, or 416 for range errors */
    char code[16];                        /* "PGRST100", "PGRST103", "PGRST122" */
    char message[REST_ERROR_MESSAGE_MAX]; /* e.g. "failed to parse filter (eq)" (line 1, ...) */
    char details[REST_ERROR_DETAILS_MAX]; /* e.g. unexpected "x" expecting ...; "" = null */
};

/* ------------------------------------------------------------------------------------------
 * Fields: a column name with an optional JSON path, `data->a->>b`.
 */
enum rest_json_arrow {
    REST_JSON_ARROW = 1, /* ->  (json result) */
    REST_JSON_ARROW2     /* ->> (text result) */
};

struct rest_json_step {
    enum rest_json_arrow arrow;
    bool is_index; /* true: key holds an array index, an optional '-' then digits ("-1");
                      the digits may be too many for an int: cast them as a parameter */
    char *key;     /* object key (may be empty), or the index digits */
};

struct rest_field {
    char *name; /* column name (or embed name in a filter on an embed) */
    struct rest_json_step *json;
    size_t n_json;
};

/* ------------------------------------------------------------------------------------------
 * select=
 */
enum rest_select_kind {
    REST_SELECT_STAR = 1, /* `*` (a quoted "*" is a column named *) */
    REST_SELECT_FIELD,    /* [alias:]col[->json][::cast][.agg()[::cast]], or count() */
    REST_SELECT_EMBED,    /* [alias:]rel[!hint][!inner|!left](children) */
    REST_SELECT_SPREAD    /* ...rel[!hint][!inner|!left](children) */
};

enum rest_join_type { REST_JOIN_DEFAULT = 0, REST_JOIN_LEFT, REST_JOIN_INNER };

/* The small closed lists of the grammar are each one table, X(enumerator, spelling, ...):
 * the enum below and the parser's (and SQL builder's) lookup tables are made from it, so a
 * value cannot be added to one and forgotten in another. */
#define REST_ENUMERATOR(name, ...) name,

/* Aggregates are parsed so the SQL layer can refuse them with PGRST123 (Supabase disables
 * db-aggregates-enabled). `count()` alone is REST_AGG_COUNT on the field "*".
 * X(enumerator, spelling after the `.`) */
#define REST_AGGREGATES(X)                                                                         \
    X(REST_AGG_COUNT, "count()")                                                                   \
    X(REST_AGG_SUM, "sum()")                                                                       \
    X(REST_AGG_AVG, "avg()")                                                                       \
    X(REST_AGG_MAX, "max()")                                                                       \
    X(REST_AGG_MIN, "min()")
enum rest_aggregate { REST_AGG_NONE = 0, REST_AGGREGATES(REST_ENUMERATOR) };

struct rest_select_item {
    enum rest_select_kind kind;
    char *alias; /* NULL when none (never set for STAR or SPREAD) */
    /* REST_SELECT_FIELD */
    struct rest_field field;
    char *cast; /* `::type` on the column, NULL when none */
    enum rest_aggregate aggregate;
    char *aggregate_cast; /* `::type` after the aggregate, NULL when none */
    /* REST_SELECT_EMBED and REST_SELECT_SPREAD */
    char *relation;
    char *hint; /* `!fk_name` or `!column`, NULL when none */
    enum rest_join_type join;
    struct rest_select_item *children; /* may be empty: `rel()` */
    size_t n_children;
};

/* ------------------------------------------------------------------------------------------
 * Filters: col=[not.]op[(modifier)].value
 */
enum rest_op {
    REST_OP_EQ = 1,
    REST_OP_NEQ,
    REST_OP_GT,
    REST_OP_GTE,
    REST_OP_LT,
    REST_OP_LTE,
    REST_OP_LIKE,   /* value raw: the SQL layer turns `*` into `%`, as PostgREST does */
    REST_OP_ILIKE,  /* same */
    REST_OP_MATCH,  /* ~  */
    REST_OP_IMATCH, /* ~* */
    REST_OP_IS,     /* is_value */
    REST_OP_ISDISTINCT,
    REST_OP_IN, /* list */
    REST_OP_CS,
    REST_OP_CD,
    REST_OP_OV,
    REST_OP_SL,
    REST_OP_SR,
    REST_OP_NXL,
    REST_OP_NXR,
    REST_OP_ADJ,
    REST_OP_FTS,   /* to_tsquery;          fts_config may be set */
    REST_OP_PLFTS, /* plainto_tsquery */
    REST_OP_PHFTS, /* phraseto_tsquery */
    REST_OP_WFTS   /* websearch_to_tsquery */
};

/* eq, gt, gte, lt, lte, like, ilike, match, imatch may carry (any)/(all): `like(any).{a,b}`. */
enum rest_quantifier { REST_QUANT_NONE = 0, REST_QUANT_ANY, REST_QUANT_ALL };

/* `is.` values. X(enumerator, word after `is.` (any case), SQL after the column) */
#define REST_IS_VALUES(X)                                                                          \
    X(REST_IS_NULL, "null", " IS NULL")                                                            \
    X(REST_IS_NOT_NULL, "not_null", " IS NOT NULL")                                                \
    X(REST_IS_TRUE, "true", " IS TRUE")                                                            \
    X(REST_IS_FALSE, "false", " IS FALSE")                                                         \
    X(REST_IS_UNKNOWN, "unknown", " IS UNKNOWN")
enum rest_is_value { REST_IS_UNSET = 0, REST_IS_VALUES(REST_ENUMERATOR) };

struct rest_op_expr {
    bool negated; /* `not.` prefix */
    enum rest_op op;
    enum rest_quantifier quantifier;
    char *value;      /* single value, raw (`{a,b}`, `[1,5)`, `{"k":1}` included); "" allowed;
                         NULL for IS and IN */
    char *fts_config; /* `fts(english)` -> "english"; NULL when none */
    enum rest_is_value is_value; /* REST_OP_IS */
    char **list;                 /* REST_OP_IN: unquoted, unescaped elements; `in.()` has none */
    size_t n_list;
};

struct rest_filter {
    char **embed_path; /* `a.b.col=...` -> {"a","b"}; empty for the root table */
    size_t n_embed_path;
    struct rest_field field;
    struct rest_op_expr expr;
};

/* ------------------------------------------------------------------------------------------
 * Logic trees: or=(...), and=(...), not.or=(...), rel.or=(...)
 */
enum rest_logic_op { REST_LOGIC_AND = 1, REST_LOGIC_OR };

struct rest_logic_tree {
    bool is_filter;                   /* leaf */
    struct rest_filter filter;        /* leaf: embed path always empty */
    bool negated;                     /* node: `not.and(...)` */
    enum rest_logic_op op;            /* node */
    struct rest_logic_tree *children; /* node: at least one */
    size_t n_children;
};

struct rest_logic {
    char **embed_path; /* `rel.or=` -> {"rel"} */
    size_t n_embed_path;
    struct rest_logic_tree tree; /* root is always a node, never a leaf */
};

/* ------------------------------------------------------------------------------------------
 * order=, limit=, offset=
 */
enum rest_order_dir { REST_ORDER_DEFAULT = 0, REST_ORDER_ASC, REST_ORDER_DESC };
enum rest_order_nulls { REST_NULLS_DEFAULT = 0, REST_NULLS_FIRST, REST_NULLS_LAST };

struct rest_order_term {
    char *relation; /* `rel(col).desc` orders by a to-one embed's column; NULL otherwise */
    struct rest_field field;
    enum rest_order_dir dir;
    enum rest_order_nulls nulls;
};

struct rest_order {
    char **embed_path; /* `rel.order=` -> {"rel"} */
    size_t n_embed_path;
    struct rest_order_term *terms;
    size_t n_terms;
};

struct rest_range {
    char **embed_path; /* `rel.limit=` -> {"rel"} */
    size_t n_embed_path;
    bool has_limit;
    int64_t limit; /* >= 0 */
    bool has_offset;
    int64_t offset; /* >= 0 */
};

/* An argument of GET/HEAD /rpc/fn (only from rest_parse_query_rpc). Repeated names are
 * kept in order: the SQL layer makes a variadic array of them. */
struct rest_rpc_arg {
    char *name;
    char *value;
};

/* ------------------------------------------------------------------------------------------
 * The whole query string.
 */
struct rest_query {
    bool has_select; /* false: no select= (means `*`); true with n_select == 0: `select=` */
    struct rest_select_item *select;
    size_t n_select;
    struct rest_filter *filters; /* ANDed; in query-string order */
    size_t n_filters;
    struct rest_logic *logic; /* ANDed with the filters */
    size_t n_logic;
    struct rest_order *orders; /* one per order parameter, in query-string order */
    size_t n_orders;
    struct rest_range *ranges; /* one per embed path; the last limit/offset for it wins */
    size_t n_ranges;
    bool has_columns;
    char **columns; /* columns=, duplicates removed, first-seen order */
    size_t n_columns;
    bool has_on_conflict;
    char **on_conflict;
    size_t n_on_conflict;
    struct rest_rpc_arg *rpc_args;
    size_t n_rpc_args;
};

/*
 * Parses a raw (still percent-encoded) query string, with or without its leading '?'.
 * Pairs are split on '&' and the first '='; keys and values are then form-decoded
 * ('+' is a space, %XX a byte). A key without '=' is ignored, as PostgREST does.
 * select, columns and on_conflict use their first occurrence. Every other key that is
 * not order/limit/offset/and/or (optionally after an embed path) is a filter.
 * Returns true and fills *out (zeroed first), or false with *err filled (400 PGRST100,
 * 416 PGRST103 for a negative limit). On failure *out holds nothing useful; what was
 * allocated stays in the arena until it is freed.
 */
CD_MUSTCHECK bool rest_parse_query(cd_arena_t *arena, const char *query, size_t len,
                                   struct rest_query *out, struct rest_error *err);

/*
 * The same for GET/HEAD /rpc/fn: a parameter whose value is not an operator expression is a
 * function argument (out->rpc_args) instead of an error. A value starting with `not.`,
 * `in.` or `is.` must still parse as a filter, as in PostgREST. Argument names are plain
 * names: `a.b=1` (an embed path) is an error.
 */
CD_MUSTCHECK bool rest_parse_query_rpc(cd_arena_t *arena, const char *query, size_t len,
                                       struct rest_query *out, struct rest_error *err);

/* ------------------------------------------------------------------------------------------
 * Prefer header(s).
 */
enum rest_prefer_return {
    REST_RETURN_UNSET = 0,
    REST_RETURN_MINIMAL,
    REST_RETURN_REPRESENTATION,
    REST_RETURN_HEADERS_ONLY
};
enum rest_prefer_count {
    REST_COUNT_UNSET = 0,
    REST_COUNT_EXACT,
    REST_COUNT_PLANNED,
    REST_COUNT_ESTIMATED
};
enum rest_prefer_resolution {
    REST_RESOLUTION_UNSET = 0,
    REST_RESOLUTION_MERGE_DUPLICATES,
    REST_RESOLUTION_IGNORE_DUPLICATES
};
enum rest_prefer_missing { REST_MISSING_UNSET = 0, REST_MISSING_DEFAULT, REST_MISSING_NULL };
enum rest_prefer_handling { REST_HANDLING_UNSET = 0, REST_HANDLING_LENIENT, REST_HANDLING_STRICT };
enum rest_prefer_tx { REST_TX_UNSET = 0, REST_TX_COMMIT, REST_TX_ROLLBACK };

struct rest_prefer {
    enum rest_prefer_return ret;
    enum rest_prefer_count count;
    enum rest_prefer_resolution resolution;
    enum rest_prefer_missing missing;
    enum rest_prefer_handling handling;
    enum rest_prefer_tx tx;
    bool params_single_object; /* params=single-object (deprecated in PostgREST) */
    bool has_max_affected;
    int64_t max_affected;
    char *timezone; /* raw `timezone=` value, NULL when absent: the caller must check it
                       against pg_timezone_names and treat it as invalid if unknown */
    char **invalid; /* unrecognised preferences, as received (trimmed) */
    size_t n_invalid;
};

/*
 * Parses the values of every Prefer header of a request (values[i] is lens[i] bytes, not
 * necessarily NUL-terminated; NULL values are skipped). Each value is split on ',' and each
 * item trimmed; empty items are skipped. The first occurrence of a preference wins, across
 * headers too. An invalid max-affected number is ignored, as PostgREST does.
 * Returns false with 400 PGRST122 ("Invalid preferences given with handling=strict") when
 * handling=strict and any preference is unrecognised, and 400 PGRST100 when the limits
 * (REST_MAX_PREFER_BYTES, REST_MAX_PREFER_ITEMS) are passed or a value is not UTF-8 or has NUL.
 */
CD_MUSTCHECK bool rest_parse_prefer(cd_arena_t *arena, const char *const *values,
                                    const size_t *lens, size_t n_values, struct rest_prefer *out,
                                    struct rest_error *err);

/* ------------------------------------------------------------------------------------------
 * Range / Range-Unit headers.
 */
struct rest_range_header {
    bool present; /* false: no usable Range header (absent, other unit, or not `N-[M]`) */
    int64_t first;
    bool has_last; /* `10-` has no last */
    int64_t last;
};

/*
 * Parses `Range: first-[last]` (PostgREST's regex ^([0-9]+)-([0-9]*)$). range may be NULL
 * (absent). unit is the Range-Unit header or NULL; a unit other than `items`
 * (case-insensitive) makes the Range header ignored, as RFC 7233 asks. A value that does not
 * match the pattern is ignored, as PostgREST does. Returns false with 416 PGRST103 when
 * first > last or a bound does not fit in int64.
 */
CD_MUSTCHECK bool rest_parse_range(const char *range, size_t range_len, const char *unit,
                                   size_t unit_len, struct rest_range_header *out,
                                   struct rest_error *err);

#endif
