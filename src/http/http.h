/* http.h: the embedded HTTP/1.1 server (server.c: libuv + llhttp, optional TLS in tls.c) and the
 * request/response API its handlers use (CONTRACT section 6).
 *
 * A handler receives an exchange (one request and its response) once the whole request, body
 * included, has arrived. It must answer exactly once, now or later, with http_respond*(). Answering
 * after the client left is safe: the answer is dropped and the exchange freed. Responses on one
 * connection go out in request order (pipelined requests wait for the one before). */
#ifndef P2P_HTTP_H
#define P2P_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/http-limits.h"

typedef struct http_server http_server_t;
typedef struct http_exchange http_exchange_t;
typedef struct http_conn http_conn_t;

enum http_method_id { HTTP_M_OTHER = 0, HTTP_M_GET, HTTP_M_HEAD, HTTP_M_POST, HTTP_M_PUT,
                      HTTP_M_DELETE, HTTP_M_OPTIONS, HTTP_M_PATCH };

typedef struct http_header {
    const char *name; /* as sent; compare case-insensitively */
    size_t name_len;
    const char *value; /* leading and trailing blanks removed */
    size_t value_len;
} http_header_t;

/* One parsed request. Every pointer is valid until the exchange is answered. */
typedef struct http_request {
    int method;              /* enum http_method_id */
    const char *method_name; /* "GET"... */
    const char *path;        /* the target up to '?', percent-encoded as sent, NUL-terminated */
    size_t path_len;
    const char *query; /* after '?', "" when none, NUL-terminated */
    size_t query_len;
    const http_header_t *headers;
    size_t n_headers;
    const uint8_t *body; /* de-chunked; NUL-terminated (the NUL is not counted) */
    size_t body_len;
    const char *client_ip; /* textual address of the peer ("127.0.0.1", "::1") */
    bool tls;
    bool upgrade; /* Connection: upgrade was asked (WebSocket handshake) */
} http_request_t;

/* The value of header `name` (case-insensitive; the first one), or NULL (and *len 0). len may be
 * NULL. */
const char *http_header_get(const http_request_t *r, const char *name, size_t *len);

/* Percent-decodes the value of query parameter `key` into out (NUL-terminated). Returns its length,
 * -ENOENT when absent, -ENOSPC when out is too small, -EINVAL for a bad %-escape or a NUL. */
int http_query_get(const http_request_t *r, const char *key, char *out, size_t cap);

/* The token of "Authorization: Bearer T", or NULL (and *len 0). */
const char *http_bearer(const http_request_t *r, size_t *len);

/* The exchange's request. */
const http_request_t *http_exchange_request(const http_exchange_t *x);

/* The server the exchange came in on, and the context given to http_server_start. */
http_server_t *http_exchange_server(const http_exchange_t *x);
void *http_exchange_ctx(const http_exchange_t *x);

/* True once the client is gone (the answer will be dropped). */
bool http_exchange_gone(const http_exchange_t *x);

/* Adds a response header (before the answer). name and value are copied; CR/LF are refused.
 * Returns 0, -EINVAL or -ENOMEM. Content-Length, Date, Connection are the server's. */
int http_add_header(http_exchange_t *x, const char *name, const char *value);

/* Answers with status and body (copied; body may be NULL when len is 0). content_type NULL means no
 * Content-Type. HEAD requests get the headers only. Releases the exchange. */
void http_respond(http_exchange_t *x, int status, const char *content_type, const void *body,
                  size_t len);

/* Answers taking ownership of a malloc'd body (no copy). Releases the exchange. */
void http_respond_take(http_exchange_t *x, int status, const char *content_type, void *body,
                       size_t len);

/* Answers with the CONTRACT error body {"error": {"code", "message"[, "data": {"param": param}]}}
 * as application/json. code is an RPC error code (rpc.h). Releases the exchange. */
void http_respond_error(http_exchange_t *x, int status, int code, const char *message,
                        const char *param);

/* --- upgrade to another protocol (WebSocket) on the same connection ---------------------- */

