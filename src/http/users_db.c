/* users_db.c: users, login sessions and revoked tokens in node.db (see users.h): name and
 * password rules, Argon2id through libsodium, last-writer-wins merges, the refresh-token codec
 * and state machine. Every multi-step change runs in one transaction. No clock reads: times come
 * in as parameters. */
#include "http/users.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

enum stmt {
    S_BEGIN,
    S_COMMIT,
    S_ROLLBACK,
    S_DATA_VERSION,
    S_USER_GET,
    S_USER_PUT,
    S_USER_COUNT,
    S_USER_ALL,
    S_FAM_GET,
    S_FAM_PUT,
    S_FAM_COUNT,
    S_FAM_USER_LIVE,
    S_FAM_REVOKE_USER,
    S_FAM_ALL,
    S_REV_GET,
    S_REV_PUT,
    S_REV_COUNT,
    S_REV_ALL,
    S_PRUNE_FAM,
    S_PRUNE_REV,
    S_COUNT
};

#define USER_COLS "name, role, hash, version, updated, tokens_after, disabled, deleted"
#define FAM_COLS  "family, username, counter, token_hash, created, expires, revoked"

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_DATA_VERSION] = "PRAGMA data_version",
    [S_USER_GET] = "SELECT " USER_COLS " FROM users WHERE name = ?",
    [S_USER_PUT] =
        "INSERT OR REPLACE INTO users (" USER_COLS ", bucket) VALUES (?,?,?,?,?,?,?,?,?)",
    [S_USER_COUNT] = "SELECT count(*) FROM users",
    [S_USER_ALL] = "SELECT " USER_COLS " FROM users WHERE (?1 < 0 OR bucket = ?1) AND "
                   "(?2 OR deleted = 0) ORDER BY name",
    [S_FAM_GET] = "SELECT " FAM_COLS " FROM refresh_families WHERE family = ?",
    [S_FAM_PUT] =
        "INSERT OR REPLACE INTO refresh_families (" FAM_COLS ", bucket) VALUES (?,?,?,?,?,?,?,?)",
    [S_FAM_COUNT] = "SELECT count(*) FROM refresh_families",
    [S_FAM_USER_LIVE] = "SELECT family FROM refresh_families WHERE username = ? AND revoked = 0 "
                        "ORDER BY created, family",
    [S_FAM_REVOKE_USER] =
        "UPDATE refresh_families SET revoked = 1 WHERE username = ? AND revoked = 0",
    [S_FAM_ALL] = "SELECT " FAM_COLS " FROM refresh_families WHERE (?1 < 0 OR bucket = ?1) "
                  "ORDER BY family",
    [S_REV_GET] = "SELECT expires FROM revoked_tokens WHERE jti = ?",
    [S_REV_PUT] = "INSERT OR REPLACE INTO revoked_tokens (jti, expires, bucket) VALUES (?,?,?)",
    [S_REV_COUNT] = "SELECT count(*) FROM revoked_tokens",
    [S_REV_ALL] = "SELECT jti, expires FROM revoked_tokens WHERE (?1 < 0 OR bucket = ?1) "
                  "ORDER BY jti",
    [S_PRUNE_FAM] = "DELETE FROM refresh_families WHERE expires < ?",
    [S_PRUNE_REV] = "DELETE FROM revoked_tokens WHERE expires < ?",
};

struct http_users_db {
    sqlite3 *db;
    sqlite3_stmt *st[S_COUNT];
    int64_t data_version;
    bool data_version_read;
};

/* --- rules ------------------------------------------------------------------------------- */

