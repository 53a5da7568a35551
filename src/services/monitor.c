/* monitor.c: the monitor service (system.NODE.monitor.*): a one-second sampling timer whose
 * procfs reads run on the libuv thread pool, the metrics of the latest sample, history queued
 * into monitor_history.c, alert rules (alert.c) evaluated on every sample, and their events kept
 * in a bounded ring, logged, handed to the event hook and POSTed to the webhook; start and stop.
 * The methods answering from all this are in monitor_methods.c. */
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
#include "services/monitor-internal.h"

#define READ_BUF_MAX (256 * 1024) /* largest procfs file read (mounts on big hosts) */

static const char *const proc_paths[SVC_MON_F_COUNT] = {
    "/proc/stat",    "/proc/meminfo",   "/proc/loadavg",    "/proc/uptime",
    "/proc/net/dev", "/proc/self/stat", "/proc/self/statm", "/proc/self/mounts",
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
    if (read_fd(svc->fds[SVC_MON_F_STAT], b, READ_BUF_MAX) < 0 ||
        svc_parse_proc_stat(b, &raw->stat) < 0)
        rc = -EIO;
    if (read_fd(svc->fds[SVC_MON_F_MEMINFO], b, READ_BUF_MAX) < 0 ||
        svc_parse_meminfo(b, &raw->mem) < 0)
        rc = -EIO;
    if (read_fd(svc->fds[SVC_MON_F_LOADAVG], b, READ_BUF_MAX) >= 0) svc_parse_loadavg(b, raw->load);
    if (read_fd(svc->fds[SVC_MON_F_UPTIME], b, READ_BUF_MAX) >= 0)
        svc_parse_uptime(b, &raw->uptime_s);
    raw->net.n = 0;
    if (svc->fds[SVC_MON_F_NETDEV] >= 0 &&
        read_fd(svc->fds[SVC_MON_F_NETDEV], b, READ_BUF_MAX) >= 0)
        svc_parse_netdev(b, &raw->net);
    memset(&raw->self, 0, sizeof(raw->self));
    if (read_fd(svc->fds[SVC_MON_F_SELF_STAT], b, READ_BUF_MAX) >= 0)
        svc_parse_self_stat(b, &raw->self);
    if (read_fd(svc->fds[SVC_MON_F_STATM], b, READ_BUF_MAX) >= 0) svc_parse_statm(b, &raw->self);
    if (raw->mono_ms >= svc->mounts_next_ms) {
        svc->mounts_next_ms = raw->mono_ms + SVC_MON_MOUNTS_MS;
        if (read_fd(svc->fds[SVC_MON_F_MOUNTS], b, READ_BUF_MAX) >= 0)
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
    svc_mon_value_t *m = &svc->mv[svc->n_mv];
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

const svc_mon_value_t *svc_mon_find_value(const svc_monitor_t *svc, const char *name)
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

void svc_mon_raise_event(svc_monitor_t *svc, const svc_alert_rule_t *r, bool firing, int64_t now_ms)
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
        const svc_mon_value_t *m = svc_mon_find_value(svc, r->metric);
        svc_alert_transition_t tr = svc_alert_eval(r, m != NULL, m ? m->v : 0, now_ms);
        if (tr != SVC_ALERT_NONE) svc_mon_raise_event(svc, r, tr == SVC_ALERT_FIRED, now_ms);
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
/* --- lifecycle ----------------------------------------------------------------------------- */

static void free_svc(svc_monitor_t *svc)
{
    for (int i = 0; i < SVC_MON_F_COUNT; i++)
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
    for (int i = 0; i < SVC_MON_F_COUNT; i++)
        svc->fds[i] = -1;
    svc->buf = malloc(READ_BUF_MAX);
    svc->raw[0] = malloc(sizeof(svc_mon_raw_t));
    svc->raw[1] = malloc(sizeof(svc_mon_raw_t));
    if (!svc->buf || !svc->raw[0] || !svc->raw[1]) goto fail;
    for (int i = 0; i < SVC_MON_F_COUNT; i++) {
        svc->fds[i] = open(proc_paths[i], O_RDONLY | O_CLOEXEC);
        if (svc->fds[i] < 0 && i != SVC_MON_F_NETDEV) {
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
    if ((rc = svc_mon_register_methods(svc)) < 0) {
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
