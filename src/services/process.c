/* process.c: the process domain's list, info and signal methods and the service's start/stop
 * (process.run lives in job.c, supervised programs in supervise*.c). process.list and
 * signal-by-name need a scan of /proc (procfs.c); a scan runs on the libuv thread pool, one at a
 * time, and every call that arrived before it started is answered from it (filter, sort and limit
 * applied per call on the loop). process.info reads one process directly on the loop. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "rpc/rpc.h"
#include "services/job.h"
#include "services/procfs.h"
#include "services/services.h"
#include "services/spawn.h"

#ifndef SVC_PROC_MAX_FILTER
#define SVC_PROC_MAX_FILTER 256 /* bytes of a process.list filter */
#endif
#ifndef SVC_PROC_MAX_LIMIT
#define SVC_PROC_MAX_LIMIT 100000 /* entries process.list returns at most */
#endif
#ifndef SVC_PROC_INFO_CMDLINE
#define SVC_PROC_INFO_CMDLINE 8192 /* bytes of cmdline process.info returns */
#endif
#ifndef SVC_PROC_MAX_WAITING
#define SVC_PROC_MAX_WAITING 256 /* list/signal calls waiting for a scan */
#endif

enum sort_key { SORT_PID, SORT_CPU, SORT_RSS, SORT_NAME, SORT_START };

/* A call waiting for a scan: process.list, or process.signal by name. */
typedef struct waiter {
    struct waiter *next;
    rpc_call_t *call;
    bool is_signal;
    int sig;
    enum sort_key sort;
    bool reverse;
    int64_t limit;
    size_t filter_len;
    char filter[SVC_PROC_MAX_FILTER + 1]; /* list: the filter; signal: the name */
} waiter_t;

struct svc_process {
    node_t *node;
    svc_procfs_t *fs;
    svc_jobs_t *jobs;
    uv_work_t work;
    bool scanning, stopping;
    int scan_rc;
    waiter_t *waiting, **waiting_tail; /* arrived since the running scan started */
    waiter_t *batch;                   /* answered by the running scan */
    int n_waiting;
    int parts; /* stop: scan and jobs still to finish */
    void (*done)(void *arg);
    void *done_arg;
};

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_kv_int(msgpack_packer *pk, const char *k, int64_t v)
{
    pack_cstr(pk, k);
    msgpack_pack_int64(pk, v);
}

/* The ten fields every process has in list and info. */
static void pack_common(msgpack_packer *pk, const svc_proc_entry_t *e, const char *user,
                        const char *cmd, size_t cmd_len)
{
    pack_kv_int(pk, "pid", e->st.pid);
    pack_kv_int(pk, "ppid", e->st.ppid);
    pack_cstr(pk, "user");
    pack_cstr(pk, user);
    pack_cstr(pk, "name");
    pack_cstr(pk, e->st.name);
    pack_cstr(pk, "cmdline");
    msgpack_pack_str(pk, cmd_len);
    msgpack_pack_str_body(pk, cmd, cmd_len);
    pack_cstr(pk, "state");
    msgpack_pack_str(pk, 1);
    msgpack_pack_str_body(pk, &e->st.state, 1);
    pack_cstr(pk, "cpu_percent");
    msgpack_pack_double(pk, (double)(int64_t)(e->cpu_percent * 100.0 + 0.5) / 100.0);
    pack_kv_int(pk, "rss", (int64_t)e->rss_bytes);
    pack_kv_int(pk, "start_time", (int64_t)e->start_time);
    pack_kv_int(pk, "threads", e->st.threads);
}

/* --- process.list ------------------------------------------------------------------------- */

static int cmp_pid(const void *a, const void *b)
{
    int x = (*(const svc_proc_entry_t *const *)a)->st.pid;
    int y = (*(const svc_proc_entry_t *const *)b)->st.pid;
    return (x > y) - (x < y);
}

static int cmp_cpu(const void *a, const void *b) /* busiest first */
{
    double x = (*(const svc_proc_entry_t *const *)a)->cpu_percent;
    double y = (*(const svc_proc_entry_t *const *)b)->cpu_percent;
    return x != y ? (x < y) - (x > y) : cmp_pid(a, b);
}

static int cmp_rss(const void *a, const void *b) /* largest first */
{
    uint64_t x = (*(const svc_proc_entry_t *const *)a)->rss_bytes;
    uint64_t y = (*(const svc_proc_entry_t *const *)b)->rss_bytes;
    return x != y ? (x < y) - (x > y) : cmp_pid(a, b);
}

