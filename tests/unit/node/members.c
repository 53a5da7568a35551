/* members.c: unit tests for src/node/members.c: record signing and strict decoding, stale and
 * forged records, name conflicts resolved alike under every arrival order, the table bound,
 * lookups, liveness, and in-memory gossip simulations of 100 and 1,000 nodes (deterministic
 * random generator, explicit clock) measuring rounds until a newcomer is listed everywhere and
 * until a stopped node is down everywhere. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "base/base.h"
#include "node/members.h"

typedef struct key {
    uint8_t pk[DHT_PK_LEN], sk[DHT_SK_LEN];
    dht_id_t id;
} key_t_;

static void make_key(key_t_ *k, uint32_t n)
{
    uint8_t seed[32] = {0};
    memcpy(seed, &n, sizeof(n));
    seed[31] = 0x5a;
    crypto_sign_seed_keypair(k->pk, k->sk, seed);
    dht_id_from_pk(&k->id, k->pk);
}

static void fill(members_record_t *r, const key_t_ *k, const char *name, uint64_t start)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->name, sizeof(r->name), "%s", name);
    memcpy(r->public_key, k->pk, DHT_PK_LEN);
    r->naddrs = 1;
    snprintf(r->addrs[0], sizeof(r->addrs[0]), "127.0.0.1:%u", 4000 + (unsigned)(start % 1000));
    snprintf(r->http, sizeof(r->http), "127.0.0.1:8080");
    snprintf(r->version, sizeof(r->version), "0.1.0");
    r->ndomains = 1;
    snprintf(r->domains[0], sizeof(r->domains[0]), "node");
    r->start_ms = start;
    r->seq = 1;
}

/* A signed record of key k (seq, heartbeat) in buf; returns its length. */
static size_t rec_bytes(const key_t_ *k, const char *name, uint64_t start, uint64_t seq,
                        uint64_t hb, uint8_t *buf)
{
    members_record_t r;
    fill(&r, k, name, start);
    r.seq = seq, r.heartbeat = hb;
    int n = members_record_sign(&r, k->sk, buf, MEMBERS_RECORD_MAX);
    assert_true(n > 0);
    return (size_t)n;
}

static members_t *table(const key_t_ *k, const char *name, uint64_t timeout_ms, bool skip)
{
    members_config_t c = {.peer_timeout_ms = timeout_ms, .skip_verify = skip};
    memcpy(c.public_key, k->pk, DHT_PK_LEN);
    memcpy(c.secret_key, k->sk, DHT_SK_LEN);
    members_t *m = members_new(&c);
    assert_non_null(m);
    members_record_t r;
    fill(&r, k, name, 1000);
    r.seq = 1000;
    assert_int_equal(members_set_self(m, &r, 0), 1);
    return m;
}

static void record_round_trip(void **state)
{
    (void)state;
    key_t_ k;
    make_key(&k, 1);
    members_record_t r, d;
    fill(&r, &k, "web-01", 12345);
    r.ntags = 2;
    snprintf(r.tags[0], sizeof(r.tags[0]), "role=web");
    snprintf(r.tags[1], sizeof(r.tags[1]), "dc=par1");
    r.seq = 7, r.heartbeat = 99;
    uint8_t buf[MEMBERS_RECORD_MAX];
    int n = members_record_sign(&r, k.sk, buf, sizeof(buf));
    assert_true(n > 0 && n <= MEMBERS_RECORD_MAX);
    assert_int_equal(members_record_decode(&d, buf, (size_t)n, true), 0);
    assert_memory_equal(&r, &d, sizeof(r));
    /* record rules are enforced when signing */
    snprintf(r.name, sizeof(r.name), "Not_A_Label");
    assert_int_equal(members_record_sign(&r, k.sk, buf, sizeof(buf)), -EINVAL);
    snprintf(r.name, sizeof(r.name), "ok");
    snprintf(r.tags[1], sizeof(r.tags[1]), "novalue");
    assert_int_equal(members_record_sign(&r, k.sk, buf, sizeof(buf)), -EINVAL);
    snprintf(r.tags[1], sizeof(r.tags[1]), "a=\n");
    assert_int_equal(members_record_sign(&r, k.sk, buf, sizeof(buf)), -EINVAL);
    /* too big: every tag at its longest */
    fill(&r, &k, "big", 1);
    r.ntags = MEMBERS_MAX_TAGS;
    for (int i = 0; i < MEMBERS_MAX_TAGS; i++)
        memset(r.tags[i], 'a', MEMBERS_TAG_MAX), r.tags[i][1] = '=';
    assert_int_equal(members_record_sign(&r, k.sk, buf, sizeof(buf)), -EMSGSIZE);
}

