/* Tests of src/rpc/boxstream.c: round trips, splitting, delivery split at every byte, bad MACs,
 * oversized headers, the goodbye and nonce arithmetic. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "rpc/shs.h"

static uint8_t key[32], nonce[24];

static int setup(void **state)
{
    memset(key, 0x42, sizeof(key));
    for (int i = 0; i < 24; i++)
        nonce[i] = (uint8_t)(0xf0 + i);
    nonce[23] = 0xfe; /* the second increment carries */
    return 0;
}

/* Decodes wire[0..len) in chunks of `chunk` bytes, appending bodies to out. Returns the last
 * decoder result (2 after a goodbye) or a negative error. */
static int decode_all(const uint8_t *wire, size_t len, size_t chunk, uint8_t *out, size_t *out_len)
{
    rpc_box_dec_t *d = malloc(sizeof(*d));
    rpc_box_dec_init(d, key, nonce);
    rpc_box_dec_allow_switch(d, true);
    *out_len = 0;
    int last = 0;
    for (size_t off = 0; off < len;) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t used;
        const uint8_t *body;
        size_t blen;
        int r = rpc_box_decode(d, wire + off, n, &used, &body, &blen);
        if (r < 0) {
            rpc_box_dec_free(d);
            free(d);
            return r;
        }
        assert_true(used <= n);
        if (r == 1) {
            memcpy(out + *out_len, body, blen);
            *out_len += blen;
        }
        if (r != 0) last = r;
        if (r == 0) assert_int_equal(used, n);
        off += used;
    }
    rpc_box_dec_free(d);
    free(d);
    return last;
}

static void test_round_trip_sizes(void **state)
{
    static const size_t sizes[] = {1, 2, 100, 4095, 4096, 4097, 8192, 10000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t *in = malloc(n), *wire = malloc(n + 34 * ((n + 4095) / 4096) + 34),
                *out = malloc(n);
        randombytes_buf(in, n);
        rpc_box_enc_t e;
        rpc_box_enc_init(&e, key, nonce);
        size_t w = rpc_box_encode(&e, in, n, wire);
        assert_int_equal(w, rpc_box_encoded_len(&e, n));
        assert_int_equal(w, n + 34 * ((n + 4095) / 4096));
        rpc_box_goodbye(&e, wire + w);
        size_t got;
        assert_int_equal(decode_all(wire, w + 34, 65536, out, &got), 2);
        assert_int_equal(got, n);
        assert_memory_equal(in, out, n);
        free(in);
        free(wire);
        free(out);
    }
}

static void test_split_at_every_byte(void **state)
{
    uint8_t in[300], wire[1000], out[600];
    rpc_box_enc_t e;
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (uint8_t)i;
    rpc_box_enc_init(&e, key, nonce);
    size_t w = rpc_box_encode(&e, in, 200, wire);
    w += rpc_box_encode(&e, in + 200, 100, wire + w);
    rpc_box_goodbye(&e, wire + w);
    w += 34;
    /* every chunk size, and every single split point of a two-part delivery */
    for (size_t chunk = 1; chunk <= w; chunk++) {
        size_t got;
        assert_int_equal(decode_all(wire, w, chunk, out, &got), 2);
        assert_int_equal(got, 300);
        assert_memory_equal(out, in, 300);
    }
    for (size_t cut = 0; cut <= w; cut++) {
        rpc_box_dec_t *d = malloc(sizeof(*d));
        rpc_box_dec_init(d, key, nonce);
        size_t off = 0, got = 0, used, blen;
        const uint8_t *body;
        int r;
        for (int part = 0; part < 2; part++) {
            size_t end = part == 0 ? cut : w;
            while (off < end) {
                r = rpc_box_decode(d, wire + off, end - off, &used, &body, &blen);
                assert_true(r >= 0);
                if (r == 1) {
                    memcpy(out + got, body, blen);
                    got += blen;
                }
                off += used;
                if (r == 0 || r == 2) break;
            }
        }
        assert_int_equal(got, 300);
        assert_int_equal(d->state, 2);
        free(d);
    }
}

