/* Tests of src/rpc/session.c: envelope checks, authentication and roles, parameter errors,
 * asynchronous answers, deadlines, late answers after a timeout or a disconnect, limits, tokens
 * narrowed by the ACL claims (targets, methods). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rpc/rpc-internal.h"

#define WALL 1800000000ull

static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";
static const rpc_auth_config_t auth = {
    .secret = secret, .secret_len = sizeof(secret), .audience = "p2p-admin"};

typedef struct fx {
    rpc_registry_t *reg;
    rpc_session_t *s;
    msgpack_sbuffer out;
    rpc_decoder_t dec;
    rpc_call_t *held[RPC_MAX_PENDING + 1];
    int nheld;
} fx_t;

static int write_cb(void *ctx, const uint8_t *buf, size_t len)
{
    fx_t *f = ctx;
    return rpc_decoder_feed(&f->dec, buf, len);
}

static void echo_cb(rpc_call_t *call, void *ctx)
{
    size_t n;
    const char *s = rpc_call_str(call, "s", &n);
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_array(pk, 3);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
    msgpack_pack_int64(pk, rpc_call_int(call, "n"));
    msgpack_pack_str(pk, strlen(rpc_call_sub(call)));
    msgpack_pack_str_body(pk, rpc_call_sub(call), strlen(rpc_call_sub(call)));
    rpc_call_reply(call);
}

static void later_cb(rpc_call_t *call, void *ctx)
{
    fx_t *f = ctx;
    f->held[f->nheld++] = call;
}

static const rpc_param_t echo_params[] = {
    {.name = "s", .types = RPC_T_STRING, .required = true},
    {.name = "n",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = 7,
     .range = true,
     .min = 0,
     .max = 10},
};

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    f->reg = rpc_registry_new();
    rpc_method_t echo = {.name = "test.echo",
                         .role = RPC_ROLE_VIEWER,
                         .params = echo_params,
                         .n_params = 2,
                         .handler = echo_cb};
    rpc_method_t adm = {.name = "test.admin",
                        .role = RPC_ROLE_ADMIN,
                        .handler = echo_cb,
                        .params = echo_params,
                        .n_params = 2};
    rpc_method_t later = {
        .name = "test.later", .role = RPC_ROLE_NONE, .handler = later_cb, .ctx = f};
    assert_int_equal(rpc_registry_add(f->reg, &echo), 0);
    assert_int_equal(rpc_registry_add(f->reg, &adm), 0);
    assert_int_equal(rpc_registry_add(f->reg, &later), 0);
    rpc_decoder_init(&f->dec);
    f->s = rpc_session_new(f->reg, &auth, write_cb, f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    rpc_session_free(f->s);
    for (int i = 0; i < f->nheld; i++)
        if (f->held[i]) rpc_call_reply(f->held[i]); /* late: discarded */
    rpc_decoder_free(&f->dec);
    rpc_registry_free(f->reg);
    free(f);
    return 0;
}

/* Sends [0, id, method, [params?]] with params given as (key, string) pairs or a raw map. */
static int call(fx_t *f, uint32_t id, const char *method, int nkv, const char *const *kv,
                uint64_t now)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, id);
    rpc_pack_cstr(&pk, method);
    msgpack_pack_array(&pk, nkv >= 0 ? 1 : 0);
    if (nkv >= 0) {
        msgpack_pack_map(&pk, (size_t)nkv);
        for (int i = 0; i < nkv; i++) {
            rpc_pack_cstr(&pk, kv[2 * i]);
            const char *v = kv[2 * i + 1];
            if (v[0] == '#')
                msgpack_pack_int64(&pk, atoll(v + 1));
            else
                rpc_pack_cstr(&pk, v);
        }
    }
    int r = rpc_session_input(f->s, (uint8_t *)sb.data, sb.size, now, WALL);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

