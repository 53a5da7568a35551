/* file_path.c: the file service's path confinement (file_path.h): lexical normalization of a
 * caller's path, then resolution beneath a root's directory fd with openat2(RESOLVE_BENEATH) or,
 * without openat2, a walk that opens each component with O_NOFOLLOW and follows symlinks itself,
 * refusing any that climbs above the root. */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "services/file_path.h"

#define OPENAT2_RETRIES 8 /* EAGAIN from RESOLVE_BENEATH (a concurrent rename) before giving up */

int svc_file_path_norm(const char *in, size_t len, char *out, size_t cap, const char **why)
{
    const char *dummy;
    if (!why) why = &dummy;
    *why = "";
    if (len == 0) {
        *why = "is empty (use \".\" for the root)";
        return -EINVAL;
    }
    if (len >= SVC_FILE_MAX_PATH) {
        *why = "is too long";
        return -ENAMETOOLONG;
    }
    if (memchr(in, 0, len)) {
        *why = "holds a NUL byte";
        return -EINVAL;
    }
    if (in[0] == '/') {
        *why = "is absolute (paths are relative to the root)";
        return -EINVAL;
    }
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && in[j] != '/')
            j++;
        size_t n = j - i;
        if (n == 0 || (n == 1 && in[i] == '.')) {
            i = j + 1;
            continue;
        }
        if (n == 2 && in[i] == '.' && in[i + 1] == '.') {
            *why = "holds a \"..\" component";
            return -EINVAL;
        }
        if (n > SVC_FILE_MAX_NAME) {
            *why = "has a component longer than 255 bytes";
            return -ENAMETOOLONG;
        }
        if (o + (o ? 1 : 0) + n + 1 > cap) {
            *why = "is too long";
            return -ENAMETOOLONG;
        }
        if (o) out[o++] = '/';
        memcpy(out + o, in + i, n);
        o += n;
        i = j + 1;
    }
    if (cap) out[o] = 0;
    return (int)o;
}

static int openat2_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
    struct open_how how;
    memset(&how, 0, sizeof(how));
    how.flags = (uint64_t)(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
    for (int i = 0; i < OPENAT2_RETRIES; i++) {
        long fd = syscall(SYS_openat2, dirfd, path[0] ? path : ".", &how, sizeof(how));
        if (fd >= 0) return (int)fd;
        if (errno != EAGAIN && errno != EINTR) return -errno;
    }
    return -EAGAIN;
}

int svc_file_path_probe(svc_froot_t *r)
{
    int fd = openat2_beneath(r->fd, "", O_PATH | O_DIRECTORY, 0);
    if (fd >= 0) {
        close(fd);
        r->walk = false;
        return 0;
    }
    if (fd == -ENOSYS || fd == -EPERM) { /* no openat2, or a seccomp filter refusing it */
        r->walk = true;
        return 0;
    }
    return fd;
}

/* --- the O_NOFOLLOW walk ---------------------------------------------------------------------- */

typedef struct walk {
    const svc_froot_t *root;
    int fds[SVC_FILE_WALK_DEPTH]; /* open directories below the root, fds[depth-1] = current */
    int depth;
    int links;
    char rest[2 * SVC_FILE_MAX_PATH]; /* components still to resolve */
    size_t pos;                       /* start of the unresolved part of rest */
} walk_t;

static int cur(const walk_t *w)
{
    return w->depth ? w->fds[w->depth - 1] : w->root->fd;
}

static void walk_close(walk_t *w)
{
    while (w->depth)
        close(w->fds[--w->depth]);
}

/* Takes the next component of rest into comp (NUL-terminated). Returns its length, 0 at the end.
 * *last tells whether no component follows it. */
static size_t next_comp(walk_t *w, char *comp, bool *last)
{
    char *s = w->rest + w->pos;
    while (*s == '/')
        s++;
    size_t n = strcspn(s, "/");
    memcpy(comp, s, n);
    comp[n] = 0;
    s += n;
    w->pos = (size_t)(s - w->rest);
    while (*s == '/')
        s++;
    *last = *s == 0;
    return n;
}

/* Replaces the resolved part with the symlink's target: rest = target "/" unresolved. */
static int path_splice(walk_t *w, const char *target, size_t tlen)
{
    if (++w->links > SVC_FILE_MAX_SYMLINKS) return -ELOOP;
    if (tlen == 0) return -ENOENT;
    if (target[0] == '/') return -EXDEV; /* an absolute target always leaves the root */
    size_t rlen = strlen(w->rest + w->pos);
    if (tlen + 1 + rlen + 1 > sizeof(w->rest)) return -ENAMETOOLONG;
    memmove(w->rest + tlen + 1, w->rest + w->pos, rlen + 1);
    memcpy(w->rest, target, tlen);
    w->rest[tlen] = '/';
    w->pos = 0;
    return 0;
}

