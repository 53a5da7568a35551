/* job.c: process.run. A job spawns its argv (spawn.c: no shell, its own session and process group),
 * feeds stdin then closes it, collects stdout and stderr up to SVC_RUN_MAX_OUTPUT bytes each
 * (streaming each kept chunk as a job.output notification when the caller asked for _stream),
 * kills the whole group with SIGKILL when its timeout passes, its caller goes away or the node
 * stops, and answers once the command exited and its pipes drained. */
#include "services/job.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "services/spawn.h"

#define READ_CHUNK 65536 /* bytes read from a pipe at a time */

enum { OUT = 0, ERR = 1 };

typedef struct job job_t;

struct svc_jobs {
    uv_loop_t *loop;
    char node_name[64];
    job_t *head;
    int count;
    uint64_t next_id;
    bool stopping;
    void (*done)(void *arg);
    void *done_arg;
};

struct job {
    svc_jobs_t *owner;
    job_t *next, *prev;
    uint64_t id;
    rpc_call_t *call;
    bool stream, spawned, exited, finished, timed_out, cancelled;
    bool eof[2], trunc[2];
    int pid, term_signal, handles;
    int64_t exit_status;
    svc_cmd_t cmd;
    uv_process_t proc;
    uv_pipe_t in, pipes[2];
    uv_timer_t timer;
    uv_write_t wreq;
    char *stdin_data;
    size_t stdin_len;
    p2p_buf_t buf[2];
    uint64_t start_ms, kill_at_ms, drain_until_ms;
    char rbuf[READ_CHUNK];
};

static void finish(job_t *j);

static void maybe_done(svc_jobs_t *jobs)
{
    if (!jobs->stopping || jobs->head) return;
    void (*done)(void *) = jobs->done;
    void *arg = jobs->done_arg;
    free(jobs);
    if (done) done(arg);
}

static void handle_closed_cb(uv_handle_t *h)
{
    job_t *j = h->data;
    if (--j->handles > 0) return;
    svc_jobs_t *jobs = j->owner;
    if (j->prev)
        j->prev->next = j->next;
    else
        jobs->head = j->next;
    if (j->next) j->next->prev = j->prev;
    jobs->count--;
    svc_cmd_free(&j->cmd);
    free(j->stdin_data);
    p2p_buf_free(&j->buf[OUT]);
    p2p_buf_free(&j->buf[ERR]);
    free(j);
    maybe_done(jobs);
}

static void close_handle(job_t *j, uv_handle_t *h)
{
    if (h->loop && !uv_is_closing(h)) uv_close(h, handle_closed_cb);
}

