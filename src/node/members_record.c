/* members_record.c: the signed node record codec (see members.h) and the msgpack helpers the
 * membership code shares. Pure: no I/O, no clock.
 *
 * Record bytes: msgpack [body: bin, sig: bin(64)], sig = Ed25519 over SIGN_DOMAIN || body, body =
 * [1, name, public_key: bin(32), [addr...], http, version, [domain...], [tag...], start_ms, seq,
 * heartbeat]. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "node/config.h"
#include "node/members-internal.h"

bool members_printable(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)p[i] < 0x20 || (uint8_t)p[i] > 0x7e) return false;
    return true;
}

/* --- msgpack output --- */

int members_buf_write(void *data, const char *p, size_t n)
{
    bw_t *w = data;
    if (p2p_buf_append(w->b, p, n) == 0) return 0;
    w->overflow = true;
    return -1;
}

int members_fbuf_write(void *data, const char *p, size_t n)
{
    fbuf_t *f = data;
    if (f->len + n > f->cap) {
        f->len = f->cap + 1; /* overflow marker */
        return -1;
    }
    memcpy(f->p + f->len, p, n);
    f->len += n;
    return 0;
}

void members_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void members_pack_bin(msgpack_packer *pk, const void *p, size_t n)
{
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, p, n);
}

/* --- msgpack input: scan first (msgpack-c reserves from declared lengths), then unpack --- */

int members_unpack(const uint8_t *buf, size_t len, size_t max_len, size_t depth, uint64_t objs,
                   msgpack_zone *zone, msgpack_object *obj)
{
    p2p_msgpack_limits_t lim = {max_len, depth, objs};
    size_t flen, off = 0;
    if (len == 0 || len > max_len) return -EBADMSG;
    if (p2p_msgpack_scan(buf, len, &lim, &flen) != 0 || flen != len) return -EBADMSG;
    if (!msgpack_zone_init(zone, 4096)) return -ENOMEM;
    if (msgpack_unpack((const char *)buf, len, &off, zone, obj) != MSGPACK_UNPACK_SUCCESS ||
        off != len) {
        msgpack_zone_destroy(zone);
        return -EBADMSG;
    }
    return 0;
}

bool members_get_str(const msgpack_object *o, char *out, size_t cap)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= cap) return false;
    if (!members_printable(o->via.str.ptr, o->via.str.size)) return false;
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = 0;
    return true;
}

bool members_get_u64(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return false;
    *v = o->via.u64;
    return true;
}

/* Copies a string array of at most max items, each below cap bytes, into out (stride cap). */
bool members_get_strs(const msgpack_object *o, char *out, size_t cap, size_t max, uint8_t *n)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > max) return false;
    for (uint32_t i = 0; i < o->via.array.size; i++)
        if (!members_get_str(&o->via.array.ptr[i], out + i * cap, cap)) return false;
    *n = (uint8_t)o->via.array.size;
    return true;
}

/* --- records --- */

static int decode_body(members_record_t *r, const msgpack_object *b)
{
    if (b->type != MSGPACK_OBJECT_ARRAY || b->via.array.size != BODY_FIELDS) return -EBADMSG;
    const msgpack_object *f = b->via.array.ptr;
    uint64_t v;
    if (!members_get_u64(&f[0], &v) || v != RECORD_VERSION) return -EBADMSG;
    if (!members_get_str(&f[1], r->name, sizeof(r->name)) || !node_config_valid_name(r->name))
        return -EBADMSG;
    if (f[2].type != MSGPACK_OBJECT_BIN || f[2].via.bin.size != DHT_PK_LEN) return -EBADMSG;
    memcpy(r->public_key, f[2].via.bin.ptr, DHT_PK_LEN);
    if (!members_get_strs(&f[3], r->addrs[0], sizeof(r->addrs[0]), MEMBERS_MAX_ADDRS, &r->naddrs) ||
        !members_get_str(&f[4], r->http, sizeof(r->http)) ||
        !members_get_str(&f[5], r->version, sizeof(r->version)) ||
        !members_get_strs(&f[6], r->domains[0], sizeof(r->domains[0]), MEMBERS_MAX_DOMAINS,
                          &r->ndomains) ||
        !members_get_strs(&f[7], r->tags[0], sizeof(r->tags[0]), MEMBERS_MAX_TAGS, &r->ntags))
        return -EBADMSG;
    for (int i = 0; i < r->ntags; i++) {
        const char *eq = strchr(r->tags[i], '=');
        if (!eq || eq == r->tags[i]) return -EBADMSG;
    }
    if (!members_get_u64(&f[8], &r->start_ms) || !members_get_u64(&f[9], &r->seq) ||
        !members_get_u64(&f[10], &r->heartbeat))
        return -EBADMSG;
    return 0;
}

