/* addr.c: ids (XOR distance, prefixes, key derivation), compact addresses and the core's
 * deterministic random generator. Pure functions. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dht/dht-internal.h"

int dht_id_cmp_dist(const dht_id_t *target, const dht_id_t *a, const dht_id_t *b)
{
    for (int i = 0; i < DHT_ID_LEN; i++) {
        uint8_t da = a->b[i] ^ target->b[i], db = b->b[i] ^ target->b[i];
        if (da != db) return da < db ? -1 : 1;
    }
    return 0;
}

int dht_id_common_prefix(const dht_id_t *a, const dht_id_t *b)
{
    for (int i = 0; i < DHT_ID_LEN; i++) {
        uint8_t x = a->b[i] ^ b->b[i];
        if (x) return i * 8 + __builtin_clz((unsigned)x) - 24;
    }
    return 256;
}

void dht_key_derive(dht_id_t *out, const char *ns, const char *name, size_t name_len)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, DHT_ID_LEN);
    crypto_generichash_update(&st, (const uint8_t *)"p2p-admin/", 10);
    crypto_generichash_update(&st, (const uint8_t *)ns, strlen(ns));
    crypto_generichash_update(&st, (const uint8_t *)"/", 1);
    crypto_generichash_update(&st, (const uint8_t *)name, name_len);
    crypto_generichash_final(&st, out->b, DHT_ID_LEN);
}

void dht_id_from_pk(dht_id_t *out, const uint8_t pk[DHT_PK_LEN])
{
    crypto_generichash(out->b, DHT_ID_LEN, pk, DHT_PK_LEN, NULL, 0);
}

bool dht_addr_equal(const dht_addr_t *a, const dht_addr_t *b)
{
    if (a->family != b->family || a->port != b->port) return false;
    return memcmp(a->ip, b->ip, a->family == 4 ? 4 : 16) == 0;
}

bool dht_addr_is_loopback(const dht_addr_t *a)
{
    if (a->family == 4) return a->ip[0] == 127;
    static const uint8_t lo6[16] = {[15] = 1};
    return a->family == 6 && memcmp(a->ip, lo6, 16) == 0;
}

bool dht_addr_same_subnet(const dht_addr_t *a, const dht_addr_t *b)
{
    if (a->family != b->family) return false;
    return memcmp(a->ip, b->ip, a->family == 4 ? 3 : 6) == 0;
}

int dht_addr_pack(const dht_addr_t *a, uint8_t *out, size_t cap)
{
    size_t iplen = a->family == 4 ? 4 : a->family == 6 ? 16 : 0;
    if (!iplen || cap < iplen + 3) return -EINVAL;
    out[0] = a->family;
    memcpy(out + 1, a->ip, iplen);
    out[1 + iplen] = (uint8_t)(a->port >> 8);
    out[2 + iplen] = (uint8_t)a->port;
    return (int)(iplen + 3);
}

int dht_addr_unpack(dht_addr_t *a, const uint8_t *in, size_t len)
{
    if (len < 1) return -EINVAL;
    size_t iplen = in[0] == 4 ? 4 : in[0] == 6 ? 16 : 0;
    if (!iplen || len < iplen + 3) return -EINVAL;
    memset(a, 0, sizeof(*a));
    a->family = in[0];
    memcpy(a->ip, in + 1, iplen);
    a->port = (uint16_t)(in[1 + iplen] << 8 | in[2 + iplen]);
    if (a->port == 0) return -EINVAL;
    return (int)(iplen + 3);
}

void dht_addr_from_sockaddr(dht_addr_t *out, const struct sockaddr *sa)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->family = 4;
        memcpy(out->ip, &in->sin_addr, 4);
        out->port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        const uint8_t *b = in6->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(b, mapped, 12) == 0) {
            out->family = 4;
            memcpy(out->ip, b + 12, 4);
        } else {
            out->family = 6;
            memcpy(out->ip, b, 16);
        }
        out->port = ntohs(in6->sin6_port);
    }
}

int dht_addr_format(const dht_addr_t *a, char *out, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (a->family == 4) {
        inet_ntop(AF_INET, a->ip, ip, sizeof(ip));
        return snprintf(out, cap, "%s:%u", ip, a->port);
    }
    if (a->family == 6) {
        inet_ntop(AF_INET6, a->ip, ip, sizeof(ip));
        return snprintf(out, cap, "[%s]:%u", ip, a->port);
    }
    return snprintf(out, cap, "-");
}

int dht_addr_parse(dht_addr_t *out, const char *s)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon;
    memset(out, 0, sizeof(*out));
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host)) return -EINVAL;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        if (inet_pton(AF_INET6, host, out->ip) != 1) return -EINVAL;
        out->family = 6;
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof(host)) return -EINVAL;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        if (inet_pton(AF_INET, host, out->ip) != 1) return -EINVAL;
        out->family = 4;
    }
    char *endp;
    long port = strtol(colon + 1, &endp, 10);
    if (*endp || endp == colon + 1 || port < 1 || port > 65535) return -EINVAL;
    out->port = (uint16_t)port;
    return 0;
}

void dht_rng_init(dht_rng_t *r, const uint8_t seed[32])
{
    memcpy(r->key, seed, 32);
    r->counter = 0;
    r->pos = sizeof(r->buf);
}

void dht_rng_bytes(dht_rng_t *r, void *out, size_t n)
{
    uint8_t *o = out;
    while (n > 0) {
        if (r->pos == sizeof(r->buf)) {
            uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
            memcpy(nonce, &r->counter,
                   sizeof(r->counter) < sizeof(nonce) ? sizeof(r->counter) : sizeof(nonce));
            crypto_stream_chacha20(r->buf, sizeof(r->buf), nonce, r->key);
            r->counter++;
            r->pos = 0;
        }
        size_t take = sizeof(r->buf) - r->pos;
        if (take > n) take = n;
        memcpy(o, r->buf + r->pos, take);
        r->pos += take;
        o += take;
        n -= take;
    }
}

uint32_t dht_rng_u32(dht_rng_t *r)
{
    uint32_t v;
    dht_rng_bytes(r, &v, sizeof(v));
    return v;
}