static void kill_group(job_t *j)
{
    if (j->spawned && j->pid > 1) svc_kill_group(j->pid, SIGKILL);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_result(job_t *j, uint64_t now)
{
    static const char *const names[2] = {"stdout", "stderr"};
    msgpack_packer *pk = rpc_call_packer(j->call);
    msgpack_pack_map(pk, 10);
    pack_cstr(pk, "job_id");
    msgpack_pack_uint64(pk, j->id);
    pack_cstr(pk, "pid");
    msgpack_pack_int(pk, j->pid);
    pack_cstr(pk, "exit_code");
    if (j->exited && j->term_signal == 0)
        msgpack_pack_int64(pk, j->exit_status);
    else
        msgpack_pack_nil(pk);
    pack_cstr(pk, "signal");
    if (j->exited && j->term_signal != 0) {
        const char *name = svc_signal_name(j->term_signal);
        char num[16];
        snprintf(num, sizeof(num), "%d", j->term_signal);
        pack_cstr(pk, name ? name : num);
    } else {
        msgpack_pack_nil(pk);
    }
    pack_cstr(pk, "timed_out");
    if (j->timed_out)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    for (int s = 0; s < 2; s++) {
        pack_cstr(pk, names[s]);
        msgpack_pack_bin(pk, j->buf[s].len);
        msgpack_pack_bin_body(pk, j->buf[s].data, j->buf[s].len);
    }
    pack_cstr(pk, "stdout_truncated");
    if (j->trunc[OUT])
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pack_cstr(pk, "stderr_truncated");
    if (j->trunc[ERR])
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pack_cstr(pk, "duration_ms");
    msgpack_pack_uint64(pk, now - j->start_ms);
}

/* Answers (unless answered) and closes every handle; the job is freed when the last one closed. */
static void finish(job_t *j)
{
    if (j->finished) return;
    j->finished = true;
    kill_group(j); /* nothing of the group outlives its job */
    if (j->call) {
        if (j->owner->stopping)
            rpc_call_error(j->call, RPC_ERR_UNAVAILABLE, "node stopping");
        else {
            pack_result(j, p2p_mono_ms());
            rpc_call_reply(j->call);
        }
        j->call = NULL;
    }
    close_handle(j, (uv_handle_t *)&j->timer);
    close_handle(j, (uv_handle_t *)&j->in);
    close_handle(j, (uv_handle_t *)&j->pipes[OUT]);
    close_handle(j, (uv_handle_t *)&j->pipes[ERR]);
    close_handle(j, (uv_handle_t *)&j->proc);
}

static bool drained(const job_t *j)
{
    return j->eof[OUT] && j->eof[ERR];
}

static void timer_cb(uv_timer_t *t);

/* Re-arms the timer for the next thing to check: the kill time, the end of draining, the caller. */
static void rearm(job_t *j)
{
    uint64_t now = p2p_mono_ms(), at = now + SVC_RUN_POLL_MS;
    if (!j->exited && !j->timed_out && j->kill_at_ms < at) at = j->kill_at_ms;
    if (j->exited && j->drain_until_ms < at) at = j->drain_until_ms;
    uv_timer_start(&j->timer, timer_cb, at > now ? at - now : 0, 0);
}

static void timer_cb(uv_timer_t *t)
{
    job_t *j = t->data;
    uint64_t now = p2p_mono_ms();
    if (j->finished) return;
    if (!j->cancelled && (!j->call || rpc_call_cancelled(j->call))) {
        j->cancelled = true; /* the caller left or the deadline passed */
        kill_group(j);
    }
    if (!j->exited && !j->timed_out && now >= j->kill_at_ms) {
        j->timed_out = true;
        kill_group(j);
    }
    if (j->exited && (drained(j) || now >= j->drain_until_ms)) {
        finish(j);
        return;
    }
    rearm(j);
}

static void exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    job_t *j = p->data;
    j->exited = true;
    j->exit_status = status;
    j->term_signal = term_signal;
    kill_group(j); /* leftovers of the group: killed now, while the group id is surely ours */
    j->drain_until_ms = p2p_mono_ms() + SVC_RUN_DRAIN_MS;
    if (drained(j))
        finish(j);
    else if (!j->finished)
        rearm(j);
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    job_t *j = h->data;
    *buf = uv_buf_init(j->rbuf, sizeof(j->rbuf));
}

static void notify_chunk(job_t *j, int s, const char *data, size_t len)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_uint64(&pk, j->id);
    pack_cstr(&pk, j->owner->node_name);
    pack_cstr(&pk, s == OUT ? "stdout" : "stderr");
    msgpack_pack_bin(&pk, len);
    msgpack_pack_bin_body(&pk, data, len);
    if (sb.data && rpc_call_notify(j->call, "job.output", sb.data, sb.size) == -ENOTCONN &&
        !j->cancelled) {
        j->cancelled = true;
        kill_group(j);
    }
    msgpack_sbuffer_destroy(&sb);
}

static void read_cb(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    job_t *j = st->data;
    int s = st == (uv_stream_t *)&j->pipes[OUT] ? OUT : ERR;
    if (nread > 0) {
        size_t room = SVC_RUN_MAX_OUTPUT - j->buf[s].len, keep = (size_t)nread;
        if (keep > room) keep = room, j->trunc[s] = true;
        if (keep > 0 && p2p_buf_append(&j->buf[s], buf->base, keep) < 0) {
            j->trunc[s] = true;
            keep = 0;
        }
        if (keep > 0 && j->stream && j->call) notify_chunk(j, s, buf->base, keep);
        return;
    }
    if (nread == 0) return;
    j->eof[s] = true; /* UV_EOF or a read error: this stream is over */
    uv_read_stop(st);
    if (j->exited && drained(j)) finish(j);
}

static void write_cb(uv_write_t *req, int status)
{
    (void)status; /* EPIPE when the command did not read it all: not an error of the job */
    job_t *j = req->data;
    close_handle(j, (uv_handle_t *)&j->in);
}

/* The kill time of a job started now: the caller's timeout (seconds), bounded by the call's
 * remaining time less a margin to answer in. */
