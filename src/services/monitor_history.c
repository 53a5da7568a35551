/* monitor_history.c: the monitor's samples in the `samples` table: a bounded in-memory queue
 * written in one transaction, the maintenance step (downsampling complete minutes, retention) and
 * the bucketed query. Every statement is per metric so that it walks the primary key
 * (res, metric, t) instead of scanning the table. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "services/monitor_history.h"

#ifndef SVC_HIST_MAX_METRICS
#define SVC_HIST_MAX_METRICS 512 /* distinct metric names the store tracks */
#endif

typedef struct pending {
    uint32_t metric; /* index in h->metrics */
    int64_t t;
    double v;
} pending_t;

enum { ST_INSERT, ST_DOWNSAMPLE, ST_DEL_RAW, ST_DEL_MIN, ST_MIN_RAW, ST_MAX_MIN, ST_COUNT };

static const char *const sql[ST_COUNT] = {
    [ST_INSERT] = "INSERT OR REPLACE INTO samples (res, metric, t, value) VALUES (1, ?, ?, ?)",
    [ST_DOWNSAMPLE] = "INSERT OR REPLACE INTO samples (res, metric, t, value) "
                      "SELECT 60, metric, t - t % 60, avg(value) FROM samples "
                      "WHERE res = 1 AND metric = ?1 AND t >= ?2 AND t < ?3 GROUP BY t - t % 60",
    [ST_DEL_RAW] = "DELETE FROM samples WHERE res = 1 AND metric = ? AND t < ?",
    [ST_DEL_MIN] = "DELETE FROM samples WHERE res = 60 AND metric = ? AND t < ?",
    [ST_MIN_RAW] = "SELECT min(t) FROM samples WHERE res = 1 AND metric = ? AND t >= ?",
    [ST_MAX_MIN] = "SELECT max(t) FROM samples WHERE res = 60 AND metric = ?",
};

struct svc_history {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    char *metrics[SVC_HIST_MAX_METRICS];
    size_t n_metrics;
    pending_t pending[SVC_HIST_PENDING_MAX];
    size_t n_pending;
    int64_t ds_next; /* first minute (unix s) not downsampled yet; 0 = unknown */
};

static int metric_index(svc_history_t *h, const char *name, bool add)
{
    for (size_t i = 0; i < h->n_metrics; i++)
        if (strcmp(h->metrics[i], name) == 0) return (int)i;
    if (!add) return -ENOENT;
    if (h->n_metrics >= SVC_HIST_MAX_METRICS) return -ENOSPC;
    char *c = strdup(name);
    if (!c) return -ENOMEM;
    h->metrics[h->n_metrics] = c;
    return (int)h->n_metrics++;
}

static int64_t scalar(sqlite3_stmt *st, bool *null)
{
    int64_t v = 0;
    *null = true;
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        v = sqlite3_column_int64(st, 0);
        *null = false;
    }
    sqlite3_reset(st);
    return v;
}

/* The earliest 1 s sample at or after `from` over every metric; false when none. */
static bool min_raw(svc_history_t *h, int64_t from, int64_t *out)
{
    bool found = false;
    for (size_t i = 0; i < h->n_metrics; i++) {
        sqlite3_stmt *st = h->st[ST_MIN_RAW];
        sqlite3_bind_text(st, 1, h->metrics[i], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, from);
        bool null;
        int64_t t = scalar(st, &null);
        if (!null && (!found || t < *out)) {
            *out = t;
            found = true;
        }
    }
    return found;
}

