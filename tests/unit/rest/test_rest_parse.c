/*
 * Unit tests of src/rest/rest_parse.c and rest_query.c: the PostgREST query-string grammar and
 * the parser's memory bound. Each parse result is printed in a compact canonical form (see
 * dump_query) and compared with the expected text, so one line states one grammar fact.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rest/rest_parse.h"

struct out {
    char buf[65536];
    size_t len;
};

static void out_add(struct out *o, const char *fmt, ...) CD_PRINTF(2, 3);
static void out_add(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->len, sizeof o->buf - o->len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof o->buf - o->len);
    o->len += (size_t)n;
}

static void dump_path(struct out *o, char **path, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out_add(o, "%s.", path[i]);
}

static void dump_field(struct out *o, const struct rest_field *f)
{
    out_add(o, "%s", f->name);
    for (size_t i = 0; i < f->n_json; i++) {
        const struct rest_json_step *st = &f->json[i];

        out_add(o, "%s", st->arrow == REST_JSON_ARROW2 ? "->>" : "->");
        if (st->is_index)
            out_add(o, "#%s", st->key);
        else
            out_add(o, "[%s]", st->key);
    }
}

static const char *op_name(enum rest_op op)
{
    static const char *names[] = {"?",    "eq",    "neq",   "gt",     "gte", "lt",         "lte",
                                  "like", "ilike", "match", "imatch", "is",  "isdistinct", "in",
                                  "cs",   "cd",    "ov",    "sl",     "sr",  "nxl",        "nxr",
                                  "adj",  "fts",   "plfts", "phfts",  "wfts"};

    return (size_t)op < sizeof names / sizeof names[0] ? names[op] : "??";
}

static void dump_expr(struct out *o, const struct rest_op_expr *x)
{
    static const char *is_names[] = {"?", "null", "not_null", "true", "false", "unknown"};

    out_add(o, " %s%s", x->negated ? "not." : "", op_name(x->op));
    if (x->quantifier == REST_QUANT_ANY)
        out_add(o, "(any)");
    if (x->quantifier == REST_QUANT_ALL)
        out_add(o, "(all)");
    if (x->fts_config != NULL)
        out_add(o, "(%s)", x->fts_config);
    if (x->op == REST_OP_IS) {
        out_add(o, " %s", is_names[x->is_value]);
    } else if (x->op == REST_OP_IN) {
        out_add(o, " (");
        for (size_t i = 0; i < x->n_list; i++)
            out_add(o, "%s'%s'", i ? "," : "", x->list[i]);
        out_add(o, ")");
    } else {
        out_add(o, " '%s'", x->value);
    }
}

static void dump_filter(struct out *o, const struct rest_filter *f)
{
    dump_path(o, f->embed_path, f->n_embed_path);
    dump_field(o, &f->field);
    dump_expr(o, &f->expr);
}

static void dump_select(struct out *o, const struct rest_select_item *items, size_t n)
{
    static const char *aggs[] = {"", "count", "sum", "avg", "max", "min"};

    for (size_t i = 0; i < n; i++) {
        const struct rest_select_item *it = &items[i];

        if (i > 0)
            out_add(o, ",");
        if (it->alias != NULL)
            out_add(o, "%s:", it->alias);
        switch (it->kind) {
        case REST_SELECT_STAR:
            out_add(o, "*");
            break;
        case REST_SELECT_FIELD:
            dump_field(o, &it->field);
            if (it->cast != NULL)
                out_add(o, "::%s", it->cast);
            if (it->aggregate != REST_AGG_NONE)
                out_add(o, ".%s()", aggs[it->aggregate]);
            if (it->aggregate_cast != NULL)
                out_add(o, "::%s", it->aggregate_cast);
            break;
        case REST_SELECT_EMBED:
        case REST_SELECT_SPREAD:
            out_add(o, "%s%s", it->kind == REST_SELECT_SPREAD ? "..." : "", it->relation);
            if (it->hint != NULL)
                out_add(o, "!%s", it->hint);
            if (it->join == REST_JOIN_INNER)
                out_add(o, "!inner");
            if (it->join == REST_JOIN_LEFT)
                out_add(o, "!left");
            out_add(o, "(");
            dump_select(o, it->children, it->n_children);
            out_add(o, ")");
            break;
        }
    }
}

static void dump_tree(struct out *o, const struct rest_logic_tree *t)
{
    if (t->is_filter) {
        dump_filter(o, &t->filter);
        return;
    }
    out_add(o, "%s%s(", t->negated ? "not." : "", t->op == REST_LOGIC_AND ? "and" : "or");
    for (size_t i = 0; i < t->n_children; i++) {
        if (i > 0)
            out_add(o, ", ");
        dump_tree(o, &t->children[i]);
    }
    out_add(o, ")");
}

static void dump_names(struct out *o, const char *label, char **names, size_t n)
{
    out_add(o, "%s ", label);
    for (size_t i = 0; i < n; i++)
        out_add(o, "%s%s", i ? "," : "", names[i]);
}

static void sep(struct out *o)
{
    if (o->len > 0)
        out_add(o, "; ");
}

static void dump_query(struct out *o, const struct rest_query *q)
{
    o->len = 0;
    o->buf[0] = '\0';
    if (q->has_select) {
        out_add(o, "select ");
        dump_select(o, q->select, q->n_select);
    }
    for (size_t i = 0; i < q->n_filters; i++) {
        sep(o);
        out_add(o, "filter ");
        dump_filter(o, &q->filters[i]);
    }
    for (size_t i = 0; i < q->n_logic; i++) {
        sep(o);
        out_add(o, "logic ");
        dump_path(o, q->logic[i].embed_path, q->logic[i].n_embed_path);
        dump_tree(o, &q->logic[i].tree);
    }
    for (size_t i = 0; i < q->n_orders; i++) {
        const struct rest_order *ord = &q->orders[i];

        sep(o);
        out_add(o, "order ");
        dump_path(o, ord->embed_path, ord->n_embed_path);
        for (size_t k = 0; k < ord->n_terms; k++) {
            const struct rest_order_term *t = &ord->terms[k];

            out_add(o, "%s", k ? ", " : "");
            if (t->relation != NULL)
                out_add(o, "%s(", t->relation);
            dump_field(o, &t->field);
            if (t->relation != NULL)
                out_add(o, ")");
            if (t->dir != REST_ORDER_DEFAULT)
                out_add(o, " %s", t->dir == REST_ORDER_ASC ? "asc" : "desc");
            if (t->nulls != REST_NULLS_DEFAULT)
                out_add(o, " %s", t->nulls == REST_NULLS_FIRST ? "nullsfirst" : "nullslast");
        }
    }
    for (size_t i = 0; i < q->n_ranges; i++) {
        const struct rest_range *r = &q->ranges[i];

        sep(o);
        out_add(o, "range ");
        dump_path(o, r->embed_path, r->n_embed_path);
        if (r->has_limit)
            out_add(o, " limit=%lld", (long long)r->limit);
        if (r->has_offset)
            out_add(o, " offset=%lld", (long long)r->offset);
    }
    if (q->has_columns) {
        sep(o);
        dump_names(o, "columns", q->columns, q->n_columns);
    }
    if (q->has_on_conflict) {
        sep(o);
        dump_names(o, "on_conflict", q->on_conflict, q->n_on_conflict);
    }
    for (size_t i = 0; i < q->n_rpc_args; i++) {
        sep(o);
        out_add(o, "arg %s='%s'", q->rpc_args[i].name, q->rpc_args[i].value);
    }
}

static struct out g_out;
static struct rest_error g_err;

/* Parses qs (NUL-terminated) and returns its canonical text, or NULL with g_err filled. */
static const char *parse_with(const char *qs, bool rpc)
{
    cd_arena_t arena;
    struct rest_query q;
    bool ok;

    cd_arena_init(&arena, REST_ARENA_MAX_BYTES);
    if (rpc)
        ok = rest_parse_query_rpc(&arena, qs, strlen(qs), &q, &g_err);
    else
        ok = rest_parse_query(&arena, qs, strlen(qs), &q, &g_err);
    if (ok)
        dump_query(&g_out, &q);
    cd_arena_free(&arena);
    return ok ? g_out.buf : NULL;
}

