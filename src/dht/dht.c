/* dht.c: the DHT node: datagram input (rate limit, authentication, replay check, decode), request
 * handling (PING, FIND_NODE, FIND_VALUE, STORE with address tokens and anti-amplification),
 * responses to our own requests, timers, publications and the public API of dht.h (dht_ping is in
 * ping.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "dht/dht-internal.h"

const double dht_lookup_hist_bounds[DHT_LOOKUP_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1,
                                                                0.25,  0.5,  1,     2.5,  5};

const char *const dht_msg_type_names[DHT_MSG_TYPE_COUNT] = {
    "ping", "pong", "find_node", "nodes", "find_value", "values", "store", "stored"};
const char *const dht_drop_reason_names[DHT_DROP_REASON_COUNT] = {
    "malformed",   "oversized", "auth",       "replay", "rate_limit",
    "unsolicited", "bad_token", "bad_record", "self"};
const char *const dht_lookup_result_names[DHT_LOOKUP_LABEL_COUNT] = {"ok", "not_found", "failed"};

#define MAINTENANCE_MS 5000
#define EXPIRY_MS      10000
#define PING_PAD       64 /* a PING body padded to this covers the largest PONG */

uint64_t dht_wall_s(const dht_t *dht, uint64_t now)
{
    return (uint64_t)((int64_t)now + dht->wall_offset) / 1000u;
}

static void pin_peer(dht_t *dht, const uint8_t *pk, bool pin)
{
    dht_peer_t *p = dht_peers_find(&dht->peers, pk);
    if (!p || p->pinned == pin) return;
    p->pinned = pin;
    if (pin)
        dht->peers.unpinned--;
    else
        dht->peers.unpinned++;
}

/* Looks up or creates the peer with its pairwise key. NULL when pk is not a valid key. */
static dht_peer_t *peer_for(dht_t *dht, const uint8_t *pk, uint64_t now)
{
    dht_peer_t *p = dht_peers_find(&dht->peers, pk);
    if (!p) {
        uint8_t key[32];
        bool created;
        if (dht_crypto_pair_key(dht, pk, key) != 0) return NULL;
        p = dht_peers_get(&dht->peers, pk, dht_rng_u32(&dht->rng), &created);
        if (!p) return NULL;
        memcpy(p->key, key, 32);
    }
    p->last_used = now;
    return p;
}

uint32_t dht_rto(const dht_t *dht, const uint8_t *pk)
{
    dht_peer_t *p = pk ? dht_peers_find((dht_peers_t *)&dht->peers, pk) : NULL;
    uint32_t rto;
    if (p && p->srtt)
        rto = (uint32_t)p->srtt + 4u * p->rttvar;
    else if (dht->rtt.srtt) /* no sample for this peer: what the network has shown so far */
        rto = (uint32_t)dht->rtt.srtt + 4u * dht->rtt.rttvar;
    else
        return DHT_RTO_DEFAULT_MS;
    if (rto < DHT_RTO_MIN_MS) rto = DHT_RTO_MIN_MS;
    if (rto > DHT_RTO_MAX_MS) rto = DHT_RTO_MAX_MS;
    return rto;
}

static void rtt_update(uint16_t *srtt, uint16_t *rttvar, uint64_t rtt)
{
    if (*srtt == 0) {
        *srtt = (uint16_t)(rtt ? rtt : 1);
        *rttvar = (uint16_t)(rtt / 2);
        return;
    }
    uint32_t err = rtt > *srtt ? (uint32_t)rtt - *srtt : *srtt - (uint32_t)rtt;
    *rttvar = (uint16_t)((3u * *rttvar + err) / 4u);
    *srtt = (uint16_t)((7u * *srtt + rtt) / 8u);
    if (*srtt == 0) *srtt = 1;
}

static void rtt_sample(dht_t *dht, dht_peer_t *p, uint64_t rtt)
{
    if (rtt > 60000) rtt = 60000;
    rtt_update(&p->srtt, &p->rttvar, rtt);
    rtt_update(&dht->rtt.srtt, &dht->rtt.rttvar, rtt);
}

