/* netinfo.c: reading the host's network state for the network service: sockets of
 * /proc/net/{tcp,tcp6,udp,udp6} with their owners (one bounded pass over /proc/PID/fd), routes
 * (/proc/net/route, ipv6_route) and interface counters (/proc/net/dev); the counters of
 * /proc/net/snmp, netstat and sockstat are in netstats.c. Parsers take one line or a text so
 * that tests can feed fixtures; every read is bounded by the limits of netinfo.h. No logging, no
 * loop. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "services/netinfo.h"

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    pack_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

/* ---- sockets ---------------------------------------------------------------------------- */

static const char *const proto_names[SVC_NET_PROTOS] = {"tcp", "tcp6", "udp", "udp6"};

const char *svc_netinfo_proto_name(int proto)
{
    return proto >= 0 && proto < SVC_NET_PROTOS ? proto_names[proto] : "unknown";
}

int svc_netinfo_proto_parse(const char *s, size_t len)
{
    for (int i = 0; i < SVC_NET_PROTOS; i++)
        if (strlen(proto_names[i]) == len && memcmp(proto_names[i], s, len) == 0) return i;
    return -EINVAL;
}

static const char *const tcp_states[] = {
    NULL,    "established", "syn_sent", "syn_recv", "fin_wait1", "fin_wait2",   "time_wait",
    "close", "close_wait",  "last_ack", "listen",   "closing",   "new_syn_recv"};
#define TCP_STATES ((int)(sizeof(tcp_states) / sizeof(tcp_states[0])))

static bool is_udp(int proto)
{
    return proto == SVC_NET_UDP || proto == SVC_NET_UDP6;
}

const char *svc_netinfo_state_name(int proto, int state)
{
    if (is_udp(proto) && state == 7) return "listen";
    if (state <= 0 || state >= TCP_STATES) return "unknown";
    return tcp_states[state];
}

int svc_netinfo_state_parse(int proto, const char *s, size_t len)
{
    if (is_udp(proto) && len == 6 && memcmp(s, "listen", 6) == 0) return 7;
    for (int i = 1; i < TCP_STATES; i++)
        if (strlen(tcp_states[i]) == len && memcmp(tcp_states[i], s, len) == 0) return i;
    return -EINVAL;
}

/* Hex digits of s[0..n) into v. Returns the position after them or NULL. */
static const char *hex_u64(const char *s, size_t maxdigits, uint64_t *v)
{
    size_t i = 0;
    *v = 0;
    for (; i < maxdigits && isxdigit((unsigned char)s[i]); i++) {
        int c = (unsigned char)s[i];
        int d = c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
        *v = (*v << 4) | (uint64_t)d;
    }
    return i == 0 ? NULL : s + i;
}

