/* supervise_db.c: unit tests for src/services/supervise_db.c on a real SQLite file (schema from
 * node_store_open) in a temporary directory: program names, spec parsing with defaults and the
 * bad key named, the programs table (insert, replace keeping `created`, run updates, delete,
 * load), process identity from /proc (this process, a zombie child, a gone pid), and the log
 * files: appending, tail reads with and without offsets, rotation to .1 and removal. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "../node/testdir.h"
#include "node/store.h"
#include "services/supervise-internal.h"

static void pack_s(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* A spec {name, argv: [argv0, "x"], extra key/value} into sb; extra_key NULL: none. */
static void make_spec(msgpack_sbuffer *sb, const char *name, const char *argv0,
                      const char *extra_key, void (*extra)(msgpack_packer *pk))
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, extra_key ? 3 : 2);
    pack_s(&pk, "name");
    pack_s(&pk, name);
    pack_s(&pk, "argv");
    msgpack_pack_array(&pk, 2);
    pack_s(&pk, argv0);
    pack_s(&pk, "x");
    if (extra_key) {
        pack_s(&pk, extra_key);
        extra(&pk);
    }
}

static void x_autorestart_bad(msgpack_packer *pk)
{
    pack_s(pk, "sometimes");
}
static void x_exitcodes_bad(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 256);
}
static void x_startsecs_bad(msgpack_packer *pk)
{
    msgpack_pack_int(pk, SVC_SUP_MAX_STARTSECS + 1);
}
static void x_startretries_bad(msgpack_packer *pk)
{
    pack_s(pk, "3");
}
static void x_signal_bad(msgpack_packer *pk)
{
    pack_s(pk, "SIGFOO");
}
static void x_wait_bad(msgpack_packer *pk)
{
    msgpack_pack_int(pk, -1);
}
static void x_cwd_bad(msgpack_packer *pk)
{
    pack_s(pk, "/nonexistent/dir");
}
static void x_signal_kill(msgpack_packer *pk)
{
    pack_s(pk, "kill");
}
static void x_unknown(msgpack_packer *pk)
{
    msgpack_pack_int(pk, 7);
}

static void expect_bad_key(const char *key, void (*extra)(msgpack_packer *pk), const char *bad)
{
    msgpack_sbuffer sb;
    svc_sup_def_t def;
    const char *got = NULL;
    make_spec(&sb, "web", "sleep", key, extra);
    assert_int_equal(svc_sup_def_parse(sb.data, sb.size, &def, &got), -EINVAL);
    assert_non_null(got);
    assert_string_equal(got, bad);
    assert_null(def.spec);
    msgpack_sbuffer_destroy(&sb);
}

static void test_names(void **state)
{
    (void)state;
    assert_true(svc_sup_name_valid("web-1.api_v2", 12));
    assert_true(svc_sup_name_valid("a", 1));
    assert_true(svc_sup_name_valid("...", 3));
    char long_name[SVC_SUP_NAME_MAX + 2];
    memset(long_name, 'a', sizeof(long_name));
    assert_true(svc_sup_name_valid(long_name, SVC_SUP_NAME_MAX));
    assert_false(svc_sup_name_valid(long_name, SVC_SUP_NAME_MAX + 1));
    assert_false(svc_sup_name_valid("", 0));
    assert_false(svc_sup_name_valid(".", 1));
    assert_false(svc_sup_name_valid("..", 2));
    assert_false(svc_sup_name_valid("a/b", 3));
    assert_false(svc_sup_name_valid("a b", 3));
    assert_false(svc_sup_name_valid("a\0b", 3));
    assert_false(svc_sup_name_valid(NULL, 0));
}

