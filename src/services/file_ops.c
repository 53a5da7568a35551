/* file_ops.c: the file service's blocking operations on one path (file_ops.h): stat, read, write
 * (atomic whole-file replacement or in-place at an offset), mkdir, remove, move and checksum, plus
 * the error mapping and etags they share. file.c runs them on the thread pool; every path goes
 * through file_path.c, and every entry the caller names is opened or changed relative to its
 * confined parent directory with O_NOFOLLOW, so nothing here follows a symlink out of a root. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "base/hash.h"
#include "rpc/rpc.h"
#include "services/file_ops.h"

#define TMP_PREFIX ".p2p-tmp-" /* temporary files of whole-file writes: TMP_PREFIX + 16 hex */
#define SHOWN(p)   ((p)[0] ? (p) : ".")

int svc_file_fail(svc_ferr_t *e, int code, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->code = code;
    e->param = param;
    return -1;
}

int svc_file_fail_errno(svc_ferr_t *e, int neg_errno, const char *param, const char *what)
{
    int x = -neg_errno;
    switch (x) {
    case EXDEV:
        return svc_file_fail(e, RPC_ERR_PERMISSION_DENIED, param, "%s leads out of the file root",
                             what);
    case ENOENT:
        return svc_file_fail(e, RPC_ERR_NOT_FOUND, param, "%s does not exist", what);
    case ENOTDIR:
        return svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, param,
                             "%s: a component of the path is not a directory", what);
    case EISDIR:
        return svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, param, "%s is a directory", what);
    case ELOOP:
        return svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, param,
                             "%s: a symbolic link where none is allowed, or a loop of them", what);
    case EEXIST:
        return svc_file_fail(e, RPC_ERR_CONFLICT, param, "%s already exists", what);
    case ENOTEMPTY:
        return svc_file_fail(e, RPC_ERR_CONFLICT, param, "%s is a directory that is not empty",
                             what);
    case ENOSPC:
    case EDQUOT:
        return svc_file_fail(e, RPC_ERR_RESOURCE_EXHAUSTED, param,
                             "no space left on device (%s; %s)", what,
                             x == EDQUOT ? "quota exceeded" : "the filesystem is full");
    case EFBIG:
        return svc_file_fail(e, RPC_ERR_RESOURCE_EXHAUSTED, param, "%s: file too large", what);
    case EMFILE:
    case ENFILE:
    case ENOMEM:
        return svc_file_fail(e, RPC_ERR_RESOURCE_EXHAUSTED, param, "%s: %s", what, strerror(x));
    case EACCES:
    case EPERM:
    case EROFS:
    case ETXTBSY:
        return svc_file_fail(e, RPC_ERR_PERMISSION_DENIED, param, "%s: %s", what, strerror(x));
    case ENAMETOOLONG:
    case EINVAL:
        return svc_file_fail(e, RPC_ERR_INVALID_PARAMS, param, "%s: %s", what, strerror(x));
    case EBUSY:
        return svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, param, "%s: %s", what, strerror(x));
    case ECANCELED:
        return svc_file_fail(e, RPC_ERR_UNAVAILABLE, NULL, "the file service is stopping");
    case ETIMEDOUT:
        return svc_file_fail(e, RPC_ERR_TIMEOUT, NULL, "%s: the deadline passed", what);
    default:
        return svc_file_fail(e, RPC_ERR_INTERNAL, param, "%s: %s", what, strerror(x));
    }
}

void svc_file_etag(const struct stat *st, char *out)
{
    uint64_t v[7] = {(uint64_t)st->st_dev,          (uint64_t)st->st_ino,
                     (uint64_t)st->st_size,         (uint64_t)st->st_mtim.tv_sec,
                     (uint64_t)st->st_mtim.tv_nsec, (uint64_t)st->st_ctim.tv_sec,
                     (uint64_t)st->st_ctim.tv_nsec};
    uint8_t h[SVC_FILE_ETAG_LEN / 2];
    crypto_generichash(h, sizeof(h), (const uint8_t *)v, sizeof(v), NULL, 0);
    p2p_hex_encode(out, h, sizeof(h));
}

