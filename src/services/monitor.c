/* monitor.c: the monitor service (system.NODE.monitor.*): a one-second sampling timer whose
 * procfs reads run on the libuv thread pool, the status answered from the latest sample, history
 * queued into monitor_history.c, alert rules (alert.c) evaluated on every sample, and their
 * events kept in a bounded ring, logged, handed to the event hook and POSTed to the webhook. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/base.h"
#include "node/log.h"
#include "rpc/rpc.h"
#include "services/alert.h"
#include "services/monitor.h"
#include "services/monitor_history.h"
#include "services/monitor_sample.h"
#include "services/webhook.h"

#define READ_BUF_MAX (256 * 1024) /* largest procfs file read (mounts on big hosts) */

enum { F_STAT, F_MEMINFO, F_LOADAVG, F_UPTIME, F_NETDEV, F_SELF_STAT, F_STATM, F_MOUNTS, F_COUNT };
static const char *const proc_paths[F_COUNT] = {
    "/proc/stat",    "/proc/meminfo",   "/proc/loadavg",    "/proc/uptime",
    "/proc/net/dev", "/proc/self/stat", "/proc/self/statm", "/proc/self/mounts",
};

typedef struct metric_value {
    char name[SVC_HIST_METRIC_MAX + 1];
    double v;
} metric_value_t;

struct svc_monitor {
    node_t *node;
    uv_timer_t timer;
    uv_work_t work;
    bool work_busy, stopping, timer_closed;
    int fds[F_COUNT];
    char *buf; /* READ_BUF_MAX bytes, used by the worker */
    svc_mon_raw_t *raw[2];
    int cur; /* raw[cur] is the latest sample, -1 before the first */
    int read_err;
    uint64_t mounts_next_ms;
    svc_fs_t mounts[SVC_MON_MAX_FS];
    int n_mounts;
    long clk_tck, page_size;
    svc_mon_status_t status;
    bool have_status;
    metric_value_t mv[SVC_MON_MAX_METRICS];
    int n_mv;
    svc_history_t *hist;
    uint64_t next_flush_ms, next_maint_ms;
    svc_alert_rule_t rules[SVC_MAX_ALERT_RULES];
    int n_rules;
    svc_alert_event_t events[SVC_MON_MAX_EVENTS];
    uint64_t next_event_id;
    size_t ev_head, ev_count; /* ring: oldest at ev_head */
    svc_webhook_t *webhook;
    svc_monitor_event_fn hook;
    void *hook_arg;
    int open_parts; /* timer and webhook still closing */
    void (*done)(void *arg);
    void *done_arg;
};

/* --- sampling (thread pool) ---------------------------------------------------------------- */

/* Reads a whole procfs file from an open fd with pread (the kernel regenerates it at offset 0).
 * Returns the length (NUL-terminated) or a negative errno. */
static ssize_t read_fd(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = pread(fd, buf + n, cap - 1 - n, (off_t)n);
        if (r < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return (ssize_t)n;
}

static uint64_t count_processes(void)
{
    DIR *d = opendir("/proc");
    if (!d) return 0;
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 10000000)
        if (e->d_name[0] >= '1' && e->d_name[0] <= '9') n++;
    closedir(d);
    return n;
}

static bool network_fs(const char *type)
{
    static const char *const net[] = {"nfs", "nfs4", "cifs",      "smb3",       "smbfs", "ncpfs",
                                      "afs", "ceph", "glusterfs", "fuse.sshfs", "lustre"};
    for (size_t i = 0; i < P2P_ARRAY_LEN(net); i++)
        if (strcmp(type, net[i]) == 0) return true;
    return false;
}

/* Fills raw from the procfs files; runs on a pool thread, touching only the worker's fields. */
static int read_raw(svc_monitor_t *svc, svc_mon_raw_t *raw)
{
    char *b = svc->buf;
    int rc = 0;
    memset(raw, 0, offsetof(svc_mon_raw_t, stat));
    raw->mono_ms = p2p_mono_ms();
    raw->wall_ms = p2p_wall_ms();
    if (read_fd(svc->fds[F_STAT], b, READ_BUF_MAX) < 0 || svc_parse_proc_stat(b, &raw->stat) < 0)
        rc = -EIO;
    if (read_fd(svc->fds[F_MEMINFO], b, READ_BUF_MAX) < 0 || svc_parse_meminfo(b, &raw->mem) < 0)
        rc = -EIO;
    if (read_fd(svc->fds[F_LOADAVG], b, READ_BUF_MAX) >= 0) svc_parse_loadavg(b, raw->load);
    if (read_fd(svc->fds[F_UPTIME], b, READ_BUF_MAX) >= 0) svc_parse_uptime(b, &raw->uptime_s);
    raw->net.n = 0;
    if (svc->fds[F_NETDEV] >= 0 && read_fd(svc->fds[F_NETDEV], b, READ_BUF_MAX) >= 0)
        svc_parse_netdev(b, &raw->net);
    memset(&raw->self, 0, sizeof(raw->self));
    if (read_fd(svc->fds[F_SELF_STAT], b, READ_BUF_MAX) >= 0) svc_parse_self_stat(b, &raw->self);
    if (read_fd(svc->fds[F_STATM], b, READ_BUF_MAX) >= 0) svc_parse_statm(b, &raw->self);
    if (raw->mono_ms >= svc->mounts_next_ms) {
        svc->mounts_next_ms = raw->mono_ms + SVC_MON_MOUNTS_MS;
        if (read_fd(svc->fds[F_MOUNTS], b, READ_BUF_MAX) >= 0)
            svc->n_mounts = svc_parse_mounts(b, svc->mounts, SVC_MON_MAX_FS);
    }
    raw->n_fs = 0;
    for (int i = 0; i < svc->n_mounts; i++) {
        svc_fs_t *f = &raw->fs[raw->n_fs];
        *f = svc->mounts[i];
        struct statvfs sv;
        if (network_fs(f->type) || statvfs(f->mount, &sv) != 0) continue; /* never hang on NFS */
        uint64_t fr = sv.f_frsize ? sv.f_frsize : sv.f_bsize;
        f->size = (uint64_t)sv.f_blocks * fr;
        f->free = (uint64_t)sv.f_bfree * fr;
        f->available = (uint64_t)sv.f_bavail * fr;
        f->ok = true;
        if (f->size > 0) raw->n_fs++; /* skip empty pseudo mounts */
    }
    raw->processes = count_processes();
    return rc;
}

