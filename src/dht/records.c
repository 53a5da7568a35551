/* records.c: the record store: signed values grouped by key, one per publisher, bounded in count;
 * a lower sequence never replaces a higher one; expired records are dropped. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht-internal.h"

int dht_store_init(dht_store_t *s)
{
    memset(s, 0, sizeof(*s));
    s->cap = 64;
    s->sets = calloc(s->cap, sizeof(*s->sets));
    return s->sets ? 0 : -ENOMEM;
}

static void set_free(dht_recset_t *set)
{
    if (!set) return;
    for (int i = 0; i < set->n; i++)
        free(set->recs[i]);
    free(set->recs);
    free(set);
}

void dht_store_free(dht_store_t *s)
{
    if (!s->sets) return;
    for (size_t i = 0; i < s->cap; i++)
        set_free(s->sets[i]);
    free(s->sets);
    s->sets = NULL;
}

static size_t key_hash(const dht_id_t *k)
{
    uint64_t h;
    memcpy(&h, k->b, sizeof(h));
    return (size_t)h;
}

dht_recset_t *dht_store_find(dht_store_t *s, const dht_id_t *key)
{
    size_t mask = s->cap - 1;
    for (size_t i = key_hash(key) & mask; s->sets[i]; i = (i + 1) & mask)
        if (memcmp(s->sets[i]->key.b, key->b, DHT_ID_LEN) == 0) return s->sets[i];
    return NULL;
}

static int grow(dht_store_t *s)
{
    size_t ncap = s->cap * 2;
    dht_recset_t **ns = calloc(ncap, sizeof(*ns));
    if (!ns) return -ENOMEM;
    for (size_t i = 0; i < s->cap; i++) {
        if (!s->sets[i]) continue;
        size_t j = key_hash(&s->sets[i]->key) & (ncap - 1);
        while (ns[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = s->sets[i];
    }
    free(s->sets);
    s->sets = ns;
    s->cap = ncap;
    return 0;
}

static void remove_slot(dht_store_t *s, size_t i)
{
    size_t mask = s->cap - 1;
    s->sets[i] = NULL;
    s->nsets--;
    for (size_t j = (i + 1) & mask; s->sets[j]; j = (j + 1) & mask) {
        size_t home = key_hash(&s->sets[j]->key) & mask;
        bool between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!between) {
            s->sets[i] = s->sets[j];
            s->sets[j] = NULL;
            i = j;
        }
    }
}

int dht_store_put(dht_store_t *s, const dht_record_t *r, uint64_t wall_s)
{
    if (r->expires <= wall_s) return -ETIME;
    if (r->expires > wall_s + DHT_MAX_TTL_S + 300) return -EBADMSG;
    dht_recset_t *set = dht_store_find(s, &r->key);
    if (set) {
        for (int i = 0; i < set->n; i++) {
            dht_record_t *old = set->recs[i];
            if (memcmp(old->publisher, r->publisher, DHT_PK_LEN) != 0) continue;
            if (r->seq < old->seq) return -ESTALE;
            if (r->seq == old->seq && r->expires <= old->expires) return 0; /* nothing new */
            if (dht_record_verify(r) != 0) return -EBADMSG;
            *old = *r;
            return 0;
        }
        if (set->n >= DHT_MAX_VALUES_PER_KEY) return -ENOSPC;
    }
    if (s->nrecords >= DHT_MAX_RECORDS) return -ENOSPC;
    if (dht_record_verify(r) != 0) return -EBADMSG;
    if (!set) {
        if ((s->nsets + 1) * 4 > s->cap * 3 && grow(s) != 0) return -ENOMEM;
        set = calloc(1, sizeof(*set));
        if (!set) return -ENOMEM;
        set->key = r->key;
        size_t mask = s->cap - 1, i = key_hash(&r->key) & mask;
        while (s->sets[i])
            i = (i + 1) & mask;
        s->sets[i] = set;
        s->nsets++;
    }
    dht_record_t **nr = realloc(set->recs, sizeof(*nr) * (size_t)(set->n + 1));
    if (!nr) return -ENOMEM;
    set->recs = nr;
    set->recs[set->n] = malloc(sizeof(dht_record_t));
    if (!set->recs[set->n]) return -ENOMEM;
    *set->recs[set->n++] = *r;
    s->nrecords++;
    return 0;
}

size_t dht_store_expire(dht_store_t *s, uint64_t wall_s)
{
    size_t dropped = 0;
    for (size_t i = 0; i < s->cap;) {
        dht_recset_t *set = s->sets[i];
        if (!set) {
            i++;
            continue;
        }
        int keep = 0;
        for (int j = 0; j < set->n; j++) {
            if (set->recs[j]->expires <= wall_s) {
                free(set->recs[j]);
                dropped++;
                s->nrecords--;
            } else {
                set->recs[keep++] = set->recs[j];
            }
        }
        set->n = keep;
        if (keep == 0) {
            remove_slot(s, i);
            set_free(set);
            continue; /* slot i now holds a shifted set (or is empty): look again */
        }
        i++;
    }
    return dropped;
}
