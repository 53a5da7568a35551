/* file_path.c: unit tests for src/services/file_path.c: lexical normalization ("a//b", ".",
 * "./a/", "..", absolute paths, NUL bytes, a 5000-byte path, a 300-byte component) and the
 * resolution beneath a real root directory, run twice (openat2 and the O_NOFOLLOW walk): symlinks
 * to /etc, chains that end outside, dangling links out (absolute and relative), a directory link in
 * the middle of the path, loops, links that stay inside, creation through links, parents, lstat. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "services/file_path.h"

typedef struct fx {
    char base[64];
    char root[96];
    char outside[96];
    svc_froot_t r;
} fx_t;

static void touch(const char *dir, const char *name, const char *content)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static void link_at(const char *dir, const char *name, const char *target)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    assert_int_equal(symlink(target, p), 0);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char p[256];
    snprintf(f->base, sizeof(f->base), "/tmp/p2p-fpath-XXXXXX");
    assert_non_null(mkdtemp(f->base));
    snprintf(f->root, sizeof(f->root), "%s/root", f->base);
    snprintf(f->outside, sizeof(f->outside), "%s/outside", f->base);
    assert_int_equal(mkdir(f->root, 0755), 0);
    assert_int_equal(mkdir(f->outside, 0755), 0);
    touch(f->outside, "secret.txt", "secret");
    touch(f->root, "inside.txt", "inside");
    snprintf(p, sizeof(p), "%s/dir", f->root);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/dir/sub", f->root);
    assert_int_equal(mkdir(p, 0755), 0);
    link_at(f->root, "etclink", "/etc");
    link_at(f->root, "chain1", "chain2");
    link_at(f->root, "chain2", "dir/chain3");
    snprintf(p, sizeof(p), "%s/dir", f->root);
    link_at(p, "chain3", "../../outside/secret.txt");
    link_at(p, "midout", "../../outside");
    link_at(p, "up", "..");
    link_at(p, "up2", "../..");
    link_at(p, "insub", "sub/../../inside.txt");
    link_at(f->root, "dangling_abs", "/nonexistent/zz");
    link_at(f->root, "dangling_rel", "../nope");
    link_at(f->root, "dangling_in", "nothere");
    link_at(f->root, "inlink", "inside.txt");
    link_at(f->root, "loop1", "loop2");
    link_at(f->root, "loop2", "loop1");
    link_at(f->root, "empty_abs", "/");
    f->r.fd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->r.fd >= 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char cmd[160];
    close(f->r.fd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->base);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int norm(const char *in, char *out)
{
    return svc_file_path_norm(in, strlen(in), out, SVC_FILE_MAX_PATH, NULL);
}

static void test_norm(void **state)
{
    (void)state;
    char out[SVC_FILE_MAX_PATH];
    assert_int_equal(norm(".", out), 0);
    assert_string_equal(out, "");
    assert_int_equal(norm("./", out), 0);
    assert_int_equal(norm("a//b", out), 3);
    assert_string_equal(out, "a/b");
    assert_int_equal(norm("./a/./b/", out), 3);
    assert_string_equal(out, "a/b");
    assert_int_equal(norm("...", out), 3); /* a name, not a parent */
    assert_int_equal(norm("a/..b", out), 5);
    assert_int_equal(norm("", out), -EINVAL);
    assert_int_equal(norm("..", out), -EINVAL);
    assert_int_equal(norm("../x", out), -EINVAL);
    assert_int_equal(norm("a/../../x", out), -EINVAL);
    assert_int_equal(norm("a/..", out), -EINVAL);
    assert_int_equal(norm("/etc/passwd", out), -EINVAL);
    assert_int_equal(norm("/", out), -EINVAL);
    const char *why = NULL;
    assert_int_equal(svc_file_path_norm("a\0b", 3, out, sizeof(out), &why), -EINVAL);
    assert_non_null(strstr(why, "NUL"));
    char *longp = malloc(5001);
    memset(longp, 'a', 5000);
    longp[5000] = 0;
    assert_int_equal(norm(longp, out), -ENAMETOOLONG);
    for (int i = 100; i < 5000; i += 101)
        longp[i] = '/';
    assert_int_equal(norm(longp, out), -ENAMETOOLONG); /* short components, too long in all */
    longp[4096] = 0;
    assert_int_equal(norm(longp, out), -ENAMETOOLONG); /* PATH_MAX bytes: no room for the NUL */
    longp[4095] = 0;
    assert_true(norm(longp, out) > 0); /* PATH_MAX - 1 bytes of short components */
    memset(longp, 'c', 300);
    longp[300] = 0;
    assert_int_equal(norm(longp, out), -ENAMETOOLONG);
    longp[255] = 0;
    assert_int_equal(norm(longp, out), 255);
    longp[256] = 0;
    longp[255] = 'c';
    assert_int_equal(norm(longp, out), -ENAMETOOLONG);
    free(longp);
    /* out too small */
    char small[4];
    assert_int_equal(svc_file_path_norm("abcdef", 6, small, sizeof(small), NULL), -ENAMETOOLONG);
}

static int open_ro(fx_t *f, const char *p)
{
    int fd = svc_file_path_open(&f->r, p, O_RDONLY, 0);
    if (fd >= 0) close(fd);
    return fd >= 0 ? 0 : fd;
}

