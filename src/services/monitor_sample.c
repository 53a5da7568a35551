/* monitor_sample.c: pure parsers of procfs text into the bounded structs of monitor_sample.h, and
 * the derivation of percents and rates from two consecutive raw samples. No I/O, no clock. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "services/monitor_sample.h"

/* Parses an unsigned decimal at *p (after spaces); advances *p. False when no digit is there. */
static bool next_u64(const char **p, uint64_t *v)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9') return false;
    uint64_t x = 0;
    while (*s >= '0' && *s <= '9') {
        x = x * 10 + (uint64_t)(*s - '0');
        s++;
    }
    *v = x;
    *p = s;
    return true;
}

static bool next_i64(const char **p, int64_t *v)
{
    const char *s = *p;
    while (*s == ' ' || *s == '\t')
        s++;
    bool neg = *s == '-';
    if (neg) s++;
    uint64_t u;
    if (!next_u64(&s, &u)) return false;
    *v = neg ? -(int64_t)u : (int64_t)u;
    *p = s;
    return true;
}

static bool next_double(const char **p, double *v)
{
    char *end;
    double d = strtod(*p, &end);
    if (end == *p) return false;
    *v = d;
    *p = end;
    return true;
}

static const char *next_line(const char *s)
{
    const char *nl = strchr(s, '\n');
    return nl ? nl + 1 : NULL;
}

/* Reads up to 8 tick counters of a cpu line (older kernels print fewer: missing ones stay 0). */
static bool parse_cpu_times(const char *p, svc_cpu_times_t *t)
{
    uint64_t v[8] = {0};
    int n = 0;
    while (n < 8 && next_u64(&p, &v[n]))
        n++;
    if (n < 4) return false;
    t->user = v[0];
    t->nice = v[1];
    t->system = v[2];
    t->idle = v[3];
    t->iowait = v[4];
    t->irq = v[5];
    t->softirq = v[6];
    t->steal = v[7];
    return true;
}

int svc_parse_proc_stat(const char *text, svc_proc_stat_t *out)
{
    memset(out, 0, sizeof(*out));
    bool have_total = false;
    for (const char *l = text; l && *l; l = next_line(l)) {
        if (strncmp(l, "cpu ", 4) == 0) {
            if (!parse_cpu_times(l + 4, &out->total)) return -EINVAL;
            have_total = true;
        } else if (strncmp(l, "cpu", 3) == 0 && l[3] >= '0' && l[3] <= '9') {
            const char *p = l + 3;
            uint64_t idx;
            if (!next_u64(&p, &idx)) return -EINVAL;
            if (out->n_cores >= SVC_MON_MAX_CPUS) continue;
            if (!parse_cpu_times(p, &out->cores[out->n_cores])) return -EINVAL;
            out->n_cores++;
        } else if (strncmp(l, "procs_running ", 14) == 0) {
            const char *p = l + 14;
            if (!next_u64(&p, &out->procs_running)) return -EINVAL;
        }
    }
    return have_total ? 0 : -EINVAL;
}

int svc_parse_meminfo(const char *text, svc_meminfo_t *out)
{
    static const struct {
        const char *key;
        size_t off;
    } keys[] = {
        {"MemTotal:", offsetof(svc_meminfo_t, total)},
        {"MemFree:", offsetof(svc_meminfo_t, free)},
        {"MemAvailable:", offsetof(svc_meminfo_t, available)},
        {"Buffers:", offsetof(svc_meminfo_t, buffers)},
        {"Cached:", offsetof(svc_meminfo_t, cached)},
        {"SwapTotal:", offsetof(svc_meminfo_t, swap_total)},
        {"SwapFree:", offsetof(svc_meminfo_t, swap_free)},
    };
    memset(out, 0, sizeof(*out));
    uint64_t sreclaimable = 0;
    bool have_total = false, have_free = false;
    for (const char *l = text; l && *l; l = next_line(l)) {
        uint64_t *dst = NULL;
        const char *p = NULL;
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
            size_t kl = strlen(keys[i].key);
            if (strncmp(l, keys[i].key, kl) == 0) {
                dst = (uint64_t *)((char *)out + keys[i].off);
                p = l + kl;
                if (i == 0) have_total = true;
                if (i == 1) have_free = true;
                if (i == 2) out->has_available = true;
                break;
            }
        }
        if (!dst && strncmp(l, "SReclaimable:", 13) == 0) {
            dst = &sreclaimable;
            p = l + 13;
        }
        if (!dst) continue;
        uint64_t v;
        if (!next_u64(&p, &v)) return -EINVAL;
        while (*p == ' ')
            p++;
        *dst = strncmp(p, "kB", 2) == 0 ? v * 1024 : v;
    }
    if (!have_total || !have_free) return -EINVAL;
    out->cached += sreclaimable;
    if (!out->has_available) /* kernels before 3.14: an estimate */
        out->available = out->free + out->buffers + out->cached;
    return 0;
}

