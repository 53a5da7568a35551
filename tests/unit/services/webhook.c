/* webhook.c: unit tests for src/services/webhook.c against a real HTTP server on 127.0.0.1 (a
 * small Python http.server subclass started by the test in a subprocess): delivery, a retry after
 * a 500, giving up after the attempts, no retry on a 400, a refused connection, the bounded queue,
 * and closing with events in flight (the loop closes clean). */
#include <poll.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "services/webhook.h"

/* Answers POST /ok 200, /flaky 500 then 200, /fail 500, /bad 400, /slow after 3 s; prints
 * "POST <path> <body>" for each request before answering, one whole line under a lock (print()
 * from two handler threads can interleave its pieces, which once failed CI). */
static const char SERVER[] =
    "import http.server, sys, threading, time\n"
    "seen = {}\n"
    "lock = threading.Lock()\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    protocol_version = 'HTTP/1.1'\n"
    "    def log_message(self, *a): pass\n"
    "    def do_POST(self):\n"
    "        n = int(self.headers.get('Content-Length', '0'))\n"
    "        body = self.rfile.read(n).decode()\n"
    "        ct = self.headers.get('Content-Type', '')\n"
    "        with lock:\n"
    "            sys.stdout.write(' '.join(('POST', self.path, ct, body)) + "
    "'\\n')\n"
    "            sys.stdout.flush()\n"
    "            seen[self.path] = seen.get(self.path, 0) + 1\n"
    "        code = 200\n"
    "        if self.path == '/fail' or (self.path == '/flaky' and "
    "seen[self.path] == 1): code = 500\n"
    "        if self.path == '/bad': code = 400\n"
    "        if self.path == '/slow': time.sleep(3)\n"
    "        self.send_response(code)\n"
    "        self.send_header('Content-Length', '2')\n"
    "        self.end_headers()\n"
    "        self.wfile.write(b'ok')\n"
    "s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)\n"
    "print('PORT', s.server_address[1], flush=True)\n"
    "s.serve_forever()\n";

typedef struct server {
    pid_t pid;
    int out; /* the server's stdout */
    int port;
    char buf[65536];
    size_t len;
} server_t;

/* Reads one line from the server within timeout_ms into line; false on timeout or EOF. */
static bool read_line(server_t *s, char *line, size_t cap, int timeout_ms)
{
    for (int i = 0; i < 1000; i++) {
        char *nl = memchr(s->buf, '\n', s->len);
        if (nl) {
            size_t n = (size_t)(nl - s->buf);
            assert_true(n < cap);
            memcpy(line, s->buf, n);
            line[n] = '\0';
            memmove(s->buf, nl + 1, s->len - n - 1);
            s->len -= n + 1;
            return true;
        }
        struct pollfd p = {.fd = s->out, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0) return false;
        ssize_t r = read(s->out, s->buf + s->len, sizeof(s->buf) - 1 - s->len);
        if (r <= 0) return false;
        s->len += (size_t)r;
    }
    return false;
}

static int server_start(void **state)
{
    server_t *s = calloc(1, sizeof(*s));
    int p[2];
    assert_int_equal(pipe(p), 0);
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl("/usr/bin/python3", "python3", "-c", SERVER, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    s->out = p[0];
    char line[128];
    assert_true(read_line(s, line, sizeof(line), 10000));
    assert_int_equal(sscanf(line, "PORT %d", &s->port), 1);
    *state = s;
    return 0;
}

static int server_stop(void **state)
{
    server_t *s = *state;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    close(s->out);
    free(s);
    return 0;
}

typedef struct result {
    int n, status[128], attempts[128];
    long http[128];
} result_t;

static void done_cb(void *arg, int status, int attempts, long http_status)
{
    result_t *r = arg;
    assert_true(r->n < 128);
    r->status[r->n] = status;
    r->attempts[r->n] = attempts;
    r->http[r->n] = http_status;
    r->n++;
}

static void closed_cb(void *arg)
{
    *(bool *)arg = true;
}

/* Runs the loop until `want` events are done (bounded by a 20 s guard). */
static void run_until(uv_loop_t *loop, result_t *r, int want)
{
    uint64_t deadline = uv_now(loop) + 20000;
    while (r->n < want && uv_now(loop) < deadline) {
        uv_run(loop, UV_RUN_ONCE);
        uv_update_time(loop);
    }
    assert_int_equal(r->n, want);
}

static void close_and_check(uv_loop_t *loop, svc_webhook_t *w)
{
    bool closed = false;
    svc_webhook_close(w, closed_cb, &closed);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_true(closed);
    assert_int_equal(uv_loop_close(loop), 0);
}

static svc_webhook_t *make(uv_loop_t *loop, server_t *s, const char *path, result_t *r)
{
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->port, path);
    svc_webhook_config_t c = {.url = url, .max_attempts = 3, .backoff_ms = 20, .timeout_ms = 1000};
    svc_webhook_t *w;
    assert_int_equal(svc_webhook_new(loop, &c, &w), 0);
    svc_webhook_on_done(w, done_cb, r);
    return w;
}

