"""p2p.py: shared helpers for the integration tests.

Starts p2p-node processes on loopback, talks msgpack-RPC to their local socket (written from the
msgpack-RPC spec: request [0, msgid, method, params], response [1, msgid, error, result]), mints
tokens with `p2p-node token`, picks free ports and cleans every process and temp dir up at exit.
Only loopback addresses are used. Every wait is bounded.
"""

import atexit
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import msgpack

# Error codes (CONTRACT section 4).
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
UNAUTHENTICATED = -32001
PERMISSION_DENIED = -32002
NOT_FOUND = -32003
RESOURCE_EXHAUSTED = -32006

_PROCS = []
_TMPDIRS = []
_USED_PORTS = set()


def build_dir():
    """The meson build dir: argv[1], else $P2P_BUILD_DIR, else ./build."""
    for a in sys.argv[1:]:
        if os.path.isdir(a):
            return os.path.abspath(a)
    return os.path.abspath(os.environ.get("P2P_BUILD_DIR", "build"))


def _find_binary(name, sub):
    b = build_dir()
    for p in (os.path.join(b, name), os.path.join(b, "src", sub, name)):
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise FileNotFoundError("%s not found under %s" % (name, b))


def node_bin():
    return _find_binary("p2p-node", "node")


def rpc_bin():
    return _find_binary("p2p-rpc", "cli")


def log(*a):
    print("[%7.2f]" % (time.monotonic() - _T0), *a, flush=True)


_T0 = time.monotonic()


def tmpdir(prefix="p2p-it-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _TMPDIRS.append(d)
    return d


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (the DHT uses the same number on both)."""
    for _ in range(200):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            finally:
                u.close()
        finally:
            t.close()
        if port not in _USED_PORTS:
            _USED_PORTS.add(port)
            return port
    raise RuntimeError("no free port")


def random_key_b64(n=32):
    return base64.b64encode(os.urandom(n)).decode()


class Network:
    """Shared secrets of one test network."""

    def __init__(self, network_key=None, auth_secret=None):
        self.network_key = network_key or random_key_b64(32)
        self.auth_secret = auth_secret or random_key_b64(32)

    def env(self):
        e = dict(os.environ)
        e["NETWORK_KEY"] = self.network_key
        e["AUTH_SECRET"] = self.auth_secret
        e["LOG_FORMAT"] = "json"
        e.setdefault("LOG_LEVEL", "INFO")
        for k in ("NODE_NAME", "DATA_DIR", "BOOTSTRAP_NODES", "CONFIG_FILE", "DHT_PORT", "NODE_PORT"):
            e.pop(k, None)
        return e


class Node:
    """One p2p-node process."""

    def __init__(self, net, name, root, dht_port=None, http_port=None, bootstrap=None, extra=None,
                 dht_host="127.0.0.1"):
        self.net = net
        self.dht_host = dht_host
        self.name = name
        self.data_dir = os.path.join(root, name)
        self.dht_port = dht_port or free_port()
        self.http_port = http_port or free_port()
        self.bootstrap = bootstrap
        self.extra = list(extra or [])
        self.proc = None
        self.logf = None
        self.log_path = os.path.join(root, name + ".log")
        self._token = None
        self._client = None

    @property
    def sock_path(self):
        return os.path.join(self.data_dir, "rpc.sock")

    @property
    def dht_addr(self):
        if ":" in self.dht_host:
            host = "::1" if self.dht_host == "::" else self.dht_host
            return "[%s]:%d" % (host, self.dht_port)
        return "%s:%d" % (self.dht_host, self.dht_port)

    def argv(self, bootstrap=True):
        a = [node_bin(), "--name", self.name, "--dht-host", self.dht_host, "--dht-port", str(self.dht_port),
             "--port", str(self.http_port), "--data-dir", self.data_dir]
        if bootstrap and self.bootstrap:
            a += ["--bootstrap", self.bootstrap]
        return a + self.extra

    def start(self, bootstrap=True):
        os.makedirs(self.data_dir, exist_ok=True)
        self.close_client()
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv(bootstrap), env=self.net.env(), stdin=subprocess.DEVNULL,
                                     stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)
        _PROCS.append(self.proc)
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=20.0):
        """Waits until rpc.ping answers on the local socket."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError("%s exited with %s before ready; log tail:\n%s"
                                   % (self.name, self.proc.returncode, self.log_tail()))
            if os.path.exists(self.sock_path):
                try:
                    c = Client(self.sock_path, timeout=2.0)
                    try:
                        c.call("rpc.ping")
                        return self
                    finally:
                        c.close()
                except (OSError, RpcError, EOFError) as e:
                    last = e
            time.sleep(0.05)
        raise RuntimeError("%s not ready after %ss (%r); log tail:\n%s" % (self.name, timeout, last,
                                                                        self.log_tail()))

    def token(self, role="admin"):
        if role == "admin" and self._token:
            return self._token
        t = mint_token(self.net, role, self.data_dir)
        if role == "admin":
            self._token = t
        return t

    def client(self):
        """A cached client authenticated as admin."""
        if self._client is None:
            c = Client(self.sock_path)
            c.auth(self.token("admin"))
            self._client = c
        return self._client

    def close_client(self):
        if self._client is not None:
            self._client.close()
            self._client = None

    def call(self, method, params=None, timeout=15.0):
        c = self.client()
        c.sock.settimeout(timeout)
        return c.call(method, params)

    def info(self):
        return self.call("system.local.node.info", {})

    def node_id(self):
        return self.info()["id"]

    def peers(self):
        return peer_list(self.call("system.local.node.peers", {}))

    def peer_ids(self):
        return set(p_id(p) for p in self.peers())

    def put(self, key, value, ttl=3600):
        return self.call("system.local.dht.put", {"key": key, "value": value, "ttl": ttl}, timeout=30.0)

    def get(self, key):
        return self.call("system.local.dht.get", {"key": key}, timeout=30.0)

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def kill9(self):
        self.close_client()
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self, timeout=5.0):
        """SIGTERM and wait; returns the exit code (SIGKILL after timeout, then raises)."""
        self.close_client()
        if not self.alive():
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
            raise RuntimeError("%s did not exit within %ss of SIGTERM" % (self.name, timeout))

    def stop_ok(self, timeout=5.0):
        """SIGTERM; asserts a clean exit (code 0), showing the log tail otherwise."""
        rc = self.stop(timeout)
        assert rc == 0, "%s exited with %r after SIGTERM; log tail:\n%s" % (self.name, rc, self.log_tail(40))

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return "(no log)"


