/* users_sync.c: unit tests for the pure half of src/http/users_sync.c, on two real node.db files
 * (two "nodes" without a network): batches and their limit, the row codec through msgpack,
 * bucket digests (equal when the rows are, the changed bucket and only it otherwise),
 * anti-entropy rounds converging (last writer wins both ways, tombstones revoking sessions, a
 * session rotated on both sides ending revoked on both), rows malformed or past the limits, and
 * collection of more rows than one message holds converging over rounds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../node/testdir.h"
#include "http/users-internal.h"
#include "node/store.h"

#define NOW_MS 1800000000000ull
#define NOW_S  (NOW_MS / 1000)
#define HASH_A "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
#define HASH_B "$argon2id$v=19$m=19456,t=2,p=1$b3RoZXJzYWx0$b3RoZXJoYXNo"

typedef struct side {
    node_store_t *store;
    http_users_db_t *db;
} side_t;

typedef struct fx {
    char dir[64];
    side_t a, b;
    uint8_t key[HTTP_REFRESH_KEY_LEN];
} fx_t;

static void open_side(fx_t *f, side_t *s, const char *name)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s.db", f->dir, name);
    assert_int_equal(node_store_open(path, &s->store), 0);
    assert_int_equal(http_users_db_open(node_store_db(s->store), &s->db), 0);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(testdir_make(f->dir));
    open_side(f, &f->a, "a");
    open_side(f, &f->b, "b");
    static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";
    http_refresh_key(secret, sizeof(secret), f->key);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    http_users_db_close(f->a.db);
    http_users_db_close(f->b.db);
    node_store_close(f->a.store);
    node_store_close(f->b.store);
    testdir_remove(f->dir);
    free(f);
    return 0;
}

/* A message as it travels: the batch packed into a map, unpacked again. */
typedef struct wire {
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    const msgpack_object *users, *fams, *revs;
} wire_t;

static const msgpack_object *member(const msgpack_object *m, const char *k)
{
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (m->via.map.ptr[i].key.via.str.size == strlen(k) &&
            !memcmp(m->via.map.ptr[i].key.via.str.ptr, k, strlen(k)))
            return &m->via.map.ptr[i].val;
    return NULL;
}

static void wire_pack(wire_t *w, const users_batch_t *b)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&pk, &w->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    users_sync_pack_rows(&pk, b);
    msgpack_unpacked_init(&w->up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&w->up, w->sb.data, w->sb.size, &off),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, w->sb.size);
    w->users = member(&w->up.data, "users");
    w->fams = member(&w->up.data, "families");
    w->revs = member(&w->up.data, "revoked");
    assert_non_null(w->users);
    assert_non_null(w->fams);
    assert_non_null(w->revs);
}

static void wire_free(wire_t *w)
{
    msgpack_unpacked_destroy(&w->up);
    msgpack_sbuffer_destroy(&w->sb);
}

/* Sends the rows of `from` that differ from `to`'s digest, as node.auth_sync does, and applies
 * them. Returns the rows taken. */
static int send_diff(side_t *from, side_t *to, uint32_t seed, users_sync_stats_t *st)
{
    uint8_t da[HTTP_SYNC_DIGEST_LEN], db[HTTP_SYNC_DIGEST_LEN];
    bool diff[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS];
    assert_int_equal(users_sync_digest(from->db, da), 0);
    assert_int_equal(users_sync_digest(to->db, db), 0);
    if (users_sync_diff(da, db, diff) == 0) return 0;
    users_batch_t b;
    users_batch_init(&b);
    assert_true(users_sync_collect(from->db, diff, seed, &b) > 0);
    wire_t w;
    wire_pack(&w, &b);
    int r = users_sync_apply(to->db, w.users, w.fams, w.revs, NOW_S, NULL, st);
    wire_free(&w);
    users_batch_free(&b);
    return r;
}

/* A full anti-entropy exchange between a and b (both ways). */
static void round_trip(fx_t *f, uint32_t seed)
{
    assert_true(send_diff(&f->a, &f->b, seed, NULL) >= 0);
    assert_true(send_diff(&f->b, &f->a, seed + 1, NULL) >= 0);
}

