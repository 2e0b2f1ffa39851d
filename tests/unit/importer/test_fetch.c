/* Unit tests for the importer's own pieces (src/importer/fetch.c, sync.c):
 * which addresses a URL import may connect to (the SSRF guard), the ids made
 * for COPY, and the table-name slug of a data source. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "core/crypto.h"
#include "importer/importer_internal.h"

static bool public_addr(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':')) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
    }
    return import__address_public((const struct sockaddr *)&ss);
}

static void test_address_guard(void **state)
{
    (void)state;
    const char *refused[] = {
        "127.0.0.1",
        "127.255.255.254",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "255.255.255.255",
        "192.0.0.8",
        "198.18.0.1",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "64:ff9b::a9fe:a9fe",
        "::ffff:169.254.169.254",
        "2001:db8::1",
        "fec0::1",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
        if (public_addr(refused[i]))
            fail_msg("%s must be refused", refused[i]);
    const char *allowed[] = {"8.8.8.8",     "1.1.1.1",       "172.32.0.1",      "172.15.255.255",
                             "100.128.0.1", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8",
                             "169.253.1.1", "11.0.0.1"};
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
        if (!public_addr(allowed[i]))
            fail_msg("%s must be allowed", allowed[i]);
    /* not an IP family at all */
    struct sockaddr sa = {.sa_family = AF_UNIX};
    assert_false(import__address_public(&sa));
    assert_false(import__address_public(NULL));
}

static void test_uuid_format(void **state)
{
    (void)state;
    unsigned char b[16];
    memset(b, 0xff, sizeof(b));
    char out[37];
    import__uuid_format(b, out);
    assert_string_equal(out, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    assert_true(cd_is_uuid(out));
    memset(b, 0, sizeof(b));
    import__uuid_format(b, out);
    assert_string_equal(out, "00000000-0000-4000-8000-000000000000");
}

static void test_uuid7_format(void **state)
{
    (void)state;
    const unsigned char rnd[6] = {0xde, 0xad, 0xbe, 0xef, 0x01, 0x02};
    char a[37], b[37], c[37];
    /* 2026-01-01T00:00:00Z in ms = 0x019b76daa800 */
    import__uuid7_format(1767225600000ULL, 0, rnd, a);
    assert_string_equal(a, "019b76da-a800-7000-8000-deadbeef0102");
    import__uuid7_format(1767225600000ULL, (1u << 26) - 1, rnd, b);
    assert_string_equal(b, "019b76da-a800-7fff-bfff-deadbeef0102"); /* version and variant kept */
    import__uuid7_format(1767225600001ULL, 0, rnd, c);
    /* increasing (ms, seq) give increasing ids, as text and as uuid bytes */
    assert_true(strcmp(a, b) < 0);
    assert_true(strcmp(b, c) < 0);
    char prev[37] = "";
    for (uint32_t seq = 0; seq < 5000; seq += 7) {
        char id[37];
        import__uuid7_format(1767225600000ULL, seq, rnd, id);
        assert_true(strcmp(prev, id) < 0);
        memcpy(prev, id, sizeof(id));
    }
}

static void test_slug(void **state)
{
    (void)state;
    char out[48];
    import__slug("Trade Show Leads (2024)", out, sizeof(out));
    assert_string_equal(out, "trade_show_leads_2024");
    import__slug("2024 contacts", out, sizeof(out));
    assert_string_equal(out, "s2024_contacts");
    import__slug("  ---  ", out, sizeof(out));
    assert_string_equal(out, "source");
    import__slug(NULL, out, sizeof(out));
    assert_string_equal(out, "source");
    import__slug("Prénom; DROP TABLE x;--", out, sizeof(out));
    assert_string_equal(out, "pr_nom_drop_table_x");
    import__slug("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", out,
                 sizeof(out));
    assert_true(strlen(out) <= 40);
    /* what create_import_table accepts: ^[a-z_][a-z0-9_]{0,46}$ */
    for (const char *p = out; *p; p++)
        assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_address_guard),
        cmocka_unit_test(test_uuid_format),
        cmocka_unit_test(test_uuid7_format),
        cmocka_unit_test(test_slug),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