static void test_deliver_and_retry(void **state)
{
    server_t *s = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    result_t r = {0};
    svc_webhook_t *w = make(&loop, s, "/ok", &r);
    assert_int_equal(svc_webhook_post(w, "{\"n\":1}"), 0);
    assert_int_equal(svc_webhook_post(w, "{\"n\":2}"), 0);
    run_until(&loop, &r, 2);
    assert_int_equal(r.status[0], 0);
    assert_int_equal(r.attempts[0], 1);
    assert_int_equal(r.http[0], 200);
    char line[256];
    bool got1 = false, got2 = false;
    for (int i = 0; i < 2; i++) {
        assert_true(read_line(s, line, sizeof(line), 5000));
        got1 |= strcmp(line, "POST /ok application/json {\"n\":1}") == 0;
        got2 |= strcmp(line, "POST /ok application/json {\"n\":2}") == 0;
    }
    assert_true(got1 && got2);
    close_and_check(&loop, w);

    /* a 500 first: retried, then delivered */
    uv_loop_init(&loop);
    memset(&r, 0, sizeof(r));
    w = make(&loop, s, "/flaky", &r);
    assert_int_equal(svc_webhook_post(w, "{\"e\":\"x\"}"), 0);
    run_until(&loop, &r, 1);
    assert_int_equal(r.status[0], 0);
    assert_int_equal(r.attempts[0], 2);
    assert_true(read_line(s, line, sizeof(line), 5000));
    assert_string_equal(line, "POST /flaky application/json {\"e\":\"x\"}");
    assert_true(read_line(s, line, sizeof(line), 5000));
    assert_string_equal(line, "POST /flaky application/json {\"e\":\"x\"}");
    svc_webhook_stats_t st;
    svc_webhook_get_stats(w, &st);
    assert_int_equal(st.delivered, 1);
    assert_int_equal(st.attempts, 2);
    assert_int_equal(st.queued, 0);
    close_and_check(&loop, w);
}

static void test_give_up(void **state)
{
    server_t *s = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    result_t r = {0};
    svc_webhook_t *w = make(&loop, s, "/fail", &r);
    assert_int_equal(svc_webhook_post(w, "{}"), 0);
    run_until(&loop, &r, 1);
    assert_int_equal(r.status[0], -EPROTO);
    assert_int_equal(r.attempts[0], 3); /* max_attempts */
    assert_int_equal(r.http[0], 500);
    close_and_check(&loop, w);
    char line[256];
    for (int i = 0; i < 3; i++)
        assert_true(read_line(s, line, sizeof(line), 5000));

    /* a 400 is not retried */
    uv_loop_init(&loop);
    memset(&r, 0, sizeof(r));
    w = make(&loop, s, "/bad", &r);
    assert_int_equal(svc_webhook_post(w, "{}"), 0);
    run_until(&loop, &r, 1);
    assert_int_equal(r.status[0], -EPROTO);
    assert_int_equal(r.attempts[0], 1);
    assert_int_equal(r.http[0], 400);
    svc_webhook_stats_t st;
    svc_webhook_get_stats(w, &st);
    assert_int_equal(st.failed, 1);
    close_and_check(&loop, w);
    assert_true(read_line(s, line, sizeof(line), 5000));
}

/* A port nobody listens on (bound, never listening). */
static int dead_port(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(*fd, (struct sockaddr *)&a, &l);
    return ntohs(a.sin_port);
}

