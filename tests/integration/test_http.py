#!/usr/bin/python3
"""test_http.py: the HTTP API of real p2p-node processes at the wire level (CONTRACT section 6).

Every endpoint: /health (no auth), /api/info, /api/stats, /api/peers, /api/nodes (viewer token:
401 without one or with a bad one, 200 with one; /api/nodes lists every node of a 3-node network),
/metrics (text format 0.0.4), /api/sd/prometheus (lists every node), GET / (the dashboard from
admin-ui/ or 404). Protocol: unknown paths 404 and wrong methods 405 (with Allow) with the CONTRACT
error body, HEAD without a body, keep-alive, pipelining (answers in order), a chunked request body,
Expect: 100-continue, CORS (off by default; CORS_ORIGINS: preflight 204, Vary: Origin, other
origins get nothing), the per-address rate limit (429 with Retry-After and a JSON error, connection
kept), Date and Content-Length on every answer.

The client is written here from RFC 9112 on raw sockets (HttpConn), so every byte the server sends
is seen; test_http_bad_input.py imports it.
Usage: test_http.py BUILD_DIR
"""

import email.utils
import json
import os
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402

# --- a raw HTTP/1.1 client -------------------------------------------------------------------


class Resp:
    """One parsed response: status, reason, version, headers [(lower name, value)], body bytes."""

    def __init__(self, version, status, reason, headers, body, raw_head):
        self.version, self.status, self.reason = version, status, reason
        self.headers, self.body, self.raw_head = headers, body, raw_head

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise AssertionError("%d body is not JSON: %r" % (self.status, self.body[:300]))

    def __repr__(self):
        return "<%d %s %r %r>" % (self.status, self.reason, self.headers, self.body[:300])


