/* metrics_host.c: host metrics under node_exporter's names and process_* of this process, read
 * from procfs (the loadavg, netdev and mounts parsers are the monitor service's). Every collector
 * reads below a proc root so the tests can feed fixtures; see metrics-internal.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "http/metrics-internal.h"
#include "services/monitor_sample.h"

/* Reads proc_root/rel whole (procfs files report size 0: read to EOF) into a malloc'd
 * NUL-terminated buffer. Returns it or NULL with errno set. */
static char *read_file(const char *proc_root, const char *rel, size_t *len)
{
    char path[1024];
    if (snprintf(path, sizeof(path), "%s/%s", proc_root, rel) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    size_t cap = 16384, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            if (cap >= HTTP_METRICS_PROC_FILE_MAX) break; /* the rest is cut */
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb, cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            buf = NULL;
            errno = e;
            break;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    close(fd);
    if (!buf) {
        if (!errno) errno = ENOMEM;
        return NULL;
    }
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

/* The error of the writer, or 0. */
static int done(http_mtext_t *w)
{
    size_t n;
    int err = 0;
    (void)http_mtext_text(w, &n, &err);
    return err;
}

static long clk_tck(void)
{
    long hz = sysconf(_SC_CLK_TCK);
    return hz > 0 ? hz : 100;
}

/* --- loadavg ---------------------------------------------------------------------------- */

int http_host_loadavg(http_mtext_t *w, const char *proc_root)
{
    char *text = read_file(proc_root, "loadavg", NULL);
    if (!text) return -errno;
    double load[3];
    int r = svc_parse_loadavg(text, load);
    free(text);
    if (r < 0) return r;
    static const char *const names[] = {"node_load1", "node_load5", "node_load15"};
    static const char *const helps[] = {"1m load average.", "5m load average.",
                                        "15m load average."};
    for (int i = 0; i < 3; i++) {
        http_mtext_family(w, names[i], HTTP_MT_GAUGE, helps[i]);
        http_mtext_sample(w, NULL, 0, load[i]);
    }
    return done(w);
}

/* --- meminfo ---------------------------------------------------------------------------- */

/* Every "Key: value [kB]" line, named as node_exporter names it: parentheses become an
 * underscore ("Active(anon)" -> "Active_anon"), kB values are bytes with a _bytes suffix. */
int http_host_meminfo(http_mtext_t *w, const char *proc_root)
{
    char *text = read_file(proc_root, "meminfo", NULL);
    if (!text) return -errno;
    int fields = 0;
    for (char *l = text; *l;) {
        char *nl = strchr(l, '\n');
        if (nl) *nl = '\0';
        char *colon = strchr(l, ':');
        char name[HTTP_METRIC_MAX_NAME + 1], help[160];
        size_t klen = colon ? (size_t)(colon - l) : 0;
        if (klen > 0 && klen < 64) {
            char *end;
            unsigned long long v = strtoull(colon + 1, &end, 10);
            bool kb = strstr(end, "kB") != NULL;
            int o = snprintf(name, sizeof(name), "node_memory_");
            for (size_t i = 0; i < klen && o < (int)sizeof(name) - 8; i++)
                if (l[i] == '(')
                    name[o++] = '_';
                else if (l[i] != ')')
                    name[o++] = l[i];
            snprintf(name + o, sizeof(name) - (size_t)o, "%s", kb ? "_bytes" : "");
            snprintf(help, sizeof(help), "Memory information field %.*s.", (int)klen, l);
            if (end != colon + 1 && http_metric_name_ok(name, HTTP_MT_GAUGE)) {
                http_mtext_family(w, name, HTTP_MT_GAUGE, help);
                http_mtext_sample(w, NULL, 0, kb ? (double)v * 1024 : (double)v);
                fields++;
            }
        }
        if (!nl) break;
        l = nl + 1;
    }
    free(text);
    return fields ? done(w) : -EINVAL;
}

/* --- stat: CPU times and the kernel's counters -------------------------------------------- */

static const char *const cpu_modes[] = {"user",   "nice", "system",  "idle",
                                        "iowait", "irq",  "softirq", "steal"};

int http_host_cpu(http_mtext_t *w, const char *proc_root)
{
    char *text = read_file(proc_root, "stat", NULL);
    if (!text) return -errno;
    double hz = (double)clk_tck();
    unsigned long long btime = 0, ctxt = 0, forks = 0, running = 0, blocked = 0;
    int cpus = 0;
    http_mtext_family(w, "node_cpu_seconds_total", HTTP_MT_COUNTER,
                      "Seconds the CPUs spent in each mode.");
    for (char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, "cpu", 3) == 0 && l[3] >= '0' && l[3] <= '9') {
            char *p;
            unsigned long id = strtoul(l + 3, &p, 10);
            char cpu[24];
            snprintf(cpu, sizeof(cpu), "%lu", id);
            for (size_t m = 0; m < P2P_ARRAY_LEN(cpu_modes); m++) {
                char *end;
                unsigned long long ticks = strtoull(p, &end, 10);
                if (end == p) break; /* older kernels print fewer modes */
                p = end;
                http_label_t l2[] = {{"cpu", cpu}, {"mode", cpu_modes[m]}};
                http_mtext_sample(w, l2, 2, (double)ticks / hz);
            }
            cpus++;
        } else {
            sscanf(l, "btime %llu", &btime);
            sscanf(l, "ctxt %llu", &ctxt);
            sscanf(l, "processes %llu", &forks);
            sscanf(l, "procs_running %llu", &running);
            sscanf(l, "procs_blocked %llu", &blocked);
        }
    }
    free(text);
    if (cpus == 0) return -EINVAL;
    http_mtext_family(w, "node_boot_time_seconds", HTTP_MT_GAUGE, "Node boot time, in unixtime.");
    http_mtext_sample_u64(w, NULL, 0, btime);
    http_mtext_family(w, "node_context_switches_total", HTTP_MT_COUNTER,
                      "Total number of context switches.");
    http_mtext_sample_u64(w, NULL, 0, ctxt);
    http_mtext_family(w, "node_forks_total", HTTP_MT_COUNTER, "Total number of forks.");
    http_mtext_sample_u64(w, NULL, 0, forks);
    http_mtext_family(w, "node_procs_running", HTTP_MT_GAUGE,
                      "Number of processes in runnable state.");
    http_mtext_sample_u64(w, NULL, 0, running);
    http_mtext_family(w, "node_procs_blocked", HTTP_MT_GAUGE,
                      "Number of processes blocked waiting for I/O to complete.");
    http_mtext_sample_u64(w, NULL, 0, blocked);
    return done(w);
}

