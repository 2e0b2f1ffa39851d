/*
 * XLSX workbooks for imports: libzip opens the archive, expat reads its XML
 * parts. The workbook, its relationships, the styles and the shared strings
 * are read whole (they are small, and cells refer to them by index); the
 * sheet is streamed through expat, which is suspended at the end of each
 * row so that the caller pulls one row at a time and the sheet is never in
 * memory. Zip-bomb defences: every part's declared and actual uncompressed
 * size is capped, and so is its compression ratio.
 */
#include "importer/parse_internal.h"

#include <expat.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#define XLSX_CHUNK (64u * 1024u)
/* Parts under this size may have any compression ratio (tiny XML compresses well). */
#define XLSX_RATIO_FREE (1u << 20)
/* Shared strings are held in memory: at most this many bytes of text. */
#define XLSX_MAX_SHARED_BYTES (256u << 20)

typedef enum cell_kind {
    CK_NUMBER,
    CK_SHARED,
    CK_INLINE,
    CK_BOOL,
    CK_STRING, /* formula result "str", error "e", ISO date "d" */
} cell_kind_t;

typedef struct xlsx_state {
    imp_reader_t *r;
    zip_t *zip;
    zip_source_t *src; /* from memory; owned by zip once opened */
    imp_error_t *err;
    bool failed;

    /* workbook */
    bool date1904;
    char *sheet_rid;    /* r:id of the chosen sheet */
    char *sheet_target; /* its part, e.g. "xl/worksheets/sheet1.xml" */
    int sheet_index;    /* sheets seen while reading workbook.xml */

    /* shared strings */
    char *ss;
    size_t ss_len, ss_cap;
    size_t *ss_off;
    size_t nss, ss_n_cap;
    bool in_si, in_t, in_rph;

    /* styles: for each cellXfs entry, 0 = not a date, 1 = date, 2 = time only */
    unsigned char *xf_date;
    size_t nxf, xf_cap;
    bool in_cellxfs;
    int *fmt_ids; /* custom numFmt ids that are dates (value 1) or times (2) */
    unsigned char *fmt_kind;
    size_t nfmt, fmt_cap;

    /* the sheet */
    zip_file_t *sheet;
    XML_Parser xp;
    char *chunk;
    bool sheet_eof;
    bool suspended;
    uint64_t sheet_bytes, sheet_max;
    bool in_sheetdata, in_row, in_cell, in_v, in_is_t, in_is;
    long long row_num, row_line;
    size_t next_col;
    size_t cell_col;
    cell_kind_t cell_kind;
    long cell_style;
    char *text; /* the cell's text */
    size_t text_len, text_cap;
    bool row_done;
    size_t row_cells;
} xlsx_state_t;

static const char *local_name(const XML_Char *name)
{
    const char *c = strrchr(name, ':');
    return c ? c + 1 : name;
}

static const char *attr(const XML_Char **atts, const char *name)
{
    for (size_t i = 0; atts[i]; i += 2) {
        if (strcmp(local_name(atts[i]), name) == 0)
            return atts[i + 1];
    }
    return NULL;
}

static void fail(xlsx_state_t *st, imp_errcode_t code, long long line, const char *msg)
{
    if (st->failed)
        return;
    st->failed = true;
    parse__error(st->err, code, line, "%s", msg);
}

/* Opens a part after checking its declared size and ratio. */
static zip_file_t *open_part(xlsx_state_t *st, const char *name, uint64_t max, bool required,
                             uint64_t *size)
{
    zip_stat_t zs;
    zip_stat_init(&zs);
    if (zip_stat(st->zip, name, 0, &zs) != 0) {
        if (required)
            fail(st, IMP_ERR_FORMAT, 0, "the file is not an Excel workbook (a part is missing)");
        return NULL;
    }
    if ((zs.valid & ZIP_STAT_SIZE) && zs.size > max) {
        fail(st, IMP_ERR_TOO_BIG, 0, "the workbook is too large once uncompressed");
        return NULL;
    }
    if ((zs.valid & ZIP_STAT_SIZE) && (zs.valid & ZIP_STAT_COMP_SIZE) &&
        zs.size > XLSX_RATIO_FREE &&
        zs.size / (zs.comp_size ? zs.comp_size : 1) > IMP_MAX_XLSX_RATIO) {
        fail(st, IMP_ERR_TOO_BIG, 0,
             "the workbook is compressed suspiciously well (a zip bomb?); refused");
        return NULL;
    }
    if (size)
        *size = (zs.valid & ZIP_STAT_SIZE) ? zs.size : 0;
    zip_file_t *f = zip_fopen(st->zip, name, 0);
    if (!f)
        fail(st, IMP_ERR_FORMAT, 0, "a part of the workbook cannot be read");
    return f;
}

