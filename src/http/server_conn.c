/* server_conn.c: the request path of one HTTP connection: llhttp callbacks copy the request into
 * the connection's arena under the limits of http-limits.h, a complete request pauses the parser
 * and becomes an exchange for the handler (outside llhttp), and the answer is formatted here.
 * Pipelined input waits in c->pending (reading stops while a request is in a handler's hands), so
 * answers go out in request order. Malformed requests are answered here and the connection
 * closed: llhttp refuses Content-Length with Transfer-Encoding and repeated lengths. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http/server-internal.h"
#include "rpc/rpc.h"

static int on_message_begin(llhttp_t *p);
static int on_url(llhttp_t *p, const char *at, size_t len);
static int on_header_field(llhttp_t *p, const char *at, size_t len);
static int on_header_value(llhttp_t *p, const char *at, size_t len);
static int on_header_field_complete(llhttp_t *p);
static int on_header_value_complete(llhttp_t *p);
static int on_headers_complete(llhttp_t *p);
static int on_body(llhttp_t *p, const char *at, size_t len);
static int on_message_complete(llhttp_t *p);

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void conn_parser_init(http_conn_t *c)
{
    llhttp_init(&c->parser, HTTP_REQUEST, &settings);
    c->parser.data = c;
}

void conn_req_free(conn_req_t *r)
{
    if (!r) return;
    p2p_buf_free(&r->arena);
    p2p_buf_free(&r->body);
    free(r);
}

/* --- llhttp callbacks ---------------------------------------------------------------------- */

static int refuse(llhttp_t *p, int status, const char *why)
{
    http_conn_t *c = p->data;
    c->err_status = status;
    c->err_reason = why; /* llhttp replaces its own reason for some callbacks */
    llhttp_set_error_reason(p, why);
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    http_conn_t *c = p->data;
    conn_req_t *r = c->req;
    if (!r) {
        if (!(r = calloc(1, sizeof(*r)))) return refuse(p, 503, "out of memory");
        p2p_buf_init(&r->arena, HTTP_MAX_HEADER_BYTES);
        p2p_buf_init(&r->body, HTTP_MAX_BODY + 1); /* + the NUL of exchange_build */
        c->req = r;
    }
    r->arena.len = 0;
    r->body.len = 0;
    r->url_len = 0;
    r->n_hdr = 0;
    r->in_value = false;
    r->value_done = false;
    r->head_bytes = 0;
    c->err_status = 0;
    c->state = CONN_HEADERS;
    c->deadline_ms = uv_now(c->srv->loop) + HTTP_HEADER_TIMEOUT_MS;
    return 0;
}

/* Counts head bytes; 431 past the limit. */
static int head_add(llhttp_t *p, conn_req_t *r, size_t len)
{
    r->head_bytes += len;
    if (r->head_bytes > HTTP_MAX_HEADER_BYTES) return refuse(p, 431, "request headers too large");
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    conn_req_t *r = c->req;
    r->url_len += len;
    if (r->url_len > HTTP_MAX_URL) return refuse(p, 414, "request target too long");
    if (head_add(p, r, len) < 0) return HPE_USER;
    if (p2p_buf_append(&r->arena, at, len) < 0) return refuse(p, 431, "request too large");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    conn_req_t *r = c->req;
    if (head_add(p, r, len) < 0) return HPE_USER;
    if (c->state != CONN_HEADERS) return 0; /* trailers of a chunked body: not kept */
    if (r->n_hdr == 0 || r->in_value || r->value_done) {
        if (r->n_hdr == HTTP_MAX_HEADERS) return refuse(p, 431, "too many request headers");
        r->hdr[r->n_hdr].name_off = r->arena.len;
        r->hdr[r->n_hdr].name_len = 0;
        r->hdr[r->n_hdr].value_off = 0;
        r->hdr[r->n_hdr].value_len = 0;
        r->n_hdr++;
        r->in_value = false;
        r->value_done = false;
    }
    if (p2p_buf_append(&r->arena, at, len) < 0) return refuse(p, 431, "request too large");
    r->hdr[r->n_hdr - 1].name_len += len;
    return 0;
}

