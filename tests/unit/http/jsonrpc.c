/* Tests of src/http/jsonrpc.c: JSON-RPC 2.0 request bodies (single, mixed batches, wrong types,
 * limits, bad JSON and bad UTF-8), params packed as msgpack-RPC params, and the response objects.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/json.h"

static int parse(const char *body, unsigned flags, http_jsonrpc_msg_t *m)
{
    return http_jsonrpc_parse(body, strlen(body), flags, m);
}

/* Parses a body that must fail with err and the top-level code. */
static void expect_fail(const char *body, int err, int code)
{
    http_jsonrpc_msg_t m;
    int r = parse(body, 0, &m);
    if (r != err || m.code != code)
        fail_msg("%.60s: got %d/%d (%s), want %d/%d", body, r, m.code, m.why, err, code);
    assert_int_equal(m.n, 0);
    assert_true(m.why[0] != '\0');
    http_jsonrpc_msg_free(&m);
}

static void test_single(void **state)
{
    http_jsonrpc_msg_t m;
    assert_int_equal(
        parse("{\"jsonrpc\":\"2.0\",\"method\":\"system.local.node.info\",\"id\":7}", 0, &m), 0);
    assert_false(m.batch);
    assert_int_equal(m.n, 1);
    http_jsonrpc_req_t *r = &m.reqs[0];
    assert_int_equal(r->code, 0);
    assert_false(r->notification);
    assert_int_equal(json_integer_value(r->id), 7);
    assert_string_equal(r->method, "system.local.node.info");
    assert_int_equal(r->method_len, 22);
    assert_null(r->params);
    http_jsonrpc_msg_free(&m);
    assert_null(m.doc);

    /* string and null ids answer; no id is a notification */
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"params\":{\"x\":1},"
                           "\"id\":\"abc\"}",
                           0, &m),
                     0);
    assert_string_equal(json_string_value(m.reqs[0].id), "abc");
    assert_true(json_is_object(m.reqs[0].params));
    http_jsonrpc_msg_free(&m);
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":null}", 0, &m), 0);
    assert_true(json_is_null(m.reqs[0].id));
    assert_false(m.reqs[0].notification);
    http_jsonrpc_msg_free(&m);
    assert_int_equal(parse("{\"method\":\"a.b\",\"jsonrpc\":\"2.0\",\"params\":[1,2]}", 0, &m), 0);
    assert_true(m.reqs[0].notification);
    assert_null(m.reqs[0].id);
    assert_true(json_is_array(m.reqs[0].params));
    http_jsonrpc_msg_free(&m);
}

static void test_mixed_batch(void **state)
{
    const char *body = "[ {\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":1},"
                       "  {\"jsonrpc\":\"2.0\",\"method\":\"a.c\",\"params\":[]},"
                       "  1,"
                       "  {\"jsonrpc\":\"1.0\",\"method\":\"a.b\",\"id\":4},"
                       "  {\"jsonrpc\":\"2.0\",\"method\":5,\"id\":5},"
                       "  {\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"params\":\"x\",\"id\":6},"
                       "  {\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"params\":null,\"id\":7},"
                       "  {\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":{\"x\":1}},"
                       "  {\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":[8]},"
                       "  {\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":true},"
                       "  {\"jsonrpc\":2.0,\"method\":\"a.b\",\"id\":11},"
                       "  {\"foo\":\"boo\"},"
                       "  {\"jsonrpc\":\"2.0\",\"method\":\"\",\"id\":13},"
                       "  {\"jsonrpc\":\"2.0\",\"method\":\"a\\u0000b\",\"id\":14},"
                       "  {\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":1.5,\"extra\":0},"
                       "  [],"
                       "  {\"jsonrpc\":\"2.0\\u0000\",\"method\":\"a.b\",\"id\":17}"
                       "]";
    http_jsonrpc_msg_t m;
    assert_int_equal(parse(body, 0, &m), 0);
    assert_true(m.batch);
    assert_int_equal(m.n, 17);
    /* element: code, id kept (integer; -1 = null id in the answer) */
    static const struct {
        int code;
        long long id;
    } want[] = {{0, 1},       {0, -1},      {-32600, -1}, {-32600, 4},  {-32600, 5},  {-32600, 6},
                {-32600, 7},  {-32600, -1}, {-32600, -1}, {-32600, -1}, {-32600, 11}, {-32600, -1},
                {-32600, 13}, {-32600, 14}, {0, -2},      {-32600, -1}, {-32600, 17}};
    for (size_t i = 0; i < m.n; i++) {
        const http_jsonrpc_req_t *r = &m.reqs[i];
        if (r->code != want[i].code) fail_msg("element %zu: code %d", i, r->code);
        if (r->code) assert_non_null(r->why);
        if (want[i].id == -1)
            assert_null(r->id);
        else if (want[i].id == -2)
            assert_true(json_is_real(r->id));
        else
            assert_int_equal(json_integer_value(r->id), want[i].id);
    }
    assert_true(m.reqs[1].notification);
    assert_false(m.reqs[2].notification); /* invalid requests are answered, even without id */
    assert_false(m.reqs[11].notification);
    http_jsonrpc_msg_free(&m);
}

