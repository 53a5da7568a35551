/* Tests of src/rpc/peer.c: peer objects in one libuv loop on 127.0.0.1 calling each other over the
 * real handshake and box-stream; connection reuse, deadlines, wrong keys, garbage input, a peer
 * that stops (refused, reset) and a loop that closes clean. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "rpc/peer.h"
#include "rpc/shs.h"
#include "rpc/rpc-internal.h"

static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";
static const rpc_auth_config_t auth = {
    .secret = secret, .secret_len = sizeof(secret), .audience = "p2p-admin"};

typedef struct node {
    uint8_t pk[32], sk[64], net[32];
    rpc_registry_t *reg;
    rpc_peer_t *peer;
    struct sockaddr_in addr;
    bool stopped;
    bool no_bulk;
} node_t;

typedef struct reply {
    bool done;
    int status;
    int64_t code; /* error code, 0 for none */
    char result[64];
    size_t result_len;
    int notified;
} reply_t;

static uv_loop_t loop;
static rpc_call_t *held[8];
static int n_held;

static void echo_cb(rpc_call_t *call, void *ctx)
{
    size_t n = 0;
    const char *s = rpc_call_str(call, "s", &n);
    msgpack_pack_str(rpc_call_packer(call), n);
    msgpack_pack_str_body(rpc_call_packer(call), s, n);
    rpc_call_reply(call);
}

static void hold_cb(rpc_call_t *call, void *ctx)
{
    if (n_held < 8)
        held[n_held++] = call;
    else
        rpc_call_error(call, RPC_ERR_INTERNAL, "full");
}

/* Streams two notifications [2, "test.chunk", [i, "x"]] then answers "done". */
static void stream_cb(rpc_call_t *call, void *ctx)
{
    for (int i = 0; i < 2; i++) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 2);
        msgpack_pack_int(&pk, i);
        msgpack_pack_str_with_body(&pk, "x", 1);
        assert_int_equal(rpc_call_notify(call, "test.chunk", sb.data, sb.size), 0);
        msgpack_sbuffer_destroy(&sb);
    }
    msgpack_pack_str_with_body(rpc_call_packer(call), "done", 4);
    rpc_call_reply(call);
}

static const rpc_param_t echo_params[] = {
    {.name = "s", .types = RPC_T_STRING, .required = true},
};

static void node_init_ex(node_t *n, uint8_t net_byte, bool no_bulk)
{
    memset(n, 0, sizeof(*n));
    n->no_bulk = no_bulk;
    crypto_sign_keypair(n->pk, n->sk);
    memset(n->net, net_byte, sizeof(n->net));
    n->reg = rpc_registry_new();
    assert_non_null(n->reg);
    rpc_method_t echo = {.name = "test.echo",
                         .role = RPC_ROLE_NONE,
                         .params = echo_params,
                         .n_params = 1,
                         .handler = echo_cb};
    rpc_method_t hold = {.name = "test.hold", .role = RPC_ROLE_NONE, .handler = hold_cb};
    assert_int_equal(rpc_registry_add(n->reg, &echo), 0);
    assert_int_equal(rpc_registry_add(n->reg, &hold), 0);
    rpc_method_t stream = {
        .name = "test.stream", .role = RPC_ROLE_ADMIN, .handler = stream_cb, .network = true};
    assert_int_equal(rpc_registry_add(n->reg, &stream), 0);
    rpc_peer_config_t cfg = {n->pk, n->sk, n->net, n->reg, &auth, n->no_bulk};
    assert_int_equal(rpc_peer_start(&loop, &cfg, "127.0.0.1", 0, &n->peer), 0);
    assert_true(rpc_peer_port(n->peer) > 0);
    uv_ip4_addr("127.0.0.1", rpc_peer_port(n->peer), &n->addr);
}

static void node_init(node_t *n, uint8_t net_byte)
{
    node_init_ex(n, net_byte, false);
}

static void stopped_cb(void *arg)
{
    ((node_t *)arg)->stopped = true;
}

static void node_stop(node_t *n)
{
    rpc_peer_stop(n->peer, stopped_cb, n);
    n->peer = NULL;
}