/* True when the value bytes at `at` follow a line break and blanks: a folded line, which llhttp
 * passes on as more of the value (RFC 9112 5.2: refuse it). Looks back through the buffer being
 * parsed, then the tail of the one before. */
static bool folded(const http_conn_t *c, const char *at)
{
    const char *base = (const char *)c->exec_base;
    bool blank = *at == ' ' || *at == '\t'; /* llhttp may pass the fold's blanks as value */
    for (const char *q = at; q > base;) {
        char ch = *--q;
        if (ch == ' ' || ch == '\t') {
            blank = true;
            continue;
        }
        return ch == '\n' && blank;
    }
    for (size_t i = c->tail_len; i > 0; i--) {
        uint8_t ch = c->tail[i - 1];
        if (ch == ' ' || ch == '\t') {
            blank = true;
            continue;
        }
        return ch == '\n' && blank;
    }
    return false;
}

static int on_header_field_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    conn_req_t *r = c->req;
    if (c->state == CONN_HEADERS && r->n_hdr > 0 && r->hdr[r->n_hdr - 1].name_len == 0)
        return refuse(p, 400, "empty header name");
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    conn_req_t *r = c->req;
    if (head_add(p, r, len) < 0) return HPE_USER;
    if (c->state != CONN_HEADERS) return 0;
    if (r->n_hdr == 0 || r->value_done) return refuse(p, 400, "header line without a name");
    if (folded(c, at)) return refuse(p, 400, "obsolete line folding in a header value");
    if (!r->in_value) {
        r->hdr[r->n_hdr - 1].value_off = r->arena.len;
        r->in_value = true;
    }
    if (p2p_buf_append(&r->arena, at, len) < 0) return refuse(p, 431, "request too large");
    r->hdr[r->n_hdr - 1].value_len += len;
    return 0;
}

/* The value of header name in the request being parsed, or NULL. */
static const char *req_header(const conn_req_t *r, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < r->n_hdr; i++) {
        if (r->hdr[i].name_len != nl) continue;
        if (strncasecmp((const char *)r->arena.data + r->hdr[i].name_off, name, nl) != 0) continue;
        *len = r->hdr[i].value_len;
        return (const char *)r->arena.data + r->hdr[i].value_off;
    }
    *len = 0;
    return NULL;
}

static bool value_is(const char *v, size_t len, const char *want)
{
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len > 0 && (v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    return len == strlen(want) && strncasecmp(v, want, len) == 0;
}

static int on_header_value_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    if (c->req) c->req->value_done = true;
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    http_conn_t *c = p->data;
    conn_req_t *r = c->req;
    if (p->http_major != 1) return refuse(p, 505, "HTTP version not supported");
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > HTTP_MAX_BODY)
        return refuse(p, 413, "request body too large");
    size_t len;
    const char *v = req_header(r, "transfer-encoding", &len);
    if (v) {
        /* only "chunked" alone is accepted; with a Content-Length it is smuggling */
        if ((p->flags & F_CONTENT_LENGTH) || req_header(r, "content-length", &len))
            return refuse(p, 400, "Content-Length with Transfer-Encoding");
        v = req_header(r, "transfer-encoding", &len);
        if (!value_is(v, len, "chunked"))
            return refuse(p, 501, "only the chunked transfer coding is supported");
    }
    c->state = CONN_BODY;
    c->deadline_ms = uv_now(c->srv->loop) + HTTP_BODY_TIMEOUT_MS;
    v = req_header(r, "expect", &len);
    if (v && value_is(v, len, "100-continue") && p->http_minor >= 1) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        uv_buf_t b = uv_buf_init((char *)cont, sizeof(cont) - 1);
        if (conn_send(c, &b, 1) < 0) return refuse(p, 400, "connection lost");
    }
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    http_conn_t *c = p->data;
    if (c->req->body.len + len > HTTP_MAX_BODY || p2p_buf_append(&c->req->body, at, len) < 0)
        return refuse(p, 413, "request body too large");
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    (void)p;
    return HPE_PAUSED; /* the exchange is built outside llhttp */
}

