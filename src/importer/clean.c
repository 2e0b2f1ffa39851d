/*
 * Import plans: column_config compiled against a file's header once, then
 * applied to every row (rules, row filters, types) and formatted as COPY
 * text. The rules themselves are in clean_rules.c, the types in
 * clean_types.c. The row path allocates nothing once the arena has grown
 * to the size of the largest rows.
 */
#include "importer/clean_internal.h"
#include "importer/parse_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct plan_col {
    char *source_name;
    size_t src; /* header index; SIZE_MAX when the (excluded) column is not in the file */
    char *target;
    imp_type_t type;
    bool included;
    clean__rule_t *rules;
    size_t nrules;
    clean__on_invalid_t type_invalid; /* skip, null or fail */
    bool has_email_rule;
} plan_col_t;

/* The row filter operators and their names in column_config: one list, so
 * that the enum and the name table cannot drift apart. */
#define FILTER_OPS(X)                                                                              \
    X(OP_EQUALS, "equals")                                                                         \
    X(OP_NOT_EQUALS, "not_equals")                                                                 \
    X(OP_CONTAINS, "contains")                                                                     \
    X(OP_STARTS_WITH, "starts_with")                                                               \
    X(OP_ENDS_WITH, "ends_with")                                                                   \
    X(OP_IS_EMPTY, "is_empty")                                                                     \
    X(OP_IS_NOT_EMPTY, "is_not_empty")                                                             \
    X(OP_GREATER_THAN, "greater_than")                                                             \
    X(OP_LESS_THAN, "less_than")                                                                   \
    X(OP_IN, "in")

#define FILTER_OP_ENUM(op, name) op,
#define FILTER_OP_NAME(op, name) [op] = name,
typedef enum filter_op { FILTER_OPS(FILTER_OP_ENUM) } filter_op_t;
static const char *const filter_ops[] = {FILTER_OPS(FILTER_OP_NAME)};
#undef FILTER_OP_ENUM
#undef FILTER_OP_NAME

typedef struct plan_filter {
    filter_op_t op;
    bool include;
    size_t out; /* output column whose cleaned value is tested, or SIZE_MAX */
    size_t src; /* else: the header index of the raw cell */
    char **values;
    size_t *lens;
    size_t nvalues;
    bool numeric; /* greater_than / less_than against a number */
    double num;
} plan_filter_t;

/* The first problem met in a row, reported once the filters have spoken. */
typedef struct row_problem {
    bool set;
    size_t out;                /* output column */
    const clean__rule_t *rule; /* NULL: type conversion */
    imp_skip_reason_t reason;
    const char *val;
    size_t len;
} row_problem_t;

struct imp_plan {
    plan_col_t *cols; /* included columns first (in output order), then excluded */
    size_t ncols, nout;
    imp_plan_column_t *outcols;
    plan_filter_t *filters;
    size_t nfilters;
    imp_dup_mode_t dup;
    size_t *keys;
    bool *key_ci;
    size_t nkeys;

    clean__arena_t arena;
    imp_value_t *values; /* nout */
    char msg[384];
};

const char *imp_skip_reason_name(imp_skip_reason_t r)
{
    static const char *const names[] = {
        [IMP_SKIP_NONE] = "",
        [IMP_SKIP_FILTERED] = "filtered",
        [IMP_SKIP_INVALID_EMAIL] = "invalid_email",
        [IMP_SKIP_INVALID_PHONE] = "invalid_phone",
        [IMP_SKIP_INVALID_DATE] = "invalid_date",
        [IMP_SKIP_INVALID_NUMBER] = "invalid_number",
        [IMP_SKIP_TOO_LONG] = "too_long",
        [IMP_SKIP_INVALID_VALUE] = "invalid_value",
    };
    return (size_t)r < CD_ARRAY_LEN(names) ? names[r] : "";
}

