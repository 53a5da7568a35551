/* netstats.c: the network service's counters (network.stats): parsers of the "Section: names" /
 * "Section: values" line pairs of /proc/net/snmp and /proc/net/netstat and of the
 * /proc/net/sockstat and sockstat6 lines, and the packing of the summary and raw counter maps.
 * Parsers take a text so that tests can feed fixtures; every read is bounded by the limits of
 * netinfo.h. No logging, no loop. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "services/netinfo.h"

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Copies the next whitespace-separated token of *s into out (cap). Returns its length (0 at the
 * end of the line; tokens longer than cap are cut). */
static size_t next_token(const char **s, char *out, size_t cap)
{
    const char *p = svc_netinfo_skip_ws(*s);
    size_t n = 0;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
        if (n + 1 < cap) out[n++] = *p;
        p++;
    }
    out[n] = 0;
    *s = p;
    return n;
}

/* The end of the line starting at s (its '\n' or the final NUL). */
static const char *line_end(const char *s)
{
    const char *e = strchr(s, '\n');
    return e ? e : s + strlen(s);
}

int svc_netinfo_parse_snmp(const char *text, svc_net_counter_cb cb, void *arg)
{
    int count = 0, pairs = 0;
    const char *s = text;
    while (*s) {
        const char *e1 = line_end(s);
        if (!*e1) break;
        const char *l2 = e1 + 1, *e2 = line_end(l2);
        const char *c1 = memchr(s, ':', (size_t)(e1 - s)), *c2 = memchr(l2, ':', (size_t)(e2 - l2));
        if (!c1 || !c2 || c1 - s != c2 - l2 || memcmp(s, l2, (size_t)(c1 - s)) != 0 ||
            c1 - s >= 32) {
            s = l2; /* not a names/values pair: resynchronise on the next line */
            continue;
        }
        char section[32], name[64], val[32];
        memcpy(section, s, (size_t)(c1 - s));
        section[c1 - s] = 0;
        const char *pn = c1 + 1, *pv = c2 + 1;
        while (pn < e1 && pv < e2) {
            size_t nl = next_token(&pn, name, sizeof(name));
            size_t vl = next_token(&pv, val, sizeof(val));
            if (nl == 0 || vl == 0 || pn > e1 || pv > e2) break;
            char *end;
            long long v = strtoll(val, &end, 10);
            if (*end) continue;
            cb(arg, section, name, v);
            count++;
        }
        pairs++;
        s = *e2 ? e2 + 1 : e2;
    }
    return pairs ? count : -EINVAL;
}

int svc_netinfo_parse_sockstat(const char *text, svc_net_counter_cb cb, void *arg)
{
    int count = 0;
    const char *s = text;
    while (*s) {
        const char *e = line_end(s);
        const char *c = memchr(s, ':', (size_t)(e - s));
        if (c && c - s < 32) {
            char section[32], name[64], val[32];
            memcpy(section, s, (size_t)(c - s));
            section[c - s] = 0;
            const char *p = c + 1;
            while (p < e) {
                size_t nl = next_token(&p, name, sizeof(name));
                size_t vl = p < e ? next_token(&p, val, sizeof(val)) : 0;
                if (nl == 0 || vl == 0 || p > e) break;
                char *end;
                long long v = strtoll(val, &end, 10);
                if (*end) continue;
                cb(arg, section, name, v);
                count++;
            }
        }
        s = *e ? e + 1 : e;
    }
    return count;
}

