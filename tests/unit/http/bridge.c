/* Unit tests of src/http/bridge.c: real nodes (node_start on temporary data dirs, loopback, port 0)
 * and JSON-RPC payloads through http_bridge_run into their registry: single calls, errors of the
 * dispatch path (unknown method, bad params, roles, tokens), batches with mixed answers and
 * notifications, a batch wider than the session's calls in flight, the batch limit, bad JSON,
 * bytes as base64 through file.write/file.read, deadlines, a call to another node through the
 * router, abandon (before and with calls in flight) and the API stopping with calls in flight.
 * done must never run from inside http_bridge_run. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "base/base.h"
#include "http/api.h"
#include "node/config.h"
#include "node/log.h"
#include "node/node.h"
#include "rpc/rpc.h"
#include "../node/testdir.h"

#define NETKEY  "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
#define AUTHKEY "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="

typedef struct fix {
    char root[64];
    uv_loop_t loop;
    node_log_t *log;
    node_t *node;
    char *admin, *viewer, *operator_;
    node_t *stopped[4]; /* freed once the loop is closed (parts read them until then) */
    int n_stopped;
} fix_t;

static fix_t *F;

/* --- loop helpers ----------------------------------------------------------------------------- */

typedef struct waiter {
    uv_timer_t guard;
    bool expired;
} waiter_t;

static void guard_cb(uv_timer_t *t)
{
    ((waiter_t *)t->data)->expired = true;
}

/* Runs the loop until *flag is true or 30 s pass (a hang guard, not a timing assertion). */
static void run_until(const bool *flag)
{
    waiter_t w = {.expired = false};
    uv_timer_init(&F->loop, &w.guard);
    w.guard.data = &w;
    uv_timer_start(&w.guard, guard_cb, 30000, 0);
    while (!*flag && !w.expired)
        uv_run(&F->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&w.guard, NULL);
    uv_run(&F->loop, UV_RUN_NOWAIT);
    assert_true(*flag);
}

static void set_flag(void *arg)
{
    *(bool *)arg = true;
}

/* --- nodes ------------------------------------------------------------------------------------ */

