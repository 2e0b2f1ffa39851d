/* Unit tests for the import file readers (src/importer/parse*.c): CSV edge
 * cases in every encoding and line ending, XLSX workbooks built here with
 * libzip (shared and inline strings, both date systems, zip bombs), and a
 * small .xls fixture (fixtures/make_sample_xls.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zip.h>

#include "importer/parse.h"

/* Reads everything: the header and rows joined as "a|b\n" per row, with
 * the line numbers as "@line" prefixes. Returns the reader's last rc. */
typedef struct slurp {
    char text[8192];
    size_t len;
    int rc;
    imp_error_t err;
    imp_reader_stats_t stats;
} slurp_t;

static void put(slurp_t *s, const char *p, size_t n)
{
    if (s->len + n >= sizeof(s->text))
        n = sizeof(s->text) - s->len - 1;
    memcpy(s->text + s->len, p, n);
    s->len += n;
    s->text[s->len] = '\0';
}

static void slurp_reader(imp_reader_t *r, slurp_t *s)
{
    size_t n;
    const imp_cell_t *h = imp_reader_header(r, &n);
    put(s, "H:", 2);
    for (size_t i = 0; i < n; i++) {
        if (i)
            put(s, "|", 1);
        put(s, h[i].data, h[i].len);
    }
    put(s, "\n", 1);
    imp_row_t row;
    while ((s->rc = imp_reader_next(r, &row, &s->err)) == 1) {
        char num[32];
        int k = snprintf(num, sizeof(num), "@%lld%s:", row.line, row.ragged ? "R" : "");
        put(s, num, (size_t)k);
        for (size_t i = 0; i < row.ncells; i++) {
            if (i)
                put(s, "|", 1);
            put(s, row.cells[i].data, row.cells[i].len);
            assert_int_equal(row.cells[i].data[row.cells[i].len], '\0');
        }
        put(s, "\n", 1);
    }
    imp_reader_stats(r, &s->stats);
}

/* Opens data from memory with options and slurps it; asserts the open. */
static slurp_t *csv(const char *data, size_t len, const imp_parse_opts_t *o)
{
    static slurp_t s;
    memset(&s, 0, sizeof(s));
    imp_reader_t *r = imp_reader_open_mem(data, len, IMP_FORMAT_DETECT, o, &s.err);
    if (!r) {
        s.rc = -2;
        return &s;
    }
    slurp_reader(r, &s);
    imp_reader_close(r);
    return &s;
}

#define CSV(lit) csv(lit, sizeof(lit) - 1, NULL)

static void test_csv_rfc4180(void **state)
{
    (void)state;
    slurp_t *s = CSV("Name,Email,Note\r\n"
                     "\"Smith, J\",j@x.com,\"said \"\"hi\"\"\"\r\n"
                     "Ann,a@x.com,\"two\r\nlines\"\r\n"
                     "Bob,b@x.com,plain\r\n");
    assert_int_equal(s->rc, 0);
    assert_string_equal(s->text, "H:Name|Email|Note\n"
                                 "@2:Smith, J|j@x.com|said \"hi\"\n"
                                 "@3:Ann|a@x.com|two\r\nlines\n"
                                 "@5:Bob|b@x.com|plain\n");
    assert_int_equal(s->stats.rows, 3);
    assert_int_equal(s->stats.delimiter, ',');
    assert_int_equal(s->stats.encoding, IMP_ENC_UTF8);
}

static void test_csv_line_endings(void **state)
{
    (void)state;
    /* LF, CR alone, mixed, no final newline, blank lines skipped but counted */
    slurp_t *s = CSV("a,b\n1,2\n\n3,4");
    assert_string_equal(s->text, "H:a|b\n@2:1|2\n@4:3|4\n");
    s = CSV("a,b\r1,2\r3,4\r");
    assert_string_equal(s->text, "H:a|b\n@2:1|2\n@3:3|4\n");
    s = CSV("a,b\r\n1,2\n3,4\r5,6\r\n");
    assert_string_equal(s->text, "H:a|b\n@2:1|2\n@3:3|4\n@4:5|6\n");
    /* spaces are data (trim is a cleaning rule) */
    s = CSV("a,b\n 1 , 2 \n");
    assert_string_equal(s->text, "H:a|b\n@2: 1 | 2 \n");
}