/* Reads a small file whole (at most SVC_NET_MAX_FILE bytes) as a NUL-terminated string. */
static char *slurp(const char *proc_root, const char *name)
{
    char path[NODE_PATH_MAX];
    snprintf(path, sizeof(path), "%s/net/%s", proc_root, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len + 1 == cap) {
            if (cap >= SVC_NET_MAX_FILE) break;
            char *b = realloc(buf, cap * 2);
            if (!b) break;
            buf = b;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    if (buf) buf[len] = 0;
    return buf;
}

typedef struct counter {
    uint8_t src; /* 0 snmp, 1 netstat, 2 sockstat, 3 sockstat6 */
    char section[16];
    char name[40];
    int64_t v;
} counter_t;

#define MAX_COUNTERS 1024 /* counters kept from the four files */

typedef struct counters {
    counter_t *c;
    size_t n;
    uint8_t src;
} counters_t;

static void add_counter(void *arg, const char *section, const char *name, int64_t v)
{
    counters_t *cs = arg;
    if (cs->n >= MAX_COUNTERS || strlen(section) >= 16 || strlen(name) >= 40) return;
    counter_t *c = &cs->c[cs->n++];
    c->src = cs->src;
    snprintf(c->section, sizeof(c->section), "%s", section);
    snprintf(c->name, sizeof(c->name), "%s", name);
    c->v = v;
}

static int64_t counter_get(const counters_t *cs, int src, const char *section, const char *name)
{
    for (size_t i = 0; i < cs->n; i++)
        if (cs->c[i].src == src && strcmp(cs->c[i].section, section) == 0 &&
            strcmp(cs->c[i].name, name) == 0)
            return cs->c[i].v;
    return 0;
}

/* A summary map: keys[i] = counter (src, section, names[i]). */
static void pack_summary(msgpack_packer *pk, const counters_t *cs, const char *key,
                         const char *const (*map)[4], size_t n)
{
    pack_str(pk, key);
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < n; i++) {
        pack_str(pk, map[i][0]);
        msgpack_pack_int64(pk, counter_get(cs, map[i][1][0] - '0', map[i][2], map[i][3]));
    }
}

/* Every counter of source src as {Section: {name: value}}. */
static void pack_raw(msgpack_packer *pk, const counters_t *cs, int src, const char *key)
{
    pack_str(pk, key);
    size_t nsec = 0;
    for (size_t i = 0; i < cs->n; i++) {
        if (cs->c[i].src != src) continue;
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            if (cs->c[j].src == src && strcmp(cs->c[j].section, cs->c[i].section) == 0)
                first = false;
        if (first) nsec++;
    }
    msgpack_pack_map(pk, nsec);
    for (size_t i = 0; i < cs->n; i++) {
        if (cs->c[i].src != src) continue;
        bool first = true;
        for (size_t j = 0; j < i && first; j++)
            if (cs->c[j].src == src && strcmp(cs->c[j].section, cs->c[i].section) == 0)
                first = false;
        if (!first) continue;
        size_t nk = 0;
        for (size_t j = i; j < cs->n; j++)
            if (cs->c[j].src == src && strcmp(cs->c[j].section, cs->c[i].section) == 0) nk++;
        pack_str(pk, cs->c[i].section);
        msgpack_pack_map(pk, nk);
        for (size_t j = i; j < cs->n; j++) {
            if (cs->c[j].src != src || strcmp(cs->c[j].section, cs->c[i].section) != 0) continue;
            pack_str(pk, cs->c[j].name);
            msgpack_pack_int64(pk, cs->c[j].v);
        }
    }
}