const char *svc_file_type(mode_t mode)
{
    if (S_ISREG(mode)) return "file";
    if (S_ISDIR(mode)) return "dir";
    if (S_ISLNK(mode)) return "symlink";
    return "other";
}

bool svc_file_should_stop(const svc_file_req_t *q, svc_ferr_t *e)
{
    if (q->stop && atomic_load(q->stop)) {
        svc_file_fail_errno(e, -ECANCELED, NULL, "");
        return true;
    }
    if (q->deadline_ms && p2p_mono_ms() > q->deadline_ms) {
        svc_file_fail(e, RPC_ERR_TIMEOUT, NULL,
                      "the call's deadline passed (give a larger "
                      "_timeout)");
        return true;
    }
    return false;
}

void svc_file_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

static void pack_kv_str(msgpack_packer *pk, const char *k, const char *v)
{
    svc_file_pack_str(pk, k);
    svc_file_pack_str(pk, v);
}

static void pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    svc_file_pack_str(pk, k);
    msgpack_pack_uint64(pk, v);
}

static void pack_kv_bool(msgpack_packer *pk, const char *k, bool v)
{
    svc_file_pack_str(pk, k);
    v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
}

static void pack_kv_mtime(msgpack_packer *pk, const struct stat *st)
{
    svc_file_pack_str(pk, "mtime");
    msgpack_pack_double(pk, (double)st->st_mtim.tv_sec + (double)st->st_mtim.tv_nsec / 1e9);
}

/* --- stat, read --------------------------------------------------------------------------------
 */

int svc_file_stat(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e)
{
    struct stat st;
    char etag[SVC_FILE_ETAG_LEN + 1], target[SVC_FILE_MAX_PATH];
    ssize_t tlen = -1;
    int r = svc_file_path_lstat(q->root, q->path, &st);
    if (r < 0) return svc_file_fail_errno(e, r, q->param, SHOWN(q->path));
    if (S_ISLNK(st.st_mode)) {
        const char *name;
        int dfd = svc_file_path_parent(q->root, q->path, &name);
        if (dfd >= 0) {
            tlen = readlinkat(dfd, name, target, sizeof(target) - 1);
            close(dfd);
        }
    }
    svc_file_etag(&st, etag);
    msgpack_pack_map(pk, tlen >= 0 ? 9 : 8);
    pack_kv_str(pk, "path", SHOWN(q->path));
    pack_kv_str(pk, "type", svc_file_type(st.st_mode));
    pack_kv_u64(pk, "size", (uint64_t)st.st_size);
    pack_kv_u64(pk, "mode", st.st_mode & 07777);
    pack_kv_mtime(pk, &st);
    pack_kv_str(pk, "etag", etag);
    pack_kv_u64(pk, "uid", st.st_uid);
    pack_kv_u64(pk, "gid", st.st_gid);
    if (tlen >= 0) {
        svc_file_pack_str(pk, "target");
        msgpack_pack_str(pk, (size_t)tlen);
        msgpack_pack_str_body(pk, target, (size_t)tlen);
    }
    return 0;
}

/* Opens path (following symlinks beneath the root) for reading; only regular files. */
static int open_regular(const svc_file_req_t *q, struct stat *st, svc_ferr_t *e)
{
    int fd = svc_file_path_open(q->root, q->path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
    if (fd < 0) return svc_file_fail_errno(e, fd, q->param, SHOWN(q->path));
    if (fstat(fd, st) < 0) {
        int r = -errno;
        close(fd);
        return svc_file_fail_errno(e, r, q->param, SHOWN(q->path));
    }
    if (!S_ISREG(st->st_mode)) {
        close(fd);
        return svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, q->param, "%s is %s", SHOWN(q->path),
                             S_ISDIR(st->st_mode) ? "a directory" : "not a regular file");
    }
    return fd;
}

