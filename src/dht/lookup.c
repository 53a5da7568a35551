/* lookup.c: iterative lookups (FIND_NODE, FIND_VALUE, and the lookup phase of a put) with alpha
 * requests in flight, a shortlist kept closest first, soft timeouts that free a slot early and hard
 * timeouts that fail a candidate, and termination once the k closest live candidates answered.
 * A put then sends STORE with each closest node's address token and counts the acknowledgements. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht-internal.h"

int dht_op_start(dht_t *dht, int kind, const dht_id_t *target, uint64_t now)
{
    int slot = -1;
    for (int i = 0; i < dht->ops_cap; i++) {
        if (!dht->ops[i].used) {
            slot = i;
            break;
        }
    }
    if (slot < 0) {
        if (dht->ops_cap >= DHT_MAX_LOOKUPS) return -ENOBUFS;
        int ncap = dht->ops_cap ? dht->ops_cap * 2 : 4;
        if (ncap > DHT_MAX_LOOKUPS) ncap = DHT_MAX_LOOKUPS;
        dht_op_t *nops = realloc(dht->ops, sizeof(dht_op_t) * (size_t)ncap);
        if (!nops) return -ENOMEM;
        memset(nops + dht->ops_cap, 0, sizeof(dht_op_t) * (size_t)(ncap - dht->ops_cap));
        slot = dht->ops_cap;
        dht->ops = nops;
        dht->ops_cap = ncap;
    }
    dht_op_t *o = &dht->ops[slot];
    dht_cand_t *cand = calloc(DHT_SHORTLIST, sizeof(dht_cand_t));
    if (!cand) return -ENOMEM;
    uint32_t gen = o->gen + 1;
    memset(o, 0, sizeof(*o));
    o->cand = cand;
    dht->nops++;
    o->gen = gen;
    o->used = true;
    o->kind = (uint8_t)kind;
    o->target = *target;
    o->started = now;
    o->hops = -1;
    dht_contact_t cl[DHT_K];
    int n = dht_table_closest(&dht->table, target, cl, DHT_K);
    for (int i = 0; i < n; i++) {
        dht_cand_t *c = &o->cand[o->ncand++];
        c->id = cl[i].id;
        memcpy(c->pk, cl[i].pk, DHT_PK_LEN);
        c->addr = cl[i].addr;
    }
    dht->table.buckets[dht_table_bucket_of(&dht->table, target)].last_touched = now;
    return slot;
}

static void mark_done(dht_t *dht, dht_op_t *o)
{
    if (o->done) return;
    o->done = true;
    dht->ndone++;
}

void dht_op_abort(dht_t *dht, int opi)
{
    dht_op_t *o = &dht->ops[opi];
    if (!o->used) return;
    if (o->done) dht->ndone--;
    free(o->cand);
    free(o->found);
    free(o->rec);
    o->cand = NULL;
    o->found = NULL;
    o->rec = NULL;
    o->used = o->done = false;
    dht->nops--;
}

static dht_cand_t *cand_find(dht_op_t *o, const uint8_t *pk)
{
    for (int i = 0; i < o->ncand; i++)
        if (memcmp(o->cand[i].pk, pk, DHT_PK_LEN) == 0) return &o->cand[i];
    return NULL;
}

static void cand_add(dht_t *dht, dht_op_t *o, const uint8_t *pk, const dht_addr_t *addr, int depth)
{
    if (memcmp(pk, dht->cfg.public_key, DHT_PK_LEN) == 0 || cand_find(o, pk)) return;
    dht_id_t id;
    dht_id_from_pk(&id, pk);
    int pos = o->ncand;
    while (pos > 0 && dht_id_cmp_dist(&o->target, &id, &o->cand[pos - 1].id) < 0)
        pos--;
    if (pos >= DHT_SHORTLIST) return;
    int last = o->ncand < DHT_SHORTLIST ? o->ncand : DHT_SHORTLIST - 1;
    memmove(&o->cand[pos + 1], &o->cand[pos], sizeof(dht_cand_t) * (size_t)(last - pos));
    dht_cand_t *c = &o->cand[pos];
    memset(c, 0, sizeof(*c));
    c->id = id;
    memcpy(c->pk, pk, DHT_PK_LEN);
    c->addr = *addr;
    c->depth = (uint8_t)(depth > 255 ? 255 : depth);
    if (o->ncand < DHT_SHORTLIST) o->ncand++;
}

static void start_stores(dht_t *dht, int opi, uint64_t now)
{
    dht_op_t *o = &dht->ops[opi];
    uint8_t rec[DHT_MAX_PLAIN];
    int n = dht_record_pack(o->rec, rec, sizeof(rec));
    o->stores_pending = 0;
    int considered = 0;
    for (int i = 0; i < o->ncand && considered < DHT_K && n > 0; i++) {
        dht_cand_t *c = &o->cand[i];
        if (c->state != CAND_ANSWERED) continue;
        considered++;
        if (!c->has_token) continue;
        dht_msg_t m = {.type = DHT_MSG_STORE, .record = rec, .record_len = (size_t)n};
        if (dht_send_request(dht, &m, c->pk, &c->addr, false, DHT_REQ_STORE, opi, i, now) >= 0) {
            o->stores_pending++;
            o->messages++;
        }
    }
    o->ncand = -1; /* marks the store phase */
    if (o->stores_pending == 0) mark_done(dht, o);
}

