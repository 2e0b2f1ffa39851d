/*
 * Renders libqrencode's module matrix as SVG. Each row's runs of dark modules
 * become one "M x y h n v1 h -n z" subpath of a single <path>, so the document
 * stays a few kilobytes for an otpauth:// URI. Only digits and fixed markup
 * are written: the encoded text never appears in the SVG.
 */
#include "core/qrsvg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <qrencode.h>

#include "core/buf.h"

#define QRSVG_MAX_BYTES (512 * 1024)

/* Appends the subpaths of row y of the code; false when the buffer is full. */
static bool render_row(cd_buf_t *b, const QRcode *qr, int y, long *dark)
{
    const unsigned char *row = qr->data + (size_t)y * (size_t)qr->width;
    int x = 0;
    while (x < qr->width) {
        if (!(row[x] & 1)) {
            x++;
            continue;
        }
        int start = x;
        while (x < qr->width && (row[x] & 1))
            x++;
        *dark += x - start;
        if (!cd_buf_printf(b, "M%d %dh%dv1h-%dz", start + QRSVG_QUIET, y + QRSVG_QUIET, x - start,
                           x - start))
            return false;
    }
    return true;
}

char *qrsvg_render(const char *text, long *dark_modules)
{
    size_t len = text ? strlen(text) : 0;
    if (len == 0 || len > QRSVG_MAX_TEXT)
        return NULL;
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (!qr)
        return NULL;
    int size = qr->width + 2 * QRSVG_QUIET;
    cd_buf_t b;
    cd_buf_init(&b, QRSVG_MAX_BYTES);
    long dark = 0;
    bool ok = cd_buf_printf(&b,
                            "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" "
                            "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" "
                            "shape-rendering=\"crispEdges\">"
                            "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>"
                            "<path fill=\"#000\" d=\"",
                            size, size, size * 4, size * 4);
    for (int y = 0; ok && y < qr->width; y++)
        ok = render_row(&b, qr, y, &dark);
    ok = ok && cd_buf_printf(&b, "\"/></svg>");
    QRcode_free(qr);
    if (!ok) {
        cd_buf_free(&b);
        return NULL;
    }
    if (dark_modules)
        *dark_modules = dark;
    return cd_buf_take(&b);
}