static void test_lenient(void **state)
{
    http_jsonrpc_msg_t m;
    const char *ws = "{\"id\":3,\"method\":\"a.b\",\"params\":{}}";
    assert_int_equal(parse(ws, HTTP_JSONRPC_LENIENT, &m), 0);
    assert_int_equal(m.reqs[0].code, 0);
    http_jsonrpc_msg_free(&m);
    assert_int_equal(parse(ws, 0, &m), 0);
    assert_int_equal(m.reqs[0].code, RPC_ERR_INVALID_REQUEST);
    http_jsonrpc_msg_free(&m);
    /* lenient lets the member be absent, not wrong */
    assert_int_equal(
        parse("{\"jsonrpc\":\"3\",\"id\":3,\"method\":\"a.b\"}", HTTP_JSONRPC_LENIENT, &m), 0);
    assert_int_equal(m.reqs[0].code, RPC_ERR_INVALID_REQUEST);
    http_jsonrpc_msg_free(&m);
}

static void test_top_level_errors(void **state)
{
    expect_fail("[]", -EINVAL, RPC_ERR_INVALID_REQUEST);
    expect_fail(" [ ] ", -EINVAL, RPC_ERR_INVALID_REQUEST);
    expect_fail("1", -EINVAL, RPC_ERR_INVALID_REQUEST);
    expect_fail("\"x\"", -EINVAL, RPC_ERR_INVALID_REQUEST);
    expect_fail("null", -EINVAL, RPC_ERR_INVALID_REQUEST);
    expect_fail("{\"jsonrpc\":\"2.0\",\"method\":\"a\",\"method\":\"b\",\"id\":1}", -EINVAL,
                RPC_ERR_INVALID_REQUEST);
    /* bad JSON, the spec's own example among them */
    expect_fail("", -EBADMSG, RPC_ERR_PARSE);
    expect_fail("   ", -EBADMSG, RPC_ERR_PARSE);
    expect_fail("{\"jsonrpc\":\"2.0\",\"method\":\"foobar,\"params\":\"bar\",\"baz]", -EBADMSG,
                RPC_ERR_PARSE);
    expect_fail("[{\"jsonrpc\":\"2.0\",\"method\":\"sum\",\"params\":[1,2,4],\"id\":\"1\"},"
                "{\"jsonrpc\":\"2.0\",\"method\"]",
                -EBADMSG, RPC_ERR_PARSE);
    expect_fail("{\"id\":1} {\"id\":2}", -EBADMSG, RPC_ERR_PARSE);
    expect_fail("{\"id\":1,}", -EBADMSG, RPC_ERR_PARSE);
    expect_fail("{'id':1}", -EBADMSG, RPC_ERR_PARSE);
    expect_fail("{\"id\":01}", -EBADMSG, RPC_ERR_PARSE);
    expect_fail("{\"id\":NaN}", -EBADMSG, RPC_ERR_PARSE);
    expect_fail("{\"method\":\"a\tb\"}", -EBADMSG, RPC_ERR_PARSE); /* raw control character */
}

static void test_huge_numbers(void **state)
{
    http_jsonrpc_msg_t m;
    /* int64's edges are kept exactly */
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":9223372036854775807,"
                           "\"params\":[-9223372036854775808,1e308]}",
                           0, &m),
                     0);
    assert_true(json_integer_value(m.reqs[0].id) == INT64_MAX);
    assert_true(json_integer_value(json_array_get(m.reqs[0].params, 0)) == INT64_MIN);
    http_jsonrpc_msg_free(&m);
    /* past them: a parse error naming the problem, never a silently rounded value */
    expect_fail("{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":9223372036854775808}", -EBADMSG,
                RPC_ERR_PARSE);
    expect_fail("{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"params\":[-99999999999999999999999]}",
                -EBADMSG, RPC_ERR_PARSE);
    expect_fail("{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"params\":[1e400]}", -EBADMSG,
                RPC_ERR_PARSE);
    /* a number a megabyte long */
    size_t n = 1 << 20;
    char *big = malloc(n + 64);
    int off = snprintf(big, 64, "{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":");
    memset(big + off, '7', n);
    strcpy(big + off + n, "}");
    assert_int_equal(http_jsonrpc_parse(big, strlen(big), 0, &m), -EBADMSG);
    assert_int_equal(m.code, RPC_ERR_PARSE);
    http_jsonrpc_msg_free(&m);
    free(big);
}

