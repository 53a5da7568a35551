/* rpc-bench.c: a load client for a node's local socket (msgpack-RPC, CONTRACT section 4).
 *
 * Opens C connections to the unix socket, authenticates each with a token (rpc.auth), then keeps
 * calls of one method in flight on every connection and reports calls/s and latency percentiles
 * as one JSON object on stdout. Three ways to keep calls in flight:
 *   window (default): N per connection at all times; a reply lets the next call go.
 *   --batch:          N calls written together, the next N once all N were answered (what
 *                     `redis-benchmark -P N` does, for a like-for-like comparison).
 *   --rate R:         open loop: call i is due at start + i/R (over all connections), sent when
 *                     due if fewer than N are in flight; latency is counted from when a call was
 *                     due, so a client that falls behind shows it in the figures.
 * Methods named system.* get params [{}], others [] (rpc.ping).
 *
 * usage: rpc-bench --socket PATH [--token T | --token-file F] [--method M] [--conns C]
 *                  [--inflight N] [--batch] [--rate R] [--seconds S] [--count M] [--warmup S] */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* ppoll */
#endif
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <msgpack.h>

#define MAX_CONNS   64
#define MAX_SAMPLES (20u * 1000 * 1000) /* latency samples kept (one per call) */
#define ID_RING     (1u << 20)          /* send times indexed by msgid modulo this */
#define RBUF        (1u << 20)
#define P_MIN(a, b) ((a) < (b) ? (a) : (b))

typedef struct conn {
    int fd;
    msgpack_unpacker unp;
    unsigned inflight;
    uint64_t next_id;
    uint64_t *sent_ns; /* ID_RING slots */
} conn_t;

typedef struct opts {
    const char *sock, *token, *method;
    int conns;
    unsigned inflight;
    bool batch;
    double rate, seconds, warmup;
    uint64_t count;
} opts_t;

typedef struct stats {
    uint64_t ok, errors, first_error_code;
    char first_error[160];
    uint32_t *lat_ns; /* capped at UINT32_MAX (4.29 s) */
    size_t n_lat;
} stats_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void usage(void)
{
    fprintf(stderr, "usage: rpc-bench --socket PATH [--token T | --token-file F] [--method M]\n"
                    "                 [--conns C] [--inflight N] [--batch] [--rate R]\n"
                    "                 [--seconds S] [--count M] [--warmup S]\n");
    exit(2);
}

static char *read_token_file(const char *path)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        exit(1);
    }
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = 0;
    return buf;
}

static void parse(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.method = "rpc.ping", .conns = 1, .inflight = 16, .seconds = 5};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--batch")) {
            o->batch = true;
            continue;
        }
        if (!v) usage();
        i++;
        if (!strcmp(a, "--socket"))
            o->sock = v;
        else if (!strcmp(a, "--token"))
            o->token = v;
        else if (!strcmp(a, "--token-file"))
            o->token = read_token_file(v);
        else if (!strcmp(a, "--method"))
            o->method = v;
        else if (!strcmp(a, "--conns"))
            o->conns = atoi(v);
        else if (!strcmp(a, "--inflight"))
            o->inflight = (unsigned)atoi(v);
        else if (!strcmp(a, "--rate"))
            o->rate = atof(v);
        else if (!strcmp(a, "--seconds"))
            o->seconds = atof(v);
        else if (!strcmp(a, "--count"))
            o->count = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--warmup"))
            o->warmup = atof(v);
        else
            usage();
    }
    if (!o->sock || o->conns < 1 || o->conns > MAX_CONNS || o->inflight < 1 ||
        o->inflight > 65536 || o->rate < 0)
        usage();
}

static int connect_unix(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path)) return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            poll(&pf, 1, 1000);
            continue;
        }
        if (n <= 0) return -errno;
        p += n, len -= (size_t)n;
    }
    return 0;
}

/* The request template: [0, <uint32 id>, method, params]; the id is patched at byte 3. */
typedef struct tmpl {
    uint8_t buf[512];
    size_t len;
} tmpl_t;

