/* transfer.c: p2p-rpc push and pull (docs/transfer.md). One connection to the local socket carries
 * a window of XFER_WINDOW pipelined chunk calls (system.NODE.file.write / file.read, XFER_CHUNK
 * bytes each, every call with its own deadline), so neither this process nor the nodes ever hold
 * more than the window. The bytes go to a `.p2p-part` file beside the destination: a later run
 * resumes from its size once the prefix's SHA-256 matches on both sides; at the end the whole
 * file's SHA-256 (computed here while the bytes stream) is compared with file.checksum and only
 * then is the part file renamed over the destination. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <jansson.h>

#include "base/base.h"
#include "base/hash.h"
#include "cli/convert.h"
#include "cli/transfer.h"
#include "rpc/peer.h"
#include "rpc/rpc.h"

#ifndef XFER_CHUNK
#define XFER_CHUNK (1024u * 1024) /* bytes per file.read / file.write call (the service's max) */
#endif
#ifndef XFER_WINDOW
#define XFER_WINDOW 6 /* chunk calls in flight on the connection (see the assertion below) */
#endif
#ifndef XFER_PART_SUFFIX
#define XFER_PART_SUFFIX ".p2p-part" /* appended to the destination while the bytes arrive */
#endif
#ifndef XFER_MAX_PATH
#define XFER_MAX_PATH 4096 /* length of a local or remote path, suffix included */
#endif
#ifndef XFER_MAX_NODE
#define XFER_MAX_NODE 128 /* length of the NODE part of NODE:PATH */
#endif
#ifndef XFER_CHECKSUM_BPS
#define XFER_CHECKSUM_BPS                                                                          \
    (50.0 * 1000 * 1000) /* slowest hash rate assumed for file.checksum's deadline */
#endif
#ifndef XFER_SLACK_MS
#define XFER_SLACK_MS 1000 /* client-side wait past a call's own deadline */
#endif
#ifndef XFER_PROGRESS_MS
#define XFER_PROGRESS_MS 200 /* progress bar redraw interval */
#endif
#ifndef XFER_RECV_BUF
#define XFER_RECV_BUF (256u * 1024) /* bytes read from the socket at once */
#endif

/* The answers of a full window must stay under the mark where a node stops reading a connection
 * (its queued output, box-stream overhead included), so that the window never depends on it. */
_Static_assert((uint64_t)XFER_WINDOW *(XFER_CHUNK + XFER_CHUNK / 64) < RPC_MAX_OUTPUT &&
                   (uint64_t)XFER_WINDOW * (XFER_CHUNK + XFER_CHUNK / 64) < RPC_PEER_MAX_OUTPUT,
               "XFER_WINDOW x XFER_CHUNK must stay below the nodes' output marks");

#define EXIT_CALL  1
#define EXIT_USAGE 2

/* --- SHA-256 (base/hash.h: libcrypto's SHA-NI/AVX2 code; libsodium's portable SHA-256 alone
 * would cap a transfer below 200 MB/s) --------------------------------------------------- */

/* Starts a SHA-256; false on no memory. */
static bool sha_init(p2p_hash_t *h)
{
    return p2p_hash_init(h, P2P_HASH_SHA256) == 0;
}

/* Writes the digest as 64 hex digits and a NUL into hex; the hash is then released. */
static void sha_final_hex(p2p_hash_t *h, char hex[65])
{
    uint8_t d[P2P_HASH_LEN];
    p2p_hash_final(h, d);
    p2p_hex_encode(hex, d, sizeof(d));
}

/* --- the connection: pipelined msgpack-RPC over the local socket -------------------------- */

typedef struct conn {
    int fd;
    rpc_decoder_t dec;
    msgpack_sbuffer out; /* packed requests; bytes before out_off are sent */
    size_t out_off;
    uint8_t *rbuf;
    uint32_t next_id;
} conn_t;

enum { KV_STR, KV_INT, KV_BOOL, KV_BIN };

/* One named argument of a call. */
typedef struct kv {
    const char *k;
    int type;
    const char *s; /* KV_STR */
    int64_t i;     /* KV_INT, KV_BOOL */
    const void *p; /* KV_BIN */
    size_t n;
} kv_t;

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* Appends the request [0, id, method, [{kv..., _timeout}]] to the output; returns its msgid. */
static uint32_t conn_queue(conn_t *c, const char *method, const kv_t *kv, size_t n, double tmo)
{
    if (c->out_off == c->out.size) {
        c->out.size = c->out_off = 0;
    } else if (c->out_off > c->out.size / 2) {
        memmove(c->out.data, c->out.data + c->out_off, c->out.size - c->out_off);
        c->out.size -= c->out_off;
        c->out_off = 0;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->out, msgpack_sbuffer_write);
    uint32_t id = ++c->next_id;
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint8(&pk, 0);
    msgpack_pack_uint32(&pk, id);
    pack_cstr(&pk, method);
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, n + (tmo > 0));
    for (size_t i = 0; i < n; i++) {
        pack_cstr(&pk, kv[i].k);
        switch (kv[i].type) {
        case KV_STR:
            pack_cstr(&pk, kv[i].s);
            break;
        case KV_INT:
            msgpack_pack_int64(&pk, kv[i].i);
            break;
        case KV_BOOL:
            if (kv[i].i)
                msgpack_pack_true(&pk);
            else
                msgpack_pack_false(&pk);
            break;
        default:
            msgpack_pack_bin(&pk, kv[i].n);
            msgpack_pack_bin_body(&pk, kv[i].p, kv[i].n);
            break;
        }
    }
    if (tmo > 0) {
        pack_cstr(&pk, "_timeout");
        msgpack_pack_double(&pk, tmo);
    }
    return id;
}

