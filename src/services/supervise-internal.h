/* supervise-internal.h: what the files of the supervised programs share (supervise_run.c: the
 * runtime; supervise_methods.c: the methods; supervise_db.c: storage): the limits, a program's
 * definition parsed from its msgpack spec, the `programs` table, the process identity used to
 * re-adopt a program after a node restart (pid + start time from /proc/PID/stat, environment
 * marks), the program's log files, and the runtime's structures. */
#ifndef P2P_SVC_SUPERVISE_INTERNAL_H
#define P2P_SVC_SUPERVISE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include <sqlite3.h>

#include "services/spawn.h"
#include "services/supervise.h"

#ifndef SVC_SUP_MAX_PROGRAMS
#define SVC_SUP_MAX_PROGRAMS 64 /* programs defined on one node */
#endif
#ifndef SVC_SUP_NAME_MAX
#define SVC_SUP_NAME_MAX 64 /* bytes of a program name ([A-Za-z0-9_.-]) */
#endif
#ifndef SVC_SUP_MAX_STARTSECS
#define SVC_SUP_MAX_STARTSECS 3600 /* upper bound of startsecs */
#endif
#ifndef SVC_SUP_MAX_STARTRETRIES
#define SVC_SUP_MAX_STARTRETRIES 100 /* upper bound of startretries */
#endif
#ifndef SVC_SUP_MAX_STOP_WAIT
#define SVC_SUP_MAX_STOP_WAIT 3600 /* upper bound of stop_wait and stop's timeout, seconds */
#endif
#ifndef SVC_SUP_LOG_MAX
#define SVC_SUP_LOG_MAX (8u << 20) /* bytes of a log file before it is rotated to .1 */
#endif
#ifndef SVC_SUP_TICK_MS
#define SVC_SUP_TICK_MS 1000 /* period of the log-size check and the stale-call sweep */
#endif
#ifndef SVC_SUP_LOGS_DEFAULT
#define SVC_SUP_LOGS_DEFAULT 65536 /* bytes process.logs returns by default */
#endif
#ifndef SVC_SUP_LOGS_MAX
#define SVC_SUP_LOGS_MAX (1u << 20) /* bytes process.logs returns at most */
#endif
#ifndef SVC_SUP_MAX_WAITERS
#define SVC_SUP_MAX_WAITERS 16 /* stop/restart calls waiting on one program */
#endif

#ifndef SVC_SUP_SCAN_ENV
#define SVC_SUP_SCAN_ENV (256u << 10) /* bytes of a process's environment read by the scan */
#endif

#define SVC_SUP_DEFAULT_STARTSECS    1
#define SVC_SUP_DEFAULT_STARTRETRIES 3
#define SVC_SUP_DEFAULT_STOP_WAIT    10
#define SVC_SUP_DEFAULT_STOP_SIGNAL  "TERM"
#define SVC_SUP_DEFAULT_AUTORESTART  "unexpected"

/* A program's definition. spec is the normalized msgpack map of the start parameters (defaults
 * filled in): what the table stores and process.managed shows. */
typedef struct svc_sup_def {
    char name[SVC_SUP_NAME_MAX + 1];
    svc_cmd_t cmd;
    svc_sup_conf_t conf;
    int stop_signal;
    uint8_t *spec;
    size_t spec_len;
} svc_sup_def_t;

/* True when s[0..len) is a valid program name: 1..SVC_SUP_NAME_MAX of [A-Za-z0-9_.-], not "."
 * nor "..". */
bool svc_sup_name_valid(const char *s, size_t len);

/* Parses a spec (a msgpack map as packed in spec[0..len)) into def, copying spec. Keys: name,
 * argv (required), cwd, env, autorestart, exitcodes, startsecs, startretries, stop_signal,
 * stop_wait (absent = defaults; unknown keys are ignored). Returns 0, -EINVAL with *bad naming
 * the bad key, or -ENOMEM. def is zeroed on failure. */
int svc_sup_def_parse(const void *spec, size_t len, svc_sup_def_t *def, const char **bad);

/* Frees what def holds and zeroes it. NULL ok. */
void svc_sup_def_free(svc_sup_def_t *def);

/* --- the programs table (schema v3, src/node/store.c) --------------------------------------- */

typedef struct svc_sup_db svc_sup_db_t;

typedef struct svc_sup_row {
    const char *name;
    const void *spec;
    size_t spec_len;
    bool wanted;
    int pid;
    uint64_t pid_start;
    int64_t created, updated; /* unix ms */
} svc_sup_row_t;

