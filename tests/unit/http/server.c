/* Unit tests of src/http/server.c and server_conn.c: a real server on 127.0.0.1 (its loop on a
 * thread) and a blocking socket client speaking raw HTTP/1.1 to it. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/http.h"

typedef struct fixture {
    uv_loop_t loop;
    uv_async_t stop;
    http_server_t *srv;
    pthread_t thread;
    int port;
    http_conn_t *upgraded;
} fixture_t;

/* --- handler (runs on the loop thread) ------------------------------------------------------ */

typedef struct later {
    uv_timer_t t;
    http_exchange_t *x;
    char body[64];
} later_t;

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_cb(uv_timer_t *t)
{
    later_t *l = t->data;
    http_respond(l->x, 200, "text/plain", l->body, strlen(l->body));
    uv_close((uv_handle_t *)t, later_closed);
}

static void echo_data(void *ctx, const uint8_t *buf, size_t len)
{
    fixture_t *f = ctx;
    http_conn_write(f->upgraded, buf, len, 1 << 20);
}

static void echo_close(void *ctx)
{
    ((fixture_t *)ctx)->upgraded = NULL;
}

static const http_upgrade_ops_t echo_ops = {.on_data = echo_data, .on_close = echo_close};

static void handler(http_exchange_t *x, void *ctx)
{
    fixture_t *f = ctx;
    const http_request_t *r = http_exchange_request(x);
    char out[512];
    if (strcmp(r->path, "/hello") == 0) {
        http_respond(x, 200, "text/plain", "hello", 5);
    } else if (strcmp(r->path, "/echo") == 0) {
        http_respond(x, 200, "application/octet-stream", r->body, r->body_len);
    } else if (strcmp(r->path, "/slow") == 0 || strcmp(r->path, "/fast") == 0) {
        later_t *l = calloc(1, sizeof(*l));
        l->x = x;
        snprintf(l->body, sizeof(l->body), "%s", r->path + 1);
        uv_timer_init(&f->loop, &l->t);
        l->t.data = l;
        uv_timer_start(&l->t, later_cb, strcmp(r->path, "/slow") == 0 ? 100 : 1, 0);
    } else if (strcmp(r->path, "/query") == 0) {
        int n = http_query_get(r, "k", out, sizeof(out));
        if (n < 0) n = snprintf(out, sizeof(out), "err %d", n);
        http_respond(x, 200, "text/plain", out, (size_t)n);
    } else if (strcmp(r->path, "/bearer") == 0) {
        size_t len;
        const char *t = http_bearer(r, &len);
        http_respond(x, 200, "text/plain", t ? t : "none", t ? len : 4);
    } else if (strcmp(r->path, "/header") == 0) {
        size_t len;
        const char *v = http_header_get(r, "x-test", &len);
        http_respond(x, 200, "text/plain", v ? v : "none", v ? len : 4);
    } else if (strcmp(r->path, "/upgrade") == 0) {
        http_add_header(x, "Upgrade", "echo");
        f->upgraded = http_upgrade(x, &echo_ops, f);
    } else if (strcmp(r->path, "/added") == 0) {
        assert_int_equal(http_add_header(x, "Bad", "a\r\nInjected: 1"), -EINVAL);
        assert_int_equal(http_add_header(x, "X-Ok", "1"), 0);
        http_respond(x, 201, NULL, NULL, 0);
    } else if (strcmp(r->path, "/error") == 0) {
        http_respond_error(x, 404, -32003, "no \"such\" thing", "name");
    } else {
        http_respond(x, 404, NULL, NULL, 0);
    }
}

/* --- fixture ------------------------------------------------------------------------------- */

static void stop_done(void *arg)
{
    (void)arg;
}

