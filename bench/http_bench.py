#!/usr/bin/python3
"""http_bench.py: GET /health of one p2p-node under wrk, against nginx serving a static file of the
same size in the same run (CONTRACT section 9), and the latency of /metrics scrapes (issue 5).

usage: http_bench.py BUILD_DIR [--seconds S] [--threads T] [--json FILE]

Both servers run pinned to cpu 0 (the node is one event loop; nginx gets worker_processes 1), wrk
is pinned to the other cpus (-t T, default: the number of other cpus, at most 2). For each shape
(64 connections for S seconds, default 10; then 1 and 256 connections for S/2) wrk runs against the
node, then against nginx, with the same threads, connections and duration. Reported: req/s of both,
the ratio node/nginx, wrk's p50/p99 latency, non-2xx answers and socket errors, and each server's
CPU time during its run. Then /metrics: 500 sequential scrapes over one keep-alive connection
(http.client, first byte of the request to last byte of the body) and wrk -c1 for S/2 seconds.

The node runs with HTTP_RATE_LIMIT=0 (one load generator from one address would otherwise be
answered 429 past 100/s). nginx gets a generated config in a temp dir (pid, temp paths and logs
there, access_log off, keepalive_requests raised so neither server closes connections under
load). Prints a table and one JSON line; total runtime about 1 minute with the defaults.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import p2p  # noqa: E402

_T0 = time.monotonic()


def log(*a):
    print("[%7.2f]" % (time.monotonic() - _T0), *a, file=sys.stderr, flush=True)


p2p.log = log


def arg(name, default):
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))] if xs else float("nan")


def cpu_s(pid):
    """utime + stime of a process, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def to_ms(s):
    m = re.match(r"([0-9.]+)(us|ms|s|m)$", s.strip())
    return float(m.group(1)) * _UNIT[m.group(2)] if m else float("nan")


def parse_wrk(out):
    r = {"rps": float("nan"), "p50_ms": float("nan"), "p99_ms": float("nan"), "non2xx": 0, "socket_errors": 0}
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if m:
        r["rps"] = float(m.group(1))
    for p, key in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+(\S+)" % p, out, re.M)
        if m:
            r[key] = to_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"(\d+) requests in", out)
    if m:
        r["requests"] = int(m.group(1))
    return r


class Wrk:
    def __init__(self, cpus, threads):
        self.cpus, self.threads = cpus, threads
        self.bin = shutil.which("wrk")

    def run(self, url, conns, seconds, server_pids):
        threads = min(self.threads, conns)
        cmd = [self.bin, "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency", "--timeout", "5s", url]
        c0 = sum(cpu_s(p) for p in server_pids)
        t0 = time.monotonic()
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30,
                             preexec_fn=(lambda: os.sched_setaffinity(0, self.cpus)) if self.cpus else None)
        wall = time.monotonic() - t0
        c1 = sum(cpu_s(p) for p in server_pids)
        if res.returncode != 0:
            log("wrk failed: %s %s" % (res.stdout[-500:], res.stderr[-500:]))
        r = parse_wrk(res.stdout)
        r["server_cpu"] = round((c1 - c0) / wall, 3)  # cores used by the server during the run
        # answers per CPU-second of the server: what it costs, whichever side is the bottleneck
        r["per_cpu_s"] = round(r["rps"] / r["server_cpu"]) if r["server_cpu"] > 0 else None
        r["cmd"] = " ".join(cmd)
        return r


