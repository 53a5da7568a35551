/* server.c: the HTTP server's listener and connections on libuv: accept with a connection cap
 * (the longest-idle connection makes room), reads into one shared buffer, TLS when configured,
 * output through uv_try_write then uv_write, the timeout sweep (headers, body, idle), upgraded
 * connections, start and stop. Request parsing and responses are in server_conn.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "http/server-internal.h"

#define SWEEP_MS  500  /* how often timeouts are checked */
#define LINGER_MS 2000 /* a closing connection's last output may take this long */

typedef struct write_req {
    uv_write_t req;
    http_conn_t *conn;
    size_t len;
    unsigned n;
    uv_buf_t bufs[4];
} write_req_t;

static void server_maybe_done(http_server_t *s);

const char *server_date(http_server_t *s)
{
    time_t now = time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(s->date, sizeof(s->date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

/* --- closing ------------------------------------------------------------------------------ */

static void conn_closed_cb(uv_handle_t *h)
{
    http_conn_t *c = h->data;
    http_server_t *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    s->stats.open = s->n_conns;
    if (c->state == CONN_UPGRADED && s->stats.upgraded > 0) s->stats.upgraded--;
    if (c->ops && c->ops->on_close) c->ops->on_close(c->ops_ctx);
    if (c->x) c->x->conn = NULL; /* the handler's answer goes into the void */
    if (c->kicked) {             /* off the kick list */
        http_conn_t **pp = &s->kick_head;
        while (*pp && *pp != c)
            pp = &(*pp)->kick_next;
        if (*pp) *pp = c->kick_next;
    }
    conn_req_free(c->req);
    p2p_buf_free(&c->pending);
    p2p_buf_free(&c->tls_out);
    http_tls_free(c->tls);
    free(c);
    server_maybe_done(s);
}

void conn_close(http_conn_t *c, bool graceful)
{
    if (c->closing) return;
    if (graceful && c->queued > 0) {
        c->close_after_write = true;
        c->deadline_ms = uv_now(c->srv->loop) + LINGER_MS;
        if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
        return;
    }
    c->closing = true;
    c->state = CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, conn_closed_cb);
}

/* --- output ------------------------------------------------------------------------------ */

static void write_cb(uv_write_t *req, int status)
{
    write_req_t *w = (write_req_t *)req;
    http_conn_t *c = w->conn;
    for (unsigned i = 0; i < w->n; i++)
        free(w->bufs[i].base);
    c->queued -= w->len;
    free(w);
    if (c->closing) return;
    if (status < 0) {
        conn_close(c, false);
        return;
    }
    if (c->close_after_write && c->queued == 0) {
        conn_close(c, false);
        return;
    }
    if (c->state == CONN_UPGRADED && c->ops && c->ops->on_drain && c->queued == 0)
        c->ops->on_drain(c->ops_ctx);
}

/* Writes what the kernel takes now and queues copies of the rest. */
static int send_raw(http_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    uv_buf_t b[4];
    size_t total = 0;
    if (n > 4) return -EINVAL;
    for (unsigned i = 0; i < n; i++) {
        b[i] = bufs[i];
        total += bufs[i].len;
    }
    if (total == 0) return 0;
    if (c->queued == 0) {
        int w = uv_try_write((uv_stream_t *)&c->tcp, b, n);
        if (w < 0 && w != UV_EAGAIN) {
            conn_close(c, false);
            return w;
        }
        size_t done = w > 0 ? (size_t)w : 0;
        if (done == total) return 0;
        /* skip what was written */
        unsigned first = 0;
        while (done >= b[first].len) {
            done -= b[first].len;
            first++;
        }
        b[first].base += done;
        b[first].len -= done;
        memmove(b, b + first, (n - first) * sizeof(*b));
        n -= first;
    }
    write_req_t *w = calloc(1, sizeof(*w));
    if (!w) goto nomem;
    w->conn = c;
    for (unsigned i = 0; i < n; i++) {
        w->bufs[i].base = malloc(b[i].len);
        if (!w->bufs[i].base) goto nomem;
        memcpy(w->bufs[i].base, b[i].base, b[i].len);
        w->bufs[i].len = b[i].len;
        w->n = i + 1;
        w->len += b[i].len;
    }
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, w->bufs, w->n, write_cb);
    if (r < 0) {
        for (unsigned i = 0; i < w->n; i++)
            free(w->bufs[i].base);
        free(w);
        conn_close(c, false);
        return r;
    }
    c->queued += w->len;
    return 0;
nomem:
    if (w)
        for (unsigned i = 0; i < w->n; i++)
            free(w->bufs[i].base);
    free(w);
    conn_close(c, false);
    return -ENOMEM;
}

int conn_send(http_conn_t *c, const uv_buf_t *bufs, unsigned n)
{
    if (c->closing) return -ENOTCONN;
    if (!c->tls) return send_raw(c, bufs, n);
    c->tls_out.len = 0;
    for (unsigned i = 0; i < n; i++) {
        if (http_tls_write(c->tls, bufs[i].base, bufs[i].len, &c->tls_out) < 0) {
            c->srv->stats.tls_errors++;
            conn_close(c, false);
            return -EPROTO;
        }
    }
    uv_buf_t b = uv_buf_init((char *)c->tls_out.data, (unsigned)c->tls_out.len);
    int r = send_raw(c, &b, 1);
    if (c->tls_out.cap > 65536) p2p_buf_free(&c->tls_out); /* do not keep big scratch */
    return r;
}

/* --- input ------------------------------------------------------------------------------- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    http_conn_t *c = h->data;
    http_server_t *s = c->srv;
    (void)suggested;
    if (s->rbuf_busy) { /* cannot happen on one loop thread; be safe */
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    s->rbuf_busy = true;
    buf->base = (char *)s->rbuf;
    buf->len = sizeof(s->rbuf);
}

