#!/usr/bin/python3
"""test_peer_bad_input.py: hostile input against a node's TCP peer channel and its local socket;
the node must keep serving after each (rpc.ping on the local socket, node.info, and a fresh good
handshake + call on the peer port).

Peer port (SHS v1 + box-stream; the client is p2p.PeerClient, written from the protocol and checked
against the npm secret-handshake package): random bytes, 64 zero bytes, half a hello, a hello then
silence, garbage or truncated auth, the wrong network key, the wrong server key, 200 idle half-open
connections; after a good handshake: bad header MAC, bad body MAC, a lying length, a header
announcing more than 4096 bytes, a msgpack frame larger than the node accepts, a client that
vanishes mid-call, a slow reader of many replies.
Local socket: 100,000 calls written without reading a reply (RSS growth < 64 MB, RESOURCE_EXHAUSTED
or backpressure, a fresh client served meanwhile); 1,000,000 unread pings (still < 64 MB); a slow
reader.
Two nodes: a call forwarded to a frozen peer ends by its deadline; a peer killed mid-call ends the
call by its deadline.
Usage: test_peer_bad_input.py BUILD_DIR
"""

import base64
import os
import random
import signal
import socket
import sys
import time

import msgpack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402

RSS_GROWTH_MAX_KB = 64 * 1024
CLOSE_WAIT = 5.0  # how long a rejected connection may stay open before we call it "not closed"


def rss_ok(growth_kb, what):
    """True when growth is within the bound (always true, with a note, on a sanitizer build)."""
    if p2p.sanitized_build():
        p2p.log("NOTE: ASan build: RSS bound not checked for %s (grew %d kB)" % (what, growth_kb))
        return True
    return growth_kb < RSS_GROWTH_MAX_KB


class Env:
    def __init__(self):
        self.root = p2p.tmpdir("p2p-peerbad-")
        self.net = p2p.Network()
        self.a = p2p.Node(self.net, "pa", self.root).start().wait_ready()
        self.b = p2p.Node(self.net, "pb", self.root, bootstrap=self.a.dht_addr).start().wait_ready()
        self.tok = self.a.token("admin")
        self.a_pk = bytes.fromhex(self.a.info()["public_key"])
        self.key = base64.b64decode(self.net.network_key)

    def peer(self, timeout=5.0, key=None, server_pk=None):
        return p2p.PeerClient(self.a.dht_port, key or self.key, server_pk or self.a_pk, timeout=timeout)


def good_peer_call(e):
    c = e.peer()
    try:
        c.handshake()
        res = c.call("rpc.ping")
        assert res == "pong", res
        info = c.call("system.local.node.info", {"_token": e.tok})
        assert info["name"] == "pa", info
    finally:
        c.close()


def still_serving(e):
    assert e.a.alive(), "node died; log:\n%s" % e.a.log_tail()
    c = p2p.Client(e.a.sock_path, timeout=5)
    try:
        assert c.call("rpc.ping") == "pong"
    finally:
        c.close()
    e.a.info()
    good_peer_call(e)


def closed_by_node(sock, timeout=CLOSE_WAIT):
    """True when the node closes the connection (EOF or reset) within timeout; bytes it sends
    before closing are read and ignored (bounded)."""
    sock.settimeout(0.5)
    deadline = time.monotonic() + timeout
    got = 0
    while time.monotonic() < deadline and got < 1 << 20:
        try:
            d = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
        if not d:
            return True
        got += len(d)
    return False


def raw_peer(e):
    return socket.create_connection(("127.0.0.1", e.a.dht_port), timeout=5)


def send_quiet(s, data):
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


# --- handshake --------------------------------------------------------------------------------


def test_positive_control(e):
    """A good handshake and calls work: what the rejections below are measured against."""
    good_peer_call(e)
    c = e.peer()
    try:
        c.handshake()
        err, res = c.request("system.local.node.info")
        assert err is not None and err["code"] == p2p.UNAUTHENTICATED, \
            "a peer connection without a token got node.info: %r %r" % (err, res)
    finally:
        c.close()