static int cmp_name(const void *a, const void *b)
{
    int c = strcmp((*(const svc_proc_entry_t *const *)a)->st.name,
                   (*(const svc_proc_entry_t *const *)b)->st.name);
    return c ? c : cmp_pid(a, b);
}

static int cmp_start(const void *a, const void *b) /* oldest first */
{
    uint64_t x = (*(const svc_proc_entry_t *const *)a)->st.starttime;
    uint64_t y = (*(const svc_proc_entry_t *const *)b)->st.starttime;
    return x != y ? (x > y) - (x < y) : cmp_pid(a, b);
}

/* memmem that treats an empty needle as a match. */
static bool contains(const char *hay, size_t hay_len, const char *needle, size_t len)
{
    return len == 0 || memmem(hay, hay_len, needle, len) != NULL;
}

static void answer_list(svc_process_t *svc, waiter_t *w)
{
    size_t n = 0;
    const svc_proc_entry_t *e = svc_procfs_entries(svc->fs, &n);
    const char *text = svc_procfs_text(svc->fs);
    const svc_proc_entry_t **sel = malloc((n ? n : 1) * sizeof(*sel));
    if (!sel) {
        rpc_call_error(w->call, RPC_ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const char *user = svc_procfs_user(svc->fs, e[i].uid);
        if (w->filter_len == 0 ||
            contains(e[i].st.name, strlen(e[i].st.name), w->filter, w->filter_len) ||
            contains(text + e[i].cmd_off, e[i].cmd_len, w->filter, w->filter_len) ||
            contains(user, strlen(user), w->filter, w->filter_len))
            sel[m++] = &e[i];
    }
    static int (*const cmps[])(const void *, const void *) = {cmp_pid, cmp_cpu, cmp_rss, cmp_name,
                                                              cmp_start};
    if (w->sort != SORT_PID) qsort(sel, m, sizeof(*sel), cmps[w->sort]);
    if (w->reverse)
        for (size_t i = 0; i < m / 2; i++) {
            const svc_proc_entry_t *t = sel[i];
            sel[i] = sel[m - 1 - i];
            sel[m - 1 - i] = t;
        }
    if (w->limit > 0 && (size_t)w->limit < m) m = (size_t)w->limit;
    msgpack_packer *pk = rpc_call_packer(w->call);
    msgpack_pack_array(pk, m);
    for (size_t i = 0; i < m; i++) {
        msgpack_pack_map(pk, 10);
        pack_common(pk, sel[i], svc_procfs_user(svc->fs, sel[i]->uid), text + sel[i]->cmd_off,
                    sel[i]->cmd_len);
    }
    free(sel);
    rpc_call_reply(w->call);
}

/* --- process.signal by name (after a scan) ------------------------------------------------- */

static bool protected_pid(int pid)
{
    return pid <= 1 || pid == (int)getpid();
}

/* True when the process's name or the base name of its argv[0] is `name`. */
static bool name_matches(const svc_proc_entry_t *e, const char *text, const char *name, size_t len)
{
    if (strlen(e->st.name) == len && memcmp(e->st.name, name, len) == 0) return true;
    const char *cmd = text + e->cmd_off, *sp = memchr(cmd, ' ', e->cmd_len);
    size_t a0 = sp ? (size_t)(sp - cmd) : e->cmd_len;
    const char *slash = memrchr(cmd, '/', a0);
    const char *base = slash ? slash + 1 : cmd;
    size_t blen = a0 - (size_t)(base - cmd);
    return blen == len && memcmp(base, name, len) == 0;
}

static void answer_signal(svc_process_t *svc, waiter_t *w)
{
    size_t n = 0, hit = 0, denied = 0, prot = 0;
    const svc_proc_entry_t *e = svc_procfs_entries(svc->fs, &n);
    const char *text = svc_procfs_text(svc->fs);
    int *pids = malloc((n ? n : 1) * sizeof(int));
    if (!pids) {
        rpc_call_error(w->call, RPC_ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const svc_proc_entry_t *p = &e[i];
        if (p->st.state == 'Z' || p->st.pid == 2 || p->st.ppid == 2) continue; /* zombie, kthread */
        if (!name_matches(p, text, w->filter, w->filter_len)) continue;
        if (protected_pid(p->st.pid)) {
            prot++;
            continue;
        }
        /* the same process as scanned (not a reused pid)? */
        svc_proc_entry_t now;
        char cmd[8];
        if (svc_procfs_read(svc->fs, p->st.pid, false, &now, cmd, sizeof(cmd)) < 0 ||
            now.st.starttime != p->st.starttime)
            continue;
        if (kill(p->st.pid, w->sig) == 0)
            pids[hit++] = p->st.pid;
        else if (errno == EPERM)
            denied++;
    }
    if (hit == 0) {
        if (denied || prot)
            rpc_call_error_param(w->call, RPC_ERR_PERMISSION_DENIED, "name",
                                 "no process named %s may be signalled", w->filter);
        else
            rpc_call_error_param(w->call, RPC_ERR_NOT_FOUND, "name", "no process named %s",
                                 w->filter);
        free(pids);
        return;
    }
    msgpack_packer *pk = rpc_call_packer(w->call);
    msgpack_pack_map(pk, 1);
    pack_cstr(pk, "signaled");
    msgpack_pack_array(pk, hit);
    for (size_t i = 0; i < hit; i++)
        msgpack_pack_int(pk, pids[i]);
    free(pids);
    rpc_call_reply(w->call);
}

/* --- the scan queue ----------------------------------------------------------------------- */

static void stop_part_done(svc_process_t *svc);

static void scan_work_cb(uv_work_t *req)
{
    svc_process_t *svc = req->data;
    svc->scan_rc = svc_procfs_scan(svc->fs);
}

static void start_scan(svc_process_t *svc);

static void scan_after_cb(uv_work_t *req, int status)
{
    svc_process_t *svc = req->data;
    svc->scanning = false;
    waiter_t *w = svc->batch;
    svc->batch = NULL;
    while (w) {
        waiter_t *next = w->next;
        if (svc->stopping || status < 0)
            rpc_call_error(w->call, RPC_ERR_UNAVAILABLE, "process service stopping");
        else if (svc->scan_rc < 0)
            rpc_call_error(w->call, RPC_ERR_INTERNAL, "reading /proc: %s", strerror(-svc->scan_rc));
        else if (w->is_signal)
            answer_signal(svc, w);
        else
            answer_list(svc, w);
        free(w);
        w = next;
    }
    if (svc->stopping) {
        stop_part_done(svc);
        return;
    }
    if (svc->waiting) start_scan(svc);
}

static void start_scan(svc_process_t *svc)
{
    svc->batch = svc->waiting;
    svc->waiting = NULL;
    svc->waiting_tail = &svc->waiting;
    svc->n_waiting = 0;
    svc->work.data = svc;
    svc->scanning = true;
    int rc = uv_queue_work(svc->node->loop, &svc->work, scan_work_cb, scan_after_cb);
    if (rc < 0) {
        svc->scan_rc = rc;
        scan_after_cb(&svc->work, 0); /* answers the batch with the error */
    }
}

/* Queues w (taking it) for the next scan. */
static void enqueue(svc_process_t *svc, waiter_t *w)
{
    if (svc->n_waiting >= SVC_PROC_MAX_WAITING) {
        rpc_call_error(w->call, RPC_ERR_RESOURCE_EXHAUSTED, "too many process.list calls waiting");
        free(w);
        return;
    }
    w->next = NULL;
    *svc->waiting_tail = w;
    svc->waiting_tail = &w->next;
    svc->n_waiting++;
    if (!svc->scanning) start_scan(svc);
}

static void list_cb(rpc_call_t *call, void *ctx)
{
    svc_process_t *svc = ctx;
    static const char *const sorts[] = {"pid", "cpu", "rss", "name", "start"};
    size_t slen = 0, flen = 0;
    const char *sort = rpc_call_str(call, "sort", &slen);
    const char *filter = rpc_call_str(call, "filter", &flen);
    int key = -1;
    for (int i = 0; i < (int)P2P_ARRAY_LEN(sorts); i++)
        if (sort && strlen(sorts[i]) == slen && memcmp(sorts[i], sort, slen) == 0) key = i;
    if (key < 0) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "sort",
                             "sort must be pid, cpu, rss, name or start");
        return;
    }
    waiter_t *w = calloc(1, sizeof(*w));
    if (!w) {
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    w->call = call;
    w->sort = (enum sort_key)key;
    w->reverse = rpc_call_bool(call, "reverse");
    w->limit = rpc_call_int(call, "limit");
    if (filter) memcpy(w->filter, filter, flen);
    w->filter_len = flen;
    enqueue(svc, w);
}

/* --- process.info ------------------------------------------------------------------------- */

/* Picks the interesting lines of /proc/PID/status: sizes (kB) become bytes. */
static const char *const status_keys[] = {"VmPeak",
                                          "VmSize",
                                          "VmLck",
                                          "VmHWM",
                                          "VmRSS",
                                          "VmData",
                                          "VmStk",
                                          "VmExe",
                                          "VmLib",
                                          "VmSwap",
                                          "voluntary_ctxt_switches",
                                          "nonvoluntary_ctxt_switches"};

static int status_value(const char *status, const char *key, int64_t *v)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\n%s:", key);
    const char *p = strstr(status, pat);
    if (!p) return -ENOENT;
    p += strlen(pat);
    char *end;
    long long x = strtoll(p, &end, 10);
    if (end == p) return -EINVAL;
    while (*end == ' ' || *end == '\t')
        end++;
    *v = (int64_t)x * (strncmp(end, "kB", 2) == 0 ? 1024 : 1);
    return 0;
}

