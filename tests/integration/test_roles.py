#!/usr/bin/python3
"""test_roles.py: the roles of CONTRACT section 5 hold for every local service (issue 4).

Two nodes on loopback, n01 and n02. For each method of the issue's catalogue:
- system.local.node.methods lists it with the required role the contract gives it (viewer for
  reads, operator for process control and alert changes, admin for writes and process.run);
- a viewer (and, for admin methods, an operator) calling it gets PERMISSION_DENIED, on the local
  node and forwarded to n02 (the far node refuses it itself), with well-formed arguments, and the
  call has no effect (no file appears, no program is defined, no process runs);
- the admin's same calls are not refused.
Usage: test_roles.py BUILD_DIR
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402

VIEWER, OPERATOR, ADMIN = "viewer", "operator", "admin"

# (method, required role, well-formed params). network.check_port is left out: its role is the
# service's choice (documented in docs/network.md) and test_network.py checks it.
CATALOGUE = [
    ("process.list", VIEWER, {"limit": 1}),
    ("process.info", VIEWER, {"pid": 1}),
    ("process.managed", VIEWER, {}),
    ("process.logs", VIEWER, {"name": "nosuch", "stream": "stdout"}),
    ("process.signal", OPERATOR, {"pid": 999999999, "signal": "TERM"}),
    ("process.start", OPERATOR, {"name": "roles-prog", "argv": ["sleep", "1000"]}),
    ("process.stop", OPERATOR, {"name": "roles-prog"}),
    ("process.restart", OPERATOR, {"name": "roles-prog"}),
    ("process.run", ADMIN, {"argv": ["touch", "MARKER"]}),
    ("file.list", VIEWER, {"path": "."}),
    ("file.stat", VIEWER, {"path": "keep.txt"}),
    ("file.read", VIEWER, {"path": "keep.txt"}),
    ("file.search", VIEWER, {"path": ".", "glob": "*.txt"}),
    ("file.checksum", VIEWER, {"path": "keep.txt", "algo": "sha256"}),
    ("file.write", ADMIN, {"path": "new.txt", "data": b"x"}),
    ("file.mkdir", ADMIN, {"path": "newdir"}),
    ("file.remove", ADMIN, {"path": "keep.txt"}),
    ("file.move", ADMIN, {"src": "keep.txt", "dst": "moved.txt"}),
    ("network.interfaces", VIEWER, {}),
    ("network.connections", VIEWER, {}),
    ("network.routes", VIEWER, {}),
    ("network.resolve", VIEWER, {"name": "localhost"}),
    ("network.stats", VIEWER, {}),
    ("network.ping", VIEWER, {"node": "n01"}),
    ("monitor.status", VIEWER, {}),
    ("monitor.history", VIEWER, {"metric": "cpu.total"}),
    ("monitor.alerts", VIEWER, {}),
    ("monitor.alert_set", OPERATOR, {"name": "roles-alert", "metric": "cpu.total", "op": ">",
                                     "threshold": 1000, "for_seconds": 60, "severity": "info"}),
    ("monitor.alert_remove", OPERATOR, {"name": "roles-alert"}),
]
RANK = {VIEWER: 1, OPERATOR: 2, ADMIN: 3}


def method_roles(node):
    """{DOMAIN.METHOD: role} from system.local.node.methods."""
    out = {}
    for m in node.call("system.local.node.methods", {}):
        name = m["name"]
        parts = name.split(".")
        out[".".join(parts[-2:])] = m.get("role")
        assert m.get("description"), "%s has no description" % name
    return out


def client_as(node, role):
    c = p2p.Client(node.sock_path, timeout=15.0)
    c.auth(node.token(role))
    return c


def main():
    root = p2p.tmpdir("p2p-roles-")
    net = p2p.Network()
    n1, n2 = p2p.start_mesh(net, root, ["n01", "n02"])
    p2p.wait_until(lambda: p2p.lists_up(n1, ["n02"]) and p2p.lists_up(n2, ["n01"]), 30, interval=0.5,
                   what="n01 and n02 listing each other")
    files = {}
    for n in (n1, n2):
        files[n.name] = os.path.join(n.data_dir, "files")
        os.makedirs(files[n.name], exist_ok=True)
        with open(os.path.join(files[n.name], "keep.txt"), "wb") as f:
            f.write(b"keep me\n")

    roles = method_roles(n1)
    for method, role, _ in CATALOGUE:
        assert method in roles, "%s is not in the method table" % method
        assert roles[method] == role, "%s requires %r, the contract says %r" % (method, roles[method], role)
    p2p.log("PASS the method table lists the %d catalogue methods with their roles" % len(CATALOGUE))

    refused = 0
    for caller in (VIEWER, OPERATOR):
        c = client_as(n1, caller)
        try:
            for method, role, params in CATALOGUE:
                if RANK[caller] >= RANK[role]:
                    continue
                for target in ("local", "n02"):
                    err, _ = c.request("system.%s.%s" % (target, method), dict(params, _timeout=10))
                    assert err is not None and err.get("code") == p2p.PERMISSION_DENIED, \
                        "%s calling system.%s.%s: %r" % (caller, target, method, err)
                    refused += 1
        finally:
            c.close()
    p2p.log("PASS %d calls refused with PERMISSION_DENIED (viewer and operator, local and on n02)" % refused)

    # nothing happened on either node
    for n in (n1, n2):
        d = files[n.name]
        assert sorted(os.listdir(d)) == ["keep.txt"], "%s files: %r" % (n.name, os.listdir(d))
        with open(os.path.join(d, "keep.txt"), "rb") as f:
            assert f.read() == b"keep me\n"
        managed = n.call("system.local.process.managed", {})
        names = [p.get("name") for p in (managed if isinstance(managed, list) else managed.get("programs", []))]
        assert "roles-prog" not in names, "%s defined the program: %r" % (n.name, managed)
        assert not os.path.exists(os.path.join("/", "MARKER"))
    p2p.log("PASS refused calls changed nothing")

    # the admin is let through (results may still be errors such as NOT_FOUND, never a refusal)
    for method, role, params in CATALOGUE:
        if method in ("process.start", "process.run", "file.remove", "file.move"):
            continue  # side effects checked by the services' own tests
        err, _ = n1.client().request("system.n02.%s" % method, dict(params, _timeout=10))
        assert err is None or err.get("code") not in (p2p.PERMISSION_DENIED, p2p.UNAUTHENTICATED), \
            "admin refused on system.n02.%s: %r" % (method, err)
    p2p.log("PASS the admin is not refused")
    n1.stop_ok()
    n2.stop_ok()
    p2p.log("1 passed, 0 failed")


if __name__ == "__main__":
    try:
        main()
    finally:
        p2p.cleanup()
