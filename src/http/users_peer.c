/* users_peer.c: replication of users, sessions and logged-out tokens over the peer channel
 * (docs/auth.md): pushes of changes (node.auth_push) to live nodes, with one relay hop for rows
 * first heard from a peer, and anti-entropy rounds with bucket digests (node.auth_sync); both
 * methods are for nodes only. The rows, digests and merges are users_sync.c's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "http/users-internal.h"
#include "node/log.h"
#include "node/router.h"
#include "rpc/peer.h"

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* --- the network side ---------------------------------------------------------------------- */

typedef struct sync_op {
    node_t *node;
    http_users_t *owner;
    router_target_t t;
    uint8_t digest[HTTP_SYNC_DIGEST_LEN]; /* ours when an anti-entropy round started */
} sync_op_t;

/* The live members other than this node, into a malloc'd *out (freed by the caller, also when
 * the count is 0). */
static int live_targets(node_t *node, router_target_t **out)
{
    *out = NULL;
    if (!node->members || !node->peer) return 0;
    int n = router_resolve(node, "*", 1, out);
    int m = 0;
    for (int i = 0; i < n; i++)
        if ((*out)[i].up && memcmp((*out)[i].pk, node->public_key, DHT_PK_LEN) != 0)
            (*out)[m++] = (*out)[i];
    return m;
}

/* Moves k random targets of t[0..n) to its front (partial Fisher-Yates). */
static void pick(router_target_t *t, int n, int k)
{
    for (int i = 0; i < k && i < n - 1; i++) {
        int j = i + (int)randombytes_uniform((uint32_t)(n - i));
        router_target_t tmp = t[i];
        t[i] = t[j];
        t[j] = tmp;
    }
}

/* Packs [ {"digest"?: bin, "users", "families", "revoked"?} ] and unpacks it into *up. */
static void build_params(msgpack_sbuffer *sb, msgpack_unpacked *up, const users_batch_t *b,
                         const uint8_t *digest)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, (b ? 3 : 0) + (digest ? 1 : 0));
    if (digest) {
        pack_str(&pk, "digest");
        msgpack_pack_bin_with_body(&pk, digest, HTTP_SYNC_DIGEST_LEN);
    }
    if (b) users_sync_pack_rows(&pk, b);
    msgpack_unpacked_init(up);
    size_t off = 0;
    msgpack_unpack_next(up, sb->data, sb->size, &off);
}

static int call_peer(http_users_t *u, const router_target_t *t, const char *method,
                     const msgpack_object *params, rpc_peer_reply_cb cb, const uint8_t *digest)
{
    if (u->inflight >= HTTP_SYNC_MAX_INFLIGHT || !u->node->peer) return -ENOBUFS;
    sync_op_t *op = malloc(sizeof(*op));
    if (!op) return -ENOMEM;
    op->node = u->node;
    op->owner = u;
    op->t = *t;
    if (digest) memcpy(op->digest, digest, HTTP_SYNC_DIGEST_LEN);
    int r = rpc_peer_call(u->node->peer, t->pk, (const struct sockaddr *)&t->addr, method, params,
                          HTTP_SYNC_TIMEOUT_MS, cb, op);
    if (r < 0) {
        free(op);
        u->sync_errors++;
        return r;
    }
    u->inflight++;
    return 0;
}

/* The part an answered call belongs to, when it still runs; frees nothing. */
static http_users_t *op_owner(sync_op_t *op)
{
    http_users_t *u = users_of(op->node);
    if (!u || u != op->owner) return NULL;
    u->inflight--;
    return u->stopping ? NULL : u;
}

static void push_reply(void *arg, int status, const msgpack_object *err, const msgpack_object *res)
{
    (void)res;
    sync_op_t *op = arg;
    http_users_t *u = op_owner(op);
    if (u && (status != 0 || (err && err->type != MSGPACK_OBJECT_NIL))) u->sync_errors++;
    free(op);
}

