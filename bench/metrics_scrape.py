#!/usr/bin/python3
"""metrics_scrape.py: latency of GET /metrics on one p2p-node against peers in the same run
(issue 5 target: p99 <= 5 ms).

usage: metrics_scrape.py BUILD_DIR [REQUESTS] [--json FILE]

Starts three p2p-node processes on loopback (HTTP_RATE_LIMIT=0: one client makes every request,
faster than the default 100/s per address), so the DHT, membership and RPC families have
something in them, waits until the first lists all three up, makes 100 RPC calls on its local
socket, then times REQUESTS (default 1,000) sequential scrapes of the first node's /metrics over
one keep-alive connection, each from the request's first byte to the body's last (client:
http.client, the same for every server). The peers, measured the same way in the same run:
- nginx (one worker) serving a saved copy of the node's own /metrics body as a static file: the
  floor of serving those bytes with no work to make them;
- prometheus-node-exporter's /metrics: a program whose job is to make a scrape of host metrics
  (the node's /metrics carries node_exporter-named host metrics too);
each when installed (one not installed is reported as skipped). Also times GET /health on the
node as the floor of this client and server. Prints a table (p50/p99/max in ms, body bytes, the
node's latency over the peer's: below 1 the node is faster) and one JSON line. Uses
tests/integration/p2p.py.
"""

import http.client
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import p2p  # noqa: E402

_T0 = time.monotonic()
p2p.log = lambda *a: print("[%7.2f]" % (time.monotonic() - _T0), *a, file=sys.stderr, flush=True)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))] if xs else float("nan")


def timed(port, path, n, warmup=20):
    """Times n sequential GETs on one keep-alive connection (after warmup untimed ones)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    times, size, complete, body = [], 0, 0, b""
    try:
        for i in range(warmup + n):
            t = time.perf_counter()
            conn.request("GET", path)
            r = conn.getresponse()
            body = r.read()
            dt = (time.perf_counter() - t) * 1000
            assert r.status == 200, (port, path, r.status, body[:200])
            if i < warmup:
                continue
            times.append(dt)
            size = len(body)
            if b"p2p_scrape_collector_success{" in body:
                lines = [ln for ln in body.decode().splitlines()
                         if ln.startswith("p2p_scrape_collector_success{")]
                complete += all(ln.endswith(" 1") for ln in lines)
    finally:
        conn.close()
    return {"p50": round(pct(times, 0.5), 3), "p99": round(pct(times, 0.99), 3),
            "max": round(max(times), 3), "body_bytes": size, "complete": complete}, body


def wait_http(port, path, timeout=10.0):
    def up():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        try:
            c.request("GET", path)
            return c.getresponse().status == 200
        finally:
            c.close()
    p2p.wait_until(up, timeout, interval=0.1, what="http://127.0.0.1:%d%s" % (port, path))


def start(argv, log_path):
    logf = open(log_path, "ab")
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                         start_new_session=True)
    p2p._PROCS.append(p)  # killed by p2p.cleanup()
    return p


def nginx_peer(body, n):
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not exe:
        return None
    d = p2p.tmpdir("p2p-bench-nginx-")  # readable by nginx's worker user (mkdtemp makes it 0700)
    os.chmod(d, 0o755)
    os.makedirs(os.path.join(d, "html"), mode=0o755)
    with open(os.path.join(d, "html", "metrics"), "wb") as f:
        f.write(body)
    os.chmod(os.path.join(d, "html", "metrics"), 0o644)
    port = p2p.free_port()
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""worker_processes 1;
daemon off;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log;
events { worker_connections 256; }
http {
    access_log off;
    keepalive_requests 100000;
    client_body_temp_path %(d)s; proxy_temp_path %(d)s; fastcgi_temp_path %(d)s;
    uwsgi_temp_path %(d)s; scgi_temp_path %(d)s;
    server {
        listen 127.0.0.1:%(port)d;
        root %(d)s/html;
        location = /metrics { default_type "text/plain; version=0.0.4"; }
    }
}
""" % {"d": d, "port": port})
    start([exe, "-p", d, "-c", conf], os.path.join(d, "stdout.log"))
    wait_http(port, "/metrics")
    return timed(port, "/metrics", n)[0]


def node_exporter_peer(root, n):
    exe = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if not exe:
        return None
    port = p2p.free_port()
    start([exe, "--web.listen-address=127.0.0.1:%d" % port], os.path.join(root, "node_exporter.log"))
    wait_http(port, "/metrics")
    return timed(port, "/metrics", n)[0]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[1]) if len(args) > 1 else 1000
    out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    root = p2p.tmpdir("p2p-bench-metrics-")
    names = ["bm-1", "bm-2", "bm-3"]
    net = p2p.MeshNetwork(extra_env={"HTTP_RATE_LIMIT": "0", "LOG_LEVEL": "WARNING"})
    nodes = p2p.start_mesh(net, root, names)
    p2p.wait_until(lambda: p2p.lists_up(nodes[0], names), 60, what="3 nodes up")
    for _ in range(100):
        nodes[0].info()
    port = nodes[0].http_port
    p2p.log("node /metrics x %d" % n)
    node, body = timed(port, "/metrics", n)
    health, _ = timed(port, "/health", n)
    p2p.log("peers")
    peers = {"nginx static copy": nginx_peer(body, n), "node_exporter": node_exporter_peer(root, n)}
    res = {"requests": n, "node_metrics_ms": node, "node_health_ms": health, "peers": {},
           "target_p99_ms": 5}
    print("%-28s %8s %8s %8s %8s   %s" % ("server, path", "p50 ms", "p99 ms", "max ms", "bytes",
                                         "node/peer p50, p99"))
    print("%-28s %8.3f %8.3f %8.3f %8d   (%d/%d scrapes complete)"
          % ("p2p-node /metrics", node["p50"], node["p99"], node["max"], node["body_bytes"],
             node["complete"], n))
    print("%-28s %8.3f %8.3f %8.3f %8d" % ("p2p-node /health", health["p50"], health["p99"], health["max"],
                                            health["body_bytes"]))
    for name, p in peers.items():
        if p is None:
            print("%-28s skipped (not installed)" % name)
            continue
        del p["complete"]  # the nginx copy repeats the node's lines: not a scrape of its own
        p["ratio_p50"] = round(node["p50"] / p["p50"], 2)
        p["ratio_p99"] = round(node["p99"] / p["p99"], 2)
        res["peers"][name] = p
        print("%-28s %8.3f %8.3f %8.3f %8d   %.2f, %.2f" % (name + " /metrics", p["p50"], p["p99"], p["max"],
                                                         p["body_bytes"], p["ratio_p50"], p["ratio_p99"]))
    print("p99 target 5 ms: %s" % ("met" if node["p99"] <= 5 else "NOT met"))
    print(json.dumps(res))
    if out:
        with open(out, "w") as f:
            json.dump(res, f)
    for nd in nodes:
        nd.stop_ok(10)
    p2p.cleanup()


if __name__ == "__main__":
    main()