static void send_datagram(dht_t *dht, const uint8_t *buf, size_t len, const dht_addr_t *to,
                          uint8_t type)
{
    dht->stats.sent[type]++;
    dht->stats.bytes_out += len;
    dht->cfg.send(dht->cfg.send_ctx, buf, len, to);
}

/* Seals and sends a body to pk at `to` (boxed) or as hello. Returns the datagram length. */
static int seal_send(dht_t *dht, const uint8_t *body, size_t blen, const uint8_t *key, bool hello,
                     const dht_addr_t *to, uint8_t type)
{
    uint8_t out[DHT_MAX_DATAGRAM];
    int n = dht_crypto_seal(dht, hello ? DHT_MAGIC_HELLO : DHT_MAGIC_BOX,
                            hello ? dht->hello_key : key, body, blen, out, sizeof(out));
    if (n < 0) return n;
    send_datagram(dht, out, (size_t)n, to, type);
    return n;
}

static dht_pending_t *pending_find(dht_t *dht, uint32_t txid)
{
    for (size_t i = 0; i < dht->npending; i++)
        if (dht->pending[i].txid == txid) return &dht->pending[i];
    return NULL;
}

int dht_send_request(dht_t *dht, dht_msg_t *m, const uint8_t *pk, const dht_addr_t *to, bool hello,
                     int purpose, int op, int cand, uint64_t now)
{
    if (dht->npending >= DHT_MAX_PENDING) return -ENOBUFS;
    if (dht->npending == dht->pending_cap) {
        size_t ncap = dht->pending_cap ? dht->pending_cap * 2 : 16;
        if (ncap > DHT_MAX_PENDING) ncap = DHT_MAX_PENDING;
        dht_pending_t *np = realloc(dht->pending, ncap * sizeof(dht_pending_t));
        if (!np) return -ENOMEM;
        dht->pending = np;
        dht->pending_cap = ncap;
    }
    dht_peer_t *p = NULL;
    if (!hello) {
        p = peer_for(dht, pk, now);
        if (!p) return -EINVAL;
    }
    do {
        m->txid = dht_rng_u32(&dht->rng);
    } while (m->txid == 0 || pending_find(dht, m->txid));
    m->has_token = p && p->has_token && dht_addr_equal(&p->addr, to);
    if (m->has_token) memcpy(m->token, p->token, DHT_TOKEN_LEN);
    size_t pad = 0;
    if (!m->has_token) pad = m->type == DHT_MSG_PING ? PING_PAD : DHT_HELLO_PAD - DHT_OVERHEAD;
    uint8_t body[DHT_MAX_PLAIN];
    int blen = dht_msg_encode(m, pad, body, sizeof(body));
    if (blen < 0) return blen;
    uint8_t key[32];
    if (p) memcpy(key, p->key, 32);
    uint32_t rto = hello ? DHT_RTO_DEFAULT_MS : dht_rto(dht, pk);
    int rc = seal_send(dht, body, (size_t)blen, key, hello, to, m->type);
    if (rc < 0) return rc;
    dht_pending_t *pd = &dht->pending[dht->npending++];
    memset(pd, 0, sizeof(*pd));
    pd->txid = m->txid;
    pd->type = m->type;
    pd->purpose = (uint8_t)purpose;
    pd->hello = hello;
    pd->op = op;
    pd->op_gen = op >= 0 ? dht->ops[op].gen : 0;
    pd->cand = cand;
    pd->to = *to;
    if (pk) memcpy(pd->pk, pk, DHT_PK_LEN);
    pd->sent = now;
    pd->soft_deadline = now + rto;
    pd->hard_deadline = now + (3u * rto > DHT_HARD_TIMEOUT_MS ? 3u * rto : DHT_HARD_TIMEOUT_MS);
    return (int)(pd - dht->pending);
}

static void send_ping(dht_t *dht, const uint8_t *pk, const dht_addr_t *to, uint64_t now)
{
    dht_msg_t m = {.type = DHT_MSG_PING};
    dht_send_request(dht, &m, pk, to, pk == NULL, DHT_REQ_PING, -1, -1, now);
}

/* ---- routing-table upkeep ---- */