#define assert_parses(qs, expected)                                                                \
    do {                                                                                           \
        const char *got_ = parse_with((qs), false);                                                \
        if (got_ == NULL)                                                                          \
            print_error("unexpected error: %s / %s\n", g_err.message, g_err.details);              \
        assert_non_null(got_);                                                                     \
        assert_string_equal(got_, (expected));                                                     \
    } while (0)

#define assert_rpc_parses(qs, expected)                                                            \
    do {                                                                                           \
        const char *got_ = parse_with((qs), true);                                                 \
        if (got_ == NULL)                                                                          \
            print_error("unexpected error: %s / %s\n", g_err.message, g_err.details);              \
        assert_non_null(got_);                                                                     \
        assert_string_equal(got_, (expected));                                                     \
    } while (0)

/* Expects a PGRST100 whose message contains msg_part and whose details contain det_part. */
#define assert_fails(qs, msg_part, det_part)                                                       \
    do {                                                                                           \
        const char *got_ = parse_with((qs), false);                                                \
        if (got_ != NULL)                                                                          \
            print_error("parsed, but should not: %s\n", got_);                                     \
        assert_null(got_);                                                                         \
        assert_int_equal(g_err.http_status, 400);                                                  \
        assert_string_equal(g_err.code, "PGRST100");                                               \
        if (strstr(g_err.message, (msg_part)) == NULL ||                                           \
            strstr(g_err.details, (det_part)) == NULL)                                             \
            print_error("got: %s / %s\n", g_err.message, g_err.details);                           \
        assert_non_null(strstr(g_err.message, (msg_part)));                                        \
        assert_non_null(strstr(g_err.details, (det_part)));                                        \
    } while (0)

/* A heap string of `count` copies of `piece` between prefix and suffix. */
static char *repeat(const char *prefix, const char *piece, size_t count, const char *mid,
                    const char *piece2, size_t count2, const char *suffix)
{
    size_t n = strlen(prefix) + strlen(piece) * count + strlen(mid) + strlen(piece2) * count2 +
               strlen(suffix) + 1;
    char *s = malloc(n), *w = s;

    assert_non_null(s);
    w += snprintf(w, n, "%s", prefix);
    for (size_t i = 0; i < count; i++)
        w += snprintf(w, n - (size_t)(w - s), "%s", piece);
    w += snprintf(w, n - (size_t)(w - s), "%s", mid);
    for (size_t i = 0; i < count2; i++)
        w += snprintf(w, n - (size_t)(w - s), "%s", piece2);
    snprintf(w, n - (size_t)(w - s), "%s", suffix);
    return s;
}

