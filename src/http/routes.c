/* routes.c: the node's HTTP API: the one route table (method, path, role), the bearer-token check
 * per route, the mapping of RPC error codes to HTTP statuses, and start/stop of every part
 * (users, metrics, WebSocket hub) with the server. Handlers live in api.c, bridge.c, users.c,
 * login.c, metrics.c, sd.c and ws_hub.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "base/base.h"
#include "http/api.h"
#include "node/log.h"
#include "rpc/rpc-internal.h"

typedef struct route {
    const char *path;
    unsigned methods; /* bit per enum http_method_id */
    rpc_role_t role;  /* RPC_ROLE_NONE: no token needed */
    http_route_fn fn;
} route_t;

#define M(x)  (1u << HTTP_M_##x)
#define GETH  (M(GET) | M(HEAD))
#define POSTM M(POST)

/* The route table: every endpoint of CONTRACT section 6. Anything else GET goes to the static
 * files of the dashboard. */
static const route_t routes[] = {
    {"/health", GETH, RPC_ROLE_NONE, http_api_health},
    {"/api/info", GETH, RPC_ROLE_VIEWER, http_api_info},
    {"/api/stats", GETH, RPC_ROLE_VIEWER, http_api_stats},
    {"/api/peers", GETH, RPC_ROLE_VIEWER, http_api_peers},
    {"/api/nodes", GETH, RPC_ROLE_VIEWER, http_api_nodes},
    {"/api/rpc", POSTM, RPC_ROLE_NONE, http_bridge_rpc}, /* each call checks its method's role */
    {"/api/auth/login", POSTM, RPC_ROLE_NONE, http_users_login},
    {"/api/auth/refresh", POSTM, RPC_ROLE_NONE, http_users_refresh}, /* the refresh token */
    {"/api/auth/logout", POSTM, RPC_ROLE_NONE, http_users_logout},   /* checks its token */
    {"/metrics", GETH, RPC_ROLE_NONE, http_metrics_scrape},
    {"/api/sd/prometheus", GETH, RPC_ROLE_NONE, http_sd_prometheus},
    {"/ws", M(GET), RPC_ROLE_NONE, http_ws_upgrade}, /* token in the query or first message */
};

int http_status_for_code(int code)
{
    switch (code) {
    case RPC_ERR_PARSE:
    case RPC_ERR_INVALID_REQUEST:
    case RPC_ERR_INVALID_PARAMS:
        return 400;
    case RPC_ERR_UNAUTHENTICATED:
        return 401;
    case RPC_ERR_PERMISSION_DENIED:
        return 403;
    case RPC_ERR_METHOD_NOT_FOUND:
    case RPC_ERR_NOT_FOUND:
        return 404;
    case RPC_ERR_TIMEOUT:
        return 408;
    case RPC_ERR_CONFLICT:
        return 409;
    case RPC_ERR_RESOURCE_EXHAUSTED:
        return 429;
    case RPC_ERR_UNAVAILABLE:
        return 503;
    case RPC_ERR_FAILED_PRECONDITION:
        return 409;
    default:
        return 500;
    }
}

void http_api_error(http_exchange_t *x, int rpc_code, const char *message, const char *param)
{
    http_respond_error(x, http_status_for_code(rpc_code), rpc_code, message, param);
}

void http_api_json(http_exchange_t *x, int status, char *json)
{
    if (!json) {
        http_respond_error(x, 500, RPC_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    http_respond_take(x, status, "application/json", json, strlen(json));
}

int http_api_verify(http_api_t *api, const char *token, size_t len, http_caller_t *who,
                    const char **why)
{
    rpc_auth_config_t auth;
    rpc_principal_t p;
    node_auth_config(api->node, &auth);
    if (rpc_jwt_verify(&auth, token, len, p2p_wall_ms() / 1000, &p, why) < 0) return -EACCES;
    who->role = p.role;
    snprintf(who->sub, sizeof(who->sub), "%s", p.sub);
    who->token = token;
    who->token_len = len;
    return 0;
}

static void allow_header(http_exchange_t *x, unsigned methods)
{
    char v[64] = "";
    static const char *const names[] = {
        [HTTP_M_GET] = "GET", [HTTP_M_HEAD] = "HEAD", [HTTP_M_POST] = "POST"};
    for (int m = HTTP_M_GET; m <= HTTP_M_POST; m++) {
        if (!(methods & (1u << m))) continue;
        if (v[0]) strcat(v, ", ");
        strcat(v, names[m]);
    }
    http_add_header(x, "Allow", v);
}

/* The server's handler: route, check the token, call. */
static void handle(http_exchange_t *x, void *ctx)
{
    http_api_t *api = ctx;
    const http_request_t *r = http_exchange_request(x);
    const route_t *rt = NULL;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(routes[i].path, r->path) == 0) {
            rt = &routes[i];
            break;
        }
    }
    http_caller_t who = {.role = RPC_ROLE_NONE};
    if (!rt) {
        if (r->method != HTTP_M_GET && r->method != HTTP_M_HEAD) {
            if (strncmp(r->path, "/api/", 5) == 0) {
                http_respond_error(x, 404, RPC_ERR_NOT_FOUND, "no such endpoint", NULL);
                return;
            }
            allow_header(x, GETH);
            http_respond_error(x, 405, RPC_ERR_INVALID_REQUEST, "method not allowed", NULL);
            return;
        }
        if (strncmp(r->path, "/api/", 5) == 0) {
            http_respond_error(x, 404, RPC_ERR_NOT_FOUND, "no such endpoint", NULL);
            return;
        }
        http_api_static(x, api, &who);
        return;
    }
    if (!(rt->methods & (1u << r->method))) {
        allow_header(x, rt->methods);
        http_respond_error(x, 405, RPC_ERR_INVALID_REQUEST, "method not allowed", NULL);
        return;
    }
    size_t tl;
    const char *tok = http_bearer(r, &tl);
    if (rt->role != RPC_ROLE_NONE) {
        const char *why = "no bearer token";
        if (!tok || http_api_verify(api, tok, tl, &who, &why) < 0) {
            http_add_header(x, "WWW-Authenticate", "Bearer");
            http_respond_error(x, 401, RPC_ERR_UNAUTHENTICATED, why, NULL);
            return;
        }
        if (who.role < rt->role) {
            http_respond_error(x, 403, RPC_ERR_PERMISSION_DENIED, "the token's role is too low",
                               NULL);
            return;
        }
    } else if (tok) {
        who.token = tok; /* verified by the handler that needs it */
        who.token_len = tl;
    }
    rt->fn(x, api, &who);
}

