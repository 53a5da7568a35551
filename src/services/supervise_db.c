/* supervise_db.c: the storage side of supervised programs: a definition parsed from its msgpack
 * spec, the `programs` table of DATA_DIR/node.db (prepared statements), the identity of a process
 * (start time from /proc/PID/stat) that makes re-adoption safe against recycled pids, and the log
 * files DATA_DIR/programs/NAME/{stdout,stderr}.log with their size-bounded rotation and tail
 * reads. See supervise-internal.h. */

#include "services/supervise-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- definitions ----------------------------------------------------------------------------- */

bool svc_sup_name_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > SVC_SUP_NAME_MAX) return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

void svc_sup_def_free(svc_sup_def_t *def)
{
    if (!def) return;
    svc_cmd_free(&def->cmd);
    free(def->spec);
    memset(def, 0, sizeof(*def));
}

static bool key_is(const msgpack_object *k, const char *name)
{
    size_t n = strlen(name);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, name, n) == 0;
}

/* An integer object in [min, max] into *v. */
static bool int_in(const msgpack_object *o, int64_t min, int64_t max, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > (uint64_t)INT64_MAX) return false;
        *v = (int64_t)o->via.u64;
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
    } else {
        return false;
    }
    return *v >= min && *v <= max;
}

static int parse_exitcodes(const msgpack_object *o, svc_sup_conf_t *conf)
{
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > SVC_SUP_MAX_EXITCODES)
        return -EINVAL;
    conf->n_exitcodes = 0;
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        int64_t v;
        if (!int_in(&o->via.array.ptr[i], 0, 255, &v)) return -EINVAL;
        conf->exitcodes[conf->n_exitcodes++] = (int)v;
    }
    return 0;
}

static int parse_signal(const msgpack_object *o, int *sig)
{
    int64_t v;
    if (o->type == MSGPACK_OBJECT_STR)
        return svc_signal_parse(o->via.str.ptr, o->via.str.size, sig);
    if (!int_in(o, 1, SIGRTMAX, &v)) return -EINVAL;
    *sig = (int)v;
    return 0;
}

/* One key of a spec other than argv/env/cwd. Returns 0, or -EINVAL. */
static int parse_key(const msgpack_object *k, const msgpack_object *v, svc_sup_def_t *def)
{
    int64_t n;
    if (key_is(k, "name")) {
        if (v->type != MSGPACK_OBJECT_STR || !svc_sup_name_valid(v->via.str.ptr, v->via.str.size))
            return -EINVAL;
        memcpy(def->name, v->via.str.ptr, v->via.str.size);
        def->name[v->via.str.size] = '\0';
    } else if (key_is(k, "autorestart")) {
        int a = v->type == MSGPACK_OBJECT_STR
                    ? svc_sup_autorestart_parse(v->via.str.ptr, v->via.str.size)
                    : -EINVAL;
        if (a < 0) return -EINVAL;
        def->conf.autorestart = (svc_sup_autorestart_t)a;
    } else if (key_is(k, "exitcodes")) {
        return parse_exitcodes(v, &def->conf);
    } else if (key_is(k, "startsecs")) {
        if (!int_in(v, 0, SVC_SUP_MAX_STARTSECS, &n)) return -EINVAL;
        def->conf.startsecs = (uint32_t)n;
    } else if (key_is(k, "startretries")) {
        if (!int_in(v, 0, SVC_SUP_MAX_STARTRETRIES, &n)) return -EINVAL;
        def->conf.startretries = (uint32_t)n;
    } else if (key_is(k, "stop_signal")) {
        return parse_signal(v, &def->stop_signal);
    } else if (key_is(k, "stop_wait")) {
        if (!int_in(v, 0, SVC_SUP_MAX_STOP_WAIT, &n)) return -EINVAL;
        def->conf.stop_wait_ms = (uint64_t)n * 1000;
    }
    return 0; /* argv, env, cwd are parsed with the command; unknown keys are ignored */
}