static int follow(walk_t *w, int dirfd, const char *name)
{
    char target[SVC_FILE_MAX_PATH];
    ssize_t n = readlinkat(dirfd, name, target, sizeof(target));
    if (n < 0) return -errno;
    if ((size_t)n >= sizeof(target)) return -ENAMETOOLONG;
    return path_splice(w, target, (size_t)n);
}

static int walk_open(const svc_froot_t *r, const char *path, int flags, mode_t mode)
{
    walk_t w;
    char comp[SVC_FILE_MAX_NAME + 1];
    size_t plen = strlen(path);
    int rc;
    w.root = r;
    w.depth = 0;
    w.links = 0;
    w.pos = 0;
    if (plen >= sizeof(w.rest)) return -ENAMETOOLONG;
    memcpy(w.rest, path, plen + 1);
    for (;;) {
        bool last;
        size_t n = next_comp(&w, comp, &last);
        if (n > SVC_FILE_MAX_NAME) {
            rc = -ENAMETOOLONG;
            goto out;
        }
        if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && !strcmp(comp, ".."))) {
            if (n == 2) { /* ".." from a symlink's target: pop, never above the root */
                if (w.depth == 0) {
                    rc = -EXDEV;
                    goto out;
                }
                close(w.fds[--w.depth]);
            }
            if (n != 0 && !last) continue;
            /* the path ends in the current directory itself */
            rc = openat(cur(&w), ".", (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CLOEXEC);
            if (rc < 0) rc = -errno;
            goto out;
        }
        if (!last) {
            int fd = openat(cur(&w), comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            struct stat st;
            if (fd < 0 || fstat(fd, &st) < 0) {
                rc = -errno;
                if (fd >= 0) close(fd);
                goto out;
            }
            if (S_ISLNK(st.st_mode)) {
                rc = follow(&w, fd, "");
                close(fd);
                if (rc < 0) goto out;
                continue;
            }
            if (!S_ISDIR(st.st_mode) || w.depth == SVC_FILE_WALK_DEPTH) {
                rc = S_ISDIR(st.st_mode) ? -ENAMETOOLONG : -ENOTDIR;
                close(fd);
                goto out;
            }
            w.fds[w.depth++] = fd;
            continue;
        }
        /* the last component */
        int fd = openat(cur(&w), comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0 && (flags & O_PATH) && !(flags & O_NOFOLLOW)) {
            struct stat st;
            if (fstat(fd, &st) == 0 && S_ISLNK(st.st_mode)) {
                rc = follow(&w, fd, "");
                close(fd);
                if (rc < 0) goto out;
                continue;
            }
        }
        if (fd >= 0) {
            rc = fd;
            goto out;
        }
        rc = -errno;
        if (!(flags & O_NOFOLLOW) && (rc == -ELOOP || rc == -ENOTDIR)) {
            struct stat st;
            if (fstatat(cur(&w), comp, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
                if ((rc = follow(&w, cur(&w), comp)) < 0) goto out;
                continue;
            }
        }
        goto out;
    }
out:
    walk_close(&w);
    return rc;
}

/* --- the public resolution ---------------------------------------------------------------------
 */

int svc_file_path_open(const svc_froot_t *r, const char *norm, int flags, mode_t mode)
{
    if (!r->walk) return openat2_beneath(r->fd, norm, flags, mode);
    return walk_open(r, norm, flags, mode);
}

int svc_file_path_parent(const svc_froot_t *r, const char *norm, const char **name)
{
    if (!norm[0]) return -EINVAL;
    const char *slash = strrchr(norm, '/');
    if (!slash) {
        *name = norm;
        return svc_file_path_open(r, "", O_RDONLY | O_DIRECTORY, 0);
    }
    char dir[SVC_FILE_MAX_PATH];
    size_t n = (size_t)(slash - norm);
    if (n >= sizeof(dir)) return -ENAMETOOLONG;
    memcpy(dir, norm, n);
    dir[n] = 0;
    *name = slash + 1;
    return svc_file_path_open(r, dir, O_RDONLY | O_DIRECTORY, 0);
}

int svc_file_path_lstat(const svc_froot_t *r, const char *norm, struct stat *st)
{
    if (!norm[0]) return fstat(r->fd, st) < 0 ? -errno : 0;
    const char *name;
    int dfd = svc_file_path_parent(r, norm, &name);
    if (dfd < 0) return dfd;
    int rc = fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
    close(dfd);
    if (rc < 0 || !S_ISLNK(st->st_mode)) return rc;
    /* a symlink: refused when following it leads out, even when its target does not exist */
    int fd = svc_file_path_open(r, norm, O_PATH, 0);
    if (fd >= 0) close(fd);
    return fd == -EXDEV ? -EXDEV : 0;
}