static node_t *start_node(const char *name, const char *boot)
{
    char dd[128], *argv[16];
    int argc = 0;
    snprintf(dd, sizeof(dd), "%s/%s", F->root, name);
    argv[argc++] = "--name";
    argv[argc++] = (char *)name;
    argv[argc++] = "--dht-host";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--dht-port";
    argv[argc++] = "0";
    argv[argc++] = "--port";
    argv[argc++] = "0";
    argv[argc++] = "--data-dir";
    argv[argc++] = dd;
    if (boot) {
        argv[argc++] = "--bootstrap";
        argv[argc++] = (char *)boot;
    }
    char *env[] = {"NETWORK_KEY=" NETKEY, "AUTH_SECRET=" AUTHKEY, NULL};
    char err[512];
    node_t *n = calloc(1, sizeof(*n));
    assert_non_null(n);
    assert_int_equal(node_config_parse(&n->cfg, argc, argv, env, false, err, sizeof(err)), 0);
    int rc = node_start(n, &F->loop, F->log, err, sizeof(err));
    if (rc < 0) fprintf(stderr, "node_start: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(n->http);
    return n;
}

static void stop_node(node_t *n)
{
    bool stopped = false;
    node_stop(n, set_flag, &stopped);
    run_until(&stopped);
    F->stopped[F->n_stopped++] = n;
}

static char *mint(const node_t *n, const char *role)
{
    char *t = NULL;
    assert_int_equal(rpc_jwt_mint(n->auth_secret, n->auth_secret_len, role, "tester", "p2p-admin",
                                  600, p2p_wall_ms() / 1000, &t),
                     0);
    return t;
}

static int setup(void **state)
{
    (void)state;
    F = calloc(1, sizeof(*F));
    if (!F || !testdir_make(F->root) || uv_loop_init(&F->loop) != 0) return -1;
    F->log = node_log_new(stderr, NODE_LOG_ERROR, false);
    F->node = start_node("alpha", NULL);
    F->admin = mint(F->node, "admin");
    F->viewer = mint(F->node, "viewer");
    F->operator_ = mint(F->node, "operator");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    stop_node(F->node);
    uv_run(&F->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < F->n_stopped; i++)
        free(F->stopped[i]);
    int rc = uv_loop_close(&F->loop);
    node_log_free(F->log);
    free(F->admin);
    free(F->viewer);
    free(F->operator_);
    testdir_remove(F->root);
    free(F);
    return rc == 0 ? 0 : -1;
}

/* --- calls ------------------------------------------------------------------------------------ */

typedef struct got {
    bool called;
    int times;
    char *json;
    size_t len;
} got_t;

static void on_done(void *arg, char *json, size_t len)
{
    got_t *g = arg;
    g->called = true;
    g->times++;
    g->json = json;
    g->len = len;
}

static void never_done(void *arg, char *json, size_t len)
{
    (void)arg;
    (void)json;
    (void)len;
    fail_msg("done ran after abandon");
}

/* Runs body through the bridge of node n with token (NULL: none) and returns the parsed answer
 * (NULL when the bridge answered nothing). */
static json_t *call_on(node_t *n, const char *token, const char *body)
{
    got_t g = {0};
    http_bridge_req_t *q = http_bridge_run(n->http, token, token ? strlen(token) : 0, body,
                                           strlen(body), false, on_done, &g);
    assert_non_null(q);
    assert_false(g.called); /* never from inside http_bridge_run */
    run_until(&g.called);
    assert_int_equal(g.times, 1);
    if (!g.json) return NULL;
    assert_int_equal(strlen(g.json), g.len);
    json_error_t e;
    json_t *j = json_loadb(g.json, g.len, 0, &e);
    if (!j) fail_msg("bad JSON answer: %s", g.json);
    free(g.json);
    return j;
}

static json_t *call(const char *token, const char *body)
{
    return call_on(F->node, token, body);
}

static int err_code(const json_t *resp)
{
    return (int)json_integer_value(json_object_get(json_object_get(resp, "error"), "code"));
}

static const char *err_param(const json_t *resp)
{
    const json_t *d = json_object_get(json_object_get(resp, "error"), "data");
    return json_string_value(json_object_get(d, "param"));
}

/* --- tests ------------------------------------------------------------------------------------ */

static void single_ok(void **state)
{
    (void)state;
    json_t *r =
        call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"system.local.node.info\"}");
    assert_string_equal(json_string_value(json_object_get(r, "jsonrpc")), "2.0");
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 7);
    assert_null(json_object_get(r, "error"));
    const json_t *res = json_object_get(r, "result");
    assert_string_equal(json_string_value(json_object_get(res, "name")), "alpha");
    json_decref(r);
    /* the node's own name addresses it like local; a string id comes back as is */
    r = call(
        F->viewer,
        "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"system.alpha.node.info\",\"params\":[]}");
    assert_string_equal(json_string_value(json_object_get(r, "id")), "x");
    assert_non_null(json_object_get(json_object_get(r, "result"), "id"));
    json_decref(r);
    /* methods without a role need no token */
    r = call(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.ping\"}");
    assert_non_null(json_object_get(r, "result"));
    json_decref(r);
}

static void unknown_method(void **state)
{
    (void)state;
    json_t *r =
        call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.node.nope\"}");
    assert_int_equal(err_code(r), RPC_ERR_METHOD_NOT_FOUND);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 1);
    json_decref(r);
    r = call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"nothing\"}");
    assert_int_equal(err_code(r), RPC_ERR_METHOD_NOT_FOUND);
    json_decref(r);
}

static void bad_params(void **state)
{
    (void)state;
    json_t *r =
        call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.file.stat\","
                        "\"params\":{\"path\":5}}");
    assert_int_equal(err_code(r), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(err_param(r), "path");
    json_decref(r);
    r = call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.file.stat\","
                        "\"params\":{\"path\":\"a\",\"nope\":1}}");
    assert_int_equal(err_code(r), RPC_ERR_INVALID_PARAMS);
    json_decref(r);
    /* params that are neither object nor array: the envelope is refused */
    r = call(F->viewer,
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.file.stat\",\"params\":3}");
    assert_int_equal(err_code(r), RPC_ERR_INVALID_REQUEST);
    json_decref(r);
    /* the token is the caller's, never a parameter */
    r = call(NULL, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.node.info\","
                   "\"params\":{\"_token\":\"abc\"}}");
    assert_int_equal(err_code(r), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(err_param(r), "_token");
    json_decref(r);
    /* reserved names the socket refuses are refused here too */
    r = call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.node.info\","
                        "\"params\":{\"_timeout\":-1}}");
    assert_int_equal(err_code(r), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(err_param(r), "_timeout");
    json_decref(r);
}