int svc_sup_def_parse(const void *spec, size_t len, svc_sup_def_t *def, const char **bad)
{
    msgpack_unpacked u;
    const msgpack_object *argv = NULL, *env = NULL, *cwd = NULL;
    int rc = -EINVAL;
    memset(def, 0, sizeof(*def));
    msgpack_unpacked_init(&u);
    *bad = "spec";
    if (msgpack_unpack_next(&u, spec, len, NULL) != MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP)
        goto fail;
    def->conf.autorestart = SVC_SUP_AR_UNEXPECTED;
    def->conf.startsecs = SVC_SUP_DEFAULT_STARTSECS;
    def->conf.startretries = SVC_SUP_DEFAULT_STARTRETRIES;
    def->conf.stop_wait_ms = SVC_SUP_DEFAULT_STOP_WAIT * 1000;
    def->conf.exitcodes[0] = 0;
    def->conf.n_exitcodes = 1;
    def->stop_signal = SIGTERM;
    const msgpack_object_map *m = &u.data.via.map;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        if (key_is(k, "argv")) argv = v;
        if (key_is(k, "env")) env = v;
        if (key_is(k, "cwd") && v->type != MSGPACK_OBJECT_NIL) cwd = v;
        if (parse_key(k, v, def) < 0) {
            static const char *const keys[] = {"name",      "autorestart",  "exitcodes",
                                               "startsecs", "startretries", "stop_signal",
                                               "stop_wait"};
            for (size_t j = 0; j < sizeof(keys) / sizeof(keys[0]); j++)
                if (key_is(k, keys[j])) *bad = keys[j];
            goto fail;
        }
    }
    if (def->name[0] == '\0') {
        *bad = "name";
        goto fail;
    }
    if (cwd && cwd->type != MSGPACK_OBJECT_STR) {
        *bad = "cwd";
        goto fail;
    }
    rc = svc_cmd_init(&def->cmd, argv, env, cwd ? cwd->via.str.ptr : NULL,
                      cwd ? cwd->via.str.size : 0, bad);
    if (rc < 0) goto fail;
    rc = -ENOMEM;
    if (!(def->spec = malloc(len ? len : 1))) goto fail;
    memcpy(def->spec, spec, len);
    def->spec_len = len;
    *bad = NULL;
    msgpack_unpacked_destroy(&u);
    return 0;
fail:
    msgpack_unpacked_destroy(&u);
    svc_sup_def_free(def);
    return rc;
}

/* --- the programs table ---------------------------------------------------------------------- */

enum { ST_LOAD, ST_PUT, ST_SET_RUN, ST_DELETE, ST_COUNT };

static const char *const sql[ST_COUNT] = {
    "SELECT name, spec, wanted, pid, pid_start, created, updated FROM programs ORDER BY name",
    "INSERT INTO programs (name, spec, wanted, pid, pid_start, created, updated) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT(name) DO UPDATE SET spec = excluded.spec, "
    "wanted = excluded.wanted, pid = excluded.pid, pid_start = excluded.pid_start, "
    "updated = excluded.updated",
    "UPDATE programs SET wanted = ?2, pid = ?3, pid_start = ?4, updated = ?5 WHERE name = ?1",
    "DELETE FROM programs WHERE name = ?1",
};

struct svc_sup_db {
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
};

void svc_sup_db_close(svc_sup_db_t *d)
{
    if (!d) return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(d->st[i]);
    free(d);
}

int svc_sup_db_open(sqlite3 *db, svc_sup_db_t **out)
{
    svc_sup_db_t *d = calloc(1, sizeof(*d));
    if (!d) return -ENOMEM;
    d->db = db;
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i], NULL) !=
            SQLITE_OK) {
            svc_sup_db_close(d);
            return -EIO;
        }
    }
    *out = d;
    return 0;
}

