/* boxstream.c: box-stream framing (Scuttlebutt's box stream, byte-compatible with the npm
 * `pull-box-stream` package) as a pure encoder and a bounded streaming decoder. Each frame is a
 * 34-byte secretbox of the header (body length, 2 bytes big-endian, then the body's 16-byte MAC)
 * under nonce n, followed by the body encrypted under nonce n+1; the next frame starts at n+2. The
 * stream ends with the goodbye: a boxed header of 18 zero bytes. */
#include "rpc/shs.h"

#include <string.h>

#include <sodium.h>

void rpc_box_nonce_inc(uint8_t nonce[24])
{
    for (int i = 23; i >= 0; i--)
        if (++nonce[i] != 0) break;
}

void rpc_box_enc_init(rpc_box_enc_t *e, const uint8_t key[32], const uint8_t nonce[24])
{
    memcpy(e->key, key, 32);
    memcpy(e->nonce, nonce, 24);
}

void rpc_box_dec_init(rpc_box_dec_t *d, const uint8_t key[32], const uint8_t nonce[24])
{
    memset(d, 0, sizeof(*d));
    memcpy(d->key, key, 32);
    memcpy(d->nonce, nonce, 24);
}

size_t rpc_box_encoded_len(size_t len)
{
    size_t frames = (len + RPC_BOX_MAX_BODY - 1) / RPC_BOX_MAX_BODY;
    return len + frames * RPC_BOX_HEADER_LEN;
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
    while (len > 0) {
        size_t n = len < RPC_BOX_MAX_BODY ? len : RPC_BOX_MAX_BODY;
        encode_frame(e, in, n, out + w);
        w += RPC_BOX_HEADER_LEN + n;
        in += n;
        len -= n;
    }
    return w;
}

void rpc_box_goodbye(rpc_box_enc_t *e, uint8_t out[RPC_BOX_HEADER_LEN])
{
    static const uint8_t zeros[18];
    crypto_secretbox_easy(out, zeros, sizeof(zeros), e->nonce, e->key);
    rpc_box_nonce_inc(e->nonce);
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
    if (d->body_len > RPC_BOX_MAX_BODY) return dec_fail(d, -EMSGSIZE);
    memcpy(d->body_mac, head + 2, 16);
    d->body_got = 0;
    d->state = 1;
    return 0;
}

int rpc_box_decode(rpc_box_dec_t *d, const uint8_t *in, size_t len, size_t *used,
                   const uint8_t **body, size_t *body_len)
{
    *used = 0;
    *body = NULL;
    *body_len = 0;
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
