/*
 * The write statements of the SQL builder (PostgREST's mutate and call queries): INSERT
 * (with on_conflict upserts and missing=default), UPDATE and DELETE with their WHERE and
 * RETURNING, and function calls with named, single-object and variadic arguments. Each
 * becomes the pgrst_source CTE that sql.c's outer SELECT reads back as the response.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest/rest_internal.h"
#include "rest/sql_internal.h"

/* ==========================================================================================
 * Mutations
 */

/* The columns of a mutation: columns=, else the keys of the object / of the first object
 * (every object of an array must have the same keys). */
static bool mutation_columns(struct rest__sql *c, const rest_col_t ***cols_out, size_t *n_out)
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
            names = rest__sql_alloc(c, n * sizeof(char *));
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
                    return rest__sql_fail(c, 400, "PGRST102", "All object keys must match", NULL,
                                          NULL);
            }
        }
    }
    const rest_col_t **cols = n ? rest__sql_alloc(c, n * sizeof(rest_col_t *)) : NULL;
    if (n && !cols)
        return false;
    for (size_t i = 0; i < n; i++) {
        cols[i] = rest__table_col(t, names[i]);
        if (!cols[i]) {
            char msg[REST_ERROR_MESSAGE_MAX];
            snprintf(msg, sizeof(msg), "Could not find the '%s' column of '%s' in the schema cache",
                     names[i], t->name);
            return rest__sql_fail(c, 400, "PGRST204", msg, NULL, NULL);
        }
    }
    *cols_out = cols;
    *n_out = n;
    return true;
}

/* AS "pgrst_body"("a" text, "b" integer) */
static void record_def(struct rest__sql *c, const rest_col_t **cols, size_t n)
{
    rest__sql_out(c, " AS \"pgrst_body\"(");
    for (size_t i = 0; i < n; i++) {
        rest__sql_out(c, i ? ", " : "");
        rest__sql_ident(c, cols[i]->name);
        rest__sql_out(c, " ");
        rest__sql_out(c, cols[i]->type);
    }
    rest__sql_out(c, ")");
}

static void emit_returning(struct rest__sql *c)
{
    const rest_request_t *req = c->req;
    const struct rest_prefer *p = req->prefer;
    enum rest_prefer_return ret = p ? p->ret : REST_RETURN_UNSET;
    if (ret == REST_RETURN_REPRESENTATION) {
        rest__sql_out(c, " RETURNING \"pgrst_m\".*");
    } else if (ret == REST_RETURN_HEADERS_ONLY && req->action == REST_ACT_INSERT &&
               req->table->pk.n) {
        rest__sql_out(c, " RETURNING ");
        for (size_t i = 0; i < req->table->pk.n; i++) {
            rest__sql_out(c, i ? ", " : "");
            rest__sql_out(c, "\"pgrst_m\".");
            rest__sql_ident(c, req->table->cols[req->table->pk.cols[i]].name);
        }
    } else {
        rest__sql_out(c, " RETURNING 1");
    }
}

/* The rows of an INSERT: DEFAULT VALUES, or the body's objects as records of the given
 * columns (missing=default: absent keys take the column default instead of NULL). */
