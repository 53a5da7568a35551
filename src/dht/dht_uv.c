/* dht_uv.c: the libuv adapter of the DHT core: UDP sockets (IPv4 and IPv6), one timer driven by
 * dht_periodic()'s deadline, and datagram I/O with recvmmsg and a bounded send queue. */
#include "dht/dht_uv.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/base.h"

#ifndef DHT_UV_RCVBUF
#define DHT_UV_RCVBUF (4 * 1024 * 1024) /* kernel receive buffer asked for each socket */
#endif
#ifndef DHT_UV_SNDBUF
#define DHT_UV_SNDBUF (1024 * 1024) /* kernel send buffer asked for each socket */
#endif
#ifndef DHT_UV_MMSG
#define DHT_UV_MMSG 16 /* datagrams per recvmmsg call (libuv gives each a 64 KiB slot) */
#endif
#ifndef DHT_UV_SEND_QUEUE
#define DHT_UV_SEND_QUEUE                                                                          \
    1024 /* datagrams queued when the socket would block; more are dropped                         \
          */
#endif

#ifndef DHT_UV_SEND_BATCH
#define DHT_UV_SEND_BATCH                                                                          \
    32 /* replies gathered during a receive batch and sent by one sendmmsg                         \
        */
#endif

#define SLOT_SIZE (64 * 1024) /* libuv's per-datagram slot in recvmmsg mode */

/* One gathered datagram: its socket, destination and bytes. */
typedef struct out_dgram {
    uv_udp_t *h;
    struct sockaddr_storage ss;
    size_t len;
    uint8_t data[DHT_MAX_DATAGRAM];
} out_dgram_t;

typedef struct send_req {
    uv_udp_send_t req;
    struct dht_uv *u;
    size_t len;
    uint8_t data[];
} send_req_t;

struct dht_uv {
    uv_loop_t *loop;
    dht_t *dht;
    uv_udp_t udp4, udp6;
    bool has4, has6;   /* socket bound and receiving */
    bool init4, init6; /* handle initialised (must be closed) */
    bool v6_mapped;    /* the v6 socket also carries IPv4 (explicit "::" host) */
    uv_timer_t timer;
    uv_prepare_t prepare; /* re-arms the timer once per loop iteration after input */
    uint64_t armed;       /* deadline the timer is set for, 0 = not armed */
    bool closing;
    bool dirty; /* input since the timer was last re-armed */
    int open_handles;
    int port;
    size_t queued;
    uint64_t send_drops;
    bool batching;    /* inside a receive batch: replies are gathered, not sent at once */
    out_dgram_t *out; /* DHT_UV_SEND_BATCH gathered replies */
    int nout;
    uint8_t *rbuf; /* receive slots shared by both sockets (one callback runs at a time) */
    size_t rbuf_len;
    void (*done_cb)(void *arg);
    void *done_arg;
};

/* Picks the socket for a destination and fills the sockaddr; NULL when no socket fits. */
static uv_udp_t *route(struct dht_uv *u, const dht_addr_t *to, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (to->family == 4 && u->has4) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, to->ip, 4);
        in->sin_port = htons(to->port);
        return &u->udp4;
    }
    if (to->family == 6 || (to->family == 4 && u->v6_mapped)) {
        if (!u->has6) return NULL;
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        if (to->family == 4) {
            in6->sin6_addr.s6_addr[10] = 0xff;
            in6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(in6->sin6_addr.s6_addr + 12, to->ip, 4);
        } else {
            memcpy(in6->sin6_addr.s6_addr, to->ip, 16);
        }
        in6->sin6_port = htons(to->port);
        return &u->udp6;
    }
    return NULL;
}

static void send_done_cb(uv_udp_send_t *req, int status)
{
    send_req_t *r = (send_req_t *)req;
    r->u->queued--;
    if (status < 0) r->u->send_drops++;
    free(r);
}

