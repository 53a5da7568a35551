/* users_view.c: unit tests for src/http/users_view.c: the jti set (membership, later expiry kept,
 * growth past its first table, limits), session markers (every access token of a revoked login
 * session), the per-user rule (tokens_after against iat, disabled,
 * unknown subjects), reloading from a real node.db with the changed rows reported, the jti set
 * rebuilt without expired tokens, the hook node->token_revoked points to, and the dummy hash
 * (current limits, never matches). */
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

static void test_jti_set(void **state)
{
    (void)state;
    users_view_t *v = users_view_new();
    assert_non_null(v);
    assert_false(users_view_revoked(v, "abc", "", 0));
    assert_int_equal(users_view_add_revoked(v, "abc", NOW_S + 10), 1);
    assert_int_equal(users_view_add_revoked(v, "abc", NOW_S + 5), 0);
    assert_true(users_view_revoked(v, "abc", "", 0));
    assert_true(users_view_revoked(v, "abc", "someone", NOW_S)); /* whoever holds it */
    assert_false(users_view_revoked(v, "abd", "", 0));
    assert_false(users_view_revoked(v, "", "", 0));
    assert_false(users_view_revoked(v, NULL, NULL, 0));
    assert_int_equal(users_view_add_revoked(v, "", NOW_S), -EINVAL);
    assert_int_equal(users_view_add_revoked(v, "x", 0), -EINVAL);
    char longj[RPC_MAX_JTI + 2];
    memset(longj, 'j', sizeof(longj) - 1);
    longj[sizeof(longj) - 1] = 0;
    assert_int_equal(users_view_add_revoked(v, longj, NOW_S), -EINVAL);
    /* many: the table grows and keeps every one */
    char j[40];
    for (int i = 0; i < 5000; i++) {
        snprintf(j, sizeof(j), "jti-%d", i);
        assert_int_equal(users_view_add_revoked(v, j, NOW_S + 60), 1);
    }
    assert_int_equal(users_view_n_revoked(v), 5001);
    for (int i = 0; i < 5000; i++) {
        snprintf(j, sizeof(j), "jti-%d", i);
        assert_true(users_view_revoked(v, j, "", 0));
        snprintf(j, sizeof(j), "other-%d", i);
        assert_false(users_view_revoked(v, j, "", 0));
    }
    users_view_free(v);
    users_view_free(NULL);
}

static void test_session_marker(void **state)
{
    (void)state;
    users_view_t *v = users_view_new();
    assert_non_null(v);
    uint8_t id[HTTP_FAMILY_ID_LEN], other[HTTP_FAMILY_ID_LEN];
    for (int i = 0; i < HTTP_FAMILY_ID_LEN; i++) {
        id[i] = (uint8_t)(0x10 + i);
        other[i] = (uint8_t)(0x90 + i);
    }
    char marker[3 + 2 * HTTP_FAMILY_ID_LEN];
    users_session_marker(id, marker);
    assert_string_equal(marker, "f.101112131415161718191a1b1c1d1e1f");
    static const char tok[] = "101112131415161718191a1b1c1d1e1f.0123456789abcdef01234567";
    static const char tok_other[] = "909192939495969798999a9b9c9d9e9f.0123456789abcdef01234567";
    assert_int_equal(users_view_add_revoked(v, "unrelated", NOW_S + 60), 1);
    assert_false(users_view_revoked(v, tok, "alice", NOW_S));
    assert_int_equal(users_view_add_revoked(v, marker, NOW_S + 60), 1);
    /* every token of the session, whatever its random part; not another session's, not a
     * token without a session, not a jti that only looks like the marker's prefix */
    assert_true(users_view_revoked(v, tok, "alice", NOW_S));
    assert_true(users_view_revoked(v, "101112131415161718191a1b1c1d1e1f.ffff", "", 0));
    assert_false(users_view_revoked(v, tok_other, "alice", NOW_S));
    assert_false(users_view_revoked(v, "101112131415161718191a1b1c1d1e1f", "", 0));
    assert_false(users_view_revoked(v, "101112131415161718191a1b1c1d1e1f-ffff", "", 0));
    users_session_marker(other, marker);
    assert_int_equal(users_view_add_revoked(v, marker, NOW_S + 60), 1);
    assert_true(users_view_revoked(v, tok_other, "", 0));
    users_view_free(v);
}

