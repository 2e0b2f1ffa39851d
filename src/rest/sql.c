/*
 * The SQL builder of /rest/v1: a parsed request (rest_parse.h), checked against the schema
 * cache, becomes one parameterised statement that makes PostgreSQL return the whole
 * response body, the row counts and the response overrides in a single row, the way
 * PostgREST's QueryBuilder does:
 *
 *   [WITH pgrst_source AS (<INSERT|UPDATE|DELETE ... RETURNING | function call>)]
 *   SELECT total_result_set, page_total, body, response_headers, response_status, location
 *   FROM (<read of the table or of pgrst_source, with embeds as LATERAL joins>) _postgrest_t
 *
 * Rules this file keeps: every identifier is looked up in the cache and written quoted;
 * every value that comes from the request (filter values, JSON keys, bodies, arguments) is a
 * $n parameter; cast type names must be known types; LIMIT/OFFSET are integers parsed by
 * the parser. Embedded resources are LATERAL subqueries whose single column `pgrst_body` is
 * the JSON of the embed (an object for to-one, an array for to-many), so `!inner` and
 * `rel=is.null` become tests on that column.
 */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest/rest_internal.h"

/* ==========================================================================================
 * The plan: one node per table in the request (the root and every embed)
 */

struct null_filter {
    struct node *child;
    bool is_null;
};

struct node {
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
    struct null_filter *nulls;
    size_t n_nulls, cap_nulls;
    struct node **children;
    size_t n_children;
};

struct ctx {
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

static void *c_alloc(struct ctx *c, size_t n)
{
    void *p = cd_arena_alloc(c->arena, n);
    if (!p && !c->failed) {
        rest__fail(c->err, 400, "PGRST100", "The request is too complex",
                   "It needs more memory than one request may use.", NULL);
        c->failed = true;
    }
    return p;
}

static bool c_fail(struct ctx *c, int status, const char *code, const char *message,
                   const char *details, const char *hint)
{
    if (!c->failed)
        rest__fail(c->err, status, code, message, details, hint);
    c->failed = true;
    return false;
}

/* Appends to an arena vector of pointers (grows by doubling). */
static bool push_ptr(struct ctx *c, void *vec, size_t *n, size_t *cap, const void *item)
{
    const void ***v = vec;
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        const void **nv = c_alloc(c, ncap * sizeof(void *));
        if (!nv)
            return false;
        if (*n)
            memcpy(nv, *v, *n * sizeof(void *));
        *v = nv;
        *cap = ncap;
    }
    (*v)[(*n)++] = item;
    return true;
}

/* ==========================================================================================
 * Text output: every append is checked; the first failure sticks
 */

static void out(struct ctx *c, const char *s)
{
    if (!c->overflow && !cd_buf_adds(c->b, s))
        c->overflow = true;
}

static void outn(struct ctx *c, const char *s, size_t n)
{
    if (!c->overflow && !cd_buf_add(c->b, s, n))
        c->overflow = true;
}

static void outf(struct ctx *c, const char *fmt, ...) CD_PRINTF(2, 3);
static void outf(struct ctx *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!c->overflow && !cd_buf_vprintf(c->b, fmt, ap))
        c->overflow = true;
    va_end(ap);
}

bool rest__quote_ident(cd_buf_t *b, const char *name)
{
    if (!cd_buf_add(b, "\"", 1))
        return false;
    for (const char *p = name; *p; p++) {
        const char *q = strchr(p, '"');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (!cd_buf_add(b, p, n))
            return false;
        if (!q)
            break;
        if (!cd_buf_add(b, "\"\"", 2))
            return false;
        p = q;
    }
    return cd_buf_add(b, "\"", 1);
}

static void ident(struct ctx *c, const char *name)
{
    if (!c->overflow && !rest__quote_ident(c->b, name))
        c->overflow = true;
}

/* A SQL string literal of a name from the schema cache (never of request data). */
static void literal_name(struct ctx *c, const char *name)
{
    out(c, "'");
    for (const char *p = name; *p; p++) {
        if (*p == '\'')
            out(c, "''");
        else
            outn(c, p, 1);
    }
    out(c, "'");
}

/* "public"."name" */
static void qualified(struct ctx *c, const char *name)
{
    out(c, "\"public\".");
    ident(c, name);
}

/* Appends $n for value (kept by reference: it must outlive the statement). */
static void param(struct ctx *c, const char *value)
{
    rest_stmt_t *st = c->st;
    if (st->n_params >= REST_SQL_MAX_PARAMS) {
        c->overflow = true;
        return;
    }
    if (st->n_params == st->cap_params) {
        size_t ncap = st->cap_params ? st->cap_params * 2 : 16;
        const char **np = c_alloc(c, ncap * sizeof(char *));
        if (!np)
            return;
        if (st->n_params)
            memcpy(np, st->params, st->n_params * sizeof(char *));
        st->params = np;
        st->cap_params = ncap;
    }
    st->params[st->n_params++] = value;
    outf(c, "$%zu", st->n_params);
}

static void alias_of(const struct node *n, char kind, char *buf, size_t len)
{
    snprintf(buf, len, "pgrst_%c%d", kind, n->id);
}

/* "pgrst_t3" */
static void node_alias(struct ctx *c, const struct node *n, char kind)
{
    char a[32];
    alias_of(n, kind, a, sizeof(a));
    ident(c, a);
}

/* ==========================================================================================
 * Columns, JSON paths, casts
 */

static const rest_col_t *node_col(const struct node *n, const char *name)
{
    for (size_t i = 0; i < n->n_cols; i++)
        if (strcmp(n->cols[i].name, name) == 0)
            return &n->cols[i];
    return NULL;
}

/* PostgreSQL's own message for an unknown column, as PostgREST passes it on. */
static bool no_column(struct ctx *c, const struct node *n, const char *name)
{
    char msg[REST_ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof(msg), "column %s.%s does not exist", n->label, name);
    return c_fail(c, 400, "42703", msg, NULL, NULL);
}

static const rest_col_t *need_col(struct ctx *c, const struct node *n, const char *name)
{
    const rest_col_t *col = node_col(n, name);
    if (!col)
        no_column(c, n, name);
    return col;
}

/* The column with its JSON path: "pgrst_t0"."data"->$3::text->>0 */
static void field_expr(struct ctx *c, const char *alias, const struct rest_field *f)
{
    ident(c, alias);
    out(c, ".");
    ident(c, f->name);
    for (size_t i = 0; i < f->n_json; i++) {
        const struct rest_json_step *js = &f->json[i];
        out(c, js->arrow == REST_JSON_ARROW2 ? "->>" : "->");
        if (js->is_index) {
            param(c, js->key);
            out(c, "::integer");
        } else {
            param(c, js->key);
            out(c, "::text");
        }
    }
}

/* The output name of a field: its alias, else the last JSON key, else the column. */
static const char *field_out_name(const struct rest_field *f, const char *alias)
{
    if (alias)
        return alias;
    for (size_t i = f->n_json; i > 0; i--)
        if (!f->json[i - 1].is_index)
            return f->json[i - 1].key;
    return f->name;
}

/* A cast type: lower-cased, made only of [a-z0-9_ ], and a known type. */
static const char *checked_cast(struct ctx *c, const char *cast)
{
    size_t n = strlen(cast);
    char *t = c_alloc(c, n + 1);
    if (!t)
        return NULL;
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch = (unsigned char)cast[i];
        if (ch && !(isalnum(ch) || ch == '_' || ch == ' ')) {
            c_fail(c, 400, "PGRST100", "failed to parse select parameter",
                   "A cast must name a type.", NULL);
            return NULL;
        }
        t[i] = (char)tolower(ch);
    }
    if (!rest__schema_has_type(c->s, t)) {
        char msg[REST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "type \"%s\" does not exist", cast);
        c_fail(c, 400, "42704", msg, NULL, NULL);
        return NULL;
    }
    return t;
}

