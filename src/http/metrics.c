/* metrics.c: GET /metrics (CONTRACT section 7). The in-memory collectors (build, dht, members,
 * rpc, http) read counters on the loop; the host collectors of metrics_host.c block on procfs and
 * statvfs, so each runs on a thread of its own under a deadline. A scrape answers when they are
 * all in or when HTTP_METRICS_COLLECTOR_TIMEOUT_MS has passed; a collector that failed or is
 * late is left out and marked p2p_scrape_collector_success{collector} 0. A collector still
 * running when the next scrape comes is joined while it is young, and counted failed at once
 * when it is past the deadline (hung): it never gets a second thread, never blocks the loop or
 * the stop (a hung thread is abandoned; it frees what it holds when it returns).
 *
 * RPC calls come in through the registry's observer hook: p2p_rpc_calls_total{domain,method,code}
 * and p2p_rpc_call_duration_seconds{domain}. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/api.h"
#include "http/metrics-internal.h"
#include "node/members.h"

#define N_HOST_MAX   8  /* host collectors (metrics_host.c has 6) */
#define N_DOMAINS    16 /* domains with a duration histogram; more share "other" */
#define SERIES_SLOTS (2 * HTTP_METRICS_MAX_RPC_SERIES) /* open addressing, at most half full */

static const double rpc_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                    0.25,  0.5,    1,     2.5,  5,     10};

typedef struct series {
    char domain[32];
    char method[64];
    int code;
    uint64_t n;
    bool used;
} series_t;

typedef struct host_job {
    int idx;         /* collector index */
    http_host_fn fn; /* copied: the thread touches nothing else of the metrics */
    char proc_root[64];
    http_mtext_t w;
    int rc;
    uint64_t started_ns, dur_ns;
    bool done;              /* under the metrics lock */
    struct http_metrics *m; /* for the lock and the wake-up only */
} host_job_t;

typedef struct slot {
    host_job_t *job; /* waiting on it, NULL when settled */
    char *text;      /* the collector's text on success */
    size_t len;
    bool ok;
    double dur_s;
} slot_t;

typedef struct scrape {
    struct http_metrics *m;
    http_exchange_t *x;
    char *loop_text; /* the in-memory collectors, meta families excluded */
    size_t loop_len;
    struct {
        const char *name;
        bool ok;
        double dur_s;
    } loop_meta[8];
    int n_loop;
    slot_t slot[N_HOST_MAX];
    int waiting;
    uv_timer_t timer;
    bool answered;
    struct scrape *next;
} scrape_t;

struct http_metrics {
    http_api_t *api;
    uv_loop_t *loop;
    series_t *series; /* SERIES_SLOTS */
    size_t n_series;
    uint64_t calls, call_errors; /* every observed call, and those answered with an error */
    char domains[N_DOMAINS][32];
    http_histogram_t hist[N_DOMAINS + 1]; /* the last is "other" */
    size_t n_domains;
    const http_host_collector_t *host;
    size_t n_host;
    char proc_root[64];
    host_job_t *job[N_HOST_MAX]; /* running, NULL when idle (loop side) */
    scrape_t *scrapes;           /* waiting for host collectors */
    uv_async_t async;
    int handles; /* open libuv handles (async + scrape timers) */
    /* shared with the collector threads */
    pthread_mutex_t lock;
    int threads;    /* running */
    bool stopping;  /* threads no longer wake the loop: each frees its own job */
    bool loop_gone; /* every handle closed: the last thread to return frees m */
};

/* --- RPC calls ------------------------------------------------------------------------------ */

static const char *const known_domains[] = {"node", "dht", "process", "file", "network", "monitor"};

