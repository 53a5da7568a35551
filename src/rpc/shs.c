/* shs.c: the Secret Handshake v1 (Scuttlebutt's SHS, byte-compatible with the npm
 * `secret-handshake` package) as a pure state machine: no I/O, no clock; randomness comes in as
 * the ephemeral seed. Notation as in the protocol guide: K network key, a/b ephemeral keys of
 * client/server, A/B their long-term Ed25519 keys; ab, aB, Ab the three Curve25519 secrets. */
#include "rpc/shs.h"

#include <string.h>

#include <sodium.h>

static const uint8_t zero_nonce[crypto_secretbox_NONCEBYTES];

static void put_hello(rpc_shs_t *h)
{
    memcpy(h->out + h->out_len, h->local_mac, 32);
    memcpy(h->out + h->out_len + 32, h->eph_pk, 32);
    h->out_len += RPC_SHS_HELLO_LEN;
}

static int fail(rpc_shs_t *h, int err)
{
    rpc_shs_wipe(h);
    h->step = -1;
    h->error = err;
    return err;
}

/* sha256 over up to four 32-byte-or-longer parts. */
static void hash_parts(uint8_t out[32], const uint8_t *p1, size_t n1, const uint8_t *p2, size_t n2,
                       const uint8_t *p3, size_t n3, const uint8_t *p4, size_t n4)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, p1, n1);
    if (p2) crypto_hash_sha256_update(&st, p2, n2);
    if (p3) crypto_hash_sha256_update(&st, p3, n3);
    if (p4) crypto_hash_sha256_update(&st, p4, n4);
    crypto_hash_sha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

int rpc_shs_init(rpc_shs_t *h, bool client, const uint8_t net_key[32], const uint8_t pk[32],
                 const uint8_t sk[64], const uint8_t server_pk[32], const uint8_t eph_seed[32])
{
    uint8_t ed_pk[32], ed_sk[64], curve[32];
    memset(h, 0, sizeof(*h));
    h->client = client;
    memcpy(h->net_key, net_key, 32);
    memcpy(h->pk, pk, 32);
    memcpy(h->sk, sk, 64);
    if (client) {
        if (!server_pk || crypto_sign_ed25519_pk_to_curve25519(curve, server_pk) != 0)
            return fail(h, RPC_SHS_E_KEY);
        memcpy(h->peer_pk, server_pk, 32);
    }
    crypto_sign_seed_keypair(ed_pk, ed_sk, eph_seed);
    if (crypto_sign_ed25519_pk_to_curve25519(h->eph_pk, ed_pk) != 0) return fail(h, RPC_SHS_E_KEY);
    crypto_sign_ed25519_sk_to_curve25519(h->eph_sk, ed_sk);
    sodium_memzero(ed_sk, sizeof(ed_sk));
    crypto_auth(h->local_mac, h->eph_pk, 32, h->net_key);
    if (client) put_hello(h);
    return 0;
}

size_t rpc_shs_want(const rpc_shs_t *h)
{
    size_t need = 0;
    if (h->step == 0)
        need = RPC_SHS_HELLO_LEN;
    else if (h->step == 1)
        need = h->client ? RPC_SHS_ACCEPT_LEN : RPC_SHS_AUTH_LEN;
    return need > h->in_len ? need - h->in_len : 0;
}