/* Reads a whole small part through a fresh expat parser. Returns false on
 * failure (st->failed set), true when done or when an optional part is absent. */
static bool read_part(xlsx_state_t *st, const char *name, bool required,
                      XML_StartElementHandler start, XML_EndElementHandler end,
                      XML_CharacterDataHandler chars)
{
    uint64_t max = st->r->opts.max_part_bytes;
    zip_file_t *f = open_part(st, name, max, required, NULL);
    if (!f)
        return !st->failed;
    XML_Parser xp = XML_ParserCreate("UTF-8");
    char *buf = malloc(XLSX_CHUNK);
    bool ok = xp && buf;
    if (!ok)
        fail(st, IMP_ERR_NOMEM, 0, "out of memory");
    uint64_t total = 0;
    if (ok) {
        XML_SetUserData(xp, st);
        XML_SetElementHandler(xp, start, end);
        XML_SetCharacterDataHandler(xp, chars);
    }
    while (ok && !st->failed) {
        zip_int64_t n = zip_fread(f, buf, XLSX_CHUNK);
        if (n < 0) {
            fail(st, IMP_ERR_FORMAT, 0, "the workbook is damaged (a part cannot be decompressed)");
            break;
        }
        total += (uint64_t)n;
        if (total > max) {
            fail(st, IMP_ERR_TOO_BIG, 0, "the workbook is too large once uncompressed");
            break;
        }
        if (XML_Parse(xp, buf, (int)n, n == 0) != XML_STATUS_OK) {
            fail(st, IMP_ERR_FORMAT, 0, "the workbook's XML is malformed");
            break;
        }
        if (n == 0)
            break;
    }
    free(buf);
    if (xp)
        XML_ParserFree(xp);
    zip_fclose(f);
    return !st->failed;
}

/* ------------------------------------------------------------- workbook */

static void wb_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xlsx_state_t *st = ud;
    const char *ln = local_name(name);
    if (strcmp(ln, "workbookPr") == 0) {
        const char *v = attr(atts, "date1904");
        st->date1904 = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
    } else if (strcmp(ln, "sheet") == 0 && !st->sheet_rid) {
        const char *nm = attr(atts, "name");
        const char *rid = attr(atts, "id");
        const char *want = st->r->opts.sheet;
        if (rid && ((!want && st->sheet_index == 0) || (want && nm && strcmp(nm, want) == 0))) {
            st->sheet_rid = strdup(rid);
            if (!st->sheet_rid)
                fail(st, IMP_ERR_NOMEM, 0, "out of memory");
        }
        st->sheet_index++;
    }
}

static void no_end(void *ud, const XML_Char *name)
{
    (void)ud;
    (void)name;
}

static void no_chars(void *ud, const XML_Char *s, int len)
{
    (void)ud;
    (void)s;
    (void)len;
}

static void rels_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xlsx_state_t *st = ud;
    if (strcmp(local_name(name), "Relationship") != 0 || st->sheet_target)
        return;
    const char *id = attr(atts, "Id");
    const char *target = attr(atts, "Target");
    if (!id || !target || strcmp(id, st->sheet_rid) != 0)
        return;
    /* relative to xl/, or absolute from the package root */
    size_t n = strlen(target) + 4;
    st->sheet_target = malloc(n);
    if (!st->sheet_target) {
        fail(st, IMP_ERR_NOMEM, 0, "out of memory");
        return;
    }
    if (target[0] == '/')
        snprintf(st->sheet_target, n, "%s", target + 1);
    else
        snprintf(st->sheet_target, n, "xl/%s", target);
}

