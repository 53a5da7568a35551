/* Tests of src/rpc/codec.c: the bounded frame scanner, the streaming decoder, UTF-8 checks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rpc/rpc-internal.h"

static msgpack_sbuffer sample(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, 70000);
    rpc_pack_cstr(&pk, "system.local.dht.put");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 4);
    rpc_pack_cstr(&pk, "key");
    rpc_pack_cstr(&pk, "k\xc3\xa9");
    rpc_pack_cstr(&pk, "value");
    msgpack_pack_bin(&pk, 300);
    char blob[300];
    memset(blob, 0xc1, sizeof(blob)); /* bytes that would be invalid as a type tag */
    msgpack_pack_bin_body(&pk, blob, sizeof(blob));
    rpc_pack_cstr(&pk, "ttl");
    msgpack_pack_int64(&pk, -5);
    rpc_pack_cstr(&pk, "f");
    msgpack_pack_double(&pk, 1.5);
    return sb;
}

static void test_round_trip(void **state)
{
    msgpack_sbuffer sb = sample();
    size_t flen = 0;
    assert_int_equal(rpc_frame_scan((uint8_t *)sb.data, sb.size, &flen), 0);
    assert_int_equal(flen, sb.size);

    /* byte by byte through the decoder: nothing until the last byte */
    rpc_decoder_t d;
    rpc_decoder_init(&d);
    rpc_frame_t *f = NULL;
    for (size_t i = 0; i < sb.size; i++) {
        assert_int_equal(rpc_decoder_feed(&d, (uint8_t *)sb.data + i, 1), 0);
        int r = rpc_decoder_next(&d, &f);
        assert_int_equal(r, i + 1 == sb.size ? 1 : 0);
    }
    const msgpack_object *a = f->unp.data.via.array.ptr;
    assert_int_equal(f->unp.data.via.array.size, 4);
    assert_int_equal(a[1].via.u64, 70000);
    assert_true(rpc_str_eq(&a[2], "system.local.dht.put"));
    const msgpack_object *m = &a[3].via.array.ptr[0];
    assert_int_equal(m->via.map.size, 4);
    assert_int_equal(m->via.map.ptr[1].val.via.bin.size, 300);
    assert_int_equal(m->via.map.ptr[2].val.via.i64, -5);
    assert_true(m->via.map.ptr[3].val.via.f64 == 1.5);
    rpc_frame_free(f);
    assert_int_equal(d.in.len, 0);
    rpc_decoder_free(&d);
    msgpack_sbuffer_destroy(&sb);
}

static void test_two_frames_one_read(void **state)
{
    msgpack_sbuffer sb = sample();
    size_t one = sb.size;
    char *copy = malloc(one); /* not sb.data itself: the write may move it */
    assert_non_null(copy);
    memcpy(copy, sb.data, one);
    msgpack_sbuffer_write(&sb, copy, one);
    free(copy);
    rpc_decoder_t d;
    rpc_decoder_init(&d);
    rpc_frame_t *f;
    assert_int_equal(rpc_decoder_feed(&d, (uint8_t *)sb.data, sb.size), 0);
    assert_int_equal(rpc_decoder_next(&d, &f), 1);
    rpc_frame_free(f);
    assert_int_equal(rpc_decoder_next(&d, &f), 1);
    rpc_frame_free(f);
    assert_int_equal(rpc_decoder_next(&d, &f), 0);
    rpc_decoder_free(&d);
    msgpack_sbuffer_destroy(&sb);
}

static void test_truncated(void **state)
{
    msgpack_sbuffer sb = sample();
    size_t flen;
    for (size_t i = 0; i < sb.size; i++)
        assert_int_equal(rpc_frame_scan((uint8_t *)sb.data, i, &flen), -EAGAIN);
    msgpack_sbuffer_destroy(&sb);
}

static void test_undecodable(void **state)
{
    size_t flen;
    const uint8_t never[] = {0xc1};
    const uint8_t inside[] = {0x92, 0x01, 0xc1};
    const uint8_t key[] = {0x81, 0xc1, 0x01};
    assert_int_equal(rpc_frame_scan(never, sizeof(never), &flen), -EBADMSG);
    assert_int_equal(rpc_frame_scan(inside, sizeof(inside), &flen), -EBADMSG);
    assert_int_equal(rpc_frame_scan(key, sizeof(key), &flen), -EBADMSG);
}

