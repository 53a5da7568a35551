#!/usr/bin/python3
"""transfer.py BUILD_DIR [--size-mb 1024] [--peer-bulk false]: push and pull of a large file
between two nodes.

Two p2p-node processes xa and xb on loopback, each with its own FILE_ROOTS directory on disk. A
random file of --size-mb MB (decimal) is pushed from a local path to xb through xa's socket
(`p2p-rpc push`), then pulled back (`p2p-rpc pull`); each run's MB/s is the CLI's own figure (wall
clock from connect to the verified rename, checksums included) and the SHA-256 is checked here
too. During each transfer both nodes' VmRSS is sampled every 100 ms (min/max reported); a warm-up
round trip of size/8 comes first, so "flat" reads as: the max of the big run is not above the
small run's by more than a few MB (it does not grow with the size).

Peer program, same run, same file: socat (when installed; else a Python socket pair) copies the
file over a loopback TCP connection into a file, then sha256sum hashes the copy; its MB/s counts
both, and the ratio is ours / peer. Prints one JSON line; every file is removed at exit.
--peer-bulk false runs the nodes with PEER_BULK=false: the peer channel stays in box-stream
(XSalsa20-Poly1305) instead of switching to bulk mode (AES-256-GCM), for the comparison.
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import p2p  # noqa: E402

_T0 = time.monotonic()
p2p.log = lambda *a: print("[%7.2f]" % (time.monotonic() - _T0), *a, file=sys.stderr, flush=True)
MB = 1000 * 1000


def arg(name, default):
    if name in sys.argv:
        return type(default)(sys.argv[sys.argv.index(name) + 1])
    return default


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def make_file(path, size):
    block = os.urandom(8 << 20)
    with open(path, "wb") as f:
        left, i = size, 0
        while left:
            n = min(left, len(block))
            f.write(i.to_bytes(8, "little") + block[8:n] if n > 8 else block[:n])
            left -= n
            i += 1


class RssSampler:
    """Samples VmRSS of some pids every 100 ms in a thread; min/max in bytes per pid."""

    def __init__(self, nodes):
        self.nodes = nodes
        self.lo = {n.name: None for n in nodes}
        self.hi = {n.name: 0 for n in nodes}
        self.samples = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stop.is_set():
            for n in self.nodes:
                v = n.rss_kb() * 1024
                self.hi[n.name] = max(self.hi[n.name], v)
                self.lo[n.name] = v if self.lo[n.name] is None else min(self.lo[n.name], v)
            self.samples += 1
            self.stop.wait(0.1)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *a):
        self.stop.set()
        self.t.join()


def cli(node, token, args, timeout):
    rc, out, err = p2p.run_cli(node, args, token=token, timeout=timeout)
    if rc != 0:
        raise RuntimeError("p2p-rpc %s: exit %d: %s" % (" ".join(args), rc, err.strip()))
    return json.loads(out.strip().splitlines()[-1])


def transfer(a, token, nodes, args, timeout, want_sha):
    with RssSampler(nodes) as s:
        r = cli(a, token, args, timeout)
    if r["sha256"] != want_sha:
        raise RuntimeError("sha256 mismatch after %s: %s vs %s" % (args[0], r["sha256"], want_sha))
    r["rss"] = {n.name: {"min": s.lo[n.name], "max": s.hi[n.name]} for n in nodes}
    r["rss_samples"] = s.samples
    return r


def peer_socat(src, dst):
    port = p2p.free_port()
    rx = subprocess.Popen(["socat", "-u", "TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr" % port,
                           "OPEN:%s,creat,trunc" % dst], stderr=subprocess.PIPE)
    t = time.monotonic()
    subprocess.run(["socat", "-u", "OPEN:%s" % src, "TCP:127.0.0.1:%d,retry=100,interval=0.01" % port],
                   check=True, timeout=600)
    rx.wait(600)
    digest = subprocess.run(["sha256sum", dst], check=True, capture_output=True,
                            timeout=600).stdout.split()[0].decode()
    return time.monotonic() - t, digest


def peer_python(src, dst):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def rx():
        c, _ = srv.accept()
        with open(dst, "wb") as f:
            while True:
                b = c.recv(1 << 20)
                if not b:
                    break
                f.write(b)
        c.close()

    th = threading.Thread(target=rx)
    th.start()
    t = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as c, open(src, "rb") as f:
        c.sendfile(f)
    th.join()
    srv.close()
    digest = subprocess.run(["sha256sum", dst], check=True, capture_output=True,
                            timeout=600).stdout.split()[0].decode()
    return time.monotonic() - t, digest


def main():
    size = arg("--size-mb", 1024) * MB
    root = p2p.tmpdir("p2p-bench-xfer-")
    key, secret = p2p.random_key_b64(32), p2p.random_key_b64(32)
    nodes = []
    for name in ("xa", "xb"):
        froot = os.path.join(root, "root-" + name)
        os.makedirs(froot)
        net = p2p.MeshNetwork(extra_env={"FILE_ROOTS": froot, "LOG_LEVEL": "WARNING",
                                         "PEER_BULK": arg("--peer-bulk", "true")},
                              network_key=key, auth_secret=secret)
        boot = nodes[0].dht_addr if nodes else None
        nodes.append(p2p.Node(net, name, root, bootstrap=boot).start().wait_ready(30))
    a, b = nodes
    p2p.wait_until(lambda: p2p.lists_up(a, ["xb"]), 30, what="xa listing xb up")
    token = a.token("admin")
    idle = {n.name: n.rss_kb() * 1024 for n in nodes}
    src = os.path.join(root, "src.bin")
    p2p.log("writing a %d-byte source file" % size)
    make_file(src, size)
    want = sha_file(src)
    timeout = 600
    res = {"size_bytes": size, "chunk_window": "6 x 1 MiB", "sanitized": p2p.sanitized_build(),
           "peer_bulk": arg("--peer-bulk", "true")}

    # warm-up: size/8, for the RSS comparison
    small = os.path.join(root, "small.bin")
    with open(src, "rb") as f, open(small, "wb") as g:
        g.write(f.read(size // 8))
    small_sha = sha_file(small)
    ws = transfer(a, token, nodes, ["push", small, "xb:small.bin"], timeout, small_sha)
    wl = transfer(a, token, nodes, ["pull", "xb:small.bin", small + ".back"], timeout, small_sha)
    for p in (small, small + ".back", os.path.join(root, "root-xb", "small.bin")):
        os.unlink(p)

    p2p.log("push")
    push = transfer(a, token, nodes, ["push", src, "xb:big.bin"], timeout, want)
    remote = os.path.join(root, "root-xb", "big.bin")
    ok = sha_file(remote) == want
    p2p.log("pull")
    back = os.path.join(root, "back.bin")
    pull = transfer(a, token, nodes, ["pull", "xb:big.bin", back], timeout, want)
    ok = ok and sha_file(back) == want
    os.unlink(remote)
    os.unlink(back)

    peer_dst = os.path.join(root, "peer.bin")
    if shutil.which("socat"):
        peer = "socat over loopback TCP + sha256sum"
        secs, digest = peer_socat(src, peer_dst)
    else:
        peer = "python sendfile over loopback TCP + sha256sum"
        secs, digest = peer_python(src, peer_dst)
    os.unlink(peer_dst)
    os.unlink(src)
    peer_rate = size / MB / secs
    res.update({
        "push_mb_per_s": round(push["mb_per_s"], 1), "push_seconds": round(push["seconds"], 3),
        "push_verify_seconds": push.get("verify_seconds"),
        "pull_mb_per_s": round(pull["mb_per_s"], 1), "pull_seconds": round(pull["seconds"], 3),
        "pull_verify_seconds": pull.get("verify_seconds"),
        "checksum_ok": ok and digest == want,
        "rss_idle_bytes": idle,
        "rss_push": push["rss"], "rss_pull": pull["rss"],
        "rss_small_push": ws["rss"], "rss_small_pull": wl["rss"],
        "rss_growth_bytes": max(max(push["rss"][n]["max"], pull["rss"][n]["max"]) -
                                max(ws["rss"][n]["max"], wl["rss"][n]["max"]) for n in ("xa", "xb")),
        "peer": peer, "peer_mb_per_s": round(peer_rate, 1),
        "ratio_push": round(push["mb_per_s"] / peer_rate, 3),
        "ratio_pull": round(pull["mb_per_s"] / peer_rate, 3),
        "target_mb_per_s": 200,
    })
    for n in nodes:
        n.stop()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