def peer_list(res):
    """node.peers may answer a list or a map holding a list."""
    if isinstance(res, dict):
        for k in ("peers", "contacts", "nodes"):
            if isinstance(res.get(k), list):
                return res[k]
        raise AssertionError("node.peers result has no list: %r" % (res,))
    if isinstance(res, list):
        return res
    raise AssertionError("node.peers result: %r" % (res,))


def p_id(p):
    i = p.get("id") if isinstance(p, dict) else p
    if isinstance(i, bytes):
        i = i.hex()
    return str(i).lower()


def get_values(res):
    """Every value a dht.get result holds (strings; bytes decoded as UTF-8)."""
    out = []

    def norm(v):
        if isinstance(v, bytes):
            return v.decode(errors="replace")
        return v

    if isinstance(res, dict):
        for k in ("values", "records"):
            if isinstance(res.get(k), list):
                for r in res[k]:
                    out.append(norm(r.get("value")) if isinstance(r, dict) else norm(r))
                return out
        if "value" in res:
            return [norm(res["value"])]
    if isinstance(res, list):
        for r in res:
            out.append(norm(r.get("value")) if isinstance(r, dict) else norm(r))
    return out


class RpcError(Exception):
    def __init__(self, err):
        self.err = err
        self.code = err.get("code") if isinstance(err, dict) else None
        Exception.__init__(self, "rpc error %r" % (err,))