static void test_bad_mac(void **state)
{
    uint8_t in[50], wire[200], out[100];
    rpc_box_enc_t e;
    memset(in, 7, sizeof(in));
    rpc_box_enc_init(&e, key, nonce);
    size_t w = rpc_box_encode(&e, in, sizeof(in), wire);
    for (size_t i = 0; i < w; i++) {
        size_t got;
        wire[i] ^= 1;
        assert_int_equal(decode_all(wire, w, w, out, &got), -EBADMSG);
        wire[i] ^= 1;
    }
    /* a failed decoder refuses everything afterwards */
    rpc_box_dec_t *d = malloc(sizeof(*d));
    rpc_box_dec_init(d, key, nonce);
    size_t used, blen;
    const uint8_t *body;
    wire[0] ^= 1;
    assert_int_equal(rpc_box_decode(d, wire, w, &used, &body, &blen), -EBADMSG);
    wire[0] ^= 1;
    assert_int_equal(rpc_box_decode(d, wire, w, &used, &body, &blen), -EPROTO);
    /* the wrong key fails; replaying a frame (old nonce) fails */
    rpc_box_dec_init(d, key, nonce);
    assert_int_equal(rpc_box_decode(d, wire, w, &used, &body, &blen), 1);
    assert_int_equal(rpc_box_decode(d, wire, w, &used, &body, &blen), -EBADMSG);
    free(d);
}

static void test_oversized_header(void **state)
{
    /* A correctly boxed header that announces 4097 bytes: refused before any body is read. */
    uint8_t head[18] = {0x10, 0x01}, wire[34];
    crypto_secretbox_easy(wire, head, sizeof(head), nonce, key);
    rpc_box_dec_t *d = malloc(sizeof(*d));
    rpc_box_dec_init(d, key, nonce);
    size_t used, blen;
    const uint8_t *body;
    assert_int_equal(rpc_box_decode(d, wire, sizeof(wire), &used, &body, &blen), -EMSGSIZE);
    free(d);
}

static void test_goodbye_then_garbage(void **state)
{
    uint8_t wire[40];
    rpc_box_enc_t e;
    rpc_box_enc_init(&e, key, nonce);
    rpc_box_goodbye(&e, wire);
    memset(wire + 34, 0, 6);
    rpc_box_dec_t *d = malloc(sizeof(*d));
    rpc_box_dec_init(d, key, nonce);
    size_t used, blen;
    const uint8_t *body;
    assert_int_equal(rpc_box_decode(d, wire, sizeof(wire), &used, &body, &blen), 2);
    assert_int_equal(used, 34);
    assert_int_equal(rpc_box_decode(d, wire + 34, 6, &used, &body, &blen), -EPROTO);
    free(d);
}

static void test_nonce_increment(void **state)
{
    uint8_t n[24];
    memset(n, 0xff, sizeof(n));
    n[0] = 0x01;
    rpc_box_nonce_inc(n);
    assert_int_equal(n[0], 0x02);
    for (int i = 1; i < 24; i++)
        assert_int_equal(n[i], 0);
    memset(n, 0, sizeof(n));
    rpc_box_nonce_inc(n);
    assert_int_equal(n[23], 1);
    assert_int_equal(n[22], 0);
}

/* --- bulk mode -------------------------------------------------------------------------- */

/* Writes box-stream "before", the switch frame, bulk frames of n random bytes (kept in *in) and
 * the bulk goodbye into a new wire; returns its length. */
static size_t bulk_wire(size_t n, uint8_t **in, uint8_t **wire)
{
    rpc_box_enc_t e;
    rpc_box_enc_init(&e, key, nonce);
    *in = malloc(n + 6);
    memcpy(*in, "before", 6);
    randombytes_buf(*in + 6, n);
    *wire = malloc(6 + 2 * RPC_BOX_HEADER_LEN + n + 20 * (n / RPC_BULK_MAX_BODY + 2));
    size_t w = rpc_box_encode(&e, *in, 6, *wire);
    assert_int_equal(rpc_box_enc_switch(&e, *wire + w), RPC_BOX_HEADER_LEN);
    w += RPC_BOX_HEADER_LEN;
    uint8_t extra[RPC_BOX_HEADER_LEN];
    assert_int_equal(rpc_box_enc_switch(&e, extra), -EALREADY);
    assert_int_equal(rpc_box_encoded_len(&e, n),
                     n + 20 * ((n + RPC_BULK_MAX_BODY - 1) / RPC_BULK_MAX_BODY));
    w += rpc_box_encode(&e, *in + 6, n, *wire + w);
    size_t bye = rpc_box_goodbye(&e, *wire + w);
    assert_int_equal(bye, 20);
    rpc_box_enc_free(&e);
    return w + bye;
}

