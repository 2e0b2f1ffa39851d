/* Unit tests for sending/template.c: the placeholder grammar (what the save
 * time check accepts is what renders), HTML escaping in HTML bodies and raw
 * values in text, defaults, attributes, and the text part derived from
 * HTML. The same grammar's SQL twin is tested by tests/sql/027_sending.sql. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sending/template.h"

static char *render(const char *src, tpl_mode_t mode, const tpl_contact_t *c, bool *ok)
{
    static char out[8192];
    cd_buf_t b;
    cd_buf_init(&b, sizeof(out) - 1);
    char err[256];
    *ok = tpl_render(src, strlen(src), mode, c, &b, err, sizeof(err));
    snprintf(out, sizeof(out), "%s", *ok ? cd_buf_str(&b) : err);
    cd_buf_free(&b);
    return out;
}

static void test_check(void **state)
{
    (void)state;
    char err[256];
    static const char *const good[] = {
        "",
        "no placeholders",
        "{{first_name}}",
        "{{ first_name }}",
        "{{last_name}}{{email}}",
        "{{phone}}",
        "{{contact.first_name}}",
        "{{contact.attributes.company}}",
        "{{contact.attributes.a-b_9}}",
        "{{first_name | \"there\"}}",
        "{{first_name|\"say \\\"hi\\\" \\\\ \"}}",
        "a { b } c {x}",
        "}} alone",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(tpl_check(good[i], strlen(good[i]), err, sizeof(err)));
    static const char *const bad[] = {
        "{{frist_name}}",
        "{{first_name",
        "{{}}",
        "{{ }}",
        "{{contact.attributes.}}",
        "{{contact.attributes.a.b}}",
        "{{first_name | there}}",
        "{{first_name | \"x}}",
        "{{first_name | \"\\n\"}}",
        "{{{first_name}}}",
        "{{contact}}",
        "{{first_name-x}}",
        "{{#each}}",
        "{{first_name}} {{",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_false(tpl_check(bad[i], strlen(bad[i]), err, sizeof(err)));
        assert_true(strlen(err) > 0);
    }
    assert_false(tpl_check("Hi {{frist_name}}", 17, err, sizeof(err)));
    assert_non_null(strstr(err, "frist_name"));
    /* a NUL inside the length is just a byte */
    assert_true(tpl_check("a\0b", 3, err, sizeof(err)));
}

static void test_render(void **state)
{
    (void)state;
    json_t *attrs =
        json_pack("{s:s, s:i, s:b, s:[i]}", "company", "A&B <Co>", "n", 42, "vip", 1, "list", 1);
    tpl_contact_t c = {"Zoë", "O'Neil", "z@example.com", "+15550100", attrs};
    bool ok;
    assert_string_equal(render("Hi {{first_name}}!", TPL_TEXT, &c, &ok), "Hi Zoë!");
    assert_true(ok);
    assert_string_equal(render("{{contact.last_name}}", TPL_HTML, &c, &ok), "O&#39;Neil");
    assert_string_equal(render("{{contact.attributes.company}}", TPL_HTML, &c, &ok),
                        "A&amp;B &lt;Co&gt;");
    assert_string_equal(render("{{contact.attributes.company}}", TPL_TEXT, &c, &ok), "A&B <Co>");
    assert_string_equal(
        render("{{contact.attributes.n}}/{{contact.attributes.vip}}", TPL_TEXT, &c, &ok),
        "42/true");
    /* arrays, objects and missing keys are empty, or the default */
    assert_string_equal(render("[{{contact.attributes.list}}]", TPL_TEXT, &c, &ok), "[]");
    assert_string_equal(render("{{contact.attributes.none | \"-\"}}", TPL_TEXT, &c, &ok), "-");
    tpl_contact_t empty = {0};
    assert_string_equal(render("Hi {{first_name | \"there\"}}", TPL_TEXT, &empty, &ok), "Hi there");
    assert_string_equal(render("{{first_name | \"<&>\"}}", TPL_HTML, &empty, &ok), "&lt;&amp;&gt;");
    assert_string_equal(render("{{first_name | \"a\\\"b\"}}", TPL_TEXT, &empty, &ok), "a\"b");
    assert_string_equal(render("x{{email}}y", TPL_TEXT, NULL, &ok), "xy");
    assert_true(ok);
    /* an empty value takes the default too */
    tpl_contact_t blank = {.first_name = ""};
    assert_string_equal(render("{{first_name|\"d\"}}", TPL_TEXT, &blank, &ok), "d");
    render("{{nope}}", TPL_TEXT, &c, &ok);
    assert_false(ok);
    json_decref(attrs);
}

static void test_render_full_buffer(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 4);
    char err[128];
    tpl_contact_t c = {.first_name = "abcdefgh"};
    assert_false(tpl_render("{{first_name}}", 14, TPL_TEXT, &c, &b, err, sizeof(err)));
    cd_buf_free(&b);
}

static char *to_text(const char *html)
{
    static char out[4096];
    cd_buf_t b;
    cd_buf_init(&b, sizeof(out) - 1);
    assert_true(tpl_html_to_text(html, &b));
    snprintf(out, sizeof(out), "%s", b.len ? cd_buf_str(&b) : "");
    cd_buf_free(&b);
    return out;
}

static void test_html_to_text(void **state)
{
    (void)state;
    assert_true(tpl_is_html("<p>x</p>"));
    assert_true(tpl_is_html("a<br>b"));
    assert_false(tpl_is_html("1 < 2 and 3 > 2"));
    assert_false(tpl_is_html(NULL));
    assert_string_equal(to_text("<p>Hello   <b>world</b></p><p>Two</p>"), "Hello world\nTwo");
    assert_string_equal(to_text("a<br>b<br/>c"), "a\nb\nc");
    assert_string_equal(to_text("<a href=\"https://x.test/?a=1&amp;b=2\">Go</a>"),
                        "Go (https://x.test/?a=1&b=2)");
    assert_string_equal(to_text("<style>p{color:red}</style><script>alert(1)</script>ok"), "ok");
    assert_string_equal(to_text("&lt;tag&gt; &amp; &quot;q&quot;&nbsp;x"), "<tag> & \"q\" x");
    assert_string_equal(to_text("<!-- hidden -->shown"), "shown");
    assert_string_equal(to_text("<p>a</p>\n\n\n<p></p><p></p><p>b</p>"), "a\n\nb");
    assert_string_equal(to_text("unclosed <b"), "unclosed");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_render_full_buffer),
        cmocka_unit_test(test_html_to_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