/* Steps a write statement to completion and resets it. Returns 0 or -EIO. */
static int run_write(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

int svc_sup_db_load(svc_sup_db_t *d, void (*cb)(void *arg, const svc_sup_row_t *row), void *arg)
{
    sqlite3_stmt *st = d->st[ST_LOAD];
    int n = 0, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        svc_sup_row_t r = {0};
        r.name = (const char *)sqlite3_column_text(st, 0);
        r.spec = sqlite3_column_blob(st, 1);
        r.spec_len = (size_t)sqlite3_column_bytes(st, 1);
        r.wanted = sqlite3_column_int64(st, 2) != 0;
        r.pid = (int)sqlite3_column_int64(st, 3);
        r.pid_start = (uint64_t)sqlite3_column_int64(st, 4);
        r.created = sqlite3_column_int64(st, 5);
        r.updated = sqlite3_column_int64(st, 6);
        if (!r.name || !r.spec) continue;
        cb(arg, &r);
        n++;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? n : -EIO;
}

int svc_sup_db_put(svc_sup_db_t *d, const char *name, const void *spec, size_t spec_len,
                   bool wanted, int pid, uint64_t pid_start, int64_t now_ms)
{
    sqlite3_stmt *st = d->st[ST_PUT];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, spec, (int)spec_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, wanted ? 1 : 0);
    sqlite3_bind_int64(st, 4, pid);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)pid_start);
    sqlite3_bind_int64(st, 6, now_ms);
    return run_write(st);
}

int svc_sup_db_set_run(svc_sup_db_t *d, const char *name, bool wanted, int pid, uint64_t pid_start,
                       int64_t now_ms)
{
    sqlite3_stmt *st = d->st[ST_SET_RUN];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, wanted ? 1 : 0);
    sqlite3_bind_int64(st, 3, pid);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)pid_start);
    sqlite3_bind_int64(st, 5, now_ms);
    int rc = run_write(st);
    if (rc == 0 && sqlite3_changes(d->db) == 0) return -ENOENT;
    return rc;
}

int svc_sup_db_delete(svc_sup_db_t *d, const char *name)
{
    sqlite3_stmt *st = d->st[ST_DELETE];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = run_write(st);
    if (rc == 0 && sqlite3_changes(d->db) == 0) return -ENOENT;
    return rc;
}

/* --- process identity ------------------------------------------------------------------------ */

/* Reads state (field 3), process group (field 5) and start time (field 22) of /proc/PID/stat.
 * Returns 0, -ESRCH when pid is gone, or -EIO. */
static int read_stat(int pid, char *state, int *pgrp, uint64_t *start)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno == ENOENT || errno == ESRCH ? -ESRCH : -EIO;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    int err = errno;
    close(fd);
    if (n <= 0) return n == 0 || err == ESRCH ? -ESRCH : -EIO;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    if (!p || p[1] != ' ') return -EIO;
    p += 2;
    *state = *p;
    for (int field = 3; field < 22; field++) {
        if (!(p = strchr(p, ' '))) return -EIO;
        p++;
        if (field + 1 == 5) *pgrp = atoi(p);
    }
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p) return -EIO;
    *start = (uint64_t)v;
    return 0;
}

int svc_sup_proc_start(int pid, uint64_t *start)
{
    char state;
    int pgrp;
    if (pid <= 0) return -EINVAL;
    int rc = read_stat(pid, &state, &pgrp, start);
    if (rc < 0) return rc;
    return state == 'Z' || state == 'X' || state == 'x' ? -ESRCH : 0;
}

bool svc_sup_proc_same(int pid, uint64_t start)
{
    char state;
    int pgrp;
    uint64_t st;
    int rc = pid > 0 ? read_stat(pid, &state, &pgrp, &st) : -EINVAL;
    if (rc == -ESRCH) return true; /* gone: the number is free, or held by its group's leftovers */
    return rc == 0 && st == start;
}

