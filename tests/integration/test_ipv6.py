#!/usr/bin/python3
"""test_ipv6.py: the DHT over IPv6 and across address families, real processes on loopback.

Three nodes on [::1] join, store and find a value; a node bound to "::" (IPv6 with IPv4-mapped
addresses) joins a network through one IPv4 and one IPv6 contact and carries a value between them.
Usage: test_ipv6.py BUILD_DIR
"""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402


def have_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def start(nodes):
    for n in nodes:
        n.start()
    for n in nodes:
        n.wait_ready()


def test_ipv6_only():
    root = p2p.tmpdir("p2p-v6-")
    net = p2p.Network()
    a = p2p.Node(net, "v6a", root, dht_host="::1")
    b = p2p.Node(net, "v6b", root, dht_host="::1", bootstrap=a.dht_addr)
    c = p2p.Node(net, "v6c", root, dht_host="::1", bootstrap=a.dht_addr)
    start([a, b, c])
    for n in (a, b, c):
        p2p.wait_until(lambda n=n: len(n.peer_ids()) >= 2, 15, what="%s has 2 peers" % n.name)
    for n in (a, b, c):
        for peer in p2p.peer_list(n.peers()):
            addr = peer.get("address") or peer.get("addr") or ""
            assert addr.startswith("[::1]:"), "%s: peer address %r is not IPv6 loopback" % (n.name, addr)
    b.put("v6-key", "over ipv6")
    p2p.wait_until(lambda: "over ipv6" in p2p.get_values(c.get("v6-key")), 15, what="c reads b's value")
    for n in (a, b, c):
        n.stop_ok()


def test_dual_stack():
    root = p2p.tmpdir("p2p-dual-")
    net = p2p.Network()
    v4 = p2p.Node(net, "v4", root, dht_host="127.0.0.1")
    v6 = p2p.Node(net, "v6", root, dht_host="::1")
    start([v4, v6])
    dual = p2p.Node(net, "dual", root, dht_host="::", bootstrap="%s,%s" % (v4.dht_addr, v6.dht_addr))
    start([dual])
    p2p.wait_until(lambda: len(dual.peer_ids()) >= 2, 15, what="dual knows both families")
    ids = set(dual.peer_ids())
    assert v4.node_id() in ids and v6.node_id() in ids, "dual's peers %r" % ids
    p2p.wait_until(lambda: dual.node_id() in set(v4.peer_ids()), 15, what="v4 knows dual")
    p2p.wait_until(lambda: dual.node_id() in set(v6.peer_ids()), 15, what="v6 knows dual")
    v4.put("dual-key", "from ipv4")
    p2p.wait_until(lambda: "from ipv4" in p2p.get_values(dual.get("dual-key")), 15,
                   what="dual reads the IPv4 node's value")
    for n in (dual, v4, v6):
        n.stop_ok()


def main():
    r = p2p.Runner()
    if not have_ipv6_loopback():
        p2p.log("SKIP: no IPv6 loopback on this machine")
        sys.exit(77)
    r.run(test_ipv6_only)
    r.run(test_dual_stack)
    r.finish()


if __name__ == "__main__":
    main()