/* ==========================================================================================
 * Planning: select tree -> nodes; filters, logic, orders and ranges attached to nodes
 */

static struct node *new_node(struct ctx *c)
{
    struct node *n = c_alloc(c, sizeof(*n));
    if (!n)
        return NULL;
    memset(n, 0, sizeof(*n));
    n->id = c->next_id++;
    return n;
}

static void set_node_table(struct node *n, const rest_table_t *t)
{
    n->table = t;
    n->cols = t->cols;
    n->n_cols = t->n_cols;
    n->label = t->name;
}

static bool plan_items(struct ctx *c, struct node *n, const struct rest_select_item *items,
                       size_t n_items);

static bool plan_embed(struct ctx *c, struct node *parent, const struct rest_select_item *it,
                       struct node **out)
{
    if (!parent->table) {
        char msg[REST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg),
                 "Could not find a relationship between '%s' and '%s' in the schema cache",
                 parent->label, it->relation);
        return c_fail(c, 400, "PGRST200", msg, NULL, NULL);
    }
    rest_rel_t rel;
    size_t origin = (size_t)(parent->table - c->s->tables);
    if (!rest__find_rel(c->s, origin, it->relation, it->hint, &rel, c->err)) {
        c->failed = true;
        return false;
    }
    struct node *n = new_node(c);
    if (!n)
        return false;
    set_node_table(n, &c->s->tables[rel.target]);
    n->relation = it->relation;
    n->alias = it->alias;
    n->rel = rel;
    n->to_one = rest__rel_to_one(&rel);
    n->inner = it->join == REST_JOIN_INNER;
    n->spread = it->kind == REST_SELECT_SPREAD;
    n->empty = it->n_children == 0;
    if (n->spread && !n->to_one) {
        char msg[REST_ERROR_MESSAGE_MAX], det[REST_ERR_DETAILS_MAX];
        snprintf(msg, sizeof(msg), "A spread operation on '%s' is not possible", it->relation);
        snprintf(det, sizeof(det),
                 "'%s' and '%s' do not form a many-to-one or one-to-one relationship",
                 parent->label, it->relation);
        return c_fail(c, 400, "PGRST119", msg, det, NULL);
    }
    if (!plan_items(c, n, it->children, it->n_children))
        return false;
    *out = n;
    return true;
}

static bool plan_items(struct ctx *c, struct node *n, const struct rest_select_item *items,
                       size_t n_items)
{
    size_t n_embeds = 0;
    n->items = items;
    n->n_items = n_items;
    for (size_t i = 0; i < n_items; i++) {
        if (items[i].aggregate != REST_AGG_NONE)
            return c_fail(c, 400, "PGRST123", "Use of aggregate functions is not allowed", NULL,
                          NULL);
        if (items[i].kind == REST_SELECT_EMBED || items[i].kind == REST_SELECT_SPREAD)
            n_embeds++;
    }
    if (n_embeds == 0)
        return true;
    n->children = c_alloc(c, n_embeds * sizeof(struct node *));
    if (!n->children)
        return false;
    for (size_t i = 0; i < n_items; i++) {
        if (items[i].kind != REST_SELECT_EMBED && items[i].kind != REST_SELECT_SPREAD)
            continue;
        struct node *child;
        if (!plan_embed(c, n, &items[i], &child))
            return false;
        n->children[n->n_children++] = child;
    }
    return true;
}

static bool child_named(const struct node *child, const char *name)
{
    return strcmp(child->relation, name) == 0 || (child->alias && strcmp(child->alias, name) == 0);
}

static struct node *find_child(const struct node *n, const char *name)
{
    for (size_t i = 0; i < n->n_children; i++)
        if (child_named(n->children[i], name))
            return n->children[i];
    return NULL;
}

/* The node an embed path leads to, or NULL with PGRST108. */
static struct node *walk_path(struct ctx *c, struct node *root, char **path, size_t n)
{
    struct node *cur = root;
    for (size_t i = 0; i < n; i++) {
        struct node *next = find_child(cur, path[i]);
        if (!next) {
            char msg[REST_ERROR_MESSAGE_MAX], hint[REST_ERR_HINT_MAX];
            snprintf(msg, sizeof(msg), "'%s' is not an embedded resource in this request", path[i]);
            snprintf(hint, sizeof(hint),
                     "Verify that '%s' is included in the 'select' query parameter.", path[i]);
            c_fail(c, 400, "PGRST108", msg, NULL, hint);
            return NULL;
        }
        cur = next;
    }
    return cur;
}

/* Attaches a filter to its node; a filter on an embed's own name is a null test. */
static bool attach_filter(struct ctx *c, struct node *n, const struct rest_filter *f)
{
    struct node *child = f->field.n_json == 0 ? find_child(n, f->field.name) : NULL;
    if (child && child->spread)
        child = NULL; /* a spread has no JSON of its own to test: a column filter then */
    if (child) {
        const struct rest_op_expr *x = &f->expr;
        bool is_null;
        if (x->op == REST_OP_IS && x->is_value == REST_IS_NULL)
            is_null = !x->negated;
        else if (x->op == REST_OP_IS && x->is_value == REST_IS_NOT_NULL)
            is_null = x->negated;
        else {
            char msg[REST_ERROR_MESSAGE_MAX];
            snprintf(msg, sizeof(msg), "Bad operator on the '%s' embedded resource", f->field.name);
            return c_fail(c, 400, "PGRST120", msg,
                          "Only is null or not is null filters are allowed on embedded "
                          "resources",
                          NULL);
        }
        if (n->n_nulls == n->cap_nulls) {
            size_t ncap = n->cap_nulls ? n->cap_nulls * 2 : 4;
            struct null_filter *nv = c_alloc(c, ncap * sizeof(*nv));
            if (!nv)
                return false;
            if (n->n_nulls)
                memcpy(nv, n->nulls, n->n_nulls * sizeof(*nv));
            n->nulls = nv;
            n->cap_nulls = ncap;
        }
        n->nulls[n->n_nulls].child = child;
        n->nulls[n->n_nulls].is_null = is_null;
        n->n_nulls++;
        return true;
    }
    return push_ptr(c, &n->filters, &n->n_filters, &n->cap_filters, f);
}

/* Spreads the request's filters, logic, orders and ranges over the tree. with_root: the
 * root's own filters/orders apply here (reads and calls; not the representation of a
 * mutation, where they went into the mutation's WHERE). */
static bool attach_all(struct ctx *c, struct node *root, bool with_root)
{
    const struct rest_query *q = c->req->query;
    for (size_t i = 0; i < q->n_filters; i++) {
        const struct rest_filter *f = &q->filters[i];
        if (f->n_embed_path == 0 && !with_root)
            continue;
        struct node *n = walk_path(c, root, f->embed_path, f->n_embed_path);
        if (!n || !attach_filter(c, n, f))
            return false;
    }
    for (size_t i = 0; i < q->n_logic; i++) {
        const struct rest_logic *l = &q->logic[i];
        if (l->n_embed_path == 0 && !with_root)
            continue;
        struct node *n = walk_path(c, root, l->embed_path, l->n_embed_path);
        if (!n || !push_ptr(c, &n->logic, &n->n_logic, &n->cap_logic, l))
            return false;
    }
    for (size_t i = 0; i < q->n_orders; i++) {
        const struct rest_order *o = &q->orders[i];
        if (o->n_embed_path == 0 && !with_root)
            continue;
        struct node *n = walk_path(c, root, o->embed_path, o->n_embed_path);
        if (!n || !push_ptr(c, &n->orders, &n->n_orders, &n->cap_orders, o))
            return false;
    }
    for (size_t i = 0; i < q->n_ranges; i++) {
        const struct rest_range *r = &q->ranges[i];
        if (r->n_embed_path == 0)
            continue; /* the top-level window comes from the request (req->offset/limit) */
        struct node *n = walk_path(c, root, r->embed_path, r->n_embed_path);
        if (!n)
            return false;
        n->range = r;
    }
    return true;
}