/* Stops, runs the loop until every handle closed and checks the loop closes. */
static void node_free(node_t *n)
{
    if (n->peer) node_stop(n);
    for (int i = 0; i < 1000 && !n->stopped; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(n->stopped);
    rpc_registry_free(n->reg);
}

static void reply_cb(void *arg, int status, const msgpack_object *error,
                     const msgpack_object *result)
{
    reply_t *r = arg;
    assert_false(r->done);
    r->done = true;
    r->status = status;
    if (status == 0 && error->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < error->via.map.size; i++)
            if (rpc_str_eq(&error->via.map.ptr[i].key, "code"))
                r->code = error->via.map.ptr[i].val.via.i64;
    }
    if (status == 0 && result->type == MSGPACK_OBJECT_STR) {
        r->result_len = result->via.str.size;
        size_t n = P2P_MIN(result->via.str.size, sizeof(r->result) - 1);
        memcpy(r->result, result->via.str.ptr, n);
        r->result[n] = 0;
    }
}

/* Runs the loop until every reply is done (bounded by the calls' own deadlines). */
static void wait_all(reply_t *r, int n)
{
    for (int guard = 0; guard < 100000; guard++) {
        bool all = true;
        for (int i = 0; i < n; i++)
            all = all && r[i].done;
        if (all) return;
        uv_run(&loop, UV_RUN_ONCE);
    }
    fail_msg("replies never came");
}

static msgpack_object *echo_params_obj(msgpack_zone *z, const char *s)
{
    msgpack_object *o = msgpack_zone_malloc(z, sizeof(*o) * 2);
    msgpack_object_kv *kv = msgpack_zone_malloc(z, sizeof(*kv));
    kv->key.type = MSGPACK_OBJECT_STR;
    kv->key.via.str.ptr = "s";
    kv->key.via.str.size = 1;
    kv->val.type = MSGPACK_OBJECT_STR;
    kv->val.via.str.ptr = s;
    kv->val.via.str.size = (uint32_t)strlen(s);
    o[1].type = MSGPACK_OBJECT_MAP;
    o[1].via.map.size = 1;
    o[1].via.map.ptr = kv;
    o[0].type = MSGPACK_OBJECT_ARRAY;
    o[0].via.array.size = 1;
    o[0].via.array.ptr = &o[1];
    return o;
}

static int setup(void **state)
{
    n_held = 0;
    return uv_loop_init(&loop);
}

static int teardown(void **state)
{
    for (int i = 0; i < 100; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(uv_loop_close(&loop), 0);
    return 0;
}

static void test_call_and_reuse(void **state)
{
    node_t a, b;
    node_init(&a, 7);
    node_init(&b, 7);
    reply_t r[20];
    memset(r, 0, sizeof(r));
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    /* calls queued while the first connection is still dialling, then more on the open one */
    assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr, "rpc.ping", NULL, 5000,
                                   reply_cb, &r[0]),
                     0);
    for (int i = 1; i < 10; i++)
        assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr,
                                       "system.local.test.echo", echo_params_obj(&z, "hi"), 5000,
                                       reply_cb, &r[i]),
                         0);
    wait_all(r, 10);
    for (int i = 10; i < 20; i++)
        assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr,
                                       "system.local.test.echo", echo_params_obj(&z, "again"), 5000,
                                       reply_cb, &r[i]),
                         0);
    wait_all(r + 10, 10);
    assert_int_equal(r[0].status, 0);
    assert_string_equal(r[0].result, "pong");
    for (int i = 1; i < 20; i++) {
        assert_int_equal(r[i].status, 0);
        assert_int_equal(r[i].code, 0);
        assert_string_equal(r[i].result, i < 10 ? "hi" : "again");
    }
    /* an error comes back as an error map (the argument s is missing) */
    reply_t e = {0};
    assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr,
                                   "system.local.test.echo", NULL, 5000, reply_cb, &e),
                     0);
    wait_all(&e, 1);
    assert_int_equal(e.status, 0);
    assert_int_equal(e.code, RPC_ERR_INVALID_PARAMS);
    rpc_peer_stats_t sa, sb;
    rpc_peer_stats(a.peer, &sa);
    rpc_peer_stats(b.peer, &sb);
    assert_int_equal(sa.dialed, 1);
    assert_int_equal(sa.conns_out_open, 1);
    assert_int_equal(sb.accepted, 1);
    assert_int_equal(sb.conns_in_open, 1);
    assert_int_equal(sa.handshakes_ok, 1);
    assert_int_equal(sb.handshakes_ok, 1);
    assert_int_equal(sa.calls_out, 21);
    assert_int_equal(sa.calls_ok, 21);
    assert_true(sa.bytes_out > 0 && sb.bytes_in == sa.bytes_out);
    /* bad arguments are refused without a callback */
    msgpack_object notarray = {.type = MSGPACK_OBJECT_NIL};
    assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr, "rpc.ping", &notarray,
                                   5000, reply_cb, &e),
                     -EINVAL);
    msgpack_zone_destroy(&z);
    node_free(&a);
    node_free(&b);
}

