/*
 * Template placeholders (template.h): one small scanner shared by the check
 * and the renderer, so what is accepted at save time is exactly what renders
 * at send time. Hand-written: the grammar is four tokens, and a template
 * library (mustache, jinja) would accept sections, partials and other
 * constructs the save-time check must refuse.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "sending/template.h"

#define TPL_NAME_MAX 96

/* One parsed placeholder. */
typedef struct placeholder {
    size_t end;                  /* offset just past "}}" */
    char name[TPL_NAME_MAX + 1]; /* the variable */
    bool has_default;
    char dflt[TPL_MAX_DEFAULT + 1];
    size_t dflt_len;
} placeholder_t;

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static const char *const plain_names[] = {"first_name", "last_name", "email", "phone"};

/* The contact field a name reads ("first_name" for "contact.first_name"), the
 * attribute key for "contact.attributes.KEY" (*attr true), or NULL. */
static const char *resolve_name(const char *name, bool *attr)
{
    *attr = false;
    const char *n = name;
    if (strncmp(n, "contact.", 8) == 0) {
        n += 8;
        if (strncmp(n, "attributes.", 11) == 0) {
            const char *key = n + 11;
            size_t len = strlen(key);
            if (len < 1 || len > 64)
                return NULL;
            for (const char *p = key; *p; p++)
                if (*p == '.')
                    return NULL;
            *attr = true;
            return key;
        }
    }
    for (size_t i = 0; i < CD_ARRAY_LEN(plain_names); i++)
        if (strcmp(n, plain_names[i]) == 0)
            return plain_names[i];
    return NULL;
}

/* Parses the default string at src[*i] (just past the opening quote). */
static bool parse_default(const char *src, size_t n, size_t *i, placeholder_t *ph, char *err,
                          size_t errlen)
{
    size_t start = *i;
    while (*i < n && src[*i] != '"') {
        char c = src[*i];
        if (c == '\\') {
            if (*i + 1 >= n || (src[*i + 1] != '"' && src[*i + 1] != '\\')) {
                snprintf(err, errlen, "bad escape in the default at byte %zu (only \\\" and \\\\)",
                         *i);
                return false;
            }
            c = src[++*i];
        }
        if (ph->dflt_len >= TPL_MAX_DEFAULT) {
            snprintf(err, errlen, "default at byte %zu is longer than %d bytes", start,
                     TPL_MAX_DEFAULT);
            return false;
        }
        ph->dflt[ph->dflt_len++] = c;
        ++*i;
    }
    if (*i >= n) {
        snprintf(err, errlen, "unterminated default at byte %zu", start);
        return false;
    }
    ph->dflt[ph->dflt_len] = '\0';
    ++*i; /* closing quote */
    ph->has_default = true;
    return true;
}

/* Parses the placeholder starting at src[at] ("{{"). */
static bool parse_placeholder(const char *src, size_t n, size_t at, placeholder_t *ph, char *err,
                              size_t errlen)
{
    memset(ph, 0, sizeof(*ph));
    size_t i = at + 2, nl = 0;
    while (i < n && is_space(src[i]))
        i++;
    while (i < n && is_name_char(src[i])) {
        if (nl >= TPL_NAME_MAX) {
            snprintf(err, errlen, "variable name at byte %zu is too long", at);
            return false;
        }
        ph->name[nl++] = src[i++];
    }
    ph->name[nl] = '\0';
    bool attr;
    if (nl == 0 || !resolve_name(ph->name, &attr)) {
        snprintf(err, errlen, "unknown variable '%.64s' at byte %zu", ph->name, at);
        return false;
    }
    while (i < n && is_space(src[i]))
        i++;
    if (i < n && src[i] == '|') {
        i++;
        while (i < n && is_space(src[i]))
            i++;
        if (i >= n || src[i] != '"') {
            snprintf(err, errlen, "a default must be a \"quoted\" text (byte %zu)", i);
            return false;
        }
        i++;
        if (!parse_default(src, n, &i, ph, err, errlen))
            return false;
        while (i < n && is_space(src[i]))
            i++;
    }
    if (i + 1 >= n || src[i] != '}' || src[i + 1] != '}') {
        snprintf(err, errlen, "placeholder at byte %zu is not closed by }}", at);
        return false;
    }
    ph->end = i + 2;
    return true;
}

/* Walks src: literal text goes to emit_text, placeholders to emit_ph. With
 * out NULL it only checks. */
static bool walk(const char *src, size_t n, tpl_mode_t mode, const tpl_contact_t *c, cd_buf_t *out,
                 char *err, size_t errlen);

