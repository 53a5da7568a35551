/* shs.h: the peer channel's protocol cores, without I/O or clock: the Secret Handshake (SHS v1, as
 * in Scuttlebutt and the npm `secret-handshake` package; app key = the network key, identities =
 * the nodes' Ed25519 keys) and box-stream framing (npm `pull-box-stream`). Both are byte-in,
 * byte-out state machines; peer.c drives them over TCP. Internal to src/rpc (and its tests). */
#ifndef P2P_RPC_SHS_H
#define P2P_RPC_SHS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RPC_SHS_KEY_LEN    32  /* network key, Ed25519 public key, box-stream key */
#define RPC_SHS_SK_LEN     64  /* Ed25519 secret key (seed + public key) */
#define RPC_SHS_NONCE_LEN  24  /* box-stream nonce */
#define RPC_SHS_HELLO_LEN  64  /* messages 1 and 2: HMAC(K, eph_pk) || eph_pk */
#define RPC_SHS_AUTH_LEN   112 /* message 3: box(sig_A || A) */
#define RPC_SHS_ACCEPT_LEN 80  /* message 4: box(sig_B) */

/* Why a handshake failed (negative errnos; rpc_shs_strerror() names them). */
enum rpc_shs_error {
    RPC_SHS_E_NETWORK = -EKEYREJECTED, /* hello MAC wrong: the peer uses another network key */
    RPC_SHS_E_BOX = -EBADMSG,     /* auth/accept box does not open: wrong server key, tampered */
    RPC_SHS_E_SIGNATURE = -EBADE, /* a signature does not verify */
    RPC_SHS_E_KEY = -EINVAL,      /* a key is not a usable curve point */
    RPC_SHS_E_STATE = -EPROTO,    /* input after the end, or a call out of order */
};

/* The outcome of a completed handshake: the peer's long-term key and the box-stream keys and
 * initial nonces of both directions (enc = what we send, dec = what we receive). */
typedef struct rpc_shs_result {
    uint8_t peer_pk[RPC_SHS_KEY_LEN];
    uint8_t enc_key[RPC_SHS_KEY_LEN], enc_nonce[RPC_SHS_NONCE_LEN];
    uint8_t dec_key[RPC_SHS_KEY_LEN], dec_nonce[RPC_SHS_NONCE_LEN];
} rpc_shs_result_t;

/* One handshake, either role. Plain data (no pointers): copy, zero or free it freely. */
typedef struct rpc_shs {
    bool client;
    int step; /* expected input: 0 hello, 1 auth (server) / accept (client), 2 done, -1 failed */
    int error;
    uint8_t net_key[32], pk[32], sk[64], peer_pk[32];
    uint8_t eph_pk[32], eph_sk[32], local_mac[32], remote_mac[32], remote_eph[32];
    uint8_t ab[32], aB[32], Ab[32], ab_hash[32];
    uint8_t client_hello[96]; /* sig_A || A, signed again by the server's accept */
    uint8_t in[RPC_SHS_AUTH_LEN];
    size_t in_len;
    uint8_t out[RPC_SHS_HELLO_LEN + RPC_SHS_AUTH_LEN]; /* output not yet taken */
    size_t out_len;
    rpc_shs_result_t res; /* filled on completion */
} rpc_shs_t;

/* Starts a handshake. The client passes the server's expected public key (server_pk) and gets its
 * hello ready in the output at once; the server passes NULL. eph_seed: 32 random bytes the
 * ephemeral key is derived from (as the JS implementation does: an Ed25519 key from the seed,
 * converted to Curve25519), so tests can reproduce a transcript. Returns 0, or RPC_SHS_E_KEY when
 * server_pk is not a valid key. */
int rpc_shs_init(rpc_shs_t *h, bool client, const uint8_t net_key[32], const uint8_t pk[32],
                 const uint8_t sk[64], const uint8_t server_pk[32], const uint8_t eph_seed[32]);

/* Feeds received bytes. Takes only what the handshake needs (*used; the rest is the start of the
 * box stream). Returns 1 when the handshake completed, 0 when more input is needed, or a negative
 * rpc_shs_error (then the handshake is dead: close the connection). Check the output after every
 * call: the server's hello and accept, the client's auth appear there. */
int rpc_shs_input(rpc_shs_t *h, const uint8_t *buf, size_t len, size_t *used);

/* Bytes to send now (NULL when none); taking them empties the output. Valid until the next call. */
const uint8_t *rpc_shs_output(rpc_shs_t *h, size_t *len);

/* The number of input bytes the handshake still waits for (0 once done or failed). */
size_t rpc_shs_want(const rpc_shs_t *h);

/* After completion (rpc_shs_input returned 1): the keys. Returns 0 or RPC_SHS_E_STATE. */
int rpc_shs_result(const rpc_shs_t *h, rpc_shs_result_t *out);

/* Erases every secret in h. */
void rpc_shs_wipe(rpc_shs_t *h);

/* A short English reason for an rpc_shs_error or box-stream error code. */
const char *rpc_shs_strerror(int err);

/* --- box-stream (boxstream.c) ------------------------------------------------------------- */

#define RPC_BOX_MAX_BODY   4096 /* largest body of one box-stream frame (the spec's limit) */
#define RPC_BOX_HEADER_LEN 34   /* encrypted header: MAC(16) + length(2) + body MAC(16) */