int svc_file_read(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e)
{
    struct stat st;
    char etag[SVC_FILE_ETAG_LEN + 1];
    int fd = open_regular(q, &st, e);
    if (fd < 0) return -1;
    uint64_t off = (uint64_t)q->offset, size = (uint64_t)st.st_size;
    size_t want = q->has_length ? (size_t)q->length : SVC_FILE_MAX_READ, n = 0;
    if (off >= size)
        want = 0;
    else if (want > size - off)
        want = (size_t)(size - off);
    uint8_t *buf = want ? malloc(want) : NULL;
    if (want && !buf) {
        close(fd);
        return svc_file_fail_errno(e, -ENOMEM, NULL, SHOWN(q->path));
    }
    while (n < want) {
        ssize_t r = pread(fd, buf + n, want - n, (off_t)(off + n));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int err = -errno;
            free(buf);
            close(fd);
            return svc_file_fail_errno(e, err, q->param, SHOWN(q->path));
        }
        if (r == 0) break; /* the file shrank meanwhile: a short read, eof below */
        n += (size_t)r;
    }
    close(fd);
    svc_file_etag(&st, etag);
    msgpack_pack_map(pk, 5);
    svc_file_pack_str(pk, "data");
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, buf, n);
    pack_kv_u64(pk, "offset", off);
    pack_kv_u64(pk, "size", size);
    pack_kv_bool(pk, "eof", off + n >= size);
    pack_kv_str(pk, "etag", etag);
    free(buf);
    return 0;
}

/* --- write -------------------------------------------------------------------------------------
 */

static int write_all(int fd, const uint8_t *p, size_t n, int64_t off)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = off < 0 ? write(fd, p + done, n - done)
                            : pwrite(fd, p + done, n - done, (off_t)((uint64_t)off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return -errno;
        if (r == 0) return -EIO;
        done += (size_t)r;
    }
    return 0;
}

static int check_etag(const svc_file_req_t *q, const struct stat *st, svc_ferr_t *e)
{
    char etag[SVC_FILE_ETAG_LEN + 1];
    if (!q->has_if_match) return 0;
    if (!st)
        return svc_file_fail(e, RPC_ERR_CONFLICT, "if_match", "%s does not exist (if_match given)",
                             SHOWN(q->path));
    svc_file_etag(st, etag);
    if (strcmp(etag, q->if_match) != 0)
        return svc_file_fail(e, RPC_ERR_CONFLICT, "if_match",
                             "%s changed since it was read (its etag is now %s)", SHOWN(q->path),
                             etag);
    return 0;
}

static void pack_write_result(msgpack_packer *pk, size_t written, const struct stat *st)
{
    char etag[SVC_FILE_ETAG_LEN + 1];
    svc_file_etag(st, etag);
    msgpack_pack_map(pk, 3);
    pack_kv_u64(pk, "written", written);
    pack_kv_u64(pk, "size", (uint64_t)st->st_size);
    pack_kv_str(pk, "etag", etag);
}

/* True when the symlink norm names leads out of the root (dangling or not). */
static bool link_escapes(const svc_froot_t *r, const char *norm)
{
    int fd = svc_file_path_open(r, norm, O_PATH, 0);
    if (fd >= 0) close(fd);
    return fd == -EXDEV;
}

/* Checks what the last component is before writing it: absent (*exists false) or a regular file. */
static int check_target(const svc_file_req_t *q, int dfd, const char *name, struct stat *st,
                        bool *exists, svc_ferr_t *e)
{
    *exists = fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) == 0;
    if (!*exists && errno != ENOENT) return svc_file_fail_errno(e, -errno, q->param, q->path);
    if (*exists && S_ISLNK(st->st_mode) && link_escapes(q->root, q->path))
        return svc_file_fail_errno(e, -EXDEV, q->param, q->path);
    if (*exists && !S_ISREG(st->st_mode))
        return svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, q->param, "%s is %s", q->path,
                             S_ISDIR(st->st_mode)   ? "a directory"
                             : S_ISLNK(st->st_mode) ? "a symbolic link (write its target instead)"
                                                    : "not a regular file");
    if (!*exists && !q->create)
        return svc_file_fail(e, RPC_ERR_NOT_FOUND, q->param, "%s does not exist (create is false)",
                             q->path);
    return check_etag(q, *exists ? st : NULL, e);
}

/* Whole-file write: a temporary file in the same directory, written, fsynced, renamed over the
 * path, then the directory fsynced. On any failure the temporary file is removed and the old file
 * is untouched. */
