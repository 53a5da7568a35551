#!/usr/bin/python3
"""login_rate.py BUILD_DIR [--seconds S] [--json FILE]: POST /api/auth/login throughput of one
p2p-node (issue 5: bounded by Argon2id by design, reported).

Starts one node (HTTP_RATE_LIMIT=0: every client is 127.0.0.1), adds a user with `p2p-node user
add`, then for 1, 2 and 8 concurrent clients (threads, one keep-alive connection each, the right
password every time) logs in back to back for S seconds (default 8): logins/s (200 answers),
503 answers (past the hash slots and their queue, HTTP_LOGIN_MAX_RUNNING and _QUEUED), latency
p50/p99, and the node's CPU % of one core over the window (/proc/PID/stat). The peer, in the
same run: libsodium's crypto_pwhash_str_verify (through ctypes, which releases the GIL) on a hash
made with the node's parameters (Argon2id, opslimit HTTP_PWHASH_OPSLIMIT 2, memlimit the larger of
libsodium's interactive limit and 19 MiB), back to back in 1 and 2 threads for S seconds: the
ratio is the node's logins/s over the bare verifications/s with as many threads as the node can
hash at once (min(clients, 2)). Prints a table and one JSON line. Uses tests/integration/p2p.py.
"""

import ctypes
import ctypes.util
import http.client
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import p2p  # noqa: E402

_T0 = time.monotonic()
p2p.log = lambda *a: print("[%7.2f]" % (time.monotonic() - _T0), *a, file=sys.stderr, flush=True)

PASSWORD = "bench horse battery staple"
OPSLIMIT = 2  # src/http/http-limits.h HTTP_PWHASH_OPSLIMIT
MEMFLOOR = 19 << 20  # HTTP_PWHASH_MEMLIMIT
HASH_SLOTS = 2  # HTTP_LOGIN_MAX_RUNNING


def arg(name, default):
    if name in sys.argv:
        return type(default)(sys.argv[sys.argv.index(name) + 1])
    return default


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))] if xs else float("nan")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def login_window(port, pid, clients, seconds):
    """clients threads logging in for seconds; returns the window's figures."""
    body = json.dumps({"username": "bench", "password": PASSWORD}).encode()
    lat, codes, lock = [], {}, threading.Lock()
    stop_at = [0.0]
    start = threading.Barrier(clients + 1)

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        mine, mcodes = [], {}
        start.wait()
        while time.monotonic() < stop_at[0]:
            t = time.perf_counter()
            c.request("POST", "/api/auth/login", body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status == 200:
                mine.append((time.perf_counter() - t) * 1000)
            mcodes[r.status] = mcodes.get(r.status, 0) + 1
            if r.getheader("connection", "").lower() == "close":
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.close()
        with lock:
            lat.extend(mine)
            for k, v in mcodes.items():
                codes[k] = codes.get(k, 0) + v

    ts = [threading.Thread(target=worker) for _ in range(clients)]
    for t in ts:
        t.start()
    c0, t0 = cpu_seconds(pid), time.monotonic()
    stop_at[0] = t0 + seconds
    start.wait()
    for t in ts:
        t.join()
    c1, t1 = cpu_seconds(pid), time.monotonic()
    return {"clients": clients, "logins_per_s": round(len(lat) / (t1 - t0), 2), "ok": len(lat),
            "codes": {str(k): v for k, v in sorted(codes.items())},
            "p50_ms": round(pct(lat, 0.5), 1), "p99_ms": round(pct(lat, 0.99), 1),
            "node_cpu_pct": round(100.0 * (c1 - c0) / (t1 - t0), 1)}


def sodium():
    lib = ctypes.CDLL(ctypes.util.find_library("sodium") or "libsodium.so.23")
    assert lib.sodium_init() >= 0
    lib.crypto_pwhash_argon2id_memlimit_interactive.restype = ctypes.c_size_t
    lib.crypto_pwhash_str_alg.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong,
                                          ctypes.c_ulonglong, ctypes.c_size_t, ctypes.c_int]
    lib.crypto_pwhash_str_verify.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulonglong]
    return lib


def verify_window(lib, memlimit, threads, seconds):
    """Bare Argon2id verifications/s in threads, with the node's parameters."""
    pw = PASSWORD.encode()
    h = ctypes.create_string_buffer(128)
    assert lib.crypto_pwhash_str_alg(h, pw, len(pw), OPSLIMIT, memlimit, 2) == 0  # ARGON2ID13
    counts = [0] * threads
    stop_at = time.monotonic() + seconds

    def worker(i):
        while time.monotonic() < stop_at:
            assert lib.crypto_pwhash_str_verify(h.value, pw, len(pw)) == 0
            counts[i] += 1
    t0 = time.monotonic()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return round(sum(counts) / (time.monotonic() - t0), 2)


def main():
    seconds = arg("--seconds", 8.0)
    out = arg("--json", "")
    root = p2p.tmpdir("p2p-bench-login-")
    net = p2p.MeshNetwork(extra_env={"HTTP_RATE_LIMIT": "0", "LOG_LEVEL": "WARNING"})
    node = p2p.Node(net, "lg-1", root).start().wait_ready()
    a = [p2p.node_bin(), "user", "add", "bench", "--role", "viewer", "--data-dir", node.data_dir]
    r = subprocess.run(a, env=net.env(), input=(PASSWORD + "\n").encode(), capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    pid = node.proc.pid

    def can_login():
        c = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
        try:
            c.request("POST", "/api/auth/login", body=json.dumps({"username": "bench", "password": PASSWORD}))
            return c.getresponse().status == 200
        finally:
            c.close()
    p2p.wait_until(can_login, 20, interval=0.2, what="the new user logging in")

    lib = sodium()
    memlimit = max(lib.crypto_pwhash_argon2id_memlimit_interactive(), MEMFLOOR)
    peer = {}
    for th in (1, 2):
        p2p.log("bare Argon2id verify, %d thread(s)" % th)
        peer[th] = verify_window(lib, memlimit, th, seconds)
    rows = []
    for clients in (1, 2, 8):
        p2p.log("logins with %d client(s)" % clients)
        w = login_window(node.http_port, pid, clients, seconds)
        w["peer_verifies_per_s"] = peer[min(clients, HASH_SLOTS)]
        w["ratio"] = round(w["logins_per_s"] / w["peer_verifies_per_s"], 2)
        rows.append(w)
    print("Argon2id t=%d m=%d MiB; %d hash slots on the node; %.0f s per window" %
          (OPSLIMIT, memlimit >> 20, HASH_SLOTS, seconds))
    print("%-8s %10s %8s %8s %10s %16s %6s  %s" % ("clients", "logins/s", "p50 ms", "p99 ms", "node CPU%",
                                                  "bare verify/s", "ratio", "answers"))
    for w in rows:
        print("%-8d %10.2f %8.1f %8.1f %10.1f %16.2f %6.2f  %s"
              % (w["clients"], w["logins_per_s"], w["p50_ms"], w["p99_ms"], w["node_cpu_pct"],
                 w["peer_verifies_per_s"], w["ratio"], w["codes"]))
    res = {"opslimit": OPSLIMIT, "memlimit_bytes": memlimit, "seconds": seconds, "windows": rows,
           "peer_verifies_per_s": {str(k): v for k, v in peer.items()}}
    print(json.dumps(res))
    if out:
        with open(out, "w") as f:
            json.dump(res, f)
    node.stop_ok(10)
    p2p.cleanup()


if __name__ == "__main__":
    main()