/* --- exchanges ----------------------------------------------------------------------------- */

static int method_id(uint8_t m)
{
    switch (m) {
    case HTTP_GET:
        return HTTP_M_GET;
    case HTTP_HEAD:
        return HTTP_M_HEAD;
    case HTTP_POST:
        return HTTP_M_POST;
    case HTTP_PUT:
        return HTTP_M_PUT;
    case HTTP_DELETE:
        return HTTP_M_DELETE;
    case HTTP_OPTIONS:
        return HTTP_M_OPTIONS;
    case HTTP_PATCH:
        return HTTP_M_PATCH;
    default:
        return HTTP_M_OTHER;
    }
}

static void trim(const char **v, size_t *len)
{
    while (*len > 0 && (**v == ' ' || **v == '\t')) {
        (*v)++;
        (*len)--;
    }
    while (*len > 0 && ((*v)[*len - 1] == ' ' || (*v)[*len - 1] == '\t'))
        (*len)--;
}

static void exchange_free(http_exchange_t *x)
{
    free(x->arena);
    free(x->body);
    p2p_buf_free(&x->extra);
    free(x);
}

static bool origin_allowed(const http_server_t *s, const char *o, size_t len)
{
    if (s->n_cors == 0 || len == 0 || len >= sizeof(((http_exchange_t *)0)->origin)) return false;
    if (s->cors_any) return true;
    for (size_t i = 0; i < s->n_cors; i++)
        if (strlen(s->cors[i]) == len && memcmp(s->cors[i], o, len) == 0) return true;
    return false;
}

/* Turns the parsed request into an exchange (strings NUL-terminated in one arena). */
static http_exchange_t *exchange_build(http_conn_t *c)
{
    conn_req_t *r = c->req;
    http_exchange_t *x = calloc(1, sizeof(*x));
    if (!x) return NULL;
    /* url + NUL + per header (name NUL value NUL) + query NUL */
    size_t need = r->arena.len + 2 * r->n_hdr + 4;
    if (!(x->arena = malloc(need))) {
        free(x);
        return NULL;
    }
    x->conn = c;
    x->srv = c->srv;
    p2p_buf_init(&x->extra, HTTP_MAX_HEADER_BYTES);
    char *a = x->arena;
    const char *url = (const char *)r->arena.data;
    const char *q = memchr(url, '?', r->url_len);
    size_t path_len = q ? (size_t)(q - url) : r->url_len;
    memcpy(a, url, path_len);
    a[path_len] = 0;
    x->req.path = a;
    x->req.path_len = path_len;
    a += path_len + 1;
    size_t qlen = q ? r->url_len - path_len - 1 : 0;
    memcpy(a, q ? q + 1 : "", qlen);
    a[qlen] = 0;
    x->req.query = a;
    x->req.query_len = qlen;
    a += qlen + 1;
    for (size_t i = 0; i < r->n_hdr; i++) {
        const char *n = (const char *)r->arena.data + r->hdr[i].name_off;
        const char *v = (const char *)r->arena.data + r->hdr[i].value_off;
        size_t nl = r->hdr[i].name_len, vl = r->hdr[i].value_len;
        trim(&v, &vl);
        memcpy(a, n, nl);
        a[nl] = 0;
        x->headers[i].name = a;
        x->headers[i].name_len = nl;
        a += nl + 1;
        memcpy(a, v, vl);
        a[vl] = 0;
        x->headers[i].value = a;
        x->headers[i].value_len = vl;
        a += vl + 1;
    }
    x->req.headers = x->headers;
    x->req.n_headers = r->n_hdr;
    /* the body: its storage moves to the exchange (the buffer's limit leaves room for a NUL) */
    if (p2p_buf_append(&r->body, "", 1) < 0) {
        exchange_free(x);
        return NULL;
    }
    x->body = r->body.data;
    x->req.body = x->body;
    x->req.body_len = r->body.len - 1;
    p2p_buf_init(&r->body, HTTP_MAX_BODY + 1);
    uint8_t m = llhttp_get_method(&c->parser);
    x->req.method = method_id(m);
    x->req.method_name = llhttp_method_name((llhttp_method_t)m);
    snprintf(x->ip, sizeof(x->ip), "%s", c->ip);
    x->req.client_ip = x->ip;
    x->req.tls = c->tls != NULL;
    x->req.upgrade = llhttp_get_upgrade(&c->parser) != 0;
    x->keep_alive = llhttp_should_keep_alive(&c->parser) != 0;
    x->http10 = c->parser.http_minor == 0;
    x->head = x->req.method == HTTP_M_HEAD;
    size_t olen;
    const char *o = http_header_get(&x->req, "origin", &olen);
    if (o && origin_allowed(c->srv, o, olen)) {
        memcpy(x->origin, o, olen);
        x->origin[olen] = 0;
    }
    return x;
}

