/* Tests src/dht/routing.c (k-buckets, splitting, replacement cache, IP-diversity cap, closest
 * contacts, peer cache) and the distance helpers of src/dht/addr.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sodium.h>
#include <string.h>

#include "dht/dht-internal.h"

/* Deterministic bytes from (tag, n). */
static void fill(uint8_t *out, size_t len, uint32_t tag, uint32_t n)
{
    uint8_t in[8];
    memcpy(in, &tag, 4);
    memcpy(in + 4, &n, 4);
    crypto_generichash(out, len, in, sizeof(in), NULL, 0);
}

/* An id sharing exactly `cp` leading bits with self (cp < 256), the rest pseudo-random. */
static dht_id_t id_with_prefix(const dht_id_t *self, int cp, uint32_t salt)
{
    dht_id_t id;
    fill(id.b, DHT_ID_LEN, 0x1d, salt * 1000u + (uint32_t)cp);
    for (int bit = 0; bit <= cp; bit++) {
        uint8_t mask = (uint8_t)(0x80 >> (bit % 8));
        uint8_t want = bit < cp ? (self->b[bit / 8] & mask) : (~self->b[bit / 8] & mask);
        id.b[bit / 8] = (uint8_t)((id.b[bit / 8] & ~mask) | want);
    }
    return id;
}

static dht_addr_t addr4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    dht_addr_t x = {.family = 4, .ip = {a, b, c, d}, .port = port};
    return x;
}

static const uint8_t PK[DHT_PK_LEN] = {1};

static dht_id_t self_id(void)
{
    dht_id_t s;
    fill(s.b, DHT_ID_LEN, 0x5e, 1);
    return s;
}

/* ---- distance helpers (addr.c) ---- */

static void test_common_prefix(void **state)
{
    (void)state;
    dht_id_t a = {{0}}, b = {{0}};
    assert_int_equal(dht_id_common_prefix(&a, &b), 256);
    b.b[0] = 0x80;
    assert_int_equal(dht_id_common_prefix(&a, &b), 0);
    b.b[0] = 0x01;
    assert_int_equal(dht_id_common_prefix(&a, &b), 7);
    b.b[0] = 0;
    b.b[1] = 0x40;
    assert_int_equal(dht_id_common_prefix(&a, &b), 9);
    b.b[1] = 0;
    b.b[31] = 0x01;
    assert_int_equal(dht_id_common_prefix(&a, &b), 255);
    dht_id_t s = self_id();
    for (int cp = 0; cp < 256; cp += 7) {
        dht_id_t x = id_with_prefix(&s, cp, 3);
        assert_int_equal(dht_id_common_prefix(&s, &x), cp);
        assert_int_equal(dht_id_common_prefix(&x, &s), cp);
    }
}

static void test_cmp_dist(void **state)
{
    (void)state;
    dht_id_t t = {{0}}, a = {{0}}, b = {{0}};
    assert_int_equal(dht_id_cmp_dist(&t, &a, &b), 0);
    a.b[31] = 1; /* distance 1 */
    b.b[0] = 1;  /* distance 2^248 */
    assert_true(dht_id_cmp_dist(&t, &a, &b) < 0);
    assert_true(dht_id_cmp_dist(&t, &b, &a) > 0);
    /* XOR, not numeric difference: target 0x80.., a = 0x7f.. (numerically adjacent), b = 0xff.. */
    memset(&t, 0, sizeof t);
    t.b[0] = 0x80;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    a.b[0] = 0x7f; /* xor 0xff */
    b.b[0] = 0xff; /* xor 0x7f */
    assert_true(dht_id_cmp_dist(&t, &b, &a) < 0);
    assert_true(dht_id_cmp_dist(&t, &t, &a) < 0);
    assert_int_equal(dht_id_cmp_dist(&t, &a, &a), 0);
}

/* ---- routing table ---- */

static int bucket_total(const dht_table_t *t)
{
    int n = 0;
    for (int i = 0; i < t->n; i++)
        n += t->buckets[i].n;
    return n;
}

