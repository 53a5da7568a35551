/* Tests of src/rpc/auth.c: JWT minting and verification (alg pinning, exp, nbf, aud, roles,
 * rotation), the ACL claims targets/methods and their glob matching, jti/iat and the revocation
 * callback. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <jwt.h>

#include "rpc/rpc-internal.h"

#define NOW 1800000000ull

static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";
static const uint8_t other[32] = "fedcba9876543210fedcba9876543210";
static const rpc_auth_config_t auth = {
    .secret = secret, .secret_len = sizeof(secret), .audience = "p2p-admin"};

static int verify(const rpc_auth_config_t *a, const char *tok, uint64_t now, rpc_principal_t *p)
{
    const char *why = NULL;
    int r = rpc_jwt_verify(a, tok, strlen(tok), now, p, &why);
    assert_non_null(why);
    return r;
}

/* A token made directly with libjwt, for claims and algorithms rpc_jwt_mint never produces. */
static char *craft(jwt_alg_t alg, const uint8_t *key, size_t klen, const char *role,
                   const char *aud, long exp, long nbf)
{
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    jwt_add_grant(j, "sub", "tester");
    if (role) jwt_add_grant(j, "role", role);
    if (aud) jwt_add_grant(j, "aud", aud);
    if (exp) jwt_add_grant_int(j, "exp", exp);
    if (nbf) jwt_add_grant_int(j, "nbf", nbf);
    assert_int_equal(jwt_set_alg(j, alg, key, (int)klen), 0);
    char *s = jwt_encode_str(j);
    assert_non_null(s);
    jwt_free(j);
    return s;
}

static void test_mint_verify(void **state)
{
    char *tok = NULL;
    rpc_principal_t p;
    assert_int_equal(
        rpc_jwt_mint(secret, sizeof(secret), "operator", "alice", "p2p-admin", 600, NOW, &tok), 0);
    assert_int_equal(verify(&auth, tok, NOW, &p), 0);
    assert_string_equal(p.sub, "alice");
    assert_int_equal(p.role, RPC_ROLE_OPERATOR);
    assert_int_equal(p.exp, NOW + 600);
    /* within the leeway after exp, then past it */
    assert_int_equal(verify(&auth, tok, NOW + 600 + RPC_JWT_LEEWAY_S, &p), 0);
    assert_int_equal(verify(&auth, tok, NOW + 601 + RPC_JWT_LEEWAY_S, &p), -EACCES);
    /* nbf = iat = NOW: a clock 30 s behind still accepts it, 31 s does not */
    assert_int_equal(verify(&auth, tok, NOW - RPC_JWT_LEEWAY_S, &p), 0);
    assert_int_equal(verify(&auth, tok, NOW - RPC_JWT_LEEWAY_S - 1, &p), -EACCES);
    /* two mints differ (random jti) */
    char *tok2 = NULL;
    assert_int_equal(
        rpc_jwt_mint(secret, sizeof(secret), "operator", "alice", "p2p-admin", 600, NOW, &tok2), 0);
    assert_string_not_equal(tok, tok2);
    free(tok);
    free(tok2);
}

static void test_mint_rejects(void **state)
{
    char *tok = NULL;
    assert_int_equal(rpc_jwt_mint(secret, sizeof(secret), "root", "a", "p2p-admin", 60, NOW, &tok),
                     -EINVAL);
    assert_int_equal(rpc_jwt_mint(secret, 0, "admin", "a", "p2p-admin", 60, NOW, &tok), -EINVAL);
    assert_int_equal(rpc_jwt_mint(secret, sizeof(secret), "admin", "a", "p2p-admin", 0, NOW, &tok),
                     -EINVAL);
    assert_null(tok);
}

static void test_wrong_secret_and_rotation(void **state)
{
    char *tok = NULL;
    rpc_principal_t p;
    assert_int_equal(
        rpc_jwt_mint(other, sizeof(other), "admin", "bob", "p2p-admin", 600, NOW, &tok), 0);
    assert_int_equal(verify(&auth, tok, NOW, &p), -EACCES);
    rpc_auth_config_t rotated = {.secret = secret,
                                 .secret_len = sizeof(secret),
                                 .prev_secret = other,
                                 .prev_secret_len = sizeof(other),
                                 .audience = "p2p-admin"};
    assert_int_equal(verify(&rotated, tok, NOW, &p), 0);
    assert_int_equal(p.role, RPC_ROLE_ADMIN);
    free(tok);
}

