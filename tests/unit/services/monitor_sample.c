/* monitor_sample.c: unit tests for src/services/monitor_sample.c: each procfs parser on fixture
 * text as kernels print it (including awkward cases: a command name with ") ", escaped mount
 * points, pseudo filesystems, too many cores), the derivation of percents and rates from two
 * samples, and one sanity pass over the live /proc of this machine. */
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

#include "services/monitor_sample.h"

static const char STAT[] = "cpu  100 10 50 800 20 5 15 0 0 0\n"
                           "cpu0 50 5 25 400 10 2 8 0 0 0\n"
                           "cpu1 50 5 25 400 10 3 7 0 0 0\n"
                           "intr 14505052 0 0 0\n"
                           "ctxt 26399552\n"
                           "btime 1795316509\n"
                           "processes 115785\n"
                           "procs_running 3\n"
                           "procs_blocked 0\n";

static void test_proc_stat(void **state)
{
    (void)state;
    svc_proc_stat_t *s = malloc(sizeof(*s));
    assert_int_equal(svc_parse_proc_stat(STAT, s), 0);
    assert_int_equal(s->n_cores, 2);
    assert_int_equal(s->total.user, 100);
    assert_int_equal(s->total.nice, 10);
    assert_int_equal(s->total.system, 50);
    assert_int_equal(s->total.idle, 800);
    assert_int_equal(s->total.iowait, 20);
    assert_int_equal(s->total.irq, 5);
    assert_int_equal(s->total.softirq, 15);
    assert_int_equal(s->cores[1].irq, 3);
    assert_int_equal(s->procs_running, 3);
    /* an old kernel with 4 fields only */
    assert_int_equal(svc_parse_proc_stat("cpu 1 2 3 4\ncpu0 1 2 3 4\n", s), 0);
    assert_int_equal(s->total.idle, 4);
    assert_int_equal(s->total.iowait, 0);
    /* broken: no total line, or too few fields */
    assert_int_equal(svc_parse_proc_stat("cpu0 1 2 3 4\n", s), -EINVAL);
    assert_int_equal(svc_parse_proc_stat("cpu 1 2\n", s), -EINVAL);
    assert_int_equal(svc_parse_proc_stat("", s), -EINVAL);
    free(s);
}

static void test_proc_stat_many_cores(void **state)
{
    (void)state;
    size_t cap = 64 + (SVC_MON_MAX_CPUS + 10) * 40;
    char *text = malloc(cap);
    size_t n = (size_t)snprintf(text, cap, "cpu  1 0 1 10 0 0 0 0\n");
    for (int i = 0; i < SVC_MON_MAX_CPUS + 10; i++)
        n += (size_t)snprintf(text + n, cap - n, "cpu%d 1 0 1 10 0 0 0 0\n", i);
    svc_proc_stat_t *s = malloc(sizeof(*s));
    assert_int_equal(svc_parse_proc_stat(text, s), 0);
    assert_int_equal(s->n_cores, SVC_MON_MAX_CPUS); /* bounded, the rest ignored */
    free(s);
    free(text);
}

static const char MEMINFO[] = "MemTotal:       24682416 kB\n"
                              "MemFree:        24402628 kB\n"
                              "MemAvailable:   24247480 kB\n"
                              "Buffers:            2640 kB\n"
                              "Cached:            39360 kB\n"
                              "SwapCached:            0 kB\n"
                              "SwapTotal:       1048572 kB\n"
                              "SwapFree:         524286 kB\n"
                              "SReclaimable:      93500 kB\n"
                              "HugePages_Total:       0\n";