static void emit_insert_rows(struct rest__sql *c, const rest_col_t **cols, size_t n)
{
    const rest_request_t *req = c->req;
    const struct rest_prefer *p = req->prefer;
    const json_t *body = req->body_json;
    bool defaults = req->query->has_columns && p && p->missing == REST_MISSING_DEFAULT;
    if (n == 0 && !json_is_array(body)) {
        rest__sql_out(c, " DEFAULT VALUES");
    } else if (n == 0) {
        rest__sql_out(c, " SELECT FROM pg_catalog.json_array_elements(");
        rest__sql_param(c, req->body_text);
        rest__sql_out(c, "::json)");
    } else {
        rest__sql_out(c, " (");
        for (size_t i = 0; i < n; i++) {
            rest__sql_out(c, i ? ", " : "");
            rest__sql_ident(c, cols[i]->name);
        }
        rest__sql_out(c, ") SELECT ");
        for (size_t i = 0; i < n; i++) {
            rest__sql_out(c, i ? ", " : "");
            if (defaults) {
                rest__sql_out(c, "CASE WHEN \"pgrst_e\".\"j\" ? ");
                rest__sql_literal_name(c, cols[i]->name);
                rest__sql_out(c, " THEN \"pgrst_body\".");
                rest__sql_ident(c, cols[i]->name);
                rest__sql_out(c, " ELSE ");
                rest__sql_out(c, cols[i]->default_expr ? cols[i]->default_expr : "NULL");
                rest__sql_out(c, " END");
            } else {
                rest__sql_out(c, "\"pgrst_body\".");
                rest__sql_ident(c, cols[i]->name);
            }
        }
        if (defaults) {
            rest__sql_out(
                c, " FROM pg_catalog.jsonb_array_elements(CASE WHEN pg_catalog.jsonb_typeof(");
            rest__sql_param(c, req->body_text);
            rest__sql_out(c, "::jsonb) = 'array' THEN ");
            rest__sql_param(c, req->body_text);
            rest__sql_out(c, "::jsonb ELSE pg_catalog.jsonb_build_array(");
            rest__sql_param(c, req->body_text);
            rest__sql_out(c,
                          "::jsonb) END) AS \"pgrst_e\"(\"j\"), LATERAL pg_catalog.jsonb_to_record("
                          "\"pgrst_e\".\"j\")");
        } else {
            rest__sql_out(c, json_is_array(body) ? " FROM pg_catalog.json_to_recordset("
                                                 : " FROM pg_catalog.json_to_record(");
            rest__sql_param(c, req->body_text);
            rest__sql_out(c, "::json)");
        }
        record_def(c, cols, n);
    }
}

/* ON CONFLICT of an upsert (Prefer: resolution=...): the on_conflict columns or the
 * primary key, then DO UPDATE of the inserted columns or DO NOTHING. */
static void emit_on_conflict(struct rest__sql *c, const rest_col_t **cols, size_t n)
{
    const rest_request_t *req = c->req;
    const rest_table_t *t = req->table;
    const struct rest_prefer *p = req->prefer;
    const struct rest_query *q = req->query;
    rest__sql_out(c, " ON CONFLICT");
    bool has_target = false;
    if (q->has_on_conflict && q->n_on_conflict) {
        rest__sql_out(c, " (");
        for (size_t i = 0; i < q->n_on_conflict; i++) {
            if (!rest__table_col(t, q->on_conflict[i])) {
                char msg[REST_ERROR_MESSAGE_MAX];
                snprintf(msg, sizeof(msg), "column %s.%s does not exist", t->name,
                         q->on_conflict[i]);
                rest__sql_fail(c, 400, "42703", msg, NULL, NULL);
                return;
            }
            rest__sql_out(c, i ? ", " : "");
            rest__sql_ident(c, q->on_conflict[i]);
        }
        rest__sql_out(c, ")");
        has_target = true;
    } else if (t->pk.n) {
        rest__sql_out(c, " (");
        for (size_t i = 0; i < t->pk.n; i++) {
            rest__sql_out(c, i ? ", " : "");
            rest__sql_ident(c, t->cols[t->pk.cols[i]].name);
        }
        rest__sql_out(c, ")");
        has_target = true;
    }
    if (p->resolution == REST_RESOLUTION_MERGE_DUPLICATES && n) {
        if (!has_target) {
            char msg[REST_ERROR_MESSAGE_MAX];
            snprintf(msg, sizeof(msg),
                     "'%s' has no primary key: say which columns identify a duplicate", t->name);
            rest__sql_fail(c, 400, "PGRST100", msg, NULL,
                           "Add on_conflict=<columns of a unique constraint> to the request.");
            return;
        }
        rest__sql_out(c, " DO UPDATE SET ");
        for (size_t i = 0; i < n; i++) {
            rest__sql_out(c, i ? ", " : "");
            rest__sql_ident(c, cols[i]->name);
            rest__sql_out(c, " = EXCLUDED.");
            rest__sql_ident(c, cols[i]->name);
        }
    } else {
        rest__sql_out(c, " DO NOTHING");
    }
}

