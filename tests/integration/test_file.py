#!/usr/bin/python3
"""test_file.py: the file domain (system.local.file.*) on a real node (issue 4, file).

One node with two roots (FILE_ROOTS = r1, small): r1 a temp dir, small a 512 KiB tmpfs the test
mounts (root only; without mount that part is skipped with a message and small is a plain dir).
Every method is called over the local socket: binary data round trips (all 256 byte values), etags
and if_match CONFLICT, offset/append/truncate writes, list (plain, recursive, limit), mkdir, remove,
move, search (glob, regex, content), checksum (sha256 and blake2b against hashlib); every path
escape (.., absolute, symlinks out at any depth, chains, dangling ones, overlong paths, NUL) is
refused with INVALID_PARAMS or PERMISSION_DENIED and changes nothing outside; a viewer may read but
gets PERMISSION_DENIED on write/mkdir/remove/move; on the full tmpfs a whole-file write fails with
RESOURCE_EXHAUSTED, the old file reads back intact and no temporary file is left behind.
Usage: test_file.py BUILD_DIR
"""

import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402

INVALID_PARAMS = -32602
PERMISSION_DENIED = -32002
NOT_FOUND = -32003
RESOURCE_EXHAUSTED = -32006
CONFLICT = -32007
FAILED_PRECONDITION = -32008
ESCAPE_CODES = (INVALID_PARAMS, PERMISSION_DENIED)


class T:
    root = None
    r1 = small = outside = None
    mounted = False
    node = None
    viewer = None


def call(method, params=None):
    return T.node.call("system.local.file." + method, params or {})


def err_of(method, params, client=None):
    """The error object of a call that must fail."""
    c = client or T.node.client()
    err, res = c.request("system.local.file." + method, params)
    assert err is not None, "%s %r succeeded: %r" % (method, params, res)
    return err


def expect(code, method, params, param=None):
    err = err_of(method, params)
    assert err["code"] == code, "%s %r: expected %d, got %r" % (method, params, code, err)
    if param is not None:
        assert isinstance(err.get("data"), dict) and err["data"].get("param") == param, \
            "%s: data should name %s: %r" % (method, param, err)
    return err


def in_r1(*p):
    return os.path.join(T.r1, *p)


def outside_snapshot():
    snap = {}
    for d, dirs, files in os.walk(T.outside):
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                snap[p] = fh.read()
        for x in dirs:
            snap[os.path.join(d, x)] = "dir"
    return snap


def test_start():
    T.root = p2p.tmpdir("p2p-file-")
    T.r1 = os.path.join(T.root, "r1")
    T.small = os.path.join(T.root, "small")
    T.outside = os.path.join(T.root, "outside")
    for d in (T.r1, T.small, T.outside):
        os.makedirs(d)
    with open(os.path.join(T.outside, "secret.txt"), "wb") as f:
        f.write(b"top secret\n")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", T.small],
                       capture_output=True, timeout=20)
    T.mounted = r.returncode == 0
    if not T.mounted:
        p2p.log("SKIP tmpfs part: cannot mount a tmpfs (%s); small is a plain directory"
                % r.stderr.decode(errors="replace").strip())
    net = p2p.Network()
    T.node = p2p.Node(net, "fnode", T.root, extra=["--file-roots", T.r1 + "," + T.small])
    T.node.start().wait_ready(30)
    T.viewer = p2p.Client(T.node.sock_path)
    T.viewer.auth(T.node.token("viewer"))


def test_roots():
    res = call("roots")
    names = [r["name"] for r in res["roots"]]
    assert names == ["r1", "small"], res
    assert all(r["available"] for r in res["roots"]), res
    assert res["roots"][0]["path"] == os.path.realpath(T.r1), res
    assert res["roots"][0]["resolve"] in ("openat2", "walk"), res
    expect(INVALID_PARAMS, "stat", {"path": ".", "root": "nope"}, "root")
    expect(INVALID_PARAMS, "stat", {"path": ".", "root": 7}, "root")
    assert call("stat", {"path": ".", "root": 1})["type"] == "dir"
    assert call("stat", {"path": ".", "root": "small"})["type"] == "dir"