static bool plain_word(const char *s, size_t n, size_t max)
{
    if (n == 0 || n > max) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

void http_metrics_call_labels(const rpc_observation_t *o, char *dom, size_t domcap, char *meth,
                              size_t methcap)
{
    snprintf(dom, domcap, "other");
    snprintf(meth, methcap, "other");
    const char *s, *end;
    if (o->method) { /* DOMAIN.METHOD from the registry: a bounded set */
        s = o->method;
        end = s + strlen(s);
    } else { /* system.NODE.DOMAIN.METHOD: the caller's words, checked */
        s = o->address;
        end = s + o->address_len;
        for (int dots = 0; dots < 2 && s < end; s++)
            if (*s == '.') dots++;
    }
    const char *dot = memchr(s, '.', (size_t)(end - s));
    if (!dot) return;
    size_t dn = (size_t)(dot - s), mn = (size_t)(end - dot - 1);
    bool dom_ok = o->method != NULL && dn < domcap;
    for (size_t i = 0; !dom_ok && i < P2P_ARRAY_LEN(known_domains); i++)
        dom_ok = strlen(known_domains[i]) == dn && memcmp(known_domains[i], s, dn) == 0;
    if (!dom_ok) return;
    snprintf(dom, domcap, "%.*s", (int)dn, s);
    if (o->method ? mn < methcap : plain_word(dot + 1, mn, methcap - 1))
        snprintf(meth, methcap, "%.*s", (int)mn, dot + 1);
}

static uint64_t hash_series(const char *d, const char *m, int code)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = d; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ '.') * 1099511628211ull;
    for (const char *p = m; *p; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (h ^ (uint32_t)code) * 1099511628211ull;
}

static series_t *find_series(http_metrics_t *m, const char *d, const char *meth, int code)
{
    uint64_t h = hash_series(d, meth, code);
    for (size_t i = 0; i < SERIES_SLOTS; i++) {
        series_t *s = &m->series[(h + i) % SERIES_SLOTS];
        if (!s->used) {
            if (m->n_series >= HTTP_METRICS_MAX_RPC_SERIES) return NULL;
            s->used = true;
            snprintf(s->domain, sizeof(s->domain), "%s", d);
            snprintf(s->method, sizeof(s->method), "%s", meth);
            s->code = code;
            m->n_series++;
            return s;
        }
        if (s->code == code && strcmp(s->domain, d) == 0 && strcmp(s->method, meth) == 0) return s;
    }
    return NULL;
}

static http_histogram_t *domain_hist(http_metrics_t *m, const char *d)
{
    for (size_t i = 0; i < m->n_domains; i++)
        if (strcmp(m->domains[i], d) == 0) return &m->hist[i];
    if (m->n_domains < N_DOMAINS && strcmp(d, "other") != 0) {
        snprintf(m->domains[m->n_domains], sizeof(m->domains[0]), "%s", d);
        return &m->hist[m->n_domains++];
    }
    return &m->hist[N_DOMAINS];
}

static void observe_cb(void *ctx, const rpc_observation_t *o)
{
    http_metrics_t *m = ctx;
    char d[32], meth[64];
    http_metrics_call_labels(o, d, sizeof(d), meth, sizeof(meth));
    series_t *s = find_series(m, d, meth, o->code);
    if (!s) s = find_series(m, "other", "other", o->code); /* the table is full */
    if (s) s->n++;
    m->calls++;
    if (o->code != 0) m->call_errors++;
    uint64_t now = p2p_mono_ms(); /* the clock start_ms comes from */
    double dur = now > o->start_ms ? (double)(now - o->start_ms) / 1000.0 : 0;
    http_histogram_observe(domain_hist(m, d), dur);
}

void http_metrics_rpc_counts(const http_metrics_t *m, uint64_t *calls, uint64_t *errors)
{
    *calls = m ? m->calls : 0;
    *errors = m ? m->call_errors : 0;
}

/* --- the in-memory collectors (on the loop) ------------------------------------------------- */

