/*
 * The format-independent half of the import file readers: opening (format
 * detection by magic bytes), the bounded row store every format fills, the
 * header, has_header = false, and the counters. The formats themselves are
 * in parse_csv.c, parse_xlsx.c and parse_xls.c.
 */
#include "importer/parse_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void imp_parse_opts_init(imp_parse_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->has_header = true;
}

static const struct {
    const char *name;
    imp_encoding_t enc;
} encoding_names[] = {
    {"auto", IMP_ENC_DETECT},      {"utf-8", IMP_ENC_UTF8},          {"utf8", IMP_ENC_UTF8},
    {"utf-16", IMP_ENC_DETECT},    {"utf16", IMP_ENC_DETECT},        {"utf-16le", IMP_ENC_UTF16LE},
    {"utf-16be", IMP_ENC_UTF16BE}, {"windows-1252", IMP_ENC_CP1252}, {"cp1252", IMP_ENC_CP1252},
    {"latin1", IMP_ENC_LATIN1},    {"latin-1", IMP_ENC_LATIN1},      {"iso-8859-1", IMP_ENC_LATIN1},
    {"iso8859-1", IMP_ENC_LATIN1},
};

bool imp_encoding_from_name(const char *name, imp_encoding_t *out)
{
    if (!name)
        return false;
    for (size_t i = 0; i < CD_ARRAY_LEN(encoding_names); i++) {
        if (strcasecmp(name, encoding_names[i].name) == 0) {
            *out = encoding_names[i].enc;
            return true;
        }
    }
    return false;
}

const char *imp_encoding_name(imp_encoding_t enc)
{
    switch (enc) {
    case IMP_ENC_UTF8:
        return "utf-8";
    case IMP_ENC_UTF16LE:
        return "utf-16le";
    case IMP_ENC_UTF16BE:
        return "utf-16be";
    case IMP_ENC_CP1252:
        return "windows-1252";
    case IMP_ENC_LATIN1:
        return "iso-8859-1";
    case IMP_ENC_DETECT:
        break;
    }
    return "auto";
}

const char *imp_format_name(imp_format_t fmt)
{
    switch (fmt) {
    case IMP_FORMAT_CSV:
        return "csv";
    case IMP_FORMAT_XLSX:
        return "xlsx";
    case IMP_FORMAT_XLS:
        return "xls";
    case IMP_FORMAT_DETECT:
        break;
    }
    return "auto";
}

void parse__error(imp_error_t *err, imp_errcode_t code, long long line, const char *fmt, ...)
{
    if (!err)
        return;
    err->code = code;
    err->line = line;
    int pre = 0;
    if (line > 0)
        pre = snprintf(err->message, sizeof(err->message), "line %lld: ", line);
    if (pre < 0)
        pre = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message + pre, sizeof(err->message) - (size_t)pre, fmt, ap);
    va_end(ap);
}

int parse__pull(imp_reader_t *r, const parse__pull_t *p, long long *line, imp_error_t *err)
{
    for (;;) {
        if (*p->failed)
            return -1;
        if (*p->row_done) {
            *p->row_done = false;
            int ready = p->row_ready(r, err);
            if (ready < 0)
                return -1;
            if (ready == 0)
                continue;
            *line = *p->row_line;
            return 1;
        }
        int fed = p->feed(r, err);
        if (fed <= 0)
            return fed;
    }
}

size_t parse__utf8_valid_prefix(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* ASCII runs eight bytes at a time: the common case. */
        while (i + 8 <= len) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            /* no high bit and no zero byte */
            if ((w & 0x8080808080808080ull) ||
                ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull))
                break;
            i += 8;
        }
        if (i >= len)
            break;
        unsigned char c = s[i];
        if (c == 0)
            return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (i + n > len)
            return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        /* overlong forms, surrogates, past U+10FFFF */
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n;
    }
    return len;
}

