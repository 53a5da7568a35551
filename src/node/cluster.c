/* cluster.c: the node in its network: the peer channel (TCP on the DHT port), the membership view
 * kept by gossip over it, the node record published in the DHT, the methods node.nodes,
 * node.gossip and node.gossip_push, and the glue the router needs (resolution, transport, clock).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "base/base.h"
#include "node/cluster.h"
#include "node/log.h"
#include "node/members.h"
#include "node/router.h"
#include "rpc/peer.h"
#include "rpc/rpc.h"

#ifndef NODE_PUBLISH_MS
#define NODE_PUBLISH_MS 60000 /* the node record is stored in the DHT again this often */
#endif
#ifndef NODE_RESOLVE_MS
#define NODE_RESOLVE_MS                                                                            \
    1800 /* a name the view does not know is looked for in the DHT this long                       \
          */
#endif

uint64_t router_now(node_t *node)
{
    (void)node;
    return p2p_mono_ms(); /* the clock the RPC sessions give calls their deadlines with */
}

/* ---- our record ---- */

static bool unspecified(const char *h)
{
    return !h[0] || !strcmp(h, "0.0.0.0") || !strcmp(h, "::");
}

/* Fills the address list: the DHT host when it is specific, else what peers see of us. */
static void self_record(node_t *node, members_record_t *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", node->cfg.name);
    int port = dht_uv_port(node->dhtuv);
    if (!unspecified(node->cfg.dht_host)) {
        if (strchr(node->cfg.dht_host, ':'))
            snprintf(r->addrs[r->naddrs++], sizeof(r->addrs[0]), "[%s]:%d", node->cfg.dht_host,
                     port);
        else
            snprintf(r->addrs[r->naddrs++], sizeof(r->addrs[0]), "%s:%d", node->cfg.dht_host, port);
    }
    dht_addr_t ext;
    if (dht_external_addr(dht_uv_core(node->dhtuv), &ext)) {
        ext.port = (uint16_t)port;
        char s[80];
        dht_addr_format(&ext, s, sizeof(s));
        if (!r->naddrs || strcmp(r->addrs[0], s) != 0)
            snprintf(r->addrs[r->naddrs++], sizeof(r->addrs[0]), "%s", s);
    }
    snprintf(r->http, sizeof(r->http), strchr(node->cfg.host, ':') ? "[%s]:%d" : "%s:%d",
             node->cfg.host, node->cfg.port);
    snprintf(r->version, sizeof(r->version), "%s", P2P_VERSION);
    snprintf(r->domains[r->ndomains++], sizeof(r->domains[0]), "node");
    snprintf(r->domains[r->ndomains++], sizeof(r->domains[0]), "dht");
    for (int i = 0; i < node->cfg.tag_count && r->ntags < MEMBERS_MAX_TAGS; i++)
        snprintf(r->tags[r->ntags++], sizeof(r->tags[0]), "%s", node->cfg.tags[i]);
    r->start_ms = node->start_wall_ms;
    r->seq = node->start_wall_ms; /* grows across restarts */
}

static void publish_record(node_t *node)
{
    size_t len;
    const uint8_t *bytes = members_self_bytes(node->members, &len);
    if (!bytes || len > DHT_MAX_VALUE) return;
    dht_id_t key;
    dht_key_derive(&key, "node", node->cfg.name, strlen(node->cfg.name));
    uint32_t ttl = (uint32_t)(3 * NODE_PUBLISH_MS / 1000);
    if (dht_put(dht_uv_core(node->dhtuv), &key, bytes, len, ttl, uv_now(node->loop), NULL, NULL) ==
        0)
        dht_uv_kick(node->dhtuv);
}

/* ---- addresses ---- */

static int parse_sockaddr(const char *s, struct sockaddr_storage *ss)
{
    dht_addr_t a;
    if (dht_addr_parse(&a, s) < 0) return -EINVAL;
    memset(ss, 0, sizeof(*ss));
    if (a.family == 4) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, a.ip, 4);
        in->sin_port = htons(a.port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, a.ip, 16);
        in6->sin6_port = htons(a.port);
    }
    return 0;
}

typedef struct contact_find {
    const uint8_t *pk;
    dht_addr_t addr;
    bool found;
} contact_find_t;

static void contact_find_cb(void *arg, const dht_contact_info_t *c)
{
    contact_find_t *f = arg;
    if (!f->found && memcmp(c->public_key, f->pk, DHT_PK_LEN) == 0) {
        f->addr = c->addr;
        f->found = true;
    }
}

