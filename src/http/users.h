/* users.h: users, login sessions and revoked tokens of the HTTP API (CONTRACT sections 5 and 6).
 *
 * users_db.c keeps them in the node's SQLite database (tables of store.c's migration 3 -> 4) and
 * holds the rules that do not need an event loop: name and password rules, Argon2id hashing,
 * last-writer-wins merges for replication, the refresh-token state machine (rotation, reuse
 * detection) and its token codec. login.c holds the brute-force limiter (a pure bounded struct)
 * and the login endpoints; users.c the part's start/stop and the in-memory revocation view;
 * users_sync.c replication between nodes.
 *
 * A login session is a refresh-token FAMILY: one row holding the live token's number (`counter`)
 * and hash. A refresh token is "p2r1." + base64url(family 16 | counter 8 | nonce 16 | mac 16),
 * the mac a keyed BLAKE2b (key derived from the network's auth secret) over what precedes it, so
 * a node can tell a genuine earlier token of a family (counter below the live one: a reused,
 * already rotated token, which revokes the family) from a forged one without storing every token.
 *
 * Times: `now_ms` / `now_s` are wall-clock values passed in; nothing here reads a clock. */
#ifndef P2P_HTTP_USERS_H
#define P2P_HTTP_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sodium.h>
#include <sqlite3.h>

#include "http/http-limits.h"
#include "rpc/rpc.h"

#define HTTP_PWHASH_STRBYTES   crypto_pwhash_STRBYTES /* an Argon2id hash string, NUL included */
#define HTTP_FAMILY_ID_LEN     16
#define HTTP_TOKEN_HASH_LEN    32
#define HTTP_REFRESH_KEY_LEN   32
#define HTTP_REFRESH_RAW_LEN   57       /* version 1 | family 16 | counter 8 | nonce 16 | mac 16 */
#define HTTP_REFRESH_TOKEN_LEN (5 + 76) /* "p2r1." + base64url of the raw bytes, no padding */
#define HTTP_SYNC_BUCKETS      64       /* anti-entropy buckets per kind of row */

/* One user row. deleted rows are tombstones: role NONE, hash "". */
typedef struct http_user {
    char name[HTTP_MAX_USERNAME + 1];
    rpc_role_t role;
    char hash[HTTP_PWHASH_STRBYTES];
    uint64_t version;      /* orders changes network-wide (last writer wins) */
    uint64_t updated_ms;   /* wall clock of the change */
    uint64_t tokens_after; /* wall s: access tokens of this user issued before are refused */
    bool disabled;
    bool deleted;
} http_user_t;

/* One login session (refresh-token family). */
typedef struct http_family {
    uint8_t id[HTTP_FAMILY_ID_LEN];
    char user[HTTP_MAX_USERNAME + 1];
    uint64_t counter;                        /* number of the live refresh token */
    uint8_t token_hash[HTTP_TOKEN_HASH_LEN]; /* BLAKE2b-256 of the live refresh token */
    uint64_t created;                        /* wall s of the login */
    uint64_t expires;                        /* wall s: the live token's end */
    bool revoked;
} http_family_t;

/* One logged-out access token. */
typedef struct http_revoked {
    char jti[RPC_MAX_JTI + 1];
    uint64_t expires; /* wall s: after this the token is refused anyway */
} http_revoked_t;

/* --- rules ------------------------------------------------------------------------------- */

/* True when name is 1..HTTP_MAX_USERNAME characters of [A-Za-z0-9._-], not "." or "..". */
bool http_username_valid(const char *name, size_t len);

/* The Argon2id limits new hashes use: HTTP_PWHASH_OPSLIMIT passes, and the larger of
 * HTTP_PWHASH_MEMLIMIT and libsodium's INTERACTIVE memory. */
unsigned long long http_pwhash_opslimit(void);
size_t http_pwhash_memlimit(void);

/* Hashes a password (1..HTTP_MAX_PASSWORD bytes) into out with crypto_pwhash_str_alg (Argon2id,
 * the limits above). Slow on purpose: run it off the event loop. Returns 0, -EINVAL for a bad
 * length, or -ENOMEM when the memory cannot be had. */
int http_password_hash(const char *pw, size_t len, char out[HTTP_PWHASH_STRBYTES]);

/* Checks a password against a hash string (NUL-terminated). Slow on purpose. Returns 0 when it
 * matches, -EACCES when it does not (or hash is not a valid hash string), -EINVAL for a bad
 * password length. */
int http_password_verify(const char *hash, const char *pw, size_t len);

/* True when hash (NUL-terminated) was made with other limits than the current ones (rehash after
 * a login). */
bool http_password_needs_rehash(const char *hash);

/* The anti-entropy bucket of a key (first byte of its BLAKE2b hash, modulo HTTP_SYNC_BUCKETS). */
unsigned http_sync_bucket(const void *key, size_t len);

/* Total order of two versions of the same row for last-writer-wins: > 0 when a wins over b. Users:
 * version, then deleted, then the rest of the row's bytes, so every node picks the same. */