bool tpl_check(const char *src, size_t n, char *err, size_t errlen)
{
    return walk(src, n, TPL_TEXT, NULL, NULL, err, errlen);
}

bool tpl_render(const char *src, size_t n, tpl_mode_t mode, const tpl_contact_t *c, cd_buf_t *out,
                char *err, size_t errlen)
{
    return walk(src, n, mode, c, out, err, errlen);
}

bool tpl_html_escape(cd_buf_t *out, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        const char *rep = NULL;
        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            break;
        }
        if (!rep)
            continue;
        if (!cd_buf_add(out, s + run, i - run) || !cd_buf_adds(out, rep))
            return false;
        run = i + 1;
    }
    return cd_buf_add(out, s + run, n - run);
}

/* The value of a placeholder for c, as text; NULL when missing. scratch
 * holds numbers written out. */
static const char *lookup(const placeholder_t *ph, const tpl_contact_t *c, char *scratch,
                          size_t scratchlen)
{
    bool attr;
    const char *field = resolve_name(ph->name, &attr);
    if (!c || !field)
        return NULL;
    if (attr) {
        const json_t *v = c->attributes ? json_object_get(c->attributes, field) : NULL;
        if (json_is_string(v))
            return json_string_value(v);
        if (json_is_integer(v)) {
            snprintf(scratch, scratchlen, "%lld", (long long)json_integer_value(v));
            return scratch;
        }
        if (json_is_real(v)) {
            snprintf(scratch, scratchlen, "%.15g", json_real_value(v));
            return scratch;
        }
        if (json_is_boolean(v))
            return json_is_true(v) ? "true" : "false";
        return NULL;
    }
    if (strcmp(field, "first_name") == 0)
        return c->first_name;
    if (strcmp(field, "last_name") == 0)
        return c->last_name;
    if (strcmp(field, "email") == 0)
        return c->email;
    return c->phone;
}

static bool emit(cd_buf_t *out, tpl_mode_t mode, const char *s, size_t n)
{
    return mode == TPL_HTML ? tpl_html_escape(out, s, n) : cd_buf_add(out, s, n);
}

static bool walk(const char *src, size_t n, tpl_mode_t mode, const tpl_contact_t *c, cd_buf_t *out,
                 char *err, size_t errlen)
{
    if (n > TPL_MAX_BYTES) {
        snprintf(err, errlen, "template is larger than %d bytes", TPL_MAX_BYTES);
        return false;
    }
    size_t lit = 0, count = 0;
    for (size_t i = 0; i + 1 < n;) {
        if (src[i] != '{' || src[i + 1] != '{') {
            i++;
            continue;
        }
        placeholder_t ph;
        if (++count > TPL_MAX_PLACEHOLDERS) {
            snprintf(err, errlen, "more than %d placeholders", TPL_MAX_PLACEHOLDERS);
            return false;
        }
        if (!parse_placeholder(src, n, i, &ph, err, errlen))
            return false;
        if (out) {
            char scratch[64];
            const char *v = lookup(&ph, c, scratch, sizeof(scratch));
            bool ok = cd_buf_add(out, src + lit, i - lit);
            if (v && *v)
                ok = ok && emit(out, mode, v, strlen(v));
            else if (ph.has_default)
                ok = ok && emit(out, mode, ph.dflt, ph.dflt_len);
            if (!ok) {
                snprintf(err, errlen, "rendered message is too large");
                return false;
            }
        }
        i = lit = ph.end;
    }
    if (out && !cd_buf_add(out, src + lit, n - lit)) {
        snprintf(err, errlen, "rendered message is too large");
        return false;
    }
    return true;
}

/* ------------------------------------------------------- HTML to text */

bool tpl_is_html(const char *s)
{
    for (const char *p = s ? strchr(s, '<') : NULL; p; p = strchr(p + 1, '<')) {
        char c = p[1];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '/' || c == '!')
            return true;
    }
    return false;
}

/* Case-insensitive prefix test of a tag name at p (after '<' or "</"). */
static bool tag_is(const char *p, const char *name)
{
    size_t n = strlen(name);
    if (strncasecmp(p, name, n) != 0)
        return false;
    char c = p[n];
    return c == '>' || c == '/' || is_space(c) || c == '\0';
}

static const struct {
    const char *ent;
    const char *text;
} entities[] = {
    {"&amp;", "&"}, {"&lt;", "<"},   {"&gt;", ">"},   {"&quot;", "\""},
    {"&#39;", "'"}, {"&apos;", "'"}, {"&nbsp;", " "},
};