static void check_resolution(fx_t *f)
{
    char buf[16];
    /* inside */
    int fd = svc_file_path_open(&f->r, "inlink", O_RDONLY, 0);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, buf, sizeof(buf)), 6);
    close(fd);
    assert_int_equal(open_ro(f, "inside.txt"), 0);
    assert_int_equal(open_ro(f, ""), 0);
    assert_int_equal(open_ro(f, "dir/up/inside.txt"), 0);
    assert_int_equal(open_ro(f, "dir/insub"), 0);
    assert_int_equal(open_ro(f, "dir/sub"), 0);
    /* every escape */
    assert_int_equal(open_ro(f, "etclink"), -EXDEV);
    assert_int_equal(open_ro(f, "etclink/passwd"), -EXDEV);
    assert_int_equal(open_ro(f, "chain1"), -EXDEV);
    assert_int_equal(open_ro(f, "dir/chain3"), -EXDEV);
    assert_int_equal(open_ro(f, "dir/midout/secret.txt"), -EXDEV);
    assert_int_equal(open_ro(f, "dir/midout"), -EXDEV);
    assert_int_equal(open_ro(f, "dir/up2"), -EXDEV);
    assert_int_equal(open_ro(f, "dir/up2/outside/secret.txt"), -EXDEV);
    assert_int_equal(open_ro(f, "dangling_abs"), -EXDEV);
    assert_int_equal(open_ro(f, "dangling_rel"), -EXDEV);
    assert_int_equal(open_ro(f, "empty_abs"), -EXDEV);
    assert_int_equal(svc_file_path_open(&f->r, "dangling_abs", O_PATH, 0), -EXDEV);
    /* other failures */
    assert_int_equal(open_ro(f, "dangling_in"), -ENOENT);
    assert_int_equal(open_ro(f, "loop1"), -ELOOP);
    assert_int_equal(open_ro(f, "inside.txt/x"), -ENOTDIR);
    assert_int_equal(open_ro(f, "missing/x"), -ENOENT);
    /* O_NOFOLLOW: the last link is not followed */
    assert_int_equal(svc_file_path_open(&f->r, "inlink", O_RDONLY | O_NOFOLLOW, 0), -ELOOP);
    fd = svc_file_path_open(&f->r, "etclink", O_PATH | O_NOFOLLOW, 0);
    assert_true(fd >= 0); /* the link itself, inside the root */
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    close(fd);
    /* creation: inside works, through an escaping link never creates anything outside */
    fd = svc_file_path_open(&f->r, "dir/new.txt", O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(svc_file_path_open(&f->r, "dir/midout/new.txt", O_WRONLY | O_CREAT, 0600),
                     -EXDEV);
    assert_int_equal(svc_file_path_open(&f->r, "dangling_rel", O_WRONLY | O_CREAT, 0600), -EXDEV);
    char p[256];
    snprintf(p, sizeof(p), "%s/new.txt", f->outside);
    assert_int_equal(access(p, F_OK), -1);
    snprintf(p, sizeof(p), "%s/dir/new.txt", f->root);
    assert_int_equal(unlink(p), 0);
    /* parents */
    const char *name = NULL;
    fd = svc_file_path_parent(&f->r, "dir/sub/x", &name);
    assert_true(fd >= 0);
    assert_string_equal(name, "x");
    assert_int_equal(fstatat(fd, ".", &st, 0), 0);
    assert_true(S_ISDIR(st.st_mode));
    close(fd);
    fd = svc_file_path_parent(&f->r, "top", &name);
    assert_true(fd >= 0);
    assert_string_equal(name, "top");
    close(fd);
    assert_int_equal(svc_file_path_parent(&f->r, "", &name), -EINVAL);
    assert_int_equal(svc_file_path_parent(&f->r, "etclink/x", &name), -EXDEV);
    assert_int_equal(svc_file_path_parent(&f->r, "dir/midout/x", &name), -EXDEV);
    /* lstat: links are reported as links unless they lead out */
    assert_int_equal(svc_file_path_lstat(&f->r, "inlink", &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_int_equal(svc_file_path_lstat(&f->r, "dangling_in", &st), 0);
    assert_int_equal(svc_file_path_lstat(&f->r, "loop1", &st), 0);
    assert_int_equal(svc_file_path_lstat(&f->r, "etclink", &st), -EXDEV);
    assert_int_equal(svc_file_path_lstat(&f->r, "dangling_abs", &st), -EXDEV);
    assert_int_equal(svc_file_path_lstat(&f->r, "dangling_rel", &st), -EXDEV);
    assert_int_equal(svc_file_path_lstat(&f->r, "chain1", &st), -EXDEV);
    assert_int_equal(svc_file_path_lstat(&f->r, "dir/midout", &st), -EXDEV);
    assert_int_equal(svc_file_path_lstat(&f->r, "", &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(svc_file_path_lstat(&f->r, "nothing", &st), -ENOENT);
}

static void test_openat2(void **state)
{
    fx_t *f = *state;
    assert_int_equal(svc_file_path_probe(&f->r), 0);
    if (f->r.walk) skip(); /* a kernel without openat2: the walk test covers it */
    check_resolution(f);
}

static void test_walk(void **state)
{
    fx_t *f = *state;
    f->r.walk = true;
    check_resolution(f);
    /* deep trees are bounded: a link chain of 50 links is a loop for the walk as for the kernel */
    char name[32], target[32];
    for (int i = 0; i < 50; i++) {
        snprintf(name, sizeof(name), "l%d", i);
        snprintf(target, sizeof(target), i == 49 ? "inside.txt" : "l%d", i + 1);
        link_at(f->root, name, target);
    }
    assert_int_equal(open_ro(f, "l45"), 0);
    assert_int_equal(open_ro(f, "l0"), -ELOOP);
    f->r.walk = false;
    assert_int_equal(open_ro(f, "l0"), -ELOOP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_norm),
        cmocka_unit_test_setup_teardown(test_openat2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_walk, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
