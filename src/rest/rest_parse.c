/*
 * The PostgREST request grammar (select, filters, or/and trees, order, limit/offset, columns,
 * on_conflict, Prefer and Range) parsed into the syntax tree of rest_parse.h.
 *
 * A hand-written recursive-descent parser modelled on PostgREST's Parsec grammar
 * (src/PostgREST/ApiRequest/QueryParams.hs). Alternatives are tried by saving and restoring
 * the position; errors report the farthest position any alternative reached, with what was
 * expected there, which is how Parsec builds its messages. Hard failures (limits, arena
 * exhausted, bad identifiers) are "fatal" and stop every alternative at once.
 *
 * Nothing here touches a database or produces SQL: names are only checked for shape, values
 * are copied as received.
 */
#include "rest/rest_parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"

/* ==========================================================================================
 * Small helpers: bounded text building, errors, character classes, UTF-8
 */

/* A bounded, always NUL-terminated text buffer. What does not fit is dropped, and nothing is
 * added after the first cut, which never splits a UTF-8 sequence: the text stays valid UTF-8
 * as long as every piece added is. */
struct text {
    char *buf;
    size_t cap; /* > 0 */
    size_t len;
    bool full;
};

static void text_add(struct text *t, const char *s, size_t n)
{
    size_t room = t->cap - 1 - t->len;

    if (t->full)
        return;
    if (n > room) {
        n = room;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--;
        t->full = true;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void text_adds(struct text *t, const char *s)
{
    text_add(t, s, strlen(s));
}

static void set_error(struct rest_error *err, int status, const char *code, const char *message,
                      const char *details)
{
    err->http_status = status;
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->message, sizeof err->message, "%s", message);
    snprintf(err->details, sizeof err->details, "%s", details != NULL ? details : "");
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* PostgREST's pIdentifierChar: letter, digit, '_', ' ', '$'. Every non-ASCII byte counts as
 * a letter (Parsec accepts Unicode letters; the schema cache rejects unknown names anyway). */
static bool is_ident_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' ||
           c == ' ' || c == '$' || c >= 0x80;
}

/* PostgREST's pJsonKeyIdentifier: anything but ( - : . , > ) */
static bool is_json_key_char(unsigned char c)
{
    return c != '\0' && c != '(' && c != '-' && c != ':' && c != '.' && c != ',' && c != '>' &&
           c != ')';
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* True when s starts with word, ignoring ASCII case (word is lower case). */
static bool starts_with_ci(const char *s, const char *word)
{
    for (; *word != '\0'; s++, word++) {
        if (ascii_lower(*s) != *word)
            return false;
    }
    return true;
}

/* Parses 1..19 ASCII digits exactly filling [s, s+n) into a non-negative int64. */
static bool parse_i64_digits(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return false;
        if (v > (INT64_MAX - (s[i] - '0')) / 10)
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* ==========================================================================================
 * Parser state
 */

#define MAX_EXPECT         8u
#define FATAL_DETAIL_BYTES 200u
#define SHOWN_INPUT_MAX    120u

/* Counters shared by every parameter of one query string. */
struct query_ctx {
    cd_arena_t *arena;
    size_t n_filters;
    size_t n_select;
    size_t n_order;
};

struct parser {
    struct query_ctx *q;
    const char *s; /* NUL-terminated, no NUL inside [0, len) */
    size_t len;
    size_t pos;
    /* farthest soft failure */
    bool has_fail;
    size_t fail_pos;
    const char *expect[MAX_EXPECT];
    size_t n_expect;
    /* hard failure */
    bool fatal;
    size_t fatal_pos;
    char fatal_detail[FATAL_DETAIL_BYTES];
    unsigned depth;
};

/* A growable array living in the arena (old storage is abandoned when it grows). */
struct vec {
    void *data;
    size_t len;
    size_t cap;
};

static void parser_init(struct parser *p, struct query_ctx *q, const char *s, size_t len)
{
    memset(p, 0, sizeof(*p));
    p->q = q;
    p->s = s;
    p->len = len;
}

static char cur(const struct parser *p)
{
    return p->pos < p->len ? p->s[p->pos] : '\0';
}

static char ahead(const struct parser *p, size_t off)
{
    return p->pos + off < p->len ? p->s[p->pos + off] : '\0';
}

static bool at_eof(const struct parser *p)
{
    return p->pos >= p->len;
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len && is_ws((unsigned char)p->s[p->pos]))
        p->pos++;
}

/* Records that `what` was expected at the current position; always returns false. */
static bool fail_expect(struct parser *p, const char *what)
{
    if (p->fatal)
        return false;
    if (!p->has_fail || p->pos > p->fail_pos) {
        p->has_fail = true;
        p->fail_pos = p->pos;
        p->n_expect = 0;
    }
    if (p->pos == p->fail_pos && p->n_expect < MAX_EXPECT) {
        for (size_t i = 0; i < p->n_expect; i++) {
            if (strcmp(p->expect[i], what) == 0)
                return false;
        }
        p->expect[p->n_expect++] = what;
    }
    return false;
}

/* Stops the whole parse with a message; always returns false. */
static bool fail_fatal(struct parser *p, const char *fmt, ...) CD_PRINTF(2, 3);
static bool fail_fatal(struct parser *p, const char *fmt, ...)
{
    va_list ap;

    if (p->fatal)
        return false;
    p->fatal = true;
    p->fatal_pos = p->pos;
    va_start(ap, fmt);
    vsnprintf(p->fatal_detail, sizeof p->fatal_detail, fmt, ap);
    va_end(ap);
    return false;
}

/* Consumes word if the input continues with it. */
static bool lit(struct parser *p, const char *word)
{
    size_t n = strlen(word);

    if (p->len - p->pos < n || memcmp(p->s + p->pos, word, n) != 0)
        return false;
    p->pos += n;
    return true;
}

static void *p_alloc(struct parser *p, size_t n)
{
    void *mem = cd_arena_alloc(p->q->arena, n);

    if (mem == NULL)
        fail_fatal(p, "the request needs more than %zu bytes of parser memory", p->q->arena->max);
    return mem;
}

static char *p_strndup(struct parser *p, const char *s, size_t n)
{
    char *d = p_alloc(p, n + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static bool vec_push(cd_arena_t *arena, struct vec *v, size_t elem, const void *item)
{
    if (v->len == v->cap) {
        size_t ncap = v->cap != 0 ? v->cap * 2 : 4;
        void *nd;

        if (ncap > arena->max / elem)
            return false;
        nd = cd_arena_alloc(arena, ncap * elem);
        if (nd == NULL)
            return false;
        if (v->len != 0)
            memcpy(nd, v->data, v->len * elem);
        v->data = nd;
        v->cap = ncap;
    }
    memcpy((char *)v->data + v->len * elem, item, elem);
    v->len++;
    return true;
}

static bool p_push(struct parser *p, struct vec *v, size_t elem, const void *item)
{
    if (!vec_push(p->q->arena, v, elem, item))
        return fail_fatal(p, "the request needs more than %zu bytes of parser memory",
                          p->q->arena->max);
    return true;
}

static bool count_filter(struct parser *p)
{
    if (++p->q->n_filters > REST_MAX_FILTERS)
        return fail_fatal(p, "more than %u filters", REST_MAX_FILTERS);
    return true;
}

/* ==========================================================================================
 * Error reports in PostgREST's shape:
 *   message: "failed to parse filter (eq)" (line 1, column 3)
 *   details: unexpected "x" expecting "not" or operator (eq, gt, ...)
 */

/* Appends s the way Haskell's `show` prints a string (quotes and backslashes escaped),
 * keeping non-ASCII as UTF-8 and cutting it after SHOWN_INPUT_MAX bytes. */
static void text_add_shown(struct text *t, const char *s, size_t n, bool quote)
{
    size_t limit = n > SHOWN_INPUT_MAX ? SHOWN_INPUT_MAX : n;
    char esc[8];

    /* never cut a UTF-8 sequence in half */
    while (limit < n && limit > 0 && ((unsigned char)s[limit] & 0xc0) == 0x80)
        limit--;
    if (quote)
        text_add(t, "\"", 1);
    for (size_t i = 0, len = 1; i < limit; i += len) {
        unsigned char c = (unsigned char)s[i];

        len = 1;
        if (c >= 0x80) { /* a whole UTF-8 sequence at once */
            while (i + len < limit && ((unsigned char)s[i + len] & 0xc0) == 0x80)
                len++;
            text_add(t, s + i, len);
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            text_add(t, esc, 2);
        } else if (c == '\n') {
            text_adds(t, "\\n");
        } else if (c == '\t') {
            text_adds(t, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\%u", (unsigned)c);
            text_adds(t, esc);
        } else {
            text_add(t, s + i, 1);
        }
    }
    if (limit < n)
        text_adds(t, "...");
    if (quote)
        text_add(t, "\"", 1);
}

/* Line and column as Parsec counts them: tabs to the next multiple of 8, plus one. */
static void line_column(const char *s, size_t pos, unsigned long *line, unsigned long *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\n') {
            (*line)++;
            *col = 1;
        } else if (c == '\t') {
            *col = *col + 8 - ((*col - 1) % 8);
        } else if ((c & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

/* Fills err from a failed parser. `what` names the parameter ("filter", "select parameter"),
 * input is the text shown in the message (the parser may have parsed a longer string). */
static void parser_error(struct rest_error *err, const struct parser *p, const char *what,
                         const char *input, size_t input_len)
{
    char msg[REST_ERROR_MESSAGE_MAX];
    char det[REST_ERROR_DETAILS_MAX];
    char pos_text[64];
    struct text m = {msg, sizeof msg, 0, false};
    struct text d = {det, sizeof det, 0, false};
    size_t pos = p->fatal ? p->fatal_pos : (p->has_fail ? p->fail_pos : p->pos);
    unsigned long line, col;

    msg[0] = det[0] = '\0';
    if (pos > p->len)
        pos = p->len;
    line_column(p->s, pos, &line, &col);
    text_adds(&m, "\"failed to parse ");
    text_adds(&m, what);
    text_adds(&m, " (");
    text_add_shown(&m, input, input_len, false);
    snprintf(pos_text, sizeof pos_text, ")\" (line %lu, column %lu)", line, col);
    text_adds(&m, pos_text);

    if (p->fatal) {
        text_adds(&d, p->fatal_detail);
    } else {
        text_adds(&d, "unexpected ");
        if (pos >= p->len) {
            text_adds(&d, "end of input");
        } else {
            size_t n = 1;

            while (pos + n < p->len && ((unsigned char)p->s[pos + n] & 0xc0) == 0x80)
                n++;
            text_add_shown(&d, p->s + pos, n, true);
        }
        for (size_t i = 0; i < p->n_expect; i++) {
            text_adds(&d, i == 0 ? " expecting " : (i + 1 == p->n_expect ? " or " : ", "));
            text_adds(&d, p->expect[i]);
        }
    }
    set_error(err, 400, "PGRST100", msg, det);
}

/* ==========================================================================================
 * Names and fields
 */

/* A quoted name or value: "..." with backslash escaping any character. */
static bool parse_quoted(struct parser *p, char **out)
{
    size_t i = p->pos + 1, n = 0, o = 0;
    char *d;

    if (cur(p) != '"')
        return fail_expect(p, "\"\\\"\"");
    while (i < p->len && p->s[i] != '"') {
        i += (p->s[i] == '\\' && i + 1 < p->len) ? 2 : 1; /* a trailing '\\' is unterminated */
        n++;
    }
    if (i >= p->len) {
        p->pos = p->len;
        return fail_expect(p, "\"\\\"\"");
    }
    d = p_alloc(p, n + 1);
    if (d == NULL)
        return false;
    for (size_t k = p->pos + 1; k < i; k++) {
        if (p->s[k] == '\\')
            k++;
        d[o++] = p->s[k];
    }
    d[o] = '\0';
    p->pos = i + 1;
    *out = d;
    return true;
}

/* One run of characters of class cls, without surrounding whitespace: [*b, *e). */
static bool scan_piece(struct parser *p, bool (*cls)(unsigned char), size_t *b, size_t *e)
{
    size_t start = p->pos;

    while (p->pos < p->len && cls((unsigned char)p->s[p->pos]))
        p->pos++;
    if (p->pos == start)
        return false;
    *b = start;
    *e = p->pos;
    while (*b < *e && is_space((unsigned char)p->s[*b]))
        (*b)++;
    while (*e > *b && is_space((unsigned char)p->s[*e - 1]))
        (*e)--;
    return true;
}

/* piece ('-' piece)*, where a '-' followed by '>' is an arrow, not a dash (PostgREST's
 * sepByDash). Pieces are trimmed and joined with '-'. */
static bool scan_dashed(struct parser *p, bool (*cls)(unsigned char), const char *label, char **out)
{
    size_t start = p->pos, total = 0, b, e, o = 0;
    char *d;

    for (;;) {
        if (!scan_piece(p, cls, &b, &e))
            return fail_expect(p, label);
        total += e - b;
        if (cur(p) == '-' && ahead(p, 1) != '>') {
            p->pos++;
            total++;
            continue;
        }
        break;
    }
    d = p_alloc(p, total + 1);
    if (d == NULL)
        return false;
    p->pos = start;
    for (;;) {
        if (!scan_piece(p, cls, &b, &e))
            return false; /* cannot happen: same input as the first pass */
        memcpy(d + o, p->s + b, e - b);
        o += e - b;
        if (cur(p) == '-' && ahead(p, 1) != '>') {
            p->pos++;
            d[o++] = '-';
            continue;
        }
        break;
    }
    d[o] = '\0';
    *out = d;
    return true;
}

/* Rejects names PostgreSQL could not hold: empty, or longer than NAMEDATALEN - 1. */
static bool check_name(struct parser *p, const char *name, size_t at)
{
    size_t n = strlen(name);

    if (n == 0 || n > REST_MAX_NAME_BYTES) {
        p->pos = at;
        if (n == 0)
            return fail_fatal(p, "empty identifier");
        return fail_fatal(p, "identifier longer than %u bytes", REST_MAX_NAME_BYTES);
    }
    return true;
}

/* PostgREST's pFieldName: a quoted name or dash-separated identifier runs. */
static bool parse_name(struct parser *p, char **out)
{
    size_t at = p->pos;

    if (cur(p) == '"') {
        if (!parse_quoted(p, out))
            return false;
    } else if (!scan_dashed(p, is_ident_char, "field name (* or [a..z0..9_$])", out)) {
        return false;
    }
    return check_name(p, *out, at);
}

/* PostgREST's pIdentifier (casts, fts configurations): identifier characters, trimmed. */
static bool parse_identifier(struct parser *p, char **out)
{
    size_t at = p->pos, b, e;

    if (!scan_piece(p, is_ident_char, &b, &e)) {
        fail_expect(p, "letter");
        return fail_expect(p, "digit");
    }
    *out = p_strndup(p, p->s + b, e - b);
    if (*out == NULL)
        return false;
    return check_name(p, *out, at);
}

/* True when a json array index may end here: before "->", "::", ".", "," or the end. */
static bool json_index_end(const struct parser *p, size_t i)
{
    char c = i < p->len ? p->s[i] : '\0';
    char n = i + 1 < p->len ? p->s[i + 1] : '\0';

    return c == '\0' || c == '.' || c == ',' || (c == '-' && n == '>') || (c == ':' && n == ':');
}

static bool parse_json_operand(struct parser *p, struct rest_json_step *st)
{
    size_t i = p->pos, digits;

    if (i < p->len && p->s[i] == '-')
        i++;
    digits = i;
    while (i < p->len && is_digit((unsigned char)p->s[i]))
        i++;
    if (i > digits && json_index_end(p, i)) {
        st->is_index = true;
        st->key = p_strndup(p, p->s + p->pos, i - p->pos);
        p->pos = i;
        return st->key != NULL;
    }
    if (cur(p) == '"')
        return parse_quoted(p, &st->key);
    return scan_dashed(p, is_json_key_char, "any non reserved character different from: .,>()",
                       &st->key);
}

/* (-> | ->>) operand, repeated. */
static bool parse_json_path(struct parser *p, struct rest_field *f)
{
    struct vec steps = {0};

    while (cur(p) == '-' && ahead(p, 1) == '>') {
        struct rest_json_step st = {0};

        if (ahead(p, 2) == '>') {
            st.arrow = REST_JSON_ARROW2;
            p->pos += 3;
        } else {
            st.arrow = REST_JSON_ARROW;
            p->pos += 2;
        }
        if (!parse_json_operand(p, &st))
            return false;
        if (steps.len >= REST_MAX_JSON_STEPS)
            return fail_fatal(p, "json path longer than %u steps", REST_MAX_JSON_STEPS);
        if (!p_push(p, &steps, sizeof st, &st))
            return false;
    }
    f->json = steps.data;
    f->n_json = steps.len;
    return true;
}

/* PostgREST's pField: name and json path, with surrounding blanks. */
static bool parse_field(struct parser *p, struct rest_field *f)
{
    skip_ws(p);
    if (!parse_name(p, &f->name) || !parse_json_path(p, f))
        return false;
    skip_ws(p);
    return true;
}

/* `name:` (but not `name::`) if present; returns false only on a fatal error. */
static bool try_alias(struct parser *p, char **alias)
{
    size_t save = p->pos;
    char *name = NULL;

    *alias = NULL;
    if (parse_name(p, &name) && cur(p) == ':' && ahead(p, 1) != ':') {
        p->pos++;
        *alias = name;
        return true;
    }
    p->pos = save;
    return !p->fatal;
}

/* `::type` if present. */
static bool parse_opt_cast(struct parser *p, char **cast)
{
    *cast = NULL;
    if (!(cur(p) == ':' && ahead(p, 1) == ':')) {
        fail_expect(p, "\"::\"");
        return true;
    }
    p->pos += 2;
    return parse_identifier(p, cast);
}

/* ==========================================================================================
 * select=
 */

enum try_result { TRY_NO, TRY_OK, TRY_ERR };

static bool parse_select_forest(struct parser *p, struct vec *items);

/* Before an item ends: ")", "," or the end. */
static bool at_item_end(struct parser *p)
{
    char c = cur(p);

    if (c == ')' || c == ',' || c == '\0')
        return true;
    fail_expect(p, "\")\"");
    fail_expect(p, "\",\"");
    return fail_expect(p, "end of input");
}

/* !hint, !inner, !left: at most two; the first of each kind wins, as in PostgREST. */
static bool parse_embed_params(struct parser *p, struct rest_select_item *it)
{
    for (int i = 0; i < 2 && cur(p) == '!'; i++) {
        char *hint = NULL;
        enum rest_join_type join = REST_JOIN_DEFAULT;
        size_t word;

        p->pos++;
        word = p->pos;
        if (lit(p, "inner"))
            join = REST_JOIN_INNER;
        else if (lit(p, "left"))
            join = REST_JOIN_LEFT;
        if (join != REST_JOIN_DEFAULT && (cur(p) == '!' || cur(p) == '(')) {
            if (it->join == REST_JOIN_DEFAULT)
                it->join = join;
            continue;
        }
        p->pos = word; /* not a join keyword after all (`!leftover`): a hint */
        if (!parse_name(p, &hint))
            return false;
        if (it->hint == NULL)
            it->hint = hint;
    }
    return true;
}

static bool parse_embed_children(struct parser *p, struct rest_select_item *it)
{
    struct vec kids = {0};
    bool ok;

    p->pos++; /* '(' */
    if (p->depth >= REST_MAX_DEPTH)
        return fail_fatal(p, "embedding deeper than %u levels", REST_MAX_DEPTH);
    p->depth++;
    ok = parse_select_forest(p, &kids);
    p->depth--;
    if (!ok)
        return false;
    skip_ws(p);
    if (cur(p) != ')') {
        fail_expect(p, "\",\"");
        return fail_expect(p, "\")\"");
    }
    p->pos++;
    skip_ws(p);
    it->children = kids.data;
    it->n_children = kids.len;
    return true;
}

/* [alias:]rel[!..](children) or ...rel[!..](children). Once the '(' is reached the item is
 * an embed and a failure inside is final (Parsec commits there too). */
static enum try_result try_embed(struct parser *p, struct rest_select_item *it, bool spread)
{
    skip_ws(p);
    if (spread) {
        if (!lit(p, "...")) {
            fail_expect(p, "\"...\"");
            return TRY_NO;
        }
    } else if (!try_alias(p, &it->alias)) {
        return TRY_ERR;
    }
    if (!parse_name(p, &it->relation))
        return p->fatal ? TRY_ERR : TRY_NO;
    if (!spread && strcmp(it->relation, "count") == 0)
        return TRY_NO; /* count() is an aggregate, never an embed */
    if (!parse_embed_params(p, it))
        return p->fatal ? TRY_ERR : TRY_NO;
    if (cur(p) != '(') {
        fail_expect(p, "\"(\"");
        return TRY_NO;
    }
    it->kind = spread ? REST_SELECT_SPREAD : REST_SELECT_EMBED;
    return parse_embed_children(p, it) ? TRY_OK : TRY_ERR;
}

static bool parse_aggregate(struct parser *p, enum rest_aggregate *agg)
{
    static const struct {
        const char *name;
        enum rest_aggregate agg;
    } aggs[] = {{"sum()", REST_AGG_SUM},
                {"avg()", REST_AGG_AVG},
                {"count()", REST_AGG_COUNT},
                {"max()", REST_AGG_MAX},
                {"min()", REST_AGG_MIN}};
    size_t save = p->pos;

    *agg = REST_AGG_NONE;
    if (cur(p) != '.') {
        fail_expect(p, "\".\"");
        return true;
    }
    p->pos++;
    for (size_t i = 0; i < CD_ARRAY_LEN(aggs); i++) {
        if (lit(p, aggs[i].name)) {
            *agg = aggs[i].agg;
            return true;
        }
    }
    p->pos = save;
    return true;
}

/* *, [alias:]count()[::cast], [alias:]field[::cast][.agg()[::cast]] */
static bool parse_field_select(struct parser *p, struct rest_select_item *it)
{
    size_t save;

    skip_ws(p);
    save = p->pos;
    if (cur(p) == '*') {
        p->pos++;
        skip_ws(p);
        if (at_item_end(p)) {
            it->kind = REST_SELECT_STAR;
            return true;
        }
        p->pos = save;
    }
    if (!try_alias(p, &it->alias))
        return false;
    if (lit(p, "count()")) {
        if (!parse_opt_cast(p, &it->aggregate_cast))
            return false;
        skip_ws(p);
        if (at_item_end(p)) {
            it->kind = REST_SELECT_FIELD;
            it->field.name = p_strndup(p, "*", 1);
            it->aggregate = REST_AGG_COUNT;
            return it->field.name != NULL;
        }
        it->aggregate_cast = NULL;
        p->pos = save;
        if (!try_alias(p, &it->alias))
            return false;
    }
    if (!parse_field(p, &it->field) || !parse_opt_cast(p, &it->cast) ||
        !parse_aggregate(p, &it->aggregate))
        return false;
    if (it->aggregate != REST_AGG_NONE && !parse_opt_cast(p, &it->aggregate_cast))
        return false;
    skip_ws(p);
    if (!at_item_end(p))
        return false;
    it->kind = REST_SELECT_FIELD;
    return true;
}

static bool parse_select_tree(struct parser *p, struct rest_select_item *it)
{
    size_t save = p->pos;
    enum try_result r;

    for (int spread = 1; spread >= 0; spread--) {
        memset(it, 0, sizeof(*it));
        p->pos = save;
        r = try_embed(p, it, spread != 0);
        if (r == TRY_OK)
            return true;
        if (r == TRY_ERR)
            return false;
    }
    memset(it, 0, sizeof(*it));
    p->pos = save;
    return parse_field_select(p, it);
}

static bool push_select_item(struct parser *p, struct vec *items, const struct rest_select_item *it)
{
    if (++p->q->n_select > REST_MAX_SELECT_ITEMS)
        return fail_fatal(p, "more than %u select items", REST_MAX_SELECT_ITEMS);
    return p_push(p, items, sizeof(*it), it);
}

/* item (',' item)*, possibly empty (`select=`, `rel()`). */
static bool parse_select_forest(struct parser *p, struct vec *items)
{
    struct rest_select_item it;
    size_t save = p->pos;

    if (!parse_select_tree(p, &it)) {
        if (p->fatal)
            return false;
        p->pos = save; /* empty list; the caller's ')' or end check reports the error */
        return true;
    }
    if (!push_select_item(p, items, &it))
        return false;
    for (;;) {
        save = p->pos;
        skip_ws(p);
        if (cur(p) != ',') {
            fail_expect(p, "\",\"");
            p->pos = save;
            return true;
        }
        p->pos++;
        skip_ws(p);
        if (!parse_select_tree(p, &it) || !push_select_item(p, items, &it))
            return false;
    }
}

/* ==========================================================================================
 * Operator expressions: [not.]op[(modifier)].value
 */

enum op_class { OPC_QUANT, OPC_SIMPLE, OPC_FTS, OPC_IN, OPC_IS, OPC_ISDISTINCT };

static const struct op_def {
    const char *name;
    enum rest_op op;
    enum op_class cls;
} OP_DEFS[] = {
    {"eq", REST_OP_EQ, OPC_QUANT},
    {"gt", REST_OP_GT, OPC_QUANT},
    {"gte", REST_OP_GTE, OPC_QUANT},
    {"lt", REST_OP_LT, OPC_QUANT},
    {"lte", REST_OP_LTE, OPC_QUANT},
    {"like", REST_OP_LIKE, OPC_QUANT},
    {"ilike", REST_OP_ILIKE, OPC_QUANT},
    {"match", REST_OP_MATCH, OPC_QUANT},
    {"imatch", REST_OP_IMATCH, OPC_QUANT},
    {"neq", REST_OP_NEQ, OPC_SIMPLE},
    {"cs", REST_OP_CS, OPC_SIMPLE},
    {"cd", REST_OP_CD, OPC_SIMPLE},
    {"ov", REST_OP_OV, OPC_SIMPLE},
    {"sl", REST_OP_SL, OPC_SIMPLE},
    {"sr", REST_OP_SR, OPC_SIMPLE},
    {"nxl", REST_OP_NXL, OPC_SIMPLE},
    {"nxr", REST_OP_NXR, OPC_SIMPLE},
    {"adj", REST_OP_ADJ, OPC_SIMPLE},
    {"fts", REST_OP_FTS, OPC_FTS},
    {"plfts", REST_OP_PLFTS, OPC_FTS},
    {"phfts", REST_OP_PHFTS, OPC_FTS},
    {"wfts", REST_OP_WFTS, OPC_FTS},
    {"in", REST_OP_IN, OPC_IN},
    {"is", REST_OP_IS, OPC_IS},
    {"isdistinct", REST_OP_ISDISTINCT, OPC_ISDISTINCT},
};

static const struct op_def *find_op(const char *s, size_t n)
{
    for (size_t i = 0; i < CD_ARRAY_LEN(OP_DEFS); i++) {
        if (strlen(OP_DEFS[i].name) == n && memcmp(OP_DEFS[i].name, s, n) == 0)
            return &OP_DEFS[i];
    }
    return NULL;
}

static bool expect_delimiter(struct parser *p)
{
    if (cur(p) != '.')
        return fail_expect(p, "delimiter (.)");
    p->pos++;
    return true;
}

/* A value inside or=(...): "quoted" (then ',' or ')'), {pg,array}, or text up to , or ). */
static bool parse_logic_value(struct parser *p, char **out)
{
    size_t b = p->pos, i;

    if (cur(p) == '"') {
        if (parse_quoted(p, out) && (cur(p) == ',' || cur(p) == ')' || at_eof(p)))
            return true;
        if (p->fatal)
            return false;
        p->pos = b;
    }
    if (cur(p) == '{') {
        for (i = b + 1; i < p->len && p->s[i] != '{' && p->s[i] != '}'; i++)
            ;
        if (i < p->len && p->s[i] == '}') {
            p->pos = i + 1;
            *out = p_strndup(p, p->s + b, i + 1 - b);
            return *out != NULL;
        }
    }
    while (p->pos < p->len && p->s[p->pos] != ',' && p->s[p->pos] != ')')
        p->pos++;
    *out = p_strndup(p, p->s + b, p->pos - b);
    return *out != NULL;
}

/* in.(a,"b,c",d): elements are not trimmed; `in.()` is the empty list. */
static bool parse_list(struct parser *p, struct rest_op_expr *x)
{
    struct vec items = {0};
    bool first_quoted = false;

    skip_ws(p);
    if (cur(p) != '(')
        return fail_expect(p, "\"(\"");
    p->pos++;
    skip_ws(p);
    for (;;) {
        char *el = NULL;
        bool quoted = false;
        size_t b = p->pos;

        if (cur(p) == '"') {
            if (parse_quoted(p, &el) && (cur(p) == ',' || cur(p) == ')'))
                quoted = true;
            else if (p->fatal)
                return false;
            else
                p->pos = b;
        }
        if (!quoted) {
            while (p->pos < p->len && p->s[p->pos] != ',' && p->s[p->pos] != ')')
                p->pos++;
            el = p_strndup(p, p->s + b, p->pos - b);
            if (el == NULL)
                return false;
        }
        if (items.len == 0)
            first_quoted = quoted;
        if (!p_push(p, &items, sizeof el, &el))
            return false;
        if (cur(p) != ',')
            break;
        p->pos++;
    }
    skip_ws(p);
    if (cur(p) != ')') {
        fail_expect(p, "\",\"");
        return fail_expect(p, "\")\"");
    }
    p->pos++;
    skip_ws(p);
    x->list = items.data;
    x->n_list = items.len;
    if (x->n_list == 1 && !first_quoted && x->list[0][0] == '\0')
        x->n_list = 0;
    return true;
}

static bool parse_is_value(struct parser *p, enum rest_is_value *v)
{
    static const struct {
        const char *word;
        enum rest_is_value v;
    } words[] = {{"not_null", REST_IS_NOT_NULL},
                 {"null", REST_IS_NULL},
                 {"true", REST_IS_TRUE},
                 {"false", REST_IS_FALSE},
                 {"unknown", REST_IS_UNKNOWN}};

    for (size_t i = 0; i < CD_ARRAY_LEN(words); i++) {
        size_t n = strlen(words[i].word);

        if (p->len - p->pos >= n && starts_with_ci(p->s + p->pos, words[i].word)) {
            p->pos += n;
            *v = words[i].v;
            return true;
        }
    }
    return fail_expect(p, "isVal: (null, not_null, true, false, unknown)");
}

/* At top level the value is the rest of the input; inside a logic tree it is a logic value.
 * After `in` and `is` the caller checks what follows. */
static bool parse_single_value(struct parser *p, bool in_logic, char **out)
{
    if (in_logic)
        return parse_logic_value(p, out);
    *out = p_strndup(p, p->s + p->pos, p->len - p->pos);
    p->pos = p->len;
    return *out != NULL;
}

static bool parse_op_expr(struct parser *p, struct rest_op_expr *x, bool in_logic)
{
    const struct op_def *d;
    size_t w;

    memset(x, 0, sizeof(*x));
    if (lit(p, "not."))
        x->negated = true;
    else
        fail_expect(p, "\"not\"");
    for (w = p->pos; w < p->len && p->s[w] >= 'a' && p->s[w] <= 'z'; w++)
        ;
    d = find_op(p->s + p->pos, w - p->pos);
    if (d == NULL)
        return fail_expect(p, "operator (eq, gt, ...)");
    p->pos = w;
    x->op = d->op;
    switch (d->cls) {
    case OPC_IN:
        return expect_delimiter(p) && parse_list(p, x);
    case OPC_IS:
        return expect_delimiter(p) && parse_is_value(p, &x->is_value);
    case OPC_ISDISTINCT:
    case OPC_SIMPLE:
        return expect_delimiter(p) && parse_single_value(p, in_logic, &x->value);
    case OPC_FTS:
        if (cur(p) == '(') {
            size_t save = p->pos;

            p->pos++;
            if (parse_identifier(p, &x->fts_config) && cur(p) == ')') {
                p->pos++;
            } else {
                if (p->fatal)
                    return false;
                x->fts_config = NULL;
                p->pos = save;
            }
        }
        return expect_delimiter(p) && parse_single_value(p, in_logic, &x->value);
    case OPC_QUANT:
        if (lit(p, "(any)"))
            x->quantifier = REST_QUANT_ANY;
        else if (lit(p, "(all)"))
            x->quantifier = REST_QUANT_ALL;
        return expect_delimiter(p) && parse_single_value(p, in_logic, &x->value);
    }
    return false;
}

/* ==========================================================================================
 * Logic trees: and(...), or(...), not.and(...), not.or(...)
 */

static bool parse_logic_tree(struct parser *p, struct rest_logic_tree *t)
{
    size_t save = p->pos;
    struct vec kids = {0};

    memset(t, 0, sizeof(*t));
    /* a leaf: field.op.value */
    if (parse_field(p, &t->filter.field) && expect_delimiter(p) &&
        parse_op_expr(p, &t->filter.expr, true)) {
        t->is_filter = true;
        return count_filter(p);
    }
    if (p->fatal)
        return false;
    memset(t, 0, sizeof(*t));
    p->pos = save;
    if (lit(p, "not."))
        t->negated = true;
    else
        fail_expect(p, "negation operator (not)");
    if (lit(p, "and")) {
        t->op = REST_LOGIC_AND;
    } else if (lit(p, "or")) {
        t->op = REST_LOGIC_OR;
    } else {
        return fail_expect(p, "logic operator (and, or)");
    }
    skip_ws(p);
    if (cur(p) != '(')
        return fail_expect(p, "\"(\"");
    p->pos++;
    skip_ws(p);
    if (p->depth >= REST_MAX_DEPTH)
        return fail_fatal(p, "logic tree deeper than %u levels", REST_MAX_DEPTH);
    p->depth++;
    for (;;) {
        struct rest_logic_tree child;

        if (!parse_logic_tree(p, &child) || !p_push(p, &kids, sizeof child, &child)) {
            p->depth--;
            return false;
        }
        skip_ws(p);
        if (cur(p) != ',')
            break;
        p->pos++;
        skip_ws(p);
    }
    p->depth--;
    if (cur(p) != ')') {
        fail_expect(p, "\",\"");
        return fail_expect(p, "\")\"");
    }
    p->pos++;
    skip_ws(p);
    t->children = kids.data;
    t->n_children = kids.len;
    return true;
}

/* ==========================================================================================
 * order=
 */

static bool parse_order_suffix(struct parser *p, struct rest_order_term *t)
{
    if (lit(p, ".asc"))
        t->dir = REST_ORDER_ASC;
    else if (lit(p, ".desc"))
        t->dir = REST_ORDER_DESC;
    if (lit(p, ".nullsfirst"))
        t->nulls = REST_NULLS_FIRST;
    else if (lit(p, ".nullslast"))
        t->nulls = REST_NULLS_LAST;
    skip_ws(p);
    if (cur(p) == ',' || at_eof(p))
        return true;
    if (cur(p) == '.' && t->nulls == REST_NULLS_DEFAULT) {
        p->pos++;
        if (t->dir == REST_ORDER_DEFAULT) {
            fail_expect(p, "\"asc\"");
            fail_expect(p, "\"desc\"");
        }
        fail_expect(p, "\"nullsfirst\"");
        return fail_expect(p, "\"nullslast\"");
    }
    if (t->nulls == REST_NULLS_DEFAULT)
        fail_expect(p, "delimiter (.)");
    fail_expect(p, "\",\"");
    return fail_expect(p, "end of input");
}

static bool parse_order_term(struct parser *p, struct rest_order_term *t)
{
    size_t save;

    memset(t, 0, sizeof(*t));
    skip_ws(p);
    save = p->pos;
    /* rel(field) orders by a column of a to-one embed */
    if (parse_name(p, &t->relation) && cur(p) == '(') {
        p->pos++;
        if (parse_field(p, &t->field) && cur(p) == ')') {
            p->pos++;
            if (parse_order_suffix(p, t))
                return true;
        } else {
            fail_expect(p, "\")\"");
        }
    }
    if (p->fatal)
        return false;
    memset(t, 0, sizeof(*t));
    p->pos = save;
    return parse_field(p, &t->field) && parse_order_suffix(p, t);
}

static bool parse_order_value(struct parser *p, struct vec *terms)
{
    for (;;) {
        struct rest_order_term t;

        if (!parse_order_term(p, &t))
            return false;
        if (++p->q->n_order > REST_MAX_ORDER_TERMS)
            return fail_fatal(p, "more than %u order terms", REST_MAX_ORDER_TERMS);
        if (!p_push(p, terms, sizeof t, &t))
            return false;
        if (at_eof(p))
            return true;
        p->pos++; /* ',' (parse_order_suffix checked) */
    }
}

/* ==========================================================================================
 * Parameter keys: embed paths
 */

/* name ('.' name)*, the whole input; with want_json a json path may end it. */
static bool parse_key_path(struct parser *p, struct vec *segs, struct rest_field *f, bool want_json)
{
    char *name = NULL;

    for (;;) {
        if (!parse_name(p, &name))
            return false;
        if (segs->len >= REST_MAX_DEPTH + 1)
            return fail_fatal(p, "embed path deeper than %u levels", REST_MAX_DEPTH);
        if (!p_push(p, segs, sizeof name, &name))
            return false;
        if (cur(p) != '.')
            break;
        p->pos++;
    }
    segs->len--; /* the last name is the field, not a path segment */
    f->name = name;
    if (want_json && !parse_json_path(p, f))
        return false;
    if (!at_eof(p)) {
        fail_expect(p, "delimiter (.)");
        if (want_json)
            fail_expect(p, "\"->\"");
        return fail_expect(p, "end of input");
    }
    return true;
}

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
    set_error(err, 400, "PGRST100", "failed to parse query string", det);
    return false;
}

static bool split_query(cd_arena_t *arena, const char *query, size_t len, struct vec *params,
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
                set_error(err, 400, "PGRST100", "failed to parse query string",
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
            if (!vec_push(arena, params, sizeof prm, &prm)) {
                set_error(err, 400, "PGRST100", "failed to parse query string",
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
static const struct param *find_param(const struct vec *params, const char *key)
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
                      const char *what, struct vec *segs, struct rest_field *f,
                      struct rest_error *err)
{
    struct parser p;

    parser_init(&p, q, prm->key, prm->key_len);
    if (!parse_key_path(&p, segs, f, want_json)) {
        parser_error(err, &p, what, prm->key, prm->key_len);
        return false;
    }
    return true;
}

static bool parse_order_param(struct query_ctx *q, const struct param *prm, struct vec *orders,
                              struct rest_error *err)
{
    struct rest_order ord = {0};
    struct vec segs = {0}, terms = {0};
    struct rest_field f = {0};
    struct parser p;

    if (!parse_key(q, prm, true, "tree path", &segs, &f, err))
        return false;
    parser_init(&p, q, prm->value, prm->value_len);
    if (parse_order_value(&p, &terms)) {
        ord.embed_path = segs.data;
        ord.n_embed_path = segs.len;
        ord.terms = terms.data;
        ord.n_terms = terms.len;
        if (p_push(&p, orders, sizeof ord, &ord))
            return true;
    }
    parser_error(err, &p, "order", prm->value, prm->value_len);
    return false;
}

static bool parse_logic_param(struct query_ctx *q, const struct param *prm, struct vec *logic,
                              struct rest_error *err)
{
    struct rest_logic lg = {0};
    struct vec segs = {0};
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
        parser_init(&p, q, prm->key, prm->key_len);
        p.pos = p.len;
        fail_expect(&p, "logic operator (and, or)");
        parser_error(err, &p, "logic path", prm->key, prm->key_len);
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
    parser_init(&p, q, prm->value, prm->value_len);
    op_len = (negated ? 4 : 0) + strlen(f.name);
    text = p_alloc(&p, op_len + prm->value_len + 1);
    if (text != NULL) {
        snprintf(text, op_len + 1, "%s%s", negated ? "not." : "", f.name);
        memcpy(text + op_len, prm->value, prm->value_len + 1);
        parser_init(&p, q, text, op_len + prm->value_len);
    }
    ok = text != NULL && parse_logic_tree(&p, &lg.tree);
    if (ok && lg.tree.is_filter) {
        /* `or=.eq.1` reads as a filter on a column "or": not a logic tree */
        p.has_fail = false;
        p.pos = op_len;
        ok = fail_expect(&p, "\"(\"");
    } else if (ok && !at_eof(&p)) {
        ok = fail_expect(&p, "end of input");
    }
    if (!ok || !p_push(&p, logic, sizeof lg, &lg)) {
        parser_error(err, &p, "logic tree", prm->value, prm->value_len);
        return false;
    }
    return true;
}

/* name (',' name)*; used by columns= and on_conflict=. */
static bool parse_name_list(struct query_ctx *q, const struct param *prm, const char *what,
                            bool dedupe, char ***out, size_t *n_out, struct rest_error *err)
{
    struct parser p;
    struct vec names = {0};

    parser_init(&p, q, prm->value, prm->value_len);
    for (;;) {
        char *name = NULL;
        bool dup = false;

        if (!parse_name(&p, &name))
            goto fail;
        if (dedupe) {
            char **have = names.data;

            for (size_t i = 0; i < names.len && !dup; i++)
                dup = strcmp(have[i], name) == 0;
        }
        if (!dup) {
            if (names.len >= REST_MAX_COLUMNS) {
                fail_fatal(&p, "more than %u columns", REST_MAX_COLUMNS);
                goto fail;
            }
            if (!p_push(&p, &names, sizeof name, &name))
                goto fail;
        }
        skip_ws(&p);
        if (cur(&p) != ',')
            break;
        p.pos++;
        skip_ws(&p);
    }
    if (!at_eof(&p)) {
        fail_expect(&p, "\",\"");
        fail_expect(&p, "end of input");
        goto fail;
    }
    *out = names.data;
    *n_out = names.len;
    return true;
fail:
    parser_error(err, &p, what, prm->value, prm->value_len);
    return false;
}

static bool parse_select_param(struct query_ctx *q, const struct param *prm, struct rest_query *out,
                               struct rest_error *err)
{
    struct parser p;
    struct vec items = {0};

    parser_init(&p, q, prm->value, prm->value_len);
    if (!parse_select_forest(&p, &items))
        goto fail;
    skip_ws(&p);
    if (!at_eof(&p)) {
        fail_expect(&p, "\",\"");
        fail_expect(&p, "end of input");
        goto fail;
    }
    out->has_select = true;
    out->select = items.data;
    out->n_select = items.len;
    return true;
fail:
    parser_error(err, &p, "select parameter", prm->value, prm->value_len);
    return false;
}

/* A value that must be a filter even where a plain RPC argument would be allowed: PostgREST
 * has committed to `not.`, `in.` and `is.` once it has read them. */
static bool value_commits_to_filter(const char *v)
{
    return strncmp(v, "not.", 4) == 0 || strncmp(v, "in.", 3) == 0 || strncmp(v, "is.", 3) == 0;
}

static bool parse_filter_param(struct query_ctx *q, const struct param *prm, bool rpc,
                               struct vec *filters, struct vec *args, struct rest_error *err)
{
    struct rest_filter f = {0};
    struct vec segs = {0};
    struct parser p;

    if (!parse_key(q, prm, true, "tree path", &segs, &f.field, err))
        return false;
    f.embed_path = segs.data;
    f.n_embed_path = segs.len;
    parser_init(&p, q, prm->value, prm->value_len);
    if (parse_op_expr(&p, &f.expr, false) && (at_eof(&p) || fail_expect(&p, "end of input"))) {
        if (!count_filter(&p) || !p_push(&p, filters, sizeof f, &f))
            goto fail;
        return true;
    }
    if (rpc && !p.fatal && !value_commits_to_filter(prm->value) && f.n_embed_path == 0 &&
        f.field.n_json == 0) {
        struct rest_rpc_arg arg = {f.field.name, prm->value};

        if (p_push(&p, args, sizeof arg, &arg))
            return true;
    }
fail:
    parser_error(err, &p, "filter", prm->value, prm->value_len);
    return false;
}

/* limit=N / offset=N, on the root or `rel.limit=N`. */
static bool parse_range_param(struct query_ctx *q, const struct param *prm, bool is_limit,
                              struct vec *ranges, struct rest_error *err)
{
    struct vec segs = {0};
    struct rest_field f = {0};
    struct rest_range *have = ranges->data, *r = NULL;
    struct parser p;
    int64_t v = 0;

    if (!parse_key(q, prm, false, "tree path", &segs, &f, err))
        return false;
    parser_init(&p, q, prm->value, prm->value_len);
    if (!parse_i64_digits(prm->value, prm->value_len, &v)) {
        size_t i = 0;

        if (is_limit && prm->value_len > 1 && prm->value[0] == '-' &&
            parse_i64_digits(prm->value + 1, prm->value_len - 1, &v)) {
            set_error(err, 416, "PGRST103", "Requested range not satisfiable",
                      "Limit should be greater than or equal to zero.");
            return false;
        }
        while (i < prm->value_len && is_digit((unsigned char)prm->value[i]))
            i++;
        p.pos = i;
        if (i == prm->value_len && i > 0)
            fail_fatal(&p, "number too large");
        else
            fail_expect(&p, i == 0 ? "a non-negative integer" : "digit");
        parser_error(err, &p, is_limit ? "limit parameter" : "offset parameter", prm->value,
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
        if (!p_push(&p, ranges, sizeof fresh, &fresh)) {
            parser_error(err, &p, is_limit ? "limit parameter" : "offset parameter", prm->value,
                         prm->value_len);
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
    struct vec params = {0}, orders = {0}, logic = {0}, filters = {0}, ranges = {0}, args = {0};
    const struct param *prm, *all;
    char msg[64];

    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (query == NULL)
        len = 0;
    if (len > REST_MAX_QUERY_BYTES) {
        snprintf(msg, sizeof msg, "the query string is longer than %u bytes", REST_MAX_QUERY_BYTES);
        set_error(err, 400, "PGRST100", "failed to parse query string", msg);
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

/* ==========================================================================================
 * Prefer
 */

/* Preferences PostgREST knows, each in a slot of which the first occurrence wins. */
enum {
    PREF_RETURN,
    PREF_COUNT,
    PREF_RESOLUTION,
    PREF_MISSING,
    PREF_HANDLING,
    PREF_TX,
    PREF_PARAMS,
    PREF_SLOTS
};

static const struct {
    const char *text;
    int slot;
    int value;
} PREFS[] = {
    {"return=minimal", PREF_RETURN, REST_RETURN_MINIMAL},
    {"return=representation", PREF_RETURN, REST_RETURN_REPRESENTATION},
    {"return=headers-only", PREF_RETURN, REST_RETURN_HEADERS_ONLY},
    {"count=exact", PREF_COUNT, REST_COUNT_EXACT},
    {"count=planned", PREF_COUNT, REST_COUNT_PLANNED},
    {"count=estimated", PREF_COUNT, REST_COUNT_ESTIMATED},
    {"resolution=merge-duplicates", PREF_RESOLUTION, REST_RESOLUTION_MERGE_DUPLICATES},
    {"resolution=ignore-duplicates", PREF_RESOLUTION, REST_RESOLUTION_IGNORE_DUPLICATES},
    {"missing=default", PREF_MISSING, REST_MISSING_DEFAULT},
    {"missing=null", PREF_MISSING, REST_MISSING_NULL},
    {"handling=lenient", PREF_HANDLING, REST_HANDLING_LENIENT},
    {"handling=strict", PREF_HANDLING, REST_HANDLING_STRICT},
    {"tx=commit", PREF_TX, REST_TX_COMMIT},
    {"tx=rollback", PREF_TX, REST_TX_ROLLBACK},
    {"params=single-object", PREF_PARAMS, 1},
};

/* Applies one trimmed preference; returns false if it is not recognised. */
static bool apply_preference(struct rest_prefer *pr, int *slots, const char *s, size_t n,
                             bool *seen_max)
{
    for (size_t i = 0; i < CD_ARRAY_LEN(PREFS); i++) {
        if (strlen(PREFS[i].text) == n && memcmp(PREFS[i].text, s, n) == 0) {
            if (slots[PREFS[i].slot] == 0)
                slots[PREFS[i].slot] = PREFS[i].value;
            return true;
        }
    }
    if (n >= 13 && memcmp(s, "max-affected=", 13) == 0) {
        /* The first max-affected decides, even when its number is invalid (then ignored). */
        if (!*seen_max) {
            int64_t v = 0;
            bool neg = n > 13 && s[13] == '-';

            *seen_max = true;
            if (parse_i64_digits(s + 13 + neg, n - 13 - neg, &v)) {
                pr->has_max_affected = true;
                pr->max_affected = neg ? -v : v;
            }
        }
        return true;
    }
    return false;
}

bool rest_parse_prefer(cd_arena_t *arena, const char *const *values, const size_t *lens,
                       size_t n_values, struct rest_prefer *out, struct rest_error *err)
{
    struct vec invalid = {0};
    int slots[PREF_SLOTS] = {0};
    size_t total = 0, items = 0;
    bool seen_max = false;
    char det[REST_ERROR_DETAILS_MAX];
    struct text d = {det, sizeof det, 0, false};
    char **bad;

    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    for (size_t h = 0; h < n_values; h++) {
        const char *v = values[h];
        size_t n = lens[h], i = 0;

        if (v == NULL)
            continue;
        total += n;
        if (total > REST_MAX_PREFER_BYTES) {
            set_error(err, 400, "PGRST100", "failed to parse Prefer header",
                      "the Prefer headers are too long");
            return false;
        }
        if (memchr(v, '\0', n) != NULL || !cd_utf8_valid((const unsigned char *)v, n)) {
            set_error(err, 400, "PGRST100", "failed to parse Prefer header",
                      "the Prefer header is not valid UTF-8 text");
            return false;
        }
        while (i <= n) {
            size_t j = i, b, e;

            while (j < n && v[j] != ',')
                j++;
            for (b = i; b < j && is_space((unsigned char)v[b]); b++)
                ;
            for (e = j; e > b && is_space((unsigned char)v[e - 1]); e--)
                ;
            i = j + 1;
            if (e == b)
                continue;
            if (++items > REST_MAX_PREFER_ITEMS) {
                set_error(err, 400, "PGRST100", "failed to parse Prefer header",
                          "too many preferences");
                return false;
            }
            if (e - b > 9 && memcmp(v + b, "timezone=", 9) == 0) {
                if (out->timezone == NULL) {
                    out->timezone = cd_arena_alloc(arena, e - b - 9 + 1);
                    if (out->timezone == NULL)
                        goto nomem;
                    memcpy(out->timezone, v + b + 9, e - b - 9);
                    out->timezone[e - b - 9] = '\0';
                }
                continue;
            }
            if (!apply_preference(out, slots, v + b, e - b, &seen_max)) {
                char *copy = cd_arena_alloc(arena, e - b + 1);

                if (copy == NULL)
                    goto nomem;
                memcpy(copy, v + b, e - b);
                copy[e - b] = '\0';
                if (!vec_push(arena, &invalid, sizeof copy, &copy))
                    goto nomem;
            }
        }
    }
    out->ret = (enum rest_prefer_return)slots[PREF_RETURN];
    out->count = (enum rest_prefer_count)slots[PREF_COUNT];
    out->resolution = (enum rest_prefer_resolution)slots[PREF_RESOLUTION];
    out->missing = (enum rest_prefer_missing)slots[PREF_MISSING];
    out->handling = (enum rest_prefer_handling)slots[PREF_HANDLING];
    out->tx = (enum rest_prefer_tx)slots[PREF_TX];
    out->params_single_object = slots[PREF_PARAMS] != 0;
    out->invalid = invalid.data;
    out->n_invalid = invalid.len;
    if (out->handling == REST_HANDLING_STRICT && out->n_invalid > 0) {
        det[0] = '\0';
        text_adds(&d, "Invalid preferences: ");
        bad = out->invalid;
        for (size_t i = 0; i < out->n_invalid; i++) {
            if (i > 0)
                text_adds(&d, ", ");
            text_adds(&d, bad[i]);
        }
        set_error(err, 400, "PGRST122", "Invalid preferences given with handling=strict", det);
        return false;
    }
    return true;
nomem:
    set_error(err, 400, "PGRST100", "failed to parse Prefer header",
              "the request needs more parser memory than allowed");
    return false;
}

/* ==========================================================================================
 * Range
 */

bool rest_parse_range(const char *range, size_t range_len, const char *unit, size_t unit_len,
                      struct rest_range_header *out, struct rest_error *err)
{
    size_t dash = 0;

    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (range == NULL)
        return true;
    if (unit != NULL && !(unit_len == 5 && starts_with_ci(unit, "items")))
        return true;
    while (dash < range_len && is_digit((unsigned char)range[dash]))
        dash++;
    if (dash == 0 || dash >= range_len || range[dash] != '-')
        return true;
    for (size_t i = dash + 1; i < range_len; i++) {
        if (!is_digit((unsigned char)range[i]))
            return true;
    }
    if (!parse_i64_digits(range, dash, &out->first) ||
        (dash + 1 < range_len &&
         !parse_i64_digits(range + dash + 1, range_len - dash - 1, &out->last))) {
        set_error(err, 416, "PGRST103", "Requested range not satisfiable",
                  "The Range header bounds are too large.");
        return false;
    }
    out->has_last = dash + 1 < range_len;
    if (out->has_last && out->first > out->last) {
        set_error(err, 416, "PGRST103", "Requested range not satisfiable",
                  "The lower boundary must be lower than or equal to the upper boundary in the "
                  "Range header.");
        return false;
    }
    out->present = true;
    return true;
}
