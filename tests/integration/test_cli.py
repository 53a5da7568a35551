#!/usr/bin/python3
"""test_cli.py: p2p-rpc against a real node: exit codes 0/1/2/3, key=value parsing (JSON when valid,
else a string), --json params, --out json|text, --socket/--token and their environment variables,
`nodes`, `methods NODE`, a fan-out on a one-node network with its summary line, the audit log
(refused and permitted changing calls appear in system.local.node.audit) and tokens narrowed with
`p2p-node token --targets/--methods`.
Usage: test_cli.py BUILD_DIR
"""

import base64
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402


class Env:
    def __init__(self):
        self.root = p2p.tmpdir("p2p-cli-")
        self.net = p2p.Network()
        self.n = p2p.Node(self.net, "cli01", self.root).start().wait_ready()
        self.token = self.n.token("admin")
        self.home = os.path.join(self.root, "home")
        os.makedirs(self.home)

    def env(self, **kw):
        e = dict(os.environ)
        for k in ("P2P_SOCKET", "P2P_TOKEN", "P2P_TOKEN_FILE", "P2P_HTTP"):
            e.pop(k, None)
        e["HOME"] = self.home  # no ~/.config/p2p-admin/token of the user running the tests
        e.update(kw)
        return e

    def rpc(self, *args, auth=True, env=None, cwd=None):
        a = [p2p.rpc_bin(), "--socket", self.n.sock_path]
        if auth:
            a += ["--token", self.token]
        a += list(args)
        r = subprocess.run(a, capture_output=True, timeout=30, env=env or self.env(), cwd=cwd or self.root)
        r.out = r.stdout.decode(errors="replace")
        r.err = r.stderr.decode(errors="replace")
        return r


def show(r):
    return "exit %d\nstdout: %s\nstderr: %s" % (r.returncode, r.out[:2000], r.err[:2000])


def ok_json(r):
    assert r.returncode == 0, show(r)
    try:
        return json.loads(r.out)
    except ValueError:
        raise AssertionError("stdout is not JSON:\n" + show(r))


def test_ping_exit0(e):
    r = e.rpc("rpc.ping")
    assert r.returncode == 0, show(r)


def test_out_json(e):
    info = ok_json(e.rpc("--out", "json", "system.local.node.info"))
    assert info.get("id") == e.n.node_id(), info
    assert info.get("name") == "cli01", info


def test_out_text(e):
    r = e.rpc("--out", "text", "system.local.node.info")
    assert r.returncode == 0, show(r)
    assert e.n.node_id() in r.out, show(r)


def test_json_when_not_tty(e):
    # stdout is a pipe here: the default output is JSON.
    ok_json(e.rpc("system.local.node.info"))


def test_key_value_params(e):
    r = e.rpc("--out", "json", "system.local.dht.put", "key=cli-kv", "value=hello world", "ttl=60")
    assert r.returncode == 0, show(r)
    got = ok_json(e.rpc("--out", "json", "system.local.dht.get", "key=cli-kv"))
    assert "hello world" in p2p.get_values(got), got
    # ttl=soon is not valid JSON: it goes as a string and the schema rejects it (exit 1, code on stderr).
    r = e.rpc("system.local.dht.put", "key=cli-kv", "value=x", "ttl=soon")
    assert r.returncode == 1, show(r)
    assert "-32602" in r.err or "INVALID_PARAMS" in r.err, show(r)
    # ttl="60" quoted JSON is a string too.
    r = e.rpc("system.local.dht.put", "key=cli-kv", "value=x", 'ttl="60"')
    assert r.returncode == 1, show(r)
    # A value containing '=' keeps everything after the first '='.
    r = e.rpc("system.local.dht.put", "key=cli-eq", "value=a=b=c", "ttl=60")
    assert r.returncode == 0, show(r)
    got = ok_json(e.rpc("system.local.dht.get", "key=cli-eq"))
    assert "a=b=c" in p2p.get_values(got), got


