/* Unit tests for core/qrsvg: the SVG of a QR code has the matrix's size, draws
 * exactly libqrencode's dark modules, starts with the finder pattern, and
 * refuses empty and over-long text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <qrencode.h>

#include "core/qrsvg.h"

static const char URI[] = "otpauth://totp/campaignd:ada%40example.test?secret="
                          "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=campaignd";

/* Sums the widths of the path's "h<n>" runs (the positive ones). */
static long path_dark(const char *svg)
{
    long sum = 0;
    const char *d = strstr(svg, " d=\"");
    for (const char *p = d; p && *p && *p != '/'; p++)
        if (p[0] == 'h' && p[1] != '-')
            sum += strtol(p + 1, NULL, 10);
    return sum;
}

static void test_render(void **state)
{
    (void)state;
    QRcode *qr = QRcode_encodeString(URI, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    assert_non_null(qr);
    long want = 0;
    for (int i = 0; i < qr->width * qr->width; i++)
        want += qr->data[i] & 1;
    char viewbox[64];
    snprintf(viewbox, sizeof(viewbox), "viewBox=\"0 0 %d %d\"", qr->width + 2 * QRSVG_QUIET,
             qr->width + 2 * QRSVG_QUIET);
    QRcode_free(qr);

    long dark = -1;
    char *svg = qrsvg_render(URI, &dark);
    assert_non_null(svg);
    assert_int_equal(strncmp(svg, "<svg ", 5), 0);
    assert_non_null(strstr(svg, "</svg>"));
    assert_non_null(strstr(svg, viewbox));
    assert_int_equal(dark, want);
    assert_int_equal(path_dark(svg), want);
    /* the top-left finder pattern: seven dark modules, after the quiet zone */
    assert_non_null(strstr(svg, " d=\"M4 4h7v1h-7z"));
    /* the encoded text itself never appears in the markup */
    assert_null(strstr(svg, "otpauth"));
    free(svg);
}

static void test_refuses(void **state)
{
    (void)state;
    assert_null(qrsvg_render("", NULL));
    assert_null(qrsvg_render(NULL, NULL));
    char *big = malloc(QRSVG_MAX_TEXT + 2);
    assert_non_null(big);
    memset(big, 'a', QRSVG_MAX_TEXT + 1);
    big[QRSVG_MAX_TEXT + 1] = '\0';
    assert_null(qrsvg_render(big, NULL));
    big[QRSVG_MAX_TEXT] = '\0';
    char *svg = qrsvg_render(big, NULL);
    assert_non_null(svg);
    free(svg);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
