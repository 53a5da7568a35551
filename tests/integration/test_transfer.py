#!/usr/bin/python3
"""test_transfer.py: `p2p-rpc push` and `p2p-rpc pull` between two real nodes (issue 4, file).

Two nodes xa and xb on loopback, each with its own FILE_ROOTS temp dir; every transfer goes through
xa's local socket (so to xb over the peer channel). A random 100 MB file (16 MB under ASan) is
pushed to xb and pulled back: the SHA-256 agrees everywhere and no part file is left. A push and a
pull killed with SIGKILL part-way resume (resumed_from > 0) and end with the right checksum; a
part file holding other bytes is not trusted (resumed_from 0). A viewer's push exits 1 with
PERMISSION_DENIED and writes nothing; bad arguments exit 2; a missing source exits 1 NOT_FOUND;
NODE `local` and a directory destination work; on a terminal the progress bar shows on stderr.
Usage: test_transfer.py BUILD_DIR
"""

import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402

MB = 1000 * 1000
SANITIZED = p2p.sanitized_build()
SIZE = (16 if SANITIZED else 100) * MB + 12345  # not a multiple of the chunk size
PART = ".p2p-part"
CLI_TIMEOUT = 240 if SANITIZED else 90  # bound on one p2p-rpc run (a hang fails, it is no measure)


class T:
    root = None
    a = b = None
    roots = {}
    admin = viewer = None
    src = None
    src_sha = None


def sha_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return h.hexdigest()
            h.update(b)


def make_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n
    return sha_file(path)


def cli(args, token=None, timeout=CLI_TIMEOUT):
    return p2p.run_cli(T.a, args, token=token or T.admin, timeout=timeout)


def result_of(rc, out, err, what):
    assert rc == 0, "%s: exit %d\nstdout: %s\nstderr: %s" % (what, rc, out, err)
    lines = [x for x in out.splitlines() if x.strip()]
    assert lines, "%s: no result on stdout (stderr: %s)" % (what, err)
    return json.loads(lines[-1])


def in_b(name):
    return os.path.join(T.roots["xb"], name)


def test_start():
    T.root = p2p.tmpdir("p2p-xfer-")
    key, secret = p2p.random_key_b64(32), p2p.random_key_b64(32)
    nets = {}
    for name in ("xa", "xb"):
        T.roots[name] = os.path.join(T.root, "root-" + name)
        os.makedirs(T.roots[name])
        nets[name] = p2p.MeshNetwork(extra_env={"FILE_ROOTS": T.roots[name]}, network_key=key,
                                     auth_secret=secret)
    T.a = p2p.Node(nets["xa"], "xa", T.root).start().wait_ready(30)
    T.b = p2p.Node(nets["xb"], "xb", T.root, bootstrap=T.a.dht_addr).start().wait_ready(30)
    p2p.wait_until(lambda: p2p.lists_up(T.a, ["xb"]), 30, what="xa listing xb up")
    names = [m.get("name") for m in T.a.call("system.xb.node.methods", {})]
    for m in ("file.stat", "file.read", "file.write", "file.checksum", "file.move", "file.remove"):
        assert "system.xb." + m in names or m in names or "system.local." + m in names, \
            "xb does not serve %s (methods: %r)" % (m, names)
    T.admin = T.a.token("admin")
    T.viewer = T.a.token("viewer")
    T.src = os.path.join(T.root, "src.bin")
    T.src_sha = make_file(T.src, SIZE)
    p2p.log("two nodes up, %d-byte source file" % SIZE)


def test_round_trip():
    rc, out, err = cli(["push", T.src, "xb:big.bin"])
    r = result_of(rc, out, err, "push")
    assert r["bytes"] == SIZE and r["resumed_from"] == 0 and r["sha256"] == T.src_sha, r
    assert r["seconds"] > 0 and r["mb_per_s"] > 0, r
    assert sha_file(in_b("big.bin")) == T.src_sha, "the file on xb differs"
    assert not os.path.exists(in_b("big.bin" + PART)), "part file left on xb"
    p2p.log("push: %.1f MB/s" % r["mb_per_s"])
    dst = os.path.join(T.root, "back.bin")
    rc, out, err = cli(["pull", "xb:big.bin", dst])
    r = result_of(rc, out, err, "pull")
    assert r["bytes"] == SIZE and r["resumed_from"] == 0 and r["sha256"] == T.src_sha, r
    assert sha_file(dst) == T.src_sha, "the pulled file differs"
    assert not os.path.exists(dst + PART), "local part file left"
    p2p.log("pull: %.1f MB/s" % r["mb_per_s"])
    # text output names both ends
    rc, out, err = cli(["--out", "text", "pull", "xb:big.bin", dst])
    assert rc == 0 and "pulled xb:big.bin -> " in out and T.src_sha in out, (rc, out, err)


