/* Tests src/dht/lookup.c: the iterative lookup driven by scripted replies. Node 0 of a testnet is
 * the node under test; the other nodes are real cores whose keys script the answers: requests
 * node 0 sends are opened with the addressee's pairwise key, and replies are sealed by the
 * addressee's core, delivered by hand in a chosen order, from a chosen address. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testnet.h"

#define NPEERS   40 /* node 0 plus 39 peers */
#define NKNOWN   8  /* peers in node 0's table when the lookup starts */
#define MAX_REQS 256

typedef struct req {
    int to;
    uint32_t txid;
    uint8_t type;
    dht_id_t target;
    bool answered;
} req_t;

typedef struct lk_res {
    int calls;
    int status;
    size_t n;
    dht_id_t ids[DHT_K];
} lk_res_t;

static void on_lookup(void *arg, int status, const dht_lookup_result_t *r)
{
    lk_res_t *res = arg;
    res->calls++;
    res->status = status;
    res->n = r->n;
    for (size_t i = 0; i < r->n && i < DHT_K; i++)
        res->ids[i] = r->nodes[i].id;
}

/* Delivers every queued datagram (no time passes) until the queue is empty. */
static void pump(testnet_t *net)
{
    for (int round = 0; round < 100 && net->tail != net->head; round++) {
        size_t batch = net->tail - net->head;
        for (size_t k = 0; k < batch; k++) {
            tn_pkt_t *p = &net->q[net->head++ % TN_QUEUE];
            dht_addr_t from = tn_addr(p->from);
            dht_input(net->nodes[p->to], p->buf, p->len, &from, net->now);
        }
    }
    assert_true(net->tail == net->head);
}

/* Takes every queued datagram; each must be a boxed request node 0 sent to a peer. Appends them to
 * reqs and returns how many were FIND_NODE. */
static int take(testnet_t *net, req_t *reqs, int *nreqs)
{
    int finds = 0;
    while (net->head != net->tail) {
        tn_pkt_t *p = &net->q[net->head++ % TN_QUEUE];
        assert_int_equal(p->from, 0);
        assert_true(p->to > 0 && p->to < net->n);
        assert_int_equal(p->buf[0], DHT_MAGIC_BOX);
        dht_t *peer = net->nodes[p->to];
        uint8_t key[32], plain[DHT_MAX_DATAGRAM];
        assert_int_equal(dht_crypto_pair_key(peer, net->pk[0], key), 0);
        int pl = dht_crypto_open(peer, key, p->buf, p->len, plain, sizeof plain);
        assert_true(pl > 0);
        dht_msg_t m;
        assert_int_equal(dht_msg_decode(&m, plain, (size_t)pl), 0);
        assert_int_equal(m.type, DHT_MSG_FIND_NODE);
        assert_true(*nreqs < MAX_REQS);
        req_t *r = &reqs[(*nreqs)++];
        memset(r, 0, sizeof *r);
        r->to = p->to;
        r->txid = m.txid;
        r->type = m.type;
        r->target = m.target;
        finds++;
    }
    return finds;
}

/* peers 1..n-1 sorted by XOR distance to target */
static dht_id_t g_target;
static testnet_t *g_net;

static int by_dist(const void *a, const void *b)
{
    dht_id_t ia, ib;
    dht_id_from_pk(&ia, g_net->pk[*(const int *)a]);
    dht_id_from_pk(&ib, g_net->pk[*(const int *)b]);
    return dht_id_cmp_dist(&g_target, &ia, &ib);
}

static void sort_peers(testnet_t *net, const dht_id_t *target, int *order)
{
    for (int i = 1; i < net->n; i++)
        order[i - 1] = i;
    g_target = *target;
    g_net = net;
    qsort(order, (size_t)net->n - 1, sizeof(int), by_dist);
}

/* Seals a NODES reply by `signer` (listing the k peers closest to the target) and feeds it to node
 * 0 as coming from `from`. */
