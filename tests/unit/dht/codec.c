/* Tests src/dht/codec.c (message bodies, record serialization) and the address helpers of
 * src/dht/addr.c: round trips, padding, and rejection of malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht-internal.h"

/* ---- msgpack writer for hand-made bodies ---- */

typedef struct mbuf {
    uint8_t b[4096];
    size_t n;
} mbuf_t;

static int mbuf_write(void *data, const char *buf, size_t len)
{
    mbuf_t *m = data;
    if (m->n + len > sizeof(m->b)) return -1;
    memcpy(m->b + m->n, buf, len);
    m->n += len;
    return 0;
}

static void pk_bin(msgpack_packer *pk, size_t n, uint8_t fillb)
{
    uint8_t tmp[2048];
    memset(tmp, fillb, n);
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, tmp, n);
}

static int decode(const mbuf_t *m)
{
    dht_msg_t out;
    return dht_msg_decode(&out, m->b, m->n);
}

static dht_addr_t v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    dht_addr_t x = {.family = 4, .ip = {a, b, c, d}, .port = port};
    return x;
}

static dht_addr_t v6(uint16_t port)
{
    dht_addr_t x = {.family = 6,
                    .ip = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x12, 0x34},
                    .port = port};
    return x;
}

/* ---- sample messages of every type ---- */

static uint8_t g_record[DHT_RECORD_FIXED + 5];
static uint8_t g_nodes[2 * DHT_COMPACT_V4];
static uint8_t g_recs[3][DHT_RECORD_FIXED + 3];

static dht_msg_t sample(int type, bool token)
{
    dht_msg_t m;
    memset(&m, 0, sizeof m);
    m.type = (uint8_t)type;
    m.txid = 0xdeadbeefu - (uint32_t)type;
    m.has_token = token || type == DHT_MSG_STORE || (type % 2 == 1);
    for (int i = 0; i < DHT_TOKEN_LEN; i++)
        m.token[i] = (uint8_t)(0xa0 + i + type);
    for (int i = 0; i < DHT_ID_LEN; i++)
        m.target.b[i] = (uint8_t)(i * 3 + type);
    memset(g_record, 0x42, sizeof g_record);
    memset(g_nodes, 0x17, sizeof g_nodes);
    for (int r = 0; r < 3; r++)
        memset(g_recs[r], 0x30 + r, sizeof g_recs[r]);
    switch (type) {
    case DHT_MSG_STORE:
        m.record = g_record;
        m.record_len = sizeof g_record;
        break;
    case DHT_MSG_PONG:
        m.seen = v4(203, 0, 113, 7, 40000);
        break;
    case DHT_MSG_NODES:
        m.seen = v6(1);
        m.nodes = g_nodes;
        m.nodes_len = sizeof g_nodes;
        break;
    case DHT_MSG_VALUES:
        m.seen = v4(127, 0, 0, 1, 65535);
        m.nodes = g_nodes;
        m.nodes_len = DHT_COMPACT_V4;
        m.nrecords = 3;
        for (int r = 0; r < 3; r++) {
            m.records[r] = g_recs[r];
            m.record_lens[r] = sizeof g_recs[r] - (size_t)r;
        }
        break;
    case DHT_MSG_STORED:
        m.seen = v4(10, 1, 2, 3, 5);
        m.status = token ? -ESTALE : 0;
        break;
    default:
        break;
    }
    return m;
}

static void assert_msg_equal(const dht_msg_t *a, const dht_msg_t *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->txid, b->txid);
    assert_int_equal(a->has_token, b->has_token);
    if (a->has_token) assert_memory_equal(a->token, b->token, DHT_TOKEN_LEN);
    switch (a->type) {
    case DHT_MSG_FIND_NODE:
    case DHT_MSG_FIND_VALUE:
        assert_memory_equal(a->target.b, b->target.b, DHT_ID_LEN);
        break;
    case DHT_MSG_STORE:
        assert_int_equal(a->record_len, b->record_len);
        assert_memory_equal(a->record, b->record, a->record_len);
        break;
    case DHT_MSG_PING:
        break;
    default:
        assert_true(dht_addr_equal(&a->seen, &b->seen));
        assert_int_equal(a->nodes_len, b->nodes_len);
        if (a->nodes_len) assert_memory_equal(a->nodes, b->nodes, a->nodes_len);
        assert_int_equal(a->nrecords, b->nrecords);
        for (int i = 0; i < a->nrecords; i++) {
            assert_int_equal(a->record_lens[i], b->record_lens[i]);
            assert_memory_equal(a->records[i], b->records[i], a->record_lens[i]);
        }
        assert_int_equal(a->status, b->status);
        break;
    }
}

