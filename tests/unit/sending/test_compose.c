/* Unit tests for sending/compose.c: one campaign e-mail as a recipient gets
 * it: personalised subject and bodies, links tracked but not the footer's,
 * the postal address and unsubscribe link in both parts, the RFC 8058
 * headers, a text part derived when the template has none, and refusals
 * (no postal address, a bad template). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sending/compose.h"

static const char *ID = "0b7e8a52-1c0d-4f4e-9a57-2f0e6d1c9b11";

static compose_input_t input(const unsigned char *key, const tpl_contact_t *c)
{
    return (compose_input_t){
        .message_id = ID,
        .subject_src = "Hello {{first_name | \"you\"}}\r\nBcc: x@evil.test",
        .body_src = "<html><body><p>Hi {{first_name}}</p><a href=\"https://shop.test/a\">Shop</a>"
                    "</body></html>",
        .text_src = NULL,
        .contact = c,
        .base_url = "https://cd.test",
        .key = key,
        .postal_address = "Acme & Co\n1 Main St",
    };
}

static void test_compose_html(void **state)
{
    (void)state;
    unsigned char key[TRACK_KEY_LEN];
    track_derive_key("k", key);
    tpl_contact_t c = {.first_name = "<Ann>"};
    compose_input_t in = input(key, &c);
    compose_output_t out;
    compose_init(&out);
    char err[256];
    assert_true(compose_email(&in, &out, err, sizeof(err)));
    /* a subject stays one line whatever the template holds */
    assert_null(strchr(cd_buf_str(&out.subject), '\n'));
    assert_null(strchr(cd_buf_str(&out.subject), '\r'));
    assert_non_null(strstr(cd_buf_str(&out.subject), "Hello <Ann>"));
    const char *html = cd_buf_str(&out.html);
    assert_non_null(strstr(html, "Hi &lt;Ann&gt;"));
    assert_null(strstr(html, "https://shop.test/a"));
    assert_non_null(strstr(html, "https://cd.test/t/c/"));
    assert_non_null(strstr(html, "https://cd.test/t/o/"));
    assert_non_null(strstr(html, "Acme &amp; Co<br>1 Main St"));
    assert_non_null(strstr(html, out.unsubscribe_url));
    /* the footer comes before </body>, and the unsubscribe link is not click-tracked */
    assert_true(strstr(html, "Unsubscribe") < strstr(html, "</body>"));
    assert_int_equal(json_array_size(out.links), 1);
    const char *text = cd_buf_str(&out.text);
    assert_non_null(strstr(text, "Hi <Ann>"));
    assert_non_null(strstr(text, "Shop (https://shop.test/a)"));
    assert_non_null(strstr(text, "Acme & Co\n1 Main St"));
    assert_non_null(strstr(text, out.unsubscribe_url));
    assert_string_equal(out.headers[0].name, "List-Unsubscribe");
    assert_int_equal(out.headers[0].value[0], '<');
    assert_string_equal(out.headers[1].value, "List-Unsubscribe=One-Click");
    assert_int_equal(strncmp(out.unsubscribe_url, "https://cd.test/u/", 18), 0);
    compose_free(&out);
}

static void test_compose_text_only_and_own_text(void **state)
{
    (void)state;
    unsigned char key[TRACK_KEY_LEN];
    track_derive_key("k", key);
    tpl_contact_t c = {.first_name = "<Ann>"};
    compose_input_t in = input(key, &c);
    in.body_src = "Plain {{first_name}} & more";
    compose_output_t out;
    compose_init(&out);
    char err[256];
    assert_true(compose_email(&in, &out, err, sizeof(err)));
    assert_int_equal(out.html.len, 0);
    assert_non_null(strstr(cd_buf_str(&out.text), "Plain <Ann> & more"));
    compose_free(&out);

    in = input(key, &c);
    in.text_src = "Own text for {{first_name}}";
    compose_init(&out);
    assert_true(compose_email(&in, &out, err, sizeof(err)));
    assert_non_null(strstr(cd_buf_str(&out.text), "Own text for <Ann>"));
    assert_null(strstr(cd_buf_str(&out.text), "Shop"));
    compose_free(&out);
}

static void test_compose_refusals(void **state)
{
    (void)state;
    unsigned char key[TRACK_KEY_LEN];
    track_derive_key("k", key);
    tpl_contact_t c = {0};
    char err[256];
    compose_output_t out;
    compose_input_t in = input(key, &c);
    in.postal_address = "";
    compose_init(&out);
    assert_false(compose_email(&in, &out, err, sizeof(err)));
    compose_free(&out);
    in = input(key, &c);
    in.body_src = "<p>{{unknown}}</p>";
    compose_init(&out);
    assert_false(compose_email(&in, &out, err, sizeof(err)));
    assert_non_null(strstr(err, "unknown"));
    compose_free(&out);
    in = input(key, &c);
    in.message_id = "nope";
    compose_init(&out);
    assert_false(compose_email(&in, &out, err, sizeof(err)));
    compose_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_html),
        cmocka_unit_test(test_compose_text_only_and_own_text),
        cmocka_unit_test(test_compose_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
