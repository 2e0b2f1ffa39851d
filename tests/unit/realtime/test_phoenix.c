/* Unit tests for realtime/phoenix: both Phoenix serialisations, binary user broadcasts (kind 3 in,
 * kind 4 out) and malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "realtime/phoenix.h"

static void test_decode_v1(void **state)
{
    (void)state;
    const char *s =
        "{\"topic\":\"realtime:room\",\"event\":\"phx_join\",\"payload\":{\"config\":{}},"
        "\"ref\":\"1\",\"join_ref\":\"1\"}";
    phx_msg_t m;
    const char *why = NULL;
    assert_true(phx_decode_text(PHX_VSN_1, s, strlen(s), &m, &why));
    assert_string_equal(m.topic, "realtime:room");
    assert_string_equal(m.event, "phx_join");
    assert_string_equal(m.ref, "1");
    assert_string_equal(m.join_ref, "1");
    assert_true(json_is_object(json_object_get(m.payload, "config")));
    phx_msg_free(&m);
    /* heartbeat: no join_ref; numeric ref accepted */
    s = "{\"topic\":\"phoenix\",\"event\":\"heartbeat\",\"payload\":{},\"ref\":7}";
    assert_true(phx_decode_text(PHX_VSN_1, s, strlen(s), &m, &why));
    assert_null(m.join_ref);
    assert_string_equal(m.ref, "7");
    phx_msg_free(&m);
}

static void test_decode_v2(void **state)
{
    (void)state;
    const char *s = "[null,\"3\",\"realtime:x\",\"access_token\",{\"access_token\":\"t\"}]";
    phx_msg_t m;
    const char *why = NULL;
    assert_true(phx_decode_text(PHX_VSN_2, s, strlen(s), &m, &why));
    assert_null(m.join_ref);
    assert_string_equal(m.ref, "3");
    assert_string_equal(m.event, "access_token");
    assert_string_equal(json_string_value(json_object_get(m.payload, "access_token")), "t");
    phx_msg_free(&m);
    /* null payload becomes {} */
    s = "[\"1\",\"1\",\"realtime:x\",\"phx_leave\",null]";
    assert_true(phx_decode_text(PHX_VSN_2, s, strlen(s), &m, &why));
    assert_int_equal(json_object_size(m.payload), 0);
    phx_msg_free(&m);
}

static void test_decode_rejects(void **state)
{
    (void)state;
    const char *bad_v2[] = {
        "",
        "[]",
        "{}",
        "[1,2,3,4]",
        "[null,null,\"t\",\"e\",[]]",
        "[null,null,null,\"e\",{}]",
        "[null,null,\"t\",5,{}]",
        "[null,null,\"t\",\"e\",{},6]",
        "[null,null,\"t\",\"e\",{\"a\":1,\"a\":2}]",
        "[null,null,\"t\\u0000x\",\"e\",{}]",
        "[null,{},\"t\",\"e\",{}]",
        "not json",
    };
    for (size_t i = 0; i < sizeof(bad_v2) / sizeof(bad_v2[0]); i++) {
        phx_msg_t m;
        const char *why = NULL;
        if (phx_decode_text(PHX_VSN_2, bad_v2[i], strlen(bad_v2[i]), &m, &why))
            fail_msg("accepted: %s", bad_v2[i]);
        assert_non_null(why);
    }
    /* v1 wants an object */
    phx_msg_t m;
    const char *why = NULL;
    const char *arr = "[null,null,\"t\",\"e\",{}]";
    assert_false(phx_decode_text(PHX_VSN_1, arr, strlen(arr), &m, &why));
    /* nesting bound */
    char deep[200];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof(deep), "[null,null,\"t\",\"e\",{\"a\":");
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    for (int i = 0; i < 40; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n++] = ']';
    assert_false(phx_decode_text(PHX_VSN_2, deep, n, &m, &why));
    /* topic longer than 255 bytes */
    char longt[400];
    int l = snprintf(longt, sizeof(longt), "[null,null,\"%0300d\",\"e\",{}]", 0);
    assert_false(phx_decode_text(PHX_VSN_2, longt, (size_t)l, &m, &why));
}

