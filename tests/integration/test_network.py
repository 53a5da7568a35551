"""test_network.py: the network domain on real nodes (issue 4).

Two nodes on loopback (start_mesh): interfaces (lo with 127.0.0.1, counters that grow), connections
(the node's own peer TCP and DHT UDP ports listening, owned by the node's pid), routes (as many as
/proc/net lists), resolve, stats, check_port (open and closed loopback ports; 10.1.2.3, 8.8.8.8 and
names resolving outside refused with PERMISSION_DENIED; operator role), ping over the DHT (an rtt,
NOT_FOUND for an unknown node, TIMEOUT for a stopped one). A third node runs alone in a network
namespace the test creates (only lo, its own /etc/hosts and nsswitch.conf): its TCP counters prove
that a refused check_port sends nothing, CHECK_PORT_ALLOW lets an address through, and an unknown
name is NOT_FOUND. Only loopback and that namespace are ever used.
"""

import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from p2p import (INVALID_PARAMS, NOT_FOUND, PERMISSION_DENIED, TIMEOUT, Client, MeshNetwork,  # noqa: E402
                 Node, RpcError, Runner, lists_up, log, start_mesh, tmpdir, wait_until)


def expect_error(fn, code, param=None):
    try:
        res = fn()
    except RpcError as e:
        assert e.code == code, "expected %d, got %r" % (code, e.err)
        if param is not None:
            data = e.err.get("data") or {}
            assert data.get("param") == param, "error data %r does not name %s" % (e.err, param)
        return e.err
    raise AssertionError("expected error %d, got result %r" % (code, res))


def client_as(node, role):
    c = Client(node.sock_path, timeout=20)
    c.auth(node.token(role))
    return c