static void batch_mixed(void **state)
{
    (void)state;
    json_t *r =
        call(F->viewer, "["
                        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.ping\"},"
                        "{\"jsonrpc\":\"2.0\",\"method\":\"rpc.ping\"},"
                        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.local.x.y\"},"
                        "5,"
                        "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"system.local.file.stat\","
                        "\"params\":{\"path\":true}},"
                        "{\"jsonrpc\":\"2.0\",\"method\":\"system.local.node.info\"},"
                        "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"system.local.node.info\"}"
                        "]");
    assert_true(json_is_array(r));
    assert_int_equal(json_array_size(r), 5); /* the two notifications get nothing */
    const json_t *e;
    e = json_array_get(r, 0);
    assert_int_equal(json_integer_value(json_object_get(e, "id")), 1);
    assert_non_null(json_object_get(e, "result"));
    e = json_array_get(r, 1);
    assert_int_equal(json_integer_value(json_object_get(e, "id")), 2);
    assert_int_equal(err_code(e), RPC_ERR_METHOD_NOT_FOUND);
    e = json_array_get(r, 2);
    assert_true(json_is_null(json_object_get(e, "id")));
    assert_int_equal(err_code(e), RPC_ERR_INVALID_REQUEST);
    e = json_array_get(r, 3);
    assert_int_equal(json_integer_value(json_object_get(e, "id")), 3);
    assert_int_equal(err_code(e), RPC_ERR_INVALID_PARAMS);
    e = json_array_get(r, 4);
    assert_int_equal(json_integer_value(json_object_get(e, "id")), 4);
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "result"), "name")),
                        "alpha");
    json_decref(r);
    /* notifications only: no answer at all, single or batch */
    assert_null(call(F->viewer, "[{\"jsonrpc\":\"2.0\",\"method\":\"rpc.ping\"},"
                                "{\"jsonrpc\":\"2.0\",\"method\":\"system.local.node.info\"}]"));
    assert_null(call(F->viewer, "{\"jsonrpc\":\"2.0\",\"method\":\"rpc.ping\"}"));
    /* an empty batch and a scalar are one Invalid Request */
    r = call(F->viewer, "[]");
    assert_true(json_is_object(r));
    assert_int_equal(err_code(r), RPC_ERR_INVALID_REQUEST);
    json_decref(r);
    r = call(F->viewer, "\"hello\"");
    assert_int_equal(err_code(r), RPC_ERR_INVALID_REQUEST);
    json_decref(r);
}

/* n file.stat calls in one batch (each runs on the thread pool, so they are in flight at once) */
static char *stat_batch(int n)
{
    size_t cap = (size_t)n * 128 + 8, o = 0;
    char *b = malloc(cap);
    b[o++] = '[';
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(b + o, cap - o,
                              "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"system.local.file."
                              "stat\",\"params\":{\"path\":\"nope-%d\"}}",
                              i ? "," : "", i, i);
    b[o++] = ']';
    b[o] = 0;
    return b;
}

static void batch_limits(void **state)
{
    (void)state;
    /* 100: wider than the session's calls in flight (RPC_MAX_PENDING), every one answered */
    char *b = stat_batch(HTTP_MAX_JSONRPC_BATCH);
    json_t *r = call(F->viewer, b);
    free(b);
    assert_int_equal(json_array_size(r), HTTP_MAX_JSONRPC_BATCH);
    for (int i = 0; i < HTTP_MAX_JSONRPC_BATCH; i++) {
        const json_t *e = json_array_get(r, (size_t)i);
        assert_int_equal(json_integer_value(json_object_get(e, "id")), i);
        assert_int_equal(err_code(e), RPC_ERR_NOT_FOUND);
    }
    json_decref(r);
    /* 101: one error for the whole body */
    b = stat_batch(HTTP_MAX_JSONRPC_BATCH + 1);
    r = call(F->viewer, b);
    free(b);
    assert_true(json_is_object(r));
    assert_int_equal(err_code(r), RPC_ERR_RESOURCE_EXHAUSTED);
    assert_true(json_is_null(json_object_get(r, "id")));
    json_decref(r);
}

