/* file_ops.c: unit tests for src/services/file_ops.c on a real temp directory: the atomic
 * whole-file write (replaces in one rename, keeps the old mode, no temporary file left, if_match
 * CONFLICT leaves the old bytes), a full filesystem (a 64 KiB tmpfs in a private mount namespace
 * when run as root: RESOURCE_EXHAUSTED, old file intact, nothing left behind), in-place writes at
 * an offset (offset <= size, truncate, append), reads and their etags, mkdir, remove (recursive,
 * never following links), move (overwrite or CONFLICT) and checksums against known vectors. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sodium.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "rpc/rpc.h"
#include "services/file_ops.h"

typedef struct fx {
    char base[64];
    char root[96];
    char outside[96];
    svc_froot_t r;
    svc_file_req_t q;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    svc_ferr_t e;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    snprintf(f->base, sizeof(f->base), "/tmp/p2p-fops-XXXXXX");
    assert_non_null(mkdtemp(f->base));
    snprintf(f->root, sizeof(f->root), "%s/root", f->base);
    snprintf(f->outside, sizeof(f->outside), "%s/outside", f->base);
    assert_int_equal(mkdir(f->root, 0755), 0);
    assert_int_equal(mkdir(f->outside, 0755), 0);
    f->r.fd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->r.fd >= 0);
    assert_int_equal(svc_file_path_probe(&f->r), 0);
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
    msgpack_unpacked_init(&f->u);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    char cmd[160];
    close(f->r.fd);
    umount2(f->root, MNT_DETACH); /* the tmpfs test mounts one; EINVAL otherwise */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->base);
    assert_int_equal(system(cmd), 0);
    msgpack_unpacked_destroy(&f->u);
    msgpack_sbuffer_destroy(&f->sb);
    free(f);
    return 0;
}

/* A fresh request for path with the defaults file.c gives. */
static svc_file_req_t *req(fx_t *f, const char *path)
{
    memset(&f->q, 0, sizeof(f->q));
    f->q.root = f->q.root2 = &f->r;
    f->q.param = "path";
    f->q.create = true;
    assert_true(svc_file_path_norm(path, strlen(path), f->q.path, sizeof(f->q.path), NULL) >= 0);
    return &f->q;
}

/* Runs op; on success returns the result map (valid until the next run). */
static const msgpack_object *run(fx_t *f, svc_file_op_fn op, int want_code)
{
    msgpack_sbuffer_clear(&f->sb);
    memset(&f->e, 0, sizeof(f->e));
    int r = op(&f->q, &f->pk, &f->e);
    if (want_code) {
        if (r == 0 || f->e.code != want_code)
            fail_msg("expected code %d, got r=%d code %d (%s)", want_code, r, f->e.code, f->e.msg);
        assert_int_equal(f->sb.size, 0); /* nothing packed on failure */
        return NULL;
    }
    if (r != 0) fail_msg("op failed: %d %s", f->e.code, f->e.msg);
    assert_int_equal(msgpack_unpack_next(&f->u, f->sb.data, f->sb.size, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(f->u.data.type, MSGPACK_OBJECT_MAP);
    return &f->u.data;
}

static const msgpack_object *get(const msgpack_object *m, const char *key)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->via.str.size == strlen(key) && !memcmp(k->via.str.ptr, key, k->via.str.size))
            return &m->via.map.ptr[i].val;
    }
    fail_msg("no key %s", key);
    return NULL;
}

static uint64_t get_u(const msgpack_object *m, const char *key)
{
    return get(m, key)->via.u64;
}

static void get_s(const msgpack_object *m, const char *key, char *out, size_t cap)
{
    const msgpack_object *o = get(m, key);
    size_t n = o->via.str.size < cap ? o->via.str.size : cap - 1;
    memcpy(out, o->via.str.ptr, n);
    out[n] = 0;
}

static size_t slurp(fx_t *f, const char *name, char *buf, size_t cap)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", f->root, name);
    int fd = open(p, O_RDONLY);
    if (fd < 0) return (size_t)-1;
    ssize_t n = read(fd, buf, cap);
    close(fd);
    return (size_t)n;
}

/* Entries of the root whose name starts with the temporary prefix. */
static int tmp_files(fx_t *f)
{
    DIR *d = opendir(f->root);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, ".p2p-tmp-", 9)) n++;
    closedir(d);
    return n;
}

