/* supervise.c: unit tests for src/services/supervise.c, the supervised program's state machine:
 * every (state, event) pair against a table of expected states and actions, then the sequences
 * that matter: backoff delays growing 1 s, 2 s, 3 s until FATAL, startsecs 0, each autorestart
 * policy with expected and unexpected exits, stops with and without a wait, restarts that wait for
 * the process to stop, re-adoption, timers firing early, exit codes and names. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "services/supervise.h"

#define T0 100000u /* when the canonical machines entered their state */
#define T1 200000u /* when events are applied: past every deadline of theirs */

#define S_STOPPED  SVC_SUP_STOPPED
#define S_STARTING SVC_SUP_STARTING
#define S_RUNNING  SVC_SUP_RUNNING
#define S_BACKOFF  SVC_SUP_BACKOFF
#define S_STOPPING SVC_SUP_STOPPING
#define S_EXITED   SVC_SUP_EXITED
#define S_FATAL    SVC_SUP_FATAL

static svc_sup_conf_t conf_default(void)
{
    svc_sup_conf_t c;
    memset(&c, 0, sizeof(c));
    c.autorestart = SVC_SUP_AR_UNEXPECTED;
    c.startsecs = 1;
    c.startretries = 3;
    c.stop_wait_ms = 10000;
    c.exitcodes[0] = 0;
    c.n_exitcodes = 1;
    return c;
}

/* A machine as the runtime would hold it in state s. */
static svc_sup_fsm_t machine_in(svc_sup_state_t s)
{
    svc_sup_fsm_t m;
    memset(&m, 0, sizeof(m));
    m.state = s;
    m.since = T0;
    if (s == SVC_SUP_STARTING) m.deadline = T0 + 1000;
    if (s == SVC_SUP_BACKOFF) m.backoff = 1, m.deadline = T0 + 1000;
    if (s == SVC_SUP_STOPPING) m.deadline = T0 + 10000;
    return m;
}

static svc_sup_event_t event_of(svc_sup_event_type_t t)
{
    svc_sup_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.type = t;
    if (t == SVC_SUP_EV_EXIT) ev.exit_code = 1; /* unexpected */
    return ev;
}

#define SP SVC_SUP_ACT_SPAWN
#define SG SVC_SUP_ACT_SIGNAL
#define KL SVC_SUP_ACT_KILL

typedef struct expect {
    svc_sup_state_t state;
    unsigned act;
} expect_t;

/* expected[state][event]: START, STOP, RESTART, SPAWNED, SPAWN_FAILED, EXIT(1), TIMER, ADOPT */
static const expect_t expected[SVC_SUP_STATE_COUNT][8] = {
    [S_STOPPED] = {{S_STARTING, SP},
                   {S_STOPPED, 0},
                   {S_STARTING, SP},
                   {S_STOPPED, 0},
                   {S_STOPPED, 0},
                   {S_STOPPED, 0},
                   {S_STOPPED, 0},
                   {S_RUNNING, 0}},
    [S_STARTING] = {{S_STARTING, 0},
                    {S_STOPPING, SG},
                    {S_STOPPING, SG},
                    {S_STARTING, 0},
                    {S_BACKOFF, 0},
                    {S_BACKOFF, 0},
                    {S_RUNNING, 0},
                    {S_STARTING, 0}},
    [S_RUNNING] = {{S_RUNNING, 0},
                   {S_STOPPING, SG},
                   {S_STOPPING, SG},
                   {S_RUNNING, 0},
                   {S_RUNNING, 0},
                   {S_BACKOFF, 0},
                   {S_RUNNING, 0},
                   {S_RUNNING, 0}},
    [S_BACKOFF] = {{S_BACKOFF, 0},
                   {S_STOPPED, 0},
                   {S_STARTING, SP},
                   {S_BACKOFF, 0},
                   {S_BACKOFF, 0},
                   {S_BACKOFF, 0},
                   {S_STARTING, SP},
                   {S_BACKOFF, 0}},
    [S_STOPPING] = {{S_STOPPING, 0},
                    {S_STOPPING, 0},
                    {S_STOPPING, 0},
                    {S_STOPPING, 0},
                    {S_STOPPING, 0},
                    {S_STOPPED, 0},
                    {S_STOPPING, KL},
                    {S_STOPPING, 0}},
    [S_EXITED] = {{S_STARTING, SP},
                  {S_EXITED, 0},
                  {S_STARTING, SP},
                  {S_EXITED, 0},
                  {S_EXITED, 0},
                  {S_EXITED, 0},
                  {S_EXITED, 0},
                  {S_RUNNING, 0}},
    [S_FATAL] = {{S_STARTING, SP},
                 {S_FATAL, 0},
                 {S_STARTING, SP},
                 {S_FATAL, 0},
                 {S_FATAL, 0},
                 {S_FATAL, 0},
                 {S_FATAL, 0},
                 {S_RUNNING, 0}},
};