def start_nginx(body, ctype):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        return None
    d = tempfile.mkdtemp(prefix="p2p-bench-nginx-")
    os.makedirs(os.path.join(d, "www"))
    with open(os.path.join(d, "www", "health"), "wb") as f:
        f.write(body)
    port = p2p.free_port()
    conf = """worker_processes 1;
daemon off;
%(user)s
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    uwsgi_temp_path %(d)s/uwsgi;
    scgi_temp_path %(d)s/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    open_file_cache max=16 inactive=60s;  # the usual static-file tuning: no open() per request
    open_file_cache_valid 60s;
    server {
        listen 127.0.0.1:%(port)d;
        root %(d)s/www;
        location = /health { default_type %(ctype)s; }
    }
}
""" % {"d": d, "port": port, "ctype": ctype, "user": "user root;" if os.geteuid() == 0 else ""}
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    logf = open(os.path.join(d, "stderr.log"), "wb")
    proc = subprocess.Popen([nginx, "-p", d, "-e", os.path.join(d, "error.log"), "-c",
                             os.path.join(d, "nginx.conf")], stdout=logf, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    p2p._PROCS.append(proc)
    p2p._TMPDIRS.append(d)

    def up():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            c.request("GET", "/health")
            r = c.getresponse()
            return r.status == 200 and r.read() == body
        finally:
            c.close()
    try:
        p2p.wait_until(up, 10, interval=0.1, what="nginx")
    except AssertionError:
        with open(os.path.join(d, "error.log"), "rb") as f:
            log("nginx did not start: %s" % f.read()[-1000:].decode(errors="replace"))
        return None
    workers = p2p.wait_until(lambda: children(proc.pid), 5, interval=0.1, what="nginx worker")
    return {"proc": proc, "port": port, "pids": workers, "dir": d}


def fetch(port, path):
    """(status, Content-Type, body) of one GET on a new connection."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type") or "application/json", r.read()
    finally:
        c.close()


def answer_bytes(port, path):
    """The bytes of one whole answer (status line, headers, body) on the wire."""
    import socket
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" % path.encode())
    data = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        data += d
    s.close()
    return len(data)


def scrapes(port, path, n):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times, size = [], 0
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        times.append((time.perf_counter() - t) * 1000)
        assert r.status == 200, (r.status, body[:200])
        size = len(body)
    conn.close()
    return times, size


def main():
    build = [a for a in sys.argv[1:] if not a.startswith("--") and os.path.isdir(a)]
    if build:
        os.environ["P2P_BUILD_DIR"] = os.path.abspath(build[0])
    seconds = int(arg("--seconds", "10"))
    out = arg("--json", None)
    ncpu = len(os.sched_getaffinity(0))
    if not shutil.which("wrk"):
        print("http_bench: wrk not installed (apt-get install wrk): skipped")
        return 0
    # servers on cpu 0 (inherited from here), wrk on the others
    all_cpus = sorted(os.sched_getaffinity(0))
    server_cpu, wrk_cpus = ({all_cpus[0]}, set(all_cpus[1:])) if ncpu >= 2 else (None, None)
    threads = int(arg("--threads", str(max(1, min(2, ncpu - 1)))))
    if server_cpu:
        os.sched_setaffinity(0, server_cpu)
    root = p2p.tmpdir("p2p-bench-http-")
    net = p2p.MeshNetwork(extra_env={"HTTP_RATE_LIMIT": "0", "LOG_LEVEL": "ERROR"})
    node = p2p.Node(net, "httpbench", root).start().wait_ready()
    p2p.wait_until(lambda: fetch(node.http_port, "/health")[0] == 200, 10, what="node HTTP")
    _, ctype, health = fetch(node.http_port, "/health")
    # nginx serves a file of the same size (a /health-shaped body)
    ngx = start_nginx(health, ctype)
    if server_cpu:
        os.sched_setaffinity(0, set(all_cpus))  # this script itself may run anywhere now
    wrk = Wrk(wrk_cpus, threads)
    res = {"machine": {"cpus": ncpu, "server_cpu": sorted(server_cpu or []), "wrk_cpus": sorted(wrk_cpus or []),
                       "wrk_threads": threads},
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "health_bytes": len(health),
           "answer_bytes": {"node": answer_bytes(node.http_port, "/health"),
                            "nginx": answer_bytes(ngx["port"], "/health") if ngx else None}, "runs": []}
    shapes = [(64, seconds), (1, max(2, seconds // 2)), (256, max(2, seconds // 2))]
    for conns, secs in shapes:
        log("wrk -c%d -d%ds on the node" % (conns, secs))
        rn = wrk.run("http://127.0.0.1:%d/health" % node.http_port, conns, secs, [node.proc.pid])
        rx = None
        if ngx:
            log("wrk -c%d -d%ds on nginx" % (conns, secs))
            rx = wrk.run("http://127.0.0.1:%d/health" % ngx["port"], conns, secs, ngx["pids"])
        res["runs"].append({"conns": conns, "seconds": secs, "node": rn, "nginx": rx,
                            "ratio": round(rn["rps"] / rx["rps"], 3) if rx and rx["rps"] else None})
    # /metrics
    log("/metrics: 500 sequential scrapes, then wrk -c1")
    scrapes(node.http_port, "/metrics", 20)
    ts, size = scrapes(node.http_port, "/metrics", 500)
    hs, _ = scrapes(node.http_port, "/health", 500)
    mw = wrk.run("http://127.0.0.1:%d/metrics" % node.http_port, 1, max(2, seconds // 2), [node.proc.pid])
    res["metrics"] = {"bytes": size, "seq_p50_ms": round(pct(ts, 0.5), 3), "seq_p99_ms": round(pct(ts, 0.99), 3),
                      "seq_max_ms": round(max(ts), 3), "health_seq_p50_ms": round(pct(hs, 0.5), 3),
                      "health_seq_p99_ms": round(pct(hs, 0.99), 3), "wrk_c1": mw}
    res["node_rss_kb"] = node.rss_kb()

    ab = res["answer_bytes"]
    print("GET /health: p2p-node vs %s (static %d-byte file), same wrk -t%d, server pinned to cpu %s, "
          "wrk to cpu %s; whole answer %d bytes (node) / %s (nginx)"
          % (ngx and subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
             .replace("nginx version: ", "") or "nginx (not installed)", len(health), threads,
             ",".join(map(str, sorted(server_cpu or []))) or "-", ",".join(map(str, sorted(wrk_cpus or []))) or "-",
             ab["node"], ab["nginx"] or "-"))
    print("%-6s %4s %12s %12s %6s %16s %16s %16s %16s" % ("conns", "s", "node req/s", "nginx req/s", "ratio",
                                                       "node p50/p99 ms", "nginx p50/p99 ms", "node cpu,req/cpu-s",
                                                       "nginx cpu,req/cpu-s"))
    for run in res["runs"]:
        n, x = run["node"], run["nginx"] or {}
        print("%-6d %4d %12.0f %12.0f %6s %16s %16s %16s %16s" % (
            run["conns"], run["seconds"], n["rps"], x.get("rps", float("nan")),
            "%.2f" % run["ratio"] if run["ratio"] else "-",
            "%.3f / %.3f" % (n["p50_ms"], n["p99_ms"]),
            "%.3f / %.3f" % (x["p50_ms"], x["p99_ms"]) if x else "-",
            "%.2f, %s" % (n["server_cpu"], n["per_cpu_s"]),
            "%.2f, %s" % (x["server_cpu"], x["per_cpu_s"]) if x else "-"))
        for who, w in (("node", n), ("nginx", x)):
            if w and (w["non2xx"] or w["socket_errors"]):
                print("  %s: %d non-2xx answers, %d socket errors" % (who, w["non2xx"], w["socket_errors"]))
    m = res["metrics"]
    print("GET /metrics (%d bytes): sequential http.client p50 %.3f ms, p99 %.3f ms, max %.3f ms "
          "(GET /health the same way: p50 %.3f, p99 %.3f); wrk -c1: %.0f req/s, p50 %.3f ms, p99 %.3f ms"
          % (m["bytes"], m["seq_p50_ms"], m["seq_p99_ms"], m["seq_max_ms"], m["health_seq_p50_ms"],
             m["health_seq_p99_ms"], m["wrk_c1"]["rps"], m["wrk_c1"]["p50_ms"], m["wrk_c1"]["p99_ms"]))
    print("node RSS after the runs: %.1f MB" % (res["node_rss_kb"] / 1024))
    print(json.dumps(res))
    if out:
        with open(out, "w") as f:
            json.dump(res, f)
    node.stop()
    if ngx:
        ngx["proc"].terminate()
        try:
            ngx["proc"].wait(5)
        except subprocess.TimeoutExpired:
            ngx["proc"].kill()
    p2p.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
