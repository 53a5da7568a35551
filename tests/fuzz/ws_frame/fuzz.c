/* fuzz.c: libFuzzer harness for the WebSocket core (src/http/ws.c). Byte 0 picks the mode (bits
 * 0-1) and the delivery chunk size (bits 2-5, 1 << n bytes):
 *   0  the rest is a client byte stream. It is decoded whole and in chunks; both runs must
 *      deliver the same messages and end the same way, and every message must keep the rules
 *      (text is UTF-8, control payloads <= 125 bytes, sizes within the limit, a known close code);
 *   1  the rest is a header block ("Name: value" lines) for the handshake check; an accepted one
 *      yields a 28-character accept value;
 *   2  the rest is a payload: cut into fragments by its own bytes, framed with the encoder's
 *      headers (masked as a client would) and decoded in chunks; it must come back whole;
 *   3  the rest is a close code (2 bytes) and reason: the encoder's close frame, masked, must
 *      decode to the same code and reason, or the encoder must have refused it. */
#include <stdlib.h>
#include <string.h>

#include "../fuzz.h"
#include "http/ws.h"

#define MAX_MESSAGE (64u * 1024) /* the decoder's limit here, so that mutations reach it */

typedef struct run {
    uint64_t hash; /* FNV-1a over every delivered message */
    int n, result, close_code;
} run_t;

static void mix(uint64_t *h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        *h = (*h ^ b[i]) * 0x100000001b3ull;
}

static void check_msg(const http_ws_msg_t *m)
{
    if (m->data[m->len] != 0) abort();
    switch (m->opcode) {
    case HTTP_WS_TEXT: {
        http_ws_utf8_t v = {0};
        if (http_ws_utf8_feed(&v, m->data, m->len) < 0 || !http_ws_utf8_complete(&v)) abort();
    } /* fall through */
    case HTTP_WS_BINARY:
        if (m->len > MAX_MESSAGE) abort();
        break;
    case HTTP_WS_CLOSE:
        if (m->close_code != HTTP_WS_NO_STATUS && !http_ws_close_code_valid(m->close_code)) abort();
        if (m->reason_len > HTTP_WS_MAX_REASON) abort();
        /* fall through */
    case HTTP_WS_PING:
    case HTTP_WS_PONG:
        if (m->len > HTTP_WS_MAX_CONTROL) abort();
        break;
    default:
        abort();
    }
}

static run_t decode(const uint8_t *buf, size_t len, size_t chunk, uint8_t *out, size_t *out_len)
{
    http_ws_dec_t d;
    run_t run = {0xcbf29ce484222325ull, 0, 0, 0};
    http_ws_dec_init(&d, MAX_MESSAGE);
    size_t off = 0;
    if (out_len) *out_len = 0;
    while (off < len && run.result >= 0) {
        size_t n = len - off < chunk ? len - off : chunk, at = 0;
        while (at < n) {
            size_t used = 0;
            http_ws_msg_t m;
            run.result = http_ws_decode(&d, buf + off + at, n - at, &used, &m);
            if (used > n - at) abort();
            at += used;
            if (run.result <= 0) break;
            check_msg(&m);
            mix(&run.hash, &m.opcode, sizeof(m.opcode));
            mix(&run.hash, m.data, m.len);
            run.n++;
            if (out && m.opcode == HTTP_WS_BINARY) {
                memcpy(out + *out_len, m.data, m.len);
                *out_len += m.len;
            }
        }
        if (run.result == 0 && at != n) abort();
        off += n;
    }
    if (run.result < 0) {
        run.close_code = d.close_code;
        if (d.close_code != 1002 && d.close_code != 1007 && d.close_code != 1009 &&
            d.close_code != 1011)
            abort();
    }
    http_ws_dec_free(&d);
    return run;
}

static void mode_stream(const uint8_t *data, size_t size, size_t chunk)
{
    run_t a = decode(data, size, size ? size : 1, NULL, NULL);
    run_t b = decode(data, size, chunk, NULL, NULL);
    if (a.hash != b.hash || a.n != b.n || (a.result < 0) != (b.result < 0) ||
        a.close_code != b.close_code)
        abort();
}