static void test_wrong_audience(void **state)
{
    char *tok = NULL;
    rpc_principal_t p;
    assert_int_equal(
        rpc_jwt_mint(secret, sizeof(secret), "admin", "bob", "other-app", 600, NOW, &tok), 0);
    assert_int_equal(verify(&auth, tok, NOW, &p), -EACCES);
    free(tok);
    char *none = craft(JWT_ALG_HS256, secret, sizeof(secret), "admin", NULL, (long)NOW + 60, 0);
    assert_int_equal(verify(&auth, none, NOW, &p), -EACCES);
    free(none);
}

static void test_expired_and_future(void **state)
{
    rpc_principal_t p;
    char *old =
        craft(JWT_ALG_HS256, secret, sizeof(secret), "admin", "p2p-admin", (long)NOW - 3600, 0);
    assert_int_equal(verify(&auth, old, NOW, &p), -EACCES);
    char *future = craft(JWT_ALG_HS256, secret, sizeof(secret), "admin", "p2p-admin",
                         (long)NOW + 7200, (long)NOW + 3600);
    assert_int_equal(verify(&auth, future, NOW, &p), -EACCES);
    assert_int_equal(verify(&auth, future, NOW + 3600, &p), 0);
    char *noexp = craft(JWT_ALG_HS256, secret, sizeof(secret), "admin", "p2p-admin", 0, 0);
    assert_int_equal(verify(&auth, noexp, NOW, &p), -EACCES);
    free(old);
    free(future);
    free(noexp);
}

static void test_roles(void **state)
{
    rpc_principal_t p;
    char *bad =
        craft(JWT_ALG_HS256, secret, sizeof(secret), "root", "p2p-admin", (long)NOW + 60, 0);
    char *none = craft(JWT_ALG_HS256, secret, sizeof(secret), NULL, "p2p-admin", (long)NOW + 60, 0);
    char *viewer =
        craft(JWT_ALG_HS256, secret, sizeof(secret), "viewer", "p2p-admin", (long)NOW + 60, 0);
    assert_int_equal(verify(&auth, bad, NOW, &p), -EACCES);
    assert_int_equal(verify(&auth, none, NOW, &p), -EACCES);
    assert_int_equal(verify(&auth, viewer, NOW, &p), 0);
    assert_int_equal(p.role, RPC_ROLE_VIEWER);
    free(bad);
    free(none);
    free(viewer);
}

static void test_alg_pinned(void **state)
{
    rpc_principal_t p;
    /* HS512 with the right secret: refused by the header check */
    char *hs512 =
        craft(JWT_ALG_HS512, secret, sizeof(secret), "admin", "p2p-admin", (long)NOW + 60, 0);
    assert_int_equal(verify(&auth, hs512, NOW, &p), -EACCES);
    /* alg none */
    char *none = craft(JWT_ALG_NONE, NULL, 0, "admin", "p2p-admin", (long)NOW + 60, 0);
    assert_int_equal(verify(&auth, none, NOW, &p), -EACCES);
    /* a valid HS256 token whose header is swapped for {"alg":"none"} */
    char *good =
        craft(JWT_ALG_HS256, secret, sizeof(secret), "admin", "p2p-admin", (long)NOW + 60, 0);
    char forged[2048];
    const char *dot = strchr(good, '.');
    snprintf(forged, sizeof(forged), "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0%s", dot);
    assert_int_equal(verify(&auth, forged, NOW, &p), -EACCES);
    /* {"alg":"HS256"} header on an HS512 signature */
    const char *dot2 = strchr(hs512, '.');
    snprintf(forged, sizeof(forged), "%.*s%s", (int)(dot - good), good, dot2);
    assert_int_equal(verify(&auth, forged, NOW, &p), -EACCES);
    assert_int_equal(verify(&auth, good, NOW, &p), 0);
    free(hs512);
    free(none);
    free(good);
}

