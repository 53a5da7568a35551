#!/usr/bin/python3
"""test_prometheus.py: Debian's real Prometheus scrapes a 5-node loopback network it found through
one node's /api/sd/prometheus (issue 5).

Starts 5 p2p-node processes, then /usr/bin/prometheus with http_sd_configs pointing at the first
node only (refresh 1 s, scrape every 1 s, its own TSDB in a temp dir, listening on a free
loopback port). Waits (bounded, 90 s) until Prometheus's /api/v1/targets reports 5 active targets,
all health "up" with no lastError, then checks through /api/v1/query that `up` is 1 for the five
and that p2p_build_info came in from each node with its name (the exposition parsed), and that the
SD labels became target labels (the relabelling in config/prometheus.yml). Exits 77 (skipped)
when /usr/bin/prometheus is not installed (Debian package prometheus).
Usage: test_prometheus.py BUILD_DIR
"""

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402

PROMETHEUS = "/usr/bin/prometheus"
NAMES = ["pr-1", "pr-2", "pr-3", "pr-4", "pr-5"]


def api(port, path, **q):
    url = "http://127.0.0.1:%d%s" % (port, path)
    if q:
        url += "?" + urllib.parse.urlencode(q)
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.loads(r.read())
    assert doc.get("status") == "success", doc
    return doc["data"]


def config_text(sd_url):
    """config/prometheus.yml with the SD URL of this test's first node and 1 s intervals."""
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "config", "prometheus.yml")) as f:
        text = f.read()
    assert "http://127.0.0.1:8000/api/sd/prometheus" in text, "config/prometheus.yml changed shape"
    text = text.replace("http://127.0.0.1:8000/api/sd/prometheus", sd_url)
    return (text.replace("scrape_interval: 15s", "scrape_interval: 1s")
                .replace("scrape_timeout: 10s", "scrape_timeout: 1s")
                .replace("refresh_interval: 30s", "refresh_interval: 1s"))


def test_five_targets_up(nodes, root):
    sd_url = "http://127.0.0.1:%d/api/sd/prometheus" % nodes[0].http_port
    p2p.wait_until(lambda: len(json.loads(urllib.request.urlopen(sd_url, timeout=5).read())) == 5, 30,
                   what="5 targets in the SD document")
    cfg = os.path.join(root, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(config_text(sd_url))
    port = p2p.free_port()
    logf = open(os.path.join(root, "prometheus.log"), "wb")
    proc = subprocess.Popen([PROMETHEUS, "--config.file=" + cfg, "--storage.tsdb.path=" + os.path.join(root, "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                            stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    p2p._PROCS.append(proc)  # killed by p2p.cleanup() whatever happens
    last = {}

    def all_up():
        assert proc.poll() is None, "prometheus exited: " + open(os.path.join(root, "prometheus.log")).read()[-2000:]
        t = api(port, "/api/v1/targets", state="active")["activeTargets"]
        last["targets"] = [(x["scrapeUrl"], x["health"], x.get("lastError")) for x in t]
        return len(t) == 5 and all(x["health"] == "up" and not x.get("lastError") for x in t)

    try:
        p2p.wait_until(all_up, 90, interval=0.5, what="prometheus reporting 5 targets up")
    except AssertionError:
        raise AssertionError("targets: %r" % (last.get("targets"),))
    urls = sorted(u for u, _, _ in last["targets"])
    assert urls == sorted("http://127.0.0.1:%d/metrics" % n.http_port for n in nodes), urls
    up = api(port, "/api/v1/query", query="up")["result"]
    assert len(up) == 5 and all(r["value"][1] == "1" for r in up), up
    # the samples themselves parsed: one p2p_build_info per node, under the SD's node label
    p2p.wait_until(lambda: len(api(port, "/api/v1/query", query="p2p_build_info")["result"]) == 5, 30,
                   what="p2p_build_info from 5 nodes")
    got = api(port, "/api/v1/query", query="p2p_build_info")["result"]
    assert sorted(r["metric"]["name"] for r in got) == sorted(NAMES), got
    assert sorted(r["metric"].get("node") for r in got) == sorted(NAMES), got
    proc.terminate()
    proc.wait(10)


def main():
    if not os.access(PROMETHEUS, os.X_OK):
        # run.sh test installs it: its absence is a failure, not a skip
        print("FAIL: %s not installed (Debian package prometheus; ./run.sh test installs it)" % PROMETHEUS)
        sys.exit(1)
    root = p2p.tmpdir()
    nodes = p2p.start_mesh(p2p.MeshNetwork(), root, NAMES)
    p2p.wait_until(lambda: p2p.lists_up(nodes[0], NAMES), 60, what="the first node seeing all 5")
    r = p2p.Runner()
    r.run(test_five_targets_up, nodes, root)
    r.finish()


if __name__ == "__main__":
    main()
