/* login_http.c: POST /api/auth/login {"username","password"} (CONTRACT section 6, docs/auth.md).
 * The Argon2id check runs on the libuv thread pool, HTTP_LOGIN_MAX_RUNNING at once with
 * HTTP_LOGIN_MAX_QUEUED more waiting (past that: 503). Failures are limited per client address
 * and per user name (http_brute_*; 429 with Retry-After); each attempt is charged before the
 * hash and refunded when it succeeds, so parallel guesses count too. An unknown user is checked
 * against a dummy hash of the same cost, so timing does not tell which names exist. A hash made
 * with older limits is replaced after a successful login. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "http/users-internal.h"
#include "node/log.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

struct login_job {
    uv_work_t work;
    http_users_t *u;
    http_exchange_t *x;
    login_job_t *next;
    char user[HTTP_MAX_USERNAME + 1];
    char ip[64];
    char hash[HTTP_PWHASH_STRBYTES]; /* the user's, or the dummy one */
    char new_hash[HTTP_PWHASH_STRBYTES];
    char pw[HTTP_MAX_PASSWORD];
    size_t pw_len;
    bool known; /* a live, enabled user: a match logs in */
    bool rehash;
    int verify_rc;
};

int users_login_start(http_users_t *u)
{
    u->brute_ip = malloc(sizeof(*u->brute_ip));
    u->brute_user = malloc(sizeof(*u->brute_user));
    if (!u->brute_ip || !u->brute_user) return -ENOMEM;
    http_brute_init(u->brute_ip, 0, 0);
    http_brute_init(u->brute_user, 0, 0);
    return users_dummy_hash(u->dummy_hash);
}

static void job_free(login_job_t *j)
{
    sodium_memzero(j, sizeof(*j));
    free(j);
}

/* Takes back the failure charged for j (it never ran, or it succeeded). */
static void refund(http_users_t *u, const login_job_t *j)
{
    uint64_t now = p2p_mono_ms();
    http_brute_refund(u->brute_ip, j->ip, strlen(j->ip), now);
    http_brute_refund(u->brute_user, j->user, strlen(j->user), now);
}

static void busy(http_exchange_t *x, const char *why)
{
    http_add_header(x, "Retry-After", "1");
    http_respond_error(x, 503, RPC_ERR_UNAVAILABLE, why, NULL);
}

void users_login_stop(http_users_t *u)
{
    while (u->queue_head) {
        login_job_t *j = u->queue_head;
        u->queue_head = j->next;
        busy(j->x, "the node is stopping");
        job_free(j);
    }
    u->queue_tail = NULL;
    u->queued = 0;
    for (login_job_t *j = u->running_jobs; j; j = j->next)
        uv_cancel((uv_req_t *)&j->work); /* a hash already running finishes; after_work follows */
}

/* --- the thread-pool side ------------------------------------------------------------------ */

static void work_cb(uv_work_t *w)
{
    login_job_t *j = w->data;
    j->verify_rc = http_password_verify(j->hash, j->pw, j->pw_len);
    if (j->verify_rc == 0 && j->known && http_password_needs_rehash(j->hash))
        j->rehash = http_password_hash(j->pw, j->pw_len, j->new_hash) == 0;
    sodium_memzero(j->pw, sizeof(j->pw));
}

/* --- the loop side ------------------------------------------------------------------------- */

static void after_cb(uv_work_t *w, int status);

static void unlink_running(http_users_t *u, login_job_t *j)
{
    for (login_job_t **p = &u->running_jobs; *p; p = &(*p)->next)
        if (*p == j) {
            *p = j->next;
            return;
        }
}

static void start_job(http_users_t *u, login_job_t *j)
{
    j->work.data = j;
    j->next = u->running_jobs;
    u->running_jobs = j;
    u->running++;
    u->holds++;
    if (uv_queue_work(u->node->loop, &j->work, work_cb, after_cb) == 0) return;
    unlink_running(u, j);
    u->running--;
    u->holds--;
    refund(u, j);
    busy(j->x, "cannot schedule the password check");
    job_free(j);
}

/* Starts waiting jobs while there are free slots; a job whose client left is dropped. */
static void start_waiting(http_users_t *u)
{
    while (!u->stopping && u->running < HTTP_LOGIN_MAX_RUNNING && u->queue_head) {
        login_job_t *j = u->queue_head;
        if (!(u->queue_head = j->next)) u->queue_tail = NULL;
        u->queued--;
        if (http_exchange_gone(j->x)) {
            refund(u, j);
            http_respond_error(j->x, 503, RPC_ERR_UNAVAILABLE, "client gone", NULL);
            job_free(j);
            continue;
        }
        start_job(u, j);
    }
}

static void log_login(http_users_t *u, const login_job_t *j, const char *what)
{
    node_log(u->node->log, NODE_LOG_INFO, what, "user", j->user, "client", j->ip, NULL);
}