int svc_parse_loadavg(const char *text, double load[3])
{
    const char *p = text;
    for (int i = 0; i < 3; i++)
        if (!next_double(&p, &load[i])) return -EINVAL;
    return 0;
}

int svc_parse_uptime(const char *text, double *uptime_s)
{
    const char *p = text;
    return next_double(&p, uptime_s) ? 0 : -EINVAL;
}

int svc_parse_netdev(const char *text, svc_netdev_t *out)
{
    memset(out, 0, sizeof(*out));
    for (const char *l = text; l && *l; l = next_line(l)) {
        const char *colon = strchr(l, ':');
        const char *nl = strchr(l, '\n');
        if (!colon || (nl && colon > nl)) continue; /* the two header lines */
        const char *s = l;
        while (*s == ' ')
            s++;
        size_t n = (size_t)(colon - s);
        if (n == 0 || n >= SVC_MON_IFNAME_MAX || out->n >= SVC_MON_MAX_IFACES) continue;
        svc_iface_t *f = &out->ifaces[out->n];
        memcpy(f->name, s, n);
        f->name[n] = '\0';
        const char *p = colon + 1;
        uint64_t v[9];
        for (int i = 0; i < 9; i++)
            if (!next_u64(&p, &v[i])) return -EINVAL;
        f->rx_bytes = v[0];
        f->tx_bytes = v[8];
        out->n++;
    }
    return 0;
}

int svc_parse_self_stat(const char *text, svc_self_t *out)
{
    const char *p = strrchr(text, ')'); /* the name may hold ") " itself */
    if (!p) return -EINVAL;
    p++;
    while (*p == ' ')
        p++;
    if (!*p) return -EINVAL;
    p++; /* field 3: state */
    /* fields 4..20: ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
     * cutime cstime priority nice num_threads */
    int64_t f[17];
    for (int i = 0; i < 17; i++)
        if (!next_i64(&p, &f[i])) return -EINVAL;
    out->utime = (uint64_t)f[10];
    out->stime = (uint64_t)f[11];
    out->threads = f[16];
    return 0;
}

int svc_parse_statm(const char *text, svc_self_t *out)
{
    const char *p = text;
    uint64_t size;
    if (!next_u64(&p, &size) || !next_u64(&p, &out->rss_pages)) return -EINVAL;
    return 0;
}

bool svc_fs_type_pseudo(const char *type)
{
    static const char *const pseudo[] = {
        "proc",        "sysfs",       "cgroup",   "cgroup2",    "devpts",
        "devtmpfs",    "mqueue",      "debugfs",  "tracefs",    "securityfs",
        "pstore",      "bpf",         "configfs", "fusectl",    "hugetlbfs",
        "autofs",      "binfmt_misc", "nsfs",     "rpc_pipefs", "efivarfs",
        "selinuxfs",   "ramfs",       "nfsd",     "rootfs",     "fuse.gvfsd-fuse",
        "fuse.portal",
    };
    for (size_t i = 0; i < sizeof(pseudo) / sizeof(pseudo[0]); i++)
        if (strcmp(type, pseudo[i]) == 0) return true;
    return false;
}

/* Copies one space-separated field of a mounts line, decoding \ooo escapes. Returns the position
 * after the field, or NULL when the field is missing or does not fit. */
static const char *mount_field(const char *p, char *dst, size_t cap)
{
    while (*p == ' ')
        p++;
    size_t n = 0;
    while (*p && *p != ' ' && *p != '\n') {
        char c = *p;
        if (c == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
            p[3] <= '7') {
            c = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        }
        if (n + 1 >= cap) return NULL;
        dst[n++] = c;
        p++;
    }
    if (n == 0) return NULL;
    dst[n] = '\0';
    return p;
}