void parse__row_reset(imp_reader_t *r)
{
    r->store_len = 0;
    r->nfields = 0;
}

bool parse__field_add(imp_reader_t *r, const char *data, size_t len, long long line,
                      imp_error_t *err)
{
    if (len > r->opts.max_field_bytes) {
        parse__error(err, IMP_ERR_TOO_BIG, line, "a field is longer than the limit of %zu bytes",
                     r->opts.max_field_bytes);
        return false;
    }
    if (r->nfields >= r->opts.max_columns) {
        parse__error(err, IMP_ERR_TOO_BIG, line, "a row has more than the limit of %zu columns",
                     r->opts.max_columns);
        return false;
    }
    if (len + 1 > r->store_max - r->store_len) {
        parse__error(err, IMP_ERR_TOO_BIG, line, "a row is longer than the limit of %zu bytes",
                     r->store_max);
        return false;
    }
    if (r->store_len + len + 1 > r->store_cap) {
        size_t cap = r->store_cap ? r->store_cap : 4096;
        while (cap < r->store_len + len + 1)
            cap *= 2;
        char *p = realloc(r->store, cap);
        if (!p)
            goto nomem;
        r->store = p;
        r->store_cap = cap;
    }
    if (r->nfields == r->fields_cap) {
        size_t cap = r->fields_cap ? r->fields_cap * 2 : 32;
        size_t *o = realloc(r->field_off, cap * sizeof(*o));
        if (!o)
            goto nomem;
        r->field_off = o;
        size_t *l = realloc(r->field_len, cap * sizeof(*l));
        if (!l)
            goto nomem;
        r->field_len = l;
        r->fields_cap = cap;
    }
    if (len)
        memcpy(r->store + r->store_len, data, len);
    r->store[r->store_len + len] = '\0';
    r->field_off[r->nfields] = r->store_len;
    r->field_len[r->nfields] = len;
    r->nfields++;
    r->store_len += len + 1;
    return true;
nomem:
    parse__error(err, IMP_ERR_NOMEM, line, "out of memory");
    return false;
}

bool parse__field_pad(imp_reader_t *r, size_t n, long long line, imp_error_t *err)
{
    while (r->nfields < n) {
        if (!parse__field_add(r, "", 0, line, err))
            return false;
    }
    return true;
}

/* Points r->cells at the fields of the row just built. */
static bool build_cells(imp_reader_t *r)
{
    if (r->nfields > r->cells_cap) {
        size_t cap = r->cells_cap ? r->cells_cap : 32;
        while (cap < r->nfields)
            cap *= 2;
        imp_cell_t *c = realloc(r->cells, cap * sizeof(*c));
        if (!c)
            return false;
        r->cells = c;
        r->cells_cap = cap;
    }
    for (size_t i = 0; i < r->nfields; i++) {
        r->cells[i].data = r->store + r->field_off[i];
        r->cells[i].len = r->field_len[i];
    }
    return true;
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Copies the row just read into the header, trimming each name. */
static bool take_header(imp_reader_t *r)
{
    size_t total = 0;
    for (size_t i = 0; i < r->nfields; i++)
        total += r->field_len[i] + 1;
    r->header_store = malloc(total ? total : 1);
    r->header = calloc(r->nfields ? r->nfields : 1, sizeof(*r->header));
    if (!r->header_store || !r->header)
        return false;
    size_t pos = 0;
    for (size_t i = 0; i < r->nfields; i++) {
        const char *s = r->store + r->field_off[i];
        size_t len = r->field_len[i];
        while (len && is_ws((unsigned char)*s)) {
            s++;
            len--;
        }
        while (len && is_ws((unsigned char)s[len - 1]))
            len--;
        memcpy(r->header_store + pos, s, len);
        r->header_store[pos + len] = '\0';
        r->header[i].data = r->header_store + pos;
        r->header[i].len = len;
        pos += len + 1;
    }
    r->nheader = r->nfields;
    return true;
}

/* Names the columns column_1 … column_n (has_header = false). */
static bool make_header(imp_reader_t *r, size_t n)
{
    r->header_store = malloc(n * 16 + 1);
    r->header = calloc(n ? n : 1, sizeof(*r->header));
    if (!r->header_store || !r->header)
        return false;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(r->header_store + pos, 16, "column_%zu", i + 1);
        r->header[i].data = r->header_store + pos;
        r->header[i].len = (size_t)w;
        pos += (size_t)w + 1;
    }
    r->nheader = n;
    return true;
}