/* Echoes a big string from->to and checks it came back whole. */
static void big_echo(node_t *from, node_t *to, msgpack_zone *z, const char *big, size_t len)
{
    reply_t r = {0};
    assert_int_equal(rpc_peer_call(from->peer, to->pk, (struct sockaddr *)&to->addr,
                                   "system.local.test.echo", echo_params_obj(z, big), 5000,
                                   reply_cb, &r),
                     0);
    wait_all(&r, 1);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.code, 0);
    assert_int_equal(r.result_len, len);
    assert_memory_equal(r.result, big, sizeof(r.result) - 1);
}

/* Bulk mode: two nodes that both run it switch both directions after the offer; a node with it
 * off (or a plain box-stream peer, which never answers the offer) keeps box-stream. Either way
 * calls carry big payloads intact. */
static void test_bulk_mode(void **state)
{
    node_t a, b, c;
    node_init(&a, 7);
    node_init(&b, 7);
    node_init_ex(&c, 7, true);
    size_t len = 200000;
    char *big = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)('a' + i % 26);
    big[len] = 0;
    msgpack_zone z;
    msgpack_zone_init(&z, 1024);
    rpc_peer_stats_t sa, sb, sc;
    if (rpc_box_bulk_available()) {
        big_echo(&a, &b, &z, big, len);
        big_echo(&a, &b, &z, big, len);
        rpc_peer_stats(a.peer, &sa);
        rpc_peer_stats(b.peer, &sb);
        assert_int_equal(sa.bulk_switched, 2); /* its own direction and b's */
        assert_int_equal(sb.bulk_switched, 2);
    }
    big_echo(&c, &b, &z, big, len); /* c ignores b's offer */
    big_echo(&a, &c, &z, big, len); /* c makes no offer */
    rpc_peer_stats(c.peer, &sc);
    assert_int_equal(sc.bulk_switched, 0);
    assert_int_equal(sc.protocol_errors, 0);
    rpc_peer_stats(b.peer, &sb);
    assert_int_equal(sb.bulk_switched, rpc_box_bulk_available() ? 2 : 0);
    free(big);
    msgpack_zone_destroy(&z);
    node_free(&a);
    node_free(&b);
    node_free(&c);
}

static void test_timeout_then_late_answer(void **state)
{
    node_t a, b;
    node_init(&a, 7);
    node_init(&b, 7);
    reply_t r[2];
    memset(r, 0, sizeof(r));
    assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr,
                                   "system.local.test.hold", NULL, 100, reply_cb, &r[0]),
                     0);
    wait_all(r, 1);
    assert_int_equal(r[0].status, -ETIMEDOUT);
    /* the far side answers late: dropped; the connection keeps working */
    assert_int_equal(n_held, 1);
    rpc_call_reply(held[0]);
    n_held = 0;
    assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr, "rpc.ping", NULL, 5000,
                                   reply_cb, &r[1]),
                     0);
    wait_all(r + 1, 1);
    assert_int_equal(r[1].status, 0);
    assert_string_equal(r[1].result, "pong");
    rpc_peer_stats_t sa;
    rpc_peer_stats(a.peer, &sa);
    assert_int_equal(sa.calls_timeout, 1);
    assert_int_equal(sa.dialed, 1);
    node_free(&a);
    node_free(&b);
}

