/*
 * What the three file readers (parse_csv.c, parse_xlsx.c, parse_xls.c) share
 * with parse.c: the reader object, its row store, and the hooks each format
 * fills in. Not for use outside src/importer/parse*.c.
 */
#ifndef CD_IMPORTER_PARSE_INTERNAL_H
#define CD_IMPORTER_PARSE_INTERNAL_H

#include <stdarg.h>
#include <stdio.h>

#include "importer/parse.h"

typedef struct parse__ops {
    /* Reads the next raw row into the reader's row store (parse__field_add).
     * Sets *line to the row's source line. Returns 1, 0 at the end, -1 with
     * err filled. */
    int (*next)(imp_reader_t *r, long long *line, imp_error_t *err);
    /* Frees the format's state; imp_reader_close calls it only when impl is set. */
    void (*close)(void *impl);
} parse__ops_t;

struct imp_reader {
    imp_format_t format;
    imp_parse_opts_t opts; /* opts.sheet is owned (strdup'd) */
    const parse__ops_t *ops;
    void *impl;

    /* The row being built: field bytes back to back, each NUL-terminated. */
    char *store;
    size_t store_len, store_cap, store_max;
    size_t *field_off, *field_len;
    size_t nfields, fields_cap;
    imp_cell_t *cells;
    size_t cells_cap;

    /* The header, owned. */
    imp_cell_t *header;
    size_t nheader;
    char *header_store;

    /* has_header = false: the first data row, already read at open. */
    bool pending;
    long long pending_line;

    imp_reader_stats_t stats;
};

/* Forgets the row being built. */
void parse__row_reset(imp_reader_t *r);
/* Appends one field to the row being built. False (err filled, IMP_ERR_TOO_BIG)
 * past max_field_bytes, max_columns or the row store's maximum. */
CD_MUSTCHECK bool parse__field_add(imp_reader_t *r, const char *data, size_t len, long long line,
                                   imp_error_t *err);
/* Appends empty fields until the row has n fields (XLSX gaps). */
CD_MUSTCHECK bool parse__field_pad(imp_reader_t *r, size_t n, long long line, imp_error_t *err);
/* Fills err. */
void parse__error(imp_error_t *err, imp_errcode_t code, long long line, const char *fmt, ...)
    CD_PRINTF(4, 5);
/* The pull loop of the push parsers (libcsv for CSV, expat for XLSX): their
 * callbacks complete a row (*row_done, at *row_line) or fail (*failed) while
 * feed() pushes input into them. */
typedef struct parse__pull {
    bool *failed, *row_done;
    const long long *row_line;
    /* A completed row: 1 hands it out, 0 drops it (reading on), -1 error. */
    int (*row_ready)(imp_reader_t *r, imp_error_t *err);
    /* Pushes more input: 1 read on, 0 the end of the input, -1 error. */
    int (*feed)(imp_reader_t *r, imp_error_t *err);
} parse__pull_t;
/* Pulls the next row through p: parse__ops_t.next of a push parser. */
int parse__pull(imp_reader_t *r, const parse__pull_t *p, long long *line, imp_error_t *err);
/* Length of the longest valid UTF-8 prefix of s[0..len) without NUL bytes. */
size_t parse__utf8_valid_prefix(const unsigned char *s, size_t len);

/* Per-format openers: fill r->impl and r->ops, or fill err and return false. */
CD_MUSTCHECK bool parse__csv_open(imp_reader_t *r, FILE *f, uint64_t size, imp_error_t *err);
CD_MUSTCHECK bool parse__xlsx_open(imp_reader_t *r, const char *path, const void *data, size_t len,
                                   imp_error_t *err);
CD_MUSTCHECK bool parse__xls_open(imp_reader_t *r, const char *path, imp_error_t *err);

#endif