/* --- start and stop ------------------------------------------------------------------------ */

/* Finds the dashboard's files: UI_DIR, else admin-ui/ beside the program or its parent, else in
 * the working directory. */
static void find_ui_dir(http_api_t *api)
{
    const char *cfg = api->node->cfg.ui_dir;
    char exe[NODE_PATH_MAX], cand[NODE_PATH_MAX + 32];
    if (cfg[0]) {
        snprintf(api->ui_dir, sizeof(api->ui_dir), "%s", cfg);
        return;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        const char *rel[] = {"/admin-ui", "/../admin-ui", "/../share/p2p-admin/admin-ui"};
        for (size_t i = 0; i < 3; i++) {
            snprintf(cand, sizeof(cand), "%s%s/index.html", exe, rel[i]);
            if (access(cand, R_OK) == 0) {
                snprintf(api->ui_dir, sizeof(api->ui_dir), "%s%s", exe, rel[i]);
                return;
            }
        }
    }
    if (access("admin-ui/index.html", R_OK) == 0)
        snprintf(api->ui_dir, sizeof(api->ui_dir), "admin-ui");
}

/* Every open connection is a descriptor: raise the soft limit to the hard one. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void parse_cors(http_config_t *hc, char *buf)
{
    for (char *p = buf; *p && hc->n_cors_origins < HTTP_MAX_CORS_ORIGINS;) {
        char *e = strchr(p, ',');
        if (e) *e = 0;
        if (*p) hc->cors_origins[hc->n_cors_origins++] = p;
        if (!e) break;
        p = e + 1;
    }
}

int http_api_start(node_t *node, http_api_t **out, char *err, size_t errlen)
{
    http_api_t *api = calloc(1, sizeof(*api));
    if (!api) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    api->node = node;
    find_ui_dir(api);
    http_api_health_init(api);
    raise_nofile();
    int r;
    if ((r = http_users_start(api, err, errlen)) < 0) goto fail;
    if ((r = http_metrics_start(api, err, errlen)) < 0) goto fail;
    if ((r = http_ws_start(api, err, errlen)) < 0) goto fail;
    const node_config_t *cfg = &node->cfg;
    char cors[sizeof(cfg->cors_origins)];
    snprintf(cors, sizeof(cors), "%s", cfg->cors_origins);
    http_config_t hc = {
        .host = cfg->host,
        .port = cfg->port,
        .tls_cert_file = cfg->tls_cert[0] ? cfg->tls_cert : NULL,
        .tls_key_file = cfg->tls_key[0] ? cfg->tls_key : NULL,
        .rate_per_s = cfg->http_rate,
        .rate_burst = cfg->http_burst,
    };
    parse_cors(&hc, cors);
    if ((r = http_server_start(node->loop, &hc, handle, api, &api->server, err, errlen)) < 0) {
        api->server = NULL;
        goto fail;
    }
    node->cfg.port = http_server_port(api->server); /* the port picked for --port 0 */
    *out = api;
    return 0;
fail:
    http_api_stop(api, NULL, NULL);
    return r;
}

void http_api_part_done(http_api_t *api)
{
    if (--api->pending_stops > 0) return;
    void (*cb)(void *) = api->stopped_cb;
    void *arg = api->stopped_arg;
    free(api);
    if (cb) cb(arg);
}

static void server_done(void *arg)
{
    http_api_part_done(arg);
}

void http_api_stop(http_api_t *api, void (*done_cb)(void *arg), void *arg)
{
    if (!api) return;
    api->stopped_cb = done_cb;
    api->stopped_arg = arg;
    api->pending_stops = 1; /* held until every part is asked to stop */
    http_ws_stop(api);
    http_bridge_stop(api); /* after the hub, which abandons its own calls */
    http_metrics_stop(api);
    http_users_stop(api);
    if (api->server) {
        api->pending_stops++;
        http_server_stop(api->server, server_done, api);
        api->server = NULL;
    }
    http_api_part_done(api);
}