/* Where to reach a member: its record's first usable address, else the DHT contact's. */
static int member_target(node_t *node, const members_view_t *v, router_target_t *t)
{
    memset(t, 0, sizeof(*t));
    snprintf(t->name, sizeof(t->name), "%s", v->rec.name);
    memcpy(t->pk, v->rec.public_key, DHT_PK_LEN);
    t->up = v->up;
    for (int i = 0; i < v->rec.naddrs; i++)
        if (parse_sockaddr(v->rec.addrs[i], &t->addr) == 0) return 0;
    contact_find_t f = {v->rec.public_key, {0}, false};
    dht_foreach_contact(dht_uv_core(node->dhtuv), contact_find_cb, &f);
    if (!f.found) return -EHOSTUNREACH;
    char s[80];
    dht_addr_format(&f.addr, s, sizeof(s));
    return parse_sockaddr(s, &t->addr);
}

/* ---- router glue ---- */

typedef struct glob_ctx {
    node_t *node;
    const char *pattern;
    router_target_t *out;
    int n, cap;
} glob_ctx_t;

static void glob_cb(void *arg, const members_view_t *v)
{
    glob_ctx_t *g = arg;
    if (v->conflict || !members_glob_match(g->pattern, v->rec.name) || g->n >= g->cap) return;
    if (member_target(g->node, v, &g->out[g->n]) < 0) g->out[g->n].up = false;
    g->n++;
}

int router_resolve(node_t *node, const char *sel, size_t len, router_target_t **out)
{
    char s[2 * DHT_ID_LEN + 2]; /* a name, or '@' and up to 64 hex digits */
    *out = NULL;
    if (len == 0 || len >= sizeof(s)) return -EINVAL;
    memcpy(s, sel, len);
    s[len] = 0;
    uint64_t now = uv_now(node->loop);
    if (memchr(s, '*', len) || memchr(s, '?', len)) {
        glob_ctx_t g = {node, s, calloc(MEMBERS_MAX, sizeof(router_target_t)), 0, MEMBERS_MAX};
        if (!g.out) return -ENOMEM;
        members_foreach(node->members, now, glob_cb, &g);
        *out = g.out;
        return g.n;
    }
    members_view_t v;
    int r = s[0] == '@' ? members_find_prefix(node->members, s + 1, now, &v)
                        : members_find_name(node->members, s, now, &v);
    if (r == -ENOENT) return 0;
    if (r < 0) return r;
    router_target_t *t = calloc(1, sizeof(*t));
    if (!t) return -ENOMEM;
    if (member_target(node, &v, t) < 0) t->up = false;
    *out = t;
    return 1;
}

typedef struct remote_resolve {
    node_t *node;
    rpc_call_t *call;
    uv_timer_t timer;
    char name[MEMBERS_NAME_MAX + 1];
    bool answered, dht_done, closed;
} remote_resolve_t;

static void rr_closed(uv_handle_t *h)
{
    remote_resolve_t *rr = h->data;
    rr->closed = true;
    if (rr->dht_done) free(rr);
}

static void rr_answer_not_found(remote_resolve_t *rr)
{
    if (rr->answered) return;
    rr->answered = true;
    rpc_call_error(rr->call, RPC_ERR_NOT_FOUND, "no node named %s", rr->name);
}

static void rr_timer(uv_timer_t *t)
{
    remote_resolve_t *rr = t->data;
    rr_answer_not_found(rr);
    uv_close((uv_handle_t *)&rr->timer, rr_closed);
}

static void rr_got(void *arg, int status, const dht_get_result_t *res)
{
    remote_resolve_t *rr = arg;
    rr->dht_done = true;
    node_t *node = rr->node;
    if (!rr->answered && status == 0 && !node->stopping) {
        for (size_t i = 0; i < res->n; i++) {
            const dht_record_t *d = &res->records[i];
            members_merge(node->members, d->value, d->value_len, node->cfg.peer_timeout_s * 1000ull,
                          uv_now(node->loop));
        }
        members_view_t v;
        router_target_t t;
        if (members_find_name(node->members, rr->name, uv_now(node->loop), &v) == 0 &&
            member_target(node, &v, &t) == 0) {
            rr->answered = true;
            t.up = true; /* just found: try it */
            router_forward_one(node, rr->call, &t);
        }
    }
    rr_answer_not_found(rr);
    if (!rr->closed && !uv_is_closing((uv_handle_t *)&rr->timer))
        uv_close((uv_handle_t *)&rr->timer, rr_closed);
    else if (rr->closed)
        free(rr);
}

