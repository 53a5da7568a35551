/* ws_topics.c: the /ws session's message logic that needs no connection: topic names, parsing
 * client messages, building the frames the node sends (answers, errors, events), and the topic
 * feeds' bookkeeping: per-node cursors and previous states that turn each poll's answer into the
 * events that are new (ws_hub.c runs the polls). */
#include "http/ws-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "rpc/rpc.h"

static const char *const topic_names[HTTP_WS_N_TOPICS] = {"metrics", "nodes", "events", "audit"};

int http_ws_topic_parse(const char *s, size_t len)
{
    for (int i = 0; i < HTTP_WS_N_TOPICS; i++)
        if (strlen(topic_names[i]) == len && memcmp(topic_names[i], s, len) == 0) return i;
    return -EINVAL;
}

const char *http_ws_topic_name(int topic)
{
    return topic >= 0 && topic < HTTP_WS_N_TOPICS ? topic_names[topic] : "";
}

/* --- client messages ---------------------------------------------------------------------- */

static int cmsg_error(const char *why, const char *param, int code, const char **why_out,
                      const char **param_out)
{
    *why_out = why;
    *param_out = param;
    return code;
}

static int parse_topic(json_t *v, const char *member, http_ws_cmsg_t *out, const char **why,
                       const char **param)
{
    int t = json_is_string(v) ? http_ws_topic_parse(json_string_value(v), json_string_length(v))
                              : -EINVAL;
    if (t < 0)
        return cmsg_error("unknown topic (metrics, nodes, events, audit)", member,
                          RPC_ERR_INVALID_PARAMS, why, param);
    out->topic = t;
    return 0;
}

int http_ws_parse_cmsg(const char *text, size_t len, http_ws_cmsg_t *out, const char **why,
                       const char **param)
{
    json_error_t jerr;
    json_t *v;
    memset(out, 0, sizeof(*out));
    out->topic = -1;
    *why = NULL;
    *param = NULL;
    out->root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!out->root) return cmsg_error("message is not JSON", NULL, RPC_ERR_PARSE, why, param);
    if (!json_is_object(out->root))
        return cmsg_error("message must be a JSON object", NULL, RPC_ERR_INVALID_REQUEST, why,
                          param);
    out->id = json_object_get(out->root, "id");
    if ((v = json_object_get(out->root, "method"))) {
        out->kind = HTTP_WS_CMSG_CALL;
        return 0;
    }
    if ((v = json_object_get(out->root, "token"))) {
        out->kind = HTTP_WS_CMSG_TOKEN;
        if (!json_is_string(v) || json_string_length(v) == 0)
            return cmsg_error("token must be a string", "token", RPC_ERR_INVALID_PARAMS, why,
                              param);
        out->token = json_string_value(v);
        out->token_len = json_string_length(v);
        return 0;
    }
    if ((v = json_object_get(out->root, "subscribe"))) {
        out->kind = HTTP_WS_CMSG_SUBSCRIBE;
        return parse_topic(v, "subscribe", out, why, param);
    }
    if ((v = json_object_get(out->root, "unsubscribe"))) {
        out->kind = HTTP_WS_CMSG_UNSUBSCRIBE;
        return parse_topic(v, "unsubscribe", out, why, param);
    }
    return cmsg_error("expected method, token, subscribe or unsubscribe", NULL,
                      RPC_ERR_INVALID_REQUEST, why, param);
}

/* --- frames ------------------------------------------------------------------------------- */

uint8_t *http_ws_text_frame(const char *text, size_t len, size_t *frame_len)
{
    uint8_t head[HTTP_WS_MAX_HEADER];
    int h = http_ws_header(head, HTTP_WS_TEXT, true, len);
    if (h < 0) return NULL;
    uint8_t *f = malloc((size_t)h + len);
    if (!f) return NULL;
    memcpy(f, head, (size_t)h);
    memcpy(f + h, text, len);
    *frame_len = (size_t)h + len;
    return f;
}

uint8_t *http_ws_json_frame(const json_t *j, size_t *frame_len)
{
    char *s = json_dumps(j, JSON_COMPACT);
    if (!s) return NULL;
    uint8_t *f = http_ws_text_frame(s, strlen(s), frame_len);
    free(s);
    return f;
}

uint8_t *http_ws_event_frame(int topic, const char *node, json_t *data, size_t *frame_len)
{
    json_t *ev = json_pack("{s:s, s:s, s:O}", "topic", http_ws_topic_name(topic), "node", node,
                           "data", data);
    if (!ev) return NULL;
    uint8_t *f = http_ws_json_frame(ev, frame_len);
    json_decref(ev);
    return f;
}

