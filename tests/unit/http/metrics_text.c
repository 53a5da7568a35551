/* Tests of src/http/metrics_text.c: the text format byte for byte (HELP/TYPE, labels, escaping,
 * numbers, histograms), the name checks, sticky errors and limits. With --promtool it runs the
 * generated text through `promtool check metrics` instead, and exits 77 (meson's skip) when
 * promtool is not installed (Debian package prometheus). */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "http/metrics_text.h"
#include "promtool.h"

static void expect_text(http_mtext_t *w, const char *want)
{
    size_t len = 0;
    int err = 1;
    const char *s = http_mtext_text(w, &len, &err);
    assert_int_equal(err, 0);
    assert_non_null(s);
    if (len != strlen(want) || memcmp(s, want, len) != 0)
        fail_msg("got:\n%.*s\nwant:\n%s", (int)len, s, want);
}

static void test_counter_gauge(void **state)
{
    http_mtext_t w;
    http_mtext_init(&w, 1 << 20);
    assert_int_equal(http_mtext_family(&w, "p2p_dht_messages_received_total", HTTP_MT_COUNTER,
                                       "DHT messages received, by type."),
                     0);
    http_label_t l = {"type", "ping"};
    assert_int_equal(http_mtext_sample_u64(&w, &l, 1, 12), 0);
    l.value = "find_node";
    assert_int_equal(http_mtext_sample_u64(&w, &l, 1, UINT64_MAX), 0);
    assert_int_equal(http_mtext_family(&w, "p2p_nodes_known", HTTP_MT_GAUGE, "Live nodes."), 0);
    assert_int_equal(http_mtext_sample(&w, NULL, 0, 5), 0);
    http_label_t two[] = {{"version", "0.1.0"}, {"name", "web-01"}};
    assert_int_equal(http_mtext_family(&w, "p2p_build_info", HTTP_MT_GAUGE, "Build."), 0);
    assert_int_equal(http_mtext_sample(&w, two, 2, 1), 0);
    expect_text(&w, "# HELP p2p_dht_messages_received_total DHT messages received, by type.\n"
                    "# TYPE p2p_dht_messages_received_total counter\n"
                    "p2p_dht_messages_received_total{type=\"ping\"} 12\n"
                    "p2p_dht_messages_received_total{type=\"find_node\"} 18446744073709551615\n"
                    "# HELP p2p_nodes_known Live nodes.\n"
                    "# TYPE p2p_nodes_known gauge\n"
                    "p2p_nodes_known 5\n"
                    "# HELP p2p_build_info Build.\n"
                    "# TYPE p2p_build_info gauge\n"
                    "p2p_build_info{version=\"0.1.0\",name=\"web-01\"} 1\n");
    size_t len = 0;
    char *s = http_mtext_take(&w, &len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    free(s);
    assert_int_equal(w.out.len, 0); /* taken: the writer is empty */
    http_mtext_free(&w);
}

static void test_escaping(void **state)
{
    http_mtext_t w;
    http_mtext_init(&w, 1 << 20);
    /* HELP escapes backslash and newline, not quotes */
    assert_int_equal(http_mtext_family(&w, "t_info", HTTP_MT_GAUGE, "a \\ b\n\"c\" d\xc3\xa9"), 0);
    http_label_t l[] = {{"path", "C:\\dir\n\"x\""}, {"bad", "ok\xff\xfe"}, {"utf", "caf\xc3\xa9"}};
    assert_int_equal(http_mtext_sample(&w, l, 3, 1), 0);
    http_label_t empty = {"e", ""};
    assert_int_equal(http_mtext_sample(&w, &empty, 1, 2), 0);
    expect_text(&w, "# HELP t_info a \\\\ b\\n\"c\" d\xc3\xa9\n"
                    "# TYPE t_info gauge\n"
                    "t_info{path=\"C:\\\\dir\\n\\\"x\\\"\",bad=\"ok??\",utf=\"caf\xc3\xa9\"} 1\n"
                    "t_info{e=\"\"} 2\n");
    http_mtext_free(&w);
}

static void test_numbers(void **state)
{
    http_mtext_t w;
    http_mtext_init(&w, 1 << 20);
    assert_int_equal(http_mtext_family(&w, "t_value", HTTP_MT_GAUGE, "v"), 0);
    double v[] = {
        0.1,           -2.5,   1e-9, 1e300, NAN, INFINITY, -INFINITY, 0, 9007199254740993.0,
        123456789.125, 1.0 / 3};
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        assert_int_equal(http_mtext_sample(&w, NULL, 0, v[i]), 0);
    expect_text(&w, "# HELP t_value v\n# TYPE t_value gauge\n"
                    "t_value 0.1\nt_value -2.5\nt_value 1e-09\nt_value 1e+300\nt_value NaN\n"
                    "t_value +Inf\nt_value -Inf\nt_value 0\nt_value 9007199254740992\n"
                    "t_value 123456789.125\nt_value 0.33333333333333331\n");
    http_mtext_free(&w);
}

static const double bounds[] = {0.005, 0.1, 1, 2.5};

static void test_histogram(void **state)
{
    http_histogram_t h;
    http_histogram_init(&h, bounds, 4);
    double obs[] = {0.001, 0.005, 0.0051, 0.5, 1, 3, 100, NAN};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        http_histogram_observe(&h, obs[i]);
    assert_int_equal(h.count, 7);  /* NaN ignored */
    assert_int_equal(h.cum[0], 2); /* a bound's own value is in its bucket */
    assert_int_equal(h.cum[1], 3);
    assert_int_equal(h.cum[2], 5);
    assert_int_equal(h.cum[3], 5);

    http_mtext_t w;
    http_mtext_init(&w, 1 << 20);
    assert_int_equal(http_mtext_family(&w, "p2p_rpc_call_duration_seconds", HTTP_MT_HISTOGRAM,
                                       "RPC call durations."),
                     0);
    http_label_t l = {"domain", "file"};
    assert_int_equal(http_mtext_histogram_of(&w, &l, 1, &h), 0);
    http_histogram_t empty;
    http_histogram_init(&empty, bounds, 2);
    assert_int_equal(http_mtext_histogram_of(&w, NULL, 0, &empty), 0);
    expect_text(&w, "# HELP p2p_rpc_call_duration_seconds RPC call durations.\n"
                    "# TYPE p2p_rpc_call_duration_seconds histogram\n"
                    "p2p_rpc_call_duration_seconds_bucket{domain=\"file\",le=\"0.005\"} 2\n"
                    "p2p_rpc_call_duration_seconds_bucket{domain=\"file\",le=\"0.1\"} 3\n"
                    "p2p_rpc_call_duration_seconds_bucket{domain=\"file\",le=\"1\"} 5\n"
                    "p2p_rpc_call_duration_seconds_bucket{domain=\"file\",le=\"2.5\"} 5\n"
                    "p2p_rpc_call_duration_seconds_bucket{domain=\"file\",le=\"+Inf\"} 7\n"
                    "p2p_rpc_call_duration_seconds_sum{domain=\"file\"} 104.5111\n"
                    "p2p_rpc_call_duration_seconds_count{domain=\"file\"} 7\n"
                    "p2p_rpc_call_duration_seconds_bucket{le=\"0.005\"} 0\n"
                    "p2p_rpc_call_duration_seconds_bucket{le=\"0.1\"} 0\n"
                    "p2p_rpc_call_duration_seconds_bucket{le=\"+Inf\"} 0\n"
                    "p2p_rpc_call_duration_seconds_sum 0\n"
                    "p2p_rpc_call_duration_seconds_count 0\n");
    /* a plain sample in a histogram family, or a histogram in a gauge family, is refused */
    assert_int_equal(http_mtext_sample(&w, NULL, 0, 1), -EINVAL);
    http_mtext_free(&w);

    http_mtext_init(&w, 1 << 20);
    assert_int_equal(http_mtext_family(&w, "t_gauge_value", HTTP_MT_GAUGE, "g"), -EINVAL);
    http_mtext_free(&w);
    http_mtext_init(&w, 1 << 20);
    assert_int_equal(http_mtext_family(&w, "t_level", HTTP_MT_GAUGE, "g"), 0);
    assert_int_equal(http_mtext_histogram_of(&w, NULL, 0, &h), -EINVAL);
    http_mtext_free(&w);

    /* inconsistent inputs */
    const uint64_t up[] = {1, 2, 3}, down[] = {2, 1, 3};
    const double inc[] = {1, 2, 3}, dup[] = {1, 1, 3}, inf[] = {1, 2, INFINITY};
    struct {
        const double *b;
        const uint64_t *c;
        uint64_t count;
        int want;
    } cases[] = {{inc, up, 3, 0},
                 {inc, up, 2, -EINVAL},
                 {inc, down, 3, -EINVAL},
                 {dup, up, 3, -EINVAL},
                 {inf, up, 3, -EINVAL}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        http_mtext_init(&w, 1 << 20);
        assert_int_equal(http_mtext_family(&w, "t_latency_seconds", HTTP_MT_HISTOGRAM, "h"), 0);
        assert_int_equal(
            http_mtext_histogram(&w, NULL, 0, cases[i].b, cases[i].c, 3, cases[i].count, 1),
            cases[i].want);
        http_mtext_free(&w);
    }
}

static void test_names(void **state)
{
    struct {
        const char *name;
        http_mtype_t type;
        bool ok;
    } cases[] = {
        {"p2p_dht_lookups_total", HTTP_MT_COUNTER, true},
        {"process_cpu_seconds_total", HTTP_MT_COUNTER, true},
        {"node_load1", HTTP_MT_GAUGE, true},
        {"node_memory_MemAvailable_bytes", HTTP_MT_GAUGE, true},
        {"p2p_dht_lookup_duration_seconds", HTTP_MT_HISTOGRAM, true},
        {"_private", HTTP_MT_GAUGE, true},
        {"p2p_lookups", HTTP_MT_COUNTER, false},   /* counter without _total */
        {"p2p_peers_total", HTTP_MT_GAUGE, false}, /* _total on a gauge */
        {"p2p_wait_seconds_total", HTTP_MT_HISTOGRAM, false},
        {"p2p_x_bucket", HTTP_MT_GAUGE, false},
        {"p2p_x_count", HTTP_MT_GAUGE, false},
        {"p2p_x_sum", HTTP_MT_COUNTER, false},
        {"p2p_x_count", HTTP_MT_UNTYPED, true}, /* untyped is exempt */
        {"p2p_rtt_ms", HTTP_MT_GAUGE, false},
        {"p2p_up_s", HTTP_MT_GAUGE, false},
        {"p2p_sec_total", HTTP_MT_COUNTER, false},
        {"p2p_size_kb", HTTP_MT_GAUGE, false},
        {"p2p_rtt_milliseconds", HTTP_MT_GAUGE, false},
        {"p2p_mem_kilobytes", HTTP_MT_GAUGE, false},
        {"p2p_uptime_hours", HTTP_MT_GAUGE, false},
        {"p2p_calls_counter", HTTP_MT_GAUGE, false},
        {"p2p_gauge_level", HTTP_MT_GAUGE, false},
        {"p2p_call_histogram", HTTP_MT_HISTOGRAM, false},
        {"s_value", HTTP_MT_GAUGE, true}, /* the first word is not a unit */
        {"p2p_bytes_total", HTTP_MT_COUNTER, true},
        {"p2p:rule", HTTP_MT_GAUGE, false},
        {"__reserved", HTTP_MT_GAUGE, false},
        {"1abc", HTTP_MT_GAUGE, false},
        {"", HTTP_MT_GAUGE, false},
        {"a-b", HTTP_MT_GAUGE, false},
        {"caf\xc3\xa9", HTTP_MT_GAUGE, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (http_metric_name_ok(cases[i].name, cases[i].type) != cases[i].ok)
            fail_msg("%s: want %s", cases[i].name, cases[i].ok ? "ok" : "refused");
    char longname[HTTP_METRIC_MAX_NAME + 2];
    memset(longname, 'a', sizeof(longname));
    longname[HTTP_METRIC_MAX_NAME] = '\0';
    assert_true(http_metric_name_ok(longname, HTTP_MT_GAUGE));
    longname[HTTP_METRIC_MAX_NAME] = 'a';
    longname[HTTP_METRIC_MAX_NAME + 1] = '\0';
    assert_false(http_metric_name_ok(longname, HTTP_MT_GAUGE));
    assert_false(http_metric_name_ok(NULL, HTTP_MT_GAUGE));
}

static void test_labels_and_errors(void **state)
{
    http_label_t bad[][2] = {
        {{"le", "1"}, {"a", "b"}},     {{"quantile", "1"}, {"a", "b"}},
        {{"__x", "1"}, {"a", "b"}},    {{"1a", "1"}, {"a", "b"}},
        {{"fooBar", "1"}, {"a", "b"}}, {{"a", "1"}, {"a", "2"}}, /* twice */
        {{"a", NULL}, {"b", "c"}},     {{NULL, "x"}, {"b", "c"}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        http_mtext_t w;
        http_mtext_init(&w, 1 << 20);
        assert_int_equal(http_mtext_family(&w, "t_level", HTTP_MT_GAUGE, "g"), 0);
        assert_int_equal(http_mtext_sample(&w, bad[i], 2, 1), -EINVAL);
        /* sticky: later calls return the error and write nothing */
        size_t before = w.out.len;
        assert_int_equal(http_mtext_family(&w, "t_other", HTTP_MT_GAUGE, "g"), -EINVAL);
        assert_int_equal(w.out.len, before);
        size_t len = 1;
        int err = 0;
        assert_null(http_mtext_text(&w, &len, &err));
        assert_int_equal(err, -EINVAL);
        assert_null(http_mtext_take(&w, &len));
        http_mtext_free(&w);
    }
    http_label_t many[HTTP_METRIC_MAX_LABELS + 1];
    char names[HTTP_METRIC_MAX_LABELS + 1][8];
    for (int i = 0; i <= HTTP_METRIC_MAX_LABELS; i++) {
        snprintf(names[i], sizeof(names[i]), "l%d", i);
        many[i] = (http_label_t){names[i], "v"};
    }
    http_mtext_t w;
    http_mtext_init(&w, 1 << 20);
    assert_int_equal(http_mtext_family(&w, "t_level", HTTP_MT_GAUGE, "g"), 0);
    assert_int_equal(http_mtext_sample(&w, many, HTTP_METRIC_MAX_LABELS, 1), 0);
    assert_int_equal(http_mtext_sample(&w, many, HTTP_METRIC_MAX_LABELS + 1, 1), -EINVAL);
    http_mtext_free(&w);

    /* a sample before any family; a family twice; a NULL help */
    http_mtext_init(&w, 1 << 20);
    assert_int_equal(http_mtext_sample(&w, NULL, 0, 1), -EINVAL);
    http_mtext_free(&w);
    http_mtext_init(&w, 1 << 20);
    assert_int_equal(http_mtext_family(&w, "t_one", HTTP_MT_GAUGE, "a"), 0);
    assert_int_equal(http_mtext_family(&w, "t_two", HTTP_MT_GAUGE, "b"), 0);
    assert_int_equal(http_mtext_family(&w, "t_one", HTTP_MT_GAUGE, "a"), -EEXIST);
    http_mtext_free(&w);
    http_mtext_init(&w, 1 << 20);
    assert_int_equal(http_mtext_family(&w, "t_one", HTTP_MT_GAUGE, NULL), -EINVAL);
    http_mtext_free(&w);
}

static void test_limits(void **state)
{
    http_mtext_t w;
    http_mtext_init(&w, 200);
    assert_int_equal(http_mtext_family(&w, "t_level", HTTP_MT_GAUGE, "g"), 0);
    int r = 0;
    for (int i = 0; i < 100 && r == 0; i++)
        r = http_mtext_sample(&w, NULL, 0, i);
    assert_int_equal(r, -E2BIG);
    assert_true(w.out.len <= 200);
    http_mtext_free(&w);

    http_mtext_init(&w, 1 << 24);
    char name[32];
    for (int i = 0; i < HTTP_METRIC_MAX_FAMILIES; i++) {
        snprintf(name, sizeof(name), "t_f%d", i);
        assert_int_equal(http_mtext_family(&w, name, HTTP_MT_GAUGE, "g"), 0);
    }
    assert_int_equal(http_mtext_family(&w, "t_one_more", HTTP_MT_GAUGE, "g"), -E2BIG);
    http_mtext_free(&w);
}

/* --- promtool ------------------------------------------------------------------------------- */

/* Every kind of family the node writes, with awkward label values. */
static void write_sample_exposition(http_mtext_t *w, bool with_camel)
{
    http_label_t l[3];
    assert_int_equal(http_mtext_family(w, "p2p_build_info", HTTP_MT_GAUGE, "Build, \\ and\n."), 0);
    l[0] = (http_label_t){"version", "0.1.0"};
    l[1] = (http_label_t){"name", "n\"1\\\n"};
    l[2] = (http_label_t){"node_id", "bad\xff utf8"};
    http_mtext_sample(w, l, 3, 1);
    http_mtext_family(w, "p2p_dht_messages_received_total", HTTP_MT_COUNTER, "Messages.");
    l[0] = (http_label_t){"type", "ping"};
    http_mtext_sample_u64(w, l, 1, UINT64_MAX);
    l[0].value = "store";
    http_mtext_sample_u64(w, l, 1, 0);
    http_mtext_family(w, "node_load1", HTTP_MT_GAUGE, "1m load average.");
    http_mtext_sample(w, NULL, 0, 0.25);
    http_mtext_family(w, "node_cpu_seconds_total", HTTP_MT_COUNTER, "CPU time.");
    l[0] = (http_label_t){"cpu", "0"};
    l[1] = (http_label_t){"mode", "idle"};
    http_mtext_sample(w, l, 2, 12345.67);
    http_mtext_family(w, "node_filesystem_avail_bytes", HTTP_MT_GAUGE, "Free bytes.");
    l[0] = (http_label_t){"device", "/dev/sda1"};
    l[1] = (http_label_t){"mountpoint", "/mnt/with space/and\\slash"};
    l[2] = (http_label_t){"fstype", "ext4"};
    http_mtext_sample(w, l, 3, 1e12);
    http_mtext_family(w, "p2p_scrape_collector_success", HTTP_MT_GAUGE, "Collector ok.");
    l[0] = (http_label_t){"collector", "dht"};
    http_mtext_sample(w, l, 1, 0);
    http_mtext_family(w, "p2p_odd_values", HTTP_MT_GAUGE, "NaN and infinities.");
    l[0] = (http_label_t){"v", "nan"};
    http_mtext_sample(w, l, 1, NAN);
    l[0].value = "inf";
    http_mtext_sample(w, l, 1, INFINITY);
    l[0].value = "-inf";
    http_mtext_sample(w, l, 1, -INFINITY);
    http_mtext_family(w, "p2p_dht_lookup_duration_seconds", HTTP_MT_HISTOGRAM, "Lookups.");
    http_histogram_t h;
    http_histogram_init(&h, bounds, 4);
    for (int i = 0; i < 50; i++)
        http_histogram_observe(&h, i * 0.07);
    http_mtext_histogram_of(w, NULL, 0, &h);
    http_mtext_family(w, "p2p_rpc_call_duration_seconds", HTTP_MT_HISTOGRAM, "Calls.");
    l[0] = (http_label_t){"domain", "file"};
    http_mtext_histogram_of(w, l, 1, &h);
    l[0].value = "process";
    http_mtext_histogram_of(w, l, 1, &h);
    if (with_camel) {
        http_mtext_family(w, "node_memory_MemAvailable_bytes", HTTP_MT_GAUGE, "Available.");
        http_mtext_sample(w, NULL, 0, 1 << 30);
    }
    int err = 1;
    size_t len;
    assert_non_null(http_mtext_text(w, &len, &err));
    assert_int_equal(err, 0);
}

static void test_promtool_clean(void **state)
{
    http_mtext_t w;
    http_mtext_init(&w, 1 << 20);
    write_sample_exposition(&w, false);
    char out[4096];
    int st = promtool((const char *)w.out.data, w.out.len, out, sizeof(out));
    if (st != 0 || out[0]) fail_msg("promtool status %d:\n%s", st, out);
    http_mtext_free(&w);
}

static void test_promtool_node_memory(void **state)
{
    /* node_exporter's memory names are camelCase: the one thing promtool says about them */
    http_mtext_t w;
    http_mtext_init(&w, 1 << 20);
    write_sample_exposition(&w, true);
    char out[4096];
    promtool((const char *)w.out.data, w.out.len, out, sizeof(out));
    assert_string_equal(out, "node_memory_MemAvailable_bytes metric names should be written in "
                             "'snake_case' not 'camelCase'\n");
    http_mtext_free(&w);
}

static void test_promtool_sees_errors(void **state)
{
    /* the check is not vacuous: an unescaped quote and a counter without _total are reported */
    const char *bad = "# HELP a_total x\n# TYPE a_total counter\na_total{l=\"a\"b\"} 1\n";
    char out[4096];
    assert_int_not_equal(promtool(bad, strlen(bad), out, sizeof(out)), 0);
    const char *lint = "# HELP a_count x\n# TYPE a_count counter\na_count 1\n";
    promtool(lint, strlen(lint), out, sizeof(out));
    assert_non_null(strstr(out, "_total"));
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--promtool") == 0) {
        if (!promtool_found()) {
            printf("SKIP: promtool not found (Debian package prometheus)\n");
            return 77;
        }
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_promtool_clean),
            cmocka_unit_test(test_promtool_node_memory),
            cmocka_unit_test(test_promtool_sees_errors),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_gauge), cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_numbers),       cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_names),         cmocka_unit_test(test_labels_and_errors),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
