/* webhook.c: JSON POSTs with retries through libcurl's multi socket interface on the libuv loop.
 * curl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION: one uv_poll_t each) and when to
 * call it back (CURLMOPT_TIMERFUNCTION: one uv_timer_t); the loop reports readiness with
 * curl_multi_socket_action. A second timer wakes events waiting for their backoff. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "services/webhook.h"

typedef struct item {
    struct item *next;
    char *body;
    size_t len;
    int attempts;
    long http_status;
    uint64_t due_ms; /* uv_now when the next attempt may start */
    CURL *easy;      /* non-NULL while in flight */
    char errbuf[CURL_ERROR_SIZE];
} item_t;

typedef struct sock {
    uv_poll_t poll;
    curl_socket_t fd;
    svc_webhook_t *w;
    struct sock *next, **pprev;
} sock_t;

struct svc_webhook {
    uv_loop_t *loop;
    CURLM *multi;
    struct curl_slist *headers;
    char url[SVC_WEBHOOK_URL_MAX + 1];
    svc_webhook_config_t cfg;
    uv_timer_t curl_timer, retry_timer;
    item_t *head, *tail;
    size_t n_items, n_inflight;
    sock_t *socks;
    svc_webhook_stats_t stats;
    svc_webhook_done_fn done_fn;
    void *done_arg;
    bool closing;
    int open_handles; /* handles still to close before free */
    void (*close_done)(void *arg);
    void *close_arg;
};

static void pump(svc_webhook_t *w);

static void handle_closed_cb(uv_handle_t *h)
{
    svc_webhook_t *w = h->data;
    if (h->type == UV_POLL) free(((sock_t *)h)); /* poll is the first member */
    if (--w->open_handles > 0 || !w->closing) return;
    curl_slist_free_all(w->headers);
    void (*done)(void *) = w->close_done;
    void *arg = w->close_arg;
    free(w);
    curl_global_cleanup();
    if (done) done(arg);
}

static void sock_close(sock_t *s)
{
    uv_poll_stop(&s->poll);
    *s->pprev = s->next;
    if (s->next) s->next->pprev = s->pprev;
    s->poll.data = s->w;
    s->w->open_handles++;
    uv_close((uv_handle_t *)&s->poll, handle_closed_cb);
}

static void unlink_item(svc_webhook_t *w, item_t *it)
{
    item_t **pp = &w->head, *prev = NULL;
    while (*pp && *pp != it) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp) return;
    *pp = it->next;
    if (w->tail == it) w->tail = prev;
    w->n_items--;
}

/* Ends an event: unlinked, counted, reported, freed. */
static void finish(svc_webhook_t *w, item_t *it, int status)
{
    unlink_item(w, it);
    if (status == 0)
        w->stats.delivered++;
    else if (status == -ENOBUFS)
        w->stats.dropped++;
    else if (status != -ECANCELED)
        w->stats.failed++;
    if (w->done_fn) w->done_fn(w->done_arg, status, it->attempts, it->http_status);
    free(it->body);
    free(it);
}

static uint64_t backoff(const svc_webhook_t *w, int attempts)
{
    uint64_t d = w->cfg.backoff_ms;
    for (int i = 1; i < attempts && d < w->cfg.backoff_max_ms; i++)
        d *= 2;
    return d < w->cfg.backoff_max_ms ? d : w->cfg.backoff_max_ms;
}

/* After an attempt ended without success: schedules the next one (returns true) or gives up (the
 * item is freed, returns false). */
static bool retry_or_fail(svc_webhook_t *w, item_t *it, int status, bool retryable)
{
    if (!retryable || it->attempts >= w->cfg.max_attempts) {
        finish(w, it, status);
        return false;
    }
    it->due_ms = uv_now(w->loop) + backoff(w, it->attempts);
    return true;
}

static size_t discard_cb(char *ptr, size_t size, size_t n, void *arg)
{
    (void)ptr;
    (void)arg;
    return size * n; /* the receiver's answer body is not needed */
}

static int start(svc_webhook_t *w, item_t *it)
{
    CURL *e = curl_easy_init();
    if (!e) return -ENOMEM;
    curl_easy_setopt(e, CURLOPT_URL, w->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, it->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)it->len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, w->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)w->cfg.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)w->cfg.connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_cb);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "p2p-admin-webhook/1");
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, it->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, it);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return -EIO;
    }
    it->easy = e;
    it->attempts++;
    w->stats.attempts++;
    w->n_inflight++;
    return 0;
}

static void end_easy(svc_webhook_t *w, item_t *it)
{
    curl_multi_remove_handle(w->multi, it->easy);
    curl_easy_cleanup(it->easy);
    it->easy = NULL;
    w->n_inflight--;
}

/* Collects finished transfers and decides each event's fate. */
static void check_done(svc_webhook_t *w)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        item_t *it = NULL;
        CURLcode res = m->data.result;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&it);
        long code = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
        it->http_status = code;
        end_easy(w, it);
        if (res != CURLE_OK)
            retry_or_fail(w, it, -EIO, true);
        else if (code >= 200 && code < 300)
            finish(w, it, 0);
        else
            retry_or_fail(w, it, -EPROTO, code >= 500 || code == 408 || code == 429);
    }
    pump(w);
}

static void poll_cb(uv_poll_t *h, int status, int events)
{
    sock_t *s = h->data;
    svc_webhook_t *w = s->w;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    int running;
    curl_multi_socket_action(w->multi, s->fd, flags, &running);
    check_done(w);
}

static void curl_timeout_cb(uv_timer_t *t)
{
    svc_webhook_t *w = t->data;
    int running;
    curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(w);
}

