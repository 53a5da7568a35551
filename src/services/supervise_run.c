/* supervise_run.c: supervised programs at run time: each program's process ("run") watched
 * through uv_spawn's exit_cb (a child of this node) or a pidfd polled by libuv (a process
 * re-adopted after a node restart, whose exit status is unknown); the driver that feeds the state
 * machine (supervise.c, pure) and carries its actions out (spawn, signal, kill, a timer at its
 * deadline); persistence of what should run; the tick (log rotation on the thread pool, calls
 * past their deadline); node start (re-adoption) and the service's start/stop. Programs outlive
 * the node on purpose: stopping the node closes the watchers and leaves the processes running.
 * The methods are in supervise_methods.c, storage in supervise_db.c. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"
#include "node/log.h"
#include "rpc/rpc.h"
#include "services/services.h"
#include "services/supervise-internal.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434 /* Linux 5.3, the same number on every architecture */
#endif

/* --- helpers --------------------------------------------------------------------------------- */

static void log_prog(const prog_t *p, int level, const char *msg, const char *k, const char *v)
{
    char pid[16];
    snprintf(pid, sizeof(pid), "%d", p->pid);
    node_log(p->svc->node->log, level, msg, "program", p->def.name, "state",
             svc_sup_state_name(p->fsm.state), "#pid", pid, k, v, NULL);
}

uint64_t svc_sup_now(const svc_supervise_t *svc)
{
    return uv_now(svc->node->loop);
}

prog_t *svc_sup_find(svc_supervise_t *svc, const char *name, size_t len)
{
    for (prog_t *p = svc->progs; p; p = p->next)
        if (strlen(p->def.name) == len && memcmp(p->def.name, name, len) == 0) return p;
    return NULL;
}

static void maybe_done(svc_supervise_t *svc)
{
    if (!svc->stopping || svc->handles > 0) return;
    void (*done)(void *) = svc->done;
    void *arg = svc->done_arg;
    svc_sup_db_close(svc->db);
    free(svc);
    if (done) done(arg);
}

static void handle_closed_cb(uv_handle_t *h)
{
    svc_supervise_t *svc = h->data;
    svc->handles--;
    maybe_done(svc);
}

/* Reads the machine's boot time (btime of /proc/stat) in unix ms; 0 when unknown. */
static uint64_t read_btime_ms(void)
{
    char line[256];
    unsigned long long bt = 0;
    FILE *f = fopen("/proc/stat", "re");
    if (!f) return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "btime %llu", &bt) == 1) break;
    fclose(f);
    return (uint64_t)bt * 1000;
}

/* --- persistence ----------------------------------------------------------------------------- */

/* Writes what the next node start needs: should it run (wanted and not ended), and its pid. */
void svc_sup_persist(prog_t *p)
{
    svc_sup_state_t s = p->fsm.state;
    bool want = p->wanted && s != SVC_SUP_STOPPED && s != SVC_SUP_EXITED && s != SVC_SUP_FATAL;
    if (want == p->saved_wanted && p->pid == p->saved_pid) return;
    int rc = svc_sup_db_set_run(p->svc->db, p->def.name, want, p->pid, p->pid_start,
                                (int64_t)p2p_wall_ms());
    if (rc < 0) {
        log_prog(p, NODE_LOG_ERROR, "program state not saved", "error", strerror(-rc));
        return;
    }
    p->saved_wanted = want;
    p->saved_pid = p->pid;
}

/* Signals the process group of a program's process (pid, start time), unless the pid number now
 * belongs to another process: an adopted process is reaped by someone else, and a pid is reused
 * quickly (pid_max may be 32768), possibly by a session leader whose group must not be hit. */
static void group_kill(int pid, uint64_t start, int sig)
{
    if (pid > 1 && svc_sup_proc_same(pid, start)) svc_kill_group(pid, sig);
}

/* --- runs: spawned children and adopted processes --------------------------------------------- */

static void run_closed_cb(uv_handle_t *h)
{
    run_t *r = h->data;
    svc_supervise_t *svc = r->svc;
    if (r->pidfd >= 0) close(r->pidfd);
    free(r);
    svc->handles--;
    maybe_done(svc);
}

/* Detaches r from its program and releases it (closing its handle). */
static void run_release(run_t *r)
{
    if (r->prog && r->prog->run == r) r->prog->run = NULL;
    r->prog = NULL;
    if (!r->has_handle) {
        if (r->pidfd >= 0) close(r->pidfd);
        free(r);
        return;
    }
    uv_handle_t *h = r->adopted ? (uv_handle_t *)&r->h.poll : (uv_handle_t *)&r->h.proc;
    if (!uv_is_closing(h)) uv_close(h, run_closed_cb);
}

