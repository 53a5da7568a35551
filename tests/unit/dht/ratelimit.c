/* Tests src/dht/ratelimit.c: per-source burst then refusal, refill over time, the global cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "dht/dht-internal.h"

static dht_addr_t ip4(uint8_t c, uint8_t d)
{
    dht_addr_t a = {.family = 4, .ip = {10, 0, c, d}, .port = 4000};
    return a;
}

static int allowed(dht_ratelimit_t *rl, const dht_addr_t *a, uint64_t now, int tries)
{
    int n = 0;
    for (int i = 0; i < tries; i++)
        n += dht_rl_allow(rl, a, now);
    return n;
}

static void test_burst_and_refill(void **state)
{
    (void)state;
    dht_ratelimit_t rl;
    /* 10/s per source, burst 5, global 1000/s */
    assert_int_equal(dht_rl_init(&rl, 10, 5, 1000), 0);
    dht_addr_t a = ip4(0, 1), b = ip4(0, 2);
    assert_int_equal(allowed(&rl, &a, 1000, 20), 5);
    assert_false(dht_rl_allow(&rl, &a, 1000));
    /* another source is not affected */
    assert_int_equal(allowed(&rl, &b, 1000, 20), 5);
    /* the port does not make another source */
    dht_addr_t a2 = a;
    a2.port = 9999;
    assert_false(dht_rl_allow(&rl, &a2, 1000));
    /* refill: 10/s is one token per 100 ms */
    assert_false(dht_rl_allow(&rl, &a, 1050));
    assert_int_equal(allowed(&rl, &a, 1100, 5), 1);
    assert_int_equal(allowed(&rl, &a, 1400, 5), 3);
    /* refill stops at the burst */
    assert_int_equal(allowed(&rl, &a, 100000, 20), 5);
    /* time going backwards gives nothing */
    assert_int_equal(allowed(&rl, &a, 50000, 5), 0);
    /* IPv6 sources are tracked by the full address */
    dht_addr_t v6 = {.family = 6, .ip = {0x20, 0x01, [15] = 1}, .port = 1};
    dht_addr_t v6b = v6;
    v6b.ip[15] = 2;
    assert_int_equal(allowed(&rl, &v6, 100000, 10), 5);
    assert_int_equal(allowed(&rl, &v6b, 100000, 10), 5);
    dht_rl_free(&rl);
}

static void test_global_cap(void **state)
{
    (void)state;
    dht_ratelimit_t rl;
    /* generous per source, 20/s in all (and a burst of one second) */
    assert_int_equal(dht_rl_init(&rl, 1000, 1000, 20), 0);
    int total = 0;
    for (int s = 0; s < 10; s++) {
        dht_addr_t a = ip4(1, (uint8_t)s);
        total += allowed(&rl, &a, 5000, 5);
    }
    assert_int_equal(total, 20);
    dht_addr_t fresh = ip4(2, 1);
    assert_false(dht_rl_allow(&rl, &fresh, 5000));
    /* 100 ms later: 2 more tokens in all */
    total = 0;
    for (int s = 0; s < 10; s++) {
        dht_addr_t a = ip4(3, (uint8_t)s);
        total += allowed(&rl, &a, 5100, 5);
    }
    assert_int_equal(total, 2);
    /* a refused request does not use up the per-source tokens (per-source refill negligible) */
    dht_rl_free(&rl);
    assert_int_equal(dht_rl_init(&rl, 0.001, 3, 2), 0);
    dht_addr_t a = ip4(4, 1), b = ip4(4, 2);
    assert_int_equal(allowed(&rl, &a, 1000, 10), 2); /* the global bucket allows 2 */
    assert_int_equal(allowed(&rl, &b, 1000, 10), 0);
    assert_int_equal(allowed(&rl, &b, 2000, 10), 2); /* b still has its burst */
    assert_int_equal(allowed(&rl, &a, 2000, 10), 0);
    assert_int_equal(allowed(&rl, &a, 3000, 10), 1); /* a's last token */
    assert_int_equal(allowed(&rl, &b, 3000, 10), 1); /* b's last token */
    assert_int_equal(allowed(&rl, &a, 4000, 10), 0);
    assert_int_equal(allowed(&rl, &b, 4000, 10), 0);
    dht_rl_free(&rl);
}

static void test_many_sources_bounded(void **state)
{
    (void)state;
    dht_ratelimit_t rl;
    assert_int_equal(dht_rl_init(&rl, 1, 2, 1e9), 0);
    /* far more sources than tracked: each new one still gets its burst */
    for (int s = 0; s < 4 * DHT_RATE_SOURCES; s++) {
        dht_addr_t a = {
            .family = 4, .ip = {10, (uint8_t)(s >> 16), (uint8_t)(s >> 8), (uint8_t)s}, .port = 1};
        assert_int_equal(allowed(&rl, &a, 1000 + (uint64_t)s, 3), 2);
    }
    /* a recently seen source keeps its state (no fresh burst) */
    int s = 4 * DHT_RATE_SOURCES - 1;
    dht_addr_t last = {
        .family = 4, .ip = {10, (uint8_t)(s >> 16), (uint8_t)(s >> 8), (uint8_t)s}, .port = 1};
    assert_false(dht_rl_allow(&rl, &last, 1000 + (uint64_t)s));
    dht_rl_free(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_and_refill),
        cmocka_unit_test(test_global_cap),
        cmocka_unit_test(test_many_sources_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
