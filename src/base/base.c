/* base.c: hex and base64 codecs, clocks and the bounded byte buffer. */
#include "base/base.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

void p2p_hex_encode(char *out, const uint8_t *in, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * len] = '\0';
}

size_t p2p_u64_dec(char *out, uint64_t v)
{
    char d[P2P_U64_DEC_MAX], *q = d + sizeof(d);
    do
        *--q = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    size_t n = (size_t)(d + sizeof(d) - q);
    memcpy(out, q, n);
    out[n] = '\0';
    return n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int p2p_hex_decode(uint8_t *out, size_t outlen, const char *hex, size_t hexlen)
{
    if (hexlen != 2 * outlen) return -EINVAL;
    for (size_t i = 0; i < outlen; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -EINVAL;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int p2p_b64_decode(uint8_t *out, size_t cap, const char *in, size_t inlen)
{
    while (inlen > 0 && (in[inlen - 1] == '\n' || in[inlen - 1] == '\r' || in[inlen - 1] == ' ' ||
                         in[inlen - 1] == '\t'))
        inlen--;
    while (inlen > 0 && (*in == ' ' || *in == '\t' || *in == '\n' || *in == '\r')) {
        in++;
        inlen--;
    }
    if (inlen == 0) return -EINVAL;
    if (sodium_init() < 0) return -EIO;
    size_t need = inlen / 4 * 3 + 3;
    uint8_t *tmp = malloc(need);
    if (!tmp) return -ENOMEM;
    size_t got = 0;
    const char *end = NULL;
    int variant = in[inlen - 1] == '=' ? sodium_base64_VARIANT_ORIGINAL
                                       : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
    int rc = sodium_base642bin(tmp, need, in, inlen, NULL, &got, &end, variant);
    if (rc != 0 || end != in + inlen) {
        free(tmp);
        return -EINVAL;
    }
    if (got > cap) {
        free(tmp);
        return -ENOSPC;
    }
    memcpy(out, tmp, got);
    sodium_memzero(tmp, need);
    free(tmp);
    return (int)got;
}

int p2p_b64_encode(char *out, size_t cap, const uint8_t *in, size_t len)
{
    if (sodium_init() < 0) return -EIO;
    size_t need = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    if (cap < need) return -ENOSPC;
    sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_ORIGINAL);
    return (int)strlen(out);
}

void p2p_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t p2p_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

uint64_t p2p_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t p2p_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void p2p_buf_init(p2p_buf_t *b, size_t limit)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->limit = limit;
}

int p2p_buf_reserve(p2p_buf_t *b, size_t n)
{
    if (n > b->limit || b->len > b->limit - n) return -E2BIG;
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n)
            ncap *= 2;
        if (ncap > b->limit) ncap = b->limit;
        uint8_t *nd = realloc(b->data, ncap);
        if (!nd) return -ENOMEM;
        b->data = nd;
        b->cap = ncap;
    }
    return 0;
}

int p2p_buf_append(p2p_buf_t *b, const void *p, size_t n)
{
    int r = p2p_buf_reserve(b, n);
    if (r < 0) return r;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void p2p_buf_consume(p2p_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void p2p_buf_free(p2p_buf_t *b)
{
    if (!b) return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