/* The hash is checked: answer. */
static void finish(http_users_t *u, login_job_t *j)
{
    http_exchange_t *x = j->x;
    http_user_t usr;
    bool ok = j->verify_rc == 0 && j->known && http_user_get(u->db, j->user, &usr) == 0 &&
              !usr.deleted && !usr.disabled && strcmp(usr.hash, j->hash) == 0;
    if (!ok) {
        log_login(u, j, "login failed");
        http_add_header(x, "Cache-Control", "no-store");
        http_respond_error(x, 401, RPC_ERR_UNAUTHENTICATED, "invalid username or password", NULL);
        return;
    }
    http_brute_refund(u->brute_ip, j->ip, strlen(j->ip), p2p_mono_ms());
    http_brute_reset(u->brute_user, j->user, strlen(j->user));
    uint64_t now_ms = p2p_wall_ms(), now_s = now_ms / 1000;
    if (j->rehash && http_user_rehash(u->db, j->user, j->new_hash, now_ms, &usr) == 0)
        users_sync_changed_user(u, &usr);
    if (http_exchange_gone(x)) { /* no session for a client that left */
        http_respond_error(x, 503, RPC_ERR_UNAVAILABLE, "client gone", NULL);
        return;
    }
    char tok[HTTP_REFRESH_TOKEN_LEN + 1];
    http_family_t f;
    int rc = http_family_start(u->db, u->refresh_key, j->user, now_s, HTTP_REFRESH_TTL_S, tok, &f);
    if (rc < 0) {
        if (rc == -ENOSPC)
            busy(x, "too many login sessions in the network");
        else
            http_respond_error(x, 500, RPC_ERR_INTERNAL, "database error", NULL);
        return;
    }
    users_sync_changed_family(u, &f);
    log_login(u, j, "login");
    users_answer_pair(u, x, j->user, usr.role, tok, &f, now_s);
    sodium_memzero(tok, sizeof(tok));
}

static void after_cb(uv_work_t *w, int status)
{
    login_job_t *j = w->data;
    http_users_t *u = j->u;
    unlink_running(u, j);
    u->running--;
    if (status == UV_ECANCELED || u->stopping)
        busy(j->x, "the node is stopping");
    else
        finish(u, j);
    job_free(j);
    start_waiting(u);
    users_release(u); /* last: may free u */
}

/* --- the handler --------------------------------------------------------------------------- */

/* 429 when the client address or the user name failed too often lately. */
static bool limited(http_users_t *u, http_exchange_t *x, const char *ip, const char *user)
{
    uint64_t now = p2p_mono_ms();
    unsigned a = http_brute_check(u->brute_ip, ip, strlen(ip), now);
    unsigned b = http_brute_check(u->brute_user, user, strlen(user), now);
    if (!a && !b) return false;
    char s[16];
    snprintf(s, sizeof(s), "%u", a > b ? a : b);
    http_add_header(x, "Retry-After", s);
    http_respond_error(x, 429, RPC_ERR_RESOURCE_EXHAUSTED,
                       a ? "too many failed logins from this address"
                         : "too many failed logins for this user",
                       NULL);
    node_log(u->node->log, NODE_LOG_WARNING, "login refused: too many failures", "user", user,
             "client", ip, NULL);
    return true;
}

/* Reads {"username","password"} into j; answers 400 and returns false when they are not fit. */
static bool read_credentials(http_exchange_t *x, login_job_t *j)
{
    json_t *body = users_body_object(x, false);
    if (!body) return false;
    json_t *n = json_object_get(body, "username"), *p = json_object_get(body, "password");
    const char *bad = !json_is_string(n) ? "username" : !json_is_string(p) ? "password" : NULL;
    const char *why = "username and password must be strings";
    if (!bad && !http_username_valid(json_string_value(n), json_string_length(n))) {
        bad = "username";
        why = "username must be 1 to " STR(HTTP_MAX_USERNAME) " characters of A-Z a-z 0-9 . _ -";
    }
    size_t plen = bad ? 0 : json_string_length(p);
    if (!bad && (plen == 0 || plen > HTTP_MAX_PASSWORD)) {
        bad = "password";
        why = "password must be 1 to " STR(HTTP_MAX_PASSWORD) " bytes";
    }
    if (!bad) {
        snprintf(j->user, sizeof(j->user), "%s", json_string_value(n));
        memcpy(j->pw, json_string_value(p), plen);
        j->pw_len = plen;
        sodium_memzero((char *)json_string_value(p), plen); /* jansson's copy */
    }
    json_decref(body);
    if (bad) http_respond_error(x, 400, RPC_ERR_INVALID_PARAMS, why, bad);
    return !bad;
}

void http_users_login(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    (void)who;
    http_users_t *u = api->users;
    if (!u || u->stopping) {
        http_respond_error(x, 503, RPC_ERR_UNAVAILABLE, "login is not available", NULL);
        return;
    }
    login_job_t *j = calloc(1, sizeof(*j));
    if (!j) {
        http_respond_error(x, 500, RPC_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    j->u = u;
    j->x = x;
    snprintf(j->ip, sizeof(j->ip), "%s", http_exchange_request(x)->client_ip);
    if (!read_credentials(x, j) || limited(u, x, j->ip, j->user)) {
        job_free(j);
        return;
    }
    if (u->running >= HTTP_LOGIN_MAX_RUNNING && u->queued >= HTTP_LOGIN_MAX_QUEUED) {
        busy(x, "too many logins in progress");
        job_free(j);
        return;
    }
    http_user_t usr;
    int rc = http_user_get(u->db, j->user, &usr);
    bool exists = rc == 0 && !usr.deleted;
    j->known = exists && !usr.disabled;
    snprintf(j->hash, sizeof(j->hash), "%s", exists ? usr.hash : u->dummy_hash);
    uint64_t now = p2p_mono_ms();
    http_brute_fail(u->brute_ip, j->ip, strlen(j->ip), now);
    http_brute_fail(u->brute_user, j->user, strlen(j->user), now);
    if (u->running < HTTP_LOGIN_MAX_RUNNING) {
        start_job(u, j);
        return;
    }
    if (u->queue_tail)
        u->queue_tail->next = j;
    else
        u->queue_head = j;
    u->queue_tail = j;
    u->queued++;
}
