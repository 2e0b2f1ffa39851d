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
 *
 * Three files, as PostgREST splits Plan from Query: sql_plan.c turns the request into a tree
 * of nodes; this file writes reads (and the outer SELECT every statement shares) and holds
 * the entry points; sql_write.c writes INSERT/UPDATE/DELETE and function calls. Their shared
 * structures are in sql_internal.h.
 */
#include <ctype.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest/rest_internal.h"
#include "rest/sql_internal.h"

/* ==========================================================================================
 * Text output: every append is checked; the first failure sticks
 */

void rest__sql_out(struct rest__sql *c, const char *s)
{
    if (!c->overflow && !cd_buf_adds(c->b, s))
        c->overflow = true;
}

static void outn(struct rest__sql *c, const char *s, size_t n)
{
    if (!c->overflow && !cd_buf_add(c->b, s, n))
        c->overflow = true;
}

static void outf(struct rest__sql *c, const char *fmt, ...) CD_PRINTF(2, 3);
static void outf(struct rest__sql *c, const char *fmt, ...)
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

void rest__sql_ident(struct rest__sql *c, const char *name)
{
    if (!c->overflow && !rest__quote_ident(c->b, name))
        c->overflow = true;
}

/* A SQL string literal of a name from the schema cache (never of request data). */
void rest__sql_literal_name(struct rest__sql *c, const char *name)
{
    rest__sql_out(c, "'");
    for (const char *p = name; *p; p++) {
        if (*p == '\'')
            rest__sql_out(c, "''");
        else
            outn(c, p, 1);
    }
    rest__sql_out(c, "'");
}

/* "public"."name" */
void rest__sql_qualified(struct rest__sql *c, const char *name)
{
    rest__sql_out(c, "\"public\".");
    rest__sql_ident(c, name);
}