static void contact_seen(dht_t *dht, const uint8_t *pk, const dht_id_t *id, const dht_addr_t *addr,
                         bool answered, uint64_t now)
{
    dht_contact_t *evict = NULL;
    int r = dht_table_insert(&dht->table, id, pk, addr, answered, now, &evict);
    if (r == DHT_INS_ADDED) {
        pin_peer(dht, pk, true);
        /* met through its own request: check that it answers before handing it out */
        if (!answered) {
            dht_contact_t *c = dht_table_find(&dht->table, id);
            if (c) c->last_ping = now;
            send_ping(dht, pk, addr, now);
        }
    }
    if (r == DHT_INS_REPLACEMENT && evict && now - evict->last_ping > DHT_RTO_MAX_MS) {
        evict->last_ping = now;
        send_ping(dht, evict->pk, &evict->addr, now);
    }
}

static void contact_failed(dht_t *dht, const uint8_t *pk, uint64_t now)
{
    dht_id_t id;
    dht_id_from_pk(&id, pk);
    dht_contact_t *c = dht_table_find(&dht->table, &id);
    if (!c) return;
    if (++c->fails < DHT_MAX_FAILS) return;
    int bi = dht_table_bucket_of(&dht->table, &id);
    dht_bucket_t *b = &dht->table.buckets[bi];
    /* promote a replacement if one exists; without one, drop only a contact that never answered */
    dht_table_remove(&dht->table, &id);
    pin_peer(dht, pk, false);
    for (int i = 0; i < b->n; i++)
        pin_peer(dht, b->nodes[i].pk, true);
    (void)now;
}

static void external_vote(dht_t *dht, const dht_addr_t *seen, const dht_id_t *voter)
{
    for (int i = 0; i < DHT_EXT_VOTES; i++) {
        if (dht->ext[i].votes && dht_addr_equal(&dht->ext[i].addr, seen)) {
            if (memcmp(dht->ext[i].voter, voter->b, 8) != 0) {
                dht->ext[i].votes++;
                memcpy(dht->ext[i].voter, voter->b, 8);
            }
            return;
        }
    }
    int slot = dht->next_ext++ % DHT_EXT_VOTES;
    dht->ext[slot].addr = *seen;
    dht->ext[slot].votes = 1;
    memcpy(dht->ext[slot].voter, voter->b, 8);
}

/* ---- answering requests ---- */

static size_t pack_nodes(dht_t *dht, const dht_id_t *target, const dht_addr_t *requester_family,
                         uint8_t *out, size_t cap, int max)
{
    dht_contact_t cl[DHT_K];
    int n = dht_table_closest(&dht->table, target, cl, max < DHT_K ? max : DHT_K);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        if (!cl[i].answered) continue; /* only hand out contacts known to answer */
        size_t need = (cl[i].addr.family == 4 ? DHT_COMPACT_V4 : DHT_COMPACT_V6);
        if (len + need > cap) break;
        int a = dht_addr_pack(&cl[i].addr, out + len, cap - len);
        if (a < 0) continue;
        memcpy(out + len + (size_t)a, cl[i].pk, DHT_PK_LEN);
        len += (size_t)a + DHT_PK_LEN;
    }
    (void)requester_family;
    return len;
}

static bool token_valid(const dht_t *dht, const dht_addr_t *from, const uint8_t *tok)
{
    uint8_t t[DHT_TOKEN_LEN];
    for (int i = 0; i < 2; i++) {
        dht_token_make(dht->token_secret[i], from, t);
        if (sodium_memcmp(t, tok, DHT_TOKEN_LEN) == 0) return true;
    }
    return false;
}

