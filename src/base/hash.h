/* hash.h: streaming file digests, SHA-256 (OpenSSL's libcrypto: its SHA-NI/AVX2 code runs several
 * times faster than libsodium's portable one, which matters for gigabyte transfers) and BLAKE2b-256
 * (libsodium). Both give 32 bytes. */
#ifndef P2P_BASE_HASH_H
#define P2P_BASE_HASH_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define P2P_HASH_LEN 32 /* digest bytes of every algorithm here */

typedef enum p2p_hash_algo {
    P2P_HASH_SHA256 = 0,
    P2P_HASH_BLAKE2B,
} p2p_hash_algo_t;

typedef struct p2p_hash {
    p2p_hash_algo_t algo;
    void *evp; /* EVP_MD_CTX for SHA-256 */
    crypto_generichash_state b2;
} p2p_hash_t;

/* "sha256" / "blake2b" (len bytes, not NUL-terminated): the algorithm, or -EINVAL. */
int p2p_hash_algo_parse(const char *s, size_t len);

/* The algorithm's name ("sha256", "blake2b"). */
const char *p2p_hash_algo_name(p2p_hash_algo_t algo);

/* Starts a digest. Returns 0, -EINVAL (unknown algo) or -ENOMEM; on error h needs no free. */
int p2p_hash_init(p2p_hash_t *h, p2p_hash_algo_t algo);

/* Adds n bytes. */
void p2p_hash_update(p2p_hash_t *h, const void *p, size_t n);

/* Writes the digest to out and releases h (it may be initialised again). */
void p2p_hash_final(p2p_hash_t *h, uint8_t out[P2P_HASH_LEN]);

/* Makes dst an independent copy of the running digest src (to finish one and go on with the
 * other). Returns 0 or -ENOMEM (dst then needs no free). */
int p2p_hash_copy(p2p_hash_t *dst, const p2p_hash_t *src);

/* Releases a digest that will not be finished. Safe on a released or zeroed h. */
void p2p_hash_free(p2p_hash_t *h);

#endif
