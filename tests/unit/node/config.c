/* config.c: unit tests for src/node/config.c: precedence flag > env > file > default, the config
 * file format and the validation of every item (one line naming the bad item). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "node/config.h"
#include "node/log.h"

#define NK "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* base64 of bytes 0..31 */

static char errbuf[2048];

static int parse(node_config_t *c, int argc, char **argv, char **env)
{
    return node_config_parse(c, argc, argv, env, false, errbuf, sizeof(errbuf));
}

static char *write_file(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/p2p-cfg-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void defaults(void **state)
{
    (void)state;
    node_config_t c;
    assert_int_equal(parse(&c, 0, NULL, NULL), 0);
    assert_true(node_config_valid_name(c.name));
    assert_string_equal(c.host, "127.0.0.1");
    assert_int_equal(c.port, 8000);
    assert_string_equal(c.dht_host, "");
    assert_int_equal(c.dht_port, 5678);
    assert_int_equal(c.bootstrap_count, 0);
    char dd[NODE_PATH_MAX];
    snprintf(dd, sizeof(dd), "./data/%s", c.name);
    assert_string_equal(c.data_dir, dd);
    assert_int_equal(c.token_expire_minutes, 60);
    assert_int_equal(c.peer_timeout_s, 120);
    assert_true(c.metrics_enabled);
    assert_int_equal(c.log_level, NODE_LOG_INFO);
    assert_int_equal(c.log_json, 1); /* not a TTY */
    assert_int_equal(node_config_parse(&c, 0, NULL, NULL, true, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(c.log_json, 0);
}

static void precedence_flag_env_file_default(void **state)
{
    (void)state;
    char *file = write_file("# comment\n\nNODE_NAME=fromfile\nexport DHT_PORT=1111\n"
                            "NODE_PORT = \"2222\"\nLOG_LEVEL='ERROR'\nMAX_PEERS=77\n"
                            "SOME_OTHER_APP_SETTING=ignored\n");
    char cfgarg[128];
    snprintf(cfgarg, sizeof(cfgarg), "--config=%s", file);
    char *env[] = {"NODE_NAME=fromenv", "DHT_PORT=3333", "LOG_LEVEL=debug", "UNRELATED=1", NULL};
    char *argv[] = {cfgarg, "--name", "fromflag"};
    node_config_t c;
    assert_int_equal(parse(&c, 3, argv, env), 0);
    assert_string_equal(c.name, "fromflag"); /* flag beats env and file */
    assert_int_equal(c.dht_port, 3333);      /* env beats file */
    assert_int_equal(c.port, 2222);          /* file beats default (quotes stripped) */
    assert_int_equal(c.log_level, NODE_LOG_DEBUG);
    assert_int_equal(c.max_peers, 77);
    assert_string_equal(c.data_dir, "./data/fromflag"); /* default derives from the resolved name */
    assert_string_equal(c.config_file, file);
    /* CONFIG_FILE from the environment works too; the flag beats it. */
    char envcfg[128];
    snprintf(envcfg, sizeof(envcfg), "CONFIG_FILE=%s", file);
    char *env2[] = {envcfg, NULL};
    assert_int_equal(parse(&c, 0, NULL, env2), 0);
    assert_string_equal(c.name, "fromfile");
    assert_int_equal(c.dht_port, 1111);
    assert_int_equal(c.log_level, NODE_LOG_ERROR);
    unlink(file);
}

static void last_flag_wins_and_empty_env_is_unset(void **state)
{
    (void)state;
    char *argv[] = {"--dht-port", "1", "--dht-port=2"};
    char *env[] = {"BOOTSTRAP_NODES=", "DHT_HOST=", NULL};
    node_config_t c;
    assert_int_equal(parse(&c, 3, argv, env), 0);
    assert_int_equal(c.dht_port, 2);
    assert_int_equal(c.bootstrap_count, 0);
    assert_string_equal(c.dht_host, "");
}

static void bootstrap_list(void **state)
{
    (void)state;
    char *argv[] = {"--bootstrap", " 127.0.0.1:5678, [::1]:6000 ,seed.example.org:7000,"};
    node_config_t c;
    assert_int_equal(parse(&c, 2, argv, NULL), 0);
    assert_int_equal(c.bootstrap_count, 3);
    assert_string_equal(c.bootstrap[0], "127.0.0.1:5678");
    assert_string_equal(c.bootstrap[1], "[::1]:6000");
    assert_string_equal(c.bootstrap[2], "seed.example.org:7000");
    char host[80];
    int port;
    assert_int_equal(node_config_split_hostport("[::1]:6000", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 6000);
    assert_int_equal(node_config_split_hostport("::1:6000", host, sizeof(host), &port), -EINVAL);
    assert_int_equal(node_config_split_hostport("h:0", host, sizeof(host), &port), -EINVAL);
    assert_int_equal(node_config_split_hostport("h:65536", host, sizeof(host), &port), -EINVAL);
    assert_int_equal(node_config_split_hostport(":80", host, sizeof(host), &port), -EINVAL);
    assert_int_equal(node_config_split_hostport("[nothex]:80", host, sizeof(host), &port), -EINVAL);
}

static void network_key_and_auth_secret_sources(void **state)
{
    (void)state;
    node_config_t c;
    char *env[] = {"NETWORK_KEY=" NK, "AUTH_SECRET=0123456789abcdef0123456789abcdef", NULL};
    assert_int_equal(parse(&c, 0, NULL, env), 0);
    assert_string_equal(c.network_key_b64, NK);
    assert_string_equal(c.network_key_file, "");
    assert_string_equal(c.auth_secret_b64, "0123456789abcdef0123456789abcdef");
    /* a file given by flag beats the key in the environment */
    char *argv[] = {"--network-key-file", "/x/net.key", "--auth-secret-file", "/x/auth"};
    assert_int_equal(parse(&c, 4, argv, env), 0);
    assert_string_equal(c.network_key_file, "/x/net.key");
    assert_string_equal(c.network_key_b64, "");
    assert_string_equal(c.auth_secret_file, "/x/auth");
    assert_string_equal(c.auth_secret_b64, "");
}

/* Expects parse to fail with one line mentioning `item`. */
static void expect_bad(int argc, char **argv, char **env, const char *item)
{
    node_config_t c;
    errbuf[0] = '\0';
    assert_int_equal(parse(&c, argc, argv, env), -EINVAL);
    assert_non_null(strstr(errbuf, item));
    assert_null(strchr(errbuf, '\n'));
}

static void tags_list(void **state)
{
    (void)state;
    char *env[] = {"NODE_TAGS=role=web, dc=par1 ,", NULL};
    node_config_t c;
    assert_int_equal(parse(&c, 0, NULL, env), 0);
    assert_int_equal(c.tag_count, 2);
    assert_string_equal(c.tags[0], "role=web");
    assert_string_equal(c.tags[1], "dc=par1");
    char *argv[] = {"--tags", "zone=a"};
    assert_int_equal(parse(&c, 2, argv, env), 0); /* the flag wins */
    assert_int_equal(c.tag_count, 1);
    assert_string_equal(c.tags[0], "zone=a");
    char *bad1[] = {"--tags", "novalue"};
    expect_bad(2, bad1, NULL, "tags");
    char *bad2[] = {"--tags", "Upper=x"};
    expect_bad(2, bad2, NULL, "tags");
}

static void service_settings(void **state)
{
    (void)state;
    node_config_t c;
    char *dd[] = {"--data-dir", "/tmp/p2p-x"};
    assert_int_equal(parse(&c, 2, dd, NULL), 0);
    assert_int_equal(c.file_root_count, 1); /* default: DATA_DIR/files */
    assert_string_equal(c.file_roots[0], "/tmp/p2p-x/files");
    assert_true(c.file_roots_default);
    assert_string_equal(c.check_port_allow, "");
    assert_string_equal(c.alert_webhook, "");
    char *env[] = {"FILE_ROOTS=/srv/a,,/var/log", "CHECK_PORT_ALLOW=10.0.0.0/8,::1,192.0.2.7",
                   "ALERT_WEBHOOK_URL=http://127.0.0.1:9000/hook", NULL};
    assert_int_equal(parse(&c, 0, NULL, env), 0);
    assert_int_equal(c.file_root_count, 2);
    assert_string_equal(c.file_roots[0], "/srv/a");
    assert_string_equal(c.file_roots[1], "/var/log");
    assert_false(c.file_roots_default);
    assert_string_equal(c.check_port_allow, "10.0.0.0/8,::1,192.0.2.7");
    assert_string_equal(c.alert_webhook, "http://127.0.0.1:9000/hook");
    char *b1[] = {"--check-port-allow", "example.com"};
    expect_bad(2, b1, NULL, "check-port-allow");
    char *b2[] = {"--check-port-allow", "10.0.0.0/33"};
    expect_bad(2, b2, NULL, "check-port-allow");
    char *b3[] = {"--check-port-allow", "::/129"};
    expect_bad(2, b3, NULL, "check-port-allow");
    char *b4[] = {"--alert-webhook", "ftp://x"};
    expect_bad(2, b4, NULL, "alert-webhook");
    char *b5[] = {"--alert-webhook", "http://a b"};
    expect_bad(2, b5, NULL, "alert-webhook");
    char *b6[] = {"--file-roots", "a,b,c,d,e,f,g,h,i"};
    expect_bad(2, b6, NULL, "file-roots");
}

static void validation(void **state)
{
    (void)state;
    char *a1[] = {"--name", "Bad_Name"};
    expect_bad(2, a1, NULL, "--name");
    char *a2[] = {"--name", "-x"};
    expect_bad(2, a2, NULL, "--name");
    char *a3[] = {"--name", "a234567890123456789012345678901234567890123456789012345678901234"};
    expect_bad(2, a3, NULL, "--name");
    char *a4[] = {"--dht-port", "65536"};
    expect_bad(2, a4, NULL, "--dht-port");
    char *a5[] = {"--port", "12x"};
    expect_bad(2, a5, NULL, "--port");
    char *a6[] = {"--bootstrap", "1.2.3.4"};
    expect_bad(2, a6, NULL, "--bootstrap");
    char *a7[] = {"--log-level", "LOUD"};
    expect_bad(2, a7, NULL, "--log-level");
    char *a8[] = {"--log-format", "xml"};
    expect_bad(2, a8, NULL, "--log-format");
    char *a9[] = {"--metrics-enabled", "maybe"};
    expect_bad(2, a9, NULL, "--metrics-enabled");
    char *a10[] = {"--no-such-flag", "1"};
    expect_bad(2, a10, NULL, "no-such-flag");
    char *a11[] = {"--dht-port"};
    expect_bad(1, a11, NULL, "--dht-port");
    char *a12[] = {"positional"};
    expect_bad(1, a12, NULL, "positional");
    char *a13[] = {"--dht-host", "example.org"};
    expect_bad(2, a13, NULL, "--dht-host");
    char *a14[] = {"--config", "/nonexistent/p2p.env"};
    expect_bad(2, a14, NULL, "config file");
    char *e1[] = {"DHT_PORT=notaport", NULL};
    expect_bad(0, NULL, e1, "DHT_PORT (environment)");
    char *e2[] = {"NETWORK_KEY=c2hvcnQ=", NULL};
    expect_bad(0, NULL, e2, "NETWORK_KEY");
    char *e3[] = {"AUTH_SECRET=c2hvcnQ=", NULL};
    expect_bad(0, NULL, e3, "AUTH_SECRET");
    char *e4[] = {"PEER_TIMEOUT=0", NULL};
    expect_bad(0, NULL, e4, "PEER_TIMEOUT");
    char *file = write_file("NODE_NAME=ok\nLOG_LEVEL=LOUD\n");
    char cfgarg[128];
    snprintf(cfgarg, sizeof(cfgarg), "--config=%s", file);
    char *a15[] = {cfgarg};
    expect_bad(1, a15, NULL, "line 2");
    unlink(file);
    file = write_file("NODE_NAME=ok\njust words\n");
    snprintf(cfgarg, sizeof(cfgarg), "--config=%s", file);
    expect_bad(1, a15, NULL, "KEY=VALUE");
    unlink(file);
}

static void ports_zero_allowed_for_tests(void **state)
{
    (void)state;
    char *argv[] = {"--dht-port", "0", "--port", "0", "--dht-host", "::1"};
    node_config_t c;
    assert_int_equal(parse(&c, 6, argv, NULL), 0);
    assert_int_equal(c.dht_port, 0);
    assert_int_equal(c.port, 0);
    assert_string_equal(c.dht_host, "::1");
}

static void names_and_durations(void **state)
{
    (void)state;
    assert_true(node_config_valid_name("a"));
    assert_true(node_config_valid_name("web-01"));
    assert_false(node_config_valid_name(""));
    assert_false(node_config_valid_name("web-"));
    assert_false(node_config_valid_name("Web"));
    assert_false(node_config_valid_name("a.b"));
    unsigned long long d;
    assert_int_equal(node_config_parse_duration("30s", &d), 0);
    assert_int_equal(d, 30);
    assert_int_equal(node_config_parse_duration("15m", &d), 0);
    assert_int_equal(d, 900);
    assert_int_equal(node_config_parse_duration("1h", &d), 0);
    assert_int_equal(d, 3600);
    assert_int_equal(node_config_parse_duration("7d", &d), 0);
    assert_int_equal(d, 604800);
    assert_int_equal(node_config_parse_duration("42", &d), 0);
    assert_int_equal(d, 42);
    assert_int_equal(node_config_parse_duration("0", &d), -EINVAL);
    assert_int_equal(node_config_parse_duration("1w", &d), -EINVAL);
    assert_int_equal(node_config_parse_duration("1hh", &d), -EINVAL);
    assert_int_equal(node_config_parse_duration("-5", &d), -EINVAL);
    assert_int_equal(node_config_parse_duration("99999999999999999999", &d), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults),
        cmocka_unit_test(precedence_flag_env_file_default),
        cmocka_unit_test(last_flag_wins_and_empty_env_is_unset),
        cmocka_unit_test(bootstrap_list),
        cmocka_unit_test(tags_list),
        cmocka_unit_test(service_settings),
        cmocka_unit_test(network_key_and_auth_secret_sources),
        cmocka_unit_test(validation),
        cmocka_unit_test(ports_zero_allowed_for_tests),
        cmocka_unit_test(names_and_durations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
