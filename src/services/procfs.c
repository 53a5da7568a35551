/* procfs.c: /proc/PID/stat parsing, cmdline cleaning, one-process reads, the whole-table scan with
 * its reusable buffers, CPU samples between scans and the uid -> name cache. See procfs.h. */

#include "services/procfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#define STAT_BUF 2048 /* /proc/PID/stat is a few hundred bytes */

typedef struct svc_procfs svc_procfs_t;

/* One slice of a scan, read on its own thread into its own buffers (kept between scans). */
typedef struct scan_part {
    svc_procfs_t *fs;
    const int *pids;
    size_t n_pids;
    svc_proc_entry_t *entries;
    size_t n, cap;
    char *text;
    size_t text_len, text_cap;
    uint64_t now;
    int rc;
} scan_part_t;

typedef struct sample {
    int pid;
    bool have_cpu;
    uint64_t starttime, ticks, ms;
    double cpu;
} sample_t;

struct svc_procfs {
    int proc_fd;
    long hz, page_size;
    uint64_t boot_time;
    /* the last scan */
    svc_proc_entry_t *entries;
    size_t n, cap;
    char *text;
    size_t text_len, text_cap;
    /* the scan before it (pid order): owners and cmdlines still fresh are copied from it */
    svc_proc_entry_t *prev;
    size_t n_prev, cap_prev;
    char *prev_text;
    size_t prev_text_cap;
    /* CPU samples of the last scan (pid order) and the buffer the next one is built in */
    sample_t *samples, *next;
    size_t n_samples, cap_samples, cap_next;
    /* the scan's pids and its slices */
    int *pids;
    size_t cap_pids;
    scan_part_t parts[SVC_PROC_SCAN_THREADS];
    /* uid -> name */
    struct {
        bool used;
        uint32_t uid;
        char name[SVC_PROC_USER_MAX];
    } users[SVC_PROC_USER_CACHE];
    unsigned user_next;
};

static uint64_t boot_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Length of the valid UTF-8 sequence at s[0..len), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* Replaces NULs by spaces and invalid UTF-8 bytes by '?', in place. */
static void sanitize(char *buf, size_t len)
{
    for (size_t i = 0; i < len;) {
        if (buf[i] == '\0') {
            buf[i++] = ' ';
            continue;
        }
        size_t n = utf8_seq((const unsigned char *)buf + i, len - i);
        if (n == 0) {
            buf[i++] = '?';
            continue;
        }
        i += n;
    }
}

size_t svc_procfs_clean(char *buf, size_t len, size_t cap)
{
    while (len > 0 && buf[len - 1] == '\0')
        len--;
    sanitize(buf, len);
    if (cap > len) buf[len] = '\0';
    return len;
}

/* Parses an unsigned or signed decimal field at *p (skipping one space before it). */
static int field(const char **p, const char *end, int64_t *v)
{
    const char *s = *p;
    if (s < end && *s == ' ') s++;
    bool neg = false;
    if (s < end && *s == '-') neg = true, s++;
    if (s >= end || *s < '0' || *s > '9') return -EINVAL;
    uint64_t x = 0;
    while (s < end && *s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s++ - '0');
        if (x > (UINT64_MAX - d) / 10) return -EINVAL;
        x = x * 10 + d;
    }
    if (s < end && *s != ' ' && *s != '\n') return -EINVAL;
    *v = neg ? -(int64_t)x : (int64_t)x;
    *p = s;
    return 0;
}

int svc_procfs_parse_stat(const char *buf, size_t len, svc_proc_stat_t *st)
{
    memset(st, 0, sizeof(*st));
    const char *end = buf + len, *lp = memchr(buf, '(', len), *rp = NULL;
    if (!lp) return -EINVAL;
    for (const char *q = end; q > lp;)
        if (*--q == ')') {
            rp = q;
            break;
        }
    if (!rp || end - rp < 4 || rp[1] != ' ') return -EINVAL;
    const char *p = buf;
    int64_t v;
    if (field(&p, lp, &v) < 0 || v <= 0 || v > INT32_MAX) return -EINVAL;
    st->pid = (int)v;
    size_t nlen = (size_t)(rp - lp - 1);
    if (nlen >= sizeof(st->name)) nlen = sizeof(st->name) - 1;
    memcpy(st->name, lp + 1, nlen);
    st->name[nlen] = '\0';
    sanitize(st->name, nlen);
    st->state = rp[2];
    p = rp + 3;
    /* fields 4.. (1-based as in proc(5)); keep those of interest */
    int64_t f[50] = {0};
    for (int i = 4; i <= 24; i++)
        if (field(&p, end, &f[i]) < 0) return -EINVAL;
    /* later fields are optional (older kernels, or hidden without ptrace access: then 0) */
    for (int i = 25; i <= 49; i++)
        if (field(&p, end, &f[i]) < 0) break;
    st->ppid = (int)f[4];
    st->pgrp = (int)f[5];
    st->session = (int)f[6];
    st->tty_nr = (int)f[7];
    st->utime = (uint64_t)f[14];
    st->stime = (uint64_t)f[15];
    st->priority = f[18];
    st->nice = f[19];
    st->threads = f[20];
    st->starttime = (uint64_t)f[22];
    st->vsize = (uint64_t)f[23];
    st->rss = f[24];
    st->arg_start = (uint64_t)f[48];
    st->arg_end = (uint64_t)f[49];
    return 0;
}

