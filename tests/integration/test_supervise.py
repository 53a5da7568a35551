#!/usr/bin/python3
"""test_supervise.py: supervised programs (process.start/stop/restart/remove/managed/logs) on a real
node with real processes.

- a program reaches RUNNING and its stdout/stderr land in its log files (process.logs, tail and
  offsets); a second start is CONFLICT; bad arguments are INVALID_PARAMS naming them; a command
  that does not exist is NOT_FOUND and defines nothing;
- kill -9 of its process: restarted after a backoff (new pid, restarts grows, last signal KILL);
- a program that always exits 1 ends FATAL after startretries;
- stop: the stop signal, then SIGKILL after the timeout for a program that ignores it; the whole
  process group is gone; restart gives a new process;
- node restart (SIGTERM): the RUNNING program is re-adopted with the same pid, exactly one
  instance; FATAL and stopped programs stay down; kill -9 of the node plus kill of the program:
  the next start runs it again exactly once; an adopted program stops like any other;
- viewer gets PERMISSION_DENIED on start/stop/restart/remove; the program limit is
  RESOURCE_EXHAUSTED; remove deletes a stopped program only.
Programs outlive nodes by design, so the test kills every process it started at the end.
Usage: test_supervise.py BUILD_DIR
"""

import os
import signal
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402
from p2p import RpcError, log, wait_until  # noqa: E402

CONFLICT = -32007
FAILED_PRECONDITION = -32008
# Unique sleep durations make this run's processes recognisable by their command line.
BASE = 700000 + (os.getpid() % 50000) * 10
WEB = "sleep %d" % BASE
GRP_LEADER = "sleep %d" % (BASE + 1)
GRP_CHILD = "sleep %d" % (BASE + 2)
MARKS = [WEB, GRP_LEADER, GRP_CHILD]


def pids_with_cmdline(cmd):
    """Live (non-zombie) processes whose command line is exactly cmd."""
    want = cmd.encode().split(b" ")
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                args = f.read().rstrip(b"\0").split(b"\0")
            with open("/proc/%s/stat" % d, "rb") as f:
                st = f.read()
        except OSError:
            continue
        state = st[st.rindex(b")") + 2:st.rindex(b")") + 3]
        if args == want and state not in (b"Z", b"X"):
            out.append(int(d))
    return sorted(out)


def kill_ours():
    for m in MARKS:
        for pid in pids_with_cmdline(m):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def call(node, method, params=None, client=None):
    c = client or node.client()
    return c.call("system.local.process." + method, params or {})


def expect_error(code, fn, *args, param=None):
    try:
        fn(*args)
    except RpcError as e:
        assert e.code == code, "expected %d, got %r" % (code, e.err)
        if param is not None:
            assert isinstance(e.err.get("data"), dict) and e.err["data"].get("param") == param, e.err
        return e
    raise AssertionError("expected error %d" % code)


def prog(node, name):
    res = call(node, "managed", {"name": name})
    assert isinstance(res, list) and len(res) == 1, res
    return res[0]


def wait_state(node, name, state, timeout=15.0, pred=None):
    def ok():
        p = prog(node, name)
        return p if p["state"] == state and (pred is None or pred(p)) else None
    return wait_until(ok, timeout, interval=0.1, what="%s %s" % (name, state))


def logs(node, name, stream="stdout", **kw):
    return call(node, "logs", dict(name=name, stream=stream, **kw))