static int write_whole(const svc_file_req_t *q, int dfd, const char *name, msgpack_packer *pk,
                       svc_ferr_t *e)
{
    struct stat old, st;
    bool exists;
    char tmp[sizeof(TMP_PREFIX) + 16];
    uint8_t rnd[8];
    int tfd = -1, r;
    if (check_target(q, dfd, name, &old, &exists, e) < 0) return -1;
    randombytes_buf(rnd, sizeof(rnd));
    memcpy(tmp, TMP_PREFIX, sizeof(TMP_PREFIX) - 1);
    p2p_hex_encode(tmp + sizeof(TMP_PREFIX) - 1, rnd, sizeof(rnd));
    tfd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (tfd < 0) return svc_file_fail_errno(e, -errno, q->param, q->path);
    mode_t mode = q->has_mode ? (mode_t)q->mode : exists ? old.st_mode & 07777 : 0644;
    if ((r = write_all(tfd, q->data, q->data_len, -1)) < 0) goto fail;
    if (exists && (old.st_uid != geteuid() || old.st_gid != getegid()) &&
        fchown(tfd, old.st_uid, old.st_gid) < 0) {
        /* keep going: the caller may not own the old file's owner; the new one is ours */
    }
    if (fchmod(tfd, mode) < 0 || fsync(tfd) < 0) goto fail_errno;
    if (q->has_if_match) { /* again, as late as possible: a writer may have come in between */
        bool again = fstatat(dfd, name, &old, AT_SYMLINK_NOFOLLOW) == 0;
        if (check_etag(q, again ? &old : NULL, e) < 0) goto fail_set;
    }
    if (renameat(dfd, tmp, dfd, name) < 0) goto fail_errno;
    tmp[0] = 0; /* renamed: nothing to clean */
    if (fsync(dfd) < 0 && errno != EINVAL) goto fail_errno;
    if (fstat(tfd, &st) < 0) goto fail_errno;
    close(tfd);
    svc_file_digests_wrote(q->digests, q->root, q->path, 0, q->data, q->data_len, &st);
    pack_write_result(pk, q->data_len, &st);
    return 0;
fail_errno:
    r = -errno;
fail:
    svc_file_fail_errno(e, r, q->param, q->path);
fail_set:
    if (tmp[0]) unlinkat(dfd, tmp, 0);
    close(tfd);
    return -1;
}

/* In-place write at an offset (or appended): pwrite, then truncate and fsync when asked. */
static int write_at(const svc_file_req_t *q, int dfd, const char *name, msgpack_packer *pk,
                    svc_ferr_t *e)
{
    struct stat st;
    bool exists;
    int r;
    if (check_target(q, dfd, name, &st, &exists, e) < 0) return -1;
    if (!q->append && (uint64_t)q->offset > (uint64_t)(exists ? st.st_size : 0))
        return svc_file_fail(e, RPC_ERR_INVALID_PARAMS, "offset",
                             "offset %lld is past the end of %s (size %lld)", (long long)q->offset,
                             q->path, (long long)(exists ? st.st_size : 0));
    int flags = O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;
    if (q->append) flags |= O_APPEND;
    int fd = openat(dfd, name, exists ? flags : flags | O_CREAT | O_EXCL, 0600);
    if (fd < 0) return svc_file_fail_errno(e, -errno, q->param, q->path);
    if (fstat(fd, &st) < 0) goto fail_errno;
    if (!S_ISREG(st.st_mode)) { /* swapped since check_target */
        close(fd);
        return svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, q->param, "%s is not a regular file",
                             q->path);
    }
    if (!exists && fchmod(fd, q->has_mode ? (mode_t)q->mode : 0644) < 0) goto fail_errno;
    if ((r = write_all(fd, q->data, q->data_len, q->append ? -1 : q->offset)) < 0) goto fail;
    if (q->truncate && !q->append && ftruncate(fd, (off_t)((uint64_t)q->offset + q->data_len)) < 0)
        goto fail_errno;
    if (q->sync && (fsync(fd) < 0 || (!exists && fsync(dfd) < 0 && errno != EINVAL)))
        goto fail_errno;
    if (fstat(fd, &st) < 0) goto fail_errno;
    close(fd);
    if (q->append)
        svc_file_digests_forget(q->digests, q->root, q->path);
    else
        svc_file_digests_wrote(q->digests, q->root, q->path, (uint64_t)q->offset, q->data,
                               q->data_len, &st);
    pack_write_result(pk, q->data_len, &st);
    return 0;
