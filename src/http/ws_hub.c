/* ws_hub.c: GET /ws. The WebSocket handshake, sessions on upgraded connections (ws.c decodes
 * their frames), authentication (a verified bearer token, the access_token query parameter, or a
 * first message {"token": JWT}), JSON-RPC calls over the socket through the bridge, subscriptions,
 * and the topic feeds: one timer polls the network by RPC (fan-out or per-node calls with the
 * hub's own viewer token) while someone subscribes, and ws_topics.c turns the answers into events
 * that are framed once and queued to every subscriber. A client whose queued output passes
 * WS_MAX_OUTPUT is cut off; idle clients are pinged and dropped when they stop answering. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/api.h"
#include "http/ws-internal.h"
#include "node/log.h"
#include "node/members.h"
#include "rpc/rpc-internal.h"

#define HUB_TOKEN_TTL_S 600 /* the hub's own polling token; minted again with 60 s left */

typedef struct ws_client ws_client_t;
typedef struct http_ws_hub hub_t;

/* One JSON-RPC call of a client in the bridge. */
typedef struct ws_call {
    ws_client_t *c;
    http_bridge_req_t *req;
    struct ws_call *prev, *next;
} ws_call_t;

struct ws_client {
    hub_t *hub;
    http_conn_t *conn;
    http_ws_dec_t dec;
    ws_client_t *prev, *next;
    bool authed, closing;
    rpc_role_t role;
    char sub[RPC_MAX_SUB + 1];
    char *token;          /* malloc'd copy, for calls and re-verification */
    rpc_principal_t *acl; /* the token's targets/methods claims, NULL when it has none */
    size_t token_len;
    unsigned topics; /* bit per enum http_ws_topic */
    uint64_t opened_ms, last_rx_ms, ping_ms, verified_ms;
    ws_call_t *calls;
    unsigned n_calls;
};

/* One poll of the topic feeds in the bridge. */
typedef struct ws_poll {
    hub_t *hub;
    int kind; /* enum poll_kind */
    char node[MEMBERS_NAME_MAX + 1];
    uint64_t start_ms;
    http_bridge_req_t *req;
    struct ws_poll *prev, *next;
} ws_poll_t;

enum poll_kind { POLL_METRICS, POLL_PROCESSES, POLL_EVENTS, POLL_AUDIT, POLL_KINDS };

struct http_ws_hub {
    http_api_t *api;
    node_t *node;
    uv_timer_t tick;
    bool tick_open, stopping;
    ws_client_t *clients;
    size_t n_clients;
    size_t subs[HTTP_WS_N_TOPICS];
    char *token; /* the hub's viewer token */
    uint64_t token_exp_s;
    ws_poll_t *polls;
    unsigned in_flight[POLL_KINDS];
    json_t *states[POLL_KINDS]; /* per-node state of the processes, events and audit feeds */
    http_ws_nodes_t nodes;
};

static void client_close(ws_client_t *c, int code, const char *reason);

static uint64_t hub_now(const hub_t *h)
{
    return uv_now(h->node->loop);
}

/* --- output -------------------------------------------------------------------------------- */

/* Queues a whole frame to c; a client that cannot take it is cut off. */
static void client_send(ws_client_t *c, const uint8_t *frame, size_t len)
{
    if (c->closing || !frame) return;
    int r = http_conn_write(c->conn, frame, len, WS_MAX_OUTPUT);
    if (r == -ENOBUFS) {
        node_log(c->hub->node->log, NODE_LOG_INFO, "ws client too slow: cut off", "sub", c->sub,
                 NULL);
        c->closing = true; /* no room for a close frame either */
        http_conn_close(c->conn);
    } else if (r < 0) {
        c->closing = true;
    }
}

/* Queues a frame malloc'd by ws_topics.c and frees it. */
static void client_send_take(ws_client_t *c, uint8_t *frame, size_t len)
{
    client_send(c, frame, len);
    free(frame);
}