def test_random_bytes(e):
    rnd = random.Random(3)
    for n in (1, 63, 64, 65, 200, 5000):
        s = raw_peer(e)
        try:
            send_quiet(s, bytes(rnd.getrandbits(8) for _ in range(n)))
            if n >= 64:
                assert closed_by_node(s), "node kept a connection open after %d random bytes" % n
        finally:
            s.close()
    still_serving(e)


def test_zero_hello(e):
    s = raw_peer(e)
    try:
        send_quiet(s, b"\0" * 64)
        assert closed_by_node(s), "node kept the connection after a hello of 64 zero bytes"
    finally:
        s.close()
    still_serving(e)


def test_half_hello(e):
    c = e.peer()
    try:
        c.send_raw(c.hello()[:32])
        # the node waits for the rest (or times the handshake out); it must not answer a half hello
        c.sock.settimeout(1.0)
        try:
            d = c.sock.recv(100)
            assert d == b"", "node answered half a hello with %r" % d[:16]
        except socket.timeout:
            pass
        still_serving(e)  # while the half-open handshake is pending
    finally:
        c.close()
    c = e.peer()
    c.send_raw(c.hello()[:40])
    c.close()  # and vanishing right after half a hello
    still_serving(e)


def test_hello_then_garbage_auth(e):
    for auth in (b"", os.urandom(112), b"\0" * 112, os.urandom(56)):
        c = e.peer()
        try:
            c.send_raw(c.hello())
            m2 = c.recv_exact(64)
            assert len(m2) == 64
            if auth:
                c.send_raw(auth)
            if len(auth) == 112:
                assert closed_by_node(c.sock), "node kept the connection after a forged auth message"
        finally:
            c.close()
    still_serving(e)


def test_wrong_network_key(e):
    c = e.peer(key=os.urandom(32), timeout=3)
    try:
        try:
            c.handshake()
            raise AssertionError("handshake completed with a wrong network key")
        except (p2p.HandshakeError, EOFError, ConnectionResetError, BrokenPipeError, socket.timeout) as err:
            p2p.log("wrong network key refused: %r" % (err,))
    finally:
        c.close()
    still_serving(e)


JS_CLIENT = r"""
const [port, keyB64, pkHex] = process.argv.slice(2);
const net = require('net'), shs = require('secret-handshake'), pull = require('pull-stream');
const toPull = require('stream-to-pull-stream'), sodium = require('chloride'), Pushable = require('pull-pushable');
setTimeout(() => { console.log('timeout'); process.exit(3); }, 5000);
const client = shs.createClient(sodium.crypto_sign_keypair(), Buffer.from(keyB64, 'base64'));
const sock = toPull.duplex(net.connect(Number(port), '127.0.0.1'));
pull(sock, client(Buffer.from(pkHex, 'hex'), (err, s) => {
  if (err) { console.log('handshake failed: ' + err.message); process.exit(1); }
  console.log('handshake ok');
  const out = Pushable();
  out.push(Buffer.from('940001a87270632e70696e6790', 'hex')); // [0, 1, "rpc.ping", []]
  pull(out, s, pull.drain(b => {
    // a notification [2, ...] (the node's bulk-mode offer) is not the reply: a msgpack-RPC client ignores it
    if (b[0] === 0x93 && b[1] === 0x02) { console.log('notification ' + b.toString('hex')); return; }
    console.log('reply ' + b.toString('hex')); process.exit(0);
  }));
}), sock);
"""


def js_client(e, key_b64):
    """Runs the npm secret-handshake client (tests/interop's node_modules) against the node;
    returns (exit code, stdout) or None when node.js or the modules are missing."""
    import shutil
    import subprocess
    mods = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop", "node_modules")
    nodejs = shutil.which("node") or shutil.which("nodejs")
    if not nodejs or not os.path.isdir(os.path.join(mods, "secret-handshake")) \
            or not os.path.isdir(os.path.join(mods, "pull-pushable")):
        return None
    path = os.path.join(e.root, "shs-client.js")
    with open(path, "w") as f:
        f.write(JS_CLIENT)
    env = dict(os.environ, NODE_PATH=os.path.abspath(mods))
    r = subprocess.run([nodejs, path, str(e.a.dht_port), key_b64, e.a_pk.hex()], env=env,
                       capture_output=True, timeout=20)
    return r.returncode, r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")[-300:]