static bool under(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

int svc_parse_mounts(const char *text, svc_fs_t *fs, int max)
{
    int n = 0;
    for (const char *l = text; l && *l; l = next_line(l)) {
        svc_fs_t f;
        memset(&f, 0, sizeof(f));
        const char *p = mount_field(l, f.device, sizeof(f.device));
        if (p) p = mount_field(p, f.mount, sizeof(f.mount));
        if (p) p = mount_field(p, f.type, sizeof(f.type));
        if (!p || f.mount[0] != '/') continue;
        if (svc_fs_type_pseudo(f.type) || under(f.mount, "/proc") || under(f.mount, "/sys"))
            continue;
        int i;
        for (i = 0; i < n; i++)
            if (strcmp(fs[i].mount, f.mount) == 0) break;
        if (i < n) {
            fs[i] = f; /* mounted over: the later one is what the path shows */
            continue;
        }
        if (n >= max) continue;
        fs[n++] = f;
    }
    return n;
}

double svc_fs_used_percent(const svc_fs_t *f)
{
    if (!f->ok || f->size == 0) return 0;
    uint64_t used = f->size > f->free ? f->size - f->free : 0;
    double denom = (double)used + (double)f->available; /* as df: reserved blocks excluded */
    return denom > 0 ? 100.0 * (double)used / denom : 0;
}

static uint64_t busy_ticks(const svc_cpu_times_t *t)
{
    return t->user + t->nice + t->system + t->irq + t->softirq + t->steal;
}

static uint64_t all_ticks(const svc_cpu_times_t *t)
{
    return busy_ticks(t) + t->idle + t->iowait;
}

static uint64_t sub0(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0; /* counters may go back (CPU hot-unplug, wrap): never negative */
}

static double pct(double part, double whole)
{
    if (whole <= 0) return 0;
    double v = 100.0 * part / whole;
    return v < 0 ? 0 : v > 100 ? 100 : v;
}

static void cpu_pct(const svc_cpu_times_t *a, const svc_cpu_times_t *b, svc_cpu_pct_t *out)
{
    static const svc_cpu_times_t zero;
    if (!a) a = &zero;
    double all = (double)sub0(all_ticks(b), all_ticks(a));
    out->total = pct((double)sub0(busy_ticks(b), busy_ticks(a)), all);
    out->user = pct((double)sub0(b->user + b->nice, a->user + a->nice), all);
    out->system =
        pct((double)sub0(b->system + b->irq + b->softirq, a->system + a->irq + a->softirq), all);
    out->iowait = pct((double)sub0(b->iowait, a->iowait), all);
    out->idle = pct((double)sub0(b->idle, a->idle), all);
}

static const svc_iface_t *find_iface(const svc_netdev_t *n, const char *name)
{
    for (int i = 0; i < n->n; i++)
        if (strcmp(n->ifaces[i].name, name) == 0) return &n->ifaces[i];
    return NULL;
}

static void derive_net(const svc_mon_raw_t *prev, const svc_mon_raw_t *cur, double dt,
                       svc_mon_status_t *out)
{
    out->n_ifaces = cur->net.n;
    for (int i = 0; i < cur->net.n; i++) {
        const svc_iface_t *c = &cur->net.ifaces[i];
        const svc_iface_t *p = prev ? find_iface(&prev->net, c->name) : NULL;
        memcpy(out->if_name[i], c->name, sizeof(out->if_name[i]));
        out->if_rx[i] = p && dt > 0 ? (double)sub0(c->rx_bytes, p->rx_bytes) / dt : 0;
        out->if_tx[i] = p && dt > 0 ? (double)sub0(c->tx_bytes, p->tx_bytes) / dt : 0;
        if (strcmp(c->name, "lo") != 0) {
            out->rx_bytes_per_s += out->if_rx[i];
            out->tx_bytes_per_s += out->if_tx[i];
        }
    }
}

void svc_mon_derive(const svc_mon_raw_t *prev, const svc_mon_raw_t *cur, long clk_tck,
                    long page_size, svc_mon_status_t *out)
{
    memset(out, 0, sizeof(*out));
    double dt =
        prev && cur->mono_ms > prev->mono_ms ? (double)(cur->mono_ms - prev->mono_ms) / 1000.0 : 0;
    out->wall_ms = cur->wall_ms;
    out->uptime_s = cur->uptime_s;
    cpu_pct(prev ? &prev->stat.total : NULL, &cur->stat.total, &out->cpu);
    out->n_cores = cur->stat.n_cores;
    for (int i = 0; i < cur->stat.n_cores; i++) {
        svc_cpu_pct_t c;
        bool same = prev && i < prev->stat.n_cores;
        cpu_pct(same ? &prev->stat.cores[i] : NULL, &cur->stat.cores[i], &c);
        out->cores[i] = c.total;
    }
    memcpy(out->load, cur->load, sizeof(out->load));

    const svc_meminfo_t *m = &cur->mem;
    out->mem_total = m->total;
    out->mem_available = m->available < m->total ? m->available : m->total;
    out->mem_used = m->total - out->mem_available;
    out->mem_free = m->free;
    out->mem_buffers = m->buffers;
    out->mem_cached = m->cached;
    out->mem_percent = pct((double)out->mem_used, (double)m->total);
    out->swap_total = m->swap_total;
    out->swap_free = m->swap_free < m->swap_total ? m->swap_free : m->swap_total;
    out->swap_used = m->swap_total - out->swap_free;
    out->swap_percent = pct((double)out->swap_used, (double)m->swap_total);

    derive_net(prev, cur, dt, out);
    out->n_fs = cur->n_fs;
    memcpy(out->fs, cur->fs, sizeof(out->fs[0]) * (size_t)cur->n_fs);
    out->processes = cur->processes;

    out->node_rss = cur->self.rss_pages * (uint64_t)(page_size > 0 ? page_size : 4096);
    out->node_threads = cur->self.threads;
    if (prev && dt > 0 && clk_tck > 0) {
        uint64_t ticks =
            sub0(cur->self.utime + cur->self.stime, prev->self.utime + prev->self.stime);
        out->node_cpu_percent = 100.0 * (double)ticks / (double)clk_tck / dt;
    }
}
