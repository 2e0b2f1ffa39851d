/* Unit tests for the settings table and loader (src/core/config.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"

static void clear_env(void)
{
    for (size_t i = 0; i < config_table_len; i++)
        unsetenv(config_table[i].name);
}

static void test_defaults(void **state)
{
    (void)state;
    clear_env();
    config_t c;
    char err[256];
    assert_true(config_load(&c, "/nonexistent/.env-not-required", err, sizeof(err)) == false);
    assert_true(config_load(&c, NULL, err, sizeof(err)));
    assert_int_equal(c.port, 8080);
    assert_string_equal(c.bind, "127.0.0.1");
    assert_string_equal(c.data_dir, "./var");
    assert_int_equal(c.jwt_exp, 3600);
    assert_int_equal(c.max_body_bytes, 1048576);
    assert_int_equal(c.refresh_token_reuse_interval, 10);
    assert_true(c.disable_signup); /* invite-only by default (issue 14) */
    /* the send engine's defaults, which the benches measure (bench/RESULTS.md,
     * "Session 16": a default of 20 sent a fifth slower than the benches said) */
    assert_int_equal(c.send_batch_size, 100);
    assert_int_equal(c.send_in_flight, 32);
    assert_int_equal(c.send_workers, 2);
    config_free(&c);
}

static void test_env_overrides_and_validation(void **state)
{
    (void)state;
    clear_env();
    config_t c;
    char err[256];
    setenv("PORT", "9999", 1);
    setenv("DISABLE_SIGNUP", "yes", 1);
    assert_true(config_load(&c, NULL, err, sizeof(err)));
    assert_int_equal(c.port, 9999);
    assert_true(c.disable_signup);
    config_free(&c);

    setenv("PORT", "abc", 1);
    assert_false(config_load(&c, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "PORT"));
    config_free(&c);
    setenv("PORT", "70000", 1);
    assert_false(config_load(&c, NULL, err, sizeof(err)));
    config_free(&c);
    setenv("PORT", "80x", 1);
    assert_false(config_load(&c, NULL, err, sizeof(err)));
    config_free(&c);
    unsetenv("PORT");
    setenv("DISABLE_SIGNUP", "maybe", 1);
    assert_false(config_load(&c, NULL, err, sizeof(err)));
    assert_non_null(strstr(err, "DISABLE_SIGNUP"));
    config_free(&c);
    unsetenv("DISABLE_SIGNUP");
    setenv("DEFAULT_USER_ROLE", "admin", 1);
    assert_false(config_load(&c, NULL, err, sizeof(err)));
    config_free(&c);
    clear_env();
}

static void test_env_file(void **state)
{
    (void)state;
    clear_env();
    char path[] = "/tmp/cd-test-env-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char text[] =
        "# comment\n\nPORT=7000\nexport BIND=\"0.0.0.0\"\nSITE_URL='https://x.example'\n"
        "UNKNOWN_THING=1\nJWT_EXP=60\n";
    assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    setenv("JWT_EXP", "120", 1); /* the environment wins over the file */
    config_t c;
    char err[256];
    assert_true(config_load(&c, path, err, sizeof(err)));
    assert_int_equal(c.port, 7000);
    assert_string_equal(c.bind, "0.0.0.0");
    assert_string_equal(c.site_url, "https://x.example");
    assert_int_equal(c.jwt_exp, 120);
    config_free(&c);

    fd = open(path, O_WRONLY | O_TRUNC);
    const char bad[] = "PORT\n";
    assert_int_equal(write(fd, bad, sizeof(bad) - 1), (ssize_t)(sizeof(bad) - 1));
    close(fd);
    assert_false(config_load(&c, path, err, sizeof(err)));
    assert_non_null(strstr(err, ":1:"));
    config_free(&c);
    unlink(path);
    clear_env();
}

static void test_table_is_consistent(void **state)
{
    (void)state;
    for (size_t i = 0; i < config_table_len; i++) {
        const config_entry_t *e = &config_table[i];
        assert_non_null(e->help);
        assert_true(strlen(e->help) > 10);
        assert_ptr_equal(config_find(e->name), e);
        for (size_t j = i + 1; j < config_table_len; j++)
            assert_string_not_equal(e->name, config_table[j].name);
    }
    assert_null(config_find("NOPE"));
    /* secrets are masked */
    config_t c;
    char err[256];
    clear_env();
    setenv("JWT_SECRET", "0123456789abcdef0123456789abcdef", 1);
    assert_true(config_load(&c, NULL, err, sizeof(err)));
    char v[128];
    config_format_value(&c, config_find("JWT_SECRET"), true, v, sizeof(v));
    assert_null(strstr(v, "0123"));
    config_format_value(&c, config_find("PORT"), true, v, sizeof(v));
    assert_string_equal(v, "8080");
    config_free(&c);
    clear_env();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_env_overrides_and_validation),
        cmocka_unit_test(test_env_file),
        cmocka_unit_test(test_table_is_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
