/* Unit tests for providers/twilio.c: SMS segment counting at the GSM-7 and
 * UCS-2 boundaries, webhook forms, X-Twilio-Signature against the vectors of
 * Twilio's documentation, inbound keywords, TwiML and the request form.
 * The HTTP exchange itself is tested against a Twilio-shaped server by
 * tests/integration/providers.test.js. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "providers/twilio.h"

/* n copies of the UTF-8 character c, in a static buffer. */
static const char *rep(const char *c, size_t n)
{
    static char buf[8192];
    size_t k = strlen(c), used = 0;
    for (size_t i = 0; i < n && used + k < sizeof(buf); i++, used += k)
        memcpy(buf + used, c, k);
    buf[used] = '\0';
    return buf;
}

/* Appends n copies of the UTF-8 character c to buf (NUL-terminated, 8192). */
static char *add(char *buf, const char *c, size_t n)
{
    size_t k = strlen(c), used = strlen(buf);
    for (size_t i = 0; i < n && used + k < 8192; i++, used += k)
        memcpy(buf + used, c, k);
    buf[used] = '\0';
    return buf;
}

static size_t segments(const char *body, bool *ucs2, size_t *units)
{
    twilio_segments_t s;
    assert_true(twilio_count_segments(body, &s));
    if (ucs2)
        *ucs2 = s.ucs2;
    if (units)
        *units = s.units;
    return s.segments;
}

static void test_gsm_boundaries(void **state)
{
    (void)state;
    bool ucs2;
    size_t units;
    assert_int_equal(segments("", &ucs2, &units), 1);
    assert_int_equal(segments(rep("a", 160), &ucs2, &units), 1);
    assert_false(ucs2);
    assert_int_equal(units, 160);
    assert_int_equal(segments(rep("a", 161), NULL, NULL), 2);
    assert_int_equal(segments(rep("a", 306), NULL, NULL), 2);
    assert_int_equal(segments(rep("a", 307), NULL, NULL), 3);
    /* GSM basic characters beyond ASCII stay GSM-7 */
    assert_int_equal(segments("\xc3\xa9t\xc3\xa9 \xc3\x9f \xce\x94 \xc2\xa3", &ucs2, &units), 1);
    assert_false(ucs2);
    assert_int_equal(units, 9);
}

static void test_gsm_extension(void **state)
{
    (void)state;
    bool ucs2;
    size_t units;
    /* each extension character takes two septets */
    assert_int_equal(segments(rep("{", 80), &ucs2, &units), 1);
    assert_false(ucs2);
    assert_int_equal(units, 160);
    assert_int_equal(segments(rep("[", 81), NULL, NULL), 2);
    assert_int_equal(segments(rep("\xe2\x82\xac", 80), &ucs2, &units), 1); /* euro sign */
    assert_false(ucs2);
    assert_int_equal(units, 160);
    /* 152 'a' then '^': 154 septets; in parts of 153 the pair is not split */
    char body[8192] = "";
    assert_int_equal(segments(add(add(body, "a", 152), "^", 1), NULL, &units), 1);
    add(body, "b", 7); /* 161 septets */
    assert_int_equal(segments(body, NULL, &units), 2);
    assert_int_equal(units, 161);
    /* 152 + 2 + 152 = 306 septets would be 2 parts if the escape could split;
     * it cannot, so the escape moves to part two and 152 + 154 needs three */
    body[0] = '\0';
    add(add(add(body, "a", 152), "^", 1), "a", 152);
    assert_int_equal(segments(body, NULL, &units), 3);
    assert_int_equal(units, 306);
    /* the backtick is not GSM at all */
    assert_int_equal(segments("`", &ucs2, NULL), 1);
    assert_true(ucs2);
}

