/* users-internal.h: what the users part of the HTTP API shares between its files (see users.h):
 *   users.c       start/stop, the revocation hook, refresh and logout, the tick and push timers
 *   login_http.c  POST /api/auth/login: Argon2id on the thread pool, brute-force limits
 *   users_view.c  the in-memory revocation view (jti set, per-user tokens_after), dummy hash
 *   users_sync.c  replication rows: codec, bucket digests, merges (pure)
 *   users_peer.c  replication over the peer channel: pushes, anti-entropy, node.auth_*
 * Not for other modules. */
#ifndef P2P_HTTP_USERS_INTERNAL_H
#define P2P_HTTP_USERS_INTERNAL_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http/api.h"
#include "http/users.h"

#define HTTP_SYNC_KINDS      3 /* users, sessions (families), revoked access tokens */
#define HTTP_SYNC_HASH_LEN   16
#define HTTP_SYNC_DIGEST_LEN (HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS * HTTP_SYNC_HASH_LEN)
enum { USERS_K_USER = 0, USERS_K_FAMILY = 1, USERS_K_REVOKED = 2 };

/* --- rows in flight (users_sync.c) -------------------------------------------------------- */

/* A bounded set of rows: at most HTTP_SYNC_MAX_ROWS of all kinds together. */
typedef struct users_batch {
    http_user_t *users;
    http_family_t *fams;
    http_revoked_t *revs;
    size_t n_users, n_fams, n_revs;
    size_t cap_users, cap_fams, cap_revs;
} users_batch_t;

/* What applying a batch did. */
typedef struct users_sync_stats {
    uint64_t taken;    /* rows that changed our database */
    uint64_t stale;    /* rows ours already matched or beat */
    uint64_t rejected; /* malformed rows, or rows past a table's limit */
} users_sync_stats_t;

void users_batch_init(users_batch_t *b);
void users_batch_free(users_batch_t *b); /* and leaves it empty (reusable) */
size_t users_batch_rows(const users_batch_t *b);

/* Append one row (copied). Return 0, -ENOSPC when the batch holds HTTP_SYNC_MAX_ROWS rows, or
 * -ENOMEM. */
int users_batch_add_user(users_batch_t *b, const http_user_t *u);
int users_batch_add_family(users_batch_t *b, const http_family_t *f);
int users_batch_add_revoked(users_batch_t *b, const http_revoked_t *r);

/* Packs the three members "users", "families", "revoked" (arrays of row arrays, see
 * docs/auth.md) into pk; the caller packs the map header counting them. */
void users_sync_pack_rows(msgpack_packer *pk, const users_batch_t *b);

/* Merges received rows (each argument an array object or NULL) into db: users by last writer
 * wins, sessions by http_family_merge, revoked tokens not yet expired at now_s. Counts every row
 * in *st (may be NULL) and copies the rows that changed db into news (may be NULL; rows past its
 * room are dropped from it, not from db). More than HTTP_SYNC_MAX_ROWS rows in all: -E2BIG and
 * nothing merged. Returns the rows taken, -EINVAL when an argument is not an array, or -EIO. */
int users_sync_apply(http_users_db_t *db, const msgpack_object *users, const msgpack_object *fams,
                     const msgpack_object *revs, uint64_t now_s, users_batch_t *news,
                     users_sync_stats_t *st);

/* The digest of db: for each kind and bucket, BLAKE2b-128 over the bucket's rows in key order
 * (all zeros for an empty bucket). Returns 0, -ENOMEM or -EIO. */
int users_sync_digest(http_users_db_t *db, uint8_t out[HTTP_SYNC_DIGEST_LEN]);

/* Marks in diff[kind * HTTP_SYNC_BUCKETS + bucket] the buckets where a and b differ. Returns how
 * many do. */
int users_sync_diff(const uint8_t a[HTTP_SYNC_DIGEST_LEN], const uint8_t b[HTTP_SYNC_DIGEST_LEN],
                    bool diff[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS]);

/* Adds the rows of the marked buckets to b until it is full: users first, then revoked tokens,
 * then sessions; buckets from a start chosen by seed, and within a bucket from a row chosen by
 * seed too, so that successive rounds with different seeds cover buckets too big for one
 * message. Returns the rows added, or -EIO / -ENOMEM. */
int users_sync_collect(http_users_db_t *db, const bool diff[HTTP_SYNC_KINDS * HTTP_SYNC_BUCKETS],
                       uint32_t seed, users_batch_t *b);

/* --- the revocation view (users_view.c) ---------------------------------------------------- */

typedef struct users_view users_view_t;

/* One user as the view keeps it. */
typedef struct users_view_user {
    char name[HTTP_MAX_USERNAME + 1];
    uint64_t version, tokens_after;
    rpc_role_t role;
    bool disabled, deleted;
} users_view_user_t;

/* An empty view (NULL on no memory). */
users_view_t *users_view_new(void);
void users_view_free(users_view_t *v); /* NULL ok */

/* Inserts or replaces the user row u (by name). Returns 0, -ENOSPC past HTTP_MAX_USERS, -ENOMEM. */
int users_view_put_user(users_view_t *v, const http_user_t *u);

/* The user called name, or NULL. Valid until the next change of the view. */
const users_view_user_t *users_view_user(const users_view_t *v, const char *name);

/* Re-reads every user row of db (tombstones included). Rows that differ from the view's (version
 * or content) are copied into changed (may be NULL). Returns how many differed, or -EIO /
 * -ENOMEM (the view is then unchanged). */
int users_view_reload_users(users_view_t *v, http_users_db_t *db, users_batch_t *changed);

/* Adds a logged-out token's jti (until expires, wall s). Returns 1 when new, 0 when known (the
 * later expiry kept), -EINVAL for an empty or long jti, -ENOSPC past HTTP_MAX_REVOKED, -ENOMEM. */
