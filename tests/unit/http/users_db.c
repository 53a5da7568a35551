/* users_db.c: unit tests for src/http/users_db.c against a real SQLite file (node.db made by
 * node_store_open) in a temp dir: name rules, Argon2id hashes and their limits, users with
 * versions and tombstones, last-writer-wins merges converging on two databases, the refresh-token
 * codec and state machine (rotation, reuse revokes the family, expiry, key rotation, a replica
 * behind), session merges, revoked tokens, pruning, changes seen from another connection. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../node/testdir.h"
#include "http/users.h"
#include "node/store.h"

#define NOW_MS 1800000000000ull
#define NOW_S  (NOW_MS / 1000)

typedef struct fx {
    char dir[64], path[128];
    node_store_t *store;
    http_users_db_t *db;
    uint8_t key[HTTP_REFRESH_KEY_LEN];
} fx_t;

static void open_db(fx_t *f)
{
    assert_int_equal(node_store_open(f->path, &f->store), 0);
    assert_int_equal(http_users_db_open(node_store_db(f->store), &f->db), 0);
}

static void close_db(fx_t *f)
{
    http_users_db_close(f->db);
    node_store_close(f->store);
    f->db = NULL;
    f->store = NULL;
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(testdir_make(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/node.db", f->dir);
    open_db(f);
    static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";
    http_refresh_key(secret, sizeof(secret), f->key);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    close_db(f);
    testdir_remove(f->dir);
    free(f);
    return 0;
}

/* A syntactically plausible hash string (the database does not check hashes; tests that need a
 * real one make it). */
#define FAKE_HASH "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"

