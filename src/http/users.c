/* users.c: the users part of the HTTP API (CONTRACT section 6, docs/auth.md): start and stop,
 * the revocation hook every door consults (node->token_revoked), POST /api/auth/refresh
 * (rotation; a reused token revokes its session), POST /api/auth/logout (the access token's jti
 * revoked until it expires, the session of a given refresh token revoked), and the timers: the
 * tick watches node.db for `p2p-node user` changes, prunes ended rows and runs anti-entropy; the
 * push timer sends changes (users_peer.c). The login endpoint is in login_http.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "http/users-internal.h"
#include "node/log.h"
#include "rpc/rpc-internal.h"

/* --- answers ------------------------------------------------------------------------------- */

static void no_store(http_exchange_t *x)
{
    http_add_header(x, "Cache-Control", "no-store");
}

/* A 401 with the contract's error body. */
static void unauthenticated(http_exchange_t *x, const char *why)
{
    no_store(x);
    http_respond_error(x, 401, RPC_ERR_UNAUTHENTICATED, why, NULL);
}

json_t *users_body_object(http_exchange_t *x, bool empty_ok)
{
    const http_request_t *r = http_exchange_request(x);
    if (r->body_len > HTTP_AUTH_MAX_BODY) {
        http_respond_error(x, 413, RPC_ERR_RESOURCE_EXHAUSTED, "request body too large", NULL);
        return NULL;
    }
    if (r->body_len == 0 && empty_ok) return json_object();
    json_error_t e;
    json_t *j = json_loadb((const char *)r->body, r->body_len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        char msg[200];
        snprintf(msg, sizeof(msg), "bad JSON: %s", e.text);
        http_respond_error(x, 400, RPC_ERR_PARSE, msg, NULL);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        http_respond_error(x, 400, RPC_ERR_INVALID_REQUEST, "the body must be a JSON object", NULL);
        return NULL;
    }
    return j;
}

/* Lifetime of the access tokens this node mints, in seconds (TOKEN_EXPIRE_MINUTES). */
static uint64_t access_ttl(const node_t *node)
{
    int minutes = node->cfg.token_expire_minutes > 0 ? node->cfg.token_expire_minutes : 60;
    return (uint64_t)minutes * 60;
}

/* Ends every access token minted for session f (its marker, kept as long as the newest of them
 * can live, replicated like a logout). Returns false when the marker could not be stored (logged:
 * the session itself is ended already, its access tokens then live until they expire). */
static bool revoke_session_tokens(http_users_t *u, const http_family_t *f, uint64_t now_s)
{
    http_revoked_t r;
    users_session_marker(f->id, r.jti);
    r.expires = now_s + access_ttl(u->node) + RPC_JWT_LEEWAY_S;
    int a = http_revoked_add(u->db, r.jti, r.expires);
    if (a < 0) {
        node_log(u->node->log, NODE_LOG_WARNING,
                 "cannot revoke the access tokens of an ended session", "user", f->user, "err",
                 a == -ENOSPC ? "too many revoked tokens" : "database error", NULL);
        return false;
    }
    users_sync_changed_revoked(u, &r);
    return true;
}

void users_answer_pair(http_users_t *u, http_exchange_t *x, const char *user, rpc_role_t role,
                       const char *refresh, const http_family_t *f, uint64_t now_s)
{
    node_t *node = u->node;
    rpc_auth_config_t auth;
    node_auth_config(node, &auth);
    uint64_t ttl = access_ttl(node);
    char *access = NULL, session[2 * HTTP_FAMILY_ID_LEN + 1];
    p2p_hex_encode(session, f->id, HTTP_FAMILY_ID_LEN); /* revoking f ends this token too */
    if (rpc_jwt_mint_session(node->auth_secret, node->auth_secret_len, rpc_role_name(role), user,
                             auth.audience, ttl, now_s, session, &access) < 0) {
        http_respond_error(x, 500, RPC_ERR_INTERNAL, "cannot mint a token", NULL);
        return;
    }
    json_t *j = json_pack(
        "{s:s,s:s,s:s,s:I,s:I,s:s}", "access_token", access, "refresh_token", refresh, "token_type",
        "Bearer", "expires_in", (json_int_t)ttl, "refresh_expires_in",
        (json_int_t)(f->expires > now_s ? f->expires - now_s : 0), "role", rpc_role_name(role));
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    sodium_memzero(access, strlen(access));
    free(access);
    no_store(x);
    http_api_json(x, 200, text);
}

