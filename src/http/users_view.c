/* users_view.c: the in-memory side of users that every door consults on every call (see
 * users-internal.h): the set of logged-out jtis (open addressing over keyed BLAKE2b-128 hashes,
 * so its memory does not depend on what jtis look like) and the users' tokens_after, kept sorted
 * by name. Also the dummy Argon2id hash unknown users are verified against. No loop, no clock. */
#include "http/users-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct jti_slot {
    uint8_t h[16];
    uint64_t expires; /* 0 = empty */
} jti_slot_t;

struct users_view {
    users_view_user_t *users; /* sorted by name */
    size_t n_users, cap_users;
    jti_slot_t *slots; /* cap_slots is a power of two, at most half full */
    size_t n_revoked, cap_slots;
    uint8_t key[crypto_generichash_KEYBYTES];
};

#define MIN_SLOTS 256

users_view_t *users_view_new(void)
{
    users_view_t *v = calloc(1, sizeof(*v));
    if (!v) return NULL;
    randombytes_buf(v->key, sizeof(v->key));
    return v;
}

void users_view_free(users_view_t *v)
{
    if (!v) return;
    free(v->users);
    free(v->slots);
    free(v);
}

size_t users_view_n_users(const users_view_t *v)
{
    return v->n_users;
}

size_t users_view_n_revoked(const users_view_t *v)
{
    return v->n_revoked;
}

/* --- users ------------------------------------------------------------------------------- */

/* The index of name, or where it would go (*found false). */
static size_t user_pos(const users_view_t *v, const char *name, bool *found)
{
    size_t lo = 0, hi = v->n_users;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->users[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static void to_view(const http_user_t *u, users_view_user_t *e)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", u->name);
    e->version = u->version;
    e->tokens_after = u->tokens_after;
    e->role = u->deleted ? RPC_ROLE_NONE : u->role;
    e->disabled = u->disabled;
    e->deleted = u->deleted;
}

int users_view_put_user(users_view_t *v, const http_user_t *u)
{
    bool found;
    size_t i = user_pos(v, u->name, &found);
    if (!found) {
        if (v->n_users >= HTTP_MAX_USERS) return -ENOSPC;
        if (v->n_users == v->cap_users) {
            size_t cap = v->cap_users ? v->cap_users * 2 : 64;
            users_view_user_t *n = realloc(v->users, cap * sizeof(*n));
            if (!n) return -ENOMEM;
            v->users = n;
            v->cap_users = cap;
        }
        memmove(&v->users[i + 1], &v->users[i], (v->n_users - i) * sizeof(*v->users));
        v->n_users++;
    }
    to_view(u, &v->users[i]);
    return 0;
}

const users_view_user_t *users_view_user(const users_view_t *v, const char *name)
{
    bool found;
    size_t i = user_pos(v, name, &found);
    return found ? &v->users[i] : NULL;
}

typedef struct reload_ctx {
    const users_view_t *old;
    users_view_user_t *rows;
    size_t n, cap;
    users_batch_t *changed;
    int differ;
    bool oom;
} reload_ctx_t;

static bool same_user(const users_view_user_t *a, const users_view_user_t *b)
{
    return a->version == b->version && a->tokens_after == b->tokens_after && a->role == b->role &&
           a->disabled == b->disabled && a->deleted == b->deleted;
}

static void reload_cb(void *arg, const http_user_t *u)
{
    reload_ctx_t *c = arg;
    if (c->oom || c->n >= HTTP_MAX_USERS) return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        users_view_user_t *n = realloc(c->rows, cap * sizeof(*n));
        if (!n) {
            c->oom = true;
            return;
        }
        c->rows = n;
        c->cap = cap;
    }
    users_view_user_t *e = &c->rows[c->n++];
    to_view(u, e);
    const users_view_user_t *had = users_view_user(c->old, u->name);
    if (had && same_user(had, e)) return;
    c->differ++;
    if (c->changed) users_batch_add_user(c->changed, u); /* a full batch: anti-entropy's job */
}

int users_view_reload_users(users_view_t *v, http_users_db_t *db, users_batch_t *changed)
{
    reload_ctx_t c = {.old = v, .changed = changed};
    int n = http_user_foreach(db, true, -1, reload_cb, &c);
    if (n < 0 || c.oom) {
        free(c.rows);
        return n < 0 ? n : -ENOMEM;
    }
    /* the database sorts by name with memcmp, as strcmp does: the rows are in view order */
    free(v->users);
    v->users = c.rows;
    v->n_users = c.n;
    v->cap_users = c.cap;
    return c.differ;
}

/* --- the jti set ------------------------------------------------------------------------- */

static void jti_hash(const users_view_t *v, const char *jti, size_t len, uint8_t h[16])
{
    crypto_generichash(h, 16, (const uint8_t *)jti, len, v->key, sizeof(v->key));
}

static size_t slot_index(const uint8_t h[16], size_t cap)
{
    uint64_t x;
    memcpy(&x, h, sizeof(x));
    return (size_t)x & (cap - 1);
}

/* The slot holding h, or the empty one where it would go. */
static jti_slot_t *slot_find(jti_slot_t *slots, size_t cap, const uint8_t h[16])
{
    for (size_t i = slot_index(h, cap);; i = (i + 1) & (cap - 1))
        if (!slots[i].expires || memcmp(slots[i].h, h, 16) == 0) return &slots[i];
}

static int grow(users_view_t *v)
{
    size_t cap = v->cap_slots ? v->cap_slots * 2 : MIN_SLOTS;
    jti_slot_t *n = calloc(cap, sizeof(*n));
    if (!n) return -ENOMEM;
    for (size_t i = 0; i < v->cap_slots; i++)
        if (v->slots[i].expires) *slot_find(n, cap, v->slots[i].h) = v->slots[i];
    free(v->slots);
    v->slots = n;
    v->cap_slots = cap;
    return 0;
}