static void test_wrong_keys(void **state)
{
    node_t a, b, c;
    node_init(&a, 7);
    node_init(&b, 7);
    node_init(&c, 8); /* another network */
    reply_t r[3];
    memset(r, 0, sizeof(r));
    /* a expects c's key at b's address: b is not that server */
    assert_int_equal(rpc_peer_call(a.peer, c.pk, (struct sockaddr *)&b.addr, "rpc.ping", NULL, 5000,
                                   reply_cb, &r[0]),
                     0);
    /* c has another network key */
    assert_int_equal(rpc_peer_call(c.peer, b.pk, (struct sockaddr *)&b.addr, "rpc.ping", NULL, 5000,
                                   reply_cb, &r[1]),
                     0);
    wait_all(r, 2);
    assert_int_equal(r[0].status, -EPROTO);
    assert_int_equal(r[1].status, -EPROTO);
    /* b keeps serving */
    assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr, "rpc.ping", NULL, 5000,
                                   reply_cb, &r[2]),
                     0);
    wait_all(r + 2, 1);
    assert_int_equal(r[2].status, 0);
    for (int i = 0; i < 1000; i++) {
        rpc_peer_stats_t sb;
        rpc_peer_stats(b.peer, &sb);
        if (sb.handshakes_failed == 2) break;
        uv_run(&loop, UV_RUN_ONCE);
    }
    rpc_peer_stats_t sb;
    rpc_peer_stats(b.peer, &sb);
    assert_int_equal(sb.handshakes_failed, 2);
    assert_int_equal(sb.handshakes_ok, 1);
    node_free(&a);
    node_free(&b);
    node_free(&c);
}

static void test_refused_and_reset(void **state)
{
    node_t a, b;
    node_init(&a, 7);
    node_init(&b, 7);
    reply_t r[3];
    memset(r, 0, sizeof(r));
    assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr,
                                   "system.local.test.hold", NULL, 30000, reply_cb, &r[0]),
                     0);
    for (int i = 0; i < 1000 && n_held == 0; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(n_held, 1);
    /* b goes away with the call in its hands: a's call ends at once, long before its deadline */
    struct sockaddr_in baddr = b.addr;
    node_free(&b);
    rpc_call_reply(held[0]); /* answered into the void */
    n_held = 0;
    wait_all(r, 1);
    assert_int_equal(r[0].status, -ECONNRESET);
    /* nobody listens there any more */
    assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&baddr, "rpc.ping", NULL, 5000,
                                   reply_cb, &r[1]),
                     0);
    wait_all(r + 1, 1);
    assert_int_equal(r[1].status, -ECONNREFUSED);
    /* stopping a with a call in flight cancels it from inside rpc_peer_stop */
    node_t c;
    node_init(&c, 7);
    assert_int_equal(rpc_peer_call(a.peer, c.pk, (struct sockaddr *)&c.addr,
                                   "system.local.test.hold", NULL, 30000, reply_cb, &r[2]),
                     0);
    node_stop(&a);
    assert_true(r[2].done);
    assert_int_equal(r[2].status, -ECANCELED);
    node_free(&a);
    for (int i = 0; i < 1000 && n_held == 0; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    for (int i = 0; i < n_held; i++)
        rpc_call_reply(held[i]);
    n_held = 0;
    node_free(&c);
}

typedef struct raw {
    uv_tcp_t tcp;
    uv_connect_t req;
    uv_write_t w;
    uv_buf_t buf;
    bool closed;
} raw_t;

static void raw_close_cb(uv_handle_t *h)
{
    ((raw_t *)h->data)->closed = true;
}

static void raw_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    static char buf[256];
    b->base = buf;
    b->len = sizeof(buf);
}

static void raw_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) uv_close((uv_handle_t *)st, raw_close_cb);
}

static void raw_connected(uv_connect_t *req, int status)
{
    raw_t *r = req->data;
    assert_int_equal(status, 0);
    uv_write(&r->w, (uv_stream_t *)&r->tcp, &r->buf, 1, NULL);
    uv_read_start((uv_stream_t *)&r->tcp, raw_alloc, raw_read);
}

