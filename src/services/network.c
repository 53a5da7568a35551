/* network.c: the network service (method domain `network`): its start and stop, the list of
 * operations in flight (answered UNAVAILABLE on stop), the methods interfaces, connections (a
 * /proc scan on the thread pool), routes, resolve (uv_getaddrinfo), stats, and their registration
 * (check_port and ping are in netcheck.c, the readers and parsers in netinfo.c). Interfaces are
 * read here: getifaddrs, /proc/net/dev and /sys/class/net. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_link.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "services/netinfo.h"
#include "services/services.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* ---- operations in flight ------------------------------------------------------------------- */

void svc_net_op_add(struct svc_network *svc, svc_net_op_t *op, rpc_call_t *call)
{
    op->svc = svc;
    op->call = call;
    op->next = svc->ops.next;
    op->prev = &svc->ops;
    svc->ops.next->prev = op;
    svc->ops.next = op;
}

void svc_net_op_remove(svc_net_op_t *op)
{
    if (!op->prev) return;
    op->prev->next = op->next;
    op->next->prev = op->prev;
    op->prev = op->next = NULL;
}

static void finish_stop(svc_network_t *svc)
{
    void (*done)(void *) = svc->done;
    void *arg = svc->done_arg;
    free(svc);
    if (done) done(arg);
}

void svc_net_handle_closed(struct svc_network *svc)
{
    if (--svc->closing == 0 && svc->stopping) finish_stop(svc);
}

/* ---- interfaces ----------------------------------------------------------------------------- */

typedef struct iface {
    char name[IF_NAMESIZE + 1];
    unsigned flags;
    bool has_mac;
    uint8_t mac[8];
    size_t mac_len;
    int naddrs;
    struct {
        uint8_t family;
        uint8_t ip[16];
        int prefixlen;
    } addrs[SVC_NET_MAX_IF_ADDRS];
} iface_t;

static int mask_bits(const struct sockaddr *m)
{
    if (!m) return 0;
    const uint8_t *b;
    size_t n;
    if (m->sa_family == AF_INET) {
        b = (const uint8_t *)&((const struct sockaddr_in *)m)->sin_addr;
        n = 4;
    } else if (m->sa_family == AF_INET6) {
        b = (const uint8_t *)&((const struct sockaddr_in6 *)m)->sin6_addr;
        n = 16;
    } else {
        return 0;
    }
    int bits = 0;
    for (size_t i = 0; i < n; i++)
        bits += __builtin_popcount(b[i]);
    return bits;
}

static iface_t *iface_get(iface_t *ifs, int *n, const char *name)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(ifs[i].name, name) == 0) return &ifs[i];
    if (*n >= SVC_NET_MAX_IFACES || strlen(name) > IF_NAMESIZE) return NULL;
    iface_t *f = &ifs[(*n)++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return f;
}

static int read_mtu(const char *name)
{
    char path[64 + IF_NAMESIZE], buf[32];
    snprintf(path, sizeof(path), "/sys/class/net/%s/mtu", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t r = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (r > 0) {
            buf[r] = 0;
            return atoi(buf);
        }
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return 0;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, name, strnlen(name, sizeof(ifr.ifr_name) - 1));
    int mtu = ioctl(s, SIOCGIFMTU, &ifr) == 0 ? ifr.ifr_mtu : 0;
    close(s);
    return mtu;
}

static bool read_ifstats(const char *name, svc_net_ifstats_t *out)
{
    FILE *f = fopen("/proc/net/dev", "re");
    if (!f) return false;
    char line[SVC_NET_MAX_LINE];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = svc_netinfo_parse_dev_line(line, out) == 0 && strcmp(out->name, name) == 0;
    fclose(f);
    return found;
}