bool http_username_valid(const char *name, size_t len)
{
    if (!name || len == 0 || len > HTTP_MAX_USERNAME) return false;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

unsigned long long http_pwhash_opslimit(void)
{
    return HTTP_PWHASH_OPSLIMIT;
}

size_t http_pwhash_memlimit(void)
{
    size_t interactive = crypto_pwhash_argon2id_memlimit_interactive();
    return interactive > HTTP_PWHASH_MEMLIMIT ? interactive : HTTP_PWHASH_MEMLIMIT;
}

int http_password_hash(const char *pw, size_t len, char out[HTTP_PWHASH_STRBYTES])
{
    if (!pw || len == 0 || len > HTTP_MAX_PASSWORD) return -EINVAL;
    if (crypto_pwhash_str_alg(out, pw, len, http_pwhash_opslimit(), http_pwhash_memlimit(),
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return -ENOMEM;
    return 0;
}

/* True when hash is a NUL-terminated string that fits libsodium's hash buffer. */
static bool hash_fits(const char *hash)
{
    return hash && strnlen(hash, HTTP_PWHASH_STRBYTES) < HTTP_PWHASH_STRBYTES;
}

int http_password_verify(const char *hash, const char *pw, size_t len)
{
    char h[HTTP_PWHASH_STRBYTES] = {0};
    if (!pw || len == 0 || len > HTTP_MAX_PASSWORD) return -EINVAL;
    if (!hash_fits(hash)) return -EACCES;
    strcpy(h, hash); /* libsodium's prototype takes the whole buffer */
    return crypto_pwhash_str_verify(h, pw, len) == 0 ? 0 : -EACCES;
}

bool http_password_needs_rehash(const char *hash)
{
    char h[HTTP_PWHASH_STRBYTES] = {0};
    if (!hash_fits(hash)) return true;
    strcpy(h, hash);
    return crypto_pwhash_str_needs_rehash(h, http_pwhash_opslimit(), http_pwhash_memlimit()) != 0;
}

unsigned http_sync_bucket(const void *key, size_t len)
{
    uint8_t h[16];
    crypto_generichash(h, sizeof(h), key, len, NULL, 0);
    return h[0] % HTTP_SYNC_BUCKETS;
}

static int cmp_u64(uint64_t a, uint64_t b)
{
    return a > b ? 1 : a < b ? -1 : 0;
}

int http_user_cmp(const http_user_t *a, const http_user_t *b)
{
    int c;
    if ((c = cmp_u64(a->version, b->version))) return c;
    if ((c = (int)a->deleted - (int)b->deleted)) return c;
    if ((c = (int)a->role - (int)b->role)) return c;
    if ((c = strcmp(a->hash, b->hash))) return c > 0 ? 1 : -1;
    if ((c = cmp_u64(a->tokens_after, b->tokens_after))) return c;
    if ((c = (int)a->disabled - (int)b->disabled)) return c;
    return cmp_u64(a->updated_ms, b->updated_ms);
}

/* A row fit to store: valid name, a role for live users, a hash string that fits. */
static bool user_ok(const http_user_t *u)
{
    size_t n = strnlen(u->name, sizeof(u->name));
    if (n == sizeof(u->name) || !http_username_valid(u->name, n)) return false;
    if (!memchr(u->hash, 0, sizeof(u->hash))) return false;
    if (u->deleted) return true;
    return u->role >= RPC_ROLE_VIEWER && u->role <= RPC_ROLE_ADMIN && u->hash[0] && u->version > 0;
}

/* --- statements ---------------------------------------------------------------------------- */

static int step_done(http_users_db_t *d, int which)
{
    sqlite3_stmt *st = d->st[which];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : -EIO;
}

static int begin(http_users_db_t *d)
{
    return step_done(d, S_BEGIN);
}

static int commit(http_users_db_t *d, int rc)
{
    if (rc >= 0 && step_done(d, S_COMMIT) == 0) return rc;
    if (!sqlite3_get_autocommit(d->db)) step_done(d, S_ROLLBACK);
    return rc < 0 ? rc : -EIO;
}

static int count_rows(http_users_db_t *d, int which)
{
    sqlite3_stmt *st = d->st[which];
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -EIO;
    sqlite3_reset(st);
    return n;
}

static void text_to(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

static uint64_t col_u64(sqlite3_stmt *st, int col)
{
    sqlite3_int64 v = sqlite3_column_int64(st, col);
    return v < 0 ? 0 : (uint64_t)v;
}

int http_users_db_open(sqlite3 *db, http_users_db_t **out)
{
    http_users_db_t *d = calloc(1, sizeof(*d));
    if (!d) return -ENOMEM;
    d->db = db;
    int rc = -EIO;
    for (int i = 0; i < S_COUNT; i++) {
        if (sqlite3_prepare_v3(db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &d->st[i], NULL) !=
            SQLITE_OK) {
            if (strstr(sqlite3_errmsg(db), "no such table")) rc = -EPROTO;
            goto fail;
        }
    }
    *out = d;
    return 0;
fail:
    http_users_db_close(d);
    return rc;
}

void http_users_db_close(http_users_db_t *d)
{
    if (!d) return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(d->st[i]);
    free(d);
}

bool http_users_db_changed_elsewhere(http_users_db_t *d)
{
    sqlite3_stmt *st = d->st[S_DATA_VERSION];
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_reset(st);
    bool changed = !d->data_version_read || v != d->data_version;
    d->data_version = v;
    d->data_version_read = true;
    return changed;
}

/* --- users ------------------------------------------------------------------------------- */

static void read_user(sqlite3_stmt *st, http_user_t *u)
{
    memset(u, 0, sizeof(*u));
    text_to(st, 0, u->name, sizeof(u->name));
    const unsigned char *role = sqlite3_column_text(st, 1);
    int r = role ? rpc_role_parse((const char *)role) : -EINVAL;
    u->role = r > 0 ? (rpc_role_t)r : RPC_ROLE_NONE;
    text_to(st, 2, u->hash, sizeof(u->hash));
    u->version = col_u64(st, 3);
    u->updated_ms = col_u64(st, 4);
    u->tokens_after = col_u64(st, 5);
    u->disabled = sqlite3_column_int(st, 6) != 0;
    u->deleted = sqlite3_column_int(st, 7) != 0;
    if (u->deleted) {
        u->role = RPC_ROLE_NONE;
        u->hash[0] = 0;
    }
}

int http_user_get(http_users_db_t *d, const char *name, http_user_t *out)
{
    sqlite3_stmt *st = d->st[S_USER_GET];
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) read_user(st, out);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : -EIO;
}

static int put_user(http_users_db_t *d, const http_user_t *u)
{
    sqlite3_stmt *st = d->st[S_USER_PUT];
    size_t n = strlen(u->name);
    sqlite3_bind_text(st, 1, u->name, (int)n, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, u->deleted ? "none" : rpc_role_name(u->role), -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, u->deleted ? "" : u->hash, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)u->version);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)u->updated_ms);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)u->tokens_after);
    sqlite3_bind_int(st, 7, u->disabled);
    sqlite3_bind_int(st, 8, u->deleted);
    sqlite3_bind_int(st, 9, (int)http_sync_bucket(u->name, n));
    return step_done(d, S_USER_PUT);
}

