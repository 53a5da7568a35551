/* keys.c: creation and loading of the identity, network key and auth secret files (see keys.h). */
#include "node/keys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "base/base.h"

#ifndef NODE_KEY_FILE_MAX
#define NODE_KEY_FILE_MAX 1024 /* largest key file read, in bytes */
#endif

int node_data_dir_ensure(const char *dir)
{
    char path[NODE_PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path)) return -ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    while (n > 1 && path[n - 1] == '/')
        path[--n] = '\0';
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST) return -errno;
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) return -errno;
    struct stat st;
    if (stat(path, &st) != 0) return -errno;
    if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
    return 0;
}

int node_key_file_load(const char *path, uint8_t *out, size_t cap, size_t min, size_t max)
{
    char text[NODE_KEY_FILE_MAX + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, text + len, sizeof(text) - 1 - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
        if (r == 0) break;
        len += (size_t)r;
        if (len == sizeof(text) - 1) {
            close(fd);
            return -EINVAL;
        }
    }
    close(fd);
    text[len] = '\0';
    int got = p2p_b64_decode(out, cap, text, len);
    sodium_memzero(text, sizeof(text));
    if (got < 0) return -EINVAL;
    if ((size_t)got < min || (size_t)got > max) {
        sodium_memzero(out, (size_t)got);
        return -EINVAL;
    }
    return got;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int node_key_file_create(const char *path, const uint8_t *data, size_t len)
{
    char tmp[NODE_PATH_MAX + 32], text[NODE_KEY_FILE_MAX];
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
        return -ENAMETOOLONG;
    int n = p2p_b64_encode(text, sizeof(text) - 1, data, len);
    if (n < 0) return n;
    text[n++] = '\n';
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return -errno;
    int rc = write_all(fd, text, (size_t)n);
    sodium_memzero(text, sizeof(text));
    if (rc == 0 && fchmod(fd, 0600) != 0) rc = -errno;
    if (rc == 0 && fsync(fd) != 0) rc = -errno;
    if (close(fd) != 0 && rc == 0) rc = -errno;
    /* link() refuses to replace an existing file, so two first starts cannot both win. */
    if (rc == 0 && link(tmp, path) != 0) rc = -errno;
    unlink(tmp);
    return rc;
}

int node_key_file_ensure(const char *path, uint8_t *out, size_t cap, size_t min, size_t max,
                         size_t create_len, bool *created)
{
    if (created) *created = false;
    int rc = node_key_file_load(path, out, cap, min, max);
    if (rc != -ENOENT) return rc;
    if (create_len > cap) return -EINVAL;
    randombytes_buf(out, create_len);
    rc = node_key_file_create(path, out, create_len);
    if (rc == -EEXIST) return node_key_file_load(path, out, cap, min, max);
    if (rc < 0) return rc;
    if (created) *created = true;
    return (int)create_len;
}

int node_identity_ensure(const char *dir, uint8_t pk[DHT_PK_LEN], uint8_t sk[DHT_SK_LEN],
                         bool *created)
{
    char path[NODE_PATH_MAX + 32];
    uint8_t check[DHT_PK_LEN];
    if (created) *created = false;
    if ((size_t)snprintf(path, sizeof(path), "%s/identity.key", dir) >= sizeof(path))
        return -ENAMETOOLONG;
    int rc = node_key_file_load(path, sk, DHT_SK_LEN, DHT_SK_LEN, DHT_SK_LEN);
    if (rc == -ENOENT) {
        crypto_sign_ed25519_keypair(pk, sk);
        rc = node_key_file_create(path, sk, DHT_SK_LEN);
        if (rc == -EEXIST)
            rc = node_key_file_load(path, sk, DHT_SK_LEN, DHT_SK_LEN, DHT_SK_LEN);
        else if (rc == 0 && created)
            *created = true;
    }
    if (rc < 0) return rc;
    /* The secret key is seed || public key: recompute the public key from the seed. */
    uint8_t seed[32], sk2[DHT_SK_LEN];
    crypto_sign_ed25519_sk_to_seed(seed, sk);
    crypto_sign_ed25519_seed_keypair(check, sk2, seed);
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(sk2, sizeof(sk2));
    if (sodium_memcmp(check, sk + 32, DHT_PK_LEN) != 0) return -EINVAL;
    memcpy(pk, check, DHT_PK_LEN);
    return 0;
}

static int path_in(char *out, size_t cap, const char *explicit_path, const char *dir,
                   const char *name)
{
    int n = explicit_path[0] ? snprintf(out, cap, "%s", explicit_path)
                             : snprintf(out, cap, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= cap) ? -ENAMETOOLONG : 0;
}

int node_network_key_load(node_t *node, char *err, size_t errlen)
{
    const node_config_t *cfg = &node->cfg;
    char path[NODE_PATH_MAX + 32];
    int rc;
    if (cfg->network_key_b64[0]) {
        rc = p2p_b64_decode(node->network_key, sizeof(node->network_key), cfg->network_key_b64,
                            strlen(cfg->network_key_b64));
        if (rc != DHT_NET_KEY_LEN) {
            snprintf(err, errlen, "invalid NETWORK_KEY: not standard base64 of exactly 32 bytes");
            return -EINVAL;
        }
        return 0;
    }
    if ((rc = path_in(path, sizeof(path), cfg->network_key_file, cfg->data_dir, "network.key")) < 0)
        goto fail;
    if (cfg->network_key_file[0])
        rc = node_key_file_load(path, node->network_key, DHT_NET_KEY_LEN, DHT_NET_KEY_LEN,
                                DHT_NET_KEY_LEN);
    else
        rc = node_key_file_ensure(path, node->network_key, DHT_NET_KEY_LEN, DHT_NET_KEY_LEN,
                                  DHT_NET_KEY_LEN, DHT_NET_KEY_LEN, NULL);
    if (rc == -EINVAL) {
        snprintf(err, errlen, "invalid network key file %s: not one line of base64 of 32 bytes",
                 path);
        return rc;
    }
    if (rc < 0) goto fail;
    return 0;
fail:
    snprintf(err, errlen, "cannot read network key file %s: %s", path, strerror(-rc));
    return rc == -ENOENT && cfg->network_key_file[0] ? -EINVAL : rc; /* a bad flag */
}

int node_auth_secret_load(node_t *node, char *err, size_t errlen)
{
    const node_config_t *pc = &node->cfg;
    node->auth_prev_len = 0;
    if (pc->auth_secret_prev_b64[0]) {
        size_t n = strlen(pc->auth_secret_prev_b64);
        int d =
            p2p_b64_decode(node->auth_prev, sizeof(node->auth_prev), pc->auth_secret_prev_b64, n);
        if (d >= 32) {
            node->auth_prev_len = (size_t)d;
        } else if (n >= 32 && n <= sizeof(node->auth_prev)) {
            memcpy(node->auth_prev, pc->auth_secret_prev_b64,
                   n); /* a plain string, as AUTH_SECRET */
            node->auth_prev_len = n;
        }
    }
    const node_config_t *cfg = &node->cfg;
    char path[NODE_PATH_MAX + 32];
    int rc;
    if (cfg->auth_secret_b64[0]) {
        /* Base64 of >= 32 bytes is decoded; any other string of >= 32 bytes is used as it is,
         * like the Python system's AUTH_SECRET. */
        size_t n = strlen(cfg->auth_secret_b64);
        rc = p2p_b64_decode(node->auth_secret, sizeof(node->auth_secret), cfg->auth_secret_b64, n);
        if (rc >= 32) {
            node->auth_secret_len = (size_t)rc;
            return 0;
        }
        if (n < 32 || n > sizeof(node->auth_secret)) {
            snprintf(err, errlen, "invalid AUTH_SECRET: must hold 32..%zu bytes",
                     sizeof(node->auth_secret));
            return -EINVAL;
        }
        memcpy(node->auth_secret, cfg->auth_secret_b64, n);
        node->auth_secret_len = n;
        return 0;
    }
    if ((rc = path_in(path, sizeof(path), cfg->auth_secret_file, cfg->data_dir, "auth.secret")) < 0)
        goto fail;
    if (cfg->auth_secret_file[0])
        rc = node_key_file_load(path, node->auth_secret, sizeof(node->auth_secret), 32,
                                sizeof(node->auth_secret));
    else
        rc = node_key_file_ensure(path, node->auth_secret, sizeof(node->auth_secret), 32,
                                  sizeof(node->auth_secret), 32, NULL);
    if (rc == -EINVAL) {
        snprintf(err, errlen, "invalid auth secret file %s: not one line of base64 of >= 32 bytes",
                 path);
        return rc;
    }
    if (rc < 0) goto fail;
    node->auth_secret_len = (size_t)rc;
    return 0;
fail:
    snprintf(err, errlen, "cannot read auth secret file %s: %s", path, strerror(-rc));
    return rc == -ENOENT && cfg->auth_secret_file[0] ? -EINVAL : rc; /* a bad flag */
}

int node_keys_load(node_t *node, char *err, size_t errlen)
{
    int rc = node_network_key_load(node, err, errlen);
    if (rc < 0) return rc;
    if ((rc = node_auth_secret_load(node, err, errlen)) < 0) return rc;
    rc = node_identity_ensure(node->cfg.data_dir, node->public_key, node->secret_key, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "cannot load identity %s/identity.key: %s", node->cfg.data_dir,
                 rc == -EINVAL ? "not base64 of a 64-byte Ed25519 secret key" : strerror(-rc));
        return rc;
    }
    dht_id_from_pk(&node->id, node->public_key);
    return 0;
}