/* The program's process ended: record it, kill what is left of its group, tell the machine. */
static void run_ended(run_t *r, int exit_code, int signal)
{
    prog_t *p = r->prog;
    int pid = r->pid;
    uint64_t start = p ? p->pid_start : 0;
    run_release(r);
    if (!p) return;
    group_kill(pid, start, SIGKILL); /* leftovers of the group die with their leader */
    p->pid = 0;
    p->pid_start = 0;
    p->has_exit = true;
    p->exit_code = exit_code;
    p->exit_signal = signal;
    char what[32];
    if (signal)
        snprintf(what, sizeof(what), "signal %d", signal);
    else if (exit_code >= 0)
        snprintf(what, sizeof(what), "code %d", exit_code);
    else
        snprintf(what, sizeof(what), "unknown");
    log_prog(p, NODE_LOG_INFO, "program exited", "exit", what);
    svc_sup_event_t ev = {.type = SVC_SUP_EV_EXIT, .exit_code = exit_code, .signal = signal};
    svc_sup_feed(p, &ev);
}

static void exit_cb(uv_process_t *proc, int64_t status, int term_signal)
{
    run_t *r = proc->data;
    run_ended(r, term_signal ? -1 : (int)status, term_signal);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    run_t *r = h->data;
    if (r->prog) uv_poll_stop(h);
    run_ended(r, -1, 0); /* not our child: the exit status is unknown */
}

/* Spawns p's command with its output going to its log files. Returns 0 or a negative errno. */
static int spawn_run(prog_t *p)
{
    svc_supervise_t *svc = p->svc;
    int rc, fds[2] = {-1, -1};
    run_t *r = NULL;
    if ((rc = svc_sup_log_dir(svc->node->cfg.data_dir, p->def.name, p->dir, sizeof(p->dir))) < 0)
        goto fail;
    for (int s = 0; s < 2; s++)
        if ((fds[s] = rc = svc_sup_log_open(p->dir, s)) < 0) goto fail;
    rc = -ENOMEM;
    if (!(r = calloc(1, sizeof(*r)))) goto fail;
    r->svc = svc;
    r->pidfd = -1;
    uv_stdio_container_t stdio[3];
    memset(stdio, 0, sizeof(stdio));
    stdio[0].flags = UV_IGNORE;
    for (int s = 0; s < 2; s++) {
        stdio[1 + s].flags = UV_INHERIT_FD;
        stdio[1 + s].data.fd = fds[s];
    }
    uv_process_options_t o;
    svc_cmd_options(&p->def.cmd, &o, stdio, 3, exit_cb);
    r->h.proc.data = r;
    rc = uv_spawn(svc->node->loop, &r->h.proc, &o);
    if (r->h.proc.loop) { /* uv_spawn initialises the handle even when it fails */
        r->has_handle = true;
        svc->handles++;
    }
    if (rc < 0) {
        run_release(r); /* frees r, now or once its handle closed */
        r = NULL;
        goto fail;
    }
    for (int s = 0; s < 2; s++)
        close(fds[s]);
    r->prog = p;
    r->pid = r->h.proc.pid;
    p->run = r;
    p->pid = r->pid;
    p->pid_start = 0;
    svc_sup_proc_start(p->pid, &p->pid_start); /* set at fork: stable from now on */
    p->started_wall = p2p_wall_ms();
    return 0;
fail:
    for (int s = 0; s < 2; s++)
        if (fds[s] >= 0) close(fds[s]);
    free(r);
    return rc;
}

/* Watches a surviving process of p (identity already checked). Returns 0, or -ESRCH when it is
 * gone after all. */
static int adopt_run(prog_t *p, int pid, uint64_t pid_start)
{
    svc_supervise_t *svc = p->svc;
    run_t *r = calloc(1, sizeof(*r));
    uint64_t again = 0;
    if (!r) return -ENOMEM;
    r->svc = svc;
    r->adopted = true;
    r->pid = pid;
    r->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if ((r->pidfd < 0 && errno == ESRCH) || svc_sup_proc_start(pid, &again) < 0 ||
        again != pid_start) {
        if (r->pidfd >= 0) close(r->pidfd);
        free(r);
        return -ESRCH;
    }
    if (r->pidfd >= 0 && uv_poll_init(svc->node->loop, &r->h.poll, r->pidfd) == 0) {
        r->h.poll.data = r;
        r->has_handle = true;
        svc->handles++;
        uv_poll_start(&r->h.poll, UV_READABLE, poll_cb);
    } /* else the tick checks /proc every SVC_SUP_TICK_MS */
    r->prog = p;
    p->run = r;
    p->pid = pid;
    p->pid_start = pid_start;
    long hz = sysconf(_SC_CLK_TCK);
    p->started_wall =
        svc->btime_ms && hz > 0 ? svc->btime_ms + pid_start * 1000 / (uint64_t)hz : p2p_wall_ms();
    return 0;
}

