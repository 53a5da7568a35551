/* Tests of src/rpc/shs.c: the Secret Handshake state machine. Known-answer vectors come from the
 * npm secret-handshake 1.1.21 package's crypto.js run with fixed keys and ephemeral seeds (network
 * key 32 x 0x11, client seed 32 x 0x22, server seed 32 x 0x33, client ephemeral seed 32 x 0x44,
 * server ephemeral seed 32 x 0x55), and the box-stream of "hello box stream" + goodbye that
 * pull-box-stream 1.0.13 wrote with the client's sending keys. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "base/base.h"
#include "rpc/shs.h"

static const char *kat_alice_pk =
    "a09aa5f47a6759802ff955f8dc2d2a14a5c99d23be97f864127ff9383455a4f0";
static const char *kat_bob_pk = "17cb79fb2b4120f2b1ec65e4198d6e08b28e813feb01e4a400839b85e18080ce";
static const char *kat_m1 =
    "90c23c8473338b73afb22f1ab09184f0cf66676c868b087c8e8cb67e2690116f7ce31baa9a04b5cfb83ab7ccdd7b6"
    "69b911a082d29883d6aad3256294a0a5e0c";
static const char *kat_m2 =
    "9abb35e265178b7fd933da1fa4b168115655a7722c90949da319a81c011b1f987730ca242a380d5603dfdfa2efb33"
    "57aa67001eaa95209db0cc144c20970747c";
static const char *kat_m3 =
    "6527f8231c16f7729be6887b20f538ba9690b5fdc473feb2ecb8bf88d967ad212fe2e2053d597adaa26e729b7e587"
    "478803d75bbf76852c21fa6316d948411314ef20cbf2445bf877e8d5be5303fa9413b9e48e616c6db62810edb489d"
    "a0a78ac7431d5c306b1fb3adce7761e6b00c06";
static const char *kat_m4 =
    "79267d0580467578a0571bcadbacfb09a3127f809866d82cc1c476fcde00fb00aafdd0647529dded67bddd236ef91"
    "6bb0e4fb7497243be073995010699ea8e95630906c11fccb59a62f58ed26d070248";
static const char *kat_c_enc_key =
    "6d0ebdf9d30cdc6123b0f09a77d1a12a50a31a6359bb04e91afcb5aa69e04b46";
static const char *kat_c_dec_key =
    "5a011f01d75813772336553e13f70419f491c921bc5eae0fc43f943cb7a1ff86";
static const char *kat_c_enc_nonce = "9abb35e265178b7fd933da1fa4b168115655a7722c90949d";
static const char *kat_box =
    "716ee18ff6f0e8e767e247d0c11b0adb618abd00dd24f7e9a0d3fda463117c5eb2f153879197e0c3bc62f654b60d3"
    "ce9357eabb00373e27c459a7a3814520b8121cb88fde1b7c60d1c815aed3286d885121969b6";

typedef struct party {
    uint8_t pk[32], sk[64];
} party_t;

static void party(party_t *p, uint8_t seed_byte)
{
    uint8_t seed[32];
    memset(seed, seed_byte, sizeof(seed));
    crypto_sign_seed_keypair(p->pk, p->sk, seed);
}

static void fill(uint8_t *b, size_t n, uint8_t v)
{
    memset(b, v, n);
}

static void hex(uint8_t *out, size_t n, const char *h)
{
    assert_int_equal(p2p_hex_decode(out, n, h, strlen(h)), 0);
}

/* Takes the output of from (expected length want) and feeds it to to. Returns to's result. */
static int pass(rpc_shs_t *from, rpc_shs_t *to, size_t want, uint8_t *copy)
{
    size_t len, used;
    const uint8_t *out = rpc_shs_output(from, &len);
    assert_non_null(out);
    assert_int_equal(len, want);
    if (copy) memcpy(copy, out, len);
    int r = rpc_shs_input(to, out, len, &used);
    if (r >= 0) assert_int_equal(used, len);
    return r;
}

static void setup_pair(rpc_shs_t *c, rpc_shs_t *s, const uint8_t kc[32], const uint8_t ks[32])
{
    party_t a, b;
    uint8_t ec[32], es[32];
    party(&a, 0x22);
    party(&b, 0x33);
    fill(ec, 32, 0x44);
    fill(es, 32, 0x55);
    assert_int_equal(rpc_shs_init(c, true, kc, a.pk, a.sk, b.pk, ec), 0);
    assert_int_equal(rpc_shs_init(s, false, ks, b.pk, b.sk, NULL, es), 0);
}