static void test_every_format(void **state)
{
    /* one of each type byte family, inside an array */
    const uint8_t buf[] = {0xdc, 0x00, 17,                            /* array16 of 17 */
                           0x05, 0xe0, 0xc0, 0xc2, 0xc3,              /* ints, nil, bools */
                           0xa1, 'x',  0xc4, 0x01, 0x00,              /* fixstr, bin8 */
                           0xca, 0,    0,    0,    0,                 /* float32 */
                           0xcd, 0,    1,    0xd1, 0,    1,           /* uint16, int16 */
                           0xd4, 1,    2,                             /* fixext1 */
                           0xc7, 0x01, 0x05, 0x09,                    /* ext8 */
                           0xd9, 0x01, 'y',                           /* str8 */
                           0xdc, 0x00, 0x01, 0xc0,                    /* array16 of 1 */
                           0xde, 0x00, 0x01, 0xa0, 0xc0,              /* map16 of 1 */
                           0x80,                                      /* empty fixmap */
                           0xcb, 0,    0,    0,    0,    0, 0, 0, 0}; /* float64 */
    size_t flen;
    assert_int_equal(rpc_frame_scan(buf, sizeof(buf), &flen), 0);
    assert_int_equal(flen, sizeof(buf));
    rpc_decoder_t d;
    rpc_decoder_init(&d);
    rpc_frame_t *f;
    assert_int_equal(rpc_decoder_feed(&d, buf, sizeof(buf)), 0);
    assert_int_equal(rpc_decoder_next(&d, &f), 1);
    assert_int_equal(f->unp.data.via.array.size, 17);
    rpc_frame_free(f);
    rpc_decoder_free(&d);
}

/* Declared lengths no frame could hold are refused from the header alone: nothing is allocated. */
static void test_huge_declared_lengths(void **state)
{
    size_t flen;
    const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
    const uint8_t map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff};
    const uint8_t str32[] = {0xdb, 0xff, 0xff, 0xff, 0xff};
    const uint8_t bin32[] = {0xc6, 0x7f, 0xff, 0xff, 0xff};
    const uint8_t ext32[] = {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01};
    const uint8_t nested[] = {0x91, 0xdd, 0x00, 0x10, 0x00, 0x00}; /* [array32 of 2^20] */
    assert_int_equal(rpc_frame_scan(arr32, sizeof(arr32), &flen), -E2BIG);
    assert_int_equal(rpc_frame_scan(map32, sizeof(map32), &flen), -E2BIG);
    assert_int_equal(rpc_frame_scan(str32, sizeof(str32), &flen), -EMSGSIZE);
    assert_int_equal(rpc_frame_scan(bin32, sizeof(bin32), &flen), -EMSGSIZE);
    assert_int_equal(rpc_frame_scan(ext32, sizeof(ext32), &flen), -EMSGSIZE);
    assert_int_equal(rpc_frame_scan(nested, sizeof(nested), &flen), -E2BIG);

    /* an array within the object limit but larger than the bytes a frame may hold */
    const uint8_t arr_objs[] = {0xdd, 0x00, 0x00, 0xff, 0xff};
    assert_int_equal(rpc_frame_scan(arr_objs, sizeof(arr_objs), &flen), -EAGAIN);

    /* through the decoder: an error, not a wait for gigabytes */
    rpc_decoder_t d;
    rpc_frame_t *f;
    rpc_decoder_init(&d);
    assert_int_equal(rpc_decoder_feed(&d, arr32, sizeof(arr32)), 0);
    assert_int_equal(rpc_decoder_next(&d, &f), -E2BIG);
    assert_null(f);
    rpc_decoder_free(&d);
}

static void test_frame_size_limit(void **state)
{
    /* bin32 whose frame is exactly the limit: accepted once complete; one byte more: refused */
    size_t n = RPC_MAX_FRAME - 5, flen;
    uint8_t *buf = calloc(1, RPC_MAX_FRAME + 1);
    assert_non_null(buf);
    buf[0] = 0xc6;
    buf[1] = (uint8_t)(n >> 24), buf[2] = (uint8_t)(n >> 16), buf[3] = (uint8_t)(n >> 8);
    buf[4] = (uint8_t)n;
    assert_int_equal(rpc_frame_scan(buf, RPC_MAX_FRAME - 1, &flen), -EAGAIN);
    assert_int_equal(rpc_frame_scan(buf, RPC_MAX_FRAME, &flen), 0);
    assert_int_equal(flen, RPC_MAX_FRAME);
    n++;
    buf[4] = (uint8_t)n, buf[3] = (uint8_t)(n >> 8), buf[2] = (uint8_t)(n >> 16);
    assert_int_equal(rpc_frame_scan(buf, 5, &flen), -EMSGSIZE);

    rpc_decoder_t d;
    rpc_decoder_init(&d);
    assert_int_equal(rpc_decoder_feed(&d, buf, RPC_MAX_FRAME), 0);
    assert_int_equal(rpc_decoder_feed(&d, buf, 1), -EMSGSIZE);
    rpc_decoder_free(&d);
    free(buf);
}

