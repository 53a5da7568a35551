/* members.c: signed node records, the membership table, push-pull gossip messages and lookups
 * (see members.h and docs/discovery.md). Pure: no I/O, no clock, no logging.
 *
 * Record bytes: msgpack [body: bin, sig: bin(64)], sig = Ed25519 over SIGN_DOMAIN || body, body =
 * [1, name, public_key: bin(32), [addr...], http, version, [domain...], [tag...], start_ms, seq,
 * heartbeat]. The table is a dense array (slot 0 is us) indexed by an open-addressing hash of the
 * first 8 bytes of each member id; liveness and name conflicts are derived on demand from `now`. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <sodium.h>

#include "node/config.h"
#include "node/members-internal.h"

_Static_assert(MEMBERS_NAME_MAX == NODE_NAME_MAX, "a member name is a node name");
_Static_assert(MEMBERS_RECORD_MAX <= DHT_MAX_VALUE, "a record fits one DHT value");

#define NAME_BUCKETS 8192 /* name-hash buckets counted to skip conflict scans */

typedef struct entry {
    uint64_t prefix; /* first 8 id bytes, big-endian: the index key */
    dht_id_t id;
    char name[MEMBERS_NAME_MAX + 1];
    uint32_t name_hash;
    uint64_t start_ms, seq, hb;
    int64_t last_changed; /* our clock (ms) when its heartbeat last grew; may be negative */
    uint8_t *raw;         /* signed record bytes; NULL only for our slot before set_self */
    uint16_t raw_len;
    bool up;       /* as of the last tick or merge */
    uint32_t mark; /* == members.epoch: listed in the digest being compared */
} entry_t;

struct members {
    members_config_t cfg;
    entry_t *ents; /* ents[0] is us */
    uint32_t n, cap;
    uint32_t *index; /* entry index + 1, 0 = empty slot */
    uint32_t index_cap;
    uint16_t names[NAME_BUCKETS]; /* members per name-hash bucket (self included) */
    members_record_t self;
    uint64_t self_seq_floor; /* above any record of ours seen before set_self */
    uint64_t last_beat;
    uint32_t epoch; /* marks entries seen in a peer's digest (members_gossip_respond) */
    members_stats_t st;
};

/* --- small helpers --- */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    while (*s)
        h = (h ^ (uint8_t)*s++) * 16777619u;
    return h;
}

static int64_t age_of(const entry_t *e, uint64_t now)
{
    int64_t a = (int64_t)now - e->last_changed;
    return a > 0 ? a : 0;
}

static bool is_up(const members_t *m, uint32_t i, uint64_t now)
{
    return i == 0 || (uint64_t)age_of(&m->ents[i], now) < m->cfg.peer_timeout_ms;
}

/* true when (s1, h1) is newer than (s2, h2) */
static bool newer(uint64_t s1, uint64_t h1, uint64_t s2, uint64_t h2)
{
    return s1 > s2 || (s1 == s2 && h1 > h2);
}

/* Name-binding rule: a live claimant beats a down one, then the earliest start time, then the
 * lowest id. Only record content and liveness are used, so every node agrees. */
static bool outranks(const members_t *m, uint32_t a, uint32_t b, uint64_t now)
{
    bool ua = is_up(m, a, now), ub = is_up(m, b, now);
    if (ua != ub) return ua;
    const entry_t *ea = &m->ents[a], *eb = &m->ents[b];
    if (ea->start_ms != eb->start_ms) return ea->start_ms < eb->start_ms;
    return memcmp(ea->id.b, eb->id.b, DHT_ID_LEN) < 0;
}

/* --- index --- */

static uint64_t prefix_of(const uint8_t *id)
{
    uint64_t v = 0;
    for (int i = 0; i < MEMBERS_PREFIX_LEN; i++)
        v = v << 8 | id[i];
    return v;
}

/* Returns the entry index of prefix, or -1. */
static int64_t find(const members_t *m, uint64_t prefix)
{
    uint32_t mask = m->index_cap - 1;
    for (uint32_t s = (uint32_t)prefix & mask;; s = (s + 1) & mask) {
        uint32_t v = m->index[s];
        if (v == 0) return -1;
        if (m->ents[v - 1].prefix == prefix) return v - 1;
    }
}

