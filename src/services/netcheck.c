/* netcheck.c: the network service's probes of other hosts. network.check_port: a TCP connect test
 * (uv_tcp_connect raced against a timer) allowed only to an allowlist (loopback, CHECK_PORT_ALLOW,
 * the addresses of the network's own nodes); a host name is resolved first and the address that
 * passed the check is the one connected to. network.ping: a round trip over the DHT (dht_ping) to
 * another node of the network. Both answer their call from libuv or DHT callbacks. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/router.h"
#include "services/netinfo.h"

/* ---- allowlist ---------------------------------------------------------------------------- */

int svc_netcheck_addr(const struct sockaddr *sa, uint8_t *family, uint8_t ip[16])
{
    if (sa->sa_family == AF_INET) {
        *family = 4;
        memcpy(ip, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0) {
            *family = 4;
            memcpy(ip, a + 12, 4);
        } else {
            *family = 6;
            memcpy(ip, a, 16);
        }
        return 0;
    }
    return -EAFNOSUPPORT;
}

int svc_netcheck_parse_allow(const char *list, svc_net_prefix_t *out, size_t cap)
{
    size_t n = 0;
    const char *p = list ? list : "";
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[64];
        if (len >= sizeof(item)) return -EINVAL;
        memcpy(item, p, len);
        item[len] = 0;
        p += len;
        if (*p == ',') p++;
        char *a = item;
        while (*a == ' ')
            a++;
        char *end = a + strlen(a);
        while (end > a && end[-1] == ' ')
            *--end = 0;
        if (!*a) continue;
        if (n == cap) return -ENOSPC;
        svc_net_prefix_t *x = &out[n];
        memset(x, 0, sizeof(*x));
        long bits = -1;
        char *slash = strchr(a, '/');
        if (slash) {
            *slash = 0;
            char *bend;
            bits = strtol(slash + 1, &bend, 10);
            if (bend == slash + 1 || *bend || bits < 0) return -EINVAL;
        }
        if (inet_pton(AF_INET, a, x->ip) == 1) {
            x->family = 4;
            if (bits > 32) return -EINVAL;
            x->bits = (uint8_t)(bits < 0 ? 32 : bits);
        } else if (inet_pton(AF_INET6, a, x->ip) == 1) {
            x->family = 6;
            if (bits > 128) return -EINVAL;
            x->bits = (uint8_t)(bits < 0 ? 128 : bits);
        } else {
            return -EINVAL;
        }
        n++;
    }
    return (int)n;
}

bool svc_netcheck_prefix_match(const svc_net_prefix_t *p, uint8_t family, const uint8_t *ip)
{
    if (p->family != family) return false;
    int full = p->bits / 8, rest = p->bits % 8;
    if (memcmp(p->ip, ip, (size_t)full) != 0) return false;
    if (rest == 0) return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (p->ip[full] & mask) == (ip[full] & mask);
}

bool svc_netcheck_allowed(const svc_net_prefix_t *list, size_t n, uint8_t family, const uint8_t *ip)
{
    static const svc_net_prefix_t loop4 = {4, {127}, 8};
    static const svc_net_prefix_t loop6 = {
        6, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128};
    if (svc_netcheck_prefix_match(&loop4, family, ip) ||
        svc_netcheck_prefix_match(&loop6, family, ip))
        return true;
    for (size_t i = 0; i < n; i++)
        if (svc_netcheck_prefix_match(&list[i], family, ip)) return true;
    return false;
}

bool svc_netcheck_host_valid(const char *s, size_t len)
{
    if (len == 0 || len > SVC_NET_MAX_HOSTNAME || memchr(s, 0, len)) return false;
    char buf[SVC_NET_MAX_HOSTNAME + 1];
    memcpy(buf, s, len);
    buf[len] = 0;
    uint8_t tmp[16];
    if (inet_pton(AF_INET, buf, tmp) == 1 || inet_pton(AF_INET6, buf, tmp) == 1) return true;
    if (buf[len - 1] == '.') buf[--len] = 0; /* a fully qualified name */
    if (len == 0) return false;
    size_t label = 0;
    for (size_t i = 0; i <= len; i++) {
        char c = buf[i];
        if (c == '.' || c == 0) {
            if (label == 0 || label > 63 || buf[i - 1] == '-') return false;
            label = 0;
            continue;
        }
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok || (label == 0 && c == '-')) return false;
        label++;
    }
    return true;
}