static void test_bad_utf8(void **state)
{
    const char *bodies[] = {
        "{\"jsonrpc\":\"2.0\",\"method\":\"a.\xff\",\"id\":1}",         /* stray byte */
        "{\"jsonrpc\":\"2.0\",\"method\":\"a.\xc0\xaf\",\"id\":1}",     /* overlong '/' */
        "{\"jsonrpc\":\"2.0\",\"method\":\"a.\xed\xa0\x80\",\"id\":1}", /* UTF-16 surrogate */
        "{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"params\":{\"k\xe2\x82\":1}}", /* cut key */
        "{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"params\":[\"\\ud800\"]}",     /* lone escape */
        "{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"params\":[\"\\udc00\\ud800\"]}",
        "\xef\xbb\xbf{\"jsonrpc\":\"2.0\",\"method\":\"a.b\"}", /* a BOM is not JSON */
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        expect_fail(bodies[i], -EBADMSG, RPC_ERR_PARSE);
    /* a proper pair and multibyte text are fine */
    http_jsonrpc_msg_t m;
    assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":1,"
                           "\"params\":[\"\\ud83d\\ude00 caf\xc3\xa9\"]}",
                           0, &m),
                     0);
    assert_string_equal(json_string_value(json_array_get(m.reqs[0].params, 0)),
                        "\xf0\x9f\x98\x80 caf\xc3\xa9");
    http_jsonrpc_msg_free(&m);
}

/* "[[[...]]]" or a request whose params nest `levels` deep. */
static char *deep_body(int levels, bool as_params)
{
    size_t cap = 2 * (size_t)levels + 128;
    char *s = malloc(cap), *p = s;
    if (as_params) p += sprintf(p, "{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":1,\"params\":");
    for (int i = 0; i < levels; i++)
        *p++ = '[';
    for (int i = 0; i < levels; i++)
        *p++ = ']';
    strcpy(p, as_params ? "}" : "");
    return s;
}

static void test_depth(void **state)
{
    http_jsonrpc_msg_t m;
    /* the body itself: 32 levels are parsed (then refused element by element), 33 are not */
    char *s = deep_body(HTTP_JSON_MAX_DEPTH, false);
    assert_int_equal(parse(s, 0, &m), 0);
    assert_int_equal(m.reqs[0].code, RPC_ERR_INVALID_REQUEST);
    http_jsonrpc_msg_free(&m);
    free(s);
    s = deep_body(HTTP_JSON_MAX_DEPTH + 1, false);
    expect_fail(s, -ELOOP, RPC_ERR_PARSE);
    free(s);
    /* far deeper than jansson's own limit: refused by the scan, not the parser's stack */
    s = deep_body(1000000, false);
    expect_fail(s, -ELOOP, RPC_ERR_PARSE);
    free(s);

    /* params: at most HTTP_JSON_MAX_DEPTH - 2, so [0, id, method, [params]] fits */
    s = deep_body(HTTP_JSON_MAX_DEPTH - 2, true);
    assert_int_equal(parse(s, 0, &m), 0);
    assert_int_equal(m.reqs[0].code, 0);
    http_jsonrpc_msg_free(&m);
    free(s);
    s = deep_body(HTTP_JSON_MAX_DEPTH - 1, true);
    assert_int_equal(parse(s, 0, &m), 0);
    assert_int_equal(m.reqs[0].code, RPC_ERR_INVALID_REQUEST);
    assert_int_equal(json_integer_value(m.reqs[0].id), 1);
    http_jsonrpc_msg_free(&m);
    free(s);

    /* brackets inside strings are not nesting, escaped quotes do not end them */
    char body[512];
    snprintf(body, sizeof(body),
             "{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":1,\"params\":[\"\\\"%s\"]}",
             "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{");
    assert_int_equal(parse(body, 0, &m), 0);
    assert_int_equal(m.reqs[0].code, 0);
    http_jsonrpc_msg_free(&m);
}

