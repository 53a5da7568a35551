/* routing.c: the Kademlia routing table (k-buckets that split, a replacement cache, the
 * IP-diversity cap) and the peer cache (pairwise keys, replay windows, RTT and tokens, keyed by
 * public key, bounded, pinned while the peer is in the table). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht-internal.h"

/* Far buckets cover most of the id space, so they hold more contacts (128, 64, 32 for the first
 * three depths; k below and for the last bucket): a lookup's first round lands closer. */
static int bucket_cap(const dht_table_t *t, int bi)
{
    if (bi == t->n - 1) return DHT_K;
    int cap = DHT_WIDE_BUCKET0 >> bi;
    return cap > DHT_K ? cap : DHT_K;
}

int dht_table_init(dht_table_t *t, const dht_id_t *self, bool diversity)
{
    t->self = *self;
    t->buckets = calloc(1, sizeof(dht_bucket_t));
    if (!t->buckets) return -ENOMEM;
    t->n = 1;
    t->buckets[0].cap = DHT_K;
    t->buckets[0].nodes = calloc(DHT_K, sizeof(dht_contact_t));
    if (!t->buckets[0].nodes) {
        free(t->buckets);
        return -ENOMEM;
    }
    t->diversity = diversity;
    return 0;
}

void dht_table_free(dht_table_t *t)
{
    for (int i = 0; i < t->n && t->buckets; i++) {
        free(t->buckets[i].nodes);
        free(t->buckets[i].repl);
    }
    free(t->buckets);
    t->buckets = NULL;
    t->n = 0;
}

int dht_table_bucket_of(const dht_table_t *t, const dht_id_t *id)
{
    int cp = dht_id_common_prefix(&t->self, id);
    return cp < t->n - 1 ? cp : t->n - 1;
}

dht_contact_t *dht_table_find(dht_table_t *t, const dht_id_t *id)
{
    dht_bucket_t *b = &t->buckets[dht_table_bucket_of(t, id)];
    for (int i = 0; i < b->n; i++)
        if (memcmp(b->nodes[i].id.b, id->b, DHT_ID_LEN) == 0) return &b->nodes[i];
    return NULL;
}

static int split_last(dht_table_t *t)
{
    if (t->n >= DHT_MAX_BUCKETS) return -ENOSPC;
    dht_contact_t *fresh = calloc(DHT_K, sizeof(dht_contact_t));
    if (!fresh) return -ENOMEM;
    dht_bucket_t *nb = realloc(t->buckets, sizeof(dht_bucket_t) * (size_t)(t->n + 1));
    if (!nb) {
        free(fresh);
        return -ENOMEM;
    }
    t->buckets = nb;
    dht_bucket_t *old = &t->buckets[t->n - 1], *neu = &t->buckets[t->n];
    memset(neu, 0, sizeof(*neu));
    neu->nodes = fresh;
    neu->cap = DHT_K;
    neu->last_touched = old->last_touched;
    int depth = t->n - 1;
    t->n++;
    int wide = bucket_cap(t, depth);
    if (wide > old->cap) {
        dht_contact_t *grown = realloc(old->nodes, sizeof(dht_contact_t) * (size_t)wide);
        if (grown) {
            old->nodes = grown;
            old->cap = wide;
        }
    }
    int keep = 0;
    for (int i = 0; i < old->n; i++) {
        if (dht_id_common_prefix(&t->self, &old->nodes[i].id) == depth)
            old->nodes[keep++] = old->nodes[i];
        else
            neu->nodes[neu->n++] = old->nodes[i];
    }
    old->n = keep;
    int rk = 0;
    for (int i = 0; i < old->nrepl; i++) {
        if (dht_id_common_prefix(&t->self, &old->repl[i].id) == depth) {
            old->repl[rk++] = old->repl[i];
        } else {
            if (!neu->repl) neu->repl = calloc(DHT_REPLACEMENTS, sizeof(dht_contact_t));
            if (neu->repl && neu->nrepl < DHT_REPLACEMENTS) neu->repl[neu->nrepl++] = old->repl[i];
        }
    }
    old->nrepl = rk;
    /* a widened bucket takes its replacements at once */
    while (old->nrepl > 0 && old->n < old->cap)
        old->nodes[old->n++] = old->repl[--old->nrepl];
    return 0;
}

static void fill_contact(dht_contact_t *c, const dht_id_t *id, const uint8_t *pk,
                         const dht_addr_t *addr, bool answered, uint64_t now)
{
    memset(c, 0, sizeof(*c));
    c->id = *id;
    memcpy(c->pk, pk, DHT_PK_LEN);
    c->addr = *addr;
    c->answered = answered;
    c->last_seen = now;
}