static void make_template(tmpl_t *t, const char *method, bool map)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_str_with_body(&pk, method, strlen(method));
    msgpack_pack_array(&pk, map ? 1 : 0);
    if (map) msgpack_pack_map(&pk, 0);
    uint8_t head[7] = {0x94, 0x00, 0xce, 0, 0, 0, 0};
    if (sb.size + sizeof(head) > sizeof(t->buf)) {
        fprintf(stderr, "method name too long\n");
        exit(2);
    }
    memcpy(t->buf, head, sizeof(head));
    memcpy(t->buf + sizeof(head), sb.data, sb.size);
    t->len = sizeof(head) + sb.size;
    msgpack_sbuffer_destroy(&sb);
}

static void set_id(uint8_t *frame, uint32_t id)
{
    frame[3] = (uint8_t)(id >> 24), frame[4] = (uint8_t)(id >> 16);
    frame[5] = (uint8_t)(id >> 8), frame[6] = (uint8_t)id;
}

/* Reads what is there; handles every whole response. Returns responses handled or -1 on EOF. */
static int drain(conn_t *c, stats_t *st, bool record)
{
    int handled = 0;
    msgpack_unpacker_reserve_buffer(&c->unp, RBUF);
    ssize_t n =
        read(c->fd, msgpack_unpacker_buffer(&c->unp), msgpack_unpacker_buffer_capacity(&c->unp));
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (n <= 0) return -1;
    msgpack_unpacker_buffer_consumed(&c->unp, (size_t)n);
    uint64_t t = now_ns();
    msgpack_unpacked r;
    msgpack_unpacked_init(&r);
    while (msgpack_unpacker_next(&c->unp, &r) == MSGPACK_UNPACK_SUCCESS) {
        msgpack_object o = r.data;
        if (o.type != MSGPACK_OBJECT_ARRAY || o.via.array.size < 3) continue;
        if (o.via.array.ptr[0].via.u64 != 1 || o.via.array.size != 4) continue; /* notification */
        uint64_t id = o.via.array.ptr[1].via.u64;
        msgpack_object err = o.via.array.ptr[2];
        if (err.type != MSGPACK_OBJECT_NIL) {
            if (st->errors++ == 0 && err.type == MSGPACK_OBJECT_MAP) {
                for (uint32_t k = 0; k < err.via.map.size; k++) {
                    msgpack_object_kv *kv = &err.via.map.ptr[k];
                    if (kv->key.type != MSGPACK_OBJECT_STR) continue;
                    if (kv->key.via.str.size == 4 && !memcmp(kv->key.via.str.ptr, "code", 4))
                        st->first_error_code = (uint64_t)kv->val.via.i64;
                    if (kv->key.via.str.size == 7 && kv->val.type == MSGPACK_OBJECT_STR) {
                        int l = (int)kv->val.via.str.size;
                        snprintf(st->first_error, sizeof(st->first_error), "%.*s",
                                 l > 150 ? 150 : l, kv->val.via.str.ptr);
                        for (char *q = st->first_error; *q; q++)
                            if (*q == '"' || *q == '\\' || (unsigned char)*q < 0x20) *q = '\'';
                    }
                }
            }
        } else {
            st->ok++;
        }
        if (record && st->n_lat < MAX_SAMPLES) {
            uint64_t d = t - c->sent_ns[id % ID_RING];
            st->lat_ns[st->n_lat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
        }
        c->inflight--;
        handled++;
    }
    msgpack_unpacked_destroy(&r);
    return handled;
}

static int call_once(int fd, const char *method, const char *token)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_uint32(&pk, 0xffffffffu);
    msgpack_pack_str_with_body(&pk, method, strlen(method));
    msgpack_pack_array(&pk, 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "token", 5);
    msgpack_pack_str_with_body(&pk, token, strlen(token));
    int rc = write_all(fd, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc < 0) return rc;
    msgpack_unpacker unp;
    msgpack_unpacker_init(&unp, 65536);
    msgpack_unpacked r;
    msgpack_unpacked_init(&r);
    rc = -EPROTO;
    for (int i = 0; i < 1000 && rc == -EPROTO; i++) {
        msgpack_unpacker_reserve_buffer(&unp, 65536);
        ssize_t n = read(fd, msgpack_unpacker_buffer(&unp), 65536);
        if (n <= 0) break;
        msgpack_unpacker_buffer_consumed(&unp, (size_t)n);
        while (msgpack_unpacker_next(&unp, &r) == MSGPACK_UNPACK_SUCCESS) {
            msgpack_object o = r.data;
            if (o.type == MSGPACK_OBJECT_ARRAY && o.via.array.size == 4 &&
                o.via.array.ptr[1].via.u64 == 0xffffffffu) {
                if (o.via.array.ptr[2].type == MSGPACK_OBJECT_NIL)
                    rc = 0;
                else {
                    fprintf(stderr, "rpc-bench: rpc.auth refused: ");
                    msgpack_object_print(stderr, o.via.array.ptr[2]);
                    fprintf(stderr, "\n");
                    rc = -EACCES;
                }
            }
        }
    }
    msgpack_unpacked_destroy(&r);
    msgpack_unpacker_destroy(&unp);
    return rc;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const stats_t *st, double p)
{
    if (st->n_lat == 0) return 0;
    size_t i = (size_t)(p * (double)(st->n_lat - 1) + 0.5);
    return st->lat_ns[i] / 1000.0;
}

