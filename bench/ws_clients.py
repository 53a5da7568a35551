#!/usr/bin/python3
"""ws_clients.py BUILD_DIR [--clients N] [--seconds S] [--json FILE]: what WebSocket subscribers
cost a node (issue 5 target: 1,000 clients subscribed to `metrics` cost <= 10 % of a core).

Starts a 2-node loopback network (n1, n2 joining through it; HTTP_RATE_LIMIT=0 on both, since
every client comes from 127.0.0.1 and the default per-address limit, 100 requests/s, would answer
most of the 1,000 upgrades 429), then measures n1's CPU time (utime + stime of /proc/PID/stat,
sampled at the start and the end of a window of S seconds, default 20) three times in the same
run: no client (the metrics feed does not run), 1 client subscribed to `metrics` (the feed runs:
system.*.monitor.status fan-out every second, n2's through the network) and N clients (default
1,000) subscribed. The clients are read in one selector loop that parses and counts every frame
and answers pings; every client must have received an event before its window starts. The
soft RLIMIT_NOFILE is raised to the hard limit (inherited by the nodes). Prints a table and one
JSON line: node CPU % of one core in each window, the cost of the N clients over no client and
over 1 client, events received per second, clients closed by the node, n1's RSS with the clients.
Uses tests/integration/p2p.py and ws_client.py.
"""

import json
import os
import resource
import selectors
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import p2p  # noqa: E402
import ws_client as wsc  # noqa: E402

_T0 = time.monotonic()
p2p.log = lambda *a: print("[%7.2f]" % (time.monotonic() - _T0), *a, file=sys.stderr, flush=True)


def arg(name, default):
    if name in sys.argv:
        return type(default)(sys.argv[sys.argv.index(name) + 1])
    return default


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    fields = st[st.rindex(")") + 2:].split()
    # fields[11], [12] are utime and stime (fields 14 and 15 of proc(5))
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Conn:
    """One subscribed client in the selector loop: frames are parsed and counted."""

    def __init__(self, w):
        self.w = w
        self.sock = w.sock
        self.buf = bytearray(w.buf)
        self.events = 0
        self.event_bytes = 0

    def pump(self):
        try:
            d = self.sock.recv(1 << 16)
        except BlockingIOError:
            return True
        if not d:
            return False
        self.buf += d
        while len(self.buf) >= 2:
            b0, b1 = self.buf[0], self.buf[1]
            n, at = b1 & 0x7F, 2
            if n == 126:
                if len(self.buf) < 4:
                    break
                n, at = struct.unpack(">H", self.buf[2:4])[0], 4
            elif n == 127:
                if len(self.buf) < 10:
                    break
                n, at = struct.unpack(">Q", self.buf[2:10])[0], 10
            if len(self.buf) < at + n:
                break
            op = b0 & 0x0F
            payload = bytes(self.buf[at:at + n])
            del self.buf[:at + n]
            if op == wsc.PING:
                self.sock.setblocking(True)
                self.sock.sendall(wsc.frame(wsc.PONG, payload))
                self.sock.setblocking(False)
            elif op == wsc.CLOSE:
                return False
            elif op == wsc.TEXT and payload.startswith(b'{"topic"'):
                self.events += 1
                self.event_bytes += n
        return True


def measure(pid, conns, seconds):
    sel = selectors.DefaultSelector()
    for c in conns:
        c.sock.setblocking(False)
        sel.register(c.sock, selectors.EVENT_READ, c)
    for c in conns:
        c.events = c.event_bytes = 0
    closed = 0
    c0, t0 = cpu_seconds(pid), time.monotonic()
    while time.monotonic() - t0 < seconds:
        for key, _ in sel.select(timeout=0.2):
            if not key.data.pump():
                sel.unregister(key.fileobj)
                closed += 1
    c1, t1 = cpu_seconds(pid), time.monotonic()
    sel.close()
    n_ev = sum(c.events for c in conns)
    measure.mean_bytes = sum(c.event_bytes for c in conns) / n_ev if n_ev else 0
    return 100.0 * (c1 - c0) / (t1 - t0), n_ev / (t1 - t0), closed