static uint64_t kill_time(rpc_call_t *call, uint64_t now, const msgpack_object *timeout)
{
    uint64_t deadline = rpc_call_deadline(call);
    uint64_t left = deadline > now ? deadline - now : 0;
    uint64_t margin = left / 4 < SVC_RUN_MARGIN_MS ? left / 4 : SVC_RUN_MARGIN_MS;
    uint64_t limit = left - margin;
    if (timeout) {
        double t =
            timeout->type == MSGPACK_OBJECT_FLOAT32 || timeout->type == MSGPACK_OBJECT_FLOAT64
                ? timeout->via.f64
                : (double)timeout->via.i64;
        uint64_t ms = (uint64_t)(t * 1000.0);
        if (ms < limit) limit = ms;
    }
    return now + limit;
}

/* Spawns j. Returns 0 or a negative UV_E* (the handles then still need closing). */
static int start(job_t *j, uv_loop_t *loop)
{
    int rc;
    uv_stdio_container_t stdio[3];
    memset(stdio, 0, sizeof(stdio));
    if ((rc = uv_pipe_init(loop, &j->pipes[OUT], 0)) < 0 ||
        (rc = uv_pipe_init(loop, &j->pipes[ERR], 0)) < 0)
        return rc;
    j->handles += 2;
    if (j->stdin_data) {
        if ((rc = uv_pipe_init(loop, &j->in, 0)) < 0) return rc;
        j->handles++;
        stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
        stdio[0].data.stream = (uv_stream_t *)&j->in;
    } else {
        stdio[0].flags = UV_IGNORE;
    }
    for (int s = 0; s < 2; s++) {
        stdio[1 + s].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
        stdio[1 + s].data.stream = (uv_stream_t *)&j->pipes[s];
    }
    uv_process_options_t o;
    svc_cmd_options(&j->cmd, &o, stdio, 3, exit_cb);
    j->proc.data = j;
    rc = uv_spawn(loop, &j->proc, &o);
    if (j->proc.loop) j->handles++; /* uv_spawn initialises the handle even when it fails */
    if (rc < 0) return rc;
    j->spawned = true;
    j->pid = j->proc.pid;
    for (int s = 0; s < 2; s++)
        if ((rc = uv_read_start((uv_stream_t *)&j->pipes[s], alloc_cb, read_cb)) < 0)
            j->eof[s] = true;
    if (j->stdin_data) {
        uv_buf_t b = uv_buf_init(j->stdin_data, (unsigned)j->stdin_len);
        j->wreq.data = j;
        if (j->stdin_len == 0 || uv_write(&j->wreq, (uv_stream_t *)&j->in, &b, 1, write_cb) < 0)
            close_handle(j, (uv_handle_t *)&j->in);
    }
    return 0;
}

static void spawn_error(rpc_call_t *call, int rc)
{
    if (rc == UV_ENOENT)
        rpc_call_error_param(call, RPC_ERR_NOT_FOUND, "argv", "command not found");
    else if (rc == UV_EACCES || rc == -ENOEXEC || rc == UV_EISDIR || rc == UV_ENOTDIR)
        rpc_call_error_param(call, RPC_ERR_FAILED_PRECONDITION, "argv", "cannot execute: %s",
                             uv_strerror(rc));
    else if (rc == UV_EAGAIN || rc == UV_EMFILE || rc == UV_ENFILE || rc == UV_ENOMEM)
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "cannot start: %s", uv_strerror(rc));
    else
        rpc_call_error(call, RPC_ERR_INTERNAL, "cannot start: %s", uv_strerror(rc));
}