void router_resolve_remote(node_t *node, rpc_call_t *call, const char *sel, size_t len)
{
    remote_resolve_t *rr = calloc(1, sizeof(*rr));
    if (!rr || sel[0] == '@' || len > MEMBERS_NAME_MAX) {
        free(rr);
        rpc_call_error(call, RPC_ERR_NOT_FOUND, "no such node");
        return;
    }
    rr->node = node;
    rr->call = call;
    memcpy(rr->name, sel, len);
    dht_id_t key;
    dht_key_derive(&key, "node", rr->name, len);
    uv_timer_init(node->loop, &rr->timer);
    rr->timer.data = rr;
    if (dht_get(dht_uv_core(node->dhtuv), &key, uv_now(node->loop), rr_got, rr) < 0) {
        rr->dht_done = true;
        rr_answer_not_found(rr);
        uv_close((uv_handle_t *)&rr->timer, rr_closed);
        return;
    }
    dht_uv_kick(node->dhtuv);
    uv_timer_start(&rr->timer, rr_timer, NODE_RESOLVE_MS, 0);
}

int router_transport_call(node_t *node, const router_target_t *t, const char *method,
                          const msgpack_object *params, uint64_t timeout_ms, router_reply_cb cb,
                          router_notify_cb on_notify, void *arg)
{
    if (!node->peer) return -ESHUTDOWN;
    return rpc_peer_call_ex(node->peer, t->pk, (const struct sockaddr *)&t->addr, method, params,
                            timeout_ms, cb, on_notify, arg);
}

/* ---- gossip ---- */

typedef struct gossip_op {
    node_t *node;
    router_target_t t;
} gossip_op_t;

/* Packs [{"body": bin}] and returns it unpacked into *u (caller destroys u). Gossip needs no
 * token: the peer channel already proved the network key, and records carry their signatures. */
static void gossip_params(node_t *node, const p2p_buf_t *body, msgpack_sbuffer *sb,
                          msgpack_unpacked *u)
{
    (void)node;
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "body", 4);
    msgpack_pack_bin_with_body(&pk, body->data ? (const char *)body->data : "", body->len);
    msgpack_unpacked_init(u);
    size_t off = 0;
    msgpack_unpack_next(u, sb->data, sb->size, &off);
}

static void push_done(void *arg, int status, const msgpack_object *err, const msgpack_object *res)
{
    (void)status, (void)err, (void)res;
    free(arg);
}

static void gossip_reply(void *arg, int status, const msgpack_object *err,
                         const msgpack_object *res)
{
    gossip_op_t *g = arg;
    node_t *node = g->node;
    if (status == 0 && (!err || err->type == MSGPACK_OBJECT_NIL) && res &&
        res->type == MSGPACK_OBJECT_BIN && node->members && !node->stopping) {
        p2p_buf_t push;
        p2p_buf_init(&push, MEMBERS_MSG_MAX);
        members_gossip_consume_response(node->members, (const uint8_t *)res->via.bin.ptr,
                                        res->via.bin.size, uv_now(node->loop), &push);
        if (push.len > 0 && node->peer) {
            msgpack_sbuffer sb;
            msgpack_unpacked u;
            msgpack_sbuffer_init(&sb);
            gossip_params(node, &push, &sb, &u);
            gossip_op_t *g2 = malloc(sizeof(*g2));
            if (g2 &&
                rpc_peer_call(node->peer, g->t.pk, (const struct sockaddr *)&g->t.addr,
                              "system.local.node.gossip_push", &u.data, 3000, push_done, g2) < 0)
                free(g2);
            msgpack_unpacked_destroy(&u);
            msgpack_sbuffer_destroy(&sb);
        }
        p2p_buf_free(&push);
    }
    free(g);
}

