/* net.c: the simulator's random generator, event queue, node timer heap, virtual network
 * (addresses, per-pair log-normal latency, loss) and the run loop that delivers datagrams and runs
 * timers. */
#include "sim/sim.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NO_POS UINT32_MAX

/* ---- random numbers ---- */

uint64_t sim_mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void sim_rng_seed(sim_rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) {
        seed = sim_mix64(seed);
        r->s[i] = seed;
    }
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(sim_rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static double unit_double(uint64_t x)
{
    return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

double sim_rng_double(sim_rng_t *r)
{
    return unit_double(sim_rng_next(r));
}

uint64_t sim_rng_below(sim_rng_t *r, uint64_t n)
{
    /* Lemire's multiply-shift with rejection keeps it unbiased. */
    uint64_t threshold = (0 - n) % n;
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t x = sim_rng_next(r);
        unsigned __int128 m = (unsigned __int128)x * n;
        if ((uint64_t)m >= threshold) return (uint64_t)(m >> 64);
    }
    return sim_rng_next(r) % n;
}

/* ---- addresses ---- */

void sim_addr_of(uint32_t idx, dht_addr_t *out)
{
    uint32_t v = idx + 1;
    memset(out, 0, sizeof(*out));
    out->family = 4;
    out->ip[0] = 10;
    out->ip[1] = (uint8_t)(v >> 16);
    out->ip[2] = (uint8_t)(v >> 8);
    out->ip[3] = (uint8_t)v;
    out->port = SIM_PORT;
}

int64_t sim_idx_of(const sim_t *s, const dht_addr_t *a)
{
    if (a->family != 4 || a->ip[0] != 10 || a->port != SIM_PORT) return -1;
    uint32_t v = ((uint32_t)a->ip[1] << 16) | ((uint32_t)a->ip[2] << 8) | a->ip[3];
    if (v == 0 || v > s->n) return -1;
    return (int64_t)v - 1;
}

/* ---- event queue ---- */

static bool ev_less(const sim_event_t *a, const sim_event_t *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static int ev_push(sim_t *s, sim_event_t e)
{
    if (s->nev == s->capev) {
        size_t cap = s->capev ? s->capev * 2 : 4096;
        sim_event_t *v = realloc(s->ev, cap * sizeof(*v));
        if (!v) return -ENOMEM;
        s->ev = v;
        s->capev = cap;
    }
    e.seq = s->next_seq++;
    size_t i = s->nev++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ev_less(&e, &s->ev[parent])) break;
        s->ev[i] = s->ev[parent];
        i = parent;
    }
    s->ev[i] = e;
    return 0;
}

static sim_event_t ev_pop(sim_t *s)
{
    sim_event_t top = s->ev[0];
    sim_event_t last = s->ev[--s->nev];
    size_t i = 0, n = s->nev;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const sim_event_t *best = &last;
        if (l < n && ev_less(&s->ev[l], best)) {
            m = l;
            best = &s->ev[l];
        }
        if (l + 1 < n && ev_less(&s->ev[l + 1], best)) m = l + 1;
        if (m == i) break;
        s->ev[i] = s->ev[m];
        i = m;
    }
    if (n > 0) s->ev[i] = last;
    return top;
}

/* ---- node timer heap (indexed, so a deadline can move) ---- */

static bool tm_less(const sim_t *s, uint32_t a, uint32_t b)
{
    uint64_t da = s->nodes[a].deadline, db = s->nodes[b].deadline;
    return da < db || (da == db && a < b);
}

static void tm_set(sim_t *s, size_t pos, uint32_t idx)
{
    s->tm[pos] = idx;
    s->nodes[idx].hpos = (uint32_t)pos;
}

static void tm_up(sim_t *s, size_t i)
{
    uint32_t x = s->tm[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!tm_less(s, x, s->tm[parent])) break;
        tm_set(s, i, s->tm[parent]);
        i = parent;
    }
    tm_set(s, i, x);
}

