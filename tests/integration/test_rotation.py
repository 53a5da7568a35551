#!/usr/bin/python3
"""test_rotation.py: auth-secret rotation. A node given AUTH_SECRET (new) and AUTH_SECRET_PREVIOUS
(old) accepts tokens signed with either, locally and when a call is forwarded to it, and refuses a
token signed with any other secret.
Usage: test_rotation.py BUILD_DIR
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import p2p  # noqa: E402


class RotatingNetwork(p2p.Network):
    def __init__(self, network_key, new, old):
        super().__init__(network_key=network_key, auth_secret=new)
        self.previous = old

    def env(self):
        e = super().env()
        e["AUTH_SECRET_PREVIOUS"] = self.previous
        return e


def token_with(secret, net, role, data_dir):
    other = p2p.Network(network_key=net.network_key, auth_secret=secret)
    return p2p.mint_token(other, role, data_dir)


def expect_unauthenticated(fn):
    try:
        fn()
    except p2p.RpcError as e:
        assert e.code == p2p.UNAUTHENTICATED, e.err
        return
    raise AssertionError("a token signed with an unknown secret was accepted")


def test_rotation():
    root = p2p.tmpdir("p2p-rot-")
    old, new, stray = (p2p.random_key_b64(32) for _ in range(3))
    base = p2p.Network()
    net = RotatingNetwork(base.network_key, new, old)
    a = p2p.Node(net, "ra", root).start().wait_ready()
    b = p2p.Node(net, "rb", root, bootstrap=a.dht_addr).start().wait_ready()
    p2p.wait_until(lambda: p2p.lists_up(a, ["rb"]), 15, what="ra lists rb")
    for secret in (new, old):
        tok = token_with(secret, net, "admin", a.data_dir)
        c = p2p.Client(a.sock_path)
        try:
            c.auth(tok)
            assert c.call("system.local.node.info")["name"] == "ra"
            assert c.call("system.rb.node.info")["name"] == "rb"  # checked again by rb
        finally:
            c.close()
    c = p2p.Client(a.sock_path)
    try:
        expect_unauthenticated(lambda: c.auth(token_with(stray, net, "admin", a.data_dir)))
        # a token only the caller's node would accept is refused by the far node
        c.auth(token_with(new, net, "admin", a.data_dir))
        expect_unauthenticated(lambda: c.call("system.rb.node.info",
                                              {"_token": token_with(stray, net, "admin", a.data_dir)}))
    finally:
        c.close()
    for n in (a, b):
        n.stop_ok()


def main():
    r = p2p.Runner()
    r.run(test_rotation)
    r.finish()


if __name__ == "__main__":
    main()
