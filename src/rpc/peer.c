/* peer.c: the libuv transport of the peer channel. It owns the TCP listeners, the connections
 * (handshake, box-stream, output queue with backpressure, one timer each for the handshake, call
 * deadlines and idleness), the sessions serving incoming calls; outgoing calls are in
 * peer_client.c. The protocol cores are shs.c, boxstream.c and session.c; this file only moves
 * their bytes. */
#include "rpc/peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rpc/peer-internal.h"

static void maybe_done(rpc_peer_t *p)
{
    if (!p->stopping || p->closing > 0) return;
    void (*cb)(void *) = p->done_cb;
    void *arg = p->done_arg;
    sodium_memzero(p->sk, sizeof(p->sk));
    free(p->secret);
    free(p->prev_secret);
    free(p->audience);
    free(p);
    if (cb) cb(arg);
}

static void conn_close_cb(uv_handle_t *h)
{
    pconn_t *c = h->data;
    if (--c->open > 0) return;
    rpc_peer_t *p = c->p;
    rpc_decoder_free(&c->rdec);
    p2p_buf_free(&c->out);
    if (c->dec) rpc_box_dec_free(c->dec);
    free(c->dec);
    rpc_box_enc_free(&c->enc);
    free(c);
    p->closing--;
    maybe_done(p);
}

/* Takes every pending call off c and answers it with status. Callbacks may re-enter. */
static void fail_calls(pconn_t *c, int status)
{
    while (c->calls) {
        rpc_peer_reply_cb cb;
        void *arg;
        peer_call_take(c, c->calls, &cb, &arg);
        if (status == -ETIMEDOUT)
            c->p->st.calls_timeout++;
        else
            c->p->st.calls_failed++;
        cb(arg, status, NULL, NULL);
    }
}

/* Closes a connection now; its pending calls get status. Must not run inside the session's own
 * call chain (use kill for that). */