def test_json_params(e):
    r = e.rpc("system.local.dht.put", "--json", json.dumps({"key": "cli-json", "value": "from json", "ttl": 60}))
    assert r.returncode == 0, show(r)
    got = ok_json(e.rpc("system.local.dht.get", "--json", '{"key": "cli-json"}'))
    assert "from json" in p2p.get_values(got), got


def test_call_errors_exit1(e):
    r = e.rpc("system.local.node.no_such_method")
    assert r.returncode == 1, show(r)
    assert "-32601" in r.err or "METHOD_NOT_FOUND" in r.err, show(r)
    r = e.rpc("system.local.dht.put", "key=big", "value=" + "x" * 2000, "ttl=60")
    assert r.returncode == 1, show(r)
    assert "-32006" in r.err or "RESOURCE_EXHAUSTED" in r.err, show(r)


def test_no_token_exit1(e):
    r = e.rpc("system.local.node.info", auth=False)
    assert r.returncode == 1, show(r)
    assert "-32001" in r.err or "UNAUTHENTICATED" in r.err, show(r)


def test_bad_token_exit1(e):
    r = e.rpc("--token", "not.a.jwt", "system.local.node.info", auth=False)
    assert r.returncode == 1, show(r)
    assert "-32001" in r.err or "UNAUTHENTICATED" in r.err, show(r)


def test_usage_exit2(e):
    for args in (["--no-such-option", "rpc.ping"], [], ["system.local.dht.get", "--json", "{not json"],
                 ["system.local.dht.get", "novalue"], ["--out", "yaml", "rpc.ping"],
                 ["--timeout", "abc", "rpc.ping"]):
        r = e.rpc(*args)
        assert r.returncode == 2, "args %r: %s" % (args, show(r))
        assert r.err.strip(), "args %r: nothing on stderr" % (args,)


def test_env_socket_and_token(e):
    env = e.env(P2P_SOCKET=e.n.sock_path, P2P_TOKEN=e.token)
    r = subprocess.run([p2p.rpc_bin(), "--out", "json", "system.local.node.info"], capture_output=True,
                       timeout=30, env=env, cwd=e.root)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["id"] == e.n.node_id()
    tokfile = os.path.join(e.root, "tok")
    with open(tokfile, "w") as f:
        f.write(e.token + "\n")
    env = e.env(P2P_SOCKET=e.n.sock_path, P2P_TOKEN_FILE=tokfile)
    r = subprocess.run([p2p.rpc_bin(), "system.local.node.info"], capture_output=True, timeout=30, env=env,
                       cwd=e.root)
    assert r.returncode == 0, r.stderr


def test_default_socket_in_data_dir(e):
    # With no --socket and no P2P_SOCKET, ./data/*/rpc.sock is used when exactly one exists.
    cwd = os.path.join(e.root, "cwd")
    os.makedirs(os.path.join(cwd, "data", "cli01"))
    os.symlink(e.n.sock_path, os.path.join(cwd, "data", "cli01", "rpc.sock"))
    r = subprocess.run([p2p.rpc_bin(), "--token", e.token, "system.local.node.info"], capture_output=True,
                       timeout=30, env=e.env(), cwd=cwd)
    assert r.returncode == 0, r.stderr


def test_unreachable_socket(e):
    r = subprocess.run([p2p.rpc_bin(), "--socket", os.path.join(e.root, "nope.sock"), "--token", e.token,
                        "rpc.ping"], capture_output=True, timeout=30, env=e.env(), cwd=e.root)
    assert r.returncode in (1, 3), "exit %d" % r.returncode
    assert r.stderr.strip()


def test_nodes(e):
    methods = [m["name"] for m in e.n.call("system.local.node.methods", {})]
    assert "system.local.node.nodes" in methods, "node.nodes is not served (CONTRACT section 3): %r" % methods
    got = ok_json(e.rpc("--out", "json", "nodes"))
    lst = got if isinstance(got, list) else got.get("nodes")
    assert any(isinstance(x, dict) and x.get("name") == "cli01" for x in lst), got
    r = e.rpc("--out", "text", "nodes")
    assert r.returncode == 0, show(r)
    assert r.out.splitlines()[0].split()[:2] == ["NAME", "UP"], show(r)
    assert any(line.split()[:1] == ["cli01"] for line in r.out.splitlines()[1:]), show(r)
    r = e.rpc("nodes", "extra")
    assert r.returncode == 2, show(r)


