/*
 * CSV files for imports: libcsv does RFC 4180 (quoted fields, doubled
 * quotes, embedded newlines, CRLF/LF/CR); this file adds what real exports
 * need around it: the encoding (BOM, UTF-16 through iconv, Windows-1252 /
 * Latin-1, detection), delimiter detection, line numbers, the per-field cap,
 * and the pull interface (libcsv pushes through callbacks; we feed it one
 * line at a time and stop as soon as a row is complete).
 */
#include "importer/parse_internal.h"

#include <csv.h>
#include <errno.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>

#define CSV_CHUNK   (64u * 1024u)
#define SNIFF_LINES 50

typedef struct csv_state {
    imp_reader_t *r;
    FILE *f;
    struct csv_parser p;
    bool p_ready;
    imp_encoding_t enc;
    bool enc_detected; /* the encoding was guessed, not given */
    iconv_t cd;

    unsigned char *raw; /* undecoded bytes (not UTF-8 input only) */
    size_t raw_len;     /* bytes carried over (an incomplete UTF-16 unit) */
    char *dec;          /* decoded UTF-8 */
    size_t dec_len, dec_pos, dec_cap;
    bool eof;      /* the file is exhausted */
    bool finished; /* csv_fini was called */

    long long cur_line;  /* 1-based line at dec_pos */
    bool last_cr;        /* the previous character was CR */
    long long row_start; /* line where the row being parsed started, 0 if none */
    long long row_line;  /* line of the row just completed */
    bool row_done;
    bool failed;
    imp_error_t *err;
} csv_state_t;

/* Windows-1252's 0x80–0x9F; the five bytes it leaves undefined read as the
 * Latin-1 control characters, as browsers do. A table rather than iconv
 * because glibc's CP1252 rejects those five bytes, and it is faster. */
