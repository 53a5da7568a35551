/* file_search.c: the file service's directory walks (file_ops.h): file.list (one directory, or a
 * tree when recursive) and file.search (names by glob or POSIX ERE, contents by substring). Both
 * share one bounded walker: entries sorted by name, pre-order, symlinks listed but never followed,
 * at most SVC_FILE_MAX_DEPTH levels, SVC_FILE_SEARCH_MAX_VISIT entries, SVC_FILE_MAX_REPLY bytes
 * of answer; a content search reads at most SVC_FILE_SEARCH_MAX_BYTES in all. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "rpc/rpc.h"
#include "services/file_ops.h"

#define BINARY_SNIFF 8192 /* bytes looked at for a NUL to call a file binary */

typedef struct walker walker_t;
/* Called for each entry: 0 to go on, 1 to stop (truncated), -1 on an error (e set). */
typedef int (*visit_fn)(walker_t *w, int dirfd, const char *name, const char *rel,
                        const struct stat *st);

struct walker {
    const svc_file_req_t *q;
    svc_ferr_t *e;
    visit_fn visit;
    bool recursive;
    msgpack_sbuffer sb; /* the packed entries or matches */
    msgpack_packer pk;
    size_t count, limit;
    uint64_t visited, skipped, bytes_read;
    bool truncated;
    regex_t re;
    bool has_re;
    uint8_t *buf; /* content search: one file's bytes */
    char rel[SVC_FILE_MAX_PATH];
};

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Reads every name of d (without . and ..), sorted. Returns the count (names in *out, free each
 * and the array), or -1 with e set. Stops early (truncated) past the visit budget. */
static ssize_t read_names(walker_t *w, DIR *d, char ***out)
{
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    errno = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (w->visited + n >= SVC_FILE_SEARCH_MAX_VISIT) {
            w->truncated = true;
            break;
        }
        if (n == cap) {
            size_t nc = cap ? 2 * cap : 64;
            char **nn = realloc(names, nc * sizeof(*nn));
            if (!nn) goto nomem;
            names = nn;
            cap = nc;
        }
        if (!(names[n] = strdup(de->d_name))) goto nomem;
        n++;
    }
    if (n) qsort(names, n, sizeof(*names), cmp_names);
    *out = names;
    return (ssize_t)n;
nomem:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return svc_file_fail_errno(w->e, -ENOMEM, NULL, "listing");
}