static void test_refused_and_bounded(void **state)
{
    (void)state;
    int fd;
    int port = dead_port(&fd);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", port);
    uv_loop_t loop;
    uv_loop_init(&loop);
    result_t r = {0};
    svc_webhook_config_t c = {.url = url, .max_attempts = 2, .backoff_ms = 10};
    svc_webhook_t *w;
    assert_int_equal(svc_webhook_new(&loop, &c, &w), 0);
    svc_webhook_on_done(w, done_cb, &r);
    assert_int_equal(svc_webhook_post(w, "{}"), 0);
    run_until(&loop, &r, 1);
    assert_int_equal(r.status[0], -EIO);
    assert_int_equal(r.attempts[0], 2);
    assert_int_equal(r.http[0], 0);

    /* a flood: the queue stays bounded, the oldest waiting events are dropped */
    memset(&r, 0, sizeof(r));
    for (int i = 0; i < SVC_WEBHOOK_MAX_QUEUE + 20; i++)
        assert_int_equal(svc_webhook_post(w, "{\"flood\":true}"), 0);
    svc_webhook_stats_t st;
    svc_webhook_get_stats(w, &st);
    assert_true(st.queued <= SVC_WEBHOOK_MAX_QUEUE);
    assert_int_equal(st.dropped, 20);
    assert_int_equal(r.n, 20);
    for (int i = 0; i < 20; i++)
        assert_int_equal(r.status[i], -ENOBUFS);
    run_until(&loop, &r, SVC_WEBHOOK_MAX_QUEUE + 20);
    svc_webhook_get_stats(w, &st);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.failed, SVC_WEBHOOK_MAX_QUEUE + 1);
    /* bad input */
    char *big = malloc(SVC_WEBHOOK_MAX_BODY + 2);
    memset(big, 'x', SVC_WEBHOOK_MAX_BODY + 1);
    big[SVC_WEBHOOK_MAX_BODY + 1] = '\0';
    assert_int_equal(svc_webhook_post(w, big), -EMSGSIZE);
    free(big);
    close_and_check(&loop, w);
    close(fd);
    svc_webhook_config_t bad = {.url = "ftp://127.0.0.1/"};
    assert_int_equal(svc_webhook_new(&loop, &bad, &w), -EINVAL);
}

static void test_timeout(void **state)
{
    server_t *s = *state;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/slow", s->port);
    uv_loop_t loop;
    uv_loop_init(&loop);
    result_t r = {0};
    svc_webhook_config_t c = {.url = url, .max_attempts = 1, .timeout_ms = 300};
    svc_webhook_t *w;
    assert_int_equal(svc_webhook_new(&loop, &c, &w), 0);
    svc_webhook_on_done(w, done_cb, &r);
    assert_int_equal(svc_webhook_post(w, "{}"), 0);
    run_until(&loop, &r, 1); /* the server answers after 3 s: the attempt times out first */
    assert_int_equal(r.status[0], -EIO);
    assert_int_equal(r.attempts[0], 1);
    close_and_check(&loop, w);
    char line[256];
    assert_true(read_line(s, line, sizeof(line), 5000));
}

static void test_close_in_flight(void **state)
{
    server_t *s = *state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    result_t r = {0};
    svc_webhook_t *w = make(&loop, s, "/slow", &r);
    for (int i = 0; i < 6; i++)
        assert_int_equal(svc_webhook_post(w, "{}"), 0);
    /* run until the first request reached the server (it then sleeps 3 s) */
    char line[256];
    for (int i = 0; i < 200 && !s->len; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = s->out, .events = POLLIN};
        if (poll(&p, 1, 20) > 0) break;
    }
    assert_true(read_line(s, line, sizeof(line), 5000));
    bool closed = false;
    svc_webhook_close(w, closed_cb, &closed);
    assert_int_equal(r.n, 6); /* every event reported at once */
    for (int i = 0; i < 6; i++)
        assert_int_equal(r.status[i], -ECANCELED);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(closed);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deliver_and_retry),   cmocka_unit_test(test_give_up),
        cmocka_unit_test(test_refused_and_bounded), cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_close_in_flight),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