static void pack_iface(msgpack_packer *pk, const iface_t *f, const struct ifaddrs *packet)
{
    char buf[INET6_ADDRSTRLEN];
    msgpack_pack_map(pk, 9);
    pack_str(pk, "name");
    pack_str(pk, f->name);
    pack_str(pk, "index");
    msgpack_pack_uint32(pk, if_nametoindex(f->name));
    pack_str(pk, "addresses");
    msgpack_pack_array(pk, (size_t)f->naddrs);
    for (int i = 0; i < f->naddrs; i++) {
        msgpack_pack_map(pk, 3);
        pack_str(pk, "family");
        msgpack_pack_int(pk, f->addrs[i].family);
        pack_str(pk, "address");
        inet_ntop(f->addrs[i].family == 4 ? AF_INET : AF_INET6, f->addrs[i].ip, buf, sizeof(buf));
        pack_str(pk, buf);
        pack_str(pk, "prefixlen");
        msgpack_pack_int(pk, f->addrs[i].prefixlen);
    }
    pack_str(pk, "mac");
    if (f->has_mac && f->mac_len == 6) {
        char mac[18];
        snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", f->mac[0], f->mac[1], f->mac[2],
                 f->mac[3], f->mac[4], f->mac[5]);
        pack_str(pk, mac);
    } else {
        msgpack_pack_nil(pk);
    }
    pack_str(pk, "mtu");
    msgpack_pack_int(pk, read_mtu(f->name));
    pack_str(pk, "up");
    (f->flags & IFF_UP) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    pack_str(pk, "running");
    (f->flags & IFF_RUNNING) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    pack_str(pk, "loopback");
    (f->flags & IFF_LOOPBACK) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    svc_net_ifstats_t st;
    if (!read_ifstats(f->name, &st)) {
        /* no /proc/net/dev: the AF_PACKET entry's 32-bit counters */
        memset(&st, 0, sizeof(st));
        const struct rtnl_link_stats *ls = packet ? packet->ifa_data : NULL;
        if (ls) {
            st.rx_bytes = ls->rx_bytes;
            st.tx_bytes = ls->tx_bytes;
            st.rx_packets = ls->rx_packets;
            st.tx_packets = ls->tx_packets;
            st.rx_errors = ls->rx_errors;
            st.tx_errors = ls->tx_errors;
            st.rx_dropped = ls->rx_dropped;
            st.tx_dropped = ls->tx_dropped;
        }
    }
    pack_str(pk, "counters");
    msgpack_pack_map(pk, 8);
    const struct {
        const char *k;
        uint64_t v;
    } c[8] = {{"rx_bytes", st.rx_bytes},     {"tx_bytes", st.tx_bytes},
              {"rx_packets", st.rx_packets}, {"tx_packets", st.tx_packets},
              {"rx_errors", st.rx_errors},   {"tx_errors", st.tx_errors},
              {"rx_dropped", st.rx_dropped}, {"tx_dropped", st.tx_dropped}};
    for (int i = 0; i < 8; i++) {
        pack_str(pk, c[i].k);
        msgpack_pack_uint64(pk, c[i].v);
    }
}

int svc_netinfo_pack_interfaces(msgpack_packer *pk)
{
    struct ifaddrs *all;
    if (getifaddrs(&all) < 0) return -errno;
    iface_t *ifs = calloc(SVC_NET_MAX_IFACES, sizeof(*ifs));
    if (!ifs) {
        freeifaddrs(all);
        return -ENOMEM;
    }
    int n = 0;
    for (struct ifaddrs *a = all; a; a = a->ifa_next) {
        if (!a->ifa_name) continue;
        iface_t *f = iface_get(ifs, &n, a->ifa_name);
        if (!f) continue;
        f->flags |= a->ifa_flags;
        if (!a->ifa_addr) continue;
        if (a->ifa_addr->sa_family == AF_PACKET) {
            const struct sockaddr_ll *ll = (const struct sockaddr_ll *)a->ifa_addr;
            if (ll->sll_halen <= sizeof(f->mac)) {
                f->has_mac = true;
                f->mac_len = ll->sll_halen;
                memcpy(f->mac, ll->sll_addr, ll->sll_halen);
            }
        } else if ((a->ifa_addr->sa_family == AF_INET || a->ifa_addr->sa_family == AF_INET6) &&
                   f->naddrs < SVC_NET_MAX_IF_ADDRS) {
            int i = f->naddrs++;
            if (a->ifa_addr->sa_family == AF_INET) {
                f->addrs[i].family = 4;
                memcpy(f->addrs[i].ip, &((struct sockaddr_in *)a->ifa_addr)->sin_addr, 4);
            } else {
                f->addrs[i].family = 6;
                memcpy(f->addrs[i].ip, &((struct sockaddr_in6 *)a->ifa_addr)->sin6_addr, 16);
            }
            f->addrs[i].prefixlen = mask_bits(a->ifa_netmask);
        }
    }
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        const struct ifaddrs *packet = NULL;
        for (struct ifaddrs *a = all; a && !packet; a = a->ifa_next)
            if (a->ifa_addr && a->ifa_addr->sa_family == AF_PACKET &&
                strcmp(a->ifa_name, ifs[i].name) == 0)
                packet = a;
        pack_iface(pk, &ifs[i], packet);
    }
    free(ifs);
    freeifaddrs(all);
    return n;
}