void imp_plan_free(imp_plan_t *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->ncols; i++) {
        plan_col_t *c = &p->cols[i];
        free(c->source_name);
        free(c->target);
        for (size_t k = 0; k < c->nrules; k++)
            clean__rule_free(&c->rules[k]);
        free(c->rules);
    }
    free(p->cols);
    for (size_t i = 0; i < p->nfilters; i++) {
        for (size_t k = 0; k < p->filters[i].nvalues; k++)
            free(p->filters[i].values[k]);
        free(p->filters[i].values);
        free(p->filters[i].lens);
    }
    free(p->filters);
    free(p->outcols);
    free(p->keys);
    free(p->key_ci);
    free(p->values);
    clean__arena_free(&p->arena);
    free(p);
}

static bool header_is(const imp_cell_t *h, const char *s)
{
    size_t n = strlen(s);
    return h->len == n && memcmp(h->data, s, n) == 0;
}

/* The k-th (0-based) header cell named name, or SIZE_MAX. */
static size_t header_find(const imp_cell_t *header, size_t n, const char *name, size_t k)
{
    for (size_t i = 0; i < n; i++) {
        if (header_is(&header[i], name) && k-- == 0)
            return i;
    }
    return SIZE_MAX;
}

static bool target_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > IMP_MAX_TARGET_NAME ||
        parse__utf8_valid_prefix((const unsigned char *)t, n) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x20 || c == 0x7F)
            return false;
    }
    return true;
}

static bool compile_column(imp_plan_t *p, const json_t *jc, size_t idx, const imp_cell_t *header,
                           size_t nheader, char **proposed, plan_col_t *c, imp_error_t *err)
{
    (void)p;
    memset(c, 0, sizeof(*c));
    c->src = SIZE_MAX;
    if (!json_is_object(jc))
        CLEAN_CFG_ERR("column_config.columns[%zu] must be an object", idx);
    const char *src = json_string_value(json_object_get(jc, "source_name"));
    if (!src)
        CLEAN_CFG_ERR("column_config.columns[%zu] needs a \"source_name\"", idx);
    c->source_name = strdup(src);
    if (!c->source_name)
        goto nomem;
    const json_t *inc = json_object_get(jc, "included");
    if (inc && !json_is_boolean(inc))
        CLEAN_CFG_ERR("column '%.80s': \"included\" must be true or false", src);
    c->included = !inc || json_is_true(inc);
    const json_t *ty = json_object_get(jc, "type");
    if (ty && !imp_type_from_name(json_string_value(ty), &c->type))
        CLEAN_CFG_ERR(
            "column '%.80s': type must be text, integer, number, boolean, date or timestamp", src);
    const json_t *tn = json_object_get(jc, "target_name");
    if (tn && !json_is_string(tn))
        CLEAN_CFG_ERR("column '%.80s': \"target_name\" must be a string", src);
    (void)proposed;
    const json_t *oi = json_object_get(jc, "on_invalid");
    c->type_invalid = ON_INVALID_SKIP;
    if (oi) {
        const char *v = json_string_value(oi);
        static const clean__name_t names[] = {
            {"skip", ON_INVALID_SKIP}, {"null", ON_INVALID_NULL}, {"fail", ON_INVALID_FAIL}};
        int val;
        if (clean__name_lookup(v, names, CD_ARRAY_LEN(names), &val))
            c->type_invalid = (clean__on_invalid_t)val;
        else
            CLEAN_CFG_ERR(
                "column '%.80s': on_invalid (for values that are not of the column's type) "
                "must be skip, null or fail",
                src);
    }
    const json_t *rules = json_object_get(jc, "cleaning_rules");
    if (!rules)
        rules = json_object_get(jc, "rules");
    if (rules && !json_is_array(rules))
        CLEAN_CFG_ERR("column '%.80s': cleaning_rules must be an array", src);
    size_t nr = json_array_size(rules);
    if (nr > 64)
        CLEAN_CFG_ERR("column '%.80s': more than 64 cleaning rules", src);
    c->rules = calloc(nr ? nr : 1, sizeof(*c->rules));
    if (!c->rules)
        goto nomem;
    for (size_t k = 0; k < nr; k++) {
        if (!clean__rule_compile(json_array_get(rules, k), src, &c->rules[k], err))
            goto fail;
        c->nrules++;
        if (c->rules[k].kind == RULE_VALIDATE_EMAIL)
            c->has_email_rule = true;
    }
    (void)header;
    (void)nheader;
    return true;
nomem:
    clean__nomem_error(err);
fail:
    return false;
}

