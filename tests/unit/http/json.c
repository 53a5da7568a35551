/* Tests of src/http/json.c: msgpack -> JSON (every type, the edges of the mapping, depth) and
 * JSON -> msgpack params (bytes by schema through base64, depth, plain values). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/json.h"

typedef struct packed {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked unp;
} packed_t;

static void packed_init(packed_t *p)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
    msgpack_unpacked_init(&p->unp);
}

/* Unpacks exactly one object from what was packed. */
static const msgpack_object *packed_obj(packed_t *p)
{
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&p->unp, p->sb.data, p->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, p->sb.size);
    return &p->unp.data;
}

static void packed_free(packed_t *p)
{
    msgpack_unpacked_destroy(&p->unp);
    msgpack_sbuffer_destroy(&p->sb);
}

/* The compact JSON text of what p holds, converted (malloc'd). */
static char *json_of_packed(packed_t *p)
{
    json_t *j = http_json_from_msgpack(packed_obj(p));
    assert_non_null(j);
    char *s = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT);
    json_decref(j);
    assert_non_null(s);
    return s;
}

static void pack_s(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void test_scalars(void **state)
{
    packed_t p;
    packed_init(&p);
    msgpack_pack_array(&p.pk, 10);
    msgpack_pack_nil(&p.pk);
    msgpack_pack_true(&p.pk);
    msgpack_pack_false(&p.pk);
    msgpack_pack_uint64(&p.pk, 42);
    msgpack_pack_int64(&p.pk, INT64_MIN);
    msgpack_pack_uint64(&p.pk, INT64_MAX);
    msgpack_pack_double(&p.pk, 1.5);
    msgpack_pack_float(&p.pk, -0.25f);
    msgpack_pack_double(&p.pk, NAN);
    msgpack_pack_double(&p.pk, -INFINITY);
    char *s = json_of_packed(&p);
    assert_string_equal(s, "[null,true,false,42,-9223372036854775808,9223372036854775807,1.5,-0."
                           "25,null,null]");
    free(s);
    packed_free(&p);

    /* above INT64_MAX: a real, close to the value (JSON integers are int64) */
    packed_init(&p);
    msgpack_pack_uint64(&p.pk, UINT64_MAX);
    json_t *j = http_json_from_msgpack(packed_obj(&p));
    assert_true(json_is_real(j));
    assert_true(json_real_value(j) == 18446744073709551615.0);
    json_decref(j);
    packed_free(&p);
}

static void test_strings(void **state)
{
    packed_t p;
    packed_init(&p);
    msgpack_pack_array(&p.pk, 4);
    pack_s(&p.pk, "caf\xc3\xa9 \xf0\x9f\x98\x80", 10); /* valid: kept */
    pack_s(&p.pk,
           "a\xff"
           "b\xc3",
           4);                                /* a stray byte, a cut sequence */
    pack_s(&p.pk, "\xed\xa0\x80\xc0\xaf", 5); /* a surrogate, an overlong '/' */
    pack_s(&p.pk, "x\0y", 3);                 /* NUL is valid JSON (\u0000) */
    json_t *j = http_json_from_msgpack(packed_obj(&p));
    assert_non_null(j);
    assert_string_equal(json_string_value(json_array_get(j, 0)), "caf\xc3\xa9 \xf0\x9f\x98\x80");
    assert_string_equal(json_string_value(json_array_get(j, 1)), "a\xef\xbf\xbd"
                                                                 "b\xef\xbf\xbd");
    assert_string_equal(json_string_value(json_array_get(j, 2)),
                        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_int_equal(json_string_length(json_array_get(j, 3)), 3);
    assert_memory_equal(json_string_value(json_array_get(j, 3)), "x\0y", 3);
    char *s = json_dumps(j, JSON_COMPACT);
    assert_non_null(s); /* the replaced strings serialise */
    assert_non_null(strstr(s, "\"x\\u0000y\""));
    free(s);
    json_decref(j);
    packed_free(&p);
}

static void test_maps_and_ext(void **state)
{
    packed_t p;
    packed_init(&p);
    msgpack_pack_map(&p.pk, 6);
    pack_s(&p.pk, "b", 1);
    msgpack_pack_int(&p.pk, 1);
    msgpack_pack_int(&p.pk, 7); /* int key */
    pack_s(&p.pk, "seven", 5);
    msgpack_pack_array(&p.pk, 2); /* array key */
    msgpack_pack_int(&p.pk, 1);
    msgpack_pack_true(&p.pk);
    msgpack_pack_nil(&p.pk);
    pack_s(&p.pk, "b", 1); /* duplicate: the last one wins */
    msgpack_pack_int(&p.pk, 2);
    pack_s(&p.pk, "k\xfe", 2); /* a key that is not UTF-8 */
    msgpack_pack_int(&p.pk, 3);
    pack_s(&p.pk, "e", 1);
    msgpack_pack_ext(&p.pk, 3, 5);
    msgpack_pack_ext_body(&p.pk, "\x01\x02\x03", 3);
    char *s = json_of_packed(&p);
    assert_string_equal(s, "{\"b\":2,\"7\":\"seven\",\"[1,true]\":null,\"k\xef\xbf\xbd\":3,"
                           "\"e\":{\"ext\":5,\"data\":\"AQID\"}}");
    free(s);
    packed_free(&p);
}

/* A chain of `levels` nested one-element arrays, innermost empty (msgpack-c's unpacker stops at
 * 32 levels, so deeper trees are built by hand). */
static msgpack_object *chain(int levels)
{
    msgpack_object *o = calloc((size_t)levels, sizeof(*o));
    for (int i = 0; i < levels; i++) {
        o[i].type = MSGPACK_OBJECT_ARRAY;
        o[i].via.array.size = i + 1 < levels ? 1 : 0;
        o[i].via.array.ptr = i + 1 < levels ? &o[i + 1] : NULL;
    }
    return o;
}

static void test_depth_from_msgpack(void **state)
{
    msgpack_object *o = chain(HTTP_JSON_MAX_DEPTH);
    json_t *j = http_json_from_msgpack(o);
    assert_non_null(j);
    assert_int_equal(http_json_depth(j, 100), HTTP_JSON_MAX_DEPTH);
    json_decref(j);
    free(o);

    /* one more level, an array or a map, is refused */
    o = chain(HTTP_JSON_MAX_DEPTH + 1);
    assert_null(http_json_from_msgpack(o));
    msgpack_object_kv kv = {.key = {.type = MSGPACK_OBJECT_STR},
                            .val = {.type = MSGPACK_OBJECT_NIL}};
    kv.key.via.str.ptr = "k";
    kv.key.via.str.size = 1;
    o[HTTP_JSON_MAX_DEPTH].type = MSGPACK_OBJECT_MAP;
    o[HTTP_JSON_MAX_DEPTH].via.map.size = 1;
    o[HTTP_JSON_MAX_DEPTH].via.map.ptr = &kv;
    assert_null(http_json_from_msgpack(o));
    /* and so is a deep map key */
    msgpack_object top = {.type = MSGPACK_OBJECT_MAP};
    msgpack_object_kv deep = {.key = o[0], .val = {.type = MSGPACK_OBJECT_NIL}};
    top.via.map.size = 1;
    top.via.map.ptr = &deep;
    assert_null(http_json_from_msgpack(&top));
    free(o);
}

static const rpc_param_t write_schema[] = {
    {.name = "path", .types = RPC_T_STRING, .required = true},
    {.name = "data", .types = RPC_T_BYTES | RPC_T_STRING, .required = true},
    {.name = "blob", .types = RPC_T_BYTES},
    {.name = "opts", .types = RPC_T_BYTES | RPC_T_MAP},
    {.name = "n", .types = RPC_T_INT},
};
static const rpc_method_t write_method = {
    .name = "test.write", .params = write_schema, .n_params = 5};

/* Converts text with write_method and returns the packed object in p. */
static int to_params(packed_t *p, const char *text, const char **bad)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_ALLOW_NUL, &err);
    assert_non_null(j);
    packed_init(p);
    int r = http_json_to_params(j, &write_method, &p->pk, bad);
    json_decref(j);
    return r;
}