static void forgery_rejected(void **state)
{
    (void)state;
    key_t_ self, a, evil;
    make_key(&self, 10), make_key(&a, 11), make_key(&evil, 12);
    members_t *m = table(&self, "self", 0, false);
    uint8_t buf[MEMBERS_RECORD_MAX];
    size_t n = rec_bytes(&a, "alpha", 5, 3, 1, buf);
    /* any altered byte breaks the record (decode or signature) */
    for (size_t i = 0; i < n; i++) {
        buf[i] ^= 0x01;
        assert_true(members_merge(m, buf, n, 0, 10) < 0);
        buf[i] ^= 0x01;
    }
    /* signed by another key but claiming a's public key */
    members_record_t r;
    fill(&r, &a, "alpha", 5);
    r.seq = 9;
    uint8_t forged[MEMBERS_RECORD_MAX];
    int fn = members_record_sign(&r, evil.sk, forged, sizeof(forged));
    assert_true(fn > 0);
    assert_int_equal(members_merge(m, forged, (size_t)fn, 0, 10), -EBADMSG);
    assert_int_equal(members_find_id(m, &a.id, 10, NULL), -ENOENT);
    assert_int_equal(members_merge(m, buf, n, 0, 10), 1);
    members_stats_t st;
    members_get_stats(m, 10, &st);
    assert_int_equal(st.rejected, n + 1);
    assert_int_equal(st.members, 2);
    members_free(m);
}

static void stale_rejected(void **state)
{
    (void)state;
    key_t_ self, a;
    make_key(&self, 20), make_key(&a, 21);
    members_t *m = table(&self, "self", 10000, false);
    uint8_t buf[MEMBERS_RECORD_MAX];
    members_view_t v;
    assert_int_equal(members_merge(m, buf, rec_bytes(&a, "alpha", 5, 5, 3, buf), 0, 1000), 1);
    assert_int_equal(members_merge(m, buf, rec_bytes(&a, "beta", 5, 4, 9, buf), 0, 2000), 0);
    assert_int_equal(members_merge(m, buf, rec_bytes(&a, "beta", 5, 5, 3, buf), 0, 2000), 0);
    assert_int_equal(members_find_id(m, &a.id, 2000, &v), 0);
    assert_string_equal(v.rec.name, "alpha");
    assert_int_equal(v.last_seen_s, 1);
    /* a heartbeat: not a view change, but it refreshes liveness */
    assert_int_equal(members_merge(m, buf, rec_bytes(&a, "alpha", 5, 5, 4, buf), 0, 9000), 0);
    assert_int_equal(members_find_id(m, &a.id, 9000, &v), 0);
    assert_int_equal(v.last_seen_s, 0);
    assert_int_equal(v.rec.heartbeat, 4);
    /* a content change (higher seq) is a view change */
    assert_int_equal(members_merge(m, buf, rec_bytes(&a, "alpha2", 5, 6, 0, buf), 0, 9000), 1);
    members_stats_t st;
    members_get_stats(m, 9000, &st);
    assert_int_equal(st.stale, 2);
    members_free(m);
}