static void index_put(members_t *m, uint32_t i)
{
    uint32_t mask = m->index_cap - 1;
    uint32_t s = (uint32_t)m->ents[i].prefix & mask;
    while (m->index[s] != 0)
        s = (s + 1) & mask;
    m->index[s] = i + 1;
}

static void rebuild_index(members_t *m)
{
    memset(m->index, 0, m->index_cap * sizeof(*m->index));
    memset(m->names, 0, sizeof(m->names));
    for (uint32_t i = 0; i < m->n; i++) {
        index_put(m, i);
        if (m->ents[i].raw) m->names[m->ents[i].name_hash % NAME_BUCKETS]++;
    }
}

/* Sets entry i's name, keeping the bucket counts. */
static void set_name(members_t *m, entry_t *e, const char *name)
{
    if (e->raw && e->name[0]) m->names[e->name_hash % NAME_BUCKETS]--;
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->name_hash = hash_name(e->name);
    m->names[e->name_hash % NAME_BUCKETS]++;
}

/* False when no other member can share entry i's name (the common case: skip the scan). */
static bool may_share_name(const members_t *m, const entry_t *e)
{
    return m->names[e->name_hash % NAME_BUCKETS] > 1;
}

/* Makes room for one more entry (n < max checked by the caller). */
static int grow(members_t *m)
{
    if (m->n < m->cap) return 0;
    uint32_t cap = P2P_MIN(m->cap * 2, m->cfg.max_members);
    entry_t *e = realloc(m->ents, cap * sizeof(*e));
    if (!e) return -ENOMEM;
    m->ents = e;
    m->cap = cap;
    if (m->index_cap >= 2 * cap) return 0;
    uint32_t *ix = malloc(4 * cap * sizeof(*ix));
    if (!ix) return -ENOMEM;
    free(m->index);
    m->index = ix;
    m->index_cap = 4 * cap;
    rebuild_index(m);
    return 0;
}

/* Drops entry i (never 0); the caller rebuilds the index. */
static void remove_at(members_t *m, uint32_t i)
{
    free(m->ents[i].raw);
    m->ents[i] = m->ents[--m->n];
}

/* --- the table --- */

members_t *members_new(const members_config_t *cfg)
{
    members_t *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    m->cfg = *cfg;
    if (!m->cfg.peer_timeout_ms) m->cfg.peer_timeout_ms = MEMBERS_PEER_TIMEOUT_MS;
    if (!m->cfg.heartbeat_ms)
        m->cfg.heartbeat_ms =
            P2P_MIN(P2P_MAX(m->cfg.peer_timeout_ms / 12, MEMBERS_HEARTBEAT_MIN_MS),
                    MEMBERS_HEARTBEAT_MAX_MS);
    if (!m->cfg.forget_ms) m->cfg.forget_ms = MEMBERS_FORGET_MS;
    if (!m->cfg.max_members || m->cfg.max_members > MEMBERS_MAX) m->cfg.max_members = MEMBERS_MAX;
    m->cap = P2P_MIN(64u, m->cfg.max_members);
    m->index_cap = 256;
    m->ents = calloc(m->cap, sizeof(*m->ents));
    m->index = calloc(m->index_cap, sizeof(*m->index));
    if (!m->ents || !m->index) goto fail;
    entry_t *self = &m->ents[0];
    dht_id_from_pk(&self->id, cfg->public_key);
    self->prefix = prefix_of(self->id.b);
    self->up = true;
    m->n = 1;
    rebuild_index(m);
    return m;
fail:
    members_free(m);
    return NULL;
}

void members_free(members_t *m)
{
    if (!m) return;
    for (uint32_t i = 0; i < m->n; i++)
        free(m->ents[i].raw);
    free(m->ents);
    free(m->index);
    sodium_memzero(&m->cfg.secret_key, sizeof(m->cfg.secret_key));
    free(m);
}

static int set_raw(entry_t *e, const uint8_t *raw, size_t len)
{
    uint8_t *p = realloc(e->raw, len);
    if (!p) return -ENOMEM;
    memcpy(p, raw, len);
    e->raw = p;
    e->raw_len = (uint16_t)len;
    return 0;
}

