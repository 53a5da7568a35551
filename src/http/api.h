/* api.h: the node's HTTP side (compiled into the node library, like the services): the context
 * every endpoint file shares, the route table (routes.c) and each part's entry points.
 *
 * Parts and their files:
 *   routes.c    route table, bearer-token check per route, CORS headers, start/stop of the parts
 *   api.c       /health, /api/info, /api/stats, /api/peers, /api/nodes, static files of admin-ui/
 *   bridge.c    POST /api/rpc: JSON-RPC 2.0 into the one dispatch path (an rpc session)
 *   users.c     users, login, refresh, logout, replication of users across the network
 *   metrics.c   /metrics collectors and /api/sd/prometheus
 *   ws_hub.c    GET /ws: WebSocket sessions, JSON-RPC over the socket, topics */
#ifndef P2P_HTTP_API_H
#define P2P_HTTP_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/http.h"
#include "node/node.h"
#include "rpc/rpc.h"

typedef struct http_users http_users_t;
typedef struct http_metrics http_metrics_t;
typedef struct http_ws_hub http_ws_hub_t;

/* Who is calling, from a verified bearer token (role NONE when the route needs none and no token
 * was given). token points into the request (valid until the exchange is answered). */
typedef struct http_caller {
    rpc_role_t role;
    char sub[RPC_MAX_SUB + 1];
    const char *token;
    size_t token_len;
} http_caller_t;

typedef struct http_api {
    node_t *node;
    http_server_t *server;
    http_users_t *users;
    http_metrics_t *metrics;
    http_ws_hub_t *ws;
    struct http_bridge_req *bridge_reqs; /* bridge.c: payloads in flight */
    bool bridge_stopping;       /* bridge.c: http_bridge_stop holds a pending_stops count */
    char ui_dir[NODE_PATH_MAX]; /* admin-ui/ directory of static files, "" = none found */
    char health_head[192];      /* api.c: /health's body up to the uptime (http_api_health_init) */
    size_t health_head_len;
    int pending_stops;
    void (*stopped_cb)(void *arg);
    void *stopped_arg;
} http_api_t;

/* A route handler: the caller passed the route's role check. */
typedef void (*http_route_fn)(http_exchange_t *x, http_api_t *api, const http_caller_t *who);

/* Starts the node's HTTP server on cfg.host:cfg.port with every part. Returns 0 and *out, or a
 * negative errno after writing one line to err. */
int http_api_start(node_t *node, http_api_t **out, char *err, size_t errlen);

/* Stops the server and every part; done_cb runs from the loop once all is closed and freed. NULL
 * api: done_cb is not called. */
void http_api_stop(http_api_t *api, void (*done_cb)(void *arg), void *arg);

/* Answers an RPC error code with the HTTP status that fits it (400, 401, 403, 404, 408, 409, 413,
 * 429, 500, 503) and the CONTRACT error body. */
void http_api_error(http_exchange_t *x, int rpc_code, const char *message, const char *param);

/* The HTTP status for an RPC error code. */
int http_status_for_code(int rpc_code);

/* Answers with a JSON text (malloc'd, taken) and status. */
void http_api_json(http_exchange_t *x, int status, char *json);

/* Verifies a bearer token (signature, exp/nbf/aud, revocation) and fills *who. Returns 0, or
 * -EACCES with *why a static reason. */
int http_api_verify(http_api_t *api, const char *token, size_t len, http_caller_t *who,
                    const char **why);

/* --- api.c ------------------------------------------------------------------------------ */
void http_api_health(http_exchange_t *x, http_api_t *api, const http_caller_t *who);

/* Writes api->health_head, /health's body up to its uptime (name and id are fixed while the node
 * runs). Called once by http_api_start. */
void http_api_health_init(http_api_t *api);
void http_api_info(http_exchange_t *x, http_api_t *api, const http_caller_t *who);
void http_api_stats(http_exchange_t *x, http_api_t *api, const http_caller_t *who);
void http_api_peers(http_exchange_t *x, http_api_t *api, const http_caller_t *who);
void http_api_nodes(http_exchange_t *x, http_api_t *api, const http_caller_t *who);
/* GET of anything not routed: a file beneath ui_dir (index.html for directories), else 404. */
void http_api_static(http_exchange_t *x, http_api_t *api, const http_caller_t *who);