class HttpConn:
    """One TCP connection; requests are written raw, responses parsed from a buffer (pipelining)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None):
        self.port = port
        self.sock = socket.create_connection((host, port), timeout,
                                             source_address=(source, 0) if source else None)
        self.sock.settimeout(timeout)
        self.buf = b""

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("server closed the connection (buffered: %r)" % self.buf[:200])
        self.buf += d

    def _line(self, limit=1 << 20):
        while b"\r\n" not in self.buf:
            assert len(self.buf) < limit, "no line end in %d bytes" % len(self.buf)
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_response(self, head=False):
        """The next response (an interim 1xx too). head: the request was HEAD (no body)."""
        while b"\r\n\r\n" not in self.buf:
            assert len(self.buf) < (1 << 20), "response head over 1 MB"
            self._fill()
        raw_head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw_head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        assert len(parts) >= 2 and parts[0].startswith("HTTP/1."), "bad status line %r" % lines[0]
        status = int(parts[1])
        headers = []
        for ln in lines[1:]:
            assert ":" in ln, "bad header line %r" % ln
            k, v = ln.split(":", 1)
            assert k == k.strip() and k, "bad header name %r" % k
            headers.append((k.lower(), v.strip()))
        r = Resp(parts[0], status, parts[2] if len(parts) > 2 else "", headers, b"", raw_head)
        if head or status < 200 or status in (204, 304):
            return r
        te = (r.header("transfer-encoding") or "").lower()
        if te:
            assert te == "chunked", "unexpected Transfer-Encoding %r" % te
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line() != b"":
                        pass
                    break
                body += self._exact(size)
                assert self._exact(2) == b"\r\n", "chunk not followed by CRLF"
            r.body = body
        elif r.header("content-length") is not None:
            r.body = self._exact(int(r.header("content-length")))
        else:  # delimited by the close
            try:
                while True:
                    self._fill()
            except EOFError:
                pass
            r.body, self.buf = self.buf, b""
        return r

    def request(self, method, path, headers=None, body=None, version="HTTP/1.1", host=True):
        self.send(build(method, path, headers, body, version, host))
        return self.read_response(head=(method == "HEAD"))

    def closed_by_peer(self, timeout=5.0):
        """True when the server closed (EOF or reset) within timeout; False when it stayed open.
        Bytes that arrive meanwhile are kept in the buffer (and mean: not closed yet)."""
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        finally:
            self.sock.settimeout(10.0)
        if not d:
            return True
        self.buf += d
        return False

    def drain_to_eof(self, timeout=10.0):
        """Reads until the server closes; returns what arrived. Raises if it stays open."""
        deadline = time.monotonic() + timeout
        out = self.buf
        self.buf = b""
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return out
            if not d:
                return out
            out += d
        raise AssertionError("server did not close within %ss (got %r)" % (timeout, out[:300]))


class _Parsed(HttpConn):
    """Parses responses out of bytes already received."""

    def __init__(self, data):  # noqa: super not called: no socket
        self.buf, self.sock = data, None

    def _fill(self):
        raise EOFError("incomplete response: %r" % self.buf[:200])


def parse_response(data, head=False):
    """The first response in data (bytes)."""
    return _Parsed(data).read_response(head)


def build(method, path, headers=None, body=None, version="HTTP/1.1", host=True):
    """The bytes of one request; Content-Length added for a body unless a length header is given."""
    hs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    names = [k.lower() for k, _ in hs]
    if host and "host" not in names:
        hs.insert(0, ("Host", "127.0.0.1"))
    if isinstance(body, str):
        body = body.encode()
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        hs.append(("Content-Length", str(len(body))))
    head = "%s %s %s\r\n" % (method, path, version) + "".join("%s: %s\r\n" % kv for kv in hs) + "\r\n"
    return head.encode("latin-1") + (body or b"")


def send_until_answer(conn, data, timeout=20.0, step=65536):
    """Writes data while watching for an answer; stops writing once the server answers or stops
    reading. Returns the number of bytes written. (A server that refuses a request early must not
    make the client's write hang or lose its answer.)"""
    s = conn.sock
    s.setblocking(False)
    sent = 0
    deadline = time.monotonic() + timeout
    try:
        while sent < len(data) and time.monotonic() < deadline:
            r, w, _ = select.select([s], [s], [], 0.5)
            if r:
                break
            if w:
                try:
                    sent += s.send(data[sent:sent + step])
                except (BlockingIOError, InterruptedError):
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    break
    finally:
        s.setblocking(True)
        s.settimeout(10.0)
    return sent


def get(port, path, headers=None, method="GET", body=None, source=None):
    c = HttpConn(port, source=source)
    try:
        return c.request(method, path, headers, body)
    finally:
        c.close()


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


# --- checks shared by the tests ----------------------------------------------------------------


def check_common(r):
    """Date on every answer; Content-Length on every final answer that may carry a body."""
    d = r.header("date")
    assert d, "no Date header: %r" % r
    assert d.endswith(" GMT") and email.utils.parsedate_to_datetime(d), "bad Date %r" % d
    if r.status >= 200 and r.status not in (204, 304):
        cl = r.header("content-length")
        assert cl is not None and cl.isdigit(), "no Content-Length: %r" % r
        assert len(r.all("content-length")) == 1, "Content-Length twice: %r" % r
    return r


def check_error(r, status, code=None):
    """The CONTRACT error answer: status, application/json, {"error": {code, message[, data]}}."""
    check_common(r)
    assert r.status == status, "expected %d, got %r" % (status, r)
    ct = (r.header("content-type") or "").lower()
    assert ct.startswith("application/json"), "error Content-Type %r: %r" % (ct, r)
    j = r.json()
    assert isinstance(j, dict) and isinstance(j.get("error"), dict), "error body %r" % j
    e = j["error"]
    assert isinstance(e.get("code"), int) and not isinstance(e.get("code"), bool), "error code %r" % e
    assert isinstance(e.get("message"), str) and e["message"], "error message %r" % e
    assert set(e) <= {"code", "message", "data"}, "extra error members %r" % e
    if code is not None:
        assert e["code"] == code, "expected code %d, got %r" % (code, e)
    return e


def check_json(r, status=200):
    check_common(r)
    assert r.status == status, "expected %d, got %r" % (status, r)
    assert (r.header("content-type") or "").lower().startswith("application/json"), r
    return r.json()


# --- the environment ---------------------------------------------------------------------------

NAMES = ["http-a", "http-b", "http-c"]


class Env:
    def __init__(self):
        self.root = p2p.tmpdir("p2p-http-")
        self.net = p2p.MeshNetwork()
        self.nodes = p2p.start_mesh(self.net, self.root, NAMES)
        self.a = self.nodes[0]
        self.port = self.a.http_port
        self.viewer = self.a.token("viewer")
        self.admin = self.a.token("admin")
        p2p.wait_until(lambda: get(self.port, "/health").status == 200, 10, what="HTTP on " + NAMES[0])

    def single(self, name, env):
        """A one-node network of its own with extra environment variables."""
        net = p2p.MeshNetwork(extra_env=env)
        n = p2p.Node(net, name, self.root).start().wait_ready()
        p2p.wait_until(lambda: get(n.http_port, "/health").status == 200, 10, what="HTTP on " + name)
        return n


# --- endpoints -----------------------------------------------------------------------------------


def test_health(e):
    for n in e.nodes:
        j = check_json(get(n.http_port, "/health"))
        assert j.get("status") == "ok", j
        assert j.get("name") == n.name, j
        assert str(j.get("node_id")).lower() == n.node_id().lower(), (j, n.node_id())
        up = j.get("uptime_s")
        assert isinstance(up, (int, float)) and not isinstance(up, bool) and up >= 0, j


VIEWER_PATHS = ["/api/info", "/api/stats", "/api/peers", "/api/nodes"]


def test_viewer_endpoints_need_a_token(e):
    forged = p2p.resign_token(e.viewer, key=os.urandom(32))
    unsigned = p2p.resign_token(e.viewer, header={"alg": "none", "typ": "JWT"}, key=None)
    bad_auth = [None, {"Authorization": "Bearer not.a.jwt"}, {"Authorization": "Bearer "},
                {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": e.viewer},
                bearer(forged), bearer(unsigned), bearer(e.viewer[:-4] + "AAAA")]
    for path in VIEWER_PATHS:
        for h in bad_auth:
            r = get(e.port, path, h)
            check_error(r, 401, p2p.UNAUTHENTICATED)
            assert r.header("www-authenticate"), "401 without WWW-Authenticate (RFC 9110): %r" % r
        for tok in (e.viewer, e.admin):
            check_json(get(e.port, path, bearer(tok)))
        # the scheme name is case-insensitive (RFC 9110 11.1)
        check_json(get(e.port, path, {"Authorization": "bearer " + e.viewer}))


def test_api_info(e):
    j = check_json(get(e.port, "/api/info", bearer(e.viewer)))
    assert j.get("name") == e.a.name, j
    assert str(j.get("id")).lower() == e.a.node_id().lower(), j
    for k in ("version", "addresses", "services"):
        assert k in j, "/api/info lacks %r: %r" % (k, j)


def test_api_stats(e):
    j = check_json(get(e.port, "/api/stats", bearer(e.viewer)))
    assert isinstance(j, dict) and j, j
    text = json.dumps(j).lower()
    for part in ("dht", "rpc", "http"):
        assert part in text, "/api/stats has no %s counters: %r" % (part, j)


def test_api_peers(e):
    def peers():
        j = check_json(get(e.port, "/api/peers", bearer(e.viewer)))
        return set(p2p.p_id(p) for p in p2p.peer_list(j))
    others = set(n.node_id().lower() for n in e.nodes[1:])
    got = p2p.wait_until(lambda: peers() >= others and peers(), 30, what="/api/peers lists the others")
    assert e.a.node_id().lower() not in got, got


def test_api_nodes(e):
    def names():
        j = check_json(get(e.port, "/api/nodes", bearer(e.viewer)))
        ms = p2p.member_list(j)
        return {m.get("name"): m for m in ms}
    view = p2p.wait_until(lambda: (lambda v: v if set(NAMES) <= set(v) else None)(names()), 30,
                          what="/api/nodes lists all three")
    for n in e.nodes:
        m = view[n.name]
        assert str(m.get("id")).lower() == n.node_id().lower(), m
        assert "addresses" in m or "addrs" in m, "member without addresses: %r" % m
        assert any(k in m for k in ("last_seen", "last_seen_ms", "last_seen_s")), "no last seen: %r" % m


def test_metrics(e):
    r = get(e.port, "/metrics")
    check_common(r)
    assert r.status == 200, r
    ct = (r.header("content-type") or "").lower().replace(" ", "")
    assert ct.startswith("text/plain") and "version=0.0.4" in ct, "metrics Content-Type %r" % ct
    text = r.body.decode()
    assert "p2p_build_info{" in text and e.a.name in text, text[:500]
    assert "p2p_http_requests_total" in text, "no p2p_http_requests_total"


def test_sd_prometheus(e):
    def targets():
        r = get(e.port, "/api/sd/prometheus")
        j = check_json(r)
        assert isinstance(j, list), "SD answer is not a list of target groups: %r" % j
        out = []
        for g in j:
            assert isinstance(g.get("targets"), list), g
            assert isinstance(g.get("labels", {}), dict), g
            out += g["targets"]
        return out
    want = [":%d" % n.http_port for n in e.nodes]
    got = p2p.wait_until(lambda: (lambda t: t if all(any(x.endswith(w) for x in t) for w in want) else None)(
        targets()), 30, what="SD lists every node's metrics address")
    for w in want:
        assert any(x == "127.0.0.1" + w for x in got), (w, got)


def ui_candidates():
    exe = os.path.dirname(os.path.realpath(p2p.node_bin()))
    return [os.path.join(exe, "admin-ui"), os.path.join(exe, "..", "admin-ui"),
            os.path.join(exe, "..", "share", "p2p-admin", "admin-ui"), os.path.join(os.getcwd(), "admin-ui")]


def test_root_dashboard_or_404(e):
    found = [d for d in ui_candidates() if os.path.isfile(os.path.join(d, "index.html"))]
    r = get(e.port, "/")
    if found:
        check_common(r)
        assert r.status == 200, r
        assert (r.header("content-type") or "").lower().startswith("text/html"), r
        with open(os.path.join(found[0], "index.html"), "rb") as f:
            assert r.body == f.read(), "GET / is not %s/index.html" % found[0]
    else:
        check_error(r, 404)


def test_ui_dir_static(e):
    root = p2p.tmpdir("p2p-http-ui-")
    ui = os.path.join(root, "ui")
    os.makedirs(os.path.join(ui, "js"))
    index = b"<!doctype html><title>t</title><p>dashboard %s</p>\n" % os.urandom(8).hex().encode()
    with open(os.path.join(ui, "index.html"), "wb") as f:
        f.write(index)
    with open(os.path.join(ui, "js", "app.js"), "wb") as f:
        f.write(b"console.log(1);\n")
    with open(os.path.join(root, "secret.txt"), "wb") as f:
        f.write(b"SECRET-OUTSIDE-UI")
    n = e.single("http-ui", {"UI_DIR": ui})
    r = get(n.http_port, "/")
    check_common(r)
    assert r.status == 200 and r.body == index, r
    assert (r.header("content-type") or "").startswith("text/html"), r
    r = get(n.http_port, "/js/app.js")
    assert r.status == 200 and r.body == b"console.log(1);\n", r
    assert "javascript" in (r.header("content-type") or ""), r
    check_error(get(n.http_port, "/no-such-file.css"), 404)
    for p in ("/../secret.txt", "/js/../../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt",
              "/js/%2e%2e%2f%2e%2e%2fsecret.txt"):
        r = get(n.http_port, p)
        assert r.status in (400, 403, 404), "%s: %r" % (p, r)
        assert b"SECRET-OUTSIDE-UI" not in r.body, "%s served a file outside UI_DIR" % p
    n.stop_ok()


# --- protocol --------------------------------------------------------------------------------------


def test_unknown_path_404(e):
    for p in ("/api/nope", "/api/", "/nope", "/api/info/extra", "/healthz"):
        check_error(get(e.port, p, bearer(e.viewer)), 404)
    check_error(get(e.port, "/api/nope", method="POST", body="{}"), 404)


def test_wrong_method_405(e):
    for method, path, allowed in (("POST", "/health", "GET"), ("DELETE", "/api/info", "GET"),
                                  ("PUT", "/metrics", "GET"), ("GET", "/api/rpc", "POST"),
                                  ("GET", "/api/auth/login", "POST")):
        r = get(e.port, path, bearer(e.admin), method=method, body="" if method in ("POST", "PUT") else None)
        check_error(r, 405)
        allow = r.header("allow")
        assert allow and allowed in [x.strip() for x in allow.split(",")], "Allow %r for %s %s" % (
            allow, method, path)
        assert method not in [x.strip() for x in allow.split(",")], allow


def test_head_no_body(e):
    c = HttpConn(e.port)
    try:
        g = c.request("GET", "/health")
        h = c.request("HEAD", "/health")
        check_common(h)
        assert h.status == 200, h
        assert h.header("content-length") == g.header("content-length"), (g, h)
        # the next answer on the connection parses: the HEAD answer carried no body
        g2 = c.request("GET", "/health")
        assert g2.status == 200 and g2.json()["status"] == "ok", g2
        h = c.request("HEAD", "/api/nope")
        assert h.status == 404, h
        c.request("HEAD", "/metrics")
        assert c.request("GET", "/health").json()["status"] == "ok"
        assert not c.closed_by_peer(0.3), "connection closed after HEAD"
        assert c.buf == b"", "bytes after the answers: %r" % c.buf[:200]
    finally:
        c.close()


def test_keep_alive(e):
    c = HttpConn(e.port)
    try:
        for path, status in (("/health", 200), ("/api/info", 401), ("/nope", 404), ("/metrics", 200),
                             ("/health", 200)):
            r = c.request("GET", path)
            check_common(r)
            assert r.status == status, (path, r)
            assert (r.header("connection") or "").lower() != "close", r
        r = c.request("GET", "/api/info", bearer(e.viewer))
        assert r.status == 200, r
        assert not c.closed_by_peer(0.3), "server closed a keep-alive connection"
        # Connection: close is honoured: answered, then closed
        r = c.request("GET", "/health", {"Connection": "close"})
        assert r.status == 200 and (r.header("connection") or "").lower() == "close", r
        assert c.closed_by_peer(5), "not closed after Connection: close"
    finally:
        c.close()


def test_pipelining(e):
    c = HttpConn(e.port)
    try:
        c.send(build("GET", "/health") + build("GET", "/nope") + build("GET", "/metrics"))
        r1, r2, r3 = c.read_response(), c.read_response(), c.read_response()
        assert r1.status == 200 and r1.json()["name"] == e.a.name, r1
        check_error(r2, 404)
        assert r3.status == 200 and b"p2p_build_info" in r3.body, r3
        # a slow answer (an RPC bridge call) ahead of a fast one: order is kept
        call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "system.local.node.info", "params": {}})
        c.send(build("POST", "/api/rpc", {"Content-Type": "application/json", **bearer(e.viewer)}, call)
               + build("HEAD", "/health") + build("GET", "/api/info", bearer(e.viewer)))
        r1 = c.read_response()
        r2 = c.read_response(head=True)
        r3 = c.read_response()
        assert r1.status == 200 and r1.json().get("id") == 1 and "result" in r1.json(), r1
        assert r2.status == 200 and r2.body == b"", r2
        assert r3.status == 200 and r3.json().get("name") == e.a.name, r3
        assert not c.closed_by_peer(0.3)
    finally:
        c.close()