static void run_cb(rpc_call_t *call, void *ctx)
{
    svc_jobs_t *jobs = ctx;
    const msgpack_object *timeout = rpc_call_arg(call, "timeout");
    if (timeout &&
        (timeout->type == MSGPACK_OBJECT_FLOAT32 || timeout->type == MSGPACK_OBJECT_FLOAT64)) {
        double t = timeout->via.f64;
        if (!isfinite(t) || t <= 0 || t > RPC_MAX_TIMEOUT_S) {
            rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "timeout",
                                 "timeout must be > 0 and <= %d seconds", RPC_MAX_TIMEOUT_S);
            return;
        }
    }
    if (jobs->stopping) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "node stopping");
        return;
    }
    if (jobs->count >= SVC_RUN_MAX_JOBS) {
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "%d jobs already running",
                       SVC_RUN_MAX_JOBS);
        return;
    }
    job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    size_t cwd_len = 0, in_len = 0;
    const char *cwd = rpc_call_str(call, "cwd", &cwd_len), *bad = NULL;
    const char *in = rpc_call_str(call, "stdin", &in_len);
    int rc = svc_cmd_init(&j->cmd, rpc_call_arg(call, "argv"), rpc_call_arg(call, "env"), cwd,
                          cwd_len, &bad);
    if (rc < 0) {
        free(j);
        if (rc == -EINVAL)
            rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, bad, "invalid %s", bad);
        else
            rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    if (in && !(j->stdin_data = malloc(in_len ? in_len : 1))) {
        svc_cmd_free(&j->cmd);
        free(j);
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    if (in) memcpy(j->stdin_data, in, in_len);
    j->stdin_len = in_len;
    j->owner = jobs;
    j->call = call;
    j->id = ++jobs->next_id;
    j->stream = rpc_call_stream(call);
    j->start_ms = p2p_mono_ms();
    j->kill_at_ms = kill_time(call, j->start_ms, timeout);
    p2p_buf_init(&j->buf[OUT], SVC_RUN_MAX_OUTPUT);
    p2p_buf_init(&j->buf[ERR], SVC_RUN_MAX_OUTPUT);
    j->timer.data = j->in.data = j->pipes[OUT].data = j->pipes[ERR].data = j;
    j->next = jobs->head;
    if (jobs->head) jobs->head->prev = j;
    jobs->head = j;
    jobs->count++;
    uv_timer_init(jobs->loop, &j->timer);
    j->handles = 1;
    rc = start(j, jobs->loop);
    if (rc < 0) {
        j->call = NULL;
        spawn_error(call, rc);
        j->finished = true;
        j->spawned = false;
        close_handle(j, (uv_handle_t *)&j->timer);
        close_handle(j, (uv_handle_t *)&j->in);
        close_handle(j, (uv_handle_t *)&j->pipes[OUT]);
        close_handle(j, (uv_handle_t *)&j->pipes[ERR]);
        close_handle(j, (uv_handle_t *)&j->proc);
        return;
    }
    rearm(j);
}

static const rpc_param_t run_params[] = {
    {.name = "argv",
     .types = RPC_T_ARRAY,
     .required = true,
     .range = true,
     .min = 1,
     .max = SVC_MAX_ARGV,
     .description = "the command and its arguments, passed literally (no shell)"},
    {.name = "cwd",
     .types = RPC_T_STRING,
     .range = true,
     .min = 1,
     .max = SVC_MAX_CWD,
     .description = "working directory (absolute, existing; default /)"},
    {.name = "env",
     .types = RPC_T_MAP,
     .range = true,
     .min = 0,
     .max = SVC_MAX_ENV,
     .description = "environment variables added to the clean base (PATH, LANG, HOME)"},
    {.name = "timeout",
     .types = RPC_T_INT | RPC_T_FLOAT,
     .range = true,
     .min = 1,
     .max = RPC_MAX_TIMEOUT_S,
     .description = "seconds before the process group is killed (default and upper bound: the "
                    "call's remaining time)"},
    {.name = "stdin",
     .types = RPC_T_STRING | RPC_T_BYTES,
     .range = true,
     .min = 0,
     .max = SVC_RUN_MAX_STDIN,
     .description = "bytes written to the command's standard input, which is then closed"},
};

int svc_jobs_new(uv_loop_t *loop, const char *node_name, svc_jobs_t **out)
{
    svc_jobs_t *jobs = calloc(1, sizeof(*jobs));
    if (!jobs) return -ENOMEM;
    jobs->loop = loop;
    snprintf(jobs->node_name, sizeof(jobs->node_name), "%s", node_name ? node_name : "");
    *out = jobs;
    return 0;
}

int svc_jobs_register(svc_jobs_t *jobs, rpc_registry_t *reg)
{
    const rpc_method_t m = {
        .name = "process.run",
        .description = "Runs a command (argv, no shell) to completion; returns its exit status "
                       "and output (streamed as job.output notifications with _stream).",
        .role = RPC_ROLE_ADMIN,
        .params = run_params,
        .n_params = P2P_ARRAY_LEN(run_params),
        .handler = run_cb,
        .ctx = jobs,
        .changes = true,
    };
    return rpc_registry_add(reg, &m);
}

int svc_jobs_count(const svc_jobs_t *jobs)
{
    return jobs->count;
}

void svc_jobs_stop(svc_jobs_t *jobs, void (*done)(void *arg), void *arg)
{
    if (!jobs) return;
    jobs->stopping = true;
    jobs->done = done;
    jobs->done_arg = arg;
    if (!jobs->head) {
        maybe_done(jobs);
        return;
    }
    for (job_t *j = jobs->head; j; j = j->next)
        finish(j);
}
