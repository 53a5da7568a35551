/* supervise_methods.c: the methods of supervised programs: process.start, .stop, .restart,
 * .remove, .managed and .logs with their parameter schemas, and the program's status as every
 * answer shows it. The runtime they drive is supervise_run.c. */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "node/log.h"
#include "rpc/rpc.h"
#include "services/services.h"
#include "services/supervise-internal.h"

static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* --- the methods ---------------------------------------------------------------------------- */

/* The spec map; with !show_env the env values are replaced by "***" (they may hold secrets and
 * viewers may read the definition). */
static void pack_definition(msgpack_packer *pk, const prog_t *p, bool show_env)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)p->def.spec, p->def.spec_len, NULL) !=
            MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_pack_nil(pk);
        msgpack_unpacked_destroy(&u);
        return;
    }
    const msgpack_object_map *m = &u.data.via.map;
    msgpack_pack_map(pk, m->size);
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        msgpack_pack_object(pk, *k);
        bool env = k->type == MSGPACK_OBJECT_STR && k->via.str.size == 3 &&
                   memcmp(k->via.str.ptr, "env", 3) == 0 && v->type == MSGPACK_OBJECT_MAP;
        if (!env || show_env) {
            msgpack_pack_object(pk, *v);
            continue;
        }
        msgpack_pack_map(pk, v->via.map.size);
        for (uint32_t j = 0; j < v->via.map.size; j++) {
            msgpack_pack_object(pk, v->via.map.ptr[j].key);
            pack_str(pk, "***");
        }
    }
    msgpack_unpacked_destroy(&u);
}

void svc_sup_pack_status(msgpack_packer *pk, const prog_t *p, bool show_env)
{
    uint64_t now = svc_sup_now(p->svc), wall = p2p_wall_ms();
    uint64_t since = wall - (now - (p->fsm.since ? p->fsm.since : now));
    msgpack_pack_map(pk, 11);
    pack_str(pk, "name");
    pack_str(pk, p->def.name);
    pack_str(pk, "state");
    pack_str(pk, svc_sup_state_name(p->fsm.state));
    pack_str(pk, "pid");
    if (p->pid > 0)
        msgpack_pack_int(pk, p->pid);
    else
        msgpack_pack_nil(pk);
    pack_str(pk, "since");
    msgpack_pack_uint64(pk, since / 1000);
    pack_str(pk, "uptime");
    msgpack_pack_uint64(pk,
                        p->pid > 0 && wall > p->started_wall ? (wall - p->started_wall) / 1000 : 0);
    pack_str(pk, "restarts");
    msgpack_pack_uint32(pk, p->fsm.restarts);
    pack_str(pk, "exit_code");
    if (p->has_exit && p->exit_code >= 0)
        msgpack_pack_int(pk, p->exit_code);
    else
        msgpack_pack_nil(pk);
    pack_str(pk, "exit_signal");
    const char *sig = p->has_exit && p->exit_signal ? svc_signal_name(p->exit_signal) : NULL;
    if (sig)
        pack_str(pk, sig);
    else if (p->has_exit && p->exit_signal)
        msgpack_pack_int(pk, p->exit_signal);
    else
        msgpack_pack_nil(pk);
    pack_str(pk, "wanted");
    if (p->wanted)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pack_str(pk, "adopted");
    if (p->run && p->run->adopted)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    pack_str(pk, "definition");
    pack_definition(pk, p, show_env);
}

static void reply_status(rpc_call_t *call, const prog_t *p)
{
    svc_sup_pack_status(rpc_call_packer(call), p, rpc_call_role(call) >= RPC_ROLE_OPERATOR);
    rpc_call_reply(call);
}

/* Finds the program named by the call's `name`, answering NOT_FOUND when there is none. */
static prog_t *call_prog(svc_supervise_t *svc, rpc_call_t *call)
{
    size_t len = 0;
    const char *name = rpc_call_str(call, "name", &len);
    prog_t *p = name ? svc_sup_find(svc, name, len) : NULL;
    if (!p) rpc_call_error_param(call, RPC_ERR_NOT_FOUND, "name", "no such program");
    return p;
}