static void gossip_with(node_t *node, const router_target_t *t)
{
    p2p_buf_t req;
    p2p_buf_init(&req, MEMBERS_MSG_MAX);
    if (members_gossip_request(node->members, &req) < 0) {
        p2p_buf_free(&req);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    msgpack_sbuffer_init(&sb);
    gossip_params(node, &req, &sb, &u);
    gossip_op_t *g = malloc(sizeof(*g));
    if (g) {
        g->node = node;
        g->t = *t;
        if (rpc_peer_call(node->peer, t->pk, (const struct sockaddr *)&t->addr,
                          "system.local.node.gossip", &u.data, 3000, gossip_reply, g) < 0)
            free(g);
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    p2p_buf_free(&req);
}

typedef struct seed_ctx {
    node_t *node;
    int left;
} seed_ctx_t;

/* Routing-table contacts the view does not list yet: ask them too (how a newcomer learns). */
static void seed_cb(void *arg, const dht_contact_info_t *c)
{
    seed_ctx_t *s = arg;
    if (s->left <= 0 || !c->verified) return;
    if (members_find_id(s->node->members, &c->id, uv_now(s->node->loop), NULL) == 0) return;
    router_target_t t;
    memset(&t, 0, sizeof(t));
    memcpy(t.pk, c->public_key, DHT_PK_LEN);
    char a[80];
    dht_addr_format(&c->addr, a, sizeof(a));
    if (parse_sockaddr(a, &t.addr) < 0) return;
    s->left--;
    gossip_with(s->node, &t);
}

static void gossip_timer_cb(uv_timer_t *timer)
{
    node_t *node = timer->data;
    if (node->stopping || !node->peer) return;
    uint64_t now = uv_now(node->loop);
    members_record_t r;
    self_record(node, &r);
    if (members_set_self(node->members, &r, now) == 1) publish_record(node);
    members_tick(node->members, now);
    dht_id_t ids[MEMBERS_GOSSIP_FANOUT + 1]; /* members_pick may add a down member */
    int n = members_pick(node->members, now, MEMBERS_GOSSIP_FANOUT, &node->cl_rng, ids);
    for (int i = 0; i < n; i++) {
        members_view_t v;
        router_target_t t;
        if (members_find_id(node->members, &ids[i], now, &v) == 0 &&
            member_target(node, &v, &t) == 0)
            gossip_with(node, &t);
    }
    seed_ctx_t s = {node, n == 0 ? 2 : 1};
    dht_foreach_contact(dht_uv_core(node->dhtuv), seed_cb, &s);
    if (now >= node->cl_next_publish) {
        publish_record(node);
        node->cl_next_publish = now + NODE_PUBLISH_MS;
    }
}

/* ---- methods ---- */

static void gossip_cb(rpc_call_t *call, void *ctx)
{
    node_t *node = ctx;
    size_t len;
    const char *body = rpc_call_str(call, "body", &len);
    p2p_buf_t out;
    p2p_buf_init(&out, MEMBERS_MSG_MAX);
    int r =
        members_gossip_respond(node->members, (const uint8_t *)body, len, uv_now(node->loop), &out);
    if (r < 0) {
        p2p_buf_free(&out);
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "body", "malformed gossip request");
        return;
    }
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_bin_with_body(pk, out.data ? (const char *)out.data : "", out.len);
    rpc_call_reply(call);
    p2p_buf_free(&out);
}

static void gossip_push_cb(rpc_call_t *call, void *ctx)
{
    node_t *node = ctx;
    size_t len;
    const char *body = rpc_call_str(call, "body", &len);
    int r =
        members_gossip_consume_push(node->members, (const uint8_t *)body, len, uv_now(node->loop));
    if (r < 0) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "body", "malformed gossip push");
        return;
    }
    msgpack_pack_int(rpc_call_packer(call), r);
    rpc_call_reply(call);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void count_cb(void *arg, const members_view_t *v)
{
    (void)v;
    (*(size_t *)arg)++;
}

