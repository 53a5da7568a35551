/* crypto.c: datagram sealing and opening. A boxed datagram is
 *   0xd1 | sender Ed25519 pk (32) | nonce (24) | XChaCha20-Poly1305(body), AD = the 57-byte header,
 * under a pairwise key K = BLAKE2b(key = network key, "pair" | X25519(our sk, their pk) | both
 * pks). Only the holder of the secret key behind the sender's pk (and of the network key) can
 * produce or read it, so a node cannot claim an id it does not own. A hello datagram (0xd2) is
 * sealed with a key derived from the network key only; it carries a PING to an identity we do not
 * know yet. The nonce is (epoch, counter, random): receivers keep a sliding window per peer to drop
 * replays. */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "base/base.h"
#include "dht/dht-internal.h"

int dht_crypto_init(dht_t *dht)
{
    static const char label[] = "p2p-admin dht hello v1";
    crypto_generichash(dht->hello_key, 32, (const uint8_t *)label, sizeof(label) - 1,
                       dht->cfg.network_key, DHT_NET_KEY_LEN);
    if (crypto_sign_ed25519_sk_to_curve25519(dht->x_sk, dht->cfg.secret_key) != 0) return -EINVAL;
    return 0;
}

int dht_crypto_pair_key(const dht_t *dht, const uint8_t pk[DHT_PK_LEN], uint8_t key[32])
{
    uint8_t xpk[32], shared[32];
    if (dht->cfg.plaintext) {
        /* simulator: no scalar multiplication, but still a per-pair key so the framing is the same
         */
        crypto_generichash_state st;
        const uint8_t *a = dht->cfg.public_key, *b = pk;
        if (memcmp(a, b, 32) > 0) {
            const uint8_t *t = a;
            a = b;
            b = t;
        }
        crypto_generichash_init(&st, dht->cfg.network_key, 32, 32);
        crypto_generichash_update(&st, a, 32);
        crypto_generichash_update(&st, b, 32);
        crypto_generichash_final(&st, key, 32);
        return 0;
    }
    if (crypto_sign_ed25519_pk_to_curve25519(xpk, pk) != 0) return -EINVAL;
    if (crypto_scalarmult(shared, dht->x_sk, xpk) != 0) return -EINVAL;
    const uint8_t *a = dht->cfg.public_key, *b = pk;
    if (memcmp(a, b, 32) > 0) {
        const uint8_t *t = a;
        a = b;
        b = t;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, dht->cfg.network_key, DHT_NET_KEY_LEN, 32);
    crypto_generichash_update(&st, (const uint8_t *)"p2p-admin dht pair v1", 21);
    crypto_generichash_update(&st, shared, 32);
    crypto_generichash_update(&st, a, 32);
    crypto_generichash_update(&st, b, 32);
    crypto_generichash_final(&st, key, 32);
    sodium_memzero(shared, sizeof(shared));
    return 0;
}

int dht_crypto_seal(dht_t *dht, uint8_t magic, const uint8_t key[32], const uint8_t *plain,
                    size_t plen, uint8_t *out, size_t cap)
{
    if (plen + DHT_OVERHEAD > cap || plen + DHT_OVERHEAD > DHT_MAX_DATAGRAM) return -EMSGSIZE;
    out[0] = magic;
    memcpy(out + 1, dht->cfg.public_key, DHT_PK_LEN);
    uint8_t *nonce = out + 1 + DHT_PK_LEN;
    p2p_put_be64(nonce, dht->cfg.epoch);
    p2p_put_be64(nonce + 8, ++dht->counter);
    dht_rng_bytes(&dht->rng, nonce + 16, 8);
    if (dht->cfg.plaintext) {
        /* simulator: same layout, a tag of zeros, no cryptography */
        memcpy(out + DHT_HDR_LEN, plain, plen);
        memset(out + DHT_HDR_LEN + plen, 0, DHT_MAC_LEN);
        return (int)(plen + DHT_OVERHEAD);
    }
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out + DHT_HDR_LEN, &clen, plain, plen, out,
                                               DHT_HDR_LEN, NULL, nonce, key);
    return (int)(DHT_HDR_LEN + clen);
}

int dht_crypto_open(const dht_t *dht, const uint8_t key[32], const uint8_t *in, size_t len,
                    uint8_t *plain, size_t cap)
{
    if (len < DHT_OVERHEAD || len - DHT_OVERHEAD > cap) return -EBADMSG;
    size_t plen = len - DHT_OVERHEAD;
    if (dht->cfg.plaintext) {
        static const uint8_t zero[DHT_MAC_LEN];
        if (memcmp(zero, in + DHT_HDR_LEN + plen, DHT_MAC_LEN) != 0) return -EBADMSG;
        memcpy(plain, in + DHT_HDR_LEN, plen);
        return (int)plen;
    }
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &mlen, NULL, in + DHT_HDR_LEN,
                                                   len - DHT_HDR_LEN, in, DHT_HDR_LEN,
                                                   in + 1 + DHT_PK_LEN, key) != 0)
        return -EBADMSG;
    return (int)mlen;
}

int dht_replay_check(dht_replay_t *w, const uint8_t nonce[DHT_NONCE_LEN])
{
    uint64_t epoch = p2p_get_be64(nonce), ctr = p2p_get_be64(nonce + 8);
    if (epoch < w->epoch) return -EALREADY;
    if (epoch > w->epoch) {
        w->epoch = epoch;
        w->max = ctr;
        w->bits = 1;
        return 0;
    }
    if (ctr > w->max) {
        uint64_t shift = ctr - w->max;
        w->bits = shift >= 64 ? 1 : (w->bits << shift) | 1;
        w->max = ctr;
        return 0;
    }
    uint64_t back = w->max - ctr;
    if (back >= DHT_REPLAY_WINDOW) return -EALREADY;
    uint64_t bit = (uint64_t)1 << back;
    if (w->bits & bit) return -EALREADY;
    w->bits |= bit;
    return 0;
}

void dht_token_make(const uint8_t secret[32], const dht_addr_t *addr, uint8_t out[DHT_TOKEN_LEN])
{
    uint8_t packed[19];
    int n = dht_addr_pack(addr, packed, sizeof(packed));
    crypto_generichash(out, DHT_TOKEN_LEN, packed, n > 0 ? (size_t)n : 0, secret, 32);
}
