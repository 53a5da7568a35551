/* local.c: the libuv adapter serving the RPC session protocol on a unix socket (DATA_DIR/rpc.sock,
 * mode 0600). It owns the listener, the connections, their output queues (backpressure: a
 * connection whose client does not read its replies stops being read, and is closed past a hard
 * limit), one deadline timer per connection, and the clocks the protocol core is given. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "rpc/rpc-internal.h"

#ifndef RPC_READ_CHUNK
#define RPC_READ_CHUNK 65536 /* bytes read from a socket at once */
#endif

typedef struct conn conn_t;

struct rpc_local {
    uv_loop_t *loop;
    uv_pipe_t listener;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    rpc_registry_t *reg;
    rpc_auth_config_t auth; /* points into the copies below */
    uint8_t *secret, *prev_secret;
    char *audience;
    conn_t *conns;
    size_t n_conns;
    size_t closing; /* connections and the listener whose close_cb has not run yet */
    bool stopping;
    void (*done_cb)(void *arg);
    void *done_arg;
    uv_prepare_t prepare; /* writes answers given outside reads, once per loop iteration */
    bool prepare_open;
    size_t n_dirty;
    char rbuf[RPC_READ_CHUNK];
};

struct conn {
    rpc_local_t *srv;
    uv_pipe_t pipe;
    uv_timer_t timer;
    rpc_session_t *sess;
    conn_t *prev, *next;
    size_t queued; /* bytes held for the client: gathered replies and libuv writes in flight */
    p2p_buf_t out; /* replies gathered while a read is processed, written together */
    bool in_read;
    bool dirty; /* out holds answers given outside a read (counted in srv->n_dirty) */
    int open;   /* handles not yet closed */
    bool reading;
    bool draining; /* close once the queue is written (after a PARSE_ERROR) */
    bool kill;     /* close at the next safe point */
    bool closed;
};

typedef struct wreq {
    uv_write_t req;
    conn_t *c;
    size_t len;     /* bytes it counts for backpressure */
    uint8_t *owned; /* the connection's whole output buffer handed over (freed with it), or NULL */
    uint8_t data[]; /* else the bytes themselves */
} wreq_t;

#ifndef RPC_LOCAL_HANDOVER_MIN
#define RPC_LOCAL_HANDOVER_MIN 65536 /* unwritten output past this goes with the write, uncopied */
#endif

static void maybe_done(rpc_local_t *s)
{
    if (!s->stopping || s->closing > 0) return;
    void (*cb)(void *) = s->done_cb;
    void *arg = s->done_arg;
    free(s->secret);
    free(s->prev_secret);
    free(s->audience);
    free(s);
    if (cb) cb(arg);
}

static void conn_close_cb(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->open > 0) return;
    rpc_local_t *s = c->srv;
    p2p_buf_free(&c->out);
    free(c);
    s->closing--;
    maybe_done(s);
}

/* Closes a connection. Must not run inside the session's own call chain. */
static void conn_close(conn_t *c)
{
    rpc_local_t *s = c->srv;
    if (c->closed) return;
    c->closed = true;
    if (c->dirty) {
        c->dirty = false;
        s->n_dirty--;
    }
    rpc_session_free(c->sess);
    c->sess = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    s->closing++; /* counted even before a stop, so the server outlives this close */
    uv_close((uv_handle_t *)&c->pipe, conn_close_cb);
    uv_close((uv_handle_t *)&c->timer, conn_close_cb);
}

static void timer_cb(uv_timer_t *t);