def loopback_traffic(nbytes=200000):
    """Sends nbytes over a loopback TCP connection (makes lo's counters grow)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    cli = socket.create_connection(srv.getsockname(), timeout=10)
    conn, _ = srv.accept()
    cli.sendall(b"x" * nbytes)
    got = 0
    conn.settimeout(10)
    while got < nbytes:
        d = conn.recv(65536)
        if not d:
            break
        got += len(d)
    for s in (cli, conn, srv):
        s.close()


def test_interfaces(a):
    ifs = a.call("system.local.network.interfaces")
    lo = [i for i in ifs if i["name"] == "lo"]
    assert lo, "no lo in %r" % [i["name"] for i in ifs]
    lo = lo[0]
    assert lo["up"] is True and lo["loopback"] is True and lo["mtu"] > 0
    assert any(x["address"] == "127.0.0.1" and x["family"] == 4 and x["prefixlen"] == 8
               for x in lo["addresses"]), lo["addresses"]
    for k in ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets", "rx_errors", "tx_errors",
              "rx_dropped", "tx_dropped"):
        assert isinstance(lo["counters"][k], int), k
    before = lo["counters"]
    loopback_traffic()
    after = [i for i in a.call("system.local.network.interfaces") if i["name"] == "lo"][0]["counters"]
    assert after["rx_bytes"] >= before["rx_bytes"] + 200000, (before, after)
    assert after["tx_packets"] > before["tx_packets"]


def test_connections(a, b):
    rows = a.call("system.local.network.connections", {"proto": "tcp", "state": "listen"})
    mine = [r for r in rows if r["local"] == "127.0.0.1:%d" % a.dht_port]
    assert mine, "peer port %d not listed: %r" % (a.dht_port, rows)
    assert mine[0]["pid"] == a.proc.pid and mine[0]["process"] == "p2p-node", mine[0]
    assert mine[0]["state"] == "listen" and mine[0]["uid"] == os.getuid()
    udp = a.call("system.local.network.connections", {"proto": "udp", "port": a.dht_port})
    assert any(r["local"] == "127.0.0.1:%d" % a.dht_port and r["pid"] == a.proc.pid
               and r["state"] == "listen" for r in udp), udp
    # a's peer channel to b (or b's to a) is an established TCP connection on b's/a's port
    est = a.call("system.local.network.connections", {"state": "established", "limit": 10000})
    assert all(r["state"] == "established" for r in est)
    peer_ports = {"127.0.0.1:%d" % a.dht_port, "127.0.0.1:%d" % b.dht_port}
    assert any(r["pid"] == a.proc.pid and (r["remote"] in peer_ports or r["local"] in peer_ports)
               for r in est), est
    one = a.call("system.local.network.connections", {"limit": 1})
    assert len(one) == 1
    expect_error(lambda: a.call("system.local.network.connections", {"proto": "sctp"}),
                 INVALID_PARAMS, "proto")
    expect_error(lambda: a.call("system.local.network.connections", {"state": "bogus"}),
                 INVALID_PARAMS, "state")
    expect_error(lambda: a.call("system.local.network.connections", {"limit": 0}), INVALID_PARAMS,
                 "limit")


def test_routes(a):
    routes = a.call("system.local.network.routes")
    want = 0
    try:
        with open("/proc/net/route") as f:
            want += sum(1 for line in f.readlines()[1:] if line.strip())
    except OSError:
        pass
    try:
        with open("/proc/net/ipv6_route") as f:
            want += sum(1 for line in f if line.strip())
    except OSError:
        pass
    assert len(routes) == want, "%d routes, /proc lists %d" % (len(routes), want)
    for r in routes:
        assert r["family"] in (4, 6) and isinstance(r["destination"], str)
        assert isinstance(r["interface"], str) and isinstance(r["flags"], list)
        assert 0 <= r["prefixlen"] <= (32 if r["family"] == 4 else 128)
    assert any(r["family"] == 6 and r["destination"] == "::1" and r["interface"] == "lo"
               for r in routes) or not os.path.exists("/proc/net/ipv6_route") or \
        not any(line.split()[-1] == "lo" for line in open("/proc/net/ipv6_route"))


def test_resolve_and_stats(a):
    res = a.call("system.local.network.resolve", {"name": "localhost"})
    assert res["name"] == "localhost"
    assert "127.0.0.1" in res["addresses"] or "::1" in res["addresses"], res
    res = a.call("system.local.network.resolve", {"name": "127.0.0.9"})
    assert res["addresses"] == ["127.0.0.9"], res
    for bad in ("-bad", "a..b", "a b", "x" * 64 + ".com"):
        expect_error(lambda: a.call("system.local.network.resolve", {"name": bad}), INVALID_PARAMS,
                     "name")
    expect_error(lambda: a.call("system.local.network.resolve", {"name": "x" * 300}), INVALID_PARAMS,
                 "name")
    st = a.call("system.local.network.stats")
    for k in ("active_opens", "passive_opens", "retrans_segs", "curr_estab"):
        assert isinstance(st["tcp"][k], int), k
    for k in ("in_datagrams", "out_datagrams", "in_errors"):
        assert isinstance(st["udp"][k], int), k
    assert "Tcp" in st["snmp"] and "Udp" in st["snmp"]
    assert st["sockets"]["used"] > 0
    opens = st["tcp"]["active_opens"]
    loopback_traffic(10)
    assert a.call("system.local.network.stats")["tcp"]["active_opens"] > opens


def outside_name():
    """A name /etc/hosts maps outside loopback, or None."""
    try:
        with open("/etc/hosts") as f:
            for line in f:
                parts = line.split("#")[0].split()
                if len(parts) >= 2 and ":" not in parts[0] and not parts[0].startswith("127."):
                    return parts[1]
    except OSError:
        pass
    return None


def test_check_port(a):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    cport = closed.getsockname()[1]
    closed.close()
    try:
        r = a.call("system.local.network.check_port", {"host": "127.0.0.1", "port": port})
        assert r["open"] is True and r["port"] == port and r["host"] == "127.0.0.1", r
        assert isinstance(r["rtt_ms"], float) and r["rtt_ms"] >= 0 and "error" not in r
        r = a.call("system.local.network.check_port", {"host": "localhost", "port": port,
                                                        "timeout": 2})
        assert r["address"] in ("127.0.0.1", "::1"), r
        r = a.call("system.local.network.check_port", {"host": "127.0.0.1", "port": cport})
        assert r["open"] is False and r["error"] == "connection refused", r
    finally:
        srv.close()
    # a listener whose accept queue is full drops SYNs: the check times out
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    queued = socket.create_connection(full.getsockname(), timeout=5)
    try:
        r = a.call("system.local.network.check_port", {"host": "127.0.0.1",
                                                        "port": full.getsockname()[1], "timeout": 1})
        assert r["open"] is False and r["error"] == "timed out" and r["rtt_ms"] is None, r
    finally:
        queued.close()
        full.close()
    for host in ("10.1.2.3", "8.8.8.8", "::ffff:8.8.8.8", "2001:db8::1", "0.0.0.0"):
        err = expect_error(lambda: a.call("system.local.network.check_port",
                                          {"host": host, "port": 80}), PERMISSION_DENIED, "host")
        assert host in err["message"], err
    name = outside_name()
    if name:
        expect_error(lambda: a.call("system.local.network.check_port", {"host": name, "port": 80}),
                     PERMISSION_DENIED, "host")
    else:
        log("no /etc/hosts name outside loopback here; the namespace test covers names")
    expect_error(lambda: a.call("system.local.network.check_port", {"host": "127.0.0.1", "port": 0}),
                 INVALID_PARAMS, "port")
    expect_error(lambda: a.call("system.local.network.check_port",
                                {"host": "127.0.0.1", "port": 1, "timeout": 11}), INVALID_PARAMS,
                 "timeout")
    expect_error(lambda: a.call("system.local.network.check_port", {"host": "bad host", "port": 1}),
                 INVALID_PARAMS, "host")


def test_roles(a):
    v = client_as(a, "viewer")
    o = client_as(a, "operator")
    try:
        for m in ("interfaces", "routes", "stats", "connections"):
            v.call("system.local.network." + m, {})
        v.call("system.local.network.resolve", {"name": "localhost"})
        expect_error(lambda: v.call("system.local.network.check_port",
                                    {"host": "127.0.0.1", "port": a.dht_port}), PERMISSION_DENIED)
        r = o.call("system.local.network.check_port", {"host": "127.0.0.1", "port": a.dht_port})
        assert r["open"] is True, r
        methods = {m["name"]: m for m in v.call("system.local.node.methods")}
        assert methods["system.local.network.check_port"]["role"] == "operator"
        for m in ("interfaces", "connections", "routes", "resolve", "stats", "ping"):
            assert methods["system.local.network." + m]["role"] == "viewer", m
    finally:
        v.close()
        o.close()


def test_ping(a, b):
    r = a.call("system.local.network.ping", {"node": "netb"})
    assert r["node"] == "netb" and isinstance(r["rtt_ms"], int) and r["rtt_ms"] >= 0, r
    assert r["address"] == "127.0.0.1:%d" % b.dht_port, r
    r = b.call("system.local.network.ping", {"node": "neta"})
    assert r["node"] == "neta", r
    # through the mesh: b pings a on a's behalf
    r = a.call("system.netb.network.ping", {"node": "neta"})
    assert r["node"] == "neta", r
    expect_error(lambda: a.call("system.local.network.ping", {"node": "nosuchnode"}), NOT_FOUND,
                 "node")
    expect_error(lambda: a.call("system.local.network.ping", {"node": "neta"}), INVALID_PARAMS, "node")
    expect_error(lambda: a.call("system.local.network.ping", {"node": "net*"}), INVALID_PARAMS, "node")
    # a stopped node does not answer: TIMEOUT before the call's deadline
    os.kill(b.proc.pid, signal.SIGSTOP)
    try:
        expect_error(lambda: a.call("system.local.network.ping", {"node": "netb", "_timeout": 2}),
                     TIMEOUT)
    finally:
        os.kill(b.proc.pid, signal.SIGCONT)
    wait_until(lambda: a.call("system.local.network.ping", {"node": "netb"})["node"] == "netb", 20,
               what="netb answering pings again")


def test_stop_with_checks_running(b):
    """SIGTERM while check_port calls wait on a silent port: the node answers them and exits clean."""
    full = socket.socket()
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    queued = socket.create_connection(full.getsockname(), timeout=5)
    clients = []
    try:
        for i in range(3):
            c = client_as(b, "admin")
            c.msgid += 1
            c.sock.sendall(__import__("msgpack").packb(
                [0, c.msgid, "system.local.network.check_port",
                 [{"host": "127.0.0.1", "port": full.getsockname()[1], "timeout": 10,
                   "_timeout": 20}]], use_bin_type=True))
            clients.append(c)
        c = client_as(b, "admin")  # the calls are in the node's hands once another call answers
        c.call("system.local.network.interfaces")
        c.close()
        t = time.monotonic()
        b.stop_ok(timeout=5)
        assert time.monotonic() - t < 4, "stop took %.1fs" % (time.monotonic() - t)
        for c in clients:
            try:
                m = c.read_msg()
                assert m[0] == 1 and m[2]["code"] == -32005, m  # UNAVAILABLE
                log("a waiting check_port was answered UNAVAILABLE")
            except (EOFError, OSError):
                log("a waiting check_port saw its connection close")  # also a clean end
    finally:
        for c in clients:
            c.close()
        queued.close()
        full.close()


# --- a node alone in a network namespace ------------------------------------------------------

class NsNode(Node):
    def __init__(self, ns, *a, **kw):
        self.ns = ns
        Node.__init__(self, *a, **kw)

    def argv(self, bootstrap=True):
        return ["ip", "netns", "exec", self.ns] + Node.argv(self, bootstrap)


def make_netns():
    """Creates a namespace with lo up and its own hosts/nsswitch.conf; returns its name or None."""
    ns = "p2pnet-%d" % os.getpid()
    etc = "/etc/netns/" + ns
    try:
        subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as e:
        log("cannot create a network namespace (%r): skipping the namespace tests" % (e,))
        return None, None
    os.makedirs(etc, exist_ok=True)
    with open(etc + "/hosts", "w") as f:
        f.write("127.0.0.1 localhost\n::1 localhost\n10.1.2.3 outside.p2p-test\n")
    with open(etc + "/nsswitch.conf", "w") as f:
        f.write("hosts: files\n")
    subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"], check=True,
                   timeout=20)
    return ns, etc


def remove_netns(ns, etc):
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=20)
    for f in ("hosts", "nsswitch.conf"):
        try:
            os.unlink(os.path.join(etc, f))
        except OSError:
            pass
    try:
        os.rmdir(etc)
    except OSError:
        pass


def test_netns(root):
    ns, etc = make_netns()
    if not ns:
        return
    try:
        net = MeshNetwork(extra_env={"CHECK_PORT_ALLOW": "10.1.2.0/24"})
        n = NsNode(ns, net, "netns1", root).start().wait_ready(30)

        def tcp():
            t = n.call("system.local.network.stats")["tcp"]
            return t["active_opens"], t["out_segs"], t["out_rsts"]

        before = tcp()
        for host in ("8.8.8.8", "10.1.3.1", "outside-ns.invalid.", "::ffff:10.1.3.1"):
            code = NOT_FOUND if host.endswith("invalid.") else PERMISSION_DENIED
            expect_error(lambda: n.call("system.local.network.check_port", {"host": host, "port": 80}),
                         code, "host")
        assert tcp() == before, "a refused check_port sent TCP segments: %r -> %r" % (before, tcp())
        # a name that resolves outside the allowlist is refused after resolution, nothing sent
        n2 = NsNode(ns, MeshNetwork(), "netns2", root).start().wait_ready(30)
        try:
            err = expect_error(lambda: n2.call("system.local.network.check_port",
                                               {"host": "outside.p2p-test", "port": 80}),
                               PERMISSION_DENIED, "host")
            assert "10.1.2.3" in err["message"], err
            expect_error(lambda: n2.call("system.local.network.resolve", {"name": "nxdomain.p2p-test"}),
                         NOT_FOUND, "name")
            assert n2.call("system.local.network.resolve",
                           {"name": "outside.p2p-test"})["addresses"] == ["10.1.2.3"]
        finally:
            n2.stop()
        assert tcp()[0] == before[0], "refused checks opened connections"
        # CHECK_PORT_ALLOW lets 10.1.2.3 through: the connect is tried (no route in the namespace)
        r = n.call("system.local.network.check_port", {"host": "outside.p2p-test", "port": 80,
                                                       "timeout": 1})
        assert r["open"] is False and r["address"] == "10.1.2.3", r
        # and the counters do move for a check that connects (a closed loopback port)
        r = n.call("system.local.network.check_port", {"host": "127.0.0.1", "port": 9})
        assert r["open"] is False and r["error"] == "connection refused", r
        assert tcp()[0] > before[0], "an allowed check did not show in the counters"
        n.stop_ok()
    finally:
        remove_netns(ns, etc)


def main():
    net = MeshNetwork()
    root = tmpdir()
    a, b = start_mesh(net, root, ["neta", "netb"])
    wait_until(lambda: lists_up(a, ["neta", "netb"]) and lists_up(b, ["neta", "netb"]), 30,
               what="both nodes up in both views")
    r = Runner()
    r.run(test_interfaces, a)
    r.run(test_connections, a, b)
    r.run(test_routes, a)
    r.run(test_resolve_and_stats, a)
    r.run(test_check_port, a)
    r.run(test_roles, a)
    r.run(test_ping, a, b)
    r.run(test_netns, root)
    r.run(a.stop_ok)
    r.run(test_stop_with_checks_running, b)
    r.finish()


if __name__ == "__main__":
    main()