def test_methods_node(e):
    for node in ("local", "cli01"):
        got = ok_json(e.rpc("--out", "json", "methods", node))
        names = [m["name"] for m in got]
        assert any(n.endswith(".node.info") for n in names), got
        assert any(n.endswith(".node.audit") for n in names), got
    r = e.rpc("--out", "text", "methods", "cli01")
    assert r.returncode == 0 and "node.info" in r.out, show(r)
    r = e.rpc("methods", "no-such-node")
    assert r.returncode == 1, show(r)
    assert "-32003" in r.err or "NOT_FOUND" in r.err, show(r)


def test_fanout_one_node(e):
    # A glob NODE part is a fan-out: a map {node: {"result": ...}}, a summary on stderr, exit 0 when all ok.
    got = ok_json(e.rpc("--out", "json", "system.*.node.info"))
    assert set(got) == {"cli01"}, got
    assert got["cli01"]["result"]["name"] == "cli01", got
    r = e.rpc("--out", "json", "system.cli0?.node.info")
    assert r.returncode == 0, show(r)
    assert "1 node: 1 ok, 0 failed" in r.err, show(r)
    r = e.rpc("--out", "text", "system.*.node.info")
    assert r.returncode == 0 and e.n.node_id() in r.out, show(r)
    # --stream: one rpc.partial line per node, then the map (JSON lines)
    r = e.rpc("--stream", "--out", "json", "system.*.node.info")
    assert r.returncode == 0, show(r)
    lines = [json.loads(x) for x in r.out.splitlines() if x.strip()]
    assert any(x.get("node") == "cli01" and "result" in x for x in lines), show(r)
    assert "cli01" in lines[-1], show(r)
    # a method failing on every matched node: exit 3 naming the node
    r = e.rpc("--out", "json", "system.*.node.no_such_method")
    assert r.returncode == 3, show(r)
    assert "cli01" in r.err and "METHOD_NOT_FOUND" in r.err, show(r)


def audit_rows(e, since=0):
    return e.n.call("system.local.node.audit", {"since": since, "limit": 1000})


def test_audit_denied_and_permitted(e):
    since = int(time.time() * 1000) - 1000
    viewer = p2p.mint_token(e.net, "viewer", e.n.data_dir, sub="vera-viewer")
    operator = p2p.mint_token(e.net, "operator", e.n.data_dir, sub="otto-operator")
    r = e.rpc("--token", viewer, "system.local.dht.put", "key=audit-k", "value=v", "ttl=60", auth=False)
    assert r.returncode == 1, show(r)
    assert "-32002" in r.err or "PERMISSION_DENIED" in r.err, show(r)
    r = e.rpc("--token", operator, "system.local.dht.put", "key=audit-k", "value=v", "ttl=60", auth=False)
    assert r.returncode == 0, show(r)
    # a read-only call is not recorded
    r = e.rpc("--token", operator, "system.local.node.info", auth=False)
    assert r.returncode == 0, show(r)
    rows = audit_rows(e, since)
    denied = [x for x in rows if x["principal"] == "vera-viewer"]
    assert len(denied) == 1, rows
    assert denied[0]["method"] == "system.local.dht.put", denied
    assert denied[0]["code"] == p2p.PERMISSION_DENIED and denied[0]["error"] == "PERMISSION_DENIED", denied
    assert denied[0]["origin"] == "" and len(denied[0]["params_hash"]) == 32, denied
    assert since <= denied[0]["time"] <= int(time.time() * 1000) + 1000, denied
    done = [x for x in rows if x["principal"] == "otto-operator"]
    assert len(done) == 1 and done[0]["code"] == 0 and done[0]["method"] == "system.local.dht.put", rows
    assert done[0]["id"] > denied[0]["id"] and rows.index(done[0]) < rows.index(denied[0]), rows  # newest first
    assert not any(x["principal"] == "otto-operator" and x["method"].endswith("node.info") for x in rows), rows
    # the same params give the same digest
    assert done[0]["params_hash"] == denied[0]["params_hash"], rows
    # limit and since; a viewer may read the log
    c = p2p.Client(e.n.sock_path)
    try:
        c.auth(viewer)
        assert len(c.call("system.local.node.audit", {"limit": 1})) == 1
        assert c.call("system.local.node.audit", {"since": int(time.time() * 1000) + 60000}) == []
        err, _ = c.request("system.local.node.audit", {"limit": 1001})
        assert err and err["code"] == p2p.INVALID_PARAMS, err
    finally:
        c.close()
    # unauthenticated calls to real methods are recorded too (principal "")
    r = e.rpc("--token", "x.y.z", "system.local.dht.put", "key=k", "value=v", auth=False)
    assert r.returncode == 1, show(r)
    rows = audit_rows(e, since)
    assert any(x["code"] == p2p.UNAUTHENTICATED and x["principal"] == "" for x in rows), rows