static void malformed_rejected(void **state)
{
    (void)state;
    key_t_ self, a;
    make_key(&self, 30), make_key(&a, 31);
    members_t *m = table(&self, "self", 0, false);
    uint8_t buf[MEMBERS_RECORD_MAX];
    size_t n = rec_bytes(&a, "alpha", 5, 1, 1, buf);
    members_record_t r;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(members_record_decode(&r, buf, i, false), -EBADMSG);
    /* declared lengths far beyond the bytes present */
    static const uint8_t huge_bin[] = {0x92, 0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    static const uint8_t huge_arr[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0};
    static const uint8_t huge_map[] = {0xdf, 0x7f, 0xff, 0xff, 0xff};
    static const uint8_t c1[] = {0x92, 0xc1, 0xc1};
    assert_int_equal(members_record_decode(&r, huge_bin, sizeof(huge_bin), false), -EBADMSG);
    assert_int_equal(members_record_decode(&r, huge_arr, sizeof(huge_arr), false), -EBADMSG);
    assert_int_equal(members_record_decode(&r, c1, sizeof(c1), false), -EBADMSG);
    assert_int_equal(members_merge(m, huge_arr, sizeof(huge_arr), 0, 1), -EBADMSG);
    /* trailing bytes */
    buf[n] = 0xc0;
    assert_int_equal(members_record_decode(&r, buf, n + 1, false), -EBADMSG);
    /* gossip bodies */
    assert_int_equal(members_gossip_consume_push(m, huge_map, sizeof(huge_map), 1), -EBADMSG);
    assert_int_equal(members_gossip_consume_push(m, huge_arr, sizeof(huge_arr), 1), -EBADMSG);
    p2p_buf_t out;
    p2p_buf_init(&out, MEMBERS_MSG_MAX);
    static const uint8_t bad_digest[] = {0x81, 0xa6, 'd',  'i', 'g', 'e', 's',
                                         't',  0xc4, 0x03, 1,   2,   3};
    static const uint8_t str_digest[] = {0x81, 0xa6, 'd', 'i', 'g', 'e', 's', 't', 0xa1, 'x'};
    assert_int_equal(members_gossip_respond(m, bad_digest, sizeof(bad_digest), 1, &out), -EBADMSG);
    assert_int_equal(members_gossip_respond(m, str_digest, sizeof(str_digest), 1, &out), -EBADMSG);
    assert_int_equal(members_gossip_respond(m, huge_map, sizeof(huge_map), 1, &out), -EBADMSG);
    /* a records array with junk entries: each counted and skipped, the good one merged */
    uint8_t body[2 * MEMBERS_RECORD_MAX];
    size_t bl = 0;
    body[bl++] = 0x81, body[bl++] = 0xa7, memcpy(body + bl, "records", 7), bl += 7;
    body[bl++] = 0x93, body[bl++] = 0xc0, body[bl++] = 0x92, body[bl++] = 0xc0, body[bl++] = 0x00;
    body[bl++] = 0x92, body[bl++] = 0xc5, body[bl++] = (uint8_t)(n >> 8), body[bl++] = (uint8_t)n;
    memcpy(body + bl, buf, n), bl += n;
    body[bl++] = 0x00;
    assert_int_equal(members_gossip_consume_push(m, body, bl, 1), 1);
    members_stats_t st;
    members_get_stats(m, 1, &st);
    assert_int_equal(st.members, 2);
    assert_true(st.rejected >= 3);
    p2p_buf_free(&out);
    members_free(m);
}

static void conflict_same_everywhere(void **state)
{
    (void)state;
    key_t_ self, c[3];
    make_key(&self, 40);
    uint8_t buf[3][MEMBERS_RECORD_MAX];
    size_t len[3];
    uint64_t starts[3] = {500, 200, 200}; /* c[1] and c[2] tie on start: lowest id decides */
    for (int i = 0; i < 3; i++) {
        make_key(&c[i], 41 + (uint32_t)i);
        len[i] = rec_bytes(&c[i], "web", starts[i], 1, 1, buf[i]);
    }
    const dht_id_t *expect = memcmp(c[1].id.b, c[2].id.b, DHT_ID_LEN) < 0 ? &c[1].id : &c[2].id;
    static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int o = 0; o < 6; o++) {
        members_t *m = table(&self, "self", 0, false);
        for (int j = 0; j < 3; j++)
            assert_int_equal(members_merge(m, buf[orders[o][j]], len[orders[o][j]], 0, 10), 1);
        members_view_t v;
        assert_int_equal(members_find_name(m, "web", 10, &v), 0);
        assert_memory_equal(v.id.b, expect->b, DHT_ID_LEN);
        assert_false(v.conflict);
        members_stats_t st;
        members_get_stats(m, 10, &st);
        assert_int_equal(st.conflicts, 2);
        assert_int_equal(st.conflicts_total, 2);
        dht_id_t ids[8];
        assert_int_equal(members_glob(m, "web", 10, ids, 8), 1);
        assert_memory_equal(ids[0].b, expect->b, DHT_ID_LEN);
        /* the losers stay listed, flagged, and reachable by id prefix */
        char hex[65];
        p2p_hex_encode(hex, c[0].id.b, DHT_ID_LEN);
        hex[10] = 0;
        assert_int_equal(members_find_prefix(m, hex, 10, &v), 0);
        assert_true(v.conflict);
        members_free(m);
    }
}

static void conflict_live_claimant_wins(void **state)
{
    (void)state;
    key_t_ self, old, fresh;
    make_key(&self, 50), make_key(&old, 51), make_key(&fresh, 52);
    members_t *m = table(&self, "self", 10000, false);
    uint8_t buf[MEMBERS_RECORD_MAX];
    assert_int_equal(members_merge(m, buf, rec_bytes(&old, "db", 1, 1, 1, buf), 0, 0), 1);
    assert_int_equal(members_merge(m, buf, rec_bytes(&fresh, "db", 9, 1, 1, buf), 0, 0), 1);
    members_view_t v;
    assert_int_equal(members_find_name(m, "db", 0, &v), 0);
    assert_memory_equal(v.id.b, old.id.b, DHT_ID_LEN);
    /* the old key stops; the new one keeps beating: once old is down, the name moves */
    assert_int_equal(members_merge(m, buf, rec_bytes(&fresh, "db", 9, 1, 2, buf), 0, 8000), 0);
    assert_int_equal(members_tick(m, 10000), 1);
    assert_int_equal(members_find_name(m, "db", 10000, &v), 0);
    assert_memory_equal(v.id.b, fresh.id.b, DHT_ID_LEN);
    assert_true(v.up);
    members_free(m);
}

