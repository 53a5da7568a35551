/* file_ops.h: the file service's operations (file_ops.c: stat, read, write, mkdir, remove, move,
 * checksum; file_search.c: list, search), each a blocking function on an already validated
 * request, run by file.c on the libuv thread pool. An operation packs exactly one msgpack object
 * (its result) into the packer and returns 0, or packs nothing and returns -1 with an error the
 * service answers as is (an RPC code of CONTRACT section 4, the parameter at fault, a message).
 * Every size, count and time a caller controls is bounded here, once. */
#ifndef P2P_SVC_FILE_OPS_H
#define P2P_SVC_FILE_OPS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <msgpack.h>
#include <sys/stat.h>

#include "services/file_digest.h"
#include "services/file_path.h"

#ifndef SVC_FILE_MAX_READ
#define SVC_FILE_MAX_READ (1024 * 1024) /* bytes one file.read returns (also its default) */
#endif
#ifndef SVC_FILE_MAX_WRITE
#define SVC_FILE_MAX_WRITE (3 * 1024 * 1024) /* bytes of data in one file.write (4 MiB frames) */
#endif
#ifndef SVC_FILE_MAX_REPLY
#define SVC_FILE_MAX_REPLY                                                                         \
    (2 * 1024 * 1024) /* bytes of a list or search answer (then truncated)                         \
                       */
#endif
#ifndef SVC_FILE_LIST_DEFAULT
#define SVC_FILE_LIST_DEFAULT 1000 /* entries file.list returns when no limit is given */
#endif
#ifndef SVC_FILE_LIST_MAX
#define SVC_FILE_LIST_MAX 10000 /* largest file.list limit */
#endif
#ifndef SVC_FILE_MAX_DEPTH
#define SVC_FILE_MAX_DEPTH 64 /* directory levels a recursive list, search or remove descends */
#endif
#ifndef SVC_FILE_SEARCH_MAX_VISIT
#define SVC_FILE_SEARCH_MAX_VISIT 100000 /* entries one search (or recursive list) looks at */
#endif
#ifndef SVC_FILE_SEARCH_MAX_BYTES
#define SVC_FILE_SEARCH_MAX_BYTES (256 * 1024 * 1024) /* file bytes one content search reads */
#endif
#ifndef SVC_FILE_SEARCH_MAX_FILE
#define SVC_FILE_SEARCH_MAX_FILE                                                                   \
    (8 * 1024 * 1024) /* larger files are skipped by content search                                \
                       */
#endif
#ifndef SVC_FILE_SEARCH_DEFAULT
#define SVC_FILE_SEARCH_DEFAULT 100 /* matches file.search returns when no max_results is given */
#endif
#ifndef SVC_FILE_SEARCH_MAX
#define SVC_FILE_SEARCH_MAX 1000 /* largest max_results */
#endif
#ifndef SVC_FILE_MAX_PATTERN
#define SVC_FILE_MAX_PATTERN 256 /* bytes of a glob, regex or content string */
#endif
#ifndef SVC_FILE_MAX_LINE
#define SVC_FILE_MAX_LINE 256 /* bytes of a matching line returned by a content search */
#endif
#ifndef SVC_FILE_IO_CHUNK
#define SVC_FILE_IO_CHUNK (256 * 1024) /* bytes read at once by checksum */
#endif
#ifndef SVC_FILE_ETAG_LEN
#define SVC_FILE_ETAG_LEN 32 /* hex digits of an etag (BLAKE2b-128) */
#endif
#ifndef SVC_FILE_MAX_ETAG_ARG
#define SVC_FILE_MAX_ETAG_ARG 64 /* bytes of an if_match argument (an etag is 32) */
#endif
#ifndef SVC_FILE_MAX_MODE
#define SVC_FILE_MAX_MODE 0777 /* permission bits a caller may set (no setuid, setgid, sticky) */
#endif

enum svc_file_algo { SVC_FILE_SHA256 = 0, SVC_FILE_BLAKE2B = 1 };

/* One validated request. Paths are normalized (svc_file_path_norm: "" is the root). */
typedef struct svc_file_req {
    const svc_froot_t *root;
    const svc_froot_t *root2; /* file.move's destination root */
    char path[SVC_FILE_MAX_PATH];
    char path2[SVC_FILE_MAX_PATH]; /* file.move's destination */
    const char *param;             /* name of the path argument ("path" or "src") */
    int64_t offset, length, mode, limit;
    bool has_offset, has_length, has_mode;
    bool recursive, append, create, truncate, sync, parents, overwrite;
    const uint8_t *data; /* file.write's bytes (borrowed from the call) */
    size_t data_len;
    bool has_if_match;
    char if_match[SVC_FILE_MAX_ETAG_ARG + 1];
    char glob[SVC_FILE_MAX_PATTERN + 1];
    char regex[SVC_FILE_MAX_PATTERN + 1];
    char content[SVC_FILE_MAX_PATTERN + 1];
    size_t content_len;
    int algo;
    svc_file_digests_t *digests; /* running digests of in-order writes (NULL = none) */
    uint64_t deadline_ms;        /* p2p_mono_ms() after which long work gives up (0 = none) */
    const atomic_bool *stop;     /* set when the service stops: long work gives up (NULL = never) */
} svc_file_req_t;

/* An operation's error: code (RPC_ERR_*), the argument at fault (static string or NULL). */
typedef struct svc_ferr {
    int code;
    const char *param;
    char msg[512];
} svc_ferr_t;

typedef int (*svc_file_op_fn)(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e);

/* Sets e (printf-style message) and returns -1. */
int svc_file_fail(svc_ferr_t *e, int code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Sets e from a negative errno met while working on what (a path as the caller gave it): -EXDEV
 * is PERMISSION_DENIED (leads out of the root), ENOENT NOT_FOUND, ENOSPC/EDQUOT
 * RESOURCE_EXHAUSTED ("no space left on device"), and so on. Returns -1. */
int svc_file_fail_errno(svc_ferr_t *e, int neg_errno, const char *param, const char *what);

/* The etag of a stat: lowercase hex BLAKE2b-128 over dev, ino, size, mtime ns and ctime ns; it
 * changes whenever the content may have changed. out holds SVC_FILE_ETAG_LEN + 1 bytes. */
void svc_file_etag(const struct stat *st, char *out);

/* "file", "dir", "symlink" or "other". */
const char *svc_file_type(mode_t mode);

/* True when long work should stop (the service stops or the deadline passed); sets e then. */
bool svc_file_should_stop(const svc_file_req_t *q, svc_ferr_t *e);

/* Packs the string s as a msgpack str. */
void svc_file_pack_str(msgpack_packer *pk, const char *s);

/* The operations (see docs/file.md for each result's fields). */
int svc_file_stat(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e);
int svc_file_read(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e);
int svc_file_write(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e);
int svc_file_mkdir(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e);
int svc_file_remove(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e);
int svc_file_move(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e);
int svc_file_checksum(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e);
int svc_file_list(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e);
int svc_file_search(const svc_file_req_t *q, msgpack_packer *pk, svc_ferr_t *e);

/* Checks a search's patterns before any work: the regex compiles and has no back-reference. Returns
 * 0 or -1 with e set (INVALID_PARAMS naming the argument). */
int svc_file_search_check(const svc_file_req_t *q, svc_ferr_t *e);

#endif