static void deliver(http_conn_t *c, const uint8_t *p, size_t n)
{
    if (c->state == CONN_UPGRADED && c->pending.len > 0) {
        /* bytes read with the request go first (the kick delivers them) */
        if (p2p_buf_append(&c->pending, p, n) < 0) conn_close(c, false);
        return;
    }
    if (c->state == CONN_UPGRADED) {
        if (c->ops && c->ops->on_data) c->ops->on_data(c->ops_ctx, p, n);
        return;
    }
    conn_feed(c, p, n);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    http_conn_t *c = st->data;
    http_server_t *s = c->srv;
    if (buf->base == (char *)s->rbuf) s->rbuf_busy = false;
    if (nread == 0 || c->closing) return;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF && c->state == CONN_HANDLING);
        return;
    }
    c->last_ms = uv_now(s->loop);
    if (!c->tls) {
        deliver(c, (const uint8_t *)buf->base, (size_t)nread);
        return;
    }
    p2p_buf_t plain, out;
    p2p_buf_init(&plain, HTTP_MAX_BODY + HTTP_MAX_HEADER_BYTES);
    p2p_buf_init(&out, HTTP_MAX_OUTPUT);
    int r = http_tls_feed(c->tls, (const uint8_t *)buf->base, (size_t)nread, &plain, &out);
    if (out.len > 0) {
        uv_buf_t b = uv_buf_init((char *)out.data, (unsigned)out.len);
        send_raw(c, &b, 1);
    }
    if (r < 0) {
        s->stats.tls_errors++;
        conn_close(c, true);
    } else if (plain.len > 0 && !c->closing) {
        deliver(c, plain.data, plain.len);
    }
    p2p_buf_free(&plain);
    p2p_buf_free(&out);
}

void conn_reading(http_conn_t *c, bool on)
{
    if (c->closing || c->close_after_write) on = false;
    if (on == c->reading) return;
    if (on)
        c->reading = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) == 0;
    else {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

/* --- accepting ---------------------------------------------------------------------------- */

/* Closes the connection idle the longest to make room for a new one. */
static bool evict_one(http_server_t *s)
{
    http_conn_t *victim = NULL;
    for (http_conn_t *c = s->conns; c; c = c->next) {
        if (c->closing || c->state != CONN_IDLE) continue;
        if (!victim || c->last_ms < victim->last_ms) victim = c;
    }
    if (!victim) return false;
    s->stats.evicted++;
    conn_close(victim, false);
    return true;
}

static void peer_address(http_conn_t *c)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    memset(c->addr, 0, 16);
    strcpy(c->ip, "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0) return;
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        c->addr[10] = c->addr[11] = 0xff;
        memcpy(c->addr + 12, &a->sin_addr, 4);
        inet_ntop(AF_INET, &a->sin_addr, c->ip, sizeof(c->ip));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        memcpy(c->addr, &a->sin6_addr, 16);
        if (IN6_IS_ADDR_V4MAPPED(&a->sin6_addr))
            inet_ntop(AF_INET, c->addr + 12, c->ip, sizeof(c->ip));
        else
            inet_ntop(AF_INET6, &a->sin6_addr, c->ip, sizeof(c->ip));
    }
}