/* Re-arms the deadline timer, or fires it at once when the connection must close. */
static void arm(conn_t *c, uint64_t next)
{
    if (c->closed) return;
    if (c->kill) {
        uv_timer_start(&c->timer, timer_cb, 0, 0);
        return;
    }
    if (next == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = p2p_mono_ms();
    uv_timer_start(&c->timer, timer_cb, next > now ? next - now : 0, 0);
}

static void timer_cb(uv_timer_t *t)
{
    conn_t *c = t->data;
    if (c->kill) {
        conn_close(c);
        return;
    }
    arm(c, rpc_session_periodic(c->sess, p2p_mono_ms()));
    if (c->kill) conn_close(c);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    conn_t *c = h->data;
    buf->base = c->srv->rbuf;
    buf->len = sizeof(c->srv->rbuf);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

static void set_reading(conn_t *c, bool on)
{
    if (c->closed || c->reading == on) return;
    c->reading = on;
    if (on)
        uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
    else
        uv_read_stop((uv_stream_t *)&c->pipe);
}

static void write_cb(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    conn_t *c = w->c;
    c->queued -= w->len;
    free(w->owned);
    free(w);
    if (c->closed) return;
    if (status < 0 || (c->draining && c->queued == 0)) {
        conn_close(c);
        return;
    }
    if (!c->draining && c->queued < RPC_MAX_OUTPUT / 2) set_reading(c, true);
}

/* Hands the gathered replies to the socket: what the kernel takes at once costs nothing more, the
 * rest goes out as one write. Every byte held, libuv's request included, counts for backpressure.
 */
static void flush(conn_t *c)
{
    if (c->dirty) {
        c->dirty = false;
        c->srv->n_dirty--;
    }
    if (c->out.len == 0 || c->closed) return;
    size_t off = 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->pipe) == 0) {
        uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
        int n = uv_try_write((uv_stream_t *)&c->pipe, &b, 1);
        if (n > 0) off = (size_t)n;
    }
    size_t len = c->out.len - off;
    c->queued -= off;
    if (len == 0) {
        c->out.len = 0;
        /* the kernel took it all: no write_cb will come to resume reading */
        if (!c->draining && !c->kill && c->queued < RPC_MAX_OUTPUT / 2) set_reading(c, true);
        return;
    }
    bool handover = len >= RPC_LOCAL_HANDOVER_MIN; /* the buffer itself goes with the write */
    wreq_t *w = malloc(sizeof(*w) + (handover ? 0 : len));
    if (!w) {
        c->kill = true;
        uv_timer_start(&c->timer, timer_cb, 0, 0);
        return;
    }
    uv_buf_t b;
    if (handover) {
        w->owned = c->out.data;
        b = uv_buf_init((char *)c->out.data + off, (unsigned)len);
        c->out.data = NULL;
        c->out.cap = 0;
    } else {
        w->owned = NULL;
        memcpy(w->data, c->out.data + off, len);
        b = uv_buf_init((char *)w->data, (unsigned)len);
    }
    c->out.len = 0;
    w->c = c;
    w->len = sizeof(*w) + len;
    c->queued += sizeof(*w); /* the request's own memory counts too */
    if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, write_cb) < 0) {
        c->queued -= w->len;
        free(w->owned);
        free(w);
        c->kill = true;
        uv_timer_start(&c->timer, timer_cb, 0, 0);
    }
}

/* The session's output: gathered, counted for backpressure, written by flush(). */
static int conn_write(void *ctx, const uint8_t *buf, size_t len)
{
    conn_t *c = ctx;
    if (c->closed || c->kill) return -EPIPE;
    if (c->queued + len > RPC_MAX_OUTPUT_HARD) {
        c->kill = true; /* the client reads nothing: drop it from a safe point */
        set_reading(c, false);
        uv_timer_start(&c->timer, timer_cb, 0, 0);
        return -ENOBUFS;
    }
    if (p2p_buf_append(&c->out, buf, len) < 0) return -ENOMEM;
    c->queued += len;
    if (c->queued > RPC_MAX_OUTPUT) set_reading(c, false);
    if (!c->in_read && !c->dirty) { /* an answer given later: written before the loop polls */
        c->dirty = true;
        c->srv->n_dirty++;
    }
    return 0;
}

static void prepare_cb(uv_prepare_t *h)
{
    rpc_local_t *s = h->data;
    for (conn_t *c = s->conns; c && s->n_dirty > 0; c = c->next)
        if (c->dirty) flush(c);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = st->data;
    if (nread == 0) return;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    uint64_t now = p2p_mono_ms();
    c->in_read = true;
    int r = rpc_session_input(c->sess, (const uint8_t *)buf->base, (size_t)nread, now,
                              p2p_wall_ms() / 1000);
    c->in_read = false;
    flush(c);
    if (c->kill) {
        conn_close(c);
        return;
    }
    if (r < 0) {
        /* PARSE_ERROR was queued: stop reading and close once it is written. */
        c->draining = true;
        set_reading(c, false);
        if (c->queued == 0) conn_close(c);
        return;
    }
    arm(c, rpc_session_periodic(c->sess, now));
}

static void reject_close_cb(uv_handle_t *h)
{
    free(h);
}