static int collect_build(http_metrics_t *m, http_mtext_t *w)
{
    node_t *node = m->api->node;
    char id[2 * DHT_ID_LEN + 1];
    p2p_hex_encode(id, node->id.b, DHT_ID_LEN);
    http_mtext_family(w, "p2p_build_info", HTTP_MT_GAUGE,
                      "A constant 1 labelled with the version, node name and node id.");
    http_label_t l[] = {{"version", P2P_VERSION}, {"name", node->cfg.name}, {"node_id", id}};
    return http_mtext_sample(w, l, 3, 1);
}

static void labelled_u64(http_mtext_t *w, const char *name, const char *help, const char *label,
                         const char *const *values, const uint64_t *counts, size_t n)
{
    http_mtext_family(w, name, HTTP_MT_COUNTER, help);
    for (size_t i = 0; i < n; i++) {
        http_label_t l = {label, values[i]};
        http_mtext_sample_u64(w, &l, 1, counts[i]);
    }
}

static int collect_dht(http_metrics_t *m, http_mtext_t *w)
{
    node_t *node = m->api->node;
    const dht_t *dht = node->dhtuv ? dht_uv_core(node->dhtuv) : NULL;
    if (!dht) return -ENODEV;
    dht_stats_t st;
    dht_get_stats(dht, &st);
    http_mtext_family(w, "p2p_dht_routing_table_peers", HTTP_MT_GAUGE,
                      "Contacts in the DHT routing table.");
    http_mtext_sample_u64(w, NULL, 0, dht_contact_count(dht));
    http_mtext_family(w, "p2p_dht_stored_records", HTTP_MT_GAUGE,
                      "Records this node stores for the DHT.");
    http_mtext_sample_u64(w, NULL, 0, dht_record_count(dht));
    labelled_u64(w, "p2p_dht_messages_received_total", "DHT messages received, by type.", "type",
                 dht_msg_type_names, st.received, DHT_MSG_TYPE_COUNT);
    labelled_u64(w, "p2p_dht_messages_sent_total", "DHT messages sent, by type.", "type",
                 dht_msg_type_names, st.sent, DHT_MSG_TYPE_COUNT);
    labelled_u64(w, "p2p_dht_messages_dropped_total", "DHT datagrams dropped, by reason.", "reason",
                 dht_drop_reason_names, st.dropped, DHT_DROP_REASON_COUNT);
    labelled_u64(w, "p2p_dht_lookups_total", "DHT lookups finished, by result.", "result",
                 dht_lookup_result_names, st.lookups, DHT_LOOKUP_LABEL_COUNT);
    http_mtext_family(w, "p2p_dht_lookup_duration_seconds", HTTP_MT_HISTOGRAM,
                      "Duration of DHT lookups.");
    http_mtext_histogram(w, NULL, 0, dht_lookup_hist_bounds, st.lookup_hist,
                         DHT_LOOKUP_HIST_BUCKETS, st.lookup_count, st.lookup_sum_s);
    http_mtext_family(w, "p2p_dht_received_bytes_total", HTTP_MT_COUNTER,
                      "Bytes of DHT datagrams received.");
    http_mtext_sample_u64(w, NULL, 0, st.bytes_in);
    http_mtext_family(w, "p2p_dht_sent_bytes_total", HTTP_MT_COUNTER,
                      "Bytes of DHT datagrams sent.");
    return http_mtext_sample_u64(w, NULL, 0, st.bytes_out);
}

static int collect_members(http_metrics_t *m, http_mtext_t *w)
{
    node_t *node = m->api->node;
    if (!node->members) return -ENODEV;
    members_stats_t st;
    members_get_stats(node->members, uv_now(m->loop), &st);
    http_mtext_family(w, "p2p_nodes_known", HTTP_MT_GAUGE,
                      "Live nodes of the network this node knows, itself included.");
    http_mtext_sample_u64(w, NULL, 0, st.up);
    http_mtext_family(w, "p2p_nodes_down", HTTP_MT_GAUGE,
                      "Known nodes not heard from within the peer timeout.");
    http_mtext_sample_u64(w, NULL, 0, st.down);
    http_mtext_family(w, "p2p_members_rejected_total", HTTP_MT_COUNTER,
                      "Node records refused (malformed, bad signature, too old).");
    return http_mtext_sample_u64(w, NULL, 0, st.rejected);
}

