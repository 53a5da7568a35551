/* main.c: dht-sim, the real DHT core on a virtual clock and network (CONTRACT section 9). Phases:
 * formation (nodes join one after another through a few random earlier nodes, then look up their
 * own id), store (values published from random nodes), churn (a fraction of nodes silently killed),
 * lookups (gets of stored keys, or node lookups, from random live nodes). Prints one JSON object on
 * stdout; progress goes to stderr. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <sodium.h>

#include "sim/sim.h"

#define WALL_BASE_MS   1700000000000ULL /* wall clock of virtual time 0 */
#define START_MS       1000             /* virtual time of the first join */
#define PHASE_SLACK_MS (600 * 1000)     /* a phase is cut off this long after its last start */
#define RECORD_TTL_S   (24 * 3600)
#define MAX_KEYS       1000 /* distinct keys stored */
#define JOIN_TRIES     4    /* joins retried when the node got no contact */
#define SIM_PEER_CACHE 128  /* per node: peers outside the routing table kept (memory) */

typedef struct opts {
    uint32_t nodes, lookups, contacts, join_gap_ms, lookup_gap_ms, peer_cache;
    double churn, latency_ms, loss;
    uint64_t seed;
    bool crypto, node_lookups;
} opts_t;

enum app_kind { APP_JOIN = 1, APP_JOIN_LOOKUP, APP_PUT, APP_GET };

typedef struct run run_t;

typedef struct join_op {
    run_t *r;
    uint32_t idx;
    uint8_t tries;
    bool ok;
} join_op_t;

typedef struct key_op {
    run_t *r;
    dht_id_t key;
    uint32_t publisher;
    int status;
    size_t stored;
} key_op_t;

typedef struct get_op {
    run_t *r;
    uint32_t origin;
    uint32_t target; /* key index, or node index for node lookups */
    uint64_t started;
    int status;
    bool done, ok;
    int hops;
    uint32_t messages;
    uint64_t latency_ms;   /* as reported by the core */
    uint64_t completed_ms; /* until the callback ran */
} get_op_t;

struct run {
    opts_t o;
    sim_t s;
    uint8_t network_key[DHT_NET_KEY_LEN];
    join_op_t *joins;
    key_op_t *keys;
    uint32_t nkeys;
    get_op_t *gets;
    uint32_t joined; /* nodes created so far, in index order */
};

static void progress(const run_t *r, const char *what)
{
    static const char *names[DHT_MSG_TYPE_COUNT] = {"ping",       "pong",   "find_node", "nodes",
                                                    "find_value", "values", "store",     "stored"};
    uint64_t sent[DHT_MSG_TYPE_COUNT] = {0};
    for (uint32_t i = 0; i < r->s.n; i++) {
        if (!r->s.nodes[i].dht) continue;
        dht_stats_t st;
        dht_get_stats(r->s.nodes[i].dht, &st);
        for (int t = 0; t < DHT_MSG_TYPE_COUNT; t++)
            sent[t] += st.sent[t];
    }
    fprintf(stderr, "dht-sim: t=%.1fs %s (events %" PRIu64 ", datagrams %" PRIu64 ":",
            (double)r->s.now / 1000.0, what, r->s.c.events, r->s.c.sent);
    for (int t = 0; t < DHT_MSG_TYPE_COUNT; t++)
        fprintf(stderr, " %s %" PRIu64, names[t], sent[t]);
    fprintf(stderr, ")\n");
}

static void value_of(const run_t *r, uint32_t j, char *out, size_t cap)
{
    snprintf(out, cap, "sim-value-%" PRIu64 "-%" PRIu32, r->o.seed, j);
}

/* ---- nodes ---- */

