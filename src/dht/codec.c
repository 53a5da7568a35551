/* codec.c: DHT message bodies as msgpack arrays [type, txid, ...] and the record serialization.
 *   PING       [0, txid, token|nil, pad|nil]        PONG   [1, txid, seen, token]
 *   FIND_NODE  [2, txid, token|nil, target, pad|nil] NODES  [3, txid, seen, token, nodes]
 *   FIND_VALUE [4, txid, token|nil, key, pad|nil]    VALUES [5, txid, seen, token, nodes, [rec...]]
 *   STORE      [6, txid, token, rec]                 STORED [7, txid, seen, token, status]
 * `seen` is the requester's address as the responder saw it, `token` in a response is the address
 * token the requester must present to STORE. Decoding is strict: any deviation is -EBADMSG. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include <msgpack.h>
#include <sodium.h>

#include "base/base.h"
#include "dht/dht-internal.h"

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool overflow;
} wbuf_t;

static int wbuf_write(void *data, const char *buf, size_t len)
{
    wbuf_t *w = data;
    if (w->len + len > w->cap) {
        w->overflow = true;
        return -1;
    }
    memcpy(w->p + w->len, buf, len);
    w->len += len;
    return 0;
}

static void pack_bin(msgpack_packer *pk, const uint8_t *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

static void pack_token(msgpack_packer *pk, const dht_msg_t *m)
{
    if (m->has_token)
        pack_bin(pk, m->token, DHT_TOKEN_LEN);
    else
        msgpack_pack_nil(pk);
}

static void pack_seen(msgpack_packer *pk, const dht_msg_t *m)
{
    uint8_t a[19];
    int n = dht_addr_pack(&m->seen, a, sizeof(a));
    pack_bin(pk, a, n > 0 ? (size_t)n : 0);
}

int dht_msg_encode(const dht_msg_t *m, size_t pad_to, uint8_t *out, size_t cap)
{
    wbuf_t w = {out, 0, cap, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, wbuf_write);
    bool padded =
        m->type == DHT_MSG_PING || m->type == DHT_MSG_FIND_NODE || m->type == DHT_MSG_FIND_VALUE;
    static const int fields[DHT_MSG_TYPE_COUNT] = {4, 4, 5, 5, 5, 6, 4, 5};
    if (m->type >= DHT_MSG_TYPE_COUNT) return -EINVAL;
    msgpack_pack_array(&pk, (size_t)fields[m->type]);
    msgpack_pack_uint8(&pk, m->type);
    msgpack_pack_uint32(&pk, m->txid);
    switch (m->type) {
    case DHT_MSG_PING:
    case DHT_MSG_FIND_NODE:
    case DHT_MSG_FIND_VALUE:
    case DHT_MSG_STORE:
        pack_token(&pk, m);
        if (m->type == DHT_MSG_FIND_NODE || m->type == DHT_MSG_FIND_VALUE)
            pack_bin(&pk, m->target.b, DHT_ID_LEN);
        if (m->type == DHT_MSG_STORE) pack_bin(&pk, m->record, m->record_len);
        break;
    default:
        pack_seen(&pk, m);
        pack_bin(&pk, m->token, DHT_TOKEN_LEN);
        if (m->type == DHT_MSG_NODES || m->type == DHT_MSG_VALUES)
            pack_bin(&pk, m->nodes, m->nodes_len);
        if (m->type == DHT_MSG_VALUES) {
            msgpack_pack_array(&pk, (size_t)m->nrecords);
            for (int i = 0; i < m->nrecords; i++)
                pack_bin(&pk, m->records[i], m->record_lens[i]);
        }
        if (m->type == DHT_MSG_STORED) msgpack_pack_int(&pk, m->status);
        break;
    }
    if (padded) {
        /* one bin field brings the body to exactly pad_to bytes (bin8 or bin16 header) */
        size_t gap = pad_to > w.len ? pad_to - w.len : 0;
        if (gap < 3) {
            msgpack_pack_nil(&pk);
        } else {
            if (w.overflow || w.len + gap > cap) return -EMSGSIZE;
            uint8_t *h = out + w.len;
            size_t body;
            if (gap - 2 <= 255) {
                body = gap - 2;
                h[0] = 0xc4;
                h[1] = (uint8_t)body;
                w.len += 2;
            } else {
                body = gap - 3;
                h[0] = 0xc5;
                h[1] = (uint8_t)(body >> 8);
                h[2] = (uint8_t)body;
                w.len += 3;
            }
            memset(out + w.len, 0, body);
            w.len += body;
        }
    }
    if (w.overflow) return -EMSGSIZE;
    return (int)w.len;
}

