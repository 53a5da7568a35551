/* daemon.c: the p2p-node lifecycle: start-up in order (data dir, lock, store, keys, DHT, saved
 * state, bootstrap, local RPC socket), periodic snapshots and re-bootstrap, graceful stop and
 * signals. */
#include "node/cluster.h"
#include "node/node.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "base/base.h"
#include "http/api.h"
#include "node/config.h"
#include "node/keys.h"
#include "node/log.h"
#include "node/store.h"
#include "rpc/rpc.h"
#include "services/services.h"

#ifndef NODE_SAVE_INTERVAL_MS
#define NODE_SAVE_INTERVAL_MS 30000 /* store snapshot period */
#endif
#ifndef NODE_BOOT_TICK_MS
#define NODE_BOOT_TICK_MS 250 /* how often the join state is checked */
#endif
#ifndef NODE_REBOOT_MS
#define NODE_REBOOT_MS 3000 /* re-ping bootstrap contacts this often while the table is empty */
#endif

extern char **environ;

static bool host_is_loopback(const char *h)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, h, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, h, &a6) == 1) return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

static void ping(node_t *node, const dht_addr_t *a, const char *what)
{
    char s[64];
    dht_addr_format(a, s, sizeof(s));
    int rc = dht_ping_addr(dht_uv_core(node->dhtuv), a, uv_now(node->loop));
    if (rc < 0)
        node_log(node->log, NODE_LOG_WARNING, "bootstrap ping failed", "addr", s, "err",
                 strerror(-rc), NULL);
    else
        node_log(node->log, NODE_LOG_DEBUG, "bootstrap ping", "addr", s, "from", what, NULL);
}

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    node_t *node = req->data;
    int i = (int)(req - node->resolve_req);
    node->resolving[i] = false;
    if (status < 0) {
        if (status != UV_EAI_CANCELED)
            node_log(node->log, NODE_LOG_WARNING, "cannot resolve bootstrap contact", "contact",
                     node->cfg.bootstrap[i], "err", uv_strerror(status), NULL);
    } else if (!node->stopping) {
        bool seen4 = false, seen6 = false;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            dht_addr_t a;
            dht_addr_from_sockaddr(&a, ai->ai_addr);
            if (!a.family || (a.family == 4 && seen4) || (a.family == 6 && seen6)) continue;
            *(a.family == 4 ? &seen4 : &seen6) = true;
            ping(node, &a, node->cfg.bootstrap[i]);
        }
        dht_uv_kick(node->dhtuv);
    }
    uv_freeaddrinfo(res);
}

/* Pings every configured bootstrap contact; names are resolved first without blocking. */
static void bootstrap(node_t *node)
{
    node->last_boot_ms = uv_now(node->loop);
    for (int i = 0; i < node->cfg.bootstrap_count; i++) {
        dht_addr_t a;
        if (dht_addr_parse(&a, node->cfg.bootstrap[i]) == 0) {
            ping(node, &a, "config");
            continue;
        }
        if (node->resolving[i]) continue;
        char host[sizeof(node->cfg.bootstrap[0])], port[8];
        int p;
        if (node_config_split_hostport(node->cfg.bootstrap[i], host, sizeof(host), &p) < 0)
            continue;
        snprintf(port, sizeof(port), "%d", p);
        struct addrinfo hints;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_DGRAM;
        node->resolve_req[i].data = node;
        if (uv_getaddrinfo(node->loop, &node->resolve_req[i], resolved_cb, host, port, &hints) == 0)
            node->resolving[i] = true;
    }
    dht_uv_kick(node->dhtuv);
}

static void import_contact_cb(void *arg, const uint8_t pk[DHT_PK_LEN], const dht_addr_t *a)
{
    node_t *node = arg;
    dht_import_contact(dht_uv_core(node->dhtuv), pk, a, uv_now(node->loop));
}

static void import_record_cb(void *arg, const dht_record_t *rec)
{
    node_t *node = arg;
    dht_import_record(dht_uv_core(node->dhtuv), rec, uv_now(node->loop));
}

static void self_lookup_cb(void *arg, int status, const dht_lookup_result_t *res)
{
    node_t *node = arg;
    node->self_lookup_running = false;
    if (status == -ECANCELED) return;
    char peers[24], hops[16];
    snprintf(peers, sizeof(peers), "%zu", dht_contact_count(dht_uv_core(node->dhtuv)));
    snprintf(hops, sizeof(hops), "%d", res ? res->hops : 0);
    if (dht_contact_count(dht_uv_core(node->dhtuv)) > 0) {
        if (!node->joined)
            node_log(node->log, NODE_LOG_INFO, "joined", "#peers", peers, "#hops", hops, NULL);
        node->joined = true;
    }
}