/* ==========================================================================================
 * Filters
 */

static const char *like_value(struct ctx *c, const char *v)
{
    size_t n = strlen(v);
    char *p = c_alloc(c, n + 1);
    if (!p)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        p[i] = v[i] == '*' ? '%' : v[i];
    return p;
}

/* {"a","b,c"}: an array literal of the in.(...) elements, each quoted. */
static const char *array_literal(struct ctx *c, char **list, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += 3 + 2 * strlen(list[i]);
    char *p = c_alloc(c, len);
    if (!p)
        return NULL;
    size_t w = 0;
    p[w++] = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            p[w++] = ',';
        p[w++] = '"';
        for (const char *s = list[i]; *s; s++) {
            if (*s == '"' || *s == '\\')
                p[w++] = '\\';
            p[w++] = *s;
        }
        p[w++] = '"';
    }
    p[w++] = '}';
    p[w] = '\0';
    return p;
}

static const char *binary_op(enum rest_op op)
{
    switch (op) {
    case REST_OP_EQ:
        return " = ";
    case REST_OP_NEQ:
        return " <> ";
    case REST_OP_GT:
        return " > ";
    case REST_OP_GTE:
        return " >= ";
    case REST_OP_LT:
        return " < ";
    case REST_OP_LTE:
        return " <= ";
    case REST_OP_LIKE:
        return " LIKE ";
    case REST_OP_ILIKE:
        return " ILIKE ";
    case REST_OP_MATCH:
        return " ~ ";
    case REST_OP_IMATCH:
        return " ~* ";
    case REST_OP_ISDISTINCT:
        return " IS DISTINCT FROM ";
    case REST_OP_CS:
        return " @> ";
    case REST_OP_CD:
        return " <@ ";
    case REST_OP_OV:
        return " && ";
    case REST_OP_SL:
        return " << ";
    case REST_OP_SR:
        return " >> ";
    case REST_OP_NXL:
        return " &> "; /* does not extend to the left of */
    case REST_OP_NXR:
        return " &< "; /* does not extend to the right of */
    case REST_OP_ADJ:
        return " -|- ";
    default:
        return NULL;
    }
}

static const char *fts_function(enum rest_op op)
{
    switch (op) {
    case REST_OP_FTS:
        return "pg_catalog.to_tsquery(";
    case REST_OP_PLFTS:
        return "pg_catalog.plainto_tsquery(";
    case REST_OP_PHFTS:
        return "pg_catalog.phraseto_tsquery(";
    case REST_OP_WFTS:
        return "pg_catalog.websearch_to_tsquery(";
    default:
        return NULL;
    }
}

/* One filter on node n, written against alias (the node's table alias, or another alias of
 * the same table for a limited UPDATE/DELETE). */
static void emit_filter(struct ctx *c, const struct node *n, const char *alias,
                        const struct rest_filter *f)
{
    const rest_col_t *col = need_col(c, n, f->field.name);
    if (!col)
        return;
    const struct rest_op_expr *x = &f->expr;
    if (x->negated)
        out(c, "NOT (");
    switch (x->op) {
    case REST_OP_IS:
        field_expr(c, alias, &f->field);
        out(c, x->is_value == REST_IS_NULL       ? " IS NULL"
               : x->is_value == REST_IS_NOT_NULL ? " IS NOT NULL"
               : x->is_value == REST_IS_TRUE     ? " IS TRUE"
               : x->is_value == REST_IS_FALSE    ? " IS FALSE"
                                                 : " IS UNKNOWN");
        break;
    case REST_OP_IN: {
        const char *arr = array_literal(c, x->list, x->n_list);
        if (!arr)
            return;
        field_expr(c, alias, &f->field);
        out(c, " = ANY (");
        param(c, arr);
        out(c, ")");
        break;
    }
    case REST_OP_FTS:
    case REST_OP_PLFTS:
    case REST_OP_PHFTS:
    case REST_OP_WFTS: {
        bool direct = col->is_tsvector && f->field.n_json == 0;
        if (!direct) {
            out(c, "pg_catalog.to_tsvector(");
            if (x->fts_config) {
                param(c, x->fts_config);
                out(c, "::regconfig, ");
            }
        }
        field_expr(c, alias, &f->field);
        if (!direct)
            out(c, ")");
        out(c, " @@ ");
        out(c, fts_function(x->op));
        if (x->fts_config) {
            param(c, x->fts_config);
            out(c, "::regconfig, ");
        }
        param(c, x->value ? x->value : "");
        out(c, ")");
        break;
    }
    default: {
        const char *op = binary_op(x->op);
        if (!op) {
            c_fail(c, 400, "PGRST100", "failed to parse filter", "Unknown operator.", NULL);
            return;
        }
        const char *v = x->value ? x->value : "";
        if (x->op == REST_OP_LIKE || x->op == REST_OP_ILIKE) {
            v = like_value(c, v);
            if (!v)
                return;
        }
        field_expr(c, alias, &f->field);
        out(c, op);
        if (x->quantifier != REST_QUANT_NONE) {
            out(c, x->quantifier == REST_QUANT_ANY ? "ANY (" : "ALL (");
            param(c, v);
            out(c, ")");
        } else {
            param(c, v);
        }
        break;
    }
    }
    if (x->negated)
        out(c, ")");
}

static void emit_logic_tree(struct ctx *c, const struct node *n, const char *alias,
                            const struct rest_logic_tree *t)
{
    if (t->is_filter) {
        emit_filter(c, n, alias, &t->filter);
        return;
    }
    if (t->negated)
        out(c, "NOT ");
    out(c, "(");
    for (size_t i = 0; i < t->n_children; i++) {
        if (i)
            out(c, t->op == REST_LOGIC_OR ? " OR " : " AND ");
        emit_logic_tree(c, n, alias, &t->children[i]);
    }
    out(c, ")");
}

/* Writes the node's own conditions (filters, logic, null tests on embeds, !inner), each
 * preceded by " AND " unless it is the first (*first tracks that). */
static void emit_conditions(struct ctx *c, const struct node *n, const char *alias, bool *first)
{
    for (size_t i = 0; i < n->n_filters; i++) {
        out(c, *first ? "" : " AND ");
        *first = false;
        emit_filter(c, n, alias, n->filters[i]);
    }
    for (size_t i = 0; i < n->n_logic; i++) {
        out(c, *first ? "" : " AND ");
        *first = false;
        emit_logic_tree(c, n, alias, &n->logic[i]->tree);
    }
    for (size_t i = 0; i < n->n_nulls; i++) {
        out(c, *first ? "" : " AND ");
        *first = false;
        node_alias(c, n->nulls[i].child, 'l');
        out(c, ".\"pgrst_body\"");
        out(c, n->nulls[i].is_null ? " IS NULL" : " IS NOT NULL");
    }
    for (size_t i = 0; i < n->n_children; i++) {
        const struct node *ch = n->children[i];
        if (!ch->inner || ch->spread)
            continue;
        out(c, *first ? "" : " AND ");
        *first = false;
        node_alias(c, ch, 'l');
        out(c, ".\"pgrst_body\" IS NOT NULL");
    }
}

static bool has_conditions(const struct node *n)
{
    if (n->n_filters || n->n_logic || n->n_nulls)
        return true;
    for (size_t i = 0; i < n->n_children; i++)
        if (n->children[i]->inner && !n->children[i]->spread)
            return true;
    return false;
}