static int node_create(run_t *r, uint32_t idx)
{
    sim_rng_t g;
    uint8_t kseed[32];
    dht_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    sim_rng_seed(&g, sim_mix64(r->o.seed) ^ sim_mix64(0x1000000ULL + idx));
    for (int i = 0; i < 4; i++) {
        uint64_t x = sim_rng_next(&g), y = sim_rng_next(&g);
        memcpy(kseed + 8 * i, &x, 8);
        memcpy(cfg.seed + 8 * i, &y, 8);
    }
    crypto_sign_seed_keypair(cfg.public_key, cfg.secret_key, kseed);
    memcpy(cfg.network_key, r->network_key, sizeof(cfg.network_key));
    cfg.epoch = 1;
    cfg.ip_diversity = false;
    cfg.plaintext = !r->o.crypto;
    cfg.peer_cache = r->o.peer_cache;
    cfg.send = sim_send;
    cfg.send_ctx = &r->s.nodes[idx];
    sim_node_t *n = &r->s.nodes[idx];
    n->dht = dht_new(&cfg, r->s.now);
    sodium_memzero(cfg.secret_key, sizeof(cfg.secret_key));
    if (!n->dht) return -ENOMEM;
    dht_set_wall_clock(n->dht, r->s.now, WALL_BASE_MS + r->s.now);
    n->alive = true;
    sim_node_rearm(&r->s, idx);
    return 0;
}

/* A uniformly random live node among the first `below`, other than `not`; -1 when none. */
static int64_t random_live(run_t *r, uint32_t below, int64_t not )
{
    for (int tries = 0; tries < 10000 && below > 0; tries++) {
        uint32_t i = (uint32_t)sim_rng_below(&r->s.rng, below);
        if ((int64_t)i != not &&r->s.nodes[i].alive && r->s.nodes[i].dht) return i;
    }
    return -1;
}

/* ---- formation ---- */

static uint64_t join_wait_ms(const run_t *r)
{
    return (uint64_t)(8 * r->o.latency_ms) + 50;
}

static void join_ping(run_t *r, join_op_t *j)
{
    sim_node_t *n = &r->s.nodes[j->idx];
    for (uint32_t k = 0; k < r->o.contacts; k++) {
        int64_t peer = random_live(r, j->idx, j->idx);
        if (peer < 0) break;
        dht_addr_t a;
        sim_addr_of((uint32_t)peer, &a);
        dht_ping_addr(n->dht, &a, r->s.now);
    }
    sim_node_rearm(&r->s, j->idx);
    sim_schedule(&r->s, r->s.now + join_wait_ms(r), j, APP_JOIN_LOOKUP);
}

static void join_done(void *arg, int status, const dht_lookup_result_t *res)
{
    join_op_t *j = arg;
    run_t *r = j->r;
    (void)res;
    if (status == -ECANCELED) return;
    sim_node_t *n = &r->s.nodes[j->idx];
    if (n->alive && dht_contact_count(n->dht) == 0 && j->idx > 0 && ++j->tries < JOIN_TRIES) {
        join_ping(r, j);
        return;
    }
    j->ok = status == 0 || dht_contact_count(n->dht) > 0;
    r->s.busy--;
}

static void join_lookup(run_t *r, join_op_t *j)
{
    sim_node_t *n = &r->s.nodes[j->idx];
    if (!n->alive) {
        r->s.busy--;
        return;
    }
    int rc = dht_find_node(n->dht, dht_self_id(n->dht), r->s.now, join_done, j);
    sim_node_rearm(&r->s, j->idx);
    if (rc < 0) join_done(j, rc, NULL);
}

static void join_start(run_t *r, join_op_t *j)
{
    if (node_create(r, j->idx) < 0) {
        fprintf(stderr, "dht-sim: node %" PRIu32 " could not be created\n", j->idx);
        return;
    }
    r->joined = j->idx + 1;
    if (j->idx == 0) {
        j->ok = true;
        return;
    }
    r->s.busy++;
    join_ping(r, j);
}

/* ---- store ---- */

static void put_done(void *arg, int status, size_t stored)
{
    key_op_t *k = arg;
    if (status == -ECANCELED) return;
    k->status = status;
    k->stored = stored;
    k->r->s.busy--;
}

