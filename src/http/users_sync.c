/* users_sync.c: the pure half of replicating users, login sessions and logged-out tokens
 * between nodes (docs/auth.md): bounded row batches, the row codec, bucket digests, merges into a
 * database and collection of the rows of differing buckets. users_peer.c carries them over the
 * peer channel with two mechanisms:
 *   push         a change made here goes within HTTP_SYNC_PUSH_DELAY_MS to up to
 *                HTTP_SYNC_PUSH_MAX live nodes (node.auth_push); a node that takes a row it did
 *                not have passes it on to HTTP_SYNC_RELAY_FANOUT more, so a change floods the
 *                network in a few hops and each node forwards it at most once;
 *   anti-entropy every HTTP_SYNC_INTERVAL_MS a node sends its bucket digests to one random live
 *                node (node.auth_sync), which answers with its digests and the rows of the
 *                buckets that differ; the caller merges them and pushes its own rows of those
 *                buckets back. This heals lost pushes, partitions and nodes that were down.
 * Merges are last-writer-wins (users) or monotone (sessions, revoked tokens), so order and
 * repetition do not matter. No I/O, no clock: times come in as parameters. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "http/users-internal.h"

/* One row packed is at most ~400 bytes (names and jtis <= 64, hash < 128, ids, 6 integers); a
 * full message stays far below the frame limit. */
_Static_assert(HTTP_SYNC_MAX_ROWS * 512 + HTTP_SYNC_DIGEST_LEN + 1024 < RPC_MAX_FRAME,
               "a replication message must fit one RPC frame");

/* --- batches ------------------------------------------------------------------------------- */

void users_batch_init(users_batch_t *b)
{
    memset(b, 0, sizeof(*b));
}

void users_batch_free(users_batch_t *b)
{
    free(b->users);
    free(b->fams);
    free(b->revs);
    users_batch_init(b);
}

size_t users_batch_rows(const users_batch_t *b)
{
    return b->n_users + b->n_fams + b->n_revs;
}

/* Room for one more element in an array of n (capacity *cap) elements of size sz. */
static int room(void **arr, size_t n, size_t *cap, size_t sz)
{
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 8;
    if (c > HTTP_SYNC_MAX_ROWS) c = HTTP_SYNC_MAX_ROWS;
    void *p = realloc(*arr, c * sz);
    if (!p) return -ENOMEM;
    *arr = p;
    *cap = c;
    return 0;
}

#define BATCH_ADD(b, arr, n, cap, row)                                                             \
    do {                                                                                           \
        if (users_batch_rows(b) >= HTTP_SYNC_MAX_ROWS) return -ENOSPC;                             \
        if (room((void **)&(b)->arr, (b)->n, &(b)->cap, sizeof(*(b)->arr)) < 0) return -ENOMEM;    \
        (b)->arr[(b)->n++] = *(row);                                                               \
        return 0;                                                                                  \
    } while (0)

int users_batch_add_user(users_batch_t *b, const http_user_t *u)
{
    BATCH_ADD(b, users, n_users, cap_users, u);
}

int users_batch_add_family(users_batch_t *b, const http_family_t *f)
{
    BATCH_ADD(b, fams, n_fams, cap_fams, f);
}

int users_batch_add_revoked(users_batch_t *b, const http_revoked_t *r)
{
    BATCH_ADD(b, revs, n_revs, cap_revs, r);
}

/* --- the row codec --------------------------------------------------------------------------
 * user     [name, role ("none" for a tombstone), hash, version, updated_ms, tokens_after,
 *           disabled, deleted]
 * session  [id (bin 16), user, counter, token_hash (bin 32), created, expires, revoked]
 * revoked  [jti, expires] */

