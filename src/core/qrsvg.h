/*
 * QR codes as SVG: libqrencode makes the module matrix, this module writes it
 * as one SVG path (GoTrue sends the enrolment QR code the same way, as SVG
 * markup that auth-js turns into a data: URI).
 */
#ifndef CD_QRSVG_H
#define CD_QRSVG_H

#include "core/common.h"

#define QRSVG_MAX_TEXT 1024 /* longest text encoded (an otpauth:// URI is far shorter) */
#define QRSVG_QUIET    4    /* quiet-zone modules around the code (ISO/IEC 18004) */

/* The QR code (error correction level M, 8-bit mode) of text as an SVG
 * document whose user unit is one module. Returns a malloc'd string the caller
 * frees, or NULL when text is empty or longer than QRSVG_MAX_TEXT, or memory
 * ran out. When dark_modules is not NULL it gets the number of dark modules
 * drawn (for tests). */
char *qrsvg_render(const char *text, long *dark_modules);

#endif
