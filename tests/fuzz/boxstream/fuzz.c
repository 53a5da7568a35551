/* fuzz.c: libFuzzer harness for the box-stream decoder and encoder (src/rpc/boxstream.c). Byte 0
 * picks the mode (bit 0) and the delivery chunk size (bits 1-4, 1 << n bytes, at most 32 KiB):
 *   0  the rest is raw wire bytes for a decoder (fixed key and nonce);
 *   1  the rest is plaintext: encoded, then decoded in chunks, and must come back unchanged;
 *      then one bit of the wire (at an offset chosen by the plaintext's length) is flipped and the
 *      decoder must refuse the stream.
 * Bit 5 of byte 0 selects bulk mode: the decoder accepts a switch frame and, in mode 1, the
 * encoder switches after the first 7 plaintext bytes (so both framings are exercised). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "../fuzz.h"
#include "rpc/shs.h"

static rpc_box_dec_t dec;
static uint8_t key[32], nonce[24];

/* Decodes wire in chunks; returns the plaintext length produced, or -1 on a decoder error. */
static long decode(const uint8_t *wire, size_t len, size_t chunk, bool bulk, uint8_t *out)
{
    size_t off = 0, got = 0;
    rpc_box_dec_free(&dec);
    rpc_box_dec_init(&dec, key, nonce);
    rpc_box_dec_allow_switch(&dec, bulk);
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk, used, blen;
        const uint8_t *body;
        int r = rpc_box_decode(&dec, wire + off, n, &used, &body, &blen);
        if (r < 0) return -1;
        if (used > n || (r == 0 && used != n)) abort();
        if (r == 1) {
            if (blen > (dec.gcm ? RPC_BULK_MAX_BODY : RPC_BOX_MAX_BODY)) abort();
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
    bool bulk = (data[0] >> 5) & 1;
    data++, size--;
    if (mode == 0 || size == 0) {
        decode(data, size, chunk, bulk, NULL);
        return 0;
    }
    rpc_box_enc_t enc;
    rpc_box_enc_init(&enc, key, nonce);
    size_t head = bulk && size > 7 ? 7 : size, wlen = rpc_box_encoded_len(&enc, head);
    /* bulk frames cost less than box-stream frames: the box-stream bound covers both */
    size_t cap = wlen + RPC_BOX_HEADER_LEN + (size - head) + RPC_BOX_HEADER_LEN * (size / 16 + 2);
    uint8_t *wire = malloc(cap), *out = malloc(size);
    if (!wire || !out) abort();
    if (rpc_box_encode(&enc, data, head, wire) != wlen) abort();
    if (head < size) {
        if (rpc_box_enc_switch(&enc, wire + wlen) != RPC_BOX_HEADER_LEN) abort();
        wlen += RPC_BOX_HEADER_LEN;
        wlen += rpc_box_encode(&enc, data + head, size - head, wire + wlen);
    }
    size_t bye = rpc_box_goodbye(&enc, wire + wlen);
    rpc_box_enc_free(&enc);
    if (decode(wire, wlen + bye, chunk, bulk, out) != (long)size) abort();
    if (dec.state != 2 || memcmp(out, data, size) != 0) abort();
    size_t flip = size % wlen;
    wire[flip] ^= 0x80;
    if (decode(wire, wlen, chunk, bulk, NULL) != -1) abort(); /* the tampered frame was accepted */
    rpc_box_dec_free(&dec);
    free(wire);
    free(out);
    return 0;
}
