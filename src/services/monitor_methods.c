/* monitor_methods.c: the monitor service's methods (system.NODE.monitor.status, metrics,
 * history, alert_set, alert_remove, alerts, events) and their registration. They answer from the
 * latest sample, the history store and the alert rules kept by monitor.c. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "rpc/rpc.h"
#include "services/monitor-internal.h"

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
    return svc_mon_find_value(svc, m) || svc_history_has_metric(svc->hist, m);
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
    if (r.state == SVC_ALERT_FIRING) svc_mon_raise_event(svc, &r, false, (int64_t)p2p_wall_ms());
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

int svc_mon_register_methods(svc_monitor_t *svc)
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