/* --- the state machine's driver ------------------------------------------------------------ */

void svc_sup_pack_status(msgpack_packer *pk, const prog_t *p, bool show_env);

static void answer_waiters(prog_t *p)
{
    waiter_t *w = p->waiters;
    p->waiters = NULL;
    p->n_waiters = 0;
    while (w) {
        waiter_t *next = w->next;
        svc_sup_pack_status(rpc_call_packer(w->call), p, true); /* operators' calls */
        rpc_call_reply(w->call);
        free(w);
        w = next;
    }
}

static void timer_cb(uv_timer_t *t)
{
    svc_sup_event_t ev = {.type = SVC_SUP_EV_TIMER};
    svc_sup_feed(t->data, &ev);
}

/* Applies ev to p's machine and carries the actions out. */
void svc_sup_feed(prog_t *p, const svc_sup_event_t *ev)
{
    svc_supervise_t *svc = p->svc;
    uint64_t now = svc_sup_now(svc);
    svc_sup_state_t before = p->fsm.state;
    unsigned act = svc_sup_step(&p->def.conf, &p->fsm, ev, now, &p->fsm);
    if (act & SVC_SUP_ACT_SIGNAL) group_kill(p->pid, p->pid_start, p->def.stop_signal);
    if (act & SVC_SUP_ACT_KILL) group_kill(p->pid, p->pid_start, SIGKILL);
    if (act & SVC_SUP_ACT_SPAWN) {
        p->spawn_rc = spawn_run(p);
        svc_sup_event_t next = {.type = p->spawn_rc == 0 ? SVC_SUP_EV_SPAWNED
                                                         : SVC_SUP_EV_SPAWN_FAILED};
        if (p->spawn_rc < 0)
            log_prog(p, NODE_LOG_WARNING, "program spawn failed", "error",
                     uv_strerror(p->spawn_rc));
        svc_sup_step(&p->def.conf, &p->fsm, &next, now, &p->fsm); /* never asks for a spawn */
    }
    if (p->fsm.deadline)
        uv_timer_start(&p->timer, timer_cb, p->fsm.deadline > now ? p->fsm.deadline - now : 0, 0);
    else
        uv_timer_stop(&p->timer);
    if (p->fsm.state != before || (act & SVC_SUP_ACT_SPAWN))
        log_prog(p, NODE_LOG_INFO, "program state", "from", svc_sup_state_name(before));
    svc_sup_persist(p);
    if (p->fsm.state != SVC_SUP_STOPPING && p->waiters) answer_waiters(p);
}

/* --- programs ------------------------------------------------------------------------------- */

static void prog_closed_cb(uv_handle_t *h)
{
    prog_t *p = h->data;
    svc_supervise_t *svc = p->svc;
    svc_sup_def_free(&p->def);
    free(p);
    svc->handles--;
    maybe_done(svc);
}

/* A new STOPPED program holding def (taken over), linked into svc. NULL on no memory. */
prog_t *svc_sup_prog_new(svc_supervise_t *svc, svc_sup_def_t *def)
{
    prog_t *p = calloc(1, sizeof(*p));
    if (!p) return NULL;
    p->svc = svc;
    p->def = *def;
    memset(def, 0, sizeof(*def));
    p->exit_code = -1;
    p->fsm.since = svc_sup_now(svc);
    snprintf(p->dir, sizeof(p->dir), "%s/programs/%s", svc->node->cfg.data_dir, p->def.name);
    uv_timer_init(svc->node->loop, &p->timer);
    p->timer.data = p;
    svc->handles++;
    p->next = svc->progs;
    svc->progs = p;
    svc->count++;
    return p;
}

/* Unlinks p and frees it once its timer closed. Its run (if any) is released, not killed. */
void svc_sup_prog_free(prog_t *p)
{
    svc_supervise_t *svc = p->svc;
    for (prog_t **pp = &svc->progs; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            svc->count--;
            break;
        }
    if (p->run) run_release(p->run);
    for (waiter_t *w = p->waiters, *next; w; w = next) {
        next = w->next;
        rpc_call_error(w->call, RPC_ERR_UNAVAILABLE, "supervisor stopping");
        free(w);
    }
    p->waiters = NULL;
    uv_close((uv_handle_t *)&p->timer, prog_closed_cb);
}

