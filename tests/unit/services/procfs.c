/* procfs.c: unit tests for src/services/procfs.c: the stat parser on names holding spaces and
 * parentheses, malformed lines and odd bytes; cmdline cleaning; and real reads of this test's own
 * process and of children it starts (a copy of sleep named "a) b", a busy loop): scan, one-process
 * reads, CPU figures, users, and the small file helpers. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "services/procfs.h"

extern char **environ;

static void test_parse_stat(void **state)
{
    (void)state;
    svc_proc_stat_t st;
    const char *line = "1234 (a) b) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 2 0 "
                       "5000 8192000 250 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0\n";
    assert_int_equal(svc_procfs_parse_stat(line, strlen(line), &st), 0);
    assert_int_equal(st.pid, 1234);
    assert_string_equal(st.name, "a) b");
    assert_int_equal(st.state, 'S');
    assert_int_equal(st.ppid, 1);
    assert_int_equal(st.pgrp, 1234);
    assert_int_equal(st.session, 1234);
    assert_int_equal(st.utime, 7);
    assert_int_equal(st.stime, 3);
    assert_int_equal(st.priority, 20);
    assert_int_equal(st.nice, 0);
    assert_int_equal(st.threads, 2);
    assert_int_equal(st.starttime, 5000);
    assert_int_equal(st.vsize, 8192000);
    assert_int_equal(st.rss, 250);

    const char *nice = "7 ((x)) R 2 0 0 0 -1 0 0 0 0 0 1 2 0 0 39 19 1 0 9 0 0\n";
    assert_int_equal(svc_procfs_parse_stat(nice, strlen(nice), &st), 0);
    assert_string_equal(st.name, "(x)");
    assert_int_equal(st.nice, 19);
    assert_int_equal(st.state, 'R');

    const char *odd = "8 (\xff\xfe ok) S 1 0 0 0 -1 0 0 0 0 0 1 2 0 0 39 19 1 0 9 0 0";
    assert_int_equal(svc_procfs_parse_stat(odd, strlen(odd), &st), 0);
    assert_string_equal(st.name, "?? ok");

    static const char *const bad[] = {
        "",
        "1234 a S 1",
        "1234 (a S 1 2 3",
        "1234 (a) S 1 2 3",
        "(a) S 1 0 0 0 -1 0 0 0 0 0 1 2 0 0 39 19 1 0 9 0 0",
        "x (a) S 1 0 0 0 -1 0 0 0 0 0 1 2 0 0 39 19 1 0 9 0 0",
        "5 (a) S 1 0 0 0 -1 0 0 0 0 0 1 2 0 0 39 19 1 0 9 0 z",
        "5 (a) S 1 0 0 0 -1 0 0 0 0 0 1 2 0 0 39 19 1 0 99999999999999999999999 0 0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(svc_procfs_parse_stat(bad[i], strlen(bad[i]), &st), -EINVAL);
    /* not NUL-terminated: only len bytes are read */
    char trunc[64];
    memcpy(trunc, line, sizeof(trunc));
    assert_int_equal(svc_procfs_parse_stat(trunc, 40, &st), -EINVAL);
}

static void test_clean(void **state)
{
    (void)state;
    char a[] = "sleep\0"
               "100\0\0";
    assert_int_equal(svc_procfs_clean(a, sizeof(a) - 1, sizeof(a)), 9);
    assert_string_equal(a, "sleep 100");
    char b[] = "x\xc3\xa9\xc3y\0";
    assert_int_equal(svc_procfs_clean(b, 6, sizeof(b)), 5);
    assert_string_equal(b, "x\xc3\xa9?y");
    char c[] = "\0\0";
    assert_int_equal(svc_procfs_clean(c, 2, sizeof(c)), 0);
    assert_string_equal(c, "");
    char d[] = "\xed\xa0\x80z"; /* an encoded surrogate is not valid UTF-8 */
    assert_int_equal(svc_procfs_clean(d, 4, sizeof(d)), 4);
    assert_string_equal(d, "???z");
}

static const svc_proc_entry_t *find(const svc_procfs_t *fs, int pid)
{
    size_t n;
    const svc_proc_entry_t *e = svc_procfs_entries(fs, &n);
    for (size_t i = 0; i < n; i++)
        if (e[i].st.pid == pid) return &e[i];
    return NULL;
}