static void test_limits(void **state)
{
    http_jsonrpc_msg_t m;
    /* a batch of exactly the limit, then one more */
    for (int n = HTTP_MAX_JSONRPC_BATCH; n <= HTTP_MAX_JSONRPC_BATCH + 1; n++) {
        char *s = malloc((size_t)n * 64 + 8), *p = s;
        *p++ = '[';
        for (int i = 0; i < n; i++)
            p +=
                sprintf(p, "%s{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"id\":%d}", i ? "," : "", i);
        strcpy(p, "]");
        int r = parse(s, 0, &m);
        if (n == HTTP_MAX_JSONRPC_BATCH) {
            assert_int_equal(r, 0);
            assert_int_equal(m.n, n);
            assert_int_equal(json_integer_value(m.reqs[n - 1].id), n - 1);
        } else {
            assert_int_equal(r, -EMSGSIZE);
            assert_int_equal(m.code, RPC_ERR_RESOURCE_EXHAUSTED);
        }
        http_jsonrpc_msg_free(&m);
        free(s);
    }
    /* too many values: refused before a tree is built */
    size_t n = HTTP_JSON_MAX_VALUES + 1;
    char *s = malloc(2 * n + 80), *p = s;
    p += sprintf(p, "{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"params\":[");
    for (size_t i = 0; i < n; i++)
        *p++ = '0', *p++ = ',';
    strcpy(p - 1, "]}");
    expect_fail(s, -E2BIG, RPC_ERR_PARSE);
    free(s);
    /* object keys count as values too (they are msgpack objects): half as many members fail,
     * the same number of array values pass */
    n = HTTP_JSON_MAX_VALUES / 2 + 1;
    s = malloc(16 * n + 80);
    for (int obj = 0; obj < 2; obj++) {
        p = s +
            sprintf(s, "{\"jsonrpc\":\"2.0\",\"method\":\"a.b\",\"params\":%c", obj ? '{' : '[');
        for (size_t i = 0; i < n; i++)
            p += obj ? sprintf(p, "\"%zx\":0,", i) : sprintf(p, "0,");
        strcpy(p - 1, obj ? "}}" : "]}");
        if (obj) {
            expect_fail(s, -E2BIG, RPC_ERR_PARSE);
        } else {
            assert_int_equal(parse(s, 0, &m), 0);
            http_jsonrpc_msg_free(&m);
        }
    }
    free(s);
    /* a method name of 255 bytes is fine, 256 is not */
    char body[600];
    for (int len = RPC_MAX_METHOD_NAME; len <= RPC_MAX_METHOD_NAME + 1; len++) {
        char name[300];
        memset(name, 'a', (size_t)len);
        name[len] = '\0';
        snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"id\":1}", name);
        assert_int_equal(parse(body, 0, &m), 0);
        assert_int_equal(m.reqs[0].code, len > RPC_MAX_METHOD_NAME ? RPC_ERR_INVALID_REQUEST : 0);
        http_jsonrpc_msg_free(&m);
    }
}

/* --- params ------------------------------------------------------------------------------- */

static const rpc_param_t schema[] = {
    {.name = "path", .types = RPC_T_STRING},
    {.name = "blob", .types = RPC_T_BYTES},
    {.name = "n", .types = RPC_T_INT},
};
static const rpc_method_t method = {.name = "t.m", .params = schema, .n_params = 3};

/* Packs the params of body's only request (with one extra pair "_token": "T" when extra) and
 * returns the unpacked array in unp, or the error. */
static msgpack_sbuffer packed_sb; /* what the last pack() packed (unp points into it) */

static int pack(const char *body, const rpc_method_t *m, bool extra, msgpack_unpacked *unp,
                const char **why, const char **param)
{
    http_jsonrpc_msg_t msg;
    assert_int_equal(parse(body, 0, &msg), 0);
    assert_int_equal(msg.reqs[0].code, 0);
    msgpack_packer pk;
    msgpack_sbuffer_destroy(&packed_sb);
    msgpack_sbuffer_init(&packed_sb);
    msgpack_packer_init(&pk, &packed_sb, msgpack_sbuffer_write);
    int r = http_jsonrpc_pack_params(&msg.reqs[0], m, extra ? 1 : 0, &pk, why, param);
    if (r == 0) {
        if (extra) {
            msgpack_pack_str(&pk, 6);
            msgpack_pack_str_body(&pk, "_token", 6);
            msgpack_pack_str(&pk, 1);
            msgpack_pack_str_body(&pk, "T", 1);
        }
        size_t off = 0;
        msgpack_unpacked_init(unp);
        assert_int_equal(msgpack_unpack_next(unp, packed_sb.data, packed_sb.size, &off),
                         MSGPACK_UNPACK_SUCCESS);
        assert_int_equal(off, packed_sb.size);
        assert_int_equal(unp->data.type, MSGPACK_OBJECT_ARRAY);
    }
    http_jsonrpc_msg_free(&msg);
    return r;
}