static void pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void pack_bool(msgpack_packer *pk, bool v)
{
    v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

void users_sync_pack_rows(msgpack_packer *pk, const users_batch_t *b)
{
    pack_str(pk, "users");
    msgpack_pack_array(pk, b->n_users);
    for (size_t i = 0; i < b->n_users; i++) {
        const http_user_t *u = &b->users[i];
        msgpack_pack_array(pk, 8);
        pack_str(pk, u->name);
        pack_str(pk, u->deleted ? "none" : rpc_role_name(u->role));
        pack_str(pk, u->deleted ? "" : u->hash);
        msgpack_pack_uint64(pk, u->version);
        msgpack_pack_uint64(pk, u->updated_ms);
        msgpack_pack_uint64(pk, u->tokens_after);
        pack_bool(pk, u->disabled);
        pack_bool(pk, u->deleted);
    }
    pack_str(pk, "families");
    msgpack_pack_array(pk, b->n_fams);
    for (size_t i = 0; i < b->n_fams; i++) {
        const http_family_t *f = &b->fams[i];
        msgpack_pack_array(pk, 7);
        msgpack_pack_bin_with_body(pk, f->id, HTTP_FAMILY_ID_LEN);
        pack_str(pk, f->user);
        msgpack_pack_uint64(pk, f->counter);
        msgpack_pack_bin_with_body(pk, f->token_hash, HTTP_TOKEN_HASH_LEN);
        msgpack_pack_uint64(pk, f->created);
        msgpack_pack_uint64(pk, f->expires);
        pack_bool(pk, f->revoked);
    }
    pack_str(pk, "revoked");
    msgpack_pack_array(pk, b->n_revs);
    for (size_t i = 0; i < b->n_revs; i++) {
        msgpack_pack_array(pk, 2);
        pack_str(pk, b->revs[i].jti);
        msgpack_pack_uint64(pk, b->revs[i].expires);
    }
}

/* A string element into out (cap bytes with the NUL): false unless it is a str that fits, with
 * no NUL inside. */
static bool get_str(const msgpack_object *o, char *out, size_t cap)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= cap) return false;
    /* an empty str may come with a NULL ptr: memchr and memcpy must not see it */
    if (o->via.str.size > 0 && memchr(o->via.str.ptr, 0, o->via.str.size)) return false;
    if (o->via.str.size > 0) memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = 0;
    return true;
}

static bool get_u64(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > INT64_MAX) return false;
    *v = o->via.u64;
    return true;
}

static bool get_bool(const msgpack_object *o, bool *v)
{
    if (o->type != MSGPACK_OBJECT_BOOLEAN) return false;
    *v = o->via.boolean;
    return true;
}

static bool get_bin(const msgpack_object *o, uint8_t *out, size_t len)
{
    if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != len) return false;
    memcpy(out, o->via.bin.ptr, len);
    return true;
}

static bool decode_user(const msgpack_object *o, http_user_t *u)
{
    char role[16];
    memset(u, 0, sizeof(*u));
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 8) return false;
    const msgpack_object *e = o->via.array.ptr;
    if (!get_str(&e[0], u->name, sizeof(u->name)) || !get_str(&e[1], role, sizeof(role)) ||
        !get_str(&e[2], u->hash, sizeof(u->hash)) || !get_u64(&e[3], &u->version) ||
        !get_u64(&e[4], &u->updated_ms) || !get_u64(&e[5], &u->tokens_after) ||
        !get_bool(&e[6], &u->disabled) || !get_bool(&e[7], &u->deleted))
        return false;
    int r = rpc_role_parse(role);
    if (u->deleted) {
        u->role = RPC_ROLE_NONE;
        u->hash[0] = 0;
        return true;
    }
    if (r < 0) return false;
    u->role = (rpc_role_t)r;
    return true;
}

static bool decode_family(const msgpack_object *o, http_family_t *f)
{
    memset(f, 0, sizeof(*f));
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 7) return false;
    const msgpack_object *e = o->via.array.ptr;
    return get_bin(&e[0], f->id, HTTP_FAMILY_ID_LEN) && get_str(&e[1], f->user, sizeof(f->user)) &&
           get_u64(&e[2], &f->counter) && get_bin(&e[3], f->token_hash, HTTP_TOKEN_HASH_LEN) &&
           get_u64(&e[4], &f->created) && get_u64(&e[5], &f->expires) &&
           get_bool(&e[6], &f->revoked);
}

static bool decode_revoked(const msgpack_object *o, http_revoked_t *r)
{
    memset(r, 0, sizeof(*r));
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2) return false;
    const msgpack_object *e = o->via.array.ptr;
    return get_str(&e[0], r->jti, sizeof(r->jti)) && r->jti[0] && get_u64(&e[1], &r->expires) &&
           r->expires > 0;
}

/* --- merging ------------------------------------------------------------------------------- */

static size_t arr_size(const msgpack_object *a)
{
    return a ? a->via.array.size : 0;
}

/* Counts one merge result; returns -EIO to stop, else 0 (and *taken for a row taken). */
static int count(int r, users_sync_stats_t *st, bool *taken)
{
    *taken = r == 1;
    if (r == -EIO) return -EIO;
    if (r == 1)
        st->taken++;
    else if (r == 0)
        st->stale++;
    else
        st->rejected++;
    return 0;
}

