/* file_path.h: confinement of the file service's paths beneath a root directory. A caller's path
 * is first normalized lexically (svc_file_path_norm: relative only, no "..", no NUL, bounded
 * lengths), then resolved by the kernel beneath the root's directory fd: openat2() with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, or, where openat2 is missing (ENOSYS, kernels before
 * 5.6), a component-by-component walk that opens every component with O_NOFOLLOW and resolves
 * symbolic links itself. Either way a symlink that leads out of the root, at any depth and
 * whether its target exists or not, gives -EXDEV. See docs/file.md. */
#ifndef P2P_SVC_FILE_PATH_H
#define P2P_SVC_FILE_PATH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#ifndef SVC_FILE_MAX_PATH
#define SVC_FILE_MAX_PATH PATH_MAX /* bytes of a path argument, NUL included (4096) */
#endif
#ifndef SVC_FILE_MAX_NAME
#define SVC_FILE_MAX_NAME NAME_MAX /* bytes of one path component (255) */
#endif
#ifndef SVC_FILE_MAX_SYMLINKS
#define SVC_FILE_MAX_SYMLINKS 40 /* symbolic links followed in one resolution (as the kernel) */
#endif
#ifndef SVC_FILE_WALK_DEPTH
#define SVC_FILE_WALK_DEPTH 128 /* directories the fallback walk holds open at once */
#endif

/* One root: its directory fd (opened O_RDONLY | O_DIRECTORY at start) and how to resolve. */
typedef struct svc_froot {
    int fd;
    bool walk; /* true: the O_NOFOLLOW walk (openat2 missing or disabled for tests) */
} svc_froot_t;

/* Normalizes the caller's path in[0..len) into out (cap bytes): "." and empty components (from
 * "a//b", a leading "./" or a trailing "/") are dropped, so "." becomes "" (the root itself).
 * Returns the length of out, or -EINVAL (empty, a NUL byte, an absolute path, a ".."
 * component) or -ENAMETOOLONG (len >= SVC_FILE_MAX_PATH, a component > SVC_FILE_MAX_NAME, or out
 * too small). *why, when not NULL, gets a static phrase for the error message. */
int svc_file_path_norm(const char *in, size_t len, char *out, size_t cap, const char **why);

/* Decides how r resolves: openat2 when the kernel has it, else the walk. Returns 0 or -errno
 * from probing the root. */
int svc_file_path_probe(svc_froot_t *r);

/* Opens the normalized path beneath r with open(2) flags and mode (for O_CREAT). Symlinks are
 * followed while they stay beneath the root; with O_NOFOLLOW in flags the last component is not
 * followed (O_PATH | O_NOFOLLOW then opens a symlink itself). O_CLOEXEC is added. Returns the fd,
 * or -EXDEV when the path leads out of the root, or another negative errno. Thread-safe. */
int svc_file_path_open(const svc_froot_t *r, const char *norm, int flags, mode_t mode);

/* Opens the directory holding the last component of norm (O_RDONLY | O_DIRECTORY, following
 * symlinks beneath the root) and points *name at that component inside norm. Returns the fd, or
 * -EINVAL when norm is the root itself (""), or a negative errno as svc_file_path_open. */
int svc_file_path_parent(const svc_froot_t *r, const char *norm, const char **name);

/* lstat of the entry norm names (the last component not followed). A symlink entry must not lead
 * out of the root (-EXDEV), dangling or not. Returns 0 or a negative errno. */
int svc_file_path_lstat(const svc_froot_t *r, const char *norm, struct stat *st);

#endif