#define REQ(params) "{\"jsonrpc\":\"2.0\",\"method\":\"t.m\",\"id\":1" params "}"

static const msgpack_object *val(const msgpack_object *map, const char *key)
{
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->via.str.size == strlen(key) && memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static void test_pack_params(void **state)
{
    msgpack_unpacked u;
    const char *why, *param;
    /* absent and [] are []; with an extra pair a map appears */
    const char *empties[] = {REQ(""), REQ(",\"params\":[]")};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(pack(empties[i], &method, false, &u, &why, &param), 0);
        assert_int_equal(u.data.via.array.size, 0);
        msgpack_unpacked_destroy(&u);
        assert_int_equal(pack(empties[i], &method, true, &u, &why, &param), 0);
        assert_int_equal(u.data.via.array.size, 1);
        assert_int_equal(u.data.via.array.ptr[0].via.map.size, 1);
        assert_non_null(val(&u.data.via.array.ptr[0], "_token"));
        msgpack_unpacked_destroy(&u);
    }
    /* an object and [object] are the named map; bytes decoded by schema; extras appended */
    const char *named[] = {REQ(",\"params\":{\"path\":\"p\",\"blob\":\"AQID\",\"_timeout\":2}"),
                           REQ(",\"params\":[{\"path\":\"p\",\"blob\":\"AQID\",\"_timeout\":2}]")};
    for (size_t i = 0; i < 2; i++) {
        for (int extra = 0; extra < 2; extra++) {
            assert_int_equal(pack(named[i], &method, extra, &u, &why, &param), 0);
            assert_int_equal(u.data.via.array.size, 1);
            const msgpack_object *map = &u.data.via.array.ptr[0];
            assert_int_equal(map->via.map.size, 3 + extra);
            assert_int_equal(val(map, "blob")->type, MSGPACK_OBJECT_BIN);
            assert_int_equal(val(map, "path")->type, MSGPACK_OBJECT_STR);
            assert_int_equal(val(map, "_timeout")->via.i64, 2);
            if (extra) assert_int_equal(val(map, "_token")->type, MSGPACK_OBJECT_STR);
            msgpack_unpacked_destroy(&u);
        }
    }
    /* positional values take the schema's names */
    assert_int_equal(pack(REQ(",\"params\":[\"p\",\"AAE=\"]"), &method, true, &u, &why, &param), 0);
    const msgpack_object *map = &u.data.via.array.ptr[0];
    assert_int_equal(map->via.map.size, 3);
    assert_true(val(map, "path")->via.str.size == 1);
    assert_int_equal(val(map, "blob")->via.bin.size, 2);
    assert_null(val(map, "n"));
    msgpack_unpacked_destroy(&u);
    /* ...but not more of them than it has, nor without a schema */
    assert_int_equal(pack(REQ(",\"params\":[\"p\",\"\",1,2]"), &method, false, &u, &why, &param),
                     -EINVAL);
    assert_non_null(why);
    assert_null(param);
    assert_int_equal(pack(REQ(",\"params\":[1]"), NULL, false, &u, &why, &param), -EINVAL);
    assert_non_null(why);
    /* without a schema an object still passes, plain */
    assert_int_equal(pack(REQ(",\"params\":{\"blob\":\"AQID\"}"), NULL, false, &u, &why, &param),
                     0);
    assert_int_equal(val(&u.data.via.array.ptr[0], "blob")->type, MSGPACK_OBJECT_STR);
    msgpack_unpacked_destroy(&u);
    /* bad base64 names the argument, positional or named */
    assert_int_equal(pack(REQ(",\"params\":{\"blob\":\"@@\"}"), &method, true, &u, &why, &param),
                     -EINVAL);
    assert_string_equal(param, "blob");
    assert_string_equal(why, "bad base64");
    assert_int_equal(pack(REQ(",\"params\":[\"p\",\"@@\"]"), &method, false, &u, &why, &param),
                     -EINVAL);
    assert_string_equal(param, "blob");
    msgpack_sbuffer_destroy(&packed_sb);
    msgpack_sbuffer_init(&packed_sb);
}

