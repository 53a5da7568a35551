/* peer_client.c: outgoing calls over the peer channel: one connection per peer key, dialled on
 * first use and reused, requests multiplexed by msgid, responses and streamed notifications mapped
 * back to their callbacks, deadlines. The connection machinery is peer.c's. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rpc/peer-internal.h"

/* --- outgoing calls: responses and notifications ---------------------------------------- */

static pcall_t *find_call(pconn_t *c, uint64_t msgid)
{
    for (pcall_t *k = c->calls; k; k = k->next)
        if (k->msgid == msgid) return k;
    return NULL;
}

static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    if (m->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (rpc_str_eq(&m->via.map.ptr[i].key, key)) return &m->via.map.ptr[i].val;
    return NULL;
}

/* One frame from the far side of an outgoing connection. Returns false when c closed. */
static bool on_client_frame(pconn_t *c, const msgpack_object *o)
{
    const msgpack_object *a = o->via.array.ptr;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 3 ||
        a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        c->p->st.protocol_errors++;
        peer_conn_close(c, -EPROTO);
        return false;
    }
    if (a[0].via.u64 == 1 && o->via.array.size == 4 &&
        a[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        pcall_t *k = find_call(c, a[1].via.u64);
        if (!k) return true; /* answered already (timed out): dropped */
        rpc_peer_reply_cb cb;
        void *arg;
        peer_call_take(c, k, &cb, &arg);
        c->p->st.calls_ok++;
        cb(arg, 0, &a[2], &a[3]);
        return !c->closed;
    }
    if (a[0].via.u64 == 2 && o->via.array.size == 3 && rpc_str_eq(&a[1], "peer.bulk")) {
        /* the server offers bulk mode: take it when it names a mode we run (shs.h) */
        const msgpack_object *modes = &a[2];
        bool ours = false;
        for (uint32_t i = 0; modes->type == MSGPACK_OBJECT_ARRAY && i < modes->via.array.size; i++)
            ours = ours || rpc_str_eq(&modes->via.array.ptr[i], "aes256gcm");
        if (ours && c->p->bulk && !c->enc.gcm) {
            rpc_box_dec_allow_switch(c->dec, true);
            if (peer_send_switch(c) < 0) return !c->closed;
        }
        return !c->closed;
    }
    if (a[0].via.u64 == 2 && o->via.array.size == 3) {
        const msgpack_object *params = &a[2], *id;
        uint32_t n = params->type == MSGPACK_OBJECT_ARRAY ? params->via.array.size : 0;
        if (n > 0 && (id = map_get(&params->via.array.ptr[n - 1], "_msgid")) &&
            id->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
            pcall_t *k = find_call(c, id->via.u64);
            msgpack_object inner = *params; /* the params without the trailing {"_msgid": N} */
            inner.via.array.size = n - 1;
            if (k && k->on_notify) k->on_notify(k->arg, &a[1], &inner);
        }
        return !c->closed;
    }
    c->p->st.protocol_errors++; /* a request, or a malformed envelope */
    peer_conn_close(c, -EPROTO);
    return false;
}

/* Decrypted bytes of an outgoing connection. */
bool peer_client_input(pconn_t *c, const uint8_t *buf, size_t len)
{
    if (rpc_decoder_feed(&c->rdec, buf, len) < 0) {
        c->p->st.protocol_errors++;
        peer_conn_close(c, -EPROTO);
        return false;
    }
    for (;;) {
        rpc_frame_t *f = NULL;
        int r = rpc_decoder_next(&c->rdec, &f);
        if (r == 0) return true;
        if (r < 0) {
            c->p->st.protocol_errors++;
            peer_conn_close(c, -EPROTO);
            return false;
        }
        bool alive = on_client_frame(c, &f->unp.data);
        rpc_frame_free(f);
        if (!alive) return false;
    }
}

