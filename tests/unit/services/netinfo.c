/* netinfo.c: unit tests for src/services/netinfo.c: the /proc/net parsers on fixture text
 * (tcp and tcp6 socket lines, IPv4 and IPv6 route tables, snmp/netstat and sockstat counters,
 * /proc/net/dev), the connection scan on a fixture /proc tree (socket owner found through a PID/fd
 * link), and against the live system: a TCP socket this test listens on is found with its own pid,
 * the stats and the loopback interface are read. (Fixtures are little-endian, as x86 prints them.)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "services/netinfo.h"

/* ---- msgpack helpers ---- */

typedef struct obj {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
} obj_t;

static void obj_init(obj_t *o)
{
    msgpack_sbuffer_init(&o->sb);
    msgpack_packer_init(&o->pk, &o->sb, msgpack_sbuffer_write);
    msgpack_unpacked_init(&o->u);
}

static const msgpack_object *obj_unpack(obj_t *o)
{
    assert_int_equal(msgpack_unpack_next(&o->u, o->sb.data, o->sb.size, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    return &o->u.data;
}

static void obj_done(obj_t *o)
{
    msgpack_unpacked_destroy(&o->u);
    msgpack_sbuffer_destroy(&o->sb);
}

static const msgpack_object *get(const msgpack_object *map, const char *key)
{
    assert_int_equal(map->type, MSGPACK_OBJECT_MAP);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
            memcmp(k->via.str.ptr, key, k->via.str.size) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

static bool str_is(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

static int64_t int_of(const msgpack_object *o)
{
    assert_non_null(o);
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) return (int64_t)o->via.u64;
    assert_int_equal(o->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    return o->via.i64;
}

/* ---- fixtures ---- */

static const char tcp_header[] =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode\n";
static const char tcp_listen[] = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 "
                                 "00:00000000 00000000  1000        0 12345 1 0000000000000000 "
                                 "100 0 0 10 0\n";
static const char tcp_estab[] = "   1: 0F02000A:D431 0101A8C0:01BB 01 00000000:00000000 "
                                "02:000A1B2C 00000000     0        0 67890 2 0000000000000000 "
                                "20 4 30 10 -1\n";
static const char tcp6_listen[] =
    "   0: 00000000000000000000000001000000:162E 00000000000000000000000000000000:0000 0A "
    "00000000:00000000 00:00000000 00000000   104        0 424242 1 0000000000000000 100 0 0 10 "
    "0\n";
static const char tcp6_mapped[] =
    "   1: 0000000000000000FFFF00000100007F:0050 0000000000000000FFFF00000200007F:C350 06 "
    "00000000:00000000 03:00000A00 00000000     0        0 0 3 0000000000000000\n";

static void test_sock_lines(void **state)
{
    (void)state;
    svc_net_sock_t s;
    char buf[80];
    assert_int_equal(svc_netinfo_parse_sock_line(SVC_NET_TCP, tcp_header, &s), -EINVAL);
    assert_int_equal(svc_netinfo_parse_sock_line(SVC_NET_TCP, tcp_listen, &s), 0);
    svc_netinfo_format_endpoint(s.family, s.local, s.lport, buf, sizeof(buf));
    assert_string_equal(buf, "127.0.0.1:8080");
    svc_netinfo_format_endpoint(s.family, s.remote, s.rport, buf, sizeof(buf));
    assert_string_equal(buf, "0.0.0.0:0");
    assert_int_equal(s.state, 10);
    assert_string_equal(svc_netinfo_state_name(s.proto, s.state), "listen");
    assert_int_equal(s.uid, 1000);
    assert_int_equal(s.inode, 12345);

    assert_int_equal(svc_netinfo_parse_sock_line(SVC_NET_TCP, tcp_estab, &s), 0);
    svc_netinfo_format_endpoint(s.family, s.local, s.lport, buf, sizeof(buf));
    assert_string_equal(buf, "10.0.2.15:54321");
    svc_netinfo_format_endpoint(s.family, s.remote, s.rport, buf, sizeof(buf));
    assert_string_equal(buf, "192.168.1.1:443");
    assert_string_equal(svc_netinfo_state_name(SVC_NET_TCP, s.state), "established");
    assert_int_equal(s.inode, 67890);

    assert_int_equal(svc_netinfo_parse_sock_line(SVC_NET_TCP6, tcp6_listen, &s), 0);
    assert_int_equal(s.family, 6);
    svc_netinfo_format_endpoint(s.family, s.local, s.lport, buf, sizeof(buf));
    assert_string_equal(buf, "[::1]:5678");
    assert_int_equal(s.uid, 104);
    assert_int_equal(s.inode, 424242);

    assert_int_equal(svc_netinfo_parse_sock_line(SVC_NET_TCP6, tcp6_mapped, &s), 0);
    svc_netinfo_format_endpoint(s.family, s.local, s.lport, buf, sizeof(buf));
    assert_string_equal(buf, "[::ffff:127.0.0.1]:80");
    svc_netinfo_format_endpoint(s.family, s.remote, s.rport, buf, sizeof(buf));
    assert_string_equal(buf, "[::ffff:127.0.0.2]:50000");
    assert_string_equal(svc_netinfo_state_name(SVC_NET_TCP6, s.state), "time_wait");
    assert_int_equal(s.inode, 0);

    /* malformed: a v4 line read as v6, truncated lines, garbage */
    assert_int_equal(svc_netinfo_parse_sock_line(SVC_NET_TCP6, tcp_listen, &s), -EINVAL);
    assert_int_equal(svc_netinfo_parse_sock_line(SVC_NET_TCP, "   0: 0100007F:1F90\n", &s),
                     -EINVAL);
    assert_int_equal(svc_netinfo_parse_sock_line(SVC_NET_TCP, "", &s), -EINVAL);
    assert_int_equal(svc_netinfo_parse_sock_line(SVC_NET_TCP,
                                                 "   0: zz00007F:1F90 00000000:0000 "
                                                 "0A 0:0 0:0 0 1 0 5\n",
                                                 &s),
                     -EINVAL);
}

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(svc_netinfo_proto_parse("tcp6", 4), SVC_NET_TCP6);
    assert_int_equal(svc_netinfo_proto_parse("udp", 3), SVC_NET_UDP);
    assert_int_equal(svc_netinfo_proto_parse("sctp", 4), -EINVAL);
    assert_int_equal(svc_netinfo_proto_parse("tc", 2), -EINVAL);
    assert_int_equal(svc_netinfo_state_parse(SVC_NET_TCP, "listen", 6), 10);
    assert_int_equal(svc_netinfo_state_parse(SVC_NET_UDP, "listen", 6), 7);
    assert_int_equal(svc_netinfo_state_parse(SVC_NET_TCP, "time_wait", 9), 6);
    assert_int_equal(svc_netinfo_state_parse(SVC_NET_TCP, "bogus", 5), -EINVAL);
    assert_string_equal(svc_netinfo_state_name(SVC_NET_UDP, 7), "listen");
    assert_string_equal(svc_netinfo_state_name(SVC_NET_TCP, 7), "close");
    assert_string_equal(svc_netinfo_state_name(SVC_NET_TCP, 99), "unknown");
}

static const char route4[] =
    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
    "eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
    "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    "wg0\t0000100A\t00000000\t0005\t0\t0\t0\tF0FFFFFF\t0\t0\t0\n";
static const char route6[] =
    "fe800000000000000000000000000000 40 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
    "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
    "fd000000000000000000000000000001 00000400 00000003 00000000 00000003     eth0\n"
    "00000000000000000000000000000001 80 00000000000000000000000000000000 00 "
    "00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n";

static void test_route_lines(void **state)
{
    (void)state;
    svc_net_route_t r;
    char a[INET6_ADDRSTRLEN];
    const char *l = route4;
    assert_int_equal(svc_netinfo_parse_route4(l, &r), -EINVAL); /* header */
    l = strchr(l, '\n') + 1;
    assert_int_equal(svc_netinfo_parse_route4(l, &r), 0);
    assert_string_equal(r.ifname, "eth0");
    assert_int_equal(r.prefixlen, 0);
    inet_ntop(AF_INET, r.gw, a, sizeof(a));
    assert_string_equal(a, "192.0.2.1");
    assert_int_equal(r.metric, 100);
    assert_int_equal(r.flags, 3);
    l = strchr(l, '\n') + 1;
    assert_int_equal(svc_netinfo_parse_route4(l, &r), 0);
    inet_ntop(AF_INET, r.dst, a, sizeof(a));
    assert_string_equal(a, "192.0.2.0");
    assert_int_equal(r.prefixlen, 24);
    l = strchr(l, '\n') + 1;
    assert_int_equal(svc_netinfo_parse_route4(l, &r), 0);
    inet_ntop(AF_INET, r.dst, a, sizeof(a));
    assert_string_equal(a, "10.16.0.0");
    assert_int_equal(r.prefixlen, 28);

    l = route6;
    assert_int_equal(svc_netinfo_parse_route6(l, &r), 0);
    inet_ntop(AF_INET6, r.dst, a, sizeof(a));
    assert_string_equal(a, "fe80::");
    assert_int_equal(r.prefixlen, 64);
    assert_int_equal(r.metric, 256);
    assert_string_equal(r.ifname, "eth0");
    l = strchr(l, '\n') + 1;
    assert_int_equal(svc_netinfo_parse_route6(l, &r), 0);
    inet_ntop(AF_INET6, r.gw, a, sizeof(a));
    assert_string_equal(a, "fd00::1");
    assert_int_equal(r.prefixlen, 0);
    assert_int_equal(r.metric, 1024);
    assert_int_equal(svc_netinfo_parse_route6("0000 40 zz\n", &r), -EINVAL);
    assert_int_equal(svc_netinfo_parse_route6(route4, &r), -EINVAL);
}

/* Writes text to DIR/rel (parents must exist). */
static void write_file(const char *dir, const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_pack_routes_fixture(void **state)
{
    (void)state;
    char dir[] = "/tmp/netinfo-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char net[600];
    snprintf(net, sizeof(net), "%s/net", dir);
    assert_int_equal(mkdir(net, 0700), 0);
    write_file(dir, "net/route", route4);
    write_file(dir, "net/ipv6_route", route6);
    obj_t o;
    obj_init(&o);
    assert_int_equal(svc_netinfo_pack_routes(dir, &o.pk), 6);
    const msgpack_object *a = obj_unpack(&o);
    assert_int_equal(a->type, MSGPACK_OBJECT_ARRAY);
    assert_int_equal(a->via.array.size, 6);
    const msgpack_object *def = &a->via.array.ptr[0];
    assert_true(str_is(get(def, "destination"), "0.0.0.0"));
    assert_true(str_is(get(def, "gateway"), "192.0.2.1"));
    assert_true(str_is(get(def, "interface"), "eth0"));
    assert_int_equal(int_of(get(def, "family")), 4);
    const msgpack_object *fl = get(def, "flags");
    assert_int_equal(fl->via.array.size, 2);
    assert_true(str_is(&fl->via.array.ptr[0], "up"));
    assert_true(str_is(&fl->via.array.ptr[1], "gateway"));
    assert_int_equal(get(&a->via.array.ptr[1], "gateway")->type, MSGPACK_OBJECT_NIL);
    const msgpack_object *lo6 = &a->via.array.ptr[5];
    assert_true(str_is(get(lo6, "destination"), "::1"));
    assert_int_equal(int_of(get(lo6, "prefixlen")), 128);
    fl = get(lo6, "flags");
    assert_int_equal(fl->via.array.size, 3);
    assert_true(str_is(&fl->via.array.ptr[2], "local"));
    obj_done(&o);
    unlink(net);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

typedef struct seen {
    int n;
    int64_t active_opens, max_conn, tw, sockets_used, ext_tw;
} seen_t;

static void counter_cb(void *arg, const char *section, const char *name, int64_t v)
{
    seen_t *s = arg;
    s->n++;
    if (!strcmp(section, "Tcp") && !strcmp(name, "ActiveOpens")) s->active_opens = v;
    if (!strcmp(section, "Tcp") && !strcmp(name, "MaxConn")) s->max_conn = v;
    if (!strcmp(section, "TcpExt") && !strcmp(name, "TW")) s->ext_tw = v;
    if (!strcmp(section, "TCP") && !strcmp(name, "tw")) s->tw = v;
    if (!strcmp(section, "sockets") && !strcmp(name, "used")) s->sockets_used = v;
}

static void test_counters(void **state)
{
    (void)state;
    const char snmp[] = "Ip: Forwarding DefaultTTL InReceives\n"
                        "Ip: 2 64 1234\n"
                        "Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens\n"
                        "Tcp: 1 200 120000 -1 77\n"
                        "garbage line\n"
                        "TcpExt: SyncookiesSent TW\n"
                        "TcpExt: 0 43871\n";
    seen_t s = {0};
    assert_int_equal(svc_netinfo_parse_snmp(snmp, counter_cb, &s), 10);
    assert_int_equal(s.active_opens, 77);
    assert_int_equal(s.max_conn, -1);
    assert_int_equal(s.ext_tw, 43871);
    seen_t none = {0};
    assert_int_equal(svc_netinfo_parse_snmp("nothing here\n", counter_cb, &none), -EINVAL);
    assert_int_equal(none.n, 0);

    const char sockstat[] = "sockets: used 15\n"
                            "TCP: inuse 1 orphan 0 tw 13 alloc 1 mem 66\n"
                            "UDP: inuse 0 mem 81\n";
    seen_t t = {0};
    assert_int_equal(svc_netinfo_parse_sockstat(sockstat, counter_cb, &t), 8);
    assert_int_equal(t.tw, 13);
    assert_int_equal(t.sockets_used, 15);

    svc_net_ifstats_t st;
    assert_int_equal(svc_netinfo_parse_dev_line(
                         " face |bytes    packets errs drop fifo frame compressed\n", &st),
                     -EINVAL);
    assert_int_equal(svc_netinfo_parse_dev_line("    lo: 5296457853 17568640    1    2    0     0  "
                                                "        0         0 5296457854 17568641    3    4 "
                                                "   0     0       0          0\n",
                                                &st),
                     0);
    assert_string_equal(st.name, "lo");
    assert_true(st.rx_bytes == 5296457853ull);
    assert_int_equal(st.rx_packets, 17568640);
    assert_int_equal(st.rx_errors, 1);
    assert_int_equal(st.rx_dropped, 2);
    assert_true(st.tx_bytes == 5296457854ull);
    assert_int_equal(st.tx_packets, 17568641);
    assert_int_equal(st.tx_errors, 3);
    assert_int_equal(st.tx_dropped, 4);
}

/* A fixture /proc: net/tcp with two sockets, process 4242 owning inode 12345 through fd 3. */
static void test_connections_fixture(void **state)
{
    (void)state;
    char dir[] = "/tmp/netinfo-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[600];
    snprintf(p, sizeof(p), "%s/net", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/4242", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/4242/fd", dir);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/4242/fd/3", dir);
    assert_int_equal(symlink("socket:[12345]", p), 0);
    snprintf(p, sizeof(p), "%s/4242/fd/4", dir);
    assert_int_equal(symlink("pipe:[12345]", p), 0);
    write_file(dir, "4242/comm", "fakeproc\n");
    char tcp[1024];
    snprintf(tcp, sizeof(tcp), "%s%s%s", tcp_header, tcp_listen, tcp_estab);
    write_file(dir, "net/tcp", tcp);

    svc_net_conn_query_t q = {.proto = -1, .limit = 100, .proc_root = dir};
    obj_t o;
    obj_init(&o);
    assert_int_equal(svc_netinfo_pack_connections(&q, &o.pk), 2);
    const msgpack_object *a = obj_unpack(&o);
    const msgpack_object *r0 = &a->via.array.ptr[0], *r1 = &a->via.array.ptr[1];
    assert_true(str_is(get(r0, "local"), "127.0.0.1:8080"));
    assert_true(str_is(get(r0, "state"), "listen"));
    assert_true(str_is(get(r0, "proto"), "tcp"));
    assert_int_equal(int_of(get(r0, "pid")), 4242);
    assert_true(str_is(get(r0, "process"), "fakeproc"));
    assert_int_equal(int_of(get(r0, "uid")), 1000);
    assert_int_equal(get(r1, "pid")->type, MSGPACK_OBJECT_NIL);
    assert_int_equal(get(r1, "process")->type, MSGPACK_OBJECT_NIL);
    obj_done(&o);

    /* filters: state, port, limit */
    svc_net_conn_query_t q2 = {
        .proto = SVC_NET_TCP, .state = "established", .limit = 100, .proc_root = dir};
    obj_init(&o);
    assert_int_equal(svc_netinfo_pack_connections(&q2, &o.pk), 1);
    obj_done(&o);
    svc_net_conn_query_t q3 = {.proto = -1, .port = 443, .limit = 100, .proc_root = dir};
    obj_init(&o);
    assert_int_equal(svc_netinfo_pack_connections(&q3, &o.pk), 1);
    obj_done(&o);
    svc_net_conn_query_t q4 = {.proto = -1, .limit = 1, .proc_root = dir};
    obj_init(&o);
    assert_int_equal(svc_netinfo_pack_connections(&q4, &o.pk), 1);
    obj_done(&o);
    svc_net_conn_query_t q5 = {.proto = SVC_NET_UDP, .limit = 10, .proc_root = dir};
    obj_init(&o);
    assert_int_equal(svc_netinfo_pack_connections(&q5, &o.pk), 0); /* no net/udp: no rows */
    obj_done(&o);
    svc_net_conn_query_t q6 = {.proto = -1, .limit = 10, .proc_root = "/nonexistent-proc"};
    obj_init(&o);
    assert_int_equal(svc_netinfo_pack_connections(&q6, &o.pk), -ENOENT); /* no table at all */
    assert_int_equal(o.sb.size, 0);
    obj_done(&o);

    char cmd[700];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The live system: a socket this process listens on is listed with this process as owner. */
static void test_connections_live(void **state)
{
    (void)state;
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s, 4), 0);
    socklen_t al = sizeof(a);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &al), 0);
    int port = ntohs(a.sin_port);

    svc_net_conn_query_t q = {
        .proto = SVC_NET_TCP, .state = "listen", .port = port, .limit = 10, .proc_root = "/proc"};
    obj_t o;
    obj_init(&o);
    assert_int_equal(svc_netinfo_pack_connections(&q, &o.pk), 1);
    const msgpack_object *r = &obj_unpack(&o)->via.array.ptr[0];
    char want[64];
    snprintf(want, sizeof(want), "127.0.0.1:%d", port);
    assert_true(str_is(get(r, "local"), want));
    assert_int_equal(int_of(get(r, "pid")), getpid());
    assert_true(str_is(get(r, "process"), "test-svc-netinf")); /* comm: 15 characters */
    assert_int_equal(int_of(get(r, "uid")), getuid());
    obj_done(&o);
    close(s);
}

static void test_stats_and_interfaces_live(void **state)
{
    (void)state;
    obj_t o;
    obj_init(&o);
    assert_int_equal(svc_netinfo_pack_stats("/proc", &o.pk), 0);
    const msgpack_object *m = obj_unpack(&o);
    const msgpack_object *tcp = get(m, "tcp");
    assert_non_null(tcp);
    assert_true(int_of(get(tcp, "active_opens")) >= 0);
    assert_non_null(get(get(m, "snmp"), "Tcp"));
    assert_non_null(get(get(m, "sockstat"), "TCP"));
    obj_done(&o);

    obj_init(&o);
    assert_true(svc_netinfo_pack_interfaces(&o.pk) >= 1);
    const msgpack_object *a = obj_unpack(&o);
    bool lo = false;
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *f = &a->via.array.ptr[i];
        if (!str_is(get(f, "name"), "lo")) continue;
        lo = true;
        assert_true(get(f, "loopback")->via.boolean);
        assert_true(get(f, "up")->via.boolean);
        assert_true(int_of(get(f, "mtu")) > 0);
        const msgpack_object *addrs = get(f, "addresses");
        bool v4 = false;
        for (uint32_t j = 0; j < addrs->via.array.size; j++)
            if (str_is(get(&addrs->via.array.ptr[j], "address"), "127.0.0.1")) {
                v4 = true;
                assert_int_equal(int_of(get(&addrs->via.array.ptr[j], "prefixlen")), 8);
            }
        assert_true(v4);
        assert_non_null(get(get(f, "counters"), "rx_bytes"));
    }
    assert_true(lo);
    obj_done(&o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sock_lines),       cmocka_unit_test(test_names),
        cmocka_unit_test(test_route_lines),      cmocka_unit_test(test_pack_routes_fixture),
        cmocka_unit_test(test_counters),         cmocka_unit_test(test_connections_fixture),
        cmocka_unit_test(test_connections_live), cmocka_unit_test(test_stats_and_interfaces_live),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
