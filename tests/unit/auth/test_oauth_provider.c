/* Unit tests for auth/oauth_provider: endpoints from the settings and the
 * parsers of the providers' answers (the HTTP calls are covered by
 * tests/integration/oauth.test.js against a local provider). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/oauth_provider.h"

#define PARSE(fn, text, u) fn(text, strlen(text), u, err, sizeof(err))

static void test_endpoints(void **state)
{
    (void)state;
    config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    char empty[] = "", id[] = "client", secret[] = "s3cret", ghe[] = "http://127.0.0.1:9999/";
    cfg.github_client_id = id;
    cfg.github_secret = secret;
    cfg.github_url = empty;
    cfg.google_client_id = id;
    cfg.google_secret = empty;
    cfg.google_url = empty;
    cfg.oidc_client_id = id;
    cfg.oidc_secret = secret;
    cfg.oidc_authorize_url = empty;
    cfg.oidc_token_url = empty;
    cfg.oidc_userinfo_url = empty;
    cfg.oidc_scopes = empty;
    oauth_provider_t p;
    assert_false(oauth_provider_get(&cfg, "github", &p)); /* not enabled */
    cfg.github_enabled = true;
    assert_true(oauth_provider_get(&cfg, "github", &p));
    assert_string_equal(p.authorize_url, "https://github.com/login/oauth/authorize");
    assert_string_equal(p.user_url, "https://api.github.com/user");
    assert_string_equal(p.emails_url, "https://api.github.com/user/emails");
    cfg.github_url = ghe; /* Enterprise, or a test's local provider */
    assert_true(oauth_provider_get(&cfg, "github", &p));
    assert_string_equal(p.token_url, "http://127.0.0.1:9999/login/oauth/access_token");
    assert_string_equal(p.user_url, "http://127.0.0.1:9999/api/v3/user");
    cfg.google_enabled = true; /* but no secret */
    assert_false(oauth_provider_get(&cfg, "google", &p));
    cfg.google_secret = secret;
    assert_true(oauth_provider_get(&cfg, "google", &p));
    assert_string_equal(p.user_url, "https://openidconnect.googleapis.com/v1/userinfo");
    cfg.oidc_enabled = true; /* but no endpoints */
    assert_false(oauth_provider_get(&cfg, "oidc", &p));
    assert_false(oauth_provider_get(&cfg, "facebook", &p));
    assert_false(oauth_provider_get(&cfg, NULL, &p));
}

static void test_token(void **state)
{
    (void)state;
    char err[256], *a, *r, *id;
    const char *ok =
        "{\"access_token\":\"gho_abc\",\"token_type\":\"bearer\",\"scope\":\"user:email\"}";
    assert_true(oauth_parse_token(ok, strlen(ok), &a, &r, &id, err, sizeof(err)));
    assert_string_equal(a, "gho_abc");
    assert_null(r);
    assert_null(id);
    free(a);
    const char *both = "{\"access_token\":\"x\",\"refresh_token\":\"y\",\"id_token\":\"h.p.s\"}";
    assert_true(oauth_parse_token(both, strlen(both), &a, &r, &id, err, sizeof(err)));
    assert_string_equal(r, "y");
    assert_string_equal(id, "h.p.s");
    free(a);
    free(r);
    free(id);
    /* GitHub answers 200 with an error for a bad code */
    const char *bad = "{\"error\":\"bad_verification_code\"}";
    assert_false(oauth_parse_token(bad, strlen(bad), &a, &r, &id, err, sizeof(err)));
    assert_non_null(strstr(err, "bad_verification_code"));
    assert_null(a);
    const char *nul = "{\"access_token\":\"a\\u0000b\"}";
    assert_false(oauth_parse_token(nul, strlen(nul), &a, &r, &id, err, sizeof(err)));
    assert_false(oauth_parse_token("[]", 2, &a, &r, &id, err, sizeof(err)));
}