def test_start_logs_errors(node, op):
    argv = ["sh", "-c", "echo hello; echo oops >&2; exec " + WEB]
    r = call(node, "start", {"name": "web", "argv": argv, "env": {"GREETING": "x"}}, client=op)
    assert r["name"] == "web" and r["state"] in ("STARTING", "RUNNING"), r
    assert isinstance(r["pid"], int) and r["pid"] > 1, r
    assert r["definition"]["argv"] == argv and r["definition"]["autorestart"] == "unexpected", r
    assert r["definition"]["startsecs"] == 1 and r["definition"]["exitcodes"] == [0], r
    p = wait_state(node, "web", "RUNNING")
    assert p["pid"] == r["pid"] and p["restarts"] == 0 and p["wanted"] is True, p
    wait_until(lambda: pids_with_cmdline(WEB) == [p["pid"]], 5, what="web exec'd sleep")
    # its own process group and session
    assert os.getpgid(p["pid"]) == p["pid"] and os.getsid(p["pid"]) == p["pid"]
    # a clean environment: the base, the caller's map and the supervisor's marks, nothing of the
    # node's own (its secrets above all)
    env = dict(e.split(b"=", 1) for e in open("/proc/%d/environ" % p["pid"], "rb").read().split(b"\0") if e)
    assert env[b"GREETING"] == b"x" and env[b"P2P_PROGRAM"] == b"web", env
    assert env[b"P2P_SUPERVISOR"] == os.path.realpath(node.data_dir).encode(), env
    assert b"NETWORK_KEY" not in env and b"AUTH_SECRET" not in env and b"LOG_FORMAT" not in env, env
    assert set(env) <= {b"PATH", b"LANG", b"HOME", b"GREETING", b"P2P_PROGRAM", b"P2P_SUPERVISOR",
                        b"PWD"}, env  # PWD: exported by sh
    out = wait_until(lambda: (lambda l: l if b"hello" in l["data"] else None)(logs(node, "web")), 5,
                     what="hello in the log")
    assert out["data"] == b"hello\n" and out["offset"] == 0 and out["next_offset"] == 6, out
    assert out["size"] == 6, out
    assert logs(node, "web", "stderr")["data"] == b"oops\n"
    part = logs(node, "web", offset=1, length=3)
    assert part["data"] == b"ell" and part["offset"] == 1 and part["next_offset"] == 4, part
    assert logs(node, "web", length=2)["data"] == b"o\n"
    assert logs(node, "web", offset=6)["data"] == b""
    path = os.path.join(node.data_dir, "programs", "web", "stdout.log")
    assert open(path, "rb").read() == b"hello\n"
    expect_error(p2p.NOT_FOUND, logs, node, "nosuch", param="name")
    expect_error(p2p.INVALID_PARAMS, logs, node, "web", "stdin", param="stream")
    expect_error(p2p.INVALID_PARAMS, lambda: logs(node, "web", length=(1 << 20) + 1), param="length")
    # already running: CONFLICT, definition unchanged
    expect_error(CONFLICT, call, node, "start", {"name": "web", "argv": ["true"]}, param="name")
    assert prog(node, "web")["definition"]["argv"] == argv
    # bad arguments name themselves; nothing gets defined
    for params, bad in (({"name": "../x", "argv": ["true"]}, "name"),
                        ({"name": "x y", "argv": ["true"]}, "name"),
                        ({"name": "x", "argv": []}, "argv"),
                        ({"name": "x", "argv": ["true"], "autorestart": "sometimes"}, "autorestart"),
                        ({"name": "x", "argv": ["true"], "stop_signal": "SIGNOPE"}, "stop_signal"),
                        ({"name": "x", "argv": ["true"], "exitcodes": [300]}, "exitcodes"),
                        ({"name": "x", "argv": ["true"], "startretries": -1}, "startretries"),
                        ({"name": "x", "argv": ["true"], "cwd": "/nonexistent-dir"}, "cwd"),
                        ({"name": "x", "argv": ["true"], "env": {"1BAD": "v"}}, "env")):
        expect_error(p2p.INVALID_PARAMS, call, node, "start", params, param=bad)
    expect_error(p2p.NOT_FOUND, call, node, "start", {"name": "ghost", "argv": ["/nonexistent/cmd"]},
                 param="argv")
    names = [x["name"] for x in call(node, "managed")]
    assert names == ["web"], names
    assert not os.path.exists(os.path.join(node.data_dir, "programs", "x"))


def test_kill9_restarts(node):
    p = prog(node, "web")
    os.kill(p["pid"], signal.SIGKILL)
    q = wait_state(node, "web", "RUNNING", pred=lambda x: x["pid"] != p["pid"] and x["pid"])
    assert q["restarts"] == 1 and q["exit_signal"] == "KILL" and q["exit_code"] is None, q
    wait_until(lambda: pids_with_cmdline(WEB) == [q["pid"]], 5, what="one web instance")
    # the restarted instance appended to the same log
    assert logs(node, "web")["data"] == b"hello\nhello\n"