static void interfaces_cb(rpc_call_t *call, void *ctx)
{
    (void)ctx;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer tmp;
    msgpack_packer_init(&tmp, &sb, msgpack_sbuffer_write);
    int r = svc_netinfo_pack_interfaces(&tmp);
    if (r < 0) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "cannot list the interfaces: %s", strerror(-r));
    } else {
        msgpack_packer *pk = rpc_call_packer(call);
        pk->callback(pk->data, sb.data, sb.size); /* one packed object, appended whole */
        rpc_call_reply(call);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* ---- routes and stats (small /proc files, read on the loop) ---------------------------------- */

static void routes_cb(rpc_call_t *call, void *ctx)
{
    (void)ctx;
    svc_netinfo_pack_routes("/proc", rpc_call_packer(call));
    rpc_call_reply(call);
}

static void stats_cb(rpc_call_t *call, void *ctx)
{
    (void)ctx;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer tmp;
    msgpack_packer_init(&tmp, &sb, msgpack_sbuffer_write);
    int r = svc_netinfo_pack_stats("/proc", &tmp);
    if (r < 0) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "cannot read /proc/net/snmp: %s", strerror(-r));
    } else {
        msgpack_packer *pk = rpc_call_packer(call);
        pk->callback(pk->data, sb.data, sb.size);
        rpc_call_reply(call);
    }
    msgpack_sbuffer_destroy(&sb);
}

/* ---- connections (thread pool) ----------------------------------------------------------------
 */

typedef struct job {
    svc_net_op_t op;
    uv_work_t work;
    svc_net_conn_query_t q;
    char state[16];
    msgpack_sbuffer sb;
    int result;
} job_t;

static void job_work(uv_work_t *w)
{
    job_t *j = w->data;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &j->sb, msgpack_sbuffer_write);
    j->result = svc_netinfo_pack_connections(&j->q, &pk);
}

static void job_after(uv_work_t *w, int status)
{
    job_t *j = w->data;
    struct svc_network *svc = j->op.svc;
    if (svc) svc->njobs--;
    rpc_call_t *call = j->op.call;
    j->op.call = NULL;
    if (call) {
        if (status < 0)
            rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the scan was cancelled");
        else if (j->result < 0)
            rpc_call_error(call, RPC_ERR_UNAVAILABLE, "cannot read the socket tables: %s",
                           strerror(-j->result));
        else {
            msgpack_packer *pk = rpc_call_packer(call);
            pk->callback(pk->data, j->sb.data, j->sb.size);
            rpc_call_reply(call);
        }
    }
    svc_net_op_remove(&j->op);
    msgpack_sbuffer_destroy(&j->sb);
    free(j);
}

static void job_on_stop(svc_net_op_t *op)
{
    job_t *j = (job_t *)op;
    uv_cancel((uv_req_t *)&j->work); /* if it runs already, job_after frees it when done */
    op->svc = NULL;
}

static void connections_cb(rpc_call_t *call, void *ctx)
{
    svc_network_t *svc = ctx;
    size_t plen = 0, slen = 0;
    const char *proto = rpc_call_str(call, "proto", &plen);
    const char *state = rpc_call_str(call, "state", &slen);
    int p = -1;
    if (proto && (p = svc_netinfo_proto_parse(proto, plen)) < 0) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "proto",
                             "proto is one of tcp, tcp6, udp, udp6");
        return;
    }
    if (state && svc_netinfo_state_parse(SVC_NET_TCP, state, slen) < 0) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "state",
                             "unknown state (listen, established, time_wait, ...)");
        return;
    }
    if (svc->njobs >= SVC_NET_MAX_JOBS) {
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "%d scans are already running",
                       SVC_NET_MAX_JOBS);
        return;
    }
    job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        rpc_call_error(call, RPC_ERR_INTERNAL, "out of memory");
        return;
    }
    msgpack_sbuffer_init(&j->sb);
    j->q.proto = p;
    if (state) {
        memcpy(j->state, state, slen); /* schema: at most 15 bytes */
        j->q.state = j->state;
    }
    j->q.port = (int)rpc_call_int(call, "port");
    j->q.limit = (size_t)rpc_call_int(call, "limit");
    j->q.proc_root = "/proc";
    j->work.data = j;
    j->op.on_stop = job_on_stop;
    int r = uv_queue_work(svc->node->loop, &j->work, job_work, job_after);
    if (r < 0) {
        msgpack_sbuffer_destroy(&j->sb);
        free(j);
        rpc_call_error(call, RPC_ERR_INTERNAL, "cannot queue the scan: %s", uv_strerror(r));
        return;
    }
    svc_net_op_add(svc, &j->op, call);
    svc->njobs++;
}

/* ---- resolve ------------------------------------------------------------------------------------
 */