/* Every contact sits in the bucket its common prefix with self selects. */
static void assert_buckets_consistent(const dht_table_t *t)
{
    for (int bi = 0; bi < t->n; bi++) {
        const dht_bucket_t *b = &t->buckets[bi];
        assert_true(b->n >= 0 && b->n <= b->cap);
        if (bi == t->n - 1) assert_int_equal(b->cap, DHT_K);
        for (int i = 0; i < b->n; i++) {
            int cp = dht_id_common_prefix(&t->self, &b->nodes[i].id);
            if (bi < t->n - 1)
                assert_int_equal(cp, bi);
            else
                assert_true(cp >= bi);
        }
        for (int i = 0; i < b->nrepl; i++) {
            int cp = dht_id_common_prefix(&t->self, &b->repl[i].id);
            if (bi < t->n - 1)
                assert_int_equal(cp, bi);
            else
                assert_true(cp >= bi);
        }
    }
}

static void test_split_first(void **state)
{
    (void)state;
    dht_id_t self = self_id();
    dht_table_t t;
    assert_int_equal(dht_table_init(&t, &self, false), 0);
    dht_contact_t *ev = (dht_contact_t *)1;
    dht_addr_t a = addr4(10, 0, 0, 1, 4000);
    /* self is rejected */
    assert_int_equal(dht_table_insert(&t, &self, PK, &a, true, 1, &ev), DHT_INS_REJECTED);
    assert_null(ev);
    for (int i = 0; i < DHT_K; i++) {
        dht_id_t id = id_with_prefix(&self, 0, (uint32_t)i);
        assert_int_equal(dht_table_insert(&t, &id, PK, &a, true, 10 + (uint64_t)i, &ev),
                         DHT_INS_ADDED);
        assert_null(ev);
    }
    assert_int_equal(t.n, 1);
    assert_int_equal(dht_table_count(&t), DHT_K);
    /* the same id again is an update, not a new contact */
    dht_id_t again = id_with_prefix(&self, 0, 3);
    dht_addr_t moved = addr4(10, 0, 0, 9, 4001);
    assert_int_equal(dht_table_insert(&t, &again, PK, &moved, true, 500, &ev), DHT_INS_UPDATED);
    dht_contact_t *c = dht_table_find(&t, &again);
    assert_non_null(c);
    assert_true(dht_addr_equal(&c->addr, &moved));
    assert_int_equal(c->last_seen, 500);
    assert_int_equal(dht_table_count(&t), DHT_K);

    /* a closer id forces a split of the (only, last) bucket; the far bucket widens */
    dht_id_t close = id_with_prefix(&self, 3, 1);
    assert_int_equal(dht_table_insert(&t, &close, PK, &a, true, 100, &ev), DHT_INS_ADDED);
    assert_int_equal(t.n, 2);
    assert_int_equal(t.buckets[0].n, DHT_K);
    assert_int_equal(t.buckets[0].cap, DHT_WIDE_BUCKET0 > DHT_K ? DHT_WIDE_BUCKET0 : DHT_K);
    assert_int_equal(t.buckets[1].n, 1);
    assert_int_equal(t.buckets[1].cap, DHT_K);
    assert_int_equal(dht_table_bucket_of(&t, &close), 1);
    assert_non_null(dht_table_find(&t, &close));
    assert_int_equal(dht_table_count(&t), DHT_K + 1);
    /* the widened far bucket takes more than k */
    dht_id_t extra = id_with_prefix(&self, 0, 99);
    assert_int_equal(dht_table_insert(&t, &extra, PK, &a, true, 200, &ev), DHT_INS_ADDED);
    assert_null(ev);
    assert_int_equal(t.buckets[0].n, DHT_K + 1);
    assert_non_null(dht_table_find(&t, &extra));
    assert_buckets_consistent(&t);
    dht_table_free(&t);
}