/* The next response: returns its error code (0 on success) and checks the msgid. */
static int response(fx_t *f, int64_t want_id, rpc_frame_t **keep)
{
    rpc_frame_t *fr = NULL;
    assert_int_equal(rpc_decoder_next(&f->dec, &fr), 1);
    const msgpack_object *a = fr->unp.data.via.array.ptr;
    assert_int_equal(fr->unp.data.via.array.size, 4);
    assert_int_equal(a[0].via.u64, 1);
    if (want_id < 0)
        assert_int_equal(a[1].type, MSGPACK_OBJECT_NIL);
    else
        assert_int_equal(a[1].via.u64, (uint64_t)want_id);
    int code = 0;
    if (a[2].type != MSGPACK_OBJECT_NIL) {
        assert_int_equal(a[3].type, MSGPACK_OBJECT_NIL);
        code = (int)a[2].via.map.ptr[0].val.via.i64;
    }
    if (keep)
        *keep = fr;
    else
        rpc_frame_free(fr);
    return code;
}

static void no_response(fx_t *f)
{
    rpc_frame_t *fr = NULL;
    assert_int_equal(rpc_decoder_next(&f->dec, &fr), 0);
}

static void authenticate(fx_t *f, const char *role)
{
    char *tok = NULL;
    assert_int_equal(
        rpc_jwt_mint(secret, sizeof(secret), role, "tester", "p2p-admin", 600, WALL, &tok), 0);
    const char *kv[] = {"token", tok};
    assert_int_equal(call(f, 99, "rpc.auth", 1, kv, 0), 0);
    assert_int_equal(response(f, 99, NULL), 0);
    free(tok);
}

static void test_ping_and_unauthenticated(void **state)
{
    fx_t *f = *state;
    rpc_frame_t *fr;
    assert_int_equal(call(f, 1, "rpc.ping", -1, NULL, 0), 0);
    assert_int_equal(response(f, 1, &fr), 0);
    assert_true(rpc_str_eq(&fr->unp.data.via.array.ptr[3], "pong"));
    rpc_frame_free(fr);
    const char *kv[] = {"s", "x"};
    assert_int_equal(call(f, 2, "system.local.test.echo", 1, kv, 0), 0);
    assert_int_equal(response(f, 2, NULL), RPC_ERR_UNAUTHENTICATED);
    assert_int_equal(call(f, 3, "system.local.nope.nope", 1, kv, 0), 0);
    assert_int_equal(response(f, 3, NULL), RPC_ERR_UNAUTHENTICATED);
    assert_int_equal(call(f, 4, "system.local.node.methods", -1, NULL, 0), 0);
    assert_int_equal(response(f, 4, NULL), 0);
    const char *bad[] = {"token", "not.a.token"};
    assert_int_equal(call(f, 5, "rpc.auth", 1, bad, 0), 0);
    assert_int_equal(response(f, 5, NULL), RPC_ERR_UNAUTHENTICATED);
}

static void test_auth_and_roles(void **state)
{
    fx_t *f = *state;
    rpc_frame_t *fr;
    authenticate(f, "operator");
    const char *kv[] = {"s", "hi", "n", "#3"};
    assert_int_equal(call(f, 10, "system.local.test.echo", 2, kv, 0), 0);
    assert_int_equal(response(f, 10, &fr), 0);
    const msgpack_object *r = &fr->unp.data.via.array.ptr[3];
    assert_true(rpc_str_eq(&r->via.array.ptr[0], "hi"));
    assert_int_equal(r->via.array.ptr[1].via.i64, 3);
    assert_true(rpc_str_eq(&r->via.array.ptr[2], "tester"));
    rpc_frame_free(fr);
    /* default applied */
    assert_int_equal(call(f, 11, "system.local.test.echo", 1, kv, 0), 0);
    assert_int_equal(response(f, 11, &fr), 0);
    assert_int_equal(fr->unp.data.via.array.ptr[3].via.array.ptr[1].via.i64, 7);
    rpc_frame_free(fr);
    /* operator < admin */
    assert_int_equal(call(f, 12, "system.local.test.admin", 1, kv, 0), 0);
    assert_int_equal(response(f, 12, NULL), RPC_ERR_PERMISSION_DENIED);
    authenticate(f, "admin");
    assert_int_equal(call(f, 13, "system.local.test.admin", 1, kv, 0), 0);
    assert_int_equal(response(f, 13, NULL), 0);
    /* a failed rpc.auth unbinds */
    const char *bad[] = {"token", "x.y.z"};
    assert_int_equal(call(f, 14, "rpc.auth", 1, bad, 0), 0);
    assert_int_equal(response(f, 14, NULL), RPC_ERR_UNAUTHENTICATED);
    assert_int_equal(call(f, 15, "system.local.test.echo", 1, kv, 0), 0);
    assert_int_equal(response(f, 15, NULL), RPC_ERR_UNAUTHENTICATED);
}

