/* keys.h: the node's secret files in DATA_DIR: the Ed25519 identity (identity.key), the network key
 * (network.key) and the JWT auth secret (auth.secret). Each holds one line of standard base64 and
 * is created with mode 0600 on first start when absent. */
#ifndef P2P_NODE_KEYS_H
#define P2P_NODE_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "node/node.h"

/* Creates dir and its missing parents; the last component gets mode 0700. Returns 0 or -errno. */
int node_data_dir_ensure(const char *dir);

/* Reads a one-line base64 file into out. Returns the decoded length, -ENOENT when the file is
 * absent, -EINVAL when it is not base64 or its length is outside min..max, or another -errno. */
int node_key_file_load(const char *path, uint8_t *out, size_t cap, size_t min, size_t max);

/* Creates path with mode 0600 holding base64(data) and a newline; never replaces an existing file
 * (-EEXIST). The file appears complete or not at all. Returns 0 or -errno. */
int node_key_file_create(const char *path, const uint8_t *data, size_t len);

/* Loads path, or when absent fills create_len random bytes and creates it (*created = true).
 * A concurrent creator wins and its file is loaded. Returns the length or a negative errno. */
int node_key_file_ensure(const char *path, uint8_t *out, size_t cap, size_t min, size_t max,
                         size_t create_len, bool *created);

/* Loads DATA_DIR/identity.key (base64 of the 64-byte Ed25519 secret key, which holds the public
 * key) or creates a new key pair. Checks that the public key matches the secret. Returns 0 or
 * -errno. */
int node_identity_ensure(const char *dir, uint8_t pk[DHT_PK_LEN], uint8_t sk[DHT_SK_LEN],
                         bool *created);

/* Fills node->network_key from node->cfg (NETWORK_KEY, the configured file, or DATA_DIR/network.key
 * created when absent). Returns 0, or -EINVAL / -errno with one line in err. */
int node_network_key_load(node_t *node, char *err, size_t errlen);

/* Fills node->auth_secret and auth_secret_len from node->cfg (AUTH_SECRET: base64 of >= 32 bytes,
 * else its raw bytes; the configured file; or DATA_DIR/auth.secret created with 32 random bytes).
 * Returns 0, or -EINVAL / -errno with one line in err. */
int node_auth_secret_load(node_t *node, char *err, size_t errlen);

/* Fills node->network_key and node->auth_secret from node->cfg (the value itself from the
 * environment, the configured file, or DATA_DIR/network.key and DATA_DIR/auth.secret, created
 * when absent), and the identity. On failure writes one line naming the item to err and returns
 * -EINVAL (bad content, or a configured file that does not exist) or another negative errno. */
int node_keys_load(node_t *node, char *err, size_t errlen);

#endif