/* --- responses ------------------------------------------------------------------------------ */

static void expect_json(json_t *j, const char *want)
{
    assert_non_null(j);
    char *s = json_dumps(j, JSON_COMPACT);
    if (strcmp(s, want) != 0) fail_msg("got  %s\nwant %s", s, want);
    free(s);
    json_decref(j);
}

static void test_responses(void **state)
{
    json_t *id = json_integer(9), *sid = json_string("q");
    expect_json(http_jsonrpc_result(id, json_pack("{s:i}", "a", 1)),
                "{\"jsonrpc\":\"2.0\",\"result\":{\"a\":1},\"id\":9}");
    expect_json(http_jsonrpc_result(NULL, NULL),
                "{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":null}");
    expect_json(http_jsonrpc_error(sid, RPC_ERR_INVALID_PARAMS, "bad n", "n"),
                "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32602,\"message\":\"bad n\","
                "\"data\":{\"param\":\"n\"}},\"id\":\"q\"}");
    expect_json(http_jsonrpc_error(NULL, RPC_ERR_PARSE, NULL, NULL),
                "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32700,\"message\":\"PARSE_ERROR\"},"
                "\"id\":null}");
    /* the id given is copied: the caller keeps its own */
    assert_int_equal(id->refcount, 1);

    /* from a msgpack-RPC answer */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    /* [0] an error with data */
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str_with_body(&pk, "code", 4);
    msgpack_pack_int(&pk, RPC_ERR_NOT_FOUND);
    msgpack_pack_str_with_body(&pk, "message", 7);
    msgpack_pack_str_with_body(&pk, "no such node", 12);
    msgpack_pack_str_with_body(&pk, "data", 4);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "param", 5);
    msgpack_pack_str_with_body(&pk, "node", 4);
    /* [1] a result with bytes */
    msgpack_pack_bin_with_body(&pk, "\x00\xff", 2);
    /* [2] a malformed error: code a string */
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "code", 4);
    msgpack_pack_str_with_body(&pk, "x", 1);
    msgpack_pack_str_with_body(&pk, "message", 7);
    msgpack_pack_str_with_body(&pk, "m", 1);
    /* [3] nil */
    msgpack_pack_nil(&pk);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *a = u.data.via.array.ptr;
    expect_json(http_jsonrpc_from_msgpack(id, &a[0], &a[3]),
                "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32003,\"message\":\"no such node\","
                "\"data\":{\"param\":\"node\"}},\"id\":9}");
    expect_json(http_jsonrpc_from_msgpack(id, &a[3], &a[1]),
                "{\"jsonrpc\":\"2.0\",\"result\":\"AP8=\",\"id\":9}");
    expect_json(http_jsonrpc_from_msgpack(id, NULL, NULL),
                "{\"jsonrpc\":\"2.0\",\"result\":null,\"id\":9}");
    expect_json(http_jsonrpc_from_msgpack(id, &a[2], NULL),
                "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32603,\"message\":\"malformed error "
                "object\"},\"id\":9}");
    expect_json(http_jsonrpc_from_msgpack(id, &a[1], NULL),
                "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32603,\"message\":\"malformed error "
                "object\"},\"id\":9}");
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);

    /* a result too deep for JSON is an INTERNAL error, not a crash or a truncation (built by
     * hand: msgpack-c's unpacker stops at 32 levels) */
    msgpack_object deep[HTTP_JSON_MAX_DEPTH + 1];
    for (int i = 0; i <= HTTP_JSON_MAX_DEPTH; i++) {
        deep[i].type = MSGPACK_OBJECT_ARRAY;
        deep[i].via.array.size = i < HTTP_JSON_MAX_DEPTH ? 1 : 0;
        deep[i].via.array.ptr = i < HTTP_JSON_MAX_DEPTH ? &deep[i + 1] : NULL;
    }
    json_t *r = http_jsonrpc_from_msgpack(sid, NULL, deep);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "q");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(r, "error"), "code")),
                     RPC_ERR_INTERNAL);
    json_decref(r);
    json_decref(id);
    json_decref(sid);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single),       cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_lenient),      cmocka_unit_test(test_top_level_errors),
        cmocka_unit_test(test_huge_numbers), cmocka_unit_test(test_bad_utf8),
        cmocka_unit_test(test_depth),        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_pack_params),  cmocka_unit_test(test_responses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