static void liveness_and_forgetting(void **state)
{
    (void)state;
    key_t_ self, a;
    make_key(&self, 60), make_key(&a, 61);
    members_config_t c = {.peer_timeout_ms = 5000, .forget_ms = 60000};
    memcpy(c.public_key, self.pk, DHT_PK_LEN);
    memcpy(c.secret_key, self.sk, DHT_SK_LEN);
    members_t *m = members_new(&c);
    members_record_t r;
    fill(&r, &self, "self", 1);
    assert_int_equal(members_set_self(m, &r, 0), 1);
    assert_int_equal(members_set_self(m, &r, 0), 0);
    uint8_t buf[MEMBERS_RECORD_MAX];
    members_view_t v;
    assert_int_equal(members_merge(m, buf, rec_bytes(&a, "alpha", 1, 1, 1, buf), 1000, 1000), 1);
    assert_int_equal(members_tick(m, 4999), 0);
    assert_int_equal(members_tick(m, 5000), 1); /* heard at 0 by the age hint: 5 s ago */
    assert_int_equal(members_find_name(m, "alpha", 5000, &v), 0);
    assert_false(v.up);
    assert_int_equal(v.last_seen_s, 5);
    /* it heartbeats again: up again */
    assert_int_equal(members_merge(m, buf, rec_bytes(&a, "alpha", 1, 1, 2, buf), 0, 6000), 1);
    assert_int_equal(members_find_name(m, "alpha", 6000, &v), 0);
    assert_true(v.up);
    /* our own heartbeat grows on ticks */
    size_t sl;
    const uint8_t *sb = members_self_bytes(m, &sl);
    assert_int_equal(members_record_decode(&r, sb, sl, true), 0);
    assert_true(r.heartbeat >= 1);
    /* forgotten after forget_ms down; the same record relayed as too old is refused */
    assert_int_equal(members_tick(m, 6000 + 60000), 2);
    assert_int_equal(members_find_name(m, "alpha", 66000, NULL), -ENOENT);
    assert_int_equal(members_merge(m, buf, rec_bytes(&a, "alpha", 1, 1, 2, buf), 60000, 66000),
                     -EBADMSG);
    members_free(m);
}

static void self_refutes_old_run(void **state)
{
    (void)state;
    key_t_ self, a;
    make_key(&self, 70), make_key(&a, 71);
    members_t *m = table(&self, "self", 0, false);
    uint8_t buf[MEMBERS_RECORD_MAX];
    assert_int_equal(members_merge(m, buf, rec_bytes(&self, "self", 1, 5000, 3, buf), 0, 10), 1);
    size_t sl;
    members_record_t r;
    const uint8_t *sb = members_self_bytes(m, &sl);
    assert_int_equal(members_record_decode(&r, sb, sl, true), 0);
    assert_int_equal(r.seq, 5001);
    members_free(m);
}

static void table_is_bounded(void **state)
{
    (void)state;
    key_t_ self;
    make_key(&self, 80);
    members_t *m = table(&self, "self", 10000, false);
    uint8_t buf[MEMBERS_RECORD_MAX];
    char name[32];
    key_t_ k;
    for (uint32_t i = 1; i < MEMBERS_MAX; i++) {
        make_key(&k, 1000 + i);
        snprintf(name, sizeof(name), "m%u", i);
        uint64_t age = i == 1 ? 20000 : 0; /* the first one is down */
        assert_int_equal(members_merge(m, buf, rec_bytes(&k, name, 1, 1, 1, buf), age, 20000), 1);
    }
    members_stats_t st;
    members_get_stats(m, 20000, &st);
    assert_int_equal(st.members, MEMBERS_MAX);
    assert_int_equal(st.down, 1);
    make_key(&k, 999999);
    assert_int_equal(members_merge(m, buf, rec_bytes(&k, "late", 1, 1, 1, buf), 0, 20000), 1);
    assert_int_equal(members_find_name(m, "m1", 20000, NULL), -ENOENT);
    make_key(&k, 999998);
    assert_int_equal(members_merge(m, buf, rec_bytes(&k, "later", 1, 1, 1, buf), 0, 20000),
                     -ENOSPC);
    members_get_stats(m, 20000, &st);
    assert_int_equal(st.members, MEMBERS_MAX);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.refused_full, 1);
    /* a digest of a full table stays within the request limit */
    p2p_buf_t out;
    p2p_buf_init(&out, MEMBERS_MSG_MAX);
    assert_int_equal(members_gossip_request(m, &out), 0);
    assert_true(out.len > (size_t)MEMBERS_MAX * MEMBERS_DIGEST_ENTRY);
    p2p_buf_free(&out);
    members_free(m);
}

