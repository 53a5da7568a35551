/* members-internal.h: what members.c (the table, gossip, lookups) and members_record.c (the
 * record codec and msgpack helpers) share. Not for other modules. */
#ifndef P2P_NODE_MEMBERS_INTERNAL_H
#define P2P_NODE_MEMBERS_INTERNAL_H

#include <msgpack.h>

#include "node/members.h"

#define SIGN_DOMAIN     "p2p-admin node record v1"
#define SIGN_DOMAIN_LEN (sizeof(SIGN_DOMAIN) - 1)
#define RECORD_VERSION  1
#define BODY_FIELDS     11

/* msgpack packer targets: a growable p2p_buf_t, or a fixed buffer (len = cap + 1 on overflow). */
typedef struct bw {
    p2p_buf_t *b;
    bool overflow;
} bw_t;

typedef struct fbuf {
    uint8_t *p;
    size_t len, cap;
} fbuf_t;

/* Packer write callbacks for bw_t and fbuf_t. */
int members_buf_write(void *data, const char *p, size_t n);
int members_fbuf_write(void *data, const char *p, size_t n);

/* Packs a C string as str, bytes as bin. */
void members_pack_str(msgpack_packer *pk, const char *s);
void members_pack_bin(msgpack_packer *pk, const void *p, size_t n);

/* True when p[0..n) holds no control characters. */
bool members_printable(const char *p, size_t n);

/* Scans (p2p_msgpack_scan with these limits) then unpacks exactly one object filling buf into a
 * zone the caller destroys on success. Returns 0, -EBADMSG or -ENOMEM. */
int members_unpack(const uint8_t *buf, size_t len, size_t max_len, size_t depth, uint64_t objs,
                   msgpack_zone *zone, msgpack_object *obj);

/* Typed reads: a printable str shorter than cap, a positive integer, an array of at most max such
 * strings copied with stride cap. Return false on any mismatch. */
bool members_get_str(const msgpack_object *o, char *out, size_t cap);
bool members_get_u64(const msgpack_object *o, uint64_t *v);
bool members_get_strs(const msgpack_object *o, char *out, size_t cap, size_t max, uint8_t *n);

#endif
