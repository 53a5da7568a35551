/* hash.c: streaming SHA-256 (libcrypto EVP) and BLAKE2b-256 (libsodium) digests (see hash.h). */
#include "base/hash.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

int p2p_hash_algo_parse(const char *s, size_t len)
{
    if (len == 6 && memcmp(s, "sha256", 6) == 0) return P2P_HASH_SHA256;
    if (len == 7 && memcmp(s, "blake2b", 7) == 0) return P2P_HASH_BLAKE2B;
    return -EINVAL;
}

const char *p2p_hash_algo_name(p2p_hash_algo_t algo)
{
    return algo == P2P_HASH_BLAKE2B ? "blake2b" : "sha256";
}

int p2p_hash_init(p2p_hash_t *h, p2p_hash_algo_t algo)
{
    memset(h, 0, sizeof(*h));
    h->algo = algo;
    if (algo == P2P_HASH_BLAKE2B)
        return crypto_generichash_init(&h->b2, NULL, 0, P2P_HASH_LEN) == 0 ? 0 : -EINVAL;
    if (algo != P2P_HASH_SHA256) return -EINVAL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) return -ENOMEM;
    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return -ENOMEM;
    }
    h->evp = ctx;
    return 0;
}

void p2p_hash_update(p2p_hash_t *h, const void *p, size_t n)
{
    if (h->algo == P2P_HASH_BLAKE2B)
        crypto_generichash_update(&h->b2, p, n);
    else if (h->evp)
        EVP_DigestUpdate(h->evp, p, n);
}

void p2p_hash_final(p2p_hash_t *h, uint8_t out[P2P_HASH_LEN])
{
    if (h->algo == P2P_HASH_BLAKE2B) {
        crypto_generichash_final(&h->b2, out, P2P_HASH_LEN);
    } else if (h->evp) {
        unsigned int n = 0;
        EVP_DigestFinal_ex(h->evp, out, &n);
    }
    p2p_hash_free(h);
}

int p2p_hash_copy(p2p_hash_t *dst, const p2p_hash_t *src)
{
    *dst = *src;
    dst->evp = NULL;
    if (!src->evp) return 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx) return -ENOMEM;
    if (EVP_MD_CTX_copy_ex(ctx, src->evp) != 1) {
        EVP_MD_CTX_free(ctx);
        return -ENOMEM;
    }
    dst->evp = ctx;
    return 0;
}

void p2p_hash_free(p2p_hash_t *h)
{
    if (!h) return;
    if (h->evp) EVP_MD_CTX_free(h->evp);
    h->evp = NULL;
    sodium_memzero(&h->b2, sizeof(h->b2));
}
