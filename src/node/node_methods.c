/* node_methods.c: the node's own RPC methods: system.local.node.info and .peers, and the DHT
 * methods system.local.dht.put, .get and .lookup; node.audit comes from audit.c. Parameters arrive
 * validated by the dispatcher; the DHT methods answer from the DHT operation's callback.
 * (system.local.node.methods is built into the registry.) */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "node/audit.h"
#include "node/node.h"
#include "rpc/rpc.h"

#define KEY_MAX 1024 /* longest key name accepted by dht.put/get */
#define STR_(x) #x
#define STR(x)  STR_(x)

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_hex(msgpack_packer *pk, const uint8_t *b, size_t n)
{
    char hex[2 * 64 + 1];
    p2p_hex_encode(hex, b, n);
    pack_str(pk, hex);
}

static void pack_addr(msgpack_packer *pk, const dht_addr_t *a)
{
    char buf[80];
    if (a->family == 0 || dht_addr_format(a, buf, sizeof(buf)) < 0)
        msgpack_pack_nil(pk);
    else
        pack_str(pk, buf);
}

static void pack_hostport(msgpack_packer *pk, const char *host, int port)
{
    msgpack_pack_map(pk, 2);
    pack_str(pk, "host");
    pack_str(pk, host);
    pack_str(pk, "port");
    msgpack_pack_int(pk, port);
}

static uint64_t mono_now(const node_t *node)
{
    return uv_now(node->loop); /* the clock the DHT adapter feeds the core */
}

static void pack_counters(msgpack_packer *pk, const char *name, const uint64_t *v,
                          const char *const *labels, int n)
{
    pack_str(pk, name);
    msgpack_pack_map(pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        pack_str(pk, labels[i]);
        msgpack_pack_uint64(pk, v[i]);
    }
}

/* The DHT's counters: datagrams by type, drops by reason, lookups by result, bytes. */
static void pack_dht_stats(msgpack_packer *pk, dht_t *dht)
{
    dht_stats_t st;
    memset(&st, 0, sizeof(st));
    if (dht) dht_get_stats(dht, &st);
    msgpack_pack_map(pk, 6);
    pack_counters(pk, "received", st.received, dht_msg_type_names, DHT_MSG_TYPE_COUNT);
    pack_counters(pk, "sent", st.sent, dht_msg_type_names, DHT_MSG_TYPE_COUNT);
    pack_counters(pk, "dropped", st.dropped, dht_drop_reason_names, DHT_DROP_REASON_COUNT);
    pack_counters(pk, "lookups", st.lookups, dht_lookup_result_names, DHT_LOOKUP_LABEL_COUNT);
    pack_str(pk, "bytes_in");
    msgpack_pack_uint64(pk, st.bytes_in);
    pack_str(pk, "bytes_out");
    msgpack_pack_uint64(pk, st.bytes_out);
}

static void info_cb(rpc_call_t *call, void *ctx)
{
    node_t *node = ctx;
    msgpack_packer *pk = rpc_call_packer(call);
    dht_t *dht = node->dhtuv ? dht_uv_core(node->dhtuv) : NULL;
    dht_addr_t ext;
    bool has_ext = dht && dht_external_addr(dht, &ext);

    msgpack_pack_map(pk, 9);
    pack_str(pk, "name");
    pack_str(pk, node->cfg.name);
    pack_str(pk, "id");
    pack_hex(pk, node->id.b, DHT_ID_LEN);
    pack_str(pk, "public_key");
    pack_hex(pk, node->public_key, DHT_PK_LEN);
    pack_str(pk, "addresses");
    msgpack_pack_map(pk, 3);
    pack_str(pk, "dht");
    pack_hostport(pk, node->cfg.dht_host[0] ? node->cfg.dht_host : "0.0.0.0",
                  node->dhtuv ? dht_uv_port(node->dhtuv) : node->cfg.dht_port);
    pack_str(pk, "http");
    pack_hostport(pk, node->cfg.host, node->cfg.port);
    pack_str(pk, "external");
    if (has_ext)
        pack_addr(pk, &ext);
    else
        msgpack_pack_nil(pk);
    pack_str(pk, "version");
    pack_str(pk, P2P_VERSION);
    pack_str(pk, "uptime_s");
    uint64_t now = p2p_mono_ms();
    msgpack_pack_uint64(pk, now > node->start_mono_ms ? (now - node->start_mono_ms) / 1000 : 0);
    pack_str(pk, "peers");
    msgpack_pack_uint64(pk, dht ? dht_contact_count(dht) : 0);
    pack_str(pk, "records");
    msgpack_pack_uint64(pk, dht ? dht_record_count(dht) : 0);
    pack_str(pk, "dht_stats");
    pack_dht_stats(pk, dht);
    rpc_call_reply(call);
}

typedef struct peers_ctx {
    msgpack_packer *pk;
    uint64_t now;
    size_t n;
} peers_ctx_t;