static void push_to(http_users_t *u, const users_batch_t *b, router_target_t *t, int n)
{
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    build_params(&sb, &up, b, NULL);
    for (int i = 0; i < n; i++)
        if (call_peer(u, &t[i], "system.local.node.auth_push", &up.data, push_reply, NULL) == 0)
            u->pushes_sent++;
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

/* Pushes b to up to max live nodes, then empties it. */
static void push_batch(http_users_t *u, users_batch_t *b, int max)
{
    if (!users_batch_rows(b)) return;
    router_target_t *t;
    int n = live_targets(u->node, &t);
    if (n > 0) {
        pick(t, n, max);
        push_to(u, b, t, n < max ? n : max);
    }
    free(t);
    users_batch_free(b);
}

void users_sync_flush(http_users_t *u)
{
    if (u->push_armed) {
        uv_timer_stop(&u->push_timer);
        u->push_armed = false;
    }
    push_batch(u, &u->out_local, HTTP_SYNC_PUSH_MAX);
    push_batch(u, &u->out_relay, HTTP_SYNC_RELAY_FANOUT);
}

static void push_timer_cb(uv_timer_t *t)
{
    http_users_t *u = t->data;
    u->push_armed = false;
    if (!u->stopping) users_sync_flush(u);
}

/* A row changed our database: the view follows, and the row is queued in b. */
static void queued(http_users_t *u, users_batch_t *b)
{
    u->digest_dirty = true;
    if (u->stopping) return;
    if (users_batch_rows(b) >= HTTP_SYNC_MAX_ROWS) {
        users_sync_flush(u);
        return;
    }
    if (!u->push_armed) {
        uv_timer_start(&u->push_timer, push_timer_cb, HTTP_SYNC_PUSH_DELAY_MS, 0);
        u->push_armed = true;
    }
}

#define QUEUE(u, b, add, row)                                                                      \
    do {                                                                                           \
        if (add(b, row) == -ENOSPC) {                                                              \
            users_sync_flush(u);                                                                   \
            add(b, row);                                                                           \
        }                                                                                          \
        queued(u, b);                                                                              \
    } while (0)

static void note_user(http_users_t *u, const http_user_t *row, bool relay)
{
    users_view_put_user(u->view, row);
    QUEUE(u, relay ? &u->out_relay : &u->out_local, users_batch_add_user, row);
}

static void note_family(http_users_t *u, const http_family_t *row, bool relay)
{
    QUEUE(u, relay ? &u->out_relay : &u->out_local, users_batch_add_family, row);
}

static void note_revoked(http_users_t *u, const http_revoked_t *row, bool relay)
{
    users_view_add_revoked(u->view, row->jti, row->expires);
    QUEUE(u, relay ? &u->out_relay : &u->out_local, users_batch_add_revoked, row);
}

void users_sync_changed_user(http_users_t *u, const http_user_t *row)
{
    note_user(u, row, false);
}

void users_sync_changed_family(http_users_t *u, const http_family_t *row)
{
    note_family(u, row, false);
}

void users_sync_changed_revoked(http_users_t *u, const http_revoked_t *row)
{
    note_revoked(u, row, false);
}

/* Merges rows a peer sent; what was news here goes to the view and on to other nodes. */
static int take_rows(http_users_t *u, const msgpack_object *users, const msgpack_object *fams,
                     const msgpack_object *revs)
{
    users_batch_t news;
    users_batch_init(&news);
    int r = users_sync_apply(u->db, users, fams, revs, p2p_wall_ms() / 1000, &news, &u->sync_in);
    for (size_t i = 0; i < news.n_users; i++)
        note_user(u, &news.users[i], true);
    for (size_t i = 0; i < news.n_fams; i++)
        note_family(u, &news.fams[i], true);
    for (size_t i = 0; i < news.n_revs; i++)
        note_revoked(u, &news.revs[i], true);
    if (r > 0 && node_log_enabled(u->node->log, NODE_LOG_DEBUG)) {
        char n[16];
        snprintf(n, sizeof(n), "%d", r);
        node_log(u->node->log, NODE_LOG_DEBUG, "auth rows merged", "#rows", n, NULL);
    }
    users_batch_free(&news);
    return r;
}

static int fresh_digest(http_users_t *u)
{
    if (!u->digest_dirty) return 0;
    int r = users_sync_digest(u->db, u->digest);
    if (r == 0) u->digest_dirty = false;
    return r;
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    size_t n = strlen(key);
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static void sync_reply(void *arg, int status, const msgpack_object *err, const msgpack_object *res)
{
    sync_op_t *op = arg;
    http_users_t *u = op_owner(op);
    const msgpack_object *d =
        res && res->type == MSGPACK_OBJECT_MAP ? map_get(res, "digest") : NULL;
    bool ok = status == 0 && (!err || err->type == MSGPACK_OBJECT_NIL) && d &&
              d->type == MSGPACK_OBJECT_BIN && d->via.bin.size == HTTP_SYNC_DIGEST_LEN;
    if (u && !ok) u->sync_errors++;
    if (!u || !ok) {
        free(op);
        return;
    }
    if (take_rows(u, map_get(res, "users"), map_get(res, "families"), map_get(res, "revoked")) < 0)
        u->sync_errors++;
    bool diff[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS];
    if (users_sync_diff(op->digest, (const uint8_t *)d->via.bin.ptr, diff) > 0) {
        users_batch_t b;
        users_batch_init(&b);
        if (users_sync_collect(u->db, diff, randombytes_random(), &b) > 0)
            push_to(u, &b, &op->t, 1);
        users_batch_free(&b);
    }
    free(op);
}

void users_sync_round(http_users_t *u)
{
    if (u->stopping || u->inflight >= HTTP_SYNC_MAX_INFLIGHT || fresh_digest(u) < 0) return;
    router_target_t *t;
    int n = live_targets(u->node, &t);
    if (n > 0) {
        pick(t, n, 1);
        msgpack_sbuffer sb;
        msgpack_unpacked up;
        build_params(&sb, &up, NULL, u->digest);
        if (call_peer(u, &t[0], "system.local.node.auth_sync", &up.data, sync_reply, u->digest) ==
            0)
            u->syncs_sent++;
        msgpack_unpacked_destroy(&up);
        msgpack_sbuffer_destroy(&sb);
    }
    free(t);
}

/* --- the methods --------------------------------------------------------------------------- */

/* These methods carry password hashes and sessions: only nodes of the network may call them,
 * over the peer channel without a token (a user's token, even an admin's, is refused). */
static http_users_t *peer_only(rpc_call_t *call, node_t *node)
{
    if (rpc_call_role(call) != RPC_ROLE_NONE || rpc_call_token(call)[0]) {
        rpc_call_error(call, RPC_ERR_PERMISSION_DENIED, "node-to-node method (peer channel only)");
        return NULL;
    }
    http_users_t *u = users_of(node);
    if (!u || u->stopping) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the users part does not run on this node");
        return NULL;
    }
    return u;
}

static void auth_push_cb(rpc_call_t *call, void *ctx)
{
    http_users_t *u = peer_only(call, ctx);
    if (!u) return;
    int r = take_rows(u, rpc_call_arg(call, "users"), rpc_call_arg(call, "families"),
                      rpc_call_arg(call, "revoked"));
    if (r == -E2BIG) {
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "more than %d rows", HTTP_SYNC_MAX_ROWS);
        return;
    }
    if (r < 0) {
        rpc_call_error(call, RPC_ERR_INTERNAL, "database error");
        return;
    }
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 1);
    pack_str(pk, "taken");
    msgpack_pack_int(pk, r);
    rpc_call_reply(call);
}

