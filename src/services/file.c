/* file.c: the file service (system.NODE.file.*): its roots (FILE_ROOTS, each opened once as a
 * directory fd), the method table entries with their schemas, and the job machinery that runs
 * every operation of file_ops.c / file_search.c on the libuv thread pool. Reads run in parallel;
 * changes (write, mkdir, remove, move) run one at a time in arrival order, so pipelined chunk
 * writes land in sequence. Stopping cancels what has not started and waits for what has. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "node/log.h"
#include "rpc/rpc.h"
#include "services/file_ops.h"
#include "services/services.h"

#ifndef SVC_FILE_MAX_JOBS
#define SVC_FILE_MAX_JOBS 128 /* file calls queued or running at once (then RESOURCE_EXHAUSTED) */
#endif

typedef struct froot_entry {
    svc_froot_t r;
    char path[NODE_PATH_MAX]; /* as resolved at start */
    char name[NAME_MAX + 1];  /* the directory's basename, selectable with `root` */
    int err;                  /* 0, or -errno when the root could not be opened */
} froot_entry_t;

typedef struct fjob fjob_t;
struct fjob {
    uv_work_t work;
    svc_file_t *svc;
    rpc_call_t *call;
    svc_file_op_fn fn;
    bool serial;
    svc_file_req_t q;
    svc_ferr_t err;
    int rc;
    msgpack_sbuffer sb;
    fjob_t *prev, *next; /* svc->running (submitted to the pool) or the serial FIFO */
};

struct svc_file {
    node_t *node;
    froot_entry_t roots[NODE_MAX_FILE_ROOTS];
    int nroots;
    atomic_bool stop; /* read by the workers */
    bool stopping;
    int njobs;
    fjob_t *running;               /* jobs handed to uv_queue_work */
    fjob_t *fifo_head, *fifo_tail; /* changes waiting for their turn */
    bool serial_busy;
    svc_file_digests_t *digests; /* running SHA-256 of files written in order (file_digest.c) */
    void (*done)(void *arg);
    void *done_arg;
};

/* --- jobs --------------------------------------------------------------------------------------
 */

static void job_free(fjob_t *j)
{
    msgpack_sbuffer_destroy(&j->sb);
    free(j);
}

static void finish(svc_file_t *svc)
{
    void (*done)(void *) = svc->done;
    void *arg = svc->done_arg;
    for (int i = 0; i < svc->nroots; i++)
        if (svc->roots[i].r.fd >= 0) close(svc->roots[i].r.fd);
    svc_file_digests_free(svc->digests);
    free(svc);
    if (done) done(arg);
}

static void work_cb(uv_work_t *w)
{
    fjob_t *j = w->data;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &j->sb, msgpack_sbuffer_write);
    if (j->serial && j->fn != svc_file_write) { /* mkdir, remove, move: digests may go stale */
        svc_file_digests_forget(j->q.digests, j->q.root, j->q.path);
        if (j->q.path2[0] || j->q.root2)
            svc_file_digests_forget(j->q.digests, j->q.root2 ? j->q.root2 : j->q.root, j->q.path2);
    }
    j->rc = j->fn(&j->q, &pk, &j->err);
}

static void answer(fjob_t *j, int status)
{
    rpc_call_t *call = j->call;
    if (status == UV_ECANCELED) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the file service is stopping");
    } else if (j->rc < 0) {
        if (j->err.code == RPC_ERR_INTERNAL)
            node_log(j->svc->node->log, NODE_LOG_ERROR, "file call failed", "error", j->err.msg,
                     NULL);
        if (j->err.param)
            rpc_call_error_param(call, j->err.code, j->err.param, "%s", j->err.msg);
        else
            rpc_call_error(call, j->err.code, "%s", j->err.msg);
    } else {
        rpc_call_reply_sbuffer(call, &j->sb); /* a read's chunk is not copied again */
    }
}

static void pump(svc_file_t *svc);