static void test_csv_delimiters(void **state)
{
    (void)state;
    slurp_t *s = CSV("name;city\n\"Doe, J\";Paris\nAnn;Lyon\n");
    assert_int_equal(s->stats.delimiter, ';');
    assert_string_equal(s->text, "H:name|city\n@2:Doe, J|Paris\n@3:Ann|Lyon\n");
    s = CSV("a\tb\tc\n1\t2\t3\n");
    assert_int_equal(s->stats.delimiter, '\t');
    assert_string_equal(s->text, "H:a|b|c\n@2:1|2|3\n");
    s = CSV("a|b\n1|x,y\n");
    assert_int_equal(s->stats.delimiter, '|');
    assert_string_equal(s->text, "H:a|b\n@2:1|x,y\n");
    /* one column: no delimiter anywhere, comma by default */
    s = CSV("email\na@x.com\n");
    assert_int_equal(s->stats.delimiter, ',');
    /* given, not detected */
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    o.delimiter = ';';
    s = csv("a,b;c\n1,2;3\n", 12, &o);
    assert_string_equal(s->text, "H:a,b|c\n@2:1,2|3\n");
    o.delimiter = 'x';
    s = csv("a\n", 2, &o);
    assert_int_equal(s->rc, -2);
    assert_int_equal(s->err.code, IMP_ERR_OPTION);
}

static void test_csv_encodings(void **state)
{
    (void)state;
    /* UTF-8 with BOM: the BOM is not part of the first name */
    slurp_t *s = CSV("\xEF\xBB\xBFname\nZo\xC3\xAB\n");
    assert_string_equal(s->text, "H:name\n@2:Zo\xC3\xAB\n");
    assert_int_equal(s->stats.encoding, IMP_ENC_UTF8);
    /* Windows-1252 detected from invalid UTF-8: é, €, ’ */
    s = CSV("name\nCaf\xE9 \x80 \x92\n");
    assert_int_equal(s->stats.encoding, IMP_ENC_CP1252);
    assert_string_equal(s->text, "H:name\n@2:Caf\xC3\xA9 \xE2\x82\xAC \xE2\x80\x99\n");
    /* Latin-1 when declared: 0x80 is a C1 control, not € */
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    assert_true(imp_encoding_from_name("ISO-8859-1", &o.encoding));
    s = csv("n\n\xE9\x80\n", 5, &o);
    assert_string_equal(s->text, "H:n\n@2:\xC3\xA9\xC2\x80\n");
    /* UTF-16 LE and BE with BOM */
    static const char le[] = "\xFF\xFE"
                             "a\0,\0b\0\n\0"
                             "\xE9\0,\0\xAC\x20\n\0";
    s = csv(le, sizeof(le) - 1, NULL);
    assert_int_equal(s->stats.encoding, IMP_ENC_UTF16LE);
    assert_string_equal(s->text, "H:a|b\n@2:\xC3\xA9|\xE2\x82\xAC\n");
    static const char be[] = "\xFE\xFF"
                             "\0a\0;\0b\0\r\0\n"
                             "\0x\0;\xD8\x3D\xDE\x00\0\r\0\n";
    s = csv(be, sizeof(be) - 1, NULL);
    assert_int_equal(s->stats.encoding, IMP_ENC_UTF16BE);
    assert_string_equal(s->text, "H:a|b\n@2:x|\xF0\x9F\x98\x80\n");
    /* names */
    imp_encoding_t e;
    assert_true(imp_encoding_from_name("windows-1252", &e));
    assert_int_equal(e, IMP_ENC_CP1252);
    assert_true(imp_encoding_from_name("UTF8", &e));
    assert_int_equal(e, IMP_ENC_UTF8);
    assert_false(imp_encoding_from_name("ebcdic", &e));
    assert_string_equal(imp_encoding_name(IMP_ENC_UTF16LE), "utf-16le");
}