static void test_token_expires_on_connection(void **state)
{
    fx_t *f = *state;
    authenticate(f, "viewer");
    const char *kv[] = {"s", "x"};
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint8(&pk, 20);
    rpc_pack_cstr(&pk, "system.local.test.echo");
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 1);
    rpc_pack_cstr(&pk, kv[0]);
    rpc_pack_cstr(&pk, kv[1]);
    assert_int_equal(rpc_session_input(f->s, (uint8_t *)sb.data, sb.size, 0, WALL + 600 + 31), 0);
    assert_int_equal(response(f, 20, NULL), RPC_ERR_UNAUTHENTICATED);
    msgpack_sbuffer_destroy(&sb);
}

static void test_invalid_params(void **state)
{
    fx_t *f = *state;
    rpc_frame_t *fr;
    authenticate(f, "viewer");
    const char *range[] = {"s", "x", "n", "#11"};
    assert_int_equal(call(f, 30, "system.local.test.echo", 2, range, 0), 0);
    assert_int_equal(response(f, 30, &fr), RPC_ERR_INVALID_PARAMS);
    const msgpack_object *err = &fr->unp.data.via.array.ptr[2];
    assert_int_equal(err->via.map.size, 3);
    assert_true(rpc_str_eq(&err->via.map.ptr[2].val.via.map.ptr[0].val, "n"));
    rpc_frame_free(fr);
    const char *missing[] = {"n", "#1"};
    assert_int_equal(call(f, 31, "system.local.test.echo", 1, missing, 0), 0);
    assert_int_equal(response(f, 31, NULL), RPC_ERR_INVALID_PARAMS);
    const char *extra[] = {"s", "x", "zz", "1"};
    assert_int_equal(call(f, 32, "system.local.test.echo", 2, extra, 0), 0);
    assert_int_equal(response(f, 32, NULL), RPC_ERR_INVALID_PARAMS);
    const char *type[] = {"s", "#5"};
    assert_int_equal(call(f, 33, "system.local.test.echo", 1, type, 0), 0);
    assert_int_equal(response(f, 33, NULL), RPC_ERR_INVALID_PARAMS);
    const char *to[] = {"s", "x", "_timeout", "#0"};
    assert_int_equal(call(f, 34, "system.local.test.echo", 2, to, 0), 0);
    assert_int_equal(response(f, 34, NULL), RPC_ERR_INVALID_PARAMS);
    const char *resv[] = {"s", "x", "_other", "#1"};
    assert_int_equal(call(f, 35, "system.local.test.echo", 2, resv, 0), 0);
    assert_int_equal(response(f, 35, NULL), RPC_ERR_INVALID_PARAMS);
    assert_int_equal(call(f, 36, "system.local.test.nope", 0, NULL, 0), 0);
    assert_int_equal(response(f, 36, NULL), RPC_ERR_METHOD_NOT_FOUND);
    assert_int_equal(call(f, 37, "system.far.test.echo", 0, NULL, 0), 0);
    assert_int_equal(response(f, 37, NULL), RPC_ERR_NOT_FOUND);
}

static void test_async_and_timeout(void **state)
{
    fx_t *f = *state;
    const char *to[] = {"_timeout", "#2"};
    assert_int_equal(call(f, 40, "system.local.test.later", -1, NULL, 1000), 0);
    assert_int_equal(call(f, 41, "system.local.test.later", 1, to, 1000), 0);
    assert_int_equal(f->nheld, 2);
    no_response(f);
    assert_int_equal(rpc_session_pending(f->s), 2);
    assert_int_equal(rpc_call_deadline(f->held[0]), 1000 + RPC_DEFAULT_TIMEOUT_MS);
    assert_int_equal(rpc_call_deadline(f->held[1]), 3000);
    assert_int_equal(rpc_session_periodic(f->s, 2999), 3000);
    no_response(f);
    /* 41 times out; its handler answers later into the void */
    assert_int_equal(rpc_session_periodic(f->s, 3000), 1000 + RPC_DEFAULT_TIMEOUT_MS);
    assert_int_equal(response(f, 41, NULL), RPC_ERR_TIMEOUT);
    assert_true(rpc_call_cancelled(f->held[1]));
    assert_false(rpc_call_cancelled(f->held[0]));
    rpc_pack_cstr(rpc_call_packer(f->held[1]), "late");
    rpc_call_reply(f->held[1]);
    f->held[1] = NULL;
    no_response(f);
    /* 40 answers in time, out of order */
    rpc_call_error(f->held[0], RPC_ERR_CONFLICT, "busy %d", 1);
    f->held[0] = NULL;
    assert_int_equal(response(f, 40, NULL), RPC_ERR_CONFLICT);
    assert_int_equal(rpc_session_pending(f->s), 0);
    assert_int_equal(rpc_session_periodic(f->s, 9999), UINT64_MAX);
}