/* A string member of a request object, or NULL after answering 400 naming it. */
static json_t *str_member(http_exchange_t *x, json_t *obj, const char *name, bool required)
{
    json_t *v = json_object_get(obj, name);
    if ((!v && !required) || json_is_string(v)) return v;
    char msg[80];
    snprintf(msg, sizeof(msg), "%s must be a string", name);
    http_respond_error(x, 400, RPC_ERR_INVALID_PARAMS, msg, name);
    return NULL;
}

/* --- refresh ------------------------------------------------------------------------------- */

static const char *refresh_why(int outcome)
{
    switch (outcome) {
    case HTTP_REFRESH_INVALID:
        return "not a refresh token of this network";
    case HTTP_REFRESH_UNKNOWN:
        return "unknown session";
    case HTTP_REFRESH_EXPIRED:
        return "session expired";
    case HTTP_REFRESH_REVOKED:
        return "session revoked";
    case HTTP_REFRESH_REUSED:
        return "refresh token already used: the session is revoked";
    default:
        return "bad refresh token";
    }
}

void http_users_refresh(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    (void)who;
    http_users_t *u = api->users;
    if (!u || u->stopping) {
        http_respond_error(x, 503, RPC_ERR_UNAVAILABLE, "login is not available", NULL);
        return;
    }
    json_t *j = users_body_object(x, false);
    if (!j) return;
    json_t *t = str_member(x, j, "refresh_token", true);
    if (!t) {
        json_decref(j);
        return;
    }
    uint64_t now_s = p2p_wall_ms() / 1000;
    char tok[HTTP_REFRESH_TOKEN_LEN + 1];
    http_family_t f;
    int rc = http_family_refresh(u->db, u->refresh_key, u->has_prev ? u->refresh_prev : NULL,
                                 json_string_value(t), json_string_length(t), now_s,
                                 HTTP_REFRESH_TTL_S, tok, &f);
    json_decref(j);
    if (rc < 0) {
        http_respond_error(x, 500, RPC_ERR_INTERNAL, "database error", NULL);
        return;
    }
    if (rc == HTTP_REFRESH_REUSED) {
        users_sync_changed_family(u, &f);
        revoke_session_tokens(u, &f, now_s);
        node_log(u->node->log, NODE_LOG_WARNING, "refresh token reused: session revoked", "user",
                 f.user, "client", http_exchange_request(x)->client_ip, NULL);
    }
    if (rc != HTTP_REFRESH_ROTATED) {
        unauthenticated(x, refresh_why(rc));
        return;
    }
    http_user_t usr;
    if (http_user_get(u->db, f.user, &usr) < 0 || usr.deleted || usr.disabled) {
        if (http_family_revoke(u->db, f.id, &f) == 1) {
            users_sync_changed_family(u, &f);
            revoke_session_tokens(u, &f, now_s);
        }
        unauthenticated(x, "the session's user no longer exists");
        return;
    }
    users_sync_changed_family(u, &f);
    users_answer_pair(u, x, f.user, usr.role, tok, &f, now_s);
    sodium_memzero(tok, sizeof(tok));
}

/* --- logout -------------------------------------------------------------------------------- */

/* Checks the bearer token of a logout: every check but revocation (logging out twice is not an
 * error). Returns 0 and *p, or answers x and returns -1. */
static int logout_verify(http_users_t *u, http_exchange_t *x, const http_caller_t *who,
                         uint64_t now_s, rpc_principal_t *p)
{
    rpc_auth_config_t auth;
    const char *why;
    node_auth_config(u->node, &auth);
    auth.is_revoked = NULL;
    if (rpc_jwt_verify(&auth, who->token, who->token_len, now_s, p, &why) < 0) {
        http_add_header(x, "WWW-Authenticate", "Bearer");
        unauthenticated(x, why);
        return -1;
    }
    return 0;
}

/* Revokes the bearer token's jti until it would expire anyway, unless it is a token of session
 * `ended` (whose entry covers it: one row, not two, per logout). Returns 1 when revoked, 0 when
 * it has no jti, or answers x and returns -1. */