static void test_round_trip_all_types(void **state)
{
    (void)state;
    for (int type = 0; type < DHT_MSG_TYPE_COUNT; type++) {
        for (int tok = 0; tok < 2; tok++) {
            dht_msg_t m = sample(type, tok == 1), d;
            uint8_t buf[DHT_MAX_PLAIN];
            int n = dht_msg_encode(&m, 0, buf, sizeof buf);
            assert_true(n > 0);
            assert_int_equal(dht_msg_decode(&d, buf, (size_t)n), 0);
            assert_msg_equal(&m, &d);
            /* the encoding is exact: one byte less does not fit */
            uint8_t small[DHT_MAX_PLAIN + 8];
            memset(small, 0xcc, sizeof small);
            assert_int_equal(dht_msg_encode(&m, 0, small, (size_t)n - 1), -EMSGSIZE);
            for (size_t i = (size_t)n - 1; i < sizeof small; i++)
                assert_int_equal(small[i], 0xcc);
        }
    }
    /* unknown type cannot be encoded */
    dht_msg_t bad = {.type = DHT_MSG_TYPE_COUNT};
    uint8_t buf[64];
    assert_true(dht_msg_encode(&bad, 0, buf, sizeof buf) < 0);
}

static void test_padding(void **state)
{
    (void)state;
    static const size_t pads[] = {64, 100, 255, 256, 300, 1000, DHT_HELLO_PAD - DHT_OVERHEAD};
    int types[] = {DHT_MSG_PING, DHT_MSG_FIND_NODE, DHT_MSG_FIND_VALUE};
    for (size_t t = 0; t < 3; t++) {
        for (size_t i = 0; i < sizeof pads / sizeof pads[0]; i++) {
            dht_msg_t m = sample(types[t], false), d;
            uint8_t buf[DHT_MAX_PLAIN];
            int n = dht_msg_encode(&m, pads[i], buf, sizeof buf);
            assert_int_equal(n, (int)pads[i]);
            assert_int_equal(dht_msg_decode(&d, buf, (size_t)n), 0);
            assert_msg_equal(&m, &d);
            /* padding that does not fit is refused */
            assert_int_equal(dht_msg_encode(&m, pads[i], buf, pads[i] - 1), -EMSGSIZE);
        }
    }
    /* responses are never padded */
    dht_msg_t pong = sample(DHT_MSG_PONG, true);
    uint8_t a[DHT_MAX_PLAIN], b[DHT_MAX_PLAIN];
    assert_int_equal(dht_msg_encode(&pong, 0, a, sizeof a),
                     dht_msg_encode(&pong, 500, b, sizeof b));
}

static void test_truncated_and_trailing(void **state)
{
    (void)state;
    for (int type = 0; type < DHT_MSG_TYPE_COUNT; type++) {
        dht_msg_t m = sample(type, true), d;
        uint8_t buf[DHT_MAX_PLAIN + 1];
        int n = dht_msg_encode(&m, type == DHT_MSG_PING ? 80 : 0, buf, sizeof buf - 1);
        assert_true(n > 0);
        for (int l = 0; l < n; l++)
            assert_int_equal(dht_msg_decode(&d, buf, (size_t)l), -EBADMSG);
        buf[n] = 0xc0; /* trailing nil */
        assert_int_equal(dht_msg_decode(&d, buf, (size_t)n + 1), -EBADMSG);
        assert_int_equal(dht_msg_decode(&d, buf, (size_t)n), 0);
    }
    uint8_t big[DHT_MAX_PLAIN + 1];
    memset(big, 0xc0, sizeof big);
    dht_msg_t d;
    assert_int_equal(dht_msg_decode(&d, big, sizeof big), -EBADMSG);
}

/* Starts [type, txid, ...] with `fields` elements. */
static void start(msgpack_packer *pk, mbuf_t *b, uint32_t fields, int type, uint32_t txid)
{
    b->n = 0;
    msgpack_packer_init(pk, b, mbuf_write);
    msgpack_pack_array(pk, fields);
    msgpack_pack_int(pk, type);
    msgpack_pack_uint32(pk, txid);
}