fail_errno:
    r = -errno;
fail:
    close(fd);
    return svc_file_fail_errno(e, r, q->param, q->path);
}

int svc_file_write(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e)
{
    if (q->append && q->has_offset)
        return svc_file_fail(e, RPC_ERR_INVALID_PARAMS, "append",
                             "give offset or append, not both");
    if (q->truncate && !q->has_offset)
        return svc_file_fail(e, RPC_ERR_INVALID_PARAMS, "truncate",
                             "truncate goes with offset (a whole-file write replaces the file)");
    const char *name;
    int dfd = svc_file_path_parent(q->root, q->path, &name);
    if (dfd == -EINVAL)
        return svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, q->param, "the root is a directory");
    if (dfd < 0) return svc_file_fail_errno(e, dfd, q->param, q->path);
    int r = q->has_offset || q->append ? write_at(q, dfd, name, pk, e)
                                       : write_whole(q, dfd, name, pk, e);
    close(dfd);
    return r;
}

/* --- mkdir, remove, move -----------------------------------------------------------------------
 */

/* mkdir of one entry beneath its confined parent, with the exact mode (no umask). 1 created, 0
 * already a directory (when ok_exists), or -1 with e set. */
static int mkdir_one(const svc_file_req_t *q, const char *norm, bool ok_exists, svc_ferr_t *e)
{
    const char *name;
    int dfd = svc_file_path_parent(q->root, norm, &name);
    if (dfd < 0) return svc_file_fail_errno(e, dfd, q->param, norm);
    mode_t mode = q->has_mode ? (mode_t)q->mode : 0755;
    int rc = 1;
    if (mkdirat(dfd, name, mode) < 0) {
        int err = -errno;
        close(dfd);
        struct stat st;
        if (err == -EEXIST && svc_file_path_lstat(q->root, norm, &st) == -EXDEV) err = -EXDEV;
        if (err != -EEXIST || !ok_exists) return svc_file_fail_errno(e, err, q->param, norm);
        int fd = svc_file_path_open(q->root, norm, O_PATH | O_DIRECTORY, 0);
        if (fd >= 0) {
            close(fd);
            return 0;
        }
        if (fd == -ENOTDIR)
            return svc_file_fail(e, RPC_ERR_CONFLICT, q->param, "%s exists and is not a directory",
                                 norm);
        return svc_file_fail_errno(e, fd, q->param, norm);
    }
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fchmod(fd, mode) < 0) rc = svc_file_fail_errno(e, -errno, q->param, norm);
    if (fd >= 0) close(fd);
    close(dfd);
    return rc;
}

int svc_file_mkdir(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e)
{
    int r = 0;
    if (!q->path[0]) {
        if (!q->parents)
            return svc_file_fail(e, RPC_ERR_CONFLICT, q->param, "the root already exists");
    } else if (!q->parents) {
        r = mkdir_one(q, q->path, false, e);
    } else {
        char prefix[SVC_FILE_MAX_PATH];
        size_t len = strlen(q->path);
        for (size_t i = 0; i <= len && r >= 0; i++) {
            if (q->path[i] != '/' && q->path[i] != 0) continue;
            memcpy(prefix, q->path, i);
            prefix[i] = 0;
            r = mkdir_one(q, prefix, true, e);
        }
    }
    if (r < 0) return -1;
    msgpack_pack_map(pk, 2);
    pack_kv_str(pk, "path", SHOWN(q->path));
    pack_kv_bool(pk, "created", r == 1);
    return 0;
}