#ifndef RPC_BULK_MAX_BODY
#define RPC_BULK_MAX_BODY 16384 /* largest body of one bulk-mode (AES-256-GCM) frame */
#endif
#define RPC_BULK_HEADER_LEN 4  /* bulk frame: length (4 bytes big-endian, the AAD) */
#define RPC_BULK_TAG_LEN    16 /* bulk frame: GCM tag after the body */
#define RPC_BOX_BYE_MAX     RPC_BOX_HEADER_LEN /* largest goodbye of either mode */

/* Bulk mode: a negotiated extension of box-stream for one direction of a channel (see
 * docs/peer-channel.md). Both sides are p2p-nodes: the server offers it after the handshake with
 * the notification [2, "peer.bulk", ["aes256gcm"]] (standard msgpack-RPC clients ignore it); a
 * client that can decode it sends the switch frame, a box-stream header announcing length 0xFFFF
 * with mode byte 1, and from then on its frames are len(4) | AES-256-GCM(body) | tag(16) with the
 * length as AAD, a key derived from the box-stream key (BLAKE2b keyed, "p2p-admin peer bulk v1")
 * and a 96-bit counter nonce. The server switches its own direction on receiving the client's
 * switch frame. The goodbye in bulk mode is a frame of length 0. */

/* The sending half: key and the next nonce; gcm is set once switched to bulk mode. */
typedef struct rpc_box_enc {
    uint8_t key[32];
    uint8_t nonce[24];
    void *gcm;        /* EVP_CIPHER_CTX of bulk mode, NULL in box-stream mode */
    uint64_t counter; /* bulk mode: the next frame's nonce */
} rpc_box_enc_t;

/* The receiving half: key, next nonce and at most one partial frame (bounded). */
typedef struct rpc_box_dec {
    uint8_t key[32];
    uint8_t nonce[24];
    uint8_t hdr[RPC_BOX_HEADER_LEN];
    size_t hdr_len;
    size_t body_len; /* from the opened header */
    uint8_t body_mac[16];
    uint8_t body[RPC_BOX_MAX_BODY];
    size_t body_got;
    int state;          /* 0 header, 1 body, 2 ended (goodbye), -1 failed; bulk: 3 tag */
    void *gcm;          /* bulk mode's EVP_CIPHER_CTX, NULL in box-stream mode */
    uint8_t *bulk_body; /* bulk mode: RPC_BULK_MAX_BODY bytes of plaintext */
    uint64_t counter;   /* bulk mode: the next frame's nonce */
    bool allow_switch;  /* a switch frame is accepted (rpc_box_dec_allow_switch) */
} rpc_box_dec_t;

/* Initialise a half in box-stream mode. A half must later be released with rpc_box_*_free. */
void rpc_box_enc_init(rpc_box_enc_t *e, const uint8_t key[32], const uint8_t nonce[24]);
void rpc_box_dec_init(rpc_box_dec_t *d, const uint8_t key[32], const uint8_t nonce[24]);

/* Release what bulk mode allocated and wipe the keys (the struct itself is the caller's). */
void rpc_box_enc_free(rpc_box_enc_t *e);
void rpc_box_dec_free(rpc_box_dec_t *d);

/* True when this build and CPU can run bulk mode (AES-256-GCM through OpenSSL). */
bool rpc_box_bulk_available(void);

/* Bytes rpc_box_encode() writes for len plaintext bytes in e's current mode. */
size_t rpc_box_encoded_len(const rpc_box_enc_t *e, size_t len);

/* Encrypts len bytes (len > 0) into out (rpc_box_encoded_len(e, len) bytes), split into frames of
 * at most RPC_BOX_MAX_BODY (RPC_BULK_MAX_BODY in bulk mode). Returns the bytes written. */
size_t rpc_box_encode(rpc_box_enc_t *e, const uint8_t *in, size_t len, uint8_t *out);

/* Writes the switch frame into out[RPC_BOX_HEADER_LEN] and puts e in bulk mode. Returns
 * RPC_BOX_HEADER_LEN, -EALREADY when e is in bulk mode, -ENOTSUP without AES support or -ENOMEM. */
int rpc_box_enc_switch(rpc_box_enc_t *e, uint8_t out[RPC_BOX_HEADER_LEN]);

/* Writes the goodbye frame of e's mode into out[RPC_BOX_BYE_MAX]; returns its length. */
size_t rpc_box_goodbye(rpc_box_enc_t *e, uint8_t out[RPC_BOX_BYE_MAX]);

/* Feeds received bytes; stops after one whole body, the goodbye or a switch (*used = bytes taken).
 * Returns 1 with *body and *body_len (valid until the next call) for a body, 2 for the goodbye
 * (the stream ended cleanly; further input is an error), 3 when the peer's switch frame put d in
 * bulk mode (only when allow_switch; the caller decides whether the peer was entitled to it), 0
 * when every byte was taken and more are needed, -EBADMSG for a bad MAC or tag, -EMSGSIZE for a
 * header announcing a body past the mode's limit, -ENOMEM, or -EPROTO for input after the end,
 * after an error, or a switch frame that is not allowed. */
int rpc_box_decode(rpc_box_dec_t *d, const uint8_t *in, size_t len, size_t *used,
                   const uint8_t **body, size_t *body_len);

/* Whether d may accept a switch frame (default false: a plain box-stream peer never sends one). */
void rpc_box_dec_allow_switch(rpc_box_dec_t *d, bool allow);

/* Increments a 24-byte big-endian nonce (the box-stream rule). */
void rpc_box_nonce_inc(uint8_t nonce[24]);

#endif