/* --- the parts' entry points ---------------------------------------------------------------
 * Each part's start fills its pointer in api (api->users...) or fails with one line in err; its
 * stop releases everything, and when it must wait for handles to close it takes one count of
 * api->pending_stops and gives it back with http_api_part_done(api) from the loop. */
void http_api_part_done(http_api_t *api);

/* bridge.c: one JSON-RPC 2.0 payload (a request object or a batch array, as text; copied, so it
 * may be freed when this returns) through the one dispatch path: an rpc session on node->reg, each
 * request a msgpack-RPC request frame carrying the caller's token as `_token` (token may be NULL;
 * it is copied too). Remote addresses go through the registry's router like on the socket. With
 * lenient, the "jsonrpc" member may be absent (WebSocket calls {"id","method","params"}). done
 * runs once from the loop (never from inside this call) with the response text (malloc'd, the
 * callee frees it; NULL when every request was a notification): one response object, or for a
 * batch an array of the answered elements in request order. Returns a handle, or NULL on no
 * memory (done is then never called). */
typedef struct http_bridge_req http_bridge_req_t;
typedef void (*http_bridge_done_fn)(void *arg, char *response_json, size_t len);
http_bridge_req_t *http_bridge_run(http_api_t *api, const char *token, size_t token_len,
                                   const char *body, size_t len, bool lenient,
                                   http_bridge_done_fn done, void *arg);
/* The requester left: done will not be called; calls in flight are answered into the void. Safe
 * anywhere before done ran (even inside a handler of the payload); not after. NULL ok. */
void http_bridge_abandon(http_bridge_req_t *req);
/* POST /api/rpc: the body through http_bridge_run with the bearer token. Status: 200, or for a
 * single request answered with an error http_status_for_code(code); 204 when nothing is answered;
 * a body that is not JSON-RPC 400 (a batch past HTTP_MAX_JSONRPC_BATCH 413). */
void http_bridge_rpc(http_exchange_t *x, http_api_t *api, const http_caller_t *who);
/* Part of http_api_stop (before the server stops): payloads in flight stop feeding calls and are
 * answered now, unanswered requests with UNAVAILABLE; it holds one count of api->pending_stops
 * until every one is closed. */
void http_bridge_stop(http_api_t *api);

/* users.c and friends: login, refresh, logout; revocation for http_api_verify. */
int http_users_start(http_api_t *api, char *err, size_t errlen);
void http_users_stop(http_api_t *api);
void http_users_login(http_exchange_t *x, http_api_t *api, const http_caller_t *who);
void http_users_refresh(http_exchange_t *x, http_api_t *api, const http_caller_t *who);
void http_users_logout(http_exchange_t *x, http_api_t *api, const http_caller_t *who);

/* metrics.c, sd.c: GET /metrics and GET /api/sd/prometheus. */
int http_metrics_start(http_api_t *api, char *err, size_t errlen);
void http_metrics_stop(http_api_t *api);
void http_metrics_scrape(http_exchange_t *x, http_api_t *api, const http_caller_t *who);
void http_sd_prometheus(http_exchange_t *x, http_api_t *api, const http_caller_t *who);
/* RPC calls this node dispatched (every door) since start, and those answered with an error
 * (0, 0 for NULL). */
void http_metrics_rpc_counts(const http_metrics_t *m, uint64_t *calls, uint64_t *errors);

/* ws_hub.c: GET /ws, and what other parts read of it. */
int http_ws_start(http_api_t *api, char *err, size_t errlen);
void http_ws_stop(http_api_t *api);
void http_ws_upgrade(http_exchange_t *x, http_api_t *api, const http_caller_t *who);
size_t http_ws_clients(const http_ws_hub_t *hub); /* 0 for NULL */

#endif