typedef struct resolve {
    svc_net_op_t op;
    uv_getaddrinfo_t gai;
    char name[SVC_NET_MAX_HOSTNAME + 1];
} resolve_t;

static void resolved_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    resolve_t *rs = req->data;
    struct svc_network *svc = rs->op.svc;
    if (svc) svc->nresolves--;
    rpc_call_t *call = rs->op.call;
    rs->op.call = NULL;
    if (call && status < 0) {
        if (status == UV_EAI_NONAME || status == UV_EAI_NODATA)
            rpc_call_error_param(call, RPC_ERR_NOT_FOUND, "name", "%s: no such host", rs->name);
        else
            rpc_call_error_param(call, RPC_ERR_UNAVAILABLE, "name", "cannot resolve %s: %s",
                                 rs->name, uv_strerror(status));
    } else if (call) {
        char addrs[SVC_NET_MAX_ADDRS][INET6_ADDRSTRLEN];
        size_t n = 0;
        for (struct addrinfo *ai = res; ai && n < SVC_NET_MAX_ADDRS; ai = ai->ai_next) {
            uint8_t fam, ip[16];
            if (!ai->ai_addr || svc_netcheck_addr(ai->ai_addr, &fam, ip) < 0) continue;
            inet_ntop(fam == 4 ? AF_INET : AF_INET6, ip, addrs[n], sizeof(addrs[n]));
            bool dup = false;
            for (size_t i = 0; i < n && !dup; i++)
                dup = strcmp(addrs[i], addrs[n]) == 0;
            if (!dup) n++;
        }
        msgpack_packer *pk = rpc_call_packer(call);
        msgpack_pack_map(pk, 2);
        pack_str(pk, "name");
        pack_str(pk, rs->name);
        pack_str(pk, "addresses");
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++)
            pack_str(pk, addrs[i]);
        rpc_call_reply(call);
    }
    uv_freeaddrinfo(res);
    svc_net_op_remove(&rs->op);
    free(rs);
}

static void resolve_on_stop(svc_net_op_t *op)
{
    resolve_t *rs = (resolve_t *)op;
    uv_cancel((uv_req_t *)&rs->gai);
    op->svc = NULL;
}

static void resolve_cb(rpc_call_t *call, void *ctx)
{
    svc_network_t *svc = ctx;
    size_t len;
    const char *name = rpc_call_str(call, "name", &len);
    if (!svc_netcheck_host_valid(name, len)) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "name",
                             "not a host name (labels of letters, digits, '-' and '_', at most "
                             "63 characters each, " STR(SVC_NET_MAX_HOSTNAME) " in all)");
        return;
    }
    if (svc->nresolves >= SVC_NET_MAX_RESOLVES) {
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "%d name lookups are already running",
                       SVC_NET_MAX_RESOLVES);
        return;
    }
    resolve_t *rs = calloc(1, sizeof(*rs));
    if (!rs) {
        rpc_call_error(call, RPC_ERR_INTERNAL, "out of memory");
        return;
    }
    memcpy(rs->name, name, len);
    rs->gai.data = rs;
    rs->op.on_stop = resolve_on_stop;
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int r = uv_getaddrinfo(svc->node->loop, &rs->gai, resolved_cb, rs->name, NULL, &hints);
    if (r < 0) {
        free(rs);
        rpc_call_error(call, RPC_ERR_INTERNAL, "cannot resolve: %s", uv_strerror(r));
        return;
    }
    svc_net_op_add(svc, &rs->op, call);
    svc->nresolves++;
}

/* ---- registration ------------------------------------------------------------------------------
 */

static const rpc_param_t connections_params[] = {
    {.name = "state",
     .types = RPC_T_STRING,
     .range = true,
     .min = 1,
     .max = 15,
     .description = "only sockets in this state: listen, established, time_wait, close_wait, "
                    "syn_sent... (UDP: listen = bound, unconnected)"},
    {.name = "proto",
     .types = RPC_T_STRING,
     .range = true,
     .min = 1,
     .max = 4,
     .description = "only this protocol: tcp, tcp6, udp or udp6"},
    {.name = "port",
     .types = RPC_T_INT,
     .range = true,
     .min = 1,
     .max = 65535,
     .description = "only sockets with this local or remote port"},
    {.name = "limit",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = 1000,
     .range = true,
     .min = 1,
     .max = SVC_NET_MAX_CONNECTIONS,
     .description = "rows at most"},
};

static const rpc_param_t resolve_params[] = {
    {.name = "name",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = SVC_NET_MAX_HOSTNAME,
     .description = "host name to resolve (system resolver: /etc/hosts, DNS)"},
};

