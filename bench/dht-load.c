/* dht-load.c: a load generator for the DHT request rate of one p2p-node on loopback.
 *
 * It links the DHT core to speak the real protocol: a few client identities (same network key as
 * the node) first learn the node's identity with a hello PING through the public API, then
 * precompute a stream of authenticated, encrypted requests (PING or FIND_NODE, each with its own
 * nonce, padded so no reply is larger than its request) and blast them from many source addresses
 * in 127.0.0.0/8 (the node limits requests per source IP), keeping a window of requests in flight.
 * It counts the replies the node sends back and checks a sample of them decrypts to the expected
 * answer. Prints one JSON object on stdout.
 *
 * usage: dht-load --target 127.0.0.1:PORT --network-key-file F [--seconds S] [--sources N]
 *                 [--clients C] [--window W] [--count M] [--type ping|find_node] */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <sodium.h>

#include "base/base.h"
#include "dht/dht-internal.h"

#define MAX_SOURCES 1000
#define MAX_CLIENTS 64
#define BATCH       32
#define PAD_TO      160 /* request body size: larger than any reply the node sends to it */

typedef struct dgram {
    uint16_t src;
    uint16_t len;
    uint8_t data[];
} dgram_t;

typedef struct load {
    struct sockaddr_in target;
    dht_addr_t target_addr;
    uint8_t net_key[DHT_NET_KEY_LEN];
    int nsrc, nclients, window, type;
    double seconds;
    size_t count;
    int fds[MAX_SOURCES];
    dht_t *clients[MAX_CLIENTS];
    uint8_t pair[MAX_CLIENTS][32];
    uint8_t node_pk[DHT_PK_LEN];
    uint8_t *pool; /* precomputed datagrams, fixed stride */
    size_t stride;
} load_t;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int read_key(load_t *l, const char *path)
{
    uint8_t buf[256];
    FILE *f = fopen(path, "rb");
    if (!f) return -errno;
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    if (n == DHT_NET_KEY_LEN) {
        memcpy(l->net_key, buf, n);
        return 0;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        n--;
    size_t got = 0;
    if (sodium_base642bin(l->net_key, sizeof(l->net_key), (const char *)buf, n, NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL) == 0 &&
        got == DHT_NET_KEY_LEN)
        return 0;
    int rc = p2p_hex_decode(l->net_key, sizeof(l->net_key), (const char *)buf,
                            n > 0 && buf[n - 1] == '\n' ? n - 1 : n);
    return rc == 0 ? 0 : -EINVAL;
}

static int open_sources(load_t *l)
{
    for (int i = 0; i < l->nsrc; i++) {
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (fd < 0) return -errno;
        int sz = 4 << 20;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        struct sockaddr_in a = {.sin_family = AF_INET};
        /* 127.0.B.C with B = 1 + i / 250, C = 1 + i % 250: one source IP per socket */
        a.sin_addr.s_addr =
            htonl(0x7f000000u | (uint32_t)(1 + i / 250) << 8 | (uint32_t)(1 + i % 250));
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
            close(fd);
            return -errno;
        }
        l->fds[i] = fd;
    }
    return 0;
}

/* Send callback of the client cores during the hello exchange: goes out of the client's socket. */
static void client_send(void *ctx, const uint8_t *buf, size_t len, const dht_addr_t *to)
{
    int *fd = ctx;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(to->port)};
    memcpy(&a.sin_addr, to->ip, 4);
    sendto(*fd, buf, len, 0, (struct sockaddr *)&a, sizeof(a));
}

static void grab_pk(void *arg, const dht_contact_info_t *c)
{
    memcpy(arg, c->public_key, DHT_PK_LEN);
}

