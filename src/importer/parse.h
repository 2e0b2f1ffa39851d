/*
 * Reading import files: CSV (libcsv), XLSX (libzip + expat) and legacy XLS
 * (libfreexl), one row at a time. Pure C: no database, no HTTP. The caller
 * (the sync job of src/importer/) downloads URL sources to a temporary file
 * or reads the storage object from disk, opens it here, and pulls rows until
 * the end, a cancel, or an error; nothing ever holds the whole file (or, for
 * XLSX, the whole sheet XML) in memory.
 *
 * Every cell comes out as UTF-8 text, whatever the file's encoding or cell
 * type:
 *   - CSV: transcoded from the file's encoding (UTF-8 with or without BOM,
 *     UTF-16 LE/BE with BOM, Windows-1252, Latin-1) to UTF-8;
 *   - XLSX/XLS numbers: the shortest decimal text that reads back as the same
 *     double ("12", "0.1", "1e+21"); booleans: "true" / "false";
 *   - XLSX/XLS cells whose number format is a date: "YYYY-MM-DD", or
 *     "YYYY-MM-DD HH:MM:SS" when the value has a time of day (1900 system with
 *     the Lotus leap-year bug, or the 1904 system, as the workbook says);
 *   - empty cells: length 0.
 * Cells never contain NUL bytes (a NUL in a CSV is an encoding error).
 *
 * Thread safety: a reader belongs to one thread at a time; different readers
 * are independent.
 */
#ifndef CD_IMPORTER_PARSE_H
#define CD_IMPORTER_PARSE_H

#include <stdint.h>
#include <stdio.h>

#include "core/common.h"

/* Longest single cell a reader accepts, by default (1 MiB). A 10 MB field is
 * an error (IMP_ERR_TOO_BIG) that names its line, not a 10 MB allocation. */
#define IMP_DEFAULT_MAX_FIELD_BYTES (1u << 20)
/* Most cells in one row, by default. */
#define IMP_DEFAULT_MAX_COLUMNS 1024u
/* XLSX: most uncompressed bytes read from any one part of the archive
 * (sheet, shared strings, styles), by default 1 GiB, and the largest
 * uncompressed/compressed ratio accepted for a part (zip-bomb defences). */
#define IMP_DEFAULT_MAX_XLSX_PART_BYTES (1ull << 30)
#define IMP_MAX_XLSX_RATIO              200u

typedef enum imp_format {
    IMP_FORMAT_DETECT = 0, /* by content: zip magic = XLSX, OLE2 magic = XLS, else CSV */
    IMP_FORMAT_CSV,
    IMP_FORMAT_XLSX,
    IMP_FORMAT_XLS,
} imp_format_t;

typedef enum imp_encoding {
    IMP_ENC_DETECT = 0, /* BOM if any; else UTF-8 if the head is valid UTF-8; else Windows-1252 */
    IMP_ENC_UTF8,
    IMP_ENC_UTF16LE,
    IMP_ENC_UTF16BE,
    IMP_ENC_CP1252,
    IMP_ENC_LATIN1,
} imp_encoding_t;

typedef enum imp_errcode {
    IMP_OK = 0,
    IMP_ERR_IO,       /* cannot open or read the file */
    IMP_ERR_FORMAT,   /* not a readable CSV/XLSX/XLS (broken zip, bad XML, binary garbage) */
    IMP_ERR_ENCODING, /* bytes that are not valid in the declared/detected encoding */
    IMP_ERR_TOO_BIG,  /* a field, a row, or an XLSX part over its limit (zip bomb) */
    IMP_ERR_NO_SHEET, /* the named sheet is not in the workbook */
    IMP_ERR_OPTION,   /* a bad option (unknown encoding name, delimiter, ...) */
    IMP_ERR_CONFIG,   /* clean.h: a column_config the plan cannot be compiled from */
    IMP_ERR_NOMEM,
} imp_errcode_t;

/* An error a marketer can act on: message is a full sentence, e.g.
 * "line 1234: a field is longer than 1048576 bytes". line is the 1-based
 * source line (CSV) or row (XLSX/XLS) it concerns, 0 when none. */
typedef struct imp_error {
    imp_errcode_t code;
    long long line;
    char message[256];
} imp_error_t;

typedef struct imp_parse_opts {
    imp_encoding_t encoding; /* CSV only; IMP_ENC_DETECT by default */
    char delimiter;          /* CSV only; 0 = detect among , ; TAB | (default) */
    const char *sheet;       /* XLSX/XLS: sheet name; NULL = the first sheet */
    bool has_header;         /* first row names the columns (default true) */
    size_t max_field_bytes;  /* 0 = IMP_DEFAULT_MAX_FIELD_BYTES */
    size_t max_columns;      /* 0 = IMP_DEFAULT_MAX_COLUMNS */
    uint64_t max_part_bytes; /* XLSX; 0 = IMP_DEFAULT_MAX_XLSX_PART_BYTES */
} imp_parse_opts_t;