void peer_conn_close(pconn_t *c, int status)
{
    rpc_peer_t *p = c->p;
    if (c->closed) return;
    c->closed = true;
    if (c->dirty) { /* gathered frames die with the connection */
        c->dirty = false;
        p->n_dirty--;
        c->queued -= c->out.len;
        c->out.len = 0;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        p->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    p->n_conns--;
    if (c->outbound)
        p->st.conns_out_open--;
    else
        p->st.conns_in_open--;
    p->closing++;
    rpc_session_free(c->sess);
    c->sess = NULL;
    if (c->shs) {
        rpc_shs_wipe(c->shs);
        free(c->shs);
        c->shs = NULL;
    }
    p2p_buf_free(&c->early);
    rpc_box_enc_free(&c->enc); /* frees bulk mode and wipes the key */
    uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
    uv_close((uv_handle_t *)&c->timer, conn_close_cb);
    fail_calls(c, status);
}

static void timer_cb(uv_timer_t *t);

/* Marks c for closing at the next safe point (from the timer). */
static void conn_kill(pconn_t *c, int status)
{
    if (c->closed || c->kill) return;
    c->kill = true;
    c->kill_status = status;
    uv_timer_start(&c->timer, timer_cb, 0, 0);
}

static bool idle(const pconn_t *c)
{
    if (c->state != ST_OPEN || c->queued > 0) return false;
    return c->outbound ? c->n_calls == 0 : rpc_session_pending(c->sess) == 0;
}

/* Re-arms c's timer at its next deadline. */
void peer_arm(pconn_t *c)
{
    if (c->closed) return;
    if (c->kill) {
        uv_timer_start(&c->timer, timer_cb, 0, 0);
        return;
    }
    uint64_t now = now_ms(), next = UINT64_MAX;
    if (c->state != ST_OPEN || c->draining) next = c->hs_deadline;
    for (pcall_t *k = c->calls; k; k = k->next)
        next = P2P_MIN(next, k->deadline);
    if (c->sess && c->state == ST_OPEN) next = P2P_MIN(next, rpc_session_periodic(c->sess, now));
    if (idle(c))
        next =
            P2P_MIN(next, c->last_active + (c->outbound ? RPC_PEER_IDLE_MS : RPC_PEER_IDLE_IN_MS));
    if (next == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uv_timer_start(&c->timer, timer_cb, next > now ? next - now : 0, 0);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    pconn_t *c = h->data;
    buf->base = c->p->rbuf;
    buf->len = sizeof(c->p->rbuf);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

void peer_set_reading(pconn_t *c, bool on)
{
    if (c->closed || c->reading == on) return;
    c->reading = on;
    if (on)
        uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    else
        uv_read_stop((uv_stream_t *)&c->tcp);
}

static void write_cb(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    pconn_t *c = w->c;
    c->queued -= w->len;
    free(w->owned);
    free(w);
    if (c->closed) return;
    if (status < 0) {
        peer_conn_close(c, -ECONNRESET);
        return;
    }
    if (c->draining) {
        if (c->queued == 0) peer_conn_close(c, -ECONNRESET);
        return;
    }
    if (c->queued < RPC_PEER_MAX_OUTPUT / 2) peer_set_reading(c, true);
    if (c->queued == 0) peer_arm(c); /* may have become idle */
}

/* Queues raw bytes (handshake or already encrypted). */
int peer_send_raw(pconn_t *c, const uint8_t *buf, size_t len, wreq_t *w)
{
    if (!w) {
        w = malloc(sizeof(*w) + len);
        if (!w) return -ENOMEM;
        memcpy(w->data, buf, len);
        w->owned = NULL;
    }
    w->c = c;
    w->len = len;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
    if (r < 0) {
        free(w);
        return r;
    }
    c->queued += len;
    c->p->st.bytes_out += len;
    return 0;
}

/* Writes the frames gathered on c: what the kernel takes at once costs nothing more, the rest
 * goes out as one write whose memory counts for backpressure. */
static void flush_conn(pconn_t *c)
{
    if (!c->dirty) return;
    c->dirty = false;
    c->p->n_dirty--;
    size_t off = 0, len = c->out.len;
    if (c->closed || len == 0) {
        c->queued -= len;
        c->out.len = 0;
        return;
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n > 0) off = (size_t)n;
    }
    c->queued -= len; /* peer_send_raw counts what it queues again */
    c->p->st.bytes_out += off;
    if (off < len && len - off >= RPC_HANDOVER_MIN) {
        /* a big remainder: the buffer itself goes with the write, the next output gets a new one */
        wreq_t *w = malloc(sizeof(*w));
        uv_buf_t b = uv_buf_init((char *)c->out.data + off, (unsigned)(len - off));
        if (!w || uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, write_cb) < 0) {
            free(w);
            c->out.len = 0;
            conn_kill(c, -ECONNRESET);
            return;
        }
        w->c = c;
        w->owned = c->out.data;
        w->len = len - off + sizeof(*w);
        c->queued += w->len;
        c->p->st.bytes_out += len - off;
        c->out.data = NULL;
        c->out.cap = 0;
    } else if (off < len) {
        wreq_t *w = malloc(sizeof(*w) + (len - off));
        if (!w || (memcpy(w->data, c->out.data + off, len - off), w->owned = NULL,
                   peer_send_raw(c, NULL, len - off, w)) < 0) {
            c->out.len = 0;
            conn_kill(c, -ECONNRESET);
            return;
        }
        c->queued += sizeof(*w); /* the request's own memory */
        w->len += sizeof(*w);
    }
    c->out.len = 0;
    /* when the kernel took it all no write_cb comes: resume reading here */
    if (!c->draining && !c->kill && c->queued < RPC_PEER_MAX_OUTPUT / 2) peer_set_reading(c, true);
}

static void prepare_cb(uv_prepare_t *h)
{
    rpc_peer_t *p = h->data;
    for (pconn_t *c = p->conns; c && p->n_dirty > 0; c = c->next)
        flush_conn(c);
}

/* Encrypts plaintext on an open connection into the frames gathered for this loop iteration,
 * with backpressure. */
int peer_send_plain(pconn_t *c, const uint8_t *buf, size_t len)
{
    if (c->closed || c->kill || c->draining) return -EPIPE;
    size_t n = rpc_box_encoded_len(&c->enc, len);
    if (c->queued + n > RPC_PEER_MAX_OUTPUT_HARD) {
        peer_set_reading(c, false);
        conn_kill(c, -ECONNRESET); /* the peer reads nothing */
        return -ENOBUFS;
    }
    size_t at = c->out.len;
    if (p2p_buf_reserve(&c->out, n) < 0) {
        conn_kill(c, -ECONNRESET);
        return -ENOMEM;
    }
    rpc_box_encode(&c->enc, buf, len, c->out.data + at);
    c->out.len = at + n;
    c->queued += n;
    if (!c->dirty) {
        c->dirty = true;
        c->p->n_dirty++;
    }
    if (!c->outbound && c->queued > RPC_PEER_MAX_OUTPUT) peer_set_reading(c, false);
    return 0;
}

int peer_send_switch(pconn_t *c)
{
    if (c->closed || c->kill || c->draining) return -EPIPE;
    if (c->enc.gcm) return -EALREADY;
    size_t at = c->out.len;
    if (p2p_buf_reserve(&c->out, RPC_BOX_HEADER_LEN) < 0) {
        conn_kill(c, -ECONNRESET);
        return -ENOMEM;
    }
    int r = rpc_box_enc_switch(&c->enc, c->out.data + at);
    if (r < 0) {
        conn_kill(c, -ECONNRESET);
        return r;
    }
    c->out.len = at + RPC_BOX_HEADER_LEN;
    c->queued += RPC_BOX_HEADER_LEN;
    c->p->st.bulk_switched++;
    if (!c->dirty) {
        c->dirty = true;
        c->p->n_dirty++;
    }
    return 0;
}

/* The server's offer of bulk mode, [2, "peer.bulk", ["aes256gcm"]] in msgpack: a notification a
 * plain msgpack-RPC client ignores. */
static const uint8_t bulk_offer[] = {0x93, 0x02, 0xa9, 'p', 'e', 'e', 'r', '.', 'b', 'u', 'l', 'k',
                                     0x91, 0xa9, 'a',  'e', 's', '2', '5', '6', 'g', 'c', 'm'};

/* The session's output on an incoming connection. */
static int session_write(void *ctx, const uint8_t *buf, size_t len)
{
    return peer_send_plain(ctx, buf, len);
}

/* Sends the goodbye and closes once the queue is written. */
static void conn_goodbye(pconn_t *c)
{
    if (c->closed || c->draining) return;
    flush_conn(c); /* what was gathered goes before the goodbye */
    if (c->state == ST_OPEN) {
        uint8_t bye[RPC_BOX_BYE_MAX];
        size_t n = rpc_box_goodbye(&c->enc, bye);
        peer_send_raw(c, bye, n, NULL);
    }
    c->draining = true;
    c->hs_deadline = now_ms() + RPC_PEER_HANDSHAKE_MS; /* a peer that never reads is dropped */
    peer_set_reading(c, false);
    fail_calls(c, -ECONNRESET);
    if (!c->closed && c->queued == 0) peer_conn_close(c, -ECONNRESET);
    peer_arm(c);
}

/* Answers the calls whose deadline passed; false when c closed meanwhile. */
void peer_call_take(pconn_t *c, pcall_t *k, rpc_peer_reply_cb *cb, void **arg)
{
    if (k->prev)
        k->prev->next = k->next;
    else
        c->calls = k->next;
    if (k->next) k->next->prev = k->prev;
    c->n_calls--;
    *cb = k->cb;
    *arg = k->arg;
    free(k);
}

static bool expire_calls(pconn_t *c, uint64_t now)
{
    for (;;) {
        pcall_t *k = c->calls;
        while (k && k->deadline > now)
            k = k->next;
        if (!k) return true;
        rpc_peer_reply_cb cb;
        void *arg;
        peer_call_take(c, k, &cb, &arg);
        c->p->st.calls_timeout++;
        cb(arg, -ETIMEDOUT, NULL, NULL);
        if (c->closed) return false;
    }
}

static void timer_cb(uv_timer_t *t)
{
    pconn_t *c = t->data;
    uint64_t now = now_ms();
    if (c->closed) return;
    if (c->kill) {
        peer_conn_close(c, c->kill_status);
        return;
    }
    if ((c->state != ST_OPEN || c->draining) && now >= c->hs_deadline) {
        if (c->state != ST_OPEN) c->p->st.handshakes_failed++;
        peer_conn_close(c, -ETIMEDOUT);
        return;
    }
    if (!expire_calls(c, now)) return;
    if (idle(c) && !c->draining &&
        now >= c->last_active + (c->outbound ? RPC_PEER_IDLE_MS : RPC_PEER_IDLE_IN_MS)) {
        c->p->st.idle_closed++;
        conn_goodbye(c);
        return;
    }
    peer_arm(c);
}

/* --- handshake and input ----------------------------------------------------------------- */

/* The handshake completed: set up box-stream, the session or the queued requests. */
static bool shake_done(pconn_t *c)
{
    rpc_shs_result_t res;
    rpc_shs_result(c->shs, &res);
    rpc_shs_wipe(c->shs);
    free(c->shs);
    c->shs = NULL;
    memcpy(c->peer_pk, res.peer_pk, 32);
    rpc_box_enc_init(&c->enc, res.enc_key, res.enc_nonce);
    c->dec = malloc(sizeof(*c->dec));
    if (c->dec) rpc_box_dec_init(c->dec, res.dec_key, res.dec_nonce);
    sodium_memzero(&res, sizeof(res));
    if (!c->dec) {
        peer_conn_close(c, -ENOMEM);
        return false;
    }
    c->state = ST_OPEN;
    c->p->st.handshakes_ok++;
    if (!c->outbound) {
        c->sess = rpc_session_new(c->p->reg, &c->p->auth, session_write, c);
        if (c->sess) rpc_session_set_peer(c->sess);
        if (!c->sess) {
            peer_conn_close(c, -ENOMEM);
            return false;
        }
        if (c->p->bulk) {
            rpc_box_dec_allow_switch(c->dec, true);
            if (peer_send_plain(c, bulk_offer, sizeof(bulk_offer)) < 0) {
                peer_conn_close(c, -ECONNRESET);
                return false;
            }
        }
    } else if (c->early.len > 0) {
        int r = peer_send_plain(c, c->early.data, c->early.len);
        p2p_buf_free(&c->early);
        if (r < 0) {
            peer_conn_close(c, -ECONNRESET);
            return false;
        }
    }
    return true;
}

/* Feeds the handshake; returns the bytes taken or -1 when c closed. */
static ssize_t shake_input(pconn_t *c, const uint8_t *buf, size_t len)
{
    size_t used, olen;
    int r = rpc_shs_input(c->shs, buf, len, &used);
    const uint8_t *out = rpc_shs_output(c->shs, &olen);
    if (r >= 0 && out && peer_send_raw(c, out, olen, NULL) < 0) r = -ECONNRESET;
    if (r < 0) {
        c->p->st.handshakes_failed++;
        peer_conn_close(c, -EPROTO);
        return -1;
    }
    if (r == 1 && !shake_done(c)) return -1;
    return (ssize_t)used;
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    pconn_t *c = st->data;
    if (c->closed || nread == 0) return;
    if (nread < 0) {
        if (c->state != ST_OPEN) c->p->st.handshakes_failed++;
        peer_conn_close(c, c->state == ST_OPEN ? -ECONNRESET : -EPROTO);
        return;
    }
    c->p->st.bytes_in += (uint64_t)nread;
    c->last_active = now_ms();
    const uint8_t *in = (const uint8_t *)buf->base;
    size_t len = (size_t)nread;
    while (len > 0 && !c->closed && !c->kill && !c->draining) {
        size_t used;
        if (c->state == ST_SHAKE) {
            ssize_t n = shake_input(c, in, len);
            if (n < 0) return;
            used = (size_t)n;
        } else {
            const uint8_t *body;
            size_t blen;
            int r = rpc_box_decode(c->dec, in, len, &used, &body, &blen);
            if (r < 0) {
                c->p->st.protocol_errors++;
                peer_conn_close(c, -EPROTO);
                return;
            }
            if (r == 2) { /* goodbye: finish writing what we owe, then close */
                conn_goodbye(c);
                return;
            }
            if (r == 3) { /* the far side's direction is now bulk mode */
                c->p->st.bulk_switched++;
                /* a client switched after our offer: our direction follows */
                if (!c->outbound && peer_send_switch(c) < 0 && c->closed) return;
            }
            if (r == 1 && c->outbound && !peer_client_input(c, body, blen)) return;
            if (r == 1 && !c->outbound) {
                int s = rpc_session_input(c->sess, body, blen, now_ms(), p2p_wall_ms() / 1000);
                if (s < 0 && !c->kill) { /* PARSE_ERROR is queued: close once written */
                    c->p->st.protocol_errors++;
                    flush_conn(c);
                    c->draining = true;
                    c->hs_deadline = now_ms() + RPC_PEER_HANDSHAKE_MS;
                    peer_set_reading(c, false);
                    if (c->queued == 0) peer_conn_close(c, -EPROTO);
                    return;
                }
            }
        }
        in += used;
        len -= used;
    }
    if (!c->closed && c->kill) {
        peer_conn_close(c, c->kill_status);
        return;
    }
    peer_arm(c);
}

/* --- connections ------------------------------------------------------------------------- */

/* Makes room under the connection cap by closing the connection idle the longest. */
bool peer_make_room(rpc_peer_t *p)
{
    if (p->n_conns < RPC_PEER_MAX_CONNECTIONS) return true;
    pconn_t *oldest = NULL;
    for (pconn_t *c = p->conns; c; c = c->next)
        if (idle(c) && !c->draining && (!oldest || c->last_active < oldest->last_active))
            oldest = c;
    if (!oldest) return false;
    p->st.evicted++;
    conn_goodbye(oldest);
    if (!oldest->closed) peer_conn_close(oldest, -ECONNRESET); /* do not wait for its queue */
    return true;
}

pconn_t *peer_conn_new(rpc_peer_t *p, bool outbound)
{
    pconn_t *c = calloc(1, sizeof(*c));
    if (!c) return NULL;
    c->shs = malloc(sizeof(*c->shs));
    if (!c->shs || uv_tcp_init(p->loop, &c->tcp) < 0) {
        free(c->shs);
        free(c);
        return NULL;
    }
    uv_timer_init(p->loop, &c->timer);
    c->p = p;
    c->outbound = outbound;
    c->tcp.data = c->timer.data = c;
    c->open = 2;
    c->state = outbound ? ST_DIAL : ST_SHAKE;
    c->last_active = now_ms();
    c->hs_deadline = c->last_active + RPC_PEER_HANDSHAKE_MS;
    c->next_msgid = 1;
    p2p_buf_init(&c->early, RPC_PEER_MAX_OUTPUT);
    p2p_buf_init(&c->out, RPC_PEER_MAX_OUTPUT_HARD);
    rpc_decoder_init(&c->rdec);
    c->next = p->conns;
    if (p->conns) p->conns->prev = c;
    p->conns = c;
    p->n_conns++;
    if (outbound)
        p->st.conns_out_open++;
    else
        p->st.conns_in_open++;
    return c;
}

static void reject_close_cb(uv_handle_t *h)
{
    free(h);
}

static void connection_cb(uv_stream_t *ls, int status)
{
    rpc_peer_t *p = ls->data;
    if (status < 0 || p->stopping) return;
    pconn_t *c = peer_make_room(p) ? peer_conn_new(p, false) : NULL;
    if (!c) {
        /* accept and drop, so the backlog does not fill with peers we will not serve */
        uv_tcp_t *t = malloc(sizeof(*t));
        p->st.rejected++;
        if (!t || uv_tcp_init(p->loop, t) < 0) {
            free(t);
            return;
        }
        if (uv_accept(ls, (uv_stream_t *)t) < 0) {
        }
        uv_close((uv_handle_t *)t, reject_close_cb);
        return;
    }
    uint8_t seed[32];
    randombytes_buf(seed, sizeof(seed));
    rpc_shs_init(c->shs, false, p->net_key, p->pk, p->sk, NULL, seed);
    sodium_memzero(seed, sizeof(seed));
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        peer_conn_close(c, -ECONNRESET);
        return;
    }
    p->st.accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    peer_set_reading(c, true);
    peer_arm(c);
}

