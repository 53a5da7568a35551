#!/usr/bin/python3
"""test_http_bad_input.py: hostile HTTP input against a real node, which must answer with the
status that fits (CONTRACT section 6, limits in src/http/http-limits.h) and keep serving /health
on a new connection after each case.

Malformed request lines, bad versions, bad header lines, NUL bytes and bare CRs; request smuggling
(Content-Length with Transfer-Encoding, two different lengths, obfuscated Transfer-Encoding, bad
chunk sizes) refused with 400 and the connection closed so nothing after it is read as a request;
the limits at and past their edge: 64/65 headers, 16 KiB of headers, 1 MB of headers (431, no
crash, no hang), a 4096/4097-byte target (414), an 8 MiB/8 MiB+1 body (413, also chunked and with
Expect: 100-continue); slowloris (a header byte a second: 408 and close within the 10 s header
timeout); 10,000 idle connections (every one accepted, /health still answered, RSS bounded); bad
JSON, invalid UTF-8 and NUL bytes in JSON bodies (400, never a crash); HTTP/1.0 closes.
Usage: test_http_bad_input.py BUILD_DIR
"""

import os
import resource
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402
from test_http import HttpConn, parse_response, build, check_error, check_common, send_until_answer, get, bearer  # noqa: E402

MAX_HEADER_BYTES = 16 * 1024  # http-limits.h
MAX_HEADERS = 64
MAX_URL = 4096
MAX_BODY = 8 * 1024 * 1024
HEADER_TIMEOUT_S = 10.0
IDLE_CONNS = 10000
RSS_GROWTH_MAX_KB = 64 * 1024  # over the whole run
IDLE_CONN_RSS_MAX_KB = 40 * 1024  # for 10,000 idle connections: 4 KB each at most
PARSE_ERROR = -32700
BAD_MESSAGES = []  # refusals whose message is the parser's internals (reported by one test)


class Env:
    def __init__(self):
        self.root = p2p.tmpdir("p2p-http-bad-")
        # the per-address limiter is tested in test_http.py; here it would turn a check into a 429
        self.net = p2p.MeshNetwork(extra_env={"HTTP_RATE_LIMIT": "0"})
        self.n = p2p.Node(self.net, "http-bad", self.root).start().wait_ready()
        self.port = self.n.http_port
        self.viewer = self.n.token("viewer")
        p2p.wait_until(lambda: get(self.port, "/health").status == 200, 10, what="HTTP up")
        for _ in range(20):
            get(self.port, "/health")
        self.rss0 = self.n.rss_kb()


def still_serving(e, what=""):
    assert e.n.alive(), "node died after %s; log tail:\n%s" % (what, e.n.log_tail())
    r = get(e.port, "/health")
    assert r.status == 200 and r.json()["status"] == "ok", "after %s: %r" % (what, r)


def refused(e, raw, statuses, what, code=None, close=True):
    """Sends raw bytes on a new connection; expects one answer with a status in statuses, an error
    body, and (close) the connection closed afterwards with nothing else answered."""
    if isinstance(statuses, int):
        statuses = (statuses,)
    c = HttpConn(e.port)
    try:
        send_until_answer(c, raw)
        try:
            r = c.read_response()
        except (EOFError, ConnectionResetError) as ex:
            raise AssertionError("%s: closed without an answer (%s)" % (what, ex))
        assert r.status in statuses, "%s: expected %s, got %r" % (what, statuses, r)
        err = check_error(r, r.status, code)
        if "callback" in err["message"].lower():  # llhttp's own wording, not the server's reason
            BAD_MESSAGES.append("%s: %d %r" % (what, r.status, err["message"]))
        if close:
            rest = c.drain_to_eof(10)
            assert b"HTTP/1." not in rest, "%s: a second answer after the refusal: %r" % (what, rest[:300])
        return r
    finally:
        c.close()
        still_serving(e, what)


