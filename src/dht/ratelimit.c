/* ratelimit.c: token buckets per source IP (bounded table, least recently seen evicted) and one
 * global bucket. Checked before any cryptography so floods cost little. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht-internal.h"

#define RL_INITIAL_SOURCES 64 /* the table starts small and doubles under pressure */

int dht_rl_init(dht_ratelimit_t *rl, double per_source, double burst, double global)
{
    memset(rl, 0, sizeof(*rl));
    rl->nsrc = RL_INITIAL_SOURCES < DHT_RATE_SOURCES ? RL_INITIAL_SOURCES : DHT_RATE_SOURCES;
    rl->src = calloc(rl->nsrc, sizeof(*rl->src));
    if (!rl->src) return -ENOMEM;
    rl->rate = per_source;
    rl->burst = burst;
    rl->global_rate = global;
    rl->global_tokens = global;
    return 0;
}

void dht_rl_free(dht_ratelimit_t *rl)
{
    free(rl->src);
    rl->src = NULL;
}

/* Doubles the table (forgetting its contents) when live entries are being evicted. */
static void grow(dht_ratelimit_t *rl)
{
    size_t n = rl->nsrc * 2;
    if (n > DHT_RATE_SOURCES) return;
    struct dht_rl_src *ns = calloc(n, sizeof(*ns));
    if (!ns) return;
    free(rl->src);
    rl->src = ns;
    rl->nsrc = n;
}

static void refill(double *tokens, uint64_t *last, double rate, double cap, uint64_t now)
{
    if (now > *last) {
        *tokens += rate * (double)(now - *last) / 1000.0;
        if (*tokens > cap) *tokens = cap;
        *last = now;
    }
}

bool dht_rl_allow(dht_ratelimit_t *rl, const dht_addr_t *addr, uint64_t now)
{
    size_t iplen = addr->family == 4 ? 4 : 16;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < iplen; i++)
        h = (h ^ addr->ip[i]) * 1099511628211ull;
    /* 4-way set: the entry for this IP, else the least recently seen of the set */
    size_t base = (size_t)(h % (rl->nsrc / 4)) * 4, victim = base;
    struct dht_rl_src *e = NULL;
    for (size_t i = base; i < base + 4; i++) {
        struct dht_rl_src *c = &rl->src[i];
        if (c->family == addr->family && memcmp(c->ip, addr->ip, iplen) == 0) {
            e = c;
            break;
        }
        if (c->last < rl->src[victim].last) victim = i;
    }
    if (!e && rl->src[victim].family && now - rl->src[victim].last < 1000 &&
        rl->nsrc < DHT_RATE_SOURCES) {
        grow(rl);
        base = (size_t)(h % (rl->nsrc / 4)) * 4;
        victim = base;
    }
    if (!e) {
        e = &rl->src[victim];
        e->family = addr->family;
        memcpy(e->ip, addr->ip, 16);
        e->tokens = rl->burst;
        e->last = now;
    }
    refill(&rl->global_tokens, &rl->global_last, rl->global_rate, rl->global_rate, now);
    refill(&e->tokens, &e->last, rl->rate, rl->burst, now);
    if (e->tokens < 1.0 || rl->global_tokens < 1.0) return false;
    e->tokens -= 1.0;
    rl->global_tokens -= 1.0;
    return true;
}