def rpc_body(mid=7):
    return json.dumps({"jsonrpc": "2.0", "id": mid, "method": "system.local.node.info", "params": {}}).encode()


def test_chunked_request_body(e):
    body = rpc_body()
    parts = [body[:5], body[5:20], body[20:]]
    c = HttpConn(e.port)
    try:
        c.send(build("POST", "/api/rpc", [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked"),
                                          ("Authorization", "Bearer " + e.viewer)]))
        for i, p in enumerate(parts):
            size = ("%x" if i % 2 == 0 else "%X") % len(p)
            ext = ";name=value" if i == 1 else ""
            c.send(size.encode() + ext.encode() + b"\r\n" + p + b"\r\n")
            time.sleep(0.05)
        c.send(b"0\r\n\r\n")
        j = check_json(c.read_response())
        assert j.get("jsonrpc") == "2.0" and j.get("id") == 7, j
        assert str(j["result"]["id"]).lower() == e.a.node_id().lower(), j
        # one write of a chunked request followed by a plain one
        c.send(build("POST", "/api/rpc", [("Transfer-Encoding", "chunked"), ("Authorization", "Bearer " + e.viewer)])
               + b"%x\r\n%s\r\n0\r\n\r\n" % (len(rpc_body(8)), rpc_body(8)) + build("GET", "/health"))
        assert c.read_response().json().get("id") == 8
        assert c.read_response().json().get("status") == "ok"
    finally:
        c.close()