/* CURLMOPT_SOCKETFUNCTION: start, change or stop watching one socket. */
static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)e;
    svc_webhook_t *w = userp;
    sock_t *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            curl_multi_assign(w->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) return -1;
        if (uv_poll_init_socket(w->loop, &s->poll, fd) < 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->w = w;
        s->poll.data = s;
        s->next = w->socks;
        if (s->next) s->next->pprev = &s->next;
        s->pprev = &w->socks;
        w->socks = s;
        curl_multi_assign(w->multi, fd, s);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, poll_cb);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants curl_multi_socket_action(TIMEOUT) after timeout_ms. */
static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    svc_webhook_t *w = userp;
    if (w->closing) return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&w->curl_timer);
    else
        uv_timer_start(&w->curl_timer, curl_timeout_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

static void retry_timer_cb(uv_timer_t *t)
{
    pump(t->data);
}

/* Starts every due event that fits in flight, then arms the retry timer for the next one. */
static void pump(svc_webhook_t *w)
{
    if (w->closing) return;
    uint64_t now = uv_now(w->loop), next = UINT64_MAX;
    item_t *it = w->head;
    while (it) {
        item_t *nx = it->next;
        if (!it->easy) {
            if (it->due_ms <= now && w->n_inflight < SVC_WEBHOOK_MAX_INFLIGHT) {
                if (start(w, it) < 0) {
                    it->attempts++; /* a set-up failure counts as an attempt */
                    if (retry_or_fail(w, it, -EIO, true) && it->due_ms < next) next = it->due_ms;
                }
            } else if (it->due_ms > now && it->due_ms < next) {
                next = it->due_ms; /* a due one waits for a slot: check_done pumps again */
            }
        }
        it = nx;
    }
    if (next != UINT64_MAX)
        uv_timer_start(&w->retry_timer, retry_timer_cb, next > now ? next - now : 0, 0);
    else
        uv_timer_stop(&w->retry_timer);
}

int svc_webhook_new(uv_loop_t *loop, const svc_webhook_config_t *cfg, svc_webhook_t **out)
{
    if (!cfg->url || strlen(cfg->url) > SVC_WEBHOOK_URL_MAX ||
        (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0))
        return -EINVAL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -EIO;
    svc_webhook_t *w = calloc(1, sizeof(*w));
    if (!w) {
        curl_global_cleanup();
        return -ENOMEM;
    }
    w->loop = loop;
    strcpy(w->url, cfg->url);
    w->cfg = *cfg;
    w->cfg.url = w->url;
    if (w->cfg.max_attempts <= 0) w->cfg.max_attempts = 5;
    if (!w->cfg.timeout_ms) w->cfg.timeout_ms = 5000;
    if (!w->cfg.connect_timeout_ms) w->cfg.connect_timeout_ms = 3000;
    if (!w->cfg.backoff_ms) w->cfg.backoff_ms = 500;
    if (!w->cfg.backoff_max_ms) w->cfg.backoff_max_ms = 30000;
    w->headers = curl_slist_append(NULL, "Content-Type: application/json");
    w->multi = curl_multi_init();
    if (!w->headers || !w->multi) {
        curl_slist_free_all(w->headers);
        if (w->multi) curl_multi_cleanup(w->multi);
        free(w);
        curl_global_cleanup();
        return -ENOMEM;
    }
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    uv_timer_init(loop, &w->curl_timer);
    uv_timer_init(loop, &w->retry_timer);
    w->curl_timer.data = w->retry_timer.data = w;
    *out = w;
    return 0;
}

void svc_webhook_on_done(svc_webhook_t *w, svc_webhook_done_fn fn, void *arg)
{
    w->done_fn = fn;
    w->done_arg = arg;
}

int svc_webhook_post(svc_webhook_t *w, const char *json)
{
    if (w->closing) return -ESHUTDOWN;
    size_t len = strlen(json);
    if (len > SVC_WEBHOOK_MAX_BODY) return -EMSGSIZE;
    if (w->n_items >= SVC_WEBHOOK_MAX_QUEUE) {
        item_t *old = w->head;
        while (old && old->easy)
            old = old->next;
        if (!old) return -ENOBUFS; /* cannot happen: the queue is larger than the in-flight cap */
        finish(w, old, -ENOBUFS);
    }
    item_t *it = calloc(1, sizeof(*it));
    if (!it) return -ENOMEM;
    it->body = malloc(len + 1);
    if (!it->body) {
        free(it);
        return -ENOMEM;
    }
    memcpy(it->body, json, len + 1);
    it->len = len;
    it->due_ms = uv_now(w->loop);
    if (w->tail)
        w->tail->next = it;
    else
        w->head = it;
    w->tail = it;
    w->n_items++;
    pump(w);
    return 0;
}

void svc_webhook_get_stats(const svc_webhook_t *w, svc_webhook_stats_t *out)
{
    *out = w->stats;
    out->queued = w->n_items;
}

void svc_webhook_close(svc_webhook_t *w, void (*done)(void *arg), void *arg)
{
    if (!w || w->closing) return;
    w->closing = true;
    w->close_done = done;
    w->close_arg = arg;
    while (w->head) {
        item_t *it = w->head;
        if (it->easy) end_easy(w, it);
        finish(w, it, -ECANCELED);
    }
    curl_multi_cleanup(w->multi); /* may report sockets of cached connections as removed */
    w->multi = NULL;
    while (w->socks)
        sock_close(w->socks);
    uv_timer_stop(&w->curl_timer);
    uv_timer_stop(&w->retry_timer);
    w->open_handles += 2;
    uv_close((uv_handle_t *)&w->curl_timer, handle_closed_cb);
    uv_close((uv_handle_t *)&w->retry_timer, handle_closed_cb);
}