/* ==========================================================================================
 * Joins between a node and its parent
 */

/* child_alias.child_col = parent_alias.parent_col for every column pair of the relationship
 * (for many-to-many: junction.col = parent.col). */
static void emit_join_cond(struct ctx *c, const struct node *child, const char *parent_alias)
{
    const rest_rel_t *r = &child->rel;
    const rest_schema_t *s = c->s;
    char ca[32], ja[32];
    alias_of(child, 't', ca, sizeof(ca));
    alias_of(child, 'j', ja, sizeof(ja));
    const rest_fk_t *fk = r->fk;
    const rest_table_t *from = &s->tables[fk->from], *to = &s->tables[fk->to];
    for (size_t i = 0; i < fk->n_cols; i++) {
        const char *fcol = from->cols[fk->from_cols[i]].name;
        const char *tcol = to->cols[fk->to_cols[i]].name;
        if (i)
            out(c, " AND ");
        if (r->card == REST_M2M) {
            /* fk: junction -> origin */
            ident(c, ja);
            out(c, ".");
            ident(c, fcol);
            out(c, " = ");
            ident(c, parent_alias);
            out(c, ".");
            ident(c, tcol);
        } else if (r->fk_from_origin) {
            ident(c, ca);
            out(c, ".");
            ident(c, tcol);
            out(c, " = ");
            ident(c, parent_alias);
            out(c, ".");
            ident(c, fcol);
        } else {
            ident(c, ca);
            out(c, ".");
            ident(c, fcol);
            out(c, " = ");
            ident(c, parent_alias);
            out(c, ".");
            ident(c, tcol);
        }
    }
}

/* For many-to-many: INNER JOIN junction ON junction.col = target.col */
static void emit_junction(struct ctx *c, const struct node *child)
{
    const rest_rel_t *r = &child->rel;
    const rest_schema_t *s = c->s;
    char ca[32], ja[32];
    alias_of(child, 't', ca, sizeof(ca));
    alias_of(child, 'j', ja, sizeof(ja));
    out(c, " INNER JOIN ");
    qualified(c, s->tables[r->junction].name);
    out(c, " AS ");
    ident(c, ja);
    out(c, " ON ");
    const rest_fk_t *fk = r->fk2;
    const rest_table_t *from = &s->tables[fk->from], *to = &s->tables[fk->to];
    for (size_t i = 0; i < fk->n_cols; i++) {
        if (i)
            out(c, " AND ");
        ident(c, ja);
        out(c, ".");
        ident(c, from->cols[fk->from_cols[i]].name);
        out(c, " = ");
        ident(c, ca);
        out(c, ".");
        ident(c, to->cols[fk->to_cols[i]].name);
    }
}

/* ==========================================================================================
 * Reads: SELECT ... FROM ... LATERAL embeds ... WHERE ... ORDER BY ... LIMIT
 */

enum read_mode {
    READ_FULL,  /* the select list */
    READ_COUNT, /* SELECT 1, only the joins the WHERE needs, no ORDER/LIMIT */
};

struct window {
    int64_t offset; /* 0: none */
    int64_t limit;  /* < 0: none */
};

static void emit_node_select(struct ctx *c, const struct node *n, const char *source,
                             const char *parent_alias, enum read_mode mode, struct window w);

static void emit_select_list(struct ctx *c, const struct node *n)
{
    char ta[32];
    alias_of(n, 't', ta, sizeof(ta));
    bool first = true;
    if (n->all_columns) {
        ident(c, ta);
        out(c, ".*");
        first = false;
    }
    size_t child = 0;
    for (size_t i = 0; i < n->n_items; i++) {
        const struct rest_select_item *it = &n->items[i];
        switch (it->kind) {
        case REST_SELECT_STAR:
            out(c, first ? "" : ", ");
            first = false;
            ident(c, ta);
            out(c, ".*");
            break;
        case REST_SELECT_FIELD: {
            if (!need_col(c, n, it->field.name))
                return;
            const char *cast = it->cast ? checked_cast(c, it->cast) : NULL;
            if (it->cast && !cast)
                return;
            out(c, first ? "" : ", ");
            first = false;
            if (cast)
                out(c, "CAST(");
            field_expr(c, ta, &it->field);
            if (cast) {
                out(c, " AS ");
                out(c, cast);
                out(c, ")");
            }
            out(c, " AS ");
            ident(c, field_out_name(&it->field, it->alias));
            break;
        }
        case REST_SELECT_EMBED:
        case REST_SELECT_SPREAD: {
            const struct node *ch = n->children[child++];
            if (ch->empty)
                break;
            out(c, first ? "" : ", ");
            first = false;
            if (ch->spread) {
                node_alias(c, ch, 'l');
                out(c, ".*");
                break;
            }
            if (!ch->to_one)
                out(c, "COALESCE(");
            node_alias(c, ch, 'l');
            out(c, ".\"pgrst_body\"");
            if (!ch->to_one)
                out(c, ", '[]'::json)");
            out(c, " AS ");
            ident(c, ch->alias ? ch->alias : ch->relation);
            break;
        }
        }
    }
}

/* LEFT JOIN LATERAL (<child>) AS pgrst_l<k> ON TRUE, for each child (READ_COUNT: only the
 * children the WHERE clause looks at). */
static void emit_laterals(struct ctx *c, const struct node *n, enum read_mode mode)
{
    char ta[32];
    alias_of(n, 't', ta, sizeof(ta));
    for (size_t i = 0; i < n->n_children; i++) {
        const struct node *ch = n->children[i];
        if (mode == READ_COUNT) {
            bool needed = ch->inner;
            for (size_t k = 0; k < n->n_nulls && !needed; k++)
                needed = n->nulls[k].child == ch;
            if (!needed)
                continue;
        }
        char src[300];
        cd_buf_t tmp;
        cd_buf_init(&tmp, 512);
        if (!rest__quote_ident(&tmp, c->s->tables[ch->rel.target].name) ||
            (size_t)snprintf(src, sizeof(src), "\"public\".%s", cd_buf_str(&tmp)) >= sizeof(src)) {
            cd_buf_free(&tmp);
            c->overflow = true;
            return;
        }
        cd_buf_free(&tmp);
        struct window w = {0, -1};
        if (ch->range && !ch->to_one) {
            w.offset = ch->range->has_offset ? ch->range->offset : 0;
            w.limit = ch->range->has_limit ? ch->range->limit : -1;
        }
        out(c, ch->spread && ch->inner ? " INNER JOIN LATERAL (" : " LEFT JOIN LATERAL (");
        if (ch->spread) {
            emit_node_select(c, ch, src, ta, READ_FULL, w);
        } else {
            out(c, ch->to_one ? "SELECT pg_catalog.row_to_json(" : "SELECT pg_catalog.json_agg(");
            node_alias(c, ch, 's');
            out(c, ") AS \"pgrst_body\" FROM (");
            emit_node_select(c, ch, src, ta, READ_FULL, w);
            out(c, ") AS ");
            node_alias(c, ch, 's');
        }
        out(c, ") AS ");
        node_alias(c, ch, 'l');
        out(c, " ON TRUE");
    }
}

