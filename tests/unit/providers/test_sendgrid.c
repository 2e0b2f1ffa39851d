/* Unit tests for providers/sendgrid.c: the Mail Send body (personalizations,
 * custom_args, limits), the Event Webhook's ECDSA P-256 signature against a
 * fixed vector (key pair and signature made once with the openssl CLI) and
 * the event batch parser. The HTTP exchange is tested against a
 * SendGrid-shaped server by tests/integration/providers.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "providers/sendgrid.h"

static const char *const pub =
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECiUlNvu/djUYq1YjOhNJl0WrgPnAKgekGKAFgszAQuNJ15LhLXM8vGwJ"
    "C2eP+H+G+iIikyDivmnuzFuqhWm8QQ==";
static const char *const sig = "MEUCIQCk2Yrvh/lR8z7kQgbna4kY+5XJyrP+5DNUSm2ApROdzwIgUEQOSPmHrFxXLQ"
                               "MzUPEFSg5Q1LvMnosKlYiYhr1zS8k=";
static const char *const ts = "1600112502";
static const char *const body = "[{\"email\":\"a@example.com\",\"event\":\"delivered\","
                                "\"sg_event_id\":\"ev1\",\"timestamp\":1600112500}]";
/* a P-384 key: SendGrid's keys are P-256 only */
static const char *const p384 =
    "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEJU3YcoQQvduDSJ2mT4lCJ9PMNXITkuoGAW9Lt8oZUv0ljxklzw3NcciZQsfh"
    "EKOiIoniPt4DF3zo63laBg8t2uCOsR2bb/LGghs8bOalRkXHuM4jV0s3M/ioM1+CBvNi";

static void test_signature(void **state)
{
    (void)state;
    size_t n = strlen(body);
    assert_true(sendgrid_public_key_ok(pub));
    assert_true(sendgrid_signature_ok(pub, sig, ts, body, n));
    /* whitespace around a pasted key is fine */
    char padded[300];
    snprintf(padded, sizeof(padded), "  %s\n", pub);
    assert_true(sendgrid_signature_ok(padded, sig, ts, body, n));
    /* another timestamp, a changed body, a truncated body: refused */
    assert_false(sendgrid_signature_ok(pub, sig, "1600112503", body, n));
    char changed[256];
    snprintf(changed, sizeof(changed), "%s", body);
    changed[20] = 'b';
    assert_false(sendgrid_signature_ok(pub, sig, ts, changed, n));
    assert_false(sendgrid_signature_ok(pub, sig, ts, body, n - 1));
    /* a signature with one bit flipped, garbage, missing parts */
    char flipped[200];
    snprintf(flipped, sizeof(flipped), "%s", sig);
    flipped[10] = flipped[10] == 'A' ? 'B' : 'A';
    assert_false(sendgrid_signature_ok(pub, flipped, ts, body, n));
    assert_false(sendgrid_signature_ok(pub, "not base64!", ts, body, n));
    assert_false(sendgrid_signature_ok(pub, NULL, ts, body, n));
    assert_false(sendgrid_signature_ok(pub, sig, NULL, body, n));
    assert_false(sendgrid_signature_ok(pub, sig, "", body, n));
    assert_false(sendgrid_signature_ok(NULL, sig, ts, body, n));
    assert_false(sendgrid_signature_ok("", sig, ts, body, n));
    /* a key of another curve or that is not a key */
    assert_false(sendgrid_public_key_ok(p384));
    assert_false(sendgrid_signature_ok(p384, sig, ts, body, n));
    assert_false(sendgrid_public_key_ok("AAAA"));
    assert_false(sendgrid_public_key_ok("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"));
}