/* Sends what it can and reads what arrives until a whole frame is decoded. Returns 1 and *out,
 * 0 when the deadline passed, or a negative errno (-ECONNRESET when the node closed). */
static int conn_pump(conn_t *c, uint64_t deadline, rpc_frame_t **out)
{
    for (;;) {
        int r = rpc_decoder_next(&c->dec, out);
        if (r != 0) return r;
        uint64_t now = p2p_mono_ms();
        if (now >= deadline) return 0;
        bool sending = c->out.size > c->out_off;
        struct pollfd p = {.fd = c->fd, .events = POLLIN | (sending ? POLLOUT : 0)};
        int pr = poll(&p, 1, (int)P2P_MIN(deadline - now, (uint64_t)1000));
        if (pr < 0 && errno != EINTR) return -errno;
        if (pr <= 0) continue;
        if (sending && (p.revents & POLLOUT)) {
            ssize_t w = send(c->fd, c->out.data + c->out_off, c->out.size - c->out_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0 && errno != EAGAIN && errno != EINTR) return -errno;
            if (w > 0) c->out_off += (size_t)w;
        }
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(c->fd, c->rbuf, XFER_RECV_BUF, MSG_DONTWAIT);
            if (n == 0) return -ECONNRESET;
            if (n < 0 && errno != EAGAIN && errno != EINTR) return -errno;
            if (n > 0 && (r = rpc_decoder_feed(&c->dec, c->rbuf, (size_t)n)) < 0) return r;
        }
    }
}

static int conn_open(conn_t *c, const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    rpc_decoder_init(&c->dec);
    msgpack_sbuffer_init(&c->out);
    if (!(c->rbuf = malloc(XFER_RECV_BUF))) return -ENOMEM;
    if (strlen(path) >= sizeof(sa.sun_path)) return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) return -errno;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) return -errno;
    return 0;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) close(c->fd);
    rpc_decoder_free(&c->dec);
    msgpack_sbuffer_destroy(&c->out);
    free(c->rbuf);
    memset(c, 0, sizeof(*c));
    c->fd = -1;
}

/* --- msgpack answers ---------------------------------------------------------------------- */