uint8_t *http_ws_error_frame(json_t *id, int code, const char *message, const char *param,
                             size_t *frame_len)
{
    json_t *err = json_pack("{s:i, s:s}", "code", code, "message", message);
    if (err && param) json_object_set_new(err, "data", json_pack("{s:s}", "param", param));
    json_t *msg = err ? json_pack("{s:O?, s:o}", "id", id, "error", err) : NULL;
    if (!msg) return NULL;
    uint8_t *f = http_ws_json_frame(msg, frame_len);
    json_decref(msg);
    return f;
}

/* --- answers of the polls ----------------------------------------------------------------- */

json_t *http_ws_rpc_result(const char *resp, size_t len)
{
    json_t *root = json_loadb(resp, len, 0, NULL);
    json_t *r = json_is_object(root) ? json_object_get(root, "result") : NULL;
    if (r) json_incref(r);
    json_decref(root);
    return r;
}

int http_ws_fanout_each(const char *resp, size_t len, http_ws_emit_fn cb, void *arg)
{
    json_t *res = http_ws_rpc_result(resp, len);
    if (!json_is_object(res)) {
        json_decref(res);
        return -EBADMSG;
    }
    const char *node;
    json_t *entry;
    int n = 0;
    json_object_foreach(res, node, entry)
    {
        json_t *r = json_is_object(entry) ? json_object_get(entry, "result") : NULL;
        if (r) cb(arg, node, r);
        n++;
    }
    json_decref(res);
    return n;
}

/* The state object of node in states, created when absent (*fresh then true). NULL on no memory.
 */
static json_t *node_state(json_t *states, const char *node, bool *fresh)
{
    json_t *s = json_object_get(states, node);
    *fresh = s == NULL;
    if (s) return s;
    s = json_object();
    if (!s || json_object_set_new(states, node, s) < 0) return NULL;
    return s;
}