static void stop_cb(uv_async_t *a)
{
    fixture_t *f = a->data;
    http_server_stop(f->srv, stop_done, f);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
    fixture_t *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static fixture_t *start(double rate, double burst, const char *cors)
{
    fixture_t *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    uv_async_init(&f->loop, &f->stop, stop_cb);
    f->stop.data = f;
    http_config_t cfg = {.host = "127.0.0.1", .port = 0, .rate_per_s = rate, .rate_burst = burst};
    if (cors) {
        cfg.cors_origins[0] = cors;
        cfg.n_cors_origins = 1;
    }
    char err[256];
    assert_int_equal(http_server_start(&f->loop, &cfg, handler, f, &f->srv, err, sizeof(err)), 0);
    f->port = http_server_port(f->srv);
    assert_true(f->port > 0);
    pthread_create(&f->thread, NULL, loop_main, f);
    return f;
}

static void finish(fixture_t *f)
{
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
}

/* --- client -------------------------------------------------------------------------------- */

static int dial(const fixture_t *f)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return; /* the server may have closed: the answer tells */
        p += n;
        len -= (size_t)n;
    }
}

static void send_str(int fd, const char *s)
{
    send_all(fd, s, strlen(s));
}

typedef struct resp {
    int status;
    char head[4096];
    char *body;
    size_t body_len;
} resp_t;

typedef struct rbuf {
    char data[1 << 16];
    size_t len;
} rbuf_t;

/* Reads more into b; false on EOF/error or 5 s without data. */
static bool fill(int fd, rbuf_t *b)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) <= 0) return false;
    if (b->len == sizeof(b->data)) return false;
    ssize_t n = recv(fd, b->data + b->len, sizeof(b->data) - b->len, 0);
    if (n <= 0) return false;
    b->len += (size_t)n;
    return true;
}

/* Reads one response (Content-Length framed). Returns false when the connection ended first. */
static bool read_resp(int fd, rbuf_t *b, resp_t *r, bool head_request)
{
    memset(r, 0, sizeof(*r));
    char *end;
    while (!(end = memmem(b->data, b->len, "\r\n\r\n", 4)))
        if (!fill(fd, b)) return false;
    size_t hl = (size_t)(end - b->data) + 4;
    assert_true(hl < sizeof(r->head));
    memcpy(r->head, b->data, hl);
    r->head[hl] = 0;
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    size_t cl = 0;
    const char *c = strcasestr(r->head, "\r\nContent-Length: ");
    if (c && !head_request) cl = strtoul(c + 18, NULL, 10);
    while (b->len < hl + cl)
        if (!fill(fd, b)) return false;
    r->body = malloc(cl + 1);
    memcpy(r->body, b->data + hl, cl);
    r->body[cl] = 0;
    r->body_len = cl;
    memmove(b->data, b->data + hl + cl, b->len - hl - cl);
    b->len -= hl + cl;
    return true;
}

static bool closed_by_server(int fd, rbuf_t *b)
{
    while (fill(fd, b))
        ;
    char x;
    return recv(fd, &x, 1, MSG_DONTWAIT) == 0;
}

static int one(const fixture_t *f, const char *req, resp_t *r)
{
    int fd = dial(f);
    rbuf_t *b = calloc(1, sizeof(*b));
    send_str(fd, req);
    bool ok = read_resp(fd, b, r, false);
    free(b);
    close(fd);
    return ok ? r->status : -1;
}

/* --- tests --------------------------------------------------------------------------------- */

static void test_get_keepalive(void **state)
{
    (void)state;
    fixture_t *f = start(0, 0, NULL);
    int fd = dial(f);
    rbuf_t *b = calloc(1, sizeof(*b));
    resp_t r;
    for (int i = 0; i < 3; i++) {
        send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_true(read_resp(fd, b, &r, false));
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "hello");
        assert_non_null(strstr(r.head, "\r\nDate: "));
        assert_non_null(strstr(r.head, "\r\nContent-Type: text/plain\r\n"));
        assert_null(strstr(r.head, "Connection: close"));
        free(r.body);
    }
    send_str(fd, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(read_resp(fd, b, &r, true));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.head, "Content-Length: 5\r\n"));
    free(r.body);
    send_str(fd, "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_true(read_resp(fd, b, &r, false));
    assert_string_equal(r.body, "hello"); /* HEAD sent no body: this one follows at once */
    assert_non_null(strstr(r.head, "Connection: close"));
    free(r.body);
    assert_true(closed_by_server(fd, b));
    close(fd);
    free(b);
    finish(f);
}

