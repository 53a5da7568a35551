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
typedef struct rpc_peer rpc_peer_t;
typedef struct members members_t;
typedef struct node_log node_log_t;
typedef struct node_store node_store_t;

#define NODE_NAME_MAX        63
#define NODE_PATH_MAX        1024
#define NODE_MAX_BOOTSTRAP   32
#define NODE_MAX_TAGS        16 /* key=value tags in the node record */
#define NODE_AUTH_SECRET_MAX 256
#define NODE_MAX_FILE_ROOTS  8  /* directories the file service may reach */
#define NODE_MAX_CORS        16 /* CORS_ORIGINS entries (HTTP_MAX_CORS_ORIGINS) */

/* The resolved configuration (flag > environment > config file > default; see config.c). */
typedef struct node_config {
    char name[NODE_NAME_MAX + 1];
    char host[64];     /* HTTP bind address */
    int port;          /* HTTP port */
    char dht_host[64]; /* "" = 0.0.0.0 and :: */
    int dht_port;
    char bootstrap[NODE_MAX_BOOTSTRAP][80]; /* "host:port" or "[v6]:port" */
    int bootstrap_count;
    char tags[NODE_MAX_TAGS][64]; /* "key=value", published in the node record */
    int tag_count;
    char data_dir[NODE_PATH_MAX];
    char config_file[NODE_PATH_MAX];
    char network_key_file[NODE_PATH_MAX]; /* "" = DATA_DIR/network.key */
    char network_key_b64[128];            /* NETWORK_KEY from the environment, "" if absent */
    char auth_secret_file[NODE_PATH_MAX]; /* "" = DATA_DIR/auth.secret */
    char auth_secret_b64[512];            /* AUTH_SECRET from the environment, "" if absent */
    char auth_secret_prev_b64[512];       /* AUTH_SECRET_PREVIOUS (rotation), "" if absent */
    int token_expire_minutes;
    int max_peers;
    int peer_timeout_s;
    bool metrics_enabled;
    bool peer_bulk; /* offer/accept bulk mode (AES-256-GCM) on the peer channel */
    int log_level;  /* NODE_LOG_DEBUG..NODE_LOG_ERROR */
    int log_json;   /* 1 json, 0 text */
    char file_roots[NODE_MAX_FILE_ROOTS][NODE_PATH_MAX]; /* FILE_ROOTS, default DATA_DIR/files */
    int file_root_count;
    bool file_roots_default;      /* the default root (created on start when absent) */
    char check_port_allow[1024];  /* CHECK_PORT_ALLOW: ADDR[/BITS][,...], "" = none extra */
    char alert_webhook[1024];     /* ALERT_WEBHOOK_URL, "" = none */
    char tls_cert[NODE_PATH_MAX]; /* --tls-cert: HTTPS when set (with tls_key) */
    char tls_key[NODE_PATH_MAX];
    char cors_origins[1024];    /* CORS_ORIGINS, comma-separated, "" = CORS off */
    int http_rate;              /* HTTP_RATE_LIMIT requests/s per client address, 0 = off */
    int http_burst;             /* HTTP_RATE_BURST */
    char ui_dir[NODE_PATH_MAX]; /* UI_DIR, "" = admin-ui/ beside the program or in the cwd */
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
    uint8_t auth_prev[NODE_AUTH_SECRET_MAX]; /* previous secret during a rotation */
    size_t auth_prev_len;                    /* 0 = none */
    dht_uv_t *dhtuv;                         /* dht_uv_core(node->dhtuv) is the DHT */
    rpc_registry_t *reg;                     /* the one method table */
    rpc_local_t *rpc;                        /* DATA_DIR/rpc.sock server */
    uint64_t start_wall_ms;
    uint64_t start_mono_ms;

    /* Daemon wiring (daemon.c). Set only by node_start(); other modules may read them. */
    node_store_t *store;               /* DATA_DIR/node.db; node->db is its handle */
    char rpc_path[NODE_PATH_MAX + 16]; /* DATA_DIR/rpc.sock */
    uint64_t ready_mono_ms;            /* when "ready" was logged, 0 before */
    bool joined;                       /* a lookup of our own id completed with contacts */
    members_t *members;                /* the membership view (cluster.c) */
    rpc_peer_t *peer;                  /* the peer channel (cluster.c) */
    struct svc_process *svc_process;   /* the services (src/services/services.h) */
    struct svc_supervise *svc_supervise;
    struct svc_file *svc_file;
    struct svc_network *svc_network;
    struct svc_monitor *svc_monitor;
    struct http_api *http; /* the HTTP/WebSocket API (src/http/api.h) */
    /* Token revocation, consulted by every door through node_auth_config (NULL = none): the users
     * part of the HTTP API sets it while it runs (src/http/users.c). */
    int (*token_revoked)(void *ctx, const char *jti, const char *sub, uint64_t iat);
    void *token_revoked_ctx;
    /* private to cluster.c */
    uv_timer_t gossip_timer;
    bool cl_timer_open;
    uint64_t cl_rng, cl_next_publish;
    /* private to daemon.c */
    uv_timer_t save_timer, boot_timer;
    uv_getaddrinfo_t resolve_req[NODE_MAX_BOOTSTRAP];
    bool resolving[NODE_MAX_BOOTSTRAP];
    uint64_t last_boot_ms;
    bool self_lookup_running, stopping;
    int lock_fd;
    int pending_parts;
    void (*stopped_cb)(void *arg);
    void *stopped_arg;
} node_t;

/* Starts the node described by node->cfg on loop (node zeroed apart from cfg): data dir, lock,
 * store, keys, DHT, saved state, bootstrap, local RPC socket, then logs "ready". log is borrowed.
 * Returns 0, or a negative errno after writing one line to err; on failure the caller still runs
 * the loop until handles close, then node_stop is not needed (everything opened was released). */
int node_start(node_t *node, uv_loop_t *loop, node_log_t *log, char *err, size_t errlen);

/* Saves the store, closes every handle and file of a started node. done_cb runs from the loop once
 * all is closed and released (node itself is the caller's). Calling it twice does nothing. */
void node_stop(node_t *node, void (*done_cb)(void *arg), void *arg);

/* Runs the daemon in the foreground with signals (SIGINT/SIGTERM stop, SIGHUP reloads the log level
 * from argv and the environment). Returns the process exit code: 0 after a clean stop, 2 when a
 * key file or key value is malformed (one line on stderr), 1 on other start failures. */
int node_run(const node_config_t *cfg, int argc, char *const *argv, node_log_t *log);

/* Registers the node's own methods (system.local.node.*, system.local.dht.*) in reg, with node as
 * their context. Returns 0 or a negative errno. Implemented in node_methods.c. */
int node_methods_register(node_t *node, rpc_registry_t *reg);

/* Fills out with the node's token-checking settings: the auth secret, the previous one during a
 * rotation, the audience, and a revocation callback that asks node->token_revoked when it is set.
 * Points into node. */
struct rpc_auth_config;
void node_auth_config(const node_t *node, struct rpc_auth_config *out);

#endif
