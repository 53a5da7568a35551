#!/usr/bin/python3
"""node_ready.py: start-to-ready time and idle RSS of p2p-node.

usage: node_ready.py P2P-NODE [RUNS]

Each run starts p2p-node with a fresh data dir (first start: identity, keys and database are
created) and then again on the same data dir (restart), and measures the time from spawning the
process until its DATA_DIR/rpc.sock answers an `rpc.ping` msgpack-RPC request. After the last
restart it waits 2 s and reads VmRSS of the idle node. Prints one JSON object.
"""
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

# [0, 1, "rpc.ping", []] in msgpack, written by hand so no library is needed
PING = bytes([0x94, 0x00, 0x01, 0xA8]) + b"rpc.ping" + bytes([0x90])


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ping(path):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(1.0)
    try:
        c.connect(path)
        c.sendall(PING)
        data = c.recv(256)
        return len(data) >= 2 and data[0] == 0x94 and data[1] == 0x01
    except OSError:
        return False
    finally:
        c.close()


def start(node, ddir, port, hport):
    sock = os.path.join(ddir, "rpc.sock")
    t0 = time.monotonic()
    p = subprocess.Popen([node, "--name", "bench", "--data-dir", ddir, "--dht-host", "127.0.0.1",
                          "--dht-port", str(port), "--port", str(hport), "--log-level", "ERROR"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = t0 + 10
    while time.monotonic() < deadline:
        if os.path.exists(sock) and ping(sock):
            return p, (time.monotonic() - t0) * 1000.0
        if p.poll() is not None:
            raise SystemExit(f"p2p-node exited with {p.returncode} before it was ready")
        time.sleep(0.0005)
    p.kill()
    raise SystemExit("p2p-node was not ready within 10 s")


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    node = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 10
    first, again = [], []
    rss = 0
    for i in range(runs):
        ddir = tempfile.mkdtemp(prefix="p2p-bench-")
        try:
            port, hport = free_port(), free_port()
            p, ms = start(node, ddir, port, hport)
            first.append(ms)
            stop(p)
            p, ms = start(node, ddir, port, hport)
            again.append(ms)
            if i == runs - 1:
                time.sleep(2)
                rss = rss_bytes(p.pid)
            stop(p)
        finally:
            shutil.rmtree(ddir, ignore_errors=True)
    print(json.dumps({
        "runs": runs,
        "first_start_to_ready_ms_median": round(statistics.median(first), 2),
        "first_start_to_ready_ms_max": round(max(first), 2),
        "restart_to_ready_ms_median": round(statistics.median(again), 2),
        "restart_to_ready_ms_max": round(max(again), 2),
        "idle_rss_bytes": rss,
    }))


if __name__ == "__main__":
    main()
