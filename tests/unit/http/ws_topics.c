/* Tests of src/http/ws_topics.c: topic names, client message parsing, the frames the node sends
 * (decoded back as a client would), and the feeds: fan-out splitting, events with cursors and
 * restarts, process state changes, audit rows, nodes joining and leaving. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/ws-internal.h"
#include "rpc/rpc.h"

/* The JSON payload of an unmasked server text frame (checked byte by byte). */
static json_t *frame_json(const uint8_t *f, size_t len)
{
    assert_true(len >= 2);
    assert_int_equal(f[0], 0x81);
    assert_int_equal(f[1] & 0x80, 0);
    size_t n = f[1] & 0x7F, at = 2;
    if (n == 126) {
        n = (size_t)f[2] << 8 | f[3];
        at = 4;
    } else if (n == 127) {
        n = 0;
        for (int i = 0; i < 8; i++)
            n = n << 8 | f[2 + i];
        at = 10;
    }
    assert_int_equal(at + n, len);
    json_t *j = json_loadb((const char *)f + at, n, 0, NULL);
    assert_non_null(j);
    return j;
}

static void test_topics(void **state)
{
    (void)state;
    const char *names[] = {"metrics", "nodes", "events", "audit"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(http_ws_topic_parse(names[i], strlen(names[i])), i);
        assert_string_equal(http_ws_topic_name(i), names[i]);
    }
    assert_int_equal(http_ws_topic_parse("metric", 6), -EINVAL);
    assert_int_equal(http_ws_topic_parse("metricsx", 8), -EINVAL);
    assert_int_equal(http_ws_topic_parse("", 0), -EINVAL);
    assert_string_equal(http_ws_topic_name(4), "");
    assert_string_equal(http_ws_topic_name(-1), "");
}

static int parse(const char *text, http_ws_cmsg_t *m, const char **param)
{
    const char *why = NULL;
    int r = http_ws_parse_cmsg(text, strlen(text), m, &why, param);
    if (r == 0)
        assert_null(why);
    else
        assert_non_null(why);
    return r;
}

