/*
 * The two request headers of PostgREST with grammars of their own: Prefer (return, count,
 * resolution, missing, handling, tx, params, max-affected; unknown ones are an error only
 * with handling=strict) and Range (`first-[last]` in items). Split from rest_parse.c, which
 * parses the query string; both fill the structures of rest_parse.h.
 */
#include <stdio.h>
#include <string.h>

#include "core/text.h"
#include "rest/rest_parse.h"
#include "rest/rest_parse_internal.h"

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
            if (rest__parse_i64_digits(s + 13 + neg, n - 13 - neg, &v)) {
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
    struct rest__vec invalid = {0};
    int slots[PREF_SLOTS] = {0};
    size_t total = 0, items = 0;
    bool seen_max = false;
    char det[REST_ERROR_DETAILS_MAX];
    struct rest__text d = {det, sizeof det, 0, false};
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
            rest__set_error(err, 400, "PGRST100", "failed to parse Prefer header",
                            "the Prefer headers are too long");
            return false;
        }
        if (memchr(v, '\0', n) != NULL || !cd_utf8_valid((const unsigned char *)v, n)) {
            rest__set_error(err, 400, "PGRST100", "failed to parse Prefer header",
                            "the Prefer header is not valid UTF-8 text");
            return false;
        }
        while (i <= n) {
            size_t j = i, b, e;

            while (j < n && v[j] != ',')
                j++;
            for (b = i; b < j && rest__is_space((unsigned char)v[b]); b++)
                ;
            for (e = j; e > b && rest__is_space((unsigned char)v[e - 1]); e--)
                ;
            i = j + 1;
            if (e == b)
                continue;
            if (++items > REST_MAX_PREFER_ITEMS) {
                rest__set_error(err, 400, "PGRST100", "failed to parse Prefer header",
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
                if (!rest__vec_push(arena, &invalid, sizeof copy, &copy))
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
        rest__text_adds(&d, "Invalid preferences: ");
        bad = out->invalid;
        for (size_t i = 0; i < out->n_invalid; i++) {
            if (i > 0)
                rest__text_adds(&d, ", ");
            rest__text_adds(&d, bad[i]);
        }
        rest__set_error(err, 400, "PGRST122", "Invalid preferences given with handling=strict",
                        det);
        return false;
    }
    return true;
nomem:
    rest__set_error(err, 400, "PGRST100", "failed to parse Prefer header",
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
    if (unit != NULL && !(unit_len == 5 && rest__starts_with_ci(unit, "items")))
        return true;
    while (dash < range_len && rest__is_digit((unsigned char)range[dash]))
        dash++;
    if (dash == 0 || dash >= range_len || range[dash] != '-')
        return true;
    for (size_t i = dash + 1; i < range_len; i++) {
        if (!rest__is_digit((unsigned char)range[i]))
            return true;
    }
    if (!rest__parse_i64_digits(range, dash, &out->first) ||
        (dash + 1 < range_len &&
         !rest__parse_i64_digits(range + dash + 1, range_len - dash - 1, &out->last))) {
        rest__set_error(err, 416, "PGRST103", "Requested range not satisfiable",
                        "The Range header bounds are too large.");
        return false;
    }
    out->has_last = dash + 1 < range_len;
    if (out->has_last && out->first > out->last) {
        rest__set_error(
            err, 416, "PGRST103", "Requested range not satisfiable",
            "The lower boundary must be lower than or equal to the upper boundary in the "
            "Range header.");
        return false;
    }
    out->present = true;
    return true;
}