static bool fsm_equal(const svc_sup_fsm_t *a, const svc_sup_fsm_t *b)
{
    return a->state == b->state && a->backoff == b->backoff && a->restarts == b->restarts &&
           a->since == b->since && a->deadline == b->deadline &&
           a->restart_pending == b->restart_pending;
}

static void test_every_pair(void **state)
{
    (void)state;
    svc_sup_conf_t c = conf_default();
    for (int s = 0; s < SVC_SUP_STATE_COUNT; s++) {
        for (int e = SVC_SUP_EV_START; e <= SVC_SUP_EV_ADOPT; e++) {
            svc_sup_fsm_t in = machine_in((svc_sup_state_t)s), out;
            svc_sup_event_t ev = event_of((svc_sup_event_type_t)e);
            unsigned act = svc_sup_step(&c, &in, &ev, T1, &out);
            const expect_t *x = &expected[s][e];
            if (out.state != x->state || act != x->act)
                fail_msg("state %s event %d: got %s/%u, expected %s/%u", svc_sup_state_name(s), e,
                         svc_sup_state_name(out.state), act, svc_sup_state_name(x->state), x->act);
            /* since moves exactly when the state changes */
            assert_int_equal(out.since, out.state == in.state ? in.since : T1);
            /* in place gives the same result */
            svc_sup_fsm_t same = in;
            assert_int_equal(svc_sup_step(&c, &same, &ev, T1, &same), act);
            assert_true(fsm_equal(&same, &out));
            /* a state with a deadline is one that waits for something */
            if (out.deadline)
                assert_true(out.state == S_STARTING || out.state == S_BACKOFF ||
                            out.state == S_STOPPING);
        }
    }
}

/* Steps m with an event of type t (exit code 1) at now; returns the actions. */
static unsigned step(const svc_sup_conf_t *c, svc_sup_fsm_t *m, svc_sup_event_type_t t,
                     uint64_t now)
{
    svc_sup_event_t ev = event_of(t);
    return svc_sup_step(c, m, &ev, now, m);
}

static unsigned exit_with(const svc_sup_conf_t *c, svc_sup_fsm_t *m, int code, int sig,
                          uint64_t now)
{
    svc_sup_event_t ev = {.type = SVC_SUP_EV_EXIT, .exit_code = code, .signal = sig};
    return svc_sup_step(c, m, &ev, now, m);
}

static void test_backoff_until_fatal(void **state)
{
    (void)state;
    svc_sup_conf_t c = conf_default();
    svc_sup_fsm_t m = {0};
    uint64_t now = 1000;
    assert_int_equal(step(&c, &m, SVC_SUP_EV_START, now), SVC_SUP_ACT_SPAWN);
    assert_int_equal(step(&c, &m, SVC_SUP_EV_SPAWNED, now), 0);
    assert_int_equal(m.state, S_STARTING);
    assert_int_equal(m.deadline, now + 1000);
    for (uint32_t n = 1; n <= c.startretries; n++) {
        now += 100; /* dies before startsecs */
        assert_int_equal(exit_with(&c, &m, 1, 0, now), 0);
        assert_int_equal(m.state, S_BACKOFF);
        assert_int_equal(m.backoff, n);
        assert_int_equal(m.deadline, now + n * SVC_SUP_BACKOFF_STEP_MS);
        /* the timer firing early changes nothing */
        svc_sup_fsm_t before = m;
        assert_int_equal(step(&c, &m, SVC_SUP_EV_TIMER, m.deadline - 1), 0);
        assert_true(fsm_equal(&before, &m));
        now = m.deadline;
        assert_int_equal(step(&c, &m, SVC_SUP_EV_TIMER, now), SVC_SUP_ACT_SPAWN);
        assert_int_equal(m.state, S_STARTING);
        assert_int_equal(m.restarts, n);
        assert_int_equal(step(&c, &m, SVC_SUP_EV_SPAWNED, now), 0);
    }
    now += 10;
    assert_int_equal(exit_with(&c, &m, 0, 0, now), 0); /* even an expected code: too early */
    assert_int_equal(m.state, S_FATAL);
    assert_int_equal(m.deadline, 0);
    assert_int_equal(m.since, now);
    /* a new start begins with a clean count */
    assert_int_equal(step(&c, &m, SVC_SUP_EV_START, now), SVC_SUP_ACT_SPAWN);
    assert_int_equal(m.backoff, 0);
    assert_int_equal(m.restarts, 0);
}

