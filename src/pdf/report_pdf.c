/*
 * Renders a report document (report_pdf.h) as an A4 PDF with cairo's PDF
 * surface, text laid out by pango (DejaVu Sans through fontconfig; scripts
 * the font lacks, such as CJK, fall back to any installed font that has them,
 * else pango's hex boxes). Text is always set with pango_layout_set_text, so
 * names are never parsed as markup. Tables break across pages with their
 * header repeated; the output is written into a bounded buffer.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cairo-pdf.h>
#include <cairo.h>
#include <pango/pangocairo.h>

#include "pdf/report_pdf.h"

#define A4_SHORT   595.276 /* points */
#define A4_LONG    841.890
#define MARGIN     40.0
#define FOOTER_H   18.0
#define GAP        12.0
#define CELL_PAD   3.0
#define CHART_H    170.0
#define FONT       "DejaVu Sans"
#define MAX_XLABEL 8 /* x-axis labels drawn at most */

typedef struct page_ctx {
    cairo_t *cr;
    cairo_surface_t *surface;
    PangoContext *pc;
    const rpdf_doc_t *doc;
    double width, height, y;
    int pages, max_pages;
    bool overflow;
    rpdf_stats_t stats;
} page_ctx_t;

typedef struct sink {
    cd_buf_t *out;
    bool full;
} sink_t;

static cairo_status_t sink_write(void *closure, const unsigned char *data, unsigned int length)
{
    sink_t *s = closure;
    if (!cd_buf_add(s->out, data, length)) {
        s->full = true;
        return CAIRO_STATUS_WRITE_ERROR;
    }
    return CAIRO_STATUS_SUCCESS;
}

/* ------------------------------------------------------------------ text */

enum { ALIGN_LEFT, ALIGN_RIGHT, ALIGN_CENTER };

/* A layout of s (made valid UTF-8, '_' as spaces when spaced) in `size`
 * points, `width` wide (<= 0: unbounded), one ellipsized line or wrapped.
 * The caller unrefs it. */