static imp_format_t detect_format(const unsigned char *head, size_t n)
{
    static const unsigned char zip[] = {'P', 'K', 3, 4};
    static const unsigned char ole[] = {0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1};
    if (n >= sizeof(zip) && memcmp(head, zip, sizeof(zip)) == 0)
        return IMP_FORMAT_XLSX;
    if (n >= sizeof(ole) && memcmp(head, ole, sizeof(ole)) == 0)
        return IMP_FORMAT_XLS;
    return IMP_FORMAT_CSV;
}

static imp_reader_t *reader_new(imp_format_t fmt, const imp_parse_opts_t *o, imp_error_t *err)
{
    imp_reader_t *r = calloc(1, sizeof(*r));
    if (!r)
        goto nomem;
    if (o)
        r->opts = *o;
    else
        imp_parse_opts_init(&r->opts);
    r->opts.sheet = NULL;
    if (o && o->sheet) {
        r->opts.sheet = strdup(o->sheet);
        if (!r->opts.sheet)
            goto nomem;
    }
    if (!r->opts.max_field_bytes)
        r->opts.max_field_bytes = IMP_DEFAULT_MAX_FIELD_BYTES;
    if (!r->opts.max_columns)
        r->opts.max_columns = IMP_DEFAULT_MAX_COLUMNS;
    if (!r->opts.max_part_bytes)
        r->opts.max_part_bytes = IMP_DEFAULT_MAX_XLSX_PART_BYTES;
    /* A row may hold several large fields, but not unboundedly many. */
    r->store_max =
        r->opts.max_field_bytes > SIZE_MAX / 16 ? SIZE_MAX : r->opts.max_field_bytes * 16;
    r->format = fmt;
    r->stats.format = fmt;
    if (r->opts.delimiter && !strchr(",;\t|", r->opts.delimiter)) {
        parse__error(err, IMP_ERR_OPTION, 0,
                     "the delimiter must be one of comma, semicolon, tab or '|'");
        imp_reader_close(r);
        return NULL;
    }
    return r;
nomem:
    imp_reader_close(r);
    parse__error(err, IMP_ERR_NOMEM, 0, "out of memory");
    return NULL;
}

/* After the format opened: reads the header row (or the first row, to name
 * the columns). */
static bool reader_start(imp_reader_t *r, imp_error_t *err)
{
    long long line = 0;
    parse__row_reset(r);
    int rc = r->ops->next(r, &line, err);
    if (rc < 0)
        return false;
    if (rc == 0)
        return true; /* empty: no header, no rows */
    if (r->opts.has_header) {
        if (!take_header(r))
            goto nomem;
    } else {
        if (!make_header(r, r->nfields))
            goto nomem;
        r->pending = true;
        r->pending_line = line;
    }
    return true;
nomem:
    parse__error(err, IMP_ERR_NOMEM, 0, "out of memory");
    return false;
}