static void test_pipelining_in_order(void **state)
{
    (void)state;
    fixture_t *f = start(0, 0, NULL);
    int fd = dial(f);
    rbuf_t *b = calloc(1, sizeof(*b));
    /* the slow answer comes last in time but must go out first */
    send_str(fd, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    const char *want[] = {"slow", "hello", "fast", "hello"};
    for (int i = 0; i < 4; i++) {
        resp_t r;
        assert_true(read_resp(fd, b, &r, false));
        assert_string_equal(r.body, want[i]);
        free(r.body);
    }
    /* many small requests in one write */
    char *many = malloc(200 * 40);
    size_t n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)sprintf(many + n, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    send_all(fd, many, n);
    for (int i = 0; i < 200; i++) {
        resp_t r;
        assert_true(read_resp(fd, b, &r, false));
        assert_int_equal(r.status, 200);
        free(r.body);
    }
    free(many);
    close(fd);
    free(b);
    finish(f);
}

static void test_bodies(void **state)
{
    (void)state;
    fixture_t *f = start(0, 0, NULL);
    resp_t r;
    assert_int_equal(one(f, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabcde", &r),
                     200);
    assert_string_equal(r.body, "abcde");
    free(r.body);
    assert_int_equal(one(f,
                         "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                         "3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n",
                         &r),
                     200);
    assert_string_equal(r.body, "abcdefg");
    free(r.body);
    /* Expect: 100-continue gets the interim answer before the body is sent */
    int fd = dial(f);
    rbuf_t *b = calloc(1, sizeof(*b));
    send_str(fd,
             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n");
    assert_true(read_resp(fd, b, &r, false));
    assert_int_equal(r.status, 100);
    free(r.body);
    send_str(fd, "ok");
    assert_true(read_resp(fd, b, &r, false));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    free(r.body);
    close(fd);
    free(b);
    finish(f);
}

static void test_refusals(void **state)
{
    (void)state;
    fixture_t *f = start(0, 0, NULL);
    resp_t r;
    /* smuggling: both lengths, and two different lengths */
    assert_int_equal(one(f,
                         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                         &r),
                     400);
    assert_non_null(strstr(r.body, "\"code\":-32600"));
    assert_non_null(strstr(r.head, "Connection: close"));
    free(r.body);
    assert_int_equal(one(f,
                         "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                         "Content-Length: 4\r\n\r\nabcd",
                         &r),
                     400);
    free(r.body);
    /* strict header rules: a name with a blank, an empty name, a folded line, other codings */
    const char *bad400[] = {
        "GET /hello HTTP/1.1\r\nBad Name: x\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: x\r\n: empty\r\n\r\n",
        "GET /hello HTTP/1.1\r\nX-Fold: a\r\n folded\r\n\r\n",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding:\r\nContent-Length: 1\r\n\r\nx",
        "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad400) / sizeof(bad400[0]); i++) {
        assert_int_equal(one(f, bad400[i], &r), 400);
        free(r.body);
    }
    assert_int_equal(one(f,
                         "POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                         "0\r\n\r\n",
                         &r) >= 400,
                     1);
    free(r.body);
    assert_int_equal(one(f, "GARBAGE\r\n\r\n", &r), 400);
    free(r.body);
    assert_int_equal(one(f, "GET /hello HTTP/2.0\r\n\r\n", &r) >= 400, 1);
    free(r.body);
    /* limits */
    size_t big = HTTP_MAX_URL + 100;
    char *req = malloc(big + 64);
    int n = sprintf(req, "GET /");
    memset(req + n, 'a', big);
    strcpy(req + n + big, " HTTP/1.1\r\n\r\n");
    assert_int_equal(one(f, req, &r), 414);
    free(r.body);
    free(req);
    req = malloc(HTTP_MAX_HEADER_BYTES + 256);
    n = sprintf(req, "GET /hello HTTP/1.1\r\nX-Big: ");
    memset(req + n, 'b', HTTP_MAX_HEADER_BYTES);
    strcpy(req + n + HTTP_MAX_HEADER_BYTES, "\r\n\r\n");
    assert_int_equal(one(f, req, &r), 431);
    free(r.body);
    n = sprintf(req, "GET /hello HTTP/1.1\r\n");
    for (int i = 0; i <= HTTP_MAX_HEADERS; i++)
        n += sprintf(req + n, "X-%d: v\r\n", i);
    strcpy(req + n, "\r\n");
    assert_int_equal(one(f, req, &r), 431);
    free(r.body);
    free(req);
    char cl[128];
    snprintf(cl, sizeof(cl), "POST /echo HTTP/1.1\r\nContent-Length: %u\r\n\r\n",
             HTTP_MAX_BODY + 1);
    assert_int_equal(one(f, cl, &r), 413);
    free(r.body);
    /* still serving */
    assert_int_equal(one(f, "GET /hello HTTP/1.1\r\n\r\n", &r), 200);
    free(r.body);
    assert_true(http_server_stats(f->srv)->parse_errors >= 7);
    finish(f);
}

static void test_accessors(void **state)
{
    (void)state;
    fixture_t *f = start(0, 0, NULL);
    resp_t r;
    assert_int_equal(one(f, "GET /query?a=1&k=x%20y+z&b HTTP/1.1\r\n\r\n", &r), 200);
    assert_string_equal(r.body, "x y z");
    free(r.body);
    assert_int_equal(one(f, "GET /query?k=%zz HTTP/1.1\r\n\r\n", &r), 200);
    assert_string_equal(r.body, "err -22");
    free(r.body);
    assert_int_equal(one(f, "GET /query?k=%00 HTTP/1.1\r\n\r\n", &r), 200);
    assert_string_equal(r.body, "err -22");
    free(r.body);
    assert_int_equal(one(f, "GET /query?kk=1 HTTP/1.1\r\n\r\n", &r), 200);
    assert_string_equal(r.body, "err -2");
    free(r.body);
    assert_int_equal(one(f, "GET /bearer HTTP/1.1\r\nauthorization: bearer abc.def\r\n\r\n", &r),
                     200);
    assert_string_equal(r.body, "abc.def");
    free(r.body);
    assert_int_equal(one(f, "GET /header HTTP/1.1\r\nX-TEST:   padded value  \r\n\r\n", &r), 200);
    assert_string_equal(r.body, "padded value");
    free(r.body);
    assert_int_equal(one(f, "GET /added HTTP/1.1\r\n\r\n", &r), 201);
    assert_non_null(strstr(r.head, "\r\nX-Ok: 1\r\n"));
    assert_null(strstr(r.head, "Injected"));
    free(r.body);
    assert_int_equal(one(f, "GET /error HTTP/1.1\r\n\r\n", &r), 404);
    assert_string_equal(r.body, "{\"error\":{\"code\":-32003,\"message\":\"no \\\"such\\\" "
                                "thing\",\"data\":{\"param\":\"name\"}}}");
    free(r.body);
    /* HTTP/1.0: closed after the answer unless keep-alive is asked */
    int fd = dial(f);
    rbuf_t *b = calloc(1, sizeof(*b));
    send_str(fd, "GET /hello HTTP/1.0\r\n\r\n");
    assert_true(read_resp(fd, b, &r, false));
    free(r.body);
    assert_true(closed_by_server(fd, b));
    close(fd);
    fd = dial(f);
    b->len = 0;
    send_str(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(read_resp(fd, b, &r, false));
    assert_non_null(strstr(r.head, "Connection: keep-alive"));
    free(r.body);
    send_str(fd, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_true(read_resp(fd, b, &r, false));
    free(r.body);
    close(fd);
    free(b);
    finish(f);
}

static void test_rate_limit(void **state)
{
    (void)state;
    fixture_t *f = start(1, 3, NULL);
    int fd = dial(f);
    rbuf_t *b = calloc(1, sizeof(*b));
    int ok = 0, limited = 0;
    for (int i = 0; i < 10; i++) {
        resp_t r;
        send_str(fd, "GET /hello HTTP/1.1\r\n\r\n");
        assert_true(read_resp(fd, b, &r, false)); /* never dropped */
        if (r.status == 200) ok++;
        if (r.status == 429) {
            limited++;
            assert_non_null(strstr(r.head, "\r\nRetry-After: "));
            assert_non_null(strstr(r.body, "-32006"));
        }
        free(r.body);
    }
    assert_true(ok >= 3 && ok <= 4);
    assert_int_equal(ok + limited, 10);
    close(fd);
    free(b);
    finish(f);
}

static void test_cors(void **state)
{
    (void)state;
    fixture_t *f = start(0, 0, "https://ui.example");
    resp_t r;
    assert_int_equal(one(f, "GET /hello HTTP/1.1\r\nOrigin: https://ui.example\r\n\r\n", &r), 200);
    assert_non_null(strstr(r.head, "Access-Control-Allow-Origin: https://ui.example\r\n"));
    assert_non_null(strstr(r.head, "Vary: Origin"));
    free(r.body);
    assert_int_equal(one(f, "GET /hello HTTP/1.1\r\nOrigin: https://evil.example\r\n\r\n", &r),
                     200);
    assert_null(strstr(r.head, "Access-Control-Allow-Origin"));
    free(r.body);
    assert_int_equal(one(f,
                         "OPTIONS /api/rpc HTTP/1.1\r\nOrigin: https://ui.example\r\n"
                         "Access-Control-Request-Method: POST\r\n\r\n",
                         &r),
                     204);
    assert_non_null(strstr(r.head, "Access-Control-Allow-Methods: "));
    assert_non_null(strstr(r.head, "Access-Control-Allow-Headers: Authorization"));
    free(r.body);
    finish(f);
    /* off by default */
    f = start(0, 0, NULL);
    assert_int_equal(one(f, "GET /hello HTTP/1.1\r\nOrigin: https://ui.example\r\n\r\n", &r), 200);
    assert_null(strstr(r.head, "Access-Control"));
    free(r.body);
    finish(f);
}

static void test_upgrade(void **state)
{
    (void)state;
    fixture_t *f = start(0, 0, NULL);
    int fd = dial(f);
    rbuf_t *b = calloc(1, sizeof(*b));
    /* bytes after the request in the same write reach the new protocol first */
    send_str(fd, "GET /upgrade HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly;");
    resp_t r;
    assert_true(read_resp(fd, b, &r, true));
    assert_int_equal(r.status, 101);
    assert_non_null(strstr(r.head, "Connection: Upgrade\r\n"));
    assert_non_null(strstr(r.head, "Upgrade: echo\r\n"));
    free(r.body);
    send_str(fd, "late");
    while (b->len < 10)
        assert_true(fill(fd, b));
    assert_memory_equal(b->data, "early;late", 10);
    close(fd);
    free(b);
    finish(f);
}

static void test_client_leaves_early(void **state)
{
    (void)state;
    fixture_t *f = start(0, 0, NULL);
    for (int i = 0; i < 5; i++) {
        int fd = dial(f);
        send_str(fd, "GET /slow HTTP/1.1\r\n\r\nGET /hello HTTP/1.1\r\n\r\n");
        close(fd); /* gone before the answer */
    }
    usleep(300 * 1000);
    resp_t r;
    assert_int_equal(one(f, "GET /hello HTTP/1.1\r\n\r\n", &r), 200);
    free(r.body);
    finish(f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as p2p-node does: a client that left is an error return */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_keepalive),
        cmocka_unit_test(test_pipelining_in_order),
        cmocka_unit_test(test_bodies),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_cors),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_client_leaves_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