static int revoke_user_families(http_users_db_t *d, const char *name)
{
    sqlite3_bind_text(d->st[S_FAM_REVOKE_USER], 1, name, -1, SQLITE_STATIC);
    return step_done(d, S_FAM_REVOKE_USER);
}

/* Next version of a row after prev (NULL: none). */
static uint64_t next_version(const http_user_t *prev, uint64_t now_ms)
{
    return prev && prev->version >= now_ms ? prev->version + 1 : now_ms;
}

/* Room for one more row when name is new. */
static int user_room(http_users_db_t *d, bool exists)
{
    if (exists) return 0;
    int n = count_rows(d, S_USER_COUNT);
    return n < 0 ? n : n >= HTTP_MAX_USERS ? -ENOSPC : 0;
}

int http_user_set(http_users_db_t *d, const char *name, rpc_role_t role, const char *hash,
                  uint64_t now_ms, http_user_t *out)
{
    http_user_t u, prev;
    if (!name || !hash || strlen(hash) >= sizeof(u.hash)) return -EINVAL;
    memset(&u, 0, sizeof(u));
    if (strlen(name) > HTTP_MAX_USERNAME) return -EINVAL;
    strcpy(u.name, name);
    strcpy(u.hash, hash);
    u.role = role;
    u.updated_ms = now_ms;
    u.version = 1; /* for user_ok; the real one below */
    if (!user_ok(&u) || now_ms == 0) return -EINVAL;
    if (begin(d) < 0) return -EIO;
    int rc = http_user_get(d, name, &prev);
    bool exists = rc == 0;
    if (rc < 0 && rc != -ENOENT) return commit(d, rc);
    if ((rc = user_room(d, exists)) < 0) return commit(d, rc);
    u.version = next_version(exists ? &prev : NULL, now_ms);
    u.tokens_after = exists ? now_ms / 1000 : 0;
    rc = commit(d, put_user(d, &u));
    if (rc == 0 && out) *out = u;
    return rc;
}

