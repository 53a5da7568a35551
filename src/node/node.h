/* node.h: the daemon's shared context. main.c builds one node_t from the config and wires the
 * modules together; service and method files receive it as their handler context. */
#ifndef P2P_NODE_H
#define P2P_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>
#include <uv.h>

#include "dht/dht.h"
#include "dht/dht_uv.h"

typedef struct rpc_registry rpc_registry_t;
typedef struct rpc_local rpc_local_t;
typedef struct node_log node_log_t;

#define NODE_NAME_MAX 63
#define NODE_PATH_MAX 1024
#define NODE_MAX_BOOTSTRAP 32
#define NODE_AUTH_SECRET_MAX 256

/* The resolved configuration (flag > environment > config file > default; see config.c). */
typedef struct node_config {
    char name[NODE_NAME_MAX + 1];
    char host[64];      /* HTTP bind address */
    int port;           /* HTTP port */
    char dht_host[64];  /* "" = 0.0.0.0 and :: */
    int dht_port;
    char bootstrap[NODE_MAX_BOOTSTRAP][80]; /* "host:port" or "[v6]:port" */
    int bootstrap_count;
    char data_dir[NODE_PATH_MAX];
    char config_file[NODE_PATH_MAX];
    char network_key_file[NODE_PATH_MAX]; /* "" = DATA_DIR/network.key */
    char network_key_b64[128];            /* NETWORK_KEY from the environment, "" if absent */
    char auth_secret_file[NODE_PATH_MAX]; /* "" = DATA_DIR/auth.secret */
    char auth_secret_b64[512];            /* AUTH_SECRET from the environment, "" if absent */
    int token_expire_minutes;
    int max_peers;
    int peer_timeout_s;
    bool metrics_enabled;
    int log_level;  /* NODE_LOG_DEBUG..NODE_LOG_ERROR */
    int log_json;   /* 1 json, 0 text */
} node_config_t;

typedef struct node {
    uv_loop_t *loop;
    node_config_t cfg;
    node_log_t *log;
    sqlite3 *db;
    uint8_t public_key[DHT_PK_LEN];
    uint8_t secret_key[DHT_SK_LEN];
    dht_id_t id;
    uint8_t network_key[DHT_NET_KEY_LEN];
    uint8_t auth_secret[NODE_AUTH_SECRET_MAX];
    size_t auth_secret_len;
    dht_uv_t *dhtuv;      /* dht_uv_core(node->dhtuv) is the DHT */
    rpc_registry_t *reg;  /* the one method table */
    rpc_local_t *rpc;     /* DATA_DIR/rpc.sock server */
    uint64_t start_wall_ms;
    uint64_t start_mono_ms;
} node_t;

/* Registers the node's own methods (system.local.node.*, system.local.dht.*) in reg, with node as
 * their context. Returns 0 or a negative errno. Implemented in node_methods.c. */
int node_methods_register(node_t *node, rpc_registry_t *reg);

#endif
