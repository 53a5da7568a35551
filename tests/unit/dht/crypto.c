/* Tests src/dht/crypto.c: pairwise keys, sealing and opening datagrams (tampering, foreign
 * network keys), the replay window, and address tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "dht/dht-internal.h"

static void no_send(void *ctx, const uint8_t *buf, size_t len, const dht_addr_t *to)
{
    (void)ctx, (void)buf, (void)len, (void)to;
}

static dht_t *node(uint8_t who, uint8_t netkey, bool plaintext)
{
    dht_config_t cfg = {0};
    uint8_t seed[32] = {who, 0x33};
    crypto_sign_seed_keypair(cfg.public_key, cfg.secret_key, seed);
    memset(cfg.network_key, netkey, DHT_NET_KEY_LEN);
    memcpy(cfg.seed, seed, 32);
    cfg.epoch = 42;
    cfg.plaintext = plaintext;
    cfg.send = no_send;
    dht_t *d = dht_new(&cfg, 1000);
    assert_non_null(d);
    return d;
}

static void seal_open(bool plaintext)
{
    dht_t *a = node(1, 7, plaintext), *b = node(2, 7, plaintext);
    dht_t *c = node(2, 8, plaintext); /* b's identity under another network key */
    uint8_t kab[32], kba[32], kcb[32];
    assert_int_equal(dht_crypto_pair_key(a, b->cfg.public_key, kab), 0);
    assert_int_equal(dht_crypto_pair_key(b, a->cfg.public_key, kba), 0);
    assert_memory_equal(kab, kba, 32);
    assert_int_equal(dht_crypto_pair_key(c, a->cfg.public_key, kcb), 0);
    assert_memory_not_equal(kab, kcb, 32);

    const char msg[] = "a body of some length, 40 bytes or so..";
    uint8_t dg[DHT_MAX_DATAGRAM], plain[DHT_MAX_DATAGRAM];
    int n = dht_crypto_seal(a, DHT_MAGIC_BOX, kab, (const uint8_t *)msg, sizeof msg, dg, sizeof dg);
    assert_int_equal(n, (int)(sizeof msg + DHT_OVERHEAD));
    assert_int_equal(dg[0], DHT_MAGIC_BOX);
    assert_memory_equal(dg + 1, a->cfg.public_key, DHT_PK_LEN);
    assert_int_equal(dht_crypto_open(b, kba, dg, (size_t)n, plain, sizeof plain), (int)sizeof msg);
    assert_memory_equal(plain, msg, sizeof msg);
    if (!plaintext) assert_null(memmem(dg, (size_t)n, "some length", 11)); /* encrypted */

    if (plaintext) {
        /* simulator mode: same framing, plain body, a zero tag; a non-zero tag is refused */
        assert_memory_equal(dg + DHT_HDR_LEN, msg, sizeof msg);
        dg[n - 1] ^= 1;
        assert_int_equal(dht_crypto_open(b, kba, dg, (size_t)n, plain, sizeof plain), -EBADMSG);
        dht_free(a);
        dht_free(b);
        dht_free(c);
        return;
    }
    /* every single flipped bit is detected */
    for (int i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            dg[i] ^= (uint8_t)(1 << bit);
            assert_int_equal(dht_crypto_open(b, kba, dg, (size_t)n, plain, sizeof plain), -EBADMSG);
            dg[i] ^= (uint8_t)(1 << bit);
        }
    }
    /* truncated, and a plaintext buffer too small */
    assert_int_equal(dht_crypto_open(b, kba, dg, (size_t)n - 1, plain, sizeof plain), -EBADMSG);
    assert_int_equal(dht_crypto_open(b, kba, dg, DHT_OVERHEAD - 1, plain, sizeof plain), -EBADMSG);
    assert_int_equal(dht_crypto_open(b, kba, dg, (size_t)n, plain, sizeof msg - 1), -EBADMSG);
    /* another network key cannot open it */
    assert_int_equal(dht_crypto_open(c, kcb, dg, (size_t)n, plain, sizeof plain), -EBADMSG);
    /* hello datagrams: the network key alone */
    n = dht_crypto_seal(a, DHT_MAGIC_HELLO, a->hello_key, (const uint8_t *)msg, sizeof msg, dg,
                        sizeof dg);
    assert_true(n > 0);
    assert_memory_equal(a->hello_key, b->hello_key, 32);
    assert_memory_not_equal(a->hello_key, c->hello_key, 32);
    assert_int_equal(dht_crypto_open(b, b->hello_key, dg, (size_t)n, plain, sizeof plain),
                     (int)sizeof msg);
    assert_int_equal(dht_crypto_open(c, c->hello_key, dg, (size_t)n, plain, sizeof plain),
                     -EBADMSG);
    /* two seals of the same body differ (fresh nonce) */
    uint8_t dg2[DHT_MAX_DATAGRAM];
    int n2 = dht_crypto_seal(a, DHT_MAGIC_HELLO, a->hello_key, (const uint8_t *)msg, sizeof msg,
                             dg2, sizeof dg2);
    assert_int_equal(n2, n);
    assert_memory_not_equal(dg + 1 + DHT_PK_LEN, dg2 + 1 + DHT_PK_LEN, DHT_NONCE_LEN);
    /* size limits */
    static uint8_t huge[DHT_MAX_DATAGRAM];
    assert_int_equal(dht_crypto_seal(a, DHT_MAGIC_BOX, kab, huge, DHT_MAX_PLAIN + 1, dg, sizeof dg),
                     -EMSGSIZE);
    assert_int_equal(dht_crypto_seal(a, DHT_MAGIC_BOX, kab, huge, DHT_MAX_PLAIN, dg, sizeof dg),
                     DHT_MAX_DATAGRAM);
    assert_int_equal(dht_crypto_seal(a, DHT_MAGIC_BOX, kab, huge, 10, dg, 10 + DHT_OVERHEAD - 1),
                     -EMSGSIZE);
    dht_free(a);
    dht_free(b);
    dht_free(c);
}