static void connection_cb(uv_stream_t *ls, int status)
{
    rpc_local_t *s = ls->data;
    if (status < 0 || s->stopping) return;
    conn_t *c = calloc(1, sizeof(*c));
    if (!c || s->n_conns >= RPC_MAX_CONNECTIONS) {
        /* accept and drop, so the backlog does not fill with clients we will not serve */
        uv_pipe_t *p = malloc(sizeof(*p));
        free(c);
        if (!p || uv_pipe_init(s->loop, p, 0) < 0) {
            free(p);
            return;
        }
        if (uv_accept(ls, (uv_stream_t *)p) < 0) {
        }
        uv_close((uv_handle_t *)p, reject_close_cb);
        return;
    }
    c->srv = s;
    p2p_buf_init(&c->out, RPC_MAX_OUTPUT_HARD);
    uv_pipe_init(s->loop, &c->pipe, 0);
    uv_timer_init(s->loop, &c->timer);
    c->pipe.data = c->timer.data = c;
    c->open = 2;
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    c->sess = rpc_session_new(s->reg, &s->auth, conn_write, c);
    if (!c->sess || uv_accept(ls, (uv_stream_t *)&c->pipe) < 0) {
        conn_close(c);
        return;
    }
    set_reading(c, true);
}

static void listener_close_cb(uv_handle_t *h)
{
    rpc_local_t *s = h->data;
    s->closing--;
    maybe_done(s);
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

int rpc_local_start(uv_loop_t *loop, const char *path, rpc_registry_t *reg,
                    const rpc_auth_config_t *auth, rpc_local_t **out)
{
    struct stat st;
    int r = -ENOMEM;
    *out = NULL;
    if (!loop || !path || !reg || !auth || strlen(path) >= sizeof(((rpc_local_t *)0)->path))
        return path && strlen(path) > 0 ? -ENAMETOOLONG : -EINVAL;
    rpc_local_t *s = calloc(1, sizeof(*s));
    if (!s) return -ENOMEM;
    s->loop = loop;
    s->reg = reg;
    strcpy(s->path, path);
    if (auth->secret && !(s->secret = dup_bytes(auth->secret, auth->secret_len))) goto fail;
    if (auth->prev_secret &&
        !(s->prev_secret = dup_bytes(auth->prev_secret, auth->prev_secret_len)))
        goto fail;
    if (auth->audience && !(s->audience = strdup(auth->audience))) goto fail;
    s->auth = (rpc_auth_config_t){.secret = s->secret,
                                  .secret_len = auth->secret_len,
                                  .prev_secret = s->prev_secret,
                                  .prev_secret_len = auth->prev_secret_len,
                                  .audience = s->audience,
                                  .is_revoked = auth->is_revoked,
                                  .revoked_ctx = auth->revoked_ctx};
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            r = -EEXIST;
            goto fail;
        }
        unlink(path);
    }
    if ((r = uv_pipe_init(loop, &s->listener, 0)) < 0) goto fail;
    s->listener.data = s;
    mode_t old = umask(0177);
    r = uv_pipe_bind(&s->listener, path);
    umask(old);
    if (r == 0 && chmod(path, 0600) < 0) r = -errno;
    if (r == 0) r = uv_listen((uv_stream_t *)&s->listener, 128, connection_cb);
    if (r < 0) {
        /* The handle lives inside s: the loop frees s from its close callback. */
        unlink(path);
        s->stopping = true;
        s->closing = 1;
        uv_close((uv_handle_t *)&s->listener, listener_close_cb);
        return r;
    }
    uv_prepare_init(loop, &s->prepare);
    s->prepare.data = s;
    uv_prepare_start(&s->prepare, prepare_cb);
    s->prepare_open = true;
    *out = s;
    return 0;
fail:
    free(s->secret);
    free(s->prev_secret);
    free(s->audience);
    free(s);
    return r;
}

void rpc_local_stop(rpc_local_t *s, void (*done_cb)(void *arg), void *arg)
{
    if (!s || s->stopping) return;
    s->stopping = true;
    s->done_cb = done_cb;
    s->done_arg = arg;
    unlink(s->path);
    s->closing++;
    uv_close((uv_handle_t *)&s->listener, listener_close_cb);
    if (s->prepare_open) {
        s->prepare_open = false;
        s->closing++;
        uv_close((uv_handle_t *)&s->prepare, listener_close_cb);
    }
    while (s->conns)
        conn_close(s->conns);
}