class Cases:
    """Runs refused() over many cases, collecting the failures so that one does not hide the rest."""

    def __init__(self, e):
        self.e, self.failures = e, []

    def refused(self, *a, **kw):
        try:
            refused(self.e, *a, **kw)
        except AssertionError as ex:
            self.failures.append(str(ex).split("\n")[0][:400])

    def done(self):
        assert not self.failures, "%d case(s) failed:\n  %s" % (len(self.failures), "\n  ".join(self.failures))


# --- request lines and versions -------------------------------------------------------------------


def test_malformed_request_lines(e):
    k = Cases(e)
    # HTTP/0.9 (no version): 505 or 400
    k.refused(b"GET /health\r\n\r\n", (400, 505), "HTTP/0.9 request line")
    for raw in (b"GET\r\n\r\n", b"GET /health HTTP/1.1 extra\r\nHost: x\r\n\r\n",
                b" GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                b"G@T /health HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /he alth HTTP/1.1\r\nHost: x\r\n\r\n",
                b"/health HTTP/1.1\r\nHost: x\r\n\r\n",
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(64),  # a TLS ClientHello
                b"\xff\xfe\xfd\r\n\r\n", b"GET /h\x7fealth HTTP/1.1\r\nHost: x\r\n\r\n"):
        k.refused(raw, 400, "request line %r" % raw[:40])
    k.done()


def test_bad_versions(e):
    k = Cases(e)
    for v in (b"HTTP/1.2", b"HTTP/2.0", b"HTTP/3.0", b"HTTP/9.9", b"HTTP/1", b"HTTP/11", b"HTTP/1.10",
              b"HTTPS/1.1", b"http/1.1", b"HTTP/1.1x", b"HTTP/-1.1"):
        k.refused(b"GET /health " + v + b"\r\nHost: x\r\n\r\n", (400, 505), "version %r" % v)
    k.done()


def test_bad_header_lines(e):
    k = Cases(e)
    for h in (b"NoColon", b"Bad Name: x", b"Bad\x00Name: x", b": empty-name", b"X-A: a\x00b", b"X-A: a\rb",
              b"X-Fold: a\r\n folded", b"X-A\t: tab-before-colon", b"(X): y", b"X-A: \x01"):
        k.refused(b"GET /health HTTP/1.1\r\nHost: x\r\n" + h + b"\r\n\r\n", 400, "header %r" % h)
    k.done()


def test_nul_bytes(e):
    k = Cases(e)
    for raw in (b"GET /hea\x00lth HTTP/1.1\r\nHost: x\r\n\r\n", b"GET\x00/health HTTP/1.1\r\n\r\n",
                b"\x00" * 64, b"GET /health HTTP/1.1\x00\r\nHost: x\r\n\r\n"):
        k.refused(raw, 400, "NUL in %r" % raw[:40])
    k.done()


# --- smuggling: the length of the body must be unambiguous ------------------------------------------


SMUGGLED = b"GET /health HTTP/1.1\r\nHost: smuggled\r\n\r\n"
# The framing cases POST to /health: were a request accepted, its answer would be 405 (the method),
# so a 400 can only come from the refusal of the framing itself.


