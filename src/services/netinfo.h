/* netinfo.h: the network service's internals: limits (each defined once), the readers of the host's
 * network state (netinfo.c: /proc/net/{tcp,tcp6,udp,udp6,route,ipv6_route,dev}, socket owners
 * from /proc/PID/fd; netstats.c: /proc/net/{snmp,netstat,sockstat,sockstat6}; network.c:
 * interfaces), the check_port allowlist and connect test (netcheck.c), and the service context
 * shared by network.c and netcheck.c. The parsers take text so that tests can feed them fixtures;
 * the readers open the live files. */
#ifndef P2P_SVC_NETINFO_H
#define P2P_SVC_NETINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <msgpack.h>
#include <uv.h>

#include "node/node.h"
#include "rpc/rpc.h"

/* ---- limits ---------------------------------------------------------------------------- */
#ifndef SVC_NET_MAX_CONNECTIONS
#define SVC_NET_MAX_CONNECTIONS 10000 /* rows network.connections returns (limit's maximum) */
#endif
#ifndef SVC_NET_MAX_PROCS_SCANNED
#define SVC_NET_MAX_PROCS_SCANNED 8192 /* /proc/PID directories read to find socket owners */
#endif
#ifndef SVC_NET_MAX_FDS_PER_PROC
#define SVC_NET_MAX_FDS_PER_PROC 4096 /* fd links read in one process */
#endif
#ifndef SVC_NET_MAX_FDS_SCANNED
#define SVC_NET_MAX_FDS_SCANNED 262144 /* fd links read per call, all processes together */
#endif
#ifndef SVC_NET_MAX_LINE
#define SVC_NET_MAX_LINE 512 /* longest /proc/net line parsed (longer ones are skipped) */
#endif
#ifndef SVC_NET_MAX_FILE
#define SVC_NET_MAX_FILE (1 << 20) /* bytes read from a small /proc/net file (snmp, route...) */
#endif
#ifndef SVC_NET_MAX_IFACES
#define SVC_NET_MAX_IFACES 256 /* interfaces network.interfaces lists */
#endif
#ifndef SVC_NET_MAX_IF_ADDRS
#define SVC_NET_MAX_IF_ADDRS 64 /* addresses listed per interface */
#endif
#ifndef SVC_NET_MAX_ROUTES
#define SVC_NET_MAX_ROUTES 4096 /* routes network.routes lists per family */
#endif
#ifndef SVC_NET_MAX_ADDRS
#define SVC_NET_MAX_ADDRS 32 /* addresses network.resolve returns */
#endif
#ifndef SVC_NET_MAX_HOSTNAME
#define SVC_NET_MAX_HOSTNAME 253 /* longest host name (RFC 1035 presentation form) */
#endif
#ifndef SVC_NET_MAX_RESOLVES
#define SVC_NET_MAX_RESOLVES 16 /* network.resolve and check_port name lookups at once */
#endif
#ifndef SVC_NET_MAX_CHECKS
#define SVC_NET_MAX_CHECKS 16 /* network.check_port connect tests at once */
#endif
#ifndef SVC_NET_CHECK_MAX_TIMEOUT_S
#define SVC_NET_CHECK_MAX_TIMEOUT_S 10 /* longest check_port timeout, seconds */
#endif
#ifndef SVC_NET_MAX_JOBS
#define SVC_NET_MAX_JOBS 4 /* network.connections scans on the thread pool at once */
#endif
#ifndef SVC_NET_MAX_PINGS
#define SVC_NET_MAX_PINGS 32 /* network.ping calls waiting at once */
#endif
#ifndef SVC_NET_PING_TIMEOUT_MS
#define SVC_NET_PING_TIMEOUT_MS                                                                    \
    3000 /* longest wait for a PONG (less when the call's deadline is near) */
#endif
#ifndef SVC_NET_MAX_ALLOW
#define SVC_NET_MAX_ALLOW 64 /* CHECK_PORT_ALLOW entries */
#endif

/* ---- text scanning (netinfo.c) ----------------------------------------------------------- */

/* The first character of s that is neither a space nor a tab (s itself when there is none to
 * skip; the terminating NUL when s holds only blanks). */
const char *svc_netinfo_skip_ws(const char *s);

/* ---- sockets (/proc/net/{tcp,tcp6,udp,udp6}) ------------------------------------------- */

