#!/usr/bin/python3
"""metrics_scrape.py: latency of GET /metrics on one p2p-node (issue 5 target: p99 <= 5 ms).

usage: metrics_scrape.py BUILD_DIR [REQUESTS] [--json FILE]

Starts three p2p-node processes on loopback (so the DHT, membership and RPC families have
something in them), waits until the first lists all three up, makes 100 RPC calls on its local
socket, then REQUESTS (default 1,000) sequential scrapes of the first node's /metrics over one
keep-alive connection, timing each from the request's first byte to the body's last (client:
http.client). Also times 1,000 GET /health on the same connection as the floor of this client
and server. Prints a table and one JSON line: p50/p99/max in ms, the body size, and how many
scrapes were complete (every p2p_scrape_collector_success 1). Uses tests/integration/p2p.py.
"""

import http.client
import json
import os
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


def timed(conn, path, n):
    times, size, complete = [], 0, 0
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        times.append((time.perf_counter() - t) * 1000)
        assert r.status == 200, (r.status, body[:200])
        size = len(body)
        if path == "/metrics":
            lines = [l for l in body.decode().splitlines() if l.startswith("p2p_scrape_collector_success{")]
            complete += bool(lines) and all(l.endswith(" 1") for l in lines)
    return times, size, complete


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[1]) if len(args) > 1 else 1000
    out = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
    root = p2p.tmpdir("p2p-bench-metrics-")
    names = ["bm-1", "bm-2", "bm-3"]
    nodes = p2p.start_mesh(p2p.MeshNetwork(), root, names)
    p2p.wait_until(lambda: p2p.lists_up(nodes[0], names), 60, what="3 nodes up")
    for _ in range(100):
        nodes[0].info()
    conn = http.client.HTTPConnection("127.0.0.1", nodes[0].http_port, timeout=10)
    timed(conn, "/metrics", 20)  # warm-up
    scrape, size, complete = timed(conn, "/metrics", n)
    health, _, _ = timed(conn, "/health", n)
    res = {"requests": n, "body_bytes": size, "complete": complete,
           "metrics_ms": {"p50": round(pct(scrape, 0.5), 3), "p99": round(pct(scrape, 0.99), 3),
                          "max": round(max(scrape), 3)},
           "health_ms": {"p50": round(pct(health, 0.5), 3), "p99": round(pct(health, 0.99), 3),
                         "max": round(max(health), 3)},
           "target_p99_ms": 5}
    print("%-10s %8s %8s %8s" % ("path", "p50 ms", "p99 ms", "max ms"))
    for k, path in (("metrics_ms", "/metrics"), ("health_ms", "/health")):
        print("%-10s %8.3f %8.3f %8.3f" % (path, res[k]["p50"], res[k]["p99"], res[k]["max"]))
    print("body %d bytes; %d/%d scrapes complete; p99 target 5 ms: %s"
          % (size, complete, n, "met" if res["metrics_ms"]["p99"] <= 5 else "NOT met"))
    print(json.dumps(res))
    if out:
        with open(out, "w") as f:
            json.dump(res, f)
    p2p.cleanup()


if __name__ == "__main__":
    main()