static void test_wrong_fields(void **state)
{
    (void)state;
    mbuf_t b;
    msgpack_packer pk;
    /* a valid FIND_NODE as control */
    start(&pk, &b, 5, DHT_MSG_FIND_NODE, 1);
    msgpack_pack_nil(&pk);
    pk_bin(&pk, DHT_ID_LEN, 1);
    msgpack_pack_nil(&pk);
    assert_int_equal(decode(&b), 0);
    /* target of 31 and 33 bytes, as str */
    for (int len = DHT_ID_LEN - 1; len <= DHT_ID_LEN + 1; len += 2) {
        start(&pk, &b, 5, DHT_MSG_FIND_NODE, 1);
        msgpack_pack_nil(&pk);
        pk_bin(&pk, (size_t)len, 1);
        msgpack_pack_nil(&pk);
        assert_int_equal(decode(&b), -EBADMSG);
    }
    start(&pk, &b, 5, DHT_MSG_FIND_NODE, 1);
    msgpack_pack_nil(&pk);
    msgpack_pack_str(&pk, DHT_ID_LEN);
    msgpack_pack_str_body(&pk, "0123456789abcdef0123456789abcdef", DHT_ID_LEN);
    msgpack_pack_nil(&pk);
    assert_int_equal(decode(&b), -EBADMSG);
    /* token of the wrong size / type */
    start(&pk, &b, 4, DHT_MSG_PING, 1);
    pk_bin(&pk, DHT_TOKEN_LEN - 1, 2);
    msgpack_pack_nil(&pk);
    assert_int_equal(decode(&b), -EBADMSG);
    start(&pk, &b, 4, DHT_MSG_PING, 1);
    msgpack_pack_int(&pk, 5);
    msgpack_pack_nil(&pk);
    assert_int_equal(decode(&b), -EBADMSG);
    /* padding that is not bin/nil */
    start(&pk, &b, 4, DHT_MSG_PING, 1);
    msgpack_pack_nil(&pk);
    msgpack_pack_array(&pk, 0);
    assert_int_equal(decode(&b), -EBADMSG);
    /* wrong array sizes for every type */
    static const uint32_t fields[DHT_MSG_TYPE_COUNT] = {4, 4, 5, 5, 5, 6, 4, 5};
    for (int t = 0; t < DHT_MSG_TYPE_COUNT; t++) {
        for (int delta = -1; delta <= 1; delta += 2) {
            start(&pk, &b, fields[t] + (uint32_t)delta, t, 9);
            for (uint32_t i = 2; i < fields[t] + (uint32_t)delta; i++)
                msgpack_pack_nil(&pk);
            assert_int_equal(decode(&b), -EBADMSG);
        }
    }
    /* unknown types, negative type, string type, txid over 32 bits / negative / string */
    int bad_types[] = {DHT_MSG_TYPE_COUNT, 200, -1};
    for (size_t i = 0; i < 3; i++) {
        start(&pk, &b, 4, bad_types[i], 1);
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
        assert_int_equal(decode(&b), -EBADMSG);
    }
    b.n = 0;
    msgpack_packer_init(&pk, &b, mbuf_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "0", 1);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_nil(&pk);
    msgpack_pack_nil(&pk);
    assert_int_equal(decode(&b), -EBADMSG);
    for (int variant = 0; variant < 3; variant++) {
        b.n = 0;
        msgpack_packer_init(&pk, &b, mbuf_write);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_int(&pk, DHT_MSG_PING);
        if (variant == 0) msgpack_pack_uint64(&pk, (uint64_t)UINT32_MAX + 1);
        if (variant == 1) msgpack_pack_int(&pk, -1);
        if (variant == 2) msgpack_pack_double(&pk, 1.0);
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
        assert_int_equal(decode(&b), -EBADMSG);
    }
    /* root not an array; empty array; a lone integer */
    b.n = 0;
    msgpack_packer_init(&pk, &b, mbuf_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_int(&pk, 0);
    msgpack_pack_int(&pk, 1);
    assert_int_equal(decode(&b), -EBADMSG);
    b.n = 0;
    msgpack_pack_array(&pk, 0);
    assert_int_equal(decode(&b), -EBADMSG);
    b.n = 0;
    msgpack_pack_int(&pk, 0);
    assert_int_equal(decode(&b), -EBADMSG);
    /* STORE without a token, with a record shorter than the fixed part */
    start(&pk, &b, 4, DHT_MSG_STORE, 1);
    msgpack_pack_nil(&pk);
    pk_bin(&pk, DHT_RECORD_FIXED, 3);
    assert_int_equal(decode(&b), -EBADMSG);
    start(&pk, &b, 4, DHT_MSG_STORE, 1);
    pk_bin(&pk, DHT_TOKEN_LEN, 3);
    pk_bin(&pk, DHT_RECORD_FIXED - 1, 3);
    assert_int_equal(decode(&b), -EBADMSG);
    start(&pk, &b, 4, DHT_MSG_STORE, 1);
    pk_bin(&pk, DHT_TOKEN_LEN, 3);
    pk_bin(&pk, DHT_RECORD_FIXED, 3);
    assert_int_equal(decode(&b), 0);
}

/* Response with a given `seen` blob, token and extra fields. */
static void response(msgpack_packer *pk, mbuf_t *b, int type, const uint8_t *seen, size_t seen_len,
                     bool token)
{
    static const uint32_t fields[DHT_MSG_TYPE_COUNT] = {4, 4, 5, 5, 5, 6, 4, 5};
    start(pk, b, fields[type], type, 7);
    msgpack_pack_bin(pk, seen_len);
    msgpack_pack_bin_body(pk, seen, seen_len);
    if (token)
        pk_bin(pk, DHT_TOKEN_LEN, 4);
    else
        msgpack_pack_nil(pk);
}

static void test_bad_responses(void **state)
{
    (void)state;
    mbuf_t b;
    msgpack_packer pk;
    uint8_t seen[19] = {4, 127, 0, 0, 1, 0x10, 0x00};
    response(&pk, &b, DHT_MSG_PONG, seen, 7, true);
    assert_int_equal(decode(&b), 0);
    response(&pk, &b, DHT_MSG_PONG, seen, 7, false); /* a response must carry a token */
    assert_int_equal(decode(&b), -EBADMSG);
    response(&pk, &b, DHT_MSG_PONG, seen, 8, true); /* trailing byte in `seen` */
    assert_int_equal(decode(&b), -EBADMSG);
    response(&pk, &b, DHT_MSG_PONG, seen, 6, true); /* short */
    assert_int_equal(decode(&b), -EBADMSG);
    uint8_t fam5[7] = {5, 127, 0, 0, 1, 0x10, 0};
    response(&pk, &b, DHT_MSG_PONG, fam5, 7, true);
    assert_int_equal(decode(&b), -EBADMSG);
    uint8_t port0[7] = {4, 127, 0, 0, 1, 0, 0};
    response(&pk, &b, DHT_MSG_PONG, port0, 7, true);
    assert_int_equal(decode(&b), -EBADMSG);
    /* NODES with nodes as a string */
    response(&pk, &b, DHT_MSG_NODES, seen, 7, true);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "abc", 3);
    assert_int_equal(decode(&b), -EBADMSG);
    /* VALUES: record list not an array, an element not bin, too many records */
    response(&pk, &b, DHT_MSG_VALUES, seen, 7, true);
    pk_bin(&pk, 0, 0);
    pk_bin(&pk, 10, 0);
    assert_int_equal(decode(&b), -EBADMSG);
    response(&pk, &b, DHT_MSG_VALUES, seen, 7, true);
    pk_bin(&pk, 0, 0);
    msgpack_pack_array(&pk, 2);
    pk_bin(&pk, 10, 0);
    msgpack_pack_int(&pk, 1);
    assert_int_equal(decode(&b), -EBADMSG);
    response(&pk, &b, DHT_MSG_VALUES, seen, 7, true);
    pk_bin(&pk, 0, 0);
    msgpack_pack_array(&pk, DHT_MAX_VALUES_PER_KEY);
    for (int i = 0; i < DHT_MAX_VALUES_PER_KEY; i++)
        pk_bin(&pk, 1, 0);
    assert_int_equal(decode(&b), 0);
    response(&pk, &b, DHT_MSG_VALUES, seen, 7, true);
    pk_bin(&pk, 0, 0);
    msgpack_pack_array(&pk, DHT_MAX_VALUES_PER_KEY + 1);
    for (int i = 0; i < DHT_MAX_VALUES_PER_KEY + 1; i++)
        pk_bin(&pk, 1, 0);
    assert_int_equal(decode(&b), -EBADMSG);
    /* STORED status: positive non-zero, far negative, string */
    long long statuses[] = {1, -5000};
    for (int i = 0; i < 2; i++) {
        response(&pk, &b, DHT_MSG_STORED, seen, 7, true);
        msgpack_pack_long_long(&pk, statuses[i]);
        assert_int_equal(decode(&b), -EBADMSG);
    }
    response(&pk, &b, DHT_MSG_STORED, seen, 7, true);
    msgpack_pack_nil(&pk);
    assert_int_equal(decode(&b), -EBADMSG);
    response(&pk, &b, DHT_MSG_STORED, seen, 7, true);
    msgpack_pack_int(&pk, -EACCES);
    dht_msg_t d;
    assert_int_equal(dht_msg_decode(&d, b.b, b.n), 0);
    assert_int_equal(d.status, -EACCES);
}