def test_js_client_wrong_network_key(e):
    good = js_client(e, e.net.network_key)
    if good is None:
        p2p.log("SKIP: node.js or tests/interop/node_modules (secret-handshake, pull-pushable) missing: "
                "the wrong-key handshake is covered by p2p.PeerClient only")
        return
    p2p.log("npm secret-handshake client, right key:", good)
    assert good[0] == 0 and "a4706f6e67" in good[1], "JS client with the right key: %r" % (good,)
    bad = js_client(e, p2p.random_key_b64())
    p2p.log("npm secret-handshake client, wrong key:", bad)
    assert bad[0] != 0 and "handshake ok" not in bad[1], "JS client with a wrong key: %r" % (bad,)
    still_serving(e)


def test_wrong_server_key(e):
    other_pk, _ = p2p.ed25519_keypair()
    c = e.peer(server_pk=other_pk, timeout=3)
    try:
        try:
            c.handshake()
            raise AssertionError("handshake completed against the wrong server key")
        except (p2p.HandshakeError, EOFError, ConnectionResetError, BrokenPipeError, socket.timeout) as err:
            p2p.log("wrong server key refused: %r" % (err,))
    finally:
        c.close()
    still_serving(e)


def test_many_half_open(e):
    conns = []
    try:
        for _ in range(200):
            try:
                s = raw_peer(e)
                s.sendall(os.urandom(10))
                conns.append(s)
            except OSError:
                break
        p2p.log("%d idle half-open peer connections" % len(conns))
        still_serving(e)
    finally:
        for s in conns:
            s.close()
    still_serving(e)


# --- after a good handshake -----------------------------------------------------------------


def shaken(e):
    c = e.peer()
    c.handshake()
    assert c.call("rpc.ping") == "pong"
    return c


def test_bad_mac(e):
    for tamper in ("header", "body", "length"):
        c = shaken(e)
        try:
            data = c.box(msgpack.packb([0, 9, "rpc.ping", []]), tamper=tamper)
            if tamper == "length":  # the node takes one byte of the next frame as body: its MAC fails
                data += c.box(msgpack.packb([0, 10, "rpc.ping", []]))
            c.send_raw(data)
            assert closed_by_node(c.sock), "node kept the stream open after a bad %s" % tamper
        finally:
            c.close()
        still_serving(e)


def test_oversized_box(e):
    for n in (4097, 65535):
        c = shaken(e)
        try:
            c.send_raw(c.box_header(n) + os.urandom(min(n, 5000)))
            assert closed_by_node(c.sock), "node kept the stream open after a %d-byte box header" % n
        finally:
            c.close()
    still_serving(e)


def test_oversized_rpc_frame(e):
    rss0 = e.a.rss_kb()
    c = shaken(e)
    try:
        big = msgpack.packb([0, 1, "rpc.ping", [{"x": "a" * (5 * 1024 * 1024)}]])
        try:
            c.send_raw(c.box(big))
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            m = c.read_msg()
            assert m[0] == 1 and m[2] and m[2]["code"] in (p2p.RESOURCE_EXHAUSTED, p2p.PARSE_ERROR,
                                                           p2p.INVALID_REQUEST), m
        except (EOFError, ConnectionResetError, p2p.HandshakeError, socket.timeout):
            pass  # closing the connection is a valid answer too
    finally:
        c.close()
    still_serving(e)
    assert rss_ok(e.a.rss_kb() - rss0, "an oversized frame"), "RSS grew %d kB" % (e.a.rss_kb() - rss0)


def test_goodbye_then_data(e):
    c = shaken(e)
    try:
        c.send_raw(c.goodbye())
        c.enc_nonce = p2p.nonce_add(c.enc_nonce, 2)
        try:
            c.send_raw(c.box(msgpack.packb([0, 3, "rpc.ping", []])))
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            for _ in range(3):
                m = c.read_msg()
                assert not (m[0] == 1 and m[1] == 3), "node answered a call sent after the goodbye"
        except (EOFError, ConnectionResetError, socket.timeout, p2p.HandshakeError):
            pass
    finally:
        c.close()
    still_serving(e)