static void test_spec_parse(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    svc_sup_def_t def;
    const char *bad = NULL;
    make_spec(&sb, "web", "sleep", NULL, NULL);
    assert_int_equal(svc_sup_def_parse(sb.data, sb.size, &def, &bad), 0);
    assert_string_equal(def.name, "web");
    assert_string_equal(def.cmd.argv[0], "sleep");
    assert_string_equal(def.cmd.argv[1], "x");
    assert_null(def.cmd.argv[2]);
    assert_int_equal(def.conf.autorestart, SVC_SUP_AR_UNEXPECTED);
    assert_int_equal(def.conf.startsecs, SVC_SUP_DEFAULT_STARTSECS);
    assert_int_equal(def.conf.startretries, SVC_SUP_DEFAULT_STARTRETRIES);
    assert_int_equal(def.conf.stop_wait_ms, SVC_SUP_DEFAULT_STOP_WAIT * 1000);
    assert_int_equal(def.conf.n_exitcodes, 1);
    assert_int_equal(def.conf.exitcodes[0], 0);
    assert_int_equal(def.stop_signal, SIGTERM);
    assert_int_equal(def.spec_len, sb.size);
    assert_memory_equal(def.spec, sb.data, sb.size);
    svc_sup_def_free(&def);
    svc_sup_def_free(&def);
    svc_sup_def_free(NULL);
    msgpack_sbuffer_destroy(&sb);

    make_spec(&sb, "web", "sleep", "stop_signal", x_signal_kill);
    assert_int_equal(svc_sup_def_parse(sb.data, sb.size, &def, &bad), 0);
    assert_int_equal(def.stop_signal, SIGKILL);
    svc_sup_def_free(&def);
    msgpack_sbuffer_destroy(&sb);
    make_spec(&sb, "web", "sleep", "future_key", x_unknown); /* ignored */
    assert_int_equal(svc_sup_def_parse(sb.data, sb.size, &def, &bad), 0);
    svc_sup_def_free(&def);
    msgpack_sbuffer_destroy(&sb);

    expect_bad_key("autorestart", x_autorestart_bad, "autorestart");
    expect_bad_key("exitcodes", x_exitcodes_bad, "exitcodes");
    expect_bad_key("startsecs", x_startsecs_bad, "startsecs");
    expect_bad_key("startretries", x_startretries_bad, "startretries");
    expect_bad_key("stop_signal", x_signal_bad, "stop_signal");
    expect_bad_key("stop_wait", x_wait_bad, "stop_wait");
    expect_bad_key("cwd", x_cwd_bad, "cwd");
    make_spec(&sb, "../etc", "sleep", NULL, NULL);
    assert_int_equal(svc_sup_def_parse(sb.data, sb.size, &def, &bad), -EINVAL);
    assert_string_equal(bad, "name");
    msgpack_sbuffer_destroy(&sb);
    make_spec(&sb, "web", "", NULL, NULL);
    assert_int_equal(svc_sup_def_parse(sb.data, sb.size, &def, &bad), -EINVAL);
    assert_string_equal(bad, "argv");
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(svc_sup_def_parse("\xc1", 1, &def, &bad), -EINVAL); /* not msgpack */
    assert_string_equal(bad, "spec");
    assert_int_equal(svc_sup_def_parse("\x93\x01\x02\x03", 4, &def, &bad), -EINVAL);
}

typedef struct rows {
    int n;
    char names[4][16];
    bool wanted[4];
    int pid[4];
    uint64_t start[4];
    int64_t created[4], updated[4];
    size_t spec_len[4];
} rows_t;

static void row_cb(void *arg, const svc_sup_row_t *r)
{
    rows_t *rows = arg;
    assert_true(rows->n < 4);
    snprintf(rows->names[rows->n], 16, "%s", r->name);
    rows->wanted[rows->n] = r->wanted;
    rows->pid[rows->n] = r->pid;
    rows->start[rows->n] = r->pid_start;
    rows->created[rows->n] = r->created;
    rows->updated[rows->n] = r->updated;
    rows->spec_len[rows->n] = r->spec_len;
    rows->n++;
}

static void test_table(void **state)
{
    (void)state;
    char dir[64], path[128];
    assert_non_null(testdir_make(dir));
    snprintf(path, sizeof(path), "%s/node.db", dir);
    node_store_t *st;
    assert_int_equal(node_store_open(path, &st), 0);
    svc_sup_db_t *db;
    assert_int_equal(svc_sup_db_open(node_store_db(st), &db), 0);

    assert_int_equal(svc_sup_db_put(db, "web", "\x80", 1, true, 0, 0, 1000), 0);
    assert_int_equal(svc_sup_db_put(db, "api", "\x81\xa1x\x01", 4, false, 0, 0, 1001), 0);
    assert_int_equal(svc_sup_db_set_run(db, "web", true, 4242, 987654321, 2000), 0);
    assert_int_equal(svc_sup_db_set_run(db, "nope", true, 1, 1, 2000), -ENOENT);
    /* a replacement keeps created */
    assert_int_equal(svc_sup_db_put(db, "api", "\x80", 1, true, 7, 8, 3000), 0);
    rows_t rows = {0};
    assert_int_equal(svc_sup_db_load(db, row_cb, &rows), 2);
    assert_string_equal(rows.names[0], "api"); /* by name */
    assert_true(rows.wanted[0]);
    assert_int_equal(rows.pid[0], 7);
    assert_int_equal(rows.start[0], 8);
    assert_int_equal(rows.created[0], 1001);
    assert_int_equal(rows.updated[0], 3000);
    assert_int_equal(rows.spec_len[0], 1);
    assert_string_equal(rows.names[1], "web");
    assert_int_equal(rows.pid[1], 4242);
    assert_int_equal(rows.start[1], 987654321);
    assert_int_equal(rows.updated[1], 2000);

    assert_int_equal(svc_sup_db_delete(db, "api"), 0);
    assert_int_equal(svc_sup_db_delete(db, "api"), -ENOENT);
    svc_sup_db_close(db);
    node_store_close(st);

    /* survives a reopen (a node restart) */
    assert_int_equal(node_store_open(path, &st), 0);
    assert_int_equal(svc_sup_db_open(node_store_db(st), &db), 0);
    memset(&rows, 0, sizeof(rows));
    assert_int_equal(svc_sup_db_load(db, row_cb, &rows), 1);
    assert_string_equal(rows.names[0], "web");
    assert_true(rows.wanted[0]);
    svc_sup_db_close(db);
    svc_sup_db_close(NULL);
    node_store_close(st);
    testdir_remove(dir);
}