static void emit_insert(struct rest__sql *c)
{
    const rest_request_t *req = c->req;
    const rest_table_t *t = req->table;
    const struct rest_prefer *p = req->prefer;
    const json_t *body = req->body_json;
    if (json_is_array(body) && json_array_size(body) == 0) {
        /* Nothing to insert: an empty result of the right shape. */
        rest__sql_out(c, "SELECT \"pgrst_m\".* FROM ");
        rest__sql_qualified(c, t->name);
        rest__sql_out(c, " AS \"pgrst_m\" WHERE false");
        return;
    }
    const rest_col_t **cols = NULL;
    size_t n = 0;
    if (!mutation_columns(c, &cols, &n))
        return;
    rest__sql_out(c, "INSERT INTO ");
    rest__sql_qualified(c, t->name);
    rest__sql_out(c, " AS \"pgrst_m\"");
    emit_insert_rows(c, cols, n);
    if (p && p->resolution != REST_RESOLUTION_UNSET)
        emit_on_conflict(c, cols, n);
    if (!c->failed)
        emit_returning(c);
}

/* WHERE for UPDATE/DELETE: the filters on "pgrst_m", or with a limit, the rows picked by a
 * sub-select in order (ctid). */
static void emit_mutation_where(struct rest__sql *c, struct rest__node *root)
{
    const rest_request_t *req = c->req;
    bool limited = req->limit >= 0 || req->offset > 0;
    rest__sql_out(c, " WHERE ");
    if (!limited) {
        bool first = true;
        rest__sql_conditions(c, root, "pgrst_m", &first);
        return;
    }
    if (req->table->is_view) {
        rest__sql_fail(c, 400, "PGRST100",
                       "limit and offset are not supported when changing a view", NULL,
                       "Filter the rows to change instead.");
        return;
    }
    rest__sql_out(c, "\"pgrst_m\".ctid = ANY (ARRAY(SELECT \"pgrst_u\".ctid FROM ");
    rest__sql_qualified(c, req->table->name);
    rest__sql_out(c, " AS \"pgrst_u\" WHERE ");
    bool first = true;
    rest__sql_conditions(c, root, "pgrst_u", &first);
    rest__sql_order(c, root, "pgrst_u");
    rest__sql_window(c, rest__sql_top_window(req));
    rest__sql_out(c, "))");
}

static void emit_update(struct rest__sql *c, struct rest__node *where)
{
    const rest_request_t *req = c->req;
    const rest_table_t *t = req->table;
    const struct rest_prefer *p = req->prefer;
    if (!json_is_object((const json_t *)req->body_json)) {
        rest__sql_fail(c, 400, "PGRST102", "Empty or invalid json",
                       "PATCH takes one JSON object; to change several rows use filters.", NULL);
        return;
    }
    const rest_col_t **cols = NULL;
    size_t n = 0;
    if (!mutation_columns(c, &cols, &n))
        return;
    if (n == 0) {
        rest__sql_out(c, "SELECT \"pgrst_m\".* FROM ");
        rest__sql_qualified(c, t->name);
        rest__sql_out(c, " AS \"pgrst_m\" WHERE false");
        return;
    }
    bool defaults = p && p->missing == REST_MISSING_DEFAULT;
    rest__sql_out(c, "UPDATE ");
    rest__sql_qualified(c, t->name);
    rest__sql_out(c, " AS \"pgrst_m\" SET ");
    for (size_t i = 0; i < n; i++) {
        rest__sql_out(c, i ? ", " : "");
        rest__sql_ident(c, cols[i]->name);
        if (defaults && !json_object_get(req->body_json, cols[i]->name)) {
            rest__sql_out(c, " = DEFAULT");
        } else {
            rest__sql_out(c, " = \"pgrst_body\".");
            rest__sql_ident(c, cols[i]->name);
        }
    }
    rest__sql_out(c, " FROM pg_catalog.json_to_record(");
    rest__sql_param(c, req->body_text);
    rest__sql_out(c, "::json)");
    record_def(c, cols, n);
    emit_mutation_where(c, where);
    emit_returning(c);
}

static void emit_delete(struct rest__sql *c, struct rest__node *where)
{
    rest__sql_out(c, "DELETE FROM ");
    rest__sql_qualified(c, c->req->table->name);
    rest__sql_out(c, " AS \"pgrst_m\"");
    emit_mutation_where(c, where);
    emit_returning(c);
}