/* --- the tick: log rotation (thread pool), calls past their deadline, pidfd-less adoptions --- */

typedef struct rot_entry {
    char dir[NODE_PATH_MAX + SVC_SUP_NAME_MAX + 16];
    char name[SVC_SUP_NAME_MAX + 1];
    int rotated[2]; /* 1 rotated, 0 not, < 0 error */
} rot_entry_t;

typedef struct rot_work {
    uv_work_t req;
    svc_supervise_t *svc;
    int n;
    rot_entry_t e[];
} rot_work_t;

static void rotate_work_cb(uv_work_t *req)
{
    rot_work_t *w = req->data;
    for (int i = 0; i < w->n; i++)
        for (int s = 0; s < 2; s++)
            w->e[i].rotated[s] = svc_sup_log_rotate(w->e[i].dir, s, SVC_SUP_LOG_MAX);
}

static void rotate_after_cb(uv_work_t *req, int status)
{
    rot_work_t *w = req->data;
    svc_supervise_t *svc = w->svc;
    for (int i = 0; status == 0 && i < w->n; i++)
        for (int s = 0; s < 2; s++)
            if (w->e[i].rotated[s] == 1)
                node_log(svc->node->log, NODE_LOG_INFO, "program log rotated", "program",
                         w->e[i].name, "stream", s == SVC_SUP_STDOUT ? "stdout" : "stderr", NULL);
    free(w);
    svc->rotating = false;
    svc->handles--;
    maybe_done(svc);
}

/* Checks every program's log sizes on the thread pool (one batch at a time): copying the newest
 * SVC_SUP_LOG_MAX bytes of a big file must not hold the loop. */
static void rotate_logs(svc_supervise_t *svc)
{
    if (svc->rotating || svc->count == 0) return;
    rot_work_t *w = calloc(1, sizeof(*w) + (size_t)svc->count * sizeof(rot_entry_t));
    if (!w) return;
    w->svc = svc;
    for (prog_t *p = svc->progs; p && w->n < svc->count; p = p->next) {
        snprintf(w->e[w->n].dir, sizeof(w->e[w->n].dir), "%s", p->dir);
        snprintf(w->e[w->n].name, sizeof(w->e[w->n].name), "%s", p->def.name);
        w->n++;
    }
    w->req.data = w;
    if (uv_queue_work(svc->node->loop, &w->req, rotate_work_cb, rotate_after_cb) < 0) {
        free(w);
        return;
    }
    svc->rotating = true;
    svc->handles++;
}

static void tick_cb(uv_timer_t *t)
{
    svc_supervise_t *svc = t->data;
    rotate_logs(svc);
    for (prog_t *p = svc->progs, *next; p; p = next) {
        next = p->next;
        for (waiter_t **w = &p->waiters; *w;) {
            if (rpc_call_cancelled((*w)->call)) {
                waiter_t *gone = *w;
                *w = gone->next;
                p->n_waiters--;
                rpc_call_error(gone->call, RPC_ERR_TIMEOUT, "%s still stopping", p->def.name);
                free(gone);
            } else {
                w = &(*w)->next;
            }
        }
        uint64_t st = 0;
        if (p->run && p->run->adopted && !p->run->has_handle &&
            (svc_sup_proc_start(p->pid, &st) < 0 || st != p->pid_start))
            run_ended(p->run, -1, 0);
    }
}

/* --- node start: load the table, re-adopt or start the wanted programs ------------------------ */

static void load_row_cb(void *arg, const svc_sup_row_t *row)
{
    svc_supervise_t *svc = arg;
    svc_sup_def_t def;
    const char *bad = NULL;
    int rc = svc_sup_def_parse(row->spec, row->spec_len, &def, &bad);
    if (rc == 0 && (rc = svc_sup_cmd_mark(&def.cmd, def.name, svc->home)) < 0)
        svc_sup_def_free(&def);
    if (rc < 0 || strcmp(def.name, row->name) != 0 || svc->count >= SVC_SUP_MAX_PROGRAMS) {
        node_log(svc->node->log, NODE_LOG_ERROR, "program definition not loaded", "program",
                 row->name, "error", rc < 0 ? (bad ? bad : strerror(-rc)) : "name or limit", NULL);
        if (rc == 0) svc_sup_def_free(&def);
        return;
    }
    prog_t *p = svc_sup_prog_new(svc, &def);
    if (!p) {
        svc_sup_def_free(&def);
        return;
    }
    p->wanted = p->saved_wanted = row->wanted;
    p->saved_pid = p->rec_pid = row->pid;
    p->rec_start = row->pid_start;
}

