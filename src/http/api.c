/* api.c: the node's own endpoints: /health, /api/info, /api/stats, /api/peers, /api/nodes, and the
 * dashboard's static files. info, peers and nodes are the node's RPC methods (node.info,
 * node.peers, node.nodes) called through the bridge, so the HTTP answer and the RPC answer are
 * the same data by construction. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "base/base.h"
#include "dht/dht.h"
#include "http/api.h"
#include "node/members.h"
#include "rpc/peer.h"

_Static_assert(sizeof(((http_api_t *)0)->health_head) >
                   sizeof("{\"status\":\"ok\",\"name\":\"\",\"node_id\":\"\",\"uptime_s\":") +
                       NODE_NAME_MAX + 2 * DHT_ID_LEN,
               "health_head holds the longest name and the id");

void http_api_health_init(http_api_t *api)
{
    const node_t *node = api->node;
    char id[2 * DHT_ID_LEN + 1];
    p2p_hex_encode(id, node->id.b, DHT_ID_LEN);
    /* name is a DNS label and id hex: nothing to escape; the assertion above: it fits */
    int n = snprintf(
        api->health_head, sizeof(api->health_head),
        "{\"status\":\"ok\",\"name\":\"%s\",\"node_id\":\"%s\",\"uptime_s\":", node->cfg.name, id);
    api->health_head_len = (size_t)n;
}

void http_api_health(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    (void)who;
    const node_t *node = api->node;
    uint64_t now = p2p_mono_ms();
    uint64_t up = now > node->start_mono_ms ? (now - node->start_mono_ms) / 1000 : 0;
    char body[sizeof(api->health_head) + P2P_U64_DEC_MAX + 1];
    memcpy(body, api->health_head, api->health_head_len);
    size_t n = api->health_head_len + p2p_u64_dec(body + api->health_head_len, up);
    body[n++] = '}';
    http_respond(x, 200, "application/json", body, n);
}

/* --- endpoints answered by the node's methods ---------------------------------------------- */

typedef json_t *(*shape_fn)(http_api_t *api, json_t *result);

typedef struct local_call {
    http_exchange_t *x;
    http_api_t *api;
    shape_fn shape;
} local_call_t;

static void local_done(void *arg, char *resp, size_t len)
{
    local_call_t *lc = arg;
    json_error_t e;
    json_t *j = resp ? json_loadb(resp, len, 0, &e) : NULL;
    free(resp);
    json_t *res = json_object_get(j, "result");
    json_t *err = json_object_get(j, "error");
    if (res) {
        json_t *out = lc->shape ? lc->shape(lc->api, res) : json_incref(res);
        http_api_json(lc->x, 200, out ? json_dumps(out, JSON_COMPACT) : NULL);
        json_decref(out);
    } else if (err) {
        json_t *data = json_object_get(err, "data");
        const char *param = json_string_value(json_object_get(data, "param"));
        http_api_error(lc->x, (int)json_integer_value(json_object_get(err, "code")),
                       json_string_value(json_object_get(err, "message")), param);
    } else {
        http_api_error(lc->x, RPC_ERR_INTERNAL, "no answer from the node", NULL);
    }
    json_decref(j);
    free(lc);
}