static void test_csv_bad_text(void **state)
{
    (void)state;
    /* NUL bytes: binary, or UTF-16 without a BOM */
    slurp_t *s = csv("a,b\n1,\0\n", 8, NULL);
    assert_int_equal(s->rc, -1);
    assert_int_equal(s->err.code, IMP_ERR_ENCODING);
    assert_int_equal(s->err.line, 2);
    assert_non_null(strstr(s->err.message, "line 2:"));
    /* invalid UTF-8 after a valid UTF-8 head of 64 KiB: an error naming the line */
    size_t n = 70000;
    char *big = malloc(n + 16);
    memcpy(big, "h\n", 2);
    for (size_t i = 2; i < n; i += 2)
        memcpy(big + i, "x\n", 2);
    memcpy(big + n, "\xFF\n", 2);
    s = csv(big, n + 2, NULL);
    assert_int_equal(s->rc, -1);
    assert_int_equal(s->err.code, IMP_ERR_ENCODING);
    assert_int_equal(s->err.line, (long long)(n / 2) + 1);
    assert_non_null(strstr(s->err.message, "encoding"));
    free(big);
    /* UTF-16 cut in the middle of a character */
    s = csv("\xFF\xFE"
            "a\0\n",
            5, NULL);
    assert_int_equal(s->rc, -2);
    assert_int_equal(s->err.code, IMP_ERR_ENCODING);
    /* a quote never closed */
    s = CSV("a,b\n1,\"open\n2,3\n");
    assert_int_equal(s->rc, -1);
    assert_int_equal(s->err.code, IMP_ERR_FORMAT);
    assert_int_equal(s->err.line, 2);
}

static void test_csv_ragged_and_header(void **state)
{
    (void)state;
    slurp_t *s = CSV("a,b,c\n1,2\n1,2,3,4\n1,2,3\n");
    assert_string_equal(s->text, "H:a|b|c\n@2R:1|2\n@3R:1|2|3|4\n@4:1|2|3\n");
    assert_int_equal(s->stats.rows, 3);
    assert_int_equal(s->stats.ragged_rows, 2);
    /* no header: columns named by position, the first row is data */
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    o.has_header = false;
    s = csv("x,y\n1,2\n", 8, &o);
    assert_string_equal(s->text, "H:column_1|column_2\n@1:x|y\n@2:1|2\n");
    /* header names are trimmed */
    s = CSV(" First Name ,Email\n1,2\n");
    assert_string_equal(s->text, "H:First Name|Email\n@2:1|2\n");
    /* empty file and header only, in every encoding (an empty Latin-1 file
     * once did arithmetic on a NULL buffer: found by fuzz_csv) */
    for (int e = IMP_ENC_DETECT; e <= IMP_ENC_LATIN1; e++) {
        o.has_header = true;
        o.encoding = (imp_encoding_t)e;
        s = csv("", 0, &o);
        assert_int_equal(s->rc, 0);
        assert_string_equal(s->text, "H:\n");
    }
    s = CSV("a,b\n");
    assert_int_equal(s->rc, 0);
    assert_string_equal(s->text, "H:a|b\n");
}