static void work_cb(uv_work_t *req)
{
    svc_monitor_t *svc = req->data;
    int next = svc->cur < 0 ? 0 : 1 - svc->cur;
    svc->read_err = read_raw(svc, svc->raw[next]);
}

/* --- metrics of one status --------------------------------------------------------------- */

static void add_mv(svc_monitor_t *svc, const char *name, double v)
{
    if (svc->n_mv >= SVC_MON_MAX_METRICS || !isfinite(v)) return;
    metric_value_t *m = &svc->mv[svc->n_mv];
    if (snprintf(m->name, sizeof(m->name), "%s", name) >= (int)sizeof(m->name)) return;
    m->v = v;
    svc->n_mv++;
}

static void build_metrics(svc_monitor_t *svc)
{
    const svc_mon_status_t *s = &svc->status;
    char name[SVC_HIST_METRIC_MAX + 1];
    svc->n_mv = 0;
    add_mv(svc, "cpu.total", s->cpu.total);
    add_mv(svc, "cpu.user", s->cpu.user);
    add_mv(svc, "cpu.system", s->cpu.system);
    add_mv(svc, "cpu.iowait", s->cpu.iowait);
    add_mv(svc, "load.1", s->load[0]);
    add_mv(svc, "load.5", s->load[1]);
    add_mv(svc, "load.15", s->load[2]);
    add_mv(svc, "memory.used_percent", s->mem_percent);
    add_mv(svc, "memory.available", (double)s->mem_available);
    add_mv(svc, "memory.used", (double)s->mem_used);
    add_mv(svc, "swap.used_percent", s->swap_percent);
    add_mv(svc, "network.rx_bytes_per_s", s->rx_bytes_per_s);
    add_mv(svc, "network.tx_bytes_per_s", s->tx_bytes_per_s);
    add_mv(svc, "node.rss", (double)s->node_rss);
    add_mv(svc, "node.cpu", s->node_cpu_percent);
    add_mv(svc, "processes", (double)s->processes);
    for (int i = 0; i < s->n_cores && i < SVC_MON_HISTORY_MAX_CORES; i++) {
        snprintf(name, sizeof(name), "cpu.core.%d", i);
        add_mv(svc, name, s->cores[i]);
    }
    for (int i = 0; i < s->n_fs; i++) {
        if (snprintf(name, sizeof(name), "fs.used_percent:%s", s->fs[i].mount) >= (int)sizeof(name))
            continue;
        add_mv(svc, name, svc_fs_used_percent(&s->fs[i]));
    }
}

static const metric_value_t *find_mv(const svc_monitor_t *svc, const char *name)
{
    for (int i = 0; i < svc->n_mv; i++)
        if (strcmp(svc->mv[i].name, name) == 0) return &svc->mv[i];
    return NULL;
}

/* --- events -------------------------------------------------------------------------------- */

static void webhook_done_cb(void *arg, int status, int attempts, long http_status)
{
    svc_monitor_t *svc = arg;
    char a[16], h[16];
    snprintf(a, sizeof(a), "%d", attempts);
    snprintf(h, sizeof(h), "%ld", http_status);
    if (status == 0)
        node_log(svc->node->log, NODE_LOG_DEBUG, "alert webhook delivered", "#attempts", a,
                 "#http_status", h, NULL);
    else if (status != -ECANCELED)
        node_log(svc->node->log, NODE_LOG_WARNING, "alert webhook failed", "#attempts", a,
                 "#http_status", h, "error", status == -ENOBUFS ? "queue full" : strerror(-status),
                 NULL);
}