static void test_meminfo(void **state)
{
    (void)state;
    svc_meminfo_t m;
    assert_int_equal(svc_parse_meminfo(MEMINFO, &m), 0);
    assert_true(m.has_available);
    assert_int_equal(m.total, 24682416ull * 1024);
    assert_int_equal(m.free, 24402628ull * 1024);
    assert_int_equal(m.available, 24247480ull * 1024);
    assert_int_equal(m.buffers, 2640ull * 1024);
    assert_int_equal(m.cached, (39360ull + 93500ull) * 1024); /* SReclaimable counted as cache */
    assert_int_equal(m.swap_total, 1048572ull * 1024);
    assert_int_equal(m.swap_free, 524286ull * 1024);
    /* "SwapCached:" must not be taken for "Cached:" (both start lines) */
    assert_int_equal(svc_parse_meminfo("MemTotal: 100 kB\nMemFree: 50 kB\nSwapCached: 7 kB\n", &m),
                     0);
    assert_int_equal(m.cached, 0);
    assert_false(m.has_available); /* an old kernel: estimated */
    assert_int_equal(m.available, 50 * 1024);
    assert_int_equal(svc_parse_meminfo("MemFree: 1 kB\n", &m), -EINVAL);
    assert_int_equal(svc_parse_meminfo("MemTotal: x kB\nMemFree: 1 kB\n", &m), -EINVAL);
}

static void test_loadavg_uptime(void **state)
{
    (void)state;
    double l[3], up;
    assert_int_equal(svc_parse_loadavg("0.05 1.50 12.25 1/87 18399\n", l), 0);
    assert_true(l[0] == 0.05 && l[1] == 1.5 && l[2] == 12.25);
    assert_int_equal(svc_parse_loadavg("0.05 1.50\n", l), -EINVAL);
    assert_int_equal(svc_parse_uptime("17876.21 28810.12\n", &up), 0);
    assert_true(up == 17876.21);
    assert_int_equal(svc_parse_uptime("", &up), -EINVAL);
}