int http_user_remove(http_users_db_t *d, const char *name, uint64_t now_ms, http_user_t *out)
{
    http_user_t u;
    if (begin(d) < 0) return -EIO;
    int rc = http_user_get(d, name, &u);
    if (rc == 0 && u.deleted) rc = -ENOENT;
    if (rc < 0) return commit(d, rc);
    u.version = next_version(&u, now_ms);
    u.updated_ms = now_ms;
    u.tokens_after = now_ms / 1000 + 1; /* every token it holds, this second's included */
    u.deleted = true;
    u.role = RPC_ROLE_NONE;
    u.hash[0] = 0;
    if ((rc = put_user(d, &u)) == 0) rc = revoke_user_families(d, name);
    rc = commit(d, rc);
    if (rc == 0 && out) *out = u;
    return rc;
}

int http_user_rehash(http_users_db_t *d, const char *name, const char *hash, uint64_t now_ms,
                     http_user_t *out)
{
    http_user_t u;
    if (!hash || !hash[0] || strlen(hash) >= sizeof(u.hash)) return -EINVAL;
    if (begin(d) < 0) return -EIO;
    int rc = http_user_get(d, name, &u);
    if (rc == 0 && u.deleted) rc = -ENOENT;
    if (rc < 0) return commit(d, rc);
    u.version = next_version(&u, now_ms);
    u.updated_ms = now_ms;
    strcpy(u.hash, hash);
    rc = commit(d, put_user(d, &u));
    if (rc == 0 && out) *out = u;
    return rc;
}

int http_user_merge(http_users_db_t *d, const http_user_t *in)
{
    http_user_t u = *in, prev;
    if (u.deleted) {
        u.role = RPC_ROLE_NONE;
        u.hash[0] = 0;
    }
    if (!user_ok(&u)) return -EINVAL;
    if (begin(d) < 0) return -EIO;
    int rc = http_user_get(d, u.name, &prev);
    bool exists = rc == 0;
    if (rc < 0 && rc != -ENOENT) return commit(d, rc);
    if (exists && http_user_cmp(&u, &prev) <= 0) return commit(d, 0);
    if ((rc = user_room(d, exists)) < 0) return commit(d, rc);
    rc = put_user(d, &u);
    if (rc == 0 && u.deleted) rc = revoke_user_families(d, u.name);
    return commit(d, rc < 0 ? rc : 1);
}

int http_user_foreach(http_users_db_t *d, bool with_deleted, int bucket,
                      void (*cb)(void *arg, const http_user_t *u), void *arg)
{
    sqlite3_stmt *st = d->st[S_USER_ALL];
    sqlite3_bind_int(st, 1, bucket < 0 ? -1 : bucket);
    sqlite3_bind_int(st, 2, with_deleted);
    int n = 0, rc;
    http_user_t u;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_user(st, &u);
        cb(arg, &u);
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? n : -EIO;
}

/* --- refresh tokens ----------------------------------------------------------------------- */