def test_small_local_and_dir():
    small = os.path.join(T.root, "small.txt")
    with open(small, "wb") as f:
        f.write(b"hello\n")
    empty = os.path.join(T.root, "empty.txt")
    open(empty, "wb").close()
    os.makedirs(in_b("sub"))
    r = result_of(*cli(["push", small, "xb:sub"]), what="push into a directory")
    assert open(in_b("sub/small.txt"), "rb").read() == b"hello\n", r
    r = result_of(*cli(["push", empty, "local:e.txt"]), what="push of an empty file to local")
    assert r["bytes"] == 0 and os.path.getsize(os.path.join(T.roots["xa"], "e.txt")) == 0, r
    got = os.path.join(T.root, "gotdir")
    os.makedirs(got)
    r = result_of(*cli(["pull", "xb:sub/small.txt", got + "/"]), what="pull into a directory")
    assert open(os.path.join(got, "small.txt"), "rb").read() == b"hello\n", r
    assert r["sha256"] == hashlib.sha256(b"hello\n").hexdigest(), r


def start_cli(args):
    e = T.a.net.env()
    e.pop("P2P_TOKEN", None)
    a = [p2p.rpc_bin(), "--socket", T.a.sock_path, "--token", T.admin] + args
    return subprocess.Popen(a, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill_when_grown(proc, part, what):
    """Kills proc with SIGKILL once part holds at least 1 MB (bounded wait); returns that size."""
    deadline = time.monotonic() + 60
    size = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            size = os.path.getsize(part)
        except OSError:
            size = 0
        if size >= 1 * MB:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "%s finished before it could be interrupted (rc %r, stderr %r)" % (
        what, proc.returncode, proc.stderr.read())
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    proc.stdout.close()
    proc.stderr.close()
    assert size >= 1 * MB, "%s: part file did not grow (size %d)" % (what, size)
    return size


def test_push_resume():
    proc = start_cli(["push", T.src, "xb:resumed.bin"])
    seen = kill_when_grown(proc, in_b("resumed.bin" + PART), "push")
    time.sleep(0.3)  # writes already sent may still land on xb
    part = os.path.getsize(in_b("resumed.bin" + PART))
    assert part < SIZE, "push killed at %d but the part file is complete" % part
    assert not os.path.exists(in_b("resumed.bin")), "destination exists after an interrupted push"
    r = result_of(*cli(["push", T.src, "xb:resumed.bin"]), what="resumed push")
    assert 0 < r["resumed_from"] <= part and r["sha256"] == T.src_sha, (r, seen, part)
    assert sha_file(in_b("resumed.bin")) == T.src_sha
    assert not os.path.exists(in_b("resumed.bin" + PART))
    p2p.log("push killed at %d bytes, resumed from %d" % (seen, r["resumed_from"]))


def test_pull_resume():
    dst = os.path.join(T.root, "pulled.bin")
    proc = start_cli(["pull", "xb:big.bin", dst])
    seen = kill_when_grown(proc, dst + PART, "pull")
    part = os.path.getsize(dst + PART)
    assert part < SIZE and not os.path.exists(dst), (part, SIZE)
    r = result_of(*cli(["pull", "xb:big.bin", dst]), what="resumed pull")
    assert 0 < r["resumed_from"] <= part and r["sha256"] == T.src_sha, (r, seen, part)
    assert sha_file(dst) == T.src_sha and not os.path.exists(dst + PART)
    p2p.log("pull killed at %d bytes, resumed from %d" % (seen, r["resumed_from"]))


def test_untrusted_part():
    """A part file whose bytes are not the source's prefix is started over, on both sides."""
    with open(in_b("other.bin" + PART), "wb") as f:
        f.write(os.urandom(3 * MB))
    r = result_of(*cli(["push", T.src, "xb:other.bin"]), what="push over a foreign part")
    assert r["resumed_from"] == 0 and sha_file(in_b("other.bin")) == T.src_sha, r
    dst = os.path.join(T.root, "other-back.bin")
    with open(dst + PART, "wb") as f:
        f.write(os.urandom(2 * MB))
    r = result_of(*cli(["pull", "xb:other.bin", dst]), what="pull over a foreign part")
    assert r["resumed_from"] == 0 and sha_file(dst) == T.src_sha, r
    # a part longer than the source is not trusted either
    with open(dst + PART, "wb") as f:
        f.write(b"x" * 10)
    small = os.path.join(T.root, "small.txt")
    r = result_of(*cli(["pull", "xb:sub/small.txt", dst]), what="pull over a longer part")
    assert r["resumed_from"] == 0 and open(dst, "rb").read() == open(small, "rb").read(), r


def test_viewer_denied():
    rc, out, err = cli(["push", os.path.join(T.root, "small.txt"), "xb:viewer.txt"], token=T.viewer)
    assert rc == 1 and "PERMISSION_DENIED" in err, (rc, out, err)
    assert not os.path.exists(in_b("viewer.txt")) and not os.path.exists(in_b("viewer.txt" + PART))
    # reading is a viewer's right
    dst = os.path.join(T.root, "viewer-pull.txt")
    rc, out, err = cli(["pull", "xb:sub/small.txt", dst], token=T.viewer)
    assert rc == 0 and open(dst, "rb").read() == b"hello\n", (rc, out, err)


def test_errors():
    small = os.path.join(T.root, "small.txt")
    for args in (["push"], ["push", small], ["push", small, "no-colon"], ["pull", "xb:x"],
                 ["pull", "x*:a", "dst"], ["push", small, ":path"], ["push", small, "xb:"],
                 ["push", small, "xb:p", "extra"], ["pull", "xb:a", ""]):
        rc, out, err = cli(args)
        assert rc == 2 and "p2p-rpc" in err, (args, rc, out, err)
    rc, out, err = cli(["pull", "xb:missing.bin", os.path.join(T.root, "m.bin")])
    assert rc == 1 and "NOT_FOUND" in err, (rc, out, err)
    rc, out, err = cli(["push", os.path.join(T.root, "nope.bin"), "xb:nope.bin"])
    assert rc == 1 and "nope.bin" in err, (rc, out, err)
    rc, out, err = cli(["push", small, "nosuchnode:x.txt"])
    assert rc == 1 and "error" in err, (rc, out, err)
    rc, out, err = cli(["push", small, "xb:../escape.txt"])
    assert rc == 1 and ("INVALID_PARAMS" in err or "PERMISSION_DENIED" in err), (rc, out, err)
    rc, out, err = cli(["--help"])
    assert rc == 0 and "push LOCAL NODE:PATH" in out and "pull NODE:PATH LOCAL" in out


def test_progress_bar():
    """On a terminal, stderr shows the bar (percent and MB/s); stdout stays the result."""
    master, slave = pty.openpty()
    e = T.a.net.env()
    dst = os.path.join(T.root, "tty.bin")
    a = [p2p.rpc_bin(), "--socket", T.a.sock_path, "--token", T.admin, "pull", "xb:big.bin", dst]
    proc = subprocess.Popen(a, env=e, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + CLI_TIMEOUT
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    out = proc.communicate(timeout=CLI_TIMEOUT)[0]
    os.close(master)
    assert proc.returncode == 0, (proc.returncode, seen)
    assert b"%" in seen and b"MB/s" in seen and b"big.bin" in seen, seen[-400:]
    assert json.loads(out.decode().strip().splitlines()[-1])["sha256"] == T.src_sha


def main():
    r = p2p.Runner()
    r.run(test_start)
    if all(x[1] for x in r.results):
        for t in (test_round_trip, test_small_local_and_dir, test_push_resume, test_pull_resume,
                  test_untrusted_part, test_viewer_denied, test_errors, test_progress_bar):
            r.run(t)
    r.finish()


if __name__ == "__main__":
    main()