static void raise_event(svc_monitor_t *svc, const svc_alert_rule_t *r, bool firing, int64_t now_ms)
{
    size_t slot = (svc->ev_head + svc->ev_count) % SVC_MON_MAX_EVENTS;
    if (svc->ev_count == SVC_MON_MAX_EVENTS)
        svc->ev_head = (svc->ev_head + 1) % SVC_MON_MAX_EVENTS; /* the oldest is overwritten */
    else
        svc->ev_count++;
    svc_alert_event_t *e = &svc->events[slot];
    memset(e, 0, sizeof(*e));
    e->id = ++svc->next_event_id;
    e->time_ms = now_ms;
    e->firing = firing;
    memcpy(e->name, r->name, sizeof(e->name));
    memcpy(e->metric, r->metric, sizeof(e->metric));
    e->value = r->has_value ? r->value : NAN;
    e->threshold = r->threshold;
    e->op = r->op;
    e->severity = r->severity;

    char v[32], t[32];
    snprintf(v, sizeof(v), "%.6g", r->has_value && isfinite(r->value) ? r->value : 0.0);
    snprintf(t, sizeof(t), "%.6g", r->threshold);
    node_log(svc->node->log, firing ? NODE_LOG_WARNING : NODE_LOG_INFO,
             firing ? "alert firing" : "alert resolved", "name", r->name, "metric", r->metric, "op",
             svc_alert_op_name(r->op), "#value", v, "#threshold", t, "severity",
             svc_alert_severity_name(r->severity), NULL);
    svc_alert_db_set_firing(svc->node->db, r->name, firing ? r->since_ms : 0);
    if (!svc->hook && !svc->webhook) return;
    char *json = svc_alert_event_json(e, svc->node->cfg.name);
    if (!json) return;
    if (svc->hook) svc->hook(svc->hook_arg, json);
    if (svc->webhook) svc_webhook_post(svc->webhook, json);
    free(json);
}

static void eval_rules(svc_monitor_t *svc, int64_t now_ms)
{
    for (int i = 0; i < svc->n_rules; i++) {
        svc_alert_rule_t *r = &svc->rules[i];
        const metric_value_t *m = find_mv(svc, r->metric);
        svc_alert_transition_t tr = svc_alert_eval(r, m != NULL, m ? m->v : 0, now_ms);
        if (tr != SVC_ALERT_NONE) raise_event(svc, r, tr == SVC_ALERT_FIRED, now_ms);
    }
}

/* --- the timer ----------------------------------------------------------------------------- */

static void finish_stop(svc_monitor_t *svc);

static void after_work_cb(uv_work_t *req, int status)
{
    svc_monitor_t *svc = req->data;
    svc->work_busy = false;
    if (svc->stopping) {
        finish_stop(svc);
        return;
    }
    if (status < 0 || svc->read_err < 0) return;
    int next = svc->cur < 0 ? 0 : 1 - svc->cur;
    const svc_mon_raw_t *prev = svc->cur < 0 ? NULL : svc->raw[svc->cur];
    svc_mon_derive(prev, svc->raw[next], svc->clk_tck, svc->page_size, &svc->status);
    svc->cur = next;
    svc->have_status = true;
    build_metrics(svc);
    int64_t t = (int64_t)(svc->status.wall_ms / 1000);
    if (prev) /* the first sample has no rates yet: not recorded */
        for (int i = 0; i < svc->n_mv; i++)
            svc_history_add(svc->hist, svc->mv[i].name, t, svc->mv[i].v);
    if (prev) eval_rules(svc, (int64_t)svc->status.wall_ms); /* rates need two samples */

    uint64_t now = uv_now(svc->node->loop);
    if (now >= svc->next_maint_ms) {
        svc->next_maint_ms = now + SVC_MON_MAINT_MS;
        svc->next_flush_ms = now + SVC_MON_FLUSH_MS;
        if (svc_history_maintain(svc->hist, t) < 0)
            node_log(svc->node->log, NODE_LOG_WARNING, "monitor history maintenance failed",
                     "error", sqlite3_errmsg(svc->node->db), NULL);
    } else if (now >= svc->next_flush_ms) {
        svc->next_flush_ms = now + SVC_MON_FLUSH_MS;
        if (svc_history_flush(svc->hist) < 0)
            node_log(svc->node->log, NODE_LOG_WARNING, "monitor history write failed", "error",
                     sqlite3_errmsg(svc->node->db), NULL);
    }
}

static void sample_now(svc_monitor_t *svc)
{
    if (svc->work_busy || svc->stopping) return; /* the previous reading is still running */
    svc->work.data = svc;
    if (uv_queue_work(svc->node->loop, &svc->work, work_cb, after_work_cb) == 0)
        svc->work_busy = true;
}

static void timer_cb(uv_timer_t *t)
{
    sample_now(t->data);
}

/* --- methods ------------------------------------------------------------------------------- */

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* v rounded to 2 decimals (without libm): percents and rates need no more. */
static double round2(double v)
{
    if (!isfinite(v)) return 0;
    if (v > 1e15 || v < -1e15) return v;
    return (double)(long long)(v * 100.0 + (v >= 0 ? 0.5 : -0.5)) / 100.0;
}

static void kv_double(msgpack_packer *pk, const char *k, double v)
{
    pack_str(pk, k);
    msgpack_pack_double(pk, round2(v));
}

static void kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    pack_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static bool no_sample(rpc_call_t *call, svc_monitor_t *svc)
{
    if (svc->have_status) return false;
    rpc_call_error(call, RPC_ERR_UNAVAILABLE, "no sample taken yet; retry in a second");
    return true;
}

