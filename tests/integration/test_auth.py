#!/usr/bin/python3
"""test_auth.py: login, tokens and their replication on real p2p-node processes (issue 5 point 3).

Three nodes a1, b1, c1 on loopback (TOKEN_EXPIRE_MINUTES=7), users made with `p2p-node user add`
on a1's data dir while it runs. At the HTTP level (http.client), with the socket where it says:
- login: 200 with access_token, refresh_token, token_type Bearer, expires_in 420; the token's
  claims (sub, role, aud) and it works on GET /api/info and on the local socket; wrong password
  and unknown user: the same 401 body; bad JSON 400 PARSE_ERROR, wrong types 400 INVALID_PARAMS
  naming the member;
- refresh: rotates (a new pair), the old refresh token then fails, and that reuse revokes the
  session: the new refresh token fails too; a session started on a1 refreshes on b1;
- logout: the access token fails on HTTP and on the socket (a connection bound before and a new
  rpc.auth), on a1 and, within 10 s, on c1; the session's refresh token fails; logging out twice
  is fine; no token at all is 401;
- brute force: 40 failures from one address -> 429 with Retry-After for any user from it, other
  addresses unaffected; 40 failures on one user name from 40 addresses -> 429 for it even with
  the right password from a fresh address, other users unaffected;
- 100 logins at once: the ones past the hash slots and the queue get 503 with Retry-After;
- a user added on a1 logs in on c1 within 10 s; removed on a1, its token and login fail on c1
  within 10 s;
- tokens with alg none, expired, nbf in the future, another aud, garbage base64 -> 401 on HTTP
  and UNAUTHENTICATED at rpc.auth;
- node.auth_sync / node.auth_push answer nodes only: an admin token on the socket is refused,
  a peer-channel client with the network key gets digests and rows; malformed arguments are
  INVALID_PARAMS.
Usage: test_auth.py BUILD_DIR
"""

import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402

PASSWORD = "correct horse battery"
TTL_MIN = 7


def req(node, method, path, body=None, token=None, source=None, raw=None):
    """(status, {header: value} lower-cased, JSON body or None)."""
    c = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30,
                                   source_address=(source, 0) if source else None)
    try:
        hdrs = {}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        if token:
            hdrs["Authorization"] = "Bearer " + token
        c.request(method, path, body=data, headers=hdrs)
        r = c.getresponse()
        text = r.read()
        headers = {k.lower(): v for k, v in r.getheaders()}
        js = json.loads(text) if text and "json" in headers.get("content-type", "") else None
        return r.status, headers, js
    finally:
        c.close()


def api_status(node, token):
    """The status of GET /api/info with token: 200 when accepted, 401 when refused."""
    st, _, j = req(node, "GET", "/api/info", token=token)
    return st


def login(node, user, pw=PASSWORD, source=None):
    return req(node, "POST", "/api/auth/login", {"username": user, "password": pw}, source=source)


def refresh(node, rt):
    return req(node, "POST", "/api/auth/refresh", {"refresh_token": rt})


def claims(tok):
    return json.loads(p2p.b64url_dec(tok.split(".")[1]))


def error_code(js):
    assert isinstance(js, dict) and isinstance(js.get("error"), dict), js
    return js["error"]["code"]