static void assert_same_digest(fx_t *f)
{
    uint8_t da[HTTP_SYNC_DIGEST_LEN], db[HTTP_SYNC_DIGEST_LEN];
    bool diff[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS];
    assert_int_equal(users_sync_digest(f->a.db, da), 0);
    assert_int_equal(users_sync_digest(f->b.db, db), 0);
    assert_int_equal(users_sync_diff(da, db, diff), 0);
}

static void test_batch_limit(void **state)
{
    (void)state;
    users_batch_t b;
    users_batch_init(&b);
    http_revoked_t r = {.expires = NOW_S + 60};
    for (int i = 0; i < HTTP_SYNC_MAX_ROWS; i++) {
        snprintf(r.jti, sizeof(r.jti), "j%d", i);
        assert_int_equal(i % 2 ? users_batch_add_revoked(&b, &r) : 0, 0);
        if (i % 2 == 0) {
            http_user_t u = {.version = 1};
            snprintf(u.name, sizeof(u.name), "u%d", i);
            assert_int_equal(users_batch_add_user(&b, &u), 0);
        }
    }
    assert_int_equal(users_batch_rows(&b), HTTP_SYNC_MAX_ROWS);
    http_family_t fam = {.expires = 1};
    assert_int_equal(users_batch_add_family(&b, &fam), -ENOSPC);
    assert_int_equal(users_batch_add_revoked(&b, &r), -ENOSPC);
    users_batch_free(&b);
    assert_int_equal(users_batch_rows(&b), 0);
    assert_int_equal(users_batch_add_family(&b, &fam), 0); /* reusable after free */
    users_batch_free(&b);
}

static void test_digest_buckets(void **state)
{
    fx_t *f = *state;
    uint8_t da[HTTP_SYNC_DIGEST_LEN], db[HTTP_SYNC_DIGEST_LEN], zero[HTTP_SYNC_DIGEST_LEN] = {0};
    bool diff[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS];
    assert_int_equal(users_sync_digest(f->a.db, da), 0);
    assert_memory_equal(da, zero, sizeof(da)); /* empty buckets hash to zeros */
    assert_int_equal(http_user_set(f->a.db, "alice", RPC_ROLE_ADMIN, HASH_A, NOW_MS, NULL), 0);
    assert_int_equal(users_sync_digest(f->a.db, da), 0);
    assert_int_equal(users_sync_digest(f->b.db, db), 0);
    assert_int_equal(users_sync_diff(da, db, diff), 1);
    unsigned bucket = http_sync_bucket("alice", 5);
    assert_true(diff[USERS_K_USER * HTTP_SYNC_BUCKETS + bucket]);
    /* a logged-out token lands in the revoked kind's bucket of its jti */
    assert_int_equal(http_revoked_add(f->a.db, "jti-1", NOW_S + 100), 1);
    assert_int_equal(users_sync_digest(f->a.db, da), 0);
    assert_int_equal(users_sync_diff(da, db, diff), 2);
    assert_true(diff[USERS_K_REVOKED * HTTP_SYNC_BUCKETS + http_sync_bucket("jti-1", 5)]);
    /* the same rows written on the other side give the same digest */
    http_user_t u;
    assert_int_equal(http_user_get(f->a.db, "alice", &u), 0);
    assert_int_equal(http_user_merge(f->b.db, &u), 1);
    assert_int_equal(http_revoked_add(f->b.db, "jti-1", NOW_S + 100), 1);
    assert_same_digest(f);
    /* the digest sees every field: a later expiry is a difference */
    assert_int_equal(http_revoked_add(f->b.db, "jti-1", NOW_S + 200), 0);
    assert_int_equal(users_sync_digest(f->b.db, db), 0);
    assert_int_equal(users_sync_digest(f->a.db, da), 0);
    assert_int_equal(users_sync_diff(da, db, diff), 1);
}