static int add_waiter(prog_t *p, rpc_call_t *call)
{
    if (p->n_waiters >= SVC_SUP_MAX_WAITERS) return -ENOSPC;
    waiter_t *w = calloc(1, sizeof(*w));
    if (!w) return -ENOMEM;
    w->call = call;
    w->next = p->waiters;
    p->waiters = w;
    p->n_waiters++;
    return 0;
}

/* Answers now when p is not STOPPING, else when it leaves STOPPING. */
static void reply_when_settled(prog_t *p, rpc_call_t *call)
{
    if (p->fsm.state != SVC_SUP_STOPPING) {
        reply_status(call, p);
        return;
    }
    if (add_waiter(p, call) < 0)
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "too many calls waiting on %s",
                       p->def.name);
}

/* Packs the start parameters, defaults filled in, as the program's spec. */
static void pack_spec(rpc_call_t *call, msgpack_packer *pk)
{
    static const char *const opt[] = {"cwd", "env"};
    size_t n = 8;
    for (size_t i = 0; i < P2P_ARRAY_LEN(opt); i++)
        if (rpc_call_arg(call, opt[i])) n++;
    msgpack_pack_map(pk, n);
    pack_str(pk, "name");
    msgpack_pack_object(pk, *rpc_call_arg(call, "name"));
    pack_str(pk, "argv");
    msgpack_pack_object(pk, *rpc_call_arg(call, "argv"));
    for (size_t i = 0; i < P2P_ARRAY_LEN(opt); i++) {
        const msgpack_object *o = rpc_call_arg(call, opt[i]);
        if (!o) continue;
        pack_str(pk, opt[i]);
        msgpack_pack_object(pk, *o);
    }
    size_t len;
    const char *ar = rpc_call_str(call, "autorestart", &len);
    pack_str(pk, "autorestart");
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, ar, len);
    pack_str(pk, "exitcodes");
    const msgpack_object *codes = rpc_call_arg(call, "exitcodes");
    if (codes) {
        msgpack_pack_object(pk, *codes);
    } else {
        msgpack_pack_array(pk, 1);
        msgpack_pack_int(pk, 0);
    }
    static const char *const ints[] = {"startsecs", "startretries", "stop_wait"};
    for (size_t i = 0; i < P2P_ARRAY_LEN(ints); i++) {
        pack_str(pk, ints[i]);
        msgpack_pack_int64(pk, rpc_call_int(call, ints[i]));
    }
    pack_str(pk, "stop_signal");
    const msgpack_object *sig = rpc_call_arg(call, "stop_signal");
    if (sig)
        msgpack_pack_object(pk, *sig);
    else
        pack_str(pk, SVC_SUP_DEFAULT_STOP_SIGNAL);
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