/* Finds an included output column by target_name, then by source_name. */
static size_t find_out(const imp_plan_t *p, const char *name)
{
    for (size_t i = 0; i < p->nout; i++) {
        if (strcmp(p->cols[i].target, name) == 0)
            return i;
    }
    for (size_t i = 0; i < p->nout; i++) {
        if (strcmp(p->cols[i].source_name, name) == 0)
            return i;
    }
    return SIZE_MAX;
}

static char *json_text(const json_t *v, size_t *len)
{
    if (json_is_string(v)) {
        *len = json_string_length(v);
        char *s = malloc(*len + 1);
        if (s) {
            memcpy(s, json_string_value(v), *len);
            s[*len] = '\0';
        }
        return s;
    }
    if (json_is_number(v) || json_is_boolean(v)) {
        char *s = json_dumps(v, JSON_ENCODE_ANY);
        if (s)
            *len = strlen(s);
        return s;
    }
    return NULL;
}

static bool compile_filter(imp_plan_t *p, const json_t *jf, size_t idx, const imp_cell_t *header,
                           size_t nheader, plan_filter_t *f, imp_error_t *err)
{
    memset(f, 0, sizeof(*f));
    if (!json_is_object(jf))
        CLEAN_CFG_ERR("row_filters[%zu] must be an object", idx);
    const char *col = json_string_value(json_object_get(jf, "column"));
    const char *op = json_string_value(json_object_get(jf, "operator"));
    if (!col)
        CLEAN_CFG_ERR("row_filters[%zu] needs a \"column\"", idx);
    size_t k;
    for (k = 0; op && k < CD_ARRAY_LEN(filter_ops); k++) {
        if (strcmp(op, filter_ops[k]) == 0)
            break;
    }
    if (!op || k == CD_ARRAY_LEN(filter_ops))
        CLEAN_CFG_ERR(
            "row filter on '%.80s': operator must be one of equals, not_equals, contains, "
            "starts_with, ends_with, is_empty, is_not_empty, greater_than, less_than, in",
            col);
    f->op = (filter_op_t)k;
    const char *action = json_string_value(json_object_get(jf, "action"));
    if (json_object_get(jf, "action") &&
        (!action || (strcmp(action, "include") != 0 && strcmp(action, "exclude") != 0)))
        CLEAN_CFG_ERR("row filter on '%.80s': action must be include or exclude", col);
    f->include = !action || strcmp(action, "include") == 0;
    f->out = find_out(p, col);
    f->src = SIZE_MAX;
    if (f->out == SIZE_MAX) {
        f->src = header_find(header, nheader, col, 0);
        if (f->src == SIZE_MAX)
            CLEAN_CFG_ERR(
                "row filter names column '%.80s', which is neither a mapped column nor in "
                "the file",
                col);
    }
    if (f->op == OP_IS_EMPTY || f->op == OP_IS_NOT_EMPTY)
        return true;
    const json_t *v = json_object_get(jf, "value");
    if (f->op == OP_IN) {
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 10000)
            CLEAN_CFG_ERR("row filter on '%.80s': operator 'in' needs a non-empty array \"value\"",
                          col);
    } else if (!json_is_string(v) && !json_is_number(v) && !json_is_boolean(v)) {
        CLEAN_CFG_ERR("row filter on '%.80s': operator '%s' needs a \"value\"", col, op);
    }
    size_t nv = f->op == OP_IN ? json_array_size(v) : 1;
    f->values = calloc(nv, sizeof(*f->values));
    f->lens = calloc(nv, sizeof(*f->lens));
    if (!f->values || !f->lens)
        goto nomem;
    for (size_t i = 0; i < nv; i++) {
        const json_t *e = f->op == OP_IN ? json_array_get(v, i) : v;
        f->values[i] = json_text(e, &f->lens[i]);
        if (!f->values[i])
            CLEAN_CFG_ERR("row filter on '%.80s': values must be strings or numbers", col);
        f->nvalues++;
    }
    if (f->op == OP_GREATER_THAN || f->op == OP_LESS_THAN)
        f->numeric = clean__to_double(f->values[0], f->lens[0], &f->num);
    return true;