static void test_roundtrip_all_kinds(void **state)
{
    fx_t *f = *state;
    char tok[HTTP_REFRESH_TOKEN_LEN + 1];
    http_family_t fam;
    assert_int_equal(http_user_set(f->a.db, "alice", RPC_ROLE_ADMIN, HASH_A, NOW_MS, NULL), 0);
    assert_int_equal(http_user_set(f->a.db, "bob", RPC_ROLE_VIEWER, HASH_B, NOW_MS, NULL), 0);
    assert_int_equal(http_user_remove(f->a.db, "bob", NOW_MS + 5, NULL), 0);
    assert_int_equal(http_family_start(f->a.db, f->key, "alice", NOW_S, 3600, tok, &fam), 0);
    assert_int_equal(http_revoked_add(f->a.db, "abc", NOW_S + 3600), 1);
    users_sync_stats_t st = {0};
    assert_int_equal(send_diff(&f->a, &f->b, 7, &st), 4);
    assert_int_equal(st.taken, 4);
    assert_int_equal(st.rejected, 0);
    assert_same_digest(f);
    http_user_t u;
    assert_int_equal(http_user_get(f->b.db, "alice", &u), 0);
    assert_int_equal(u.role, RPC_ROLE_ADMIN);
    assert_string_equal(u.hash, HASH_A);
    assert_int_equal(http_user_get(f->b.db, "bob", &u), 0);
    assert_true(u.deleted);
    http_family_t g;
    assert_int_equal(http_family_get(f->b.db, fam.id, &g), 0);
    assert_memory_equal(g.token_hash, fam.token_hash, HTTP_TOKEN_HASH_LEN);
    assert_int_equal(g.counter, 0);
    /* the session now works on b: its refresh token rotates there */
    char nt[HTTP_REFRESH_TOKEN_LEN + 1];
    assert_int_equal(
        http_family_refresh(f->b.db, f->key, NULL, tok, strlen(tok), NOW_S + 1, 3600, nt, &g),
        HTTP_REFRESH_ROTATED);
    /* the same message again changes nothing */
    users_batch_t b;
    users_batch_init(&b);
    bool all[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS];
    memset(all, 1, sizeof(all));
    assert_int_equal(users_sync_collect(f->a.db, all, 1, &b), 4);
    wire_t w;
    wire_pack(&w, &b);
    memset(&st, 0, sizeof(st));
    users_batch_t news;
    users_batch_init(&news);
    assert_int_equal(users_sync_apply(f->b.db, w.users, w.fams, w.revs, NOW_S, &news, &st), 0);
    assert_int_equal(st.stale, 4);
    assert_int_equal(users_batch_rows(&news), 0);
    wire_free(&w);
    users_batch_free(&b);
}

static void test_news(void **state)
{
    fx_t *f = *state;
    assert_int_equal(http_user_set(f->a.db, "carol", RPC_ROLE_OPERATOR, HASH_A, NOW_MS, NULL), 0);
    assert_int_equal(http_revoked_add(f->a.db, "j1", NOW_S + 10), 1);
    users_batch_t b, news;
    users_batch_init(&b);
    users_batch_init(&news);
    bool all[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS];
    memset(all, 1, sizeof(all));
    assert_int_equal(users_sync_collect(f->a.db, all, 3, &b), 2);
    wire_t w;
    wire_pack(&w, &b);
    assert_int_equal(users_sync_apply(f->b.db, w.users, w.fams, w.revs, NOW_S, &news, NULL), 2);
    assert_int_equal(news.n_users, 1);
    assert_string_equal(news.users[0].name, "carol");
    assert_int_equal(news.n_revs, 1);
    assert_string_equal(news.revs[0].jti, "j1");
    wire_free(&w);
    users_batch_free(&b);
    users_batch_free(&news);
}

static void test_lww_both_ways(void **state)
{
    fx_t *f = *state;
    /* both sides create alice independently: the later version wins everywhere */
    assert_int_equal(http_user_set(f->a.db, "alice", RPC_ROLE_VIEWER, HASH_A, NOW_MS, NULL), 0);
    assert_int_equal(http_user_set(f->b.db, "alice", RPC_ROLE_ADMIN, HASH_B, NOW_MS + 10, NULL), 0);
    /* and dave exists only on a, erin only on b */
    assert_int_equal(http_user_set(f->a.db, "dave", RPC_ROLE_VIEWER, HASH_A, NOW_MS, NULL), 0);
    assert_int_equal(http_user_set(f->b.db, "erin", RPC_ROLE_VIEWER, HASH_A, NOW_MS, NULL), 0);
    round_trip(f, 11);
    assert_same_digest(f);
    http_user_t ua, ub;
    assert_int_equal(http_user_get(f->a.db, "alice", &ua), 0);
    assert_int_equal(http_user_get(f->b.db, "alice", &ub), 0);
    assert_int_equal(ua.role, RPC_ROLE_ADMIN);
    assert_string_equal(ua.hash, HASH_B);
    assert_int_equal(http_user_cmp(&ua, &ub), 0);
    assert_int_equal(http_user_get(f->b.db, "dave", &ub), 0);
    assert_int_equal(http_user_get(f->a.db, "erin", &ua), 0);
    /* a tie on version is broken the same way on both sides */
    assert_int_equal(http_user_set(f->a.db, "tie", RPC_ROLE_VIEWER, HASH_A, NOW_MS + 50, NULL), 0);
    assert_int_equal(http_user_set(f->b.db, "tie", RPC_ROLE_VIEWER, HASH_B, NOW_MS + 50, NULL), 0);
    round_trip(f, 12);
    assert_same_digest(f);
}