def user_cmd(node, *args, password=None):
    a = [p2p.node_bin(), "user"] + list(args) + ["--data-dir", node.data_dir]
    r = subprocess.run(a, env=node.net.env(), input=(password + "\n").encode() if password else None,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, "p2p-node user %s: %s" % (args, r.stderr.decode(errors="replace"))


def socket_auth(node, token):
    """None when rpc.auth accepts token on a new connection, else the error code."""
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
        self.root = p2p.tmpdir("p2p-auth-")
        self.net = p2p.MeshNetwork(extra_env={"TOKEN_EXPIRE_MINUTES": str(TTL_MIN)})
        self.a, self.b, self.c = p2p.start_mesh(self.net, self.root, ["a1", "b1", "c1"])
        p2p.wait_until(lambda: all(p2p.lists_up(n, ["a1", "b1", "c1"]) for n in (self.a, self.b, self.c)),
                       60, interval=0.5, what="every node listing the three up")
        for name, role in (("alice", "admin"), ("bob", "viewer"), ("carol", "operator"), ("erin", "viewer")):
            user_cmd(self.a, "add", name, "--role", role, password=PASSWORD)
        self.secret = base64.b64decode(self.net.auth_secret)

    def good_login(self, node=None, user="alice"):
        st, _, js = login(node or self.a, user)
        assert st == 200, (st, js)
        return js


def test_login(e):
    st, h, js = login(e.a, "alice")
    assert st == 200, (st, js)
    assert set(("access_token", "refresh_token", "token_type", "expires_in")) <= set(js), js
    assert js["token_type"] == "Bearer" and js["expires_in"] == TTL_MIN * 60, js
    assert h.get("cache-control") == "no-store", h
    c = claims(js["access_token"])
    assert c["sub"] == "alice" and c["role"] == "admin" and c["aud"] == "p2p-admin", c
    assert c["exp"] - c["iat"] == TTL_MIN * 60 and c.get("jti"), c
    assert api_status(e.a, js["access_token"]) == 200
    assert socket_auth(e.a, js["access_token"]) is None
    # a viewer's token has the viewer role
    assert claims(e.good_login(user="bob")["access_token"])["role"] == "viewer"
    # wrong password and unknown user: the same answer
    st1, _, js1 = login(e.a, "alice", "wrong password")
    st2, _, js2 = login(e.a, "nobody-here", "wrong password")
    assert st1 == 401 and st2 == 401, (st1, st2)
    assert js1 == js2 and error_code(js1) == p2p.UNAUTHENTICATED, (js1, js2)
    # bad bodies
    st, _, js = req(e.a, "POST", "/api/auth/login", raw=b"{not json")
    assert st == 400 and error_code(js) == p2p.PARSE_ERROR, (st, js)
    st, _, js = req(e.a, "POST", "/api/auth/login", {"username": 5, "password": "x"})
    assert st == 400 and error_code(js) == p2p.INVALID_PARAMS and js["error"]["data"]["param"] == "username", js
    st, _, js = req(e.a, "POST", "/api/auth/login", {"username": "alice"})
    assert st == 400 and js["error"]["data"]["param"] == "password", js
    st, _, js = req(e.a, "POST", "/api/auth/login", raw=b"[1,2]")
    assert st == 400, (st, js)


def test_refresh_rotation_and_reuse(e):
    js = e.good_login()
    rt1 = js["refresh_token"]
    st, _, r2 = refresh(e.a, rt1)
    assert st == 200 and r2["refresh_token"] != rt1 and r2["token_type"] == "Bearer", (st, r2)
    assert claims(r2["access_token"])["sub"] == "alice"
    assert api_status(e.a, r2["access_token"]) == 200
    rt2 = r2["refresh_token"]
    # the old one fails, and presenting it revoked the session: the new one fails too
    st, _, j = refresh(e.a, rt1)
    assert st == 401 and error_code(j) == p2p.UNAUTHENTICATED, (st, j)
    st, _, j = refresh(e.a, rt2)
    assert st == 401 and "revoked" in j["error"]["message"], (st, j)
    # ... and every access token of the session ends with it (the thief's and the owner's), here
    # and on the other nodes, while another session of the same user goes on
    other = e.good_login()["access_token"]
    for at in (js["access_token"], r2["access_token"]):
        assert claims(at)["jti"].startswith(claims(js["access_token"])["jti"].split(".")[0] + "."), at
        assert api_status(e.a, at) == 401
        assert socket_auth(e.a, at) == p2p.UNAUTHENTICATED
        p2p.wait_until(lambda: api_status(e.b, at) == 401, 10, interval=0.2,
                       what="b1 refusing an access token of the revoked session")
    assert api_status(e.a, other) == 200 and api_status(e.b, other) == 200
    # not a refresh token at all
    st, _, j = refresh(e.a, "p2r1.garbage")
    assert st == 401, (st, j)
    st, _, j = req(e.a, "POST", "/api/auth/refresh", {})
    assert st == 400 and j["error"]["data"]["param"] == "refresh_token", (st, j)


def test_refresh_on_other_node(e):
    js = e.good_login()

    def on_b():
        st, _, j = refresh(e.b, js["refresh_token"])
        assert st in (200, 401), (st, j)
        return j if st == 200 else None
    j = p2p.wait_until(on_b, 10, interval=0.2, what="a1's session refreshing on b1")
    assert claims(j["access_token"])["sub"] == "alice"


def test_logout(e):
    js = e.good_login()
    at, rt = js["access_token"], js["refresh_token"]
    assert api_status(e.c, at) == 200
    bound = p2p.Client(e.a.sock_path)
    bound.auth(at)
    bound.call("system.local.node.info", {})
    st, _, j = req(e.a, "POST", "/api/auth/logout", {"refresh_token": rt}, token=at)
    assert st == 200 and j == {"access_token_revoked": True, "session_revoked": True}, (st, j)
    st, _, j = req(e.a, "GET", "/api/info", token=at)
    assert st == 401 and error_code(j) == p2p.UNAUTHENTICATED, (st, j)
    try:
        bound.call("system.local.node.info", {})
        raise AssertionError("a connection bound to a logged-out token still works")
    except p2p.RpcError as ex:
        assert ex.code == p2p.UNAUTHENTICATED, ex.err
    finally:
        bound.close()
    assert socket_auth(e.a, at) == p2p.UNAUTHENTICATED
    assert refresh(e.a, rt)[0] == 401
    # the other nodes hear of it
    p2p.wait_until(lambda: api_status(e.c, at) == 401, 10, interval=0.2,
                   what="c1 refusing the logged-out token")
    assert socket_auth(e.c, at) == p2p.UNAUTHENTICATED
    p2p.wait_until(lambda: refresh(e.b, rt)[0] == 401, 10, what="b1 refusing the session")
    # twice is fine; nothing at all is not
    st, _, j = req(e.a, "POST", "/api/auth/logout", token=at)
    assert st == 200, (st, j)
    st, h, j = req(e.a, "POST", "/api/auth/logout")
    assert st == 401 and error_code(j) == p2p.UNAUTHENTICATED, (st, j)
    # a token logged out elsewhere: other sessions of the user still work
    assert api_status(e.a, e.good_login()["access_token"]) == 200
    # logging out with the refresh token alone ends the session's access tokens too
    js = e.good_login()
    st, _, j = req(e.a, "POST", "/api/auth/logout", {"refresh_token": js["refresh_token"]})
    assert st == 200 and j == {"access_token_revoked": False, "session_revoked": True}, (st, j)
    assert api_status(e.a, js["access_token"]) == 401
    p2p.wait_until(lambda: api_status(e.c, js["access_token"]) == 401, 10, interval=0.2,
                   what="c1 refusing the access token of a logged-out session")
    # a bearer of one session and the refresh token of another: both end, the bearer's session not
    one, two = e.good_login(), e.good_login()
    st, _, j = req(e.a, "POST", "/api/auth/logout", {"refresh_token": two["refresh_token"]},
                   token=one["access_token"])
    assert st == 200 and j == {"access_token_revoked": True, "session_revoked": True}, (st, j)
    assert api_status(e.a, one["access_token"]) == 401 and api_status(e.a, two["access_token"]) == 401
    st, _, j = refresh(e.a, one["refresh_token"])
    assert st == 200 and api_status(e.a, j["access_token"]) == 200, (st, j)


def test_brute_force_per_ip(e):
    src = "127.0.0.3"
    for i in range(40):
        st, _, j = login(e.a, "ghost%d" % i, "bad guess", source=src)
        assert st == 401, (i, st, j)
    st, h, j = login(e.a, "ghost-new", "bad guess", source=src)
    assert st == 429 and error_code(j) == p2p.RESOURCE_EXHAUSTED, (st, j)
    assert int(h["retry-after"]) >= 1, h
    st, h, _ = login(e.a, "carol", source=src)  # the right password does not pass either
    assert st == 429 and int(h["retry-after"]) >= 1, (st, h)
    assert login(e.a, "carol", source="127.0.0.4")[0] == 200  # another address is not limited


def test_brute_force_per_user(e):
    for i in range(40):
        st, _, j = login(e.a, "bob", "bad guess", source="127.0.1.%d" % (i + 1))
        assert st == 401, (i, st, j)
    st, h, j = login(e.a, "bob", source="127.0.2.1")  # right password, fresh address
    assert st == 429 and error_code(j) == p2p.RESOURCE_EXHAUSTED, (st, j)
    assert int(h["retry-after"]) >= 1, h
    assert login(e.a, "erin", source="127.0.2.1")[0] == 200  # that address is fine for others


def test_login_overload(e):
    results = []
    lock = threading.Lock()

    def one(i):
        r = login(e.b, "crowd%d" % i, "bad guess", source="127.0.4.%d" % (i + 1))
        with lock:
            results.append(r)
    ts = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    assert len(results) == 100
    busy = [r for r in results if r[0] == 503]
    assert all(r[0] in (401, 503) for r in results), sorted(set(r[0] for r in results))
    assert busy, "no 503 among 100 concurrent logins"
    assert len(busy) <= 100 - 34, len(busy)  # 2 hashing and 32 waiting got an answer
    for st, h, j in busy:
        assert int(h["retry-after"]) >= 1 and error_code(j) == -32005, (h, j)


def test_replication(e):
    user_cmd(e.a, "add", "dave", "--role", "operator", password=PASSWORD)
    t0 = time.monotonic()

    def on_c():
        st, _, j = login(e.c, "dave", source="127.0.3.1")
        assert st in (200, 401), (st, j)
        return j if st == 200 else None
    j = p2p.wait_until(on_c, 10, interval=0.5, what="dave logging in on c1")
    p2p.log("dave logs in on c1 %.2f s after `user add` on a1" % (time.monotonic() - t0))
    assert claims(j["access_token"])["role"] == "operator"
    at = j["access_token"]
    assert socket_auth(e.c, at) is None
    time.sleep(1.1)  # the removal's tokens_after is a later second than this token's iat
    user_cmd(e.a, "remove", "dave")
    p2p.wait_until(lambda: api_status(e.c, at) == 401, 10, interval=0.2,
                   what="c1 refusing a removed user's token")
    assert socket_auth(e.c, at) == p2p.UNAUTHENTICATED
    assert login(e.c, "dave", source="127.0.3.1")[0] == 401
    assert refresh(e.c, j["refresh_token"])[0] == 401


def test_bad_tokens(e):
    good = e.good_login()["access_token"]
    c = claims(good)
    now = int(time.time())
    bad = {
        "alg none": p2p.resign_token(good, header={"alg": "none", "typ": "JWT"}),
        "expired": p2p.resign_token(good, payload=dict(c, exp=now - 3600, iat=now - 7200, nbf=now - 7200),
                                    key=e.secret),
        "future nbf": p2p.resign_token(good, payload=dict(c, nbf=now + 3600), key=e.secret),
        "wrong aud": p2p.resign_token(good, payload=dict(c, aud="someone-else"), key=e.secret),
        "garbage base64": "!!!.@@@.###",
        "garbage segments": good.split(".")[0] + ".bm90IGpzb24." + good.split(".")[2],
    }
    # the same claims re-signed with the secret pass: the refusals come from what was changed
    assert api_status(e.a, p2p.resign_token(good, key=e.secret)) == 200
    for why, tok in bad.items():
        st, h, j = req(e.a, "GET", "/api/info", token=tok)
        assert st == 401 and error_code(j) == p2p.UNAUTHENTICATED, (why, st, j)
        assert socket_auth(e.a, tok) == p2p.UNAUTHENTICATED, why
        st, _, j = req(e.a, "POST", "/api/auth/logout", token=tok)
        assert st == 401, (why, st, j)


def test_peer_only_methods(e):
    admin = e.a.token("admin")
    c = p2p.Client(e.a.sock_path)
    try:
        c.auth(admin)
        for m, p in (("node.auth_sync", {"digest": b"\0" * 3072}), ("node.auth_push", {"users": []})):
            try:
                c.call("system.local." + m, p)
                raise AssertionError("%s answered an admin token on the socket" % m)
            except p2p.RpcError as ex:
                assert ex.code == p2p.PERMISSION_DENIED, ex.err
    finally:
        c.close()
    pc = p2p.peer_client(e.a)
    try:
        pc.handshake()
        res = pc.call("system.local.node.auth_sync", {"digest": b"\0" * 3072})
        assert isinstance(res, dict) and len(res["digest"]) == 3072, res
        names = set(u[0] for u in res["users"])
        assert {"alice", "bob", "carol"} <= names, names
        assert pc.call("system.local.node.auth_push", {"users": [[1, 2, 3]]}) == {"taken": 0}
        for bad in ({"digest": b"\0" * 10}, {"digest": "x" * 3072}):
            try:
                pc.call("system.local.node.auth_sync", bad)
                raise AssertionError("auth_sync took %r" % (bad,))
            except p2p.RpcError as ex:
                assert ex.code == p2p.INVALID_PARAMS, ex.err
        try:
            pc.call("system.local.node.auth_push", {"revoked": [["j", 1]] * 1025})
            raise AssertionError("auth_push took 1025 rows")
        except p2p.RpcError as ex:
            assert ex.code == p2p.INVALID_PARAMS, ex.err
    finally:
        pc.close()
    assert e.good_login()  # still serving


def main():
    e = Env()
    r = p2p.Runner()
    for t in (test_login, test_refresh_rotation_and_reuse, test_refresh_on_other_node, test_logout,
              test_brute_force_per_ip, test_brute_force_per_user, test_login_overload, test_replication,
              test_bad_tokens, test_peer_only_methods):
        r.run(t, e)
    for n in (e.a, e.b, e.c):
        n.stop_ok()
    r.finish()


if __name__ == "__main__":
    main()
