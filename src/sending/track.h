/*
 * Tracking and unsubscribe tokens of sent e-mail (issue 12). A token names
 * one message, what it is for (open pixel, click, unsubscribe) and, for a
 * click, the index of the link in that message; it is signed with an
 * HMAC-SHA256 key derived from JWT_SECRET, so nobody can make one for a
 * message or link of their choosing: a click can only redirect to a URL that
 * was in the message (no open redirect), and an unsubscribe only names the
 * recipient of that message.
 *
 * Also rewrites the links of an HTML body into click URLs and collects them.
 */
#ifndef CD_SENDING_TRACK_H
#define CD_SENDING_TRACK_H

#include <jansson.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/common.h"

/* Characters of a token (31 bytes in unpadded base64url) and a buffer for it. */
#define TRACK_TOKEN_LEN 42
#define TRACK_KEY_LEN   32
/* Most links tracked in one message; later links are left as they are. */
#define TRACK_MAX_LINKS 200
/* Longest URL tracked; longer ones are left as they are. */
#define TRACK_MAX_URL 2048

typedef enum track_kind {
    TRACK_OPEN = 'o',
    TRACK_CLICK = 'c',
    TRACK_UNSUBSCRIBE = 'u',
} track_kind_t;

/* Derives the tracking key from the server secret (JWT_SECRET): a key for
 * this purpose only, so that a token is never a valid JWT signature. */
void track_derive_key(const char *secret, unsigned char key[TRACK_KEY_LEN]);

/* Writes the token of (kind, message uuid, link index) into out. False when
 * message_id is not a UUID. */
CD_MUSTCHECK bool track_sign(const unsigned char key[TRACK_KEY_LEN], track_kind_t kind,
                             const char *message_id, unsigned link, char out[TRACK_TOKEN_LEN + 1]);

/* Verifies a token of the expected kind: true with the message uuid
 * (canonical, lower case) and the link index when the signature holds. Any
 * other string (wrong length, alphabet, kind or signature) is false. */
CD_MUSTCHECK bool track_verify(const unsigned char key[TRACK_KEY_LEN], track_kind_t kind,
                               const char *token, char message_id[37], unsigned *link);

/* Appends html with every href="http(s)://..." (double or single quoted) of
 * an <a> tag replaced by base/t/c/<token>, and each original URL (entities
 * &amp; decoded) appended to links (a JSON array, in index order). Other
 * links (mailto:, #anchors, relative) stay. False if out is full or a
 * token cannot be made. */
CD_MUSTCHECK bool track_rewrite_links(const unsigned char key[TRACK_KEY_LEN], const char *base,
                                      const char *message_id, const char *html, cd_buf_t *out,
                                      json_t *links);

#endif