/* Signs m->self and stores it in slot 0. */
static int resign_self(members_t *m)
{
    uint8_t buf[MEMBERS_RECORD_MAX];
    int n = members_record_sign(&m->self, m->cfg.secret_key, buf, sizeof(buf));
    if (n < 0) return n;
    entry_t *e = &m->ents[0];
    if (set_raw(e, buf, (size_t)n) != 0) return -ENOMEM;
    if (strcmp(e->name, m->self.name) != 0) set_name(m, e, m->self.name);
    e->start_ms = m->self.start_ms, e->seq = m->self.seq, e->hb = m->self.heartbeat;
    return 0;
}

static bool same_content(const members_record_t *a, const members_record_t *b)
{
    members_record_t x = *a, y = *b;
    x.seq = y.seq = x.heartbeat = y.heartbeat = 0;
    memset(x.sig, 0, sizeof(x.sig)), memset(y.sig, 0, sizeof(y.sig));
    return memcmp(&x, &y, sizeof(x)) == 0;
}

int members_set_self(members_t *m, const members_record_t *rec, uint64_t now)
{
    members_record_t r, old = m->self;
    bool first = m->ents[0].raw == NULL;
    /* normalise: copy field by field so unused bytes are zero and comparisons are exact */
    memset(&r, 0, sizeof(r));
    memcpy(r.public_key, m->cfg.public_key, DHT_PK_LEN);
    snprintf(r.name, sizeof(r.name), "%s", rec->name);
    r.naddrs = P2P_MIN(rec->naddrs, MEMBERS_MAX_ADDRS);
    r.ndomains = P2P_MIN(rec->ndomains, MEMBERS_MAX_DOMAINS);
    r.ntags = P2P_MIN(rec->ntags, MEMBERS_MAX_TAGS);
    for (int i = 0; i < r.naddrs; i++)
        snprintf(r.addrs[i], sizeof(r.addrs[i]), "%s", rec->addrs[i]);
    for (int i = 0; i < r.ndomains; i++)
        snprintf(r.domains[i], sizeof(r.domains[i]), "%s", rec->domains[i]);
    for (int i = 0; i < r.ntags; i++)
        snprintf(r.tags[i], sizeof(r.tags[i]), "%s", rec->tags[i]);
    snprintf(r.http, sizeof(r.http), "%s", rec->http);
    snprintf(r.version, sizeof(r.version), "%s", rec->version);
    r.start_ms = rec->start_ms;
    if (!first && same_content(&r, &old)) return 0;
    r.seq = first ? P2P_MAX(rec->seq, m->self_seq_floor) : P2P_MAX(old.seq + 1, rec->seq);
    r.heartbeat = first ? 0 : old.heartbeat;
    m->self = r;
    int rc = resign_self(m);
    if (rc < 0) {
        m->self = old;
        return rc;
    }
    m->ents[0].last_changed = (int64_t)now;
    if (first) m->last_beat = now;
    return 1;
}

const uint8_t *members_self_bytes(const members_t *m, size_t *len)
{
    *len = m->ents[0].raw_len;
    return m->ents[0].raw;
}

int members_tick(members_t *m, uint64_t now)
{
    int changes = 0;
    bool removed = false;
    if (m->ents[0].raw && now - m->last_beat >= m->cfg.heartbeat_ms) {
        m->self.heartbeat++;
        if (resign_self(m) == 0) {
            m->last_beat = now;
            m->ents[0].last_changed = (int64_t)now;
        } else {
            m->self.heartbeat--;
        }
    }
    for (uint32_t i = m->n; i-- > 1;) {
        entry_t *e = &m->ents[i];
        bool up = is_up(m, i, now);
        if (up != e->up) changes++, e->up = up;
        if (!up && (uint64_t)age_of(e, now) >= m->cfg.forget_ms) {
            remove_at(m, i);
            m->st.forgotten++, changes++;
            removed = true;
        }
    }
    if (removed) rebuild_index(m);
    return changes;
}