/* Prepares the statements on db (borrowed; it must outlive d). Returns 0 and *out, -EIO when the
 * table is missing, or -ENOMEM. */
int svc_sup_db_open(sqlite3 *db, svc_sup_db_t **out);

/* Finalizes the statements. NULL ok. */
void svc_sup_db_close(svc_sup_db_t *d);

/* Calls cb for every row, by name. The row's pointers are valid during the call only. Returns
 * the row count or -EIO. */
int svc_sup_db_load(svc_sup_db_t *d, void (*cb)(void *arg, const svc_sup_row_t *row), void *arg);

/* Inserts or replaces the row of name (created is kept for an existing row). Returns 0 or -EIO. */
int svc_sup_db_put(svc_sup_db_t *d, const char *name, const void *spec, size_t spec_len,
                   bool wanted, int pid, uint64_t pid_start, int64_t now_ms);

/* Updates wanted, pid and pid_start of name. Returns 0, -ENOENT (no such row) or -EIO. */
int svc_sup_db_set_run(svc_sup_db_t *d, const char *name, bool wanted, int pid, uint64_t pid_start,
                       int64_t now_ms);

/* Deletes the row of name. Returns 0, -ENOENT or -EIO. */
int svc_sup_db_delete(svc_sup_db_t *d, const char *name);

/* --- process identity ------------------------------------------------------------------------ */

/* Reads field 22 (starttime, clock ticks after boot) of /proc/PID/stat into *start. Returns 0
 * when pid is alive and not a zombie, -ESRCH when it is gone or a zombie, -EINVAL for pid <= 0,
 * or -EIO for an unreadable file. */
int svc_sup_proc_start(int pid, uint64_t *start);

/* True unless pid is held by a process other than the one that started at `start` (a zombie of
 * that process counts as the same; an absent pid is true: its number is free or still held by
 * the group's other members, so signalling its group reaches no one else). */
bool svc_sup_proc_same(int pid, uint64_t start);

/* The environment variables that mark a program's processes: P2P_PROGRAM=NAME and
 * P2P_SUPERVISOR=HOME (the node's absolute data dir), so a node that lost track of a pid (killed
 * between a spawn and the table write) still finds its programs instead of starting copies. */
#define SVC_SUP_ENV_PROGRAM    "P2P_PROGRAM"
#define SVC_SUP_ENV_SUPERVISOR "P2P_SUPERVISOR"

/* Sets (replacing any caller-given value) P2P_PROGRAM=name and P2P_SUPERVISOR=home in c's
 * environment. Returns 0 or -ENOMEM (c unchanged then). */
int svc_sup_cmd_mark(svc_cmd_t *c, const char *name, const char *home);

/* Calls cb(arg, name, pid, start) for every live process that leads its own process group and
 * whose initial environment holds P2P_SUPERVISOR=home and P2P_PROGRAM=name (name NUL-terminated,
 * valid during the call). Returns the number of matches or a negative errno (/proc unreadable). */
int svc_sup_proc_scan(const char *home,
                      void (*cb)(void *arg, const char *name, int pid, uint64_t start), void *arg);

/* --- log files: DATA_DIR/programs/NAME/{stdout,stderr}.log ----------------------------------- */

enum { SVC_SUP_STDOUT = 0, SVC_SUP_STDERR = 1 };

/* Writes DATA_DIR/programs/NAME into out and creates it (and DATA_DIR/programs) when absent,
 * mode 0750. Returns 0, -ENAMETOOLONG or a negative errno. */
int svc_sup_log_dir(const char *data_dir, const char *name, char *out, size_t cap);

/* Opens DIR/stdout.log or stderr.log for appending (O_APPEND, created 0640, close-on-exec).
 * Returns the fd or a negative errno. */
int svc_sup_log_open(const char *dir, int stream);

/* When DIR/<stream>.log is over limit bytes: copies its last limit bytes to <stream>.log.1
 * (replacing it, through a temp file and a rename) and truncates the log to 0 (writers hold it
 * with O_APPEND and carry on at the new end). Returns 1 when rotated, 0 when under the limit or
 * absent, or a negative errno. */
int svc_sup_log_rotate(const char *dir, int stream, uint64_t limit);

/* A chunk read from a log. */
typedef struct svc_sup_log_chunk {
    uint8_t *data; /* malloc'd (NULL when len is 0) */
    size_t len;
    uint64_t offset, next_offset, size;
} svc_sup_log_chunk_t;