static void client_error(ws_client_t *c, json_t *id, int code, const char *msg, const char *param)
{
    size_t len = 0;
    uint8_t *f = http_ws_error_frame(id, code, msg, param, &len); /* sets len: call it first */
    client_send_take(c, f, len);
}

static void client_json(ws_client_t *c, json_t *j)
{
    size_t len = 0;
    uint8_t *f = j ? http_ws_json_frame(j, &len) : NULL; /* sets len: call it first */
    if (f) client_send_take(c, f, len);
    json_decref(j);
}

/* Sends a close frame (code 0: none) and closes once the output is written. */
static void client_close(ws_client_t *c, int code, const char *reason)
{
    if (c->closing) return;
    uint8_t f[HTTP_WS_MAX_CLOSE_FRAME];
    int n = http_ws_close_frame(f, code, reason, reason ? strlen(reason) : 0);
    if (n > 0) http_conn_write(c->conn, f, (size_t)n, WS_MAX_OUTPUT + sizeof(f));
    c->closing = true;
    http_conn_close(c->conn);
}

/* The method a topic's events come from, for a token's methods claim. */
static const char *topic_method(int topic)
{
    switch (topic) {
    case HTTP_WS_TOPIC_METRICS:
        return "monitor.status";
    case HTTP_WS_TOPIC_EVENTS:
        return "monitor.events";
    case HTTP_WS_TOPIC_AUDIT:
        return "node.audit";
    default:
        return "node.nodes";
    }
}

static void broadcast(hub_t *h, int topic, const char *node, json_t *data)
{
    size_t len = 0;
    uint8_t *f = NULL;
    for (ws_client_t *c = h->clients, *next; c; c = next) {
        next = c->next;
        if (c->closing || !(c->topics & (1u << topic))) continue;
        /* a token limited to some nodes or methods sees only their events, as with calls */
        if (c->acl && node && !rpc_principal_allows(c->acl, node, topic_method(topic))) continue;
        if (!f && !(f = http_ws_event_frame(topic, node, data, &len))) return;
        client_send(c, f, len);
    }
    free(f);
}

/* --- sessions ------------------------------------------------------------------------------ */

/* Verifies a token and binds it to c, with its targets/methods claims kept for the topic filter.
 * Returns 0 or -EACCES with *why. */
static int client_auth(ws_client_t *c, const char *token, size_t len, const char **why)
{
    rpc_principal_t p;
    rpc_auth_config_t auth;
    node_auth_config(c->hub->node, &auth);
    if (rpc_jwt_verify(&auth, token, len, p2p_wall_ms() / 1000, &p, why) < 0) return -EACCES;
    bool limited = p.n_targets > 0 || p.n_methods > 0;
    rpc_principal_t *acl = limited ? malloc(sizeof(*acl)) : NULL;
    char *copy = malloc(len + 1);
    if (!copy || (limited && !acl)) {
        free(acl);
        free(copy);
        *why = "out of memory";
        return -EACCES;
    }
    memcpy(copy, token, len);
    copy[len] = 0;
    if (acl) *acl = p;
    c->role = p.role;
    snprintf(c->sub, sizeof(c->sub), "%s", p.sub);
    free(c->acl);
    c->acl = acl;
    free(c->token);
    c->token = copy;
    c->token_len = len;
    c->authed = true;
    c->verified_ms = hub_now(c->hub);
    return 0;
}

static void call_done(void *arg, char *json, size_t len)
{
    ws_call_t *k = arg;
    ws_client_t *c = k->c;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->calls = k->next;
    if (k->next) k->next->prev = k->prev;
    c->n_calls--;
    free(k);
    if (json) {
        size_t flen = 0;
        uint8_t *f = http_ws_text_frame(json, len, &flen); /* sets flen: call it first */
        client_send_take(c, f, flen);
        free(json);
    }
}