nomem:
    clean__nomem_error(err);
fail:
    return false;
}

static bool compile_duplicates(imp_plan_t *p, const json_t *cfg, imp_error_t *err)
{
    const json_t *mode = json_object_get(cfg, "duplicate_handling");
    static const clean__name_t modes[] = {{"none", IMP_DUP_NONE},
                                          {"keep_first", IMP_DUP_KEEP_FIRST},
                                          {"keep_last", IMP_DUP_KEEP_LAST},
                                          {"skip_all", IMP_DUP_SKIP_ALL}};
    int val;
    if (!mode || json_is_null(mode))
        p->dup = IMP_DUP_NONE;
    else if (clean__name_lookup(json_string_value(mode), modes, CD_ARRAY_LEN(modes), &val))
        p->dup = (imp_dup_mode_t)val;
    else
        CLEAN_CFG_ERR("duplicate_handling must be keep_first, keep_last, skip_all or none");
    const json_t *keys = json_object_get(cfg, "duplicate_key_columns");
    if (keys && !json_is_array(keys))
        CLEAN_CFG_ERR("duplicate_key_columns must be an array of column names");
    size_t nk = json_array_size(keys);
    if (p->dup != IMP_DUP_NONE && nk == 0)
        CLEAN_CFG_ERR("duplicate_handling needs duplicate_key_columns");
    p->keys = calloc(nk ? nk : 1, sizeof(*p->keys));
    p->key_ci = calloc(nk ? nk : 1, sizeof(*p->key_ci));
    if (!p->keys || !p->key_ci) {
        clean__nomem_error(err);
        return false;
    }
    for (size_t i = 0; i < nk; i++) {
        const char *name = json_string_value(json_array_get(keys, i));
        size_t o = name ? find_out(p, name) : SIZE_MAX;
        if (o == SIZE_MAX)
            CLEAN_CFG_ERR("duplicate key column '%.80s' is not an included column",
                          name ? name : "(not a string)");
        p->keys[i] = o;
        p->key_ci[i] = p->cols[o].type == IMP_TYPE_TEXT &&
                       (p->cols[o].has_email_rule ||
                        clean__ifind(p->cols[o].target, strlen(p->cols[o].target), "email", 5));
        p->nkeys++;
    }
    return true;
fail:
    return false;
}

/* Checks the output columns' target names: valid, not reserved, distinct. */
static bool check_targets(const imp_plan_t *p, imp_error_t *err)
{
    for (size_t i = 0; i < p->nout; i++) {
        const char *t = p->cols[i].target;
        if (!target_ok(t))
            CLEAN_CFG_ERR(
                "column '%.80s': target_name must be 1 to %d bytes of text without control "
                "characters",
                p->cols[i].source_name, IMP_MAX_TARGET_NAME);
        for (size_t k = 0; IMP_RESERVED_TARGETS[k]; k++) {
            if (strcasecmp(t, IMP_RESERVED_TARGETS[k]) == 0)
                CLEAN_CFG_ERR("column '%.80s': target_name '%s' is reserved for the import table's "
                              "own column; choose another",
                              p->cols[i].source_name, t);
        }
        for (size_t k = 0; k < i; k++) {
            if (strcasecmp(t, p->cols[k].target) == 0)
                CLEAN_CFG_ERR("target_name '%s' is used by two columns", t);
        }
    }
    if (p->nout == 0)
        CLEAN_CFG_ERR("column_config includes no column: include at least one");
    return true;
fail:
    return false;
}