def test_fatal(node):
    t = time.monotonic()
    r = call(node, "start", {"name": "bad", "argv": ["sh", "-c", "echo try; exit 1"],
                             "startretries": 2})
    assert r["state"] in ("STARTING", "BACKOFF"), r
    p = wait_state(node, "bad", "FATAL", timeout=20)
    assert p["restarts"] == 2 and p["exit_code"] == 1 and p["pid"] is None, p
    # 1 + 2 attempts, waiting 1 s then 2 s between them
    assert time.monotonic() - t >= 3.0
    assert logs(node, "bad")["data"] == b"try\ntry\ntry\n"
    # a FATAL program may be started again with a new definition
    r = call(node, "start", {"name": "bad", "argv": ["true"], "autorestart": "never", "startsecs": 0})
    p = wait_state(node, "bad", "EXITED")
    assert p["exit_code"] == 0 and p["definition"]["argv"] == ["true"], p


def test_stop_group_and_restart(node):
    argv = ["sh", "-c", "trap '' TERM; %s & exec %s" % (GRP_CHILD, GRP_LEADER)]
    call(node, "start", {"name": "grp", "argv": argv, "startsecs": 0})
    p = wait_state(node, "grp", "RUNNING")
    wait_until(lambda: pids_with_cmdline(GRP_LEADER) and pids_with_cmdline(GRP_CHILD), 5,
               what="grp's two processes")
    child = pids_with_cmdline(GRP_CHILD)[0]
    assert os.getpgid(child) == p["pid"]
    # TERM is ignored: SIGKILL after the 1 s timeout; the answer comes once it stopped
    t = time.monotonic()
    r = call(node, "stop", {"name": "grp", "timeout": 1})
    assert r["state"] == "STOPPED" and r["pid"] is None and r["exit_signal"] == "KILL", r
    assert r["wanted"] is False
    assert time.monotonic() - t >= 0.9
    wait_until(lambda: not pids_with_cmdline(GRP_LEADER) and not pids_with_cmdline(GRP_CHILD), 5,
               what="the whole group gone")
    # stop again: already stopped, answered at once
    assert call(node, "stop", {"name": "grp"})["state"] == "STOPPED"
    # restart: a stopped program starts; a running one gets a new process
    before = prog(node, "web")
    r = call(node, "restart", {"name": "web"})
    assert r["state"] in ("STARTING", "RUNNING") and r["pid"] and r["pid"] != before["pid"], r
    p = wait_state(node, "web", "RUNNING")
    assert p["pid"] == r["pid"] and p["restarts"] == before["restarts"] + 1, p
    wait_until(lambda: pids_with_cmdline(WEB) == [p["pid"]], 5, what="one web after restart")
    expect_error(p2p.NOT_FOUND, call, node, "restart", {"name": "nosuch"}, param="name")
    expect_error(p2p.NOT_FOUND, call, node, "stop", {"name": "nosuch"}, param="name")


def test_roles(node, viewer):
    for method, params in (("start", {"name": "v", "argv": ["true"]}), ("stop", {"name": "web"}),
                           ("restart", {"name": "web"}), ("remove", {"name": "grp"})):
        e = expect_error(p2p.PERMISSION_DENIED, lambda: call(node, method, params, client=viewer))
        assert e.code == -32002
    seen = call(node, "managed", client=viewer)
    assert [x["name"] for x in seen] == ["bad", "grp", "web"]
    # env values may be secrets: a viewer sees the keys only
    assert seen[2]["definition"]["env"] == {"GREETING": "***"}, seen[2]
    assert prog(node, "web")["definition"]["env"] == {"GREETING": "x"}
    assert b"hello" in logs(node, "web")["data"]
    assert prog(node, "web")["state"] == "RUNNING"