static void test_garbage(void **state)
{
    rpc_principal_t p;
    const char *bad[] = {"", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", "\xff\xfe.x.y"};
    for (size_t i = 0; i < P2P_ARRAY_LEN(bad); i++) {
        const char *why = NULL;
        assert_int_equal(rpc_jwt_verify(&auth, bad[i], strlen(bad[i]), NOW, &p, &why), -EACCES);
    }
    rpc_auth_config_t unset = {0};
    const char *why = NULL;
    assert_int_equal(rpc_jwt_verify(&unset, "a.b.c", 5, NOW, &p, &why), -EACCES);
}

/* A valid HS256 token carrying extra claims given as a JSON object text. */
static char *craft_claims(const char *json)
{
    jwt_t *j = NULL;
    assert_int_equal(jwt_new(&j), 0);
    jwt_add_grant(j, "sub", "tester");
    jwt_add_grant(j, "role", "operator");
    jwt_add_grant(j, "aud", "p2p-admin");
    jwt_add_grant_int(j, "exp", (long)NOW + 600);
    assert_int_equal(jwt_add_grants_json(j, json), 0);
    assert_int_equal(jwt_set_alg(j, JWT_ALG_HS256, secret, (int)sizeof(secret)), 0);
    char *s = jwt_encode_str(j);
    assert_non_null(s);
    jwt_free(j);
    return s;
}

static void test_glob(void **state)
{
    assert_true(rpc_glob_match("*", ""));
    assert_true(rpc_glob_match("*", "web-01"));
    assert_true(rpc_glob_match("web-*", "web-01"));
    assert_true(rpc_glob_match("web-*", "web-"));
    assert_false(rpc_glob_match("web-*", "db-01"));
    assert_true(rpc_glob_match("n0?", "n07"));
    assert_false(rpc_glob_match("n0?", "n10"));
    assert_false(rpc_glob_match("n0?", "n0"));
    assert_false(rpc_glob_match("n0?", "n012"));
    assert_true(rpc_glob_match("process.*", "process.list"));
    assert_false(rpc_glob_match("process.*", "processes.list"));
    assert_true(rpc_glob_match("*.info", "node.info"));
    assert_true(rpc_glob_match("*o*e*", "node.peers"));
    assert_true(rpc_glob_match("node.info", "node.info"));
    assert_false(rpc_glob_match("node.info", "node.infos"));
    assert_false(rpc_glob_match("", "x"));
    assert_true(rpc_glob_match("a*b*c*d", "axxbxxcxxd"));
    assert_false(rpc_glob_match("a*b*c*d", "axxbxxcxx"));
}

static void test_acl_claims(void **state)
{
    const char *targets[] = {"web-*", "n0?"};
    const char *methods[] = {"node.*", "dht.get"};
    char *tok = NULL;
    rpc_principal_t p;
    assert_int_equal(rpc_jwt_mint_ex(secret, sizeof(secret), "operator", "ops", "p2p-admin", 600,
                                     NOW, targets, 2, methods, 2, &tok),
                     0);
    assert_int_equal(verify(&auth, tok, NOW, &p), 0);
    assert_int_equal(p.n_targets, 2);
    assert_int_equal(p.n_methods, 2);
    assert_string_equal(p.targets[0], "web-*");
    assert_string_equal(p.methods[1], "dht.get");
    assert_true(rpc_principal_allows(&p, "web-01", "node.info"));
    assert_true(rpc_principal_allows(&p, "n07", "dht.get"));
    assert_false(rpc_principal_allows(&p, "db-01", "node.info")); /* target */
    assert_false(rpc_principal_allows(&p, "web-01", "dht.put"));  /* method */
    free(tok);
    /* only one of the claims: the other is unrestricted */
    assert_int_equal(rpc_jwt_mint_ex(secret, sizeof(secret), "viewer", "v", "p2p-admin", 600, NOW,
                                     NULL, 0, methods, 1, &tok),
                     0);
    assert_int_equal(verify(&auth, tok, NOW, &p), 0);
    assert_int_equal(p.n_targets, 0);
    assert_true(rpc_principal_allows(&p, "anything", "node.peers"));
    assert_false(rpc_principal_allows(&p, "anything", "dht.get"));
    free(tok);
    /* a token without claims allows everything (the role still applies) */
    assert_int_equal(
        rpc_jwt_mint(secret, sizeof(secret), "viewer", "v", "p2p-admin", 600, NOW, &tok), 0);
    assert_int_equal(verify(&auth, tok, NOW, &p), 0);
    assert_true(rpc_principal_allows(&p, "x", "y.z"));
    free(tok);
}

static void test_acl_mint_rejects(void **state)
{
    char *tok = NULL;
    char long_pat[RPC_MAX_ACL_PATTERN + 2];
    memset(long_pat, 'a', sizeof(long_pat) - 1);
    long_pat[sizeof(long_pat) - 1] = 0;
    const char *bad[] = {"a b", "", long_pat, "x\"y", NULL};
    for (size_t i = 0; i < P2P_ARRAY_LEN(bad); i++) {
        assert_int_equal(rpc_jwt_mint_ex(secret, sizeof(secret), "viewer", "v", "p2p-admin", 60,
                                         NOW, &bad[i], 1, NULL, 0, &tok),
                         -EINVAL);
        assert_null(tok);
    }
    const char *many[RPC_MAX_ACL_PATTERNS + 1];
    for (size_t i = 0; i < P2P_ARRAY_LEN(many); i++)
        many[i] = "n*";
    assert_int_equal(rpc_jwt_mint_ex(secret, sizeof(secret), "viewer", "v", "p2p-admin", 60, NOW,
                                     NULL, 0, many, P2P_ARRAY_LEN(many), &tok),
                     -EINVAL);
    assert_int_equal(rpc_jwt_mint_ex(secret, sizeof(secret), "viewer", "v", "p2p-admin", 60, NOW,
                                     NULL, 0, many, RPC_MAX_ACL_PATTERNS, &tok),
                     0);
    free(tok);
}

static void test_acl_malformed_claims(void **state)
{
    rpc_principal_t p;
    const char *bad[] = {
        "{\"targets\": \"web-*\"}",
        "{\"targets\": []}",
        "{\"targets\": [1]}",
        "{\"targets\": [\"ok\", null]}",
        "{\"methods\": [\"node info\"]}",
        "{\"methods\": {\"a\": 1}}",
        "{\"methods\": [\"\"]}",
        "{\"methods\": [\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}",
        "{\"targets\": [\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
        "\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\"]}",
    };
    for (size_t i = 0; i < P2P_ARRAY_LEN(bad); i++) {
        char *tok = craft_claims(bad[i]);
        const char *why = NULL;
        assert_int_equal(rpc_jwt_verify(&auth, tok, strlen(tok), NOW, &p, &why), -EACCES);
        assert_non_null(strstr(why, "claim"));
        free(tok);
    }
    /* the same shapes done right are accepted: 64 characters, 16 patterns */
    char *tok = craft_claims(
        "{\"methods\": [\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"],"
        "\"targets\": [\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\",\"a\","
        "\"a\",\"a\",\"a\",\"a\",\"a\",\"?\"]}");
    assert_int_equal(verify(&auth, tok, NOW, &p), 0);
    assert_int_equal(p.n_targets, 16);
    assert_int_equal(strlen(p.methods[0]), 64);
    free(tok);
}