def test_write_read_binary():
    data = bytes(range(256)) * 5
    w = call("write", {"path": "all.bin", "data": data})
    assert w["written"] == len(data) and w["size"] == len(data), w
    with open(in_r1("all.bin"), "rb") as f:
        assert f.read() == data
    r = call("read", {"path": "all.bin"})
    assert r["data"] == data and r["eof"] is True and r["size"] == len(data) and r["offset"] == 0, r
    assert r["etag"] == w["etag"], (r, w)
    r = call("read", {"path": "all.bin", "offset": 250, "length": 10})
    assert r["data"] == data[250:260] and r["eof"] is False and r["size"] == len(data), r
    r = call("read", {"path": "./all.bin", "offset": len(data) - 3})
    assert r["data"] == data[-3:] and r["eof"] is True, r
    r = call("read", {"path": "all.bin", "offset": len(data) + 100})
    assert r["data"] == b"" and r["eof"] is True, r
    st = call("stat", {"path": "all.bin"})
    os_st = os.stat(in_r1("all.bin"))
    assert st["type"] == "file" and st["size"] == len(data) and st["mode"] == 0o644, st
    assert abs(st["mtime"] - os_st.st_mtime) < 0.001, (st, os_st.st_mtime)
    assert st["etag"] == w["etag"] and st["path"] == "all.bin", st
    # a string is accepted as data; a whole write keeps the replaced file's mode
    os.chmod(in_r1("all.bin"), 0o600)
    w2 = call("write", {"path": "all.bin", "data": "text é"})
    assert open(in_r1("all.bin"), "rb").read() == "text é".encode(), w2
    assert os.stat(in_r1("all.bin")).st_mode & 0o777 == 0o600
    assert w2["etag"] != w["etag"]
    call("write", {"path": "all.bin", "data": b"", "mode": 0o640})
    assert os.path.getsize(in_r1("all.bin")) == 0 and os.stat(in_r1("all.bin")).st_mode & 0o777 == 0o640
    # chunked binary round trip through offset writes and reads
    big = os.urandom(3 * 1024 * 1024 + 17)
    chunk = 1024 * 1024
    for off in range(0, len(big), chunk):
        call("write", {"path": "chunks.bin", "data": big[off:off + chunk], "offset": off,
                       "truncate": off == 0})
    got = b""
    while True:
        r = call("read", {"path": "chunks.bin", "offset": len(got)})
        got += r["data"]
        if r["eof"]:
            break
    assert got == big
    c = call("checksum", {"path": "chunks.bin", "algo": "sha256"})
    assert c["digest"] == hashlib.sha256(big).hexdigest() and c["size"] == len(big), c
    expect(FAILED_PRECONDITION, "read", {"path": "."})
    expect(NOT_FOUND, "read", {"path": "nope.bin"}, "path")
    expect(NOT_FOUND, "stat", {"path": "nope/deeper"}, "path")
    expect(INVALID_PARAMS, "read", {"path": "all.bin", "length": 1024 * 1024 + 1}, "length")
    expect(INVALID_PARAMS, "write", {"path": "x", "data": b"x" * (3 * 1024 * 1024 + 1)}, "data")