static void test_decoding(void **state)
{
    (void)state;
    assert_parses("", "");
    assert_parses("?id=eq.1", "filter id eq '1'");
    assert_parses("name=eq.John+Doe", "filter name eq 'John Doe'");
    assert_parses("name=eq.a%2Bb", "filter name eq 'a+b'");
    assert_parses("name=eq.%C3%A9t%C3%A9", "filter name eq '\xc3\xa9t\xc3\xa9'");
    assert_parses("a=eq.1&&b=eq.2&", "filter a eq '1'; filter b eq '2'");
    /* a key without '=' is ignored; the value is split at the first '=' only */
    assert_parses("flag&id=eq.a=b", "filter id eq 'a=b'");
    assert_parses("first+name=eq.x", "filter first name eq 'x'");
    assert_fails("id=eq.%zz", "failed to parse query string", "invalid percent-encoding at byte 7");
    assert_fails("id=eq.%4", "failed to parse query string", "invalid percent-encoding");
    assert_fails("id=eq.%", "failed to parse query string", "invalid percent-encoding");
    assert_fails("id=eq.a%00b", "failed to parse query string", "NUL byte");
    assert_fails("id%00=eq.1", "failed to parse query string", "NUL byte");
    assert_fails("id=eq.%FF", "failed to parse query string", "UTF-8");
    assert_fails("id=eq.%C0%AF", "failed to parse query string", "UTF-8");    /* overlong */
    assert_fails("id=eq.%ED%A0%80", "failed to parse query string", "UTF-8"); /* surrogate */
}

static void test_limits_of_query_string(void **state)
{
    char *s;

    (void)state;
    s = repeat("select=", "a", REST_MAX_QUERY_BYTES - 7, "", "", 0, "");
    assert_fails(s, "failed to parse", "identifier longer than 63 bytes");
    free(s);
    s = repeat("select=", "a", REST_MAX_QUERY_BYTES - 6, "", "", 0, "");
    assert_fails(s, "failed to parse query string", "longer than 16384 bytes");
    free(s);
    s = repeat("", "x&", REST_MAX_PARAMS + 1, "", "", 0, "");
    assert_fails(s, "failed to parse query string", "too many query parameters");
    free(s);
}

static void test_select_columns(void **state)
{
    (void)state;
    assert_parses("select=*", "select *");
    assert_parses("select=id,name", "select id,name");
    assert_parses("select=full_name:name", "select full_name:name");
    assert_parses("select=id::text", "select id::text");
    assert_parses("select=amount::double precision", "select amount::double precision");
    assert_parses("select=alias:data->a->>b::text", "select alias:data->[a]->>[b]::text");
    assert_parses("select=data->0,data->>-1,data->x1", "select data->#0,data->>#-1,data->[x1]");
    assert_parses("select=data->\"a,b\"", "select data->[a,b]");
    assert_parses("select=%22My+Col%22", "select My Col");
    assert_parses("select=%22a%5C%22b%22", "select a\"b");
    assert_parses("select=%22*%22", "select *"); /* a column named "*": kind FIELD */
    assert_parses("select=first name,with-dash,$x", "select first name,with-dash,$x");
    assert_parses("select=", "select ");
    assert_parses("select= id , name ", "select id,name");
    assert_parses("select=id,\tname", "select id,name");
}

static void test_select_star_is_not_a_field(void **state)
{
    cd_arena_t arena;
    struct rest_query q;

    (void)state;
    cd_arena_init(&arena, REST_ARENA_MAX_BYTES);
    assert_true(rest_parse_query(&arena, "select=*,%22*%22", 16, &q, &g_err));
    assert_int_equal(q.n_select, 2);
    assert_int_equal(q.select[0].kind, REST_SELECT_STAR);
    assert_int_equal(q.select[1].kind, REST_SELECT_FIELD);
    assert_string_equal(q.select[1].field.name, "*");
    cd_arena_free(&arena);
}

static void test_select_postgrest_js(void **state)
{
    (void)state;
    /* .select('id, name, owner:profiles(name)') after URLSearchParams */
    assert_parses("select=id%2Cname%2Cowner%3Aprofiles%28name%29",
                  "select id,name,owner:profiles(name)");
    assert_parses("select=*%2Cclients%28*%2Cnested%28*%29%29", "select *,clients(*,nested(*))");
    assert_parses("select=id&id=eq.1", "select id; filter id eq '1'");
}

static void test_select_embeds(void **state)
{
    (void)state;
    assert_parses("select=rel(*)", "select rel(*)");
    assert_parses("select=alias:rel(a,b)", "select alias:rel(a,b)");
    assert_parses("select=rel!fk_name(*)", "select rel!fk_name(*)");
    assert_parses("select=rel!inner(*)", "select rel!inner(*)");
    assert_parses("select=rel!left(*)", "select rel!left(*)");
    assert_parses("select=rel!hint!inner(*)", "select rel!hint!inner(*)");
    assert_parses("select=a:rel!inner!hint(*)", "select a:rel!hint!inner(*)");
    assert_parses("select=rel!leftover(*)", "select rel!leftover(*)");
    assert_parses("select=...rel(a,b)", "select ...rel(a,b)");
    assert_parses("select=...rel!hint!inner(a)", "select ...rel!hint!inner(a)");
    assert_parses("select=rel()", "select rel()");
    assert_parses("select=*,a(*,b(c,d(e)))", "select *,a(*,b(c,d(e)))");
    assert_parses("select=a( x , y ) , b", "select a(x,y),b");
    assert_parses("select=%22My+Rel%22(*)", "select My Rel(*)");
}