/* The network's own nodes (every node the membership view knows) contain (family, ip). */
static bool is_member_addr(node_t *node, uint8_t family, const uint8_t *ip)
{
    if (!node->members) return false;
    router_target_t *t = NULL;
    int n = router_resolve(node, "*", 1, &t);
    bool found = false;
    for (int i = 0; i < n && !found; i++) {
        uint8_t f, a[16];
        static const uint8_t zero[16] = {0};
        if (t[i].addr.ss_family == 0 ||
            svc_netcheck_addr((const struct sockaddr *)&t[i].addr, &f, a) < 0)
            continue;
        if (memcmp(a, zero, f == 4 ? 4 : 16) == 0) continue; /* 0.0.0.0 / :: is no target */
        found = f == family && memcmp(a, ip, f == 4 ? 4 : 16) == 0;
    }
    free(t);
    return found;
}

/* ---- check_port ----------------------------------------------------------------------------- */

typedef struct check {
    svc_net_op_t op;
    node_t *node;
    uv_getaddrinfo_t gai;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t conn;
    int open_handles;
    bool counted_resolve, counted_check, finished;
    char host[SVC_NET_MAX_HOSTNAME + 1];
    int port;
    uint64_t timeout_ms;
    struct sockaddr_storage addr;
    char addr_s[INET6_ADDRSTRLEN];
    uint64_t start_ns;
} check_t;

static void check_free(check_t *c)
{
    svc_net_op_remove(&c->op);
    free(c);
}

static void check_closed(uv_handle_t *h)
{
    check_t *c = h->data;
    if (--c->open_handles > 0) return;
    struct svc_network *svc = c->op.svc;
    bool stopping = svc && svc->stopping;
    if (svc && c->counted_check) svc->nchecks--;
    check_free(c);
    if (stopping) svc_net_handle_closed(svc);
}

static void check_close(check_t *c)
{
    c->finished = true;
    uv_close((uv_handle_t *)&c->timer, check_closed);
    uv_close((uv_handle_t *)&c->tcp, check_closed);
}

static void check_answer(check_t *c, bool open, int err)
{
    if (!c->op.call) return;
    rpc_call_t *call = c->op.call;
    c->op.call = NULL;
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, err ? 6 : 5);
    msgpack_pack_str_with_body(pk, "host", 4);
    msgpack_pack_str_with_body(pk, c->host, strlen(c->host));
    msgpack_pack_str_with_body(pk, "port", 4);
    msgpack_pack_int(pk, c->port);
    msgpack_pack_str_with_body(pk, "address", 7);
    msgpack_pack_str_with_body(pk, c->addr_s, strlen(c->addr_s));
    msgpack_pack_str_with_body(pk, "open", 4);
    open ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    msgpack_pack_str_with_body(pk, "rtt_ms", 6);
    if (err == UV_ETIMEDOUT) {
        msgpack_pack_nil(pk);
    } else {
        uint64_t ns = uv_hrtime() - c->start_ns;
        msgpack_pack_double(pk, (double)(ns / 1000) / 1000.0);
    }
    if (err) {
        const char *msg = err == UV_ETIMEDOUT      ? "timed out"
                          : err == UV_ECONNREFUSED ? "connection refused"
                                                   : uv_strerror(err);
        msgpack_pack_str_with_body(pk, "error", 5);
        msgpack_pack_str_with_body(pk, msg, strlen(msg));
    }
    rpc_call_reply(call);
}

static void connect_cb(uv_connect_t *req, int status)
{
    check_t *c = req->data;
    if (c->finished) return; /* the timer fired or the service stopped: handles are closing */
    check_answer(c, status == 0, status);
    check_close(c);
}

static void check_timer_cb(uv_timer_t *t)
{
    check_t *c = t->data;
    if (c->finished) return;
    check_answer(c, false, UV_ETIMEDOUT);
    check_close(c);
}