/* Sends one datagram now, or queues a copy (bounded) when the socket would block. */
static void send_one(struct dht_uv *u, uv_udp_t *h, const uint8_t *buf, size_t len,
                     const struct sockaddr_storage *ss)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int rc = uv_udp_try_send(h, &b, 1, (const struct sockaddr *)ss);
    if (rc >= 0) return;
    if (rc != UV_EAGAIN && rc != UV_ENOSYS) {
        u->send_drops++;
        return;
    }
    send_req_t *r = u->queued < DHT_UV_SEND_QUEUE ? malloc(sizeof(*r) + len) : NULL;
    if (!r) {
        u->send_drops++;
        return;
    }
    r->u = u;
    r->len = len;
    memcpy(r->data, buf, len);
    b = uv_buf_init((char *)r->data, (unsigned)len);
    if (uv_udp_send(&r->req, h, &b, 1, (const struct sockaddr *)ss, send_done_cb) < 0) {
        free(r);
        u->send_drops++;
        return;
    }
    u->queued++;
}

/* Sends the gathered datagrams, one sendmmsg per run of the same socket. What the kernel does not
 * take at once goes through send_one (and its queue). */
static void flush(struct dht_uv *u)
{
    struct mmsghdr msgs[DHT_UV_SEND_BATCH];
    struct iovec iov[DHT_UV_SEND_BATCH];
    int i = 0;
    while (i < u->nout) {
        uv_udp_t *h = u->out[i].h;
        int n = 0;
        while (i + n < u->nout && u->out[i + n].h == h) {
            out_dgram_t *d = &u->out[i + n];
            iov[n].iov_base = d->data;
            iov[n].iov_len = d->len;
            memset(&msgs[n], 0, sizeof(msgs[n]));
            msgs[n].msg_hdr.msg_name = &d->ss;
            msgs[n].msg_hdr.msg_namelen = d->ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                                      : sizeof(struct sockaddr_in);
            msgs[n].msg_hdr.msg_iov = &iov[n];
            msgs[n].msg_hdr.msg_iovlen = 1;
            n++;
        }
        uv_os_fd_t fd;
        int sent = 0;
        if (uv_fileno((uv_handle_t *)h, &fd) == 0 && uv_udp_get_send_queue_count(h) == 0) {
            sent = sendmmsg(fd, msgs, (unsigned)n, MSG_DONTWAIT);
            if (sent < 0) sent = 0;
        }
        for (int k = sent; k < n; k++)
            send_one(u, h, u->out[i + k].data, u->out[i + k].len, &u->out[i + k].ss);
        i += n;
    }
    u->nout = 0;
}

static void send_cb(void *ctx, const uint8_t *buf, size_t len, const dht_addr_t *to)
{
    struct dht_uv *u = ctx;
    struct sockaddr_storage ss;
    if (u->closing) return;
    uv_udp_t *h = route(u, to, &ss);
    if (!h) {
        u->send_drops++;
        return;
    }
    if (!u->batching || !u->out || len > DHT_MAX_DATAGRAM) {
        send_one(u, h, buf, len, &ss);
        return;
    }
    out_dgram_t *d = &u->out[u->nout++];
    d->h = h;
    d->ss = ss;
    d->len = len;
    memcpy(d->data, buf, len);
    if (u->nout == DHT_UV_SEND_BATCH) flush(u);
}

static void timer_cb(uv_timer_t *t);

/* Arms the timer for deadline unless it is already armed for an earlier one. min_delay keeps a
 * deadline in the past from spinning the loop when it comes from dht_periodic itself. */
static void arm(struct dht_uv *u, uint64_t deadline, uint64_t min_delay)
{
    if (u->closing) return;
    uint64_t now = uv_now(u->loop);
    uint64_t delay = deadline > now ? deadline - now : 0;
    if (delay < min_delay) delay = min_delay;
    uint64_t when = now + delay;
    if (u->armed && u->armed <= when && uv_is_active((uv_handle_t *)&u->timer)) return;
    u->armed = when;
    uv_timer_start(&u->timer, timer_cb, delay, 0);
}

