#!/usr/bin/python3
"""test_metrics.py: GET /metrics and GET /api/sd/prometheus of real p2p-node processes (issue 5).

Three nodes on loopback (PEER_TIMEOUT 4 s). Checks, at the HTTP level (http.client, one
keep-alive connection, as curl would see it):
- /metrics answers 200 text/plain; version=0.0.4, every name of CONTRACT section 7 is there, each
  family has one HELP and one TYPE line before its samples, p2p_build_info names this node and its
  id, every p2p_scrape_collector_success is 1, p2p_nodes_known is 3, process_* agree with /proc of
  the node's pid, node_cpu_seconds_total has one cpu label per cpuN line of /proc/stat,
  node_network_receive_bytes_total lists lo;
- p2p_rpc_calls_total{domain="node",method="info",code="0"} grows by the calls made on the local
  socket, an INVALID_PARAMS call shows under code -32602, p2p_rpc_call_duration_seconds counts
  them; p2p_http_requests_total{code="200"} grows by the scrapes made;
- HEAD /metrics is 200 without a body; the text passes `promtool check metrics` (when promtool is
  installed; else that check says it is skipped) with nothing but its camelCase warning on
  node_exporter's node_memory_* names;
- /api/sd/prometheus answers application/json: one target group per node with target
  127.0.0.1:HTTP_PORT and labels __meta_p2p_node, __meta_p2p_node_id (matching node.info),
  __meta_p2p_self true on the node asked only; a stopped node leaves the list within 15 s.
Usage: test_metrics.py BUILD_DIR
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402

CONTRACT_NAMES = [
    "p2p_build_info", "p2p_dht_routing_table_peers", "p2p_dht_stored_records",
    "p2p_dht_messages_received_total", "p2p_dht_messages_sent_total", "p2p_dht_messages_dropped_total",
    "p2p_dht_lookups_total", "p2p_dht_lookup_duration_seconds", "p2p_nodes_known",
    "p2p_rpc_calls_total", "p2p_rpc_call_duration_seconds", "p2p_http_requests_total", "p2p_ws_clients",
    "process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
    "process_start_time_seconds", "node_load1", "node_memory_MemAvailable_bytes",
    "node_cpu_seconds_total", "node_filesystem_avail_bytes", "node_filesystem_size_bytes",
    "node_network_receive_bytes_total", "node_network_transmit_bytes_total",
    "p2p_scrape_collector_success",
]

SAMPLE = re.compile(r'^([a-zA-Z_][a-zA-Z0-9_]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Http:
    def __init__(self, port):
        self.c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def get(self, path, method="GET"):
        self.c.request(method, path)
        r = self.c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read()


def parse(text):
    """{family: {"help": str, "type": str, "samples": [(name, {labels}, value)]}}; asserts the
    format: HELP then TYPE once per family, samples right after their family's header."""
    fams, cur = {}, None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ", 3)[2]
            assert name not in fams, "family %s twice" % name
            fams[name] = {"help": line.split(" ", 3)[3] if line.count(" ") >= 3 else "", "samples": []}
            cur = name
        elif line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            assert name == cur and "type" not in fams[name], "TYPE of %s out of place" % name
            fams[name]["type"] = typ
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            assert m, "bad sample line %r" % line
            name, labels, value = m.group(1), dict(LABEL.findall(m.group(3) or "")), float(m.group(4))
            base = name
            if fams.get(cur, {}).get("type") == "histogram":
                for suf in ("_bucket", "_sum", "_count"):
                    if name == cur + suf:
                        base = cur
            assert base == cur, "sample %s outside its family (current %s)" % (name, cur)
            fams[cur]["samples"].append((name, labels, value))
    return fams


def value(fams, fam, name=None, **labels):
    for n, l, v in fams[fam]["samples"]:
        if n == (name or fam) and all(l.get(k) == str(x) for k, x in labels.items()):
            return v
    return None


def scrape(h):
    st, ctype, body = h.get("/metrics")
    assert st == 200, (st, body[:300])
    assert ctype == "text/plain; version=0.0.4; charset=utf-8", ctype
    return body.decode(), parse(body.decode())