/* --- answers ------------------------------------------------------------------------------ */

const char *http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return status < 300 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* The response head, built without printf (it was the largest user-space cost per answer); a
 * piece that does not fit is cut, as snprintf would (head is sized far past what is put). */
typedef struct head {
    char *p, *end;
} head_t;

static void put(head_t *h, const char *str)
{
    size_t n = strlen(str), room = (size_t)(h->end - h->p);
    if (n > room) n = room;
    memcpy(h->p, str, n);
    h->p += n;
}

static void put_u(head_t *h, size_t v)
{
    char d[P2P_U64_DEC_MAX];
    p2p_u64_dec(d, v);
    put(h, d);
}

static void count(http_server_t *s, int status)
{
    s->stats.requests++;
    if (status >= 100 && status < 600) {
        s->stats.by_class[status / 100]++;
        s->stats.status_counts[status]++;
    }
}

/* The request/response state after an answer went out: on to the next request, or closed. */
static void conn_answered(http_conn_t *c, bool close_after)
{
    c->x = NULL;
    if (close_after) {
        conn_close(c, true);
        return;
    }
    c->state = CONN_IDLE;
    c->deadline_ms = uv_now(c->srv->loop) + HTTP_IDLE_TIMEOUT_MS;
    if (!c->in_feed) conn_kick(c); /* parse what waited, from the loop */
}

static void respond(http_exchange_t *x, int status, const char *ctype, const void *body, size_t len,
                    void *owned)
{
    http_conn_t *c = x->conn;
    if (c && c->x == x) c->x = NULL;
    if (!c || c->closing) {
        free(owned);
        exchange_free(x);
        return;
    }
    http_server_t *s = c->srv;
    bool close_after = x->close_after || !x->keep_alive || s->stopping;
    bool no_body = status == 204 || status == 304 || (status >= 100 && status < 200);
    char head[1024];
    head_t h = {head, head + sizeof(head)};
    put(&h, "HTTP/1.1 ");
    put_u(&h, (unsigned)status);
    put(&h, " ");
    put(&h, http_reason(status));
    put(&h, "\r\nDate: ");
    put(&h, server_date(s));
    put(&h, "\r\n");
    if (!no_body) {
        put(&h, "Content-Length: ");
        put_u(&h, len);
        put(&h, "\r\n");
    }
    if (ctype && !no_body) {
        put(&h, "Content-Type: ");
        put(&h, ctype);
        put(&h, "\r\n");
    }
    if (x->origin[0]) {
        put(&h, "Access-Control-Allow-Origin: ");
        put(&h, x->origin);
        put(&h, "\r\nVary: Origin\r\n");
    } else if (s->n_cors > 0) {
        put(&h, "Vary: Origin\r\n");
    }
    if (close_after)
        put(&h, "Connection: close\r\n");
    else if (x->http10)
        put(&h, "Connection: keep-alive\r\n");
    size_t n = (size_t)(h.p - head);
    uv_buf_t b[3];
    unsigned nb = 0;
    b[nb++] = uv_buf_init(head, (unsigned)n);
    if (x->extra.len) b[nb++] = uv_buf_init((char *)x->extra.data, (unsigned)x->extra.len);
    static const char crlf[] = "\r\n";
    /* the blank line: appended to the last header buffer would need a copy; send it apart */
    uv_buf_t all[4];
    memcpy(all, b, nb * sizeof(*b));
    all[nb++] = uv_buf_init((char *)crlf, 2);
    if (len > 0 && !x->head && !no_body) all[nb++] = uv_buf_init((char *)body, (unsigned)len);
    count(s, status);
    int r = conn_send(c, all, nb);
    free(owned);
    exchange_free(x);
    if (r < 0) return; /* closing */
    conn_answered(c, close_after);
}