void dht_op_step(dht_t *dht, int opi, uint64_t now)
{
    dht_op_t *o = &dht->ops[opi];
    if (!o->used || o->done || o->ncand < 0) return;
    int inflight = 0;
    for (int i = 0; i < o->ncand; i++)
        if (o->cand[i].state == CAND_INFLIGHT) inflight++;
    bool stop_new = o->kind == DHT_OP_GET && o->hops >= 0; /* a value came from the network */
    int considered = 0;
    for (int i = 0; i < o->ncand && considered < DHT_K; i++) {
        dht_cand_t *c = &o->cand[i];
        if (c->state == CAND_FAILED || c->state == CAND_LATE) continue;
        considered++;
        if (c->state != CAND_NEW || inflight >= DHT_ALPHA || stop_new) continue;
        dht_msg_t m = {.type = o->kind == DHT_OP_GET ? DHT_MSG_FIND_VALUE : DHT_MSG_FIND_NODE,
                       .target = o->target};
        if (dht_send_request(dht, &m, c->pk, &c->addr, false, DHT_REQ_LOOKUP, opi, i, now) < 0) {
            c->state = CAND_FAILED;
            continue;
        }
        c->state = CAND_INFLIGHT;
        o->messages++;
        inflight++;
    }
    if (inflight > 0) return;
    if (o->kind == DHT_OP_PUT && o->rec) {
        start_stores(dht, opi, now);
        return;
    }
    mark_done(dht, o);
}

static void merge_record(dht_t *dht, dht_op_t *o, const uint8_t *buf, size_t len, int depth,
                         uint64_t now)
{
    dht_record_t r;
    if (dht_record_unpack(&r, buf, len) != 0 || memcmp(r.key.b, o->target.b, DHT_ID_LEN) != 0 ||
        r.expires <= dht_wall_s(dht, now) || dht_record_verify(&r) != 0) {
        dht->stats.dropped[DHT_DROP_BAD_RECORD]++;
        return;
    }
    for (int i = 0; i < o->nfound; i++) {
        if (memcmp(o->found[i].publisher, r.publisher, DHT_PK_LEN) == 0) {
            if (r.seq > o->found[i].seq) o->found[i] = r;
            return;
        }
    }
    if (o->nfound >= DHT_MAX_VALUES_PER_KEY) return;
    dht_record_t *nf = realloc(o->found, sizeof(dht_record_t) * (size_t)(o->nfound + 1));
    if (!nf) return;
    o->found = nf;
    o->found[o->nfound++] = r;
    if (o->hops < 0) {
        o->hops = depth;
        o->answer_ms = now - o->started;
    }
}

static dht_op_t *op_of(dht_t *dht, const dht_pending_t *p)
{
    if (p->op < 0 || p->op >= dht->ops_cap) return NULL;
    dht_op_t *o = &dht->ops[p->op];
    if (!o->used || o->done || o->gen != p->op_gen) return NULL;
    return o;
}

static void store_acked(dht_t *dht, dht_op_t *o, bool ok)
{
    if (o->stores_pending > 0) o->stores_pending--;
    if (ok) o->stored++;
    if (o->stores_pending == 0) mark_done(dht, o);
}

void dht_op_on_reply(dht_t *dht, dht_pending_t *p, const dht_msg_t *m, uint64_t now)
{
    dht_op_t *o = op_of(dht, p);
    if (!o) return;
    if (p->purpose == DHT_REQ_STORE) {
        store_acked(dht, o, m->status == 0);
        return;
    }
    if (o->ncand < 0) return;
    dht_cand_t *c = cand_find(o, p->pk);
    if (!c) return;
    c->state = CAND_ANSWERED;
    c->has_token = true;
    memcpy(c->token, m->token, DHT_TOKEN_LEN);
    int depth = c->depth + 1;
    for (size_t off = 0; off < m->nodes_len;) {
        dht_addr_t a;
        int n = dht_addr_unpack(&a, m->nodes + off, m->nodes_len - off);
        if (n < 0 || off + (size_t)n + DHT_PK_LEN > m->nodes_len) {
            dht->stats.dropped[DHT_DROP_MALFORMED]++;
            break;
        }
        cand_add(dht, o, m->nodes + off + n, &a, depth);
        off += (size_t)n + DHT_PK_LEN;
    }
    for (int i = 0; i < m->nrecords; i++)
        merge_record(dht, o, m->records[i], m->record_lens[i], depth, now);
    dht_op_step(dht, p->op, now);
}