static void pack_fs(msgpack_packer *pk, const svc_fs_t *f)
{
    msgpack_pack_map(pk, 7);
    pack_str(pk, "mount");
    pack_str(pk, f->mount);
    pack_str(pk, "device");
    pack_str(pk, f->device);
    pack_str(pk, "type");
    pack_str(pk, f->type);
    kv_u64(pk, "size", f->size);
    kv_u64(pk, "free", f->free);
    kv_u64(pk, "available", f->available);
    kv_double(pk, "used_percent", svc_fs_used_percent(f));
}

static void status_cb(rpc_call_t *call, void *ctx)
{
    svc_monitor_t *svc = ctx;
    if (no_sample(call, svc)) return;
    const svc_mon_status_t *s = &svc->status;
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 11);
    pack_str(pk, "time");
    msgpack_pack_double(pk, (double)s->wall_ms / 1000.0);
    kv_double(pk, "uptime_s", s->uptime_s);
    pack_str(pk, "cpu");
    msgpack_pack_map(pk, 6);
    kv_double(pk, "total_percent", s->cpu.total);
    pack_str(pk, "cores");
    msgpack_pack_array(pk, (size_t)s->n_cores);
    for (int i = 0; i < s->n_cores; i++)
        msgpack_pack_double(pk, round2(s->cores[i]));
    kv_double(pk, "user", s->cpu.user);
    kv_double(pk, "system", s->cpu.system);
    kv_double(pk, "iowait", s->cpu.iowait);
    kv_double(pk, "idle", s->cpu.idle);
    pack_str(pk, "load");
    msgpack_pack_array(pk, 3);
    for (int i = 0; i < 3; i++)
        msgpack_pack_double(pk, s->load[i]);
    pack_str(pk, "memory");
    msgpack_pack_map(pk, 7);
    kv_u64(pk, "total", s->mem_total);
    kv_u64(pk, "available", s->mem_available);
    kv_u64(pk, "used", s->mem_used);
    kv_u64(pk, "free", s->mem_free);
    kv_u64(pk, "buffers", s->mem_buffers);
    kv_u64(pk, "cached", s->mem_cached);
    kv_double(pk, "percent", s->mem_percent);
    pack_str(pk, "swap");
    msgpack_pack_map(pk, 4);
    kv_u64(pk, "total", s->swap_total);
    kv_u64(pk, "used", s->swap_used);
    kv_u64(pk, "free", s->swap_free);
    kv_double(pk, "percent", s->swap_percent);
    pack_str(pk, "filesystems");
    msgpack_pack_array(pk, (size_t)s->n_fs);
    for (int i = 0; i < s->n_fs; i++)
        pack_fs(pk, &s->fs[i]);
    pack_str(pk, "network");
    msgpack_pack_map(pk, 3);
    kv_double(pk, "rx_bytes_per_s", s->rx_bytes_per_s);
    kv_double(pk, "tx_bytes_per_s", s->tx_bytes_per_s);
    pack_str(pk, "interfaces");
    msgpack_pack_map(pk, (size_t)s->n_ifaces);
    for (int i = 0; i < s->n_ifaces; i++) {
        pack_str(pk, s->if_name[i]);
        msgpack_pack_map(pk, 2);
        kv_double(pk, "rx_bytes_per_s", s->if_rx[i]);
        kv_double(pk, "tx_bytes_per_s", s->if_tx[i]);
    }
    kv_u64(pk, "processes", s->processes);
    pack_str(pk, "node");
    msgpack_pack_map(pk, 4);
    kv_u64(pk, "pid", (uint64_t)getpid());
    kv_u64(pk, "rss", s->node_rss);
    kv_double(pk, "cpu_percent", s->node_cpu_percent);
    kv_u64(pk, "threads", (uint64_t)(s->node_threads > 0 ? s->node_threads : 0));
    pack_str(pk, "cpu_count");
    msgpack_pack_int(pk, s->n_cores);
    rpc_call_reply(call);
}

/* A fixed metric name's unit and meaning (for monitor.metrics). */
static const struct {
    const char *name, *unit, *what;
} fixed_metrics[] = {
    {"cpu.total", "percent", "CPU busy, all cores"},
    {"cpu.user", "percent", "CPU in user mode (nice included)"},
    {"cpu.system", "percent", "CPU in the kernel (irq and softirq included)"},
    {"cpu.iowait", "percent", "CPU idle waiting for I/O"},
    {"load.1", "", "load average over 1 minute"},
    {"load.5", "", "load average over 5 minutes"},
    {"load.15", "", "load average over 15 minutes"},
    {"memory.used_percent", "percent", "memory in use: (total - available) / total"},
    {"memory.available", "bytes", "memory available without swapping"},
    {"memory.used", "bytes", "total - available"},
    {"swap.used_percent", "percent", "swap in use"},
    {"network.rx_bytes_per_s", "bytes/s", "received, every interface but lo"},
    {"network.tx_bytes_per_s", "bytes/s", "sent, every interface but lo"},
    {"node.rss", "bytes", "this node's resident memory"},
    {"node.cpu", "percent", "this node's CPU (of one core)"},
    {"processes", "", "processes alive"},
};

