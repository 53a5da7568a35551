/* ws.c: the WebSocket protocol core (RFC 6455): handshake check and accept key, the incremental
 * decoder of client frames (masking, RSV bits, opcodes, control frame rules, fragmentation,
 * message size, UTF-8 of text and close reasons, close codes) and the encoder of server frames.
 * No I/O and no clock. */
#include "http/ws.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <sodium.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* --- handshake ----------------------------------------------------------------------------- */

int http_ws_accept(const char *key, size_t key_len, char out[HTTP_WS_ACCEPT_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, key, key_len) == 1 &&
             EVP_DigestUpdate(ctx, ws_guid, sizeof(ws_guid) - 1) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok) return -EIO;
    sodium_bin2base64(out, HTTP_WS_ACCEPT_LEN + 1, md, md_len, sodium_base64_VARIANT_ORIGINAL);
    return 0;
}

static bool name_is(const http_header_t *h, const char *name)
{
    size_t n = strlen(name);
    return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* True when the comma-separated list value (blanks around elements ignored) has token, compared
 * without case. */
static bool list_has(const char *v, size_t len, const char *token)
{
    size_t tl = strlen(token), i = 0;
    while (i < len) {
        size_t start, end;
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            i++;
        start = i;
        while (i < len && v[i] != ',')
            i++;
        end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            end--;
        if (end - start == tl && strncasecmp(v + start, token, tl) == 0) return true;
    }
    return false;
}

/* True when value is the base64 (with padding) of exactly 16 bytes. */
static bool key_ok(const char *v, size_t len)
{
    unsigned char bin[16 + 3];
    size_t bin_len = 0;
    const char *end = NULL;
    if (len != HTTP_WS_KEY_LEN) return false;
    if (sodium_base642bin(bin, sizeof(bin), v, len, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0)
        return false;
    return bin_len == 16 && end == v + len;
}

int http_ws_handshake(const http_header_t *headers, size_t n_headers,
                      char accept[HTTP_WS_ACCEPT_LEN + 1], const char **why)
{
    bool upgrade = false, connection = false, version = false;
    const http_header_t *key = NULL;
    size_t n_keys = 0;
    for (size_t i = 0; i < n_headers; i++) {
        const http_header_t *h = &headers[i];
        if (name_is(h, "upgrade"))
            upgrade |= list_has(h->value, h->value_len, "websocket");
        else if (name_is(h, "connection"))
            connection |= list_has(h->value, h->value_len, "upgrade");
        else if (name_is(h, "sec-websocket-version"))
            version |= list_has(h->value, h->value_len, "13");
        else if (name_is(h, "sec-websocket-key"))
            key = h, n_keys++;
    }
    *why = NULL;
    if (!upgrade)
        *why = "Upgrade: websocket is missing";
    else if (!connection)
        *why = "Connection: upgrade is missing";
    else if (!version) {
        *why = "Sec-WebSocket-Version must be 13";
        return -EPROTONOSUPPORT;
    } else if (n_keys != 1 || !key_ok(key->value, key->value_len))
        *why = "Sec-WebSocket-Key must be one base64 value of 16 bytes";
    if (*why) return -EINVAL;
    if (http_ws_accept(key->value, key->value_len, accept) < 0) {
        *why = "SHA-1 failed";
        return -EIO;
    }
    return 0;
}

/* --- UTF-8 --------------------------------------------------------------------------------- */

int http_ws_utf8_feed(http_ws_utf8_t *v, const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t b = buf[i];
        if (v->need) {
            if (b < v->lo || b > v->hi) return -EILSEQ;
            v->need--;
            v->lo = 0x80, v->hi = 0xBF;
        } else if (b < 0x80) {
            continue;
        } else if (b < 0xC2) { /* a stray continuation byte, or C0/C1 (overlong) */
            return -EILSEQ;
        } else if (b < 0xE0) {
            v->need = 1, v->lo = 0x80, v->hi = 0xBF;
        } else if (b < 0xF0) { /* E0: no overlongs; ED: no surrogates */
            v->need = 2, v->lo = b == 0xE0 ? 0xA0 : 0x80, v->hi = b == 0xED ? 0x9F : 0xBF;
        } else if (b < 0xF5) { /* F0: no overlongs; F4: nothing past U+10FFFF */
            v->need = 3, v->lo = b == 0xF0 ? 0x90 : 0x80, v->hi = b == 0xF4 ? 0x8F : 0xBF;
        } else {
            return -EILSEQ;
        }
    }
    return 0;
}

bool http_ws_utf8_complete(const http_ws_utf8_t *v)
{
    return v->need == 0;
}

static bool utf8_valid(const uint8_t *buf, size_t len)
{
    http_ws_utf8_t v = {0};
    return http_ws_utf8_feed(&v, buf, len) == 0 && v.need == 0;
}

/* --- decoder ------------------------------------------------------------------------------- */

bool http_ws_close_code_valid(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

void http_ws_dec_init(http_ws_dec_t *d, size_t max_message)
{
    memset(d, 0, sizeof(*d));
    d->state = HTTP_WS_DEC_HEADER;
    d->hdr_need = 2;
    d->max_message =
        max_message == 0 || max_message > WS_MAX_MESSAGE ? WS_MAX_MESSAGE : max_message;
}

void http_ws_dec_free(http_ws_dec_t *d)
{
    if (!d) return;
    free(d->msg);
    d->msg = NULL;
    d->msg_len = d->msg_cap = 0;
}

static int fail(http_ws_dec_t *d, int code)
{
    d->state = HTTP_WS_DEC_FAILED;
    d->close_code = code;
    switch (code) {
    case HTTP_WS_INVALID_DATA:
        return -EILSEQ;
    case HTTP_WS_TOO_BIG:
        return -EMSGSIZE;
    case HTTP_WS_INTERNAL:
        return -ENOMEM;
    default:
        return -EPROTO;
    }
}

static bool is_control(int op)
{
    return (op & 0x8) != 0;
}

static bool opcode_known(int op)
{
    return op == HTTP_WS_CONT || op == HTTP_WS_TEXT || op == HTTP_WS_BINARY ||
           op == HTTP_WS_CLOSE || op == HTTP_WS_PING || op == HTTP_WS_PONG;
}

/* The first two header bytes are in: checks what they alone decide and sizes the header. */
static int header_start(http_ws_dec_t *d)
{
    uint8_t b0 = d->hdr[0], b1 = d->hdr[1], len7 = b1 & 0x7F;
    d->fin = (b0 & 0x80) != 0;
    d->opcode = b0 & 0x0F;
    if (b0 & 0x70) return fail(d, HTTP_WS_PROTOCOL_ERROR); /* RSV without an extension */
    if (!opcode_known(d->opcode)) return fail(d, HTTP_WS_PROTOCOL_ERROR);
    if (!(b1 & 0x80)) return fail(d, HTTP_WS_PROTOCOL_ERROR); /* client frames are masked */
    if (is_control(d->opcode)) {
        if (!d->fin || len7 > HTTP_WS_MAX_CONTROL) return fail(d, HTTP_WS_PROTOCOL_ERROR);
    } else if ((d->opcode == HTTP_WS_CONT) != d->in_message) {
        /* a continuation with nothing to continue, or a new message inside a fragmented one */
        return fail(d, HTTP_WS_PROTOCOL_ERROR);
    }
    d->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
    return 0;
}

/* The whole header is in: payload length, mask, the message's limits. */
static int header_end(http_ws_dec_t *d)
{
    const uint8_t *h = d->hdr;
    uint8_t len7 = h[1] & 0x7F;
    uint64_t len = len7;
    size_t at = 2;
    if (len7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        at = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | h[2 + i];
        at = 10;
        if (len >> 63) return fail(d, HTTP_WS_PROTOCOL_ERROR); /* the top bit must be 0 */
    }
    memcpy(d->mask, h + at, 4);
    d->payload_len = len;
    d->payload_have = 0;
    if (!is_control(d->opcode)) {
        if (d->opcode != HTTP_WS_CONT) { /* a message starts */
            d->in_message = true;
            d->msg_type = d->opcode;
            d->msg_len = 0;
            d->fragments = 0;
            memset(&d->utf8, 0, sizeof(d->utf8));
        }
        if (++d->fragments > WS_MAX_FRAGMENTS || len > d->max_message - d->msg_len)
            return fail(d, HTTP_WS_TOO_BIG);
    }
    d->state = HTTP_WS_DEC_PAYLOAD;
    return 0;
}

/* Room for n more message bytes and a NUL, grown with the bytes that actually arrived. */
static int reserve(http_ws_dec_t *d, size_t n)
{
    size_t need = d->msg_len + n + 1;
    if (need <= d->msg_cap) return 0;
    size_t cap = d->msg_cap ? d->msg_cap * 2 : 256;
    if (cap < need) cap = need;
    if (cap > d->max_message + 1) cap = d->max_message + 1;
    uint8_t *p = realloc(d->msg, cap);
    if (!p) return fail(d, HTTP_WS_INTERNAL);
    d->msg = p;
    d->msg_cap = cap;
    return 0;
}

/* Unmasks n payload bytes of buf into the control buffer or the message. */
static int take_payload(http_ws_dec_t *d, const uint8_t *buf, size_t n)
{
    uint8_t *dst;
    if (is_control(d->opcode)) {
        dst = d->ctl + d->payload_have;
    } else {
        int r = reserve(d, n);
        if (r < 0) return r;
        dst = d->msg + d->msg_len;
    }
    for (size_t i = 0; i < n; i++)
        dst[i] = buf[i] ^ d->mask[(d->payload_have + i) & 3];
    d->payload_have += n;
    if (is_control(d->opcode)) return 0;
    d->msg_len += n;
    if (d->msg_type == HTTP_WS_TEXT && http_ws_utf8_feed(&d->utf8, dst, n) < 0)
        return fail(d, HTTP_WS_INVALID_DATA);
    return 0;
}

static int control_done(http_ws_dec_t *d, http_ws_msg_t *out)
{
    size_t len = (size_t)d->payload_len;
    d->ctl[len] = 0;
    memset(out, 0, sizeof(*out));
    out->opcode = d->opcode;
    out->data = d->ctl;
    out->len = len;
    out->reason = "";
    if (d->opcode != HTTP_WS_CLOSE) return 1;
    out->close_code = HTTP_WS_NO_STATUS;
    if (len == 1) return fail(d, HTTP_WS_PROTOCOL_ERROR);
    if (len >= 2) {
        out->close_code = d->ctl[0] << 8 | d->ctl[1];
        if (!http_ws_close_code_valid(out->close_code)) return fail(d, HTTP_WS_PROTOCOL_ERROR);
        if (!utf8_valid(d->ctl + 2, len - 2)) return fail(d, HTTP_WS_INVALID_DATA);
        out->reason = (const char *)d->ctl + 2;
        out->reason_len = len - 2;
    }
    d->state = HTTP_WS_DEC_CLOSED;
    return 1;
}

/* A frame's payload is complete: returns 1 with *out set, 0 to go on, or an error. */
static int frame_done(http_ws_dec_t *d, http_ws_msg_t *out)
{
    d->state = HTTP_WS_DEC_HEADER;
    d->hdr_have = 0;
    d->hdr_need = 2;
    if (is_control(d->opcode)) return control_done(d, out);
    if (!d->fin) return 0;
    if (d->msg_type == HTTP_WS_TEXT && !http_ws_utf8_complete(&d->utf8))
        return fail(d, HTTP_WS_INVALID_DATA);
    if (!d->msg) { /* an empty message, nothing reserved */
        int r = reserve(d, 0);
        if (r < 0) return r;
    }
    d->msg[d->msg_len] = 0;
    d->in_message = false;
    memset(out, 0, sizeof(*out));
    out->opcode = d->msg_type;
    out->data = d->msg;
    out->len = d->msg_len;
    out->reason = "";
    return 1;
}

int http_ws_decode(http_ws_dec_t *d, const uint8_t *buf, size_t len, size_t *used,
                   http_ws_msg_t *out)
{
    size_t off = 0;
    int r = 0;
    *used = 0;
    if (d->state == HTTP_WS_DEC_FAILED) return fail(d, d->close_code);
    if (d->state == HTTP_WS_DEC_CLOSED) {
        *used = len;
        return 0;
    }
    if (!d->in_message && d->msg_cap > WS_KEEP_BUFFER) http_ws_dec_free(d);
    for (;;) {
        if (d->state == HTTP_WS_DEC_HEADER) {
            if (off == len) break;
            size_t n = d->hdr_need - d->hdr_have;
            if (n > len - off) n = len - off;
            memcpy(d->hdr + d->hdr_have, buf + off, n);
            d->hdr_have += n;
            off += n;
            if (d->hdr_have < d->hdr_need) continue;
            r = d->hdr_need == 2 ? header_start(d) : header_end(d);
        } else {
            uint64_t left = d->payload_len - d->payload_have;
            size_t n = left < len - off ? (size_t)left : len - off;
            if (n) r = take_payload(d, buf + off, n);
            off += n;
            if (r == 0 && d->payload_have == d->payload_len)
                r = frame_done(d, out);
            else if (r == 0)
                break; /* the input ended inside the payload */
        }
        if (r != 0) break;
    }
    *used = off;
    return r;
}

/* --- encoder ------------------------------------------------------------------------------- */

int http_ws_header(uint8_t *out, int opcode, bool fin, uint64_t len)
{
    if (!opcode_known(opcode)) return -EINVAL;
    if (is_control(opcode) && (!fin || len > HTTP_WS_MAX_CONTROL)) return -EINVAL;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[1] = (uint8_t)len;
        return 2;
    }
    if (len <= 0xFFFF) {
        out[1] = 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        return 4;
    }
    if (len >> 63) return -EINVAL;
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 10;
}

int http_ws_control(uint8_t *out, int opcode, const void *payload, size_t len)
{
    if (opcode != HTTP_WS_PING && opcode != HTTP_WS_PONG) return -EINVAL;
    int h = http_ws_header(out, opcode, true, len);
    if (h < 0) return h;
    if (len) memcpy(out + h, payload, len);
    return h + (int)len;
}

int http_ws_close_frame(uint8_t *out, int code, const char *reason, size_t reason_len)
{
    if (code == 0) {
        if (reason_len) return -EINVAL;
        return http_ws_header(out, HTTP_WS_CLOSE, true, 0);
    }
    if (!http_ws_close_code_valid(code) || reason_len > HTTP_WS_MAX_REASON ||
        !utf8_valid((const uint8_t *)reason, reason_len))
        return -EINVAL;
    int h = http_ws_header(out, HTTP_WS_CLOSE, true, 2 + reason_len);
    if (h < 0) return h;
    out[h] = (uint8_t)(code >> 8);
    out[h + 1] = (uint8_t)code;
    if (reason_len) memcpy(out + h + 2, reason, reason_len);
    return h + 2 + (int)reason_len;
}
