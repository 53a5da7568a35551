/* router.c: calls addressed to other nodes. Resolves the NODE part of system.NODE.DOMAIN.METHOD
 * (a name, @idprefix, or a glob) against the membership view (then the DHT for names the view does
 * not know yet), forwards the call over the peer channel with the caller's token, the time left and
 * this node as origin, and for globs fans out to every matching node under one deadline, streaming
 * each node's answer as an "rpc.partial" notification when asked and answering one map that covers
 * every matched node. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "node/router.h"
#include "rpc/rpc.h"

typedef struct fan fan_t;

/* One target of a call. */
typedef struct leg {
    fan_t *fan;
    router_target_t t;
    bool done;
    msgpack_sbuffer answer; /* packed {"result": …} or {"error": …} */
} leg_t;

struct fan {
    node_t *node;
    rpc_call_t *call;
    bool glob; /* answer with a map even for one match */
    int n, left;
    leg_t *legs;
    char method[RPC_MAX_METHOD_NAME + 1]; /* system.local.DOMAIN.METHOD */
    msgpack_sbuffer params;               /* the forwarded params array */
};

static bool is_glob(const char *s, size_t n)
{
    return memchr(s, '*', n) || memchr(s, '?', n);
}

/* Packs [ {named args without reserved ones, _timeout, _token, _origin} ]. */
static void pack_forward_params(msgpack_sbuffer *sb, rpc_call_t *call, double timeout_s,
                                const char *origin)
{
    msgpack_packer pk;
    const msgpack_object *named = rpc_call_params(call);
    if (named) { /* the forwarded params hold a file chunk: sized at once, not grown by doubling */
        msgpack_sbuffer_destroy(sb);
        rpc_sbuffer_init_for(sb, 256 + strlen(rpc_call_token(call)) + rpc_packed_size_bound(named));
    }
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    uint32_t keep = 0;
    for (uint32_t i = 0; named && i < named->via.map.size; i++) {
        const msgpack_object *k = &named->via.map.ptr[i].key;
        if (!(k->type == MSGPACK_OBJECT_STR && k->via.str.size && k->via.str.ptr[0] == '_')) keep++;
    }
    const char *token = rpc_call_token(call);
    bool stream = rpc_call_stream(call);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, keep + 3 + (stream ? 1 : 0));
    for (uint32_t i = 0; named && i < named->via.map.size; i++) {
        const msgpack_object_kv *kv = &named->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size &&
            kv->key.via.str.ptr[0] == '_')
            continue;
        msgpack_pack_object(&pk, kv->key);
        msgpack_pack_object(&pk, kv->val);
    }
    msgpack_pack_str_with_body(&pk, "_timeout", 8);
    msgpack_pack_double(&pk, timeout_s);
    msgpack_pack_str_with_body(&pk, "_token", 6);
    msgpack_pack_str_with_body(&pk, token, strlen(token));
    msgpack_pack_str_with_body(&pk, "_origin", 7);
    msgpack_pack_str_with_body(&pk, origin, strlen(origin));
    if (stream) { /* the far node streams too (job output...); its notifications pass through */
        msgpack_pack_str_with_body(&pk, "_stream", 7);
        msgpack_pack_true(&pk);
    }
}

static void pack_error(msgpack_packer *pk, int code, const char *msg)
{
    msgpack_pack_map(pk, 2);
    msgpack_pack_str_with_body(pk, "code", 4);
    msgpack_pack_int(pk, code);
    msgpack_pack_str_with_body(pk, "message", 7);
    msgpack_pack_str_with_body(pk, msg, strlen(msg));
}

static void fan_free(fan_t *f)
{
    for (int i = 0; i < f->n; i++)
        msgpack_sbuffer_destroy(&f->legs[i].answer);
    msgpack_sbuffer_destroy(&f->params);
    free(f->legs);
    free(f);
}

/* Every leg answered: one map {name: answer} (globs), or the single answer passed through. */
static void fan_finish(fan_t *f)
{
    rpc_call_t *call = f->call;
    if (!call) { /* answered directly by leg_reply */
        fan_free(f);
        return;
    }
    if (!f->glob && f->n == 1) {
        leg_t *l = &f->legs[0];
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        if (msgpack_unpack_next(&u, l->answer.data, l->answer.size, &off) ==
                MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_MAP && u.data.via.map.size == 1) {
            const msgpack_object_kv *kv = &u.data.via.map.ptr[0];
            if (kv->key.via.str.size == 5 && memcmp(kv->key.via.str.ptr, "error", 5) == 0) {
                rpc_call_error_object(call, &kv->val);
            } else {
                msgpack_pack_object(rpc_call_packer(call), kv->val);
                rpc_call_reply(call);
            }
        } else {
            rpc_call_error(call, RPC_ERR_INTERNAL, "unreadable answer");
        }
        msgpack_unpacked_destroy(&u);
        fan_free(f);
        return;
    }
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, (size_t)f->n);
    for (int i = 0; i < f->n; i++) {
        leg_t *l = &f->legs[i];
        msgpack_pack_str_with_body(pk, l->t.name, strlen(l->t.name));
        msgpack_sbuffer_write(pk->data, l->answer.data, l->answer.size);
    }
    rpc_call_reply(call);
    fan_free(f);
}

