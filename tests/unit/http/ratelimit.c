/* ratelimit.c: unit tests for the per-address token buckets of src/http/ratelimit.c: a burst then
 * refusals, refill over time up to the burst, the Retry-After value, the limit off, many more
 * addresses than the table holds (an active address keeps its limit, an idle one is forgotten,
 * the least recently seen of a set is the one replaced), a keyed set choice, a clock going back,
 * bad parameters. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/server-internal.h"

#define T0 1000000000ull

/* A v4-mapped address ::ffff:10.x.y.z from n. */
static void addr_of(uint32_t n, uint8_t a[16])
{
    memset(a, 0, 16);
    a[10] = a[11] = 0xff;
    a[12] = 10;
    a[13] = (uint8_t)(n >> 16);
    a[14] = (uint8_t)(n >> 8);
    a[15] = (uint8_t)n;
}

/* The slot index holding addr, or -1. */
static long slot_of(const http_ratelimit_t *rl, const uint8_t a[16])
{
    for (long i = 0; i < HTTP_MAX_RATE_ENTRIES; i++)
        if (rl->slots[i].used && memcmp(rl->slots[i].addr, a, 16) == 0) return i;
    return -1;
}

static void test_burst_then_refusal(void **state)
{
    (void)state;
    http_ratelimit_t rl;
    assert_int_equal(http_ratelimit_init(&rl, 10, 5), 0);
    uint8_t a[16], b[16];
    addr_of(1, a);
    addr_of(2, b);
    for (int i = 0; i < 5; i++)
        assert_int_equal(http_ratelimit_take(&rl, a, T0), 0);
    /* empty: one token takes 0.1 s, rounded up to 1 s */
    assert_int_equal(http_ratelimit_take(&rl, a, T0), 1);
    assert_int_equal(http_ratelimit_take(&rl, a, T0), 1);
    /* another address has its own full bucket */
    for (int i = 0; i < 5; i++)
        assert_int_equal(http_ratelimit_take(&rl, b, T0), 0);
    assert_true(http_ratelimit_take(&rl, b, T0) > 0);
    http_ratelimit_free(&rl);
    assert_null(rl.slots);
    http_ratelimit_free(&rl); /* twice is harmless */
}

static void test_refill(void **state)
{
    (void)state;
    http_ratelimit_t rl;
    assert_int_equal(http_ratelimit_init(&rl, 2, 4), 0);
    uint8_t a[16];
    addr_of(7, a);
    for (int i = 0; i < 4; i++)
        assert_int_equal(http_ratelimit_take(&rl, a, T0), 0);
    assert_int_not_equal(http_ratelimit_take(&rl, a, T0), 0);
    /* 2 per second: one token after 500 ms, not before */
    assert_int_not_equal(http_ratelimit_take(&rl, a, T0 + 499), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0 + 500), 0);
    assert_int_not_equal(http_ratelimit_take(&rl, a, T0 + 500), 0);
    /* two more after another second */
    assert_int_equal(http_ratelimit_take(&rl, a, T0 + 1500), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0 + 1500), 0);
    assert_int_not_equal(http_ratelimit_take(&rl, a, T0 + 1500), 0);
    /* an hour later the bucket holds the burst, no more */
    uint64_t t = T0 + 3600000;
    for (int i = 0; i < 4; i++)
        assert_int_equal(http_ratelimit_take(&rl, a, t), 0);
    assert_int_not_equal(http_ratelimit_take(&rl, a, t), 0);
    http_ratelimit_free(&rl);
}

static void test_retry_after(void **state)
{
    (void)state;
    http_ratelimit_t rl;
    uint8_t a[16];
    addr_of(9, a);
    /* one request per 10 s */
    assert_int_equal(http_ratelimit_init(&rl, 0.1, 1), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0), 10);
    assert_int_equal(http_ratelimit_take(&rl, a, T0 + 2500), 8); /* 7.5 s rounded up */
    assert_int_equal(http_ratelimit_take(&rl, a, T0 + 9000), 1);
    assert_int_equal(http_ratelimit_take(&rl, a, T0 + 10000), 0); /* the value was right */
    assert_int_equal(http_ratelimit_take(&rl, a, T0 + 10000), 10);
    http_ratelimit_free(&rl);

    /* 0.5 per second, bucket 2: a refused client that waits the given seconds gets through */
    assert_int_equal(http_ratelimit_init(&rl, 0.5, 2), 0);
    uint64_t t = T0;
    assert_int_equal(http_ratelimit_take(&rl, a, t), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, t), 0);
    for (int i = 0; i < 20; i++) {
        unsigned w = http_ratelimit_take(&rl, a, t);
        assert_int_equal(w, 2);
        assert_int_not_equal(http_ratelimit_take(&rl, a, t + w * 1000ull - 1), 0);
        t += w * 1000ull;
        assert_int_equal(http_ratelimit_take(&rl, a, t), 0);
    }
    http_ratelimit_free(&rl);

    /* a fast limit still says at least 1 s */
    assert_int_equal(http_ratelimit_init(&rl, 1000, 1), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0), 1);
    assert_int_equal(http_ratelimit_take(&rl, a, T0 + 1), 0);
    http_ratelimit_free(&rl);

    /* a very slow one does not overflow */
    assert_int_equal(http_ratelimit_init(&rl, 1e-12, 1), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0), UINT_MAX);
    http_ratelimit_free(&rl);
}