static void mode_handshake(const uint8_t *data, size_t size)
{
    http_header_t h[16];
    size_t n = 0, i = 0;
    const char *s = (const char *)data;
    while (i < size && n < 16) {
        size_t start = i;
        while (i < size && data[i] != '\n')
            i++;
        size_t end = i++;
        const char *colon = memchr(s + start, ':', end - start);
        if (!colon) continue;
        size_t vs = (size_t)(colon - s) + 1;
        while (vs < end && s[vs] == ' ')
            vs++;
        h[n++] = (http_header_t){s + start, (size_t)(colon - s) - start, s + vs, end - vs};
    }
    char accept[HTTP_WS_ACCEPT_LEN + 1];
    const char *why = NULL;
    int r = http_ws_handshake(h, n, accept, &why);
    if (r == 0 && (why || strlen(accept) != HTTP_WS_ACCEPT_LEN)) abort();
    if (r != 0 && !why) abort();
}

/* Appends a client frame: the encoder's header with the mask bit set, a mask, the payload. */
static size_t client_frame(uint8_t *out, int op, bool fin, const uint8_t *p, size_t len)
{
    static const uint8_t key[4] = {0xa5, 0x5a, 0x0f, 0xf0};
    int h = http_ws_header(out, op, fin, len);
    if (h < 0) abort();
    out[1] |= 0x80;
    memcpy(out + h, key, 4);
    for (size_t i = 0; i < len; i++)
        out[h + 4 + i] = p[i] ^ key[i & 3];
    return (size_t)h + 4 + len;
}

static void mode_roundtrip(const uint8_t *data, size_t size, size_t chunk)
{
    if (size > MAX_MESSAGE) return;
    /* at most 64 fragments plus their headers, and pings in between */
    uint8_t *wire = malloc(size + 64 * (2 * HTTP_WS_MAX_HEADER + 2) + 16), *out = malloc(size + 1);
    if (!wire || !out) abort();
    size_t w = 0, off = 0;
    int frags = 0;
    do {
        size_t left = size - off, n = left;
        if (frags < 63 && left > 0) n = data[off] % (left + 1);
        bool fin = off + n == size || frags == 63;
        if (fin) n = left;
        w += client_frame(wire + w, frags ? HTTP_WS_CONT : HTTP_WS_BINARY, fin, data + off, n);
        if (!fin && n % 3 == 0) w += client_frame(wire + w, HTTP_WS_PING, true, data + off, 0);
        off += n;
        frags++;
        if (fin) break;
    } while (1);
    size_t got = 0;
    run_t r = decode(wire, w, chunk, out, &got);
    if (r.result < 0 || got != size || memcmp(out, data, size) != 0) abort();
    free(wire);
    free(out);
}

static void mode_close(const uint8_t *data, size_t size, size_t chunk)
{
    if (size < 2) return;
    int code = data[0] << 8 | data[1];
    uint8_t frame[HTTP_WS_MAX_CLOSE_FRAME], wire[HTTP_WS_MAX_CLOSE_FRAME + 4];
    int n = http_ws_close_frame(frame, code, (const char *)data + 2, size - 2);
    if (n < 0) return;
    if (frame[0] != 0x88 || frame[1] != n - 2) abort();
    size_t w = client_frame(wire, HTTP_WS_CLOSE, true, frame + 2, (size_t)n - 2);
    http_ws_dec_t d;
    http_ws_dec_init(&d, 0);
    http_ws_msg_t m;
    size_t used, off = 0;
    int r = 0;
    while (off < w && r == 0) {
        size_t k = w - off < chunk ? w - off : chunk;
        r = http_ws_decode(&d, wire + off, k, &used, &m);
        off += used;
    }
    if (r != 1 || m.opcode != HTTP_WS_CLOSE || m.close_code != (code ? code : HTTP_WS_NO_STATUS) || m.reason_len != size - 2 ||
        memcmp(m.reason, data + 2, size - 2) != 0)
        abort();
    http_ws_dec_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    int mode = data[0] & 3;
    size_t chunk = (size_t)1 << ((data[0] >> 2) & 15);
    data++, size--;
    switch (mode) {
    case 0:
        mode_stream(data, size, chunk);
        break;
    case 1:
        mode_handshake(data, size);
        break;
    case 2:
        mode_roundtrip(data, size, chunk);
        break;
    default:
        mode_close(data, size, chunk);
        break;
    }
    return 0;
}