static void test_select_aggregates(void **state)
{
    (void)state;
    assert_parses("select=count()", "select *.count()");
    assert_parses("select=total:count()::int", "select total:*.count()::int");
    assert_parses("select=amount.sum(),amount.avg()::int,x.max(),x.min()",
                  "select amount.sum(),amount.avg()::int,x.max(),x.min()");
    assert_parses("select=count", "select count");
    assert_fails("select=count(*)", "failed to parse select parameter", "unexpected");
}

static void test_select_errors(void **state)
{
    char *s;

    (void)state;
    assert_fails("select=id)", "\"failed to parse select parameter (id))\" (line 1, column 3)",
                 "unexpected \")\"");
    assert_fails("select=id,", "(line 1, column 4)", "unexpected end of input");
    assert_fails("select=rel(id", "select parameter (rel(id)", "unexpected end of input");
    /* the farthest failure is reported: here the embed that lacks its "(" */
    assert_fails("select=name!hint", "(line 1, column 10)", "expecting \"(\"");
    assert_fails("select=*!hint", "(line 1, column 2)", "unexpected \"!\"");
    assert_fails("select=name::", "(line 1, column 7)", "unexpected end of input");
    assert_fails("select=rel->x(*)", "select parameter", "unexpected \"(\"");
    assert_fails("select=id,clients(name[])", "select parameter", "unexpected \"[\"");
    assert_fails("select=data->", "select parameter", "unexpected end of input");
    assert_fails("select=a-", "select parameter", "unexpected end of input");
    /* SQL in a name: an error here (or at worst an unknown identifier later) */
    assert_fails("select=id;drop table x", "(line 1, column 3)", "unexpected \";\"");
    assert_fails("select=id%3Bdrop+table+x--", "select parameter", "unexpected \";\"");
    assert_fails("select=%22%22", "select parameter", "empty identifier");
    assert_fails("select=abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd",
                 "select parameter", "identifier longer than 63 bytes");
    assert_fails("select=x:abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd(*)",
                 "select parameter", "identifier longer than 63 bytes");
    /* 63 bytes is fine */
    assert_parses("select=abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc",
                  "select abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabc");
    s = repeat("select=", "a(", 5000, "", ")", 5000, "");
    assert_fails(s, "select parameter", "embedding deeper than 16 levels");
    free(s);
    s = repeat("select=", "(", 10000, "", "", 0, "");
    assert_fails(s, "select parameter", "unexpected \"(\"");
    free(s);
}

static void test_select_limits(void **state)
{
    char *s;

    (void)state;
    s = repeat("select=", "a(", 16, "x", ")", 16, "");
    assert_non_null(parse_with(s, false));
    free(s);
    s = repeat("select=", "a(", 17, "x", ")", 17, "");
    assert_fails(s, "select parameter", "embedding deeper than 16 levels");
    free(s);
    s = repeat("select=x", ",x", REST_MAX_SELECT_ITEMS - 1, "", "", 0, "");
    assert_non_null(parse_with(s, false));
    free(s);
    s = repeat("select=x", ",x", REST_MAX_SELECT_ITEMS, "", "", 0, "");
    assert_fails(s, "select parameter", "more than 512 select items");
    free(s);
}

static void test_filter_operators(void **state)
{
    (void)state;
    assert_parses("a=eq.1&b=neq.2&c=gt.3&d=gte.4&e=lt.5&f=lte.6",
                  "filter a eq '1'; filter b neq '2'; filter c gt '3'; filter d gte '4'; "
                  "filter e lt '5'; filter f lte '6'");
    assert_parses("a=like.*foo*&b=ilike.A*", "filter a like '*foo*'; filter b ilike 'A*'");
    assert_parses("a=match.^x&b=imatch.y$", "filter a match '^x'; filter b imatch 'y$'");
    assert_parses("a=cs.{a,b}&b=cd.[1,2]&c=ov.[1,5)",
                  "filter a cs '{a,b}'; filter b cd '[1,2]'; filter c ov '[1,5)'");
    assert_parses("a=cs.%7B%22k%22%3A1%7D", "filter a cs '{\"k\":1}'");
    assert_parses("a=sl.(1,2)&b=sr.(1,2)&c=nxl.(1,2)&d=nxr.(1,2)&e=adj.(1,2)",
                  "filter a sl '(1,2)'; filter b sr '(1,2)'; filter c nxl '(1,2)'; "
                  "filter d nxr '(1,2)'; filter e adj '(1,2)'");
    assert_parses("a=isdistinct.x", "filter a isdistinct 'x'");
    assert_parses("a=eq.&b=eq.1.2.3&c=eq.a,b)(", "filter a eq ''; filter b eq '1.2.3'; "
                                                 "filter c eq 'a,b)('");
    assert_parses("a=eq.%22quoted%22", "filter a eq '\"quoted\"'"); /* kept raw at top level */
    assert_parses("a=like(any).{x*,y*}&b=ilike(all).{a,b}&c=eq(any).{1,2}",
                  "filter a like(any) '{x*,y*}'; filter b ilike(all) '{a,b}'; "
                  "filter c eq(any) '{1,2}'");
}

static void test_filter_not(void **state)
{
    (void)state;
    assert_parses("a=not.eq.1", "filter a not.eq '1'");
    assert_parses("a=not.in.(1,2)", "filter a not.in ('1','2')");
    assert_parses("a=not.is.null", "filter a not.is null");
    assert_parses("not=eq.1", "filter not eq '1'"); /* a column named "not" */
    assert_fails("a=not.not.eq.1", "failed to parse filter (not.not.eq.1)",
                 "operator (eq, gt, ...)");
}