static void check_on_stop(svc_net_op_t *op)
{
    check_t *c = (check_t *)op;
    if (c->open_handles > 0) {
        op->svc->closing++;
        if (!c->finished) check_close(c);
        return;
    }
    uv_cancel((uv_req_t *)&c->gai); /* resolving: the callback frees it */
    op->svc = NULL;
}

/* The address passed the allowlist: connect to exactly it. */
static void check_connect(check_t *c)
{
    struct svc_network *svc = c->op.svc;
    rpc_call_t *call = c->op.call;
    if (svc->nchecks >= SVC_NET_MAX_CHECKS) {
        c->op.call = NULL;
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "%d port checks are already running",
                       SVC_NET_MAX_CHECKS);
        check_free(c);
        return;
    }
    int r = uv_tcp_init(svc->node->loop, &c->tcp);
    if (r < 0) goto fail;
    c->tcp.data = c;
    c->open_handles = 1;
    uv_timer_init(svc->node->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    svc->nchecks++;
    c->counted_check = true;
    c->conn.data = c;
    c->start_ns = uv_hrtime();
    r = uv_tcp_connect(&c->conn, &c->tcp, (const struct sockaddr *)&c->addr, connect_cb);
    if (r < 0) {
        check_answer(c, false, r);
        check_close(c);
        return;
    }
    uv_timer_start(&c->timer, check_timer_cb, c->timeout_ms, 0);
    return;
fail:
    c->op.call = NULL;
    rpc_call_error(call, RPC_ERR_INTERNAL, "cannot create a socket: %s", uv_strerror(r));
    check_free(c);
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* Checks each candidate address in order; connects to the first allowed one, else refuses. */
static void check_candidates(check_t *c, const struct sockaddr *const *cands, size_t n)
{
    struct svc_network *svc = c->op.svc;
    const char *first = NULL;
    char buf[INET6_ADDRSTRLEN];
    for (size_t i = 0; i < n; i++) {
        uint8_t fam, ip[16];
        if (svc_netcheck_addr(cands[i], &fam, ip) < 0) continue;
        inet_ntop(fam == 4 ? AF_INET : AF_INET6, ip, buf, sizeof(buf));
        if (!first) { /* named in the refusal when no address is allowed */
            snprintf(c->addr_s, sizeof(c->addr_s), "%s", buf);
            first = c->addr_s;
        }
        if (!svc_netcheck_allowed(svc->allow, svc->nallow, fam, ip) &&
            !is_member_addr(svc->node, fam, ip))
            continue;
        /* the checked address, rebuilt from its compact form, is the one connected to */
        memset(&c->addr, 0, sizeof(c->addr));
        if (fam == 4) {
            struct sockaddr_in *in = (struct sockaddr_in *)&c->addr;
            in->sin_family = AF_INET;
            memcpy(&in->sin_addr, ip, 4);
        } else {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&c->addr;
            in6->sin6_family = AF_INET6;
            memcpy(&in6->sin6_addr, ip, 16);
        }
        set_port(&c->addr, c->port);
        snprintf(c->addr_s, sizeof(c->addr_s), "%s", buf);
        check_connect(c);
        return;
    }
    rpc_call_t *call = c->op.call;
    c->op.call = NULL;
    if (first)
        rpc_call_error_param(call, RPC_ERR_PERMISSION_DENIED, "host",
                             "%s (%s) is not an allowed check_port target (loopback, "
                             "CHECK_PORT_ALLOW and the network's nodes are)",
                             c->host, first);
    else
        rpc_call_error_param(call, RPC_ERR_NOT_FOUND, "host", "%s has no IPv4 or IPv6 address",
                             c->host);
    check_free(c);
}

static void check_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    check_t *c = req->data;
    struct svc_network *svc = c->op.svc;
    if (!svc) { /* the service stopped meanwhile (the call was answered) */
        uv_freeaddrinfo(res);
        free(c);
        return;
    }
    svc->nresolves--;
    if (status < 0) {
        rpc_call_t *call = c->op.call;
        c->op.call = NULL;
        if (status == UV_EAI_NONAME || status == UV_EAI_NODATA)
            rpc_call_error_param(call, RPC_ERR_NOT_FOUND, "host", "%s: no such host", c->host);
        else
            rpc_call_error_param(call, RPC_ERR_UNAVAILABLE, "host", "cannot resolve %s: %s",
                                 c->host, uv_strerror(status));
        uv_freeaddrinfo(res);
        check_free(c);
        return;
    }
    const struct sockaddr *cands[SVC_NET_MAX_ADDRS];
    size_t n = 0;
    for (struct addrinfo *ai = res; ai && n < SVC_NET_MAX_ADDRS; ai = ai->ai_next)
        if (ai->ai_addr) cands[n++] = ai->ai_addr;
    check_candidates(c, cands, n);
    uv_freeaddrinfo(res);
}