static void info_cb(rpc_call_t *call, void *ctx)
{
    svc_process_t *svc = ctx;
    int pid = (int)rpc_call_int(call, "pid");
    svc_proc_entry_t e;
    char *cmd = malloc(SVC_PROC_INFO_CMDLINE + 1), *status = malloc(16384);
    char exe[4096], cwd[4096], cg[4096];
    if (!cmd || !status) {
        free(cmd);
        free(status);
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    int rc = svc_procfs_read(svc->fs, pid, !svc->scanning, &e, cmd, SVC_PROC_INFO_CMDLINE + 1);
    int64_t tgid = pid;
    if (rc == 0 && svc_procfs_read_file(svc->fs, pid, "status", status + 1, 16383) >= 0) {
        status[0] = '\n';
        status_value(status, "Tgid", &tgid);
    } else {
        status[0] = '\0';
    }
    if (rc < 0 || tgid != pid) {
        free(cmd);
        free(status);
        if (rc == -ENOENT || rc == -ESRCH || rc == 0)
            rpc_call_error_param(call, RPC_ERR_NOT_FOUND, "pid", "no process %d", pid);
        else
            rpc_call_error(call, RPC_ERR_INTERNAL, "reading process %d: %s", pid, strerror(-rc));
        return;
    }
    int n_exe = svc_procfs_readlink(svc->fs, pid, "exe", exe, sizeof(exe));
    int n_cwd = svc_procfs_readlink(svc->fs, pid, "cwd", cwd, sizeof(cwd));
    int n_env = svc_procfs_count_strings(svc->fs, pid, "environ");
    int n_fds = svc_procfs_count_dir(svc->fs, pid, "fd");
    const char *cgroup = NULL;
    if (svc_procfs_read_file(svc->fs, pid, "cgroup", cg, sizeof(cg)) > 0) {
        /* the unified hierarchy's line "0::PATH" when there is one, else the first line */
        char *line = strncmp(cg, "0::", 3) == 0 ? cg : strstr(cg, "\n0::");
        line = !line ? cg : line == cg ? cg : line + 1;
        char *c = strchr(line, ':'), *nl;
        c = c ? strchr(c + 1, ':') : NULL;
        if (c) {
            cgroup = c + 1;
            if ((nl = strchr(cgroup, '\n'))) *nl = '\0';
        }
    }
    size_t n_status = 0;
    int64_t sv[P2P_ARRAY_LEN(status_keys)];
    bool have[P2P_ARRAY_LEN(status_keys)];
    for (size_t i = 0; i < P2P_ARRAY_LEN(status_keys); i++)
        if ((have[i] = status_value(status, status_keys[i], &sv[i]) == 0)) n_status++;
    int64_t uid_e = e.uid;
    {
        const char *u = strstr(status, "\nUid:");
        if (u) sscanf(u + 5, "%*d %lld", (long long *)&uid_e);
    }
    size_t n = 10 + 10 + (n_exe >= 0) + (n_cwd >= 0) + (n_env >= 0) + (n_fds >= 0) + (cgroup != 0);
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, n);
    pack_common(pk, &e, svc_procfs_user(svc->fs, e.uid), cmd, e.cmd_len);
    pack_kv_int(pk, "uid", e.uid);
    pack_kv_int(pk, "euid", uid_e);
    pack_kv_int(pk, "pgid", e.st.pgrp);
    pack_kv_int(pk, "sid", e.st.session);
    pack_kv_int(pk, "tty_nr", e.st.tty_nr);
    pack_kv_int(pk, "nice", e.st.nice);
    pack_kv_int(pk, "priority", e.st.priority);
    pack_kv_int(pk, "vsize", (int64_t)e.st.vsize);
    pack_cstr(pk, "cpu_seconds");
    msgpack_pack_double(pk, (double)(e.st.utime + e.st.stime) / (double)svc_procfs_hz(svc->fs));
    pack_cstr(pk, "status");
    msgpack_pack_map(pk, n_status);
    for (size_t i = 0; i < P2P_ARRAY_LEN(status_keys); i++)
        if (have[i]) pack_kv_int(pk, status_keys[i], sv[i]);
    if (n_exe >= 0) pack_cstr(pk, "exe"), pack_cstr(pk, exe);
    if (n_cwd >= 0) pack_cstr(pk, "cwd"), pack_cstr(pk, cwd);
    if (n_env >= 0) pack_kv_int(pk, "environ_count", n_env);
    if (n_fds >= 0) pack_kv_int(pk, "fds", n_fds);
    if (cgroup) pack_cstr(pk, "cgroup"), pack_cstr(pk, cgroup);
    free(cmd);
    free(status);
    rpc_call_reply(call);
}