static void test_filter_is(void **state)
{
    (void)state;
    assert_parses("a=is.null&b=is.not_null&c=is.true&d=is.false&e=is.unknown",
                  "filter a is null; filter b is not_null; filter c is true; filter d is false; "
                  "filter e is unknown");
    assert_parses("a=is.NULL&b=is.True", "filter a is null; filter b is true");
    assert_fails("a=is.maybe", "(line 1, column 4)", "isVal: (null, not_null, true, false");
    assert_fails("a=is.nullx", "(line 1, column 8)", "unexpected \"x\" expecting end of input");
    assert_fails("a=is.", "failed to parse filter (is.)", "unexpected end of input");
}

static void test_filter_in(void **state)
{
    (void)state;
    assert_parses("a=in.(1,2,3)", "filter a in ('1','2','3')");
    /* .in('name', ['a,b', 'c']) */
    assert_parses("name=in.%28%22a%2Cb%22%2Cc%29", "filter name in ('a,b','c')");
    assert_parses("a=in.(%22x%5C%22y%22,%22p(q)%22,%22b%5C%5Cs%22)",
                  "filter a in ('x\"y','p(q)','b\\s')");
    assert_parses("a=in.()", "filter a in ()");
    assert_parses("a=in.(%22%22)", "filter a in ('')");
    assert_parses("a=in.(,)", "filter a in ('','')");
    assert_parses("a=in.( 1, 2 )", "filter a in ('1',' 2 ')");
    assert_parses("a=in.(%22a%22b,c)", "filter a in ('\"a\"b','c')");
    assert_parses("a=in.(%22unterminated)", "filter a in ('\"unterminated')");
    assert_fails("a=in.1,2", "failed to parse filter (in.1,2)", "unexpected \"1\" expecting \"(\"");
    assert_fails("a=in.(1,2", "(line 1, column 8)", "unexpected end of input");
    assert_fails("a=in.(1)x", "(line 1, column 7)", "expecting end of input");
    assert_fails("a=in(1)", "failed to parse filter", "delimiter (.)");
}

static void test_filter_fts(void **state)
{
    (void)state;
    assert_parses("a=fts.cat&b=plfts.fat cat&c=phfts.the cat&d=wfts.\"cat\" -dog",
                  "filter a fts 'cat'; filter b plfts 'fat cat'; filter c phfts 'the cat'; "
                  "filter d wfts '\"cat\" -dog'");
    assert_parses("a=fts(english).cat&b=not.wfts(simple).x",
                  "filter a fts(english) 'cat'; filter b not.wfts(simple) 'x'");
    assert_fails("a=fts().x", "failed to parse filter (fts().x)\" (line 1, column 5)",
                 "unexpected \")\"");
    assert_fails("a=fts(a.b).x", "failed to parse filter", "delimiter (.)");
}

static void test_filter_json_and_embeds(void **state)
{
    (void)state;
    assert_parses("data->>k=eq.v", "filter data->>[k] eq 'v'");
    assert_parses("data->a->>b=eq.v", "filter data->[a]->>[b] eq 'v'");
    assert_parses("data->0=gt.5", "filter data->#0 gt '5'");
    assert_parses("a.b.col=eq.1", "filter a.b.col eq '1'");
    assert_parses("clients.data->>k=eq.1", "filter clients.data->>[k] eq '1'");
    assert_parses("rel=not.is.null", "filter rel not.is null");
    assert_parses("%22a.b%22=eq.1", "filter a.b eq '1'");
}

static void test_filter_errors(void **state)
{
    (void)state;
    assert_fails("a.b=noop.0", "\"failed to parse filter (noop.0)\" (line 1, column 1)",
                 "unexpected \"n\" expecting \"not\" or operator (eq, gt, ...)");
    assert_fails("id=val", "failed to parse filter (val)", "operator (eq, gt, ...)");
    assert_fails("id=", "failed to parse filter ()", "unexpected end of input");
    assert_fails("id=eq", "failed to parse filter (eq)", "delimiter (.)");
    assert_fails("id=EQ.1", "failed to parse filter (EQ.1)", "operator");
    assert_fails("id=eq(some).x", "failed to parse filter", "delimiter (.)");
    assert_fails("a.=eq.1", "failed to parse tree path (a.)", "unexpected end of input");
    assert_fails("a:b=eq.1", "failed to parse tree path (a:b)", "unexpected \":\"");
    assert_fails("id;drop table x=eq.1", "failed to parse tree path", "unexpected \";\"");
    assert_fails("%22%22=eq.1", "failed to parse tree path", "empty identifier");
    /* control characters are shown escaped in the message */
    assert_fails("a=x%0Ay", "failed to parse filter (x\\ny)", "unexpected \"x\"");
    assert_fails("a=%22x", "failed to parse filter (\\\"x)", "operator");
}

static void test_filter_limit(void **state)
{
    char *s;

    (void)state;
    s = repeat("a=eq.1", "&a=eq.1", REST_MAX_FILTERS - 1, "", "", 0, "");
    assert_non_null(parse_with(s, false));
    free(s);
    s = repeat("a=eq.1", "&a=eq.1", REST_MAX_FILTERS, "", "", 0, "");
    assert_fails(s, "failed to parse filter", "more than 256 filters");
    free(s);
    /* filters inside or=() count too */
    s = repeat("or=(a.eq.1", ",a.eq.1", REST_MAX_FILTERS, ")", "", 0, "");
    assert_fails(s, "failed to parse logic tree", "more than 256 filters");
    free(s);
}