def test_offset_append_if_match():
    call("write", {"path": "o.txt", "data": b"hello"})
    w = call("write", {"path": "o.txt", "data": b" world", "offset": 5})
    assert w["size"] == 11 and open(in_r1("o.txt"), "rb").read() == b"hello world", w
    expect(INVALID_PARAMS, "write", {"path": "o.txt", "data": b"x", "offset": 12}, "offset")
    call("write", {"path": "o.txt", "data": b"J", "offset": 0})
    assert open(in_r1("o.txt"), "rb").read() == b"Jello world"
    call("write", {"path": "o.txt", "data": b"ELLO", "offset": 1, "truncate": True, "sync": True})
    assert open(in_r1("o.txt"), "rb").read() == b"JELLO"
    w = call("write", {"path": "o.txt", "data": b"!!", "append": True})
    assert w["size"] == 7 and open(in_r1("o.txt"), "rb").read() == b"JELLO!!", w
    expect(INVALID_PARAMS, "write", {"path": "o.txt", "data": b"x", "append": True, "offset": 0})
    expect(NOT_FOUND, "write", {"path": "absent.txt", "data": b"x", "create": False}, "path")
    expect(NOT_FOUND, "write", {"path": "absent.txt", "data": b"x", "offset": 0, "create": False})
    assert not os.path.exists(in_r1("absent.txt"))
    # etags: the one from stat allows a write; a stale one is CONFLICT and changes nothing
    et = call("stat", {"path": "o.txt"})["etag"]
    w = call("write", {"path": "o.txt", "data": b"v2", "if_match": et})
    expect(CONFLICT, "write", {"path": "o.txt", "data": b"v3", "if_match": et}, "if_match")
    expect(CONFLICT, "write", {"path": "o.txt", "data": b"v3", "offset": 0, "if_match": et})
    assert open(in_r1("o.txt"), "rb").read() == b"v2"
    r = call("read", {"path": "o.txt"})
    assert r["etag"] == w["etag"]
    call("write", {"path": "o.txt", "data": b"v3", "if_match": r["etag"]})
    expect(CONFLICT, "write", {"path": "fresh.txt", "data": b"x", "if_match": et}, "if_match")
    # a change made behind the service's back changes the etag
    st1 = call("stat", {"path": "o.txt"})["etag"]
    with open(in_r1("o.txt"), "ab") as f:
        f.write(b"!")
    assert call("stat", {"path": "o.txt"})["etag"] != st1
    expect(FAILED_PRECONDITION, "write", {"path": ".", "data": b"x"})


def test_list():
    os.makedirs(in_r1("tree/a/b"))
    for p in ("tree/z.txt", "tree/a/y.txt", "tree/a/b/x.log"):
        with open(in_r1(p), "wb") as f:
            f.write(b"123")
    os.symlink(T.outside, in_r1("tree/outlink"))
    res = call("list", {"path": "tree"})
    names = [e["name"] for e in res["entries"]]
    assert names == ["a", "outlink", "z.txt"] and res["truncated"] is False, res
    e = {x["name"]: x for x in res["entries"]}
    assert e["a"]["type"] == "dir" and e["outlink"]["type"] == "symlink", res
    assert e["z.txt"]["path"] == "tree/z.txt" and e["z.txt"]["size"] == 3, res
    assert e["z.txt"]["mode"] == 0o644 and e["z.txt"]["mtime"] > 0, res
    res = call("list", {"path": "tree", "recursive": True})
    paths = [x["path"] for x in res["entries"]]
    assert paths == ["tree/a", "tree/a/b", "tree/a/b/x.log", "tree/a/y.txt", "tree/outlink",
                     "tree/z.txt"], paths
    res = call("list", {"path": "tree", "recursive": True, "limit": 2})
    assert len(res["entries"]) == 2 and res["truncated"] is True, res
    top = [x["name"] for x in call("list", {"path": "."})["entries"]]
    assert "tree" in top and "all.bin" in top, top
    assert [x["name"] for x in call("list", {})["entries"]] == top
    expect(FAILED_PRECONDITION, "list", {"path": "tree/z.txt"})
    expect(NOT_FOUND, "list", {"path": "nodir"})
    expect(INVALID_PARAMS, "list", {"path": ".", "limit": 0}, "limit")