/* Room for a new member: evicts the down member heard from longest ago when full. */
static int make_room(members_t *m, uint64_t now)
{
    if (m->n < m->cfg.max_members) return grow(m);
    int64_t victim = -1;
    for (uint32_t i = 1; i < m->n; i++)
        if (!is_up(m, i, now) &&
            (victim < 0 || m->ents[i].last_changed < m->ents[victim].last_changed))
            victim = i;
    if (victim < 0) {
        m->st.refused_full++;
        return -ENOSPC;
    }
    remove_at(m, (uint32_t)victim);
    rebuild_index(m);
    m->st.evicted++;
    return 0;
}

/* Counts a second key claiming the name of entry i. */
static void count_claim(members_t *m, uint32_t i)
{
    const entry_t *e = &m->ents[i];
    if (!may_share_name(m, e)) return;
    for (uint32_t j = 0; j < m->n; j++)
        if (j != i && m->ents[j].raw && m->ents[j].name_hash == e->name_hash &&
            strcmp(m->ents[j].name, e->name) == 0) {
            m->st.conflicts_total++;
            return;
        }
}

/* A newer record of our own key (an earlier run of ours): continue above its sequence. */
static int refute(members_t *m, const members_record_t *r)
{
    if (!m->ents[0].raw) {
        m->self_seq_floor = P2P_MAX(m->self_seq_floor, r->seq + 1);
        return 0;
    }
    m->self.seq = r->seq + 1;
    return resign_self(m) == 0 ? 1 : -ENOMEM;
}

int members_merge(members_t *m, const uint8_t *raw, size_t len, uint64_t age_ms, uint64_t now)
{
    members_record_t r;
    if (members_record_decode(&r, raw, len, false) != 0) goto bad;
    if (age_ms >= m->cfg.forget_ms) goto bad;
    dht_id_t id;
    dht_id_from_pk(&id, r.public_key);
    uint64_t prefix = prefix_of(id.b);
    int64_t i = find(m, prefix);
    if (i >= 0 && memcmp(m->ents[i].id.b, id.b, DHT_ID_LEN) != 0) return -EEXIST;
    if (i >= 0 && !newer(r.seq, r.heartbeat, m->ents[i].seq, m->ents[i].hb)) {
        m->st.stale++;
        return 0;
    }
    if (!m->cfg.skip_verify && members_record_decode(&r, raw, len, true) != 0) goto bad;
    if (i == 0) return refute(m, &r);
    int changed = 0, rc;
    int64_t seen = (int64_t)now - (int64_t)age_ms;
    if (i < 0) {
        if ((rc = make_room(m, now)) < 0) return rc;
        i = m->n++;
        entry_t *e = &m->ents[i];
        memset(e, 0, sizeof(*e));
        e->id = id, e->prefix = prefix, e->last_changed = seen;
        index_put(m, (uint32_t)i);
        changed = 1;
    }
    entry_t *e = &m->ents[i];
    if (set_raw(e, raw, len) != 0) return -ENOMEM;
    bool renamed = strcmp(e->name, r.name) != 0;
    if (r.seq != e->seq) changed = 1;
    if (renamed) set_name(m, e, r.name);
    e->start_ms = r.start_ms, e->seq = r.seq, e->hb = r.heartbeat;
    if (seen > e->last_changed) e->last_changed = seen;
    bool up = is_up(m, (uint32_t)i, now);
    if (up != e->up) changed = 1, e->up = up;
    if (renamed) count_claim(m, (uint32_t)i);
    m->st.merged++;
    return changed;
bad:
    m->st.rejected++;
    return -EBADMSG;
}

/* --- digests and gossip messages --- */

int members_digest(const members_t *m, p2p_buf_t *out)
{
    int n = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        const entry_t *e = &m->ents[i];
        if (!e->raw) continue;
        uint8_t d[MEMBERS_DIGEST_ENTRY];
        memcpy(d, e->id.b, MEMBERS_PREFIX_LEN);
        p2p_put_be64(d + 8, e->seq);
        p2p_put_be64(d + 16, e->hb);
        if (p2p_buf_append(out, d, sizeof(d)) != 0) return -E2BIG;
        n++;
    }
    return n;
}

