/*
 * libFuzzer target for the request parser (src/rest/rest_parse.c, rest_query.c, rest_prefer.c).
 *
 * Input: a raw query string, then optionally NUL-separated Prefer header values (the first
 * of which is also tried as a Range header). The query is parsed in normal and RPC mode,
 * with the default arena and with a tiny one, and every tree that comes back is walked and
 * checked against the limits the header promises.
 *
 * Build: CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined \
 *          -Db_lundef=false && ninja -C build-fuzz fuzz_rest_parse
 * Run:   build-fuzz/fuzz_rest_parse -max_total_time=120 -max_len=20000 \
 *          -dict=tests/fuzz/dict/rest_parse.dict tests/fuzz/corpus/rest_parse
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rest/rest_parse.h"

#define MAX_HEADERS 8u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Strict UTF-8, written independently of the parser's own check. */
static bool is_utf8(const char *str)
{
    const unsigned char *s = (const unsigned char *)str;

    while (*s != 0) {
        unsigned long cp;
        int extra;

        if (*s < 0x80) {
            s++;
            continue;
        }
        if ((*s & 0xe0) == 0xc0) {
            extra = 1;
            cp = *s & 0x1fu;
        } else if ((*s & 0xf0) == 0xe0) {
            extra = 2;
            cp = *s & 0x0fu;
        } else if ((*s & 0xf8) == 0xf0) {
            extra = 3;
            cp = *s & 0x07u;
        } else {
            return false;
        }
        for (int k = 1; k <= extra; k++) {
            if ((s[k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[k] & 0x3fu);
        }
        if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
            (extra == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        s += extra + 1;
    }
    return true;
}

static void check_text(const char *s)
{
    check(s != NULL);
    check(strlen(s) <= REST_MAX_QUERY_BYTES);
    check(is_utf8(s));
}

static void check_name(const char *s)
{
    check_text(s);
    check(strlen(s) >= 1 && strlen(s) <= REST_MAX_NAME_BYTES);
}

static void check_path(char **path, size_t n)
{
    check(n <= REST_MAX_DEPTH);
    for (size_t i = 0; i < n; i++)
        check_name(path[i]);
}

static void check_field(const struct rest_field *f)
{
    check_name(f->name);
    check(f->n_json <= REST_MAX_JSON_STEPS);
    for (size_t i = 0; i < f->n_json; i++) {
        check(f->json[i].arrow == REST_JSON_ARROW || f->json[i].arrow == REST_JSON_ARROW2);
        check_text(f->json[i].key);
    }
}

static void check_expr(const struct rest_op_expr *x)
{
    check(x->op >= REST_OP_EQ && x->op <= REST_OP_WFTS);
    if (x->op == REST_OP_IN) {
        for (size_t i = 0; i < x->n_list; i++)
            check_text(x->list[i]);
    } else if (x->op == REST_OP_IS) {
        check(x->is_value >= REST_IS_NULL && x->is_value <= REST_IS_UNKNOWN);
    } else {
        check_text(x->value);
    }
    if (x->fts_config != NULL)
        check_name(x->fts_config);
}

static void check_filter(const struct rest_filter *f)
{
    check_path(f->embed_path, f->n_embed_path);
    check_field(&f->field);
    check_expr(&f->expr);
}

static size_t check_select(const struct rest_select_item *items, size_t n, unsigned depth)
{
    size_t count = n;

    check(depth <= REST_MAX_DEPTH);
    for (size_t i = 0; i < n; i++) {
        const struct rest_select_item *it = &items[i];

        if (it->alias != NULL)
            check_name(it->alias);
        switch (it->kind) {
        case REST_SELECT_STAR:
            break;
        case REST_SELECT_FIELD:
            check_field(&it->field);
            if (it->cast != NULL)
                check_name(it->cast);
            if (it->aggregate_cast != NULL)
                check_name(it->aggregate_cast);
            break;
        case REST_SELECT_EMBED:
        case REST_SELECT_SPREAD:
            check_name(it->relation);
            if (it->hint != NULL)
                check_name(it->hint);
            count += check_select(it->children, it->n_children, depth + 1);
            break;
        default:
            check(false);
        }
    }
    return count;
}

static size_t check_tree(const struct rest_logic_tree *t, unsigned depth)
{
    size_t leaves = 0;

    check(depth <= REST_MAX_DEPTH);
    if (t->is_filter) {
        check(t->filter.n_embed_path == 0);
        check_filter(&t->filter);
        return 1;
    }
    check(t->op == REST_LOGIC_AND || t->op == REST_LOGIC_OR);
    check(t->n_children >= 1);
    for (size_t i = 0; i < t->n_children; i++)
        leaves += check_tree(&t->children[i], depth + 1);
    return leaves;
}

static void check_query(const struct rest_query *q)
{
    size_t filters = q->n_filters, terms = 0;

    if (q->has_select)
        check(check_select(q->select, q->n_select, 0) <= REST_MAX_SELECT_ITEMS);
    for (size_t i = 0; i < q->n_filters; i++)
        check_filter(&q->filters[i]);
    for (size_t i = 0; i < q->n_logic; i++) {
        check_path(q->logic[i].embed_path, q->logic[i].n_embed_path);
        check(!q->logic[i].tree.is_filter);
        filters += check_tree(&q->logic[i].tree, 0);
    }
    check(filters <= REST_MAX_FILTERS);
    for (size_t i = 0; i < q->n_orders; i++) {
        check_path(q->orders[i].embed_path, q->orders[i].n_embed_path);
        check(q->orders[i].n_terms >= 1);
        for (size_t k = 0; k < q->orders[i].n_terms; k++) {
            if (q->orders[i].terms[k].relation != NULL)
                check_name(q->orders[i].terms[k].relation);
            check_field(&q->orders[i].terms[k].field);
        }
        terms += q->orders[i].n_terms;
    }
    check(terms <= REST_MAX_ORDER_TERMS);
    for (size_t i = 0; i < q->n_ranges; i++) {
        check_path(q->ranges[i].embed_path, q->ranges[i].n_embed_path);
        check(!q->ranges[i].has_limit || q->ranges[i].limit >= 0);
        check(!q->ranges[i].has_offset || q->ranges[i].offset >= 0);
    }
    check(q->n_columns <= REST_MAX_COLUMNS && q->n_on_conflict <= REST_MAX_COLUMNS);
    for (size_t i = 0; i < q->n_columns; i++)
        check_name(q->columns[i]);
    for (size_t i = 0; i < q->n_on_conflict; i++)
        check_name(q->on_conflict[i]);
    for (size_t i = 0; i < q->n_rpc_args; i++) {
        check_name(q->rpc_args[i].name);
        check_text(q->rpc_args[i].value);
    }
}

static void check_error(const struct rest_error *err)
{
    check(err->http_status == 400 || err->http_status == 416);
    check(strlen(err->code) == 8 && memcmp(err->code, "PGRST", 5) == 0);
    check(strlen(err->message) > 0 && strlen(err->message) < REST_ERROR_MESSAGE_MAX);
    check(strlen(err->details) < REST_ERROR_DETAILS_MAX);
    check(is_utf8(err->message) && is_utf8(err->details));
}

static void parse_query(const char *qs, size_t len, size_t arena_max, bool rpc)
{
    cd_arena_t arena;
    struct rest_query q;
    struct rest_error err;
    bool ok;

    cd_arena_init(&arena, arena_max);
    if (rpc)
        ok = rest_parse_query_rpc(&arena, qs, len, &q, &err);
    else
        ok = rest_parse_query(&arena, qs, len, &q, &err);
    if (ok)
        check_query(&q);
    else
        check_error(&err);
    check(arena.total <= arena_max);
    cd_arena_free(&arena);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *headers[MAX_HEADERS];
    size_t lens[MAX_HEADERS], n_headers = 0, qlen;
    const char *nul = memchr(text, '\0', size);
    cd_arena_t arena;
    struct rest_prefer pr;
    struct rest_range_header range;
    struct rest_error err;

    /* The query string is not NUL-terminated here: the parser must only use len. */
    qlen = nul != NULL ? (size_t)(nul - text) : size;
    parse_query(text, qlen, REST_ARENA_MAX_BYTES, false);
    parse_query(text, qlen, REST_ARENA_MAX_BYTES, true);
    parse_query(text, qlen, 8192, false);

    if (nul != NULL) {
        const char *p = nul + 1, *end = text + size;

        while (p <= end && n_headers < MAX_HEADERS) {
            const char *next = memchr(p, '\0', (size_t)(end - p));
            size_t n = next != NULL ? (size_t)(next - p) : (size_t)(end - p);

            headers[n_headers] = p;
            lens[n_headers++] = n;
            if (next == NULL)
                break;
            p = next + 1;
        }
    }
    cd_arena_init(&arena, REST_ARENA_MAX_BYTES);
    if (rest_parse_prefer(&arena, headers, lens, n_headers, &pr, &err)) {
        for (size_t i = 0; i < pr.n_invalid; i++)
            check(pr.invalid[i] != NULL && is_utf8(pr.invalid[i]));
        check(pr.timezone == NULL || is_utf8(pr.timezone));
    } else {
        check_error(&err);
    }
    cd_arena_free(&arena);
    if (n_headers > 0) {
        if (rest_parse_range(headers[0], lens[0], n_headers > 1 ? headers[1] : NULL,
                             n_headers > 1 ? lens[1] : 0, &range, &err))
            check(!range.present || !range.has_last || range.first <= range.last);
        else
            check_error(&err);
    }
    return 0;
}