def test_mkdir_remove_move():
    r = call("mkdir", {"path": "m1"})
    assert r["created"] is True and os.path.isdir(in_r1("m1")), r
    expect(CONFLICT, "mkdir", {"path": "m1"}, "path")
    r = call("mkdir", {"path": "m1/p/q", "parents": True, "mode": 0o700})
    assert r["created"] is True and os.stat(in_r1("m1/p/q")).st_mode & 0o777 == 0o700, r
    assert call("mkdir", {"path": "m1/p/q", "parents": True})["created"] is False
    expect(NOT_FOUND, "mkdir", {"path": "nope/q"})
    expect(CONFLICT, "mkdir", {"path": "o.txt/sub", "parents": True})
    with open(in_r1("m1/p/q/f"), "wb") as f:
        f.write(b"1")
    os.symlink(T.outside, in_r1("m1/p/link"))
    expect(FAILED_PRECONDITION, "remove", {"path": "m1"}, "path")
    r = call("remove", {"path": "m1", "recursive": True})
    assert r["removed"] == 5 and not os.path.exists(in_r1("m1")), r
    assert os.path.exists(os.path.join(T.outside, "secret.txt")), "recursive remove followed a link"
    expect(NOT_FOUND, "remove", {"path": "m1"}, "path")
    expect(PERMISSION_DENIED, "remove", {"path": "."}, "path")
    expect(PERMISSION_DENIED, "remove", {"path": "./", "recursive": True}, "path")
    call("write", {"path": "rm.txt", "data": b"x"})
    assert call("remove", {"path": "rm.txt"})["removed"] == 1 and not os.path.exists(in_r1("rm.txt"))
    call("mkdir", {"path": "emptydir"})
    call("remove", {"path": "emptydir"})
    # move
    call("write", {"path": "mv-a", "data": b"A"})
    call("write", {"path": "mv-b", "data": b"B"})
    expect(CONFLICT, "move", {"src": "mv-a", "dst": "mv-b"}, "dst")
    assert open(in_r1("mv-b"), "rb").read() == b"B"
    r = call("move", {"src": "mv-a", "dst": "mv-b", "overwrite": True, "sync": True})
    assert r == {"src": "mv-a", "dst": "mv-b"}, r
    assert open(in_r1("mv-b"), "rb").read() == b"A" and not os.path.exists(in_r1("mv-a"))
    expect(NOT_FOUND, "move", {"src": "mv-a", "dst": "mv-c"}, "src")
    call("mkdir", {"path": "mvdir"})
    call("move", {"src": "mv-b", "dst": "mvdir/inside"})
    assert open(in_r1("mvdir/inside"), "rb").read() == b"A"
    expect(INVALID_PARAMS, "move", {"src": "mvdir", "dst": "mvdir/sub"}, "dst")
    expect(PERMISSION_DENIED, "move", {"src": ".", "dst": "elsewhere"}, "src")
    # across roots: the tmpfs is another filesystem
    if T.mounted:
        expect(FAILED_PRECONDITION, "move", {"src": "mvdir/inside", "dst": "x", "dst_root": "small"},
               "dst")
    else:
        call("move", {"src": "mvdir/inside", "dst": "x", "dst_root": "small"})
        call("move", {"src": "x", "dst": "mvdir/inside", "root": "small", "dst_root": 0})


def test_search_checksum():
    os.makedirs(in_r1("s/deep"))
    files = {"s/a.txt": b"alpha\nneedle one\nbeta\n", "s/b.log": b"no match here\n",
             "s/deep/c.txt": b"x\ny\nthe needle\n", "s/deep/abba.log": b"needle\n",
             "s/bin.dat": b"\x00\x01needle\x02"}
    for p, d in files.items():
        with open(in_r1(p), "wb") as f:
            f.write(d)
    r = call("search", {"path": "s", "glob": "*.txt"})
    assert sorted(m["path"] for m in r["matches"]) == ["s/a.txt", "s/deep/c.txt"], r
    assert r["truncated"] is False and all(m["type"] == "file" for m in r["matches"]), r
    r = call("search", {"path": "s", "glob": "deep/*.log"})
    assert [m["path"] for m in r["matches"]] == ["s/deep/abba.log"], r
    r = call("search", {"path": "s", "regex": "^a.*\\.(txt|log)$"})
    assert sorted(m["path"] for m in r["matches"]) == ["s/a.txt", "s/deep/abba.log"], r
    expect(INVALID_PARAMS, "search", {"path": "s", "regex": "(a)\\1"}, "regex")
    expect(INVALID_PARAMS, "search", {"path": "s", "regex": "(unclosed"}, "regex")
    expect(INVALID_PARAMS, "search", {"path": "s", "regex": "a" * 300}, "regex")
    r = call("search", {"path": "s", "content": "needle"})
    got = sorted((m["path"], m.get("line"), m.get("text")) for m in r["matches"])
    assert ("s/a.txt", 2, "needle one") in got and ("s/deep/c.txt", 3, "the needle") in got, got
    assert ("s/deep/abba.log", 1, "needle") in got, got
    binm = [m for m in r["matches"] if m["path"] == "s/bin.dat"]
    assert binm and binm[0].get("binary") is True, r
    r = call("search", {"path": "s", "content": "needle", "glob": "*.txt", "max_results": 1})
    assert len(r["matches"]) == 1 and r["truncated"] is True, r
    expect(FAILED_PRECONDITION, "search", {"path": "s/a.txt", "glob": "*"})
    # checksums
    data = files["s/a.txt"]
    c = call("checksum", {"path": "s/a.txt", "algo": "sha256"})
    assert c == dict(c, algo="sha256", digest=hashlib.sha256(data).hexdigest(), size=len(data)), c
    c = call("checksum", {"path": "s/a.txt", "algo": "blake2b"})
    assert c["digest"] == hashlib.blake2b(data, digest_size=32).hexdigest(), c
    c = call("checksum", {"path": "s/a.txt", "algo": "sha256", "length": 5})
    assert c["digest"] == hashlib.sha256(data[:5]).hexdigest() and c["size"] == 5, c
    assert c["file_size"] == len(data), c
    c = call("checksum", {"path": "s/a.txt", "length": 10 ** 9})
    assert c["digest"] == hashlib.sha256(data).hexdigest() and c["size"] == len(data), c
    expect(INVALID_PARAMS, "checksum", {"path": "s/a.txt", "algo": "md5"}, "algo")
    expect(FAILED_PRECONDITION, "checksum", {"path": "s"})


