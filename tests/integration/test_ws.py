#!/usr/bin/python3
"""test_ws.py: GET /ws of a real p2p-node (issue 5), with the socket-level client of ws_client.py.

A 2-node loopback network (n1, n2 joining through it); every check talks to n1 and ends by
checking n1 still answers GET /health. Checks:
- handshake: 101 with the right Sec-WebSocket-Accept; version 8 is 426 with
  Sec-WebSocket-Version: 13; a missing or malformed key is 400; a bad access_token is 401;
- authentication by ?access_token=, by a first message {"token"} (answered "authenticated"), a
  message before it closes 1008, a bad token closes 1008, no token within the time closes 1008;
- JSON-RPC over the socket: local and remote (n2) calls, an unknown method's error, calls
  without "jsonrpc";
- the receiving rules: unmasked frames, RSV bits, unknown opcodes, continuation without a start,
  a new message inside a fragmented one, ping of 126 bytes, fragmented ping, invalid UTF-8
  (whole and split across fragments), a message over 1 MiB (refused on its header: 1009), a
  binary message (1003), close codes (1000 echoed, empty close answered empty, 999/1004/1005/
  1006/1015/5000 and a 1-byte close payload are 1002, a close reason that is not UTF-8 is 1007);
- fragmentation: a call split over 3 fragments with a ping between them is answered, the ping
  gets its pong with the same payload;
- topics: an unknown topic is INVALID_PARAMS and the session goes on; metrics events arrive for
  both nodes (n2's through the network) about every second, stop after unsubscribe; a program
  started on n2 gives events process.state from n2; that start gives an audit event from n2;
  a third node joining gives a nodes join event;
- interop: the npm `ws` client (test_ws_interop.js, from tests/interop/node_modules, npm ci by
  run.sh) subscribes on n1 and receives metrics of n2, calls, pings and closes cleanly;
- a client that reads nothing while it asks for large answers is cut off (the node closes the
  connection) and the node keeps serving.
Usage: test_ws.py BUILD_DIR
"""

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402
import ws_client as wsc  # noqa: E402
from p2p import log, wait_until  # noqa: E402

HOST = "127.0.0.1"
MAX_MESSAGE = 1024 * 1024
SLEEP_MARK = "sleep %d" % (800000 + os.getpid() % 50000)


class Ctx:
    pass