static void count_cb(void *arg, const dht_contact_info_t *c)
{
    ((peers_ctx_t *)arg)->n++;
}

static void pack_contact(msgpack_packer *pk, const dht_contact_info_t *c, uint64_t now, bool full)
{
    msgpack_pack_map(pk, full ? 7 : 4);
    pack_str(pk, "id");
    pack_hex(pk, c->id.b, DHT_ID_LEN);
    pack_str(pk, "public_key");
    pack_hex(pk, c->public_key, DHT_PK_LEN);
    pack_str(pk, "address");
    pack_addr(pk, &c->addr);
    pack_str(pk, "rtt_ms");
    msgpack_pack_uint32(pk, c->rtt_ms);
    if (!full) return;
    pack_str(pk, "fails");
    msgpack_pack_uint32(pk, c->fails);
    pack_str(pk, "last_seen");
    if (c->last_seen == 0)
        msgpack_pack_nil(pk);
    else
        msgpack_pack_uint64(pk, now > c->last_seen ? (now - c->last_seen) / 1000 : 0);
    pack_str(pk, "verified");
    c->verified ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

static void peer_cb(void *arg, const dht_contact_info_t *c)
{
    peers_ctx_t *p = arg;
    pack_contact(p->pk, c, p->now, true);
}

static void peers_cb(rpc_call_t *call, void *ctx)
{
    node_t *node = ctx;
    peers_ctx_t p = {rpc_call_packer(call), mono_now(node), 0};
    dht_t *dht = node->dhtuv ? dht_uv_core(node->dhtuv) : NULL;
    if (!dht) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the DHT is not running");
        return;
    }
    dht_foreach_contact(dht, count_cb, &p);
    msgpack_pack_array(p.pk, p.n);
    dht_foreach_contact(dht, peer_cb, &p);
    rpc_call_reply(call);
}

static dht_t *dht_of(rpc_call_t *call, node_t *node)
{
    dht_t *dht = node->dhtuv ? dht_uv_core(node->dhtuv) : NULL;
    if (!dht) rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the DHT is not running");
    return dht;
}

static void put_done(void *arg, int status, size_t stored)
{
    rpc_call_t *call = arg;
    if (status == -ECANCELED) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the node is stopping");
        return;
    }
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 1);
    pack_str(pk, "stored");
    msgpack_pack_uint64(pk, stored);
    rpc_call_reply(call);
}

/* After starting a DHT operation for call: wakes the adapter, or answers the call when the
 * operation could not start (its callback will then never run). */
static void started(node_t *node, rpc_call_t *call, int r, const char *what)
{
    if (r < 0) {
        rpc_call_error(call, r == -ENOBUFS ? RPC_ERR_RESOURCE_EXHAUSTED : RPC_ERR_INTERNAL,
                       "cannot start the %s: %s", what, strerror(-r));
        return;
    }
    dht_uv_kick(node->dhtuv);
}

static void put_cb(rpc_call_t *call, void *ctx)
{
    node_t *node = ctx;
    size_t klen, vlen;
    const char *key = rpc_call_str(call, "key", &klen);
    const char *value = rpc_call_str(call, "value", &vlen);
    int64_t ttl = rpc_call_int(call, "ttl");
    dht_id_t id;
    dht_t *dht = dht_of(call, node);
    if (!dht) return;
    if (vlen > DHT_MAX_VALUE) {
        rpc_call_error_param(call, RPC_ERR_RESOURCE_EXHAUSTED, "value",
                             "value is %zu bytes; the limit is %d", vlen, DHT_MAX_VALUE);
        return;
    }
    dht_key_derive(&id, "kv", key, klen);
    int r = dht_put(dht, &id, (const uint8_t *)value, vlen, (uint32_t)ttl, mono_now(node), put_done,
                    call);
    started(node, call, r, "put");
}

static void get_done(void *arg, int status, const dht_get_result_t *res)
{
    rpc_call_t *call = arg;
    if (status == -ECANCELED) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the node is stopping");
        return;
    }
    if (status < 0 || res->n == 0) {
        rpc_call_error(call, RPC_ERR_NOT_FOUND, "no record under this key%s",
                       status == -EHOSTUNREACH ? " (no node answered)" : "");
        return;
    }
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 2);
    pack_str(pk, "records");
    msgpack_pack_array(pk, res->n);
    for (size_t i = 0; i < res->n; i++) {
        const dht_record_t *r = &res->records[i];
        dht_id_t pub;
        dht_id_from_pk(&pub, r->publisher);
        msgpack_pack_map(pk, 4);
        pack_str(pk, "publisher");
        pack_hex(pk, pub.b, DHT_ID_LEN);
        pack_str(pk, "value");
        if (rpc_utf8_valid((const char *)r->value, r->value_len)) {
            msgpack_pack_str(pk, r->value_len);
            msgpack_pack_str_body(pk, r->value, r->value_len);
        } else {
            msgpack_pack_bin(pk, r->value_len);
            msgpack_pack_bin_body(pk, r->value, r->value_len);
        }
        pack_str(pk, "seq");
        msgpack_pack_uint64(pk, r->seq);
        pack_str(pk, "expires");
        msgpack_pack_uint64(pk, r->expires);
    }
    pack_str(pk, "hops");
    msgpack_pack_int(pk, res->hops);
    rpc_call_reply(call);
}