static const msgpack_object *get(const msgpack_object *map, const char *key)
{
    assert_int_equal(map->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->via.str.size == strlen(key) && memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &map->via.map.ptr[i].val;
    }
    fail_msg("no key %s", key);
    return NULL;
}

static void test_bytes_by_schema(void **state)
{
    packed_t p;
    const char *bad = "x";
    assert_int_equal(to_params(&p,
                               "{\"path\":\"AQID\",\"data\":\"AQID\",\"blob\":\"AQID\","
                               "\"opts\":\"AQID\",\"other\":\"AQID\",\"n\":5}",
                               &bad),
                     0);
    assert_null(bad);
    const msgpack_object *o = packed_obj(&p);
    assert_int_equal(o->via.map.size, 6);
    /* only blob wants bytes and not a string; opts takes bytes or a map, not a string */
    assert_int_equal(get(o, "path")->type, MSGPACK_OBJECT_STR);
    assert_int_equal(get(o, "data")->type, MSGPACK_OBJECT_STR);
    assert_int_equal(get(o, "blob")->type, MSGPACK_OBJECT_BIN);
    assert_memory_equal(get(o, "blob")->via.bin.ptr, "\x01\x02\x03", 3);
    assert_int_equal(get(o, "opts")->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(get(o, "other")->type, MSGPACK_OBJECT_STR);
    assert_int_equal(get(o, "n")->via.i64, 5);
    packed_free(&p);

    /* {"base64": ...} reaches a bytes-or-string parameter; a map parameter keeps its map */
    assert_int_equal(
        to_params(&p, "{\"data\":{\"base64\":\"AAE\"},\"opts\":{\"base64\":\"AAE=\"}}", &bad), 0);
    o = packed_obj(&p);
    assert_int_equal(get(o, "data")->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(get(o, "data")->via.bin.size, 2);
    assert_memory_equal(get(o, "data")->via.bin.ptr, "\x00\x01", 2);
    assert_int_equal(get(o, "opts")->type, MSGPACK_OBJECT_MAP);
    packed_free(&p);

    /* an empty string is zero bytes */
    assert_int_equal(to_params(&p, "{\"blob\":\"\"}", &bad), 0);
    o = packed_obj(&p);
    assert_int_equal(get(o, "blob")->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(get(o, "blob")->via.bin.size, 0);
    packed_free(&p);

    /* bad base64 names the argument */
    const char *bads[] = {"{\"blob\":\"AQ*D\"}",
                          "{\"blob\":\"A\"}",
                          "{\"blob\":\" AQID\"}",
                          "{\"blob\":\"AQ==AQ==\"}",
                          "{\"data\":{\"base64\":\"%%\"}}",
                          "{\"blob\":\"AQ\\u0000D\"}"};
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        assert_int_equal(to_params(&p, bads[i], &bad), -EINVAL);
        assert_non_null(bad);
        assert_string_equal(bad, strstr(bads[i], "data") ? "data" : "blob");
        packed_free(&p);
    }
}

static void test_base64_round_trip(void **state)
{
    /* every byte value, lengths around the 3-byte groups and a big chunk */
    size_t lens[] = {0, 1, 2, 3, 4, 5, 255, 256, 257, 65536 + 1};
    for (size_t t = 0; t < sizeof(lens) / sizeof(lens[0]); t++) {
        size_t n = lens[t];
        uint8_t *bytes = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            bytes[i] = (uint8_t)(i * 7 + t);
        packed_t p;
        packed_init(&p);
        msgpack_pack_map(&p.pk, 1);
        pack_s(&p.pk, "blob", 4);
        msgpack_pack_bin(&p.pk, n);
        msgpack_pack_bin_body(&p.pk, bytes, n);
        json_t *j = http_json_from_msgpack(packed_obj(&p));
        assert_non_null(j);
        const char *b64 = json_string_value(json_object_get(j, "blob"));
        assert_non_null(b64);
        assert_int_equal(strlen(b64), (n + 2) / 3 * 4);
        packed_t back;
        packed_init(&back);
        const char *bad = NULL;
        assert_int_equal(http_json_to_params(j, &write_method, &back.pk, &bad), 0);
        const msgpack_object *blob = get(packed_obj(&back), "blob");
        assert_int_equal(blob->type, MSGPACK_OBJECT_BIN);
        assert_int_equal(blob->via.bin.size, n);
        if (n) assert_memory_equal(blob->via.bin.ptr, bytes, n);
        /* and byte for byte the same msgpack as the original */
        assert_int_equal(back.sb.size, p.sb.size);
        assert_memory_equal(back.sb.data, p.sb.data, p.sb.size);
        packed_free(&back);
        packed_free(&p);
        json_decref(j);
        free(bytes);
    }
}

static void test_plain_values(void **state)
{
    packed_t p;
    const char *bad = NULL;
    /* nested strings stay strings even under a bytes name; numbers keep their kind */
    assert_int_equal(to_params(&p,
                               "{\"n\":[9223372036854775807,-9223372036854775808,1.0,"
                               "{\"blob\":\"AQID\"},null,true,\"s\\u0000\"]}",
                               &bad),
                     0);
    const msgpack_object *a = get(packed_obj(&p), "n");
    assert_int_equal(a->via.array.size, 7);
    assert_int_equal(a->via.array.ptr[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    assert_true(a->via.array.ptr[0].via.u64 == INT64_MAX);
    assert_int_equal(a->via.array.ptr[1].type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    assert_true(a->via.array.ptr[1].via.i64 == INT64_MIN);
    assert_int_equal(a->via.array.ptr[2].type, MSGPACK_OBJECT_FLOAT64);
    assert_int_equal(get(&a->via.array.ptr[3], "blob")->type, MSGPACK_OBJECT_STR);
    assert_int_equal(a->via.array.ptr[4].type, MSGPACK_OBJECT_NIL);
    assert_int_equal(a->via.array.ptr[5].type, MSGPACK_OBJECT_BOOLEAN);
    assert_int_equal(a->via.array.ptr[6].via.str.size, 2);
    packed_free(&p);

    /* no schema: everything plain, also at the top */
    json_t *j = json_loads("{\"blob\":\"AQID\"}", 0, NULL);
    packed_init(&p);
    assert_int_equal(http_json_to_params(j, NULL, &p.pk, &bad), 0);
    assert_int_equal(get(packed_obj(&p), "blob")->type, MSGPACK_OBJECT_STR);
    packed_free(&p);
    json_decref(j);
}

/* A JSON text of `levels` nested arrays. */
static char *nested_text(int levels)
{
    char *s = malloc(2 * (size_t)levels + 1);
    for (int i = 0; i < levels; i++) {
        s[i] = '[';
        s[2 * levels - 1 - i] = ']';
    }
    s[2 * levels] = '\0';
    return s;
}

static void test_depth_to_params(void **state)
{
    for (int levels = HTTP_JSON_MAX_DEPTH; levels <= HTTP_JSON_MAX_DEPTH + 1; levels++) {
        char *text = nested_text(levels);
        json_t *j = json_loads(text, 0, NULL);
        assert_non_null(j);
        assert_int_equal(http_json_depth(j, HTTP_JSON_MAX_DEPTH), levels);
        assert_true(http_json_depth(j, 3) > 3); /* a low limit stops early, still above it */
        packed_t p;
        packed_init(&p);
        const char *bad = "x";
        int r = http_json_to_params(j, &write_method, &p.pk, &bad);
        assert_int_equal(r, levels > HTTP_JSON_MAX_DEPTH ? -EINVAL : 0);
        assert_null(bad);
        if (r == 0) assert_int_equal(packed_obj(&p)->type, MSGPACK_OBJECT_ARRAY);
        packed_free(&p);

        /* the same depth as the value of a named argument: the map is a level */
        json_t *o = json_pack("{s:O}", "n", j);
        packed_init(&p);
        r = http_json_to_params(o, &write_method, &p.pk, &bad);
        assert_int_equal(r, levels + 1 > HTTP_JSON_MAX_DEPTH ? -EINVAL : 0);
        packed_free(&p);
        json_decref(o);
        json_decref(j);
        free(text);
    }
    json_t *scalar = json_integer(1);
    assert_int_equal(http_json_depth(scalar, 0), 0);
    json_decref(scalar);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),         cmocka_unit_test(test_strings),
        cmocka_unit_test(test_maps_and_ext),    cmocka_unit_test(test_depth_from_msgpack),
        cmocka_unit_test(test_bytes_by_schema), cmocka_unit_test(test_base64_round_trip),
        cmocka_unit_test(test_plain_values),    cmocka_unit_test(test_depth_to_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