static void handle_request(dht_t *dht, dht_peer_t *p, const dht_msg_t *m, const dht_addr_t *from,
                           size_t req_len, bool hello, uint64_t now)
{
    bool verified = (p->answered && dht_addr_equal(&p->addr, from)) ||
                    (m->has_token && token_valid(dht, from, m->token));
    size_t budget = DHT_MAX_PLAIN;
    if (!verified) budget = req_len > DHT_OVERHEAD ? req_len - DHT_OVERHEAD : 0;
    if (budget > DHT_MAX_PLAIN) budget = DHT_MAX_PLAIN;

    dht_msg_t r = {.txid = m->txid, .seen = *from, .has_token = true};
    dht_token_make(dht->token_secret[0], from, r.token);
    uint8_t nodes[DHT_K * DHT_COMPACT_V6];
    uint8_t recbuf[DHT_MAX_PLAIN];
    int max_nodes = DHT_K;
    switch (m->type) {
    case DHT_MSG_PING:
        r.type = DHT_MSG_PONG;
        break;
    case DHT_MSG_FIND_NODE:
    case DHT_MSG_FIND_VALUE:
        r.type = m->type == DHT_MSG_FIND_NODE ? DHT_MSG_NODES : DHT_MSG_VALUES;
        if (m->type == DHT_MSG_FIND_VALUE) {
            dht_recset_t *set = dht_store_find(&dht->store, &m->target);
            uint64_t wall = dht_wall_s(dht, now);
            size_t used = 0;
            for (int i = 0; set && i < set->n && r.nrecords < DHT_MAX_VALUES_PER_KEY; i++) {
                if (set->recs[i]->expires <= wall) continue;
                int n = dht_record_pack(set->recs[i], recbuf + used, sizeof(recbuf) - used);
                if (n < 0 || used + (size_t)n + 64 > budget) break;
                r.records[r.nrecords] = recbuf + used;
                r.record_lens[r.nrecords++] = (size_t)n;
                used += (size_t)n;
            }
        }
        break;
    case DHT_MSG_STORE: {
        r.type = DHT_MSG_STORED;
        dht_record_t rec;
        if (!token_valid(dht, from, m->token)) {
            dht->stats.dropped[DHT_DROP_BAD_TOKEN]++;
            r.status = -EACCES;
        } else if (dht_record_unpack(&rec, m->record, m->record_len) != 0) {
            dht->stats.dropped[DHT_DROP_BAD_RECORD]++;
            r.status = -EBADMSG;
        } else {
            r.status = dht_store_put(&dht->store, &rec, dht_wall_s(dht, now));
            if (r.status == -EBADMSG || r.status == -ETIME || r.status == -ESTALE)
                dht->stats.dropped[DHT_DROP_BAD_RECORD]++;
        }
        break;
    }
    default:
        return;
    }
    uint8_t body[DHT_MAX_PLAIN];
    for (;;) {
        if (r.type == DHT_MSG_NODES || r.type == DHT_MSG_VALUES) {
            r.nodes = nodes;
            r.nodes_len = pack_nodes(dht, &m->target, from, nodes, sizeof(nodes), max_nodes);
        }
        int blen = dht_msg_encode(&r, 0, body, budget < sizeof(body) ? budget : sizeof(body));
        if (blen >= 0) {
            seal_send(dht, body, (size_t)blen, p->key, false, from, r.type);
            return;
        }
        /* over the budget: shed records, then contacts */
        if (r.nrecords > 0)
            r.nrecords--;
        else if (max_nodes > 0 && (r.type == DHT_MSG_NODES || r.type == DHT_MSG_VALUES))
            max_nodes = max_nodes > 4 ? max_nodes - 4 : 0;
        else
            return; /* cannot answer within the amplification budget */
    }
    (void)hello;
}

/* ---- responses to our requests ---- */

