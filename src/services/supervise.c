/* supervise.c: the state machine of a supervised program, as supervisord runs its processes:
 * STARTING until the process stayed up startsecs, then RUNNING; an exit before that is a failed
 * start: BACKOFF for n seconds after the n-th one, FATAL once they pass startretries; a RUNNING
 * process that exits is restarted (after SVC_SUP_RESTART_DELAY_MS in BACKOFF) when autorestart
 * says so, else it is EXITED. Pure: no I/O, no clock (see supervise.h). The runtime and the
 * methods are in supervise_run.c and supervise_methods.c, persistence in supervise_db.c. */
#include "services/supervise.h"

#include <errno.h>
#include <string.h>
#include <strings.h>

static const char *const state_names[SVC_SUP_STATE_COUNT] = {
    "STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL",
};

static const char *const ar_names[] = {"never", "unexpected", "always"};

const char *svc_sup_state_name(svc_sup_state_t s)
{
    if ((unsigned)s >= SVC_SUP_STATE_COUNT) return "UNKNOWN";
    return state_names[s];
}

const char *svc_sup_autorestart_name(svc_sup_autorestart_t a)
{
    if ((unsigned)a > SVC_SUP_AR_ALWAYS) return "unexpected";
    return ar_names[a];
}

int svc_sup_autorestart_parse(const char *s, size_t len)
{
    for (int i = 0; i <= (int)SVC_SUP_AR_ALWAYS; i++)
        if (strlen(ar_names[i]) == len && strncasecmp(ar_names[i], s, len) == 0) return i;
    return -EINVAL;
}

bool svc_sup_has_process(svc_sup_state_t s)
{
    return s == SVC_SUP_STARTING || s == SVC_SUP_RUNNING || s == SVC_SUP_STOPPING;
}

bool svc_sup_is_active(svc_sup_state_t s)
{
    return svc_sup_has_process(s) || s == SVC_SUP_BACKOFF;
}

bool svc_sup_exit_expected(const svc_sup_conf_t *conf, int exit_code, int signal)
{
    if (signal != 0 || exit_code < 0) return false;
    for (size_t i = 0; i < conf->n_exitcodes && i < SVC_SUP_MAX_EXITCODES; i++)
        if (conf->exitcodes[i] == exit_code) return true;
    return false;
}

static void enter(svc_sup_fsm_t *m, svc_sup_state_t s, uint64_t now)
{
    if (m->state != s) m->since = now;
    m->state = s;
    m->deadline = 0;
}

/* Into STARTING with a spawn; the startsecs clock starts at SPAWNED. */
static unsigned spawn(svc_sup_fsm_t *m, uint64_t now)
{
    enter(m, SVC_SUP_STARTING, now);
    m->restart_pending = false;
    return SVC_SUP_ACT_SPAWN;
}

/* The process died (or could not start) before startsecs: BACKOFF, or FATAL past the retries. */
static unsigned failed_start(const svc_sup_conf_t *conf, svc_sup_fsm_t *m, uint64_t now)
{
    m->backoff++;
    if (m->backoff > conf->startretries) {
        enter(m, SVC_SUP_FATAL, now);
        return 0;
    }
    enter(m, SVC_SUP_BACKOFF, now);
    m->deadline = now + (uint64_t)m->backoff * SVC_SUP_BACKOFF_STEP_MS;
    return 0;
}

/* Stop signal now, SIGKILL after the wait (at once when the wait is 0). */
static unsigned begin_stop(const svc_sup_conf_t *conf, svc_sup_fsm_t *m, const svc_sup_event_t *ev,
                           uint64_t now)
{
    uint64_t wait = ev->has_wait ? ev->wait_ms : conf->stop_wait_ms;
    enter(m, SVC_SUP_STOPPING, now);
    if (wait == 0) return SVC_SUP_ACT_SIGNAL | SVC_SUP_ACT_KILL;
    m->deadline = now + wait;
    return SVC_SUP_ACT_SIGNAL;
}