static void test_huge_lengths_and_nesting(void **state)
{
    (void)state;
    dht_msg_t d;
    /* lone headers declaring 4 GiB of data that is not there */
    static const uint8_t lone[][5] = {
        {0xc6, 0xff, 0xff, 0xff, 0xff}, /* bin32 */
        {0xdb, 0xff, 0xff, 0xff, 0xff}, /* str32 */
        {0xdd, 0xff, 0xff, 0xff, 0xff}, /* array32 */
        {0xdf, 0xff, 0xff, 0xff, 0xff}, /* map32 */
        {0xc9, 0xff, 0xff, 0xff, 0xff}, /* ext32 (type byte missing too) */
        {0xdd, 0x10, 0x00, 0x00, 0x00}, /* array32 of 2^28 */
        {0xdf, 0x08, 0x00, 0x00, 0x00}, /* map32 of 2^27 */
    };
    for (size_t i = 0; i < sizeof lone / sizeof lone[0]; i++)
        assert_int_equal(dht_msg_decode(&d, lone[i], sizeof lone[i]), -EBADMSG);
    /* the same inside a well-formed prefix [2, 1, nil, <huge> */
    for (size_t i = 0; i < sizeof lone / sizeof lone[0]; i++) {
        uint8_t buf[16] = {0x95, 0x02, 0x01, 0xc0};
        memcpy(buf + 4, lone[i], 5);
        assert_int_equal(dht_msg_decode(&d, buf, 9), -EBADMSG);
    }
    /* a datagram full of nested huge arrays */
    uint8_t many[DHT_MAX_PLAIN];
    for (size_t i = 0; i + 5 <= sizeof many; i += 5)
        memcpy(many + i, lone[2], 5);
    assert_int_equal(dht_msg_decode(&d, many, sizeof many - sizeof many % 5), -EBADMSG);
    /* deep nesting: 1000 levels of [ ... ] and of {0: ...} */
    uint8_t deep[1001];
    memset(deep, 0x91, 1000);
    deep[1000] = 0xc0;
    assert_int_equal(dht_msg_decode(&d, deep, sizeof deep), -EBADMSG);
    uint8_t deepmap[1201];
    for (int i = 0; i < 600; i++) {
        deepmap[2 * i] = 0x81;
        deepmap[2 * i + 1] = 0x00;
    }
    deepmap[1200] = 0xc0;
    assert_int_equal(dht_msg_decode(&d, deepmap, sizeof deepmap), -EBADMSG);
    /* moderate nesting in a field: [0, 1, [[[[nil]]]], nil] */
    uint8_t nest[] = {0x94, 0x00, 0x01, 0x91, 0x91, 0x91, 0x91, 0xc0, 0xc0};
    assert_int_equal(dht_msg_decode(&d, nest, sizeof nest), -EBADMSG);
    /* garbage bytes (random container headers included): never crash, never blow up memory */
    uint8_t junk[256];
    for (int seed = 0; seed < 200; seed++) {
        uint8_t s[4] = {(uint8_t)seed, 1, 2, 3};
        crypto_generichash(junk, 64, s, sizeof s, NULL, 0);
        junk[0] = 0x94; /* array of 4 then noise */
        int rc = dht_msg_decode(&d, junk, 64);
        assert_true(rc == -EBADMSG || rc == 0);
    }
    assert_int_equal(dht_msg_decode(&d, junk, 0), -EBADMSG);
}