static void put_start(run_t *r, key_op_t *k)
{
    char v[64];
    value_of(r, (uint32_t)(k - r->keys), v, sizeof(v));
    sim_node_t *n = &r->s.nodes[k->publisher];
    int rc = dht_put(n->dht, &k->key, (const uint8_t *)v, strlen(v), RECORD_TTL_S, r->s.now,
                     put_done, k);
    sim_node_rearm(&r->s, k->publisher);
    if (rc < 0)
        k->status = rc;
    else
        r->s.busy++;
}

/* ---- lookups ---- */

/* Records a finished lookup. latency_ms is the core's duration (for a get: until the value was
 * first in hand); the callback may come later, once requests still in flight have ended. */
static void get_finish(get_op_t *g, int status, bool ok, int hops, uint32_t messages,
                       uint64_t latency_ms)
{
    run_t *r = g->r;
    g->done = true;
    g->status = status;
    g->ok = ok;
    g->hops = hops;
    g->messages = messages;
    g->latency_ms = latency_ms;
    g->completed_ms = r->s.now - g->started;
    r->s.busy--;
}

static void get_done(void *arg, int status, const dht_get_result_t *res)
{
    get_op_t *g = arg;
    if (status == -ECANCELED) return;
    char v[64];
    value_of(g->r, g->target, v, sizeof(v));
    size_t vlen = strlen(v);
    bool ok = false;
    for (size_t i = 0; status == 0 && res && i < res->n; i++)
        if (res->records[i].value_len == vlen && !memcmp(res->records[i].value, v, vlen)) ok = true;
    get_finish(g, status, ok, res ? res->hops : 0, res ? res->messages : 0,
               res ? res->duration_ms : g->r->s.now - g->started);
}

static void find_done(void *arg, int status, const dht_lookup_result_t *res)
{
    get_op_t *g = arg;
    if (status == -ECANCELED) return;
    const dht_id_t *want = dht_self_id(g->r->s.nodes[g->target].dht);
    bool ok = status == 0 && res && res->n > 0 && !memcmp(&res->nodes[0].id, want, sizeof(*want));
    get_finish(g, status, ok, res ? res->hops : 0, res ? res->messages : 0,
               res ? res->duration_ms : g->r->s.now - g->started);
}

static void get_start(run_t *r, get_op_t *g)
{
    sim_node_t *n = &r->s.nodes[g->origin];
    g->started = r->s.now;
    r->s.busy++;
    int rc;
    if (r->o.node_lookups) {
        const dht_id_t *t = dht_self_id(r->s.nodes[g->target].dht);
        rc = dht_find_node(n->dht, t, r->s.now, find_done, g);
    } else {
        rc = dht_get(n->dht, &r->keys[g->target].key, r->s.now, get_done, g);
    }
    sim_node_rearm(&r->s, g->origin);
    if (rc < 0) get_finish(g, rc, false, 0, 0, 0);
}

static void on_app(void *ctx, void *p, uint32_t kind)
{
    run_t *r = ctx;
    switch (kind) {
    case APP_JOIN:
        join_start(r, p);
        break;
    case APP_JOIN_LOOKUP:
        join_lookup(r, p);
        break;
    case APP_PUT:
        put_start(r, p);
        break;
    case APP_GET:
        get_start(r, p);
        break;
    default:
        break;
    }
}

/* ---- phases ---- */

static int phase_form(run_t *r)
{
    uint32_t n = r->o.nodes;
    r->joins = calloc(n, sizeof(*r->joins));
    if (!r->joins) return -ENOMEM;
    uint64_t t0 = r->s.now;
    for (uint32_t i = 0; i < n; i++) {
        r->joins[i] = (join_op_t){.r = r, .idx = i};
        if (sim_schedule(&r->s, t0 + (uint64_t)i * r->o.join_gap_ms, &r->joins[i], APP_JOIN) < 0)
            return -ENOMEM;
    }
    int rc = sim_run(&r->s, t0 + (uint64_t)n * r->o.join_gap_ms + PHASE_SLACK_MS);
    uint32_t ok = 0;
    uint64_t contacts = 0;
    for (uint32_t i = 0; i < n; i++) {
        ok += r->joins[i].ok;
        if (r->s.nodes[i].dht) contacts += dht_contact_count(r->s.nodes[i].dht);
    }
    fprintf(stderr, "dht-sim: formed: %" PRIu32 "/%" PRIu32 " joined, %.1f contacts per node%s\n",
            ok, n, (double)contacts / n, rc < 0 ? " (cut off)" : "");
    progress(r, "formation done");
    return 0;
}