static const rpc_param_t check_params[] = {
    {.name = "host",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = SVC_NET_MAX_HOSTNAME,
     .description = "host name or address; must resolve to loopback, a CHECK_PORT_ALLOW "
                    "network or a node of the network"},
    {.name = "port",
     .types = RPC_T_INT,
     .required = true,
     .range = true,
     .min = 1,
     .max = 65535,
     .description = "TCP port"},
    {.name = "timeout",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = 3,
     .range = true,
     .min = 1,
     .max = SVC_NET_CHECK_MAX_TIMEOUT_S,
     .description = "seconds to wait for the connection"},
};

static const rpc_param_t ping_params[] = {
    {.name = "node",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = 65,
     .description = "node name or @id-prefix"},
};

static int register_methods(svc_network_t *svc)
{
    const rpc_method_t methods[] = {
        {.name = "network.interfaces",
         .description = "Network interfaces: addresses, MAC, MTU, up/running, counters.",
         .role = RPC_ROLE_VIEWER,
         .handler = interfaces_cb,
         .ctx = svc},
        {.name = "network.connections",
         .description = "TCP and UDP sockets (v4 and v6) with their state and owning process.",
         .role = RPC_ROLE_VIEWER,
         .params = connections_params,
         .n_params = P2P_ARRAY_LEN(connections_params),
         .handler = connections_cb,
         .ctx = svc},
        {.name = "network.routes",
         .description = "IPv4 and IPv6 routing tables.",
         .role = RPC_ROLE_VIEWER,
         .handler = routes_cb,
         .ctx = svc},
        {.name = "network.resolve",
         .description = "Resolves a host name to its addresses.",
         .role = RPC_ROLE_VIEWER,
         .params = resolve_params,
         .n_params = P2P_ARRAY_LEN(resolve_params),
         .handler = resolve_cb,
         .ctx = svc},
        {.name = "network.stats",
         .description = "TCP, UDP and IP counters (/proc/net/snmp, netstat, sockstat).",
         .role = RPC_ROLE_VIEWER,
         .handler = stats_cb,
         .ctx = svc},
        {.name = "network.check_port",
         .description = "TCP connect test to an allowed host (loopback, CHECK_PORT_ALLOW, nodes).",
         .role = RPC_ROLE_OPERATOR,
         .params = check_params,
         .n_params = P2P_ARRAY_LEN(check_params),
         .handler = svc_netcheck_call,
         .ctx = svc},
        {.name = "network.ping",
         .description = "Round-trip time to another node over the DHT.",
         .role = RPC_ROLE_VIEWER,
         .params = ping_params,
         .n_params = P2P_ARRAY_LEN(ping_params),
         .handler = svc_netcheck_ping_call,
         .ctx = svc},
    };
    for (size_t i = 0; i < P2P_ARRAY_LEN(methods); i++) {
        int r = rpc_registry_add(svc->node->reg, &methods[i]);
        if (r < 0) return r;
    }
    return 0;
}

int svc_network_start(node_t *node, svc_network_t **out, char *err, size_t errlen)
{
    svc_network_t *svc = calloc(1, sizeof(*svc));
    if (!svc) {
        snprintf(err, errlen, "network service: out of memory");
        return -ENOMEM;
    }
    svc->node = node;
    svc->ops.next = svc->ops.prev = &svc->ops;
    int r = svc_netcheck_parse_allow(node->cfg.check_port_allow, svc->allow, SVC_NET_MAX_ALLOW);
    if (r < 0) {
        snprintf(err, errlen, "CHECK_PORT_ALLOW: %s",
                 r == -ENOSPC ? "more than " STR(SVC_NET_MAX_ALLOW) " entries"
                              : "an entry is not ADDR[/BITS]");
        free(svc);
        return r;
    }
    svc->nallow = (size_t)r;
    if (node->reg && (r = register_methods(svc)) < 0) {
        snprintf(err, errlen, "network service: cannot register the methods: %s", strerror(-r));
        free(svc);
        return r;
    }
    *out = svc;
    return 0;
}

void svc_network_stop(svc_network_t *svc, void (*done)(void *arg), void *arg)
{
    if (!svc) return;
    svc->stopping = true;
    svc->done = done;
    svc->done_arg = arg;
    while (svc->ops.next != &svc->ops) {
        svc_net_op_t *op = svc->ops.next;
        svc_net_op_remove(op);
        if (op->call) {
            rpc_call_t *call = op->call;
            op->call = NULL;
            rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the node is stopping");
        }
        op->on_stop(op);
    }
    if (svc->closing == 0) finish_stop(svc);
}
