/* webhook.h: an HTTP POST client for JSON events, driven by the libuv loop through libcurl's multi
 * socket interface (curl_multi_socket_action with a uv_poll_t per socket and a uv_timer_t for
 * CURLMOPT_TIMERFUNCTION): nothing ever blocks the loop. Each event is retried with exponential
 * backoff up to a bounded number of attempts; the queue is bounded (the oldest waiting event is
 * dropped when it is full), so a failing receiver never blocks the node or grows its memory. */
#ifndef P2P_SVC_WEBHOOK_H
#define P2P_SVC_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#ifndef SVC_WEBHOOK_MAX_QUEUE
#define SVC_WEBHOOK_MAX_QUEUE                                                                      \
    64 /* events waiting or in flight; the oldest waiting one is dropped */
#endif
#ifndef SVC_WEBHOOK_MAX_INFLIGHT
#define SVC_WEBHOOK_MAX_INFLIGHT 4 /* POSTs in flight at once */
#endif
#ifndef SVC_WEBHOOK_MAX_BODY
#define SVC_WEBHOOK_MAX_BODY 65536 /* largest JSON body accepted by svc_webhook_post */
#endif
#ifndef SVC_WEBHOOK_URL_MAX
#define SVC_WEBHOOK_URL_MAX 1024 /* longest URL */
#endif

typedef struct svc_webhook svc_webhook_t;

typedef struct svc_webhook_config {
    const char *url;             /* http:// or https:// */
    int max_attempts;            /* per event, >= 1 (default 5) */
    uint64_t timeout_ms;         /* per attempt, whole request (default 5000) */
    uint64_t connect_timeout_ms; /* per attempt (default 3000) */
    uint64_t backoff_ms;     /* delay before the 2nd attempt, doubled after each (default 500) */
    uint64_t backoff_max_ms; /* cap of the delay (default 30000) */
} svc_webhook_config_t;

/* Counters since creation. */
typedef struct svc_webhook_stats {
    uint64_t delivered; /* events answered 2xx */
    uint64_t failed;    /* events given up after their attempts (or a 4xx that is not 408/429) */
    uint64_t dropped;   /* events dropped because the queue was full */
    uint64_t attempts;  /* POSTs made */
    size_t queued;      /* events waiting or in flight now */
} svc_webhook_stats_t;

/* Runs once per event when it is delivered (status 0) or given up (status < 0: -EIO after a
 * transport error, -EPROTO after an HTTP error status, -ECANCELED at close), with the attempts
 * made and the last HTTP status (0 when none). May be NULL. */
typedef void (*svc_webhook_done_fn)(void *arg, int status, int attempts, long http_status);

/* Creates a client on loop (zero fields of cfg take their defaults). Returns 0 and *out, or
 * -EINVAL (bad URL) / -ENOMEM / -EIO (libcurl failed). */
int svc_webhook_new(uv_loop_t *loop, const svc_webhook_config_t *cfg, svc_webhook_t **out);

/* Sets the per-event completion callback. */
void svc_webhook_on_done(svc_webhook_t *w, svc_webhook_done_fn fn, void *arg);

/* Queues a POST of json (copied). Returns 0, -EMSGSIZE past SVC_WEBHOOK_MAX_BODY, -ENOMEM, or
 * -ESHUTDOWN after close. When the queue is full the oldest waiting event is dropped (counted). */
int svc_webhook_post(svc_webhook_t *w, const char *json);

void svc_webhook_get_stats(const svc_webhook_t *w, svc_webhook_stats_t *out);

/* Aborts what is in flight, drops the queue (done callbacks run with -ECANCELED), closes every
 * handle; done(arg) runs from the loop once all is closed and w is freed. NULL w: done is not
 * called. */
void svc_webhook_close(svc_webhook_t *w, void (*done)(void *arg), void *arg);

#endif