/* ---- records ---- */

static void sample_record(dht_record_t *r, uint16_t vlen)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < DHT_ID_LEN; i++)
        r->key.b[i] = (uint8_t)(i + 1);
    for (int i = 0; i < DHT_PK_LEN; i++)
        r->publisher[i] = (uint8_t)(0x80 + i);
    r->seq = 0x0102030405060708ull;
    r->expires = 1700000000ull + 3600;
    r->value_len = vlen;
    for (int i = 0; i < vlen; i++)
        r->value[i] = (uint8_t)(i * 7);
    for (int i = 0; i < DHT_SIG_LEN; i++)
        r->sig[i] = (uint8_t)(0xf0 ^ i);
}

static void test_record_pack(void **state)
{
    (void)state;
    uint16_t lens[] = {0, 1, 200, DHT_MAX_VALUE};
    for (size_t k = 0; k < 4; k++) {
        dht_record_t r, u;
        sample_record(&r, lens[k]);
        uint8_t buf[DHT_RECORD_FIXED + DHT_MAX_VALUE + 8];
        int n = dht_record_pack(&r, buf, sizeof buf);
        assert_int_equal(n, DHT_RECORD_FIXED + lens[k]);
        memset(&u, 0xee, sizeof u);
        assert_int_equal(dht_record_unpack(&u, buf, (size_t)n), 0);
        assert_memory_equal(u.key.b, r.key.b, DHT_ID_LEN);
        assert_memory_equal(u.publisher, r.publisher, DHT_PK_LEN);
        assert_true(u.seq == r.seq);
        assert_true(u.expires == r.expires);
        assert_int_equal(u.value_len, r.value_len);
        assert_memory_equal(u.value, r.value, r.value_len);
        assert_memory_equal(u.sig, r.sig, DHT_SIG_LEN);
        /* wrong lengths */
        assert_int_equal(dht_record_unpack(&u, buf, (size_t)n - 1), -EBADMSG);
        assert_int_equal(dht_record_unpack(&u, buf, (size_t)n + 1), -EBADMSG);
        assert_int_equal(dht_record_unpack(&u, buf, DHT_RECORD_FIXED - 1), -EBADMSG);
        assert_int_equal(dht_record_pack(&r, buf, (size_t)n - 1), -EMSGSIZE);
    }
    /* a value_len field above the limit, whatever the buffer length */
    dht_record_t r, u;
    sample_record(&r, 10);
    uint8_t buf[DHT_RECORD_FIXED + DHT_MAX_VALUE + 8];
    int n = dht_record_pack(&r, buf, sizeof buf);
    size_t off = DHT_ID_LEN + DHT_PK_LEN + 16;
    buf[off] = (uint8_t)((DHT_MAX_VALUE + 1) >> 8);
    buf[off + 1] = (uint8_t)(DHT_MAX_VALUE + 1);
    assert_int_equal(dht_record_unpack(&u, buf, sizeof buf), -EBADMSG);
    buf[off] = 0xff;
    buf[off + 1] = 0xff;
    assert_int_equal(dht_record_unpack(&u, buf, (size_t)n), -EBADMSG);
    r.value_len = DHT_MAX_VALUE + 1;
    assert_int_equal(dht_record_pack(&r, buf, sizeof buf), -EMSGSIZE);
}