void dht_op_on_timeout(dht_t *dht, dht_pending_t *p, bool hard, uint64_t now)
{
    dht_op_t *o = op_of(dht, p);
    if (!o) return;
    if (p->purpose == DHT_REQ_STORE) {
        if (hard) store_acked(dht, o, false);
        return;
    }
    if (o->ncand < 0) return;
    dht_cand_t *c = cand_find(o, p->pk);
    if (!c) return;
    if (!hard && c->state == CAND_INFLIGHT)
        c->state = CAND_LATE;
    else if (hard && (c->state == CAND_INFLIGHT || c->state == CAND_LATE))
        c->state = CAND_FAILED;
    dht_op_step(dht, p->op, now);
}

static void account(dht_t *dht, int label, uint64_t ms)
{
    dht->stats.lookups[label]++;
    double s = (double)ms / 1000.0;
    dht->stats.lookup_count++;
    dht->stats.lookup_sum_s += s;
    for (int i = 0; i < DHT_LOOKUP_HIST_BUCKETS; i++)
        if (s <= dht_lookup_hist_bounds[i]) dht->stats.lookup_hist[i]++;
}

static void finish_one(dht_t *dht, dht_op_t *o, int forced_status, uint64_t now)
{
    dht_op_t op = *o; /* the slot is free before the callback runs, so it may start new ops */
    if (o->done) dht->ndone--;
    dht->nops--;
    o->used = false;
    o->done = false;
    o->found = NULL;
    o->rec = NULL;
    o->cand = NULL;
    uint64_t dur = now - op.started;
    dht_contact_info_t nodes[DHT_K];
    int n = 0, answered = 0, closest_depth = -1;
    for (int i = 0; i < op.ncand && n < DHT_K; i++) {
        dht_cand_t *c = &op.cand[i];
        if (c->state != CAND_ANSWERED) continue;
        answered++;
        if (closest_depth < 0) closest_depth = c->depth + 1;
        memset(&nodes[n], 0, sizeof(nodes[n]));
        nodes[n].id = c->id;
        memcpy(nodes[n].public_key, c->pk, DHT_PK_LEN);
        nodes[n].addr = c->addr;
        nodes[n].verified = true;
        n++;
    }
    switch (op.kind) {
    case DHT_OP_FIND_NODE: {
        int st = forced_status ? forced_status : n > 0 ? 0 : -EHOSTUNREACH;
        if (!forced_status) account(dht, st == 0 ? DHT_LOOKUP_OK : DHT_LOOKUP_FAILED, dur);
        dht_lookup_result_t r = {nodes, (size_t)n, closest_depth < 0 ? 0 : closest_depth,
                                 op.messages, dur};
        if (op.cb.lookup) op.cb.lookup(op.arg, st, &r);
        break;
    }
    case DHT_OP_GET: {
        int st = forced_status   ? forced_status
                 : op.nfound > 0 ? 0
                 : answered > 0  ? -ENOENT
                                 : -EHOSTUNREACH;
        if (!forced_status)
            account(dht,
                    st == 0         ? DHT_LOOKUP_OK
                    : st == -ENOENT ? DHT_LOOKUP_NOT_FOUND
                                    : DHT_LOOKUP_FAILED,
                    op.hops >= 0 ? op.answer_ms : dur);
        dht_get_result_t r = {op.found, (size_t)op.nfound, op.hops < 0 ? 0 : op.hops, op.messages,
                              op.hops >= 0 ? op.answer_ms : dur};
        if (op.cb.get) op.cb.get(op.arg, st, &r);
        break;
    }
    case DHT_OP_PUT:
        if (!forced_status) account(dht, DHT_LOOKUP_OK, dur);
        if (op.cb.put) op.cb.put(op.arg, forced_status, (size_t)op.stored);
        break;
    default:
        break;
    }
    free(op.found);
    free(op.rec);
    free(op.cand);
}

void dht_ops_finish(dht_t *dht, uint64_t now)
{
    if (dht->ndone == 0) return;
    for (int i = 0; i < dht->ops_cap; i++)
        if (dht->ops[i].used && dht->ops[i].done) finish_one(dht, &dht->ops[i], 0, now);
}

void dht_op_cancel_all(dht_t *dht)
{
    for (int i = 0; i < dht->ops_cap; i++)
        if (dht->ops[i].used) finish_one(dht, &dht->ops[i], -ECANCELED, dht->now);
}