void svc_netcheck_call(rpc_call_t *call, void *ctx)
{
    struct svc_network *svc = ctx;
    size_t hlen;
    const char *host = rpc_call_str(call, "host", &hlen);
    if (!svc_netcheck_host_valid(host, hlen)) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "host",
                             "not a host name or numeric address");
        return;
    }
    check_t *c = calloc(1, sizeof(*c));
    if (!c) {
        rpc_call_error(call, RPC_ERR_INTERNAL, "out of memory");
        return;
    }
    memcpy(c->host, host, hlen);
    c->host[hlen] = 0;
    c->port = (int)rpc_call_int(call, "port");
    c->timeout_ms = (uint64_t)rpc_call_int(call, "timeout") * 1000u;
    c->node = svc->node;
    c->op.on_stop = check_on_stop;
    svc_net_op_add(svc, &c->op, call);

    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
    memset(&in4, 0, sizeof(in4));
    memset(&in6, 0, sizeof(in6));
    const struct sockaddr *one[1] = {NULL};
    if (inet_pton(AF_INET, c->host, &in4.sin_addr) == 1) {
        in4.sin_family = AF_INET;
        one[0] = (const struct sockaddr *)&in4;
    } else if (inet_pton(AF_INET6, c->host, &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        one[0] = (const struct sockaddr *)&in6;
    }
    if (one[0]) {
        check_candidates(c, one, 1);
        return;
    }
    if (svc->nresolves >= SVC_NET_MAX_RESOLVES) {
        c->op.call = NULL;
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "%d name lookups are already running",
                       SVC_NET_MAX_RESOLVES);
        check_free(c);
        return;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    int r = uv_getaddrinfo(svc->node->loop, &c->gai, check_resolved, c->host, NULL, &hints);
    if (r < 0) {
        c->op.call = NULL;
        rpc_call_error(call, RPC_ERR_INTERNAL, "cannot resolve: %s", uv_strerror(r));
        check_free(c);
        return;
    }
    svc->nresolves++;
}

/* ---- ping ------------------------------------------------------------------------------------ */

typedef struct ping {
    svc_net_op_t op;
    char name[64];
    char addr_s[80];
} ping_t;

static void ping_done(void *arg, int status, uint32_t rtt_ms)
{
    ping_t *p = arg;
    struct svc_network *svc = p->op.svc;
    if (svc) svc->npings--;
    rpc_call_t *call = p->op.call;
    p->op.call = NULL;
    if (call) {
        if (status == 0) {
            msgpack_packer *pk = rpc_call_packer(call);
            msgpack_pack_map(pk, 3);
            msgpack_pack_str_with_body(pk, "node", 4);
            msgpack_pack_str_with_body(pk, p->name, strlen(p->name));
            msgpack_pack_str_with_body(pk, "rtt_ms", 6);
            msgpack_pack_uint32(pk, rtt_ms);
            msgpack_pack_str_with_body(pk, "address", 7);
            msgpack_pack_str_with_body(pk, p->addr_s, strlen(p->addr_s));
            rpc_call_reply(call);
        } else if (status == -ETIMEDOUT) {
            rpc_call_error_param(call, RPC_ERR_TIMEOUT, "node", "%s (%s) did not answer the ping",
                                 p->name, p->addr_s);
        } else {
            rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the DHT stopped");
        }
    }
    if (svc) svc_net_op_remove(&p->op);
    free(p); /* detached pings (the service stopped) end here too, from dht_free at the latest */
}

static void ping_on_stop(svc_net_op_t *op)
{
    op->svc = NULL; /* the DHT still holds the ping: ping_done frees it */
}

typedef struct contact_find {
    const uint8_t *pk;
    dht_addr_t addr;
    bool found;
} contact_find_t;