static void after_cb(uv_work_t *w, int status)
{
    fjob_t *j = w->data;
    svc_file_t *svc = j->svc;
    if (j->prev)
        j->prev->next = j->next;
    else
        svc->running = j->next;
    if (j->next) j->next->prev = j->prev;
    if (j->serial) svc->serial_busy = false;
    svc->njobs--;
    answer(j, status);
    job_free(j);
    if (!svc->stopping)
        pump(svc);
    else if (svc->njobs == 0)
        finish(svc);
}

/* Hands j to the thread pool; answers and frees it when that fails. Returns 0 or -1. */
static int queue(svc_file_t *svc, fjob_t *j)
{
    j->work.data = j;
    int r = uv_queue_work(svc->node->loop, &j->work, work_cb, after_cb);
    if (r < 0) {
        svc->njobs--;
        rpc_call_error(j->call, RPC_ERR_INTERNAL, "cannot queue the file operation: %s",
                       uv_strerror(r));
        job_free(j);
        return -1;
    }
    j->prev = NULL;
    j->next = svc->running;
    if (svc->running) svc->running->prev = j;
    svc->running = j;
    return 0;
}

/* Starts the next change when none runs. */
static void pump(svc_file_t *svc)
{
    while (!svc->serial_busy && svc->fifo_head) {
        fjob_t *j = svc->fifo_head;
        svc->fifo_head = j->next;
        if (!svc->fifo_head) svc->fifo_tail = NULL;
        if (queue(svc, j) == 0) svc->serial_busy = true;
    }
}

static void submit(fjob_t *j, svc_file_op_fn fn, bool serial)
{
    svc_file_t *svc = j->svc;
    j->fn = fn;
    j->serial = serial;
    if (!serial) {
        queue(svc, j);
        return;
    }
    j->next = NULL;
    if (svc->fifo_tail)
        svc->fifo_tail->next = j;
    else
        svc->fifo_head = j;
    svc->fifo_tail = j;
    pump(svc);
}

/* A job for call, or NULL after answering it (stopping, too many jobs, no memory). */
static fjob_t *job_new(svc_file_t *svc, rpc_call_t *call)
{
    if (svc->stopping) {
        rpc_call_error(call, RPC_ERR_UNAVAILABLE, "the file service is stopping");
        return NULL;
    }
    if (svc->njobs >= SVC_FILE_MAX_JOBS) {
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "%d file calls are already running",
                       SVC_FILE_MAX_JOBS);
        return NULL;
    }
    fjob_t *j = calloc(1, sizeof(*j));
    if (!j) {
        rpc_call_error(call, RPC_ERR_RESOURCE_EXHAUSTED, "out of memory");
        return NULL;
    }
    j->svc = svc;
    j->call = call;
    msgpack_sbuffer_init(&j->sb);
    j->q.stop = &svc->stop;
    j->q.digests = svc->digests;
    j->q.deadline_ms = rpc_call_deadline(call);
    j->q.param = "path";
    svc->njobs++;
    return j;
}

/* Drops a job that was never submitted, after its call was answered. */
static void job_drop(fjob_t *j)
{
    j->svc->njobs--;
    job_free(j);
}

/* --- arguments ---------------------------------------------------------------------------------
 */

/* The root the argument `param` selects (its basename or index; the first by default), or NULL
 * after answering the call. */