static void start_cb(rpc_call_t *call, void *ctx)
{
    svc_supervise_t *svc = ctx;
    size_t len = 0;
    const char *name = rpc_call_str(call, "name", &len), *bad = NULL;
    if (!svc_sup_name_valid(name, len)) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "name",
                             "name must be 1..%d of [A-Za-z0-9_.-], not . or ..", SVC_SUP_NAME_MAX);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    pack_spec(call, &pk);
    svc_sup_def_t def;
    int rc = sb.data ? svc_sup_def_parse(sb.data, sb.size, &def, &bad) : -ENOMEM;
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0 && (rc = svc_sup_cmd_mark(&def.cmd, def.name, svc->home)) < 0)
        svc_sup_def_free(&def);
    if (rc == -EINVAL) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, bad, "invalid %s", bad);
        return;
    }
    if (rc < 0) {
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    prog_t *p = svc_sup_find(svc, name, len);
    if (p && svc_sup_is_active(p->fsm.state)) {
        rpc_call_error_param(call, RPC_ERR_CONFLICT, "name", "program %s is %s", p->def.name,
                             svc_sup_state_name(p->fsm.state));
        goto fail;
    }
    if (!p && svc->count >= SVC_SUP_MAX_PROGRAMS) {
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "%d programs already defined",
                       SVC_SUP_MAX_PROGRAMS);
        goto fail;
    }
    rc = svc_sup_db_put(svc->db, def.name, def.spec, def.spec_len, true, 0, 0,
                        (int64_t)p2p_wall_ms());
    if (rc < 0) {
        rpc_call_error(call, RPC_ERR_INTERNAL, "cannot save the program");
        goto fail;
    }
    bool is_new = p == NULL;
    svc_sup_def_t old = {0};
    svc_sup_fsm_t old_fsm = {0};
    bool old_wanted = false;
    if (is_new) {
        if (!(p = svc_sup_prog_new(svc, &def))) {
            svc_sup_db_delete(svc->db, def.name);
            rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "out of memory");
            goto fail;
        }
    } else {
        old = p->def;
        old_fsm = p->fsm;
        old_wanted = p->wanted;
        p->def = def;
    }
    p->wanted = p->saved_wanted = true;
    p->saved_pid = 0;
    svc_sup_event_t ev = {.type = SVC_SUP_EV_START};
    svc_sup_feed(p, &ev);
    if (p->spawn_rc < 0 && !p->run) { /* nothing started: the call changes nothing */
        spawn_error(call, p->spawn_rc);
        uv_timer_stop(&p->timer);
        if (is_new) {
            svc_sup_db_delete(svc->db, p->def.name);
            svc_sup_prog_free(p);
            return;
        }
        svc_sup_def_free(&p->def);
        p->def = old;
        p->fsm = old_fsm;
        p->wanted = p->saved_wanted = old_wanted;
        svc_sup_db_put(svc->db, p->def.name, p->def.spec, p->def.spec_len, false, 0, 0,
                       (int64_t)p2p_wall_ms());
        return;
    }
    svc_sup_def_free(&old);
    reply_status(call, p);
    return;
fail:
    svc_sup_def_free(&def);
}

static void stop_cb(rpc_call_t *call, void *ctx)
{
    prog_t *p = call_prog(ctx, call);
    if (!p) return;
    svc_sup_event_t ev = {.type = SVC_SUP_EV_STOP};
    if (rpc_call_arg(call, "timeout")) {
        ev.has_wait = true;
        ev.wait_ms = (uint64_t)rpc_call_int(call, "timeout") * 1000;
    }
    p->wanted = false;
    svc_sup_feed(p, &ev);
    svc_sup_persist(p);
    reply_when_settled(p, call);
}

static void restart_cb(rpc_call_t *call, void *ctx)
{
    prog_t *p = call_prog(ctx, call);
    if (!p) return;
    svc_sup_event_t ev = {.type = SVC_SUP_EV_RESTART};
    p->wanted = true;
    svc_sup_feed(p, &ev);
    reply_when_settled(p, call);
}

static void remove_cb(rpc_call_t *call, void *ctx)
{
    svc_supervise_t *svc = ctx;
    prog_t *p = call_prog(svc, call);
    if (!p) return;
    if (svc_sup_is_active(p->fsm.state)) {
        rpc_call_error_param(call, RPC_ERR_FAILED_PRECONDITION, "name",
                             "program %s is %s: stop it first", p->def.name,
                             svc_sup_state_name(p->fsm.state));
        return;
    }
    int rc = svc_sup_db_delete(svc->db, p->def.name);
    if (rc < 0 && rc != -ENOENT) {
        rpc_call_error(call, RPC_ERR_INTERNAL, "cannot delete the program");
        return;
    }
    svc_sup_log_remove(p->dir);
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 2);
    pack_str(pk, "name");
    pack_str(pk, p->def.name);
    pack_str(pk, "removed");
    msgpack_pack_true(pk);
    rpc_call_reply(call);
    svc_sup_prog_free(p);
}