static void test_self(void **state)
{
    (void)state;
    svc_procfs_t *fs;
    assert_int_equal(svc_procfs_open(NULL, &fs), 0);
    svc_proc_entry_t e;
    char cmd[4096];
    assert_int_equal(svc_procfs_read(fs, getpid(), false, &e, cmd, sizeof(cmd)), 0);
    assert_int_equal(e.st.pid, getpid());
    assert_int_equal(e.st.ppid, getppid());
    assert_int_equal(e.st.pgrp, getpgrp());
    assert_int_equal(e.uid, getuid());
    assert_string_equal(e.st.name, "test-svc-procfs");
    assert_non_null(strstr(cmd, "test-svc-procfs"));
    assert_int_equal(e.cmd_len, strlen(cmd));
    assert_true(e.st.state == 'R');
    assert_true(e.st.threads >= 1);
    assert_true(e.rss_bytes > 0);
    time_t now = time(NULL);
    assert_true(e.start_time <= (uint64_t)now + 1 && e.start_time + 3600 > (uint64_t)now);
    assert_true(e.cpu_percent >= 0);

    char buf[256];
    assert_true(svc_procfs_read_file(fs, getpid(), "comm", buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "test-svc-procfs\n");
    char self[4096], link[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    assert_true(n > 0);
    self[n] = '\0';
    assert_int_equal(svc_procfs_readlink(fs, getpid(), "exe", link, sizeof(link)), (int)n);
    assert_string_equal(link, self);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int before = svc_procfs_count_dir(fs, getpid(), "fd");
    close(fd);
    assert_int_equal(svc_procfs_count_dir(fs, getpid(), "fd"), before - 1);
    int envc = 0;
    while (environ[envc])
        envc++;
    assert_true(svc_procfs_count_strings(fs, getpid(), "environ") >= 0);
    assert_int_equal(svc_procfs_count_dir(fs, getpid(), "task"), 1);
    assert_int_equal(svc_procfs_read(fs, 0, false, &e, cmd, sizeof(cmd)), -EINVAL);
    assert_int_equal(svc_procfs_read(fs, INT32_MAX, false, &e, cmd, sizeof(cmd)), -ENOENT);

    assert_string_equal(svc_procfs_user(fs, 0), "root");
    assert_string_equal(svc_procfs_user(fs, 3999999), "3999999");
    for (uint32_t u = 0; u < 2 * SVC_PROC_USER_CACHE; u++)
        svc_procfs_user(fs, 5000000 + u);
    assert_string_equal(svc_procfs_user(fs, 0), "root"); /* evicted and looked up again */
    assert_true(svc_procfs_hz(fs) > 0);
    assert_true(svc_procfs_boot_time(fs) > 1000000000);
    svc_procfs_close(fs);
    svc_procfs_close(NULL);
}

static pid_t start(const char *path, char *const argv[])
{
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, path, NULL, NULL, argv, environ), 0);
    return pid;
}