static const svc_froot_t *pick_root(svc_file_t *svc, rpc_call_t *call, const char *param)
{
    const msgpack_object *o = rpc_call_arg(call, param);
    int idx = -1;
    if (!o) {
        idx = 0;
    } else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 < (uint64_t)svc->nroots) idx = (int)o->via.u64;
    } else if (o->type == MSGPACK_OBJECT_STR) {
        for (int i = 0; i < svc->nroots && idx < 0; i++)
            if (strlen(svc->roots[i].name) == o->via.str.size &&
                !memcmp(svc->roots[i].name, o->via.str.ptr, o->via.str.size))
                idx = i;
        char num[8];
        if (idx < 0 && o->via.str.size > 0 && o->via.str.size < sizeof(num)) {
            memcpy(num, o->via.str.ptr, o->via.str.size);
            num[o->via.str.size] = 0;
            char *end;
            long v = strtol(num, &end, 10);
            if (!*end && v >= 0 && v < svc->nroots) idx = (int)v;
        }
    }
    if (idx < 0 || idx >= svc->nroots) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, param,
                             "no such file root (see file.roots)");
        return NULL;
    }
    const froot_entry_t *r = &svc->roots[idx];
    if (r->err) {
        rpc_call_error_param(call, RPC_ERR_UNAVAILABLE, param, "file root %s is not available: %s",
                             r->path, strerror(-r->err));
        return NULL;
    }
    return &r->r;
}

/* Normalizes the path argument `param` into out. Returns 0, or -1 after answering the call. */
static int take_path(rpc_call_t *call, const char *param, char *out)
{
    size_t len;
    const char *why;
    const char *p = rpc_call_str(call, param, &len);
    if (!p) p = ".", len = 1;
    int r = svc_file_path_norm(p, len, out, SVC_FILE_MAX_PATH, &why);
    if (r < 0) {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, param, "%s %s", param, why);
        return -1;
    }
    return 0;
}

/* A job with its root and path taken, or NULL after answering. */
static fjob_t *job_for_path(svc_file_t *svc, rpc_call_t *call)
{
    fjob_t *j = job_new(svc, call);
    if (!j) return NULL;
    if (!(j->q.root = pick_root(svc, call, "root")) || take_path(call, "path", j->q.path) < 0) {
        job_drop(j);
        return NULL;
    }
    return j;
}

static void copy_str(rpc_call_t *call, const char *param, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    const char *s = rpc_call_str(call, param, &n);
    if (!s || n >= cap) n = 0; /* the schema bounds the length below cap */
    if (s) memcpy(out, s, n);
    out[n] = 0;
    if (len) *len = n;
}

/* --- handlers ----------------------------------------------------------------------------------
 */

static void stat_cb(rpc_call_t *call, void *ctx)
{
    fjob_t *j = job_for_path(ctx, call);
    if (j) submit(j, svc_file_stat, false);
}

static void list_cb(rpc_call_t *call, void *ctx)
{
    fjob_t *j = job_for_path(ctx, call);
    if (!j) return;
    j->q.recursive = rpc_call_bool(call, "recursive");
    j->q.limit = rpc_call_int(call, "limit");
    submit(j, svc_file_list, false);
}

static void read_cb(rpc_call_t *call, void *ctx)
{
    fjob_t *j = job_for_path(ctx, call);
    if (!j) return;
    j->q.offset = rpc_call_int(call, "offset");
    j->q.length = rpc_call_int(call, "length");
    j->q.has_length = true;
    /* the answer holds up to length bytes: sized once, not grown by doubling on the worker */
    size_t cap = (size_t)j->q.length + 512;
    if ((j->sb.data = malloc(cap))) j->sb.alloc = cap;
    submit(j, svc_file_read, false);
}

static void write_cb(rpc_call_t *call, void *ctx)
{
    fjob_t *j = job_for_path(ctx, call);
    if (!j) return;
    svc_file_req_t *q = &j->q;
    size_t n;
    q->data = (const uint8_t *)rpc_call_str(call, "data", &n);
    q->data_len = n;
    q->has_offset = rpc_call_arg(call, "offset") != NULL;
    q->offset = rpc_call_int(call, "offset");
    q->append = rpc_call_bool(call, "append");
    q->create = rpc_call_bool(call, "create");
    q->has_mode = rpc_call_arg(call, "mode") != NULL;
    q->mode = rpc_call_int(call, "mode");
    q->has_if_match = rpc_call_arg(call, "if_match") != NULL;
    copy_str(call, "if_match", q->if_match, sizeof(q->if_match), NULL);
    q->truncate = rpc_call_bool(call, "truncate");
    q->sync = rpc_call_bool(call, "sync");
    submit(j, svc_file_write, true);
}