static void test_csv_field_cap(void **state)
{
    (void)state;
    /* a 10 MB field: refused at the cap, with its line, without 10 MB rows */
    size_t n = 10u * 1000u * 1000u;
    char *big = malloc(n + 32);
    memcpy(big, "a,b\n1,\"", 7);
    memset(big + 7, 'x', n);
    memcpy(big + 7 + n, "\"\n", 2);
    slurp_t *s = csv(big, n + 9, NULL);
    assert_int_equal(s->rc, -1);
    assert_int_equal(s->err.code, IMP_ERR_TOO_BIG);
    assert_int_equal(s->err.line, 2);
    assert_non_null(strstr(s->err.message, "1048576"));
    /* unquoted, too */
    memcpy(big, "a,b\n1,", 6);
    memset(big + 6, 'y', n);
    s = csv(big, n + 6, NULL);
    assert_int_equal(s->err.code, IMP_ERR_TOO_BIG);
    free(big);
    /* a smaller cap, exactly at the limit and one past */
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    o.max_field_bytes = 4;
    s = csv("h\nabcd\n", 7, &o);
    assert_int_equal(s->rc, 0);
    s = csv("h\nabcde\n", 8, &o);
    assert_int_equal(s->err.code, IMP_ERR_TOO_BIG);
    /* too many columns */
    o.max_field_bytes = 0;
    o.max_columns = 3;
    s = csv("a,b,c,d\n", 8, &o);
    assert_int_equal(s->rc, -2);
    assert_int_equal(s->err.code, IMP_ERR_TOO_BIG);
}