/* Creates the client cores and lets each learn the node's identity with a hello PING. */
static int hello(load_t *l)
{
    for (int c = 0; c < l->nclients; c++) {
        dht_config_t cfg;
        memset(&cfg, 0, sizeof(cfg));
        crypto_sign_keypair(cfg.public_key, cfg.secret_key);
        memcpy(cfg.network_key, l->net_key, sizeof(cfg.network_key));
        randombytes_buf(cfg.seed, sizeof(cfg.seed));
        cfg.epoch = (uint64_t)time(NULL) * 1000000u;
        cfg.send = client_send;
        cfg.send_ctx = &l->fds[c];
        uint64_t now = p2p_mono_ms();
        l->clients[c] = dht_new(&cfg, now);
        if (!l->clients[c]) return -ENOMEM;
        dht_set_wall_clock(l->clients[c], now, p2p_wall_ms());
        dht_ping_addr(l->clients[c], &l->target_addr, now);
        double until = mono_s() + 3;
        uint8_t buf[2048];
        while (dht_contact_count(l->clients[c]) == 0 && mono_s() < until) {
            struct sockaddr_in from;
            socklen_t fl = sizeof(from);
            ssize_t n = recvfrom(l->fds[c], buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
            now = p2p_mono_ms();
            if (n > 0) {
                dht_addr_t fa = {.family = 4, .port = ntohs(from.sin_port)};
                memcpy(fa.ip, &from.sin_addr, 4);
                dht_input(l->clients[c], buf, (size_t)n, &fa, now);
            } else {
                usleep(1000);
            }
            dht_periodic(l->clients[c], now);
        }
        if (dht_contact_count(l->clients[c]) == 0) {
            fprintf(stderr, "dht-load: the node did not answer a hello PING (network key?)\n");
            return -ETIMEDOUT;
        }
        dht_foreach_contact(l->clients[c], grab_pk, l->node_pk);
        if (dht_crypto_pair_key(l->clients[c], l->node_pk, l->pair[c]) < 0) return -EINVAL;
    }
    /* drain any late datagrams of the exchange */
    uint8_t junk[2048];
    for (int i = 0; i < l->nsrc; i++)
        while (recv(l->fds[i], junk, sizeof(junk), 0) > 0) {
        }
    return 0;
}

/* Precomputes l->count requests, in the order they will be sent: chunks of BATCH per source. */
static int precompute(load_t *l)
{
    l->stride = sizeof(dgram_t) + PAD_TO + DHT_OVERHEAD + 64;
    l->pool = malloc(l->count * l->stride);
    if (!l->pool) return -ENOMEM;
    uint8_t body[DHT_MAX_DATAGRAM];
    for (size_t i = 0; i < l->count; i++) {
        int src = (int)((i / BATCH) % (size_t)l->nsrc);
        int c = src % l->nclients;
        dht_msg_t m;
        memset(&m, 0, sizeof(m));
        m.type = (uint8_t)l->type;
        m.txid = (uint32_t)i;
        randombytes_buf(m.target.b, sizeof(m.target.b));
        int blen = dht_msg_encode(&m, PAD_TO, body, sizeof(body));
        if (blen < 0) return blen;
        dgram_t *d = (dgram_t *)(l->pool + i * l->stride);
        int n = dht_crypto_seal(l->clients[c], DHT_MAGIC_BOX, l->pair[c], body, (size_t)blen,
                                d->data, l->stride - sizeof(dgram_t));
        if (n < 0) return n;
        d->src = (uint16_t)src;
        d->len = (uint16_t)n;
    }
    return 0;
}

/* Opens one datagram from the node with the client's pair key. Returns 1 for the expected reply,
 * 0 for another message (the node also pings clients it learns of), -1 when it does not open. */
static int classify(load_t *l, int src, const uint8_t *buf, size_t len)
{
    uint8_t plain[DHT_MAX_DATAGRAM];
    int c = src % l->nclients;
    if (len < DHT_OVERHEAD || buf[0] != DHT_MAGIC_BOX) return -1;
    int n = dht_crypto_open(l->clients[c], l->pair[c], buf, len, plain, sizeof(plain));
    if (n < 0) return -1;
    dht_msg_t m;
    if (dht_msg_decode(&m, plain, (size_t)n) < 0) return -1;
    return m.type == l->type + 1 ? 1 : 0;
}

static int blast(load_t *l)
{
    int ep = epoll_create1(0);
    if (ep < 0) return -errno;
    for (int i = 0; i < l->nsrc; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, l->fds[i], &ev);
    }
    static uint8_t rbuf[BATCH][2048];
    struct mmsghdr msgs[BATCH];
    struct iovec iov[BATCH];
    size_t next = 0;
    uint64_t sent = 0, replies = 0, checked = 0, good = 0, bad = 0, stalls = 0;
    int64_t outstanding = 0;
    double t0 = mono_s(), last_progress = t0, end = t0 + l->seconds;
    while (next < l->count) {
        double now = mono_s();
        if (now >= end) break;
        /* send while the window has room */
        while (outstanding + BATCH <= l->window && next < l->count) {
            const dgram_t *d0 = (const dgram_t *)(l->pool + next * l->stride);
            int src = d0->src, k = 0;
            while (k < BATCH && next + (size_t)k < l->count) {
                dgram_t *d = (dgram_t *)(l->pool + (next + (size_t)k) * l->stride);
                if (d->src != src) break;
                iov[k] = (struct iovec){d->data, d->len};
                msgs[k] = (struct mmsghdr){.msg_hdr = {.msg_name = &l->target,
                                                       .msg_namelen = sizeof(l->target),
                                                       .msg_iov = &iov[k],
                                                       .msg_iovlen = 1}};
                k++;
            }
            int n = sendmmsg(l->fds[src], msgs, (unsigned)k, 0);
            if (n <= 0) break;
            next += (size_t)n;
            sent += (uint64_t)n;
            outstanding += n;
        }
        struct epoll_event evs[64];
        int ne = epoll_wait(ep, evs, 64, 5);
        for (int e = 0; e < ne; e++) {
            int src = (int)evs[e].data.u32;
            for (int rounds = 0; rounds < 8; rounds++) {
                for (int k = 0; k < BATCH; k++) {
                    iov[k] = (struct iovec){rbuf[k], sizeof(rbuf[k])};
                    msgs[k] = (struct mmsghdr){.msg_hdr = {.msg_iov = &iov[k], .msg_iovlen = 1}};
                }
                int n = recvmmsg(l->fds[src], msgs, BATCH, MSG_DONTWAIT, NULL);
                if (n <= 0) break;
                replies += (uint64_t)n;
                outstanding -= n;
                if (checked < 1000) {
                    int k = classify(l, src, rbuf[0], msgs[0].msg_len);
                    checked += k >= 0;
                    good += k == 1;
                    bad += k < 0;
                }
                last_progress = mono_s();
            }
        }
        if (outstanding < 0) outstanding = 0;
        if (outstanding > 0 && mono_s() - last_progress > 0.05) {
            stalls++; /* requests dropped (rate limit or full buffers): reopen the window */
            outstanding = 0;
            last_progress = mono_s();
        }
    }
    double t1 = mono_s();
    /* late replies */
    for (double until = mono_s() + 0.2; mono_s() < until;) {
        struct epoll_event evs[64];
        int ne = epoll_wait(ep, evs, 64, 20);
        for (int e = 0; e < ne; e++) {
            int src = (int)evs[e].data.u32;
            while (recv(l->fds[src], rbuf[0], sizeof(rbuf[0]), MSG_DONTWAIT) > 0)
                replies++;
        }
    }
    close(ep);
    double secs = t1 - t0;
    printf("{\"type\":\"%s\",\"sources\":%d,\"clients\":%d,\"window\":%d,\"sent\":%" PRIu64
           ",\"replies\":%" PRIu64 ",\"replies_checked\":%" PRIu64 ",\"replies_valid\":%" PRIu64
           ",\"undecryptable\":%" PRIu64 ",\"stalls\":%" PRIu64
           ",\"seconds\":%.3f,\"requests_per_s\":%.0f,\"replies_per_s\":%.0f}\n",
           l->type == DHT_MSG_PING ? "ping" : "find_node", l->nsrc, l->nclients, l->window, sent,
           replies, checked, good, bad, stalls, secs, (double)sent / secs, (double)replies / secs);
    return bad == 0 && good > 0 ? 0 : -EPROTO;
}