static void mkdir_cb(rpc_call_t *call, void *ctx)
{
    fjob_t *j = job_for_path(ctx, call);
    if (!j) return;
    j->q.parents = rpc_call_bool(call, "parents");
    j->q.has_mode = rpc_call_arg(call, "mode") != NULL;
    j->q.mode = rpc_call_int(call, "mode");
    submit(j, svc_file_mkdir, true);
}

static void remove_cb(rpc_call_t *call, void *ctx)
{
    fjob_t *j = job_for_path(ctx, call);
    if (!j) return;
    j->q.recursive = rpc_call_bool(call, "recursive");
    submit(j, svc_file_remove, true);
}

static void move_cb(rpc_call_t *call, void *ctx)
{
    svc_file_t *svc = ctx;
    fjob_t *j = job_new(svc, call);
    if (!j) return;
    svc_file_req_t *q = &j->q;
    q->param = "src";
    if (!(q->root = pick_root(svc, call, "root")) ||
        !(q->root2 = rpc_call_arg(call, "dst_root") ? pick_root(svc, call, "dst_root") : q->root) ||
        take_path(call, "src", q->path) < 0 || take_path(call, "dst", q->path2) < 0) {
        job_drop(j);
        return;
    }
    q->overwrite = rpc_call_bool(call, "overwrite");
    q->sync = rpc_call_bool(call, "sync");
    submit(j, svc_file_move, true);
}

static void search_cb(rpc_call_t *call, void *ctx)
{
    fjob_t *j = job_for_path(ctx, call);
    if (!j) return;
    svc_file_req_t *q = &j->q;
    copy_str(call, "glob", q->glob, sizeof(q->glob), NULL);
    copy_str(call, "regex", q->regex, sizeof(q->regex), NULL);
    copy_str(call, "content", q->content, sizeof(q->content), &q->content_len);
    q->limit = rpc_call_int(call, "max_results");
    if (svc_file_search_check(q, &j->err) < 0) { /* a bad regex is refused before any work */
        rpc_call_error_param(call, j->err.code, j->err.param, "%s", j->err.msg);
        job_drop(j);
        return;
    }
    submit(j, svc_file_search, false);
}

static void checksum_cb(rpc_call_t *call, void *ctx)
{
    fjob_t *j = job_for_path(ctx, call);
    if (!j) return;
    size_t n;
    const char *algo = rpc_call_str(call, "algo", &n);
    if (algo && n == 6 && !memcmp(algo, "sha256", 6)) {
        j->q.algo = SVC_FILE_SHA256;
    } else if (algo && n == 7 && !memcmp(algo, "blake2b", 7)) {
        j->q.algo = SVC_FILE_BLAKE2B;
    } else {
        rpc_call_error_param(call, RPC_ERR_INVALID_PARAMS, "algo", "algo is sha256 or blake2b");
        job_drop(j);
        return;
    }
    j->q.has_length = rpc_call_arg(call, "length") != NULL;
    j->q.length = rpc_call_int(call, "length");
    submit(j, svc_file_checksum, false);
}

static void roots_cb(rpc_call_t *call, void *ctx)
{
    svc_file_t *svc = ctx;
    msgpack_packer *pk = rpc_call_packer(call);
    msgpack_pack_map(pk, 1);
    svc_file_pack_str(pk, "roots");
    msgpack_pack_array(pk, (size_t)svc->nroots);
    for (int i = 0; i < svc->nroots; i++) {
        const froot_entry_t *r = &svc->roots[i];
        msgpack_pack_map(pk, 5);
        svc_file_pack_str(pk, "index");
        msgpack_pack_int(pk, i);
        svc_file_pack_str(pk, "name");
        svc_file_pack_str(pk, r->name);
        svc_file_pack_str(pk, "path");
        svc_file_pack_str(pk, r->path);
        svc_file_pack_str(pk, "available");
        r->err ? msgpack_pack_false(pk) : msgpack_pack_true(pk);
        svc_file_pack_str(pk, "resolve");
        svc_file_pack_str(pk, r->err ? strerror(-r->err) : r->r.walk ? "walk" : "openat2");
    }
    rpc_call_reply(call);
}