static void boot_timer_cb(uv_timer_t *t)
{
    node_t *node = t->data;
    dht_t *dht = dht_uv_core(node->dhtuv);
    uint64_t now = uv_now(node->loop);
    size_t n = dht_contact_count(dht);
    if (n == 0) {
        if (node->joined) node_log(node->log, NODE_LOG_WARNING, "routing table empty", NULL);
        node->joined = false;
        if (now - node->last_boot_ms >= NODE_REBOOT_MS) {
            bootstrap(node);
            if (node->store) node_store_load_contacts(node->store, import_contact_cb, node);
            dht_uv_kick(node->dhtuv);
        }
        return;
    }
    if (!node->joined && !node->self_lookup_running) {
        if (dht_find_node(dht, &node->id, now, self_lookup_cb, node) == 0) {
            node->self_lookup_running = true;
            dht_uv_kick(node->dhtuv);
        }
    }
}

static void save(node_t *node)
{
    if (!node->store || !node->dhtuv) return;
    uint64_t t0 = p2p_mono_ms();
    int rc = node_store_save_dht(node->store, dht_uv_core(node->dhtuv));
    if (rc < 0) {
        node_log(node->log, NODE_LOG_ERROR, "store save failed", "err",
                 sqlite3_errmsg(node_store_db(node->store)), NULL);
        return;
    }
    if (node_log_enabled(node->log, NODE_LOG_DEBUG)) {
        char c[24], r[24], ms[24];
        snprintf(c, sizeof(c), "%zu", dht_contact_count(dht_uv_core(node->dhtuv)));
        snprintf(r, sizeof(r), "%zu", dht_record_count(dht_uv_core(node->dhtuv)));
        snprintf(ms, sizeof(ms), "%llu", (unsigned long long)(p2p_mono_ms() - t0));
        node_log(node->log, NODE_LOG_DEBUG, "store saved", "#contacts", c, "#records", r, "#ms", ms,
                 NULL);
    }
}

static void save_timer_cb(uv_timer_t *t)
{
    save(t->data);
}