/* -------------------------------------------------------------- styles */

/* Built-in number formats that are dates or times (ECMA-376 18.8.30 and
 * the East Asian ones Excel uses). */
static unsigned char builtin_date_kind(long id)
{
    if ((id >= 14 && id <= 17) || id == 22 || (id >= 27 && id <= 31) || (id >= 34 && id <= 36) ||
        (id >= 50 && id <= 58))
        return 1;
    if ((id >= 18 && id <= 21) || (id >= 32 && id <= 33) || (id >= 45 && id <= 47))
        return 2;
    return 0;
}

/* A custom format is a date if it has d, m, y, h or s outside quoted text,
 * escapes and [colour]/[condition] sections; a time if it has no d or y. */
static unsigned char format_date_kind(const char *f)
{
    bool dy = false, m = false, hs = false;
    for (const char *p = f; *p; p++) {
        char c = (char)(*p | 32);
        if (*p == '"') {
            p = strchr(p + 1, '"');
            if (!p)
                break;
        } else if (*p == '\\' || *p == '_' || *p == '*') {
            if (!*++p)
                break;
        } else if (*p == '[') {
            /* [h], [mm], [ss]: elapsed time; anything else is colour or locale */
            const char *e = strchr(p, ']');
            if (!e)
                break;
            char k = (char)(p[1] | 32);
            hs = hs || k == 'h' || k == 'm' || k == 's';
            p = e;
        } else if (c == 'd' || c == 'y') {
            dy = true;
        } else if (c == 'm') {
            m = true;
        } else if (c == 'h' || c == 's') {
            hs = true;
        }
    }
    if (dy || (m && !hs))
        return 1;
    return hs ? 2 : 0;
}

static void styles_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xlsx_state_t *st = ud;
    const char *ln = local_name(name);
    if (strcmp(ln, "numFmt") == 0) {
        const char *id = attr(atts, "numFmtId"), *code = attr(atts, "formatCode");
        if (!id || !code)
            return;
        if (st->nfmt == st->fmt_cap) {
            size_t cap = st->fmt_cap ? st->fmt_cap * 2 : 16;
            if (cap > 65536)
                return;
            int *ids = realloc(st->fmt_ids, cap * sizeof(*ids));
            if (!ids) {
                fail(st, IMP_ERR_NOMEM, 0, "out of memory");
                return;
            }
            st->fmt_ids = ids;
            unsigned char *k = realloc(st->fmt_kind, cap);
            if (!k) {
                fail(st, IMP_ERR_NOMEM, 0, "out of memory");
                return;
            }
            st->fmt_kind = k;
            st->fmt_cap = cap;
        }
        st->fmt_ids[st->nfmt] = (int)strtol(id, NULL, 10);
        st->fmt_kind[st->nfmt] = format_date_kind(code);
        st->nfmt++;
    } else if (strcmp(ln, "cellXfs") == 0) {
        st->in_cellxfs = true;
    } else if (strcmp(ln, "xf") == 0 && st->in_cellxfs) {
        const char *id = attr(atts, "numFmtId");
        long fid = id ? strtol(id, NULL, 10) : 0;
        unsigned char kind = builtin_date_kind(fid);
        for (size_t i = 0; i < st->nfmt; i++) {
            if (st->fmt_ids[i] == fid)
                kind = st->fmt_kind[i];
        }
        if (st->nxf == st->xf_cap) {
            size_t cap = st->xf_cap ? st->xf_cap * 2 : 64;
            if (cap > (1u << 20)) {
                fail(st, IMP_ERR_TOO_BIG, 0, "the workbook has too many cell styles");
                return;
            }
            unsigned char *x = realloc(st->xf_date, cap);
            if (!x) {
                fail(st, IMP_ERR_NOMEM, 0, "out of memory");
                return;
            }
            st->xf_date = x;
            st->xf_cap = cap;
        }
        st->xf_date[st->nxf++] = kind;
    }
}

static void styles_end(void *ud, const XML_Char *name)
{
    xlsx_state_t *st = ud;
    if (strcmp(local_name(name), "cellXfs") == 0)
        st->in_cellxfs = false;
}

