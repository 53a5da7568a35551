#!/usr/bin/env python3
"""Native TLS of the HTTP API (--tls-cert/--tls-key, src/http/tls.c) with real clients:

- Python's ssl (OpenSSL) verifies the node's certificate and gets /health, keep-alive over one TLS
  connection, a 1 MB request body both ways through JSON-RPC (echoed in the error of bad JSON);
- curl (when installed) does the same;
- WSS: the WebSocket handshake and a JSON-RPC call over TLS;
- a plaintext HTTP request on the TLS port, a garbage ClientHello and a TLS 1.1 client are refused
  and the node keeps serving;
- a missing key file, a key that does not match the certificate, and only one of the two flags stop
  the node at start with exit code 2 and a line naming the problem.
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402
import ws_client as wsc  # noqa: E402

HOST = "127.0.0.1"


def make_cert(d, name):
    key, cert = os.path.join(d, name + ".key"), os.path.join(d, name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def tls_ctx(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    return ctx


def https(ctx, port, reqs):
    """Sends raw requests (bytes) on one TLS connection; returns the raw answer bytes."""
    raw = socket.create_connection((HOST, port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=HOST)
    for r in reqs:
        s.sendall(r)
    s.settimeout(3)
    out = b""
    try:
        while True:
            d = s.recv(1 << 16)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    s.close()
    return out


def health_ok(ctx, port):
    out = https(ctx, port, [b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    body = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert body["status"] == "ok", body


def test_https(node, ctx):
    health_ok(ctx, node.http_port)
    # keep-alive: three requests on one TLS connection
    out = https(ctx, node.http_port, [b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"] * 2 +
                [b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"])
    assert out.count(b"HTTP/1.1 200 OK") == 3, out[:300]
    # a 1 MB body in, an answer naming part of it out (bad JSON is reported with its text)
    body = b"x" * (1 << 20)
    out = https(ctx, node.http_port, [b"POST /api/rpc HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                      b"Content-Length: %d\r\n\r\n" % len(body) + body])
    assert out.startswith(b"HTTP/1.1 400"), out[:200]
    assert b"-32700" in out, out[:300]


def test_curl(node, cert):
    curl = shutil.which("curl")
    assert curl, "curl is needed (Debian package curl)"
    r = subprocess.run([curl, "-sS", "--cacert", cert, "https://%s:%d/health" % (HOST, node.http_port)],
                       capture_output=True, timeout=20)
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "ok", r


def test_wss(node, ctx):
    raw = socket.create_connection((HOST, node.http_port), timeout=10)
    s = ctx.wrap_socket(raw, server_hostname=HOST)
    req, _ = wsc.handshake_request(HOST, node.http_port, path="/ws?access_token=" + node.token())
    s.sendall(req)
    status, _, _, _ = wsc.read_http_response(s)
    assert status == 101, status
    s.sendall(wsc.frame(wsc.TEXT, json.dumps({"id": 7, "method": "rpc.ping"}).encode()))
    s.settimeout(5)
    buf = b""
    while len(buf) < 2:
        buf += s.recv(4096)
    ln = buf[1] & 0x7F
    while len(buf) < 2 + ln:
        buf += s.recv(4096)
    msg = json.loads(buf[2:2 + ln])
    assert msg.get("id") == 7 and msg.get("result") == "pong", msg
    s.close()


def test_refusals(node, ctx):
    # plaintext HTTP on the TLS port: no HTTP answer, the connection ends
    s = socket.create_connection((HOST, node.http_port), timeout=5)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    try:
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    assert b"HTTP/1.1 200" not in got, got
    # garbage that looks like a TLS record
    s = socket.create_connection((HOST, node.http_port), timeout=5)
    s.sendall(b"\x16\x03\x01\x00\x10" + os.urandom(16) + os.urandom(2000))
    try:
        s.recv(4096)
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    # a client that offers at most TLS 1.1
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    try:
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pass
    raw = socket.create_connection((HOST, node.http_port), timeout=5)
    try:
        old.wrap_socket(raw).close()
        raise AssertionError("a TLS 1.1 client was accepted")
    except (ssl.SSLError, ConnectionResetError, OSError):
        pass
    raw.close()
    health_ok(ctx, node.http_port)


def test_bad_files(net, root, cert, key, other_key):
    cases = [
        (["--tls-cert", cert, "--tls-key", os.path.join(root, "missing.key")], "missing.key"),
        (["--tls-cert", cert, "--tls-key", other_key], "key"),
        (["--tls-cert", cert], "tls-key"),
    ]
    for i, (flags, word) in enumerate(cases):
        n = p2p.Node(net, "bad%d" % i, root, extra=flags)
        os.makedirs(n.data_dir, exist_ok=True)
        r = subprocess.run(n.argv(), env=net.env(), capture_output=True, timeout=20)
        err = r.stderr.decode() + r.stdout.decode()
        assert r.returncode == 2, (flags, r.returncode, err)
        assert word in err, (flags, err)


def main():
    root = p2p.tmpdir()
    cert, key = make_cert(root, "node")
    _, other_key = make_cert(root, "other")
    net = p2p.Network()
    node = p2p.Node(net, "tls1", root, extra=["--tls-cert", cert, "--tls-key", key]).start()
    node.wait_ready()
    ctx = tls_ctx(cert)
    p2p.wait_until(lambda: health_ok(ctx, node.http_port) is None, 10, what="HTTPS /health")
    r = p2p.Runner()
    r.run(test_https, node, ctx)
    r.run(test_curl, node, cert)
    r.run(test_wss, node, ctx)
    r.run(test_refusals, node, ctx)
    r.run(test_bad_files, net, root, cert, key, other_key)
    r.finish()


if __name__ == "__main__":
    main()