static void test_split_many(void **state)
{
    (void)state;
    dht_id_t self = self_id();
    dht_table_t t;
    assert_int_equal(dht_table_init(&t, &self, false), 0);
    dht_contact_t *ev;
    dht_addr_t a = addr4(10, 0, 0, 1, 4000);
    /* 5 ids for each prefix length 0..9, round robin: no bucket ever needs more than k */
    for (int s = 0; s < 5; s++) {
        for (int cp = 0; cp < 10; cp++) {
            dht_id_t id = id_with_prefix(&self, cp, (uint32_t)s);
            assert_int_equal(dht_table_insert(&t, &id, PK, &a, true, 1, &ev), DHT_INS_ADDED);
        }
    }
    assert_int_equal(dht_table_count(&t), 50);
    assert_int_equal(bucket_total(&t), 50);
    /* splits stop once the last bucket (prefixes >= n-1) fits: 5 * (10 - 6) = 20 -> n = 7 */
    assert_int_equal(t.n, 7);
    for (int cp = 0; cp < 6; cp++)
        assert_int_equal(t.buckets[cp].n, 5);
    assert_int_equal(t.buckets[6].n, 20);
    /* far buckets are wider: 128, 64, 32, then k */
    for (int bi = 0; bi < t.n - 1; bi++) {
        int want = DHT_WIDE_BUCKET0 >> bi;
        assert_int_equal(t.buckets[bi].cap, want > DHT_K ? want : DHT_K);
    }
    assert_buckets_consistent(&t);
    for (int s = 0; s < 5; s++) {
        for (int cp = 0; cp < 10; cp++) {
            dht_id_t id = id_with_prefix(&self, cp, (uint32_t)s);
            assert_int_equal(dht_table_bucket_of(&t, &id), cp < 6 ? cp : 6);
            assert_non_null(dht_table_find(&t, &id));
        }
    }
    dht_id_t unknown = id_with_prefix(&self, 2, 77);
    assert_null(dht_table_find(&t, &unknown));
    dht_table_free(&t);
}

/* The first bucket index whose capacity is k when it is not the last one. */
#define FULL_CP 3

/* Fills bucket FULL_CP of a fresh table with k contacts (seen at now = 10..29) and makes it a
 * non-last (non-splittable) bucket of capacity k. */
static void full_bucket(dht_table_t *t, const dht_id_t *self)
{
    dht_contact_t *ev;
    assert_int_equal(dht_table_init(t, self, false), 0);
    for (int i = 0; i < DHT_K; i++) {
        dht_id_t id = id_with_prefix(self, FULL_CP, (uint32_t)i);
        dht_addr_t a = addr4(10, 0, (uint8_t)i, 1, 4000);
        assert_int_equal(dht_table_insert(t, &id, PK, &a, true, 10 + (uint64_t)i, &ev),
                         DHT_INS_ADDED);
    }
    dht_id_t close = id_with_prefix(self, 10, 0);
    dht_addr_t a = addr4(10, 1, 0, 1, 4000);
    assert_int_equal(dht_table_insert(t, &close, PK, &a, true, 5, &ev), DHT_INS_ADDED);
    assert_int_equal(t->n, FULL_CP + 2);
    assert_int_equal(t->buckets[FULL_CP].n, DHT_K);
    assert_int_equal(t->buckets[FULL_CP].cap, DHT_K);
    assert_int_equal(t->buckets[FULL_CP + 1].n, 1);
    for (int i = 0; i < FULL_CP; i++)
        assert_int_equal(t->buckets[i].n, 0);
    assert_buckets_consistent(t);
}

