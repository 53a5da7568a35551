/* alert.c: unit tests for src/services/alert.c: operators, the evaluation state machine (pending,
 * firing after for_seconds, resolving, flapping, a missing metric), the event JSON, and the
 * rules' rows in a real SQLite file opened through node_store_open (schema v3). */
#include <math.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "../node/testdir.h"
#include "node/store.h"
#include "services/alert.h"

static svc_alert_rule_t rule(svc_alert_op_t op, double threshold, int64_t for_s)
{
    svc_alert_rule_t r;
    memset(&r, 0, sizeof(r));
    strcpy(r.name, "r");
    strcpy(r.metric, "cpu.total");
    r.op = op;
    r.threshold = threshold;
    r.for_seconds = for_s;
    r.severity = SVC_SEV_WARNING;
    return r;
}

static void test_names(void **state)
{
    (void)state;
    const char *ops[] = {">", ">=", "<", "<=", "==", "!="};
    for (int i = 0; i < 6; i++) {
        assert_int_equal(svc_alert_op_parse(ops[i], strlen(ops[i])), i);
        assert_string_equal(svc_alert_op_name((svc_alert_op_t)i), ops[i]);
    }
    assert_int_equal(svc_alert_op_parse("=>", 2), -EINVAL);
    assert_int_equal(svc_alert_op_parse(">", 0), -EINVAL);
    assert_int_equal(svc_alert_severity_parse("critical", 8), SVC_SEV_CRITICAL);
    assert_int_equal(svc_alert_severity_parse("fatal", 5), -EINVAL);
    assert_string_equal(svc_alert_state_name(SVC_ALERT_PENDING), "pending");
}

static void test_holds(void **state)
{
    (void)state;
    assert_true(svc_alert_holds(SVC_ALERT_GT, 2, 1));
    assert_false(svc_alert_holds(SVC_ALERT_GT, 1, 1));
    assert_true(svc_alert_holds(SVC_ALERT_GE, 1, 1));
    assert_true(svc_alert_holds(SVC_ALERT_LT, 0.5, 1));
    assert_true(svc_alert_holds(SVC_ALERT_LE, 1, 1));
    assert_true(svc_alert_holds(SVC_ALERT_EQ, 3, 3));
    assert_true(svc_alert_holds(SVC_ALERT_NE, 3, 4));
    assert_false(svc_alert_holds(SVC_ALERT_NE, NAN, 4)); /* NaN never holds */
}

static void test_pending_then_firing(void **state)
{
    (void)state;
    svc_alert_rule_t r = rule(SVC_ALERT_GT, 80, 3);
    assert_int_equal(svc_alert_eval(&r, true, 50, 1000), SVC_ALERT_NONE);
    assert_int_equal(r.state, SVC_ALERT_OK);
    assert_int_equal(svc_alert_eval(&r, true, 90, 2000), SVC_ALERT_NONE);
    assert_int_equal(r.state, SVC_ALERT_PENDING);
    assert_int_equal(r.since_ms, 2000);
    assert_int_equal(svc_alert_eval(&r, true, 91, 4000), SVC_ALERT_NONE); /* held 2 s of 3 */
    assert_int_equal(r.state, SVC_ALERT_PENDING);
    assert_int_equal(svc_alert_eval(&r, true, 92, 5000), SVC_ALERT_FIRED);
    assert_int_equal(r.state, SVC_ALERT_FIRING);
    assert_int_equal(r.since_ms, 5000);
    assert_true(r.has_value && r.value == 92);
    assert_int_equal(svc_alert_eval(&r, true, 95, 6000), SVC_ALERT_NONE); /* fires once */
    assert_int_equal(svc_alert_eval(&r, true, 10, 7000), SVC_ALERT_RESOLVED);
    assert_int_equal(r.state, SVC_ALERT_OK);
    assert_int_equal(r.since_ms, 7000);
    assert_int_equal(svc_alert_eval(&r, true, 10, 8000), SVC_ALERT_NONE);
}

static void test_immediate(void **state)
{
    (void)state;
    svc_alert_rule_t r = rule(SVC_ALERT_GE, 1.5, 0);
    assert_int_equal(svc_alert_eval(&r, true, 1.5, 100), SVC_ALERT_FIRED);   /* for 0: at once */
    assert_int_equal(svc_alert_eval(&r, false, 0, 200), SVC_ALERT_RESOLVED); /* metric gone */
    assert_false(r.has_value);
}