static bool get_bin(const msgpack_object *o, const uint8_t **p, size_t *n)
{
    if (o->type != MSGPACK_OBJECT_BIN) return false;
    *p = (const uint8_t *)o->via.bin.ptr;
    *n = o->via.bin.size;
    return true;
}

static bool get_token(const msgpack_object *o, dht_msg_t *m)
{
    const uint8_t *p;
    size_t n;
    if (o->type == MSGPACK_OBJECT_NIL) {
        m->has_token = false;
        return true;
    }
    if (!get_bin(o, &p, &n) || n != DHT_TOKEN_LEN) return false;
    memcpy(m->token, p, n);
    m->has_token = true;
    return true;
}

static bool get_id(const msgpack_object *o, dht_id_t *id)
{
    const uint8_t *p;
    size_t n;
    if (!get_bin(o, &p, &n) || n != DHT_ID_LEN) return false;
    memcpy(id->b, p, n);
    return true;
}

static bool get_pad(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_NIL || o->type == MSGPACK_OBJECT_BIN;
}

static int decode_obj(dht_msg_t *m, const msgpack_object *root)
{
    static const uint32_t fields[DHT_MSG_TYPE_COUNT] = {4, 4, 5, 5, 5, 6, 4, 5};
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size < 2) return -EBADMSG;
    const msgpack_object *f = root->via.array.ptr;
    if (f[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[0].via.u64 >= DHT_MSG_TYPE_COUNT)
        return -EBADMSG;
    m->type = (uint8_t)f[0].via.u64;
    if (root->via.array.size != fields[m->type]) return -EBADMSG;
    if (f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER || f[1].via.u64 > UINT32_MAX) return -EBADMSG;
    m->txid = (uint32_t)f[1].via.u64;
    const uint8_t *p;
    size_t n;
    switch (m->type) {
    case DHT_MSG_PING:
        return get_token(&f[2], m) && get_pad(&f[3]) ? 0 : -EBADMSG;
    case DHT_MSG_FIND_NODE:
    case DHT_MSG_FIND_VALUE:
        return get_token(&f[2], m) && get_id(&f[3], &m->target) && get_pad(&f[4]) ? 0 : -EBADMSG;
    case DHT_MSG_STORE:
        if (!get_token(&f[2], m) || !m->has_token) return -EBADMSG;
        if (!get_bin(&f[3], &m->record, &m->record_len)) return -EBADMSG;
        return m->record_len >= DHT_RECORD_FIXED ? 0 : -EBADMSG;
    default:
        break;
    }
    /* responses */
    if (!get_bin(&f[2], &p, &n) || dht_addr_unpack(&m->seen, p, n) != (int)n) return -EBADMSG;
    if (!get_token(&f[3], m) || !m->has_token) return -EBADMSG;
    if (m->type == DHT_MSG_NODES || m->type == DHT_MSG_VALUES) {
        if (!get_bin(&f[4], &m->nodes, &m->nodes_len)) return -EBADMSG;
    }
    if (m->type == DHT_MSG_VALUES) {
        const msgpack_object *a = &f[5];
        if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size > DHT_MAX_VALUES_PER_KEY)
            return -EBADMSG;
        m->nrecords = (int)a->via.array.size;
        for (int i = 0; i < m->nrecords; i++) {
            if (!get_bin(&a->via.array.ptr[i], &m->records[i], &m->record_lens[i])) return -EBADMSG;
        }
    }
    if (m->type == DHT_MSG_STORED) {
        if (f[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER && f[4].via.u64 == 0)
            m->status = 0;
        else if (f[4].type == MSGPACK_OBJECT_NEGATIVE_INTEGER && f[4].via.i64 > -4096)
            m->status = (int)f[4].via.i64;
        else
            return -EBADMSG;
    }
    return 0;
}

