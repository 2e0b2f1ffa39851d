/*
 * The query string of a PostgREST request: split into key=value pairs, form-decoded
 * (strictly: bad %-escapes, NUL and invalid UTF-8 are errors), each parameter dispatched by
 * its key (select, order, limit/offset, and/or, columns, on_conflict, filters, RPC
 * arguments) to the grammar of rest_parse.c, with the limits of rest_parse.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"
#include "rest/rest_parse.h"
#include "rest/rest_parse_internal.h"

/* ==========================================================================================
 * The query string
 */

struct param {
    char *key; /* decoded */
    size_t key_len;
    char *value; /* decoded; NULL when the pair had no '=' */
    size_t value_len;
};

/* application/x-www-form-urlencoded decoding of [s, s+n) into a new arena string; base is the
 * offset of s in the query string, for messages. */
static bool form_decode(cd_arena_t *arena, const char *s, size_t n, size_t base, char **out,
                        size_t *out_len, struct rest_error *err)
{
    char det[128];
    char *d = cd_arena_alloc(arena, n + 1);
    size_t o = 0;

    if (d == NULL) {
        snprintf(det, sizeof det, "the request needs more than %zu bytes of parser memory",
                 arena->max);
        goto fail;
    }
    for (size_t i = 0, at = 0; i < n; i++, at = i) {
        char c = s[i];

        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = i + 2 < n ? cd_hex_value((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? cd_hex_value((unsigned char)s[i + 2]) : -1;

            if (hi < 0 || lo < 0) {
                snprintf(det, sizeof det, "invalid percent-encoding at byte %zu", base + at + 1);
                goto fail;
            }
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') {
            snprintf(det, sizeof det, "NUL byte at byte %zu", base + at + 1);
            goto fail;
        }
        d[o++] = c;
    }
    d[o] = '\0';
    if (!cd_utf8_valid((const unsigned char *)d, o)) {
        snprintf(det, sizeof det, "the decoded text is not valid UTF-8 (near byte %zu)", base + 1);
        goto fail;
    }
    *out = d;
    *out_len = o;
    return true;
fail:
    rest__set_error(err, 400, "PGRST100", "failed to parse query string", det);
    return false;
}

static bool split_query(cd_arena_t *arena, const char *query, size_t len, struct rest__vec *params,
                        struct rest_error *err)
{
    size_t i = 0, base = 0;

    if (len > 0 && query[0] == '?') {
        query++;
        len--;
        base = 1;
    }
    while (i < len) {
        size_t j = i, eq;
        struct param prm = {0};

        while (j < len && query[j] != '&')
            j++;
        if (j > i) {
            if (params->len >= REST_MAX_PARAMS) {
                rest__set_error(err, 400, "PGRST100", "failed to parse query string",
                                "too many query parameters");
                return false;
            }
            for (eq = i; eq < j && query[eq] != '='; eq++)
                ;
            if (!form_decode(arena, query + i, eq - i, base + i, &prm.key, &prm.key_len, err))
                return false;
            if (eq < j && !form_decode(arena, query + eq + 1, j - eq - 1, base + eq + 1, &prm.value,
                                       &prm.value_len, err))
                return false;
            if (!rest__vec_push(arena, params, sizeof prm, &prm)) {
                rest__set_error(err, 400, "PGRST100", "failed to parse query string",
                                "the request needs more parser memory than allowed");
                return false;
            }
        }
        i = j + 1;
    }
    return true;
}

static const char *last_segment(const char *key)
{
    const char *dot = strrchr(key, '.');

    return dot != NULL ? dot + 1 : key;
}

static bool is_reserved(const char *key)
{
    return strcmp(key, "select") == 0 || strcmp(key, "columns") == 0 ||
           strcmp(key, "on_conflict") == 0;
}

static bool ends_in(const char *key, const char *word)
{
    return strcmp(last_segment(key), word) == 0;
}

static bool is_embeddable_reserved(const char *key)
{
    return ends_in(key, "order") || ends_in(key, "limit") || ends_in(key, "offset") ||
           ends_in(key, "and") || ends_in(key, "or");
}

/* The first value of a reserved key, or NULL (absent, or present without '='). */
static const struct param *find_param(const struct rest__vec *params, const char *key)
{
    const struct param *prm = params->data;

    for (size_t i = 0; i < params->len; i++) {
        if (strcmp(prm[i].key, key) == 0)
            return prm[i].value != NULL ? &prm[i] : NULL;
    }
    return NULL;
}

/* Parses a parameter key as an embed path; `want_json` allows a json path at the end. */
static bool parse_key(struct query_ctx *q, const struct param *prm, bool want_json,
                      const char *what, struct rest__vec *segs, struct rest_field *f,
                      struct rest_error *err)
{
    struct parser p;

    rest__parser_init(&p, q, prm->key, prm->key_len);
    if (!rest__parse_key_path(&p, segs, f, want_json)) {
        rest__parser_error(err, &p, what, prm->key, prm->key_len);
        return false;
    }
    return true;
}

static bool parse_order_param(struct query_ctx *q, const struct param *prm,
                              struct rest__vec *orders, struct rest_error *err)
{
    struct rest_order ord = {0};
    struct rest__vec segs = {0}, terms = {0};
    struct rest_field f = {0};
    struct parser p;

    if (!parse_key(q, prm, true, "tree path", &segs, &f, err))
        return false;
    rest__parser_init(&p, q, prm->value, prm->value_len);
    if (rest__parse_order_value(&p, &terms)) {
        ord.embed_path = segs.data;
        ord.n_embed_path = segs.len;
        ord.terms = terms.data;
        ord.n_terms = terms.len;
        if (rest__p_push(&p, orders, sizeof ord, &ord))
            return true;
    }
    rest__parser_error(err, &p, "order", prm->value, prm->value_len);
    return false;
}

static bool parse_logic_param(struct query_ctx *q, const struct param *prm, struct rest__vec *logic,
                              struct rest_error *err)
{
    struct rest_logic lg = {0};
    struct rest__vec segs = {0};
    struct rest_field f = {0};
    struct parser p;
    char **names;
    size_t kept = 0, op_len;
    bool negated = false, ok;
    char *text;

    /* key: name('.'name)*, the last being and/or; any "not" segment negates */
    if (!parse_key(q, prm, false, "logic path", &segs, &f, err))
        return false;
    if (strcmp(f.name, "and") != 0 && strcmp(f.name, "or") != 0) { /* `"x.or"`: defensive */
        rest__parser_init(&p, q, prm->key, prm->key_len);
        p.pos = p.len;
        rest__fail_expect(&p, "logic operator (and, or)");
        rest__parser_error(err, &p, "logic path", prm->key, prm->key_len);
        return false;
    }
    names = segs.data;
    for (size_t i = 0; i < segs.len; i++) {
        if (strcmp(names[i], "not") == 0)
            negated = true;
        else
            names[kept++] = names[i];
    }
    lg.embed_path = names;
    lg.n_embed_path = kept;

    /* value: parsed as "op(...)" / "not.op(...)", as PostgREST does */
    rest__parser_init(&p, q, prm->value, prm->value_len);
    op_len = (negated ? 4 : 0) + strlen(f.name);
    text = rest__p_alloc(&p, op_len + prm->value_len + 1);
    if (text != NULL) {
        snprintf(text, op_len + 1, "%s%s", negated ? "not." : "", f.name);
        memcpy(text + op_len, prm->value, prm->value_len + 1);
        rest__parser_init(&p, q, text, op_len + prm->value_len);
    }
    ok = text != NULL && rest__parse_logic_tree(&p, &lg.tree);
    if (ok && lg.tree.is_filter) {
        /* `or=.eq.1` reads as a filter on a column "or": not a logic tree */
        p.has_fail = false;
        p.pos = op_len;
        ok = rest__fail_expect(&p, "\"(\"");
    } else if (ok && !rest__at_eof(&p)) {
        ok = rest__fail_expect(&p, "end of input");
    }
    if (!ok || !rest__p_push(&p, logic, sizeof lg, &lg)) {
        rest__parser_error(err, &p, "logic tree", prm->value, prm->value_len);
        return false;
    }
    return true;
}

/* name (',' name)*; used by columns= and on_conflict=. */
static bool parse_name_list(struct query_ctx *q, const struct param *prm, const char *what,
                            bool dedupe, char ***out, size_t *n_out, struct rest_error *err)
{
    struct parser p;
    struct rest__vec names = {0};

    rest__parser_init(&p, q, prm->value, prm->value_len);
    for (;;) {
        char *name = NULL;
        bool dup = false;

        if (!rest__parse_name(&p, &name))
            goto fail;
        if (dedupe) {
            char **have = names.data;

            for (size_t i = 0; i < names.len && !dup; i++)
                dup = strcmp(have[i], name) == 0;
        }
        if (!dup) {
            if (names.len >= REST_MAX_COLUMNS) {
                rest__fail_fatal(&p, "more than %u columns", REST_MAX_COLUMNS);
                goto fail;
            }
            if (!rest__p_push(&p, &names, sizeof name, &name))
                goto fail;
        }
        rest__skip_ws(&p);
        if (rest__cur(&p) != ',')
            break;
        p.pos++;
        rest__skip_ws(&p);
    }
    if (!rest__at_eof(&p)) {
        rest__fail_expect(&p, "\",\"");
        rest__fail_expect(&p, "end of input");
        goto fail;
    }
    *out = names.data;
    *n_out = names.len;
    return true;
fail:
    rest__parser_error(err, &p, what, prm->value, prm->value_len);
    return false;
}

static bool parse_select_param(struct query_ctx *q, const struct param *prm, struct rest_query *out,
                               struct rest_error *err)
{
    struct parser p;
    struct rest__vec items = {0};

    rest__parser_init(&p, q, prm->value, prm->value_len);
    if (!rest__parse_select_forest(&p, &items))
        goto fail;
    rest__skip_ws(&p);
    if (!rest__at_eof(&p)) {
        rest__fail_expect(&p, "\",\"");
        rest__fail_expect(&p, "end of input");
        goto fail;
    }
    out->has_select = true;
    out->select = items.data;
    out->n_select = items.len;
    return true;
fail:
    rest__parser_error(err, &p, "select parameter", prm->value, prm->value_len);
    return false;
}

/* A value that must be a filter even where a plain RPC argument would be allowed: PostgREST
 * has committed to `not.`, `in.` and `is.` once it has read them. */
static bool value_commits_to_filter(const char *v)
{
    return strncmp(v, "not.", 4) == 0 || strncmp(v, "in.", 3) == 0 || strncmp(v, "is.", 3) == 0;
}

static bool parse_filter_param(struct query_ctx *q, const struct param *prm, bool rpc,
                               struct rest__vec *filters, struct rest__vec *args,
                               struct rest_error *err)
{
    struct rest_filter f = {0};
    struct rest__vec segs = {0};
    struct parser p;

    if (!parse_key(q, prm, true, "tree path", &segs, &f.field, err))
        return false;
    f.embed_path = segs.data;
    f.n_embed_path = segs.len;
    rest__parser_init(&p, q, prm->value, prm->value_len);
    if (rest__parse_op_expr(&p, &f.expr, false) &&
        (rest__at_eof(&p) || rest__fail_expect(&p, "end of input"))) {
        if (!rest__count_filter(&p) || !rest__p_push(&p, filters, sizeof f, &f))
            goto fail;
        return true;
    }
    if (rpc && !p.fatal && !value_commits_to_filter(prm->value) && f.n_embed_path == 0 &&
        f.field.n_json == 0) {
        struct rest_rpc_arg arg = {f.field.name, prm->value};

        if (rest__p_push(&p, args, sizeof arg, &arg))
            return true;
    }
fail:
    rest__parser_error(err, &p, "filter", prm->value, prm->value_len);
    return false;
}

/* limit=N / offset=N, on the root or `rel.limit=N`. */
static bool parse_range_param(struct query_ctx *q, const struct param *prm, bool is_limit,
                              struct rest__vec *ranges, struct rest_error *err)
{
    struct rest__vec segs = {0};
    struct rest_field f = {0};
    struct rest_range *have = ranges->data, *r = NULL;
    struct parser p;
    int64_t v = 0;

    if (!parse_key(q, prm, false, "tree path", &segs, &f, err))
        return false;
    rest__parser_init(&p, q, prm->value, prm->value_len);
    if (!rest__parse_i64_digits(prm->value, prm->value_len, &v)) {
        size_t i = 0;

        if (is_limit && prm->value_len > 1 && prm->value[0] == '-' &&
            rest__parse_i64_digits(prm->value + 1, prm->value_len - 1, &v)) {
            rest__set_error(err, 416, "PGRST103", "Requested range not satisfiable",
                            "Limit should be greater than or equal to zero.");
            return false;
        }
        while (i < prm->value_len && rest__is_digit((unsigned char)prm->value[i]))
            i++;
        p.pos = i;
        if (i == prm->value_len && i > 0)
            rest__fail_fatal(&p, "number too large");
        else
            rest__fail_expect(&p, i == 0 ? "a non-negative integer" : "digit");
        rest__parser_error(err, &p, is_limit ? "limit parameter" : "offset parameter", prm->value,
                           prm->value_len);
        return false;
    }
    /* same embed path as an earlier limit/offset: merge (the last value wins) */
    for (size_t i = 0; i < ranges->len && r == NULL; i++) {
        char **segs_have = have[i].embed_path, **segs_new = segs.data;
        bool same = have[i].n_embed_path == segs.len;

        for (size_t k = 0; same && k < segs.len; k++)
            same = strcmp(segs_have[k], segs_new[k]) == 0;
        if (same)
            r = &have[i];
    }
    if (r == NULL) {
        struct rest_range fresh = {0};

        fresh.embed_path = segs.data;
        fresh.n_embed_path = segs.len;
        if (!rest__p_push(&p, ranges, sizeof fresh, &fresh)) {
            rest__parser_error(err, &p, is_limit ? "limit parameter" : "offset parameter",
                               prm->value, prm->value_len);
            return false;
        }
        r = (struct rest_range *)ranges->data + ranges->len - 1;
    }
    if (is_limit) {
        r->has_limit = true;
        r->limit = v;
    } else {
        r->has_offset = true;
        r->offset = v;
    }
    return true;
}

static bool parse_query_common(cd_arena_t *arena, const char *query, size_t len, bool rpc,
                               struct rest_query *out, struct rest_error *err)
{
    struct query_ctx q = {arena, 0, 0, 0};
    struct rest__vec params = {0}, orders = {0}, logic = {0}, filters = {0}, ranges = {0},
                     args = {0};
    const struct param *prm, *all;
    char msg[64];

    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (query == NULL)
        len = 0;
    if (len > REST_MAX_QUERY_BYTES) {
        snprintf(msg, sizeof msg, "the query string is longer than %u bytes", REST_MAX_QUERY_BYTES);
        rest__set_error(err, 400, "PGRST100", "failed to parse query string", msg);
        return false;
    }
    if (!split_query(arena, query, len, &params, err))
        return false;
    all = params.data;

    /* Same order as PostgREST, so that the first error reported is the same. */
    for (size_t i = 0; i < params.len; i++) {
        if (all[i].value != NULL && ends_in(all[i].key, "order") &&
            !parse_order_param(&q, &all[i], &orders, err))
            return false;
    }
    for (size_t i = 0; i < params.len; i++) {
        if (all[i].value != NULL && (ends_in(all[i].key, "and") || ends_in(all[i].key, "or")) &&
            !parse_logic_param(&q, &all[i], &logic, err))
            return false;
    }
    prm = find_param(&params, "columns");
    if (prm != NULL) {
        if (!parse_name_list(&q, prm, "columns parameter", true, &out->columns, &out->n_columns,
                             err))
            return false;
        out->has_columns = true;
    }
    prm = find_param(&params, "select");
    if (prm != NULL && !parse_select_param(&q, prm, out, err))
        return false;
    for (size_t i = 0; i < params.len; i++) {
        if (all[i].value != NULL && !is_reserved(all[i].key) &&
            !is_embeddable_reserved(all[i].key) &&
            !parse_filter_param(&q, &all[i], rpc, &filters, &args, err))
            return false;
    }
    prm = find_param(&params, "on_conflict");
    if (prm != NULL) {
        if (!parse_name_list(&q, prm, "on_conflict parameter", false, &out->on_conflict,
                             &out->n_on_conflict, err))
            return false;
        out->has_on_conflict = true;
    }
    for (size_t i = 0; i < params.len; i++) {
        bool is_limit = ends_in(all[i].key, "limit");

        if (all[i].value != NULL && (is_limit || ends_in(all[i].key, "offset")) &&
            !parse_range_param(&q, &all[i], is_limit, &ranges, err))
            return false;
    }

    out->filters = filters.data;
    out->n_filters = filters.len;
    out->logic = logic.data;
    out->n_logic = logic.len;
    out->orders = orders.data;
    out->n_orders = orders.len;
    out->ranges = ranges.data;
    out->n_ranges = ranges.len;
    out->rpc_args = args.data;
    out->n_rpc_args = args.len;
    return true;
}

bool rest_parse_query(cd_arena_t *arena, const char *query, size_t len, struct rest_query *out,
                      struct rest_error *err)
{
    return parse_query_common(arena, query, len, false, out, err);
}

bool rest_parse_query_rpc(cd_arena_t *arena, const char *query, size_t len, struct rest_query *out,
                          struct rest_error *err)
{
    return parse_query_common(arena, query, len, true, out, err);
}