static int phase_store(run_t *r)
{
    uint32_t v = r->o.lookups < MAX_KEYS ? r->o.lookups : MAX_KEYS;
    if (v == 0) v = 1;
    r->keys = calloc(v, sizeof(*r->keys));
    if (!r->keys) return -ENOMEM;
    r->nkeys = v;
    uint64_t t0 = r->s.now + 1000;
    for (uint32_t j = 0; j < v; j++) {
        char name[48];
        int len = snprintf(name, sizeof(name), "key-%" PRIu32, j);
        key_op_t *k = &r->keys[j];
        k->r = r;
        dht_key_derive(&k->key, "sim", name, (size_t)len);
        int64_t pub = random_live(r, r->joined, -1);
        k->publisher = pub < 0 ? 0 : (uint32_t)pub;
        k->status = 1;
        if (sim_schedule(&r->s, t0 + j, k, APP_PUT) < 0) return -ENOMEM;
    }
    int rc = sim_run(&r->s, t0 + v + PHASE_SLACK_MS);
    uint32_t ok = 0;
    uint64_t stored = 0;
    for (uint32_t j = 0; j < v; j++) {
        ok += r->keys[j].status == 0;
        stored += r->keys[j].stored;
    }
    fprintf(stderr, "dht-sim: stored: %" PRIu32 "/%" PRIu32 " puts ok, %.1f copies each%s\n", ok, v,
            (double)stored / v, rc < 0 ? " (cut off)" : "");
    progress(r, "store done");
    return 0;
}

static void phase_churn(run_t *r)
{
    uint32_t n = r->o.nodes, kill = (uint32_t)(r->o.churn * n + 0.5);
    if (kill >= n) kill = n - 1;
    uint32_t *perm = malloc((size_t)n * sizeof(*perm));
    if (!perm) return;
    for (uint32_t i = 0; i < n; i++)
        perm[i] = i;
    for (uint32_t i = 0; i < kill; i++) {
        uint32_t j = i + (uint32_t)sim_rng_below(&r->s.rng, n - i);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        sim_node_kill(&r->s, perm[i]);
    }
    free(perm);
    fprintf(stderr, "dht-sim: churn: killed %" PRIu32 " of %" PRIu32 " nodes\n", kill, n);
}

static int phase_lookups(run_t *r)
{
    uint32_t l = r->o.lookups;
    r->gets = calloc(l ? l : 1, sizeof(*r->gets));
    if (!r->gets) return -ENOMEM;
    uint64_t t0 = r->s.now + 1000;
    for (uint32_t q = 0; q < l; q++) {
        get_op_t *g = &r->gets[q];
        g->r = r;
        int64_t origin;
        if (r->o.node_lookups) {
            int64_t t = random_live(r, r->joined, -1);
            g->target = t < 0 ? 0 : (uint32_t)t;
            origin = random_live(r, r->joined, g->target);
        } else {
            g->target = q % r->nkeys;
            origin = random_live(r, r->joined, r->keys[g->target].publisher);
        }
        if (origin < 0) origin = random_live(r, r->joined, -1);
        g->origin = origin < 0 ? 0 : (uint32_t)origin;
        if (sim_schedule(&r->s, t0 + (uint64_t)q * r->o.lookup_gap_ms, g, APP_GET) < 0)
            return -ENOMEM;
    }
    int rc = sim_run(&r->s, t0 + (uint64_t)l * r->o.lookup_gap_ms + PHASE_SLACK_MS);
    progress(r, rc < 0 ? "lookups cut off" : "lookups done");
    return 0;
}

/* ---- report ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array. */
static uint64_t pct(const uint64_t *v, size_t n, double p)
{
    if (n == 0) return 0;
    size_t rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1];
}