/* An ORDER BY term on a to-one embed's column: a correlated subquery over the relationship. */
static void emit_related_order(struct ctx *c, const struct node *n, const struct node *ch,
                               const struct rest_order_term *t)
{
    const rest_table_t *target = &c->s->tables[ch->rel.target];
    if (!rest__table_col(target, t->field.name)) {
        char msg[REST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "column %s.%s does not exist", target->name, t->field.name);
        c_fail(c, 400, "42703", msg, NULL, NULL);
        return;
    }
    char ta[32], ca[32];
    alias_of(n, 't', ta, sizeof(ta));
    alias_of(ch, 't', ca, sizeof(ca));
    out(c, "(SELECT ");
    field_expr(c, ca, &t->field);
    out(c, " FROM ");
    qualified(c, target->name);
    out(c, " AS ");
    ident(c, ca);
    if (ch->rel.card == REST_M2M)
        emit_junction(c, ch);
    out(c, " WHERE ");
    emit_join_cond(c, ch, ta);
    out(c, " LIMIT 1)");
}

static void emit_order(struct ctx *c, const struct node *n, const char *alias)
{
    bool first = true;
    for (size_t k = 0; k < n->n_orders; k++) {
        const struct rest_order *o = n->orders[k];
        for (size_t i = 0; i < o->n_terms; i++) {
            const struct rest_order_term *t = &o->terms[i];
            out(c, first ? " ORDER BY " : ", ");
            first = false;
            if (t->relation) {
                const struct node *ch = find_child(n, t->relation);
                if (!ch) {
                    char msg[REST_ERROR_MESSAGE_MAX], hint[REST_ERR_HINT_MAX];
                    snprintf(msg, sizeof(msg), "'%s' is not an embedded resource in this request",
                             t->relation);
                    snprintf(hint, sizeof(hint),
                             "Verify that '%s' is included in the 'select' query parameter.",
                             t->relation);
                    c_fail(c, 400, "PGRST108", msg, NULL, hint);
                    return;
                }
                if (!ch->to_one) {
                    char msg[REST_ERROR_MESSAGE_MAX], det[REST_ERR_DETAILS_MAX];
                    snprintf(msg, sizeof(msg), "A related order on '%s' is not possible",
                             t->relation);
                    snprintf(det, sizeof(det),
                             "'%s' and '%s' do not form a many-to-one or one-to-one "
                             "relationship",
                             n->label, t->relation);
                    c_fail(c, 400, "PGRST118", msg, det, NULL);
                    return;
                }
                emit_related_order(c, n, ch, t);
            } else {
                if (!need_col(c, n, t->field.name))
                    return;
                field_expr(c, alias, &t->field);
            }
            if (t->dir == REST_ORDER_DESC)
                out(c, " DESC");
            else if (t->dir == REST_ORDER_ASC)
                out(c, " ASC");
            if (t->nulls == REST_NULLS_FIRST)
                out(c, " NULLS FIRST");
            else if (t->nulls == REST_NULLS_LAST)
                out(c, " NULLS LAST");
        }
    }
}

static void emit_window(struct ctx *c, struct window w)
{
    if (w.limit >= 0)
        outf(c, " LIMIT %" PRId64, w.limit);
    if (w.offset > 0)
        outf(c, " OFFSET %" PRId64, w.offset);
}

/* SELECT <list> FROM <source> AS pgrst_t<id> [junction] [laterals] WHERE <join> AND <own
 * conditions> [ORDER BY] [LIMIT/OFFSET]. parent_alias: NULL at the root. */
static void emit_node_select(struct ctx *c, const struct node *n, const char *source,
                             const char *parent_alias, enum read_mode mode, struct window w)
{
    char ta[32];
    alias_of(n, 't', ta, sizeof(ta));
    out(c, "SELECT ");
    if (mode == READ_COUNT)
        out(c, "1");
    else
        emit_select_list(c, n);
    out(c, " FROM ");
    out(c, source);
    out(c, " AS ");
    ident(c, ta);
    if (parent_alias && n->rel.card == REST_M2M)
        emit_junction(c, n);
    emit_laterals(c, n, mode);
    bool first = true;
    if (parent_alias || has_conditions(n)) {
        out(c, " WHERE ");
        if (parent_alias) {
            emit_join_cond(c, n, parent_alias);
            first = false;
        }
        emit_conditions(c, n, ta, &first);
    }
    if (mode == READ_COUNT)
        return;
    emit_order(c, n, ta);
    emit_window(c, w);
}

/* ==========================================================================================
 * The outer SELECT shared by every statement
 */

static bool wants_representation(const rest_request_t *req)
{
    return req->prefer && req->prefer->ret == REST_RETURN_REPRESENTATION;
}

static void emit_body(struct ctx *c, bool scalar, bool single_row)
{
    const rest_request_t *req = c->req;
    bool mutation = req->action == REST_ACT_INSERT || req->action == REST_ACT_UPDATE ||
                    req->action == REST_ACT_DELETE;
    if (req->head || (mutation && !wants_representation(req)) ||
        (req->action == REST_ACT_CALL && req->func->ret_kind == REST_RET_VOID)) {
        out(c, "NULL::text");
        return;
    }
    if (req->media == REST_MEDIA_CSV) {
        out(c, "coalesce(pgrst.csv_header((pg_catalog.array_agg(pg_catalog.row_to_json("
               "_postgrest_t)))[1]) || E'\\n' || pg_catalog.string_agg(pgrst.csv_row("
               "pg_catalog.row_to_json(_postgrest_t)), E'\\n'), '')");
        return;
    }
    const char *agg = scalar ? "pg_catalog.json_agg(_postgrest_t.pgrst_scalar)"
                             : "pg_catalog.json_agg(_postgrest_t)";
    bool one = single_row || req->media == REST_MEDIA_SINGULAR;
    if (one) {
        out(c, "coalesce(");
        if (req->strip_nulls)
            out(c, "pg_catalog.json_strip_nulls(");
        outf(c, "(%s->0)", agg);
        if (req->strip_nulls)
            out(c, ")");
        out(c, "::text, 'null')");
    } else {
        if (req->strip_nulls)
            out(c, "pg_catalog.json_strip_nulls(");
        outf(c, "coalesce(%s, '[]')", agg);
        if (req->strip_nulls)
            out(c, ")");
        out(c, "::text");
    }
}

/* The guard that turns "singular but not one row" and "more rows than max-affected" into an
 * error inside the transaction, so a mutation is rolled back. */
static void emit_guard(struct ctx *c)
{
    const rest_request_t *req = c->req;
    const struct rest_prefer *p = req->prefer;
    bool singular = req->media == REST_MEDIA_SINGULAR;
    bool max = p && p->handling == REST_HANDLING_STRICT && p->has_max_affected &&
               req->action != REST_ACT_READ && req->action != REST_ACT_INSERT;
    if (!singular && !max)
        return;
    outf(c, ", pgrst.check_result(pg_catalog.count(_postgrest_t), %s, ",
         singular ? "true" : "false");
    if (max)
        outf(c, "%" PRId64 ")", p->max_affected);
    else
        out(c, "NULL)");
}

static void emit_outer_head(struct ctx *c)
{
    out(c, "SELECT ");
}

static void emit_outer_tail(struct ctx *c, bool scalar, bool single_row, bool location)
{
    out(c, "pg_catalog.count(_postgrest_t) AS page_total, ");
    emit_body(c, scalar, single_row);
    out(c, " AS body, nullif(pg_catalog.current_setting('response.headers', true), '') AS "
           "response_headers, nullif(pg_catalog.current_setting('response.status', true), '') AS "
           "response_status, ");
    if (location)
        out(c, "CASE WHEN pg_catalog.count(_postgrest_t) = 1 THEN (SELECT "
               "pg_catalog.json_agg(pg_catalog.json_build_array(pgrst_kv.key, coalesce('eq.' || "
               "pgrst_kv.value, 'is.null')))::text FROM pg_catalog.json_each_text((SELECT "
               "pg_catalog.row_to_json(pgrst_loc) FROM \"pgrst_source\" AS pgrst_loc LIMIT 1)) "
               "AS pgrst_kv) END");
    else
        out(c, "NULL::text");
    out(c, " AS location");
    emit_guard(c);
}