static void adopted(prog_t *p, const char *how)
{
    svc_sup_event_t ev = {.type = SVC_SUP_EV_ADOPT};
    svc_sup_feed(p, &ev);
    log_prog(p, NODE_LOG_INFO, "program re-adopted", "found_by", how);
}

/* A loaded program: re-adopt its recorded process when it is still the same one (same pid and
 * start time, not a zombie); kill a survivor that is not wanted (the node died during a stop).
 * Returns true when the program is wanted and still has no process. */
static bool resume_recorded(prog_t *p)
{
    uint64_t st = 0;
    bool alive = p->rec_pid > 1 && svc_sup_proc_start(p->rec_pid, &st) == 0 && st == p->rec_start;
    if (p->wanted && alive && adopt_run(p, p->rec_pid, p->rec_start) == 0) {
        adopted(p, "pid");
        return false;
    }
    if (p->wanted) return true;
    if (alive) svc_kill_group(p->rec_pid, SIGKILL);
    svc_sup_persist(p);
    return false;
}

/* A process marked as one of this node's programs (environment) found by the scan. */
static void scan_cb(void *arg, const char *name, int pid, uint64_t start)
{
    prog_t *p = svc_sup_find(arg, name, strlen(name));
    if (!p || !p->wanted || p->run) return; /* unknown, not wanted, or already adopted */
    if (adopt_run(p, pid, start) == 0) adopted(p, "environment");
}

/* Node start: re-adopt what survived, then start the wanted programs that did not. */
static void resume_all(svc_supervise_t *svc)
{
    bool missing = false;
    for (prog_t *p = svc->progs; p; p = p->next)
        if (resume_recorded(p)) missing = true;
    if (missing) svc_sup_proc_scan(svc->home, scan_cb, svc);
    for (prog_t *p = svc->progs; p; p = p->next) {
        if (!p->wanted || p->run) continue;
        svc_sup_event_t ev = {.type = SVC_SUP_EV_START};
        svc_sup_feed(p, &ev);
    }
}

/* --- the service ---------------------------------------------------------------------------- */

int svc_supervise_start(node_t *node, svc_supervise_t **out, char *err, size_t errlen)
{
    int rc = -ENOMEM;
    char dir[NODE_PATH_MAX + 16];
    svc_supervise_t *svc = calloc(1, sizeof(*svc));
    if (!svc) {
        snprintf(err, errlen, "supervise service: out of memory");
        return rc;
    }
    svc->node = node;
    svc->btime_ms = read_btime_ms();
    char *home = realpath(node->cfg.data_dir, NULL);
    snprintf(svc->home, sizeof(svc->home), "%s", home ? home : node->cfg.data_dir);
    free(home);
    if ((rc = svc_sup_db_open(node->db, &svc->db)) < 0) {
        snprintf(err, errlen, "supervise service: cannot use the programs table");
        goto fail;
    }
    snprintf(dir, sizeof(dir), "%s/programs", node->cfg.data_dir);
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        rc = -errno;
        snprintf(err, errlen, "supervise service: cannot create %s: %s", dir, strerror(errno));
        goto fail;
    }
    if ((rc = svc_sup_methods_register(svc, err, errlen)) < 0) goto fail;
    /* from here on nothing fails: handles are opened */
    uv_timer_init(node->loop, &svc->tick);
    svc->tick.data = svc;
    svc->handles++;
    rc = svc_sup_db_load(svc->db, load_row_cb, svc);
    if (rc < 0) node_log(node->log, NODE_LOG_ERROR, "programs not loaded", NULL);
    resume_all(svc);
    uv_timer_start(&svc->tick, tick_cb, SVC_SUP_TICK_MS, SVC_SUP_TICK_MS);
    *out = svc;
    return 0;
fail:
    svc_sup_db_close(svc->db);
    free(svc);
    return rc;
}

void svc_supervise_stop(svc_supervise_t *svc, void (*done)(void *arg), void *arg)
{
    if (!svc || svc->stopping) return;
    svc->stopping = true;
    svc->done = done;
    svc->done_arg = arg;
    uv_timer_stop(&svc->tick);
    uv_close((uv_handle_t *)&svc->tick, handle_closed_cb);
    while (svc->progs) {
        prog_t *p = svc->progs;
        if (p->fsm.state == SVC_SUP_STOPPING && p->pid > 1)
            group_kill(p->pid, p->pid_start, SIGKILL); /* finish the stop asked for */
        svc_sup_prog_free(p); /* the process itself keeps running: programs outlive the node */
    }
}