class Client:
    """A msgpack-RPC client on a unix socket."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.msgid = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_msg(self):
        """Next decoded message; raises EOFError when the peer closed."""
        for _ in range(100000):
            for m in self.unpacker:
                return m
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("connection closed")
            self.unpacker.feed(data)
        raise RuntimeError("unreachable")

    def request(self, method, params=None):
        """Sends a request; returns (error, result) of the response with the same msgid."""
        self.msgid += 1
        mid = self.msgid
        p = [] if params is None else [params]
        self.sock.sendall(msgpack.packb([0, mid, method, p], use_bin_type=True))
        for _ in range(1000):
            m = self.read_msg()
            if isinstance(m, list) and len(m) == 4 and m[0] == 1 and m[1] == mid:
                return m[2], m[3]
        raise RuntimeError("no response to msgid %d" % mid)

    def call(self, method, params=None):
        err, res = self.request(method, params)
        if err is not None:
            raise RpcError(err)
        return res

    def auth(self, token):
        return self.call("rpc.auth", {"token": token})


def mint_token(net, role, data_dir, sub=None, extra=()):
    """A JWT minted by `p2p-node token` with the network's auth secret; extra: more flags
    (e.g. ["--targets", "web-*"])."""
    a = [node_bin(), "token", "--role", role, "--data-dir", data_dir]
    if sub:
        a += ["--sub", sub]
    a += list(extra)
    r = subprocess.run(a, env=net.env(), capture_output=True, timeout=20)
    if r.returncode != 0:
        raise RuntimeError("p2p-node token failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace")))
    return r.stdout.decode().strip().splitlines()[-1].strip()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_dec(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def resign_token(token, header=None, payload=None, key=None):
    """Rebuilds a JWT with another header/payload, HS256-signed with key (bytes) or unsigned if key is None."""
    h, p, _ = token.split(".")
    hd = json.loads(b64url_dec(h)) if header is None else header
    pd = json.loads(b64url_dec(p)) if payload is None else payload
    hs = b64url(json.dumps(hd, separators=(",", ":")).encode())
    ps = b64url(json.dumps(pd, separators=(",", ":")).encode())
    if key is None:
        return hs + "." + ps + "."
    sig = hmac.new(key, (hs + "." + ps).encode(), hashlib.sha256).digest()
    return hs + "." + ps + "." + b64url(sig)


def wait_until(pred, timeout, interval=0.25, what="condition"):
    """Polls pred() until it returns truthy; returns its value or raises after timeout."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - retried until the deadline
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out waiting for %s (last error: %r)" % (what, last_exc))
        time.sleep(interval)


def cleanup():
    for p in _PROCS:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
    for p in _PROCS:
        try:
            p.wait(5)
        except Exception:  # noqa: BLE001
            pass
    del _PROCS[:]
    if os.environ.get("P2P_KEEP_TMP"):
        return
    for d in _TMPDIRS:
        shutil.rmtree(d, ignore_errors=True)
    del _TMPDIRS[:]


atexit.register(cleanup)


def _on_term(signum, frame):
    cleanup()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_term)


class Runner:
    """Runs named test functions, prints a TAP-like summary, exits 0 only if all passed."""

    def __init__(self):
        self.results = []

    def run(self, fn, *args):
        name = fn.__name__
        log("RUN", name)
        t = time.monotonic()
        try:
            fn(*args)
            self.results.append((name, True, ""))
            log("PASS %s (%.1fs)" % (name, time.monotonic() - t))
        except Exception:  # noqa: BLE001
            import traceback
            tb = traceback.format_exc()
            self.results.append((name, False, tb))
            log("FAIL %s (%.1fs)\n%s" % (name, time.monotonic() - t, tb))

    def finish(self):
        cleanup()
        bad = [r for r in self.results if not r[1]]
        log("%d passed, %d failed" % (len(self.results) - len(bad), len(bad)))
        for r in bad:
            log("FAILED:", r[0])
        sys.exit(1 if bad else 0)