int http_user_cmp(const http_user_t *a, const http_user_t *b);

/* --- the database --------------------------------------------------------------------------- */

typedef struct http_users_db http_users_db_t;

/* Prepares the statements on db (node.db, already migrated by node_store_open). db is borrowed
 * and must outlive the result. Returns 0 and *out, -EPROTO when the tables are missing (an old
 * schema), -ENOMEM or -EIO. */
int http_users_db_open(sqlite3 *db, http_users_db_t **out);

/* Finalises the statements. Accepts NULL. */
void http_users_db_close(http_users_db_t *d);

/* Changes made through another connection since the last call (PRAGMA data_version): true when
 * something else (p2p-node user add) wrote to the database. The first call returns true. */
bool http_users_db_changed_elsewhere(http_users_db_t *d);

/* Reads user `name` (tombstones too). Returns 0, -ENOENT or -EIO. */
int http_user_get(http_users_db_t *d, const char *name, http_user_t *out);

/* Sets user name (new or replacing) with role and password hash, as a local change: version =
 * max(now_ms, previous version + 1); when the user existed (tombstone included) tokens_after =
 * now_ms / 1000, so tokens issued before the change stop working. Refuses to create row number
 * HTTP_MAX_USERS + 1. Returns 0 and the row written in *out (may be NULL), -EINVAL (bad name,
 * role or hash), -ENOSPC or -EIO. */
int http_user_set(http_users_db_t *d, const char *name, rpc_role_t role, const char *hash,
                  uint64_t now_ms, http_user_t *out);

/* Removes a live user as a local change: the row becomes a tombstone (version bumped,
 * tokens_after = now), and every session of the user is revoked. Returns 0 and the tombstone in
 * *out (may be NULL), -ENOENT when there is no live user of that name, or -EIO. */
int http_user_remove(http_users_db_t *d, const char *name, uint64_t now_ms, http_user_t *out);

/* Replaces the password hash of a live user without ending its sessions (a rehash with newer
 * limits after a successful login). Bumps version. Returns 0, -ENOENT or -EIO. */
int http_user_rehash(http_users_db_t *d, const char *name, const char *hash, uint64_t now_ms,
                     http_user_t *out);

/* Merges a row received from another node (last writer wins by http_user_cmp). A tombstone
 * revokes the user's sessions here too. Returns 1 when the row was taken, 0 when ours wins or is
 * the same, -EINVAL for a malformed row, -ENOSPC (table full), -EIO. */
int http_user_merge(http_users_db_t *d, const http_user_t *u);

/* Calls cb for every user row (tombstones when with_deleted), sorted by name; bucket < 0 means
 * every bucket. Returns the count or -EIO. */
int http_user_foreach(http_users_db_t *d, bool with_deleted, int bucket,
                      void (*cb)(void *arg, const http_user_t *u), void *arg);

/* --- refresh tokens ----------------------------------------------------------------------- */

/* Derives the refresh-token MAC key from the auth secret. */
void http_refresh_key(const uint8_t *secret, size_t secret_len, uint8_t key[HTTP_REFRESH_KEY_LEN]);

/* Writes the token text of (family, counter, nonce) into out (NUL-terminated). */
void http_refresh_encode(const uint8_t key[HTTP_REFRESH_KEY_LEN],
                         const uint8_t family[HTTP_FAMILY_ID_LEN], uint64_t counter,
                         const uint8_t nonce[16], char out[HTTP_REFRESH_TOKEN_LEN + 1]);

/* Parses a token and checks its MAC against key, then prev_key (may be NULL: no rotation).
 * Returns 0 with family and counter, or -EINVAL (not a refresh token) / -EACCES (bad MAC). */
int http_refresh_decode(const uint8_t key[HTTP_REFRESH_KEY_LEN], const uint8_t *prev_key,
                        const char *tok, size_t len, uint8_t family[HTTP_FAMILY_ID_LEN],
                        uint64_t *counter);

/* BLAKE2b-256 of a token text (what the database keeps). */
void http_refresh_hash(const char *tok, size_t len, uint8_t out[HTTP_TOKEN_HASH_LEN]);

/* Starts a login session of user: a new family with a random id and token 0 valid for ttl_s
 * (capped by HTTP_REFRESH_MAX_AGE_S). When the user already has HTTP_MAX_FAMILIES_PER_USER live
 * sessions the oldest is revoked. Returns 0 with the token text in tok and the row in *out (may
 * be NULL), -ENOSPC when HTTP_MAX_FAMILIES rows exist, -EIO. */
int http_family_start(http_users_db_t *d, const uint8_t key[HTTP_REFRESH_KEY_LEN], const char *user,
                      uint64_t now_s, uint64_t ttl_s, char tok[HTTP_REFRESH_TOKEN_LEN + 1],
                      http_family_t *out);