static void test_spawn_failures_count_as_failed_starts(void **state)
{
    (void)state;
    svc_sup_conf_t c = conf_default();
    c.startretries = 0;
    svc_sup_fsm_t m = {0};
    assert_int_equal(step(&c, &m, SVC_SUP_EV_START, 5), SVC_SUP_ACT_SPAWN);
    assert_int_equal(step(&c, &m, SVC_SUP_EV_SPAWN_FAILED, 5), 0);
    assert_int_equal(m.state, S_FATAL); /* no retries */
    c.startretries = 1;
    m = (svc_sup_fsm_t){0};
    step(&c, &m, SVC_SUP_EV_START, 5);
    step(&c, &m, SVC_SUP_EV_SPAWN_FAILED, 5);
    assert_int_equal(m.state, S_BACKOFF);
    assert_int_equal(m.deadline, 5 + SVC_SUP_BACKOFF_STEP_MS);
}

static void test_startsecs_reached_resets_backoff(void **state)
{
    (void)state;
    svc_sup_conf_t c = conf_default();
    c.startsecs = 5;
    svc_sup_fsm_t m = {0};
    step(&c, &m, SVC_SUP_EV_START, 0);
    step(&c, &m, SVC_SUP_EV_SPAWNED, 0);
    exit_with(&c, &m, 2, 0, 100);
    assert_int_equal(m.backoff, 1);
    step(&c, &m, SVC_SUP_EV_TIMER, m.deadline);
    step(&c, &m, SVC_SUP_EV_SPAWNED, 2000);
    assert_int_equal(m.deadline, 7000);
    assert_int_equal(step(&c, &m, SVC_SUP_EV_TIMER, 6999), 0);
    assert_int_equal(m.state, S_STARTING);
    assert_int_equal(step(&c, &m, SVC_SUP_EV_TIMER, 7000), 0);
    assert_int_equal(m.state, S_RUNNING);
    assert_int_equal(m.backoff, 0);
    assert_int_equal(m.deadline, 0);
    assert_int_equal(m.since, 7000);
}

static void test_startsecs_zero(void **state)
{
    (void)state;
    svc_sup_conf_t c = conf_default();
    c.startsecs = 0;
    svc_sup_fsm_t m = {0};
    step(&c, &m, SVC_SUP_EV_START, 10);
    assert_int_equal(step(&c, &m, SVC_SUP_EV_SPAWNED, 10), 0);
    assert_int_equal(m.state, S_RUNNING);
    assert_int_equal(m.deadline, 0);
    /* an unexpected exit restarts after the restart delay, never FATAL */
    for (int i = 0; i < 10; i++) {
        exit_with(&c, &m, 3, 0, 20);
        assert_int_equal(m.state, S_BACKOFF);
        assert_int_equal(m.deadline, 20 + SVC_SUP_RESTART_DELAY_MS);
        step(&c, &m, SVC_SUP_EV_TIMER, m.deadline);
        step(&c, &m, SVC_SUP_EV_SPAWNED, 20);
        assert_int_equal(m.state, S_RUNNING);
    }
    assert_int_equal(m.restarts, 10);
}

/* A RUNNING machine under policy ar, then an exit: the state it ends in. */
static svc_sup_state_t running_exit(svc_sup_autorestart_t ar, int code, int sig)
{
    svc_sup_conf_t c = conf_default();
    c.autorestart = ar;
    c.exitcodes[1] = 2;
    c.n_exitcodes = 2;
    svc_sup_fsm_t m = machine_in(SVC_SUP_RUNNING);
    m.backoff = 0;
    assert_int_equal(exit_with(&c, &m, code, sig, T1), 0);
    if (m.state == S_BACKOFF) {
        assert_int_equal(m.deadline, T1 + SVC_SUP_RESTART_DELAY_MS);
        assert_int_equal(m.backoff, 0); /* a restart after running is not a failed start */
    }
    return m.state;
}