/* Empties the directory name of dfd (never following a symlink), then removes it. */
static int rm_tree(const svc_file_req_t *q, int dfd, const char *name, int depth, uint64_t *count,
                   svc_ferr_t *e)
{
    if (depth >= SVC_FILE_MAX_DEPTH)
        return svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, q->param,
                             "%s holds directories deeper than %d levels", q->path,
                             SVC_FILE_MAX_DEPTH);
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return svc_file_fail_errno(e, -errno, q->param, q->path);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return svc_file_fail_errno(e, -errno, q->param, q->path);
    }
    bool removed = true;
    int rc = 0;
    while (removed && rc == 0) { /* passes until one removes nothing (readdir and unlink mix) */
        removed = false;
        rewinddir(d);
        struct dirent *de;
        while (rc == 0 && (de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            if (svc_file_should_stop(q, e)) {
                rc = -1;
                break;
            }
            struct stat st;
            bool dir = de->d_type == DT_DIR;
            if (de->d_type == DT_UNKNOWN &&
                fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
                dir = S_ISDIR(st.st_mode);
            if (dir)
                rc = rm_tree(q, dirfd(d), de->d_name, depth + 1, count, e);
            else if (unlinkat(dirfd(d), de->d_name, 0) < 0 && errno != ENOENT)
                rc = svc_file_fail_errno(e, -errno, q->param, q->path);
            else
                (*count)++;
            removed = true;
        }
    }
    closedir(d);
    if (rc < 0) return -1;
    if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return svc_file_fail_errno(e, -errno, q->param, q->path);
    (*count)++;
    return 0;
}

int svc_file_remove(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e)
{
    if (!q->path[0])
        return svc_file_fail(e, RPC_ERR_PERMISSION_DENIED, q->param,
                             "the root itself cannot be removed");
    const char *name;
    struct stat st;
    uint64_t count = 0;
    int rc = 0;
    int dfd = svc_file_path_parent(q->root, q->path, &name);
    if (dfd < 0) return svc_file_fail_errno(e, dfd, q->param, q->path);
    if ((rc = svc_file_path_lstat(q->root, q->path, &st)) < 0) {
        rc = svc_file_fail_errno(e, rc, q->param, q->path);
    } else if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dfd, name, 0) < 0)
            rc = svc_file_fail_errno(e, -errno, q->param, q->path);
        else
            count = 1;
    } else if (!q->recursive) {
        if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
            count = 1;
        else if (errno == ENOTEMPTY || errno == EEXIST)
            rc = svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, q->param,
                               "%s is a directory that is not empty (give recursive: true)",
                               q->path);
        else
            rc = svc_file_fail_errno(e, -errno, q->param, q->path);
    } else {
        rc = rm_tree(q, dfd, name, 0, &count, e);
    }
    if (rc == 0 && fsync(dfd) < 0 && errno != EINVAL) { /* best effort: the entry is gone */
    }
    close(dfd);
    if (rc < 0) return -1;
    msgpack_pack_map(pk, 2);
    pack_kv_str(pk, "path", q->path);
    pack_kv_u64(pk, "removed", count);
    return 0;
}

