#!/usr/bin/env python3
"""`./run.sh demo` end to end (issue 5, point 7), with the build under test (DEMO_BUILD), in a
temporary DEMO_DIR, on free ports (DEMO_DHT_PORT / DEMO_HTTP_PORT):

- it prints the five nodes' API URLs and an admin login, and every URL answers /health;
- the printed password logs in on every node (added on node1, replicated), the token it returns
  reads /api/nodes, which lists the five nodes;
- the printed admin token works on the printed socket (p2p-rpc nodes);
- a second run reuses the same network key, password and data, and logs in again;
- SIGTERM stops the demo and every node it started.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402
from p2p import log, wait_until  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
END = "Ctrl-C stops the demo."


def free_run(n):
    """A base port with n consecutive ports free for TCP and UDP on 127.0.0.1."""
    for _ in range(200):
        base = p2p.free_port()
        if base + n >= 65535:
            continue
        ok = True
        socks = []
        try:
            for p in range(base, base + n):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    s = socket.socket(socket.AF_INET, kind)
                    socks.append(s)
                    s.bind(("127.0.0.1", p))
        except OSError:
            ok = False
        finally:
            for s in socks:
                s.close()
        if ok:
            return base
    raise RuntimeError("no run of %d free ports" % n)


def http(url, body=None, token=None, timeout=5):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


class Demo:
    def __init__(self, d):
        self.dir = d
        self.lines = []

    def start(self, dht, http_port):
        env = dict(os.environ, DEMO_DIR=self.dir, DEMO_BUILD=p2p.build_dir(),
                   DEMO_DHT_PORT=str(dht), DEMO_HTTP_PORT=str(http_port))
        self.proc = subprocess.Popen(["bash", os.path.join(ROOT, "run.sh"), "demo"], env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        end = time.monotonic() + 90
        while time.monotonic() < end:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.decode(errors="replace").rstrip("\n"))
            if self.lines[-1].strip() == END:
                return "\n".join(self.lines)
        self.stop()
        raise AssertionError("demo did not print its summary:\n" + "\n".join(self.lines))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            out, _ = self.proc.communicate()
            raise AssertionError("demo did not stop within 30 s of SIGTERM")
        self.lines += out.decode(errors="replace").splitlines()
        return self.proc.returncode


def node_pids(d):
    """Pids of p2p-node processes whose command line names the demo dir."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"p2p-node") and any(d.encode() in a for a in cmd):
            out.append(int(pid))
    return out


def check_run(c, text):
    urls = re.findall(r"http://127\.0\.0\.1:(\d+)/ ", text)
    assert [int(u) for u in urls] == [c.http + i for i in range(5)], (urls, text)
    m = re.search(r"user admin, password (\S+)", text)
    assert m, text
    password = m.group(1)
    with open(os.path.join(c.dir, "admin.password")) as f:
        assert f.read().strip() == password
    for i in range(5):
        st, body = http("http://127.0.0.1:%d/health" % (c.http + i))
        assert st == 200 and body["status"] == "ok", (i, st, body)
    # the login replicates from node1: every node accepts it within 10 s
    tokens = {}

    def logged_in_everywhere():
        for i in range(5):
            if i in tokens:
                continue
            st, body = http("http://127.0.0.1:%d/api/auth/login" % (c.http + i),
                            {"username": "admin", "password": password})
            if st == 200:
                tokens[i] = body["access_token"]
        return len(tokens) == 5

    wait_until(logged_in_everywhere, 10, what="the demo's admin login on all five nodes")
    st, body = http("http://127.0.0.1:%d/api/nodes" % (c.http + 4), token=tokens[4])
    assert st == 200, (st, body)
    names = sorted(n.get("name") for n in (body if isinstance(body, list) else body.get("nodes", [])))
    assert names == ["node%d" % i for i in range(1, 6)], body
    # the p2p-rpc it tells to run is there
    m = re.search(r"^\s+(\S*p2p-rpc) nodes", text, re.M)
    assert m and os.access(os.path.join(ROOT, m.group(1)), os.X_OK), (m and m.group(1), text)
    # the admin token and socket it prints
    with open(os.path.join(c.dir, "admin.token")) as f:
        tok = f.read().strip()
    r = subprocess.run([p2p.rpc_bin(), "nodes"], capture_output=True, timeout=30,
                       env=dict(os.environ, P2P_TOKEN=tok,
                                P2P_SOCKET=os.path.join(c.dir, "node1", "rpc.sock")))
    assert r.returncode == 0, r
    for i in range(1, 6):
        assert b"node%d" % i in r.stdout, r.stdout
    return password


class Ctx:
    pass


def test_demo_twice(c):
    d = Demo(c.dir)
    text = d.start(c.dht, c.http)
    log("demo printed:\n" + text)
    try:
        c.password = check_run(c, text)
    finally:
        rc = d.stop()
    assert "demo stopped" in d.lines, d.lines[-5:]
    wait_until(lambda: not node_pids(c.dir), 10, what="every demo node stopped")
    log("demo exit code after SIGTERM: %s" % rc)
    # again, on the same data: same password and key, the user still there
    with open(os.path.join(c.dir, "network.key")) as f:
        key = f.read()
    d = Demo(c.dir)
    text = d.start(c.dht, c.http)
    try:
        assert check_run(c, text) == c.password
        with open(os.path.join(c.dir, "network.key")) as f:
            assert f.read() == key
    finally:
        d.stop()
    wait_until(lambda: not node_pids(c.dir), 10, what="every demo node stopped")


def main():
    c = Ctx()
    c.dir = p2p.tmpdir("p2p-demo-")
    c.dht = free_run(5)
    c.http = free_run(5)
    r = p2p.Runner()
    r.run(test_demo_twice, c)
    for pid in node_pids(c.dir):
        os.kill(pid, signal.SIGKILL)
    r.finish()


if __name__ == "__main__":
    main()
