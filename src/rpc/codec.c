/* codec.c: msgpack framing for RPC streams. A bounded scanner checks each object's structure and
 * declared lengths before msgpack-c sees it, because msgpack-c allocates an array or map from its
 * declared length (an array32 of 2^32-1 elements with no data would reserve ~100 GB). Only a
 * complete frame within the limits is unpacked, from a private copy that its objects point into.
 * No I/O, no clock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc-internal.h"

int rpc_frame_scan(const uint8_t *buf, size_t len, size_t *frame_len)
{
    static const p2p_msgpack_limits_t lim = {RPC_MAX_FRAME, RPC_MAX_DEPTH, RPC_MAX_OBJECTS};
    return p2p_msgpack_scan(buf, len, &lim, frame_len);
}

void rpc_frame_free(rpc_frame_t *f)
{
    if (!f) return;
    msgpack_unpacked_destroy(&f->unp);
    free(f->bytes);
    free(f);
}

void rpc_decoder_init(rpc_decoder_t *d)
{
    p2p_buf_init(&d->in, RPC_MAX_FRAME);
    d->off = 0;
}

void rpc_decoder_free(rpc_decoder_t *d)
{
    if (d) p2p_buf_free(&d->in);
}

int rpc_decoder_feed(rpc_decoder_t *d, const uint8_t *buf, size_t len)
{
    if (d->off) { /* drop the frames already taken, once per feed rather than per frame */
        p2p_buf_consume(&d->in, d->off);
        d->off = 0;
    }
    int r = p2p_buf_append(&d->in, buf, len);
    if (r == -E2BIG) return -EMSGSIZE;
    return r;
}

int rpc_decoder_next(rpc_decoder_t *d, rpc_frame_t **out)
{
    size_t flen = 0;
    *out = NULL;
    if (d->in.len == d->off) return 0;
    const uint8_t *start = d->in.data + d->off;
    int r = rpc_frame_scan(start, d->in.len - d->off, &flen);
    if (r == -EAGAIN) return 0;
    if (r < 0) return r;
    rpc_frame_t *f = calloc(1, sizeof(*f));
    if (!f) return -ENOMEM;
    f->bytes = malloc(flen);
    if (!f->bytes) goto fail;
    memcpy(f->bytes, start, flen);
    f->len = flen;
    msgpack_unpacked_init(&f->unp);
    /* a zone sized for small frames (msgpack-c's default chunk is 8 KiB); it grows when needed.
     * Strings and binaries point into f->bytes, so a big frame (a file chunk) needs no big zone. */
    if (!(f->unp.zone = msgpack_zone_new(flen < 256 ? 512 : P2P_MIN(2 * flen, 65536)))) goto fail;
    size_t off = 0;
    msgpack_unpack_return ur =
        msgpack_unpack((const char *)f->bytes, flen, &off, f->unp.zone, &f->unp.data);
    if (ur != MSGPACK_UNPACK_SUCCESS || off != flen) {
        rpc_frame_free(f);
        return ur == MSGPACK_UNPACK_NOMEM_ERROR ? -ENOMEM : -EBADMSG;
    }
    d->off += flen;
    if (d->off == d->in.len) d->in.len = d->off = 0;
    *out = f;
    return 1;
fail:
    rpc_frame_free(f);
    return -ENOMEM;
}

void rpc_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void rpc_pack_error(msgpack_packer *pk, int code, const char *message, const char *param)
{
    msgpack_pack_map(pk, param ? 3 : 2);
    rpc_pack_cstr(pk, "code");
    msgpack_pack_int64(pk, code);
    rpc_pack_cstr(pk, "message");
    rpc_pack_cstr(pk, message);
    if (param) {
        rpc_pack_cstr(pk, "data");
        msgpack_pack_map(pk, 1);
        rpc_pack_cstr(pk, "param");
        rpc_pack_cstr(pk, param);
    }
}

bool rpc_str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n &&
           memcmp(o->via.str.ptr, s, n) == 0;
}

bool rpc_utf8_valid(const char *str, size_t len)
{
    const uint8_t *s = (const uint8_t *)str;
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        if (c == 0) return false;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (len - i <= n) return false;
        for (size_t j = 1; j <= n; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        /* overlong forms, surrogates, beyond U+10FFFF */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        i += n + 1;
    }
    return true;
}

size_t rpc_packed_size_bound(const msgpack_object *o)
{
    size_t n = 9; /* the largest header or scalar */
    switch (o->type) {
    case MSGPACK_OBJECT_STR:
        return n + o->via.str.size;
    case MSGPACK_OBJECT_BIN:
        return n + o->via.bin.size;
    case MSGPACK_OBJECT_EXT:
        return n + o->via.ext.size;
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++)
            n += rpc_packed_size_bound(&o->via.array.ptr[i]);
        return n;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++)
            n += rpc_packed_size_bound(&o->via.map.ptr[i].key) +
                 rpc_packed_size_bound(&o->via.map.ptr[i].val);
        return n;
    default:
        return n;
    }
}

void rpc_sbuffer_init_for(msgpack_sbuffer *sb, size_t n)
{
    msgpack_sbuffer_init(sb);
    if (n <= MSGPACK_SBUFFER_INIT_SIZE) return;
    if ((sb->data = malloc(n))) sb->alloc = n;
}