void http_refresh_key(const uint8_t *secret, size_t secret_len, uint8_t key[HTTP_REFRESH_KEY_LEN])
{
    static const char ctx[] = "p2p-admin refresh token mac v1";
    size_t klen = secret_len;
    if (klen > crypto_generichash_KEYBYTES_MAX) klen = crypto_generichash_KEYBYTES_MAX;
    if (klen < crypto_generichash_KEYBYTES_MIN) { /* never with a valid secret (>= 32 bytes) */
        crypto_generichash(key, HTTP_REFRESH_KEY_LEN, secret, secret_len, NULL, 0);
        return;
    }
    crypto_generichash(key, HTTP_REFRESH_KEY_LEN, (const uint8_t *)ctx, sizeof(ctx) - 1, secret,
                       klen);
}

static void refresh_mac(const uint8_t key[HTTP_REFRESH_KEY_LEN], const uint8_t *raw,
                        uint8_t mac[16])
{
    crypto_generichash(mac, 16, raw, HTTP_REFRESH_RAW_LEN - 16, key, HTTP_REFRESH_KEY_LEN);
}

void http_refresh_encode(const uint8_t key[HTTP_REFRESH_KEY_LEN],
                         const uint8_t family[HTTP_FAMILY_ID_LEN], uint64_t counter,
                         const uint8_t nonce[16], char out[HTTP_REFRESH_TOKEN_LEN + 1])
{
    uint8_t raw[HTTP_REFRESH_RAW_LEN];
    raw[0] = 1;
    memcpy(raw + 1, family, HTTP_FAMILY_ID_LEN);
    p2p_put_be64(raw + 17, counter);
    memcpy(raw + 25, nonce, 16);
    refresh_mac(key, raw, raw + 41);
    memcpy(out, "p2r1.", 5);
    sodium_bin2base64(out + 5, HTTP_REFRESH_TOKEN_LEN + 1 - 5, raw, sizeof(raw),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int http_refresh_decode(const uint8_t key[HTTP_REFRESH_KEY_LEN], const uint8_t *prev_key,
                        const char *tok, size_t len, uint8_t family[HTTP_FAMILY_ID_LEN],
                        uint64_t *counter)
{
    uint8_t raw[HTTP_REFRESH_RAW_LEN], mac[16];
    size_t n = 0;
    if (!tok || len != HTTP_REFRESH_TOKEN_LEN || memcmp(tok, "p2r1.", 5) != 0) return -EINVAL;
    if (sodium_base642bin(raw, sizeof(raw), tok + 5, len - 5, NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        n != sizeof(raw) || raw[0] != 1)
        return -EINVAL;
    refresh_mac(key, raw, mac);
    bool ok = sodium_memcmp(mac, raw + 41, 16) == 0;
    if (!ok && prev_key) {
        refresh_mac(prev_key, raw, mac);
        ok = sodium_memcmp(mac, raw + 41, 16) == 0;
    }
    if (!ok) return -EACCES;
    memcpy(family, raw + 1, HTTP_FAMILY_ID_LEN);
    *counter = p2p_get_be64(raw + 17);
    return 0;
}

void http_refresh_hash(const char *tok, size_t len, uint8_t out[HTTP_TOKEN_HASH_LEN])
{
    crypto_generichash(out, HTTP_TOKEN_HASH_LEN, (const uint8_t *)tok, len, NULL, 0);
}

static bool blob_is(sqlite3_stmt *st, int col, size_t len)
{
    return sqlite3_column_type(st, col) == SQLITE_BLOB &&
           (size_t)sqlite3_column_bytes(st, col) == len;
}

/* Reads a family row; false when its blobs have the wrong sizes. */
static bool read_family(sqlite3_stmt *st, http_family_t *f)
{
    memset(f, 0, sizeof(*f));
    if (!blob_is(st, 0, HTTP_FAMILY_ID_LEN) || !blob_is(st, 3, HTTP_TOKEN_HASH_LEN)) return false;
    memcpy(f->id, sqlite3_column_blob(st, 0), HTTP_FAMILY_ID_LEN);
    text_to(st, 1, f->user, sizeof(f->user));
    f->counter = col_u64(st, 2);
    memcpy(f->token_hash, sqlite3_column_blob(st, 3), HTTP_TOKEN_HASH_LEN);
    f->created = col_u64(st, 4);
    f->expires = col_u64(st, 5);
    f->revoked = sqlite3_column_int(st, 6) != 0;
    return true;
}

int http_family_get(http_users_db_t *d, const uint8_t id[HTTP_FAMILY_ID_LEN], http_family_t *out)
{
    sqlite3_stmt *st = d->st[S_FAM_GET];
    sqlite3_bind_blob(st, 1, id, HTTP_FAMILY_ID_LEN, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    int r = rc == SQLITE_DONE ? -ENOENT : -EIO;
    if (rc == SQLITE_ROW) r = read_family(st, out) ? 0 : -ENOENT;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return r;
}

static int put_family(http_users_db_t *d, const http_family_t *f)
{
    sqlite3_stmt *st = d->st[S_FAM_PUT];
    sqlite3_bind_blob(st, 1, f->id, HTTP_FAMILY_ID_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, f->user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)f->counter);
    sqlite3_bind_blob(st, 4, f->token_hash, HTTP_TOKEN_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)f->created);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)f->expires);
    sqlite3_bind_int(st, 7, f->revoked);
    sqlite3_bind_int(st, 8, (int)http_sync_bucket(f->id, HTTP_FAMILY_ID_LEN));
    return step_done(d, S_FAM_PUT);
}