static void accept_cb(uv_stream_t *ls, int status)
{
    http_server_t *s = ls->data;
    if (status < 0 || s->stopping) return;
    http_conn_t *c = calloc(1, sizeof(*c));
    if (!c) return;
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    s->stats.open = s->n_conns;
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c, false);
        return;
    }
    s->stats.accepted++;
    if (s->n_conns > s->max_conns && !evict_one(s)) {
        conn_close(c, false); /* every connection is busy: refuse this one */
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_address(c);
    p2p_buf_init(&c->pending, HTTP_MAX_HEADER_BYTES + HTTP_MAX_BODY);
    p2p_buf_init(&c->tls_out, HTTP_MAX_OUTPUT);
    c->last_ms = uv_now(s->loop);
    c->deadline_ms = c->last_ms + HTTP_IDLE_TIMEOUT_MS;
    c->state = CONN_IDLE;
    conn_parser_init(c);
    if (s->tls && !(c->tls = http_tls_new(s->tls))) {
        conn_close(c, false);
        return;
    }
    conn_reading(c, true);
    if (!c->reading) conn_close(c, false);
}

/* --- timeouts ----------------------------------------------------------------------------- */

static void sweep_cb(uv_timer_t *t)
{
    http_server_t *s = t->data;
    uint64_t now = uv_now(s->loop);
    http_conn_t *next;
    for (http_conn_t *c = s->conns; c; c = next) {
        next = c->next;
        if (c->closing || c->state == CONN_UPGRADED || c->state == CONN_HANDLING) {
            if (c->close_after_write && now >= c->deadline_ms && !c->closing) conn_close(c, false);
            continue;
        }
        if (now < c->deadline_ms) continue;
        s->stats.timeouts++;
        if (c->state == CONN_HEADERS || c->state == CONN_BODY) {
            /* 408 to a request that is too slow; then close */
            static const char body[] =
                "{\"error\":{\"code\":-32004,\"message\":\"request not received in time\"}}";
            char msg[256];
            int n =
                snprintf(msg, sizeof(msg),
                         "HTTP/1.1 408 Request Timeout\r\nDate: %s\r\nContent-Type: "
                         "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         server_date(s), sizeof(body) - 1, body);
            uv_buf_t b = uv_buf_init(msg, (unsigned)n);
            conn_send(c, &b, 1);
            conn_close(c, true);
            if (!c->closing) c->deadline_ms = now + LINGER_MS; /* linger, then closed */
        } else {
            conn_close(c, false);
        }
    }
}

/* --- upgraded connections ------------------------------------------------------------------ */

http_conn_t *server_upgrade_conn(http_conn_t *c, const http_upgrade_ops_t *ops, void *ctx)
{
    c->ops = ops;
    c->ops_ctx = ctx;
    c->state = CONN_UPGRADED;
    c->srv->stats.upgraded++;
    return c;
}

int http_conn_write(http_conn_t *c, const void *buf, size_t len, size_t max_output)
{
    if (!c || c->closing || c->close_after_write) return -ENOTCONN;
    if (c->queued + len > max_output) return -ENOBUFS;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    return conn_send(c, &b, 1);
}

size_t http_conn_queued(const http_conn_t *c)
{
    return c ? c->queued : 0;
}

void http_conn_close(http_conn_t *c)
{
    if (c) conn_close(c, true);
}

/* --- the server ---------------------------------------------------------------------------- */

static void kick_cb(uv_idle_t *h)
{
    http_server_t *s = h->data;
    http_conn_t *list = s->kick_head;
    s->kick_head = NULL;
    uv_idle_stop(&s->kick);
    while (list) {
        http_conn_t *c = list;
        list = c->kick_next;
        c->kicked = false;
        c->kick_next = NULL;
        if (!c->closing) conn_resume(c);
    }
}

void conn_kick(http_conn_t *c)
{
    http_server_t *s = c->srv;
    if (c->kicked || c->closing || s->stopping) return;
    c->kicked = true;
    c->kick_next = s->kick_head;
    s->kick_head = c;
    uv_idle_start(&s->kick, kick_cb);
}

static void handle_closed_cb(uv_handle_t *h)
{
    http_server_t *s = h->data;
    s->open_handles--;
    server_maybe_done(s);
}

static void server_maybe_done(http_server_t *s)
{
    if (!s->stopping || s->open_handles > 0 || s->n_conns > 0) return;
    void (*cb)(void *) = s->done_cb;
    void *arg = s->done_arg;
    http_ratelimit_free(&s->rl);
    http_tls_ctx_free(s->tls);
    for (size_t i = 0; i < s->n_cors; i++)
        free(s->cors[i]);
    free(s);
    if (cb) cb(arg);
}

static int bind_listener(http_server_t *s, const http_config_t *cfg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    int r;
    if (uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "HTTP host %s is not an IP address", cfg->host);
        return -EINVAL;
    }
    if ((r = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0)) < 0 ||
        (r = uv_listen((uv_stream_t *)&s->listener, 1024, accept_cb)) < 0) {
        snprintf(err, errlen, "cannot listen for HTTP on %s:%d: %s", cfg->host, cfg->port,
                 uv_strerror(r));
        return r;
    }
    int len = sizeof(ss);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    s->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                            : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

