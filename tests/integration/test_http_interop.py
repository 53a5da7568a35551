#!/usr/bin/python3
"""test_http_interop.py: the node's tokens and WebSocket against npm libraries (issue 5 interop).

Two nodes ia, ib on loopback (ib joins through ia), one auth secret. The npm packages come from
tests/interop/node_modules (npm ci by run.sh from the committed lock: jose 5.10.0, ws 8.23.1);
node or a package missing FAILS the test, it never skips. Checks:
- jose verifies the node's JWTs: one from `p2p-node token --role viewer --sub ...` and the access
  token of POST /api/auth/login for a user made with `p2p-node user add`; jwtVerify with the
  secret's decoded bytes, HS256 only and audience p2p-admin accepts both and reads the claims the
  node set (sub, role, aud, iat, exp, jti); the same tokens under another audience or another
  secret are refused by jose (so the verification is not vacuous);
- the node accepts JWTs minted by jose with the same secret (HS256, typ JWT): a full one (sub,
  role, aud, iat, exp, jti), a minimal one (role, aud, exp: what src/rpc/auth.c requires) and one
  whose aud is an array holding p2p-admin: GET /api/info 200 on ia and on ib, the local socket
  through p2p-rpc (exit 0, the node's info), rpc.auth on the socket, POST /api/rpc, and /ws
  (handshake 101 with ?access_token= and with Authorization: Bearer);
- the node refuses jose tokens with alg none (UnsecuredJWT), exp an hour ago, nbf in an hour,
  another aud, another secret, and HS512 with the right secret: 401 UNAUTHENTICATED on
  /api/info, p2p-rpc exit 1 naming UNAUTHENTICATED, rpc.auth UNAUTHENTICATED, and 401 on the /ws
  handshake;
- the npm `ws` client (test_ws_interop.js) with jose's token subscribes to `metrics` on ia and
  receives ib's events (fetched through the network), calls rpc.ping, pings and closes 1000.
Usage: test_http_interop.py BUILD_DIR
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402
import ws_client as wsc  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
INTEROP = os.path.normpath(os.path.join(HERE, "..", "interop"))
AUD = "p2p-admin"  # src/node/daemon.c node_auth_config
PASSWORD = "interop horse battery"
BAD = ("alg_none", "expired", "nbf_future", "wrong_aud", "wrong_secret", "hs512")
GOOD = ("good", "minimal", "aud_list")


def nodejs():
    """The node binary; its absence or the packages' fails the test (run.sh test installs them)."""
    exe = shutil.which("node") or shutil.which("nodejs")
    assert exe, "node (Node.js) is not installed: ./run.sh test installs it"
    for pkg in ("jose", "ws"):
        assert os.path.isfile(os.path.join(INTEROP, "node_modules", pkg, "package.json")), \
            "tests/interop/node_modules/%s missing: ./run.sh test runs npm ci there" % pkg
    return exe


def js(script, *args, timeout=60):
    """Runs a JS helper; returns its stdout parsed as JSON (asserting exit 0)."""
    r = subprocess.run([nodejs(), script] + list(args), capture_output=True, timeout=timeout)
    assert r.returncode == 0, "%s exited %d: %s" % (os.path.basename(script), r.returncode,
                                                    r.stderr.decode(errors="replace"))
    return json.loads(r.stdout)


def jose_verify(secret_b64, aud, *tokens):
    return js(os.path.join(INTEROP, "jwt_interop.js"), "verify", secret_b64, aud, *tokens)


def req(node, method, path, body=None, token=None):
    c = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
    try:
        hdrs = {}
        data = None if body is None else json.dumps(body).encode()
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        if token is not None:
            hdrs["Authorization"] = "Bearer " + token
        c.request(method, path, body=data, headers=hdrs)
        r = c.getresponse()
        text = r.read()
        return r.status, json.loads(text) if text else None
    finally:
        c.close()


def ws_handshake(node, token, header=False):
    """The status of a /ws upgrade carrying token in ?access_token= or in Authorization."""
    s = socket.create_connection(("127.0.0.1", node.http_port), timeout=10)
    try:
        if header:
            rq, _ = wsc.handshake_request("127.0.0.1", node.http_port,
                                          extra=[("Authorization", "Bearer " + token)])
        else:
            rq, _ = wsc.handshake_request("127.0.0.1", node.http_port, path="/ws?access_token=" + token)
        s.sendall(rq)
        status, _, body, _ = wsc.read_http_response(s, 10)
        return status, body
    finally:
        s.close()


def socket_auth(node, token):
    """None when rpc.auth accepts token (and node.info then answers), else the error code."""
    c = p2p.Client(node.sock_path)
    try:
        c.auth(token)
        c.call("system.local.node.info", {})
        return None
    except p2p.RpcError as e:
        return e.code
    finally:
        c.close()


