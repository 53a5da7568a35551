/* spawn.c: unit tests for src/services/spawn.c: argv/env/cwd validation naming the bad parameter,
 * the clean base environment as a real child sees it (nothing of the parent's leaks), PATH lookup
 * along the command's own PATH, the working directory, the child's own process group killed as a
 * whole, and signal names. */
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
#include <unistd.h>

#include <cmocka.h>

#include "services/spawn.h"

/* A msgpack object built from packed bytes (objects point into sb). */
typedef struct obj {
    msgpack_sbuffer sb;
    msgpack_unpacked u;
} obj_t;

static void obj_done(obj_t *o)
{
    msgpack_unpacked_destroy(&o->u);
    msgpack_sbuffer_destroy(&o->sb);
}

static void obj_unpack(obj_t *o)
{
    msgpack_unpacked_init(&o->u);
    assert_int_equal(msgpack_unpack_next(&o->u, o->sb.data, o->sb.size, NULL),
                     MSGPACK_UNPACK_SUCCESS);
}

static void pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

/* An array of n strings (lengths from strlen). */
static void make_argv(obj_t *o, const char *const *a, size_t n)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(&o->sb);
    msgpack_packer_init(&pk, &o->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++)
        pack_str(&pk, a[i], strlen(a[i]));
    obj_unpack(o);
}

/* A map of n key/value string pairs (kv[2i], kv[2i+1]). */
static void make_env(obj_t *o, const char *const *kv, size_t n)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(&o->sb);
    msgpack_packer_init(&pk, &o->sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    for (size_t i = 0; i < n; i++) {
        pack_str(&pk, kv[2 * i], strlen(kv[2 * i]));
        pack_str(&pk, kv[2 * i + 1], strlen(kv[2 * i + 1]));
    }
    obj_unpack(o);
}

static void expect_bad(const obj_t *argv, const obj_t *env, const char *cwd, const char *param)
{
    svc_cmd_t c;
    const char *bad = NULL;
    int rc = svc_cmd_init(&c, argv ? &argv->u.data : NULL, env ? &env->u.data : NULL, cwd,
                          cwd ? strlen(cwd) : 0, &bad);
    assert_int_equal(rc, -EINVAL);
    assert_non_null(bad);
    assert_string_equal(bad, param);
    assert_null(c.argv);
    assert_null(c.env);
    assert_null(c.cwd);
    svc_cmd_free(&c);
}