static int collect_rpc(http_metrics_t *m, http_mtext_t *w)
{
    http_mtext_family(w, "p2p_rpc_calls_total", HTTP_MT_COUNTER,
                      "RPC calls answered by this node, by domain, method and error code (0 = "
                      "success).");
    for (size_t i = 0; i < SERIES_SLOTS; i++) {
        const series_t *s = &m->series[i];
        if (!s->used) continue;
        char code[16];
        snprintf(code, sizeof(code), "%d", s->code);
        http_label_t l[] = {{"domain", s->domain}, {"method", s->method}, {"code", code}};
        http_mtext_sample_u64(w, l, 3, s->n);
    }
    http_mtext_family(w, "p2p_rpc_call_duration_seconds", HTTP_MT_HISTOGRAM,
                      "Time from dispatch to answer of RPC calls, by domain.");
    for (size_t i = 0; i <= m->n_domains; i++) {
        const http_histogram_t *h = i < m->n_domains ? &m->hist[i] : &m->hist[N_DOMAINS];
        if (i == m->n_domains && h->count == 0 && m->n_domains > 0) break;
        http_label_t l = {"domain", i < m->n_domains ? m->domains[i] : "other"};
        http_mtext_histogram_of(w, &l, 1, h);
    }
    return 0;
}

static int collect_http(http_metrics_t *m, http_mtext_t *w)
{
    static const http_stats_t none;
    const http_stats_t *st = m->api->server ? http_server_stats(m->api->server) : &none;
    http_mtext_family(w, "p2p_http_requests_total", HTTP_MT_COUNTER,
                      "HTTP requests answered, by status code.");
    for (int c = 100; c < 600; c++) {
        if (!st->status_counts[c]) continue;
        char code[8];
        snprintf(code, sizeof(code), "%d", c);
        http_label_t l = {"code", code};
        http_mtext_sample_u64(w, &l, 1, st->status_counts[c]);
    }
    http_mtext_family(w, "p2p_ws_clients", HTTP_MT_GAUGE, "WebSocket clients connected.");
    http_mtext_sample_u64(w, NULL, 0, st->upgraded);
    http_mtext_family(w, "p2p_http_connections", HTTP_MT_GAUGE, "HTTP connections open.");
    http_mtext_sample_u64(w, NULL, 0, st->open);
    http_mtext_family(w, "p2p_http_connections_accepted_total", HTTP_MT_COUNTER,
                      "HTTP connections accepted.");
    http_mtext_sample_u64(w, NULL, 0, st->accepted);
    http_mtext_family(w, "p2p_http_rate_limited_total", HTTP_MT_COUNTER,
                      "HTTP requests answered 429 by the per-address rate limit.");
    http_mtext_sample_u64(w, NULL, 0, st->rate_limited);
    http_mtext_family(w, "p2p_http_parse_errors_total", HTTP_MT_COUNTER,
                      "HTTP requests refused as malformed.");
    return http_mtext_sample_u64(w, NULL, 0, st->parse_errors);
}

static const struct {
    const char *name;
    int (*fn)(http_metrics_t *m, http_mtext_t *w);
} loop_collectors[] = {
    {"build", collect_build}, {"dht", collect_dht},   {"members", collect_members},
    {"rpc", collect_rpc},     {"http", collect_http},
};

/* --- host collectors on threads -------------------------------------------------------------- */

static void free_metrics(http_metrics_t *m)
{
    pthread_mutex_destroy(&m->lock);
    free(m->series);
    free(m);
}

static void free_job(host_job_t *j)
{
    http_mtext_free(&j->w);
    free(j);
}

