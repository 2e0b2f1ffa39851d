/* libFuzzer target for the template placeholder scanner (src/sending/template.c)
 * and the HTML-to-text and link rewriting of a rendered body
 * (src/sending/track.c). Invariants: tpl_check and tpl_render agree (a
 * template that passes the check renders in both modes, one that fails
 * does not); HTML mode output never holds a '<' that a value brought in
 * (the contact's values are all "<>&\"'"); the link rewriter collects at
 * most TRACK_MAX_LINKS URLs, all http(s). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sending/template.h"
#include "sending/track.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *src = (const char *)data;
    char err[256];
    bool ok = tpl_check(src, size, err, sizeof(err));
    json_t *attrs = json_pack("{s:s, s:i}", "company", "<>&\"'", "n", 7);
    tpl_contact_t c = {"<>&\"'", NULL, "a@b.c", NULL, attrs};
    cd_buf_t text, html;
    cd_buf_init(&text, 1 << 22);
    cd_buf_init(&html, 1 << 22);
    if (tpl_render(src, size, TPL_TEXT, &c, &text, err, sizeof(err)) != ok)
        abort();
    if (tpl_render(src, size, TPL_HTML, &c, &html, err, sizeof(err)) != ok)
        abort();
    /* Escaping adds no '<': HTML output has at most the input's '<' count. */
    size_t lt_in = 0, lt_out = 0;
    for (size_t i = 0; i < size; i++)
        lt_in += data[i] == '<';
    for (size_t i = 0; i < html.len; i++)
        lt_out += html.data[i] == '<';
    if (ok && lt_out > lt_in)
        abort();
    char *z = malloc(size + 1);
    if (z) {
        memcpy(z, data, size);
        z[size] = '\0';
        cd_buf_t plain, rew;
        cd_buf_init(&plain, 1 << 22);
        cd_buf_init(&rew, 1 << 23);
        if (!tpl_html_to_text(z, &plain) && plain.len > plain.max)
            abort();
        unsigned char key[TRACK_KEY_LEN];
        track_derive_key("fuzz", key);
        json_t *links = json_array();
        if (track_rewrite_links(key, "https://cd.test", "00000000-0000-4000-8000-000000000000", z,
                                &rew, links)) {
            if (json_array_size(links) > TRACK_MAX_LINKS)
                abort();
            for (size_t i = 0; i < json_array_size(links); i++) {
                const char *u = json_string_value(json_array_get(links, i));
                if (!u || (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0))
                    abort();
            }
        }
        json_decref(links);
        cd_buf_free(&plain);
        cd_buf_free(&rew);
        free(z);
    }
    cd_buf_free(&text);
    cd_buf_free(&html);
    json_decref(attrs);
    return 0;
}