static void node_entry_cb(void *arg, const members_view_t *v)
{
    msgpack_packer *pk = arg;
    char hex[2 * DHT_ID_LEN + 1];
    msgpack_pack_map(pk, 11);
    pack_cstr(pk, "name");
    pack_cstr(pk, v->rec.name);
    pack_cstr(pk, "id");
    p2p_hex_encode(hex, v->id.b, DHT_ID_LEN);
    pack_cstr(pk, hex);
    pack_cstr(pk, "public_key");
    p2p_hex_encode(hex, v->rec.public_key, DHT_PK_LEN);
    pack_cstr(pk, hex);
    pack_cstr(pk, "addresses");
    msgpack_pack_array(pk, v->rec.naddrs);
    for (int i = 0; i < v->rec.naddrs; i++)
        pack_cstr(pk, v->rec.addrs[i]);
    pack_cstr(pk, "http");
    pack_cstr(pk, v->rec.http);
    pack_cstr(pk, "version");
    pack_cstr(pk, v->rec.version);
    pack_cstr(pk, "tags");
    msgpack_pack_array(pk, v->rec.ntags);
    for (int i = 0; i < v->rec.ntags; i++)
        pack_cstr(pk, v->rec.tags[i]);
    pack_cstr(pk, "last_seen");
    msgpack_pack_uint64(pk, v->last_seen_s);
    pack_cstr(pk, "up");
    v->up ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    pack_cstr(pk, "conflict");
    v->conflict ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    pack_cstr(pk, "self");
    v->self ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

static void nodes_cb(rpc_call_t *call, void *ctx)
{
    node_t *node = ctx;
    uint64_t now = uv_now(node->loop);
    size_t n = 0;
    members_foreach(node->members, now, count_cb, &n);
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_array(pk, n);
    members_foreach(node->members, now, node_entry_cb, pk);
    rpc_call_reply(call);
}

static const rpc_param_t gossip_params_schema[] = {
    {.name = "body",
     .types = RPC_T_BYTES,
     .required = true,
     .range = true,
     .min = 1,
     .max = MEMBERS_MSG_MAX,
     .description = "a gossip message (docs/discovery.md)"},
};

int node_cluster_register(node_t *node, rpc_registry_t *reg)
{
    const rpc_method_t methods[] = {
        {.name = "node.nodes",
         .description = "Every node this node knows, with addresses, last seen and up/down.",
         .role = RPC_ROLE_VIEWER,
         .handler = nodes_cb,
         .ctx = node},
        {.name = "node.gossip",
         .description = "Membership anti-entropy: a digest in, the records it lacks out.",
         .role = RPC_ROLE_VIEWER,
         .params = gossip_params_schema,
         .n_params = 1,
         .handler = gossip_cb,
         .ctx = node,
         .network = true},
        {.name = "node.gossip_push",
         .description = "Membership anti-entropy: records the callee asked for.",
         .role = RPC_ROLE_VIEWER,
         .params = gossip_params_schema,
         .n_params = 1,
         .handler = gossip_push_cb,
         .ctx = node,
         .network = true},
    };
    for (size_t i = 0; i < P2P_ARRAY_LEN(methods); i++) {
        int r = rpc_registry_add(reg, &methods[i]);
        if (r < 0) return r;
    }
    rpc_registry_set_router(reg, router_handle, node);
    return 0;
}

/* ---- start and stop ---- */

int node_cluster_start(node_t *node, char *err, size_t errlen)
{
    members_config_t mc;
    memset(&mc, 0, sizeof(mc));
    memcpy(mc.public_key, node->public_key, DHT_PK_LEN);
    memcpy(mc.secret_key, node->secret_key, DHT_SK_LEN);
    mc.peer_timeout_ms = (uint64_t)node->cfg.peer_timeout_s * 1000u;
    node->members = members_new(&mc);
    sodium_memzero(&mc, sizeof(mc));
    if (!node->members) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    members_record_t r;
    self_record(node, &r);
    int rc = members_set_self(node->members, &r, uv_now(node->loop));
    if (rc < 0) {
        snprintf(err, errlen, "cannot sign the node record: %s", strerror(-rc));
        return rc;
    }
    randombytes_buf(&node->cl_rng, sizeof(node->cl_rng));
    rpc_auth_config_t auth;
    node_auth_config(node, &auth);
    rpc_peer_config_t pc = {.public_key = node->public_key,
                            .secret_key = node->secret_key,
                            .network_key = node->network_key,
                            .reg = node->reg,
                            .auth = &auth,
                            .no_bulk = !node->cfg.peer_bulk};
    const char *host = node->cfg.dht_host[0] ? node->cfg.dht_host : NULL;
    rc = rpc_peer_start(node->loop, &pc, host, dht_uv_port(node->dhtuv), &node->peer);
    if (rc < 0) {
        node->peer = NULL;
        snprintf(err, errlen, "cannot listen on TCP port %d (peer channel): %s",
                 dht_uv_port(node->dhtuv), uv_strerror(rc));
        return rc;
    }
    uv_timer_init(node->loop, &node->gossip_timer);
    node->gossip_timer.data = node;
    node->cl_timer_open = true;
    uv_timer_start(&node->gossip_timer, gossip_timer_cb, 200, MEMBERS_GOSSIP_INTERVAL_MS);
    node->cl_next_publish = uv_now(node->loop) + 2000; /* once the table has contacts */
    return 0;
}

void node_cluster_stop(node_t *node, uv_close_cb timer_closed, void (*part_done)(void *arg),
                       int *parts)
{
    if (node->cl_timer_open) {
        (*parts)++;
        node->cl_timer_open = false;
        uv_close((uv_handle_t *)&node->gossip_timer, timer_closed);
    }
    if (node->peer) {
        (*parts)++;
        rpc_peer_stop(node->peer, part_done, node);
        node->peer = NULL;
    }
}

void node_cluster_free(node_t *node)
{
    members_free(node->members);
    node->members = NULL;
}