/* --- process.signal ----------------------------------------------------------------------- */

static void signal_cb(rpc_call_t *call, void *ctx)
{
    svc_process_t *svc = ctx;
    const msgpack_object *pid_o = rpc_call_arg(call, "pid"), *sig_o = rpc_call_arg(call, "signal");
    size_t nlen = 0;
    const char *name = rpc_call_str(call, "name", &nlen);
    if ((pid_o != NULL) == (name != NULL)) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, pid_o ? "name" : "pid",
                             "give exactly one of pid and name");
        return;
    }
    int sig = 0;
    if (sig_o->type == MSGPACK_OBJECT_STR) {
        if (svc_signal_parse(sig_o->via.str.ptr, sig_o->via.str.size, &sig) < 0) {
            rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "signal", "unknown signal");
            return;
        }
    } else {
        sig = (int)sig_o->via.i64;
        if (sig < 1 || sig > SIGRTMAX) {
            rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "signal", "signal must be 1..%d",
                                 SIGRTMAX);
            return;
        }
    }
    if (name) {
        waiter_t *w = calloc(1, sizeof(*w));
        if (!w) {
            rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "out of memory");
            return;
        }
        w->call = call;
        w->is_signal = true;
        w->sig = sig;
        memcpy(w->filter, name, nlen);
        w->filter_len = nlen;
        enqueue(svc, w);
        return;
    }
    int pid = (int)pid_o->via.i64;
    if (protected_pid(pid)) {
        rpc_call_error_param(call, RPC_ERR_PERMISSION_DENIED, "pid",
                             "pid %d (init or this node) may not be signalled", pid);
        return;
    }
    if (kill(pid, sig) != 0) {
        int err = errno;
        if (err == ESRCH)
            rpc_call_error_param(call, RPC_ERR_NOT_FOUND, "pid", "no process %d", pid);
        else
            rpc_call_error_param(call, RPC_ERR_PERMISSION_DENIED, "pid", "kill: %s", strerror(err));
        return;
    }
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 1);
    pack_cstr(pk, "signaled");
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, pid);
    rpc_call_reply(call);
}

