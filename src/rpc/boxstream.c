/* boxstream.c: box-stream framing (Scuttlebutt's box stream, byte-compatible with the npm
 * `pull-box-stream` package) as a pure encoder and a bounded streaming decoder. Each frame is a
 * 34-byte secretbox of the header (body length, 2 bytes big-endian, then the body's 16-byte MAC)
 * under nonce n, followed by the body encrypted under nonce n+1; the next frame starts at n+2. The
 * stream ends with the goodbye: a boxed header of 18 zero bytes.
 *
 * Bulk mode (shs.h) replaces the frames of one direction, after a switch frame, by AES-256-GCM
 * frames (OpenSSL's EVP, which uses AES-NI and carry-less multiply: about 6x the throughput of
 * XSalsa20-Poly1305 here). Its decoder decrypts as bytes arrive, so a body is never copied twice,
 * and releases it only after the tag is verified. */
#include "rpc/shs.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <sodium.h>

#define SWITCH_LEN  0xFFFF /* the length a switch frame's header announces */
#define SWITCH_MODE 1      /* its mode byte: AES-256-GCM */
static const char bulk_label[] = "p2p-admin peer bulk v1 aes256gcm";

void rpc_box_nonce_inc(uint8_t nonce[24])
{
    for (int i = 23; i >= 0; i--)
        if (++nonce[i] != 0) break;
}

void rpc_box_enc_init(rpc_box_enc_t *e, const uint8_t key[32], const uint8_t nonce[24])
{
    memset(e, 0, sizeof(*e));
    memcpy(e->key, key, 32);
    memcpy(e->nonce, nonce, 24);
}

void rpc_box_dec_init(rpc_box_dec_t *d, const uint8_t key[32], const uint8_t nonce[24])
{
    memset(d, 0, sizeof(*d));
    memcpy(d->key, key, 32);
    memcpy(d->nonce, nonce, 24);
}

void rpc_box_enc_free(rpc_box_enc_t *e)
{
    EVP_CIPHER_CTX_free(e->gcm);
    sodium_memzero(e, sizeof(*e));
}

void rpc_box_dec_free(rpc_box_dec_t *d)
{
    EVP_CIPHER_CTX_free(d->gcm);
    free(d->bulk_body);
    sodium_memzero(d, sizeof(*d));
}

void rpc_box_dec_allow_switch(rpc_box_dec_t *d, bool allow)
{
    d->allow_switch = allow;
}

bool rpc_box_bulk_available(void)
{
    return EVP_aes_256_gcm() != NULL;
}

/* A cipher context keyed for bulk mode from a box-stream key (encrypting or decrypting). */
static EVP_CIPHER_CTX *bulk_ctx(const uint8_t box_key[32], int enc)
{
    uint8_t key[32];
    crypto_generichash(key, sizeof(key), (const uint8_t *)bulk_label, sizeof(bulk_label) - 1,
                       box_key, 32);
    EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
    if (x && EVP_CipherInit_ex(x, EVP_aes_256_gcm(), NULL, key, NULL, enc) != 1) {
        EVP_CIPHER_CTX_free(x);
        x = NULL;
    }
    sodium_memzero(key, sizeof(key));
    return x;
}