static void test_other_limits(void **state)
{
    cd_arena_t arena;
    struct rest_query q;
    struct rest_prefer pr;
    char *s, *many;
    size_t o = 0, len = 0;
    const char *v[1];

    (void)state;
    s = repeat("select=data", "->a", REST_MAX_JSON_STEPS, "", "", 0, "");
    assert_non_null(parse_with(s, false));
    free(s);
    s = repeat("select=data", "->a", REST_MAX_JSON_STEPS + 1, "", "", 0, "");
    assert_fails(s, "select parameter", "json path longer than 64 steps");
    free(s);
    s = repeat("order=a", ",a", REST_MAX_ORDER_TERMS - 1, "&x.order=b", "", 0, "");
    assert_fails(s, "failed to parse order (b)", "more than 256 order terms");
    free(s);
    many = malloc(REST_MAX_QUERY_BYTES);
    assert_non_null(many);
    o = (size_t)snprintf(many, REST_MAX_QUERY_BYTES, "columns=c0");
    for (unsigned i = 1; i <= REST_MAX_COLUMNS; i++)
        o += (size_t)snprintf(many + o, REST_MAX_QUERY_BYTES - o, ",c%u", i);
    assert_fails(many, "columns parameter", "more than 1600 columns");
    free(many);
    /* no query string at all */
    cd_arena_init(&arena, REST_ARENA_MAX_BYTES);
    assert_true(rest_parse_query(&arena, NULL, 0, &q, &g_err));
    assert_false(q.has_select);
    assert_int_equal(q.n_filters, 0);
    /* a details text that does not fit is cut, still valid text */
    many = malloc(REST_MAX_PREFER_BYTES);
    assert_non_null(many);
    len = (size_t)snprintf(many, REST_MAX_PREFER_BYTES, "handling=strict");
    for (int i = 0; i < 60; i++)
        len +=
            (size_t)snprintf(many + len, REST_MAX_PREFER_BYTES - len, ",unknown-preference-%d", i);
    v[0] = many;
    assert_false(rest_parse_prefer(&arena, v, &len, 1, &pr, &g_err));
    assert_string_equal(g_err.code, "PGRST122");
    assert_int_equal(strlen(g_err.details), REST_ERROR_DETAILS_MAX - 1);
    free(many);
    cd_arena_free(&arena);
    assert_fails("select=count()x", "(line 1, column 8)", "unexpected \"x\"");
}

static void test_error_message_shape(void **state)
{
    char *s;
    size_t n;

    (void)state;
    /* an unterminated quote: a trailing backslash escapes nothing */
    assert_fails("select=%22abc%5C", "(line 1, column 6)", "unexpected end of input");
    assert_fails("a=in.(%22x%5C", "failed to parse filter", "unexpected end of input");
    /* a long value is cut in the message, never inside a UTF-8 sequence, and the position
     * stays at the end of the message */
    s = repeat("a=x", "%C3%A9", 300, "", "", 0, "");
    assert_fails(s, "...)\" (line 1, column 1)", "unexpected \"x\"");
    n = strlen(g_err.message);
    assert_true(n < REST_ERROR_MESSAGE_MAX - 1);
    assert_int_equal(g_err.message[0], '"');
    free(s);
    /* lines and columns as Parsec counts them */
    assert_fails("a=eq.1&b=in.(1,%0A2", "(line 2, column 2)", "unexpected end of input");
    assert_fails("a=in.(%09x", "(line 1, column 10)", "unexpected end of input");
}

static void test_logic(void **state)
{
    (void)state;
    assert_parses("or=(a.eq.1,b.gt.2,and(c.is.null,d.in.(1,2)))",
                  "logic or(a eq '1', b gt '2', and(c is null, d in ('1','2')))");
    assert_parses("and=(a.eq.1,b.eq.2)", "logic and(a eq '1', b eq '2')");
    assert_parses("not.or=(a.eq.1,b.eq.2)", "logic not.or(a eq '1', b eq '2')");
    assert_parses("not.and=(a.eq.1)", "logic not.and(a eq '1')");
    assert_parses("rel.or=(a.eq.1,b.eq.2)", "logic rel.or(a eq '1', b eq '2')");
    assert_parses("rel.not.and=(a.eq.1)", "logic rel.not.and(a eq '1')");
    assert_parses("or=(a.not.eq.1,not.and(b.eq.2,c.eq.3))",
                  "logic or(a not.eq '1', not.and(b eq '2', c eq '3'))");
    /* .or('status.eq.draft,status.eq.sent') */
    assert_parses("or=%28status.eq.draft%2Cstatus.eq.sent%29",
                  "logic or(status eq 'draft', status eq 'sent')");
    assert_parses("or=( a.eq.1 , b.eq.2 )", "logic or(a eq '1 ', b eq '2 ')");
    assert_parses("or=(a.eq.%22x,y)%22,b.eq.z)", "logic or(a eq 'x,y)', b eq 'z')");
    assert_parses("or=(a.eq.%22a%5C%22b%22)", "logic or(a eq 'a\"b')");
    assert_parses("or=(a.eq.%22x%22y)", "logic or(a eq '\"x\"y')");
    assert_parses("or=(tags.cs.{a,b},tags.ov.{c})", "logic or(tags cs '{a,b}', tags ov '{c}')");
    assert_parses("or=(a.like(any).{x*,y*})", "logic or(a like(any) '{x*,y*}')");
    assert_parses("or=(data->>k.eq.v,data->0.gt.1)",
                  "logic or(data->>[k] eq 'v', data->#0 gt '1')");
    assert_parses("or=(a.fts(english).cat,b.is.TRUE)", "logic or(a fts(english) 'cat', b is true)");
    assert_parses("or=(a.eq.1,a.eq.2)&a=gt.0", "filter a gt '0'; logic or(a eq '1', a eq '2')");
    assert_parses("or=(or.eq.1)", "logic or(or eq '1')"); /* a column named "or" */
    assert_parses("or=(a.eq.)", "logic or(a eq '')");
}