static void test_answer_after_disconnect(void **state)
{
    fx_t *f = *state;
    assert_int_equal(call(f, 50, "system.local.test.later", -1, NULL, 0), 0);
    assert_int_equal(f->nheld, 1);
    rpc_session_free(f->s);
    f->s = NULL;
    assert_true(rpc_call_cancelled(f->held[0]));
    rpc_call_reply(f->held[0]); /* must not touch the freed session (ASan checks) */
    f->held[0] = NULL;
    no_response(f);
}

static void test_pending_limit(void **state)
{
    fx_t *f = *state;
    for (uint32_t i = 0; i < RPC_MAX_PENDING; i++)
        assert_int_equal(call(f, 100 + i, "system.local.test.later", -1, NULL, 0), 0);
    no_response(f);
    assert_int_equal(call(f, 999, "system.local.test.later", -1, NULL, 0), 0);
    assert_int_equal(response(f, 999, NULL), RPC_ERR_RESOURCE_EXHAUSTED);
}

static void feed_raw(fx_t *f, const void *buf, size_t len, int want)
{
    assert_int_equal(rpc_session_input(f->s, buf, len, 0, WALL), want);
}

static void test_bad_frames(void **state)
{
    fx_t *f = *state;
    /* well-formed msgpack, wrong envelopes: INVALID_REQUEST, the stream goes on */
    const uint8_t not_array[] = {0xa1, 'x'};
    const uint8_t short_arr[] = {0x92, 0x00, 0x01};
    const uint8_t bad_type[] = {0x94, 0x05, 0x01, 0xa1, 'x', 0x90};
    const uint8_t response_t[] = {0x94, 0x01, 0x07, 0xc0, 0xc0};
    const uint8_t bad_id[] = {0x94, 0x00, 0xff, 0xa1, 'x', 0x90};
    const uint8_t bad_method[] = {0x94, 0x00, 0x08, 0x01, 0x90};
    const uint8_t bad_params[] = {0x94, 0x00, 0x09, 0xa8, 'r', 'p', 'c',
                                  '.',  'p',  'i',  'n',  'g', 0x01};
    feed_raw(f, not_array, sizeof(not_array), 0);
    assert_int_equal(response(f, -1, NULL), RPC_ERR_INVALID_REQUEST);
    feed_raw(f, short_arr, sizeof(short_arr), 0);
    assert_int_equal(response(f, -1, NULL), RPC_ERR_INVALID_REQUEST);
    feed_raw(f, bad_type, sizeof(bad_type), 0);
    assert_int_equal(response(f, -1, NULL), RPC_ERR_INVALID_REQUEST);
    feed_raw(f, response_t, sizeof(response_t), 0);
    assert_int_equal(response(f, -1, NULL), RPC_ERR_INVALID_REQUEST);
    feed_raw(f, bad_id, sizeof(bad_id), 0);
    assert_int_equal(response(f, -1, NULL), RPC_ERR_INVALID_REQUEST);
    feed_raw(f, bad_method, sizeof(bad_method), 0);
    assert_int_equal(response(f, 8, NULL), RPC_ERR_INVALID_REQUEST);
    feed_raw(f, bad_params, sizeof(bad_params), 0);
    assert_int_equal(response(f, 9, NULL), RPC_ERR_INVALID_REQUEST);
    /* notification: no answer */
    const uint8_t notif[] = {0x93, 0x02, 0xa8, 'r', 'p', 'c', '.', 'p', 'i', 'n', 'g', 0x90};
    feed_raw(f, notif, sizeof(notif), 0);
    no_response(f);
    assert_int_equal(call(f, 60, "rpc.ping", -1, NULL, 0), 0);
    assert_int_equal(response(f, 60, NULL), 0);
    /* undecodable: PARSE_ERROR with a nil id, then the stream is dead */
    const uint8_t junk[] = {0xc1, 0x00};
    feed_raw(f, junk, sizeof(junk), -EPROTO);
    assert_int_equal(response(f, -1, NULL), RPC_ERR_PARSE);
    assert_int_equal(call(f, 61, "rpc.ping", -1, NULL, 0), -EPROTO);
    no_response(f);
}