static void test_flapping(void **state)
{
    (void)state;
    /* a condition that holds every other second never reaches for_seconds: no event at all */
    svc_alert_rule_t r = rule(SVC_ALERT_GT, 80, 2);
    int events = 0;
    for (int i = 0; i < 20; i++)
        events += svc_alert_eval(&r, true, i % 2 ? 90 : 50, 1000 * i) != SVC_ALERT_NONE;
    assert_int_equal(events, 0);
    assert_int_equal(r.state, SVC_ALERT_PENDING); /* the last second held */
    /* with for 0 each flap fires and resolves: 10 of each, alternating */
    r = rule(SVC_ALERT_GT, 80, 0);
    int fired = 0, resolved = 0;
    svc_alert_transition_t last = SVC_ALERT_NONE;
    for (int i = 0; i < 20; i++) {
        svc_alert_transition_t t = svc_alert_eval(&r, true, i % 2 ? 50 : 90, 1000 * i);
        assert_int_not_equal(t, SVC_ALERT_NONE);
        assert_int_not_equal(t, last);
        last = t;
        fired += t == SVC_ALERT_FIRED;
        resolved += t == SVC_ALERT_RESOLVED;
    }
    assert_int_equal(fired, 10);
    assert_int_equal(resolved, 10);
}

static void test_event_json(void **state)
{
    (void)state;
    svc_alert_event_t e;
    memset(&e, 0, sizeof(e));
    e.id = 7;
    e.time_ms = 1700000000500;
    e.firing = true;
    strcpy(e.name, "hot \"cpu\"");
    strcpy(e.metric, "cpu.total");
    e.value = 93.5;
    e.threshold = 90;
    e.op = SVC_ALERT_GE;
    e.severity = SVC_SEV_CRITICAL;
    char *s = svc_alert_event_json(&e, "web-01");
    assert_non_null(s);
    json_error_t err;
    json_t *o = json_loads(s, 0, &err);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "id")), 7);
    assert_true(json_real_value(json_object_get(o, "time")) == 1700000000.5);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "alert.firing");
    assert_string_equal(json_string_value(json_object_get(o, "name")), "hot \"cpu\"");
    assert_true(json_real_value(json_object_get(o, "value")) == 93.5);
    assert_string_equal(json_string_value(json_object_get(o, "op")), ">=");
    assert_string_equal(json_string_value(json_object_get(o, "severity")), "critical");
    assert_string_equal(json_string_value(json_object_get(o, "node")), "web-01");
    json_decref(o);
    free(s);
}

typedef struct loaded {
    svc_alert_rule_t r[4];
    int n;
} loaded_t;

static void load_cb(void *arg, const svc_alert_rule_t *r)
{
    loaded_t *l = arg;
    assert_true(l->n < 4);
    l->r[l->n++] = *r;
}

static void test_db(void **state)
{
    (void)state;
    char dir[64], path[128];
    assert_non_null(testdir_make(dir));
    snprintf(path, sizeof(path), "%s/node.db", dir);
    node_store_t *st;
    assert_int_equal(node_store_open(path, &st), 0);
    sqlite3 *db = node_store_db(st);

    svc_alert_rule_t a = rule(SVC_ALERT_LT, -2.5, 30), b = rule(SVC_ALERT_NE, 1, 0);
    strcpy(a.name, "a");
    strcpy(b.name, "b");
    strcpy(b.metric, "fs.used_percent:/");
    a.created_ms = 111;
    b.created_ms = 222;
    b.severity = SVC_SEV_INFO;
    assert_int_equal(svc_alert_db_put(db, &a), 0);
    assert_int_equal(svc_alert_db_put(db, &b), 0);
    assert_int_equal(svc_alert_db_set_firing(db, "b", 5000), 0);
    a.threshold = -3; /* replace */
    assert_int_equal(svc_alert_db_put(db, &a), 0);

    loaded_t l = {.n = 0};
    assert_int_equal(svc_alert_db_load(db, load_cb, &l), 2);
    assert_string_equal(l.r[0].name, "a");
    assert_true(l.r[0].threshold == -3);
    assert_int_equal(l.r[0].op, SVC_ALERT_LT);
    assert_int_equal(l.r[0].for_seconds, 30);
    assert_int_equal(l.r[0].state, SVC_ALERT_OK);
    assert_int_equal(l.r[0].created_ms, 111);
    assert_string_equal(l.r[1].metric, "fs.used_percent:/");
    assert_int_equal(l.r[1].severity, SVC_SEV_INFO);
    assert_int_equal(l.r[1].state, SVC_ALERT_FIRING); /* a restart remembers what fires */
    assert_int_equal(l.r[1].since_ms, 5000);

    assert_int_equal(svc_alert_db_delete(db, "a"), 0);
    assert_int_equal(svc_alert_db_delete(db, "a"), -ENOENT);
    l.n = 0;
    assert_int_equal(svc_alert_db_load(db, load_cb, &l), 1);
    node_store_close(st);
    /* reopened: still there */
    assert_int_equal(node_store_open(path, &st), 0);
    l.n = 0;
    assert_int_equal(svc_alert_db_load(node_store_db(st), load_cb, &l), 1);
    assert_string_equal(l.r[0].name, "b");
    node_store_close(st);
    testdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_holds),
        cmocka_unit_test(test_pending_then_firing),
        cmocka_unit_test(test_immediate),
        cmocka_unit_test(test_flapping),
        cmocka_unit_test(test_event_json),
        cmocka_unit_test(test_db),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