/* Starts the frame under nonce counter: 4 zero bytes, then the counter big-endian. */
static bool bulk_begin(EVP_CIPHER_CTX *x, uint64_t counter, const uint8_t aad[4], int enc)
{
    uint8_t iv[12] = {0};
    int n;
    for (int i = 0; i < 8; i++)
        iv[4 + i] = (uint8_t)(counter >> (56 - 8 * i));
    return EVP_CipherInit_ex(x, NULL, NULL, NULL, iv, enc) == 1 &&
           EVP_CipherUpdate(x, NULL, &n, aad, RPC_BULK_HEADER_LEN) == 1;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* One bulk frame of 0..RPC_BULK_MAX_BODY bytes (0 is the goodbye); returns its length. */
static size_t bulk_frame(rpc_box_enc_t *e, const uint8_t *in, size_t len, uint8_t *out)
{
    int n = 0, f = 0;
    put_be32(out, (uint32_t)len);
    /* The context was set up in rpc_box_enc_switch; EVP fails only on a programming error. */
    bool ok =
        bulk_begin(e->gcm, e->counter++, out, 1) &&
        (len == 0 || EVP_EncryptUpdate(e->gcm, out + RPC_BULK_HEADER_LEN, &n, in, (int)len) == 1) &&
        EVP_EncryptFinal_ex(e->gcm, out + RPC_BULK_HEADER_LEN + n, &f) == 1 &&
        EVP_CIPHER_CTX_ctrl(e->gcm, EVP_CTRL_GCM_GET_TAG, RPC_BULK_TAG_LEN,
                            out + RPC_BULK_HEADER_LEN + len) == 1;
    if (!ok) abort();
    return RPC_BULK_HEADER_LEN + len + RPC_BULK_TAG_LEN;
}

size_t rpc_box_encoded_len(const rpc_box_enc_t *e, size_t len)
{
    size_t max = e->gcm ? RPC_BULK_MAX_BODY : RPC_BOX_MAX_BODY;
    size_t over = e->gcm ? RPC_BULK_HEADER_LEN + RPC_BULK_TAG_LEN : RPC_BOX_HEADER_LEN;
    size_t frames = (len + max - 1) / max;
    return len + frames * over;
}

/* One frame of 1..RPC_BOX_MAX_BODY bytes. */
static void encode_frame(rpc_box_enc_t *e, const uint8_t *in, size_t len, uint8_t *out)
{
    uint8_t head[18], body_nonce[24];
    memcpy(body_nonce, e->nonce, 24);
    rpc_box_nonce_inc(body_nonce);
    head[0] = (uint8_t)(len >> 8);
    head[1] = (uint8_t)len;
    crypto_secretbox_detached(out + RPC_BOX_HEADER_LEN, head + 2, in, len, body_nonce, e->key);
    crypto_secretbox_easy(out, head, sizeof(head), e->nonce, e->key);
    rpc_box_nonce_inc(e->nonce);
    rpc_box_nonce_inc(e->nonce);
}

size_t rpc_box_encode(rpc_box_enc_t *e, const uint8_t *in, size_t len, uint8_t *out)
{
    size_t w = 0;
    while (e->gcm && len > 0) {
        size_t n = len < RPC_BULK_MAX_BODY ? len : RPC_BULK_MAX_BODY;
        w += bulk_frame(e, in, n, out + w);
        in += n;
        len -= n;
    }
    while (len > 0) {
        size_t n = len < RPC_BOX_MAX_BODY ? len : RPC_BOX_MAX_BODY;
        encode_frame(e, in, n, out + w);
        w += RPC_BOX_HEADER_LEN + n;
        in += n;
        len -= n;
    }
    return w;
}

int rpc_box_enc_switch(rpc_box_enc_t *e, uint8_t out[RPC_BOX_HEADER_LEN])
{
    if (e->gcm) return -EALREADY;
    if (!rpc_box_bulk_available()) return -ENOTSUP;
    e->gcm = bulk_ctx(e->key, 1);
    if (!e->gcm) return -ENOMEM;
    uint8_t head[18] = {SWITCH_LEN >> 8, SWITCH_LEN & 0xFF, SWITCH_MODE};
    crypto_secretbox_easy(out, head, sizeof(head), e->nonce, e->key);
    rpc_box_nonce_inc(e->nonce);
    e->counter = 0;
    return RPC_BOX_HEADER_LEN;
}

size_t rpc_box_goodbye(rpc_box_enc_t *e, uint8_t out[RPC_BOX_BYE_MAX])
{
    static const uint8_t zeros[18];
    if (e->gcm) return bulk_frame(e, NULL, 0, out);
    crypto_secretbox_easy(out, zeros, sizeof(zeros), e->nonce, e->key);
    rpc_box_nonce_inc(e->nonce);
    return RPC_BOX_HEADER_LEN;
}

static int dec_fail(rpc_box_dec_t *d, int err)
{
    d->state = -1;
    return err;
}

/* The header is whole: open it and learn the body's length and MAC. */
static int open_header(rpc_box_dec_t *d)
{
    uint8_t head[18];
    static const uint8_t zeros[18];
    if (crypto_secretbox_open_easy(head, d->hdr, RPC_BOX_HEADER_LEN, d->nonce, d->key) != 0)
        return dec_fail(d, -EBADMSG);
    d->hdr_len = 0;
    rpc_box_nonce_inc(d->nonce);
    if (sodium_memcmp(head, zeros, sizeof(head)) == 0) {
        d->state = 2;
        return 2;
    }
    d->body_len = (size_t)head[0] << 8 | head[1];
    if (d->body_len == SWITCH_LEN && head[2] == SWITCH_MODE) {
        static const uint8_t rest[15];
        if (!d->allow_switch || sodium_memcmp(head + 3, rest, sizeof(rest)) != 0)
            return dec_fail(d, -EPROTO);
        d->bulk_body = malloc(RPC_BULK_MAX_BODY);
        d->gcm = d->bulk_body ? bulk_ctx(d->key, 0) : NULL;
        if (!d->gcm) return dec_fail(d, -ENOMEM);
        d->counter = 0;
        d->state = 0;
        return 3;
    }
    if (d->body_len > RPC_BOX_MAX_BODY) return dec_fail(d, -EMSGSIZE);
    memcpy(d->body_mac, head + 2, 16);
    d->body_got = 0;
    d->state = 1;
    return 0;
}

/* Bulk mode's decoder: header (state 0), body decrypted as it arrives (1), tag (3). */
static int bulk_decode(rpc_box_dec_t *d, const uint8_t *in, size_t len, size_t *used,
                       const uint8_t **body, size_t *body_len)
{
    int n;
    if (d->state == 0) {
        size_t k = RPC_BULK_HEADER_LEN - d->hdr_len < len ? RPC_BULK_HEADER_LEN - d->hdr_len : len;
        memcpy(d->hdr + d->hdr_len, in, k);
        d->hdr_len += k;
        in += k;
        len -= k;
        *used += k;
        if (d->hdr_len < RPC_BULK_HEADER_LEN) return 0;
        d->body_len =
            (size_t)d->hdr[0] << 24 | (size_t)d->hdr[1] << 16 | (size_t)d->hdr[2] << 8 | d->hdr[3];
        if (d->body_len > RPC_BULK_MAX_BODY) return dec_fail(d, -EMSGSIZE);
        if (!bulk_begin(d->gcm, d->counter++, d->hdr, 0)) return dec_fail(d, -EBADMSG);
        d->hdr_len = 0;
        d->body_got = 0;
        d->state = 1;
    }
    if (d->state == 1) {
        size_t k = d->body_len - d->body_got < len ? d->body_len - d->body_got : len;
        if (k > 0 && EVP_DecryptUpdate(d->gcm, d->bulk_body + d->body_got, &n, in, (int)k) != 1)
            return dec_fail(d, -EBADMSG);
        d->body_got += k;
        in += k;
        len -= k;
        *used += k;
        if (d->body_got < d->body_len) return 0;
        d->state = 3;
    }
    size_t k = RPC_BULK_TAG_LEN - d->hdr_len < len ? RPC_BULK_TAG_LEN - d->hdr_len : len;
    memcpy(d->hdr + d->hdr_len, in, k);
    d->hdr_len += k;
    *used += k;
    if (d->hdr_len < RPC_BULK_TAG_LEN) return 0;
    d->hdr_len = 0;
    if (EVP_CIPHER_CTX_ctrl(d->gcm, EVP_CTRL_GCM_SET_TAG, RPC_BULK_TAG_LEN, d->hdr) != 1 ||
        EVP_DecryptFinal_ex(d->gcm, d->bulk_body + d->body_len, &n) != 1)
        return dec_fail(d, -EBADMSG);
    if (d->body_len == 0) {
        d->state = 2;
        return 2;
    }
    d->state = 0;
    *body = d->bulk_body;
    *body_len = d->body_len;
    return 1;
}

int rpc_box_decode(rpc_box_dec_t *d, const uint8_t *in, size_t len, size_t *used,
                   const uint8_t **body, size_t *body_len)
{
    *used = 0;
    *body = NULL;
    *body_len = 0;
    if (d->gcm && d->state >= 0 && d->state != 2)
        return bulk_decode(d, in, len, used, body, body_len);
    {
        if (d->state < 0) return -EPROTO;
        if (d->state == 2) return len > 0 ? dec_fail(d, -EPROTO) : 0;
        if (d->state == 0) {
            size_t n =
                (RPC_BOX_HEADER_LEN - d->hdr_len < len ? RPC_BOX_HEADER_LEN - d->hdr_len : len);
            memcpy(d->hdr + d->hdr_len, in, n);
            d->hdr_len += n;
            in += n;
            len -= n;
            *used += n;
            if (d->hdr_len < RPC_BOX_HEADER_LEN) return 0;
            int r = open_header(d);
            if (r != 0) return r;
        }
        size_t n = (d->body_len - d->body_got < len ? d->body_len - d->body_got : len);
        memcpy(d->body + d->body_got, in, n);
        d->body_got += n;
        in += n;
        len -= n;
        *used += n;
        if (d->body_got < d->body_len) return 0;
        if (crypto_secretbox_open_detached(d->body, d->body, d->body_mac, d->body_len, d->nonce,
                                           d->key) != 0)
            return dec_fail(d, -EBADMSG);
        rpc_box_nonce_inc(d->nonce);
        d->state = 0;
        *body = d->body;
        *body_len = d->body_len;
        return 1;
    }
}