def test_smuggling_cl_te(e):
    k = Cases(e)
    chunked = b"0\r\n\r\n"
    cases = [
        # CL.TE: a front end using Content-Length would forward the smuggled request as body
        [b"Content-Length: %d" % (len(chunked) + len(SMUGGLED)), b"Transfer-Encoding: chunked"],
        # TE.CL: a front end using Transfer-Encoding forwards everything, a back end using CL splits it
        [b"Transfer-Encoding: chunked", b"Content-Length: 3"],
        [b"Content-Length: 0", b"Transfer-Encoding: chunked"],
        [b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"],
        [b"Transfer-Encoding: identity", b"Content-Length: 5"],
        [b"Transfer-Encoding: chunked, identity"],
        [b"Transfer-Encoding: xchunked"],
        [b"Transfer-Encoding: chunkedx"],
        [b"Transfer-Encoding : chunked"],
        [b"Transfer-Encoding:\x0bchunked"],
        [b"Transfer-Encoding: \"chunked\""],
        [b"Transfer-Encoding:", b"Content-Length: 5"],
    ]
    for hs in cases:
        raw = b"POST /health HTTP/1.1\r\nHost: x\r\n" + b"".join(h + b"\r\n" for h in hs) + b"\r\n" + chunked + SMUGGLED
        k.refused(raw, (400, 501), "smuggling %r" % hs)
    # an unsupported coding before chunked: 501 (RFC 9112 6.1) or 400
    k.refused(b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + SMUGGLED,
            (400, 501), "gzip, chunked")
    k.done()


def test_two_content_lengths(e):
    k = Cases(e)
    for hs in ([b"Content-Length: 5", b"Content-Length: 6"], [b"Content-Length: 5, 6"],
               [b"Content-Length: 6", b"content-length: 5"], [b"Content-Length: 5", b"Content-Length: 5, 5, 0"]):
        raw = b"POST /health HTTP/1.1\r\nHost: x\r\n" + b"".join(h + b"\r\n" for h in hs) + b"\r\n{}{}{}" + SMUGGLED
        k.refused(raw, 400, "lengths %r" % hs)
    k.done()


def test_bad_content_lengths(e):
    k = Cases(e)
    for v in (b"+5", b"-1", b"0x5", b"5 5", b"5a", b"", b" ", b"1e3", b"5.0"):
        raw = b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: " + v + b"\r\n\r\n{}{}{}" + SMUGGLED
        k.refused(raw, 400, "Content-Length %r" % v)
    raw = b"POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"
    k.refused(raw, (400, 413), "Content-Length overflowing 64 bits")
    k.done()


def test_bad_chunk_sizes(e):
    k = Cases(e)
    head = b"POST /health HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    for chunk in (b"zz\r\n", b"-1\r\nx\r\n0\r\n\r\n", b"0x2\r\n{}\r\n0\r\n\r\n", b" 2\r\n{}\r\n0\r\n\r\n",
                  b"ffffffffffffffffffff\r\n", b"2\r\n{}XX0\r\n\r\n", b"\r\n{}\r\n0\r\n\r\n",
                  b"2;\x00\r\n{}\r\n0\r\n\r\n", b"2\r\n{}\r\n0\r\nbad trailer\r\n\r\n"):
        k.refused(head + chunk + SMUGGLED, 400, "chunk %r" % chunk)
    k.done()


# --- limits ---------------------------------------------------------------------------------------


def test_header_count(e):
    ok = [("X-H-%d" % i, "v") for i in range(MAX_HEADERS - 1)]  # with Host: exactly 64
    c = HttpConn(e.port)
    try:
        r = c.request("GET", "/health", ok)
        assert r.status == 200, "64 headers refused: %r" % r
    finally:
        c.close()
    raw = build("GET", "/health", ok + [("X-One-Too-Many", "v")])
    refused(e, raw, 431, "65 headers", code=None)
    refused(e, build("GET", "/health", [("X-H-%d" % i, "v") for i in range(1000)]), 431, "1,000 headers")


def test_header_bytes(e):
    r = get(e.port, "/health", {"X-Big": "a" * (MAX_HEADER_BYTES - 4096)})
    assert r.status == 200, "12 KiB of headers refused: %r" % r
    refused(e, build("GET", "/health", {"X-Big": "a" * (MAX_HEADER_BYTES + 1024)}), 431, "17 KiB header")
    many = [("X-%d" % i, "b" * 400) for i in range(50)]  # 20 KB over 50 lines
    refused(e, build("GET", "/health", many), 431, "20 KB over 50 headers")


