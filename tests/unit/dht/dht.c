/* Tests src/dht/dht.c end to end on the in-memory network: join, put/get, node failures,
 * foreign network keys, replayed and forged datagrams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "testnet.h"

typedef struct get_res {
    int done, status, n;
    char value[64];
} get_res_t;

static void on_get(void *arg, int status, const dht_get_result_t *r)
{
    get_res_t *g = arg;
    g->done = 1;
    g->status = status;
    g->n = (int)r->n;
    if (r->n > 0) {
        size_t l = r->records[0].value_len < 63 ? r->records[0].value_len : 63;
        memcpy(g->value, r->records[0].value, l);
        g->value[l] = 0;
    }
}

static void on_put(void *arg, int status, size_t stored)
{
    int *s = arg;
    *s = status == 0 ? (int)stored : -1;
}

static void get_value(testnet_t *net, int node, const char *key, get_res_t *g)
{
    dht_id_t k;
    dht_key_derive(&k, "kv", key, strlen(key));
    memset(g, 0, sizeof(*g));
    assert_int_equal(dht_get(net->nodes[node], &k, net->now, on_get, g), 0);
    for (int i = 0; i < 100 && !g->done; i++)
        tn_run(net, 50);
    assert_true(g->done);
}

static void test_converge_put_get_failures(void **state)
{
    testnet_t net;
    tn_init(&net, 30);
    tn_join_all(&net);
    for (int i = 0; i < 30; i++)
        assert_true(dht_contact_count(net.nodes[i]) >= 20);

    char key[16], val[16];
    for (int v = 0; v < 5; v++) {
        snprintf(key, sizeof key, "k%d", v);
        snprintf(val, sizeof val, "value-%d", v);
        dht_id_t k;
        dht_key_derive(&k, "kv", key, strlen(key));
        int stored = -2;
        assert_int_equal(dht_put(net.nodes[1 + v], &k, (const uint8_t *)val, strlen(val), 3600,
                                 net.now, on_put, &stored),
                         0);
        for (int i = 0; i < 100 && stored == -2; i++)
            tn_run(&net, 50);
        assert_true(stored >= 10);
    }
    get_res_t g;
    get_value(&net, 29, "k0", &g);
    assert_int_equal(g.status, 0);
    assert_string_equal(g.value, "value-0");

    for (int i = 10; i < 20; i++)
        net.down[i] = true;
    for (int node = 0; node < 30; node++) {
        if (net.down[node]) continue;
        for (int v = 0; v < 5; v++) {
            snprintf(key, sizeof key, "k%d", v);
            snprintf(val, sizeof val, "value-%d", v);
            get_value(&net, node, key, &g);
            assert_int_equal(g.status, 0);
            assert_string_equal(g.value, val);
        }
    }
    get_value(&net, 3, "missing", &g);
    assert_int_equal(g.status, -ENOENT);
    tn_free(&net);
}

static void test_foreign_network_key_ignored(void **state)
{
    testnet_t net;
    tn_init(&net, 8);
    uint8_t other[32];
    memset(other, 9, 32);
    dht_free(net.nodes[7]);
    net.nodes[7] = tn_make_node(&net, 7, other);
    tn_join_all(&net);
    dht_stats_t st;
    dht_get_stats(net.nodes[0], &st);
    assert_true(st.dropped[DHT_DROP_AUTH] > 0);
    for (int i = 0; i < 7; i++) {
        dht_id_t id7;
        dht_id_from_pk(&id7, net.pk[7]);
        assert_null(dht_table_find(&net.nodes[i]->table, &id7));
        assert_true(dht_contact_count(net.nodes[i]) >= 5);
    }
    assert_int_equal(dht_contact_count(net.nodes[7]), 0);
    tn_free(&net);
}

static void test_replay_and_forgery_dropped(void **state)
{
    testnet_t net;
    tn_init(&net, 3);
    tn_join_all(&net);
    /* capture a boxed request from node 1 to node 2 */
    dht_find_node(net.nodes[1], dht_self_id(net.nodes[1]), net.now, NULL, NULL);
    uint8_t cap[DHT_MAX_DATAGRAM];
    size_t len = net.last_len;
    memcpy(cap, net.last, len);
    int to = net.last_to;
    tn_run(&net, 100);
    dht_addr_t from = tn_addr(net.last_from == to ? 1 : 1);
    dht_stats_t before, after;
    dht_get_stats(net.nodes[to], &before);
    assert_int_equal(dht_input(net.nodes[to], cap, len, &from, net.now), -EALREADY);
    cap[len - 3] ^= 1;
    assert_int_equal(dht_input(net.nodes[to], cap, len, &from, net.now), -EACCES);
    uint8_t junk[100] = {0xd1};
    assert_int_equal(dht_input(net.nodes[to], junk, sizeof junk, &from, net.now), -EACCES);
    assert_int_equal(dht_input(net.nodes[to], junk, 10, &from, net.now), -EBADMSG);
    uint8_t big[DHT_MAX_DATAGRAM + 1] = {0xd1};
    assert_int_equal(dht_input(net.nodes[to], big, sizeof big, &from, net.now), -EMSGSIZE);
    dht_get_stats(net.nodes[to], &after);
    assert_int_equal(after.dropped[DHT_DROP_REPLAY], before.dropped[DHT_DROP_REPLAY] + 1);
    assert_int_equal(after.dropped[DHT_DROP_AUTH], before.dropped[DHT_DROP_AUTH] + 2);
    assert_int_equal(after.dropped[DHT_DROP_OVERSIZED], before.dropped[DHT_DROP_OVERSIZED] + 1);
    tn_free(&net);
}