static void metrics_cb(rpc_call_t *call, void *ctx)
{
    svc_monitor_t *svc = ctx;
    if (no_sample(call, svc)) return;
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_array(pk, (size_t)svc->n_mv);
    for (int i = 0; i < svc->n_mv; i++) {
        const char *name = svc->mv[i].name, *unit = "percent", *what = "";
        for (size_t k = 0; k < P2P_ARRAY_LEN(fixed_metrics); k++)
            if (strcmp(fixed_metrics[k].name, name) == 0) {
                unit = fixed_metrics[k].unit;
                what = fixed_metrics[k].what;
            }
        if (strncmp(name, "cpu.core.", 9) == 0) what = "CPU busy, one core";
        if (strncmp(name, "fs.", 3) == 0) what = "filesystem space in use (as df)";
        msgpack_pack_map(pk, 4);
        pack_str(pk, "name");
        pack_str(pk, name);
        pack_str(pk, "unit");
        pack_str(pk, unit);
        pack_str(pk, "description");
        pack_str(pk, what);
        kv_double(pk, "value", svc->mv[i].v);
    }
    rpc_call_reply(call);
}

/* Copies a string argument into dst (NUL-terminated); false when absent or too long. */
static bool arg_str(rpc_call_t *call, const char *name, char *dst, size_t cap)
{
    size_t n;
    const char *s = rpc_call_str(call, name, &n);
    if (!s || n >= cap) return false;
    memcpy(dst, s, n);
    dst[n] = '\0';
    return true;
}

static bool known_metric(svc_monitor_t *svc, const char *m)
{
    return find_mv(svc, m) || svc_history_has_metric(svc->hist, m);
}

static void history_cb(rpc_call_t *call, void *ctx)
{
    svc_monitor_t *svc = ctx;
    char metric[SVC_HIST_METRIC_MAX + 1];
    if (!arg_str(call, "metric", metric, sizeof(metric)) || !known_metric(svc, metric)) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "metric",
                             "unknown metric (see monitor.metrics)");
        return;
    }
    int64_t now = (int64_t)(p2p_wall_ms() / 1000);
    int64_t until = rpc_call_arg(call, "until") ? rpc_call_int(call, "until") : now;
    int64_t since = rpc_call_arg(call, "since") ? rpc_call_int(call, "since") : until - 3600;
    if (since > until) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "since", "since is after until");
        return;
    }
    if (until - since > SVC_MON_MAX_HISTORY_RANGE_S) since = until - SVC_MON_MAX_HISTORY_RANGE_S;
    int64_t step;
    if (rpc_call_arg(call, "step")) {
        step = rpc_call_int(call, "step");
        if (step >= 60 && step % 60 != 0) {
            rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "step",
                                 "a step of 60 s or more must be a multiple of 60");
            return;
        }
    } else { /* the finest step that fits the range in the point limit */
        int64_t span = until - since;
        step = span <= SVC_HIST_MAX_POINTS
                   ? 1
                   : 60 * ((span / 60 + SVC_HIST_MAX_POINTS - 1) / SVC_HIST_MAX_POINTS);
    }
    int64_t *ts = malloc(sizeof(*ts) * SVC_HIST_MAX_POINTS);
    double *vs = malloc(sizeof(*vs) * SVC_HIST_MAX_POINTS);
    bool truncated = false;
    int n = ts && vs ? svc_history_query(svc->hist, metric, since, until, step, ts, vs,
                                         SVC_HIST_MAX_POINTS, &truncated)
                     : -ENOMEM;
    if (n < 0) {
        free(ts);
        free(vs);
        rpc_call_error(call, RPC_ERR_INTERNAL, "history query failed: %s",
                       n == -ENOMEM ? "out of memory" : sqlite3_errmsg(svc->node->db));
        return;
    }
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 4);
    pack_str(pk, "metric");
    pack_str(pk, metric);
    pack_str(pk, "step");
    msgpack_pack_int64(pk, step);
    pack_str(pk, "truncated");
    truncated ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    pack_str(pk, "points");
    msgpack_pack_array(pk, (size_t)n);
    for (int i = 0; i < n; i++) {
        msgpack_pack_array(pk, 2);
        msgpack_pack_int64(pk, ts[i]);
        msgpack_pack_double(pk, vs[i]);
    }
    free(ts);
    free(vs);
    rpc_call_reply(call);
}

static void pack_rule(msgpack_packer *pk, const svc_alert_rule_t *r)
{
    msgpack_pack_map(pk, 9);
    pack_str(pk, "name");
    pack_str(pk, r->name);
    pack_str(pk, "metric");
    pack_str(pk, r->metric);
    pack_str(pk, "op");
    pack_str(pk, svc_alert_op_name(r->op));
    pack_str(pk, "threshold");
    msgpack_pack_double(pk, r->threshold);
    pack_str(pk, "for_seconds");
    msgpack_pack_int64(pk, r->for_seconds);
    pack_str(pk, "severity");
    pack_str(pk, svc_alert_severity_name(r->severity));
    pack_str(pk, "state");
    pack_str(pk, svc_alert_state_name(r->state));
    pack_str(pk, "since");
    msgpack_pack_double(pk, (double)r->since_ms / 1000.0);
    pack_str(pk, "value");
    if (r->has_value && isfinite(r->value))
        msgpack_pack_double(pk, r->value);
    else
        msgpack_pack_nil(pk);
}