static void test_off_and_parameters(void **state)
{
    (void)state;
    http_ratelimit_t rl;
    uint8_t a[16];
    addr_of(3, a);
    assert_int_equal(http_ratelimit_init(&rl, 0, 0), 0);
    assert_null(rl.slots);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(http_ratelimit_take(&rl, a, T0), 0);
    http_ratelimit_free(&rl);

    assert_int_equal(http_ratelimit_init(&rl, -1, 10), -EINVAL);
    http_ratelimit_free(&rl);
    assert_int_equal(http_ratelimit_init(&rl, NAN, 10), -EINVAL);
    assert_int_equal(http_ratelimit_init(&rl, INFINITY, 10), -EINVAL);
    assert_int_equal(http_ratelimit_init(&rl, 1, -1), -EINVAL);
    assert_int_equal(http_ratelimit_init(&rl, 1, NAN), -EINVAL);
    assert_null(rl.slots);
    http_ratelimit_free(&rl);
    http_ratelimit_free(NULL);

    /* a burst below 1 is one second's worth: 5 at once, then refused */
    assert_int_equal(http_ratelimit_init(&rl, 5, 0), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(http_ratelimit_take(&rl, a, T0), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0), 1);
    http_ratelimit_free(&rl);
    /* a slow rate with no burst still lets one through */
    assert_int_equal(http_ratelimit_init(&rl, 0.5, 0.2), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0), 2);
    http_ratelimit_free(&rl);
}

/* Ten times the table's room of new addresses, one per millisecond: each starts with a full
 * bucket; an address seen every 4 of them stays limited (a set has 8 ways, so it is never the
 * least recently seen); one not seen again is forgotten and starts full. */
static void test_many_addresses(void **state)
{
    (void)state;
    http_ratelimit_t rl;
    assert_int_equal(http_ratelimit_init(&rl, 0.001, 3), 0); /* one token per 1000 s */
    uint8_t active[16], idle[16], a[16];
    memset(active, 0, 16);
    active[15] = 1; /* ::1 */
    memset(idle, 0, 16);
    idle[0] = 0x20;
    idle[1] = 0x01;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(http_ratelimit_take(&rl, active, T0), 0);
        assert_int_equal(http_ratelimit_take(&rl, idle, T0), 0);
    }
    assert_int_not_equal(http_ratelimit_take(&rl, active, T0), 0);
    assert_int_not_equal(http_ratelimit_take(&rl, idle, T0), 0);
    uint32_t n = 10 * HTTP_MAX_RATE_ENTRIES;
    uint64_t t = T0;
    for (uint32_t i = 0; i < n; i++) {
        t++;
        addr_of(i, a);
        assert_int_equal(http_ratelimit_take(&rl, a, t), 0);
        if (i % 4 == 3) assert_int_not_equal(http_ratelimit_take(&rl, active, t), 0);
    }
    size_t used = 0;
    for (size_t i = 0; i < HTTP_MAX_RATE_ENTRIES; i++)
        used += rl.slots[i].used;
    assert_int_equal(used, HTTP_MAX_RATE_ENTRIES); /* every way filled, nothing past the table */
    assert_true(slot_of(&rl, active) >= 0);
    assert_int_equal(slot_of(&rl, idle), -1);
    for (int i = 0; i < 3; i++) /* forgotten: a full bucket again */
        assert_int_equal(http_ratelimit_take(&rl, idle, t), 0);
    assert_int_not_equal(http_ratelimit_take(&rl, idle, t), 0);
    http_ratelimit_free(&rl);
}

/* Fills the set of a first address x0, touches x0 again, then adds one more address to that set:
 * the second oldest is replaced, x0 and the others stay. */