static int reply(testnet_t *net, const int *order, int signer, uint32_t txid,
                 const dht_addr_t *from)
{
    uint8_t nodes[DHT_K * DHT_COMPACT_V4];
    size_t nl = 0;
    for (int i = 0; i < DHT_K; i++) {
        dht_addr_t a = tn_addr(order[i]);
        int n = dht_addr_pack(&a, nodes + nl, sizeof nodes - nl);
        assert_int_equal(n, 7);
        memcpy(nodes + nl + 7, net->pk[order[i]], DHT_PK_LEN);
        nl += 7 + DHT_PK_LEN;
    }
    dht_msg_t m = {.type = DHT_MSG_NODES,
                   .txid = txid,
                   .seen = tn_addr(0),
                   .has_token = true,
                   .nodes = nodes,
                   .nodes_len = nl};
    memset(m.token, signer, DHT_TOKEN_LEN);
    uint8_t body[DHT_MAX_PLAIN], key[32], dg[DHT_MAX_DATAGRAM];
    int bl = dht_msg_encode(&m, 0, body, sizeof body);
    assert_true(bl > 0);
    dht_t *peer = net->nodes[signer];
    assert_int_equal(dht_crypto_pair_key(peer, net->pk[0], key), 0);
    int n = dht_crypto_seal(peer, DHT_MAGIC_BOX, key, body, (size_t)bl, dg, sizeof dg);
    assert_true(n > 0);
    return dht_input(net->nodes[0], dg, (size_t)n, from, net->now);
}

static int answer(testnet_t *net, const int *order, req_t *r)
{
    dht_addr_t from = tn_addr(r->to);
    r->answered = true;
    return reply(net, order, r->to, r->txid, &from);
}

static dht_op_t *find_op(dht_t *d)
{
    for (int i = 0; i < d->ops_cap; i++)
        if (d->ops[i].used && d->ops[i].kind == DHT_OP_FIND_NODE) return &d->ops[i];
    return NULL;
}

static int inflight(dht_t *d)
{
    dht_op_t *o = find_op(d);
    int n = 0;
    for (int i = 0; o && i < o->ncand; i++)
        n += o->cand[i].state == CAND_INFLIGHT;
    return n;
}

/* Node 0 learns peers 1..NKNOWN through bootstrap pings they answer. */
static void setup_net(testnet_t *net)
{
    tn_init(net, NPEERS);
    for (int i = 1; i <= NKNOWN; i++) {
        dht_addr_t a = tn_addr(i);
        assert_int_equal(dht_ping_addr(net->nodes[0], &a, net->now), 0);
    }
    pump(net);
    assert_int_equal(dht_contact_count(net->nodes[0]), NKNOWN);
}

static bool sent_to(const req_t *reqs, int n, int peer)
{
    for (int i = 0; i < n; i++)
        if (reqs[i].to == peer) return true;
    return false;
}