def test_expect_100_continue(e):
    body = rpc_body(9)
    c = HttpConn(e.port)
    try:
        c.send(build("POST", "/api/rpc", [("Content-Type", "application/json"), ("Expect", "100-continue"),
                                          ("Content-Length", str(len(body))),
                                          ("Authorization", "Bearer " + e.viewer)]))
        r = c.read_response()
        assert r.status == 100, "expected 100 Continue before the body, got %r" % r
        c.send(body)
        j = check_json(c.read_response())
        assert j.get("id") == 9 and "result" in j, j
        # without a body a 100 may be sent or not (RFC 9110 10.1.1); the answer follows either way
        r = c.request("GET", "/health", {"Expect": "100-continue"})
        if r.status == 100:
            r = c.read_response()
        assert r.status == 200, r
        assert c.request("GET", "/health").status == 200
    finally:
        c.close()


ORIGIN_OK = "http://good.example:3000"
ORIGIN_OK2 = "https://other.example"
ORIGIN_BAD = "http://evil.example"


def preflight(port, origin, path="/api/info"):
    return get(port, path, {"Origin": origin, "Access-Control-Request-Method": "GET",
                            "Access-Control-Request-Headers": "authorization"}, method="OPTIONS")


def test_cors_off_by_default(e):
    for r in (get(e.port, "/health", {"Origin": ORIGIN_OK}),
              get(e.port, "/api/info", {"Origin": ORIGIN_OK, **bearer(e.viewer)}),
              preflight(e.port, ORIGIN_OK)):
        assert r.header("access-control-allow-origin") is None, "CORS answered while off: %r" % r
        assert r.header("access-control-allow-credentials") is None, r
    assert preflight(e.port, ORIGIN_OK).status != 204