/* --- start and stop ---------------------------------------------------------------------- */

static void listener_close_cb(uv_handle_t *h)
{
    rpc_peer_t *p = h->data;
    p->closing--;
    maybe_done(p);
}

static uint8_t *dup_bytes(const uint8_t *b, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n) memcpy(d, b, n);
    return d;
}

static int listen_on(rpc_peer_t *p, const char *ip, int port, bool v6only)
{
    struct sockaddr_storage ss;
    int r = strchr(ip, ':') ? uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss)
                            : uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss);
    if (r < 0) return r;
    uv_tcp_t *t = &p->listeners[p->n_listeners];
    if ((r = uv_tcp_init(p->loop, t)) < 0) return r;
    t->data = p;
    p->n_listeners++;
    r = uv_tcp_bind(t, (const struct sockaddr *)&ss, v6only ? UV_TCP_IPV6ONLY : 0);
    if (r == 0) r = uv_listen((uv_stream_t *)t, 128, connection_cb);
    if (r == 0 && p->port == 0) {
        struct sockaddr_storage got;
        int n = sizeof(got);
        if (uv_tcp_getsockname(t, (struct sockaddr *)&got, &n) == 0)
            p->port = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                      : ((struct sockaddr_in *)&got)->sin_port);
    }
    return r;
}