static void handle_response(dht_t *dht, dht_peer_t *p, const dht_msg_t *m, const dht_addr_t *from,
                            uint64_t now)
{
    dht_pending_t *pd = pending_find(dht, m->txid);
    if (!pd || !dht_addr_equal(&pd->to, from) ||
        (!pd->hello && memcmp(pd->pk, p->pk, DHT_PK_LEN) != 0)) {
        dht->stats.dropped[DHT_DROP_UNSOLICITED]++;
        return;
    }
    static const uint8_t expect[DHT_MSG_TYPE_COUNT] = {[DHT_MSG_PING] = DHT_MSG_PONG,
                                                       [DHT_MSG_FIND_NODE] = DHT_MSG_NODES,
                                                       [DHT_MSG_FIND_VALUE] = DHT_MSG_VALUES,
                                                       [DHT_MSG_STORE] = DHT_MSG_STORED};
    if (expect[pd->type] != m->type) {
        dht->stats.dropped[DHT_DROP_UNSOLICITED]++;
        return;
    }
    dht_pending_t copy = *pd;
    *pd = dht->pending[--dht->npending];
    if (copy.hello) memcpy(copy.pk, p->pk, DHT_PK_LEN);

    rtt_sample(dht, p, now - copy.sent);
    if (copy.purpose == DHT_REQ_PING) dht_pings_on_pong(dht, copy.txid, now - copy.sent);
    bool first_answer = !p->answered;
    p->answered = true;
    p->addr = *from;
    memcpy(p->token, m->token, DHT_TOKEN_LEN);
    p->has_token = true;
    dht_id_t id = p->id;
    external_vote(dht, &m->seen, &id);
    contact_seen(dht, p->pk, &id, from, true, now);
    p = dht_peers_find(&dht->peers, copy.pk); /* the cache may have moved */
    /* a node newly proven to answer may be closer to some of our records than we are */
    if (p && first_answer && dht_table_find(&dht->table, &id)) dht_replicate_to(dht, p, from, now);
    if (copy.purpose == DHT_REQ_LOOKUP || copy.purpose == DHT_REQ_STORE)
        dht_op_on_reply(dht, &copy, m, now);
}

/* ---- input ---- */

static int drop(dht_t *dht, int reason, int err)
{
    dht->stats.dropped[reason]++;
    return err;
}

int dht_input(dht_t *dht, const uint8_t *buf, size_t len, const dht_addr_t *from, uint64_t now)
{
    dht->now = now;
    dht->stats.bytes_in += len;
    if (len > DHT_MAX_DATAGRAM) return drop(dht, DHT_DROP_OVERSIZED, -EMSGSIZE);
    if (len < DHT_OVERHEAD + 2 || (buf[0] != DHT_MAGIC_BOX && buf[0] != DHT_MAGIC_HELLO) ||
        (from->family != 4 && from->family != 6) || from->port == 0)
        return drop(dht, DHT_DROP_MALFORMED, -EBADMSG);
    const uint8_t *pk = buf + 1;
    if (memcmp(pk, dht->cfg.public_key, DHT_PK_LEN) == 0) return drop(dht, DHT_DROP_SELF, -EINVAL);
    if (!dht_rl_allow(&dht->rl, from, now)) return drop(dht, DHT_DROP_RATE_LIMIT, -EAGAIN);

    bool hello = buf[0] == DHT_MAGIC_HELLO;
    uint8_t plain[DHT_MAX_DATAGRAM];
    dht_peer_t *p = NULL;
    int plen;
    if (hello) {
        plen = dht_crypto_open(dht, dht->hello_key, buf, len, plain, sizeof(plain));
    } else {
        p = dht_peers_find(&dht->peers, pk);
        uint8_t key[32];
        if (p) {
            memcpy(key, p->key, 32);
        } else if (dht_crypto_pair_key(dht, pk, key) != 0) {
            return drop(dht, DHT_DROP_AUTH, -EACCES);
        }
        plen = dht_crypto_open(dht, key, buf, len, plain, sizeof(plain));
        if (plen >= 0 && !p) {
            /* authenticated: only now does the sender earn a cache entry */
            bool created;
            p = dht_peers_get(&dht->peers, pk, dht_rng_u32(&dht->rng), &created);
            if (!p) return -ENOMEM;
            memcpy(p->key, key, 32);
        }
    }
    if (plen < 0) return drop(dht, DHT_DROP_AUTH, -EACCES);
    dht_msg_t m;
    if (dht_msg_decode(&m, plain, (size_t)plen) != 0)
        return drop(dht, DHT_DROP_MALFORMED, -EBADMSG);
    bool request = m.type == DHT_MSG_PING || m.type == DHT_MSG_FIND_NODE ||
                   m.type == DHT_MSG_FIND_VALUE || m.type == DHT_MSG_STORE;
    if (hello && m.type != DHT_MSG_PING) return drop(dht, DHT_DROP_MALFORMED, -EBADMSG);
    if (hello) {
        /* a hello proves the network key only: answer with a boxed PONG that only the owner of
         * the claimed key can read; its replay window is separate from the boxed one */
        p = peer_for(dht, pk, now);
        if (!p) return drop(dht, DHT_DROP_AUTH, -EACCES);
        if (dht_replay_check(&p->hw, buf + 1 + DHT_PK_LEN) != 0)
            return drop(dht, DHT_DROP_REPLAY, -EALREADY);
    } else {
        if (dht_replay_check(&p->rw, buf + 1 + DHT_PK_LEN) != 0)
            return drop(dht, DHT_DROP_REPLAY, -EALREADY);
        p->last_used = now;
    }
    dht->stats.received[m.type]++;
    if (request) {
        if (!hello) {
            dht_id_t id = p->id;
            uint8_t pkc[DHT_PK_LEN];
            memcpy(pkc, pk, DHT_PK_LEN);
            contact_seen(dht, pkc, &id, from, false, now);
            p = dht_peers_find(&dht->peers, pkc);
            if (!p) return 0;
        }
        handle_request(dht, p, &m, from, len, hello, now);
    } else {
        handle_response(dht, p, &m, from, now);
        dht_ops_finish(dht, now);
        dht_pings_finish(dht);
    }
    return 0;
}