int dht_msg_decode(dht_msg_t *m, const uint8_t *buf, size_t len)
{
    memset(m, 0, sizeof(*m));
    if (len == 0 || len > DHT_MAX_PLAIN) return -EBADMSG;
    /* structure, declared lengths and depth first: msgpack-c allocates from declared lengths */
    static const p2p_msgpack_limits_t lim = {DHT_MAX_PLAIN, DHT_MSGPACK_DEPTH, DHT_MAX_PLAIN};
    size_t obj_len;
    if (p2p_msgpack_scan(buf, len, &lim, &obj_len) != 0 || obj_len != len) return -EBADMSG;
    /* the zone is sized from the input; a declared length larger than the input fails to parse */
    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, 2048)) return -ENOMEM;
    msgpack_object obj;
    size_t off = 0;
    int rc = -EBADMSG;
    msgpack_unpack_return ur = msgpack_unpack((const char *)buf, len, &off, &zone, &obj);
    if (ur == MSGPACK_UNPACK_SUCCESS && off == len) rc = decode_obj(m, &obj);
    msgpack_zone_destroy(&zone);
    return rc;
}

int dht_record_pack(const dht_record_t *r, uint8_t *out, size_t cap)
{
    size_t need = DHT_RECORD_FIXED + r->value_len;
    if (r->value_len > DHT_MAX_VALUE || need > cap) return -EMSGSIZE;
    uint8_t *p = out;
    memcpy(p, r->key.b, DHT_ID_LEN), p += DHT_ID_LEN;
    memcpy(p, r->publisher, DHT_PK_LEN), p += DHT_PK_LEN;
    p2p_put_be64(p, r->seq), p += 8;
    p2p_put_be64(p, r->expires), p += 8;
    p[0] = (uint8_t)(r->value_len >> 8), p[1] = (uint8_t)r->value_len, p += 2;
    memcpy(p, r->value, r->value_len), p += r->value_len;
    memcpy(p, r->sig, DHT_SIG_LEN);
    return (int)need;
}

int dht_record_unpack(dht_record_t *r, const uint8_t *in, size_t len)
{
    if (len < DHT_RECORD_FIXED) return -EBADMSG;
    const uint8_t *p = in;
    memcpy(r->key.b, p, DHT_ID_LEN), p += DHT_ID_LEN;
    memcpy(r->publisher, p, DHT_PK_LEN), p += DHT_PK_LEN;
    r->seq = p2p_get_be64(p), p += 8;
    r->expires = p2p_get_be64(p), p += 8;
    r->value_len = (uint16_t)(p[0] << 8 | p[1]), p += 2;
    if (r->value_len > DHT_MAX_VALUE || len != DHT_RECORD_FIXED + (size_t)r->value_len)
        return -EBADMSG;
    memcpy(r->value, p, r->value_len), p += r->value_len;
    memcpy(r->sig, p, DHT_SIG_LEN);
    return 0;
}

/* The signed message: "p2p-rec1" | key | seq | expires | value_len | value. */
static size_t signed_bytes(const dht_record_t *r, uint8_t *out)
{
    uint8_t *p = out;
    memcpy(p, "p2p-rec1", 8), p += 8;
    memcpy(p, r->key.b, DHT_ID_LEN), p += DHT_ID_LEN;
    p2p_put_be64(p, r->seq), p += 8;
    p2p_put_be64(p, r->expires), p += 8;
    p[0] = (uint8_t)(r->value_len >> 8), p[1] = (uint8_t)r->value_len, p += 2;
    memcpy(p, r->value, r->value_len), p += r->value_len;
    return (size_t)(p - out);
}

void dht_record_sign(dht_record_t *r, const uint8_t sk[DHT_SK_LEN])
{
    uint8_t msg[8 + DHT_ID_LEN + 18 + DHT_MAX_VALUE];
    size_t n = signed_bytes(r, msg);
    crypto_sign_detached(r->sig, NULL, msg, n, sk);
}

int dht_record_verify(const dht_record_t *r)
{
    uint8_t msg[8 + DHT_ID_LEN + 18 + DHT_MAX_VALUE];
    if (r->value_len > DHT_MAX_VALUE) return -EBADMSG;
    size_t n = signed_bytes(r, msg);
    return crypto_sign_verify_detached(r->sig, msg, n, r->publisher) == 0 ? 0 : -EBADMSG;
}