void http_respond(http_exchange_t *x, int status, const char *content_type, const void *body,
                  size_t len)
{
    respond(x, status, content_type, body, len, NULL);
}

void http_respond_take(http_exchange_t *x, int status, const char *content_type, void *body,
                       size_t len)
{
    respond(x, status, content_type, body, len, body);
}

void http_respond_error(http_exchange_t *x, int status, int code, const char *message,
                        const char *param)
{
    json_t *err = json_pack("{s:i,s:s}", "code", code, "message", message ? message : "");
    if (err && param) json_object_set_new(err, "data", json_pack("{s:s}", "param", param));
    json_t *root = err ? json_pack("{s:o}", "error", err) : NULL;
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!text) {
        static const char oom[] = "{\"error\":{\"code\":-32603,\"message\":\"out of memory\"}}";
        http_respond(x, 500, "application/json", oom, sizeof(oom) - 1);
        return;
    }
    respond(x, status, "application/json", text, strlen(text), text);
}

int http_add_header(http_exchange_t *x, const char *name, const char *value)
{
    if (!name || !value || !name[0] || strpbrk(name, "\r\n:") || strpbrk(value, "\r\n"))
        return -EINVAL;
    size_t nl = strlen(name), vl = strlen(value);
    if (p2p_buf_reserve(&x->extra, nl + vl + 4) < 0) return -ENOMEM;
    p2p_buf_append(&x->extra, name, nl);
    p2p_buf_append(&x->extra, ": ", 2);
    p2p_buf_append(&x->extra, value, vl);
    p2p_buf_append(&x->extra, "\r\n", 2);
    return 0;
}

http_conn_t *http_upgrade(http_exchange_t *x, const http_upgrade_ops_t *ops, void *ctx)
{
    http_conn_t *c = x->conn;
    if (c && c->x == x) c->x = NULL;
    if (!c || c->closing || c->close_after_write) {
        exchange_free(x);
        return NULL;
    }
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nDate: %s\r\nConnection: Upgrade\r\n",
                     server_date(c->srv));
    uv_buf_t b[3] = {uv_buf_init(head, (unsigned)n),
                     uv_buf_init((char *)x->extra.data, (unsigned)x->extra.len),
                     uv_buf_init("\r\n", 2)};
    count(c->srv, 101);
    int r = conn_send(c, b, 3);
    exchange_free(x);
    if (r < 0) return NULL;
    server_upgrade_conn(c, ops, ctx);
    conn_kick(c); /* input read with the request, and reading again */
    return c;
}

/* --- request accessors --------------------------------------------------------------------- */

const char *http_header_get(const http_request_t *r, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < r->n_headers; i++) {
        if (r->headers[i].name_len == nl && strncasecmp(r->headers[i].name, name, nl) == 0) {
            if (len) *len = r->headers[i].value_len;
            return r->headers[i].value;
        }
    }
    if (len) *len = 0;
    return NULL;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch = tolower(ch);
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

/* Percent-decodes in[0..len) into out; returns the length or a negative errno. */
static int pct_decode(const char *in, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)in[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            int h, l;
            if (i + 2 >= len) return -EINVAL;
            if ((h = hexval(in[i + 1])) < 0 || (l = hexval(in[i + 2])) < 0) return -EINVAL;
            ch = h * 16 + l;
            i += 2;
        }
        if (ch == 0) return -EINVAL;
        if (o + 1 >= cap) return -ENOSPC;
        out[o++] = (char)ch;
    }
    if (o >= cap) return -ENOSPC;
    out[o] = 0;
    return (int)o;
}