static void test_names(void **state)
{
    (void)state;
    static const char *const good[] = {"alice", "A.b_c-9", "x", "..a", "0"};
    static const char *const bad[] = {"", ".", "..", "a b", "é", "a/b", "a:b", "a\n"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_true(http_username_valid(good[i], strlen(good[i])));
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_false(http_username_valid(bad[i], strlen(bad[i])));
    char longname[HTTP_MAX_USERNAME + 2];
    memset(longname, 'a', sizeof(longname));
    assert_true(http_username_valid(longname, HTTP_MAX_USERNAME));
    assert_false(http_username_valid(longname, HTTP_MAX_USERNAME + 1));
    assert_false(http_username_valid(NULL, 3));
}

static void test_password_hash(void **state)
{
    (void)state;
    char h[HTTP_PWHASH_STRBYTES], want[64];
    /* at least OWASP's Argon2id m=19 MiB, t=2 */
    assert_true(http_pwhash_memlimit() >= 19u * 1024 * 1024);
    assert_true(http_pwhash_memlimit() >= crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE);
    assert_int_equal(http_pwhash_opslimit(), 2);
    assert_int_equal(http_password_hash("correct horse", 13, h), 0);
    snprintf(want, sizeof(want), "$argon2id$v=19$m=%zu,t=2,p=1$", http_pwhash_memlimit() / 1024);
    assert_memory_equal(h, want, strlen(want));
    assert_int_equal(http_password_verify(h, "correct horse", 13), 0);
    assert_int_equal(http_password_verify(h, "correct horsE", 13), -EACCES);
    assert_int_equal(http_password_verify(h, "correct hors", 12), -EACCES);
    assert_int_equal(http_password_verify("garbage", "correct horse", 13), -EACCES);
    assert_int_equal(http_password_verify(h, "", 0), -EINVAL);
    assert_int_equal(http_password_hash("", 0, h), -EINVAL);
    assert_int_equal(http_password_hash("x", HTTP_MAX_PASSWORD + 1, h), -EINVAL);
    assert_false(http_password_needs_rehash(h));
    /* a hash made with weaker limits asks for a rehash */
    char weak[HTTP_PWHASH_STRBYTES];
    assert_int_equal(crypto_pwhash_str_alg(weak, "pw", 2, 1, 8192, crypto_pwhash_ALG_ARGON2ID13),
                     0);
    assert_int_equal(http_password_verify(weak, "pw", 2), 0);
    assert_true(http_password_needs_rehash(weak));
}

static void test_users(void **state)
{
    fx_t *f = *state;
    http_user_t u, g;
    assert_int_equal(http_user_get(f->db, "alice", &u), -ENOENT);
    assert_int_equal(http_user_set(f->db, "alice", RPC_ROLE_ADMIN, FAKE_HASH, NOW_MS, &u), 0);
    assert_int_equal(u.version, NOW_MS);
    assert_int_equal(u.tokens_after, 0); /* a new user: nothing to revoke */
    assert_int_equal(http_user_get(f->db, "alice", &g), 0);
    assert_string_equal(g.name, "alice");
    assert_int_equal(g.role, RPC_ROLE_ADMIN);
    assert_string_equal(g.hash, FAKE_HASH);
    assert_int_equal(g.version, NOW_MS);
    assert_false(g.deleted);
    /* a change in the same millisecond still gets a higher version; old tokens stop */
    assert_int_equal(http_user_set(f->db, "alice", RPC_ROLE_VIEWER, FAKE_HASH, NOW_MS, &u), 0);
    assert_int_equal(u.version, NOW_MS + 1);
    assert_int_equal(u.tokens_after, NOW_S);
    /* a clock behind the version: version still grows */
    assert_int_equal(http_user_set(f->db, "alice", RPC_ROLE_VIEWER, FAKE_HASH, NOW_MS - 5000, &u),
                     0);
    assert_int_equal(u.version, NOW_MS + 2);
    assert_int_equal(http_user_rehash(f->db, "alice", "$argon2id$other", NOW_MS + 10, &u), 0);
    assert_int_equal(u.version, NOW_MS + 10);
    assert_int_equal(u.tokens_after, (NOW_MS - 5000) / 1000); /* a rehash ends no session */
    /* bad input */
    assert_int_equal(http_user_set(f->db, "a b", RPC_ROLE_ADMIN, FAKE_HASH, NOW_MS, NULL), -EINVAL);
    assert_int_equal(http_user_set(f->db, "bob", RPC_ROLE_NONE, FAKE_HASH, NOW_MS, NULL), -EINVAL);
    assert_int_equal(http_user_set(f->db, "bob", RPC_ROLE_ADMIN, "", NOW_MS, NULL), -EINVAL);
    assert_int_equal(http_user_set(f->db, "bob", RPC_ROLE_OPERATOR, FAKE_HASH, NOW_MS, NULL), 0);
    /* removal leaves a tombstone with a higher version */
    assert_int_equal(http_user_remove(f->db, "alice", NOW_MS + 20, &u), 0);
    assert_true(u.deleted);
    assert_int_equal(u.version, NOW_MS + 20);
    assert_int_equal(u.tokens_after, NOW_S + 1); /* this second's tokens too */
    assert_int_equal(http_user_get(f->db, "alice", &g), 0);
    assert_true(g.deleted);
    assert_int_equal(g.role, RPC_ROLE_NONE);
    assert_string_equal(g.hash, "");
    assert_int_equal(http_user_remove(f->db, "alice", NOW_MS + 30, NULL), -ENOENT);
    assert_int_equal(http_user_remove(f->db, "nobody", NOW_MS + 30, NULL), -ENOENT);
    assert_int_equal(http_user_rehash(f->db, "alice", FAKE_HASH, NOW_MS + 30, NULL), -ENOENT);
    /* persistence: close and open again */
    close_db(f);
    open_db(f);
    assert_int_equal(http_user_get(f->db, "bob", &g), 0);
    assert_int_equal(g.role, RPC_ROLE_OPERATOR);
    /* adding again over the tombstone */
    assert_int_equal(http_user_set(f->db, "alice", RPC_ROLE_ADMIN, FAKE_HASH, NOW_MS + 25, &u), 0);
    assert_int_equal(u.version, NOW_MS + 25);
    assert_false(u.deleted);
}

typedef struct names {
    int n;
    char name[8][HTTP_MAX_USERNAME + 1];
    bool deleted[8];
} names_t;

static void name_cb(void *arg, const http_user_t *u)
{
    names_t *n = arg;
    assert_true(n->n < 8);
    strcpy(n->name[n->n], u->name);
    n->deleted[n->n++] = u->deleted;
}

static void test_foreach_and_buckets(void **state)
{
    fx_t *f = *state;
    static const char *const names[] = {"carol", "alice", "bob"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(http_user_set(f->db, names[i], RPC_ROLE_VIEWER, FAKE_HASH, NOW_MS, NULL),
                         0);
    assert_int_equal(http_user_remove(f->db, "bob", NOW_MS + 1, NULL), 0);
    names_t n = {0};
    assert_int_equal(http_user_foreach(f->db, false, -1, name_cb, &n), 2);
    assert_string_equal(n.name[0], "alice");
    assert_string_equal(n.name[1], "carol");
    memset(&n, 0, sizeof(n));
    assert_int_equal(http_user_foreach(f->db, true, -1, name_cb, &n), 3);
    assert_string_equal(n.name[1], "bob");
    assert_true(n.deleted[1]);
    /* every row is in exactly the bucket of its name */
    int total = 0;
    for (int b = 0; b < HTTP_SYNC_BUCKETS; b++) {
        memset(&n, 0, sizeof(n));
        int c = http_user_foreach(f->db, true, b, name_cb, &n);
        assert_true(c >= 0);
        for (int i = 0; i < c; i++)
            assert_int_equal(http_sync_bucket(n.name[i], strlen(n.name[i])), (unsigned)b);
        total += c;
    }
    assert_int_equal(total, 3);
}

static void test_user_limit(void **state)
{
    fx_t *f = *state;
    char name[32];
    for (int i = 0; i < HTTP_MAX_USERS; i++) {
        snprintf(name, sizeof(name), "u%d", i);
        assert_int_equal(http_user_set(f->db, name, RPC_ROLE_VIEWER, FAKE_HASH, NOW_MS, NULL), 0);
    }
    assert_int_equal(http_user_set(f->db, "onemore", RPC_ROLE_VIEWER, FAKE_HASH, NOW_MS, NULL),
                     -ENOSPC);
    http_user_t u = {.role = RPC_ROLE_VIEWER, .version = NOW_MS, .updated_ms = NOW_MS};
    strcpy(u.name, "onemore");
    strcpy(u.hash, FAKE_HASH);
    assert_int_equal(http_user_merge(f->db, &u), -ENOSPC);
    /* an existing row can still change */
    assert_int_equal(http_user_set(f->db, "u7", RPC_ROLE_ADMIN, FAKE_HASH, NOW_MS, NULL), 0);
}

static http_user_t user(const char *name, rpc_role_t role, uint64_t version, const char *hash)
{
    http_user_t u;
    memset(&u, 0, sizeof(u));
    strcpy(u.name, name);
    u.role = role;
    u.version = version;
    u.updated_ms = version;
    strcpy(u.hash, hash);
    return u;
}

static void test_user_merge(void **state)
{
    fx_t *f = *state;
    http_user_t g, a = user("dave", RPC_ROLE_VIEWER, NOW_MS, FAKE_HASH);
    assert_int_equal(http_user_merge(f->db, &a), 1);
    assert_int_equal(http_user_merge(f->db, &a), 0); /* the same again */
    http_user_t older = user("dave", RPC_ROLE_ADMIN, NOW_MS - 1, FAKE_HASH);
    assert_int_equal(http_user_merge(f->db, &older), 0);
    assert_int_equal(http_user_get(f->db, "dave", &g), 0);
    assert_int_equal(g.role, RPC_ROLE_VIEWER);
    http_user_t newer = user("dave", RPC_ROLE_OPERATOR, NOW_MS + 1, FAKE_HASH);
    newer.tokens_after = NOW_S;
    assert_int_equal(http_user_merge(f->db, &newer), 1);
    assert_int_equal(http_user_get(f->db, "dave", &g), 0);
    assert_int_equal(g.role, RPC_ROLE_OPERATOR);
    assert_int_equal(g.tokens_after, NOW_S);
    /* a tombstone wins over the live row of the same version and ends the sessions */
    char tok[HTTP_REFRESH_TOKEN_LEN + 1];
    http_family_t fam;
    assert_int_equal(http_family_start(f->db, f->key, "dave", NOW_S, 3600, tok, &fam), 0);
    http_user_t dead = user("dave", RPC_ROLE_ADMIN, NOW_MS + 1, "ignored");
    dead.deleted = true;
    assert_int_equal(http_user_merge(f->db, &dead), 1);
    assert_int_equal(http_user_get(f->db, "dave", &g), 0);
    assert_true(g.deleted);
    assert_string_equal(g.hash, "");
    assert_int_equal(http_family_get(f->db, fam.id, &fam), 0);
    assert_true(fam.revoked);
    /* malformed rows */
    http_user_t bad = user("bad name", RPC_ROLE_ADMIN, NOW_MS, FAKE_HASH);
    assert_int_equal(http_user_merge(f->db, &bad), -EINVAL);
    bad = user("eve", RPC_ROLE_NONE, NOW_MS, FAKE_HASH);
    assert_int_equal(http_user_merge(f->db, &bad), -EINVAL);
    bad = user("eve", RPC_ROLE_ADMIN, NOW_MS, "");
    assert_int_equal(http_user_merge(f->db, &bad), -EINVAL);
    bad = user("eve", RPC_ROLE_ADMIN, NOW_MS, FAKE_HASH);
    memset(bad.name, 'a', sizeof(bad.name)); /* no NUL */
    assert_int_equal(http_user_merge(f->db, &bad), -EINVAL);
}

/* Two nodes that changed the same user concurrently (same version) end with the same row,
 * whichever order the merges run in. */
static void test_merge_converges(void **state)
{
    fx_t *f = *state, g;
    memset(&g, 0, sizeof(g));
    snprintf(g.path, sizeof(g.path), "%s/other.db", f->dir);
    open_db(&g);
    http_user_t a = user("erin", RPC_ROLE_ADMIN, NOW_MS, "$argon2id$aaa");
    http_user_t b = user("erin", RPC_ROLE_VIEWER, NOW_MS, "$argon2id$bbb");
    assert_int_equal(http_user_merge(f->db, &a), 1);
    assert_int_equal(http_user_merge(g.db, &b), 1);
    int ab = http_user_merge(f->db, &b), ba = http_user_merge(g.db, &a);
    assert_true(ab + ba == 1); /* exactly one side gives way */
    http_user_t x, y;
    assert_int_equal(http_user_get(f->db, "erin", &x), 0);
    assert_int_equal(http_user_get(g.db, "erin", &y), 0);
    assert_int_equal(http_user_cmp(&x, &y), 0);
    assert_string_equal(x.hash, y.hash);
    assert_true(http_user_cmp(&a, &b) != 0);
    assert_int_equal(http_user_cmp(&a, &b), -http_user_cmp(&b, &a));
    close_db(&g);
}

static void test_refresh_codec(void **state)
{
    fx_t *f = *state;
    uint8_t fam[HTTP_FAMILY_ID_LEN], nonce[16], got[HTTP_FAMILY_ID_LEN], other[32];
    uint64_t counter;
    char tok[HTTP_REFRESH_TOKEN_LEN + 1];
    memset(fam, 7, sizeof(fam));
    memset(nonce, 9, sizeof(nonce));
    http_refresh_encode(f->key, fam, 42, nonce, tok);
    assert_int_equal(strlen(tok), HTTP_REFRESH_TOKEN_LEN);
    assert_memory_equal(tok, "p2r1.", 5);
    assert_int_equal(http_refresh_decode(f->key, NULL, tok, strlen(tok), got, &counter), 0);
    assert_memory_equal(got, fam, sizeof(fam));
    assert_int_equal(counter, 42);
    /* another key: refused, unless it is the previous key of a rotation */
    static const uint8_t secret2[32] = "fedcba9876543210fedcba9876543210";
    http_refresh_key(secret2, sizeof(secret2), other);
    assert_int_equal(http_refresh_decode(other, NULL, tok, strlen(tok), got, &counter), -EACCES);
    assert_int_equal(http_refresh_decode(other, f->key, tok, strlen(tok), got, &counter), 0);
    /* every flipped character is caught */
    for (size_t i = 5; i < HTTP_REFRESH_TOKEN_LEN; i++) {
        char t[HTTP_REFRESH_TOKEN_LEN + 1];
        strcpy(t, tok);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        assert_true(http_refresh_decode(f->key, NULL, t, strlen(t), got, &counter) < 0);
    }
    static const char *const bad[] = {"", "p2r1.", "p2r2.AAAA", "Bearer x", "p2r1.!!!!"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(http_refresh_decode(f->key, NULL, bad[i], strlen(bad[i]), got, &counter),
                         -EINVAL);
    assert_int_equal(http_refresh_decode(f->key, NULL, tok, strlen(tok) - 1, got, &counter),
                     -EINVAL);
}

static void test_refresh_rotation_and_reuse(void **state)
{
    fx_t *f = *state;
    char t0[HTTP_REFRESH_TOKEN_LEN + 1], t1[HTTP_REFRESH_TOKEN_LEN + 1];
    char t2[HTTP_REFRESH_TOKEN_LEN + 1], t3[HTTP_REFRESH_TOKEN_LEN + 1];
    http_family_t fam, got;
    assert_int_equal(http_family_start(f->db, f->key, "frank", NOW_S, 3600, t0, &fam), 0);
    assert_int_equal(fam.counter, 0);
    assert_int_equal(fam.expires, NOW_S + 3600);
    assert_false(fam.revoked);
    assert_int_equal(http_family_get(f->db, fam.id, &got), 0);
    assert_string_equal(got.user, "frank");
    uint8_t h[HTTP_TOKEN_HASH_LEN];
    http_refresh_hash(t0, strlen(t0), h);
    assert_memory_equal(got.token_hash, h, sizeof(h)); /* only the hash is kept */
    /* rotation: a new token, the old one stops */
    assert_int_equal(
        http_family_refresh(f->db, f->key, NULL, t0, strlen(t0), NOW_S + 10, 3600, t1, &got),
        HTTP_REFRESH_ROTATED);
    assert_string_not_equal(t0, t1);
    assert_int_equal(got.counter, 1);
    assert_int_equal(got.expires, NOW_S + 10 + 3600);
    assert_int_equal(
        http_family_refresh(f->db, f->key, NULL, t1, strlen(t1), NOW_S + 20, 3600, t2, &got),
        HTTP_REFRESH_ROTATED);
    /* t0 again: reuse, the whole family is revoked; the live t2 stops too */
    assert_int_equal(
        http_family_refresh(f->db, f->key, NULL, t0, strlen(t0), NOW_S + 30, 3600, t3, &got),
        HTTP_REFRESH_REUSED);
    assert_true(got.revoked);
    assert_int_equal(
        http_family_refresh(f->db, f->key, NULL, t2, strlen(t2), NOW_S + 31, 3600, t3, NULL),
        HTTP_REFRESH_REVOKED);
    assert_int_equal(http_family_get(f->db, fam.id, &got), 0);
    assert_true(got.revoked);
    /* garbage and unknown families */
    assert_int_equal(http_family_refresh(f->db, f->key, NULL, "nope", 4, NOW_S, 3600, t3, NULL),
                     HTTP_REFRESH_INVALID);
    uint8_t id[HTTP_FAMILY_ID_LEN] = {1, 2, 3}, nonce[16] = {0};
    http_refresh_encode(f->key, id, 0, nonce, t3);
    assert_int_equal(
        http_family_refresh(f->db, f->key, NULL, t3, strlen(t3), NOW_S, 3600, t2, NULL),
        HTTP_REFRESH_UNKNOWN);
}

static void test_refresh_edges(void **state)
{
    fx_t *f = *state;
    char t0[HTTP_REFRESH_TOKEN_LEN + 1], t1[HTTP_REFRESH_TOKEN_LEN + 1];
    char t5[HTTP_REFRESH_TOKEN_LEN + 1];
    http_family_t fam, got;
    /* expiry */
    assert_int_equal(http_family_start(f->db, f->key, "gina", NOW_S, 100, t0, &fam), 0);
    assert_int_equal(
        http_family_refresh(f->db, f->key, NULL, t0, strlen(t0), NOW_S + 101, 100, t1, NULL),
        HTTP_REFRESH_EXPIRED);
    /* a session cannot outlive HTTP_REFRESH_MAX_AGE_S, however often it is refreshed */
    assert_int_equal(http_family_start(f->db, f->key, "gina", NOW_S, 100000000, t0, &fam), 0);
    assert_int_equal(fam.expires, NOW_S + HTTP_REFRESH_MAX_AGE_S);
    assert_int_equal(http_family_refresh(f->db, f->key, NULL, t0, strlen(t0),
                                         NOW_S + HTTP_REFRESH_MAX_AGE_S - 5, 3600, t1, &got),
                     HTTP_REFRESH_ROTATED);
    assert_int_equal(got.expires, NOW_S + HTTP_REFRESH_MAX_AGE_S);
    /* a later token another node issued (this replica is behind): accepted, counter moves on */
    assert_int_equal(http_family_start(f->db, f->key, "gina", NOW_S, 3600, t0, &fam), 0);
    uint8_t nonce[16] = {5};
    http_refresh_encode(f->key, fam.id, 5, nonce, t5);
    assert_int_equal(
        http_family_refresh(f->db, f->key, NULL, t5, strlen(t5), NOW_S, 3600, t1, &got),
        HTTP_REFRESH_ROTATED);
    assert_int_equal(got.counter, 6);
    /* the same number as the live token but another token (two nodes rotated it): reuse */
    uint8_t other_nonce[16] = {6};
    http_refresh_encode(f->key, fam.id, 6, other_nonce, t5);
    assert_int_equal(
        http_family_refresh(f->db, f->key, NULL, t5, strlen(t5), NOW_S, 3600, t0, &got),
        HTTP_REFRESH_REUSED);
    /* tokens made with the previous secret still refresh during a rotation */
    uint8_t oldkey[HTTP_REFRESH_KEY_LEN];
    memcpy(oldkey, f->key, sizeof(oldkey));
    assert_int_equal(http_family_start(f->db, oldkey, "gina", NOW_S, 3600, t0, &fam), 0);
    static const uint8_t secret2[32] = "fedcba9876543210fedcba9876543210";
    uint8_t newkey[HTTP_REFRESH_KEY_LEN];
    http_refresh_key(secret2, sizeof(secret2), newkey);
    assert_int_equal(
        http_family_refresh(f->db, newkey, NULL, t0, strlen(t0), NOW_S, 3600, t1, NULL),
        HTTP_REFRESH_INVALID);
    assert_int_equal(
        http_family_refresh(f->db, newkey, oldkey, t0, strlen(t0), NOW_S, 3600, t1, NULL),
        HTTP_REFRESH_ROTATED);
    uint8_t id[HTTP_FAMILY_ID_LEN];
    uint64_t c;
    assert_int_equal(http_refresh_decode(newkey, NULL, t1, strlen(t1), id, &c), 0);
    /* logout with the refresh token */
    assert_int_equal(http_family_revoke(f->db, fam.id, &got), 1);
    assert_true(got.revoked);
    assert_int_equal(http_family_revoke(f->db, fam.id, NULL), 0);
    uint8_t none[HTTP_FAMILY_ID_LEN] = {0};
    assert_int_equal(http_family_revoke(f->db, none, NULL), -ENOENT);
}

typedef struct fams {
    int n, live;
    http_family_t f[HTTP_MAX_FAMILIES_PER_USER + 8];
} fams_t;

static void fam_cb(void *arg, const http_family_t *f)
{
    fams_t *s = arg;
    assert_true(s->n < (int)(sizeof(s->f) / sizeof(s->f[0])));
    s->f[s->n++] = *f;
    s->live += !f->revoked;
}

static void test_sessions_per_user(void **state)
{
    fx_t *f = *state;
    char t[HTTP_REFRESH_TOKEN_LEN + 1];
    http_family_t first, fam;
    assert_int_equal(http_family_start(f->db, f->key, "hank", NOW_S, 3600, t, &first), 0);
    for (int i = 1; i < HTTP_MAX_FAMILIES_PER_USER; i++)
        assert_int_equal(
            http_family_start(f->db, f->key, "hank", NOW_S + (uint64_t)i, 3600, t, NULL), 0);
    assert_int_equal(http_family_start(f->db, f->key, "ivy", NOW_S, 3600, t, NULL), 0);
    assert_int_equal(http_family_get(f->db, first.id, &fam), 0);
    assert_false(fam.revoked);
    /* one more login of hank: his oldest session ends, ivy's does not */
    assert_int_equal(http_family_start(f->db, f->key, "hank", NOW_S + 100, 3600, t, NULL), 0);
    assert_int_equal(http_family_get(f->db, first.id, &fam), 0);
    assert_true(fam.revoked);
    fams_t s = {0};
    assert_int_equal(http_family_foreach(f->db, -1, fam_cb, &s), HTTP_MAX_FAMILIES_PER_USER + 2);
    assert_int_equal(s.live, HTTP_MAX_FAMILIES_PER_USER + 1);
    assert_int_equal(http_family_start(f->db, f->key, "bad name", NOW_S, 3600, t, NULL), -EINVAL);
    /* removing hank ends all his sessions */
    assert_int_equal(http_user_set(f->db, "hank", RPC_ROLE_VIEWER, FAKE_HASH, NOW_MS, NULL), 0);
    assert_int_equal(http_user_remove(f->db, "hank", NOW_MS + 1, NULL), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(http_family_foreach(f->db, -1, fam_cb, &s), HTTP_MAX_FAMILIES_PER_USER + 2);
    assert_int_equal(s.live, 1); /* ivy's */
}

static void test_family_merge(void **state)
{
    fx_t *f = *state, g;
    memset(&g, 0, sizeof(g));
    snprintf(g.path, sizeof(g.path), "%s/other.db", f->dir);
    open_db(&g);
    char t0[HTTP_REFRESH_TOKEN_LEN + 1], ta[HTTP_REFRESH_TOKEN_LEN + 1];
    char tb[HTTP_REFRESH_TOKEN_LEN + 1];
    http_family_t fam, a, b, x, y;
    assert_int_equal(http_family_start(f->db, f->key, "jack", NOW_S, 3600, t0, &fam), 0);
    /* the other node learns the session and can rotate it */
    assert_int_equal(http_family_merge(g.db, &fam, NOW_S), 1);
    assert_int_equal(http_family_merge(g.db, &fam, NOW_S), 0);
    assert_int_equal(
        http_family_refresh(g.db, f->key, NULL, t0, strlen(t0), NOW_S + 1, 3600, ta, &a),
        HTTP_REFRESH_ROTATED);
    /* its rotation comes back: the higher counter wins, and the first node refuses t0 now */
    assert_int_equal(http_family_merge(f->db, &a, NOW_S + 1), 1);
    assert_int_equal(http_family_get(f->db, fam.id, &x), 0);
    assert_int_equal(x.counter, 1);
    assert_int_equal(http_family_merge(f->db, &fam, NOW_S + 1), 0); /* older: ignored */
    assert_int_equal(
        http_family_refresh(f->db, f->key, NULL, t0, strlen(t0), NOW_S + 2, 3600, tb, NULL),
        HTTP_REFRESH_REUSED);
    /* both nodes rotate the same token before hearing of each other: revoked on both, and the
     * rows end identical */
    assert_int_equal(http_family_start(f->db, f->key, "jack", NOW_S, 3600, t0, &fam), 0);
    assert_int_equal(http_family_merge(g.db, &fam, NOW_S), 1);
    assert_int_equal(
        http_family_refresh(f->db, f->key, NULL, t0, strlen(t0), NOW_S + 1, 3600, ta, &a),
        HTTP_REFRESH_ROTATED);
    assert_int_equal(
        http_family_refresh(g.db, f->key, NULL, t0, strlen(t0), NOW_S + 1, 3600, tb, &b),
        HTTP_REFRESH_ROTATED);
    assert_int_equal(http_family_merge(f->db, &b, NOW_S + 1), 1);
    assert_int_equal(http_family_merge(g.db, &a, NOW_S + 1), 1);
    assert_int_equal(http_family_get(f->db, fam.id, &x), 0);
    assert_int_equal(http_family_get(g.db, fam.id, &y), 0);
    assert_true(x.revoked && y.revoked);
    assert_memory_equal(x.token_hash, y.token_hash, HTTP_TOKEN_HASH_LEN);
    assert_int_equal(x.expires, y.expires);
    /* revoked is sticky against a live row with a higher counter */
    http_family_t live = x;
    live.revoked = false;
    live.counter = 9;
    assert_int_equal(http_family_merge(f->db, &live, NOW_S + 1), 1);
    assert_int_equal(http_family_get(f->db, fam.id, &x), 0);
    assert_true(x.revoked);
    assert_int_equal(x.counter, 9);
    /* expired rows are not taken; malformed ones refused */
    http_family_t old = fam;
    old.id[0] ^= 0xff;
    old.expires = NOW_S - 1;
    assert_int_equal(http_family_merge(g.db, &old, NOW_S), 0);
    assert_int_equal(http_family_get(g.db, old.id, &y), -ENOENT);
    old.expires = NOW_S + 10;
    strcpy(old.user, "bad name");
    assert_int_equal(http_family_merge(g.db, &old, NOW_S), -EINVAL);
    close_db(&g);
}

typedef struct revs {
    int n;
    http_revoked_t r[8];
} revs_t;

static void rev_cb(void *arg, const http_revoked_t *r)
{
    revs_t *s = arg;
    assert_true(s->n < 8);
    s->r[s->n++] = *r;
}

static void test_revoked_and_prune(void **state)
{
    fx_t *f = *state;
    assert_int_equal(http_revoked_add(f->db, "jti-b", NOW_S + 60), 1);
    assert_int_equal(http_revoked_add(f->db, "jti-a", NOW_S + 3600), 1);
    assert_int_equal(http_revoked_add(f->db, "jti-b", NOW_S + 30), 0); /* known, earlier end */
    assert_int_equal(http_revoked_add(f->db, "jti-b", NOW_S + 90), 0); /* known, later end kept */
    assert_int_equal(http_revoked_add(f->db, "", NOW_S), -EINVAL);
    char longjti[RPC_MAX_JTI + 2];
    memset(longjti, 'x', sizeof(longjti) - 1);
    longjti[RPC_MAX_JTI + 1] = 0;
    assert_int_equal(http_revoked_add(f->db, longjti, NOW_S), -EINVAL);
    revs_t s = {0};
    assert_int_equal(http_revoked_foreach(f->db, -1, rev_cb, &s), 2);
    assert_string_equal(s.r[0].jti, "jti-a");
    assert_string_equal(s.r[1].jti, "jti-b");
    assert_int_equal(s.r[1].expires, NOW_S + 90);
    memset(&s, 0, sizeof(s));
    int b = (int)http_sync_bucket("jti-a", 5);
    assert_true(http_revoked_foreach(f->db, b, rev_cb, &s) >= 1);
    assert_string_equal(s.r[0].jti, "jti-a");
    /* pruning: what ended before now goes, the rest stays */
    char t[HTTP_REFRESH_TOKEN_LEN + 1];
    http_family_t short_fam, long_fam;
    assert_int_equal(http_family_start(f->db, f->key, "kim", NOW_S, 100, t, &short_fam), 0);
    assert_int_equal(http_family_start(f->db, f->key, "kim", NOW_S, 7200, t, &long_fam), 0);
    assert_int_equal(http_users_db_prune(f->db, NOW_S + 50), 0);
    assert_int_equal(http_users_db_prune(f->db, NOW_S + 101), 2); /* jti-b and the short one */
    assert_int_equal(http_family_get(f->db, short_fam.id, &short_fam), -ENOENT);
    assert_int_equal(http_family_get(f->db, long_fam.id, &long_fam), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(http_revoked_foreach(f->db, -1, rev_cb, &s), 1);
    assert_string_equal(s.r[0].jti, "jti-a");
}

static void test_changed_elsewhere(void **state)
{
    fx_t *f = *state, g;
    assert_true(http_users_db_changed_elsewhere(f->db)); /* the first call */
    assert_false(http_users_db_changed_elsewhere(f->db));
    assert_int_equal(http_user_set(f->db, "lee", RPC_ROLE_VIEWER, FAKE_HASH, NOW_MS, NULL), 0);
    assert_false(http_users_db_changed_elsewhere(f->db)); /* our own write */
    /* another connection to the same file, as p2p-node user add would */
    memset(&g, 0, sizeof(g));
    strcpy(g.path, f->path);
    open_db(&g);
    assert_int_equal(http_user_set(g.db, "mia", RPC_ROLE_ADMIN, FAKE_HASH, NOW_MS, NULL), 0);
    assert_true(http_users_db_changed_elsewhere(f->db));
    assert_false(http_users_db_changed_elsewhere(f->db));
    http_user_t u;
    assert_int_equal(http_user_get(f->db, "mia", &u), 0);
    close_db(&g);
}

static void test_old_schema(void **state)
{
    fx_t *f = *state;
    sqlite3 *raw = NULL;
    char path[160];
    snprintf(path, sizeof(path), "%s/bare.db", f->dir);
    assert_int_equal(sqlite3_open(path, &raw), SQLITE_OK);
    http_users_db_t *d = NULL;
    assert_int_equal(http_users_db_open(raw, &d), -EPROTO);
    assert_null(d);
    sqlite3_close(raw);
    http_users_db_close(NULL);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_password_hash),
        T(test_users),
        T(test_foreach_and_buckets),
        T(test_user_limit),
        T(test_user_merge),
        T(test_merge_converges),
        T(test_refresh_codec),
        T(test_refresh_rotation_and_reuse),
        T(test_refresh_edges),
        T(test_sessions_per_user),
        T(test_family_merge),
        T(test_revoked_and_prune),
        T(test_changed_elsewhere),
        T(test_old_schema),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