static imp_reader_t *open_common(const char *path, const void *data, size_t len, imp_format_t fmt,
                                 const imp_parse_opts_t *o, imp_error_t *err)
{
    FILE *f = NULL;
    uint64_t size = len;
    imp_reader_t *r = NULL;
    if (path) {
        f = fopen(path, "rb");
        if (!f) {
            parse__error(err, IMP_ERR_IO, 0, "cannot open the file: %s", strerror(errno));
            return NULL;
        }
        struct stat st;
        if (fstat(fileno(f), &st) == 0)
            size = (uint64_t)st.st_size;
    } else {
        /* fmemopen cannot open an empty buffer */
        f = len ? fmemopen((void *)data, len, "rb") : fopen("/dev/null", "rb");
        if (!f) {
            parse__error(err, IMP_ERR_IO, 0, "cannot read the data: %s", strerror(errno));
            return NULL;
        }
    }
    if (fmt == IMP_FORMAT_DETECT) {
        unsigned char head[8];
        size_t n = fread(head, 1, sizeof(head), f);
        fmt = detect_format(head, n);
        rewind(f);
    }
    r = reader_new(fmt, o, err);
    if (!r)
        goto fail;
    r->stats.bytes_total = size;
    bool ok;
    switch (fmt) {
    case IMP_FORMAT_XLSX:
        fclose(f);
        f = NULL;
        ok = parse__xlsx_open(r, path, data, len, err);
        break;
    case IMP_FORMAT_XLS:
        fclose(f);
        f = NULL;
        if (!path) {
            parse__error(err, IMP_ERR_FORMAT, 0, "legacy .xls files are read from disk only");
            ok = false;
        } else {
            ok = parse__xls_open(r, path, err);
        }
        break;
    default:
        ok = parse__csv_open(r, f, size, err); /* takes f, even on failure */
        f = NULL;
        break;
    }
    if (!ok || !reader_start(r, err))
        goto fail;
    return r;
fail:
    if (f)
        fclose(f);
    imp_reader_close(r);
    return NULL;
}

imp_reader_t *imp_reader_open(const char *path, imp_format_t fmt, const imp_parse_opts_t *o,
                              imp_error_t *err)
{
    return open_common(path, NULL, 0, fmt, o, err);
}

imp_reader_t *imp_reader_open_mem(const void *data, size_t len, imp_format_t fmt,
                                  const imp_parse_opts_t *o, imp_error_t *err)
{
    return open_common(NULL, data, len, fmt, o, err);
}

imp_reader_t *imp_reader_open_stream(FILE *f, const imp_parse_opts_t *o, imp_error_t *err)
{
    imp_reader_t *r = reader_new(IMP_FORMAT_CSV, o, err);
    if (!r) {
        fclose(f);
        return NULL;
    }
    if (!parse__csv_open(r, f, 0, err) || !reader_start(r, err)) { /* takes f */
        imp_reader_close(r);
        return NULL;
    }
    return r;
}

int imp_reader_next(imp_reader_t *r, imp_row_t *row, imp_error_t *err)
{
    long long line = 0;
    if (r->pending) {
        r->pending = false;
        line = r->pending_line;
    } else {
        if (!r->ops)
            return 0;
        parse__row_reset(r);
        int rc = r->ops->next(r, &line, err);
        if (rc <= 0)
            return rc;
    }
    if (!build_cells(r)) {
        parse__error(err, IMP_ERR_NOMEM, line, "out of memory");
        return -1;
    }
    row->cells = r->cells;
    row->ncells = r->nfields;
    row->line = line;
    row->ragged = r->nfields != r->nheader;
    r->stats.rows++;
    if (row->ragged)
        r->stats.ragged_rows++;
    return 1;
}

const imp_cell_t *imp_reader_header(const imp_reader_t *r, size_t *n)
{
    *n = r->nheader;
    return r->header;
}

void imp_reader_stats(const imp_reader_t *r, imp_reader_stats_t *out)
{
    *out = r->stats;
}

void imp_reader_close(imp_reader_t *r)
{
    if (!r)
        return;
    if (r->ops && r->ops->close && r->impl)
        r->ops->close(r->impl);
    free((char *)r->opts.sheet);
    free(r->store);
    free(r->field_off);
    free(r->field_len);
    free(r->cells);
    free(r->header);
    free(r->header_store);
    free(r);
}
