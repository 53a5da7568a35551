/* server-internal.h: what the HTTP server's files share: the server, connection and exchange
 * structs (server.c: listener, connection lifecycle, timeouts, output; server_conn.c: parsing
 * requests with llhttp and formatting responses; tls.c: TLS through memory BIOs; ratelimit.c: the
 * per-address token buckets). Not for other modules. */
#ifndef P2P_HTTP_SERVER_INTERNAL_H
#define P2P_HTTP_SERVER_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include <llhttp.h>

#include "base/base.h"
#include "http/http.h"

/* --- ratelimit.c ------------------------------------------------------------------------ */

typedef struct http_rate_entry {
    uint8_t addr[16]; /* IPv6 or v4-mapped */
    double tokens;
    uint64_t last_ms;
    bool used;
} http_rate_entry_t;

typedef struct http_ratelimit {
    double rate, burst;       /* rate 0 = off */
    http_rate_entry_t *slots; /* HTTP_MAX_RATE_ENTRIES, in sets of HTTP_RATE_WAYS */
} http_ratelimit_t;

/* Initialises a limiter of `rate` requests per second with bucket `burst` (a new address starts
 * full; a burst below 1 means max(rate, 1)). rate 0 turns the limit off (no table is allocated).
 * Returns 0, -EINVAL for a negative, NaN or infinite rate or a negative/NaN burst, or -ENOMEM;
 * rl may be given to http_ratelimit_free in every case. */
int http_ratelimit_init(http_ratelimit_t *rl, double rate, double burst);

/* Frees the table. Accepts NULL and a limiter that is off or was zeroed. */
void http_ratelimit_free(http_ratelimit_t *rl);

/* Takes one token for addr (16 bytes) at now_ms (the caller's monotonic clock; a reading earlier
 * than the last one refills nothing). Returns 0 when allowed (always when off), else the whole
 * seconds (>= 1, rounded up) until a token is there; a refusal takes nothing. An address's set
 * is chosen by a keyed hash; a new address in a full set replaces its least recently seen one. */
unsigned http_ratelimit_take(http_ratelimit_t *rl, const uint8_t addr[16], uint64_t now_ms);

/* --- tls.c ------------------------------------------------------------------------------ */

typedef struct http_tls_ctx http_tls_ctx_t; /* one per server: certificate and key */
typedef struct http_tls http_tls_t;         /* one per connection */

/* Loads a PEM certificate chain (leaf first) and an unencrypted PEM key; TLS 1.2 minimum. Returns
 * 0 and *out, or -EINVAL (unreadable file, bad PEM, key not matching the certificate) or -ENOMEM
 * after writing one line naming the file and OpenSSL's reason to err. */
int http_tls_ctx_new(const char *cert_file, const char *key_file, http_tls_ctx_t **out, char *err,
                     size_t errlen);

/* Frees the context; sessions made from it hold their own reference. Accepts NULL. */
void http_tls_ctx_free(http_tls_ctx_t *ctx);

/* A server-side TLS session. NULL on no memory. */
http_tls_t *http_tls_new(http_tls_ctx_t *ctx);

/* Frees a session. Accepts NULL. */
void http_tls_free(http_tls_t *t);

/* Feeds received ciphertext, in chunks of any size (one byte too); decrypted bytes are appended
 * to plain (bounded by its limit). Output the handshake needs is appended to out. Returns 0 (also
 * after the peer's close_notify: what came before it is in plain), or -EPROTO on a TLS error
 * (the connection must close; out may hold an alert worth sending; every later call fails too),
 * -E2BIG when plain (or out) is full, -ENOMEM. */
int http_tls_feed(http_tls_t *t, const uint8_t *in, size_t len, p2p_buf_t *plain, p2p_buf_t *out);

/* Encrypts plaintext, appending the records to out. Returns 0, or -EPROTO (a TLS error, or the
 * handshake is not complete), -E2BIG (out is full) or -ENOMEM; after an error the session is
 * dead. */
int http_tls_write(http_tls_t *t, const void *buf, size_t len, p2p_buf_t *out);

/* --- server.c / server_conn.c ----------------------------------------------------------- */

enum conn_state {
    CONN_IDLE,     /* between requests (keep-alive) or before the first byte */
    CONN_HEADERS,  /* a request's first byte arrived, headers not complete */
    CONN_BODY,     /* headers complete, body arriving */
    CONN_HANDLING, /* the request went to the handler; input waits */
    CONN_UPGRADED, /* handed over to another protocol */
    CONN_CLOSING,
};

/* The request being parsed: every string is copied into `arena` (offsets until complete). */
typedef struct conn_req {
    p2p_buf_t arena; /* url, then header names and values */
    size_t url_len;
    struct {
        size_t name_off, name_len, value_off, value_len;
    } hdr[HTTP_MAX_HEADERS];
    size_t n_hdr;
    bool in_value;     /* the last callback was a header value */
    bool value_done;   /* the last header's value is complete (a value now has no name) */
    size_t head_bytes; /* bytes of url + headers seen (limit HTTP_MAX_HEADER_BYTES) */
    p2p_buf_t body;
} conn_req_t;