static char *write_temp(const void *data, size_t len)
{
    char *path = strdup("/tmp/imp_test_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_csv_from_file(void **state)
{
    (void)state;
    /* longer than one read chunk, so rows span chunk boundaries */
    size_t rows = 20000;
    char *data = malloc(rows * 16 + 16);
    size_t len = (size_t)snprintf(data, 16, "id;name\n");
    for (size_t i = 0; i < rows; i++)
        len += (size_t)snprintf(data + len, 16, "%zu;\"n\n%zu\"\n", i, i % 10);
    char *path = write_temp(data, len);
    imp_error_t err;
    imp_reader_t *r = imp_reader_open(path, IMP_FORMAT_DETECT, NULL, &err);
    assert_non_null(r);
    imp_row_t row;
    size_t got = 0;
    while (imp_reader_next(r, &row, &err) == 1) {
        assert_int_equal(row.ncells, 2);
        assert_int_equal(row.line, (long long)(2 + got * 2));
        assert_int_equal(row.cells[1].len, 3);
        got++;
    }
    assert_int_equal(got, rows);
    imp_reader_stats_t st;
    imp_reader_stats(r, &st);
    assert_int_equal(st.bytes_read, len);
    assert_int_equal(st.bytes_total, len);
    assert_int_equal(st.format, IMP_FORMAT_CSV);
    imp_reader_close(r);
    unlink(path);
    free(path);
    free(data);
    assert_null(imp_reader_open("/nonexistent/file.csv", IMP_FORMAT_CSV, NULL, &err));
    assert_int_equal(err.code, IMP_ERR_IO);
}

/* ---------------------------------------------------------------- xlsx */

typedef struct part {
    const char *name;
    const char *xml;
} part_t;

static const char workbook_xml[] =
    "<?xml version=\"1.0\"?><workbook "
    "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" "
    "xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">"
    "<workbookPr date1904=\"%s\"/><sheets><sheet name=\"Summary\" sheetId=\"1\" r:id=\"rId1\"/>"
    "<sheet name=\"Data\" sheetId=\"2\" r:id=\"rId2\"/></sheets></workbook>";

static const char rels_xml[] =
    "<?xml version=\"1.0\"?><Relationships "
    "xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
    "<Relationship Id=\"rId1\" Type=\"worksheet\" Target=\"worksheets/sheet1.xml\"/>"
    "<Relationship Id=\"rId2\" Type=\"worksheet\" Target=\"/xl/worksheets/sheet2.xml\"/>"
    "</Relationships>";

static const char styles_xml[] =
    "<styleSheet><numFmts count=\"2\"><numFmt numFmtId=\"164\" formatCode=\"dd/mm/yyyy\"/>"
    "<numFmt numFmtId=\"165\" formatCode=\"&quot;Qty &quot;0\"/></numFmts>"
    "<cellStyleXfs count=\"1\"><xf numFmtId=\"14\"/></cellStyleXfs>"
    "<cellXfs count=\"5\"><xf numFmtId=\"0\"/><xf numFmtId=\"14\"/><xf numFmtId=\"164\"/>"
    "<xf numFmtId=\"165\"/><xf numFmtId=\"22\"/></cellXfs></styleSheet>";

static const char shared_xml[] =
    "<sst count=\"3\" uniqueCount=\"3\"><si><t>Name</t></si><si><t>Joined</t></si>"
    "<si><r><t>Zo</t></r><r><rPr/><t>\xC3\xAB &amp; co</t></r><rPh><t>ZZ</t></rPh></si>"
    "<si><t>Score</t></si><si><t>Active</t></si></sst>";

static const char sheet2_xml[] =
    "<worksheet><sheetData>"
    "<row r=\"1\"><c r=\"A1\" t=\"s\"><v>0</v></c><c r=\"B1\" t=\"s\"><v>1</v></c>"
    "<c r=\"C1\" t=\"s\"><v>3</v></c><c r=\"D1\" t=\"s\"><v>4</v></c></row>"
    "<row r=\"2\"><c r=\"A2\" t=\"s\"><v>2</v></c><c r=\"B2\" s=\"1\"><v>45351</v></c>"
    "<c r=\"C2\" s=\"3\"><v>12.5</v></c><c r=\"D2\" t=\"b\"><v>1</v></c></row>"
    "<row r=\"3\" spans=\"1:4\"></row>"
    "<row r=\"5\"><c r=\"A5\" t=\"inlineStr\"><is><t>Inline &lt;b&gt;</t></is></c>"
    "<c r=\"B5\" s=\"2\"><v>60</v></c><c r=\"D5\" t=\"b\"><v>0</v></c></row>"
    "<row r=\"6\"><c r=\"A6\" t=\"str\"><f>A1</f><v>Formula</v></c><c r=\"B6\" s=\"4\">"
    "<v>45351.5</v></c><c r=\"C6\"><v>-0.25</v></c></row>"
    "<row r=\"7\"><c r=\"B7\" s=\"1\"><v>59</v></c><c r=\"C7\" t=\"e\"><v>#N/A</v></c></row>"
    "<row r=\"8\"><c r=\"B8\" s=\"1\"><v>61</v></c></row>"
    "</sheetData></worksheet>";

/* Builds an .xlsx (deflated parts) in memory; the caller frees *out. */
static void make_xlsx(const part_t *parts, size_t n, void **out, size_t *len)
{
    zip_error_t ze;
    zip_error_init(&ze);
    zip_source_t *buf = zip_source_buffer_create(NULL, 0, 0, &ze);
    assert_non_null(buf);
    zip_source_keep(buf);
    zip_t *z = zip_open_from_source(buf, ZIP_TRUNCATE, &ze);
    assert_non_null(z);
    for (size_t i = 0; i < n; i++) {
        zip_source_t *s = zip_source_buffer(z, parts[i].xml, strlen(parts[i].xml), 0);
        assert_non_null(s);
        assert_true(zip_file_add(z, parts[i].name, s, ZIP_FL_ENC_UTF_8) >= 0);
    }
    assert_int_equal(zip_close(z), 0);
    zip_stat_t st;
    assert_int_equal(zip_source_stat(buf, &st), 0);
    *len = (size_t)st.size;
    *out = malloc(*len);
    assert_int_equal(zip_source_open(buf), 0);
    assert_int_equal(zip_source_read(buf, *out, *len), (zip_int64_t)*len);
    zip_source_close(buf);
    zip_source_free(buf);
}

static slurp_t *xlsx(const char *date1904, const char *sheet1, const char *sheet2,
                     const imp_parse_opts_t *o)
{
    static char wb[1024];
    snprintf(wb, sizeof(wb), workbook_xml, date1904);
    part_t parts[] = {
        {"[Content_Types].xml", "<Types/>"},      {"xl/workbook.xml", wb},
        {"xl/_rels/workbook.xml.rels", rels_xml}, {"xl/styles.xml", styles_xml},
        {"xl/sharedStrings.xml", shared_xml},     {"xl/worksheets/sheet1.xml", sheet1},
        {"xl/worksheets/sheet2.xml", sheet2},
    };
    void *data;
    size_t len;
    make_xlsx(parts, CD_ARRAY_LEN(parts), &data, &len);
    /* from a file, as the importer reads it */
    char *path = write_temp(data, len);
    free(data);
    static slurp_t s;
    memset(&s, 0, sizeof(s));
    imp_reader_t *r = imp_reader_open(path, IMP_FORMAT_DETECT, o, &s.err);
    unlink(path);
    free(path);
    if (!r) {
        s.rc = -2;
        return &s;
    }
    slurp_reader(r, &s);
    imp_reader_close(r);
    return &s;
}

static const char small_sheet[] =
    "<worksheet><sheetData><row r=\"1\"><c t=\"inlineStr\"><is><t>only</t></is></c></row>"
    "<row r=\"2\"><c><v>1</v></c></row></sheetData></worksheet>";

static void test_xlsx_values(void **state)
{
    (void)state;
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    o.sheet = "Data";
    slurp_t *s = xlsx("0", small_sheet, sheet2_xml, &o);
    assert_int_equal(s->rc, 0);
    /* shared strings (rich runs joined, phonetic runs dropped), dates in the
     * 1900 system (45351 = 2024-02-29; 60 is Lotus's 1900-02-29, read as
     * 02-28; 59 and 61 either side), a custom date format, a custom
     * non-date format with a quoted "m"-free literal, booleans, inline
     * strings, formula strings, errors, gaps and empty rows */
    assert_string_equal(s->text, "H:Name|Joined|Score|Active\n"
                                 "@2:Zo\xC3\xAB & co|2024-02-29|12.5|true\n"
                                 "@5:Inline <b>|1900-02-28||false\n"
                                 "@6:Formula|2024-02-29 12:00:00|-0.25|\n"
                                 "@7:|1900-02-28|#N/A|\n"
                                 "@8:|1900-03-01||\n");
    assert_int_equal(s->stats.format, IMP_FORMAT_XLSX);
    assert_int_equal(s->stats.rows, 5);
    assert_int_equal(s->stats.ragged_rows, 0);
    /* the first sheet by default */
    s = xlsx("0", small_sheet, sheet2_xml, NULL);
    assert_string_equal(s->text, "H:only\n@2:1\n");
}

static void test_xlsx_1904(void **state)
{
    (void)state;
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    o.sheet = "Data";
    slurp_t *s = xlsx("1", small_sheet, sheet2_xml, &o);
    assert_int_equal(s->rc, 0);
    /* 1904 system: serial 0 = 1904-01-01, so 45351 = 2028-03-01 */
    assert_non_null(strstr(s->text, "@2:Zo\xC3\xAB & co|2028-03-01|"));
    assert_non_null(strstr(s->text, "@5:Inline <b>|1904-03-01|"));
}

static void test_xlsx_errors(void **state)
{
    (void)state;
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    o.sheet = "Missing";
    slurp_t *s = xlsx("0", small_sheet, sheet2_xml, &o);
    assert_int_equal(s->rc, -2);
    assert_int_equal(s->err.code, IMP_ERR_NO_SHEET);
    assert_non_null(strstr(s->err.message, "Missing"));
    /* malformed sheet XML: an error, not a crash */
    s = xlsx("0", "<worksheet><sheetData><row r=\"1\"><c><v>1</v></row>", sheet2_xml, NULL);
    assert_int_equal(s->err.code, IMP_ERR_FORMAT);
    /* a row number past the format's range counts on from the last row
     * (LLONG_MAX + 1 was undefined behaviour the fuzzer found) */
    s = xlsx("0",
             "<worksheet><sheetData><row r=\"9223372036854775807\"><c t=\"inlineStr\">"
             "<is><t>h</t></is></c></row><row><c><v>1</v></c></row>"
             "<row r=\"4294967296\"><c><v>2</v></c></row>"
             "<row r=\"4294967295\"><c><v>3</v></c></row><row><c><v>4</v></c></row>"
             "</sheetData></worksheet>",
             sheet2_xml, NULL);
    assert_int_equal(s->rc, 0);
    assert_string_equal(s->text, "H:h\n@2:1\n@3:2\n@4294967295:3\n@4294967296:4\n");
    /* a shared string index out of range */
    s = xlsx("0", "<worksheet><sheetData><row><c t=\"s\"><v>99</v></c></row></sheetData>",
             sheet2_xml, NULL);
    assert_int_equal(s->err.code, IMP_ERR_FORMAT);
    /* not a zip at all, detected as xlsx */
    imp_error_t err;
    assert_null(imp_reader_open_mem("PK\x03\x04garbage", 11, IMP_FORMAT_DETECT, NULL, &err));
    assert_int_equal(err.code, IMP_ERR_FORMAT);
    /* a zip without a workbook */
    part_t parts[] = {{"hello.txt", "hi"}};
    void *data;
    size_t len;
    make_xlsx(parts, 1, &data, &len);
    assert_null(imp_reader_open_mem(data, len, IMP_FORMAT_XLSX, NULL, &err));
    assert_int_equal(err.code, IMP_ERR_FORMAT);
    free(data);
    /* legacy .xls from memory is refused cleanly */
    assert_null(
        imp_reader_open_mem("\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8, IMP_FORMAT_DETECT, NULL, &err));
    assert_int_equal(err.code, IMP_ERR_FORMAT);
}

static void test_xlsx_zip_bomb(void **state)
{
    (void)state;
    /* 8 MB of one repeated row: compresses far past the allowed ratio */
    size_t n = 8u << 20;
    char *sheet = malloc(n + 128);
    size_t len = (size_t)snprintf(sheet, 64, "<worksheet><sheetData>");
    static const char row[] = "<row><c><v>1</v></c></row>";
    while (len + sizeof(row) + 32 < n) {
        memcpy(sheet + len, row, sizeof(row) - 1);
        len += sizeof(row) - 1;
    }
    len += (size_t)snprintf(sheet + len, 64, "</sheetData></worksheet>");
    slurp_t *s = xlsx("0", sheet, sheet2_xml, NULL);
    assert_int_equal(s->rc, -2);
    assert_int_equal(s->err.code, IMP_ERR_TOO_BIG);
    assert_non_null(strstr(s->err.message, "zip bomb"));
    free(sheet);
    /* the size cap on its own */
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    o.max_part_bytes = 100;
    s = xlsx("0", small_sheet, sheet2_xml, &o);
    assert_int_equal(s->err.code, IMP_ERR_TOO_BIG);
}

static void test_xlsx_streams(void **state)
{
    (void)state;
    /* 30,000 rows: more than one read chunk of sheet XML, pulled row by row */
    size_t rows = 30000;
    char *sheet = malloc(rows * 64 + 256);
    size_t len =
        (size_t)snprintf(sheet, 256,
                         "<worksheet><sheetData><row r=\"1\"><c t=\"inlineStr\"><is>"
                         "<t>n</t></is></c><c t=\"inlineStr\"><is><t>m</t></is></c></row>");
    for (size_t i = 0; i < rows; i++)
        len += (size_t)snprintf(
            sheet + len, 64, "<row r=\"%zu\"><c r=\"B%zu\"><v>%zu</v></c></row>", i + 2, i + 2, i);
    snprintf(sheet + len, 64, "</sheetData></worksheet>");
    char wb[1024];
    snprintf(wb, sizeof(wb), workbook_xml, "0");
    part_t parts[] = {{"xl/workbook.xml", wb},
                      {"xl/_rels/workbook.xml.rels", rels_xml},
                      {"xl/worksheets/sheet1.xml", sheet}};
    void *data;
    size_t dlen;
    make_xlsx(parts, 3, &data, &dlen);
    imp_error_t err;
    imp_reader_t *r = imp_reader_open_mem(data, dlen, IMP_FORMAT_DETECT, NULL, &err);
    assert_non_null(r);
    imp_row_t row;
    size_t got = 0;
    while (imp_reader_next(r, &row, &err) == 1) {
        char want[16];
        snprintf(want, sizeof(want), "%zu", got);
        assert_int_equal(row.ncells, 2);
        assert_int_equal(row.cells[0].len, 0);
        assert_string_equal(row.cells[1].data, want);
        assert_int_equal(row.line, (long long)got + 2);
        got++;
    }
    assert_int_equal(got, rows);
    imp_reader_stats_t st;
    imp_reader_stats(r, &st);
    assert_int_equal(st.bytes_read, strlen(sheet));
    imp_reader_close(r);
    free(data);
    free(sheet);
}

/* ----------------------------------------------------------------- xls */

static void test_xls_fixture(void **state)
{
    (void)state;
    const char *dir = getenv("IMPORT_FIXTURES");
    if (!dir)
        dir = "tests/unit/importer/fixtures";
    char path[1024];
    snprintf(path, sizeof(path), "%s/sample.xls", dir);
    static slurp_t s;
    memset(&s, 0, sizeof(s));
    imp_reader_t *r = imp_reader_open(path, IMP_FORMAT_DETECT, NULL, &s.err);
    assert_non_null(r);
    slurp_reader(r, &s);
    assert_int_equal(s.stats.format, IMP_FORMAT_XLS);
    imp_reader_close(r);
    assert_int_equal(s.rc, 0);
    /* freexl reports booleans as the integers they are stored as */
    assert_string_equal(s.text, "H:Name|Email|Score|Joined|Active\n"
                                "@2:Zo\xC3\xAB \xC3\x85ngstr\xC3\xB6m|zoe@example.com|42|"
                                "2024-02-29|1\n"
                                "@3:Bob||0.1|2023-12-31 23:59:30|\n");
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    o.sheet = "Other";
    r = imp_reader_open(path, IMP_FORMAT_XLS, &o, &s.err);
    assert_non_null(r);
    memset(&s, 0, sizeof(s));
    slurp_reader(r, &s);
    imp_reader_close(r);
    assert_string_equal(s.text, "H:x\n@2:y\n");
    o.sheet = "Nope";
    assert_null(imp_reader_open(path, IMP_FORMAT_XLS, &o, &s.err));
    assert_int_equal(s.err.code, IMP_ERR_NO_SHEET);
    /* a CSV forced to be read as .xls */
    char *bad = write_temp("a,b\n", 4);
    assert_null(imp_reader_open(bad, IMP_FORMAT_XLS, NULL, &s.err));
    assert_int_equal(s.err.code, IMP_ERR_FORMAT);
    unlink(bad);
    free(bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_rfc4180),    cmocka_unit_test(test_csv_line_endings),
        cmocka_unit_test(test_csv_delimiters), cmocka_unit_test(test_csv_encodings),
        cmocka_unit_test(test_csv_bad_text),   cmocka_unit_test(test_csv_ragged_and_header),
        cmocka_unit_test(test_csv_field_cap),  cmocka_unit_test(test_csv_from_file),
        cmocka_unit_test(test_xlsx_values),    cmocka_unit_test(test_xlsx_1904),
        cmocka_unit_test(test_xlsx_errors),    cmocka_unit_test(test_xlsx_zip_bomb),
        cmocka_unit_test(test_xlsx_streams),   cmocka_unit_test(test_xls_fixture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