static void test_huge_and_deep(void **state)
{
    fx_t *f = *state;
    const uint8_t huge[] = {0x94, 0x00, 0x01, 0xa8, 'r',  'p',  'c',  '.',  'p',
                            'i',  'n',  'g',  0x91, 0xdd, 0xff, 0xff, 0xff, 0xff};
    feed_raw(f, huge, sizeof(huge), -EPROTO);
    assert_int_equal(response(f, -1, NULL), RPC_ERR_PARSE);
    rpc_session_free(f->s);
    f->s = rpc_session_new(f->reg, &auth, write_cb, f);
    uint8_t deep[RPC_MAX_DEPTH + 8];
    memset(deep, 0x91, sizeof(deep));
    feed_raw(f, deep, sizeof(deep), -EPROTO);
    assert_int_equal(response(f, -1, NULL), RPC_ERR_PARSE);
}

static void test_split_input(void **state)
{
    fx_t *f = *state;
    /* two requests delivered one byte at a time */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint8(&pk, 0);
        msgpack_pack_uint8(&pk, (uint8_t)(70 + i));
        rpc_pack_cstr(&pk, "rpc.ping");
        msgpack_pack_array(&pk, 0);
    }
    for (size_t i = 0; i < sb.size; i++)
        feed_raw(f, sb.data + i, 1, 0);
    assert_int_equal(response(f, 70, NULL), 0);
    assert_int_equal(response(f, 71, NULL), 0);
    msgpack_sbuffer_destroy(&sb);
}

/* What the audit hook saw last. */
typedef struct seen {
    int n;
    int code;
    char principal[64];
    char method[64];
} seen_t;

static void audit_cb(void *ctx, const rpc_audit_entry_t *e)
{
    seen_t *x = ctx;
    x->n++;
    x->code = e->code;
    snprintf(x->principal, sizeof(x->principal), "%s", e->principal);
    snprintf(x->method, sizeof(x->method), "%s", e->method);
}

static void auth_acl(fx_t *f, const char *const *targets, size_t nt, const char *const *methods,
                     size_t nm)
{
    char *tok = NULL;
    assert_int_equal(rpc_jwt_mint_ex(secret, sizeof(secret), "admin", "narrow", "p2p-admin", 600,
                                     WALL, targets, nt, methods, nm, &tok),
                     0);
    const char *kv[] = {"token", tok};
    assert_int_equal(call(f, 98, "rpc.auth", 1, kv, 0), 0);
    assert_int_equal(response(f, 98, NULL), 0);
    free(tok);
}