/* --- filesystems ------------------------------------------------------------------------ */

typedef struct fs_stat {
    uint64_t files, files_free;
    bool readonly, error;
} fs_stat_t;

int http_host_filesystem(http_mtext_t *w, const char *proc_root)
{
    char *text = read_file(proc_root, "self/mounts", NULL);
    if (!text) return -errno;
    svc_fs_t *fs = calloc(SVC_MON_MAX_FS, sizeof(*fs));
    fs_stat_t *st = calloc(SVC_MON_MAX_FS, sizeof(*st));
    if (!fs || !st) {
        free(text), free(fs), free(st);
        return -ENOMEM;
    }
    int n = svc_parse_mounts(text, fs, SVC_MON_MAX_FS);
    free(text);
    for (int i = 0; i < n; i++) {
        struct statvfs v;
        if (statvfs(fs[i].mount, &v) != 0) {
            st[i].error = true;
            continue;
        }
        uint64_t bs = v.f_frsize ? v.f_frsize : v.f_bsize;
        fs[i].size = (uint64_t)v.f_blocks * bs;
        fs[i].free = (uint64_t)v.f_bfree * bs;
        fs[i].available = (uint64_t)v.f_bavail * bs;
        st[i].files = v.f_files;
        st[i].files_free = v.f_ffree;
        st[i].readonly = (v.f_flag & ST_RDONLY) != 0;
    }
    static const struct {
        const char *name, *help;
    } fams[] = {
        {"node_filesystem_size_bytes", "Filesystem size in bytes."},
        {"node_filesystem_free_bytes", "Filesystem free space in bytes."},
        {"node_filesystem_avail_bytes", "Filesystem space available to non-root users in bytes."},
        {"node_filesystem_files", "Filesystem total file nodes."},
        {"node_filesystem_files_free", "Filesystem total free file nodes."},
        {"node_filesystem_readonly", "Filesystem read-only status."},
        {"node_filesystem_device_error", "Whether an error occurred while getting statistics."},
    };
    for (size_t f = 0; f < P2P_ARRAY_LEN(fams); f++) {
        http_mtext_family(w, fams[f].name, HTTP_MT_GAUGE, fams[f].help);
        for (int i = 0; i < n; i++) {
            if (st[i].error && f + 1 < P2P_ARRAY_LEN(fams)) continue;
            http_label_t l[] = {
                {"device", fs[i].device}, {"mountpoint", fs[i].mount}, {"fstype", fs[i].type}};
            uint64_t v[] = {fs[i].size,       fs[i].free,     fs[i].available, st[i].files,
                            st[i].files_free, st[i].readonly, st[i].error};
            http_mtext_sample_u64(w, l, 3, v[f]);
        }
    }
    free(fs);
    free(st);
    return done(w);
}

/* --- network interfaces ------------------------------------------------------------------- */

