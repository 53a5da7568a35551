/* publish.c: this node's own records (signed, stored on the k closest nodes, stored again before
 * they expire) and replication of held records to newcomers closer to their keys. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht-internal.h"

static void put_done_noop(void *arg, int status, size_t stored)
{
    (void)arg, (void)status, (void)stored;
}

void dht_republish(dht_t *dht, dht_pub_t *pub, uint64_t now)
{
    uint64_t left_ms = (pub->rec.expires - dht_wall_s(dht, now)) * 1000u;
    uint64_t every = left_ms / 4 < DHT_REPUBLISH_MS ? left_ms / 4 : DHT_REPUBLISH_MS;
    pub->next_republish = now + (every > 1000 ? every : 1000);
    int op = dht_op_start(dht, DHT_OP_PUT, &pub->rec.key, now);
    if (op < 0) return;
    dht_op_t *o = &dht->ops[op];
    o->rec = malloc(sizeof(dht_record_t));
    if (!o->rec) {
        dht_op_abort(dht, op);
        return;
    }
    *o->rec = pub->rec;
    o->cb.put = put_done_noop;
    dht_op_step(dht, op, now);
}

/* How many table contacts are closer to key than we are. A contact in bucket j (sharing j bits
 * with us) is closer exactly when key differs from our id at bit j; the last bucket mixes depths
 * and is checked one by one. */
static int count_closer(const dht_t *dht, const dht_id_t *key)
{
    const dht_table_t *t = &dht->table;
    int n = 0;
    for (int j = 0; j < t->n - 1; j++) {
        uint8_t mask = (uint8_t)(0x80 >> (j % 8));
        if ((key->b[j / 8] ^ dht->self.b[j / 8]) & mask) n += t->buckets[j].n;
    }
    const dht_bucket_t *last = &t->buckets[t->n - 1];
    for (int i = 0; i < last->n; i++)
        if (dht_id_cmp_dist(key, &last->nodes[i].id, &dht->self) < 0) n++;
    return n;
}

void dht_replicate_to(dht_t *dht, const dht_peer_t *p, const dht_addr_t *addr, uint64_t now)
{
    if (!p->has_token) return;
    uint8_t pk[DHT_PK_LEN];
    memcpy(pk, p->pk, DHT_PK_LEN);
    dht_id_t pid = p->id;
    int sent = 0;
    for (size_t i = 0; i < dht->store.cap && sent < 32; i++) {
        dht_recset_t *set = dht->store.sets[i];
        /* only for keys we are responsible for (among the k closest we know of) and that the
         * newcomer is closer to than we are */
        if (!set || dht_id_cmp_dist(&set->key, &pid, &dht->self) >= 0 ||
            count_closer(dht, &set->key) >= DHT_K)
            continue;
        for (int j = 0; j < set->n && sent < 32; j++) {
            uint8_t rec[DHT_MAX_PLAIN];
            int n = dht_record_pack(set->recs[j], rec, sizeof(rec));
            if (n < 0) continue;
            dht_msg_t m = {.type = DHT_MSG_STORE, .record = rec, .record_len = (size_t)n};
            if (dht_send_request(dht, &m, pk, addr, false, DHT_REQ_STORE, -1, -1, now) >= 0) sent++;
        }
    }
}

int dht_put(dht_t *dht, const dht_id_t *key, const uint8_t *value, size_t len, uint32_t ttl_s,
            uint64_t now, dht_put_cb cb, void *arg)
{
    if (len > DHT_MAX_VALUE) return -EMSGSIZE;
    if (ttl_s == 0 || ttl_s > DHT_MAX_TTL_S) return -EINVAL;
    dht_pub_t *pub = NULL;
    for (int i = 0; i < dht->npubs; i++)
        if (memcmp(dht->pubs[i].rec.key.b, key->b, DHT_ID_LEN) == 0) pub = &dht->pubs[i];
    if (!pub) {
        if (dht->npubs >= DHT_MAX_PUBLICATIONS) return -ENOBUFS;
        dht_pub_t *np = realloc(dht->pubs, sizeof(dht_pub_t) * (size_t)(dht->npubs + 1));
        if (!np) return -ENOMEM;
        dht->pubs = np;
        pub = &dht->pubs[dht->npubs++];
        memset(pub, 0, sizeof(*pub));
    }
    uint64_t wall_ms = (uint64_t)((int64_t)now + dht->wall_offset);
    dht_record_t *r = &pub->rec;
    uint64_t seq = r->seq + 1 > wall_ms ? r->seq + 1 : wall_ms;
    r->key = *key;
    memcpy(r->publisher, dht->cfg.public_key, DHT_PK_LEN);
    r->seq = seq;
    r->expires = wall_ms / 1000u + ttl_s;
    r->value_len = (uint16_t)len;
    memcpy(r->value, value, len);
    dht_record_sign(r, dht->cfg.secret_key);
    dht_store_put(&dht->store, r, dht_wall_s(dht, now));
    int op = dht_op_start(dht, DHT_OP_PUT, key, now);
    if (op < 0) return op;
    dht_op_t *o = &dht->ops[op];
    o->rec = malloc(sizeof(dht_record_t));
    if (!o->rec) {
        dht_op_abort(dht, op);
        return -ENOMEM;
    }
    *o->rec = *r;
    o->cb.put = cb ? cb : put_done_noop;
    o->arg = arg;
    uint64_t every =
        (uint64_t)ttl_s * 250u < DHT_REPUBLISH_MS ? (uint64_t)ttl_s * 250u : DHT_REPUBLISH_MS;
    pub->next_republish = now + (every > 1000 ? every : 1000);
    dht_op_step(dht, op, now);
    return 0;
}

int dht_unpublish(dht_t *dht, const dht_id_t *key)
{
    for (int i = 0; i < dht->npubs; i++) {
        if (memcmp(dht->pubs[i].rec.key.b, key->b, DHT_ID_LEN) == 0) {
            dht->pubs[i] = dht->pubs[--dht->npubs];
            return 0;
        }
    }
    return -ENOENT;
}

int dht_import_record(dht_t *dht, const dht_record_t *rec, uint64_t now)
{
    uint64_t wall = dht_wall_s(dht, now);
    if (rec->expires <= wall) return -ETIME;
    if (dht_record_verify(rec) != 0) return -EBADMSG;
    int rc = dht_store_put(&dht->store, rec, wall);
    if (rc != 0 && rc != -ESTALE) return rc;
    if (memcmp(rec->publisher, dht->cfg.public_key, DHT_PK_LEN) == 0) {
        for (int i = 0; i < dht->npubs; i++)
            if (memcmp(dht->pubs[i].rec.key.b, rec->key.b, DHT_ID_LEN) == 0) return 0;
        if (dht->npubs >= DHT_MAX_PUBLICATIONS) return -ENOSPC;
        dht_pub_t *np = realloc(dht->pubs, sizeof(dht_pub_t) * (size_t)(dht->npubs + 1));
        if (!np) return -ENOMEM;
        dht->pubs = np;
        dht->pubs[dht->npubs].rec = *rec;
        dht->pubs[dht->npubs++].next_republish = now + 5000; /* once the table is back */
    }
    return 0;
}
