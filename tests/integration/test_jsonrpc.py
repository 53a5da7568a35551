"""test_jsonrpc.py: POST /api/rpc (JSON-RPC 2.0) on real p2p-node processes, over http.client.

Two nodes on loopback (beta joins through alpha). Checks single calls and batches with mixed
answers and notifications, a method of the other node through alpha, error bodies with their HTTP
status (CONTRACT sections 4 and 6), bad JSON, wrong JSON types, the batch limit, tokens and roles,
and bytes as base64 through file.write / file.read.
"""

import base64
import http.client
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
UNAUTHENTICATED = -32001
PERMISSION_DENIED = -32002
NOT_FOUND = -32003
RESOURCE_EXHAUSTED = -32006


def post(node, body, token=None, raw=False, method="POST", path="/api/rpc"):
    """Sends body (an object to encode, or bytes when raw) and returns (status, headers, parsed
    body or None when empty)."""
    c = http.client.HTTPConnection("127.0.0.1", node.http_port, timeout=30)
    try:
        data = body if raw else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = "Bearer " + token
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        text = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        return r.status, hdrs, (json.loads(text) if text else None)
    finally:
        c.close()


def req(method, params=None, id=1, **extra):
    r = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        r["params"] = params
    if id is None:
        del r["id"]
    r.update(extra)
    return r


def check_error(status, body, want_status, want_code, param=None):
    assert status == want_status, "status %r, want %r: %r" % (status, want_status, body)
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), body
    e = body["error"]
    assert e["code"] == want_code, body
    assert isinstance(e["message"], str) and e["message"], body
    if param is not None:
        assert e.get("data", {}).get("param") == param, body