int http_query_get(const http_request_t *r, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *p = r->query, *end = r->query + r->query_len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        const char *ke = eq ? eq : pe;
        if ((size_t)(ke - p) == kl && memcmp(p, key, kl) == 0) {
            const char *v = eq ? eq + 1 : pe;
            return pct_decode(v, (size_t)(pe - v), out, cap);
        }
        p = pe + 1;
    }
    return -ENOENT;
}

const char *http_bearer(const http_request_t *r, size_t *len)
{
    size_t l;
    const char *v = http_header_get(r, "authorization", &l);
    if (len) *len = 0;
    if (!v || l <= 7 || strncasecmp(v, "Bearer ", 7) != 0) return NULL;
    v += 7;
    l -= 7;
    while (l > 0 && *v == ' ') {
        v++;
        l--;
    }
    if (l == 0) return NULL;
    if (len) *len = l;
    return v;
}

const http_request_t *http_exchange_request(const http_exchange_t *x)
{
    return &x->req;
}

http_server_t *http_exchange_server(const http_exchange_t *x)
{
    return x->srv;
}

void *http_exchange_ctx(const http_exchange_t *x)
{
    return x->srv->ctx;
}

bool http_exchange_gone(const http_exchange_t *x)
{
    return !x->conn || x->conn->closing;
}

/* --- the parse loop ------------------------------------------------------------------------ */

/* Answers a request the server refuses itself (parse errors and limits), then closes. */
static void refuse_conn(http_conn_t *c, int status, const char *message)
{
    http_server_t *s = c->srv;
    char body[256], head[512];
    int code = status == 413 || status == 431 || status == 414 ? RPC_ERR_RESOURCE_EXHAUSTED
                                                               : RPC_ERR_INVALID_REQUEST;
    json_t *j = json_pack("{s:{s:i,s:s}}", "error", "code", code, "message", message);
    char *t = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    int bl = snprintf(body, sizeof(body), "%s", t ? t : "{}");
    free(t);
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: application/json\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n",
                      status, http_reason(status), server_date(s), bl);
    uv_buf_t b[2] = {uv_buf_init(head, (unsigned)hl), uv_buf_init(body, (unsigned)bl)};
    s->stats.parse_errors++;
    count(s, status);
    if (conn_send(c, b, 2) == 0) conn_close(c, true);
}

