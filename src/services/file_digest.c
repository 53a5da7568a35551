/* file_digest.c: running SHA-256 digests of files written in order (see file_digest.h). */
#include "services/file_digest.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "services/file_ops.h"

typedef struct entry {
    bool used;
    const void *root;
    char path[PATH_MAX];
    uint64_t upto;                    /* bytes digested: the file's size after the last write */
    char etag[SVC_FILE_ETAG_LEN + 1]; /* what that write left */
    uint64_t stamp;                   /* for least-recently-written eviction */
    p2p_hash_t h;
} entry_t;

struct svc_file_digests {
    pthread_mutex_t mu;
    uint64_t clock;
    entry_t e[SVC_FILE_DIGESTS];
};

svc_file_digests_t *svc_file_digests_new(void)
{
    svc_file_digests_t *d = calloc(1, sizeof(*d));
    if (d && pthread_mutex_init(&d->mu, NULL) != 0) {
        free(d);
        return NULL;
    }
    return d;
}

static void drop(entry_t *e)
{
    if (e->used) p2p_hash_free(&e->h);
    e->used = false;
}

void svc_file_digests_free(svc_file_digests_t *d)
{
    if (!d) return;
    for (int i = 0; i < SVC_FILE_DIGESTS; i++)
        drop(&d->e[i]);
    pthread_mutex_destroy(&d->mu);
    free(d);
}

static entry_t *find(svc_file_digests_t *d, const void *root, const char *path)
{
    for (int i = 0; i < SVC_FILE_DIGESTS; i++)
        if (d->e[i].used && d->e[i].root == root && strcmp(d->e[i].path, path) == 0)
            return &d->e[i];
    return NULL;
}

static entry_t *fresh(svc_file_digests_t *d)
{
    entry_t *old = &d->e[0];
    for (int i = 0; i < SVC_FILE_DIGESTS; i++) {
        if (!d->e[i].used) return &d->e[i];
        if (d->e[i].stamp < old->stamp) old = &d->e[i];
    }
    drop(old);
    return old;
}

void svc_file_digests_wrote(svc_file_digests_t *d, const void *root, const char *path,
                            uint64_t offset, const uint8_t *data, size_t len, const struct stat *st)
{
    if (!d || strlen(path) >= sizeof(d->e[0].path)) return;
    uint64_t size = (uint64_t)st->st_size;
    pthread_mutex_lock(&d->mu);
    entry_t *e = find(d, root, path);
    if (offset == 0 && size == len) { /* the file is this chunk: a new digest */
        if (e) drop(e);
        e = fresh(d);
        if (p2p_hash_init(&e->h, P2P_HASH_SHA256) < 0) goto out;
        e->used = true;
        e->root = root;
        strcpy(e->path, path);
        e->upto = 0;
    } else if (!e || e->upto != offset || size != offset + len) {
        if (e) drop(e); /* out of order, a rewrite, or bytes beyond: it no longer describes it */
        goto out;
    }
    p2p_hash_update(&e->h, data, len);
    e->upto = size;
    e->stamp = ++d->clock;
    svc_file_etag(st, e->etag);
out:
    pthread_mutex_unlock(&d->mu);
}

void svc_file_digests_forget(svc_file_digests_t *d, const void *root, const char *path)
{
    if (!d) return;
    size_t n = strlen(path);
    pthread_mutex_lock(&d->mu);
    for (int i = 0; i < SVC_FILE_DIGESTS; i++) {
        entry_t *e = &d->e[i];
        if (!e->used || e->root != root) continue;
        if (n == 0 || (strncmp(e->path, path, n) == 0 && (e->path[n] == 0 || e->path[n] == '/')))
            drop(e);
    }
    pthread_mutex_unlock(&d->mu);
}

bool svc_file_digests_get(svc_file_digests_t *d, const void *root, const char *path,
                          const struct stat *st, uint8_t out[P2P_HASH_LEN])
{
    if (!d) return false;
    char etag[SVC_FILE_ETAG_LEN + 1];
    svc_file_etag(st, etag);
    bool ok = false;
    pthread_mutex_lock(&d->mu);
    entry_t *e = find(d, root, path);
    p2p_hash_t c;
    if (e && e->upto == (uint64_t)st->st_size && strcmp(e->etag, etag) == 0 &&
        p2p_hash_copy(&c, &e->h) == 0) {
        p2p_hash_final(&c, out);
        ok = true;
    }
    pthread_mutex_unlock(&d->mu);
    return ok;
}