int users_sync_apply(http_users_db_t *db, const msgpack_object *users, const msgpack_object *fams,
                     const msgpack_object *revs, uint64_t now_s, users_batch_t *news,
                     users_sync_stats_t *st)
{
    users_sync_stats_t local = {0};
    if (!st) st = &local;
    const msgpack_object *arrs[3] = {users, fams, revs};
    for (int i = 0; i < 3; i++)
        if (arrs[i] && arrs[i]->type != MSGPACK_OBJECT_ARRAY) return -EINVAL;
    if (arr_size(users) + arr_size(fams) + arr_size(revs) > HTTP_SYNC_MAX_ROWS) return -E2BIG;
    uint64_t before = st->taken;
    bool taken;
    for (size_t i = 0; i < arr_size(users); i++) {
        http_user_t u;
        int r = decode_user(&users->via.array.ptr[i], &u) ? http_user_merge(db, &u) : -EINVAL;
        if (count(r, st, &taken) < 0) return -EIO;
        if (taken && news) users_batch_add_user(news, &u);
    }
    for (size_t i = 0; i < arr_size(fams); i++) {
        http_family_t f;
        int r =
            decode_family(&fams->via.array.ptr[i], &f) ? http_family_merge(db, &f, now_s) : -EINVAL;
        if (count(r, st, &taken) < 0) return -EIO;
        if (taken && news && http_family_get(db, f.id, &f) == 0) users_batch_add_family(news, &f);
    }
    for (size_t i = 0; i < arr_size(revs); i++) {
        http_revoked_t v;
        int r = -EINVAL;
        if (decode_revoked(&revs->via.array.ptr[i], &v))
            r = v.expires < now_s ? 0 : http_revoked_add(db, v.jti, v.expires);
        if (count(r, st, &taken) < 0) return -EIO;
        if (taken && news) users_batch_add_revoked(news, &v);
    }
    return (int)(st->taken - before);
}

/* --- digests ------------------------------------------------------------------------------- */

typedef struct digest_ctx {
    crypto_generichash_state *st; /* HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS */
    bool *used;
} digest_ctx_t;

static crypto_generichash_state *bucket_state(digest_ctx_t *c, int kind, unsigned bucket)
{
    size_t i = (size_t)kind * HTTP_SYNC_BUCKETS + bucket;
    if (!c->used[i]) {
        crypto_generichash_init(&c->st[i], NULL, 0, HTTP_SYNC_HASH_LEN);
        c->used[i] = true;
    }
    return &c->st[i];
}

static void h_str(crypto_generichash_state *s, const char *str)
{
    uint8_t n = (uint8_t)strlen(str); /* every string of a row is shorter than 256 */
    crypto_generichash_update(s, &n, 1);
    crypto_generichash_update(s, (const uint8_t *)str, n);
}

static void h_u64(crypto_generichash_state *s, uint64_t v)
{
    uint8_t b[8];
    p2p_put_be64(b, v);
    crypto_generichash_update(s, b, 8);
}

static void h_flag(crypto_generichash_state *s, bool v)
{
    uint8_t b = v;
    crypto_generichash_update(s, &b, 1);
}

static void digest_user(void *arg, const http_user_t *u)
{
    crypto_generichash_state *s =
        bucket_state(arg, USERS_K_USER, http_sync_bucket(u->name, strlen(u->name)));
    h_str(s, u->name);
    h_str(s, u->deleted ? "none" : rpc_role_name(u->role));
    h_str(s, u->deleted ? "" : u->hash);
    h_u64(s, u->version);
    h_u64(s, u->updated_ms);
    h_u64(s, u->tokens_after);
    h_flag(s, u->disabled);
    h_flag(s, u->deleted);
}

static void digest_family(void *arg, const http_family_t *f)
{
    crypto_generichash_state *s =
        bucket_state(arg, USERS_K_FAMILY, http_sync_bucket(f->id, HTTP_FAMILY_ID_LEN));
    crypto_generichash_update(s, f->id, HTTP_FAMILY_ID_LEN);
    h_str(s, f->user);
    h_u64(s, f->counter);
    crypto_generichash_update(s, f->token_hash, HTTP_TOKEN_HASH_LEN);
    h_u64(s, f->created);
    h_u64(s, f->expires);
    h_flag(s, f->revoked);
}

static void digest_revoked(void *arg, const http_revoked_t *r)
{
    crypto_generichash_state *s =
        bucket_state(arg, USERS_K_REVOKED, http_sync_bucket(r->jti, strlen(r->jti)));
    h_str(s, r->jti);
    h_u64(s, r->expires);
}