static void test_jti_limit(void **state)
{
    (void)state;
    users_view_t *v = users_view_new();
    char j[40];
    for (int i = 0; i < HTTP_MAX_REVOKED; i++) {
        snprintf(j, sizeof(j), "%d", i);
        assert_int_equal(users_view_add_revoked(v, j, NOW_S + 60), 1);
    }
    assert_int_equal(users_view_add_revoked(v, "one-more", NOW_S + 60), -ENOSPC);
    assert_int_equal(users_view_add_revoked(v, "7", NOW_S + 90), 0); /* known ones still update */
    users_view_free(v);
}

static http_user_t user(const char *name, uint64_t version, uint64_t tokens_after)
{
    http_user_t u;
    memset(&u, 0, sizeof(u));
    snprintf(u.name, sizeof(u.name), "%s", name);
    snprintf(u.hash, sizeof(u.hash), "%s", HASH_A);
    u.role = RPC_ROLE_VIEWER;
    u.version = version;
    u.tokens_after = tokens_after;
    return u;
}

static void test_user_rule(void **state)
{
    (void)state;
    users_view_t *v = users_view_new();
    http_user_t a = user("alice", 1, NOW_S), b = user("bob", 1, 0), c = user("carol", 1, 0);
    c.disabled = true;
    assert_int_equal(users_view_put_user(v, &b), 0);
    assert_int_equal(users_view_put_user(v, &a), 0);
    assert_int_equal(users_view_put_user(v, &c), 0);
    assert_int_equal(users_view_n_users(v), 3);
    assert_true(users_view_revoked(v, "", "alice", NOW_S - 1)); /* issued before the change */
    assert_false(users_view_revoked(v, "", "alice", NOW_S));
    assert_false(users_view_revoked(v, "", "alice", NOW_S + 100));
    assert_true(users_view_revoked(v, "", "alice", 0)); /* no iat: cannot be after */
    assert_false(users_view_revoked(v, "", "bob", 0));
    assert_true(users_view_revoked(v, "", "carol", NOW_S + 100));
    assert_false(users_view_revoked(v, "", "nobody", 0)); /* `p2p-node token` subjects */
    /* replacing a row keeps one entry; a tombstone ends earlier tokens */
    a.deleted = true;
    a.version = 2;
    a.tokens_after = NOW_S + 50;
    assert_int_equal(users_view_put_user(v, &a), 0);
    assert_int_equal(users_view_n_users(v), 3);
    const users_view_user_t *e = users_view_user(v, "alice");
    assert_non_null(e);
    assert_true(e->deleted);
    assert_int_equal(e->role, RPC_ROLE_NONE);
    assert_true(users_view_revoked(v, "", "alice", NOW_S + 10));
    assert_null(users_view_user(v, "alicf"));
    assert_string_equal(users_view_user(v, "bob")->name, "bob");
    users_view_free(v);
}