static void get_cb(rpc_call_t *call, void *ctx)
{
    node_t *node = ctx;
    size_t klen;
    const char *key = rpc_call_str(call, "key", &klen);
    dht_id_t id;
    dht_t *dht = dht_of(call, node);
    if (!dht) return;
    dht_key_derive(&id, "kv", key, klen);
    int r = dht_get(dht, &id, mono_now(node), get_done, call);
    started(node, call, r, "get");
}

static void lookup_done(void *arg, int status, const dht_lookup_result_t *res)
{
    rpc_call_t *call = arg;
    if (status == -ECANCELED) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the node is stopping");
        return;
    }
    if (status < 0 && res->n == 0) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "no node answered the lookup");
        return;
    }
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 4);
    pack_str(pk, "nodes");
    msgpack_pack_array(pk, res->n);
    for (size_t i = 0; i < res->n; i++)
        pack_contact(pk, &res->nodes[i], 0, false);
    pack_str(pk, "hops");
    msgpack_pack_int(pk, res->hops);
    pack_str(pk, "messages");
    msgpack_pack_uint32(pk, res->messages);
    pack_str(pk, "duration_ms");
    msgpack_pack_uint64(pk, res->duration_ms);
    rpc_call_reply(call);
}

static void lookup_cb(rpc_call_t *call, void *ctx)
{
    node_t *node = ctx;
    size_t tlen;
    const char *target = rpc_call_str(call, "target", &tlen);
    dht_id_t id;
    dht_t *dht = dht_of(call, node);
    if (!dht) return;
    if (tlen != 2 * DHT_ID_LEN || p2p_hex_decode(id.b, DHT_ID_LEN, target, tlen) < 0)
        dht_key_derive(&id, "kv", target, tlen);
    int r = dht_find_node(dht, &id, mono_now(node), lookup_done, call);
    started(node, call, r, "lookup");
}

static const rpc_param_t put_params[] = {
    {.name = "key",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = KEY_MAX,
     .description = "key name; the DHT key is BLAKE2b-256(\"p2p-admin/kv/\" key)"},
    {.name = "value",
     .types = RPC_T_STRING | RPC_T_BYTES,
     .required = true,
     .description = "value to publish (at most " STR(DHT_MAX_VALUE) " bytes)"},
    {.name = "ttl",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = 3600,
     .range = true,
     .min = 1,
     .max = DHT_MAX_TTL_S,
     .description = "lifetime in seconds"},
};

static const rpc_param_t get_params[] = {
    {.name = "key",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = KEY_MAX,
     .description = "key name, as given to dht.put"},
};

static const rpc_param_t lookup_params[] = {
    {.name = "target",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = KEY_MAX,
     .description = "a node id (64 hex digits) or a key name hashed like dht.put's"},
};

int node_methods_register(node_t *node, rpc_registry_t *reg)
{
    const rpc_method_t methods[] = {
        {.name = "node.info",
         .description = "This node: name, id, public key, addresses, version, uptime.",
         .role = RPC_ROLE_VIEWER,
         .handler = info_cb,
         .ctx = node},
        {.name = "node.peers",
         .description = "Routing-table contacts with RTT, failures, last seen (seconds ago).",
         .role = RPC_ROLE_VIEWER,
         .handler = peers_cb,
         .ctx = node},
        {.name = "dht.put",
         .description = "Publishes a value under a key; answers how many nodes stored it.",
         .role = RPC_ROLE_OPERATOR,
         .params = put_params,
         .n_params = P2P_ARRAY_LEN(put_params),
         .handler = put_cb,
         .ctx = node,
         .changes = true},
        {.name = "dht.get",
         .description = "Finds the values published under a key.",
         .role = RPC_ROLE_VIEWER,
         .params = get_params,
         .n_params = P2P_ARRAY_LEN(get_params),
         .handler = get_cb,
         .ctx = node},
        {.name = "dht.lookup",
         .description = "Finds the k closest nodes to a target id.",
         .role = RPC_ROLE_VIEWER,
         .params = lookup_params,
         .n_params = P2P_ARRAY_LEN(lookup_params),
         .handler = lookup_cb,
         .ctx = node},
    };
    for (size_t i = 0; i < P2P_ARRAY_LEN(methods); i++) {
        int r = rpc_registry_add(reg, &methods[i]);
        if (r < 0) return r;
    }
    return node_audit_start(node, reg); /* node.audit and the dispatcher's audit hook */
}
