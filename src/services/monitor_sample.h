/* monitor_sample.h: pure parsers of the procfs text the monitor service samples (/proc/stat,
 * /proc/meminfo, /proc/loadavg, /proc/uptime, /proc/net/dev, /proc/self/stat and statm,
 * /proc/self/mounts) into bounded structs, and the derivation of one status (percents and rates)
 * from two consecutive raw samples. No I/O happens here: monitor.c reads the files and calls
 * statvfs, so every function is unit-tested with fixture text. */
#ifndef P2P_SVC_MONITOR_SAMPLE_H
#define P2P_SVC_MONITOR_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef SVC_MON_MAX_CPUS
#define SVC_MON_MAX_CPUS 256 /* per-core lines of /proc/stat kept; more are ignored */
#endif
#ifndef SVC_MON_MAX_IFACES
#define SVC_MON_MAX_IFACES 64 /* interfaces of /proc/net/dev kept; more are ignored */
#endif
#ifndef SVC_MON_MAX_FS
#define SVC_MON_MAX_FS 32 /* real filesystems reported; more are ignored */
#endif
#ifndef SVC_MON_IFNAME_MAX
#define SVC_MON_IFNAME_MAX 16 /* IFNAMSIZ */
#endif
#ifndef SVC_MON_PATH_MAX
#define SVC_MON_PATH_MAX 256 /* longest mount point or device kept; longer ones are skipped */
#endif
#ifndef SVC_MON_FSTYPE_MAX
#define SVC_MON_FSTYPE_MAX 32 /* longest filesystem type name kept */
#endif

/* One "cpu" line of /proc/stat, in clock ticks. */
typedef struct svc_cpu_times {
    uint64_t user, nice, system, idle, iowait, irq, softirq, steal;
} svc_cpu_times_t;

typedef struct svc_proc_stat {
    svc_cpu_times_t total;
    svc_cpu_times_t cores[SVC_MON_MAX_CPUS];
    int n_cores;
    uint64_t procs_running;
} svc_proc_stat_t;

/* /proc/meminfo, in bytes. cached is Cached + SReclaimable (as free(1) and psutil count it). */
typedef struct svc_meminfo {
    uint64_t total, free, available, buffers, cached, swap_total, swap_free;
    bool has_available;
} svc_meminfo_t;

typedef struct svc_iface {
    char name[SVC_MON_IFNAME_MAX];
    uint64_t rx_bytes, tx_bytes;
} svc_iface_t;

typedef struct svc_netdev {
    svc_iface_t ifaces[SVC_MON_MAX_IFACES];
    int n;
} svc_netdev_t;

/* The node process itself: /proc/self/stat and /proc/self/statm. */
typedef struct svc_self {
    uint64_t utime, stime; /* clock ticks */
    int64_t threads;
    uint64_t rss_pages;
} svc_self_t;

/* One mounted real filesystem and its statvfs figures (bytes), filled by the caller. */
typedef struct svc_fs {
    char mount[SVC_MON_PATH_MAX];
    char device[SVC_MON_PATH_MAX];
    char type[SVC_MON_FSTYPE_MAX];
    uint64_t size, free, available;
    bool ok; /* statvfs succeeded */
} svc_fs_t;

/* One raw sample: everything read at one instant. */
typedef struct svc_mon_raw {
    uint64_t mono_ms; /* monotonic time of the reading */
    uint64_t wall_ms; /* wall time of the reading */
    double uptime_s;
    double load[3];
    uint64_t processes; /* processes alive (directories of /proc) */
    svc_proc_stat_t stat;
    svc_meminfo_t mem;
    svc_netdev_t net;
    svc_self_t self;
    svc_fs_t fs[SVC_MON_MAX_FS];
    int n_fs;
} svc_mon_raw_t;

/* CPU figures as percents of the interval. */
typedef struct svc_cpu_pct {
    double total, user, system, iowait, idle;
} svc_cpu_pct_t;

/* The derived status monitor.status answers with (rates between two consecutive samples). */
typedef struct svc_mon_status {
    uint64_t wall_ms;
    double uptime_s;
    svc_cpu_pct_t cpu;
    double cores[SVC_MON_MAX_CPUS]; /* total percent per core */
    int n_cores;
    double load[3];
    uint64_t mem_total, mem_available, mem_used, mem_free, mem_buffers, mem_cached;
    double mem_percent;
    uint64_t swap_total, swap_used, swap_free;
    double swap_percent;
    double rx_bytes_per_s, tx_bytes_per_s; /* every interface but lo */
    double if_rx[SVC_MON_MAX_IFACES], if_tx[SVC_MON_MAX_IFACES];
    char if_name[SVC_MON_MAX_IFACES][SVC_MON_IFNAME_MAX];
    int n_ifaces;
    svc_fs_t fs[SVC_MON_MAX_FS];
    int n_fs;
    uint64_t processes;
    uint64_t node_rss;
    double node_cpu_percent; /* of one core: a busy two-thread process may show 200 */
    int64_t node_threads;
} svc_mon_status_t;

/* Each parser reads NUL-terminated text as the kernel prints it and fills out (zeroed first).
 * Returns 0, or -EINVAL when a line the struct needs is missing or malformed. */
int svc_parse_proc_stat(const char *text, svc_proc_stat_t *out);
int svc_parse_meminfo(const char *text, svc_meminfo_t *out);
int svc_parse_loadavg(const char *text, double load[3]);
int svc_parse_uptime(const char *text, double *uptime_s);
int svc_parse_netdev(const char *text, svc_netdev_t *out);

/* /proc/self/stat (the command name may hold spaces and parentheses) and /proc/self/statm. */
int svc_parse_self_stat(const char *text, svc_self_t *out);
int svc_parse_statm(const char *text, svc_self_t *out);

/* /proc/self/mounts: fills fs[0..max) with the real filesystems (pseudo ones like proc, sysfs,
 * cgroup, devpts are skipped, as is anything mounted under /proc or /sys; tmpfs is kept), octal
 * escapes (\040) decoded, a mount point seen twice kept once (the later mount). statvfs figures
 * are left zero. Returns the count. */
int svc_parse_mounts(const char *text, svc_fs_t *fs, int max);

/* Used space as df shows it: used / (used + available) in percent (0 when statvfs failed). */
double svc_fs_used_percent(const svc_fs_t *f);

/* True when a filesystem type is a pseudo filesystem the monitor does not report. */
bool svc_fs_type_pseudo(const char *type);

/* Derives the status from the current raw sample and the previous one (NULL for the first
 * sample: CPU percents are then averages since boot and rates are 0). clk_tck is
 * sysconf(_SC_CLK_TCK), page_size sysconf(_SC_PAGESIZE). */
void svc_mon_derive(const svc_mon_raw_t *prev, const svc_mon_raw_t *cur, long clk_tck,
                    long page_size, svc_mon_status_t *out);

#endif