const char *svc_netinfo_skip_ws(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* "0100007F:1F90" (IPv4: one native-order 32-bit word) or 32 hex digits (IPv6: four words). */
static const char *parse_endpoint(const char *s, bool v6, uint8_t *ip, uint16_t *port)
{
    int words = v6 ? 4 : 1;
    for (int w = 0; w < words; w++) {
        char tmp[9];
        memcpy(tmp, s, 8);
        tmp[8] = 0;
        uint64_t v;
        const char *e = hex_u64(tmp, 8, &v);
        if (!e || e != tmp + 8) return NULL;
        uint32_t word = (uint32_t)v; /* the kernel prints the address words in host order */
        memcpy(ip + 4 * w, &word, 4);
        s += 8;
    }
    if (*s != ':') return NULL;
    uint64_t p;
    const char *e = hex_u64(s + 1, 4, &p);
    if (!e || e - (s + 1) != 4) return NULL;
    *port = (uint16_t)p;
    return e;
}

int svc_netinfo_parse_sock_line(int proto, const char *line, svc_net_sock_t *out)
{
    bool v6 = proto == SVC_NET_TCP6 || proto == SVC_NET_UDP6;
    memset(out, 0, sizeof(*out));
    out->proto = (uint8_t)proto;
    out->family = v6 ? 6 : 4;
    const char *s = svc_netinfo_skip_ws(line);
    /* "sl:" */
    uint64_t v;
    const char *e = NULL;
    while (isdigit((unsigned char)*s))
        s++;
    if (*s != ':') return -EINVAL;
    s = svc_netinfo_skip_ws(s + 1);
    size_t need = v6 ? 32 : 8;
    if (strnlen(s, need + 6) < need + 5) return -EINVAL;
    if (!(s = parse_endpoint(s, v6, out->local, &out->lport))) return -EINVAL;
    s = svc_netinfo_skip_ws(s);
    if (strnlen(s, need + 6) < need + 5) return -EINVAL;
    if (!(s = parse_endpoint(s, v6, out->remote, &out->rport))) return -EINVAL;
    s = svc_netinfo_skip_ws(s);
    if (!(e = hex_u64(s, 2, &v))) return -EINVAL;
    out->state = (uint8_t)v;
    /* tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode */
    char *end;
    s = svc_netinfo_skip_ws(e);
    for (int field = 0; field < 3; field++) { /* skip three hex fields */
        while (*s && *s != ' ' && *s != '\t')
            s++;
        s = svc_netinfo_skip_ws(s);
    }
    if (!isdigit((unsigned char)*s)) return -EINVAL;
    unsigned long long uid = strtoull(s, &end, 10);
    if (end == s || uid > UINT32_MAX) return -EINVAL;
    out->uid = (uint32_t)uid;
    s = svc_netinfo_skip_ws(end);
    (void)strtoull(s, &end, 10); /* timeout */
    if (end == s) return -EINVAL;
    s = svc_netinfo_skip_ws(end);
    unsigned long long inode = strtoull(s, &end, 10);
    if (end == s) return -EINVAL;
    out->inode = inode;
    return 0;
}

void svc_netinfo_format_endpoint(uint8_t family, const uint8_t *ip, uint16_t port, char *out,
                                 size_t cap)
{
    char a[INET6_ADDRSTRLEN] = "?";
    if (family == 4) {
        inet_ntop(AF_INET, ip, a, sizeof(a));
        snprintf(out, cap, "%s:%u", a, (unsigned)port);
    } else {
        inet_ntop(AF_INET6, ip, a, sizeof(a));
        snprintf(out, cap, "[%s]:%u", a, (unsigned)port);
    }
}

/* One row of network.connections and its owner once found. */
typedef struct conn_row {
    svc_net_sock_t s;
    int pid; /* 0 = not found */
    char comm[20];
} conn_row_t;

typedef struct inode_ref {
    uint64_t inode;
    size_t row;
} inode_ref_t;

static int inode_cmp(const void *a, const void *b)
{
    const inode_ref_t *x = a, *y = b;
    return x->inode < y->inode ? -1 : x->inode > y->inode;
}

static bool sock_matches(const svc_net_conn_query_t *q, int state, const svc_net_sock_t *s)
{
    if (state >= 0 && s->state != state) return false;
    if (q->port > 0 && s->lport != q->port && s->rport != q->port) return false;
    return true;
}

/* Reads PROC/net/PROTO line by line into rows (up to q->limit). Returns 0 or -errno. */
static int read_sockets(const svc_net_conn_query_t *q, int proto, conn_row_t *rows, size_t *n)
{
    char path[NODE_PATH_MAX];
    snprintf(path, sizeof(path), "%s/net/%s", q->proc_root, proto_names[proto]);
    int state = -1;
    if (q->state) {
        state = svc_netinfo_state_parse(proto, q->state, strlen(q->state));
        if (state < 0) return 0; /* a TCP-only state asked of UDP: no rows */
    }
    FILE *f = fopen(path, "re");
    if (!f) return -errno;
    char line[SVC_NET_MAX_LINE];
    bool skipping = false; /* inside an overlong line */
    while (*n < q->limit && fgets(line, sizeof(line), f)) {
        bool whole = strchr(line, '\n') != NULL || feof(f);
        if (skipping || !whole) {
            skipping = !whole;
            continue;
        }
        svc_net_sock_t s;
        if (svc_netinfo_parse_sock_line(proto, line, &s) < 0) continue;
        if (!sock_matches(q, state, &s)) continue;
        memset(&rows[*n], 0, sizeof(rows[*n]));
        rows[*n].s = s;
        (*n)++;
    }
    fclose(f);
    return 0;
}

static void read_comm(int dirfd, char *out, size_t cap)
{
    out[0] = 0;
    int fd = openat(dirfd, "comm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t r = read(fd, out, cap - 1);
    close(fd);
    if (r <= 0) {
        out[0] = 0;
        return;
    }
    out[r] = 0;
    char *nl = strchr(out, '\n');
    if (nl) *nl = 0;
}

/* Scans one process's fds for the socket inodes in refs. *budget counts fds left to read. */
static void scan_process(int procfd, const char *pid_s, const inode_ref_t *refs, size_t nrefs,
                         conn_row_t *rows, size_t *budget)
{
    int piddir = openat(procfd, pid_s, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (piddir < 0) return;
    int fddir = openat(piddir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fddir >= 0 ? fdopendir(fddir) : NULL;
    if (!d) {
        if (fddir >= 0) close(fddir);
        close(piddir);
        return;
    }
    int pid = atoi(pid_s);
    char comm[20] = "";
    bool have_comm = false;
    size_t seen = 0;
    struct dirent *de;
    while (*budget > 0 && seen < SVC_NET_MAX_FDS_PER_PROC && (de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        seen++;
        (*budget)--;
        char link[64];
        ssize_t l = readlinkat(dirfd(d), de->d_name, link, sizeof(link) - 1);
        if (l < 9 || memcmp(link, "socket:[", 8) != 0) continue;
        link[l] = 0;
        inode_ref_t key = {strtoull(link + 8, NULL, 10), 0};
        const inode_ref_t *hit = bsearch(&key, refs, nrefs, sizeof(*refs), inode_cmp);
        if (!hit) continue;
        while (hit > refs && hit[-1].inode == key.inode)
            hit--; /* the same inode listed twice (never in practice): fill every row */
        for (; hit < refs + nrefs && hit->inode == key.inode; hit++) {
            conn_row_t *r = &rows[hit->row];
            if (r->pid) continue; /* shared after fork: the first owner found is shown */
            if (!have_comm) {
                read_comm(piddir, comm, sizeof(comm));
                have_comm = true;
            }
            r->pid = pid;
            snprintf(r->comm, sizeof(r->comm), "%s", comm);
        }
    }
    closedir(d);
    close(piddir);
}

/* One pass over PROC/PID/fd, bounded by the process and fd limits. */
static void find_owners(const char *proc_root, conn_row_t *rows, size_t n)
{
    inode_ref_t *refs = calloc(n ? n : 1, sizeof(*refs));
    if (!refs) return;
    size_t nrefs = 0;
    for (size_t i = 0; i < n; i++)
        if (rows[i].s.inode) refs[nrefs++] = (inode_ref_t){rows[i].s.inode, i};
    if (nrefs == 0) goto done;
    qsort(refs, nrefs, sizeof(*refs), inode_cmp);
    int procfd = open(proc_root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = procfd >= 0 ? fdopendir(procfd) : NULL;
    if (!d) {
        if (procfd >= 0) close(procfd);
        goto done;
    }
    size_t budget = SVC_NET_MAX_FDS_SCANNED, procs = 0;
    struct dirent *de;
    while (budget > 0 && procs < SVC_NET_MAX_PROCS_SCANNED && (de = readdir(d))) {
        if (!isdigit((unsigned char)de->d_name[0])) continue;
        procs++;
        scan_process(dirfd(d), de->d_name, refs, nrefs, rows, &budget);
    }
    closedir(d);
done:
    free(refs);
}

static void pack_row(msgpack_packer *pk, const conn_row_t *r)
{
    char buf[80];
    msgpack_pack_map(pk, 8);
    pack_str(pk, "proto");
    pack_str(pk, proto_names[r->s.proto]);
    pack_str(pk, "local");
    svc_netinfo_format_endpoint(r->s.family, r->s.local, r->s.lport, buf, sizeof(buf));
    pack_str(pk, buf);
    pack_str(pk, "remote");
    svc_netinfo_format_endpoint(r->s.family, r->s.remote, r->s.rport, buf, sizeof(buf));
    pack_str(pk, buf);
    pack_str(pk, "state");
    pack_str(pk, svc_netinfo_state_name(r->s.proto, r->s.state));
    pack_str(pk, "pid");
    if (r->pid)
        msgpack_pack_int(pk, r->pid);
    else
        msgpack_pack_nil(pk);
    pack_str(pk, "process");
    if (r->pid && r->comm[0])
        pack_str(pk, r->comm);
    else
        msgpack_pack_nil(pk);
    pack_kv_u64(pk, "inode", r->s.inode);
    pack_kv_u64(pk, "uid", r->s.uid);
}

int svc_netinfo_pack_connections(const svc_net_conn_query_t *q, msgpack_packer *pk)
{
    size_t limit = q->limit;
    if (limit == 0 || limit > SVC_NET_MAX_CONNECTIONS) limit = SVC_NET_MAX_CONNECTIONS;
    svc_net_conn_query_t qq = *q;
    qq.limit = limit;
    conn_row_t *rows = calloc(limit, sizeof(*rows));
    if (!rows) return -ENOMEM;
    size_t n = 0;
    int read_ok = 0, err = -ENOENT;
    for (int p = 0; p < SVC_NET_PROTOS; p++) {
        if (q->proto >= 0 && q->proto != p) continue;
        int r = read_sockets(&qq, p, rows, &n);
        if (r == 0)
            read_ok++;
        else if (r != -ENOENT || err == -ENOENT)
            err = r; /* tcp6/udp6 are absent without IPv6: not an error on their own */
    }
    if (read_ok == 0 && q->proto < 0) {
        free(rows);
        return err;
    }
    if (read_ok == 0 && err != -ENOENT) {
        free(rows);
        return err;
    }
    find_owners(q->proc_root, rows, n);
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++)
        pack_row(pk, &rows[i]);
    free(rows);
    return (int)n;
}

/* ---- routes ------------------------------------------------------------------------------- */

int svc_netinfo_parse_route4(const char *line, svc_net_route_t *out)
{
    memset(out, 0, sizeof(*out));
    out->family = 4;
    char ifname[32];
    unsigned dst, gw, flags, refcnt, use, metric, mask;
    if (sscanf(line, "%31s %x %x %x %u %u %u %x", ifname, &dst, &gw, &flags, &refcnt, &use, &metric,
               &mask) != 8)
        return -EINVAL;
    if (strlen(ifname) >= sizeof(out->ifname)) return -EINVAL;
    memcpy(out->ifname, ifname, strlen(ifname) + 1);
    uint32_t d = dst, g = gw, m = mask; /* native-order words of network-order addresses */
    memcpy(out->dst, &d, 4);
    memcpy(out->gw, &g, 4);
    out->prefixlen = (uint8_t)__builtin_popcount(m);
    out->metric = metric;
    out->flags = flags;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int hex_bytes(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0) return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int svc_netinfo_parse_route6(const char *line, svc_net_route_t *out)
{
    memset(out, 0, sizeof(*out));
    out->family = 6;
    char dst[40], src[40], gw[40], ifname[32];
    unsigned dplen, splen, metric, refcnt, use, flags;
    if (sscanf(line, "%39s %x %39s %x %39s %x %x %x %x %31s", dst, &dplen, src, &splen, gw, &metric,
               &refcnt, &use, &flags, ifname) != 10)
        return -EINVAL;
    if (strlen(dst) != 32 || strlen(gw) != 32 || dplen > 128) return -EINVAL;
    if (hex_bytes(dst, out->dst, 16) < 0 || hex_bytes(gw, out->gw, 16) < 0) return -EINVAL;
    if (strlen(ifname) >= sizeof(out->ifname)) return -EINVAL;
    memcpy(out->ifname, ifname, strlen(ifname) + 1);
    out->prefixlen = (uint8_t)dplen;
    out->metric = metric;
    out->flags = flags;
    return 0;
}

static void pack_route(msgpack_packer *pk, const svc_net_route_t *r)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } fl[] = {{RTF_UP, "up"},          {RTF_GATEWAY, "gateway"}, {RTF_HOST, "host"},
              {RTF_REJECT, "reject"},  {RTF_DYNAMIC, "dynamic"}, {RTF_MODIFIED, "modified"},
              {0x00200000, "default"}, {0x80000000, "local"}};
    char a[INET6_ADDRSTRLEN];
    int af = r->family == 4 ? AF_INET : AF_INET6;
    msgpack_pack_map(pk, 7);
    pack_str(pk, "family");
    msgpack_pack_int(pk, r->family);
    pack_str(pk, "destination");
    inet_ntop(af, r->dst, a, sizeof(a));
    pack_str(pk, a);
    pack_str(pk, "prefixlen");
    msgpack_pack_int(pk, r->prefixlen);
    pack_str(pk, "gateway");
    static const uint8_t zero[16] = {0};
    if (memcmp(r->gw, zero, r->family == 4 ? 4 : 16) == 0) {
        msgpack_pack_nil(pk);
    } else {
        inet_ntop(af, r->gw, a, sizeof(a));
        pack_str(pk, a);
    }
    pack_str(pk, "interface");
    pack_str(pk, r->ifname);
    pack_kv_u64(pk, "metric", r->metric);
    pack_str(pk, "flags");
    size_t nf = 0;
    size_t nfl = sizeof(fl) / sizeof(fl[0]);
    size_t upto = r->family == 4 ? 6 : nfl; /* the last two bits mean something in IPv6 only */
    for (size_t i = 0; i < upto; i++)
        if (r->flags & fl[i].bit) nf++;
    msgpack_pack_array(pk, nf);
    for (size_t i = 0; i < upto; i++)
        if (r->flags & fl[i].bit) pack_str(pk, fl[i].name);
}

/* Reads one route table into a malloc'd array. Returns the count (0 when absent). */
static int read_routes(const char *proc_root, bool v6, svc_net_route_t **out)
{
    char path[NODE_PATH_MAX];
    snprintf(path, sizeof(path), "%s/net/%s", proc_root, v6 ? "ipv6_route" : "route");
    *out = NULL;
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    size_t cap = 16, n = 0;
    svc_net_route_t *a = malloc(cap * sizeof(*a));
    char line[SVC_NET_MAX_LINE];
    while (a && n < SVC_NET_MAX_ROUTES && fgets(line, sizeof(line), f)) {
        if (n == cap) {
            svc_net_route_t *b = realloc(a, 2 * cap * sizeof(*a));
            if (!b) break;
            a = b;
            cap *= 2;
        }
        int r = v6 ? svc_netinfo_parse_route6(line, &a[n]) : svc_netinfo_parse_route4(line, &a[n]);
        if (r == 0) n++;
    }
    fclose(f);
    *out = a;
    return a ? (int)n : 0;
}

int svc_netinfo_pack_routes(const char *proc_root, msgpack_packer *pk)
{
    svc_net_route_t *r4, *r6;
    int n4 = read_routes(proc_root, false, &r4);
    int n6 = read_routes(proc_root, true, &r6);
    msgpack_pack_array(pk, (size_t)(n4 + n6));
    for (int i = 0; i < n4; i++)
        pack_route(pk, &r4[i]);
    for (int i = 0; i < n6; i++)
        pack_route(pk, &r6[i]);
    free(r4);
    free(r6);
    return n4 + n6;
}

/* ---- /proc/net/dev ------------------------------------------------------------------------ */

int svc_netinfo_parse_dev_line(const char *line, svc_net_ifstats_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *s = svc_netinfo_skip_ws(line);
    const char *colon = strchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof(out->name)) return -EINVAL;
    memcpy(out->name, s, (size_t)(colon - s));
    out->name[colon - s] = 0;
    unsigned long long v[16];
    if (sscanf(colon + 1,
               "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu "
               "%llu %llu",
               &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11],
               &v[12], &v[13], &v[14], &v[15]) != 16)
        return -EINVAL;
    out->rx_bytes = v[0];
    out->rx_packets = v[1];
    out->rx_errors = v[2];
    out->rx_dropped = v[3];
    out->tx_bytes = v[8];
    out->tx_packets = v[9];
    out->tx_errors = v[10];
    out->tx_dropped = v[11];
    return 0;
}