void rest__sql_build_mutation(struct rest__sql *c)
{
    const rest_request_t *req = c->req;
    const struct rest_query *q = req->query;
    /* The root filters decide which rows change; they are checked against the table. */
    struct rest__node *where = rest__plan_new_node(c);
    if (!where)
        return;
    rest__plan_set_table(where, req->table);
    for (size_t i = 0; i < q->n_filters; i++)
        if (q->filters[i].n_embed_path == 0 &&
            !rest__sql_push_ptr(c, &where->filters, &where->n_filters, &where->cap_filters,
                                &q->filters[i]))
            return;
    for (size_t i = 0; i < q->n_logic; i++)
        if (q->logic[i].n_embed_path == 0 &&
            !rest__sql_push_ptr(c, &where->logic, &where->n_logic, &where->cap_logic, &q->logic[i]))
            return;
    for (size_t i = 0; i < q->n_orders; i++)
        if (q->orders[i].n_embed_path == 0 &&
            !rest__sql_push_ptr(c, &where->orders, &where->n_orders, &where->cap_orders,
                                &q->orders[i]))
            return;
    if ((req->action == REST_ACT_UPDATE || req->action == REST_ACT_DELETE) &&
        where->n_filters == 0 && where->n_logic == 0) {
        rest__sql_fail(
            c, 400, "21000",
            req->action == REST_ACT_UPDATE ? "UPDATE requires a WHERE clause"
                                           : "DELETE requires a WHERE clause",
            NULL,
            "Add a filter to the request, e.g. ?id=eq.1. To change every row on purpose, "
            "use a filter every row matches, such as ?id=not.is.null.");
        return;
    }
    bool repr = rest__sql_wants_representation(req);
    struct rest__node *root = NULL;
    if (repr) {
        root = rest__plan_new_node(c);
        if (!root)
            return;
        rest__plan_set_table(root, req->table);
        if (!rest__plan_root(c, root) || !rest__plan_attach_all(c, root, false))
            return;
    }
    rest__sql_out(c, "WITH \"pgrst_source\" AS (");
    if (req->action == REST_ACT_INSERT)
        emit_insert(c);
    else if (req->action == REST_ACT_UPDATE)
        emit_update(c, where);
    else
        emit_delete(c, where);
    if (c->failed)
        return;
    rest__sql_out(c, ") ");
    rest__sql_outer_head(c);
    bool count = req->count_exact;
    rest__sql_out(c, count ? "pg_catalog.count(_postgrest_t)" : "NULL::bigint");
    rest__sql_out(c, " AS total_result_set, ");
    bool location = req->action == REST_ACT_INSERT && req->prefer &&
                    req->prefer->ret == REST_RETURN_HEADERS_ONLY && req->table->pk.n;
    rest__sql_outer_tail(c, false, false, location);
    rest__sql_out(c, " FROM (");
    if (repr)
        rest__sql_node_select(c, root, "\"pgrst_source\"", NULL, REST__READ_FULL,
                              (struct rest__window){0, -1});
    else
        rest__sql_out(c, "SELECT * FROM \"pgrst_source\"");
    rest__sql_out(c, ") AS _postgrest_t");
}

/* ==========================================================================================
 * Function calls
 */

/* "public"."fn"("a" := "pgrst_args"."a", ...) */
static void emit_call_expr(struct rest__sql *c, const char *const *names, size_t n)
{
    const rest_request_t *req = c->req;
    const rest_func_t *f = req->func;
    rest__sql_qualified(c, f->name);
    rest__sql_out(c, "(");
    if (req->args_whole_body) {
        rest__sql_param(c, req->args_text ? req->args_text : "{}");
        rest__sql_out(c, "::");
        rest__sql_out(c, f->args[0].type);
    } else {
        for (size_t i = 0; i < n; i++) {
            const rest_arg_t *a = NULL;
            for (size_t k = 0; k < f->n_args && !a; k++)
                if (strcmp(f->args[k].name, names[i]) == 0)
                    a = &f->args[k];
            rest__sql_out(c, i ? ", " : "");
            if (a && a->variadic)
                rest__sql_out(c, "VARIADIC ");
            rest__sql_ident(c, names[i]);
            rest__sql_out(c, " := \"pgrst_args\".");
            rest__sql_ident(c, names[i]);
        }
    }
    rest__sql_out(c, ")");
}

