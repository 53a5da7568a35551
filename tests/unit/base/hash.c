/* hash.c: unit tests for src/base/hash.c: known digests (FIPS 180-2 "abc", BLAKE2b-256 of "") and
 * streaming in pieces equals one pass. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "base/hash.h"

static void digest_hex(p2p_hash_algo_t algo, const void *p, size_t n, char hex[65])
{
    p2p_hash_t h;
    uint8_t d[P2P_HASH_LEN];
    assert_int_equal(p2p_hash_init(&h, algo), 0);
    p2p_hash_update(&h, p, n);
    p2p_hash_final(&h, d);
    p2p_hex_encode(hex, d, sizeof(d));
}

static void known_answers(void **state)
{
    (void)state;
    char hex[65];
    digest_hex(P2P_HASH_SHA256, "abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    digest_hex(P2P_HASH_SHA256, "", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    digest_hex(P2P_HASH_BLAKE2B, "", 0, hex);
    assert_string_equal(hex, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
}

static void pieces_equal_one_pass(void **state)
{
    (void)state;
    static uint8_t buf[100000];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (int algo = P2P_HASH_SHA256; algo <= P2P_HASH_BLAKE2B; algo++) {
        char one[65], many[65];
        digest_hex((p2p_hash_algo_t)algo, buf, sizeof(buf), one);
        p2p_hash_t h;
        uint8_t d[P2P_HASH_LEN];
        assert_int_equal(p2p_hash_init(&h, (p2p_hash_algo_t)algo), 0);
        for (size_t off = 0, step = 1; off < sizeof(buf); off += step, step = step * 3 + 1)
            p2p_hash_update(&h, buf + off, off + step > sizeof(buf) ? sizeof(buf) - off : step);
        p2p_hash_final(&h, d);
        p2p_hex_encode(many, d, sizeof(d));
        assert_string_equal(one, many);
    }
}

/* A copy finishes on its own: the original goes on, and both agree with one-pass digests. */
static void copy_then_continue(void **state)
{
    (void)state;
    for (int algo = P2P_HASH_SHA256; algo <= P2P_HASH_BLAKE2B; algo++) {
        p2p_hash_t h, c;
        uint8_t d1[P2P_HASH_LEN], d2[P2P_HASH_LEN];
        char hex[65], want[65];
        assert_int_equal(p2p_hash_init(&h, (p2p_hash_algo_t)algo), 0);
        p2p_hash_update(&h, "ab", 2);
        assert_int_equal(p2p_hash_copy(&c, &h), 0);
        p2p_hash_final(&c, d1);
        p2p_hex_encode(hex, d1, sizeof(d1));
        digest_hex((p2p_hash_algo_t)algo, "ab", 2, want);
        assert_string_equal(hex, want);
        p2p_hash_update(&h, "c", 1);
        p2p_hash_final(&h, d2);
        p2p_hex_encode(hex, d2, sizeof(d2));
        digest_hex((p2p_hash_algo_t)algo, "abc", 3, want);
        assert_string_equal(hex, want);
    }
}

static void names(void **state)
{
    (void)state;
    assert_int_equal(p2p_hash_algo_parse("sha256", 6), P2P_HASH_SHA256);
    assert_int_equal(p2p_hash_algo_parse("blake2b", 7), P2P_HASH_BLAKE2B);
    assert_int_equal(p2p_hash_algo_parse("md5", 3), -22);
    assert_string_equal(p2p_hash_algo_name(P2P_HASH_BLAKE2B), "blake2b");
    p2p_hash_t h;
    assert_int_equal(p2p_hash_init(&h, (p2p_hash_algo_t)7), -22);
    p2p_hash_free(&h); /* a failed init needs no free, but one is harmless */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(known_answers),
        cmocka_unit_test(pieces_equal_one_pass),
        cmocka_unit_test(copy_then_continue),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