/* Compiles cfg's row_filters into p->filters. */
static bool compile_filters(imp_plan_t *p, const json_t *cfg, const imp_cell_t *header,
                            size_t nheader, imp_error_t *err)
{
    const json_t *filters = json_is_object(cfg) ? json_object_get(cfg, "row_filters") : NULL;
    if (filters && !json_is_array(filters) && !json_is_null(filters))
        CLEAN_CFG_ERR("row_filters must be an array");
    size_t nf = json_array_size(filters);
    if (nf > 256)
        CLEAN_CFG_ERR("more than 256 row filters");
    p->filters = calloc(nf ? nf : 1, sizeof(*p->filters));
    if (!p->filters)
        goto nomem;
    for (size_t i = 0; i < nf; i++) {
        bool ok =
            compile_filter(p, json_array_get(filters, i), i, header, nheader, &p->filters[i], err);
        p->nfilters++;
        if (!ok)
            goto fail;
    }
    return true;
nomem:
    clean__nomem_error(err);
fail:
    return false;
}

imp_plan_t *imp_plan_compile(const json_t *cfg, const imp_cell_t *header, size_t nheader,
                             imp_error_t *err)
{
    char **proposed = NULL;
    imp_plan_t *p = calloc(1, sizeof(*p));
    if (!p)
        goto nomem;
    const json_t *cols = json_is_array(cfg) ? cfg : json_object_get(cfg, "columns");
    if (!json_is_array(cfg) && !json_is_object(cfg))
        CLEAN_CFG_ERR("column_config must be an object with \"columns\"");
    if (!json_is_array(cols) || json_array_size(cols) == 0)
        CLEAN_CFG_ERR("column_config has no columns: map at least one column of the file");
    size_t n = json_array_size(cols);
    if (n > 4 * IMP_DEFAULT_MAX_COLUMNS)
        CLEAN_CFG_ERR("column_config has more than %u columns", 4 * IMP_DEFAULT_MAX_COLUMNS);
    p->cols = calloc(n, sizeof(*p->cols));
    proposed = calloc(nheader ? nheader : 1, sizeof(*proposed));
    if (!p->cols || !proposed || !imp_propose_names(header, nheader, NULL, proposed))
        goto nomem;

    /* included columns first, in config order, so that cols[i] = output i */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            const json_t *jc = json_array_get(cols, i);
            const json_t *inc = json_object_get(jc, "included");
            bool included = !inc || !json_is_false(inc);
            if (included != (pass == 0))
                continue;
            plan_col_t *c = &p->cols[p->ncols];
            if (!compile_column(p, jc, i, header, nheader, proposed, c, err)) {
                p->ncols++; /* free what it holds */
                goto fail;
            }
            p->ncols++;
            if (pass == 0)
                p->nout++;
            /* the k-th entry naming a source reads its k-th occurrence */
            size_t k = 0;
            for (size_t j = 0; j < i; j++) {
                const char *s =
                    json_string_value(json_object_get(json_array_get(cols, j), "source_name"));
                k += s && strcmp(s, c->source_name) == 0;
            }
            c->src = header_find(header, nheader, c->source_name, k);
            if (c->src == SIZE_MAX && c->included)
                CLEAN_CFG_ERR("column '%.80s' named in the mapping is not in the file%s",
                              c->source_name, k ? " (not that many times)" : "");
            const char *t = json_string_value(json_object_get(jc, "target_name"));
            if (!t && c->src != SIZE_MAX)
                t = proposed[c->src];
            c->target = strdup(t ? t : c->source_name);
            if (!c->target)
                goto nomem;
        }
    }
    if (!check_targets(p, err))
        goto fail;

    p->outcols = calloc(p->nout, sizeof(*p->outcols));
    p->values = calloc(p->nout, sizeof(*p->values));
    if (!p->outcols || !p->values)
        goto nomem;
    for (size_t i = 0; i < p->nout; i++) {
        p->outcols[i].source_name = p->cols[i].source_name;
        p->outcols[i].source_index = p->cols[i].src;
        p->outcols[i].target_name = p->cols[i].target;
        p->outcols[i].type = p->cols[i].type;
    }

    if (!compile_filters(p, cfg, header, nheader, err))
        goto fail;
    if (json_is_object(cfg) && !compile_duplicates(p, cfg, err))
        goto fail;
    for (size_t i = 0; i < nheader; i++)
        free(proposed[i]);
    free(proposed);
    return p;