static const char NETDEV[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "    lo: 5296295377 17568257    0    0    0     0          0         0 5296295377 17568257  "
    "  0    0    0     0       0          0\n"
    "  eth0: 49534355    5681    0    0    0     0          0         0   887972    5184    0    "
    "0    0     0       0          0\n"
    "veth-a.b:1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";

static void test_netdev(void **state)
{
    (void)state;
    svc_netdev_t *n = malloc(sizeof(*n));
    assert_int_equal(svc_parse_netdev(NETDEV, n), 0);
    assert_int_equal(n->n, 3);
    assert_string_equal(n->ifaces[0].name, "lo");
    assert_int_equal(n->ifaces[0].rx_bytes, 5296295377ull);
    assert_int_equal(n->ifaces[0].tx_bytes, 5296295377ull);
    assert_string_equal(n->ifaces[1].name, "eth0");
    assert_int_equal(n->ifaces[1].rx_bytes, 49534355);
    assert_int_equal(n->ifaces[1].tx_bytes, 887972);
    assert_string_equal(n->ifaces[2].name, "veth-a.b"); /* no space after the colon */
    assert_int_equal(n->ifaces[2].rx_bytes, 1);
    assert_int_equal(n->ifaces[2].tx_bytes, 9);
    assert_int_equal(svc_parse_netdev("  eth0: 1 2 3\n", n), -EINVAL);
    free(n);
}

static void test_self(void **state)
{
    (void)state;
    svc_self_t s;
    memset(&s, 0, sizeof(s));
    /* a command name holding ") (" and spaces: fields are counted from the last ')' */
    const char *stat = "4242 (we) ird (name) S 1 4242 4242 0 -1 4194560 500 0 0 0 "
                       "123 45 0 0 20 0 7 0 1787621 3133440 421 18446744073709551615\n";
    assert_int_equal(svc_parse_self_stat(stat, &s), 0);
    assert_int_equal(s.utime, 123);
    assert_int_equal(s.stime, 45);
    assert_int_equal(s.threads, 7);
    assert_int_equal(svc_parse_statm("765 425 396 5 0 123 0\n", &s), 0);
    assert_int_equal(s.rss_pages, 425);
    assert_int_equal(svc_parse_self_stat("12 (x S 1 2", &s), -EINVAL);
    assert_int_equal(svc_parse_self_stat("12 (x) S 1 2 3\n", &s), -EINVAL);
    assert_int_equal(svc_parse_statm("765\n", &s), -EINVAL);
}

static const char MOUNTS[] = "proc /proc proc rw,relatime 0 0\n"
                             "sysfs /sys sysfs rw,relatime 0 0\n"
                             "devtmpfs /dev devtmpfs rw 0 0\n"
                             "tmpfs /dev/shm tmpfs rw,relatime 0 0\n"
                             "/dev/vda / ext4 rw,relatime 0 0\n"
                             "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"
                             "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"
                             "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n"
                             "/dev/sdb1 /mnt/my\\040disk xfs rw 0 0\n"
                             "/dev/sdc1 /data ext4 rw 0 0\n"
                             "/dev/sdd1 /data btrfs rw 0 0\n"
                             "server:/x /nfs nfs4 rw 0 0\n"
                             "broken-line\n";

static void test_mounts(void **state)
{
    (void)state;
    svc_fs_t fs[8];
    int n = svc_parse_mounts(MOUNTS, fs, 8);
    assert_int_equal(n, 5);
    assert_string_equal(fs[0].mount, "/dev/shm");
    assert_string_equal(fs[0].type, "tmpfs"); /* tmpfs is kept */
    assert_string_equal(fs[1].mount, "/");
    assert_string_equal(fs[1].device, "/dev/vda");
    assert_string_equal(fs[2].mount, "/mnt/my disk"); /* \040 decoded */
    assert_string_equal(fs[3].mount, "/data");
    assert_string_equal(fs[3].device, "/dev/sdd1"); /* mounted over: the later one */
    assert_string_equal(fs[3].type, "btrfs");
    assert_string_equal(fs[4].mount, "/nfs");
    assert_int_equal(svc_parse_mounts(MOUNTS, fs, 2), 2); /* bounded */
    assert_true(svc_fs_type_pseudo("cgroup2"));
    assert_false(svc_fs_type_pseudo("ext4"));

    svc_fs_t f = {.size = 1000, .free = 300, .available = 200, .ok = true};
    /* used 700 of used + available 900, as df shows it */
    double p = svc_fs_used_percent(&f);
    assert_true(p > 77.7 && p < 77.8);
    f.ok = false;
    assert_true(svc_fs_used_percent(&f) == 0);
}

static void fill_raw(svc_mon_raw_t *r, uint64_t ms, uint64_t busy, uint64_t idle, uint64_t rx,
                     uint64_t ticks)
{
    memset(r, 0, sizeof(*r));
    r->mono_ms = ms;
    r->wall_ms = 1700000000000ull + ms;
    r->stat.total.user = busy;
    r->stat.total.idle = idle;
    r->stat.n_cores = 1;
    r->stat.cores[0] = r->stat.total;
    r->mem.total = 1000;
    r->mem.available = 250;
    r->mem.free = 100;
    r->mem.swap_total = 400;
    r->mem.swap_free = 300;
    r->net.n = 2;
    strcpy(r->net.ifaces[0].name, "lo");
    r->net.ifaces[0].rx_bytes = rx * 10;
    strcpy(r->net.ifaces[1].name, "eth0");
    r->net.ifaces[1].rx_bytes = rx;
    r->net.ifaces[1].tx_bytes = rx / 2;
    r->self.utime = ticks;
    r->self.rss_pages = 10;
}

static void test_derive(void **state)
{
    (void)state;
    svc_mon_raw_t *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    svc_mon_status_t *s = malloc(sizeof(*s));
    fill_raw(a, 1000, 100, 300, 1000, 10);
    fill_raw(b, 3000, 150, 350, 5000, 60); /* 2 s later: 50 busy of 100 ticks */
    svc_mon_derive(NULL, a, 100, 4096, s);
    assert_true(s->cpu.total == 25.0); /* first sample: since boot */
    assert_true(s->rx_bytes_per_s == 0);
    svc_mon_derive(a, b, 100, 4096, s);
    assert_true(s->cpu.total == 50.0);
    assert_true(s->cpu.idle == 50.0);
    assert_true(s->cores[0] == 50.0);
    assert_true(s->rx_bytes_per_s == 2000.0); /* eth0 only: lo is not in the totals */
    assert_true(s->tx_bytes_per_s == 1000.0);
    assert_true(s->if_rx[0] == 20000.0);
    assert_int_equal(s->mem_used, 750);
    assert_true(s->mem_percent == 75.0);
    assert_int_equal(s->swap_used, 100);
    assert_true(s->swap_percent == 25.0);
    assert_int_equal(s->node_rss, 40960);
    assert_true(s->node_cpu_percent == 25.0); /* 50 ticks at 100/s over 2 s */
    /* counters going back never give negative rates */
    svc_mon_derive(b, a, 100, 4096, s);
    assert_true(s->rx_bytes_per_s == 0 && s->cpu.total == 0);
    free(a);
    free(b);
    free(s);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 1 << 20;
    char *b = malloc(cap);
    size_t n = fread(b, 1, cap - 1, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

/* The parsers accept what this machine's kernel prints, with plausible values. */
static void test_live_proc(void **state)
{
    (void)state;
    char *t;
    svc_proc_stat_t *ps = malloc(sizeof(*ps));
    assert_non_null(t = slurp("/proc/stat"));
    assert_int_equal(svc_parse_proc_stat(t, ps), 0);
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    assert_true(ps->n_cores >= 1 && ps->n_cores <= ncpu);
    free(t);
    free(ps);
    svc_meminfo_t m;
    assert_non_null(t = slurp("/proc/meminfo"));
    assert_int_equal(svc_parse_meminfo(t, &m), 0);
    assert_true(m.total > 0 && m.available <= m.total);
    free(t);
    double l[3], up;
    assert_non_null(t = slurp("/proc/loadavg"));
    assert_int_equal(svc_parse_loadavg(t, l), 0);
    free(t);
    assert_non_null(t = slurp("/proc/uptime"));
    assert_int_equal(svc_parse_uptime(t, &up), 0);
    assert_true(up > 0);
    free(t);
    svc_netdev_t *nd = malloc(sizeof(*nd));
    assert_non_null(t = slurp("/proc/net/dev"));
    assert_int_equal(svc_parse_netdev(t, nd), 0);
    bool lo = false;
    for (int i = 0; i < nd->n; i++)
        lo |= strcmp(nd->ifaces[i].name, "lo") == 0;
    assert_true(lo);
    free(t);
    free(nd);
    svc_self_t s;
    assert_non_null(t = slurp("/proc/self/stat"));
    assert_int_equal(svc_parse_self_stat(t, &s), 0);
    assert_true(s.threads >= 1);
    free(t);
    assert_non_null(t = slurp("/proc/self/statm"));
    assert_int_equal(svc_parse_statm(t, &s), 0);
    assert_true(s.rss_pages > 0);
    free(t);
    svc_fs_t *fs = malloc(sizeof(*fs) * SVC_MON_MAX_FS);
    assert_non_null(t = slurp("/proc/self/mounts"));
    int n = svc_parse_mounts(t, fs, SVC_MON_MAX_FS);
    bool root = false;
    for (int i = 0; i < n; i++)
        root |= strcmp(fs[i].mount, "/") == 0;
    assert_true(root);
    free(t);
    free(fs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proc_stat), cmocka_unit_test(test_proc_stat_many_cores),
        cmocka_unit_test(test_meminfo),   cmocka_unit_test(test_loadavg_uptime),
        cmocka_unit_test(test_netdev),    cmocka_unit_test(test_self),
        cmocka_unit_test(test_mounts),    cmocka_unit_test(test_derive),
        cmocka_unit_test(test_live_proc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