/* What presenting a refresh token did. */
typedef enum http_refresh_outcome {
    HTTP_REFRESH_ROTATED = 0, /* new token in tok, the family's row in *out */
    HTTP_REFRESH_INVALID,     /* not a refresh token of this network */
    HTTP_REFRESH_UNKNOWN,     /* no such session (never here, or pruned after its end) */
    HTTP_REFRESH_EXPIRED,     /* the session ended */
    HTTP_REFRESH_REVOKED,     /* the session was revoked before (logout, reuse, user removed) */
    HTTP_REFRESH_REUSED,      /* an already rotated token: the session is revoked now */
} http_refresh_outcome_t;

/* Presents a refresh token: on the live one (or a later one another node issued and this one has
 * not heard of yet) rotates to a new token valid for ttl_s more (within the session's maximum
 * age); on an earlier one revokes the family (reuse). *out receives the family's row whatever
 * the outcome when it exists (may be NULL). Returns the outcome (>= 0) or -EIO. */
int http_family_refresh(http_users_db_t *d, const uint8_t key[HTTP_REFRESH_KEY_LEN],
                        const uint8_t *prev_key, const char *tok, size_t len, uint64_t now_s,
                        uint64_t ttl_s, char new_tok[HTTP_REFRESH_TOKEN_LEN + 1],
                        http_family_t *out);

/* Reads a family. Returns 0, -ENOENT or -EIO. */
int http_family_get(http_users_db_t *d, const uint8_t id[HTTP_FAMILY_ID_LEN], http_family_t *out);

/* Revokes one family (logout with its refresh token). Returns 1 when it changed, 0 when it was
 * revoked already, -ENOENT or -EIO. The row as written goes to *out (may be NULL). */
int http_family_revoke(http_users_db_t *d, const uint8_t id[HTTP_FAMILY_ID_LEN],
                       http_family_t *out);

/* Merges a family row from another node: revoked is sticky; the higher counter wins; the same
 * counter with another token hash means two nodes rotated the same token (a reuse): the family is
 * revoked and the larger hash kept, so every node ends with the same row. Rows already expired at
 * now_s are ignored. Returns 1 when our row changed, 0 when not, -EINVAL, -ENOSPC, -EIO. */
int http_family_merge(http_users_db_t *d, const http_family_t *f, uint64_t now_s);

/* Calls cb for every family row of bucket (< 0: all), sorted by id. Returns the count or -EIO. */
int http_family_foreach(http_users_db_t *d, int bucket,
                        void (*cb)(void *arg, const http_family_t *f), void *arg);

/* --- revoked access tokens ---------------------------------------------------------------- */

/* Records a logged-out access token until expires (wall s). Returns 1 when new, 0 when known
 * already (the later expiry is kept), -EINVAL (empty or long jti), -ENOSPC (HTTP_MAX_REVOKED
 * rows), -EIO. */
int http_revoked_add(http_users_db_t *d, const char *jti, uint64_t expires);

/* Calls cb for every revoked token of bucket (< 0: all), sorted by jti. Returns the count or
 * -EIO. */
int http_revoked_foreach(http_users_db_t *d, int bucket,
                         void (*cb)(void *arg, const http_revoked_t *r), void *arg);

/* Deletes sessions and revoked tokens whose end is before now_s. Returns how many rows went, or
 * -EIO. */
int http_users_db_prune(http_users_db_t *d, uint64_t now_s);

/* --- brute-force limiter (login.c; pure, bounded) ----------------------------------------- */

/* Failed logins per key (a client address, or a user name) as a leaky bucket: each failure adds
 * one, the level drains at max_failures per window_s, a key at max_failures is refused until it
 * drains below. At most HTTP_LOGIN_TRACKED keys; a new key past that replaces the one with the
 * lowest level. Keys are kept as BLAKE2b-128 hashes. */
typedef struct http_brute_entry {
    uint8_t key[16];
    double level;
    uint64_t at_ms; /* when level was computed */
    bool used;
} http_brute_entry_t;

typedef struct http_brute {
    http_brute_entry_t e[HTTP_LOGIN_TRACKED];
    double max_failures;
    double rate_per_ms; /* drain */
} http_brute_t;

/* Sets up an empty limiter: max_failures per window_s (0, 0: HTTP_LOGIN_MAX_FAILURES per
 * HTTP_LOGIN_WINDOW_S). */
void http_brute_init(http_brute_t *b, unsigned max_failures, unsigned window_s);

/* 0 when key may try now, else the seconds to wait (>= 1) before it may. */
unsigned http_brute_check(const http_brute_t *b, const char *key, size_t len, uint64_t now_ms);

/* Counts one failure of key (also used to charge an attempt before its outcome is known). */
void http_brute_fail(http_brute_t *b, const char *key, size_t len, uint64_t now_ms);

/* Takes one charged failure back (the attempt succeeded), never below zero. */
void http_brute_refund(http_brute_t *b, const char *key, size_t len, uint64_t now_ms);

/* Forgets key (a user logged in: its name is not under attack). */
void http_brute_reset(http_brute_t *b, const char *key, size_t len);

#endif
