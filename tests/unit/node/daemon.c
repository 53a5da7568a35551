/* daemon.c: unit tests for src/node/daemon.c: nodes started in-process on loopback join through a
 * bootstrap contact, stop cleanly (socket removed, loop closes clean), and a restarted node keeps
 * its id and rejoins from the saved routing table with no bootstrap. A second node on the same data
 * dir is refused. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sodium.h>

#include "node/config.h"
#include "node/log.h"
#include "node/node.h"
#include "node/store.h"
#include "testdir.h"

#define NETKEY "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

typedef struct waiter {
    uv_timer_t guard;
    bool expired;
} waiter_t;

static void guard_cb(uv_timer_t *t)
{
    ((waiter_t *)t->data)->expired = true;
}

/* Runs the loop until *flag is true or 20 s pass (a hang guard, not a timing assertion). */
static void run_until(uv_loop_t *loop, const bool *flag)
{
    waiter_t w = {.expired = false};
    uv_timer_init(loop, &w.guard);
    w.guard.data = &w;
    uv_timer_start(&w.guard, guard_cb, 20000, 0);
    while (!*flag && !w.expired)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&w.guard, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    assert_true(*flag);
}

static void make_cfg(node_config_t *cfg, const char *root, const char *name, const char *boot)
{
    char dd[128], *argv[14];
    int argc = 0;
    snprintf(dd, sizeof(dd), "%s/%s", root, name);
    argv[argc++] = "--name";
    argv[argc++] = (char *)name;
    argv[argc++] = "--dht-host";
    argv[argc++] = "127.0.0.1";
    argv[argc++] = "--dht-port";
    argv[argc++] = "0";
    argv[argc++] = "--port"; /* the HTTP API: any free port */
    argv[argc++] = "0";
    argv[argc++] = "--data-dir";
    argv[argc++] = dd;
    if (boot) {
        argv[argc++] = "--bootstrap";
        argv[argc++] = (char *)boot;
    }
    char *env[] = {"NETWORK_KEY=" NETKEY, NULL};
    char err[256];
    assert_int_equal(node_config_parse(cfg, argc, argv, env, false, err, sizeof(err)), 0);
}

static void set_flag(void *arg)
{
    *(bool *)arg = true;
}

static void count_contact(void *arg, const uint8_t pk[DHT_PK_LEN], const dht_addr_t *a)
{
    (void)pk;
    (void)a;
    ++*(int *)arg;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void join_stop_restart(void **state)
{
    (void)state;
    char root[64], boot[64], err[512];
    uv_loop_t loop;
    assert_non_null(testdir_make(root));
    assert_int_equal(uv_loop_init(&loop), 0);
    node_log_t *log = node_log_new(stderr, NODE_LOG_ERROR, false);
    node_t *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));

    make_cfg(&a->cfg, root, "alpha", NULL);
    assert_int_equal(node_start(a, &loop, log, err, sizeof(err)), 0);
    assert_true(exists(a->rpc_path));
    assert_true(a->ready_mono_ms > 0);
    snprintf(boot, sizeof(boot), "127.0.0.1:%d", dht_uv_port(a->dhtuv));

    make_cfg(&b->cfg, root, "beta", boot);
    assert_int_equal(node_start(b, &loop, log, err, sizeof(err)), 0);
    run_until(&loop, &b->joined);
    assert_true(dht_contact_count(dht_uv_core(b->dhtuv)) >= 1);
    dht_id_t b_id = b->id;
    char b_db[NODE_PATH_MAX + 16];
    snprintf(b_db, sizeof(b_db), "%s/node.db", b->cfg.data_dir);

    /* stop: the socket goes, the saved table holds alpha */
    bool stopped = false;
    node_stop(b, set_flag, &stopped);
    node_stop(b, set_flag, &stopped); /* twice is harmless */
    run_until(&loop, &stopped);
    assert_false(exists(b->rpc_path));
    node_store_t *s;
    assert_int_equal(node_store_open(b_db, &s), 0);
    int saved = 0;
    int loaded = node_store_load_contacts(s, count_contact, &saved);
    assert_int_equal(loaded, saved);
    assert_true(saved >= 1);
    node_store_close(s);

    /* restart with no bootstrap: same id, joins from the saved contacts */
    node_config_t cfg = b->cfg;
    cfg.bootstrap_count = 0;
    memset(b, 0, sizeof(*b));
    b->cfg = cfg;
    assert_int_equal(node_start(b, &loop, log, err, sizeof(err)), 0);
    assert_memory_equal(b->id.b, b_id.b, DHT_ID_LEN);
    run_until(&loop, &b->joined);

    /* the data dir is locked while beta runs */
    node_t *dup = calloc(1, sizeof(*dup));
    dup->cfg = cfg;
    assert_int_equal(node_start(dup, &loop, log, err, sizeof(err)), -EBUSY);
    assert_non_null(strstr(err, "in use"));
    assert_true(exists(b->rpc_path)); /* the refused node did not touch beta's socket */

    bool sa = false, sb = false;
    node_stop(a, set_flag, &sa);
    node_stop(b, set_flag, &sb);
    run_until(&loop, &sa);
    run_until(&loop, &sb);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(dup);
    free(a);
    free(b);
    node_log_free(log);
    testdir_remove(root);
}

static void bad_data_dir_fails_cleanly(void **state)
{
    (void)state;
    char err[512];
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    node_t *n = calloc(1, sizeof(*n));
    make_cfg(&n->cfg, "/proc/no-such-place", "gamma", NULL);
    assert_true(node_start(n, &loop, NULL, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "data dir"));
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(n);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(join_stop_restart),
        cmocka_unit_test(bad_data_dir_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