/* ---- timers ---- */

static void expire_pending(dht_t *dht, uint64_t now)
{
    for (size_t i = 0; i < dht->npending;) {
        dht_pending_t *pd = &dht->pending[i];
        if (!pd->late && now >= pd->soft_deadline && now < pd->hard_deadline) {
            pd->late = true;
            if (pd->purpose == DHT_REQ_LOOKUP) {
                dht_pending_t copy = *pd;
                dht_op_on_timeout(dht, &copy, false, now);
            }
            i++;
            continue;
        }
        if (now < pd->hard_deadline) {
            i++;
            continue;
        }
        dht_pending_t copy = *pd;
        *pd = dht->pending[--dht->npending];
        if (!copy.hello) contact_failed(dht, copy.pk, now);
        if (copy.purpose == DHT_REQ_LOOKUP || copy.purpose == DHT_REQ_STORE)
            dht_op_on_timeout(dht, &copy, true, now);
    }
}

static void random_id_in_bucket(dht_t *dht, int bi, dht_id_t *out)
{
    dht_rng_bytes(&dht->rng, out->b, DHT_ID_LEN);
    /* share bi bits with self, then differ at bit bi (the last bucket: share at least bi bits) */
    for (int bit = 0; bit < bi && bit < 256; bit++) {
        uint8_t mask = (uint8_t)(0x80 >> (bit % 8));
        out->b[bit / 8] = (uint8_t)((out->b[bit / 8] & ~mask) | (dht->self.b[bit / 8] & mask));
    }
    if (bi < dht->table.n - 1 && bi < 256) {
        uint8_t mask = (uint8_t)(0x80 >> (bi % 8));
        out->b[bi / 8] = (uint8_t)((out->b[bi / 8] & ~mask) | (~dht->self.b[bi / 8] & mask));
    }
}

static void maintenance(dht_t *dht, uint64_t now)
{
    if (now - dht->token_rotated >= DHT_TOKEN_ROTATE_MS) {
        memcpy(dht->token_secret[1], dht->token_secret[0], 32);
        dht_rng_bytes(&dht->rng, dht->token_secret[0], 32);
        dht->token_rotated = now;
    }
    int pings = 0;
    for (int bi = 0; bi < dht->table.n; bi++) {
        dht_bucket_t *b = &dht->table.buckets[bi];
        if (b->n > 0 && now - b->last_touched >= DHT_REFRESH_MS) {
            dht_id_t target;
            random_id_in_bucket(dht, bi, &target);
            b->last_touched = now;
            dht_op_start(dht, DHT_OP_REFRESH, &target, now);
        }
        for (int i = 0; i < b->n && pings < 8; i++) {
            dht_contact_t *c = &b->nodes[i];
            if (now - c->last_seen >= DHT_PING_IDLE_MS && now - c->last_ping >= DHT_PING_IDLE_MS) {
                c->last_ping = now;
                pings++;
                send_ping(dht, c->pk, &c->addr, now);
            }
        }
    }
    for (int i = 0; i < dht->npubs; i++) {
        if (now >= dht->pubs[i].next_republish) dht_republish(dht, &dht->pubs[i], now);
    }
    if (now >= dht->next_expiry) {
        uint64_t wall = dht_wall_s(dht, now);
        dht_store_expire(&dht->store, wall);
        for (int i = 0; i < dht->npubs;) {
            if (dht->pubs[i].rec.expires <= wall)
                dht->pubs[i] = dht->pubs[--dht->npubs];
            else
                i++;
        }
        dht->next_expiry = now + EXPIRY_MS;
    }
}