/* --- the method table --------------------------------------------------------------------------
 */

#define P_PATH(req, desc)                                                                          \
    {                                                                                              \
        .name = "path", .types = RPC_T_STRING, .required = req, .has_default = !(req),             \
        .def_str = ".", .range = true, .min = 1, .max = SVC_FILE_MAX_PATH - 1, .description = desc \
    }
#define P_ROOT                                                                                     \
    {                                                                                              \
        .name = "root", .types = RPC_T_STRING | RPC_T_INT, .range = true, .min = 0,                \
        .max = NAME_MAX,                                                                           \
        .description = "the root: its directory's name or its index in file.roots (default: the "  \
                       "first)"                                                                    \
    }
#define P_BOOL(n, d)                                                                               \
    {                                                                                              \
        .name = n, .types = RPC_T_BOOL, .has_default = true, .def_bool = false, .description = d   \
    }
#define P_MODE(def, d)                                                                             \
    {                                                                                              \
        .name = "mode", .types = RPC_T_INT, .has_default = true, .def_int = def, .range = true,    \
        .min = 0, .max = SVC_FILE_MAX_MODE, .description = d                                       \
    }

static const rpc_param_t stat_params[] = {P_PATH(true, "path relative to the root"), P_ROOT};
static const rpc_param_t list_params[] = {
    P_PATH(false, "directory relative to the root"),
    P_BOOL("recursive", "walk the whole tree (symlinks are never followed)"),
    {.name = "limit",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = SVC_FILE_LIST_DEFAULT,
     .range = true,
     .min = 1,
     .max = SVC_FILE_LIST_MAX,
     .description = "most entries returned"},
    P_ROOT};
static const rpc_param_t read_params[] = {P_PATH(true, "file relative to the root"),
                                          {.name = "offset",
                                           .types = RPC_T_INT,
                                           .has_default = true,
                                           .def_int = 0,
                                           .range = true,
                                           .min = 0,
                                           .max = INT64_MAX,
                                           .description = "first byte to read"},
                                          {.name = "length",
                                           .types = RPC_T_INT,
                                           .has_default = true,
                                           .def_int = SVC_FILE_MAX_READ,
                                           .range = true,
                                           .min = 0,
                                           .max = SVC_FILE_MAX_READ,
                                           .description = "bytes to read (at most 1 MiB)"},
                                          P_ROOT};
static const rpc_param_t write_params[] = {
    P_PATH(true, "file relative to the root"),
    {.name = "data",
     .types = RPC_T_BYTES | RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 0,
     .max = SVC_FILE_MAX_WRITE,
     .description = "the bytes to write"},
    {.name = "offset",
     .types = RPC_T_INT,
     .range = true,
     .min = 0,
     .max = INT64_MAX,
     .description = "write in place at this offset (<= the file's size) instead of replacing it"},
    P_BOOL("append", "append to the file instead of replacing it"),
    {.name = "create",
     .types = RPC_T_BOOL,
     .has_default = true,
     .def_bool = true,
     .description = "create the file when absent"},
    P_MODE(0644, "permission bits of a file this call creates or replaces whole (default: 0644, "
                 "or the replaced file's)"),
    {.name = "if_match",
     .types = RPC_T_STRING,
     .range = true,
     .min = 1,
     .max = SVC_FILE_MAX_ETAG_ARG,
     .description = "etag from stat/read: CONFLICT when the file changed since"},
    P_BOOL("truncate", "with offset: cut the file after the written bytes"),
    P_BOOL("sync", "with offset or append: fsync before answering (whole writes always do)"),
    P_ROOT};