/* Message 1 (server) or 2 (client): HMAC_K(eph) || eph. */
static int on_hello(rpc_shs_t *h, const uint8_t *m)
{
    memcpy(h->remote_mac, m, 32);
    memcpy(h->remote_eph, m + 32, 32);
    if (crypto_auth_verify(h->remote_mac, h->remote_eph, 32, h->net_key) != 0)
        return fail(h, RPC_SHS_E_NETWORK);
    if (crypto_scalarmult(h->ab, h->eph_sk, h->remote_eph) != 0) return fail(h, RPC_SHS_E_KEY);
    crypto_hash_sha256(h->ab_hash, h->ab, 32);
    if (!h->client) {
        put_hello(h);
        return 0;
    }
    /* client: aB, then box(sig_A(K || B || sha256(ab)) || A) under sha256(K || ab || aB) */
    uint8_t curve_b[32], signed_msg[96], key2[32];
    if (crypto_sign_ed25519_pk_to_curve25519(curve_b, h->peer_pk) != 0 ||
        crypto_scalarmult(h->aB, h->eph_sk, curve_b) != 0)
        return fail(h, RPC_SHS_E_KEY);
    memcpy(signed_msg, h->net_key, 32);
    memcpy(signed_msg + 32, h->peer_pk, 32);
    memcpy(signed_msg + 64, h->ab_hash, 32);
    crypto_sign_detached(h->client_hello, NULL, signed_msg, sizeof(signed_msg), h->sk);
    memcpy(h->client_hello + 64, h->pk, 32);
    hash_parts(key2, h->net_key, 32, h->ab, 32, h->aB, 32, NULL, 0);
    crypto_secretbox_easy(h->out + h->out_len, h->client_hello, 96, zero_nonce, key2);
    h->out_len += RPC_SHS_AUTH_LEN;
    sodium_memzero(key2, sizeof(key2));
    return 0;
}

/* The session keys, from sha256(sha256(K || ab || aB || Ab)). */
static void finish(rpc_shs_t *h, const uint8_t key3[32])
{
    uint8_t secret[32];
    crypto_hash_sha256(secret, key3, 32);
    memcpy(h->res.peer_pk, h->peer_pk, 32);
    hash_parts(h->res.enc_key, secret, 32, h->peer_pk, 32, NULL, 0, NULL, 0);
    hash_parts(h->res.dec_key, secret, 32, h->pk, 32, NULL, 0, NULL, 0);
    memcpy(h->res.enc_nonce, h->remote_mac, 24);
    memcpy(h->res.dec_nonce, h->local_mac, 24);
    sodium_memzero(secret, sizeof(secret));
    rpc_shs_result_t keep = h->res;
    uint8_t out[sizeof(h->out)];
    size_t out_len = h->out_len;
    memcpy(out, h->out, out_len);
    rpc_shs_wipe(h);
    h->res = keep;
    memcpy(h->out, out, out_len);
    h->out_len = out_len;
    sodium_memzero(&keep, sizeof(keep));
    h->step = 2;
}

/* Message 3 at the server: open box(sig_A || A), check sig_A, answer box(sig_B). */
static int on_auth(rpc_shs_t *h, const uint8_t *m)
{
    uint8_t curve_sk[32], curve_a[32], key2[32], key3[32], signed_msg[160], sig[64];
    crypto_sign_ed25519_sk_to_curve25519(curve_sk, h->sk);
    int r = crypto_scalarmult(h->aB, curve_sk, h->remote_eph);
    sodium_memzero(curve_sk, sizeof(curve_sk));
    if (r != 0) return fail(h, RPC_SHS_E_KEY);
    hash_parts(key2, h->net_key, 32, h->ab, 32, h->aB, 32, NULL, 0);
    r = crypto_secretbox_open_easy(h->client_hello, m, RPC_SHS_AUTH_LEN, zero_nonce, key2);
    sodium_memzero(key2, sizeof(key2));
    if (r != 0) return fail(h, RPC_SHS_E_BOX);
    memcpy(signed_msg, h->net_key, 32);
    memcpy(signed_msg + 32, h->pk, 32);
    memcpy(signed_msg + 64, h->ab_hash, 32);
    if (crypto_sign_verify_detached(h->client_hello, signed_msg, 96, h->client_hello + 64) != 0)
        return fail(h, RPC_SHS_E_SIGNATURE);
    memcpy(h->peer_pk, h->client_hello + 64, 32);
    if (crypto_sign_ed25519_pk_to_curve25519(curve_a, h->peer_pk) != 0 ||
        crypto_scalarmult(h->Ab, h->eph_sk, curve_a) != 0)
        return fail(h, RPC_SHS_E_KEY);
    hash_parts(key3, h->net_key, 32, h->ab, 32, h->aB, 32, h->Ab, 32);
    memcpy(signed_msg, h->net_key, 32);
    memcpy(signed_msg + 32, h->client_hello, 96);
    memcpy(signed_msg + 128, h->ab_hash, 32);
    crypto_sign_detached(sig, NULL, signed_msg, sizeof(signed_msg), h->sk);
    crypto_secretbox_easy(h->out + h->out_len, sig, 64, zero_nonce, key3);
    h->out_len += RPC_SHS_ACCEPT_LEN;
    finish(h, key3);
    sodium_memzero(key3, sizeof(key3));
    return 1;
}