static void test_full_bucket(void **state)
{
    (void)state;
    dht_id_t self = self_id();
    dht_table_t t;
    full_bucket(&t, &self);
    dht_contact_t *ev;
    dht_addr_t a = addr4(10, 2, 0, 1, 4000);
    dht_id_t extra = id_with_prefix(&self, FULL_CP, 99);
    assert_int_equal(dht_table_insert(&t, &extra, PK, &a, true, 200, &ev), DHT_INS_REPLACEMENT);
    assert_int_equal(t.n, FULL_CP + 2);
    assert_int_equal(t.buckets[FULL_CP].n, DHT_K);
    assert_int_equal(t.buckets[FULL_CP].nrepl, 1);
    assert_null(dht_table_find(&t, &extra));
    /* the evict check is the stalest contact: index 0 was seen at now=10 */
    assert_non_null(ev);
    dht_id_t stalest = id_with_prefix(&self, FULL_CP, 0);
    assert_memory_equal(ev->id.b, stalest.b, DHT_ID_LEN);
    assert_int_equal(ev->last_seen, 10);
    /* once the stalest is seen again, another one is the evict candidate */
    assert_int_equal(dht_table_insert(&t, &stalest, PK, &a, true, 300, &ev), DHT_INS_UPDATED);
    dht_id_t extra2 = id_with_prefix(&self, FULL_CP, 98);
    assert_int_equal(dht_table_insert(&t, &extra2, PK, &a, true, 301, &ev), DHT_INS_REPLACEMENT);
    dht_id_t next = id_with_prefix(&self, FULL_CP, 1);
    assert_non_null(ev);
    assert_memory_equal(ev->id.b, next.b, DHT_ID_LEN);
    assert_int_equal(dht_table_count(&t), DHT_K + 1);
    dht_table_free(&t);
}

static void test_replacement_cache(void **state)
{
    (void)state;
    dht_id_t self = self_id();
    dht_table_t t;
    full_bucket(&t, &self);
    dht_contact_t *ev;
    dht_addr_t a = addr4(10, 2, 0, 1, 4000);
    /* more than DHT_REPLACEMENTS candidates: the oldest fall out */
    for (int r = 0; r < DHT_REPLACEMENTS + 2; r++) {
        dht_id_t id = id_with_prefix(&self, FULL_CP, 100 + (uint32_t)r);
        assert_int_equal(dht_table_insert(&t, &id, PK, &a, false, 100 + (uint64_t)r, &ev),
                         DHT_INS_REPLACEMENT);
        assert_non_null(ev);
    }
    dht_bucket_t *b = &t.buckets[FULL_CP];
    assert_int_equal(b->nrepl, DHT_REPLACEMENTS);
    dht_id_t r0 = id_with_prefix(&self, FULL_CP, 100), r1 = id_with_prefix(&self, FULL_CP, 101);
    for (int i = 0; i < b->nrepl; i++) {
        assert_memory_not_equal(b->repl[i].id.b, r0.b, DHT_ID_LEN);
        assert_memory_not_equal(b->repl[i].id.b, r1.b, DHT_ID_LEN);
    }
    /* removal promotes the freshest replacement (the last offered) */
    dht_id_t victim = id_with_prefix(&self, FULL_CP, 4);
    assert_int_equal(dht_table_remove(&t, &victim), 1);
    assert_null(dht_table_find(&t, &victim));
    dht_id_t freshest = id_with_prefix(&self, FULL_CP, 100 + DHT_REPLACEMENTS + 1);
    dht_contact_t *p = dht_table_find(&t, &freshest);
    assert_non_null(p);
    assert_int_equal(p->last_seen, 100 + DHT_REPLACEMENTS + 1);
    assert_int_equal(b->n, DHT_K);
    assert_int_equal(b->nrepl, DHT_REPLACEMENTS - 1);
    assert_int_equal(dht_table_count(&t), DHT_K + 1);
    /* removing an unknown id does nothing */
    assert_int_equal(dht_table_remove(&t, &victim), 0);
    assert_int_equal(dht_table_count(&t), DHT_K + 1);
    /* without replacements a removal just shrinks the bucket */
    dht_id_t close = id_with_prefix(&self, 10, 0);
    assert_int_equal(dht_table_remove(&t, &close), 1);
    assert_int_equal(t.buckets[FULL_CP + 1].n, 0);
    assert_buckets_consistent(&t);
    dht_table_free(&t);
}