def test_one_megabyte_of_headers(e):
    for raw in (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Huge: " + b"h" * (1 << 20) + b"\r\n\r\n",
                b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000)
                                                              for i in range(1024)) + b"\r\n",
                b"GET /health HTTP/1.1\r\nHost: x\r\nX" + b"n" * (1 << 20) + b": v\r\n\r\n"):
        t = time.monotonic()
        refused(e, raw, 431, "1 MB of headers")
        p2p.log("1 MB of headers refused in %.2fs" % (time.monotonic() - t))


def test_url_length(e):
    path = "/" + "a" * (MAX_URL - 1)
    r = get(e.port, path)
    assert r.status == 404, "a 4096-byte target: %r" % r
    refused(e, build("GET", path + "a"), 414, "4097-byte target")
    refused(e, build("GET", "/health?" + "q" * MAX_URL), 414, "long query")
    refused(e, build("GET", "/" + "u" * (1 << 20)), 414, "1 MB target")


def test_body_size(e):
    # exactly the limit is read (the method is then wrong: 405, not 413)
    c = HttpConn(e.port)
    try:
        c.send(build("POST", "/health", {"Content-Length": str(MAX_BODY)}))
        c.send(b" " * MAX_BODY)
        r = c.read_response()
        assert r.status == 405, "an 8 MiB body: %r" % r
    finally:
        c.close()
    still_serving(e, "8 MiB body")
    # one byte more: refused from the header, without reading the body
    refused(e, build("POST", "/api/rpc", {"Content-Length": str(MAX_BODY + 1)}), 413, "8 MiB + 1 (length)")
    # with Expect: 100-continue the refusal comes instead of the 100
    c = HttpConn(e.port)
    try:
        c.send(build("POST", "/api/rpc", {"Content-Length": str(MAX_BODY + 1), "Expect": "100-continue"}))
        r = c.read_response()
        check_error(r, 413)
    finally:
        c.close()
    still_serving(e, "8 MiB + 1 with Expect")
    # chunked: refused once the de-chunked body passes the limit
    chunk = b"%x\r\n%s\r\n" % (65536, b"c" * 65536)
    raw = b"POST /api/rpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * (MAX_BODY // 65536 + 2)
    refused(e, raw, 413, "chunked past 8 MiB")
    refused(e, b"POST /api/rpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY + 1)
            + b"d" * (MAX_BODY + 1) + b"\r\n0\r\n\r\n", 413, "one chunk of 8 MiB + 1")


