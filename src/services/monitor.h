/* monitor.h: the monitor service's public hooks besides svc_monitor_start/stop (services.h):
 * alert events for the HTTP/WebSocket layer, and the limits of its methods. */
#ifndef P2P_SVC_MONITOR_H
#define P2P_SVC_MONITOR_H

#include "services/services.h"

#ifndef SVC_MON_INTERVAL_MS
#define SVC_MON_INTERVAL_MS 1000 /* sampling period */
#endif
#ifndef SVC_MON_FLUSH_MS
#define SVC_MON_FLUSH_MS 5000 /* queued history samples are written this often */
#endif
#ifndef SVC_MON_MAINT_MS
#define SVC_MON_MAINT_MS 10000 /* history downsampling and retention step period */
#endif
#ifndef SVC_MON_MOUNTS_MS
#define SVC_MON_MOUNTS_MS 10000 /* the mount table is re-read this often */
#endif
#ifndef SVC_MON_MAX_EVENTS
#define SVC_MON_MAX_EVENTS 256 /* alert events kept in memory (a ring) */
#endif
#ifndef SVC_MON_HISTORY_MAX_CORES
#define SVC_MON_HISTORY_MAX_CORES 64 /* cores with a cpu.core.N history series */
#endif
#ifndef SVC_MON_MAX_METRICS
#define SVC_MON_MAX_METRICS 128 /* metrics in one sample (fixed ones + cores + filesystems) */
#endif
#ifndef SVC_MON_MAX_HISTORY_RANGE_S
#define SVC_MON_MAX_HISTORY_RANGE_S 604800 /* since..until span one query may cover: 7 days */
#endif

/* Called with each alert event as one JSON object (see docs/monitor.md), from the loop, right
 * after the event is recorded. json is valid only during the call. */
typedef void (*svc_monitor_event_fn)(void *arg, const char *json);

/* Installs (or with fn NULL removes) the one event hook. */
void svc_monitor_on_event(svc_monitor_t *svc, svc_monitor_event_fn fn, void *arg);

#endif