/* ------------------------------------------------------- shared strings */

static bool ss_add_bytes(xlsx_state_t *st, const char *s, size_t n)
{
    if (n > XLSX_MAX_SHARED_BYTES - st->ss_len) {
        fail(st, IMP_ERR_TOO_BIG, 0, "the workbook's shared strings are too large");
        return false;
    }
    if (st->ss_len + n + 1 > st->ss_cap) {
        size_t cap = st->ss_cap ? st->ss_cap : 4096;
        while (cap < st->ss_len + n + 1)
            cap *= 2;
        char *p = realloc(st->ss, cap);
        if (!p) {
            fail(st, IMP_ERR_NOMEM, 0, "out of memory");
            return false;
        }
        st->ss = p;
        st->ss_cap = cap;
    }
    memcpy(st->ss + st->ss_len, s, n);
    st->ss_len += n;
    return true;
}

static void ss_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    (void)atts;
    xlsx_state_t *st = ud;
    const char *ln = local_name(name);
    if (strcmp(ln, "si") == 0) {
        st->in_si = true;
        if (st->nss == st->ss_n_cap) {
            size_t cap = st->ss_n_cap ? st->ss_n_cap * 2 : 256;
            size_t *o = realloc(st->ss_off, (cap + 1) * sizeof(*o));
            if (!o) {
                fail(st, IMP_ERR_NOMEM, 0, "out of memory");
                return;
            }
            st->ss_off = o;
            st->ss_n_cap = cap;
        }
        st->ss_off[st->nss] = st->ss_len;
    } else if (strcmp(ln, "t") == 0 && st->in_si) {
        st->in_t = true;
    } else if (strcmp(ln, "rPh") == 0) {
        st->in_rph = true; /* phonetic guide: not part of the text */
    }
}

static void ss_end(void *ud, const XML_Char *name)
{
    xlsx_state_t *st = ud;
    const char *ln = local_name(name);
    if (strcmp(ln, "si") == 0 && st->in_si) {
        st->in_si = false;
        if (ss_add_bytes(st, "", 1)) { /* NUL between strings */
            st->nss++;
            st->ss_off[st->nss] = st->ss_len;
        }
    } else if (strcmp(ln, "t") == 0) {
        st->in_t = false;
    } else if (strcmp(ln, "rPh") == 0) {
        st->in_rph = false;
    }
}

static void ss_chars(void *ud, const XML_Char *s, int len)
{
    xlsx_state_t *st = ud;
    if (st->in_si && st->in_t && !st->in_rph && !st->failed)
        ss_add_bytes(st, s, (size_t)len);
}

/* ---------------------------------------------------------------- sheet */

static bool text_add(xlsx_state_t *st, const char *s, size_t n)
{
    if (n > st->r->opts.max_field_bytes - st->text_len) {
        parse__error(st->err, IMP_ERR_TOO_BIG, st->row_line,
                     "a cell is longer than the limit of %zu bytes", st->r->opts.max_field_bytes);
        st->failed = true;
        return false;
    }
    if (st->text_len + n + 1 > st->text_cap) {
        size_t cap = st->text_cap ? st->text_cap : 256;
        while (cap < st->text_len + n + 1)
            cap *= 2;
        char *p = realloc(st->text, cap);
        if (!p) {
            fail(st, IMP_ERR_NOMEM, st->row_line, "out of memory");
            return false;
        }
        st->text = p;
        st->text_cap = cap;
    }
    memcpy(st->text + st->text_len, s, n);
    st->text_len += n;
    st->text[st->text_len] = '\0';
    return true;
}

/* "BC12" → 54 (0-based column), SIZE_MAX if malformed. */
static size_t column_of_ref(const char *ref)
{
    size_t col = 0;
    int k = 0;
    for (; ref[k] >= 'A' && ref[k] <= 'Z'; k++) {
        col = col * 26 + (size_t)(ref[k] - 'A' + 1);
        if (k >= 3)
            return SIZE_MAX;
    }
    return k ? col - 1 : SIZE_MAX;
}