static int parse(load_t *l, int argc, char **argv)
{
    const char *target = NULL, *keyfile = NULL;
    l->nsrc = 200;
    l->nclients = 8;
    l->window = 2048;
    l->seconds = 5;
    l->count = 800000;
    l->type = DHT_MSG_PING;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "--target"))
            target = v;
        else if (!strcmp(a, "--network-key-file"))
            keyfile = v;
        else if (!strcmp(a, "--seconds"))
            l->seconds = atof(v);
        else if (!strcmp(a, "--sources"))
            l->nsrc = atoi(v);
        else if (!strcmp(a, "--clients"))
            l->nclients = atoi(v);
        else if (!strcmp(a, "--window"))
            l->window = atoi(v);
        else if (!strcmp(a, "--count"))
            l->count = (size_t)atoll(v);
        else if (!strcmp(a, "--type"))
            l->type = !strcmp(v, "find_node") ? DHT_MSG_FIND_NODE : DHT_MSG_PING;
        else
            return -EINVAL;
    }
    if (!target || !keyfile || l->nsrc < 1 || l->nsrc > MAX_SOURCES || l->nclients < 1 ||
        l->nclients > MAX_CLIENTS || l->nclients > l->nsrc || l->window < BATCH || l->count < 1 ||
        l->seconds <= 0)
        return -EINVAL;
    if (dht_addr_parse(&l->target_addr, target) < 0 || l->target_addr.family != 4) return -EINVAL;
    l->target = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(l->target_addr.port)};
    memcpy(&l->target.sin_addr, l->target_addr.ip, 4);
    int rc = read_key(l, keyfile);
    if (rc < 0) fprintf(stderr, "dht-load: cannot read a 32-byte key from %s\n", keyfile);
    return rc;
}

int main(int argc, char **argv)
{
    static load_t l;
    if (sodium_init() < 0) return 1;
    if (parse(&l, argc, argv) < 0) {
        fprintf(stderr,
                "usage: dht-load --target 127.0.0.1:PORT --network-key-file F [--seconds S]\n"
                "       [--sources N] [--clients C] [--window W] [--count M] [--type "
                "ping|find_node]\n");
        return 2;
    }
    int rc = open_sources(&l);
    if (rc < 0) goto fail;
    if ((rc = hello(&l)) < 0) goto fail;
    double t = mono_s();
    if ((rc = precompute(&l)) < 0) goto fail;
    fprintf(stderr, "dht-load: %zu requests precomputed in %.2fs\n", l.count, mono_s() - t);
    rc = blast(&l);
    if (rc < 0) fprintf(stderr, "dht-load: some replies did not check out\n");
fail:
    if (rc < 0 && rc != -EPROTO) fprintf(stderr, "dht-load: %s\n", strerror(-rc));
    for (int c = 0; c < l.nclients; c++)
        dht_free(l.clients[c]);
    for (int i = 0; i < l.nsrc; i++)
        if (l.fds[i] > 0) close(l.fds[i]);
    free(l.pool);
    return rc < 0 ? 1 : 0;
}