static PangoLayout *make_text(page_ctx_t *p, const char *s, double size, bool bold, double width,
                              bool wrap, bool spaced)
{
    PangoLayout *l = pango_layout_new(p->pc);
    char *valid = g_utf8_make_valid(s ? s : "", -1);
    for (char *c = valid; spaced && *c; c++)
        if (*c == '_')
            *c = ' ';
    PangoFontDescription *fd = pango_font_description_new();
    pango_font_description_set_family(fd, FONT);
    pango_font_description_set_absolute_size(fd, size * PANGO_SCALE);
    pango_font_description_set_weight(fd, bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
    pango_layout_set_font_description(l, fd);
    pango_font_description_free(fd);
    if (width > 0) {
        pango_layout_set_width(l, (int)(width * PANGO_SCALE));
        if (wrap)
            pango_layout_set_wrap(l, PANGO_WRAP_WORD_CHAR);
        else
            pango_layout_set_ellipsize(l, PANGO_ELLIPSIZE_END);
    }
    pango_layout_set_single_paragraph_mode(l, !wrap);
    pango_layout_set_text(l, valid, -1);
    g_free(valid);
    return l;
}

static double layout_height(PangoLayout *l)
{
    int w, h;
    pango_layout_get_size(l, &w, &h);
    return (double)h / PANGO_SCALE;
}

static double layout_width(PangoLayout *l)
{
    int w, h;
    pango_layout_get_size(l, &w, &h);
    return (double)w / PANGO_SCALE;
}

/* Draws a layout at (x, y) in a box `width` wide with the alignment. */
static void draw_layout(page_ctx_t *p, PangoLayout *l, double x, double y, double width, int align)
{
    double w = layout_width(l);
    if (align == ALIGN_RIGHT && width > w)
        x += width - w;
    else if (align == ALIGN_CENTER && width > w)
        x += (width - w) / 2;
    cairo_move_to(p->cr, x, y);
    pango_cairo_show_layout(p->cr, l);
}

/* Draws one piece of text and returns its height. */
static double draw_text(page_ctx_t *p, const char *s, double x, double y, double size, bool bold,
                        double width, int align)
{
    PangoLayout *l = make_text(p, s, size, bold, width, false, false);
    draw_layout(p, l, x, y, width, align);
    double h = layout_height(l);
    g_object_unref(l);
    return h;
}

/* ----------------------------------------------------------------- pages */

static void draw_footer(page_ctx_t *p)
{
    char label[32];
    snprintf(label, sizeof(label), "Page %d", p->pages);
    cairo_set_source_rgb(p->cr, 0.4, 0.4, 0.4);
    double y = p->height - MARGIN + 4;
    draw_text(p, p->doc->title, MARGIN, y, 7, false, (p->width - 2 * MARGIN) * 0.75, ALIGN_LEFT);
    draw_text(p, label, MARGIN, y, 7, false, p->width - 2 * MARGIN, ALIGN_RIGHT);
    cairo_set_source_rgb(p->cr, 0, 0, 0);
}

/* Ends the current page (if any) and starts the next one. False once the
 * page limit is reached: nothing more is drawn then. */
static bool new_page(page_ctx_t *p)
{
    if (p->overflow)
        return false;
    if (p->pages >= p->max_pages) {
        p->overflow = true;
        return false;
    }
    if (p->pages > 0)
        cairo_show_page(p->cr);
    p->pages++;
    p->y = MARGIN;
    draw_footer(p);
    return true;
}

/* Whether `need` points fit below y on this page; otherwise a new page. */
static bool ensure_room(page_ctx_t *p, double need)
{
    if (p->y + need <= p->height - MARGIN - FOOTER_H)
        return !p->overflow;
    return new_page(p);
}

/* ------------------------------------------------------------- sections */

static void draw_heading(page_ctx_t *p)
{
    const rpdf_doc_t *d = p->doc;
    double w = p->width - 2 * MARGIN;
    PangoLayout *l = make_text(p, d->title, 18, true, w, true, false);
    draw_layout(p, l, MARGIN, p->y, w, ALIGN_LEFT);
    p->y += layout_height(l) + 4;
    g_object_unref(l);
    if (d->subtitle) {
        cairo_set_source_rgb(p->cr, 0.3, 0.3, 0.3);
        p->y += draw_text(p, d->subtitle, MARGIN, p->y, 11, false, w, ALIGN_LEFT) + 4;
        cairo_set_source_rgb(p->cr, 0, 0, 0);
    }
    p->y += 4;
    for (size_t i = 0; i < d->nparams; i++) {
        const char *v = d->param_values[i] ? d->param_values[i] : "\u2014";
        double h = draw_text(p, d->param_names[i], MARGIN, p->y, 9, true, 110, ALIGN_LEFT);
        double h2 = draw_text(p, v, MARGIN + 115, p->y, 9, false, w - 115, ALIGN_LEFT);
        p->y += (h > h2 ? h : h2) + 2;
    }
    p->y += GAP;
}

static double caption(page_ctx_t *p, const char *text, bool measure_only)
{
    PangoLayout *l = make_text(p, text, 12, true, p->width - 2 * MARGIN, false, false);
    double h = layout_height(l) + 4;
    if (!measure_only)
        draw_layout(p, l, MARGIN, p->y, p->width - 2 * MARGIN, ALIGN_LEFT);
    g_object_unref(l);
    return h;
}

/* Whether every non-empty cell of column c is a number (right-aligned). */
static bool column_is_numeric(const rpdf_table_t *t, size_t c)
{
    for (size_t r = 0; r < t->nrows; r++) {
        const char *s = t->cells[r * t->ncols + c];
        if (!s || !*s)
            continue;
        char *end;
        (void)strtod(s, &end);
        if (*end)
            return false;
    }
    return true;
}

/* Column widths: proportional to the longest text of each column (in
 * characters, cheap and good enough for numbers and dates), between a floor
 * and the page width. */
static void column_widths(const rpdf_table_t *t, double avail, double *widths)
{
    double total = 0;
    for (size_t c = 0; c < t->ncols; c++) {
        size_t longest = 4;
        const char *h = t->head[c] ? t->head[c] : "";
        /* a header wraps at spaces: its longest word counts */
        for (const char *w = h; *w;) {
            size_t n = strcspn(w, " _");
            longest = n > longest ? n : longest;
            w += n + (w[n] ? 1 : 0);
        }
        for (size_t r = 0; r < t->nrows; r++) {
            const char *s = t->cells[r * t->ncols + c];
            size_t n = s ? (size_t)g_utf8_strlen(s, 200) : 0;
            longest = n > longest ? n : longest;
        }
        widths[c] = (double)(longest > 40 ? 40 : longest);
        total += widths[c];
    }
    for (size_t c = 0; c < t->ncols; c++)
        widths[c] = widths[c] * avail / total;
}

static double table_font(const rpdf_table_t *t)
{
    return t->ncols > RPDF_PORTRAIT_MAX_COLS ? 6.5 : 8.0;
}

/* Draws the header row at y and returns its height. */
static double draw_table_head(page_ctx_t *p, const rpdf_table_t *t, const double *widths,
                              const bool *numeric, bool measure_only)
{
    double size = table_font(t), h = 0, x = MARGIN;
    for (size_t c = 0; c < t->ncols; c++) {
        PangoLayout *l = make_text(p, t->head[c], size, true, widths[c] - 2 * CELL_PAD, true, true);
        double lh = layout_height(l);
        h = lh > h ? lh : h;
        g_object_unref(l);
    }
    h += 2 * CELL_PAD;
    if (measure_only)
        return h;
    cairo_set_source_rgb(p->cr, 0.85, 0.88, 0.93);
    cairo_rectangle(p->cr, MARGIN, p->y, p->width - 2 * MARGIN, h);
    cairo_fill(p->cr);
    cairo_set_source_rgb(p->cr, 0, 0, 0);
    for (size_t c = 0; c < t->ncols; c++) {
        PangoLayout *l = make_text(p, t->head[c], size, true, widths[c] - 2 * CELL_PAD, true, true);
        pango_layout_set_alignment(l, numeric[c] ? PANGO_ALIGN_RIGHT : PANGO_ALIGN_LEFT);
        cairo_move_to(p->cr, x + CELL_PAD, p->y + CELL_PAD);
        pango_cairo_show_layout(p->cr, l);
        g_object_unref(l);
        x += widths[c];
    }
    return h;
}

static void draw_table_row(page_ctx_t *p, const rpdf_table_t *t, size_t r, const double *widths,
                           const bool *numeric, double row_h)
{
    if (r % 2 == 1) {
        cairo_set_source_rgb(p->cr, 0.96, 0.96, 0.96);
        cairo_rectangle(p->cr, MARGIN, p->y, p->width - 2 * MARGIN, row_h);
        cairo_fill(p->cr);
        cairo_set_source_rgb(p->cr, 0, 0, 0);
    }
    double x = MARGIN;
    for (size_t c = 0; c < t->ncols; c++) {
        const char *s = t->cells[r * t->ncols + c];
        draw_text(p, s ? s : "", x + CELL_PAD, p->y + CELL_PAD, table_font(t), false,
                  widths[c] - 2 * CELL_PAD, numeric[c] ? ALIGN_RIGHT : ALIGN_LEFT);
        x += widths[c];
    }
    p->y += row_h;
    p->stats.rows_drawn++;
}

/* A table with its caption; rows continue on the next page under a
 * repeated header. A caption never ends a page without its first row. */
static void draw_table(page_ctx_t *p, const rpdf_table_t *t)
{
    if (t->ncols == 0 || p->overflow)
        return;
    double avail = p->width - 2 * MARGIN;
    double *widths = g_new(double, t->ncols);
    bool *numeric = g_new(bool, t->ncols);
    column_widths(t, avail, widths);
    for (size_t c = 0; c < t->ncols; c++)
        numeric[c] = t->nrows > 0 && column_is_numeric(t, c);
    PangoLayout *probe = make_text(p, "0", table_font(t), false, 0, false, false);
    double row_h = layout_height(probe) + 2 * CELL_PAD;
    g_object_unref(probe);
    double head_h = draw_table_head(p, t, widths, numeric, true);
    double cap_h = t->caption ? caption(p, t->caption, true) : 0;
    if (ensure_room(p, cap_h + head_h + row_h)) {
        if (t->caption)
            p->y += caption(p, t->caption, false);
        p->y += draw_table_head(p, t, widths, numeric, false);
        if (t->nrows == 0)
            p->y += draw_text(p, "No rows in this report.", MARGIN + CELL_PAD, p->y + CELL_PAD,
                              table_font(t), false, avail, ALIGN_LEFT) +
                    2 * CELL_PAD;
        for (size_t r = 0; r < t->nrows && !p->overflow; r++) {
            if (p->y + row_h > p->height - MARGIN - FOOTER_H) {
                if (!new_page(p))
                    break;
                p->stats.table_page_breaks++;
                p->y += draw_table_head(p, t, widths, numeric, false);
            }
            draw_table_row(p, t, r, widths, numeric, row_h);
        }
        p->y += GAP;
    }
    g_free(widths);
    g_free(numeric);
}

/* ----------------------------------------------------------------- chart */

static const double series_rgb[RPDF_MAX_SERIES][3] = {
    {0.16, 0.38, 0.71}, {0.90, 0.49, 0.13}, {0.20, 0.60, 0.30}, {0.60, 0.25, 0.60}};

/* The smallest 1, 2 or 5 times a power of ten at or above v (v > 0). */
static double nice_ceiling(double v)
{
    double e = pow(10, floor(log10(v)));
    double m = v / e;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * e;
}

static double chart_max(const rpdf_chart_t *ch)
{
    double max = 0;
    for (size_t s = 0; s < ch->nseries; s++)
        for (size_t i = 0; i < ch->npoints; i++)
            if (isfinite(ch->series[s].values[i]) && ch->series[s].values[i] > max)
                max = ch->series[s].values[i];
    return max > 0 ? nice_ceiling(max) : 1;
}

static void draw_axes(page_ctx_t *p, const rpdf_chart_t *ch, double x0, double y0, double w,
                      double h, double max)
{
    cairo_set_line_width(p->cr, 0.5);
    for (int g = 0; g <= 4; g++) {
        double y = y0 + h - h * g / 4.0;
        char label[32];
        snprintf(label, sizeof(label), "%g", max * g / 4.0);
        cairo_set_source_rgb(p->cr, 0.85, 0.85, 0.85);
        cairo_move_to(p->cr, x0, y);
        cairo_line_to(p->cr, x0 + w, y);
        cairo_stroke(p->cr);
        cairo_set_source_rgb(p->cr, 0.3, 0.3, 0.3);
        draw_text(p, label, MARGIN, y - 4, 6.5, false, x0 - MARGIN - 4, ALIGN_RIGHT);
    }
    size_t step = (ch->npoints + MAX_XLABEL - 1) / MAX_XLABEL;
    double slot = w / (double)ch->npoints;
    /* one label per slot sits under its bar; sparser ones start at their point */
    int align = step <= 1 ? ALIGN_CENTER : ALIGN_LEFT;
    for (size_t i = 0; i < ch->npoints; i += step ? step : 1)
        draw_text(p, ch->labels[i], x0 + slot * (double)i, y0 + h + 3, 6.5, false,
                  slot * (double)(step ? step : 1), align);
    cairo_set_source_rgb(p->cr, 0, 0, 0);
}

static void draw_series(page_ctx_t *p, const rpdf_chart_t *ch, double x0, double y0, double w,
                        double h, double max)
{
    double slot = w / (double)ch->npoints;
    for (size_t s = 0; s < ch->nseries; s++) {
        const double *rgb = series_rgb[s];
        cairo_set_source_rgb(p->cr, rgb[0], rgb[1], rgb[2]);
        double bar = slot * 0.8 / (double)ch->nseries;
        for (size_t i = 0; i < ch->npoints; i++) {
            double v = ch->series[s].values[i];
            v = isfinite(v) && v > 0 ? v : 0;
            double x = x0 + slot * (double)i, y = y0 + h - h * v / max;
            if (ch->bars) {
                cairo_rectangle(p->cr, x + slot * 0.1 + bar * (double)s, y, bar, y0 + h - y);
            } else if (i == 0) {
                cairo_move_to(p->cr, x + slot / 2, y);
            } else {
                cairo_line_to(p->cr, x + slot / 2, y);
            }
        }
        if (ch->bars) {
            cairo_fill(p->cr);
        } else {
            cairo_set_line_width(p->cr, 1.5);
            cairo_stroke(p->cr);
        }
    }
    cairo_set_source_rgb(p->cr, 0, 0, 0);
}

static void draw_legend(page_ctx_t *p, const rpdf_chart_t *ch, double x, double y)
{
    for (size_t s = 0; s < ch->nseries; s++) {
        const double *rgb = series_rgb[s];
        cairo_set_source_rgb(p->cr, rgb[0], rgb[1], rgb[2]);
        cairo_rectangle(p->cr, x, y + 2, 8, 8);
        cairo_fill(p->cr);
        cairo_set_source_rgb(p->cr, 0, 0, 0);
        PangoLayout *l = make_text(p, ch->series[s].label, 8, false, 0, false, true);
        draw_layout(p, l, x + 11, y, 0, ALIGN_LEFT);
        x += 11 + layout_width(l) + 14;
        g_object_unref(l);
    }
}

static void draw_chart(page_ctx_t *p, const rpdf_chart_t *ch)
{
    if (ch->nseries == 0 || ch->npoints == 0 || p->overflow)
        return;
    double cap_h = ch->caption ? caption(p, ch->caption, true) : 0;
    if (!ensure_room(p, cap_h + CHART_H + 40))
        return;
    if (ch->caption)
        p->y += caption(p, ch->caption, false);
    draw_legend(p, ch, MARGIN + 40, p->y);
    p->y += 16;
    double x0 = MARGIN + 40, w = p->width - 2 * MARGIN - 40, max = chart_max(ch);
    draw_axes(p, ch, x0, p->y, w, CHART_H, max);
    draw_series(p, ch, x0, p->y, w, CHART_H, max);
    p->y += CHART_H + 14 + GAP;
}

/* --------------------------------------------------------------- render */

/* LeakSanitizer's hook (used only in sanitizer builds): fontconfig 2.14
 * loses 288 bytes once per process while parsing its configuration
 * (FcInitLoadConfigAndFonts, with any program that uses it), so the ASan
 * builds of the server and the tests, which must exit without a leak
 * report, know it. The fast unwinder stops inside libfontconfig (no frame
 * pointers), so the rule names the library; rendering many documents was
 * checked to lose nothing more (tests/unit/pdf/test_report_pdf.c renders
 * dozens under LeakSanitizer). */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

static void set_metadata(cairo_surface_t *s, const rpdf_doc_t *doc)
{
    char *title = g_utf8_make_valid(doc->title ? doc->title : "", -1);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_TITLE, title);
    cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATOR, "campaignd");
    if (doc->created)
        cairo_pdf_surface_set_metadata(s, CAIRO_PDF_METADATA_CREATE_DATE, doc->created);
    g_free(title);
}