static void auth_sync_cb(rpc_call_t *call, void *ctx)
{
    http_users_t *u = peer_only(call, ctx);
    if (!u) return;
    size_t len;
    const uint8_t *theirs = (const uint8_t *)rpc_call_str(call, "digest", &len);
    bool diff[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS];
    users_batch_t b;
    users_batch_init(&b);
    if (len != HTTP_SYNC_DIGEST_LEN || fresh_digest(u) < 0) {
        rpc_call_error(call, RPC_ERR_INTERNAL, "database error");
        return;
    }
    if (users_sync_diff(u->digest, theirs, diff) > 0 &&
        users_sync_collect(u->db, diff, randombytes_random(), &b) < 0) {
        users_batch_free(&b);
        rpc_call_error(call, RPC_ERR_INTERNAL, "database error");
        return;
    }
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 4);
    pack_str(pk, "digest");
    msgpack_pack_bin_with_body(pk, u->digest, HTTP_SYNC_DIGEST_LEN);
    users_sync_pack_rows(pk, &b);
    users_batch_free(&b);
    rpc_call_reply(call);
}

#define ROWS_PARAM(n, what)                                                                        \
    {                                                                                              \
        .name = n, .types = RPC_T_ARRAY, .range = true, .min = 0, .max = HTTP_SYNC_MAX_ROWS,       \
        .description = what " rows (docs/auth.md)"                                                 \
    }

static const rpc_param_t push_params[] = {
    ROWS_PARAM("users", "user"),
    ROWS_PARAM("families", "login session"),
    ROWS_PARAM("revoked", "logged-out token"),
};

static const rpc_param_t sync_params[] = {
    {.name = "digest",
     .types = RPC_T_BYTES,
     .required = true,
     .range = true,
     .min = HTTP_SYNC_DIGEST_LEN,
     .max = HTTP_SYNC_DIGEST_LEN,
     .description = "the caller's bucket digests of users, sessions and revoked tokens"},
};

int users_sync_register(node_t *node)
{
    const rpc_method_t methods[] = {
        {.name = "node.auth_push",
         .description = "Node-to-node: user, session and logged-out token rows to merge.",
         .role = RPC_ROLE_ADMIN,
         .params = push_params,
         .n_params = P2P_ARRAY_LEN(push_params),
         .handler = auth_push_cb,
         .ctx = node,
         .network = true},
        {.name = "node.auth_sync",
         .description = "Node-to-node: bucket digests in; digests and rows of differing "
                        "buckets out.",
         .role = RPC_ROLE_ADMIN,
         .params = sync_params,
         .n_params = P2P_ARRAY_LEN(sync_params),
         .handler = auth_sync_cb,
         .ctx = node,
         .network = true},
    };
    for (size_t i = 0; i < P2P_ARRAY_LEN(methods); i++) {
        int r = rpc_registry_add(node->reg, &methods[i]);
        if (r < 0 && r != -EEXIST) return r;
    }
    return 0;
}