/* Tokens narrowed to node and method patterns: allowed and denied calls, refusals audited. */
static void test_acl_tokens(void **state)
{
    fx_t *f = *state;
    seen_t seen = {0};
    rpc_registry_set_audit(f->reg, audit_cb, &seen);
    assert_int_equal(rpc_registry_set_node_name(f->reg, "web-01"), 0);
    const char *kv[] = {"s", "x"};
    const char *web[] = {"db-*", "web-*"}, *db[] = {"db-*"};
    const char *echo[] = {"test.echo"}, *any_test[] = {"test.*"}, *other[] = {"node.*"};

    auth_acl(f, web, 2, echo, 1);
    assert_int_equal(call(f, 1, "system.local.test.echo", 1, kv, 0), 0);
    assert_int_equal(response(f, 1, NULL), 0);
    assert_int_equal(call(f, 2, "system.web-01.test.echo", 1, kv, 0), 0);
    assert_int_equal(response(f, 2, NULL), 0);
    assert_int_equal(seen.n, 0);
    /* method outside the pattern: denied and recorded, although the role is admin */
    assert_int_equal(call(f, 3, "system.local.test.admin", 1, kv, 0), 0);
    assert_int_equal(response(f, 3, NULL), RPC_ERR_PERMISSION_DENIED);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.code, RPC_ERR_PERMISSION_DENIED);
    assert_string_equal(seen.principal, "narrow");
    assert_string_equal(seen.method, "system.local.test.admin");
    /* rpc.ping and the introspection need no role: not narrowed */
    assert_int_equal(call(f, 4, "rpc.ping", -1, NULL, 0), 0);
    assert_int_equal(response(f, 4, NULL), 0);

    auth_acl(f, db, 1, any_test, 1); /* this node (web-01) is not a target */
    assert_int_equal(call(f, 5, "system.local.test.echo", 1, kv, 0), 0);
    assert_int_equal(response(f, 5, NULL), RPC_ERR_PERMISSION_DENIED);
    assert_int_equal(seen.n, 2);

    auth_acl(f, NULL, 0, any_test, 1); /* methods only */
    assert_int_equal(call(f, 6, "system.local.test.admin", 1, kv, 0), 0);
    assert_int_equal(response(f, 6, NULL), 0);

    auth_acl(f, NULL, 0, other, 1);
    assert_int_equal(call(f, 7, "system.local.test.echo", 1, kv, 0), 0);
    assert_int_equal(response(f, 7, NULL), RPC_ERR_PERMISSION_DENIED);
    assert_int_equal(seen.n, 3);
}

static int revoke_all(void *ctx, const char *jti, const char *sub, uint64_t iat)
{
    (void)jti, (void)sub, (void)iat;
    return *(const bool *)ctx;
}

/* Revocation reaches a token bound by rpc.auth and a per-call _token already verified (cached).
 */
static void test_revoked_token(void **state)
{
    fx_t *f = *state;
    bool revoked = false;
    rpc_auth_config_t a = auth;
    a.is_revoked = revoke_all;
    a.revoked_ctx = &revoked;
    rpc_session_free(f->s);
    f->s = rpc_session_new(f->reg, &a, write_cb, f);
    authenticate(f, "viewer");
    char *tok = NULL;
    assert_int_equal(
        rpc_jwt_mint(secret, sizeof(secret), "viewer", "bob", "p2p-admin", 600, WALL, &tok), 0);
    const char *kv[] = {"s", "x"}, *tk[] = {"s", "x", "_token", tok};
    assert_int_equal(call(f, 30, "system.local.test.echo", 1, kv, 0), 0);
    assert_int_equal(response(f, 30, NULL), 0);
    assert_int_equal(call(f, 31, "system.local.test.echo", 2, tk, 0), 0);
    assert_int_equal(response(f, 31, NULL), 0);
    revoked = true;
    assert_int_equal(call(f, 32, "system.local.test.echo", 1, kv, 0), 0);
    assert_int_equal(response(f, 32, NULL), RPC_ERR_UNAUTHENTICATED);
    assert_int_equal(call(f, 33, "system.local.test.echo", 2, tk, 0), 0);
    assert_int_equal(response(f, 33, NULL), RPC_ERR_UNAUTHENTICATED);
    /* the bound principal was dropped: no longer authenticated even once un-revoked */
    revoked = false;
    assert_int_equal(call(f, 34, "system.local.test.echo", 1, kv, 0), 0);
    assert_int_equal(response(f, 34, NULL), RPC_ERR_UNAUTHENTICATED);
    const char *rk[] = {"token", tok};
    revoked = true;
    assert_int_equal(call(f, 35, "rpc.auth", 1, rk, 0), 0);
    assert_int_equal(response(f, 35, NULL), RPC_ERR_UNAUTHENTICATED);
    free(tok);
    rpc_session_free(f->s);
    f->s = rpc_session_new(f->reg, &auth, write_cb, f); /* teardown frees this one */
}

typedef struct observed {
    int n;
    char method[64]; /* "(routed)" for NULL */
    char address[64];
    int code;
    uint64_t start_ms;
} observed_t;

static void observe_cb(void *ctx, const rpc_observation_t *o)
{
    observed_t *x = ctx;
    x->n++;
    snprintf(x->method, sizeof(x->method), "%s", o->method ? o->method : "(routed)");
    snprintf(x->address, sizeof(x->address), "%.*s", (int)o->address_len, o->address);
    x->code = o->code;
    x->start_ms = o->start_ms;
}

