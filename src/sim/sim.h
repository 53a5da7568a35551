/* sim.h: the simulator's virtual clock and network. Many dht_t instances share one process; every
 * datagram they send becomes an event delivered to its destination after a per-pair heavy-tailed
 * delay (or dropped with the loss probability), and each node's dht_periodic() runs only when its
 * deadline is due. Nothing touches a real network or a real clock. */
#ifndef P2P_SIM_H
#define P2P_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dht/dht.h"

#ifndef SIM_MAX_NODES
#define SIM_MAX_NODES 4000000 /* nodes one run may hold (virtual IPv4 10.0.0.0/8 addressing) */
#endif
#ifndef SIM_PORT
#define SIM_PORT 4000 /* UDP port label of every virtual node */
#endif

/* xoshiro256** seeded through splitmix64. */
typedef struct sim_rng {
    uint64_t s[4];
} sim_rng_t;

/* Seeds r from a 64-bit value. */
void sim_rng_seed(sim_rng_t *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t sim_rng_next(sim_rng_t *r);
/* Uniform double in [0, 1). */
double sim_rng_double(sim_rng_t *r);
/* Uniform integer in [0, n); n > 0. */
uint64_t sim_rng_below(sim_rng_t *r, uint64_t n);
/* splitmix64 finaliser: a good 64-bit mixing function. */
uint64_t sim_mix64(uint64_t x);

/* Event kinds in the event queue. */
enum sim_ev_kind { SIM_EV_DELIVER = 1, SIM_EV_APP };

typedef struct sim_event {
    uint64_t t;   /* virtual ms */
    uint64_t seq; /* insertion order: breaks ties deterministically */
    void *p;      /* SIM_EV_DELIVER: a sim_pkt_t; SIM_EV_APP: opaque */
    uint32_t kind;
    uint32_t a; /* SIM_EV_APP: opaque argument */
} sim_event_t;

typedef struct sim_pkt {
    uint32_t from, to;
    uint16_t len;
    uint8_t data[];
} sim_pkt_t;

typedef struct sim sim_t;

typedef struct sim_node {
    dht_t *dht; /* NULL until the node joins */
    sim_t *sim;
    uint64_t deadline;
    uint32_t idx;
    uint32_t hpos; /* position in the timer heap, UINT32_MAX when absent */
    bool alive;
} sim_node_t;

/* Called for every SIM_EV_APP event at its time. */
typedef void (*sim_app_cb)(void *ctx, void *p, uint32_t a);

typedef struct sim_counters {
    uint64_t sent, delivered, lost, to_dead, unroutable, rejected, periodic_calls, events;
} sim_counters_t;

struct sim {
    uint64_t now;
    uint64_t seed;
    double latency_ms; /* median one-way delay; 0 = immediate */
    double loss;
    sim_rng_t rng;
    sim_node_t *nodes;
    uint32_t n;
    /* event queue: binary min-heap on (t, seq) */
    sim_event_t *ev;
    size_t nev, capev;
    uint64_t next_seq;
    /* node timers: binary min-heap of node indices on (deadline, idx) */
    uint32_t *tm;
    size_t ntm;
    sim_app_cb app_cb;
    void *app_ctx;
    uint64_t busy; /* operations the driver waits for; the run loop stops when 0 and queue empty */
    sim_counters_t c;
};

/* Prepares a simulator for n nodes (none joined yet). Returns 0, -EINVAL or -ENOMEM. */
int sim_init(sim_t *s, uint32_t n, uint64_t seed, double latency_ms, double loss, uint64_t start);

/* Frees the queue, the packets in it and the node array; frees every node's dht_t (pending
 * operation callbacks run with -ECANCELED first). Accepts a zeroed sim. */
void sim_destroy(sim_t *s);

/* The virtual address of node idx: 10.a.b.c:SIM_PORT with a.b.c = idx + 1. */
void sim_addr_of(uint32_t idx, dht_addr_t *out);

/* Maps an address back to a node index; returns -1 when it is not a node's address. */
int64_t sim_idx_of(const sim_t *s, const dht_addr_t *a);

/* The send callback to put in dht_config_t (send_ctx = &s->nodes[idx]). */
void sim_send(void *ctx, const uint8_t *buf, size_t len, const dht_addr_t *to);

/* Schedules an application event at absolute virtual time t. Returns 0 or -ENOMEM. */
int sim_schedule(sim_t *s, uint64_t t, void *p, uint32_t a);

/* Re-reads node idx's deadline from the core and files it in the timer heap. */
void sim_node_rearm(sim_t *s, uint32_t idx);

/* Removes node idx from the network: its timers stop and datagrams to or from it are dropped. */
void sim_node_kill(sim_t *s, uint32_t idx);

/* Runs events in time order until nothing is queued and s->busy is 0, or until virtual time
 * would pass max_t. Returns 0 when it went quiet, -ETIMEDOUT when max_t stopped it. */
int sim_run(sim_t *s, uint64_t max_t);

/* Runs every event and timer due up to and including virtual time t, then sets now = t. */
void sim_run_until(sim_t *s, uint64_t t);

#endif