def test_cors_origins(e):
    n = e.single("http-cors", {"CORS_ORIGINS": ORIGIN_OK + "," + ORIGIN_OK2})
    tok = n.token("viewer")
    for origin in (ORIGIN_OK, ORIGIN_OK2):
        r = preflight(n.http_port, origin)
        check_common(r)
        assert r.status == 204, "preflight of an allowed origin: %r" % r
        assert r.header("access-control-allow-origin") == origin, r
        assert "origin" in (r.header("vary") or "").lower(), "no Vary: Origin: %r" % r
        methods = [m.strip() for m in (r.header("access-control-allow-methods") or "").split(",")]
        assert "GET" in methods, r
        hdrs = (r.header("access-control-allow-headers") or "").lower()
        assert "authorization" in hdrs, r
        assert r.body == b"", r
        r = get(n.http_port, "/api/info", {"Origin": origin, **bearer(tok)})
        assert r.status == 200 and r.header("access-control-allow-origin") == origin, r
        assert "origin" in (r.header("vary") or "").lower(), r
        # the error answers carry it too, so the page can read them
        r = get(n.http_port, "/api/info", {"Origin": origin})
        check_error(r, 401)
        assert r.header("access-control-allow-origin") == origin, r
    for origin in (ORIGIN_BAD, ORIGIN_OK + "/", "http://good.example:3001", "null"):
        r = get(n.http_port, "/health", {"Origin": origin})
        assert r.status == 200 and r.header("access-control-allow-origin") is None, (origin, r)
        r = preflight(n.http_port, origin)
        assert r.header("access-control-allow-origin") is None, (origin, r)
        assert r.status != 204, "preflight of a refused origin answered 204: %r" % r
    r = get(n.http_port, "/health")  # no Origin: a plain answer
    assert r.status == 200 and r.header("access-control-allow-origin") is None, r
    n.stop_ok()