def token_with(e, role, *flags):
    a = [p2p.node_bin(), "token", "--role", role, "--data-dir", e.n.data_dir] + list(flags)
    r = subprocess.run(a, env=e.net.env(), capture_output=True, timeout=20)
    return r


def test_acl_tokens(e):
    r = token_with(e, "admin", "--sub", "narrow", "--methods", "node.info,dht.g?t")
    assert r.returncode == 0, r.stderr
    tok = r.stdout.decode().strip()
    assert e.rpc("--token", tok, "system.local.node.info", auth=False).returncode == 0
    assert e.rpc("--token", tok, "system.local.dht.get", "key=cli-kv", auth=False).returncode == 0
    r = e.rpc("--token", tok, "system.local.node.peers", auth=False)
    assert r.returncode == 1 and ("-32002" in r.err or "PERMISSION_DENIED" in r.err), show(r)
    r = token_with(e, "admin", "--targets", "web-*,db-0?")
    assert r.returncode == 0, r.stderr
    r = e.rpc("--token", r.stdout.decode().strip(), "system.local.node.info", auth=False)
    assert r.returncode == 1 and ("-32002" in r.err or "PERMISSION_DENIED" in r.err), show(r)
    r = token_with(e, "viewer", "--targets", "cli*", "--methods", "node.*")
    assert e.rpc("--token", r.stdout.decode().strip(), "system.local.node.info", auth=False).returncode == 0
    # refusals by the ACL are audited
    rows = audit_rows(e)
    assert any(x["principal"] == "narrow" and x["method"] == "system.local.node.peers"
               and x["code"] == p2p.PERMISSION_DENIED for x in rows), rows
    # bad patterns are a usage error of p2p-node token
    for flags in (["--targets", "a b"], ["--methods", ","], ["--methods", "x" * 65]):
        r = token_with(e, "viewer", *flags)
        assert r.returncode == 2 and r.stderr.strip(), (flags, r.returncode, r.stderr)
    # a hand-made token with a malformed claim is UNAUTHENTICATED
    bad = p2p.resign_token(e.token, payload=dict(json.loads(p2p.b64url_dec(e.token.split(".")[1])),
                                                 targets="cli01"),
                           key=base64.b64decode(e.net.auth_secret))
    r = e.rpc("--token", bad, "system.local.node.info", auth=False)
    assert r.returncode == 1 and ("-32001" in r.err or "UNAUTHENTICATED" in r.err), show(r)


def main():
    r = p2p.Runner()
    e = Env()
    for t in (test_ping_exit0, test_out_json, test_out_text, test_json_when_not_tty, test_key_value_params,
              test_json_params, test_call_errors_exit1, test_no_token_exit1, test_bad_token_exit1,
              test_usage_exit2, test_env_socket_and_token, test_default_socket_in_data_dir,
              test_unreachable_socket, test_nodes, test_methods_node, test_fanout_one_node,
              test_audit_denied_and_permitted, test_acl_tokens):
        r.run(t, e)
    r.finish()


if __name__ == "__main__":
    main()