rpdf_status_t rpdf_render(const rpdf_doc_t *doc, int max_pages, cd_buf_t *out, rpdf_stats_t *stats)
{
    size_t before = out->len;
    sink_t sink = {out, false};
    bool landscape =
        doc->kpi.ncols > RPDF_PORTRAIT_MAX_COLS || doc->daily.ncols > RPDF_PORTRAIT_MAX_COLS;
    page_ctx_t p = {.doc = doc, .max_pages = max_pages};
    p.width = landscape ? A4_LONG : A4_SHORT;
    p.height = landscape ? A4_SHORT : A4_LONG;
    p.surface = cairo_pdf_surface_create_for_stream(sink_write, &sink, p.width, p.height);
    set_metadata(p.surface, doc);
    p.cr = cairo_create(p.surface);
    /* A font map of our own per document: pango's default one is a
     * per-thread cache that lives as long as the thread, and the server's
     * threads never release it; this one is freed with the document. */
    PangoFontMap *fonts = pango_cairo_font_map_new();
    p.pc = pango_font_map_create_context(fonts);
    pango_cairo_update_context(p.cr, p.pc);
    /* cairo's PDF units are points: lay text out at 72 dpi, so sizes are points */
    pango_cairo_context_set_resolution(p.pc, 72);
    if (new_page(&p)) {
        draw_heading(&p);
        draw_table(&p, &doc->kpi);
        draw_chart(&p, &doc->chart);
        draw_table(&p, &doc->daily);
    }
    g_object_unref(p.pc);
    g_object_unref(fonts);
    cairo_destroy(p.cr);
    cairo_surface_finish(p.surface);
    cairo_status_t cs = cairo_surface_status(p.surface);
    cairo_surface_destroy(p.surface);
    rpdf_status_t rc = p.overflow                   ? RPDF_TOO_MANY_PAGES
                       : sink.full                  ? RPDF_TOO_LARGE
                       : cs != CAIRO_STATUS_SUCCESS ? RPDF_ERROR
                                                    : RPDF_OK;
    if (rc != RPDF_OK) {
        out->len = before;
        if (out->data)
            out->data[before] = '\0';
    }
    if (stats) {
        *stats = p.stats;
        stats->pages = p.pages;
    }
    return rc;
}