/* A replacement seen again is the freshest one, even if it was first offered earliest. */
static void test_replacement_reseen_is_freshest(void **state)
{
    (void)state;
    dht_id_t self = self_id();
    dht_table_t t;
    full_bucket(&t, &self);
    dht_contact_t *ev;
    dht_addr_t a = addr4(10, 2, 0, 1, 4000);
    dht_id_t r1 = id_with_prefix(&self, FULL_CP, 201), r2 = id_with_prefix(&self, FULL_CP, 202);
    assert_int_equal(dht_table_insert(&t, &r1, PK, &a, false, 100, &ev), DHT_INS_REPLACEMENT);
    assert_int_equal(dht_table_insert(&t, &r2, PK, &a, false, 200, &ev), DHT_INS_REPLACEMENT);
    assert_int_equal(dht_table_insert(&t, &r1, PK, &a, false, 300, &ev), DHT_INS_REPLACEMENT);
    assert_int_equal(t.buckets[FULL_CP].nrepl, 2);
    dht_id_t victim = id_with_prefix(&self, FULL_CP, 7);
    assert_int_equal(dht_table_remove(&t, &victim), 1);
    dht_contact_t *p = dht_table_find(&t, &r1);
    assert_non_null(p); /* r1 (seen at 300) is fresher than r2 (seen at 200) */
    assert_int_equal(p->last_seen, 300);
    assert_null(dht_table_find(&t, &r2));
    dht_table_free(&t);
}

static void test_failing_contact_replaced(void **state)
{
    (void)state;
    dht_id_t self = self_id();
    dht_table_t t;
    full_bucket(&t, &self);
    dht_contact_t *ev;
    dht_id_t bad = id_with_prefix(&self, FULL_CP, 6);
    dht_contact_t *c = dht_table_find(&t, &bad);
    assert_non_null(c);
    c->fails = 2;
    dht_id_t neu = id_with_prefix(&self, FULL_CP, 300);
    dht_addr_t a = addr4(10, 3, 0, 1, 4000);
    assert_int_equal(dht_table_insert(&t, &neu, PK, &a, true, 400, &ev), DHT_INS_ADDED);
    assert_null(dht_table_find(&t, &bad));
    assert_non_null(dht_table_find(&t, &neu));
    assert_int_equal(t.buckets[FULL_CP].n, DHT_K);
    dht_table_free(&t);
}