static void tm_down(sim_t *s, size_t i)
{
    uint32_t x = s->tm[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        uint32_t best = x;
        if (l < s->ntm && tm_less(s, s->tm[l], best)) {
            m = l;
            best = s->tm[l];
        }
        if (l + 1 < s->ntm && tm_less(s, s->tm[l + 1], best)) m = l + 1;
        if (m == i) break;
        tm_set(s, i, s->tm[m]);
        i = m;
    }
    tm_set(s, i, x);
}

static void tm_remove(sim_t *s, uint32_t idx)
{
    uint32_t pos = s->nodes[idx].hpos;
    if (pos == NO_POS) return;
    s->nodes[idx].hpos = NO_POS;
    uint32_t last = s->tm[--s->ntm];
    if (pos == s->ntm) return;
    tm_set(s, pos, last);
    tm_up(s, pos);
    tm_down(s, s->nodes[last].hpos);
}

static void tm_update(sim_t *s, uint32_t idx, uint64_t deadline)
{
    sim_node_t *n = &s->nodes[idx];
    if (deadline == UINT64_MAX) {
        tm_remove(s, idx);
        n->deadline = deadline;
        return;
    }
    n->deadline = deadline;
    if (n->hpos == NO_POS) {
        s->tm[s->ntm] = idx;
        n->hpos = (uint32_t)s->ntm;
        s->ntm++;
        tm_up(s, n->hpos);
        return;
    }
    tm_up(s, n->hpos);
    tm_down(s, n->hpos);
}

void sim_node_rearm(sim_t *s, uint32_t idx)
{
    sim_node_t *n = &s->nodes[idx];
    if (!n->alive || !n->dht) return;
    uint64_t d = dht_next_deadline(n->dht);
    if (d <= s->now) d = s->now + 1;
    tm_update(s, idx, d);
}

void sim_node_kill(sim_t *s, uint32_t idx)
{
    s->nodes[idx].alive = false;
    tm_remove(s, idx);
}

/* ---- set-up ---- */

int sim_init(sim_t *s, uint32_t n, uint64_t seed, double latency_ms, double loss, uint64_t start)
{
    memset(s, 0, sizeof(*s));
    if (n == 0 || n > SIM_MAX_NODES || latency_ms < 0 || loss < 0 || loss >= 1) return -EINVAL;
    s->nodes = calloc(n, sizeof(*s->nodes));
    s->tm = calloc(n, sizeof(*s->tm));
    if (!s->nodes || !s->tm) {
        sim_destroy(s);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < n; i++) {
        s->nodes[i].sim = s;
        s->nodes[i].idx = i;
        s->nodes[i].hpos = NO_POS;
        s->nodes[i].deadline = UINT64_MAX;
    }
    s->n = n;
    s->seed = seed;
    s->latency_ms = latency_ms;
    s->loss = loss;
    s->now = start;
    sim_rng_seed(&s->rng, seed ^ 0x5157u);
    return 0;
}

void sim_destroy(sim_t *s)
{
    for (uint32_t i = 0; s->nodes && i < s->n; i++) {
        dht_free(s->nodes[i].dht);
        s->nodes[i].dht = NULL;
    }
    for (size_t i = 0; i < s->nev; i++)
        if (s->ev[i].kind == SIM_EV_DELIVER) free(s->ev[i].p);
    free(s->ev);
    s->ev = NULL;
    s->nev = s->capev = 0;
    free(s->nodes);
    free(s->tm);
    s->nodes = NULL;
    s->tm = NULL;
    s->n = 0;
}

/* ---- the network ---- */

/* One-way delay between a and b in ms: log-normal with median latency_ms and sigma 0.5, the same
 * for every datagram of the pair (in both directions), plus +-5% jitter per datagram. */