def test_peer_vanishes_mid_call(e):
    for _ in range(5):
        c = shaken(e)
        c.send_msg([0, 5, "system.nosuch-node.node.info", [{"_token": e.tok, "_timeout": 2}]])
        c.send_msg([0, 6, "system.local.node.info", [{"_token": e.tok}]])
        c.close()
    time.sleep(0.5)
    still_serving(e)
    time.sleep(2.0)  # past the calls' deadlines: their replies go nowhere
    still_serving(e)


def test_peer_slow_reader(e):
    rss0 = e.a.rss_kb()
    c = shaken(e)
    try:
        c.sock.settimeout(0.2)
        blob = b"".join(c.box(msgpack.packb([0, i, "system.local.node.info", [{"_token": e.tok}]]))
                        for i in range(1, 3001))
        sent = 0
        t_end = time.monotonic() + 10
        while sent < len(blob) and time.monotonic() < t_end:
            try:
                sent += c.sock.send(blob[sent:sent + 65536])
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
        p2p.log("peer slow reader: wrote %d of %d bytes without reading" % (sent, len(blob)))
        still_serving(e)
        # read a little, slowly
        c.sock.settimeout(2)
        for _ in range(20):
            try:
                c.sock.recv(100)
            except (socket.timeout, OSError):
                break
            time.sleep(0.05)
        still_serving(e)
    finally:
        c.close()
    assert rss_ok(e.a.rss_kb() - rss0, "a slow peer reader"), "RSS grew %d kB" % (e.a.rss_kb() - rss0)


# --- local socket -----------------------------------------------------------------------------


def flood(e, method, params, n, auth):
    """Writes n calls without reading; returns (bytes written, seconds, the open client)."""
    c = p2p.Client(e.a.sock_path, timeout=5)
    if auth:
        c.auth(e.tok)
    one = [msgpack.packb([0, i, method, params]) for i in range(1, 1001)]
    blob = b"".join(one[(i - 1) % 1000] for i in range(1, n + 1))
    c.sock.settimeout(0.2)
    sent, t0 = 0, time.monotonic()
    stalls = 0
    while sent < len(blob) and time.monotonic() - t0 < 20:
        try:
            sent += c.sock.send(blob[sent:sent + 65536])
        except socket.timeout:
            stalls += 1
            if stalls > 25:  # 5 s without progress: the node stopped reading us (backpressure)
                break
        except (BrokenPipeError, ConnectionResetError):
            break
    return sent, len(blob), c


def count_replies(c, limit_s=20):
    codes = {}
    n = 0
    c.sock.settimeout(2)
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        try:
            m = c.read_msg()
        except (socket.timeout, EOFError, ConnectionResetError):
            break
        n += 1
        if m[0] == 1 and m[2] is not None:
            codes[m[2].get("code")] = codes.get(m[2].get("code"), 0) + 1
    return n, codes


def test_local_flood(e):
    for method, params, auth in (("rpc.ping", [], False), ("system.local.node.info", [{}], True)):
        rss0 = e.a.rss_kb()
        sent, total, c = flood(e, method, params, 100000, auth)
        rss1 = e.a.rss_kb()
        p2p.log("%s flood: wrote %d of %d bytes; RSS %d -> %d kB" % (method, sent, total, rss0, rss1))
        assert rss_ok(rss1 - rss0, method + " flood"), "RSS grew %d kB under the flood" % (rss1 - rss0)
        still_serving(e)  # a fresh client is served while the flooder sits unread
        n, codes = count_replies(c)
        rss2 = e.a.rss_kb()
        c.close()
        p2p.log("%s flood: %d replies read afterwards, errors %r; RSS %d kB" % (method, n, codes, rss2))
        assert rss_ok(rss2 - rss0, method + " flood, replies read"), "RSS grew %d kB" % (rss2 - rss0)
        other = {k: v for k, v in codes.items() if k != p2p.RESOURCE_EXHAUSTED}
        assert not other, "unexpected errors under the flood: %r" % other
        # either every call was taken and answered, or the node pushed back (stopped reading,
        # refused with RESOURCE_EXHAUSTED or closed): never a silent loss of an accepted call
        assert sent < total or n == 100000 or codes.get(p2p.RESOURCE_EXHAUSTED), \
            "all %d calls written but only %d answered" % (100000, n)
        still_serving(e)