static void timer_cb(uv_timer_t *t)
{
    struct dht_uv *u = t->data;
    uint64_t now = uv_now(u->loop);
    u->armed = 0;
    dht_set_wall_clock(u->dht, now, p2p_wall_ms());
    uint64_t next = dht_periodic(u->dht, now);
    arm(u, next, 1);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct dht_uv *u = h->data;
    (void)suggested;
    *buf = uv_buf_init((char *)u->rbuf, (unsigned)u->rbuf_len);
}

static void recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    struct dht_uv *u = h->data;
    (void)buf;
    /* nread 0: end of a batch or nothing to read; < 0: a transient error. The timer is re-armed
     * once per loop iteration by prepare_cb rather than after every datagram. Replies made while a
     * batch is read are gathered and leave together at its end (UV_UDP_MMSG_FREE). */
    if (nread <= 0 || !addr || u->closing) {
        if (u->batching) flush(u);
        u->batching = false;
        return;
    }
    dht_addr_t from;
    dht_addr_from_sockaddr(&from, addr);
    if (!from.family) return;
    u->batching = (flags & UV_UDP_MMSG_CHUNK) != 0;
    dht_input(u->dht, (const uint8_t *)buf->base, (size_t)nread, &from, uv_now(u->loop));
    if (!u->batching && u->nout) flush(u);
    u->dirty = true;
}

static void prepare_cb(uv_prepare_t *p)
{
    struct dht_uv *u = p->data;
    if (u->nout) flush(u);
    u->batching = false;
    if (!u->dirty) return;
    u->dirty = false;
    arm(u, dht_next_deadline(u->dht), 0);
}

static void tune_socket(uv_udp_t *h)
{
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)h, &fd) == 0) {
        int v = DHT_UV_RCVBUF;
#ifdef SO_RCVBUFFORCE
        if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) == 0) goto snd;
#endif
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
#ifdef SO_RCVBUFFORCE
    snd:
#endif
        v = DHT_UV_SNDBUF;
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
    }
}

static void handle_closed_cb(uv_handle_t *h)
{
    struct dht_uv *u = h->data;
    if (--u->open_handles > 0) return;
    dht_free(u->dht); /* pending operations get -ECANCELED; their sends are dropped (closing) */
    void (*done)(void *) = u->done_cb;
    void *arg = u->done_arg;
    free(u->rbuf);
    free(u->out);
    free(u);
    if (done) done(arg);
}

/* Opens one UDP socket on sa; port 0 binds any port. */
static int open_udp(struct dht_uv *u, uv_udp_t *h, bool *init, const struct sockaddr *sa,
                    unsigned bind_flags)
{
    int rc = uv_udp_init_ex(u->loop, h, sa->sa_family | UV_UDP_RECVMMSG);
    if (rc < 0) return rc;
    h->data = u;
    *init = true;
    u->open_handles++;
    if ((rc = uv_udp_bind(h, sa, bind_flags)) < 0) return rc;
    tune_socket(h);
    return uv_udp_recv_start(h, alloc_cb, recv_cb);
}