static const msgpack_object *mget(const msgpack_object *m, const char *key)
{
    size_t kl = strlen(key);
    if (!m || m->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
            !memcmp(k->via.str.ptr, key, kl))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

static bool mint(const msgpack_object *m, const char *key, int64_t *out)
{
    const msgpack_object *v = mget(m, key);
    if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
        *out = (int64_t)v->via.u64;
    else if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = v->via.i64;
    else
        return false;
    return true;
}

/* The bytes of a string or bin value; NULL when key is absent or of another type. */
static const char *mbytes(const msgpack_object *m, const char *key, size_t *len)
{
    const msgpack_object *v = mget(m, key);
    *len = 0;
    if (v && (v->type == MSGPACK_OBJECT_STR || v->type == MSGPACK_OBJECT_BIN)) {
        *len = v->via.str.size; /* str and bin share their layout */
        return v->via.str.ptr ? v->via.str.ptr : "";
    }
    return NULL;
}

static bool mstr_eq(const msgpack_object *m, const char *key, const char *want)
{
    size_t n;
    const char *s = mbytes(m, key, &n);
    return s && n == strlen(want) && !memcmp(s, want, n);
}

/* --- the transfer ------------------------------------------------------------------------- */

typedef struct slot {
    uint32_t id; /* 0: free */
    uint64_t off;
    size_t len;
    uint64_t deadline;
    rpc_frame_t *frame; /* pull: the answer, kept until its turn to be written and hashed */
    bool acked;         /* push: written */
} slot_t;

typedef struct xfer {
    const cli_transfer_opts_t *o;
    bool push;
    conn_t c;
    char node[XFER_MAX_NODE + 1];
    char rpath[XFER_MAX_PATH], rpart[XFER_MAX_PATH]; /* remote path and its part file */
    char local[XFER_MAX_PATH], lpart[XFER_MAX_PATH];
    char label[40]; /* file name shown on the progress bar */
    int fd;         /* push: the local file; pull: the local part file */
    uint64_t size, start, done;
    p2p_hash_t sha;
    char digest[65];
    uint8_t *buf; /* XFER_CHUNK bytes */
    slot_t slots[XFER_WINDOW];
    unsigned head, count;             /* ring of slots in flight, oldest at head */
    uint64_t t0, drawn_at, verify_ms; /* verify_ms: waiting for the far checksum at the end */
    bool tty, drawn;
    char etag[128];         /* pull: the source's etag at the start ("" when it has none) */
    uint32_t sum_id;        /* pull: the far file's file.checksum, asked for while reading */
    rpc_frame_t *sum_frame; /* its answer once it came */
    uint64_t sum_deadline;
} xfer_t;

static void method_name(const xfer_t *x, char *out, size_t cap, const char *m)
{
    snprintf(out, cap, "system.%s.file.%s", x->node, m);
}

static void progress_clear(xfer_t *x)
{
    if (x->drawn) fputs("\r\033[K", stderr);
    x->drawn = false;
}

static void human(char *out, size_t cap, double b)
{
    const char *u[] = {"B", "kB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1000 && i < 4)
        b /= 1000, i++;
    snprintf(out, cap, i ? "%.1f %s" : "%.0f %s", b, u[i]);
}

/* Draws "name [####    ]  42.0%  420.0 MB / 1.0 GB  230.1 MB/s  ETA 0:02" on stderr. */
static void progress(xfer_t *x, bool force)
{
    uint64_t now = p2p_mono_ms();
    if (!x->tty || (!force && now - x->drawn_at < XFER_PROGRESS_MS)) return;
    x->drawn_at = now;
    double secs = (double)(now - x->t0) / 1000.0;
    double rate = secs > 0 ? (double)(x->done - x->start) / secs : 0;
    double frac = x->size ? (double)x->done / (double)x->size : 1.0;
    char bar[25], done[16], total[16], eta[16] = "-:--";
    int fill = (int)(frac * 24);
    for (int i = 0; i < 24; i++)
        bar[i] = i < fill ? '#' : ' ';
    bar[24] = 0;
    human(done, sizeof(done), (double)x->done);
    human(total, sizeof(total), (double)x->size);
    if (rate > 0) {
        uint64_t s = (uint64_t)((double)(x->size - x->done) / rate);
        snprintf(eta, sizeof(eta), "%u:%02u", (unsigned)(s / 60), (unsigned)(s % 60));
    }
    fprintf(stderr, "\r%s [%s] %5.1f%%  %s / %s  %.1f MB/s  ETA %s\033[K", x->label, bar,
            frac * 100, done, total, rate / 1e6, eta);
    x->drawn = true;
}

/* Prints "error CODE NAME: message data (what)" for an error object of an answer. */
static void print_rpc_error(xfer_t *x, const msgpack_object *err, const char *what)
{
    json_t *j = cli_msgpack_to_json(err);
    json_t *code = json_object_get(j, "code"), *msg = json_object_get(j, "message");
    json_t *data = json_object_get(j, "data");
    int c = json_is_integer(code) ? (int)json_integer_value(code) : 0;
    char *d = data ? json_dumps(data, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    progress_clear(x);
    fprintf(stderr, "error %d %s: %s%s%s (%s)\n", c, rpc_error_name(c),
            json_is_string(msg) ? json_string_value(msg) : "(no message)", d ? " " : "", d ? d : "",
            what);
    free(d);
    json_decref(j);
}

/* Prints a failure of the transfer itself (local I/O, mismatch) as "p2p-rpc push: ...". */
static int fail(xfer_t *x, const char *fmt, const char *a, const char *b)
{
    progress_clear(x);
    fprintf(stderr, "p2p-rpc %s: ", x->push ? "push" : "pull");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return -1;
}

static int err_code(const msgpack_object *err)
{
    int64_t c = 0;
    return mint(err, "code", &c) ? (int)c : 0;
}

/* Waits for the next response. Returns 0 with *out (caller frees) and its msgid in *id, or -1
 * after printing why (timeout, closed connection, bad frame, an error about the stream). */
static int next_response(xfer_t *x, uint64_t deadline, rpc_frame_t **out, uint32_t *id)
{
    for (;;) {
        rpc_frame_t *f = NULL;
        int r = conn_pump(&x->c, deadline, &f);
        if (r <= 0) {
            progress_clear(x);
            if (r == 0)
                fprintf(stderr, "error %d TIMEOUT: no answer from the node in time\n",
                        RPC_ERR_TIMEOUT);
            else if (r == -ECONNRESET || r == -EPIPE)
                fprintf(stderr, "error %d UNAVAILABLE: the node closed the connection\n",
                        RPC_ERR_UNAVAILABLE);
            else
                fprintf(stderr, "error %d PARSE_ERROR: bad answer from the node (%s)\n",
                        RPC_ERR_PARSE, strerror(-r));
            return -1;
        }
        const msgpack_object *a = &f->unp.data;
        if (a->type == MSGPACK_OBJECT_ARRAY && a->via.array.size == 4 &&
            a->via.array.ptr[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
            a->via.array.ptr[0].via.u64 == 1) {
            const msgpack_object *mid = &a->via.array.ptr[1];
            if (mid->type == MSGPACK_OBJECT_POSITIVE_INTEGER && mid->via.u64 <= UINT32_MAX) {
                *id = (uint32_t)mid->via.u64;
                *out = f;
                return 0;
            }
            if (mid->type == MSGPACK_OBJECT_NIL) {
                print_rpc_error(x, &a->via.array.ptr[2], "the connection");
                rpc_frame_free(f);
                return -1;
            }
        }
        rpc_frame_free(f); /* a notification or a stray answer */
    }
}

static const msgpack_object *resp_err(const rpc_frame_t *f)
{
    const msgpack_object *e = &f->unp.data.via.array.ptr[2];
    return e->type == MSGPACK_OBJECT_NIL ? NULL : e;
}

static const msgpack_object *resp_res(const rpc_frame_t *f)
{
    return &f->unp.data.via.array.ptr[3];
}

/* One call, waited for. Returns 0 with *out (the answer, maybe an error: see resp_err), or -1
 * after printing a transport failure. */
static int call(xfer_t *x, const char *m, const kv_t *kv, size_t n, double tmo, rpc_frame_t **out)
{
    char method[RPC_MAX_METHOD_NAME + 1];
    if (!strncmp(m, "rpc.", 4))
        snprintf(method, sizeof(method), "%s", m);
    else
        method_name(x, method, sizeof(method), m);
    uint32_t id = conn_queue(&x->c, method, kv, n, tmo);
    uint64_t deadline = p2p_mono_ms() + (uint64_t)(x->o->timeout_s * 1000) + XFER_SLACK_MS;
    if (tmo > x->o->timeout_s) deadline += (uint64_t)((tmo - x->o->timeout_s) * 1000);
    for (;;) {
        uint32_t rid = 0;
        if (next_response(x, deadline, out, &rid) < 0) return -1;
        if (rid == id) return 0;
        rpc_frame_free(*out);
    }
}

/* The deadline of file.checksum over len bytes: the chunk deadline plus time to hash them. */
static double checksum_timeout(const xfer_t *x, uint64_t len)
{
    double t = x->o->timeout_s + (double)len / XFER_CHECKSUM_BPS;
    return t < RPC_MAX_TIMEOUT_S ? t : RPC_MAX_TIMEOUT_S;
}

/* Reads a file.checksum answer of path (frees it). Returns 0 with the hex digest, the size and
 * the etag (when etag is not NULL; "" when absent), 1 when the call failed (printed unless quiet).
 */
static int sha_answer(xfer_t *x, rpc_frame_t *f, const char *path, char hex[65], uint64_t *size,
                      char *etag, size_t etag_cap, bool quiet)
{
    int rc = 1;
    size_t n = 0, el = 0;
    int64_t sz = 0;
    const char *d = mbytes(resp_res(f), "digest", &n), *et = mbytes(resp_res(f), "etag", &el);
    if (resp_err(f)) {
        if (!quiet) print_rpc_error(x, resp_err(f), "file.checksum");
    } else if (d && n == 64 && mint(resp_res(f), "size", &sz) && sz >= 0) {
        memcpy(hex, d, 64);
        hex[64] = 0;
        for (int i = 0; i < 64; i++)
            if (hex[i] >= 'A' && hex[i] <= 'F') hex[i] = (char)(hex[i] - 'A' + 'a');
        *size = (uint64_t)sz;
        if (etag) snprintf(etag, etag_cap, "%.*s", et && el < etag_cap ? (int)el : 0, et ? et : "");
        rc = 0;
    } else if (!quiet) {
        fail(x, "file.checksum of %s%s answered without a sha256 digest and size", path, "");
    }
    rpc_frame_free(f);
    return rc;
}

/* Queues file.checksum {path, algo: sha256[, length]} (len < 0: the whole file); returns its id. */
static uint32_t queue_sha(xfer_t *x, const char *path, int64_t len, uint64_t *deadline)
{
    char method[RPC_MAX_METHOD_NAME + 1];
    kv_t kv[] = {
        {"path", KV_STR, .s = path}, {"algo", KV_STR, .s = "sha256"}, {"length", KV_INT, .i = len}};
    double tmo = checksum_timeout(x, len < 0 ? x->size : (uint64_t)len);
    method_name(x, method, sizeof(method), "checksum");
    *deadline = p2p_mono_ms() + (uint64_t)(tmo * 1000) + XFER_SLACK_MS;
    return conn_queue(&x->c, method, kv, len < 0 ? 2 : 3, tmo);
}

/* file.checksum of the first len bytes of path (len < 0: the whole file), waited for. Returns as
 * sha_answer(), or -1 on a transport failure (printed). */
static int remote_sha(xfer_t *x, const char *path, int64_t len, char hex[65], uint64_t *size,
                      bool quiet)
{
    uint64_t deadline;
    uint32_t id = queue_sha(x, path, len, &deadline), rid = 0;
    rpc_frame_t *f = NULL;
    for (;;) {
        if (next_response(x, deadline, &f, &rid) < 0) return -1;
        if (rid == id) return sha_answer(x, f, path, hex, size, NULL, 0, quiet);
        rpc_frame_free(f);
    }
}

/* Hashes the first len bytes of x->fd into x->sha and into also (when not NULL). Returns 0 or -1
 * (printed). */
static int hash_prefix(xfer_t *x, uint64_t len, p2p_hash_t *also)
{
    const char *path = x->push ? x->local : x->lpart;
    for (uint64_t off = 0; off < len;) {
        size_t want = (size_t)P2P_MIN((uint64_t)XFER_CHUNK, len - off);
        ssize_t r = pread(x->fd, x->buf, want, (off_t)off);
        if (r <= 0)
            return fail(x, "cannot read %s: %s", path, r < 0 ? strerror(errno) : "file shrank");
        p2p_hash_update(&x->sha, x->buf, (size_t)r);
        if (also) p2p_hash_update(also, x->buf, (size_t)r);
        off += (uint64_t)r;
    }
    return 0;
}

/* Decides where to resume from, given a part file of part_size bytes: its prefix must hash the
 * same here and on the far side (push: the local file vs the far part; pull: the local part vs
 * the far file). On a match x->sha holds the prefix and x->start = part_size; else both restart
 * from 0. Returns 0, or -1 after printing a failure. */
static int choose_start(xfer_t *x, uint64_t part_size)
{
    char mine[65], theirs[65];
    uint64_t sz = 0;
    x->start = 0;
    if (part_size == 0 || part_size > x->size) return 0;
    p2p_hash_t scratch;
    if (!sha_init(&scratch)) return fail(x, "out of memory%s%s", "", "");
    int r = hash_prefix(x, part_size, &scratch);
    if (r == 0) sha_final_hex(&scratch, mine);
    p2p_hash_free(&scratch);
    if (r < 0) return -1;
    r = remote_sha(x, x->push ? x->rpart : x->rpath, (int64_t)part_size, theirs, &sz, x->push);
    if (r < 0 || (r == 1 && !x->push)) return -1; /* printed */
    if (r == 0 && !strcmp(mine, theirs)) { /* sz: the file's size or the length, per service */
        x->start = part_size;
        return 0;
    }
    p2p_hash_free(&x->sha); /* start over */
    return sha_init(&x->sha) ? 0 : fail(x, "out of memory%s%s", "", "");
}

/* file.stat of path. Returns 0 with the answer in *out (no error), 1 when it does not exist, or
 * -1 after printing a failure. */
static int remote_stat(xfer_t *x, const char *path, rpc_frame_t **out)
{
    kv_t kv[] = {{"path", KV_STR, .s = path}};
    if (call(x, "stat", kv, 1, x->o->timeout_s, out) < 0) return -1;
    const msgpack_object *err = resp_err(*out);
    if (!err) return 0;
    /* the file is absent: NOT_FOUND naming `path` (not the router's NOT_FOUND for the node) */
    bool absent = err_code(err) == RPC_ERR_NOT_FOUND && mstr_eq(mget(err, "data"), "param", "path");
    if (!absent) print_rpc_error(x, err, "file.stat");
    rpc_frame_free(*out);
    *out = NULL;
    return absent ? 1 : -1;
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Appends "/" (when missing) and name to path; -1 (printed) when it would not fit. */
static int join(xfer_t *x, char *path, const char *name)
{
    size_t l = strlen(path);
    const char *sep = l && path[l - 1] == '/' ? "" : "/";
    if (!*name) return fail(x, "%s%s: no file name to use in that directory", path, "");
    if (l + strlen(sep) + strlen(name) + sizeof(XFER_PART_SUFFIX) > XFER_MAX_PATH)
        return fail(x, "%s%s: path too long", path, name);
    strcat(path, sep);
    strcat(path, name);
    return 0;
}

/* The deadline (ms) of the oldest call in flight. */
static uint64_t window_deadline(const xfer_t *x)
{
    uint64_t d = UINT64_MAX;
    for (unsigned i = 0; i < x->count; i++)
        d = P2P_MIN(d, x->slots[(x->head + i) % XFER_WINDOW].deadline);
    return d;
}

static slot_t *find_slot(xfer_t *x, uint32_t id)
{
    for (unsigned i = 0; i < x->count; i++) {
        slot_t *s = &x->slots[(x->head + i) % XFER_WINDOW];
        if (s->id == id) return s;
    }
    return NULL;
}

/* Push: reads [off, off+len) of the local file, hashes it and queues its file.write. */
static int issue_write(xfer_t *x, const char *method, slot_t *s, bool truncate)
{
    ssize_t r = s->len ? pread(x->fd, x->buf, s->len, (off_t)s->off) : 0;
    if (r != (ssize_t)s->len)
        return fail(x, "cannot read %s: %s", x->local,
                    r < 0 ? strerror(errno) : "the file shrank during the transfer");
    p2p_hash_update(&x->sha, x->buf, s->len);
    kv_t kv[5] = {{"path", KV_STR, .s = x->rpart},
                  {"data", KV_BIN, .p = x->buf, .n = s->len},
                  {"offset", KV_INT, .i = (int64_t)s->off}};
    size_t n = 3;
    if (truncate) kv[n++] = (kv_t){"truncate", KV_BOOL, .i = 1};
    if (x->o->sync && s->off + s->len >= x->size) kv[n++] = (kv_t){"sync", KV_BOOL, .i = 1};
    s->id = conn_queue(&x->c, method, kv, n, x->o->timeout_s);
    return 0;
}

/* Pull: queues the file.read of [off, off+len). */
static void issue_read(xfer_t *x, const char *method, slot_t *s)
{
    kv_t kv[] = {{"path", KV_STR, .s = x->rpath},
                 {"offset", KV_INT, .i = (int64_t)s->off},
                 {"length", KV_INT, .i = (int64_t)s->len}};
    s->id = conn_queue(&x->c, method, kv, 3, x->o->timeout_s);
}

/* Push: checks a file.write answer. Returns 0 or -1 (printed). */
static int check_write(xfer_t *x, const slot_t *s, const rpc_frame_t *f)
{
    char what[64];
    int64_t written = (int64_t)s->len;
    snprintf(what, sizeof(what), "file.write at offset %llu", (unsigned long long)s->off);
    if (resp_err(f)) {
        print_rpc_error(x, resp_err(f), what);
        return -1;
    }
    mint(resp_res(f), "written", &written);
    if (written != (int64_t)s->len)
        return fail(x, "%s: %s wrote fewer bytes than sent", what, x->node);
    return 0;
}

/* Pull: writes the answer of the oldest read at its offset of the part file and hashes it.
 * Returns 0 or -1 (printed). */
static int retire_read(xfer_t *x, slot_t *s)
{
    const msgpack_object *res = resp_res(s->frame);
    size_t n = 0, el = 0;
    const char *data = mbytes(res, "data", &n), *etag = mbytes(res, "etag", &el);
    char at[32];
    snprintf(at, sizeof(at), "%llu", (unsigned long long)s->off);
    if (!data || n != s->len)
        return fail(x, "%s changed during the transfer (short read at offset %s); run again",
                    x->rpath, at);
    if (x->etag[0] && etag && (el != strlen(x->etag) || memcmp(etag, x->etag, el)))
        return fail(x, "%s changed during the transfer (its etag differs at offset %s); run again",
                    x->rpath, at);
    for (size_t w = 0; w < n;) {
        ssize_t r = pwrite(x->fd, data + w, n - w, (off_t)(s->off + w));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return fail(x, "cannot write %s: %s", x->lpart, strerror(errno));
        w += (size_t)r;
    }
    p2p_hash_update(&x->sha, data, n);
    x->done += n;
    return 0;
}

/* Moves the bytes from x->done to x->size with XFER_WINDOW chunk calls in flight. Returns 0 or
 * -1 (printed). */
static int pipeline(xfer_t *x)
{
    char method[RPC_MAX_METHOD_NAME + 1];
    method_name(x, method, sizeof(method), x->push ? "write" : "read");
    uint64_t next = x->done;
    while (x->done < x->size) {
        while (x->count < XFER_WINDOW && next < x->size) {
            slot_t *s = &x->slots[(x->head + x->count) % XFER_WINDOW];
            *s =
                (slot_t){.off = next, .len = (size_t)P2P_MIN((uint64_t)XFER_CHUNK, x->size - next)};
            s->deadline = p2p_mono_ms() + (uint64_t)(x->o->timeout_s * 1000) + XFER_SLACK_MS;
            if (x->push && issue_write(x, method, s, false) < 0) return -1;
            if (!x->push) issue_read(x, method, s);
            x->count++;
            next += s->len;
        }
        rpc_frame_t *f = NULL;
        uint32_t id = 0;
        if (next_response(x, window_deadline(x), &f, &id) < 0) return -1;
        if (x->sum_id && id == x->sum_id && !x->sum_frame) {
            x->sum_frame = f;
            continue;
        }
        slot_t *s = find_slot(x, id);
        if (!s) {
            rpc_frame_free(f);
            continue;
        }
        if (x->push) {
            int r = check_write(x, s, f);
            rpc_frame_free(f);
            if (r < 0) return -1;
            s->acked = true;
            x->done += s->len;
        } else if (resp_err(f)) {
            char what[64];
            snprintf(what, sizeof(what), "file.read at offset %llu", (unsigned long long)s->off);
            print_rpc_error(x, resp_err(f), what);
            rpc_frame_free(f);
            return -1;
        } else {
            s->frame = f;
        }
        while (x->count) {
            slot_t *h = &x->slots[x->head];
            if (!h->acked && !h->frame) break;
            int r = h->frame ? retire_read(x, h) : 0;
            rpc_frame_free(h->frame);
            h->frame = NULL;
            h->id = 0;
            if (r < 0) return -1;
            x->head = (x->head + 1) % XFER_WINDOW;
            x->count--;
        }
        progress(x, false);
    }
    return 0;
}

/* Compares the far file's (push: the part's) SHA-256 with ours. Returns 0, or -1 (printed; the
 * part file is removed on a mismatch so that the next run starts over). */
static int verify(xfer_t *x)
{
    char theirs[65], etag[sizeof(x->etag)];
    uint64_t sz = 0;
    int r;
    sha_final_hex(&x->sha, x->digest);
    if (x->sum_id) { /* pull: asked for at the start, answered by now or soon */
        while (!x->sum_frame) {
            rpc_frame_t *f = NULL;
            uint32_t id = 0;
            if (next_response(x, x->sum_deadline, &f, &id) < 0) return -1;
            if (id == x->sum_id)
                x->sum_frame = f;
            else
                rpc_frame_free(f);
        }
        r = sha_answer(x, x->sum_frame, x->rpath, theirs, &sz, etag, sizeof(etag), false);
        x->sum_frame = NULL;
        if (r == 0 && x->etag[0] && etag[0] && strcmp(etag, x->etag))
            return fail(x, "%s changed during the transfer (its etag differs); run again%s",
                        x->rpath, "");
    } else {
        r = remote_sha(x, x->push ? x->rpart : x->rpath, -1, theirs, &sz, false);
    }
    if (r != 0) return -1;
    if (sz == x->size && !strcmp(theirs, x->digest)) return 0;
    if (x->push) {
        kv_t kv[] = {{"path", KV_STR, .s = x->rpart}};
        rpc_frame_t *f = NULL;
        if (call(x, "remove", kv, 1, x->o->timeout_s, &f) == 0) rpc_frame_free(f);
    } else {
        unlink(x->lpart);
    }
    progress_clear(x);
    fprintf(stderr,
            "p2p-rpc %s: checksum mismatch: sha256 %s here, %s on %s (%llu bytes); the part "
            "file was removed, run again\n",
            x->push ? "push" : "pull", x->digest, theirs, x->node, (unsigned long long)sz);
    return -1;
}

/* Push, before the pipeline: opens the local file, settles the far path and its part file,
 * decides where to resume and, when starting over, writes the first chunk alone with truncate.
 * Returns 0 or -1 (printed). */
static int do_push(xfer_t *x)
{
    struct stat st;
    rpc_frame_t *f = NULL;
    if ((x->fd = open(x->local, O_RDONLY | O_CLOEXEC)) < 0 || fstat(x->fd, &st) < 0)
        return fail(x, "cannot open %s: %s", x->local, strerror(errno));
    if (!S_ISREG(st.st_mode)) return fail(x, "%s%s is not a regular file", x->local, "");
    x->size = (uint64_t)st.st_size;
    posix_fadvise(x->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    size_t l = strlen(x->rpath);
    bool dir = x->rpath[l - 1] == '/';
    if (!dir) {
        int r = remote_stat(x, x->rpath, &f);
        if (r < 0) return -1;
        dir = r == 0 && mstr_eq(resp_res(f), "type", "dir");
        rpc_frame_free(f);
    }
    if (dir && join(x, x->rpath, base_name(x->local)) < 0) return -1;
    snprintf(x->rpart, sizeof(x->rpart), "%s%s", x->rpath, XFER_PART_SUFFIX);
    int64_t part = 0;
    int r = remote_stat(x, x->rpart, &f);
    if (r < 0) return -1;
    if (r == 0) {
        bool is_file = mstr_eq(resp_res(f), "type", "file");
        bool sized = mint(resp_res(f), "size", &part);
        rpc_frame_free(f);
        if (!is_file || !sized || part < 0)
            return fail(x, "%s on %s exists and is not a regular file", x->rpart, x->node);
    }
    if (choose_start(x, (uint64_t)part) < 0) return -1;
    x->done = x->start;
    if (x->start > 0) return 0;
    /* from the start: the first chunk alone, cutting whatever an older part file held */
    char method[RPC_MAX_METHOD_NAME + 1];
    method_name(x, method, sizeof(method), "write");
    slot_t s = {.len = (size_t)P2P_MIN((uint64_t)XFER_CHUNK, x->size)};
    uint64_t deadline = p2p_mono_ms() + (uint64_t)(x->o->timeout_s * 1000) + XFER_SLACK_MS;
    if (issue_write(x, method, &s, true) < 0) return -1;
    for (;;) {
        uint32_t id = 0;
        if (next_response(x, deadline, &f, &id) < 0) return -1;
        if (id == s.id) break;
        rpc_frame_free(f);
    }
    r = check_write(x, &s, f);
    rpc_frame_free(f);
    x->done = s.len;
    return r;
}

/* Pull, before the pipeline: stats the far file, settles the local path, opens the local part
 * file and decides where to resume. Returns 0 or -1 (printed). */
static int do_pull(xfer_t *x, int64_t *mode)
{
    rpc_frame_t *f = NULL;
    int64_t size = -1;
    struct stat st;
    int r = remote_stat(x, x->rpath, &f);
    if (r == 1) {
        progress_clear(x);
        fprintf(stderr, "error %d NOT_FOUND: %s does not exist on %s (file.stat)\n",
                RPC_ERR_NOT_FOUND, x->rpath, x->node);
    }
    if (r != 0) return -1;
    const msgpack_object *res = resp_res(f);
    bool is_file = mstr_eq(res, "type", "file");
    size_t el = 0;
    const char *etag = mbytes(res, "etag", &el);
    if (etag && el < sizeof(x->etag)) memcpy(x->etag, etag, el), x->etag[el] = 0;
    if (!mint(res, "mode", mode)) *mode = -1;
    mint(res, "size", &size);
    rpc_frame_free(f);
    if (!is_file || size < 0) return fail(x, "%s on %s is not a regular file", x->rpath, x->node);
    x->size = (uint64_t)size;
    size_t l = strlen(x->local);
    if ((x->local[l - 1] == '/' || (stat(x->local, &st) == 0 && S_ISDIR(st.st_mode))) &&
        join(x, x->local, base_name(x->rpath)) < 0)
        return -1;
    snprintf(x->lpart, sizeof(x->lpart), "%s%s", x->local, XFER_PART_SUFFIX);
    if ((x->fd = open(x->lpart, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0 || fstat(x->fd, &st) < 0)
        return fail(x, "cannot open %s: %s", x->lpart, strerror(errno));
    if (!S_ISREG(st.st_mode)) return fail(x, "%s%s is not a regular file", x->lpart, "");
    if (choose_start(x, (uint64_t)st.st_size) < 0) return -1;
    if ((uint64_t)st.st_size != x->start && ftruncate(x->fd, (off_t)x->start) < 0)
        return fail(x, "cannot truncate %s: %s", x->lpart, strerror(errno));
    x->done = x->start;
    return 0;
}

/* Push: renames the verified part file over the destination. Pull: sets the mode, flushes when
 * asked and renames the part file over LOCAL. Returns 0 or -1 (printed). */
static int finish(xfer_t *x, int64_t mode)
{
    if (x->push) {
        kv_t kv[] = {{"src", KV_STR, .s = x->rpart},
                     {"dst", KV_STR, .s = x->rpath},
                     {"overwrite", KV_BOOL, .i = 1}};
        rpc_frame_t *f = NULL;
        if (call(x, "move", kv, 3, x->o->timeout_s, &f) < 0) return -1;
        int r = resp_err(f) ? -1 : 0;
        if (r < 0) print_rpc_error(x, resp_err(f), "file.move");
        rpc_frame_free(f);
        return r;
    }
    if (mode >= 0) {
        mode_t mask = umask(0);
        umask(mask);
        if (fchmod(x->fd, (mode_t)mode & 0777 & ~mask) < 0)
            return fail(x, "cannot chmod %s: %s", x->lpart, strerror(errno));
    }
    if (x->o->sync && fsync(x->fd) < 0)
        return fail(x, "cannot flush %s: %s", x->lpart, strerror(errno));
    if (rename(x->lpart, x->local) < 0)
        return fail(x, "cannot rename the part file to %s: %s", x->local, strerror(errno));
    return 0;
}

static void print_result(xfer_t *x)
{
    double secs = (double)(p2p_mono_ms() - x->t0) / 1000.0;
    double moved = (double)(x->size - x->start);
    double rate = secs > 0 ? moved / secs / 1e6 : 0;
    char remote[XFER_MAX_NODE + XFER_MAX_PATH + 2];
    snprintf(remote, sizeof(remote), "%s:%s", x->node, x->rpath);
    progress(x, true);
    progress_clear(x);
    if (x->o->out_json) {
        json_t *j =
            json_pack("{s:I,s:I,s:s,s:f,s:f,s:f,s:s,s:s,s:s}", "bytes", (json_int_t)x->size,
                      "resumed_from", (json_int_t)x->start, "sha256", x->digest, "seconds", secs,
                      "mb_per_s", rate, "verify_seconds", (double)x->verify_ms / 1000.0,
                      "direction", x->push ? "push" : "pull", "local", x->local, "remote", remote);
        char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
        if (s) puts(s);
        free(s);
        json_decref(j);
    } else {
        char total[16], from[16];
        human(total, sizeof(total), (double)x->size);
        human(from, sizeof(from), (double)x->start);
        printf("%s %s %s %s: %s in %.2f s (%.1f MB/s), sha256 %s", x->push ? "pushed" : "pulled",
               x->push ? x->local : remote, x->push ? "->" : "->", x->push ? remote : x->local,
               total, secs, rate, x->digest);
        if (x->start) printf(", resumed from %s", from);
        putchar('\n');
    }
    fflush(stdout);
}

static int usage_err(const char *fmt, const char *arg)
{
    fprintf(stderr, "p2p-rpc: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see p2p-rpc --help)\n");
    return EXIT_USAGE;
}

/* Splits NODE:PATH into x->node and x->rpath. Returns 0 or the usage exit code (printed). */
static int parse_remote(xfer_t *x, const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (!colon || colon == arg || !colon[1])
        return usage_err("'%s' is not NODE:PATH (a node name, local or @IDPREFIX, then a path)",
                         arg);
    size_t nl = (size_t)(colon - arg);
    if (nl > XFER_MAX_NODE) return usage_err("node name too long in '%s'", arg);
    for (size_t i = 0; i < nl; i++) {
        char ch = arg[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || (ch == '@' && i == 0);
        if (!ok)
            return usage_err("bad NODE in '%s': one node name, local or @IDPREFIX (no globs)", arg);
    }
    memcpy(x->node, arg, nl);
    x->node[nl] = 0;
    if (strlen(colon + 1) + sizeof(XFER_PART_SUFFIX) > XFER_MAX_PATH)
        return usage_err("path too long in '%s'", arg);
    snprintf(x->rpath, sizeof(x->rpath), "%s", colon + 1);
    return 0;
}

/* Binds the token to the connection with rpc.auth. Returns 0 or -1 (printed). */
static int authenticate(xfer_t *x)
{
    if (!x->o->token) return 0;
    kv_t kv[] = {{"token", KV_STR, .s = x->o->token}};
    rpc_frame_t *f = NULL;
    if (call(x, "rpc.auth", kv, 1, 0, &f) < 0) return -1;
    int r = resp_err(f) ? -1 : 0;
    if (r < 0) print_rpc_error(x, resp_err(f), "rpc.auth");
    rpc_frame_free(f);
    return r;
}

static int run(xfer_t *x)
{
    int64_t mode = -1;
    int r = conn_open(&x->c, x->o->socket_path);
    if (r < 0) {
        fprintf(stderr, "error %d UNAVAILABLE: cannot connect to %s: %s\n", RPC_ERR_UNAVAILABLE,
                x->o->socket_path, strerror(-r));
        return -1;
    }
    x->t0 = p2p_mono_ms();
    if (authenticate(x) < 0) return -1;
    if ((x->push ? do_push(x) : do_pull(x, &mode)) < 0) return -1;
    if (!x->push) /* the far side hashes the source while the bytes stream */
        x->sum_id = queue_sha(x, x->rpath, -1, &x->sum_deadline);
    if (pipeline(x) < 0) return -1;
    x->verify_ms = p2p_mono_ms();
    if (verify(x) < 0) return -1;
    x->verify_ms = p2p_mono_ms() - x->verify_ms;
    if (finish(x, mode) < 0) return -1;
    print_result(x);
    return 0;
}

int cli_transfer_run(bool push, const char *a, const char *b, const cli_transfer_opts_t *o)
{
    const char *local = push ? a : b, *remote = push ? b : a;
    xfer_t *x = calloc(1, sizeof(*x));
    int rc = EXIT_CALL;
    if (!x) return EXIT_CALL;
    x->o = o;
    x->push = push;
    x->fd = -1;
    x->c.fd = -1;
    if (!*local) {
        rc = usage_err("%s", "empty LOCAL path");
        goto out;
    }
    if (strlen(local) + sizeof(XFER_PART_SUFFIX) > XFER_MAX_PATH) {
        rc = usage_err("LOCAL path too long: %.64s...", local);
        goto out;
    }
    if ((rc = parse_remote(x, remote)) != 0) goto out;
    rc = EXIT_CALL;
    snprintf(x->local, sizeof(x->local), "%s", local);
    snprintf(x->label, sizeof(x->label), "%.39s", base_name(push ? x->local : x->rpath));
    x->tty = isatty(STDERR_FILENO);
    if (!(x->buf = malloc(XFER_CHUNK)) || !sha_init(&x->sha)) {
        fprintf(stderr, "p2p-rpc: out of memory\n");
        goto out;
    }
    if (run(x) == 0) rc = 0;
out:
    p2p_hash_free(&x->sha);
    for (unsigned i = 0; i < XFER_WINDOW; i++)
        rpc_frame_free(x->slots[i].frame);
    rpc_frame_free(x->sum_frame);
    if (x->fd >= 0) close(x->fd);
    if (x->c.rbuf || x->c.fd >= 0) conn_close(&x->c);
    free(x->buf);
    free(x);
    return rc;
}

void cli_transfer_usage(FILE *f)
{
    fprintf(f,
            "file transfer (resumable, SHA-256 verified; docs/transfer.md):\n"
            "  p2p-rpc [options] push LOCAL NODE:PATH   copy a local file to NODE\n"
            "  p2p-rpc [options] pull NODE:PATH LOCAL   copy a file of NODE here\n"
            "  PATH is relative to NODE's file root; NODE is a node name, local or @IDPREFIX.\n"
            "  The bytes go to PATH.p2p-part (LOCAL.p2p-part), renamed into place once the\n"
            "  checksums agree; run the same command again to resume an interrupted transfer.\n"
            "  A directory (or a path ending in /) as destination gets the source's file name.\n"
            "  -t S is each chunk call's deadline; a progress bar shows on a terminal's stderr;\n"
            "  the result: {\"bytes\",\"resumed_from\",\"sha256\",\"seconds\",\"mb_per_s\",...}.\n"
            "  --sync          flush the file to disk before it is renamed into place\n");
}