typedef struct http_upgrade_ops {
    /* Bytes that arrived after the upgrade (called from the loop). */
    void (*on_data)(void *ctx, const uint8_t *buf, size_t len);
    /* Output queued to the kernel drained below half of the limit (may be NULL). */
    void (*on_drain)(void *ctx);
    /* The connection closed (peer left, error, server stop or http_conn_close). Called once; the
     * conn must not be used afterwards. */
    void (*on_close)(void *ctx);
} http_upgrade_ops_t;

/* Answers x with "101 Switching Protocols" plus the headers added to x, then hands the connection
 * over: from now on received bytes go to ops->on_data (the bytes already read after the request
 * are delivered first, from the loop) and the HTTP timeouts no longer apply. Releases the exchange.
 * Returns the connection, or NULL when the client is already gone (ops are then never called). */
http_conn_t *http_upgrade(http_exchange_t *x, const http_upgrade_ops_t *ops, void *ctx);

/* Queues bytes on an upgraded connection (copied; through TLS when the connection has it).
 * Returns 0, -ENOBUFS when the queued output would pass max_output (nothing queued: the caller
 * decides, usually to close), or -ENOTCONN. */
int http_conn_write(http_conn_t *c, const void *buf, size_t len, size_t max_output);

/* Bytes queued and not yet taken by the kernel. */
size_t http_conn_queued(const http_conn_t *c);

/* Closes an upgraded connection after the queued output is written (bounded by a 2 s linger);
 * on_close follows from the loop. */
void http_conn_close(http_conn_t *c);

/* --- the server ------------------------------------------------------------------------- */

/* Handles one request. */
typedef void (*http_handler_fn)(http_exchange_t *x, void *ctx);

/* Counters of one server, for /metrics and /api/stats. */
typedef struct http_stats {
    uint64_t requests;           /* requests answered */
    uint64_t by_class[6];        /* answered requests by status / 100 (index 1..5) */
    uint64_t status_counts[600]; /* answered requests by status code */
    uint64_t accepted;           /* connections accepted */
    uint64_t open;               /* connections open now */
    uint64_t upgraded;           /* connections handed over (WebSocket) open now */
    uint64_t evicted;            /* idle connections closed to make room at the cap */
    uint64_t timeouts;           /* connections closed by a header/body/idle timeout */
    uint64_t parse_errors;       /* requests refused as malformed (400/413/414/431) */
    uint64_t rate_limited;       /* requests answered 429 by the per-address limit */
    uint64_t tls_errors;         /* TLS handshakes or records that failed */
} http_stats_t;

typedef struct http_config {
    const char *host; /* bind address (IPv4 or IPv6 literal) */
    int port;         /* 0 picks a free one (see http_server_port) */
    const char *tls_cert_file, *tls_key_file; /* both or neither (PEM) */
    double rate_per_s; /* per client address; 0 disables the limit */
    double rate_burst;
    /* Allowed CORS origins (exact "https://host:port" or "*"); none = CORS off. */
    const char *cors_origins[HTTP_MAX_CORS_ORIGINS];
    size_t n_cors_origins;
    size_t max_connections; /* 0 = HTTP_MAX_CONNECTIONS */
} http_config_t;

/* Starts listening. Every request goes to handler (with ctx) after the server's own checks: parse
 * errors, limits, the per-address rate limit (429 with Retry-After) and CORS preflight (OPTIONS
 * with an allowed Origin is answered 204 by the server). Returns 0 and *out, or a negative errno /
 * UV_E* after writing one line to err (bad TLS files, address in use). */
int http_server_start(uv_loop_t *loop, const http_config_t *cfg, http_handler_fn handler,
                      void *ctx, http_server_t **out, char *err, size_t errlen);

/* The port actually bound. */
int http_server_port(const http_server_t *s);

/* The counters (live; read from the loop thread). */
const http_stats_t *http_server_stats(const http_server_t *s);

/* Stops listening and closes every connection (upgraded ones get on_close); exchanges still in a
 * handler's hands are answered into the void. done_cb (may be NULL) runs from the loop once every
 * handle is closed and s is freed. NULL s: done_cb is not called. */
void http_server_stop(http_server_t *s, void (*done_cb)(void *arg), void *arg);

#endif
