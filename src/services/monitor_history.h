/* monitor_history.h: the monitor's samples in SQLite (table `samples`, schema v3 in
 * src/node/store.c): 1 s resolution for the last hour, 1 min averages for 7 days. Samples wait in
 * memory and are written in one transaction every few seconds; a periodic maintenance step
 * downsamples complete minutes and deletes what is past retention, each step bounded in rows.
 * Everything runs on the caller's thread (the loop): every call is short. */
#ifndef P2P_SVC_MONITOR_HISTORY_H
#define P2P_SVC_MONITOR_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sqlite3.h>

#ifndef SVC_HIST_METRIC_MAX
#define SVC_HIST_METRIC_MAX 300 /* longest metric name stored */
#endif
#ifndef SVC_HIST_PENDING_MAX
#define SVC_HIST_PENDING_MAX                                                                       \
    4096 /* samples waiting in memory; a full buffer is flushed at once                            \
          */
#endif
#ifndef SVC_HIST_RAW_KEEP_S
#define SVC_HIST_RAW_KEEP_S 3600 /* 1 s samples are kept this long */
#endif
#ifndef SVC_HIST_MIN_KEEP_S
#define SVC_HIST_MIN_KEEP_S (7 * 86400) /* 1 min averages are kept this long */
#endif
#ifndef SVC_HIST_MAINT_MINUTES
#define SVC_HIST_MAINT_MINUTES 10 /* minutes downsampled at most per maintenance step */
#endif
#ifndef SVC_HIST_DELETE_SPAN_S
#define SVC_HIST_DELETE_SPAN_S 600 /* seconds of expired rows deleted at most per step */
#endif
#ifndef SVC_HIST_MAX_POINTS
#define SVC_HIST_MAX_POINTS 3600 /* points one history query returns at most (the newest) */
#endif

typedef struct svc_history svc_history_t;

/* Creates the store on db (borrowed; it must hold the samples table). Returns 0 and *out, or
 * -ENOMEM / -EIO. */
int svc_history_open(sqlite3 *db, svc_history_t **out);

/* Flushes what waits in memory (errors ignored) and frees. NULL ok. */
void svc_history_close(svc_history_t *h);

/* Queues one 1 s sample (t in unix seconds). Flushes first when the buffer is full. Returns 0,
 * -EINVAL for an overlong name or a non-finite value, or the flush error. */
int svc_history_add(svc_history_t *h, const char *metric, int64_t t, double value);

/* Writes the queued samples in one transaction. Returns the count written or -EIO (the queue is
 * dropped then, so a broken disk never grows memory). */
int svc_history_flush(svc_history_t *h);

/* Number of samples waiting in memory. */
size_t svc_history_pending(const svc_history_t *h);

/* One maintenance step at now_s (unix seconds): flushes, averages up to SVC_HIST_MAINT_MINUTES
 * complete minutes of 1 s samples into 1 min rows, and deletes up to SVC_HIST_DELETE_SPAN_S
 * seconds of rows past each retention, in one transaction. Returns rows changed or -EIO. */
int svc_history_maintain(svc_history_t *h, int64_t now_s);

/* A query: points with since <= t <= until, averaged per step-second bucket (bucket start
 * = t - t % step). step >= 60 must be a multiple of 60 and reads the 1 min rows (plus the 1 s
 * rows of minutes not downsampled yet); a smaller step reads the 1 s rows. At most max points,
 * the newest, in time order. Flushes first. Returns the count written to t_out/v_out, and sets
 * *truncated when older points were left out, or -EINVAL / -EIO. */
int svc_history_query(svc_history_t *h, const char *metric, int64_t since, int64_t until,
                      int64_t step, int64_t *t_out, double *v_out, size_t max, bool *truncated);

/* True when at least one row of metric is stored (either resolution). */
bool svc_history_has_metric(svc_history_t *h, const char *metric);

#endif
