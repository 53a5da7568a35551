/* ratelimit.c: the HTTP server's per-client-address token buckets. A fixed table of
 * HTTP_MAX_RATE_ENTRIES buckets in sets of HTTP_RATE_WAYS: an address's set is chosen by a keyed
 * hash (SipHash, crypto_shorthash) under a key drawn at init, so a peer cannot predict which
 * addresses share a set and flush one on purpose; a new address in a full set replaces the least
 * recently seen entry of that set. Time is the caller's (milliseconds, monotonic): no clock is
 * read here. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "http/server-internal.h"

_Static_assert(HTTP_RATE_WAYS > 0 && HTTP_MAX_RATE_ENTRIES % HTTP_RATE_WAYS == 0,
               "HTTP_RATE_WAYS must divide HTTP_MAX_RATE_ENTRIES");
_Static_assert(crypto_shorthash_BYTES == 8, "crypto_shorthash gives 8 bytes");

#define N_SETS (HTTP_MAX_RATE_ENTRIES / HTTP_RATE_WAYS)

/* What rl->slots points into: the hash key lives beside the buckets. */
typedef struct rate_table {
    unsigned char key[crypto_shorthash_KEYBYTES];
    http_rate_entry_t slots[HTTP_MAX_RATE_ENTRIES];
} rate_table_t;

static rate_table_t *table_of(http_rate_entry_t *slots)
{
    return (rate_table_t *)(void *)((char *)slots - offsetof(rate_table_t, slots));
}

int http_ratelimit_init(http_ratelimit_t *rl, double rate, double burst)
{
    rl->rate = 0;
    rl->burst = 0;
    rl->slots = NULL;
    if (!(rate >= 0) || !isfinite(rate) || isnan(burst) || burst < 0) return -EINVAL;
    if (rate == 0) return 0; /* off */
    if (sodium_init() < 0) return -ENOMEM;
    rate_table_t *t = calloc(1, sizeof(*t));
    if (!t) return -ENOMEM;
    crypto_shorthash_keygen(t->key);
    rl->rate = rate;
    /* a bucket that cannot hold one token would refuse everything: one second's worth then */
    rl->burst = burst >= 1 ? burst : (rate > 1 ? rate : 1);
    if (isinf(rl->burst)) rl->burst = (double)UINT32_MAX;
    rl->slots = t->slots;
    return 0;
}

void http_ratelimit_free(http_ratelimit_t *rl)
{
    if (!rl || !rl->slots) return;
    rate_table_t *t = table_of(rl->slots);
    sodium_memzero(t->key, sizeof(t->key));
    free(t);
    rl->slots = NULL;
}

/* The first way of addr's set. */
static http_rate_entry_t *set_of(http_ratelimit_t *rl, const uint8_t addr[16])
{
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, addr, 16, table_of(rl->slots)->key);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | h[i];
    return rl->slots + (size_t)(v % N_SETS) * HTTP_RATE_WAYS;
}

/* addr's entry, or the one it replaces (a free way, else the least recently seen). */
static http_rate_entry_t *find(http_ratelimit_t *rl, const uint8_t addr[16], bool *found)
{
    http_rate_entry_t *set = set_of(rl, addr), *victim = NULL;
    for (int w = 0; w < HTTP_RATE_WAYS; w++) {
        http_rate_entry_t *e = &set[w];
        if (!e->used) {
            if (!victim || victim->used) victim = e;
            continue;
        }
        if (memcmp(e->addr, addr, 16) == 0) {
            *found = true;
            return e;
        }
        if (!victim || (victim->used && e->last_ms < victim->last_ms)) victim = e;
    }
    *found = false;
    return victim;
}

unsigned http_ratelimit_take(http_ratelimit_t *rl, const uint8_t addr[16], uint64_t now_ms)
{
    if (!rl->slots) return 0; /* off */
    bool found;
    http_rate_entry_t *e = find(rl, addr, &found);
    if (!found) {
        memcpy(e->addr, addr, 16);
        e->used = true;
        e->tokens = rl->burst;
    } else if (now_ms > e->last_ms) {
        e->tokens += (double)(now_ms - e->last_ms) * rl->rate / 1000.0;
        if (e->tokens > rl->burst) e->tokens = rl->burst;
    }
    /* A clock that went back refills nothing; the time since counts from the new reading. */
    e->last_ms = now_ms;
    if (e->tokens >= 1) {
        e->tokens -= 1;
        return 0;
    }
    /* the epsilon keeps a rounding error from turning an exact 2 s into 3 */
    double wait = ceil((1 - e->tokens) / rl->rate - 1e-9);
    if (wait < 1) return 1;
    if (wait >= (double)UINT_MAX) return UINT_MAX;
    return (unsigned)wait;
}