static int report(run_t *r, double wall_s)
{
    uint32_t l = r->o.lookups, ok = 0;
    uint64_t msgs = 0;
    uint64_t *hops = calloc(l ? l : 1, sizeof(*hops)), *lat = calloc(l ? l : 1, sizeof(*lat));
    uint64_t *cbl = calloc(l ? l : 1, sizeof(*cbl));
    uint32_t notfound = 0, unreach = 0, other = 0;
    if (!hops || !lat || !cbl) {
        free(hops);
        free(lat);
        free(cbl);
        return -ENOMEM;
    }
    for (uint32_t q = 0; q < l; q++) {
        const get_op_t *g = &r->gets[q];
        msgs += g->messages;
        if (!g->ok) {
            notfound += g->status == 0 || g->status == -ENOENT;
            unreach += g->status == -EHOSTUNREACH || g->status == -ETIMEDOUT;
            other += g->status != 0 && g->status != -ENOENT && g->status != -EHOSTUNREACH &&
                     g->status != -ETIMEDOUT;
            continue;
        }
        cbl[ok] = g->completed_ms;
        hops[ok] = g->hops > 0 ? (uint64_t)g->hops : 0;
        lat[ok] = g->latency_ms;
        ok++;
    }
    qsort(hops, ok, sizeof(*hops), cmp_u64);
    qsort(lat, ok, sizeof(*lat), cmp_u64);
    qsort(cbl, ok, sizeof(*cbl), cmp_u64);
    fprintf(stderr,
            "dht-sim: lookups ok %" PRIu32 ", not found %" PRIu32 ", unreachable %" PRIu32
            ", other errors %" PRIu32 "; until the callback: p50 %" PRIu64 " ms, p99 %" PRIu64
            " ms\n",
            ok, notfound, unreach, other, pct(cbl, ok, 0.5), pct(cbl, ok, 0.99));
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr,
            "dht-sim: datagrams sent %" PRIu64 ", delivered %" PRIu64 ", lost %" PRIu64
            ", to dead %" PRIu64 ", rejected %" PRIu64 ", periodic calls %" PRIu64 "\n",
            r->s.c.sent, r->s.c.delivered, r->s.c.lost, r->s.c.to_dead, r->s.c.rejected,
            r->s.c.periodic_calls);
    printf("{\"nodes\":%" PRIu32 ",\"lookups\":%" PRIu32 ",\"churn\":%g,\"success_rate\":%.6g,"
           "\"hops_p50\":%" PRIu64 ",\"hops_p99\":%" PRIu64 ",\"latency_ms_p50\":%" PRIu64
           ",\"latency_ms_p99\":%" PRIu64 ",\"messages_per_lookup\":%.2f,\"wall_seconds\":%.3f,"
           "\"peak_rss_bytes\":%" PRIu64 "}\n",
           r->o.nodes, l, r->o.churn, l ? (double)ok / l : 0.0, pct(hops, ok, 0.5),
           pct(hops, ok, 0.99), pct(lat, ok, 0.5), pct(lat, ok, 0.99), l ? (double)msgs / l : 0.0,
           wall_s, (uint64_t)ru.ru_maxrss * 1024);
    fflush(stdout);
    free(hops);
    free(lat);
    free(cbl);
    return 0;
}