static void test_argv_validation(void **state)
{
    (void)state;
    obj_t a, e;
    make_argv(&a, NULL, 0); /* empty */
    expect_bad(&a, NULL, NULL, "argv");
    obj_done(&a);
    expect_bad(NULL, NULL, NULL, "argv");

    const char *empty0[] = {"", "x"};
    make_argv(&a, empty0, 2);
    expect_bad(&a, NULL, NULL, "argv");
    obj_done(&a);

    /* a NUL inside an argument */
    msgpack_packer pk;
    msgpack_sbuffer_init(&a.sb);
    msgpack_packer_init(&pk, &a.sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    pack_str(&pk, "echo", 4);
    pack_str(&pk, "a\0b", 3);
    obj_unpack(&a);
    expect_bad(&a, NULL, NULL, "argv");
    obj_done(&a);

    /* an element that is not a string */
    msgpack_sbuffer_init(&a.sb);
    msgpack_packer_init(&pk, &a.sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    pack_str(&pk, "echo", 4);
    msgpack_pack_int(&pk, 5);
    obj_unpack(&a);
    expect_bad(&a, NULL, NULL, "argv");
    obj_done(&a);

    /* too many arguments, and one too long */
    const char *many[SVC_MAX_ARGV + 1];
    for (size_t i = 0; i < SVC_MAX_ARGV + 1; i++)
        many[i] = "x";
    make_argv(&a, many, SVC_MAX_ARGV + 1);
    expect_bad(&a, NULL, NULL, "argv");
    obj_done(&a);
    make_argv(&a, many, SVC_MAX_ARGV);
    svc_cmd_t c;
    const char *bad = NULL;
    assert_int_equal(svc_cmd_init(&c, &a.u.data, NULL, NULL, 0, &bad), 0);
    assert_null(c.argv[SVC_MAX_ARGV]);
    svc_cmd_free(&c);
    svc_cmd_free(&c); /* idempotent */
    svc_cmd_free(NULL);
    obj_done(&a);
    char *big = malloc(SVC_MAX_ARG + 2);
    memset(big, 'y', SVC_MAX_ARG + 1);
    big[SVC_MAX_ARG + 1] = '\0';
    const char *toolong[] = {"echo", big};
    make_argv(&a, toolong, 2);
    expect_bad(&a, NULL, NULL, "argv");
    obj_done(&a);

    /* env and cwd errors name their parameter */
    const char *ok[] = {"true"};
    make_argv(&a, ok, 1);
    const char *badkey[] = {"1ABC", "v"};
    make_env(&e, badkey, 1);
    expect_bad(&a, &e, NULL, "env");
    obj_done(&e);
    const char *badkey2[] = {"A=B", "v"};
    make_env(&e, badkey2, 1);
    expect_bad(&a, &e, NULL, "env");
    obj_done(&e);
    const char *bigval[] = {"A", big};
    make_env(&e, bigval, 1);
    expect_bad(&a, &e, NULL, "env");
    obj_done(&e);
    make_argv(&e, ok, 1); /* an array, not a map */
    expect_bad(&a, &e, NULL, "env");
    obj_done(&e);
    expect_bad(&a, NULL, "relative/dir", "cwd");
    expect_bad(&a, NULL, "/nonexistent-p2p-dir", "cwd");
    expect_bad(&a, NULL, "/etc/passwd", "cwd");
    obj_done(&a);
    free(big);
}

static void test_env_merge(void **state)
{
    (void)state;
    obj_t a, e;
    const char *argv[] = {"env", "a;touch /tmp/x", "$(id)"};
    make_argv(&a, argv, 3);
    const char *kv[] = {"FOO", "bar", "PATH", "/opt/bin", "FOO", "baz", "EMPTY", ""};
    make_env(&e, kv, 4);
    svc_cmd_t c;
    const char *bad = "unset";
    assert_int_equal(svc_cmd_init(&c, &a.u.data, &e.u.data, "/tmp", 4, &bad), 0);
    assert_string_equal(c.argv[1], "a;touch /tmp/x");
    assert_string_equal(c.argv[2], "$(id)");
    assert_null(c.argv[3]);
    assert_string_equal(svc_cmd_getenv(&c, "PATH"), "/opt/bin");
    assert_string_equal(svc_cmd_getenv(&c, "FOO"), "baz"); /* the last wins */
    assert_string_equal(svc_cmd_getenv(&c, "LANG"), "C.UTF-8");
    assert_string_equal(svc_cmd_getenv(&c, "HOME"), "/");
    assert_string_equal(svc_cmd_getenv(&c, "EMPTY"), "");
    assert_null(svc_cmd_getenv(&c, "FO"));
    size_t n = 0;
    while (c.env[n])
        n++;
    assert_int_equal(n, 5);
    assert_string_equal(c.cwd, "/tmp");

    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    svc_cmd_options(&c, &o, stdio, 3, NULL);
    assert_string_equal(o.file, "env");
    assert_ptr_equal(o.args, c.argv);
    assert_ptr_equal(o.env, c.env);
    assert_string_equal(o.cwd, "/tmp");
    assert_true(o.flags & UV_PROCESS_DETACHED);
    assert_int_equal(o.stdio_count, 3);
    svc_cmd_free(&c);
    obj_done(&a);
    obj_done(&e);

    const char *sv[] = {"ls", "-l", NULL};
    const char *se[] = {"X_1=a=b", NULL};
    assert_int_equal(svc_cmd_init_strv(&c, sv, se, NULL, &bad), 0);
    assert_string_equal(svc_cmd_getenv(&c, "X_1"), "a=b");
    assert_null(c.cwd);
    svc_cmd_options(&c, &o, NULL, 0, NULL);
    assert_string_equal(o.cwd, "/");
    svc_cmd_free(&c);
    const char *se2[] = {"NOEQUALS", NULL};
    assert_int_equal(svc_cmd_init_strv(&c, sv, se2, NULL, &bad), -EINVAL);
    assert_string_equal(bad, "env");
    const char *sv2[] = {NULL};
    assert_int_equal(svc_cmd_init_strv(&c, sv2, NULL, NULL, &bad), -EINVAL);
    assert_string_equal(bad, "argv");
}

/* --- real children --------------------------------------------------------------------------- */

typedef struct child {
    uv_process_t proc;
    int64_t status;
    int term_signal;
    int exited;
} child_t;

static void exit_cb(uv_process_t *p, int64_t status, int term_signal)
{
    child_t *ch = p->data;
    ch->status = status;
    ch->term_signal = term_signal;
    ch->exited = 1;
    uv_close((uv_handle_t *)p, NULL);
}

/* Spawns c with stdout to the file `out` (created) and runs the loop until it exits and closes. */
static void run_to_file(const svc_cmd_t *c, const char *out, child_t *ch)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, {.flags = UV_INHERIT_FD, .data.fd = fd}, {.flags = UV_IGNORE}};
    uv_process_options_t o;
    svc_cmd_options(c, &o, stdio, 3, exit_cb);
    memset(ch, 0, sizeof(*ch));
    ch->proc.data = ch;
    assert_int_equal(uv_spawn(&loop, &ch->proc, &o), 0);
    close(fd);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(ch->exited, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = calloc(1, 65536);
    size_t n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void test_child_env(void **state)
{
    (void)state;
    char dir[] = "/tmp/p2p-spawn-XXXXXX", out[128];
    assert_non_null(mkdtemp(dir));
    snprintf(out, sizeof(out), "%s/out", dir);
    setenv("P2P_SPAWN_LEAK", "secret", 1);
    const char *argv[] = {"env", NULL};
    const char *env[] = {"FOO=bar baz", NULL};
    svc_cmd_t c;
    const char *bad;
    assert_int_equal(svc_cmd_init_strv(&c, argv, env, NULL, &bad), 0);
    child_t ch;
    run_to_file(&c, out, &ch);
    assert_int_equal(ch.status, 0);
    char *text = slurp(out);
    /* exactly the base plus FOO, in that order: nothing from this process leaks */
    assert_string_equal(text, "PATH=" SVC_BASE_PATH "\nLANG=C.UTF-8\nHOME=/\nFOO=bar baz\n");
    free(text);
    svc_cmd_free(&c);

    /* a bare name is looked up along the command's PATH, not the parent's */
    char script[160];
    snprintf(script, sizeof(script), "%s/p2p-spawn-probe", dir);
    FILE *f = fopen(script, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\necho probe \"$1\" \"$PWD\"\n", f);
    fclose(f);
    assert_int_equal(chmod(script, 0755), 0);
    char pathv[200];
    snprintf(pathv, sizeof(pathv), "PATH=%s", dir);
    const char *argv2[] = {"p2p-spawn-probe", "a;touch /tmp/p2p-spawn-x", NULL};
    const char *env2[] = {pathv, NULL};
    assert_int_equal(svc_cmd_init_strv(&c, argv2, env2, dir, &bad), 0);
    run_to_file(&c, out, &ch);
    assert_int_equal(ch.status, 0);
    text = slurp(out);
    char want[256];
    snprintf(want, sizeof(want), "probe a;touch /tmp/p2p-spawn-x %s\n", dir);
    assert_string_equal(text, want);
    free(text);
    assert_int_not_equal(access("/tmp/p2p-spawn-x", F_OK), 0);
    svc_cmd_free(&c);

    /* not on the default PATH: spawning fails with ENOENT */
    const char *argv3[] = {"p2p-spawn-probe", NULL};
    assert_int_equal(svc_cmd_init_strv(&c, argv3, NULL, NULL, &bad), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_process_t p;
    uv_process_options_t o;
    svc_cmd_options(&c, &o, NULL, 0, exit_cb);
    assert_int_equal(uv_spawn(&loop, &p, &o), UV_ENOENT);
    uv_close((uv_handle_t *)&p, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    svc_cmd_free(&c);
    unlink(script);
    unlink(out);
    rmdir(dir);
}

static void test_group_kill(void **state)
{
    (void)state;
    /* sh starts a background sleep (same group) and waits: killing the group ends both */
    const char *argv[] = {"sh", "-c", "sleep 100 & echo $!; wait", NULL};
    svc_cmd_t c;
    const char *bad;
    assert_int_equal(svc_cmd_init_strv(&c, argv, NULL, NULL, &bad), 0);
    uv_loop_t loop;
    uv_loop_init(&loop);
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE}, {.flags = UV_INHERIT_FD, .data.fd = fds[1]}, {.flags = UV_IGNORE}};
    uv_process_options_t o;
    svc_cmd_options(&c, &o, stdio, 3, exit_cb);
    child_t ch = {0};
    ch.proc.data = &ch;
    assert_int_equal(uv_spawn(&loop, &ch.proc, &o), 0);
    close(fds[1]);
    char buf[32] = {0};
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1); /* blocks until sh printed the sleep's pid */
    assert_true(n > 0);
    close(fds[0]);
    int pid = ch.proc.pid, sleeper = atoi(buf);
    assert_true(sleeper > 1);
    assert_int_equal(getpgid(pid), pid); /* its own group... */
    assert_int_equal(getsid(pid), pid);  /* ...and session */
    assert_int_equal(getpgid(sleeper), pid);
    assert_int_equal(svc_kill_group(pid, SIGKILL), 0);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(ch.term_signal, SIGKILL);
    /* the sleep (reparented to init or a subreaper) is gone or a zombie about to be reaped */
    for (int i = 0; i < 200 && kill(sleeper, 0) == 0; i++) {
        char path[64], st[256] = {0};
        snprintf(path, sizeof(path), "/proc/%d/stat", sleeper);
        FILE *f = fopen(path, "r");
        if (!f) break;
        size_t m = fread(st, 1, sizeof(st) - 1, f);
        fclose(f);
        st[m] = '\0';
        char *rp = strrchr(st, ')');
        if (rp && rp[2] == 'Z') break;
        usleep(10000);
    }
    char path[64], st[256] = {0};
    snprintf(path, sizeof(path), "/proc/%d/stat", sleeper);
    FILE *f = fopen(path, "r");
    if (f) {
        size_t m = fread(st, 1, sizeof(st) - 1, f);
        fclose(f);
        st[m] = '\0';
        char *rp = strrchr(st, ')');
        assert_true(m == 0 || (rp && rp[2] == 'Z'));
    }
    assert_int_equal(svc_kill_group(1, SIGTERM), -EINVAL);
    assert_int_equal(svc_kill_group(0, SIGTERM), -EINVAL);
    assert_int_equal(svc_kill_group(-5, SIGTERM), -EINVAL);
    assert_int_equal(uv_loop_close(&loop), 0);
    svc_cmd_free(&c);
}

static void test_signal_names(void **state)
{
    (void)state;
    int sig = 0;
    static const struct {
        const char *s;
        int sig;
    } ok[] = {{"TERM", SIGTERM}, {"sigterm", SIGTERM}, {"SIGKILL", SIGKILL}, {"hup", SIGHUP},
              {"Int", SIGINT},   {"QUIT", SIGQUIT},    {"usr1", SIGUSR1},    {"USR2", SIGUSR2},
              {"STOP", SIGSTOP}, {"cont", SIGCONT},    {"9", SIGKILL},       {"15", SIGTERM},
              {"64", 64}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        sig = 0;
        assert_int_equal(svc_signal_parse(ok[i].s, strlen(ok[i].s), &sig), 0);
        assert_int_equal(sig, ok[i].sig);
    }
    static const char *const bad[] = {
        "", "0", "65", "-9", "SIG", "TERMX", "9a", "KIL", "99999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(svc_signal_parse(bad[i], strlen(bad[i]), &sig), -EINVAL);
    assert_int_equal(svc_signal_parse("TERM\0", 5, &sig), -EINVAL);
    assert_string_equal(svc_signal_name(SIGTERM), "TERM");
    assert_string_equal(svc_signal_name(SIGABRT), "ABRT");
    assert_string_equal(svc_signal_name(SIGKILL), "KILL");
    assert_null(svc_signal_name(40));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_argv_validation), cmocka_unit_test(test_env_merge),
        cmocka_unit_test(test_child_env),       cmocka_unit_test(test_group_kill),
        cmocka_unit_test(test_signal_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