static int bound_port(uv_udp_t *h)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    if (uv_udp_getsockname(h, (struct sockaddr *)&ss, &len) < 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int bind_sockets(struct dht_uv *u, const char *host, int port)
{
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    int rc;
    if (host && *host && uv_ip6_addr(host, port, &in6) == 0) {
        /* An explicit IPv6 host: one socket; "::" also carries IPv4 through mapped addresses. */
        bool any = memcmp(&in6.sin6_addr, &in6addr_any, sizeof(in6addr_any)) == 0;
        if ((rc = open_udp(u, &u->udp6, &u->init6, (struct sockaddr *)&in6,
                           any ? 0 : UV_UDP_IPV6ONLY)) < 0)
            return rc;
        u->has6 = true;
        u->v6_mapped = any;
        u->port = bound_port(&u->udp6);
        return 0;
    }
    if ((rc = uv_ip4_addr(host && *host ? host : "0.0.0.0", port, &in4)) < 0) return rc;
    if ((rc = open_udp(u, &u->udp4, &u->init4, (struct sockaddr *)&in4, 0)) < 0) return rc;
    u->has4 = true;
    u->port = bound_port(&u->udp4);
    if (host && *host) return 0;
    /* Unspecified host: IPv6 too, on the same port, when the machine has it. */
    uv_ip6_addr("::", u->port, &in6);
    if (open_udp(u, &u->udp6, &u->init6, (struct sockaddr *)&in6, UV_UDP_IPV6ONLY) == 0) {
        u->has6 = true;
    } else if (u->init6) {
        u->init6 = false; /* the timer stays open, so this close never frees u */
        uv_close((uv_handle_t *)&u->udp6, handle_closed_cb);
    }
    return 0;
}

int dht_uv_start(uv_loop_t *loop, const dht_config_t *cfg, const char *host, int port,
                 dht_uv_t **out)
{
    struct dht_uv *u = calloc(1, sizeof(*u));
    int rc = UV_ENOMEM;
    if (!u) return rc;
    u->loop = loop;
    u->rbuf_len = (size_t)DHT_UV_MMSG * SLOT_SIZE;
    u->rbuf = malloc(u->rbuf_len); /* virtual; only the bytes received are ever touched */
    u->out = malloc(sizeof(out_dgram_t) * DHT_UV_SEND_BATCH); /* idem */
    if (!u->rbuf || !u->out) goto fail_early;
    uv_update_time(loop);
    uint64_t now = uv_now(loop);
    dht_config_t c = *cfg;
    c.send = send_cb;
    c.send_ctx = u;
    u->dht = dht_new(&c, now);
    if (!u->dht) {
        rc = UV_EINVAL;
        goto fail_early;
    }
    dht_set_wall_clock(u->dht, now, p2p_wall_ms());
    if ((rc = uv_timer_init(loop, &u->timer)) < 0) goto fail_early;
    u->timer.data = u;
    u->open_handles++;
    if ((rc = uv_prepare_init(loop, &u->prepare)) < 0) goto fail;
    u->prepare.data = u;
    u->open_handles++;
    uv_prepare_start(&u->prepare, prepare_cb);
    if ((rc = bind_sockets(u, host, port)) < 0) goto fail;
    arm(u, dht_next_deadline(u->dht), 0);
    *out = u;
    return 0;
fail:
    /* Handles were initialised: close them; the struct is freed from the last close callback. */
    dht_uv_stop(u, NULL, NULL);
    return rc;
fail_early:
    dht_free(u->dht);
    free(u->rbuf);
    free(u->out);
    free(u);
    return rc;
}

dht_t *dht_uv_core(dht_uv_t *u)
{
    return u->dht;
}

void dht_uv_kick(dht_uv_t *u)
{
    arm(u, dht_next_deadline(u->dht), 0);
}

int dht_uv_port(const dht_uv_t *u)
{
    return u->port;
}

void dht_uv_stop(dht_uv_t *u, void (*done_cb)(void *arg), void *arg)
{
    if (u->closing) return;
    u->closing = true;
    u->done_cb = done_cb;
    u->done_arg = arg;
    uv_handle_t *hs[4] = {
        (uv_handle_t *)&u->timer, u->prepare.data ? (uv_handle_t *)&u->prepare : NULL,
        u->init4 ? (uv_handle_t *)&u->udp4 : NULL, u->init6 ? (uv_handle_t *)&u->udp6 : NULL};
    for (int i = 0; i < 4; i++)
        if (hs[i] && !uv_is_closing(hs[i])) uv_close(hs[i], handle_closed_cb);
}