static void test_known_answer(void **state)
{
    rpc_shs_t c, s;
    uint8_t k[32], m[4][112], want[112];
    rpc_shs_result_t rc, rs;
    fill(k, 32, 0x11);
    setup_pair(&c, &s, k, k);
    assert_int_equal(rpc_shs_want(&s), 64);
    assert_int_equal(pass(&c, &s, 64, m[0]), 0);
    assert_int_equal(pass(&s, &c, 64, m[1]), 0);
    assert_int_equal(pass(&c, &s, 112, m[2]), 1);
    assert_int_equal(pass(&s, &c, 80, m[3]), 1);
    hex(want, 64, kat_m1);
    assert_memory_equal(m[0], want, 64);
    hex(want, 64, kat_m2);
    assert_memory_equal(m[1], want, 64);
    hex(want, 112, kat_m3);
    assert_memory_equal(m[2], want, 112);
    hex(want, 80, kat_m4);
    assert_memory_equal(m[3], want, 80);
    assert_int_equal(rpc_shs_result(&c, &rc), 0);
    assert_int_equal(rpc_shs_result(&s, &rs), 0);
    hex(want, 32, kat_bob_pk);
    assert_memory_equal(rc.peer_pk, want, 32);
    hex(want, 32, kat_alice_pk);
    assert_memory_equal(rs.peer_pk, want, 32);
    hex(want, 32, kat_c_enc_key);
    assert_memory_equal(rc.enc_key, want, 32);
    assert_memory_equal(rs.dec_key, want, 32);
    hex(want, 32, kat_c_dec_key);
    assert_memory_equal(rc.dec_key, want, 32);
    assert_memory_equal(rs.enc_key, want, 32);
    hex(want, 24, kat_c_enc_nonce);
    assert_memory_equal(rc.enc_nonce, want, 24);
    assert_memory_equal(rs.dec_nonce, want, 24);
    assert_memory_equal(rc.dec_nonce, rs.enc_nonce, 24);

    /* the box stream pull-box-stream wrote with those keys */
    rpc_box_enc_t e;
    uint8_t wire[200], jsbox[84];
    hex(jsbox, sizeof(jsbox), kat_box);
    rpc_box_enc_init(&e, rc.enc_key, rc.enc_nonce);
    size_t n = rpc_box_encode(&e, (const uint8_t *)"hello box stream", 16, wire);
    rpc_box_goodbye(&e, wire + n);
    assert_int_equal(n + RPC_BOX_HEADER_LEN, sizeof(jsbox));
    assert_memory_equal(wire, jsbox, sizeof(jsbox));
    rpc_box_dec_t *d = malloc(sizeof(*d));
    rpc_box_dec_init(d, rs.dec_key, rs.dec_nonce);
    const uint8_t *body;
    size_t used, blen;
    assert_int_equal(rpc_box_decode(d, jsbox, sizeof(jsbox), &used, &body, &blen), 1);
    assert_int_equal(blen, 16);
    assert_memory_equal(body, "hello box stream", 16);
    assert_int_equal(rpc_box_decode(d, jsbox + used, sizeof(jsbox) - used, &used, &body, &blen), 2);
    free(d);
}

static void test_random_pair_one_byte_at_a_time(void **state)
{
    party_t a, b;
    uint8_t k[32], ec[32], es[32];
    rpc_shs_t c, s;
    randombytes_buf(k, 32);
    randombytes_buf(ec, 32);
    randombytes_buf(es, 32);
    crypto_sign_keypair(a.pk, a.sk);
    crypto_sign_keypair(b.pk, b.sk);
    assert_int_equal(rpc_shs_init(&c, true, k, a.pk, a.sk, b.pk, ec), 0);
    assert_int_equal(rpc_shs_init(&s, false, k, b.pk, b.sk, NULL, es), 0);
    int rc = 0, rs = 0;
    for (int round = 0; round < 4 && (rc != 1 || rs != 1); round++) {
        rpc_shs_t *from = round % 2 ? &s : &c, *to = round % 2 ? &c : &s;
        size_t len, used;
        uint8_t buf[160];
        const uint8_t *o = rpc_shs_output(from, &len);
        assert_non_null(o);
        memcpy(buf, o, len);
        int r = 0;
        for (size_t i = 0; i < len; i++) {
            r = rpc_shs_input(to, buf + i, 1, &used);
            assert_int_equal(used, 1);
            assert_true(r >= 0);
            if (i + 1 < len) assert_int_equal(r, 0);
        }
        if (round % 2)
            rc = r;
        else
            rs = r;
    }
    assert_int_equal(rc, 1);
    assert_int_equal(rs, 1);
    rpc_shs_result_t r1, r2;
    assert_int_equal(rpc_shs_result(&c, &r1), 0);
    assert_int_equal(rpc_shs_result(&s, &r2), 0);
    assert_memory_equal(r1.peer_pk, b.pk, 32);
    assert_memory_equal(r2.peer_pk, a.pk, 32);
    assert_memory_equal(r1.enc_key, r2.dec_key, 32);
    assert_memory_equal(r2.enc_key, r1.dec_key, 32);
    /* input after completion is not taken */
    size_t used;
    uint8_t x = 0;
    assert_int_equal(rpc_shs_input(&c, &x, 1, &used), 1);
    assert_int_equal(used, 0);
}