static void glob_and_prefix_lookups(void **state)
{
    (void)state;
    key_t_ self;
    make_key(&self, 90);
    members_t *m = table(&self, "n01", 10000, false);
    uint8_t buf[MEMBERS_RECORD_MAX];
    char name[16];
    key_t_ k[12];
    for (uint32_t i = 2; i <= 12; i++) {
        make_key(&k[i - 1], 90 + i);
        snprintf(name, sizeof(name), "n%02u", i);
        uint64_t age = i == 5 ? 10000 : 0; /* n05 is down */
        assert_int_equal(members_merge(m, buf, rec_bytes(&k[i - 1], name, 1, 1, 1, buf), age, 1),
                         1);
    }
    dht_id_t ids[16];
    assert_int_equal(members_glob(m, "*", 1, ids, 16), 11);
    assert_int_equal(members_glob(m, "n0?", 1, ids, 16), 8);
    members_view_t v;
    assert_int_equal(members_find_id(m, &ids[0], 1, &v), 0);
    assert_string_equal(v.rec.name, "n01");
    assert_true(v.self);
    assert_int_equal(members_find_id(m, &ids[4], 1, &v), 0);
    assert_string_equal(v.rec.name, "n06");                 /* sorted, n05 (down) left out */
    assert_int_equal(members_glob(m, "n1*", 1, ids, 1), 3); /* count beyond cap */
    assert_int_equal(members_glob(m, "x*", 1, ids, 16), 0);
    assert_true(members_glob_match("*-01", "web-01"));
    assert_true(members_glob_match("w?b*", "web-01"));
    assert_false(members_glob_match("w?b", "web-01"));
    assert_true(members_glob_match("**", ""));
    /* prefixes: upper or lower case, odd length, too short, not hex, unknown */
    char hex[65];
    p2p_hex_encode(hex, k[6].id.b, DHT_ID_LEN);
    hex[9] = 0;
    assert_int_equal(members_find_prefix(m, hex, 1, &v), 0);
    assert_string_equal(v.rec.name, "n07");
    for (char *p = hex; *p; p++)
        if (*p >= 'a') *p = (char)(*p - 32);
    assert_int_equal(members_find_prefix(m, hex, 1, NULL), 0);
    hex[7] = 0;
    assert_int_equal(members_find_prefix(m, hex, 1, NULL), -EINVAL);
    assert_int_equal(members_find_prefix(m, "zzzzzzzz", 1, NULL), -EINVAL);
    p2p_hex_encode(hex, k[6].id.b, DHT_ID_LEN);
    hex[0] = hex[0] == '0' ? '1' : '0';
    assert_int_equal(members_find_prefix(m, hex, 1, NULL), -ENOENT);
    /* name lookup finds a down node too (so a call to it is UNAVAILABLE, not NOT_FOUND) */
    assert_int_equal(members_find_name(m, "n05", 1, &v), 0);
    assert_false(v.up);
    assert_int_equal(members_find_name(m, "n13", 1, NULL), -ENOENT);
    members_free(m);
}