static void test_autorestart_policies(void **state)
{
    (void)state;
    /* never */
    assert_int_equal(running_exit(SVC_SUP_AR_NEVER, 0, 0), S_EXITED);
    assert_int_equal(running_exit(SVC_SUP_AR_NEVER, 1, 0), S_EXITED);
    assert_int_equal(running_exit(SVC_SUP_AR_NEVER, -1, 9), S_EXITED);
    /* unexpected: expected codes 0 and 2 */
    assert_int_equal(running_exit(SVC_SUP_AR_UNEXPECTED, 0, 0), S_EXITED);
    assert_int_equal(running_exit(SVC_SUP_AR_UNEXPECTED, 2, 0), S_EXITED);
    assert_int_equal(running_exit(SVC_SUP_AR_UNEXPECTED, 1, 0), S_BACKOFF);
    assert_int_equal(running_exit(SVC_SUP_AR_UNEXPECTED, -1, 9), S_BACKOFF);
    assert_int_equal(running_exit(SVC_SUP_AR_UNEXPECTED, -1, 15), S_BACKOFF);
    assert_int_equal(running_exit(SVC_SUP_AR_UNEXPECTED, -1, 0), S_BACKOFF); /* unknown */
    /* always */
    assert_int_equal(running_exit(SVC_SUP_AR_ALWAYS, 0, 0), S_BACKOFF);
    assert_int_equal(running_exit(SVC_SUP_AR_ALWAYS, 1, 0), S_BACKOFF);
}

static void test_stop(void **state)
{
    (void)state;
    svc_sup_conf_t c = conf_default();
    svc_sup_fsm_t m = machine_in(SVC_SUP_RUNNING);
    assert_int_equal(step(&c, &m, SVC_SUP_EV_STOP, T1), SVC_SUP_ACT_SIGNAL);
    assert_int_equal(m.deadline, T1 + 10000);
    /* the wait passes: SIGKILL once, then nothing more until the exit */
    assert_int_equal(step(&c, &m, SVC_SUP_EV_TIMER, T1 + 10000), SVC_SUP_ACT_KILL);
    assert_int_equal(m.deadline, 0);
    assert_int_equal(step(&c, &m, SVC_SUP_EV_TIMER, T1 + 20000), 0);
    assert_int_equal(exit_with(&c, &m, -1, 9, T1 + 10001), 0);
    assert_int_equal(m.state, S_STOPPED);
    assert_false(m.restart_pending);

    /* the caller's wait overrides stop_wait; 0 kills at once */
    svc_sup_event_t ev = {.type = SVC_SUP_EV_STOP, .has_wait = true, .wait_ms = 2000};
    m = machine_in(SVC_SUP_STARTING);
    assert_int_equal(svc_sup_step(&c, &m, &ev, T1, &m), SVC_SUP_ACT_SIGNAL);
    assert_int_equal(m.deadline, T1 + 2000);
    /* a second stop with a shorter wait brings SIGKILL forward; a longer one does not */
    ev.wait_ms = 5000;
    assert_int_equal(svc_sup_step(&c, &m, &ev, T1, &m), 0);
    assert_int_equal(m.deadline, T1 + 2000);
    ev.wait_ms = 500;
    assert_int_equal(svc_sup_step(&c, &m, &ev, T1, &m), 0);
    assert_int_equal(m.deadline, T1 + 500);
    ev.wait_ms = 0;
    assert_int_equal(svc_sup_step(&c, &m, &ev, T1, &m), SVC_SUP_ACT_KILL);
    m = machine_in(SVC_SUP_RUNNING);
    assert_int_equal(svc_sup_step(&c, &m, &ev, T1, &m), SVC_SUP_ACT_SIGNAL | SVC_SUP_ACT_KILL);
    assert_int_equal(m.state, S_STOPPING);
    assert_int_equal(m.deadline, 0);
    /* stop_wait 0 in the definition does the same */
    c.stop_wait_ms = 0;
    m = machine_in(SVC_SUP_RUNNING);
    assert_int_equal(step(&c, &m, SVC_SUP_EV_STOP, T1), SVC_SUP_ACT_SIGNAL | SVC_SUP_ACT_KILL);
    /* stopping during BACKOFF cancels the pending spawn */
    m = machine_in(SVC_SUP_BACKOFF);
    step(&c, &m, SVC_SUP_EV_STOP, T1);
    assert_int_equal(m.state, S_STOPPED);
    assert_int_equal(m.deadline, 0);
    assert_int_equal(step(&c, &m, SVC_SUP_EV_TIMER, T1 + 100000), 0);
    assert_int_equal(m.state, S_STOPPED);
}