nomem:
    clean__nomem_error(err);
fail:
    if (proposed) {
        for (size_t i = 0; i < nheader; i++)
            free(proposed[i]);
    }
    free(proposed);
    imp_plan_free(p);
    return NULL;
}

const imp_plan_column_t *imp_plan_columns(const imp_plan_t *p, size_t *n)
{
    *n = p->nout;
    return p->outcols;
}

imp_dup_mode_t imp_plan_duplicates(const imp_plan_t *p, const size_t **keys, const bool **key_ci,
                                   size_t *nkeys)
{
    *keys = p->keys;
    *key_ci = p->key_ci;
    *nkeys = p->nkeys;
    return p->dup;
}

/* ------------------------------------------------------------- applying */

static bool filter_match(const plan_filter_t *f, const char *s, size_t n)
{
    switch (f->op) {
    case OP_IS_EMPTY:
    case OP_IS_NOT_EMPTY: {
        size_t w;
        while (n && (w = clean__ws_at(s, n)) > 0) {
            s += w;
            n -= w;
        }
        return (n == 0) == (f->op == OP_IS_EMPTY);
    }
    case OP_EQUALS:
        return clean__ieq(s, n, f->values[0], f->lens[0]);
    case OP_NOT_EQUALS:
        return !clean__ieq(s, n, f->values[0], f->lens[0]);
    case OP_CONTAINS:
        return clean__ifind(s, n, f->values[0], f->lens[0]) != NULL;
    case OP_STARTS_WITH:
        return n >= f->lens[0] && clean__ieq(s, f->lens[0], f->values[0], f->lens[0]);
    case OP_ENDS_WITH:
        return n >= f->lens[0] &&
               clean__ieq(s + n - f->lens[0], f->lens[0], f->values[0], f->lens[0]);
    case OP_IN:
        for (size_t i = 0; i < f->nvalues; i++) {
            if (clean__ieq(s, n, f->values[i], f->lens[i]))
                return true;
        }
        return false;
    case OP_GREATER_THAN:
    case OP_LESS_THAN: {
        int cmp;
        if (f->numeric) {
            double d;
            if (!clean__to_double(s, n, &d))
                return false; /* not a number: neither greater nor less */
            cmp = d > f->num ? 1 : d < f->num ? -1 : 0;
        } else {
            /* text, e.g. ISO dates: byte order */
            size_t m = n < f->lens[0] ? n : f->lens[0];
            cmp = memcmp(s, f->values[0], m);
            if (cmp == 0)
                cmp = n > f->lens[0] ? 1 : n < f->lens[0] ? -1 : 0;
        }
        return f->op == OP_GREATER_THAN ? cmp > 0 : cmp < 0;
    }
    }
    return false;
}

static const char *type_problem(imp_type_t t)
{
    switch (t) {
    case IMP_TYPE_INTEGER:
        return "is not an integer";
    case IMP_TYPE_NUMBER:
        return "is not a number";
    case IMP_TYPE_BOOLEAN:
        return "is not a boolean (true/false, yes/no, 1/0)";
    case IMP_TYPE_DATE:
        return "is not a date (YYYY-MM-DD; add a parse_date rule for other formats)";
    case IMP_TYPE_TIMESTAMP:
        return "is not a timestamp (YYYY-MM-DD HH:MM:SS)";
    default:
        return "is not valid";
    }
}