def find_drops(obj, depth=0):
    """The DHT drop counters ({reason: count}) found in a node.info/stats result, or None when the node
    does not expose them. Looks for a map named "dropped" (or "drops") holding integer counters."""
    if depth > 6:
        return None
    if isinstance(obj, dict):
        for k in ("dropped", "drops", "messages_dropped"):
            v = obj.get(k)
            if isinstance(v, dict) and all(isinstance(x, int) for x in v.values()):
                return {str(a): b for a, b in v.items()}
        for v in obj.values():
            r = find_drops(v, depth + 1)
            if r is not None:
                return r
    elif isinstance(obj, list):
        for v in obj:
            r = find_drops(v, depth + 1)
            if r is not None:
                return r
    return None


STATS_METHODS = ("system.local.node.stats", "system.local.dht.stats")


def node_drops(node):
    """The node's DHT drop counters by reason, from node.info or a stats method; None when the
    node exposes none."""
    d = find_drops(node.info())
    if d is not None:
        return d
    for m in STATS_METHODS:
        try:
            d = find_drops(node.call(m, {}))
        except RpcError:
            continue
        if d is not None:
            return d
    return None


# --- mesh helpers (issue 3: membership view, routing, fan-out) ---------------------------------

UNAVAILABLE = -32005
TIMEOUT = -32004


class MeshNetwork(Network):
    """A Network whose nodes get extra environment variables (e.g. PEER_TIMEOUT)."""

    def __init__(self, extra_env=None, **kw):
        Network.__init__(self, **kw)
        self.extra_env = dict(extra_env or {})

    def env(self):
        e = Network.env(self)
        e.update(self.extra_env)
        return e


def member_list(res):
    """node.nodes may answer a list of member maps or a map holding one."""
    if isinstance(res, dict):
        for k in ("nodes", "members"):
            if isinstance(res.get(k), list):
                return res[k]
        raise AssertionError("node.nodes result has no list: %r" % (res,))
    assert isinstance(res, list), "node.nodes result: %r" % (res,)
    return res


def members_by_name(node, timeout=15.0):
    """{name: member map} of node's view (system.local.node.nodes)."""
    return {m.get("name"): m for m in member_list(node.call("system.local.node.nodes", {}, timeout=timeout))}


def lists_up(node, names):
    """True when node's view lists every name in names with up true."""
    view = members_by_name(node)
    return all(n in view and view[n].get("up") is True for n in names)


def start_mesh(net, root, names, boot_extra=0, ready_timeout=30.0):
    """Starts names[0] as bootstrap, then the others joining through it (and through the next
    boot_extra nodes too); returns the Node list once every one answers rpc.ping."""
    nodes = [Node(net, names[0], root).start().wait_ready(ready_timeout)]
    for name in names[1:]:
        boot = ",".join(n.dht_addr for n in nodes[:1 + boot_extra])
        nodes.append(Node(net, name, root, bootstrap=boot).start())
    for n in nodes[1:]:
        n.wait_ready(ready_timeout)
    return nodes