int svc_procfs_open(const char *proc_root, svc_procfs_t **out)
{
    svc_procfs_t *fs = calloc(1, sizeof(*fs));
    if (!fs) return -ENOMEM;
    fs->proc_fd = open(proc_root ? proc_root : "/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fs->proc_fd < 0) {
        int rc = -errno;
        free(fs);
        return rc;
    }
    fs->hz = sysconf(_SC_CLK_TCK);
    if (fs->hz <= 0) fs->hz = 100;
    fs->page_size = sysconf(_SC_PAGESIZE);
    if (fs->page_size <= 0) fs->page_size = 4096;
    char buf[8192];
    int fd = openat(fs->proc_fd, "stat", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        const char *b = strstr(buf, "\nbtime ");
        if (b) fs->boot_time = strtoull(b + 7, NULL, 10);
    }
    if (fs->boot_time == 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        fs->boot_time = (uint64_t)now.tv_sec - boot_ms() / 1000;
    }
    *out = fs;
    return 0;
}

void svc_procfs_close(svc_procfs_t *fs)
{
    if (!fs) return;
    if (fs->proc_fd >= 0) close(fs->proc_fd);
    free(fs->entries);
    free(fs->text);
    free(fs->prev);
    free(fs->prev_text);
    free(fs->pids);
    for (size_t k = 0; k < SVC_PROC_SCAN_THREADS; k++) {
        free(fs->parts[k].entries);
        free(fs->parts[k].text);
    }
    free(fs->samples);
    free(fs->next);
    free(fs);
}

long svc_procfs_hz(const svc_procfs_t *fs)
{
    return fs->hz;
}

uint64_t svc_procfs_boot_time(const svc_procfs_t *fs)
{
    return fs->boot_time;
}

/* Reads at most cap bytes of /proc/PID/NAME into buf (not terminated). Returns the length or a
 * negative errno. */
