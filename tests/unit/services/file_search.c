/* file_search.c: unit tests for src/services/file_search.c on a real tree: file.list (sorted,
 * plain and recursive, limit and truncated, symlinks listed but never followed out of the root,
 * a file is no directory) and file.search (glob on names and on paths, POSIX ERE on names,
 * back-references and bad patterns refused, content matches with line numbers and text, binary
 * files, max_results). */
#include <errno.h>
#include <fcntl.h>
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

#include "rpc/rpc.h"
#include "services/file_ops.h"

typedef struct fx {
    char base[64];
    char root[96];
    svc_froot_t r;
    svc_file_req_t q;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_unpacked u;
    svc_ferr_t e;
} fx_t;

static void put(fx_t *f, const char *rel, const char *content, size_t n)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", f->root, rel);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, n), (ssize_t)n);
    close(fd);
}

static void mk(fx_t *f, const char *rel)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", f->root, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof(*f));
    char p[256], out[160];
    snprintf(f->base, sizeof(f->base), "/tmp/p2p-fsearch-XXXXXX");
    assert_non_null(mkdtemp(f->base));
    snprintf(f->root, sizeof(f->root), "%s/root", f->base);
    assert_int_equal(mkdir(f->root, 0755), 0);
    snprintf(out, sizeof(out), "%s/outside", f->base);
    assert_int_equal(mkdir(out, 0755), 0);
    snprintf(p, sizeof(p), "%s/needle.txt", out);
    close(open(p, O_WRONLY | O_CREAT, 0644));
    mk(f, "s");
    mk(f, "s/deep");
    put(f, "s/a.txt", "alpha\nneedle one\r\nbeta\n", 23);
    put(f, "s/b.log", "nothing\n", 8);
    put(f, "s/deep/c.txt", "x\ny\nthe needle", 14);
    put(f, "s/deep/abba.log", "needle\n", 7);
    put(f, "s/bin.dat", "\0\1needle", 8);
    snprintf(p, sizeof(p), "%s/s/out", f->root);
    assert_int_equal(symlink(out, p), 0);
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
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->base);
    assert_int_equal(system(cmd), 0);
    msgpack_unpacked_destroy(&f->u);
    msgpack_sbuffer_destroy(&f->sb);
    free(f);
    return 0;
}

static svc_file_req_t *req(fx_t *f, const char *path, int64_t limit)
{
    memset(&f->q, 0, sizeof(f->q));
    f->q.root = &f->r;
    f->q.param = "path";
    f->q.limit = limit;
    assert_true(svc_file_path_norm(path, strlen(path), f->q.path, sizeof(f->q.path), NULL) >= 0);
    return &f->q;
}

static const msgpack_object *get(const msgpack_object *m, const char *key)
{
    for (uint32_t i = 0; i < m->via.map.size; i++) {
        const msgpack_object *k = &m->via.map.ptr[i].key;
        if (k->via.str.size == strlen(key) && !memcmp(k->via.str.ptr, key, k->via.str.size))
            return &m->via.map.ptr[i].val;
    }
    return NULL;
}

/* Runs op and writes "path[:line:text]" of each result, joined by ' ', into out. Returns the
 * result map or NULL when the op failed with want_code. */
static const msgpack_object *run(fx_t *f, svc_file_op_fn op, const char *key, char *out, size_t cap,
                                 int want_code)
{
    msgpack_sbuffer_clear(&f->sb);
    memset(&f->e, 0, sizeof(f->e));
    int r = op(&f->q, &f->pk, &f->e);
    if (want_code) {
        if (r == 0 || f->e.code != want_code)
            fail_msg("expected %d, got r=%d code %d %s", want_code, r, f->e.code, f->e.msg);
        return NULL;
    }
    if (r != 0) fail_msg("op failed: %d %s", f->e.code, f->e.msg);
    assert_int_equal(msgpack_unpack_next(&f->u, f->sb.data, f->sb.size, NULL),
                     MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *arr = get(&f->u.data, key);
    assert_non_null(arr);
    size_t o = 0;
    out[0] = 0;
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        const msgpack_object *e = &arr->via.array.ptr[i];
        const msgpack_object *p = get(e, "path"), *line = get(e, "line"), *text = get(e, "text");
        o += (size_t)snprintf(out + o, cap - o, "%s%.*s", i ? " " : "", (int)p->via.str.size,
                              p->via.str.ptr);
        if (line)
            o += (size_t)snprintf(out + o, cap - o, ":%d:%.*s", (int)line->via.i64,
                                  (int)text->via.str.size, text->via.str.ptr);
        if (get(e, "binary")) o += (size_t)snprintf(out + o, cap - o, ":binary");
    }
    return &f->u.data;
}