def test_rate_limit(e):
    n = e.single("http-rate", {"HTTP_RATE_LIMIT": "5", "HTTP_RATE_BURST": "5"})
    c = HttpConn(n.http_port)
    try:
        time.sleep(1.5)  # the start-up check took a token: at 5/s the bucket is full again after 1 s
        t0 = time.monotonic()
        c.send(b"".join(build("GET", "/health") for _ in range(20)))
        rs = [c.read_response() for _ in range(20)]
        took = time.monotonic() - t0
        ok = [r for r in rs if r.status == 200]
        limited = [r for r in rs if r.status == 429]
        assert len(ok) + len(limited) == 20, [r.status for r in rs]
        assert rs[0].status == 200, rs[0]
        # burst 5, plus what 5/s refilled while the burst was read
        assert 5 <= len(ok) <= 5 + int(5 * took) + 1, ([r.status for r in rs], took)
        for r in limited:
            check_error(r, 429, p2p.RESOURCE_EXHAUSTED)
            ra = r.header("retry-after")
            assert ra and ra.isdigit() and int(ra) >= 1, "Retry-After %r" % ra
            assert (r.header("connection") or "").lower() != "close", "429 closes the connection: %r" % r
        assert not c.closed_by_peer(0.3), "connection dropped after 429s"
        # another client address is not limited by this one
        r = get(n.http_port, "/health", source="127.0.0.2")
        assert r.status == 200, r
        # the same connection is served again once tokens come back
        wait = int(limited[-1].header("retry-after"))
        time.sleep(min(wait, 5))

        def served():
            return c.request("GET", "/health").status == 200
        p2p.wait_until(served, 10, interval=0.3, what="a 200 again on the rate-limited connection")
    finally:
        c.close()
    n.stop_ok()