static void test_tombstone_revokes(void **state)
{
    fx_t *f = *state;
    char tok[HTTP_REFRESH_TOKEN_LEN + 1];
    http_family_t fam, g;
    assert_int_equal(http_user_set(f->a.db, "alice", RPC_ROLE_ADMIN, HASH_A, NOW_MS, NULL), 0);
    assert_int_equal(http_family_start(f->a.db, f->key, "alice", NOW_S, 3600, tok, &fam), 0);
    round_trip(f, 1);
    assert_int_equal(http_family_get(f->b.db, fam.id, &g), 0);
    assert_false(g.revoked);
    /* removed on b: a hears of it and the session ends there too */
    assert_int_equal(http_user_remove(f->b.db, "alice", NOW_MS + 1000, NULL), 0);
    round_trip(f, 2);
    assert_same_digest(f);
    http_user_t u;
    assert_int_equal(http_user_get(f->a.db, "alice", &u), 0);
    assert_true(u.deleted);
    assert_int_equal(http_family_get(f->a.db, fam.id, &g), 0);
    assert_true(g.revoked);
    char nt[HTTP_REFRESH_TOKEN_LEN + 1];
    assert_int_equal(
        http_family_refresh(f->a.db, f->key, NULL, tok, strlen(tok), NOW_S + 1, 3600, nt, NULL),
        HTTP_REFRESH_REVOKED);
}

static void test_rotated_on_both_sides(void **state)
{
    fx_t *f = *state;
    char tok[HTTP_REFRESH_TOKEN_LEN + 1], t1[HTTP_REFRESH_TOKEN_LEN + 1],
        t2[HTTP_REFRESH_TOKEN_LEN + 1];
    http_family_t fam, g;
    assert_int_equal(http_user_set(f->a.db, "alice", RPC_ROLE_ADMIN, HASH_A, NOW_MS, NULL), 0);
    assert_int_equal(http_family_start(f->a.db, f->key, "alice", NOW_S, 3600, tok, &fam), 0);
    round_trip(f, 5);
    /* a thief and the owner present the same token on two nodes before they talk */
    assert_int_equal(
        http_family_refresh(f->a.db, f->key, NULL, tok, strlen(tok), NOW_S + 1, 3600, t1, NULL),
        HTTP_REFRESH_ROTATED);
    assert_int_equal(
        http_family_refresh(f->b.db, f->key, NULL, tok, strlen(tok), NOW_S + 1, 3600, t2, NULL),
        HTTP_REFRESH_ROTATED);
    round_trip(f, 6);
    assert_same_digest(f);
    assert_int_equal(http_family_get(f->a.db, fam.id, &g), 0);
    assert_true(g.revoked);
    assert_int_equal(http_family_get(f->b.db, fam.id, &g), 0);
    assert_true(g.revoked);
}

/* Packs one array holding the rows given as msgpack values by the callback. */
typedef void (*pack_fn)(msgpack_packer *pk);