/* Two keys whose ids share 4 bytes (a birthday search), so an 8-digit prefix is ambiguous. */
static void ambiguous_prefix(void **state)
{
    (void)state;
    enum { SLOTS = 1 << 18 };
    uint32_t *seen = calloc(SLOTS, sizeof(*seen)); /* 0 = empty, else key number + 1 */
    uint32_t *pref = calloc(SLOTS, sizeof(*pref));
    assert_non_null(seen);
    assert_non_null(pref);
    key_t_ k;
    uint32_t a = 0, b = 0;
    for (uint32_t i = 1; i < 2000000 && !a; i++) {
        make_key(&k, i + 5000000);
        uint32_t p = (uint32_t)k.id.b[0] << 24 | k.id.b[1] << 16 | k.id.b[2] << 8 | k.id.b[3];
        for (uint32_t s = p & (SLOTS - 1); seen[s]; s = (s + 1) & (SLOTS - 1))
            if (pref[s] == p) {
                a = seen[s], b = i;
                break;
            }
        if (a) break;
        uint32_t s = p & (SLOTS - 1);
        while (seen[s])
            s = (s + 1) & (SLOTS - 1);
        seen[s] = i, pref[s] = p;
    }
    free(seen), free(pref);
    assert_true(a != 0);
    key_t_ self, ka, kb;
    make_key(&self, 1), make_key(&ka, a + 5000000), make_key(&kb, b + 5000000);
    members_t *m = table(&self, "self", 0, false);
    uint8_t buf[MEMBERS_RECORD_MAX];
    assert_int_equal(members_merge(m, buf, rec_bytes(&ka, "a", 1, 1, 1, buf), 0, 1), 1);
    assert_int_equal(members_merge(m, buf, rec_bytes(&kb, "b", 1, 1, 1, buf), 0, 1), 1);
    char hex[65];
    p2p_hex_encode(hex, ka.id.b, DHT_ID_LEN);
    hex[8] = 0;
    assert_int_equal(members_find_prefix(m, hex, 1, NULL), -ENOTUNIQ);
    p2p_hex_encode(hex, ka.id.b, DHT_ID_LEN);
    assert_int_equal(members_find_prefix(m, hex, 1, NULL), 0);
    members_free(m);
}

/* --- gossip simulation: n tables in memory, synchronous rounds of MEMBERS_GOSSIP_INTERVAL_MS.
 * In a round every live node ticks, picks MEMBERS_GOSSIP_FANOUT partners and runs the 1.5 round
 * trip with each: all requests are built first, then all responses (from the state at the start
 * of the round), then responses are consumed and pushes delivered. A stopped node neither ticks
 * nor answers. --- */

typedef struct sim_map {
    uint64_t prefix;
    uint32_t i;
} sim_map_t;

typedef struct sim {
    size_t n;
    key_t_ *keys;
    members_t **t;
    bool *alive;
    int *boot; /* node asked when a table knows too few members (a DHT contact), -1 none */
    sim_map_t *map;
    uint64_t rng, now, timeout;
    bool skip;
} sim_t;

static uint64_t id_prefix(const dht_id_t *id)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | id->b[i];
    return v;
}

static int cmp_map(const void *a, const void *b)
{
    uint64_t x = ((const sim_map_t *)a)->prefix, y = ((const sim_map_t *)b)->prefix;
    return x < y ? -1 : x > y;
}

static uint32_t sim_node(const sim_t *s, const dht_id_t *id)
{
    sim_map_t key = {id_prefix(id), 0};
    const sim_map_t *hit = bsearch(&key, s->map, s->n, sizeof(key), cmp_map);
    assert_non_null(hit);
    return hit->i;
}

static members_t *sim_table(sim_t *s, size_t i)
{
    char name[16];
    snprintf(name, sizeof(name), "n%04zu", i);
    return table(&s->keys[i], name, s->timeout, s->skip);
}

/* n nodes; all but the last know each other; the last (the newcomer) is not started. */
static void sim_init(sim_t *s, size_t n, uint64_t timeout, bool skip)
{
    memset(s, 0, sizeof(*s));
    s->n = n, s->timeout = timeout, s->skip = skip, s->rng = 42;
    s->keys = calloc(n, sizeof(*s->keys));
    s->t = calloc(n, sizeof(*s->t));
    s->alive = calloc(n, sizeof(*s->alive));
    s->boot = calloc(n, sizeof(*s->boot));
    s->map = calloc(n, sizeof(*s->map));
    assert_true(s->keys && s->t && s->alive && s->boot && s->map);
    for (size_t i = 0; i < n; i++) {
        make_key(&s->keys[i], 100000 + (uint32_t)i);
        s->t[i] = sim_table(s, i);
        s->map[i] = (sim_map_t){id_prefix(&s->keys[i].id), (uint32_t)i};
        s->alive[i] = i + 1 < n;
        s->boot[i] = -1;
    }
    qsort(s->map, n, sizeof(*s->map), cmp_map);
    for (size_t j = 0; j + 1 < n; j++) {
        size_t len;
        const uint8_t *b = members_self_bytes(s->t[j], &len);
        for (size_t i = 0; i + 1 < n; i++)
            if (i != j) assert_int_equal(members_merge(s->t[i], b, len, 0, 0), 1);
    }
}

static void sim_free(sim_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        members_free(s->t[i]);
    free(s->keys), free(s->t), free(s->alive), free(s->boot), free(s->map);
}

typedef struct pair {
    uint32_t a, b;
    p2p_buf_t resp, push;
} pair_t;