static void test_proc_identity(void **state)
{
    (void)state;
    uint64_t a = 0, b = 0;
    assert_int_equal(svc_sup_proc_start(getpid(), &a), 0);
    assert_int_equal(svc_sup_proc_start(getpid(), &b), 0);
    assert_int_equal(a, b);
    assert_int_equal(svc_sup_proc_start(0, &a), -EINVAL);
    /* the same process, another one holding the number, a free number */
    assert_true(svc_sup_proc_same(getpid(), b));
    assert_false(svc_sup_proc_same(getpid(), b + 1));
    assert_false(svc_sup_proc_same(0, 0));
    /* a child: alive, then a zombie (not reaped), then gone */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char c;
        close(fds[1]);
        (void)!read(fds[0], &c, 1);
        _exit(0);
    }
    close(fds[0]);
    assert_int_equal(svc_sup_proc_start(pid, &a), 0);
    assert_true(a >= b); /* started after us */
    uint64_t start = a;
    close(fds[1]); /* lets it exit */
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    assert_int_equal(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
    assert_int_equal(svc_sup_proc_start(pid, &a), -ESRCH); /* a zombie */
    assert_true(svc_sup_proc_same(pid, start));            /* a zombie is still itself */
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    assert_int_equal(svc_sup_proc_start(pid, &a), -ESRCH);
    assert_true(svc_sup_proc_same(pid, start)); /* gone */
}

typedef struct scan_hits {
    int n;
    char name[32];
    int pid;
    uint64_t start;
} scan_hits_t;

static void scan_hit_cb(void *arg, const char *name, int pid, uint64_t start)
{
    scan_hits_t *h = arg;
    h->n++;
    snprintf(h->name, sizeof(h->name), "%s", name);
    h->pid = pid;
    h->start = start;
}

/* A marked command, started in its own session as the supervisor does, is found by the scan of
 * its home; another home finds nothing. */
static void test_mark_and_scan(void **state)
{
    (void)state;
    char home[64];
    assert_non_null(testdir_make(home));
    svc_cmd_t c;
    const char *bad = NULL;
    const char *argv[] = {"sleep", "30", NULL};
    const char *env[] = {"P2P_PROGRAM=fake", "A=b", NULL};
    assert_int_equal(svc_cmd_init_strv(&c, argv, env, NULL, &bad), 0);
    assert_int_equal(svc_sup_cmd_mark(&c, "web.1", home), 0);
    assert_string_equal(svc_cmd_getenv(&c, "P2P_PROGRAM"), "web.1"); /* replaced, not added */
    assert_string_equal(svc_cmd_getenv(&c, "P2P_SUPERVISOR"), home);
    assert_string_equal(svc_cmd_getenv(&c, "A"), "b");
    size_t n = 0, programs = 0;
    for (char **e = c.env; *e; e++, n++)
        if (strncmp(*e, "P2P_PROGRAM=", 12) == 0) programs++;
    assert_int_equal(programs, 1);

    scan_hits_t hits = {0};
    assert_int_equal(svc_sup_proc_scan(home, scan_hit_cb, &hits), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setsid();
        execve("/bin/sleep", c.argv, c.env);
        _exit(127);
    }
    uint64_t start = 0;
    /* the scan sees it once execve replaced the environment */
    for (int i = 0; i < 200 && hits.n == 0; i++) {
        usleep(10000);
        assert_true(svc_sup_proc_scan(home, scan_hit_cb, &hits) >= 0);
    }
    assert_int_equal(hits.n, 1);
    assert_string_equal(hits.name, "web.1");
    assert_int_equal(hits.pid, pid);
    assert_int_equal(svc_sup_proc_start(pid, &start), 0);
    assert_int_equal(hits.start, start);
    memset(&hits, 0, sizeof(hits));
    assert_int_equal(svc_sup_proc_scan("/other/home", scan_hit_cb, &hits), 0);
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    assert_int_equal(svc_sup_proc_scan(home, scan_hit_cb, &hits), 0);
    svc_cmd_free(&c);
    testdir_remove(home);
}