static uint64_t delay_ms(sim_t *s, uint32_t a, uint32_t b)
{
    if (s->latency_ms <= 0) return 0;
    uint32_t lo = a < b ? a : b, hi = a < b ? b : a;
    uint64_t h1 = sim_mix64(s->seed ^ sim_mix64(((uint64_t)lo << 32) | hi));
    uint64_t h2 = sim_mix64(h1);
    double u1 = unit_double(h1) + 1e-12, u2 = unit_double(h2);
    double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
    double d = s->latency_ms * exp(0.5 * z);
    if (d > 20 * s->latency_ms) d = 20 * s->latency_ms;
    d *= 0.95 + 0.1 * sim_rng_double(&s->rng);
    uint64_t ms = (uint64_t)(d + 0.5);
    return ms ? ms : 1;
}

void sim_send(void *ctx, const uint8_t *buf, size_t len, const dht_addr_t *to)
{
    sim_node_t *src = ctx;
    sim_t *s = src->sim;
    s->c.sent++;
    int64_t dst = sim_idx_of(s, to);
    if (dst < 0 || len > UINT16_MAX) {
        s->c.unroutable++;
        return;
    }
    if (s->loss > 0 && sim_rng_double(&s->rng) < s->loss) {
        s->c.lost++;
        return;
    }
    sim_pkt_t *p = malloc(sizeof(*p) + len);
    if (!p) {
        s->c.lost++;
        return;
    }
    p->from = src->idx;
    p->to = (uint32_t)dst;
    p->len = (uint16_t)len;
    memcpy(p->data, buf, len);
    sim_event_t e = {
        .t = s->now + delay_ms(s, src->idx, (uint32_t)dst), .p = p, .kind = SIM_EV_DELIVER};
    if (ev_push(s, e) < 0) {
        free(p);
        s->c.lost++;
    }
}

int sim_schedule(sim_t *s, uint64_t t, void *p, uint32_t a)
{
    sim_event_t e = {.t = t < s->now ? s->now : t, .p = p, .kind = SIM_EV_APP, .a = a};
    return ev_push(s, e);
}

static void deliver(sim_t *s, sim_pkt_t *p)
{
    sim_node_t *dst = &s->nodes[p->to];
    if (!dst->alive || !dst->dht || !s->nodes[p->from].alive) {
        s->c.to_dead++;
        return;
    }
    dht_addr_t from;
    sim_addr_of(p->from, &from);
    s->c.delivered++;
    if (dht_input(dst->dht, p->data, p->len, &from, s->now) < 0) s->c.rejected++;
    sim_node_rearm(s, p->to);
}

static void run_timer(sim_t *s)
{
    uint32_t idx = s->tm[0];
    sim_node_t *n = &s->nodes[idx];
    s->c.periodic_calls++;
    uint64_t d = dht_periodic(n->dht, s->now);
    if (d <= s->now) d = s->now + 1;
    tm_update(s, idx, d);
}

/* Processes the earliest event or timer if it is due at or before limit. Returns false when
 * nothing is due. */
static bool step(sim_t *s, uint64_t limit)
{
    uint64_t te = s->nev ? s->ev[0].t : UINT64_MAX;
    uint64_t tt = s->ntm ? s->nodes[s->tm[0]].deadline : UINT64_MAX;
    uint64_t t = te < tt ? te : tt;
    if (t == UINT64_MAX || t > limit) return false;
    if (t > s->now) s->now = t;
    s->c.events++;
    if (tt <= te) {
        run_timer(s);
        return true;
    }
    sim_event_t e = ev_pop(s);
    if (e.kind == SIM_EV_DELIVER) {
        deliver(s, e.p);
        free(e.p);
    } else if (s->app_cb) {
        s->app_cb(s->app_ctx, e.p, e.a);
    }
    return true;
}

int sim_run(sim_t *s, uint64_t max_t)
{
    while (s->nev > 0 || s->busy > 0) {
        if (!step(s, max_t)) return -ETIMEDOUT;
    }
    return 0;
}

void sim_run_until(sim_t *s, uint64_t t)
{
    while (step(s, t)) {
    }
    if (s->now < t) s->now = t;
}
