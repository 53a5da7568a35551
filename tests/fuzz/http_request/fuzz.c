/* Fuzz harness of the HTTP request path (src/http/server.c, server_conn.c, llhttp): a real server
 * on 127.0.0.1 in this process; each input goes down one loopback connection, in two writes split
 * at a point the input's byte sum picks, then the client half-closes and the loop runs until the server
 * closed the connection. Handlers answer at once, from a timer, echo the body, or upgrade to an
 * echo protocol, so pipelined, deferred and upgraded paths all see fuzzed bytes. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"
#include "http/http.h"

static uv_loop_t loop;
static http_server_t *srv;
static int port;
static http_conn_t *upgraded;

typedef struct later {
    uv_timer_t t;
    http_exchange_t *x;
} later_t;

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_cb(uv_timer_t *t)
{
    later_t *l = t->data;
    http_respond(l->x, 200, "text/plain", "later", 5);
    uv_close((uv_handle_t *)t, later_closed);
}

static void up_data(void *ctx, const uint8_t *buf, size_t len)
{
    (void)ctx;
    if (upgraded) http_conn_write(upgraded, buf, len, 1 << 16);
}

static void up_close(void *ctx)
{
    (void)ctx;
    upgraded = NULL;
}

static const http_upgrade_ops_t up_ops = {.on_data = up_data, .on_close = up_close};

static void handler(http_exchange_t *x, void *ctx)
{
    (void)ctx;
    const http_request_t *r = http_exchange_request(x);
    char v[64];
    if (strncmp(r->path, "/later", 6) == 0) {
        later_t *l = calloc(1, sizeof(*l));
        if (!l) {
            http_respond(x, 503, NULL, NULL, 0);
            return;
        }
        l->x = x;
        uv_timer_init(&loop, &l->t);
        l->t.data = l;
        uv_timer_start(&l->t, later_cb, 0, 0);
    } else if (strncmp(r->path, "/up", 3) == 0 && r->upgrade && !upgraded) {
        http_add_header(x, "Upgrade", "echo");
        upgraded = http_upgrade(x, &up_ops, NULL);
    } else if (strncmp(r->path, "/echo", 5) == 0) {
        http_respond(x, 200, "application/octet-stream", r->body, r->body_len);
    } else {
        int n = http_query_get(r, "q", v, sizeof(v));
        size_t bl;
        const char *b = http_bearer(r, &bl);
        http_header_get(r, "x-h", NULL);
        if (b && n >= 0) http_add_header(x, "X-Q", v);
        http_respond_error(x, 404, -32003, "not found", n >= 0 ? v : NULL);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&loop);
    http_config_t cfg = {.host = "127.0.0.1", .port = 0, .rate_per_s = 1e6, .rate_burst = 1e6};
    cfg.cors_origins[0] = "http://a";
    cfg.n_cors_origins = 1;
    char err[128];
    if (http_server_start(&loop, &cfg, handler, NULL, &srv, err, sizeof(err)) != 0) abort();
    port = http_server_port(srv);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv) LLVMFuzzerInitialize(NULL, NULL);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) abort();
    fcntl(fd, F_SETFL, O_NONBLOCK);
    unsigned sum = 0;
    for (size_t i = 0; i < size; i++)
        sum += data[i];
    size_t split = size > 1 ? sum % size : size, sent = 0;
    bool shut = false, eof = false;
    char sink[65536];
    size_t got = 0;
    /* bounded: every path ends with the server closing after our half-close */
    for (int i = 0; i < 20000 && !eof; i++) {
        size_t stop = sent < split ? split : size;
        if (sent < stop) {
            ssize_t n = send(fd, data + sent, stop - sent, MSG_NOSIGNAL);
            if (n > 0) sent += (size_t)n;
        } else if (sent >= size && !shut) {
            shutdown(fd, SHUT_WR);
            shut = true;
        }
        uv_run(&loop, UV_RUN_NOWAIT);
        for (;;) {
            ssize_t n = recv(fd, sink, sizeof(sink), 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) eof = true;
            if (n <= 0) break;
            got += (size_t)n;
        }
    }
    close(fd);
    if (getenv("HTTP_FUZZ_VERBOSE")) /* to see what the corpus reaches */
        fprintf(stderr, "input %zu bytes: answer %zu bytes, eof %d, requests %llu\n", size, got,
                eof, (unsigned long long)http_server_stats(srv)->requests);
    for (int i = 0; i < 4; i++)
        uv_run(&loop, UV_RUN_NOWAIT); /* let close callbacks run */
    return 0;
}
