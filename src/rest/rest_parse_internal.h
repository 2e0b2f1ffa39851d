/*
 * What the parts of the request parser share (rest_parse.c: the grammar of select, filters,
 * logic trees and order; rest_query.c: the query string; rest_prefer.c: the Prefer and Range
 * headers): bounded text building, PostgREST-shaped
 * errors, arena vectors and ASCII character classes. Internal to rest/.
 */
#ifndef CD_REST_PARSE_INTERNAL_H
#define CD_REST_PARSE_INTERNAL_H

#include <stdint.h>

#include "core/arena.h"
#include "rest/rest_parse.h"

/* A bounded, always NUL-terminated text buffer. What does not fit is dropped, and nothing is
 * added after the first cut, which never splits a UTF-8 sequence: the text stays valid UTF-8
 * as long as every piece added is. */
struct rest__text {
    char *buf;
    size_t cap; /* > 0 */
    size_t len;
    bool full;
};

/* Appends n bytes of s (or what fits, see struct rest__text). */
void rest__text_add(struct rest__text *t, const char *s, size_t n);
/* Appends the NUL-terminated s. */
void rest__text_adds(struct rest__text *t, const char *s);

/* Fills err (message and details are copied and cut to fit; details may be NULL). */
void rest__set_error(struct rest_error *err, int status, const char *code, const char *message,
                     const char *details);

/* A growable array living in the arena (old storage is abandoned when it grows). */
struct rest__vec {
    void *data;
    size_t len;
    size_t cap;
};

/* Appends one elem-byte item, growing in the arena; false when the arena is full. */
CD_MUSTCHECK bool rest__vec_push(cd_arena_t *arena, struct rest__vec *v, size_t elem,
                                 const void *item);

/* Parses 1..19 ASCII digits exactly filling [s, s+n) into a non-negative int64. */
CD_MUSTCHECK bool rest__parse_i64_digits(const char *s, size_t n, int64_t *out);

/* True when s starts with word, ignoring ASCII case (word is lower case). */
bool rest__starts_with_ci(const char *s, const char *word);

static inline bool rest__is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline bool rest__is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static inline char rest__ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* ------------------------------------------------------------------------------------------
 * The parser (rest_parse.c): state, failures, and the grammar entry points the query-string
 * reader (rest_query.c) calls for each parameter.
 */

#define REST__MAX_EXPECT         8u
#define REST__FATAL_DETAIL_BYTES 200u

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
    const char *expect[REST__MAX_EXPECT];
    size_t n_expect;
    /* hard failure */
    bool fatal;
    size_t fatal_pos;
    char fatal_detail[REST__FATAL_DETAIL_BYTES];
    unsigned depth;
};

/* Starts parsing s[0..len) (NUL-terminated, no NUL inside) with the query's counters. */
void rest__parser_init(struct parser *p, struct query_ctx *q, const char *s, size_t len);
/* The byte at the position, '\0' at the end. */
char rest__cur(const struct parser *p);
bool rest__at_eof(const struct parser *p);
/* Skips blanks (spaces and tabs). */
void rest__skip_ws(struct parser *p);
/* Records that `what` was expected at the current position; always returns false. */
bool rest__fail_expect(struct parser *p, const char *what);
/* Stops the whole parse with a message; always returns false. */
bool rest__fail_fatal(struct parser *p, const char *fmt, ...) CD_PRINTF(2, 3);
/* n bytes from the query's arena; a fatal failure when it is full. */
void *rest__p_alloc(struct parser *p, size_t n);
/* rest__vec_push on the query's arena; a fatal failure when it is full. */
bool rest__p_push(struct parser *p, struct rest__vec *v, size_t elem, const void *item);
/* Counts one more filter against REST_MAX_FILTERS; a fatal failure past it. */
bool rest__count_filter(struct parser *p);
/* Fills err from a failed parser. `what` names the parameter ("filter", "select parameter"),
 * input is the text shown in the message (the parser may have parsed a longer string). */
void rest__parser_error(struct rest_error *err, const struct parser *p, const char *what,
                        const char *input, size_t input_len);
/* PostgREST's pFieldName: a quoted name or dash-separated identifier runs. */
bool rest__parse_name(struct parser *p, char **out);
/* item (',' item)*, possibly empty (`select=`, `rel()`). */
bool rest__parse_select_forest(struct parser *p, struct rest__vec *items);
/* [not.]op[(modifier)].value of one filter; in_logic inside and()/or(). */
bool rest__parse_op_expr(struct parser *p, struct rest_op_expr *x, bool in_logic);
/* One node of a logic tree: a filter `field.op.value`, or `[not.]and(...)` / `[not.]or(...)`. */
bool rest__parse_logic_tree(struct parser *p, struct rest_logic_tree *t);
/* order terms: field[.asc|.desc][.nullsfirst|.nullslast], comma-separated. */
bool rest__parse_order_value(struct parser *p, struct rest__vec *terms);
/* name ('.' name)*, the whole input; with want_json a json path may end it. */
bool rest__parse_key_path(struct parser *p, struct rest__vec *segs, struct rest_field *f,
                          bool want_json);

#endif