/* Message 4 at the client: open box(sig_B), check it. */
static int on_accept(rpc_shs_t *h, const uint8_t *m)
{
    uint8_t curve_sk[32], key3[32], sig[64], signed_msg[160];
    crypto_sign_ed25519_sk_to_curve25519(curve_sk, h->sk);
    int r = crypto_scalarmult(h->Ab, curve_sk, h->remote_eph);
    sodium_memzero(curve_sk, sizeof(curve_sk));
    if (r != 0) return fail(h, RPC_SHS_E_KEY);
    hash_parts(key3, h->net_key, 32, h->ab, 32, h->aB, 32, h->Ab, 32);
    r = crypto_secretbox_open_easy(sig, m, RPC_SHS_ACCEPT_LEN, zero_nonce, key3);
    if (r != 0) {
        sodium_memzero(key3, sizeof(key3));
        return fail(h, RPC_SHS_E_BOX);
    }
    memcpy(signed_msg, h->net_key, 32);
    memcpy(signed_msg + 32, h->client_hello, 96);
    memcpy(signed_msg + 128, h->ab_hash, 32);
    if (crypto_sign_verify_detached(sig, signed_msg, sizeof(signed_msg), h->peer_pk) != 0) {
        sodium_memzero(key3, sizeof(key3));
        return fail(h, RPC_SHS_E_SIGNATURE);
    }
    finish(h, key3);
    sodium_memzero(key3, sizeof(key3));
    return 1;
}

int rpc_shs_input(rpc_shs_t *h, const uint8_t *buf, size_t len, size_t *used)
{
    *used = 0;
    while (h->step == 0 || h->step == 1) {
        size_t want = rpc_shs_want(h);
        size_t n = want < len ? want : len;
        memcpy(h->in + h->in_len, buf, n);
        h->in_len += n;
        buf += n;
        len -= n;
        *used += n;
        if (n < want) return 0;
        h->in_len = 0;
        int r;
        if (h->step == 0) {
            r = on_hello(h, h->in);
            if (r == 0) h->step = 1;
        } else {
            r = h->client ? on_accept(h, h->in) : on_auth(h, h->in);
        }
        if (r < 0) return r;
    }
    return h->step == 2 ? 1 : (h->error ? h->error : RPC_SHS_E_STATE);
}

const uint8_t *rpc_shs_output(rpc_shs_t *h, size_t *len)
{
    *len = h->out_len;
    h->out_len = 0;
    return *len ? h->out : NULL;
}

int rpc_shs_result(const rpc_shs_t *h, rpc_shs_result_t *out)
{
    if (h->step != 2) return RPC_SHS_E_STATE;
    *out = h->res;
    return 0;
}

void rpc_shs_wipe(rpc_shs_t *h)
{
    bool client = h->client;
    int step = h->step, err = h->error;
    sodium_memzero(h, sizeof(*h));
    h->client = client;
    h->step = step;
    h->error = err;
}

const char *rpc_shs_strerror(int err)
{
    switch (err) {
    case RPC_SHS_E_NETWORK:
        return "handshake: wrong network key (hello MAC mismatch)";
    case RPC_SHS_E_BOX:
        return "handshake: box does not open (wrong server key or tampered)";
    case RPC_SHS_E_SIGNATURE:
        return "handshake: bad signature";
    case RPC_SHS_E_KEY:
        return "handshake: invalid key";
    case RPC_SHS_E_STATE:
        return "protocol state error";
    case -EMSGSIZE:
        return "box-stream: frame too large";
    case -ETIMEDOUT:
        return "timed out";
    default:
        return "error";
    }
}