/* Sends up to k calls on c (one write). */
static int send_calls(conn_t *c, tmpl_t *t, unsigned k, uint64_t due_ns, uint8_t *out)
{
    size_t off = 0;
    for (unsigned i = 0; i < k; i++) {
        uint32_t id = (uint32_t)(c->next_id++ & 0x7fffffff);
        memcpy(out + off, t->buf, t->len);
        set_id(out + off, id);
        c->sent_ns[id % ID_RING] = due_ns ? due_ns : now_ns();
        off += t->len;
    }
    c->inflight += k;
    return write_all(c->fd, out, off);
}

int main(int argc, char **argv)
{
    opts_t o;
    parse(argc, argv, &o);
    tmpl_t t;
    make_template(&t, o.method, !strncmp(o.method, "system.", 7));
    conn_t cs[MAX_CONNS];
    struct pollfd pf[MAX_CONNS];
    uint8_t *out = malloc((size_t)o.inflight * t.len);
    stats_t st = {0};
    st.lat_ns = malloc(sizeof(uint32_t) * MAX_SAMPLES);
    if (!out || !st.lat_ns) return 1;
    for (int i = 0; i < o.conns; i++) {
        cs[i] = (conn_t){.next_id = 1};
        cs[i].fd = connect_unix(o.sock);
        if (cs[i].fd < 0) {
            fprintf(stderr, "rpc-bench: connect %s: %s\n", o.sock, strerror(-cs[i].fd));
            return 1;
        }
        if (o.token && call_once(cs[i].fd, "rpc.auth", o.token) < 0) return 1;
        cs[i].sent_ns = calloc(ID_RING, sizeof(uint64_t));
        if (!cs[i].sent_ns || !msgpack_unpacker_init(&cs[i].unp, RBUF)) return 1;
        pf[i] = (struct pollfd){.fd = cs[i].fd, .events = POLLIN};
    }
    uint64_t start = now_ns();
    uint64_t measure_from = start + (uint64_t)(o.warmup * 1e9);
    uint64_t end = measure_from + (uint64_t)(o.seconds * 1e9);
    uint64_t sent = 0, sent_measured = 0, done_at = 0;
    bool measuring = o.warmup <= 0;
    double interval_ns = o.rate > 0 ? 1e9 / o.rate : 0;
    int rr = 0;
    for (;;) {
        uint64_t now = now_ns();
        if (!measuring && now >= measure_from) {
            measuring = true;
            st.ok = st.errors = 0, st.n_lat = 0;
            sent_measured = 0;
            measure_from = now;
        }
        bool stop_sending = now >= end || (o.count && sent_measured >= o.count);
        unsigned total_inflight = 0;
        for (int i = 0; i < o.conns; i++)
            total_inflight += cs[i].inflight;
        if (stop_sending && total_inflight == 0) {
            done_at = now;
            break;
        }
        if (stop_sending && now > end + 10000000000ull) { /* 10 s past the end: give up */
            fprintf(stderr, "rpc-bench: %u calls never answered\n", total_inflight);
            done_at = now;
            break;
        }
        if (!stop_sending) {
            if (o.rate > 0) {
                /* open loop: everything due by now, round-robin over connections */
                uint64_t due_total = (uint64_t)((double)(now - start) / interval_ns) + 1;
                for (int guard = 0; sent < due_total && guard < 4096; guard++) {
                    conn_t *c = &cs[rr];
                    rr = (rr + 1) % o.conns;
                    if (c->inflight >= o.inflight) {
                        if (total_inflight >= o.inflight * (unsigned)o.conns) break;
                        continue;
                    }
                    uint64_t due = start + (uint64_t)((double)sent * interval_ns);
                    if (send_calls(c, &t, 1, due, out) < 0) goto broken;
                    sent++, total_inflight++;
                    if (measuring) sent_measured++;
                }
            } else {
                for (int i = 0; i < o.conns; i++) {
                    conn_t *c = &cs[i];
                    unsigned k =
                        o.batch ? (c->inflight == 0 ? o.inflight : 0) : o.inflight - c->inflight;
                    if (o.count && measuring && sent_measured + k > o.count)
                        k = (unsigned)(o.count - sent_measured);
                    if (k == 0) continue;
                    if (send_calls(c, &t, k, 0, out) < 0) goto broken;
                    sent += k;
                    if (measuring) sent_measured += k;
                }
            }
        }
        struct timespec wait = {0, 100000000};         /* 100 ms, or until the next call is due */
        unsigned cap = o.inflight * (unsigned)o.conns; /* at the cap: sleep until a reply comes */
        if (o.rate > 0 && !stop_sending && total_inflight < cap) {
            uint64_t due = start + (uint64_t)((double)sent * interval_ns), t1 = now_ns();
            wait.tv_nsec = due > t1 ? (long)P_MIN(due - t1, 100000000u) : 0;
        }
        int n = ppoll(pf, (nfds_t)o.conns, &wait, NULL);
        if (n < 0 && errno != EINTR) goto broken;
        for (int i = 0; i < o.conns && n > 0; i++) {
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            if (drain(&cs[i], &st, measuring) < 0) {
                fprintf(stderr, "rpc-bench: the node closed connection %d\n", i);
                goto broken;
            }
        }
    }
    double secs = (double)(done_at - measure_from) / 1e9;
    qsort(st.lat_ns, st.n_lat, sizeof(uint32_t), cmp_u32);
    printf(
        "{\"method\": \"%s\", \"conns\": %d, \"inflight\": %u, \"mode\": \"%s\", \"rate\": %.0f, "
        "\"calls\": %" PRIu64 ", \"errors\": %" PRIu64 ", \"seconds\": %.3f, "
        "\"calls_per_s\": %.0f, \"lat_us_p50\": %.1f, \"lat_us_p90\": %.1f, "
        "\"lat_us_p99\": %.1f, \"lat_us_p999\": %.1f, \"lat_us_max\": %.1f",
        o.method, o.conns, o.inflight,
        o.rate > 0 ? "rate"
        : o.batch  ? "batch"
                   : "window",
        o.rate, st.ok + st.errors, st.errors, secs, (double)(st.ok + st.errors) / secs,
        pct_us(&st, 0.50), pct_us(&st, 0.90), pct_us(&st, 0.99), pct_us(&st, 0.999),
        pct_us(&st, 1.0));
    if (st.errors)
        printf(", \"first_error_code\": %" PRId64 ", \"first_error\": \"%s\"",
               (int64_t)st.first_error_code, st.first_error);
    printf("}\n");
    return st.ok > 0 ? 0 : 1;
broken:
    fprintf(stderr, "rpc-bench: connection failed after %" PRIu64 " calls\n", st.ok + st.errors);
    return 1;
}