static int find_rule(const svc_monitor_t *svc, const char *name)
{
    for (int i = 0; i < svc->n_rules; i++)
        if (strcmp(svc->rules[i].name, name) == 0) return i;
    return -1;
}

static bool valid_name(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

static void alert_set_cb(rpc_call_t *call, void *ctx)
{
    svc_monitor_t *svc = ctx;
    svc_alert_rule_t r;
    memset(&r, 0, sizeof(r));
    if (!arg_str(call, "name", r.name, sizeof(r.name)) || !valid_name(r.name)) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "name",
                             "name must be 1-"
                             "64 characters of [A-Za-z0-9._-]");
        return;
    }
    if (!arg_str(call, "metric", r.metric, sizeof(r.metric)) || !known_metric(svc, r.metric)) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "metric",
                             "unknown metric (see monitor.metrics)");
        return;
    }
    size_t n;
    const char *s = rpc_call_str(call, "op", &n);
    int op = svc_alert_op_parse(s, n);
    if (op < 0) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "op", "op is one of > >= < <= == !=");
        return;
    }
    s = rpc_call_str(call, "severity", &n);
    int sev = svc_alert_severity_parse(s, n);
    if (sev < 0) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "severity",
                             "severity is info, warning or critical");
        return;
    }
    const msgpack_object *th = rpc_call_arg(call, "threshold");
    if (th->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        r.threshold = (double)th->via.u64;
    else if (th->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        r.threshold = (double)th->via.i64;
    else
        r.threshold = th->via.f64;
    if (!isfinite(r.threshold)) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "threshold", "threshold must be finite");
        return;
    }
    r.op = (svc_alert_op_t)op;
    r.severity = (svc_alert_severity_t)sev;
    r.for_seconds = rpc_call_int(call, "for_seconds");
    int64_t now = (int64_t)p2p_wall_ms();
    r.created_ms = now;
    r.since_ms = now;
    int i = find_rule(svc, r.name);
    if (i >= 0) { /* replaced: keeps its state, so a firing rule resolves if it stops holding */
        r.state = svc->rules[i].state;
        r.since_ms = svc->rules[i].since_ms;
        r.has_value = svc->rules[i].has_value;
        r.value = svc->rules[i].value;
    } else if (svc->n_rules >= SVC_MAX_ALERT_RULES) {
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "at most %d alert rules",
                       SVC_MAX_ALERT_RULES);
        return;
    }
    if (svc_alert_db_put(svc->node->db, &r) < 0) {
        rpc_call_error(call, RPC_ERR_INTERNAL, "cannot save the rule: %s",
                       sqlite3_errmsg(svc->node->db));
        return;
    }
    if (i < 0) i = svc->n_rules++;
    svc->rules[i] = r;
    pack_rule(rpc_call_packer(call), &svc->rules[i]);
    rpc_call_reply(call);
}

static void alert_remove_cb(rpc_call_t *call, void *ctx)
{
    svc_monitor_t *svc = ctx;
    char name[SVC_ALERT_NAME_MAX + 1];
    int i = arg_str(call, "name", name, sizeof(name)) ? find_rule(svc, name) : -1;
    if (i < 0) {
        rpc_call_error_param(call, RPC_ERR_NOT_FOUND, "name", "no alert rule by that name");
        return;
    }
    int rc = svc_alert_db_delete(svc->node->db, name);
    if (rc < 0 && rc != -ENOENT) {
        rpc_call_error(call, RPC_ERR_INTERNAL, "cannot delete the rule: %s",
                       sqlite3_errmsg(svc->node->db));
        return;
    }
    svc_alert_rule_t r = svc->rules[i];
    svc->rules[i] = svc->rules[--svc->n_rules];
    if (r.state == SVC_ALERT_FIRING) raise_event(svc, &r, false, (int64_t)p2p_wall_ms());
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 1);
    pack_str(pk, "removed");
    pack_str(pk, name);
    rpc_call_reply(call);
}

static void alerts_cb(rpc_call_t *call, void *ctx)
{
    svc_monitor_t *svc = ctx;
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_array(pk, (size_t)svc->n_rules);
    for (int i = 0; i < svc->n_rules; i++)
        pack_rule(pk, &svc->rules[i]);
    rpc_call_reply(call);
}

static void events_cb(rpc_call_t *call, void *ctx)
{
    svc_monitor_t *svc = ctx;
    uint64_t since = (uint64_t)rpc_call_int(call, "since_id");
    size_t limit = (size_t)rpc_call_int(call, "limit"), n = 0, first = svc->ev_count;
    for (size_t k = 0; k < svc->ev_count; k++)
        if (svc->events[(svc->ev_head + k) % SVC_MON_MAX_EVENTS].id > since) {
            first = k;
            break;
        }
    n = svc->ev_count - first;
    if (n > limit) n = limit;
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_array(pk, n);
    for (size_t k = first; k < first + n; k++) {
        const svc_alert_event_t *e = &svc->events[(svc->ev_head + k) % SVC_MON_MAX_EVENTS];
        msgpack_pack_map(pk, 9);
        kv_u64(pk, "id", e->id);
        pack_str(pk, "time");
        msgpack_pack_double(pk, (double)e->time_ms / 1000.0);
        pack_str(pk, "type");
        pack_str(pk, e->firing ? "alert.firing" : "alert.resolved");
        pack_str(pk, "name");
        pack_str(pk, e->name);
        pack_str(pk, "metric");
        pack_str(pk, e->metric);
        pack_str(pk, "value");
        if (isfinite(e->value))
            msgpack_pack_double(pk, e->value);
        else
            msgpack_pack_nil(pk);
        pack_str(pk, "threshold");
        msgpack_pack_double(pk, e->threshold);
        pack_str(pk, "op");
        pack_str(pk, svc_alert_op_name(e->op));
        pack_str(pk, "severity");
        pack_str(pk, svc_alert_severity_name(e->severity));
    }
    rpc_call_reply(call);
}