static void bad_json(void **state)
{
    (void)state;
    json_t *r = call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":");
    assert_int_equal(err_code(r), RPC_ERR_PARSE);
    assert_true(json_is_null(json_object_get(r, "id")));
    json_decref(r);
    r = call(F->viewer, "[1,2");
    assert_int_equal(err_code(r), RPC_ERR_PARSE);
    json_decref(r);
    r = call(F->viewer, "");
    assert_int_equal(err_code(r), RPC_ERR_PARSE);
    json_decref(r);
}

static void tokens_and_roles(void **state)
{
    (void)state;
    const char *w = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.file.write\","
                    "\"params\":{\"path\":\"t.txt\",\"data\":\"x\"}}";
    json_t *r = call(F->viewer, w); /* viewer may not write */
    assert_int_equal(err_code(r), RPC_ERR_PERMISSION_DENIED);
    json_decref(r);
    r = call(F->operator_, w);
    assert_int_equal(err_code(r), RPC_ERR_PERMISSION_DENIED);
    json_decref(r);
    r = call(NULL, w);
    assert_int_equal(err_code(r), RPC_ERR_UNAUTHENTICATED);
    json_decref(r);
    r = call("not.a.token", w);
    assert_int_equal(err_code(r), RPC_ERR_UNAUTHENTICATED);
    json_decref(r);
    /* a token of another secret */
    uint8_t other[32] = {1};
    char *t = NULL;
    assert_int_equal(
        rpc_jwt_mint(other, sizeof(other), "admin", "x", "p2p-admin", 60, p2p_wall_ms() / 1000, &t),
        0);
    r = call(t, w);
    free(t);
    assert_int_equal(err_code(r), RPC_ERR_UNAUTHENTICATED);
    json_decref(r);
    /* each call of a batch is checked on its own */
    r = call(F->viewer, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.node.info\"},"
                        "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.local.file.write\","
                        "\"params\":{\"path\":\"t.txt\",\"data\":\"x\"}}]");
    assert_non_null(json_object_get(json_array_get(r, 0), "result"));
    assert_int_equal(err_code(json_array_get(r, 1)), RPC_ERR_PERMISSION_DENIED);
    json_decref(r);
    r = call(F->admin, w);
    assert_non_null(json_object_get(r, "result"));
    json_decref(r);
}

static void base64_round_trip(void **state)
{
    (void)state;
    uint8_t bytes[3000];
    for (size_t i = 0; i < sizeof(bytes); i++)
        bytes[i] = (uint8_t)(i * 7 + (i >> 8)); /* zeros, high bytes, invalid UTF-8 */
    char b64[sodium_base64_ENCODED_LEN(sizeof(bytes), sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof(b64), bytes, sizeof(bytes), sodium_base64_VARIANT_ORIGINAL);
    char body[sizeof(b64) + 256];
    snprintf(body, sizeof(body),
             "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.file.write\","
             "\"params\":{\"path\":\"bin.dat\",\"data\":{\"base64\":\"%s\"}}}",
             b64);
    json_t *r = call(F->admin, body);
    assert_non_null(json_object_get(r, "result"));
    json_decref(r);
    r = call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.local.file.read\","
                        "\"params\":{\"path\":\"bin.dat\"}}");
    const json_t *res = json_object_get(r, "result");
    assert_non_null(res);
    assert_string_equal(json_string_value(json_object_get(res, "data")), b64);
    assert_true(json_is_true(json_object_get(res, "eof")));
    json_decref(r);
    /* positional params take the schema's names */
    r = call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"system.local.file.read\","
                        "\"params\":[\"bin.dat\", 2990]}");
    res = json_object_get(r, "result");
    size_t n = 0;
    uint8_t back[16];
    const char *d = json_string_value(json_object_get(res, "data"));
    assert_non_null(d);
    assert_int_equal(sodium_base642bin(back, sizeof(back), d, strlen(d), NULL, &n, NULL,
                                       sodium_base64_VARIANT_ORIGINAL),
                     0);
    assert_int_equal(n, 10);
    assert_memory_equal(back, bytes + 2990, 10);
    json_decref(r);
    /* bad base64 names the argument */
    r = call(F->admin, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"system.local.file.write\","
                       "\"params\":{\"path\":\"b.dat\",\"data\":{\"base64\":\"@@@\"}}}");
    assert_int_equal(err_code(r), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(err_param(r), "data");
    json_decref(r);
}

