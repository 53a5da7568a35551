/* Unit tests of src/http/metrics.c: scrapes through a real HTTP server (its loop on a thread) of a
 * metrics part whose host collectors are the test's: a quick one, one that fails, and one that
 * hangs past HTTP_METRICS_COLLECTOR_TIMEOUT_MS. The hung one must only mark itself failed
 * (p2p_scrape_collector_success{collector="hung"} 0) while the answer comes in time with the
 * rest. With --promtool the answer also goes through `promtool check metrics`. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "http/metrics-internal.h"
#include "promtool.h"

static bool with_promtool;

/* --- the test's host collectors (they run on collector threads) ---------------------------- */

static pthread_mutex_t hang_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hang_cond = PTHREAD_COND_INITIALIZER;
static bool hang_release;

static int quick_fn(http_mtext_t *w, const char *proc_root)
{
    (void)proc_root;
    http_mtext_family(w, "test_quick_value", HTTP_MT_GAUGE, "A value of the quick collector.");
    return http_mtext_sample(w, NULL, 0, 42);
}

static int failing_fn(http_mtext_t *w, const char *proc_root)
{
    (void)proc_root;
    http_mtext_family(w, "test_dropped_value", HTTP_MT_GAUGE, "Must not appear.");
    http_mtext_sample(w, NULL, 0, 1);
    return -EIO;
}

static int hung_fn(http_mtext_t *w, const char *proc_root)
{
    (void)proc_root;
    pthread_mutex_lock(&hang_lock);
    while (!hang_release)
        pthread_cond_wait(&hang_cond, &hang_lock);
    pthread_mutex_unlock(&hang_lock);
    http_mtext_family(w, "test_late_value", HTTP_MT_GAUGE, "Written after the deadline.");
    return http_mtext_sample(w, NULL, 0, 1);
}

static const http_host_collector_t collectors[] = {
    {"quick", quick_fn},
    {"failing", failing_fn},
    {"hung", hung_fn},
};

/* --- fixture: a node context with only what metrics.c reads, the part and a server ---------- */

typedef struct fixture {
    uv_loop_t loop;
    uv_async_t stop;
    node_t node;
    http_api_t api;
    pthread_t thread;
    int port;
} fixture_t;

static void handler(http_exchange_t *x, void *ctx)
{
    fixture_t *f = ctx;
    http_metrics_scrape(x, &f->api, NULL);
}

static void server_done(void *arg)
{
    (void)arg;
}

static void stop_cb(uv_async_t *a)
{
    fixture_t *f = a->data;
    http_metrics_stop(&f->api);
    http_server_stop(f->api.server, server_done, NULL);
    uv_close((uv_handle_t *)a, NULL);
}

static void *loop_main(void *arg)
{
    fixture_t *f = arg;
    uv_run(&f->loop, UV_RUN_DEFAULT);
    return NULL;
}

static fixture_t *start(void)
{
    fixture_t *f = calloc(1, sizeof(*f));
    uv_loop_init(&f->loop);
    f->node.loop = &f->loop;
    snprintf(f->node.cfg.name, sizeof(f->node.cfg.name), "metrics-test");
    f->node.cfg.metrics_enabled = true;
    f->api.node = &f->node;
    f->api.pending_stops = 1; /* the part's stop takes one more and gives it back */
    char err[256];
    assert_int_equal(http_metrics_start(&f->api, err, sizeof(err)), 0);
    http_metrics_set_host(f->api.metrics, collectors, 3, "/proc");
    http_config_t cfg = {.host = "127.0.0.1", .port = 0};
    assert_int_equal(
        http_server_start(&f->loop, &cfg, handler, f, &f->api.server, err, sizeof(err)), 0);
    f->port = http_server_port(f->api.server);
    uv_async_init(&f->loop, &f->stop, stop_cb);
    f->stop.data = f;
    pthread_create(&f->thread, NULL, loop_main, f);
    return f;
}

static void finish(fixture_t *f)
{
    pthread_mutex_lock(&hang_lock);
    hang_release = true; /* the hung collector returns; its thread frees what it holds */
    pthread_cond_broadcast(&hang_cond);
    pthread_mutex_unlock(&hang_lock);
    uv_async_send(&f->stop);
    pthread_join(f->thread, NULL);
    usleep(200 * 1000); /* the collector thread's last steps */
    uv_loop_close(&f->loop);
    free(f);
}

/* GET /metrics on a new connection; returns the body (malloc'd) and the milliseconds it took. */
static char *scrape(const fixture_t *f, double *ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    uint64_t t0 = uv_hrtime();
    const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    assert_int_equal(send(fd, req, sizeof(req) - 1, 0), (ssize_t)sizeof(req) - 1);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    ssize_t n;
    while ((n = recv(fd, buf + len, cap - len, 0)) > 0)
        len += (size_t)n;
    close(fd);
    *ms = (double)(uv_hrtime() - t0) / 1e6;
    buf[len] = 0;
    assert_true(strncmp(buf, "HTTP/1.1 200", 12) == 0);
    char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    char *out = strdup(body + 4);
    free(buf);
    return out;
}

static void test_hung_collector_only_fails_itself(void **state)
{
    (void)state;
    fixture_t *f = start();
    for (int round = 0; round < 2; round++) {
        double ms;
        char *text = scrape(f, &ms);
        /* answered at the deadline (first round) or at once (the hung one is still out) */
        assert_true(ms < HTTP_METRICS_COLLECTOR_TIMEOUT_MS + 1500);
        assert_non_null(strstr(text, "test_quick_value 42"));
        assert_null(strstr(text, "test_dropped_value"));
        assert_null(strstr(text, "test_late_value"));
        assert_non_null(strstr(text, "p2p_scrape_collector_success{collector=\"quick\"} 1"));
        assert_non_null(strstr(text, "p2p_scrape_collector_success{collector=\"failing\"} 0"));
        assert_non_null(strstr(text, "p2p_scrape_collector_success{collector=\"hung\"} 0"));
        assert_non_null(strstr(text, "p2p_build_info{"));
        if (with_promtool) {
            char out[8192];
            int st = promtool(text, strlen(text), out, sizeof(out));
            if (st != 0 || out[0]) fprintf(stderr, "promtool: %s\n", out);
            assert_int_equal(st, 0);
            assert_string_equal(out, "");
        }
        free(text);
    }
    finish(f);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    with_promtool = argc > 1 && strcmp(argv[1], "--promtool") == 0;
    if (with_promtool && !promtool_found()) return 77;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hung_collector_only_fails_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
