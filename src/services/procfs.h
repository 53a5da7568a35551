/* procfs.h: reading processes from /proc for the process domain: a parser for /proc/PID/stat, a
 * cmdline cleaner, one-process reads and a whole-table scan that keeps its buffers, a uid -> user
 * name cache and the CPU samples between scans. A scan touches only PID/stat, PID/cmdline and the
 * PID directory's owner, through one directory fd on /proc (openat), so 1,000 processes take a
 * few milliseconds. One svc_procfs_t is used by one thread at a time (the caller serialises). */
#ifndef P2P_SVC_PROCFS_H
#define P2P_SVC_PROCFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef SVC_PROC_NAME_MAX
#define SVC_PROC_NAME_MAX 64 /* bytes kept of a process name (the kernel's comm is <= 15) */
#endif
#ifndef SVC_PROC_USER_MAX
#define SVC_PROC_USER_MAX 33 /* bytes kept of a user name, NUL included */
#endif
#ifndef SVC_PROC_LIST_CMDLINE
#define SVC_PROC_LIST_CMDLINE 1024 /* bytes of cmdline a scan keeps per process */
#endif
#ifndef SVC_PROC_CMDLINE_BUDGET
#define SVC_PROC_CMDLINE_BUDGET                                                                    \
    (2u * 1024 * 1024) /* cmdline bytes of one scan before the rest                                \
                          are cut to SVC_PROC_CMDLINE_SHORT */
#endif
#ifndef SVC_PROC_CMDLINE_SHORT
#define SVC_PROC_CMDLINE_SHORT 128 /* cmdline bytes per process past the budget */
#endif
#ifndef SVC_PROC_MAX
#define SVC_PROC_MAX 100000 /* processes one scan reads */
#endif
#ifndef SVC_PROC_SCAN_THREADS
#define SVC_PROC_SCAN_THREADS 2 /* threads reading /proc at once in one scan */
#endif
#ifndef SVC_PROC_USER_CACHE
#define SVC_PROC_USER_CACHE 64 /* uid -> name entries remembered */
#endif
#ifndef SVC_PROC_REREAD_MS
#define SVC_PROC_REREAD_MS 2000 /* a process's owner and cmdline are re-read after 2 to 3 s */
#endif
#ifndef SVC_PROC_CPU_MIN_MS
#define SVC_PROC_CPU_MIN_MS 250 /* shortest interval a CPU figure is measured over */
#endif
#ifndef SVC_PROC_CPU_MAX_MS
#define SVC_PROC_CPU_MAX_MS 600000 /* older samples are not "recent": lifetime average instead */
#endif

/* The fields of /proc/PID/stat the services use. */
typedef struct svc_proc_stat {
    int pid, ppid, pgrp, session, tty_nr;
    char state;                   /* one letter: R S D Z T t X I ... */
    char name[SVC_PROC_NAME_MAX]; /* comm, valid UTF-8 (other bytes become '?') */
    uint64_t utime, stime;        /* clock ticks */
    int64_t priority, nice, threads;
    uint64_t starttime;          /* clock ticks after boot */
    uint64_t vsize;              /* bytes */
    int64_t rss;                 /* pages */
    uint64_t arg_start, arg_end; /* the argument area (0 when the kernel hides it) */
} svc_proc_stat_t;

/* One process of a scan (or of svc_procfs_read). */
typedef struct svc_proc_entry {
    svc_proc_stat_t st;
    uint32_t uid;
    uint32_t cmd_off, cmd_len; /* the cmdline in the scan's text (svc_procfs_text) */
    double cpu_percent;        /* of one CPU; see svc_procfs_scan */
    uint64_t rss_bytes;
    uint64_t start_time; /* unix seconds */
    uint64_t read_ms;    /* when uid and cmdline were read (private to procfs.c) */
} svc_proc_entry_t;

typedef struct svc_procfs svc_procfs_t;

/* Parses the text of /proc/PID/stat (len bytes, need not be NUL-terminated). The name is what lies
 * between the first '(' and the last ')', so names holding spaces or parentheses parse. Returns 0
 * or -EINVAL. */