int users_view_add_revoked(users_view_t *v, const char *jti, uint64_t expires)
{
    size_t len = jti ? strlen(jti) : 0;
    if (len == 0 || len > RPC_MAX_JTI || expires == 0) return -EINVAL;
    uint8_t h[16];
    jti_hash(v, jti, len, h);
    if (v->cap_slots) {
        jti_slot_t *s = slot_find(v->slots, v->cap_slots, h);
        if (s->expires) {
            if (expires > s->expires) s->expires = expires;
            return 0;
        }
    }
    if (v->n_revoked >= HTTP_MAX_REVOKED) return -ENOSPC;
    if ((v->n_revoked + 1) * 2 > v->cap_slots && grow(v) < 0) return -ENOMEM;
    jti_slot_t *s = slot_find(v->slots, v->cap_slots, h);
    memcpy(s->h, h, 16);
    s->expires = expires;
    v->n_revoked++;
    return 1;
}

typedef struct rev_ctx {
    users_view_t tmp; /* a set being built, with the view's key */
    uint64_t now_s;
    bool oom;
} rev_ctx_t;

static void rev_cb(void *arg, const http_revoked_t *r)
{
    rev_ctx_t *c = arg;
    if (c->oom || r->expires < c->now_s) return;
    if (users_view_add_revoked(&c->tmp, r->jti, r->expires) == -ENOMEM) c->oom = true;
}

int users_view_reload_revoked(users_view_t *v, http_users_db_t *db, uint64_t now_s)
{
    rev_ctx_t c;
    memset(&c, 0, sizeof(c));
    memcpy(c.tmp.key, v->key, sizeof(v->key));
    c.now_s = now_s;
    int n = http_revoked_foreach(db, -1, rev_cb, &c);
    if (n < 0 || c.oom) {
        free(c.tmp.slots);
        return n < 0 ? n : -ENOMEM;
    }
    free(v->slots);
    v->slots = c.tmp.slots;
    v->cap_slots = c.tmp.cap_slots;
    v->n_revoked = c.tmp.n_revoked;
    return (int)v->n_revoked;
}

void users_session_marker(const uint8_t id[HTTP_FAMILY_ID_LEN],
                          char out[3 + 2 * HTTP_FAMILY_ID_LEN])
{
    out[0] = 'f';
    out[1] = '.';
    p2p_hex_encode(out + 2, id, HTTP_FAMILY_ID_LEN);
}

_Static_assert(2 * HTTP_FAMILY_ID_LEN <= RPC_MAX_SESSION_PREFIX, "a session id is a jti prefix");

bool users_jti_session_marker(const char *jti, char out[3 + 2 * HTTP_FAMILY_ID_LEN])
{
    const size_t sl = 2 * HTTP_FAMILY_ID_LEN;
    if (!jti || strnlen(jti, sl + 1) <= sl || jti[sl] != '.') return false;
    out[0] = 'f';
    out[1] = '.';
    memcpy(out + 2, jti, sl);
    out[2 + sl] = '\0';
    return true;
}

bool users_view_revoked(const users_view_t *v, const char *jti, const char *sub, uint64_t iat)
{
    size_t len = jti ? strlen(jti) : 0;
    if (len && len <= RPC_MAX_JTI && v->n_revoked) {
        uint8_t h[16];
        jti_hash(v, jti, len, h);
        if (slot_find(v->slots, v->cap_slots, h)->expires) return true;
        char marker[3 + 2 * HTTP_FAMILY_ID_LEN];
        if (users_jti_session_marker(jti, marker)) { /* a session's token: session revoked? */
            jti_hash(v, marker, strlen(marker), h);
            if (slot_find(v->slots, v->cap_slots, h)->expires) return true;
        }
    }
    const users_view_user_t *e = sub && sub[0] ? users_view_user(v, sub) : NULL;
    if (!e) return false;
    return e->disabled || iat < e->tokens_after;
}

/* --- the dummy hash ------------------------------------------------------------------------ */

int users_dummy_hash(char out[HTTP_PWHASH_STRBYTES])
{
    uint8_t salt[crypto_pwhash_SALTBYTES], hash[32]; /* libsodium's hash length */
    char salt64[sizeof(salt) * 2], hash64[sizeof(hash) * 2];
    randombytes_buf(salt, sizeof(salt));
    randombytes_buf(hash, sizeof(hash));
    sodium_bin2base64(salt64, sizeof(salt64), salt, sizeof(salt),
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    sodium_bin2base64(hash64, sizeof(hash64), hash, sizeof(hash),
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    /* libsodium's own layout: memory in KiB, one lane */
    int n = snprintf(out, HTTP_PWHASH_STRBYTES, "$argon2id$v=19$m=%zu,t=%llu,p=1$%s$%s",
                     http_pwhash_memlimit() / 1024, http_pwhash_opslimit(), salt64, hash64);
    return n > 0 && (size_t)n < HTTP_PWHASH_STRBYTES ? 0 : -EINVAL;
}

/* --- the hook ------------------------------------------------------------------------------ */

int users_token_revoked(void *ctx, const char *jti, const char *sub, uint64_t iat)
{
    const http_users_t *u = ctx;
    return u && u->view && users_view_revoked(u->view, jti, sub, iat) ? 1 : 0;
}

http_users_t *users_of(const node_t *node)
{
    return node && node->token_revoked == users_token_revoked ? node->token_revoked_ctx : NULL;
}