static int env_put(char ***envp, const char *key, const char *value)
{
    size_t klen = strlen(key), n = 0;
    char *e = malloc(klen + 1 + strlen(value) + 1), **env = *envp;
    if (!e) return -ENOMEM;
    sprintf(e, "%s=%s", key, value);
    for (; env && env[n]; n++) {
        if (strncmp(env[n], key, klen) == 0 && env[n][klen] == '=') {
            free(env[n]);
            env[n] = e;
            return 0;
        }
    }
    char **grown = realloc(env, (n + 2) * sizeof(char *));
    if (!grown) {
        free(e);
        return -ENOMEM;
    }
    grown[n] = e;
    grown[n + 1] = NULL;
    *envp = grown;
    return 0;
}

int svc_sup_cmd_mark(svc_cmd_t *c, const char *name, const char *home)
{
    int rc = env_put(&c->env, SVC_SUP_ENV_SUPERVISOR, home);
    return rc < 0 ? rc : env_put(&c->env, SVC_SUP_ENV_PROGRAM, name);
}

int svc_sup_proc_scan(const char *home,
                      void (*cb)(void *arg, const char *name, int pid, uint64_t start), void *arg)
{
    char want[SVC_MAX_CWD + 32], path[64];
    size_t cap = SVC_SUP_SCAN_ENV;
    char *env = malloc(cap);
    if (!env) return -ENOMEM;
    snprintf(want, sizeof(want), "%s=%s", SVC_SUP_ENV_SUPERVISOR, home);
    DIR *d = opendir("/proc");
    if (!d) {
        free(env);
        return -errno;
    }
    int found = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end, state;
        long pid = strtol(de->d_name, &end, 10);
        int pgrp;
        uint64_t start;
        if (*end || pid <= 1 || pid > INT32_MAX || pid == getpid()) continue;
        if (read_stat((int)pid, &state, &pgrp, &start) < 0 || pgrp != pid || state == 'Z' ||
            state == 'X')
            continue;
        snprintf(path, sizeof(path), "/proc/%ld/environ", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, env, cap - 1);
        close(fd);
        if (n <= 0) continue;
        env[n] = '\0';
        const char *name = NULL;
        bool mine = false;
        for (char *e = env; e < env + n; e += strlen(e) + 1) {
            if (strcmp(e, want) == 0) mine = true;
            if (strncmp(e, SVC_SUP_ENV_PROGRAM "=", sizeof(SVC_SUP_ENV_PROGRAM)) == 0)
                name = e + sizeof(SVC_SUP_ENV_PROGRAM);
        }
        if (!mine || !name || !svc_sup_name_valid(name, strlen(name))) continue;
        cb(arg, name, (int)pid, start);
        found++;
    }
    closedir(d);
    free(env);
    return found;
}

/* --- log files ------------------------------------------------------------------------------- */

static const char *const log_names[2] = {"stdout.log", "stderr.log"};

int svc_sup_log_dir(const char *data_dir, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/programs", data_dir);
    if (n < 0 || (size_t)n >= cap) return -ENAMETOOLONG;
    if (mkdir(out, 0750) != 0 && errno != EEXIST) return -errno;
    n = snprintf(out, cap, "%s/programs/%s", data_dir, name);
    if (n < 0 || (size_t)n >= cap) return -ENAMETOOLONG;
    if (mkdir(out, 0750) != 0 && errno != EEXIST) return -errno;
    return 0;
}

static int log_path(const char *dir, int stream, const char *suffix, char *out, size_t cap)
{
    if (stream != SVC_SUP_STDOUT && stream != SVC_SUP_STDERR) return -EINVAL;
    int n = snprintf(out, cap, "%s/%s%s", dir, log_names[stream], suffix);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int svc_sup_log_open(const char *dir, int stream)
{
    char path[SVC_MAX_CWD + 64];
    int rc = log_path(dir, stream, "", path, sizeof(path));
    if (rc < 0) return rc;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0640);
    return fd < 0 ? -errno : fd;
}