/* --- registration, start, stop ------------------------------------------------------------ */

static const rpc_param_t list_params[] = {
    {.name = "filter",
     .types = RPC_T_STRING,
     .range = true,
     .min = 0,
     .max = SVC_PROC_MAX_FILTER,
     .description = "keep processes whose name, cmdline or user contains this text"},
    {.name = "sort",
     .types = RPC_T_STRING,
     .has_default = true,
     .def_str = "pid",
     .range = true,
     .min = 1,
     .max = 8,
     .description = "pid | cpu (busiest first) | rss (largest first) | name | start (oldest "
                    "first)"},
    {.name = "reverse",
     .types = RPC_T_BOOL,
     .has_default = true,
     .def_bool = false,
     .description = "reverse the order"},
    {.name = "limit",
     .types = RPC_T_INT,
     .range = true,
     .min = 1,
     .max = SVC_PROC_MAX_LIMIT,
     .description = "return at most this many (after sorting)"},
};

static const rpc_param_t info_params[] = {
    {.name = "pid",
     .types = RPC_T_INT,
     .required = true,
     .range = true,
     .min = 1,
     .max = INT32_MAX,
     .description = "process id"},
};

static const rpc_param_t signal_params[] = {
    {.name = "pid",
     .types = RPC_T_INT,
     .range = true,
     .min = 1,
     .max = INT32_MAX,
     .description = "process id (not 1, not this node's own)"},
    {.name = "name",
     .types = RPC_T_STRING,
     .range = true,
     .min = 1,
     .max = SVC_PROC_MAX_FILTER,
     .description = "every process with this name (or argv[0] base name)"},
    {.name = "signal",
     .types = RPC_T_STRING | RPC_T_INT,
     .required = true,
     .range = true,
     .min = 1,
     .max = 64,
     .description = "TERM, KILL, HUP, INT, QUIT, USR1, USR2, STOP, CONT... or a number"},
};