/* Appends $n for value (kept by reference: it must outlive the statement). */
void rest__sql_param(struct rest__sql *c, const char *value)
{
    rest_stmt_t *st = c->st;
    if (st->n_params >= REST_SQL_MAX_PARAMS) {
        c->overflow = true;
        return;
    }
    if (st->n_params == st->cap_params) {
        size_t ncap = st->cap_params ? st->cap_params * 2 : 16;
        const char **np = rest__sql_alloc(c, ncap * sizeof(char *));
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

static void alias_of(const struct rest__node *n, char kind, char *buf, size_t len)
{
    snprintf(buf, len, "pgrst_%c%d", kind, n->id);
}

/* "pgrst_t3" */
static void node_alias(struct rest__sql *c, const struct rest__node *n, char kind)
{
    char a[32];
    alias_of(n, kind, a, sizeof(a));
    rest__sql_ident(c, a);
}

/* ==========================================================================================
 * Columns, JSON paths, casts
 */

static const rest_col_t *node_col(const struct rest__node *n, const char *name)
{
    for (size_t i = 0; i < n->n_cols; i++)
        if (strcmp(n->cols[i].name, name) == 0)
            return &n->cols[i];
    return NULL;
}

/* PostgreSQL's own message for an unknown column, as PostgREST passes it on. */
static bool no_column(struct rest__sql *c, const struct rest__node *n, const char *name)
{
    char msg[REST_ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof(msg), "column %s.%s does not exist", n->label, name);
    return rest__sql_fail(c, 400, "42703", msg, NULL, NULL);
}

static const rest_col_t *need_col(struct rest__sql *c, const struct rest__node *n, const char *name)
{
    const rest_col_t *col = node_col(n, name);
    if (!col)
        no_column(c, n, name);
    return col;
}

/* The column with its JSON path: "pgrst_t0"."data"->$3::text->>0 */
static void field_expr(struct rest__sql *c, const char *alias, const struct rest_field *f)
{
    rest__sql_ident(c, alias);
    rest__sql_out(c, ".");
    rest__sql_ident(c, f->name);
    for (size_t i = 0; i < f->n_json; i++) {
        const struct rest_json_step *js = &f->json[i];
        rest__sql_out(c, js->arrow == REST_JSON_ARROW2 ? "->>" : "->");
        if (js->is_index) {
            rest__sql_param(c, js->key);
            rest__sql_out(c, "::integer");
        } else {
            rest__sql_param(c, js->key);
            rest__sql_out(c, "::text");
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
static const char *checked_cast(struct rest__sql *c, const char *cast)
{
    size_t n = strlen(cast);
    char *t = rest__sql_alloc(c, n + 1);
    if (!t)
        return NULL;
    for (size_t i = 0; i <= n; i++) {
        unsigned char ch = (unsigned char)cast[i];
        if (ch && !(isalnum(ch) || ch == '_' || ch == ' ')) {
            rest__sql_fail(c, 400, "PGRST100", "failed to parse select parameter",
                           "A cast must name a type.", NULL);
            return NULL;
        }
        t[i] = (char)tolower(ch);
    }
    if (!rest__schema_has_type(c->s, t)) {
        char msg[REST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "type \"%s\" does not exist", cast);
        rest__sql_fail(c, 400, "42704", msg, NULL, NULL);
        return NULL;
    }
    return t;
}

/* ==========================================================================================
 * Filters
 */

static const char *like_value(struct rest__sql *c, const char *v)
{
    size_t n = strlen(v);
    char *p = rest__sql_alloc(c, n + 1);
    if (!p)
        return NULL;
    for (size_t i = 0; i <= n; i++)
        p[i] = v[i] == '*' ? '%' : v[i];
    return p;
}

/* {"a","b,c"}: an array literal of the in.(...) elements, each quoted. */
static const char *array_literal(struct rest__sql *c, char **list, size_t n)
{
    size_t len = 3;
    for (size_t i = 0; i < n; i++)
        len += 3 + 2 * strlen(list[i]);
    char *p = rest__sql_alloc(c, len);
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

/* The SQL of each operator that has a fixed spelling: the infix written between column and
 * value, or the tsquery function of a full-text operator. IS and IN have shapes of their own
 * in emit_filter; an operator without an entry is refused there. */
struct op_sql {
    const char *infix;
    const char *tsquery_fn;
};

static const struct op_sql op_sql_table[] = {
    [REST_OP_EQ] = {" = ", NULL},
    [REST_OP_NEQ] = {" <> ", NULL},
    [REST_OP_GT] = {" > ", NULL},
    [REST_OP_GTE] = {" >= ", NULL},
    [REST_OP_LT] = {" < ", NULL},
    [REST_OP_LTE] = {" <= ", NULL},
    [REST_OP_LIKE] = {" LIKE ", NULL},
    [REST_OP_ILIKE] = {" ILIKE ", NULL},
    [REST_OP_MATCH] = {" ~ ", NULL},
    [REST_OP_IMATCH] = {" ~* ", NULL},
    [REST_OP_ISDISTINCT] = {" IS DISTINCT FROM ", NULL},
    [REST_OP_CS] = {" @> ", NULL},
    [REST_OP_CD] = {" <@ ", NULL},
    [REST_OP_OV] = {" && ", NULL},
    [REST_OP_SL] = {" << ", NULL},
    [REST_OP_SR] = {" >> ", NULL},
    [REST_OP_NXL] = {" &> ", NULL}, /* does not extend to the left of */
    [REST_OP_NXR] = {" &< ", NULL}, /* does not extend to the right of */
    [REST_OP_ADJ] = {" -|- ", NULL},
    [REST_OP_FTS] = {NULL, "pg_catalog.to_tsquery("},
    [REST_OP_PLFTS] = {NULL, "pg_catalog.plainto_tsquery("},
    [REST_OP_PHFTS] = {NULL, "pg_catalog.phraseto_tsquery("},
    [REST_OP_WFTS] = {NULL, "pg_catalog.websearch_to_tsquery("},
};

/* The SQL of each `is.` value, written after the column. */
static const char *const is_sql[] = {
#define IS_SQL(e, word, sql) [e] = sql,
    REST_IS_VALUES(IS_SQL)
#undef IS_SQL
};

/* The entry of op; all NULL for an operator outside the table. */
static struct op_sql op_sql_of(enum rest_op op)
{
    if ((size_t)op >= CD_ARRAY_LEN(op_sql_table))
        return (struct op_sql){NULL, NULL};
    return op_sql_table[op];
}

/* One filter on node n, written against alias (the node's table alias, or another alias of
 * the same table for a limited UPDATE/DELETE). */
static void emit_filter(struct rest__sql *c, const struct rest__node *n, const char *alias,
                        const struct rest_filter *f)
{
    const rest_col_t *col = need_col(c, n, f->field.name);
    if (!col)
        return;
    const struct rest_op_expr *x = &f->expr;
    if (x->negated)
        rest__sql_out(c, "NOT (");
    switch (x->op) {
    case REST_OP_IS:
        field_expr(c, alias, &f->field);
        CD_ASSERT(x->is_value >= REST_IS_NULL && x->is_value <= REST_IS_UNKNOWN);
        rest__sql_out(c, is_sql[x->is_value]);
        break;
    case REST_OP_IN: {
        const char *arr = array_literal(c, x->list, x->n_list);
        if (!arr)
            return;
        field_expr(c, alias, &f->field);
        rest__sql_out(c, " = ANY (");
        rest__sql_param(c, arr);
        rest__sql_out(c, ")");
        break;
    }
    case REST_OP_FTS:
    case REST_OP_PLFTS:
    case REST_OP_PHFTS:
    case REST_OP_WFTS: {
        bool direct = col->is_tsvector && f->field.n_json == 0;
        if (!direct) {
            rest__sql_out(c, "pg_catalog.to_tsvector(");
            if (x->fts_config) {
                rest__sql_param(c, x->fts_config);
                rest__sql_out(c, "::regconfig, ");
            }
        }
        field_expr(c, alias, &f->field);
        if (!direct)
            rest__sql_out(c, ")");
        rest__sql_out(c, " @@ ");
        rest__sql_out(c, op_sql_of(x->op).tsquery_fn);
        if (x->fts_config) {
            rest__sql_param(c, x->fts_config);
            rest__sql_out(c, "::regconfig, ");
        }
        rest__sql_param(c, x->value ? x->value : "");
        rest__sql_out(c, ")");
        break;
    }
    default: {
        const char *op = op_sql_of(x->op).infix;
        if (!op) {
            rest__sql_fail(c, 400, "PGRST100", "failed to parse filter", "Unknown operator.", NULL);
            return;
        }
        const char *v = x->value ? x->value : "";
        if (x->op == REST_OP_LIKE || x->op == REST_OP_ILIKE) {
            v = like_value(c, v);
            if (!v)
                return;
        }
        field_expr(c, alias, &f->field);
        rest__sql_out(c, op);
        if (x->quantifier != REST_QUANT_NONE) {
            rest__sql_out(c, x->quantifier == REST_QUANT_ANY ? "ANY (" : "ALL (");
            rest__sql_param(c, v);
            rest__sql_out(c, ")");
        } else {
            rest__sql_param(c, v);
        }
        break;
    }
    }
    if (x->negated)
        rest__sql_out(c, ")");
}

static void emit_logic_tree(struct rest__sql *c, const struct rest__node *n, const char *alias,
                            const struct rest_logic_tree *t)
{
    if (t->is_filter) {
        emit_filter(c, n, alias, &t->filter);
        return;
    }
    if (t->negated)
        rest__sql_out(c, "NOT ");
    rest__sql_out(c, "(");
    for (size_t i = 0; i < t->n_children; i++) {
        if (i)
            rest__sql_out(c, t->op == REST_LOGIC_OR ? " OR " : " AND ");
        emit_logic_tree(c, n, alias, &t->children[i]);
    }
    rest__sql_out(c, ")");
}

/* Writes the node's own conditions (filters, logic, null tests on embeds, !inner), each
 * preceded by " AND " unless it is the first (*first tracks that). */
void rest__sql_conditions(struct rest__sql *c, const struct rest__node *n, const char *alias,
                          bool *first)
{
    for (size_t i = 0; i < n->n_filters; i++) {
        rest__sql_out(c, *first ? "" : " AND ");
        *first = false;
        emit_filter(c, n, alias, n->filters[i]);
    }
    for (size_t i = 0; i < n->n_logic; i++) {
        rest__sql_out(c, *first ? "" : " AND ");
        *first = false;
        emit_logic_tree(c, n, alias, &n->logic[i]->tree);
    }
    for (size_t i = 0; i < n->n_nulls; i++) {
        rest__sql_out(c, *first ? "" : " AND ");
        *first = false;
        node_alias(c, n->nulls[i].child, 'l');
        rest__sql_out(c, ".\"pgrst_body\"");
        rest__sql_out(c, n->nulls[i].is_null ? " IS NULL" : " IS NOT NULL");
    }
    for (size_t i = 0; i < n->n_children; i++) {
        const struct rest__node *ch = n->children[i];
        if (!ch->inner || ch->spread)
            continue;
        rest__sql_out(c, *first ? "" : " AND ");
        *first = false;
        node_alias(c, ch, 'l');
        rest__sql_out(c, ".\"pgrst_body\" IS NOT NULL");
    }
}

static bool has_conditions(const struct rest__node *n)
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

/* "la"."lcol" = "ra"."rcol": one column pair of a join condition. */
static void emit_col_eq(struct rest__sql *c, const char *la, const char *lcol, const char *ra,
                        const char *rcol)
{
    rest__sql_ident(c, la);
    rest__sql_out(c, ".");
    rest__sql_ident(c, lcol);
    rest__sql_out(c, " = ");
    rest__sql_ident(c, ra);
    rest__sql_out(c, ".");
    rest__sql_ident(c, rcol);
}

/* child_alias.child_col = parent_alias.parent_col for every column pair of the relationship
 * (for many-to-many: junction.col = parent.col). */
static void emit_join_cond(struct rest__sql *c, const struct rest__node *child,
                           const char *parent_alias)
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
            rest__sql_out(c, " AND ");
        if (r->card == REST_M2M) /* fk: junction -> origin */
            emit_col_eq(c, ja, fcol, parent_alias, tcol);
        else if (r->fk_from_origin)
            emit_col_eq(c, ca, tcol, parent_alias, fcol);
        else
            emit_col_eq(c, ca, fcol, parent_alias, tcol);
    }
}

/* For many-to-many: INNER JOIN junction ON junction.col = target.col */
static void emit_junction(struct rest__sql *c, const struct rest__node *child)
{
    const rest_rel_t *r = &child->rel;
    const rest_schema_t *s = c->s;
    char ca[32], ja[32];
    alias_of(child, 't', ca, sizeof(ca));
    alias_of(child, 'j', ja, sizeof(ja));
    rest__sql_out(c, " INNER JOIN ");
    rest__sql_qualified(c, s->tables[r->junction].name);
    rest__sql_out(c, " AS ");
    rest__sql_ident(c, ja);
    rest__sql_out(c, " ON ");
    const rest_fk_t *fk = r->fk2;
    const rest_table_t *from = &s->tables[fk->from], *to = &s->tables[fk->to];
    for (size_t i = 0; i < fk->n_cols; i++) {
        if (i)
            rest__sql_out(c, " AND ");
        emit_col_eq(c, ja, from->cols[fk->from_cols[i]].name, ca, to->cols[fk->to_cols[i]].name);
    }
}

/* ==========================================================================================
 * Reads: SELECT ... FROM ... LATERAL embeds ... WHERE ... ORDER BY ... LIMIT
 */

static void emit_select_list(struct rest__sql *c, const struct rest__node *n)
{
    char ta[32];
    alias_of(n, 't', ta, sizeof(ta));
    bool first = true;
    if (n->all_columns) {
        rest__sql_ident(c, ta);
        rest__sql_out(c, ".*");
        first = false;
    }
    size_t child = 0;
    for (size_t i = 0; i < n->n_items; i++) {
        const struct rest_select_item *it = &n->items[i];
        switch (it->kind) {
        case REST_SELECT_STAR:
            rest__sql_out(c, first ? "" : ", ");
            first = false;
            rest__sql_ident(c, ta);
            rest__sql_out(c, ".*");
            break;
        case REST_SELECT_FIELD: {
            if (!need_col(c, n, it->field.name))
                return;
            const char *cast = it->cast ? checked_cast(c, it->cast) : NULL;
            if (it->cast && !cast)
                return;
            rest__sql_out(c, first ? "" : ", ");
            first = false;
            if (cast)
                rest__sql_out(c, "CAST(");
            field_expr(c, ta, &it->field);
            if (cast) {
                rest__sql_out(c, " AS ");
                rest__sql_out(c, cast);
                rest__sql_out(c, ")");
            }
            rest__sql_out(c, " AS ");
            rest__sql_ident(c, field_out_name(&it->field, it->alias));
            break;
        }
        case REST_SELECT_EMBED:
        case REST_SELECT_SPREAD: {
            const struct rest__node *ch = n->children[child++];
            if (ch->empty)
                break;
            rest__sql_out(c, first ? "" : ", ");
            first = false;
            if (ch->spread) {
                node_alias(c, ch, 'l');
                rest__sql_out(c, ".*");
                break;
            }
            if (!ch->to_one)
                rest__sql_out(c, "COALESCE(");
            node_alias(c, ch, 'l');
            rest__sql_out(c, ".\"pgrst_body\"");
            if (!ch->to_one)
                rest__sql_out(c, ", '[]'::json)");
            rest__sql_out(c, " AS ");
            rest__sql_ident(c, ch->alias ? ch->alias : ch->relation);
            break;
        }
        }
    }
}

/* LEFT JOIN LATERAL (<child>) AS pgrst_l<k> ON TRUE, for each child (REST__READ_COUNT: only the
 * children the WHERE clause looks at). */
static void emit_laterals(struct rest__sql *c, const struct rest__node *n,
                          enum rest__read_mode mode)
{
    char ta[32];
    alias_of(n, 't', ta, sizeof(ta));
    for (size_t i = 0; i < n->n_children; i++) {
        const struct rest__node *ch = n->children[i];
        if (mode == REST__READ_COUNT) {
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
        struct rest__window w = {0, -1};
        if (ch->range && !ch->to_one) {
            w.offset = ch->range->has_offset ? ch->range->offset : 0;
            w.limit = ch->range->has_limit ? ch->range->limit : -1;
        }
        rest__sql_out(c,
                      ch->spread && ch->inner ? " INNER JOIN LATERAL (" : " LEFT JOIN LATERAL (");
        if (ch->spread) {
            rest__sql_node_select(c, ch, src, ta, REST__READ_FULL, w);
        } else {
            rest__sql_out(c, ch->to_one ? "SELECT pg_catalog.row_to_json("
                                        : "SELECT pg_catalog.json_agg(");
            node_alias(c, ch, 's');
            rest__sql_out(c, ") AS \"pgrst_body\" FROM (");
            rest__sql_node_select(c, ch, src, ta, REST__READ_FULL, w);
            rest__sql_out(c, ") AS ");
            node_alias(c, ch, 's');
        }
        rest__sql_out(c, ") AS ");
        node_alias(c, ch, 'l');
        rest__sql_out(c, " ON TRUE");
    }
}

/* An ORDER BY term on a to-one embed's column: a correlated subquery over the relationship. */
static void emit_related_order(struct rest__sql *c, const struct rest__node *n,
                               const struct rest__node *ch, const struct rest_order_term *t)
{
    const rest_table_t *target = &c->s->tables[ch->rel.target];
    if (!rest__table_col(target, t->field.name)) {
        char msg[REST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "column %s.%s does not exist", target->name, t->field.name);
        rest__sql_fail(c, 400, "42703", msg, NULL, NULL);
        return;
    }
    char ta[32], ca[32];
    alias_of(n, 't', ta, sizeof(ta));
    alias_of(ch, 't', ca, sizeof(ca));
    rest__sql_out(c, "(SELECT ");
    field_expr(c, ca, &t->field);
    rest__sql_out(c, " FROM ");
    rest__sql_qualified(c, target->name);
    rest__sql_out(c, " AS ");
    rest__sql_ident(c, ca);
    if (ch->rel.card == REST_M2M)
        emit_junction(c, ch);
    rest__sql_out(c, " WHERE ");
    emit_join_cond(c, ch, ta);
    rest__sql_out(c, " LIMIT 1)");
}

void rest__sql_order(struct rest__sql *c, const struct rest__node *n, const char *alias)
{
    bool first = true;
    for (size_t k = 0; k < n->n_orders; k++) {
        const struct rest_order *o = n->orders[k];
        for (size_t i = 0; i < o->n_terms; i++) {
            const struct rest_order_term *t = &o->terms[i];
            rest__sql_out(c, first ? " ORDER BY " : ", ");
            first = false;
            if (t->relation) {
                const struct rest__node *ch = rest__plan_find_child(n, t->relation);
                if (!ch) {
                    char msg[REST_ERROR_MESSAGE_MAX], hint[REST_ERR_HINT_MAX];
                    snprintf(msg, sizeof(msg), "'%s' is not an embedded resource in this request",
                             t->relation);
                    snprintf(hint, sizeof(hint),
                             "Verify that '%s' is included in the 'select' query parameter.",
                             t->relation);
                    rest__sql_fail(c, 400, "PGRST108", msg, NULL, hint);
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
                    rest__sql_fail(c, 400, "PGRST118", msg, det, NULL);
                    return;
                }
                emit_related_order(c, n, ch, t);
            } else {
                if (!need_col(c, n, t->field.name))
                    return;
                field_expr(c, alias, &t->field);
            }
            if (t->dir == REST_ORDER_DESC)
                rest__sql_out(c, " DESC");
            else if (t->dir == REST_ORDER_ASC)
                rest__sql_out(c, " ASC");
            if (t->nulls == REST_NULLS_FIRST)
                rest__sql_out(c, " NULLS FIRST");
            else if (t->nulls == REST_NULLS_LAST)
                rest__sql_out(c, " NULLS LAST");
        }
    }
}

void rest__sql_window(struct rest__sql *c, struct rest__window w)
{
    if (w.limit >= 0)
        outf(c, " LIMIT %" PRId64, w.limit);
    if (w.offset > 0)
        outf(c, " OFFSET %" PRId64, w.offset);
}

/* SELECT <list> FROM <source> AS pgrst_t<id> [junction] [laterals] WHERE <join> AND <own
 * conditions> [ORDER BY] [LIMIT/OFFSET]. parent_alias: NULL at the root. */
void rest__sql_node_select(struct rest__sql *c, const struct rest__node *n, const char *source,
                           const char *parent_alias, enum rest__read_mode mode,
                           struct rest__window w)
{
    char ta[32];
    alias_of(n, 't', ta, sizeof(ta));
    rest__sql_out(c, "SELECT ");
    if (mode == REST__READ_COUNT)
        rest__sql_out(c, "1");
    else
        emit_select_list(c, n);
    rest__sql_out(c, " FROM ");
    rest__sql_out(c, source);
    rest__sql_out(c, " AS ");
    rest__sql_ident(c, ta);
    if (parent_alias && n->rel.card == REST_M2M)
        emit_junction(c, n);
    emit_laterals(c, n, mode);
    bool first = true;
    if (parent_alias || has_conditions(n)) {
        rest__sql_out(c, " WHERE ");
        if (parent_alias) {
            emit_join_cond(c, n, parent_alias);
            first = false;
        }
        rest__sql_conditions(c, n, ta, &first);
    }
    if (mode == REST__READ_COUNT)
        return;
    rest__sql_order(c, n, ta);
    rest__sql_window(c, w);
}

/* ==========================================================================================
 * The outer SELECT shared by every statement
 */

bool rest__sql_wants_representation(const rest_request_t *req)
{
    return req->prefer && req->prefer->ret == REST_RETURN_REPRESENTATION;
}

static void emit_body(struct rest__sql *c, bool scalar, bool single_row)
{
    const rest_request_t *req = c->req;
    bool mutation = req->action == REST_ACT_INSERT || req->action == REST_ACT_UPDATE ||
                    req->action == REST_ACT_DELETE;
    if (req->head || (mutation && !rest__sql_wants_representation(req)) ||
        (req->action == REST_ACT_CALL && req->func->ret_kind == REST_RET_VOID)) {
        rest__sql_out(c, "NULL::text");
        return;
    }
    if (req->media == REST_MEDIA_CSV) {
        rest__sql_out(c, "coalesce(pgrst.csv_header((pg_catalog.array_agg(pg_catalog.row_to_json("
                         "_postgrest_t)))[1]) || E'\\n' || pg_catalog.string_agg(pgrst.csv_row("
                         "pg_catalog.row_to_json(_postgrest_t)), E'\\n'), '')");
        return;
    }
    const char *agg = scalar ? "pg_catalog.json_agg(_postgrest_t.pgrst_scalar)"
                             : "pg_catalog.json_agg(_postgrest_t)";
    bool one = single_row || req->media == REST_MEDIA_SINGULAR;
    if (one) {
        rest__sql_out(c, "coalesce(");
        if (req->strip_nulls)
            rest__sql_out(c, "pg_catalog.json_strip_nulls(");
        outf(c, "(%s->0)", agg);
        if (req->strip_nulls)
            rest__sql_out(c, ")");
        rest__sql_out(c, "::text, 'null')");
    } else {
        if (req->strip_nulls)
            rest__sql_out(c, "pg_catalog.json_strip_nulls(");
        outf(c, "coalesce(%s, '[]')", agg);
        if (req->strip_nulls)
            rest__sql_out(c, ")");
        rest__sql_out(c, "::text");
    }
}

/* The guard that turns "singular but not one row" and "more rows than max-affected" into an
 * error inside the transaction, so a mutation is rolled back. */
static void emit_guard(struct rest__sql *c)
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
        rest__sql_out(c, "NULL)");
}

void rest__sql_outer_head(struct rest__sql *c)
{
    rest__sql_out(c, "SELECT ");
}

void rest__sql_outer_tail(struct rest__sql *c, bool scalar, bool single_row, bool location)
{
    rest__sql_out(c, "pg_catalog.count(_postgrest_t) AS page_total, ");
    emit_body(c, scalar, single_row);
    rest__sql_out(
        c, " AS body, nullif(pg_catalog.current_setting('response.headers', true), '') AS "
           "response_headers, nullif(pg_catalog.current_setting('response.status', true), '') AS "
           "response_status, ");
    if (location)
        rest__sql_out(
            c, "CASE WHEN pg_catalog.count(_postgrest_t) = 1 THEN (SELECT "
               "pg_catalog.json_agg(pg_catalog.json_build_array(pgrst_kv.key, coalesce('eq.' || "
               "pgrst_kv.value, 'is.null')))::text FROM pg_catalog.json_each_text((SELECT "
               "pg_catalog.row_to_json(pgrst_loc) FROM \"pgrst_source\" AS pgrst_loc LIMIT 1)) "
               "AS pgrst_kv) END");
    else
        rest__sql_out(c, "NULL::text");
    rest__sql_out(c, " AS location");
    emit_guard(c);
}

/* ==========================================================================================
 * The whole read
 */

struct rest__window rest__sql_top_window(const rest_request_t *req)
{
    struct rest__window w = {req->offset > 0 ? req->offset : 0, req->limit};
    return w;
}

static void build_read(struct rest__sql *c)
{
    const rest_request_t *req = c->req;
    struct rest__node *root = rest__plan_new_node(c);
    if (!root)
        return;
    rest__plan_set_table(root, req->table);
    if (!rest__plan_root(c, root) || !rest__plan_attach_all(c, root, true))
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
    rest__sql_outer_head(c);
    if (req->count_exact) {
        rest__sql_out(c, "(SELECT pg_catalog.count(*) FROM (");
        rest__sql_node_select(c, root, src, NULL, REST__READ_COUNT, rest__sql_top_window(req));
        if (req->count_cap > 0)
            outf(c, " LIMIT %" PRId64, req->count_cap);
        rest__sql_out(c, ") AS _pgrst_count)");
    } else {
        rest__sql_out(c, "NULL::bigint");
    }
    rest__sql_out(c, " AS total_result_set, ");
    rest__sql_outer_tail(c, false, false, false);
    rest__sql_out(c, " FROM (");
    rest__sql_node_select(c, root, src, NULL, REST__READ_FULL, rest__sql_top_window(req));
    rest__sql_out(c, ") AS _postgrest_t");
}

/* ==========================================================================================
 * Entry points
 */

static bool finish(struct rest__sql *c)
{
    if (c->failed)
        return false;
    if (c->overflow)
        return rest__fail(c->err, 400, "PGRST100", "The request is too complex",
                          "The SQL it needs is larger than this server builds.", NULL);
    return true;
}

static void ctx_init(struct rest__sql *c, cd_arena_t *arena, const rest_request_t *req,
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
    struct rest__sql c;
    ctx_init(&c, arena, req, out_stmt, err);
    switch (req->action) {
    case REST_ACT_READ:
        build_read(&c);
        break;
    case REST_ACT_INSERT:
    case REST_ACT_UPDATE:
    case REST_ACT_DELETE:
        rest__sql_build_mutation(&c);
        break;
    case REST_ACT_CALL:
        rest__sql_build_call(&c);
        break;
    }
    return finish(&c);
}

bool rest__build_explain(cd_arena_t *arena, const rest_request_t *req, rest_stmt_t *out_stmt,
                         rest__err_t *err)
{
    struct rest__sql c;
    ctx_init(&c, arena, req, out_stmt, err);
    struct rest__node *root = rest__plan_new_node(&c);
    if (!root)
        return finish(&c);
    if (req->action == REST_ACT_READ) {
        rest__plan_set_table(root, req->table);
        if (rest__plan_root(&c, root) && rest__plan_attach_all(&c, root, true)) {
            char src[300];
            cd_buf_t tmp;
            cd_buf_init(&tmp, 256);
            if (rest__quote_ident(&tmp, req->table->name) &&
                (size_t)snprintf(src, sizeof(src), "\"public\".%s", cd_buf_str(&tmp)) <
                    sizeof(src)) {
                rest__sql_out(&c, "EXPLAIN (FORMAT JSON) ");
                rest__sql_node_select(&c, root, src, NULL, REST__READ_COUNT,
                                      rest__sql_top_window(req));
            } else {
                c.overflow = true;
            }
            cd_buf_free(&tmp);
        }
    } else {
        rest__sql_fail(&c, 400, "PGRST100", "count=planned is only available on reads", NULL, NULL);
    }
    return finish(&c);
}
