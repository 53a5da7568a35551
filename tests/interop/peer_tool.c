/* peer_tool.c: the C side of the npm interop test (tests/interop/interop.js). Two modes:
 *   peer_tool serve NETKEY_HEX SEED_HEX   serves the peer channel on 127.0.0.1 (a free port) with
 *                                         the built-in methods; prints "READY PORT PK_HEX" and runs
 *                                         until SIGTERM or SIGINT.
 *   peer_tool call NETKEY_HEX SERVER_PK_HEX PORT METHOD
 *                                         calls METHOD with params [] through rpc_peer_call() on
 *                                         127.0.0.1:PORT; prints "STATUS n" and the result (a
 *                                         string) or the error code, then exits 0 when a string
 *                                         result came back. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "rpc/peer.h"

static const uint8_t secret[32] = "interop-auth-secret-32-bytes-...";

typedef struct tool {
    uv_loop_t loop;
    rpc_registry_t *reg;
    rpc_peer_t *peer;
    uv_signal_t sigterm, sigint;
    int exit_code;
} tool_t;

static int hex32(uint8_t *out, const char *h)
{
    return p2p_hex_decode(out, 32, h, strlen(h));
}

static void stopped_cb(void *arg) {}

static void on_signal(uv_signal_t *s, int signum)
{
    tool_t *t = s->data;
    rpc_peer_stop(t->peer, stopped_cb, t);
    t->peer = NULL;
    uv_close((uv_handle_t *)&t->sigterm, NULL);
    uv_close((uv_handle_t *)&t->sigint, NULL);
}

static void reply_cb(void *arg, int status, const msgpack_object *error,
                     const msgpack_object *result)
{
    tool_t *t = arg;
    printf("STATUS %d\n", status);
    if (status == 0 && result->type == MSGPACK_OBJECT_STR) {
        printf("RESULT %.*s\n", (int)result->via.str.size, result->via.str.ptr);
        t->exit_code = 0;
    } else if (status == 0) {
        printf("ERROR ");
        msgpack_object_print(stdout, *error);
        printf("\n");
    } else {
        printf("FAILED %s\n", uv_strerror(status));
    }
    fflush(stdout);
    rpc_peer_stop(t->peer, stopped_cb, t);
    t->peer = NULL;
}

int main(int argc, char **argv)
{
    tool_t t = {.exit_code = 1};
    uint8_t net[32], seed[32], pk[32], sk[64], server_pk[32];
    rpc_auth_config_t auth = {
        .secret = secret, .secret_len = sizeof(secret), .audience = "p2p-admin"};
    if (sodium_init() < 0) return 1;
    bool serve = argc == 4 && strcmp(argv[1], "serve") == 0;
    bool call = argc == 6 && strcmp(argv[1], "call") == 0;
    if ((!serve && !call) || hex32(net, argv[2]) < 0 || (serve && hex32(seed, argv[3]) < 0) ||
        (call && hex32(server_pk, argv[3]) < 0)) {
        fprintf(stderr, "usage: peer_tool serve NETKEY_HEX SEED_HEX | call NETKEY_HEX PK_HEX "
                        "PORT METHOD\n");
        return 2;
    }
    if (call) randombytes_buf(seed, sizeof(seed));
    crypto_sign_seed_keypair(pk, sk, seed);
    uv_loop_init(&t.loop);
    t.reg = rpc_registry_new();
    rpc_peer_config_t cfg = {pk, sk, net, t.reg, &auth, false};
    int r = rpc_peer_start(&t.loop, &cfg, "127.0.0.1", 0, &t.peer);
    if (r < 0) {
        fprintf(stderr, "peer_tool: start: %s\n", uv_strerror(r));
        return 1;
    }
    if (serve) {
        char hex[65];
        p2p_hex_encode(hex, pk, 32);
        printf("READY %d %s\n", rpc_peer_port(t.peer), hex);
        fflush(stdout);
        uv_signal_init(&t.loop, &t.sigterm);
        uv_signal_init(&t.loop, &t.sigint);
        t.sigterm.data = t.sigint.data = &t;
        uv_signal_start(&t.sigterm, on_signal, SIGTERM);
        uv_signal_start(&t.sigint, on_signal, SIGINT);
        t.exit_code = 0;
    } else {
        struct sockaddr_in a;
        uv_ip4_addr("127.0.0.1", atoi(argv[4]), &a);
        r = rpc_peer_call(t.peer, server_pk, (struct sockaddr *)&a, argv[5], NULL, 5000, reply_cb,
                          &t);
        if (r < 0) {
            fprintf(stderr, "peer_tool: call: %s\n", uv_strerror(r));
            return 1;
        }
    }
    uv_run(&t.loop, UV_RUN_DEFAULT);
    rpc_registry_free(t.reg);
    if (uv_loop_close(&t.loop) != 0) {
        fprintf(stderr, "peer_tool: loop did not close clean\n");
        return 1;
    }
    return t.exit_code;
}