/* Copies lost by every holder come back when the publisher stores its record again. */
static void test_republish_restores_lost_copies(void **state)
{
    testnet_t net;
    tn_init(&net, 10);
    tn_join_all(&net);
    dht_id_t k;
    dht_key_derive(&k, "kv", "again", 5);
    int stored = -2;
    assert_int_equal(
        dht_put(net.nodes[2], &k, (const uint8_t *)"v1", 2, 3600, net.now, on_put, &stored), 0);
    for (int i = 0; i < 100 && stored == -2; i++)
        tn_run(&net, 50);
    assert_true(stored >= 5);
    for (int i = 0; i < 10; i++) {
        if (i == 2) continue;
        dht_store_free(&net.nodes[i]->store);
        dht_store_init(&net.nodes[i]->store);
        assert_int_equal(dht_record_count(net.nodes[i]), 0);
    }
    tn_run(&net, DHT_REPUBLISH_MS + 10000);
    int holders = 0;
    for (int i = 0; i < 10; i++)
        holders += i != 2 && dht_record_count(net.nodes[i]) == 1;
    assert_true(holders >= 5);
    get_res_t g;
    get_value(&net, 7, "again", &g);
    assert_int_equal(g.status, 0);
    assert_string_equal(g.value, "v1");
    tn_free(&net);
}

/* A record is gone everywhere once its lifetime has passed. */
static void test_records_expire_on_time(void **state)
{
    testnet_t net;
    tn_init(&net, 8);
    tn_join_all(&net);
    dht_id_t k;
    dht_key_derive(&k, "kv", "brief", 5);
    int stored = -2;
    assert_int_equal(
        dht_put(net.nodes[1], &k, (const uint8_t *)"x", 1, 20, net.now, on_put, &stored), 0);
    for (int i = 0; i < 100 && stored == -2; i++)
        tn_run(&net, 50);
    assert_true(stored >= 4);
    get_res_t g;
    get_value(&net, 5, "brief", &g);
    assert_int_equal(g.status, 0);
    for (int i = 0; i < 8; i++)
        dht_set_wall_clock(net.nodes[i], net.now, 1700000000000ull + 25000);
    tn_run(&net, 12000); /* expiry runs every 10 s */
    for (int i = 0; i < 8; i++)
        assert_int_equal(dht_record_count(net.nodes[i]), 0);
    get_value(&net, 5, "brief", &g);
    assert_int_equal(g.status, -ENOENT);
    tn_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_converge_put_get_failures),
        cmocka_unit_test(test_foreign_network_key_ignored),
        cmocka_unit_test(test_replay_and_forgery_dropped),
        cmocka_unit_test(test_republish_restores_lost_copies),
        cmocka_unit_test(test_records_expire_on_time),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