static void note(row_problem_t *pr, size_t out, const clean__rule_t *rule, imp_skip_reason_t reason,
                 const char *val, size_t len)
{
    if (pr->set)
        return;
    pr->set = true;
    pr->out = out;
    pr->rule = rule;
    pr->reason = reason;
    pr->val = val;
    pr->len = len;
}

/* "line 12: column 'Email': 'bob@' is not a valid e-mail address" */
static const char *problem_message(imp_plan_t *p, const row_problem_t *pr, long long line)
{
    size_t n = pr->len;
    bool cut = false;
    if (n > 40) {
        n = 40;
        while (n > 0 && ((unsigned char)pr->val[n] & 0xC0) == 0x80)
            n--;
        cut = true;
    }
    const char *what = pr->rule ? clean__rule_problem(pr->rule) : NULL;
    if (!pr->rule && pr->reason == IMP_SKIP_INVALID_VALUE)
        what = type_problem(p->cols[pr->out].type);
    if (pr->reason == IMP_SKIP_NONE)
        what = "grows past the 16 MiB a value may have";
    snprintf(p->msg, sizeof(p->msg), "line %lld: column '%.80s': '%.*s%s' %s", line,
             p->cols[pr->out].source_name, (int)n, pr->val, cut ? "…" : "", what);
    return p->msg;
}

/* Runs column i's rules over its source cell into p->values[i], noting a
 * problem in skip or fail; false when out of memory. */
static bool apply_column_rules(imp_plan_t *p, size_t i, const imp_row_t *row, row_problem_t *skip,
                               row_problem_t *fail)
{
    const plan_col_t *c = &p->cols[i];
    const char *s = "";
    size_t len = 0;
    if (c->src < row->ncells) {
        s = row->cells[c->src].data;
        len = row->cells[c->src].len;
    }
    bool null = false;
    for (size_t k = 0; k < c->nrules; k++) {
        const clean__rule_t *r = &c->rules[k];
        if (null) {
            if (r->kind != RULE_DEFAULT)
                continue;
            null = false;
            s = "";
            len = 0;
        }
        /* empty values are missing, not invalid: validators pass them */
        if (len == 0 && r->kind >= RULE_VALIDATE_EMAIL)
            continue;
        const char *before = s;
        size_t before_len = len;
        clean__rc_t rc = clean__rule_apply(r, &p->arena, &s, &len);
        if (rc == CLEAN_OK)
            continue;
        if (rc == CLEAN_NOMEM)
            return false;
        if (rc == CLEAN_TOO_BIG) {
            note(fail, i, NULL, IMP_SKIP_NONE, before, before_len);
            break;
        }
        s = before;
        len = before_len;
        switch (r->on_invalid) {
        case ON_INVALID_NULL:
            null = true;
            break;
        case ON_INVALID_FAIL:
            note(fail, i, r, clean__rule_reason(r), before, before_len);
            break;
        case ON_INVALID_SKIP:
            note(skip, i, r, clean__rule_reason(r), before, before_len);
            break;
        default: /* keep */
            break;
        }
    }
    p->values[i].data = s;
    p->values[i].len = len;
    p->values[i].is_null = null;
    return true;
}

/* True when a row filter excludes the row. */
static bool row_filtered(const imp_plan_t *p, const imp_row_t *row)
{
    for (size_t k = 0; k < p->nfilters; k++) {
        const plan_filter_t *f = &p->filters[k];
        const char *s = "";
        size_t len = 0;
        if (f->out != SIZE_MAX) {
            if (!p->values[f->out].is_null) {
                s = p->values[f->out].data;
                len = p->values[f->out].len;
            }
        } else if (f->src < row->ncells) {
            s = row->cells[f->src].data;
            len = row->cells[f->src].len;
        }
        if (filter_match(f, s, len) != f->include)
            return true;
    }
    return false;
}