/* Calls system.local.METHOD with the caller's token and answers with its (shaped) result. */
static void local_call(http_exchange_t *x, http_api_t *api, const http_caller_t *who,
                       const char *method, shape_fn shape)
{
    char body[160];
    int n = snprintf(body, sizeof(body),
                     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"system.local.%s\",\"params\":{}}",
                     method);
    local_call_t *lc = calloc(1, sizeof(*lc));
    if (!lc) {
        http_api_error(x, RPC_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    lc->x = x;
    lc->api = api;
    lc->shape = shape;
    if (!http_bridge_run(api, who->token, who->token_len, body, (size_t)n, false, local_done, lc)) {
        free(lc);
        http_api_error(x, RPC_ERR_INTERNAL, "out of memory", NULL);
    }
}

static void domains_of_self(void *arg, const members_view_t *v)
{
    json_t *arr = arg;
    if (!v->self) return;
    for (unsigned i = 0; i < v->rec.ndomains; i++)
        json_array_append_new(arr, json_string(v->rec.domains[i]));
}

static json_t *shape_info(http_api_t *api, json_t *res)
{
    json_t *out = json_deep_copy(res);
    json_t *svc = json_array();
    if (api->node->members)
        members_foreach(api->node->members, uv_now(api->node->loop), domains_of_self, svc);
    json_object_set_new(out, "services", svc);
    json_object_del(out, "dht_stats"); /* in /api/stats */
    return out;
}

static json_t *shape_list(const char *key, json_t *res)
{
    return json_pack("{s:O,s:I}", key, res, "count", (json_int_t)json_array_size(res));
}

static json_t *shape_peers(http_api_t *api, json_t *res)
{
    (void)api;
    return shape_list("peers", res);
}

static json_t *shape_nodes(http_api_t *api, json_t *res)
{
    (void)api;
    return shape_list("nodes", res);
}

/* /api/stats: the DHT counters of node.info with the HTTP, peer-channel, membership and
 * process counters of this node. */
static json_t *shape_stats(http_api_t *api, json_t *res)
{
    node_t *node = api->node;
    json_t *out = json_object();
    json_t *dht = json_deep_copy(json_object_get(res, "dht_stats"));
    if (!dht) dht = json_object();
    json_object_set(dht, "peers", json_object_get(res, "peers"));
    json_object_set(dht, "records", json_object_get(res, "records"));
    json_object_set_new(out, "dht", dht);
    if (api->server) {
        const http_stats_t *s = http_server_stats(api->server);
        json_t *codes = json_object();
        for (int c = 100; c < 600; c++) {
            if (!s->status_counts[c]) continue;
            char k[8];
            snprintf(k, sizeof(k), "%d", c);
            json_object_set_new(codes, k, json_integer((json_int_t)s->status_counts[c]));
        }
        json_object_set_new(
            out, "http",
            json_pack("{s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "requests",
                      (json_int_t)s->requests, "by_code", codes, "connections_accepted",
                      (json_int_t)s->accepted, "connections_open", (json_int_t)s->open, "upgraded",
                      (json_int_t)s->upgraded, "evicted", (json_int_t)s->evicted, "timeouts",
                      (json_int_t)s->timeouts, "parse_errors", (json_int_t)s->parse_errors,
                      "rate_limited", (json_int_t)s->rate_limited, "tls_errors",
                      (json_int_t)s->tls_errors));
    }
    uint64_t calls, errors;
    http_metrics_rpc_counts(api->metrics, &calls, &errors);
    json_object_set_new(
        out, "rpc",
        json_pack("{s:I,s:I}", "calls", (json_int_t)calls, "errors", (json_int_t)errors));
    json_object_set_new(out, "ws_clients", json_integer((json_int_t)http_ws_clients(api->ws)));
    if (node->peer) {
        rpc_peer_stats_t ps;
        rpc_peer_stats(node->peer, &ps);
        json_object_set_new(
            out, "peer_channel",
            json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "connections_in", (json_int_t)ps.conns_in_open,
                      "connections_out", (json_int_t)ps.conns_out_open, "calls_out",
                      (json_int_t)ps.calls_out, "calls_failed", (json_int_t)ps.calls_failed,
                      "bytes_in", (json_int_t)ps.bytes_in, "bytes_out", (json_int_t)ps.bytes_out));
    }
    if (node->members) {
        members_stats_t ms;
        members_get_stats(node->members, uv_now(node->loop), &ms);
        json_object_set_new(out, "members",
                            json_pack("{s:I,s:I,s:I}", "known", (json_int_t)ms.members, "up",
                                      (json_int_t)ms.up, "down", (json_int_t)ms.down));
    }
    uv_rusage_t ru;
    size_t rss = 0;
    uv_resident_set_memory(&rss);
    json_t *proc = json_pack("{s:I,s:I}", "pid", (json_int_t)getpid(), "resident_memory_bytes",
                             (json_int_t)rss);
    if (uv_getrusage(&ru) == 0)
        json_object_set_new(proc, "cpu_seconds",
                            json_real((double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                                      (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6));
    uint64_t now = p2p_mono_ms();
    json_object_set_new(
        proc, "uptime_s",
        json_integer(
            (json_int_t)(now > node->start_mono_ms ? (now - node->start_mono_ms) / 1000 : 0)));
    json_object_set_new(out, "process", proc);
    return out;
}

void http_api_info(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    local_call(x, api, who, "node.info", shape_info);
}

void http_api_stats(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    local_call(x, api, who, "node.info", shape_stats);
}

void http_api_peers(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    local_call(x, api, who, "node.peers", shape_peers);
}

void http_api_nodes(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    local_call(x, api, who, "node.nodes", shape_nodes);
}

/* --- static files -------------------------------------------------------------------------- */

static const char *mime_of(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json"},
    };
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

/* Percent-decodes a URL path; refuses NUL, backslashes and any ".." or "." segment. */
static int clean_path(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; in[i]; i++) {
        int ch = (unsigned char)in[i];
        if (ch == '%') {
            unsigned v;
            if (!in[i + 1] || !in[i + 2] || sscanf(in + i + 1, "%2x", &v) != 1) return -EINVAL;
            ch = (int)v;
            i += 2;
        }
        if (ch == 0 || ch == '\\') return -EINVAL;
        if (o + 1 >= cap) return -ENAMETOOLONG;
        out[o++] = (char)ch;
    }
    out[o] = 0;
    if (out[0] != '/') return -EINVAL;
    for (const char *seg = out; seg; seg = strchr(seg + 1, '/')) {
        const char *s = seg + 1;
        size_t l = strcspn(s, "/");
        if ((l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.')) return -EINVAL;
    }
    return 0;
}

void http_api_static(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    (void)who;
    const http_request_t *r = http_exchange_request(x);
    char rel[HTTP_MAX_URL + 1], full[NODE_PATH_MAX + HTTP_MAX_URL + 16];
    if (!api->ui_dir[0]) {
        http_respond_error(x, 404, RPC_ERR_NOT_FOUND, "no dashboard files on this node", NULL);
        return;
    }
    if (clean_path(r->path, rel, sizeof(rel)) < 0) {
        http_respond_error(x, 404, RPC_ERR_NOT_FOUND, "not found", NULL);
        return;
    }
    snprintf(full, sizeof(full), "%s%s", api->ui_dir, rel);
    struct stat st;
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0 && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        size_t l = strlen(full);
        snprintf(full + l, sizeof(full) - l, "%sindex.html", full[l - 1] == '/' ? "" : "/");
        fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        http_respond_error(x, 404, RPC_ERR_NOT_FOUND, "not found", NULL);
        return;
    }
    if ((uint64_t)st.st_size > HTTP_MAX_STATIC_FILE) {
        close(fd);
        http_respond_error(x, 500, RPC_ERR_INTERNAL, "file too large to serve", NULL);
        return;
    }
    size_t size = (size_t)st.st_size, got = 0;
    char *buf = malloc(size ? size : 1);
    while (buf && got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    if (!buf || got != size) {
        free(buf);
        http_respond_error(x, 500, RPC_ERR_INTERNAL, "cannot read the file", NULL);
        return;
    }
    http_add_header(x, "Cache-Control", "no-cache");
    http_add_header(x, "X-Content-Type-Options", "nosniff");
    const char *type = mime_of(full);
    if (strncmp(type, "text/html", 9) == 0) {
        http_add_header(x, "Content-Security-Policy",
                        "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
                        "frame-ancestors 'none'");
        http_add_header(x, "X-Frame-Options", "DENY");
    }
    http_respond_take(x, 200, type, buf, size);
}