static void managed_cb(rpc_call_t *call, void *ctx)
{
    svc_supervise_t *svc = ctx;
    size_t len = 0;
    const char *name = rpc_call_str(call, "name", &len);
    size_t n = 0;
    for (prog_t *p = svc->progs; p; p = p->next)
        if (!name || (strlen(p->def.name) == len && memcmp(p->def.name, name, len) == 0)) n++;
    if (name && n == 0) {
        rpc_call_error_param(call, RPC_ERR_NOT_FOUND, "name", "no such program");
        return;
    }
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_array(pk, n);
    /* by name: the list is newest first, so collect and sort the few pointers */
    const prog_t *sorted[SVC_SUP_MAX_PROGRAMS];
    size_t k = 0;
    for (prog_t *p = svc->progs; p && k < SVC_SUP_MAX_PROGRAMS; p = p->next)
        if (!name || (strlen(p->def.name) == len && memcmp(p->def.name, name, len) == 0))
            sorted[k++] = p;
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && strcmp(sorted[j - 1]->def.name, sorted[j]->def.name) > 0; j--) {
            const prog_t *t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    bool show_env = rpc_call_role(call) >= RPC_ROLE_OPERATOR;
    for (size_t i = 0; i < k; i++)
        svc_sup_pack_status(pk, sorted[i], show_env);
    rpc_call_reply(call);
}

static void logs_cb(rpc_call_t *call, void *ctx)
{
    svc_supervise_t *svc = ctx;
    prog_t *p = call_prog(svc, call);
    if (!p) return;
    size_t len = 0;
    const char *stream = rpc_call_str(call, "stream", &len);
    int s;
    if (len == 6 && memcmp(stream, "stdout", 6) == 0)
        s = SVC_SUP_STDOUT;
    else if (len == 6 && memcmp(stream, "stderr", 6) == 0)
        s = SVC_SUP_STDERR;
    else {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "stream",
                             "stream must be stdout or stderr");
        return;
    }
    const msgpack_object *off = rpc_call_arg(call, "offset");
    svc_sup_log_chunk_t c;
    int rc =
        svc_sup_log_read(p->dir, s, off != NULL, off ? (uint64_t)rpc_call_int(call, "offset") : 0,
                         (size_t)rpc_call_int(call, "length"), &c);
    if (rc < 0) {
        rpc_call_error(call, rc == -ENOMEM ? RPC_ERR_RESOURCE_EXHAUSTED : RPC_ERR_INTERNAL,
                       "cannot read the log: %s", strerror(-rc));
        return;
    }
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 4);
    pack_str(pk, "data");
    msgpack_pack_bin(pk, c.len);
    msgpack_pack_bin_body(pk, c.data, c.len);
    pack_str(pk, "offset");
    msgpack_pack_uint64(pk, c.offset);
    pack_str(pk, "next_offset");
    msgpack_pack_uint64(pk, c.next_offset);
    pack_str(pk, "size");
    msgpack_pack_uint64(pk, c.size);
    free(c.data);
    rpc_call_reply(call);
}

/* --- method table --------------------------------------------------------------------------- */

#define NAME_PARAM(desc)                                                                           \
    {                                                                                              \
        .name = "name", .types = RPC_T_STRING, .required = true, .range = true, .min = 1,          \
        .max = SVC_SUP_NAME_MAX, .description = desc                                               \
    }

static const rpc_param_t start_params[] = {
    NAME_PARAM("program name: 1..64 of [A-Za-z0-9_.-]"),
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
    {.name = "autorestart",
     .types = RPC_T_STRING,
     .has_default = true,
     .def_str = SVC_SUP_DEFAULT_AUTORESTART,
     .range = true,
     .min = 1,
     .max = 16,
     .description = "never | unexpected (exit code not in exitcodes, or a signal) | always"},
    {.name = "exitcodes",
     .types = RPC_T_ARRAY,
     .range = true,
     .min = 0,
     .max = SVC_SUP_MAX_EXITCODES,
     .description = "expected exit codes, 0..255 (default [0])"},
    {.name = "startsecs",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = SVC_SUP_DEFAULT_STARTSECS,
     .range = true,
     .min = 0,
     .max = SVC_SUP_MAX_STARTSECS,
     .description = "seconds the process must stay up to be RUNNING"},
    {.name = "startretries",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = SVC_SUP_DEFAULT_STARTRETRIES,
     .range = true,
     .min = 0,
     .max = SVC_SUP_MAX_STARTRETRIES,
     .description = "failed starts retried (after 1 s, 2 s, 3 s...) before FATAL"},
    {.name = "stop_signal",
     .types = RPC_T_STRING | RPC_T_INT,
     .range = true,
     .min = 1,
     .max = 64,
     .description = "signal sent to the process group by stop (default TERM)"},
    {.name = "stop_wait",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = SVC_SUP_DEFAULT_STOP_WAIT,
     .range = true,
     .min = 0,
     .max = SVC_SUP_MAX_STOP_WAIT,
     .description = "seconds between the stop signal and SIGKILL"},
};

