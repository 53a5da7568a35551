/* base.c: unit tests for src/base/base.c (hex, base64, clocks, bounded buffer). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"

static void u64_dec_values(void **state)
{
    (void)state;
    char d[P2P_U64_DEC_MAX];
    assert_int_equal(p2p_u64_dec(d, 0), 1);
    assert_string_equal(d, "0");
    assert_int_equal(p2p_u64_dec(d, 1234567890), 10);
    assert_string_equal(d, "1234567890");
    assert_int_equal(p2p_u64_dec(d, UINT64_MAX), 20);
    assert_string_equal(d, "18446744073709551615");
}

static void hex_round_trip(void **state)
{
    (void)state;
    const uint8_t in[5] = {0x00, 0x01, 0xab, 0xcd, 0xff};
    char hex[11];
    uint8_t out[5];
    p2p_hex_encode(hex, in, sizeof(in));
    assert_string_equal(hex, "0001abcdff");
    assert_int_equal(p2p_hex_decode(out, sizeof(out), hex, strlen(hex)), 0);
    assert_memory_equal(out, in, sizeof(in));
    assert_int_equal(p2p_hex_decode(out, sizeof(out), "0001ABCDFF", 10), 0);
    assert_memory_equal(out, in, sizeof(in));
}

static void hex_rejects_bad_input(void **state)
{
    (void)state;
    uint8_t out[2];
    assert_int_equal(p2p_hex_decode(out, 2, "abc", 3), -EINVAL);
    assert_int_equal(p2p_hex_decode(out, 2, "abcg", 4), -EINVAL);
    assert_int_equal(p2p_hex_decode(out, 2, "abcdef", 6), -EINVAL);
    assert_int_equal(p2p_hex_decode(out, 2, "zz00", 4), -EINVAL);
}

static void b64_round_trip_all_lengths(void **state)
{
    (void)state;
    uint8_t in[40], out[40];
    char enc[64];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)(i * 37 + 1);
    for (size_t n = 1; n <= sizeof(in); n++) {
        int len = p2p_b64_encode(enc, sizeof(enc), in, n);
        assert_int_equal(len, (int)((n + 2) / 3 * 4));
        assert_int_equal(p2p_b64_decode(out, sizeof(out), enc, (size_t)len), (int)n);
        assert_memory_equal(out, in, n);
    }
}

static void b64_known_vectors(void **state)
{
    (void)state;
    char enc[16];
    uint8_t out[8];
    assert_int_equal(p2p_b64_encode(enc, sizeof(enc), (const uint8_t *)"foob", 4), 8);
    assert_string_equal(enc, "Zm9vYg==");
    /* padding optional, surrounding whitespace ignored */
    assert_int_equal(p2p_b64_decode(out, sizeof(out), "Zm9vYg", 6), 4);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(p2p_b64_decode(out, sizeof(out), "  Zm9vYg==\r\n", 12), 4);
    assert_memory_equal(out, "foob", 4);
}

static void b64_rejects_bad_input(void **state)
{
    (void)state;
    uint8_t out[8];
    char enc[8];
    assert_int_equal(p2p_b64_decode(out, sizeof(out), "", 0), -EINVAL);
    assert_int_equal(p2p_b64_decode(out, sizeof(out), "   ", 3), -EINVAL);
    assert_int_equal(p2p_b64_decode(out, sizeof(out), "Zm9v!g==", 8), -EINVAL);
    assert_int_equal(p2p_b64_decode(out, sizeof(out), "Zm9v Yg==", 9), -EINVAL);
    assert_int_equal(p2p_b64_decode(out, sizeof(out), "Zm9vYg=x", 8), -EINVAL);
    /* URL-safe alphabet is not standard base64 */
    assert_int_equal(p2p_b64_decode(out, sizeof(out), "-_-_", 4), -EINVAL);
    assert_int_equal(p2p_b64_decode(out, 3, "Zm9vYg==", 8), -ENOSPC);
    assert_int_equal(p2p_b64_encode(enc, 8, (const uint8_t *)"foob", 4), -ENOSPC);
}

static void clocks_advance(void **state)
{
    (void)state;
    uint64_t a = p2p_mono_ms(), b = p2p_mono_ms();
    assert_true(b >= a);
    /* 2020-01-01 in ms: any real wall clock is past it */
    assert_true(p2p_wall_ms() > 1577836800000ull);
}

static void buf_append_consume_and_limit(void **state)
{
    (void)state;
    p2p_buf_t b;
    p2p_buf_init(&b, 1000);
    uint8_t chunk[300];
    memset(chunk, 7, sizeof(chunk));
    assert_int_equal(p2p_buf_append(&b, chunk, 300), 0);
    assert_int_equal(p2p_buf_append(&b, chunk, 300), 0);
    assert_int_equal(p2p_buf_append(&b, chunk, 300), 0);
    assert_int_equal(b.len, 900);
    assert_true(b.cap <= 1000);
    assert_int_equal(p2p_buf_append(&b, chunk, 101), -E2BIG);
    assert_int_equal(b.len, 900); /* unchanged on refusal */
    assert_int_equal(p2p_buf_append(&b, chunk, 100), 0);
    assert_int_equal(b.len, 1000);
    b.data[0] = 1;
    b.data[10] = 42;
    p2p_buf_consume(&b, 10);
    assert_int_equal(b.len, 990);
    assert_int_equal(b.data[0], 42);
    p2p_buf_consume(&b, 5000);
    assert_int_equal(b.len, 0);
    assert_int_equal(p2p_buf_append(&b, "xy", 2), 0);
    assert_memory_equal(b.data, "xy", 2);
    p2p_buf_free(&b);
    assert_null(b.data);
    p2p_buf_free(NULL);
}

static void buf_refuses_huge_sizes(void **state)
{
    (void)state;
    p2p_buf_t b;
    p2p_buf_init(&b, 16);
    assert_int_equal(p2p_buf_append(&b, "0123456789", 10), 0);
    assert_int_equal(p2p_buf_append(&b, "x", SIZE_MAX), -E2BIG);
    assert_int_equal(p2p_buf_append(&b, "0123456789", 10), -E2BIG);
    assert_int_equal(b.len, 10);
    p2p_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(u64_dec_values),
        cmocka_unit_test(hex_round_trip),
        cmocka_unit_test(hex_rejects_bad_input),
        cmocka_unit_test(b64_round_trip_all_lengths),
        cmocka_unit_test(b64_known_vectors),
        cmocka_unit_test(b64_rejects_bad_input),
        cmocka_unit_test(clocks_advance),
        cmocka_unit_test(buf_append_consume_and_limit),
        cmocka_unit_test(buf_refuses_huge_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
