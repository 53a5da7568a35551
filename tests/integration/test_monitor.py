#!/usr/bin/python3
"""test_monitor.py: the monitor domain of a real p2p-node (issue 4).

One node on loopback with --alert-webhook pointing at an HTTP receiver this script runs on
127.0.0.1 (a small http.server subclass that records every POSTed JSON body). Checks:
- monitor.status agrees with /proc and statvfs read here: memory total exact, available within
  5 %, load within 0.5 or 20 %, one cpu entry per core of /proc/stat, "/" listed with the size
  os.statvfs gives (within 1 %), this node's pid;
- monitor.metrics lists the documented names; monitor.history returns points after a few seconds,
  steps average, an unknown metric or a bad step is INVALID_PARAMS naming the argument;
- an alert that holds now fires (alerts shows firing, events has alert.firing, the receiver got
  the JSON), changing the rule so that it no longer holds resolves it (alert.resolved event and
  POST), removing a firing rule resolves it too, removing an absent one is NOT_FOUND;
- a viewer reads status but gets PERMISSION_DENIED on alert_set and alert_remove;
- after a restart the history points written before it are still returned and the rules remain.
Usage: test_monitor.py BUILD_DIR
"""

import http.server
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402


class Receiver:
    """An HTTP server on 127.0.0.1 recording the JSON bodies POSTed to it."""

    def __init__(self):
        self.bodies = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"unparsable": body.decode(errors="replace")}
                with outer.lock:
                    outer.bodies.append((self.headers.get("Content-Type"), doc))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/hook" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self, type_, name):
        with self.lock:
            return [d for ct, d in self.bodies
                    if ct == "application/json" and d.get("type") == type_ and d.get("name") == name]


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    return out


def cores_in_proc_stat():
    with open("/proc/stat") as f:
        return sum(1 for line in f if line.startswith("cpu") and line[3].isdigit())


def expect_error(fn, code, param=None):
    try:
        fn()
    except p2p.RpcError as e:
        assert e.code == code, "expected %d, got %r" % (code, e.err)
        if param is not None:
            data = e.err.get("data") or {}
            assert data.get("param") == param, "error data %r does not name %s" % (data, param)
        return e
    raise AssertionError("expected error %d, the call succeeded" % code)


def status(node):
    return p2p.wait_until(lambda: node.call("system.local.monitor.status"), 10, what="a first sample")


def test_status(node):
    st = status(node)
    mem = meminfo()
    m = st["memory"]
    assert m["total"] == mem["MemTotal"], (m["total"], mem["MemTotal"])
    avail = mem["MemAvailable"]
    assert abs(m["available"] - avail) <= 0.05 * avail, (m["available"], avail)
    assert m["used"] == m["total"] - m["available"]
    assert 0 <= m["percent"] <= 100
    sw = st["swap"]
    assert sw["total"] == mem["SwapTotal"]
    with open("/proc/loadavg") as f:
        load = [float(x) for x in f.read().split()[:3]]
    for got, want in zip(st["load"], load):
        assert abs(got - want) <= max(0.5, 0.2 * want), (st["load"], load)
    ncores = cores_in_proc_stat()
    assert len(st["cpu"]["cores"]) == ncores, (st["cpu"]["cores"], ncores)
    for k in ("total_percent", "user", "system", "iowait", "idle"):
        assert 0 <= st["cpu"][k] <= 100, (k, st["cpu"])
    fs = {f["mount"]: f for f in st["filesystems"]}
    assert "/" in fs, fs.keys()
    sv = os.statvfs("/")
    size = sv.f_blocks * sv.f_frsize
    assert abs(fs["/"]["size"] - size) <= 0.01 * size, (fs["/"], size)
    assert 0 <= fs["/"]["used_percent"] <= 100
    for f in st["filesystems"]:
        assert f["type"] not in ("proc", "sysfs", "cgroup", "cgroup2", "devpts"), f
    with open("/proc/uptime") as f:
        up = float(f.read().split()[0])
    assert abs(st["uptime_s"] - up) < 10, (st["uptime_s"], up)
    assert abs(st["time"] - time.time()) < 10
    assert st["node"]["pid"] == node.proc.pid
    assert st["node"]["rss"] > 0 and st["node"]["threads"] >= 1
    assert st["processes"] > 1
    assert "lo" in st["network"]["interfaces"]
    p2p.log("status: cpu %.1f%% load %s mem %.1f%% fs / %.1f%%" % (
        st["cpu"]["total_percent"], st["load"], m["percent"], fs["/"]["used_percent"]))


