/* mpscan.c: a bounded msgpack structure scanner. It checks one object's framing, declared lengths,
 * nesting depth and object count without allocating, before msgpack-c sees the bytes: msgpack-c
 * reserves an array or map from its declared length, so an array32 of 2^32-1 elements with no data
 * behind it would reserve ~100 GB. No I/O. */
#include <errno.h>
#include <string.h>

#include "base/base.h"

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The shape of an object as told by its first byte. The declared count n is the length field
 * when there is one, else `fixed`; a container has n * kids children, anything else n payload
 * bytes after its header. */
typedef struct kind {
    uint8_t lenbytes; /* width of the length field that follows the first byte */
    uint8_t extra;    /* header bytes after the length field (the ext type) */
    uint32_t fixed;   /* payload bytes, or count of a fixarray/fixmap */
    uint8_t kids;     /* 0 scalar or blob, 1 array, 2 map */
} kind_t;

/* Fills k for first byte b. Returns 0, or -EBADMSG for 0xc1 (never used). */

static int classify(uint8_t b, kind_t *k)
{
    memset(k, 0, sizeof(*k));
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) return 0;
    if (b >= 0x80 && b <= 0x8f) {
        k->kids = 2, k->fixed = b & 0x0f;
        return 0;
    }
    if (b >= 0x90 && b <= 0x9f) {
        k->kids = 1, k->fixed = b & 0x0f;
        return 0;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        k->fixed = b & 0x1f;
        return 0;
    }
    switch (b) {
    case 0xc4:
    case 0xd9:
        k->lenbytes = 1;
        return 0;
    case 0xc5:
    case 0xda:
        k->lenbytes = 2;
        return 0;
    case 0xc6:
    case 0xdb:
        k->lenbytes = 4;
        return 0;
    case 0xc7:
        k->lenbytes = 1, k->extra = 1;
        return 0;
    case 0xc8:
        k->lenbytes = 2, k->extra = 1;
        return 0;
    case 0xc9:
        k->lenbytes = 4, k->extra = 1;
        return 0;
    case 0xca:
        k->fixed = 4;
        return 0;
    case 0xcb:
        k->fixed = 8;
        return 0;
    case 0xcc:
    case 0xd0:
        k->fixed = 1;
        return 0;
    case 0xcd:
    case 0xd1:
        k->fixed = 2;
        return 0;
    case 0xce:
    case 0xd2:
        k->fixed = 4;
        return 0;
    case 0xcf:
    case 0xd3:
        k->fixed = 8;
        return 0;
    case 0xd4:
        k->fixed = 2;
        return 0;
    case 0xd5:
        k->fixed = 3;
        return 0;
    case 0xd6:
        k->fixed = 5;
        return 0;
    case 0xd7:
        k->fixed = 9;
        return 0;
    case 0xd8:
        k->fixed = 17;
        return 0;
    case 0xdc:
        k->kids = 1, k->lenbytes = 2;
        return 0;
    case 0xdd:
        k->kids = 1, k->lenbytes = 4;
        return 0;
    case 0xde:
        k->kids = 2, k->lenbytes = 2;
        return 0;
    case 0xdf:
        k->kids = 2, k->lenbytes = 4;
        return 0;
    default:
        return -EBADMSG; /* 0xc1: never used */
    }
}

/* Bytes are needed up to `end`: -EMSGSIZE when that passes the frame limit, else -EAGAIN when they
 * have not arrived yet, else 0. */
static int need(uint64_t end, size_t len, size_t max_len)
{
    if (end > max_len) return -EMSGSIZE;
    return end > len ? -EAGAIN : 0;
}

int p2p_msgpack_scan(const uint8_t *buf, size_t len, const p2p_msgpack_limits_t *lim,
                     size_t *frame_len)
{
    uint64_t left[P2P_MSGPACK_MAX_DEPTH + 1]; /* children still expected per level; [0] = root */
    if (lim->max_depth > P2P_MSGPACK_MAX_DEPTH) return -EINVAL;
    size_t depth = 0;
    uint64_t pos = 0, objects = 0;
    int r;

    left[0] = 1;
    for (;;) {
        while (left[depth] == 0) {
            if (depth == 0) {
                *frame_len = (size_t)pos;
                return 0;
            }
            depth--;
        }
        if ((r = need(pos + 1, len, lim->max_len)) < 0) return r;
        kind_t k;
        if (classify(buf[pos], &k) < 0) return -EBADMSG;
        left[depth]--;
        if (++objects > lim->max_objects) return -E2BIG;
        uint64_t hdr = 1 + k.lenbytes + k.extra;
        if ((r = need(pos + hdr, len, lim->max_len)) < 0) return r;
        uint64_t n = k.lenbytes ? be(buf + pos + 1, k.lenbytes) : k.fixed;
        if (k.kids) {
            /* Each child is an object of at least one byte: refuse counts no frame could hold. */
            uint64_t kids = n * k.kids;
            if (kids > lim->max_objects - objects) return -E2BIG;
            if (kids > lim->max_len - (pos + hdr)) return -EMSGSIZE;
            pos += hdr;
            if (kids > 0) {
                if (depth + 1 > lim->max_depth) return -ELOOP;
                left[++depth] = kids;
            }
            continue;
        }
        if ((r = need(pos + hdr + n, len, lim->max_len)) < 0) return r;
        pos += hdr + n;
    }
}