def test_slowloris(e):
    c = HttpConn(e.port)
    t0 = time.monotonic()
    got = b""
    closed = False
    try:
        c.send(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        for _ in range(int(HEADER_TIMEOUT_S * 2.5)):  # bounded: 25 bytes, one a second
            r, _, _ = select.select([c.sock], [], [], 1.0)
            if r:
                try:
                    d = c.sock.recv(65536)
                except ConnectionResetError:
                    closed = True
                    break
                if not d:
                    closed = True
                    break
                got += d
                continue
            try:
                c.sock.send(b"a")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
        if not closed:
            rest = c.drain_to_eof(3)
            got += rest
            closed = True
    finally:
        c.close()
    took = time.monotonic() - t0
    p2p.log("slowloris: closed after %.1fs, answer %r" % (took, got[:60]))
    assert closed, "a header trickling at a byte a second kept the connection open for %.0fs" % took
    assert got.startswith(b"HTTP/1.1 408 "), "expected 408 before the close, got %r" % got[:200]
    check_error(parse_response(got), 408)
    still_serving(e, "slowloris")


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def accepted(pid, port):
    """Connections to port the process has accepted: its socket descriptors whose inode is an
    established TCP socket with that local port (ones still in the listen backlog have none)."""
    mine = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            mine.add(t[8:-1])
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    x = line.split()
                    if x[3] == "01" and int(x[1].rsplit(":", 1)[1], 16) == port and x[9] in mine:
                        n += 1
        except OSError:
            pass
    return n


def test_ten_thousand_idle_connections(e):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert soft >= IDLE_CONNS + 200, "RLIMIT_NOFILE %d: raised at start-up (main) failed" % soft
    base_fds = open_fds(e.n.proc.pid)
    base_conns = accepted(e.n.proc.pid, e.port)
    rss_before = e.n.rss_kb()
    conns = []
    t = time.monotonic()
    try:
        for i in range(IDLE_CONNS):
            src = "127.0.0.%d" % (2 + i // 1000)  # 1,000 a source address: no ephemeral-port pressure
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            s.bind((src, 0))
            s.connect(("127.0.0.1", e.port))
            conns.append(s)
        p2p.log("%d connections open in %.1fs" % (len(conns), time.monotonic() - t))
        last = []

        def all_accepted():
            last[:] = [accepted(e.n.proc.pid, e.port), open_fds(e.n.proc.pid)]
            return last[0] >= base_conns + IDLE_CONNS
        try:
            p2p.wait_until(all_accepted, 60, interval=0.5, what="the node to accept all 10,000 connections")
        except AssertionError:
            raise AssertionError("the node accepted %d of %d connections (fds %d, %d before)"
                                 % (last[0] - base_conns, IDLE_CONNS, last[1], base_fds))
        p2p.log("node: %d connections accepted, fds %d (base %d)" % (last[0], last[1], base_fds))
        # a new client is still served, on a new connection, while the idle ones stay open
        r = get(e.port, "/health")
        assert r.status == 200, r
        r = get(e.port, "/api/info", bearer(e.viewer))
        assert r.status == 200, r
        rss = e.n.rss_kb()
        p2p.log("RSS with %d idle connections: %d kB (before %d kB, +%.2f kB a connection)"
                % (IDLE_CONNS, rss, rss_before, (rss - rss_before) / IDLE_CONNS))
        if not p2p.sanitized_build():
            assert rss - rss_before <= IDLE_CONN_RSS_MAX_KB, "RSS grew %d kB for 10,000 idle connections" % (
                rss - rss_before)
        # the idle ones are still open (none was dropped while under the cap)
        alive = 0
        for s in conns[::100]:
            s.setblocking(False)
            try:
                d = s.recv(1)
                alive += d != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        assert alive == len(conns[::100]), "%d of %d sampled idle connections were closed" % (
            len(conns[::100]) - alive, len(conns[::100]))
    finally:
        for s in conns:
            s.close()
    p2p.wait_until(lambda: accepted(e.n.proc.pid, e.port) <= base_conns + 1, 30, interval=0.5,
                   what="the node to close the 10,000 connections")
    still_serving(e, "10,000 idle connections")


# --- JSON bodies ----------------------------------------------------------------------------------


def post_json(e, path, body, token=True):
    h = {"Content-Type": "application/json"}
    if token:
        h.update(bearer(e.viewer))
    return get(e.port, path, h, method="POST", body=body)


def test_bad_json(e):
    bodies = [b"", b"{", b"}", b"{\"jsonrpc\":\"2.0\",}", b"{\"a\":}", b"[1,2", b"nul", b"{'a':1}",
              b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"rpc.ping\"}garbage", b"\"unterminated",
              b"[" * 100000, b"{\"a\":" * 50000 + b"1" + b"}" * 50000, b"[" + b"0," * 70000 + b"0]",
              b"1e400", b"9223372036854775808" * 3, b"{\"a\":1e99999}"]
    for b in bodies:
        r = post_json(e, "/api/rpc", b)
        assert r.status == 400, "bad JSON %r: %r" % (b[:40], r)
        check_error(r, 400)
        still_serving(e, "bad JSON %r" % b[:40])
    for b in (b"{", b"[]", b"{\"username\":", b"\"x\""):
        r = post_json(e, "/api/auth/login", b, token=False)
        check_error(r, 400)
        still_serving(e, "bad login JSON %r" % b[:40])


def test_invalid_utf8_json(e):
    for bad in (b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\x80",
                b"\xf4\x90\x80\x80", b"\\ud800", b"\\udc00x"):
        body = b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.node.info\",\"params\":{\"x\":\"" + bad + b"\"}}"
        r = post_json(e, "/api/rpc", body)
        err = check_error(r, 400)
        assert err["code"] == PARSE_ERROR, "invalid UTF-8 %r: %r" % (bad, r)
        still_serving(e, "invalid UTF-8 %r" % bad)
        r = post_json(e, "/api/auth/login", b"{\"username\":\"u" + bad + b"\",\"password\":\"p\"}", token=False)
        check_error(r, 400)


def test_nul_in_json(e):
    for body in (b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.node.info\x00x\",\"params\":{}}",
                 b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.node.info\",\"params\":{}}\x00",
                 b"\x00{}", b"{\"a\x00\":1}"):
        r = post_json(e, "/api/rpc", body)
        check_error(r, 400)
        still_serving(e, "NUL in JSON %r" % body[:40])


# --- connection handling --------------------------------------------------------------------------


def test_http10_closes(e):
    c = HttpConn(e.port)
    try:
        c.send(b"GET /health HTTP/1.0\r\n\r\n")
        r = c.read_response()
        check_common(r)
        assert r.status == 200, r
        rest = c.drain_to_eof(5)
        assert rest == b"", rest[:200]
    finally:
        c.close()
    # a second request pipelined after an HTTP/1.0 one is never answered
    c = HttpConn(e.port)
    try:
        c.send(b"GET /health HTTP/1.0\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert c.read_response().status == 200
        rest = c.drain_to_eof(5)
        assert b"HTTP/1." not in rest, rest[:200]
    finally:
        c.close()
    still_serving(e, "HTTP/1.0")


def test_half_requests_and_resets(e):
    """Clients that leave mid-request, or reset, leave nothing behind."""
    for raw in (b"GET /hea", b"GET /health HTTP/1.1\r\nHost: x\r\n",
                b"POST /api/rpc HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"a\"",
                b"POST /api/rpc HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"):
        for reset in (False, True):
            s = socket.create_connection(("127.0.0.1", e.port), 5)
            s.sendall(raw)
            if reset:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
    # a pipelined burst whose reader disappears before reading the answers
    s = socket.create_connection(("127.0.0.1", e.port), 5)
    s.sendall(build("GET", "/metrics") * 50)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    still_serving(e, "half requests and resets")


def test_refusal_messages_name_the_reason(e):
    assert not BAD_MESSAGES, "%d refusals carry llhttp's \"User callback error\" instead of the reason:\n  %s" % (
        len(BAD_MESSAGES), "\n  ".join(BAD_MESSAGES))


def test_rss_bounded(e):
    rss = e.n.rss_kb()
    p2p.log("RSS %d kB at the start, %d kB now" % (e.rss0, rss))
    if not p2p.sanitized_build():
        assert rss - e.rss0 <= RSS_GROWTH_MAX_KB, "RSS grew %d kB" % (rss - e.rss0)
    still_serving(e, "everything")


def raise_nofile():
    """Room for 10,000 client sockets here; the node inherits the hard limit and raises its own."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = IDLE_CONNS + 1000
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, want), hard), hard))


TESTS = (test_malformed_request_lines, test_bad_versions, test_bad_header_lines, test_nul_bytes,
         test_smuggling_cl_te, test_two_content_lengths, test_bad_content_lengths, test_bad_chunk_sizes,
         test_header_count, test_header_bytes, test_one_megabyte_of_headers, test_url_length, test_body_size,
         test_bad_json, test_invalid_utf8_json, test_nul_in_json, test_http10_closes,
         test_half_requests_and_resets, test_slowloris, test_ten_thousand_idle_connections, test_refusal_messages_name_the_reason,
         test_rss_bounded)


def main():
    raise_nofile()  # before the node starts: it inherits the limit
    r = p2p.Runner()
    e = Env()
    only = [a for a in sys.argv[1:] if a.startswith("test_")]
    for t in TESTS:
        if not only or t.__name__ in only:
            r.run(t, e)
    r.finish()


if __name__ == "__main__":
    main()