static void civil_from_days(long long z, int *y, int *m, int *d)
{
    /* Howard Hinnant's days → civil algorithm (proleptic Gregorian) */
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long yy = yoe + era * 400;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

/* Formats an Excel date serial as text; false if it is not a plausible date. */
static bool format_serial(const xlsx_state_t *st, double v, unsigned char kind, char *out,
                          size_t cap)
{
    if (!isfinite(v) || v < 0 || v > 2958466) /* 9999-12-31 */
        return false;
    long long days = (long long)floor(v);
    long long secs = llround((v - (double)days) * 86400.0);
    if (secs >= 86400) {
        days++;
        secs -= 86400;
    }
    int h = (int)(secs / 3600), mi = (int)(secs / 60 % 60), s = (int)(secs % 60);
    if (kind == 2 && days == 0) {
        snprintf(out, cap, "%02d:%02d:%02d", h, mi, s);
        return true;
    }
    long long unix_days;
    if (st->date1904)
        unix_days = days - 24107; /* 1904-01-01 is serial 0 */
    else if (days >= 61)
        unix_days = days - 25569; /* past the Lotus bug's 1900-02-29 */
    else if (days == 60)
        unix_days = 59 - 25568; /* the day that never was: read as 1900-02-28 */
    else
        unix_days = days - 25568; /* serial 1 = 1900-01-01 */
    int y, m, d;
    civil_from_days(unix_days, &y, &m, &d);
    if (secs == 0)
        snprintf(out, cap, "%04d-%02d-%02d", y, m, d);
    else
        snprintf(out, cap, "%04d-%02d-%02d %02d:%02d:%02d", y, m, d, h, mi, s);
    return true;
}

static void end_cell(xlsx_state_t *st)
{
    imp_reader_t *r = st->r;
    const char *s = st->text ? st->text : "";
    size_t n = st->text_len;
    char tmp[48];
    switch (st->cell_kind) {
    case CK_SHARED: {
        char *e;
        long idx = strtol(s, &e, 10);
        if (n == 0 || *e || idx < 0 || (size_t)idx >= st->nss) {
            fail(st, IMP_ERR_FORMAT, st->row_line,
                 "the workbook refers to a shared string it does not have");
            return;
        }
        s = st->ss + st->ss_off[idx];
        n = st->ss_off[idx + 1] - st->ss_off[idx] - 1;
        break;
    }
    case CK_BOOL:
        s = n && s[0] == '1' ? "true" : "false";
        n = strlen(s);
        break;
    case CK_NUMBER:
        if (n && st->cell_style >= 0 && (size_t)st->cell_style < st->nxf &&
            st->xf_date[st->cell_style]) {
            char *e;
            double v = strtod(s, &e);
            if (!*e && format_serial(st, v, st->xf_date[st->cell_style], tmp, sizeof(tmp))) {
                s = tmp;
                n = strlen(tmp);
            }
        }
        break;
    default:
        break;
    }
    if (st->cell_col > r->opts.max_columns) {
        fail(st, IMP_ERR_TOO_BIG, st->row_line, "a row has too many columns");
        return;
    }
    if (!parse__field_pad(r, st->cell_col, st->row_line, st->err) ||
        !parse__field_add(r, s, n, st->row_line, st->err)) {
        st->failed = true;
        return;
    }
    if (n)
        st->row_cells++;
}

static void sheet_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xlsx_state_t *st = ud;
    if (st->failed)
        return;
    const char *ln = local_name(name);
    if (strcmp(ln, "sheetData") == 0) {
        st->in_sheetdata = true;
    } else if (!st->in_sheetdata) {
        return;
    } else if (strcmp(ln, "row") == 0) {
        /* r is an xsd:unsignedInt; a value outside it (or no r) means "the
         * next row". Counting on from the last row cannot overflow: each row
         * costs bytes of the sheet, which is bounded. */
        const char *rn = attr(atts, "r");
        long long num = rn ? strtoll(rn, NULL, 10) : 0;
        if (num > (long long)UINT32_MAX)
            num = 0;
        st->row_num = num > st->row_num ? num : st->row_num + 1;
        st->row_line = st->row_num;
        st->in_row = true;
        st->next_col = 0;
        st->row_cells = 0;
        parse__row_reset(st->r);
    } else if (strcmp(ln, "c") == 0 && st->in_row) {
        const char *ref = attr(atts, "r"), *t = attr(atts, "t"), *s = attr(atts, "s");
        size_t col = ref ? column_of_ref(ref) : st->next_col;
        if (col == SIZE_MAX || col < st->next_col)
            col = st->next_col;
        st->cell_col = col;
        st->next_col = col + 1;
        st->cell_kind = CK_NUMBER;
        if (t && strcmp(t, "s") == 0)
            st->cell_kind = CK_SHARED;
        else if (t && strcmp(t, "inlineStr") == 0)
            st->cell_kind = CK_INLINE;
        else if (t && strcmp(t, "b") == 0)
            st->cell_kind = CK_BOOL;
        else if (t && strcmp(t, "n") != 0)
            st->cell_kind = CK_STRING;
        st->cell_style = s ? strtol(s, NULL, 10) : -1;
        st->in_cell = true;
        st->text_len = 0;
    } else if (st->in_cell && strcmp(ln, "v") == 0) {
        st->in_v = true;
    } else if (st->in_cell && strcmp(ln, "is") == 0) {
        st->in_is = true;
    } else if (st->in_is && strcmp(ln, "t") == 0) {
        st->in_is_t = true;
    } else if (st->in_is && strcmp(ln, "rPh") == 0) {
        st->in_is = false; /* phonetic runs are not text; <is> closes after them */
    }
}

