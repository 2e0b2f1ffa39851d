/*
 * What clean.c (plans: compile, apply, filters, COPY), clean_rules.c (the
 * cleaning rules) and clean_types.c (type conversion, inference, names)
 * share. Not for use outside src/importer/clean*.c.
 */
#ifndef CD_IMPORTER_CLEAN_INTERNAL_H
#define CD_IMPORTER_CLEAN_INTERNAL_H

#include "importer/clean.h"

/* Largest value a rule may produce (a replace that multiplies a field, say):
 * past it the row fails rather than memory growing without bound. */
#define CLEAN__MAX_VALUE_BYTES (16u << 20)

/* A per-row scratch arena: blocks kept between rows, so that after the first
 * rows cleaning allocates nothing. Pointers into it stay valid until reset. */
typedef struct clean__block {
    struct clean__block *next;
    size_t cap, used;
    char data[];
} clean__block_t;

typedef struct clean__arena {
    clean__block_t *first, *cur;
} clean__arena_t;

/* Room for n bytes (+1 for a NUL) at the top of the arena; NULL when out of
 * memory. Nothing is taken until clean__arena_commit. */
char *clean__arena_reserve(clean__arena_t *a, size_t n);
/* Takes the first used bytes (+ the NUL the caller wrote) of the last reserve. */
void clean__arena_commit(clean__arena_t *a, size_t used);
void clean__arena_reset(clean__arena_t *a);
void clean__arena_free(clean__arena_t *a);

typedef enum clean__rule_kind {
    RULE_TRIM,
    RULE_LOWERCASE,
    RULE_UPPERCASE,
    RULE_TITLE_CASE,
    RULE_COLLAPSE_WHITESPACE,
    RULE_REPLACE,
    RULE_DEFAULT,
    RULE_VALIDATE_EMAIL,
    RULE_NORMALIZE_PHONE,
    RULE_PARSE_DATE,
    RULE_PARSE_NUMBER,
    RULE_MAX_LENGTH,
} clean__rule_kind_t;

typedef enum clean__on_invalid {
    ON_INVALID_SKIP,
    ON_INVALID_NULL,
    ON_INVALID_KEEP,
    ON_INVALID_FAIL,
    ON_INVALID_TRUNCATE, /* max_length only (its default) */
} clean__on_invalid_t;

/* parse_date's format, compiled: a sequence of fields and literals. */
typedef enum clean__date_tok {
    DT_END = 0,
    DT_YEAR,
    DT_MONTH,
    DT_DAY,
    DT_HOUR,
    DT_MINUTE,
    DT_SECOND,
    DT_LITERAL,
} clean__date_tok_t;

#define CLEAN__MAX_DATE_TOKENS 32

typedef struct clean__rule {
    clean__rule_kind_t kind;
    clean__on_invalid_t on_invalid;
    char *s1; /* replace: find; default: value */
    size_t l1;
    char *s2; /* replace: replacement */
    size_t l2;
    size_t n;       /* max_length: length in characters */
    char region[3]; /* normalize_phone: default_country, "" = none */
    char decimal;   /* parse_number */
    bool with_time; /* parse_date: the format has HH */
    unsigned char dt_kind[CLEAN__MAX_DATE_TOKENS];
    char dt_lit[CLEAN__MAX_DATE_TOKENS];
} clean__rule_t;

/* The result of one rule on one value. */
typedef enum clean__rc {
    CLEAN_OK = 0,
    CLEAN_INVALID, /* a validator said no: on_invalid decides */
    CLEAN_NOMEM,
    CLEAN_TOO_BIG,
} clean__rc_t;

/* Applies rule to (*s, *len) (*s NUL-terminated), replacing them with the
 * result (in the arena, or a sub-range of the input). */
clean__rc_t clean__rule_apply(const clean__rule_t *rule, clean__arena_t *a, const char **s,
                              size_t *len);
/* A name of column_config and the enum value it stands for. */
typedef struct clean__name {
    const char *name;
    int value;
} clean__name_t;
/* Looks name (NULL allowed) up in t[0..n): true with *value set when found. */
CD_MUSTCHECK bool clean__name_lookup(const char *name, const clean__name_t *t, size_t n,
                                     int *value);
/* Fills err as an IMP_ERR_CONFIG error with a printf-style message. */
void clean__config_error(imp_error_t *err, const char *fmt, ...) CD_PRINTF(2, 3);
/* Fills err as an IMP_ERR_NOMEM error ("out of memory"). */
void clean__nomem_error(imp_error_t *err);
/* Reports a configuration error through clean__config_error and jumps to the
 * caller's fail label (err must be in scope). */
#define CLEAN_CFG_ERR(...)                                                                         \
    do {                                                                                           \
        clean__config_error(err, __VA_ARGS__);                                                     \
        goto fail;                                                                                 \
    } while (0)
/* Parses one rule object; false with err filled (column named col). The rule
 * owns its strings: clean__rule_free. */
CD_MUSTCHECK bool clean__rule_compile(const json_t *obj, const char *col, clean__rule_t *rule,
                                      imp_error_t *err);
void clean__rule_free(clean__rule_t *rule);
/* The skip reason a validator's failure counts under. */
imp_skip_reason_t clean__rule_reason(const clean__rule_t *rule);
/* "is not a valid e-mail address", … for messages. */
const char *clean__rule_problem(const clean__rule_t *rule);

/* Converts text to the canonical COPY text of type t, in the arena when it
 * must change. CLEAN_INVALID if it does not convert. Empty text is handled
 * by the caller (NULL). */
clean__rc_t clean__convert(imp_type_t t, clean__arena_t *a, const char **s, size_t *len);
/* Writes "YYYY-MM-DD" (h < 0) or "YYYY-MM-DD HH:MM:SS" and a NUL to out
 * (at least 20 bytes; year 1–9999); returns the length. Hand-written
 * because snprintf was a tenth of the row path's time. */
int clean__format_stamp(char *out, int y, int mo, int d, int h, int mi, int se);
/* True if s is a number as parse_number / NUMERIC accept it (no exponent
 * check needed by filters): sets *out. s is NUL-terminated. */
bool clean__to_double(const char *s, size_t len, double *out);
/* ASCII-case-insensitive equality and search. */
bool clean__ieq(const char *a, size_t al, const char *b, size_t bl);
const char *clean__ifind(const char *hay, size_t hl, const char *needle, size_t nl);
/* Whitespace for trim and collapse: ASCII spaces, NBSP and the Unicode
 * spaces; the byte length of the whitespace character at s (0 if none). */
size_t clean__ws_at(const char *s, size_t len);
/* Length of the whitespace character ending at s[len-1] (0 if none). */
size_t clean__ws_before(const char *s, size_t len);

#endif