int http_server_start(uv_loop_t *loop, const http_config_t *cfg, http_handler_fn handler, void *ctx,
                      http_server_t **out, char *err, size_t errlen)
{
    int r;
    if (!cfg->host || !handler || cfg->port < 0 || cfg->port > 65535 ||
        cfg->n_cors_origins > HTTP_MAX_CORS_ORIGINS ||
        (!cfg->tls_cert_file != !cfg->tls_key_file)) {
        snprintf(err, errlen, "bad HTTP server configuration");
        return -EINVAL;
    }
    http_server_t *s = calloc(1, sizeof(*s));
    if (!s) return -ENOMEM;
    s->loop = loop;
    s->handler = handler;
    s->ctx = ctx;
    s->max_conns = cfg->max_connections ? cfg->max_connections : HTTP_MAX_CONNECTIONS;
    if ((r = http_ratelimit_init(&s->rl, cfg->rate_per_s, cfg->rate_burst)) < 0) {
        if (r == -EINVAL)
            snprintf(err, errlen, "bad HTTP rate limit (%g/s, burst %g)", cfg->rate_per_s,
                     cfg->rate_burst);
        goto fail_free;
    }
    for (size_t i = 0; i < cfg->n_cors_origins; i++) {
        if (strcmp(cfg->cors_origins[i], "*") == 0) s->cors_any = true;
        if (!(s->cors[s->n_cors] = strdup(cfg->cors_origins[i]))) {
            r = -ENOMEM;
            goto fail_free;
        }
        s->n_cors++;
    }
    if (cfg->tls_cert_file &&
        (r = http_tls_ctx_new(cfg->tls_cert_file, cfg->tls_key_file, &s->tls, err, errlen)) < 0)
        goto fail_free;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    uv_timer_init(loop, &s->sweep);
    s->sweep.data = s;
    uv_idle_init(loop, &s->kick);
    s->kick.data = s;
    s->open_handles = 3;
    if ((r = bind_listener(s, cfg, err, errlen)) < 0) {
        s->stopping = true;
        uv_close((uv_handle_t *)&s->listener, handle_closed_cb);
        uv_close((uv_handle_t *)&s->sweep, handle_closed_cb);
        uv_close((uv_handle_t *)&s->kick, handle_closed_cb);
        return r; /* freed from the loop */
    }
    uv_timer_start(&s->sweep, sweep_cb, SWEEP_MS, SWEEP_MS);
    *out = s;
    return 0;
fail_free:
    if (r == -ENOMEM) snprintf(err, errlen, "out of memory");
    http_ratelimit_free(&s->rl);
    http_tls_ctx_free(s->tls);
    for (size_t i = 0; i < s->n_cors; i++)
        free(s->cors[i]);
    free(s);
    return r;
}

int http_server_port(const http_server_t *s)
{
    return s->port;
}

const http_stats_t *http_server_stats(const http_server_t *s)
{
    return &s->stats;
}

void http_server_stop(http_server_t *s, void (*done_cb)(void *arg), void *arg)
{
    if (!s || s->stopping) return;
    s->stopping = true;
    s->done_cb = done_cb;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->listener, handle_closed_cb);
    uv_close((uv_handle_t *)&s->sweep, handle_closed_cb);
    uv_close((uv_handle_t *)&s->kick, handle_closed_cb);
    http_conn_t *next;
    for (http_conn_t *c = s->conns; c; c = next) {
        next = c->next;
        conn_close(c, false);
    }
}
