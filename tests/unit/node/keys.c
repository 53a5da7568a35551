/* keys.c: unit tests for src/node/keys.c: data dir 0700, key files 0600 holding one base64 line,
 * loading what was created, identity persistence, rejection of bad files, environment values. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/base.h"
#include "node/keys.h"
#include "testdir.h"

static int mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (int)(st.st_mode & 0777);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void data_dir_created_0700(void **state)
{
    (void)state;
    char root[64], dir[128];
    assert_non_null(testdir_make(root));
    snprintf(dir, sizeof(dir), "%s/a/b/c/", root);
    assert_int_equal(node_data_dir_ensure(dir), 0);
    snprintf(dir, sizeof(dir), "%s/a/b/c", root);
    assert_int_equal(mode_of(dir), 0700);
    assert_int_equal(node_data_dir_ensure(dir), 0); /* exists: fine */
    snprintf(dir, sizeof(dir), "%s/file", root);
    write_text(dir, "x");
    assert_int_equal(node_data_dir_ensure(dir), -ENOTDIR);
    testdir_remove(root);
}

static void key_file_created_0600_and_loaded(void **state)
{
    (void)state;
    char root[64], path[128];
    uint8_t a[32], b[32];
    bool created = false;
    assert_non_null(testdir_make(root));
    snprintf(path, sizeof(path), "%s/network.key", root);
    assert_int_equal(node_key_file_load(path, a, 32, 32, 32), -ENOENT);
    assert_int_equal(node_key_file_ensure(path, a, 32, 32, 32, 32, &created), 32);
    assert_true(created);
    assert_int_equal(mode_of(path), 0600);
    /* one line of standard base64 that decodes to the key */
    FILE *f = fopen(path, "r");
    char line[128];
    assert_non_null(fgets(line, sizeof(line), f));
    assert_null(fgets(line + 100, 28, f));
    fclose(f);
    assert_int_equal(strlen(line), 45);
    assert_int_equal(line[44], '\n');
    assert_int_equal(p2p_b64_decode(b, sizeof(b), line, 44), 32);
    assert_memory_equal(a, b, 32);
    /* loaded again, not replaced */
    assert_int_equal(node_key_file_ensure(path, b, 32, 32, 32, 32, &created), 32);
    assert_false(created);
    assert_memory_equal(a, b, 32);
    assert_int_equal(node_key_file_create(path, a, 32), -EEXIST);
    testdir_remove(root);
}

static void bad_key_files_rejected(void **state)
{
    (void)state;
    char root[64], path[128];
    uint8_t k[64];
    assert_non_null(testdir_make(root));
    snprintf(path, sizeof(path), "%s/k", root);
    write_text(path, "c2hvcnQ=\n"); /* 5 bytes */
    assert_int_equal(node_key_file_load(path, k, 32, 32, 32), -EINVAL);
    write_text(path, "not base64 at all!\n");
    assert_int_equal(node_key_file_load(path, k, 32, 32, 32), -EINVAL);
    write_text(path, "");
    assert_int_equal(node_key_file_load(path, k, 32, 32, 32), -EINVAL);
    /* unpadded base64 and surrounding blanks are accepted */
    write_text(path, "  AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n");
    assert_int_equal(node_key_file_load(path, k, 32, 32, 32), 32);
    assert_int_equal(k[31], 31);
    testdir_remove(root);
}

static void identity_persists(void **state)
{
    (void)state;
    char root[64], path[128];
    uint8_t pk1[32], sk1[64], pk2[32], sk2[64];
    bool created;
    assert_non_null(testdir_make(root));
    assert_int_equal(node_identity_ensure(root, pk1, sk1, &created), 0);
    assert_true(created);
    snprintf(path, sizeof(path), "%s/identity.key", root);
    assert_int_equal(mode_of(path), 0600);
    assert_int_equal(node_identity_ensure(root, pk2, sk2, &created), 0);
    assert_false(created);
    assert_memory_equal(pk1, pk2, 32);
    assert_memory_equal(sk1, sk2, 64);
    /* the key signs and verifies */
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, (const uint8_t *)"m", 1, sk2);
    assert_int_equal(crypto_sign_verify_detached(sig, (const uint8_t *)"m", 1, pk1), 0);
    /* a secret key whose public half was altered is refused */
    sk1[40] ^= 1;
    unlink(path);
    assert_int_equal(node_key_file_create(path, sk1, 64), 0);
    assert_int_equal(node_identity_ensure(root, pk2, sk2, NULL), -EINVAL);
    testdir_remove(root);
}

static void keys_load_from_config(void **state)
{
    (void)state;
    char root[64];
    assert_non_null(testdir_make(root));
    node_t *n = calloc(1, sizeof(*n));
    char err[256];
    snprintf(n->cfg.data_dir, sizeof(n->cfg.data_dir), "%s", root);
    /* from the environment: network key base64, auth secret raw (>= 32 chars, not base64) */
    snprintf(n->cfg.network_key_b64, sizeof(n->cfg.network_key_b64), "%s",
             "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    snprintf(n->cfg.auth_secret_b64, sizeof(n->cfg.auth_secret_b64), "%s",
             "this is a secret of more than 32 characters!");
    assert_int_equal(node_keys_load(n, err, sizeof(err)), 0);
    assert_int_equal(n->network_key[5], 5);
    assert_int_equal(n->auth_secret_len, strlen("this is a secret of more than 32 characters!"));
    dht_id_t id;
    dht_id_from_pk(&id, n->public_key);
    assert_memory_equal(id.b, n->id.b, 32);
    /* base64 auth secret decodes (the JWT key is the decoded bytes) */
    snprintf(n->cfg.auth_secret_b64, sizeof(n->cfg.auth_secret_b64), "%s",
             "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj"); /* 36 bytes */
    assert_int_equal(node_auth_secret_load(n, err, sizeof(err)), 0);
    assert_int_equal(n->auth_secret_len, 36);
    assert_int_equal(n->auth_secret[35], 35);
    /* defaults: files in the data dir, created 0600 */
    n->cfg.network_key_b64[0] = n->cfg.auth_secret_b64[0] = '\0';
    assert_int_equal(node_keys_load(n, err, sizeof(err)), 0);
    char path[128];
    snprintf(path, sizeof(path), "%s/network.key", root);
    assert_int_equal(mode_of(path), 0600);
    snprintf(path, sizeof(path), "%s/auth.secret", root);
    assert_int_equal(mode_of(path), 0600);
    assert_int_equal(n->auth_secret_len, 32);
    /* an explicit file that is missing is an error naming it, not created */
    snprintf(n->cfg.network_key_file, sizeof(n->cfg.network_key_file), "%s/missing.key", root);
    assert_true(node_keys_load(n, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "missing.key"));
    snprintf(path, sizeof(path), "%s/missing.key", root);
    assert_int_equal(access(path, F_OK), -1);
    free(n);
    testdir_remove(root);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(data_dir_created_0700),
        cmocka_unit_test(key_file_created_0600_and_loaded),
        cmocka_unit_test(bad_key_files_rejected),
        cmocka_unit_test(identity_persists),
        cmocka_unit_test(keys_load_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