static void deadline(void **state)
{
    (void)state;
    /* _timeout reaches the call: the command is killed within the call's deadline */
    json_t *r =
        call(F->admin, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.process.run\","
                       "\"params\":{\"argv\":[\"sleep\",\"30\"],\"_timeout\":0.4}}");
    assert_true(json_is_true(json_object_get(json_object_get(r, "result"), "timed_out")));
    json_decref(r);
    /* a streamed call answers its final result, output included (bytes: base64) */
    r = call(F->admin, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.local.process.run\","
                       "\"params\":{\"argv\":[\"echo\",\"hi\"],\"_stream\":true}}");
    const json_t *res = json_object_get(r, "result");
    assert_non_null(res);
    assert_string_equal(json_string_value(json_object_get(res, "stdout")), "aGkK"); /* "hi\n" */
    assert_int_equal(json_integer_value(json_object_get(res, "exit_code")), 0);
    json_decref(r);
}

static void abandon(void **state)
{
    (void)state;
    /* before anything ran */
    const char *ping = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.ping\"}";
    http_bridge_req_t *q =
        http_bridge_run(F->node->http, NULL, 0, ping, strlen(ping), false, never_done, NULL);
    assert_non_null(q);
    http_bridge_abandon(q);
    http_bridge_abandon(NULL);
    /* with calls in flight whose answers come after: a command and file calls on the pool */
    const char *slow = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.process.run\","
                       "\"params\":{\"argv\":[\"sleep\",\"0.3\"]}},"
                       "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.local.file.stat\","
                       "\"params\":{\"path\":\"bin.dat\"}}]";
    q = http_bridge_run(F->node->http, F->admin, strlen(F->admin), slow, strlen(slow), false,
                        never_done, NULL);
    assert_non_null(q);
    uv_run(&F->loop, UV_RUN_NOWAIT);
    http_bridge_abandon(q);
    /* the late answers land in the void; a call made afterwards still works */
    json_t *r =
        call(F->admin, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"system.local.process.run\","
                       "\"params\":{\"argv\":[\"sleep\",\"0.5\"]}}");
    assert_non_null(json_object_get(r, "result"));
    json_decref(r);
}

/* A test method answering `size` bytes (a bin), to pass the reply limits. */
static void blob_cb(rpc_call_t *c, void *ctx)
{
    (void)ctx;
    size_t n = (size_t)rpc_call_int(c, "size");
    char *b = calloc(1, n ? n : 1);
    msgpack_pack_bin(rpc_call_packer(c), n);
    msgpack_pack_bin_body(rpc_call_packer(c), b, n);
    free(b);
    rpc_call_reply(c);
}

static const rpc_param_t blob_params[] = {
    {.name = "size", .types = RPC_T_INT, .required = true, .description = "bytes"}};

static void reply_limits(void **state)
{
    (void)state;
    static const rpc_method_t m = {.name = "test.blob",
                                   .description = "bytes",
                                   .role = RPC_ROLE_VIEWER,
                                   .params = blob_params,
                                   .n_params = 1,
                                   .handler = blob_cb};
    assert_int_equal(rpc_registry_add(F->node->reg, &m), 0);
    /* a reply past RPC_MAX_FRAME: that call alone is refused, the next ones answer */
    char body[512];
    snprintf(body, sizeof(body),
             "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.test.blob\","
             "\"params\":{\"size\":100}},"
             "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.local.test.blob\","
             "\"params\":{\"size\":%u}},"
             "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"system.local.test.blob\","
             "\"params\":{\"size\":3}}]",
             RPC_MAX_FRAME + 16);
    json_t *r = call(F->viewer, body);
    assert_int_equal(json_array_size(r), 3);
    assert_non_null(json_object_get(json_array_get(r, 0), "result"));
    assert_int_equal(err_code(json_array_get(r, 1)), RPC_ERR_RESOURCE_EXHAUSTED);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(r, 1), "id")), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(r, 2), "result")), "AAAA");
    json_decref(r);
    /* answers past HTTP_MAX_RPC_RESPONSE together: the element that passes it is refused */
    unsigned each = HTTP_MAX_RPC_RESPONSE / 4 / 4 * 3; /* a quarter of the limit as base64 */
    char big[1024];
    size_t o = 0;
    big[o++] = '[';
    for (int i = 0; i < 5; i++)
        o += (size_t)snprintf(big + o, sizeof(big) - o,
                              "%s{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"system.local."
                              "test.blob\",\"params\":{\"size\":%u}}",
                              i ? "," : "", i, each);
    big[o++] = ']';
    big[o] = 0;
    r = call(F->viewer, big);
    assert_int_equal(json_array_size(r), 5);
    int refused = 0;
    for (size_t i = 0; i < 5; i++)
        if (err_code(json_array_get(r, i)) == RPC_ERR_RESOURCE_EXHAUSTED) refused++;
    assert_int_equal(refused, 2); /* 3 quarters fit with the envelopes, the 4th does not */
    json_decref(r);
}