uint64_t dht_next_deadline(const dht_t *dht)
{
    uint64_t next = dht->next_maintenance;
    for (size_t i = 0; i < dht->npending; i++) {
        const dht_pending_t *pd = &dht->pending[i];
        uint64_t d = pd->late ? pd->hard_deadline : pd->soft_deadline;
        if (d < next) next = d;
    }
    uint64_t ping = dht_pings_deadline(dht);
    if (ping < next) next = ping;
    return dht->ndone > 0 || dht->npings_done > 0 ? dht->now : next;
}

uint64_t dht_periodic(dht_t *dht, uint64_t now)
{
    dht->now = now;
    expire_pending(dht, now);
    if (now >= dht->next_maintenance) {
        maintenance(dht, now);
        dht->next_maintenance = now + MAINTENANCE_MS;
    }
    for (int i = 0; i < dht->ops_cap && dht->nops > 0; i++)
        if (dht->ops[i].used && !dht->ops[i].done) dht_op_step(dht, i, now);
    dht_ops_finish(dht, now);
    dht_pings_expire(dht, now);
    dht_pings_finish(dht);
    return dht_next_deadline(dht);
}

/* ---- public API ---- */

dht_t *dht_new(const dht_config_t *cfg, uint64_t now)
{
    if (!cfg || !cfg->send) return NULL;
    if (sodium_init() < 0) return NULL;
    dht_t *dht = calloc(1, sizeof(*dht));
    if (!dht) return NULL;
    dht->cfg = *cfg;
    dht_id_from_pk(&dht->self, cfg->public_key);
    dht_rng_init(&dht->rng, cfg->seed);
    dht->now = now;
    dht->wall_offset = 0;
    if (dht_crypto_init(dht) != 0) goto fail;
    if (dht_table_init(&dht->table, &dht->self, cfg->ip_diversity) != 0) goto fail;
    if (dht_peers_init(&dht->peers, cfg->peer_cache ? cfg->peer_cache : DHT_PEER_CACHE) != 0)
        goto fail;
    if (dht_store_init(&dht->store) != 0) goto fail;
    if (dht_rl_init(&dht->rl, DHT_RATE_PER_SOURCE, DHT_RATE_BURST, DHT_RATE_GLOBAL) != 0) goto fail;
    dht_rng_bytes(&dht->rng, dht->token_secret, sizeof(dht->token_secret));
    dht->token_rotated = now;
    dht->table.buckets[0].last_touched = now;
    dht->next_maintenance = now + MAINTENANCE_MS;
    dht->next_expiry = now + EXPIRY_MS;
    return dht;
fail:
    dht_free(dht);
    return NULL;
}

void dht_free(dht_t *dht)
{
    if (!dht) return;
    dht_op_cancel_all(dht);
    dht_pings_cancel_all(dht);
    dht_table_free(&dht->table);
    dht_peers_free(&dht->peers);
    dht_store_free(&dht->store);
    dht_rl_free(&dht->rl);
    free(dht->pending);
    free(dht->ops);
    free(dht->pubs);
    sodium_memzero(dht->x_sk, sizeof(dht->x_sk));
    sodium_memzero(&dht->cfg, sizeof(dht->cfg));
    free(dht);
}

void dht_set_wall_clock(dht_t *dht, uint64_t now, uint64_t wall_ms)
{
    dht->wall_offset = (int64_t)wall_ms - (int64_t)now;
}

int dht_ping_addr(dht_t *dht, const dht_addr_t *addr, uint64_t now)
{
    if (!addr || (addr->family != 4 && addr->family != 6) || addr->port == 0) return -EINVAL;
    dht_msg_t m = {.type = DHT_MSG_PING};
    int rc = dht_send_request(dht, &m, NULL, addr, true, DHT_REQ_PING, -1, -1, now);
    return rc < 0 ? rc : 0;
}