static void test_build_request(void **state)
{
    (void)state;
    sendgrid_subst_t subst[] = {{"-first_name-", "Ann"}};
    sendgrid_subst_t hdr[] = {{"List-Unsubscribe", "<https://x.test/u/t1>"}};
    sendgrid_subst_t common[] = {{"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"}};
    sendgrid_recipient_t to[] = {
        {"ann@example.com", "11111111-2222-3333-4444-555555555555", subst, 1, hdr, 1},
        {"bob@example.com", "11111111-2222-3333-4444-666666666666", NULL, 0, NULL, 0},
    };
    sendgrid_mail_t m = {.from = "news@example.com",
                         .from_name = "News",
                         .subject = "Hello -first_name-",
                         .text = "Hi",
                         .html = "<p>Hi</p>",
                         .headers = common,
                         .nheaders = 1,
                         .to = to,
                         .nto = 2};
    cd_buf_t b;
    cd_buf_init(&b, 1 << 20);
    char err[256] = "";
    assert_true(sendgrid_build_request(&m, &b, err, sizeof(err)));
    json_t *j = json_loads(b.data, 0, NULL);
    assert_non_null(j);
    json_t *ps = json_object_get(j, "personalizations");
    assert_int_equal(json_array_size(ps), 2);
    json_t *p0 = json_array_get(ps, 0);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(p0, "to"), 0), "email")),
        "ann@example.com");
    assert_string_equal(json_string_value(json_object_get(json_object_get(p0, "custom_args"),
                                                          SENDGRID_MESSAGE_ARG)),
                        "11111111-2222-3333-4444-555555555555");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(p0, "substitutions"), "-first_name-")),
        "Ann");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(p0, "headers"), "List-Unsubscribe")),
        "<https://x.test/u/t1>");
    assert_null(json_object_get(json_array_get(ps, 1), "substitutions"));
    json_t *content = json_object_get(j, "content");
    assert_string_equal(json_string_value(json_object_get(json_array_get(content, 0), "type")),
                        "text/plain");
    assert_string_equal(json_string_value(json_object_get(json_array_get(content, 1), "type")),
                        "text/html");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "from"), "name")),
                        "News");
    json_decref(j);

    /* limits: no recipient, a bad message id, too many substitution bytes */
    cd_buf_reset(&b);
    m.nto = 0;
    assert_false(sendgrid_build_request(&m, &b, err, sizeof(err)));
    m.nto = SENDGRID_MAX_PERSONALIZATIONS + 1;
    assert_false(sendgrid_build_request(&m, &b, err, sizeof(err)));
    m.nto = 1;
    to[0].message_id = "not-a-uuid";
    assert_false(sendgrid_build_request(&m, &b, err, sizeof(err)));
    assert_non_null(strstr(err, "UUID"));
    to[0].message_id = "11111111-2222-3333-4444-555555555555";
    static char big[SENDGRID_MAX_SUBST_BYTES + 2];
    memset(big, 'x', sizeof(big) - 1);
    subst[0].value = big;
    assert_false(sendgrid_build_request(&m, &b, err, sizeof(err)));
    assert_non_null(strstr(err, "substitutions"));
    cd_buf_free(&b);
}

static void test_events_parse(void **state)
{
    (void)state;
    char err[256];
    json_t *a = sendgrid_events_parse(body, strlen(body), err, sizeof(err));
    assert_non_null(a);
    assert_int_equal(json_array_size(a), 1);
    json_decref(a);
    const char *bad[] = {
        "",
        "{}",
        "[]",
        "[1]",
        "[{\"event\":\"open\",\"timestamp\":1,\"email\":\"a@b\"}]",
        "[{\"event\":\"open\",\"sg_event_id\":\"\",\"timestamp\":1,\"email\":\"a@b\"}]",
        "[{\"event\":\"open\",\"sg_event_id\":\"x\",\"timestamp\":\"1\",\"email\":\"a@b\"}]",
        "[{\"event\":5,\"sg_event_id\":\"x\",\"timestamp\":1,\"email\":\"a@b\"}]",
        "[{\"event\":\"open\",\"sg_event_id\":\"x\",\"timestamp\":1}]",
        "[{\"event\":\"open\",\"event\":\"click\",\"sg_event_id\":\"x\",\"timestamp\":1,"
        "\"email\":\"a@b\"}]",
        "[{\"event\":\"open\",\"sg_event_id\":\"x\",\"timestamp\":1,\"email\":\"a@b\","
        "\"n\":[[[[[1]]]]]}]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        err[0] = '\0';
        assert_null(sendgrid_events_parse(bad[i], strlen(bad[i]), err, sizeof(err)));
        assert_true(err[0] != '\0');
    }
}

static void test_send_needs_key(void **state)
{
    (void)state;
    sendgrid_client_t *c = sendgrid_client_new();
    assert_non_null(c);
    sendgrid_recipient_t to[] = {
        {"a@example.com", "11111111-2222-3333-4444-555555555555", NULL, 0, NULL, 0}};
    sendgrid_mail_t m = {.from = "n@example.com", .subject = "s", .text = "t", .to = to, .nto = 1};
    sendgrid_config_t cfg = {.api_base = "http://127.0.0.1:9", .api_key = "", .timeout_seconds = 2};
    sendgrid_result_t r;
    assert_int_equal(sendgrid_send(c, &cfg, &m, &r), SENDGRID_PERMANENT);
    cfg.api_key = "SG.key\r\nX-Evil: 1";
    assert_int_equal(sendgrid_send(c, &cfg, &m, &r), SENDGRID_PERMANENT);
    cfg.api_key = "SG.secret-key";
    assert_int_equal(sendgrid_send(c, &cfg, &m, &r), SENDGRID_TEMPORARY);
    assert_null(strstr(r.error, "secret-key"));
    sendgrid_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signature),
        cmocka_unit_test(test_build_request),
        cmocka_unit_test(test_events_parse),
        cmocka_unit_test(test_send_needs_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