static void test_scan_children(void **state)
{
    (void)state;
    char dir[] = "/tmp/p2p-procfs-XXXXXX", exe[128];
    assert_non_null(mkdtemp(dir));
    snprintf(exe, sizeof(exe), "%s/a) b", dir);
    /* a copy of sleep whose name holds a parenthesis and a space */
    int in = open("/bin/sleep", O_RDONLY), out = open(exe, O_WRONLY | O_CREAT, 0755);
    assert_true(in >= 0 && out >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof(buf))) > 0)
        assert_int_equal(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
    char *sleeper_argv[] = {exe, "30", NULL};
    pid_t sleeper = start(exe, sleeper_argv);
    char *busy_argv[] = {"sh", "-c", "while :; do :; done", NULL};
    pid_t busy = start("/bin/sh", busy_argv);

    svc_procfs_t *fs;
    assert_int_equal(svc_procfs_open(NULL, &fs), 0);
    /* the child has exec'd once its name is the new one */
    const svc_proc_entry_t *e = NULL;
    for (int i = 0; i < 500; i++) {
        assert_true(svc_procfs_scan(fs) > 2);
        e = find(fs, sleeper);
        if (e && strcmp(e->st.name, "a) b") == 0) break;
        usleep(10000);
    }
    assert_non_null(e);
    assert_string_equal(e->st.name, "a) b");
    assert_int_equal(e->st.ppid, getpid());
    assert_int_equal(e->uid, getuid());
    char want[160];
    snprintf(want, sizeof(want), "%s 30", exe);
    assert_int_equal(e->cmd_len, strlen(want));
    assert_memory_equal(svc_procfs_text(fs) + e->cmd_off, want, e->cmd_len + 1);
    assert_non_null(find(fs, getpid()));
    assert_non_null(find(fs, busy));
    size_t count;
    const svc_proc_entry_t *all = svc_procfs_entries(fs, &count);
    for (size_t i = 1; i < count; i++)
        assert_true(all[i - 1].st.pid < all[i].st.pid);

    /* CPU over an interval between two scans: a busy loop uses some, a sleeper none */
    usleep(2 * SVC_PROC_CPU_MIN_MS * 1000);
    assert_true(svc_procfs_scan(fs) > 2);
    const svc_proc_entry_t *b = find(fs, busy), *s = find(fs, sleeper);
    assert_non_null(b);
    assert_non_null(s);
    assert_true(b->cpu_percent > 1.0);
    assert_true(b->cpu_percent <= 100.0 * (double)sysconf(_SC_NPROCESSORS_ONLN) + 5.0);
    assert_true(s->cpu_percent < 10.0 && s->cpu_percent < b->cpu_percent);
    double figure = b->cpu_percent;
    /* a scan right after repeats the figure; a one-process read gives it too */
    assert_true(svc_procfs_scan(fs) > 2);
    b = find(fs, busy);
    assert_true(b->cpu_percent == figure);
    svc_proc_entry_t one;
    char cmd[64];
    assert_int_equal(svc_procfs_read(fs, busy, true, &one, cmd, sizeof(cmd)), 0);
    assert_true(one.cpu_percent == figure);
    assert_int_equal(one.cmd_len, 25);
    assert_string_equal(cmd, "sh -c while :; do :; done");
    /* a short buffer cuts the cmdline */
    assert_int_equal(svc_procfs_read(fs, sleeper, false, &one, cmd, 5), 0);
    assert_int_equal(one.cmd_len, 4);
    assert_int_equal(strlen(cmd), 4);

    kill(sleeper, SIGKILL);
    kill(busy, SIGKILL);
    int status;
    assert_int_equal(waitpid(sleeper, &status, 0), sleeper);
    assert_int_equal(waitpid(busy, &status, 0), busy);
    assert_true(svc_procfs_scan(fs) > 0);
    assert_null(find(fs, sleeper));
    assert_null(find(fs, busy));
    assert_int_equal(svc_procfs_read(fs, sleeper, true, &one, cmd, sizeof(cmd)), -ENOENT);
    svc_procfs_close(fs);
    unlink(exe);
    rmdir(dir);
}

/* A process that execs the same program name with other arguments: its cmdline is read again
 * (same pid and start time, but the argument area moved), not copied from the previous scan. */
static void test_exec_refresh(void **state)
{
    (void)state;
    char *argv[] = {"sh", "-c", "read x; exec sh -c 'sleep 30; true'", NULL};
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, "/bin/sh", &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[0]);
    svc_procfs_t *fs;
    assert_int_equal(svc_procfs_open(NULL, &fs), 0);
    const svc_proc_entry_t *e = NULL;
    const char *first = "sh -c read x; exec sh -c 'sleep 30; true'";
    for (int i = 0; i < 500; i++) { /* until the child runs sh */
        assert_true(svc_procfs_scan(fs) > 0);
        e = find(fs, pid);
        if (e && strcmp(svc_procfs_text(fs) + e->cmd_off, first) == 0) break;
        usleep(10000);
    }
    assert_non_null(e);
    assert_string_equal(svc_procfs_text(fs) + e->cmd_off, first);
    assert_int_equal(write(fds[1], "\n", 1), 1); /* let it exec */
    close(fds[1]);
    const char *second = "sh -c sleep 30; true";
    char raw[256];
    for (int i = 0; i < 500; i++) { /* until the kernel shows the new cmdline */
        int n = svc_procfs_read_file(fs, pid, "cmdline", raw, sizeof(raw));
        if (n > 0 && svc_procfs_clean(raw, (size_t)n, sizeof(raw)) == strlen(second) &&
            strcmp(raw, second) == 0)
            break;
        usleep(10000);
    }
    assert_true(svc_procfs_scan(fs) > 0);
    e = find(fs, pid);
    assert_non_null(e);
    assert_string_equal(e->st.name, "sh");
    assert_string_equal(svc_procfs_text(fs) + e->cmd_off, second);
    size_t n;
    const svc_proc_entry_t *all = svc_procfs_entries(fs, &n);
    for (size_t i = 0; i < n; i++) /* its sleep, when the scan saw it */
        if (all[i].st.ppid == pid) kill(all[i].st.pid, SIGKILL);
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    svc_procfs_close(fs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_stat),   cmocka_unit_test(test_clean),
        cmocka_unit_test(test_self),         cmocka_unit_test(test_scan_children),
        cmocka_unit_test(test_exec_refresh),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