/* One cell: data points at len bytes of UTF-8 (NUL-terminated as a courtesy,
 * the NUL not counted). Borrowed from the reader. */
typedef struct imp_cell {
    const char *data;
    size_t len;
} imp_cell_t;

/* One row as imp_reader_next gives it. cells and their bytes belong to the
 * reader and stay valid until the next imp_reader_next or imp_reader_close. */
typedef struct imp_row {
    const imp_cell_t *cells;
    size_t ncells;  /* may differ from the header's width: see ragged */
    long long line; /* 1-based source line where the row starts (CSV: a quoted
                       field with newlines spans several lines) or sheet row */
    bool ragged;    /* ncells != header width (reported, not fatal: missing
                       cells read as empty, extra cells are ignored by clean.h) */
} imp_row_t;

/* What a reader has done so far, for progress and warnings. */
typedef struct imp_reader_stats {
    imp_format_t format;     /* the format actually read */
    imp_encoding_t encoding; /* CSV: the encoding used (detected or given) */
    char delimiter;          /* CSV: the delimiter used (detected or given) */
    uint64_t bytes_read;     /* bytes of the file consumed so far (XLSX: of the
                                uncompressed sheet XML) */
    uint64_t bytes_total;    /* the file's size (XLSX: the sheet's uncompressed size) */
    long long rows;          /* data rows returned so far (header not counted) */
    long long ragged_rows;   /* of which ragged */
} imp_reader_stats_t;

typedef struct imp_reader imp_reader_t;

/* Fills o with the defaults (detect everything, has_header = true). */
void imp_parse_opts_init(imp_parse_opts_t *o);

/* Maps a config.encoding name to an encoding, case-insensitively: "utf-8",
 * "utf8", "utf-16" (then the BOM decides LE/BE), "utf-16le", "utf-16be",
 * "windows-1252", "cp1252", "latin1", "latin-1", "iso-8859-1", "auto".
 * Returns false for any other name. */
CD_MUSTCHECK bool imp_encoding_from_name(const char *name, imp_encoding_t *out);
/* "utf-8", "utf-16le", "utf-16be", "windows-1252", "iso-8859-1", "auto". */
const char *imp_encoding_name(imp_encoding_t enc);
/* "csv", "xlsx", "xls", "auto". */
const char *imp_format_name(imp_format_t fmt);

/* Opens the file at path and reads up to the end of the header row (so that
 * imp_reader_header answers at once); the first data row is returned by the
 * first imp_reader_next. With has_header = false the columns are named
 * "column_1" … "column_N" from the width of the first row. An empty file (or
 * one with a header and no rows) opens fine and yields no rows.
 * Returns NULL and fills err on failure. The caller frees the reader with
 * imp_reader_close. o may be NULL for the defaults. */
imp_reader_t *imp_reader_open(const char *path, imp_format_t fmt, const imp_parse_opts_t *o,
                              imp_error_t *err);

/* The same from memory (CSV and XLSX only; XLS answers IMP_ERR_FORMAT since
 * libfreexl reads files only). data must outlive the reader. For the fuzz
 * targets and unit tests. */
imp_reader_t *imp_reader_open_mem(const void *data, size_t len, imp_format_t fmt,
                                  const imp_parse_opts_t *o, imp_error_t *err);

/* A CSV reader over a stream the caller opened (the database connectors'
 * fopencookie streams, src/importer/dbconn.h). Takes f, even on failure:
 * imp_reader_close closes it. A read error of f is IMP_ERR_IO. */
imp_reader_t *imp_reader_open_stream(FILE *f, const imp_parse_opts_t *o, imp_error_t *err);

/* Pulls the next data row into *row. Returns 1 for a row, 0 at the end of the
 * data, -1 on an error (err filled, with its line; the reader cannot go on).
 * Fully blank CSV lines are skipped (they carry no record); the row's line
 * number still counts them. */
CD_MUSTCHECK int imp_reader_next(imp_reader_t *r, imp_row_t *row, imp_error_t *err);

/* The header's cells (source column names, trimmed of surrounding
 * whitespace and the BOM), valid until imp_reader_close. *n receives the count. */
const imp_cell_t *imp_reader_header(const imp_reader_t *r, size_t *n);

/* Progress and counters so far. */
void imp_reader_stats(const imp_reader_t *r, imp_reader_stats_t *out);

/* Closes the file and frees everything the reader owns. NULL is fine. */
void imp_reader_close(imp_reader_t *r);

#endif