static const rpc_param_t stop_params[] = {
    NAME_PARAM("program name"),
    {.name = "timeout",
     .types = RPC_T_INT,
     .range = true,
     .min = 0,
     .max = SVC_SUP_MAX_STOP_WAIT,
     .description = "seconds before SIGKILL (default: the program's stop_wait)"},
};

static const rpc_param_t name_params[] = {NAME_PARAM("program name")};

static const rpc_param_t managed_params[] = {
    {.name = "name",
     .types = RPC_T_STRING,
     .range = true,
     .min = 1,
     .max = SVC_SUP_NAME_MAX,
     .description = "only this program (default: every one)"},
};

static const rpc_param_t logs_params[] = {
    NAME_PARAM("program name"),
    {.name = "stream",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = 16,
     .description = "stdout or stderr"},
    {.name = "offset",
     .types = RPC_T_INT,
     .range = true,
     .min = 0,
     .max = INT64_MAX,
     .description = "byte offset to read from (default: the last `length` bytes)"},
    {.name = "length",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = SVC_SUP_LOGS_DEFAULT,
     .range = true,
     .min = 1,
     .max = SVC_SUP_LOGS_MAX,
     .description = "bytes to return at most"},
};

int svc_sup_methods_register(svc_supervise_t *svc, char *err, size_t errlen)
{
    const rpc_method_t methods[] = {
        {.name = "process.start",
         .description = "Defines a supervised program (saved) and starts it; replaces the "
                        "definition of a stopped one.",
         .role = RPC_ROLE_OPERATOR,
         .params = start_params,
         .n_params = P2P_ARRAY_LEN(start_params),
         .handler = start_cb,
         .changes = true},
        {.name = "process.stop",
         .description = "Stops a supervised program (stop signal to its group, SIGKILL after "
                        "the wait); answers once stopped.",
         .role = RPC_ROLE_OPERATOR,
         .params = stop_params,
         .n_params = P2P_ARRAY_LEN(stop_params),
         .handler = stop_cb,
         .changes = true},
        {.name = "process.restart",
         .description = "Stops (if running) and starts a supervised program again.",
         .role = RPC_ROLE_OPERATOR,
         .params = name_params,
         .n_params = P2P_ARRAY_LEN(name_params),
         .handler = restart_cb,
         .changes = true},
        {.name = "process.remove",
         .description = "Deletes a stopped program's definition and log files.",
         .role = RPC_ROLE_OPERATOR,
         .params = name_params,
         .n_params = P2P_ARRAY_LEN(name_params),
         .handler = remove_cb,
         .changes = true},
        {.name = "process.managed",
         .description = "Supervised programs with state, pid, since, uptime, restarts, last "
                        "exit and definition.",
         .role = RPC_ROLE_VIEWER,
         .params = managed_params,
         .n_params = P2P_ARRAY_LEN(managed_params),
         .handler = managed_cb},
        {.name = "process.logs",
         .description = "A supervised program's stdout or stderr log, like a tail: data, "
                        "offset, next_offset, size.",
         .role = RPC_ROLE_VIEWER,
         .params = logs_params,
         .n_params = P2P_ARRAY_LEN(logs_params),
         .handler = logs_cb},
    };
    for (size_t i = 0; i < P2P_ARRAY_LEN(methods); i++) {
        rpc_method_t m = methods[i];
        m.ctx = svc;
        int rc = rpc_registry_add(svc->node->reg, &m);
        if (rc < 0) {
            snprintf(err, errlen, "supervise service: cannot register %s: %s", m.name,
                     strerror(-rc));
            return rc;
        }
    }
    return 0;
}
