/* Tests src/dht/ping.c on the in-memory network: dht_ping() answered (boxed and hello), timed out
 * (node down, wrong identity at the address), bounded, cancelled by dht_free(), and restarted
 * from its own callback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testnet.h"

typedef struct ping_res {
    int calls;
    int status;
    uint32_t rtt;
    uint64_t at; /* virtual time of the callback */
    testnet_t *net;
} ping_res_t;

static void on_ping(void *arg, int status, uint32_t rtt_ms)
{
    ping_res_t *r = arg;
    r->calls++;
    r->status = status;
    r->rtt = rtt_ms;
    r->at = r->net ? r->net->now : 0;
}

static void joined_pair(testnet_t *net, int n)
{
    tn_init(net, n);
    for (int i = 1; i < n; i++) {
        dht_addr_t a = tn_addr(0);
        assert_int_equal(dht_ping_addr(net->nodes[i], &a, net->now), 0);
        tn_run(net, 20);
    }
    tn_run(net, 50);
    assert_true(dht_contact_count(net->nodes[1]) >= 1);
}

static void test_answered(void **state)
{
    (void)state;
    testnet_t net;
    joined_pair(&net, 2);
    dht_addr_t a1 = tn_addr(1);
    ping_res_t boxed = {.net = &net}, hello = {.net = &net};
    uint64_t t0 = net.now;
    assert_int_equal(dht_ping(net.nodes[0], &a1, net.pk[1], 2000, net.now, on_ping, &boxed), 0);
    assert_int_equal(dht_ping(net.nodes[0], &a1, NULL, 2000, net.now, on_ping, &hello), 0);
    assert_int_equal(boxed.calls, 0); /* never from the starting call */
    tn_run(&net, 100);
    assert_int_equal(boxed.calls, 1);
    assert_int_equal(boxed.status, 0);
    assert_int_equal(hello.calls, 1);
    assert_int_equal(hello.status, 0);
    /* the network delays each datagram by 1 ms: two hops, a round trip of a few ms */
    assert_true(boxed.rtt >= 1 && boxed.rtt <= 5);
    assert_true(hello.rtt >= 1 && hello.rtt <= 5);
    assert_true(boxed.at - t0 <= 5);
    tn_run(&net, 5000); /* nothing more arrives */
    assert_int_equal(boxed.calls, 1);
    assert_int_equal(hello.calls, 1);
    tn_free(&net);
}

static void test_timeouts(void **state)
{
    (void)state;
    testnet_t net;
    joined_pair(&net, 3);
    dht_addr_t a1 = tn_addr(1), a2 = tn_addr(2);
    ping_res_t down = {.net = &net}, wrong = {.net = &net}, longer = {.net = &net};
    net.down[2] = true;
    uint64_t t0 = net.now;
    assert_int_equal(dht_ping(net.nodes[0], &a2, net.pk[2], 700, net.now, on_ping, &down), 0);
    /* node 2's identity at node 1's address: node 1 cannot open the PING, nothing answers */
    assert_int_equal(dht_ping(net.nodes[0], &a1, net.pk[2], 400, net.now, on_ping, &wrong), 0);
    /* a wait longer than the request's own hard timeout is honoured too */
    assert_int_equal(dht_ping(net.nodes[0], &a2, NULL, 6000, net.now, on_ping, &longer), 0);
    assert_true(dht_next_deadline(net.nodes[0]) <= t0 + 400);
    tn_run(&net, 390);
    assert_int_equal(wrong.calls, 0);
    tn_run(&net, 20);
    assert_int_equal(wrong.calls, 1);
    assert_int_equal(wrong.status, -ETIMEDOUT);
    assert_int_equal(wrong.rtt, 0);
    assert_int_equal(down.calls, 0);
    tn_run(&net, 400);
    assert_int_equal(down.calls, 1);
    assert_int_equal(down.status, -ETIMEDOUT);
    assert_true(down.at >= t0 + 700 && down.at <= t0 + 702);
    tn_run(&net, 4000);
    assert_int_equal(longer.calls, 0);
    tn_run(&net, 1300);
    assert_int_equal(longer.calls, 1);
    assert_int_equal(longer.status, -ETIMEDOUT);
    assert_true(longer.at >= t0 + 6000);
    tn_free(&net);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    testnet_t net;
    joined_pair(&net, 2);
    ping_res_t r = {.net = &net};
    dht_addr_t a1 = tn_addr(1), none = {0}, noport = tn_addr(1);
    noport.port = 0;
    uint8_t bad_pk[32];
    memset(bad_pk, 0xff, sizeof(bad_pk)); /* not a point of the curve */
    assert_int_equal(dht_ping(net.nodes[0], &none, NULL, 100, net.now, on_ping, &r), -EINVAL);
    assert_int_equal(dht_ping(net.nodes[0], &noport, NULL, 100, net.now, on_ping, &r), -EINVAL);
    assert_int_equal(dht_ping(net.nodes[0], &a1, net.pk[0], 100, net.now, on_ping, &r), -EINVAL);
    assert_int_equal(dht_ping(net.nodes[0], &a1, bad_pk, 100, net.now, on_ping, &r), -EINVAL);
    assert_int_equal(dht_ping(net.nodes[0], &a1, NULL, 100, net.now, NULL, &r), -EINVAL);
    tn_run(&net, 3000);
    assert_int_equal(r.calls, 0); /* an error return means no callback */
    tn_free(&net);
}

static void test_bounded_and_cancelled(void **state)
{
    (void)state;
    testnet_t net;
    joined_pair(&net, 2);
    net.down[1] = true;
    dht_addr_t a1 = tn_addr(1);
    static ping_res_t res[DHT_MAX_PINGS + 1];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < DHT_MAX_PINGS; i++)
        assert_int_equal(dht_ping(net.nodes[0], &a1, net.pk[1], 5000, net.now, on_ping, &res[i]),
                         0);
    assert_int_equal(
        dht_ping(net.nodes[0], &a1, net.pk[1], 5000, net.now, on_ping, &res[DHT_MAX_PINGS]),
        -ENOBUFS);
    tn_run(&net, 100);
    dht_free(net.nodes[0]);
    net.nodes[0] = NULL;
    for (int i = 0; i < DHT_MAX_PINGS; i++) {
        assert_int_equal(res[i].calls, 1);
        assert_int_equal(res[i].status, -ECANCELED);
    }
    assert_int_equal(res[DHT_MAX_PINGS].calls, 0);
    tn_free(&net);
}

typedef struct chain {
    testnet_t *net;
    int left, ok;
} chain_t;

static void on_chain(void *arg, int status, uint32_t rtt_ms)
{
    (void)rtt_ms;
    chain_t *c = arg;
    if (status == 0) c->ok++;
    if (--c->left > 0) {
        dht_addr_t a1 = tn_addr(1);
        assert_int_equal(
            dht_ping(c->net->nodes[0], &a1, c->net->pk[1], 500, c->net->now, on_chain, c), 0);
    }
}

static void test_restart_from_callback(void **state)
{
    (void)state;
    testnet_t net;
    joined_pair(&net, 2);
    chain_t c = {&net, 5, 0};
    dht_addr_t a1 = tn_addr(1);
    assert_int_equal(dht_ping(net.nodes[0], &a1, net.pk[1], 500, net.now, on_chain, &c), 0);
    for (int i = 0; i < 50 && c.left > 0; i++)
        tn_run(&net, 10);
    assert_int_equal(c.left, 0);
    assert_int_equal(c.ok, 5);
    tn_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answered),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_bounded_and_cancelled),
        cmocka_unit_test(test_restart_from_callback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