int members_record_decode(members_record_t *r, const uint8_t *buf, size_t len, bool verify)
{
    msgpack_zone z1, z2;
    msgpack_object o, b;
    memset(r, 0, sizeof(*r));
    if (members_unpack(buf, len, MEMBERS_RECORD_MAX, 2, 4, &z1, &o) != 0) return -EBADMSG;
    int rc = -EBADMSG;
    const msgpack_object *f = o.via.array.ptr;
    if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size != 2 ||
        f[0].type != MSGPACK_OBJECT_BIN || f[1].type != MSGPACK_OBJECT_BIN ||
        f[1].via.bin.size != DHT_SIG_LEN)
        goto fail;
    const uint8_t *body = (const uint8_t *)f[0].via.bin.ptr;
    size_t blen = f[0].via.bin.size;
    memcpy(r->sig, f[1].via.bin.ptr, DHT_SIG_LEN);
    uint64_t objs = 16 + MEMBERS_MAX_ADDRS + MEMBERS_MAX_DOMAINS + MEMBERS_MAX_TAGS;
    if (members_unpack(body, blen, MEMBERS_RECORD_MAX, 2, objs, &z2, &b) != 0) goto fail;
    rc = decode_body(r, &b);
    msgpack_zone_destroy(&z2);
    if (rc == 0 && verify) {
        uint8_t msg[SIGN_DOMAIN_LEN + MEMBERS_RECORD_MAX];
        memcpy(msg, SIGN_DOMAIN, SIGN_DOMAIN_LEN);
        memcpy(msg + SIGN_DOMAIN_LEN, body, blen);
        if (crypto_sign_verify_detached(r->sig, msg, SIGN_DOMAIN_LEN + blen, r->public_key) != 0)
            rc = -EBADMSG;
    }
fail:
    msgpack_zone_destroy(&z1);
    return rc;
}

static void pack_strs(msgpack_packer *pk, const char *s, size_t stride, size_t n)
{
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        members_pack_str(pk, s + i * stride);
}

int members_record_sign(members_record_t *r, const uint8_t sk[DHT_SK_LEN], uint8_t *out, size_t cap)
{
    uint8_t msg[SIGN_DOMAIN_LEN + MEMBERS_RECORD_MAX];
    fbuf_t body = {msg + SIGN_DOMAIN_LEN, 0, MEMBERS_RECORD_MAX};
    msgpack_packer pk;
    if (r->naddrs > MEMBERS_MAX_ADDRS || r->ndomains > MEMBERS_MAX_DOMAINS ||
        r->ntags > MEMBERS_MAX_TAGS)
        return -EINVAL;
    msgpack_packer_init(&pk, &body, members_fbuf_write);
    msgpack_pack_array(&pk, BODY_FIELDS);
    msgpack_pack_uint8(&pk, RECORD_VERSION);
    members_pack_str(&pk, r->name);
    members_pack_bin(&pk, r->public_key, DHT_PK_LEN);
    pack_strs(&pk, r->addrs[0], sizeof(r->addrs[0]), r->naddrs);
    members_pack_str(&pk, r->http);
    members_pack_str(&pk, r->version);
    pack_strs(&pk, r->domains[0], sizeof(r->domains[0]), r->ndomains);
    pack_strs(&pk, r->tags[0], sizeof(r->tags[0]), r->ntags);
    msgpack_pack_uint64(&pk, r->start_ms);
    msgpack_pack_uint64(&pk, r->seq);
    msgpack_pack_uint64(&pk, r->heartbeat);
    if (body.len > body.cap) return -EMSGSIZE;
    memcpy(msg, SIGN_DOMAIN, SIGN_DOMAIN_LEN);
    crypto_sign_detached(r->sig, NULL, msg, SIGN_DOMAIN_LEN + body.len, sk);
    fbuf_t o = {out, 0, P2P_MIN(cap, (size_t)MEMBERS_RECORD_MAX)};
    msgpack_packer_init(&pk, &o, members_fbuf_write);
    msgpack_pack_array(&pk, 2);
    members_pack_bin(&pk, body.p, body.len);
    members_pack_bin(&pk, r->sig, DHT_SIG_LEN);
    if (o.len > o.cap) return -EMSGSIZE;
    /* the record rules are the decoder's: what we sign must be what every peer accepts */
    members_record_t check;
    if (members_record_decode(&check, out, o.len, false) != 0) return -EINVAL;
    return (int)o.len;
}