static void test_wrong_network_key(void **state)
{
    uint8_t k1[32], k2[32];
    rpc_shs_t c, s;
    size_t len, used;
    fill(k1, 32, 0x11);
    fill(k2, 32, 0x12);
    /* the server rejects the client's hello */
    setup_pair(&c, &s, k1, k2);
    assert_int_equal(pass(&c, &s, 64, NULL), RPC_SHS_E_NETWORK);
    assert_null(rpc_shs_output(&s, &len));
    assert_int_equal(rpc_shs_input(&s, (const uint8_t *)"x", 1, &used), RPC_SHS_E_NETWORK);
    assert_int_equal(rpc_shs_want(&s), 0);
    /* a client whose hello passed (a man in the middle replaying it) rejects the server's */
    rpc_shs_t c2, s2;
    setup_pair(&c2, &s2, k2, k2);
    uint8_t hello[64];
    assert_int_equal(pass(&c2, &s2, 64, hello), 0);
    assert_int_equal(pass(&s2, &c, 64, NULL), RPC_SHS_E_NETWORK);
    assert_string_equal(rpc_shs_strerror(RPC_SHS_E_NETWORK),
                        "handshake: wrong network key (hello MAC mismatch)");
}

static void test_wrong_server_key(void **state)
{
    party_t a, b, other;
    uint8_t k[32], ec[32], es[32];
    rpc_shs_t c, s;
    fill(k, 32, 0x11);
    fill(ec, 32, 1);
    fill(es, 32, 2);
    party(&a, 1);
    party(&b, 2);
    party(&other, 3);
    /* the client expects `other`, the server is b: the client's auth box does not open */
    assert_int_equal(rpc_shs_init(&c, true, k, a.pk, a.sk, other.pk, ec), 0);
    assert_int_equal(rpc_shs_init(&s, false, k, b.pk, b.sk, NULL, es), 0);
    assert_int_equal(pass(&c, &s, 64, NULL), 0);
    assert_int_equal(pass(&s, &c, 64, NULL), 0);
    assert_int_equal(pass(&c, &s, 112, NULL), RPC_SHS_E_BOX);
    /* a server key that is not a curve point is refused up front */
    uint8_t bad[32];
    memset(bad, 0xff, sizeof(bad));
    assert_int_equal(rpc_shs_init(&c, true, k, a.pk, a.sk, bad, ec), RPC_SHS_E_KEY);
}

/* Flips one bit of message `which` (0..3) in flight: the receiver must fail. */
static void tamper(int which, size_t byte)
{
    uint8_t k[32];
    rpc_shs_t c, s;
    fill(k, 32, 0x11);
    setup_pair(&c, &s, k, k);
    static const size_t lens[4] = {64, 64, 112, 80};
    for (int i = 0; i < 4; i++) {
        rpc_shs_t *from = i % 2 ? &s : &c, *to = i % 2 ? &c : &s;
        size_t len, used;
        uint8_t buf[112];
        const uint8_t *o = rpc_shs_output(from, &len);
        assert_int_equal(len, lens[i]);
        memcpy(buf, o, len);
        if (i == which) buf[byte % len] ^= 0x04;
        int r = rpc_shs_input(to, buf, len, &used);
        if (i == which) {
            assert_true(r < 0);
            return;
        }
        assert_true(r >= 0);
    }
    fail_msg("tampered message %d accepted", which);
}

static void test_tampered(void **state)
{
    for (int m = 0; m < 4; m++)
        for (size_t b = 0; b < 112; b += 7)
            tamper(m, b);
}

static void test_signature_of_wrong_key(void **state)
{
    /* A client that boxes a hello signed by one key but claiming another: the server sees a bad
     * signature. Built by hand from the protocol's own steps. */
    party_t a, b, mallory;
    uint8_t k[32], ec[32], es[32];
    rpc_shs_t c, s;
    fill(k, 32, 0x11);
    fill(ec, 32, 1);
    fill(es, 32, 2);
    party(&a, 1);
    party(&b, 2);
    party(&mallory, 3);
    /* the client holds a's public key but mallory's secret key */
    assert_int_equal(rpc_shs_init(&c, true, k, a.pk, mallory.sk, b.pk, ec), 0);
    assert_int_equal(rpc_shs_init(&s, false, k, b.pk, b.sk, NULL, es), 0);
    assert_int_equal(pass(&c, &s, 64, NULL), 0);
    assert_int_equal(pass(&s, &c, 64, NULL), 0);
    assert_int_equal(pass(&c, &s, 112, NULL), RPC_SHS_E_SIGNATURE);
}

static void test_extra_bytes_left(void **state)
{
    uint8_t k[32], buf[64 + 10];
    rpc_shs_t c, s;
    size_t len, used;
    fill(k, 32, 0x11);
    setup_pair(&c, &s, k, k);
    memcpy(buf, rpc_shs_output(&c, &len), 64);
    memset(buf + 64, 0xab, 10);
    /* the server takes its 64 bytes and the start of message 3, but not more than 112 */
    assert_int_equal(rpc_shs_input(&s, buf, sizeof(buf), &used), 0);
    assert_int_equal(used, sizeof(buf));
    assert_int_equal(rpc_shs_want(&s), 112 - 10);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answer),
        cmocka_unit_test(test_random_pair_one_byte_at_a_time),
        cmocka_unit_test(test_wrong_network_key),
        cmocka_unit_test(test_wrong_server_key),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_signature_of_wrong_key),
        cmocka_unit_test(test_extra_bytes_left),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