static void client_call(ws_client_t *c, const http_ws_msg_t *m, json_t *id)
{
    if (c->n_calls >= WS_MAX_CALLS) {
        client_error(c, id, RPC_ERR_RESOURCE_EXHAUSTED, "too many calls in flight", NULL);
        return;
    }
    ws_call_t *k = calloc(1, sizeof(*k));
    if (!k) {
        client_error(c, id, RPC_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    k->c = c;
    k->next = c->calls;
    if (c->calls) c->calls->prev = k;
    c->calls = k;
    c->n_calls++;
    k->req = http_bridge_run(c->hub->api, c->token, c->token_len, (const char *)m->data, m->len,
                             true, call_done, k);
    if (!k->req) {
        c->calls = k->next;
        if (k->next) k->next->prev = NULL;
        c->n_calls--;
        free(k);
        client_error(c, id, RPC_ERR_INTERNAL, "out of memory", NULL);
    }
}

static void client_subscribe(ws_client_t *c, const http_ws_cmsg_t *m, bool on)
{
    unsigned bit = 1u << m->topic;
    if (on && !(c->topics & bit)) c->hub->subs[m->topic]++;
    if (!on && (c->topics & bit)) c->hub->subs[m->topic]--;
    c->topics = on ? c->topics | bit : c->topics & ~bit;
    json_t *j =
        json_pack("{s:s}", on ? "subscribed" : "unsubscribed", http_ws_topic_name(m->topic));
    if (j && m->id) json_object_set(j, "id", m->id);
    client_json(c, j);
}

static void client_text(ws_client_t *c, const http_ws_msg_t *msg)
{
    http_ws_cmsg_t m;
    const char *why, *param;
    int code = http_ws_parse_cmsg((const char *)msg->data, msg->len, &m, &why, &param);
    if (!c->authed && (code != 0 || m.kind != HTTP_WS_CMSG_TOKEN)) {
        client_error(c, m.id, RPC_ERR_UNAUTHENTICATED,
                     "authenticate first: {\"token\": JWT} or ?access_token=", NULL);
        client_close(c, HTTP_WS_POLICY, "not authenticated");
    } else if (code != 0) {
        client_error(c, m.id, code, why, param);
    } else if (m.kind == HTTP_WS_CMSG_TOKEN) {
        if (client_auth(c, m.token, m.token_len, &why) < 0) {
            client_error(c, m.id, RPC_ERR_UNAUTHENTICATED, why, "token");
            client_close(c, HTTP_WS_POLICY, "invalid token");
        } else {
            json_t *j = json_pack("{s:{s:b, s:s, s:s}}", "result", "authenticated", 1, "sub",
                                  c->sub, "role", rpc_role_name(c->role));
            if (j && m.id) json_object_set(j, "id", m.id);
            client_json(c, j);
        }
    } else if (m.kind == HTTP_WS_CMSG_CALL) {
        client_call(c, msg, m.id);
    } else {
        client_subscribe(c, &m, m.kind == HTTP_WS_CMSG_SUBSCRIBE);
    }
    json_decref(m.root);
}

static void client_msg(ws_client_t *c, const http_ws_msg_t *m)
{
    uint8_t f[2 + HTTP_WS_MAX_CONTROL];
    int n;
    switch (m->opcode) {
    case HTTP_WS_TEXT:
        client_text(c, m);
        break;
    case HTTP_WS_BINARY:
        client_close(c, HTTP_WS_UNSUPPORTED, "binary messages are not used");
        break;
    case HTTP_WS_PING:
        if ((n = http_ws_control(f, HTTP_WS_PONG, m->data, m->len)) > 0)
            client_send(c, f, (size_t)n);
        break;
    case HTTP_WS_PONG:
        c->ping_ms = 0;
        break;
    case HTTP_WS_CLOSE:
        /* echo the code (section 5.5.1); an empty close is answered with an empty one */
        client_close(c, m->close_code == HTTP_WS_NO_STATUS ? 0 : m->close_code, NULL);
        break;
    }
}

static void on_data(void *ctx, const uint8_t *buf, size_t len)
{
    ws_client_t *c = ctx;
    c->last_rx_ms = hub_now(c->hub);
    c->ping_ms = 0;
    while (len > 0 && !c->closing) {
        size_t used = 0;
        http_ws_msg_t m;
        int r = http_ws_decode(&c->dec, buf, len, &used, &m);
        buf += used, len -= used;
        if (r < 0) {
            const char *why = r == -EILSEQ     ? "invalid UTF-8"
                              : r == -EMSGSIZE ? "message too big"
                              : r == -ENOMEM   ? "out of memory"
                                               : "protocol error";
            client_close(c, c->dec.close_code, why);
        } else if (r == 1) {
            client_msg(c, &m);
        } else {
            break;
        }
    }
}

static void hub_maybe_done(hub_t *h);

static void on_close(void *ctx)
{
    ws_client_t *c = ctx;
    hub_t *h = c->hub;
    if (c->prev)
        c->prev->next = c->next;
    else
        h->clients = c->next;
    if (c->next) c->next->prev = c->prev;
    h->n_clients--;
    for (int t = 0; t < HTTP_WS_N_TOPICS; t++)
        if (c->topics & (1u << t)) h->subs[t]--;
    for (ws_call_t *k = c->calls, *next; k; k = next) {
        next = k->next;
        http_bridge_abandon(k->req);
        free(k);
    }
    http_ws_dec_free(&c->dec);
    free(c->token);
    free(c->acl);
    free(c);
    hub_maybe_done(h);
}

static const http_upgrade_ops_t client_ops = {on_data, NULL, on_close};

/* Frees a client whose connection never opened (no calls, no decoder buffers yet). */
static void client_free_unopened(ws_client_t *c)
{
    free(c->token);
    free(c->acl);
    free(c);
}

/* The token a handshake carries (verified by the route, a bearer header, ?access_token=). Returns
 * 1 when one was found and verified into c, 0 when there is none, -EACCES with *why. */
static int handshake_token(ws_client_t *c, const http_request_t *req, const http_caller_t *who,
                           const char **why)
{
    size_t len = 0;
    const char *t = NULL;
    char q[4096];
    if (who && who->role != RPC_ROLE_NONE && who->token) t = who->token, len = who->token_len;
    if (!t) t = http_bearer(req, &len);
    if (!t) {
        int n = http_query_get(req, "access_token", q, sizeof(q));
        if (n == -ENOENT) return 0;
        if (n <= 0) {
            *why = "access_token is not a token";
            return -EACCES;
        }
        t = q, len = (size_t)n;
    }
    return client_auth(c, t, len, why) < 0 ? -EACCES : 1;
}

void http_ws_upgrade(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    hub_t *h = api->ws;
    const http_request_t *req = http_exchange_request(x);
    char accept[HTTP_WS_ACCEPT_LEN + 1];
    const char *why = NULL;
    if (!h || h->stopping) {
        http_respond_error(x, 503, RPC_ERR_UNAVAILABLE, "WebSocket service stopping", NULL);
        return;
    }
    if (req->method != HTTP_M_GET) {
        http_add_header(x, "Allow", "GET");
        http_respond_error(x, 405, RPC_ERR_INVALID_REQUEST, "/ws takes GET", NULL);
        return;
    }
    int r = http_ws_handshake(req->headers, req->n_headers, accept, &why);
    if (r == -EPROTONOSUPPORT) {
        http_add_header(x, "Sec-WebSocket-Version", "13");
        http_respond_error(x, 426, RPC_ERR_INVALID_REQUEST, why, NULL);
        return;
    }
    if (r < 0) {
        http_respond_error(x, 400, RPC_ERR_INVALID_REQUEST, why, NULL);
        return;
    }
    if (h->n_clients >= WS_MAX_CLIENTS) {
        http_respond_error(x, 503, RPC_ERR_RESOURCE_EXHAUSTED, "too many WebSocket clients", NULL);
        return;
    }
    ws_client_t *c = calloc(1, sizeof(*c));
    if (!c) {
        http_respond_error(x, 500, RPC_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    c->hub = h;
    http_ws_dec_init(&c->dec, WS_MAX_MESSAGE);
    if (handshake_token(c, req, who, &why) < 0) {
        client_free_unopened(c);
        http_api_error(x, RPC_ERR_UNAUTHENTICATED, why, "access_token");
        return;
    }
    if (http_add_header(x, "Upgrade", "websocket") < 0 ||
        http_add_header(x, "Sec-WebSocket-Accept", accept) < 0) {
        client_free_unopened(c);
        http_respond_error(x, 500, RPC_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    c->opened_ms = c->last_rx_ms = hub_now(h);
    c->conn = http_upgrade(x, &client_ops, c);
    if (!c->conn) {
        client_free_unopened(c);
        return;
    }
    c->next = h->clients;
    if (h->clients) h->clients->prev = c;
    h->clients = c;
    h->n_clients++;
}

size_t http_ws_clients(const http_ws_hub_t *hub)
{
    return hub ? hub->n_clients : 0;
}

/* --- the topic feeds ------------------------------------------------------------------------ */

/* The hub's viewer token, minted again before it expires. NULL on failure. */
static const char *hub_token(hub_t *h)
{
    uint64_t now_s = p2p_wall_ms() / 1000;
    if (h->token && h->token_exp_s > now_s + 60) return h->token;
    rpc_auth_config_t ac;
    node_auth_config(h->node, &ac);
    char *t = NULL;
    if (rpc_jwt_mint(ac.secret, ac.secret_len, "viewer", "ws-hub", ac.audience, HUB_TOKEN_TTL_S,
                     now_s, &t) < 0)
        return NULL;
    free(h->token);
    h->token = t;
    h->token_exp_s = now_s + HUB_TOKEN_TTL_S;
    return t;
}

static void poll_unlink(ws_poll_t *p)
{
    hub_t *h = p->hub;
    if (p->prev)
        p->prev->next = p->next;
    else
        h->polls = p->next;
    if (p->next) p->next->prev = p->prev;
    h->in_flight[p->kind]--;
}

static void emit_metrics(void *arg, const char *node, json_t *data)
{
    broadcast(arg, HTTP_WS_TOPIC_METRICS, node, data);
}

static void emit_events(void *arg, const char *node, json_t *data)
{
    broadcast(arg, HTTP_WS_TOPIC_EVENTS, node, data);
}

static void emit_audit(void *arg, const char *node, json_t *data)
{
    broadcast(arg, HTTP_WS_TOPIC_AUDIT, node, data);
}

static void emit_nodes(void *arg, const char *node, json_t *data)
{
    broadcast(arg, HTTP_WS_TOPIC_NODES, node, data);
}

/* One node's process.managed from the fan-out, into the processes feed. */
static void processes_one(void *arg, const char *node, json_t *programs)
{
    hub_t *h = arg;
    http_ws_processes_feed(h->states[POLL_PROCESSES], node, programs, emit_events, h);
}

static void poll_done(void *arg, char *json, size_t len)
{
    ws_poll_t *p = arg;
    hub_t *h = p->hub;
    poll_unlink(p);
    if (json && !h->stopping) {
        if (p->kind == POLL_METRICS) {
            http_ws_fanout_each(json, len, emit_metrics, h);
        } else if (p->kind == POLL_PROCESSES) {
            http_ws_fanout_each(json, len, processes_one, h);
        } else {
            json_t *res = http_ws_rpc_result(json, len);
            if (p->kind == POLL_EVENTS && res)
                http_ws_events_feed(h->states[POLL_EVENTS], p->node, p->start_ms, res, emit_events,
                                    h);
            else if (res)
                http_ws_audit_feed(h->states[POLL_AUDIT], p->node, res, emit_audit, h);
            json_decref(res);
        }
    }
    free(json);
    free(p);
}

/* Starts one poll: method with params (taken) for the node (its state is keyed by it). */
static void poll_start(hub_t *h, int kind, const char *method, json_t *params, const char *node,
                       uint64_t start_ms)
{
    const char *token = hub_token(h);
    ws_poll_t *p = calloc(1, sizeof(*p));
    json_t *call = NULL;
    char *body = NULL;
    if (params) json_object_set_new(params, "_timeout", json_integer(WS_POLL_TIMEOUT_S));
    if (token && p && params)
        call = json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", 1, "method", method,
                         "params", params);
    else
        json_decref(params);
    if (call) body = json_dumps(call, JSON_COMPACT);
    json_decref(call);
    if (!body) {
        free(p);
        return;
    }
    p->hub = h;
    p->kind = kind;
    p->start_ms = start_ms;
    snprintf(p->node, sizeof(p->node), "%s", node ? node : "");
    p->next = h->polls;
    if (h->polls) h->polls->prev = p;
    h->polls = p;
    h->in_flight[kind]++;
    p->req = http_bridge_run(h->api, token, strlen(token), body, strlen(body), false, poll_done, p);
    free(body);
    if (!p->req) {
        poll_unlink(p);
        free(p);
    }
}

typedef struct sweep {
    hub_t *h;
    bool nodes, events, audit;
} sweep_t;

/* One member of the view: the nodes feed, and the per-node polls of events and audit. */
static void sweep_cb(void *arg, const members_view_t *v)
{
    sweep_t *s = arg;
    hub_t *h = s->h;
    char method[MEMBERS_NAME_MAX + 48];
    if (s->nodes) http_ws_nodes_see(&h->nodes, v, emit_nodes, h);
    if (!v->up || v->conflict) return;
    if (s->events) {
        snprintf(method, sizeof(method), "system.%s.monitor.events", v->rec.name);
        poll_start(h, POLL_EVENTS, method,
                   http_ws_events_params(h->states[POLL_EVENTS], v->rec.name, v->rec.start_ms),
                   v->rec.name, v->rec.start_ms);
    }
    if (s->audit) {
        snprintf(method, sizeof(method), "system.%s.node.audit", v->rec.name);
        poll_start(h, POLL_AUDIT, method, http_ws_audit_params(h->states[POLL_AUDIT], v->rec.name),
                   v->rec.name, 0);
    }
}

/* A feed nobody reads forgets its state, so that the next subscriber starts from now. */
static void feed_reset(hub_t *h, int kind)
{
    if (json_object_size(h->states[kind]) > 0) json_object_clear(h->states[kind]);
}

static void poll_feeds(hub_t *h)
{
    sweep_t s = {h, h->subs[HTTP_WS_TOPIC_NODES] > 0, false, false};
    if (h->subs[HTTP_WS_TOPIC_METRICS] && !h->in_flight[POLL_METRICS])
        poll_start(h, POLL_METRICS, "system.*.monitor.status", json_object(), NULL, 0);
    if (!h->subs[HTTP_WS_TOPIC_EVENTS]) {
        feed_reset(h, POLL_PROCESSES);
        feed_reset(h, POLL_EVENTS);
    } else {
        if (!h->in_flight[POLL_PROCESSES])
            poll_start(h, POLL_PROCESSES, "system.*.process.managed", json_object(), NULL, 0);
        s.events = !h->in_flight[POLL_EVENTS];
    }
    if (!h->subs[HTTP_WS_TOPIC_AUDIT])
        feed_reset(h, POLL_AUDIT);
    else
        s.audit = !h->in_flight[POLL_AUDIT];
    if (!s.nodes && h->nodes.primed) {
        http_ws_nodes_free(&h->nodes);
        http_ws_nodes_init(&h->nodes);
    }
    if (!(s.nodes || s.events || s.audit) || !h->node->members) return;
    if (s.nodes) http_ws_nodes_begin(&h->nodes);
    members_foreach(h->node->members, hub_now(h), sweep_cb, &s);
    if (s.nodes) http_ws_nodes_end(&h->nodes, emit_nodes, h);
}

/* --- timers, start, stop -------------------------------------------------------------------- */

/* Pings idle clients, drops silent ones, unauthenticated ones past their time, and sessions
 * whose token stopped verifying. */
static void keep_clients(hub_t *h, uint64_t now)
{
    uint8_t ping[2];
    for (ws_client_t *c = h->clients, *next; c; c = next) {
        next = c->next;
        if (c->closing) continue;
        if (!c->authed && now - c->opened_ms >= WS_AUTH_TIMEOUT_MS) {
            client_close(c, HTTP_WS_POLICY, "authentication timeout");
        } else if (c->ping_ms && now - c->ping_ms >= WS_PING_INTERVAL_MS) {
            client_close(c, HTTP_WS_POLICY, "no pong");
        } else if (!c->ping_ms && now - c->last_rx_ms >= WS_PING_INTERVAL_MS) {
            c->ping_ms = now;
            if (http_ws_control(ping, HTTP_WS_PING, NULL, 0) == 2) client_send(c, ping, 2);
        } else if (c->authed && now - c->verified_ms >= WS_REVERIFY_MS) {
            http_caller_t who;
            const char *why;
            if (http_api_verify(h->api, c->token, c->token_len, &who, &why) < 0)
                client_close(c, HTTP_WS_POLICY, "token expired or revoked");
            else
                c->verified_ms = now;
        }
    }
}

static void tick_cb(uv_timer_t *t)
{
    hub_t *h = t->data;
    if (h->stopping) return;
    keep_clients(h, hub_now(h));
    poll_feeds(h);
}

int http_ws_start(http_api_t *api, char *err, size_t errlen)
{
    hub_t *h = calloc(1, sizeof(*h));
    if (!h) goto fail;
    h->api = api;
    h->node = api->node;
    for (int k = 0; k < POLL_KINDS; k++)
        if (!(h->states[k] = json_object())) goto fail;
    if (http_ws_nodes_init(&h->nodes) < 0) goto fail;
    if (uv_timer_init(h->node->loop, &h->tick) < 0) goto fail;
    h->tick.data = h;
    h->tick_open = true;
    uv_timer_start(&h->tick, tick_cb, WS_POLL_MS, WS_POLL_MS);
    api->ws = h;
    return 0;
fail:
    if (h) {
        for (int k = 0; k < POLL_KINDS; k++)
            json_decref(h->states[k]);
        http_ws_nodes_free(&h->nodes);
        free(h);
    }
    snprintf(err, errlen, "WebSocket hub: out of memory");
    return -ENOMEM;
}

static void hub_free(hub_t *h)
{
    http_api_t *api = h->api;
    for (int k = 0; k < POLL_KINDS; k++)
        json_decref(h->states[k]);
    http_ws_nodes_free(&h->nodes);
    free(h->token);
    if (api->ws == h) api->ws = NULL;
    free(h);
    http_api_part_done(api);
}

static void hub_maybe_done(hub_t *h)
{
    if (h->stopping && !h->tick_open && h->n_clients == 0) hub_free(h);
}

static void tick_closed(uv_handle_t *handle)
{
    hub_t *h = handle->data;
    h->tick_open = false;
    hub_maybe_done(h);
}

void http_ws_stop(http_api_t *api)
{
    hub_t *h = api ? api->ws : NULL;
    if (!h || h->stopping) return;
    h->stopping = true;
    api->pending_stops++;
    for (ws_poll_t *p = h->polls, *next; p; p = next) {
        next = p->next;
        http_bridge_abandon(p->req);
        free(p);
    }
    h->polls = NULL;
    for (ws_client_t *c = h->clients; c; c = c->next)
        client_close(c, HTTP_WS_GOING_AWAY, "stopping");
    uv_close((uv_handle_t *)&h->tick, tick_closed);
}