class T:
    def __init__(self, alpha, beta):
        self.a, self.b = alpha, beta
        self.admin = alpha.token("admin")
        self.viewer = alpha.token("viewer")

    def single(self):
        s, h, body = post(self.a, req("system.local.node.info", {}, id=7), self.viewer)
        assert s == 200, (s, body)
        assert h.get("content-type", "").startswith("application/json"), h
        assert body["jsonrpc"] == "2.0" and body["id"] == 7, body
        assert body["result"]["name"] == "alpha", body
        assert "error" not in body
        # rpc.ping needs no token; a string id comes back as is
        s, _, body = post(self.a, req("rpc.ping", id="x"))
        assert s == 200 and body["id"] == "x" and "result" in body, (s, body)
        # positional params take the schema's names
        s, _, body = post(self.a, req("system.local.file.stat", ["no-such-file"]), self.viewer)
        check_error(s, body, 404, NOT_FOUND)

    def batch_mixed(self):
        batch = [
            req("rpc.ping", id=1),
            req("rpc.ping", id=None),  # notification: no element
            req("system.local.nope.nope", id=2),
            5,
            req("system.local.file.stat", {"path": 1}, id=3),
            req("system.local.node.info", {}, id=4),
            req("system.local.node.info", {}, id=None),
        ]
        s, _, body = post(self.a, batch, self.viewer)
        assert s == 200, (s, body)
        assert isinstance(body, list) and len(body) == 5, body
        assert body[0]["id"] == 1 and "result" in body[0], body
        assert body[1]["id"] == 2 and body[1]["error"]["code"] == METHOD_NOT_FOUND, body
        assert body[2]["id"] is None and body[2]["error"]["code"] == INVALID_REQUEST, body
        assert body[3]["id"] == 3 and body[3]["error"]["code"] == INVALID_PARAMS, body
        assert body[3]["error"]["data"]["param"] == "path", body
        assert body[4]["id"] == 4 and body[4]["result"]["name"] == "alpha", body
        # notifications only: 204 without a body, single or batch
        s, _, body = post(self.a, [req("rpc.ping", id=None), req("rpc.ping", id=None)])
        assert s == 204 and body is None, (s, body)
        s, _, body = post(self.a, req("rpc.ping", id=None))
        assert s == 204 and body is None, (s, body)
        # 100 in one batch: all answered, wider than one session's calls in flight
        batch = [req("system.local.file.stat", {"path": "n%d" % i}, id=i) for i in range(100)]
        s, _, body = post(self.a, batch, self.viewer)
        assert s == 200 and len(body) == 100, (s, len(body or []))
        assert [e["id"] for e in body] == list(range(100)), body
        assert all(e["error"]["code"] == NOT_FOUND for e in body), body

    def remote(self):
        p2p.wait_until(lambda: p2p.lists_up(self.a, ["beta"]), 30, what="alpha sees beta up")
        s, _, body = post(self.a, req("system.beta.node.info", {}), self.viewer)
        assert s == 200 and body["result"]["name"] == "beta", (s, body)
        # a batch over both nodes, and bytes through base64 on the far node
        data = bytes(range(256)) * 3
        b64 = base64.b64encode(data).decode()
        s, _, body = post(self.a, [
            req("system.beta.file.write", {"path": "r.bin", "data": {"base64": b64}}, id=1),
            req("system.alpha.node.info", {}, id=2)], self.admin)
        assert s == 200 and "result" in body[0] and body[1]["result"]["name"] == "alpha", body
        s, _, body = post(self.a, req("system.beta.file.read", {"path": "r.bin"}), self.viewer)
        assert s == 200 and base64.b64decode(body["result"]["data"]) == data, (s, body)
        # the far node checks the role itself
        s, _, body = post(self.a, req("system.beta.file.write", {"path": "r.bin", "data": "x"}),
                          self.viewer)
        check_error(s, body, 403, PERMISSION_DENIED)
        # routed calls need a token
        s, h, body = post(self.a, req("system.beta.node.info", {}))
        check_error(s, body, 401, UNAUTHENTICATED)
        # a node nobody knows
        s, _, body = post(self.a, req("system.nobody.node.info", {"_timeout": 5}), self.viewer)
        check_error(s, body, 404, NOT_FOUND)

    def errors(self):
        s, _, body = post(self.a, req("system.local.node.nope"), self.viewer)
        check_error(s, body, 404, METHOD_NOT_FOUND)
        assert body["jsonrpc"] == "2.0" and body["id"] == 1, body
        s, _, body = post(self.a, req("system.local.file.stat", {"path": True}), self.viewer)
        check_error(s, body, 400, INVALID_PARAMS, "path")
        s, _, body = post(self.a, req("system.local.file.stat", {"path": "a", "extra": 1}),
                          self.viewer)
        check_error(s, body, 400, INVALID_PARAMS)
        s, _, body = post(self.a, req("system.local.node.info", {"_token": self.admin}))
        check_error(s, body, 400, INVALID_PARAMS, "_token")
        s, _, body = post(self.a, req("system.local.node.info", {"_timeout": "soon"}), self.viewer)
        check_error(s, body, 400, INVALID_PARAMS, "_timeout")
        # the route takes POST only
        s, h, body = post(self.a, b"", raw=True, method="GET")
        assert s == 405 and "POST" in h.get("allow", ""), (s, h)

    def bad_json(self):
        for raw in (b'{"jsonrpc":"2.0","id":1,"method":', b"[1,2", b"", b"\xff\xfe", b"{'a':1}",
                    b'{"id":9223372036854775808,"method":"rpc.ping","jsonrpc":"2.0"}'):
            s, _, body = post(self.a, raw, raw=True)
            check_error(s, body, 400, PARSE_ERROR)
            assert body["id"] is None, body
        # the node still answers
        s, _, body = post(self.a, req("rpc.ping"))
        assert s == 200, (s, body)

    def wrong_types(self):
        cases = [
            req("rpc.ping", 3),                                    # params a number
            {"jsonrpc": "2.0", "id": 1, "method": "rpc.ping", "params": None},
            {"jsonrpc": "2.0", "id": 1, "method": 5},              # method a number
            {"jsonrpc": "2.0", "id": {"a": 1}, "method": "rpc.ping"},  # id an object
            {"jsonrpc": "1.0", "id": 1, "method": "rpc.ping"},     # wrong version
            {"id": 1, "method": "rpc.ping"},                       # version absent
            {"jsonrpc": "2.0", "id": 1, "method": ""},             # empty method
        ]
        for c in cases:
            s, _, body = post(self.a, c)
            check_error(s, body, 400, INVALID_REQUEST)
        for raw in (b"[]", b"42", b'"rpc.ping"', b"null",
                    b'{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}'):
            s, _, body = post(self.a, raw, raw=True)
            check_error(s, body, 400, INVALID_REQUEST)
        # in a batch each bad element gets its own answer
        s, _, body = post(self.a, [{"jsonrpc": "2.0", "id": 1, "method": 5}, req("rpc.ping", id=2)])
        assert s == 200 and body[0]["error"]["code"] == INVALID_REQUEST and "result" in body[1], body

    def batch_limit(self):
        batch = [req("rpc.ping", id=i) for i in range(200)]
        s, _, body = post(self.a, batch)
        check_error(s, body, 413, RESOURCE_EXHAUSTED)
        assert body["id"] is None, body
        s, _, body = post(self.a, batch[:101])
        check_error(s, body, 413, RESOURCE_EXHAUSTED)

    def tokens(self):
        w = req("system.local.file.write", {"path": "t.txt", "data": "x"})
        s, h, body = post(self.a, w)
        check_error(s, body, 401, UNAUTHENTICATED)
        assert h.get("www-authenticate", "").startswith("Bearer"), h
        s, h, body = post(self.a, w, "not-a-token")
        check_error(s, body, 401, UNAUTHENTICATED)
        s, _, body = post(self.a, w, self.viewer)
        check_error(s, body, 403, PERMISSION_DENIED)
        s, _, body = post(self.a, w, self.a.token("operator"))
        check_error(s, body, 403, PERMISSION_DENIED)
        other = p2p.resign_token(self.admin, key=os.urandom(32))
        s, _, body = post(self.a, w, other)
        check_error(s, body, 401, UNAUTHENTICATED)
        s, _, body = post(self.a, w, self.admin)
        assert s == 200 and "result" in body, (s, body)
        # a batch is checked call by call: no overall 401
        s, _, body = post(self.a, [req("rpc.ping", id=1), w])
        assert s == 200 and "result" in body[0] and body[1]["error"]["code"] == UNAUTHENTICATED, body

    def base64_round_trip(self):
        data = os.urandom(70000) + b"\0\xff"
        s, _, body = post(self.a, req("system.local.file.write",
                                      {"path": "b.bin", "data": {"base64": base64.b64encode(data).decode()}}),
                          self.admin)
        assert s == 200 and "result" in body, (s, body)
        s, _, body = post(self.a, req("system.local.file.read", {"path": "b.bin"}), self.viewer)
        assert s == 200, (s, body)
        assert base64.b64decode(body["result"]["data"]) == data
        assert body["result"]["eof"] is True, body["result"]
        s, _, body = post(self.a, req("system.local.file.write",
                                      {"path": "c.bin", "data": {"base64": "!!"}}), self.admin)
        check_error(s, body, 400, INVALID_PARAMS, "data")
        # the same bytes as the socket sees them
        got = self.a.call("system.local.file.read", {"path": "b.bin"})
        assert got["data"] == data


def main():
    net = p2p.Network()
    root = p2p.tmpdir()
    alpha, beta = p2p.start_mesh(net, root, ["alpha", "beta"])
    t = T(alpha, beta)
    r = p2p.Runner()
    for fn in (t.single, t.batch_mixed, t.errors, t.bad_json, t.wrong_types, t.batch_limit,
               t.tokens, t.base64_round_trip, t.remote):
        r.run(fn)
    for n in (beta, alpha):
        r.run(n.stop_ok)
    r.finish()


if __name__ == "__main__":
    main()