int members_gossip_request(members_t *m, p2p_buf_t *out)
{
    p2p_buf_t d;
    p2p_buf_init(&d, (size_t)MEMBERS_MAX * MEMBERS_DIGEST_ENTRY);
    int rc = members_digest(m, &d);
    if (rc >= 0) {
        bw_t w = {out, false};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &w, members_buf_write);
        msgpack_pack_map(&pk, 1);
        members_pack_str(&pk, "digest");
        members_pack_bin(&pk, d.data, d.len);
        rc = w.overflow ? -E2BIG : 0;
    }
    p2p_buf_free(&d);
    return rc;
}

/* Parses a gossip body (a map); returns the values of the keys we know (nil when absent). */
typedef struct body {
    msgpack_zone zone;
    msgpack_object digest, records, want;
} body_t;

static int parse_body(body_t *b, const uint8_t *buf, size_t len)
{
    msgpack_object o;
    memset(b, 0, sizeof(*b));
    if (members_unpack(buf, len, MEMBERS_MSG_MAX, 4, 8 * (uint64_t)MEMBERS_MAX + 64, &b->zone,
                       &o) != 0)
        return -EBADMSG;
    if (o.type != MSGPACK_OBJECT_MAP) goto bad;
    for (uint32_t i = 0; i < o.via.map.size; i++) {
        const msgpack_object_kv *kv = &o.via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) goto bad;
        const char *k = kv->key.via.str.ptr;
        size_t kn = kv->key.via.str.size;
        if (kn == 6 && memcmp(k, "digest", 6) == 0) b->digest = kv->val;
        if (kn == 7 && memcmp(k, "records", 7) == 0) b->records = kv->val;
        if (kn == 4 && memcmp(k, "want", 4) == 0) b->want = kv->val;
    }
    bool ok = (b->digest.type == MSGPACK_OBJECT_NIL || b->digest.type == MSGPACK_OBJECT_BIN) &&
              (b->records.type == MSGPACK_OBJECT_NIL || b->records.type == MSGPACK_OBJECT_ARRAY) &&
              (b->want.type == MSGPACK_OBJECT_NIL || b->want.type == MSGPACK_OBJECT_ARRAY);
    if (ok) return 0;
bad:
    msgpack_zone_destroy(&b->zone);
    return -EBADMSG;
}

typedef struct dent {
    uint64_t prefix, seq, hb;
} dent_t;

/* Packs {"records": [[bin, age]...]} for the entries in ix[0..k) (already in priority order),
 * stopping at MEMBERS_GOSSIP_MAX_BYTES; when want is non-NULL adds "want": [bin8...]. */
static void pack_records(const members_t *m, const uint32_t *ix, size_t k, const dent_t *want,
                         size_t nwant, uint64_t now, msgpack_packer *pk)
{
    size_t fit = 0, bytes = 0;
    while (fit < k && bytes + m->ents[ix[fit]].raw_len + 16 <= MEMBERS_GOSSIP_MAX_BYTES)
        bytes += m->ents[ix[fit++]].raw_len + 16;
    msgpack_pack_map(pk, want ? 2 : 1);
    members_pack_str(pk, "records");
    msgpack_pack_array(pk, fit);
    for (size_t i = 0; i < fit; i++) {
        const entry_t *e = &m->ents[ix[i]];
        msgpack_pack_array(pk, 2);
        members_pack_bin(pk, e->raw, e->raw_len);
        msgpack_pack_uint64(pk, (uint64_t)age_of(e, now));
    }
    if (!want) return;
    members_pack_str(pk, "want");
    msgpack_pack_array(pk, nwant);
    for (size_t i = 0; i < nwant; i++) {
        uint8_t p[MEMBERS_PREFIX_LEN];
        p2p_put_be64(p, want[i].prefix);
        members_pack_bin(pk, p, sizeof(p));
    }
}

typedef struct fresh {
    int64_t last_changed;
    uint32_t i;
} fresh_t;