/* ==========================================================================================
 * The whole read
 */

static bool plan_root(struct ctx *c, struct node *root)
{
    const struct rest_query *q = c->req->query;
    if (!q->has_select) {
        root->all_columns = true;
        return true;
    }
    return plan_items(c, root, q->select, q->n_select);
}

static struct window top_window(const rest_request_t *req)
{
    struct window w = {req->offset > 0 ? req->offset : 0, req->limit};
    return w;
}

static void build_read(struct ctx *c)
{
    const rest_request_t *req = c->req;
    struct node *root = new_node(c);
    if (!root)
        return;
    set_node_table(root, req->table);
    if (!plan_root(c, root) || !attach_all(c, root, true))
        return;
    char src[300];
    cd_buf_t tmp;
    cd_buf_init(&tmp, 256);
    if (!rest__quote_ident(&tmp, req->table->name) ||
        (size_t)snprintf(src, sizeof(src), "\"public\".%s", cd_buf_str(&tmp)) >= sizeof(src)) {
        cd_buf_free(&tmp);
        c->overflow = true;
        return;
    }
    cd_buf_free(&tmp);
    emit_outer_head(c);
    if (req->count_exact) {
        out(c, "(SELECT pg_catalog.count(*) FROM (");
        emit_node_select(c, root, src, NULL, READ_COUNT, top_window(req));
        if (req->count_cap > 0)
            outf(c, " LIMIT %" PRId64, req->count_cap);
        out(c, ") AS _pgrst_count)");
    } else {
        out(c, "NULL::bigint");
    }
    out(c, " AS total_result_set, ");
    emit_outer_tail(c, false, false, false);
    out(c, " FROM (");
    emit_node_select(c, root, src, NULL, READ_FULL, top_window(req));
    out(c, ") AS _postgrest_t");
}

/* ==========================================================================================
 * Mutations
 */

/* The columns of a mutation: columns=, else the keys of the object / of the first object
 * (every object of an array must have the same keys). */
static bool mutation_columns(struct ctx *c, const rest_col_t ***cols_out, size_t *n_out)
{
    const rest_request_t *req = c->req;
    const struct rest_query *q = req->query;
    const json_t *body = req->body_json;
    const rest_table_t *t = req->table;
    const char **names = NULL;
    size_t n = 0;
    if (q->has_columns) {
        names = (const char **)q->columns;
        n = q->n_columns;
    } else {
        const json_t *first = json_is_array(body) ? json_array_get(body, 0) : body;
        n = json_object_size(first);
        if (n) {
            names = c_alloc(c, n * sizeof(char *));
            if (!names)
                return false;
            size_t k = 0;
            const char *key;
            json_t *v;
            json_object_foreach((json_t *)first, key, v)
            {
                (void)v;
                names[k++] = key;
            }
        }
        if (json_is_array(body)) {
            size_t i;
            json_t *el;
            json_array_foreach(body, i, el)
            {
                bool same = json_object_size(el) == n;
                for (size_t k = 0; same && k < n; k++)
                    same = json_object_get(el, names[k]) != NULL;
                if (!same)
                    return c_fail(c, 400, "PGRST102", "All object keys must match", NULL, NULL);
            }
        }
    }
    const rest_col_t **cols = n ? c_alloc(c, n * sizeof(rest_col_t *)) : NULL;
    if (n && !cols)
        return false;
    for (size_t i = 0; i < n; i++) {
        cols[i] = rest__table_col(t, names[i]);
        if (!cols[i]) {
            char msg[REST_ERROR_MESSAGE_MAX];
            snprintf(msg, sizeof(msg), "Could not find the '%s' column of '%s' in the schema cache",
                     names[i], t->name);
            return c_fail(c, 400, "PGRST204", msg, NULL, NULL);
        }
    }
    *cols_out = cols;
    *n_out = n;
    return true;
}

/* AS "pgrst_body"("a" text, "b" integer) */
static void record_def(struct ctx *c, const rest_col_t **cols, size_t n)
{
    out(c, " AS \"pgrst_body\"(");
    for (size_t i = 0; i < n; i++) {
        out(c, i ? ", " : "");
        ident(c, cols[i]->name);
        out(c, " ");
        out(c, cols[i]->type);
    }
    out(c, ")");
}

static void emit_returning(struct ctx *c)
{
    const rest_request_t *req = c->req;
    const struct rest_prefer *p = req->prefer;
    enum rest_prefer_return ret = p ? p->ret : REST_RETURN_UNSET;
    if (ret == REST_RETURN_REPRESENTATION) {
        out(c, " RETURNING \"pgrst_m\".*");
    } else if (ret == REST_RETURN_HEADERS_ONLY && req->action == REST_ACT_INSERT &&
               req->table->pk.n) {
        out(c, " RETURNING ");
        for (size_t i = 0; i < req->table->pk.n; i++) {
            out(c, i ? ", " : "");
            out(c, "\"pgrst_m\".");
            ident(c, req->table->cols[req->table->pk.cols[i]].name);
        }
    } else {
        out(c, " RETURNING 1");
    }
}

static void emit_insert(struct ctx *c)
{
    const rest_request_t *req = c->req;
    const rest_table_t *t = req->table;
    const struct rest_prefer *p = req->prefer;
    const json_t *body = req->body_json;
    if (json_is_array(body) && json_array_size(body) == 0) {
        /* Nothing to insert: an empty result of the right shape. */
        out(c, "SELECT \"pgrst_m\".* FROM ");
        qualified(c, t->name);
        out(c, " AS \"pgrst_m\" WHERE false");
        return;
    }
    const rest_col_t **cols = NULL;
    size_t n = 0;
    if (!mutation_columns(c, &cols, &n))
        return;
    out(c, "INSERT INTO ");
    qualified(c, t->name);
    out(c, " AS \"pgrst_m\"");
    bool defaults = req->query->has_columns && p && p->missing == REST_MISSING_DEFAULT;
    if (n == 0 && !json_is_array(body)) {
        out(c, " DEFAULT VALUES");
    } else if (n == 0) {
        out(c, " SELECT FROM pg_catalog.json_array_elements(");
        param(c, req->body_text);
        out(c, "::json)");
    } else {
        out(c, " (");
        for (size_t i = 0; i < n; i++) {
            out(c, i ? ", " : "");
            ident(c, cols[i]->name);
        }
        out(c, ") SELECT ");
        for (size_t i = 0; i < n; i++) {
            out(c, i ? ", " : "");
            if (defaults) {
                out(c, "CASE WHEN \"pgrst_e\".\"j\" ? ");
                literal_name(c, cols[i]->name);
                out(c, " THEN \"pgrst_body\".");
                ident(c, cols[i]->name);
                out(c, " ELSE ");
                out(c, cols[i]->default_expr ? cols[i]->default_expr : "NULL");
                out(c, " END");
            } else {
                out(c, "\"pgrst_body\".");
                ident(c, cols[i]->name);
            }
        }
        if (defaults) {
            out(c, " FROM pg_catalog.jsonb_array_elements(CASE WHEN pg_catalog.jsonb_typeof(");
            param(c, req->body_text);
            out(c, "::jsonb) = 'array' THEN ");
            param(c, req->body_text);
            out(c, "::jsonb ELSE pg_catalog.jsonb_build_array(");
            param(c, req->body_text);
            out(c, "::jsonb) END) AS \"pgrst_e\"(\"j\"), LATERAL pg_catalog.jsonb_to_record("
                   "\"pgrst_e\".\"j\")");
        } else {
            out(c, json_is_array(body) ? " FROM pg_catalog.json_to_recordset("
                                       : " FROM pg_catalog.json_to_record(");
            param(c, req->body_text);
            out(c, "::json)");
        }
        record_def(c, cols, n);
    }
    if (p && p->resolution != REST_RESOLUTION_UNSET) {
        const struct rest_query *q = req->query;
        out(c, " ON CONFLICT");
        bool has_target = false;
        if (q->has_on_conflict && q->n_on_conflict) {
            out(c, " (");
            for (size_t i = 0; i < q->n_on_conflict; i++) {
                if (!rest__table_col(t, q->on_conflict[i])) {
                    char msg[REST_ERROR_MESSAGE_MAX];
                    snprintf(msg, sizeof(msg), "column %s.%s does not exist", t->name,
                             q->on_conflict[i]);
                    c_fail(c, 400, "42703", msg, NULL, NULL);
                    return;
                }
                out(c, i ? ", " : "");
                ident(c, q->on_conflict[i]);
            }
            out(c, ")");
            has_target = true;
        } else if (t->pk.n) {
            out(c, " (");
            for (size_t i = 0; i < t->pk.n; i++) {
                out(c, i ? ", " : "");
                ident(c, t->cols[t->pk.cols[i]].name);
            }
            out(c, ")");
            has_target = true;
        }
        if (p->resolution == REST_RESOLUTION_MERGE_DUPLICATES && n) {
            if (!has_target) {
                char msg[REST_ERROR_MESSAGE_MAX];
                snprintf(msg, sizeof(msg),
                         "'%s' has no primary key: say which columns identify a duplicate",
                         t->name);
                c_fail(c, 400, "PGRST100", msg, NULL,
                       "Add on_conflict=<columns of a unique constraint> to the request.");
                return;
            }
            out(c, " DO UPDATE SET ");
            for (size_t i = 0; i < n; i++) {
                out(c, i ? ", " : "");
                ident(c, cols[i]->name);
                out(c, " = EXCLUDED.");
                ident(c, cols[i]->name);
            }
        } else {
            out(c, " DO NOTHING");
        }
    }
    emit_returning(c);
}