int svc_netinfo_pack_stats(const char *proc_root, msgpack_packer *pk)
{
    static const char *const tcp[][4] = {{"active_opens", "0", "Tcp", "ActiveOpens"},
                                         {"passive_opens", "0", "Tcp", "PassiveOpens"},
                                         {"attempt_fails", "0", "Tcp", "AttemptFails"},
                                         {"estab_resets", "0", "Tcp", "EstabResets"},
                                         {"curr_estab", "0", "Tcp", "CurrEstab"},
                                         {"in_segs", "0", "Tcp", "InSegs"},
                                         {"out_segs", "0", "Tcp", "OutSegs"},
                                         {"retrans_segs", "0", "Tcp", "RetransSegs"},
                                         {"in_errs", "0", "Tcp", "InErrs"},
                                         {"out_rsts", "0", "Tcp", "OutRsts"},
                                         {"listen_overflows", "1", "TcpExt", "ListenOverflows"},
                                         {"listen_drops", "1", "TcpExt", "ListenDrops"}};
    static const char *const udp[][4] = {{"in_datagrams", "0", "Udp", "InDatagrams"},
                                         {"out_datagrams", "0", "Udp", "OutDatagrams"},
                                         {"in_errors", "0", "Udp", "InErrors"},
                                         {"no_ports", "0", "Udp", "NoPorts"},
                                         {"rcvbuf_errors", "0", "Udp", "RcvbufErrors"},
                                         {"sndbuf_errors", "0", "Udp", "SndbufErrors"}};
    static const char *const ip[][4] = {
        {"in_receives", "0", "Ip", "InReceives"},   {"in_delivers", "0", "Ip", "InDelivers"},
        {"out_requests", "0", "Ip", "OutRequests"}, {"in_discards", "0", "Ip", "InDiscards"},
        {"out_discards", "0", "Ip", "OutDiscards"}, {"in_octets", "1", "IpExt", "InOctets"},
        {"out_octets", "1", "IpExt", "OutOctets"}};
    static const char *const sockets[][4] = {
        {"used", "2", "sockets", "used"},     {"tcp_inuse", "2", "TCP", "inuse"},
        {"tcp_orphan", "2", "TCP", "orphan"}, {"tcp_tw", "2", "TCP", "tw"},
        {"tcp_alloc", "2", "TCP", "alloc"},   {"udp_inuse", "2", "UDP", "inuse"},
        {"tcp6_inuse", "3", "TCP6", "inuse"}, {"udp6_inuse", "3", "UDP6", "inuse"}};
    counters_t cs = {calloc(MAX_COUNTERS, sizeof(counter_t)), 0, 0};
    if (!cs.c) return -ENOMEM;
    static const char *const files[] = {"snmp", "netstat", "sockstat", "sockstat6"};
    int rc = 0;
    for (int i = 0; i < 4; i++) {
        char *t = slurp(proc_root, files[i]);
        if (!t) {
            if (i == 0) rc = errno ? -errno : -EIO;
            continue;
        }
        cs.src = (uint8_t)i;
        if (i < 2)
            svc_netinfo_parse_snmp(t, add_counter, &cs);
        else
            svc_netinfo_parse_sockstat(t, add_counter, &cs);
        free(t);
    }
    if (rc < 0) {
        free(cs.c);
        return rc;
    }
    msgpack_pack_map(pk, 7);
    pack_summary(pk, &cs, "tcp", tcp, sizeof(tcp) / sizeof(tcp[0]));
    pack_summary(pk, &cs, "udp", udp, sizeof(udp) / sizeof(udp[0]));
    pack_summary(pk, &cs, "ip", ip, sizeof(ip) / sizeof(ip[0]));
    pack_summary(pk, &cs, "sockets", sockets, sizeof(sockets) / sizeof(sockets[0]));
    pack_raw(pk, &cs, 0, "snmp");
    pack_raw(pk, &cs, 1, "netstat");
    pack_str(pk, "sockstat");
    /* sockstat and sockstat6 together: their sections differ (TCP vs TCP6) */
    size_t nsec = 0;
    for (size_t i = 0; i < cs.n; i++)
        if (cs.c[i].src >= 2 &&
            (i == 0 || cs.c[i - 1].src < 2 || strcmp(cs.c[i - 1].section, cs.c[i].section) != 0))
            nsec++;
    msgpack_pack_map(pk, nsec);
    for (size_t i = 0; i < cs.n; i++) {
        if (cs.c[i].src < 2 ||
            (i > 0 && cs.c[i - 1].src >= 2 && strcmp(cs.c[i - 1].section, cs.c[i].section) == 0))
            continue;
        size_t j = i;
        while (j < cs.n && cs.c[j].src >= 2 && strcmp(cs.c[j].section, cs.c[i].section) == 0)
            j++;
        pack_str(pk, cs.c[i].section);
        msgpack_pack_map(pk, j - i);
        for (size_t k = i; k < j; k++) {
            pack_str(pk, cs.c[k].name);
            msgpack_pack_int64(pk, cs.c[k].v);
        }
    }
    free(cs.c);
    return 0;
}