static void route_cb(rpc_call_t *call, void *ctx)
{
    rpc_call_error(call, RPC_ERR_UNAVAILABLE, "far away");
}

/* The metrics hook: answered calls (errors and timeouts too), refusals of real methods, routed
 * calls; not unknown methods or envelope errors. */
static void test_observer(void **state)
{
    fx_t *f = *state;
    observed_t seen = {0};
    rpc_registry_set_observer(f->reg, observe_cb, &seen);
    rpc_registry_set_router(f->reg, route_cb, NULL);
    const char *kv[] = {"s", "x"}, *bad[] = {"s", "#1"};
    /* refused before rpc.auth: a real method, counted */
    assert_int_equal(call(f, 1, "system.local.test.echo", 1, kv, 5), 0);
    assert_int_equal(response(f, 1, NULL), RPC_ERR_UNAUTHENTICATED);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.method, "test.echo");
    assert_int_equal(seen.code, RPC_ERR_UNAUTHENTICATED);
    authenticate(f, "viewer");
    int before = seen.n;
    assert_int_equal(call(f, 2, "system.local.test.echo", 1, kv, 70), 0);
    assert_int_equal(response(f, 2, NULL), 0);
    assert_int_equal(seen.n, before + 1);
    assert_string_equal(seen.method, "test.echo");
    assert_string_equal(seen.address, "system.local.test.echo");
    assert_int_equal(seen.code, 0);
    assert_int_equal(seen.start_ms, 70);
    /* bad params and a denied role */
    assert_int_equal(call(f, 3, "system.local.test.echo", 1, bad, 80), 0);
    assert_int_equal(response(f, 3, NULL), RPC_ERR_INVALID_PARAMS);
    assert_int_equal(seen.n, before + 2);
    assert_int_equal(seen.code, RPC_ERR_INVALID_PARAMS);
    assert_int_equal(call(f, 4, "system.local.test.admin", 1, kv, 80), 0);
    assert_int_equal(response(f, 4, NULL), RPC_ERR_PERMISSION_DENIED);
    assert_int_equal(seen.n, before + 3);
    assert_string_equal(seen.method, "test.admin");
    /* a held call is observed when it times out, with its dispatch time */
    assert_int_equal(call(f, 5, "system.local.test.later", -1, NULL, 100), 0);
    assert_int_equal(seen.n, before + 3);
    rpc_session_periodic(f->s, 100 + RPC_DEFAULT_TIMEOUT_MS);
    assert_int_equal(response(f, 5, NULL), RPC_ERR_TIMEOUT);
    assert_int_equal(seen.n, before + 4);
    assert_string_equal(seen.method, "test.later");
    assert_int_equal(seen.code, RPC_ERR_TIMEOUT);
    assert_int_equal(seen.start_ms, 100);
    /* routed to another node: method NULL, the address tells where */
    assert_int_equal(call(f, 6, "system.web-02.process.list", -1, NULL, 200), 0);
    assert_int_equal(response(f, 6, NULL), RPC_ERR_UNAVAILABLE);
    assert_int_equal(seen.n, before + 5);
    assert_string_equal(seen.method, "(routed)");
    assert_string_equal(seen.address, "system.web-02.process.list");
    /* no such method here: not counted (its name is the caller's to invent) */
    assert_int_equal(call(f, 7, "system.local.test.nope", -1, NULL, 300), 0);
    assert_int_equal(response(f, 7, NULL), RPC_ERR_METHOD_NOT_FOUND);
    assert_int_equal(seen.n, before + 5);
    /* removed: nothing more */
    rpc_registry_set_observer(f->reg, NULL, NULL);
    assert_int_equal(call(f, 8, "system.local.test.echo", 1, kv, 400), 0);
    assert_int_equal(response(f, 8, NULL), 0);
    assert_int_equal(seen.n, before + 5);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_ping_and_unauthenticated),
        T(test_auth_and_roles),
        T(test_token_expires_on_connection),
        T(test_invalid_params),
        T(test_async_and_timeout),
        T(test_answer_after_disconnect),
        T(test_pending_limit),
        T(test_bad_frames),
        T(test_huge_and_deep),
        T(test_split_input),
        T(test_acl_tokens),
        T(test_revoked_token),
        T(test_observer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