static void test_lookup_scripted(void **state)
{
    (void)state;
    testnet_t net;
    setup_net(&net);
    dht_t *d = net.nodes[0];
    dht_id_t target;
    memset(target.b, 0x3c, DHT_ID_LEN);
    int order[NPEERS];
    sort_peers(&net, &target, order);
    /* the NKNOWN peers node 0 knows, closest first */
    int known[NKNOWN], nk = 0;
    for (int i = 0; i < NPEERS - 1; i++)
        if (order[i] <= NKNOWN) known[nk++] = order[i];
    assert_int_equal(nk, NKNOWN);

    req_t reqs[MAX_REQS];
    int nreqs = 0;
    lk_res_t res = {0};
    dht_stats_t st0, st;
    dht_get_stats(d, &st0);
    uint64_t t0 = net.now;

    /* alpha = 3 requests go out, to the three closest known peers, for the target */
    assert_int_equal(dht_find_node(d, &target, net.now, on_lookup, &res), 0);
    assert_int_equal(take(&net, reqs, &nreqs), DHT_ALPHA);
    for (int i = 0; i < DHT_ALPHA; i++) {
        assert_int_equal(reqs[i].to, known[i]);
        assert_memory_equal(reqs[i].target.b, target.b, DHT_ID_LEN);
    }
    assert_int_equal(inflight(d), DHT_ALPHA);
    dht_get_stats(d, &st);
    assert_int_equal(st.sent[DHT_MSG_FIND_NODE] - st0.sent[DHT_MSG_FIND_NODE], DHT_ALPHA);
    /* nothing more until something happens */
    dht_periodic(d, net.now);
    assert_int_equal(take(&net, reqs, &nreqs), 0);

    /* A answers: exactly one new request fills its slot */
    net.now = t0 + 20;
    assert_int_equal(answer(&net, order, &reqs[0]), 0);
    assert_int_equal(take(&net, reqs, &nreqs), 1);
    assert_int_equal(nreqs, 4);
    assert_false(sent_to(reqs, 3, reqs[3].to));
    assert_int_equal(inflight(d), DHT_ALPHA);
    assert_int_equal(res.calls, 0);

    /* B and C pass their soft timeout (the adaptive RTO): two more go out, B and C are not resent
     */
    uint32_t rto_b = dht_rto(d, net.pk[reqs[1].to]), rto_c = dht_rto(d, net.pk[reqs[2].to]);
    uint64_t soft = t0 + (rto_b > rto_c ? rto_b : rto_c);
    uint64_t d_soft = t0 + 20 + dht_rto(d, net.pk[reqs[3].to]);
    assert_true(rto_b < DHT_RTO_DEFAULT_MS); /* learnt from the bootstrap PONG */
    assert_true(d_soft > soft + 1);
    dht_periodic(d, soft - 1);
    assert_int_equal(take(&net, reqs, &nreqs), 0);
    net.now = soft + 1;
    dht_periodic(d, net.now);
    assert_int_equal(take(&net, reqs, &nreqs), 2);
    assert_int_equal(nreqs, 6);
    for (int i = 4; i < 6; i++)
        assert_false(sent_to(reqs, i, reqs[i].to));
    assert_int_equal(inflight(d), DHT_ALPHA);
    assert_int_equal(res.calls, 0);

    /* E's answer from another address, with an unknown txid, or sealed by another peer: dropped */
    req_t *e = &reqs[4], *f = &reqs[5];
    dht_get_stats(d, &st0);
    dht_addr_t wrong = tn_addr(f->to);
    assert_int_equal(reply(&net, order, e->to, e->txid, &wrong), 0);
    dht_addr_t other_port = tn_addr(e->to);
    other_port.port++;
    assert_int_equal(reply(&net, order, e->to, e->txid, &other_port), 0);
    dht_addr_t right = tn_addr(e->to);
    uint32_t unknown = e->txid + 1;
    for (int i = 0; i < nreqs; i++)
        if (reqs[i].txid == unknown) unknown += 7;
    assert_int_equal(reply(&net, order, e->to, unknown, &right), 0);
    assert_int_equal(reply(&net, order, f->to, e->txid, &right), 0);
    dht_get_stats(d, &st);
    assert_int_equal(st.dropped[DHT_DROP_UNSOLICITED] - st0.dropped[DHT_DROP_UNSOLICITED], 4);
    assert_int_equal(st.received[DHT_MSG_NODES] - st0.received[DHT_MSG_NODES], 4);
    assert_int_equal(take(&net, reqs, &nreqs), 0);
    assert_int_equal(inflight(d), DHT_ALPHA);
    assert_int_equal(res.calls, 0);
    /* the real answer from the right address still counts */
    assert_int_equal(answer(&net, order, e), 0);
    assert_int_equal(take(&net, reqs, &nreqs), 1);
    assert_int_equal(res.calls, 0);

    /* B and C answer late (before their hard timeout): accepted */
    dht_get_stats(d, &st0);
    assert_int_equal(answer(&net, order, &reqs[1]), 0);
    assert_int_equal(answer(&net, order, &reqs[2]), 0);
    dht_get_stats(d, &st);
    assert_int_equal(st.dropped[DHT_DROP_UNSOLICITED], st0.dropped[DHT_DROP_UNSOLICITED]);

    /* everyone else answers in order, until the lookup ends */
    for (int round = 0; round < MAX_REQS && res.calls == 0; round++) {
        take(&net, reqs, &nreqs);
        assert_true(inflight(d) <= DHT_ALPHA);
        int next = -1;
        for (int i = 0; i < nreqs && next < 0; i++)
            if (!reqs[i].answered) next = i;
        if (next < 0) break;
        assert_int_equal(answer(&net, order, &reqs[next]), 0);
        assert_true(inflight(d) <= DHT_ALPHA);
    }
    take(&net, reqs, &nreqs);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.status, 0);
    assert_int_equal(res.n, DHT_K);
    /* the result is exactly the k closest peers, closest first */
    for (int i = 0; i < DHT_K; i++) {
        dht_id_t want;
        dht_id_from_pk(&want, net.pk[order[i]]);
        assert_memory_equal(res.ids[i].b, want.b, DHT_ID_LEN);
        assert_true(sent_to(reqs, nreqs, order[i]));
    }
    /* each peer was asked at most once; only the k closest plus the first alpha were asked */
    for (int i = 0; i < nreqs; i++)
        for (int j = i + 1; j < nreqs; j++)
            assert_int_not_equal(reqs[i].to, reqs[j].to);
    assert_true(nreqs <= DHT_K + DHT_ALPHA + 3);
    assert_null(find_op(d));
    /* the callback ran once, and never again */
    dht_periodic(d, net.now + 10);
    dht_periodic(d, net.now + 5000);
    assert_int_equal(res.calls, 1);
    dht_get_stats(d, &st);
    assert_int_equal(st.lookups[DHT_LOOKUP_OK], 1);
    tn_free(&net);
}