/* Reads up to length bytes of DIR/<stream>.log like a tail: without an offset the last length
 * bytes; with one, from there (an offset past the end means the file was rotated: reading starts
 * again at 0). An absent file reads as empty. Returns 0 and *out (free out->data), or a negative
 * errno. */
int svc_sup_log_read(const char *dir, int stream, bool has_offset, uint64_t offset, size_t length,
                     svc_sup_log_chunk_t *out);

/* Deletes DIR's log files (and .1 copies) and DIR itself when empty. Returns 0 or a negative
 * errno of the first failure other than ENOENT. */
int svc_sup_log_remove(const char *dir);

/* --- the runtime (supervise_run.c) and the methods (supervise_methods.c) -----------------------
 */

#include <uv.h>

#include "rpc/rpc.h"
#include "services/services.h"

typedef struct prog prog_t;

/* One watched process: a child spawned here (proc) or an adopted one (pidfd + poll, or only the
 * tick's /proc check when pidfd_open is not available). */
typedef struct run {
    svc_supervise_t *svc;
    prog_t *prog; /* NULL once detached: exited, replaced or the service stops */
    bool adopted, has_handle;
    int pid, pidfd;
    union {
        uv_process_t proc;
        uv_poll_t poll;
    } h;
} run_t;

typedef struct waiter {
    struct waiter *next;
    rpc_call_t *call;
} waiter_t;

struct prog {
    svc_supervise_t *svc;
    prog_t *next;
    svc_sup_def_t def;
    svc_sup_fsm_t fsm;
    bool wanted;       /* the operator wants it running (start/restart; stop clears it) */
    bool saved_wanted; /* what the table holds */
    int saved_pid;
    run_t *run;            /* the current process, NULL when none */
    int pid;               /* its pid, 0 when none */
    uint64_t pid_start;    /* its start time (field 22 of /proc/PID/stat) */
    uint64_t started_wall; /* unix ms when it started */
    int spawn_rc;          /* result of the last spawn */
    bool has_exit;
    int exit_code, exit_signal; /* last exit: code (-1 unknown/none) and signal (0 none) */
    waiter_t *waiters;
    int n_waiters;
    int rec_pid; /* at node start: the pid and start time the table recorded */
    uint64_t rec_start;
    uv_timer_t timer;
    char dir[NODE_PATH_MAX + SVC_SUP_NAME_MAX + 16]; /* DATA_DIR/programs/NAME */
};

struct svc_supervise {
    node_t *node;
    svc_sup_db_t *db;
    prog_t *progs;
    int count;
    uv_timer_t tick;
    int handles;              /* open libuv handles (tick, program timers, runs) */
    uint64_t btime_ms;        /* boot time of the machine, unix ms (uptime of adopted processes) */
    char home[NODE_PATH_MAX]; /* the absolute data dir: P2P_SUPERVISOR of our programs */
    bool rotating;            /* a log rotation batch runs on the thread pool */
    bool stopping;
    void (*done)(void *arg);
    void *done_arg;
};

/* The program named name[0..len), or NULL. */
prog_t *svc_sup_find(svc_supervise_t *svc, const char *name, size_t len);

/* The loop's monotonic clock (ms), the clock of the state machines. */
uint64_t svc_sup_now(const svc_supervise_t *svc);

/* Applies ev to p's state machine, carries the actions out (spawn, signal, kill, timer), saves
 * what changed and answers the calls waiting on p once it is not STOPPING. */
void svc_sup_feed(prog_t *p, const svc_sup_event_t *ev);

/* Writes p's wanted flag and pid to the table when they changed. */
void svc_sup_persist(prog_t *p);

/* A new STOPPED program holding def (taken over), linked into svc. NULL on no memory. */
prog_t *svc_sup_prog_new(svc_supervise_t *svc, svc_sup_def_t *def);

/* Unlinks p, answers its waiting calls UNAVAILABLE, releases its process watcher (the process
 * keeps running) and frees p once its timer closed. */
void svc_sup_prog_free(prog_t *p);

/* Packs p's status map (see docs/supervise.md); env values show as "***" unless show_env. */
void svc_sup_pack_status(msgpack_packer *pk, const prog_t *p, bool show_env);

/* Registers the process.start/stop/restart/remove/managed/logs methods with svc as context.
 * Returns 0, or a negative errno after writing one line to err. */
int svc_sup_methods_register(svc_supervise_t *svc, char *err, size_t errlen);

#endif