enum svc_net_proto { SVC_NET_TCP = 0, SVC_NET_TCP6, SVC_NET_UDP, SVC_NET_UDP6, SVC_NET_PROTOS };

/* "tcp", "tcp6", "udp", "udp6"; svc_netinfo_proto_parse returns the proto or -EINVAL. */
const char *svc_netinfo_proto_name(int proto);
int svc_netinfo_proto_parse(const char *s, size_t len);

/* One socket line. State is the kernel's TCP state number (1 established .. 12 new_syn_recv). */
typedef struct svc_net_sock {
    uint8_t proto;
    uint8_t state;
    uint8_t family; /* 4 or 6 */
    uint8_t local[16], remote[16];
    uint16_t lport, rport;
    uint32_t uid;
    uint64_t inode;
} svc_net_sock_t;

/* The state's name as users read it: "established", "syn_sent", "syn_recv", "fin_wait1",
 * "fin_wait2", "time_wait", "close", "close_wait", "last_ack", "listen", "closing",
 * "new_syn_recv"; for UDP an unconnected socket (kernel state 7) is "listen" (bound, receiving, as
 * `ss -l` lists it) and a connected one "established". "unknown" for other numbers. */
const char *svc_netinfo_state_name(int proto, int state);

/* The state number named s for proto (as svc_netinfo_state_name spells it), or -EINVAL. */
int svc_netinfo_state_parse(int proto, const char *s, size_t len);

/* Parses one line of /proc/net/PROTO into *out. Returns 0, or -EINVAL for the header and
 * malformed lines. */
int svc_netinfo_parse_sock_line(int proto, const char *line, svc_net_sock_t *out);

/* Formats "1.2.3.4:80" or "[::1]:80" into out (cap >= 64). */
void svc_netinfo_format_endpoint(uint8_t family, const uint8_t *ip, uint16_t port, char *out,
                                 size_t cap);

/* What network.connections asks for. */
typedef struct svc_net_conn_query {
    int proto;             /* -1 = every protocol */
    const char *state;     /* a state name (svc_netinfo_state_name), NULL = every state */
    int port;              /* 0 = any, else local or remote port */
    size_t limit;          /* rows at most (1..SVC_NET_MAX_CONNECTIONS) */
    const char *proc_root; /* "/proc", or a fixture directory in tests */
} svc_net_conn_query_t;

/* Reads the sockets matching q, finds their owners in one bounded pass over PROC/PID/fd and packs
 * [{proto, local, remote, state, pid, process, inode, uid}, ...] into pk. Blocking (file reads):
 * run it off the loop. Returns the number of rows, or a negative errno when no socket table could
 * be read (pk untouched then). */
int svc_netinfo_pack_connections(const svc_net_conn_query_t *q, msgpack_packer *pk);

/* ---- routes ---------------------------------------------------------------------------- */

typedef struct svc_net_route {
    uint8_t family; /* 4 or 6 */
    uint8_t dst[16], gw[16];
    uint8_t prefixlen;
    uint32_t metric;
    uint32_t flags; /* RTF_* */
    char ifname[20];
} svc_net_route_t;

/* Parses one line of /proc/net/route or /proc/net/ipv6_route. Returns 0 or -EINVAL (header or
 * malformed line). */
int svc_netinfo_parse_route4(const char *line, svc_net_route_t *out);
int svc_netinfo_parse_route6(const char *line, svc_net_route_t *out);

/* Packs every route of both tables: [{family, destination, prefixlen, gateway, interface, metric,
 * flags: ["up", "gateway", ...]}] (PROC is "/proc" or a fixture directory). Returns the count. */
int svc_netinfo_pack_routes(const char *proc_root, msgpack_packer *pk);

/* ---- counters (/proc/net/snmp, netstat, sockstat; netstats.c) ---------------------------- */

/* Called for each counter: section ("Tcp", "TcpExt", "TCP" of sockstat), name, value. */
typedef void (*svc_net_counter_cb)(void *arg, const char *section, const char *name, int64_t v);

/* Parses the "Section: names" / "Section: values" line pairs of /proc/net/snmp and netstat.
 * Returns the number of counters, or -EINVAL when the text has no such pair. */
int svc_netinfo_parse_snmp(const char *text, svc_net_counter_cb cb, void *arg);

/* Parses /proc/net/sockstat lines ("TCP: inuse 5 orphan 0 ..."). Returns the number of counters. */
int svc_netinfo_parse_sockstat(const char *text, svc_net_counter_cb cb, void *arg);