static void test_seal_open(void **state)
{
    (void)state;
    seal_open(false);
}

static void test_seal_open_plaintext_mode(void **state)
{
    (void)state;
    seal_open(true);
}

static void test_pair_key_bad_point(void **state)
{
    (void)state;
    dht_t *a = node(1, 7, false);
    uint8_t bad[DHT_PK_LEN], key[32];
    memset(bad, 0xff, sizeof bad); /* not a point on the curve */
    assert_int_equal(dht_crypto_pair_key(a, bad, key), -EINVAL);
    dht_free(a);
}

static void nonce(uint8_t out[DHT_NONCE_LEN], uint64_t epoch, uint64_t ctr)
{
    memset(out, 0xab, DHT_NONCE_LEN);
    for (int i = 0; i < 8; i++) {
        out[7 - i] = (uint8_t)(epoch >> (8 * i));
        out[15 - i] = (uint8_t)(ctr >> (8 * i));
    }
}

static int check(dht_peer_t *p, uint64_t epoch, uint64_t ctr)
{
    uint8_t n[DHT_NONCE_LEN];
    nonce(n, epoch, ctr);
    return dht_replay_check(&p->rw, n);
}

static void test_replay_window(void **state)
{
    (void)state;
    dht_peer_t p;
    memset(&p, 0, sizeof p);
    /* in order */
    for (uint64_t c = 1; c <= 5; c++)
        assert_int_equal(check(&p, 1000, c), 0);
    /* duplicates */
    for (uint64_t c = 1; c <= 5; c++)
        assert_int_equal(check(&p, 1000, c), -EALREADY);
    /* a gap, then the missing ones out of order, each once */
    assert_int_equal(check(&p, 1000, 20), 0);
    assert_int_equal(check(&p, 1000, 12), 0);
    assert_int_equal(check(&p, 1000, 7), 0);
    assert_int_equal(check(&p, 1000, 12), -EALREADY);
    assert_int_equal(check(&p, 1000, 20), -EALREADY);
    assert_int_equal(check(&p, 1000, 6), 0);
    /* the window is DHT_REPLAY_WINDOW wide below the highest seen */
    uint64_t top = 20 + DHT_REPLAY_WINDOW + 10;
    assert_int_equal(check(&p, 1000, top), 0);
    assert_int_equal(check(&p, 1000, top - DHT_REPLAY_WINDOW), -EALREADY); /* too old */
    assert_int_equal(check(&p, 1000, top - DHT_REPLAY_WINDOW + 1), 0);     /* oldest still in */
    assert_int_equal(check(&p, 1000, top - DHT_REPLAY_WINDOW + 1), -EALREADY);
    assert_int_equal(check(&p, 1000, 20), -EALREADY); /* seen, and now too old */
    assert_int_equal(check(&p, 1000, 21), -EALREADY); /* unseen but too old */
    assert_int_equal(check(&p, 1000, top - 1), 0);
    /* a big jump clears the window */
    assert_int_equal(check(&p, 1000, 1000000), 0);
    assert_int_equal(check(&p, 1000, 999999), 0);
    assert_int_equal(check(&p, 1000, top + 1), -EALREADY);
    /* a new epoch (restart) resets the counter */
    assert_int_equal(check(&p, 1001, 1), 0);
    assert_int_equal(check(&p, 1001, 1), -EALREADY);
    assert_int_equal(check(&p, 1001, 2), 0);
    /* an older epoch is rejected whatever its counter */
    assert_int_equal(check(&p, 1000, 2000000), -EALREADY);
    assert_int_equal(check(&p, 999, 1), -EALREADY);
    assert_int_equal(check(&p, 1001, 3), 0);
}

static void test_token(void **state)
{
    (void)state;
    uint8_t s1[32], s2[32], t1[DHT_TOKEN_LEN], t2[DHT_TOKEN_LEN];
    memset(s1, 1, 32);
    memset(s2, 2, 32);
    dht_addr_t a = {.family = 4, .ip = {127, 0, 0, 1}, .port = 5000}, b = a;
    dht_token_make(s1, &a, t1);
    dht_token_make(s1, &b, t2);
    assert_memory_equal(t1, t2, DHT_TOKEN_LEN);
    b.port = 5001;
    dht_token_make(s1, &b, t2);
    assert_memory_not_equal(t1, t2, DHT_TOKEN_LEN);
    b = a;
    b.ip[3] = 2;
    dht_token_make(s1, &b, t2);
    assert_memory_not_equal(t1, t2, DHT_TOKEN_LEN);
    dht_token_make(s2, &a, t2);
    assert_memory_not_equal(t1, t2, DHT_TOKEN_LEN);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_open),
        cmocka_unit_test(test_seal_open_plaintext_mode),
        cmocka_unit_test(test_pair_key_bad_point),
        cmocka_unit_test(test_replay_window),
        cmocka_unit_test(test_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