static void *job_main(void *arg)
{
    host_job_t *j = arg;
    j->rc = j->fn(&j->w, j->proc_root);
    j->dur_ns = uv_hrtime() - j->started_ns;
    http_metrics_t *m = j->m;
    pthread_mutex_lock(&m->lock);
    j->done = true;
    bool orphan = m->stopping;
    if (!orphan) uv_async_send(&m->async);
    m->threads--;
    bool last = m->loop_gone && m->threads == 0;
    pthread_mutex_unlock(&m->lock);
    if (orphan) free_job(j);
    if (last) free_metrics(m);
    return NULL;
}

/* Starts collector i on a thread of its own. Returns the job or NULL. */
static host_job_t *start_job(http_metrics_t *m, int i)
{
    host_job_t *j = calloc(1, sizeof(*j));
    if (!j) return NULL;
    j->idx = i;
    j->fn = m->host[i].fn;
    j->m = m;
    snprintf(j->proc_root, sizeof(j->proc_root), "%s", m->proc_root);
    http_mtext_init(&j->w, HTTP_METRICS_MAX_OUTPUT);
    j->started_ns = uv_hrtime();
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    pthread_mutex_lock(&m->lock);
    m->threads++;
    int r = pthread_create(&t, &attr, job_main, j);
    if (r != 0) m->threads--;
    pthread_mutex_unlock(&m->lock);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        free_job(j);
        return NULL;
    }
    return j;
}

/* --- scrapes ------------------------------------------------------------------------------------
 */

static void write_meta(http_mtext_t *w, const scrape_t *sc)
{
    http_mtext_family(w, "p2p_scrape_collector_success", HTTP_MT_GAUGE,
                      "Whether a collector succeeded within its deadline.");
    for (int i = 0; i < sc->n_loop; i++) {
        http_label_t l = {"collector", sc->loop_meta[i].name};
        http_mtext_sample(w, &l, 1, sc->loop_meta[i].ok);
    }
    for (size_t i = 0; i < sc->m->n_host; i++) {
        http_label_t l = {"collector", sc->m->host[i].name};
        http_mtext_sample(w, &l, 1, sc->slot[i].ok);
    }
    http_mtext_family(w, "p2p_scrape_collector_duration_seconds", HTTP_MT_GAUGE,
                      "Time a collector took (the deadline when it did not finish).");
    for (int i = 0; i < sc->n_loop; i++) {
        http_label_t l = {"collector", sc->loop_meta[i].name};
        http_mtext_sample(w, &l, 1, sc->loop_meta[i].dur_s);
    }
    for (size_t i = 0; i < sc->m->n_host; i++) {
        http_label_t l = {"collector", sc->m->host[i].name};
        http_mtext_sample(w, &l, 1, sc->slot[i].dur_s);
    }
}

/* One libuv handle of m is closed; the last one of a stop ends the part (and frees m unless a
 * thread is still out). */
static void handle_closed(http_metrics_t *m)
{
    if (--m->handles > 0) return;
    http_api_t *api = m->api;
    pthread_mutex_lock(&m->lock);
    m->loop_gone = true;
    bool last = m->threads == 0;
    pthread_mutex_unlock(&m->lock);
    if (last) free_metrics(m);
    http_api_part_done(api);
}

static void timer_closed(uv_handle_t *h);

/* Answers the scrape with what it has. Jobs still out count as failed. */
static void finish(scrape_t *sc)
{
    http_metrics_t *m = sc->m;
    if (sc->answered) return;
    sc->answered = true;
    for (scrape_t **p = &m->scrapes; *p; p = &(*p)->next)
        if (*p == sc) {
            *p = sc->next;
            break;
        }
    http_mtext_t meta;
    http_mtext_init(&meta, 1 << 20);
    write_meta(&meta, sc);
    size_t mlen = 0, total = sc->loop_len;
    const char *mt = http_mtext_text(&meta, &mlen, NULL);
    total += mlen;
    for (size_t i = 0; i < m->n_host; i++)
        total += sc->slot[i].ok ? sc->slot[i].len : 0;
    char *body = malloc(total + 1), *p = body;
    if (body) {
        memcpy(p, sc->loop_text, sc->loop_len), p += sc->loop_len;
        for (size_t i = 0; i < m->n_host; i++)
            if (sc->slot[i].ok) memcpy(p, sc->slot[i].text, sc->slot[i].len), p += sc->slot[i].len;
        if (mt) memcpy(p, mt, mlen), p += mlen;
        *p = '\0';
        http_respond_take(sc->x, 200, HTTP_METRICS_CONTENT_TYPE, body, (size_t)(p - body));
    } else {
        http_respond_error(sc->x, 500, RPC_ERR_INTERNAL, "out of memory", NULL);
    }
    http_mtext_free(&meta);
    uv_timer_stop(&sc->timer);
    uv_close((uv_handle_t *)&sc->timer, timer_closed);
}