static void test_atomic_write(void **state)
{
    fx_t *f = *state;
    char buf[64], etag[64];
    svc_file_req_t *q = req(f, "a.txt");
    q->data = (const uint8_t *)"first";
    q->data_len = 5;
    const msgpack_object *m = run(f, svc_file_write, 0);
    assert_int_equal(get_u(m, "written"), 5);
    assert_int_equal(get_u(m, "size"), 5);
    get_s(m, "etag", etag, sizeof(etag));
    assert_int_equal(strlen(etag), SVC_FILE_ETAG_LEN);
    assert_int_equal(slurp(f, "a.txt", buf, sizeof(buf)), 5);
    struct stat st;
    char p[256];
    snprintf(p, sizeof(p), "%s/a.txt", f->root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    ino_t ino = st.st_ino;
    assert_int_equal(chmod(p, 0600), 0);
    /* replacing: a new inode (rename), the old mode kept, no temporary file */
    q = req(f, "a.txt");
    q->data = (const uint8_t *)"second!";
    q->data_len = 7;
    run(f, svc_file_write, 0);
    assert_int_equal(stat(p, &st), 0);
    assert_true(st.st_ino != ino);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(slurp(f, "a.txt", buf, sizeof(buf)), 7);
    assert_memory_equal(buf, "second!", 7);
    assert_int_equal(tmp_files(f), 0);
    /* if_match: a stale etag is CONFLICT and the bytes stay */
    q = req(f, "a.txt");
    q->data = (const uint8_t *)"third";
    q->data_len = 5;
    q->has_if_match = true;
    strcpy(q->if_match, etag);
    run(f, svc_file_write, RPC_ERR_CONFLICT);
    assert_string_equal(f->e.param, "if_match");
    assert_int_equal(slurp(f, "a.txt", buf, sizeof(buf)), 7);
    assert_int_equal(tmp_files(f), 0);
    /* the current etag (from stat) passes */
    req(f, "a.txt");
    m = run(f, svc_file_stat, 0);
    get_s(m, "etag", etag, sizeof(etag));
    q = req(f, "a.txt");
    q->data = (const uint8_t *)"third";
    q->data_len = 5;
    q->has_if_match = true;
    strcpy(q->if_match, etag);
    run(f, svc_file_write, 0);
    /* create: false on an absent file; a directory; the root */
    q = req(f, "absent.txt");
    q->create = false;
    run(f, svc_file_write, RPC_ERR_NOT_FOUND);
    assert_int_equal(mkdir(strcat(strcpy(p, f->root), "/d"), 0755), 0);
    req(f, "d");
    run(f, svc_file_write, RPC_ERR_FAILED_PRECONDITION);
    req(f, ".");
    run(f, svc_file_write, RPC_ERR_FAILED_PRECONDITION);
    /* a symlink is not written through: inside FAILED_PRECONDITION, leading out PERMISSION_DENIED
     */
    snprintf(p, sizeof(p), "%s/l", f->root);
    assert_int_equal(symlink("a.txt", p), 0);
    req(f, "l");
    run(f, svc_file_write, RPC_ERR_FAILED_PRECONDITION);
    snprintf(p, sizeof(p), "%s/out", f->root);
    assert_int_equal(symlink("../outside/x", p), 0);
    q = req(f, "out");
    q->has_offset = true;
    run(f, svc_file_write, RPC_ERR_PERMISSION_DENIED);
    req(f, "out");
    run(f, svc_file_write, RPC_ERR_PERMISSION_DENIED);
    snprintf(p, sizeof(p), "%s/x", f->outside);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(tmp_files(f), 0);
}

static void test_full_filesystem(void **state)
{
    fx_t *f = *state;
    if (geteuid() != 0) {
        print_message("skipped: mounting a tmpfs needs root\n");
        skip();
    }
    if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
        mount("tmpfs", f->root, "tmpfs", 0, "size=64k") < 0) {
        print_message("skipped: cannot mount a tmpfs: %s\n", strerror(errno));
        skip();
    }
    close(f->r.fd);
    f->r.fd = open(f->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(f->r.fd >= 0);
    static uint8_t old[16 * 1024], big[128 * 1024];
    char buf[sizeof(old) + 1];
    randombytes_buf(old, sizeof(old));
    randombytes_buf(big, sizeof(big));
    svc_file_req_t *q = req(f, "keep.bin");
    q->data = old;
    q->data_len = sizeof(old);
    run(f, svc_file_write, 0);
    q = req(f, "keep.bin");
    q->data = big;
    q->data_len = sizeof(big);
    run(f, svc_file_write, RPC_ERR_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(f->e.msg, "no space left on device"));
    assert_int_equal(slurp(f, "keep.bin", buf, sizeof(buf)), sizeof(old));
    assert_memory_equal(buf, old, sizeof(old));
    assert_int_equal(tmp_files(f), 0);
    /* in place past the space: the same clear error */
    q = req(f, "keep.bin");
    q->data = big;
    q->data_len = sizeof(big);
    q->has_offset = true;
    q->offset = sizeof(old);
    run(f, svc_file_write, RPC_ERR_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(f->e.msg, "no space left on device"));
}

static void test_offset_writes(void **state)
{
    fx_t *f = *state;
    char buf[64];
    svc_file_req_t *q = req(f, "o.bin");
    q->has_offset = true;
    q->data = (const uint8_t *)"hello";
    q->data_len = 5;
    run(f, svc_file_write, 0); /* created at offset 0 */
    q = req(f, "o.bin");
    q->has_offset = true;
    q->offset = 6;
    q->data = (const uint8_t *)"x";
    q->data_len = 1;
    run(f, svc_file_write, RPC_ERR_INVALID_PARAMS);
    assert_string_equal(f->e.param, "offset");
    q->offset = 5;
    const msgpack_object *m = run(f, svc_file_write, 0);
    assert_int_equal(get_u(m, "size"), 6);
    q = req(f, "o.bin");
    q->has_offset = true;
    q->offset = 1;
    q->truncate = true;
    q->sync = true;
    q->data = (const uint8_t *)"EY";
    q->data_len = 2;
    m = run(f, svc_file_write, 0);
    assert_int_equal(get_u(m, "size"), 3);
    q = req(f, "o.bin");
    q->append = true;
    q->data = (const uint8_t *)"!";
    q->data_len = 1;
    run(f, svc_file_write, 0);
    assert_int_equal(slurp(f, "o.bin", buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "hEY!", 4);
    q = req(f, "new.bin");
    q->has_offset = true;
    q->offset = 3;
    run(f, svc_file_write, RPC_ERR_INVALID_PARAMS); /* absent: only offset 0 */
    assert_int_equal(slurp(f, "new.bin", buf, sizeof(buf)), (size_t)-1);
    /* read: ranges, eof, etag equal to stat's */
    q = req(f, "o.bin");
    q->offset = 1;
    q->has_length = true;
    q->length = 2;
    m = run(f, svc_file_read, 0);
    const msgpack_object *d = get(m, "data");
    assert_int_equal(d->type, MSGPACK_OBJECT_BIN);
    assert_int_equal(d->via.bin.size, 2);
    assert_memory_equal(d->via.bin.ptr, "EY", 2);
    assert_false(get(m, "eof")->via.boolean);
    char e1[64], e2[64];
    get_s(m, "etag", e1, sizeof(e1));
    req(f, "o.bin");
    m = run(f, svc_file_stat, 0);
    get_s(m, "etag", e2, sizeof(e2));
    assert_string_equal(e1, e2);
    get_s(m, "type", e2, sizeof(e2));
    assert_string_equal(e2, "file");
    req(f, ".");
    run(f, svc_file_read, RPC_ERR_FAILED_PRECONDITION);
}

static void test_dirs_and_moves(void **state)
{
    fx_t *f = *state;
    char p[256];
    svc_file_req_t *q = req(f, "a/b/c");
    run(f, svc_file_mkdir, RPC_ERR_NOT_FOUND);
    q->parents = true;
    q->has_mode = true;
    q->mode = 0700;
    const msgpack_object *m = run(f, svc_file_mkdir, 0);
    assert_true(get(m, "created")->via.boolean);
    struct stat st;
    snprintf(p, sizeof(p), "%s/a/b/c", f->root);
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    q->parents = false;
    run(f, svc_file_mkdir, RPC_ERR_CONFLICT);
    /* a link to outside inside the tree: recursive remove deletes the link, not the target */
    snprintf(p, sizeof(p), "%s/keep", f->outside);
    assert_int_equal(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/a/b/out", f->root);
    char target[160];
    snprintf(target, sizeof(target), "%s/keep", f->outside);
    assert_int_equal(symlink(target, p), 0);
    req(f, "a");
    run(f, svc_file_remove, RPC_ERR_FAILED_PRECONDITION);
    q = req(f, "a");
    q->recursive = true;
    m = run(f, svc_file_remove, 0);
    assert_int_equal(get_u(m, "removed"), 4);
    assert_int_equal(access(target, F_OK), 0);
    req(f, ".");
    run(f, svc_file_remove, RPC_ERR_PERMISSION_DENIED);
    /* move */
    snprintf(p, sizeof(p), "%s/m1", f->root);
    close(open(p, O_WRONLY | O_CREAT, 0644));
    snprintf(p, sizeof(p), "%s/m2", f->root);
    close(open(p, O_WRONLY | O_CREAT, 0644));
    q = req(f, "m1");
    strcpy(q->path2, "m2");
    q->param = "src";
    run(f, svc_file_move, RPC_ERR_CONFLICT);
    assert_string_equal(f->e.param, "dst");
    q->overwrite = true;
    run(f, svc_file_move, 0);
    snprintf(p, sizeof(p), "%s/m1", f->root);
    assert_int_equal(access(p, F_OK), -1);
    run(f, svc_file_move, RPC_ERR_NOT_FOUND);
}

static void test_checksum(void **state)
{
    fx_t *f = *state;
    char hex[80];
    svc_file_req_t *q = req(f, "abc");
    q->data = (const uint8_t *)"abcdef";
    q->data_len = 6;
    run(f, svc_file_write, 0);
    q = req(f, "abc");
    q->has_length = true;
    q->length = 3;
    q->algo = SVC_FILE_SHA256;
    const msgpack_object *m = run(f, svc_file_checksum, 0);
    get_s(m, "digest", hex, sizeof(hex));
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(get_u(m, "size"), 3);
    assert_int_equal(get_u(m, "file_size"), 6);
    q->algo = SVC_FILE_BLAKE2B;
    m = run(f, svc_file_checksum, 0);
    get_s(m, "digest", hex, sizeof(hex));
    assert_string_equal(hex, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    /* a stop request ends the work with UNAVAILABLE */
    atomic_bool stop;
    atomic_init(&stop, true);
    q->stop = &stop;
    run(f, svc_file_checksum, RPC_ERR_UNAVAILABLE);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_atomic_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirs_and_moves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_filesystem, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
