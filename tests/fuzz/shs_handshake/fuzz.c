/* fuzz.c: libFuzzer harness for the Secret Handshake state machine (src/rpc/shs.c) and the
 * box-stream decoder behind it. The keys and ephemeral seeds are fixed (those of the known-answer
 * vectors in tests/unit/rpc/shs.c: network key 32 x 0x11, client 0x22, server 0x33, client
 * ephemeral 0x44, server ephemeral 0x55), so the fuzzer can reach past the MACs. Byte 0 picks the
 * mode (bits 0-1) and the delivery chunk size (bits 2-4, 1 << n bytes):
 *   0  the rest is what a client sends to the server (a valid transcript completes the handshake;
 *      what follows goes to the box-stream decoder with the derived keys);
 *   1  a valid client hello first, then the rest;
 *   2  a valid hello and a valid auth message XOR-ed with the first 112 bytes of the rest;
 *   3  the client side: the server's valid hello, then the rest as its accept and box stream. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../fuzz.h"
#include "rpc/shs.h"

static struct {
    uint8_t net[32], cpk[32], csk[64], spk[32], ssk[64], ceph[32], seph[32];
    uint8_t hello[64], auth[112], server_hello[64];
    rpc_box_dec_t dec;
    bool ready;
} h;

static void init(void)
{
    uint8_t seed[32];
    if (sodium_init() < 0) abort();
    memset(h.net, 0x11, 32);
    memset(seed, 0x22, 32);
    crypto_sign_seed_keypair(h.cpk, h.csk, seed);
    memset(seed, 0x33, 32);
    crypto_sign_seed_keypair(h.spk, h.ssk, seed);
    memset(h.ceph, 0x44, 32);
    memset(h.seph, 0x55, 32);
    /* one valid transcript, for the modes that start from it */
    rpc_shs_t c, s;
    size_t len, used;
    if (rpc_shs_init(&c, true, h.net, h.cpk, h.csk, h.spk, h.ceph) ||
        rpc_shs_init(&s, false, h.net, h.spk, h.ssk, NULL, h.seph))
        abort();
    memcpy(h.hello, rpc_shs_output(&c, &len), 64);
    if (rpc_shs_input(&s, h.hello, 64, &used) != 0) abort();
    memcpy(h.server_hello, rpc_shs_output(&s, &len), 64);
    if (rpc_shs_input(&c, h.server_hello, 64, &used) != 0) abort();
    memcpy(h.auth, rpc_shs_output(&c, &len), 112);
    if (len != 112 || rpc_shs_input(&s, h.auth, 112, &used) != 1) abort();
    h.ready = true;
}

/* Feeds data in chunks; after completion the remainder goes to a box-stream decoder. */
static void feed(rpc_shs_t *st, const uint8_t *data, size_t size, size_t chunk)
{
    int r = 0;
    size_t off = 0;
    while (off < size && r == 0) {
        size_t n = size - off < chunk ? size - off : chunk, used, olen;
        r = rpc_shs_input(st, data + off, n, &used);
        if (used > n) abort();
        off += used;
        rpc_shs_output(st, &olen);
        if (r < 0) {
            if (rpc_shs_want(st) != 0 || rpc_shs_output(st, &olen)) abort();
            return;
        }
    }
    if (r != 1) return;
    rpc_shs_result_t res;
    if (rpc_shs_result(st, &res) != 0) abort();
    rpc_box_dec_init(&h.dec, res.dec_key, res.dec_nonce);
    while (off < size) {
        size_t n = size - off < chunk ? size - off : chunk, used, blen;
        const uint8_t *body;
        int d = rpc_box_decode(&h.dec, data + off, n, &used, &body, &blen);
        if (d < 0) return;
        if (used > n || (d == 1 && blen > RPC_BOX_MAX_BODY)) abort();
        off += used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!h.ready) init();
    if (size == 0) return 0;
    int mode = data[0] & 3;
    size_t chunk = (size_t)1 << ((data[0] >> 2) & 7);
    data++, size--;
    rpc_shs_t st;
    size_t used, len;
    if (mode == 3) {
        if (rpc_shs_init(&st, true, h.net, h.cpk, h.csk, h.spk, h.ceph) != 0) abort();
        rpc_shs_output(&st, &len);
        if (rpc_shs_input(&st, h.server_hello, 64, &used) != 0) abort();
        feed(&st, data, size, chunk);
        return 0;
    }
    if (rpc_shs_init(&st, false, h.net, h.spk, h.ssk, NULL, h.seph) != 0) abort();
    if (mode == 0) {
        feed(&st, data, size, chunk);
        return 0;
    }
    if (rpc_shs_input(&st, h.hello, 64, &used) != 0) abort();
    if (mode == 1) {
        feed(&st, data, size, chunk);
        return 0;
    }
    uint8_t auth[112];
    size_t n = size < 112 ? size : 112;
    memcpy(auth, h.auth, 112);
    for (size_t i = 0; i < n; i++)
        auth[i] ^= data[i];
    int r = rpc_shs_input(&st, auth, 112, &used);
    if (r == 1 && n > 0 && memcmp(auth, h.auth, 112) != 0) abort(); /* a forged auth passed */
    if (r == 1) {
        rpc_shs_result_t res;
        rpc_shs_result(&st, &res);
        rpc_box_dec_init(&h.dec, res.dec_key, res.dec_nonce);
        size_t off = n, blen;
        const uint8_t *body;
        while (off < size &&
               rpc_box_decode(&h.dec, data + off, size - off, &used, &body, &blen) > 0)
            off += used;
    }
    return 0;
}