static void test_logic_errors(void **state)
{
    char *s;

    (void)state;
    assert_fails("or=()", "\"failed to parse logic tree (())\" (line 1, column 4)",
                 "unexpected \")\"");
    assert_fails("or=(a.eq.1", "failed to parse logic tree ((a.eq.1)", "unexpected end of input");
    assert_fails("or=a.eq.1", "failed to parse logic tree", "expecting \"(\"");
    assert_fails("or=(a.eq.1))", "failed to parse logic tree", "expecting end of input");
    assert_fails("or=(a.eq.1)x", "failed to parse logic tree", "expecting end of input");
    assert_fails("or=(id.in.1,2,id.eq.3)", "failed to parse logic tree", "expecting \"(\"");
    assert_fails("and=(ord(id.eq.1,id.eq.1),id.eq.2)", "failed to parse logic tree", "unexpected");
    assert_fails("or=(id.eq.1,not.xor(id.eq.2))", "failed to parse logic tree",
                 "logic operator (and, or)");
    assert_fails("or=.eq.1", "failed to parse logic tree (.eq.1)", "expecting \"(\"");
    assert_fails("or=(a.is.nullx)", "failed to parse logic tree", "unexpected \"x\"");
    assert_fails("x:y.or=(a.eq.1)", "failed to parse logic path", "unexpected");
    s = repeat("or=(", "and(", 15, "a.eq.1", ")", 15, ")");
    assert_non_null(parse_with(s, false));
    free(s);
    s = repeat("or=(", "and(", 16, "a.eq.1", ")", 16, ")");
    assert_fails(s, "failed to parse logic tree", "logic tree deeper than 16 levels");
    free(s);
    s = repeat("or=", "(", 10000, "", "", 0, ""); /* 10,000 unbalanced parens */
    assert_fails(s, "failed to parse logic tree", "unexpected \"(\"");
    free(s);
    s = repeat("or=", "(", 8000, "", ")", 8000, "");
    assert_fails(s, "failed to parse logic tree", "unexpected \"(\"");
    free(s);
    s = repeat("or=(", "or(", 2500, "a.eq.1", ")", 2500, ")");
    assert_fails(s, "failed to parse logic tree", "deeper than 16 levels");
    free(s);
    s = repeat("or=(", "not.and(", 1500, "", "", 0, "");
    assert_fails(s, "failed to parse logic tree", "deeper than 16 levels");
    free(s);
}

static void test_order(void **state)
{
    (void)state;
    assert_parses("order=col.desc.nullslast,other,json->a.asc",
                  "order col desc nullslast, other, json->[a] asc");
    assert_parses("order=id.nullsfirst", "order id nullsfirst");
    assert_parses("order=id.asc.nullsfirst", "order id asc nullsfirst");
    assert_parses("order=clients(name).desc,id", "order clients(name) desc, id");
    assert_parses("order=clients(data->k).desc.nullsfirst",
                  "order clients(data->[k]) desc nullsfirst");
    assert_parses("rel.order=c.asc", "order rel.c asc");
    assert_parses("order=a&order=b.desc", "order a; order b desc");
    assert_parses("order=%22My+Col%22.desc", "order My Col desc");
    assert_parses("order= a , b.desc ", "order a, b desc");
}

static void test_order_errors(void **state)
{
    (void)state;
    assert_fails("order=id.ac", "\"failed to parse order (id.ac)\" (line 1, column 4)",
                 "expecting \"asc\", \"desc\", \"nullsfirst\" or \"nullslast\"");
    assert_fails("order=id.descc", "(line 1, column 8)", "unexpected \"c\"");
    assert_fails("order=id.asc.nlsfst", "(line 1, column 8)",
                 "expecting \"nullsfirst\" or \"nullslast\"");
    assert_fails("order=id.nullslasttt", "(line 1, column 13)", "unexpected \"t\"");
    assert_fails("order=clients(name,id)", "(line 1, column 13)",
                 "unexpected \",\" expecting \")\"");
    assert_fails("order=", "failed to parse order ()", "unexpected end of input");
    assert_fails("order=a,", "failed to parse order", "unexpected end of input");
    assert_fails("x:y.order=a", "failed to parse tree path (x:y.order)", "unexpected \":\"");
}

static void test_limit_offset(void **state)
{
    char *s;

    (void)state;
    assert_parses("limit=10&offset=20", "range  limit=10 offset=20");
    assert_parses("offset=0&limit=0", "range  limit=0 offset=0");
    assert_parses("rel.limit=5&rel.offset=3&limit=1",
                  "range rel. limit=5 offset=3; range  limit=1");
    assert_parses("limit=5&limit=7", "range  limit=7");
    assert_parses("limit=9223372036854775807", "range  limit=9223372036854775807");
    assert_fails("limit=9223372036854775808", "failed to parse limit parameter",
                 "number too large");
    assert_fails("limit=99999999999999999999", "failed to parse limit parameter",
                 "number too large");
    assert_fails("limit=abc", "\"failed to parse limit parameter (abc)\" (line 1, column 1)",
                 "a non-negative integer");
    assert_fails("limit=", "failed to parse limit parameter", "a non-negative integer");
    assert_fails("offset=1x", "(line 1, column 2)", "unexpected \"x\" expecting digit");
    assert_fails("offset=-1", "failed to parse offset parameter", "a non-negative integer");
    assert_null(parse_with("limit=-1", false));
    assert_int_equal(g_err.http_status, 416);
    assert_string_equal(g_err.code, "PGRST103");
    assert_string_equal(g_err.message, "Requested range not satisfiable");
    assert_string_equal(g_err.details, "Limit should be greater than or equal to zero.");
    s = repeat("", "a.", 17, "limit=1", "", 0, "");
    assert_fails(s, "failed to parse tree path", "embed path deeper than 16 levels");
    free(s);
}