/* Issues token number `counter` of f (fresh nonce): writes its text and hash, and its end. */
static void issue(const uint8_t key[HTTP_REFRESH_KEY_LEN], http_family_t *f, uint64_t counter,
                  uint64_t now_s, uint64_t ttl_s, char tok[HTTP_REFRESH_TOKEN_LEN + 1])
{
    uint8_t nonce[16];
    randombytes_buf(nonce, sizeof(nonce));
    http_refresh_encode(key, f->id, counter, nonce, tok);
    http_refresh_hash(tok, HTTP_REFRESH_TOKEN_LEN, f->token_hash);
    f->counter = counter;
    if (ttl_s > HTTP_REFRESH_MAX_AGE_S) ttl_s = HTTP_REFRESH_MAX_AGE_S;
    uint64_t end = f->created + HTTP_REFRESH_MAX_AGE_S;
    f->expires = now_s + ttl_s < end ? now_s + ttl_s : end;
}

/* Revokes the user's oldest live sessions so that one more fits within the per-user cap. */
static int make_user_room(http_users_db_t *d, const char *user)
{
    sqlite3_stmt *st = d->st[S_FAM_USER_LIVE];
    uint8_t(*ids)[HTTP_FAMILY_ID_LEN] = calloc(HTTP_MAX_FAMILIES_PER_USER + 1, sizeof(*ids));
    if (!ids) return -ENOMEM;
    int n = 0, rc;
    sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n <= HTTP_MAX_FAMILIES_PER_USER)
        if (blob_is(st, 0, HTTP_FAMILY_ID_LEN))
            memcpy(ids[n++], sqlite3_column_blob(st, 0), HTTP_FAMILY_ID_LEN);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    int r = rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -EIO;
    for (int i = 0; r == 0 && i + HTTP_MAX_FAMILIES_PER_USER <= n; i++) {
        http_family_t f;
        if ((r = http_family_get(d, ids[i], &f)) < 0) break;
        f.revoked = true;
        r = put_family(d, &f);
    }
    free(ids);
    return r;
}