typedef struct revoked_fx {
    char jti[RPC_MAX_JTI + 1]; /* the jti to refuse */
    char seen_jti[RPC_MAX_JTI + 1], seen_sub[RPC_MAX_SUB + 1];
    uint64_t seen_iat;
    int calls;
} revoked_fx_t;

static int is_revoked(void *ctx, const char *jti, const char *sub, uint64_t iat)
{
    revoked_fx_t *r = ctx;
    r->calls++;
    snprintf(r->seen_jti, sizeof(r->seen_jti), "%s", jti);
    snprintf(r->seen_sub, sizeof(r->seen_sub), "%s", sub);
    r->seen_iat = iat;
    return r->jti[0] && strcmp(jti, r->jti) == 0;
}

static void test_revocation(void **state)
{
    (void)state;
    revoked_fx_t rf;
    memset(&rf, 0, sizeof(rf));
    rpc_auth_config_t a = auth;
    a.is_revoked = is_revoked;
    a.revoked_ctx = &rf;
    char *t1 = NULL, *t2 = NULL;
    rpc_principal_t p;
    assert_int_equal(
        rpc_jwt_mint(secret, sizeof(secret), "admin", "alice", "p2p-admin", 600, NOW, &t1), 0);
    assert_int_equal(
        rpc_jwt_mint(secret, sizeof(secret), "admin", "alice", "p2p-admin", 600, NOW, &t2), 0);
    assert_int_equal(verify(&a, t1, NOW, &p), 0);
    assert_int_equal(rf.calls, 1);
    assert_int_equal(strlen(p.jti), 32); /* 16 random bytes in hex */
    assert_string_equal(rf.seen_jti, p.jti);
    assert_string_equal(rf.seen_sub, "alice");
    assert_int_equal(rf.seen_iat, NOW);
    assert_int_equal(p.iat, NOW);
    /* revoke t1's jti: t1 is refused with its reason, t2 (another jti) still passes */
    snprintf(rf.jti, sizeof(rf.jti), "%s", p.jti);
    const char *why = NULL;
    assert_int_equal(rpc_jwt_verify(&a, t1, strlen(t1), NOW, &p, &why), -EACCES);
    assert_string_equal(why, "token revoked");
    assert_int_equal(p.role, RPC_ROLE_NONE);
    assert_true(rpc_principal_revoked(
                    &a, &(rpc_principal_t){.role = RPC_ROLE_VIEWER, .jti = {0}}) == false);
    assert_int_equal(verify(&a, t2, NOW, &p), 0);
    assert_false(rpc_principal_revoked(&a, &p));
    snprintf(rf.jti, sizeof(rf.jti), "%s", p.jti);
    assert_true(rpc_principal_revoked(&a, &p)); /* a principal bound earlier, revoked since */
    /* without the callback nothing is revoked; a bad signature never reaches the callback */
    assert_int_equal(verify(&auth, t2, NOW, &p), 0);
    int before = rf.calls;
    t1[strlen(t1) - 2] ^= 1;
    assert_int_equal(verify(&a, t1, NOW, &p), -EACCES);
    assert_int_equal(rf.calls, before);
    free(t1);
    free(t2);
    /* a token without jti and iat: the callback sees "" and 0 */
    char *c = craft(JWT_ALG_HS256, secret, sizeof(secret), "viewer", "p2p-admin", NOW + 60, 0);
    assert_int_equal(verify(&a, c, NOW, &p), 0);
    assert_string_equal(rf.seen_jti, "");
    assert_int_equal(rf.seen_iat, 0);
    free(c);
}