static void timer_closed(uv_handle_t *h)
{
    scrape_t *sc = h->data;
    http_metrics_t *m = sc->m;
    free(sc->loop_text);
    for (size_t i = 0; i < N_HOST_MAX; i++)
        free(sc->slot[i].text);
    free(sc);
    handle_closed(m);
}

static void deadline_cb(uv_timer_t *t)
{
    scrape_t *sc = t->data;
    for (size_t i = 0; i < sc->m->n_host; i++)
        if (sc->slot[i].job) {
            sc->slot[i].job = NULL;
            sc->slot[i].dur_s = HTTP_METRICS_COLLECTOR_TIMEOUT_MS / 1000.0;
        }
    finish(sc);
}

/* A job is in: hands its text to every scrape waiting on it. */
static void deliver(http_metrics_t *m, host_job_t *j)
{
    size_t len = 0;
    const char *text = j->rc == 0 ? http_mtext_text(&j->w, &len, NULL) : NULL;
    for (scrape_t *sc = m->scrapes, *next; sc; sc = next) {
        next = sc->next;
        slot_t *s = &sc->slot[j->idx];
        if (s->job != j) continue;
        s->job = NULL;
        s->dur_s = (double)j->dur_ns / 1e9;
        if (text && (s->text = malloc(len + 1))) {
            memcpy(s->text, text, len);
            s->len = len;
            s->ok = true;
        }
        if (--sc->waiting == 0) finish(sc);
    }
}

static void async_cb(uv_async_t *a)
{
    http_metrics_t *m = a->data;
    for (size_t i = 0; i < m->n_host; i++) {
        host_job_t *j = m->job[i];
        if (!j) continue;
        pthread_mutex_lock(&m->lock);
        bool done = j->done;
        pthread_mutex_unlock(&m->lock);
        if (!done) continue;
        m->job[i] = NULL;
        deliver(m, j);
        free_job(j);
    }
}

/* Runs the in-memory collectors into sc->loop_text. */
static void run_loop_collectors(http_metrics_t *m, scrape_t *sc)
{
    p2p_buf_t all;
    p2p_buf_init(&all, HTTP_METRICS_MAX_OUTPUT);
    for (size_t i = 0; i < P2P_ARRAY_LEN(loop_collectors); i++) {
        http_mtext_t w;
        http_mtext_init(&w, HTTP_METRICS_MAX_OUTPUT);
        uint64_t t0 = uv_hrtime();
        int rc = loop_collectors[i].fn(m, &w);
        size_t len = 0;
        const char *text = rc == 0 ? http_mtext_text(&w, &len, &rc) : NULL;
        bool ok = text && p2p_buf_append(&all, text, len) == 0;
        sc->loop_meta[sc->n_loop].name = loop_collectors[i].name;
        sc->loop_meta[sc->n_loop].ok = ok;
        sc->loop_meta[sc->n_loop].dur_s = (double)(uv_hrtime() - t0) / 1e9;
        sc->n_loop++;
        http_mtext_free(&w);
    }
    sc->loop_text = (char *)all.data; /* taken */
    sc->loop_len = all.len;
}