static int logout_access(http_users_t *u, http_exchange_t *x, const rpc_principal_t *p,
                         const uint8_t *ended)
{
    if (!p->jti[0]) return 0;
    char mine[3 + 2 * HTTP_FAMILY_ID_LEN], theirs[sizeof(mine)];
    if (ended && users_jti_session_marker(p->jti, mine)) {
        users_session_marker(ended, theirs);
        if (strcmp(mine, theirs) == 0) return 1;
    }
    http_revoked_t r;
    snprintf(r.jti, sizeof(r.jti), "%s", p->jti);
    r.expires = p->exp + RPC_JWT_LEEWAY_S; /* the token is accepted until then */
    int a = http_revoked_add(u->db, r.jti, r.expires);
    if (a < 0) {
        if (a == -ENOSPC)
            http_respond_error(x, 503, RPC_ERR_RESOURCE_EXHAUSTED, "too many revoked tokens", NULL);
        else
            http_respond_error(x, 500, RPC_ERR_INTERNAL, "database error", NULL);
        return -1;
    }
    users_sync_changed_revoked(u, &r);
    return 1;
}

/* Revokes the session of a refresh token; *marked tells that ended[] holds its id and its
 * access tokens' entry was added now. Returns 1 when it is revoked (now or before), 0 when this
 * node does not know it, or answers x and returns -1. */
static int logout_session(http_users_t *u, http_exchange_t *x, json_t *t, uint64_t now_s,
                          uint8_t ended[HTTP_FAMILY_ID_LEN], bool *marked)
{
    uint64_t counter;
    *marked = false;
    if (http_refresh_decode(u->refresh_key, u->has_prev ? u->refresh_prev : NULL,
                            json_string_value(t), json_string_length(t), ended, &counter) < 0) {
        unauthenticated(x, refresh_why(HTTP_REFRESH_INVALID));
        return -1;
    }
    http_family_t f;
    int r = http_family_revoke(u->db, ended, &f);
    if (r == -ENOENT) return 0;
    if (r < 0) {
        http_respond_error(x, 500, RPC_ERR_INTERNAL, "database error", NULL);
        return -1;
    }
    if (r == 1) {
        users_sync_changed_family(u, &f);
        *marked = revoke_session_tokens(u, &f, now_s);
    }
    return 1;
}

void http_users_logout(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    http_users_t *u = api->users;
    if (!u || u->stopping) {
        http_respond_error(x, 503, RPC_ERR_UNAVAILABLE, "login is not available", NULL);
        return;
    }
    json_t *j = users_body_object(x, true);
    if (!j) return;
    json_t *t = json_object_get(j, "refresh_token");
    if (t && !str_member(x, j, "refresh_token", false)) {
        json_decref(j);
        return;
    }
    if (!who->token && !t) {
        json_decref(j);
        http_add_header(x, "WWW-Authenticate", "Bearer");
        unauthenticated(x, "no bearer token");
        return;
    }
    uint64_t now_s = p2p_wall_ms() / 1000;
    int access = 0, session = 0;
    rpc_principal_t p;
    uint8_t ended[HTTP_FAMILY_ID_LEN];
    bool marked = false;
    if (who->token && logout_verify(u, x, who, now_s, &p) < 0) goto done;
    if (t && (session = logout_session(u, x, t, now_s, ended, &marked)) < 0) goto done;
    if (who->token && (access = logout_access(u, x, &p, marked ? ended : NULL)) < 0) goto done;
    json_t *res =
        json_pack("{s:b,s:b}", "access_token_revoked", access > 0, "session_revoked", session > 0);
    char *text = res ? json_dumps(res, JSON_COMPACT) : NULL;
    json_decref(res);
    no_store(x);
    http_api_json(x, 200, text);
done:
    json_decref(j);
}

/* --- the timers ---------------------------------------------------------------------------- */

/* `p2p-node user` wrote node.db: the rows that changed go to the view and to the network. */
static void changed_on_disk(http_users_t *u)
{
    users_batch_t changed;
    users_batch_init(&changed);
    int n = users_view_reload_users(u->view, u->db, &changed);
    for (size_t i = 0; i < changed.n_users; i++)
        users_sync_changed_user(u, &changed.users[i]);
    users_batch_free(&changed);
    u->digest_dirty = true;
    if (n > 0) {
        char s[16];
        snprintf(s, sizeof(s), "%d", n);
        node_log(u->node->log, NODE_LOG_INFO, "users changed in node.db", "#users", s, NULL);
    }
}

static void prune(http_users_t *u)
{
    uint64_t now_s = p2p_wall_ms() / 1000;
    if (http_users_db_prune(u->db, now_s) > 0) u->digest_dirty = true;
    users_view_reload_revoked(u->view, u->db, now_s);
}