static void test_lookup_nobody_answers(void **state)
{
    (void)state;
    testnet_t net;
    setup_net(&net);
    dht_t *d = net.nodes[0];
    dht_id_t target;
    memset(target.b, 0xa5, DHT_ID_LEN);
    req_t reqs[MAX_REQS];
    int nreqs = 0;
    lk_res_t res = {0};
    assert_int_equal(dht_find_node(d, &target, net.now, on_lookup, &res), 0);
    assert_int_equal(take(&net, reqs, &nreqs), DHT_ALPHA);
    for (int step = 0; step < 1000 && res.calls == 0; step++) {
        net.now += 10;
        dht_periodic(d, net.now);
        take(&net, reqs, &nreqs);
    }
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.status, -EHOSTUNREACH);
    assert_int_equal(res.n, 0);
    /* every known peer was asked, once */
    assert_int_equal(nreqs, NKNOWN);
    for (int i = 1; i <= NKNOWN; i++)
        assert_true(sent_to(reqs, nreqs, i));
    dht_stats_t st;
    dht_get_stats(d, &st);
    assert_int_equal(st.lookups[DHT_LOOKUP_FAILED], 1);
    tn_free(&net);
}

static void test_lookup_empty_table(void **state)
{
    (void)state;
    testnet_t net;
    tn_init(&net, 1);
    lk_res_t res = {0};
    dht_id_t target = {{1}};
    assert_int_equal(dht_find_node(net.nodes[0], &target, net.now, on_lookup, &res), 0);
    assert_int_equal(res.calls, 0); /* never from the starting call */
    dht_periodic(net.nodes[0], net.now + 1);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.status, -EHOSTUNREACH);
    tn_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_scripted),
        cmocka_unit_test(test_lookup_nobody_answers),
        cmocka_unit_test(test_lookup_empty_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