/* ---- addresses ---- */

static void test_addr_pack(void **state)
{
    (void)state;
    dht_addr_t as[] = {v4(1, 2, 3, 4, 5), v4(255, 255, 255, 255, 65535), v6(443)};
    for (size_t i = 0; i < 3; i++) {
        uint8_t buf[19], small[19];
        int n = dht_addr_pack(&as[i], buf, sizeof buf);
        assert_int_equal(n, as[i].family == 4 ? 7 : 19);
        assert_int_equal(buf[0], as[i].family);
        assert_int_equal(buf[n - 2], as[i].port >> 8);
        assert_int_equal(buf[n - 1], as[i].port & 0xff);
        dht_addr_t u;
        assert_int_equal(dht_addr_unpack(&u, buf, (size_t)n), n);
        assert_true(dht_addr_equal(&u, &as[i]));
        assert_int_equal(dht_addr_unpack(&u, buf, sizeof buf), n); /* longer input: reads n */
        for (int l = 0; l < n; l++)
            assert_int_equal(dht_addr_unpack(&u, buf, (size_t)l), -EINVAL);
        assert_int_equal(dht_addr_pack(&as[i], small, (size_t)n - 1), -EINVAL);
    }
    dht_addr_t none = {0};
    uint8_t buf[19];
    assert_int_equal(dht_addr_pack(&none, buf, sizeof buf), -EINVAL);
    uint8_t fam[7] = {5, 1, 2, 3, 4, 0, 1};
    dht_addr_t u;
    assert_int_equal(dht_addr_unpack(&u, fam, sizeof fam), -EINVAL);
    uint8_t port0[7] = {4, 1, 2, 3, 4, 0, 0};
    assert_int_equal(dht_addr_unpack(&u, port0, sizeof port0), -EINVAL);
}