static void test_restart(void **state)
{
    (void)state;
    svc_sup_conf_t c = conf_default();
    svc_sup_fsm_t m = machine_in(SVC_SUP_RUNNING);
    m.restarts = 4;
    assert_int_equal(step(&c, &m, SVC_SUP_EV_RESTART, T1), SVC_SUP_ACT_SIGNAL);
    assert_true(m.restart_pending);
    assert_int_equal(m.state, S_STOPPING);
    /* the stopped process is followed by a spawn, whatever its exit */
    assert_int_equal(exit_with(&c, &m, 0, 0, T1 + 5), SVC_SUP_ACT_SPAWN);
    assert_int_equal(m.state, S_STARTING);
    assert_false(m.restart_pending);
    assert_int_equal(m.restarts, 5);
    /* a stop while a restart waits cancels the restart */
    m = machine_in(SVC_SUP_RUNNING);
    step(&c, &m, SVC_SUP_EV_RESTART, T1);
    step(&c, &m, SVC_SUP_EV_STOP, T1);
    assert_false(m.restart_pending);
    assert_int_equal(exit_with(&c, &m, -1, 15, T1 + 5), 0);
    assert_int_equal(m.state, S_STOPPED);
    /* a restart while stopping makes the stop a restart */
    m = machine_in(SVC_SUP_RUNNING);
    step(&c, &m, SVC_SUP_EV_STOP, T1);
    step(&c, &m, SVC_SUP_EV_RESTART, T1);
    assert_int_equal(exit_with(&c, &m, -1, 15, T1 + 5), SVC_SUP_ACT_SPAWN);
    /* FATAL restarts with a clean backoff count */
    m = machine_in(SVC_SUP_FATAL);
    m.backoff = 4;
    assert_int_equal(step(&c, &m, SVC_SUP_EV_RESTART, T1), SVC_SUP_ACT_SPAWN);
    assert_int_equal(m.backoff, 0);
}

static void test_adopt(void **state)
{
    (void)state;
    svc_sup_conf_t c = conf_default();
    svc_sup_fsm_t m = {0};
    assert_int_equal(step(&c, &m, SVC_SUP_EV_ADOPT, 50), 0);
    assert_int_equal(m.state, S_RUNNING);
    assert_int_equal(m.since, 50);
    /* an adopted process's exit status is unknown: an unexpected exit */
    assert_int_equal(exit_with(&c, &m, -1, 0, 60), 0);
    assert_int_equal(m.state, S_BACKOFF);
}

static void test_names(void **state)
{
    (void)state;
    static const char *const names[] = {"STOPPED",  "STARTING", "RUNNING", "BACKOFF",
                                        "STOPPING", "EXITED",   "FATAL"};
    for (int s = 0; s < SVC_SUP_STATE_COUNT; s++)
        assert_string_equal(svc_sup_state_name((svc_sup_state_t)s), names[s]);
    assert_string_equal(svc_sup_state_name(SVC_SUP_STATE_COUNT), "UNKNOWN");
    assert_int_equal(svc_sup_autorestart_parse("never", 5), SVC_SUP_AR_NEVER);
    assert_int_equal(svc_sup_autorestart_parse("Unexpected", 10), SVC_SUP_AR_UNEXPECTED);
    assert_int_equal(svc_sup_autorestart_parse("always", 6), SVC_SUP_AR_ALWAYS);
    assert_int_equal(svc_sup_autorestart_parse("alway", 5), -EINVAL);
    assert_int_equal(svc_sup_autorestart_parse("", 0), -EINVAL);
    assert_string_equal(svc_sup_autorestart_name(SVC_SUP_AR_ALWAYS), "always");
    svc_sup_conf_t c = conf_default();
    assert_true(svc_sup_exit_expected(&c, 0, 0));
    assert_false(svc_sup_exit_expected(&c, 0, 15));
    assert_false(svc_sup_exit_expected(&c, -1, 0));
    assert_false(svc_sup_exit_expected(&c, 1, 0));
    c.n_exitcodes = 0;
    assert_false(svc_sup_exit_expected(&c, 0, 0));
    assert_true(svc_sup_is_active(SVC_SUP_BACKOFF));
    assert_false(svc_sup_has_process(SVC_SUP_BACKOFF));
    assert_false(svc_sup_is_active(SVC_SUP_FATAL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_pair),
        cmocka_unit_test(test_backoff_until_fatal),
        cmocka_unit_test(test_spawn_failures_count_as_failed_starts),
        cmocka_unit_test(test_startsecs_reached_resets_backoff),
        cmocka_unit_test(test_startsecs_zero),
        cmocka_unit_test(test_autorestart_policies),
        cmocka_unit_test(test_stop),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_adopt),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