static const rpc_param_t history_params[] = {
    {.name = "metric",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = SVC_HIST_METRIC_MAX,
     .description = "a metric name (monitor.metrics)"},
    {.name = "since",
     .types = RPC_T_INT,
     .range = true,
     .min = 0,
     .max = INT64_C(1) << 40,
     .description = "unix seconds, default until - 3600"},
    {.name = "until",
     .types = RPC_T_INT,
     .range = true,
     .min = 0,
     .max = INT64_C(1) << 40,
     .description = "unix seconds, default now"},
    {.name = "step",
     .types = RPC_T_INT,
     .range = true,
     .min = 1,
     .max = SVC_MON_MAX_HISTORY_RANGE_S,
     .description = "bucket in seconds (averaged): 1..59, or a multiple of 60; default: the "
                    "finest that fits 3600 points"},
};

static const rpc_param_t alert_set_params[] = {
    {.name = "name",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = SVC_ALERT_NAME_MAX,
     .description = "rule name [A-Za-z0-9._-]"},
    {.name = "metric",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = SVC_ALERT_METRIC_MAX,
     .description = "a metric name (monitor.metrics)"},
    {.name = "op",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = 2,
     .description = "> >= < <= == !="},
    {.name = "threshold",
     .types = RPC_T_INT | RPC_T_FLOAT,
     .required = true,
     .description = "the value compared with"},
    {.name = "for_seconds",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = 0,
     .range = true,
     .min = 0,
     .max = SVC_ALERT_MAX_FOR_S,
     .description = "how long the condition must hold before firing"},
    {.name = "severity",
     .types = RPC_T_STRING,
     .has_default = true,
     .def_str = "warning",
     .range = true,
     .min = 1,
     .max = 16,
     .description = "info, warning or critical"},
};

static const rpc_param_t alert_remove_params[] = {
    {.name = "name",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = SVC_ALERT_NAME_MAX,
     .description = "rule name"},
};

static const rpc_param_t events_params[] = {
    {.name = "since_id",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = 0,
     .range = true,
     .min = 0,
     .max = INT64_MAX,
     .description = "only events with a larger id"},
    {.name = "limit",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = SVC_MON_MAX_EVENTS,
     .range = true,
     .min = 1,
     .max = SVC_MON_MAX_EVENTS,
     .description = "events at most (oldest first)"},
};

static int register_methods(svc_monitor_t *svc)
{
    const rpc_method_t methods[] = {
        {.name = "monitor.status",
         .role = RPC_ROLE_VIEWER,
         .handler = status_cb,
         .description = "CPU, load, memory, swap, filesystems, network rates, processes, this "
                        "node (latest 1 s sample)."},
        {.name = "monitor.metrics",
         .role = RPC_ROLE_VIEWER,
         .handler = metrics_cb,
         .description = "The metric names history and alerts accept, with unit and value now."},
        {.name = "monitor.history",
         .role = RPC_ROLE_VIEWER,
         .handler = history_cb,
         .params = history_params,
         .n_params = P2P_ARRAY_LEN(history_params),
         .description =
             "A metric's points [t, value] averaged per step (1 s kept 1 h, 1 min 7 d)."},
        {.name = "monitor.alert_set",
         .role = RPC_ROLE_OPERATOR,
         .handler = alert_set_cb,
         .params = alert_set_params,
         .n_params = P2P_ARRAY_LEN(alert_set_params),
         .changes = true,
         .description = "Creates or replaces an alert rule on a metric."},
        {.name = "monitor.alert_remove",
         .role = RPC_ROLE_OPERATOR,
         .handler = alert_remove_cb,
         .params = alert_remove_params,
         .n_params = P2P_ARRAY_LEN(alert_remove_params),
         .changes = true,
         .description = "Removes an alert rule (a firing one resolves)."},
        {.name = "monitor.alerts",
         .role = RPC_ROLE_VIEWER,
         .handler = alerts_cb,
         .description = "Alert rules with their state (ok, pending, firing), since and value."},
        {.name = "monitor.events",
         .role = RPC_ROLE_VIEWER,
         .handler = events_cb,
         .params = events_params,
         .n_params = P2P_ARRAY_LEN(events_params),
         .description = "Recent alert events (alert.firing, alert.resolved), oldest first."},
    };
    for (size_t i = 0; i < P2P_ARRAY_LEN(methods); i++) {
        rpc_method_t m = methods[i];
        m.ctx = svc;
        int rc = rpc_registry_add(svc->node->reg, &m);
        if (rc < 0) return rc;
    }
    return 0;
}

/* --- lifecycle ----------------------------------------------------------------------------- */