int svc_file_move(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e)
{
    if (!q->path[0])
        return svc_file_fail(e, RPC_ERR_PERMISSION_DENIED, "src",
                             "the root itself cannot be moved");
    if (!q->path2[0])
        return svc_file_fail(e, RPC_ERR_CONFLICT, "dst", "the destination is the root itself");
    const char *sname, *dname;
    struct stat st;
    int rc = -1, ddfd = -1;
    int sdfd = svc_file_path_parent(q->root, q->path, &sname);
    if (sdfd < 0) return svc_file_fail_errno(e, sdfd, "src", q->path);
    ddfd = svc_file_path_parent(q->root2, q->path2, &dname);
    if (ddfd < 0) {
        svc_file_fail_errno(e, ddfd, "dst", q->path2);
        goto out;
    }
    int r = svc_file_path_lstat(q->root, q->path, &st);
    if (r < 0) {
        svc_file_fail_errno(e, r, "src", q->path);
        goto out;
    }
    r = svc_file_path_lstat(q->root2, q->path2, &st);
    if (r == -EXDEV) {
        svc_file_fail_errno(e, r, "dst", q->path2);
        goto out;
    }
    r = q->overwrite ? renameat(sdfd, sname, ddfd, dname)
                     : renameat2(sdfd, sname, ddfd, dname, RENAME_NOREPLACE);
    if (r < 0 && !q->overwrite && errno == EINVAL) { /* a filesystem without RENAME_NOREPLACE */
        if (fstatat(ddfd, dname, &st, AT_SYMLINK_NOFOLLOW) == 0)
            errno = EEXIST;
        else
            r = renameat(sdfd, sname, ddfd, dname);
    }
    if (r < 0) {
        int err = errno;
        if (err == EEXIST && !q->overwrite)
            svc_file_fail(e, RPC_ERR_CONFLICT, "dst", "%s already exists (give overwrite: true)",
                          q->path2);
        else if (err == EXDEV)
            svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, "dst",
                          "%s and %s are on different filesystems (copy, then remove)", q->path,
                          q->path2);
        else if (err == EINVAL)
            svc_file_fail(e, RPC_ERR_INVALID_PARAMS, "dst", "cannot move %s into itself", q->path);
        else if (err == EISDIR || err == ENOTDIR)
            svc_file_fail(e, RPC_ERR_FAILED_PRECONDITION, "dst",
                          "cannot replace %s: one is a directory, the other is not", q->path2);
        else
            svc_file_fail_errno(e, -err, "dst", q->path2);
        goto out;
    }
    if (q->sync && ((fsync(ddfd) < 0 && errno != EINVAL) || (fsync(sdfd) < 0 && errno != EINVAL))) {
        svc_file_fail_errno(e, -errno, "dst", q->path2);
        goto out;
    }
    msgpack_pack_map(pk, 2);
    pack_kv_str(pk, "src", q->path);
    pack_kv_str(pk, "dst", q->path2);
    rc = 0;
out:
    close(sdfd);
    if (ddfd >= 0) close(ddfd);
    return rc;
}

/* --- checksum (base/hash.h: SHA-256 by libcrypto, BLAKE2b by libsodium) ------------------- */

int svc_file_checksum(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e)
{
    struct stat st;
    char etag[SVC_FILE_ETAG_LEN + 1], hex[2 * 32 + 1];
    uint8_t digest[P2P_HASH_LEN];
    p2p_hash_t h;
    int fd = open_regular(q, &st, e);
    if (fd < 0) return -1;
    uint8_t *buf = malloc(SVC_FILE_IO_CHUNK);
    if (!buf) {
        close(fd);
        return svc_file_fail_errno(e, -ENOMEM, NULL, q->path);
    }
    uint64_t limit = q->has_length ? (uint64_t)q->length : UINT64_MAX, done = 0;
    if (q->algo == SVC_FILE_SHA256 && limit >= (uint64_t)st.st_size &&
        svc_file_digests_get(q->digests, q->root, q->path, &st, digest)) {
        free(buf); /* digested while it was written in order: no second pass */
        close(fd);
        done = (uint64_t)st.st_size;
        goto known;
    }
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    if (p2p_hash_init(&h, q->algo == SVC_FILE_BLAKE2B ? P2P_HASH_BLAKE2B : P2P_HASH_SHA256) < 0) {
        free(buf);
        close(fd);
        return svc_file_fail_errno(e, -ENOMEM, NULL, q->path);
    }
    int rc = 0;
    while (done < limit) {
        if (svc_file_should_stop(q, e)) {
            rc = -1;
            break;
        }
        size_t want = (size_t)P2P_MIN((uint64_t)SVC_FILE_IO_CHUNK, limit - done);
        ssize_t n = read(fd, buf, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = svc_file_fail_errno(e, -errno, q->param, SHOWN(q->path));
            break;
        }
        if (n == 0) break;
        p2p_hash_update(&h, buf, (size_t)n);
        done += (uint64_t)n;
    }
    free(buf);
    close(fd);
    p2p_hash_final(&h, digest);
    if (rc < 0) return -1;
known:
    p2p_hex_encode(hex, digest, sizeof(digest));
    svc_file_etag(&st, etag);
    msgpack_pack_map(pk, 5);
    pack_kv_str(pk, "algo", q->algo == SVC_FILE_SHA256 ? "sha256" : "blake2b");
    pack_kv_str(pk, "digest", hex);
    pack_kv_u64(pk, "size", done);
    pack_kv_u64(pk, "file_size", (uint64_t)st.st_size);
    pack_kv_str(pk, "etag", etag);
    return 0;
}