def test_node_restart_readopts(net, node):
    web = prog(node, "web")
    node.stop_ok()
    # programs outlive the node
    assert pids_with_cmdline(WEB) == [web["pid"]]
    node.start().wait_ready()
    p = prog(node, "web")
    assert p["state"] == "RUNNING" and p["pid"] == web["pid"] and p["adopted"] is True, p
    assert prog(node, "bad")["state"] in ("STOPPED", "EXITED")
    assert prog(node, "grp")["state"] == "STOPPED"
    time.sleep(1.5)  # longer than startsecs: a duplicate would have appeared by now
    assert pids_with_cmdline(WEB) == [web["pid"]]
    assert prog(node, "web")["pid"] == web["pid"]
    # kill -9 of the node, then of the program: the next start runs it again, once
    node.kill9()
    os.kill(web["pid"], signal.SIGKILL)
    wait_until(lambda: not pids_with_cmdline(WEB), 5, what="web dead")
    node.start().wait_ready()
    p = wait_state(node, "web", "RUNNING")
    assert p["pid"] != web["pid"] and p["adopted"] is False, p
    time.sleep(1.2)
    assert pids_with_cmdline(WEB) == [p["pid"]]
    # the node lost track of the pid (killed between a spawn and the table write): the process is
    # found by its environment marks and adopted, not started twice
    node.kill9()
    db = sqlite3.connect(os.path.join(node.data_dir, "node.db"))
    db.execute("UPDATE programs SET pid = 0, pid_start = 0 WHERE name = 'web'")
    db.commit()
    db.close()
    node.start().wait_ready()
    q = prog(node, "web")
    assert q["state"] == "RUNNING" and q["pid"] == p["pid"] and q["adopted"] is True, q
    assert pids_with_cmdline(WEB) == [p["pid"]]
    # an adopted program stops like a child: restart the node once more, then stop it
    node.stop_ok()
    node.start().wait_ready()
    q = prog(node, "web")
    assert q["adopted"] is True and q["pid"] == p["pid"], q
    r = call(node, "stop", {"name": "web"})
    assert r["state"] == "STOPPED", r
    wait_until(lambda: not pids_with_cmdline(WEB), 5, what="adopted web stopped")
    # a stopped program stays stopped across node restarts
    node.stop_ok()
    node.start().wait_ready()
    assert prog(node, "web")["state"] == "STOPPED"
    assert not pids_with_cmdline(WEB)


def test_remove_and_limit(node):
    call(node, "start", {"name": "web", "argv": ["sh", "-c", "exec " + WEB]})
    expect_error(FAILED_PRECONDITION, call, node, "remove", {"name": "web"}, param="name")
    r = call(node, "remove", {"name": "grp"})
    assert r == {"name": "grp", "removed": True}, r
    assert not os.path.exists(os.path.join(node.data_dir, "programs", "grp"))
    expect_error(p2p.NOT_FOUND, call, node, "remove", {"name": "grp"}, param="name")
    have = len(call(node, "managed"))
    limit = 64
    for i in range(limit - have):
        call(node, "start", {"name": "n%02d" % i, "argv": ["true"], "autorestart": "never",
                             "startsecs": 0})
    expect_error(p2p.RESOURCE_EXHAUSTED, call, node, "start", {"name": "one-more", "argv": ["true"]})
    for i in range(limit - have):
        wait_state(node, "n%02d" % i, "EXITED", timeout=10)
        call(node, "remove", {"name": "n%02d" % i})
    call(node, "stop", {"name": "web", "timeout": 2})
    assert not pids_with_cmdline(WEB)


def main():
    net = p2p.Network()
    root = p2p.tmpdir("p2p-sup-")
    node = p2p.Node(net, "sup1", root).start().wait_ready()
    viewer = p2p.Client(node.sock_path)
    viewer.auth(node.token("viewer"))
    op = p2p.Client(node.sock_path)
    op.auth(node.token("operator"))
    runner = p2p.Runner()
    try:
        runner.run(test_start_logs_errors, node, op)
        runner.run(test_kill9_restarts, node)
        runner.run(test_fatal, node)
        runner.run(test_stop_group_and_restart, node)
        runner.run(test_roles, node, viewer)
        viewer.close()
        op.close()
        runner.run(test_node_restart_readopts, net, node)
        runner.run(test_remove_and_limit, node)
        node.stop_ok()
    finally:
        kill_ours()
    runner.finish()


if __name__ == "__main__":
    try:
        main()
    finally:
        kill_ours()
        p2p.cleanup()