/* Copies len bytes of in from offset off to out. Returns 0 or a negative errno. */
static int copy_range(int in, off_t off, int out, uint64_t len)
{
    char buf[65536];
    while (len > 0) {
        ssize_t n = copy_file_range(in, &off, out, NULL, len, 0);
        if (n < 0 &&
            (errno == ENOSYS || errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP)) {
            n = pread(in, buf, len < sizeof(buf) ? len : sizeof(buf), off);
            if (n > 0 && write(out, buf, (size_t)n) != n) return -EIO;
            if (n > 0) off += n;
        }
        if (n < 0) return -errno;
        if (n == 0) break; /* the file shrank meanwhile */
        len -= (uint64_t)n;
    }
    return 0;
}

int svc_sup_log_rotate(const char *dir, int stream, uint64_t limit)
{
    char path[SVC_MAX_CWD + 64], old[SVC_MAX_CWD + 64], tmp[SVC_MAX_CWD + 64];
    int rc, in = -1, out = -1;
    struct stat st;
    if ((rc = log_path(dir, stream, "", path, sizeof(path))) < 0 ||
        (rc = log_path(dir, stream, ".1", old, sizeof(old))) < 0 ||
        (rc = log_path(dir, stream, ".1.tmp", tmp, sizeof(tmp))) < 0)
        return rc;
    if (stat(path, &st) != 0) return errno == ENOENT ? 0 : -errno;
    if ((uint64_t)st.st_size <= limit) return 0;
    if ((in = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)) < 0) return -errno;
    if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640)) < 0) {
        rc = -errno;
        goto done;
    }
    if (fstat(in, &st) != 0) {
        rc = -errno;
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size, from = size > limit ? size - limit : 0;
    if ((rc = copy_range(in, (off_t)from, out, size - from)) < 0) goto done;
    if (rename(tmp, old) != 0 || ftruncate(in, 0) != 0) {
        rc = -errno;
        goto done;
    }
    rc = 1;
done:
    if (out >= 0) close(out);
    if (in >= 0) close(in);
    if (rc < 0) unlink(tmp);
    return rc;
}

int svc_sup_log_read(const char *dir, int stream, bool has_offset, uint64_t offset, size_t length,
                     svc_sup_log_chunk_t *out)
{
    char path[SVC_MAX_CWD + 64];
    struct stat st;
    int rc = log_path(dir, stream, "", path, sizeof(path));
    memset(out, 0, sizeof(*out));
    if (rc < 0) return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return errno == ENOENT ? 0 : -errno;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto done;
    }
    uint64_t size = (uint64_t)st.st_size, from;
    if (!has_offset)
        from = size > length ? size - length : 0;
    else
        from = offset > size ? 0 : offset;
    uint64_t want = size - from < length ? size - from : length;
    out->size = size;
    out->offset = out->next_offset = from;
    if (want == 0) goto done;
    if (!(out->data = malloc((size_t)want))) {
        rc = -ENOMEM;
        goto done;
    }
    while (out->len < want) {
        ssize_t n =
            pread(fd, out->data + out->len, (size_t)want - out->len, (off_t)(from + out->len));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = -errno;
            break;
        }
        if (n == 0) break;
        out->len += (size_t)n;
    }
    out->next_offset = from + out->len;
    if (rc < 0 || out->len == 0) {
        free(out->data);
        out->data = NULL;
        out->len = 0;
    }
done:
    close(fd);
    return rc;
}

int svc_sup_log_remove(const char *dir)
{
    static const char *const suffixes[] = {"", ".1", ".1.tmp"};
    char path[SVC_MAX_CWD + 64];
    int first = 0;
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
            if (log_path(dir, s, suffixes[i], path, sizeof(path)) < 0) continue;
            if (unlink(path) != 0 && errno != ENOENT && first == 0) first = -errno;
        }
    }
    if (rmdir(dir) != 0 && errno != ENOENT && errno != ENOTEMPTY && first == 0) first = -errno;
    return first;
}