def test_local_flood_bounded(e):
    """Memory stays bounded however many calls are written unread: 1,000,000 pings (13 MB) must
    not grow the node by more than the same 64 MB (the reply budget has to count what each queued
    reply really costs, not only its bytes)."""
    rss0 = e.a.rss_kb()
    sent, total, c = flood(e, "rpc.ping", [], 1000000, False)
    time.sleep(0.5)
    rss1 = e.a.rss_kb()
    p2p.log("1M rpc.ping flood: wrote %d of %d bytes; RSS %d -> %d kB" % (sent, total, rss0, rss1))
    try:
        still_serving(e)
    finally:
        c.close()
    assert rss_ok(rss1 - rss0, "1M pings"), "RSS grew %d kB under 1,000,000 unread pings" % (rss1 - rss0)
    still_serving(e)


def test_local_slow_reader(e):
    c = p2p.Client(e.a.sock_path, timeout=5)
    try:
        c.auth(e.tok)
        c.send_raw(b"".join(msgpack.packb([0, i, "system.local.node.info", [{}]]) for i in range(1, 501)))
        got = 0
        for _ in range(30):
            got += len(c.sock.recv(64))
            time.sleep(0.02)
            if _ % 10 == 0:
                still_serving(e)
        assert got > 0
    finally:
        c.close()
    still_serving(e)


# --- two nodes: calls through a peer that stops answering ------------------------------------


def test_forward_to_frozen_peer(e):
    p2p.wait_until(lambda: e.a.call("system.pb.node.info", {})["name"] == "pb", 30, what="pa reaching pb")
    e.b.signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        try:
            e.a.call("system.pb.node.info", {"_timeout": 2})
            raise AssertionError("a call to a frozen node succeeded")
        except p2p.RpcError as err:
            assert err.code in (p2p.TIMEOUT, p2p.UNAVAILABLE), err.err
        dt = time.monotonic() - t0
        p2p.log("call to frozen pb ended after %.2fs: deadline 2 s" % dt)
        assert dt < 2.5, "call to a frozen node ended after %.2fs, deadline 2 s" % dt
        still_serving(e)
    finally:
        e.b.signal(signal.SIGCONT)


def test_peer_killed_mid_call(e):
    p2p.wait_until(lambda: e.a.call("system.pb.node.info", {})["name"] == "pb", 30, what="pa reaching pb")
    e.b.signal(signal.SIGSTOP)
    c = p2p.Client(e.a.sock_path, timeout=10)
    try:
        c.auth(e.tok)
        c.send_raw(msgpack.packb([0, 42, "system.pb.node.info", [{"_timeout": 3}]]))
        time.sleep(0.5)
        t0 = time.monotonic()
        e.b.kill9()
        for _ in range(10):
            m = c.read_msg()
            if m[0] == 1 and m[1] == 42:
                break
        dt = time.monotonic() - t0 + 0.5
        p2p.log("call in flight when pb was killed: %r after %.2fs" % (m[2], dt))
        assert m[2] is not None and m[2]["code"] in (p2p.TIMEOUT, p2p.UNAVAILABLE), m
        assert dt < 3.5, "the call ended %.2fs after it was sent, deadline 3 s" % dt
    finally:
        c.close()
    still_serving(e)


def main():
    r = p2p.Runner()
    e = Env()
    r.run(test_positive_control, e)
    for t in (test_random_bytes, test_zero_hello, test_half_hello, test_hello_then_garbage_auth,
              test_wrong_network_key, test_js_client_wrong_network_key, test_wrong_server_key, test_many_half_open, test_bad_mac,
              test_oversized_box, test_oversized_rpc_frame, test_goodbye_then_data, test_peer_vanishes_mid_call,
              test_peer_slow_reader, test_local_flood, test_local_flood_bounded, test_local_slow_reader, test_forward_to_frozen_peer,
              test_peer_killed_mid_call):
        r.run(t, e)
    r.finish()


if __name__ == "__main__":
    main()
