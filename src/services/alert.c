/* alert.c: alert rules of the monitor service: names of operators and severities, the pure
 * evaluation (rule, value, now) -> state and transition, the JSON of an event, and the rules'
 * rows in the alert_rules table. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

#include "services/alert.h"

static const char *const op_names[] = {">", ">=", "<", "<=", "==", "!="};
static const char *const sev_names[] = {"info", "warning", "critical"};
static const char *const state_names[] = {"ok", "pending", "firing"};

static int lookup(const char *const *names, int n, const char *s, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) return i;
    return -EINVAL;
}

const char *svc_alert_op_name(svc_alert_op_t op)
{
    return (unsigned)op < 6 ? op_names[op] : "?";
}

int svc_alert_op_parse(const char *s, size_t len)
{
    return lookup(op_names, 6, s, len);
}

const char *svc_alert_severity_name(svc_alert_severity_t s)
{
    return (unsigned)s < 3 ? sev_names[s] : "?";
}

int svc_alert_severity_parse(const char *s, size_t len)
{
    return lookup(sev_names, 3, s, len);
}

const char *svc_alert_state_name(svc_alert_state_t s)
{
    return (unsigned)s < 3 ? state_names[s] : "?";
}

bool svc_alert_holds(svc_alert_op_t op, double v, double t)
{
    if (isnan(v) || isnan(t)) return false;
    switch (op) {
    case SVC_ALERT_GT:
        return v > t;
    case SVC_ALERT_GE:
        return v >= t;
    case SVC_ALERT_LT:
        return v < t;
    case SVC_ALERT_LE:
        return v <= t;
    case SVC_ALERT_EQ:
        return v == t;
    case SVC_ALERT_NE:
        return v != t;
    }
    return false;
}

svc_alert_transition_t svc_alert_eval(svc_alert_rule_t *r, bool has_value, double value,
                                      int64_t now_ms)
{
    r->has_value = has_value;
    if (has_value) r->value = value;
    bool holds = has_value && svc_alert_holds(r->op, value, r->threshold);
    if (!holds) {
        svc_alert_state_t was = r->state;
        if (was != SVC_ALERT_OK) {
            r->state = SVC_ALERT_OK;
            r->since_ms = now_ms;
        }
        return was == SVC_ALERT_FIRING ? SVC_ALERT_RESOLVED : SVC_ALERT_NONE;
    }
    if (r->state == SVC_ALERT_OK) {
        r->state = SVC_ALERT_PENDING;
        r->since_ms = now_ms;
    }
    if (r->state == SVC_ALERT_PENDING && now_ms - r->since_ms >= r->for_seconds * 1000) {
        r->state = SVC_ALERT_FIRING;
        r->since_ms = now_ms;
        return SVC_ALERT_FIRED;
    }
    return SVC_ALERT_NONE;
}

char *svc_alert_event_json(const svc_alert_event_t *e, const char *node_name)
{
    json_t *o = json_object();
    if (!o) return NULL;
    double value = isfinite(e->value) ? e->value : 0;
    json_object_set_new(o, "id", json_integer((json_int_t)e->id));
    json_object_set_new(o, "time", json_real((double)e->time_ms / 1000.0));
    json_object_set_new(o, "type", json_string(e->firing ? "alert.firing" : "alert.resolved"));
    json_object_set_new(o, "name", json_string(e->name));
    json_object_set_new(o, "metric", json_string(e->metric));
    json_object_set_new(o, "value", json_real(value));
    json_object_set_new(o, "threshold", json_real(e->threshold));
    json_object_set_new(o, "op", json_string(svc_alert_op_name(e->op)));
    json_object_set_new(o, "severity", json_string(svc_alert_severity_name(e->severity)));
    json_object_set_new(o, "node", json_string(node_name ? node_name : ""));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static int copy_text(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    int n = sqlite3_column_bytes(st, col);
    if (!t || n <= 0 || (size_t)n >= cap) return -EINVAL;
    memcpy(dst, t, (size_t)n);
    dst[n] = '\0';
    return 0;
}

int svc_alert_db_load(sqlite3 *db, void (*cb)(void *arg, const svc_alert_rule_t *r), void *arg)
{
    sqlite3_stmt *st = NULL;
    int count = 0;
    if (sqlite3_prepare_v2(db,
                           "SELECT name, metric, op, threshold, for_seconds, severity, created, "
                           "firing_since FROM alert_rules ORDER BY name",
                           -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && count < SVC_MAX_ALERT_RULES) {
        svc_alert_rule_t r;
        memset(&r, 0, sizeof(r));
        const char *op = (const char *)sqlite3_column_text(st, 2);
        const char *sev = (const char *)sqlite3_column_text(st, 5);
        int o = op ? svc_alert_op_parse(op, strlen(op)) : -EINVAL;
        int s = sev ? svc_alert_severity_parse(sev, strlen(sev)) : -EINVAL;
        if (copy_text(st, 0, r.name, sizeof(r.name)) < 0 ||
            copy_text(st, 1, r.metric, sizeof(r.metric)) < 0 || o < 0 || s < 0)
            continue; /* a row this version cannot read */
        r.op = (svc_alert_op_t)o;
        r.severity = (svc_alert_severity_t)s;
        r.threshold = sqlite3_column_double(st, 3);
        r.for_seconds = sqlite3_column_int64(st, 4);
        r.created_ms = sqlite3_column_int64(st, 6);
        int64_t firing = sqlite3_column_int64(st, 7);
        r.state = firing > 0 ? SVC_ALERT_FIRING : SVC_ALERT_OK;
        r.since_ms = firing > 0 ? firing : r.created_ms;
        cb(arg, &r);
        count++;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? count : -EIO;
}

int svc_alert_db_put(sqlite3 *db, const svc_alert_rule_t *r)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT OR REPLACE INTO alert_rules (name, metric, op, threshold, "
                           "for_seconds, severity, created, firing_since) VALUES (?,?,?,?,?,?,?,?)",
                           -1, &st, NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, r->metric, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, svc_alert_op_name(r->op), -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, r->threshold);
    sqlite3_bind_int64(st, 5, r->for_seconds);
    sqlite3_bind_text(st, 6, svc_alert_severity_name(r->severity), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 7, r->created_ms);
    sqlite3_bind_int64(st, 8, r->state == SVC_ALERT_FIRING ? r->since_ms : 0);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int svc_alert_db_delete(sqlite3 *db, const char *name)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "DELETE FROM alert_rules WHERE name = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return -EIO;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return -EIO;
    return sqlite3_changes(db) > 0 ? 0 : -ENOENT;
}

int svc_alert_db_set_firing(sqlite3 *db, const char *name, int64_t since_ms)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "UPDATE alert_rules SET firing_since = ? WHERE name = ?", -1, &st,
                           NULL) != SQLITE_OK)
        return -EIO;
    sqlite3_bind_int64(st, 1, since_ms);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}
