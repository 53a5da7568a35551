/* supervise.h: the state machine of a supervised program (supervisord's states and backoff) as a
 * pure function: (configuration, state, event, now) -> (new state, actions). It does no I/O and
 * reads no clock; the runtime (supervise_run.c) carries the actions out (spawn, signal, kill,
 * arm a timer at `deadline`) and feeds back what happened (spawned, exited, timer fired). */
#ifndef P2P_SVC_SUPERVISE_H
#define P2P_SVC_SUPERVISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef SVC_SUP_MAX_EXITCODES
#define SVC_SUP_MAX_EXITCODES 32 /* expected exit codes of one program */
#endif
#ifndef SVC_SUP_RESTART_DELAY_MS
#define SVC_SUP_RESTART_DELAY_MS 1000 /* wait in BACKOFF before restarting a RUNNING program */
#endif
#ifndef SVC_SUP_BACKOFF_STEP_MS
#define SVC_SUP_BACKOFF_STEP_MS 1000 /* the n-th failed start waits n times this in BACKOFF */
#endif

typedef enum svc_sup_state {
    SVC_SUP_STOPPED = 0, /* not running, not wanted */
    SVC_SUP_STARTING,    /* spawned, not yet up for startsecs */
    SVC_SUP_RUNNING,     /* up for at least startsecs (or re-adopted) */
    SVC_SUP_BACKOFF,     /* exited too early (or restarting): waits, then spawns again */
    SVC_SUP_STOPPING,    /* stop signal sent, waiting for the exit (SIGKILL at the deadline) */
    SVC_SUP_EXITED,      /* exited from RUNNING and not restarted (expected exit or "never") */
    SVC_SUP_FATAL,       /* could not stay up for startsecs in 1 + startretries attempts */
    SVC_SUP_STATE_COUNT,
} svc_sup_state_t;

typedef enum svc_sup_autorestart {
    SVC_SUP_AR_NEVER = 0,
    SVC_SUP_AR_UNEXPECTED, /* restart when the exit code is not expected or a signal killed it */
    SVC_SUP_AR_ALWAYS,
} svc_sup_autorestart_t;

/* The part of a program's definition the state machine needs. */
typedef struct svc_sup_conf {
    svc_sup_autorestart_t autorestart;
    uint32_t startsecs;    /* seconds a process must stay up to count as started (0: at once) */
    uint32_t startretries; /* failed starts retried before FATAL */
    uint64_t stop_wait_ms; /* default wait between the stop signal and SIGKILL */
    int exitcodes[SVC_SUP_MAX_EXITCODES];
    size_t n_exitcodes;
} svc_sup_conf_t;

/* The machine's state. Zeroed = STOPPED. */
typedef struct svc_sup_fsm {
    svc_sup_state_t state;
    uint32_t backoff;     /* consecutive failed starts */
    uint32_t restarts;    /* spawns since the last START event, the first one excluded */
    uint64_t since;       /* `now` of the last state change */
    uint64_t deadline;    /* `now` at which EV_TIMER is due, 0 = none */
    bool restart_pending; /* a restart waits for the process to stop */
} svc_sup_fsm_t;

typedef enum svc_sup_event_type {
    SVC_SUP_EV_START,        /* operator start (or a wanted program at node start) */
    SVC_SUP_EV_STOP,         /* operator stop; wait_ms overrides conf.stop_wait_ms when set */
    SVC_SUP_EV_RESTART,      /* operator restart */
    SVC_SUP_EV_SPAWNED,      /* the SPAWN action succeeded */
    SVC_SUP_EV_SPAWN_FAILED, /* the SPAWN action failed */
    SVC_SUP_EV_EXIT,         /* the process exited (exit_code/signal; exit_code -1 = unknown) */
    SVC_SUP_EV_TIMER,        /* `deadline` passed */
    SVC_SUP_EV_ADOPT,        /* a surviving process was re-adopted at node start */
} svc_sup_event_type_t;

typedef struct svc_sup_event {
    svc_sup_event_type_t type;
    int exit_code; /* EXIT: the code, or -1 when unknown (adopted process, killed by a signal) */
    int signal;    /* EXIT: the signal that killed it, 0 = none */
    bool has_wait; /* STOP: wait_ms is set */
    uint64_t wait_ms;
} svc_sup_event_t;

/* Actions, a bit mask returned by svc_sup_step. */
enum {
    SVC_SUP_ACT_SPAWN = 1u << 0,  /* start the process now, then feed SPAWNED or SPAWN_FAILED */
    SVC_SUP_ACT_SIGNAL = 1u << 1, /* send the stop signal to the process group */
    SVC_SUP_ACT_KILL = 1u << 2,   /* send SIGKILL to the process group */
};

/* Applies ev at time now (milliseconds on any monotonic clock) to *in and writes the resulting
 * state to *out (in and out may be the same). Returns the actions to carry out (0 = none). An
 * event that does not apply to the state (EXIT while STOPPED, START while RUNNING...) changes
 * nothing and returns 0. Pure: no I/O, no clock. */
unsigned svc_sup_step(const svc_sup_conf_t *conf, const svc_sup_fsm_t *in,
                      const svc_sup_event_t *ev, uint64_t now, svc_sup_fsm_t *out);

/* True when the state has a process (STARTING, RUNNING, STOPPING). */
bool svc_sup_has_process(svc_sup_state_t s);

/* True when a START must be refused (STARTING, RUNNING, BACKOFF, STOPPING). */
bool svc_sup_is_active(svc_sup_state_t s);

/* True when an exit with this code/signal is expected under conf (not killed by a signal and the
 * code is one of conf->exitcodes). */
bool svc_sup_exit_expected(const svc_sup_conf_t *conf, int exit_code, int signal);

/* "STOPPED", "STARTING"...; "UNKNOWN" out of range. */
const char *svc_sup_state_name(svc_sup_state_t s);

/* "never", "unexpected", "always"; svc_sup_autorestart_parse returns the value or -EINVAL. */
const char *svc_sup_autorestart_name(svc_sup_autorestart_t a);
int svc_sup_autorestart_parse(const char *s, size_t len);

#endif