/* WHERE for UPDATE/DELETE: the filters on "pgrst_m", or with a limit, the rows picked by a
 * sub-select in order (ctid). */
static void emit_mutation_where(struct ctx *c, struct node *root)
{
    const rest_request_t *req = c->req;
    bool limited = req->limit >= 0 || req->offset > 0;
    out(c, " WHERE ");
    if (!limited) {
        bool first = true;
        emit_conditions(c, root, "pgrst_m", &first);
        return;
    }
    if (req->table->is_view) {
        c_fail(c, 400, "PGRST100", "limit and offset are not supported when changing a view", NULL,
               "Filter the rows to change instead.");
        return;
    }
    out(c, "\"pgrst_m\".ctid = ANY (ARRAY(SELECT \"pgrst_u\".ctid FROM ");
    qualified(c, req->table->name);
    out(c, " AS \"pgrst_u\" WHERE ");
    bool first = true;
    emit_conditions(c, root, "pgrst_u", &first);
    emit_order(c, root, "pgrst_u");
    emit_window(c, top_window(req));
    out(c, "))");
}

static void emit_update(struct ctx *c, struct node *where)
{
    const rest_request_t *req = c->req;
    const rest_table_t *t = req->table;
    const struct rest_prefer *p = req->prefer;
    if (!json_is_object((const json_t *)req->body_json)) {
        c_fail(c, 400, "PGRST102", "Empty or invalid json",
               "PATCH takes one JSON object; to change several rows use filters.", NULL);
        return;
    }
    const rest_col_t **cols = NULL;
    size_t n = 0;
    if (!mutation_columns(c, &cols, &n))
        return;
    if (n == 0) {
        out(c, "SELECT \"pgrst_m\".* FROM ");
        qualified(c, t->name);
        out(c, " AS \"pgrst_m\" WHERE false");
        return;
    }
    bool defaults = p && p->missing == REST_MISSING_DEFAULT;
    out(c, "UPDATE ");
    qualified(c, t->name);
    out(c, " AS \"pgrst_m\" SET ");
    for (size_t i = 0; i < n; i++) {
        out(c, i ? ", " : "");
        ident(c, cols[i]->name);
        if (defaults && !json_object_get(req->body_json, cols[i]->name)) {
            out(c, " = DEFAULT");
        } else {
            out(c, " = \"pgrst_body\".");
            ident(c, cols[i]->name);
        }
    }
    out(c, " FROM pg_catalog.json_to_record(");
    param(c, req->body_text);
    out(c, "::json)");
    record_def(c, cols, n);
    emit_mutation_where(c, where);
    emit_returning(c);
}

static void emit_delete(struct ctx *c, struct node *where)
{
    out(c, "DELETE FROM ");
    qualified(c, c->req->table->name);
    out(c, " AS \"pgrst_m\"");
    emit_mutation_where(c, where);
    emit_returning(c);
}

static void build_mutation(struct ctx *c)
{
    const rest_request_t *req = c->req;
    const struct rest_query *q = req->query;
    /* The root filters decide which rows change; they are checked against the table. */
    struct node *where = new_node(c);
    if (!where)
        return;
    set_node_table(where, req->table);
    for (size_t i = 0; i < q->n_filters; i++)
        if (q->filters[i].n_embed_path == 0 &&
            !push_ptr(c, &where->filters, &where->n_filters, &where->cap_filters, &q->filters[i]))
            return;
    for (size_t i = 0; i < q->n_logic; i++)
        if (q->logic[i].n_embed_path == 0 &&
            !push_ptr(c, &where->logic, &where->n_logic, &where->cap_logic, &q->logic[i]))
            return;
    for (size_t i = 0; i < q->n_orders; i++)
        if (q->orders[i].n_embed_path == 0 &&
            !push_ptr(c, &where->orders, &where->n_orders, &where->cap_orders, &q->orders[i]))
            return;
    if ((req->action == REST_ACT_UPDATE || req->action == REST_ACT_DELETE) &&
        where->n_filters == 0 && where->n_logic == 0) {
        c_fail(c, 400, "21000",
               req->action == REST_ACT_UPDATE ? "UPDATE requires a WHERE clause"
                                              : "DELETE requires a WHERE clause",
               NULL,
               "Add a filter to the request, e.g. ?id=eq.1. To change every row on purpose, "
               "use a filter every row matches, such as ?id=not.is.null.");
        return;
    }
    bool repr = wants_representation(req);
    struct node *root = NULL;
    if (repr) {
        root = new_node(c);
        if (!root)
            return;
        set_node_table(root, req->table);
        if (!plan_root(c, root) || !attach_all(c, root, false))
            return;
    }
    out(c, "WITH \"pgrst_source\" AS (");
    if (req->action == REST_ACT_INSERT)
        emit_insert(c);
    else if (req->action == REST_ACT_UPDATE)
        emit_update(c, where);
    else
        emit_delete(c, where);
    if (c->failed)
        return;
    out(c, ") ");
    emit_outer_head(c);
    bool count = req->count_exact;
    out(c, count ? "pg_catalog.count(_postgrest_t)" : "NULL::bigint");
    out(c, " AS total_result_set, ");
    bool location = req->action == REST_ACT_INSERT && req->prefer &&
                    req->prefer->ret == REST_RETURN_HEADERS_ONLY && req->table->pk.n;
    emit_outer_tail(c, false, false, location);
    out(c, " FROM (");
    if (repr)
        emit_node_select(c, root, "\"pgrst_source\"", NULL, READ_FULL, (struct window){0, -1});
    else
        out(c, "SELECT * FROM \"pgrst_source\"");
    out(c, ") AS _postgrest_t");
}

/* ==========================================================================================
 * Function calls
 */