static void bad_users(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 6);
    msgpack_pack_nil(pk);      /* not an array */
    msgpack_pack_array(pk, 2); /* too short */
    msgpack_pack_int(pk, 1);
    msgpack_pack_int(pk, 2);
    /* a good row */
    msgpack_pack_array(pk, 8);
    msgpack_pack_str_with_body(pk, "good", 4);
    msgpack_pack_str_with_body(pk, "viewer", 6);
    msgpack_pack_str_with_body(pk, HASH_A, strlen(HASH_A));
    msgpack_pack_uint64(pk, NOW_MS);
    msgpack_pack_uint64(pk, NOW_MS);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_false(pk);
    msgpack_pack_false(pk);
    /* bad role */
    msgpack_pack_array(pk, 8);
    msgpack_pack_str_with_body(pk, "badrole", 7);
    msgpack_pack_str_with_body(pk, "root", 4);
    msgpack_pack_str_with_body(pk, HASH_A, strlen(HASH_A));
    msgpack_pack_uint64(pk, NOW_MS);
    msgpack_pack_uint64(pk, NOW_MS);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_false(pk);
    msgpack_pack_false(pk);
    /* a name that is not a user name, and a version that is negative */
    msgpack_pack_array(pk, 8);
    msgpack_pack_str_with_body(pk, "a/b", 3);
    msgpack_pack_str_with_body(pk, "viewer", 6);
    msgpack_pack_str_with_body(pk, HASH_A, strlen(HASH_A));
    msgpack_pack_int64(pk, -5);
    msgpack_pack_uint64(pk, NOW_MS);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_false(pk);
    msgpack_pack_false(pk);
    /* a hash too long for the buffer */
    char big[300];
    memset(big, 'h', sizeof(big));
    msgpack_pack_array(pk, 8);
    msgpack_pack_str_with_body(pk, "bighash", 7);
    msgpack_pack_str_with_body(pk, "viewer", 6);
    msgpack_pack_str_with_body(pk, big, sizeof(big));
    msgpack_pack_uint64(pk, NOW_MS);
    msgpack_pack_uint64(pk, NOW_MS);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_false(pk);
    msgpack_pack_false(pk);
}

static void bad_families(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_array(pk, 7); /* id of 15 bytes */
    msgpack_pack_bin_with_body(pk, "123456789012345", 15);
    msgpack_pack_str_with_body(pk, "good", 4);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_bin_with_body(pk, "12345678901234567890123456789012", 32);
    msgpack_pack_uint64(pk, NOW_S);
    msgpack_pack_uint64(pk, NOW_S + 100);
    msgpack_pack_false(pk);
    msgpack_pack_array(pk, 7); /* already expired: ignored, not an error */
    msgpack_pack_bin_with_body(pk, "1234567890123456", 16);
    msgpack_pack_str_with_body(pk, "good", 4);
    msgpack_pack_uint64(pk, 0);
    msgpack_pack_bin_with_body(pk, "12345678901234567890123456789012", 32);
    msgpack_pack_uint64(pk, NOW_S - 100);
    msgpack_pack_uint64(pk, NOW_S - 10);
    msgpack_pack_false(pk);
    msgpack_pack_str_with_body(pk, "x", 1);
}

static void bad_revoked(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_array(pk, 2); /* empty jti */
    msgpack_pack_str_with_body(pk, "", 0);
    msgpack_pack_uint64(pk, NOW_S + 10);
    msgpack_pack_array(pk, 2); /* expired: stale */
    msgpack_pack_str_with_body(pk, "old", 3);
    msgpack_pack_uint64(pk, NOW_S - 10);
    msgpack_pack_array(pk, 2); /* jti with a NUL */
    msgpack_pack_str_with_body(pk, "a\0b", 3);
    msgpack_pack_uint64(pk, NOW_S + 10);
    msgpack_pack_array(pk, 2); /* good */
    msgpack_pack_str_with_body(pk, "fresh", 5);
    msgpack_pack_uint64(pk, NOW_S + 10);
}

static void unpack_one(pack_fn fn, msgpack_sbuffer *sb, msgpack_unpacked *up)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    fn(&pk);
    msgpack_unpacked_init(up);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(up, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
}

static void test_malformed_rows(void **state)
{
    fx_t *f = *state;
    msgpack_sbuffer s1, s2, s3;
    msgpack_unpacked u1, u2, u3;
    unpack_one(bad_users, &s1, &u1);
    unpack_one(bad_families, &s2, &u2);
    unpack_one(bad_revoked, &s3, &u3);
    users_sync_stats_t st = {0};
    assert_int_equal(users_sync_apply(f->b.db, &u1.data, &u2.data, &u3.data, NOW_S, NULL, &st), 2);
    assert_int_equal(st.taken, 2);    /* "good" and "fresh" */
    assert_int_equal(st.stale, 2);    /* the expired session and token */
    assert_int_equal(st.rejected, 9); /* 5 users, 2 sessions, 2 tokens */
    http_user_t u;
    assert_int_equal(http_user_get(f->b.db, "good", &u), 0);
    assert_int_equal(http_user_get(f->b.db, "badrole", &u), -ENOENT);
    assert_int_equal(http_user_get(f->b.db, "bighash", &u), -ENOENT);
    /* an argument that is not an array refuses the whole message */
    msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    assert_int_equal(users_sync_apply(f->b.db, &nil, NULL, NULL, NOW_S, NULL, NULL), -EINVAL);
    /* absent arguments are fine */
    assert_int_equal(users_sync_apply(f->b.db, NULL, NULL, NULL, NOW_S, NULL, NULL), 0);
    msgpack_unpacked_destroy(&u1);
    msgpack_unpacked_destroy(&u2);
    msgpack_unpacked_destroy(&u3);
    msgpack_sbuffer_destroy(&s1);
    msgpack_sbuffer_destroy(&s2);
    msgpack_sbuffer_destroy(&s3);
}