int users_view_add_revoked(users_view_t *v, const char *jti, uint64_t expires);

/* Rebuilds the jti set from db, leaving out tokens expired at now_s. Returns the count kept, or
 * -EIO / -ENOMEM (the set is then unchanged). */
int users_view_reload_revoked(users_view_t *v, http_users_db_t *db, uint64_t now_s);

/* Number of users (tombstones included) and of revoked jtis held. */
size_t users_view_n_users(const users_view_t *v);
size_t users_view_n_revoked(const users_view_t *v);

/* The revocation rule of every door: true when jti was logged out, when jti is a session jti
 * ("SESSION.RANDOM", rpc_jwt_mint_session) whose session's marker is held (the session was
 * revoked: users_session_marker), or sub is a user of the view that is disabled or whose
 * tokens_after is later than iat (wall s, 0 when the token had none). A sub that names no user
 * is not revoked (tokens minted with `p2p-node token`). */
bool users_view_revoked(const users_view_t *v, const char *jti, const char *sub, uint64_t iat);

/* The revoked-jti entry that ends every access token of a login session: "f." and the session's
 * id in hex (a session jti's prefix). It never equals a token's jti, which is hex or hex.hex. */
void users_session_marker(const uint8_t id[HTTP_FAMILY_ID_LEN],
                          char out[3 + 2 * HTTP_FAMILY_ID_LEN]);

/* Writes the marker of the session a session jti ("SESSION.RANDOM") belongs to; false when jti is
 * not a session jti (tokens of `p2p-node token`). */
bool users_jti_session_marker(const char *jti, char out[3 + 2 * HTTP_FAMILY_ID_LEN]);

/* Writes an Argon2id hash string with the current limits (http_pwhash_*), a random salt and a
 * random hash: verifying any password against it costs what a real one does and always fails.
 * Logins of unknown users verify against it. Returns 0 or -EINVAL. */
int users_dummy_hash(char out[HTTP_PWHASH_STRBYTES]);

/* --- the part (users.c) ------------------------------------------------------------------ */

typedef struct login_job login_job_t;

struct http_users {
    http_api_t *api;
    node_t *node;
    http_users_db_t *db;
    users_view_t *view;
    uint8_t refresh_key[HTTP_REFRESH_KEY_LEN];
    uint8_t refresh_prev[HTTP_REFRESH_KEY_LEN];
    bool has_prev;
    /* login (login_http.c) */
    http_brute_t *brute_ip, *brute_user;
    char dummy_hash[HTTP_PWHASH_STRBYTES];
    login_job_t *queue_head, *queue_tail; /* waiting for a hash slot */
    login_job_t *running_jobs;            /* on the thread pool */
    unsigned running, queued;
    /* replication (users_peer.c) */
    users_batch_t out_local; /* our own changes: pushed to up to HTTP_SYNC_PUSH_MAX nodes */
    users_batch_t out_relay; /* changes heard from peers: passed on to HTTP_SYNC_RELAY_FANOUT */
    uint8_t digest[HTTP_SYNC_DIGEST_LEN];
    bool digest_dirty;
    unsigned inflight; /* peer calls of this part not answered yet */
    uint64_t next_sync_ms, next_prune_ms;
    users_sync_stats_t sync_in; /* rows received */
    uint64_t pushes_sent, syncs_sent, sync_errors;
    /* timers; `holds` counts what must end before the struct is freed once stopping */
    uv_timer_t tick, push_timer;
    bool push_armed;
    int holds;
    bool stopping;
};

/* users_view.c: the hook node->token_revoked points to while the part runs (ctx: the part):
 * users_view_revoked on its view. */
int users_token_revoked(void *ctx, const char *jti, const char *sub, uint64_t iat);

/* users_view.c: the users part of node while it runs (node->token_revoked is the hook above),
 * else NULL: how callbacks that hold only the node (peer replies, RPC methods) find it. */
http_users_t *users_of(const node_t *node);

/* Answers x with a new token pair for user (its row `role`) and the session f: 200 with
 * {"access_token","refresh_token","token_type","expires_in","refresh_expires_in"}. */
void users_answer_pair(http_users_t *u, http_exchange_t *x, const char *user, rpc_role_t role,
                       const char *refresh, const http_family_t *f, uint64_t now_s);

/* Parses a JSON object body of at most HTTP_AUTH_MAX_BODY bytes (an empty body gives an empty
 * object when empty_ok). Returns the object (caller decrefs) or NULL after answering x (400/413).
 */
json_t *users_body_object(http_exchange_t *x, bool empty_ok);

/* users_peer.c: queue our own change, or a change heard from a peer, for pushing (the push timer
 * fires within HTTP_SYNC_PUSH_DELAY_MS; a full batch is pushed at once). Marks the digest dirty. */
void users_sync_changed_user(http_users_t *u, const http_user_t *row);
void users_sync_changed_family(http_users_t *u, const http_family_t *row);
void users_sync_changed_revoked(http_users_t *u, const http_revoked_t *row);
void users_sync_flush(http_users_t *u); /* push what is queued now (the push timer's work) */
void users_sync_round(http_users_t *u); /* one anti-entropy round (the tick's work) */

/* users_peer.c: registers node.auth_push and node.auth_sync in the node's registry (once; a
 * second node start in the same registry finds them there). Returns 0 or a negative errno. */
int users_sync_register(node_t *node);

/* login_http.c: the login part's start and stop (limiters, dummy hash; stop fails queued logins
 * and cancels running ones, whose completions still release a hold). */
int users_login_start(http_users_t *u);
void users_login_stop(http_users_t *u);

/* users.c: gives back one hold; the last one once stopping frees u. */
void users_release(http_users_t *u);

#endif
