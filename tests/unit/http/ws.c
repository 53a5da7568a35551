/* Tests of src/http/ws.c: the handshake check and accept key (RFC 6455 section 1.3 example), the
 * frame decoder's rules (masking, RSV, opcodes, control frames, fragmentation, size limit, UTF-8,
 * close codes) over every byte split, the section 5.7 examples, and the server frame encoder. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http/ws.h"

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* Writes a client frame: b0 is FIN|RSV|opcode; masked with mask_key unless unmasked. */
static size_t frame(uint8_t *out, uint8_t b0, const void *payload, size_t len, bool masked)
{
    size_t at = 0;
    out[at++] = b0;
    uint8_t m = masked ? 0x80 : 0;
    if (len < 126) {
        out[at++] = m | (uint8_t)len;
    } else if (len <= 0xFFFF) {
        out[at++] = m | 126;
        out[at++] = (uint8_t)(len >> 8);
        out[at++] = (uint8_t)len;
    } else {
        out[at++] = m | 127;
        for (int i = 0; i < 8; i++)
            out[at++] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (masked) {
        memcpy(out + at, mask_key, 4);
        at += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[at + i] = masked ? p[i] ^ mask_key[i & 3] : p[i];
    return at + len;
}

#define MAX_MSGS 16

typedef struct got {
    int n;
    int opcode[MAX_MSGS];
    int close_code[MAX_MSGS];
    size_t len[MAX_MSGS];
    uint8_t *data[MAX_MSGS];
    char reason[MAX_MSGS][HTTP_WS_MAX_REASON + 1];
} got_t;

static void got_free(got_t *g)
{
    for (int i = 0; i < g->n; i++)
        free(g->data[i]);
    memset(g, 0, sizeof(*g));
}

/* Feeds buf to a fresh decoder in chunks of `chunk` bytes, recording what it delivers. Returns
 * the last decode result (0, or the error) and sets *code to the decoder's close code. */
static int feed(const uint8_t *buf, size_t len, size_t chunk, size_t max_message, got_t *g,
                int *code)
{
    http_ws_dec_t d;
    http_ws_dec_init(&d, max_message);
    memset(g, 0, sizeof(*g));
    int r = 0;
    for (size_t off = 0; off < len && r >= 0;) {
        size_t n = len - off < chunk ? len - off : chunk;
        /* each chunk in its own allocation, so ASan sees reads past it */
        uint8_t *piece = malloc(n);
        assert_non_null(piece);
        memcpy(piece, buf + off, n);
        size_t at = 0;
        while (at < n) {
            size_t used = 0;
            http_ws_msg_t m;
            r = http_ws_decode(&d, piece + at, n - at, &used, &m);
            assert_true(used <= n - at);
            at += used;
            if (r < 0) break;
            if (r == 0) {
                assert_int_equal(at, n);
                break;
            }
            assert_true(g->n < MAX_MSGS);
            assert_int_equal(m.data[m.len], 0);
            g->opcode[g->n] = m.opcode;
            g->close_code[g->n] = m.close_code;
            g->len[g->n] = m.len;
            g->data[g->n] = malloc(m.len + 1);
            memcpy(g->data[g->n], m.data, m.len + 1);
            memcpy(g->reason[g->n], m.reason, m.reason_len);
            g->reason[g->n][m.reason_len] = 0;
            g->n++;
        }
        free(piece);
        off += n;
    }
    *code = d.close_code;
    if (r < 0) assert_int_equal(d.state, HTTP_WS_DEC_FAILED);
    http_ws_dec_free(&d);
    return r < 0 ? r : 0;
}

/* Feeds buf whole and byte by byte; both must agree. Returns the result, g filled from the
 * byte-by-byte run. */
static int feed_all(const uint8_t *buf, size_t len, got_t *g, int *code)
{
    got_t whole;
    int code_whole;
    int r_whole = feed(buf, len, len ? len : 1, 0, &whole, &code_whole);
    int r = feed(buf, len, 1, 0, g, code);
    assert_int_equal(r, r_whole);
    assert_int_equal(*code, code_whole);
    assert_int_equal(g->n, whole.n);
    for (int i = 0; i < g->n; i++) {
        assert_int_equal(g->opcode[i], whole.opcode[i]);
        assert_int_equal(g->len[i], whole.len[i]);
        assert_memory_equal(g->data[i], whole.data[i], g->len[i]);
    }
    got_free(&whole);
    return r;
}

/* Expects buf to fail with close code `code` (whole and byte by byte). */
static void expect_close(const uint8_t *buf, size_t len, int code)
{
    got_t g;
    int c = 0;
    int r = feed_all(buf, len, &g, &c);
    assert_true(r < 0);
    assert_int_equal(c, code);
    int want = code == 1007 ? -EILSEQ : code == 1009 ? -EMSGSIZE : -EPROTO;
    assert_int_equal(r, want);
    got_free(&g);
}

/* --- handshake ----------------------------------------------------------------------------- */

static void test_accept_rfc(void **state)
{
    (void)state;
    char out[HTTP_WS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    assert_int_equal(http_ws_accept(key, strlen(key), out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

#define H(n, v)                                                                                    \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

static int check(const http_header_t *h, size_t n, char *accept)
{
    const char *why = "unset";
    int r = http_ws_handshake(h, n, accept, &why);
    if (r == 0)
        assert_null(why);
    else
        assert_non_null(why);
    return r;
}

static void test_handshake(void **state)
{
    (void)state;
    char acc[HTTP_WS_ACCEPT_LEN + 1];
    const http_header_t ok[] = {
        H("Host", "x"), H("upgrade", "WebSocket"), H("Connection", "keep-alive, Upgrade"),
        H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), H("SEC-WEBSOCKET-VERSION", "13")};
    assert_int_equal(check(ok, 5, acc), 0);
    assert_string_equal(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    /* Connection split over two header lines, Upgrade listing another protocol first */
    const http_header_t split[] = {
        H("Upgrade", "h2c, websocket"), H("Connection", "keep-alive"), H("Connection", "upgrade"),
        H("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="), H("Sec-WebSocket-Version", "13")};
    assert_int_equal(check(split, 5, acc), 0);

    http_header_t h[5];
    memcpy(h, ok, sizeof(ok));
    h[1] = (http_header_t)H("Upgrade", "websockets");
    assert_int_equal(check(h, 5, acc), -EINVAL);
    assert_int_equal(check(ok + 2, 3, acc), -EINVAL); /* no Upgrade at all */

    memcpy(h, ok, sizeof(ok));
    h[2] = (http_header_t)H("Connection", "keep-alive, upgrades");
    assert_int_equal(check(h, 5, acc), -EINVAL);

    memcpy(h, ok, sizeof(ok));
    h[4] = (http_header_t)H("Sec-WebSocket-Version", "8");
    assert_int_equal(check(h, 5, acc), -EPROTONOSUPPORT);
    assert_int_equal(check(ok, 4, acc), -EPROTONOSUPPORT); /* no version */

    const char *bad_keys[] = {
        "dGhlIHNhbXBsZSBub25jZQ",    /* no padding */
        "dGhlIHNhbXBsZSBub25jZQ===", /* too long */
        "dGhlIHNhbXBsZSBub25j",      /* 15 bytes */
        "dGhlIHNhbXBsZSBub25jZQ!=",  /* not base64 */
        "dGhlIHNhbXBsZSBub25jZQ=A",  /* padding in the middle */
        "dGhlIHNhbXBsZSBub25jZXk=",  /* 17 bytes */
        "",
    };
    for (size_t i = 0; i < sizeof(bad_keys) / sizeof(bad_keys[0]); i++) {
        memcpy(h, ok, sizeof(ok));
        h[3].value = bad_keys[i];
        h[3].value_len = strlen(bad_keys[i]);
        assert_int_equal(check(h, 5, acc), -EINVAL);
    }
    memcpy(h, ok, sizeof(ok));
    h[3] = (http_header_t)H("Sec-WebSocket-Protocol", "x"); /* no key */
    assert_int_equal(check(h, 5, acc), -EINVAL);
    const http_header_t two_keys[] = {H("Upgrade", "websocket"), H("Connection", "Upgrade"),
                                      H("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                                      H("Sec-WebSocket-Key", "AAAAAAAAAAAAAAAAAAAAAA=="),
                                      H("Sec-WebSocket-Version", "13")};
    assert_int_equal(check(two_keys, 5, acc), -EINVAL);
}

/* --- RFC 6455 section 5.7 examples ---------------------------------------------------------- */

static void test_rfc_examples(void **state)
{
    (void)state;
    got_t g;
    int code;
    /* A single-frame masked text message "Hello" */
    const uint8_t hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    assert_int_equal(feed_all(hello, sizeof(hello), &g, &code), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.opcode[0], HTTP_WS_TEXT);
    assert_int_equal(g.len[0], 5);
    assert_memory_equal(g.data[0], "Hello", 5);
    got_free(&g);

    /* The fragmented "Hel" + "lo", masked (the RFC's example is unmasked: a server's) */
    uint8_t buf[70000 + 32];
    size_t n = frame(buf, 0x01, "Hel", 3, true);
    n += frame(buf + n, 0x80, "lo", 2, true);
    assert_int_equal(feed_all(buf, n, &g, &code), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.opcode[0], HTTP_WS_TEXT);
    assert_memory_equal(g.data[0], "Hello", 5);
    got_free(&g);

    /* The unmasked forms from a client are refused */
    const uint8_t unmasked[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    expect_close(unmasked, sizeof(unmasked), 1002);

    /* A masked ping "Hello", and the masked pong the RFC shows */
    const uint8_t ping[] = {0x89, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    const uint8_t pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    memcpy(buf, ping, sizeof(ping));
    memcpy(buf + sizeof(ping), pong, sizeof(pong));
    assert_int_equal(feed_all(buf, sizeof(ping) + sizeof(pong), &g, &code), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.opcode[0], HTTP_WS_PING);
    assert_int_equal(g.opcode[1], HTTP_WS_PONG);
    assert_memory_equal(g.data[0], "Hello", 5);
    assert_memory_equal(g.data[1], "Hello", 5);
    got_free(&g);

    /* 256 bytes binary (16-bit length) and 64 KiB binary (64-bit length) */
    static uint8_t payload[65536];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    n = frame(buf, 0x82, payload, 256, true);
    assert_int_equal(buf[1], 0x80 | 126);
    assert_int_equal(buf[2], 0x01);
    assert_int_equal(buf[3], 0x00);
    size_t n2 = frame(buf + n, 0x82, payload, 65536, true);
    assert_int_equal(buf[n + 1], 0x80 | 127);
    assert_int_equal(feed_all(buf, n + n2, &g, &code), 0);
    assert_int_equal(g.n, 2);
    assert_int_equal(g.len[0], 256);
    assert_int_equal(g.len[1], 65536);
    assert_memory_equal(g.data[0], payload, 256);
    assert_memory_equal(g.data[1], payload, 65536);
    got_free(&g);
}

/* Fragmented text with control frames in between, a binary message, an empty text message and
 * a close, at every chunk size from 1 to the whole; bytes after the close are ignored. */
static void test_stream_splits(void **state)
{
    (void)state;
    uint8_t buf[512];
    const char *kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"; /* κόσμε */
    size_t n = frame(buf, 0x01, kosme, 4, true);   /* splits ό in the middle */
    n += frame(buf + n, 0x89, "p1", 2, true);      /* ping inside the message */
    n += frame(buf + n, 0x00, kosme + 4, 0, true); /* empty continuation */
    n += frame(buf + n, 0x8A, "", 0, true);        /* (unsolicited) pong */
    n += frame(buf + n, 0x80, kosme + 4, strlen(kosme) - 4, true);
    n += frame(buf + n, 0x82, "\x00\x01\x02", 3, true);
    n += frame(buf + n, 0x81, "", 0, true);
    n += frame(buf + n, 0x88,
               "\x03\xe8"
               "bye",
               5, true);
    n += frame(buf + n, 0x05, "junk", 4, false); /* after the close: ignored */
    for (size_t chunk = 1; chunk <= n; chunk++) {
        got_t g;
        int code;
        assert_int_equal(feed(buf, n, chunk, 0, &g, &code), 0);
        assert_int_equal(g.n, 6);
        assert_int_equal(g.opcode[0], HTTP_WS_PING);
        assert_memory_equal(g.data[0], "p1", 2);
        assert_int_equal(g.opcode[1], HTTP_WS_PONG);
        assert_int_equal(g.len[1], 0);
        assert_int_equal(g.opcode[2], HTTP_WS_TEXT);
        assert_int_equal(g.len[2], strlen(kosme));
        assert_memory_equal(g.data[2], kosme, strlen(kosme));
        assert_int_equal(g.opcode[3], HTTP_WS_BINARY);
        assert_memory_equal(g.data[3], "\x00\x01\x02", 3);
        assert_int_equal(g.opcode[4], HTTP_WS_TEXT);
        assert_int_equal(g.len[4], 0);
        assert_int_equal(g.opcode[5], HTTP_WS_CLOSE);
        assert_int_equal(g.close_code[5], 1000);
        assert_string_equal(g.reason[5], "bye");
        got_free(&g);
    }
}

/* --- the receiving rules -------------------------------------------------------------------- */

static void test_masking_rsv_opcodes(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = frame(buf, 0x81, "hi", 2, false);
    expect_close(buf, n, 1002);
    n = frame(buf, 0x89, "", 0, false); /* an unmasked ping too */
    expect_close(buf, n, 1002);
    for (uint8_t rsv = 0x10; rsv <= 0x40; rsv <<= 1) {
        n = frame(buf, 0x81 | rsv, "hi", 2, true);
        expect_close(buf, n, 1002);
        n = frame(buf, 0x89 | rsv, "", 0, true);
        expect_close(buf, n, 1002);
    }
    const uint8_t unknown[] = {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF};
    for (size_t i = 0; i < sizeof(unknown); i++) {
        n = frame(buf, 0x80 | unknown[i], "x", 1, true);
        expect_close(buf, n, 1002);
    }
    /* a valid frame first, then the bad one: the first is still delivered */
    n = frame(buf, 0x81, "ok", 2, true);
    n += frame(buf + n, 0x83, "x", 1, true);
    got_t g;
    int code;
    assert_int_equal(feed_all(buf, n, &g, &code), -EPROTO);
    assert_int_equal(g.n, 1);
    assert_int_equal(code, 1002);
    got_free(&g);
    /* a 64-bit length with its top bit set */
    const uint8_t huge[] = {0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4};
    expect_close(huge, sizeof(huge), 1002);
}

static void test_control_frames(void **state)
{
    (void)state;
    static uint8_t payload[200], buf[256];
    memset(payload, 'a', sizeof(payload));
    size_t n = frame(buf, 0x89, payload, 125, true); /* the largest allowed */
    got_t g;
    int code;
    assert_int_equal(feed_all(buf, n, &g, &code), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.len[0], 125);
    got_free(&g);
    for (uint8_t op = 0x8; op <= 0xA; op++) {
        n = frame(buf, 0x80 | op, payload, 126, true); /* oversized (16-bit length) */
        expect_close(buf, n, 1002);
        n = frame(buf, op, "", 0, true); /* fragmented (no FIN) */
        expect_close(buf, n, 1002);
    }
    /* an oversized ping written with a 7-bit length would be 126: same rule, checked above; a
     * 64-bit length form of a small ping is also oversized-by-encoding: refused by len7 > 125 */
    const uint8_t ping64[] = {0x89, 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 'x'};
    expect_close(ping64, sizeof(ping64), 1002);
}

static void test_fragmentation_rules(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = frame(buf, 0x80, "lo", 2, true); /* continuation without a start */
    expect_close(buf, n, 1002);
    n = frame(buf, 0x00, "lo", 2, true);
    expect_close(buf, n, 1002);
    n = frame(buf, 0x01, "Hel", 3, true); /* a new text message inside a fragmented one */
    n += frame(buf + n, 0x81, "x", 1, true);
    expect_close(buf, n, 1002);
    n = frame(buf, 0x02, "Hel", 3, true); /* a new binary message inside one */
    n += frame(buf + n, 0x02, "x", 1, true);
    expect_close(buf, n, 1002);
    n = frame(buf, 0x81, "a", 1, true); /* complete message, then a stray continuation */
    n += frame(buf + n, 0x80, "b", 1, true);
    expect_close(buf, n, 1002);
}

static void test_message_size(void **state)
{
    (void)state;
    size_t max = WS_MAX_MESSAGE;
    uint8_t *payload = calloc(1, max + 1), *buf = malloc(2 * max + 64);
    assert_non_null(payload);
    assert_non_null(buf);
    got_t g;
    int code;
    /* exactly the limit in one frame, then in two fragments */
    size_t n = frame(buf, 0x82, payload, max, true);
    assert_int_equal(feed(buf, n, n, 0, &g, &code), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.len[0], max);
    got_free(&g);
    n = frame(buf, 0x02, payload, max / 2, true);
    n += frame(buf + n, 0x80, payload, max - max / 2, true);
    assert_int_equal(feed(buf, n, 4096, 0, &g, &code), 0);
    assert_int_equal(g.len[0], max);
    got_free(&g);
    /* one byte over: refused on the header alone, before any payload */
    n = frame(buf, 0x82, payload, max + 1, true);
    assert_int_equal(feed(buf, 14, 1, 0, &g, &code), -EMSGSIZE);
    assert_int_equal(code, 1009);
    got_free(&g);
    /* over across fragments (text too) */
    n = frame(buf, 0x01, payload, max / 2 + 1, true);
    n += frame(buf + n, 0x80, payload, max / 2, true);
    assert_int_equal(feed(buf, n, 65536, 0, &g, &code), -EMSGSIZE);
    assert_int_equal(code, 1009);
    got_free(&g);
    /* a smaller decoder limit */
    n = frame(buf, 0x81, "abcdef", 6, true);
    assert_int_equal(feed(buf, n, 1, 5, &g, &code), -EMSGSIZE);
    assert_int_equal(feed(buf, n, 1, 6, &g, &code), 0);
    got_free(&g);
    /* too many fragments, even empty ones */
    n = frame(buf, 0x02, "", 0, true);
    for (int i = 0; i < WS_MAX_FRAGMENTS; i++)
        n += frame(buf + n, 0x00, "", 0, true);
    assert_int_equal(feed(buf, n, n, 0, &g, &code), -EMSGSIZE);
    assert_int_equal(code, 1009);
    got_free(&g);
    free(payload);
    free(buf);
}

static void test_utf8_validator(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        bool ok;
    } cases[] = {
        {"plain ascii", true},
        {"\xc2\x80", true},
        {"\xdf\xbf", true},
        {"\xe0\xa0\x80", true},
        {"\xed\x9f\xbf", true},      /* U+D7FF */
        {"\xee\x80\x80", true},      /* U+E000 */
        {"\xef\xbf\xbf", true},      /* U+FFFF */
        {"\xf0\x90\x80\x80", true},  /* U+10000 */
        {"\xf4\x8f\xbf\xbf", true},  /* U+10FFFF */
        {"\xc0\x80", false},         /* overlong NUL */
        {"\xc1\xbf", false},         /* overlong */
        {"\xe0\x80\xaf", false},     /* overlong '/' */
        {"\xe0\x9f\xbf", false},     /* overlong */
        {"\xf0\x80\x80\xaf", false}, /* overlong */
        {"\xf0\x8f\xbf\xbf", false}, /* overlong */
        {"\xed\xa0\x80", false},     /* U+D800 surrogate */
        {"\xed\xbf\xbf", false},     /* U+DFFF surrogate */
        {"\xf4\x90\x80\x80", false}, /* U+110000 */
        {"\xf5\x80\x80\x80", false},
        {"\xff", false},
        {"\x80", false},         /* stray continuation */
        {"a\xc2", false},        /* truncated */
        {"\xe2\x82", false},     /* truncated */
        {"\xe2\x28\xa1", false}, /* bad continuation */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *s = cases[i].s;
        size_t len = strlen(s);
        /* whole, then byte by byte */
        http_ws_utf8_t v = {0};
        bool ok = http_ws_utf8_feed(&v, (const uint8_t *)s, len) == 0 && http_ws_utf8_complete(&v);
        assert_int_equal(ok, cases[i].ok);
        http_ws_utf8_t w = {0};
        int r = 0;
        for (size_t j = 0; j < len && r == 0; j++)
            r = http_ws_utf8_feed(&w, (const uint8_t *)s + j, 1);
        assert_int_equal(r == 0 && http_ws_utf8_complete(&w), cases[i].ok);
        /* in a text frame: 1007; in a binary frame: anything goes */
        uint8_t buf[32];
        size_t n = frame(buf, 0x81, s, len, true);
        got_t g;
        int code;
        if (cases[i].ok) {
            assert_int_equal(feed_all(buf, n, &g, &code), 0);
            assert_int_equal(g.n, 1);
            got_free(&g);
        } else {
            expect_close(buf, n, 1007);
        }
        n = frame(buf, 0x82, s, len, true);
        assert_int_equal(feed_all(buf, n, &g, &code), 0);
        got_free(&g);
    }
}

static void test_utf8_across_fragments(void **state)
{
    (void)state;
    uint8_t buf[64];
    got_t g;
    int code;
    /* U+10000 split 1 + 3 bytes over two fragments: valid */
    size_t n = frame(buf, 0x01, "\xf0", 1, true);
    n += frame(buf + n, 0x80, "\x90\x80\x80", 3, true);
    assert_int_equal(feed_all(buf, n, &g, &code), 0);
    assert_int_equal(g.len[0], 4);
    got_free(&g);
    /* a message ending inside a character */
    n = frame(buf, 0x01, "ab", 2, true);
    n += frame(buf + n, 0x80, "\xe2\x82", 2, true);
    expect_close(buf, n, 1007);
    /* an invalid first fragment fails at once, before the message ends */
    n = frame(buf, 0x01, "a\xed\xa0", 3, true);
    assert_int_equal(feed(buf, n, 1, 0, &g, &code), -EILSEQ);
    assert_int_equal(code, 1007);
    /* the surrogate split across fragments */
    n = frame(buf, 0x01, "\xed", 1, true);
    n += frame(buf + n, 0x80, "\xa0\x80", 2, true);
    expect_close(buf, n, 1007);
    /* a ping between the halves of a character does not disturb the validator */
    n = frame(buf, 0x01, "\xe2", 1, true);
    n += frame(buf + n, 0x89, "\xff", 1, true);
    n += frame(buf + n, 0x80, "\x82\xac", 2, true);
    assert_int_equal(feed_all(buf, n, &g, &code), 0);
    assert_int_equal(g.n, 2);
    assert_memory_equal(g.data[1], "\xe2\x82\xac", 3);
    got_free(&g);
}

static void test_close_frames(void **state)
{
    (void)state;
    uint8_t buf[256], pl[130];
    got_t g;
    int code;
    size_t n = frame(buf, 0x88, "", 0, true);
    assert_int_equal(feed_all(buf, n, &g, &code), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.close_code[0], HTTP_WS_NO_STATUS);
    got_free(&g);
    n = frame(buf, 0x88, "\x03", 1, true); /* one byte: no room for a code */
    expect_close(buf, n, 1002);
    const int valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                         1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        pl[0] = (uint8_t)(valid[i] >> 8), pl[1] = (uint8_t)valid[i];
        n = frame(buf, 0x88, pl, 2, true);
        assert_int_equal(feed_all(buf, n, &g, &code), 0);
        assert_int_equal(g.close_code[0], valid[i]);
        assert_string_equal(g.reason[0], "");
        got_free(&g);
    }
    const int invalid[] = {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        pl[0] = (uint8_t)(invalid[i] >> 8), pl[1] = (uint8_t)invalid[i];
        n = frame(buf, 0x88, pl, 2, true);
        expect_close(buf, n, 1002);
    }
    /* reasons: valid UTF-8 of the largest size, invalid UTF-8 */
    pl[0] = 0x03, pl[1] = 0xe8;
    memset(pl + 2, 'r', 123);
    n = frame(buf, 0x88, pl, 125, true);
    assert_int_equal(feed_all(buf, n, &g, &code), 0);
    assert_int_equal(strlen(g.reason[0]), 123);
    got_free(&g);
    memcpy(pl + 2, "\xce\xba\xe1\xbd", 4);
    n = frame(buf, 0x88, pl, 6, true);
    expect_close(buf, n, 1007);
    /* a close inside a fragmented message ends the stream too */
    n = frame(buf, 0x01, "half", 4, true);
    n += frame(buf + n, 0x88, "\x03\xe9", 2, true);
    n += frame(buf + n, 0x80, "rest", 4, true);
    assert_int_equal(feed_all(buf, n, &g, &code), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.close_code[0], 1001);
    got_free(&g);
}

static void test_sticky_and_buffer(void **state)
{
    (void)state;
    http_ws_dec_t d;
    http_ws_msg_t m;
    size_t used;
    uint8_t buf[64];
    size_t n = frame(buf, 0x81, "x", 1, false);
    http_ws_dec_init(&d, 0);
    assert_int_equal(http_ws_decode(&d, buf, n, &used, &m), -EPROTO);
    assert_int_equal(d.close_code, 1002);
    n = frame(buf, 0x81, "x", 1, true); /* a good frame afterwards changes nothing */
    assert_int_equal(http_ws_decode(&d, buf, n, &used, &m), -EPROTO);
    assert_int_equal(used, 0);
    http_ws_dec_free(&d);
    http_ws_dec_free(NULL);

    /* a large message's buffer is released on the next call; a small one is kept */
    size_t big = 200 * 1024;
    uint8_t *payload = calloc(1, big), *wire = malloc(big + 16);
    assert_non_null(payload);
    assert_non_null(wire);
    n = frame(wire, 0x82, payload, big, true);
    http_ws_dec_init(&d, 0);
    assert_int_equal(http_ws_decode(&d, wire, n, &used, &m), 1);
    assert_int_equal(used, n);
    assert_int_equal(m.len, big);
    assert_true(d.msg_cap > WS_KEEP_BUFFER);
    assert_int_equal(http_ws_decode(&d, wire, 0, &used, &m), 0);
    assert_int_equal(d.msg_cap, 0);
    n = frame(wire, 0x82, payload, 100, true);
    assert_int_equal(http_ws_decode(&d, wire, n, &used, &m), 1);
    assert_int_equal(http_ws_decode(&d, wire, 0, &used, &m), 0);
    assert_true(d.msg_cap > 0 && d.msg_cap <= WS_KEEP_BUFFER);
    /* two frames in one buffer: one message per call, *used says where the next starts */
    n = frame(wire, 0x81, "one", 3, true);
    size_t n1 = n;
    n += frame(wire + n, 0x81, "two", 3, true);
    assert_int_equal(http_ws_decode(&d, wire, n, &used, &m), 1);
    assert_int_equal(used, n1);
    assert_memory_equal(m.data, "one", 3);
    assert_int_equal(http_ws_decode(&d, wire + used, n - used, &used, &m), 1);
    assert_memory_equal(m.data, "two", 3);
    http_ws_dec_free(&d);
    free(payload);
    free(wire);
}

/* --- encoder -------------------------------------------------------------------------------- */

static void test_encoder(void **state)
{
    (void)state;
    uint8_t out[HTTP_WS_MAX_CLOSE_FRAME + 8];
    /* section 5.7: unmasked "Hello", and an unmasked ping "Hello" */
    int h = http_ws_header(out, HTTP_WS_TEXT, true, 5);
    assert_int_equal(h, 2);
    assert_memory_equal(out, "\x81\x05", 2);
    assert_int_equal(http_ws_control(out, HTTP_WS_PING, "Hello", 5), 7);
    assert_memory_equal(out, "\x89\x05Hello", 7);
    assert_int_equal(http_ws_control(out, HTTP_WS_PONG, NULL, 0), 2);
    assert_memory_equal(out, "\x8a\x00", 2);
    /* the fragmented "Hel" + "lo" of the RFC */
    assert_int_equal(http_ws_header(out, HTTP_WS_TEXT, false, 3), 2);
    assert_int_equal(out[0], 0x01);
    assert_int_equal(http_ws_header(out, HTTP_WS_CONT, true, 2), 2);
    assert_int_equal(out[0], 0x80);
    /* 256 bytes and 64 KiB binary */
    assert_int_equal(http_ws_header(out, HTTP_WS_BINARY, true, 256), 4);
    assert_memory_equal(out, "\x82\x7e\x01\x00", 4);
    assert_int_equal(http_ws_header(out, HTTP_WS_BINARY, true, 65536), 10);
    assert_memory_equal(out, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_int_equal(http_ws_header(out, HTTP_WS_BINARY, true, 125), 2);
    assert_int_equal(http_ws_header(out, HTTP_WS_BINARY, true, 126), 4);
    assert_int_equal(http_ws_header(out, HTTP_WS_BINARY, true, 65535), 4);
    /* refused */
    assert_int_equal(http_ws_header(out, 3, true, 1), -EINVAL);
    assert_int_equal(http_ws_header(out, HTTP_WS_PING, false, 1), -EINVAL);
    assert_int_equal(http_ws_header(out, HTTP_WS_PING, true, 126), -EINVAL);
    assert_int_equal(http_ws_header(out, HTTP_WS_BINARY, true, 1ull << 63), -EINVAL);
    assert_int_equal(http_ws_control(out, HTTP_WS_TEXT, "x", 1), -EINVAL);
    assert_int_equal(http_ws_control(out, HTTP_WS_PING, out, 126), -EINVAL);

    /* close frames */
    assert_int_equal(http_ws_close_frame(out, 0, NULL, 0), 2);
    assert_memory_equal(out, "\x88\x00", 2);
    assert_int_equal(http_ws_close_frame(out, 1002, "bad", 3), 7);
    assert_memory_equal(out,
                        "\x88\x05\x03\xea"
                        "bad",
                        7);
    assert_int_equal(http_ws_close_frame(out, 1009, NULL, 0), 4);
    assert_memory_equal(out, "\x88\x02\x03\xf1", 4);
    char reason[HTTP_WS_MAX_REASON + 1];
    memset(reason, 'r', sizeof(reason));
    assert_int_equal(http_ws_close_frame(out, 4000, reason, HTTP_WS_MAX_REASON), 127);
    assert_int_equal(out[1], 125);
    assert_int_equal(http_ws_close_frame(out, 4000, reason, HTTP_WS_MAX_REASON + 1), -EINVAL);
    assert_int_equal(http_ws_close_frame(out, 1005, NULL, 0), -EINVAL);
    assert_int_equal(http_ws_close_frame(out, 1006, NULL, 0), -EINVAL);
    assert_int_equal(http_ws_close_frame(out, 5000, NULL, 0), -EINVAL);
    assert_int_equal(http_ws_close_frame(out, 1000, "\xc0\x80", 2), -EINVAL);
    assert_int_equal(http_ws_close_frame(out, 0, "x", 1), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_rfc),
        cmocka_unit_test(test_handshake),
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_stream_splits),
        cmocka_unit_test(test_masking_rsv_opcodes),
        cmocka_unit_test(test_control_frames),
        cmocka_unit_test(test_fragmentation_rules),
        cmocka_unit_test(test_message_size),
        cmocka_unit_test(test_utf8_validator),
        cmocka_unit_test(test_utf8_across_fragments),
        cmocka_unit_test(test_close_frames),
        cmocka_unit_test(test_sticky_and_buffer),
        cmocka_unit_test(test_encoder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