/* Another node's method through this node: the registry's router forwards it with the token. */
static void remote_call(void **state)
{
    (void)state;
    char boot[64];
    snprintf(boot, sizeof(boot), "127.0.0.1:%d", dht_uv_port(F->node->dhtuv));
    node_t *beta = start_node("beta", boot);
    run_until(&beta->joined);
    json_t *r = NULL;
    /* until alpha has learnt of beta (the DHT lookup of a name it does not know yet) */
    for (int i = 0; i < 40; i++) {
        json_decref(r);
        r = call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.beta.node.info\"}");
        if (json_object_get(r, "result")) break;
    }
    const json_t *res = json_object_get(r, "result");
    if (!res) fail_msg("no answer from beta: %s", json_dumps(r, 0));
    assert_string_equal(json_string_value(json_object_get(res, "name")), "beta");
    json_decref(r);
    /* the far node checks the role itself; bytes cross as base64 both ways */
    r = call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"system.beta.file.write\","
                        "\"params\":{\"path\":\"r.dat\",\"data\":{\"base64\":\"AAEC/w==\"}}}");
    assert_int_equal(err_code(r), RPC_ERR_PERMISSION_DENIED);
    json_decref(r);
    r = call(F->admin, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"system.beta.file.write\","
                       "\"params\":{\"path\":\"r.dat\",\"data\":{\"base64\":\"AAEC/w==\"}}}");
    assert_non_null(json_object_get(r, "result"));
    json_decref(r);
    r = call(F->viewer, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"system.beta.file.read\","
                        "\"params\":{\"path\":\"r.dat\"}}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "result"), "data")),
                        "AAEC/w==");
    json_decref(r);
    /* no token: routed calls need one */
    r = call(NULL, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"system.beta.node.info\"}");
    assert_int_equal(err_code(r), RPC_ERR_UNAUTHENTICATED);
    json_decref(r);
    stop_node(beta);
}

/* The API stops while a call is in flight: it is answered UNAVAILABLE, once. */
static void stop_in_flight(void **state)
{
    (void)state;
    node_t *g = start_node("gamma", NULL);
    char *tok = mint(g, "admin");
    const char *body = "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"system.local.process.run\","
                       "\"params\":{\"argv\":[\"sleep\",\"30\"],\"_timeout\":60}}";
    got_t got = {0};
    assert_non_null(
        http_bridge_run(g->http, tok, strlen(tok), body, strlen(body), false, on_done, &got));
    uv_run(&F->loop, UV_RUN_NOWAIT);
    assert_false(got.called);
    stop_node(g);
    assert_int_equal(got.times, 1);
    json_t *r = json_loads(got.json, 0, NULL);
    assert_int_equal(err_code(r), RPC_ERR_UNAVAILABLE);
    assert_int_equal(json_integer_value(json_object_get(r, "id")), 9);
    json_decref(r);
    free(got.json);
    free(tok);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(single_ok),        cmocka_unit_test(unknown_method),
        cmocka_unit_test(bad_params),       cmocka_unit_test(batch_mixed),
        cmocka_unit_test(batch_limits),     cmocka_unit_test(bad_json),
        cmocka_unit_test(tokens_and_roles), cmocka_unit_test(base64_round_trip),
        cmocka_unit_test(deadline),         cmocka_unit_test(abandon),
        cmocka_unit_test(reply_limits),     cmocka_unit_test(remote_call),
        cmocka_unit_test(stop_in_flight),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