static void test_garbage(void **state)
{
    node_t a, b;
    node_init(&a, 7);
    node_init(&b, 7);
    /* 64 bytes of garbage (a hello with a bad MAC) and then more: b hangs up */
    static char junk[200];
    memset(junk, 0x5a, sizeof(junk));
    raw_t raw = {.buf = uv_buf_init(junk, sizeof(junk))};
    uv_tcp_init(&loop, &raw.tcp);
    raw.tcp.data = &raw;
    raw.req.data = &raw;
    assert_int_equal(uv_tcp_connect(&raw.req, &raw.tcp, (struct sockaddr *)&b.addr, raw_connected),
                     0);
    for (int i = 0; i < 10000 && !raw.closed; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_true(raw.closed);
    rpc_peer_stats_t sb;
    rpc_peer_stats(b.peer, &sb);
    assert_int_equal(sb.handshakes_failed, 1);
    assert_int_equal(sb.conns_in_open, 0);
    reply_t r = {0};
    assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr, "rpc.ping", NULL, 5000,
                                   reply_cb, &r),
                     0);
    wait_all(&r, 1);
    assert_int_equal(r.status, 0);
    node_free(&a);
    node_free(&b);
}

static void test_pending_cap(void **state)
{
    node_t a, b;
    node_init(&a, 7);
    node_init(&b, 7);
    /* calls queue while the connection dials: the cap is reached synchronously */
    reply_t *r = calloc(RPC_PEER_MAX_PENDING, sizeof(*r));
    reply_t extra = {0};
    for (int i = 0; i < RPC_PEER_MAX_PENDING; i++)
        assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr, "rpc.ping", NULL,
                                       5000, reply_cb, &r[i]),
                         0);
    assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr, "rpc.ping", NULL, 5000,
                                   reply_cb, &extra),
                     -ENOBUFS);
    wait_all(r, RPC_PEER_MAX_PENDING);
    /* the far session answers each (pong, or RESOURCE_EXHAUSTED past its own pending cap) */
    int pong = 0;
    for (int i = 0; i < RPC_PEER_MAX_PENDING; i++) {
        assert_int_equal(r[i].status, 0);
        pong += strcmp(r[i].result, "pong") == 0;
    }
    assert_true(pong > 0);
    assert_false(extra.done);
    assert_int_equal(rpc_peer_call(a.peer, b.pk, (struct sockaddr *)&b.addr, "rpc.ping", NULL, 5000,
                                   reply_cb, &extra),
                     0);
    wait_all(&extra, 1);
    assert_int_equal(extra.status, 0);
    free(r);
    node_free(&a);
    node_free(&b);
}

/* Notifications carry the request's id as a last {"_msgid": N} element; the caller's on_notify
 * gets them in order, before the answer, without that element. */
static void notify_cb(void *arg, const msgpack_object *method, const msgpack_object *params)
{
    reply_t *r = arg;
    assert_false(r->done);
    assert_true(rpc_str_eq(method, "test.chunk"));
    assert_int_equal(params->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(params->via.array.size, 2);
    assert_int_equal(params->via.array.ptr[0].via.u64, (uint64_t)r->notified);
    assert_true(rpc_str_eq(&params->via.array.ptr[1], "x"));
    r->notified++;
}

static void test_notifications(void **state)
{
    node_t a, b;
    node_init(&a, 1);
    node_init(&b, 1);
    reply_t r[3];
    memset(r, 0, sizeof(r));
    /* two concurrent streams and a plain call on one connection: each gets its own */
    for (int i = 0; i < 2; i++)
        assert_int_equal(rpc_peer_call_ex(a.peer, b.pk, (struct sockaddr *)&b.addr,
                                          "system.local.test.stream", NULL, 5000, reply_cb,
                                          notify_cb, &r[i]),
                         0);
    assert_int_equal(rpc_peer_call_ex(a.peer, b.pk, (struct sockaddr *)&b.addr, "rpc.ping", NULL,
                                      5000, reply_cb, notify_cb, &r[2]),
                     0);
    wait_all(r, 3);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r[i].status, 0);
        assert_int_equal(r[i].code, 0);
        assert_int_equal(r[i].notified, 2);
        assert_string_equal(r[i].result, "done");
    }
    assert_int_equal(r[2].notified, 0);
    node_free(&a);
    node_free(&b);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_call_and_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_then_late_answer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notifications, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bulk_mode, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