/* "public"."fn"("a" := "pgrst_args"."a", ...) */
static void emit_call_expr(struct ctx *c, const char *const *names, size_t n)
{
    const rest_request_t *req = c->req;
    const rest_func_t *f = req->func;
    qualified(c, f->name);
    out(c, "(");
    if (req->args_whole_body) {
        param(c, req->args_text ? req->args_text : "{}");
        out(c, "::");
        out(c, f->args[0].type);
    } else {
        for (size_t i = 0; i < n; i++) {
            const rest_arg_t *a = NULL;
            for (size_t k = 0; k < f->n_args && !a; k++)
                if (strcmp(f->args[k].name, names[i]) == 0)
                    a = &f->args[k];
            out(c, i ? ", " : "");
            if (a && a->variadic)
                out(c, "VARIADIC ");
            ident(c, names[i]);
            out(c, " := \"pgrst_args\".");
            ident(c, names[i]);
        }
    }
    out(c, ")");
}

/* json_to_record($1::json) AS "pgrst_args"("a" integer, ...) */
static void emit_args_source(struct ctx *c, const char *const *names, size_t n)
{
    const rest_request_t *req = c->req;
    const rest_func_t *f = req->func;
    out(c, "pg_catalog.json_to_record(");
    param(c, req->args_text);
    out(c, "::json) AS \"pgrst_args\"(");
    for (size_t i = 0; i < n; i++) {
        const rest_arg_t *a = NULL;
        for (size_t k = 0; k < f->n_args && !a; k++)
            if (strcmp(f->args[k].name, names[i]) == 0)
                a = &f->args[k];
        if (!a) {
            c->overflow = true;
            return;
        }
        out(c, i ? ", " : "");
        ident(c, a->name);
        out(c, " ");
        out(c, a->type);
    }
    out(c, ")");
}

/* The argument names present in args_text (a JSON object), in the function's order. */
static bool call_arg_names(struct ctx *c, const char ***names, size_t *n)
{
    const rest_request_t *req = c->req;
    const rest_func_t *f = req->func;
    *names = NULL;
    *n = 0;
    if (req->args_whole_body || !req->args_text || f->n_args == 0)
        return true;
    json_t *obj = json_loads(req->args_text, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return c_fail(c, 400, "PGRST102", "Empty or invalid json", NULL, NULL);
    }
    const char **v = c_alloc(c, f->n_args * sizeof(char *));
    if (!v) {
        json_decref(obj);
        return false;
    }
    size_t k = 0;
    for (size_t i = 0; i < f->n_args; i++)
        if (*f->args[i].name && json_object_get(obj, f->args[i].name))
            v[k++] = f->args[i].name;
    json_decref(obj);
    *names = v;
    *n = k;
    return true;
}

static void build_call(struct ctx *c)
{
    const rest_request_t *req = c->req;
    const rest_func_t *f = req->func;
    const char **names;
    size_t n;
    if (!call_arg_names(c, &names, &n))
        return;
    bool composite = f->ret_kind == REST_RET_COMPOSITE;
    struct node *root = NULL;
    if (composite) {
        root = new_node(c);
        if (!root)
            return;
        if (f->ret_table >= 0) {
            set_node_table(root, &c->s->tables[f->ret_table]);
        } else {
            root->cols = f->ret_cols;
            root->n_cols = f->n_ret_cols;
        }
        root->label = f->name;
        if (!plan_root(c, root) || !attach_all(c, root, true))
            return;
    } else if (req->query->n_filters || req->query->n_logic || req->query->n_orders) {
        char msg[REST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "function %s does not return rows with columns", f->name);
        c_fail(c, 400, "PGRST100", msg,
               "Filters and ordering apply to functions that return a table or a row type.", NULL);
        return;
    }
    bool with_args = !req->args_whole_body && n > 0;
    out(c, "WITH \"pgrst_source\" AS (SELECT ");
    if (composite) {
        out(c, "\"pgrst_call\".* FROM ");
        if (with_args) {
            emit_args_source(c, names, n);
            out(c, ", LATERAL ");
        }
        emit_call_expr(c, names, n);
        out(c, " AS \"pgrst_call\"");
    } else {
        emit_call_expr(c, names, n);
        out(c, " AS \"pgrst_scalar\"");
        if (with_args) {
            out(c, " FROM ");
            emit_args_source(c, names, n);
        }
    }
    out(c, ") ");
    if (c->failed)
        return;
    emit_outer_head(c);
    if (req->count_exact) {
        out(c, "(SELECT pg_catalog.count(*) FROM (");
        if (composite)
            emit_node_select(c, root, "\"pgrst_source\"", NULL, READ_COUNT, top_window(req));
        else
            out(c, "SELECT 1 FROM \"pgrst_source\"");
        out(c, ") AS _pgrst_count)");
    } else {
        out(c, "NULL::bigint");
    }
    out(c, " AS total_result_set, ");
    emit_outer_tail(c, !composite, !f->returns_set, false);
    out(c, " FROM (");
    if (composite) {
        emit_node_select(c, root, "\"pgrst_source\"", NULL, READ_FULL, top_window(req));
    } else {
        out(c, "SELECT * FROM \"pgrst_source\"");
        emit_window(c, top_window(req));
    }
    out(c, ") AS _postgrest_t");
}

/* ==========================================================================================
 * Entry points
 */

static bool finish(struct ctx *c)
{
    if (c->failed)
        return false;
    if (c->overflow)
        return rest__fail(c->err, 400, "PGRST100", "The request is too complex",
                          "The SQL it needs is larger than this server builds.", NULL);
    return true;
}

static void ctx_init(struct ctx *c, cd_arena_t *arena, const rest_request_t *req,
                     rest_stmt_t *out_stmt, rest__err_t *err)
{
    memset(c, 0, sizeof(*c));
    memset(out_stmt, 0, sizeof(*out_stmt));
    cd_buf_init(&out_stmt->sql, REST_SQL_MAX_BYTES);
    memset(err, 0, sizeof(*err));
    c->arena = arena;
    c->req = req;
    c->s = req->schema;
    c->st = out_stmt;
    c->b = &out_stmt->sql;
    c->err = err;
}

bool rest__build(cd_arena_t *arena, const rest_request_t *req, rest_stmt_t *out_stmt,
                 rest__err_t *err)
{
    struct ctx c;
    ctx_init(&c, arena, req, out_stmt, err);
    switch (req->action) {
    case REST_ACT_READ:
        build_read(&c);
        break;
    case REST_ACT_INSERT:
    case REST_ACT_UPDATE:
    case REST_ACT_DELETE:
        build_mutation(&c);
        break;
    case REST_ACT_CALL:
        build_call(&c);
        break;
    }
    return finish(&c);
}

bool rest__build_explain(cd_arena_t *arena, const rest_request_t *req, rest_stmt_t *out_stmt,
                         rest__err_t *err)
{
    struct ctx c;
    ctx_init(&c, arena, req, out_stmt, err);
    struct node *root = new_node(&c);
    if (!root)
        return finish(&c);
    if (req->action == REST_ACT_READ) {
        set_node_table(root, req->table);
        if (plan_root(&c, root) && attach_all(&c, root, true)) {
            char src[300];
            cd_buf_t tmp;
            cd_buf_init(&tmp, 256);
            if (rest__quote_ident(&tmp, req->table->name) &&
                (size_t)snprintf(src, sizeof(src), "\"public\".%s", cd_buf_str(&tmp)) <
                    sizeof(src)) {
                out(&c, "EXPLAIN (FORMAT JSON) ");
                emit_node_select(&c, root, src, NULL, READ_COUNT, top_window(req));
            } else {
                c.overflow = true;
            }
            cd_buf_free(&tmp);
        }
    } else {
        c_fail(&c, 400, "PGRST100", "count=planned is only available on reads", NULL, NULL);
    }
    return finish(&c);
}