static void sim_round(sim_t *s)
{
    size_t cap = s->n * (MEMBERS_GOSSIP_FANOUT + 2), np = 0;
    pair_t *pairs = calloc(cap, sizeof(*pairs));
    p2p_buf_t *req = calloc(s->n, sizeof(*req));
    assert_true(pairs && req);
    s->now += MEMBERS_GOSSIP_INTERVAL_MS;
    for (size_t i = 0; i < s->n; i++) {
        if (!s->alive[i]) continue;
        members_tick(s->t[i], s->now);
        dht_id_t ids[MEMBERS_GOSSIP_FANOUT + 1];
        int k = members_pick(s->t[i], s->now, MEMBERS_GOSSIP_FANOUT, &s->rng, ids);
        for (int j = 0; j < k; j++)
            pairs[np++] = (pair_t){.a = (uint32_t)i, .b = sim_node(s, &ids[j])};
        if (k < MEMBERS_GOSSIP_FANOUT && s->boot[i] >= 0)
            pairs[np++] = (pair_t){.a = (uint32_t)i, .b = (uint32_t)s->boot[i]};
        p2p_buf_init(&req[i], MEMBERS_MSG_MAX);
        assert_int_equal(members_gossip_request(s->t[i], &req[i]), 0);
    }
    for (size_t p = 0; p < np; p++) {
        pair_t *q = &pairs[p];
        p2p_buf_init(&q->resp, MEMBERS_MSG_MAX);
        p2p_buf_init(&q->push, MEMBERS_MSG_MAX);
        if (!s->alive[q->b]) continue; /* connection refused */
        assert_int_equal(
            members_gossip_respond(s->t[q->b], req[q->a].data, req[q->a].len, s->now, &q->resp), 0);
    }
    for (size_t p = 0; p < np; p++) {
        pair_t *q = &pairs[p];
        if (q->resp.len == 0) continue;
        assert_true(members_gossip_consume_response(s->t[q->a], q->resp.data, q->resp.len, s->now,
                                                    &q->push) >= 0);
    }
    for (size_t p = 0; p < np; p++) {
        pair_t *q = &pairs[p];
        if (q->push.len > 0)
            assert_true(
                members_gossip_consume_push(s->t[q->b], q->push.data, q->push.len, s->now) >= 0);
        p2p_buf_free(&q->resp), p2p_buf_free(&q->push);
    }
    for (size_t i = 0; i < s->n; i++)
        p2p_buf_free(&req[i]);
    free(pairs), free(req);
}

/* How many live tables list node x as up (want_up) or as down. */
static size_t sim_count(const sim_t *s, size_t x, bool want_up)
{
    size_t c = 0;
    members_view_t v;
    for (size_t i = 0; i < s->n; i++)
        if (s->alive[i] && i != x && members_find_id(s->t[i], &s->keys[x].id, s->now, &v) == 0 &&
            v.up == want_up)
            c++;
    return c;
}

static size_t sim_alive(const sim_t *s)
{
    size_t c = 0;
    for (size_t i = 0; i < s->n; i++)
        c += s->alive[i];
    return c;
}

/* Starts the newcomer (knowing only node 0, as from a DHT contact); returns the rounds until
 * every live table lists it as up. */
static int sim_newcomer(size_t n, bool skip)
{
    sim_t s;
    sim_init(&s, n, MEMBERS_PEER_TIMEOUT_MS, skip);
    for (int r = 0; r < 3; r++)
        sim_round(&s);
    size_t x = n - 1;
    members_free(s.t[x]);
    s.t[x] = sim_table(&s, x);
    s.alive[x] = true, s.boot[x] = 0;
    int rounds = 0;
    while (sim_count(&s, x, true) < n - 1 && rounds < 30) {
        sim_round(&s);
        rounds++;
    }
    /* the newcomer learned everyone too, and nobody else looks down */
    members_stats_t st;
    members_get_stats(s.t[x], s.now, &st);
    assert_int_equal(st.members, n);
    for (size_t i = 0; i < n; i += n / 10) {
        members_get_stats(s.t[i], s.now, &st);
        assert_int_equal(st.down, 0);
    }
    print_message("N=%zu: newcomer listed as up by every node after %d rounds of %d ms\n", n,
                  rounds, MEMBERS_GOSSIP_INTERVAL_MS);
    sim_free(&s);
    return rounds;
}

static void sim_newcomer_100(void **state)
{
    (void)state;
    assert_true(sim_newcomer(100, false) <= 10); /* signatures checked on every merge */
}

static void sim_newcomer_1000(void **state)
{
    (void)state;
    assert_true(sim_newcomer(1000, true) <= 10);
}

/* Stops one node of n; checks that every live table marks it down no later than timeout after
 * it stopped (plus one gossip interval), never before its last heartbeat + timeout, and that no
 * live node is ever marked down. */