static const rpc_param_t mkdir_params[] = {
    P_PATH(true, "directory relative to the root"),
    P_BOOL("parents", "create missing parents; an existing directory is no error"),
    P_MODE(0755, "permission bits (default 0755)"), P_ROOT};
static const rpc_param_t remove_params[] = {
    P_PATH(true, "entry relative to the root (never the root itself)"),
    P_BOOL("recursive", "remove a directory and everything below (symlinks are not followed)"),
    P_ROOT};
static const rpc_param_t move_params[] = {
    {.name = "src",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = SVC_FILE_MAX_PATH - 1,
     .description = "entry to move, relative to the root"},
    {.name = "dst",
     .types = RPC_T_STRING,
     .required = true,
     .range = true,
     .min = 1,
     .max = SVC_FILE_MAX_PATH - 1,
     .description = "new path, relative to the destination root"},
    P_BOOL("overwrite", "replace an existing dst (else CONFLICT)"),
    P_BOOL("sync", "fsync the directories before answering"),
    P_ROOT,
    {.name = "dst_root",
     .types = RPC_T_STRING | RPC_T_INT,
     .range = true,
     .min = 0,
     .max = NAME_MAX,
     .description = "root of dst (default: root); across filesystems is FAILED_PRECONDITION"}};
#define P_PATTERN(n, d)                                                                            \
    {                                                                                              \
        .name = n, .types = RPC_T_STRING, .range = true, .min = 1, .max = SVC_FILE_MAX_PATTERN,    \
        .description = d                                                                           \
    }
static const rpc_param_t search_params[] = {
    P_PATH(false, "directory searched, relative to the root"),
    P_PATTERN("glob", "shell pattern on names (on the path below `path` when it holds a /)"),
    P_PATTERN("regex", "POSIX extended regex on names (no back-references)"),
    P_PATTERN("content", "substring searched in regular files (one match a line)"),
    {.name = "max_results",
     .types = RPC_T_INT,
     .has_default = true,
     .def_int = SVC_FILE_SEARCH_DEFAULT,
     .range = true,
     .min = 1,
     .max = SVC_FILE_SEARCH_MAX,
     .description = "most matches returned"},
    P_ROOT};
static const rpc_param_t checksum_params[] = {P_PATH(true, "file relative to the root"),
                                              {.name = "algo",
                                               .types = RPC_T_STRING,
                                               .has_default = true,
                                               .def_str = "sha256",
                                               .range = true,
                                               .min = 1,
                                               .max = 16,
                                               .description = "sha256 or blake2b (BLAKE2b-256)"},
                                              {.name = "length",
                                               .types = RPC_T_INT,
                                               .range = true,
                                               .min = 0,
                                               .max = INT64_MAX,
                                               .description = "hash only the first length bytes"},
                                              P_ROOT};

#define M(n, r, h, p, ch, d)                                                                       \
    {                                                                                              \
        .name = n, .description = d, .role = r, .params = p, .n_params = P2P_ARRAY_LEN(p),         \
        .handler = h, .ctx = svc, .changes = ch                                                    \
    }

