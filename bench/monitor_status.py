#!/usr/bin/python3
"""monitor_status.py: latency of system.local.monitor.status on the local socket (issue 4 target:
<= 2 ms).

usage: monitor_status.py BUILD_DIR [CALLS]

Starts one p2p-node with a fresh data dir, waits for its first sample, then makes CALLS (default
1,000) sequential monitor.status calls over DATA_DIR/rpc.sock with an admin token, timing each
round trip (client encode + socket + node + decode). In the same run it times two peers doing
the same job from this process: reading /proc/stat, /proc/meminfo, /proc/loadavg, /proc/net/dev
and statvfs("/") in Python (open/read/close each call), and `cat` of those files through
subprocess. Prints one JSON line: p50/p99/max in ms for each, and the ratios node / peer at p50.
"""
import base64
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


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def find(build, name, sub):
    for p in (os.path.join(build, name), os.path.join(build, "src", sub, name)):
        if os.access(p, os.X_OK):
            return p
    raise SystemExit("%s not found in %s" % (name, build))


class Client:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(path)
        self.unp = msgpack.Unpacker(raw=False, strict_map_key=False)
        self.mid = 0

    def call(self, method, params=None):
        self.mid += 1
        self.sock.sendall(msgpack.packb([0, self.mid, method, [] if params is None else [params]]))
        while True:
            for m in self.unp:
                if m[0] == 1 and m[1] == self.mid:
                    if m[2] is not None:
                        raise RuntimeError("%s: %r" % (method, m[2]))
                    return m[3]
            data = self.sock.recv(1 << 16)
            if not data:
                raise EOFError("closed")
            self.unp.feed(data)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def summary(xs):
    return {"p50_ms": round(pct(xs, 0.5), 4), "p99_ms": round(pct(xs, 0.99), 4),
            "max_ms": round(max(xs), 4)}


FILES = ["/proc/stat", "/proc/meminfo", "/proc/loadavg", "/proc/net/dev"]


def peer_python():
    for f in FILES:
        with open(f, "rb") as fh:
            fh.read()
    os.statvfs("/")


def peer_cat():
    subprocess.run(["cat"] + FILES, stdout=subprocess.DEVNULL, check=True)


def timed(fn, n):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000.0)
    return out


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    node = find(build, "p2p-node", "node")
    d = tempfile.mkdtemp(prefix="p2p-bench-mon-")
    env = dict(os.environ)
    env["NETWORK_KEY"] = base64.b64encode(os.urandom(32)).decode()
    env["AUTH_SECRET"] = base64.b64encode(os.urandom(32)).decode()
    data = os.path.join(d, "data")
    p = subprocess.Popen([node, "--name", "monbench", "--data-dir", data, "--dht-host", "127.0.0.1",
                          "--dht-port", str(free_port()), "--port", str(free_port()),
                          "--log-level", "ERROR"], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        sock = os.path.join(data, "rpc.sock")
        for _ in range(200):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
        tok = subprocess.run([node, "token", "--role", "admin", "--data-dir", data], env=env,
                             capture_output=True, check=True).stdout.decode().split()[-1]
        c = Client(sock)
        c.call("rpc.auth", {"token": tok})
        for _ in range(100):  # the first sample
            try:
                c.call("system.local.monitor.status")
                break
            except RuntimeError:
                time.sleep(0.05)
        for _ in range(50):  # warm-up
            c.call("system.local.monitor.status")
        node_ms = timed(lambda: c.call("system.local.monitor.status"), calls)
        py_ms = timed(peer_python, calls)
        cat_ms = timed(peer_cat, min(calls, 300))
        st = c.call("system.local.monitor.status")
        out = {
            "bench": "monitor.status",
            "calls": calls,
            "node": summary(node_ms),
            "peer_python_read_procfs": summary(py_ms),
            "peer_cat_procfs": summary(cat_ms),
            "ratio_p50_vs_python_read": round(pct(node_ms, 0.5) / pct(py_ms, 0.5), 2),
            "ratio_p50_vs_cat": round(pct(node_ms, 0.5) / pct(cat_ms, 0.5), 3),
            "reply_bytes": len(msgpack.packb(st)),
            "cores": len(st["cpu"]["cores"]),
            "filesystems": len(st["filesystems"]),
            "target_ms": 2.0,
        }
        print(json.dumps(out))
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