static void sim_stopped(size_t n, uint64_t timeout)
{
    sim_t s;
    sim_init(&s, n - 1 + 1, timeout, true);
    s.alive[n - 1] = false;
    for (int r = 0; r < 5; r++)
        sim_round(&s);
    size_t x = n / 2;
    s.alive[x] = false;
    uint64_t stop = s.now, first_down = 0;
    int rounds = 0;
    size_t live = sim_alive(&s);
    while (rounds < 1000) {
        sim_round(&s);
        rounds++;
        size_t down = sim_count(&s, x, false);
        if (down > 0 && !first_down) first_down = s.now;
        if (down == live) break;
        if (rounds % 16 == 0) {
            members_stats_t st;
            for (size_t i = 0; i < n; i += n / 10) {
                if (!s.alive[i]) continue;
                members_get_stats(s.t[i], s.now, &st);
                assert_true(st.down <= 1);
            }
        }
    }
    assert_int_equal(sim_count(&s, x, false), live);
    assert_true(s.now <= stop + timeout + MEMBERS_GOSSIP_INTERVAL_MS);
    assert_true(first_down >= stop + timeout - MEMBERS_HEARTBEAT_MAX_MS);
    members_stats_t st;
    for (size_t i = 0; i < n; i++) {
        if (!s.alive[i]) continue;
        members_get_stats(s.t[i], s.now, &st);
        assert_int_equal(st.down, 1);
    }
    print_message("N=%zu: stopped node down everywhere %.1f s after it stopped (timeout %.0f s)\n",
                  n, (double)(s.now - stop) / 1000, (double)timeout / 1000);
    sim_free(&s);
}

static void sim_stopped_100(void **state)
{
    (void)state;
    sim_stopped(100, MEMBERS_PEER_TIMEOUT_MS);
}

static void sim_stopped_1000(void **state)
{
    (void)state;
    sim_stopped(1000, MEMBERS_PEER_TIMEOUT_MS);
}

static void pick_partners(void **state)
{
    (void)state;
    key_t_ self, k[6];
    make_key(&self, 200);
    members_t *m = table(&self, "self", 10000, false);
    uint8_t buf[MEMBERS_RECORD_MAX];
    dht_id_t out[3];
    uint64_t rng = 7;
    assert_int_equal(members_pick(m, 0, 2, &rng, out), 0); /* only ourselves */
    for (uint32_t i = 0; i < 6; i++) {
        make_key(&k[i], 201 + i);
        char name[8];
        snprintf(name, sizeof(name), "p%u", i);
        uint64_t age = i < 2 ? 20000 : 0; /* p0 and p1 are down */
        assert_int_equal(members_merge(m, buf, rec_bytes(&k[i], name, 1, 1, 1, buf), age, 20000),
                         1);
    }
    int with_down = 0;
    for (int r = 0; r < 400; r++) {
        int n = members_pick(m, 20000, 2, &rng, out);
        assert_true(n == 2 || n == 3);
        assert_memory_not_equal(out[0].b, out[1].b, DHT_ID_LEN);
        for (int j = 0; j < n; j++) {
            members_view_t v;
            assert_int_equal(members_find_id(m, &out[j], 20000, &v), 0);
            assert_false(v.self);
            assert_true(v.up == (j < 2));
        }
        with_down += n == 3;
    }
    assert_true(with_down > 40 && with_down < 160); /* probability 1/4 */
    members_free(m);
}

int main(int argc, char **argv)
{
    if (sodium_init() < 0) return 1;
    /* clang-format off */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(record_round_trip),
        cmocka_unit_test(forgery_rejected),
        cmocka_unit_test(stale_rejected),
        cmocka_unit_test(malformed_rejected),
        cmocka_unit_test(conflict_same_everywhere),
        cmocka_unit_test(conflict_live_claimant_wins),
        cmocka_unit_test(liveness_and_forgetting),
        cmocka_unit_test(self_refutes_old_run),
        cmocka_unit_test(table_is_bounded),
        cmocka_unit_test(glob_and_prefix_lookups),
        cmocka_unit_test(ambiguous_prefix),
        cmocka_unit_test(pick_partners),
        cmocka_unit_test(sim_newcomer_100),
        cmocka_unit_test(sim_newcomer_1000),
        cmocka_unit_test(sim_stopped_100),
    };
    /* clang-format on */
    /* the 1,000-node stop takes about a minute: the `slow` suite runs it (argument "slow") */
    const struct CMUnitTest slow[] = {
        cmocka_unit_test(sim_stopped_1000),
    };
    if (argc > 1 && strcmp(argv[1], "slow") == 0) return cmocka_run_group_tests(slow, NULL, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
