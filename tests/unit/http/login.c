/* login.c: unit tests for the brute-force limiter of src/http/login.c: 40 failures in 5 minutes
 * then refusals with a retry time that matches the drain, keys independent, refunds and resets,
 * a full table replacing its least active key, a clock going back. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/users.h"

#define T0 1000000000ull

static void test_limit_and_retry_after(void **state)
{
    (void)state;
    http_brute_t *b = malloc(sizeof(*b));
    http_brute_init(b, 0, 0); /* the defaults: 40 per 300 s */
    const char *ip = "192.0.2.7";
    for (int i = 0; i < HTTP_LOGIN_MAX_FAILURES; i++) {
        assert_int_equal(http_brute_check(b, ip, strlen(ip), T0 + (uint64_t)i), 0);
        http_brute_fail(b, ip, strlen(ip), T0 + (uint64_t)i);
    }
    /* the 41st within the window is refused; one failure drains in 300/40 = 7.5 s */
    unsigned wait = http_brute_check(b, ip, strlen(ip), T0 + 40);
    assert_true(wait >= 7 && wait <= 8);
    assert_true(http_brute_check(b, ip, strlen(ip), T0 + 5000) > 0);
    assert_int_equal(http_brute_check(b, ip, strlen(ip), T0 + 40 + wait * 1000ull), 0);
    /* other keys are not affected */
    assert_int_equal(http_brute_check(b, "192.0.2.8", 9, T0 + 40), 0);
    assert_int_equal(http_brute_check(b, "alice", 5, T0 + 40), 0);
    /* after the whole window everything drained */
    assert_int_equal(http_brute_check(b, ip, strlen(ip), T0 + 300000), 0);
    free(b);
}

static void test_small_limit_refund_reset(void **state)
{
    (void)state;
    http_brute_t *b = malloc(sizeof(*b));
    http_brute_init(b, 3, 60); /* 3 per minute: one drains in 20 s */
    for (int i = 0; i < 3; i++)
        http_brute_fail(b, "bob", 3, T0);
    unsigned w = http_brute_check(b, "bob", 3, T0);
    assert_true(w >= 20 && w <= 21); /* ceil of 20 s, floating point either side */
    w = http_brute_check(b, "bob", 3, T0 + 10000);
    assert_true(w >= 10 && w <= 11);
    /* a refund takes one charge back (an attempt that succeeded) */
    http_brute_refund(b, "bob", 3, T0);
    assert_int_equal(http_brute_check(b, "bob", 3, T0), 0);
    http_brute_refund(b, "bob", 3, T0);
    http_brute_refund(b, "bob", 3, T0);
    http_brute_refund(b, "bob", 3, T0); /* never below zero */
    for (int i = 0; i < 3; i++)
        http_brute_fail(b, "bob", 3, T0);
    assert_true(http_brute_check(b, "bob", 3, T0) > 0);
    http_brute_refund(b, "nobody", 6, T0); /* unknown keys: nothing happens */
    http_brute_reset(b, "bob", 3);
    assert_int_equal(http_brute_check(b, "bob", 3, T0), 0);
    /* a clock that goes back drains nothing and breaks nothing */
    for (int i = 0; i < 3; i++)
        http_brute_fail(b, "carl", 4, T0);
    assert_true(http_brute_check(b, "carl", 4, T0 - 100000) > 0);
    http_brute_fail(b, "carl", 4, T0 - 100000);
    assert_true(http_brute_check(b, "carl", 4, T0) > 0);
    /* many failures while refused: the wait stays bounded (the level is capped) */
    for (int i = 0; i < 1000; i++)
        http_brute_fail(b, "dora", 4, T0);
    assert_true(http_brute_check(b, "dora", 4, T0) <= 2 * 60 + 20);
    free(b);
}

static void test_full_table(void **state)
{
    (void)state;
    http_brute_t *b = malloc(sizeof(*b));
    http_brute_init(b, 40, 300);
    /* a key under attack, then the table filled with keys of one failure each */
    for (int i = 0; i < 40; i++)
        http_brute_fail(b, "victim", 6, T0);
    char k[32];
    for (int i = 0; i < HTTP_LOGIN_TRACKED + 100; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        http_brute_fail(b, k, strlen(k), T0 + 1);
    }
    /* the busiest key survives the churn: new keys replace the least active ones */
    assert_true(http_brute_check(b, "victim", 6, T0 + 1) > 0);
    int used = 0;
    for (size_t i = 0; i < HTTP_LOGIN_TRACKED; i++)
        used += b->e[i].used;
    assert_int_equal(used, HTTP_LOGIN_TRACKED);
    free(b);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_and_retry_after),
        cmocka_unit_test(test_small_limit_refund_reset),
        cmocka_unit_test(test_full_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
