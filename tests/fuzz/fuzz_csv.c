/*
 * libFuzzer target for the CSV reader and the cleaning plan (src/importer/):
 * the first byte picks the options (encoding, delimiter, header), the rest is
 * the file. Every row is cleaned by a plan that maps every column with a mix
 * of rules and types, and formatted as COPY text. Any crash, sanitizer report
 * or leak is a bug; so is a row wider than the cap or a cell with a NUL.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "importer/clean.h"
#include "importer/parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const rule_sets[] = {
    "[{\"type\":\"trim\"},{\"type\":\"title_case\"},{\"type\":\"max_length\",\"length\":5}]",
    "[{\"type\":\"lowercase\"},{\"type\":\"validate_email\",\"on_invalid\":\"null\"},"
    "{\"type\":\"default\",\"value\":\"x\"}]",
    "[{\"type\":\"collapse_whitespace\"},{\"type\":\"replace\",\"find\":\"a\",\"replace\":\"bb\"},"
    "{\"type\":\"uppercase\"}]",
    "[{\"type\":\"parse_number\",\"decimal_separator\":\",\",\"on_invalid\":\"keep\"}]",
    "[{\"type\":\"parse_date\",\"format\":\"DD/MM/YYYY HH:mm\",\"on_invalid\":\"skip\"}]",
    "[{\"type\":\"normalize_phone\",\"default_country\":\"GB\",\"on_invalid\":\"keep\"}]",
};
static const char *const types[] = {"text", "integer", "number", "boolean", "date", "timestamp"};

static imp_plan_t *make_plan(imp_reader_t *r)
{
    size_t n;
    const imp_cell_t *h = imp_reader_header(r, &n);
    if (n == 0)
        return NULL;
    json_t *cfg = imp_propose_config(h, n, NULL);
    if (!cfg)
        return NULL;
    json_t *cols = json_object_get(cfg, "columns");
    for (size_t i = 0; i < json_array_size(cols); i++) {
        json_t *c = json_array_get(cols, i);
        json_object_set_new(c, "type", json_string(types[i % 6]));
        json_object_set_new(c, "on_invalid", json_string(i % 2 ? "null" : "skip"));
        json_object_set_new(c, "cleaning_rules", json_loads(rule_sets[i % 6], 0, NULL));
    }
    json_t *f = json_pack("[{s:s%, s:s, s:s}]", "column", h[0].data, h[0].len, "operator",
                          "is_not_empty", "action", "include");
    json_object_set_new(cfg, "row_filters", f);
    imp_error_t err;
    imp_plan_t *p = imp_plan_compile(cfg, h, n, &err);
    json_decref(cfg);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    imp_parse_opts_t o;
    imp_parse_opts_init(&o);
    static const char delims[] = {0, ',', ';', '\t', '|'};
    o.encoding = (imp_encoding_t)(data[0] % 6);
    o.delimiter = delims[(data[0] >> 3) % 5];
    o.has_header = !(data[0] & 0x80);
    o.max_field_bytes = 4096;
    imp_error_t err;
    imp_reader_t *r = imp_reader_open_mem(data + 1, size - 1, IMP_FORMAT_CSV, &o, &err);
    if (!r)
        return 0;
    imp_plan_t *plan = make_plan(r);
    cd_buf_t out;
    cd_buf_init(&out, 1 << 20);
    imp_row_t row;
    imp_result_t res;
    while (imp_reader_next(r, &row, &err) == 1) {
        if (row.ncells > IMP_DEFAULT_MAX_COLUMNS)
            abort();
        for (size_t i = 0; i < row.ncells; i++) {
            if (row.cells[i].len > 4096 || memchr(row.cells[i].data, 0, row.cells[i].len))
                abort();
        }
        if (plan && imp_plan_apply(plan, &row, &res) && res.outcome == IMP_ROW_OK) {
            cd_buf_reset(&out);
            (void)imp_copy_append_row(&out, &res);
        }
    }
    cd_buf_free(&out);
    imp_plan_free(plan);
    imp_reader_close(r);
    return 0;
}
