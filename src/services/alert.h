/* alert.h: alert rules of the monitor service. The evaluation is pure: a rule, the metric's value
 * (or its absence) and `now` in, the rule's new state and the transition (fired, resolved) out.
 * Rules persist in the alert_rules table of the node's database (schema v3 in src/node/store.c),
 * and an event serialises to the JSON the webhook receives. */
#ifndef P2P_SVC_ALERT_H
#define P2P_SVC_ALERT_H

#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>

#ifndef SVC_ALERT_NAME_MAX
#define SVC_ALERT_NAME_MAX 64 /* longest rule name */
#endif
#ifndef SVC_ALERT_METRIC_MAX
#define SVC_ALERT_METRIC_MAX 300 /* longest metric name ("fs.used_percent:" + a mount point) */
#endif
#ifndef SVC_MAX_ALERT_RULES
#define SVC_MAX_ALERT_RULES 256 /* rules a node keeps */
#endif
#ifndef SVC_ALERT_MAX_FOR_S
#define SVC_ALERT_MAX_FOR_S 604800 /* longest for_seconds: 7 days */
#endif

typedef enum svc_alert_op {
    SVC_ALERT_GT = 0,
    SVC_ALERT_GE,
    SVC_ALERT_LT,
    SVC_ALERT_LE,
    SVC_ALERT_EQ,
    SVC_ALERT_NE,
} svc_alert_op_t;

typedef enum svc_alert_severity {
    SVC_SEV_INFO = 0,
    SVC_SEV_WARNING,
    SVC_SEV_CRITICAL,
} svc_alert_severity_t;

typedef enum svc_alert_state {
    SVC_ALERT_OK = 0,
    SVC_ALERT_PENDING,
    SVC_ALERT_FIRING,
} svc_alert_state_t;

typedef enum svc_alert_transition {
    SVC_ALERT_NONE = 0,
    SVC_ALERT_FIRED,
    SVC_ALERT_RESOLVED,
} svc_alert_transition_t;

typedef struct svc_alert_rule {
    char name[SVC_ALERT_NAME_MAX + 1];
    char metric[SVC_ALERT_METRIC_MAX + 1];
    svc_alert_op_t op;
    double threshold;
    int64_t for_seconds;
    svc_alert_severity_t severity;
    int64_t created_ms; /* wall ms */
    /* evaluation state */
    svc_alert_state_t state;
    int64_t since_ms; /* when the current state began (wall ms) */
    bool has_value;
    double value; /* the last value seen */
} svc_alert_rule_t;

/* Names of ops (">", ">=", "<", "<=", "==", "!="), severities and states; parse functions return
 * the enum value or -EINVAL. */
const char *svc_alert_op_name(svc_alert_op_t op);
int svc_alert_op_parse(const char *s, size_t len);
const char *svc_alert_severity_name(svc_alert_severity_t s);
int svc_alert_severity_parse(const char *s, size_t len);
const char *svc_alert_state_name(svc_alert_state_t s);

/* True when `value op threshold` holds. NaN never holds. */
bool svc_alert_holds(svc_alert_op_t op, double value, double threshold);

/* Evaluates a rule against one sample at now_ms (wall ms). has_value false (the metric is absent
 * from the sample) counts as the condition not holding. OK -> PENDING when the condition starts
 * holding, PENDING -> FIRING once it held for for_seconds (at once for 0), PENDING -> OK and
 * FIRING -> OK when it stops. Returns FIRED or RESOLVED on those two transitions, else NONE. */
svc_alert_transition_t svc_alert_eval(svc_alert_rule_t *r, bool has_value, double value,
                                      int64_t now_ms);

/* One event raised by a transition. */
typedef struct svc_alert_event {
    uint64_t id;
    int64_t time_ms; /* wall ms */
    bool firing;     /* "alert.firing", else "alert.resolved" */
    char name[SVC_ALERT_NAME_MAX + 1];
    char metric[SVC_ALERT_METRIC_MAX + 1];
    double value, threshold;
    svc_alert_op_t op;
    svc_alert_severity_t severity;
} svc_alert_event_t;

/* The event as one JSON object {id, time (unix seconds, fractional), type, name, metric, value,
 * threshold, op, severity, node}. Returns a malloc'd string or NULL when out of memory. */
char *svc_alert_event_json(const svc_alert_event_t *e, const char *node_name);

/* --- persistence in alert_rules --------------------------------------------------------- */

/* Calls cb for every saved rule (state FIRING with its since when firing_since is set, else OK).
 * Returns the count or -EIO. */
int svc_alert_db_load(sqlite3 *db, void (*cb)(void *arg, const svc_alert_rule_t *r), void *arg);

/* Inserts or replaces a rule (firing_since from its state). Returns 0 or -EIO. */
int svc_alert_db_put(sqlite3 *db, const svc_alert_rule_t *r);

/* Deletes a rule. Returns 0, -ENOENT when absent, or -EIO. */
int svc_alert_db_delete(sqlite3 *db, const char *name);

/* Records a rule's firing_since (wall ms, 0 when not firing). Returns 0 or -EIO. */
int svc_alert_db_set_firing(sqlite3 *db, const char *name, int64_t since_ms);

#endif
