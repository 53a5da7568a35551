/* Tests of src/rpc/registry.c: registration, address resolution, schema validation, roles and
 * introspection. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rpc/rpc-internal.h"

static void noop_cb(rpc_call_t *call, void *ctx)
{
    rpc_call_reply(call);
}

static const rpc_param_t params[] = {
    {.name = "key", .types = RPC_T_STRING, .required = true, .range = true, .min = 1, .max = 8},
    {.name = "value", .types = RPC_T_STRING | RPC_T_BYTES},
    {.name = "ttl",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = 3600,
     .range = true,
     .min = 1,
     .max = 7200},
    {.name = "flag", .types = RPC_T_BOOL},
    {.name = "list", .types = RPC_T_ARRAY, .range = true, .min = 0, .max = 2},
};

static const rpc_method_t put = {.name = "dht.put",
                                 .description = "put",
                                 .role = RPC_ROLE_OPERATOR,
                                 .params = params,
                                 .n_params = 5,
                                 .handler = noop_cb};

static void test_add(void **state)
{
    rpc_registry_t *reg = rpc_registry_new();
    assert_non_null(reg);
    assert_int_equal(rpc_registry_add(reg, &put), 0);
    assert_int_equal(rpc_registry_add(reg, &put), -EEXIST);
    rpc_method_t bad = put;
    const char *names[] = {"dht", "Dht.put", "dht.", ".put", "dht.put.x", "dht.p-t", ""};
    for (size_t i = 0; i < P2P_ARRAY_LEN(names); i++) {
        bad.name = names[i];
        assert_int_equal(rpc_registry_add(reg, &bad), -EINVAL);
    }
    bad = put;
    bad.name = "dht.other";
    bad.handler = NULL;
    assert_int_equal(rpc_registry_add(reg, &bad), -EINVAL);
    rpc_param_t p = {.name = "_x", .types = RPC_T_INT};
    bad.handler = noop_cb, bad.params = &p, bad.n_params = 1;
    assert_int_equal(rpc_registry_add(reg, &bad), -EINVAL); /* reserved name */
    p.name = "x", p.types = 0;
    assert_int_equal(rpc_registry_add(reg, &bad), -EINVAL); /* no type */
    p.types = RPC_T_INT, p.range = true, p.min = 5, p.max = 1;
    assert_int_equal(rpc_registry_add(reg, &bad), -EINVAL); /* empty range */
    bad.n_params = RPC_MAX_PARAMS + 1;
    assert_int_equal(rpc_registry_add(reg, &bad), -EINVAL);
    rpc_registry_free(reg);
    rpc_registry_free(NULL);
}

static void test_resolve(void **state)
{
    rpc_registry_t *reg = rpc_registry_new();
    assert_int_equal(rpc_registry_add(reg, &put), 0);
    assert_int_equal(rpc_registry_set_node_name(reg, "web-01"), 0);
    struct {
        const char *addr;
        int code;
    } cases[] = {
        {"rpc.ping", 0},
        {"rpc.auth", 0},
        {"system.local.node.methods", 0},
        {"system.local.dht.put", 0},
        {"system.web-01.dht.put", 0},
        {"system.web-02.dht.put", RPC_ERR_NOT_FOUND},
        {"system.*.dht.put", RPC_ERR_NOT_FOUND},
        {"system.local.dht.get", RPC_ERR_METHOD_NOT_FOUND},
        {"other.local.dht.put", RPC_ERR_METHOD_NOT_FOUND},
        {"rpc.nope", RPC_ERR_METHOD_NOT_FOUND},
        {"dht.put", RPC_ERR_METHOD_NOT_FOUND}, /* DOMAIN.METHOD is not an address */
        {"system.local.dht.put.x", RPC_ERR_METHOD_NOT_FOUND},
        {"system.local.rpc.ping", RPC_ERR_METHOD_NOT_FOUND},
        {"", RPC_ERR_METHOD_NOT_FOUND},
        {"....", RPC_ERR_METHOD_NOT_FOUND},
    };
    for (size_t i = 0; i < P2P_ARRAY_LEN(cases); i++) {
        rpc_resolved_t r = rpc_registry_resolve(reg, cases[i].addr, strlen(cases[i].addr));
        assert_int_equal(r.code, cases[i].code);
        assert_true((r.method != NULL) == (cases[i].code == 0));
    }
    rpc_registry_free(reg);
}