static void test_bulk_round_trip(void **state)
{
    static const size_t sizes[] = {1, 100, 16383, 16384, 16385, 100000, 1 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint8_t *in, *wire, *out = malloc(sizes[i] + 6);
        size_t w = bulk_wire(sizes[i], &in, &wire), got;
        static const size_t chunks[] = {7, 4096, 65536};
        for (size_t k = 0; k < 3; k++) {
            assert_int_equal(decode_all(wire, w, chunks[k], out, &got), 2);
            assert_int_equal(got, sizes[i] + 6);
            assert_memory_equal(in, out, got);
        }
        free(in);
        free(wire);
        free(out);
    }
}

static void test_bulk_split_at_every_byte(void **state)
{
    uint8_t *in, *wire, out[64];
    size_t w = bulk_wire(40, &in, &wire), got;
    for (size_t chunk = 1; chunk <= w; chunk++) {
        assert_int_equal(decode_all(wire, w, chunk, out, &got), 2);
        assert_int_equal(got, 46);
        assert_memory_equal(out, in, 46);
    }
    free(in);
    free(wire);
}

static void test_bulk_refused(void **state)
{
    uint8_t *in, *wire, out[40000];
    size_t w = bulk_wire(20000, &in, &wire), got, used, blen;
    const uint8_t *body;
    /* a decoder that was not told to expect a switch refuses it */
    rpc_box_dec_t *d = malloc(sizeof(*d));
    rpc_box_dec_init(d, key, nonce);
    assert_int_equal(rpc_box_decode(d, wire, w, &used, &body, &blen), 1);
    assert_int_equal(rpc_box_decode(d, wire + used, w - used, &used, &body, &blen), -EPROTO);
    rpc_box_dec_free(d);
    /* a flipped bit anywhere after the switch (length, body, tag) fails the frame */
    size_t at = 6 + 2 * RPC_BOX_HEADER_LEN;
    static const size_t flips[] = {0, 3, 4, 5000, 16387, 16388 + 15, 16388 + 16 + 4 + 100};
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        wire[at + flips[i]] ^= 0x01;
        int r = decode_all(wire, w, 4096, out, &got);
        assert_true(r == -EBADMSG || r == -EMSGSIZE);
        wire[at + flips[i]] ^= 0x01;
    }
    /* frames swapped (a replay or a reorder) fail: the nonce is the frame's position */
    size_t f1 = at, f2 = at + 16384 + 20, f2len = (20000 - 16384) + 20;
    uint8_t *swapped = malloc(w);
    memcpy(swapped, wire, at);
    memcpy(swapped + at, wire + f2, f2len);
    memcpy(swapped + at + f2len, wire + f1, 16384 + 20);
    assert_int_equal(decode_all(swapped, at + f2len + 16384 + 20, 4096, out, &got), -EBADMSG);
    /* a length past RPC_BULK_MAX_BODY is refused before any body */
    wire[at + 1] = 0x01;
    assert_int_equal(decode_all(wire, w, 4096, out, &got), -EMSGSIZE);
    free(swapped);
    free(in);
    free(wire);
    free(d);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_round_trip_sizes, setup),
        cmocka_unit_test_setup(test_split_at_every_byte, setup),
        cmocka_unit_test_setup(test_bad_mac, setup),
        cmocka_unit_test_setup(test_oversized_header, setup),
        cmocka_unit_test_setup(test_goodbye_then_garbage, setup),
        cmocka_unit_test_setup(test_nonce_increment, setup),
        cmocka_unit_test_setup(test_bulk_round_trip, setup),
        cmocka_unit_test_setup(test_bulk_split_at_every_byte, setup),
        cmocka_unit_test_setup(test_bulk_refused, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