def test_names_and_values(nodes):
    n0 = nodes[0]
    h = Http(n0.http_port)
    p2p.wait_until(lambda: value(scrape(h)[1], "p2p_nodes_known") == 3, 20, what="p2p_nodes_known 3")
    text, f = scrape(h)
    for name in CONTRACT_NAMES:
        assert name in f, "missing family %s" % name
        assert f[name]["help"], "%s has no help" % name
    for name, labels, v in f["p2p_scrape_collector_success"]["samples"]:
        assert v == 1, "collector %s failed" % labels
    collectors = {l["collector"] for _, l, _ in f["p2p_scrape_collector_success"]["samples"]}
    assert {"dht", "rpc", "http", "members", "build", "cpu", "meminfo", "filesystem", "netdev",
            "loadavg", "process"} <= collectors, collectors
    info = n0.info()
    build = f["p2p_build_info"]["samples"]
    assert len(build) == 1 and build[0][1]["name"] == n0.name and build[0][2] == 1, build
    assert build[0][1]["node_id"] == p2p.p_id(info), (build, info.get("id"))
    assert f["p2p_dht_lookup_duration_seconds"]["type"] == "histogram"
    assert value(f, "p2p_dht_routing_table_peers") >= 2
    # process_* of the node's own pid
    pid = n0.proc.pid
    with open("/proc/%d/stat" % pid) as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as fh:
        stat = fh.read()
    btime = int(re.search(r"^btime (\d+)", stat, re.M).group(1))
    start = btime + int(fields[22 - 3]) / hz
    assert abs(value(f, "process_start_time_seconds") - start) < 0.05, (value(f, "process_start_time_seconds"), start)
    rss = int(fields[24 - 3]) * os.sysconf("SC_PAGE_SIZE")
    assert 0.5 * rss < value(f, "process_resident_memory_bytes") < 2 * rss + (8 << 20)
    nfd = len(os.listdir("/proc/%d/fd" % pid))
    assert abs(value(f, "process_open_fds") - nfd) <= 8, (value(f, "process_open_fds"), nfd)
    cpus = set(re.findall(r"^cpu(\d+) ", stat, re.M))
    seen = {l["cpu"] for _, l, _ in f["node_cpu_seconds_total"]["samples"]}
    assert seen == cpus, (seen, cpus)
    assert value(f, "node_network_receive_bytes_total", device="lo") is not None
    assert value(f, "node_memory_MemAvailable_bytes") > 0
    # HEAD: the headers only
    st, ctype, body = h.get("/metrics", "HEAD")
    assert st == 200 and body == b"", (st, body[:100])
    promtool = shutil.which("promtool")
    # run.sh test installs it: its absence is a failure, not a skip
    assert promtool, "promtool not installed (Debian package prometheus; ./run.sh test installs it)"
    r = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    out = (r.stdout + r.stderr).decode()
    bad = [l for l in out.splitlines()
           if not re.match(r"^node_memory_\S+ metric names should be written in 'snake_case' not 'camelCase'$", l)]
    assert not bad, "promtool:\n" + out


def test_rpc_and_http_counters(nodes):
    n0 = nodes[0]
    h = Http(n0.http_port)
    _, f = scrape(h)
    before = value(f, "p2p_rpc_calls_total", domain="node", method="info", code=0) or 0
    bad_before = value(f, "p2p_rpc_calls_total", domain="node", method="info", code=-32602) or 0
    http_before = value(f, "p2p_http_requests_total", code=200) or 0
    for _ in range(5):
        n0.info()
    try:
        n0.call("system.local.node.info", {"no_such_argument": 1})
        raise AssertionError("an unknown argument was accepted")
    except p2p.RpcError as e:
        assert e.code == p2p.INVALID_PARAMS, e
    _, f = scrape(h)
    after = value(f, "p2p_rpc_calls_total", domain="node", method="info", code=0)
    assert after == before + 5, (before, after)
    assert value(f, "p2p_rpc_calls_total", domain="node", method="info", code=-32602) == bad_before + 1
    count = value(f, "p2p_rpc_call_duration_seconds", "p2p_rpc_call_duration_seconds_count", domain="node")
    assert count is not None and count >= 6, count
    inf = value(f, "p2p_rpc_call_duration_seconds", "p2p_rpc_call_duration_seconds_bucket", domain="node", le="+Inf")
    assert inf == count
    assert value(f, "p2p_http_requests_total", code=200) >= http_before + 1


def sd(node):
    h = Http(node.http_port)
    st, ctype, body = h.get("/api/sd/prometheus")
    assert st == 200, (st, body[:200])
    assert ctype.startswith("application/json"), ctype
    doc = json.loads(body)
    assert isinstance(doc, list)
    return doc


def test_service_discovery(nodes):
    n0 = nodes[0]
    p2p.wait_until(lambda: len(sd(n0)) == 3, 20, what="3 targets in the SD document")
    doc = sd(n0)
    by_name = {g["labels"]["__meta_p2p_node"]: g for g in doc}
    assert set(by_name) == {n.name for n in nodes}, by_name.keys()
    for n in nodes:
        g = by_name[n.name]
        assert g["targets"] == ["127.0.0.1:%d" % n.http_port], g
        assert g["labels"]["__meta_p2p_self"] == ("true" if n is n0 else "false"), g
        assert all(isinstance(v, str) for v in g["labels"].values()), g
        nid = g["labels"]["__meta_p2p_node_id"]
        assert nid == p2p.p_id(n.info()), (nid, n.info().get("id"))
    # every node answers for the whole network
    for n in nodes[1:]:
        assert len(sd(n)) == 3
    nodes[2].stop_ok()
    p2p.wait_until(lambda: len(sd(n0)) == 2, 15, what="the stopped node leaving the SD document")
    assert {g["labels"]["__meta_p2p_node"] for g in sd(n0)} == {nodes[0].name, nodes[1].name}


def main():
    root = p2p.tmpdir()
    net = p2p.MeshNetwork(extra_env={"PEER_TIMEOUT": "4"})
    nodes = p2p.start_mesh(net, root, ["m-a", "m-b", "m-c"])
    for n in nodes:
        p2p.wait_until(lambda n=n: p2p.lists_up(n, [m.name for m in nodes]), 30, what="%s sees all" % n.name)
    r = p2p.Runner()
    r.run(test_names_and_values, nodes)
    r.run(test_rpc_and_http_counters, nodes)
    r.run(test_service_discovery, nodes)
    r.finish()


if __name__ == "__main__":
    main()