static int register_methods(svc_file_t *svc)
{
    const rpc_method_t methods[] = {
        {.name = "file.roots",
         .description = "The directories the file service reaches.",
         .role = RPC_ROLE_VIEWER,
         .handler = roots_cb,
         .ctx = svc},
        M("file.stat", RPC_ROLE_VIEWER, stat_cb, stat_params, false,
          "Type, size, mode, mtime and etag of one entry (symlinks not followed)."),
        M("file.list", RPC_ROLE_VIEWER, list_cb, list_params, false,
          "Entries of a directory, or of its tree when recursive."),
        M("file.read", RPC_ROLE_VIEWER, read_cb, read_params, false,
          "Bytes of a file from offset (up to 1 MiB a call), with eof and etag."),
        M("file.write", RPC_ROLE_ADMIN, write_cb, write_params, true,
          "Writes a file: whole and atomic, or in place at an offset, or appended."),
        M("file.mkdir", RPC_ROLE_ADMIN, mkdir_cb, mkdir_params, true, "Creates a directory."),
        M("file.remove", RPC_ROLE_ADMIN, remove_cb, remove_params, true,
          "Removes a file, a symlink or a directory (recursive for a non-empty one)."),
        M("file.move", RPC_ROLE_ADMIN, move_cb, move_params, true,
          "Renames an entry within the roots."),
        M("file.search", RPC_ROLE_VIEWER, search_cb, search_params, false,
          "Finds entries below a directory by glob or regex, and lines by content."),
        M("file.checksum", RPC_ROLE_VIEWER, checksum_cb, checksum_params, false,
          "SHA-256 or BLAKE2b-256 of a file (or of its first length bytes)."),
    };
    for (size_t i = 0; i < P2P_ARRAY_LEN(methods); i++) {
        int r = rpc_registry_add(svc->node->reg, &methods[i]);
        if (r < 0) return r;
    }
    return 0;
}

/* --- start, stop -------------------------------------------------------------------------------
 */

static void open_root(svc_file_t *svc, froot_entry_t *r, const char *path, bool create)
{
    char real[PATH_MAX];
    r->r.fd = -1;
    if (create && mkdir(path, 0755) < 0 && errno != EEXIST) {
        r->err = -errno;
    } else if ((r->r.fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        r->err = -errno;
    } else {
        r->err = svc_file_path_probe(&r->r);
    }
    const char *shown = realpath(path, real) && strlen(real) < sizeof(r->path) ? real : path;
    size_t n = P2P_MIN(strlen(shown), sizeof(r->path) - 1);
    memcpy(r->path, shown, n);
    r->path[n] = 0;
    char tmp[NODE_PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", r->path);
    snprintf(r->name, sizeof(r->name), "%s", basename(tmp));
    if (r->err)
        node_log(svc->node->log, NODE_LOG_WARNING, "file root not available", "path", path, "error",
                 strerror(-r->err), NULL);
}

int svc_file_start(node_t *node, svc_file_t **out, char *err, size_t errlen)
{
    svc_file_t *svc = calloc(1, sizeof(*svc));
    if (!svc) {
        snprintf(err, errlen, "file service: out of memory");
        return -ENOMEM;
    }
    svc->node = node;
    svc->digests = svc_file_digests_new(); /* NULL: checksums always read */
    atomic_init(&svc->stop, false);
    for (int i = 0; i < node->cfg.file_root_count && i < NODE_MAX_FILE_ROOTS; i++)
        open_root(svc, &svc->roots[svc->nroots++], node->cfg.file_roots[i],
                  i == 0 && node->cfg.file_roots_default);
    int r = register_methods(svc);
    if (r < 0) {
        snprintf(err, errlen, "file service: cannot register its methods: %s", strerror(-r));
        finish(svc);
        return r;
    }
    *out = svc;
    return 0;
}

void svc_file_stop(svc_file_t *svc, void (*done)(void *arg), void *arg)
{
    if (!svc) return;
    svc->done = done;
    svc->done_arg = arg;
    svc->stopping = true;
    atomic_store(&svc->stop, true);
    while (svc->fifo_head) { /* changes that never started: answered, not run */
        fjob_t *j = svc->fifo_head;
        svc->fifo_head = j->next;
        rpc_call_error(j->call, RPC_ERR_UNAVAILABLE, "the file service is stopping");
        job_drop(j);
    }
    svc->fifo_tail = NULL;
    for (fjob_t *j = svc->running; j; j = j->next)
        uv_cancel((uv_req_t *)&j->work); /* those already running finish, then after_cb */
    if (svc->njobs == 0) finish(svc);
}