/* Packs network.stats: {tcp: {...}, udp: {...}, ip: {...}, sockets: {...}, snmp: {Section: {name:
 * value}}, netstat: {...}, sockstat: {...}}. Returns 0 or -errno when /proc/net/snmp is
 * unreadable. */
int svc_netinfo_pack_stats(const char *proc_root, msgpack_packer *pk);

/* ---- interfaces -------------------------------------------------------------------------- */

/* Parses one interface line of /proc/net/dev: name and the 8 counters (rx bytes, packets, errs,
 * drop, then tx bytes, packets, errs, drop). Returns 0 or -EINVAL. */
typedef struct svc_net_ifstats {
    char name[20];
    uint64_t rx_bytes, rx_packets, rx_errors, rx_dropped;
    uint64_t tx_bytes, tx_packets, tx_errors, tx_dropped;
} svc_net_ifstats_t;
int svc_netinfo_parse_dev_line(const char *line, svc_net_ifstats_t *out);

/* Packs network.interfaces: [{name, index, addresses: [{family, address, prefixlen}], mac, mtu,
 * up, running, loopback, counters: {...}}] from getifaddrs, /proc/net/dev and /sys/class/net.
 * Returns the count or a negative errno (pk untouched then). Defined in network.c. */
int svc_netinfo_pack_interfaces(msgpack_packer *pk);

/* ---- check_port allowlist (netcheck.c) ---------------------------------------------------- */

typedef struct svc_net_prefix {
    uint8_t family; /* 4 or 6 */
    uint8_t ip[16];
    uint8_t bits;
} svc_net_prefix_t;

/* Parses "ADDR[/BITS][,...]" (CHECK_PORT_ALLOW). Returns the number of entries written (at most
 * cap), or -EINVAL on a bad entry, -ENOSPC past cap. */
int svc_netcheck_parse_allow(const char *list, svc_net_prefix_t *out, size_t cap);

/* Puts sa's address in compact form (IPv4-mapped IPv6 becomes IPv4). Returns 0 or -EAFNOSUPPORT. */
int svc_netcheck_addr(const struct sockaddr *sa, uint8_t *family, uint8_t ip[16]);

/* True when (family, ip) lies in p. */
bool svc_netcheck_prefix_match(const svc_net_prefix_t *p, uint8_t family, const uint8_t *ip);

/* True when (family, ip) is loopback (127.0.0.0/8, ::1) or in one of the n prefixes. */
bool svc_netcheck_allowed(const svc_net_prefix_t *list, size_t n, uint8_t family,
                          const uint8_t *ip);

/* True when s[0..len) is a host name (labels of [A-Za-z0-9_-], 1..63 characters, not starting or
 * ending with '-', total <= SVC_NET_MAX_HOSTNAME, optional final dot) or a numeric IPv4/IPv6
 * address. */
bool svc_netcheck_host_valid(const char *s, size_t len);

/* ---- the service context (network.c, netcheck.c) ----------------------------------------- */

/* One operation in flight on behalf of a call; answered UNAVAILABLE when the service stops. */
typedef struct svc_net_op svc_net_op_t;
struct svc_net_op {
    svc_net_op_t *prev, *next;
    struct svc_network *svc;           /* NULL once detached (the service stopped) */
    rpc_call_t *call;                  /* NULL once answered */
    void (*on_stop)(svc_net_op_t *op); /* closes handles, detaches; the op frees itself later */
};

struct svc_network {
    node_t *node;
    svc_net_op_t ops; /* list head */
    int nresolves, nchecks, njobs, npings;
    int closing; /* handles still closing after stop */
    bool stopping;
    svc_net_prefix_t allow[SVC_NET_MAX_ALLOW];
    size_t nallow;
    void (*done)(void *arg);
    void *done_arg;
};

/* Links op into svc's list (op->svc, op->call set). */
void svc_net_op_add(struct svc_network *svc, svc_net_op_t *op, rpc_call_t *call);
/* Unlinks op (no-op once detached). */
void svc_net_op_remove(svc_net_op_t *op);
/* A handle of a stopping service finished closing: runs the stop's done when it was the last. */
void svc_net_handle_closed(struct svc_network *svc);

/* The network.check_port and network.ping handlers (netcheck.c); ctx is the svc_network. */
void svc_netcheck_call(rpc_call_t *call, void *ctx);
void svc_netcheck_ping_call(rpc_call_t *call, void *ctx);

#endif