static int cmp_fresh(const void *a, const void *b)
{
    const fresh_t *x = a, *y = b;
    if (x->last_changed != y->last_changed) return x->last_changed > y->last_changed ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static void get_dent(const uint8_t *p, dent_t *d)
{
    d->prefix = prefix_of(p);
    d->seq = p2p_get_be64(p + 8);
    d->hb = p2p_get_be64(p + 16);
}

int members_gossip_respond(members_t *m, const uint8_t *req, size_t len, uint64_t now,
                           p2p_buf_t *out)
{
    body_t b;
    if (parse_body(&b, req, len) != 0) return -EBADMSG;
    dent_t *want = NULL;
    fresh_t *fresh = NULL;
    uint32_t *ix = NULL;
    size_t np, nw = 0, ns = 0;
    int rc = -EBADMSG;
    if (b.digest.type != MSGPACK_OBJECT_BIN || b.digest.via.bin.size % MEMBERS_DIGEST_ENTRY ||
        b.digest.via.bin.size / MEMBERS_DIGEST_ENTRY > MEMBERS_MAX)
        goto fail;
    np = b.digest.via.bin.size / MEMBERS_DIGEST_ENTRY;
    rc = -ENOMEM;
    want = malloc((np + 1) * sizeof(*want));
    fresh = malloc(m->n * sizeof(*fresh));
    ix = malloc(m->n * sizeof(*ix));
    if (!want || !fresh || !ix) goto fail;
    if (++m->epoch == 0) {
        for (uint32_t i = 0; i < m->n; i++)
            m->ents[i].mark = 0;
        m->epoch = 1;
    }
    /* what the peer holds newer, we want; what it holds as new as ours, we need not send */
    for (size_t k = 0; k < np; k++) {
        dent_t d;
        get_dent((const uint8_t *)b.digest.via.bin.ptr + k * MEMBERS_DIGEST_ENTRY, &d);
        int64_t i = find(m, d.prefix);
        if (i < 0 || newer(d.seq, d.hb, m->ents[i].seq, m->ents[i].hb))
            want[nw++] = d;
        else if (!newer(m->ents[i].seq, m->ents[i].hb, d.seq, d.hb))
            m->ents[i].mark = m->epoch;
    }
    for (uint32_t i = 0; i < m->n; i++)
        if (m->ents[i].raw && m->ents[i].mark != m->epoch)
            fresh[ns++] = (fresh_t){m->ents[i].last_changed, i};
    qsort(fresh, ns, sizeof(*fresh), cmp_fresh);
    for (size_t k = 0; k < ns; k++)
        ix[k] = fresh[k].i;
    bw_t w = {out, false};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, members_buf_write);
    pack_records(m, ix, ns, want, nw, now, &pk);
    rc = w.overflow ? -E2BIG : 0;
fail:
    free(want), free(fresh), free(ix);
    msgpack_zone_destroy(&b.zone);
    return rc;
}

/* Merges each [bin, age] of a records array; returns the number of members changed. */
static int merge_records(members_t *m, const msgpack_object *a, uint64_t now)
{
    int changed = 0;
    if (a->type != MSGPACK_OBJECT_ARRAY) return 0;
    for (uint32_t k = 0; k < a->via.array.size; k++) {
        const msgpack_object *r = &a->via.array.ptr[k];
        const msgpack_object *f = r->via.array.ptr;
        if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 2 ||
            f[0].type != MSGPACK_OBJECT_BIN || f[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
            m->st.rejected++;
            continue;
        }
        if (members_merge(m, (const uint8_t *)f[0].via.bin.ptr, f[0].via.bin.size, f[1].via.u64,
                          now) > 0)
            changed++;
    }
    return changed;
}

int members_gossip_consume_response(members_t *m, const uint8_t *resp, size_t len, uint64_t now,
                                    p2p_buf_t *push)
{
    body_t b;
    if (parse_body(&b, resp, len) != 0) return -EBADMSG;
    int changed = merge_records(m, &b.records, now);
    uint32_t *ix = NULL;
    size_t k = 0, nwant = b.want.type == MSGPACK_OBJECT_ARRAY ? b.want.via.array.size : 0;
    if (nwant > 0 && (ix = malloc(P2P_MIN(nwant, m->n) * sizeof(*ix))) == NULL) {
        changed = -ENOMEM;
        goto done;
    }
    for (size_t j = 0; j < nwant && k < m->n; j++) {
        const msgpack_object *o = &b.want.via.array.ptr[j];
        if (o->type != MSGPACK_OBJECT_BIN || o->via.bin.size != MEMBERS_PREFIX_LEN) continue;
        int64_t i = find(m, prefix_of((const uint8_t *)o->via.bin.ptr));
        if (i >= 0 && m->ents[i].raw) ix[k++] = (uint32_t)i;
    }
    if (k > 0) {
        bw_t w = {push, false};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &w, members_buf_write);
        pack_records(m, ix, k, NULL, 0, now, &pk);
        if (w.overflow) changed = -E2BIG;
    }