/* ---- arguments ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: dht-sim --nodes N --lookups L [--churn F] [--latency-ms M] [--loss P]\n"
               "               [--seed S] [--crypto] [--node-lookups] [--contacts C]\n"
               "               [--join-gap-ms G] [--lookup-gap-ms G] [--peer-cache P]\n");
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || *s == '-' || *s == '\0') return -EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > max) return -EINVAL;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *end;
    if (!s || *s == '\0') return -EINVAL;
    double v = strtod(s, &end);
    if (*end || !(v >= lo && v <= hi)) return -EINVAL;
    *out = v;
    return 0;
}

static int parse_args(int argc, char **argv, opts_t *o)
{
    *o = (opts_t){.contacts = 3,
                  .peer_cache = SIM_PEER_CACHE,
                  .join_gap_ms = 2,
                  .lookup_gap_ms = 2,
                  .latency_ms = 10,
                  .seed = 1};
    bool have_n = false, have_l = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t u;
        int rc = 0;
        if (!strcmp(a, "--crypto")) {
            o->crypto = true;
            continue;
        }
        if (!strcmp(a, "--node-lookups")) {
            o->node_lookups = true;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--nodes")) {
            rc = parse_u64(v, SIM_MAX_NODES, &u);
            o->nodes = (uint32_t)u;
            have_n = rc == 0 && u > 0;
        } else if (!strcmp(a, "--lookups")) {
            rc = parse_u64(v, 10000000, &u);
            o->lookups = (uint32_t)u;
            have_l = rc == 0;
        } else if (!strcmp(a, "--seed")) {
            rc = parse_u64(v, UINT64_MAX, &o->seed);
        } else if (!strcmp(a, "--contacts")) {
            rc = parse_u64(v, 64, &u);
            o->contacts = (uint32_t)u;
        } else if (!strcmp(a, "--peer-cache")) {
            rc = parse_u64(v, 1u << 20, &u);
            o->peer_cache = (uint32_t)u;
        } else if (!strcmp(a, "--join-gap-ms")) {
            rc = parse_u64(v, 60000, &u);
            o->join_gap_ms = (uint32_t)u;
        } else if (!strcmp(a, "--lookup-gap-ms")) {
            rc = parse_u64(v, 60000, &u);
            o->lookup_gap_ms = (uint32_t)u;
        } else if (!strcmp(a, "--churn")) {
            rc = parse_double(v, 0, 0.99, &o->churn);
        } else if (!strcmp(a, "--latency-ms")) {
            rc = parse_double(v, 0, 10000, &o->latency_ms);
        } else if (!strcmp(a, "--loss")) {
            rc = parse_double(v, 0, 0.99, &o->loss);
        } else {
            fprintf(stderr, "dht-sim: unknown option '%s'\n", a);
            return -EINVAL;
        }
        if (rc < 0) {
            fprintf(stderr, "dht-sim: bad value for %s: '%s'\n", a, v ? v : "");
            return -EINVAL;
        }
        i++;
    }
    if (!have_n || !have_l) {
        fprintf(stderr, "dht-sim: --nodes N (N > 0) and --lookups L are required\n");
        return -EINVAL;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static run_t r; /* large and zeroed; the only instance */
    if (parse_args(argc, argv, &r.o) < 0) {
        usage(stderr);
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "dht-sim: libsodium failed to initialise\n");
        return 1;
    }
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    int rc = sim_init(&r.s, r.o.nodes, r.o.seed, r.o.latency_ms, r.o.loss, START_MS);
    if (rc < 0) goto fail;
    r.s.app_cb = on_app;
    r.s.app_ctx = &r;
    sim_rng_t g;
    sim_rng_seed(&g, r.o.seed ^ 0x6e65746bULL);
    for (size_t i = 0; i < sizeof(r.network_key); i += 8) {
        uint64_t x = sim_rng_next(&g);
        memcpy(r.network_key + i, &x, 8);
    }
    if ((rc = phase_form(&r)) < 0 || (rc = phase_store(&r)) < 0) goto fail;
    phase_churn(&r);
    if ((rc = phase_lookups(&r)) < 0) goto fail;
    clock_gettime(CLOCK_MONOTONIC, &w1);
    double wall = (double)(w1.tv_sec - w0.tv_sec) + (double)(w1.tv_nsec - w0.tv_nsec) / 1e9;
    if ((rc = report(&r, wall)) < 0) goto fail;
    sim_destroy(&r.s);
    free(r.joins);
    free(r.keys);
    free(r.gets);
    return 0;
fail:
    fprintf(stderr, "dht-sim: %s\n", strerror(-rc));
    sim_destroy(&r.s);
    free(r.joins);
    free(r.keys);
    free(r.gets);
    return 1;
}
