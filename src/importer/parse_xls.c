/*
 * Legacy .xls workbooks (BIFF 2–8) for imports, through libfreexl. freexl
 * reads the workbook when it is opened (an .xls has at most 65,536 rows, so
 * that is bounded); we then hand out one sheet row at a time like the other
 * readers. freexl already turns date cells into "YYYY-MM-DD [HH:MM:SS]" in
 * the workbook's date system and text into UTF-8.
 */
#include "importer/parse_internal.h"

#include <freexl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct xls_state {
    const void *h;
    unsigned int rows;
    unsigned short cols;
    unsigned int next_row;
} xls_state_t;

/* The shortest decimal text that reads back as v ("0.1", not 0.1000…01). */
static int format_double(double v, char *out, size_t cap)
{
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return n;
}

static int xls_next(imp_reader_t *r, long long *line, imp_error_t *err)
{
    xls_state_t *st = r->impl;
    while (st->next_row < st->rows) {
        unsigned int row = st->next_row++;
        size_t last = 0; /* cells up to the last non-empty one */
        parse__row_reset(r);
        for (unsigned short c = 0; c < st->cols; c++) {
            FreeXL_CellValue v;
            char tmp[64];
            const char *s = "";
            size_t n = 0;
            if (freexl_get_cell_value(st->h, row, c, &v) != FREEXL_OK) {
                parse__error(err, IMP_ERR_FORMAT, row + 1, "a cell of the workbook is damaged");
                return -1;
            }
            switch (v.type) {
            case FREEXL_CELL_INT:
                n = (size_t)snprintf(tmp, sizeof(tmp), "%d", v.value.int_value);
                s = tmp;
                break;
            case FREEXL_CELL_DOUBLE:
                if (isfinite(v.value.double_value)) {
                    n = (size_t)format_double(v.value.double_value, tmp, sizeof(tmp));
                    s = tmp;
                }
                break;
            case FREEXL_CELL_TEXT:
            case FREEXL_CELL_SST_TEXT:
            case FREEXL_CELL_DATE:
            case FREEXL_CELL_DATETIME:
            case FREEXL_CELL_TIME:
                s = v.value.text_value ? v.value.text_value : "";
                n = strlen(s);
                if (parse__utf8_valid_prefix((const unsigned char *)s, n) != n) {
                    parse__error(err, IMP_ERR_ENCODING, row + 1,
                                 "a cell of the workbook is not valid text");
                    return -1;
                }
                break;
            default:
                break;
            }
            if (!parse__field_add(r, s, n, row + 1, err))
                return -1;
            if (n)
                last = (size_t)c + 1;
        }
        if (last == 0)
            continue; /* an empty row */
        /* trailing empty cells: as wide as the header, or up to the last value */
        size_t keep = r->nheader > last ? r->nheader : last;
        if (keep < r->nfields)
            r->nfields = keep;
        *line = (long long)row + 1;
        return 1;
    }
    return 0;
}

static void xls_close(void *impl)
{
    xls_state_t *st = impl;
    if (st->h)
        freexl_close(st->h);
    free(st);
}

static const parse__ops_t xls_ops = {xls_next, xls_close};

bool parse__xls_open(imp_reader_t *r, const char *path, imp_error_t *err)
{
    xls_state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        parse__error(err, IMP_ERR_NOMEM, 0, "out of memory");
        return false;
    }
    r->impl = st;
    r->ops = &xls_ops;
    const void *h = NULL;
    int rc = freexl_open(path, &h);
    st->h = h;
    if (rc != FREEXL_OK) {
        parse__error(err, IMP_ERR_FORMAT, 0, "the file is not a readable .xls workbook");
        return false;
    }
    unsigned int count = 0;
    if (freexl_get_info(h, FREEXL_BIFF_SHEET_COUNT, &count) != FREEXL_OK || count == 0) {
        parse__error(err, IMP_ERR_FORMAT, 0, "the workbook has no sheet");
        return false;
    }
    unsigned short idx = 0;
    if (r->opts.sheet) {
        bool found = false;
        for (unsigned int i = 0; i < count && i < 65536; i++) {
            const char *name = NULL;
            if (freexl_get_worksheet_name(h, (unsigned short)i, &name) == FREEXL_OK && name &&
                strcmp(name, r->opts.sheet) == 0) {
                idx = (unsigned short)i;
                found = true;
                break;
            }
        }
        if (!found) {
            parse__error(err, IMP_ERR_NO_SHEET, 0, "the workbook has no sheet named '%.100s'",
                         r->opts.sheet);
            return false;
        }
    }
    if (freexl_select_active_worksheet(h, idx) != FREEXL_OK ||
        freexl_worksheet_dimensions(h, &st->rows, &st->cols) != FREEXL_OK) {
        parse__error(err, IMP_ERR_FORMAT, 0, "the workbook's sheet cannot be read");
        return false;
    }
    if (st->cols > r->opts.max_columns) {
        parse__error(err, IMP_ERR_TOO_BIG, 0, "the sheet has more than %zu columns",
                     r->opts.max_columns);
        return false;
    }
    r->stats.bytes_read = r->stats.bytes_total; /* freexl has read it all */
    return true;
}