int svc_process_start(node_t *node, svc_process_t **out, char *err, size_t errlen)
{
    int rc = -ENOMEM;
    svc_process_t *svc = calloc(1, sizeof(*svc));
    if (!svc) goto fail;
    svc->node = node;
    svc->waiting_tail = &svc->waiting;
    if ((rc = svc_procfs_open(NULL, &svc->fs)) < 0) {
        snprintf(err, errlen, "process service: cannot open /proc: %s", strerror(-rc));
        goto fail;
    }
    if ((rc = svc_jobs_new(node->loop, node->cfg.name, &svc->jobs)) < 0) goto fail;
    const rpc_method_t methods[] = {
        {.name = "process.list",
         .description = "Processes with pid, ppid, user, name, cmdline, state, CPU %, RSS, "
                        "start time, threads.",
         .role = RPC_ROLE_VIEWER,
         .params = list_params,
         .n_params = P2P_ARRAY_LEN(list_params),
         .handler = list_cb,
         .ctx = svc},
        {.name = "process.info",
         .description = "One process in detail: exe, cwd, fds, memory, cgroup...",
         .role = RPC_ROLE_VIEWER,
         .params = info_params,
         .n_params = P2P_ARRAY_LEN(info_params),
         .handler = info_cb,
         .ctx = svc},
        {.name = "process.signal",
         .description = "Sends a signal to a process (pid) or every process of a name.",
         .role = RPC_ROLE_OPERATOR,
         .params = signal_params,
         .n_params = P2P_ARRAY_LEN(signal_params),
         .handler = signal_cb,
         .ctx = svc,
         .changes = true},
    };
    for (size_t i = 0; i < P2P_ARRAY_LEN(methods); i++)
        if ((rc = rpc_registry_add(node->reg, &methods[i])) < 0) {
            snprintf(err, errlen, "process service: cannot register %s: %s", methods[i].name,
                     strerror(-rc));
            goto fail;
        }
    if ((rc = svc_jobs_register(svc->jobs, node->reg)) < 0) {
        snprintf(err, errlen, "process service: cannot register process.run: %s", strerror(-rc));
        goto fail;
    }
    *out = svc;
    return 0;
fail:
    if (rc == -ENOMEM) snprintf(err, errlen, "process service: out of memory");
    if (svc) {
        svc_procfs_close(svc->fs);
        if (svc->jobs) svc_jobs_stop(svc->jobs, NULL, NULL);
        free(svc);
    }
    return rc;
}

static void stop_part_done(svc_process_t *svc)
{
    if (--svc->parts > 0) return;
    void (*done)(void *) = svc->done;
    void *arg = svc->done_arg;
    svc_procfs_close(svc->fs);
    free(svc);
    if (done) done(arg);
}

static void jobs_done_cb(void *arg)
{
    stop_part_done(arg);
}

void svc_process_stop(svc_process_t *svc, void (*done)(void *arg), void *arg)
{
    if (!svc || svc->stopping) return;
    svc->stopping = true;
    svc->done = done;
    svc->done_arg = arg;
    svc->parts = 2; /* the jobs, and the scan (or nothing) */
    for (waiter_t *w = svc->waiting, *next; w; w = next) {
        next = w->next;
        rpc_call_error(w->call, RPC_ERR_UNAVAILABLE, "process service stopping");
        free(w);
    }
    svc->waiting = NULL;
    bool scanning = svc->scanning;
    svc_jobs_stop(svc->jobs, jobs_done_cb, svc);
    if (!scanning) stop_part_done(svc); /* else scan_after_cb finishes the part */
}
