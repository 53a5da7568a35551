/* monitor_history.c: unit tests for src/services/monitor_history.c on a real SQLite file opened
 * through node_store_open (schema v3): queued writes, queries with steps, downsampling of complete
 * minutes into 1 min rows, retention of both resolutions, bounded steps, the point limit, and
 * state that survives reopening. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../node/testdir.h"
#include "node/store.h"
#include "services/monitor_history.h"

#define T0 1700000040 /* a minute boundary (divisible by 60) */

typedef struct fx {
    char dir[64], path[128];
    node_store_t *st;
    svc_history_t *h;
    int64_t t[SVC_HIST_MAX_POINTS + 10];
    double v[SVC_HIST_MAX_POINTS + 10];
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    assert_non_null(testdir_make(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/node.db", f->dir);
    assert_int_equal(node_store_open(f->path, &f->st), 0);
    assert_int_equal(svc_history_open(node_store_db(f->st), &f->h), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    svc_history_close(f->h);
    node_store_close(f->st);
    testdir_remove(f->dir);
    free(f);
    return 0;
}

static int64_t count_rows(fx_t *f, int res, const char *metric)
{
    sqlite3_stmt *st;
    sqlite3 *db = node_store_db(f->st);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*) FROM samples WHERE res = ? AND metric = ?",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int(st, 1, res);
    sqlite3_bind_text(st, 2, metric, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
}

/* Adds one sample a second for metric over [from, to): value = t - T0. */
static void add_range(fx_t *f, const char *metric, int64_t from, int64_t to)
{
    for (int64_t t = from; t < to; t++)
        assert_int_equal(svc_history_add(f->h, metric, t, (double)(t - T0)), 0);
}

static void test_write_and_query(void **state)
{
    fx_t *f = *state;
    add_range(f, "cpu.total", T0, T0 + 10);
    assert_int_equal(svc_history_pending(f->h), 10);
    assert_int_equal(count_rows(f, 1, "cpu.total"), 0); /* not written yet */
    assert_int_equal(svc_history_flush(f->h), 10);
    assert_int_equal(svc_history_pending(f->h), 0);
    assert_int_equal(count_rows(f, 1, "cpu.total"), 10);
    assert_true(svc_history_has_metric(f->h, "cpu.total"));
    assert_false(svc_history_has_metric(f->h, "cpu.nope"));

    bool tr;
    int n = svc_history_query(f->h, "cpu.total", T0, T0 + 100, 1, f->t, f->v, 100, &tr);
    assert_int_equal(n, 10);
    assert_false(tr);
    assert_int_equal(f->t[0], T0);
    assert_true(f->v[9] == 9);
    /* step 5: two buckets, averages of 0..4 and 5..9 */
    n = svc_history_query(f->h, "cpu.total", T0, T0 + 100, 5, f->t, f->v, 100, &tr);
    assert_int_equal(n, 2);
    assert_int_equal(f->t[1], T0 + 5);
    assert_true(f->v[0] == 2 && f->v[1] == 7);
    /* a range and an unknown metric */
    n = svc_history_query(f->h, "cpu.total", T0 + 3, T0 + 4, 1, f->t, f->v, 100, &tr);
    assert_int_equal(n, 2);
    assert_int_equal(svc_history_query(f->h, "x", T0, T0 + 9, 1, f->t, f->v, 100, &tr), 0);
    /* bad steps */
    assert_int_equal(svc_history_query(f->h, "cpu.total", T0, T0 + 9, 90, f->t, f->v, 100, &tr),
                     -EINVAL);
    assert_int_equal(svc_history_query(f->h, "cpu.total", T0, T0 + 9, 0, f->t, f->v, 100, &tr),
                     -EINVAL);
    /* the query flushes first: a queued sample is returned */
    assert_int_equal(svc_history_add(f->h, "cpu.total", T0 + 10, 10), 0);
    n = svc_history_query(f->h, "cpu.total", T0, T0 + 100, 1, f->t, f->v, 100, &tr);
    assert_int_equal(n, 11);
    /* rejected values */
    assert_int_equal(svc_history_add(f->h, "cpu.total", T0, 1.0 / 0.0), -EINVAL);
    assert_int_equal(svc_history_add(f->h, "", T0, 1), -EINVAL);
}

static void test_limit(void **state)
{
    fx_t *f = *state;
    add_range(f, "m", T0, T0 + 50);
    bool tr;
    int n = svc_history_query(f->h, "m", T0, T0 + 100, 1, f->t, f->v, 20, &tr);
    assert_int_equal(n, 20);
    assert_true(tr);
    assert_int_equal(f->t[0], T0 + 30); /* the newest 20, in time order */
    assert_int_equal(f->t[19], T0 + 49);
}

static void test_downsample_and_retention(void **state)
{
    fx_t *f = *state;
    /* 3 minutes and 30 s of 1 s samples for two metrics */
    add_range(f, "a", T0, T0 + 210);
    add_range(f, "b", T0, T0 + 210);
    int r = svc_history_maintain(f->h, T0 + 210);
    assert_true(r >= 6);
    assert_int_equal(count_rows(f, 60, "a"), 3); /* the 4th minute is not complete */
    assert_int_equal(count_rows(f, 60, "b"), 3);
    assert_int_equal(count_rows(f, 1, "a"), 210); /* still within the hour */
    bool tr;
    /* step 60 reads the 1 min rows plus the 1 s rows of the minute not averaged yet */
    int n = svc_history_query(f->h, "a", T0, T0 + 1000, 60, f->t, f->v, 100, &tr);
    assert_int_equal(n, 4);
    assert_int_equal(f->t[0], T0);
    assert_true(f->v[0] == 29.5);  /* mean of 0..59 */
    assert_true(f->v[1] == 89.5);  /* 60..119 */
    assert_true(f->v[3] == 194.5); /* 180..209 from the 1 s rows */
    /* step 120 averages the minute means */
    n = svc_history_query(f->h, "a", T0, T0 + 1000, 120, f->t, f->v, 100, &tr);
    assert_int_equal(n, 2);
    assert_true(f->v[0] == 59.5);
    /* a maintenance step with nothing new changes nothing */
    assert_int_equal(svc_history_maintain(f->h, T0 + 215), 0);

    /* two hours later: the 1 s rows are past retention; the 4th minute is averaged first */
    int64_t later = T0 + 2 * 3600;
    r = svc_history_maintain(f->h, later);
    assert_true(r > 0);
    assert_int_equal(count_rows(f, 60, "a"), 4);
    assert_int_equal(count_rows(f, 1, "a"), 0);
    n = svc_history_query(f->h, "a", T0, later, 60, f->t, f->v, 100, &tr);
    assert_int_equal(n, 4);
    assert_true(f->v[3] == 194.5);
    /* after 8 days the 1 min rows go too */
    r = svc_history_maintain(f->h, T0 + 8 * 86400);
    assert_int_equal(count_rows(f, 60, "a"), 0);
    assert_int_equal(count_rows(f, 60, "b"), 0);
}

static void test_bounded_step(void **state)
{
    fx_t *f = *state;
    /* 30 minutes of samples: one step averages at most SVC_HIST_MAINT_MINUTES minutes */
    add_range(f, "c", T0, T0 + 30 * 60);
    svc_history_maintain(f->h, T0 + 30 * 60);
    assert_int_equal(count_rows(f, 60, "c"), SVC_HIST_MAINT_MINUTES);
    for (int i = 0; i < 5; i++)
        svc_history_maintain(f->h, T0 + 30 * 60);
    assert_int_equal(count_rows(f, 60, "c"), 30);
}

static void test_reopen(void **state)
{
    fx_t *f = *state;
    add_range(f, "d", T0, T0 + 130);
    svc_history_maintain(f->h, T0 + 130); /* 2 minutes averaged */
    add_range(f, "d", T0 + 130, T0 + 140);
    svc_history_close(f->h); /* flushes */
    node_store_close(f->st);
    assert_int_equal(node_store_open(f->path, &f->st), 0);
    assert_int_equal(svc_history_open(node_store_db(f->st), &f->h), 0);
    assert_true(svc_history_has_metric(f->h, "d"));
    assert_int_equal(count_rows(f, 1, "d"), 140);
    bool tr;
    int n = svc_history_query(f->h, "d", T0, T0 + 200, 60, f->t, f->v, 100, &tr);
    assert_int_equal(n, 3);
    assert_true(f->v[2] == 129.5); /* 120..139 from the 1 s rows */
    /* the reopened store knows which minutes are done: only the 3rd is added */
    svc_history_maintain(f->h, T0 + 200);
    assert_int_equal(count_rows(f, 60, "d"), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_and_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_downsample_and_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bounded_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