struct http_exchange {
    http_conn_t *conn; /* NULL once the client is gone */
    http_server_t *srv;
    http_request_t req;
    http_header_t headers[HTTP_MAX_HEADERS];
    char *arena;     /* owns the strings req points to */
    uint8_t *body;   /* owns the body */
    p2p_buf_t extra; /* response headers added by the handler */
    bool keep_alive;
    bool head;                 /* HEAD: no body in the answer */
    bool close_after;          /* answer with Connection: close and close */
    bool http10;               /* an HTTP/1.0 request: keep-alive only when asked */
    char origin[256];          /* an allowed Origin to echo, "" = none */
    char ip[INET6_ADDRSTRLEN]; /* req.client_ip points here (the conn may go first) */
};

struct http_conn {
    uv_tcp_t tcp;
    http_server_t *srv;
    http_conn_t *prev, *next; /* the server's list of connections */
    enum conn_state state;
    uint64_t deadline_ms; /* monotonic; the sweep closes the connection past it */
    uint64_t last_ms;     /* last activity (eviction picks the oldest idle one) */
    uint8_t addr[16];     /* peer address, v4 mapped into v6 */
    char ip[INET6_ADDRSTRLEN];
    llhttp_t parser;
    conn_req_t *req;    /* the request being parsed, NULL between requests */
    http_exchange_t *x; /* the exchange in the handler's hands */
    p2p_buf_t pending;  /* received bytes not parsed yet (input waits for an answer) */
    bool reading;
    bool closing;
    bool close_after_write; /* close once the queued output is written */
    bool in_feed;           /* inside the parse loop: an answer lets the loop go on */
    bool kicked;            /* on the server's kick list */
    http_conn_t *kick_next;
    int err_status;           /* the status a callback refused the request with (413, 414, 431) */
    const char *err_reason;   /* and why (static) */
    const uint8_t *exec_base; /* the buffer llhttp runs over now (obs-fold detection) */
    uint8_t tail[8];          /* the last bytes of the buffer before it */
    size_t tail_len;
    size_t queued; /* bytes handed to uv_write and not yet written */
    http_tls_t *tls;
    p2p_buf_t tls_out; /* scratch for ciphertext */
    const http_upgrade_ops_t *ops;
    void *ops_ctx;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t sweep;
    uv_idle_t kick; /* resumes connections whose answer came from outside their parse loop */
    http_conn_t *kick_head;
    http_handler_fn handler;
    void *ctx;
    http_conn_t *conns; /* every open connection */
    size_t n_conns, max_conns;
    int port;
    http_stats_t stats;
    http_ratelimit_t rl;
    http_tls_ctx_t *tls;
    char *cors[HTTP_MAX_CORS_ORIGINS];
    size_t n_cors;
    bool cors_any;
    bool stopping;
    int open_handles; /* listener + timer + kick; the server is freed when 0 and no connections */
    void (*done_cb)(void *arg);
    void *done_arg;
    time_t date_sec; /* the cached Date header value's second */
    char date[40];
    uint8_t rbuf[65536]; /* read buffer shared by every connection (one loop thread) */
    bool rbuf_busy;
};

/* server_conn.c: sets up the parser of a new connection. */
void conn_parser_init(http_conn_t *c);

/* server_conn.c: parses received plaintext: builds exchanges and hands them to the handler,
 * answers malformed requests itself. May close the connection. */
void conn_feed(http_conn_t *c, const uint8_t *buf, size_t len);

/* server_conn.c: frees the request being parsed. */
void conn_req_free(conn_req_t *r);

/* server.c: queues plaintext output (through TLS when on). Returns 0 or a negative errno (the
 * connection is then being closed). */
int conn_send(http_conn_t *c, const uv_buf_t *bufs, unsigned n);

/* server.c: starts or stops reading from c (a closing connection does not read again). */
void conn_reading(http_conn_t *c, bool on);

/* server.c: closes the connection (after the queued output when graceful). */
void conn_close(http_conn_t *c, bool graceful);

/* server.c: puts c on the kick list: conn_resume(c) runs from the loop soon (an answer that came
 * from outside the parse loop, or input waiting for an upgraded protocol). */
void conn_kick(http_conn_t *c);

/* server_conn.c: goes on with c after a kick: parses the input that waited (or delivers it to the
 * protocol c was upgraded to) and reads again. */
void conn_resume(http_conn_t *c);

/* server.c: hands c over to another protocol (ops get its input and its close); returns c. */
http_conn_t *server_upgrade_conn(http_conn_t *c, const http_upgrade_ops_t *ops, void *ctx);

/* server.c: the cached Date header value for now. */
const char *server_date(http_server_t *s);

/* The reason phrase of a status code. */
const char *http_reason(int status);

#endif