/* json_to_record($1::json) AS "pgrst_args"("a" integer, ...) */
static void emit_args_source(struct rest__sql *c, const char *const *names, size_t n)
{
    const rest_request_t *req = c->req;
    const rest_func_t *f = req->func;
    rest__sql_out(c, "pg_catalog.json_to_record(");
    rest__sql_param(c, req->args_text);
    rest__sql_out(c, "::json) AS \"pgrst_args\"(");
    for (size_t i = 0; i < n; i++) {
        const rest_arg_t *a = NULL;
        for (size_t k = 0; k < f->n_args && !a; k++)
            if (strcmp(f->args[k].name, names[i]) == 0)
                a = &f->args[k];
        if (!a) {
            c->overflow = true;
            return;
        }
        rest__sql_out(c, i ? ", " : "");
        rest__sql_ident(c, a->name);
        rest__sql_out(c, " ");
        rest__sql_out(c, a->type);
    }
    rest__sql_out(c, ")");
}

/* The argument names present in args_text (a JSON object), in the function's order. */
static bool call_arg_names(struct rest__sql *c, const char ***names, size_t *n)
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
        return rest__sql_fail(c, 400, "PGRST102", "Empty or invalid json", NULL, NULL);
    }
    const char **v = rest__sql_alloc(c, f->n_args * sizeof(char *));
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

void rest__sql_build_call(struct rest__sql *c)
{
    const rest_request_t *req = c->req;
    const rest_func_t *f = req->func;
    const char **names;
    size_t n;
    if (!call_arg_names(c, &names, &n))
        return;
    bool composite = f->ret_kind == REST_RET_COMPOSITE;
    struct rest__node *root = NULL;
    if (composite) {
        root = rest__plan_new_node(c);
        if (!root)
            return;
        if (f->ret_table >= 0) {
            rest__plan_set_table(root, &c->s->tables[f->ret_table]);
        } else {
            root->cols = f->ret_cols;
            root->n_cols = f->n_ret_cols;
        }
        root->label = f->name;
        if (!rest__plan_root(c, root) || !rest__plan_attach_all(c, root, true))
            return;
    } else if (req->query->n_filters || req->query->n_logic || req->query->n_orders) {
        char msg[REST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "function %s does not return rows with columns", f->name);
        rest__sql_fail(c, 400, "PGRST100", msg,
                       "Filters and ordering apply to functions that return a table or a row type.",
                       NULL);
        return;
    }
    bool with_args = !req->args_whole_body && n > 0;
    rest__sql_out(c, "WITH \"pgrst_source\" AS (SELECT ");
    if (composite) {
        rest__sql_out(c, "\"pgrst_call\".* FROM ");
        if (with_args) {
            emit_args_source(c, names, n);
            rest__sql_out(c, ", LATERAL ");
        }
        emit_call_expr(c, names, n);
        rest__sql_out(c, " AS \"pgrst_call\"");
    } else {
        emit_call_expr(c, names, n);
        rest__sql_out(c, " AS \"pgrst_scalar\"");
        if (with_args) {
            rest__sql_out(c, " FROM ");
            emit_args_source(c, names, n);
        }
    }
    rest__sql_out(c, ") ");
    if (c->failed)
        return;
    rest__sql_outer_head(c);
    if (req->count_exact) {
        rest__sql_out(c, "(SELECT pg_catalog.count(*) FROM (");
        if (composite)
            rest__sql_node_select(c, root, "\"pgrst_source\"", NULL, REST__READ_COUNT,
                                  rest__sql_top_window(req));
        else
            rest__sql_out(c, "SELECT 1 FROM \"pgrst_source\"");
        rest__sql_out(c, ") AS _pgrst_count)");
    } else {
        rest__sql_out(c, "NULL::bigint");
    }
    rest__sql_out(c, " AS total_result_set, ");
    rest__sql_outer_tail(c, !composite, !f->returns_set, false);
    rest__sql_out(c, " FROM (");
    if (composite) {
        rest__sql_node_select(c, root, "\"pgrst_source\"", NULL, REST__READ_FULL,
                              rest__sql_top_window(req));
    } else {
        rest__sql_out(c, "SELECT * FROM \"pgrst_source\"");
        rest__sql_window(c, rest__sql_top_window(req));
    }
    rest__sql_out(c, ") AS _postgrest_t");
}