static void test_ucs2_boundaries(void **state)
{
    (void)state;
    bool ucs2;
    size_t units;
    const char *e = "\xe4\xb8\xad"; /* a CJK character */
    assert_int_equal(segments(rep(e, 70), &ucs2, &units), 1);
    assert_true(ucs2);
    assert_int_equal(units, 70);
    assert_int_equal(segments(rep(e, 71), NULL, NULL), 2);
    assert_int_equal(segments(rep(e, 134), NULL, NULL), 2);
    assert_int_equal(segments(rep(e, 135), NULL, NULL), 3);
    /* one non-GSM character turns the whole message UCS-2 */
    char body[8192] = "";
    assert_int_equal(segments(add(add(body, "a", 70), "\xc4\x9f", 1), &ucs2, &units), 2);
    assert_true(ucs2);
    assert_int_equal(units, 71);
    /* an emoji is two UTF-16 units and is never split */
    assert_int_equal(segments(rep("\xf0\x9f\x98\x80", 35), NULL, &units), 1);
    assert_int_equal(units, 70);
    body[0] = '\0';
    add(add(body, "x\xc4\x9f", 33), "\xf0\x9f\x98\x80", 1); /* 66 + 2 */
    assert_int_equal(segments(body, NULL, &units), 1);
    body[0] = '\0';
    /* 66 + 2 + 5 = 73 units: the pair moves to part two */
    add(add(add(body, "\xc4\x9f", 66), "\xf0\x9f\x98\x80", 1), "a", 5);
    assert_int_equal(segments(body, NULL, &units), 2);
    assert_int_equal(units, 73);
    twilio_segments_t s;
    assert_false(twilio_count_segments("\xff", &s));
}

static void test_form_parse(void **state)
{
    (void)state;
    char body[] = "MessageSid=SM123&Body=Stop+it%21&From=%2B15551234567&Empty=&Flag";
    twilio_param_t p[8];
    size_t n;
    assert_true(twilio_form_parse(body, p, 8, &n));
    assert_int_equal(n, 5);
    assert_string_equal(twilio_form_get(p, n, "Body"), "Stop it!");
    assert_string_equal(twilio_form_get(p, n, "From"), "+15551234567");
    assert_string_equal(twilio_form_get(p, n, "Empty"), "");
    assert_string_equal(twilio_form_get(p, n, "Flag"), "");
    assert_null(twilio_form_get(p, n, "To"));
    char nul[] = "a=%00";
    assert_false(twilio_form_parse(nul, p, 8, &n));
    char bad[] = "a=%zz";
    assert_false(twilio_form_parse(bad, p, 8, &n));
    char short_esc[] = "a=%4";
    assert_false(twilio_form_parse(short_esc, p, 8, &n));
    char noname[] = "=x";
    assert_false(twilio_form_parse(noname, p, 8, &n));
    char utf[] = "a=%C3%28";
    assert_false(twilio_form_parse(utf, p, 8, &n));
    char many[] = "a=1&b=2&c=3";
    assert_false(twilio_form_parse(many, p, 2, &n));
    char empty[] = "";
    assert_true(twilio_form_parse(empty, p, 8, &n));
    assert_int_equal(n, 0);
}