static void test_columns_on_conflict(void **state)
{
    (void)state;
    assert_parses("columns=a,b", "columns a,b");
    /* .insert([{...}]) sends every key double-quoted */
    assert_parses("columns=%22a%22%2C%22b%22", "columns a,b");
    assert_parses("columns=%22a%22,%22b%22,%22a%22", "columns a,b");
    assert_parses("columns=a , b", "columns a,b");
    assert_parses("on_conflict=a,b", "on_conflict a,b");
    assert_parses("columns=a&columns=b", "columns a"); /* the first one counts */
    assert_parses("columns&columns=b", "");            /* as PostgREST: first has no value */
    assert_fails("columns=", "failed to parse columns parameter ()", "unexpected end of input");
    assert_fails("columns=a,", "failed to parse columns parameter", "unexpected end of input");
    assert_fails("on_conflict=a;b", "failed to parse on_conflict parameter (a;b)",
                 "unexpected \";\"");
    assert_fails("columns=%22%22", "columns parameter", "empty identifier");
}

static void test_rpc_args(void **state)
{
    (void)state;
    assert_rpc_parses("a=1&arr={1,2}&select=x&b=eq.5",
                      "select x; filter b eq '5'; arg a='1'; arg arr='{1,2}'");
    assert_rpc_parses("name=John+Doe&name=x", "arg name='John Doe'; arg name='x'");
    assert_rpc_parses("q=eq(x", "arg q='eq(x'");
    assert_rpc_parses("q=", "arg q=''");
    assert_rpc_parses("%22my+arg%22=1", "arg my arg='1'");
    assert_null(parse_with("name=not.x", true));
    assert_string_equal(g_err.code, "PGRST100");
    assert_null(parse_with("name=in.x", true));
    assert_null(parse_with("name=is.x", true));
    assert_null(parse_with("a.b=1", true));
    assert_null(parse_with("a->b=1", true));
    /* outside /rpc the same parameters are errors */
    assert_fails("a=1", "failed to parse filter (1)", "operator");
}

static void test_parser_memory(void **state)
{
    cd_arena_t arena;
    struct rest_query q;
    char *s;

    (void)state;
    /* a parse that needs more than the arena allows fails cleanly */
    cd_arena_init(&arena, 16384);
    s = repeat("a=in.(", "1,", 4000, "1)", "", 0, "");
    assert_false(rest_parse_query(&arena, s, strlen(s), &q, &g_err));
    assert_string_equal(g_err.code, "PGRST100");
    assert_non_null(strstr(g_err.details, "parser memory"));
    assert_true(arena.total <= arena.max);
    cd_arena_free(&arena);
    /* the same input fits in the default maximum */
    cd_arena_init(&arena, REST_ARENA_MAX_BYTES);
    assert_true(rest_parse_query(&arena, s, strlen(s), &q, &g_err));
    assert_int_equal(q.filters[0].expr.n_list, 4001);
    cd_arena_free(&arena);
    free(s);
}

static void test_full_request(void **state)
{
    (void)state;
    assert_parses("select=id%2Cname%2Cstatus%2Cowner%3Aprofiles%21owner_id%28full_name%29"
                  "&status=in.%28draft%2Csent%29&or=%28name.ilike.*spring*%2Cname.ilike.*summer*"
                  "%29&order=created_at.desc.nullslast&offset=0&limit=10",
                  "select id,name,status,owner:profiles!owner_id(full_name); filter status in "
                  "('draft','sent'); logic or(name ilike '*spring*', name ilike '*summer*'); "
                  "order created_at desc nullslast; range  limit=10 offset=0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decoding),
        cmocka_unit_test(test_limits_of_query_string),
        cmocka_unit_test(test_select_columns),
        cmocka_unit_test(test_select_star_is_not_a_field),
        cmocka_unit_test(test_select_postgrest_js),
        cmocka_unit_test(test_select_embeds),
        cmocka_unit_test(test_select_aggregates),
        cmocka_unit_test(test_select_errors),
        cmocka_unit_test(test_select_limits),
        cmocka_unit_test(test_filter_operators),
        cmocka_unit_test(test_filter_not),
        cmocka_unit_test(test_filter_is),
        cmocka_unit_test(test_filter_in),
        cmocka_unit_test(test_filter_fts),
        cmocka_unit_test(test_filter_json_and_embeds),
        cmocka_unit_test(test_filter_errors),
        cmocka_unit_test(test_filter_limit),
        cmocka_unit_test(test_other_limits),
        cmocka_unit_test(test_error_message_shape),
        cmocka_unit_test(test_logic),
        cmocka_unit_test(test_logic_errors),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_order_errors),
        cmocka_unit_test(test_limit_offset),
        cmocka_unit_test(test_columns_on_conflict),
        cmocka_unit_test(test_rpc_args),
        cmocka_unit_test(test_parser_memory),
        cmocka_unit_test(test_full_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
