/* Tests src/dht/records.c (the record store) and record signing in src/dht/codec.c: signatures,
 * one value per publisher, sequence rules, expiry, per-key cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "dht/dht-internal.h"

#define WALL 1700000000ull

typedef struct keypair {
    uint8_t pk[DHT_PK_LEN];
    uint8_t sk[DHT_SK_LEN];
} keypair_t;

static keypair_t keypair(uint32_t n)
{
    keypair_t k;
    uint8_t seed[32] = {0};
    memcpy(seed, &n, sizeof n);
    seed[31] = 0x77;
    crypto_sign_seed_keypair(k.pk, k.sk, seed);
    return k;
}

static dht_id_t key_of(const char *name)
{
    dht_id_t k;
    dht_key_derive(&k, "test", name, strlen(name));
    return k;
}

static dht_record_t make(const keypair_t *kp, const dht_id_t *key, uint64_t seq, uint64_t expires,
                         const char *value)
{
    dht_record_t r;
    memset(&r, 0, sizeof r);
    r.key = *key;
    memcpy(r.publisher, kp->pk, DHT_PK_LEN);
    r.seq = seq;
    r.expires = expires;
    r.value_len = (uint16_t)strlen(value);
    memcpy(r.value, value, r.value_len);
    dht_record_sign(&r, kp->sk);
    return r;
}

static const dht_record_t *held(dht_store_t *s, const dht_id_t *key, const uint8_t *publisher)
{
    dht_recset_t *set = dht_store_find(s, key);
    for (int i = 0; set && i < set->n; i++)
        if (memcmp(set->recs[i]->publisher, publisher, DHT_PK_LEN) == 0) return set->recs[i];
    return NULL;
}

static void test_key_derive(void **state)
{
    (void)state;
    dht_id_t a, b, c;
    dht_key_derive(&a, "kv", "x", 1);
    dht_key_derive(&b, "kv", "x", 1);
    dht_key_derive(&c, "kv", "y", 1);
    assert_memory_equal(a.b, b.b, DHT_ID_LEN);
    assert_memory_not_equal(a.b, c.b, DHT_ID_LEN);
    /* BLAKE2b-256 of "p2p-admin/kv/x" */
    uint8_t want[32];
    crypto_generichash(want, 32, (const uint8_t *)"p2p-admin/kv/x", 14, NULL, 0);
    assert_memory_equal(a.b, want, 32);
    /* the namespace is part of the key */
    dht_key_derive(&b, "kvx", "", 0);
    assert_memory_not_equal(a.b, b.b, DHT_ID_LEN);
}

static void test_sign_verify(void **state)
{
    (void)state;
    keypair_t kp = keypair(1), other = keypair(2);
    dht_id_t key = key_of("k");
    dht_record_t r = make(&kp, &key, 5, WALL + 100, "hello");
    assert_int_equal(dht_record_verify(&r), 0);
    dht_record_t t = r;
    t.value[0] ^= 1;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    t.value_len--;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    t.seq++;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    t.expires++;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    t.key.b[31] ^= 0x80;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    t.sig[10] ^= 4;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    memcpy(t.publisher, other.pk, DHT_PK_LEN); /* claim another publisher */
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    t = r;
    t.value_len = DHT_MAX_VALUE + 1;
    assert_int_equal(dht_record_verify(&t), -EBADMSG);
    /* an empty value and the largest value sign fine */
    dht_record_t e = make(&kp, &key, 1, WALL + 1, "");
    assert_int_equal(dht_record_verify(&e), 0);
    dht_record_t big = r;
    big.value_len = DHT_MAX_VALUE;
    memset(big.value, 'v', DHT_MAX_VALUE);
    dht_record_sign(&big, kp.sk);
    assert_int_equal(dht_record_verify(&big), 0);
}

static void test_store_sequence(void **state)
{
    (void)state;
    dht_store_t s;
    assert_int_equal(dht_store_init(&s), 0);
    keypair_t kp = keypair(1);
    dht_id_t key = key_of("seq");
    dht_record_t r5 = make(&kp, &key, 5, WALL + 100, "five");
    assert_int_equal(dht_store_put(&s, &r5, WALL), 0);
    assert_int_equal(s.nrecords, 1);
    /* a lower sequence never replaces a higher one, even with a later expiry */
    dht_record_t r4 = make(&kp, &key, 4, WALL + 5000, "four");
    assert_int_equal(dht_store_put(&s, &r4, WALL), -ESTALE);
    const dht_record_t *h = held(&s, &key, kp.pk);
    assert_non_null(h);
    assert_true(h->seq == 5);
    assert_memory_equal(h->value, "five", 4);
    /* same record again: accepted, nothing changes */
    assert_int_equal(dht_store_put(&s, &r5, WALL), 0);
    assert_int_equal(s.nrecords, 1);
    /* a higher sequence replaces */
    dht_record_t r6 = make(&kp, &key, 6, WALL + 50, "six");
    assert_int_equal(dht_store_put(&s, &r6, WALL), 0);
    h = held(&s, &key, kp.pk);
    assert_true(h->seq == 6);
    assert_int_equal(h->value_len, 3);
    assert_memory_equal(h->value, "six", 3);
    assert_int_equal(dht_store_find(&s, &key)->n, 1);
    assert_int_equal(s.nrecords, 1);
    /* a forged higher sequence does not replace */
    dht_record_t forged = r6;
    forged.seq = 7;
    memcpy(forged.value, "bad", 3);
    assert_int_equal(dht_store_put(&s, &forged, WALL), -EBADMSG);
    h = held(&s, &key, kp.pk);
    assert_true(h->seq == 6);
    assert_memory_equal(h->value, "six", 3);
    /* expired or too far in the future */
    dht_record_t old = make(&kp, &key, 9, WALL, "old");
    assert_int_equal(dht_store_put(&s, &old, WALL), -ETIME);
    dht_record_t far = make(&kp, &key, 9, WALL + DHT_MAX_TTL_S + 301, "far");
    assert_int_equal(dht_store_put(&s, &far, WALL), -EBADMSG);
    assert_true(held(&s, &key, kp.pk)->seq == 6);
    /* a bad signature on a new key stores nothing */
    dht_id_t key2 = key_of("other");
    dht_record_t bad = make(&kp, &key2, 1, WALL + 10, "x");
    bad.sig[0] ^= 1;
    assert_int_equal(dht_store_put(&s, &bad, WALL), -EBADMSG);
    assert_null(dht_store_find(&s, &key2));
    assert_int_equal(s.nrecords, 1);
    dht_store_free(&s);
}