/* Appends one text character or entity at p; returns bytes consumed. */
static size_t add_text_char(cd_buf_t *out, const char *p, bool *ok)
{
    if (*p == '&') {
        for (size_t i = 0; i < CD_ARRAY_LEN(entities); i++) {
            size_t n = strlen(entities[i].ent);
            if (strncmp(p, entities[i].ent, n) == 0) {
                *ok = *ok && cd_buf_adds(out, entities[i].text);
                return n;
            }
        }
    }
    /* Runs of white space in HTML are one space. */
    if (is_space(*p)) {
        if (out->len > 0 && !is_space(out->data[out->len - 1]))
            *ok = *ok && cd_buf_adds(out, " ");
        return 1;
    }
    *ok = *ok && cd_buf_add(out, p, 1);
    return 1;
}

/* The href value of an <a ...> tag between p and end, copied to url. */
static void find_href(const char *p, const char *end, char *url, size_t urllen)
{
    url[0] = '\0';
    for (const char *h = p; h + 6 < end; h++) {
        if (strncasecmp(h, "href=", 5) != 0 || (h[5] != '"' && h[5] != '\''))
            continue;
        const char *v = h + 6, *q = memchr(v, h[5], (size_t)(end - v));
        if (q && (size_t)(q - v) < urllen) {
            memcpy(url, v, (size_t)(q - v));
            url[q - v] = '\0';
        }
        return;
    }
}

static void trim_trailing_space(cd_buf_t *out)
{
    while (out->len > 0 && (out->data[out->len - 1] == ' ' || out->data[out->len - 1] == '\t'))
        out->data[--out->len] = '\0';
}

/* Handles the tag at p ('<'); returns the offset just past it. */
static const char *text_tag(const char *p, cd_buf_t *out, char *href, size_t hreflen, bool *ok)
{
    const char *end = strchr(p, '>');
    if (!end)
        return p + strlen(p);
    const char *name = p[1] == '/' ? p + 2 : p + 1;
    bool closing = p[1] == '/';
    if (!closing && (tag_is(name, "script") || tag_is(name, "style"))) {
        const char *close = NULL;
        for (const char *q = end; (q = strstr(q, "</")) != NULL; q += 2)
            if (tag_is(q + 2, tag_is(name, "script") ? "script" : "style")) {
                close = q;
                break;
            }
        const char *after = close ? strchr(close, '>') : NULL;
        return after ? after + 1 : p + strlen(p);
    }
    static const char *const breaks[] = {"br", "p",  "div", "li", "tr", "h1",
                                         "h2", "h3", "h4",  "h5", "h6", "table"};
    for (size_t i = 0; i < CD_ARRAY_LEN(breaks); i++) {
        if (tag_is(name, breaks[i]) && (closing || strcmp(breaks[i], "br") == 0)) {
            trim_trailing_space(out);
            *ok = *ok && cd_buf_adds(out, "\n");
        }
    }
    if (!closing && tag_is(name, "a"))
        find_href(name, end, href, hreflen);
    if (closing && tag_is(name, "a") && href[0]) {
        *ok = *ok && cd_buf_adds(out, " (");
        for (const char *h = href; *h;)
            h += add_text_char(out, h, ok);
        *ok = *ok && cd_buf_adds(out, ")");
        href[0] = '\0';
    }
    return end + 1;
}

/* Collapses three or more line breaks into two, in place. */
static void collapse_blank_lines(cd_buf_t *out)
{
    size_t w = 0, nl = 0;
    for (size_t r = 0; r < out->len; r++) {
        char c = out->data[r];
        if (c == '\n' && ++nl > 2)
            continue;
        if (c != '\n')
            nl = 0;
        if (c == ' ' && w > 0 && out->data[w - 1] == '\n')
            continue;
        out->data[w++] = c;
    }
    while (w > 0 && (out->data[w - 1] == '\n' || out->data[w - 1] == ' '))
        w--;
    out->len = w;
    if (out->data)
        out->data[w] = '\0';
}

bool tpl_html_to_text(const char *html, cd_buf_t *out)
{
    cd_buf_t tmp;
    cd_buf_init(&tmp, out->max);
    bool ok = true;
    char href[2048] = "";
    const char *p = html;
    while (ok && *p) {
        if (*p == '<' && p[1] == '!' && strncmp(p, "<!--", 4) == 0) {
            const char *e = strstr(p, "-->");
            p = e ? e + 3 : p + strlen(p);
        } else if (*p == '<' && p[1] && p[1] != ' ') {
            p = text_tag(p, &tmp, href, sizeof(href), &ok);
        } else {
            p += add_text_char(&tmp, p, &ok);
        }
    }
    collapse_blank_lines(&tmp);
    ok = ok && cd_buf_add(out, tmp.data ? tmp.data : "", tmp.len);
    cd_buf_free(&tmp);
    return ok;
}