def http_get(port, path, timeout=5.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        status, headers, body, _ = wsc.read_http_response(s, timeout)
        return status, headers, body
    finally:
        s.close()


def still_serving(node):
    status, _, body = http_get(node.http_port, "/health")
    assert status == 200 and json.loads(body)["status"] == "ok", (status, body)


def ws(c, token=True, timeout=5.0):
    t = c.token if token is True else token
    return wsc.WS(HOST, c.n1.http_port, token=t, timeout=timeout).connect()


def raw_handshake(c, **kw):
    s = socket.create_connection((HOST, c.n1.http_port), timeout=5)
    req, _ = wsc.handshake_request(HOST, c.n1.http_port, **kw)
    s.sendall(req)
    try:
        return wsc.read_http_response(s)
    finally:
        s.close()


def expect_close(c, data, code, what):
    """Sends raw bytes on a fresh authenticated session; the node must close with code."""
    w = ws(c)
    try:
        w.send_raw(data)
        got = w.expect_close()
        assert got == code, "%s: expected close %d, got %r" % (what, code, got)
    finally:
        w.shutdown()
    still_serving(c.n1)


# --- tests ---------------------------------------------------------------------------------

def test_handshake(c):
    w = ws(c)
    w.send_json({"id": 1, "method": "rpc.ping"})
    r = w.recv_json()
    assert r.get("id") == 1 and "result" in r, r
    w.close()
    assert w.expect_close() == 1000
    w.shutdown()

    status, headers, _, _ = raw_handshake(c, version="8")
    assert status == 426 and headers.get("sec-websocket-version") == "13", (status, headers)
    status, _, body, _ = raw_handshake(c, omit=("Sec-WebSocket-Key",))
    assert status == 400, (status, body)
    status, _, body, _ = raw_handshake(c, key="c2hvcnQ=")
    assert status == 400, (status, body)
    status, _, body, _ = raw_handshake(c, omit=("Upgrade",))
    assert status in (400, 426), (status, body)
    status, _, body, _ = raw_handshake(c, path="/ws?access_token=not.a.token")
    assert status == 401, (status, body)
    assert json.loads(body)["error"]["code"] == p2p.UNAUTHENTICATED, body
    still_serving(c.n1)


def test_first_message_auth(c):
    w = ws(c, token=None)
    w.send_json({"token": c.token, "id": "a"})
    r = w.recv_json()
    assert r["result"]["authenticated"] is True and r["result"]["role"] == "viewer", r
    assert r.get("id") == "a", r
    w.send_json({"id": 2, "method": "system.local.node.info", "params": {}})
    r = w.recv_json()
    assert r["id"] == 2 and r["result"]["name"] == "n1", r
    w.shutdown()

    # anything before the token closes 1008
    w = ws(c, token=None)
    w.send_json({"subscribe": "metrics"})
    r = w.recv_json()
    assert r["error"]["code"] == p2p.UNAUTHENTICATED, r
    assert w.expect_close() == 1008
    w.shutdown()
    # a bad token closes 1008
    w = ws(c, token=None)
    w.send_json({"token": c.token[:-4] + "AAAA"})
    r = w.recv_json()
    assert r["error"]["code"] == p2p.UNAUTHENTICATED, r
    assert w.expect_close() == 1008
    w.shutdown()
    # no token in time: closed 1008 (the limit is 10 s)
    w = ws(c, token=None, timeout=20.0)
    t0 = time.monotonic()
    assert w.expect_close(timeout=20.0) == 1008
    assert 8.0 <= time.monotonic() - t0 <= 15.0, time.monotonic() - t0
    w.shutdown()
    still_serving(c.n1)


def test_rpc(c):
    w = ws(c)
    w.send_json({"id": 1, "method": "system.n2.node.info", "params": {}})
    r = w.recv_json(timeout=15)
    assert r["id"] == 1 and r["result"]["name"] == "n2", r
    w.send_json({"jsonrpc": "2.0", "id": 2, "method": "system.local.node.nosuch", "params": {}})
    r = w.recv_json()
    assert r["id"] == 2 and r["error"]["code"] == p2p.METHOD_NOT_FOUND, r
    w.send_text("{not json")
    r = w.recv_json()
    assert r["error"]["code"] == p2p.PARSE_ERROR, r
    w.send_json({"subscribe": "cpu", "id": 5})
    r = w.recv_json()
    assert r["error"]["code"] == p2p.INVALID_PARAMS and r.get("id") == 5, r
    assert r["error"]["data"]["param"] == "subscribe", r
    w.send_json({"hello": 1})
    r = w.recv_json()
    assert r["error"]["code"] == p2p.INVALID_REQUEST, r
    # still usable after each error
    w.send_json({"id": 3, "method": "rpc.ping"})
    assert w.recv_json()["id"] == 3
    w.shutdown()


def test_frame_rules(c):
    F = wsc.frame
    expect_close(c, F(wsc.TEXT, '{"id":1,"method":"rpc.ping"}', mask=False), 1002, "unmasked")
    expect_close(c, F(wsc.PING, b"", mask=False), 1002, "unmasked ping")
    for rsv in (1, 2, 4):
        expect_close(c, F(wsc.TEXT, "x", rsv=rsv), 1002, "rsv %d" % rsv)
    for op in (3, 7, 0xB, 0xF):
        expect_close(c, F(op, "x"), 1002, "opcode %d" % op)
    expect_close(c, F(wsc.CONT, "x"), 1002, "continuation without a start")
    expect_close(c, F(wsc.TEXT, "a", fin=False) + F(wsc.TEXT, "b"), 1002, "text inside a message")
    expect_close(c, F(wsc.PING, b"p" * 126), 1002, "ping of 126 bytes")
    expect_close(c, F(wsc.PING, b"p", fin=False), 1002, "fragmented ping")
    expect_close(c, F(wsc.CLOSE, b"x" * 126), 1002, "close of 126 bytes")
    expect_close(c, F(wsc.TEXT, b"\xc0\x80"), 1007, "overlong")
    expect_close(c, F(wsc.TEXT, b"\xed\xa0\x80"), 1007, "surrogate")
    expect_close(c, F(wsc.TEXT, b"\xf4\x90\x80\x80"), 1007, "past U+10FFFF")
    expect_close(c, F(wsc.TEXT, b"ok\xe2\x82", fin=False) + F(wsc.CONT, b"\x28"), 1007,
                 "invalid across fragments")
    expect_close(c, F(wsc.TEXT, b"ok\xe2", fin=False) + F(wsc.CONT, b"\x82"), 1007,
                 "message ends inside a character")
    # over the limit: refused on the header alone (the payload never comes)
    head = F(wsc.BINARY, b"", length=MAX_MESSAGE + 1)
    expect_close(c, head, 1009, "message over 1 MiB")
    half = b"a" * (MAX_MESSAGE // 2 + 1)
    expect_close(c, F(wsc.TEXT, half, fin=False) + F(wsc.CONT, half), 1009,
                 "fragments over 1 MiB")
    expect_close(c, F(wsc.BINARY, b"\x00\x01"), 1003, "binary message")


def test_close_codes(c):
    for code, want in ((1000, 1000), (1001, 1001), (3000, 3000), (4999, 4999)):
        w = ws(c)
        w.close(code, "bye")
        assert w.expect_close() == want, code
        w.shutdown()
    w = ws(c)
    w.send(wsc.CLOSE, b"")
    assert w.expect_close() is None  # an empty close is answered with an empty one
    w.shutdown()
    for code in (0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000):
        expect_close(c, wsc.frame(wsc.CLOSE, struct.pack(">H", code)), 1002, "close code %d" % code)
    expect_close(c, wsc.frame(wsc.CLOSE, b"\x03"), 1002, "1-byte close payload")
    expect_close(c, wsc.frame(wsc.CLOSE, b"\x03\xe8\xff"), 1007, "close reason not UTF-8")


def test_fragmentation_ping(c):
    w = ws(c)
    msg = json.dumps({"id": 7, "method": "system.local.node.info", "params": {}}).encode()
    a, b = msg[:5], msg[5:12]
    rest = msg[12:]
    w.send_raw(wsc.frame(wsc.TEXT, a, fin=False) + wsc.frame(wsc.PING, b"mid")
               + wsc.frame(wsc.CONT, b, fin=False))
    # the pong comes before the message is complete
    fin, rsv, op, payload = w.recv_frame()
    assert (fin, rsv, op, payload) == (True, 0, wsc.PONG, b"mid"), (fin, rsv, op, payload)
    # split the last fragment's bytes over several TCP writes
    last = wsc.frame(wsc.CONT, rest)
    for i in range(0, len(last), 3):
        w.send_raw(last[i:i + 3])
        time.sleep(0.002)
    r = w.recv_json()
    assert r["id"] == 7 and r["result"]["name"] == "n1", r
    w.send(wsc.PING, b"")
    fin, rsv, op, payload = w.recv_frame()
    assert op == wsc.PONG and payload == b"", (op, payload)
    w.shutdown()


def collect(w, seconds, pred):
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            m = w.recv_json(timeout=max(0.05, end - time.monotonic()))
        except socket.timeout:
            break
        if pred(m):
            out.append(m)
    return out


def test_metrics_topic(c):
    w = ws(c)
    w.send_json({"subscribe": "metrics", "id": 1})
    r = w.recv_json(pred=lambda m: "subscribed" in m)
    assert r == {"subscribed": "metrics", "id": 1}, r
    seen = {}

    def both():
        m = w.recv_json(timeout=15, pred=lambda m: m.get("topic") == "metrics")
        seen.setdefault(m["node"], []).append((time.monotonic(), m["data"]))
        return "n1" in seen and "n2" in seen and len(seen["n2"]) >= 3

    wait_until(both, 30, interval=0, what="metrics from n1 and n2")
    d = seen["n2"][-1][1]
    assert isinstance(d, dict) and d, d
    # about one per second: 3 n2 events span 1.5..5 s
    ts = [t for t, _ in seen["n2"][-3:]]
    assert 1.0 <= ts[-1] - ts[0] <= 6.0, ts
    w.send_json({"unsubscribe": "metrics"})
    w.recv_json(pred=lambda m: "unsubscribed" in m)
    time.sleep(1.5)
    late = collect(w, 3.0, lambda m: m.get("topic") == "metrics")
    assert not late, late[:2]
    w.shutdown()


def test_topic_acl(c):
    """A token limited to node n1 (`--targets n1`) sees n1's metrics and never n2's, as its calls
    to n2 are refused; one limited to node.* methods sees no metrics at all."""
    t = p2p.mint_token(c.net, "viewer", c.n1.data_dir, extra=["--targets", "n1"])
    w = ws(c, token=t)
    w.send_json({"subscribe": "metrics"})
    w.recv_json(pred=lambda m: "subscribed" in m)
    got = collect(w, 4.0, lambda m: m.get("topic") == "metrics")
    nodes = {m["node"] for m in got}
    assert nodes == {"n1"}, nodes
    w.send_json({"id": 2, "method": "system.n2.node.info"})
    r = w.recv_json(pred=lambda m: m.get("id") == 2)
    assert "error" in r, r
    w.shutdown()
    t = p2p.mint_token(c.net, "viewer", c.n1.data_dir, extra=["--methods", "node.*"])
    w = ws(c, token=t)
    w.send_json({"subscribe": "metrics"})
    w.recv_json(pred=lambda m: "subscribed" in m)
    got = collect(w, 3.0, lambda m: m.get("topic") == "metrics")
    assert not got, got[:2]
    w.send_json({"subscribe": "nodes"})
    w.recv_json(pred=lambda m: "subscribed" in m)
    w.shutdown()


def test_events_audit_topics(c):
    w = ws(c)
    w.send_json({"subscribe": "events"})
    w.recv_json(pred=lambda m: "subscribed" in m)
    w.send_json({"subscribe": "audit"})
    w.recv_json(pred=lambda m: "subscribed" in m)
    time.sleep(3)  # the feeds learn the current state first
    c.n2.call("system.local.process.start", {"name": "wsprog", "argv": SLEEP_MARK.split()})
    got = {"events": [], "audit": []}

    def arrived():
        m = w.recv_json(timeout=15, pred=lambda m: m.get("topic") in ("events", "audit"))
        got[m["topic"]].append(m)
        ev = [e for e in got["events"] if e["node"] == "n2" and e["data"].get("name") == "wsprog"
              and e["data"].get("type") == "process.state"]
        au = [e for e in got["audit"] if e["node"] == "n2"
              and e["data"].get("method", "").endswith("process.start")]
        return ev and au

    wait_until(arrived, 40, interval=0, what="process.state and audit events from n2")
    c.n2.call("system.local.process.stop", {"name": "wsprog"})
    w.shutdown()


def test_nodes_topic(c):
    w = ws(c)
    w.send_json({"subscribe": "nodes"})
    w.recv_json(pred=lambda m: "subscribed" in m)
    time.sleep(2)
    n3 = p2p.Node(c.net, "n3", c.root, bootstrap=c.n1.dht_addr).start().wait_ready(30)
    m = w.recv_json(timeout=60, pred=lambda m: m.get("topic") == "nodes" and m.get("node") == "n3")
    assert m["data"]["event"] == "join" and len(m["data"]["id"]) == 64, m
    n3.stop_ok()
    w.shutdown()


def test_slow_client_cut_off(c):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect((HOST, c.n1.http_port))
    req, _ = wsc.handshake_request(HOST, c.n1.http_port, path="/ws?access_token=" + c.token)
    s.sendall(req)
    status, _, _, _ = wsc.read_http_response(s)
    assert status == 101
    call = wsc.frame(wsc.TEXT, json.dumps({"id": 1, "method": "system.local.node.methods"}))
    # ask for far more than WS_MAX_OUTPUT (4 MiB) of answers without reading any: the node must
    # cut the client off (it stops reading, then closes: our sends fail or block)
    sent, cut = 0, False
    end = time.monotonic() + 60
    while time.monotonic() < end and not cut:
        try:
            s.sendall(call * 16)
            sent += 16
        except (BrokenPipeError, ConnectionResetError):
            cut = True
        except socket.timeout:
            break  # the node stopped reading: see below whether it closed
        time.sleep(0.005)
    if not cut:
        # what the node queued before it gave up, then EOF or a reset
        s.settimeout(5)
        total = 0
        try:
            while total < (64 << 20):
                d = s.recv(1 << 20)
                if not d:
                    cut = True
                    break
                total += len(d)
        except ConnectionResetError:
            cut = True
        except socket.timeout:
            pass
    s.close()
    assert cut, "the node never cut off a client that does not read (%d calls sent)" % sent
    still_serving(c.n1)
    w = ws(c)
    w.send_json({"id": 1, "method": "rpc.ping"})
    assert w.recv_json()["id"] == 1
    w.shutdown()


def test_npm_ws_interop(c):
    """The npm `ws` client subscribes on n1 and receives metrics of n2 (test_ws_interop.js)."""
    here = os.path.dirname(os.path.abspath(__file__))
    nodejs = shutil.which("node") or shutil.which("nodejs")
    mods = os.path.join(here, "..", "interop", "node_modules", "ws")
    # run.sh test installs node and the pinned npm packages: their absence fails the test
    assert nodejs and os.path.isdir(mods), "node or tests/interop/node_modules/ws missing (./run.sh test installs them)"
    r = subprocess.run([nodejs, os.path.join(here, "test_ws_interop.js"),
                        "ws://%s:%d/ws" % (HOST, c.n1.http_port), c.token, "n2"],
                       capture_output=True, timeout=40)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)


def main():
    c = Ctx()
    c.net = p2p.Network()
    c.root = p2p.tmpdir()
    c.n1, c.n2 = p2p.start_mesh(c.net, c.root, ["n1", "n2"])
    wait_until(lambda: p2p.lists_up(c.n1, ["n1", "n2"]) and p2p.lists_up(c.n2, ["n1", "n2"]), 60,
               what="n1 and n2 list each other up")
    c.token = c.n1.token("viewer")
    r = p2p.Runner()
    for t in (test_handshake, test_first_message_auth, test_rpc, test_frame_rules,
              test_close_codes, test_fragmentation_ping, test_metrics_topic, test_topic_acl,
              test_events_audit_topics, test_nodes_topic, test_npm_ws_interop,
              test_slow_client_cut_off):
        r.run(t, c)
    for n in (c.n1, c.n2):
        if n.alive():
            n.stop_ok()
    r.finish()


if __name__ == "__main__":
    main()