static void test_decode_binary_broadcast(void **state)
{
    (void)state;
    /* kind 3, join_ref "1", ref "2", topic "realtime:r", event "ev", no meta, JSON */
    uint8_t f[64];
    size_t n = 0;
    const char *topic = "realtime:r", *payload = "{\"x\":1}";
    f[n++] = 3;
    f[n++] = 1;
    f[n++] = 1;
    f[n++] = (uint8_t)strlen(topic);
    f[n++] = 2;
    f[n++] = 0;
    f[n++] = 1;
    f[n++] = '1';
    f[n++] = '2';
    memcpy(f + n, topic, strlen(topic));
    n += strlen(topic);
    memcpy(f + n, "ev", 2);
    n += 2;
    memcpy(f + n, payload, strlen(payload));
    n += strlen(payload);
    phx_msg_t m;
    const char *why = NULL;
    assert_true(phx_decode_binary(f, n, &m, &why));
    assert_string_equal(m.join_ref, "1");
    assert_string_equal(m.ref, "2");
    assert_string_equal(m.topic, "realtime:r");
    assert_string_equal(m.event, "broadcast");
    assert_true(m.binary);
    assert_true(m.raw_is_json);
    assert_string_equal(json_string_value(json_object_get(m.payload, "type")), "broadcast");
    assert_string_equal(json_string_value(json_object_get(m.payload, "event")), "ev");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(m.payload, "payload"), "x")), 1);
    phx_msg_free(&m);
    /* truncated, wrong kind, bad encoding, invalid JSON payload */
    assert_false(phx_decode_binary(f, 10, &m, &why));
    f[0] = 4;
    assert_false(phx_decode_binary(f, n, &m, &why));
    f[0] = 3;
    f[6] = 2;
    assert_false(phx_decode_binary(f, n, &m, &why));
    f[6] = 1;
    f[n - 1] = '!';
    assert_false(phx_decode_binary(f, n, &m, &why));
    /* binary (encoding 0) payload is kept raw */
    f[6] = 0;
    assert_true(phx_decode_binary(f, n, &m, &why));
    assert_false(m.raw_is_json);
    assert_int_equal(m.raw_len, strlen(payload));
    assert_true(json_is_null(json_object_get(m.payload, "payload")));
    phx_msg_free(&m);
}

static void test_encode(void **state)
{
    (void)state;
    size_t len;
    char *s = phx_encode(PHX_VSN_1, NULL, "7", "phoenix", "phx_reply",
                         "{\"status\":\"ok\",\"response\":{}}", 4096, &len);
    assert_string_equal(s, "{\"topic\":\"phoenix\",\"event\":\"phx_reply\",\"payload\":{\"status\":"
                           "\"ok\",\"response\":{}},\"ref\":\"7\",\"join_ref\":null}");
    assert_int_equal(len, strlen(s));
    free(s);
    s = phx_encode(PHX_VSN_2, "1", NULL, "realtime:a\"b", "x", "{}", 4096, &len);
    assert_string_equal(s, "[\"1\",null,\"realtime:a\\\"b\",\"x\",{}]");
    free(s);
    assert_null(phx_encode(PHX_VSN_2, "1", NULL, "t", "x", "{}", 8, &len)); /* over max */
    uint8_t *b =
        phx_encode_user_broadcast("realtime:r", "ev", true, (const uint8_t *)"{}", 2, &len);
    assert_non_null(b);
    assert_int_equal(len, 5 + 10 + 2 + 2);
    assert_int_equal(b[0], 4);
    assert_int_equal(b[1], 10);
    assert_int_equal(b[2], 2);
    assert_int_equal(b[3], 0);
    assert_int_equal(b[4], 1);
    assert_memory_equal(b + 5, "realtime:rev{}", 14);
    free(b);
    char longt[300];
    memset(longt, 'a', 299);
    longt[299] = '\0';
    assert_null(phx_encode_user_broadcast(longt, "e", true, NULL, 0, &len));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_v1),      cmocka_unit_test(test_decode_v2),
        cmocka_unit_test(test_decode_rejects), cmocka_unit_test(test_decode_binary_broadcast),
        cmocka_unit_test(test_encode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