/* Packs one params map from alternating key, kind, value triples and validates it. */
typedef struct kv {
    const char *k;
    char kind; /* s string, b bytes, i int, u huge uint, t bool, n nil, a array(n), f float, x bad
                  utf8 */
    int64_t i;
    const char *s;
} kv_t;

static int validate(const kv_t *kvs, size_t n, const char **bad)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < n; i++) {
        rpc_pack_cstr(&pk, kvs[i].k);
        switch (kvs[i].kind) {
        case 's':
            rpc_pack_cstr(&pk, kvs[i].s);
            break;
        case 'x':
            msgpack_pack_str(&pk, 2);
            msgpack_pack_str_body(&pk, "\xc3(", 2);
            break;
        case 'b':
            msgpack_pack_bin(&pk, 3);
            msgpack_pack_bin_body(&pk, "\0\1\2", 3);
            break;
        case 'i':
            msgpack_pack_int64(&pk, kvs[i].i);
            break;
        case 'u':
            msgpack_pack_uint64(&pk, UINT64_MAX);
            break;
        case 't':
            msgpack_pack_true(&pk);
            break;
        case 'n':
            msgpack_pack_nil(&pk);
            break;
        case 'f':
            msgpack_pack_double(&pk, 2.0);
            break;
        case 'a':
            msgpack_pack_array(&pk, (size_t)kvs[i].i);
            for (int64_t j = 0; j < kvs[i].i; j++)
                msgpack_pack_nil(&pk);
            break;
        }
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *args[RPC_MAX_PARAMS];
    char why[128];
    int r = rpc_schema_validate(&put, &u.data, args, bad, why, sizeof(why));
    if (r == 0) {
        assert_non_null(args[0]); /* key is required */
        assert_null(*bad);
    } else {
        assert_non_null(*bad);
        assert_true(strlen(why) > 0);
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

#define V(...)                                                                                     \
    validate((const kv_t[]){__VA_ARGS__}, sizeof((const kv_t[]){__VA_ARGS__}) / sizeof(kv_t), &bad)

static void test_schema(void **state)
{
    const char *bad = NULL;
    assert_int_equal(V({"key", 's', 0, "a"}), 0);
    assert_int_equal(V({"key", 's', 0, "a"}, {"value", 'b', 0, NULL}, {"ttl", 'i', 7200, NULL},
                       {"flag", 't', 0, NULL}, {"list", 'a', 2, NULL}),
                     0);
    assert_int_equal(V({"key", 's', 0, "a"}, {"value", 's', 0, "v"}, {"_timeout", 'i', 3, NULL}),
                     0);
    assert_int_equal(V({"key", 's', 0, "a"}, {"ttl", 'n', 0, NULL}), 0); /* nil = absent */
    /* missing */
    assert_int_equal(V({"value", 's', 0, "v"}), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(bad, "key");
    assert_int_equal(V({"key", 'n', 0, NULL}), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(bad, "key");
    /* extra */
    assert_int_equal(V({"key", 's', 0, "a"}, {"nope", 'i', 1, NULL}), RPC_ERR_INVALID_PARAMS);
    /* duplicate */
    assert_int_equal(V({"key", 's', 0, "a"}, {"key", 's', 0, "b"}), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(bad, "key");
    /* wrong types */
    assert_int_equal(V({"key", 'i', 5, NULL}), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(bad, "key");
    assert_int_equal(V({"key", 's', 0, "a"}, {"ttl", 's', 0, "60"}), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(bad, "ttl");
    assert_int_equal(V({"key", 's', 0, "a"}, {"ttl", 'f', 0, NULL}), RPC_ERR_INVALID_PARAMS);
    assert_int_equal(V({"key", 's', 0, "a"}, {"value", 'i', 1, NULL}), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(bad, "value");
    assert_int_equal(V({"key", 's', 0, "a"}, {"flag", 'i', 1, NULL}), RPC_ERR_INVALID_PARAMS);
    assert_int_equal(V({"key", 'x', 0, NULL}), RPC_ERR_INVALID_PARAMS); /* bad UTF-8 */
    assert_int_equal(V({"key", 'b', 0, NULL}), RPC_ERR_INVALID_PARAMS); /* bytes for string */
    /* out of range */
    assert_int_equal(V({"key", 's', 0, "a"}, {"ttl", 'i', 0, NULL}), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(bad, "ttl");
    assert_int_equal(V({"key", 's', 0, "a"}, {"ttl", 'i', 7201, NULL}), RPC_ERR_INVALID_PARAMS);
    assert_int_equal(V({"key", 's', 0, "a"}, {"ttl", 'i', -1, NULL}), RPC_ERR_INVALID_PARAMS);
    assert_int_equal(V({"key", 's', 0, "a"}, {"ttl", 'u', 0, NULL}), RPC_ERR_INVALID_PARAMS);
    assert_int_equal(V({"key", 's', 0, ""}), RPC_ERR_INVALID_PARAMS);
    assert_int_equal(V({"key", 's', 0, "123456789"}), RPC_ERR_INVALID_PARAMS);
    assert_int_equal(V({"key", 's', 0, "a"}, {"list", 'a', 3, NULL}), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(bad, "list");
}

static void test_no_params(void **state)
{
    const msgpack_object *args[RPC_MAX_PARAMS];
    const char *bad;
    char why[64];
    assert_int_equal(rpc_schema_validate(&put, NULL, args, &bad, why, sizeof(why)),
                     RPC_ERR_INVALID_PARAMS);
    assert_string_equal(bad, "key");
    rpc_method_t none = {.name = "a.b", .handler = noop_cb};
    assert_int_equal(rpc_schema_validate(&none, NULL, args, &bad, why, sizeof(why)), 0);
}

static void test_roles(void **state)
{
    assert_int_equal(rpc_role_parse("viewer"), RPC_ROLE_VIEWER);
    assert_int_equal(rpc_role_parse("operator"), RPC_ROLE_OPERATOR);
    assert_int_equal(rpc_role_parse("admin"), RPC_ROLE_ADMIN);
    assert_int_equal(rpc_role_parse("none"), -EINVAL);
    assert_int_equal(rpc_role_parse("Admin"), -EINVAL);
    assert_int_equal(rpc_role_parse(NULL), -EINVAL);
    assert_string_equal(rpc_role_name(RPC_ROLE_OPERATOR), "operator");
    assert_true(RPC_ROLE_VIEWER < RPC_ROLE_OPERATOR && RPC_ROLE_OPERATOR < RPC_ROLE_ADMIN);
}

static const msgpack_object *get(const msgpack_object *map, const char *k)
{
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (rpc_str_eq(&map->via.map.ptr[i].key, k)) return &map->via.map.ptr[i].val;
    return NULL;
}

static void test_introspection(void **state)
{
    rpc_registry_t *reg = rpc_registry_new();
    assert_int_equal(rpc_registry_add(reg, &put), 0);
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    rpc_registry_pack_methods(reg, "local", &pk);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    assert_int_equal(msgpack_unpack_next(&u, sb.data, sb.size, NULL), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(u.data.via.array.size, 4);
    const msgpack_object *m = &u.data.via.array.ptr[3];
    assert_true(rpc_str_eq(get(m, "name"), "system.local.dht.put"));
    assert_true(rpc_str_eq(get(m, "role"), "operator"));
    const msgpack_object *ps = get(m, "params");
    assert_int_equal(ps->via.array.size, 5);
    const msgpack_object *ttl = &ps->via.array.ptr[2];
    assert_true(rpc_str_eq(get(ttl, "type"), "int"));
    assert_int_equal(get(ttl, "default")->via.i64, 3600);
    assert_int_equal(get(ttl, "max")->via.i64, 7200);
    assert_false(get(ttl, "required")->via.boolean);
    assert_true(rpc_str_eq(get(&ps->via.array.ptr[1], "type"), "string|bytes"));
    assert_true(rpc_str_eq(get(&u.data.via.array.ptr[0], "name"), "rpc.ping"));
    assert_true(rpc_str_eq(get(&u.data.via.array.ptr[2], "name"), "system.local.node.methods"));
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    rpc_registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add),    cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_schema), cmocka_unit_test(test_no_params),
        cmocka_unit_test(test_roles),  cmocka_unit_test(test_introspection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