static void test_list(void **state)
{
    fx_t *f = *state;
    char out[1024];
    req(f, "s", 100);
    const msgpack_object *m = run(f, svc_file_list, "entries", out, sizeof(out), 0);
    assert_string_equal(out, "s/a.txt s/b.log s/bin.dat s/deep s/out");
    assert_false(get(m, "truncated")->via.boolean);
    req(f, ".", 100)->recursive = true;
    run(f, svc_file_list, "entries", out, sizeof(out), 0);
    assert_string_equal(out, "s s/a.txt s/b.log s/bin.dat s/deep s/deep/abba.log "
                             "s/deep/c.txt s/out"); /* s/out is listed, never entered */
    req(f, ".", 3)->recursive = true;
    m = run(f, svc_file_list, "entries", out, sizeof(out), 0);
    assert_string_equal(out, "s s/a.txt s/b.log");
    assert_true(get(m, "truncated")->via.boolean);
    req(f, "s/a.txt", 10);
    run(f, svc_file_list, "entries", out, sizeof(out), RPC_ERR_FAILED_PRECONDITION);
    req(f, "s/out", 10);
    run(f, svc_file_list, "entries", out, sizeof(out), RPC_ERR_PERMISSION_DENIED);
    req(f, "nothing", 10);
    run(f, svc_file_list, "entries", out, sizeof(out), RPC_ERR_NOT_FOUND);
}

static void test_search(void **state)
{
    fx_t *f = *state;
    char out[1024];
    svc_file_req_t *q = req(f, "s", 100);
    strcpy(q->glob, "*.txt");
    run(f, svc_file_search, "matches", out, sizeof(out), 0);
    assert_string_equal(out, "s/a.txt s/deep/c.txt");
    q = req(f, "s", 100);
    strcpy(q->glob, "deep/*.log");
    run(f, svc_file_search, "matches", out, sizeof(out), 0);
    assert_string_equal(out, "s/deep/abba.log");
    q = req(f, "s", 100);
    strcpy(q->regex, "^(a|b)[a-z]*\\.(txt|log)$");
    run(f, svc_file_search, "matches", out, sizeof(out), 0);
    assert_string_equal(out, "s/a.txt s/b.log s/deep/abba.log");
    q = req(f, "s", 100);
    strcpy(q->regex, "(a)\\1");
    run(f, svc_file_search, "matches", out, sizeof(out), RPC_ERR_INVALID_PARAMS);
    assert_string_equal(f->e.param, "regex");
    strcpy(q->regex, "a\\\\1"); /* an escaped backslash then 1: no back-reference */
    assert_int_equal(svc_file_search_check(q, &f->e), 0);
    strcpy(q->regex, "([a-z]");
    run(f, svc_file_search, "matches", out, sizeof(out), RPC_ERR_INVALID_PARAMS);
    /* content: one match a line with its number and text; binary files flagged */
    q = req(f, "s", 100);
    strcpy(q->content, "needle");
    q->content_len = 6;
    run(f, svc_file_search, "matches", out, sizeof(out), 0);
    assert_string_equal(out, "s/a.txt:2:needle one s/bin.dat:binary s/deep/abba.log:1:needle "
                             "s/deep/c.txt:3:the needle");
    q->limit = 2;
    const msgpack_object *m = run(f, svc_file_search, "matches", out, sizeof(out), 0);
    assert_string_equal(out, "s/a.txt:2:needle one s/bin.dat:binary");
    assert_true(get(m, "truncated")->via.boolean);
    /* never through the link to outside (which holds needle.txt) */
    q = req(f, ".", 100);
    strcpy(q->glob, "needle*");
    run(f, svc_file_search, "matches", out, sizeof(out), 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
