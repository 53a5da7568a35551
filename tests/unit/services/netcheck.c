/* netcheck.c: unit tests for the check_port allowlist of src/services/netcheck.c: parsing
 * CHECK_PORT_ALLOW, prefix matching at byte and bit boundaries, loopback always allowed,
 * IPv4-mapped IPv6 treated as IPv4, everything else refused; and host-name validation. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "services/netinfo.h"

/* Parses a numeric address into (family, ip) through a sockaddr, as the service does. */
static void addr_of(const char *s, uint8_t *fam, uint8_t ip[16])
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, s, &in->sin_addr) == 1)
        in->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, s, &in6->sin6_addr) == 1)
        in6->sin6_family = AF_INET6;
    else
        fail_msg("bad test address %s", s);
    assert_int_equal(svc_netcheck_addr((struct sockaddr *)&ss, fam, ip), 0);
}

static bool allowed(const svc_net_prefix_t *l, size_t n, const char *s)
{
    uint8_t fam, ip[16];
    addr_of(s, &fam, ip);
    return svc_netcheck_allowed(l, n, fam, ip);
}

static void test_parse(void **state)
{
    (void)state;
    svc_net_prefix_t l[8];
    assert_int_equal(svc_netcheck_parse_allow("", l, 8), 0);
    assert_int_equal(svc_netcheck_parse_allow(NULL, l, 8), 0);
    assert_int_equal(svc_netcheck_parse_allow("10.0.0.0/8, 192.168.1.5,fd00::/8,,", l, 8), 3);
    assert_int_equal(l[0].family, 4);
    assert_int_equal(l[0].bits, 8);
    assert_int_equal(l[1].bits, 32);
    assert_int_equal(l[2].family, 6);
    assert_int_equal(l[2].bits, 8);
    assert_int_equal(svc_netcheck_parse_allow("example.com", l, 8), -EINVAL);
    assert_int_equal(svc_netcheck_parse_allow("10.0.0.0/33", l, 8), -EINVAL);
    assert_int_equal(svc_netcheck_parse_allow("::/129", l, 8), -EINVAL);
    assert_int_equal(svc_netcheck_parse_allow("10.0.0.0/", l, 8), -EINVAL);
    assert_int_equal(svc_netcheck_parse_allow("10.0.0.0/-1", l, 8), -EINVAL);
    assert_int_equal(svc_netcheck_parse_allow("10.0.0.0/8x", l, 8), -EINVAL);
    assert_int_equal(svc_netcheck_parse_allow("1.1.1.1,2.2.2.2,3.3.3.3", l, 2), -ENOSPC);
}

static void test_match(void **state)
{
    (void)state;
    svc_net_prefix_t l[8];
    int n =
        svc_netcheck_parse_allow("10.0.0.0/8,172.16.0.0/12,192.0.2.7,fd00::/8,2001:db8::/33", l, 8);
    assert_int_equal(n, 5);
    /* loopback, always */
    assert_true(allowed(l, 0, "127.0.0.1"));
    assert_true(allowed(l, 0, "127.255.1.2"));
    assert_true(allowed(l, 0, "::1"));
    assert_true(allowed(l, 0, "::ffff:127.0.0.1")); /* mapped: treated as IPv4 */
    assert_false(allowed(l, 0, "::2"));
    assert_false(allowed(l, 0, "128.0.0.1"));
    assert_false(allowed(l, 0, "0.0.0.0"));
    assert_false(allowed(l, 0, "::"));
    /* nothing else without an allowlist */
    assert_false(allowed(l, 0, "10.1.2.3"));
    assert_false(allowed(l, 0, "8.8.8.8"));
    /* configured networks, at their edges */
    assert_true(allowed(l, (size_t)n, "10.0.0.0"));
    assert_true(allowed(l, (size_t)n, "10.255.255.255"));
    assert_false(allowed(l, (size_t)n, "11.0.0.0"));
    assert_false(allowed(l, (size_t)n, "9.255.255.255"));
    assert_true(allowed(l, (size_t)n, "172.16.0.1"));
    assert_true(allowed(l, (size_t)n, "172.31.255.255"));
    assert_false(allowed(l, (size_t)n, "172.32.0.0"));
    assert_false(allowed(l, (size_t)n, "172.15.255.255"));
    assert_true(allowed(l, (size_t)n, "192.0.2.7"));
    assert_false(allowed(l, (size_t)n, "192.0.2.8"));
    assert_true(allowed(l, (size_t)n, "::ffff:10.9.9.9"));
    assert_true(allowed(l, (size_t)n, "fd12:3456::1"));
    assert_false(allowed(l, (size_t)n, "fe80::1"));
    assert_true(allowed(l, (size_t)n, "2001:db8:7fff::1"));
    assert_false(allowed(l, (size_t)n, "2001:db8:8000::1"));
    assert_false(allowed(l, (size_t)n, "8.8.8.8"));
    /* a /0 allows its whole family only */
    svc_net_prefix_t all4;
    assert_int_equal(svc_netcheck_parse_allow("0.0.0.0/0", &all4, 1), 1);
    assert_true(allowed(&all4, 1, "8.8.8.8"));
    assert_false(allowed(&all4, 1, "2001:4860::8888"));
}

static void test_host_valid(void **state)
{
    (void)state;
    const char *good[] = {"localhost", "a.b-c.example.", "x_y.internal", "1.2.3.4",
                          "::1",       "fe80::1",        "A1",           "a.b.c.d.e.f"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(svc_netcheck_host_valid(good[i], strlen(good[i])));
    const char *bad[] = {"", ".", "-a", "a-", "a..b", "a b", "a/b", "a:b", "ä.com", "a.-b", ".a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(svc_netcheck_host_valid(bad[i], strlen(bad[i])));
    assert_false(svc_netcheck_host_valid("a\0b", 3));
    char label[80];
    memset(label, 'a', 64);
    label[64] = 0;
    assert_false(svc_netcheck_host_valid(label, 64));
    assert_true(svc_netcheck_host_valid(label, 63));
    char longname[300];
    for (size_t i = 0; i < 254; i++)
        longname[i] = i % 2 ? '.' : 'a'; /* "a.a.a...": 254 characters ending with '.' */
    longname[253] = 'a';                 /* 254 characters: one too many */
    assert_false(svc_netcheck_host_valid(longname, 254));
    assert_true(svc_netcheck_host_valid(longname, 253));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_host_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