int http_family_start(http_users_db_t *d, const uint8_t key[HTTP_REFRESH_KEY_LEN], const char *user,
                      uint64_t now_s, uint64_t ttl_s, char tok[HTTP_REFRESH_TOKEN_LEN + 1],
                      http_family_t *out)
{
    http_family_t f;
    if (!user || !http_username_valid(user, strlen(user)) || ttl_s == 0) return -EINVAL;
    memset(&f, 0, sizeof(f));
    randombytes_buf(f.id, sizeof(f.id));
    strcpy(f.user, user);
    f.created = now_s;
    issue(key, &f, 0, now_s, ttl_s, tok);
    if (begin(d) < 0) return -EIO;
    int n = count_rows(d, S_FAM_COUNT), rc = n < 0 ? n : n >= HTTP_MAX_FAMILIES ? -ENOSPC : 0;
    if (rc == 0) rc = make_user_room(d, user);
    if (rc == 0) rc = put_family(d, &f);
    rc = commit(d, rc);
    if (rc == 0 && out) *out = f;
    return rc;
}

int http_family_refresh(http_users_db_t *d, const uint8_t key[HTTP_REFRESH_KEY_LEN],
                        const uint8_t *prev_key, const char *tok, size_t len, uint64_t now_s,
                        uint64_t ttl_s, char new_tok[HTTP_REFRESH_TOKEN_LEN + 1],
                        http_family_t *out)
{
    uint8_t id[HTTP_FAMILY_ID_LEN], h[HTTP_TOKEN_HASH_LEN];
    uint64_t counter;
    http_family_t f;
    if (http_refresh_decode(key, prev_key, tok, len, id, &counter) < 0) return HTTP_REFRESH_INVALID;
    if (begin(d) < 0) return -EIO;
    int rc = http_family_get(d, id, &f);
    if (rc == -ENOENT) return commit(d, HTTP_REFRESH_UNKNOWN);
    if (rc < 0) return commit(d, rc);
    if (out) *out = f;
    if (f.revoked) return commit(d, HTTP_REFRESH_REVOKED);
    if (f.expires < now_s) return commit(d, HTTP_REFRESH_EXPIRED);
    http_refresh_hash(tok, len, h);
    if (counter < f.counter ||
        (counter == f.counter && sodium_memcmp(h, f.token_hash, sizeof(h)) != 0)) {
        f.revoked = true; /* a rotated token came back: whoever holds the family, end it */
        rc = commit(d, put_family(d, &f));
        if (rc == 0 && out) *out = f;
        return rc < 0 ? rc : HTTP_REFRESH_REUSED;
    }
    if (counter == UINT64_MAX) return commit(d, HTTP_REFRESH_INVALID);
    /* the live token, or a later one another node issued that we have not heard of yet (its MAC
     * proves it genuine) */
    issue(key, &f, counter + 1, now_s, ttl_s, new_tok);
    rc = commit(d, put_family(d, &f));
    if (rc < 0) return rc;
    if (out) *out = f;
    return HTTP_REFRESH_ROTATED;
}

int http_family_revoke(http_users_db_t *d, const uint8_t id[HTTP_FAMILY_ID_LEN], http_family_t *out)
{
    http_family_t f;
    if (begin(d) < 0) return -EIO;
    int rc = http_family_get(d, id, &f);
    if (rc < 0) return commit(d, rc);
    bool was = f.revoked;
    f.revoked = true;
    rc = was ? 0 : put_family(d, &f);
    rc = commit(d, rc < 0 ? rc : was ? 0 : 1);
    if (rc >= 0 && out) *out = f;
    return rc;
}