static void test_parse_cmsg(void **state)
{
    (void)state;
    http_ws_cmsg_t m;
    const char *param;
    assert_int_equal(parse("{\"subscribe\":\"metrics\"}", &m, &param), 0);
    assert_int_equal(m.kind, HTTP_WS_CMSG_SUBSCRIBE);
    assert_int_equal(m.topic, HTTP_WS_TOPIC_METRICS);
    assert_null(m.id);
    json_decref(m.root);
    assert_int_equal(parse("{\"unsubscribe\":\"audit\",\"id\":7}", &m, &param), 0);
    assert_int_equal(m.kind, HTTP_WS_CMSG_UNSUBSCRIBE);
    assert_int_equal(m.topic, HTTP_WS_TOPIC_AUDIT);
    assert_int_equal(json_integer_value(m.id), 7);
    json_decref(m.root);
    assert_int_equal(parse("{\"token\":\"a.b.c\"}", &m, &param), 0);
    assert_int_equal(m.kind, HTTP_WS_CMSG_TOKEN);
    assert_int_equal(m.token_len, 5);
    assert_memory_equal(m.token, "a.b.c", 5);
    json_decref(m.root);
    assert_int_equal(
        parse("{\"id\":1,\"method\":\"system.local.node.info\",\"params\":{}}", &m, &param), 0);
    assert_int_equal(m.kind, HTTP_WS_CMSG_CALL);
    json_decref(m.root);

    /* errors */
    assert_int_equal(parse("{\"subscribe\":\"cpu\",\"id\":\"x\"}", &m, &param),
                     RPC_ERR_INVALID_PARAMS);
    assert_string_equal(param, "subscribe");
    assert_string_equal(json_string_value(m.id), "x");
    json_decref(m.root);
    assert_int_equal(parse("{\"unsubscribe\":3}", &m, &param), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(param, "unsubscribe");
    json_decref(m.root);
    assert_int_equal(parse("{\"token\":5}", &m, &param), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(param, "token");
    json_decref(m.root);
    assert_int_equal(parse("{\"hello\":1}", &m, &param), RPC_ERR_INVALID_REQUEST);
    json_decref(m.root);
    assert_int_equal(parse("[1,2]", &m, &param), RPC_ERR_INVALID_REQUEST);
    json_decref(m.root);
    assert_int_equal(parse("{\"subscribe\":", &m, &param), RPC_ERR_PARSE);
    assert_null(m.root);
    assert_int_equal(parse("{\"a\":1,\"a\":2}", &m, &param), RPC_ERR_PARSE);
    assert_int_equal(parse("", &m, &param), RPC_ERR_PARSE);
}

static void test_frames(void **state)
{
    (void)state;
    size_t len;
    uint8_t *f = http_ws_text_frame("hi", 2, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(f, "\x81\x02hi", 4);
    free(f);

    /* a payload past 125 bytes and one past 65535 take the longer length forms */
    char *big = malloc(70000);
    memset(big, 'a', 70000);
    f = http_ws_text_frame(big, 200, &len);
    assert_int_equal(len, 204);
    assert_int_equal(f[1], 126);
    free(f);
    f = http_ws_text_frame(big, 70000, &len);
    assert_int_equal(len, 70010);
    assert_int_equal(f[1], 127);
    free(f);
    free(big);

    json_t *data = json_pack("{s:f, s:[i,i]}", "cpu", 12.5, "load", 1, 2);
    f = http_ws_event_frame(HTTP_WS_TOPIC_METRICS, "n1", data, &len);
    json_t *j = frame_json(f, len);
    assert_string_equal(json_string_value(json_object_get(j, "topic")), "metrics");
    assert_string_equal(json_string_value(json_object_get(j, "node")), "n1");
    assert_true(json_equal(json_object_get(j, "data"), data));
    assert_int_equal(json_object_size(j), 3);
    json_decref(j);
    free(f);
    json_decref(data);

    json_t *id = json_integer(9);
    f = http_ws_error_frame(id, RPC_ERR_INVALID_PARAMS, "unknown topic", "subscribe", &len);
    j = frame_json(f, len);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 9);
    json_t *err = json_object_get(j, "error");
    assert_int_equal(json_integer_value(json_object_get(err, "code")), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(json_string_value(json_object_get(err, "message")), "unknown topic");
    assert_string_equal(json_string_value(json_object_get(json_object_get(err, "data"), "param")),
                        "subscribe");
    json_decref(j);
    free(f);
    json_decref(id);
    f = http_ws_error_frame(NULL, RPC_ERR_PARSE, "message is not JSON", NULL, &len);
    j = frame_json(f, len);
    assert_true(json_is_null(json_object_get(j, "id")));
    assert_null(json_object_get(json_object_get(j, "error"), "data"));
    json_decref(j);
    free(f);
}

/* Records what a feed emits. */
typedef struct seen {
    int n;
    char node[8][64];
    json_t *data[8];
} seen_t;

static void record(void *arg, const char *node, json_t *data)
{
    seen_t *s = arg;
    assert_true(s->n < 8);
    strcpy(s->node[s->n], node);
    s->data[s->n++] = json_incref(data);
}

static void seen_reset(seen_t *s)
{
    for (int i = 0; i < s->n; i++)
        json_decref(s->data[i]);
    memset(s, 0, sizeof(*s));
}

static void test_fanout(void **state)
{
    (void)state;
    seen_t s = {0};
    const char *resp = "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{"
                       "\"n1\":{\"result\":{\"cpu\":1}},"
                       "\"n2\":{\"error\":{\"code\":-32005,\"message\":\"unreachable\"}},"
                       "\"n3\":{\"result\":{\"cpu\":3}}}}";
    assert_int_equal(http_ws_fanout_each(resp, strlen(resp), record, &s), 3);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.node[0], "n1");
    assert_string_equal(s.node[1], "n3");
    assert_int_equal(json_integer_value(json_object_get(s.data[1], "cpu")), 3);
    seen_reset(&s);
    const char *bad[] = {"{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32001}}",
                         "{\"result\":[1]}", "nonsense", ""};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(http_ws_fanout_each(bad[i], strlen(bad[i]), record, &s), -EBADMSG);
    assert_int_equal(s.n, 0);
    json_t *r = http_ws_rpc_result("{\"id\":1,\"result\":[1,2]}", 23);
    assert_int_equal(json_array_size(r), 2);
    json_decref(r);
    assert_null(http_ws_rpc_result("{\"id\":1,\"error\":{}}", 19));
}

static json_t *events_of(const char *json)
{
    json_t *j = json_loads(json, 0, NULL);
    assert_non_null(j);
    return j;
}

static void test_events_feed(void **state)
{
    (void)state;
    seen_t s = {0};
    json_t *states = json_object(), *p, *ev;
    /* first poll: since_id 0, the answer only sets the cursor */
    p = http_ws_events_params(states, "n1", 100);
    assert_int_equal(json_integer_value(json_object_get(p, "since_id")), 0);
    json_decref(p);
    ev = events_of("[{\"id\":1,\"type\":\"alert.firing\"},{\"id\":2,\"type\":\"alert.resolved\"}]");
    assert_int_equal(http_ws_events_feed(states, "n1", 100, ev, record, &s), 0);
    json_decref(ev);
    p = http_ws_events_params(states, "n1", 100);
    assert_int_equal(json_integer_value(json_object_get(p, "since_id")), 2);
    json_decref(p);
    /* a new event is emitted, an old one repeated is not */
    ev = events_of("[{\"id\":2},{\"id\":3,\"type\":\"alert.firing\",\"name\":\"cpu\"}]");
    assert_int_equal(http_ws_events_feed(states, "n1", 100, ev, record, &s), 1);
    json_decref(ev);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.node[0], "n1");
    assert_int_equal(json_integer_value(json_object_get(s.data[0], "id")), 3);
    seen_reset(&s);
    /* the node restarted (another start time): asked from 0, everything it has is new */
    p = http_ws_events_params(states, "n1", 200);
    assert_int_equal(json_integer_value(json_object_get(p, "since_id")), 0);
    json_decref(p);
    ev = events_of("[{\"id\":1,\"type\":\"alert.firing\"}]");
    assert_int_equal(http_ws_events_feed(states, "n1", 200, ev, record, &s), 1);
    json_decref(ev);
    seen_reset(&s);
    /* another node has its own cursor */
    ev = events_of("[{\"id\":9}]");
    assert_int_equal(http_ws_events_feed(states, "n2", 5, ev, record, &s), 0);
    assert_int_equal(http_ws_events_feed(states, "n2", 5, ev, record, &s), 0);
    json_decref(ev);
    ev = json_object();
    assert_int_equal(http_ws_events_feed(states, "n2", 5, ev, record, &s), -EINVAL);
    json_decref(ev);
    json_decref(states);
}

static void test_processes_feed(void **state)
{
    (void)state;
    seen_t s = {0};
    json_t *states = json_object(), *pr;
    pr = events_of("[{\"name\":\"web\",\"state\":\"RUNNING\",\"pid\":10},"
                   "{\"name\":\"db\",\"state\":\"STOPPED\",\"pid\":null}]");
    assert_int_equal(http_ws_processes_feed(states, "n1", pr, record, &s), 0);
    json_decref(pr);
    pr = events_of("[{\"name\":\"web\",\"state\":\"BACKOFF\",\"pid\":null,\"exit_code\":1},"
                   "{\"name\":\"db\",\"state\":\"STOPPED\",\"pid\":null},"
                   "{\"name\":\"new\",\"state\":\"STARTING\",\"pid\":12}]");
    assert_int_equal(http_ws_processes_feed(states, "n1", pr, record, &s), 2);
    json_decref(pr);
    assert_int_equal(s.n, 2);
    json_t *e = s.data[0];
    assert_string_equal(json_string_value(json_object_get(e, "type")), "process.state");
    assert_string_equal(json_string_value(json_object_get(e, "name")), "web");
    assert_string_equal(json_string_value(json_object_get(e, "from")), "RUNNING");
    assert_string_equal(json_string_value(json_object_get(e, "to")), "BACKOFF");
    assert_int_equal(json_integer_value(json_object_get(e, "exit_code")), 1);
    assert_true(json_is_null(json_object_get(e, "pid")));
    e = s.data[1];
    assert_string_equal(json_string_value(json_object_get(e, "name")), "new");
    assert_true(json_is_null(json_object_get(e, "from")));
    assert_int_equal(json_integer_value(json_object_get(e, "pid")), 12);
    seen_reset(&s);
    /* db removed */
    pr = events_of("[{\"name\":\"web\",\"state\":\"BACKOFF\"},{\"name\":\"new\",\"state\":"
                   "\"STARTING\"}]");
    assert_int_equal(http_ws_processes_feed(states, "n1", pr, record, &s), 1);
    json_decref(pr);
    assert_string_equal(json_string_value(json_object_get(s.data[0], "type")), "process.removed");
    assert_string_equal(json_string_value(json_object_get(s.data[0], "name")), "db");
    seen_reset(&s);
    pr = json_string("x");
    assert_int_equal(http_ws_processes_feed(states, "n1", pr, record, &s), -EINVAL);
    json_decref(pr);
    json_decref(states);
}

static void test_audit_feed(void **state)
{
    (void)state;
    seen_t s = {0};
    json_t *states = json_object(), *p, *rows;
    p = http_ws_audit_params(states, "n1");
    assert_int_equal(json_integer_value(json_object_get(p, "since")), 0);
    assert_int_equal(json_integer_value(json_object_get(p, "limit")), 1);
    json_decref(p);
    rows = events_of("[{\"id\":40,\"time\":5000,\"method\":\"a\"}]");
    assert_int_equal(http_ws_audit_feed(states, "n1", rows, record, &s), 0);
    json_decref(rows);
    p = http_ws_audit_params(states, "n1");
    assert_int_equal(json_integer_value(json_object_get(p, "since")), 5000);
    assert_int_equal(json_integer_value(json_object_get(p, "limit")), 1000);
    json_decref(p);
    /* newest first; id 40 again (same ms) is not repeated; emitted oldest first */
    rows = events_of("[{\"id\":42,\"time\":5003,\"method\":\"c\"},{\"id\":41,\"time\":5000,"
                     "\"method\":\"b\"},{\"id\":40,\"time\":5000,\"method\":\"a\"}]");
    assert_int_equal(http_ws_audit_feed(states, "n1", rows, record, &s), 2);
    json_decref(rows);
    assert_string_equal(json_string_value(json_object_get(s.data[0], "method")), "b");
    assert_string_equal(json_string_value(json_object_get(s.data[1], "method")), "c");
    seen_reset(&s);
    p = http_ws_audit_params(states, "n1");
    assert_int_equal(json_integer_value(json_object_get(p, "since")), 5003);
    json_decref(p);
    rows = json_object();
    assert_int_equal(http_ws_audit_feed(states, "n1", rows, record, &s), -EINVAL);
    json_decref(rows);
    json_decref(states);
}

static members_view_t view(uint8_t idb, const char *name, bool up, bool conflict)
{
    members_view_t v;
    memset(&v, 0, sizeof(v));
    memset(v.id.b, idb, sizeof(v.id.b));
    strcpy(v.rec.name, name);
    strcpy(v.rec.addrs[0], "127.0.0.1:4000");
    v.rec.naddrs = 1;
    strcpy(v.rec.http, "127.0.0.1:8000");
    strcpy(v.rec.version, "0.1");
    v.up = up;
    v.conflict = conflict;
    return v;
}

static void sweep(http_ws_nodes_t *t, const members_view_t *v, size_t n, seen_t *s, int joins,
                  int leaves)
{
    int j = 0;
    http_ws_nodes_begin(t);
    for (size_t i = 0; i < n; i++)
        j += http_ws_nodes_see(t, &v[i], record, s);
    assert_int_equal(j, joins);
    assert_int_equal(http_ws_nodes_end(t, record, s), leaves);
}

static void test_nodes_feed(void **state)
{
    (void)state;
    http_ws_nodes_t t;
    seen_t s = {0};
    assert_int_equal(http_ws_nodes_init(&t), 0);
    members_view_t v[3] = {view(1, "a", true, false), view(2, "b", true, false),
                           view(3, "c", false, false)};
    sweep(&t, v, 3, &s, 0, 0); /* the first sweep only learns */
    sweep(&t, v, 3, &s, 0, 0);
    v[2].up = true; /* c comes up */
    sweep(&t, v, 3, &s, 1, 0);
    assert_string_equal(s.node[0], "c");
    json_t *e = s.data[0];
    assert_string_equal(json_string_value(json_object_get(e, "event")), "join");
    assert_string_equal(json_string_value(json_object_get(e, "http")), "127.0.0.1:8000");
    assert_string_equal(json_string_value(json_array_get(json_object_get(e, "addresses"), 0)),
                        "127.0.0.1:4000");
    assert_int_equal(strlen(json_string_value(json_object_get(e, "id"))), 64);
    seen_reset(&s);
    v[0].up = false; /* a goes down; b and c are forgotten (absent from the sweep) */
    sweep(&t, v, 1, &s, 0, 3);
    assert_int_equal(s.n, 3);
    seen_reset(&s);
    sweep(&t, v, 1, &s, 0, 0); /* reported once */
    http_ws_nodes_free(&t);

    /* leaves are reported once, with the name */
    assert_int_equal(http_ws_nodes_init(&t), 0);
    members_view_t w[2] = {view(1, "a", true, false), view(2, "b", true, false)};
    sweep(&t, w, 2, &s, 0, 0);
    w[0].up = false;
    sweep(&t, w, 2, &s, 0, 1);
    assert_string_equal(s.node[0], "a");
    assert_string_equal(json_string_value(json_object_get(s.data[0], "event")), "leave");
    seen_reset(&s);
    sweep(&t, w, 2, &s, 0, 0);
    sweep(&t, w + 1, 0, &s, 0, 1); /* b forgotten */
    assert_string_equal(s.node[0], "b");
    seen_reset(&s);
    /* a conflict loser is never a join */
    members_view_t x = view(5, "a", true, true);
    sweep(&t, &x, 1, &s, 0, 0);
    http_ws_nodes_free(&t);
    http_ws_nodes_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics),      cmocka_unit_test(test_parse_cmsg),
        cmocka_unit_test(test_frames),      cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_events_feed), cmocka_unit_test(test_processes_feed),
        cmocka_unit_test(test_audit_feed),  cmocka_unit_test(test_nodes_feed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