static void test_depth(void **state)
{
    uint8_t buf[RPC_MAX_DEPTH + 2];
    size_t flen;
    /* RPC_MAX_DEPTH nested arrays around nil: accepted and decoded by msgpack-c */
    memset(buf, 0x91, RPC_MAX_DEPTH);
    buf[RPC_MAX_DEPTH] = 0xc0;
    assert_int_equal(rpc_frame_scan(buf, RPC_MAX_DEPTH + 1, &flen), 0);
    rpc_decoder_t d;
    rpc_frame_t *f;
    rpc_decoder_init(&d);
    assert_int_equal(rpc_decoder_feed(&d, buf, RPC_MAX_DEPTH + 1), 0);
    assert_int_equal(rpc_decoder_next(&d, &f), 1);
    rpc_frame_free(f);
    rpc_decoder_free(&d);
    /* one more level: refused before the bytes that close it arrive */
    memset(buf, 0x91, RPC_MAX_DEPTH + 1);
    assert_int_equal(rpc_frame_scan(buf, RPC_MAX_DEPTH + 1, &flen), -ELOOP);
    /* maps count too */
    memset(buf, 0x81, RPC_MAX_DEPTH + 1);
    assert_int_equal(rpc_frame_scan(buf, RPC_MAX_DEPTH + 1, &flen), -ELOOP);
}

static void test_object_limit(void **state)
{
    /* array16 of 65535 nils = 65536 objects: the limit exactly */
    size_t n = RPC_MAX_OBJECTS - 1, flen;
    uint8_t *buf = malloc(3 + n + 1);
    assert_non_null(buf);
    buf[0] = 0xdc, buf[1] = (uint8_t)(n >> 8), buf[2] = (uint8_t)n;
    memset(buf + 3, 0xc0, n + 1);
    assert_int_equal(rpc_frame_scan(buf, 3 + n, &flen), 0);
    /* [[...65535 nils]] is one object too many */
    uint8_t *b2 = malloc(4 + n);
    assert_non_null(b2);
    b2[0] = 0x91;
    memcpy(b2 + 1, buf, 3 + n);
    assert_int_equal(rpc_frame_scan(b2, 4 + n, &flen), -E2BIG);
    free(b2);
    free(buf);
}

static void test_utf8(void **state)
{
    assert_true(rpc_utf8_valid("", 0));
    assert_true(rpc_utf8_valid("abc", 3));
    assert_true(rpc_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(rpc_utf8_valid("a\0b", 3));
    assert_false(rpc_utf8_valid("\xc3", 1));             /* truncated */
    assert_false(rpc_utf8_valid("\xc0\xaf", 2));         /* overlong */
    assert_false(rpc_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(rpc_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(rpc_utf8_valid("\xff", 1));
}

static void test_pack_error(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rpc_pack_error(&pk, RPC_ERR_INVALID_PARAMS, "bad", "ttl");
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(u.data.via.map.size, 3);
    assert_int_equal(u.data.via.map.ptr[0].val.via.i64, -32602);
    assert_true(rpc_str_eq(&u.data.via.map.ptr[2].val.via.map.ptr[0].val, "ttl"));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    assert_string_equal(rpc_error_name(RPC_ERR_TIMEOUT), "TIMEOUT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),       cmocka_unit_test(test_two_frames_one_read),
        cmocka_unit_test(test_truncated),        cmocka_unit_test(test_undecodable),
        cmocka_unit_test(test_every_format),     cmocka_unit_test(test_huge_declared_lengths),
        cmocka_unit_test(test_frame_size_limit), cmocka_unit_test(test_depth),
        cmocka_unit_test(test_object_limit),     cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_pack_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
