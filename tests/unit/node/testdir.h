/* testdir.h: a temporary directory per test, removed with its contents afterwards. */
#ifndef P2P_TEST_TESTDIR_H
#define P2P_TEST_TESTDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Creates /tmp/p2p-test-XXXXXX into buf (size >= 64). Returns buf or NULL. */
static inline char *testdir_make(char *buf)
{
    strcpy(buf, "/tmp/p2p-test-XXXXXX");
    return mkdtemp(buf);
}

static inline void testdir_remove(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
