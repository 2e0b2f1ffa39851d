/*
 * Planning for the SQL builder (PostgREST's Plan step): the parsed request, checked against
 * the schema cache, becomes a tree of nodes, one per table (the root and every embed), with
 * the filters, logic trees, orders and ranges of the request attached to the node they
 * apply to. Nothing here writes SQL; sql.c walks the finished tree and emits the statement.
 */
#include <string.h>

#include "rest/rest_internal.h"
#include "rest/sql_internal.h"

void *rest__sql_alloc(struct rest__sql *c, size_t n)
{
    void *p = cd_arena_alloc(c->arena, n);
    if (!p && !c->failed) {
        rest__fail(c->err, 400, "PGRST100", "The request is too complex",
                   "It needs more memory than one request may use.", NULL);
        c->failed = true;
    }
    return p;
}

bool rest__sql_fail(struct rest__sql *c, int status, const char *code, const char *message,
                    const char *details, const char *hint)
{
    if (!c->failed)
        rest__fail(c->err, status, code, message, details, hint);
    c->failed = true;
    return false;
}

/* Appends to an arena vector of pointers (grows by doubling). */
bool rest__sql_push_ptr(struct rest__sql *c, void *vec, size_t *n, size_t *cap, const void *item)
{
    const void ***v = vec;
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        const void **nv = rest__sql_alloc(c, ncap * sizeof(void *));
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
 * Planning: select tree -> nodes; filters, logic, orders and ranges attached to nodes
 */

struct rest__node *rest__plan_new_node(struct rest__sql *c)
{
    struct rest__node *n = rest__sql_alloc(c, sizeof(*n));
    if (!n)
        return NULL;
    memset(n, 0, sizeof(*n));
    n->id = c->next_id++;
    return n;
}

void rest__plan_set_table(struct rest__node *n, const rest_table_t *t)
{
    n->table = t;
    n->cols = t->cols;
    n->n_cols = t->n_cols;
    n->label = t->name;
}

bool rest__plan_items(struct rest__sql *c, struct rest__node *n,
                      const struct rest_select_item *items, size_t n_items);

static bool plan_embed(struct rest__sql *c, struct rest__node *parent,
                       const struct rest_select_item *it, struct rest__node **out)
{
    if (!parent->table) {
        char msg[REST_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg),
                 "Could not find a relationship between '%s' and '%s' in the schema cache",
                 parent->label, it->relation);
        return rest__sql_fail(c, 400, "PGRST200", msg, NULL, NULL);
    }
    rest_rel_t rel;
    size_t origin = (size_t)(parent->table - c->s->tables);
    if (!rest__find_rel(c->s, origin, it->relation, it->hint, &rel, c->err)) {
        c->failed = true;
        return false;
    }
    struct rest__node *n = rest__plan_new_node(c);
    if (!n)
        return false;
    rest__plan_set_table(n, &c->s->tables[rel.target]);
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
        return rest__sql_fail(c, 400, "PGRST119", msg, det, NULL);
    }
    if (!rest__plan_items(c, n, it->children, it->n_children))
        return false;
    *out = n;
    return true;
}

bool rest__plan_items(struct rest__sql *c, struct rest__node *n,
                      const struct rest_select_item *items, size_t n_items)
{
    size_t n_embeds = 0;
    n->items = items;
    n->n_items = n_items;
    for (size_t i = 0; i < n_items; i++) {
        if (items[i].aggregate != REST_AGG_NONE)
            return rest__sql_fail(c, 400, "PGRST123", "Use of aggregate functions is not allowed",
                                  NULL, NULL);
        if (items[i].kind == REST_SELECT_EMBED || items[i].kind == REST_SELECT_SPREAD)
            n_embeds++;
    }
    if (n_embeds == 0)
        return true;
    n->children = rest__sql_alloc(c, n_embeds * sizeof(struct rest__node *));
    if (!n->children)
        return false;
    for (size_t i = 0; i < n_items; i++) {
        if (items[i].kind != REST_SELECT_EMBED && items[i].kind != REST_SELECT_SPREAD)
            continue;
        struct rest__node *child;
        if (!plan_embed(c, n, &items[i], &child))
            return false;
        n->children[n->n_children++] = child;
    }
    return true;
}