def main():
    build = p2p.build_dir()
    n_clients = arg("--clients", 1000)
    seconds = arg("--seconds", 20.0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, n_clients * 2 + 256)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # inherited by the nodes
    if want < n_clients + 64:
        raise SystemExit("the file descriptor limit (%d) is too low for %d clients" % (want, n_clients))
    net = p2p.MeshNetwork(extra_env={"HTTP_RATE_LIMIT": "0", "LOG_LEVEL": "WARNING"})
    root = p2p.tmpdir("p2p-bench-ws-")
    n1, n2 = p2p.start_mesh(net, root, ["n1", "n2"])
    p2p.wait_until(lambda: p2p.lists_up(n1, ["n1", "n2"]), 60, what="n1 lists n2 up")
    token = n1.token("viewer")
    pid = n1.proc.pid

    p2p.log("no client: %.0f s" % seconds)
    idle, _, _ = measure(pid, [], seconds)

    def open_clients(n):
        conns = []
        for _ in range(n):
            w = wsc.WS("127.0.0.1", n1.http_port, token=token, timeout=10).connect()
            w.send_json({"subscribe": "metrics"})
            conns.append(Conn(w))
        for c in conns:  # the subscription answer, then one event each
            c.w.buf = bytes(c.buf)
            c.w.recv_json(timeout=20, pred=lambda m: "subscribed" in m)
            c.w.recv_json(timeout=20, pred=lambda m: m.get("topic") == "metrics")
            c.buf = bytearray(c.w.buf)
        return conns

    one = open_clients(1)
    p2p.log("1 client subscribed: %.0f s" % seconds)
    single, rate1, _ = measure(pid, one, seconds)

    p2p.log("opening %d more clients" % (n_clients - 1))
    t = time.monotonic()
    conns = one + open_clients(n_clients - 1)
    p2p.log("%d clients subscribed in %.1f s, each got an event; measuring %.0f s"
            % (n_clients, time.monotonic() - t, seconds))
    busy, rate, closed = measure(pid, conns, seconds)
    rss = n1.rss_kb()
    out = {"clients": n_clients, "seconds": seconds,
           "node_cpu_pct": {"no_client": round(idle, 2), "one_client": round(single, 2),
                            "clients": round(busy, 2)},
           "clients_cpu_pct": round(busy - idle, 2), "clients_over_one_cpu_pct": round(busy - single, 2),
           "events_per_s": round(rate, 1), "events_per_client_per_s": round(rate / n_clients, 3),
           "events_per_s_one_client": round(rate1, 2), "event_mean_bytes": round(measure.mean_bytes),
           "clients_closed": closed,
           "node_rss_kb": rss, "target_cpu_pct": 10.0}
    print("%-34s %s" % ("window (%.0f s each)" % seconds, "n1 CPU % of one core"))
    print("%-34s %6.2f" % ("no client", idle))
    print("%-34s %6.2f   (%.2f events/s)" % ("1 client subscribed to metrics", single, rate1))
    print("%-34s %6.2f   (%.0f events/s, %.2f per client, %.0f bytes each; %d closed)"
          % ("%d clients subscribed" % n_clients, busy, rate, rate / n_clients, measure.mean_bytes, closed))
    print("cost of the %d clients: %.2f %% of a core over no client (%.2f over 1 client); target <= 10 %%: %s"
          % (n_clients, busy - idle, busy - single, "met" if busy - idle <= 10.0 else "NOT met"))
    print(json.dumps(out))
    path = arg("--json", "")
    if path:
        with open(path, "w") as f:
            json.dump(out, f, indent=1)
    for c in conns:
        c.w.shutdown()
    for n in (n1, n2):
        n.stop_ok(10)
    p2p.cleanup()


if __name__ == "__main__":
    main()
