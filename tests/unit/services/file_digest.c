/* file_digest.c: unit tests for src/services/file_digest.c on a real file: in-order writes keep a
 * digest equal to one computed from the bytes; out-of-order writes, a change made behind its back
 * and forget() each make it unknown. */
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

#include "base/hash.h"
#include "services/file_digest.h"

static char path[] = "/tmp/p2p-digest-XXXXXX";
static int fd = -1;
static const int root; /* any stable address names the root */

static void put(svc_file_digests_t *d, uint64_t off, const uint8_t *p, size_t n, bool tell)
{
    assert_int_equal(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    if (tell) svc_file_digests_wrote(d, &root, "a/f", off, p, n, &st);
}

static bool known(svc_file_digests_t *d, const void *want, size_t n)
{
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t got[P2P_HASH_LEN], exp[P2P_HASH_LEN];
    if (!svc_file_digests_get(d, &root, "a/f", &st, got)) return false;
    p2p_hash_t h;
    assert_int_equal(p2p_hash_init(&h, P2P_HASH_SHA256), 0);
    p2p_hash_update(&h, want, n);
    p2p_hash_final(&h, exp);
    assert_memory_equal(got, exp, sizeof(got));
    return true;
}

static void in_order_then_broken(void **state)
{
    (void)state;
    static uint8_t buf[3 * 65536];
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 7 + 1);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    svc_file_digests_t *d = svc_file_digests_new();
    assert_non_null(d);
    put(d, 0, buf, 65536, true);
    assert_true(known(d, buf, 65536));
    put(d, 65536, buf + 65536, 65536, true);
    put(d, 131072, buf + 131072, 65536, true);
    assert_true(known(d, buf, sizeof(buf)));
    /* a write nobody told it about (same size, new mtime/ctime): unknown */
    usleep(20000);
    put(d, 10, buf + 10, 5, false);
    assert_false(known(d, buf, sizeof(buf)));
    /* start again at 0 with the file truncated to the chunk */
    assert_int_equal(ftruncate(fd, 0), 0);
    put(d, 0, buf, 65536, true);
    assert_true(known(d, buf, 65536));
    /* out of order: forgotten, and later in-order writes do not revive it */
    put(d, 131072, buf + 131072, 65536, true);
    put(d, 65536, buf + 65536, 65536, true);
    assert_false(known(d, buf, sizeof(buf)));
    /* forget() of a parent directory drops it */
    assert_int_equal(ftruncate(fd, 0), 0);
    put(d, 0, buf, 100, true);
    assert_true(known(d, buf, 100));
    svc_file_digests_forget(d, &root, "a");
    assert_false(known(d, buf, 100));
    svc_file_digests_free(d);
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_order_then_broken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
