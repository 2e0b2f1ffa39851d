/* Unit tests for the dashboard's static files (src/web/): which asset names
 * may be opened (no traversal, no hidden files, no separators), which are
 * cached for a year, and which Host headers may enter the CSP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "web/web.h"

static void test_asset_names(void **state)
{
    (void)state;
    assert_true(web_asset_name_ok("app-4XQ2ZB7K.js"));
    assert_true(web_asset_name_ok("app-4XQ2ZB7K.js.gz"));
    assert_true(web_asset_name_ok("favicon.svg"));
    assert_false(web_asset_name_ok(NULL));
    assert_false(web_asset_name_ok(""));
    assert_false(web_asset_name_ok("."));
    assert_false(web_asset_name_ok(".."));
    assert_false(web_asset_name_ok(".env"));
    assert_false(web_asset_name_ok("../index.html"));
    assert_false(web_asset_name_ok("a/b.js"));
    assert_false(web_asset_name_ok("a\\b.js"));
    assert_false(web_asset_name_ok("a%2fb.js"));
    assert_false(web_asset_name_ok("a b.js"));
    assert_false(web_asset_name_ok("a\x01.js"));
    char longname[200];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_false(web_asset_name_ok(longname));
    longname[128] = '\0';
    assert_true(web_asset_name_ok(longname));
}

static void test_hashed(void **state)
{
    (void)state;
    assert_true(web_asset_is_hashed("app-4XQ2ZB7K.js"));
    assert_true(web_asset_is_hashed("chunk-ABCDEFGH.css"));
    assert_false(web_asset_is_hashed("app.js"));
    assert_false(web_asset_is_hashed("app-abc.js"));
    assert_false(web_asset_is_hashed("app-4XQ2ZB7.js"));
    assert_false(web_asset_is_hashed("app-4xq2zb7k.js"));
    assert_false(web_asset_is_hashed("app-4XQ2ZB7K"));
}

static void test_host(void **state)
{
    (void)state;
    assert_true(web_host_ok("127.0.0.1:8080"));
    assert_true(web_host_ok("dash.example.com"));
    assert_true(web_host_ok("[::1]:8080"));
    assert_false(web_host_ok(NULL));
    assert_false(web_host_ok(""));
    assert_false(web_host_ok("evil.com; script-src *"));
    assert_false(web_host_ok("a'b"));
    assert_false(web_host_ok("a\r\nX: y"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_asset_names),
        cmocka_unit_test(test_hashed),
        cmocka_unit_test(test_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