done:
    free(ix);
    msgpack_zone_destroy(&b.zone);
    return changed;
}

int members_gossip_consume_push(members_t *m, const uint8_t *body, size_t len, uint64_t now)
{
    body_t b;
    if (parse_body(&b, body, len) != 0) return -EBADMSG;
    int changed = merge_records(m, &b.records, now);
    msgpack_zone_destroy(&b.zone);
    return changed;
}

/* --- lookups --- */

int members_pick(const members_t *m, uint64_t now, size_t n, uint64_t *rng, dht_id_t *out)
{
    size_t live = 0, down = 0;
    for (uint32_t i = 1; i < m->n; i++) {
        if (!is_up(m, i, now)) {
            down++;
            continue;
        }
        size_t j = live < n ? live : (size_t)(rng_next(rng) % (live + 1));
        if (j < n) out[j] = m->ents[i].id;
        live++;
    }
    size_t k = P2P_MIN(live, n);
    /* Cassandra's rule, capped: a down member with probability min(down / (live + 1), 1/4) */
    uint64_t den = 4 * ((uint64_t)live + 1), num = P2P_MIN(4 * (uint64_t)down, (uint64_t)live + 1);
    if (down == 0 || rng_next(rng) % den >= num) return (int)k;
    size_t pick = (size_t)(rng_next(rng) % down);
    for (uint32_t i = 1; i < m->n; i++)
        if (!is_up(m, i, now) && pick-- == 0) {
            out[k++] = m->ents[i].id;
            break;
        }
    return (int)k;
}

/* True when another claimant of entry i's name outranks it. */
static bool lost_name(const members_t *m, uint32_t i, uint64_t now)
{
    const entry_t *e = &m->ents[i];
    if (!may_share_name(m, e)) return false;
    for (uint32_t j = 0; j < m->n; j++)
        if (j != i && m->ents[j].raw && m->ents[j].name_hash == e->name_hash &&
            strcmp(m->ents[j].name, e->name) == 0 && outranks(m, j, i, now))
            return true;
    return false;
}

static int make_view(const members_t *m, uint32_t i, bool conflict, uint64_t now, members_view_t *v)
{
    const entry_t *e = &m->ents[i];
    if (!e->raw) return -ENOENT;
    if (!v) return 0;
    if (members_record_decode(&v->rec, e->raw, e->raw_len, false) != 0) return -EIO;
    v->id = e->id;
    v->last_seen_s = (uint64_t)age_of(e, now) / 1000;
    v->up = is_up(m, i, now);
    v->conflict = conflict;
    v->self = i == 0;
    return 0;
}

int members_find_id(const members_t *m, const dht_id_t *id, uint64_t now, members_view_t *out)
{
    int64_t i = find(m, prefix_of(id->b));
    if (i < 0 || memcmp(m->ents[i].id.b, id->b, DHT_ID_LEN) != 0) return -ENOENT;
    return make_view(m, (uint32_t)i, lost_name(m, (uint32_t)i, now), now, out);
}

