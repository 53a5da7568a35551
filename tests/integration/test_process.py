#!/usr/bin/python3
"""test_process.py: the process domain's list, info, signal and run methods against a real node.

list and info are checked against /proc; signal kills real children of this test; run executes real
commands: arguments passed literally (no shell), stdin, exit codes, death by signal, the output cap,
the clean environment, timeouts that kill the whole process group, job.output notifications arriving
before the response, the bound on concurrent jobs, the caller going away, and the roles (viewer and
operator may not run; viewer may not signal). Usage: test_process.py BUILD_DIR
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402
from p2p import (INVALID_PARAMS, NOT_FOUND, PERMISSION_DENIED, RESOURCE_EXHAUSTED,  # noqa: E402
                 Client, RpcError, wait_until)

import msgpack  # noqa: E402

P = "system.local.process."
MAX_OUTPUT = 1024 * 1024
HZ = os.sysconf("SC_CLK_TCK")
CHILDREN = []


def expect_error(fn, code, param=None):
    try:
        fn()
    except RpcError as e:
        assert e.code == code, "expected %d, got %r" % (code, e.err)
        if param is not None:
            data = e.err.get("data") or {}
            assert data.get("param") == param, "expected param %r in %r" % (param, e.err)
        return e
    raise AssertionError("expected error %d" % code)


def proc_stat(pid):
    """(comm, state, ppid, pgrp, starttime ticks, rss pages, threads) from /proc, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            s = f.read().decode(errors="replace")
    except OSError:
        return None
    comm = s[s.index("(") + 1:s.rindex(")")]
    f = s[s.rindex(")") + 2:].split()
    return {"name": comm, "state": f[0], "ppid": int(f[1]), "pgrp": int(f[2]),
            "starttime": int(f[19]), "rss": int(f[21]) * os.sysconf("SC_PAGE_SIZE"),
            "threads": int(f[17])}


def btime():
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return int(line.split()[1])
    raise AssertionError("no btime")