ESCAPES = ["../x", "a/../../x", "..", "/etc/passwd", "/", "esc/outdir/secret.txt", "esc/outfile",
           "esc/chain1", "esc/dangling_abs", "esc/dangling_rel", "esc/mid/x/secret.txt",
           "esc/mid/x", "esc/relout", "esc/relout/secret.txt", "a" * 5000, ("b" * 300) + "/c",
           "esc/" + "c" * 300]


def make_escapes():
    os.makedirs(in_r1("esc/mid"))
    os.symlink(T.outside, in_r1("esc/outdir"))
    os.symlink(os.path.join(T.outside, "secret.txt"), in_r1("esc/outfile"))
    os.symlink("chain2", in_r1("esc/chain1"))
    os.symlink("../../outside/secret.txt", in_r1("esc/chain2"))
    os.symlink("/nonexistent/zz", in_r1("esc/dangling_abs"))
    os.symlink("../../../nope", in_r1("esc/dangling_rel"))
    os.symlink("../../../outside", in_r1("esc/mid/x"))
    os.symlink("../../outside", in_r1("esc/relout"))
    # links that stay inside work
    os.symlink("../all.bin", in_r1("esc/inlink"))
    os.symlink("mid", in_r1("esc/indir"))


def test_escapes():
    make_escapes()
    before = outside_snapshot()
    calls = []
    for p in ESCAPES:
        calls += [("stat", {"path": p}), ("read", {"path": p}), ("list", {"path": p}),
                  ("list", {"path": p, "recursive": True}), ("checksum", {"path": p}),
                  ("search", {"path": p, "content": "secret"}),
                  ("write", {"path": p, "data": b"pwned"}),
                  ("write", {"path": p, "data": b"pwned", "offset": 0}),
                  ("write", {"path": p, "data": b"pwned", "append": True}),
                  ("mkdir", {"path": p}), ("mkdir", {"path": p + "/new", "parents": True}),
                  ("remove", {"path": p}), ("remove", {"path": p, "recursive": True}),
                  ("move", {"src": p, "dst": "moved"}),
                  ("move", {"src": "esc/mid", "dst": p}),
                  ("write", {"path": p + "/new.txt", "data": b"pwned"})]
    for m, params in calls:
        err = err_of(m, params)
        assert err["code"] in ESCAPE_CODES, "%s %r: %r" % (m, params, err)
        assert isinstance(err.get("data"), dict) and err["data"].get("param") in ("path", "src", "dst"), \
            "%s %r: data names no param: %r" % (m, params, err)
    # NUL bytes: a string cannot hold one, and bytes are no path
    for m in ("stat", "read", "remove"):
        for bad in ("a\x00b", b"esc"):
            expect(INVALID_PARAMS, m, {"path": bad}, "path")
    assert outside_snapshot() == before, "something outside the root changed"
    assert sorted(os.listdir(T.outside)) == ["secret.txt"]
    assert not os.path.exists(in_r1("moved")) and os.path.isdir(in_r1("esc/mid"))
    # escaping links are still there (nothing followed them), inside links work
    assert os.path.islink(in_r1("esc/outfile")) and os.path.islink(in_r1("esc/dangling_abs"))
    assert call("read", {"path": "esc/inlink"})["size"] == os.path.getsize(in_r1("all.bin"))
    assert call("stat", {"path": "esc/inlink"})["type"] == "symlink"
    assert call("stat", {"path": "esc/indir"})["target"] == "mid"
    assert call("list", {"path": "esc/indir"})["entries"][0]["path"] == "esc/indir/x"
    # normalization: "a//b", "./a/", "." are fine
    assert call("stat", {"path": "esc//mid/"})["path"] == "esc/mid"
    assert call("stat", {"path": "./esc/./mid"})["type"] == "dir"
    assert call("stat", {"path": "."})["path"] == "."