void http_metrics_scrape(http_exchange_t *x, http_api_t *api, const http_caller_t *who)
{
    http_metrics_t *m = api->metrics;
    if (!m || !api->node->cfg.metrics_enabled) {
        http_respond_error(x, 404, RPC_ERR_NOT_FOUND, "metrics are disabled", NULL);
        return;
    }
    scrape_t *sc = calloc(1, sizeof(*sc));
    if (!sc) {
        http_respond_error(x, 500, RPC_ERR_INTERNAL, "out of memory", NULL);
        return;
    }
    sc->m = m;
    sc->x = x;
    uv_timer_init(m->loop, &sc->timer);
    sc->timer.data = sc;
    m->handles++;
    run_loop_collectors(m, sc);
    uint64_t now = uv_hrtime();
    for (size_t i = 0; i < m->n_host; i++) {
        host_job_t *j = m->job[i];
        if (j && now - j->started_ns > HTTP_METRICS_COLLECTOR_TIMEOUT_MS * 1000000ull) {
            sc->slot[i].dur_s = (double)(now - j->started_ns) / 1e9; /* hung: failed now */
            continue;
        }
        if (!j && !(j = m->job[i] = start_job(m, (int)i))) continue;
        sc->slot[i].job = j;
        sc->waiting++;
    }
    sc->next = m->scrapes;
    m->scrapes = sc;
    if (sc->waiting == 0) {
        finish(sc);
        return;
    }
    uv_timer_start(&sc->timer, deadline_cb, HTTP_METRICS_COLLECTOR_TIMEOUT_MS, 0);
}

void http_metrics_set_host(http_metrics_t *m, const http_host_collector_t *c, size_t n,
                           const char *proc_root)
{
    m->host = c;
    m->n_host = P2P_MIN(n, (size_t)N_HOST_MAX);
    snprintf(m->proc_root, sizeof(m->proc_root), "%s", proc_root);
}

/* --- start and stop ------------------------------------------------------------------------------
 */

int http_metrics_start(http_api_t *api, char *err, size_t errlen)
{
    http_metrics_t *m = calloc(1, sizeof(*m));
    if (m) m->series = calloc(SERIES_SLOTS, sizeof(*m->series));
    if (!m || !m->series || pthread_mutex_init(&m->lock, NULL) != 0) {
        if (m) free(m->series);
        free(m);
        snprintf(err, errlen, "metrics: out of memory");
        return -ENOMEM;
    }
    m->api = api;
    m->loop = api->node->loop;
    m->host = http_host_collectors(&m->n_host);
    if (m->n_host > N_HOST_MAX) m->n_host = N_HOST_MAX;
    snprintf(m->proc_root, sizeof(m->proc_root), "/proc");
    for (size_t i = 0; i <= N_DOMAINS; i++)
        http_histogram_init(&m->hist[i], rpc_bounds, P2P_ARRAY_LEN(rpc_bounds));
    int r = uv_async_init(m->loop, &m->async, async_cb);
    if (r < 0) {
        free_metrics(m);
        snprintf(err, errlen, "metrics: %s", uv_strerror(r));
        return r;
    }
    m->async.data = m;
    m->handles = 1;
    api->metrics = m;
    if (api->node->reg) rpc_registry_set_observer(api->node->reg, observe_cb, m);
    return 0;
}

static void async_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

void http_metrics_stop(http_api_t *api)
{
    http_metrics_t *m = api->metrics;
    if (!m) return;
    api->metrics = NULL;
    if (api->node->reg) rpc_registry_set_observer(api->node->reg, NULL, NULL);
    while (m->scrapes)
        finish(m->scrapes); /* answered with what they have */
    /* finished jobs not yet collected are the loop's to free; running ones their thread's */
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    for (size_t i = 0; i < m->n_host; i++)
        if (m->job[i] && m->job[i]->done) free_job(m->job[i]);
    pthread_mutex_unlock(&m->lock);
    api->pending_stops++;
    uv_close((uv_handle_t *)&m->async, async_closed);
}
