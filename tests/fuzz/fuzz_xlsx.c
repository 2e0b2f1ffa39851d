/*
 * libFuzzer target for the XLSX reader (src/importer/parse_xlsx.c). An input
 * that starts with "PK" is read as a whole .xlsx (zip parsing, part caps);
 * anything else is the sheet XML of an otherwise valid workbook built here
 * (shared strings, styles with dates), which is where the fuzzer finds
 * depth. Any crash, sanitizer report or leak is a bug.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zip.h>

#include "importer/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char workbook[] =
    "<workbook><workbookPr date1904=\"0\"/><sheets><sheet name=\"S\" r:id=\"rId1\"/></sheets>"
    "</workbook>";
static const char rels[] = "<Relationships><Relationship Id=\"rId1\" "
                           "Target=\"worksheets/sheet1.xml\"/></Relationships>";
static const char styles[] =
    "<styleSheet><numFmts><numFmt numFmtId=\"164\" formatCode=\"yyyy-mm-dd hh:mm\"/></numFmts>"
    "<cellXfs><xf numFmtId=\"0\"/><xf numFmtId=\"14\"/><xf numFmtId=\"164\"/>"
    "<xf numFmtId=\"21\"/></cellXfs></styleSheet>";
static const char shared[] = "<sst><si><t>a</t></si><si><r><t>b</t></r><r><t>c</t></r></si>"
                             "<si><t></t></si></sst>";

static void read_all(const void *buf, size_t len)
{
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    o.max_field_bytes = 4096;
    o.max_part_bytes = 8u << 20;
    imp_error_t err;
    imp_reader_t *r = imp_reader_open_mem(buf, len, IMP_FORMAT_XLSX, &o, &err);
    if (!r)
        return;
    imp_row_t row;
    while (imp_reader_next(r, &row, &err) == 1) {
        for (size_t i = 0; i < row.ncells; i++) {
            if (row.cells[i].len > 4096)
                abort();
        }
    }
    imp_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 2 && data[0] == 'P' && data[1] == 'K') {
        read_all(data, size);
        return 0;
    }
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *src = zip_source_buffer_create(NULL, 0, 0, &ze);
    if (!src)
        return 0;
    zip_source_keep(src);
    zip_t *z = zip_open_from_source(src, ZIP_TRUNCATE, &ze);
    if (!z) {
        zip_source_free(src);
        return 0;
    }
    const struct {
        const char *name;
        const void *p;
        size_t n;
    } parts[] = {
        {"xl/workbook.xml", workbook, sizeof(workbook) - 1},
        {"xl/_rels/workbook.xml.rels", rels, sizeof(rels) - 1},
        {"xl/styles.xml", styles, sizeof(styles) - 1},
        {"xl/sharedStrings.xml", shared, sizeof(shared) - 1},
        {"xl/worksheets/sheet1.xml", data, size},
    };
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        zip_source_t *s = zip_source_buffer(z, parts[i].p, parts[i].n, 0);
        zip_int64_t idx = s ? zip_file_add(z, parts[i].name, s, 0) : -1;
        if (idx < 0)
            zip_source_free(s);
        else
            zip_set_file_compression(z, (zip_uint64_t)idx, ZIP_CM_STORE, 0);
    }
    if (zip_close(z) != 0) {
        zip_discard(z);
        zip_source_free(src);
        return 0;
    }
    zip_stat_t st;
    void *buf = NULL;
    if (zip_source_stat(src, &st) == 0 && zip_source_open(src) == 0) {
        buf = malloc(st.size ? st.size : 1);
        if (buf && zip_source_read(src, buf, st.size) == (zip_int64_t)st.size)
            read_all(buf, st.size);
        zip_source_close(src);
    }
    free(buf);
    zip_source_free(src);
    return 0;
}