static void add_replacement(dht_bucket_t *b, const dht_contact_t *c)
{
    if (!b->repl && !(b->repl = calloc(DHT_REPLACEMENTS, sizeof(dht_contact_t)))) return;
    for (int i = 0; i < b->nrepl; i++) {
        if (memcmp(b->repl[i].id.b, c->id.b, DHT_ID_LEN) == 0) {
            /* seen again: it becomes the freshest, at the end */
            memmove(&b->repl[i], &b->repl[i + 1],
                    sizeof(dht_contact_t) * (size_t)(b->nrepl - i - 1));
            b->nrepl--;
            break;
        }
    }
    if (b->nrepl == DHT_REPLACEMENTS) {
        memmove(&b->repl[0], &b->repl[1], sizeof(dht_contact_t) * (DHT_REPLACEMENTS - 1));
        b->nrepl--;
    }
    b->repl[b->nrepl++] = *c;
}

int dht_table_insert(dht_table_t *t, const dht_id_t *id, const uint8_t pk[DHT_PK_LEN],
                     const dht_addr_t *addr, bool answered, uint64_t now,
                     dht_contact_t **evict_check)
{
    *evict_check = NULL;
    if (memcmp(id->b, t->self.b, DHT_ID_LEN) == 0) return DHT_INS_REJECTED;
    for (;;) {
        int bi = dht_table_bucket_of(t, id);
        dht_bucket_t *b = &t->buckets[bi];
        for (int i = 0; i < b->n; i++) {
            dht_contact_t *c = &b->nodes[i];
            if (memcmp(c->id.b, id->b, DHT_ID_LEN) == 0) {
                c->addr = *addr;
                c->last_seen = now;
                if (answered) {
                    c->answered = true;
                    c->fails = 0;
                }
                return DHT_INS_UPDATED;
            }
        }
        if (t->diversity && !dht_addr_is_loopback(addr)) {
            int same = 0;
            for (int i = 0; i < b->n; i++)
                if (dht_addr_same_subnet(&b->nodes[i].addr, addr)) same++;
            if (same >= DHT_DIVERSITY_PER_SUBNET) return DHT_INS_REJECTED;
        }
        if (b->n < b->cap) {
            fill_contact(&b->nodes[b->n++], id, pk, addr, answered, now);
            /* it may have been a replacement candidate */
            for (int i = 0; i < b->nrepl; i++) {
                if (memcmp(b->repl[i].id.b, id->b, DHT_ID_LEN) == 0) {
                    b->repl[i] = b->repl[--b->nrepl];
                    break;
                }
            }
            return DHT_INS_ADDED;
        }
        if (bi == t->n - 1 && split_last(t) == 0) continue;
        /* full: a failing contact is replaced at once, else the stalest is pinged first */
        int worst = -1;
        for (int i = 0; i < b->n; i++) {
            if (b->nodes[i].fails > 0 && (worst < 0 || b->nodes[i].fails > b->nodes[worst].fails))
                worst = i;
        }
        if (worst >= 0 && b->nodes[worst].fails >= 2) {
            fill_contact(&b->nodes[worst], id, pk, addr, answered, now);
            return DHT_INS_ADDED;
        }
        dht_contact_t c;
        fill_contact(&c, id, pk, addr, answered, now);
        add_replacement(b, &c);
        int stale = 0;
        for (int i = 1; i < b->n; i++)
            if (b->nodes[i].last_seen < b->nodes[stale].last_seen) stale = i;
        *evict_check = &b->nodes[stale];
        return DHT_INS_REPLACEMENT;
    }
}

int dht_table_remove(dht_table_t *t, const dht_id_t *id)
{
    dht_bucket_t *b = &t->buckets[dht_table_bucket_of(t, id)];
    for (int i = 0; i < b->n; i++) {
        if (memcmp(b->nodes[i].id.b, id->b, DHT_ID_LEN) != 0) continue;
        b->nodes[i] = b->nodes[--b->n];
        if (b->nrepl > 0) b->nodes[b->n++] = b->repl[--b->nrepl]; /* freshest replacement */
        return 1;
    }
    return 0;
}

static void closest_insert(dht_contact_t *out, int *cnt, int n, const dht_id_t *target,
                           const dht_contact_t *c)
{
    int pos = *cnt;
    while (pos > 0 && dht_id_cmp_dist(target, &c->id, &out[pos - 1].id) < 0)
        pos--;
    if (pos >= n) return;
    int last = *cnt < n ? *cnt : n - 1;
    memmove(&out[pos + 1], &out[pos], sizeof(dht_contact_t) * (size_t)(last - pos));
    out[pos] = *c;
    if (*cnt < n) (*cnt)++;
}