int rpc_peer_start(uv_loop_t *loop, const rpc_peer_config_t *cfg, const char *host, int port,
                   rpc_peer_t **out)
{
    const rpc_auth_config_t *auth = cfg ? cfg->auth : NULL;
    int r = -ENOMEM;
    *out = NULL;
    if (!loop || !cfg || !cfg->public_key || !cfg->secret_key || !cfg->network_key || !cfg->reg ||
        !auth || port < 0 || port > 65535)
        return -EINVAL;
    if (sodium_init() < 0) return -EIO;
    rpc_peer_t *p = calloc(1, sizeof(*p));
    if (!p) return -ENOMEM;
    p->loop = loop;
    p->reg = cfg->reg;
    memcpy(p->pk, cfg->public_key, 32);
    memcpy(p->sk, cfg->secret_key, 64);
    memcpy(p->net_key, cfg->network_key, 32);
    p->bulk = !cfg->no_bulk && rpc_box_bulk_available();
    if (auth->secret && !(p->secret = dup_bytes(auth->secret, auth->secret_len))) goto fail;
    if (auth->prev_secret &&
        !(p->prev_secret = dup_bytes(auth->prev_secret, auth->prev_secret_len)))
        goto fail;
    if (auth->audience && !(p->audience = strdup(auth->audience))) goto fail;
    p->auth = (rpc_auth_config_t){.secret = p->secret,
                                  .secret_len = auth->secret_len,
                                  .prev_secret = p->prev_secret,
                                  .prev_secret_len = auth->prev_secret_len,
                                  .audience = p->audience,
                                  .is_revoked = auth->is_revoked,
                                  .revoked_ctx = auth->revoked_ctx};
    p->port = port;
    if (host) {
        r = listen_on(p, host, port, false);
    } else {
        int r4 = listen_on(p, "0.0.0.0", port, false);
        int r6 = listen_on(p, "::", p->port, true);
        r = r4 < 0 && r6 < 0 ? r4 : 0;
    }
    if (r < 0) {
        /* the handles live inside p: the loop frees p from their close callbacks */
        p->stopping = true;
        for (int i = 0; i < p->n_listeners; i++) {
            p->closing++;
            uv_close((uv_handle_t *)&p->listeners[i], listener_close_cb);
        }
        if (p->n_listeners == 0) goto fail;
        return r;
    }
    uv_prepare_init(loop, &p->prepare);
    p->prepare.data = p;
    uv_prepare_start(&p->prepare, prepare_cb);
    p->prepare_open = true;
    *out = p;
    return 0;
fail:
    free(p->secret);
    free(p->prev_secret);
    free(p->audience);
    free(p);
    return r;
}

int rpc_peer_port(const rpc_peer_t *p)
{
    return p ? p->port : 0;
}

void rpc_peer_stats(const rpc_peer_t *p, rpc_peer_stats_t *out)
{
    *out = p->st;
}

void rpc_peer_stop(rpc_peer_t *p, void (*done_cb)(void *arg), void *arg)
{
    if (!p || p->stopping) return;
    p->stopping = true;
    p->done_cb = done_cb;
    p->done_arg = arg;
    p->closing++; /* held until the end of this function: callbacks below may re-enter */
    if (p->prepare_open) {
        p->prepare_open = false;
        p->closing++;
        uv_close((uv_handle_t *)&p->prepare, listener_close_cb);
    }
    for (int i = 0; i < p->n_listeners; i++) {
        p->closing++;
        uv_close((uv_handle_t *)&p->listeners[i], listener_close_cb);
    }
    while (p->conns)
        peer_conn_close(p->conns, -ECANCELED);
    p->closing--;
}