static int load_state(svc_history_t *h)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h->db, "SELECT DISTINCT metric FROM samples", -1, &st, NULL) !=
        SQLITE_OK)
        return -EIO;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *m = (const char *)sqlite3_column_text(st, 0);
        if (m && strlen(m) <= SVC_HIST_METRIC_MAX && metric_index(h, m, true) < 0) break;
    }
    sqlite3_finalize(st);
    int64_t last = 0;
    for (size_t i = 0; i < h->n_metrics; i++) {
        sqlite3_stmt *q = h->st[ST_MAX_MIN];
        sqlite3_bind_text(q, 1, h->metrics[i], -1, SQLITE_STATIC);
        bool null;
        int64_t t = scalar(q, &null);
        if (!null && t + 60 > last) last = t + 60;
    }
    h->ds_next = last;
    return 0;
}

int svc_history_open(sqlite3 *db, svc_history_t **out)
{
    svc_history_t *h = calloc(1, sizeof(*h));
    if (!h) return -ENOMEM;
    h->db = db;
    for (int i = 0; i < ST_COUNT; i++)
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &h->st[i], NULL) !=
            SQLITE_OK)
            goto fail;
    if (load_state(h) < 0) goto fail;
    *out = h;
    return 0;
fail:
    svc_history_close(h);
    return -EIO;
}

void svc_history_close(svc_history_t *h)
{
    if (!h) return;
    if (h->st[ST_INSERT]) svc_history_flush(h);
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(h->st[i]);
    for (size_t i = 0; i < h->n_metrics; i++)
        free(h->metrics[i]);
    free(h);
}

size_t svc_history_pending(const svc_history_t *h)
{
    return h->n_pending;
}

int svc_history_add(svc_history_t *h, const char *metric, int64_t t, double value)
{
    if (!isfinite(value) || strlen(metric) > SVC_HIST_METRIC_MAX || !metric[0]) return -EINVAL;
    if (h->n_pending >= SVC_HIST_PENDING_MAX) {
        int r = svc_history_flush(h);
        if (r < 0) return r;
    }
    int idx = metric_index(h, metric, true);
    if (idx < 0) return idx;
    h->pending[h->n_pending++] = (pending_t){(uint32_t)idx, t, value};
    return 0;
}