static bool child_named(const struct rest__node *child, const char *name)
{
    return strcmp(child->relation, name) == 0 || (child->alias && strcmp(child->alias, name) == 0);
}

struct rest__node *rest__plan_find_child(const struct rest__node *n, const char *name)
{
    for (size_t i = 0; i < n->n_children; i++)
        if (child_named(n->children[i], name))
            return n->children[i];
    return NULL;
}

/* The node an embed path leads to, or NULL with PGRST108. */
static struct rest__node *walk_path(struct rest__sql *c, struct rest__node *root, char **path,
                                    size_t n)
{
    struct rest__node *cur = root;
    for (size_t i = 0; i < n; i++) {
        struct rest__node *next = rest__plan_find_child(cur, path[i]);
        if (!next) {
            char msg[REST_ERROR_MESSAGE_MAX], hint[REST_ERR_HINT_MAX];
            snprintf(msg, sizeof(msg), "'%s' is not an embedded resource in this request", path[i]);
            snprintf(hint, sizeof(hint),
                     "Verify that '%s' is included in the 'select' query parameter.", path[i]);
            rest__sql_fail(c, 400, "PGRST108", msg, NULL, hint);
            return NULL;
        }
        cur = next;
    }
    return cur;
}

/* Attaches a filter to its node; a filter on an embed's own name is a null test. */
static bool attach_filter(struct rest__sql *c, struct rest__node *n, const struct rest_filter *f)
{
    struct rest__node *child =
        f->field.n_json == 0 ? rest__plan_find_child(n, f->field.name) : NULL;
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
            return rest__sql_fail(c, 400, "PGRST120", msg,
                                  "Only is null or not is null filters are allowed on embedded "
                                  "resources",
                                  NULL);
        }
        if (n->n_nulls == n->cap_nulls) {
            size_t ncap = n->cap_nulls ? n->cap_nulls * 2 : 4;
            struct rest__null_filter *nv = rest__sql_alloc(c, ncap * sizeof(*nv));
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
    return rest__sql_push_ptr(c, &n->filters, &n->n_filters, &n->cap_filters, f);
}

/* Spreads the request's filters, logic, orders and ranges over the tree. with_root: the
 * root's own filters/orders apply here (reads and calls; not the representation of a
 * mutation, where they went into the mutation's WHERE). */
bool rest__plan_attach_all(struct rest__sql *c, struct rest__node *root, bool with_root)
{
    const struct rest_query *q = c->req->query;
    for (size_t i = 0; i < q->n_filters; i++) {
        const struct rest_filter *f = &q->filters[i];
        if (f->n_embed_path == 0 && !with_root)
            continue;
        struct rest__node *n = walk_path(c, root, f->embed_path, f->n_embed_path);
        if (!n || !attach_filter(c, n, f))
            return false;
    }
    for (size_t i = 0; i < q->n_logic; i++) {
        const struct rest_logic *l = &q->logic[i];
        if (l->n_embed_path == 0 && !with_root)
            continue;
        struct rest__node *n = walk_path(c, root, l->embed_path, l->n_embed_path);
        if (!n || !rest__sql_push_ptr(c, &n->logic, &n->n_logic, &n->cap_logic, l))
            return false;
    }
    for (size_t i = 0; i < q->n_orders; i++) {
        const struct rest_order *o = &q->orders[i];
        if (o->n_embed_path == 0 && !with_root)
            continue;
        struct rest__node *n = walk_path(c, root, o->embed_path, o->n_embed_path);
        if (!n || !rest__sql_push_ptr(c, &n->orders, &n->n_orders, &n->cap_orders, o))
            return false;
    }
    for (size_t i = 0; i < q->n_ranges; i++) {
        const struct rest_range *r = &q->ranges[i];
        if (r->n_embed_path == 0)
            continue; /* the top-level window comes from the request (req->offset/limit) */
        struct rest__node *n = walk_path(c, root, r->embed_path, r->n_embed_path);
        if (!n)
            return false;
        n->range = r;
    }
    return true;
}

bool rest__plan_root(struct rest__sql *c, struct rest__node *root)
{
    const struct rest_query *q = c->req->query;
    if (!q->has_select) {
        root->all_columns = true;
        return true;
    }
    return rest__plan_items(c, root, q->select, q->n_select);
}