def test_roles():
    c = T.viewer
    for m, params in (("write", {"path": "v.txt", "data": b"x"}), ("mkdir", {"path": "vdir"}),
                      ("remove", {"path": "o.txt"}), ("move", {"src": "o.txt", "dst": "v2.txt"})):
        err = err_of(m, params, client=c)
        assert err["code"] == PERMISSION_DENIED, (m, err)
    assert not os.path.exists(in_r1("v.txt")) and not os.path.exists(in_r1("vdir"))
    assert os.path.exists(in_r1("o.txt"))
    err, res = c.request("system.local.file.read", {"path": "o.txt"})
    assert err is None and res["data"] == open(in_r1("o.txt"), "rb").read(), (err, res)
    err, res = c.request("system.local.file.checksum", {"path": "o.txt"})
    assert err is None, err
    err, res = c.request("system.local.file.roots", {})
    assert err is None and len(res["roots"]) == 2, err


def test_full_filesystem():
    if not T.mounted:
        p2p.log("SKIP test_full_filesystem: no tmpfs (mount failed, not root?)")
        return
    old = os.urandom(200 * 1024)
    w = call("write", {"path": "keep.bin", "data": old, "root": "small"})
    assert w["size"] == len(old), w
    err = expect(RESOURCE_EXHAUSTED, "write",
                 {"path": "keep.bin", "data": os.urandom(600 * 1024), "root": "small"})
    assert "no space left on device" in err["message"], err
    r = call("read", {"path": "keep.bin", "root": "small"})
    assert r["data"] == old and r["etag"] == w["etag"], "the old file changed"
    assert sorted(os.listdir(T.small)) == ["keep.bin"], os.listdir(T.small)
    # a new file that does not fit leaves nothing either
    expect(RESOURCE_EXHAUSTED, "write", {"path": "new.bin", "data": os.urandom(600 * 1024),
                                         "root": "small"})
    assert sorted(os.listdir(T.small)) == ["keep.bin"], os.listdir(T.small)
    # in-place writes past the space fail clearly too
    err = expect(RESOURCE_EXHAUSTED, "write", {"path": "keep.bin", "data": os.urandom(600 * 1024),
                                               "offset": len(old), "root": "small"})
    assert "no space left on device" in err["message"], err
    assert call("read", {"path": "keep.bin", "root": "small", "length": len(old)})["data"] == old


def test_stop_clean():
    T.viewer.close()
    T.node.close_client()
    T.node.stop_ok(10)


def main():
    r = p2p.Runner()
    try:
        r.run(test_start)
        for t in (test_roots, test_write_read_binary, test_offset_append_if_match, test_list,
                  test_mkdir_remove_move, test_search_checksum, test_escapes, test_roles,
                  test_full_filesystem, test_stop_clean):
            r.run(t)
    finally:
        if T.node is not None and T.node.alive():
            T.node.stop()
        if T.mounted:
            subprocess.run(["umount", "-l", T.small], capture_output=True, timeout=20)
    r.finish()


if __name__ == "__main__":
    main()