static int exec(sqlite3 *db, const char *s)
{
    return sqlite3_exec(db, s, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

/* Inserts the queue inside an open transaction. */
static int write_pending(svc_history_t *h)
{
    sqlite3_stmt *st = h->st[ST_INSERT];
    for (size_t i = 0; i < h->n_pending; i++) {
        const pending_t *p = &h->pending[i];
        sqlite3_bind_text(st, 1, h->metrics[p->metric], -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, p->t);
        sqlite3_bind_double(st, 3, p->v);
        int rc = sqlite3_step(st);
        sqlite3_reset(st);
        if (rc != SQLITE_DONE) return -EIO;
    }
    int n = (int)h->n_pending;
    h->n_pending = 0;
    return n;
}

int svc_history_flush(svc_history_t *h)
{
    if (h->n_pending == 0) return 0;
    if (exec(h->db, "BEGIN IMMEDIATE") < 0) {
        h->n_pending = 0;
        return -EIO;
    }
    int n = write_pending(h);
    if (n < 0 || exec(h->db, "COMMIT") < 0) {
        exec(h->db, "ROLLBACK");
        h->n_pending = 0;
        return -EIO;
    }
    return n;
}

static int run_metric(sqlite3_stmt *st, const char *metric, int64_t a, int64_t b, int nb)
{
    sqlite3_bind_text(st, 1, metric, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, a);
    if (nb > 2) sqlite3_bind_int64(st, 3, b);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Downsamples up to SVC_HIST_MAINT_MINUTES complete minutes (inside the open transaction). */
static int downsample(svc_history_t *h, int64_t now_s, int *changes)
{
    int64_t end = now_s - now_s % 60; /* the current minute is not complete */
    int64_t first = 0;
    if (!min_raw(h, h->ds_next, &first)) {
        if (h->ds_next < end && h->ds_next != 0) h->ds_next = end;
        return 0;
    }
    first -= first % 60;
    if (first >= end) return 0;
    int64_t hi = first + SVC_HIST_MAINT_MINUTES * 60;
    if (hi > end) hi = end;
    for (size_t i = 0; i < h->n_metrics; i++) {
        if (run_metric(h->st[ST_DOWNSAMPLE], h->metrics[i], first, hi, 3) < 0) return -EIO;
        *changes += sqlite3_changes(h->db);
    }
    h->ds_next = hi;
    return 0;
}

int svc_history_maintain(svc_history_t *h, int64_t now_s)
{
    int changes = 0;
    if (exec(h->db, "BEGIN IMMEDIATE") < 0) return -EIO;
    if (write_pending(h) < 0) goto fail;
    if (downsample(h, now_s, &changes) < 0) goto fail;
    int64_t raw_cut = now_s - SVC_HIST_RAW_KEEP_S;
    if (raw_cut > h->ds_next) raw_cut = h->ds_next; /* never lose a minute not averaged yet */
    int64_t min_cut = now_s - SVC_HIST_MIN_KEEP_S;
    for (size_t i = 0; i < h->n_metrics; i++) {
        if (run_metric(h->st[ST_DEL_RAW], h->metrics[i], raw_cut, 0, 2) < 0) goto fail;
        changes += sqlite3_changes(h->db);
        if (run_metric(h->st[ST_DEL_MIN], h->metrics[i], min_cut, 0, 2) < 0) goto fail;
        changes += sqlite3_changes(h->db);
    }
    if (exec(h->db, "COMMIT") < 0) goto fail;
    return changes;
fail:
    exec(h->db, "ROLLBACK");
    h->n_pending = 0;
    return -EIO;
}

bool svc_history_has_metric(svc_history_t *h, const char *metric)
{
    return metric_index(h, metric, false) >= 0;
}

int svc_history_query(svc_history_t *h, const char *metric, int64_t since, int64_t until,
                      int64_t step, int64_t *t_out, double *v_out, size_t max, bool *truncated)
{
    *truncated = false;
    if (step < 1 || (step >= 60 && step % 60 != 0) || max == 0) return -EINVAL;
    if (svc_history_flush(h) < 0) return -EIO;
    const char *q =
        step >= 60
            ? "SELECT t - t % ?4 AS b, avg(v) FROM ("
              "SELECT t, value AS v FROM samples WHERE res = 60 AND metric = ?1 AND t >= ?2 "
              "AND t <= ?3 AND t < ?5 UNION ALL "
              "SELECT t, value FROM samples WHERE res = 1 AND metric = ?1 AND t >= max(?2, ?5) "
              "AND t <= ?3) GROUP BY b ORDER BY b DESC LIMIT ?6"
            : "SELECT t - t % ?4 AS b, avg(value) FROM samples WHERE res = 1 AND metric = ?1 "
              "AND t >= ?2 AND t <= ?3 AND ?5 = ?5 GROUP BY b ORDER BY b DESC LIMIT ?6";
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(h->db, q, -1, &st, NULL) != SQLITE_OK) return -EIO;
    sqlite3_bind_text(st, 1, metric, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, since);
    sqlite3_bind_int64(st, 3, until);
    sqlite3_bind_int64(st, 4, step);
    sqlite3_bind_int64(st, 5, h->ds_next);
    sqlite3_bind_int64(st, 6, (int64_t)max + 1);
    size_t n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == max) {
            *truncated = true;
            break;
        }
        t_out[n] = sqlite3_column_int64(st, 0);
        v_out[n] = sqlite3_column_double(st, 1);
        n++;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return -EIO;
    for (size_t i = 0; i < n / 2; i++) { /* newest first -> time order */
        int64_t tt = t_out[i];
        t_out[i] = t_out[n - 1 - i];
        t_out[n - 1 - i] = tt;
        double vv = v_out[i];
        v_out[i] = v_out[n - 1 - i];
        v_out[n - 1 - i] = vv;
    }
    return (int)n;
}
