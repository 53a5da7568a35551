/* file_digest.h: the running SHA-256 of files written in order by offset (what `p2p-rpc push` does,
 * chunk after chunk), kept so that file.checksum of a file just written answers at once instead of
 * reading it all again: the final check of a 1 GB push no longer waits a second after the last
 * byte. An entry is used only while the file's etag is the one its last write left, so a change
 * made any other way (another writer, a truncate, a rename) sends the checksum back to reading. */
#ifndef P2P_SVC_FILE_DIGEST_H
#define P2P_SVC_FILE_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "base/hash.h"

#ifndef SVC_FILE_DIGESTS
#define SVC_FILE_DIGESTS 4 /* files whose running digest is kept (least recently written dropped)  \
                            */
#endif

typedef struct svc_file_digests svc_file_digests_t;

/* A table for one file service; NULL on no memory (checksums then always read). */
svc_file_digests_t *svc_file_digests_new(void);

/* Frees the table. NULL ok. */
void svc_file_digests_free(svc_file_digests_t *d);

/* Records that data[0..len) was written at offset into (root, path), leaving the file as st. A
 * write at 0 that leaves the file exactly len long starts a digest; one at the end of a digested
 * prefix that leaves the file exactly that much longer extends it; anything else forgets it. Safe
 * from worker threads. */
void svc_file_digests_wrote(svc_file_digests_t *d, const void *root, const char *path,
                            uint64_t offset, const uint8_t *data, size_t len,
                            const struct stat *st);

/* Forgets (root, path) and every entry beneath it ("" is the whole root). Safe from workers. */
void svc_file_digests_forget(svc_file_digests_t *d, const void *root, const char *path);

/* The SHA-256 of the whole of (root, path) when the table knows it for the file as st shows it.
 * Returns true and writes out, else false. Safe from workers. */
bool svc_file_digests_get(svc_file_digests_t *d, const void *root, const char *path,
                          const struct stat *st, uint8_t out[P2P_HASH_LEN]);

#endif