static void test_store_publishers_and_cap(void **state)
{
    (void)state;
    dht_store_t s;
    assert_int_equal(dht_store_init(&s), 0);
    dht_id_t key = key_of("many");
    for (uint32_t i = 0; i < DHT_MAX_VALUES_PER_KEY; i++) {
        keypair_t kp = keypair(100 + i);
        dht_record_t r = make(&kp, &key, 1, WALL + 100, "v");
        assert_int_equal(dht_store_put(&s, &r, WALL), 0);
    }
    dht_recset_t *set = dht_store_find(&s, &key);
    assert_non_null(set);
    assert_int_equal(set->n, DHT_MAX_VALUES_PER_KEY);
    assert_int_equal(s.nrecords, DHT_MAX_VALUES_PER_KEY);
    keypair_t extra = keypair(999);
    dht_record_t r = make(&extra, &key, 1, WALL + 100, "v");
    assert_int_equal(dht_store_put(&s, &r, WALL), -ENOSPC);
    assert_null(held(&s, &key, extra.pk));
    /* an existing publisher can still update at the cap */
    keypair_t first = keypair(100);
    dht_record_t up = make(&first, &key, 2, WALL + 100, "updated");
    assert_int_equal(dht_store_put(&s, &up, WALL), 0);
    assert_memory_equal(held(&s, &key, first.pk)->value, "updated", 7);
    assert_int_equal(set->n, DHT_MAX_VALUES_PER_KEY);
    /* another key is independent */
    dht_id_t key2 = key_of("many2");
    assert_int_equal(dht_store_put(&s, &(dht_record_t){0}, WALL), -ETIME);
    dht_record_t r2 = make(&extra, &key2, 1, WALL + 100, "w");
    assert_int_equal(dht_store_put(&s, &r2, WALL), 0);
    assert_int_equal(dht_store_find(&s, &key2)->n, 1);
    dht_store_free(&s);
}

static void test_store_expire(void **state)
{
    (void)state;
    dht_store_t s;
    assert_int_equal(dht_store_init(&s), 0);
    keypair_t a = keypair(1), b = keypair(2);
    dht_id_t key = key_of("exp");
    dht_record_t ra = make(&a, &key, 1, WALL + 100, "a");
    dht_record_t rb = make(&b, &key, 1, WALL + 200, "b");
    assert_int_equal(dht_store_put(&s, &ra, WALL), 0);
    assert_int_equal(dht_store_put(&s, &rb, WALL), 0);
    assert_int_equal(dht_store_expire(&s, WALL + 99), 0);
    assert_int_equal(dht_store_find(&s, &key)->n, 2);
    assert_int_equal(dht_store_expire(&s, WALL + 100), 1); /* expires is exclusive */
    assert_null(held(&s, &key, a.pk));
    assert_non_null(held(&s, &key, b.pk));
    assert_int_equal(s.nrecords, 1);
    assert_int_equal(dht_store_expire(&s, WALL + 250), 1);
    assert_null(dht_store_find(&s, &key));
    assert_int_equal(s.nrecords, 0);
    assert_int_equal(s.nsets, 0);

    /* many keys (the table grows), half expire: the rest stay findable */
    enum { NK = 300 };
    char name[16];
    for (int i = 0; i < NK; i++) {
        snprintf(name, sizeof name, "k%d", i);
        dht_id_t k = key_of(name);
        dht_record_t r = make(&a, &k, 1, WALL + (i % 2 ? 1000 : 10), "x");
        assert_int_equal(dht_store_put(&s, &r, WALL), 0);
    }
    assert_int_equal(s.nsets, NK);
    assert_int_equal(dht_store_expire(&s, WALL + 10), NK / 2);
    assert_int_equal(s.nsets, NK / 2);
    assert_int_equal(s.nrecords, NK / 2);
    for (int i = 0; i < NK; i++) {
        snprintf(name, sizeof name, "k%d", i);
        dht_id_t k = key_of(name);
        if (i % 2)
            assert_non_null(dht_store_find(&s, &k));
        else
            assert_null(dht_store_find(&s, &k));
    }
    /* an expired key can be stored again */
    dht_id_t k0 = key_of("k0");
    dht_record_t again = make(&a, &k0, 1, WALL + 2000, "y");
    assert_int_equal(dht_store_put(&s, &again, WALL + 20), 0);
    assert_non_null(dht_store_find(&s, &k0));
    assert_int_equal(dht_store_expire(&s, WALL + 5000), NK / 2 + 1);
    assert_int_equal(s.nrecords, 0);
    dht_store_free(&s);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_derive),     cmocka_unit_test(test_sign_verify),
        cmocka_unit_test(test_store_sequence), cmocka_unit_test(test_store_publishers_and_cap),
        cmocka_unit_test(test_store_expire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