static void test_lru_within_set(void **state)
{
    (void)state;
    http_ratelimit_t rl;
    assert_int_equal(http_ratelimit_init(&rl, 1, 1), 0);
    uint8_t a[16];
    uint64_t t = T0;
    addr_of(0, a);
    assert_int_equal(http_ratelimit_take(&rl, a, t), 0);
    long set = slot_of(&rl, a) / HTTP_RATE_WAYS;
    uint32_t in_set[HTTP_RATE_WAYS + 1] = {0};
    size_t k = 1;
    uint32_t i = 1;
    for (; k < HTTP_RATE_WAYS; i++) { /* the ways of x0's set, oldest first */
        addr_of(i, a);
        assert_int_equal(http_ratelimit_take(&rl, a, ++t), 0);
        if (slot_of(&rl, a) / HTTP_RATE_WAYS == set) in_set[k++] = i;
        assert_true(i < 1000000);
    }
    addr_of(0, a);
    assert_int_equal(http_ratelimit_take(&rl, a, ++t), 0); /* x0 seen again */
    for (;; i++) {
        addr_of(i, a);
        assert_int_equal(http_ratelimit_take(&rl, a, ++t), 0);
        long s = slot_of(&rl, a);
        assert_true(s >= 0);
        if (s / HTTP_RATE_WAYS == set) break;
        assert_true(i < 1000000);
    }
    addr_of(0, a);
    assert_int_equal(slot_of(&rl, a) / HTTP_RATE_WAYS, set);
    addr_of(in_set[1], a);
    assert_int_equal(slot_of(&rl, a), -1); /* the least recently seen went */
    for (k = 2; k < HTTP_RATE_WAYS; k++) {
        addr_of(in_set[k], a);
        assert_int_equal(slot_of(&rl, a) / HTTP_RATE_WAYS, set);
    }
    http_ratelimit_free(&rl);
}

/* Two limiters place the same addresses in different sets (the hash is keyed per limiter). */
static void test_keyed_sets(void **state)
{
    (void)state;
    http_ratelimit_t r1, r2;
    assert_int_equal(http_ratelimit_init(&r1, 1, 1), 0);
    assert_int_equal(http_ratelimit_init(&r2, 1, 1), 0);
    int differ = 0;
    for (uint32_t i = 0; i < 16; i++) {
        uint8_t a[16];
        addr_of(i, a);
        http_ratelimit_take(&r1, a, T0);
        http_ratelimit_take(&r2, a, T0);
        long s1 = slot_of(&r1, a), s2 = slot_of(&r2, a);
        assert_true(s1 >= 0 && s2 >= 0);
        differ += s1 / HTTP_RATE_WAYS != s2 / HTTP_RATE_WAYS;
    }
    assert_true(differ > 0); /* all 16 equal by chance: 512^-16 */
    http_ratelimit_free(&r1);
    http_ratelimit_free(&r2);
}

static void test_clock_backwards(void **state)
{
    (void)state;
    http_ratelimit_t rl;
    assert_int_equal(http_ratelimit_init(&rl, 1, 2), 0);
    uint8_t a[16];
    addr_of(5, a);
    uint64_t t = T0 + 100000;
    assert_int_equal(http_ratelimit_take(&rl, a, t), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, t), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, t), 1);
    /* 100 s back: nothing refilled, the wait stays sane */
    assert_int_equal(http_ratelimit_take(&rl, a, T0), 1);
    assert_int_equal(http_ratelimit_take(&rl, a, T0 + 999), 1);
    /* a second after the new reading one token is there */
    assert_int_equal(http_ratelimit_take(&rl, a, T0 + 1000), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, T0 + 1000), 1);
    /* back to the old time: 99 s have passed since, the bucket is full, not more */
    assert_int_equal(http_ratelimit_take(&rl, a, t), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, t), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, t), 1);
    /* the extremes of the clock */
    assert_int_equal(http_ratelimit_take(&rl, a, UINT64_MAX), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, 0), 0);
    assert_int_equal(http_ratelimit_take(&rl, a, 0), 1);
    assert_int_equal(http_ratelimit_take(&rl, a, UINT64_MAX), 0);
    http_ratelimit_free(&rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refusal), cmocka_unit_test(test_refill),
        cmocka_unit_test(test_retry_after),        cmocka_unit_test(test_off_and_parameters),
        cmocka_unit_test(test_many_addresses),     cmocka_unit_test(test_lru_within_set),
        cmocka_unit_test(test_keyed_sets),         cmocka_unit_test(test_clock_backwards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