static int lock_data_dir(node_t *node, char *err, size_t errlen)
{
    char path[NODE_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/node.lock", node->cfg.data_dir);
    node->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (node->lock_fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        return -e;
    }
    if (flock(node->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        snprintf(err, errlen, "data dir %s is in use by another p2p-node", node->cfg.data_dir);
        return e == EWOULDBLOCK ? -EBUSY : -e;
    }
    return 0;
}

/* Binds a socket of type on host:port (port 0 = any); returns the bound port or -errno. The
 * socket is closed again unless keep_fd is given. */
static int probe_bind(int family, int type, const char *host, int port, int *keep_fd)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (host && inet_pton(AF_INET6, host, &a->sin6_addr) != 1) return -EINVAL;
        len = sizeof(*a);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (host && inet_pton(AF_INET, host, &a->sin_addr) != 1) return -EINVAL;
        len = sizeof(*a);
    }
    int fd = socket(family, type | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int rc = bind(fd, (struct sockaddr *)&ss, len);
    if (rc == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        rc = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                      : ((struct sockaddr_in *)&ss)->sin_port);
    else
        rc = -errno;
    if (keep_fd && rc > 0)
        *keep_fd = fd;
    else
        close(fd);
    return rc;
}

/* With --dht-port 0 the UDP port is chosen so that the same number is free on TCP too (the peer
 * channel): a few candidates from the kernel are tried. Returns a port, or 0 to let it choose. */
static int pick_port(const char *host)
{
    int family = host && strchr(host, ':') ? AF_INET6 : AF_INET;
    const char *h = host && strcmp(host, "0.0.0.0") && strcmp(host, "::") ? host : NULL;
    for (int i = 0; i < 16; i++) {
        int fd = -1;
        int port = probe_bind(family, SOCK_STREAM, h, 0, &fd);
        if (port <= 0) return 0;
        int u = probe_bind(family, SOCK_DGRAM, h, port, NULL);
        close(fd);
        if (u == port) return port;
    }
    return 0;
}

static int start_dht(node_t *node, char *err, size_t errlen)
{
    dht_config_t dc;
    memset(&dc, 0, sizeof(dc));
    memcpy(dc.public_key, node->public_key, DHT_PK_LEN);
    memcpy(dc.secret_key, node->secret_key, DHT_SK_LEN);
    memcpy(dc.network_key, node->network_key, DHT_NET_KEY_LEN);
    randombytes_buf(dc.seed, sizeof(dc.seed));
    dc.epoch = p2p_wall_ms() * 1000u;
    dc.ip_diversity = !(node->cfg.dht_host[0] && host_is_loopback(node->cfg.dht_host));
    dc.peer_cache = (uint32_t)node->cfg.max_peers; /* MAX_PEERS: peers tracked beyond the table */
    const char *host = node->cfg.dht_host[0] ? node->cfg.dht_host : NULL;
    int port = node->cfg.dht_port ? node->cfg.dht_port : pick_port(host);
    int rc = dht_uv_start(node->loop, &dc, host, port, &node->dhtuv);
    sodium_memzero(&dc, sizeof(dc));
    if (rc < 0) {
        node->dhtuv = NULL;
        snprintf(err, errlen, "cannot bind DHT UDP %s:%d: %s", host ? host : "*",
                 node->cfg.dht_port, uv_strerror(rc));
    }
    return rc;
}

static int start_rpc(node_t *node, char *err, size_t errlen)
{
    int rc = -ENOMEM;
    if (!(node->reg = rpc_registry_new())) goto fail;
    if ((rc = rpc_registry_set_node_name(node->reg, node->cfg.name)) < 0) goto fail;
    if ((rc = node_methods_register(node, node->reg)) < 0) goto fail;
    if ((rc = node_cluster_register(node, node->reg)) < 0) goto fail;
    rpc_auth_config_t auth;
    node_auth_config(node, &auth);
    if ((rc = rpc_local_start(node->loop, node->rpc_path, node->reg, &auth, &node->rpc)) < 0) {
        node->rpc = NULL;
        goto fail;
    }
    return 0;
fail:
    snprintf(err, errlen, "cannot start the local RPC socket %s: %s", node->rpc_path,
             rc < 0 && rc > -4096 ? strerror(-rc) : "error");
    return rc;
}

/* The local services: each registers its methods in node->reg. */
static int start_services(node_t *node, char *err, size_t errlen)
{
    int rc;
    if ((rc = svc_process_start(node, &node->svc_process, err, errlen)) < 0) return rc;
    if ((rc = svc_supervise_start(node, &node->svc_supervise, err, errlen)) < 0) return rc;
    if ((rc = svc_file_start(node, &node->svc_file, err, errlen)) < 0) return rc;
    if ((rc = svc_network_start(node, &node->svc_network, err, errlen)) < 0) return rc;
    if ((rc = svc_monitor_start(node, &node->svc_monitor, err, errlen)) < 0) return rc;
    return 0;
}

/* Stops every service that started; each counts as one pending part. */
static void stop_services(node_t *node, void (*done)(void *arg))
{
#define STOP_SVC(field, fn)                                                                        \
    if (node->field) {                                                                             \
        node->pending_parts++;                                                                     \
        fn(node->field, done, node);                                                               \
        node->field = NULL;                                                                        \
    }
    STOP_SVC(svc_monitor, svc_monitor_stop)
    STOP_SVC(svc_network, svc_network_stop)
    STOP_SVC(svc_file, svc_file_stop)
    STOP_SVC(svc_supervise, svc_supervise_stop)
    STOP_SVC(svc_process, svc_process_stop)
#undef STOP_SVC
}

/* The revocation callback of every door: whoever runs node->token_revoked decides. */
static int auth_revoked(void *ctx, const char *jti, const char *sub, uint64_t iat)
{
    const node_t *node = ctx;
    return node->token_revoked ? node->token_revoked(node->token_revoked_ctx, jti, sub, iat) : 0;
}

void node_auth_config(const node_t *node, rpc_auth_config_t *out)
{
    memset(out, 0, sizeof(*out));
    out->secret = node->auth_secret;
    out->secret_len = node->auth_secret_len;
    if (node->auth_prev_len) {
        out->prev_secret = node->auth_prev;
        out->prev_secret_len = node->auth_prev_len;
    }
    out->audience = "p2p-admin";
    out->is_revoked = auth_revoked;
    out->revoked_ctx = (void *)node; /* read only, from the loop thread */
}

static void log_ready(node_t *node)
{
    char id[2 * DHT_ID_LEN + 1], port[8], dport[8], ms[24];
    p2p_hex_encode(id, node->id.b, DHT_ID_LEN);
    snprintf(port, sizeof(port), "%d", node->cfg.port);
    snprintf(dport, sizeof(dport), "%d", dht_uv_port(node->dhtuv));
    node->ready_mono_ms = p2p_mono_ms();
    snprintf(ms, sizeof(ms), "%llu",
             (unsigned long long)(node->ready_mono_ms - node->start_mono_ms));
    node_log(node->log, NODE_LOG_INFO, "ready", "name", node->cfg.name, "id", id, "#dht_port",
             dport, "#http_port", port, "socket", node->rpc_path, "version", P2P_VERSION,
             "#start_ms", ms, NULL);
}

int node_start(node_t *node, uv_loop_t *loop, node_log_t *log, char *err, size_t errlen)
{
    int rc;
    node->loop = loop;
    node->log = log;
    node->lock_fd = -1;
    node->start_mono_ms = p2p_mono_ms();
    node->start_wall_ms = p2p_wall_ms();
    uv_timer_init(loop, &node->save_timer);
    uv_timer_init(loop, &node->boot_timer);
    node->save_timer.data = node->boot_timer.data = node;
    if (sodium_init() < 0) {
        snprintf(err, errlen, "libsodium failed to initialise");
        rc = -EIO;
        goto fail;
    }
    if ((rc = node_data_dir_ensure(node->cfg.data_dir)) < 0) {
        snprintf(err, errlen, "cannot create data dir %s: %s", node->cfg.data_dir, strerror(-rc));
        goto fail;
    }
    if ((rc = lock_data_dir(node, err, errlen)) < 0) goto fail;
    char db[NODE_PATH_MAX + 16];
    snprintf(db, sizeof(db), "%s/node.db", node->cfg.data_dir);
    if ((rc = node_store_open(db, &node->store)) < 0) {
        snprintf(err, errlen, "cannot open database %s: %s", db,
                 rc == -EPROTO ? "made by a newer p2p-node" : strerror(-rc));
        node->store = NULL;
        goto fail;
    }
    node->db = node_store_db(node->store);
    if ((rc = node_keys_load(node, err, errlen)) < 0) goto fail;
    if ((rc = start_dht(node, err, errlen)) < 0) goto fail;
    int nc = node_store_load_contacts(node->store, import_contact_cb, node);
    int nr = node_store_load_records(node->store, import_record_cb, node);
    if (nc > 0 || nr > 0) {
        char c[16], r[16];
        snprintf(c, sizeof(c), "%d", nc);
        snprintf(r, sizeof(r), "%d", nr);
        node_log(log, NODE_LOG_INFO, "restored saved state", "#contacts", c, "#records", r, NULL);
    }
    bootstrap(node);
    snprintf(node->rpc_path, sizeof(node->rpc_path), "%s/rpc.sock", node->cfg.data_dir);
    if ((rc = start_rpc(node, err, errlen)) < 0) goto fail;
    if ((rc = node_cluster_start(node, err, errlen)) < 0) goto fail;
    if ((rc = start_services(node, err, errlen)) < 0) goto fail;
    if ((rc = http_api_start(node, &node->http, err, errlen)) < 0) {
        node->http = NULL;
        goto fail;
    }
    uv_timer_start(&node->save_timer, save_timer_cb, NODE_SAVE_INTERVAL_MS, NODE_SAVE_INTERVAL_MS);
    uv_timer_start(&node->boot_timer, boot_timer_cb, NODE_BOOT_TICK_MS, NODE_BOOT_TICK_MS);
    log_ready(node);
    return 0;
fail:
    node_stop(node, NULL, NULL);
    return rc;
}

static void part_done(void *arg)
{
    node_t *node = arg;
    if (--node->pending_parts > 0) return;
    node_cluster_free(node);
    node_store_close(node->store);
    node->store = NULL;
    node->db = NULL;
    rpc_registry_free(node->reg);
    node->reg = NULL;
    if (node->rpc_path[0]) unlink(node->rpc_path);
    if (node->lock_fd >= 0) close(node->lock_fd);
    node->lock_fd = -1;
    sodium_memzero(node->secret_key, sizeof(node->secret_key));
    sodium_memzero(node->auth_secret, sizeof(node->auth_secret));
    sodium_memzero(node->auth_prev, sizeof(node->auth_prev));
    if (node->stopped_cb) node->stopped_cb(node->stopped_arg);
}

static void timer_closed_cb(uv_handle_t *h)
{
    part_done(h->data);
}

void node_stop(node_t *node, void (*done_cb)(void *arg), void *arg)
{
    if (node->stopping) return;
    node->stopping = true;
    node->stopped_cb = done_cb;
    node->stopped_arg = arg;
    node->pending_parts = 1; /* held until every part below is started */
    if (node->http) {        /* first: its handlers use the services and the registry */
        node->pending_parts++;
        http_api_stop(node->http, part_done, node);
        node->http = NULL;
    }
    stop_services(node, part_done);
    for (int i = 0; i < NODE_MAX_BOOTSTRAP; i++)
        if (node->resolving[i]) uv_cancel((uv_req_t *)&node->resolve_req[i]);
    if (node->rpc) {
        node->pending_parts++;
        rpc_local_stop(node->rpc, part_done, node);
        node->rpc = NULL;
    }
    node_cluster_stop(node, timer_closed_cb, part_done, &node->pending_parts);
    save(node);
    if (node->dhtuv) {
        node->pending_parts++;
        dht_uv_stop(node->dhtuv, part_done, node);
        node->dhtuv = NULL;
    }
    node->pending_parts += 2;
    uv_close((uv_handle_t *)&node->save_timer, timer_closed_cb);
    uv_close((uv_handle_t *)&node->boot_timer, timer_closed_cb);
    part_done(node);
}

/* ---- the foreground daemon ---- */

typedef struct run {
    node_t node;
    uv_signal_t sig[3];
    int argc;
    char *const *argv;
    bool stopped;
} run_t;

static void sig_closed_cb(uv_handle_t *h)
{
    (void)h;
}

static void close_signals(run_t *r)
{
    for (int i = 0; i < 3; i++)
        if (!uv_is_closing((uv_handle_t *)&r->sig[i]))
            uv_close((uv_handle_t *)&r->sig[i], sig_closed_cb);
}

static void stopped_cb(void *arg)
{
    run_t *r = arg;
    r->stopped = true;
    node_log(r->node.log, NODE_LOG_INFO, "stopped", NULL);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    run_t *r = h->data;
    if (signum == SIGHUP) {
        node_config_t cfg;
        char err[512];
        if (node_config_parse(&cfg, r->argc, r->argv, environ, isatty(2), err, sizeof(err)) < 0) {
            node_log(r->node.log, NODE_LOG_ERROR, "reload failed", "err", err, NULL);
            return;
        }
        node_log_set_level(r->node.log, cfg.log_level);
        r->node.cfg.log_level = cfg.log_level;
        node_log(r->node.log, NODE_LOG_INFO, "reloaded", "log_level",
                 node_log_level_name(cfg.log_level), NULL);
        return;
    }
    node_log(r->node.log, NODE_LOG_INFO, "stopping", "signal",
             signum == SIGINT ? "SIGINT" : "SIGTERM", NULL);
    close_signals(r);
    node_stop(&r->node, stopped_cb, r);
}

int node_run(const node_config_t *cfg, int argc, char *const *argv, node_log_t *log)
{
    uv_loop_t loop;
    char err[NODE_PATH_MAX + 256];
    int code = 0;
    if (uv_loop_init(&loop) < 0) {
        fprintf(stderr, "p2p-node: cannot create the event loop\n");
        return 1;
    }
    run_t *r = calloc(1, sizeof(*r));
    if (!r) {
        uv_loop_close(&loop);
        fprintf(stderr, "p2p-node: out of memory\n");
        return 1;
    }
    r->argc = argc;
    r->argv = argv;
    r->node.cfg = *cfg;
    const int signums[3] = {SIGINT, SIGTERM, SIGHUP};
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&loop, &r->sig[i]);
        r->sig[i].data = r;
        uv_signal_start(&r->sig[i], signal_cb, signums[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = node_start(&r->node, &loop, log, err, sizeof(err));
    if (rc == -EINVAL) {
        /* bad content in a key file or value: a configuration error, one plain line, exit 2 */
        fprintf(stderr, "p2p-node: %s\n", err);
        close_signals(r);
        code = 2;
    } else if (rc < 0) {
        node_log(log, NODE_LOG_ERROR, "start failed", "err", err, NULL);
        if (!node_log_enabled(log, NODE_LOG_ERROR)) fprintf(stderr, "p2p-node: %s\n", err);
        close_signals(r);
        code = 1;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        node_log(log, NODE_LOG_ERROR, "event loop did not close clean", NULL);
        code = code ? code : 1;
    }
    free(r);
    return code;
}