static void test_jti_iat_claims(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"jti\":5}",
        "{\"jti\":\"0123456789012345678901234567890123456789012345678901234567890123X\"}",
        "{\"iat\":\"yesterday\"}",
    };
    rpc_principal_t p;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        jwt_t *j = NULL;
        assert_int_equal(jwt_new(&j), 0);
        jwt_add_grant(j, "role", "viewer");
        jwt_add_grant(j, "aud", "p2p-admin");
        jwt_add_grant_int(j, "exp", (long)NOW + 60);
        assert_int_equal(jwt_add_grants_json(j, bad[i]), 0);
        assert_int_equal(jwt_set_alg(j, JWT_ALG_HS256, secret, sizeof(secret)), 0);
        char *t = jwt_encode_str(j);
        jwt_free(j);
        assert_int_equal(verify(&auth, t, NOW, &p), -EACCES);
        free(t);
    }
}

static void test_session_jti(void **state)
{
    (void)state;
    static const char sess[] = "00112233445566778899aabbccddeeff";
    char *tok = NULL, *tok2 = NULL;
    rpc_principal_t p;
    assert_int_equal(rpc_jwt_mint_session(secret, sizeof(secret), "admin", "alice", "p2p-admin",
                                          600, NOW, sess, &tok),
                     0);
    assert_int_equal(verify(&auth, tok, NOW, &p), 0);
    /* SESSION.RANDOM: the session, a dot, 24 hex digits, different each time */
    assert_int_equal(strlen(p.jti), sizeof(sess) - 1 + 1 + 24);
    assert_memory_equal(p.jti, sess, sizeof(sess) - 1);
    assert_int_equal(p.jti[sizeof(sess) - 1], '.');
    char first[RPC_MAX_JTI + 1];
    strcpy(first, p.jti);
    assert_int_equal(rpc_jwt_mint_session(secret, sizeof(secret), "admin", "alice", "p2p-admin",
                                          600, NOW, sess, &tok2),
                     0);
    assert_int_equal(verify(&auth, tok2, NOW, &p), 0);
    assert_string_not_equal(first, p.jti);
    free(tok);
    free(tok2);
    /* a session id is 1..RPC_MAX_SESSION_PREFIX lowercase hex digits */
    static const char *const bad[] = {"", "ABCDEF", "00112233445566778899aabbccddeeff0", "ab.cd",
                                      "f."};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tok = NULL;
        assert_int_equal(rpc_jwt_mint_session(secret, sizeof(secret), "admin", "a", "p2p-admin", 60,
                                              NOW, bad[i], &tok),
                         -EINVAL);
        assert_null(tok);
    }
    assert_int_equal(rpc_jwt_mint_session(secret, sizeof(secret), "admin", "a", "p2p-admin", 60,
                                          NOW, NULL, &tok),
                     -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mint_verify),
        cmocka_unit_test(test_mint_rejects),
        cmocka_unit_test(test_wrong_secret_and_rotation),
        cmocka_unit_test(test_wrong_audience),
        cmocka_unit_test(test_expired_and_future),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_alg_pinned),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_acl_claims),
        cmocka_unit_test(test_acl_mint_rejects),
        cmocka_unit_test(test_acl_malformed_claims),
        cmocka_unit_test(test_revocation),
        cmocka_unit_test(test_jti_iat_claims),
        cmocka_unit_test(test_session_jti),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
