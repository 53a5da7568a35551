/* log.c: unit tests for src/node/log.c: JSON lines parse as one object each with ts, level, msg and
 * the fields; text lines; level filtering; escaping. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "node/log.h"

/* Returns the lines written to f (malloc'd, NUL-terminated). */
static char *slurp(FILE *f)
{
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    char *s = calloc(1, (size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    return s;
}

static void json_lines(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    node_log_t *log = node_log_new(f, NODE_LOG_INFO, true);
    node_log(log, NODE_LOG_INFO, "ready", "name", "n1", "#dht_port", "5678", "#ok", "true", NULL);
    node_log(log, NODE_LOG_DEBUG, "hidden", NULL);
    node_log(log, NODE_LOG_ERROR, "quote \" back \\ nl \n ctl \x01", "k", "v\tw", NULL);
    char *s = slurp(f);
    char *second = strchr(s, '\n');
    assert_non_null(second);
    *second++ = '\0';
    json_error_t je;
    json_t *o = json_loads(s, 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "INFO");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "ready");
    assert_string_equal(json_string_value(json_object_get(o, "name")), "n1");
    assert_int_equal(json_integer_value(json_object_get(o, "dht_port")), 5678);
    assert_true(json_is_true(json_object_get(o, "ok")));
    const char *ts = json_string_value(json_object_get(o, "ts"));
    assert_non_null(ts);
    assert_int_equal(strlen(ts), 24); /* 2024-01-02T03:04:05.678Z */
    assert_int_equal(ts[23], 'Z');
    json_decref(o);
    char *third = strchr(second, '\n');
    assert_non_null(third);
    *third++ = '\0';
    assert_string_equal(third, ""); /* exactly two lines: DEBUG was filtered */
    o = json_loads(second, 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "ERROR");
    assert_string_equal(json_string_value(json_object_get(o, "msg")),
                        "quote \" back \\ nl \n ctl \x01");
    assert_string_equal(json_string_value(json_object_get(o, "k")), "v\tw");
    json_decref(o);
    free(s);
    node_log_free(log);
    fclose(f);
}

static void text_lines_and_levels(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    node_log_t *log = node_log_new(f, NODE_LOG_WARNING, false);
    node_log(log, NODE_LOG_INFO, "hidden", NULL);
    assert_false(node_log_enabled(log, NODE_LOG_INFO));
    node_log_set_level(log, NODE_LOG_DEBUG);
    assert_true(node_log_enabled(log, NODE_LOG_DEBUG));
    node_log(log, NODE_LOG_DEBUG, "shown", "a", "1", "b", "two words", "c", "", NULL);
    char *s = slurp(f);
    assert_null(strstr(s, "hidden"));
    assert_non_null(strstr(s, "DEBUG"));
    assert_non_null(strstr(s, "shown a=1 b=\"two words\" c=\"\"\n"));
    free(s);
    node_log_free(log);
    node_log_free(NULL);
    node_log(NULL, NODE_LOG_ERROR, "no logger", NULL);
    fclose(f);
}

static void level_names(void **state)
{
    (void)state;
    assert_int_equal(node_log_level_parse("debug"), NODE_LOG_DEBUG);
    assert_int_equal(node_log_level_parse("INFO"), NODE_LOG_INFO);
    assert_int_equal(node_log_level_parse("Warning"), NODE_LOG_WARNING);
    assert_int_equal(node_log_level_parse("warn"), NODE_LOG_WARNING);
    assert_int_equal(node_log_level_parse("ERROR"), NODE_LOG_ERROR);
    assert_int_equal(node_log_level_parse("TRACE"), -EINVAL);
    assert_int_equal(node_log_level_parse(NULL), -EINVAL);
    assert_string_equal(node_log_level_name(NODE_LOG_WARNING), "WARNING");
}

static void long_lines_stay_one_json_object(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    node_log_t *log = node_log_new(f, NODE_LOG_DEBUG, true);
    char *big = malloc(10000);
    memset(big, 'x', 9999);
    big[9999] = '\0';
    node_log(log, NODE_LOG_INFO, "big", "k", big, "k2", big, "#n", "1", NULL);
    char *s = slurp(f);
    size_t n = strlen(s);
    assert_true(n > 100 && s[n - 1] == '\n' && s[n - 2] == '}');
    assert_true(strchr(s, '\n') == s + n - 1);
    json_error_t je;
    json_t *o = json_loads(s, 0, &je);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "big");
    json_decref(o);
    free(s);
    free(big);
    node_log_free(log);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_lines),
        cmocka_unit_test(text_lines_and_levels),
        cmocka_unit_test(level_names),
        cmocka_unit_test(long_lines_stay_one_json_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