class Env:
    def __init__(self):
        self.root = p2p.tmpdir("p2p-interop-")
        self.net = p2p.Network()
        self.a, self.b = p2p.start_mesh(self.net, self.root, ["ia", "ib"])
        p2p.wait_until(lambda: p2p.lists_up(self.a, ["ia", "ib"]) and p2p.lists_up(self.b, ["ia", "ib"]),
                       60, interval=0.5, what="ia and ib listing each other up")
        a = [p2p.node_bin(), "user", "add", "alice", "--role", "operator", "--data-dir", self.a.data_dir]
        r = subprocess.run(a, env=self.net.env(), input=(PASSWORD + "\n").encode(), capture_output=True,
                           timeout=60)
        assert r.returncode == 0, "p2p-node user add: %s" % r.stderr.decode(errors="replace")
        self.jose = js(os.path.join(INTEROP, "jwt_interop.js"), "mint", self.net.auth_secret, AUD,
                       "jose-client", "viewer")
        assert set(self.jose) == set(GOOD + BAD), self.jose.keys()


def test_jose_verifies_node_tokens(e):
    cli = p2p.mint_token(e.net, "viewer", e.a.data_dir, sub="interop-cli")
    st, j = req(e.a, "POST", "/api/auth/login", {"username": "alice", "password": PASSWORD})
    assert st == 200 and j.get("token_type") == "Bearer", (st, j)
    login = j["access_token"]
    got = jose_verify(e.net.auth_secret, AUD, cli, login)
    for r in got:
        assert r["ok"], "jose refused a node token: %r" % (r,)
        assert r["header"]["alg"] == "HS256", r
        p = r["payload"]
        assert p["aud"] == AUD or AUD in p["aud"], p
        assert isinstance(p["exp"], int) and isinstance(p["iat"], int) and p["exp"] > p["iat"], p
    cp, lp = got[0]["payload"], got[1]["payload"]
    assert cp["sub"] == "interop-cli" and cp["role"] == "viewer", cp
    assert lp["sub"] == "alice" and lp["role"] == "operator" and lp.get("jti"), lp
    assert lp["exp"] - lp["iat"] == 60 * 60, lp  # TOKEN_EXPIRE_MINUTES default
    # the controls: jose itself refuses them under another audience or another secret
    for r in jose_verify(e.net.auth_secret, "another-audience", cli, login):
        assert not r["ok"] and r["code"] == "ERR_JWT_CLAIM_VALIDATION_FAILED", r
    other = p2p.random_key_b64(32)
    for r in jose_verify(other, AUD, cli, login):
        assert not r["ok"] and r["code"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED", r


def test_node_accepts_jose_tokens(e):
    for kind in GOOD:
        tok = e.jose[kind]
        for node in (e.a, e.b):
            st, j = req(node, "GET", "/api/info", token=tok)
            assert st == 200 and j.get("name") == node.name, (kind, node.name, st, j)
        rc, out, err = p2p.run_cli(e.a, ["--out", "json", "system.local.node.info"], token=tok)
        assert rc == 0, (kind, rc, out, err)
        assert json.loads(out)["name"] == "ia", (kind, out)
        assert socket_auth(e.a, tok) is None, kind
        st, j = req(e.a, "POST", "/api/rpc", {"jsonrpc": "2.0", "id": 7, "method": "system.ib.node.info",
                                              "params": {}}, token=tok)
        assert st == 200 and j.get("id") == 7 and j["result"]["name"] == "ib", (kind, st, j)
        for header in (False, True):
            st, body = ws_handshake(e.a, tok, header=header)
            assert st == 101, (kind, header, st, body)
    # the role is jose's claim: a viewer may not write files
    st, j = req(e.a, "POST", "/api/rpc", {"jsonrpc": "2.0", "id": 8, "method": "system.local.file.write",
                                          "params": {"path": os.path.join(e.root, "x"), "data": "x"}},
                token=e.jose["good"])
    assert st in (200, 403) and j["error"]["code"] == p2p.PERMISSION_DENIED, (st, j)


def test_node_refuses_bad_jose_tokens(e):
    for kind in BAD:
        tok = e.jose[kind]
        st, j = req(e.a, "GET", "/api/info", token=tok)
        assert st == 401 and j["error"]["code"] == p2p.UNAUTHENTICATED, (kind, st, j)
        rc, out, err = p2p.run_cli(e.a, ["system.local.node.info"], token=tok)
        assert rc == 1 and ("UNAUTHENTICATED" in err or str(p2p.UNAUTHENTICATED) in err), (kind, rc, out, err)
        assert socket_auth(e.a, tok) == p2p.UNAUTHENTICATED, kind
        for header in (False, True):
            st, body = ws_handshake(e.a, tok, header=header)
            assert st == 401, (kind, header, st, body)
    # and no token at all
    st, j = req(e.a, "GET", "/api/info")
    assert st == 401, (st, j)


def test_npm_ws_client_remote_metrics(e):
    """The npm ws client, with jose's token, on ia's /ws: metrics events from ib arrive."""
    nodejs()
    r = subprocess.run([nodejs(), os.path.join(HERE, "test_ws_interop.js"),
                        "ws://127.0.0.1:%d/ws" % e.a.http_port, e.jose["good"], "ib"],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert b"ws interop: ok" in r.stdout, r.stdout


def main():
    nodejs()  # fail at once, before starting nodes, when node or the packages are missing
    e = Env()
    r = p2p.Runner()
    for t in (test_jose_verifies_node_tokens, test_node_accepts_jose_tokens,
              test_node_refuses_bad_jose_tokens, test_npm_ws_client_remote_metrics):
        r.run(t, e)
    for n in (e.a, e.b):
        if n.alive():
            n.stop_ok()
    r.finish()


if __name__ == "__main__":
    main()