def test_date_and_length_everywhere(e):
    c = HttpConn(e.port)
    try:
        for method, path, h, body in (("GET", "/health", None, None), ("GET", "/api/info", None, None),
                                      ("GET", "/nope", None, None), ("POST", "/health", None, ""),
                                      ("GET", "/metrics", None, None), ("GET", "/api/sd/prometheus", None, None),
                                      ("POST", "/api/rpc", bearer(e.viewer), rpc_body()),
                                      ("GET", "/api/nodes", bearer(e.viewer), None)):
            r = c.request(method, path, h, body)
            check_common(r)
            assert int(r.header("content-length")) == len(r.body), r
    finally:
        c.close()


def test_http10(e):
    c = HttpConn(e.port)
    try:
        r = c.request("GET", "/health", version="HTTP/1.0", host=False)
        check_common(r)
        assert r.status == 200 and r.json()["status"] == "ok", r
        assert c.closed_by_peer(5), "HTTP/1.0 without keep-alive left open"
    finally:
        c.close()
    c = HttpConn(e.port)
    try:  # HTTP/1.0 asking for keep-alive may keep the connection; it must be answered either way
        r = c.request("GET", "/health", {"Connection": "keep-alive"}, version="HTTP/1.0")
        assert r.status == 200, r
        if (r.header("connection") or "").lower() == "keep-alive":
            assert c.request("GET", "/health", {"Connection": "keep-alive"}, version="HTTP/1.0").status == 200
    finally:
        c.close()


TESTS = (test_health, test_viewer_endpoints_need_a_token, test_api_info, test_api_stats, test_api_peers,
         test_api_nodes, test_metrics, test_sd_prometheus, test_root_dashboard_or_404, test_ui_dir_static,
         test_unknown_path_404, test_wrong_method_405, test_head_no_body, test_keep_alive, test_pipelining,
         test_chunked_request_body, test_expect_100_continue, test_cors_off_by_default, test_cors_origins,
         test_rate_limit, test_date_and_length_everywhere, test_http10)


def test_nodes_still_running(e):
    for n in e.nodes:
        assert n.alive(), "%s died; log tail:\n%s" % (n.name, n.log_tail())
        assert get(n.http_port, "/health").status == 200


def main():
    r = p2p.Runner()
    e = Env()
    only = [a for a in sys.argv[1:] if a.startswith("test_")]  # e.g. test_http.py build test_pipelining
    for t in TESTS + (test_nodes_still_running,):
        if not only or t.__name__ in only or t is test_nodes_still_running:
            r.run(t, e)
    r.finish()


if __name__ == "__main__":
    main()
