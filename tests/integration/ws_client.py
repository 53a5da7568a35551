"""ws_client.py: a small WebSocket (RFC 6455) client over plain sockets, for test_ws.py and
bench/ws_clients.py. It can also send what a well-behaved client never would (unmasked frames,
RSV bits, oversized or fragmented control frames, bad close codes, invalid UTF-8), to check the
node's receiving rules. Every read is bounded by a timeout.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class WsError(Exception):
    pass


class Closed(Exception):
    """The server sent a close frame (code, reason) or dropped the connection (code None)."""

    def __init__(self, code, reason=""):
        super().__init__("closed with %r %r" % (code, reason))
        self.code = code
        self.reason = reason


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def frame(opcode, payload=b"", fin=True, mask=True, rsv=0, mask_key=None, length=None):
    """The bytes of one client frame. length overrides the length field (a lie, for bad input)."""
    if isinstance(payload, str):
        payload = payload.encode()
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, m | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = mask_key if mask_key is not None else os.urandom(4)
    return head + key + bytes(b ^ key[i & 3] for i, b in enumerate(payload))


def handshake_request(host, port, path="/ws", key=None, version="13", extra=None, omit=()):
    """The bytes of an upgrade request; omit lists header names to leave out."""
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    hdrs = [("Host", "%s:%d" % (host, port)), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", version)]
    hdrs = [h for h in hdrs if h[0] not in omit] + list(extra or [])
    lines = ["GET %s HTTP/1.1" % path] + ["%s: %s" % h for h in hdrs]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), key


def read_http_response(sock, timeout=5.0):
    """Reads a response head (and a Content-Length body). Returns (status, headers, body, rest)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = sock.recv(65536)
        if not d:
            raise WsError("connection closed during the response head: %r" % buf)
        buf += d
        if len(buf) > 65536:
            raise WsError("response head too long")
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if status != 101:
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            d = sock.recv(65536)
            if not d:
                break
            rest += d
        body, rest = rest[:n], rest[n:]
    return status, headers, body, rest


class WS:
    """One client connection. connect() does the handshake and checks Sec-WebSocket-Accept."""

    def __init__(self, host, port, path="/ws", token=None, timeout=5.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.path = path if token is None else "%s?access_token=%s" % (path, token)
        self.sock = None
        self.buf = b""
        self.pongs = []

    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req, key = handshake_request(self.host, self.port, self.path)
        self.sock.sendall(req)
        status, headers, body, rest = read_http_response(self.sock, self.timeout)
        if status != 101:
            raise WsError("handshake answered %d: %r" % (status, body[:200]))
        if headers.get("sec-websocket-accept") != accept_for(key):
            raise WsError("bad Sec-WebSocket-Accept %r" % headers.get("sec-websocket-accept"))
        if headers.get("upgrade", "").lower() != "websocket":
            raise WsError("no Upgrade: websocket in the answer")
        self.buf = rest
        return self

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, opcode, payload=b"", **kw):
        self.sock.sendall(frame(opcode, payload, **kw))

    def send_text(self, s):
        self.send(TEXT, s)

    def send_json(self, obj):
        self.send(TEXT, json.dumps(obj, separators=(",", ":")))

    def _need(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no frame within the timeout")
            self.sock.settimeout(left)
            d = self.sock.recv(65536)
            if not d:
                raise Closed(None)
            self.buf += d

    def recv_frame(self, timeout=None):
        """One server frame as (fin, rsv, opcode, payload). Server frames must be unmasked."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        if b1 & 0x80:
            raise WsError("the server sent a masked frame")
        n, at = b1 & 0x7F, 2
        if n == 126:
            self._need(4, deadline)
            n, at = struct.unpack(">H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10, deadline)
            n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
        self._need(at + n, deadline)
        payload, self.buf = self.buf[at:at + n], self.buf[at + n:]
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, payload

    def recv_msg(self, timeout=None, auto_pong=True):
        """The next data message as (opcode, payload), answering pings; a close raises Closed."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        parts, op = [], None
        while True:
            fin, rsv, opcode, payload = self.recv_frame(max(0.001, deadline - time.monotonic()))
            if rsv:
                raise WsError("the server set RSV bits")
            if opcode == PING:
                if auto_pong:
                    self.send(PONG, payload)
                continue
            if opcode == PONG:
                self.pongs.append(payload)
                continue
            if opcode == CLOSE:
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed(code, payload[2:].decode("utf-8", "replace"))
            if opcode != CONT:
                op = opcode
            parts.append(payload)
            if fin:
                return op, b"".join(parts)

    def recv_json(self, timeout=None, pred=None):
        """The next JSON text message (for which pred(obj) holds, others skipped)."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            op, payload = self.recv_msg(max(0.001, deadline - time.monotonic()))
            if op != TEXT:
                raise WsError("expected a text message, got opcode %d" % op)
            obj = json.loads(payload.decode("utf-8"))
            if pred is None or pred(obj):
                return obj

    def expect_close(self, timeout=None):
        """Reads until the server's close frame; returns its code (None when there was none and
        the connection just ended). Then checks the server closes the TCP connection."""
        try:
            while True:
                self.recv_msg(timeout)
        except Closed as c:
            code = c.code
        # The server closes the TCP connection after its close frame (RFC 6455 section 7.1.1).
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            while self.sock.recv(65536):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        return code

    def close(self, code=1000, reason=""):
        try:
            payload = b"" if code is None else struct.pack(">H", code) + reason.encode()
            self.send(CLOSE, payload)
        except OSError:
            pass

    def shutdown(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