static void test_addr_parse_format(void **state)
{
    (void)state;
    dht_addr_t a;
    char s[64];
    assert_int_equal(dht_addr_parse(&a, "1.2.3.4:5"), 0);
    assert_int_equal(a.family, 4);
    assert_memory_equal(a.ip, ((uint8_t[]){1, 2, 3, 4}), 4);
    assert_int_equal(a.port, 5);
    assert_int_equal(dht_addr_format(&a, s, sizeof s), 9);
    assert_string_equal(s, "1.2.3.4:5");
    assert_int_equal(dht_addr_parse(&a, "[::1]:8080"), 0);
    assert_int_equal(a.family, 6);
    assert_true(dht_addr_is_loopback(&a));
    assert_int_equal(a.port, 8080);
    dht_addr_format(&a, s, sizeof s);
    assert_string_equal(s, "[::1]:8080");
    assert_int_equal(dht_addr_parse(&a, "[2001:db8::1234]:65535"), 0);
    dht_addr_t b = v6(65535);
    assert_true(dht_addr_equal(&a, &b));
    dht_addr_format(&a, s, sizeof s);
    assert_string_equal(s, "[2001:db8::1234]:65535");
    assert_int_equal(dht_addr_parse(&a, "127.0.0.1:1"), 0);
    assert_true(dht_addr_is_loopback(&a));
    assert_int_equal(dht_addr_parse(&a, "10.0.0.1:1"), 0);
    assert_false(dht_addr_is_loopback(&a));
    dht_addr_t none = {0};
    dht_addr_format(&none, s, sizeof s);
    assert_string_equal(s, "-");
    static const char *bad[] = {"",
                                "1.2.3.4",
                                "1.2.3.4:",
                                "1.2.3.4:0",
                                "1.2.3.4:65536",
                                "1.2.3.4:12x",
                                "1.2.3.4:-1",
                                "[::1]8080",
                                "[::1",
                                "[::1]:",
                                "::1:80",
                                "host:80",
                                "1.2.3:80",
                                "[1.2.3.4]:80",
                                "1.2.3.4.5:80",
                                "[::1]:99999",
                                ":80",
                                "[]:80",
                                "256.1.1.1:80",
                                "[0123456789012345678901234567890123456789012345678901234567]:1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&a, 0x55, sizeof a);
        assert_int_equal(dht_addr_parse(&a, bad[i]), -EINVAL);
    }
    /* equality and subnets */
    dht_addr_t x = v4(10, 1, 2, 3, 80), y = v4(10, 1, 2, 200, 80), z = v4(10, 1, 3, 3, 80);
    assert_true(dht_addr_same_subnet(&x, &y));
    assert_false(dht_addr_same_subnet(&x, &z));
    assert_false(dht_addr_equal(&x, &y));
    y = x;
    y.port = 81;
    assert_false(dht_addr_equal(&x, &y));
    dht_addr_t w = v6(80);
    assert_false(dht_addr_same_subnet(&x, &w));
    assert_false(dht_addr_equal(&x, &w));
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_all_types),
        cmocka_unit_test(test_padding),
        cmocka_unit_test(test_truncated_and_trailing),
        cmocka_unit_test(test_wrong_fields),
        cmocka_unit_test(test_bad_responses),
        cmocka_unit_test(test_record_pack),
        cmocka_unit_test(test_addr_pack),
        cmocka_unit_test(test_addr_parse_format),
        cmocka_unit_test(test_huge_lengths_and_nesting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