static void contact_cb(void *arg, const dht_contact_info_t *c)
{
    contact_find_t *f = arg;
    if (!f->found && memcmp(c->public_key, f->pk, DHT_PK_LEN) == 0) {
        f->addr = c->addr;
        f->found = true;
    }
}

/* The DHT address of target: its routing-table contact (the UDP endpoint it answers from), else
 * its peer channel address (the DHT port is the same number). Returns 0 or -EHOSTUNREACH. */
static int ping_addr(dht_t *dht, const router_target_t *t, dht_addr_t *out)
{
    contact_find_t f = {t->pk, {0}, false};
    dht_foreach_contact(dht, contact_cb, &f);
    if (f.found) {
        *out = f.addr;
        return 0;
    }
    dht_addr_from_sockaddr(out, (const struct sockaddr *)&t->addr);
    static const uint8_t zero[16] = {0};
    if (out->family == 0 || out->port == 0 || memcmp(out->ip, zero, out->family == 4 ? 4 : 16) == 0)
        return -EHOSTUNREACH;
    return 0;
}

void svc_netcheck_ping_call(rpc_call_t *call, void *ctx)
{
    struct svc_network *svc = ctx;
    node_t *node = svc->node;
    size_t len;
    const char *name = rpc_call_str(call, "node", &len);
    dht_t *dht = node->dhtuv ? dht_uv_core(node->dhtuv) : NULL;
    if (!dht || !node->members) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the DHT is not running");
        return;
    }
    if (memchr(name, '*', len) || memchr(name, '?', len)) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "node", "one node, not a glob");
        return;
    }
    if ((len == 5 && memcmp(name, "local", 5) == 0) ||
        (len == strlen(node->cfg.name) && memcmp(name, node->cfg.name, len) == 0)) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "node", "this is the node itself");
        return;
    }
    router_target_t *t = NULL;
    int n = router_resolve(node, name, len, &t);
    if (n <= 0) {
        free(t);
        if (n == -ENOTUNIQ)
            rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "node",
                                 "the id prefix matches several nodes");
        else if (n == 0 || n == -EINVAL)
            rpc_call_error_param(call, RPC_ERR_NOT_FOUND, "node", "no node named %.*s", (int)len,
                                 name);
        else
            rpc_call_error(call, RPC_ERR_INTERNAL, "resolution failed: %s", strerror(-n));
        return;
    }
    if (memcmp(t->pk, node->public_key, DHT_PK_LEN) == 0) {
        free(t);
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "node", "this is the node itself");
        return;
    }
    dht_addr_t to;
    if (ping_addr(dht, t, &to) < 0) {
        rpc_call_error_param(call, RPC_ERR_UNAVAILABLE, "node", "no address known for %s", t->name);
        free(t);
        return;
    }
    if (svc->npings >= SVC_NET_MAX_PINGS) {
        free(t);
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "%d pings are already waiting",
                       SVC_NET_MAX_PINGS);
        return;
    }
    ping_t *p = calloc(1, sizeof(*p));
    if (!p) {
        free(t);
        rpc_call_error(call, RPC_ERR_INTERNAL, "out of memory");
        return;
    }
    snprintf(p->name, sizeof(p->name), "%s", t->name);
    dht_addr_format(&to, p->addr_s, sizeof(p->addr_s));
    uint64_t now = uv_now(node->loop), deadline = rpc_call_deadline(call);
    uint64_t wait = SVC_NET_PING_TIMEOUT_MS;
    if (deadline > now + 50 && deadline - now - 50 < wait) wait = deadline - now - 50;
    if (deadline <= now + 50) wait = 1;
    int r = dht_ping(dht, &to, t->pk, (uint32_t)wait, now, ping_done, p);
    free(t);
    if (r < 0) {
        free(p);
        rpc_call_error(call, r == -ENOBUFS ? RPC_ERR_RESOURCE_EXHAUSTED : RPC_ERR_INTERNAL,
                       "cannot send the ping: %s", strerror(-r));
        return;
    }
    p->op.on_stop = ping_on_stop;
    svc_net_op_add(svc, &p->op, call);
    svc->npings++;
    dht_uv_kick(node->dhtuv);
}