static void write_all(int fd, const char *s, size_t n)
{
    assert_int_equal(write(fd, s, n), (ssize_t)n);
}

static void test_logs(void **state)
{
    (void)state;
    char dir[64], pdir[256], path[320];
    assert_non_null(testdir_make(dir));
    assert_int_equal(svc_sup_log_dir(dir, "web", pdir, sizeof(pdir)), 0);
    assert_int_equal(svc_sup_log_dir(dir, "web", pdir, sizeof(pdir)), 0); /* exists: fine */
    char small[8];
    assert_int_equal(svc_sup_log_dir(dir, "web", small, sizeof(small)), -ENAMETOOLONG);

    svc_sup_log_chunk_t c;
    assert_int_equal(svc_sup_log_read(pdir, SVC_SUP_STDOUT, false, 0, 100, &c), 0); /* absent */
    assert_int_equal(c.len, 0);
    assert_int_equal(c.size, 0);

    int fd = svc_sup_log_open(pdir, SVC_SUP_STDOUT);
    assert_true(fd >= 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_true(fcntl(fd, F_GETFL) & O_APPEND);
    write_all(fd, "hello world\n", 12);
    /* the tail */
    assert_int_equal(svc_sup_log_read(pdir, SVC_SUP_STDOUT, false, 0, 6, &c), 0);
    assert_int_equal(c.len, 6);
    assert_memory_equal(c.data, "world\n", 6);
    assert_int_equal(c.offset, 6);
    assert_int_equal(c.next_offset, 12);
    assert_int_equal(c.size, 12);
    free(c.data);
    /* from an offset, bounded by length; at the end: empty */
    assert_int_equal(svc_sup_log_read(pdir, SVC_SUP_STDOUT, true, 2, 3, &c), 0);
    assert_memory_equal(c.data, "llo", 3);
    assert_int_equal(c.next_offset, 5);
    free(c.data);
    assert_int_equal(svc_sup_log_read(pdir, SVC_SUP_STDOUT, true, 12, 100, &c), 0);
    assert_int_equal(c.len, 0);
    assert_null(c.data);
    assert_int_equal(c.next_offset, 12);
    /* the other stream is separate */
    assert_int_equal(svc_sup_log_read(pdir, SVC_SUP_STDERR, false, 0, 100, &c), 0);
    assert_int_equal(c.size, 0);

    /* rotation: under the limit nothing; over it the newest `limit` bytes go to .1 and the
     * writer carries on at the start of the emptied file */
    assert_int_equal(svc_sup_log_rotate(pdir, SVC_SUP_STDOUT, 12), 0);
    write_all(fd, "0123456789", 10);
    assert_int_equal(svc_sup_log_rotate(pdir, SVC_SUP_STDOUT, 8), 1);
    snprintf(path, sizeof(path), "%s/stdout.log.1", pdir);
    char buf[64];
    int r = open(path, O_RDONLY);
    assert_true(r >= 0);
    assert_int_equal(read(r, buf, sizeof(buf)), 8);
    assert_memory_equal(buf, "23456789", 8);
    close(r);
    write_all(fd, "after", 5);
    assert_int_equal(svc_sup_log_read(pdir, SVC_SUP_STDOUT, false, 0, 100, &c), 0);
    assert_int_equal(c.size, 5);
    assert_memory_equal(c.data, "after", 5);
    free(c.data);
    /* an offset past the end (the file was rotated under a reader) starts again at 0 */
    assert_int_equal(svc_sup_log_read(pdir, SVC_SUP_STDOUT, true, 22, 100, &c), 0);
    assert_int_equal(c.offset, 0);
    assert_int_equal(c.len, 5);
    free(c.data);
    assert_int_equal(svc_sup_log_rotate(pdir, SVC_SUP_STDERR, 8), 0); /* absent */
    assert_int_equal(svc_sup_log_open(pdir, 7), -EINVAL);
    close(fd);

    assert_int_equal(svc_sup_log_remove(pdir), 0);
    struct stat st;
    assert_int_equal(stat(pdir, &st), -1);
    assert_int_equal(errno, ENOENT);
    testdir_remove(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names), cmocka_unit_test(test_spec_parse),
        cmocka_unit_test(test_table), cmocka_unit_test(test_proc_identity),
        cmocka_unit_test(test_logs),  cmocka_unit_test(test_mark_and_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