/* Walks the directory fd (owned) whose path relative to the root is w->rel[0..rlen). */
static int walk_dir(walker_t *w, int fd, size_t rlen, int depth)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return svc_file_fail_errno(w->e, -errno, w->q->param, w->rel);
    }
    char **names = NULL;
    ssize_t n = read_names(w, d, &names);
    int rc = n < 0 ? -1 : 0;
    for (ssize_t i = 0; i < n && rc == 0; i++) {
        if (svc_file_should_stop(w->q, w->e)) {
            rc = -1;
            break;
        }
        size_t nl = strlen(names[i]);
        if (rlen + 1 + nl + 1 > sizeof(w->rel)) { /* too deep to name: not listed */
            w->skipped++;
            continue;
        }
        size_t l = rlen;
        if (l) w->rel[l++] = '/';
        memcpy(w->rel + l, names[i], nl + 1);
        struct stat st;
        w->visited++;
        if (fstatat(dirfd(d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            w->skipped++; /* vanished meanwhile */
            continue;
        }
        rc = w->visit(w, dirfd(d), names[i], w->rel, &st);
        if (rc == 0 && w->sb.size > SVC_FILE_MAX_REPLY) rc = 1;
        if (rc == 0 && w->recursive && S_ISDIR(st.st_mode)) {
            if (depth + 1 >= SVC_FILE_MAX_DEPTH) {
                w->truncated = true;
                continue;
            }
            int sub = openat(dirfd(d), names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0) {
                w->skipped++;
                continue;
            }
            rc = walk_dir(w, sub, l + nl, depth + 1);
        }
        w->rel[rlen] = 0;
    }
    if (rc == 1) w->truncated = true;
    for (ssize_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    closedir(d);
    return rc < 0 ? -1 : rc;
}

/* Runs the walk from q->path and packs {KEY: [...], truncated, extra...}. */
static int run(walker_t *w, const char *key, msgpack_packer *pk)
{
    const svc_file_req_t *q = w->q;
    int fd = svc_file_path_open(q->root, q->path, O_RDONLY | O_DIRECTORY, 0);
    if (fd == -ENOTDIR)
        return svc_file_fail(w->e, RPC_ERR_FAILED_PRECONDITION, q->param, "%s is not a directory",
                             q->path);
    if (fd < 0) return svc_file_fail_errno(w->e, fd, q->param, q->path[0] ? q->path : ".");
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
    size_t rlen = strlen(q->path);
    memcpy(w->rel, q->path, rlen + 1);
    int rc = walk_dir(w, fd, rlen, 0);
    if (rc >= 0) {
        msgpack_pack_map(pk, 4);
        svc_file_pack_str(pk, key);
        msgpack_pack_array(pk, w->count);
        if (w->sb.size) pk->callback(pk->data, w->sb.data, w->sb.size);
        svc_file_pack_str(pk, "truncated");
        w->truncated ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        svc_file_pack_str(pk, "visited");
        msgpack_pack_uint64(pk, w->visited);
        svc_file_pack_str(pk, "skipped");
        msgpack_pack_uint64(pk, w->skipped);
    }
    msgpack_sbuffer_destroy(&w->sb);
    return rc < 0 ? -1 : 0;
}

/* --- list --------------------------------------------------------------------------------------
 */

static int list_visit(walker_t *w, int dirfd, const char *name, const char *rel,
                      const struct stat *st)
{
    (void)dirfd;
    if (w->count >= w->limit) return 1;
    msgpack_packer *pk = &w->pk;
    msgpack_pack_map(pk, 6);
    svc_file_pack_str(pk, "path");
    svc_file_pack_str(pk, rel);
    svc_file_pack_str(pk, "name");
    svc_file_pack_str(pk, name);
    svc_file_pack_str(pk, "type");
    svc_file_pack_str(pk, svc_file_type(st->st_mode));
    svc_file_pack_str(pk, "size");
    msgpack_pack_uint64(pk, (uint64_t)st->st_size);
    svc_file_pack_str(pk, "mode");
    msgpack_pack_uint32(pk, st->st_mode & 07777);
    svc_file_pack_str(pk, "mtime");
    msgpack_pack_double(pk, (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec / 1e9);
    w->count++;
    return 0;
}

int svc_file_list(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e)
{
    walker_t *w = calloc(1, sizeof(*w));
    if (!w) return svc_file_fail_errno(e, -ENOMEM, NULL, "list");
    w->q = q;
    w->e = e;
    w->visit = list_visit;
    w->recursive = q->recursive;
    w->limit = (size_t)q->limit;
    int rc = run(w, "entries", pk);
    free(w);
    return rc;
}

/* --- search ------------------------------------------------------------------------------------
 */

int svc_file_search_check(const svc_file_req_t *q, svc_ferr_t *e)
{
    for (const char *p = q->regex; *p; p++) {
        if (*p != '\\') continue;
        if (p[1] >= '1' && p[1] <= '9')
            return svc_file_fail(e, RPC_ERR_INVALID_PARAMS, "regex",
                                 "back-references (\\%c) are not allowed", p[1]);
        if (p[1]) p++;
    }
    if (q->regex[0]) {
        regex_t re;
        int r = regcomp(&re, q->regex, REG_EXTENDED | REG_NOSUB);
        if (r != 0) {
            char why[128];
            regerror(r, &re, why, sizeof(why));
            return svc_file_fail(e, RPC_ERR_INVALID_PARAMS, "regex", "bad regex: %s", why);
        }
        regfree(&re);
    }
    return 0;
}

static int add_match(walker_t *w, const char *rel, const struct stat *st, int64_t line,
                     const char *text, size_t tlen, bool binary)
{
    if (w->count >= w->limit) return 1;
    msgpack_packer *pk = &w->pk;
    msgpack_pack_map(pk, 3 + (line > 0 ? 2 : 0) + (binary ? 1 : 0));
    svc_file_pack_str(pk, "path");
    svc_file_pack_str(pk, rel);
    svc_file_pack_str(pk, "type");
    svc_file_pack_str(pk, svc_file_type(st->st_mode));
    svc_file_pack_str(pk, "size");
    msgpack_pack_uint64(pk, (uint64_t)st->st_size);
    if (line > 0) {
        svc_file_pack_str(pk, "line");
        msgpack_pack_int64(pk, line);
        svc_file_pack_str(pk, "text");
        msgpack_pack_str(pk, tlen);
        msgpack_pack_str_body(pk, text, tlen);
    }
    if (binary) {
        svc_file_pack_str(pk, "binary");
        msgpack_pack_true(pk);
    }
    w->count++;
    return 0;
}

/* A line's text as valid UTF-8 of at most SVC_FILE_MAX_LINE bytes: bytes that do not form
 * valid UTF-8 (and control characters) become '?'. Returns the length written to out. */
static size_t clean_line(const uint8_t *s, size_t n, char *out)
{
    if (n > SVC_FILE_MAX_LINE) n = SVC_FILE_MAX_LINE;
    if (n && s[n - 1] == '\r') n--;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t len = s[i] < 0x80             ? 1
                     : (s[i] & 0xe0) == 0xc0 ? 2
                     : (s[i] & 0xf0) == 0xe0 ? 3
                     : (s[i] & 0xf8) == 0xf0 ? 4
                                             : 0;
        if (len && i + len <= n && rpc_utf8_valid((const char *)s + i, len) &&
            (len > 1 || s[i] >= 0x20 || s[i] == '\t') && s[i] != 0x7f) {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        } else {
            out[o++] = '?';
            i++;
        }
    }
    return o;
}

static int search_content(walker_t *w, int dirfd, const char *name, const char *rel,
                          const struct stat *st)
{
    const svc_file_req_t *q = w->q;
    if (!S_ISREG(st->st_mode)) return 0;
    if (st->st_size > SVC_FILE_SEARCH_MAX_FILE) {
        w->skipped++;
        return 0;
    }
    if (w->bytes_read + (uint64_t)st->st_size > SVC_FILE_SEARCH_MAX_BYTES) return 1;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        w->skipped++;
        return 0;
    }
    size_t n = 0;
    while (n < SVC_FILE_SEARCH_MAX_FILE) {
        ssize_t r = read(fd, w->buf + n, SVC_FILE_SEARCH_MAX_FILE - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    w->bytes_read += n;
    if (n < q->content_len) return 0;
    if (memchr(w->buf, 0, P2P_MIN(n, (size_t)BINARY_SNIFF))) {
        if (!memmem(w->buf, n, q->content, q->content_len)) return 0;
        return add_match(w, rel, st, 0, NULL, 0, true);
    }
    const uint8_t *p = w->buf, *end = w->buf + n;
    int64_t line = 1;
    char text[4 * SVC_FILE_MAX_LINE];
    while (p < end) {
        const uint8_t *hit = memmem(p, (size_t)(end - p), q->content, q->content_len);
        if (!hit) break;
        for (const uint8_t *c = memchr(p, '\n', (size_t)(hit - p)); c;
             c = memchr(c + 1, '\n', (size_t)(hit - c - 1)))
            line++;
        const uint8_t *ls = hit;
        while (ls > w->buf && ls[-1] != '\n')
            ls--;
        const uint8_t *le = memchr(hit, '\n', (size_t)(end - hit));
        if (!le) le = end;
        size_t tl = clean_line(ls, (size_t)(le - ls), text);
        int r = add_match(w, rel, st, line, text, tl, false);
        if (r) return r;
        if (w->sb.size > SVC_FILE_MAX_REPLY) return 1;
        if (le == end) break;
        p = le + 1; /* one match a line */
        line++;
    }
    return 0;
}

static int search_visit(walker_t *w, int dirfd, const char *name, const char *rel,
                        const struct stat *st)
{
    const svc_file_req_t *q = w->q;
    if (q->glob[0]) {
        bool by_path = strchr(q->glob, '/') != NULL;
        const char *subject = name;
        if (by_path) { /* the path relative to the searched directory */
            size_t bl = strlen(q->path);
            subject = bl ? rel + bl + 1 : rel;
        }
        if (fnmatch(q->glob, subject, by_path ? FNM_PATHNAME : 0) != 0) return 0;
    }
    if (w->has_re && regexec(&w->re, name, 0, NULL, 0) != 0) return 0;
    if (q->content_len) return search_content(w, dirfd, name, rel, st);
    return add_match(w, rel, st, 0, NULL, 0, false);
}

int svc_file_search(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e)
{
    if (svc_file_search_check(q, e) < 0) return -1;
    walker_t *w = calloc(1, sizeof(*w));
    if (!w) return svc_file_fail_errno(e, -ENOMEM, NULL, "search");
    int rc = -1;
    w->q = q;
    w->e = e;
    w->visit = search_visit;
    w->recursive = true;
    w->limit = (size_t)q->limit;
    if (q->regex[0]) {
        if (regcomp(&w->re, q->regex, REG_EXTENDED | REG_NOSUB) != 0) {
            svc_file_fail(e, RPC_ERR_INVALID_PARAMS, "regex", "bad regex");
            goto out;
        }
        w->has_re = true;
    }
    if (q->content_len && !(w->buf = malloc(SVC_FILE_SEARCH_MAX_FILE))) {
        svc_file_fail_errno(e, -ENOMEM, NULL, "search");
        goto out;
    }
    rc = run(w, "matches", pk);
out:
    if (w->has_re) regfree(&w->re);
    free(w->buf);
    free(w);
    return rc;
}
