/*
 * The PostgREST request grammar (select, filters, or/and trees, order, limit/offset, columns,
 * on_conflict) parsed into the syntax tree of rest_parse.h. Prefer and Range, which are
 * headers with grammars of their own, are in rest_prefer.c.
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
#include "rest/rest_parse_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/text.h"

/* ==========================================================================================
 * Small helpers: bounded text building, errors, character classes, UTF-8
 */

void rest__text_add(struct rest__text *t, const char *s, size_t n)
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

void rest__text_adds(struct rest__text *t, const char *s)
{
    rest__text_add(t, s, strlen(s));
}

void rest__set_error(struct rest_error *err, int status, const char *code, const char *message,
                     const char *details)
{
    err->http_status = status;
    snprintf(err->code, sizeof err->code, "%s", code);
    snprintf(err->message, sizeof err->message, "%s", message);
    snprintf(err->details, sizeof err->details, "%s", details != NULL ? details : "");
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

/* PostgREST's pIdentifierChar: letter, digit, '_', ' ', '$'. Every non-ASCII byte counts as
 * a letter (Parsec accepts Unicode letters; the schema cache rejects unknown names anyway). */
static bool is_ident_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || rest__is_digit(c) || c == '_' ||
           c == ' ' || c == '$' || c >= 0x80;
}

/* PostgREST's pJsonKeyIdentifier: anything but ( - : . , > ) */
static bool is_json_key_char(unsigned char c)
{
    return c != '\0' && c != '(' && c != '-' && c != ':' && c != '.' && c != ',' && c != '>' &&
           c != ')';
}

/* True when s starts with word, ignoring ASCII case (word is lower case). */
bool rest__starts_with_ci(const char *s, const char *word)
{
    for (; *word != '\0'; s++, word++) {
        if (rest__ascii_lower(*s) != *word)
            return false;
    }
    return true;
}

/* Parses 1..19 ASCII digits exactly filling [s, s+n) into a non-negative int64. */
bool rest__parse_i64_digits(const char *s, size_t n, int64_t *out)
{
    int64_t v = 0;

    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!rest__is_digit((unsigned char)s[i]))
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

#define SHOWN_INPUT_MAX 120u

void rest__parser_init(struct parser *p, struct query_ctx *q, const char *s, size_t len)
{
    memset(p, 0, sizeof(*p));
    p->q = q;
    p->s = s;
    p->len = len;
}

char rest__cur(const struct parser *p)
{
    return p->pos < p->len ? p->s[p->pos] : '\0';
}

static char ahead(const struct parser *p, size_t off)
{
    return p->pos + off < p->len ? p->s[p->pos + off] : '\0';
}

bool rest__at_eof(const struct parser *p)
{
    return p->pos >= p->len;
}

void rest__skip_ws(struct parser *p)
{
    while (p->pos < p->len && is_ws((unsigned char)p->s[p->pos]))
        p->pos++;
}

/* Records that `what` was expected at the current position; always returns false. */
bool rest__fail_expect(struct parser *p, const char *what)
{
    if (p->fatal)
        return false;
    if (!p->has_fail || p->pos > p->fail_pos) {
        p->has_fail = true;
        p->fail_pos = p->pos;
        p->n_expect = 0;
    }
    if (p->pos == p->fail_pos && p->n_expect < REST__MAX_EXPECT) {
        for (size_t i = 0; i < p->n_expect; i++) {
            if (strcmp(p->expect[i], what) == 0)
                return false;
        }
        p->expect[p->n_expect++] = what;
    }
    return false;
}

/* Ends a parenthesised, comma-separated list: blanks, then ')' and the blanks after it. When
 * the ')' is missing, the list could have gone on (",") or ended (")"). */
static bool close_list(struct parser *p)
{
    rest__skip_ws(p);
    if (rest__cur(p) != ')') {
        rest__fail_expect(p, "\",\"");
        return rest__fail_expect(p, "\")\"");
    }
    p->pos++;
    rest__skip_ws(p);
    return true;
}

/* Stops the whole parse with a message; always returns false. */
bool rest__fail_fatal(struct parser *p, const char *fmt, ...)
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