static void connect_cb(uv_connect_t *req, int status)
{
    pconn_t *c = req->data;
    if (c->closed) return;
    if (status < 0) {
        peer_conn_close(c, status);
        return;
    }
    size_t olen;
    const uint8_t *out = rpc_shs_output(c->shs, &olen);
    c->state = ST_SHAKE;
    uv_tcp_nodelay(&c->tcp, 1);
    if (peer_send_raw(c, out, olen, NULL) < 0) {
        peer_conn_close(c, -ECONNRESET);
        return;
    }
    peer_set_reading(c, true);
    peer_arm(c);
}

/* The open (or opening) outgoing connection to pk, or a new one dialling addr. */
static int get_conn(rpc_peer_t *p, const uint8_t pk[32], const struct sockaddr *addr, pconn_t **out)
{
    for (pconn_t *c = p->conns; c; c = c->next)
        if (c->outbound && !c->kill && !c->draining && memcmp(c->peer_pk, pk, 32) == 0) {
            *out = c;
            return 0;
        }
    if (!peer_make_room(p)) return -ENOBUFS;
    pconn_t *c = peer_conn_new(p, true);
    if (!c) return -ENOMEM;
    memcpy(c->peer_pk, pk, 32);
    uint8_t seed[32];
    randombytes_buf(seed, sizeof(seed));
    int r = rpc_shs_init(c->shs, true, p->net_key, p->pk, p->sk, pk, seed);
    sodium_memzero(seed, sizeof(seed));
    c->creq.data = c;
    if (r == 0) r = uv_tcp_connect(&c->creq, &c->tcp, addr, connect_cb);
    if (r < 0) {
        peer_conn_close(c, r);
        return r;
    }
    p->st.dialed++;
    *out = c;
    return 0;
}

int rpc_peer_call_ex(rpc_peer_t *p, const uint8_t peer_pk[32], const struct sockaddr *addr,
                     const char *method, const msgpack_object *params, uint64_t timeout_ms,
                     rpc_peer_reply_cb cb, rpc_peer_notify_cb on_notify, void *arg)
{
    if (!p || !peer_pk || !addr || !method || !cb ||
        (params && params->type != MSGPACK_OBJECT_ARRAY) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return -EINVAL;
    if (p->stopping) return -ESHUTDOWN;
    pconn_t *c;
    int r = get_conn(p, peer_pk, addr, &c);
    if (r < 0) return r;
    if (c->n_calls >= RPC_PEER_MAX_PENDING || c->queued > RPC_PEER_MAX_OUTPUT) return -ENOBUFS;
    pcall_t *k = calloc(1, sizeof(*k));
    if (!k) return -ENOMEM;
    k->msgid = c->next_msgid++;
    if (c->next_msgid == 0 || c->next_msgid > INT32_MAX) c->next_msgid = 1;
    k->deadline = now_ms() + timeout_ms;
    k->cb = cb;
    k->on_notify = on_notify;
    k->arg = arg;

    msgpack_sbuffer sb;
    msgpack_packer pk;
    rpc_sbuffer_init_for(&sb, 32 + strlen(method) + (params ? rpc_packed_size_bound(params) : 0));
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, k->msgid);
    rpc_pack_cstr(&pk, method);
    if (params)
        msgpack_pack_object(&pk, *params);
    else
        msgpack_pack_array(&pk, 0);
    if (!sb.data) {
        free(k);
        return -ENOMEM;
    }
    if (c->state == ST_OPEN)
        r = peer_send_plain(c, (const uint8_t *)sb.data, sb.size);
    else
        r = p2p_buf_append(&c->early, sb.data, sb.size) < 0 ? -ENOBUFS : 0;
    msgpack_sbuffer_destroy(&sb);
    if (r < 0) {
        free(k);
        return r;
    }
    k->next = c->calls;
    if (c->calls) c->calls->prev = k;
    c->calls = k;
    c->n_calls++;
    c->last_active = now_ms();
    p->st.calls_out++;
    peer_arm(c);
    return 0;
}

int rpc_peer_call(rpc_peer_t *p, const uint8_t peer_pk[32], const struct sockaddr *addr,
                  const char *method, const msgpack_object *params, uint64_t timeout_ms,
                  rpc_peer_reply_cb cb, void *arg)
{
    return rpc_peer_call_ex(p, peer_pk, addr, method, params, timeout_ms, cb, NULL, arg);
}