static void test_github(void **state)
{
    (void)state;
    char err[256];
    oauth_user_t u;
    const char *user = "{\"id\":42,\"login\":\"octo\",\"name\":\"Octo Cat\",\"role\":\"admin\","
                       "\"app_metadata\":{\"role\":\"admin\"},\"email\":\"public@x.test\"}";
    assert_true(PARSE(oauth_parse_github_user, user, &u));
    assert_string_equal(u.id, "42");
    assert_string_equal(json_string_value(json_object_get(u.data, "user_name")), "octo");
    assert_null(json_object_get(u.data, "role")); /* never copied */
    assert_null(json_object_get(u.data, "app_metadata"));
    assert_string_equal(u.email, ""); /* the public address is not trusted */
    const char *emails = "[{\"email\":\"old@x.test\",\"primary\":false,\"verified\":true},"
                         "{\"email\":\"main@x.test\",\"primary\":true,\"verified\":true},"
                         "{\"email\":\"new@x.test\",\"primary\":false,\"verified\":false}]";
    assert_true(PARSE(oauth_parse_github_emails, emails, &u));
    assert_string_equal(u.email, "main@x.test");
    assert_true(u.email_verified);
    const char *unverified = "[{\"email\":\"main@x.test\",\"primary\":true,\"verified\":false}]";
    assert_true(PARSE(oauth_parse_github_emails, unverified, &u));
    assert_string_equal(u.email, "main@x.test");
    assert_false(u.email_verified);
    /* a verified secondary does not stand in for an unverified primary */
    const char *mixed = "[{\"email\":\"other@x.test\",\"primary\":false,\"verified\":true},"
                        "{\"email\":\"main@x.test\",\"primary\":true,\"verified\":false}]";
    assert_true(PARSE(oauth_parse_github_emails, mixed, &u));
    assert_string_equal(u.email, "main@x.test");
    assert_false(u.email_verified);
    const char *noprim = "[{\"email\":\"a@x.test\",\"verified\":false},"
                         "{\"email\":\"b@x.test\",\"verified\":true}]";
    assert_true(PARSE(oauth_parse_github_emails, noprim, &u));
    assert_string_equal(u.email, "b@x.test");
    assert_true(u.email_verified);
    assert_true(PARSE(oauth_parse_github_emails, "[]", &u));
    assert_string_equal(u.email, "");
    assert_false(PARSE(oauth_parse_github_emails, "{}", &u));
    oauth_user_free(&u);
    assert_false(PARSE(oauth_parse_github_user, "{\"id\":\"42\"}", &u)); /* id must be a number */
    assert_false(PARSE(oauth_parse_github_user, "{\"id\":-1}", &u));
    assert_false(PARSE(oauth_parse_github_user, "not json", &u));
}

static void test_userinfo(void **state)
{
    (void)state;
    char err[256];
    oauth_user_t u;
    const char *info = "{\"sub\":\"1090\",\"email\":\"g@x.test\",\"email_verified\":true,"
                       "\"name\":\"G\",\"picture\":\"https://p.test/a.png\",\"role\":\"admin\"}";
    assert_true(PARSE(oauth_parse_userinfo, info, &u));
    assert_string_equal(u.id, "1090");
    assert_string_equal(u.email, "g@x.test");
    assert_true(u.email_verified);
    assert_string_equal(json_string_value(json_object_get(u.data, "avatar_url")),
                        "https://p.test/a.png");
    assert_null(json_object_get(u.data, "role"));
    oauth_user_free(&u);
    const char *strv = "{\"sub\":\"1\",\"email\":\"g@x.test\",\"email_verified\":\"true\"}";
    assert_true(PARSE(oauth_parse_userinfo, strv, &u));
    assert_true(u.email_verified);
    oauth_user_free(&u);
    const char *unv = "{\"sub\":\"1\",\"email\":\"g@x.test\"}";
    assert_true(PARSE(oauth_parse_userinfo, unv, &u));
    assert_false(u.email_verified);
    oauth_user_free(&u);
    assert_false(PARSE(oauth_parse_userinfo, "{\"email\":\"g@x.test\"}", &u)); /* no sub */
    assert_false(PARSE(oauth_parse_userinfo, "{\"sub\":\"\"}", &u));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoints),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_github),
        cmocka_unit_test(test_userinfo),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