static ssize_t read_raw(const svc_procfs_t *fs, const char *pid, const char *name, char *buf,
                        size_t cap)
{
    char path[64];
    snprintf(path, sizeof(path), "%s/%s", pid, name);
    int fd = openat(fs->proc_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -errno;
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int rc = -errno;
            close(fd);
            return rc;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    return (ssize_t)got;
}

static double lifetime_cpu(const svc_procfs_t *fs, const svc_proc_stat_t *st, uint64_t now_ms)
{
    uint64_t start_ms = st->starttime * 1000 / (uint64_t)fs->hz;
    if (now_ms <= start_ms) return 0;
    double used = (double)(st->utime + st->stime) * 1000.0 / (double)fs->hz;
    return used * 100.0 / (double)(now_ms - start_ms);
}

static const sample_t *find_sample(const sample_t *s, size_t n, int pid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s[mid].pid == pid) return &s[mid];
        if (s[mid].pid < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Reads and parses /proc/PID/stat into e (with the derived rss_bytes and start_time). */
static int read_stat(const svc_procfs_t *fs, const char *pidstr, svc_proc_entry_t *e)
{
    char buf[STAT_BUF];
    ssize_t n = read_raw(fs, pidstr, "stat", buf, sizeof(buf));
    if (n < 0) return (int)n;
    if (svc_procfs_parse_stat(buf, (size_t)n, &e->st) < 0) return -EINVAL;
    e->rss_bytes = e->st.rss > 0 ? (uint64_t)e->st.rss * (uint64_t)fs->page_size : 0;
    e->start_time = fs->boot_time + e->st.starttime / (uint64_t)fs->hz;
    return 0;
}

/* Reads the owner and the cmdline (cleaned into cmd, cmdcap bytes with the NUL) of one process. */
static int read_owner_cmdline(const svc_procfs_t *fs, const char *pidstr, svc_proc_entry_t *e,
                              char *cmd, size_t cmdcap, size_t *cmdlen)
{
    struct stat sb;
    if (fstatat(fs->proc_fd, pidstr, &sb, 0) != 0) return -errno;
    e->uid = sb.st_uid;
    ssize_t n = read_raw(fs, pidstr, "cmdline", cmd, cmdcap - 1);
    if (n < 0) n = 0; /* gone meanwhile or unreadable: empty */
    *cmdlen = svc_procfs_clean(cmd, (size_t)n, cmdcap);
    return 0;
}

static const svc_proc_entry_t *find_entry(const svc_proc_entry_t *e, size_t n, int pid)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (e[mid].st.pid == pid) return &e[mid];
        if (e[mid].st.pid < pid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 256;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * size);
    if (!q) return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

/* Computes cpu_percent for every entry of the scan and swaps in the new samples. */
static void update_cpu(svc_procfs_t *fs, uint64_t now_ms)
{
    for (size_t i = 0; i < fs->n; i++) {
        svc_proc_entry_t *e = &fs->entries[i];
        uint64_t ticks = e->st.utime + e->st.stime;
        const sample_t *old = find_sample(fs->samples, fs->n_samples, e->st.pid);
        sample_t *s = &fs->next[i];
        if (old && old->starttime == e->st.starttime && now_ms >= old->ms &&
            now_ms - old->ms <= SVC_PROC_CPU_MAX_MS && ticks >= old->ticks) {
            uint64_t dt = now_ms - old->ms;
            if (dt >= SVC_PROC_CPU_MIN_MS) {
                double used = (double)(ticks - old->ticks) * 1000.0 / (double)fs->hz;
                e->cpu_percent = used * 100.0 / (double)dt;
                *s = (sample_t){e->st.pid, true, e->st.starttime, ticks, now_ms, e->cpu_percent};
            } else {
                *s = *old; /* keep measuring from the older base */
                e->cpu_percent = old->have_cpu ? old->cpu : lifetime_cpu(fs, &e->st, now_ms);
            }
        } else {
            e->cpu_percent = lifetime_cpu(fs, &e->st, now_ms);
            *s = (sample_t){e->st.pid, false, e->st.starttime, ticks, now_ms, 0};
        }
    }
    sample_t *t = fs->samples;
    size_t tc = fs->cap_samples;
    fs->samples = fs->next;
    fs->cap_samples = fs->cap_next;
    fs->n_samples = fs->n;
    fs->next = t;
    fs->cap_next = tc;
}

/* Moves the current table to prev and gives the current one prev's storage (empty). */
static void swap_tables(svc_procfs_t *fs)
{
    svc_proc_entry_t *e = fs->prev;
    size_t cap = fs->cap_prev, tcap = fs->prev_text_cap;
    char *t = fs->prev_text;
    fs->prev = fs->entries;
    fs->n_prev = fs->n;
    fs->cap_prev = fs->cap;
    fs->prev_text = fs->text;
    fs->prev_text_cap = fs->text_cap;
    fs->entries = e;
    fs->cap = cap;
    fs->text = t;
    fs->text_cap = tcap;
    fs->n = 0;
    fs->text_len = 0;
}

/* Fills e's owner and cmdline (into cmd): copied from the previous scan when it saw the same
 * process (pid, start time) running the same program (name and argument area unchanged: an exec
 * moves the argument area) less than SVC_PROC_REREAD_MS (plus a per-pid spread) ago, else read. */
static int owner_cmdline(svc_procfs_t *fs, const char *pidstr, svc_proc_entry_t *e, char *cmd,
                         size_t cmdcap, size_t *len, uint64_t now)
{
    const svc_proc_entry_t *old = find_entry(fs->prev, fs->n_prev, e->st.pid);
    uint64_t ttl = SVC_PROC_REREAD_MS + (uint64_t)(e->st.pid % 32) * (SVC_PROC_REREAD_MS / 64);
    if (old && old->st.starttime == e->st.starttime && old->st.arg_start == e->st.arg_start &&
        old->st.arg_end == e->st.arg_end && strcmp(old->st.name, e->st.name) == 0 &&
        now >= old->read_ms && now - old->read_ms < ttl && old->cmd_len < cmdcap) {
        e->uid = old->uid;
        e->read_ms = old->read_ms;
        memcpy(cmd, fs->prev_text + old->cmd_off, old->cmd_len + 1);
        *len = old->cmd_len;
        return 0;
    }
    e->read_ms = now;
    return read_owner_cmdline(fs, pidstr, e, cmd, cmdcap, len);
}

/* Reads the processes of one part (its slice of pids) into the part's own table and text. Runs
 * on its own thread: reads fs's previous table, writes only the part. */
static void part_run(void *arg)
{
    scan_part_t *p = arg;
    svc_procfs_t *fs = p->fs;
    size_t budget = SVC_PROC_CMDLINE_BUDGET / SVC_PROC_SCAN_THREADS;
    p->n = p->text_len = 0;
    p->rc = grow((void **)&p->entries, &p->cap, p->n_pids ? p->n_pids : 1, sizeof(*p->entries));
    for (size_t i = 0; p->rc == 0 && i < p->n_pids; i++) {
        size_t cap = p->text_len < budget ? SVC_PROC_LIST_CMDLINE : SVC_PROC_CMDLINE_SHORT;
        if ((p->rc = grow((void **)&p->text, &p->text_cap, p->text_len + cap + 1, 1)) < 0) break;
        char pidstr[16];
        snprintf(pidstr, sizeof(pidstr), "%d", p->pids[i]);
        svc_proc_entry_t *e = &p->entries[p->n];
        memset(e, 0, sizeof(*e));
        size_t len = 0;
        if (read_stat(fs, pidstr, e) < 0 ||
            owner_cmdline(fs, pidstr, e, p->text + p->text_len, cap + 1, &len, p->now) < 0)
            continue; /* gone meanwhile */
        e->cmd_off = (uint32_t)p->text_len;
        e->cmd_len = (uint32_t)len;
        p->text_len += len + 1;
        p->n++;
    }
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The pids of /proc, ascending, into fs->pids. Returns the count or a negative errno. */
static int list_pids(svc_procfs_t *fs, size_t *n)
{
    int dfd = openat(fs->proc_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) return -errno;
    DIR *d = fdopendir(dfd);
    if (!d) {
        int rc = -errno;
        close(dfd);
        return rc;
    }
    int rc = 0;
    struct dirent *de;
    *n = 0;
    while ((de = readdir(d)) != NULL && *n < SVC_PROC_MAX) {
        if (de->d_name[0] < '1' || de->d_name[0] > '9') continue;
        if ((rc = grow((void **)&fs->pids, &fs->cap_pids, *n + 1, sizeof(int))) < 0) break;
        fs->pids[(*n)++] = atoi(de->d_name);
    }
    closedir(d);
    qsort(fs->pids, *n, sizeof(int), cmp_int);
    return rc;
}

int svc_procfs_scan(svc_procfs_t *fs)
{
    swap_tables(fs);
    size_t n = 0;
    int rc = list_pids(fs, &n);
    if (rc < 0) return rc;
    /* SVC_PROC_SCAN_THREADS slices, read at once: /proc/PID/stat costs the kernel several us */
    uint64_t now = boot_ms();
    uv_thread_t th[SVC_PROC_SCAN_THREADS];
    bool started[SVC_PROC_SCAN_THREADS] = {false};
    for (size_t k = 0; k < SVC_PROC_SCAN_THREADS; k++) {
        scan_part_t *p = &fs->parts[k];
        p->fs = fs;
        p->now = now;
        p->pids = fs->pids + k * n / SVC_PROC_SCAN_THREADS;
        p->n_pids = (k + 1) * n / SVC_PROC_SCAN_THREADS - k * n / SVC_PROC_SCAN_THREADS;
        if (k > 0 && p->n_pids > 0) started[k] = uv_thread_create(&th[k], part_run, p) == 0;
    }
    part_run(&fs->parts[0]);
    for (size_t k = 1; k < SVC_PROC_SCAN_THREADS; k++) {
        if (started[k])
            uv_thread_join(&th[k]);
        else
            part_run(&fs->parts[k]); /* no thread: read it here */
    }
    /* the parts, in pid order, make the table */
    size_t total = 0, text = 0;
    for (size_t k = 0; k < SVC_PROC_SCAN_THREADS; k++) {
        if (fs->parts[k].rc < 0) rc = fs->parts[k].rc;
        total += fs->parts[k].n;
        text += fs->parts[k].text_len;
    }
    if (rc == 0)
        rc = grow((void **)&fs->entries, &fs->cap, total ? total : 1, sizeof(*fs->entries));
    if (rc == 0) rc = grow((void **)&fs->text, &fs->text_cap, text ? text : 1, 1);
    if (rc == 0) rc = grow((void **)&fs->next, &fs->cap_next, total ? total : 1, sizeof(sample_t));
    if (rc < 0) return rc;
    for (size_t k = 0; k < SVC_PROC_SCAN_THREADS; k++) {
        const scan_part_t *p = &fs->parts[k];
        for (size_t i = 0; i < p->n; i++) {
            svc_proc_entry_t *e = &fs->entries[fs->n++];
            *e = p->entries[i];
            e->cmd_off += (uint32_t)fs->text_len;
        }
        if (p->text_len) memcpy(fs->text + fs->text_len, p->text, p->text_len);
        fs->text_len += p->text_len;
    }
    update_cpu(fs, boot_ms());
    return (int)fs->n;
}

const svc_proc_entry_t *svc_procfs_entries(const svc_procfs_t *fs, size_t *n)
{
    *n = fs->n;
    return fs->entries;
}

const char *svc_procfs_text(const svc_procfs_t *fs)
{
    return fs->text ? fs->text : "";
}

const char *svc_procfs_user(svc_procfs_t *fs, uint32_t uid)
{
    for (size_t i = 0; i < SVC_PROC_USER_CACHE; i++)
        if (fs->users[i].used && fs->users[i].uid == uid) return fs->users[i].name;
    unsigned slot = fs->user_next++ % SVC_PROC_USER_CACHE;
    struct passwd pw, *res = NULL;
    char buf[2048];
    fs->users[slot].used = true;
    fs->users[slot].uid = uid;
    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_name) {
        snprintf(fs->users[slot].name, sizeof(fs->users[slot].name), "%s", res->pw_name);
        sanitize(fs->users[slot].name, strlen(fs->users[slot].name));
    } else {
        snprintf(fs->users[slot].name, sizeof(fs->users[slot].name), "%u", uid);
    }
    return fs->users[slot].name;
}

int svc_procfs_read(const svc_procfs_t *fs, int pid, bool use_samples, svc_proc_entry_t *e,
                    char *cmd, size_t cap)
{
    char pidstr[16];
    if (pid <= 0 || cap < 1) return -EINVAL;
    snprintf(pidstr, sizeof(pidstr), "%d", pid);
    memset(e, 0, sizeof(*e));
    size_t len = 0;
    int rc = read_stat(fs, pidstr, e);
    if (rc == 0) rc = read_owner_cmdline(fs, pidstr, e, cmd, cap, &len);
    if (rc < 0) return rc == -EINVAL || rc == -ESRCH ? -ENOENT : rc;
    if (e->st.pid != pid) return -ENOENT;
    e->cmd_len = (uint32_t)len;
    const sample_t *s = use_samples ? find_sample(fs->samples, fs->n_samples, pid) : NULL;
    if (s && s->have_cpu && s->starttime == e->st.starttime)
        e->cpu_percent = s->cpu;
    else
        e->cpu_percent = lifetime_cpu(fs, &e->st, boot_ms());
    return 0;
}

int svc_procfs_read_file(const svc_procfs_t *fs, int pid, const char *name, char *buf, size_t cap)
{
    char pidstr[16];
    if (cap < 1) return -EINVAL;
    snprintf(pidstr, sizeof(pidstr), "%d", pid);
    ssize_t n = read_raw(fs, pidstr, name, buf, cap - 1);
    if (n < 0) return (int)n;
    buf[n] = '\0';
    return (int)n;
}

int svc_procfs_readlink(const svc_procfs_t *fs, int pid, const char *name, char *buf, size_t cap)
{
    char path[64];
    if (cap < 1) return -EINVAL;
    snprintf(path, sizeof(path), "%d/%s", pid, name);
    ssize_t n = readlinkat(fs->proc_fd, path, buf, cap - 1);
    if (n < 0) return -errno;
    buf[n] = '\0';
    sanitize(buf, (size_t)n);
    return (int)n;
}

int svc_procfs_count_dir(const svc_procfs_t *fs, int pid, const char *name)
{
    char path[64];
    snprintf(path, sizeof(path), "%d/%s", pid, name);
    int fd = openat(fs->proc_fd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -errno;
    DIR *d = fdopendir(fd);
    if (!d) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

int svc_procfs_count_strings(const svc_procfs_t *fs, int pid, const char *name)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "%d/%s", pid, name);
    int fd = openat(fs->proc_fd, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    int count = 0;
    char last = '\0';
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int rc = -errno;
            close(fd);
            return rc;
        }
        if (r == 0) break;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] == '\0') count++;
        last = buf[r - 1];
    }
    close(fd);
    if (last != '\0') count++; /* an unterminated last string */
    return count;
}
