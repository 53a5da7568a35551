/* Tests of src/http/metrics_host.c: each host collector on fixture files (exact samples, names as
 * node_exporter spells them), on missing or malformed files (a clear error, no output kept), and
 * on this machine's real /proc. With --promtool the real output goes through `promtool check
 * metrics`, whose only finding may be the camelCase of node_exporter's node_memory_* names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "http/metrics-internal.h"
#include "promtool.h"

static char root[64];

static void put(const char *rel, const char *text)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    snprintf(root, sizeof(root), "/tmp/p2p-host-XXXXXX");
    assert_non_null(mkdtemp(root));
    char d[128];
    snprintf(d, sizeof(d), "%s/self", root);
    mkdir(d, 0700);
    snprintf(d, sizeof(d), "%s/self/fd", root);
    mkdir(d, 0700);
    snprintf(d, sizeof(d), "%s/net", root);
    mkdir(d, 0700);
    put("self/fd/0", "");
    put("self/fd/1", "");
    put("self/fd/7", "");
    put("loadavg", "0.25 1.50 2.75 3/456 7890\n");
    put("meminfo", "MemTotal:       16303428 kB\n"
                   "MemFree:         1000000 kB\n"
                   "MemAvailable:    8000000 kB\n"
                   "Active(anon):       1234 kB\n"
                   "HugePages_Total:       0\n"
                   "Hugepagesize:       2048 kB\n"
                   "garbage line\n");
    put("stat", "cpu  100 2 30 4000 5 6 7 8 9 10\n"
                "cpu0 50 1 15 2000 2 3 3 4 4 5\n"
                "cpu3 50 1 15 2000 3 3 4 4 5 5\n"
                "intr 1 2 3\n"
                "ctxt 987654\n"
                "btime 1700000000\n"
                "processes 4321\n"
                "procs_running 3\n"
                "procs_blocked 1\n");
    put("net/dev", "Inter-|   Receive                                                |  Transmit\n"
                   " face |bytes    packets errs drop fifo frame compressed multicast|bytes    "
                   "packets errs drop fifo colls carrier compressed\n"
                   "    lo:  1000      10    0    0    0     0          0         0     1000      "
                   "10    0    0    0     0       0          0\n"
                   "  eth0: 123456789 100 0 0 0 0 0 0 987654321 200 0 0 0 0 0 0\n");
    /* a name with spaces and a parenthesis, as /proc prints it */
    put("self/stat", "4242 (p2p (node) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 "
                     "7 0 12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 "
                     "0 0 0 0 0\n");
    put("self/limits", "Limit                     Soft Limit           Hard Limit           Units\n"
                       "Max cpu time              unlimited            unlimited            "
                       "seconds\n"
                       "Max open files            1024                 524288               "
                       "files\n");
    put("self/mounts", "/dev/root / ext4 rw,relatime 0 0\n"
                       "proc /proc proc rw 0 0\n"
                       "tmpfs /tmp/with\\040space tmpfs rw 0 0\n"
                       "sysfs /sys sysfs rw 0 0\n"
                       "/dev/gone /definitely/not/here ext4 rw 0 0\n");
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    return system(cmd) == 0 ? 0 : -1;
}

/* Runs fn on the fixtures and returns the text (malloc'd). */
static char *run(http_host_fn fn, int want)
{
    http_mtext_t w;
    http_mtext_init(&w, 1 << 20);
    assert_int_equal(fn(&w, root), want);
    size_t len;
    char *s = want == 0 ? http_mtext_take(&w, &len) : NULL;
    http_mtext_free(&w);
    return s;
}

static void has(const char *text, const char *line)
{
    if (!strstr(text, line)) fail_msg("missing %s in:\n%s", line, text);
}

static void test_loadavg(void **state)
{
    char *s = run(http_host_loadavg, 0);
    has(s, "# TYPE node_load1 gauge\nnode_load1 0.25\n");
    has(s, "\nnode_load5 1.5\n");
    has(s, "\nnode_load15 2.75\n");
    free(s);
}

static void test_meminfo(void **state)
{
    char *s = run(http_host_meminfo, 0);
    has(s, "# HELP node_memory_MemTotal_bytes Memory information field MemTotal.\n"
           "# TYPE node_memory_MemTotal_bytes gauge\nnode_memory_MemTotal_bytes 16694710272\n");
    has(s, "\nnode_memory_MemAvailable_bytes 8192000000\n");
    has(s, "\nnode_memory_Active_anon_bytes 1263616\n");
    has(s, "\nnode_memory_HugePages_Total 0\n"); /* a count, not kB: no _bytes */
    has(s, "\nnode_memory_Hugepagesize_bytes 2097152\n");
    assert_null(strstr(s, "garbage"));
    free(s);
}

static void test_cpu(void **state)
{
    char *s = run(http_host_cpu, 0);
    long hz = sysconf(_SC_CLK_TCK);
    assert_int_equal(hz, 100); /* the expected figures below assume USER_HZ 100 (Linux) */
    has(s, "# TYPE node_cpu_seconds_total counter\n"
           "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 0.5\n"
           "node_cpu_seconds_total{cpu=\"0\",mode=\"nice\"} 0.01\n"
           "node_cpu_seconds_total{cpu=\"0\",mode=\"system\"} 0.15\n"
           "node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 20\n"
           "node_cpu_seconds_total{cpu=\"0\",mode=\"iowait\"} 0.02\n"
           "node_cpu_seconds_total{cpu=\"0\",mode=\"irq\"} 0.03\n"
           "node_cpu_seconds_total{cpu=\"0\",mode=\"softirq\"} 0.03\n"
           "node_cpu_seconds_total{cpu=\"0\",mode=\"steal\"} 0.04\n"
           "node_cpu_seconds_total{cpu=\"3\",mode=\"user\"} 0.5\n");
    assert_null(strstr(s, "mode=\"guest\""));
    has(s, "\nnode_boot_time_seconds 1700000000\n");
    has(s, "\nnode_context_switches_total 987654\n");
    has(s, "\nnode_forks_total 4321\n");
    has(s, "\nnode_procs_running 3\n");
    has(s, "\nnode_procs_blocked 1\n");
    free(s);
}

