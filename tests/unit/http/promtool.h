/* promtool.h: runs `promtool check metrics` (Debian package prometheus) for the metrics tests.
 * Included by the test files that take --promtool (see meson.build); they exit 77 (meson's skip)
 * when promtool_found() is false. */
#ifndef P2P_TEST_PROMTOOL_H
#define P2P_TEST_PROMTOOL_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline bool promtool_found(void)
{
    const char *path = getenv("PATH");
    char dir[4096];
    while (path && *path) {
        size_t n = strcspn(path, ":");
        snprintf(dir, sizeof(dir), "%.*s/promtool", (int)n, path);
        if (access(dir, X_OK) == 0) return true;
        path += n + (path[n] == ':');
    }
    return false;
}

/* Runs `promtool check metrics` on text; returns its exit status and its output in out. */
static inline int promtool(const char *text, size_t len, char *out, size_t cap)
{
    char in_path[] = "/tmp/p2p-promtool-in-XXXXXX";
    char out_path[] = "/tmp/p2p-promtool-out-XXXXXX";
    int fd = mkstemp(in_path), ofd = mkstemp(out_path);
    assert_true(fd >= 0 && ofd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    close(ofd);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s 2>&1", in_path, out_path);
    int st = system(cmd);
    FILE *f = fopen(out_path, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = '\0';
    if (f) fclose(f);
    unlink(in_path);
    unlink(out_path);
    return st;
}

/* True when every line of promtool's output is its camelCase warning about a node_memory_* name
 * (node_exporter's own names, kept for its dashboards): the only finding the node accepts. */
static inline bool promtool_only_node_memory(const char *out)
{
    static const char warn[] = " metric names should be written in 'snake_case' not 'camelCase'";
    for (const char *l = out; *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        const char *sp = memchr(l, ' ', n);
        if (strncmp(l, "node_memory_", 12) != 0 || !sp || (size_t)(l + n - sp) != strlen(warn) ||
            memcmp(sp, warn, strlen(warn)) != 0)
            return false;
        l += n + (nl != NULL);
    }
    return true;
}

#endif