/* Converts the cleaned values to their column types, stopping at the first
 * problem; false when out of memory. */
static bool convert_values(imp_plan_t *p, row_problem_t *skip, row_problem_t *fail)
{
    for (size_t i = 0; i < p->nout; i++) {
        imp_value_t *v = &p->values[i];
        if (v->is_null || v->len == 0) {
            v->is_null = true;
            v->data = NULL;
            v->len = 0;
            continue;
        }
        const char *before = v->data;
        size_t before_len = v->len;
        clean__rc_t rc = clean__convert(p->cols[i].type, &p->arena, &v->data, &v->len);
        if (rc == CLEAN_NOMEM)
            return false;
        if (rc == CLEAN_OK)
            continue;
        switch (p->cols[i].type_invalid) {
        case ON_INVALID_NULL:
            v->is_null = true;
            v->data = NULL;
            v->len = 0;
            break;
        case ON_INVALID_FAIL:
            note(fail, i, NULL, IMP_SKIP_INVALID_VALUE, before, before_len);
            break;
        default:
            note(skip, i, NULL, IMP_SKIP_INVALID_VALUE, before, before_len);
            break;
        }
        if (fail->set || skip->set)
            break;
    }
    return true;
}

bool imp_plan_apply(imp_plan_t *p, const imp_row_t *row, imp_result_t *res)
{
    row_problem_t skip = {0}, fail = {0};
    clean__arena_reset(&p->arena);
    memset(res, 0, sizeof(*res));
    res->line = row->line;

    for (size_t i = 0; i < p->nout; i++)
        if (!apply_column_rules(p, i, row, &skip, &fail))
            return false;

    if (row_filtered(p, row)) {
        res->outcome = IMP_ROW_SKIP;
        res->reason = IMP_SKIP_FILTERED;
        snprintf(p->msg, sizeof(p->msg), "line %lld: excluded by a row filter", row->line);
        res->message = p->msg;
        return true;
    }

    if (!fail.set && !skip.set && !convert_values(p, &skip, &fail))
        return false;
    if (fail.set) {
        res->outcome = IMP_ROW_FAIL;
        res->reason = fail.reason;
        res->message = problem_message(p, &fail, row->line);
        return true;
    }
    if (skip.set) {
        res->outcome = IMP_ROW_SKIP;
        res->reason = skip.reason;
        res->message = problem_message(p, &skip, row->line);
        return true;
    }
    res->outcome = IMP_ROW_OK;
    res->values = p->values;
    res->nvalues = p->nout;
    return true;
}

/* ------------------------------------------------------------ COPY text */

bool imp_copy_append_value(cd_buf_t *out, const imp_value_t *v)
{
    if (v->is_null)
        return cd_buf_add(out, "\\N", 2);
    const char *s = v->data;
    size_t n = v->len, start = 0;
    for (size_t i = 0; i < n; i++) {
        char e;
        switch (s[i]) {
        case '\\':
            e = '\\';
            break;
        case '\t':
            e = 't';
            break;
        case '\n':
            e = 'n';
            break;
        case '\r':
            e = 'r';
            break;
        default:
            continue;
        }
        char esc[2] = {'\\', e};
        if (!cd_buf_add(out, s + start, i - start) || !cd_buf_add(out, esc, 2))
            return false;
        start = i + 1;
    }
    return cd_buf_add(out, s + start, n - start);
}

bool imp_copy_append_row(cd_buf_t *out, const imp_result_t *res)
{
    size_t mark = out->len;
    for (size_t i = 0; i < res->nvalues; i++) {
        if ((i > 0 && !cd_buf_add(out, "\t", 1)) || !imp_copy_append_value(out, &res->values[i]))
            goto undo;
    }
    if (cd_buf_add(out, "\n", 1))
        return true;
undo:
    out->len = mark;
    if (out->data)
        out->data[mark] = '\0';
    return false;
}