static void many_revoked(msgpack_packer *pk)
{
    msgpack_pack_array(pk, HTTP_SYNC_MAX_ROWS);
    for (int i = 0; i < HTTP_SYNC_MAX_ROWS; i++) {
        char j[16];
        int n = snprintf(j, sizeof(j), "m%d", i);
        msgpack_pack_array(pk, 2);
        msgpack_pack_str_with_body(pk, j, (size_t)n);
        msgpack_pack_uint64(pk, NOW_S + 10);
    }
}

static void test_too_many_rows(void **state)
{
    fx_t *f = *state;
    msgpack_sbuffer sb, s1;
    msgpack_unpacked up, u1;
    unpack_one(many_revoked, &sb, &up);
    unpack_one(bad_users, &s1, &u1);
    /* HTTP_SYNC_MAX_ROWS revoked rows alone are fine; one user row more is too many */
    assert_int_equal(users_sync_apply(f->b.db, &u1.data, NULL, &up.data, NOW_S, NULL, NULL),
                     -E2BIG);
    http_user_t u;
    assert_int_equal(http_user_get(f->b.db, "good", &u), -ENOENT); /* nothing merged */
    assert_int_equal(users_sync_apply(f->b.db, NULL, NULL, &up.data, NOW_S, NULL, NULL),
                     HTTP_SYNC_MAX_ROWS);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u1);
    msgpack_sbuffer_destroy(&s1);
}

static void test_collect_over_rounds(void **state)
{
    fx_t *f = *state;
    /* more rows than one message holds, and one bucket alone holding more than a message */
    enum { N = HTTP_SYNC_MAX_ROWS * 5 / 2, ONE = HTTP_SYNC_MAX_ROWS + HTTP_SYNC_MAX_ROWS / 4 };
    int in_one = 0;
    for (unsigned i = 0, n = 0; n < N; i++) {
        char j[40];
        snprintf(j, sizeof(j), "%032x", i * 2654435761u);
        bool first = http_sync_bucket(j, strlen(j)) == 0;
        if (first ? in_one >= ONE : n - in_one >= N - ONE) continue;
        assert_int_equal(http_revoked_add(f->a.db, j, NOW_S + 3600), 1);
        in_one += first;
        n++;
    }
    assert_int_equal(http_user_set(f->a.db, "zed", RPC_ROLE_VIEWER, HASH_A, NOW_MS, NULL), 0);
    int rounds = 0, total = 0, first = -1;
    uint8_t da[HTTP_SYNC_DIGEST_LEN], db[HTTP_SYNC_DIGEST_LEN];
    bool diff[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS];
    for (;; rounds++) {
        assert_int_equal(users_sync_digest(f->a.db, da), 0);
        assert_int_equal(users_sync_digest(f->b.db, db), 0);
        if (users_sync_diff(da, db, diff) == 0) break;
        assert_true(rounds < 40); /* each round a different window: bucket 0 fills up too */
        int r = send_diff(&f->a, &f->b, (uint32_t)rounds * 7919u, NULL);
        if (first < 0) first = r;
        total += r;
    }
    assert_int_equal(first, HTTP_SYNC_MAX_ROWS); /* a full message while there is more */
    assert_int_equal(total, N + 1);
    assert_true(rounds >= 3);
    http_user_t u; /* users go first: the one user came with the first message */
    assert_int_equal(http_user_get(f->b.db, "zed", &u), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_limit),
        cmocka_unit_test_setup_teardown(test_digest_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_all_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_news, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lww_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_revokes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotated_on_both_sides, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_collect_over_rounds, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