static void free_svc(svc_monitor_t *svc)
{
    for (int i = 0; i < F_COUNT; i++)
        if (svc->fds[i] >= 0) close(svc->fds[i]);
    svc_history_close(svc->hist);
    free(svc->raw[0]);
    free(svc->raw[1]);
    free(svc->buf);
    free(svc);
}

static void part_closed(svc_monitor_t *svc)
{
    if (--svc->open_parts > 0) return;
    void (*done)(void *) = svc->done;
    void *arg = svc->done_arg;
    free_svc(svc);
    if (done) done(arg);
}

static void timer_closed_cb(uv_handle_t *h)
{
    part_closed(h->data);
}

static void webhook_closed_cb(void *arg)
{
    part_closed(arg);
}

/* Runs once no reading is in flight: flushes history, closes the webhook and the timer. */
static void finish_stop(svc_monitor_t *svc)
{
    svc_history_flush(svc->hist);
    svc->open_parts = 1;
    if (svc->webhook) {
        svc->open_parts++;
        svc_webhook_close(svc->webhook, webhook_closed_cb, svc);
        svc->webhook = NULL;
    }
    uv_close((uv_handle_t *)&svc->timer, timer_closed_cb);
}

static void load_rule_cb(void *arg, const svc_alert_rule_t *r)
{
    svc_monitor_t *svc = arg;
    if (svc->n_rules < SVC_MAX_ALERT_RULES) svc->rules[svc->n_rules++] = *r;
}

int svc_monitor_start(node_t *node, svc_monitor_t **out, char *err, size_t errlen)
{
    int rc = -ENOMEM;
    svc_monitor_t *svc = calloc(1, sizeof(*svc));
    if (!svc) goto fail_msg;
    svc->node = node;
    svc->cur = -1;
    for (int i = 0; i < F_COUNT; i++)
        svc->fds[i] = -1;
    svc->buf = malloc(READ_BUF_MAX);
    svc->raw[0] = malloc(sizeof(svc_mon_raw_t));
    svc->raw[1] = malloc(sizeof(svc_mon_raw_t));
    if (!svc->buf || !svc->raw[0] || !svc->raw[1]) goto fail;
    for (int i = 0; i < F_COUNT; i++) {
        svc->fds[i] = open(proc_paths[i], O_RDONLY | O_CLOEXEC);
        if (svc->fds[i] < 0 && i != F_NETDEV) {
            rc = -errno;
            snprintf(err, errlen, "monitor: cannot open %s: %s", proc_paths[i], strerror(-rc));
            goto fail;
        }
    }
    svc->clk_tck = sysconf(_SC_CLK_TCK);
    svc->page_size = sysconf(_SC_PAGESIZE);
    if ((rc = svc_history_open(node->db, &svc->hist)) < 0) {
        snprintf(err, errlen, "monitor: cannot prepare the samples table: %s",
                 sqlite3_errmsg(node->db));
        goto fail;
    }
    if ((rc = svc_alert_db_load(node->db, load_rule_cb, svc)) < 0) {
        snprintf(err, errlen, "monitor: cannot read alert_rules: %s", sqlite3_errmsg(node->db));
        goto fail;
    }
    if (node->cfg.alert_webhook[0]) {
        svc_webhook_config_t wc = {.url = node->cfg.alert_webhook};
        if ((rc = svc_webhook_new(node->loop, &wc, &svc->webhook)) < 0) {
            snprintf(err, errlen, "monitor: cannot set up the alert webhook %s: %s",
                     node->cfg.alert_webhook, strerror(-rc));
            goto fail;
        }
        svc_webhook_on_done(svc->webhook, webhook_done_cb, svc);
    }
    if ((rc = register_methods(svc)) < 0) {
        snprintf(err, errlen, "monitor: cannot register methods: %s", strerror(-rc));
        goto fail_webhook;
    }
    uv_timer_init(node->loop, &svc->timer);
    svc->timer.data = svc;
    uint64_t now = uv_now(node->loop);
    svc->next_flush_ms = now + SVC_MON_FLUSH_MS;
    svc->next_maint_ms = now + SVC_MON_MAINT_MS;
    uv_timer_start(&svc->timer, timer_cb, SVC_MON_INTERVAL_MS, SVC_MON_INTERVAL_MS);
    sample_now(svc); /* a first sample right away, so status answers from the start */
    *out = svc;
    return 0;
fail_webhook:
    if (svc->webhook) {
        /* closing needs the loop; the context is freed by the close callback */
        svc->open_parts = 1;
        svc_webhook_close(svc->webhook, webhook_closed_cb, svc);
        return rc;
    }
fail:
    free_svc(svc);
    return rc;
fail_msg:
    snprintf(err, errlen, "monitor: out of memory");
    return rc;
}

void svc_monitor_stop(svc_monitor_t *svc, void (*done)(void *arg), void *arg)
{
    if (!svc || svc->stopping) return;
    svc->stopping = true;
    svc->done = done;
    svc->done_arg = arg;
    uv_timer_stop(&svc->timer);
    if (!svc->work_busy) finish_stop(svc); /* else after_work_cb finishes */
}

void svc_monitor_on_event(svc_monitor_t *svc, svc_monitor_event_fn fn, void *arg)
{
    svc->hook = fn;
    svc->hook_arg = arg;
}