/* Answers 204 to a CORS preflight from an allowed origin. */
static void preflight(http_exchange_t *x)
{
    http_add_header(x, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    http_add_header(x, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    http_add_header(x, "Access-Control-Max-Age", "600");
    http_respond(x, 204, NULL, NULL, 0);
}

/* Hands a complete request to the handler, after the rate limit and CORS preflight. */
static void dispatch(http_conn_t *c)
{
    http_server_t *s = c->srv;
    http_exchange_t *x = exchange_build(c);
    c->state = CONN_HANDLING;
    if (!x) {
        refuse_conn(c, 503, "out of memory");
        return;
    }
    c->x = x;
    if (x->req.upgrade) x->close_after = true; /* a refused upgrade ends the connection */
    unsigned wait = http_ratelimit_take(&s->rl, c->addr, uv_now(s->loop));
    if (wait > 0) {
        char v[16];
        snprintf(v, sizeof(v), "%u", wait);
        s->stats.rate_limited++;
        http_add_header(x, "Retry-After", v);
        http_respond_error(x, 429, RPC_ERR_RESOURCE_EXHAUSTED, "rate limit exceeded", NULL);
        return;
    }
    if (x->req.method == HTTP_M_OPTIONS && x->origin[0] &&
        http_header_get(&x->req, "access-control-request-method", NULL)) {
        preflight(x);
        return;
    }
    s->handler(x, s->ctx);
}

/* Runs llhttp over p[0..n): returns 1 when a request is complete (*used bytes consumed), 0 when
 * all was consumed without one, -1 after refusing a malformed request. */
static int parse(http_conn_t *c, const uint8_t *p, size_t n, size_t *used)
{
    c->exec_base = p;
    llhttp_errno_t e = llhttp_execute(&c->parser, (const char *)p, n);
    /* the last bytes of (tail + p), for the next buffer's look-back */
    size_t keep = n < sizeof(c->tail) ? n : sizeof(c->tail);
    size_t old = c->tail_len + keep > sizeof(c->tail) ? sizeof(c->tail) - keep : c->tail_len;
    memmove(c->tail, c->tail + c->tail_len - old, old);
    memcpy(c->tail + old, p + n - keep, keep);
    c->tail_len = old + keep;
    if (e == HPE_OK) {
        *used = n;
        return 0;
    }
    if (e == HPE_PAUSED || e == HPE_PAUSED_UPGRADE) {
        const char *pos = llhttp_get_error_pos(&c->parser);
        *used = pos ? (size_t)(pos - (const char *)p) : n;
        if (*used > n) *used = n;
        if (e == HPE_PAUSED)
            llhttp_resume(&c->parser);
        else
            llhttp_resume_after_upgrade(&c->parser);
        return 1;
    }
    *used = n;
    if (c->closing) return -1; /* the connection went while parsing */
    int status = c->err_status ? c->err_status : 400;
    const char *why = llhttp_get_error_reason(&c->parser);
    char msg[160];
    snprintf(msg, sizeof(msg), "malformed request: %s", why && why[0] ? why : llhttp_errno_name(e));
    refuse_conn(c, status, c->err_status ? c->err_reason : msg);
    return -1;
}

static bool stopped(const http_conn_t *c)
{
    return c->closing || c->close_after_write || c->state == CONN_HANDLING ||
           c->state == CONN_UPGRADED;
}

/* Parses buf (or, when buf is NULL, c->pending) and dispatches every complete request whose
 * answer comes at once; input past a request still in a handler's hands waits in pending. */
static void pump(http_conn_t *c, const uint8_t *buf, size_t len)
{
    bool from_pending = buf == NULL;
    c->in_feed = true;
    while (!stopped(c)) {
        const uint8_t *p = from_pending ? c->pending.data : buf;
        size_t n = from_pending ? c->pending.len : len, used = 0;
        if (n == 0) break;
        int r = parse(c, p, n, &used);
        if (from_pending) {
            p2p_buf_consume(&c->pending, used);
        } else {
            buf += used;
            len -= used;
        }
        if (r < 0) break;
        if (r == 1) {
            if (!from_pending && len > 0) { /* the rest waits behind this request */
                if (p2p_buf_append(&c->pending, buf, len) < 0) {
                    conn_close(c, false);
                    break;
                }
                from_pending = true;
                len = 0;
            }
            dispatch(c);
        }
    }
    c->in_feed = false;
    if (c->closing) return;
    if (!from_pending && len > 0 && !c->close_after_write) { /* stopped with input left */
        if (p2p_buf_append(&c->pending, buf, len) < 0) {
            conn_close(c, false);
            return;
        }
    }
    conn_reading(c, c->state != CONN_HANDLING && !c->close_after_write);
}

void conn_feed(http_conn_t *c, const uint8_t *buf, size_t len)
{
    if (c->pending.len > 0 || c->state == CONN_HANDLING) {
        if (p2p_buf_append(&c->pending, buf, len) < 0) {
            conn_close(c, false);
            return;
        }
        if (c->state == CONN_HANDLING) {
            conn_reading(c, false);
            return;
        }
        pump(c, NULL, 0);
        return;
    }
    pump(c, buf, len);
}

void conn_resume(http_conn_t *c)
{
    if (c->closing) return;
    if (c->state == CONN_UPGRADED) {
        if (c->pending.len > 0 && c->ops && c->ops->on_data) {
            p2p_buf_t b = c->pending;
            p2p_buf_init(&c->pending, b.limit);
            c->ops->on_data(c->ops_ctx, b.data, b.len);
            p2p_buf_free(&b);
        }
        if (!c->closing) conn_reading(c, true);
        return;
    }
    if (c->state == CONN_HANDLING) return;
    pump(c, NULL, 0);
}