def run_cli(node, args, token=None, timeout=30.0, env_extra=None):
    """Runs p2p-rpc against node's socket; returns (exit code, stdout, stderr)."""
    e = node.net.env()
    e.pop("P2P_TOKEN", None)
    e.update(env_extra or {})
    a = [rpc_bin(), "--socket", node.sock_path]
    if token:
        a += ["--token", token]
    r = subprocess.run(a + list(args), env=e, capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


# --- peer channel client (SHS v1 + box-stream), written here from the published protocol ---------
# Used by the tests to reach a node's TCP peer port directly: a good handshake, then msgpack-RPC in
# box-stream bodies; or deliberately broken handshakes and frames. libsodium through ctypes.

import ctypes  # noqa: E402
import ctypes.util  # noqa: E402

_SODIUM = []


def sodium():
    if not _SODIUM:
        lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
        assert lib.sodium_init() >= 0
        _SODIUM.append(lib)
    return _SODIUM[0]


def _ull(n):
    return ctypes.c_ulonglong(n)


def ed25519_keypair(seed=None):
    pk, sk = ctypes.create_string_buffer(32), ctypes.create_string_buffer(64)
    assert sodium().crypto_sign_seed_keypair(pk, sk, seed or os.urandom(32)) == 0
    return pk.raw, sk.raw


def ed25519_sign(msg, sk):
    sig = ctypes.create_string_buffer(64)
    assert sodium().crypto_sign_detached(sig, None, msg, _ull(len(msg)), sk) == 0
    return sig.raw


def ed25519_verify(sig, msg, pk):
    return sodium().crypto_sign_verify_detached(sig, msg, _ull(len(msg)), pk) == 0


def ed_pk_to_curve(pk):
    out = ctypes.create_string_buffer(32)
    if sodium().crypto_sign_ed25519_pk_to_curve25519(out, pk) != 0:
        raise ValueError("not an Ed25519 public key")
    return out.raw


def ed_sk_to_curve(sk):
    out = ctypes.create_string_buffer(32)
    assert sodium().crypto_sign_ed25519_sk_to_curve25519(out, sk) == 0
    return out.raw


def x25519(scalar, point):
    out = ctypes.create_string_buffer(32)
    if sodium().crypto_scalarmult(out, scalar, point) != 0:
        raise ValueError("bad curve point")
    return out.raw


def x25519_base(scalar):
    out = ctypes.create_string_buffer(32)
    assert sodium().crypto_scalarmult_base(out, scalar) == 0
    return out.raw


def hmac512_256(msg, key):
    """crypto_auth: HMAC-SHA-512 truncated to 32 bytes."""
    out = ctypes.create_string_buffer(32)
    assert sodium().crypto_auth(out, msg, _ull(len(msg)), key) == 0
    return out.raw


def secretbox(msg, nonce, key):
    out = ctypes.create_string_buffer(len(msg) + 16)
    assert sodium().crypto_secretbox_easy(out, msg, _ull(len(msg)), nonce, key) == 0
    return out.raw


def secretbox_open(box, nonce, key):
    if len(box) < 16:
        return None
    out = ctypes.create_string_buffer(max(1, len(box) - 16))
    if sodium().crypto_secretbox_open_easy(out, box, _ull(len(box)), nonce, key) != 0:
        return None
    return out.raw[:len(box) - 16]


def nonce_add(nonce, k=1):
    return ((int.from_bytes(nonce, "big") + k) % (1 << 192)).to_bytes(24, "big")


def sha256(b):
    return hashlib.sha256(b).digest()


class HandshakeError(Exception):
    pass


class PeerClient:
    """A TCP client of a node's peer channel: SHS v1 client side, then box-stream framing
    (bodies of at most 4096 bytes) carrying msgpack-RPC."""

    BOX_MAX = 4096

    def __init__(self, port, net_key, server_pk, host="127.0.0.1", timeout=5.0, identity=None):
        self.net_key = net_key
        self.server_pk = server_pk
        self.pk, self.sk = identity or ed25519_keypair()
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.rbuf = b""
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.msgid = 0
        self.enc_key = self.dec_key = self.enc_nonce = self.dec_nonce = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def send_raw(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n):
        while len(self.rbuf) < n:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("peer closed after %d of %d bytes" % (len(self.rbuf), n))
            self.rbuf += d
        out, self.rbuf = self.rbuf[:n], self.rbuf[n:]
        return out

    def hello(self):
        """Message 1: HMAC(net_key, eph_pk) || eph_pk (the ephemeral key is made here)."""
        self.eph_sk = os.urandom(32)
        self.eph_pk = x25519_base(self.eph_sk)
        self.my_mac = hmac512_256(self.eph_pk, self.net_key)
        return self.my_mac + self.eph_pk

    def handshake(self):
        K, B = self.net_key, self.server_pk
        self.send_raw(self.hello())
        m2 = self.recv_exact(64)
        bmac, b_eph = m2[:32], m2[32:]
        if hmac512_256(b_eph, K) != bmac:
            raise HandshakeError("server hello MAC does not verify under our network key")
        ab = x25519(self.eph_sk, b_eph)
        aB = x25519(self.eph_sk, ed_pk_to_curve(B))
        shash = sha256(ab)
        hello = ed25519_sign(K + B + shash, self.sk) + self.pk
        self.send_raw(secretbox(hello, b"\0" * 24, sha256(K + ab + aB)))
        m4 = self.recv_exact(80)
        Ab = x25519(ed_sk_to_curve(self.sk), b_eph)
        secret3 = sha256(K + ab + aB + Ab)
        sig_b = secretbox_open(m4, b"\0" * 24, secret3)
        if sig_b is None or not ed25519_verify(sig_b, K + hello + shash, B):
            raise HandshakeError("server accept does not verify")
        secret = sha256(secret3)
        self.enc_key, self.dec_key = sha256(secret + B), sha256(secret + self.pk)
        self.enc_nonce, self.dec_nonce = bmac[:24], self.my_mac[:24]
        return self

    def box(self, body, tamper=None):
        """Box-stream frames for body (split at 4096 bytes). tamper: 'header' or 'body' flips a bit
        of the first frame's header or body ciphertext; 'length' lies about the body length."""
        out = b""
        for i in range(0, max(1, len(body)), self.BOX_MAX):
            chunk = body[i:i + self.BOX_MAX]
            bb = secretbox(chunk, nonce_add(self.enc_nonce, 1), self.enc_key)
            n = len(chunk) + (1 if tamper == "length" else 0)
            head = secretbox(n.to_bytes(2, "big") + bb[:16], self.enc_nonce, self.enc_key)
            ct = bb[16:]
            if tamper == "header" and i == 0:
                head = bytes([head[0] ^ 1]) + head[1:]
            if tamper == "body" and i == 0:
                ct = bytes([ct[0] ^ 1]) + ct[1:]
            out += head + ct
            self.enc_nonce = nonce_add(self.enc_nonce, 2)
        return out

    def box_header(self, length, mac=b"\0" * 16):
        """One header announcing length bytes (any value up to 65535), correctly boxed."""
        head = secretbox(length.to_bytes(2, "big") + mac, self.enc_nonce, self.enc_key)
        self.enc_nonce = nonce_add(self.enc_nonce, 2)
        return head

    def goodbye(self):
        return secretbox(b"\0" * 18, self.enc_nonce, self.enc_key)

    def read_body(self):
        """The next box-stream body; None on the goodbye; EOFError when the node closed."""
        head = secretbox_open(self.recv_exact(34), self.dec_nonce, self.dec_key)
        if head is None:
            raise HandshakeError("bad header MAC from the node")
        if head == b"\0" * 18:
            return None
        n = int.from_bytes(head[:2], "big")
        body = secretbox_open(head[2:] + self.recv_exact(n), nonce_add(self.dec_nonce, 1), self.dec_key)
        if body is None:
            raise HandshakeError("bad body MAC from the node")
        self.dec_nonce = nonce_add(self.dec_nonce, 2)
        return body

    def read_msg(self):
        for _ in range(100000):
            for m in self.unpacker:
                return m
            b = self.read_body()
            if b is None:
                raise EOFError("goodbye")
            self.unpacker.feed(b)
        raise RuntimeError("unreachable")

    def send_msg(self, obj):
        self.send_raw(self.box(msgpack.packb(obj, use_bin_type=True)))

    def request(self, method, params=None):
        self.msgid += 1
        mid = self.msgid
        self.send_msg([0, mid, method, [] if params is None else [params]])
        for _ in range(1000):
            m = self.read_msg()
            if isinstance(m, list) and len(m) == 4 and m[0] == 1 and m[1] == mid:
                return m[2], m[3]
        raise RuntimeError("no response to msgid %d" % mid)

    def call(self, method, params=None):
        err, res = self.request(method, params)
        if err is not None:
            raise RpcError(err)
        return res


def peer_client(node, net_key_b64=None, timeout=5.0):
    """A PeerClient to node's peer port (handshake not yet done)."""
    info = node.info()
    pk = bytes.fromhex(info["public_key"])
    key = base64.b64decode(net_key_b64 or node.net.network_key)
    return PeerClient(node.dht_port, key, pk, timeout=timeout)


def sanitized_build():
    """True when p2p-node is built with AddressSanitizer: its allocator keeps freed memory in a
    quarantine and shadows every byte, so RSS figures say nothing about the node's own bounds."""
    with open(node_bin(), "rb") as f:
        return b"__asan_init" in f.read()