static unsigned on_exit_event(const svc_sup_conf_t *conf, svc_sup_fsm_t *m,
                              const svc_sup_event_t *ev, uint64_t now)
{
    switch (m->state) {
    case SVC_SUP_STARTING:
        return failed_start(conf, m, now);
    case SVC_SUP_RUNNING: {
        bool restart = conf->autorestart == SVC_SUP_AR_ALWAYS ||
                       (conf->autorestart == SVC_SUP_AR_UNEXPECTED &&
                        !svc_sup_exit_expected(conf, ev->exit_code, ev->signal));
        m->backoff = 0;
        if (!restart) {
            enter(m, SVC_SUP_EXITED, now);
            return 0;
        }
        enter(m, SVC_SUP_BACKOFF, now);
        m->deadline = now + SVC_SUP_RESTART_DELAY_MS;
        return 0;
    }
    case SVC_SUP_STOPPING:
        if (m->restart_pending) {
            m->backoff = 0;
            m->restarts++;
            return spawn(m, now);
        }
        enter(m, SVC_SUP_STOPPED, now);
        return 0;
    default:
        return 0; /* no process in this state: a stale report */
    }
}

static unsigned on_timer(svc_sup_fsm_t *m, uint64_t now)
{
    if (m->deadline == 0 || now < m->deadline) return 0;
    switch (m->state) {
    case SVC_SUP_STARTING:
        m->backoff = 0;
        enter(m, SVC_SUP_RUNNING, now);
        return 0;
    case SVC_SUP_BACKOFF:
        m->restarts++;
        return spawn(m, now);
    case SVC_SUP_STOPPING:
        m->deadline = 0;
        return SVC_SUP_ACT_KILL;
    default:
        m->deadline = 0;
        return 0;
    }
}

unsigned svc_sup_step(const svc_sup_conf_t *conf, const svc_sup_fsm_t *in,
                      const svc_sup_event_t *ev, uint64_t now, svc_sup_fsm_t *out)
{
    svc_sup_fsm_t m = *in;
    unsigned act = 0;
    svc_sup_state_t s = m.state;
    switch (ev->type) {
    case SVC_SUP_EV_START:
        if (s == SVC_SUP_STOPPED || s == SVC_SUP_EXITED || s == SVC_SUP_FATAL) {
            m.backoff = 0;
            m.restarts = 0;
            act = spawn(&m, now);
        }
        break;
    case SVC_SUP_EV_STOP:
        if (s == SVC_SUP_STARTING || s == SVC_SUP_RUNNING) {
            m.restart_pending = false;
            act = begin_stop(conf, &m, ev, now);
        } else if (s == SVC_SUP_BACKOFF) {
            enter(&m, SVC_SUP_STOPPED, now);
        } else if (s == SVC_SUP_STOPPING) {
            m.restart_pending = false; /* a stop cancels a pending restart */
            if (ev->has_wait && (m.deadline == 0 || now + ev->wait_ms < m.deadline)) {
                if (ev->wait_ms == 0) {
                    m.deadline = 0;
                    act = SVC_SUP_ACT_KILL;
                } else {
                    m.deadline = now + ev->wait_ms;
                }
            }
        }
        break;
    case SVC_SUP_EV_RESTART:
        if (s == SVC_SUP_STARTING || s == SVC_SUP_RUNNING) {
            act = begin_stop(conf, &m, ev, now);
            m.restart_pending = true;
        } else if (s == SVC_SUP_STOPPING) {
            m.restart_pending = true;
        } else {
            m.backoff = 0;
            m.restarts++;
            act = spawn(&m, now);
        }
        break;
    case SVC_SUP_EV_SPAWNED:
        if (s == SVC_SUP_STARTING) {
            if (conf->startsecs == 0) {
                m.backoff = 0;
                enter(&m, SVC_SUP_RUNNING, now);
            } else {
                m.deadline = now + (uint64_t)conf->startsecs * 1000;
            }
        }
        break;
    case SVC_SUP_EV_SPAWN_FAILED:
        if (s == SVC_SUP_STARTING) act = failed_start(conf, &m, now);
        break;
    case SVC_SUP_EV_EXIT:
        act = on_exit_event(conf, &m, ev, now);
        break;
    case SVC_SUP_EV_TIMER:
        act = on_timer(&m, now);
        break;
    case SVC_SUP_EV_ADOPT:
        if (s == SVC_SUP_STOPPED || s == SVC_SUP_EXITED || s == SVC_SUP_FATAL) {
            m.backoff = 0;
            m.restarts = 0;
            m.restart_pending = false;
            enter(&m, SVC_SUP_RUNNING, now);
        }
        break;
    }
    *out = m;
    return act;
}