def live_group_members(pgid):
    """Pids of processes in group pgid that are not zombies."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = proc_stat(int(d))
            if st and st["pgrp"] == pgid and st["state"] not in ("Z", "X"):
                out.append(int(d))
    return out


def spawn(argv, **kw):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, **kw)
    CHILDREN.append(p)
    return p


class StreamClient(Client):
    """A client that keeps the notifications read while waiting for a response."""

    def request_stream(self, method, params):
        self.msgid += 1
        mid = self.msgid
        self.sock.sendall(msgpack.packb([0, mid, method, [params]], use_bin_type=True))
        notes = []
        for _ in range(100000):
            m = self.read_msg()
            if m[0] == 2:
                notes.append(m)
            elif m[0] == 1 and m[1] == mid:
                return notes, m[2], m[3]
        raise AssertionError("no response")


# --- list and info ---------------------------------------------------------------------------

def test_list(node, tmp):
    res = node.call(P + "list", {})
    assert isinstance(res, list) and len(res) > 3
    by_pid = {p["pid"]: p for p in res}
    assert sorted(by_pid) == [p["pid"] for p in res], "default order is pid"
    me = by_pid.get(node.proc.pid)
    assert me, "the node's own pid is listed"
    st = proc_stat(node.proc.pid)
    assert me["name"] == "p2p-node" == st["name"]
    assert me["ppid"] == os.getpid()
    assert me["user"] == pwd.getpwuid(os.getuid()).pw_name
    assert me["cmdline"].startswith(p2p.node_bin() + " --name " + node.name), me["cmdline"]
    assert me["state"] in "RSD" and len(me["state"]) == 1
    assert abs(me["rss"] - st["rss"]) < 16 * 1024 * 1024, (me["rss"], st["rss"])
    assert me["start_time"] == btime() + st["starttime"] // HZ
    assert abs(me["start_time"] - time.time()) < 600
    assert me["threads"] >= 1 and isinstance(me["cpu_percent"], float)
    assert 0.0 <= me["cpu_percent"] <= 100.0 * os.cpu_count() + 1
    for p in res:
        assert set(p) == {"pid", "ppid", "user", "name", "cmdline", "state", "cpu_percent", "rss",
                          "start_time", "threads"}, p

    # names with spaces and parentheses; filter, limit and sorts
    odd = os.path.join(tmp, "a) b")
    shutil.copy("/bin/sleep", odd)
    c = spawn([odd, "60"])
    res = node.call(P + "list", {"filter": "a) b"})
    hit = [p for p in res if p["pid"] == c.pid]
    assert hit and hit[0]["name"] == "a) b" and hit[0]["ppid"] == os.getpid(), res
    assert hit[0]["cmdline"] == odd + " 60"
    for p in res:
        assert "a) b" in p["name"] or "a) b" in p["cmdline"] or "a) b" in p["user"]
    c.kill()
    c.wait()
    assert len(node.call(P + "list", {"limit": 3})) == 3
    rss = [p["rss"] for p in node.call(P + "list", {"sort": "rss"})]
    assert rss == sorted(rss, reverse=True)
    names = [p["name"] for p in node.call(P + "list", {"sort": "name", "reverse": True})]
    assert names == sorted(names, reverse=True)
    starts = [p["start_time"] for p in node.call(P + "list", {"sort": "start"})]
    assert starts == sorted(starts)
    cpu = [p["cpu_percent"] for p in node.call(P + "list", {"sort": "cpu", "limit": 20})]
    assert cpu == sorted(cpu, reverse=True)
    assert node.call(P + "list", {"filter": "no-such-process-name-xyz"}) == []
    expect_error(lambda: node.call(P + "list", {"sort": "size"}), INVALID_PARAMS, "sort")
    expect_error(lambda: node.call(P + "list", {"limit": 0}), INVALID_PARAMS, "limit")

    # a busy child: a recent-sample CPU figure near 100 %
    busy = spawn([sys.executable, "-c", "import time\nt=time.time()\nwhile time.time()-t<20: pass"])
    node.call(P + "list", {"filter": "while time"})
    time.sleep(1.0)
    got = [p for p in node.call(P + "list", {"filter": "while time"}) if p["pid"] == busy.pid]
    assert got and got[0]["cpu_percent"] > 5.0, got
    busy.kill()
    busy.wait()


def test_info(node, tmp):
    pid = node.proc.pid
    i = node.call(P + "info", {"pid": pid})
    assert i["pid"] == pid and i["name"] == "p2p-node" and i["ppid"] == os.getpid()
    assert i["exe"] == os.path.realpath(p2p.node_bin())
    assert i["cwd"] == os.readlink("/proc/%d/cwd" % pid)
    assert abs(i["fds"] - len(os.listdir("/proc/%d/fd" % pid))) < 4
    assert i["environ_count"] > 0
    assert i["status"]["VmRSS"] > 0 and i["status"]["VmSize"] >= i["status"]["VmRSS"]
    assert i["pgid"] == os.getpgid(pid) and i["sid"] == os.getsid(pid)
    assert i["uid"] == os.getuid() and isinstance(i["cgroup"], str)
    for k in ("user", "cmdline", "state", "cpu_percent", "rss", "start_time", "threads", "nice"):
        assert k in i, k
    expect_error(lambda: node.call(P + "info", {"pid": 2 ** 31 - 1}), NOT_FOUND, "pid")
    expect_error(lambda: node.call(P + "info", {"pid": 0}), INVALID_PARAMS, "pid")
    # a thread id is not a process
    tids = [int(t) for t in os.listdir("/proc/%d/task" % pid) if int(t) != pid]
    if tids:
        expect_error(lambda: node.call(P + "info", {"pid": tids[0]}), NOT_FOUND, "pid")


# --- signal ----------------------------------------------------------------------------------

def test_signal(node, tmp):
    c = spawn(["sleep", "100"])
    r = node.call(P + "signal", {"pid": c.pid, "signal": "TERM"})
    assert r == {"signaled": [c.pid]}
    assert c.wait(10) == -signal.SIGTERM
    c = spawn(["sleep", "100"])
    node.call(P + "signal", {"pid": c.pid, "signal": 9})
    assert c.wait(10) == -signal.SIGKILL

    # by name: every process of that name (a private copy of sleep)
    name = "p2psigtest%d" % os.getpid()
    exe = os.path.join(tmp, name)
    shutil.copy("/bin/sleep", exe)
    a, b = spawn([exe, "100"]), spawn([exe, "101"])
    wait_until(lambda: all(proc_stat(p.pid) and proc_stat(p.pid)["name"] == name[:15] for p in (a, b)),
               10, 0.05, "children exec'd")
    r = node.call(P + "signal", {"name": name, "signal": "sigusr1"})
    assert sorted(r["signaled"]) == sorted([a.pid, b.pid]), r
    assert a.wait(10) == -signal.SIGUSR1 and b.wait(10) == -signal.SIGUSR1

    expect_error(lambda: node.call(P + "signal", {"name": "no-such-process-xyz", "signal": "TERM"}),
                 NOT_FOUND, "name")
    expect_error(lambda: node.call(P + "signal", {"pid": 2 ** 31 - 1, "signal": "TERM"}), NOT_FOUND, "pid")
    expect_error(lambda: node.call(P + "signal", {"signal": "TERM"}), INVALID_PARAMS, "pid")
    expect_error(lambda: node.call(P + "signal", {"pid": 5, "name": "x", "signal": "TERM"}),
                 INVALID_PARAMS, "name")
    expect_error(lambda: node.call(P + "signal", {"pid": 1, "signal": "TERM"}), PERMISSION_DENIED, "pid")
    expect_error(lambda: node.call(P + "signal", {"pid": node.proc.pid, "signal": "KILL"}),
                 PERMISSION_DENIED, "pid")
    # by name, the node never signals itself (other nodes of concurrent tests may match: CONT is
    # harmless to them)
    try:
        r = node.call(P + "signal", {"name": "p2p-node", "signal": "CONT"})
        assert node.proc.pid not in r["signaled"], r
    except RpcError as e:
        assert e.code == PERMISSION_DENIED and e.err["data"]["param"] == "name", e.err
    expect_error(lambda: node.call(P + "signal", {"pid": 5, "signal": "FOO"}), INVALID_PARAMS, "signal")
    expect_error(lambda: node.call(P + "signal", {"pid": 5, "signal": 0}), INVALID_PARAMS, "signal")
    assert node.alive()


# --- run -------------------------------------------------------------------------------------

def run(node, params, timeout=20.0):
    return node.call(P + "run", params, timeout=timeout)


def test_run_literal(node, tmp):
    target = os.path.join(tmp, "x")
    for arg in ["a;touch " + target, "a|touch " + target, "a&touch " + target, "$(touch %s)" % target,
                "`touch %s`" % target, "a\ntouch " + target, "'\"$HOME*"]:
        r = run(node, {"argv": ["echo", arg]})
        assert r["exit_code"] == 0 and r["signal"] is None and not r["timed_out"], r
        assert r["stdout"] == (arg + "\n").encode(), r
        assert r["stderr"] == b"" and not r["stdout_truncated"] and not r["stderr_truncated"]
        assert isinstance(r["job_id"], int) and r["duration_ms"] >= 0
    assert not os.path.exists(target)


def test_run_status(node, tmp):
    r = run(node, {"argv": ["cat"], "stdin": "hello\n"})
    assert r["stdout"] == b"hello\n" and r["exit_code"] == 0
    blob = bytes(range(256)) * 1000
    r = run(node, {"argv": ["sha256sum"], "stdin": blob})
    import hashlib
    assert r["stdout"].split()[0].decode() == hashlib.sha256(blob).hexdigest()
    r = run(node, {"argv": ["cat"]})  # no stdin: /dev/null
    assert r["stdout"] == b"" and r["exit_code"] == 0
    r = run(node, {"argv": ["sh", "-c", "echo out; echo err >&2; exit 3"]})
    assert (r["exit_code"], r["signal"], r["stdout"], r["stderr"]) == (3, None, b"out\n", b"err\n")
    r = run(node, {"argv": ["sh", "-c", "kill -TERM $$"]})
    assert r["exit_code"] is None and r["signal"] == "TERM" and not r["timed_out"], r
    r = run(node, {"argv": ["head", "-c", "3000000", "/dev/zero"]})
    assert len(r["stdout"]) == MAX_OUTPUT and r["stdout_truncated"] and not r["stderr_truncated"]
    assert r["exit_code"] == 0
    r = run(node, {"argv": ["env"], "env": {"FOO": "bar baz", "LANG": "C"}})
    lines = r["stdout"].decode().splitlines()
    assert sorted(lines) == sorted(["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                    "LANG=C", "HOME=/", "FOO=bar baz"]), lines
    r = run(node, {"argv": ["pwd"]})
    assert r["stdout"] == b"/\n"
    r = run(node, {"argv": ["pwd"], "cwd": tmp})
    assert r["stdout"] == (tmp + "\n").encode()
    r = run(node, {"argv": ["ls", "/proc/self/fd"]})
    fds = sorted(int(x) for x in r["stdout"].split())
    assert fds == [0, 1, 2, 3], "the node's descriptors leak into commands: %r" % fds
    expect_error(lambda: run(node, {"argv": ["no-such-command-xyz"]}), NOT_FOUND, "argv")
    expect_error(lambda: run(node, {"argv": []}), INVALID_PARAMS, "argv")
    expect_error(lambda: run(node, {"argv": ["echo", 5]}), INVALID_PARAMS, "argv")
    expect_error(lambda: run(node, {"argv": ["echo", "a\x00b"]}), INVALID_PARAMS, "argv")
    expect_error(lambda: run(node, {"argv": ["env"], "env": {"A=B": "c"}}), INVALID_PARAMS, "env")
    expect_error(lambda: run(node, {"argv": ["env"], "env": {"A": 1}}), INVALID_PARAMS, "env")
    expect_error(lambda: run(node, {"argv": ["pwd"], "cwd": "relative"}), INVALID_PARAMS, "cwd")
    expect_error(lambda: run(node, {"argv": ["pwd"], "cwd": tmp + "/nope"}), INVALID_PARAMS, "cwd")
    expect_error(lambda: run(node, {"argv": ["true"], "timeout": 0}), INVALID_PARAMS, "timeout")
    expect_error(lambda: run(node, {"argv": ["true"], "timeout": -0.5}), INVALID_PARAMS, "timeout")


def test_run_timeout_kills_group(node, tmp):
    r = run(node, {"argv": ["sh", "-c", "sleep 100 & echo $!; sleep 100"], "timeout": 1})
    assert r["timed_out"] and r["signal"] == "KILL" and r["exit_code"] is None, r
    bg = int(r["stdout"].split()[0])
    assert r["pid"] > 1
    # SIGKILL was sent to the group before the answer; the kernel finishes the kills asynchronously
    wait_until(lambda: live_group_members(r["pid"]) == [], 10, 0.05, "no live member of the group")
    st = proc_stat(bg)
    assert st is None or st["state"] in ("Z", "X"), st
    # a fractional timeout, and the call's own deadline as the bound (answered, not TIMEOUT)
    r = run(node, {"argv": ["sleep", "100"], "timeout": 0.5})
    assert r["timed_out"] and r["signal"] == "KILL"
    # (an answer after the deadline would be a TIMEOUT error, not this result)
    r = run(node, {"argv": ["sleep", "100"], "_timeout": 2})
    assert r["timed_out"] and r["signal"] == "KILL", r
    r = run(node, {"argv": ["sleep", "100"], "timeout": 100, "_timeout": 1})
    assert r["timed_out"] and r["signal"] == "KILL", r
    # when the command exits, what it left in its group is killed too
    r = run(node, {"argv": ["sh", "-c", "sleep 100 >/dev/null 2>&1 & echo $!"]})
    assert r["exit_code"] == 0 and not r["timed_out"]
    wait_until(lambda: live_group_members(r["pid"]) == [], 10, 0.05, "leftovers killed")


def test_run_stream(node, tmp):
    c = StreamClient(node.sock_path, timeout=20)
    c.auth(node.token("admin"))
    notes, err, res = c.request_stream(P + "run", {
        "argv": ["sh", "-c", "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three"],
        "_stream": True})
    assert err is None, err
    assert notes, "no job.output notification before the response"
    out = {"stdout": b"", "stderr": b""}
    for n in notes:
        assert n[1] == "job.output", n
        job_id, name, stream, chunk = n[2][:4]
        assert job_id == res["job_id"] and name == node.name and isinstance(chunk, bytes)
        out[stream] += chunk
    assert out["stdout"] == res["stdout"] == b"one\nthree\n"
    assert out["stderr"] == res["stderr"] == b"two\n"
    # without _stream: no notifications
    notes, err, res = c.request_stream(P + "run", {"argv": ["echo", "quiet"]})
    assert notes == [] and res["stdout"] == b"quiet\n"
    c.close()


def test_run_client_gone(node, tmp):
    c = StreamClient(node.sock_path, timeout=20)
    c.auth(node.token("admin"))
    c.msgid += 1
    c.sock.sendall(msgpack.packb([0, c.msgid, P + "run", [{
        "argv": ["sh", "-c", "echo $$; sleep 100 & sleep 100"], "_stream": True, "_timeout": 60}]],
        use_bin_type=True))
    m = c.read_msg()
    assert m[0] == 2, m
    pid = int(m[2][3].split()[0])
    assert live_group_members(pid), "job running"
    c.close()
    wait_until(lambda: live_group_members(pid) == [], 10, 0.1, "job group killed after the client left")


def test_run_limit(node, tmp):
    c = Client(node.sock_path, timeout=30)
    c.auth(node.token("admin"))
    n = 17
    for i in range(n):
        c.sock.sendall(msgpack.packb([0, 100 + i, P + "run", [{"argv": ["sleep", "30"], "timeout": 1.5}]],
                                     use_bin_type=True))
    answers = {}
    for _ in range(n):
        m = c.read_msg()
        answers[m[1]] = m
    errs = [m[2] for m in answers.values() if m[2] is not None]
    oks = [m[3] for m in answers.values() if m[2] is None]
    assert len(errs) == 1 and errs[0]["code"] == RESOURCE_EXHAUSTED, errs
    assert len(oks) == 16 and all(r["timed_out"] for r in oks)
    c.close()


def test_roles(node, tmp):
    viewer = Client(node.sock_path)
    viewer.auth(node.token("viewer"))
    assert viewer.call(P + "list", {"limit": 1})
    assert viewer.call(P + "info", {"pid": node.proc.pid})["pid"] == node.proc.pid
    c = spawn(["sleep", "100"])
    expect_error(lambda: viewer.call(P + "run", {"argv": ["true"]}), PERMISSION_DENIED)
    expect_error(lambda: viewer.call(P + "signal", {"pid": c.pid, "signal": "KILL"}), PERMISSION_DENIED)
    viewer.close()
    op = Client(node.sock_path)
    op.auth(node.token("operator"))
    expect_error(lambda: op.call(P + "run", {"argv": ["true"]}), PERMISSION_DENIED)
    assert c.poll() is None, "a refused signal was sent"
    assert op.call(P + "signal", {"pid": c.pid, "signal": "KILL"}) == {"signaled": [c.pid]}
    assert c.wait(10) == -signal.SIGKILL
    op.close()


def test_cli(node, tmp):
    r = subprocess.run([p2p.rpc_bin(), "--socket", node.sock_path, "--token", node.token("admin"),
                        "--out", "json", P + "run", "--json", '{"argv": ["echo", "a;b"]}'],
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    import base64
    import json
    res = json.loads(r.stdout)
    out = res["stdout"]
    out = base64.b64decode(out if isinstance(out, str) else out.get("base64", ""))
    assert out == b"a;b\n", res


def test_stop_kills_jobs(node, tmp):
    c = StreamClient(node.sock_path, timeout=20)
    c.auth(node.token("admin"))
    c.msgid += 1
    c.sock.sendall(msgpack.packb([0, c.msgid, P + "run", [{
        "argv": ["sh", "-c", "echo $$; sleep 100"], "_stream": True, "_timeout": 60}]], use_bin_type=True))
    m = c.read_msg()
    pid = int(m[2][3].split()[0])
    node.stop_ok()
    try:
        m = c.read_msg()
        assert m[0] == 1 and m[2] is not None, m  # answered UNAVAILABLE
    except (EOFError, OSError):
        pass
    c.close()
    wait_until(lambda: live_group_members(pid) == [], 10, 0.1, "job group killed at node stop")


def main():
    if len(sys.argv) > 1:
        os.environ["P2P_BUILD_DIR"] = sys.argv[1]
    tmp = p2p.tmpdir("p2p-proc-")
    net = p2p.Network()
    node = p2p.Node(net, "proc1", tmp).start(bootstrap=False)
    node.wait_ready()
    r = p2p.Runner()
    try:
        for t in (test_list, test_info, test_signal, test_run_literal, test_run_status,
                  test_run_timeout_kills_group, test_run_stream, test_run_client_gone, test_run_limit,
                  test_roles, test_cli, test_stop_kills_jobs):
            r.run(t, node, tmp)
    finally:
        for c in CHILDREN:
            if c.poll() is None:
                c.kill()
                c.wait()
    r.finish()


if __name__ == "__main__":
    main()