static void test_ip_diversity(void **state)
{
    (void)state;
    dht_id_t self = self_id();
    for (int on = 0; on < 2; on++) {
        dht_table_t t;
        assert_int_equal(dht_table_init(&t, &self, on == 1), 0);
        dht_contact_t *ev;
        dht_addr_t a1 = addr4(192, 0, 2, 1, 4000), a2 = addr4(192, 0, 2, 2, 4000),
                   a3 = addr4(192, 0, 2, 3, 4000), other = addr4(192, 0, 3, 3, 4000);
        dht_id_t i1 = id_with_prefix(&self, 0, 1), i2 = id_with_prefix(&self, 0, 2),
                 i3 = id_with_prefix(&self, 0, 3), i4 = id_with_prefix(&self, 0, 4);
        assert_int_equal(dht_table_insert(&t, &i1, PK, &a1, true, 1, &ev), DHT_INS_ADDED);
        assert_int_equal(dht_table_insert(&t, &i2, PK, &a2, true, 1, &ev), DHT_INS_ADDED);
        assert_int_equal(dht_table_insert(&t, &i3, PK, &a3, true, 1, &ev),
                         on ? DHT_INS_REJECTED : DHT_INS_ADDED);
        assert_int_equal(dht_table_insert(&t, &i4, PK, &other, true, 1, &ev), DHT_INS_ADDED);
        assert_int_equal(dht_table_count(&t), on ? 3 : 4);
        /* an existing contact is still updated */
        assert_int_equal(dht_table_insert(&t, &i1, PK, &a1, true, 2, &ev), DHT_INS_UPDATED);
        /* IPv6: the cap is per /48 */
        dht_addr_t v6a = {.family = 6,
                          .ip = {0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
                          .port = 1};
        dht_addr_t v6b = v6a, v6c = v6a, v6d = v6a;
        v6b.ip[15] = 2;
        v6c.ip[7] = 9; /* same /48, other /64 */
        v6d.ip[5] = 2; /* other /48 */
        dht_id_t j1 = id_with_prefix(&self, 0, 11), j2 = id_with_prefix(&self, 0, 12),
                 j3 = id_with_prefix(&self, 0, 13), j4 = id_with_prefix(&self, 0, 14);
        assert_int_equal(dht_table_insert(&t, &j1, PK, &v6a, true, 1, &ev), DHT_INS_ADDED);
        assert_int_equal(dht_table_insert(&t, &j2, PK, &v6b, true, 1, &ev), DHT_INS_ADDED);
        assert_int_equal(dht_table_insert(&t, &j3, PK, &v6c, true, 1, &ev),
                         on ? DHT_INS_REJECTED : DHT_INS_ADDED);
        assert_int_equal(dht_table_insert(&t, &j4, PK, &v6d, true, 1, &ev), DHT_INS_ADDED);
        dht_table_free(&t);
    }
}

static void test_closest(void **state)
{
    (void)state;
    dht_id_t self = self_id();
    dht_table_t t;
    assert_int_equal(dht_table_init(&t, &self, false), 0);
    enum { N = 120 };
    dht_id_t ids[N];
    int inserted = 0;
    dht_contact_t *ev;
    for (int i = 0; i < N; i++) {
        fill(ids[inserted].b, DHT_ID_LEN, 0xc1, (uint32_t)i);
        dht_addr_t a = addr4(10, 9, (uint8_t)i, 1, 4000);
        if (dht_table_insert(&t, &ids[inserted], PK, &a, true, 1, &ev) == DHT_INS_ADDED) inserted++;
    }
    assert_int_equal((int)dht_table_count(&t), inserted);
    assert_true(inserted >= 60);
    dht_id_t target;
    fill(target.b, DHT_ID_LEN, 0x7a, 0);
    dht_contact_t out[DHT_K];
    assert_int_equal(dht_table_closest(&t, &target, out, DHT_K), DHT_K);
    for (int i = 1; i < DHT_K; i++)
        assert_true(dht_id_cmp_dist(&target, &out[i - 1].id, &out[i].id) < 0);
    /* brute force: exactly the k closest of what was inserted */
    for (int i = 0; i < DHT_K; i++) {
        int closer = 0;
        for (int j = 0; j < inserted; j++)
            if (dht_id_cmp_dist(&target, &ids[j], &out[i].id) < 0) closer++;
        assert_int_equal(closer, i);
    }
    /* the closest to a contact's own id is that contact */
    assert_int_equal(dht_table_closest(&t, &ids[5], out, 1), 1);
    assert_memory_equal(out[0].id.b, ids[5].b, DHT_ID_LEN);
    /* contacts that failed too often are left out */
    dht_table_find(&t, &ids[5])->fails = DHT_MAX_FAILS;
    assert_int_equal(dht_table_closest(&t, &ids[5], out, 1), 1);
    assert_memory_not_equal(out[0].id.b, ids[5].b, DHT_ID_LEN);
    /* asking for more than held returns what is held */
    dht_contact_t all[200];
    assert_int_equal(dht_table_closest(&t, &target, all, 200), inserted - 1);
    dht_table_free(&t);
}

/* ---- peer cache ---- */

static void pin(dht_peers_t *ps, dht_peer_t *p)
{
    p->pinned = true;
    ps->unpinned--;
}

static void test_peers_basic(void **state)
{
    (void)state;
    dht_peers_t ps;
    assert_int_equal(dht_peers_init(&ps, 1000), 0);
    uint8_t pk[200][DHT_PK_LEN];
    bool created;
    for (int i = 0; i < 200; i++) {
        fill(pk[i], DHT_PK_LEN, 0x9e, (uint32_t)i);
        dht_peer_t *p = dht_peers_get(&ps, pk[i], (uint32_t)i, &created);
        assert_non_null(p);
        assert_true(created);
        p->srtt = (uint16_t)(i + 1);
        dht_id_t id;
        dht_id_from_pk(&id, pk[i]);
        assert_memory_equal(p->id.b, id.b, DHT_ID_LEN);
    }
    assert_int_equal(ps.count, 200);
    assert_true(ps.cap >= 256); /* grew past the initial 64 */
    for (int i = 0; i < 200; i++) {
        dht_peer_t *p = dht_peers_find(&ps, pk[i]);
        assert_non_null(p);
        assert_int_equal(p->srtt, i + 1);
        assert_ptr_equal(dht_peers_get(&ps, pk[i], 0, &created), p);
        assert_false(created);
    }
    uint8_t unknown[DHT_PK_LEN];
    fill(unknown, DHT_PK_LEN, 0x9e, 5000);
    assert_null(dht_peers_find(&ps, unknown));
    dht_peers_free(&ps);
}

static void test_peers_eviction(void **state)
{
    (void)state;
    enum { MAX = 4 };
    dht_peers_t ps;
    assert_int_equal(dht_peers_init(&ps, MAX), 0);
    uint8_t pk[40][DHT_PK_LEN];
    bool created;
    for (int i = 0; i < 40; i++)
        fill(pk[i], DHT_PK_LEN, 0xee, (uint32_t)i);
    /* two pinned peers (as if in the routing table), then unpinned ones */
    for (int i = 0; i < 2; i++) {
        dht_peer_t *p = dht_peers_get(&ps, pk[i], 0, &created);
        p->last_used = 1; /* oldest of all: still never evicted */
        p->srtt = 77;
        pin(&ps, p);
    }
    for (int i = 2; i < 2 + MAX; i++) {
        dht_peer_t *p = dht_peers_get(&ps, pk[i], 0, &created);
        p->last_used = 100 + (uint64_t)i;
    }
    assert_int_equal(ps.count, 2 + MAX);
    assert_int_equal(ps.unpinned, MAX);
    /* one more: the least recently used unpinned (pk[2]) goes */
    dht_peer_t *p = dht_peers_get(&ps, pk[10], 0, &created);
    assert_non_null(p);
    assert_true(created);
    p->last_used = 1000;
    assert_null(dht_peers_find(&ps, pk[2]));
    assert_non_null(dht_peers_find(&ps, pk[3]));
    assert_int_equal(ps.unpinned, MAX);
    assert_int_equal(ps.count, 2 + MAX);
    /* many more: the cache stays bounded and pinned peers stay */
    for (int i = 11; i < 40; i++) {
        p = dht_peers_get(&ps, pk[i], (uint32_t)i * 7919u, &created);
        assert_non_null(p);
        p->last_used = 1000 + (uint64_t)i;
        assert_int_equal(ps.unpinned, MAX);
        assert_int_equal(ps.count, 2 + MAX);
    }
    for (int i = 0; i < 2; i++) {
        p = dht_peers_find(&ps, pk[i]);
        assert_non_null(p);
        assert_true(p->pinned);
        assert_int_equal(p->srtt, 77);
    }
    /* the MAX most recent survive */
    for (int i = 36; i < 40; i++)
        assert_non_null(dht_peers_find(&ps, pk[i]));
    dht_peers_free(&ps);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_common_prefix),
        cmocka_unit_test(test_cmp_dist),
        cmocka_unit_test(test_split_first),
        cmocka_unit_test(test_split_many),
        cmocka_unit_test(test_full_bucket),
        cmocka_unit_test(test_replacement_cache),
        cmocka_unit_test(test_replacement_reseen_is_freshest),
        cmocka_unit_test(test_failing_contact_replaced),
        cmocka_unit_test(test_ip_diversity),
        cmocka_unit_test(test_closest),
        cmocka_unit_test(test_peers_basic),
        cmocka_unit_test(test_peers_eviction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
