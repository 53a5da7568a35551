/* monitor-internal.h: what the two files of the monitor service share (monitor.c: start/stop,
 * sampling on the thread pool, metrics, alert evaluation and events; monitor_methods.c: the
 * system.NODE.monitor.* methods): the procfs files read, the service context, and the few
 * functions one file calls in the other. */
#ifndef P2P_SVC_MONITOR_INTERNAL_H
#define P2P_SVC_MONITOR_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "services/alert.h"
#include "services/monitor.h"
#include "services/monitor_history.h"
#include "services/monitor_sample.h"
#include "services/webhook.h"

/* The procfs files kept open for sampling (their paths are in monitor.c). */
enum svc_mon_file {
    SVC_MON_F_STAT,
    SVC_MON_F_MEMINFO,
    SVC_MON_F_LOADAVG,
    SVC_MON_F_UPTIME,
    SVC_MON_F_NETDEV,
    SVC_MON_F_SELF_STAT,
    SVC_MON_F_STATM,
    SVC_MON_F_MOUNTS,
    SVC_MON_F_COUNT
};

/* One metric's value in the latest sample (what history records and alert rules compare). */
typedef struct svc_mon_value {
    char name[SVC_HIST_METRIC_MAX + 1];
    double v;
} svc_mon_value_t;

struct svc_monitor {
    node_t *node;
    uv_timer_t timer;
    uv_work_t work;
    bool work_busy, stopping, timer_closed;
    int fds[SVC_MON_F_COUNT];
    char *buf; /* the worker's procfs read buffer (monitor.c) */
    svc_mon_raw_t *raw[2];
    int cur; /* raw[cur] is the latest sample, -1 before the first */
    int read_err;
    uint64_t mounts_next_ms;
    svc_fs_t mounts[SVC_MON_MAX_FS];
    int n_mounts;
    long clk_tck, page_size;
    svc_mon_status_t status;
    bool have_status;
    svc_mon_value_t mv[SVC_MON_MAX_METRICS];
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

/* The value of the metric called name in the latest sample, or NULL when it has none (no sample
 * yet, or a metric that is not sampled now). Valid until the next sample. (monitor.c) */
const svc_mon_value_t *svc_mon_find_value(const svc_monitor_t *svc, const char *name);

/* Records an alert event for rule r (firing, or resolved when !firing) at now_ms (unix ms): into
 * the ring of events (the oldest is overwritten when full), the log, the rule's firing time in
 * alert_rules, the event hook and the webhook. Runs on the loop. (monitor.c) */
void svc_mon_raise_event(svc_monitor_t *svc, const svc_alert_rule_t *r, bool firing,
                         int64_t now_ms);

/* Registers the monitor.* methods on svc->node->reg with svc as their context. Returns 0 or the
 * negative errno of rpc_registry_add (methods registered before the failure stay). Called once by
 * svc_monitor_start. (monitor_methods.c) */
int svc_mon_register_methods(svc_monitor_t *svc);

#endif
