/* testnet.h: a tiny in-memory network for DHT unit tests: N cores, a FIFO of datagrams, a
 * virtual clock. Deterministic; no sockets. */
#ifndef P2P_TEST_TESTNET_H
#define P2P_TEST_TESTNET_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dht/dht-internal.h"

#define TN_MAX_NODES 64
#define TN_QUEUE     65536

typedef struct tn_pkt {
    int from, to;
    uint16_t len;
    uint8_t buf[DHT_MAX_DATAGRAM];
} tn_pkt_t;

typedef struct testnet {
    dht_t *nodes[TN_MAX_NODES];
    bool down[TN_MAX_NODES];
    int n;
    uint64_t now;
    tn_pkt_t *q;
    size_t head, tail;
    int sender; /* set while a node runs */
    uint8_t netkey[32];
    uint8_t pk[TN_MAX_NODES][32];
    uint8_t sk[TN_MAX_NODES][64];
    /* capture: when set, every datagram sent is copied here too */
    uint8_t last[DHT_MAX_DATAGRAM];
    size_t last_len;
    int last_from, last_to;
} testnet_t;

static inline dht_addr_t tn_addr(int i)
{
    dht_addr_t a = {.family = 4, .ip = {10, 0, (uint8_t)(i >> 8), (uint8_t)i}, .port = 4000};
    return a;
}

static inline int tn_index(const dht_addr_t *a)
{
    return a->ip[2] << 8 | a->ip[3];
}

typedef struct tn_ctx {
    testnet_t *net;
    int idx;
} tn_ctx_t;

static tn_ctx_t tn_ctxs[TN_MAX_NODES];

static inline void tn_send(void *ctx, const uint8_t *buf, size_t len, const dht_addr_t *to)
{
    tn_ctx_t *c = ctx;
    testnet_t *net = c->net;
    if (net->tail - net->head >= TN_QUEUE) return;
    tn_pkt_t *p = &net->q[net->tail++ % TN_QUEUE];
    p->from = c->idx;
    p->to = tn_index(to);
    p->len = (uint16_t)len;
    memcpy(p->buf, buf, len);
    memcpy(net->last, buf, len);
    net->last_len = len;
    net->last_from = c->idx;
    net->last_to = p->to;
}

static inline dht_t *tn_make_node(testnet_t *net, int i, const uint8_t *netkey)
{
    dht_config_t cfg = {0};
    uint8_t seed[32] = {0};
    seed[0] = (uint8_t)i;
    seed[1] = (uint8_t)(i >> 8);
    seed[2] = 0x5a;
    crypto_sign_seed_keypair(cfg.public_key, cfg.secret_key, seed);
    memcpy(net->pk[i], cfg.public_key, 32);
    memcpy(net->sk[i], cfg.secret_key, 64);
    memcpy(cfg.network_key, netkey, 32);
    memcpy(cfg.seed, seed, 32);
    cfg.seed[3] = 1;
    cfg.epoch = 1000 + (uint64_t)i;
    cfg.send = tn_send;
    tn_ctxs[i].net = net;
    tn_ctxs[i].idx = i;
    cfg.send_ctx = &tn_ctxs[i];
    dht_t *d = dht_new(&cfg, net->now);
    if (d) dht_set_wall_clock(d, net->now, 1700000000000ull);
    return d;
}

static inline void tn_init(testnet_t *net, int n)
{
    memset(net, 0, sizeof(*net));
    net->q = calloc(TN_QUEUE, sizeof(tn_pkt_t));
    net->now = 1000;
    memset(net->netkey, 7, 32);
    net->n = n;
    for (int i = 0; i < n; i++)
        net->nodes[i] = tn_make_node(net, i, net->netkey);
}

static inline void tn_free(testnet_t *net)
{
    for (int i = 0; i < net->n; i++)
        dht_free(net->nodes[i]);
    free(net->q);
}

/* Delivers queued datagrams (each after 1 ms) and runs timers until quiet or `ms` pass. */
static inline void tn_run(testnet_t *net, uint64_t ms)
{
    uint64_t end = net->now + ms;
    while (net->now < end) {
        size_t batch = net->tail - net->head;
        for (size_t k = 0; k < batch; k++) {
            tn_pkt_t *p = &net->q[net->head++ % TN_QUEUE];
            if (p->to < 0 || p->to >= net->n || net->down[p->to] || net->down[p->from]) continue;
            dht_addr_t from = tn_addr(p->from);
            dht_input(net->nodes[p->to], p->buf, p->len, &from, net->now);
        }
        net->now += 1;
        for (int i = 0; i < net->n; i++) {
            if (net->down[i]) continue;
            if (dht_next_deadline(net->nodes[i]) <= net->now) dht_periodic(net->nodes[i], net->now);
        }
    }
}

/* Node 0 is the bootstrap; every other node pings it and looks up its own id. */
static inline void tn_join_all(testnet_t *net)
{
    for (int i = 1; i < net->n; i++) {
        dht_addr_t a = tn_addr(0);
        dht_ping_addr(net->nodes[i], &a, net->now);
        tn_run(net, 5);
        dht_find_node(net->nodes[i], dht_self_id(net->nodes[i]), net->now, NULL, NULL);
        tn_run(net, 20);
    }
    tn_run(net, 500);
}

#endif
