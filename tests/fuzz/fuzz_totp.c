/*
 * libFuzzer target for the MFA inputs (src/core/totp.c, src/core/qrsvg.c): the bytes up to the
 * first newline are a base32 secret, the rest a code typed by a client; the whole input is also
 * drawn as a QR code (the issuer and account of an otpauth:// URI come from clients). Any crash,
 * sanitizer report or leak is a bug; so is a match for a code that is not six digits, a decoded
 * secret longer than its buffer, or an SVG that does not end its document.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/qrsvg.h"
#include "core/totp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = size < 4096 ? size : 4096;
    char *text = malloc(n + 1);
    if (!text)
        return 0;
    memcpy(text, data, n);
    text[n] = '\0';
    char *nl = strchr(text, '\n');
    const char *code = nl ? nl + 1 : "";
    if (nl)
        *nl = '\0';
    unsigned char key[64];
    long keylen = totp_base32_decode(text, key, sizeof(key));
    if (keylen > (long)sizeof(key))
        abort();
    int64_t step = 0;
    if (keylen > 0 && totp_match(key, (size_t)keylen, code, 1700000000, -1, &step) &&
        !totp_code_valid(code))
        abort();
    if (nl)
        *nl = '\n';
    char *svg = qrsvg_render(text, NULL);
    if (svg && !strstr(svg, "</svg>"))
        abort();
    free(svg);
    free(text);
    return 0;
}
