/* libFuzzer target for the tracking token verifier (src/sending/track.c).
 * The input, as a NUL-terminated string, is verified for each kind with a
 * fixed key: a token that verifies must name a canonical UUID and sign back
 * to exactly the same text (the strict base64url decoder accepts only what
 * the signer writes), and a token verifies for at most one kind. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "sending/track.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char tok[128];
    if (size >= sizeof(tok))
        return 0;
    memcpy(tok, data, size);
    tok[size] = '\0';
    unsigned char key[TRACK_KEY_LEN];
    track_derive_key("campaignd-fuzz-secret", key);
    static const track_kind_t kinds[] = {TRACK_OPEN, TRACK_CLICK, TRACK_UNSUBSCRIBE};
    int verified = 0;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        char id[37], again[TRACK_TOKEN_LEN + 1];
        unsigned link = 0;
        if (!track_verify(key, kinds[k], tok, id, &link))
            continue;
        verified++;
        if (!cd_is_uuid(id) || !track_sign(key, kinds[k], id, link, again) ||
            strcmp(again, tok) != 0)
            abort();
    }
    if (verified > 1)
        abort();
    return 0;
}
