#!/usr/bin/python3
"""test_cli.py: p2p-rpc against a real node: exit codes 0/1/2, key=value parsing (JSON when valid,
else a string), --json params, --out json|text, --socket/--token and their environment variables.
Usage: test_cli.py BUILD_DIR
"""

import json
import os
import subprocess
import sys

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


def main():
    r = p2p.Runner()
    e = Env()
    for t in (test_ping_exit0, test_out_json, test_out_text, test_json_when_not_tty, test_key_value_params,
              test_json_params, test_call_errors_exit1, test_no_token_exit1, test_bad_token_exit1,
              test_usage_exit2, test_env_socket_and_token, test_default_socket_in_data_dir,
              test_unreachable_socket):
        r.run(t, e)
    r.finish()


if __name__ == "__main__":
    main()