int http_family_merge(http_users_db_t *d, const http_family_t *in, uint64_t now_s)
{
    http_family_t f;
    size_t n = strnlen(in->user, sizeof(in->user));
    if (n == sizeof(in->user) || !http_username_valid(in->user, n) || in->expires == 0)
        return -EINVAL;
    if (in->expires < now_s) return 0;
    if (begin(d) < 0) return -EIO;
    int rc = http_family_get(d, in->id, &f);
    if (rc == -ENOENT) {
        int c = count_rows(d, S_FAM_COUNT);
        rc = c < 0 ? c : c >= HTTP_MAX_FAMILIES ? -ENOSPC : put_family(d, in);
        return commit(d, rc < 0 ? rc : 1);
    }
    if (rc < 0) return commit(d, rc);
    http_family_t m = f;
    m.revoked = f.revoked || in->revoked;
    if (in->counter > f.counter) {
        m.counter = in->counter;
        memcpy(m.token_hash, in->token_hash, HTTP_TOKEN_HASH_LEN);
        m.expires = in->expires;
    } else if (in->counter == f.counter) {
        int c = memcmp(in->token_hash, f.token_hash, HTTP_TOKEN_HASH_LEN);
        if (c != 0) m.revoked = true; /* the same token rotated on two nodes */
        if (c > 0) memcpy(m.token_hash, in->token_hash, HTTP_TOKEN_HASH_LEN);
        if (in->expires > m.expires) m.expires = in->expires;
    }
    if (memcmp(&m, &f, sizeof(m)) == 0) return commit(d, 0);
    return commit(d, put_family(d, &m) < 0 ? -EIO : 1);
}

int http_family_foreach(http_users_db_t *d, int bucket,
                        void (*cb)(void *arg, const http_family_t *f), void *arg)
{
    sqlite3_stmt *st = d->st[S_FAM_ALL];
    sqlite3_bind_int(st, 1, bucket < 0 ? -1 : bucket);
    int n = 0, rc;
    http_family_t f;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (!read_family(st, &f)) continue;
        cb(arg, &f);
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? n : -EIO;
}

/* --- revoked access tokens ---------------------------------------------------------------- */

int http_revoked_add(http_users_db_t *d, const char *jti, uint64_t expires)
{
    size_t n = jti ? strlen(jti) : 0;
    if (n == 0 || n > RPC_MAX_JTI || expires == 0) return -EINVAL;
    if (begin(d) < 0) return -EIO;
    sqlite3_stmt *st = d->st[S_REV_GET];
    sqlite3_bind_text(st, 1, jti, (int)n, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    uint64_t had = rc == SQLITE_ROW ? col_u64(st, 0) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return commit(d, -EIO);
    bool known = rc == SQLITE_ROW;
    if (known && had >= expires) return commit(d, 0);
    if (!known) {
        int c = count_rows(d, S_REV_COUNT);
        if (c < 0 || c >= HTTP_MAX_REVOKED) return commit(d, c < 0 ? c : -ENOSPC);
    }
    st = d->st[S_REV_PUT];
    sqlite3_bind_text(st, 1, jti, (int)n, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)expires);
    sqlite3_bind_int(st, 3, (int)http_sync_bucket(jti, n));
    rc = step_done(d, S_REV_PUT);
    return commit(d, rc < 0 ? rc : known ? 0 : 1);
}

int http_revoked_foreach(http_users_db_t *d, int bucket,
                         void (*cb)(void *arg, const http_revoked_t *r), void *arg)
{
    sqlite3_stmt *st = d->st[S_REV_ALL];
    sqlite3_bind_int(st, 1, bucket < 0 ? -1 : bucket);
    int n = 0, rc;
    http_revoked_t r;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        text_to(st, 0, r.jti, sizeof(r.jti));
        r.expires = col_u64(st, 1);
        cb(arg, &r);
        n++;
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? n : -EIO;
}

int http_users_db_prune(http_users_db_t *d, uint64_t now_s)
{
    if (begin(d) < 0) return -EIO;
    sqlite3_bind_int64(d->st[S_PRUNE_FAM], 1, (sqlite3_int64)now_s);
    int rc = step_done(d, S_PRUNE_FAM);
    int n = rc == 0 ? sqlite3_changes(d->db) : 0;
    sqlite3_bind_int64(d->st[S_PRUNE_REV], 1, (sqlite3_int64)now_s);
    if (rc == 0 && (rc = step_done(d, S_PRUNE_REV)) == 0) n += sqlite3_changes(d->db);
    return commit(d, rc < 0 ? rc : n);
}