static void sheet_end(void *ud, const XML_Char *name)
{
    xlsx_state_t *st = ud;
    if (st->failed)
        return;
    const char *ln = local_name(name);
    if (strcmp(ln, "v") == 0) {
        st->in_v = false;
    } else if (strcmp(ln, "t") == 0) {
        st->in_is_t = false;
    } else if (strcmp(ln, "is") == 0) {
        st->in_is = false;
    } else if (strcmp(ln, "c") == 0 && st->in_cell) {
        st->in_cell = false;
        end_cell(st);
    } else if (strcmp(ln, "row") == 0 && st->in_row) {
        st->in_row = false;
        if (st->row_cells == 0)
            return; /* an empty row (formatting only): nothing to import */
        st->row_done = true;
        XML_StopParser(st->xp, XML_TRUE);
    } else if (strcmp(ln, "sheetData") == 0) {
        st->in_sheetdata = false;
    }
}

static void sheet_chars(void *ud, const XML_Char *s, int len)
{
    xlsx_state_t *st = ud;
    if (st->failed || !st->in_cell)
        return;
    if (st->in_v || (st->in_is && st->in_is_t))
        text_add(st, s, (size_t)len);
}

/* A completed row: trailing empty cells are not stored in XLSX, so the row
 * is padded to the header. */
static int xlsx_row_ready(imp_reader_t *r, imp_error_t *err)
{
    xlsx_state_t *st = r->impl;
    return parse__field_pad(r, r->nheader, st->row_line, err) ? 1 : -1;
}

/* Resumes expat, or pushes the next inflated piece of the sheet into it. */
static int xlsx_feed(imp_reader_t *r, imp_error_t *err)
{
    xlsx_state_t *st = r->impl;
    enum XML_Status xs;
    if (st->suspended) {
        st->suspended = false;
        xs = XML_ResumeParser(st->xp);
    } else {
        if (st->sheet_eof)
            return 0;
        zip_int64_t n = zip_fread(st->sheet, st->chunk, XLSX_CHUNK);
        if (n < 0) {
            parse__error(err, IMP_ERR_FORMAT, st->row_line,
                         "the workbook is damaged (the sheet cannot be decompressed)");
            return -1;
        }
        st->sheet_bytes += (uint64_t)n;
        r->stats.bytes_read = st->sheet_bytes;
        if (st->sheet_bytes > st->sheet_max) {
            parse__error(err, IMP_ERR_TOO_BIG, st->row_line,
                         "the sheet is too large once uncompressed (a zip bomb?)");
            return -1;
        }
        st->sheet_eof = n == 0;
        xs = XML_Parse(st->xp, st->chunk, (int)n, n == 0);
    }
    if (xs == XML_STATUS_SUSPENDED) {
        st->suspended = true;
    } else if (xs == XML_STATUS_ERROR && !st->failed) {
        parse__error(err, IMP_ERR_FORMAT, st->row_line, "the sheet's XML is malformed: %s",
                     XML_ErrorString(XML_GetErrorCode(st->xp)));
        return -1;
    }
    return 1;
}