/* Records one leg's answer (already packed into l->answer) and streams it when asked. */
static void leg_done(leg_t *l)
{
    fan_t *f = l->fan;
    if (l->done) return;
    l->done = true;
    if (f->glob && rpc_call_stream(f->call) && !rpc_call_cancelled(f->call)) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        /* params = [ {"node": NAME, "result"|"error": …} ] */
        msgpack_pack_array(&pk, 1);
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "node", 4);
        msgpack_pack_str_with_body(&pk, l->t.name, strlen(l->t.name));
        /* the leg's answer is a one-entry map: splice its key and value in */
        msgpack_sbuffer_write(&sb, l->answer.data + 1, l->answer.size - 1);
        rpc_call_notify(f->call, "rpc.partial", sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    if (--f->left == 0) fan_finish(f);
}

static void leg_error(leg_t *l, int code, const char *msg)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &l->answer, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "error", 5);
    pack_error(&pk, code, msg);
    leg_done(l);
}

static void leg_reply(void *arg, int status, const msgpack_object *err, const msgpack_object *res)
{
    leg_t *l = arg;
    fan_t *f = l->fan;
    if (status == 0 && !f->glob && f->n == 1) {
        /* one named target: pass its answer straight through, packed once */
        rpc_call_t *call = f->call;
        if (err && err->type != MSGPACK_OBJECT_NIL) {
            rpc_call_error_object(call, err);
        } else if (res) {
            msgpack_sbuffer sb; /* sized at once: a file chunk is not grown by doubling */
            msgpack_packer pk;
            rpc_sbuffer_init_for(&sb, rpc_packed_size_bound(res));
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_object(&pk, *res);
            rpc_call_reply_sbuffer(call, &sb);
            msgpack_sbuffer_destroy(&sb);
        } else {
            msgpack_pack_nil(rpc_call_packer(call));
            rpc_call_reply(call);
        }
        l->done = true;
        f->call = NULL; /* answered */
        if (--f->left == 0) fan_free(f);
        return;
    }
    if (status == -ETIMEDOUT) {
        leg_error(l, RPC_ERR_UNAVAILABLE, "node did not answer before the deadline");
        return;
    }
    if (status < 0) {
        char msg[160];
        snprintf(msg, sizeof(msg), "node unreachable: %s", strerror(-status));
        leg_error(l, RPC_ERR_UNAVAILABLE, msg);
        return;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &l->answer, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    if (err && err->type != MSGPACK_OBJECT_NIL) {
        msgpack_pack_str_with_body(&pk, "error", 5);
        msgpack_pack_object(&pk, *err);
    } else {
        msgpack_pack_str_with_body(&pk, "result", 6);
        if (res)
            msgpack_pack_object(&pk, *res);
        else
            msgpack_pack_nil(&pk);
    }
    leg_done(l);
}

/* A notification the far node streamed for this leg (e.g. job.output): passed to the caller as
 * is. rpc.partial is the router's own word for a leg's answer, so a far one is not relayed. */
static void leg_notify(void *arg, const msgpack_object *method, const msgpack_object *params)
{
    leg_t *l = arg;
    fan_t *f = l->fan;
    if (l->done || !f->call || rpc_call_cancelled(f->call) || !rpc_call_stream(f->call)) return;
    if (method->type != MSGPACK_OBJECT_STR || method->via.str.size == 0 ||
        method->via.str.size > RPC_MAX_METHOD_NAME || params->type != MSGPACK_OBJECT_ARRAY)
        return;
    char name[RPC_MAX_METHOD_NAME + 1];
    memcpy(name, method->via.str.ptr, method->via.str.size);
    name[method->via.str.size] = '\0';
    if (strcmp(name, "rpc.partial") == 0) return;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *params);
    rpc_call_notify(f->call, name, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Starts every leg. Legs that cannot start answer at once. */
static void fan_start(fan_t *f, uint64_t timeout_ms)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_next(&u, f->params.data, f->params.size, &off);
    /* legs may finish (and free f) synchronously: count down from a private copy */
    int n = f->n;
    leg_t **legs = malloc(sizeof(leg_t *) * (size_t)n);
    if (!legs) {
        msgpack_unpacked_destroy(&u);
        for (int i = 0; i < n; i++)
            leg_error(&f->legs[i], RPC_ERR_INTERNAL, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++)
        legs[i] = &f->legs[i];
    f->left++; /* hold: f stays alive until every leg started */
    for (int i = 0; i < n; i++) {
        leg_t *l = legs[i];
        if (!l->t.up) {
            leg_error(l, RPC_ERR_UNAVAILABLE, "node is down");
            continue;
        }
        int r = router_transport_call(f->node, &l->t, f->method, &u.data, timeout_ms, leg_reply,
                                      leg_notify, l);
        if (r < 0) leg_reply(l, r, NULL, NULL);
    }
    free(legs);
    msgpack_unpacked_destroy(&u);
    if (--f->left == 0) fan_finish(f);
}

void router_handle(rpc_call_t *call, void *ctx)
{
    node_t *node = ctx;
    size_t alen;
    const char *addr = rpc_call_method(call, &alen);
    /* system.NODE.DOMAIN.METHOD */
    const char *d1 = memchr(addr, '.', alen);
    const char *d2 = d1 ? memchr(d1 + 1, '.', alen - (size_t)(d1 + 1 - addr)) : NULL;
    if (!d1 || !d2 || (size_t)(d1 - addr) != 6 || memcmp(addr, "system", 6) != 0) {
        rpc_call_error(call, RPC_ERR_METHOD_NOT_FOUND, "no such method");
        return;
    }
    const char *sel = d1 + 1;
    size_t sel_len = (size_t)(d2 - sel);
    size_t rest_len = alen - (size_t)(d2 + 1 - addr);
    fan_t *f = calloc(1, sizeof(*f));
    if (!f) {
        rpc_call_error(call, RPC_ERR_INTERNAL, "out of memory");
        return;
    }
    f->node = node;
    f->call = call;
    f->glob = is_glob(sel, sel_len);
    msgpack_sbuffer_init(&f->params);
    snprintf(f->method, sizeof(f->method), "system.local.%.*s", (int)rest_len, d2 + 1);

    router_target_t *targets = NULL;
    int n = router_resolve(node, sel, sel_len, &targets);
    if (n < 0) {
        fan_free(f);
        if (n == -EINVAL)
            rpc_call_error(call, RPC_ERR_INVALID_PARAMS, "bad node selector in the address");
        else if (n == -ENOTUNIQ)
            rpc_call_error(call, RPC_ERR_INVALID_PARAMS, "node id prefix matches several nodes");
        else
            rpc_call_error(call, RPC_ERR_INTERNAL, "resolution failed: %s", strerror(-n));
        return;
    }
    if (n == 0 && !f->glob) {
        /* not in the view: the DHT may know it (answers NOT_FOUND within 2 s otherwise) */
        fan_free(f);
        router_resolve_remote(node, call, sel, sel_len);
        return;
    }
    f->n = n;
    f->left = n;
    f->legs = calloc((size_t)(n ? n : 1), sizeof(leg_t));
    if (!f->legs) {
        free(targets);
        fan_free(f);
        rpc_call_error(call, RPC_ERR_INTERNAL, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++) {
        f->legs[i].fan = f;
        f->legs[i].t = targets[i];
        msgpack_sbuffer_init(&f->legs[i].answer);
    }
    free(targets);
    if (n == 0) { /* a glob matching nothing: an empty map */
        msgpack_pack_map(rpc_call_packer(call), 0);
        rpc_call_reply(call);
        fan_free(f);
        return;
    }
    uint64_t now = router_now(node), deadline = rpc_call_deadline(call);
    uint64_t left = deadline > now ? deadline - now : 1;
    /* the far node gets the time left, less a margin for the way back */
    uint64_t far = left > 40 ? left - 20 : left;
    pack_forward_params(&f->params, call, (double)far / 1000.0, node->cfg.name);
    fan_start(f, left);
}

void router_forward_one(node_t *node, rpc_call_t *call, const router_target_t *t)
{
    size_t alen;
    const char *addr = rpc_call_method(call, &alen);
    const char *d1 = memchr(addr, '.', alen);
    const char *d2 = d1 ? memchr(d1 + 1, '.', alen - (size_t)(d1 + 1 - addr)) : NULL;
    fan_t *f = calloc(1, sizeof(*f));
    leg_t *legs = calloc(1, sizeof(leg_t));
    if (!f || !legs || !d2) {
        free(f);
        free(legs);
        rpc_call_error(call, RPC_ERR_INTERNAL, "out of memory");
        return;
    }
    f->node = node;
    f->call = call;
    f->n = f->left = 1;
    f->legs = legs;
    legs[0].fan = f;
    legs[0].t = *t;
    msgpack_sbuffer_init(&legs[0].answer);
    msgpack_sbuffer_init(&f->params);
    snprintf(f->method, sizeof(f->method), "system.local.%.*s",
             (int)(alen - (size_t)(d2 + 1 - addr)), d2 + 1);
    uint64_t now = router_now(node), deadline = rpc_call_deadline(call);
    uint64_t left = deadline > now ? deadline - now : 1;
    uint64_t far = left > 40 ? left - 20 : left;
    pack_forward_params(&f->params, call, (double)far / 1000.0, node->cfg.name);
    fan_start(f, left);
}