def test_history(node):
    names = {m["name"] for m in node.call("system.local.monitor.metrics")}
    for n in ("cpu.total", "cpu.core.0", "load.1", "load.5", "load.15", "memory.used_percent",
              "memory.available", "swap.used_percent", "network.rx_bytes_per_s",
              "network.tx_bytes_per_s", "fs.used_percent:/", "node.rss", "node.cpu", "processes"):
        assert n in names, (n, sorted(names))

    def points():
        h = node.call("system.local.monitor.history", {"metric": "memory.available"})
        return h if len(h["points"]) >= 4 else None

    h = p2p.wait_until(points, 20, what="history points")
    assert h["metric"] == "memory.available" and h["step"] == 1
    ts = [p[0] for p in h["points"]]
    assert ts == sorted(ts) and len(set(ts)) == len(ts)
    assert abs(ts[-1] - time.time()) < 10
    mem = meminfo()["MemAvailable"]
    assert all(abs(p[1] - mem) <= 0.1 * mem for p in h["points"])
    # step 60: at most two buckets (this minute and maybe the previous one), averages
    h60 = node.call("system.local.monitor.history", {"metric": "memory.available", "step": 60})
    assert h60["step"] == 60 and 1 <= len(h60["points"]) <= 2
    assert all(p[0] % 60 == 0 for p in h60["points"])
    # since/until bound the points
    mid = ts[len(ts) // 2]
    h2 = node.call("system.local.monitor.history", {"metric": "memory.available", "since": mid,
                                                    "until": ts[-1]})
    assert [p[0] for p in h2["points"]][0] == mid
    expect_error(lambda: node.call("system.local.monitor.history", {"metric": "cpu.bogus"}),
                 p2p.INVALID_PARAMS, "metric")
    expect_error(lambda: node.call("system.local.monitor.history", {"metric": "cpu.total", "step": 90}),
                 p2p.INVALID_PARAMS, "step")
    return ts


def last_event_id(node):
    ev = node.call("system.local.monitor.events")
    return ev[-1]["id"] if ev else 0


def test_alert_fires_and_resolves(node, rx):
    since = last_event_id(node)
    rule = {"name": "mem-any", "metric": "memory.used_percent", "op": ">", "threshold": 0,
            "for_seconds": 1, "severity": "critical"}
    r = node.call("system.local.monitor.alert_set", rule)
    assert r["name"] == "mem-any" and r["op"] == ">" and r["severity"] == "critical"

    def firing():
        a = {x["name"]: x for x in node.call("system.local.monitor.alerts")}
        return a["mem-any"] if a["mem-any"]["state"] == "firing" else None

    a = p2p.wait_until(firing, 15, what="the alert firing")
    assert a["value"] > 0 and a["since"] > 0
    ev = node.call("system.local.monitor.events", {"since_id": since})
    fired = [e for e in ev if e["type"] == "alert.firing" and e["name"] == "mem-any"]
    assert len(fired) == 1, ev
    assert fired[0]["metric"] == "memory.used_percent" and fired[0]["severity"] == "critical"
    posted = p2p.wait_until(lambda: rx.events("alert.firing", "mem-any"), 15, what="the firing POST")
    assert posted[0]["metric"] == "memory.used_percent" and posted[0]["threshold"] == 0
    assert posted[0]["node"] == node.name and posted[0]["id"] == fired[0]["id"]

    # the same rule no longer holding: resolved, an event and a POST
    rule.update(op="<", threshold=0.0)
    node.call("system.local.monitor.alert_set", rule)
    p2p.wait_until(lambda: [x for x in node.call("system.local.monitor.alerts")
                            if x["name"] == "mem-any" and x["state"] == "ok"], 15, what="resolved")
    ev = node.call("system.local.monitor.events", {"since_id": fired[0]["id"]})
    assert [e["type"] for e in ev if e["name"] == "mem-any"] == ["alert.resolved"], ev
    p2p.wait_until(lambda: rx.events("alert.resolved", "mem-any"), 15, what="the resolved POST")

    # a firing rule removed resolves too
    node.call("system.local.monitor.alert_set", {"name": "load-any", "metric": "load.1", "op": ">=",
                                                  "threshold": -1, "for_seconds": 0,
                                                  "severity": "info"})
    p2p.wait_until(lambda: rx.events("alert.firing", "load-any"), 15, what="load-any firing POST")
    assert node.call("system.local.monitor.alert_remove", {"name": "load-any"})["removed"] == "load-any"
    p2p.wait_until(lambda: rx.events("alert.resolved", "load-any"), 15, what="load-any resolved POST")
    assert "load-any" not in [x["name"] for x in node.call("system.local.monitor.alerts")]
    expect_error(lambda: node.call("system.local.monitor.alert_remove", {"name": "load-any"}),
                 p2p.NOT_FOUND)
    # bad rules
    bad = dict(rule, name="bad")
    expect_error(lambda: node.call("system.local.monitor.alert_set", dict(bad, metric="nope")),
                 p2p.INVALID_PARAMS, "metric")
    expect_error(lambda: node.call("system.local.monitor.alert_set", dict(bad, op="=>")),
                 p2p.INVALID_PARAMS, "op")
    expect_error(lambda: node.call("system.local.monitor.alert_set", dict(bad, severity="fatal")),
                 p2p.INVALID_PARAMS, "severity")
    expect_error(lambda: node.call("system.local.monitor.alert_set", dict(bad, threshold="x")),
                 p2p.INVALID_PARAMS, "threshold")


def test_viewer(node):
    c = p2p.Client(node.sock_path)
    try:
        c.auth(node.token("viewer"))
        assert c.call("system.local.monitor.status")["memory"]["total"] > 0
        assert isinstance(c.call("system.local.monitor.alerts"), list)
        expect_error(lambda: c.call("system.local.monitor.alert_set", {
            "name": "v", "metric": "cpu.total", "op": ">", "threshold": 1, "for_seconds": 0,
            "severity": "info"}), p2p.PERMISSION_DENIED)
        expect_error(lambda: c.call("system.local.monitor.alert_remove", {"name": "mem-any"}),
                     p2p.PERMISSION_DENIED)
    finally:
        c.close()
    assert "v" not in [x["name"] for x in node.call("system.local.monitor.alerts")]


def test_restart(node, before):
    # samples of the last seconds wait in memory (written every 5 s): stopping must write them
    node.call("system.local.monitor.history", {"metric": "memory.available"})  # flushes
    time.sleep(2.5)
    last = int(time.time()) - 1
    node.stop_ok()
    node.start()
    node.wait_ready()
    h = node.call("system.local.monitor.history", {"metric": "memory.available",
                                                    "since": before[0], "until": before[-1]})
    got = {p[0] for p in h["points"]}
    missing = [t for t in before if t not in got]
    assert not missing, "points lost over the restart: %r" % missing
    h = node.call("system.local.monitor.history", {"metric": "memory.available",
                                                    "since": before[-1], "until": last})
    assert max(p[0] for p in h["points"]) >= last - 1, (h["points"], last)
    names = [x["name"] for x in node.call("system.local.monitor.alerts")]
    assert "mem-any" in names, names
    status(node)


def main():
    rx = Receiver()
    net = p2p.Network()
    root = p2p.tmpdir()
    node = p2p.Node(net, "mon01", root, extra=["--alert-webhook", rx.url])
    node.start()
    node.wait_ready()
    r = p2p.Runner()
    r.run(test_status, node)
    hist = []

    def test_history_points():
        hist.extend(test_history(node))

    r.run(test_history_points)
    r.run(test_alert_fires_and_resolves, node, rx)
    r.run(test_viewer, node)
    if hist:
        r.run(test_restart, node, hist)
    node.stop_ok()
    r.finish()


if __name__ == "__main__":
    main()