static int xlsx_next(imp_reader_t *r, long long *line, imp_error_t *err)
{
    xlsx_state_t *st = r->impl;
    st->err = err;
    const parse__pull_t pull = {&st->failed, &st->row_done, &st->row_line, xlsx_row_ready,
                                xlsx_feed};
    return parse__pull(r, &pull, line, err);
}

static void xlsx_close(void *impl)
{
    xlsx_state_t *st = impl;
    if (st->xp)
        XML_ParserFree(st->xp);
    if (st->sheet)
        zip_fclose(st->sheet);
    if (st->zip)
        zip_discard(st->zip);
    else if (st->src)
        zip_source_free(st->src);
    free(st->sheet_rid);
    free(st->sheet_target);
    free(st->ss);
    free(st->ss_off);
    free(st->xf_date);
    free(st->fmt_ids);
    free(st->fmt_kind);
    free(st->chunk);
    free(st->text);
    free(st);
}

static const parse__ops_t xlsx_ops = {xlsx_next, xlsx_close};

bool parse__xlsx_open(imp_reader_t *r, const char *path, const void *data, size_t len,
                      imp_error_t *err)
{
    xlsx_state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        parse__error(err, IMP_ERR_NOMEM, 0, "out of memory");
        return false;
    }
    st->r = r;
    st->err = err;
    r->impl = st;
    r->ops = &xlsx_ops;
    int zerr = 0;
    if (path) {
        st->zip = zip_open(path, ZIP_RDONLY, &zerr);
    } else {
        zip_error_t ze;
        zip_error_init(&ze);
        st->src = zip_source_buffer_create(data, len, 0, &ze);
        if (st->src) {
            st->zip = zip_open_from_source(st->src, ZIP_RDONLY, &ze);
            if (!st->zip)
                zip_source_free(st->src);
            st->src = NULL;
        }
        zip_error_fini(&ze);
    }
    if (!st->zip) {
        parse__error(err, IMP_ERR_FORMAT, 0, "the file is not a readable .xlsx workbook");
        return false;
    }
    if (!read_part(st, "xl/workbook.xml", true, wb_start, no_end, no_chars))
        return false;
    if (!st->sheet_rid) {
        if (r->opts.sheet)
            parse__error(err, IMP_ERR_NO_SHEET, 0, "the workbook has no sheet named '%.100s'",
                         r->opts.sheet);
        else
            parse__error(err, IMP_ERR_FORMAT, 0, "the workbook has no sheet");
        return false;
    }
    if (!read_part(st, "xl/_rels/workbook.xml.rels", true, rels_start, no_end, no_chars))
        return false;
    if (!st->sheet_target) {
        parse__error(err, IMP_ERR_FORMAT, 0, "the workbook does not say where its sheet is");
        return false;
    }
    if (!read_part(st, "xl/styles.xml", false, styles_start, styles_end, no_chars) ||
        !read_part(st, "xl/sharedStrings.xml", false, ss_start, ss_end, ss_chars))
        return false;

    st->sheet_max = r->opts.max_part_bytes;
    uint64_t size = 0;
    st->sheet = open_part(st, st->sheet_target, st->sheet_max, true, &size);
    if (!st->sheet)
        return false;
    r->stats.bytes_total = size;
    st->chunk = malloc(XLSX_CHUNK);
    st->xp = XML_ParserCreate("UTF-8");
    if (!st->chunk || !st->xp) {
        parse__error(err, IMP_ERR_NOMEM, 0, "out of memory");
        return false;
    }
    XML_SetUserData(st->xp, st);
    XML_SetElementHandler(st->xp, sheet_start, sheet_end);
    XML_SetCharacterDataHandler(st->xp, sheet_chars);
    return true;
}