int svc_procfs_parse_stat(const char *buf, size_t len, svc_proc_stat_t *st);

/* Cleans the raw bytes of /proc/PID/cmdline in place: trailing NULs dropped, the other NULs become
 * spaces, invalid UTF-8 bytes become '?'. Returns the new length (buf is then NUL-terminated when
 * cap > the returned length). */
size_t svc_procfs_clean(char *buf, size_t len, size_t cap);

/* Opens /proc (proc_root: NULL = "/proc") and reads the clock tick, page size and boot time.
 * Returns 0 and *out, -ENOMEM or the negative errno of opening. */
int svc_procfs_open(const char *proc_root, svc_procfs_t **out);

/* Closes and frees. NULL ok. */
void svc_procfs_close(svc_procfs_t *fs);

/* Reads every process into the scan table (replacing the previous scan): stat, cmdline (at most
 * SVC_PROC_LIST_CMDLINE bytes each, SVC_PROC_CMDLINE_SHORT once SVC_PROC_CMDLINE_BUDGET bytes are
 * held) and owner. stat is read every time; owner and cmdline are copied from the previous scan
 * when it saw the same process (same pid and start time) less than SVC_PROC_REREAD_MS (plus up to
 * half of it, spread by pid) ago, and read afresh otherwise. cpu_percent: the CPU time used since
 * the previous scan's sample of the same process divided by the time between them (x100, so 100 =
 * one core), when that sample is SVC_PROC_CPU_MIN_MS to SVC_PROC_CPU_MAX_MS old; a scan sooner than
 * SVC_PROC_CPU_MIN_MS after the sample repeats the last figure; without a recent sample, the
 * average over the process's lifetime. Processes that vanish during the scan are skipped. Entries
 * are in pid order. Returns the number of processes, or -ENOMEM (the table is then empty). */
int svc_procfs_scan(svc_procfs_t *fs);

/* The last scan's entries (count in *n) and text. Valid until the next scan or close. */
const svc_proc_entry_t *svc_procfs_entries(const svc_procfs_t *fs, size_t *n);
const char *svc_procfs_text(const svc_procfs_t *fs);

/* The name of uid (cached; the decimal uid when it has none). The pointer is valid until the next
 * svc_procfs_user or scan. */
const char *svc_procfs_user(svc_procfs_t *fs, uint32_t uid);

/* Reads one process: e and its cmdline cleaned into cmd (cap bytes, NUL-terminated; e->cmd_off 0,
 * e->cmd_len its length). cpu_percent: with use_samples, the figure the last scan gave this
 * process when it has one, else (or without use_samples, e.g. while a scan runs on another thread)
 * the lifetime average. Writes nothing into fs. Returns 0, -ENOENT when there is no such process,
 * or another negative errno. */
int svc_procfs_read(const svc_procfs_t *fs, int pid, bool use_samples, svc_proc_entry_t *e,
                    char *cmd, size_t cap);

/* Reads the file /proc/PID/NAME (at most cap - 1 bytes, NUL-terminated). Returns the length or a
 * negative errno. */
int svc_procfs_read_file(const svc_procfs_t *fs, int pid, const char *name, char *buf, size_t cap);

/* readlink of /proc/PID/NAME into buf (NUL-terminated). Returns the length or a negative errno. */
int svc_procfs_readlink(const svc_procfs_t *fs, int pid, const char *name, char *buf, size_t cap);

/* Counts the entries of the directory /proc/PID/NAME ("fd", "task"). Returns the count or a
 * negative errno. */
int svc_procfs_count_dir(const svc_procfs_t *fs, int pid, const char *name);

/* Counts the NUL-separated strings of /proc/PID/NAME ("environ"), reading it in chunks. Returns the
 * count or a negative errno. */
int svc_procfs_count_strings(const svc_procfs_t *fs, int pid, const char *name);

/* The clock ticks per second and the boot time (unix seconds). */
long svc_procfs_hz(const svc_procfs_t *fs);
uint64_t svc_procfs_boot_time(const svc_procfs_t *fs);

#endif