int dht_table_closest(const dht_table_t *t, const dht_id_t *target, dht_contact_t *out, int n)
{
    int cnt = 0;
    for (int bi = 0; bi < t->n; bi++) {
        const dht_bucket_t *b = &t->buckets[bi];
        for (int i = 0; i < b->n; i++) {
            if (b->nodes[i].fails >= DHT_MAX_FAILS) continue;
            closest_insert(out, &cnt, n, target, &b->nodes[i]);
        }
    }
    return cnt;
}

size_t dht_table_count(const dht_table_t *t)
{
    size_t n = 0;
    for (int i = 0; i < t->n; i++)
        n += (size_t)t->buckets[i].n;
    return n;
}

/* ---- peer cache: open addressing on the public key, linear probing, backward-shift delete ---- */

static size_t peer_hash(const uint8_t *pk)
{
    uint64_t h;
    memcpy(&h, pk + 8, sizeof(h)); /* public keys are uniformly random */
    return (size_t)h;
}

int dht_peers_init(dht_peers_t *ps, size_t max)
{
    memset(ps, 0, sizeof(*ps));
    ps->max = max;
    ps->cap = 64;
    ps->slots = calloc(ps->cap, sizeof(dht_peer_t));
    return ps->slots ? 0 : -ENOMEM;
}

void dht_peers_free(dht_peers_t *ps)
{
    free(ps->slots);
    ps->slots = NULL;
}

dht_peer_t *dht_peers_find(dht_peers_t *ps, const uint8_t pk[DHT_PK_LEN])
{
    size_t mask = ps->cap - 1;
    for (size_t i = peer_hash(pk) & mask;; i = (i + 1) & mask) {
        dht_peer_t *p = &ps->slots[i];
        if (!p->used) return NULL;
        if (memcmp(p->pk, pk, DHT_PK_LEN) == 0) return p;
    }
}

static void peers_delete(dht_peers_t *ps, size_t i)
{
    size_t mask = ps->cap - 1;
    if (!ps->slots[i].pinned) ps->unpinned--;
    ps->slots[i].used = false;
    ps->count--;
    for (size_t j = (i + 1) & mask; ps->slots[j].used; j = (j + 1) & mask) {
        size_t home = peer_hash(ps->slots[j].pk) & mask;
        /* move j back into the hole at i if its home is not within (i, j] */
        bool between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            ps->slots[i] = ps->slots[j];
            ps->slots[j].used = false;
            i = j;
        }
    }
}

static int peers_grow(dht_peers_t *ps)
{
    size_t ncap = ps->cap * 2;
    dht_peer_t *ns = calloc(ncap, sizeof(dht_peer_t));
    if (!ns) return -ENOMEM;
    for (size_t i = 0; i < ps->cap; i++) {
        if (!ps->slots[i].used) continue;
        size_t j = peer_hash(ps->slots[i].pk) & (ncap - 1);
        while (ns[j].used)
            j = (j + 1) & (ncap - 1);
        ns[j] = ps->slots[i];
    }
    free(ps->slots);
    ps->slots = ns;
    ps->cap = ncap;
    return 0;
}

dht_peer_t *dht_peers_get(dht_peers_t *ps, const uint8_t pk[DHT_PK_LEN], uint32_t rnd,
                          bool *created)
{
    *created = false;
    dht_peer_t *p = dht_peers_find(ps, pk);
    if (p) return p;
    if (ps->unpinned >= ps->max) {
        /* evict the least recently used of a few unpinned samples */
        size_t best = SIZE_MAX;
        for (size_t k = 0, i = rnd & (ps->cap - 1); k < ps->cap && k < 64 * 8; k++) {
            dht_peer_t *q = &ps->slots[i];
            if (q->used && !q->pinned &&
                (best == SIZE_MAX || q->last_used < ps->slots[best].last_used))
                best = i;
            i = (i + 1) & (ps->cap - 1);
            if (best != SIZE_MAX && k >= 64) break;
        }
        if (best != SIZE_MAX) peers_delete(ps, best);
    }
    if ((ps->count + 1) * 4 > ps->cap * 3 && peers_grow(ps) != 0) return NULL;
    size_t mask = ps->cap - 1;
    size_t i = peer_hash(pk) & mask;
    while (ps->slots[i].used)
        i = (i + 1) & mask;
    p = &ps->slots[i];
    memset(p, 0, sizeof(*p));
    memcpy(p->pk, pk, DHT_PK_LEN);
    dht_id_from_pk(&p->id, pk);
    p->used = true;
    ps->count++;
    ps->unpinned++;
    *created = true;
    return p;
}