static const uint16_t cp1252_high[32] = {
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
    0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
    0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

static int no_space(unsigned char c)
{
    (void)c;
    return 0; /* keep every byte of a field: trimming is a cleaning rule */
}

static void on_field(void *s, size_t len, void *data)
{
    csv_state_t *st = data;
    if (st->failed)
        return;
    long long line = st->row_start ? st->row_start : st->cur_line;
    if (st->enc == IMP_ENC_UTF8 && parse__utf8_valid_prefix((const unsigned char *)s, len) != len) {
        st->failed = true;
        if (memchr(s, 0, len))
            parse__error(st->err, IMP_ERR_ENCODING, line,
                         "the file contains NUL bytes: it is not a text file, or it is "
                         "UTF-16 without a byte order mark");
        else
            parse__error(st->err, IMP_ERR_ENCODING, line,
                         "the text is not valid UTF-8%s; set the source's encoding "
                         "(e.g. windows-1252)",
                         st->enc_detected ? " although the start of the file was" : "");
        return;
    }
    if (!parse__field_add(st->r, s ? s : "", s ? len : 0, line, st->err))
        st->failed = true;
}

static void on_row(int c, void *data)
{
    (void)c;
    csv_state_t *st = data;
    st->row_done = true;
    st->row_line = st->row_start ? st->row_start : st->cur_line;
    st->row_start = 0;
}

static bool dec_reserve(csv_state_t *st, size_t extra)
{
    /* always allocated, even for an empty file: callers do pointer arithmetic on it */
    if (st->dec && st->dec_len + extra <= st->dec_cap)
        return true;
    size_t cap = st->dec_cap ? st->dec_cap : CSV_CHUNK;
    while (cap < st->dec_len + extra)
        cap *= 2;
    char *p = realloc(st->dec, cap);
    if (!p)
        return false;
    st->dec = p;
    st->dec_cap = cap;
    return true;
}

/* Decodes raw[0..n) of a single-byte encoding to UTF-8 at the end of dec. */
static bool decode_single(csv_state_t *st, const unsigned char *in, size_t n)
{
    if (!dec_reserve(st, n * 3))
        return false;
    char *o = st->dec + st->dec_len;
    for (size_t i = 0; i < n; i++) {
        unsigned c = in[i];
        if (c < 0x80) {
            if (c == 0) {
                parse__error(st->err, IMP_ERR_ENCODING, st->cur_line,
                             "the file contains NUL bytes: it is not a text file");
                st->failed = true;
                return true;
            }
            *o++ = (char)c;
            continue;
        }
        unsigned cp = c;
        if (st->enc == IMP_ENC_CP1252 && c < 0xA0)
            cp = cp1252_high[c - 0x80];
        if (cp < 0x800) {
            *o++ = (char)(0xC0 | (cp >> 6));
            *o++ = (char)(0x80 | (cp & 0x3F));
        } else {
            *o++ = (char)(0xE0 | (cp >> 12));
            *o++ = (char)(0x80 | ((cp >> 6) & 0x3F));
            *o++ = (char)(0x80 | (cp & 0x3F));
        }
    }
    st->dec_len = (size_t)(o - st->dec);
    return true;
}

/* Decodes raw (UTF-16) through iconv, keeping an incomplete unit for later. */
static bool decode_utf16(csv_state_t *st)
{
    if (!dec_reserve(st, st->raw_len * 2 + 8))
        return false;
    char *in = (char *)st->raw;
    size_t inleft = st->raw_len;
    char *out = st->dec + st->dec_len;
    size_t outleft = st->dec_cap - st->dec_len;
    size_t rc = iconv(st->cd, &in, &inleft, &out, &outleft);
    st->dec_len = (size_t)(out - st->dec);
    if (rc == (size_t)-1 && errno == EILSEQ) {
        parse__error(st->err, IMP_ERR_ENCODING, st->cur_line,
                     "the text is not valid UTF-16; set the source's encoding");
        st->failed = true;
        return true;
    }
    /* EINVAL: an incomplete unit at the end, kept for the next read */
    memmove(st->raw, in, inleft);
    st->raw_len = inleft;
    if (memchr(st->dec, 0, st->dec_len)) {
        parse__error(st->err, IMP_ERR_ENCODING, st->cur_line, "the file contains NUL characters");
        st->failed = true;
    }
    return true;
}

/* Reads and decodes the next chunk, appending to dec. Returns false when out
 * of memory; sets eof at the end of the file. */
static bool fill(csv_state_t *st)
{
    if (st->dec_pos == st->dec_len) {
        st->dec_pos = st->dec_len = 0;
    } else if (st->dec_pos > 0) {
        memmove(st->dec, st->dec + st->dec_pos, st->dec_len - st->dec_pos);
        st->dec_len -= st->dec_pos;
        st->dec_pos = 0;
    }
    if (st->enc == IMP_ENC_UTF8) {
        if (!dec_reserve(st, CSV_CHUNK))
            return false;
        size_t n = fread(st->dec + st->dec_len, 1, CSV_CHUNK, st->f);
        st->dec_len += n;
        st->r->stats.bytes_read += n;
        if (n < CSV_CHUNK)
            st->eof = true;
        return true;
    }
    size_t n = fread(st->raw + st->raw_len, 1, CSV_CHUNK, st->f);
    st->r->stats.bytes_read += n;
    if (n < CSV_CHUNK)
        st->eof = true;
    if (st->enc == IMP_ENC_UTF16LE || st->enc == IMP_ENC_UTF16BE) {
        st->raw_len += n;
        if (!decode_utf16(st))
            return false;
        if (st->eof && st->raw_len && !st->failed) {
            parse__error(st->err, IMP_ERR_ENCODING, st->cur_line,
                         "the file ends in the middle of a UTF-16 character");
            st->failed = true;
        }
        return true;
    }
    return decode_single(st, st->raw, n);
}

/* Counts a delimiter candidate per line over the decoded head, outside quotes,
 * and scores it by how many lines share the most common non-zero count. */
static char sniff_delimiter(const char *s, size_t n, bool complete)
{
    static const char cands[] = {',', ';', '\t', '|'};
    int counts[sizeof(cands)][SNIFF_LINES];
    int lines = 0;
    memset(counts, 0, sizeof(counts));
    bool inq = false;
    size_t last_end = 0;
    int cur[sizeof(cands)] = {0};
    for (size_t i = 0; i < n && lines < SNIFF_LINES; i++) {
        char c = s[i];
        if (c == '"') {
            inq = !inq;
        } else if (!inq && (c == '\n' || c == '\r')) {
            if (i > last_end) {
                for (size_t k = 0; k < sizeof(cands); k++)
                    counts[k][lines] = cur[k];
                lines++;
            }
            memset(cur, 0, sizeof(cur));
            last_end = i + 1;
        } else if (!inq) {
            for (size_t k = 0; k < sizeof(cands); k++)
                cur[k] += c == cands[k];
        }
    }
    if (complete && lines < SNIFF_LINES && last_end < n) {
        for (size_t k = 0; k < sizeof(cands); k++)
            counts[k][lines] = cur[k];
        lines++;
    }
    char best = ',';
    int best_score = 0, best_mode = 0;
    for (size_t k = 0; k < sizeof(cands); k++) {
        for (int a = 0; a < lines; a++) {
            int v = counts[k][a];
            if (v == 0)
                continue;
            int score = 0;
            for (int b = 0; b < lines; b++)
                score += counts[k][b] == v;
            if (score > best_score || (score == best_score && v > best_mode)) {
                best = cands[k];
                best_score = score;
                best_mode = v;
            }
        }
    }
    return best;
}

/* Feeds dec to libcsv up to and including the next line terminator, or all
 * of it. */
static void feed_segment(csv_state_t *st)
{
    const char *s = st->dec + st->dec_pos;
    size_t n = st->dec_len - st->dec_pos;
    size_t k = 0;
    while (k < n && s[k] != '\n' && s[k] != '\r')
        k++;
    bool term = k < n;
    if (!st->row_start && k > 0)
        st->row_start = st->cur_line;
    size_t seg = term ? k + 1 : n;
    size_t done = csv_parse(&st->p, s, seg, on_field, on_row, st);
    if (done != seg && !st->failed) {
        parse__error(st->err, IMP_ERR_NOMEM, st->cur_line, "out of memory while parsing");
        st->failed = true;
    }
    st->dec_pos += seg;
    if (k > 0)
        st->last_cr = false;
    if (term) {
        if (s[k] == '\r') {
            st->cur_line++;
            st->last_cr = true;
        } else {
            if (!st->last_cr)
                st->cur_line++;
            st->last_cr = false;
        }
    }
    if (!st->failed && st->p.entry_pos > st->r->opts.max_field_bytes) {
        parse__error(st->err, IMP_ERR_TOO_BIG, st->row_start ? st->row_start : st->cur_line,
                     "a field is longer than the limit of %zu bytes", st->r->opts.max_field_bytes);
        st->failed = true;
    }
}

/* A completed row: a blank line is dropped. */
static int csv_row_ready(imp_reader_t *r, imp_error_t *err)
{
    (void)err;
    if (r->nfields == 1) {
        const char *s = r->store + r->field_off[0];
        size_t i = 0;
        while (i < r->field_len[0] && (s[i] == ' ' || s[i] == '\t'))
            i++;
        if (i == r->field_len[0]) {
            parse__row_reset(r);
            return 0;
        }
    }
    return 1;
}

/* Pushes the next piece of decoded text into libcsv, reading the file as
 * needed; at its end, finishes the last row. */
static int csv_feed(imp_reader_t *r, imp_error_t *err)
{
    csv_state_t *st = r->impl;
    if (st->dec_pos < st->dec_len) {
        feed_segment(st);
        return 1;
    }
    if (!st->eof) {
        if (!fill(st)) {
            parse__error(err, IMP_ERR_NOMEM, st->cur_line, "out of memory");
            return -1;
        }
        if (ferror(st->f)) {
            parse__error(err, IMP_ERR_IO, st->cur_line, "cannot read the file");
            return -1;
        }
        return 1;
    }
    if (st->finished)
        return 0;
    st->finished = true;
    long long start = st->row_start;
    /* libcsv's CSV_STRICT_FINI works only in strict mode, which would also
     * refuse the sloppy quoting real exports have: look at its state
     * (2 = FIELD_BEGUN) instead. */
    if ((st->p.quoted && st->p.pstate == 2) ||
        (csv_fini(&st->p, on_field, on_row, st) != 0 && !st->failed)) {
        parse__error(err, IMP_ERR_FORMAT, start, "a quoted field is never closed (a stray '\"'?)");
        return -1;
    }
    return 1;
}

static int csv_next(imp_reader_t *r, long long *line, imp_error_t *err)
{
    csv_state_t *st = r->impl;
    st->err = err;
    const parse__pull_t pull = {&st->failed, &st->row_done, &st->row_line, csv_row_ready, csv_feed};
    return parse__pull(r, &pull, line, err);
}

static void csv_close(void *impl)
{
    csv_state_t *st = impl;
    if (st->p_ready)
        csv_free(&st->p);
    if (st->cd != (iconv_t)-1)
        iconv_close(st->cd);
    if (st->f)
        fclose(st->f);
    free(st->raw);
    free(st->dec);
    free(st);
}

static const parse__ops_t csv_ops = {csv_next, csv_close};

/* The encoding of a file whose first n bytes are head: a byte order mark
 * (counted in *skip), the declared one, or detected. */
static imp_encoding_t head_encoding(const imp_reader_t *r, csv_state_t *st,
                                    const unsigned char *head, size_t n, bool head_is_all,
                                    size_t *skip)
{
    imp_encoding_t enc = r->opts.encoding;
    if (n >= 3 && head[0] == 0xEF && head[1] == 0xBB && head[2] == 0xBF) {
        *skip = 3;
        enc = IMP_ENC_UTF8; /* the byte order mark outweighs a declared encoding */
    } else if (n >= 2 && head[0] == 0xFF && head[1] == 0xFE &&
               (enc == IMP_ENC_DETECT || enc == IMP_ENC_UTF16LE)) {
        *skip = 2;
        enc = IMP_ENC_UTF16LE;
    } else if (n >= 2 && head[0] == 0xFE && head[1] == 0xFF &&
               (enc == IMP_ENC_DETECT || enc == IMP_ENC_UTF16BE)) {
        *skip = 2;
        enc = IMP_ENC_UTF16BE;
    }
    if (enc == IMP_ENC_DETECT) {
        st->enc_detected = true;
        size_t ok = parse__utf8_valid_prefix(head, n);
        /* a character cut by the end of the head is still UTF-8 */
        bool cut = !head_is_all && n - ok < 4 && (head[ok] & 0xC0) == 0xC0;
        enc = ok == n || cut ? IMP_ENC_UTF8 : IMP_ENC_CP1252;
        /* NUL bytes in a file detected as UTF-8 are reported by on_field */
        if (ok < n && head[ok] == 0)
            enc = IMP_ENC_UTF8;
    }
    return enc;
}

/* Decodes the head (after its byte order mark) as fill() would have;
 * false when out of memory. */
static bool decode_head(csv_state_t *st, imp_encoding_t enc, const unsigned char *head, size_t n,
                        size_t skip)
{
    if (enc == IMP_ENC_UTF8) {
        if (!dec_reserve(st, n - skip + 1))
            return false;
        memcpy(st->dec, head + skip, n - skip);
        st->dec_len = n - skip;
    } else if (enc == IMP_ENC_UTF16LE || enc == IMP_ENC_UTF16BE) {
        memcpy(st->raw, head + skip, n - skip);
        st->raw_len = n - skip;
        if (!decode_utf16(st))
            return false;
    } else if (!decode_single(st, head + skip, n - skip))
        return false;
    return true;
}

bool parse__csv_open(imp_reader_t *r, FILE *f, uint64_t size, imp_error_t *err)
{
    (void)size;
    csv_state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        fclose(f);
        goto nomem;
    }
    st->r = r;
    st->f = f;
    st->cd = (iconv_t)-1;
    st->cur_line = 1;
    st->err = err;
    r->impl = st;
    r->ops = &csv_ops;

    /* The head decides the encoding and the delimiter. */
    unsigned char *head = malloc(CSV_CHUNK + 4);
    if (!head)
        goto nomem;
    size_t n = fread(head, 1, CSV_CHUNK, f);
    if (ferror(f)) { /* a short read is the end only without an error */
        free(head);
        parse__error(err, IMP_ERR_IO, 0, "cannot read the file");
        return false;
    }
    r->stats.bytes_read = n;
    bool head_is_all = n < CSV_CHUNK;
    size_t skip = 0;
    imp_encoding_t enc = head_encoding(r, st, head, n, head_is_all, &skip);
    st->enc = enc;
    r->stats.encoding = enc;
    if (enc == IMP_ENC_UTF16LE || enc == IMP_ENC_UTF16BE) {
        st->cd = iconv_open("UTF-8", enc == IMP_ENC_UTF16LE ? "UTF-16LE" : "UTF-16BE");
        if (st->cd == (iconv_t)-1) {
            free(head);
            parse__error(err, IMP_ERR_OPTION, 0, "UTF-16 is not supported on this system");
            return false;
        }
    }
    if (enc != IMP_ENC_UTF8) {
        st->raw = malloc(CSV_CHUNK + 8);
        if (!st->raw) {
            free(head);
            goto nomem;
        }
    }
    if (!decode_head(st, enc, head, n, skip)) {
        free(head);
        goto nomem;
    }
    free(head);
    st->eof = head_is_all;
    if (!st->failed && st->eof && st->raw_len) {
        parse__error(err, IMP_ERR_ENCODING, 0, "the file ends in the middle of a UTF-16 character");
        st->failed = true;
    }
    if (st->failed)
        return false;

    if (csv_init(&st->p, 0) != 0)
        goto nomem;
    st->p_ready = true;
    csv_set_space_func(&st->p, no_space);
    /* libcsv grows a field's buffer by blk_size bytes at a time (128 by
     * default): a 1 MiB field would take 8192 reallocations, each copying the
     * field so far, before max_field_bytes stops it (minutes under ASan). */
    csv_set_blk_size(&st->p, 64 * 1024);
    char delim = r->opts.delimiter;
    if (!delim)
        delim = sniff_delimiter(st->dec, st->dec_len, st->eof);
    csv_set_delim(&st->p, (unsigned char)delim);
    r->stats.delimiter = delim;
    return true;
nomem:
    parse__error(err, IMP_ERR_NOMEM, 0, "out of memory");
    return false;
}
