#!/usr/bin/python3
"""test_python_client.py: a client written here from the msgpack-RPC spec alone talks to a node's
local socket (CONTRACT section 4). Only node start-up comes from p2p.py; framing, msgid matching,
authentication and error decoding are done below with the socket and python3-msgpack.

Checks: rpc.ping and node.methods before auth; UNAUTHENTICATED before rpc.auth; node.info after
it; errors come back as {"code", "message"} with result nil; 64 pipelined requests in one write
(msgids in random order, up to 2**32-1) each answered once with its own result; a slow call
(dht.get through a frozen peer, and a call to a frozen node once routing exists) followed by
pings: the pings' responses arrive first (responses out of order), and the slow one still comes.
Usage: test_python_client.py BUILD_DIR
"""

import os
import random
import signal
import socket
import subprocess
import sys
import time

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402  (only Network/Node/Runner/log: starting processes)

REQUEST, RESPONSE, NOTIFY = 0, 1, 2


class SpecClient:
    """msgpack-RPC over a unix stream socket, from the spec: [0, id, method, params] out,
    [1, id, error, result] / [2, method, params] in."""

    def __init__(self, path, timeout=10.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.unp = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.next_id = 1

    def close(self):
        self.s.close()

    def frame(self, msgid, method, params):
        return msgpack.packb([REQUEST, msgid, method, params], use_bin_type=True)

    def send(self, data):
        self.s.sendall(data)

    def recv_one(self):
        """The next message; EOFError when the node closed."""
        for _ in range(100000):
            for m in self.unp:
                return m
            b = self.s.recv(65536)
            if not b:
                raise EOFError("closed")
            self.unp.feed(b)
        raise RuntimeError("no message")

    def recv_response(self):
        for _ in range(10000):
            m = self.recv_one()
            assert isinstance(m, list) and m, "not an array: %r" % (m,)
            if m[0] == NOTIFY:
                assert len(m) == 3, "bad notification %r" % (m,)
                continue
            assert m[0] == RESPONSE and len(m) == 4, "not a response: %r" % (m,)
            assert isinstance(m[1], int), "msgid not an int: %r" % (m,)
            if m[2] is not None:
                assert m[3] is None, "error and result both set: %r" % (m,)
                assert isinstance(m[2], dict) and isinstance(m[2].get("code"), int) \
                    and isinstance(m[2].get("message"), str), "bad error object %r" % (m[2],)
            return m
        raise RuntimeError("only notifications")

    def call(self, method, args=None):
        mid = self.next_id
        self.next_id += 1
        self.send(self.frame(mid, method, [] if args is None else [args]))
        m = self.recv_response()
        assert m[1] == mid, "response id %r, sent %r" % (m[1], mid)
        return m[2], m[3]


def token(node, role="admin"):
    r = subprocess.run([p2p.node_bin(), "token", "--role", role, "--data-dir", node.data_dir],
                       env=node.net.env(), capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout.decode().strip().splitlines()[-1]


class Env:
    def __init__(self):
        root = p2p.tmpdir("p2p-pyclient-")
        net = p2p.Network()
        self.a = p2p.Node(net, "pa", root).start().wait_ready()
        self.b = p2p.Node(net, "pb", root, bootstrap=self.a.dht_addr).start().wait_ready()
        self.tok = token(self.a)
        p2p.wait_until(lambda: self.b.node_id() in self.a.peer_ids(), 30, what="pb in pa's routing table")


def test_before_auth(e):
    c = SpecClient(e.a.sock_path)
    try:
        err, res = c.call("rpc.ping")
        assert err is None and res == "pong", (err, res)
        err, res = c.call("system.local.node.methods", {})
        assert err is None, err
        names = [m.get("name") if isinstance(m, dict) else m for m in
                 (res if isinstance(res, list) else res.get("methods", []))]
        assert any("node.info" in str(n) for n in names), "node.info not listed: %r" % (names,)
        err, res = c.call("system.local.node.info", {})
        assert err is not None and err["code"] == -32001, "node.info before auth: %r %r" % (err, res)
    finally:
        c.close()


def test_auth_then_info(e):
    c = SpecClient(e.a.sock_path)
    try:
        err, _ = c.call("rpc.auth", {"token": e.tok})
        assert err is None, err
        err, info = c.call("system.local.node.info", {})
        assert err is None, err
        assert info["name"] == "pa", info
        assert isinstance(info["id"], str) and len(info["id"]) >= 16 and int(info["id"], 16) >= 0, info
        err, info2 = c.call("system.pa.node.info", {})  # own name as NODE is local too
        assert err is None and info2["id"] == info["id"], (err, info2)
        err, res = c.call("system.local.node.no_such_method", {})
        assert res is None and err["code"] == -32601, (err, res)
        err, res = c.call("system.local.dht.get", {})
        assert err["code"] == -32602, "missing key: %r" % (err,)
    finally:
        c.close()


def test_pipelined_ids(e):
    """64 requests in one write: ids unique, shuffled, spanning the uint32 range; each answered
    exactly once with its own outcome."""
    c = SpecClient(e.a.sock_path)
    try:
        c.call("rpc.auth", {"token": e.tok})
        rnd = random.Random(5)
        ids = rnd.sample(range(1, 2 ** 32), 61) + [0, 2 ** 32 - 1, 7]
        ids = list(dict.fromkeys(ids))
        rnd.shuffle(ids)
        want = {}
        blob = b""
        for k, mid in enumerate(ids):
            kind = k % 4
            if kind == 0:
                blob += c.frame(mid, "rpc.ping", [])
                want[mid] = ("ok", "pong")
            elif kind == 1:
                blob += c.frame(mid, "system.local.node.info", [{}])
                want[mid] = ("info", None)
            elif kind == 2:
                blob += c.frame(mid, "system.local.nodomain.x", [{}])
                want[mid] = ("err", -32601)
            else:
                blob += c.frame(mid, "system.local.dht.get", [{"key": 5}])
                want[mid] = ("err", -32602)
        c.send(blob)
        got = {}
        for _ in range(len(ids)):
            m = c.recv_response()
            assert m[1] in want, "unknown msgid %r" % (m[1],)
            assert m[1] not in got, "msgid %r answered twice" % (m[1],)
            got[m[1]] = m
        for mid, (kind, v) in want.items():
            m = got[mid]
            if kind == "ok":
                assert m[2] is None and m[3] == v, m
            elif kind == "info":
                assert m[2] is None and m[3]["name"] == "pa", m
            else:
                assert m[2] is not None and m[2]["code"] == v, (mid, m)
        order = [mid for mid in ids]
        p2p.log("64 pipelined calls answered; response order equals request order: %s"
                % ([m for m in got] == order))
    finally:
        c.close()


def slow_then_pings(e, slow_method, slow_args, what):
    """Sends the slow call then 8 pings in one write; returns (order of ids, the slow response)."""
    c = SpecClient(e.a.sock_path, timeout=20)
    try:
        c.call("rpc.auth", {"token": e.tok})
        blob = c.frame(1000, slow_method, [slow_args])
        for k in range(8):
            blob += c.frame(2000 + k, "rpc.ping", [])
        t0 = time.monotonic()
        c.send(blob)
        order, slow = [], None
        for _ in range(9):
            m = c.recv_response()
            order.append(m[1])
            if m[1] == 1000:
                slow = m
        p2p.log("%s: response order %r, slow one after %.2fs: %r" % (what, order, time.monotonic() - t0, slow))
        assert sorted(order) == [1000] + [2000 + k for k in range(8)], order
        return order, slow
    finally:
        c.close()


def test_out_of_order(e):
    # b frozen: a's lookup waits on it; pings sent after the lookup must not wait.
    e.b.signal(signal.SIGSTOP)
    try:
        order, slow = slow_then_pings(e, "system.local.dht.get", {"key": "never-stored-%d" % os.getpid()},
                                      "dht.get via frozen peer")
        assert order[-1] == 1000, "the slow dht.get was answered before later pings: %r" % order
        assert slow[2] is None or slow[2]["code"] in (-32003, -32004, -32005), slow
        order, slow = slow_then_pings(e, "system.pb.node.info", {"_timeout": 1.5}, "call to frozen node")
        assert order[-1] == 1000, "the call to the frozen node came before later pings: %r" % order
        assert slow[2] is not None and slow[2]["code"] in (-32004, -32005), \
            "call to a frozen node: want TIMEOUT or UNAVAILABLE, got %r" % (slow,)
    finally:
        e.b.signal(signal.SIGCONT)


def test_notification_ignored_and_node_serves(e):
    """A notification from the client ([2, method, params]) gets no response; the next call works."""
    c = SpecClient(e.a.sock_path, timeout=3)
    try:
        c.send(msgpack.packb([NOTIFY, "rpc.ping", []]))
        err, res = c.call("rpc.ping")
        assert err is None and res == "pong", (err, res)
    finally:
        c.close()


def main():
    r = p2p.Runner()
    e = Env()
    for t in (test_before_auth, test_auth_then_info, test_pipelined_ids, test_out_of_order,
              test_notification_ignored_and_node_serves):
        r.run(t, e)
    r.finish()


if __name__ == "__main__":
    main()