int members_find_name(const members_t *m, const char *name, uint64_t now, members_view_t *out)
{
    uint32_t h = hash_name(name);
    int64_t best = -1;
    if (m->names[h % NAME_BUCKETS] == 0) return -ENOENT;
    for (uint32_t j = 0; j < m->n; j++)
        if (m->ents[j].raw && m->ents[j].name_hash == h && strcmp(m->ents[j].name, name) == 0 &&
            (best < 0 || outranks(m, j, (uint32_t)best, now)))
            best = j;
    if (best < 0) return -ENOENT;
    return make_view(m, (uint32_t)best, false, now, out);
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int members_find_prefix(const members_t *m, const char *hex, uint64_t now, members_view_t *out)
{
    size_t n = strlen(hex);
    uint8_t nib[2 * DHT_ID_LEN];
    if (n < 8 || n > 2 * DHT_ID_LEN) return -EINVAL;
    for (size_t k = 0; k < n; k++)
        if (nibble(hex[k]) < 0)
            return -EINVAL;
        else
            nib[k] = (uint8_t)nibble(hex[k]);
    int64_t hit = -1;
    for (uint32_t i = 0; i < m->n; i++) {
        const uint8_t *id = m->ents[i].id.b;
        size_t k = 0;
        while (k < n && nib[k] == ((k & 1) ? id[k / 2] & 15 : id[k / 2] >> 4))
            k++;
        if (k < n || !m->ents[i].raw) continue;
        if (hit >= 0) return -ENOTUNIQ;
        hit = i;
    }
    if (hit < 0) return -ENOENT;
    return make_view(m, (uint32_t)hit, lost_name(m, (uint32_t)hit, now), now, out);
}

bool members_glob_match(const char *p, const char *s)
{
    const char *star = NULL, *back = NULL;
    while (*s) {
        if (*p == '?' || (*p && *p != '*' && *p == *s)) {
            p++, s++;
        } else if (*p == '*') {
            star = p++, back = s;
        } else if (star) {
            p = star + 1, s = ++back;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == 0;
}

typedef struct skey {
    const char *name;
    const uint8_t *id;
    uint32_t i;
} skey_t;

static int cmp_skey(const void *a, const void *b)
{
    const skey_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : memcmp(x->id, y->id, DHT_ID_LEN);
}

/* Sorts the members by name then id into *keys (caller frees) and flags conflict losers in
 * *lost. Returns the count or -ENOMEM. */
static int sorted(const members_t *m, uint64_t now, skey_t **keys, bool **lost)
{
    skey_t *k = malloc(m->n * sizeof(*k));
    bool *l = calloc(m->n, sizeof(*l));
    size_t n = 0;
    if (!k || !l) {
        free(k), free(l);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < m->n; i++)
        if (m->ents[i].raw) k[n++] = (skey_t){m->ents[i].name, m->ents[i].id.b, i};
    qsort(k, n, sizeof(*k), cmp_skey);
    for (size_t a = 0, b; a < n; a = b) {
        size_t best = a;
        for (b = a + 1; b < n && strcmp(k[b].name, k[a].name) == 0; b++)
            if (outranks(m, k[b].i, k[best].i, now)) best = b;
        for (size_t j = a; j < b; j++)
            l[j] = j != best;
    }
    *keys = k, *lost = l;
    return (int)n;
}

int members_glob(const members_t *m, const char *pattern, uint64_t now, dht_id_t *out, size_t cap)
{
    skey_t *k;
    bool *lost;
    int n = sorted(m, now, &k, &lost), hits = 0;
    for (int j = 0; j < n; j++)
        if (!lost[j] && is_up(m, k[j].i, now) && members_glob_match(pattern, k[j].name)) {
            if ((size_t)hits < cap) out[hits] = m->ents[k[j].i].id;
            hits++;
        }
    if (n >= 0) free(k), free(lost);
    return n < 0 ? n : hits;
}

int members_foreach(const members_t *m, uint64_t now,
                    void (*cb)(void *arg, const members_view_t *v), void *arg)
{
    skey_t *k;
    bool *lost;
    int n = sorted(m, now, &k, &lost);
    if (n < 0) return n;
    members_view_t *v = malloc(sizeof(*v));
    if (!v) n = -ENOMEM;
    for (int j = 0; v && j < n; j++)
        if (make_view(m, k[j].i, lost[j], now, v) == 0) cb(arg, v);
    free(v), free(k), free(lost);
    return n;
}

void members_get_stats(const members_t *m, uint64_t now, members_stats_t *out)
{
    *out = m->st;
    out->members = out->up = out->down = out->conflicts = 0;
    skey_t *k;
    bool *lost;
    int n = sorted(m, now, &k, &lost);
    if (n < 0) return;
    for (int j = 0; j < n; j++) {
        out->members++;
        if (is_up(m, k[j].i, now))
            out->up++;
        else
            out->down++;
        out->conflicts += lost[j];
    }
    free(k), free(lost);
}