static json_int_t get_int(json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

json_t *http_ws_events_params(json_t *states, const char *node, uint64_t start_ms)
{
    json_t *s = json_object_get(states, node);
    json_int_t since = 0;
    if (s && (uint64_t)get_int(s, "start_ms") == start_ms) since = get_int(s, "last_id");
    return json_pack("{s:I}", "since_id", (json_int_t)since);
}

int http_ws_events_feed(json_t *states, const char *node, uint64_t start_ms, json_t *events,
                        http_ws_emit_fn emit, void *arg)
{
    if (!json_is_array(events)) return -EINVAL;
    bool fresh;
    json_t *s = node_state(states, node, &fresh);
    if (!s) return -ENOMEM;
    /* a node that restarted numbers its events from 1 again: all it has are new */
    bool restarted = !fresh && (uint64_t)get_int(s, "start_ms") != start_ms;
    json_int_t last = restarted ? 0 : get_int(s, "last_id");
    size_t i;
    json_t *e;
    int n = 0;
    json_array_foreach(events, i, e)
    {
        json_int_t id = get_int(e, "id");
        if (id <= last) continue;
        last = id;
        if (!fresh) {
            emit(arg, node, e);
            n++;
        }
    }
    json_object_set_new(s, "last_id", json_integer(last));
    json_object_set_new(s, "start_ms", json_integer((json_int_t)start_ms));
    return n;
}

static json_t *str_or_null(json_t *v)
{
    return json_is_string(v) ? json_incref(v) : json_null();
}

int http_ws_processes_feed(json_t *states, const char *node, json_t *programs, http_ws_emit_fn emit,
                           void *arg)
{
    if (!json_is_array(programs)) return -EINVAL;
    bool fresh;
    json_t *s = node_state(states, node, &fresh);
    json_t *now = json_object();
    if (!s || !now) {
        json_decref(now);
        return -ENOMEM;
    }
    json_t *prev = json_object_get(s, "programs");
    size_t i;
    json_t *p;
    int n = 0;
    json_array_foreach(programs, i, p)
    {
        json_t *name = json_object_get(p, "name"), *state = json_object_get(p, "state");
        if (!json_is_string(name) || !json_is_string(state)) continue;
        json_object_set(now, json_string_value(name), state);
        json_t *was = prev ? json_object_get(prev, json_string_value(name)) : NULL;
        if (fresh || (was && json_equal(was, state))) continue;
        json_t *ev = json_pack(
            "{s:s, s:O, s:o, s:O, s:O?, s:O?, s:O?}", "type", "process.state", "name", name, "from",
            str_or_null(was), "to", state, "pid", json_object_get(p, "pid"), "exit_code",
            json_object_get(p, "exit_code"), "exit_signal", json_object_get(p, "exit_signal"));
        if (!ev) continue;
        emit(arg, node, ev);
        json_decref(ev);
        n++;
    }
    const char *pname;
    json_t *pstate;
    if (prev && !fresh) json_object_foreach(prev, pname, pstate)
        {
            if (json_object_get(now, pname)) continue;
            json_t *ev = json_pack("{s:s, s:s}", "type", "process.removed", "name", pname);
            if (!ev) continue;
            emit(arg, node, ev);
            json_decref(ev);
            n++;
        }
    json_object_set_new(s, "programs", now);
    return n;
}

json_t *http_ws_audit_params(json_t *states, const char *node)
{
    json_t *s = json_object_get(states, node);
    if (!s) return json_pack("{s:I, s:i}", "since", (json_int_t)0, "limit", 1);
    return json_pack("{s:I, s:i}", "since", get_int(s, "since"), "limit", 1000);
}

int http_ws_audit_feed(json_t *states, const char *node, json_t *rows, http_ws_emit_fn emit,
                       void *arg)
{
    if (!json_is_array(rows)) return -EINVAL;
    bool fresh;
    json_t *s = node_state(states, node, &fresh);
    if (!s) return -ENOMEM;
    json_int_t last = get_int(s, "last_id"), since = get_int(s, "since");
    json_int_t new_last = last, new_since = since;
    int n = 0;
    /* newest first: walk backwards to emit oldest first */
    for (size_t i = json_array_size(rows); i-- > 0;) {
        json_t *r = json_array_get(rows, i);
        json_int_t id = get_int(r, "id"), t = get_int(r, "time");
        if (id <= last) continue;
        if (id > new_last) new_last = id;
        if (t > new_since) new_since = t;
        if (!fresh) {
            emit(arg, node, r);
            n++;
        }
    }
    json_object_set_new(s, "last_id", json_integer(new_last));
    json_object_set_new(s, "since", json_integer(new_since));
    return n;
}

/* --- nodes -------------------------------------------------------------------------------- */

int http_ws_nodes_init(http_ws_nodes_t *t)
{
    memset(t, 0, sizeof(*t));
    t->up = json_object();
    return t->up ? 0 : -ENOMEM;
}

void http_ws_nodes_free(http_ws_nodes_t *t)
{
    if (!t) return;
    json_decref(t->up);
    t->up = NULL;
}

void http_ws_nodes_begin(http_ws_nodes_t *t)
{
    t->gen++;
}

int http_ws_nodes_see(http_ws_nodes_t *t, const members_view_t *v, http_ws_emit_fn emit, void *arg)
{
    if (!v->up || v->conflict) return 0;
    char id[2 * DHT_ID_LEN + 1];
    p2p_hex_encode(id, v->id.b, DHT_ID_LEN);
    json_t *e = json_object_get(t->up, id);
    if (e) {
        json_object_set_new(e, "gen", json_integer((json_int_t)t->gen));
        return 0;
    }
    e = json_pack("{s:s, s:I}", "name", v->rec.name, "gen", (json_int_t)t->gen);
    if (!e || json_object_set_new(t->up, id, e) < 0) return -ENOMEM;
    if (!t->primed) return 0;
    json_t *addrs = json_array();
    for (size_t i = 0; addrs && i < v->rec.naddrs && i < MEMBERS_MAX_ADDRS; i++)
        json_array_append_new(addrs, json_string(v->rec.addrs[i]));
    json_t *ev = addrs
                     ? json_pack("{s:s, s:s, s:o, s:s, s:s}", "event", "join", "id", id,
                                 "addresses", addrs, "http", v->rec.http, "version", v->rec.version)
                     : NULL;
    if (!ev) return -ENOMEM;
    emit(arg, v->rec.name, ev);
    json_decref(ev);
    return 1;
}

int http_ws_nodes_end(http_ws_nodes_t *t, http_ws_emit_fn emit, void *arg)
{
    const char *id;
    json_t *e, *tmp;
    int n = 0;
    bool primed = t->primed;
    t->primed = true;
    json_object_foreach_safe(t->up, tmp, id, e)
    {
        if ((uint64_t)get_int(e, "gen") == t->gen) continue;
        json_t *ev = json_pack("{s:s, s:s}", "event", "leave", "id", id);
        if (ev && primed) {
            emit(arg, json_string_value(json_object_get(e, "name")), ev);
            n++;
        }
        json_decref(ev);
        json_object_del(t->up, id);
    }
    return n;
}
