/* monitor.c: unit tests for src/services/monitor.c's lifecycle on a real loop, a real method table
 * and a real SQLite file (node_store_open): rules saved before start are loaded and evaluated on
 * the first samples (one that holds fires, a saved firing one that no longer holds resolves), the
 * event hook receives the JSON, firing_since is kept in alert_rules, samples reach the samples
 * table by the time stop completes, the methods are in the table, and the loop closes clean, with
 * and without a webhook (one pointing at a port nobody listens on). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../node/testdir.h"
#include "node/store.h"
#include "rpc/rpc.h"
#include "services/alert.h"
#include "services/monitor.h"

typedef struct seen {
    int n;
    char type[8][32], name[8][32];
} seen_t;

static void hook_cb(void *arg, const char *json)
{
    seen_t *s = arg;
    json_error_t e;
    json_t *o = json_loads(json, 0, &e);
    assert_non_null(o);
    if (s->n < 8) {
        snprintf(s->type[s->n], 32, "%s", json_string_value(json_object_get(o, "type")));
        snprintf(s->name[s->n], 32, "%s", json_string_value(json_object_get(o, "name")));
        s->n++;
    }
    json_decref(o);
}

static void stopped_cb(void *arg)
{
    *(bool *)arg = true;
}

static int64_t scalar(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void save_rule(sqlite3 *db, const char *name, svc_alert_op_t op, bool firing)
{
    svc_alert_rule_t r;
    memset(&r, 0, sizeof(r));
    snprintf(r.name, sizeof(r.name), "%s", name);
    strcpy(r.metric, "memory.used_percent");
    r.op = op;
    r.threshold = 0;
    r.severity = SVC_SEV_INFO;
    r.created_ms = 1000;
    r.state = firing ? SVC_ALERT_FIRING : SVC_ALERT_OK;
    r.since_ms = firing ? 2000 : 0;
    assert_int_equal(svc_alert_db_put(db, &r), 0);
}

static void run_service(const char *webhook)
{
    char dir[64], path[128];
    assert_non_null(testdir_make(dir));
    snprintf(path, sizeof(path), "%s/node.db", dir);
    node_store_t *store;
    assert_int_equal(node_store_open(path, &store), 0);

    uv_loop_t loop;
    uv_loop_init(&loop);
    node_t *node = calloc(1, sizeof(*node));
    node->loop = &loop;
    node->db = node_store_db(store);
    node->reg = rpc_registry_new();
    strcpy(node->cfg.name, "unit");
    snprintf(node->cfg.alert_webhook, sizeof(node->cfg.alert_webhook), "%s", webhook);
    save_rule(node->db, "holds", SVC_ALERT_GT, false);
    save_rule(node->db, "was-firing", SVC_ALERT_LT, true);

    svc_monitor_t *svc = NULL;
    char err[256] = "";
    assert_int_equal(svc_monitor_start(node, &svc, err, sizeof(err)), 0);
    seen_t seen = {0};
    svc_monitor_on_event(svc, hook_cb, &seen);
    /* two events and at least one sample with a previous one (recorded in history) */
    uint64_t t0 = uv_now(&loop);
    while ((seen.n < 2 || uv_now(&loop) < t0 + 1500) && uv_now(&loop) < t0 + 10000) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
    }
    assert_int_equal(seen.n, 2);
    for (int i = 0; i < 2; i++) {
        if (strcmp(seen.name[i], "holds") == 0)
            assert_string_equal(seen.type[i], "alert.firing");
        else
            assert_string_equal(seen.type[i], "alert.resolved");
    }
    assert_true(scalar(node->db, "SELECT firing_since FROM alert_rules WHERE name = 'holds'") > 0);
    assert_int_equal(
        scalar(node->db, "SELECT firing_since FROM alert_rules WHERE name = 'was-firing'"), 0);

    bool stopped = false;
    svc_monitor_stop(svc, stopped_cb, &stopped);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_true(stopped);
    assert_int_equal(uv_loop_close(&loop), 0);
    /* stop wrote what waited in memory */
    assert_true(scalar(node->db, "SELECT count(*) FROM samples WHERE metric = 'cpu.total'") >= 1);
    assert_true(scalar(node->db, "SELECT count(DISTINCT metric) FROM samples") >= 15);
    rpc_registry_free(node->reg);
    free(node);
    node_store_close(store);
    testdir_remove(dir);
}

static void test_lifecycle(void **state)
{
    (void)state;
    run_service("");
}

static void test_lifecycle_webhook(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", ntohs(a.sin_port));
    run_service(url); /* the POSTs fail and retry: stop still completes and frees everything */
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle),
        cmocka_unit_test(test_lifecycle_webhook),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