int dht_find_node(dht_t *dht, const dht_id_t *target, uint64_t now, dht_lookup_cb cb, void *arg)
{
    int op = dht_op_start(dht, DHT_OP_FIND_NODE, target, now);
    if (op < 0) return op;
    dht->ops[op].cb.lookup = cb;
    dht->ops[op].arg = arg;
    dht_op_step(dht, op, now);
    return 0;
}

int dht_get(dht_t *dht, const dht_id_t *key, uint64_t now, dht_get_cb cb, void *arg)
{
    int op = dht_op_start(dht, DHT_OP_GET, key, now);
    if (op < 0) return op;
    dht->ops[op].cb.get = cb;
    dht->ops[op].arg = arg;
    /* our own store answers too */
    dht_recset_t *set = dht_store_find(&dht->store, key);
    uint64_t wall = dht_wall_s(dht, now);
    if (set && set->n > 0) {
        dht_op_t *o = &dht->ops[op];
        o->found = calloc((size_t)set->n, sizeof(dht_record_t));
        if (o->found) {
            for (int i = 0; i < set->n; i++)
                if (set->recs[i]->expires > wall) o->found[o->nfound++] = *set->recs[i];
        }
    }
    dht_op_step(dht, op, now);
    return 0;
}

const dht_id_t *dht_self_id(const dht_t *dht)
{
    return &dht->self;
}

size_t dht_contact_count(const dht_t *dht)
{
    return dht_table_count(&dht->table);
}

size_t dht_record_count(const dht_t *dht)
{
    return dht->store.nrecords;
}

void dht_get_stats(const dht_t *dht, dht_stats_t *out)
{
    *out = dht->stats;
}

void dht_foreach_contact(const dht_t *dht, void (*cb)(void *arg, const dht_contact_info_t *c),
                         void *arg)
{
    for (int bi = 0; bi < dht->table.n; bi++) {
        const dht_bucket_t *b = &dht->table.buckets[bi];
        for (int i = 0; i < b->n; i++) {
            const dht_contact_t *c = &b->nodes[i];
            dht_contact_info_t info = {.id = c->id,
                                       .addr = c->addr,
                                       .fails = c->fails,
                                       .last_seen = c->last_seen,
                                       .verified = c->answered};
            memcpy(info.public_key, c->pk, DHT_PK_LEN);
            dht_peer_t *p = dht_peers_find((dht_peers_t *)&dht->peers, c->pk);
            if (p) info.rtt_ms = p->srtt;
            cb(arg, &info);
        }
    }
}

void dht_foreach_record(const dht_t *dht, void (*cb)(void *arg, const dht_record_t *r), void *arg)
{
    uint64_t wall = dht_wall_s(dht, dht->now);
    for (size_t i = 0; i < dht->store.cap; i++) {
        const dht_recset_t *set = dht->store.sets[i];
        for (int j = 0; set && j < set->n; j++)
            if (set->recs[j]->expires > wall) cb(arg, set->recs[j]);
    }
}

bool dht_external_addr(const dht_t *dht, dht_addr_t *out)
{
    int best = -1;
    for (int i = 0; i < DHT_EXT_VOTES; i++)
        if (dht->ext[i].votes >= 2 && (best < 0 || dht->ext[i].votes > dht->ext[best].votes))
            best = i;
    if (best < 0) return false;
    *out = dht->ext[best].addr;
    return true;
}

int dht_import_contact(dht_t *dht, const uint8_t pk[DHT_PK_LEN], const dht_addr_t *addr,
                       uint64_t now)
{
    if (!addr || (addr->family != 4 && addr->family != 6) || addr->port == 0) return -EINVAL;
    if (memcmp(pk, dht->cfg.public_key, DHT_PK_LEN) == 0) return -EINVAL;
    dht_msg_t m = {.type = DHT_MSG_PING};
    int rc = dht_send_request(dht, &m, pk, addr, false, DHT_REQ_PING, -1, -1, now);
    return rc < 0 ? rc : 0;
}