static void tick_cb(uv_timer_t *t)
{
    http_users_t *u = t->data;
    if (u->stopping) return;
    uint64_t now = uv_now(u->node->loop);
    if (http_users_db_changed_elsewhere(u->db)) changed_on_disk(u);
    if (now >= u->next_prune_ms) {
        prune(u);
        u->next_prune_ms = now + HTTP_USERS_PRUNE_MS;
    }
    if (now >= u->next_sync_ms) {
        users_sync_round(u);
        u->next_sync_ms = now + HTTP_SYNC_INTERVAL_MS;
    }
}

/* --- start and stop ------------------------------------------------------------------------ */

static void free_users(http_users_t *u)
{
    http_users_db_close(u->db);
    users_view_free(u->view);
    users_batch_free(&u->out_local);
    users_batch_free(&u->out_relay);
    free(u->brute_ip);
    free(u->brute_user);
    sodium_memzero(u->refresh_key, sizeof(u->refresh_key));
    sodium_memzero(u->refresh_prev, sizeof(u->refresh_prev));
    free(u);
}

void users_release(http_users_t *u)
{
    if (--u->holds > 0 || !u->stopping) return;
    http_api_t *api = u->api;
    free_users(u);
    http_api_part_done(api);
}

static void timer_closed(uv_handle_t *h)
{
    users_release(h->data);
}

int http_users_start(http_api_t *api, char *err, size_t errlen)
{
    node_t *node = api->node;
    http_users_t *u = calloc(1, sizeof(*u));
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    u->api = api;
    u->node = node;
    users_batch_init(&u->out_local);
    users_batch_init(&u->out_relay);
    int rc = http_users_db_open(node->db, &u->db);
    if (rc < 0) {
        snprintf(err, errlen, "cannot use the users tables of node.db: %s", strerror(-rc));
        goto fail;
    }
    uint64_t now_s = p2p_wall_ms() / 1000;
    rc = -ENOMEM;
    if (!(u->view = users_view_new())) goto oom;
    if ((rc = users_view_reload_users(u->view, u->db, NULL)) < 0 ||
        (rc = users_view_reload_revoked(u->view, u->db, now_s)) < 0) {
        snprintf(err, errlen, "cannot read the users of node.db: %s", strerror(-rc));
        goto fail;
    }
    http_users_db_changed_elsewhere(u->db); /* what is there now is in the view */
    http_refresh_key(node->auth_secret, node->auth_secret_len, u->refresh_key);
    if (node->auth_prev_len) {
        http_refresh_key(node->auth_prev, node->auth_prev_len, u->refresh_prev);
        u->has_prev = true;
    }
    if ((rc = users_login_start(u)) < 0) goto oom;
    if ((rc = users_sync_register(node)) < 0) {
        snprintf(err, errlen, "cannot register node.auth_push/auth_sync: %s", strerror(-rc));
        goto fail;
    }
    u->digest_dirty = true;
    uv_timer_init(node->loop, &u->tick);
    uv_timer_init(node->loop, &u->push_timer);
    u->tick.data = u->push_timer.data = u;
    u->holds = 2; /* the two timers */
    uint64_t now = uv_now(node->loop);
    u->next_sync_ms = now + HTTP_SYNC_POLL_MS; /* a first round as soon as there are members */
    u->next_prune_ms = now;
    uv_timer_start(&u->tick, tick_cb, HTTP_SYNC_POLL_MS, HTTP_SYNC_POLL_MS);
    node->token_revoked = users_token_revoked;
    node->token_revoked_ctx = u;
    api->users = u;
    return 0;
oom:
    snprintf(err, errlen, "out of memory");
fail:
    free_users(u);
    return rc < 0 ? rc : -EIO;
}

void http_users_stop(http_api_t *api)
{
    http_users_t *u = api ? api->users : NULL;
    if (!u) return;
    api->users = NULL;
    users_sync_flush(u); /* a logout just before the stop still reaches the network */
    if (users_of(u->node) == u) {
        u->node->token_revoked = NULL;
        u->node->token_revoked_ctx = NULL;
    }
    u->stopping = true;
    users_login_stop(u);
    http_users_db_close(u->db);
    u->db = NULL;
    api->pending_stops++;
    uv_close((uv_handle_t *)&u->tick, timer_closed);
    uv_close((uv_handle_t *)&u->push_timer, timer_closed);
}
