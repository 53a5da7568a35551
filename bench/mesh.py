#!/usr/bin/python3
"""mesh.py BUILD_DIR [--nodes N] [--joins J] [--fanouts F] [--json FILE]: the mesh at scale.

Starts N p2p-node processes on loopback (n001 first, the others joining through it), then measures:
  - formation: from the last node's spawn until every node lists all N up;
  - idle RSS: VmRSS of the N nodes summed, 10 s after formation (and PSS, which splits shared pages);
  - fan-out: `system.*.node.info` from n001's socket, completion time over F calls, and how
    many entries answered with a result;
  - join: J more nodes started one at a time (each through a different existing node); the time
    from spawning one until every one of the N nodes lists it up.
Prints a table; writes the raw figures as JSON to FILE. Uses tests/integration/p2p.py.
"""

import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import p2p  # noqa: E402

_T0 = time.monotonic()
p2p.log = lambda *a: print("[%7.2f]" % (time.monotonic() - _T0), *a, file=sys.stderr, flush=True)


def arg(name, default):
    if name in sys.argv:
        return type(default)(sys.argv[sys.argv.index(name) + 1])
    return default


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * (len(xs) - 1) + 0.5))] if xs else float("nan")


def pss_bytes(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def listing(nodes, name, t0, timeout):
    """Polls every node until each lists name up; returns {node: seconds since t0} (missing ones
    absent when timeout passed)."""
    pending = {n.name: n for n in nodes}
    when = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for nm, n in list(pending.items()):
            try:
                if p2p.lists_up(n, [name]):
                    when[nm] = time.monotonic() - t0
                    del pending[nm]
            except (p2p.RpcError, OSError, EOFError) as e:
                p2p.log("%s: %r" % (nm, e))
        time.sleep(0.05)
    return when


def main():
    n_nodes = arg("--nodes", 100)
    joins = arg("--joins", 3)
    fanouts = arg("--fanouts", 10)
    out_json = arg("--json", "")
    root = p2p.tmpdir("p2p-mesh-bench-")
    net = p2p.MeshNetwork(extra_env={"LOG_LEVEL": "WARNING"})
    names = ["n%03d" % i for i in range(1, n_nodes + 1)]
    res = {"nodes": n_nodes}

    t_spawn0 = time.monotonic()
    nodes = p2p.start_mesh(net, root, names, ready_timeout=60)
    t_spawned = time.monotonic()
    res["all_ready_s"] = round(t_spawned - t_spawn0, 2)
    p2p.log("%d nodes answer rpc.ping after %.1fs" % (n_nodes, t_spawned - t_spawn0))

    # formation: every node lists every node up
    deadline = time.monotonic() + 180
    missing = None
    while time.monotonic() < deadline:
        missing = 0
        for n in nodes:
            view = p2p.members_by_name(n)
            missing += sum(1 for x in names if not (x in view and view[x].get("up") is True))
        if missing == 0:
            break
        p2p.log("formation: %d (node, member) pairs not yet listed up" % missing)
        time.sleep(1.0)
    res["formation_s"] = round(time.monotonic() - t_spawned, 2) if missing == 0 else None
    res["formation_missing_pairs"] = missing

    # idle RSS
    time.sleep(10)
    rss = [n.rss_kb() * 1024 for n in nodes]
    res["rss_total_bytes"] = sum(rss)
    res["rss_node_median_bytes"] = int(statistics.median(rss))
    res["rss_node_max_bytes"] = max(rss)
    res["pss_total_bytes"] = sum(pss_bytes(n.proc.pid) for n in nodes)  # shared pages split, not counted N times

    # fan-out
    times, answered, errors = [], [], []
    n1 = nodes[0]
    for _ in range(fanouts):
        t0 = time.monotonic()
        try:
            r = n1.call("system.*.node.info", {"_timeout": 5}, timeout=30)
        except p2p.RpcError as e:
            errors.append(repr(e.err))
            continue
        times.append(time.monotonic() - t0)
        answered.append(sum(1 for v in r.values() if "result" in v))
        bad = [k for k, v in r.items() if "result" not in v]
        if bad:
            errors.append("%d entries without result, e.g. %s: %r" % (len(bad), bad[0], r[bad[0]]))
        time.sleep(0.2)
    res["fanout_s"] = [round(t, 4) for t in times]
    res["fanout_answered"] = answered
    res["fanout_errors"] = errors[:5]

    # joins
    join_s = []
    for j in range(joins):
        name = "x%02d" % (j + 1)
        via = nodes[(j * 37 + 11) % len(nodes)]
        t0 = time.monotonic()
        x = p2p.Node(net, name, root, bootstrap=via.dht_addr).start()
        x.wait_ready(30)
        ready = time.monotonic() - t0
        when = listing(nodes, name, t0, 60)
        last = max(when.values()) if len(when) == len(nodes) else None
        p2p.log("%s (via %s): ready after %.3fs, listed by %d/%d nodes, the last after %s s"
                % (name, via.name, ready, len(when), len(nodes), "%.2f" % last if last else "-"))
        join_s.append({"ready_s": round(ready, 3), "listed_by": len(when),
                       "all_listed_s": round(last, 2) if last else None,
                       "p50_listed_s": round(pct(list(when.values()), 0.5), 2) if when else None})
        nodes.append(x)
    res["joins"] = join_s

    # table
    print("nodes                         %d" % n_nodes)
    print("all answer rpc.ping after     %.2f s (sequential spawn)" % res["all_ready_s"])
    print("formation (all list all up)   %s" % ("%.2f s after the last spawn" % res["formation_s"]
                                               if res["formation_s"] is not None
                                               else "NOT reached in 180 s (%d pairs missing)" % missing))
    print("idle RSS total                %.1f MB (median %.2f MB, max %.2f MB per node)"
          % (res["rss_total_bytes"] / 1e6, res["rss_node_median_bytes"] / 1e6, res["rss_node_max_bytes"] / 1e6))
    print("idle PSS total                %.1f MB (shared pages divided among the processes)"
          % (res["pss_total_bytes"] / 1e6))
    if times:
        print("fan-out system.*.node.info    p50 %.1f ms, max %.1f ms over %d calls; entries with a result: %s"
              % (pct(times, 0.5) * 1e3, max(times) * 1e3, len(times), sorted(set(answered))))
    if errors:
        print("fan-out errors                %s" % errors[:3])
    for k, j in enumerate(join_s):
        print("join %d: listed by %d/%d nodes, all after %s s (p50 %s s); ready after %.3f s"
              % (k + 1, j["listed_by"], n_nodes + k, j["all_listed_s"], j["p50_listed_s"], j["ready_s"]))
    if out_json:
        with open(out_json, "w") as f:
            json.dump(res, f, indent=1)
    p2p.cleanup()


if __name__ == "__main__":
    main()