int http_host_netdev(http_mtext_t *w, const char *proc_root)
{
    char *text = read_file(proc_root, "net/dev", NULL);
    if (!text) return -errno;
    svc_netdev_t *nd = malloc(sizeof(*nd));
    int r = nd ? svc_parse_netdev(text, nd) : -ENOMEM;
    free(text);
    if (r < 0) {
        free(nd);
        return r;
    }
    http_mtext_family(w, "node_network_receive_bytes_total", HTTP_MT_COUNTER,
                      "Network device statistic receive_bytes.");
    for (int i = 0; i < nd->n; i++) {
        http_label_t l = {"device", nd->ifaces[i].name};
        http_mtext_sample_u64(w, &l, 1, nd->ifaces[i].rx_bytes);
    }
    http_mtext_family(w, "node_network_transmit_bytes_total", HTTP_MT_COUNTER,
                      "Network device statistic transmit_bytes.");
    for (int i = 0; i < nd->n; i++) {
        http_label_t l = {"device", nd->ifaces[i].name};
        http_mtext_sample_u64(w, &l, 1, nd->ifaces[i].tx_bytes);
    }
    free(nd);
    return done(w);
}

/* --- this process -------------------------------------------------------------------------- */

/* Fields 3.. of /proc/PID/stat after the command name (which may hold spaces and ')'). */
static int stat_fields(char *text, unsigned long long *f, int max)
{
    char *p = strrchr(text, ')');
    if (!p) return -EINVAL;
    p++;
    int n = 0;
    while (n < max) {
        while (*p == ' ')
            p++;
        if (!*p || *p == '\n') break;
        if (n == 0) { /* field 3 is the state letter */
            f[n++] = 0;
            p++;
            continue;
        }
        char *end;
        f[n++] = strtoull(p, &end, 10);
        if (end == p) f[n - 1] = (unsigned long long)strtoll(p, &end, 10);
        if (end == p) return -EINVAL;
        p = end;
    }
    return n;
}

static long long count_dir(const char *proc_root, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", proc_root, rel);
    DIR *d = opendir(path);
    if (!d) return -errno;
    long long n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* The soft "Max open files" of self/limits, or -1 ("unlimited" or absent). */
static double max_fds(const char *proc_root)
{
    char *text = read_file(proc_root, "self/limits", NULL);
    if (!text) return -1;
    double v = -1;
    char *l = strstr(text, "Max open files");
    if (l) {
        char *end;
        l += strlen("Max open files");
        unsigned long long x = strtoull(l, &end, 10);
        if (end != l) v = (double)x;
    }
    free(text);
    return v;
}

int http_host_process(http_mtext_t *w, const char *proc_root)
{
    char *text = read_file(proc_root, "self/stat", NULL);
    if (!text) return -errno;
    unsigned long long f[24] = {0}; /* f[k - 3] is field k */
    int n = stat_fields(text, f, 24);
    free(text);
    if (n < 22) return -EINVAL;
    char *st = read_file(proc_root, "stat", NULL);
    unsigned long long btime = 0;
    for (char *l = st; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (sscanf(l, "btime %llu", &btime) == 1) break;
    free(st);
    double hz = (double)clk_tck();
    long page = sysconf(_SC_PAGESIZE);
    long long fds = count_dir(proc_root, "self/fd");
    double maxf = max_fds(proc_root);
    http_mtext_family(w, "process_cpu_seconds_total", HTTP_MT_COUNTER,
                      "Total user and system CPU time spent in seconds.");
    http_mtext_sample(w, NULL, 0, (double)(f[14 - 3] + f[15 - 3]) / hz);
    http_mtext_family(w, "process_start_time_seconds", HTTP_MT_GAUGE,
                      "Start time of the process since unix epoch in seconds.");
    http_mtext_sample(w, NULL, 0, (double)btime + (double)f[22 - 3] / hz);
    http_mtext_family(w, "process_virtual_memory_bytes", HTTP_MT_GAUGE,
                      "Virtual memory size in bytes.");
    http_mtext_sample_u64(w, NULL, 0, f[23 - 3]);
    http_mtext_family(w, "process_resident_memory_bytes", HTTP_MT_GAUGE,
                      "Resident memory size in bytes.");
    http_mtext_sample_u64(w, NULL, 0, f[24 - 3] * (unsigned long long)(page > 0 ? page : 4096));
    http_mtext_family(w, "process_threads", HTTP_MT_GAUGE, "Threads of the process.");
    http_mtext_sample_u64(w, NULL, 0, f[20 - 3]);
    if (fds >= 0) {
        http_mtext_family(w, "process_open_fds", HTTP_MT_GAUGE, "Number of open file descriptors.");
        http_mtext_sample(w, NULL, 0, (double)fds);
    }
    if (maxf >= 0) {
        http_mtext_family(w, "process_max_fds", HTTP_MT_GAUGE,
                          "Maximum number of open file descriptors.");
        http_mtext_sample(w, NULL, 0, maxf);
    }
    return fds < 0 ? (int)fds : done(w);
}

/* --- the table ----------------------------------------------------------------------------- */

const http_host_collector_t *http_host_collectors(size_t *n)
{
    static const http_host_collector_t table[] = {
        {"loadavg", http_host_loadavg}, {"meminfo", http_host_meminfo},
        {"cpu", http_host_cpu},         {"filesystem", http_host_filesystem},
        {"netdev", http_host_netdev},   {"process", http_host_process},
    };
    *n = P2P_ARRAY_LEN(table);
    return table;
}