static void test_netdev(void **state)
{
    char *s = run(http_host_netdev, 0);
    has(s, "node_network_receive_bytes_total{device=\"lo\"} 1000\n"
           "node_network_receive_bytes_total{device=\"eth0\"} 123456789\n");
    has(s, "node_network_transmit_bytes_total{device=\"eth0\"} 987654321\n");
    free(s);
}

static void test_process(void **state)
{
    char *s = run(http_host_process, 0);
    long page = sysconf(_SC_PAGESIZE);
    char want[128];
    has(s, "\nprocess_cpu_seconds_total 3\n"); /* (250 + 50) / 100 */
    has(s, "\nprocess_start_time_seconds 1700000123.45\n");
    has(s, "\nprocess_virtual_memory_bytes 104857600\n");
    snprintf(want, sizeof(want), "\nprocess_resident_memory_bytes %ld\n", 2560 * page);
    has(s, want);
    has(s, "\nprocess_threads 7\n");
    has(s, "\nprocess_open_fds 3\n");
    has(s, "\nprocess_max_fds 1024\n");
    free(s);
}

static void test_filesystem(void **state)
{
    /* "/" exists everywhere; the tmpfs one does not here, neither does the last: device errors */
    char *s = run(http_host_filesystem, 0);
    has(s, "node_filesystem_size_bytes{device=\"/dev/root\",mountpoint=\"/\",fstype=\"ext4\"} ");
    has(s, "node_filesystem_avail_bytes{device=\"/dev/root\",mountpoint=\"/\",fstype=\"ext4\"} ");
    has(s, "node_filesystem_device_error{device=\"/dev/root\",mountpoint=\"/\",fstype=\"ext4\"} "
           "0\n");
    has(s, "node_filesystem_device_error{device=\"tmpfs\",mountpoint=\"/tmp/with space\","
           "fstype=\"tmpfs\"} 1\n");
    has(s, "node_filesystem_device_error{device=\"/dev/gone\",mountpoint=\"/definitely/not/here\","
           "fstype=\"ext4\"} 1\n");
    assert_null(strstr(s, "mountpoint=\"/proc\""));
    assert_null(strstr(s, "node_filesystem_size_bytes{device=\"/dev/gone\""));
    /* the size of / is statvfs's */
    char *p = strstr(s, "node_filesystem_size_bytes{device=\"/dev/root\"");
    assert_true(strtod(strchr(p, '}') + 2, NULL) > 0);
    free(s);
}

static void test_missing_and_malformed(void **state)
{
    put("loadavg", "not numbers\n");
    put("stat", "intr 1\n");
    put("self/stat", "4242 no parenthesis\n");
    assert_null(run(http_host_loadavg, -EINVAL));
    assert_null(run(http_host_cpu, -EINVAL));
    assert_null(run(http_host_process, -EINVAL));
    char path[128];
    snprintf(path, sizeof(path), "%s/net/dev", root);
    unlink(path);
    assert_null(run(http_host_netdev, -ENOENT));
    snprintf(path, sizeof(path), "%s/meminfo", root);
    unlink(path);
    assert_null(run(http_host_meminfo, -ENOENT));
}

/* Every collector on this machine's /proc: they succeed and write what they promise. */
static char *real_exposition(void)
{
    http_mtext_t w;
    http_mtext_init(&w, 1 << 22);
    size_t n;
    const http_host_collector_t *c = http_host_collectors(&n);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++)
        if (c[i].fn(&w, "/proc") != 0) fail_msg("collector %s failed on /proc", c[i].name);
    size_t len;
    char *s = http_mtext_take(&w, &len);
    http_mtext_free(&w);
    assert_non_null(s);
    return s;
}

static void test_real_proc(void **state)
{
    char *s = real_exposition();
    const char *names[] = {"\nnode_load1 ",
                           "\nnode_memory_MemAvailable_bytes ",
                           "\nnode_cpu_seconds_total{cpu=\"",
                           "\nnode_network_receive_bytes_total{",
                           "\nnode_network_transmit_bytes_total{",
                           "\nprocess_open_fds ",
                           "\nprocess_resident_memory_bytes ",
                           "\nprocess_start_time_seconds ",
                           "\nprocess_cpu_seconds_total ",
                           "# TYPE node_filesystem_avail_bytes"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        has(s, names[i]);
    free(s);
}

static void test_promtool_real(void **state)
{
    char *s = real_exposition();
    char out[1 << 16];
    promtool(s, strlen(s), out, sizeof(out));
    if (!promtool_only_node_memory(out)) fail_msg("promtool:\n%s", out);
    free(s);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--promtool") == 0) {
        if (!promtool_found()) {
            printf("SKIP: promtool not found (Debian package prometheus)\n");
            return 77;
        }
        const struct CMUnitTest tests[] = {cmocka_unit_test(test_promtool_real)};
        return cmocka_run_group_tests(tests, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loadavg),
        cmocka_unit_test(test_meminfo),
        cmocka_unit_test(test_cpu),
        cmocka_unit_test(test_netdev),
        cmocka_unit_test(test_process),
        cmocka_unit_test(test_filesystem),
        cmocka_unit_test(test_missing_and_malformed),
        cmocka_unit_test(test_real_proc),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