void *rest__p_alloc(struct parser *p, size_t n)
{
    void *mem = cd_arena_alloc(p->q->arena, n);

    if (mem == NULL)
        rest__fail_fatal(p, "the request needs more than %zu bytes of parser memory",
                         p->q->arena->max);
    return mem;
}

static char *p_strndup(struct parser *p, const char *s, size_t n)
{
    char *d = rest__p_alloc(p, n + 1);

    if (d == NULL)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

bool rest__vec_push(cd_arena_t *arena, struct rest__vec *v, size_t elem, const void *item)
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

bool rest__p_push(struct parser *p, struct rest__vec *v, size_t elem, const void *item)
{
    if (!rest__vec_push(p->q->arena, v, elem, item))
        return rest__fail_fatal(p, "the request needs more than %zu bytes of parser memory",
                                p->q->arena->max);
    return true;
}

bool rest__count_filter(struct parser *p)
{
    if (++p->q->n_filters > REST_MAX_FILTERS)
        return rest__fail_fatal(p, "more than %u filters", REST_MAX_FILTERS);
    return true;
}

/* ==========================================================================================
 * Error reports in PostgREST's shape:
 *   message: "failed to parse filter (eq)" (line 1, column 3)
 *   details: unexpected "x" expecting "not" or operator (eq, gt, ...)
 */

/* Appends s the way Haskell's `show` prints a string (quotes and backslashes escaped),
 * keeping non-ASCII as UTF-8 and cutting it after SHOWN_INPUT_MAX bytes. */
static void text_add_shown(struct rest__text *t, const char *s, size_t n, bool quote)
{
    size_t limit = n > SHOWN_INPUT_MAX ? SHOWN_INPUT_MAX : n;
    char esc[8];

    /* never cut a UTF-8 sequence in half */
    while (limit < n && limit > 0 && ((unsigned char)s[limit] & 0xc0) == 0x80)
        limit--;
    if (quote)
        rest__text_add(t, "\"", 1);
    for (size_t i = 0, len = 1; i < limit; i += len) {
        unsigned char c = (unsigned char)s[i];

        len = 1;
        if (c >= 0x80) { /* a whole UTF-8 sequence at once */
            while (i + len < limit && ((unsigned char)s[i + len] & 0xc0) == 0x80)
                len++;
            rest__text_add(t, s + i, len);
        } else if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rest__text_add(t, esc, 2);
        } else if (c == '\n') {
            rest__text_adds(t, "\\n");
        } else if (c == '\t') {
            rest__text_adds(t, "\\t");
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\%u", (unsigned)c);
            rest__text_adds(t, esc);
        } else {
            rest__text_add(t, s + i, 1);
        }
    }
    if (limit < n)
        rest__text_adds(t, "...");
    if (quote)
        rest__text_add(t, "\"", 1);
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
void rest__parser_error(struct rest_error *err, const struct parser *p, const char *what,
                        const char *input, size_t input_len)
{
    char msg[REST_ERROR_MESSAGE_MAX];
    char det[REST_ERROR_DETAILS_MAX];
    char pos_text[64];
    struct rest__text m = {msg, sizeof msg, 0, false};
    struct rest__text d = {det, sizeof det, 0, false};
    size_t pos = p->fatal ? p->fatal_pos : (p->has_fail ? p->fail_pos : p->pos);
    unsigned long line, col;

    msg[0] = det[0] = '\0';
    if (pos > p->len)
        pos = p->len;
    line_column(p->s, pos, &line, &col);
    rest__text_adds(&m, "\"failed to parse ");
    rest__text_adds(&m, what);
    rest__text_adds(&m, " (");
    text_add_shown(&m, input, input_len, false);
    snprintf(pos_text, sizeof pos_text, ")\" (line %lu, column %lu)", line, col);
    rest__text_adds(&m, pos_text);

    if (p->fatal) {
        rest__text_adds(&d, p->fatal_detail);
    } else {
        rest__text_adds(&d, "unexpected ");
        if (pos >= p->len) {
            rest__text_adds(&d, "end of input");
        } else {
            size_t n = 1;

            while (pos + n < p->len && ((unsigned char)p->s[pos + n] & 0xc0) == 0x80)
                n++;
            text_add_shown(&d, p->s + pos, n, true);
        }
        for (size_t i = 0; i < p->n_expect; i++) {
            rest__text_adds(&d, i == 0 ? " expecting " : (i + 1 == p->n_expect ? " or " : ", "));
            rest__text_adds(&d, p->expect[i]);
        }
    }
    rest__set_error(err, 400, "PGRST100", msg, det);
}

/* ==========================================================================================
 * Names and fields
 */

/* A quoted name or value: "..." with backslash escaping any character. */
static bool parse_quoted(struct parser *p, char **out)
{
    size_t i = p->pos + 1, n = 0, o = 0;
    char *d;

    if (rest__cur(p) != '"')
        return rest__fail_expect(p, "\"\\\"\"");
    while (i < p->len && p->s[i] != '"') {
        i += (p->s[i] == '\\' && i + 1 < p->len) ? 2 : 1; /* a trailing '\\' is unterminated */
        n++;
    }
    if (i >= p->len) {
        p->pos = p->len;
        return rest__fail_expect(p, "\"\\\"\"");
    }
    d = rest__p_alloc(p, n + 1);
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
    while (*b < *e && rest__is_space((unsigned char)p->s[*b]))
        (*b)++;
    while (*e > *b && rest__is_space((unsigned char)p->s[*e - 1]))
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
            return rest__fail_expect(p, label);
        total += e - b;
        if (rest__cur(p) == '-' && ahead(p, 1) != '>') {
            p->pos++;
            total++;
            continue;
        }
        break;
    }
    d = rest__p_alloc(p, total + 1);
    if (d == NULL)
        return false;
    p->pos = start;
    for (;;) {
        if (!scan_piece(p, cls, &b, &e))
            return false; /* cannot happen: same input as the first pass */
        memcpy(d + o, p->s + b, e - b);
        o += e - b;
        if (rest__cur(p) == '-' && ahead(p, 1) != '>') {
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
            return rest__fail_fatal(p, "empty identifier");
        return rest__fail_fatal(p, "identifier longer than %u bytes", REST_MAX_NAME_BYTES);
    }
    return true;
}

/* PostgREST's pFieldName: a quoted name or dash-separated identifier runs. */
bool rest__parse_name(struct parser *p, char **out)
{
    size_t at = p->pos;

    if (rest__cur(p) == '"') {
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
        rest__fail_expect(p, "letter");
        return rest__fail_expect(p, "digit");
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
    while (i < p->len && rest__is_digit((unsigned char)p->s[i]))
        i++;
    if (i > digits && json_index_end(p, i)) {
        st->is_index = true;
        st->key = p_strndup(p, p->s + p->pos, i - p->pos);
        p->pos = i;
        return st->key != NULL;
    }
    if (rest__cur(p) == '"')
        return parse_quoted(p, &st->key);
    return scan_dashed(p, is_json_key_char, "any non reserved character different from: .,>()",
                       &st->key);
}

/* (-> | ->>) operand, repeated. */
static bool parse_json_path(struct parser *p, struct rest_field *f)
{
    struct rest__vec steps = {0};

    while (rest__cur(p) == '-' && ahead(p, 1) == '>') {
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
            return rest__fail_fatal(p, "json path longer than %u steps", REST_MAX_JSON_STEPS);
        if (!rest__p_push(p, &steps, sizeof st, &st))
            return false;
    }
    f->json = steps.data;
    f->n_json = steps.len;
    return true;
}

/* PostgREST's pField: name and json path, with surrounding blanks. */
static bool parse_field(struct parser *p, struct rest_field *f)
{
    rest__skip_ws(p);
    if (!rest__parse_name(p, &f->name) || !parse_json_path(p, f))
        return false;
    rest__skip_ws(p);
    return true;
}

/* `name:` (but not `name::`) if present; returns false only on a fatal error. */
static bool try_alias(struct parser *p, char **alias)
{
    size_t save = p->pos;
    char *name = NULL;

    *alias = NULL;
    if (rest__parse_name(p, &name) && rest__cur(p) == ':' && ahead(p, 1) != ':') {
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
    if (!(rest__cur(p) == ':' && ahead(p, 1) == ':')) {
        rest__fail_expect(p, "\"::\"");
        return true;
    }
    p->pos += 2;
    return parse_identifier(p, cast);
}

/* ==========================================================================================
 * select=
 */

enum try_result { TRY_NO, TRY_OK, TRY_ERR };

/* Before an item ends: ")", "," or the end. */
static bool at_item_end(struct parser *p)
{
    char c = rest__cur(p);

    if (c == ')' || c == ',' || c == '\0')
        return true;
    rest__fail_expect(p, "\")\"");
    rest__fail_expect(p, "\",\"");
    return rest__fail_expect(p, "end of input");
}

/* !hint, !inner, !left: at most two; the first of each kind wins, as in PostgREST. */
static bool parse_embed_params(struct parser *p, struct rest_select_item *it)
{
    for (int i = 0; i < 2 && rest__cur(p) == '!'; i++) {
        char *hint = NULL;
        enum rest_join_type join = REST_JOIN_DEFAULT;
        size_t word;

        p->pos++;
        word = p->pos;
        if (lit(p, "inner"))
            join = REST_JOIN_INNER;
        else if (lit(p, "left"))
            join = REST_JOIN_LEFT;
        if (join != REST_JOIN_DEFAULT && (rest__cur(p) == '!' || rest__cur(p) == '(')) {
            if (it->join == REST_JOIN_DEFAULT)
                it->join = join;
            continue;
        }
        p->pos = word; /* not a join keyword after all (`!leftover`): a hint */
        if (!rest__parse_name(p, &hint))
            return false;
        if (it->hint == NULL)
            it->hint = hint;
    }
    return true;
}

static bool parse_embed_children(struct parser *p, struct rest_select_item *it)
{
    struct rest__vec kids = {0};
    bool ok;

    p->pos++; /* '(' */
    if (p->depth >= REST_MAX_DEPTH)
        return rest__fail_fatal(p, "embedding deeper than %u levels", REST_MAX_DEPTH);
    p->depth++;
    ok = rest__parse_select_forest(p, &kids);
    p->depth--;
    if (!ok || !close_list(p))
        return false;
    it->children = kids.data;
    it->n_children = kids.len;
    return true;
}

/* [alias:]rel[!..](children) or ...rel[!..](children). Once the '(' is reached the item is
 * an embed and a failure inside is final (Parsec commits there too). */
static enum try_result try_embed(struct parser *p, struct rest_select_item *it, bool spread)
{
    rest__skip_ws(p);
    if (spread) {
        if (!lit(p, "...")) {
            rest__fail_expect(p, "\"...\"");
            return TRY_NO;
        }
    } else if (!try_alias(p, &it->alias)) {
        return TRY_ERR;
    }
    if (!rest__parse_name(p, &it->relation))
        return p->fatal ? TRY_ERR : TRY_NO;
    if (!spread && strcmp(it->relation, "count") == 0)
        return TRY_NO; /* count() is an aggregate, never an embed */
    if (!parse_embed_params(p, it))
        return p->fatal ? TRY_ERR : TRY_NO;
    if (rest__cur(p) != '(') {
        rest__fail_expect(p, "\"(\"");
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
    } aggs[] = {
#define AGG_ROW(e, name) {name, e},
        REST_AGGREGATES(AGG_ROW)
#undef AGG_ROW
    };
    size_t save = p->pos;

    *agg = REST_AGG_NONE;
    if (rest__cur(p) != '.') {
        rest__fail_expect(p, "\".\"");
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

    rest__skip_ws(p);
    save = p->pos;
    if (rest__cur(p) == '*') {
        p->pos++;
        rest__skip_ws(p);
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
        rest__skip_ws(p);
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
    rest__skip_ws(p);
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

static bool push_select_item(struct parser *p, struct rest__vec *items,
                             const struct rest_select_item *it)
{
    if (++p->q->n_select > REST_MAX_SELECT_ITEMS)
        return rest__fail_fatal(p, "more than %u select items", REST_MAX_SELECT_ITEMS);
    return rest__p_push(p, items, sizeof(*it), it);
}

/* item (',' item)*, possibly empty (`select=`, `rel()`). */
bool rest__parse_select_forest(struct parser *p, struct rest__vec *items)
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
        rest__skip_ws(p);
        if (rest__cur(p) != ',') {
            rest__fail_expect(p, "\",\"");
            p->pos = save;
            return true;
        }
        p->pos++;
        rest__skip_ws(p);
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
    if (rest__cur(p) != '.')
        return rest__fail_expect(p, "delimiter (.)");
    p->pos++;
    return true;
}

/* A value inside or=(...): "quoted" (then ',' or ')'), {pg,array}, or text up to , or ). */
static bool parse_logic_value(struct parser *p, char **out)
{
    size_t b = p->pos, i;

    if (rest__cur(p) == '"') {
        if (parse_quoted(p, out) && (rest__cur(p) == ',' || rest__cur(p) == ')' || rest__at_eof(p)))
            return true;
        if (p->fatal)
            return false;
        p->pos = b;
    }
    if (rest__cur(p) == '{') {
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
    struct rest__vec items = {0};
    bool first_quoted = false;

    rest__skip_ws(p);
    if (rest__cur(p) != '(')
        return rest__fail_expect(p, "\"(\"");
    p->pos++;
    rest__skip_ws(p);
    for (;;) {
        char *el = NULL;
        bool quoted = false;
        size_t b = p->pos;

        if (rest__cur(p) == '"') {
            if (parse_quoted(p, &el) && (rest__cur(p) == ',' || rest__cur(p) == ')'))
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
        if (!rest__p_push(p, &items, sizeof el, &el))
            return false;
        if (rest__cur(p) != ',')
            break;
        p->pos++;
    }
    if (!close_list(p))
        return false;
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
    } words[] = {
#define IS_ROW(e, word, sql) {word, e},
        REST_IS_VALUES(IS_ROW)
#undef IS_ROW
    };

    for (size_t i = 0; i < CD_ARRAY_LEN(words); i++) {
        size_t n = strlen(words[i].word);

        if (p->len - p->pos >= n && rest__starts_with_ci(p->s + p->pos, words[i].word)) {
            p->pos += n;
            *v = words[i].v;
            return true;
        }
    }
    return rest__fail_expect(p, "isVal: (null, not_null, true, false, unknown)");
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

bool rest__parse_op_expr(struct parser *p, struct rest_op_expr *x, bool in_logic)
{
    const struct op_def *d;
    size_t w;

    memset(x, 0, sizeof(*x));
    if (lit(p, "not."))
        x->negated = true;
    else
        rest__fail_expect(p, "\"not\"");
    for (w = p->pos; w < p->len && p->s[w] >= 'a' && p->s[w] <= 'z'; w++)
        ;
    d = find_op(p->s + p->pos, w - p->pos);
    if (d == NULL)
        return rest__fail_expect(p, "operator (eq, gt, ...)");
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
        if (rest__cur(p) == '(') {
            size_t save = p->pos;

            p->pos++;
            if (parse_identifier(p, &x->fts_config) && rest__cur(p) == ')') {
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

bool rest__parse_logic_tree(struct parser *p, struct rest_logic_tree *t)
{
    size_t save = p->pos;
    struct rest__vec kids = {0};

    memset(t, 0, sizeof(*t));
    /* a leaf: field.op.value */
    if (parse_field(p, &t->filter.field) && expect_delimiter(p) &&
        rest__parse_op_expr(p, &t->filter.expr, true)) {
        t->is_filter = true;
        return rest__count_filter(p);
    }
    if (p->fatal)
        return false;
    memset(t, 0, sizeof(*t));
    p->pos = save;
    if (lit(p, "not."))
        t->negated = true;
    else
        rest__fail_expect(p, "negation operator (not)");
    if (lit(p, "and")) {
        t->op = REST_LOGIC_AND;
    } else if (lit(p, "or")) {
        t->op = REST_LOGIC_OR;
    } else {
        return rest__fail_expect(p, "logic operator (and, or)");
    }
    rest__skip_ws(p);
    if (rest__cur(p) != '(')
        return rest__fail_expect(p, "\"(\"");
    p->pos++;
    rest__skip_ws(p);
    if (p->depth >= REST_MAX_DEPTH)
        return rest__fail_fatal(p, "logic tree deeper than %u levels", REST_MAX_DEPTH);
    p->depth++;
    for (;;) {
        struct rest_logic_tree child;

        if (!rest__parse_logic_tree(p, &child) || !rest__p_push(p, &kids, sizeof child, &child)) {
            p->depth--;
            return false;
        }
        rest__skip_ws(p);
        if (rest__cur(p) != ',')
            break;
        p->pos++;
        rest__skip_ws(p);
    }
    p->depth--;
    if (!close_list(p))
        return false;
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
    rest__skip_ws(p);
    if (rest__cur(p) == ',' || rest__at_eof(p))
        return true;
    if (rest__cur(p) == '.' && t->nulls == REST_NULLS_DEFAULT) {
        p->pos++;
        if (t->dir == REST_ORDER_DEFAULT) {
            rest__fail_expect(p, "\"asc\"");
            rest__fail_expect(p, "\"desc\"");
        }
        rest__fail_expect(p, "\"nullsfirst\"");
        return rest__fail_expect(p, "\"nullslast\"");
    }
    if (t->nulls == REST_NULLS_DEFAULT)
        rest__fail_expect(p, "delimiter (.)");
    rest__fail_expect(p, "\",\"");
    return rest__fail_expect(p, "end of input");
}

static bool parse_order_term(struct parser *p, struct rest_order_term *t)
{
    size_t save;

    memset(t, 0, sizeof(*t));
    rest__skip_ws(p);
    save = p->pos;
    /* rel(field) orders by a column of a to-one embed */
    if (rest__parse_name(p, &t->relation) && rest__cur(p) == '(') {
        p->pos++;
        if (parse_field(p, &t->field) && rest__cur(p) == ')') {
            p->pos++;
            if (parse_order_suffix(p, t))
                return true;
        } else {
            rest__fail_expect(p, "\")\"");
        }
    }
    if (p->fatal)
        return false;
    memset(t, 0, sizeof(*t));
    p->pos = save;
    return parse_field(p, &t->field) && parse_order_suffix(p, t);
}

bool rest__parse_order_value(struct parser *p, struct rest__vec *terms)
{
    for (;;) {
        struct rest_order_term t;

        if (!parse_order_term(p, &t))
            return false;
        if (++p->q->n_order > REST_MAX_ORDER_TERMS)
            return rest__fail_fatal(p, "more than %u order terms", REST_MAX_ORDER_TERMS);
        if (!rest__p_push(p, terms, sizeof t, &t))
            return false;
        if (rest__at_eof(p))
            return true;
        p->pos++; /* ',' (parse_order_suffix checked) */
    }
}

/* ==========================================================================================
 * Parameter keys: embed paths
 */

/* name ('.' name)*, the whole input; with want_json a json path may end it. */
bool rest__parse_key_path(struct parser *p, struct rest__vec *segs, struct rest_field *f,
                          bool want_json)
{
    char *name = NULL;

    for (;;) {
        if (!rest__parse_name(p, &name))
            return false;
        if (segs->len >= REST_MAX_DEPTH + 1)
            return rest__fail_fatal(p, "embed path deeper than %u levels", REST_MAX_DEPTH);
        if (!rest__p_push(p, segs, sizeof name, &name))
            return false;
        if (rest__cur(p) != '.')
            break;
        p->pos++;
    }
    segs->len--; /* the last name is the field, not a path segment */
    f->name = name;
    if (want_json && !parse_json_path(p, f))
        return false;
    if (!rest__at_eof(p)) {
        rest__fail_expect(p, "delimiter (.)");
        if (want_json)
            rest__fail_expect(p, "\"->\"");
        return rest__fail_expect(p, "end of input");
    }
    return true;
}
