/* fuzz.c: libFuzzer harness for the box-stream decoder and encoder (src/rpc/boxstream.c). Byte 0
 * picks the mode (bit 0) and the delivery chunk size (bits 1-4, 1 << n bytes, at most 32 KiB):
 *   0  the rest is raw wire bytes for a decoder (fixed key and nonce);
 *   1  the rest is plaintext: encoded, then decoded in chunks, and must come back unchanged;
 *      then one bit of the wire (at an offset chosen by the plaintext's length) is flipped and the
 *      decoder must refuse the stream. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../fuzz.h"
#include "rpc/shs.h"

static rpc_box_dec_t dec;
static uint8_t key[32], nonce[24];

/* Decodes wire in chunks; returns the plaintext length produced, or -1 on a decoder error. */
static long decode(const uint8_t *wire, size_t len, size_t chunk, uint8_t *out)
{
    size_t off = 0, got = 0;
    rpc_box_dec_init(&dec, key, nonce);
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk, used, blen;
        const uint8_t *body;
        int r = rpc_box_decode(&dec, wire + off, n, &used, &body, &blen);
        if (r < 0) return -1;
        if (used > n || (r == 0 && used != n)) abort();
        if (r == 1) {
            if (blen > RPC_BOX_MAX_BODY) abort();
            if (out) memcpy(out + got, body, blen);
            got += blen;
        }
        off += used;
    }
    return (long)got;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (sodium_init() < 0) abort();
    memset(key, 0x42, sizeof(key));
    memset(nonce, 0x24, sizeof(nonce));
    if (size == 0) return 0;
    size_t chunk = (size_t)1 << ((data[0] >> 1) & 15);
    int mode = data[0] & 1;
    data++, size--;
    if (mode == 0 || size == 0) {
        decode(data, size, chunk, NULL);
        return 0;
    }
    rpc_box_enc_t enc;
    rpc_box_enc_init(&enc, key, nonce);
    size_t wlen = rpc_box_encoded_len(size);
    uint8_t *wire = malloc(wlen + RPC_BOX_HEADER_LEN), *out = malloc(size);
    if (!wire || !out) abort();
    if (rpc_box_encode(&enc, data, size, wire) != wlen) abort();
    rpc_box_goodbye(&enc, wire + wlen);
    if (decode(wire, wlen + RPC_BOX_HEADER_LEN, chunk, out) != (long)size) abort();
    if (dec.state != 2 || memcmp(out, data, size) != 0) abort();
    size_t flip = size % wlen;
    wire[flip] ^= 0x80;
    if (decode(wire, wlen, chunk, NULL) != -1) abort(); /* the tampered frame was accepted */
    free(wire);
    free(out);
    return 0;
}