typedef struct fx {
    char dir[64];
    node_store_t *store;
    http_users_db_t *db;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char path[128];
    assert_non_null(testdir_make(f->dir));
    snprintf(path, sizeof(path), "%s/node.db", f->dir);
    assert_int_equal(node_store_open(path, &f->store), 0);
    assert_int_equal(http_users_db_open(node_store_db(f->store), &f->db), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    http_users_db_close(f->db);
    node_store_close(f->store);
    testdir_remove(f->dir);
    free(f);
    return 0;
}

static void test_reload(void **state)
{
    fx_t *f = *state;
    users_view_t *v = users_view_new();
    users_batch_t changed;
    users_batch_init(&changed);
    assert_int_equal(users_view_reload_users(v, f->db, &changed), 0);
    assert_int_equal(http_user_set(f->db, "zoe", RPC_ROLE_ADMIN, HASH_A, NOW_MS, NULL), 0);
    assert_int_equal(http_user_set(f->db, "adam", RPC_ROLE_VIEWER, HASH_A, NOW_MS, NULL), 0);
    assert_int_equal(users_view_reload_users(v, f->db, &changed), 2);
    assert_int_equal(changed.n_users, 2);
    assert_string_equal(changed.users[0].name, "adam"); /* in name order */
    users_batch_free(&changed);
    assert_int_equal(users_view_reload_users(v, f->db, &changed), 0);
    /* a replaced user: its tokens from before the change are refused */
    assert_int_equal(http_user_set(f->db, "zoe", RPC_ROLE_VIEWER, HASH_A, NOW_MS + 5000, NULL), 0);
    assert_int_equal(users_view_reload_users(v, f->db, &changed), 1);
    assert_string_equal(changed.users[0].name, "zoe");
    assert_true(users_view_revoked(v, "", "zoe", NOW_S));
    assert_false(users_view_revoked(v, "", "zoe", NOW_S + 5));
    assert_int_equal(users_view_user(v, "zoe")->role, RPC_ROLE_VIEWER);
    assert_int_equal(users_view_n_users(v), 2);
    users_batch_free(&changed);
    /* the jti set from the database, expired tokens left out */
    assert_int_equal(http_revoked_add(f->db, "live", NOW_S + 100), 1);
    assert_int_equal(http_revoked_add(f->db, "gone", NOW_S - 100), 1);
    assert_int_equal(users_view_add_revoked(v, "only-in-memory", NOW_S + 100), 1);
    assert_int_equal(users_view_reload_revoked(v, f->db, NOW_S), 1);
    assert_true(users_view_revoked(v, "live", "", 0));
    assert_false(users_view_revoked(v, "gone", "", 0));
    assert_false(users_view_revoked(v, "only-in-memory", "", 0));
    users_view_free(v);
}

static void test_hook(void **state)
{
    (void)state;
    node_t node;
    http_users_t u;
    memset(&node, 0, sizeof(node));
    memset(&u, 0, sizeof(u));
    assert_null(users_of(&node));
    assert_null(users_of(NULL));
    u.view = users_view_new();
    node.token_revoked = users_token_revoked;
    node.token_revoked_ctx = &u;
    assert_ptr_equal(users_of(&node), &u);
    assert_int_equal(users_view_add_revoked(u.view, "t1", NOW_S + 10), 1);
    assert_int_equal(node.token_revoked(node.token_revoked_ctx, "t1", "x", NOW_S), 1);
    assert_int_equal(node.token_revoked(node.token_revoked_ctx, "t2", "x", NOW_S), 0);
    users_view_free(u.view);
}

static void test_dummy_hash(void **state)
{
    (void)state;
    char a[HTTP_PWHASH_STRBYTES], b[HTTP_PWHASH_STRBYTES];
    assert_int_equal(users_dummy_hash(a), 0);
    assert_int_equal(users_dummy_hash(b), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(strncmp(a, "$argon2id$v=19$", 15), 0);
    /* libsodium reads it with the current limits: verifying costs a real hash */
    assert_false(http_password_needs_rehash(a));
    assert_int_equal(http_password_verify(a, "password", 8), -EACCES);
    /* and a real hash with the current limits has the same shape up to the salt */
    char real[HTTP_PWHASH_STRBYTES];
    assert_int_equal(http_password_hash("password", 8, real), 0);
    assert_int_equal(strlen(real), strlen(a));
    assert_memory_equal(real, a, strchr(a + 15, '$') - a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jti_set),
        cmocka_unit_test(test_session_marker),
        cmocka_unit_test(test_jti_limit),
        cmocka_unit_test(test_user_rule),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test(test_hook),
        cmocka_unit_test(test_dummy_hash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