/* The examples of Twilio's "Webhooks security" page. */
static void test_signature_vectors(void **state)
{
    (void)state;
    const char *url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    twilio_param_t p[] = {
        {"To", "+18005551212"},   {"Digits", "1234"},         {"CallSid", "CA1234567890ABCDE"},
        {"From", "+14158675310"}, {"Caller", "+14158675310"},
    };
    char sig[TWILIO_SIGNATURE_LEN + 1];
    assert_true(twilio_signature("12345", url, p, 5, sig));
    assert_string_equal(sig, "GvWf1cFY/Q7PnoempGyD5oXAezc=");
    assert_true(twilio_signature_ok("12345", url, p, 5, "GvWf1cFY/Q7PnoempGyD5oXAezc="));
    twilio_param_t q[] = {
        {"CallSid", "CA1234567890ABCDE"}, {"Caller", "+12349013030"}, {"Digits", "1234"},
        {"From", "+12349013030"},         {"To", "+18005551212"},
    };
    assert_true(twilio_signature_ok("12345", url, q, 5, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    /* any change breaks it: token, URL, a value, a missing parameter */
    assert_false(twilio_signature_ok("12346", url, q, 5, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_false(twilio_signature_ok("12345", "https://mycompany.com/myapp.php?foo=1&bar=3", q, 5,
                                     "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    q[2].value = "1235";
    assert_false(twilio_signature_ok("12345", url, q, 5, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    q[2].value = "1234";
    assert_false(twilio_signature_ok("12345", url, q, 4, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_false(twilio_signature_ok("12345", url, q, 5, NULL));
    assert_false(twilio_signature_ok("12345", url, q, 5, ""));
    assert_false(twilio_signature_ok("", url, q, 5, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
    assert_false(twilio_signature_ok(NULL, url, q, 5, "0/KCTR6DLpKmkAf8muzZqo1nDgQ="));
}

static void test_keywords(void **state)
{
    (void)state;
    const char *stops[] = {"STOP",    "stop",        " Stop! ",      "stop.",
                           "STOPALL", "unsubscribe", "Cancel",       "end",
                           "QUIT",    "revoke",      "optout",       "OPT OUT",
                           "opt out", "Opt  Out",    "\n\tSTOP\r\n", "...stop..."};
    for (size_t i = 0; i < sizeof(stops) / sizeof(*stops); i++)
        assert_int_equal(twilio_classify_keyword(stops[i]), TWILIO_KEYWORD_STOP);
    const char *starts[] = {"START", "yes", "Unstop", " start. "};
    for (size_t i = 0; i < sizeof(starts) / sizeof(*starts); i++)
        assert_int_equal(twilio_classify_keyword(starts[i]), TWILIO_KEYWORD_START);
    assert_int_equal(twilio_classify_keyword("help"), TWILIO_KEYWORD_HELP);
    assert_int_equal(twilio_classify_keyword("INFO?"), TWILIO_KEYWORD_HELP);
    const char *none[] = {
        "please stop", "stopped",    "stop it",     "s.top", "",
        "   ",         "OPTOUT NOW", "st\xc3\xb6p", NULL,    "STOPSTOPSTOPSTOPSTOP"};
    for (size_t i = 0; i < sizeof(none) / sizeof(*none); i++)
        assert_int_equal(twilio_classify_keyword(none[i]), TWILIO_KEYWORD_NONE);
}

static void test_twiml(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 4096);
    assert_true(twilio_twiml(&b, NULL));
    assert_string_equal(b.data, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response/>");
    cd_buf_reset(&b);
    assert_true(twilio_twiml(&b, "a<b> & \"c\" 'd'"));
    assert_string_equal(b.data,
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>"
                        "a&lt;b&gt; &amp; &quot;c&quot; &apos;d&apos;</Message></Response>");
    cd_buf_free(&b);
}

static void test_message_form(void **state)
{
    (void)state;
    cd_buf_t b;
    cd_buf_init(&b, 4096);
    twilio_config_t cfg = {.from = "+15550001111"};
    assert_true(twilio_message_form(&cfg, "+15552223333", "Hi & bye = 100%",
                                    "https://x.test/webhooks/twilio/status?m=1", &b));
    assert_string_equal(b.data, "To=%2B15552223333&From=%2B15550001111&Body=Hi%20%26%20bye%20%3D%"
                                "20100%25&StatusCallback=https%3A%2F%2Fx.test%2Fwebhooks%2Ftwilio%"
                                "2Fstatus%3Fm%3D1");
    cd_buf_reset(&b);
    cfg.from = "MG0123456789abcdef0123456789abcdef";
    assert_true(twilio_message_form(&cfg, "+15552223333", "x", NULL, &b));
    assert_string_equal(
        b.data, "To=%2B15552223333&MessagingServiceSid=MG0123456789abcdef0123456789abcdef&Body=x");
    /* UTF-8 bytes escaped one by one, upper-case hex; the unreserved kept */
    cd_buf_reset(&b);
    assert_true(twilio_message_form(&cfg, "+1", "\xc3\xa9t\xc3\xa9 a-b.c_d~e\n\x7f", NULL, &b));
    assert_string_equal(b.data, "To=%2B1&MessagingServiceSid=MG0123456789abcdef0123456789abcdef&"
                                "Body=%C3%A9t%C3%A9%20a-b.c_d~e%0A%7F");
    /* a body longer than the encoder's stack buffer (the heap path): 1,000
     * spaces, each escaped */
    cd_buf_reset(&b);
    char body[1001];
    memset(body, ' ', 1000);
    body[1000] = '\0';
    assert_true(twilio_message_form(&cfg, "+1", body, NULL, &b));
    const char *enc = strstr(b.data, "&Body=");
    assert_non_null(enc);
    enc += 6;
    assert_int_equal(strlen(enc), 3000);
    for (size_t i = 0; i < 3000; i += 3)
        assert_memory_equal(enc + i, "%20", 3);
    cd_buf_free(&b);
}

/* What each HTTP status means for a message: 408 (the server gave up
 * waiting for the request, e.g. on an idle connection) is temporary, as 429
 * and 5xx; other 4xx permanent. */
static void test_status_outcome(void **state)
{
    (void)state;
    assert_int_equal(twilio_status_outcome(201), TWILIO_ACCEPTED);
    assert_int_equal(twilio_status_outcome(200), TWILIO_ACCEPTED);
    assert_int_equal(twilio_status_outcome(408), TWILIO_TEMPORARY);
    assert_int_equal(twilio_status_outcome(429), TWILIO_TEMPORARY);
    assert_int_equal(twilio_status_outcome(500), TWILIO_TEMPORARY);
    assert_int_equal(twilio_status_outcome(503), TWILIO_TEMPORARY);
    assert_int_equal(twilio_status_outcome(400), TWILIO_PERMANENT);
    assert_int_equal(twilio_status_outcome(401), TWILIO_PERMANENT);
    assert_int_equal(twilio_status_outcome(404), TWILIO_PERMANENT);
    assert_int_equal(twilio_status_outcome(302), TWILIO_PERMANENT);
}

static void test_send_needs_configuration(void **state)
{
    (void)state;
    twilio_client_t *c = twilio_client_new();
    assert_non_null(c);
    twilio_result_t r;
    twilio_config_t cfg = {.api_base = "http://127.0.0.1:9",
                           .account_sid = "AC../../x",
                           .auth_token = "t",
                           .from = "+15550001111",
                           .timeout_seconds = 2};
    assert_int_equal(twilio_send(c, &cfg, "+15552223333", "x", NULL, &r), TWILIO_PERMANENT);
    assert_non_null(strstr(r.error, "not configured"));
    /* nothing listens on port 9: never reached, so it may be retried */
    cfg.account_sid = "AC0123";
    assert_int_equal(twilio_send(c, &cfg, "+15552223333", "x", NULL, &r), TWILIO_TEMPORARY);
    assert_null(strstr(r.error, "t@"));
    twilio_client_free(c);
}

/* The Message resource GET: refused without configuration or with a sid
 * that could change the path; a refused connection is temporary (a GET can
 * be repeated); the provider opener refuses a bad API base. */
static void test_fetch_message(void **state)
{
    (void)state;
    twilio_client_t *c = twilio_client_new();
    assert_non_null(c);
    twilio_result_t r;
    twilio_config_t cfg = {.api_base = "http://127.0.0.1:9",
                           .account_sid = "AC0123",
                           .auth_token = "",
                           .timeout_seconds = 2};
    assert_int_equal(twilio_fetch_message(c, &cfg, "SM0123", &r), TWILIO_PERMANENT);
    assert_non_null(strstr(r.error, "not configured"));
    cfg.auth_token = "t";
    assert_int_equal(twilio_fetch_message(c, &cfg, "SM01/../x", &r), TWILIO_PERMANENT);
    assert_int_equal(twilio_fetch_message(c, &cfg, "", &r), TWILIO_PERMANENT);
    assert_int_equal(r.http_status, 0);
    assert_int_equal(twilio_fetch_message(c, &cfg, "SM0123", &r), TWILIO_TEMPORARY);
    assert_non_null(strstr(r.error, "Twilio request failed"));
    twilio_client_free(c);

    char err[256] = "";
    provider_settings_t s = {
        .twilio_account_sid = "AC0123", .twilio_auth_token = "t", .twilio_api_base = "ftp://x"};
    assert_null(twilio_provider_open(&s, err, sizeof(err)));
    assert_non_null(strstr(err, "TWILIO_API_BASE"));
    s.twilio_api_base = "";
    sms_provider_t *p = twilio_provider_open(&s, err, sizeof(err));
    assert_non_null(p);
    assert_string_equal(p->ops->name, "twilio");
    p->ops->close(p);
    s.twilio_auth_token = "";
    assert_null(twilio_provider_open(&s, err, sizeof(err)));
}

/* twilio_answer_scan reads what json_loadb + json_object_get read (string or
 * integer text, cut to the field's size) and refuses what jansson refuses. */
static void same_as_jansson(const char *json, size_t len)
{
    const char *names[] = {"sid", "status", "num_segments", "code", "message"};
    char got[5][64];
    twilio_answer_field_t f[5];
    for (size_t i = 0; i < 5; i++)
        f[i] = (twilio_answer_field_t){names[i], got[i], i == 1 ? 4 : sizeof(got[i])};
    bool ok = twilio_answer_scan(json, len, f, 5);
    json_t *j = json_loadb(json, len, 0, NULL);
    if (ok != (json_is_object(j) != 0))
        fail_msg("%s: scan %d, jansson %d", json, ok, json_is_object(j) != 0);
    for (size_t i = 0; i < 5; i++) {
        char want[64] = "";
        json_t *v = json_object_get(j, names[i]);
        if (json_is_string(v))
            snprintf(want, f[i].cap, "%s", json_string_value(v));
        else if (json_is_integer(v))
            snprintf(want, f[i].cap, "%lld", (long long)json_integer_value(v));
        assert_string_equal(want, got[i]);
    }
    json_decref(j);
}

static void test_answer_scan(void **state)
{
    (void)state;
    char sid[64], status[32], segs[24], price[32];
    twilio_answer_field_t f[] = {{"sid", sid, sizeof(sid)},
                                 {"status", status, sizeof(status)},
                                 {"num_segments", segs, sizeof(segs)},
                                 {"price", price, sizeof(price)}};
    const char *msg =
        "{\"account_sid\": \"ACb\", \"api_version\": \"2010-04-01\", \"body\": \"Hi \\\"C1\\\"\\n"
        "Reply STOP\", \"date_created\": \"Thu, 24 Aug 2023 05:01:45 +0000\", \"direction\": "
        "\"outbound-api\", \"error_code\": null, \"num_media\": \"0\", \"num_segments\": \"2\", "
        "\"price\": null, \"price_unit\": \"USD\", \"sid\": \"SM0123456789abcdef\", \"status\": "
        "\"queued\", \"subresource_uris\": {\"media\": \"/x/Media.json\", \"sid\": \"nested\"}, "
        "\"tags\": [1, -2.5e-3, {\"sid\": [true, false]}], \"uri\": \"/x.json\"}";
    assert_true(twilio_answer_scan(msg, strlen(msg), f, 4));
    assert_string_equal(sid, "SM0123456789abcdef"); /* the nested "sid" is not the message's */
    assert_string_equal(status, "queued");
    assert_string_equal(segs, "2");
    assert_string_equal(price, ""); /* null */
    same_as_jansson(msg, strlen(msg));

    /* escapes and surrogate pairs decoded, the last of a repeated name wins */
    const char *esc = "{\"s\\u0069d\":\"A\\u00e9\\ud83d\\ude00\\/\\t\",\"status\":\"x\","
                      "\"status\":12,\"num_segments\":-0}";
    assert_true(twilio_answer_scan(esc, strlen(esc), f, 4));
    assert_string_equal(sid, "A\xc3\xa9\xf0\x9f\x98\x80/\t");
    assert_string_equal(status, "12");
    assert_string_equal(segs, "0");
    same_as_jansson(esc, strlen(esc));

    /* refused: every field then "" */
    const char *bad[] = {
        "",
        "[]",
        "{\"sid\":\"a\"} x",
        "{\"sid\":\"a\",}",
        "{\"sid\":01}",
        "{\"sid\":\"\\u0000\"}",
        "{\"sid\":\"\\ud800\"}",
        "{\"sid\":\"\\udc00\"}",
        "{\"sid\":\"\\ud800\\u0041\"}",
        "{\"sid\":\"\\x\"}",
        "{\"sid\":\"\xc0\xaf\"}",
        "{\"sid\":\"\xed\xa0\x80\"}",
        "{\"sid\":\"a\tb\"}",
        "{\"sid\":9223372036854775808}",
        "{\"sid\":-9223372036854775809}",
        "{\"sid\":1e999}",
        "{\"sid\":1.}",
        "{\"sid\":-}",
        "{\"sid\":tru}",
        "{\"sid\" \"a\"}",
        "{sid:1}",
        "{\"sid\":\"a\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_false(twilio_answer_scan(bad[i], strlen(bad[i]), f, 4));
        assert_string_equal(sid, "");
        same_as_jansson(bad[i], strlen(bad[i]));
    }
    const char *good[] = {
        " {\"sid\":9223372036854775807} \r\n\t",
        "{\"sid\":-9223372036854775808,\"status\":\"queued\"}",
        "{\"sid\":1e-999}",
        "{\"sid\":\"0123456789012345678901234567890123456789\",\"status\":\"accepted\"}",
        "{\"code\":21211,\"message\":\"The 'To' number +1555 is not a valid phone number.\"}",
        "{\"sid\":[[[]]],\"status\":{}}",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_true(twilio_answer_scan(good[i], strlen(good[i]), f, 4));
        same_as_jansson(good[i], strlen(good[i]));
    }
    /* jansson's lexer drops a NUL byte right after a number or a word */
    same_as_jansson("{\"sid\":12\0}", 11);
    same_as_jansson("{\"sid\":null\0,\"status\":\"q\"}", 26);
    same_as_jansson("{\"sid\":\"a\"\0}", 12);
    same_as_jansson("{\"sid\":1}\0", 10);

    /* nesting: jansson's 2,048 levels at most, the top object the first */
    static char deep[2 * 2100 + 16];
    for (size_t depth = 2046; depth <= 2050; depth++) {
        size_t n = 0;
        n += (size_t)snprintf(deep, sizeof(deep), "{\"sid\":\"d\",\"a\":");
        for (size_t k = 0; k < depth - 1; k++)
            deep[n++] = '[';
        for (size_t k = 0; k < depth - 1; k++)
            deep[n++] = ']';
        deep[n++] = '}';
        same_as_jansson(deep, n);
        n = (size_t)snprintf(deep, sizeof(deep), "{\"a\":");
        for (size_t k = 0; k < depth - 2; k++)
            deep[n++] = '[';
        deep[n++] = '1';
        for (size_t k = 0; k < depth - 2; k++)
            deep[n++] = ']';
        deep[n++] = '}';
        same_as_jansson(deep, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gsm_boundaries),
        cmocka_unit_test(test_gsm_extension),
        cmocka_unit_test(test_ucs2_boundaries),
        cmocka_unit_test(test_form_parse),
        cmocka_unit_test(test_signature_vectors),
        cmocka_unit_test(test_keywords),
        cmocka_unit_test(test_twiml),
        cmocka_unit_test(test_message_form),
        cmocka_unit_test(test_status_outcome),
        cmocka_unit_test(test_send_needs_configuration),
        cmocka_unit_test(test_fetch_message),
        cmocka_unit_test(test_answer_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
