/* base.h: small helpers shared by every module (hex, base64, clocks, bounded buffers).
 * No project logic lives here. Functions return 0 or a count on success, negative errno on failure.
 */
#ifndef P2P_BASE_H
#define P2P_BASE_H

#include <stddef.h>
#include <stdint.h>

#define P2P_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define P2P_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define P2P_MAX(a, b)    ((a) > (b) ? (a) : (b))

/* Writes 2*len lowercase hex digits and a NUL to out (size >= 2*len+1). */
void p2p_hex_encode(char *out, const uint8_t *in, size_t len);

/* Decodes exactly outlen bytes from hex; returns 0, or -EINVAL on a bad digit or a length mismatch.
 */
int p2p_hex_decode(uint8_t *out, size_t outlen, const char *hex, size_t hexlen);

/* Decodes standard base64 (padding optional, surrounding whitespace ignored) into out.
 * Returns the decoded length, -EINVAL on bad input or -ENOSPC when out is too small. */
int p2p_b64_decode(uint8_t *out, size_t cap, const char *in, size_t inlen);

/* Encodes len bytes as standard base64 with padding into out (NUL-terminated).
 * Returns the string length or -ENOSPC. */
int p2p_b64_encode(char *out, size_t cap, const uint8_t *in, size_t len);

/* Writes v in decimal and a NUL to out (size >= P2P_U64_DEC_MAX); returns the digit count. */
#define P2P_U64_DEC_MAX 21
size_t p2p_u64_dec(char *out, uint64_t v);

/* Big-endian 64-bit integers in byte buffers (wire formats). */
void p2p_put_be64(uint8_t *p, uint64_t v);
uint64_t p2p_get_be64(const uint8_t *p);

/* Monotonic clock in milliseconds (for adapters; protocol cores take `now` as a parameter). */
uint64_t p2p_mono_ms(void);

/* Wall clock in milliseconds since the Unix epoch (for record timestamps and logs only). */
uint64_t p2p_wall_ms(void);

/* A growable byte buffer that refuses to grow past `limit`. */
typedef struct p2p_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t limit;
} p2p_buf_t;

/* Initialises an empty buffer that may hold at most limit bytes. */
void p2p_buf_init(p2p_buf_t *b, size_t limit);

/* Appends n bytes; returns 0, -ENOMEM, or -E2BIG when the limit would be passed (buffer unchanged).
 */
int p2p_buf_append(p2p_buf_t *b, const void *p, size_t n);

/* Makes room for n more bytes without changing len; returns 0, -ENOMEM or -E2BIG past the limit. */
int p2p_buf_reserve(p2p_buf_t *b, size_t n);

/* Drops the first n bytes (n <= len). */
void p2p_buf_consume(p2p_buf_t *b, size_t n);

/* Frees the storage; the buffer may be reused after p2p_buf_init. Accepts NULL. */
void p2p_buf_free(p2p_buf_t *b);

/* Limits for p2p_msgpack_scan(). */
#define P2P_MSGPACK_MAX_DEPTH 64 /* deepest nesting any caller may allow */
typedef struct p2p_msgpack_limits {
    size_t max_len;       /* bytes one object may span */
    size_t max_depth;     /* nesting levels (<= P2P_MSGPACK_MAX_DEPTH) */
    uint64_t max_objects; /* objects in all, containers included */
} p2p_msgpack_limits_t;

/* Scans the msgpack object at the start of buf without allocating: checks its framing, that every
 * declared container count could fit in max_len, the depth and the object count. Returns 0 with
 * *frame_len = the object's size; -EAGAIN when more bytes are needed (within max_len); -EMSGSIZE
 * past max_len; -E2BIG too many objects; -ELOOP too deep; -EBADMSG for the unused byte 0xc1. */
int p2p_msgpack_scan(const uint8_t *buf, size_t len, const p2p_msgpack_limits_t *lim,
                     size_t *frame_len);

#endif