int users_sync_digest(http_users_db_t *db, uint8_t out[HTTP_SYNC_DIGEST_LEN])
{
    enum { N = HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS };
    digest_ctx_t c = {malloc(N * sizeof(*c.st)), calloc(N, sizeof(bool))};
    int rc = -ENOMEM;
    if (!c.st || !c.used) goto done;
    rc = -EIO;
    if (http_user_foreach(db, true, -1, digest_user, &c) < 0 ||
        http_family_foreach(db, -1, digest_family, &c) < 0 ||
        http_revoked_foreach(db, -1, digest_revoked, &c) < 0)
        goto done;
    memset(out, 0, HTTP_SYNC_DIGEST_LEN);
    for (size_t i = 0; i < N; i++)
        if (c.used[i])
            crypto_generichash_final(&c.st[i], out + i * HTTP_SYNC_HASH_LEN, HTTP_SYNC_HASH_LEN);
    rc = 0;
done:
    free(c.st);
    free(c.used);
    return rc;
}

int users_sync_diff(const uint8_t a[HTTP_SYNC_DIGEST_LEN], const uint8_t b[HTTP_SYNC_DIGEST_LEN],
                    bool diff[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS])
{
    int n = 0;
    for (size_t i = 0; i < HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS; i++) {
        diff[i] =
            memcmp(a + i * HTTP_SYNC_HASH_LEN, b + i * HTTP_SYNC_HASH_LEN, HTTP_SYNC_HASH_LEN) != 0;
        n += diff[i];
    }
    return n;
}

/* --- collecting rows of differing buckets --------------------------------------------------
 * Within a bucket, rows are taken from a row number chosen by the seed, wrapping around: a
 * bucket too big for one message is covered by successive rounds whatever its keys look like. */

typedef struct collect_ctx {
    users_batch_t *b;
    size_t skip; /* pass 1 takes rows numbered >= skip, pass 2 the rows before */
    size_t row;  /* number of the current row in its bucket */
    int pass;    /* 0 counts the bucket's rows */
    int added;
    bool full;
} collect_ctx_t;

/* True when the current row belongs to this pass (and counts it). */
static bool in_pass(collect_ctx_t *c)
{
    size_t i = c->row++;
    if (c->pass == 0 || c->full) return false;
    return c->pass == 1 ? i >= c->skip : i < c->skip;
}

static void took(collect_ctx_t *c, int r)
{
    if (r == 0)
        c->added++;
    else
        c->full = true;
}

static void collect_user(void *arg, const http_user_t *u)
{
    collect_ctx_t *c = arg;
    if (in_pass(c)) took(c, users_batch_add_user(c->b, u));
}

static void collect_family(void *arg, const http_family_t *f)
{
    collect_ctx_t *c = arg;
    if (in_pass(c)) took(c, users_batch_add_family(c->b, f));
}

static void collect_revoked(void *arg, const http_revoked_t *r)
{
    collect_ctx_t *c = arg;
    if (in_pass(c)) took(c, users_batch_add_revoked(c->b, r));
}

static int bucket_pass(http_users_db_t *db, int kind, unsigned bucket, collect_ctx_t *c)
{
    c->row = 0;
    return kind == USERS_K_USER     ? http_user_foreach(db, true, (int)bucket, collect_user, c)
           : kind == USERS_K_FAMILY ? http_family_foreach(db, (int)bucket, collect_family, c)
                                    : http_revoked_foreach(db, (int)bucket, collect_revoked, c);
}

int users_sync_collect(http_users_db_t *db, const bool diff[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS],
                       uint32_t seed, users_batch_t *b)
{
    static const int order[HTTP_SYNC_KINDS] = {USERS_K_USER, USERS_K_REVOKED, USERS_K_FAMILY};
    collect_ctx_t c = {.b = b};
    for (int k = 0; k < HTTP_SYNC_KINDS && !c.full; k++) {
        int kind = order[k];
        for (unsigned j = 0; j < HTTP_SYNC_BUCKETS && !c.full; j++) {
            unsigned bucket = (seed + j) % HTTP_SYNC_BUCKETS;
            if (!diff[kind * HTTP_SYNC_BUCKETS + bucket]) continue;
            c.pass = 0;
            int r = bucket_pass(db, kind, bucket, &c);
            if (r < 0) return r;
            uint32_t mix = seed * 2654435761u ^ (uint32_t)(kind * HTTP_SYNC_BUCKETS + bucket);
            c.skip = r > 0 ? (mix * 2246822519u >> 7) % (uint32_t)r : 0;
            for (c.pass = 1; c.pass <= 2 && !c.full; c.pass++)
                if ((r = bucket_pass(db, kind, bucket, &c)) < 0) return r;
        }
    }
    return c.added;
}
